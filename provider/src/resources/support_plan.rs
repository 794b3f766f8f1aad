//! `atrium_support_plan` between Terraform values and the engine.

use atrium_engine::apply::support_plan::{ObservedSupportPlan, SupportPlanContext, SupportPlanError};
use atrium_engine::model::TenantId;
use atrium_engine::model::attribute::AttributePath;
use atrium_engine::model::support_plan::{SupportPlanDocument, SupportPlanSpec};
use atrium_engine::plan::support_plan::{SupportFacts, plan_support_plan};

use atrium_engine::model::timeouts::DEFAULT_TIMEOUT;

use super::{Applied, Change, Diagnosed, PlannedChange, Resource};
use crate::configured::Configured;
use crate::diagnostics;
use crate::proto::tfplugin6 as pb;
use crate::schema::ResourceSchema;
use crate::value::Value;

/// Validation of what is known, before the tenant's tier is.
fn validate(config: &Value) -> Vec<pb::Diagnostic> {
    let Some(known) = config.to_known_json() else { return Vec::new() };
    atrium_engine::plan::validate_known(atrium_engine::model::ownership::ObjectKind::SupportPlan, known)
        .iter()
        .map(diagnostics::from_setup)
        .collect()
}

/// Plans a support plan: the engine's planner on the configuration as a
/// draft, with the tenant's tier as observed.
async fn plan(
    prior: &Value,
    proposed: &Value,
    config: &Value,
    context: &SupportPlanContext<'_>,
    schema: &ResourceSchema,
) -> PlannedChange {
    if proposed.is_null() {
        return PlannedChange::only(Value::Null, Vec::new());
    }
    let (prior_draft, config_draft) = super::drafts(prior, config);
    let tenant = match config_draft.str("tenant_id").and_then(|t| TenantId::parse(t).ok()) {
        Some(id) => context.registry.get_tenant(&id).await.ok().flatten(),
        None => None,
    };
    let facts = SupportFacts {
        tenant_tier: tenant.map(|tenant| tenant.spec.tier),
        tracker_configured: context.tracker.is_some(),
    };
    let plan = plan_support_plan(prior_draft.as_ref(), Some(&config_draft), &facts);
    super::planned_change(proposed, plan, schema, Vec::new())
}

fn state_of(observed: &ObservedSupportPlan, current: &Value, schema: &ResourceSchema) -> Result<Value, pb::Diagnostic> {
    let timeouts = current.get("timeouts").to_known_json().and_then(|json| serde_json::from_value(json).ok());
    let json = serde_json::to_value(observed.to_document(timeouts)).unwrap_or_default();
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
async fn apply(
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
    let observed = context.apply_and_observe(&spec, create).await.map_err(|error| vec![apply_error(&error)])?;
    state_of(&observed, planned, schema).map_err(|d| vec![d])
}

/// Refreshes a plan from the registry and the tracker; null when it no longer exists.
async fn read(
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
async fn import(
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

/// `atrium_support_plan`.
pub struct SupportPlan;

#[async_trait::async_trait]
impl Resource for SupportPlan {
    fn validate(&self, config: &Value) -> Vec<pb::Diagnostic> {
        validate(config)
    }

    async fn plan(&self, provider: Option<&Configured>, change: Change<'_>) -> PlannedChange {
        let Some(provider) = provider else { return super::unconfigured() };
        let context = provider.support_plan_context(change.deadline(), change.cancelled.clone());
        plan(change.prior, change.after, change.config, &context, change.schema).await
    }

    async fn apply(&self, provider: &Configured, change: Change<'_>) -> Applied {
        let context = provider.support_plan_context(change.deadline(), change.cancelled.clone());
        let state = apply(&context, change.schema, change.prior, change.after, change.create).await?;
        Ok((state, Vec::new()))
    }

    async fn read(&self, provider: &Configured, schema: &ResourceSchema, current: &Value) -> Diagnosed<Value> {
        read(&provider.support_plan_context(DEFAULT_TIMEOUT, provider.stopped.clone()), schema, current).await
    }

    async fn import(&self, provider: &Configured, schema: &ResourceSchema, id: &str) -> Diagnosed<Value> {
        import(&provider.support_plan_context(DEFAULT_TIMEOUT, provider.stopped.clone()), schema, id).await
    }
}
