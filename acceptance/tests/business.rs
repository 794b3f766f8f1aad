//! examples/business through the real terraform CLI: a customer with Redmine,
//! MediaWiki and Tryton, each on its own database and its platform subdomain.
//! The manager signs in to each app over HTTPS with what her welcome email
//! says, writes data through the app's API, the three apps are upgraded to
//! trixie's versions in one apply (migrations run) and her data and login
//! are still there; destroy keeps the data volumes, and nothing else is left.

use atrium_acceptance::{RegistryChoice, TestZone, Workspace, docker, example, https_request, mails_to};
use atrium_engine::test_services::service_variable;
use base64::Engine as _;
use std::path::Path;

const MANAGER: &str = "it@northwind.example";

/// What a welcome email tells the manager.
struct Welcome {
    address: String,
    login: String,
    password: String,
}

impl Welcome {
    fn parse(mail: &str) -> Welcome {
        let field = |name: &str| {
            mail.lines()
                .find_map(|line| line.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name:?} in the welcome email:\n{mail}"))
                .trim()
                .to_owned()
        };
        Welcome { address: field("Address: "), login: field("Login: "), password: field("Password: ") }
    }

    fn hostname(&self) -> &str {
        self.address.trim_start_matches("https://").trim_end_matches('/')
    }
}

/// The welcome email of each app (by its subdomain), exactly one each.
fn welcome_emails(tenant: &str) -> Vec<(String, Welcome)> {
    let mails: Vec<String> =
        mails_to(MANAGER).into_iter().filter(|mail| mail.contains(&format!("-{tenant}."))).collect();
    assert_eq!(mails.len(), 3, "one welcome email per app:\n{}", mails.join("\n----\n"));
    let mut welcomes: Vec<(String, Welcome)> = mails
        .iter()
        .map(|mail| {
            let welcome = Welcome::parse(mail);
            let app = welcome.hostname().split('-').next().unwrap_or_default().to_owned();
            (app, welcome)
        })
        .collect();
    welcomes.sort_by(|a, b| a.0.cmp(&b.0));
    let apps: Vec<&str> = welcomes.iter().map(|(app, _)| app.as_str()).collect();
    assert_eq!(apps, ["erp", "projects", "wiki"]);
    welcomes
}

fn json(status_and_body: (u16, String), what: &str) -> serde_json::Value {
    let (status, body) = status_and_body;
    assert!((200..300).contains(&status), "{what}: HTTP {status}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|error| panic!("{what}: not JSON ({error}): {body}"))
}

/// Redmine's REST API as the manager (basic auth with her login and password).
fn redmine_as(welcome: &Welcome, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let login = format!("{}:{}", welcome.login, welcome.password);
    let mut arguments = vec!["-u", &login, "-X", method, "-H", "Content-Type: application/json"];
    if let Some(body) = body {
        arguments.extend(["--data-binary", body]);
    }
    https_request(welcome.hostname(), path, &arguments)
}

/// MediaWiki's API with a session kept in a cookie jar.
fn wiki_api(welcome: &Welcome, jar: &Path, parameters: &[(&str, &str)]) -> serde_json::Value {
    let jar = jar.to_str().unwrap();
    let mut arguments =
        vec!["-b", jar, "-c", jar, "--data-urlencode", "format=json", "--data-urlencode", "formatversion=2"];
    let pairs: Vec<String> = parameters.iter().map(|(name, value)| format!("{name}={value}")).collect();
    for pair in &pairs {
        arguments.extend(["--data-urlencode", pair]);
    }
    json(https_request(welcome.hostname(), "/api.php", &arguments), "MediaWiki API")
}

fn wiki_token(welcome: &Welcome, jar: &Path, kind: &str) -> String {
    let answer = wiki_api(welcome, jar, &[("action", "query"), ("meta", "tokens"), ("type", kind)]);
    answer["query"]["tokens"][format!("{kind}token")]
        .as_str()
        .unwrap_or_else(|| panic!("no {kind} token: {answer}"))
        .to_owned()
}

/// Signs in to the wiki with the manager's login (clientlogin): PASS or FAIL.
fn wiki_log_in(welcome: &Welcome, jar: &Path, password: &str) -> String {
    let token = wiki_token(welcome, jar, "login");
    let answer = wiki_api(
        welcome,
        jar,
        &[
            ("action", "clientlogin"),
            ("username", &welcome.login),
            ("password", password),
            ("logintoken", &token),
            ("loginreturnurl", &welcome.address),
        ],
    );
    answer["clientlogin"]["status"].as_str().unwrap_or_else(|| panic!("no login status: {answer}")).to_owned()
}

/// One call of Tryton's JSON-RPC on the `tryton` database.
fn tryton(welcome: &Welcome, session: Option<&str>, method: &str, params: serde_json::Value) -> serde_json::Value {
    let body = serde_json::json!({"id": 1, "method": method, "params": params}).to_string();
    let authorization = session
        .map(|session| format!("Authorization: Session {}", base64::engine::general_purpose::STANDARD.encode(session)));
    let mut arguments = vec!["-X", "POST", "-H", "Content-Type: application/json", "--data-binary", &body];
    if let Some(authorization) = &authorization {
        arguments.extend(["-H", authorization]);
    }
    let (status, answer) = https_request(welcome.hostname(), "/tryton/", &arguments);
    if status == 401 {
        return serde_json::json!({"error": "401 Unauthorized"});
    }
    json((status, answer), method)
}

/// Signs in to Tryton: the session, or Tryton's answer.
fn tryton_log_in(welcome: &Welcome, password: &str) -> Result<String, serde_json::Value> {
    let answer =
        tryton(welcome, None, "common.db.login", serde_json::json!([welcome.login, {"password": password}, "en"]));
    match answer["result"].as_array().map(Vec::as_slice) {
        Some([user, key]) => Ok(format!("{}:{user}:{}", welcome.login, key.as_str().unwrap_or_default())),
        _ => Err(answer),
    }
}

fn tryton_parties(welcome: &Welcome, session: &str) -> usize {
    let search = serde_json::json!([[["name", "=", "Northwind's first customer"]], 0, null, null, ["name"], {}]);
    let parties = tryton(welcome, Some(session), "model.party.party.search_read", search);
    parties["result"].as_array().map(Vec::len).unwrap_or_else(|| panic!("no party list: {parties}"))
}

fn redmine_subjects(welcome: &Welcome, tenant: &str) -> Vec<String> {
    let issues = json(redmine_as(welcome, "GET", &format!("/issues.json?project_id={tenant}"), None), "issues");
    let issues = issues["issues"].as_array().unwrap_or_else(|| panic!("no issues: {issues}")).clone();
    issues.iter().map(|issue| issue["subject"].as_str().unwrap_or_default().to_owned()).collect()
}

fn wiki_page(welcome: &Welcome, jar: &Path) -> String {
    let answer = wiki_api(
        welcome,
        jar,
        &[
            ("action", "query"),
            ("prop", "revisions"),
            ("rvprop", "content"),
            ("rvslots", "main"),
            ("titles", "Opening hours"),
        ],
    );
    answer["query"]["pages"][0]["revisions"][0]["slots"]["main"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no page: {answer}"))
        .to_owned()
}

fn variables(tenant: &str, zone: &str, versions: (&str, &str, &str)) -> String {
    let https_port = service_variable("ATRIUM_TEST_CADDY_HTTPS_PORT");
    format!(
        "docker_host = \"{}\"\ningress_admin_url = \"{}\"\ningress_https_address = \"127.0.0.1:{https_port}\"\n\
         dns_api_url = \"{}\"\ndns_resolver = \"{}\"\nacme_directory_url = \"{}\"\nacme_trusted_roots_file = \"{}\"\n\
         smtp_url = \"{}\"\nplatform_zone = \"{zone}\"\ntenant_name = \"{tenant}\"\n\
         versions = {{ redmine = \"{}\", mediawiki = \"{}\", tryton = \"{}\" }}\n",
        service_variable("ATRIUM_TEST_DOCKER_HOST"),
        service_variable("ATRIUM_TEST_CADDY_ADMIN_URL"),
        service_variable("ATRIUM_TEST_PDNS_URL"),
        service_variable("ATRIUM_TEST_PDNS_DNS_ADDRESS"),
        service_variable("ATRIUM_TEST_ACME_DIRECTORY"),
        service_variable("ATRIUM_TEST_ACME_CA_FILE"),
        service_variable("ATRIUM_TEST_SMTP_URL"),
        versions.0,
        versions.1,
        versions.2,
    )
}

fn tenant_objects(what: &[&str], tenant: &str) -> Vec<String> {
    let filter = format!("label=atrium.tenant={tenant}");
    let mut arguments = what.to_vec();
    arguments.extend(["-q", "--filter", &filter]);
    docker(&arguments).lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_business_gets_redmine_mediawiki_and_tryton_signs_in_over_https_and_keeps_its_data_through_upgrades() {
    let id = std::process::id();
    let tenant = format!("nw{id}");
    let zone = TestZone::create(&format!("biz{id}.atrium.test"));
    let workspace = Workspace::new("business", RegistryChoice::Sqlite).await;
    // The example as written; the services' addresses as a user passes them.
    let main = example("business/main.tf");
    workspace.write("main.tf", &main);
    workspace.write("terraform.tfvars", &variables(&tenant, &zone.name, ("5.0", "1.39", "6.0")));

    let applied = workspace.apply();
    assert!(applied.stdout.contains("7 added"), "{}", applied.stdout);
    workspace.assert_plan_empty("after creating the three apps");
    // None of the three has a user limit of its own: each counts its people
    // for the quota, the manager alone (not its root account).
    for name in ["projects", "wiki", "erp"] {
        let address = format!("atrium_app_instance.app[\"{name}\"]");
        assert_eq!(workspace.state_attribute(&address, "users_in_use"), 1, "{address}");
    }
    // The ERP's own backup schedule reached its backup container; the others keep the tier's.
    for (name, every) in [("erp", "every 3600 s"), ("wiki", "every 21600 s")] {
        let container = format!("atrium-{tenant}-{name}-backup");
        let logs = docker(&["logs", &container]);
        assert!(logs.contains(every), "{container}: {logs}");
    }
    let welcomes = welcome_emails(&tenant);
    let [(_, erp), (_, projects), (_, wiki)] = welcomes.as_slice() else { unreachable!() };
    let state = workspace.read("terraform.tfstate");
    for (_, welcome) in &welcomes {
        assert!(!state.contains(&welcome.password), "a password is in state");
        assert!(welcome.address.starts_with("https://"), "{}", welcome.address);
    }

    // Redmine: she is a member of her company's project, not the administrator, and files an issue.
    assert_eq!(projects.login, MANAGER);
    let me = json(redmine_as(projects, "GET", "/users/current.json", None), "Redmine's current user");
    assert_eq!(me["user"]["login"], MANAGER);
    assert_ne!(me["user"]["admin"], true, "{me}");
    let wrong =
        Welcome { address: projects.address.clone(), login: MANAGER.into(), password: "a-wrong-password".into() };
    assert_eq!(redmine_as(&wrong, "GET", "/users/current.json", None).0, 401);
    let issue = format!(r#"{{"issue": {{"project_id": "{tenant}", "subject": "Order 500 chairs"}}}}"#);
    assert_eq!(redmine_as(projects, "POST", "/issues.json", Some(&issue)).0, 201);

    // MediaWiki: she signs in under her name, a bureaucrat, and writes a page.
    let jars = tempfile::tempdir().unwrap();
    let jar = jars.path().join("wiki");
    assert_eq!(wiki.login, "Nancy Davolio");
    assert_eq!(wiki_log_in(wiki, &jars.path().join("wrong"), "a-wrong-password"), "FAIL");
    assert_eq!(wiki_log_in(wiki, &jar, &wiki.password), "PASS");
    let me = wiki_api(wiki, &jar, &[("action", "query"), ("meta", "userinfo"), ("uiprop", "groups")]);
    let groups = me["query"]["userinfo"]["groups"].as_array().unwrap_or_else(|| panic!("no groups: {me}")).clone();
    assert!(groups.contains(&"bureaucrat".into()), "{groups:?}");
    let token = wiki_token(wiki, &jar, "csrf");
    let edit = wiki_api(
        wiki,
        &jar,
        &[("action", "edit"), ("title", "Opening hours"), ("text", "Monday to Friday, 8 to 18."), ("token", &token)],
    );
    assert_eq!(edit["edit"]["result"], "Success", "{edit}");

    // Tryton: she signs in and enters a party.
    assert!(tryton_log_in(erp, "a-wrong-password").is_err());
    let session = tryton_log_in(erp, &erp.password).unwrap_or_else(|answer| panic!("Tryton refused her: {answer}"));
    let created = tryton(
        erp,
        Some(&session),
        "model.party.party.create",
        serde_json::json!([[{"name": "Northwind's first customer"}], {}]),
    );
    assert!(created["result"][0].is_u64(), "{created}");

    // One apply upgrades the three to trixie's versions: in place, migrations run.
    workspace.write("terraform.tfvars", &variables(&tenant, &zone.name, ("6.0", "1.43", "7.0")));
    let plan = workspace.plan(true).expect_code(2, "plan of the upgrades");
    assert!(plan.stdout.contains("0 to add, 3 to change, 0 to destroy"), "{}", plan.stdout);
    workspace.apply();
    workspace.assert_plan_empty("after the upgrades");
    for (name, version) in [("projects", "6.0"), ("wiki", "1.43"), ("erp", "7.0")] {
        let address = format!("atrium_app_instance.app[\"{name}\"]");
        assert_eq!(workspace.state_attribute(&address, "version_deployed"), version);
    }
    assert_eq!(redmine_subjects(projects, &tenant), ["Order 500 chairs"], "the issue survived Redmine's migrations");
    let jar = jars.path().join("wiki-after");
    assert_eq!(wiki_log_in(wiki, &jar, &wiki.password), "PASS");
    assert_eq!(wiki_page(wiki, &jar), "Monday to Friday, 8 to 18.", "the page survived update.php");
    let session = tryton_log_in(erp, &erp.password).unwrap_or_else(|answer| panic!("Tryton 7.0 refused her: {answer}"));
    assert_eq!(tryton_parties(erp, &session), 1, "the party survived trytond-admin --all");
    assert_eq!(
        mails_to(MANAGER).iter().filter(|mail| mail.contains(&format!("-{tenant}."))).count(),
        3,
        "no new emails"
    );

    // Destroy keeps the data (the default), and nothing else.
    workspace.terraform(&["destroy", "-auto-approve", "-input=false"]).expect_code(0, "terraform destroy");
    assert_eq!(tenant_objects(&["ps", "-a"], &tenant), Vec::<String>::new(), "containers left");
    assert_eq!(tenant_objects(&["network", "ls"], &tenant), Vec::<String>::new(), "networks left");
    let kept = tenant_objects(&["volume", "ls"], &tenant);
    for (name, database) in [("projects", "postgres"), ("wiki", "mariadb"), ("erp", "postgres")] {
        let volume = format!("atrium-{tenant}-{name}-{database}");
        assert!(kept.iter().any(|kept| kept.starts_with(&volume)), "{volume} kept: {kept:?}");
    }
    let mut remove = vec!["volume", "rm"];
    remove.extend(kept.iter().map(String::as_str));
    docker(&remove);
}
