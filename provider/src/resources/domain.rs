//! `atrium_domain` between Terraform values and the engine.

use atrium_engine::apply::domain::{DomainApplyContext, DomainApplyError, ObservedDomain, domain_document};
use atrium_engine::apply::domain_planned::apply_planned;
use atrium_engine::model::attribute::AttributePath;
use atrium_engine::model::domain::{DnsRecordDocument, DomainDocument, DomainRecord, DomainSpec, Hostname};

use atrium_engine::plan::domain::{DomainDecision, plan_domain};

use atrium_engine::model::timeouts::DEFAULT_TIMEOUT;

use super::{Applied, Change, Diagnosed, PlannedChange, Resource};
use crate::claims;
use crate::configured::Configured;
use crate::diagnostics;
use crate::proto::tfplugin6 as pb;
use crate::schema::ResourceSchema;
use crate::value::Value;

/// Validation before the provider is configured: the platform zone is not known yet.
fn validate(config: &Value) -> Vec<pb::Diagnostic> {
    let Some(known) = config.to_known_json() else { return Vec::new() };
    atrium_engine::plan::validate_known(atrium_engine::model::ownership::ObjectKind::Domain, known)
        .iter()
        .map(diagnostics::from_setup)
        .collect()
}

/// Plans a domain: the engine's planner on the configuration as a draft,
/// with what the engine observes for its host name and instance.
async fn plan(
    prior: &Value,
    proposed: &Value,
    config: &Value,
    context: &DomainApplyContext<'_>,
    schema: &ResourceSchema,
) -> PlannedChange {
    if proposed.is_null() {
        return PlannedChange::only(Value::Null, Vec::new());
    }
    let (prior_draft, config_draft) = super::drafts(prior, config);
    let facts = context.plan_facts(&config_draft).await;
    let plan = plan_domain(prior_draft.as_ref(), Some(&config_draft), &facts);
    super::planned_change(proposed, plan, schema, Vec::new())
}

fn document_from(value: &Value) -> Result<DomainDocument, pb::Diagnostic> {
    serde_json::from_value(value.to_known_json().unwrap_or_default()).map_err(|error| {
        diagnostics::error(
            "Domain values are incomplete",
            format!("{error}. This is a bug in the provider; please report it."),
        )
    })
}

/// The state of a domain; configuration-only values (timeouts) come from `current`.
fn state_of(
    record: &DomainRecord,
    dns_records: &[DnsRecordDocument],
    status: &str,
    certificate_expires_at: Option<String>,
    current: &Value,
    schema: &ResourceSchema,
) -> Result<Value, pb::Diagnostic> {
    let timeouts = current.get("timeouts").to_known_json().and_then(|json| serde_json::from_value(json).ok());
    let document = domain_document(record, dns_records, status, certificate_expires_at, timeouts);
    let json = serde_json::to_value(document).unwrap_or_default();
    Value::from_json(&json, &schema.value_type).map_err(|error| {
        diagnostics::error("Cannot encode the domain's state", format!("{error}. This is a bug in the provider."))
    })
}

fn apply_error(error: &DomainApplyError) -> pb::Diagnostic {
    if let DomainApplyError::Claim(claim) = error {
        return crate::claims::refusal_diagnostic(atrium_engine::model::ownership::ObjectKind::Domain, claim);
    }
    let mut detail = diagnostics::error_chain(error);
    match error.cause() {
        DomainApplyError::CertificateTimeout { hostname, .. } => detail.push_str(&format!(
            ". Check that {hostname} resolves to the reverse proxy and that the ACME CA can reach it over HTTP on port 80; then apply again."
        )),
        DomainApplyError::AppInstanceMissing { .. } => {
            detail.push_str(". Create the app instance first (reference atrium_app_instance.<name>.id).")
        }
        _ if error.is_retryable() => detail.push_str(". Run terraform apply again."),
        _ => {}
    }
    let mut diagnostic = diagnostics::error("Domain change failed", detail);
    let attribute = match error.cause() {
        DomainApplyError::HostnameTaken { .. } | DomainApplyError::Invalid { .. } => Some("hostname"),
        DomainApplyError::AppInstanceMissing { .. } | DomainApplyError::AppInstanceNotServing { .. } => {
            Some("app_instance_id")
        }
        _ => None,
    };
    if let Some(attribute) = attribute {
        diagnostic.attribute = Some(diagnostics::to_proto_path(&AttributePath::root(attribute)));
    }
    diagnostic
}

/// Applies a planned change; returns the new state (null after destroy) and warnings.
async fn apply(
    context: &DomainApplyContext<'_>,
    apps: &atrium_engine::apply::app_instance::AppContext<'_>,
    schema: &ResourceSchema,
    prior: &Value,
    planned: &Value,
    create: Option<&atrium_engine::model::ownership::CreateToken>,
    decision: Option<&DomainDecision>,
) -> Result<(Value, Vec<pb::Diagnostic>), Vec<pb::Diagnostic>> {
    let (hostname, desired) = if planned.is_null() {
        let hostname = Hostname::parse(prior.get("hostname").as_str().unwrap_or_default())
            .map_err(|detail| vec![diagnostics::error("Invalid domain in state", detail)])?;
        (hostname, None)
    } else {
        let document = document_from(planned).map_err(|d| vec![d])?;
        let spec = DomainSpec::from_document(&document, context.platform_zone)
            .map_err(|errors| errors.iter().map(diagnostics::from_validation).collect::<Vec<_>>())?;
        (spec.hostname.clone(), Some(spec))
    };
    let timeouts = planned.get("timeouts").to_known_json().and_then(|json| serde_json::from_value(json).ok());
    let applied = apply_planned(context, apps, &hostname, desired.as_ref(), decision, create, timeouts)
        .await
        .map_err(|error| vec![apply_error(&error)])?;
    let warnings = applied.warnings.iter().map(diagnostics::warning_from_validation).collect();
    let state = match applied.document {
        None => Value::Null,
        Some(document) => {
            let json = serde_json::to_value(document).unwrap_or_default();
            Value::from_json(&json, &schema.value_type).map_err(|error| {
                vec![diagnostics::error(
                    "Cannot encode the domain's state",
                    format!("{error}. This is a bug in the provider."),
                )]
            })?
        }
    };
    Ok((state, warnings))
}

fn observed_state(
    observed: &ObservedDomain,
    current: &Value,
    schema: &ResourceSchema,
) -> Result<Value, pb::Diagnostic> {
    state_of(
        &observed.record,
        &observed.dns_records,
        observed.status,
        observed.certificate_expires_at.clone(),
        current,
        schema,
    )
}

/// Refreshes a domain from the registry, DNS and the reverse proxy; null when it no longer exists.
async fn read(
    context: &DomainApplyContext<'_>,
    schema: &ResourceSchema,
    current: &Value,
) -> Result<Value, Vec<pb::Diagnostic>> {
    let hostname = Hostname::parse(current.get("hostname").as_str().unwrap_or_default())
        .map_err(|detail| vec![diagnostics::error("Invalid domain in state", detail)])?;
    let observed = context
        .observe(&hostname)
        .await
        .map_err(|error| vec![diagnostics::error("Cannot observe the domain", diagnostics::error_chain(&error))])?;
    match observed {
        None => Ok(Value::Null),
        Some(observed) => observed_state(&observed, current, schema).map_err(|d| vec![d]),
    }
}

/// Imports a domain by its host name.
async fn import(
    context: &DomainApplyContext<'_>,
    schema: &ResourceSchema,
    id: &str,
) -> Result<Value, Vec<pb::Diagnostic>> {
    let hostname = Hostname::parse(id).map_err(|detail| {
        vec![diagnostics::error(
            "Invalid import id",
            format!("{detail}. Import a domain by its host name, e.g. terraform import atrium_domain.erp erp.acme.com"),
        )]
    })?;
    let observed = context
        .observe(&hostname)
        .await
        .map_err(|error| vec![diagnostics::error("Cannot observe the domain", diagnostics::error_chain(&error))])?;
    let Some(observed) = observed else {
        return Err(vec![diagnostics::error(
            "Cannot import a domain that does not exist",
            format!(
                "the registry has no domain \"{hostname}\"; import takes the host name as shown in the domain's id"
            ),
        )]);
    };
    if !atrium_engine::model::ownership::Owner::from_stored(&observed.record.owner).is_terraform() {
        return Err(vec![diagnostics::error(
            "Domain is managed elsewhere",
            format!(
                "domain \"{hostname}\" is managed by the {} front door; Terraform does not take over its objects",
                observed.record.owner
            ),
        )]);
    }
    observed_state(&observed, &Value::Null, schema).map_err(|d| vec![d])
}

/// `atrium_domain`.
pub struct Domain;

#[async_trait::async_trait]
impl Resource for Domain {
    fn validate(&self, config: &Value) -> Vec<pb::Diagnostic> {
        validate(config)
    }

    async fn plan(&self, provider: Option<&Configured>, change: Change<'_>) -> PlannedChange {
        let Some(provider) = provider else { return super::unconfigured() };
        let context = provider.domain_context(change.deadline(), change.cancelled.clone());
        plan(change.prior, change.after, change.config, &context, change.schema).await
    }

    async fn apply(&self, provider: &Configured, change: Change<'_>) -> Applied {
        let deadline = change.deadline();
        let context = provider.domain_context(deadline, change.cancelled.clone());
        // A domain that goes live delivers its instance's waiting welcome email.
        let apps = provider.app_context(deadline, change.cancelled.clone());
        let decision = claims::decision_of(change.planned_private);
        apply(&context, &apps, change.schema, change.prior, change.after, change.create, decision.as_ref()).await
    }

    async fn read(&self, provider: &Configured, schema: &ResourceSchema, current: &Value) -> Diagnosed<Value> {
        read(&provider.domain_context(DEFAULT_TIMEOUT, provider.stopped.clone()), schema, current).await
    }

    async fn import(&self, provider: &Configured, schema: &ResourceSchema, id: &str) -> Diagnosed<Value> {
        import(&provider.domain_context(DEFAULT_TIMEOUT, provider.stopped.clone()), schema, id).await
    }
}
