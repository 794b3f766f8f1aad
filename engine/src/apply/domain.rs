//! Applying domains: ordered, idempotent steps with undo.
//!
//! A domain's apply decides everything first (kind, target, records, route),
//! then: the registry row (the journal) → the platform DNS record → the route
//! on the reverse proxy beside the app instance's target (removed from the
//! old target's proxy after a move) → the certificate, waited for until the
//! proxy serves it → the row again, with the certificate's expiry. A create
//! that fails undoes every step; an update that fails leaves what it did,
//! and the next apply converges, because every step is a "make it so".
//!
//! Routes follow their app instance: after a deployment switches to a new
//! container (a new port), [`repoint_routes`] updates every route that serves
//! the instance before the old container goes.

use std::time::Duration;

use async_trait::async_trait;

use crate::apply::claims::{change_operation, claim, create_operation};
use crate::apply::platform_certificate::{PlatformCertificate, PlatformCertificateError};
use crate::apply::runner::{Part, RegistryJournal, RunError, Step, StepError, Transition, registry_step_error, run};
use crate::backends::dns::{DnsError, DnsZones, RecordSet};
use crate::backends::ingress::{IngressError, ObservedRoute, RouteHandler, RouteSpec};
use crate::backends::resolver::DnsResolver;
use crate::backends::targets::{TargetError, Targets};
use crate::model::app_instance::{AppInstanceId, AppInstanceRecord};
use crate::model::domain::{
    DnsRecordDocument, DomainKind, DomainRecord, DomainSpec, DomainStatus, Hostname, TlsMode, classify,
    platform_record, verification_for, zone_name,
};
use crate::model::ownership::{Claim, CreateDecision, CreateToken, ObjectKind};
use crate::model::tenant::{TenantRecord, TenantStatus};
use crate::observe::DomainObservations;
use crate::plan::domain::DomainFacts;
use crate::plan::draft::Draft;
use crate::registry::{Registry, RegistryError, now_rfc3339};

/// How often the proxy is asked whether it serves a domain's certificate yet.
const CERTIFICATE_POLL: Duration = Duration::from_millis(250);

/// The TTL of platform records: short, so a move to another target is seen within minutes.
pub const RECORD_TTL: u32 = 300;

/// Why a domain change did not complete.
#[derive(Debug, thiserror::Error)]
pub enum DomainApplyError {
    #[error("the registry failed while applying domain {hostname}")]
    Registry {
        hostname: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("target {target} cannot serve domain {hostname}")]
    Target {
        hostname: String,
        target: String,
        #[source]
        source: Box<TargetError>,
    },
    #[error("the reverse proxy of target {target} failed for domain {hostname}")]
    Ingress {
        hostname: String,
        target: String,
        #[source]
        source: Box<IngressError>,
    },
    #[error("DNS failed for domain {hostname}")]
    Dns {
        hostname: String,
        #[source]
        source: Box<DnsError>,
    },
    #[error("domain {hostname} serves app instance {instance}, which does not exist")]
    AppInstanceMissing { hostname: String, instance: String },
    #[error("app instance {instance} of domain {hostname} publishes no port for the reverse proxy to reach")]
    AppInstanceNotServing { hostname: String, instance: String },
    #[error("{hostname} is already a domain of tenant {tenant}")]
    HostnameTaken { hostname: String, tenant: String },
    #[error("{hostname} is a platform subdomain, but the provider has no dns block to create its record with")]
    NoDns { hostname: String },
    #[error("{hostname} does not fit the platform: {reason}")]
    Invalid { hostname: String, reason: String },
    #[error("the reverse proxy served no certificate for {hostname} within {waited:?}")]
    CertificateTimeout { hostname: String, waited: Duration },
    #[error("the platform certificate for domain {hostname} is not in place")]
    PlatformCertificate {
        hostname: String,
        #[source]
        source: Box<PlatformCertificateError>,
    },
    #[error("the verification record of {hostname} no longer resolves: publish TXT {name} = \"{value}\"")]
    VerificationMissing { hostname: String, name: String, value: String },
    #[error("applying domain {hostname} was cancelled before it started; nothing was changed")]
    Cancelled { hostname: String },
    #[error(transparent)]
    Claim(#[from] crate::apply::claims::ClaimError),
    #[error("applying domain {hostname}: {source}")]
    Run { hostname: String, source: Box<RunError> },
    #[error("the registry's journal failed for domain {hostname}: {source}")]
    Journal { hostname: String, source: StepError },
    #[error("domain {hostname} was applied, but its registry row cannot be read back; apply again")]
    Vanished { hostname: String },
    #[error(
        "the planned change of domain {hostname} carries no decision of its status (it was planned by another version); plan again"
    )]
    NoDecision { hostname: String },
}

impl crate::backends::retry::Retryable for DomainApplyError {
    fn is_retryable(&self) -> bool {
        DomainApplyError::is_retryable(self)
    }
}

impl DomainApplyError {
    /// Whether the same change may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            DomainApplyError::Registry { source, .. } => source.is_retryable(),
            DomainApplyError::Target { source, .. } => {
                matches!(source.as_ref(), TargetError::Runtime(runtime) if runtime.is_retryable())
            }
            DomainApplyError::Ingress { source, .. } => source.is_retryable(),
            DomainApplyError::Dns { source, .. } => source.is_retryable(),
            DomainApplyError::PlatformCertificate { source, .. } => source.is_retryable(),
            DomainApplyError::CertificateTimeout { .. } | DomainApplyError::Cancelled { .. } => true,
            DomainApplyError::Claim(error) => error.is_retryable(),
            DomainApplyError::Run { source, .. } => source.source.retryable,
            DomainApplyError::Journal { source, .. } => source.retryable,
            DomainApplyError::Vanished { .. } => true,
            _ => false,
        }
    }

    /// A failed run as the error of its step when everything was undone (so
    /// it reads as before), else with the undo failures.
    fn from_run(hostname: &Hostname, error: RunError) -> DomainApplyError {
        error
            .into_step_error()
            .unwrap_or_else(|error| DomainApplyError::Run { hostname: hostname.to_string(), source: Box::new(error) })
    }

    /// The domain error behind a failed run's step, or this one.
    pub fn cause(&self) -> &DomainApplyError {
        match self {
            DomainApplyError::Run { source, .. } => source.source.source.downcast_ref().unwrap_or(self),
            _ => self,
        }
    }
}

/// What a domain looks like now, for refresh and import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedDomain {
    pub record: DomainRecord,
    /// The platform records as they are in DNS (Atrium's, at the domain's name).
    pub dns_records: Vec<DnsRecordDocument>,
    /// `active`, `pending_verification`, `drifted` when the route or a
    /// record differs from what the registry says was applied, or
    /// `renewal_due` when the platform certificate serving it must be renewed.
    pub status: &'static str,
    pub certificate_expires_at: Option<String>,
}

impl ObservedDomain {
    /// The domain as a state holds it; `timeouts` are the configuration's.
    pub fn to_document(&self, timeouts: Option<crate::model::Timeouts>) -> crate::model::domain::DomainDocument {
        domain_document(&self.record, &self.dns_records, self.status, self.certificate_expires_at.clone(), timeouts)
    }
}

/// A domain as a state holds it, from its record, its DNS records and its status.
pub fn domain_document(
    record: &DomainRecord,
    dns_records: &[crate::model::domain::DnsRecordDocument],
    status: &str,
    certificate_expires_at: Option<String>,
    timeouts: Option<crate::model::Timeouts>,
) -> crate::model::domain::DomainDocument {
    let spec = &record.spec;
    let tenant = spec.app_instance_id.tenant_id.as_str();
    crate::model::domain::DomainDocument {
        app_instance_id: spec.app_instance_id.to_string(),
        hostname: spec.hostname.to_string(),
        tls: Some(spec.tls.as_str().to_owned()),
        timeouts,
        id: Some(spec.hostname.to_string()),
        fqdn: Some(spec.hostname.fqdn()),
        dns_records: Some(dns_records.to_vec()),
        verification: (record.kind == crate::model::domain::DomainKind::Custom)
            .then(|| crate::model::domain::verification_for(tenant, &spec.hostname)),
        status: Some(status.to_owned()),
        certificate_expires_at,
    }
}

/// The route handler of a suspended tenant's domains: a 503 page that says
/// what happened without saying more than the customer needs.
pub fn suspended_handler(tenant: &TenantRecord) -> RouteHandler {
    RouteHandler::Suspended {
        message: format!(
            "This service of {} is suspended. Its data is kept; please contact your provider to resume it.",
            tenant.spec.display_name
        ),
    }
}

/// The proxy handler to an instance on its target; `None` when it publishes no port.
pub async fn proxy_to(
    targets: &Targets,
    instance: &AppInstanceRecord,
) -> Result<Option<RouteHandler>, crate::backends::targets::TargetError> {
    let Some(port) = instance.published_port else { return Ok(None) };
    let upstreams = targets.upstreams(&instance.spec.target, port, instance.published_host.as_deref()).await?;
    Ok(Some(RouteHandler::Proxy { upstreams }))
}

/// What every domain operation needs.
pub struct DomainApplyContext<'a> {
    pub registry: &'a Registry,
    pub observations: &'a DomainObservations,
    pub targets: &'a Targets,
    /// The platform zone's DNS; `None` when the provider has no `dns` block.
    pub dns: Option<&'a dyn DnsZones>,
    /// Looks customers' verification records up.
    pub resolver: &'a DnsResolver,
    pub platform_zone: Option<&'a str>,
    /// The platform zone's wildcard certificate, when Atrium obtains one:
    /// platform subdomains are then served by it, with no order of their own.
    pub platform_certificate: Option<&'a PlatformCertificate>,
    pub owner: &'a crate::model::ownership::Owner,
    pub deadline: Duration,
    pub cancelled: tokio::sync::watch::Receiver<bool>,
}

impl<'a> DomainApplyContext<'a> {
    fn registry_error(&self, hostname: &Hostname) -> impl FnOnce(RegistryError) -> DomainApplyError {
        let hostname = hostname.to_string();
        move |source| DomainApplyError::Registry { hostname, source: Box::new(source) }
    }

    fn ingress_error(&self, hostname: &Hostname, target: &str) -> impl FnOnce(IngressError) -> DomainApplyError {
        let (hostname, target) = (hostname.to_string(), target.to_owned());
        move |source| DomainApplyError::Ingress { hostname, target, source: Box::new(source) }
    }

    fn dns_error(&self, hostname: &Hostname) -> impl FnOnce(DnsError) -> DomainApplyError {
        let hostname = hostname.to_string();
        move |source| DomainApplyError::Dns { hostname, source: Box::new(source) }
    }

    fn target_error(&self, hostname: &Hostname, target: &str) -> impl FnOnce(TargetError) -> DomainApplyError {
        let (hostname, target) = (hostname.to_string(), target.to_owned());
        move |source| DomainApplyError::Target { hostname, target, source: Box::new(source) }
    }

    fn dns_for(&self, hostname: &Hostname) -> Result<(&dyn DnsZones, String), DomainApplyError> {
        match (self.dns, self.platform_zone) {
            (Some(dns), Some(zone)) => Ok((dns, format!("{}.", zone_name(zone)))),
            _ => Err(DomainApplyError::NoDns { hostname: hostname.to_string() }),
        }
    }

    /// Whether the tenant is suspended (as last enforced), so its domains answer with the suspension page.
    pub async fn tenant_suspended(&self, tenant: &crate::model::TenantId) -> bool {
        matches!(self.registry.get_tenant(tenant).await, Ok(Some(record)) if record.status != TenantStatus::Active)
    }

    /// What a domain's plan needs observed for the host name and instance
    /// its configuration names (those it knows).
    pub async fn plan_facts(&self, config: &Draft) -> DomainFacts<'a> {
        let (hostname, instance_id) = crate::plan::domain::named(config);
        let holder = match &hostname {
            Some(hostname) => self.registry.get_domain(hostname).await.ok().flatten(),
            None => None,
        };
        let instance = match &instance_id {
            Some(id) => self.registry.get_app_instance(id).await.ok().flatten(),
            None => None,
        };
        let public_address =
            instance.as_ref().and_then(|i| self.targets.public_address(&i.spec.target).ok().map(str::to_owned));
        let kind = hostname.as_ref().and_then(|h| classify(h, self.platform_zone).ok());
        let records = match (kind, &hostname, &instance) {
            (Some(DomainKind::Platform), Some(hostname), Some(instance)) => Some(
                self.desired_records(hostname, DomainKind::Platform, &instance.spec.target)
                    .map_err(|error| crate::backends::error_chain(&error)),
            ),
            _ => None,
        };
        let verified = match (kind, &hostname, &instance_id) {
            (Some(DomainKind::Custom), Some(hostname), Some(id)) => Some(
                self.verification_resolves(id.tenant_id.as_str(), hostname)
                    .await
                    .map_err(|error| crate::backends::error_chain(&error)),
            ),
            _ => None,
        };
        let tenant_suspended = match &instance_id {
            Some(id) => self.tenant_suspended(&id.tenant_id).await,
            None => false,
        };
        DomainFacts {
            platform_zone: self.platform_zone,
            dns_configured: self.dns.is_some(),
            holder: holder.map(|record| record.spec.app_instance_id.tenant_id),
            public_address,
            records,
            verified,
            tenant_suspended,
        }
    }

    /// Whether a custom domain's verification record resolves to the tenant's value.
    pub async fn verification_resolves(&self, tenant: &str, hostname: &Hostname) -> Result<bool, DomainApplyError> {
        let verification = verification_for(tenant, hostname);
        let published = self.resolver.txt(&verification.name).await.map_err(self.dns_error(hostname))?;
        Ok(published.iter().any(|text| text == &verification.value))
    }

    /// The platform record a domain should have, for an instance on `target`.
    pub fn desired_records(
        &self,
        hostname: &Hostname,
        kind: DomainKind,
        target: &str,
    ) -> Result<Vec<DnsRecordDocument>, DomainApplyError> {
        match kind {
            DomainKind::Custom => Ok(Vec::new()),
            DomainKind::Platform => {
                let address = self.targets.public_address(target).map_err(self.target_error(hostname, target))?;
                Ok(vec![platform_record(hostname, address)])
            }
        }
    }

    /// Applies a domain so that its status becomes `status` (decided at plan:
    /// a platform subdomain is always active, a custom domain once verified).
    /// `create` carries a create's token, which claims the host name first.
    pub async fn apply(
        &self,
        spec: &DomainSpec,
        status: DomainStatus,
        create: Option<&CreateToken>,
    ) -> Result<DomainRecord, DomainApplyError> {
        let hostname = &spec.hostname;
        if *self.cancelled.borrow() {
            return Err(DomainApplyError::Cancelled { hostname: hostname.to_string() });
        }
        self.observations.clear().await;
        let key = hostname.to_string();
        let journal = RegistryJournal(self.registry);
        let (operation, decision) = match create {
            Some(token) => {
                let decision =
                    claim(self.registry, KIND, &key, &spec.app_instance_id.tenant_id, self.owner, token).await?;
                let operation = create_operation(&journal, KIND, &key, token, &decision)
                    .await
                    .map_err(|source| DomainApplyError::Journal { hostname: key.clone(), source })?;
                (operation, Some(decision))
            }
            None => (change_operation(KIND, &key, self.owner), None),
        };
        let steps = self.apply_steps(spec, status, &operation, decision.is_some());
        let result = crate::backends::retry::within(self.deadline, steps).await;
        // A new create that failed and left nothing frees the name again.
        if let (Err(error), Some(token), Some(CreateDecision::New)) = (&result, create, &decision)
            && !matches!(error, DomainApplyError::Run { source, .. } if !source.unwound)
            && matches!(self.registry.get_domain(hostname).await, Ok(None))
            && let Err(release_error) = self.registry.release_claim_of(KIND, &key, token).await
        {
            tracing::warn!(domain = %hostname, error = %release_error, "cannot release the name of a failed create");
        }
        self.observations.clear().await;
        result
    }

    async fn apply_steps(
        &self,
        spec: &DomainSpec,
        status: DomainStatus,
        operation: &str,
        creating: bool,
    ) -> Result<DomainRecord, DomainApplyError> {
        let hostname = &spec.hostname;
        let instance_id = &spec.app_instance_id;
        // Decide everything before touching anything.
        let instance =
            self.registry.get_app_instance(instance_id).await.map_err(self.registry_error(hostname))?.ok_or_else(
                || DomainApplyError::AppInstanceMissing {
                    hostname: hostname.to_string(),
                    instance: instance_id.to_string(),
                },
            )?;
        let proxy = proxy_to(self.targets, &instance)
            .await
            .map_err(self.target_error(hostname, &instance.spec.target))?
            .ok_or_else(|| DomainApplyError::AppInstanceNotServing {
                hostname: hostname.to_string(),
                instance: instance_id.to_string(),
            })?;
        let kind = classify(hostname, self.platform_zone)
            .map_err(|reason| DomainApplyError::Invalid { hostname: hostname.to_string(), reason })?;
        let existing = self.registry.get_domain(hostname).await.map_err(self.registry_error(hostname))?;
        if let Some(existing) = &existing
            && existing.spec.app_instance_id.tenant_id != instance_id.tenant_id
        {
            return Err(DomainApplyError::HostnameTaken {
                hostname: hostname.to_string(),
                tenant: existing.spec.app_instance_id.tenant_id.to_string(),
            });
        }
        let target = instance.spec.target.clone();
        let records = self.desired_records(hostname, kind, &target)?;
        if kind == DomainKind::Platform {
            self.dns_for(hostname)?;
        }
        if kind == DomainKind::Custom
            && status == DomainStatus::Active
            && !self.verification_resolves(instance_id.tenant_id.as_str(), hostname).await?
        {
            let verification = verification_for(instance_id.tenant_id.as_str(), hostname);
            return Err(DomainApplyError::VerificationMissing {
                hostname: hostname.to_string(),
                name: verification.name,
                value: verification.value,
            });
        }
        let ingress = self.targets.ingress(&target).await.map_err(self.target_error(hostname, &target))?;
        // The platform certificate is loaded before the route is written, so
        // the proxy never starts an order of its own for the name.
        let active = status == DomainStatus::Active;
        let wildcard = match self.platform_certificate {
            Some(certificate) if kind == DomainKind::Platform && active && spec.tls == TlsMode::Acme => {
                let (dns, _) = self.dns_for(hostname)?;
                certificate.ensure_served(self.registry, dns, &target, ingress.as_ref(), self.deadline).await.map_err(
                    |source| DomainApplyError::PlatformCertificate {
                        hostname: hostname.to_string(),
                        source: Box::new(source),
                    },
                )?;
                true
            }
            _ => false,
        };
        // A suspended tenant's domains answer with the suspension page.
        let handler =
            match self.registry.get_tenant(&instance_id.tenant_id).await.map_err(self.registry_error(hostname))? {
                Some(tenant) if tenant.status != TenantStatus::Active => suspended_handler(&tenant),
                _ => proxy,
            };
        let route = RouteSpec { hostname: hostname.to_string(), tls: spec.tls == TlsMode::Acme, handler };
        let record = DomainRecord {
            spec: spec.clone(),
            kind,
            target: target.clone(),
            status,
            certificate_expires_at: None,
            owner: existing.as_ref().map(|r| r.owner.clone()).unwrap_or_else(|| self.owner.as_str().to_owned()),
            created_at: existing.as_ref().map(|r| r.created_at.clone()).unwrap_or_else(now_rfc3339),
        };
        // What undo puts back: nothing for a create (what an interrupted
        // create it resumes left goes with it), the domain as it was otherwise.
        let before = if creating { None } else { existing.as_ref() };
        let before_route = match before {
            Some(before) if before.target == target => self.route_of(before).await?,
            _ => None,
        };
        let before_record = match before {
            Some(before) => self.desired_records(hostname, before.kind, &before.target)?.into_iter().next(),
            None => None,
        };
        let host = || hostname.clone();
        // The row (the journal of what it names) exists before anything it names.
        let mut steps: Vec<Box<dyn Step<DomainApplyContext<'_>>>> =
            vec![Box::new(Transition::new(Row(host(), None), before.cloned(), Some(record.clone())))];
        if kind == DomainKind::Platform || before_record.is_some() {
            let set = |record: &DnsRecordDocument| record_set(record, instance_id);
            steps.push(Box::new(Transition::new(
                PlatformRecord(host()),
                before_record.as_ref().map(set),
                records.first().map(set),
            )));
        }
        if let Some(previous) = &existing
            && previous.target != target
        {
            // The old route is not put back by an undo: it pointed at where
            // the instance no longer runs.
            steps.push(Box::new(Transition::new(
                Route { hostname: host(), target: previous.target.clone() },
                None,
                None,
            )));
        }
        steps.push(Box::new(Transition::new(
            Route { hostname: host(), target: target.clone() },
            before_route,
            active.then(|| route.clone()),
        )));
        if active && spec.tls == TlsMode::Acme {
            steps.push(Box::new(Certificate { record: record.clone() }));
        }
        // A route that needs a certificate of its own starts its order: held
        // from the route until it is served. The wildcard needs none.
        let ordering = active && spec.tls == TlsMode::Acme && !wildcard;
        let _order = if ordering { Some(self.targets.certificate_slot(&target).await) } else { None };
        if let Err(error) = run(operation, &steps, self, &RegistryJournal(self.registry)).await {
            return Err(DomainApplyError::from_run(hostname, error));
        }
        self.registry
            .get_domain(hostname)
            .await
            .map_err(self.registry_error(hostname))?
            .ok_or_else(|| DomainApplyError::Vanished { hostname: hostname.to_string() })
    }

    /// The route an active domain has as recorded (what an undo puts back):
    /// to its instance, or the suspension page of a suspended tenant.
    async fn route_of(&self, record: &DomainRecord) -> Result<Option<RouteSpec>, DomainApplyError> {
        let hostname = &record.spec.hostname;
        if record.status != DomainStatus::Active {
            return Ok(None);
        }
        let registry_error = || self.registry_error(hostname);
        let tenant_id = &record.spec.app_instance_id.tenant_id;
        let handler = match self.registry.get_tenant(tenant_id).await.map_err(registry_error())? {
            Some(tenant) if tenant.status != TenantStatus::Active => Some(suspended_handler(&tenant)),
            _ => match self.registry.get_app_instance(&record.spec.app_instance_id).await.map_err(registry_error())? {
                Some(instance) => proxy_to(self.targets, &instance)
                    .await
                    .map_err(self.target_error(hostname, &instance.spec.target))?,
                None => None,
            },
        };
        Ok(handler.map(|handler| RouteSpec {
            hostname: hostname.to_string(),
            tls: record.spec.tls == TlsMode::Acme,
            handler,
        }))
    }

    /// Polls the proxy until it serves a certificate for `hostname`; returns its expiry (RFC 3339).
    async fn wait_for_certificate(&self, hostname: &Hostname, target: &str) -> Result<String, DomainApplyError> {
        let ingress = self.targets.ingress(target).await.map_err(self.target_error(hostname, target))?;
        let started = tokio::time::Instant::now();
        let until = crate::backends::retry::deadline(self.deadline);
        loop {
            match ingress.served_certificate(hostname.as_str()).await {
                Ok(Some(certificate)) => return Ok(rfc3339(certificate.not_after)),
                Ok(None) => {}
                Err(error) if error.is_retryable() => {
                    tracing::debug!(domain = %hostname, error = %error, "no certificate yet");
                }
                Err(error) => return Err(self.ingress_error(hostname, target)(error)),
            }
            if tokio::time::Instant::now() + CERTIFICATE_POLL >= until {
                return Err(DomainApplyError::CertificateTimeout {
                    hostname: hostname.to_string(),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(CERTIFICATE_POLL).await;
        }
    }

    /// Destroys a domain, as steps of the runner: its route, its platform
    /// records, its row; then frees its name. Missing parts are fine.
    pub async fn destroy(&self, hostname: &Hostname) -> Result<(), DomainApplyError> {
        if *self.cancelled.borrow() {
            return Err(DomainApplyError::Cancelled { hostname: hostname.to_string() });
        }
        self.observations.clear().await;
        let result = crate::backends::retry::within(self.deadline, self.destroy_steps(hostname)).await;
        self.observations.clear().await;
        result
    }

    async fn destroy_steps(&self, hostname: &Hostname) -> Result<(), DomainApplyError> {
        if let Some(record) = self.registry.get_domain(hostname).await.map_err(self.registry_error(hostname))? {
            let host = || hostname.clone();
            let mut steps: Vec<Box<dyn Step<DomainApplyContext<'_>>>> = Vec::new();
            // What an undo puts back: the route as it was and the records it should have.
            let route = self.route_of(&record).await?;
            steps.push(Box::new(Transition::new(
                Route { hostname: host(), target: record.target.clone() },
                route,
                None,
            )));
            if record.kind == DomainKind::Platform {
                self.dns_for(hostname)?;
                let before = self
                    .desired_records(hostname, record.kind, &record.target)
                    .ok()
                    .and_then(|records| records.first().map(|wanted| record_set(wanted, &record.spec.app_instance_id)));
                steps.push(Box::new(Transition::new(PlatformRecord(host()), before, None)));
            }
            let claim =
                self.registry.get_claim(KIND, hostname.as_str()).await.map_err(self.registry_error(hostname))?;
            steps.push(Box::new(Transition::new(Row(host(), claim), Some(record.clone()), None)));
            let operation = change_operation(KIND, hostname.as_str(), self.owner);
            run(&operation, &steps, self, &RegistryJournal(self.registry))
                .await
                .map_err(|error| DomainApplyError::from_run(hostname, error))?;
        }
        // Gone: a journal an interrupted change of this owner left is done
        // with, and the name is free.
        let operation = change_operation(KIND, hostname.as_str(), self.owner);
        self.registry.journal_forget(&operation).await.map_err(self.registry_error(hostname))?;
        self.registry.release_claim(KIND, hostname.as_str()).await.map_err(self.registry_error(hostname))?;
        Ok(())
    }

    /// Observes a recorded domain: its records in DNS, its route, its certificate.
    pub async fn observe(&self, hostname: &Hostname) -> Result<Option<ObservedDomain>, DomainApplyError> {
        let registry_error = || self.registry_error(hostname);
        let Some(record) = self.observations.domain(self.registry, hostname).await.map_err(registry_error())? else {
            return Ok(None);
        };
        let instance =
            self.observations.instance(self.registry, &record.spec.app_instance_id).await.map_err(registry_error())?;
        let mut drifted = false;
        let mut suspended = false;
        // The platform zone's wildcard serving this name is due: an apply renews it.
        let mut renewal_due = false;
        let mut dns_records = Vec::new();
        if record.kind == DomainKind::Platform {
            let (dns, zone) = self.dns_for(hostname)?;
            let sets = self.observations.zone(&zone, dns).await.map_err(self.dns_error(hostname))?;
            let fqdn = hostname.fqdn();
            for set in sets.iter().filter(|set| set.name == fqdn && set.tenant.is_some()) {
                for content in &set.contents {
                    dns_records.push(DnsRecordDocument {
                        name: set.name.clone(),
                        record_type: set.record_type.clone(),
                        content: content.clone(),
                    });
                }
            }
            dns_records.sort_by(|a, b| (&a.record_type, &a.content).cmp(&(&b.record_type, &b.content)));
            let desired = self.desired_records(hostname, record.kind, &record.target)?;
            drifted |= dns_records != desired;
        }
        let mut certificate_expires_at = None;
        if record.status == DomainStatus::Active {
            let ingress =
                self.targets.ingress(&record.target).await.map_err(self.target_error(hostname, &record.target))?;
            let routes = self
                .observations
                .routes(&record.target, ingress.as_ref())
                .await
                .map_err(self.ingress_error(hostname, &record.target))?;
            let tenant = self
                .observations
                .tenant(self.registry, &record.spec.app_instance_id.tenant_id)
                .await
                .map_err(registry_error())?;
            suspended = tenant.as_ref().is_some_and(|tenant| tenant.status != TenantStatus::Active);
            let wanted = match &tenant {
                Some(tenant) if suspended => Some(suspended_handler(tenant)),
                _ => match &instance {
                    Some(instance) => proxy_to(self.targets, instance)
                        .await
                        .map_err(self.target_error(hostname, &instance.spec.target))?,
                    None => None,
                },
            };
            let route_matches = routes.get(hostname.as_str()).is_some_and(|route: &ObservedRoute| {
                route.tls == (record.spec.tls == TlsMode::Acme) && route.handler.is_some() && route.handler == wanted
            });
            drifted |= !route_matches;
            if record.spec.tls == TlsMode::Acme {
                certificate_expires_at = match ingress.served_certificate(hostname.as_str()).await {
                    Ok(Some(certificate)) => Some(rfc3339(certificate.not_after)),
                    _ => record.certificate_expires_at.clone(),
                };
                if let Some(certificate) = self.platform_certificate
                    && record.kind == DomainKind::Platform
                {
                    renewal_due = certificate.renewal_due(self.registry).await.map_err(|source| {
                        DomainApplyError::PlatformCertificate {
                            hostname: hostname.to_string(),
                            source: Box::new(source),
                        }
                    })?;
                }
            }
        }
        let status = if drifted {
            "drifted"
        } else if renewal_due {
            "renewal_due"
        } else if suspended {
            "suspended"
        } else {
            record.status.as_str()
        };
        Ok(Some(ObservedDomain { record, dns_records, status, certificate_expires_at }))
    }
}

const KIND: ObjectKind = ObjectKind::Domain;

/// The domain's registry row; with the claim a destroy frees with it (and
/// its undo puts back).
struct Row(Hostname, Option<Claim>);

#[async_trait]
impl<'a> Part<DomainApplyContext<'a>> for Row {
    type Value = DomainRecord;
    fn name(&self) -> String {
        "domain row".to_owned()
    }
    async fn make(&self, context: &DomainApplyContext<'a>, record: Option<&DomainRecord>) -> Result<(), StepError> {
        let registry = context.registry;
        match record {
            Some(record) => {
                registry.put_domain(record).await.map_err(registry_step_error)?;
                match &self.1 {
                    Some(claim) => registry.restore_claim(claim).await.map_err(registry_step_error),
                    None => Ok(()),
                }
            }
            None => registry.delete_with_claim(KIND, self.0.as_str()).await.map(|_| ()).map_err(registry_step_error),
        }
    }
}

/// The platform subdomain's record in the platform zone; removing it removes
/// every record Atrium marked at the name.
struct PlatformRecord(Hostname);

#[async_trait]
impl<'a> Part<DomainApplyContext<'a>> for PlatformRecord {
    type Value = RecordSet;
    fn name(&self) -> String {
        "platform DNS record".to_owned()
    }
    async fn make(&self, context: &DomainApplyContext<'a>, set: Option<&RecordSet>) -> Result<(), StepError> {
        let (dns, zone) = context.dns_for(&self.0).map_err(StepError::permanent)?;
        let dns_error = |source| {
            StepError::from_backend(DomainApplyError::Dns { hostname: self.0.to_string(), source: Box::new(source) })
        };
        if let Some(set) = set {
            return dns.put(&zone, set).await.map_err(dns_error);
        }
        let fqdn = self.0.fqdn();
        for set in dns.list(&zone).await.map_err(dns_error)? {
            if set.name == fqdn && set.tenant.is_some() {
                dns.remove(&zone, &set.name, &set.record_type).await.map_err(dns_error)?;
            }
        }
        Ok(())
    }
}

/// The domain's route on the reverse proxy beside a target.
struct Route {
    hostname: Hostname,
    target: String,
}

#[async_trait]
impl<'a> Part<DomainApplyContext<'a>> for Route {
    type Value = RouteSpec;
    fn name(&self) -> String {
        format!("route on the proxy of target {}", self.target)
    }
    async fn make(&self, context: &DomainApplyContext<'a>, route: Option<&RouteSpec>) -> Result<(), StepError> {
        let ingress =
            context.targets.ingress(&self.target).await.map_err(|source| {
                StepError::from_backend(context.target_error(&self.hostname, &self.target)(source))
            })?;
        let ingress_error =
            |source| StepError::from_backend(context.ingress_error(&self.hostname, &self.target)(source));
        match route {
            Some(route) => ingress.put_route(route, context.deadline).await.map_err(ingress_error),
            None => ingress.remove_route(self.hostname.as_str(), context.deadline).await.map_err(ingress_error),
        }
    }
}

/// Waits until the proxy serves the domain's certificate, then records its
/// expiry in the row. Nothing to undo: the route's undo stops the order.
struct Certificate {
    record: DomainRecord,
}

#[async_trait]
impl<'a> Step<DomainApplyContext<'a>> for Certificate {
    fn name(&self) -> String {
        "TLS certificate".to_owned()
    }
    async fn apply(&self, context: &DomainApplyContext<'a>) -> Result<(), StepError> {
        let hostname = &self.record.spec.hostname;
        let expires_at =
            context.wait_for_certificate(hostname, &self.record.target).await.map_err(StepError::from_backend)?;
        let record = DomainRecord { certificate_expires_at: Some(expires_at), ..self.record.clone() };
        context.registry.put_domain(&record).await.map_err(registry_step_error)
    }
    async fn undo(&self, _: &DomainApplyContext<'a>) -> Result<(), StepError> {
        Ok(())
    }
}

/// The record set for a platform record, marked as the tenant's.
fn record_set(record: &DnsRecordDocument, instance_id: &AppInstanceId) -> RecordSet {
    RecordSet {
        name: record.name.clone(),
        record_type: record.record_type.clone(),
        ttl: RECORD_TTL,
        contents: vec![record.content.clone()],
        tenant: Some(instance_id.tenant_id.to_string()),
    }
}

/// UTC, whole seconds: stored dates compare as text.
pub(crate) fn rfc3339(moment: time::OffsetDateTime) -> String {
    moment
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(moment)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Points every active route of `instance` at its current container (after
/// a deployment switched ports or targets). Runs before the old container
/// goes, so the domain never points at nothing.
/// The platform zone's DNS and the zone's name, for what follows a moved instance.
#[derive(Clone, Copy)]
pub struct PlatformDns<'a> {
    pub dns: &'a dyn DnsZones,
    pub zone: &'a str,
}

impl PlatformDns<'_> {
    /// Points a platform subdomain's record at `public_address`; a record of
    /// another type at the name (an address that was a host name) goes.
    async fn repoint(
        &self,
        hostname: &Hostname,
        instance: &AppInstanceId,
        public_address: &str,
    ) -> Result<(), DnsError> {
        let zone = format!("{}.", zone_name(self.zone));
        let wanted = record_set(&platform_record(hostname, public_address), instance);
        for set in self.dns.list(&zone).await? {
            if set.name == wanted.name && set.record_type != wanted.record_type && set.tenant.is_some() {
                self.dns.remove(&zone, &set.name, &set.record_type).await?;
            }
        }
        self.dns.put(&zone, &wanted).await
    }
}

pub async fn repoint_routes(
    registry: &Registry,
    targets: &Targets,
    dns: Option<PlatformDns<'_>>,
    instance: &AppInstanceRecord,
    deadline: Duration,
) -> Result<usize, DomainApplyError> {
    let handler = proxy_to(targets, instance).await.map_err(|source| DomainApplyError::Target {
        hostname: instance.spec.id.to_string(),
        target: instance.spec.target.clone(),
        source: Box::new(source),
    })?;
    let Some(handler) = handler else { return Ok(0) };
    let domains = registry.domains_of_instance(&instance.spec.id).await.map_err(|source| {
        DomainApplyError::Registry { hostname: instance.spec.id.to_string(), source: Box::new(source) }
    })?;
    let mut repointed = 0;
    for mut domain in domains.into_iter().filter(|d| d.status == DomainStatus::Active) {
        let hostname = domain.spec.hostname.to_string();
        let target = instance.spec.target.clone();
        let ingress_error = |source| DomainApplyError::Ingress {
            hostname: hostname.clone(),
            target: target.clone(),
            source: Box::new(source),
        };
        let target_error = |source| DomainApplyError::Target {
            hostname: hostname.clone(),
            target: target.clone(),
            source: Box::new(source),
        };
        let ingress = targets.ingress(&target).await.map_err(target_error)?;
        let route =
            RouteSpec { hostname: hostname.clone(), tls: domain.spec.tls == TlsMode::Acme, handler: handler.clone() };
        ingress.put_route(&route, deadline).await.map_err(ingress_error)?;
        if domain.target != target {
            // Targets beside one reverse proxy share its route of the host name.
            let proxy = |name: &str| targets.document(name).ok().and_then(|d| d.ingress_admin_url.clone());
            if proxy(&domain.target).is_none() || proxy(&domain.target) != proxy(&target) {
                let old = targets.ingress(&domain.target).await.map_err(target_error)?;
                old.remove_route(&hostname, deadline).await.map_err(ingress_error)?;
            }
            // A platform subdomain's record follows the instance to its new
            // target's address (a custom domain's records are the customer's).
            let address = |name: &str| targets.public_address(name).ok().map(str::to_owned);
            if let (DomainKind::Platform, Some(dns), Some(new)) = (domain.kind, dns, address(&target))
                && address(&domain.target).as_ref() != Some(&new)
            {
                dns.repoint(&domain.spec.hostname, &instance.spec.id, &new)
                    .await
                    .map_err(|source| DomainApplyError::Dns { hostname: hostname.clone(), source: Box::new(source) })?;
            }
            domain.target = target.clone();
            registry.put_domain(&domain).await.map_err(|source| DomainApplyError::Registry {
                hostname: hostname.clone(),
                source: Box::new(source),
            })?;
        }
        repointed += 1;
    }
    Ok(repointed)
}
