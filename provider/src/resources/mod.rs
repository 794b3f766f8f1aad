//! Terraform's view of each resource: planning with unknowns, applying, reading
//! and importing, by converting between Terraform values and engine types.

pub mod app_instance;
pub mod domain;
pub mod support_plan;
pub mod tenant;

use atrium_engine::model::Timeouts;
use atrium_engine::model::attribute::AttributePath;
use atrium_engine::model::timeouts::Operation;

use crate::proto::tfplugin6 as pb;
use crate::value::Value;

/// What PlanResourceChange answers, for every resource: the planned state,
/// the attributes whose change replaces the object, and diagnostics
/// (warnings included).
pub struct PlannedChange {
    pub planned_state: Value,
    pub requires_replace: Vec<AttributePath>,
    pub diagnostics: Vec<pb::Diagnostic>,
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
