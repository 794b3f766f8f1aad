//! Failure injection: every mutating step of a deployment fails in turn (a
//! crash or an engine error at that point); the next deployment must converge
//! to exactly one healthy app container and a recorded generation, and a
//! destroy must then leave nothing behind.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use atrium_engine::app_apply::{AppContext, InstanceHealth};
use atrium_engine::backends::docker::DockerRuntime;
use atrium_engine::backends::{CommandOutput, ObservedContainer, Runtime, RuntimeError};
use atrium_engine::catalog::{Catalog, ContainerSpec, VolumeSpec};
use atrium_engine::model::app_instance::AppInstanceSpec;
use atrium_engine::observe::AppObservations;
use atrium_engine::targets::Targets;
use atrium_engine::test_services::{hello_spec, registry_with_tenant, service_variable, test_target};

/// A runtime that fails its Nth mutating call (counting from 1) with a
/// permanent error, and passes everything else to the real engine.
struct FailingRuntime {
    inner: DockerRuntime,
    fail_at: usize,
    mutating_calls: AtomicUsize,
}

impl FailingRuntime {
    fn step(&self, what: &str) -> Result<(), RuntimeError> {
        let call = self.mutating_calls.fetch_add(1, Ordering::SeqCst) + 1;
        if call == self.fail_at {
            return Err(RuntimeError::NotManaged {
                target: "injected".into(),
                object: format!("failure injected at step {call} ({what})"),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Runtime for FailingRuntime {
    async fn ensure_network(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<(), RuntimeError> {
        self.step("ensure network")?;
        self.inner.ensure_network(name, labels).await
    }
    async fn remove_network_if_unused(&self, name: &str) -> Result<(), RuntimeError> {
        self.step("remove network")?;
        self.inner.remove_network_if_unused(name).await
    }
    async fn ensure_volume(&self, spec: &VolumeSpec) -> Result<bool, RuntimeError> {
        self.step("ensure volume")?;
        self.inner.ensure_volume(spec).await
    }
    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        self.step("remove volume")?;
        self.inner.remove_volume(name).await
    }
    async fn ensure_container(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        self.step("ensure container")?;
        self.inner.ensure_container(spec).await
    }
    async fn remove_container(&self, name: &str) -> Result<(), RuntimeError> {
        self.step("remove container")?;
        self.inner.remove_container(name).await
    }
    async fn stop_container(&self, name: &str) -> Result<(), RuntimeError> {
        self.step("stop container")?;
        self.inner.stop_container(name).await
    }
    async fn start_container(&self, name: &str) -> Result<(), RuntimeError> {
        self.step("start container")?;
        self.inner.start_container(name).await
    }
    async fn list_managed(&self) -> Result<Vec<ObservedContainer>, RuntimeError> {
        self.inner.list_managed().await
    }
    async fn inspect(&self, name: &str) -> Result<Option<ObservedContainer>, RuntimeError> {
        self.inner.inspect(name).await
    }
    async fn wait_healthy(&self, name: &str, deadline: Duration) -> Result<(), RuntimeError> {
        self.step("wait until healthy")?;
        self.inner.wait_healthy(name, deadline).await
    }
    async fn exec(&self, name: &str, command: &[String]) -> Result<CommandOutput, RuntimeError> {
        self.inner.exec(name, command).await
    }
    async fn write_files(&self, name: &str, files: &BTreeMap<String, String>) -> Result<(), RuntimeError> {
        self.step("write files")?;
        self.inner.write_files(name, files).await
    }
}

async fn targets_failing_at(fail_at: usize) -> Targets {
    let inner = DockerRuntime::connect("local", &service_variable("ATRIUM_TEST_DOCKER_HOST"), None).await.unwrap();
    let runtime: Arc<dyn Runtime> = Arc::new(FailingRuntime { inner, fail_at, mutating_calls: AtomicUsize::new(0) });
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

/// Fails step `fail_at` of deploying `version` over `existing_version` (or a
/// first deployment), then deploys again without failures and checks convergence.
async fn check_step(fail_at: usize, existing_version: Option<&str>, version: &str) -> bool {
    let directory = tempfile::tempdir().unwrap();
    let tenant = format!("fi-{}-{fail_at}-{}", std::process::id() % 10_000, existing_version.map_or("new", |_| "upg"));
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
            owner: atrium_engine::test_services::test_owner(),
            deadline: Duration::from_secs(30),
            cancelled,
        }
    };
    let healthy_targets = targets_failing_at(0).await;
    let healthy = context(&healthy_targets);
    if let Some(existing) = existing_version {
        healthy.deploy(&spec(&tenant, existing), None).await.unwrap();
    }
    let failing_targets = targets_failing_at(fail_at).await;
    let failing = context(&failing_targets);
    let injected = failing.deploy(&spec(&tenant, version), None).await.is_err();

    // The next deployment converges: one container of the recorded generation, healthy.
    let record = healthy
        .deploy(&spec(&tenant, version), None)
        .await
        .unwrap_or_else(|e| panic!("step {fail_at}: no convergence: {e}"))
        .record;
    let containers = tenant_containers(&tenant).await;
    assert_eq!(containers, [format!("atrium-{tenant}-web-g{}", record.generation)], "step {fail_at}: leftovers");
    assert_eq!(healthy.observe(&record.spec.id).await.unwrap().unwrap().1, InstanceHealth::Running);
    healthy.destroy(&record.spec.id).await.unwrap();
    assert!(tenant_containers(&tenant).await.is_empty(), "step {fail_at}: destroy left containers");
    injected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failed_deployment_step_converges_on_the_next_deployment() {
    for (existing, version) in [(None, "1.1"), (Some("1.0"), "1.1")] {
        let mut step = 1;
        // Fail step 1, 2, 3, … until a deployment no longer reaches the injected step.
        while check_step(step, existing, version).await {
            step += 1;
            assert!(step < 30, "more steps than expected");
        }
        eprintln!("{existing:?} -> {version}: failures injected at steps 1 to {}, all converged", step - 1);
        assert!(step > 4, "too few steps were exercised: {step}");
    }
}
