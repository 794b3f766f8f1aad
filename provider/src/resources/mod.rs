//! Terraform's view of each resource: planning with unknowns, applying, reading
//! and importing, by converting between Terraform values and engine types.

pub mod app_instance;
pub mod domain;
pub mod support_plan;
pub mod tenant;

use atrium_engine::model::Timeouts;
use atrium_engine::model::attribute::AttributePath;
use atrium_engine::model::timeouts::Operation;
use atrium_engine::plan::draft::{Draft, DraftPlan, Planned};

use atrium_engine::model::ownership::CreateToken;
use tokio::sync::watch;

use crate::configured::Configured;
use crate::diagnostics;
use crate::proto::tfplugin6 as pb;
use crate::schema::{APP_INSTANCE_TYPE, DOMAIN_TYPE, ResourceSchema, SUPPORT_PLAN_TYPE, TENANT_TYPE};
use crate::value::{CtyType, Value};

/// A change as PlanResourceChange and ApplyResourceChange pass it on, decoded.
pub struct Change<'a> {
    pub schema: &'a ResourceSchema,
    pub prior: &'a Value,
    /// The proposed value at plan, the planned value at apply; null for a destroy.
    pub after: &'a Value,
    pub config: &'a Value,
    /// At apply: the planned private data, which holds the plan's decision.
    pub planned_private: &'a [u8],
    /// At apply: the token a create claims its object's name under.
    pub create: Option<&'a CreateToken>,
    pub cancelled: watch::Receiver<bool>,
}

impl Change<'_> {
    /// The deadline its `timeouts` give this change.
    pub fn deadline(&self) -> std::time::Duration {
        deadline(self.prior, self.after)
    }
}

/// A result whose failure is Terraform diagnostics.
pub type Diagnosed<T> = Result<T, Vec<pb::Diagnostic>>;

/// What an apply answers: the new state (null after a destroy) and warnings.
pub type Applied = Diagnosed<(Value, Vec<pb::Diagnostic>)>;

/// One resource type, between Terraform's values and the engine: every
/// resource answers the same calls, and the server looks it up by type name.
#[async_trait::async_trait]
pub trait Resource: Sync {
    /// Checks what is known of a configuration, before the provider is configured.
    fn validate(&self, config: &Value) -> Vec<pb::Diagnostic>;
    /// Plans a change with the engine's planner (`provider` is `None` while
    /// the provider is not configured yet).
    async fn plan(&self, provider: Option<&Configured>, change: Change<'_>) -> PlannedChange;
    /// Carries out a planned change and its decision.
    async fn apply(&self, provider: &Configured, change: Change<'_>) -> Applied;
    /// Refreshes a state from what exists; null when the object is gone.
    async fn read(&self, provider: &Configured, schema: &ResourceSchema, current: &Value) -> Diagnosed<Value>;
    /// The state of an existing object named by an import id.
    async fn import(&self, provider: &Configured, schema: &ResourceSchema, id: &str) -> Diagnosed<Value>;
}

/// The resource of a type name.
pub fn lookup(type_name: &str) -> Option<&'static dyn Resource> {
    match type_name {
        TENANT_TYPE => Some(&tenant::Tenant),
        APP_INSTANCE_TYPE => Some(&app_instance::AppInstance),
        DOMAIN_TYPE => Some(&domain::Domain),
        SUPPORT_PLAN_TYPE => Some(&support_plan::SupportPlan),
        _ => None,
    }
}

/// The plan of a resource that needs the configured provider, before it is.
fn unconfigured() -> PlannedChange {
    PlannedChange::only(Value::Null, vec![crate::configured::not_configured()])
}

/// What PlanResourceChange answers, for every resource: the planned state,
/// the attributes whose change replaces the object, and diagnostics
/// (warnings included).
pub struct PlannedChange {
    pub planned_state: Value,
    pub requires_replace: Vec<AttributePath>,
    pub diagnostics: Vec<pb::Diagnostic>,
    /// What apply carries out, decided here (kept in the planned private data).
    pub decision: Option<serde_json::Value>,
}

impl PlannedChange {
    /// A plan that stops at its diagnostics (or a destroy, which plans nothing).
    pub fn only(planned_state: Value, diagnostics: Vec<pb::Diagnostic>) -> Self {
        Self { planned_state, requires_replace: Vec::new(), diagnostics, decision: None }
    }
}

/// A Terraform value as the engine's draft: its known parts, and the
/// top-level attributes that are not (wholly) known.
fn draft_of(value: &Value) -> Draft {
    let unknown = match value {
        Value::Object(attributes) => {
            attributes.iter().filter(|(_, value)| !value.is_fully_known()).map(|(name, _)| name.clone()).collect()
        }
        _ => Vec::new(),
    };
    Draft::new(value.to_known_json(), unknown)
}

/// An engine plan as Terraform's answer: errors stop it (the proposed value
/// comes back unchanged); otherwise the planned attributes are set on the
/// proposed value, warnings follow `diagnostics`, and the decision travels
/// in the planned private data.
pub fn planned_change<D: serde::Serialize>(
    proposed: &Value,
    plan: DraftPlan<D>,
    schema: &ResourceSchema,
    mut diagnostics: Vec<pb::Diagnostic>,
) -> PlannedChange {
    if !plan.errors.is_empty() {
        return PlannedChange::only(proposed.clone(), plan.errors.iter().map(diagnostics::from_validation).collect());
    }
    diagnostics.extend(plan.warnings.iter().map(diagnostics::warning_from_validation));
    let mut planned = proposed.clone();
    if let Err(diagnostic) = set_planned(&mut planned, &plan.attributes, schema) {
        diagnostics.push(diagnostic);
    }
    PlannedChange {
        planned_state: planned,
        requires_replace: plan.requires_replace,
        diagnostics,
        decision: plan.decision.and_then(|decision| serde_json::to_value(decision).ok()),
    }
}

/// The prior state and the configuration as the engine's drafts (no prior when creating).
pub fn drafts(prior: &Value, config: &Value) -> (Option<Draft>, Draft) {
    ((!prior.is_null()).then(|| draft_of(prior)), draft_of(config))
}

/// Sets the attributes an engine plan decided on the proposed value.
fn set_planned(
    planned: &mut Value,
    attributes: &[(&'static str, Planned)],
    schema: &ResourceSchema,
) -> Result<(), pb::Diagnostic> {
    for (name, value) in attributes {
        let value = match value {
            Planned::Unknown => Value::Unknown,
            Planned::Known(json) => {
                let ty = match &schema.value_type {
                    CtyType::Object(types) => types.get(*name),
                    _ => None,
                };
                let ty = ty.ok_or_else(|| {
                    diagnostics::error(
                        "Planned attribute not in the schema",
                        format!("the engine planned {name}, which the schema lacks. This is a bug in the provider; please report it."),
                    )
                })?;
                Value::from_json(json, ty).map_err(|error| {
                    diagnostics::error(
                        "Cannot encode a planned attribute",
                        format!("{name}: {error}. This is a bug in the provider; please report it."),
                    )
                })?
            }
        };
        planned.set(name, value);
    }
    Ok(())
}

/// The deadline for a planned change of any resource, from its `timeouts`.
pub fn deadline(prior: &Value, planned: &Value) -> std::time::Duration {
    let (value, operation) = if planned.is_null() {
        (prior, Operation::Delete)
    } else if prior.is_null() {
        (planned, Operation::Create)
    } else {
        (planned, Operation::Update)
    };
    let timeouts: Option<Timeouts> =
        value.get("timeouts").to_known_json().and_then(|json| serde_json::from_value(json).ok());
    Timeouts::deadline(timeouts.as_ref(), operation)
}
