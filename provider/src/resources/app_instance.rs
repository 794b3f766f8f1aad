//! `atrium_app_instance` between Terraform values and the engine.

use atrium_engine::apply::app_instance::{AppApplyError, AppContext};
use atrium_engine::catalog::Catalog;
use atrium_engine::model::TenantId;
use atrium_engine::model::app_instance::InstanceHealth;
use atrium_engine::model::app_instance::{
    AppInstanceDocument, AppInstanceDraft, AppInstanceId, AppInstanceRecord, Customizations,
};
use atrium_engine::model::attribute::AttributePath;
use atrium_engine::model::password::Password;
use atrium_engine::plan::app_instance::{InstanceContext, spec_from_document, validate_draft};
use atrium_engine::registry::Registry;

use super::PlannedChange;
use crate::diagnostics;
use crate::proto::tfplugin6 as pb;
use crate::schema::ResourceSchema;
use crate::value::{Number, Value};

/// The attributes that, when changed, replace the instance.
const REPLACING: [&str; 4] = ["tenant_id", "name", "app", "target"];
/// The attributes that, when changed, deploy a new generation of the app container.
const REDEPLOYING: [&str; 6] = ["channel", "version", "users", "resources", "customizations", "password_version"];

/// Validation before the provider is configured: only what needs no catalog or targets.
pub fn validate(config: &Value) -> Vec<pb::Diagnostic> {
    validate_with(config, &InstanceContext { catalog: None, targets: None })
}

fn validate_with(config: &Value, context: &InstanceContext<'_>) -> Vec<pb::Diagnostic> {
    let Some(known) = config.to_known_json() else { return Vec::new() };
    match serde_json::from_value::<AppInstanceDraft>(known) {
        Ok(draft) => validate_draft(&draft, context).iter().map(diagnostics::from_validation).collect(),
        Err(error) => vec![diagnostics::error("Invalid app instance configuration", error.to_string())],
    }
}

/// What planning needs from the configured provider.
pub struct PlanContext<'a> {
    pub catalog: &'a Catalog,
    pub targets: Vec<&'a str>,
    pub registry: &'a Registry,
    /// Snapshots of the registry, shared with refreshes: a plan of many
    /// instances reads the registry once per window, not once per instance.
    pub observations: &'a atrium_engine::observe::AppObservations,
}

/// Plans an instance: defaults (channel, version from the catalog), replacement
/// on identity changes, and a new deployment (unknown URL and time) when the
/// container must change or was changed out of band.
pub async fn plan(prior: &Value, proposed: &Value, config: &Value, context: &PlanContext<'_>) -> PlannedChange {
    if proposed.is_null() {
        return PlannedChange { planned_state: Value::Null, requires_replace: Vec::new(), diagnostics: Vec::new() };
    }
    let instance_context = InstanceContext { catalog: Some(context.catalog), targets: Some(context.targets.clone()) };
    let mut diagnostics = validate_with(config, &instance_context);
    if !diagnostics::has_errors(&diagnostics) {
        diagnostics.extend(check_quota(config, context).await);
    }
    if diagnostics::has_errors(&diagnostics) {
        return PlannedChange { planned_state: proposed.clone(), requires_replace: Vec::new(), diagnostics };
    }
    let mut planned = proposed.clone();
    // Write-only: Terraform accepts nothing but null here, and keeps it out of plan files.
    planned.set("admin_password", Value::Null);
    let channel = match config.get("channel") {
        Value::Null => Value::string("stable"),
        other => other.clone(),
    };
    planned.set("channel", channel.clone());
    if config.get("version").is_null() {
        let default = match (config.get("app").as_str(), channel.as_str()) {
            (Some(app), Some(channel)) => context
                .catalog
                .get(app)
                .and_then(|entry| entry.channel(channel))
                .map(|c| Value::string(c.default.clone()))
                .unwrap_or(Value::Unknown),
            _ => Value::Unknown,
        };
        planned.set("version", default);
    }
    if config.get("delete_data_on_destroy").is_null() {
        planned.set("delete_data_on_destroy", Value::Bool(false));
    }
    let (tenant, name) = (config.get("tenant_id"), config.get("name"));
    planned.set(
        "id",
        match (tenant.as_str(), name.as_str()) {
            (Some(tenant), Some(name)) => Value::string(format!("{tenant}/{name}")),
            _ => Value::Unknown,
        },
    );

    let mut requires_replace = Vec::new();
    if !prior.is_null() {
        for attribute in REPLACING {
            if prior.get(attribute) != planned.get(attribute) {
                requires_replace.push(AttributePath::root(attribute));
            }
        }
    }
    let creating = prior.is_null() || !requires_replace.is_empty();
    // A welcome email that failed is sent again, with a new password, by the next apply.
    let welcome_pending = prior.get("welcome_email_status").as_str() == Some("pending");
    // A suspended tenant's instances are meant to be stopped.
    let tenant_suspended = match config.get("tenant_id").as_str().and_then(|t| TenantId::parse(t).ok()) {
        Some(tenant) => matches!(
            context.observations.tenant(context.registry, &tenant).await,
            Ok(Some(record)) if record.status != atrium_engine::model::TenantStatus::Active
        ),
        None => false,
    };
    let expected_status = if tenant_suspended { "suspended" } else { "running" };
    // Running or suspended are both as applied: which one a refresh shows
    // follows the tenant, whose own apply stops and starts the containers.
    let as_applied = matches!(prior.get("status").as_str(), Some("running" | "suspended"));
    let redeploying = creating
        || welcome_pending
        || !as_applied
        || admin_password_changed(config, context).await
        || REDEPLOYING.iter().any(|attribute| prior.get(attribute) != planned.get(attribute));
    let version = planned.get("version").clone();
    // Deploying for a suspended tenant waits for the tenant to resume (maybe in
    // this very apply), so its outcome is only known then.
    planned.set(
        "status",
        match (tenant_suspended, redeploying) {
            (true, true) => Value::Unknown,
            (_, false) => prior.get("status").clone(),
            (false, true) => Value::string(expected_status),
        },
    );
    planned.set("version_deployed", version.clone());
    if creating {
        planned.set("previous_version", Value::Null);
    } else {
        let previous = match (prior.get("version_deployed"), &version) {
            (deployed @ Value::String(_), Value::String(_)) if deployed != &version => deployed.clone(),
            (_, Value::Unknown) => Value::Unknown,
            _ => prior.get("previous_version").clone(),
        };
        planned.set("previous_version", previous);
    }
    planned.set(
        "welcome_email_status",
        if creating || welcome_pending { Value::Unknown } else { prior.get("welcome_email_status").clone() },
    );
    if redeploying {
        planned.set("internal_url", Value::Unknown);
        planned.set("deployed_at", Value::Unknown);
    } else {
        planned.set("internal_url", prior.get("internal_url").clone());
        planned.set("deployed_at", prior.get("deployed_at").clone());
    }
    PlannedChange { planned_state: planned, requires_replace, diagnostics }
}

/// Whether the configured `admin_password` differs from the one the registry
/// holds a hash of: a write-only value is never in state, so only the
/// registry can tell that it changed.
async fn admin_password_changed(config: &Value, context: &PlanContext<'_>) -> bool {
    let Some(password) = config.get("admin_password").as_str() else { return false };
    let (tenant, name) =
        (config.get("tenant_id").as_str().unwrap_or_default(), config.get("name").as_str().unwrap_or_default());
    let Ok(id) = AppInstanceId::parse(&format!("{tenant}/{name}")) else { return false };
    match context.observations.instance(context.registry, &id).await {
        Ok(Some(record)) => !Password::new(password).matches(&record.manager_password_hash),
        _ => false,
    }
}

/// `users` ≤ the tenant's quota, when both are known at plan time: a
/// warning, because the same apply may raise the quota (the tenant is applied
/// first), and a check of the desired state must never block a destroy; the
/// deployment refuses it when it is still true then.
async fn check_quota(config: &Value, context: &PlanContext<'_>) -> Vec<pb::Diagnostic> {
    let (Some(tenant), Value::Number(users)) = (config.get("tenant_id").as_str(), config.get("users")) else {
        return Vec::new();
    };
    let Ok(tenant_id) = TenantId::parse(tenant) else { return Vec::new() };
    let users = match users {
        Number::Int(n) => *n as f64,
        Number::Float(f) => *f,
        Number::Big(_) => f64::MAX,
    };
    match context.observations.tenant(context.registry, &tenant_id).await {
        Ok(Some(record)) if users > f64::from(record.spec.user_quota) => {
            let mut warning = diagnostics::warning(
                "More users than the tenant's quota",
                format!(
                    "tenant {tenant} has a user quota of {}; lower users to at most {} or raise the tenant's user_quota. Applying this change will fail unless the same apply raises the quota first.",
                    record.spec.user_quota, record.spec.user_quota
                ),
            );
            warning.attribute = Some(diagnostics::to_proto_path(&AttributePath::root("users")));
            vec![warning]
        }
        _ => Vec::new(),
    }
}

fn document_from(value: &Value) -> Result<AppInstanceDocument, pb::Diagnostic> {
    serde_json::from_value(value.to_known_json().unwrap_or_default()).map_err(|error| {
        diagnostics::error(
            "App instance values are incomplete",
            format!("{error}. This is a bug in the provider; please report it."),
        )
    })
}

/// The state of a recorded instance; configuration-only values come from `current`.
pub fn state_from_record(
    record: &AppInstanceRecord,
    health: InstanceHealth,
    current: &Value,
    schema: &ResourceSchema,
) -> Result<Value, pb::Diagnostic> {
    let spec = &record.spec;
    let recorded_customizations = Customizations {
        environment: Some(spec.environment.clone()).filter(|m| !m.is_empty()),
        volumes: Some(spec.extra_volumes.clone()).filter(|m| !m.is_empty()),
        files: Some(spec.files.clone()).filter(|m| !m.is_empty()),
        disable_health_check: None,
    };
    let current_customizations: Option<Customizations> =
        current.get("customizations").to_known_json().and_then(|json| serde_json::from_value(json).ok());
    // Keep the user's spelling (e.g. an empty map) when it means the same thing.
    let customizations = match current_customizations {
        Some(current)
            if current.environment.clone().unwrap_or_default() == spec.environment
                && current.volumes.clone().unwrap_or_default() == spec.extra_volumes
                && current.files.clone().unwrap_or_default() == spec.files =>
        {
            Some(current)
        }
        _ if recorded_customizations == Customizations::default() => None,
        _ => Some(recorded_customizations),
    };
    let document = AppInstanceDocument {
        tenant_id: spec.id.tenant_id.to_string(),
        name: spec.id.name.clone(),
        app: spec.app.clone(),
        channel: Some(spec.channel.clone()),
        version: Some(spec.version.clone()),
        target: spec.target.clone(),
        users: spec.users,
        resources: spec.resources.clone(),
        customizations,
        admin_password: None,
        // Keep the user's spelling: unset and 0 mean the same.
        password_version: match current.get("password_version") {
            Value::Null if spec.password_version == 0 => None,
            _ => Some(spec.password_version),
        },
        delete_data_on_destroy: Some(spec.delete_data_on_destroy),
        timeouts: current.get("timeouts").to_known_json().and_then(|json| serde_json::from_value(json).ok()),
        id: Some(spec.id.to_string()),
        status: Some(health.as_str().to_owned()),
        internal_url: record.published_port.map(|port| format!("http://127.0.0.1:{port}")),
        version_deployed: Some(spec.version.clone()),
        previous_version: record.previous_version.clone(),
        deployed_at: Some(record.deployed_at.clone()),
        welcome_email_status: Some(record.welcome.as_str().to_owned()),
    };
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
pub async fn apply(
    context: &AppContext<'_>,
    schema: &ResourceSchema,
    prior: &Value,
    planned: &Value,
    config: &Value,
    create: Option<&atrium_engine::model::ownership::CreateToken>,
) -> Result<(Value, Vec<pb::Diagnostic>), Vec<pb::Diagnostic>> {
    if planned.is_null() {
        let id = instance_id(prior)?;
        context.destroy(&id).await.map_err(|error| vec![apply_error(&error)])?;
        return Ok((Value::Null, Vec::new()));
    }
    let mut document = document_from(planned).map_err(|d| vec![d])?;
    // The write-only password is only in the configuration, never in the plan.
    document.admin_password = config.get("admin_password").as_str().map(str::to_owned);
    let targets = context.targets.names();
    let instance_context = InstanceContext { catalog: Some(context.catalog), targets: Some(targets) };
    let spec = spec_from_document(&document, &instance_context)
        .map_err(|errors| errors.iter().map(diagnostics::from_validation).collect::<Vec<_>>())?;
    let deployment = context.deploy(&spec, create).await.map_err(|error| vec![apply_error(&error)])?;
    let record = deployment.record;
    tracing::info!(instance = %spec.id, version = %spec.version, generation = record.generation, "app instance deployed");
    let warnings = deployment
        .welcome_warning
        .map(|detail| vec![diagnostics::warning("Welcome email not sent", detail)])
        .unwrap_or_default();
    let state = state_from_record(&record, InstanceHealth::Running, planned, schema).map_err(|d| vec![d])?;
    Ok((state, warnings))
}

/// Refreshes an instance from the registry and its target; null when it no longer exists.
pub async fn read(
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
        Some((record, health)) => state_from_record(&record, health, current, schema).map_err(|d| vec![d]),
    }
}

/// Imports an instance by `tenant/name`.
pub async fn import(context: &AppContext<'_>, schema: &ResourceSchema, id: &str) -> Result<Value, Vec<pb::Diagnostic>> {
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
    state_from_record(&record, health, &Value::Null, schema).map_err(|d| vec![d])
}
