//! What ConfigureProvider sets up, shared by every resource: the registry
//! and its observations, the catalog, the targets and the backends, and the
//! contexts the engine's apply takes.

use std::sync::Arc;
use std::time::Duration;

use atrium_engine::apply::app_instance::AppContext;
use atrium_engine::apply::domain::DomainApplyContext;
use atrium_engine::apply::support_plan::SupportPlanContext;
use atrium_engine::catalog::Catalog;
use atrium_engine::model::ownership::{CreateToken, Owner};
use atrium_engine::observe::{AppObservations, ClaimObserver, DomainObservations, TenantObserver};
use atrium_engine::platform::Platform;
use atrium_engine::registry::Registry;
use tokio::sync::watch;

use crate::claims;
use crate::diagnostics;
use crate::proto::tfplugin6 as pb;
use crate::value::Value;

/// What ConfigureProvider sets up: the platform, and the observations and
/// claims of this provider process.
pub struct Configured {
    pub(crate) platform: Platform,
    pub(crate) tenant_observer: TenantObserver,
    pub(crate) app_observations: AppObservations,
    pub(crate) domain_observations: DomainObservations,
    /// The configuration this process speaks for, and the registry's claims.
    pub(crate) owner: Owner,
    pub(crate) claims: Arc<ClaimObserver>,
    /// Flips when Terraform calls StopProvider: reads and imports take it too.
    pub(crate) stopped: watch::Receiver<bool>,
}

impl Configured {
    pub(crate) fn registry(&self) -> &Registry {
        &self.platform.registry
    }

    pub(crate) fn catalog(&self) -> &Catalog {
        self.platform.catalog()
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

    pub(crate) fn app_context(&self, deadline: Duration, cancelled: watch::Receiver<bool>) -> AppContext<'_> {
        self.platform.app_context(&self.app_observations, &self.owner, deadline, cancelled)
    }

    pub(crate) fn support_plan_context(
        &self,
        deadline: Duration,
        cancelled: watch::Receiver<bool>,
    ) -> SupportPlanContext<'_> {
        self.platform.support_plan_context(&self.owner, deadline, cancelled)
    }

    pub(crate) fn domain_context(
        &self,
        deadline: Duration,
        cancelled: watch::Receiver<bool>,
    ) -> DomainApplyContext<'_> {
        self.platform.domain_context(&self.domain_observations, &self.owner, deadline, cancelled)
    }
}

/// The answer to a call that needs the provider configured, before it is.
pub fn not_configured() -> pb::Diagnostic {
    diagnostics::error(
        "Provider not configured",
        "Terraform called the provider before configuring it; this is unexpected, run the command again",
    )
}
