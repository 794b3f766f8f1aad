//! Each resource kind as the CLI plans and applies it: what the registry
//! holds (as the documents a state would), the kind's planner with the facts
//! it reads, and its apply. The planners and applies are the engine's, the
//! same ones the provider calls.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::session::Session;
use crate::apply::tenant::{ApplyContext, TenantApplyError, apply_planned};
use crate::backends::error_chain;
use crate::model::TenantId;
use crate::model::attribute::ValidationError;
use crate::model::ownership::{CreateToken, ObjectKind};
use crate::model::tenant::{TenantDocument, TenantSpec, today};
use crate::model::timeouts::{Operation, Timeouts};
use crate::plan::draft::{Draft, Planned};
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
}

/// A document's JSON without its nulls.
pub fn document_of(value: impl serde::Serialize) -> Document {
    match serde_json::to_value(value) {
        Ok(Value::Object(object)) => object.into_iter().filter(|(_, value)| !value.is_null()).collect(),
        _ => Map::new(),
    }
}

/// The objects of `kind` named by `keys`, as the registry holds them.
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
        other => return Err(unsupported(other)),
    }
    Ok(found)
}

fn unsupported(kind: ObjectKind) -> String {
    format!("the atrium CLI does not manage {} resources yet; manage them with Terraform", kind.type_name())
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
        other => KindPlan {
            errors: vec![ValidationError::new(
                Default::default(),
                "Resource type not supported yet",
                unsupported(other),
            )],
            ..KindPlan::default()
        },
    }
}

/// The deadline of a change from the `timeouts` of its document.
fn deadline(document: Option<&Document>, operation: Operation) -> std::time::Duration {
    let timeouts: Option<Timeouts> =
        document.and_then(|d| d.get("timeouts")).and_then(|json| serde_json::from_value(json.clone()).ok());
    Timeouts::deadline(timeouts.as_ref(), operation)
}

/// Carries out one object's planned change (`after` `None`: delete) and the
/// plan's decision; answers the object as it now is.
pub async fn apply(
    session: &Session,
    kind: ObjectKind,
    key: &str,
    before: Option<&Document>,
    after: Option<&Document>,
    decision: Option<&Value>,
    token: &CreateToken,
) -> Result<Option<Document>, ApplyFailure> {
    let operation = match (before, after) {
        (_, None) => Operation::Delete,
        (None, Some(_)) => Operation::Create,
        (Some(_), Some(_)) => Operation::Update,
    };
    let deadline = deadline(after.or(before), operation);
    match kind {
        ObjectKind::Tenant => {
            let tenant_id = TenantId::parse(key).map_err(|detail| failure("Invalid tenant", detail))?;
            let desired = match after {
                Some(document) => {
                    let document: TenantDocument = serde_json::from_value(Value::Object(document.clone()))
                        .map_err(|error| failure("Invalid tenant", error.to_string()))?;
                    let spec = TenantSpec::from_document(&document).map_err(|errors| {
                        let detail =
                            errors.iter().map(|e| format!("{}: {}", e.attribute, e.detail)).collect::<Vec<_>>();
                        failure("Invalid tenant", detail.join("; "))
                    })?;
                    Some(spec)
                }
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
            Ok(applied.map(|record| document_of(record.to_document(None))))
        }
        other => Err(failure("Resource type not supported yet", unsupported(other))),
    }
}

fn failure(summary: &str, detail: impl Into<String>) -> ApplyFailure {
    ApplyFailure { summary: summary.to_owned(), detail: detail.into(), attribute: None }
}

fn tenant_failure(error: &TenantApplyError) -> ApplyFailure {
    let mut detail = error_chain(error);
    if error.is_retryable() || matches!(error, TenantApplyError::Status { .. }) {
        detail.push_str(". Every step is safe to repeat; run atrium apply again.");
    }
    let attribute = match error {
        TenantApplyError::QuotaBelowUse { .. } => Some("user_quota"),
        TenantApplyError::TierStrandsSupportLevel { .. } => Some("tier"),
        _ => None,
    };
    ApplyFailure { summary: "Tenant change failed".to_owned(), detail, attribute }
}
