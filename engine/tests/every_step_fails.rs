//! One generic test of every resource change that runs through the apply
//! runner: each step fails in turn, before it did anything and after it did
//! everything (so that its undo has something to remove), as the runner's
//! failure injection makes it fail. Each time, the apply must fail clearly,
//! everything it did must be undone (the world is as it was, the journal
//! empty), the next apply must converge, and a destroy must leave nothing on
//! any backend. A resource joins by describing one change as a [`Case`].

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use atrium_engine::apply::runner::{InjectedFailure, with_injected_failure};
use atrium_engine::apply::support_plan::SupportPlanContext;
use atrium_engine::apply::tenant::{ApplyContext, apply_tenant_change};
use atrium_engine::backends::redmine::Redmine;
use atrium_engine::backends::tracker::Tracker as _;
use atrium_engine::model::TenantId;
use atrium_engine::model::ownership::{CreateToken, ObjectKind};
use atrium_engine::model::support_plan::{SupportLevel, SupportPlanSpec};
use atrium_engine::model::tenant::{Manager, TenantSpec, Tier};
use atrium_engine::observe::TenantObserver;
use atrium_engine::plan::tenant::plan_tenant;
use atrium_engine::registry::Registry;
use atrium_engine::test_services::{registry_with_tenant, service_variable, test_owner};

type Checked = Result<(), String>;

/// One change of one resource, on its own names and registry.
#[async_trait]
trait Case: Send + Sync {
    fn registry(&self) -> &Registry;
    /// Brings the world to where the change starts.
    async fn prepare(&self) -> Checked;
    /// The change under test, as an apply runs it.
    async fn change(&self) -> Checked;
    /// That the world is as `prepare` left it.
    async fn check_unchanged(&self) -> Checked;
    /// That the world is as the change asks.
    async fn check_changed(&self) -> Checked;
    /// Destroys what is left, then checks that no backend holds anything.
    async fn destroy_and_check_empty(&self) -> Checked;
}

type NewCase = fn(String, Change) -> Pin<Box<dyn Future<Output = Box<dyn Case>> + Send>>;

/// Every step of the case's change fails in turn, both ways; returns how
/// many steps the change has.
async fn every_step_fails(label: &str, change: Change, new_case: NewCase) -> usize {
    let mut steps = 0;
    for failure in [InjectedFailure::Before, InjectedFailure::After] {
        let mut at = 1;
        loop {
            let name = format!("es{}-{label}-{at}{}", std::process::id() % 10_000, failure_letter(failure));
            let case = new_case(name, change).await;
            case.prepare().await.unwrap_or_else(|error| panic!("{label}: prepare: {error}"));
            let (result, reached) = with_injected_failure(at, failure, case.change()).await;
            if !reached {
                result.unwrap_or_else(|error| panic!("{label}: without a failure the change fails: {error}"));
                case.check_changed().await.unwrap_or_else(|error| panic!("{label}: {error}"));
                case.destroy_and_check_empty().await.unwrap_or_else(|error| panic!("{label}: {error}"));
                break;
            }
            let context = format!("{label}, step {at} failing {failure:?}");
            let error = match result {
                Ok(()) => panic!("{context}: the apply succeeded"),
                Err(error) => error,
            };
            assert!(error.contains("failure injected"), "{context}: the error does not say what failed: {error}");
            case.check_unchanged().await.unwrap_or_else(|problem| panic!("{context}: not undone: {problem}"));
            let journal = case.registry().journal_operations().await.expect("read the journal");
            assert!(journal.is_empty(), "{context}: the journal keeps {journal:?} after a complete undo");
            case.change().await.unwrap_or_else(|error| panic!("{context}: the next apply fails: {error}"));
            case.check_changed().await.unwrap_or_else(|problem| panic!("{context}: not converged: {problem}"));
            case.destroy_and_check_empty().await.unwrap_or_else(|problem| panic!("{context}: {problem}"));
            at += 1;
        }
        steps = at - 1;
    }
    assert!(steps > 0, "{label}: the change ran no step");
    eprintln!("{label}: each of {steps} steps failed before and after doing its work; all undone and converged");
    steps
}

fn failure_letter(failure: InjectedFailure) -> char {
    match failure {
        InjectedFailure::Before => 'b',
        InjectedFailure::After => 'a',
    }
}

fn ensure(condition: bool, problem: impl FnOnce() -> String) -> Checked {
    if condition { Ok(()) } else { Err(problem()) }
}

// ---------------------------------------------------------------- tenants

/// Which tenant change a case makes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    Create,
    Update,
    Delete,
}

struct TenantCase {
    _directory: tempfile::TempDir,
    registry: Registry,
    observer: TenantObserver,
    name: TenantId,
    change: Change,
}

impl TenantCase {
    async fn open(name: String, change: Change) -> Box<dyn Case> {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", directory.path().join("atrium.db").display());
        let registry = Registry::connect(&url).await.expect("open the registry");
        let observer = TenantObserver::new(registry.clone());
        let name = TenantId::parse(&name).expect("a valid tenant name");
        Box::new(TenantCase { _directory: directory, registry, observer, name, change })
    }

    fn spec(&self, display_name: &str) -> TenantSpec {
        TenantSpec {
            name: self.name.clone(),
            display_name: display_name.to_owned(),
            tier: Tier::Business,
            user_quota: 40,
            expires_on: None,
            manager: Manager { email: "boss@acme.example".into(), name: "Boss".into() },
            welcome_email: false,
        }
    }

    /// Plans `desired` over what the registry holds and applies it.
    async fn apply(&self, desired: Option<&TenantSpec>) -> Checked {
        self.observer.invalidate().await;
        let current = self.registry.get_tenant(&self.name).await.map_err(|e| e.to_string())?;
        let Some(change) = plan_tenant(desired, current.as_ref()) else { return Ok(()) };
        let token = CreateToken::new();
        let (_, cancelled) = tokio::sync::watch::channel(false);
        let context = ApplyContext {
            owner: test_owner(),
            create_token: &token,
            deadline: std::time::Duration::from_secs(10),
            cancelled,
        };
        apply_tenant_change(&self.observer, &change, &context)
            .await
            .map(|_| ())
            .map_err(|error| atrium_engine::backends::error_chain(&error))
    }

    /// The display name of the tenant's row, and whether its name is claimed.
    async fn look(&self) -> Result<(Option<String>, bool), String> {
        let row = self.registry.get_tenant(&self.name).await.map_err(|e| e.to_string())?;
        let claim = self.registry.get_claim(ObjectKind::Tenant, self.name.as_str()).await.map_err(|e| e.to_string())?;
        Ok((row.map(|row| row.spec.display_name), claim.is_some()))
    }

    async fn expect(&self, display_name: Option<&str>) -> Checked {
        let (row, claimed) = self.look().await?;
        ensure(row.as_deref() == display_name, || format!("the tenant's row is {row:?}, not {display_name:?}"))?;
        ensure(claimed == display_name.is_some(), || format!("the tenant's name is claimed: {claimed}"))
    }
}

#[async_trait]
impl Case for TenantCase {
    fn registry(&self) -> &Registry {
        &self.registry
    }

    async fn prepare(&self) -> Checked {
        match self.change {
            Change::Create => Ok(()),
            Change::Update | Change::Delete => self.apply(Some(&self.spec("Before"))).await,
        }
    }

    async fn change(&self) -> Checked {
        match self.change {
            Change::Create | Change::Update => self.apply(Some(&self.spec("After"))).await,
            Change::Delete => self.apply(None).await,
        }
    }

    async fn check_unchanged(&self) -> Checked {
        self.expect(if self.change == Change::Create { None } else { Some("Before") }).await
    }

    async fn check_changed(&self) -> Checked {
        self.expect(if self.change == Change::Delete { None } else { Some("After") }).await
    }

    async fn destroy_and_check_empty(&self) -> Checked {
        self.apply(None).await?;
        self.expect(None).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_step_fails_in_turn_and_converges() {
    for (label, change) in [("tc", Change::Create), ("tu", Change::Update), ("td", Change::Delete)] {
        every_step_fails(label, change, |name, change| Box::pin(TenantCase::open(name, change))).await;
    }
}

// ---------------------------------------------------------- support plans

struct SupportPlanCase {
    _directory: tempfile::TempDir,
    registry: Registry,
    tracker: Redmine,
    tenant: TenantId,
    change: Change,
}

impl SupportPlanCase {
    async fn open(name: String, change: Change) -> Box<dyn Case> {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let registry = registry_with_tenant(directory.path(), &name).await;
        let tracker = Redmine::new(
            &service_variable("ATRIUM_TEST_REDMINE_URL"),
            &service_variable("ATRIUM_TEST_REDMINE_API_KEY"),
        );
        let tenant = TenantId::parse(&name).expect("a valid tenant name");
        Box::new(SupportPlanCase { _directory: directory, registry, tracker, tenant, change })
    }

    fn context(&self) -> SupportPlanContext<'_> {
        let (_, cancelled) = tokio::sync::watch::channel(false);
        SupportPlanContext {
            registry: &self.registry,
            tracker: Some(&self.tracker),
            tracker_role: "Reporter",
            owner: test_owner(),
            deadline: std::time::Duration::from_secs(10),
            cancelled,
        }
    }

    fn spec(&self, tracker_access: bool) -> SupportPlanSpec {
        SupportPlanSpec {
            tenant_id: self.tenant.clone(),
            level: SupportLevel::Standard8x5,
            channels: ["email".to_owned()].into(),
            first_response_minutes: if tracker_access { 240 } else { 480 },
            tracker_access,
        }
    }

    async fn create(&self, tracker_access: bool) -> Checked {
        let spec = self.spec(tracker_access);
        self.context().apply(&spec, Some(&CreateToken::new())).await.map(|_| ()).map_err(|e| error_text(&e))
    }

    /// The plan as the registry and the tracker have it: the row's
    /// first-response target, whether the project exists, whether the
    /// manager is a member, whether the plan is claimed.
    async fn look(&self) -> Result<(Option<u32>, bool, bool, bool), String> {
        let row = self.registry.get_support_plan(&self.tenant).await.map_err(|e| e.to_string())?;
        let project = self.tracker.observe(self.tenant.as_str()).await.map_err(|e| error_text(&e))?;
        let member = project.as_ref().is_some_and(|project| !project.member_logins.is_empty());
        let claim =
            self.registry.get_claim(ObjectKind::SupportPlan, self.tenant.as_str()).await.map_err(|e| e.to_string())?;
        Ok((row.map(|row| row.spec.first_response_minutes), project.is_some(), member, claim.is_some()))
    }

    /// That the plan is absent, or present with or without the manager's access.
    async fn expect(&self, plan: Option<bool>) -> Checked {
        let seen = self.look().await?;
        let wanted = match plan {
            None => (None, false, false, false),
            Some(access) => (Some(if access { 240 } else { 480 }), true, access, true),
        };
        ensure(seen == wanted, || format!("(row, project, member, claim) is {seen:?}, not {wanted:?}"))
    }
}

fn error_text(error: &dyn std::error::Error) -> String {
    atrium_engine::backends::error_chain(error)
}

#[async_trait]
impl Case for SupportPlanCase {
    fn registry(&self) -> &Registry {
        &self.registry
    }

    async fn prepare(&self) -> Checked {
        match self.change {
            Change::Create => Ok(()),
            Change::Update | Change::Delete => self.create(false).await,
        }
    }

    async fn change(&self) -> Checked {
        match self.change {
            Change::Create => self.create(true).await,
            Change::Update => {
                self.context().apply(&self.spec(true), None).await.map(|_| ()).map_err(|e| error_text(&e))
            }
            Change::Delete => self.context().destroy(&self.tenant).await.map_err(|e| error_text(&e)),
        }
    }

    async fn check_unchanged(&self) -> Checked {
        self.expect(if self.change == Change::Create { None } else { Some(false) }).await
    }

    async fn check_changed(&self) -> Checked {
        self.expect(if self.change == Change::Delete { None } else { Some(true) }).await
    }

    async fn destroy_and_check_empty(&self) -> Checked {
        self.context().destroy(&self.tenant).await.map_err(|e| error_text(&e))?;
        self.expect(None).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_support_plan_step_fails_in_turn_and_converges() {
    for (label, change) in [("sc", Change::Create), ("su", Change::Update), ("sd", Change::Delete)] {
        every_step_fails(label, change, |name, change| Box::pin(SupportPlanCase::open(name, change))).await;
    }
}
