//! `atrium_domain`: the name a customer reaches her app at, with its DNS
//! records, its reverse-proxy route and its TLS certificate.
//!
//! A *platform subdomain* is one label under the provider's `platform_zone`
//! (`acme.apps.example.net`): the platform serves its DNS, so it goes live at
//! once. Any other name is the customer's *custom domain* (`erp.acme.com`):
//! its DNS is hers, so it goes live only once she has published a
//! verification TXT record that proves she controls it.

use std::net::IpAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::app_instance::AppInstanceId;
use super::timeouts::Timeouts;
use crate::model::attribute::{AttributePath, ValidationError};

/// A domain's natural key: its full host name, lowercase, without the trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hostname(String);

impl Hostname {
    /// Checks RFC 1123 host name rules: 2 to 127 labels of 1 to 63 lowercase
    /// letters, digits and inner hyphens, 253 characters at most, and a last
    /// label that is not all digits (so an IP address is not a host name).
    pub fn parse(text: &str) -> Result<Hostname, String> {
        let hint = "use a full lowercase host name such as \"acme.apps.example.net\" or \"erp.acme.com\"";
        if text.ends_with('.') {
            return Err(format!("{text:?} ends with a dot: leave it out; {hint}"));
        }
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!("{text:?} has uppercase letters: write it as {:?}", text.to_ascii_lowercase()));
        }
        let labels: Vec<&str> = text.split('.').collect();
        let label_ok = |label: &&str| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        let top_level_ok = labels.last().is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()));
        if text.len() <= 253 && labels.len() >= 2 && labels.iter().all(label_ok) && top_level_ok {
            Ok(Hostname(text.to_owned()))
        } else {
            Err(format!("{text:?} is not a valid host name: {hint}"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The absolute DNS form, with the trailing dot: `acme.apps.example.net.`.
    pub fn fqdn(&self) -> String {
        format!("{}.", self.0)
    }
}

impl std::fmt::Display for Hostname {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whose DNS serves a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainKind {
    /// One label under the platform zone: records in our DNS, live at once.
    Platform,
    /// The customer's own name: live once its verification TXT record resolves.
    Custom,
}

impl DomainKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DomainKind::Platform => "platform",
            DomainKind::Custom => "custom",
        }
    }

    pub fn parse(text: &str) -> Option<DomainKind> {
        [DomainKind::Platform, DomainKind::Custom].into_iter().find(|k| k.as_str() == text)
    }
}

/// The platform zone without its trailing dot, e.g. `apps.example.net`.
pub fn zone_name(platform_zone: &str) -> &str {
    platform_zone.trim_end_matches('.')
}

/// Decides whether `hostname` is a platform subdomain or a custom domain.
/// Names that look meant for the platform but do not fit it are errors: the
/// zone itself, a name two labels deep, and a name beside the zone under its
/// parent domain (`acme.example.net` when the zone is `apps.example.net`).
pub fn classify(hostname: &Hostname, platform_zone: Option<&str>) -> Result<DomainKind, String> {
    let Some(zone) = platform_zone.map(zone_name) else { return Ok(DomainKind::Custom) };
    let name = hostname.as_str();
    let example = format!("\"acme.{zone}\"");
    if name == zone {
        return Err(format!("{name} is the platform zone itself: use one label under it, e.g. {example}"));
    }
    if let Some(prefix) = name.strip_suffix(&format!(".{zone}")) {
        return if prefix.contains('.') {
            Err(format!(
                "{name} is more than one label under the platform zone {zone}: platform subdomains are one label deep, e.g. {example}"
            ))
        } else {
            Ok(DomainKind::Platform)
        };
    }
    if let Some((_, parent)) = zone.split_once('.')
        && parent.contains('.')
        && (name == parent || name.ends_with(&format!(".{parent}")))
    {
        return Err(format!(
            "{name} is in the platform's domain {parent} but outside the platform zone {zone}: use a platform subdomain such as {example}, or a domain of the customer's own"
        ));
    }
    Ok(DomainKind::Custom)
}

/// `acme` (HTTPS with a certificate from the ACME CA) or `none` (plain HTTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Acme,
    None,
}

impl TlsMode {
    pub fn parse(text: &str) -> Result<TlsMode, String> {
        match text {
            "acme" => Ok(TlsMode::Acme),
            "none" => Ok(TlsMode::None),
            other => Err(format!(
                "{other:?} is not a TLS mode: use \"acme\" (HTTPS with a certificate from the ACME CA) or \"none\" (plain HTTP)"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Acme => "acme",
            TlsMode::None => "none",
        }
    }
}

/// Whether a domain serves its app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DomainStatus {
    /// A custom domain whose verification TXT record does not resolve yet: no route.
    PendingVerification,
    Active,
}

impl DomainStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DomainStatus::PendingVerification => "pending_verification",
            DomainStatus::Active => "active",
        }
    }

    pub fn parse(text: &str) -> Option<DomainStatus> {
        [DomainStatus::PendingVerification, DomainStatus::Active].into_iter().find(|s| s.as_str() == text)
    }
}

/// A DNS record the platform keeps for a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsRecordDocument {
    /// The record's absolute name, e.g. `acme.apps.example.net.`.
    pub name: String,
    /// `A` (the target's public address is an IP address) or `CNAME` (it is a host name).
    #[serde(rename = "type")]
    pub record_type: String,
    /// The address or name the record points at.
    pub content: String,
}

/// The TXT record a customer publishes to prove she controls her domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationDocument {
    /// Where to publish it, e.g. `_atrium-verification.erp.acme.com`.
    pub name: String,
    /// Always `TXT`.
    #[serde(rename = "type")]
    pub record_type: String,
    /// The exact text of the record.
    pub value: String,
}

/// The verification record for a tenant's custom domain. Derived from the
/// tenant and the name, so it is known at plan time and another tenant's
/// record never verifies this one; it proves nothing but control of the
/// name's DNS, so it need not be secret.
pub fn verification_for(tenant: &str, hostname: &Hostname) -> VerificationDocument {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("atrium-verification:{tenant}:{hostname}").as_bytes());
    let token: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    VerificationDocument {
        name: format!("_atrium-verification.{hostname}"),
        record_type: "TXT".to_owned(),
        value: format!("atrium-verification={token}"),
    }
}

/// The record pointing a platform subdomain at its target's public address.
pub fn platform_record(hostname: &Hostname, public_address: &str) -> DnsRecordDocument {
    let address = public_address.trim_end_matches('.');
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => {
            DnsRecordDocument { name: hostname.fqdn(), record_type: "A".into(), content: address.to_owned() }
        }
        Ok(IpAddr::V6(_)) => {
            DnsRecordDocument { name: hostname.fqdn(), record_type: "AAAA".into(), content: address.to_owned() }
        }
        Err(_) => {
            DnsRecordDocument { name: hostname.fqdn(), record_type: "CNAME".into(), content: format!("{address}.") }
        }
    }
}

/// A domain that serves an app instance: DNS records, a reverse-proxy route and a certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainDocument {
    /// The app instance the domain serves (`atrium_app_instance.<name>.id`, `tenant/name`). Moving a
    /// domain to another instance of the same tenant updates its route in place.
    pub app_instance_id: String,
    /// The full host name: a platform subdomain, one label under the provider's `platform_zone`
    /// (`acme.apps.example.net`, live at once), or the customer's own domain (`erp.acme.com`, live once
    /// its `verification` TXT record resolves). Changing it replaces the domain.
    #[schemars(extend("x-atrium-forces-replacement" = true))]
    pub hostname: String,
    /// `acme` (default): HTTPS with a certificate the reverse proxy obtains from the ACME CA; `none`:
    /// plain HTTP.
    #[serde(default)]
    #[schemars(extend("x-atrium-defaulted" = true))]
    pub tls: Option<String>,
    /// Deadlines for create (including the certificate), update and delete.
    #[serde(default)]
    pub timeouts: Option<Timeouts>,
    /// The domain's id: its host name.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub id: Option<String>,
    /// The absolute DNS name, with the trailing dot.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub fqdn: Option<String>,
    /// The records the platform keeps in its zone for this domain (none for a custom domain, whose DNS is
    /// the customer's), as they are in DNS.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub dns_records: Option<Vec<DnsRecordDocument>>,
    /// For a custom domain: the TXT record the customer must publish before the domain goes live.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub verification: Option<VerificationDocument>,
    /// `active` when the route serves the app; `pending_verification` while a custom domain's
    /// verification record does not resolve (apply again once it is published); `drifted` when the route
    /// or a record was changed out of band (the next apply repairs it); `renewal_due` when the platform
    /// zone's wildcard certificate serving it has less than a third of its life left (the next apply
    /// renews it).
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub status: Option<String>,
    /// When the certificate served for the domain expires (RFC 3339, UTC); null with `tls = "none"` or
    /// while the domain is pending.
    #[serde(default)]
    #[schemars(extend("readOnly" = true))]
    pub certificate_expires_at: Option<String>,
}

/// What the engine knows about the platform when it validates a domain.
pub struct DomainContext<'a> {
    /// `None` before the provider is configured: zone checks wait for the plan.
    pub platform_zone: Option<Option<&'a str>>,
}

/// The attributes as far as they are known (validation at plan time).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DomainDraft {
    #[serde(default)]
    pub app_instance_id: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub tls: Option<String>,
    #[serde(default)]
    pub timeouts: Option<Timeouts>,
}

impl DomainDraft {
    /// Every problem with the known attributes, each naming its attribute.
    pub fn validate(&self, context: &DomainContext<'_>) -> Vec<ValidationError> {
        let mut errors = Vec::new();
        if let Some(id) = &self.app_instance_id
            && let Err(detail) = AppInstanceId::parse(id)
        {
            errors.push(ValidationError::new(
                AttributePath::root("app_instance_id"),
                "Invalid app instance id",
                detail,
            ));
        }
        if let Some(text) = &self.hostname {
            let path = AttributePath::root("hostname");
            match Hostname::parse(text) {
                Err(detail) => errors.push(ValidationError::new(path, "Invalid hostname", detail)),
                Ok(hostname) => {
                    if let Some(zone) = context.platform_zone
                        && let Err(detail) = classify(&hostname, zone)
                    {
                        errors.push(ValidationError::new(path, "Hostname does not fit the platform zone", detail));
                    }
                }
            }
        }
        if let Some(tls) = &self.tls
            && let Err(detail) = TlsMode::parse(tls)
        {
            errors.push(ValidationError::new(AttributePath::root("tls"), "Invalid TLS mode", detail));
        }
        if let Some(timeouts) = &self.timeouts {
            errors.extend(timeouts.validate(&AttributePath::root("timeouts")));
        }
        errors
    }
}

/// A domain's desired state: fully known, validated, defaults filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSpec {
    pub hostname: Hostname,
    pub app_instance_id: AppInstanceId,
    pub tls: TlsMode,
}

impl DomainSpec {
    /// Validates a fully known document and fills the default TLS mode.
    pub fn from_document(
        document: &DomainDocument,
        platform_zone: Option<&str>,
    ) -> Result<DomainSpec, Vec<ValidationError>> {
        let draft = DomainDraft {
            app_instance_id: Some(document.app_instance_id.clone()),
            hostname: Some(document.hostname.clone()),
            tls: document.tls.clone(),
            timeouts: document.timeouts.clone(),
        };
        let errors = draft.validate(&DomainContext { platform_zone: Some(platform_zone) });
        if !errors.is_empty() {
            return Err(errors);
        }
        let invalid = |attribute: &str, summary: &str, detail: String| {
            vec![ValidationError::new(AttributePath::root(attribute), summary, detail)]
        };
        Ok(DomainSpec {
            hostname: Hostname::parse(&document.hostname).map_err(|d| invalid("hostname", "Invalid hostname", d))?,
            app_instance_id: AppInstanceId::parse(&document.app_instance_id)
                .map_err(|d| invalid("app_instance_id", "Invalid app instance id", d))?,
            tls: TlsMode::parse(document.tls.as_deref().unwrap_or("acme"))
                .map_err(|d| invalid("tls", "Invalid TLS mode", d))?,
        })
    }
}

/// A domain as the registry records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRecord {
    pub spec: DomainSpec,
    pub kind: DomainKind,
    /// The target whose reverse proxy holds the route (the app instance's target when last applied).
    pub target: String,
    pub status: DomainStatus,
    /// RFC 3339, from the served certificate; `None` without TLS or while pending.
    pub certificate_expires_at: Option<String>,
    pub owner: String,
    pub created_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_hostname(text: &str, zone: Option<&str>, expected: Result<DomainKind, &str>) {
        let result = Hostname::parse(text).and_then(|hostname| classify(&hostname, zone));
        match (&result, &expected) {
            (Ok(kind), Ok(wanted)) => assert_eq!(kind, wanted, "{text}"),
            (Err(detail), Err(fragment)) => assert!(detail.contains(fragment), "{text}: {detail}"),
            _ => panic!("{text} under {zone:?}: got {result:?}, wanted {expected:?}"),
        }
    }

    #[test]
    fn hostnames_are_platform_subdomains_custom_domains_or_clear_errors() {
        let zone = Some("apps.example.net");
        check_hostname("acme.apps.example.net", zone, Ok(DomainKind::Platform));
        check_hostname("acme.apps.example.net", Some("apps.example.net."), Ok(DomainKind::Platform));
        check_hostname("erp.acme.com", zone, Ok(DomainKind::Custom));
        check_hostname("erp.acme.com", None, Ok(DomainKind::Custom));
        check_hostname("x-1.acme.co.uk", zone, Ok(DomainKind::Custom));
        check_hostname("apps.example.net", zone, Err("the platform zone itself"));
        check_hostname("a.b.apps.example.net", zone, Err("more than one label"));
        check_hostname("acme.example.net", zone, Err("outside the platform zone apps.example.net"));
        check_hostname("example.net", zone, Err("outside the platform zone"));
        check_hostname("Acme.com", zone, Err("\"acme.com\""));
        check_hostname("acme.com.", zone, Err("ends with a dot"));
        check_hostname("localhost", zone, Err("not a valid host name"));
        check_hostname("10.0.0.1", zone, Err("not a valid host name"));
        check_hostname("-acme.com", zone, Err("not a valid host name"));
        check_hostname("ac_me.com", zone, Err("not a valid host name"));
        check_hostname(&format!("{}.com", "a".repeat(64)), zone, Err("not a valid host name"));
    }

    #[test]
    fn verification_records_are_stable_and_differ_per_tenant() {
        let hostname = Hostname::parse("erp.acme.com").unwrap();
        let first = verification_for("acme", &hostname);
        assert_eq!(first, verification_for("acme", &hostname));
        assert_ne!(first.value, verification_for("other", &hostname).value);
        assert_eq!(first.name, "_atrium-verification.erp.acme.com");
        assert!(first.value.starts_with("atrium-verification=") && first.value.len() == 20 + 32);
    }

    #[test]
    fn platform_records_are_a_aaaa_or_cname_by_public_address() {
        let hostname = Hostname::parse("acme.apps.example.net").unwrap();
        let kinds: Vec<(String, String)> =
            ["203.0.113.7", "2001:db8::7", "ingress.example.net", "ingress.example.net."]
                .iter()
                .map(|address| {
                    let record = platform_record(&hostname, address);
                    (record.record_type, record.content)
                })
                .collect();
        assert_eq!(
            kinds,
            [
                ("A".into(), "203.0.113.7".into()),
                ("AAAA".into(), "2001:db8::7".into()),
                ("CNAME".into(), "ingress.example.net.".into()),
                ("CNAME".into(), "ingress.example.net.".into()),
            ]
        );
    }

    #[test]
    fn domain_validation_names_the_attribute() {
        let context = DomainContext { platform_zone: Some(Some("apps.example.net")) };
        let check = |json: serde_json::Value, expected: &[&str]| {
            let draft: DomainDraft = serde_json::from_value(json.clone()).unwrap();
            let paths: Vec<String> = draft.validate(&context).iter().map(|e| e.attribute.to_string()).collect();
            assert_eq!(paths, expected, "{json}");
        };
        check(serde_json::json!({"app_instance_id": "acme/web", "hostname": "acme.apps.example.net"}), &[]);
        check(serde_json::json!({"app_instance_id": "acme"}), &["app_instance_id"]);
        check(serde_json::json!({"hostname": "a.b.apps.example.net"}), &["hostname"]);
        check(serde_json::json!({"tls": "letsencrypt"}), &["tls"]);
        check(serde_json::json!({"tls": "none", "hostname": "erp.acme.com"}), &[]);
    }
}
