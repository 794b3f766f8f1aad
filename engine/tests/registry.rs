//! Integration tests: the registry and tenant apply against real SQLite files
//! and a real PostgreSQL (started by `scripts/services.sh`), each test on its
//! own database.

use std::time::Duration;

use atrium_engine::model::TenantId;
use atrium_engine::model::tenant::{Manager, TenantSpec, Tier};
use atrium_engine::observe::TenantObserver;
use atrium_engine::plan::{Action, plan_tenant};
use atrium_engine::registry::{InsertOutcome, Registry, RegistryKind};
use atrium_engine::tenant_apply::{ApplyContext, TenantApplyError, apply_tenant_change};
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
    let context = ApplyContext { owner: "terraform", deadline: Duration::from_secs(5), cancelled };
    let error = apply_tenant_change(&observer, &change, &context).await.unwrap_err();
    assert!(matches!(error, TenantApplyError::Cancelled { .. }));
    assert_eq!(registry.count_tenants().await.unwrap(), 0);

    stop.send_replace(false);
    let context = ApplyContext { owner: "terraform", deadline: Duration::from_secs(5), cancelled: stop.subscribe() };
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
