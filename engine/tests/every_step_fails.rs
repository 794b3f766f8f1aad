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
use std::collections::BTreeMap;

use atrium_engine::apply::app_instance::AppContext;
use atrium_engine::apply::domain::DomainApplyContext;
use atrium_engine::apply::runner::{InjectedFailure, with_injected_failure};
use atrium_engine::apply::support_plan::SupportPlanContext;
use atrium_engine::apply::suspension::enforce;
use atrium_engine::apply::tenant::{ApplyContext, apply_tenant_change};
use atrium_engine::backends::dns::DnsZones as _;
use atrium_engine::backends::ingress::RouteHandler;
use atrium_engine::backends::powerdns::PowerDns;
use atrium_engine::backends::redmine::Redmine;
use atrium_engine::backends::resolver::DnsResolver;
use atrium_engine::backends::targets::Targets;
use atrium_engine::backends::tracker::Tracker as _;
use atrium_engine::catalog::Catalog;
use atrium_engine::catalog::labels;
use atrium_engine::model::TenantId;
use atrium_engine::model::TenantStatus;
use atrium_engine::model::app_instance::{AppInstanceRecord, AppInstanceSpec};
use atrium_engine::model::domain::{DomainSpec, DomainStatus, Hostname, TlsMode};
use atrium_engine::model::ownership::{CreateToken, ObjectKind};
use atrium_engine::model::support_plan::{SupportLevel, SupportPlanSpec};
use atrium_engine::model::tenant::{Manager, TenantSpec, Tier};
use atrium_engine::observe::TenantObserver;
use atrium_engine::observe::{AppObservations, DomainObservations};
use atrium_engine::plan::tenant::plan_tenant;
use atrium_engine::registry::Registry;
use atrium_engine::test_services::{
    hello_spec, hello_with_database, registry_with_tenant, service_variable, test_owner, test_target,
};

type Checked = Result<(), String>;

/// One change of one resource, on its own names and registry.
#[async_trait]
trait Case: Send + Sync {
    fn registry(&self) -> &Registry;
    /// Brings the world to where the change starts.
    async fn prepare(&self) -> Checked;
    /// The change under test, as an apply runs it; a create claims its
    /// object with `token`.
    async fn change(&self, token: &CreateToken) -> Checked;
    /// That the world is as `prepare` left it.
    async fn check_unchanged(&self) -> Checked;
    /// That the world is as the change asks.
    async fn check_changed(&self) -> Checked;
    /// Destroys what is left, then checks that no backend holds anything.
    async fn destroy_and_check_empty(&self) -> Checked;
}

type NewCase = fn(String, Change) -> Pin<Box<dyn Future<Output = Box<dyn Case>> + Send>>;

/// Every step of the case's change fails in turn, each way; returns how
/// many steps the change has.
async fn every_step_fails(label: &str, change: Change, new_case: NewCase) -> usize {
    let failures = [InjectedFailure::Before, InjectedFailure::After, InjectedFailure::Crash];
    every_step_fails_as(label, change, new_case, &failures).await
}

/// Every step of the case's change fails in turn, each of the `failures` ways.
async fn every_step_fails_as(label: &str, change: Change, new_case: NewCase, failures: &[InjectedFailure]) -> usize {
    let mut steps = 0;
    for &failure in failures {
        let mut at = 1;
        loop {
            let name = format!("es{}-{label}-{at}{}", std::process::id() % 10_000, failure_letter(failure));
            let case = new_case(name, change).await;
            case.prepare().await.unwrap_or_else(|error| panic!("{label}: prepare: {error}"));
            // A crashed run stands for an earlier process of the same configuration.
            let token = match failure {
                InjectedFailure::Crash => CreateToken::from_stored(&format!("feedfacefeedface.{label}{at}")),
                _ => CreateToken::new(),
            };
            let (result, reached) = with_injected_failure(at, failure, case.change(&token)).await;
            if !reached {
                let result = result.expect("no crash was injected");
                result.unwrap_or_else(|error| panic!("{label}: without a failure the change fails: {error}"));
                case.check_changed().await.unwrap_or_else(|error| panic!("{label}: {error}"));
                case.destroy_and_check_empty().await.unwrap_or_else(|error| panic!("{label}: {error}"));
                break;
            }
            let context = format!("{label}, step {at} failing {failure:?}");
            match result {
                Some(Ok(())) => panic!("{context}: the apply succeeded"),
                Some(Err(error)) if !error.contains("failure injected") => {
                    panic!("{context}: the error does not say what failed: {error}")
                }
                // Past a step that cannot be undone, the next apply finishes the change.
                Some(Err(error)) if error.contains("point of no return") => {}
                Some(Err(_)) => {
                    case.check_unchanged().await.unwrap_or_else(|problem| panic!("{context}: not undone: {problem}"));
                    let journal = case.registry().journal_operations().await.expect("read the journal");
                    assert!(journal.is_empty(), "{context}: the journal keeps {journal:?} after a complete undo");
                }
                // A crash undoes nothing: the next apply finishes what the journal shows.
                None => {}
            }
            case.change(&CreateToken::new())
                .await
                .unwrap_or_else(|error| panic!("{context}: the next apply fails: {error}"));
            case.check_changed().await.unwrap_or_else(|problem| panic!("{context}: not converged: {problem}"));
            let journal = case.registry().journal_operations().await.expect("read the journal");
            assert!(journal.is_empty(), "{context}: the journal keeps {journal:?} after the change converged");
            case.destroy_and_check_empty().await.unwrap_or_else(|problem| panic!("{context}: {problem}"));
            at += 1;
        }
        steps = at - 1;
    }
    assert!(steps > 0, "{label}: the change ran no step");
    eprintln!("{label}: each of {steps} steps failed in turn ({failures:?}); all converged");
    steps
}

fn failure_letter(failure: InjectedFailure) -> char {
    match failure {
        InjectedFailure::Before => 'b',
        InjectedFailure::After => 'a',
        InjectedFailure::Crash => 'c',
    }
}

fn ensure(condition: bool, problem: impl FnOnce() -> String) -> Checked {
    if condition { Ok(()) } else { Err(problem()) }
}

// ---------------------------------------------------------------- tenants

/// Which change a case makes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    Create,
    Update,
    Delete,
    /// A tenant's expiry passed (suspension cases only).
    Suspend,
    /// A suspended tenant's expiry was extended (suspension cases only).
    Resume,
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

    /// Plans `desired` over what the registry holds and applies it (a create
    /// claims the name with `token`).
    async fn apply(&self, desired: Option<&TenantSpec>, token: &CreateToken) -> Checked {
        self.observer.invalidate().await;
        let current = self.registry.get_tenant(&self.name).await.map_err(|e| e.to_string())?;
        let Some(change) = plan_tenant(desired, current.as_ref()) else { return Ok(()) };
        let (_, cancelled) = tokio::sync::watch::channel(false);
        let context = ApplyContext {
            owner: test_owner(),
            create_token: token,
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
            _ => self.apply(Some(&self.spec("Before")), &CreateToken::new()).await,
        }
    }

    async fn change(&self, token: &CreateToken) -> Checked {
        match self.change {
            Change::Delete => self.apply(None, token).await,
            _ => self.apply(Some(&self.spec("After")), token).await,
        }
    }

    async fn check_unchanged(&self) -> Checked {
        self.expect(if self.change == Change::Create { None } else { Some("Before") }).await
    }

    async fn check_changed(&self) -> Checked {
        self.expect(if self.change == Change::Delete { None } else { Some("After") }).await
    }

    async fn destroy_and_check_empty(&self) -> Checked {
        self.apply(None, &CreateToken::new()).await?;
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

    async fn create(&self, tracker_access: bool, token: &CreateToken) -> Checked {
        let spec = self.spec(tracker_access);
        self.context().apply(&spec, Some(token)).await.map(|_| ()).map_err(|e| error_text(&e))
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
            _ => self.create(false, &CreateToken::new()).await,
        }
    }

    async fn change(&self, token: &CreateToken) -> Checked {
        match self.change {
            Change::Create => self.create(true, token).await,
            Change::Delete => self.context().destroy(&self.tenant).await.map_err(|e| error_text(&e)),
            _ => self.context().apply(&self.spec(true), None).await.map(|_| ()).map_err(|e| error_text(&e)),
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

// ---------------------------------------------------------------- domains

/// Deploys and destroys instances in a registry, on the test target.
fn app_context<'a>(
    registry: &'a Registry,
    observations: &'a AppObservations,
    catalog: &'a Catalog,
    targets: &'a Targets,
) -> AppContext<'a> {
    atrium_engine::test_services::app_context(
        registry,
        observations,
        catalog,
        targets,
        std::time::Duration::from_secs(60),
    )
}

/// What the domain cases share: one registry with a tenant and two running
/// `hello` instances (a domain's update moves it from one to the other), a
/// platform zone in PowerDNS, the target's proxy.
struct DomainWorld {
    _directory: tempfile::TempDir,
    registry: Registry,
    targets: Targets,
    dns: PowerDns,
    resolver: DnsResolver,
    zone: String,
    instances: [AppInstanceRecord; 2],
}

impl DomainWorld {
    /// A world whose tenant's name starts with `prefix`.
    async fn open(prefix: &str) -> DomainWorld {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let tenant = format!("{prefix}{}", std::process::id() % 100_000);
        let registry = registry_with_tenant(directory.path(), &tenant).await;
        let zone = format!("{tenant}.atrium.test");
        let dns = PowerDns::new(
            &service_variable("ATRIUM_TEST_PDNS_URL"),
            &service_variable("ATRIUM_TEST_PDNS_API_KEY"),
            "localhost",
        );
        let body =
            serde_json::json!({"name": format!("{zone}."), "kind": "Native", "nameservers": ["ns1.atrium.test."]});
        let status = powerdns_zones(reqwest::Method::POST, "", Some(body)).await;
        assert!(status == 201 || status == 409, "create the test zone: {status}");
        let targets = Targets::new(BTreeMap::from([("local".to_owned(), test_target("ATRIUM_TEST_DOCKER_HOST"))]));
        let resolver = DnsResolver::new(Some(&service_variable("ATRIUM_TEST_PDNS_DNS_ADDRESS"))).expect("a resolver");
        let observations = AppObservations::default();
        let catalog = Catalog::built_in();
        let apps = app_context(&registry, &observations, &catalog, &targets);
        let mut instances = Vec::new();
        for name in ["web", "api"] {
            let mut spec = hello_spec(&tenant, "1.1");
            spec.id.name = name.to_owned();
            spec.delete_data_on_destroy = true;
            instances.push(apps.deploy(&spec, None, None).await.expect("deploy a test instance").record);
        }
        let instances = instances.try_into().expect("two instances");
        DomainWorld { _directory: directory, registry, targets, dns, resolver, zone, instances }
    }

    /// Applies domains in this world.
    fn domains<'a>(&'a self, observations: &'a DomainObservations) -> DomainApplyContext<'a> {
        let (_, cancelled) = tokio::sync::watch::channel(false);
        DomainApplyContext {
            registry: &self.registry,
            observations,
            targets: &self.targets,
            dns: Some(&self.dns),
            resolver: &self.resolver,
            platform_zone: Some(&self.zone),
            platform_certificate: None,
            owner: test_owner(),
            deadline: std::time::Duration::from_secs(10),
            cancelled,
        }
    }

    async fn close(&self) {
        let observations = AppObservations::default();
        let catalog = Catalog::built_in();
        let apps = app_context(&self.registry, &observations, &catalog, &self.targets);
        for instance in &self.instances {
            apps.destroy(&instance.spec.id).await.expect("destroy a test instance");
        }
        let status = powerdns_zones(reqwest::Method::DELETE, &format!("/{}.", self.zone), None).await;
        assert_eq!(status, 204, "remove the test zone");
    }
}

/// Calls PowerDNS's zones API; returns the status.
async fn powerdns_zones(method: reqwest::Method, path: &str, body: Option<serde_json::Value>) -> u16 {
    let url = format!("{}/api/v1/servers/localhost/zones{path}", service_variable("ATRIUM_TEST_PDNS_URL"));
    let mut request =
        reqwest::Client::new().request(method, url).header("X-API-Key", service_variable("ATRIUM_TEST_PDNS_API_KEY"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("reach PowerDNS").status().as_u16()
}

static DOMAIN_WORLD: tokio::sync::OnceCell<DomainWorld> = tokio::sync::OnceCell::const_new();

struct DomainCase {
    world: &'static DomainWorld,
    observations: DomainObservations,
    hostname: Hostname,
    change: Change,
}

impl DomainCase {
    async fn open(name: String, change: Change) -> Box<dyn Case> {
        let world = DOMAIN_WORLD.get_or_init(|| DomainWorld::open("esd")).await;
        let hostname = Hostname::parse(&format!("{name}.{}", world.zone)).expect("a valid host name");
        Box::new(DomainCase { world, observations: DomainObservations::default(), hostname, change })
    }

    fn context(&self) -> DomainApplyContext<'_> {
        self.world.domains(&self.observations)
    }

    /// Points the domain at instance `index`.
    async fn apply(&self, index: usize, create: Option<&CreateToken>) -> Checked {
        let spec = DomainSpec {
            hostname: self.hostname.clone(),
            app_instance_id: self.world.instances[index].spec.id.clone(),
            tls: TlsMode::None,
        };
        self.context().apply(&spec, DomainStatus::Active, create).await.map(|_| ()).map_err(|e| error_text(&e))
    }

    /// The domain as the registry, DNS and the proxy have it: the instance
    /// its row names, its records, the upstream of its route, its claim.
    async fn look(&self) -> Result<(Option<String>, usize, Option<String>, bool), String> {
        let registry = &self.world.registry;
        let row = registry.get_domain(&self.hostname).await.map_err(|e| e.to_string())?;
        let fqdn = self.hostname.fqdn();
        let sets = self.world.dns.list(&format!("{}.", self.world.zone)).await.map_err(|e| error_text(&e))?;
        let records = sets.iter().filter(|set| set.name == fqdn).count();
        let ingress = self.world.targets.ingress("local").await.map_err(|e| error_text(&e))?;
        let routes = ingress.list_routes().await.map_err(|e| error_text(&e))?;
        let upstream =
            routes.into_iter().find(|route| route.hostname == self.hostname.as_str()).map(|route| {
                match route.handler {
                    Some(RouteHandler::Proxy { upstreams }) => upstreams.join(" "),
                    other => format!("{other:?}"),
                }
            });
        let claim = registry.get_claim(ObjectKind::Domain, self.hostname.as_str()).await.map_err(|e| e.to_string())?;
        Ok((row.map(|row| row.spec.app_instance_id.to_string()), records, upstream, claim.is_some()))
    }

    /// That the domain is absent, or serves instance `index`.
    async fn expect(&self, instance: Option<usize>) -> Checked {
        let seen = self.look().await?;
        let wanted = match instance {
            None => (None, 0, None, false),
            Some(index) => {
                let instance = &self.world.instances[index];
                (Some(instance.spec.id.to_string()), 1, loopback_upstream(instance), true)
            }
        };
        ensure(seen == wanted, || format!("(row, records, route, claim) is {seen:?}, not {wanted:?}"))
    }
}

#[async_trait]
impl Case for DomainCase {
    fn registry(&self) -> &Registry {
        &self.world.registry
    }

    async fn prepare(&self) -> Checked {
        match self.change {
            Change::Create => Ok(()),
            _ => self.apply(0, Some(&CreateToken::new())).await,
        }
    }

    async fn change(&self, token: &CreateToken) -> Checked {
        match self.change {
            Change::Create => self.apply(0, Some(token)).await,
            Change::Delete => self.context().destroy(&self.hostname).await.map_err(|e| error_text(&e)),
            _ => self.apply(1, None).await,
        }
    }

    async fn check_unchanged(&self) -> Checked {
        self.expect(if self.change == Change::Create { None } else { Some(0) }).await
    }

    async fn check_changed(&self) -> Checked {
        self.expect(match self.change {
            Change::Create => Some(0),
            Change::Delete => None,
            _ => Some(1),
        })
        .await
    }

    async fn destroy_and_check_empty(&self) -> Checked {
        self.context().destroy(&self.hostname).await.map_err(|e| error_text(&e))?;
        self.expect(None).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_domain_step_fails_in_turn_and_converges() {
    for (label, change) in [("dc", Change::Create), ("du", Change::Update), ("dd", Change::Delete)] {
        every_step_fails(label, change, |name, change| Box::pin(DomainCase::open(name, change))).await;
    }
    DOMAIN_WORLD.get().expect("the domain cases ran").close().await;
}

// ------------------------------------------------------------- suspension

/// What the suspension cases share: a tenant with two running `hello`
/// instances and a platform domain on the first, in a registry of their own.
struct SuspensionWorld {
    world: DomainWorld,
    hostname: Hostname,
}

static SUSPENSION_WORLD: tokio::sync::OnceCell<SuspensionWorld> = tokio::sync::OnceCell::const_new();

impl SuspensionWorld {
    async fn open() -> SuspensionWorld {
        let world = DomainWorld::open("ess").await;
        let hostname = Hostname::parse(&format!("shop.{}", world.zone)).expect("a valid host name");
        let spec = DomainSpec {
            hostname: hostname.clone(),
            app_instance_id: world.instances[0].spec.id.clone(),
            tls: TlsMode::None,
        };
        let observations = DomainObservations::default();
        world
            .domains(&observations)
            .apply(&spec, DomainStatus::Active, Some(&CreateToken::new()))
            .await
            .expect("create the test domain");
        SuspensionWorld { world, hostname }
    }

    async fn close(&self) {
        let observations = DomainObservations::default();
        self.world.domains(&observations).destroy(&self.hostname).await.expect("destroy the test domain");
        self.world.close().await;
    }
}

struct SuspensionCase {
    shared: &'static SuspensionWorld,
    change: Change,
}

impl SuspensionCase {
    async fn open(_: String, change: Change) -> Box<dyn Case> {
        let shared = SUSPENSION_WORLD.get_or_init(SuspensionWorld::open).await;
        Box::new(SuspensionCase { shared, change })
    }

    async fn enforce(&self, status: TenantStatus) -> Checked {
        let world = &self.shared.world;
        let tenant_id = &world.instances[0].spec.id.tenant_id;
        let tenant = world.registry.get_tenant(tenant_id).await.map_err(|e| e.to_string())?.ok_or("no tenant")?;
        let deadline = std::time::Duration::from_secs(30);
        enforce(&world.registry, &world.targets, &tenant, status, deadline).await.map_err(|e| error_text(&e))
    }

    /// The tenant as the registry, Docker and the proxy have it: its
    /// recorded status, whether each instance's containers run, and whether
    /// the domain's route goes to its instance (else what it serves).
    async fn look(&self) -> Result<(String, Vec<bool>, String), String> {
        let world = &self.shared.world;
        let tenant_id = &world.instances[0].spec.id.tenant_id;
        let tenant = world.registry.get_tenant(tenant_id).await.map_err(|e| e.to_string())?.ok_or("no tenant")?;
        let runtime = world.targets.runtime("local").await.map_err(|e| error_text(&e))?;
        let containers = runtime.list_managed().await.map_err(|e| error_text(&e))?;
        let mut running = Vec::new();
        for instance in &world.instances {
            let label = instance.spec.id.to_string();
            let own: Vec<_> = containers.iter().filter(|c| c.labels.get(labels::INSTANCE) == Some(&label)).collect();
            ensure(!own.is_empty(), || format!("{label} has no container"))?;
            running.push(own.iter().all(|container| container.running));
        }
        let instance = world
            .registry
            .get_app_instance(&world.instances[0].spec.id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no instance")?;
        let ingress = world.targets.ingress("local").await.map_err(|e| error_text(&e))?;
        let routes = ingress.list_routes().await.map_err(|e| error_text(&e))?;
        let route = routes.into_iter().find(|route| route.hostname == self.shared.hostname.as_str());
        let serves = match route.and_then(|route| route.handler) {
            Some(RouteHandler::Proxy { upstreams }) if Some(upstreams.join(" ")) == loopback_upstream(&instance) => {
                "the app".to_owned()
            }
            Some(RouteHandler::Suspended { .. }) => "the suspension page".to_owned(),
            other => format!("{other:?}"),
        };
        Ok((tenant.status.as_str().to_owned(), running, serves))
    }

    async fn expect(&self, status: TenantStatus) -> Checked {
        let seen = self.look().await?;
        let active = status == TenantStatus::Active;
        let serves = if active { "the app" } else { "the suspension page" };
        let wanted = (status.as_str().to_owned(), vec![active; self.shared.world.instances.len()], serves.to_owned());
        ensure(seen == wanted, || format!("(status, running, serves) is {seen:?}, not {wanted:?}"))
    }

    fn statuses(&self) -> (TenantStatus, TenantStatus) {
        match self.change {
            Change::Resume => (TenantStatus::Suspended, TenantStatus::Active),
            _ => (TenantStatus::Active, TenantStatus::Suspended),
        }
    }
}

#[async_trait]
impl Case for SuspensionCase {
    fn registry(&self) -> &Registry {
        &self.shared.world.registry
    }

    async fn prepare(&self) -> Checked {
        self.enforce(self.statuses().0).await
    }

    async fn change(&self, _: &CreateToken) -> Checked {
        self.enforce(self.statuses().1).await
    }

    async fn check_unchanged(&self) -> Checked {
        self.expect(self.statuses().0).await
    }

    async fn check_changed(&self) -> Checked {
        self.expect(self.statuses().1).await
    }

    /// Nothing to destroy: the tenant is resumed (the world is removed at the end).
    async fn destroy_and_check_empty(&self) -> Checked {
        self.enforce(TenantStatus::Active).await?;
        self.expect(TenantStatus::Active).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_suspension_step_fails_in_turn_and_converges() {
    for (label, change) in [("ss", Change::Suspend), ("sr", Change::Resume)] {
        every_step_fails(label, change, |name, change| Box::pin(SuspensionCase::open(name, change))).await;
    }
    SUSPENSION_WORLD.get().expect("the suspension cases ran").close().await;
}

// ---------------------------------------------------------- app instances

struct AppCase {
    _directory: tempfile::TempDir,
    registry: Registry,
    observations: AppObservations,
    catalog: Catalog,
    targets: Targets,
    tenant: String,
    change: Change,
    /// `hello` with a PostgreSQL sidecar and backups: its upgrade backs up,
    /// migrates, and puts the backup back when it fails; a row written at
    /// `prepare` must survive every failure.
    database: bool,
}

impl AppCase {
    async fn open(name: String, change: Change) -> Box<dyn Case> {
        Box::new(AppCase::new(name, change, false).await)
    }

    async fn open_with_database(name: String, change: Change) -> Box<dyn Case> {
        Box::new(AppCase::new(name, change, true).await)
    }

    async fn new(name: String, change: Change, database: bool) -> AppCase {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let registry = registry_with_tenant(directory.path(), &name).await;
        let targets = Targets::new(BTreeMap::from([("local".to_owned(), test_target("ATRIUM_TEST_DOCKER_HOST"))]));
        let catalog = if database { hello_with_database(directory.path()) } else { Catalog::built_in() };
        AppCase {
            _directory: directory,
            registry,
            observations: AppObservations::default(),
            catalog,
            targets,
            tenant: name,
            change,
            database,
        }
    }

    /// Runs `sql` in the instance's database; its output.
    async fn sql(&self, sql: &str) -> Result<String, String> {
        let database = format!("atrium-{}-web-postgres", self.tenant);
        let output = tokio::process::Command::new("docker")
            .args(["-H", &service_variable("ATRIUM_TEST_DOCKER_HOST"), "exec", &database])
            .args(["psql", "-tAq", "-U", "hello", "-d", "hello", "-c", sql])
            .output()
            .await
            .map_err(|error| format!("docker exec {database} psql: {error}"))?;
        match output.status.success() {
            true => Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned()),
            false => Err(format!("psql in {database}: {}", String::from_utf8_lossy(&output.stderr))),
        }
    }

    fn context(&self) -> AppContext<'_> {
        app_context(&self.registry, &self.observations, &self.catalog, &self.targets)
    }

    fn spec(&self, version: &str) -> AppInstanceSpec {
        AppInstanceSpec { delete_data_on_destroy: true, users: 1, ..hello_spec(&self.tenant, version) }
    }

    async fn deploy(&self, version: &str, create: Option<&CreateToken>) -> Checked {
        self.context().deploy(&self.spec(version), create, None).await.map(drop).map_err(|e| error_text(&e))
    }

    async fn destroy(&self) -> Checked {
        self.context().destroy(&self.spec("1.0").id).await.map_err(|e| error_text(&e))
    }

    /// The instance as the registry and Docker have it: the recorded
    /// version, its containers (running or not), the tenant's volumes and
    /// network, its claim.
    async fn look(&self) -> Result<(Option<String>, Vec<(String, bool)>, usize, bool, bool), String> {
        let id = self.spec("1.0").id;
        let row = self.registry.get_app_instance(&id).await.map_err(|e| e.to_string())?;
        let runtime = self.targets.runtime("local").await.map_err(|e| error_text(&e))?;
        let label = id.to_string();
        let containers = runtime.list_managed().await.map_err(|e| error_text(&e))?;
        let mut own: Vec<(String, bool)> = containers
            .into_iter()
            .filter(|container| container.labels.get(labels::INSTANCE) == Some(&label))
            .map(|container| (container.name, container.running))
            .collect();
        own.sort();
        let volumes = docker_names("volume", &format!("atrium-{}", self.tenant)).await?;
        let networks = docker_names("network", &format!("atrium-{}", self.tenant)).await?;
        let claim =
            self.registry.get_claim(ObjectKind::AppInstance, &label).await.map_err(|e| e.to_string())?.is_some();
        Ok((row.map(|row| row.spec.version), own, volumes, networks > 0, claim))
    }

    async fn expect(&self, version: Option<&str>) -> Checked {
        let (row, containers, volumes, network, claim) = self.look().await?;
        ensure(row.as_deref() == version, || format!("the row's version is {row:?}, not {version:?}"))?;
        ensure(claim == version.is_some(), || format!("the instance's name is claimed: {claim}"))?;
        // The app, and with a database its sidecar and backup container.
        let expected = if self.database { 3 } else { 1 };
        match version {
            None => ensure(containers.is_empty() && volumes == 0 && !network, || {
                format!("left behind: containers {containers:?}, {volumes} volumes, network: {network}")
            }),
            Some(_) => {
                ensure(containers.len() == expected && containers.iter().all(|c| c.1) && network, || {
                    format!("not {expected} running containers: {containers:?} (network: {network})")
                })?;
                if !self.database {
                    return Ok(());
                }
                let kept = self.sql("SELECT v FROM kept").await?;
                ensure(kept == "written on 1.0", || format!("the database holds {kept:?}, not the row written on 1.0"))
            }
        }
    }
}

/// How many Docker objects of `kind` (`volume`, `network`) have names starting with `prefix`.
async fn docker_names(kind: &str, prefix: &str) -> Result<usize, String> {
    let output = tokio::process::Command::new("docker")
        .args(["-H", &service_variable("ATRIUM_TEST_DOCKER_HOST"), kind, "ls", "--format", "{{.Name}}"])
        .output()
        .await
        .map_err(|error| format!("docker {kind} ls: {error}"))?;
    if !output.status.success() {
        return Err(format!("docker {kind} ls: {}", String::from_utf8_lossy(&output.stderr)));
    }
    Ok(String::from_utf8_lossy(&output.stdout).lines().filter(|name| name.starts_with(prefix)).count())
}

#[async_trait]
impl Case for AppCase {
    fn registry(&self) -> &Registry {
        &self.registry
    }

    async fn prepare(&self) -> Checked {
        match self.change {
            Change::Create => Ok(()),
            _ => {
                self.deploy("1.0", Some(&CreateToken::new())).await?;
                match self.database {
                    true => self
                        .sql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('written on 1.0')")
                        .await
                        .map(drop),
                    false => Ok(()),
                }
            }
        }
    }

    async fn change(&self, token: &CreateToken) -> Checked {
        match self.change {
            Change::Create => self.deploy("1.0", Some(token)).await,
            Change::Delete => self.destroy().await,
            _ => self.deploy("1.1", None).await,
        }
    }

    async fn check_unchanged(&self) -> Checked {
        self.expect(if self.change == Change::Create { None } else { Some("1.0") }).await
    }

    async fn check_changed(&self) -> Checked {
        self.expect(match self.change {
            Change::Create => Some("1.0"),
            Change::Delete => None,
            _ => Some("1.1"),
        })
        .await
    }

    async fn destroy_and_check_empty(&self) -> Checked {
        self.destroy().await?;
        self.expect(None).await
    }
}

/// An upgrade of an app with a database and backups (stop the old version,
/// back up, migrate, start the new one): each of its steps fails in turn, and
/// the row written on the old version is there every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_of_an_upgrade_with_backups_fails_in_turn_and_converges() {
    // A failure before step N leaves what one after step N - 1 leaves (the
    // steps before it undone), which the hello cases check for every step:
    // after each step and by a crash are what this upgrade adds.
    let failures = [InjectedFailure::After, InjectedFailure::Crash];
    let with_database: NewCase = |name, change| Box::pin(AppCase::open_with_database(name, change));
    let steps = every_step_fails_as("ab", Change::Update, with_database, &failures).await;
    assert!(steps >= 5, "the upgrade has its backup and migration steps: {steps} steps");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_app_instance_step_fails_in_turn_and_converges() {
    for (label, change) in [("ac", Change::Create), ("au", Change::Update), ("ad", Change::Delete)] {
        every_step_fails(label, change, |name, change| Box::pin(AppCase::open(name, change))).await;
    }
}

/// The upstream of an instance on the tests' single-engine target, as the route reads.
fn loopback_upstream(instance: &AppInstanceRecord) -> Option<String> {
    instance.published_port.map(|port| format!("127.0.0.1:{port}"))
}

// ------------------------------------------------------------------ moves

/// `hello` with a file in its data volume moves from one engine (`local`)
/// to another (`other`): every failure must leave it serving from `local`
/// with the file, and nothing of it on `other`; the move must leave it
/// serving from `other` with the file, no container on `local`, and
/// `local`'s copy of the data until the destroy deletes both.
struct MoveCase {
    _directory: tempfile::TempDir,
    registry: Registry,
    observations: AppObservations,
    catalog: Catalog,
    targets: Targets,
    tenant: String,
    /// The test services' variable naming the Docker endpoint of target `other`.
    other_host: &'static str,
}

/// What the data volume holds when the move starts.
const MOVED_FILE: &str = "written before the move";

impl MoveCase {
    /// A move from the test engine to the second engine.
    async fn open(name: String, _: Change) -> Box<dyn Case> {
        Box::new(MoveCase::to(name, "ATRIUM_TEST_DOCKER_HOST_2", test_target("ATRIUM_TEST_DOCKER_HOST_2")).await)
    }

    /// A move from the test engine to the three-node swarm.
    async fn open_to_swarm(name: String, _: Change) -> Box<dyn Case> {
        let mut swarm = test_target("ATRIUM_TEST_SWARM_HOST");
        swarm.orchestrator = Some(atrium_engine::config::Orchestrator::Swarm);
        // This machine's kernel has no IPsec for Swarm's encrypted overlay networks.
        swarm.encrypted_networks = Some(false);
        Box::new(MoveCase::to(name, "ATRIUM_TEST_SWARM_HOST", swarm).await)
    }

    async fn to(name: String, other_host: &'static str, other: atrium_engine::config::TargetDocument) -> MoveCase {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let registry = registry_with_tenant(directory.path(), &name).await;
        let targets = Targets::new(BTreeMap::from([
            ("local".to_owned(), test_target("ATRIUM_TEST_DOCKER_HOST")),
            ("other".to_owned(), other),
        ]));
        MoveCase {
            _directory: directory,
            registry,
            observations: AppObservations::default(),
            catalog: Catalog::built_in(),
            targets,
            tenant: name,
            other_host,
        }
    }

    fn spec(&self, target: &str) -> AppInstanceSpec {
        AppInstanceSpec {
            delete_data_on_destroy: true,
            users: 1,
            target: target.to_owned(),
            ..hello_spec(&self.tenant, "1.1")
        }
    }

    async fn deploy(&self, target: &str, create: Option<&CreateToken>) -> Checked {
        let context = app_context(&self.registry, &self.observations, &self.catalog, &self.targets);
        context.deploy(&self.spec(target), create, None).await.map(drop).map_err(|e| error_text(&e))
    }

    /// The instance's containers (name, running) and volumes on `target`,
    /// and whether the tenant's network is there.
    async fn on(&self, target: &str) -> Result<(Vec<(String, bool)>, Vec<String>, bool), String> {
        let runtime = self.targets.runtime(target).await.map_err(|e| error_text(&e))?;
        let id = self.spec(target).id.to_string();
        let containers = runtime.list_managed().await.map_err(|e| error_text(&e))?;
        let containers: Vec<(String, bool)> = containers
            .into_iter()
            .filter(|container| container.labels.get(labels::INSTANCE) == Some(&id))
            .map(|container| (container.name, container.running))
            .collect();
        let volumes = runtime.list_managed_volumes().await.map_err(|e| error_text(&e))?;
        let volumes: Vec<String> = volumes
            .into_iter()
            .filter(|volume| volume.labels.get(labels::INSTANCE) == Some(&id))
            .map(|volume| volume.name)
            .collect();
        let host = service_variable(match target {
            "local" => "ATRIUM_TEST_DOCKER_HOST",
            _ => self.other_host,
        });
        let network = format!("atrium-{}", self.tenant);
        let output = tokio::process::Command::new("docker")
            .args(["-H", &host, "network", "ls", "--format", "{{.Name}}"])
            .output()
            .await
            .map_err(|error| format!("docker network ls: {error}"))?;
        if !output.status.success() {
            return Err(format!("docker network ls: {}", String::from_utf8_lossy(&output.stderr)));
        }
        let networked = String::from_utf8_lossy(&output.stdout).lines().any(|name| name == network);
        Ok((containers, volumes, networked))
    }

    /// The file in the data volume, read in the running app container on `target`.
    async fn file_on(&self, target: &str, container: &str) -> Result<String, String> {
        let runtime = self.targets.runtime(target).await.map_err(|e| error_text(&e))?;
        let command = ["cat", "/www/data/moved.txt"].map(String::from);
        let output = runtime.exec(container, &command).await.map_err(|e| error_text(&e))?;
        ensure(output.exit_code == Some(0), || format!("cat in {container} on {target}: {}", output.output))?;
        Ok(output.output.trim().to_owned())
    }

    /// That the instance is recorded on `serving` and runs there, healthy,
    /// with the file; that `other` holds no container of it (and, when
    /// `copy` is false, no volume either).
    async fn expect_serving(&self, serving: &str, other: &str, copy: bool) -> Checked {
        let id = self.spec(serving).id;
        let record = self.registry.get_app_instance(&id).await.map_err(|e| e.to_string())?;
        let record = record.ok_or_else(|| "the instance's row is gone".to_owned())?;
        ensure(record.spec.target == serving && record.moved_from.is_none(), || {
            format!("the row says target {:?}, moved from {:?}, not {serving:?}", record.spec.target, record.moved_from)
        })?;
        let (containers, volumes, network) = self.on(serving).await?;
        let app = atrium_engine::catalog::render_app_container_name(&record.spec, record.generation);
        ensure(containers == [(app.clone(), true)] && !volumes.is_empty() && network, || {
            format!(
                "on {serving}: containers {containers:?} (not just {app} running), volumes {volumes:?}, network {network}"
            )
        })?;
        let file = self.file_on(serving, &app).await?;
        ensure(file == MOVED_FILE, || format!("the data on {serving} holds {file:?}, not {MOVED_FILE:?}"))?;
        let published = record.published_port.ok_or_else(|| "the row has no published port".to_owned())?;
        let host = record.published_host.as_deref().unwrap_or("127.0.0.1");
        let page = reqwest::get(format!("http://{host}:{published}/")).await.map_err(|e| e.to_string())?;
        ensure(page.status().is_success(), || format!("the recorded port {published} answers {}", page.status()))?;
        let (containers, volumes, _) = self.on(other).await?;
        ensure(containers.is_empty() && (copy || volumes.is_empty()), || {
            format!("left on {other}: containers {containers:?}, volumes {volumes:?}")
        })
    }
}

#[async_trait]
impl Case for MoveCase {
    fn registry(&self) -> &Registry {
        &self.registry
    }

    async fn prepare(&self) -> Checked {
        self.deploy("local", Some(&CreateToken::new())).await?;
        let id = self.spec("local").id;
        let record = self.registry.get_app_instance(&id).await.map_err(|e| e.to_string())?.ok_or("no row")?;
        let app = atrium_engine::catalog::render_app_container_name(&record.spec, record.generation);
        let runtime = self.targets.runtime("local").await.map_err(|e| error_text(&e))?;
        let write = ["sh", "-c", &format!("echo '{MOVED_FILE}' > /www/data/moved.txt")].map(String::from);
        let output = runtime.exec(&app, &write).await.map_err(|e| error_text(&e))?;
        ensure(output.exit_code == Some(0), || format!("writing the file: {}", output.output))
    }

    async fn change(&self, token: &CreateToken) -> Checked {
        let _ = token;
        self.deploy("other", None).await
    }

    async fn check_unchanged(&self) -> Checked {
        self.expect_serving("local", "other", false).await
    }

    async fn check_changed(&self) -> Checked {
        self.expect_serving("other", "local", true).await?;
        let (_, volumes, network) = self.on("local").await?;
        ensure(!volumes.is_empty() && !network, || {
            format!("on local after the move: volumes {volumes:?} (its copy of the data is kept), network {network}")
        })
    }

    async fn destroy_and_check_empty(&self) -> Checked {
        let context = app_context(&self.registry, &self.observations, &self.catalog, &self.targets);
        context.destroy(&self.spec("other").id).await.map_err(|e| error_text(&e))?;
        for target in ["local", "other"] {
            let (containers, volumes, network) = self.on(target).await?;
            ensure(containers.is_empty() && volumes.is_empty() && !network, || {
                format!("left on {target}: containers {containers:?}, volumes {volumes:?}, network {network}")
            })?;
        }
        Ok(())
    }
}

/// A move between two engines: each step fails in turn, after it did
/// everything and by a crash (a failure before a step leaves what one after
/// the step before leaves).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_of_a_move_fails_in_turn_and_leaves_it_serving_from_the_old_target() {
    let failures = [InjectedFailure::After, InjectedFailure::Crash];
    let steps =
        every_step_fails_as("mv", Change::Update, |name, change| Box::pin(MoveCase::open(name, change)), &failures)
            .await;
    assert!(steps >= 7, "the move stops, copies, starts, records, routes and leaves: {steps} steps");
}

/// The same from an engine to the swarm: its volumes are made on the node
/// the instance is placed on, and its containers are services.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_of_a_move_to_a_swarm_fails_in_turn_and_leaves_it_serving_from_the_engine() {
    let failures = [InjectedFailure::After, InjectedFailure::Crash];
    let steps = every_step_fails_as(
        "mvs",
        Change::Update,
        |name, change| Box::pin(MoveCase::open_to_swarm(name, change)),
        &failures,
    )
    .await;
    assert!(steps >= 7, "the move stops, copies, starts, records, routes and leaves: {steps} steps");
}
