//! What ConfigureProvider sets up, shared by every resource: the registry
//! and its observations, the catalog, the targets and the backends, and the
//! contexts the engine's apply takes.

use std::sync::Arc;

use atrium_engine::apply::app_instance::AppContext;
use atrium_engine::apply::domain::DomainApplyContext;
use atrium_engine::apply::support_plan::SupportPlanContext;
use atrium_engine::backends::mailer::SmtpMailer;
use atrium_engine::backends::powerdns::PowerDns;
use atrium_engine::backends::redmine::Redmine;
use atrium_engine::backends::resolver::DnsResolver;
use atrium_engine::backends::targets::Targets;
use atrium_engine::catalog::Catalog;
use atrium_engine::model::ownership::{CreateToken, Owner};
use atrium_engine::observe::{AppObservations, ClaimObserver, DomainObservations, TenantObserver};
use atrium_engine::registry::Registry;
use tokio::sync::watch;

use crate::claims;
use crate::diagnostics;
use crate::proto::tfplugin6 as pb;
use crate::value::Value;

/// What ConfigureProvider sets up: the registry, the catalog and the targets.
pub struct Configured {
    pub(crate) tenant_observer: TenantObserver,
    pub(crate) app_observations: AppObservations,
    /// The apps; the built-in catalog is parsed on first use (a configuration
    /// of tenants alone never pays for it), an operator's directory at once
    /// (its mistakes are configuration errors).
    pub(crate) catalog: std::sync::OnceLock<Catalog>,
    pub(crate) targets: Targets,
    pub(crate) domain_observations: DomainObservations,
    /// The platform zone's DNS, when the provider has a `dns` block.
    pub(crate) dns: Option<PowerDns>,
    pub(crate) resolver: DnsResolver,
    pub(crate) platform_zone: Option<String>,
    /// The SMTP relay for welcome emails, when the provider has an `smtp` block.
    pub(crate) mailer: Option<SmtpMailer>,
    /// The support tracker, when the provider has a `tracker` block, and the role managers get there.
    pub(crate) tracker: Option<Redmine>,
    pub(crate) tracker_role: String,
    /// The configuration this process speaks for, and the registry's claims.
    pub(crate) owner: Owner,
    pub(crate) claims: Arc<ClaimObserver>,
    /// Flips when Terraform calls StopProvider: reads and imports take it too.
    pub(crate) stopped: watch::Receiver<bool>,
}

impl Configured {
    pub(crate) fn registry(&self) -> &Registry {
        self.tenant_observer.registry()
    }

    pub(crate) fn catalog(&self) -> &Catalog {
        self.catalog.get_or_init(Catalog::built_in)
    }

    /// Tells the registry that this state holds the object (its claim is
    /// confirmed once); a failure only delays that to the next plan.
    pub(crate) async fn acknowledge(&self, type_name: &str, state: &Value, private: &[u8]) {
        let Some(kind) = claims::kind_of(type_name) else { return };
        let Some(key) = claims::natural_key(kind, state) else { return };
        let token = claims::token_of(private);
        if let Err(error) = self.claims.acknowledge(kind, &key, token.as_ref(), &self.owner).await {
            tracing::warn!(error = %error, "cannot read the registry's claims; the next plan tries again");
        }
    }

    /// The check of a planned create against the registry's claims.
    /// An object this state made is gone (deleted by hand): its name is
    /// free again, so that the plan may create it anew. Only the claim of the
    /// create this state recorded is released, never another owner's.
    pub(crate) async fn release_vanished(&self, type_name: &str, state: &Value, private: &[u8]) {
        let Some(kind) = claims::kind_of(type_name) else { return };
        let Some(key) = claims::natural_key(kind, state) else { return };
        let token = claims::token_of(private).unwrap_or_else(|| CreateToken::from_stored(""));
        if let Err(error) = self.registry().release_claim_of(kind, &key, &token).await {
            tracing::warn!(error = %error, "cannot release the name of a vanished object");
        }
        self.claims.invalidate().await;
    }

    /// The check of a planned create against the registry's claims.
    pub(crate) async fn check_planned_create(&self, type_name: &str, config: &Value) -> Option<pb::Diagnostic> {
        let kind = claims::kind_of(type_name)?;
        let key = claims::natural_key(kind, config)?;
        match self.claims.claim(kind, &key).await {
            Ok(existing) => claims::check_create(kind, &key, existing.as_ref(), &self.owner),
            Err(error) => Some(diagnostics::error("Cannot read the registry", diagnostics::error_chain(&error))),
        }
    }

    pub(crate) fn app_context(
        &self,
        deadline: std::time::Duration,
        cancelled: watch::Receiver<bool>,
    ) -> AppContext<'_> {
        AppContext {
            registry: self.registry(),
            observations: &self.app_observations,
            catalog: self.catalog(),
            targets: &self.targets,
            mailer: self.mailer.as_ref().map(|mailer| mailer as &dyn atrium_engine::backends::mailer::Mailer),
            owner: &self.owner,
            deadline,
            cancelled,
        }
    }

    pub(crate) fn support_plan_context(
        &self,
        deadline: std::time::Duration,
        cancelled: watch::Receiver<bool>,
    ) -> SupportPlanContext<'_> {
        SupportPlanContext {
            registry: self.registry(),
            tracker: self.tracker.as_ref().map(|tracker| tracker as &dyn atrium_engine::backends::tracker::Tracker),
            tracker_role: &self.tracker_role,
            owner: &self.owner,
            deadline,
            cancelled,
        }
    }

    pub(crate) fn domain_context(
        &self,
        deadline: std::time::Duration,
        cancelled: watch::Receiver<bool>,
    ) -> DomainApplyContext<'_> {
        DomainApplyContext {
            registry: self.registry(),
            observations: &self.domain_observations,
            targets: &self.targets,
            dns: self.dns.as_ref().map(|dns| dns as &dyn atrium_engine::backends::dns::DnsZones),
            resolver: &self.resolver,
            platform_zone: self.platform_zone.as_deref(),
            owner: &self.owner,
            deadline,
            cancelled,
        }
    }
}

/// The answer to a call that needs the provider configured, before it is.
pub fn not_configured() -> pb::Diagnostic {
    diagnostics::error(
        "Provider not configured",
        "Terraform called the provider before configuring it; this is unexpected, run the command again",
    )
}
