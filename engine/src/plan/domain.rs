//! Planning domains: pure, from the configuration as a draft and the facts
//! observed for it (who holds the name, the instance's target and its
//! records, whether the customer's verification record resolves).

use serde_json::Value;

use crate::model::TenantId;
use crate::model::app_instance::AppInstanceId;
use crate::model::attribute::{AttributePath, ValidationError};
use crate::model::domain::{
    DnsRecordDocument, DomainContext, DomainDocument, DomainDraft, DomainKind, DomainRecord, DomainSpec, DomainStatus,
    Hostname, classify, verification_for,
};
use crate::model::markers;
use crate::plan::draft::{Draft, DraftPlan, Planned, marked_attributes, replaced};
use crate::plan::tenant::Action;
use crate::plan::text::{self, Field, ObjectChange, quoted};

/// The attributes whose change replaces a domain: the document's markers, read once.
static REPLACING: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| marked_attributes::<DomainDocument>(markers::FORCES_REPLACEMENT));

/// What a domain's plan reads besides its configuration, observed for the
/// host name and instance the configuration names (when known).
#[derive(Debug, Clone, Default)]
pub struct DomainFacts<'a> {
    pub platform_zone: Option<&'a str>,
    /// Whether the provider has a DNS server for platform subdomains.
    pub dns_configured: bool,
    /// The tenant whose domain has this host name in the registry now.
    pub holder: Option<TenantId>,
    /// The public address of the instance's target (what a custom domain points at).
    pub public_address: Option<String>,
    /// A platform subdomain's records for the instance's target when the
    /// instance is recorded (`Err`: why the target cannot serve domains).
    pub records: Option<Result<Vec<DnsRecordDocument>, String>>,
    /// Whether a custom domain's verification record resolves (`Err`: the lookup failed).
    pub verified: Option<Result<bool, String>>,
    /// Whether the instance's tenant is suspended.
    pub tenant_suspended: bool,
}

/// What apply carries out, decided by the plan: the status the registry
/// records (live, or waiting for the customer's verification record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DomainDecision {
    pub status: DomainStatus,
}

/// The plan of one domain (no decision while the status is unknown).
pub type DomainPlan = DraftPlan<DomainDecision>;

/// The host name and instance a configuration names, when known: what the facts are observed for.
pub fn named(config: &Draft) -> (Option<Hostname>, Option<AppInstanceId>) {
    let hostname = config.str("hostname").and_then(|h| Hostname::parse(h).ok());
    let instance = config.str("app_instance_id").and_then(|id| AppInstanceId::parse(id).ok());
    (hostname, instance)
}

/// What the customer must publish for a custom domain to go live, said exactly.
pub fn pending_warning(tenant: &str, hostname: &Hostname, public_address: Option<&str>) -> ValidationError {
    let verification = verification_for(tenant, hostname);
    let point = match public_address {
        Some(address) => format!(" and point {hostname} at {address} (an A record for an IP address, else a CNAME)"),
        None => String::new(),
    };
    ValidationError::new(
        AttributePath::root("hostname"),
        "Custom domain waiting for verification",
        format!(
            "{hostname} goes live once its owner publishes the TXT record {} with the value \"{}\"{point}. Run terraform apply again after publishing it.",
            verification.name, verification.value
        ),
    )
}

fn json(value: &impl serde::Serialize) -> Planned {
    Planned::Known(serde_json::to_value(value).unwrap_or(Value::Null))
}

/// Plans a domain: the default TLS, replacement on a new host name, the
/// records and verification it will have, whether a custom domain can go
/// live now, and whether its certificate stays.
pub fn plan_domain(prior: Option<&Draft>, config: Option<&Draft>, facts: &DomainFacts<'_>) -> DomainPlan {
    let Some(config) = config else { return DomainPlan::default() };
    let refuse = DomainPlan::refused;
    let draft: DomainDraft = match config.typed("domain") {
        Ok(draft) => draft,
        Err(refused) => return refused,
    };
    let errors = draft.validate(&DomainContext { platform_zone: Some(facts.platform_zone) });
    if !errors.is_empty() {
        return refuse(errors);
    }
    let mut attributes: Vec<(&'static str, Planned)> = Vec::new();
    let tls = match config.planned("tls") {
        Planned::Known(Value::Null) => Planned::string("acme"),
        tls => tls,
    };
    attributes.push(("tls", tls.clone()));
    let (hostname, instance_id) = named(config);
    attributes.push(("id", hostname.as_ref().map_or(Planned::Unknown, |h| Planned::string(h.to_string()))));
    attributes.push(("fqdn", hostname.as_ref().map_or(Planned::Unknown, |h| Planned::string(h.fqdn()))));
    let requires_replace = replaced(prior, config, &REPLACING);
    let creating = prior.is_none() || !requires_replace.is_empty();

    // Another tenant's name is refused at plan when both are known.
    if let (Some(hostname), Some(instance_id), Some(holder)) = (&hostname, &instance_id, &facts.holder)
        && *holder != instance_id.tenant_id
    {
        return refuse(vec![ValidationError::new(
            AttributePath::root("hostname"),
            "Hostname already in use",
            format!(
                "{hostname} is already a domain of tenant {holder}; choose another hostname (a host name serves one tenant)"
            ),
        )]);
    }
    let kind = hostname.as_ref().and_then(|h| classify(h, facts.platform_zone).ok());
    if kind == Some(DomainKind::Platform) && !facts.dns_configured {
        return refuse(vec![ValidationError::new(
            AttributePath::root("hostname"),
            "No DNS to create the record in",
            "a platform subdomain needs the provider's dns block (the PowerDNS API serving platform_zone); add it, or use a custom domain",
        )]);
    }
    // The instance's target decides the record's address; unknown while the instance is being created.
    let records = match (kind, &hostname, &facts.records) {
        (Some(DomainKind::Custom), _, _) => json(&Vec::<DnsRecordDocument>::new()),
        (Some(DomainKind::Platform), Some(_), Some(Ok(records))) => json(records),
        (Some(DomainKind::Platform), Some(_), Some(Err(reason))) => {
            return refuse(vec![ValidationError::new(
                AttributePath::root("app_instance_id"),
                "The app instance's target cannot serve domains",
                reason.clone(),
            )]);
        }
        _ => Planned::Unknown,
    };
    attributes.push(("dns_records", records.clone()));

    let mut warnings = Vec::new();
    let (recorded_status, verification) = match (kind, &hostname, &instance_id) {
        (Some(DomainKind::Platform), _, _) => (Some(DomainStatus::Active), Planned::Known(Value::Null)),
        (Some(DomainKind::Custom), Some(hostname), Some(instance_id)) => {
            let tenant = instance_id.tenant_id.as_str();
            let verified = match &facts.verified {
                Some(Ok(verified)) => *verified,
                Some(Err(reason)) => {
                    warnings.push(ValidationError::new(
                        AttributePath::root("hostname"),
                        "Cannot look the verification record up",
                        format!("{reason}; the domain stays pending for now."),
                    ));
                    false
                }
                None => false,
            };
            if !verified {
                warnings.push(pending_warning(tenant, hostname, facts.public_address.as_deref()));
            }
            let status = if verified { DomainStatus::Active } else { DomainStatus::PendingVerification };
            (Some(status), json(&verification_for(tenant, hostname)))
        }
        _ => (None, Planned::Unknown),
    };
    let prior_value = |attribute: &str| prior.and_then(|prior| prior.get(attribute)).cloned();
    let known_or_null = |value: Option<Value>| Planned::Known(value.unwrap_or(Value::Null));
    let same_as_prior = |attribute: &str, planned: &Planned| !planned.differs_from(prior_value(attribute).as_ref());
    // Active or suspended are both as applied when the route stays: which one
    // a refresh shows follows the tenant, whose own apply switches the route.
    let unchanged_route =
        !creating && same_as_prior("tls", &tls) && same_as_prior("app_instance_id", &config.planned("app_instance_id"));
    let prior_status = prior.and_then(|prior| prior.str("status"));
    let status = match (recorded_status, prior_status) {
        (Some(DomainStatus::Active), Some("active" | "suspended")) if unchanged_route => {
            known_or_null(prior_value("status"))
        }
        // A suspended tenant's live domains answer with the suspension page.
        (Some(DomainStatus::Active), _) if facts.tenant_suspended => Planned::Unknown,
        (Some(status), _) => Planned::string(status.as_str()),
        (None, _) => Planned::Unknown,
    };
    attributes.push(("status", status.clone()));
    attributes.push(("verification", verification));

    // The certificate is new whenever the route is (re)made; otherwise it stays.
    let serves_tls = tls == Planned::string("acme");
    let unchanged = unchanged_route && same_as_prior("status", &status) && same_as_prior("dns_records", &records);
    let live = |status: &Value| matches!(status.as_str(), Some("active" | "suspended"));
    let certificate = match &status {
        Planned::Known(status) if live(status) && serves_tls && unchanged => {
            known_or_null(prior_value("certificate_expires_at"))
        }
        Planned::Known(status) if live(status) && serves_tls => Planned::Unknown,
        Planned::Known(_) => Planned::Known(Value::Null),
        Planned::Unknown => Planned::Unknown,
    };
    attributes.push(("certificate_expires_at", certificate));
    let decision = recorded_status.map(|status| DomainDecision { status });
    DomainPlan { attributes, requires_replace, errors: Vec::new(), warnings, decision }
}

/// A domain's attributes as a plan shows them.
fn domain_fields(spec: &DomainSpec) -> Vec<Field> {
    vec![
        Field::replacing("hostname", quoted(spec.hostname.as_str())),
        Field::new("app_instance_id", quoted(&spec.app_instance_id.to_string())),
        Field::new("tls", quoted(spec.tls.as_str())),
    ]
}

/// A domain's change for people, from what is wanted and what the registry
/// records under its host name (the bulk front door's plan text).
pub fn domain_change(desired: Option<&DomainSpec>, observed: Option<&DomainRecord>) -> Option<ObjectChange> {
    let hostname = desired.map(|spec| &spec.hostname).or(observed.map(|record| &record.spec.hostname))?;
    let before = observed.map(|record| domain_fields(&record.spec));
    let after = desired.map(domain_fields);
    let mut change = text::compare("domain", hostname.as_str(), before.as_deref(), after.as_deref())?;
    // A custom domain waiting for its verification record is looked up again.
    if change.action == Action::NoOp
        && observed.is_some_and(|record| record.status == DomainStatus::PendingVerification)
    {
        change.action = Action::Update;
        change.reason = "waiting for its verification record, looked up again".to_owned();
    }
    Some(change)
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use serde_json::json;

    use super::*;
    use crate::model::domain::TlsMode;

    const ZONE: &str = "apps.example.net";
    const ZONE_HOST: &str = "acme.apps.example.net";

    fn record() -> DnsRecordDocument {
        DnsRecordDocument {
            name: "acme.apps.example.net.".into(),
            record_type: "A".into(),
            content: "192.0.2.10".into(),
        }
    }

    fn facts() -> DomainFacts<'static> {
        DomainFacts {
            platform_zone: Some(ZONE),
            dns_configured: true,
            public_address: Some("192.0.2.10".into()),
            records: Some(Ok(vec![record()])),
            ..DomainFacts::default()
        }
    }

    fn config(hostname: &str, changes: serde_json::Value, unknown: &[&str]) -> Draft {
        let mut config = json!({"app_instance_id": "acme/web", "hostname": hostname});
        for (key, value) in changes.as_object().unwrap() {
            config[key] = value.clone();
        }
        for attribute in unknown {
            config.as_object_mut().unwrap().remove(*attribute);
        }
        Draft::new(Some(config), unknown.iter().map(|u| u.to_string()))
    }

    fn platform_state(changes: serde_json::Value) -> Draft {
        let mut state = json!({"app_instance_id": "acme/web", "hostname": "acme.apps.example.net", "tls": "acme",
            "id": "acme.apps.example.net", "fqdn": "acme.apps.example.net.", "dns_records": [record()],
            "verification": null, "status": "active", "certificate_expires_at": "2027-03-01T00:00:00Z"});
        for (key, value) in changes.as_object().unwrap() {
            state[key] = value.clone();
        }
        Draft::new(Some(state), [])
    }

    #[test]
    fn every_kind_of_domain_change_is_planned_from_a_draft_and_facts() {
        let platform = "acme.apps.example.net";
        let custom = "erp.acme.com";
        let none = json!({});
        let verified = DomainFacts { verified: Some(Ok(true)), ..facts() };
        let unverified = DomainFacts { verified: Some(Ok(false)), ..facts() };
        let lookup_failed = DomainFacts { verified: Some(Err("the resolver timed out".into())), ..facts() };
        let held = DomainFacts { holder: Some(TenantId::parse("other").unwrap()), ..facts() };
        let no_dns = DomainFacts { dns_configured: false, ..facts() };
        let unservable = DomainFacts { records: Some(Err("target lyon has no public_address".into())), ..facts() };
        let unrecorded = DomainFacts { records: None, ..facts() };
        let suspended = DomainFacts { tenant_suspended: true, ..facts() };
        let plain = facts();
        let cases: Vec<(&str, Option<Draft>, Draft, &DomainFacts)> = vec![
            ("platform create", None, config(platform, none.clone(), &[]), &plain),
            ("instance being created", None, config(platform, none.clone(), &["app_instance_id"]), &unrecorded),
            ("platform no-op", Some(platform_state(none.clone())), config(platform, none.clone(), &[]), &plain),
            ("tls off", Some(platform_state(none.clone())), config(platform, json!({"tls": "none"}), &[]), &plain),
            (
                "new hostname",
                Some(platform_state(none.clone())),
                config("web.apps.example.net", none.clone(), &[]),
                &plain,
            ),
            (
                "unknown hostname",
                Some(platform_state(none.clone())),
                config(platform, none.clone(), &["hostname"]),
                &plain,
            ),
            ("custom verified", None, config(custom, none.clone(), &[]), &verified),
            ("custom pending", None, config(custom, none.clone(), &[]), &unverified),
            ("custom lookup failed", None, config(custom, none.clone(), &[]), &lookup_failed),
            ("suspended, new", None, config(platform, none.clone(), &[]), &suspended),
            (
                "suspended, same",
                Some(platform_state(json!({"status": "suspended"}))),
                config(platform, none.clone(), &[]),
                &suspended,
            ),
            ("held by another", None, config(platform, none.clone(), &[]), &held),
            ("no dns", None, config(platform, none.clone(), &[]), &no_dns),
            ("target cannot serve", None, config(platform, none.clone(), &[]), &unservable),
            ("bad tls", None, config(platform, json!({"tls": "maybe"}), &[]), &plain),
        ];
        let mut table = String::new();
        for (case, prior, config, facts) in &cases {
            let plan = plan_domain(prior.as_ref(), Some(config), facts);
            let attributes = ["status", "dns_records", "verification", "certificate_expires_at"];
            let row = crate::plan::draft::row(&plan, &attributes);
            let _ = writeln!(table, "{case}: decision={:?} {row}", plan.decision.map(|d| d.status.as_str()));
        }
        insta::assert_snapshot!(table, @r#"
        platform create: decision=Some("active") replace=[] status="active" dns_records=[1] verification=null certificate_expires_at=?
        instance being created: decision=Some("active") replace=[] status="active" dns_records=? verification=null certificate_expires_at=?
        platform no-op: decision=Some("active") replace=[] status="active" dns_records=[1] verification=null certificate_expires_at="2027-03-01T00:00:00Z"
        tls off: decision=Some("active") replace=[] status="active" dns_records=[1] verification=null certificate_expires_at=null
        new hostname: decision=Some("active") replace=["hostname"] status="active" dns_records=[1] verification=null certificate_expires_at=?
        unknown hostname: decision=None replace=["hostname"] status=? dns_records=? verification=? certificate_expires_at=?
        custom verified: decision=Some("active") replace=[] status="active" dns_records=[] verification={..} certificate_expires_at=?
        custom pending: decision=Some("pending_verification") replace=[] status="pending_verification" dns_records=[] verification={..} certificate_expires_at=null [warn hostname: Custom domain waiting for verification]
        custom lookup failed: decision=Some("pending_verification") replace=[] status="pending_verification" dns_records=[] verification={..} certificate_expires_at=null [warn hostname: Cannot look the verification record up] [warn hostname: Custom domain waiting for verification]
        suspended, new: decision=Some("active") replace=[] status=? dns_records=[1] verification=null certificate_expires_at=?
        suspended, same: decision=Some("active") replace=[] status="suspended" dns_records=[1] verification=null certificate_expires_at="2027-03-01T00:00:00Z"
        held by another: decision=None replace=[] status=- dns_records=- verification=- certificate_expires_at=- [error hostname: Hostname already in use]
        no dns: decision=None replace=[] status=- dns_records=- verification=- certificate_expires_at=- [error hostname: No DNS to create the record in]
        target cannot serve: decision=None replace=[] status=- dns_records=- verification=- certificate_expires_at=- [error app_instance_id: The app instance's target cannot serve domains]
        bad tls: decision=None replace=[] status=- dns_records=- verification=- certificate_expires_at=- [error tls: Invalid TLS mode]
        "#);
    }

    #[test]
    fn domain_changes_read_like_every_plan() {
        let spec = |hostname: &str, instance: &str, tls: TlsMode| DomainSpec {
            hostname: Hostname::parse(hostname).unwrap(),
            app_instance_id: AppInstanceId::parse(instance).unwrap(),
            tls,
        };
        let record = |spec: DomainSpec, kind: DomainKind, status: DomainStatus| DomainRecord {
            spec,
            kind,
            target: "lyon-onprem".into(),
            status,
            certificate_expires_at: None,
            owner: "cli".into(),
            created_at: "2026-11-23T10:00:00Z".into(),
        };
        let live = record(spec(ZONE_HOST, "acme/web", TlsMode::Acme), DomainKind::Platform, DomainStatus::Active);
        let pending = record(
            spec("erp.acme.com", "acme/erp", TlsMode::Acme),
            DomainKind::Custom,
            DomainStatus::PendingVerification,
        );
        let changes: Vec<ObjectChange> = [
            domain_change(Some(&spec("shop.apps.example.net", "acme/shop", TlsMode::Acme)), None),
            domain_change(Some(&spec(ZONE_HOST, "acme/web", TlsMode::Acme)), Some(&live)),
            domain_change(Some(&spec(ZONE_HOST, "acme/www", TlsMode::None)), Some(&live)),
            domain_change(Some(&spec("erp.acme.com", "acme/erp", TlsMode::Acme)), Some(&pending)),
            domain_change(Some(&spec("erp.acme.de", "acme/erp", TlsMode::Acme)), Some(&pending)),
            domain_change(None, Some(&live)),
        ]
        .into_iter()
        .flatten()
        .collect();
        insta::assert_snapshot!(text::render(&changes), @r#"
        + domain shop.apps.example.net (the domain does not exist)
        ~ domain acme.apps.example.net (app_instance_id, tls changed)
            app_instance_id: "acme/web" -> "acme/www"
            tls: "acme" -> "none"
        ~ domain erp.acme.com (waiting for its verification record, looked up again)
        -/+ domain erp.acme.de (changing hostname forces replacement)
            hostname: "erp.acme.com" -> "erp.acme.de" # forces replacement
        - domain acme.apps.example.net (the domain is no longer wanted)
        Plan: 1 to add, 2 to change, 1 to replace, 1 to destroy.
        "#);
    }
}
