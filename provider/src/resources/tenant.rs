//! `atrium_tenant` between Terraform values and the engine.

use atrium_engine::apply::tenant::{ApplyContext, TenantApplyError, apply_planned};
use atrium_engine::backends::targets::Targets;
use atrium_engine::model::attribute::AttributePath;
use atrium_engine::model::ownership::{CreateToken, ObjectKind, Owner};
use atrium_engine::model::tenant::{TenantDocument, TenantRecord, TenantSpec, today};
use atrium_engine::model::timeouts::Operation;
use atrium_engine::model::{TenantId, Timeouts};
use atrium_engine::observe::TenantObserver;
use atrium_engine::plan::tenant::{TenantDecision, TenantFacts, plan_tenant_draft};

use tokio::sync::watch;

use super::{Applied, Change, Diagnosed, PlannedChange, Resource};
use crate::claims;
use crate::configured::Configured;
use crate::diagnostics;
use crate::proto::tfplugin6 as pb;
use crate::schema::ResourceSchema;
use crate::value::Value;

/// Validation of what is known; unknown and null attributes are skipped.
fn validate(config: &Value) -> Vec<pb::Diagnostic> {
    let Some(known) = config.to_known_json() else { return Vec::new() };
    atrium_engine::plan::validate_known(atrium_engine::model::ownership::ObjectKind::Tenant, known)
        .iter()
        .map(diagnostics::from_setup)
        .collect()
}

/// Plans a tenant: the engine's planner on the configuration as a draft,
/// with today's date and, once the provider is configured, what depends on
/// the tenant as observed.
async fn plan(
    prior: &Value,
    proposed: &Value,
    config: &Value,
    observer: Option<&TenantObserver>,
    schema: &ResourceSchema,
) -> PlannedChange {
    if proposed.is_null() {
        return PlannedChange::only(Value::Null, Vec::new());
    }
    let (prior_draft, config_draft) = super::drafts(prior, config);
    let tenant_id = config_draft.str("name").and_then(|name| TenantId::parse(name).ok());
    let mut diagnostics = Vec::new();
    let dependents = match (observer, tenant_id) {
        (Some(observer), Some(tenant_id)) => match observer.dependents(&tenant_id).await {
            Ok(dependents) => Some(dependents),
            Err(error) => {
                diagnostics.push(diagnostics::warning(
                    "Cannot check what depends on the tenant",
                    format!("{}; apply checks it again.", diagnostics::error_chain(&error)),
                ));
                None
            }
        },
        _ => None,
    };
    let facts = TenantFacts { today: today(), dependents: dependents.as_ref() };
    let plan = plan_tenant_draft(prior_draft.as_ref(), Some(&config_draft), &facts);
    super::planned_change(proposed, plan, schema, diagnostics)
}

fn document_from(value: &Value) -> Result<TenantDocument, pb::Diagnostic> {
    let json = value.to_known_json().unwrap_or_default();
    serde_json::from_value(json).map_err(|error| {
        diagnostics::error(
            "Tenant values are incomplete",
            format!("the planned tenant could not be read: {error}. This is a bug in the provider; please report it."),
        )
    })
}

fn spec_from(value: &Value) -> Result<(TenantSpec, Option<Timeouts>), Vec<pb::Diagnostic>> {
    let document = document_from(value).map_err(|d| vec![d])?;
    let spec = TenantSpec::from_document(&document)
        .map_err(|errors| errors.iter().map(diagnostics::from_validation).collect::<Vec<_>>())?;
    Ok((spec, document.timeouts))
}

/// The Terraform state of a registry record, keeping the configuration-only `timeouts`.
pub fn state_from_record(
    record: &TenantRecord,
    timeouts: Option<Timeouts>,
    schema: &ResourceSchema,
) -> Result<Value, pb::Diagnostic> {
    let json = serde_json::to_value(record.to_document(timeouts)).unwrap_or_default();
    Value::from_json(&json, &schema.value_type).map_err(|error| {
        diagnostics::error(
            "Cannot encode the tenant's state",
            format!("{error}. This is a bug in the provider; please report it."),
        )
    })
}

fn timeouts_of(value: &Value) -> Option<Timeouts> {
    value.get("timeouts").to_known_json().and_then(|json| serde_json::from_value(json).ok())
}

fn apply_error(error: &TenantApplyError) -> pb::Diagnostic {
    let detail = match error {
        TenantApplyError::Claim(claim) => return crate::claims::refusal_diagnostic(ObjectKind::Tenant, claim),
        TenantApplyError::Conflict { tenant_id, .. } => format!(
            "{}. If it belongs to this configuration, import it: terraform import atrium_tenant.<name> {tenant_id}",
            diagnostics::error_chain(error)
        ),
        TenantApplyError::Missing { .. } => {
            format!(
                "{}. Run terraform apply again: the refresh will notice and plan to create it.",
                diagnostics::error_chain(error)
            )
        }
        TenantApplyError::Status { .. } => {
            format!("{}. Every step is safe to repeat; run terraform apply again.", diagnostics::error_chain(error))
        }
        _ if error.is_retryable() => {
            format!("{}. Nothing was left half-done; run terraform apply again.", diagnostics::error_chain(error))
        }
        _ => diagnostics::error_chain(error),
    };
    let mut diagnostic = diagnostics::error("Tenant change failed", detail);
    let attribute = match error {
        TenantApplyError::QuotaBelowUse { .. } => Some("user_quota"),
        TenantApplyError::TierStrandsSupportLevel { .. } => Some("tier"),
        _ => None,
    };
    if let Some(attribute) = attribute {
        diagnostic.attribute = Some(diagnostics::to_proto_path(&AttributePath::root(attribute)));
    }
    diagnostic
}

/// What applying a tenant needs from the configured provider.
pub struct TenantContext<'a> {
    pub observer: &'a TenantObserver,
    /// Where the tenant's apps run (its status stops and starts them).
    pub targets: &'a Targets,
    /// The configuration the tenant's create is claimed for.
    pub owner: &'a Owner,
    pub cancelled: watch::Receiver<bool>,
}

/// Applies a planned change and its decision; returns the new state (null after delete).
async fn apply(
    context: TenantContext<'_>,
    schema: &ResourceSchema,
    prior: &Value,
    planned: &Value,
    create: Option<&CreateToken>,
    decision: Option<&TenantDecision>,
) -> Result<Value, Vec<pb::Diagnostic>> {
    let TenantContext { observer, targets, owner, cancelled } = context;
    let (desired, timeouts, operation) = if planned.is_null() {
        (None, timeouts_of(prior), Operation::Delete)
    } else {
        let (spec, timeouts) = spec_from(planned)?;
        let operation = if prior.is_null() { Operation::Create } else { Operation::Update };
        (Some(spec), timeouts, operation)
    };
    let name = match &desired {
        Some(spec) => spec.name.clone(),
        None => TenantId::parse(prior.get("name").as_str().unwrap_or_default())
            .map_err(|detail| vec![diagnostics::error("Invalid tenant in state", detail)])?,
    };
    let before = if prior.is_null() { None } else { record_from_state(prior) };
    let deadline = Timeouts::deadline(timeouts.as_ref(), operation);
    // Updates create nothing: their token is never recorded.
    let create_token = create.cloned().unwrap_or_default();
    let context = ApplyContext { owner, create_token: &create_token, deadline, cancelled };
    let applied = apply_planned(observer, targets, &name, before.as_ref(), desired.as_ref(), decision, &context)
        .await
        .map_err(|error| vec![apply_error(&error)])?;
    match applied {
        None => Ok(Value::Null),
        Some(record) => {
            tracing::info!(tenant = %record.spec.name, "tenant applied");
            state_from_record(&record, timeouts, schema).map_err(|d| vec![d])
        }
    }
}

/// The registry record a prior state describes (for planning an update).
fn record_from_state(state: &Value) -> Option<TenantRecord> {
    let document = document_from(state).ok()?;
    let spec = TenantSpec::from_document(&document).ok()?;
    Some(TenantRecord {
        spec,
        status: document.status.as_deref().and_then(atrium_engine::model::TenantStatus::parse)?,
        created_at: document.created_at.clone().unwrap_or_default(),
        owner: String::new(),
    })
}

/// Refreshes a tenant from the registry; null when it no longer exists.
async fn read(
    observer: &TenantObserver,
    schema: &ResourceSchema,
    current: &Value,
) -> Result<Value, Vec<pb::Diagnostic>> {
    let name = current.get("name").as_str().or_else(|| current.get("id").as_str()).unwrap_or_default();
    let tenant_id =
        TenantId::parse(name).map_err(|detail| vec![diagnostics::error("Invalid tenant in state", detail)])?;
    let observed = observer
        .observe(&tenant_id)
        .await
        .map_err(|error| vec![diagnostics::error("Cannot read the registry", diagnostics::error_chain(&error))])?;
    match observed {
        None => Ok(Value::Null),
        Some(record) => state_from_record(&record, timeouts_of(current), schema).map_err(|d| vec![d]),
    }
}

/// Imports a tenant by name.
async fn import(observer: &TenantObserver, schema: &ResourceSchema, id: &str) -> Result<Value, Vec<pb::Diagnostic>> {
    let tenant_id = TenantId::parse(id).map_err(|detail| {
        vec![diagnostics::error(
            "Invalid import id",
            format!("{detail}. Import a tenant by its name, e.g. terraform import atrium_tenant.acme acme"),
        )]
    })?;
    let observed = observer
        .registry()
        .get_tenant(&tenant_id)
        .await
        .map_err(|error| vec![diagnostics::error("Cannot read the registry", diagnostics::error_chain(&error))])?;
    let Some(record) = observed else {
        return Err(vec![diagnostics::error(
            "Cannot import a tenant that does not exist",
            format!(
                "the registry at {} has no tenant named \"{tenant_id}\"; check the name (terraform import takes the tenant's name)",
                observer.registry().url_for_messages()
            ),
        )]);
    };
    if !Owner::from_stored(&record.owner).is_terraform() {
        return Err(vec![diagnostics::error(
            "Tenant is managed elsewhere",
            format!(
                "tenant \"{tenant_id}\" is managed by the {} front door; Terraform does not take over its objects",
                record.owner
            ),
        )]);
    }
    state_from_record(&record, None, schema).map_err(|d| vec![d])
}

/// `atrium_tenant`: plans before the provider is configured too (without
/// the checks of its dependents).
pub struct Tenant;

#[async_trait::async_trait]
impl Resource for Tenant {
    fn validate(&self, config: &Value) -> Vec<pb::Diagnostic> {
        validate(config)
    }

    async fn plan(&self, provider: Option<&Configured>, change: Change<'_>) -> PlannedChange {
        let observer = provider.map(|provider| &provider.tenant_observer);
        plan(change.prior, change.after, change.config, observer, change.schema).await
    }

    async fn apply(&self, provider: &Configured, change: Change<'_>) -> Applied {
        let context = TenantContext {
            observer: &provider.tenant_observer,
            targets: &provider.platform.targets,
            owner: &provider.owner,
            cancelled: change.cancelled.clone(),
        };
        let decision = claims::decision_of(change.planned_private);
        let state = apply(context, change.schema, change.prior, change.after, change.create, decision.as_ref()).await?;
        Ok((state, Vec::new()))
    }

    async fn read(&self, provider: &Configured, schema: &ResourceSchema, current: &Value) -> Diagnosed<Value> {
        read(&provider.tenant_observer, schema, current).await
    }

    async fn import(&self, provider: &Configured, schema: &ResourceSchema, id: &str) -> Diagnosed<Value> {
        import(&provider.tenant_observer, schema, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ProviderSchemas, TENANT_TYPE};
    use crate::value::Number;

    fn schema() -> ResourceSchema {
        ProviderSchemas::build().unwrap().resource(TENANT_TYPE).unwrap().clone()
    }

    fn config(json: serde_json::Value) -> Value {
        Value::from_json(&json, &schema().value_type).unwrap()
    }

    fn base() -> serde_json::Value {
        serde_json::json!({"name": "acme", "display_name": "ACME", "tier": "business",
                           "manager": {"email": "m@acme.com", "name": "M"}})
    }

    #[tokio::test]
    async fn create_fills_defaults_and_leaves_created_at_unknown() {
        let config = config(base());
        let planned = plan(&Value::Null, &config, &config, None, &schema()).await;
        assert!(planned.diagnostics.is_empty());
        let state = planned.planned_state;
        assert_eq!(state.get("user_quota"), &Value::Number(Number::Int(50)));
        assert_eq!(state.get("welcome_email"), &Value::Bool(true));
        assert_eq!(state.get("id"), &Value::string("acme"));
        assert_eq!(state.get("status"), &Value::string("active"));
        assert!(state.get("created_at").is_unknown());
        assert!(planned.requires_replace.is_empty());
    }

    #[tokio::test]
    async fn unknown_tier_makes_the_default_quota_unknown() {
        let mut config = config(base());
        config.set("tier", Value::Unknown);
        let planned = plan(&Value::Null, &config, &config, None, &schema()).await;
        assert!(planned.diagnostics.is_empty());
        assert!(planned.planned_state.get("user_quota").is_unknown());
    }

    #[tokio::test]
    async fn renaming_requires_replacement_and_update_keeps_computed_values() {
        let mut prior = config(base());
        prior.set("id", Value::string("acme"));
        prior.set("status", Value::string("active"));
        prior.set("created_at", Value::string("2026-11-23T10:00:00Z"));
        prior.set("user_quota", Value::Number(Number::Int(50)));
        prior.set("welcome_email", Value::Bool(true));

        let mut renamed = config(base());
        renamed.set("name", Value::string("acme-two"));
        let planned = plan(&prior, &renamed, &renamed, None, &schema()).await;
        assert_eq!(planned.requires_replace, vec![AttributePath::root("name")]);
        assert!(planned.planned_state.get("created_at").is_unknown());

        let mut retitled = config(base());
        retitled.set("display_name", Value::string("ACME GmbH"));
        let planned = plan(&prior, &retitled, &retitled, None, &schema()).await;
        assert!(planned.requires_replace.is_empty());
        assert_eq!(planned.planned_state.get("created_at"), &Value::string("2026-11-23T10:00:00Z"));
    }

    #[tokio::test]
    async fn bad_input_fails_at_plan_with_the_attribute() {
        let mut bad = base();
        bad["tier"] = "gold".into();
        bad["manager"]["email"] = "nope".into();
        let config = config(bad);
        let planned = plan(&Value::Null, &config, &config, None, &schema()).await;
        assert_eq!(planned.diagnostics.len(), 2);
        assert!(planned.diagnostics.iter().all(|d| d.attribute.is_some()));
    }
}
