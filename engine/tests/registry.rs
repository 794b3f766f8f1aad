//! Integration tests: the registry and tenant apply against real SQLite files
//! and a real PostgreSQL (started by `scripts/services.sh`), each test on its
//! own database.

use std::time::Duration;

use atrium_engine::apply::tenant::{ApplyContext, TenantApplyError, apply_tenant_change};
use atrium_engine::model::TenantId;
use atrium_engine::model::app_instance::{AppInstanceRecord, WelcomeState};
use atrium_engine::model::backup::BackupSettings;
use atrium_engine::model::tenant::{Manager, TenantSpec, Tier};
use atrium_engine::observe::TenantObserver;
use atrium_engine::plan::tenant::{Action, plan_tenant};
use atrium_engine::registry::{InsertOutcome, Registry, RegistryKind};
use atrium_engine::test_services::fresh_postgres_database;

fn spec(name: &str) -> TenantSpec {
    TenantSpec {
        name: TenantId::parse(name).unwrap(),
        display_name: format!("{name} Ltd"),
        tier: Tier::Business,
        user_quota: 40,
        expires_on: Some(atrium_engine::model::validate::date("2027-03-31").unwrap()),
        manager: Manager { email: format!("boss@{name}.example"), name: "Boss".into() },
        welcome_email: true,
    }
}

async fn sqlite_registry(directory: &tempfile::TempDir) -> Registry {
    let url = format!("sqlite://{}", directory.path().join("atrium.db").display());
    Registry::connect(&url).await.expect("open sqlite registry")
}

async fn postgres_registry(test_name: &str) -> Registry {
    Registry::connect(&fresh_postgres_database(test_name).await).await.expect("open postgres registry")
}

async fn check_tenant_round_trip(registry: Registry) {
    let acme = spec("acme");
    let created = registry.insert_tenant(&acme, "terraform").await.unwrap();
    let InsertOutcome::Created(record) = created else { panic!("expected a new row, got {created:?}") };
    assert_eq!(record.spec, acme);
    assert!(record.created_at.ends_with('Z'));

    // Repeating the create (an interrupted apply retried) finds the same row.
    assert!(matches!(registry.insert_tenant(&acme, "terraform").await.unwrap(), InsertOutcome::AlreadyPresent(_)));
    // A different spec or owner under the same name is a conflict, never an overwrite.
    let mut other = acme.clone();
    other.display_name = "Someone else".into();
    assert!(matches!(registry.insert_tenant(&other, "terraform").await.unwrap(), InsertOutcome::Conflict(_)));
    assert!(matches!(registry.insert_tenant(&acme, "cli").await.unwrap(), InsertOutcome::Conflict(_)));

    let mut updated = acme.clone();
    updated.tier = Tier::Enterprise;
    updated.expires_on = None;
    let record = registry.update_tenant(&updated).await.unwrap().unwrap();
    assert_eq!(record.spec, updated);
    assert!(registry.update_tenant(&spec("nobody")).await.unwrap().is_none());

    // An app instance's row keeps its own backup settings (and none is none).
    let mut instance = atrium_engine::test_services::hello_spec("acme", "1.1");
    for backup in
        [None, Some(BackupSettings { interval: Some("30m".into()), keep_daily: Some(3), ..Default::default() })]
    {
        instance.backup = backup;
        let row = AppInstanceRecord {
            spec: instance.clone(),
            generation: 1,
            previous_version: None,
            deployed_at: "2026-12-03T10:00:00Z".into(),
            published_port: Some(32768),
            published_host: None,
            moved_from: None,
            secrets: Default::default(),
            manager_password_hash: String::new(),
            welcome: WelcomeState::Off,
            password_given: false,
            owner: "terraform".into(),
            created_at: "2026-12-03T10:00:00Z".into(),
        };
        registry.put_app_instance(&row).await.unwrap();
        assert_eq!(registry.get_app_instance(&instance.id).await.unwrap().unwrap().spec, instance);
    }
    assert!(registry.delete_app_instance(&instance.id).await.unwrap());

    assert_eq!(registry.list_tenants().await.unwrap().len(), 1);
    assert!(registry.delete_tenant(&acme.name).await.unwrap());
    assert!(!registry.delete_tenant(&acme.name).await.unwrap(), "deleting twice is fine and reports nothing deleted");
    assert_eq!(registry.count_tenants().await.unwrap(), 0);
}

#[tokio::test]
async fn sqlite_registry_round_trips_tenants() {
    let directory = tempfile::tempdir().unwrap();
    let registry = sqlite_registry(&directory).await;
    assert_eq!(registry.kind(), RegistryKind::Sqlite);
    assert_eq!(registry.sqlite_journal_mode().await.unwrap(), "wal");
    check_tenant_round_trip(registry).await;
}

#[tokio::test]
async fn postgres_registry_round_trips_tenants() {
    let registry = postgres_registry("round_trip").await;
    assert_eq!(registry.kind(), RegistryKind::Postgres);
    check_tenant_round_trip(registry).await;
}

#[tokio::test]
async fn migrations_run_once_and_reopening_keeps_data() {
    let directory = tempfile::tempdir().unwrap();
    let registry = sqlite_registry(&directory).await;
    registry.insert_tenant(&spec("keep"), "terraform").await.unwrap();
    registry.close().await;
    let reopened = sqlite_registry(&directory).await;
    assert_eq!(reopened.count_tenants().await.unwrap(), 1);

    let url = fresh_postgres_database("reopen").await;
    let first = Registry::connect(&url).await.unwrap();
    first.insert_tenant(&spec("keep"), "terraform").await.unwrap();
    let second = Registry::connect(&url).await.unwrap();
    assert_eq!(second.count_tenants().await.unwrap(), 1);
}

#[tokio::test]
async fn unreachable_registry_is_a_clear_error_without_the_password() {
    let error = Registry::connect("postgres://atrium:hunter2@127.0.0.1:1/atrium").await.unwrap_err();
    let text = format!("{error}");
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn observer_serves_a_refresh_from_one_listing() {
    let directory = tempfile::tempdir().unwrap();
    let registry = sqlite_registry(&directory).await;
    for index in 0..50 {
        registry.insert_tenant(&spec(&format!("tenant-{index:02}")), "terraform").await.unwrap();
    }
    let observer = TenantObserver::new(registry.clone());
    for index in 0..50 {
        let found = observer.observe(&TenantId::parse(&format!("tenant-{index:02}")).unwrap()).await.unwrap();
        assert!(found.is_some());
    }
    assert!(observer.observe(&TenantId::parse("missing").unwrap()).await.unwrap().is_none());
    assert_eq!(observer.listings(), 1, "51 reads, one registry listing");
    // A write through the observer's apply path invalidates the snapshot.
    observer.invalidate().await;
    observer.observe(&TenantId::parse("tenant-00").unwrap()).await.unwrap();
    assert_eq!(observer.listings(), 2);
}

#[tokio::test]
async fn cancelled_apply_changes_nothing_and_a_second_apply_converges() {
    let directory = tempfile::tempdir().unwrap();
    let registry = sqlite_registry(&directory).await;
    let observer = TenantObserver::new(registry.clone());
    let change = plan_tenant(Some(&spec("acme")), None).unwrap();
    assert_eq!(change.action, Action::Create);

    let (stop, cancelled) = tokio::sync::watch::channel(true);
    let context = ApplyContext {
        owner: atrium_engine::test_services::test_owner(),
        create_token: &atrium_engine::model::ownership::CreateToken::new(),
        deadline: Duration::from_secs(5),
        cancelled,
    };
    let error = apply_tenant_change(&observer, &change, &context).await.unwrap_err();
    assert!(matches!(error, TenantApplyError::Cancelled { .. }));
    assert_eq!(registry.count_tenants().await.unwrap(), 0);

    stop.send_replace(false);
    let context = ApplyContext {
        owner: atrium_engine::test_services::test_owner(),
        create_token: &atrium_engine::model::ownership::CreateToken::new(),
        deadline: Duration::from_secs(5),
        cancelled: stop.subscribe(),
    };
    apply_tenant_change(&observer, &change, &context).await.unwrap();
    // The same create again (state lost after commit) converges without a duplicate.
    apply_tenant_change(&observer, &change, &context).await.unwrap();
    assert_eq!(registry.count_tenants().await.unwrap(), 1);
}

#[tokio::test]
async fn concurrent_writers_on_sqlite_all_succeed() {
    let directory = tempfile::tempdir().unwrap();
    let registry = sqlite_registry(&directory).await;
    let mut tasks = Vec::new();
    for index in 0..40 {
        let registry = registry.clone();
        tasks.push(tokio::spawn(async move {
            registry.insert_tenant(&spec(&format!("writer-{index:02}")), "terraform").await
        }));
    }
    for task in tasks {
        assert!(matches!(task.await.unwrap().unwrap(), InsertOutcome::Created(_)));
    }
    assert_eq!(registry.count_tenants().await.unwrap(), 40);
}

/// The variable that turns this test binary into one process opening a
/// registry (see the test below, which starts several such processes).
const OPEN_REGISTRY_CHILD: &str = "ATRIUM_TEST_OPEN_REGISTRY_AT";

/// Starts `processes` copies of this test binary that each open the registry
/// at `url` as soon as the file `go` appears, and returns each one's outcome.
fn open_in_processes(url: &str, processes: usize, go: &std::path::Path) -> Vec<std::process::Output> {
    let executable = std::env::current_exe().expect("the test binary");
    let children: Vec<_> = (0..processes)
        .map(|_| {
            std::process::Command::new(&executable)
                .args(["--exact", "processes_opening_a_new_registry_at_once_all_migrate", "--nocapture"])
                .env(OPEN_REGISTRY_CHILD, url)
                .env("ATRIUM_TEST_OPEN_REGISTRY_GO", go)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start a child process")
        })
        .collect();
    // Every child is waiting for the go file: they all start migrating at once.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(go, b"go").expect("write the go file");
    children.into_iter().map(|child| child.wait_with_output().expect("wait for a child")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_opening_a_new_registry_at_once_all_migrate() {
    if let Ok(url) = std::env::var(OPEN_REGISTRY_CHILD) {
        // One of the processes: wait for the others, then open the registry.
        let go = std::path::PathBuf::from(std::env::var("ATRIUM_TEST_OPEN_REGISTRY_GO").unwrap());
        while !go.exists() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let registry = Registry::connect(&url)
            .await
            .unwrap_or_else(|error| panic!("cannot open: {}", atrium_engine::backends::error_chain(&error)));
        assert_eq!(registry.count_tenants().await.unwrap(), 0);
        registry.close().await;
        return;
    }
    for round in 0..3 {
        let directory = tempfile::tempdir().unwrap();
        let sqlite = format!("sqlite://{}", directory.path().join("new.db").display());
        let postgres = fresh_postgres_database("open_at_once").await;
        for (kind, url) in [("SQLite", sqlite), ("PostgreSQL", postgres)] {
            let go = directory.path().join(format!("go-{kind}"));
            for output in open_in_processes(&url, 6, &go) {
                assert!(
                    output.status.success(),
                    "round {round}, {kind}: a process could not open the new registry:\n{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
    }
}

#[tokio::test]
async fn claims_refuse_other_owners_resume_interrupted_creates_and_confirm_in_bulk() {
    use atrium_engine::model::ownership::{ClaimRefusal, CreateDecision, CreateToken, ObjectKind, Owner};
    use atrium_engine::registry::ClaimOutcome;
    for registry in [sqlite_registry(&tempfile::tempdir().unwrap()).await, postgres_registry("claims").await] {
        let tenant = TenantId::parse("acme").unwrap();
        let (first, second) = (Owner::terraform("/work/first"), Owner::terraform("/work/second"));
        let earlier = CreateToken::from_stored("0123456789abcdef.earlier");
        let claim = |key: &'static str, owner: &'static Owner, token: &CreateToken| {
            let (registry, tenant, token) = (&registry, &tenant, token.clone());
            async move { registry.claim_for_create(ObjectKind::AppInstance, key, tenant, owner, &token).await.unwrap() }
        };
        let first: &'static Owner = Box::leak(Box::new(first));
        let second: &'static Owner = Box::leak(Box::new(second));
        assert_eq!(claim("acme/web", first, &earlier).await, ClaimOutcome::Claimed(CreateDecision::New));
        // Another owner is refused, whatever it wants.
        assert!(matches!(
            claim("acme/web", second, &CreateToken::new()).await,
            ClaimOutcome::Refused { refusal: ClaimRefusal::OtherOwner { .. }, .. }
        ));
        // The same owner, later, finishes the interrupted create under its own token.
        let resumed = CreateToken::new();
        assert_eq!(
            claim("acme/web", first, &resumed).await,
            ClaimOutcome::Claimed(CreateDecision::Resume { previous_token: earlier.clone() })
        );
        // Once a state shows the token, the name is taken even for its owner.
        let many: Vec<_> = (0..1200)
            .map(|n| (ObjectKind::AppInstance, format!("acme/i{n}"), CreateToken::new(), first.clone()))
            .collect();
        for (kind, key, token, owner) in &many {
            registry.claim_for_create(*kind, key, &tenant, owner, token).await.unwrap();
        }
        let mut confirmations = many.clone();
        confirmations.push((ObjectKind::AppInstance, "acme/web".into(), resumed.clone(), first.clone()));
        registry.confirm_claims(&confirmations).await.unwrap();
        assert!(registry.list_claims().await.unwrap().iter().all(|claim| claim.confirmed), "all confirmed at once");
        assert!(matches!(
            claim("acme/web", first, &CreateToken::new()).await,
            ClaimOutcome::Refused { refusal: ClaimRefusal::AlreadyManaged, .. }
        ));
        // A release by an old token leaves the claim; a release by its token frees the name.
        registry.release_claim_of(ObjectKind::AppInstance, "acme/web", &earlier).await.unwrap();
        assert!(registry.get_claim(ObjectKind::AppInstance, "acme/web").await.unwrap().is_some());
        registry.release_claim_of(ObjectKind::AppInstance, "acme/web", &resumed).await.unwrap();
        assert!(registry.get_claim(ObjectKind::AppInstance, "acme/web").await.unwrap().is_none());
        registry.close().await;
    }
}
