//! Applying support plans: the registry row (the journal), then the tenant's
//! support project on the tracker (with the level recorded there), then the
//! manager's access to it. Every step is a "make it so", so applying again
//! finishes what an interrupted run started.

use std::time::Duration;

use crate::backends::tracker::{ObservedSupportProject, SupportProject, Tracker, TrackerError, TrackerUser};
use crate::model::TenantId;
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
    #[error(
        "{}; undoing what it had made failed too ({}), so the next apply finishes or undoes it",
        crate::backends::error_chain(error.as_ref()),
        failures.join("; ")
    )]
    UndoFailed { error: Box<SupportPlanError>, failures: Vec<String> },
}

impl SupportPlanError {
    pub fn is_retryable(&self) -> bool {
        match self {
            SupportPlanError::Registry { source, .. } => source.is_retryable(),
            SupportPlanError::Tracker { source, .. } => source.is_retryable(),
            SupportPlanError::Cancelled { .. } => true,
            SupportPlanError::Claim(error) => error.is_retryable(),
            SupportPlanError::UndoFailed { error, .. } => error.is_retryable(),
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

    async fn tenant(&self, tenant_id: &TenantId) -> Result<TenantRecord, SupportPlanError> {
        self.registry
            .get_tenant(tenant_id)
            .await
            .map_err(self.registry_error(tenant_id))?
            .ok_or_else(|| SupportPlanError::TenantMissing { tenant: tenant_id.to_string() })
    }

    /// Creates or updates a tenant's plan, its support project and the
    /// manager's access. `create` carries a create's token, which claims the
    /// tenant's plan first; a create that fails undoes what it made.
    pub async fn apply(
        &self,
        spec: &SupportPlanSpec,
        create: Option<&crate::model::ownership::CreateToken>,
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
        let kind = crate::model::ownership::ObjectKind::SupportPlan;
        let decision = match create {
            Some(token) => Some(
                crate::apply::claims::claim(self.registry, kind, tenant_id.as_str(), tenant_id, self.owner, token)
                    .await?,
            ),
            None => None,
        };
        let existing = self.registry.get_support_plan(tenant_id).await.map_err(self.registry_error(tenant_id))?;
        let record = SupportPlanRecord {
            spec: spec.clone(),
            starts_on: existing.as_ref().map(|r| r.starts_on.clone()).unwrap_or_else(|| format_date(today())),
            owner: existing.as_ref().map(|r| r.owner.clone()).unwrap_or_else(|| self.owner.as_str().to_owned()),
            created_at: existing.as_ref().map(|r| r.created_at.clone()).unwrap_or_else(now_rfc3339),
        };
        let mut project_made = false;
        let steps = async {
            self.registry.put_support_plan(&record).await.map_err(self.registry_error(tenant_id))?;
            if let Some(tracker) = self.tracker {
                let project = SupportProject {
                    tenant: tenant_id.to_string(),
                    name: tenant.spec.display_name.clone(),
                    level: spec.level.as_str().to_owned(),
                };
                tracker.ensure_project(&project).await.map_err(self.tracker_error(tenant_id))?;
                project_made = true;
                let user = tracker_user(&tenant);
                if spec.tracker_access {
                    tracker.grant_access(tenant_id.as_str(), &user, self.tracker_role).await
                } else {
                    tracker.revoke_access(tenant_id.as_str(), &user.login).await
                }
                .map_err(self.tracker_error(tenant_id))?;
            }
            Ok::<_, SupportPlanError>(())
        }
        .await;
        let Err(error) = steps else { return Ok(record) };
        // Undo a new create (not an interrupted one this run resumed, nor an
        // update): the project, the row, and the claim, in reverse order.
        if !(existing.is_none() && decision == Some(crate::model::ownership::CreateDecision::New)) {
            return Err(error);
        }
        let mut failures = Vec::new();
        let failure = crate::backends::error_chain(&error);
        let undo_failure =
            |step: &str, undo: &dyn std::error::Error| crate::backends::undo_failure(step, undo, &failure);
        if let Some(tracker) = self.tracker
            && project_made
        {
            if let Err(undo) = tracker.revoke_access(tenant_id.as_str(), &tracker_user(&tenant).login).await {
                failures.push(undo_failure("revoke the manager's access", &undo));
            }
            if let Err(undo) = tracker.remove_project(tenant_id.as_str()).await {
                failures.push(undo_failure("remove the support project", &undo));
            }
        }
        if failures.is_empty() {
            if let Err(undo) = self.registry.delete_support_plan(tenant_id).await {
                failures.push(undo_failure("delete the registry row", &undo));
            } else if let Some(token) = create
                && let Err(undo) = self.registry.release_claim_of(kind, tenant_id.as_str(), token).await
            {
                failures.push(undo_failure("release the claim", &undo));
            }
        }
        Err(if failures.is_empty() { error } else { SupportPlanError::UndoFailed { error: Box::new(error), failures } })
    }

    /// Removes the plan: the manager's access, the support project, the row.
    pub async fn destroy(&self, tenant_id: &TenantId) -> Result<(), SupportPlanError> {
        if *self.cancelled.borrow() {
            return Err(SupportPlanError::Cancelled { tenant: tenant_id.to_string() });
        }
        let Some(record) = self.registry.get_support_plan(tenant_id).await.map_err(self.registry_error(tenant_id))?
        else {
            // Already gone: the tenant's plan is free.
            self.registry
                .release_claim(crate::model::ownership::ObjectKind::SupportPlan, tenant_id.as_str())
                .await
                .map_err(self.registry_error(tenant_id))?;
            return Ok(());
        };
        if let Some(tracker) = self.tracker {
            if let Ok(tenant) = self.tenant(tenant_id).await {
                tracker
                    .revoke_access(tenant_id.as_str(), &tracker_user(&tenant).login)
                    .await
                    .map_err(self.tracker_error(tenant_id))?;
            }
            tracker.remove_project(tenant_id.as_str()).await.map_err(self.tracker_error(tenant_id))?;
        }
        self.registry.delete_support_plan(&record.spec.tenant_id).await.map_err(self.registry_error(tenant_id))?;
        self.registry
            .release_claim(crate::model::ownership::ObjectKind::SupportPlan, tenant_id.as_str())
            .await
            .map_err(self.registry_error(tenant_id))?;
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
