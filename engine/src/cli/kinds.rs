//! Each resource kind as the CLI plans and applies it: what the registry
//! holds (as the documents a state would), the kind's planner with the facts
//! it reads, and its apply. The planners and applies are the engine's, the
//! same ones the provider calls.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::session::Session;
use crate::apply::app_instance::{AppApplyError, AppContext};
use crate::apply::domain::{DomainApplyContext, DomainApplyError};
use crate::apply::domain_planned;
use crate::apply::support_plan::{SupportPlanContext, SupportPlanError};
use crate::apply::tenant::{ApplyContext, TenantApplyError, apply_planned};
use crate::backends::error_chain;
use crate::model::TenantId;
use crate::model::app_instance::{AppInstanceDocument, AppInstanceId, AppReadWanted};
use crate::model::attribute::ValidationError;
use crate::model::domain::{DomainDocument, DomainSpec, Hostname};
use crate::model::ownership::{CreateToken, ObjectKind};
use crate::model::support_plan::{SupportPlanDocument, SupportPlanSpec};
use crate::model::tenant::{TenantDocument, TenantSpec, today};
use crate::model::timeouts::{DEFAULT_TIMEOUT, Operation, Timeouts};
use crate::plan::app_instance::{AppDecision, AppFacts, InstanceContext, named_ids, plan_instance, spec_from_document};
use crate::plan::domain::{DomainDecision, plan_domain};
use crate::plan::draft::{Draft, Planned};
use crate::plan::support_plan::{SupportFacts, plan_support_plan};
use crate::plan::tenant::{TenantDecision, TenantFacts, plan_tenant_draft};

/// A resource's attributes, as a state holds them (nulls left out).
pub type Document = Map<String, Value>;

/// What a kind's planner answered for one object.
#[derive(Debug, Default)]
pub struct KindPlan {
    pub attributes: Vec<(&'static str, Planned)>,
    pub requires_replace: Vec<String>,
    pub errors: Vec<ValidationError>,
    pub warnings: Vec<ValidationError>,
    /// What apply carries out, as it travels in a saved plan.
    pub decision: Option<Value>,
}

impl KindPlan {
    fn from<D: serde::Serialize>(plan: crate::plan::draft::DraftPlan<D>) -> Self {
        Self {
            attributes: plan.attributes,
            requires_replace: plan.requires_replace.iter().map(ToString::to_string).collect(),
            errors: plan.errors,
            warnings: plan.warnings,
            decision: plan.decision.and_then(|decision| serde_json::to_value(decision).ok()),
        }
    }
}

/// Why applying one object failed: what to tell the user, and the attribute
/// that caused it, when one did.
#[derive(Debug)]
pub struct ApplyFailure {
    pub summary: String,
    pub detail: String,
    pub attribute: Option<&'static str>,
    /// The change was not started because the run is stopping (Ctrl-C).
    pub cancelled: bool,
}

/// A document's JSON without its nulls.
pub fn document_of(value: impl serde::Serialize) -> Document {
    match serde_json::to_value(value) {
        Ok(Value::Object(object)) => object.into_iter().filter(|(_, value)| !value.is_null()).collect(),
        _ => Map::new(),
    }
}

impl Session {
    pub(super) fn apps_context(&self, deadline: std::time::Duration) -> AppContext<'_> {
        self.platform.app_context(&self.apps, &self.owner, deadline, self.cancelled.clone())
    }

    fn domains_context(&self, deadline: std::time::Duration) -> DomainApplyContext<'_> {
        self.platform.domain_context(&self.domains, &self.owner, deadline, self.cancelled.clone())
    }

    fn support_context(&self, deadline: std::time::Duration) -> SupportPlanContext<'_> {
        self.platform.support_plan_context(&self.owner, deadline, self.cancelled.clone())
    }
}

/// The objects of `kind` named by `keys`, as the registry and the backends
/// hold them (app instances with their containers' health, domains with
/// their routes and records, support plans with their tracker access).
pub async fn observe(
    session: &Session,
    kind: ObjectKind,
    keys: &BTreeSet<String>,
) -> Result<BTreeMap<String, Document>, String> {
    let mut found = BTreeMap::new();
    if keys.is_empty() {
        return Ok(found);
    }
    match kind {
        ObjectKind::Tenant => {
            let tenants = session.platform.registry.list_tenants().await.map_err(|error| error_chain(&error))?;
            for record in tenants {
                if keys.contains(record.spec.name.as_str()) {
                    found.insert(record.spec.name.to_string(), document_of(record.to_document(None)));
                }
            }
        }
        ObjectKind::AppInstance => {
            let context = session.apps_context(DEFAULT_TIMEOUT);
            for key in keys {
                let id = AppInstanceId::parse(key).map_err(|detail| format!("app instance {key:?}: {detail}"))?;
                let observed = context.observe(&id).await.map_err(|error| error_chain(&error))?;
                if let Some((record, health)) = observed {
                    let mut document = record.to_document(health, None);
                    context.read_app(&record, AppReadWanted::ALL).await.read_into(&mut document);
                    found.insert(key.clone(), document_of(document));
                }
            }
        }
        ObjectKind::Domain => {
            let context = session.domains_context(DEFAULT_TIMEOUT);
            for key in keys {
                let hostname = Hostname::parse(key).map_err(|detail| format!("domain {key:?}: {detail}"))?;
                if let Some(observed) = context.observe(&hostname).await.map_err(|error| error_chain(&error))? {
                    found.insert(key.clone(), document_of(observed.to_document(None)));
                }
            }
        }
        ObjectKind::SupportPlan => {
            let context = session.support_context(DEFAULT_TIMEOUT);
            for key in keys {
                let tenant = TenantId::parse(key).map_err(|detail| format!("support plan {key:?}: {detail}"))?;
                if let Some(observed) = context.observe(&tenant).await.map_err(|error| error_chain(&error))? {
                    found.insert(key.clone(), document_of(observed.to_document(None)));
                }
            }
        }
    }
    Ok(found)
}

/// Plans one object with its kind's planner and the facts it reads.
pub async fn plan(session: &Session, kind: ObjectKind, prior: Option<&Draft>, config: &Draft) -> KindPlan {
    match kind {
        ObjectKind::Tenant => {
            let tenant_id = config.str("name").and_then(|name| TenantId::parse(name).ok());
            let mut warnings = Vec::new();
            let dependents = match tenant_id {
                Some(tenant_id) => match session.tenants.dependents(&tenant_id).await {
                    Ok(dependents) => Some(dependents),
                    Err(error) => {
                        warnings.push(ValidationError::new(
                            Default::default(),
                            "Cannot check what depends on the tenant",
                            format!("{}; apply checks it again.", error_chain(&error)),
                        ));
                        None
                    }
                },
                None => None,
            };
            let facts = TenantFacts { today: today(), dependents: dependents.as_ref() };
            let mut plan = KindPlan::from(plan_tenant_draft(prior, Some(config), &facts));
            plan.warnings.extend(warnings);
            plan
        }
        ObjectKind::AppInstance => {
            let registry = &session.platform.registry;
            let (tenant_id, id) = named_ids(config);
            let observed = async {
                let tenant = match &tenant_id {
                    Some(tenant) => session.apps.tenant(registry, tenant).await?,
                    None => None,
                };
                let recorded = match &id {
                    Some(id) => session.apps.instance(registry, id).await?,
                    None => None,
                };
                Ok::<_, crate::registry::RegistryError>((tenant, recorded))
            };
            let (tenant, recorded) = match observed.await {
                Ok(observed) => observed,
                Err(error) => return refused("Cannot read the registry", error_chain(&error)),
            };
            let facts = AppFacts {
                catalog: session.platform.catalog(),
                targets: session.platform.targets.names(),
                swarm_targets: session.platform.targets.swarm_names(),
                tenant: tenant.as_ref(),
                recorded: recorded.as_ref(),
            };
            KindPlan::from(plan_instance(prior, Some(config), &facts))
        }
        ObjectKind::Domain => {
            let context = session.domains_context(DEFAULT_TIMEOUT);
            let facts = context.plan_facts(config).await;
            KindPlan::from(plan_domain(prior, Some(config), &facts))
        }
        ObjectKind::SupportPlan => {
            let tenant = match config.str("tenant_id").and_then(|t| TenantId::parse(t).ok()) {
                Some(id) => session.platform.registry.get_tenant(&id).await.ok().flatten(),
                None => None,
            };
            let facts = SupportFacts {
                tenant_tier: tenant.map(|tenant| tenant.spec.tier),
                tracker_configured: session.platform.tracker.is_some(),
            };
            KindPlan::from(plan_support_plan(prior, Some(config), &facts))
        }
    }
}

fn refused(summary: &str, detail: String) -> KindPlan {
    KindPlan { errors: vec![ValidationError::new(Default::default(), summary, detail)], ..KindPlan::default() }
}

/// The deadline of a change from the `timeouts` of its document.
fn deadline(document: Option<&Document>, operation: Operation) -> std::time::Duration {
    let timeouts: Option<Timeouts> =
        document.and_then(|d| d.get("timeouts")).and_then(|json| serde_json::from_value(json.clone()).ok());
    Timeouts::deadline(timeouts.as_ref(), operation)
}

/// What applying one object answers: the object as it now is (`None` after
/// a delete), and what the user should know.
#[derive(Debug, Default)]
pub struct KindApplied {
    pub document: Option<Document>,
    pub warnings: Vec<ValidationError>,
}

fn typed<T: serde::de::DeserializeOwned>(noun: &str, document: &Document) -> Result<T, ApplyFailure> {
    serde_json::from_value(Value::Object(document.clone()))
        .map_err(|error| failure(&format!("Invalid {noun}"), error.to_string()))
}

fn invalid(noun: &str, errors: Vec<ValidationError>) -> ApplyFailure {
    let detail = errors.iter().map(|e| format!("{}: {}", e.attribute, e.detail)).collect::<Vec<_>>();
    failure(&format!("Invalid {noun}"), detail.join("; "))
}

fn parsed<T>(noun: &str, key: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<T, ApplyFailure> {
    parse(key).map_err(|detail| failure(&format!("Invalid {noun}"), format!("{key:?}: {detail}")))
}

/// Carries out one object's planned change (`after` `None`: delete) and the
/// plan's decision; answers the object as it now is. `token` is the create
/// token of a create (`before` `None`).
pub async fn apply(
    session: &Session,
    kind: ObjectKind,
    key: &str,
    before: Option<&Document>,
    after: Option<&Document>,
    decision: Option<&Value>,
    token: &CreateToken,
) -> Result<KindApplied, ApplyFailure> {
    let operation = match (before, after) {
        (_, None) => Operation::Delete,
        (None, Some(_)) => Operation::Create,
        (Some(_), Some(_)) => Operation::Update,
    };
    let deadline = deadline(after.or(before), operation);
    let create = (operation == Operation::Create).then_some(token);
    let timeouts: Option<Timeouts> =
        after.and_then(|d| d.get("timeouts")).and_then(|json| serde_json::from_value(json.clone()).ok());
    match kind {
        ObjectKind::Tenant => {
            let tenant_id = parsed("tenant", key, TenantId::parse)?;
            let desired = match after {
                Some(document) => Some(
                    TenantSpec::from_document(&typed::<TenantDocument>("tenant", document)?)
                        .map_err(|errors| invalid("tenant", errors))?,
                ),
                None => None,
            };
            let before = match before {
                Some(_) => session
                    .platform
                    .registry
                    .get_tenant(&tenant_id)
                    .await
                    .map_err(|error| failure("Cannot read the registry", error_chain(&error)))?,
                None => None,
            };
            let decision: Option<TenantDecision> = decision.and_then(|d| serde_json::from_value(d.clone()).ok());
            let context = ApplyContext {
                owner: &session.owner,
                create_token: token,
                deadline,
                cancelled: session.cancelled.clone(),
            };
            let applied = apply_planned(
                &session.tenants,
                &session.platform.targets,
                &tenant_id,
                before.as_ref(),
                desired.as_ref(),
                decision.as_ref(),
                &context,
            )
            .await
            .map_err(|error| tenant_failure(&error))?;
            Ok(KindApplied {
                document: applied.map(|record| document_of(record.to_document(None))),
                warnings: Vec::new(),
            })
        }
        ObjectKind::AppInstance => {
            let context = session.apps_context(deadline);
            let Some(after) = after else {
                let id = parsed("app instance", key, AppInstanceId::parse)?;
                context.destroy(&id).await.map_err(|error| app_failure(&error))?;
                return Ok(KindApplied::default());
            };
            let document: AppInstanceDocument = typed("app instance", after)?;
            let instance_context = InstanceContext {
                catalog: Some(context.catalog),
                targets: Some(session.platform.targets.names()),
                swarm_targets: Some(session.platform.targets.swarm_names()),
            };
            let spec = spec_from_document(&document, &instance_context).map_err(|e| invalid("app instance", e))?;
            let decision: Option<AppDecision> = decision.and_then(|d| serde_json::from_value(d.clone()).ok());
            let deployment =
                context.deploy(&spec, create, decision.as_ref()).await.map_err(|error| app_failure(&error))?;
            let warnings = deployment
                .welcome_warning
                .map(|detail| ValidationError::new(Default::default(), "Welcome email not sent", detail))
                .into_iter()
                .collect();
            let mut applied = deployment.record.to_document(deployment.health, Some(&document));
            // What the plan knew stays as planned; what it did not is read now.
            let wanted = AppReadWanted {
                latest_backup: after.get("latest_backup").is_none(),
                users_in_use: after.get("users_in_use").is_none(),
            };
            if wanted.any() {
                context.read_app(&deployment.record, wanted).await.read_into(&mut applied);
            }
            Ok(KindApplied { document: Some(document_of(applied)), warnings })
        }
        ObjectKind::Domain => {
            let context = session.domains_context(deadline);
            let apps = session.apps_context(deadline);
            let hostname = parsed("domain", key, Hostname::parse)?;
            let desired = match after {
                Some(document) => Some(
                    DomainSpec::from_document(&typed::<DomainDocument>("domain", document)?, context.platform_zone)
                        .map_err(|errors| invalid("domain", errors))?,
                ),
                None => None,
            };
            let decision: Option<DomainDecision> = decision.and_then(|d| serde_json::from_value(d.clone()).ok());
            let applied = domain_planned::apply_planned(
                &context,
                &apps,
                &hostname,
                desired.as_ref(),
                decision.as_ref(),
                create,
                timeouts,
            )
            .await
            .map_err(|error| domain_failure(&error))?;
            Ok(KindApplied { document: applied.document.map(document_of), warnings: applied.warnings })
        }
        ObjectKind::SupportPlan => {
            let context = session.support_context(deadline);
            let Some(after) = after else {
                let tenant = parsed("support plan", key, TenantId::parse)?;
                context.destroy(&tenant).await.map_err(|error| support_failure(&error))?;
                return Ok(KindApplied::default());
            };
            let document: SupportPlanDocument = typed("support plan", after)?;
            let spec = SupportPlanSpec::from_document(&document, None).map_err(|e| invalid("support plan", e))?;
            let observed = context.apply_and_observe(&spec, create).await.map_err(|error| support_failure(&error))?;
            Ok(KindApplied { document: Some(document_of(observed.to_document(timeouts))), warnings: Vec::new() })
        }
    }
}

fn failure(summary: &str, detail: impl Into<String>) -> ApplyFailure {
    ApplyFailure { summary: summary.to_owned(), detail: detail.into(), attribute: None, cancelled: false }
}

/// The detail of a failed change, with what to do next.
fn detail_of(error: &dyn std::error::Error, retryable: bool) -> String {
    let mut detail = error_chain(error);
    if retryable {
        detail.push_str(". Every step is safe to repeat; run atrium apply again.");
    }
    detail
}

fn tenant_failure(error: &TenantApplyError) -> ApplyFailure {
    let retryable = error.is_retryable() || matches!(error, TenantApplyError::Status { .. });
    let attribute = match error {
        TenantApplyError::QuotaBelowUse { .. } => Some("user_quota"),
        TenantApplyError::TierStrandsSupportLevel { .. } => Some("tier"),
        _ => None,
    };
    ApplyFailure {
        summary: "Tenant change failed".to_owned(),
        detail: detail_of(error, retryable),
        attribute,
        cancelled: matches!(error, TenantApplyError::Cancelled { .. }),
    }
}

fn app_failure(error: &AppApplyError) -> ApplyFailure {
    let summary = match error {
        AppApplyError::Unhealthy { kept, .. } if kept.starts_with("nothing") => {
            "App instance create failed: the app did not become healthy"
        }
        AppApplyError::Unhealthy { .. } => "Upgrade rolled back: the new version did not become healthy",
        AppApplyError::HasDependents { .. } => "App instance still serves domains",
        AppApplyError::MovedSincePlan { .. } => "App instance changed since the plan",
        _ => "App instance change failed",
    };
    let attribute = matches!(error, AppApplyError::OverQuota { .. }).then_some("users");
    ApplyFailure {
        summary: summary.to_owned(),
        detail: detail_of(error, error.is_retryable()),
        attribute,
        cancelled: matches!(error, AppApplyError::Cancelled { .. }),
    }
}

fn domain_failure(error: &DomainApplyError) -> ApplyFailure {
    let attribute = match error.cause() {
        DomainApplyError::HostnameTaken { .. } | DomainApplyError::Invalid { .. } => Some("hostname"),
        DomainApplyError::AppInstanceMissing { .. } | DomainApplyError::AppInstanceNotServing { .. } => {
            Some("app_instance_id")
        }
        _ => None,
    };
    ApplyFailure {
        summary: "Domain change failed".to_owned(),
        detail: detail_of(error, error.is_retryable()),
        attribute,
        cancelled: matches!(error.cause(), DomainApplyError::Cancelled { .. }),
    }
}

fn support_failure(error: &SupportPlanError) -> ApplyFailure {
    let attribute = match error {
        SupportPlanError::LevelNotAllowed { .. } => Some("level"),
        SupportPlanError::AlreadyExists { .. } | SupportPlanError::TenantMissing { .. } => Some("tenant_id"),
        SupportPlanError::NoTracker { .. } => Some("tracker_access"),
        _ => None,
    };
    ApplyFailure {
        summary: "Support plan change failed".to_owned(),
        detail: detail_of(error, error.is_retryable()),
        attribute,
        cancelled: matches!(error, SupportPlanError::Cancelled { .. }),
    }
}
