//! Applying tenant changes to the registry.
//!
//! A tenant is one registry row, so each change is one transaction: a cut-off
//! apply leaves the old row or the new one, never half of each. Create treats
//! an identical row left by an interrupted attempt as done; delete treats a
//! missing row as done. Cancellation is honoured *before* a write starts and
//! never in the middle of one, so the caller can always report what happened.

use std::time::Duration;

use tokio::sync::watch;

use crate::apply::claims::{ClaimError, change_operation, claim, create_operation};
use crate::apply::runner::{RunError, Step, StepError};
use crate::backends::targets::Targets;
use crate::model::TenantId;
use crate::model::ownership::{Claim, CreateDecision, CreateToken, Dependent, ObjectKind, Owner, list_dependents};
use crate::model::tenant::{TenantRecord, TenantSpec, today};
use crate::observe::TenantObserver;
use crate::plan::tenant::{Action, Change, TenantDecision, plan_tenant};
use crate::registry::{InsertOutcome, Registry, RegistryError};

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
    #[error("applying tenant {tenant_id}: {source}")]
    Run { tenant_id: TenantId, source: Box<RunError> },
    #[error("the registry's journal failed for tenant {tenant_id}: {source}")]
    Journal { tenant_id: TenantId, source: StepError },
    #[error("tenant {tenant_id} is recorded, but bringing its apps to its status failed")]
    Status {
        tenant_id: TenantId,
        #[source]
        source: Box<crate::apply::suspension::SuspensionError>,
    },
}

impl TenantApplyError {
    /// Whether running the same apply again may succeed as it is.
    pub fn is_retryable(&self) -> bool {
        match self {
            TenantApplyError::Registry { source, .. } => source.is_retryable(),
            TenantApplyError::DeadlineExceeded { .. } | TenantApplyError::Cancelled { .. } => true,
            TenantApplyError::Claim(error) => error.is_retryable(),
            TenantApplyError::Run { source, .. } => source.source.retryable,
            TenantApplyError::Journal { source, .. } => source.retryable,
            TenantApplyError::Status { source, .. } => source.is_retryable(),
            TenantApplyError::Conflict { .. }
            | TenantApplyError::Missing { .. }
            | TenantApplyError::HasDependents { .. }
            | TenantApplyError::QuotaBelowUse { .. }
            | TenantApplyError::TierStrandsSupportLevel { .. } => false,
        }
    }
}

impl crate::backends::retry::Retryable for TenantApplyError {
    fn is_retryable(&self) -> bool {
        TenantApplyError::is_retryable(self)
    }
}

impl TenantApplyError {
    /// A failed run as the error of its step when everything was undone (so
    /// the refusal reads as before), else with the undo failures.
    fn from_run(tenant_id: &TenantId, error: RunError) -> TenantApplyError {
        error
            .into_step_error()
            .unwrap_or_else(|error| TenantApplyError::Run { tenant_id: tenant_id.clone(), source: Box::new(error) })
    }

    /// Whether nothing of the failed change is left (so a create's name is free).
    fn undone(&self) -> bool {
        !matches!(self, TenantApplyError::Run { source, .. } if !source.unwound)
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

/// Applies what a tenant's plan decided for `tenant_id`: the change from
/// `before` (the tenant the prior state describes; `None` when creating) to
/// `desired` (`None`: delete), then the status the plan decided (today's,
/// for a plan without a decision). Returns the tenant as it now is (`None`
/// after a delete).
pub async fn apply_planned(
    observer: &TenantObserver,
    targets: &Targets,
    tenant_id: &TenantId,
    before: Option<&TenantRecord>,
    desired: Option<&TenantSpec>,
    decision: Option<&TenantDecision>,
    context: &ApplyContext<'_>,
) -> Result<Option<TenantRecord>, TenantApplyError> {
    let registry = observer.registry();
    let Some(spec) = desired else {
        let observed = registry
            .get_tenant(tenant_id)
            .await
            .map_err(|source| TenantApplyError::Registry { tenant_id: tenant_id.clone(), source })?;
        // Already gone: deleting what does not exist is success.
        let Some(observed) = observed else { return Ok(None) };
        let change = plan_tenant(None, Some(&observed)).expect("deleting an observed tenant is a change");
        return apply_tenant_change(observer, &change, context).await;
    };
    let record = match plan_tenant(Some(spec), before) {
        Some(change) if change.action != Action::NoOp => apply_tenant_change(observer, &change, context).await?,
        // Only the status may move (time passed): enforced on the registry's record.
        _ => registry
            .get_tenant(&spec.name)
            .await
            .map_err(|source| TenantApplyError::Registry { tenant_id: spec.name.clone(), source })?,
    };
    let Some(mut record) = record else { return Err(TenantApplyError::Missing { tenant_id: spec.name.clone() }) };
    let status = decision.map_or_else(|| record.spec.desired_status(today()), |decision| decision.status);
    if status != record.status {
        crate::apply::suspension::enforce(registry, targets, &record, status, context.deadline)
            .await
            .map_err(|source| TenantApplyError::Status { tenant_id: spec.name.clone(), source: Box::new(source) })?;
        observer.invalidate().await;
        record.status = status;
    }
    Ok(Some(record))
}

/// Applies one change through the one runner; returns the tenant as it now
/// exists (`None` after a delete). A busy or unreachable registry is retried
/// with the one retry policy ([`crate::backends::retry`]) within the deadline.
pub async fn apply_tenant_change(
    observer: &TenantObserver,
    change: &Change,
    context: &ApplyContext<'_>,
) -> Result<Option<TenantRecord>, TenantApplyError> {
    let tenant_id = change.tenant_id.clone();
    if *context.cancelled.borrow() {
        return Err(TenantApplyError::Cancelled { tenant_id });
    }
    let applied = crate::backends::retry::within(
        context.deadline,
        tokio::time::timeout(context.deadline, apply_change(observer, change, context)),
    )
    .await;
    observer.invalidate().await;
    applied.unwrap_or(Err(TenantApplyError::DeadlineExceeded { tenant_id, deadline: context.deadline }))
}

async fn apply_change(
    observer: &TenantObserver,
    change: &Change,
    context: &ApplyContext<'_>,
) -> Result<Option<TenantRecord>, TenantApplyError> {
    let registry = observer.registry();
    match change.action {
        Action::NoOp => Ok(change.before.clone()),
        Action::Create => create(registry, desired(change)?, context).await,
        Action::Update => {
            let spec = desired(change)?;
            check_what_depends_on_the_tenant(registry, spec).await?;
            let before = change.before.as_ref().map(|record| record.spec.clone());
            let steps = TenantSteps::new(registry, context.owner, false);
            let operation = change_operation(ObjectKind::Tenant, spec.name.as_str(), context.owner);
            steps.run(&operation, &spec.name, before, Some(spec.clone())).await
        }
        Action::Replace => {
            if let Some(before) = &change.before {
                delete(registry, before, context).await?;
            }
            create(registry, desired(change)?, context).await
        }
        Action::Delete => {
            match &change.before {
                Some(before) => delete(registry, before, context).await?,
                None => registry
                    .release_claim(ObjectKind::Tenant, change.tenant_id.as_str())
                    .await
                    .map_err(|source| TenantApplyError::Registry { tenant_id: change.tenant_id.clone(), source })?,
            }
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
async fn delete(
    registry: &Registry,
    before: &TenantRecord,
    context: &ApplyContext<'_>,
) -> Result<(), TenantApplyError> {
    let name = &before.spec.name;
    let registry_error = |source| TenantApplyError::Registry { tenant_id: name.clone(), source };
    let dependents = registry.tenant_dependents(name).await.map_err(registry_error)?;
    if !dependents.is_empty() {
        return Err(TenantApplyError::HasDependents { tenant_id: name.clone(), dependents });
    }
    let operation = change_operation(ObjectKind::Tenant, name.as_str(), context.owner);
    let mut steps = TenantSteps::new(registry, context.owner, false);
    // The row and its claim go in one transaction; an undo puts both back.
    steps.claim = registry.get_claim(ObjectKind::Tenant, name.as_str()).await.map_err(registry_error)?;
    steps.run(&operation, name, Some(before.spec.clone()), None).await?;
    registry.release_claim(ObjectKind::Tenant, name.as_str()).await.map_err(registry_error)?;
    Ok(())
}

/// Claims the tenant's name, then writes its row; a create that is undone
/// releases the name again.
async fn create(
    registry: &Registry,
    spec: &TenantSpec,
    context: &ApplyContext<'_>,
) -> Result<Option<TenantRecord>, TenantApplyError> {
    let key = spec.name.as_str();
    let decision = claim(registry, ObjectKind::Tenant, key, &spec.name, context.owner, context.create_token).await?;
    let journal = crate::apply::runner::RegistryJournal(registry);
    let operation = create_operation(&journal, ObjectKind::Tenant, key, context.create_token, &decision)
        .await
        .map_err(|source| TenantApplyError::Journal { tenant_id: spec.name.clone(), source })?;
    let resume = matches!(decision, CreateDecision::Resume { .. });
    let written =
        TenantSteps::new(registry, context.owner, resume).run(&operation, &spec.name, None, Some(spec.clone())).await;
    if let Err(error) = &written
        && error.undone()
        && let Err(release) = registry.release_claim_of(ObjectKind::Tenant, key, context.create_token).await
    {
        // Nothing was written, so the name is free again. A failure here
        // leaves the claim, which the next apply of this owner resumes.
        tracing::warn!(tenant = %spec.name, error = %release, "cannot release the claim of a failed create");
    }
    written
}

/// What the tenant's steps share: the registry, and who writes.
struct TenantSteps<'a> {
    registry: &'a Registry,
    owner: &'a Owner,
    /// Whether a create finishes an interrupted create of this owner (whose
    /// row it then takes over).
    resume: bool,
    /// The row as the last step wrote it.
    written: std::sync::Mutex<Option<TenantRecord>>,
    /// The claim a delete frees with the row (and its undo puts back).
    claim: Option<Claim>,
}

impl<'a> TenantSteps<'a> {
    fn new(registry: &'a Registry, owner: &'a Owner, resume: bool) -> TenantSteps<'a> {
        TenantSteps { registry, owner, resume, written: std::sync::Mutex::new(None), claim: None }
    }

    /// Runs the one step of a tenant change: its row from `before` to `after`.
    async fn run(
        self,
        operation: &str,
        tenant_id: &TenantId,
        before: Option<TenantSpec>,
        after: Option<TenantSpec>,
    ) -> Result<Option<TenantRecord>, TenantApplyError> {
        let steps: [Box<dyn Step<TenantSteps<'a>>>; 1] =
            [Box::new(TenantRow { tenant_id: tenant_id.clone(), before, after })];
        let journal = crate::apply::runner::RegistryJournal(self.registry);
        match crate::apply::runner::run(operation, &steps, &self, &journal).await {
            Ok(()) => Ok(self.written.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner)),
            Err(error) => Err(TenantApplyError::from_run(tenant_id, error)),
        }
    }

    fn record(&self, record: Option<TenantRecord>) {
        *self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = record;
    }

    /// Makes the row `spec` (inserting it when `creating`, updating it
    /// otherwise, and bringing it back when `restore`), or removes it.
    async fn make(
        &self,
        tenant_id: &TenantId,
        spec: Option<&TenantSpec>,
        creating: bool,
        restore: bool,
    ) -> Result<(), StepError> {
        let registry_error =
            |source| StepError::from_backend(TenantApplyError::Registry { tenant_id: tenant_id.clone(), source });
        let Some(spec) = spec else {
            self.registry.delete_with_claim(ObjectKind::Tenant, tenant_id.as_str()).await.map_err(registry_error)?;
            self.record(None);
            return Ok(());
        };
        let record = if creating {
            match self.registry.insert_tenant(spec, self.owner.as_str()).await.map_err(registry_error)? {
                InsertOutcome::Created(record) | InsertOutcome::AlreadyPresent(record) => Some(record),
                // An interrupted create of this owner left its row: make it the desired one.
                InsertOutcome::Conflict(_) if self.resume => {
                    self.registry.update_tenant(spec).await.map_err(registry_error)?
                }
                InsertOutcome::Conflict(existing) => {
                    return Err(StepError::permanent(TenantApplyError::Conflict {
                        tenant_id: spec.name.clone(),
                        owner: existing.owner,
                    }));
                }
            }
        } else {
            match self.registry.update_tenant(spec).await.map_err(registry_error)? {
                Some(record) => Some(record),
                None if !restore => None,
                // Undoing a delete: the row comes back.
                None => match self.registry.insert_tenant(spec, self.owner.as_str()).await.map_err(registry_error)? {
                    InsertOutcome::Created(record) | InsertOutcome::AlreadyPresent(record) => Some(record),
                    InsertOutcome::Conflict(_) => self.registry.update_tenant(spec).await.map_err(registry_error)?,
                },
            }
        };
        let Some(record) = record else {
            return Err(StepError::permanent(TenantApplyError::Missing { tenant_id: tenant_id.clone() }));
        };
        if restore && let Some(claim) = &self.claim {
            self.registry.restore_claim(claim).await.map_err(registry_error)?;
        }
        self.record(Some(record));
        Ok(())
    }
}

/// A tenant's registry row, from `before` to `after` (absent: no row).
struct TenantRow {
    tenant_id: TenantId,
    before: Option<TenantSpec>,
    after: Option<TenantSpec>,
}

#[async_trait::async_trait]
impl<'a> Step<TenantSteps<'a>> for TenantRow {
    fn name(&self) -> String {
        "tenant row".to_owned()
    }

    async fn apply(&self, steps: &TenantSteps<'a>) -> Result<(), StepError> {
        steps.make(&self.tenant_id, self.after.as_ref(), self.before.is_none(), false).await
    }

    async fn undo(&self, steps: &TenantSteps<'a>) -> Result<(), StepError> {
        if self.before.is_none() {
            // Undoing a create: only a row this owner wrote goes.
            let registry_error = |source| {
                StepError::from_backend(TenantApplyError::Registry { tenant_id: self.tenant_id.clone(), source })
            };
            let existing = steps.registry.get_tenant(&self.tenant_id).await.map_err(registry_error)?;
            if existing.is_none_or(|existing| existing.owner != steps.owner.as_str()) {
                return Ok(());
            }
        }
        // Undoing an update changes the row back; undoing a delete brings it back.
        steps.make(&self.tenant_id, self.before.as_ref(), false, self.after.is_none()).await
    }
}
