//! Integration tests: app instances deployed for real on the Docker engine
//! that `scripts/services.sh` starts, with the locally built `hello` app.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use atrium_engine::apply::app_instance::{AppApplyError, AppContext};
use atrium_engine::apply::backups::BackupError;
use atrium_engine::apply::kept::{KeptData, KeptError};
use atrium_engine::apply::restore_test::SCRATCH_SUFFIX;
use atrium_engine::backends::Runtime;
use atrium_engine::backends::targets::Targets;
use atrium_engine::catalog::Catalog;
use atrium_engine::model::app_instance::InstanceHealth;
use atrium_engine::model::app_instance::{
    AppInstanceId, AppInstanceSpec, AppRead, AppReadWanted, BackupStatus, LatestBackupRead, UsersInUseRead,
};
use atrium_engine::model::backup::BackupSettings;
use atrium_engine::observe::AppObservations;
use atrium_engine::plan::app_instance::AppDecision;
use atrium_engine::registry::Registry;
use atrium_engine::test_services::{
    SecondEngineCleanup, docker_on, hello_spec, hello_with_database, registry_with_tenant, remove_docker_objects,
    service_variable, test_owner, test_target,
};

struct Fixture {
    _directory: tempfile::TempDir,
    observations: AppObservations,
    registry: Registry,
    catalog: Catalog,
    targets: Targets,
    tenant: String,
}

/// Whatever a test leaves of its tenant on the engine (containers with their
/// restart policy, networks, volumes) is removed when its fixture goes, even
/// when the test panicked: a real app left running loads every later test.
impl Drop for Fixture {
    fn drop(&mut self) {
        remove_docker_objects("ATRIUM_TEST_DOCKER_HOST", &format!("label=atrium.tenant={}", self.tenant));
    }
}

impl Fixture {
    async fn new(short_name: &str) -> Fixture {
        let directory = tempfile::tempdir().unwrap();
        let tenant = format!("{short_name}-{}", std::process::id() % 100_000);
        let registry = registry_with_tenant(directory.path(), &tenant).await;
        let target = test_target("ATRIUM_TEST_DOCKER_HOST");
        let targets = Targets::new(BTreeMap::from([("local".to_owned(), target)]));
        Fixture {
            _directory: directory,
            observations: AppObservations::default(),
            registry,
            catalog: Catalog::built_in(),
            targets,
            tenant,
        }
    }

    fn context(&self, deadline: Duration) -> AppContext<'_> {
        self.context_with(&self.catalog, deadline)
    }

    /// A context whose catalog is `catalog` (an operator's entries).
    fn context_with<'a>(&'a self, catalog: &'a Catalog, deadline: Duration) -> AppContext<'a> {
        atrium_engine::test_services::app_context(&self.registry, &self.observations, catalog, &self.targets, deadline)
    }

    fn spec(&self, version: &str) -> AppInstanceSpec {
        hello_spec(&self.tenant, version)
    }

    async fn runtime(&self) -> std::sync::Arc<dyn Runtime> {
        self.targets.runtime("local").await.unwrap()
    }

    /// Names of this tenant's containers on the engine.
    async fn containers(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .runtime()
            .await
            .list_managed()
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.labels.get("atrium.tenant") == Some(&self.tenant))
            .map(|c| c.name)
            .collect();
        names.sort();
        names
    }
}

fn http_get(port: u16, path: &str) -> String {
    http_get_as(port, path, None)
}

/// A GET with basic auth when `login` is given; returns status line, headers and body.
fn http_get_as(port: u16, path: &str, login: Option<(&str, &str)>) -> String {
    http_request(port, "GET", path, login, None)
}

/// A request with basic auth when `login` is given and a JSON body when
/// `json` is; returns status line, headers and body.
fn http_request(port: u16, method: &str, path: &str, login: Option<(&str, &str)>, json: Option<&str>) -> String {
    use base64::Engine as _;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let authorization = login
        .map(|(user, password)| {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            format!("Authorization: Basic {token}\r\n")
        })
        .unwrap_or_default();
    let body = json
        .map(|json| format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}", json.len()))
        .unwrap_or_else(|| "\r\n".to_owned());
    write!(stream, "{method} {path} HTTP/1.0\r\nHost: localhost\r\n{authorization}{body}").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_upgrade_and_failed_upgrade_rolls_back() {
    let fixture = Fixture::new("upg").await;
    let context = fixture.context(Duration::from_secs(30));

    let first = context.deploy(&fixture.spec("1.0"), None, None).await.unwrap().record;
    assert_eq!(first.generation, 1);
    let port = first.published_port.expect("published port");
    assert!(http_get(port, "/").contains("hello 1.0"));
    assert_eq!(fixture.containers().await, [format!("atrium-{}-web-g1", fixture.tenant)]);

    let upgraded = context.deploy(&fixture.spec("1.1"), None, None).await.unwrap().record;
    assert_eq!((upgraded.generation, upgraded.previous_version.as_deref()), (2, Some("1.0")));
    assert!(http_get(upgraded.published_port.unwrap(), "/").contains("hello 1.1"));
    assert_eq!(fixture.containers().await, [format!("atrium-{}-web-g2", fixture.tenant)], "the old generation is gone");

    // 2.0 never turns healthy: the apply fails with the health output and 1.1 keeps serving.
    let short = fixture.context(Duration::from_secs(12));
    let error = short.deploy(&fixture.spec("2.0"), None, None).await.unwrap_err();
    let AppApplyError::Unhealthy { output, kept, .. } = &error else { panic!("expected Unhealthy, got {error:?}") };
    assert!(kept.contains("1.1 keeps serving"), "{kept}");
    assert!(!output.is_empty());
    assert!(http_get(upgraded.published_port.unwrap(), "/").contains("hello 1.1"));
    let recorded = fixture.registry.get_app_instance(&fixture.spec("1.1").id).await.unwrap().unwrap();
    assert_eq!((recorded.spec.version.as_str(), recorded.generation), ("1.1", 2));
    assert_eq!(
        fixture.containers().await,
        [format!("atrium-{}-web-g2", fixture.tenant)],
        "the failed generation was removed"
    );

    context.destroy(&fixture.spec("1.1").id).await.unwrap();
    assert!(fixture.containers().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_or_changed_containers_show_as_drift_and_deploy_repairs_them() {
    let fixture = Fixture::new("drift").await;
    let context = fixture.context(Duration::from_secs(30));
    let spec = fixture.spec("1.1");
    let record = context.deploy(&spec, None, None).await.unwrap().record;
    let (_, health) = context.observe(&spec.id).await.unwrap().unwrap();
    assert_eq!(health, InstanceHealth::Running);
    let read = context.read_app(&record, AppReadWanted::ALL).await;
    let expected = AppRead {
        latest_backup: LatestBackupRead::Read(BackupStatus::default()),
        users_in_use: UsersInUseRead::Read(None),
    };
    assert_eq!(read, expected, "hello takes no backups, and holds itself to its users");

    let runtime = fixture.runtime().await;
    let name = format!("atrium-{}-web-g{}", fixture.tenant, record.generation);
    runtime.remove_container(&name).await.unwrap();
    let (_, health) = context.observe(&spec.id).await.unwrap().unwrap();
    assert_eq!(health, InstanceHealth::Missing);
    let repaired = context.deploy(&spec, None, None).await.unwrap().record;
    assert_eq!(repaired.generation, record.generation + 1);
    assert_eq!(context.observe(&spec.id).await.unwrap().unwrap().1, InstanceHealth::Running);

    // A leftover container of an unrecorded generation (an interrupted upgrade) is removed by the next deploy.
    let mut stray = spec.clone();
    stray.version = "1.0".into();
    let rendered_stray = atrium_engine::apply::app_instance::render_instance(
        fixture.catalog.get("hello").unwrap(),
        &stray,
        &fixture.registry.get_tenant(&spec.id.tenant_id).await.unwrap().unwrap(),
        "terraform",
        repaired.generation + 1,
        &BTreeMap::new(),
        &repaired.manager_password_hash,
        None,
    )
    .unwrap();
    runtime.ensure_container(rendered_stray.app_container()).await.unwrap();
    assert_eq!(fixture.containers().await.len(), 2);
    let current = context.deploy(&spec, None, None).await.unwrap().record;
    assert_eq!(fixture.containers().await.len(), 1);

    // What the plan decided is what apply does: a change it planned to only
    // record never redeploys, even over a container stopped since the plan
    // (the next plan shows that drift), and a plan that saw another
    // generation is refused rather than applied over it.
    let name = format!("atrium-{}-web-g{}", fixture.tenant, current.generation);
    runtime.stop_container(&name).await.unwrap();
    let mut keep_data = spec.clone();
    keep_data.delete_data_on_destroy = true;
    let stale = AppDecision { redeploy: false, generation: Some(current.generation - 1) };
    let error = context.deploy(&keep_data, None, Some(&stale)).await.unwrap_err();
    assert!(matches!(error, AppApplyError::MovedSincePlan { .. }), "{error}");
    assert!(error.to_string().contains("plan again"), "{error}");
    assert!(!fixture.registry.get_app_instance(&spec.id).await.unwrap().unwrap().spec.delete_data_on_destroy);
    let planned = AppDecision { redeploy: false, generation: Some(current.generation) };
    let recorded = context.deploy(&keep_data, None, Some(&planned)).await.unwrap();
    assert_eq!(recorded.record.generation, current.generation, "no new deployment");
    assert_eq!(recorded.record.deployed_at, current.deployed_at);
    assert!(recorded.record.spec.delete_data_on_destroy);
    assert_eq!(context.observe(&spec.id).await.unwrap().unwrap().1, InstanceHealth::Stopped);
    context.destroy(&spec.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_destroy_and_recreate_unless_deletion_is_asked() {
    let fixture = Fixture::new("data").await;
    let context = fixture.context(Duration::from_secs(30));
    let mut spec = fixture.spec("1.1");
    let record = context.deploy(&spec, None, None).await.unwrap().record;
    let runtime = fixture.runtime().await;
    let container = format!("atrium-{}-web-g{}", fixture.tenant, record.generation);
    let command = ["/bin/sh", "-c", "echo kept-data > /www/data/note.txt"].map(String::from);
    runtime.exec(&container, &command).await.unwrap();
    assert!(http_get(record.published_port.unwrap(), "/data/note.txt").contains("kept-data"));

    context.destroy(&spec.id).await.unwrap();
    // The data left behind is listed under the instance's handle, and only
    // its owner may purge it.
    let kept = kept_of(&context, &spec.id).await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    let prefix = format!("atrium-{}-web-", fixture.tenant);
    assert!(!kept[0].volumes.is_empty() && kept[0].volumes.iter().all(|v| v.starts_with(&prefix)), "{kept:?}");
    assert_eq!((kept[0].target.as_str(), kept[0].owner.as_str()), ("local", test_owner().as_str()));
    let another_team = atrium_engine::model::ownership::Owner::atrium("another-team");
    let other = AppContext { owner: &another_team, ..fixture.context(Duration::from_secs(30)) };
    let refused = other.purge_kept(&spec.id).await.unwrap_err();
    assert!(matches!(refused, KeptError::OtherOwner { .. }), "{refused}");
    let again = context.deploy(&spec, None, None).await.unwrap().record;
    assert!(http_get(again.published_port.unwrap(), "/data/note.txt").contains("kept-data"), "data survived destroy");
    // Taken over by the new instance: in use, not kept.
    assert!(kept_of(&context, &spec.id).await.is_empty());
    let refused = context.purge_kept(&spec.id).await.unwrap_err();
    assert!(matches!(refused, KeptError::InUse { .. }), "{refused}");

    spec.delete_data_on_destroy = true;
    context.deploy(&spec, None, None).await.unwrap();
    context.destroy(&spec.id).await.unwrap();
    let fresh = context.deploy(&fixture.spec("1.1"), None, None).await.unwrap().record;
    assert!(http_get(fresh.published_port.unwrap(), "/data/note.txt").contains("404"), "data was deleted on request");
    context.destroy(&spec.id).await.unwrap();
    // Purged: the volumes are gone from the target, and there is nothing left to purge.
    let purged = context.purge_kept(&spec.id).await.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(purged.kept.len(), 1, "{purged:?}");
    let volumes = runtime.list_managed_volumes().await.unwrap();
    assert!(!volumes.iter().any(|v| v.name.starts_with(&prefix)), "{volumes:?}");
    assert!(kept_of(&context, &spec.id).await.is_empty());
    let refused = context.purge_kept(&spec.id).await.unwrap_err();
    assert!(matches!(refused, KeptError::NotFound { .. }), "{refused}");
}

/// The data `id` left on the targets, as the kept-data listing says.
async fn kept_of(context: &AppContext<'_>, id: &AppInstanceId) -> Vec<KeptData> {
    let listing = context.kept_data().await.unwrap_or_else(|error| panic!("{error}"));
    assert!(listing.unreachable.is_empty(), "{:?}", listing.unreachable);
    listing.kept.into_iter().filter(|kept| kept.instance == *id).collect()
}

/// The status code of a response from [`http_get_as`].
fn status(response: &str) -> &str {
    response.split_whitespace().nth(1).unwrap_or("none")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_password_guards_the_manager_area_and_rotates() {
    use atrium_engine::model::password::Password;
    let fixture = Fixture::new("login").await;
    let context = fixture.context(Duration::from_secs(30));
    let mut spec = fixture.spec("1.1");
    spec.admin_password = Some(Password::new("first-password-1"));
    spec.files = BTreeMap::from([("/www/extra/notice.html".to_owned(), "customized by the operator\n".to_owned())]);
    let deployment = context.deploy(&spec, None, None).await.unwrap();
    assert!(deployment.new_manager_password.is_some_and(|p| p.expose() == "first-password-1"));
    let record = deployment.record;
    assert!(record.manager_password_hash.starts_with("$5$"), "only a hash is recorded");
    let stored = fixture.registry.get_app_instance(&spec.id).await.unwrap().unwrap();
    assert_eq!(stored.spec.admin_password, None, "the clear password is never recorded");
    let port = record.published_port.unwrap();
    let manager = "m@test.example";
    assert_eq!(status(&http_get_as(port, "/manage/", None)), "401");
    assert_eq!(status(&http_get_as(port, "/manage/", Some((manager, "wrong-password")))), "401");
    let page = http_get_as(port, "/manage/", Some((manager, "first-password-1")));
    assert_eq!(status(&page), "200", "{page}");
    assert!(page.contains("Manager area"), "{page}");
    assert!(http_get(port, "/extra/notice.html").contains("customized by the operator"));

    // The same password again deploys nothing new.
    let same = context.deploy(&spec, None, None).await.unwrap();
    assert_eq!((same.record.generation, same.new_manager_password), (record.generation, None));

    // A new password is detected against the hash and set in the running
    // container (its login file rewritten, busybox httpd told to read it again).
    spec.admin_password = Some(Password::new("second-password-2"));
    let changed = context.deploy(&spec, None, None).await.unwrap().record;
    assert_eq!(changed.generation, record.generation, "a new password is not a new container");
    let port = changed.published_port.unwrap();
    assert_eq!(status(&http_get_as(port, "/manage/", Some((manager, "first-password-1")))), "401");
    assert_eq!(status(&http_get_as(port, "/manage/", Some((manager, "second-password-2")))), "200");

    // Without a password, bumping password_version generates a new one.
    spec.admin_password = None;
    spec.password_version = 1;
    let rotated = context.deploy(&spec, None, None).await.unwrap();
    assert_eq!(rotated.record.generation, record.generation);
    let generated = rotated.new_manager_password.expect("a generated password");
    let port = rotated.record.published_port.unwrap();
    assert_eq!(status(&http_get_as(port, "/manage/", Some((manager, "second-password-2")))), "401");
    assert_eq!(status(&http_get_as(port, "/manage/", Some((manager, generated.expose())))), "200");

    // A changed configuration file is written by a new generation.
    spec.files.insert("/www/extra/notice.html".to_owned(), "second notice\n".to_owned());
    let refiled = context.deploy(&spec, None, None).await.unwrap().record;
    assert_eq!(refiled.generation, rotated.record.generation + 1);
    assert!(http_get(refiled.published_port.unwrap(), "/extra/notice.html").contains("second notice"));
    assert_eq!(
        status(&http_get_as(refiled.published_port.unwrap(), "/manage/", Some((manager, generated.expose())))),
        "200"
    );
    context.destroy(&spec.id).await.unwrap();
}

/// The emails the SMTP sink holds for `recipient`, as raw text (a sink that
/// cannot be read fails the test).
fn mails_to(recipient: &str) -> Vec<String> {
    let directory = std::path::PathBuf::from(service_variable("ATRIUM_TEST_SMTP_MAILDIR")).join("new");
    let mut mails: Vec<String> = std::fs::read_dir(&directory)
        .unwrap_or_else(|e| panic!("read {}: {e}", directory.display()))
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    mails.retain(|mail| mail.contains(&format!("X-RcptTo: {recipient}")));
    mails
}

fn password_in(mail: &str) -> String {
    mail.lines()
        .find_map(|line| line.strip_prefix("Password: "))
        .expect("the welcome email has a password")
        .trim()
        .to_owned()
}

/// A live plain-HTTP domain of `id`, as the domain's apply records it (the
/// welcome email only reads the registry; the routes are the domain tests').
async fn live_domain(registry: &atrium_engine::registry::Registry, id: &AppInstanceId, hostname: &str) {
    use atrium_engine::model::domain::{DomainKind, DomainRecord, DomainSpec, DomainStatus, Hostname, TlsMode};
    let record = DomainRecord {
        spec: DomainSpec {
            hostname: Hostname::parse(hostname).unwrap(),
            app_instance_id: id.clone(),
            tls: TlsMode::None,
        },
        kind: DomainKind::Custom,
        target: "local".into(),
        status: DomainStatus::Active,
        certificate_expires_at: None,
        owner: "terraform:engine-tests".into(),
        created_at: "2026-12-01T00:00:00Z".into(),
    };
    registry.put_domain(&record).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn welcome_email_waits_for_a_domain_arrives_once_and_a_failed_send_is_retried_with_a_new_password() {
    use atrium_engine::backends::mailer::SmtpMailer;
    use atrium_engine::model::app_instance::WelcomeState;
    let fixture = Fixture::new("welcome").await;
    let tenant_id = atrium_engine::model::TenantId::parse(&fixture.tenant).unwrap();
    let mut tenant = fixture.registry.get_tenant(&tenant_id).await.unwrap().unwrap().spec;
    let manager = format!("manager-{}@welcome.example", fixture.tenant);
    tenant.manager.email = manager.clone();
    tenant.welcome_email = true;
    fixture.registry.update_tenant(&tenant).await.unwrap();
    let mailer =
        SmtpMailer::new(&service_variable("ATRIUM_TEST_SMTP_URL"), "Atrium <noreply@atrium.test>", None).unwrap();
    let mut context = fixture.context(Duration::from_secs(30));
    context.mailer = Some(&mailer);

    // No domain yet: no address the customer can reach, so the email waits.
    let spec = fixture.spec("1.1");
    let deployment = context.deploy(&spec, None, None).await.unwrap();
    assert_eq!((deployment.record.welcome, deployment.welcome_warning), (WelcomeState::WaitingForDomain, None));
    assert!(mails_to(&manager).is_empty(), "nothing is sent without a domain");
    // Its first domain goes live: one email, naming the domain, whose password logs in.
    let hostname = format!("web.{}.example", fixture.tenant);
    live_domain(&fixture.registry, &spec.id, &hostname).await;
    assert_eq!(context.deliver_waiting_welcome(&spec.id).await.unwrap(), None);
    let mails = mails_to(&manager);
    assert_eq!(mails.len(), 1, "exactly one welcome email");
    assert!(mails[0].contains("Subject: Your Hello for Test is ready"), "{}", mails[0]);
    assert!(mails[0].contains(&format!("http://{hostname}/manage/")), "{}", mails[0]);
    assert!(!mails[0].contains("http://127.0.0.1"), "never an address the customer cannot reach: {}", mails[0]);
    let record = fixture.registry.get_app_instance(&spec.id).await.unwrap().unwrap();
    assert_eq!((record.welcome, record.generation), (WelcomeState::Sent, deployment.record.generation));
    let port = record.published_port.unwrap();
    let password = password_in(&mails[0]);
    assert_eq!(status(&http_get_as(port, "/manage/", Some((&manager, &password)))), "200");
    // Later deployments and deliveries send nothing.
    context.deploy(&fixture.spec("1.0"), None, None).await.unwrap();
    assert_eq!(context.deliver_waiting_welcome(&spec.id).await.unwrap(), None);
    assert_eq!(mails_to(&manager).len(), 1, "never re-sent by later applies");

    // A second instance, its domain live, whose send fails: deployed, warned,
    // pending; the next deploy sends with a new password, in the same container.
    let broken = SmtpMailer::new("smtp://127.0.0.1:9", "Atrium <noreply@atrium.test>", None).unwrap();
    context.mailer = Some(&broken);
    let mut second = fixture.spec("1.1");
    second.id.name = "shop".into();
    live_domain(&fixture.registry, &second.id, &format!("shop.{}.example", fixture.tenant)).await;
    let deployment = context.deploy(&second, None, None).await.unwrap();
    assert_eq!(deployment.record.welcome, WelcomeState::Pending);
    assert!(
        deployment.welcome_warning.as_deref().is_some_and(|w| w.contains(&manager) && w.contains("smtp://127.0.0.1:9")),
        "{:?}",
        deployment.welcome_warning
    );
    context.mailer = Some(&mailer);
    let retried = context.deploy(&second, None, None).await.unwrap();
    assert_eq!(retried.record.welcome, WelcomeState::Sent);
    assert_eq!(retried.record.generation, deployment.record.generation, "a new password is not a new container");
    let mails = mails_to(&manager);
    assert_eq!(mails.len(), 2);
    let mail = mails.iter().find(|mail| mail.contains("shop.")).expect("the second welcome email");
    let port = retried.record.published_port.unwrap();
    assert_eq!(status(&http_get_as(port, "/manage/", Some((&manager, &password_in(mail))))), "200");

    // welcome_email = false sends nothing.
    tenant.welcome_email = false;
    fixture.registry.update_tenant(&tenant).await.unwrap();
    let mut third = fixture.spec("1.1");
    third.id.name = "quiet".into();
    assert_eq!(context.deploy(&third, None, None).await.unwrap().record.welcome, WelcomeState::Off);
    assert_eq!(mails_to(&manager).len(), 2);
    for id in [&spec.id, &second.id] {
        fixture
            .registry
            .delete_domain(
                &atrium_engine::model::domain::Hostname::parse(&format!("{}.{}.example", id.name, fixture.tenant))
                    .unwrap(),
            )
            .await
            .unwrap();
    }
    for id in [spec.id, second.id, third.id] {
        context.destroy(&id).await.unwrap();
    }
}

/// An operator's catalog entry: hello, with the manager's account made by a
/// one-shot command (as the real apps do) that ends with `exit_code`, and the
/// user limit set by a command (as Nextcloud's is).
fn command_entry(name: &str, exit_code: u8) -> String {
    let hello = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/catalog/hello.hcl")).unwrap();
    let start = hello.find("manager_account = {").unwrap();
    let end = hello[start..].find("\n}\n").unwrap() + start + 3;
    let manager = format!(
        r#"manager_account = {{
  method = "command"
  role   = "manager"
  command = ["/bin/sh", "-c", "echo \"$1\" > /www/data/manager.txt; echo \"set $1\"; exit {exit_code}", "atrium-manager-account", "{{manager.email}} {{manager.password}}"]
  reload = ["/bin/sh", "-c", "kill -HUP 1"]
}}
"#
    );
    let user_limit = "user_limit = {\n  method   = \"environment\"\n  variable = \"HELLO_MAX_USERS\"\n}";
    let by_command = "user_limit = {\n  method  = \"command\"\n  command = [\"/bin/sh\", \"-c\", \"echo {users} > /www/data/limit.txt\"]\n}";
    assert!(hello.contains(user_limit), "hello's user limit changed: update this test");
    format!("{}{manager}{}", &hello[..start], &hello[end..])
        .replacen("name        = \"hello\"", &format!("name        = \"{name}\""), 1)
        .replacen(user_limit, by_command, 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_command_gets_the_new_password_once_and_a_failing_one_is_reported_without_it() {
    let mut fixture = Fixture::new("mgrcmd").await;
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(directory.path().join("hello-command.hcl"), command_entry("hello-command", 0)).unwrap();
    std::fs::write(directory.path().join("hello-failing.hcl"), command_entry("hello-failing", 3)).unwrap();
    fixture.catalog = Catalog::with_directory(directory.path()).unwrap();
    let context = fixture.context(Duration::from_secs(30));

    let mut spec = fixture.spec("1.1");
    spec.app = "hello-command".into();
    let deployment = context.deploy(&spec, None, None).await.unwrap();
    let password = deployment.new_manager_password.expect("a generated password");
    let port = deployment.record.published_port.unwrap();
    let written = http_get(port, "/data/manager.txt");
    assert!(written.contains(&format!("m@test.example {}", password.expose())), "{written}");
    assert!(http_get(port, "/data/limit.txt").ends_with("\n5\n"), "the user limit is set inside the app");
    // Nothing new to set: the command does not run again.
    let runtime = fixture.runtime().await;
    let container = format!("atrium-{}-web-g{}", fixture.tenant, deployment.record.generation);
    let emptied =
        runtime.exec(&container, &["/bin/sh", "-c", ": > /www/data/manager.txt"].map(String::from)).await.unwrap();
    assert_eq!(emptied.exit_code, Some(0), "{}", emptied.output);
    context.deploy(&spec, None, None).await.unwrap();
    assert!(!http_get(port, "/data/manager.txt").contains("m@test.example"), "the command ran only once");
    // More users: the limit inside the app follows.
    spec.users = 8;
    let more = context.deploy(&spec, None, None).await.unwrap().record;
    assert!(http_get(more.published_port.unwrap(), "/data/limit.txt").ends_with("\n8\n"));

    let mut failing = fixture.spec("1.1");
    failing.id.name = "broken".into();
    failing.app = "hello-failing".into();
    let error = context.deploy(&failing, None, None).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, AppApplyError::ManagerAccount { exit_code: Some(3), .. }), "{message}");
    assert!(message.contains("set m@test.example <password>"), "the output is shown, the password is not: {message}");
    let record = fixture.registry.get_app_instance(&failing.id).await.unwrap().unwrap();
    assert_eq!(record.welcome, atrium_engine::model::app_instance::WelcomeState::Pending, "the next apply tries again");
    context.destroy(&failing.id).await.unwrap();
    context.destroy(&spec.id).await.unwrap();
}

/// The app is told its live addresses after a domain goes live and again in
/// every new container; a failing command is an error with its exit code and
/// output, and never a half-made deployment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_is_told_its_address_in_every_container_and_a_failing_command_is_reported() {
    let mut fixture = Fixture::new("pubaddr").await;
    let hello = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/catalog/hello.hcl")).unwrap();
    let start = hello.find("public_address = {").expect("hello has a public_address command");
    let failing = format!(
        "{}public_address = {{\n  command = [\"/bin/sh\", \"-c\", \"echo cannot set \\\"$1\\\"; exit 4\", \"x\", \"{{address}}\"]\n}}\n",
        &hello[..start]
    )
    .replacen("name        = \"hello\"", "name        = \"hello-failing\"", 1);
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(directory.path().join("hello-failing.hcl"), failing).unwrap();
    fixture.catalog = Catalog::with_directory(directory.path()).unwrap();
    let context = fixture.context(Duration::from_secs(30));

    // No live domain yet: nothing to tell, and nothing written.
    let spec = fixture.spec("1.0");
    let first = context.deploy(&spec, None, None).await.unwrap().record;
    assert_eq!(status(&http_get(first.published_port.unwrap(), "/address")), "404");
    live_domain(&fixture.registry, &spec.id, &format!("{}.example", fixture.tenant)).await;
    context.announce_address_of(&spec.id).await.unwrap();
    let address = format!("http://{}.example", fixture.tenant);
    assert!(http_get(first.published_port.unwrap(), "/address").ends_with(&format!("\n{address}\n")));
    // An upgrade starts a new container, which is told again.
    let upgraded = context.deploy(&fixture.spec("1.1"), None, None).await.unwrap().record;
    assert_ne!(upgraded.generation, first.generation);
    assert!(http_get(upgraded.published_port.unwrap(), "/address").ends_with(&format!("\n{address}\n")));

    let mut broken = fixture.spec("1.1");
    broken.id.name = "broken".into();
    broken.app = "hello-failing".into();
    context.deploy(&broken, None, None).await.unwrap();
    live_domain(&fixture.registry, &broken.id, &format!("broken-{}.example", fixture.tenant)).await;
    let error = context.announce_address_of(&broken.id).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, AppApplyError::PublicAddress { exit_code: Some(4), .. }), "{message}");
    assert!(message.contains("cannot set http://broken-"), "the command's output is shown: {message}");
    // A redeployment runs it too, and fails the same way rather than passing silently.
    broken.users = 6;
    let error = context.deploy(&broken, None, None).await.unwrap_err();
    assert!(matches!(error, AppApplyError::PublicAddress { exit_code: Some(4), .. }), "{error}");
    for domain in [format!("{}.example", fixture.tenant), format!("broken-{}.example", fixture.tenant)] {
        fixture.registry.delete_domain(&atrium_engine::model::domain::Hostname::parse(&domain).unwrap()).await.unwrap();
    }
    context.destroy(&broken.id).await.unwrap();
    context.destroy(&spec.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_quota_and_unmanaged_name_clashes_are_refused() {
    let fixture = Fixture::new("guard").await;
    let context = fixture.context(Duration::from_secs(30));
    let mut spec = fixture.spec("1.1");
    spec.users = 11;
    assert!(matches!(context.deploy(&spec, None, None).await.unwrap_err(), AppApplyError::OverQuota { quota: 10, .. }));
    assert!(fixture.containers().await.is_empty());

    // Someone else's container under the name Atrium would use: refused and left alone.
    let host = service_variable("ATRIUM_TEST_DOCKER_HOST");
    let name = format!("atrium-{}-web-g1", fixture.tenant);
    let docker = |arguments: &[&str]| {
        std::process::Command::new("docker").arg("-H").arg(&host).args(arguments).output().unwrap()
    };
    assert!(docker(&["create", "--name", &name, "atrium/hello:1.1"]).status.success());
    let error = context.deploy(&fixture.spec("1.1"), None, None).await.unwrap_err();
    assert!(
        error.to_string().contains("not managed by Atrium") || format!("{error:?}").contains("NotManaged"),
        "{error:?}"
    );
    assert!(docker(&["inspect", &name]).status.success(), "the foreign container is untouched");
    assert!(docker(&["rm", "-f", &name]).status.success());
    assert!(fixture.registry.get_app_instance(&spec.id).await.unwrap().is_none(), "nothing recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_of_50_instances_costs_one_docker_list_call_plus_their_inspections() {
    let fixture = Fixture::new("batch").await;
    let context = fixture.context(Duration::from_secs(60));
    let specs: Vec<AppInstanceSpec> = (0..50)
        .map(|index| {
            let mut spec = fixture.spec("1.1");
            spec.id.name = format!("app-{index:02}");
            spec.users = 1;
            spec.delete_data_on_destroy = true;
            spec
        })
        .collect();
    // Deploy ten at a time, as Terraform's default parallelism would.
    for chunk in specs.chunks(10) {
        let deployments = chunk.iter().map(|spec| context.deploy(spec, None, None));
        for result in futures_util::future::join_all(deployments).await {
            result.unwrap();
        }
    }
    let runtime = fixture.runtime().await;
    let fresh = AppObservations::default();
    let (_, cancelled) = tokio::sync::watch::channel(false);
    let reader = AppContext { observations: &fresh, cancelled, ..fixture.context(Duration::from_secs(60)) };
    let before = runtime.api_calls();
    let reads = specs.iter().map(|spec| reader.observe(&spec.id));
    for result in futures_util::future::join_all(reads).await {
        assert_eq!(result.unwrap().unwrap().1, InstanceHealth::Running);
    }
    let calls = runtime.api_calls() - before;
    eprintln!("refresh of 50 instances: {calls} Docker API calls");
    assert_eq!(calls, 51, "one list call plus one inspection per instance");
    for spec in &specs {
        context.destroy(&spec.id).await.unwrap();
    }
    assert!(fixture.containers().await.is_empty());
}

/// Asks, from inside `container`, whether `url` answers.
async fn reaches(runtime: &dyn Runtime, container: &str, url: &str) -> bool {
    let probe = format!("timeout 3 wget -q -O /dev/null {url} && echo REACHED || echo BLOCKED");
    let output = runtime.exec(container, &["/bin/sh".to_owned(), "-c".to_owned(), probe]).await.unwrap().output;
    assert!(output.contains("REACHED") || output.contains("BLOCKED"), "probe failed to run: {output}");
    output.contains("REACHED")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_containers_cannot_reach_another_tenants_by_name_or_address() {
    let first = Fixture::new("iso-a").await;
    let second = Fixture::new("iso-b").await;
    let (first_context, second_context) =
        (first.context(Duration::from_secs(30)), second.context(Duration::from_secs(30)));
    let a = first_context.deploy(&first.spec("1.1"), None, None).await.unwrap().record;
    let b = second_context.deploy(&second.spec("1.1"), None, None).await.unwrap().record;
    let runtime = first.runtime().await;
    let a_container = format!("atrium-{}-web-g{}", first.tenant, a.generation);
    let b_container = format!("atrium-{}-web-g{}", second.tenant, b.generation);
    let host = service_variable("ATRIUM_TEST_DOCKER_HOST");
    let address_of = |name: &str| {
        let output = std::process::Command::new("docker")
            .args(["-H", &host, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let (a_address, b_address) = (address_of(&a_container), address_of(&b_container));
    assert!(!a_address.is_empty() && !b_address.is_empty());

    // Within a tenant, the instance's alias and address answer (so the probe itself works).
    assert!(reaches(runtime.as_ref(), &a_container, &format!("http://atrium-{}-web/", first.tenant)).await);
    assert!(reaches(runtime.as_ref(), &a_container, &format!("http://{a_address}/")).await);
    // Across tenants, neither the name nor the address answers, in either direction.
    assert!(!reaches(runtime.as_ref(), &a_container, &format!("http://atrium-{}-web/", second.tenant)).await);
    assert!(!reaches(runtime.as_ref(), &a_container, &format!("http://{b_address}/")).await);
    assert!(!reaches(runtime.as_ref(), &b_container, &format!("http://{a_address}/")).await);

    first_context.destroy(&first.spec("1.1").id).await.unwrap();
    second_context.destroy(&second.spec("1.1").id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_endpoints_with_tls_require_the_client_certificate() {
    use atrium_engine::backends::docker::DockerRuntime;
    let endpoint = service_variable("ATRIUM_TEST_DOCKER_HOST_2_TLS");
    let certificates = service_variable("ATRIUM_TEST_DOCKER_HOST_2_CERT_PATH");
    let runtime =
        DockerRuntime::connect("cloud", &endpoint, Some(&certificates)).await.expect("TLS with the client certificate");
    runtime.list_managed().await.expect("list over TLS");

    // Without certificates the engine refuses the connection.
    let plain = DockerRuntime::connect("cloud", &endpoint, None).await;
    assert!(plain.is_err(), "a plain connection to the TLS endpoint was accepted");
    // With a CA that did not sign the server certificate, the client refuses the engine.
    let strangers = tempfile::tempdir().unwrap();
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(std::path::Path::new(&certificates).join(file), strangers.path().join(file)).unwrap();
    }
    std::fs::copy(std::path::Path::new(&certificates).join("cert.pem"), strangers.path().join("ca.pem")).unwrap();
    let wrong_ca = DockerRuntime::connect("cloud", &endpoint, Some(strangers.path().to_str().unwrap())).await;
    assert!(wrong_ca.is_err(), "an engine whose certificate the CA did not sign was trusted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_whose_docker_engine_is_down_fails_clearly_and_records_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let tenant = format!("down-{}", std::process::id() % 100_000);
    let registry = registry_with_tenant(directory.path(), &tenant).await;
    let mut target = test_target("ATRIUM_TEST_DOCKER_HOST");
    target.docker_host = format!("unix://{}/no-such-docker.sock", directory.path().display());
    let targets = Targets::new(BTreeMap::from([("local".to_owned(), target)]));
    let (observations, catalog) = (AppObservations::default(), Catalog::built_in());
    let (_, cancelled) = tokio::sync::watch::channel(false);
    let context = AppContext {
        registry: &registry,
        observations: &observations,
        catalog: &catalog,
        targets: &targets,
        mailer: None,
        platform_dns: None,
        owner: atrium_engine::test_services::test_owner(),
        deadline: Duration::from_secs(5),
        cancelled,
    };
    let spec = hello_spec(&tenant, "1.1");
    let error = context.deploy(&spec, None, None).await.unwrap_err();
    let text = atrium_engine_error_chain(&error);
    assert!(text.contains("cannot reach the Docker engine of target local"), "{text}");
    assert!(text.contains("no-such-docker.sock"), "{text}");
    assert!(error.is_retryable(), "a down engine is worth retrying");
    assert!(registry.get_app_instance(&spec.id).await.unwrap().is_none(), "nothing recorded");
}

fn atrium_engine_error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_container_cannot_raise_its_privileges() {
    let fixture = Fixture::new("harden").await;
    let context = fixture.context(Duration::from_secs(30));
    let record = context.deploy(&fixture.spec("1.1"), None, None).await.unwrap().record;
    let container = format!("atrium-{}-web-g{}", fixture.tenant, record.generation);
    let runtime = fixture.runtime().await;
    let status = runtime.exec(&container, &["/bin/cat", "/proc/self/status"].map(String::from)).await.unwrap();
    let field = |name: &str| {
        status
            .output
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("{name} missing from {}", status.output))
            .trim()
            .to_owned()
    };
    assert_eq!(field("NoNewPrivs"), "1", "no process can gain privileges");
    // Only NET_BIND_SERVICE (bit 10) is left, even for root, and it cannot come back.
    let bounding = u64::from_str_radix(&field("CapBnd"), 16).unwrap();
    assert_eq!(bounding, 1 << 10, "capabilities left: {bounding:#x}");
    assert_eq!(u64::from_str_radix(&field("CapEff"), 16).unwrap() & !(1 << 10), 0);
    // The pids limit and rotated logs are set, and the app still serves and logs in.
    let host = service_variable("ATRIUM_TEST_DOCKER_HOST");
    let inspected = std::process::Command::new("docker")
        .args([
            "-H",
            &host,
            "inspect",
            "-f",
            "{{.HostConfig.PidsLimit}} {{json .HostConfig.LogConfig.Config}}",
            &container,
        ])
        .output()
        .unwrap();
    assert!(inspected.status.success(), "{}", String::from_utf8_lossy(&inspected.stderr));
    let inspected = String::from_utf8_lossy(&inspected.stdout);
    assert!(inspected.starts_with("1024 ") && inspected.contains("\"max-size\":\"10m\""), "{inspected}");
    let port = record.published_port.unwrap();
    assert!(http_get(port, "/").contains("hello 1.1"));
    context.destroy(&record.spec.id).await.unwrap();
}

/// The JSON body of an HTTP response as `http_get_as` returns it.
fn json_body(response: &str) -> serde_json::Value {
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    serde_json::from_str(body).unwrap_or_else(|error| panic!("not JSON ({error}): {response}"))
}

/// A real app's first deployment for a test: the app container and its one
/// sidecar run, and the manager got a generated password.
struct RealApp {
    spec: AppInstanceSpec,
    secrets: BTreeMap<String, String>,
    password: atrium_engine::model::password::Password,
    port: u16,
}

impl RealApp {
    async fn deploy(fixture: &Fixture, context: &AppContext<'_>, app: &str, version: &str, sidecar: &str) -> RealApp {
        let spec = AppInstanceSpec { app: app.into(), version: version.into(), ..fixture.spec("1.1") };
        let deployment = context.deploy(&spec, None, None).await.unwrap();
        let tenant = &fixture.tenant;
        assert_eq!(
            fixture.containers().await,
            [
                format!("atrium-{tenant}-web-backup"),
                format!("atrium-{tenant}-web-g1"),
                format!("atrium-{tenant}-web-{sidecar}")
            ]
        );
        assert!(!deployment.record.secrets.is_empty(), "the database password is generated");
        RealApp {
            spec,
            secrets: deployment.record.secrets,
            password: deployment.new_manager_password.expect("a generated password for the welcome email"),
            port: deployment.record.published_port.expect("published port"),
        }
    }

    /// Deploys the same spec again: nothing changes and the password stays.
    async fn deploy_again(&self, context: &AppContext<'_>) {
        let again = context.deploy(&self.spec, None, None).await.unwrap();
        assert_eq!((again.record.generation, again.new_manager_password.is_none()), (1, true));
    }

    /// Destroys the instance with its data kept and creates it again: a new
    /// instance (new secrets, a new manager password) on the old data.
    /// Returns the new password and port.
    async fn recreate_on_kept_data(
        &self,
        fixture: &Fixture,
        context: &AppContext<'_>,
    ) -> (atrium_engine::model::password::Password, u16) {
        context.destroy(&self.spec.id).await.unwrap();
        assert!(fixture.containers().await.is_empty());
        let recreated = context.deploy(&self.spec, None, None).await.unwrap();
        assert_ne!(recreated.record.secrets, self.secrets, "new secrets");
        (
            recreated.new_manager_password.expect("a new password for the new instance"),
            recreated.record.published_port.expect("published port"),
        )
    }

    /// Upgrades the instance to `version`: the new generation's container
    /// runs the new version's image beside the sidecar, the old one is gone.
    /// Returns the new container's port.
    async fn upgrade(&self, fixture: &Fixture, context: &AppContext<'_>, version: &str, sidecar: &str) -> u16 {
        let upgrade = AppInstanceSpec { version: version.into(), ..self.spec.clone() };
        let upgraded = context.deploy(&upgrade, None, None).await.unwrap_or_else(|error| panic!("{error}"));
        let tenant = &fixture.tenant;
        let app = format!("atrium-{tenant}-web-g{}", upgraded.record.generation);
        assert_eq!(
            fixture.containers().await,
            [format!("atrium-{tenant}-web-backup"), app.clone(), format!("atrium-{tenant}-web-{sidecar}")]
        );
        let observed = fixture.runtime().await.inspect(&app).await.unwrap().expect("the new container");
        assert_eq!(observed.image, format!("atrium/{}:{version}", self.spec.app));
        upgraded.record.published_port.expect("published port")
    }

    /// Tries an upgrade to `version` with an operator's entry whose
    /// migration is `migrate` (HCL: one that breaks the data and fails): the
    /// upgrade fails, the backup is put back and the old version serves
    /// again from its container, on a new port the record follows. Returns it.
    async fn broken_upgrade(&self, fixture: &Fixture, version: &str, sidecar: &str, migrate: &str) -> u16 {
        self.broken_upgrade_with(fixture, version, sidecar, migrate, &[]).await
    }

    /// [`RealApp::broken_upgrade`] with an entry that has `changes` too (see
    /// [`operator_catalog`]).
    async fn broken_upgrade_with(
        &self,
        fixture: &Fixture,
        version: &str,
        sidecar: &str,
        migrate: &str,
        changes: &[(&str, &str)],
    ) -> u16 {
        let migration = format!("migrate = {migrate}");
        let mut changes = changes.to_vec();
        changes.push((r#"migrate = ["atrium-app", "migrate"]"#, &migration));
        let broken = operator_catalog(&self.spec.app, &changes);
        let before = fixture.registry.get_app_instance(&self.spec.id).await.unwrap().expect("the instance's record");
        let upgrade = AppInstanceSpec { version: version.into(), ..self.spec.clone() };
        let backups = format!("atrium-{}-web-backup", fixture.tenant);
        let backup_spec = r#"{{index .Config.Labels "atrium.spec"}}"#;
        let backups_before = docker_inspect(&backups, backup_spec);
        let context = fixture.context_with(&broken, Duration::from_secs(900));
        let error = context.deploy(&upgrade, None, None).await.unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, AppApplyError::Migration { .. }), "{message}");
        let serving =
            format!("the backup taken before it was put back and version {} serves again", before.spec.version);
        assert!(message.contains(&serving), "{message}");
        let tenant = &fixture.tenant;
        let app = format!("atrium-{tenant}-web-g{}", before.generation);
        assert_eq!(
            fixture.containers().await,
            [format!("atrium-{tenant}-web-backup"), app.clone(), format!("atrium-{tenant}-web-{sidecar}")]
        );
        // Started again, the old version publishes a new port, and the record follows.
        let after = fixture.registry.get_app_instance(&self.spec.id).await.unwrap().expect("the instance's record");
        assert_eq!((after.generation, &after.spec.version), (before.generation, &before.spec.version));
        let observed = fixture.runtime().await.inspect(&app).await.unwrap().expect("the old container");
        assert!(observed.running, "the old version runs again");
        assert_eq!(observed.published_port, after.published_port);
        // The backup container is the old version's again: its scheduled
        // snapshots name the version that wrote the data.
        assert_eq!(docker_inspect(&backups, backup_spec), backups_before, "the old backup container is back");
        assert_eq!(docker_inspect(&backups, "{{.State.Running}}"), "true");
        let command = docker_inspect(&backups, "{{json .Config.Cmd}}");
        let tag = format!("version:{}", before.spec.version);
        assert!(command.contains(&tag) && !command.contains(&format!("version:{version}")), "{command}");
        after.published_port.expect("published port")
    }

    /// Destroys the instance and its data (at the version it runs now):
    /// nothing of it is left.
    async fn purge(&self, fixture: &Fixture, context: &AppContext<'_>) {
        let record = fixture.registry.get_app_instance(&self.spec.id).await.unwrap().expect("the instance's record");
        let mut purged = record.spec.clone();
        purged.delete_data_on_destroy = true;
        context.deploy(&purged, None, None).await.unwrap();
        context.destroy(&purged.id).await.unwrap();
        assert!(fixture.containers().await.is_empty());
    }
}

/// A catalog with the built-in entry of `app` as an operator's entry, each
/// `(from, to)` of `changes` replaced in its file (each must be there).
fn operator_catalog(app: &str, changes: &[(&str, &str)]) -> Catalog {
    let directory = tempfile::tempdir().unwrap();
    let file = format!("{app}.hcl");
    let mut text = std::fs::read_to_string(format!("{}/catalog/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    for (from, to) in changes {
        assert!(text.contains(from), "{file} has no {from:?} to replace");
        text = text.replace(from, to);
    }
    std::fs::write(directory.path().join(&file), text).unwrap();
    let catalog = Catalog::with_directory(directory.path()).unwrap_or_else(|error| panic!("{error}"));
    assert_ne!(catalog.get(app), Catalog::built_in().get(app), "the operator's entry differs");
    catalog
}

/// Redmine from Debian's packages (images built by scripts/app-images.sh)
/// on its own PostgreSQL sidecar: its first start migrates an empty
/// database, and the manager is an ordinary user with the Manager role in
/// the tenant's project, never Redmine's admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redmine_runs_on_its_own_postgresql_and_its_manager_is_a_project_manager_not_an_admin() {
    let fixture = Fixture::new("rdm").await;
    let context = fixture.context(Duration::from_secs(600));
    let redmine = RealApp::deploy(&fixture, &context, "redmine", "5.0", "postgres").await;
    let (password, port, tenant) = (&redmine.password, redmine.port, &fixture.tenant);

    // The manager signs in (Redmine's REST API takes the same login and
    // password as its login form) and is who the tenant expects.
    let manager = "m@test.example";
    let me = http_get_as(port, "/users/current.json?include=memberships", Some((manager, password.expose())));
    assert_eq!(status(&me), "200", "{me}");
    let user = &json_body(&me)["user"];
    assert_eq!(user["login"], manager);
    assert_ne!(user["admin"], true, "the manager is not Redmine's administrator: {user}");
    let memberships = user["memberships"].as_array().unwrap_or_else(|| panic!("no memberships: {user}"));
    let in_project = memberships.iter().find(|m| m["project"]["name"] == tenant.as_str());
    let roles = in_project.unwrap_or_else(|| panic!("not a member of the tenant's project: {user}"))["roles"].clone();
    assert!(roles.as_array().unwrap().iter().any(|role| role["name"] == "Manager"), "{roles}");
    assert_eq!(status(&http_get_as(port, "/users/current.json", Some((manager, "wrong-password")))), "401");

    // The manager writes through Redmine's API.
    let issue = format!(r#"{{"issue": {{"project_id": "{tenant}", "subject": "Kept with the data"}}}}"#);
    let created = http_request(port, "POST", "/issues.json", Some((manager, password.expose())), Some(&issue));
    assert_eq!(status(&created), "201", "{created}");

    // Redmine counts its people for the quota: the manager, not `admin` or
    // the anonymous user; then a colleague the tenant adds.
    let id = &redmine.spec.id;
    assert_eq!(users_in_use(&fixture, &context, id).await, 1);
    let colleague = "u = User.new(login: 'colleague', firstname: 'C', lastname: 'L', mail: 'c@test.example', language: 'en'); u.password = u.password_confirmation = 'a-colleagues-password-42'; u.save!";
    docker_exec(&format!("atrium-{tenant}-web-g1"), &format!("atrium-app runner \"{colleague}\""));
    assert_eq!(users_in_use(&fixture, &context, id).await, 2);

    redmine.deploy_again(&context).await;
    let me = http_get_as(port, "/users/current.json", Some((manager, password.expose())));
    assert_eq!(status(&me), "200", "{me}");

    // A backup now: the database and the attachments volume in one snapshot.
    let app = format!("atrium-{tenant}-web-g1");
    let files = "/var/lib/redmine/default/files";
    docker_exec(&app, &format!("echo 'in the backup' > {files}/marker"));
    let backup = context.backup_now(id).await.unwrap_or_else(|error| panic!("{error}"));
    // Then the data changes: an issue is written, the attachment removed.
    let later = format!(r#"{{"issue": {{"project_id": "{tenant}", "subject": "Written after the backup"}}}}"#);
    let created = http_request(port, "POST", "/issues.json", Some((manager, password.expose())), Some(&later));
    assert_eq!(status(&created), "201", "{created}");
    docker_exec(&app, &format!("rm {files}/marker"));
    assert_eq!(
        issue_subjects(port, tenant, manager, password.expose()),
        ["Written after the backup", "Kept with the data"]
    );

    // Snapshots that do not exist are refused before anything is touched.
    let unknown = context.restore(id, "deadbeef", |_| {}).await.unwrap_err();
    assert!(matches!(unknown, BackupError::NoSuchSnapshot { .. }), "{unknown}");
    assert!(unknown.to_string().contains(backup.short_id()), "the message lists the snapshots: {unknown}");
    assert!(context.restore(id, "latest; rm -rf /", |_| {}).await.is_err());
    assert_eq!(issue_subjects(port, tenant, manager, password.expose()).len(), 2, "nothing restored");

    // Restored in place: the issue written later is gone, the attachment is back,
    // and the data it replaced was backed up first.
    let restored = context.restore(id, backup.short_id(), |_| {}).await.unwrap_or_else(|error| panic!("{error}"));
    assert!(restored.restored.id.starts_with(&backup.id), "{restored:?}");
    let port = fixture.registry.get_app_instance(id).await.unwrap().unwrap().published_port.unwrap();
    assert_eq!(issue_subjects(port, tenant, manager, password.expose()), ["Kept with the data"]);
    assert_eq!(docker_exec(&app, &format!("cat {files}/marker")), "in the backup\n");
    let snapshots = context.snapshots(id).await.unwrap();
    let short: Vec<&str> = snapshots.iter().map(|s| s.short_id()).collect();
    assert_eq!(short, [backup.short_id(), restored.replaced_data.short_id()], "{snapshots:?}");
    // The data the restore replaced is a snapshot too: restoring it undoes the restore.
    context.restore(id, restored.replaced_data.short_id(), |_| {}).await.unwrap_or_else(|error| panic!("{error}"));
    let port = fixture.registry.get_app_instance(id).await.unwrap().unwrap().published_port.unwrap();
    assert_eq!(
        issue_subjects(port, tenant, manager, password.expose()),
        ["Written after the backup", "Kept with the data"]
    );

    // A snapshot whose database dump is damaged (written beside the real
    // ones, as a failing disk would leave it): its restore replaces the
    // attachments and drops the database before the dump turns out unreadable.
    // The data it replaced is put back, and the app serves it again.
    let damaged = damaged_snapshot(tenant, "web", "5.0");
    docker_exec(&app, &format!("echo 'before the failed restore' > {files}/marker"));
    let mut shown = None;
    let failed = context.restore(id, &damaged, |taken| shown = Some(taken.clone())).await.unwrap_err();
    let shown = shown.expect("the backup of the replaced data is shown before anything changes");
    assert!(matches!(failed, BackupError::Restore { .. }), "{failed}");
    let message = failed.to_string();
    assert!(message.contains(&format!("put back from snapshot {}", shown.short_id())), "{message}");
    assert!(message.contains("its job failed"), "{message}");
    let port = fixture.registry.get_app_instance(id).await.unwrap().unwrap().published_port.unwrap();
    assert_eq!(
        issue_subjects(port, tenant, manager, password.expose()),
        ["Written after the backup", "Kept with the data"]
    );
    assert_eq!(docker_exec(&app, &format!("cat {files}/marker")), "before the failed restore\n");

    // The restore test: the latest snapshot (of the data the failed restore
    // would have replaced) restored into a scratch instance, whose Redmine
    // turns healthy and counts the same users; the scratch instance is gone
    // after, and a refresh shows the result.
    let latest = latest_backup(&fixture, &context, id).await;
    let users = users_in_use(&fixture, &context, id).await;
    let tested = context.restore_test(id).await.unwrap_or_else(|error| panic!("{error}"));
    assert!(tested.passed, "{tested:?}");
    assert_eq!(tested.snapshot.short_id(), latest);
    assert_eq!(tested.recorded, Ok(()));
    assert!(tested.line.starts_with("passed at 20"), "{}", tested.line);
    assert!(tested.line.contains(&format!("snapshot {latest}")), "{}", tested.line);
    assert!(tested.line.ends_with(&format!("and counts {users} users")), "{}", tested.line);
    assert_eq!(backup_status(&fixture, &context, id).await.restore_test.as_ref(), Some(&tested.line));
    assert_eq!(scratch_leftovers(&fixture).await, Vec::<String>::new());
    // A damaged latest snapshot fails the test, and the live instance is untouched.
    let damaged = damaged_snapshot(tenant, "web", "5.0");
    let tested = context.restore_test(id).await.unwrap_or_else(|error| panic!("{error}"));
    assert!(!tested.passed, "{tested:?}");
    assert!(tested.snapshot.id.starts_with(&damaged), "{tested:?}");
    assert!(tested.line.starts_with("failed at 20"), "{}", tested.line);
    assert!(tested.line.contains("the restore failed (exit code Some(1))"), "{}", tested.line);
    assert_eq!(backup_status(&fixture, &context, id).await.restore_test.as_ref(), Some(&tested.line));
    assert_eq!(scratch_leftovers(&fixture).await, Vec::<String>::new());
    let port = fixture.registry.get_app_instance(id).await.unwrap().unwrap().published_port.unwrap();
    assert_eq!(
        issue_subjects(port, tenant, manager, password.expose()),
        ["Written after the backup", "Kept with the data"]
    );

    let (new_password, port) = redmine.recreate_on_kept_data(&fixture, &context).await;
    assert_eq!(issue_subjects(port, tenant, manager, new_password.expose()).len(), 2);
    assert_eq!(status(&http_get_as(port, "/users/current.json", Some((manager, password.expose())))), "401");
    // The new instance on the kept volumes restores the old instance's
    // snapshots (the repository's key is in its volume). A restore brings
    // back the app's accounts as they were: the manager's password of then,
    // which stays when no welcome email ever gave her one.
    let restored = context.restore(id, &backup.id, |_| {}).await.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(restored.manager, Ok("no welcome email was sent for it, so no new manager password is either".into()));
    let port = fixture.registry.get_app_instance(id).await.unwrap().unwrap().published_port.unwrap();
    assert_eq!(issue_subjects(port, tenant, manager, password.expose()), ["Kept with the data"]);

    // A manager who was emailed her password gets a new one by email after
    // a restore: the snapshot's password of then is hers no longer.
    let mut record = fixture.registry.get_app_instance(id).await.unwrap().unwrap();
    record.welcome = atrium_engine::model::app_instance::WelcomeState::Sent;
    fixture.registry.put_app_instance(&record).await.unwrap();
    let hostname = format!("{tenant}.restored.example");
    live_domain(&fixture.registry, id, &hostname).await;
    let tenant_id = atrium_engine::model::TenantId::parse(tenant).unwrap();
    let to = fixture.registry.get_tenant(&tenant_id).await.unwrap().unwrap().spec.manager.email;
    let mailer = atrium_engine::backends::mailer::SmtpMailer::new(
        &service_variable("ATRIUM_TEST_SMTP_URL"),
        "Atrium <noreply@atrium.test>",
        None,
    )
    .unwrap();
    let mut mailing = fixture.context(Duration::from_secs(600));
    mailing.mailer = Some(&mailer);
    let restored = mailing.restore(id, &backup.id, |_| {}).await.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(restored.manager, Ok(format!("a new manager password was set and emailed to {to}")));
    let mails: Vec<String> = mails_to(&to).into_iter().filter(|mail| mail.contains(&hostname)).collect();
    assert_eq!(mails.len(), 1, "one email with the new password");
    assert!(mails[0].contains("restored") && !mails[0].contains("is ready"), "it says why: {}", mails[0]);
    let renewed = password_in(&mails[0]);
    let port = fixture.registry.get_app_instance(id).await.unwrap().unwrap().published_port.unwrap();
    assert_eq!(issue_subjects(port, tenant, manager, &renewed), ["Kept with the data"]);
    assert_eq!(status(&http_get_as(port, "/users/current.json", Some((manager, password.expose())))), "401");
    let welcome = fixture.registry.get_app_instance(id).await.unwrap().unwrap().welcome;
    assert_eq!(welcome, atrium_engine::model::app_instance::WelcomeState::Sent);
    let domain = atrium_engine::model::domain::Hostname::parse(&hostname).unwrap();
    assert!(fixture.registry.delete_domain(&domain).await.unwrap());

    // A clone made while the tenant's welcome emails are on sends one email,
    // after its restore, with the password the restore set: it signs in.
    let mut tenant_spec = fixture.registry.get_tenant(&tenant_id).await.unwrap().unwrap().spec;
    tenant_spec.welcome_email = true;
    fixture.registry.update_tenant(&tenant_spec).await.unwrap();
    let clone = AppInstanceSpec {
        id: AppInstanceId { tenant_id: tenant_id.clone(), name: "copy".into() },
        restore: Some(atrium_engine::model::backup::RestoreRequest {
            snapshot: backup.id.clone(),
            from: Some(format!("{tenant}/web")),
            offsite_of: None,
        }),
        delete_data_on_destroy: true,
        ..redmine.spec.clone()
    };
    let clone_host = format!("{tenant}.copy.example");
    live_domain(&fixture.registry, &clone.id, &clone_host).await;
    mailing.deploy(&clone, None, None).await.unwrap_or_else(|error| panic!("{error}"));
    let mails: Vec<String> = mails_to(&to).into_iter().filter(|mail| mail.contains(&clone_host)).collect();
    assert_eq!(mails.len(), 1, "one email for the clone: {mails:?}");
    assert!(mails[0].contains("restored") && !mails[0].contains("is ready"), "{}", mails[0]);
    let clone_record = fixture.registry.get_app_instance(&clone.id).await.unwrap().unwrap();
    assert_eq!(clone_record.welcome, atrium_engine::model::app_instance::WelcomeState::Sent);
    let clone_port = clone_record.published_port.unwrap();
    assert_eq!(issue_subjects(clone_port, tenant, manager, &password_in(&mails[0])), ["Kept with the data"]);
    let clone_domain = atrium_engine::model::domain::Hostname::parse(&clone_host).unwrap();
    assert!(fixture.registry.delete_domain(&clone_domain).await.unwrap());
    mailing.destroy(&clone.id).await.unwrap_or_else(|error| panic!("{error}"));

    // The backup container removed out of band is drift, and the next
    // deployment brings it back.
    let backup_container = format!("atrium-{tenant}-web-backup");
    let host = service_variable("ATRIUM_TEST_DOCKER_HOST");
    let removed =
        std::process::Command::new("docker").args(["-H", &host, "rm", "-f", &backup_container]).output().unwrap();
    assert!(removed.status.success(), "{}", String::from_utf8_lossy(&removed.stderr));
    let (_, health) = context.observe(id).await.unwrap().expect("the instance");
    assert_eq!(health, InstanceHealth::Drifted);
    let repaired = context.deploy(&redmine.spec, None, None).await.unwrap_or_else(|error| panic!("{error}"));
    assert!(fixture.containers().await.contains(&backup_container));
    let (_, health) = context.observe(id).await.unwrap().expect("the instance");
    assert_eq!(health, InstanceHealth::Running);
    let port = repaired.record.published_port.unwrap();
    assert_eq!(issue_subjects(port, tenant, manager, &renewed), ["Kept with the data"]);
    redmine.purge(&fixture, &context).await;
}

/// Writes a snapshot into the repository of `tenant`'s instance `instance`
/// as its backup job would, but with a dump no database tool can read and
/// an attachment that says so; its id.
fn damaged_snapshot(tenant: &str, instance: &str, version: &str) -> String {
    let host = service_variable("ATRIUM_TEST_DOCKER_HOST");
    let script = format!(
        "set -e; mkdir -p /backup/dump /volumes/files; echo 'not a dump' > /backup/dump/database.dump; \
         echo 'from the damaged snapshot' > /volumes/files/marker; \
         restic backup --host atrium --tag {tenant}/{instance} --tag version:{version} /backup/dump /volumes/files"
    );
    let volume = format!("atrium-{tenant}-{instance}-backups:/backup");
    let output = std::process::Command::new("docker")
        .args(["-H", &host, "run", "--rm", "--user", "0", "--entrypoint", "sh", "-v", &volume])
        .args(["-e", "RESTIC_REPOSITORY=/backup/restic", "-e", "RESTIC_PASSWORD_FILE=/backup/restic-password"])
        .args(["-e", "RESTIC_CACHE_DIR=/backup/cache", "atrium/postgres:15", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout} {}", String::from_utf8_lossy(&output.stderr));
    let saved = stdout.lines().find_map(|line| line.strip_prefix("snapshot ")?.strip_suffix(" saved"));
    saved.unwrap_or_else(|| panic!("restic named no snapshot: {stdout}")).to_owned()
}

/// The snapshot a refresh reads as the instance's latest backup (which must be read).
async fn latest_backup(fixture: &Fixture, context: &AppContext<'_>, id: &AppInstanceId) -> String {
    let status = backup_status(fixture, context, id).await;
    let latest = status.latest.unwrap_or_else(|| panic!("no latest backup of {id}"));
    assert!(latest.taken_at.starts_with("20") && latest.taken_at.ends_with('Z'), "{latest:?}");
    latest.snapshot
}

/// What a refresh reads of the instance's backups (which must be read).
async fn backup_status(fixture: &Fixture, context: &AppContext<'_>, id: &AppInstanceId) -> BackupStatus {
    let record = fixture.registry.get_app_instance(id).await.unwrap().expect("the instance's record");
    let wanted = AppReadWanted { latest_backup: true, users_in_use: false };
    match context.read_app(&record, wanted).await.latest_backup {
        LatestBackupRead::Read(status) => status,
        other => panic!("the backups of {id} were not read: {other:?}"),
    }
}

/// The names of the scratch instances' containers and volumes left on the test engine.
async fn scratch_leftovers(fixture: &Fixture) -> Vec<String> {
    let runtime = fixture.runtime().await;
    let containers = runtime.list_managed().await.unwrap().into_iter().map(|c| c.name);
    let volumes = runtime.list_managed_volumes().await.unwrap().into_iter().map(|v| v.name);
    containers.chain(volumes).filter(|name| name.contains(SCRATCH_SUFFIX)).collect()
}

/// The users a refresh reads as the instance's users in use (which must be read).
async fn users_in_use(fixture: &Fixture, context: &AppContext<'_>, id: &AppInstanceId) -> u64 {
    let record = fixture.registry.get_app_instance(id).await.unwrap().expect("the instance's record");
    let wanted = AppReadWanted { latest_backup: false, users_in_use: true };
    match context.read_app(&record, wanted).await.users_in_use {
        UsersInUseRead::Read(Some(users)) => users,
        other => panic!("no users in use of {id}: {other:?}"),
    }
}

/// `docker inspect --format FORMAT container` on the test engine, trimmed.
fn docker_inspect(container: &str, format: &str) -> String {
    docker_inspect_on("ATRIUM_TEST_DOCKER_HOST", container, format)
}

/// `docker inspect --format FORMAT container` on the test engine named by `variable`, trimmed.
fn docker_inspect_on(variable: &str, container: &str, format: &str) -> String {
    docker_on(variable, &["inspect", "--format", format, container]).trim().to_owned()
}

/// Runs `script` with sh in `container` on the test engine; its output.
fn docker_exec(container: &str, script: &str) -> String {
    docker_exec_on("ATRIUM_TEST_DOCKER_HOST", container, script)
}

/// Runs `script` with sh in `container` on the test engine named by `variable`; its output.
fn docker_exec_on(variable: &str, container: &str, script: &str) -> String {
    docker_on(variable, &["exec", container, "sh", "-c", script])
}

/// The subjects of the tenant's Redmine issues, newest first, as the manager sees them.
fn issue_subjects(port: u16, tenant: &str, manager: &str, password: &str) -> Vec<String> {
    let issues =
        http_get_as(port, &format!("/issues.json?project_id={tenant}&sort=id:desc"), Some((manager, password)));
    assert_eq!(status(&issues), "200", "{issues}");
    json_body(&issues)["issues"]
        .as_array()
        .unwrap_or_else(|| panic!("no issues: {issues}"))
        .iter()
        .map(|issue| issue["subject"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A session with MediaWiki's API (api.php, form posts, JSON answers), its
/// cookies kept by hand.
struct Wiki {
    url: String,
    client: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

impl Wiki {
    fn new(port: u16) -> Wiki {
        Wiki {
            url: format!("http://127.0.0.1:{port}/api.php"),
            client: reqwest::Client::new(),
            cookies: BTreeMap::new(),
        }
    }

    async fn api(&mut self, params: &[(&str, &str)]) -> serde_json::Value {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("format", "json")
            .append_pair("formatversion", "2")
            .extend_pairs(params)
            .finish();
        let cookie: Vec<String> = self.cookies.iter().map(|(name, value)| format!("{name}={value}")).collect();
        let response = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Cookie", cookie.join("; "))
            .body(body)
            .send()
            .await
            .unwrap_or_else(|error| panic!("{}: {error}", self.url));
        for header in response.headers().get_all("set-cookie") {
            let pair = header.to_str().unwrap().split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{status}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("not JSON ({error}): {text}"))
    }

    async fn token(&mut self, kind: &str) -> String {
        let answer = self.api(&[("action", "query"), ("meta", "tokens"), ("type", kind)]).await;
        let token = &answer["query"]["tokens"][format!("{kind}token")];
        token.as_str().unwrap_or_else(|| panic!("no {kind} token: {answer}")).to_owned()
    }

    /// Signs in with the wiki's own login (`clientlogin`); returns its status
    /// (`PASS` or `FAIL`).
    async fn log_in(&mut self, user: &str, password: &str) -> String {
        let token = self.token("login").await;
        let answer = self
            .api(&[
                ("action", "clientlogin"),
                ("username", user),
                ("password", password),
                ("logintoken", &token),
                ("loginreturnurl", "http://localhost/"),
            ])
            .await;
        answer["clientlogin"]["status"].as_str().unwrap_or_else(|| panic!("no login status: {answer}")).to_owned()
    }
}

/// MediaWiki from Debian's packages on its own MariaDB sidecar: the first
/// start installs the wiki, and the manager is a bureaucrat and
/// administrator under her own name, never the wiki's `Admin`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mediawiki_runs_on_its_own_mariadb_and_its_manager_is_a_bureaucrat_not_the_wikis_admin() {
    let fixture = Fixture::new("mw").await;
    let context = fixture.context(Duration::from_secs(600));
    let mediawiki = RealApp::deploy(&fixture, &context, "mediawiki", "1.39", "mariadb").await;
    let (password, port) = (&mediawiki.password, mediawiki.port);

    // The manager ("M" in the test tenant) signs in with the wiki's own login.
    let mut wiki = Wiki::new(port);
    assert_eq!(wiki.log_in("M", password.expose()).await, "PASS");
    let me = wiki.api(&[("action", "query"), ("meta", "userinfo"), ("uiprop", "groups")]).await;
    assert_eq!(me["query"]["userinfo"]["name"], "M", "{me}");
    let groups = me["query"]["userinfo"]["groups"].as_array().unwrap_or_else(|| panic!("no groups: {me}")).clone();
    assert!(groups.contains(&"bureaucrat".into()) && groups.contains(&"sysop".into()), "{groups:?}");
    assert_eq!(Wiki::new(port).log_in("M", "a-wrong-password").await, "FAIL");
    assert_eq!(Wiki::new(port).log_in("Admin", password.expose()).await, "FAIL", "Admin has a password of its own");

    // The wiki's users in use: the manager, not Admin or MediaWiki's system
    // users; then a colleague.
    let id = &mediawiki.spec.id;
    assert_eq!(users_in_use(&fixture, &context, id).await, 1);
    let app = format!("atrium-{}-web-g1", fixture.tenant);
    docker_exec(&app, "atrium-app runner createAndPromote Colleague a-colleagues-password-42");
    assert_eq!(users_in_use(&fixture, &context, id).await, 2);

    // She writes a page.
    let token = wiki.token("csrf").await;
    let page = [("title", "Kept with the data"), ("text", "Written by the manager."), ("token", &token)];
    let edit = wiki.api(&[[("action", "edit")].as_slice(), page.as_slice()].concat()).await;
    assert_eq!(edit["edit"]["result"], "Success", "{edit}");

    mediawiki.deploy_again(&context).await;
    assert_eq!(Wiki::new(port).log_in("M", password.expose()).await, "PASS");

    // On the kept database and settings, with new secrets and password.
    let (new_password, port) = mediawiki.recreate_on_kept_data(&fixture, &context).await;
    let mut wiki = Wiki::new(port);
    assert_eq!(wiki.log_in("M", new_password.expose()).await, "PASS");
    let kept = wiki.api(&[("action", "parse"), ("page", "Kept with the data"), ("prop", "wikitext")]).await;
    assert_eq!(kept["parse"]["wikitext"], "Written by the manager.", "{kept}");
    assert_eq!(Wiki::new(port).log_in("M", password.expose()).await, "FAIL");

    // A migration that drops the wiki's pages and fails is undone from the
    // backup (MariaDB's dump); then trixie's 1.43 runs update.php for real.
    let broken = r#"["sh", "-c", "MYSQL_PWD=\"$MW_DB_PASSWORD\" mariadb --host=\"$MW_DB_HOST\" --user=\"$MW_DB_USER\" \"$MW_DB_NAME\" -e 'DROP TABLE page' && echo 'a broken migration' >&2 && exit 1"]"#;
    let port = mediawiki.broken_upgrade(&fixture, "1.43", "mariadb", broken).await;
    let mut wiki = Wiki::new(port);
    assert_eq!(wiki.log_in("M", new_password.expose()).await, "PASS");
    let kept = wiki.api(&[("action", "parse"), ("page", "Kept with the data"), ("prop", "wikitext")]).await;
    assert_eq!(kept["parse"]["wikitext"], "Written by the manager.", "the backup was put back: {kept}");
    let port = mediawiki.upgrade(&fixture, &context, "1.43", "mariadb").await;
    let mut wiki = Wiki::new(port);
    assert_eq!(wiki.log_in("M", new_password.expose()).await, "PASS");
    let kept = wiki.api(&[("action", "parse"), ("page", "Kept with the data"), ("prop", "wikitext")]).await;
    assert_eq!(kept["parse"]["wikitext"], "Written by the manager.", "{kept}");
    let general = wiki.api(&[("action", "query"), ("meta", "siteinfo")]).await;
    let generator = general["query"]["general"]["generator"].as_str().unwrap_or_default().to_owned();
    assert!(generator.starts_with("MediaWiki 1.43"), "{general}");
    mediawiki.purge(&fixture, &context).await;
}

/// One call of Tryton's JSON-RPC on the instance's `tryton` database, with a
/// session (`login:user id:key`) when given; returns the whole answer.
async fn tryton(port: u16, session: Option<&str>, method: &str, params: serde_json::Value) -> serde_json::Value {
    use base64::Engine as _;
    let mut request = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/tryton/"))
        .json(&serde_json::json!({"id": 1, "method": method, "params": params}));
    if let Some(session) = session {
        let token = base64::engine::general_purpose::STANDARD.encode(session);
        request = request.header("Authorization", format!("Session {token}"));
    }
    let response = request.send().await.unwrap_or_else(|error| panic!("{method}: {error}"));
    if response.status() == reqwest::StatusCode::UNAUTHORIZED {
        // A refused login or session: Tryton answers with its HTML page.
        return serde_json::json!({"error": "401 Unauthorized"});
    }
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{method}: not JSON ({error}): {text}"))
}

/// Signs in to Tryton; returns the session, or the error Tryton gave.
async fn tryton_login(port: u16, login: &str, password: &str) -> Result<String, serde_json::Value> {
    let answer = tryton(port, None, "common.db.login", serde_json::json!([login, {"password": password}, "en"])).await;
    match answer["result"].as_array().map(Vec::as_slice) {
        Some([user, key]) => Ok(format!("{login}:{user}:{}", key.as_str().unwrap_or_default())),
        _ => Err(answer),
    }
}

/// How many parties named "Kept with the data" Tryton has.
async fn kept_parties(port: u16, session: &str) -> usize {
    let parties = tryton(
        port,
        Some(session),
        "model.party.party.search_read",
        serde_json::json!([[["name", "=", "Kept with the data"]], 0, null, null, ["name"], {}]),
    )
    .await;
    parties["result"].as_array().map(Vec::len).unwrap_or_else(|| panic!("no party list: {parties}"))
}

/// Tryton from Debian's packages on its own PostgreSQL sidecar: the first
/// start creates the database's tables and activates the ERP's modules, and
/// the manager is a user of her own in every group, never Tryton's `admin`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tryton_runs_on_its_own_postgresql_and_its_manager_is_a_user_in_every_group_not_admin() {
    let fixture = Fixture::new("try").await;
    let context = fixture.context(Duration::from_secs(900));
    let tryton_app = RealApp::deploy(&fixture, &context, "tryton", "6.0", "postgres").await;
    let (password, port) = (&tryton_app.password, tryton_app.port);

    let manager = "m@test.example";
    let session = tryton_login(port, manager, password.expose()).await.unwrap_or_else(|error| panic!("{error}"));
    let users = tryton(
        port,
        Some(&session),
        "model.res.user.search_read",
        serde_json::json!([[["login", "=", manager]], 0, null, null, ["login", "groups"], {}]),
    )
    .await;
    let groups = users["result"][0]["groups"].as_array().unwrap_or_else(|| panic!("no groups: {users}")).len();
    let all = tryton(port, Some(&session), "model.res.group.search", serde_json::json!([[], 0, null, null, {}])).await;
    let all = all["result"].as_array().unwrap_or_else(|| panic!("no group list: {all}")).len();
    assert!(groups > 5 && groups == all, "the manager is in {groups} of {all} groups");
    assert!(tryton_login(port, manager, "a-wrong-password").await.is_err());
    assert!(tryton_login(port, "admin", password.expose()).await.is_err(), "admin has a password of its own");

    // She writes a party through the ERP's API.
    let created = tryton(
        port,
        Some(&session),
        "model.party.party.create",
        serde_json::json!([[{"name": "Kept with the data"}], {}]),
    )
    .await;
    assert!(created["result"][0].is_u64(), "{created}");

    // Tryton's users in use: the manager, not admin or root; then a colleague
    // she adds through the ERP's API.
    let id = &tryton_app.spec.id;
    assert_eq!(users_in_use(&fixture, &context, id).await, 1);
    let colleague = serde_json::json!([[{"name": "Colleague", "login": "colleague"}], {}]);
    let created = tryton(port, Some(&session), "model.res.user.create", colleague).await;
    assert!(created["result"][0].is_u64(), "{created}");
    assert_eq!(users_in_use(&fixture, &context, id).await, 2);

    tryton_app.deploy_again(&context).await;
    let (new_password, port) = tryton_app.recreate_on_kept_data(&fixture, &context).await;
    let session = tryton_login(port, manager, new_password.expose()).await.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(kept_parties(port, &session).await, 1);
    assert!(tryton_login(port, manager, password.expose()).await.is_err());

    // Trixie's Tryton 7.0 updates 6.0's database (trytond-admin --all).
    let port = tryton_app.upgrade(&fixture, &context, "7.0", "postgres").await;
    let session = tryton_login(port, manager, new_password.expose()).await.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(kept_parties(port, &session).await, 1);

    // The instance's own backup schedule: the change replaces the backup
    // container only (the app keeps running), and its scheduled backup runs.
    let recorded = fixture.registry.get_app_instance(id).await.unwrap().unwrap();
    let app = format!("atrium-{}-web-g{}", fixture.tenant, recorded.generation);
    let started = docker_inspect(&app, "{{.Id}} {{.State.StartedAt}}");
    let backup = format!("atrium-{}-web-backup", fixture.tenant);
    let old_backup = docker_inspect(&backup, "{{.Id}}");
    let taken = context.snapshots(id).await.unwrap().len();
    let settings = BackupSettings { interval: Some("1m".into()), keep_daily: Some(2), ..BackupSettings::default() };
    let every_minute = AppInstanceSpec { backup: Some(settings), ..recorded.spec.clone() };
    let deployed = context.deploy(&every_minute, None, None).await.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(deployed.record.generation, recorded.generation);
    assert_eq!(docker_inspect(&app, "{{.Id}} {{.State.StartedAt}}"), started, "the app kept running");
    assert_ne!(docker_inspect(&backup, "{{.Id}}"), old_backup, "the backup container follows the settings");
    let stored = fixture.registry.get_app_instance(id).await.unwrap().unwrap();
    assert_eq!(stored.spec.backup, every_minute.backup);
    let waited = std::time::Instant::now();
    loop {
        let snapshots = context.snapshots(id).await.unwrap();
        if snapshots.len() > taken {
            assert_eq!(snapshots.last().unwrap().version.as_deref(), Some("7.0"), "{snapshots:?}");
            break;
        }
        assert!(waited.elapsed() < Duration::from_secs(240), "no scheduled backup within 4 minutes: {snapshots:?}");
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    // Its health check (run every minute) says the last scheduled backup worked.
    while docker_inspect(&backup, "{{.State.Health.Status}}") != "healthy" {
        assert!(waited.elapsed() < Duration::from_secs(360), "{}", docker_inspect(&backup, "{{json .State.Health}}"));
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    tryton_app.purge(&fixture, &context).await;
}

/// The subjects of the issues of the tenant's Redmine project, as the manager sees them, oldest first.
fn redmine_issues(port: u16, tenant: &str, manager: (&str, &str)) -> Vec<String> {
    let issues = http_get_as(port, &format!("/issues.json?project_id={tenant}&status_id=*&sort=id"), Some(manager));
    assert_eq!(status(&issues), "200", "{issues}");
    json_body(&issues)["issues"]
        .as_array()
        .unwrap_or_else(|| panic!("no issues: {issues}"))
        .iter()
        .map(|issue| issue["subject"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// An upgrade of Redmine from bookworm's 5.0 to trixie's 6.0: the old
/// version stops, a backup is taken, the migration runs as a one-shot job,
/// the new version starts. A migration that breaks the database half-way
/// (an operator's entry whose migration drops the issues and fails) is
/// undone: the backup is put back and 5.0 serves the old data again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redmine_upgrade_migrates_its_data_and_a_broken_migration_is_undone_from_the_backup() {
    let fixture = Fixture::new("rup").await;
    let context = fixture.context(Duration::from_secs(900));
    let redmine = RealApp::deploy(&fixture, &context, "redmine", "5.0", "postgres").await;
    let (port, tenant) = (redmine.port, &fixture.tenant);
    let manager = ("m@test.example", redmine.password.expose());
    let issue = format!(r#"{{"issue": {{"project_id": "{tenant}", "subject": "Written on 5.0"}}}}"#);
    let created = http_request(port, "POST", "/issues.json", Some(manager), Some(&issue));
    assert_eq!(status(&created), "201", "{created}");
    let taken_by_5 = context.backup_now(&redmine.spec.id).await.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(taken_by_5.version.as_deref(), Some("5.0"));
    // A refresh reads the latest backup from the backup container.
    assert_eq!(latest_backup(&fixture, &context, &redmine.spec.id).await, taken_by_5.short_id());

    // An operator's entry whose migration destroys data and then fails.
    let broken = r#"["atrium-app", "runner", "ActiveRecord::Base.connection.execute('DROP TABLE issues CASCADE'); raise 'a broken migration'"]"#;
    let port = redmine.broken_upgrade(&fixture, "6.0", "postgres", broken).await;
    assert_eq!(redmine_issues(port, tenant, manager), ["Written on 5.0"], "the backup was put back");

    // The real upgrade: Redmine 6.0's migrations on 5.0's data.
    let port = redmine.upgrade(&fixture, &context, "6.0", "postgres").await;
    assert_eq!(redmine_issues(port, tenant, manager), ["Written on 5.0"]);
    let issue = format!(r#"{{"issue": {{"project_id": "{tenant}", "subject": "Written on 6.0"}}}}"#);
    let created = http_request(port, "POST", "/issues.json", Some(manager), Some(&issue));
    assert_eq!(status(&created), "201", "{created}");

    // 5.0 cannot read what 6.0 migrated: going back is refused, nothing changes.
    let error = context.deploy(&redmine.spec, None, None).await.unwrap_err().to_string();
    assert!(error.contains("redmine 6.0 migrated this instance's data"), "{error}");
    assert_eq!(redmine_issues(port, tenant, manager), ["Written on 5.0", "Written on 6.0"]);

    // The snapshot 5.0 took, restored into 6.0: its data is migrated before
    // the app starts. The data it replaced was taken by 6.0.
    let id = &redmine.spec.id;
    let restored = context.restore(id, taken_by_5.short_id(), |_| {}).await.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(restored.restored.version.as_deref(), Some("5.0"));
    assert_eq!(restored.replaced_data.version.as_deref(), Some("6.0"));
    // The backup of the data the restore replaced is now the latest.
    assert_eq!(latest_backup(&fixture, &context, id).await, restored.replaced_data.short_id());
    let port = fixture.registry.get_app_instance(id).await.unwrap().unwrap().published_port.unwrap();
    assert_eq!(redmine_issues(port, tenant, manager), ["Written on 5.0"]);
    let created = http_request(port, "POST", "/issues.json", Some(manager), Some(&issue));
    assert_eq!(status(&created), "201", "6.0 writes on the migrated data: {created}");
    // Listed, each snapshot names the version that took it.
    let versions: Vec<Option<String>> = context.snapshots(id).await.unwrap().into_iter().map(|s| s.version).collect();
    assert_eq!(versions, [Some("5.0".to_owned()), Some("6.0".to_owned())]);

    redmine.purge(&fixture, &context).await;
}

/// The backups run from an image of their own (`backup.image`), as the
/// upstream entries' do beside the official database images, which carry no
/// restic: Redmine's entry with its backup container and jobs in
/// atrium/postgres:17 (restic, pg_dump 17) beside its PostgreSQL 15 sidecar.
/// A backup, a restore in place and the undo of a failed upgrade all work
/// across the two versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_run_from_the_entrys_backup_image_beside_an_older_database() {
    let fixture = Fixture::new("bim").await;
    let image = (r#"sidecar = "postgres""#, "sidecar = \"postgres\"\n  image   = \"atrium/postgres:17\"");
    let catalog = operator_catalog("redmine", &[image]);
    let context = fixture.context_with(&catalog, Duration::from_secs(900));
    let redmine = RealApp::deploy(&fixture, &context, "redmine", "5.0", "postgres").await;
    let (id, tenant) = (&redmine.spec.id, &fixture.tenant);
    let image_of = |role: &str| docker_inspect(&format!("atrium-{tenant}-web-{role}"), "{{.Config.Image}}");
    assert_eq!((image_of("backup"), image_of("postgres")), ("atrium/postgres:17".into(), "atrium/postgres:15".into()));

    let manager = ("m@test.example", redmine.password.expose());
    let write = |port: u16, subject: &str| {
        let issue = format!(r#"{{"issue": {{"project_id": "{tenant}", "subject": "{subject}"}}}}"#);
        let created = http_request(port, "POST", "/issues.json", Some(manager), Some(&issue));
        assert_eq!(status(&created), "201", "{created}");
    };
    write(redmine.port, "In the backup");
    let backup = context.backup_now(id).await.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(latest_backup(&fixture, &context, id).await, backup.short_id());
    write(redmine.port, "Written after the backup");
    assert_eq!(redmine_issues(redmine.port, tenant, manager), ["In the backup", "Written after the backup"]);

    let restored = context.restore(id, backup.short_id(), |_| {}).await.unwrap_or_else(|error| panic!("{error}"));
    assert!(restored.restored.id.starts_with(&backup.id), "{restored:?}");
    let port = fixture.registry.get_app_instance(id).await.unwrap().unwrap().published_port.unwrap();
    assert_eq!(redmine_issues(port, tenant, manager), ["In the backup"]);

    // The backup before an upgrade and its undo run from the same image.
    let broken = r#"["atrium-app", "runner", "ActiveRecord::Base.connection.execute('DROP TABLE issues CASCADE'); raise 'a broken migration'"]"#;
    let port = redmine.broken_upgrade_with(&fixture, "6.0", "postgres", broken, &[image]).await;
    assert_eq!(redmine_issues(port, tenant, manager), ["In the backup"], "the backup was put back");
    assert_eq!(image_of("backup"), "atrium/postgres:17");

    redmine.purge(&fixture, &context).await;
}

/// The off-site copy, for real: target `local` sends a copy of each backup
/// to a store Atrium runs on target `cloud` (another engine); with the
/// instance and every byte of its data gone from `local`, it comes back on
/// `cloud` from that copy. The copy is encrypted with the store's password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_are_copied_off_site_and_an_instance_comes_back_from_the_copy_on_another_target() {
    let mut fixture = Fixture::new("off").await;
    let _cloud_cleanup = SecondEngineCleanup { tenant: fixture.tenant.clone() };
    let port = std::net::TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port();
    let address = format!("{}:{port}", service_variable("ATRIUM_TEST_HOST_ADDRESS"));
    let password = format!("offsite-{}-{port}-store", std::process::id());
    let mut local = test_target("ATRIUM_TEST_DOCKER_HOST");
    local.offsite_backups = Some(atrium_engine::config::OffsiteBackupsDocument {
        target: "cloud".into(),
        address: address.clone(),
        password: Some(password.clone()),
    });
    let cloud = test_target("ATRIUM_TEST_DOCKER_HOST_2");
    fixture.targets = Targets::new(BTreeMap::from([("local".to_owned(), local), ("cloud".to_owned(), cloud)]));
    let context = fixture.context(Duration::from_secs(900));
    let redmine = RealApp::deploy(&fixture, &context, "redmine", "5.0", "postgres").await;
    let (id, tenant) = (&redmine.spec.id, &fixture.tenant);

    // The store runs on the cloud engine, published on the address's port.
    let store = "atrium.backup-store";
    let cloud_engine = "ATRIUM_TEST_DOCKER_HOST_2";
    assert_eq!(docker_inspect_on(cloud_engine, store, "{{.State.Running}}"), "true");
    let published = docker_inspect_on(cloud_engine, store, "{{json .HostConfig.PortBindings}}");
    assert!(published.contains(&format!("\"HostPort\":\"{port}\"")), "{published}");

    let manager = ("m@test.example", redmine.password.expose());
    let issue = format!(r#"{{"issue": {{"project_id": "{tenant}", "subject": "Kept off-site"}}}}"#);
    let created = http_request(redmine.port, "POST", "/issues.json", Some(manager), Some(&issue));
    assert_eq!(status(&created), "201", "{created}");
    let backup = context.backup_now(id).await.unwrap_or_else(|error| panic!("{error}"));
    let copied = backup_status(&fixture, &context, id).await.offsite_copy;
    let expected = format!("snapshot {} copied at 20", backup.short_id());
    assert!(copied.as_deref().is_some_and(|line| line.starts_with(&expected)), "{copied:?}");
    // The store holds the copy encrypted: no subject of the data in clear.
    let stored =
        docker_exec_on(cloud_engine, store, "find /data -type f | wc -l; grep -rl 'Kept off-site' /data || true");
    assert!(stored.lines().next().and_then(|n| n.trim().parse::<u32>().ok()).is_some_and(|n| n > 5), "{stored}");
    assert_eq!(stored.lines().count(), 1, "nothing in clear: {stored}");

    // With the store stopped by hand, a backup still stands and says the
    // copy failed; the next deployment starts the store again, and the next
    // backup is copied.
    docker_on(cloud_engine, &["stop", store]);
    let uncopied = context.backup_now(id).await.unwrap_or_else(|error| panic!("{error}"));
    let read = backup_status(&fixture, &context, id).await;
    assert_eq!(read.latest.as_ref().map(|latest| latest.snapshot.as_str()), Some(uncopied.short_id()));
    assert!(read.offsite_copy.as_deref().is_some_and(|line| line.starts_with("failed at 20")), "{read:?}");
    context.deploy(&redmine.spec, None, None).await.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(docker_inspect_on(cloud_engine, store, "{{.State.Running}}"), "true", "the deployment started it");
    let again = context.backup_now(id).await.unwrap_or_else(|error| panic!("{error}"));
    let copied = backup_status(&fixture, &context, id).await.offsite_copy;
    let expected = format!("snapshot {} copied at 20", again.short_id());
    assert!(copied.as_deref().is_some_and(|line| line.starts_with(&expected)), "{copied:?}");

    // Every byte of it on `local` is gone, its backups too.
    redmine.purge(&fixture, &context).await;
    let local_volumes: Vec<String> =
        fixture.runtime().await.list_managed_volumes().await.unwrap().into_iter().map(|v| v.name).collect();
    assert!(!local_volumes.iter().any(|name| name.contains(tenant.as_str())), "{local_volumes:?}");

    // Restoring from a target that keeps no off-site copy is refused, naming it.
    let on_cloud = |offsite_of: &str| AppInstanceSpec {
        target: "cloud".into(),
        restore: Some(atrium_engine::model::backup::RestoreRequest {
            snapshot: "latest".into(),
            from: None,
            offsite_of: Some(offsite_of.into()),
        }),
        ..redmine.spec.clone()
    };
    let refused = context.deploy(&on_cloud("cloud"), None, None).await.unwrap_err().to_string();
    assert!(refused.contains("target cloud sends its backups to no off-site store"), "{refused}");

    // It comes back on `cloud` from the copy, with its issue.
    let back = context.deploy(&on_cloud("local"), None, None).await.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(back.record.spec.target, "cloud");
    let database = format!("atrium-{tenant}-web-postgres");
    let subjects = docker_exec_on(
        cloud_engine,
        &database,
        "psql -h /run/postgresql -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" -Atc 'select subject from issues order by id'",
    );
    assert_eq!(subjects.trim(), "Kept off-site");
    let port = back.record.published_port.expect("published port");
    assert_eq!(status(&http_get(port, "/")), "200");

    let purged = AppInstanceSpec { delete_data_on_destroy: true, ..on_cloud("local") };
    context.deploy(&purged, None, None).await.unwrap();
    context.destroy(id).await.unwrap();
}

/// Every step of a restore fails in turn, before it did anything and after
/// it did everything, as the runner's failure injection makes them fail:
/// each time the restore fails clearly, the data it would have replaced (a
/// file in the app's volume and a row in its database) serves again on a
/// healthy app, and no staging directory is left. The run past the last
/// step restores the snapshot, taken by an earlier version and migrated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_of_a_restore_fails_in_turn_and_the_data_it_would_replace_serves_again() {
    use atrium_engine::apply::runner::{InjectedFailure, with_injected_failure};
    let fixture = Fixture::new("rsf").await;
    let directory = tempfile::tempdir().unwrap();
    let catalog = hello_with_database(directory.path());
    let context = fixture.context_with(&catalog, Duration::from_secs(120));
    let tenant = &fixture.tenant;
    let (database, backups) = (format!("atrium-{tenant}-web-postgres"), format!("atrium-{tenant}-web-backup"));
    let write = |app: &str, text: &str| {
        docker_exec(app, &format!("echo {text} > /www/data/marker"));
        let sql =
            format!("CREATE TABLE IF NOT EXISTS kept (v text); DELETE FROM kept; INSERT INTO kept VALUES ('{text}')");
        docker_exec(&database, &format!("psql -q -U hello -d hello -c \"{sql}\""));
    };
    let read = |port: u16| {
        let row = docker_exec(&database, "psql -tA -U hello -d hello -c 'SELECT v FROM kept'");
        let page = http_get(port, "/data/marker");
        let file = page.lines().last().unwrap_or_default().to_owned();
        (file, row.trim().to_owned())
    };

    let record = context.deploy(&fixture.spec("1.0"), None, None).await.unwrap_or_else(|e| panic!("{e}")).record;
    write(&format!("atrium-{tenant}-web-g{}", record.generation), "snapshot");
    let snapshot = context.backup_now(&record.spec.id).await.unwrap_or_else(|error| panic!("{error}"));
    let mut spec = fixture.spec("1.1");
    let id = &spec.id.clone();
    let record = context.deploy(&spec, None, None).await.unwrap_or_else(|e| panic!("{e}")).record;
    write(&format!("atrium-{tenant}-web-g{}", record.generation), "live");
    let port = |record: &atrium_engine::model::app_instance::AppInstanceRecord| record.published_port.unwrap();
    assert_eq!(read(port(&record)), ("live".to_owned(), "live".to_owned()));

    let mut failed_steps = Vec::new();
    'steps: for at in 1.. {
        for failure in [InjectedFailure::Before, InjectedFailure::After] {
            let (restored, reached) =
                with_injected_failure(at, failure, context.restore(id, &snapshot.id, |_| {})).await;
            let restored = restored.expect("a restore is never dropped here");
            let record = fixture.registry.get_app_instance(id).await.unwrap().unwrap();
            if !reached {
                // Past the last step: the restore ran whole.
                let restored = restored.unwrap_or_else(|error| panic!("{error}"));
                assert_eq!(restored.restored.version.as_deref(), Some("1.0"));
                assert_eq!(read(port(&record)), ("snapshot".to_owned(), "snapshot".to_owned()));
                break 'steps;
            }
            let message = restored.expect_err("the injected failure fails the restore").to_string();
            let step = message.split("step \"").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or_default();
            assert!(!step.is_empty(), "{message}");
            if failure == InjectedFailure::Before {
                failed_steps.push(step.to_owned());
            }
            // From putting the data in on, the data it replaced is put back.
            let undone = failed_steps.iter().any(|s| s == "put the data in");
            let kept = if undone { "was put back from snapshot" } else { "nothing was changed" };
            assert!(message.contains(kept), "at {at} {failure:?}: {message}");
            assert_eq!(read(port(&record)), ("live".to_owned(), "live".to_owned()), "at {at} {failure:?}: {message}");
            assert_eq!(docker_exec(&backups, "ls -A /backup | grep -c '^restore' || true").trim(), "0", "at {at}");
        }
    }
    assert_eq!(
        failed_steps,
        [
            "back up the data the restore replaces",
            "stage the snapshot",
            "stop the app",
            "put the data in",
            "migrate the data",
            "start the app",
            "wait until the app is healthy",
        ]
    );

    spec.delete_data_on_destroy = true;
    context.deploy(&spec, None, None).await.unwrap_or_else(|e| panic!("{e}"));
    context.destroy(id).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(fixture.containers().await.is_empty());
    let volumes = fixture.runtime().await.list_managed_volumes().await.unwrap();
    let prefix = format!("atrium-{tenant}-web-");
    assert!(!volumes.iter().any(|volume| volume.name.starts_with(&prefix)), "{volumes:?}");
}
