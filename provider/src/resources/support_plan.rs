//! `atrium_support_plan` between Terraform values and the engine.

use atrium_engine::apply::support_plan::{ObservedSupportPlan, SupportPlanContext, SupportPlanError};
use atrium_engine::model::attribute::AttributePath;
use atrium_engine::model::support_plan::{SupportLevel, SupportPlanDocument, SupportPlanDraft, SupportPlanSpec};
use atrium_engine::model::{TenantId, TenantStatus};

use super::PlannedChange;
use crate::diagnostics;
use crate::proto::tfplugin6 as pb;
use crate::schema::ResourceSchema;
use crate::value::{Number, Value};

/// Validation of what is known, before the tenant's tier is.
pub fn validate(config: &Value) -> Vec<pb::Diagnostic> {
    validate_with(config, None)
}

fn validate_with(config: &Value, tier: Option<atrium_engine::model::Tier>) -> Vec<pb::Diagnostic> {
    let Some(known) = config.to_known_json() else { return Vec::new() };
    match serde_json::from_value::<SupportPlanDraft>(known) {
        Ok(draft) => draft.validate(tier).iter().map(diagnostics::from_validation).collect(),
        Err(error) => vec![diagnostics::error("Invalid support plan configuration", error.to_string())],
    }
}

fn set_of(items: impl IntoIterator<Item = String>) -> Value {
    Value::Set(items.into_iter().map(Value::String).collect())
}

/// Plans a plan: defaults from the level, the tier's allowed levels, one plan per tenant.
pub async fn plan(prior: &Value, proposed: &Value, config: &Value, context: &SupportPlanContext<'_>) -> PlannedChange {
    if proposed.is_null() {
        return PlannedChange { planned_state: Value::Null, requires_replace: Vec::new(), diagnostics: Vec::new() };
    }
    let tenant_id = config.get("tenant_id").as_str().and_then(|t| TenantId::parse(t).ok());
    let tenant = match &tenant_id {
        Some(id) => context.registry.get_tenant(id).await.ok().flatten(),
        None => None,
    };
    let mut diagnostics = validate_with(config, None);
    // The registry's tier may be raised by this very apply (the tenant is
    // applied first), so a level it does not allow is a warning here and an
    // error at apply.
    if let Some(tenant) = &tenant
        && !diagnostics::has_errors(&diagnostics)
    {
        for mut warning in validate_with(config, Some(tenant.spec.tier)) {
            warning.severity = pb::diagnostic::Severity::Warning as i32;
            warning.detail = format!(
                "{} Unless this apply raises the tenant's tier, applying the support plan will fail.",
                warning.detail
            );
            diagnostics.push(warning);
        }
    }
    let mut requires_replace = Vec::new();
    if !prior.is_null() && prior.get("tenant_id") != config.get("tenant_id") {
        requires_replace.push(AttributePath::root("tenant_id"));
    }
    let creating = prior.is_null() || !requires_replace.is_empty();
    // One plan per tenant: a second one is refused by the claims check
    // every planned create gets (the tenant's plan is claimed by its name).
    if config.get("tracker_access") == &Value::Bool(true) && context.tracker.is_none() {
        diagnostics.push(diagnostics::attribute_error(
            &AttributePath::root("tracker_access"),
            "No support tracker configured",
            "tracker_access needs the provider's tracker block (the support tracker's URL and API key); add it, or set tracker_access = false",
        ));
    }
    if diagnostics::has_errors(&diagnostics) {
        return PlannedChange { planned_state: proposed.clone(), requires_replace, diagnostics };
    }
    let mut planned = proposed.clone();
    let level = config.get("level").as_str().and_then(SupportLevel::parse);
    if config.get("channels").is_null() {
        planned.set("channels", level.map(|l| set_of(l.default_channels())).unwrap_or(Value::Unknown));
    }
    if config.get("first_response_minutes").is_null() {
        planned.set(
            "first_response_minutes",
            level.map(|l| Value::Number(Number::Int(i64::from(l.first_response_minutes())))).unwrap_or(Value::Unknown),
        );
    }
    if config.get("tracker_access").is_null() {
        planned.set("tracker_access", Value::Bool(false));
    }
    planned.set("id", config.get("tenant_id").clone());
    planned.set("hours", level.map(|l| Value::string(l.hours())).unwrap_or(Value::Unknown));
    if creating {
        planned.set("starts_on", Value::Unknown);
        planned.set("status", Value::Unknown);
    } else {
        planned.set("starts_on", prior.get("starts_on").clone());
        planned.set("status", prior.get("status").clone());
    }
    PlannedChange { planned_state: planned, requires_replace, diagnostics }
}

fn state_of(observed: &ObservedSupportPlan, current: &Value, schema: &ResourceSchema) -> Result<Value, pb::Diagnostic> {
    let spec = &observed.record.spec;
    let status = if observed.tenant.status == TenantStatus::Active { "active" } else { "suspended" };
    let document = SupportPlanDocument {
        tenant_id: spec.tenant_id.to_string(),
        level: spec.level.as_str().to_owned(),
        channels: Some(spec.channels.iter().cloned().collect()),
        first_response_minutes: Some(spec.first_response_minutes),
        tracker_access: Some(observed.tracker_access),
        timeouts: current.get("timeouts").to_known_json().and_then(|json| serde_json::from_value(json).ok()),
        id: Some(spec.tenant_id.to_string()),
        hours: Some(spec.level.hours().to_owned()),
        starts_on: Some(observed.record.starts_on.clone()),
        status: Some(status.to_owned()),
    };
    let json = serde_json::to_value(document).unwrap_or_default();
    Value::from_json(&json, &schema.value_type).map_err(|error| {
        diagnostics::error("Cannot encode the support plan's state", format!("{error}. This is a bug in the provider."))
    })
}

fn apply_error(error: &SupportPlanError) -> pb::Diagnostic {
    if let SupportPlanError::Claim(claim) = error {
        return crate::claims::refusal_diagnostic(atrium_engine::model::ownership::ObjectKind::SupportPlan, claim);
    }
    let mut detail = diagnostics::error_chain(error);
    let attribute = match error {
        SupportPlanError::LevelNotAllowed { .. } => {
            detail.push_str(". Set level = \"standard_8x5\", or raise the tenant's tier.");
            Some("level")
        }
        SupportPlanError::AlreadyExists { .. } | SupportPlanError::TenantMissing { .. } => Some("tenant_id"),
        SupportPlanError::NoTracker { .. } => Some("tracker_access"),
        _ if error.is_retryable() => {
            detail.push_str(". Every step is safe to repeat; run terraform apply again.");
            None
        }
        _ => None,
    };
    let mut diagnostic = diagnostics::error("Support plan change failed", detail);
    if let Some(attribute) = attribute {
        diagnostic.attribute = Some(diagnostics::to_proto_path(&AttributePath::root(attribute)));
    }
    diagnostic
}

fn tenant_of(value: &Value) -> Result<TenantId, Vec<pb::Diagnostic>> {
    TenantId::parse(value.get("tenant_id").as_str().unwrap_or_default())
        .map_err(|detail| vec![diagnostics::error("Invalid support plan in state", detail)])
}

/// Applies a planned change; returns the new state (null after destroy).
pub async fn apply(
    context: &SupportPlanContext<'_>,
    schema: &ResourceSchema,
    prior: &Value,
    planned: &Value,
    create: Option<&atrium_engine::model::ownership::CreateToken>,
) -> Result<Value, Vec<pb::Diagnostic>> {
    if planned.is_null() {
        context.destroy(&tenant_of(prior)?).await.map_err(|error| vec![apply_error(&error)])?;
        return Ok(Value::Null);
    }
    let document: SupportPlanDocument = serde_json::from_value(planned.to_known_json().unwrap_or_default())
        .map_err(|error| vec![diagnostics::error("Support plan values are incomplete", error.to_string())])?;
    let spec = SupportPlanSpec::from_document(&document, None)
        .map_err(|errors| errors.iter().map(diagnostics::from_validation).collect::<Vec<_>>())?;
    context.apply(&spec, create).await.map_err(|error| vec![apply_error(&error)])?;
    tracing::info!(tenant = %spec.tenant_id, level = spec.level.as_str(), "support plan applied");
    let observed = context.observe(&spec.tenant_id).await.map_err(|error| vec![apply_error(&error)])?;
    let Some(mut observed) = observed else {
        return Err(vec![diagnostics::error(
            "Support plan vanished",
            "the plan was written but cannot be read back; run terraform apply again",
        )]);
    };
    // The access just granted or revoked is what the plan said.
    observed.tracker_access = spec.tracker_access;
    state_of(&observed, planned, schema).map_err(|d| vec![d])
}

/// Refreshes a plan from the registry and the tracker; null when it no longer exists.
pub async fn read(
    context: &SupportPlanContext<'_>,
    schema: &ResourceSchema,
    current: &Value,
) -> Result<Value, Vec<pb::Diagnostic>> {
    let observed = context.observe(&tenant_of(current)?).await.map_err(|error| {
        vec![diagnostics::error("Cannot observe the support plan", diagnostics::error_chain(&error))]
    })?;
    match observed {
        None => Ok(Value::Null),
        Some(observed) => state_of(&observed, current, schema).map_err(|d| vec![d]),
    }
}

/// Imports a plan by its tenant's name.
pub async fn import(
    context: &SupportPlanContext<'_>,
    schema: &ResourceSchema,
    id: &str,
) -> Result<Value, Vec<pb::Diagnostic>> {
    let tenant_id = TenantId::parse(id).map_err(|detail| {
        vec![diagnostics::error(
            "Invalid import id",
            format!("{detail}. Import a support plan by its tenant's name, e.g. terraform import atrium_support_plan.acme acme"),
        )]
    })?;
    let observed = context.observe(&tenant_id).await.map_err(|error| {
        vec![diagnostics::error("Cannot observe the support plan", diagnostics::error_chain(&error))]
    })?;
    let Some(observed) = observed else {
        return Err(vec![diagnostics::error(
            "Cannot import a support plan that does not exist",
            format!("tenant \"{tenant_id}\" has no support plan; import takes the tenant's name"),
        )]);
    };
    if !atrium_engine::model::ownership::Owner::from_stored(&observed.record.owner).is_terraform() {
        return Err(vec![diagnostics::error(
            "Support plan is managed elsewhere",
            format!(
                "the support plan of \"{tenant_id}\" is managed by the {} front door; Terraform does not take over its objects",
                observed.record.owner
            ),
        )]);
    }
    state_of(&observed, &Value::Null, schema).map_err(|d| vec![d])
}
