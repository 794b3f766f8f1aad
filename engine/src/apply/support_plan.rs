//! Applying support plans: the registry row (the journal), then the tenant's
//! support project on the tracker (with the level recorded there), then the
//! manager's access to it. Every step is a "make it so", so applying again
//! finishes what an interrupted run started.

use std::time::Duration;

use async_trait::async_trait;

use crate::apply::claims::{change_operation, claim, create_operation};
use crate::apply::runner::{Part, RegistryJournal, RunError, Step, StepError, Transition, registry_step_error, run};
use crate::backends::retry::within;
use crate::backends::tracker::{ObservedSupportProject, SupportProject, Tracker, TrackerError, TrackerUser};
use crate::model::TenantId;
use crate::model::ownership::{Claim, CreateDecision, CreateToken, ObjectKind};
use crate::model::support_plan::{SupportLevel, SupportPlanRecord, SupportPlanSpec};
use crate::model::tenant::{TenantRecord, today};
use crate::model::validate::format_date;
use crate::registry::{Registry, RegistryError, now_rfc3339};

/// Why a support plan change did not complete.
#[derive(Debug, thiserror::Error)]
pub enum SupportPlanError {
    #[error("the registry failed while applying the support plan of tenant {tenant}")]
    Registry {
        tenant: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("the support tracker failed for tenant {tenant}")]
    Tracker {
        tenant: String,
        #[source]
        source: Box<TrackerError>,
    },
    #[error("tenant {tenant} does not exist")]
    TenantMissing { tenant: String },
    #[error("tenant {tenant} already has a support plan, managed by the {owner} front door")]
    AlreadyExists { tenant: String, owner: String },
    #[error("a {tier} tenant cannot have the {level} support level")]
    LevelNotAllowed { tenant: String, tier: String, level: String },
    #[error("tracker access for tenant {tenant} needs the provider's tracker block")]
    NoTracker { tenant: String },
    #[error("applying the support plan of tenant {tenant} was cancelled before it started; nothing was changed")]
    Cancelled { tenant: String },
    #[error(transparent)]
    Claim(#[from] crate::apply::claims::ClaimError),
    #[error("applying the support plan of tenant {tenant}: {source}")]
    Run { tenant: String, source: Box<RunError> },
    #[error("the registry's journal failed for the support plan of tenant {tenant}: {source}")]
    Journal { tenant: String, source: StepError },
    #[error("the support plan of tenant {tenant} was written but cannot be read back; apply again")]
    Vanished { tenant: String },
}

impl SupportPlanError {
    pub fn is_retryable(&self) -> bool {
        match self {
            SupportPlanError::Registry { source, .. } => source.is_retryable(),
            SupportPlanError::Tracker { source, .. } => source.is_retryable(),
            SupportPlanError::Cancelled { .. } | SupportPlanError::Vanished { .. } => true,
            SupportPlanError::Claim(error) => error.is_retryable(),
            SupportPlanError::Run { source, .. } => source.source.retryable,
            SupportPlanError::Journal { source, .. } => source.retryable,
            _ => false,
        }
    }
}

/// The manager as a tracker user: logs in with her email.
pub fn tracker_user(tenant: &TenantRecord) -> TrackerUser {
    TrackerUser::from_manager(&tenant.spec.manager.email, &tenant.spec.manager.name)
}

/// A support plan as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedSupportPlan {
    pub record: SupportPlanRecord,
    pub tenant: TenantRecord,
    /// Whether the manager is a member of the tenant's support project now
    /// (`false` without a tracker).
    pub tracker_access: bool,
}

impl ObservedSupportPlan {
    /// The support plan as a state holds it; `timeouts` are the configuration's.
    pub fn to_document(
        &self,
        timeouts: Option<crate::model::Timeouts>,
    ) -> crate::model::support_plan::SupportPlanDocument {
        let spec = &self.record.spec;
        let status = if self.tenant.status == crate::model::TenantStatus::Active { "active" } else { "suspended" };
        crate::model::support_plan::SupportPlanDocument {
            tenant_id: spec.tenant_id.to_string(),
            level: spec.level.as_str().to_owned(),
            channels: Some(spec.channels.iter().cloned().collect()),
            first_response_minutes: Some(spec.first_response_minutes),
            tracker_access: Some(self.tracker_access),
            timeouts,
            id: Some(spec.tenant_id.to_string()),
            hours: Some(spec.level.hours().to_owned()),
            starts_on: Some(self.record.starts_on.clone()),
            status: Some(status.to_owned()),
        }
    }
}

/// What every support plan operation needs.
pub struct SupportPlanContext<'a> {
    pub registry: &'a Registry,
    /// `None` when the provider has no `tracker` block.
    pub tracker: Option<&'a dyn Tracker>,
    /// The role managers get in their support project.
    pub tracker_role: &'a str,
    pub owner: &'a crate::model::ownership::Owner,
    pub deadline: Duration,
    pub cancelled: tokio::sync::watch::Receiver<bool>,
}

impl SupportPlanContext<'_> {
    fn registry_error(&self, tenant: &TenantId) -> impl FnOnce(RegistryError) -> SupportPlanError {
        let tenant = tenant.to_string();
        move |source| SupportPlanError::Registry { tenant, source: Box::new(source) }
    }

    fn tracker_error(&self, tenant: &TenantId) -> impl FnOnce(TrackerError) -> SupportPlanError {
        let tenant = tenant.to_string();
        move |source| SupportPlanError::Tracker { tenant, source: Box::new(source) }
    }

    fn journal_error(&self, tenant: &TenantId, source: StepError) -> SupportPlanError {
        SupportPlanError::Journal { tenant: tenant.to_string(), source }
    }

    async fn tenant(&self, tenant_id: &TenantId) -> Result<TenantRecord, SupportPlanError> {
        self.registry
            .get_tenant(tenant_id)
            .await
            .map_err(self.registry_error(tenant_id))?
            .ok_or_else(|| SupportPlanError::TenantMissing { tenant: tenant_id.to_string() })
    }

    /// Creates or updates a tenant's plan, its support project and the
    /// manager's access, as steps of the one runner. `create` carries a
    /// create's token, which claims the tenant's plan first; a create that
    /// fails undoes what it (and an interrupted create it resumed) made.
    /// Applies the plan and reads it back as it now is (the tracker access
    /// just granted or revoked being what the plan said).
    pub async fn apply_and_observe(
        &self,
        spec: &SupportPlanSpec,
        create: Option<&CreateToken>,
    ) -> Result<ObservedSupportPlan, SupportPlanError> {
        self.apply(spec, create).await?;
        tracing::info!(tenant = %spec.tenant_id, level = spec.level.as_str(), "support plan applied");
        let mut observed = self
            .observe(&spec.tenant_id)
            .await?
            .ok_or_else(|| SupportPlanError::Vanished { tenant: spec.tenant_id.to_string() })?;
        observed.tracker_access = spec.tracker_access;
        Ok(observed)
    }

    pub async fn apply(
        &self,
        spec: &SupportPlanSpec,
        create: Option<&CreateToken>,
    ) -> Result<SupportPlanRecord, SupportPlanError> {
        let tenant_id = &spec.tenant_id;
        if *self.cancelled.borrow() {
            return Err(SupportPlanError::Cancelled { tenant: tenant_id.to_string() });
        }
        let tenant = self.tenant(tenant_id).await?;
        if !SupportLevel::allowed_for(tenant.spec.tier).contains(&spec.level) {
            return Err(SupportPlanError::LevelNotAllowed {
                tenant: tenant_id.to_string(),
                tier: tenant.spec.tier.as_str().to_owned(),
                level: spec.level.as_str().to_owned(),
            });
        }
        if spec.tracker_access && self.tracker.is_none() {
            return Err(SupportPlanError::NoTracker { tenant: tenant_id.to_string() });
        }
        let journal = RegistryJournal(self.registry);
        let key = tenant_id.as_str();
        let (operation, decision) = match create {
            Some(token) => {
                let decision = claim(self.registry, KIND, key, tenant_id, self.owner, token).await?;
                let operation = create_operation(&journal, KIND, key, token, &decision)
                    .await
                    .map_err(|source| self.journal_error(tenant_id, source))?;
                (operation, Some(decision))
            }
            None => (change_operation(KIND, key, self.owner), None),
        };
        let existing = self.registry.get_support_plan(tenant_id).await.map_err(self.registry_error(tenant_id))?;
        if let (Some(CreateDecision::New), Some(existing)) = (&decision, &existing)
            && existing.owner != self.owner.as_str()
        {
            return Err(SupportPlanError::AlreadyExists {
                tenant: tenant_id.to_string(),
                owner: existing.owner.clone(),
            });
        }
        let record = SupportPlanRecord {
            spec: spec.clone(),
            starts_on: existing.as_ref().map(|r| r.starts_on.clone()).unwrap_or_else(|| format_date(today())),
            owner: existing.as_ref().map(|r| r.owner.clone()).unwrap_or_else(|| self.owner.as_str().to_owned()),
            created_at: existing.as_ref().map(|r| r.created_at.clone()).unwrap_or_else(now_rfc3339),
        };
        // What undo puts back: nothing for a create (what an interrupted
        // create it resumes left is undone with it), the old plan otherwise.
        let before = if decision.is_some() { None } else { existing };
        let steps = support_plan_steps(&tenant, before.as_ref(), Some(&record), None, self.tracker.is_some());
        match within(self.deadline, run(&operation, &steps, self, &journal)).await {
            Ok(()) => Ok(record),
            Err(error) => {
                if error.unwound
                    && let Some(token) = create
                {
                    // Everything the create made is gone: so is its claim.
                    if let Err(release) = self.registry.release_claim_of(KIND, key, token).await {
                        tracing::warn!(tenant = %tenant_id, error = %release, "cannot release the claim of an undone create");
                    }
                }
                Err(SupportPlanError::Run { tenant: tenant_id.to_string(), source: Box::new(error) })
            }
        }
    }

    /// Removes the plan: the manager's access, the support project, the row,
    /// as steps of the one runner; then frees the tenant's plan.
    pub async fn destroy(&self, tenant_id: &TenantId) -> Result<(), SupportPlanError> {
        if *self.cancelled.borrow() {
            return Err(SupportPlanError::Cancelled { tenant: tenant_id.to_string() });
        }
        let record = self.registry.get_support_plan(tenant_id).await.map_err(self.registry_error(tenant_id))?;
        if let Some(record) = &record {
            let operation = change_operation(KIND, tenant_id.as_str(), self.owner);
            let tenant = self.registry.get_tenant(tenant_id).await.map_err(self.registry_error(tenant_id))?;
            let claim =
                self.registry.get_claim(KIND, tenant_id.as_str()).await.map_err(self.registry_error(tenant_id))?;
            let steps = match &tenant {
                Some(tenant) => support_plan_steps(tenant, Some(record), None, claim, self.tracker.is_some()),
                // The tenant went first (by hand): its project goes, without its manager.
                None => {
                    let mut steps: Vec<Box<dyn Step<SupportPlanContext<'_>>>> = Vec::new();
                    if self.tracker.is_some() {
                        steps.push(Box::new(Transition::new(Project(tenant_id.clone()), None, None)));
                    }
                    let row = Row(tenant_id.clone(), claim);
                    steps.push(Box::new(Transition::new(row, Some(record.clone()), None)));
                    steps
                }
            };
            within(self.deadline, run(&operation, &steps, self, &RegistryJournal(self.registry)))
                .await
                .map_err(|source| SupportPlanError::Run { tenant: tenant_id.to_string(), source: Box::new(source) })?;
        }
        // Gone: a journal an interrupted change of this owner left is done
        // with, and the name is free.
        let operation = change_operation(KIND, tenant_id.as_str(), self.owner);
        self.registry.journal_forget(&operation).await.map_err(self.registry_error(tenant_id))?;
        self.registry.release_claim(KIND, tenant_id.as_str()).await.map_err(self.registry_error(tenant_id))?;
        Ok(())
    }

    /// The plan as recorded, with the manager's access as the tracker has it now.
    pub async fn observe(&self, tenant_id: &TenantId) -> Result<Option<ObservedSupportPlan>, SupportPlanError> {
        let Some(record) = self.registry.get_support_plan(tenant_id).await.map_err(self.registry_error(tenant_id))?
        else {
            return Ok(None);
        };
        let tenant = self.tenant(tenant_id).await?;
        let tracker_access = match self.tracker {
            None => false,
            Some(tracker) => {
                let login = tracker_user(&tenant).login;
                let project: Option<ObservedSupportProject> =
                    tracker.observe(tenant_id.as_str()).await.map_err(self.tracker_error(tenant_id))?;
                project.is_some_and(|project| project.member_logins.iter().any(|member| member == &login))
            }
        };
        Ok(Some(ObservedSupportPlan { record, tenant, tracker_access }))
    }
}

const KIND: ObjectKind = ObjectKind::SupportPlan;

/// The steps that take a support plan from `before` to `after` (either may
/// be absent: a create, a destroy), in the order they apply: the row, the
/// tracker project, the manager's access. A destroy runs them in reverse,
/// freeing `claim` with the row.
pub fn support_plan_steps<'a>(
    tenant_record: &TenantRecord,
    before: Option<&SupportPlanRecord>,
    after: Option<&SupportPlanRecord>,
    claim: Option<Claim>,
    with_tracker: bool,
) -> Vec<Box<dyn Step<SupportPlanContext<'a>>>> {
    let tenant_id = &tenant_record.spec.name;
    let project = |record: Option<&SupportPlanRecord>| {
        record.map(|record| SupportProject {
            tenant: tenant_id.to_string(),
            name: tenant_record.spec.display_name.clone(),
            level: record.spec.level.as_str().to_owned(),
        })
    };
    // Present: the manager has access.
    let access = |record: Option<&SupportPlanRecord>| record.filter(|record| record.spec.tracker_access).map(|_| ());
    let tenant = || tenant_id.clone();
    let mut steps: Vec<Box<dyn Step<SupportPlanContext<'a>>>> =
        vec![Box::new(Transition::new(Row(tenant(), claim), before.cloned(), after.cloned()))];
    if with_tracker {
        steps.push(Box::new(Transition::new(Project(tenant()), project(before), project(after))));
        let manager = Access { tenant: tenant(), user: tracker_user(tenant_record) };
        steps.push(Box::new(Transition::new(manager, access(before), access(after))));
    }
    if after.is_none() {
        steps.reverse();
    }
    steps
}

/// The plan's registry row; with the claim a destroy frees with it (and its
/// undo puts back).
struct Row(TenantId, Option<Claim>);

#[async_trait]
impl<'a> Part<SupportPlanContext<'a>> for Row {
    type Value = SupportPlanRecord;
    fn name(&self) -> String {
        "support plan row".to_owned()
    }
    async fn make(
        &self,
        context: &SupportPlanContext<'a>,
        record: Option<&SupportPlanRecord>,
    ) -> Result<(), StepError> {
        let registry = context.registry;
        match record {
            Some(record) => {
                registry.put_support_plan(record).await.map_err(registry_step_error)?;
                match &self.1 {
                    Some(claim) => registry.restore_claim(claim).await.map_err(registry_step_error),
                    None => Ok(()),
                }
            }
            None => registry.delete_with_claim(KIND, self.0.as_str()).await.map(|_| ()).map_err(registry_step_error),
        }
    }
}

/// The tenant's support project on the tracker, with its level.
struct Project(TenantId);

#[async_trait]
impl<'a> Part<SupportPlanContext<'a>> for Project {
    type Value = SupportProject;
    fn name(&self) -> String {
        "support project".to_owned()
    }
    async fn make(&self, context: &SupportPlanContext<'a>, project: Option<&SupportProject>) -> Result<(), StepError> {
        let Some(tracker) = context.tracker else { return Ok(()) };
        match project {
            Some(project) => tracker.ensure_project(project).await,
            None => tracker.remove_project(self.0.as_str()).await,
        }
        .map_err(StepError::from_backend)
    }
}

/// The manager's membership of the support project (present: granted).
struct Access {
    tenant: TenantId,
    user: TrackerUser,
}

#[async_trait]
impl<'a> Part<SupportPlanContext<'a>> for Access {
    type Value = ();
    fn name(&self) -> String {
        "manager's tracker access".to_owned()
    }
    async fn make(&self, context: &SupportPlanContext<'a>, granted: Option<&()>) -> Result<(), StepError> {
        let Some(tracker) = context.tracker else { return Ok(()) };
        match granted {
            Some(()) => tracker.grant_access(self.tenant.as_str(), &self.user, context.tracker_role).await,
            None => tracker.revoke_access(self.tenant.as_str(), &self.user.login).await,
        }
        .map_err(StepError::from_backend)
    }
}
