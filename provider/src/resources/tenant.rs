//! `atrium_tenant` between Terraform values and the engine.

use atrium_engine::apply::tenant::{ApplyContext, TenantApplyError, apply_tenant_change};
use atrium_engine::backends::targets::Targets;
use atrium_engine::model::attribute::AttributePath;
use atrium_engine::model::ownership::{CreateToken, ObjectKind, Owner};
use atrium_engine::model::tenant::{TenantDocument, TenantDraft, TenantRecord, TenantSpec, TenantStatus, today};
use atrium_engine::model::timeouts::Operation;
use atrium_engine::model::{TenantId, Timeouts};
use atrium_engine::observe::TenantObserver;
use atrium_engine::plan::tenant::{Action, plan_tenant};
use tokio::sync::watch;

use super::PlannedChange;
use crate::diagnostics;
use crate::proto::tfplugin6 as pb;
use crate::schema::ResourceSchema;
use crate::value::{Number, Value};

/// Validation of what is known; unknown and null attributes are skipped.
pub fn validate(config: &Value) -> Vec<pb::Diagnostic> {
    let Some(known) = config.to_known_json() else { return Vec::new() };
    match serde_json::from_value::<TenantDraft>(known) {
        Ok(draft) => draft.validate().iter().map(diagnostics::from_validation).collect(),
        Err(error) => vec![diagnostics::error("Invalid tenant configuration", error.to_string())],
    }
}

/// Plans a tenant: fills defaults, keeps prior computed values on update,
/// marks computed values unknown on create, and asks for replacement when
/// `name` changes.
pub async fn plan(prior: &Value, proposed: &Value, config: &Value, observer: Option<&TenantObserver>) -> PlannedChange {
    if proposed.is_null() {
        return PlannedChange { planned_state: Value::Null, requires_replace: Vec::new(), diagnostics: Vec::new() };
    }
    let mut diagnostics = validate(config);
    if !diagnostics::has_errors(&diagnostics)
        && let Some(observer) = observer
    {
        diagnostics.extend(check_dependents(config, observer).await);
    }
    if diagnostics::has_errors(&diagnostics) {
        return PlannedChange { planned_state: proposed.clone(), requires_replace: Vec::new(), diagnostics };
    }
    let mut planned = proposed.clone();
    let tier = config.get("tier").as_str().and_then(atrium_engine::model::Tier::parse);
    if config.get("user_quota").is_null() {
        let quota = match (config.get("tier"), tier) {
            (_, Some(tier)) => Value::Number(Number::Int(i64::from(tier.default_user_quota()))),
            _ => Value::Unknown,
        };
        planned.set("user_quota", quota);
    }
    if config.get("welcome_email").is_null() {
        planned.set("welcome_email", Value::Bool(true));
    }
    let name = config.get("name").clone();
    planned.set("id", if name.is_unknown() { Value::Unknown } else { name.clone() });

    let mut requires_replace = Vec::new();
    let replacing = !prior.is_null() && prior.get("name") != &name;
    if replacing {
        requires_replace.push(AttributePath::root("name"));
    }
    if prior.is_null() || replacing {
        planned.set("created_at", Value::Unknown);
    } else {
        planned.set("created_at", prior.get("created_at").clone());
    }
    // The status follows expires_on and today's date: planned, so that the
    // apply that stops (or resumes) the tenant's apps shows in the plan.
    let expires_on = match config.get("expires_on") {
        Value::Null => Some(None),
        Value::String(text) => atrium_engine::model::validate::date(text).ok().map(Some),
        _ => None,
    };
    match expires_on.zip(document_from(&planned).ok().and_then(|d| TenantSpec::from_document(&d).ok())) {
        Some((_, spec)) => {
            let status = spec.desired_status(today());
            planned.set("status", Value::string(status.as_str()));
            planned.set("status_reason", spec.status_reason(status).map(Value::string).unwrap_or(Value::Null));
            let before = prior.get("status").as_str();
            if before.is_some_and(|before| before != status.as_str()) {
                let (summary, detail) = if status == TenantStatus::Active {
                    (
                        "Tenant resumes",
                        format!(
                            "{} no longer is past its expiry: this apply starts its apps again and points its domains back at them.",
                            spec.name
                        ),
                    )
                } else {
                    (
                        "Tenant expires",
                        format!(
                            "{} {}. This apply stops its apps (containers and data are kept) and its domains answer 503.",
                            spec.name,
                            spec.status_reason(status).unwrap_or_default()
                        ),
                    )
                };
                let mut warning = diagnostics::warning(summary, detail);
                warning.attribute = Some(diagnostics::to_proto_path(&AttributePath::root("expires_on")));
                diagnostics.push(warning);
            }
        }
        None => {
            planned.set("status", Value::Unknown);
            planned.set("status_reason", Value::Unknown);
        }
    }
    PlannedChange { planned_state: planned, requires_replace, diagnostics }
}

/// What depends on the tenant, checked against the planned quota and tier:
/// warnings here (the same apply may lower the instances' users or the
/// support level first, and a check of the desired state must never block
/// a destroy, before which Terraform plans the configuration), errors at
/// apply when still true then.
async fn check_dependents(config: &Value, observer: &TenantObserver) -> Vec<pb::Diagnostic> {
    use atrium_engine::model::support_plan::SupportLevel;
    let Some(tenant_id) = config.get("name").as_str().and_then(|name| TenantId::parse(name).ok()) else {
        return Vec::new();
    };
    let dependents = match observer.dependents(&tenant_id).await {
        Ok(dependents) => dependents,
        Err(error) => {
            return vec![diagnostics::warning(
                "Cannot check what depends on the tenant",
                format!("{}; apply checks it again.", diagnostics::error_chain(&error)),
            )];
        }
    };
    let will_fail = " Applying this change will fail unless the same apply changes them first.";
    let mut warnings = Vec::new();
    if let Value::Number(quota) = config.get("user_quota") {
        let quota = match quota {
            Number::Int(n) => *n as f64,
            Number::Float(f) => *f,
            Number::Big(_) => f64::MAX,
        };
        let used = dependents.users_in_use();
        if (used as f64) > quota {
            let listing: Vec<String> =
                dependents.instances.iter().map(|(id, users)| format!("{id} ({users} users)")).collect();
            warnings.push(attribute_warning(
                "user_quota",
                "User quota below current use",
                format!(
                    "tenant {tenant_id}'s app instances use {used} users ({}); keep user_quota at {used} or more, or lower the instances' users first.{will_fail}",
                    listing.join(", ")
                ),
            ));
        }
    }
    if let (Some(tier), Some(level)) =
        (config.get("tier").as_str().and_then(atrium_engine::model::Tier::parse), dependents.support_level)
        && !SupportLevel::allowed_for(tier).contains(&level)
    {
        warnings.push(attribute_warning(
            "tier",
            "Tier does not allow the tenant's support level",
            format!(
                "tenant {tenant_id} has the {} support plan, which a {} tenant cannot have: first change the atrium_support_plan's level to \"standard_8x5\", or keep the tier.{will_fail}",
                level.as_str(),
                tier.as_str()
            ),
        ));
    }
    warnings
}

fn attribute_warning(attribute: &str, summary: &str, detail: String) -> pb::Diagnostic {
    let mut warning = diagnostics::warning(summary, detail);
    warning.attribute = Some(diagnostics::to_proto_path(&AttributePath::root(attribute)));
    warning
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

/// Applies a planned change; returns the new state (null after delete).
pub async fn apply(
    context: TenantContext<'_>,
    schema: &ResourceSchema,
    prior: &Value,
    planned: &Value,
    create: Option<&CreateToken>,
) -> Result<Value, Vec<pb::Diagnostic>> {
    let TenantContext { observer, targets, owner, cancelled } = context;
    let (change, operation, timeouts) = if planned.is_null() {
        let name = prior.get("name").as_str().unwrap_or_default();
        let tenant_id =
            TenantId::parse(name).map_err(|detail| vec![diagnostics::error("Invalid tenant in state", detail)])?;
        let observed =
            observer.registry().get_tenant(&tenant_id).await.map_err(|error| {
                vec![diagnostics::error("Cannot read the registry", diagnostics::error_chain(&error))]
            })?;
        let Some(observed) = observed else {
            // Already gone: deleting what does not exist is success.
            return Ok(Value::Null);
        };
        let change = plan_tenant(None, Some(&observed)).expect("deleting an observed tenant is a change");
        (change, Operation::Delete, timeouts_of(prior))
    } else {
        let (spec, timeouts) = spec_from(planned)?;
        let before = if prior.is_null() { None } else { record_from_state(prior) };
        let operation = if before.is_none() { Operation::Create } else { Operation::Update };
        let change = plan_tenant(Some(&spec), before.as_ref());
        match change {
            Some(change) if change.action != Action::NoOp => (change, operation, timeouts),
            // Only the status moves (time passed): enforce it on the registry's record.
            _ => {
                let deadline = Timeouts::deadline(timeouts.as_ref(), operation);
                let record = observer.registry().get_tenant(&spec.name).await.map_err(|error| {
                    vec![diagnostics::error("Cannot read the registry", diagnostics::error_chain(&error))]
                })?;
                let Some(record) = record else { return Ok(planned.clone()) };
                let record = enforce_status(observer, targets, record, deadline).await?;
                return state_from_record(&record, timeouts, schema).map_err(|d| vec![d]);
            }
        }
    };
    let deadline = Timeouts::deadline(timeouts.as_ref(), operation);
    // Updates create nothing: their token is never recorded.
    let create_token = create.cloned().unwrap_or_default();
    let context = ApplyContext { owner, create_token: &create_token, deadline, cancelled };
    let record = apply_tenant_change(observer, &change, &context).await.map_err(|error| vec![apply_error(&error)])?;
    match record {
        None => Ok(Value::Null),
        Some(record) => {
            tracing::info!(tenant = %record.spec.name, action = ?change.action, "tenant applied");
            let record = enforce_status(observer, targets, record, deadline).await?;
            state_from_record(&record, timeouts, schema).map_err(|d| vec![d])
        }
    }
}

/// Brings the tenant's apps and domains to the status its expiry asks for today.
async fn enforce_status(
    observer: &TenantObserver,
    targets: &Targets,
    mut record: TenantRecord,
    deadline: std::time::Duration,
) -> Result<TenantRecord, Vec<pb::Diagnostic>> {
    let desired = record.spec.desired_status(today());
    if desired == record.status {
        return Ok(record);
    }
    atrium_engine::apply::suspension::enforce(observer.registry(), targets, &record, desired, deadline).await.map_err(
        |error| {
            let mut detail = diagnostics::error_chain(&error);
            if error.is_retryable() {
                detail.push_str(". Every step is safe to repeat; run terraform apply again.");
            }
            vec![diagnostics::error("Cannot change the tenant's status", detail)]
        },
    )?;
    observer.invalidate().await;
    record.status = desired;
    Ok(record)
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
pub async fn read(
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
pub async fn import(
    observer: &TenantObserver,
    schema: &ResourceSchema,
    id: &str,
) -> Result<Value, Vec<pb::Diagnostic>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ProviderSchemas, TENANT_TYPE};

    fn config(json: serde_json::Value) -> Value {
        let schemas = ProviderSchemas::build().unwrap();
        Value::from_json(&json, &schemas.resource(TENANT_TYPE).unwrap().value_type).unwrap()
    }

    fn base() -> serde_json::Value {
        serde_json::json!({"name": "acme", "display_name": "ACME", "tier": "business",
                           "manager": {"email": "m@acme.com", "name": "M"}})
    }

    #[tokio::test]
    async fn create_fills_defaults_and_leaves_created_at_unknown() {
        let config = config(base());
        let planned = plan(&Value::Null, &config, &config, None).await;
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
        let planned = plan(&Value::Null, &config, &config, None).await;
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
        let planned = plan(&prior, &renamed, &renamed, None).await;
        assert_eq!(planned.requires_replace, vec![AttributePath::root("name")]);
        assert!(planned.planned_state.get("created_at").is_unknown());

        let mut retitled = config(base());
        retitled.set("display_name", Value::string("ACME GmbH"));
        let planned = plan(&prior, &retitled, &retitled, None).await;
        assert!(planned.requires_replace.is_empty());
        assert_eq!(planned.planned_state.get("created_at"), &Value::string("2026-11-23T10:00:00Z"));
    }

    #[tokio::test]
    async fn bad_input_fails_at_plan_with_the_attribute() {
        let mut bad = base();
        bad["tier"] = "gold".into();
        bad["manager"]["email"] = "nope".into();
        let config = config(bad);
        let planned = plan(&Value::Null, &config, &config, None).await;
        assert_eq!(planned.diagnostics.len(), 2);
        assert!(planned.diagnostics.iter().all(|d| d.attribute.is_some()));
    }
}
