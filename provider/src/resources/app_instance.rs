//! `atrium_app_instance` between Terraform values and the engine.

use atrium_engine::apply::app_instance::{AppApplyError, AppContext};
use atrium_engine::catalog::Catalog;
use atrium_engine::model::app_instance::InstanceHealth;
use atrium_engine::model::app_instance::{
    AppInstanceDocument, AppInstanceId, AppInstanceRecord, AppRead, AppReadWanted,
};
use atrium_engine::model::attribute::AttributePath;
use atrium_engine::plan::app_instance::{
    AppDecision, AppFacts, InstanceContext, named_ids, plan_instance, spec_from_document,
};
use atrium_engine::registry::Registry;

use atrium_engine::model::timeouts::DEFAULT_TIMEOUT;

use super::{Applied, Change, Diagnosed, PlannedChange, Resource};
use crate::claims;
use crate::configured::Configured;
use crate::diagnostics;
use crate::proto::tfplugin6 as pb;
use crate::schema::ResourceSchema;
use crate::value::Value;

/// Validation before the provider is configured: only what needs no catalog or targets.
fn validate(config: &Value) -> Vec<pb::Diagnostic> {
    let Some(known) = config.to_known_json() else { return Vec::new() };
    atrium_engine::plan::validate_known(atrium_engine::model::ownership::ObjectKind::AppInstance, known)
        .iter()
        .map(diagnostics::from_setup)
        .collect()
}

/// What planning needs from the configured provider.
pub struct PlanContext<'a> {
    pub catalog: &'a Catalog,
    pub targets: Vec<&'a str>,
    pub swarm_targets: Vec<&'a str>,
    pub registry: &'a Registry,
    /// Snapshots of the registry, shared with refreshes: a plan of many
    /// instances reads the registry once per window, not once per instance.
    pub observations: &'a atrium_engine::observe::AppObservations,
}

/// Plans an instance: the engine's planner on the configuration as a draft,
/// with the tenant and the instance's record as observed.
async fn plan(
    prior: &Value,
    proposed: &Value,
    config: &Value,
    context: &PlanContext<'_>,
    schema: &ResourceSchema,
) -> PlannedChange {
    if proposed.is_null() {
        return PlannedChange::only(Value::Null, Vec::new());
    }
    let (prior_draft, config_draft) = super::drafts(prior, config);
    let (tenant_id, id) = named_ids(&config_draft);
    let observed = async {
        let tenant = match &tenant_id {
            Some(tenant) => context.observations.tenant(context.registry, tenant).await?,
            None => None,
        };
        let recorded = match &id {
            Some(id) => context.observations.instance(context.registry, id).await?,
            None => None,
        };
        Ok::<_, atrium_engine::registry::RegistryError>((tenant, recorded))
    };
    let (tenant, recorded) = match observed.await {
        Ok(observed) => observed,
        Err(error) => {
            let diagnostic = diagnostics::error("Cannot read the registry", diagnostics::error_chain(&error));
            return PlannedChange::only(proposed.clone(), vec![diagnostic]);
        }
    };
    let facts = AppFacts {
        catalog: context.catalog,
        targets: context.targets.clone(),
        swarm_targets: context.swarm_targets.clone(),
        tenant: tenant.as_ref(),
        recorded: recorded.as_ref(),
    };
    let plan = plan_instance(prior_draft.as_ref(), Some(&config_draft), &facts);
    super::planned_change(proposed, plan, schema, Vec::new())
}

fn document_from(value: &Value) -> Result<AppInstanceDocument, pb::Diagnostic> {
    serde_json::from_value(value.to_known_json().unwrap_or_default()).map_err(|error| {
        diagnostics::error(
            "App instance values are incomplete",
            format!("{error}. This is a bug in the provider; please report it."),
        )
    })
}

/// The state of a recorded instance; configuration-only values come from
/// `current`, and what was read from the app (its latest backup, its users
/// in use) from `read` (or `current` when unread).
pub fn state_from_record(
    record: &AppInstanceRecord,
    health: InstanceHealth,
    read: AppRead,
    current: &Value,
    schema: &ResourceSchema,
) -> Result<Value, pb::Diagnostic> {
    let current: Option<AppInstanceDocument> =
        current.to_known_json().and_then(|json| serde_json::from_value(json).ok());
    let mut document = record.to_document(health, current.as_ref());
    read.read_into(&mut document);
    let json = serde_json::to_value(document).unwrap_or_default();
    Value::from_json(&json, &schema.value_type).map_err(|error| {
        diagnostics::error("Cannot encode the app instance's state", format!("{error}. This is a bug in the provider."))
    })
}

fn apply_error(error: &AppApplyError) -> pb::Diagnostic {
    if let AppApplyError::Claim(claim) = error {
        return crate::claims::refusal_diagnostic(atrium_engine::model::ownership::ObjectKind::AppInstance, claim);
    }
    let mut detail = diagnostics::error_chain(error);
    match error {
        AppApplyError::Unhealthy { .. } => {
            detail.push_str(". Pin a version that works (or fix the image) and apply again.")
        }
        AppApplyError::TenantMissing { .. } => {
            detail.push_str(". Create the tenant first (reference atrium_tenant.<name>.id in tenant_id).")
        }
        AppApplyError::OverQuota { .. } => detail.push_str(". Lower users or raise the tenant's user_quota."),
        _ if error.is_retryable() => detail.push_str(". Nothing was left half-done; run terraform apply again."),
        _ => {}
    }
    let summary = match error {
        AppApplyError::Unhealthy { kept, .. } if kept.starts_with("nothing") => {
            "App instance create failed: the app did not become healthy"
        }
        AppApplyError::Unhealthy { .. } => "Upgrade rolled back: the new version did not become healthy",
        AppApplyError::DeadlineExceeded { operation: "create", .. } => "App instance create ran out of time",
        AppApplyError::DeadlineExceeded { .. } => "App instance update ran out of time",
        AppApplyError::HasDependents { .. } => "App instance still serves domains",
        AppApplyError::MovedSincePlan { .. } => "App instance changed since the plan",
        _ => "App instance change failed",
    };
    let mut diagnostic = diagnostics::error(summary, detail);
    if matches!(error, AppApplyError::OverQuota { .. }) {
        diagnostic.attribute = Some(diagnostics::to_proto_path(&AttributePath::root("users")));
    }
    diagnostic
}

fn instance_id(value: &Value) -> Result<AppInstanceId, Vec<pb::Diagnostic>> {
    let (tenant, name) =
        (value.get("tenant_id").as_str().unwrap_or_default(), value.get("name").as_str().unwrap_or_default());
    AppInstanceId::parse(&format!("{tenant}/{name}"))
        .map_err(|detail| vec![diagnostics::error("Invalid app instance in state", detail)])
}

/// Applies a planned change; returns the new state (null after destroy).
async fn apply(
    context: &AppContext<'_>,
    schema: &ResourceSchema,
    prior: &Value,
    planned: &Value,
    config: &Value,
    create: Option<&atrium_engine::model::ownership::CreateToken>,
    decision: Option<&AppDecision>,
) -> Result<(Value, Vec<pb::Diagnostic>), Vec<pb::Diagnostic>> {
    if planned.is_null() {
        let id = instance_id(prior)?;
        context.destroy(&id).await.map_err(|error| vec![apply_error(&error)])?;
        return Ok((Value::Null, Vec::new()));
    }
    let mut document = document_from(planned).map_err(|d| vec![d])?;
    // The write-only password is only in the configuration, never in the plan.
    document.admin_password = config.get("admin_password").as_str().map(str::to_owned);
    let instance_context = InstanceContext {
        catalog: Some(context.catalog),
        targets: Some(context.targets.names()),
        swarm_targets: Some(context.targets.swarm_names()),
    };
    let spec = spec_from_document(&document, &instance_context)
        .map_err(|errors| errors.iter().map(diagnostics::from_validation).collect::<Vec<_>>())?;
    let deployment = context.deploy(&spec, create, decision).await.map_err(|error| vec![apply_error(&error)])?;
    let record = deployment.record;
    tracing::info!(instance = %spec.id, version = %spec.version, generation = record.generation, "app instance deployed");
    let warnings = deployment
        .welcome_warning
        .map(|detail| vec![diagnostics::warning("Welcome email not sent", detail)])
        .unwrap_or_default();
    // What the plan knew stays as planned (a backup taken or a user added
    // since is read by the next refresh); what it did not is read now.
    let wanted = AppReadWanted {
        latest_backup: planned.get("latest_backup").is_unknown(),
        users_in_use: planned.get("users_in_use").is_unknown(),
    };
    let read = if wanted.any() { context.read_app(&record, wanted).await } else { AppRead::NOTHING };
    let state = state_from_record(&record, deployment.health, read, planned, schema).map_err(|d| vec![d])?;
    Ok((state, warnings))
}

/// Refreshes an instance from the registry and its target; null when it no longer exists.
async fn read(
    context: &AppContext<'_>,
    schema: &ResourceSchema,
    current: &Value,
) -> Result<Value, Vec<pb::Diagnostic>> {
    let id = instance_id(current)?;
    let observed = context.observe(&id).await.map_err(|error| {
        vec![diagnostics::error("Cannot observe the app instance", diagnostics::error_chain(&error))]
    })?;
    match observed {
        None => Ok(Value::Null),
        Some((record, health)) => {
            let read = context.read_app(&record, AppReadWanted::ALL).await;
            state_from_record(&record, health, read, current, schema).map_err(|d| vec![d])
        }
    }
}

/// Imports an instance by `tenant/name`.
async fn import(context: &AppContext<'_>, schema: &ResourceSchema, id: &str) -> Result<Value, Vec<pb::Diagnostic>> {
    let id = AppInstanceId::parse(id).map_err(|detail| {
        vec![diagnostics::error("Invalid import id", format!("{detail}. Import an app instance as TENANT/NAME, e.g. terraform import atrium_app_instance.erp acme/erp"))]
    })?;
    let observed = context.observe(&id).await.map_err(|error| {
        vec![diagnostics::error("Cannot observe the app instance", diagnostics::error_chain(&error))]
    })?;
    let Some((record, health)) = observed else {
        return Err(vec![diagnostics::error(
            "Cannot import an app instance that does not exist",
            format!(
                "the registry has no app instance \"{id}\"; import takes TENANT/NAME as shown in the instance's id"
            ),
        )]);
    };
    if !atrium_engine::model::ownership::Owner::from_stored(&record.owner).is_terraform() {
        return Err(vec![diagnostics::error(
            "App instance is managed elsewhere",
            format!(
                "app instance \"{id}\" is managed by the {} front door; Terraform does not take over its objects",
                record.owner
            ),
        )]);
    }
    let read = context.read_app(&record, AppReadWanted::ALL).await;
    state_from_record(&record, health, read, &Value::Null, schema).map_err(|d| vec![d])
}

/// `atrium_app_instance`.
pub struct AppInstance;

#[async_trait::async_trait]
impl Resource for AppInstance {
    fn validate(&self, config: &Value) -> Vec<pb::Diagnostic> {
        validate(config)
    }

    async fn plan(&self, provider: Option<&Configured>, change: Change<'_>) -> PlannedChange {
        let Some(provider) = provider else { return super::unconfigured() };
        let context = PlanContext {
            catalog: provider.catalog(),
            targets: provider.platform.targets.names(),
            swarm_targets: provider.platform.targets.swarm_names(),
            registry: provider.registry(),
            observations: &provider.app_observations,
        };
        plan(change.prior, change.after, change.config, &context, change.schema).await
    }

    async fn apply(&self, provider: &Configured, change: Change<'_>) -> Applied {
        let context = provider.app_context(change.deadline(), change.cancelled.clone());
        let decision = claims::decision_of(change.planned_private);
        apply(&context, change.schema, change.prior, change.after, change.config, change.create, decision.as_ref())
            .await
    }

    async fn read(&self, provider: &Configured, schema: &ResourceSchema, current: &Value) -> Diagnosed<Value> {
        read(&provider.app_context(DEFAULT_TIMEOUT, provider.stopped.clone()), schema, current).await
    }

    async fn import(&self, provider: &Configured, schema: &ResourceSchema, id: &str) -> Diagnosed<Value> {
        import(&provider.app_context(DEFAULT_TIMEOUT, provider.stopped.clone()), schema, id).await
    }
}
