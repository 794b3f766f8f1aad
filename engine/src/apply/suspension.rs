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

use crate::apply::domain::{suspended_handler, upstream_of};
use crate::backends::ingress::{IngressError, RouteHandler, RouteSpec};
use crate::backends::targets::{TargetError, Targets};
use crate::backends::{RuntimeError, with_retries};
use crate::catalog::labels;
use crate::model::TenantId;
use crate::model::domain::{DomainStatus, TlsMode};
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
    #[error("target {target} failed while changing the status of tenant {tenant}")]
    Target {
        tenant: String,
        target: String,
        #[source]
        source: Box<TargetError>,
    },
    #[error("the reverse proxy of target {target} failed while changing the route of {hostname}")]
    Ingress {
        hostname: String,
        target: String,
        #[source]
        source: Box<IngressError>,
    },
}

impl SuspensionError {
    pub fn is_retryable(&self) -> bool {
        match self {
            SuspensionError::Registry { source, .. } => source.is_retryable(),
            SuspensionError::Target { source, .. } => {
                matches!(source.as_ref(), TargetError::Runtime(runtime) if runtime.is_retryable())
            }
            SuspensionError::Ingress { source, .. } => source.is_retryable(),
        }
    }
}

/// Brings every app instance and domain of `tenant` to `status` (stopped and
/// answering 503, or running and proxied), then records the status.
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
    let suspended = status != TenantStatus::Active;
    let instances: Vec<_> = registry
        .list_app_instances()
        .await
        .map_err(registry_error)?
        .into_iter()
        .filter(|instance| &instance.spec.id.tenant_id == tenant_id)
        .collect();
    for instance in &instances {
        let target = &instance.spec.target;
        let target_error = |source: TargetError| SuspensionError::Target {
            tenant: name.clone(),
            target: target.clone(),
            source: Box::new(source),
        };
        let runtime_error = |source: RuntimeError| target_error(TargetError::Runtime(source));
        let runtime = targets.runtime(target).await.map_err(target_error)?;
        let id_label = instance.spec.id.to_string();
        let mut containers: Vec<_> = with_retries(deadline, || runtime.list_managed())
            .await
            .map_err(runtime_error)?
            .into_iter()
            .filter(|container| container.labels.get(labels::INSTANCE) == Some(&id_label))
            .collect();
        // Sidecars start before the app and stop after it.
        containers.sort_by_key(|container| container.labels.get(labels::ROLE).map(String::as_str) == Some("app"));
        if suspended {
            for container in containers.iter().rev() {
                with_retries(deadline, || runtime.stop_container(&container.name)).await.map_err(runtime_error)?;
            }
        } else {
            for container in &containers {
                with_retries(deadline, || runtime.start_container(&container.name)).await.map_err(runtime_error)?;
                runtime.wait_healthy(&container.name, deadline).await.map_err(runtime_error)?;
            }
        }
        // A restarted container publishes its port anew.
        let current = registry.get_app_instance(&instance.spec.id).await.map_err(registry_error)?;
        let mut refreshed = current.unwrap_or_else(|| instance.clone());
        if !suspended
            && let Some(app) = containers.iter().find(|c| c.labels.get(labels::ROLE).map(String::as_str) == Some("app"))
            && let Some(observed) =
                with_retries(deadline, || runtime.inspect(&app.name)).await.map_err(runtime_error)?
            && observed.published_port != refreshed.published_port
        {
            refreshed.published_port = observed.published_port;
            registry.put_app_instance(&refreshed).await.map_err(registry_error)?;
        }
        for domain in registry.domains_of_instance(&instance.spec.id).await.map_err(registry_error)? {
            if domain.status != DomainStatus::Active {
                continue;
            }
            let handler = if suspended {
                suspended_handler(tenant)
            } else {
                match upstream_of(&refreshed) {
                    Some(upstream) => RouteHandler::Proxy { upstream },
                    None => continue,
                }
            };
            let route = RouteSpec {
                hostname: domain.spec.hostname.to_string(),
                tls: domain.spec.tls == TlsMode::Acme,
                handler,
            };
            let ingress = targets.ingress(&domain.target).await.map_err(|source| SuspensionError::Target {
                tenant: name.clone(),
                target: domain.target.clone(),
                source: Box::new(source),
            })?;
            ingress.put_route(&route, deadline).await.map_err(|source| SuspensionError::Ingress {
                hostname: route.hostname.clone(),
                target: domain.target.clone(),
                source: Box::new(source),
            })?;
        }
    }
    registry.set_tenant_status(tenant_id, status).await.map_err(registry_error)?;
    tracing::info!(tenant = %tenant_id, status = status.as_str(), instances = instances.len(), "tenant status enforced");
    Ok(())
}
