//! Integration tests: the support tracker role on the Redmine that
//! `scripts/services.sh` starts. Redmine's database is shared by every test on
//! the machine, so each test uses tenants and logins that carry its process id
//! and its own name, and deletes them at the end (even when it fails); the
//! tests run in parallel.

use std::sync::Mutex;
use std::time::Duration;

use atrium_engine::backends::redmine::Redmine;
use atrium_engine::backends::tracker::{
    ObservedSupportProject, SupportProject, Tracker, TrackerError, TrackerUser, project_identifier,
};
use atrium_engine::test_services::service_variable;
use reqwest::Method;
use serde_json::{Value, json};

/// The test Redmine's REST API, called directly: to make what Atrium did not
/// make, to change things behind Atrium's back, and to clean up.
struct RawRedmine {
    client: reqwest::Client,
    url: String,
    api_key: String,
}

impl RawRedmine {
    fn new() -> RawRedmine {
        RawRedmine {
            client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            url: service_variable("ATRIUM_TEST_REDMINE_URL"),
            api_key: service_variable("ATRIUM_TEST_REDMINE_API_KEY"),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, String) {
        let mut request =
            self.client.request(method, format!("{}{path}", self.url)).header("X-Redmine-API-Key", &self.api_key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the test Redmine answers");
        (response.status().as_u16(), response.text().await.unwrap_or_default())
    }

    /// The document under `key` of a GET, or `None` on 404.
    async fn read(&self, path: &str, key: &str) -> Option<Value> {
        let (status, body) = self.call(Method::GET, path, None).await;
        match status {
            404 => None,
            200 => Some(serde_json::from_str::<Value>(&body).unwrap()[key].take()),
            _ => panic!("GET {path}: HTTP {status} {body}"),
        }
    }

    async fn project(&self, tenant: &str) -> Option<Value> {
        self.read(&format!("/projects/{}.json", project_identifier(tenant)), "project").await
    }

    async fn memberships(&self, tenant: &str) -> Vec<Value> {
        let path = format!("/projects/{}/memberships.json?limit=100", project_identifier(tenant));
        self.read(&path, "memberships").await.and_then(|list| list.as_array().cloned()).unwrap_or_default()
    }

    /// The user with exactly this login, locked ones included, with `status` and memberships.
    async fn user(&self, login: &str) -> Option<Value> {
        let users = self.read(&format!("/users.json?name={login}&status=&limit=100"), "users").await?;
        let id = users.as_array()?.iter().find(|user| user["login"] == login)?["id"].as_u64()?;
        self.read(&format!("/users/{id}.json?include=memberships"), "user").await
    }

    async fn delete_project(&self, tenant: &str) {
        let path = format!("/projects/{}.json", project_identifier(tenant));
        let (status, body) = self.call(Method::DELETE, &path, None).await;
        assert!(status == 204 || status == 404, "deleting test project {path}: HTTP {status} {body}");
    }

    async fn delete_user(&self, login: &str) {
        let Some(user) = self.user(login).await else {
            return;
        };
        let (status, body) = self.call(Method::DELETE, &format!("/users/{}.json", user["id"]), None).await;
        assert!(status == 204 || status == 404, "deleting test user {login}: HTTP {status} {body}");
    }
}

/// The tenants and logins one test uses, deleted from Redmine when the test
/// ends, and before first use in case an earlier run with the same process id
/// left them behind.
struct TestNames {
    case: String,
    raw: RawRedmine,
    tenants: Mutex<Vec<String>>,
    logins: Mutex<Vec<String>>,
}

impl TestNames {
    fn new(case: &str) -> TestNames {
        TestNames {
            case: case.to_owned(),
            raw: RawRedmine::new(),
            tenants: Mutex::new(Vec::new()),
            logins: Mutex::new(Vec::new()),
        }
    }

    /// A tenant name of this test, e.g. `t4242-grant-b`.
    async fn tenant(&self, label: &str) -> String {
        let tenant = format!("t{}-{}-{label}", std::process::id(), self.case);
        self.raw.delete_project(&tenant).await;
        self.tenants.lock().unwrap().push(tenant.clone());
        tenant
    }

    /// A manager of this test, logging in with an address such as `dana.grant.4242@atrium.test`.
    async fn user(&self, first_name: &str) -> TrackerUser {
        let login = format!("{}.{}.{}@atrium.test", first_name.to_lowercase(), self.case, std::process::id());
        self.raw.delete_user(&login).await;
        self.logins.lock().unwrap().push(login.clone());
        TrackerUser::from_manager(&login, &format!("{first_name} Fischer"))
    }
}

impl Drop for TestNames {
    /// Deletes on a thread of its own, because `Drop` cannot await and the
    /// test's runtime may be the one this runs on.
    ///
    /// The thread makes a client of its own: a pooled connection of the test's
    /// client belongs to the test's runtime, which is blocked here, and using
    /// it from another runtime would wait forever.
    fn drop(&mut self) {
        let tenants = std::mem::take(&mut *self.tenants.lock().unwrap());
        let logins = std::mem::take(&mut *self.logins.lock().unwrap());
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            let raw = RawRedmine::new();
            runtime.block_on(async {
                for tenant in &tenants {
                    raw.delete_project(tenant).await;
                }
                for login in &logins {
                    raw.delete_user(login).await;
                }
            });
        });
        if cleanup.join().is_err() && !std::thread::panicking() {
            panic!("could not delete the Redmine projects and users of test {}", self.case);
        }
    }
}

/// A fresh client for the test Redmine, so that each test counts its own API calls.
fn redmine() -> Redmine {
    Redmine::new(&service_variable("ATRIUM_TEST_REDMINE_URL"), &service_variable("ATRIUM_TEST_REDMINE_API_KEY"))
}

fn support_project(tenant: &str, name: &str, level: &str) -> SupportProject {
    SupportProject { tenant: tenant.to_owned(), name: name.to_owned(), level: level.to_owned() }
}

fn observed(name: &str, level: &str, member_logins: &[&str]) -> Option<ObservedSupportProject> {
    Some(ObservedSupportProject {
        name: name.to_owned(),
        level: Some(level.to_owned()),
        member_logins: member_logins.iter().map(|login| login.to_string()).collect(),
    })
}

/// Tenant `a` of this test with its project ("Acme", standard_8x5) and Dana
/// as a Reporter in it, made through a fresh client.
async fn project_with_reporter(names: &TestNames) -> (String, TrackerUser, Redmine) {
    let tenant = names.tenant("a").await;
    let dana = names.user("Dana").await;
    let redmine = redmine();
    redmine.ensure_project(&support_project(&tenant, "Acme", "standard_8x5")).await.unwrap();
    redmine.grant_access(&tenant, &dana, "Reporter").await.unwrap();
    (tenant, dana, redmine)
}

/// The errors of each trait call on the tenant's project, every one of which must fail.
async fn every_call_failing(redmine: &Redmine, tenant: &str, user: &TrackerUser) -> Vec<TrackerError> {
    vec![
        redmine.ensure_project(&support_project(tenant, "Acme", "standard_8x5")).await.unwrap_err(),
        redmine.grant_access(tenant, user, "Reporter").await.unwrap_err(),
        redmine.revoke_access(tenant, &user.login).await.unwrap_err(),
        redmine.remove_project(tenant).await.unwrap_err(),
        redmine.observe(tenant).await.unwrap_err(),
    ]
}

/// The names of the roles of `login`'s membership in the tenant's project.
async fn member_roles(raw: &RawRedmine, tenant: &str, login: &str) -> Vec<String> {
    let user = raw.user(login).await.expect("the member's user exists");
    let membership =
        raw.memberships(tenant).await.into_iter().find(|membership| membership["user"]["id"] == user["id"]);
    let roles = membership.map(|membership| membership["roles"].as_array().cloned().unwrap_or_default());
    roles.unwrap_or_default().iter().map(|role| role["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn ensure_project_creates_a_private_project_with_the_support_level() {
    let names = TestNames::new("create");
    let tenant = names.tenant("a").await;
    let redmine = redmine();
    redmine.ensure_project(&support_project(&tenant, "Acme GmbH", "premium_24x7")).await.unwrap();

    assert_eq!(redmine.observe(&tenant).await.unwrap(), observed("Acme GmbH", "premium_24x7", &[]));
    let project = names.raw.project(&tenant).await.expect("the project exists");
    assert_eq!(project["identifier"], project_identifier(&tenant));
    assert_eq!(project["is_public"], false, "a customer's tickets are private");
    let description = project["description"].as_str().unwrap();
    assert!(description.starts_with(&format!("Managed by Atrium for tenant {tenant}.")), "{description}");
}

#[tokio::test]
async fn second_identical_ensure_reads_the_project_and_writes_nothing() {
    let names = TestNames::new("identical");
    let tenant = names.tenant("a").await;
    let redmine = redmine();
    let project = support_project(&tenant, "Acme GmbH", "standard_8x5");
    redmine.ensure_project(&project).await.unwrap();
    assert_eq!(redmine.api_calls(), 4, "key check, field lookup, read and create");
    let updated_on = names.raw.project(&tenant).await.unwrap()["updated_on"].clone();

    redmine.ensure_project(&project).await.unwrap();
    assert_eq!(redmine.api_calls(), 5, "the second ensure only reads the project");
    assert_eq!(names.raw.project(&tenant).await.unwrap()["updated_on"], updated_on);
}

#[tokio::test]
async fn changed_level_and_name_are_written() {
    let names = TestNames::new("change");
    let tenant = names.tenant("a").await;
    let redmine = redmine();
    redmine.ensure_project(&support_project(&tenant, "Acme", "standard_8x5")).await.unwrap();

    let calls_before = redmine.api_calls();
    redmine.ensure_project(&support_project(&tenant, "Acme", "premium_24x7")).await.unwrap();
    assert_eq!(redmine.api_calls(), calls_before + 2, "one read and one write");
    assert_eq!(redmine.observe(&tenant).await.unwrap(), observed("Acme", "premium_24x7", &[]));

    redmine.ensure_project(&support_project(&tenant, "Acme GmbH", "premium_24x7")).await.unwrap();
    assert_eq!(redmine.observe(&tenant).await.unwrap(), observed("Acme GmbH", "premium_24x7", &[]));

    // Someone empties the level by hand: observed as no level, and put back.
    let identifier = project_identifier(&tenant);
    let field_id = names.raw.project(&tenant).await.unwrap()["custom_fields"][0]["id"].clone();
    let clear = json!({"project": {"custom_fields": [{"id": field_id, "value": ""}]}});
    let (status, body) = names.raw.call(Method::PUT, &format!("/projects/{identifier}.json"), Some(clear)).await;
    assert_eq!(status, 204, "clearing the level by hand: {body}");
    assert_eq!(redmine.observe(&tenant).await.unwrap().unwrap().level, None);
    redmine.ensure_project(&support_project(&tenant, "Acme GmbH", "premium_24x7")).await.unwrap();
    assert_eq!(redmine.observe(&tenant).await.unwrap(), observed("Acme GmbH", "premium_24x7", &[]));
}

#[tokio::test]
async fn level_outside_the_list_is_refused_with_redmines_message() {
    let names = TestNames::new("bad-level");
    let tenant = names.tenant("a").await;
    let error = redmine().ensure_project(&support_project(&tenant, "Acme", "gold_forever")).await.unwrap_err();
    match &error {
        TrackerError::Api { status: 422, message, operation } => {
            assert!(message.contains("Support level is not included in the list"), "Redmine's words: {message}");
            assert!(operation.contains(&project_identifier(&tenant)), "{operation}");
        }
        other => panic!("expected a 422 from Redmine, got {other:?}"),
    }
    assert!(!error.is_retryable());
    assert_eq!(names.raw.project(&tenant).await, None, "nothing was created");
}

#[tokio::test]
async fn grant_access_creates_the_user_and_membership_and_granting_again_writes_nothing() {
    let names = TestNames::new("grant");
    let (tenant, dana, redmine) = project_with_reporter(&names).await;

    assert_eq!(redmine.observe(&tenant).await.unwrap(), observed("Acme", "standard_8x5", &[&dana.login]));
    let user = names.raw.user(&dana.login).await.expect("the user was created");
    assert_eq!(
        (&user["firstname"], &user["lastname"], &user["mail"]),
        (&json!("Dana"), &json!("Fischer"), &json!(dana.email))
    );
    assert_eq!(user["status"], 1, "the new user may sign in");
    assert_eq!(member_roles(&names.raw, &tenant, &dana.login).await, ["Reporter"]);

    let calls_before = redmine.api_calls();
    redmine.grant_access(&tenant, &dana, "Reporter").await.unwrap();
    assert_eq!(redmine.api_calls(), calls_before + 3, "reads of the project, the user and the members only");
    assert_eq!(names.raw.memberships(&tenant).await.len(), 1, "no second membership");
}

#[tokio::test]
async fn membership_removed_out_of_band_shows_in_observe_and_grant_restores_it() {
    let names = TestNames::new("restore");
    let (tenant, dana, redmine) = project_with_reporter(&names).await;

    let membership_id = names.raw.memberships(&tenant).await[0]["id"].clone();
    let (status, body) = names.raw.call(Method::DELETE, &format!("/memberships/{membership_id}.json"), None).await;
    assert_eq!(status, 204, "removing the membership by hand: {body}");
    assert_eq!(redmine.observe(&tenant).await.unwrap(), observed("Acme", "standard_8x5", &[]));

    redmine.grant_access(&tenant, &dana, "Reporter").await.unwrap();
    assert_eq!(redmine.observe(&tenant).await.unwrap(), observed("Acme", "standard_8x5", &[&dana.login]));
}

#[tokio::test]
async fn grant_unlocks_a_locked_user_and_sets_the_role_asked_for() {
    let names = TestNames::new("unlock");
    let (tenant, dana, redmine) = project_with_reporter(&names).await;

    let user_id = names.raw.user(&dana.login).await.unwrap()["id"].clone();
    let lock = json!({"user": {"status": 3}});
    let (status, body) = names.raw.call(Method::PUT, &format!("/users/{user_id}.json"), Some(lock)).await;
    assert_eq!(status, 204, "locking the user by hand: {body}");

    redmine.grant_access(&tenant, &dana, "Developer").await.unwrap();
    let user = names.raw.user(&dana.login).await.unwrap();
    assert_eq!((&user["id"], &user["status"]), (&user_id, &json!(1)), "the same user, unlocked");
    assert_eq!(member_roles(&names.raw, &tenant, &dana.login).await, ["Developer"], "the role is replaced");

    let error = redmine.grant_access(&tenant, &dana, "Astronaut").await.unwrap_err();
    assert!(matches!(&error, TrackerError::Setup { what, .. } if what.contains("\"Astronaut\"")), "{error}");
    assert!(error.to_string().contains("Reporter"), "the known roles are listed: {error}");
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn grant_to_a_missing_project_is_project_missing_and_makes_no_user() {
    let names = TestNames::new("no-project");
    let tenant = names.tenant("a").await;
    let dana = names.user("Dana").await;
    let redmine = redmine();
    let error = redmine.grant_access(&tenant, &dana, "Reporter").await.unwrap_err();
    assert!(
        matches!(&error, TrackerError::ProjectMissing { identifier } if *identifier == project_identifier(&tenant)),
        "{error}"
    );
    assert!(!error.is_retryable());
    assert_eq!(names.raw.user(&dana.login).await, None);
    assert_eq!(redmine.observe(&tenant).await.unwrap(), None, "observing a missing project");
}

#[tokio::test]
async fn revoke_removes_the_membership_and_deletes_the_user_once_no_project_is_left() {
    let names = TestNames::new("revoke");
    let (first, second) = (names.tenant("a").await, names.tenant("b").await);
    let (dana, kim) = (names.user("Dana").await, names.user("Kim").await);
    let redmine = redmine();
    for tenant in [&first, &second] {
        redmine.ensure_project(&support_project(tenant, "Acme", "standard_8x5")).await.unwrap();
        redmine.grant_access(tenant, &dana, "Reporter").await.unwrap();
    }
    redmine.grant_access(&first, &kim, "Reporter").await.unwrap();

    redmine.revoke_access(&first, &dana.login).await.unwrap();
    assert_eq!(redmine.observe(&first).await.unwrap(), observed("Acme", "standard_8x5", &[&kim.login]));
    assert!(names.raw.user(&dana.login).await.is_some(), "still a member of the second project");

    redmine.revoke_access(&second, &dana.login).await.unwrap();
    assert_eq!(redmine.observe(&second).await.unwrap(), observed("Acme", "standard_8x5", &[]));
    assert_eq!(names.raw.user(&dana.login).await, None, "a member of no project any more");
    assert!(names.raw.user(&kim.login).await.is_some(), "other members are untouched");

    redmine.revoke_access(&second, &dana.login).await.unwrap();
    redmine.revoke_access(&format!("{second}-never-made"), &kim.login).await.unwrap();
    assert!(names.raw.user(&kim.login).await.is_some(), "a missing project revokes nothing");
}

#[tokio::test]
async fn remove_project_deletes_it_and_removing_again_is_fine() {
    let names = TestNames::new("remove");
    let tenant = names.tenant("a").await;
    let redmine = redmine();
    redmine.ensure_project(&support_project(&tenant, "Acme", "standard_8x5")).await.unwrap();

    redmine.remove_project(&tenant).await.unwrap();
    assert_eq!(names.raw.project(&tenant).await, None);
    assert_eq!(redmine.observe(&tenant).await.unwrap(), None);
    let calls_before = redmine.api_calls();
    redmine.remove_project(&tenant).await.unwrap();
    assert_eq!(redmine.api_calls(), calls_before + 1, "removing a missing project only reads");
}

#[tokio::test]
async fn archived_project_is_reported_as_archived() {
    let names = TestNames::new("archived");
    let tenant = names.tenant("a").await;
    let redmine = redmine();
    redmine.ensure_project(&support_project(&tenant, "Acme", "standard_8x5")).await.unwrap();
    let path = format!("/projects/{}/archive.json", project_identifier(&tenant));
    let (status, body) = names.raw.call(Method::PUT, &path, None).await;
    assert_eq!(status, 204, "archiving the project by hand: {body}");

    let error = redmine.ensure_project(&support_project(&tenant, "Acme", "standard_8x5")).await.unwrap_err();
    assert!(
        matches!(&error, TrackerError::Api { status: 403, message, .. } if message.contains("archived")),
        "{error}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn hand_made_project_with_our_identifier_is_not_managed_and_left_intact() {
    let names = TestNames::new("hand-made");
    let tenant = names.tenant("a").await;
    let identifier = project_identifier(&tenant);
    let hand_made = json!({"project": {"name": "Ops notes", "identifier": identifier, "description": "Ours, not Atrium's.",
                                       "is_public": false}});
    let (status, body) = names.raw.call(Method::POST, "/projects.json", Some(hand_made)).await;
    assert_eq!(status, 201, "creating a project by hand: {body}");
    let dana = names.user("Dana").await;
    let redmine = redmine();

    for error in every_call_failing(&redmine, &tenant, &dana).await {
        assert!(
            matches!(&error, TrackerError::NotManaged { identifier: refused } if *refused == identifier),
            "{error}"
        );
        assert!(!error.is_retryable());
    }
    let project = names.raw.project(&tenant).await.expect("the hand-made project is still there");
    assert_eq!((&project["name"], &project["description"]), (&json!("Ops notes"), &json!("Ours, not Atrium's.")));
    assert_eq!(names.raw.user(&dana.login).await, None, "no user was made for it");
}

#[tokio::test]
async fn bad_api_key_is_unauthorized_and_never_shown() {
    let names = TestNames::new("bad-key");
    let tenant = names.tenant("a").await;
    let wrong_key = "0123456789abcdef0123456789abcdef01234567";
    let redmine = Redmine::new(&service_variable("ATRIUM_TEST_REDMINE_URL"), wrong_key);
    let dana = TrackerUser::from_manager("dana@atrium.test", "Dana Fischer");
    for error in every_call_failing(&redmine, &tenant, &dana).await {
        assert!(matches!(error, TrackerError::Unauthorized { .. }), "{error}");
        assert!(!error.is_retryable());
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains(wrong_key), "the key leaked: {shown}");
    }
    assert_eq!(redmine.api_calls(), 5, "each call stops at the key check, and a 401 is not retried");
    assert!(!format!("{redmine:?}").contains(wrong_key));
    assert_eq!(names.raw.project(&tenant).await, None);
}

#[tokio::test]
async fn unreachable_tracker_is_a_retryable_connect_error_after_retries() {
    // Nothing listens on a port that was free a moment ago.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let redmine =
        Redmine::new(&format!("http://127.0.0.1:{port}"), "key").with_retry_deadline(Duration::from_millis(500));
    let error = redmine.observe("acme").await.unwrap_err();
    assert!(matches!(error, TrackerError::Connect { .. }), "{error}");
    assert!(error.is_retryable());
    // Waits of 50, 100, 200 and 400 ms, each jittered down to half: four
    // attempts fit in 500 ms when the waits are long, five when they are short,
    // three when the machine is slow.
    assert!((3..=5).contains(&redmine.api_calls()), "retried within the deadline: {}", redmine.api_calls());
}
