//! `atrium_domain` between Terraform values and the engine.

use atrium_engine::apply::domain::{DomainApplyContext, DomainApplyError, ObservedDomain};
use atrium_engine::model::app_instance::AppInstanceId;
use atrium_engine::model::attribute::AttributePath;
use atrium_engine::model::domain::{
    DnsRecordDocument, DomainContext, DomainDocument, DomainDraft, DomainKind, DomainRecord, DomainSpec, DomainStatus,
    Hostname, classify, verification_for,
};

use super::PlannedChange;
use crate::diagnostics;
use crate::proto::tfplugin6 as pb;
use crate::schema::ResourceSchema;
use crate::value::Value;

/// Validation before the provider is configured: the platform zone is not known yet.
pub fn validate(config: &Value) -> Vec<pb::Diagnostic> {
    validate_with(config, &DomainContext { platform_zone: None })
}

fn validate_with(config: &Value, context: &DomainContext<'_>) -> Vec<pb::Diagnostic> {
    let Some(known) = config.to_known_json() else { return Vec::new() };
    match serde_json::from_value::<DomainDraft>(known) {
        Ok(draft) => draft.validate(context).iter().map(diagnostics::from_validation).collect(),
        Err(error) => vec![diagnostics::error("Invalid domain configuration", error.to_string())],
    }
}

fn records_value(records: &[DnsRecordDocument]) -> Value {
    Value::List(
        records
            .iter()
            .map(|record| {
                Value::object([
                    ("name", Value::string(record.name.clone())),
                    ("type", Value::string(record.record_type.clone())),
                    ("content", Value::string(record.content.clone())),
                ])
            })
            .collect(),
    )
}

fn verification_value(tenant: &str, hostname: &Hostname) -> Value {
    let verification = verification_for(tenant, hostname);
    Value::object([
        ("name", Value::string(verification.name)),
        ("type", Value::string(verification.record_type)),
        ("value", Value::string(verification.value)),
    ])
}

/// What the customer must publish, said exactly.
fn pending_warning(tenant: &str, hostname: &Hostname, public_address: Option<&str>) -> pb::Diagnostic {
    let verification = verification_for(tenant, hostname);
    let point = match public_address {
        Some(address) => format!(" and point {hostname} at {address} (an A record for an IP address, else a CNAME)"),
        None => String::new(),
    };
    let mut warning = diagnostics::warning(
        "Custom domain waiting for verification",
        format!(
            "{hostname} goes live once its owner publishes the TXT record {} with the value \"{}\"{point}. Run terraform apply again after publishing it.",
            verification.name, verification.value
        ),
    );
    warning.attribute = Some(diagnostics::to_proto_path(&AttributePath::root("hostname")));
    warning
}

/// Plans a domain: defaults, replacement on a new hostname, the records and
/// verification it will have, and whether a custom domain can go live now.
pub async fn plan(prior: &Value, proposed: &Value, config: &Value, context: &DomainApplyContext<'_>) -> PlannedChange {
    if proposed.is_null() {
        return PlannedChange { planned_state: Value::Null, requires_replace: Vec::new(), diagnostics: Vec::new() };
    }
    let mut diagnostics = validate_with(config, &DomainContext { platform_zone: Some(context.platform_zone) });
    if diagnostics::has_errors(&diagnostics) {
        return PlannedChange { planned_state: proposed.clone(), requires_replace: Vec::new(), diagnostics };
    }
    let mut planned = proposed.clone();
    if config.get("tls").is_null() {
        planned.set("tls", Value::string("acme"));
    }
    let hostname = config.get("hostname").as_str().and_then(|h| Hostname::parse(h).ok());
    let instance_id = config.get("app_instance_id").as_str().and_then(|id| AppInstanceId::parse(id).ok());
    planned.set("id", hostname.as_ref().map(|h| Value::string(h.to_string())).unwrap_or(Value::Unknown));
    planned.set("fqdn", hostname.as_ref().map(|h| Value::string(h.fqdn())).unwrap_or(Value::Unknown));

    let mut requires_replace = Vec::new();
    if !prior.is_null() && prior.get("hostname") != planned.get("hostname") {
        requires_replace.push(AttributePath::root("hostname"));
    }
    let creating = prior.is_null() || !requires_replace.is_empty();

    // Another tenant's name is refused at plan when both are known.
    if let (Some(hostname), Some(instance_id)) = (&hostname, &instance_id)
        && let Ok(Some(existing)) = context.registry.get_domain(hostname).await
        && existing.spec.app_instance_id.tenant_id != instance_id.tenant_id
    {
        diagnostics.push(diagnostics::attribute_error(
            &AttributePath::root("hostname"),
            "Hostname already in use",
            format!(
                "{hostname} is already a domain of tenant {}; choose another hostname (a host name serves one tenant)",
                existing.spec.app_instance_id.tenant_id
            ),
        ));
        return PlannedChange { planned_state: proposed.clone(), requires_replace, diagnostics };
    }

    let kind = hostname.as_ref().and_then(|h| classify(h, context.platform_zone).ok());
    if kind == Some(DomainKind::Platform) && context.dns.is_none() {
        diagnostics.push(diagnostics::attribute_error(
            &AttributePath::root("hostname"),
            "No DNS to create the record in",
            "a platform subdomain needs the provider's dns block (the PowerDNS API serving platform_zone); add it, or use a custom domain",
        ));
        return PlannedChange { planned_state: proposed.clone(), requires_replace, diagnostics };
    }
    // The instance's target decides the record's address; unknown while the instance is being created.
    let instance = match &instance_id {
        Some(id) => context.registry.get_app_instance(id).await.ok().flatten(),
        None => None,
    };
    let public_address = instance.as_ref().and_then(|i| context.targets.public_address(&i.spec.target).ok());
    let records = match (kind, &hostname, &instance) {
        (Some(DomainKind::Custom), _, _) => Value::List(Vec::new()),
        (Some(DomainKind::Platform), Some(hostname), Some(instance)) => {
            match context.desired_records(hostname, DomainKind::Platform, &instance.spec.target) {
                Ok(records) => records_value(&records),
                Err(error) => {
                    diagnostics.push(diagnostics::attribute_error(
                        &AttributePath::root("app_instance_id"),
                        "The app instance's target cannot serve domains",
                        diagnostics::error_chain(&error),
                    ));
                    return PlannedChange { planned_state: proposed.clone(), requires_replace, diagnostics };
                }
            }
        }
        _ => Value::Unknown,
    };
    planned.set("dns_records", records);

    let (status, verification) = match (kind, &hostname, &instance_id) {
        (Some(DomainKind::Platform), _, _) => (Value::string(DomainStatus::Active.as_str()), Value::Null),
        (Some(DomainKind::Custom), Some(hostname), Some(instance_id)) => {
            let tenant = instance_id.tenant_id.as_str();
            let verified = match context.verification_resolves(tenant, hostname).await {
                Ok(verified) => verified,
                Err(error) => {
                    diagnostics.push(diagnostics::warning(
                        "Cannot look the verification record up",
                        format!("{}; the domain stays pending for now.", diagnostics::error_chain(&error)),
                    ));
                    false
                }
            };
            if !verified {
                diagnostics.push(pending_warning(tenant, hostname, public_address));
            }
            let status = if verified { DomainStatus::Active } else { DomainStatus::PendingVerification };
            (Value::string(status.as_str()), verification_value(tenant, hostname))
        }
        _ => (Value::Unknown, Value::Unknown),
    };
    // A suspended tenant's live domains answer with the suspension page.
    let tenant_suspended = match &instance_id {
        Some(id) => context.tenant_suspended(&id.tenant_id).await,
        None => false,
    };
    // Active or suspended are both as applied when the route stays: which one
    // a refresh shows follows the tenant, whose own apply switches the route.
    let unchanged_route = !creating
        && prior.get("tls") == planned.get("tls")
        && prior.get("app_instance_id") == planned.get("app_instance_id");
    let status = match (status.as_str(), prior.get("status").as_str()) {
        (Some("active"), Some("active" | "suspended")) if unchanged_route => prior.get("status").clone(),
        (Some("active"), _) if tenant_suspended => Value::Unknown,
        _ => status,
    };
    planned.set("status", status.clone());
    planned.set("verification", verification);

    // The certificate is new whenever the route is (re)made; otherwise it stays.
    let serves_tls = planned.get("tls").as_str() == Some("acme");
    let unchanged = !creating
        && prior.get("status") == &status
        && prior.get("tls") == planned.get("tls")
        && prior.get("app_instance_id") == planned.get("app_instance_id")
        && prior.get("dns_records") == planned.get("dns_records");
    let certificate = match status.as_str() {
        Some("active" | "suspended") if serves_tls && unchanged => prior.get("certificate_expires_at").clone(),
        Some("active" | "suspended") if serves_tls => Value::Unknown,
        Some(_) => Value::Null,
        None => Value::Unknown,
    };
    planned.set("certificate_expires_at", certificate);
    PlannedChange { planned_state: planned, requires_replace, diagnostics }
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
    let spec = &record.spec;
    let tenant = spec.app_instance_id.tenant_id.as_str();
    let document = DomainDocument {
        app_instance_id: spec.app_instance_id.to_string(),
        hostname: spec.hostname.to_string(),
        tls: Some(spec.tls.as_str().to_owned()),
        timeouts: current.get("timeouts").to_known_json().and_then(|json| serde_json::from_value(json).ok()),
        id: Some(spec.hostname.to_string()),
        fqdn: Some(spec.hostname.fqdn()),
        dns_records: Some(dns_records.to_vec()),
        verification: (record.kind == DomainKind::Custom).then(|| verification_for(tenant, &spec.hostname)),
        status: Some(status.to_owned()),
        certificate_expires_at,
    };
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

/// Tells the app its addresses after one of its domains went live or away;
/// a failure is a warning (the domain itself serves), and the instance's
/// next deployment tells it again.
async fn announce_address(
    apps: &atrium_engine::apply::app_instance::AppContext<'_>,
    instance: &atrium_engine::model::app_instance::AppInstanceId,
) -> Option<pb::Diagnostic> {
    let error = apps.announce_address_of(instance).await.err()?;
    Some(diagnostics::warning(
        "The app was not told its public address",
        format!(
            "{}; its links and trusted host names may still name its old address. The next deployment of app instance {instance} tells it again",
            diagnostics::error_chain(&error)
        ),
    ))
}

/// Applies a planned change; returns the new state (null after destroy) and warnings.
pub async fn apply(
    context: &DomainApplyContext<'_>,
    apps: &atrium_engine::apply::app_instance::AppContext<'_>,
    schema: &ResourceSchema,
    prior: &Value,
    planned: &Value,
    create: Option<&atrium_engine::model::ownership::CreateToken>,
) -> Result<(Value, Vec<pb::Diagnostic>), Vec<pb::Diagnostic>> {
    if planned.is_null() {
        let hostname = Hostname::parse(prior.get("hostname").as_str().unwrap_or_default())
            .map_err(|detail| vec![diagnostics::error("Invalid domain in state", detail)])?;
        let served = context.registry.get_domain(&hostname).await.ok().flatten().map(|r| r.spec.app_instance_id);
        context.destroy(&hostname).await.map_err(|error| vec![apply_error(&error)])?;
        let warnings = match served {
            Some(instance) => announce_address(apps, &instance).await.into_iter().collect(),
            None => Vec::new(),
        };
        return Ok((Value::Null, warnings));
    }
    let document = document_from(planned).map_err(|d| vec![d])?;
    let spec = DomainSpec::from_document(&document, context.platform_zone)
        .map_err(|errors| errors.iter().map(diagnostics::from_validation).collect::<Vec<_>>())?;
    let tenant = spec.app_instance_id.tenant_id.to_string();
    // The plan decided the status; when it could not know it yet, decide now.
    let status = match planned.get("status").as_str().and_then(DomainStatus::parse) {
        Some(status) => status,
        None => match classify(&spec.hostname, context.platform_zone) {
            Ok(DomainKind::Custom) => {
                let verified = context.verification_resolves(&tenant, &spec.hostname).await.unwrap_or(false);
                if verified { DomainStatus::Active } else { DomainStatus::PendingVerification }
            }
            _ => DomainStatus::Active,
        },
    };
    let served_before =
        context.registry.get_domain(&spec.hostname).await.ok().flatten().map(|r| r.spec.app_instance_id);
    let record = context.apply(&spec, status, create).await.map_err(|error| vec![apply_error(&error)])?;
    tracing::info!(domain = %spec.hostname, status = record.status.as_str(), "domain applied");
    let records =
        context.desired_records(&spec.hostname, record.kind, &record.target).map_err(|e| vec![apply_error(&e)])?;
    let mut warnings = Vec::new();
    // The instance the domain left, if it moved, no longer has this name.
    if let Some(before) = served_before.filter(|before| *before != spec.app_instance_id) {
        warnings.extend(announce_address(apps, &before).await);
    }
    // Every apply: a name that went live, or stopped being live, changes its addresses.
    warnings.extend(announce_address(apps, &spec.app_instance_id).await);
    if record.status == DomainStatus::Active {
        let undelivered = match apps.deliver_waiting_welcome(&spec.app_instance_id).await {
            Ok(warning) => warning,
            Err(error) => Some(format!(
                "{}; the next terraform apply of the app instance sends it again",
                diagnostics::error_chain(&error)
            )),
        };
        if let Some(detail) = undelivered {
            warnings.push(diagnostics::warning("Welcome email not sent", detail));
        }
    }
    if record.status == DomainStatus::PendingVerification {
        let address = context.targets.public_address(&record.target).ok();
        warnings.push(pending_warning(&tenant, &spec.hostname, address));
    }
    let suspended =
        record.status == DomainStatus::Active && context.tenant_suspended(&spec.app_instance_id.tenant_id).await;
    let status = if suspended { "suspended" } else { record.status.as_str() };
    let state = state_of(&record, &records, status, record.certificate_expires_at.clone(), planned, schema)
        .map_err(|d| vec![d])?;
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
pub async fn read(
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
pub async fn import(
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
