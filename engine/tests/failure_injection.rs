//! Failure injection: every mutating step of a deployment fails in turn,
//! either with an engine error or abandoned in the middle (the future
//! dropped, as `kill -9` of Terraform and its provider would leave it); the
//! next deployment must converge to exactly one healthy app container and a
//! recorded generation, and a destroy must then leave no container, volume,
//! network, row or claim. The same for domains (DNS and the reverse proxy)
//! and support plans (the tracker), whose backends fail from a step on, and
//! for tenants, whose only backend is the registry: a trigger in the real
//! SQLite registry fails each of its statements in turn, and a crash leaves
//! each of the states between them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use atrium_engine::apply::app_instance::AppContext;
use atrium_engine::backends::docker::DockerRuntime;
use atrium_engine::backends::targets::Targets;
use atrium_engine::backends::{
    ArchiveReceiver, ArchiveSender, CommandOutput, ObservedContainer, ObservedVolume, Runtime, RuntimeError,
};
use atrium_engine::catalog::{Catalog, ContainerSpec, VolumeSpec};
use atrium_engine::model::app_instance::AppInstanceSpec;
use atrium_engine::model::app_instance::InstanceHealth;
use atrium_engine::observe::AppObservations;
use atrium_engine::test_services::{hello_spec, registry_with_tenant, service_variable, test_target};

/// How a failure is injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// The step returns a permanent error.
    Error,
    /// The step never returns; the test drops the apply there (a crash).
    Abandon,
}

/// A runtime whose Nth mutating call (counting from 1) fails, and which
/// passes everything else to the real engine.
struct FailingRuntime {
    inner: DockerRuntime,
    fail_at: usize,
    failure: Failure,
    mutating_calls: AtomicUsize,
    /// Told when the abandoned step is reached.
    abandoned: Arc<tokio::sync::Notify>,
}

impl FailingRuntime {
    async fn step(&self, what: &str) -> Result<(), RuntimeError> {
        let call = self.mutating_calls.fetch_add(1, Ordering::SeqCst) + 1;
        if call != self.fail_at {
            return Ok(());
        }
        match self.failure {
            Failure::Error => Err(RuntimeError::NotManaged {
                target: "injected".into(),
                object: format!("failure injected at step {call} ({what})"),
            }),
            Failure::Abandon => {
                self.abandoned.notify_one();
                std::future::pending().await
            }
        }
    }
}

#[async_trait]
impl Runtime for FailingRuntime {
    async fn ensure_network(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<(), RuntimeError> {
        self.step("ensure network").await?;
        self.inner.ensure_network(name, labels).await
    }
    async fn remove_network_if_unused(&self, name: &str) -> Result<(), RuntimeError> {
        self.step("remove network").await?;
        self.inner.remove_network_if_unused(name).await
    }
    async fn ensure_volume(&self, spec: &VolumeSpec) -> Result<bool, RuntimeError> {
        self.step("ensure volume").await?;
        self.inner.ensure_volume(spec).await
    }
    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        self.step("remove volume").await?;
        self.inner.remove_volume(name).await
    }
    async fn ensure_container(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        self.step("ensure container").await?;
        self.inner.ensure_container(spec).await
    }
    async fn remove_container(&self, name: &str) -> Result<(), RuntimeError> {
        self.step("remove container").await?;
        self.inner.remove_container(name).await
    }
    async fn stop_container(&self, name: &str) -> Result<(), RuntimeError> {
        self.step("stop container").await?;
        self.inner.stop_container(name).await
    }
    async fn start_container(&self, name: &str) -> Result<(), RuntimeError> {
        self.step("start container").await?;
        self.inner.start_container(name).await
    }
    async fn list_managed(&self) -> Result<Vec<ObservedContainer>, RuntimeError> {
        self.inner.list_managed().await
    }
    async fn list_managed_volumes(&self) -> Result<Vec<ObservedVolume>, RuntimeError> {
        self.inner.list_managed_volumes().await
    }
    async fn inspect(&self, name: &str) -> Result<Option<ObservedContainer>, RuntimeError> {
        self.inner.inspect(name).await
    }
    async fn wait_healthy(&self, name: &str, deadline: Duration) -> Result<(), RuntimeError> {
        self.step("wait until healthy").await?;
        self.inner.wait_healthy(name, deadline).await
    }
    async fn exec(&self, name: &str, command: &[String]) -> Result<CommandOutput, RuntimeError> {
        self.inner.exec(name, command).await
    }
    async fn run_once(&self, spec: &ContainerSpec, deadline: Duration) -> Result<CommandOutput, RuntimeError> {
        self.step("run a one-shot container").await?;
        self.inner.run_once(spec, deadline).await
    }
    async fn write_files(&self, name: &str, files: &BTreeMap<String, String>) -> Result<(), RuntimeError> {
        self.step("write files").await?;
        self.inner.write_files(name, files).await
    }
    async fn export_volume(&self, volume: &VolumeSpec, image: &str, sink: ArchiveSender) -> Result<u64, RuntimeError> {
        self.step("export a volume").await?;
        self.inner.export_volume(volume, image, sink).await
    }
    async fn import_volume(
        &self,
        volume: &VolumeSpec,
        image: &str,
        source: ArchiveReceiver,
    ) -> Result<u64, RuntimeError> {
        self.step("import a volume").await?;
        self.inner.import_volume(volume, image, source).await
    }
}

async fn targets_failing_at(fail_at: usize, failure: Failure, abandoned: Arc<tokio::sync::Notify>) -> Targets {
    let inner = DockerRuntime::connect("local", &service_variable("ATRIUM_TEST_DOCKER_HOST"), None).await.unwrap();
    let runtime: Arc<dyn Runtime> =
        Arc::new(FailingRuntime { inner, fail_at, failure, mutating_calls: AtomicUsize::new(0), abandoned });
    Targets::with_runtimes(
        BTreeMap::from([("local".to_owned(), test_target("ATRIUM_TEST_DOCKER_HOST"))]),
        HashMap::from([("local".to_owned(), runtime)]),
    )
}

fn spec(tenant: &str, version: &str) -> AppInstanceSpec {
    AppInstanceSpec { users: 1, delete_data_on_destroy: true, ..hello_spec(tenant, version) }
}

async fn tenant_containers(tenant: &str) -> Vec<String> {
    let runtime = DockerRuntime::connect("local", &service_variable("ATRIUM_TEST_DOCKER_HOST"), None).await.unwrap();
    let mut names: Vec<String> = runtime
        .list_managed()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.labels.get("atrium.tenant").map(String::as_str) == Some(tenant))
        .map(|c| c.name)
        .collect();
    names.sort();
    names
}

/// The tenant's volumes and networks on the test engine.
async fn tenant_volumes_and_networks(tenant: &str) -> (Vec<String>, Vec<String>) {
    let host = service_variable("ATRIUM_TEST_DOCKER_HOST");
    let list = |what: &str| {
        let output = std::process::Command::new("docker")
            .args(["-H", &host, what, "ls", "--format", "{{.Name}}", "--filter", &format!("name=atrium-{tenant}")])
            .output()
            .expect("run the docker CLI");
        assert!(output.status.success(), "docker {what} ls: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect::<Vec<_>>()
    };
    (list("volume"), list("network"))
}

/// Fails step `fail_at` of deploying `version` over `existing_version` (or a
/// first deployment, claimed as a create), then deploys again without
/// failures and checks convergence, then destroys and checks that nothing is
/// left. Returns whether the step was reached.
async fn check_step(fail_at: usize, failure: Failure, existing_version: Option<&str>, version: &str) -> bool {
    use atrium_engine::model::ownership::{CreateToken, ObjectKind};
    let directory = tempfile::tempdir().unwrap();
    let kind = match failure {
        Failure::Error => "e",
        Failure::Abandon => "a",
    };
    let tenant =
        format!("fi-{}-{kind}{fail_at}-{}", std::process::id() % 10_000, existing_version.map_or("new", |_| "upg"));
    let registry = registry_with_tenant(directory.path(), &tenant).await;
    let catalog = Catalog::built_in();
    let observations = AppObservations::default();
    let context = |targets| {
        let (_, cancelled) = tokio::sync::watch::channel(false);
        AppContext {
            registry: &registry,
            observations: &observations,
            catalog: &catalog,
            targets,
            mailer: None,
            platform_dns: None,
            owner: atrium_engine::test_services::test_owner(),
            deadline: Duration::from_secs(30),
            cancelled,
        }
    };
    let abandoned = Arc::new(tokio::sync::Notify::new());
    let healthy_targets = targets_failing_at(0, Failure::Error, Arc::clone(&abandoned)).await;
    let healthy = context(&healthy_targets);
    if let Some(existing) = existing_version {
        healthy.deploy(&spec(&tenant, existing), Some(&CreateToken::new()), None).await.unwrap();
    }
    let failing_targets = targets_failing_at(fail_at, failure, Arc::clone(&abandoned)).await;
    let failing = context(&failing_targets);
    // A first deployment is a create, by an earlier process (an earlier
    // terraform apply) as far as the next one can tell.
    let earlier_process = CreateToken::from_stored(&format!("feedfacefeedface.app{fail_at}"));
    let create = existing_version.is_none().then_some(&earlier_process);
    let wanted = spec(&tenant, version);
    let deployment = failing.deploy(&wanted, create, None);
    let injected = tokio::select! {
        result = deployment => result.is_err(),
        // The future is dropped mid-step, with whatever it had made.
        () = abandoned.notified() => true,
    };

    // The next deployment converges: one container of the recorded generation, healthy.
    let create = existing_version.is_none().then(CreateToken::new);
    let record = healthy
        .deploy(&spec(&tenant, version), create.as_ref(), None)
        .await
        .unwrap_or_else(|e| panic!("{failure:?} at step {fail_at}: no convergence: {e}"))
        .record;
    let containers = tenant_containers(&tenant).await;
    assert_eq!(
        containers,
        [format!("atrium-{tenant}-web-g{}", record.generation)],
        "{failure:?} at step {fail_at}: leftovers"
    );
    assert_eq!(healthy.observe(&record.spec.id).await.unwrap().unwrap().1, InstanceHealth::Running);
    healthy.destroy(&record.spec.id).await.unwrap();
    assert!(tenant_containers(&tenant).await.is_empty(), "{failure:?} at step {fail_at}: destroy left containers");
    let (volumes, networks) = tenant_volumes_and_networks(&tenant).await;
    assert!(volumes.is_empty(), "{failure:?} at step {fail_at}: volumes left: {volumes:?}");
    assert!(networks.is_empty(), "{failure:?} at step {fail_at}: networks left: {networks:?}");
    assert!(registry.get_app_instance(&record.spec.id).await.unwrap().is_none(), "row left");
    let claim = registry.get_claim(ObjectKind::AppInstance, &record.spec.id.to_string()).await.unwrap();
    assert!(claim.is_none(), "{failure:?} at step {fail_at}: claim left: {claim:?}");
    injected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failed_deployment_step_converges_on_the_next_deployment() {
    for failure in [Failure::Error, Failure::Abandon] {
        for (existing, version) in [(None, "1.1"), (Some("1.0"), "1.1")] {
            let mut step = 1;
            // Fail step 1, 2, 3, … until a deployment no longer reaches the injected step.
            while check_step(step, failure, existing, version).await {
                step += 1;
                assert!(step < 30, "more steps than expected");
            }
            eprintln!("{failure:?}, {existing:?} -> {version}: injected at steps 1 to {}, all converged", step - 1);
            assert!(step > 4, "too few steps were exercised: {step}");
        }
    }
}

/// One count of mutating calls shared by the failing backends of one run:
/// from the Nth call on, every call fails (a backend that died at that
/// point), whichever backend makes it, so the undo of the failed step fails
/// too and the next apply must finish the job.
#[derive(Clone)]
struct Injection {
    fail_at: usize,
    calls: Arc<AtomicUsize>,
}

impl Injection {
    fn new(fail_at: usize) -> Injection {
        Injection { fail_at, calls: Arc::new(AtomicUsize::new(0)) }
    }

    /// Whether this call fails.
    fn fails(&self) -> bool {
        self.calls.fetch_add(1, Ordering::SeqCst) + 1 >= self.fail_at
    }

    fn reached(&self) -> bool {
        self.calls.load(Ordering::SeqCst) >= self.fail_at
    }
}

struct FailingIngress {
    inner: Arc<dyn atrium_engine::backends::ingress::Ingress>,
    injection: Injection,
}

fn injected_ingress_error() -> atrium_engine::backends::ingress::IngressError {
    atrium_engine::backends::ingress::IngressError::MissingServer {
        admin_url: "injected".into(),
        server: "failure injected".into(),
    }
}

#[async_trait]
impl atrium_engine::backends::ingress::Ingress for FailingIngress {
    async fn list_routes(
        &self,
    ) -> Result<Vec<atrium_engine::backends::ingress::ObservedRoute>, atrium_engine::backends::ingress::IngressError>
    {
        self.inner.list_routes().await
    }
    async fn put_route(
        &self,
        spec: &atrium_engine::backends::ingress::RouteSpec,
        deadline: Duration,
    ) -> Result<(), atrium_engine::backends::ingress::IngressError> {
        if self.injection.fails() {
            return Err(injected_ingress_error());
        }
        self.inner.put_route(spec, deadline).await
    }
    async fn remove_route(
        &self,
        hostname: &str,
        deadline: Duration,
    ) -> Result<(), atrium_engine::backends::ingress::IngressError> {
        if self.injection.fails() {
            return Err(injected_ingress_error());
        }
        self.inner.remove_route(hostname, deadline).await
    }
    async fn served_certificate(
        &self,
        hostname: &str,
    ) -> Result<
        Option<atrium_engine::backends::ingress::ServedCertificate>,
        atrium_engine::backends::ingress::IngressError,
    > {
        self.inner.served_certificate(hostname).await
    }
    async fn load_certificate(
        &self,
        tag: &str,
        certificate: &atrium_engine::backends::ingress::PemCertificate,
        deadline: Duration,
    ) -> Result<(), atrium_engine::backends::ingress::IngressError> {
        if self.injection.fails() {
            return Err(injected_ingress_error());
        }
        self.inner.load_certificate(tag, certificate, deadline).await
    }
}

struct FailingDns {
    inner: atrium_engine::backends::powerdns::PowerDns,
    injection: Injection,
}

fn injected_dns_error(zone: &str) -> atrium_engine::backends::dns::DnsError {
    atrium_engine::backends::dns::DnsError::ZoneMissing { zone: format!("{zone} (failure injected)") }
}

#[async_trait]
impl atrium_engine::backends::dns::DnsZones for FailingDns {
    async fn list(
        &self,
        zone: &str,
    ) -> Result<Vec<atrium_engine::backends::dns::RecordSet>, atrium_engine::backends::dns::DnsError> {
        self.inner.list(zone).await
    }
    async fn put(
        &self,
        zone: &str,
        set: &atrium_engine::backends::dns::RecordSet,
    ) -> Result<(), atrium_engine::backends::dns::DnsError> {
        if self.injection.fails() {
            return Err(injected_dns_error(zone));
        }
        self.inner.put(zone, set).await
    }
    async fn remove(
        &self,
        zone: &str,
        name: &str,
        record_type: &str,
    ) -> Result<(), atrium_engine::backends::dns::DnsError> {
        if self.injection.fails() {
            return Err(injected_dns_error(zone));
        }
        self.inner.remove(zone, name, record_type).await
    }
}

fn test_powerdns() -> atrium_engine::backends::powerdns::PowerDns {
    atrium_engine::backends::powerdns::PowerDns::new(
        &service_variable("ATRIUM_TEST_PDNS_URL"),
        &service_variable("ATRIUM_TEST_PDNS_API_KEY"),
        "localhost",
    )
}

/// The test PowerDNS's record sets named `name` (absolute) in `zone`.
async fn records_named(zone: &str, name: &str) -> usize {
    use atrium_engine::backends::dns::DnsZones as _;
    test_powerdns().list(zone).await.unwrap().into_iter().filter(|set| set.name == name).count()
}

/// Fails mutating step `fail_at` of creating a platform domain (DNS record,
/// route, their undo); the next apply must converge and a destroy leave no
/// route, record, row or claim. Returns whether the step was reached.
async fn check_domain_step(fail_at: usize) -> bool {
    use atrium_engine::apply::domain::DomainApplyContext;
    use atrium_engine::model::domain::{DomainSpec, DomainStatus, Hostname, TlsMode};
    use atrium_engine::model::ownership::{CreateToken, ObjectKind};
    let directory = tempfile::tempdir().unwrap();
    let tenant = format!("fid-{}-{fail_at}", std::process::id() % 10_000);
    let zone = format!("{tenant}.atrium.test");
    let (status, body) = {
        let client = reqwest::Client::new();
        let response = client
            .post(format!("{}/api/v1/servers/localhost/zones", service_variable("ATRIUM_TEST_PDNS_URL")))
            .header("X-API-Key", service_variable("ATRIUM_TEST_PDNS_API_KEY"))
            .json(
                &serde_json::json!({"name": format!("{zone}."), "kind": "Native", "nameservers": ["ns1.atrium.test."]}),
            )
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    assert!(status == 201 || status == 409, "create zone: {status} {body}");
    let registry = registry_with_tenant(directory.path(), &tenant).await;
    let catalog = Catalog::built_in();
    let (apps_observations, domain_observations) = (AppObservations::default(), Default::default());
    let configured = BTreeMap::from([("local".to_owned(), test_target("ATRIUM_TEST_DOCKER_HOST"))]);
    let healthy_targets = Targets::new(configured.clone());
    let (_, cancelled) = tokio::sync::watch::channel(false);
    let apps = AppContext {
        registry: &registry,
        observations: &apps_observations,
        catalog: &catalog,
        targets: &healthy_targets,
        mailer: None,
        platform_dns: None,
        owner: atrium_engine::test_services::test_owner(),
        deadline: Duration::from_secs(30),
        cancelled: cancelled.clone(),
    };
    let instance = apps.deploy(&spec(&tenant, "1.1"), None, None).await.unwrap().record;

    let injection = Injection::new(fail_at);
    let real_ingress = healthy_targets.ingress("local").await.unwrap();
    let failing_ingress: Arc<dyn atrium_engine::backends::ingress::Ingress> =
        Arc::new(FailingIngress { inner: real_ingress, injection: injection.clone() });
    let failing_targets = Targets::with_backends(
        configured.clone(),
        HashMap::new(),
        HashMap::from([("local".to_owned(), failing_ingress)]),
    );
    let failing_dns = FailingDns { inner: test_powerdns(), injection: injection.clone() };
    let healthy_dns = test_powerdns();
    let resolver =
        atrium_engine::backends::resolver::DnsResolver::new(Some(&service_variable("ATRIUM_TEST_PDNS_DNS_ADDRESS")))
            .unwrap();
    let hostname = Hostname::parse(&format!("web.{zone}")).unwrap();
    let spec = DomainSpec { hostname: hostname.clone(), app_instance_id: instance.spec.id.clone(), tls: TlsMode::None };
    let failing = DomainApplyContext {
        registry: &registry,
        observations: &domain_observations,
        targets: &failing_targets,
        dns: Some(&failing_dns),
        resolver: &resolver,
        platform_zone: Some(&zone),
        platform_certificate: None,
        owner: atrium_engine::test_services::test_owner(),
        deadline: Duration::from_secs(10),
        cancelled: cancelled.clone(),
    };
    // The failing run stands for an earlier Terraform process: the next
    // apply (a new process) finishes or redoes what it left.
    let earlier_process = CreateToken::from_stored(&format!("feedfacefeedface.domain{fail_at}"));
    let failed = failing.apply(&spec, DomainStatus::Active, Some(&earlier_process)).await.is_err();
    let reached = injection.reached();
    assert_eq!(failed, reached, "step {fail_at}: an injected failure is an error, and only it");

    let healthy_observations = Default::default();
    let healthy = DomainApplyContext {
        registry: &registry,
        observations: &healthy_observations,
        targets: &healthy_targets,
        dns: Some(&healthy_dns),
        resolver: &resolver,
        platform_zone: Some(&zone),
        platform_certificate: None,
        owner: atrium_engine::test_services::test_owner(),
        deadline: Duration::from_secs(10),
        cancelled,
    };
    // The next apply of the same configuration creates it again: it takes
    // over whatever the interrupted create left, and converges.
    let record = healthy
        .apply(&spec, DomainStatus::Active, Some(&CreateToken::new()))
        .await
        .unwrap_or_else(|e| panic!("domain step {fail_at}: no convergence: {e}"));
    assert_eq!(record.status, DomainStatus::Active);
    let observed = healthy.observe(&hostname).await.unwrap().unwrap();
    assert_eq!(observed.status, "active", "domain step {fail_at}: {observed:?}");
    assert_eq!(records_named(&format!("{zone}."), &format!("{hostname}.")).await, 1, "step {fail_at}: one record");
    healthy.destroy(&hostname).await.unwrap();
    assert_eq!(records_named(&format!("{zone}."), &format!("{hostname}.")).await, 0, "step {fail_at}: record left");
    assert!(registry.get_domain(&hostname).await.unwrap().is_none(), "step {fail_at}: row left");
    assert!(
        registry.get_claim(ObjectKind::Domain, hostname.as_str()).await.unwrap().is_none(),
        "step {fail_at}: claim left"
    );
    let routes = healthy_targets.ingress("local").await.unwrap().list_routes().await.unwrap();
    assert!(!routes.iter().any(|route| route.hostname == hostname.as_str()), "step {fail_at}: route left");
    apps.destroy(&instance.spec.id).await.unwrap();
    reached
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failed_domain_step_converges_on_the_next_apply() {
    let mut step = 1;
    while check_domain_step(step).await {
        step += 1;
        assert!(step < 20, "more steps than expected");
    }
    eprintln!("domain create: failures injected at steps 1 to {}, all converged", step - 1);
    assert!(step > 2, "too few steps were exercised: {step}");
}

struct FailingTracker {
    inner: atrium_engine::backends::redmine::Redmine,
    injection: Injection,
}

fn injected_tracker_error() -> atrium_engine::backends::tracker::TrackerError {
    atrium_engine::backends::tracker::TrackerError::Api {
        operation: "failure injected".into(),
        status: 400,
        message: "failure injected".into(),
    }
}

#[async_trait]
impl atrium_engine::backends::tracker::Tracker for FailingTracker {
    async fn ensure_project(
        &self,
        project: &atrium_engine::backends::tracker::SupportProject,
    ) -> Result<(), atrium_engine::backends::tracker::TrackerError> {
        if self.injection.fails() {
            return Err(injected_tracker_error());
        }
        self.inner.ensure_project(project).await
    }
    async fn grant_access(
        &self,
        tenant: &str,
        user: &atrium_engine::backends::tracker::TrackerUser,
        role: &str,
    ) -> Result<(), atrium_engine::backends::tracker::TrackerError> {
        if self.injection.fails() {
            return Err(injected_tracker_error());
        }
        self.inner.grant_access(tenant, user, role).await
    }
    async fn revoke_access(
        &self,
        tenant: &str,
        login: &str,
    ) -> Result<(), atrium_engine::backends::tracker::TrackerError> {
        if self.injection.fails() {
            return Err(injected_tracker_error());
        }
        self.inner.revoke_access(tenant, login).await
    }
    async fn remove_project(&self, tenant: &str) -> Result<(), atrium_engine::backends::tracker::TrackerError> {
        if self.injection.fails() {
            return Err(injected_tracker_error());
        }
        self.inner.remove_project(tenant).await
    }
    async fn observe(
        &self,
        tenant: &str,
    ) -> Result<
        Option<atrium_engine::backends::tracker::ObservedSupportProject>,
        atrium_engine::backends::tracker::TrackerError,
    > {
        self.inner.observe(tenant).await
    }
}

fn test_redmine() -> atrium_engine::backends::redmine::Redmine {
    atrium_engine::backends::redmine::Redmine::new(
        &service_variable("ATRIUM_TEST_REDMINE_URL"),
        &service_variable("ATRIUM_TEST_REDMINE_API_KEY"),
    )
}

/// Fails the tracker from mutating step `fail_at` on while a support plan
/// with tracker access is created; the next apply must converge and a
/// destroy leave no project, row or claim. Returns whether the step was reached.
async fn check_support_plan_step(fail_at: usize) -> bool {
    use atrium_engine::apply::support_plan::SupportPlanContext;
    use atrium_engine::backends::tracker::Tracker as _;
    use atrium_engine::model::ownership::{CreateToken, ObjectKind};
    use atrium_engine::model::support_plan::{SupportLevel, SupportPlanSpec};
    let directory = tempfile::tempdir().unwrap();
    let tenant = format!("fis-{}-{fail_at}", std::process::id() % 10_000);
    let registry = registry_with_tenant(directory.path(), &tenant).await;
    let tenant_id = atrium_engine::model::TenantId::parse(&tenant).unwrap();
    let spec = SupportPlanSpec {
        tenant_id: tenant_id.clone(),
        level: SupportLevel::Standard8x5,
        channels: ["email".to_owned()].into(),
        first_response_minutes: 480,
        tracker_access: true,
    };
    let injection = Injection::new(fail_at);
    let failing_tracker = FailingTracker { inner: test_redmine(), injection: injection.clone() };
    let healthy_tracker = test_redmine();
    let (_, cancelled) = tokio::sync::watch::channel(false);
    let failing = SupportPlanContext {
        registry: &registry,
        tracker: Some(&failing_tracker),
        tracker_role: "Reporter",
        owner: atrium_engine::test_services::test_owner(),
        deadline: Duration::from_secs(10),
        cancelled: cancelled.clone(),
    };
    let earlier_process = CreateToken::from_stored(&format!("feedfacefeedface.support{fail_at}"));
    let failed = failing.apply(&spec, Some(&earlier_process)).await.is_err();
    let reached = injection.reached();
    assert_eq!(failed, reached, "step {fail_at}: an injected failure is an error, and only it");

    let healthy = SupportPlanContext { tracker: Some(&healthy_tracker), cancelled, ..failing };
    healthy
        .apply(&spec, Some(&CreateToken::new()))
        .await
        .unwrap_or_else(|e| panic!("support plan step {fail_at}: no convergence: {e}"));
    let observed = healthy.observe(&tenant_id).await.unwrap().expect("the plan exists");
    assert!(observed.tracker_access, "support plan step {fail_at}: the manager has access");
    healthy.destroy(&tenant_id).await.unwrap();
    assert!(healthy_tracker.observe(&tenant).await.unwrap().is_none(), "step {fail_at}: project left");
    assert!(registry.get_support_plan(&tenant_id).await.unwrap().is_none(), "step {fail_at}: row left");
    assert!(
        registry.get_claim(ObjectKind::SupportPlan, &tenant).await.unwrap().is_none(),
        "step {fail_at}: claim left"
    );
    reached
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failed_support_plan_step_converges_on_the_next_apply() {
    let mut step = 1;
    while check_support_plan_step(step).await {
        step += 1;
        assert!(step < 20, "more steps than expected");
    }
    eprintln!("support plan create: failures injected at steps 1 to {}, all converged", step - 1);
    assert!(step > 2, "too few steps were exercised: {step}");
}

/// Fails (or abandons) step `fail_at` of suspending, then of resuming, a
/// tenant with two instances; the next run of each must converge. Returns
/// whether the step was reached in either.
async fn check_suspension_step(fail_at: usize, failure: Failure) -> bool {
    use atrium_engine::apply::suspension::enforce;
    use atrium_engine::model::TenantStatus;
    let directory = tempfile::tempdir().unwrap();
    let kind = if failure == Failure::Error { "e" } else { "a" };
    let tenant = format!("fiu-{}-{kind}{fail_at}", std::process::id() % 10_000);
    let registry = registry_with_tenant(directory.path(), &tenant).await;
    let catalog = Catalog::built_in();
    let observations = AppObservations::default();
    let abandoned = Arc::new(tokio::sync::Notify::new());
    let healthy_targets = targets_failing_at(0, Failure::Error, Arc::clone(&abandoned)).await;
    let (_, cancelled) = tokio::sync::watch::channel(false);
    let apps = AppContext {
        registry: &registry,
        observations: &observations,
        catalog: &catalog,
        targets: &healthy_targets,
        mailer: None,
        platform_dns: None,
        owner: atrium_engine::test_services::test_owner(),
        deadline: Duration::from_secs(30),
        cancelled,
    };
    let mut shop = spec(&tenant, "1.1");
    shop.id.name = "shop".into();
    let instances = [spec(&tenant, "1.1"), shop];
    for instance in &instances {
        apps.deploy(instance, None, None).await.unwrap();
    }
    let tenant_id = atrium_engine::model::TenantId::parse(&tenant).unwrap();
    let mut reached = false;
    for (status, expected) in
        [(TenantStatus::Suspended, InstanceHealth::Suspended), (TenantStatus::Active, InstanceHealth::Running)]
    {
        let record = registry.get_tenant(&tenant_id).await.unwrap().unwrap();
        let failing_targets = targets_failing_at(fail_at, failure, Arc::clone(&abandoned)).await;
        let run = enforce(&registry, &failing_targets, &record, status, Duration::from_secs(30));
        reached |= tokio::select! {
            result = run => result.is_err(),
            () = abandoned.notified() => true,
        };
        enforce(&registry, &healthy_targets, &record, status, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{failure:?} at step {fail_at} to {status:?}: no convergence: {e}"));
        observations.clear().await;
        for instance in &instances {
            let health = apps.observe(&instance.id).await.unwrap().unwrap().1;
            assert_eq!(health, expected, "{failure:?} at step {fail_at} to {status:?}: {}", instance.id);
        }
    }
    for instance in &instances {
        apps.destroy(&instance.id).await.unwrap();
    }
    assert!(tenant_containers(&tenant).await.is_empty());
    reached
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failed_suspension_step_converges_on_the_next_run() {
    for failure in [Failure::Error, Failure::Abandon] {
        let mut step = 1;
        while check_suspension_step(step, failure).await {
            step += 1;
            assert!(step < 20, "more steps than expected");
        }
        eprintln!("{failure:?}: suspension and resumption injected at steps 1 to {}, all converged", step - 1);
        assert!(step > 2, "too few steps were exercised: {step}");
    }
}

mod tenants {
    use std::time::Duration;

    use atrium_engine::apply::tenant::{ApplyContext, TenantApplyError, apply_tenant_change};
    use atrium_engine::model::TenantId;
    use atrium_engine::model::ownership::{CreateToken, ObjectKind, Owner};
    use atrium_engine::model::tenant::{Manager, TenantSpec, Tier};
    use atrium_engine::observe::TenantObserver;
    use atrium_engine::plan::tenant::plan_tenant;
    use atrium_engine::registry::Registry;
    use atrium_engine::test_services::test_owner;
    use sqlx::Connection as _;

    fn spec(display_name: &str) -> TenantSpec {
        TenantSpec {
            name: TenantId::parse("acme").unwrap(),
            display_name: display_name.into(),
            tier: Tier::Business,
            user_quota: 40,
            expires_on: None,
            manager: Manager { email: "boss@acme.example".into(), name: "Boss".into() },
            welcome_email: true,
        }
    }

    /// A registry in its own SQLite file, and a way to run SQL on that file
    /// behind the registry's back (the injected failures).
    struct Fixture {
        _directory: tempfile::TempDir,
        url: String,
        registry: Registry,
        observer: TenantObserver,
    }

    impl Fixture {
        async fn new() -> Fixture {
            let directory = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", directory.path().join("atrium.db").display());
            let registry = Registry::connect(&url).await.expect("open the registry");
            let observer = TenantObserver::new(registry.clone());
            Fixture { _directory: directory, url, registry, observer }
        }

        async fn sql(&self, statement: &str) {
            sqlx::any::install_default_drivers();
            let mut connection = sqlx::AnyConnection::connect(&self.url).await.expect("open the registry file");
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
                .execute(&mut connection)
                .await
                .unwrap_or_else(|error| panic!("{statement}: {error}"));
            connection.close().await.unwrap();
        }

        /// Every `operation` on `table` fails until [`heal`](Self::heal).
        async fn fail(&self, operation: &str, table: &str) {
            self.sql(&format!(
                "CREATE TRIGGER injected BEFORE {operation} ON {table} BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            ))
            .await;
        }

        async fn heal(&self) {
            self.sql("DROP TRIGGER injected").await;
        }

        /// One apply of `desired` over what the registry holds, as a provider
        /// process with its own create token would run it.
        async fn apply(&self, desired: Option<&TenantSpec>, token: &CreateToken) -> Result<(), TenantApplyError> {
            self.apply_as(test_owner(), desired, token).await
        }

        async fn apply_as(
            &self,
            owner: &Owner,
            desired: Option<&TenantSpec>,
            token: &CreateToken,
        ) -> Result<(), TenantApplyError> {
            self.observer.invalidate().await;
            let current = self.registry.get_tenant(&TenantId::parse("acme").unwrap()).await.unwrap();
            let Some(change) = plan_tenant(desired, current.as_ref()) else { return Ok(()) };
            self.run(owner, &change, token).await
        }

        /// A create, as Terraform plans one when its state has no tenant
        /// (whatever the registry holds).
        async fn create_as(
            &self,
            owner: &Owner,
            desired: &TenantSpec,
            token: &CreateToken,
        ) -> Result<(), TenantApplyError> {
            self.observer.invalidate().await;
            self.run(owner, &plan_tenant(Some(desired), None).unwrap(), token).await
        }

        async fn run(
            &self,
            owner: &Owner,
            change: &atrium_engine::plan::tenant::Change,
            token: &CreateToken,
        ) -> Result<(), TenantApplyError> {
            let (_keep, cancelled) = tokio::sync::watch::channel(false);
            let context = ApplyContext { owner, create_token: token, deadline: Duration::from_secs(5), cancelled };
            apply_tenant_change(&self.observer, change, &context).await.map(|_| ())
        }

        async fn row(&self) -> Option<TenantSpec> {
            self.registry.get_tenant(&TenantId::parse("acme").unwrap()).await.unwrap().map(|record| record.spec)
        }

        async fn claim_token(&self) -> Option<CreateToken> {
            let claim = self.registry.get_claim(ObjectKind::Tenant, "acme").await.unwrap();
            claim.map(|claim| claim.create_token)
        }
    }

    /// A token of a provider process that no longer runs (one that was killed).
    fn killed_process_token(n: u32) -> CreateToken {
        CreateToken::from_stored(&format!("00000000000000{n:02}.killed"))
    }

    /// Each statement of a create, an update and a destroy fails in turn:
    /// nothing is half made, and the next apply converges.
    #[tokio::test]
    async fn every_failed_tenant_statement_converges_on_the_next_apply() {
        let desired = spec("ACME GmbH");
        for (operation, table) in [("INSERT", "claims"), ("INSERT", "tenants")] {
            let fixture = Fixture::new().await;
            fixture.fail(operation, table).await;
            let error = fixture.apply(Some(&desired), &CreateToken::new()).await.unwrap_err();
            assert!(error.to_string().contains("acme"), "{operation} {table}: {error}");
            assert_eq!(fixture.row().await, None, "{operation} {table}: a failed create left its row");
            assert_eq!(fixture.claim_token().await, None, "{operation} {table}: a failed create kept the name");
            fixture.heal().await;
            let next = CreateToken::new();
            fixture.apply(Some(&desired), &next).await.unwrap();
            assert_eq!(fixture.row().await, Some(desired.clone()));
            assert_eq!(fixture.claim_token().await, Some(next), "{operation} {table}");
        }

        // An update whose statement fails changes nothing; the next one does.
        let fixture = Fixture::new().await;
        fixture.apply(Some(&desired), &CreateToken::new()).await.unwrap();
        let renamed = spec("ACME AG");
        fixture.fail("UPDATE", "tenants").await;
        fixture.apply(Some(&renamed), &CreateToken::new()).await.unwrap_err();
        assert_eq!(fixture.row().await, Some(desired.clone()));
        fixture.heal().await;
        fixture.apply(Some(&renamed), &CreateToken::new()).await.unwrap();
        assert_eq!(fixture.row().await, Some(renamed.clone()));

        // A destroy that fails at either statement is finished by the next destroy.
        for table in ["tenants", "claims"] {
            let fixture = Fixture::new().await;
            fixture.apply(Some(&desired), &CreateToken::new()).await.unwrap();
            fixture.fail("DELETE", table).await;
            fixture.apply(None, &CreateToken::new()).await.unwrap_err();
            fixture.heal().await;
            // The state still holds the tenant, so Terraform destroys it again
            // (whether or not its row is still there).
            let in_state = atrium_engine::model::tenant::TenantRecord {
                spec: desired.clone(),
                status: atrium_engine::model::tenant::TenantStatus::Active,
                created_at: String::new(),
                owner: test_owner().as_str().to_owned(),
            };
            let change = plan_tenant(None, Some(&in_state)).unwrap();
            let (_keep, cancelled) = tokio::sync::watch::channel(false);
            let context = ApplyContext {
                owner: test_owner(),
                create_token: &CreateToken::new(),
                deadline: Duration::from_secs(5),
                cancelled,
            };
            apply_tenant_change(&fixture.observer, &change, &context).await.unwrap();
            assert_eq!(fixture.row().await, None, "DELETE {table}");
            assert_eq!(fixture.claim_token().await, None, "DELETE {table}: the name stays taken");
        }
    }

    /// The states a killed apply leaves between the statements of a create
    /// (the name claimed, no row; the row written, the state never told):
    /// the next apply of the same owner finishes the create with the
    /// configuration it has now; another owner is refused and changes nothing.
    #[tokio::test]
    async fn a_create_killed_between_its_statements_is_finished_by_the_next_apply() {
        let desired = spec("ACME GmbH");
        let other = Owner::terraform("another-team");

        // Killed after claiming the name.
        let fixture = Fixture::new().await;
        let claimed = fixture
            .registry
            .claim_for_create(ObjectKind::Tenant, "acme", &desired.name, test_owner(), &killed_process_token(1))
            .await
            .unwrap();
        assert!(matches!(claimed, atrium_engine::registry::ClaimOutcome::Claimed(_)), "{claimed:?}");
        let refused = fixture.create_as(&other, &desired, &CreateToken::new()).await.unwrap_err();
        assert!(refused.to_string().contains("\"engine-tests\""), "names the owner: {refused}");
        assert_eq!(fixture.row().await, None);
        let next = CreateToken::new();
        fixture.apply(Some(&desired), &next).await.unwrap();
        assert_eq!(fixture.row().await, Some(desired.clone()));
        assert_eq!(fixture.claim_token().await, Some(next));

        // Killed after writing the row, with the configuration changed since.
        let fixture = Fixture::new().await;
        fixture
            .registry
            .claim_for_create(ObjectKind::Tenant, "acme", &desired.name, test_owner(), &killed_process_token(2))
            .await
            .unwrap();
        fixture.registry.insert_tenant(&desired, test_owner().as_str()).await.unwrap();
        let refused = fixture.create_as(&other, &spec("Not ACME"), &CreateToken::new()).await.unwrap_err();
        assert!(refused.to_string().contains("\"engine-tests\""), "names the owner: {refused}");
        assert_eq!(fixture.row().await, Some(desired.clone()), "another owner changed nothing");
        // This owner's state has no tenant (the kill came before Terraform
        // recorded it), so it plans a create; the registry has the row.
        let changed = spec("ACME AG");
        let next = CreateToken::new();
        fixture.create_as(test_owner(), &changed, &next).await.unwrap();
        assert_eq!(fixture.row().await, Some(changed));
        assert_eq!(fixture.claim_token().await, Some(next));
    }
}
