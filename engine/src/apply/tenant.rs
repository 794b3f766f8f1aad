//! Applying tenant changes to the registry.
//!
//! A tenant is one registry row, so each change is one transaction: a cut-off
//! apply leaves the old row or the new one, never half of each. Create treats
//! an identical row left by an interrupted attempt as done; delete treats a
//! missing row as done. Cancellation is honoured *before* a write starts and
//! never in the middle of one, so the caller can always report what happened.

use std::time::Duration;

use tokio::sync::watch;

use crate::apply::claims::{ClaimError, claim};
use crate::model::TenantId;
use crate::model::ownership::{CreateDecision, CreateToken, Dependent, ObjectKind, Owner, list_dependents};
use crate::model::tenant::{TenantRecord, TenantSpec};
use crate::observe::TenantObserver;
use crate::plan::tenant::{Action, Change};
use crate::registry::{InsertOutcome, RegistryError};

/// Why a tenant change did not complete.
#[derive(Debug, thiserror::Error)]
pub enum TenantApplyError {
    #[error("the registry failed while applying tenant {tenant_id}")]
    Registry {
        tenant_id: TenantId,
        #[source]
        source: RegistryError,
    },
    #[error("a different tenant named {tenant_id} already exists (owner: {owner})")]
    Conflict { tenant_id: TenantId, owner: String },
    #[error(transparent)]
    Claim(#[from] ClaimError),
    #[error(
        "tenant {tenant_id} still has objects that depend on it: {}. Destroy them (or move them to another tenant) where they are managed first; nothing was deleted",
        list_dependents(dependents)
    )]
    HasDependents { tenant_id: TenantId, dependents: Vec<Dependent> },
    #[error(
        "tenant {tenant_id}'s app instances use {used} users ({instances}), more than the user quota of {quota}; keep user_quota at {used} or more, or lower the instances' users first"
    )]
    QuotaBelowUse { tenant_id: TenantId, quota: u32, used: u64, instances: String },
    #[error(
        "tenant {tenant_id} has the {level} support plan, which a {tier} tenant cannot have: first change the atrium_support_plan's level to \"standard_8x5\", or keep the tier"
    )]
    TierStrandsSupportLevel { tenant_id: TenantId, tier: String, level: String },
    #[error("tenant {tenant_id} no longer exists in the registry")]
    Missing { tenant_id: TenantId },
    #[error("applying tenant {tenant_id} did not finish within {deadline:?}")]
    DeadlineExceeded { tenant_id: TenantId, deadline: Duration },
    #[error("applying tenant {tenant_id} was cancelled before it started; nothing was changed")]
    Cancelled { tenant_id: TenantId },
}

impl TenantApplyError {
    /// Whether running the same apply again may succeed as it is.
    pub fn is_retryable(&self) -> bool {
        match self {
            TenantApplyError::Registry { source, .. } => source.is_retryable(),
            TenantApplyError::DeadlineExceeded { .. } | TenantApplyError::Cancelled { .. } => true,
            TenantApplyError::Claim(error) => error.is_retryable(),
            TenantApplyError::Conflict { .. }
            | TenantApplyError::Missing { .. }
            | TenantApplyError::HasDependents { .. }
            | TenantApplyError::QuotaBelowUse { .. }
            | TenantApplyError::TierStrandsSupportLevel { .. } => false,
        }
    }
}

/// How a tenant apply runs: who owns what it makes, its deadline, and the
/// signal that asks it to stop.
pub struct ApplyContext<'a> {
    pub owner: &'a Owner,
    /// The token a create records in its claim (and the state keeps).
    pub create_token: &'a CreateToken,
    pub deadline: Duration,
    pub cancelled: watch::Receiver<bool>,
}

/// Applies one change; returns the tenant as it now exists (`None` after a delete).
/// A busy or unreachable registry is retried with the one retry policy
/// ([`crate::backends::retry`]) within the deadline.
pub async fn apply_tenant_change(
    observer: &TenantObserver,
    change: &Change,
    context: &ApplyContext<'_>,
) -> Result<Option<TenantRecord>, TenantApplyError> {
    let tenant_id = change.tenant_id.clone();
    let mut backoff = crate::backends::retry::Backoff::new(context.deadline);
    loop {
        if *context.cancelled.borrow() {
            return Err(TenantApplyError::Cancelled { tenant_id });
        }
        let remaining = crate::backends::retry::remaining(context.deadline);
        if remaining.is_zero() {
            return Err(TenantApplyError::DeadlineExceeded { tenant_id, deadline: context.deadline });
        }
        let attempt = tokio::time::timeout(remaining, apply_once(observer, change, context)).await;
        observer.invalidate().await;
        match attempt {
            Err(_) => return Err(TenantApplyError::DeadlineExceeded { tenant_id, deadline: context.deadline }),
            Ok(Err(TenantApplyError::Registry { source, .. })) if source.is_retryable() && backoff.wait().await => {
                tracing::warn!(tenant = %tenant_id, error = %source, "registry busy; retrying");
            }
            Ok(result) => return result,
        }
    }
}

async fn apply_once(
    observer: &TenantObserver,
    change: &Change,
    context: &ApplyContext<'_>,
) -> Result<Option<TenantRecord>, TenantApplyError> {
    let registry = observer.registry();
    let tenant_id = change.tenant_id.clone();
    let registry_error = |source| TenantApplyError::Registry { tenant_id: tenant_id.clone(), source };
    match change.action {
        Action::NoOp => Ok(change.before.clone()),
        Action::Create => create(observer, desired(change)?, context).await,
        Action::Update => {
            let spec = desired(change)?;
            check_what_depends_on_the_tenant(registry, spec).await?;
            match registry.update_tenant(spec).await.map_err(registry_error)? {
                Some(record) => Ok(Some(record)),
                None => Err(TenantApplyError::Missing { tenant_id }),
            }
        }
        Action::Replace => {
            if let Some(before) = &change.before {
                delete(observer, &before.spec.name).await?;
            }
            create(observer, desired(change)?, context).await
        }
        Action::Delete => {
            let name = change.before.as_ref().map(|b| &b.spec.name).unwrap_or(&change.tenant_id);
            delete(observer, name).await?;
            Ok(None)
        }
    }
}

fn desired(change: &Change) -> Result<&TenantSpec, TenantApplyError> {
    change.after.as_ref().ok_or_else(|| TenantApplyError::Missing { tenant_id: change.tenant_id.clone() })
}

/// An update may not strand what depends on the tenant: a user quota below
/// what its instances use, or a tier its support plan's level needs. These
/// are checked here, at apply: at plan they are warnings, because the same
/// apply may change the instances or the plan first, and a check of the
/// desired state must never block a destroy (Terraform plans the current
/// configuration before every destroy).
pub async fn check_what_depends_on_the_tenant(
    registry: &crate::registry::Registry,
    spec: &TenantSpec,
) -> Result<(), TenantApplyError> {
    let registry_error = |source| TenantApplyError::Registry { tenant_id: spec.name.clone(), source };
    let instances = registry.app_instances_of_tenant(&spec.name).await.map_err(registry_error)?;
    let used: u64 = instances.iter().map(|instance| u64::from(instance.spec.users)).sum();
    if used > u64::from(spec.user_quota) {
        let listing: Vec<String> =
            instances.iter().map(|i| format!("{} ({} users)", i.spec.id, i.spec.users)).collect();
        return Err(TenantApplyError::QuotaBelowUse {
            tenant_id: spec.name.clone(),
            quota: spec.user_quota,
            used,
            instances: listing.join(", "),
        });
    }
    if let Some(plan) = registry.get_support_plan(&spec.name).await.map_err(registry_error)?
        && !crate::model::support_plan::SupportLevel::allowed_for(spec.tier).contains(&plan.spec.level)
    {
        return Err(TenantApplyError::TierStrandsSupportLevel {
            tenant_id: spec.name.clone(),
            tier: spec.tier.as_str().to_owned(),
            level: plan.spec.level.as_str().to_owned(),
        });
    }
    Ok(())
}

/// Deletes a tenant that nothing depends on any more, then frees its name.
async fn delete(observer: &TenantObserver, name: &TenantId) -> Result<(), TenantApplyError> {
    let registry = observer.registry();
    let registry_error = |source| TenantApplyError::Registry { tenant_id: name.clone(), source };
    let dependents = registry.tenant_dependents(name).await.map_err(registry_error)?;
    if !dependents.is_empty() {
        return Err(TenantApplyError::HasDependents { tenant_id: name.clone(), dependents });
    }
    registry.delete_tenant(name).await.map_err(registry_error)?;
    registry.release_claim(ObjectKind::Tenant, name.as_str()).await.map_err(registry_error)?;
    Ok(())
}

/// Claims the tenant's name, then writes its row; a create that does not
/// finish releases the name again.
async fn create(
    observer: &TenantObserver,
    spec: &TenantSpec,
    context: &ApplyContext<'_>,
) -> Result<Option<TenantRecord>, TenantApplyError> {
    let registry = observer.registry();
    let key = spec.name.as_str();
    let decision = claim(registry, ObjectKind::Tenant, key, &spec.name, context.owner, context.create_token).await?;
    let registry_error = |source| TenantApplyError::Registry { tenant_id: spec.name.clone(), source };
    let written = async {
        match registry.insert_tenant(spec, context.owner.as_str()).await.map_err(registry_error)? {
            InsertOutcome::Created(record) | InsertOutcome::AlreadyPresent(record) => Ok(Some(record)),
            // An interrupted create of this owner left its row: make it the desired one.
            InsertOutcome::Conflict(_) if matches!(decision, CreateDecision::Resume { .. }) => {
                match registry.update_tenant(spec).await.map_err(registry_error)? {
                    Some(record) => Ok(Some(record)),
                    None => Err(TenantApplyError::Missing { tenant_id: spec.name.clone() }),
                }
            }
            InsertOutcome::Conflict(existing) => {
                Err(TenantApplyError::Conflict { tenant_id: spec.name.clone(), owner: existing.owner })
            }
        }
    }
    .await;
    if written.is_err() && decision == CreateDecision::New {
        // Undo: nothing was written, so the name is free again. A failure
        // here leaves the claim, which the next apply of this owner resumes.
        if let Err(error) = registry.release_claim_of(ObjectKind::Tenant, key, context.create_token).await {
            tracing::warn!(tenant = %spec.name, error = %error, "cannot release the claim of a failed create");
        }
    }
    written
}
