//! Expiry and suspension: once a tenant's `expires_on` has passed, its apps
//! are stopped (containers kept, volumes kept) and its domains answer 503
//! with a short page; extending `expires_on` starts them again and points the
//! domains back at them. Nothing is deleted either way.
//!
//! The registry's tenant status is what was last enforced; the status a
//! tenant *should* have comes from its spec and today's date
//! ([`crate::model::tenant::TenantSpec::desired_status`]), and a front door
//! plans the difference.

use std::time::Duration;

use async_trait::async_trait;

use crate::apply::domain::{proxy_to, suspended_handler};
use crate::apply::runner::{Part, RegistryJournal, RunError, Step, StepError, Transition, registry_step_error, run};
use crate::backends::RuntimeError;
use crate::backends::ingress::RouteSpec;
use crate::backends::retry::within;
use crate::backends::targets::{TargetError, Targets};
use crate::catalog::labels;
use crate::model::TenantId;
use crate::model::app_instance::AppInstanceId;
use crate::model::domain::{DomainRecord, DomainStatus, TlsMode};
use crate::model::tenant::{TenantRecord, TenantStatus};
use crate::registry::{Registry, RegistryError};

/// Why a suspension (or its end) did not complete. Every step is safe to
/// repeat, so applying again finishes it.
#[derive(Debug, thiserror::Error)]
pub enum SuspensionError {
    #[error("the registry failed while changing the status of tenant {tenant}")]
    Registry {
        tenant: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("changing the status of tenant {tenant}: {source}")]
    Run { tenant: String, source: Box<RunError> },
}

impl SuspensionError {
    pub fn is_retryable(&self) -> bool {
        match self {
            SuspensionError::Registry { source, .. } => source.is_retryable(),
            SuspensionError::Run { source, .. } => source.source.retryable,
        }
    }
}

/// Brings every app instance and domain of `tenant` to `status` (stopped and
/// answering 503, or running and proxied), then records the status: as
/// steps of the one runner, so a failure puts back what it changed. A
/// suspension first shows the page, then stops the apps; a resumption starts
/// the apps, then points the domains back at them.
pub async fn enforce(
    registry: &Registry,
    targets: &Targets,
    tenant: &TenantRecord,
    status: TenantStatus,
    deadline: Duration,
) -> Result<(), SuspensionError> {
    let tenant_id: &TenantId = &tenant.spec.name;
    let name = tenant_id.to_string();
    let registry_error = |source| SuspensionError::Registry { tenant: name.clone(), source: Box::new(source) };
    let serving = |status: TenantStatus| if status == TenantStatus::Active { Serving::Apps } else { Serving::Page };
    let (before, after) = (serving(tenant.status), serving(status));
    let instances = registry.app_instances_of_tenant(tenant_id).await.map_err(registry_error)?;
    let mut steps: Vec<Box<dyn Step<Suspension<'_>>>> = Vec::new();
    for instance in &instances {
        steps.extend(instance_steps(registry, &instance.spec.id, before, after).await.map_err(registry_error)?);
    }
    steps.push(Box::new(Transition::new(Status(tenant_id.clone()), Some(tenant.status), Some(status))));
    let context = Suspension { registry, targets, tenant, deadline };
    let operation = format!("change tenant_status {tenant_id}");
    within(deadline, run(&operation, &steps, &context, &RegistryJournal(registry)))
        .await
        .map_err(|source| SuspensionError::Run { tenant: name.clone(), source: Box::new(source) })?;
    tracing::info!(tenant = %tenant_id, status = status.as_str(), instances = instances.len(), "tenant status enforced");
    Ok(())
}

/// One instance's steps from serving `before` to serving `after`: a
/// suspension first shows the page on its live domains, then stops its
/// containers; a resumption starts them, then points the domains back.
async fn instance_steps<'a>(
    registry: &Registry,
    instance: &AppInstanceId,
    before: Serving,
    after: Serving,
) -> Result<Vec<Box<dyn Step<Suspension<'a>>>>, RegistryError> {
    let running = |serving: Serving| (serving == Serving::Apps).then_some(());
    let containers: Box<dyn Step<Suspension<'a>>> =
        Box::new(Transition::new(Containers(instance.clone()), running(before), running(after)));
    let mut steps: Vec<Box<dyn Step<Suspension<'a>>>> = Vec::new();
    for domain in registry.domains_of_instance(instance).await? {
        if domain.status == DomainStatus::Active {
            steps.push(Box::new(Transition::new(DomainRoute(domain), Some(before), Some(after))));
        }
    }
    match after {
        Serving::Page => steps.push(containers),
        Serving::Apps => steps.insert(0, containers),
    }
    Ok(steps)
}

/// Stops one instance of a suspended tenant that has just been deployed
/// (its domains show the page first), so that resuming the tenant starts
/// the same containers again and needs no new deployment.
pub async fn suspend_instance(
    registry: &Registry,
    targets: &Targets,
    tenant: &TenantRecord,
    instance: &AppInstanceId,
    deadline: Duration,
) -> Result<(), SuspensionError> {
    let name = tenant.spec.name.to_string();
    let steps = instance_steps(registry, instance, Serving::Apps, Serving::Page)
        .await
        .map_err(|source| SuspensionError::Registry { tenant: name.clone(), source: Box::new(source) })?;
    let context = Suspension { registry, targets, tenant, deadline };
    let operation = format!("change instance_status {instance}");
    within(deadline, run(&operation, &steps, &context, &RegistryJournal(registry)))
        .await
        .map_err(|source| SuspensionError::Run { tenant: name, source: Box::new(source) })
}

/// What the steps of a status change share.
struct Suspension<'a> {
    registry: &'a Registry,
    targets: &'a Targets,
    tenant: &'a TenantRecord,
    deadline: Duration,
}

/// What a tenant's domains serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Serving {
    /// Its apps, proxied.
    Apps,
    /// The suspension page.
    Page,
}

/// An instance's containers (present: running and healthy).
struct Containers(AppInstanceId);

#[async_trait]
impl<'a> Part<Suspension<'a>> for Containers {
    type Value = ();
    fn name(&self) -> String {
        format!("containers of {}", self.0)
    }
    async fn make(&self, context: &Suspension<'a>, running: Option<&()>) -> Result<(), StepError> {
        let registry = context.registry;
        let Some(instance) = registry.get_app_instance(&self.0).await.map_err(registry_step_error)? else {
            return Ok(());
        };
        let target = &instance.spec.target;
        let runtime_error = |source: RuntimeError| StepError::from_backend(source);
        let runtime = context.targets.runtime(target).await.map_err(|source| match source {
            TargetError::Runtime(source) => runtime_error(source),
            other => StepError::permanent(other),
        })?;
        let id_label = self.0.to_string();
        let mut containers: Vec<_> = runtime
            .list_managed()
            .await
            .map_err(runtime_error)?
            .into_iter()
            .filter(|container| container.labels.get(labels::INSTANCE) == Some(&id_label))
            .collect();
        // Sidecars start before the app and stop after it.
        containers.sort_by_key(|container| container.labels.get(labels::ROLE).map(String::as_str) == Some("app"));
        if running.is_none() {
            for container in containers.iter().rev() {
                runtime.stop_container(&container.name).await.map_err(runtime_error)?;
            }
            return Ok(());
        }
        for container in &containers {
            runtime.start_container(&container.name).await.map_err(runtime_error)?;
            runtime.wait_healthy(&container.name, context.deadline).await.map_err(runtime_error)?;
        }
        // A restarted container publishes its port anew.
        if let Some(app) = containers.iter().find(|c| c.labels.get(labels::ROLE).map(String::as_str) == Some("app"))
            && let Some(observed) = runtime.inspect(&app.name).await.map_err(runtime_error)?
            && let Some(refreshed) = instance.with_address(observed.published_port, observed.published_host)
        {
            registry.put_app_instance(&refreshed).await.map_err(registry_step_error)?;
        }
        Ok(())
    }
}

/// An active domain's route: to its instance as the registry has it now, or
/// to the suspension page.
struct DomainRoute(DomainRecord);

#[async_trait]
impl<'a> Part<Suspension<'a>> for DomainRoute {
    type Value = Serving;
    fn name(&self) -> String {
        format!("route of {}", self.0.spec.hostname)
    }
    async fn make(&self, context: &Suspension<'a>, serving: Option<&Serving>) -> Result<(), StepError> {
        let domain = &self.0;
        let handler = match serving {
            Some(Serving::Page) => suspended_handler(context.tenant),
            _ => {
                let instance = context
                    .registry
                    .get_app_instance(&domain.spec.app_instance_id)
                    .await
                    .map_err(registry_step_error)?;
                let Some(instance) = instance else { return Ok(()) };
                match proxy_to(context.targets, &instance).await.map_err(StepError::permanent)? {
                    Some(proxy) => proxy,
                    None => return Ok(()),
                }
            }
        };
        let route =
            RouteSpec { hostname: domain.spec.hostname.to_string(), tls: domain.spec.tls == TlsMode::Acme, handler };
        let ingress = context.targets.ingress(&domain.target).await.map_err(StepError::permanent)?;
        ingress.put_route(&route, context.deadline).await.map_err(StepError::from_backend)
    }
}

/// The status the registry records as last enforced.
struct Status(TenantId);

#[async_trait]
impl<'a> Part<Suspension<'a>> for Status {
    type Value = TenantStatus;
    fn name(&self) -> String {
        "tenant status".to_owned()
    }
    async fn make(&self, context: &Suspension<'a>, status: Option<&TenantStatus>) -> Result<(), StepError> {
        let Some(status) = status else { return Ok(()) };
        context.registry.set_tenant_status(&self.0, *status).await.map(|_| ()).map_err(registry_step_error)
    }
}
