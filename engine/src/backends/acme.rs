//! Certificates Atrium obtains itself, from an ACME CA (RFC 8555), by the
//! DNS-01 challenge written through the DNS role: the platform zone's
//! wildcard `*.<zone>`, which no reverse proxy can get by HTTP-01.
//!
//! One order is one fresh account (orders are rare: one per zone per
//! renewal, so nothing is gained by keeping account keys), one
//! `_acme-challenge` TXT record, removed again however the order ends, and a
//! new ECDSA key for the certificate (built by `instant-acme` with `rcgen`).

use std::path::PathBuf;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use time::OffsetDateTime;

use super::dns::{DnsError, DnsZones, RecordSet};
use super::ingress::PemCertificate;

/// The label on the challenge record set (where a tenant's name goes on others).
pub const CHALLENGE_LABEL: &str = "platform-certificate";
/// The challenge record's TTL: it lives for seconds.
const CHALLENGE_TTL: u32 = 60;

/// Where certificates are ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The CA's directory, e.g. `https://acme-v02.api.letsencrypt.org/directory`.
    pub directory_url: String,
    /// A PEM file of the root that signs the directory's own HTTPS
    /// certificate, for a CA not in the system's trust store (a test CA).
    pub trusted_roots_file: Option<PathBuf>,
    /// Where the CA sends expiry notices (`mailto:` is added).
    pub contact_email: Option<String>,
}

/// A certificate just issued, with its leaf's validity.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    pub pem: PemCertificate,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("cannot set up an ACME client trusting {file} (platform_certificate.trusted_roots_file)")]
    Roots {
        file: String,
        #[source]
        source: instant_acme::Error,
    },
    #[error("the ACME CA at {directory_url} failed to {operation}")]
    Protocol {
        directory_url: String,
        operation: &'static str,
        #[source]
        source: instant_acme::Error,
    },
    #[error("the ACME CA at {directory_url} offers no DNS-01 challenge for {name}")]
    NoDnsChallenge { directory_url: String, name: String },
    #[error(
        "the ACME CA at {directory_url} did not validate {name} (order {status}); is the zone's DNS server the one the CA asks?"
    )]
    NotValidated { directory_url: String, name: String, status: String },
    #[error("cannot write the DNS-01 challenge record {name}")]
    Dns {
        name: String,
        #[source]
        source: DnsError,
    },
    #[error("the certificate the ACME CA at {directory_url} issued cannot be read: {detail}")]
    Unreadable { directory_url: String, detail: String },
}

impl AcmeError {
    /// Whether the same order may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            AcmeError::Protocol { source, .. } => {
                !matches!(source, instant_acme::Error::Api(problem) if problem.status.is_some_and(|s| (400..500).contains(&s) && s != 429))
            }
            AcmeError::Dns { source, .. } => source.is_retryable(),
            AcmeError::NotValidated { .. } => true,
            AcmeError::Roots { .. } | AcmeError::NoDnsChallenge { .. } | AcmeError::Unreadable { .. } => false,
        }
    }
}

/// Orders `*.<zone>` (zone without the trailing dot), answering the DNS-01
/// challenge in `zone` through `dns`; waits at most `timeout` for the CA.
pub async fn order_wildcard(
    settings: &AcmeSettings,
    zone: &str,
    dns: &dyn DnsZones,
    timeout: Duration,
) -> Result<IssuedCertificate, AcmeError> {
    let zone = zone.trim_end_matches('.');
    let dns_zone = format!("{zone}.");
    let challenge_name = format!("_acme-challenge.{zone}.");
    let outcome = answer_and_finalize(settings, zone, &dns_zone, &challenge_name, dns, timeout).await;
    // The challenge record goes however the order ended.
    if let Err(error) = dns.remove(&dns_zone, &challenge_name, "TXT").await {
        tracing::warn!(record = %challenge_name, error = %super::error_chain(&error), "could not remove the ACME challenge record");
    }
    outcome
}

async fn answer_and_finalize(
    settings: &AcmeSettings,
    zone: &str,
    dns_zone: &str,
    challenge_name: &str,
    dns: &dyn DnsZones,
    timeout: Duration,
) -> Result<IssuedCertificate, AcmeError> {
    let directory_url = settings.directory_url.clone();
    let protocol = |operation: &'static str| {
        let directory_url = directory_url.clone();
        move |source| AcmeError::Protocol { directory_url, operation, source }
    };
    let builder = match &settings.trusted_roots_file {
        Some(file) => Account::builder_with_root(file)
            .map_err(|source| AcmeError::Roots { file: file.display().to_string(), source })?,
        None => Account::builder().map_err(protocol("set up an HTTPS client"))?,
    };
    let contact = settings.contact_email.as_ref().map(|email| format!("mailto:{email}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let new_account = NewAccount { contact: &contacts, terms_of_service_agreed: true, only_return_existing: false };
    let (account, _credentials) =
        builder.create(&new_account, directory_url.clone(), None).await.map_err(protocol("create an account"))?;
    let name = format!("*.{zone}");
    let identifiers = [Identifier::Dns(name.clone())];
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await.map_err(protocol("create an order"))?;
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization.map_err(protocol("read an authorization"))?;
        if authorization.status == AuthorizationStatus::Valid {
            continue;
        }
        let mut challenge = authorization
            .challenge(ChallengeType::Dns01)
            .ok_or_else(|| AcmeError::NoDnsChallenge { directory_url: directory_url.clone(), name: name.clone() })?;
        let set = RecordSet {
            name: challenge_name.to_owned(),
            record_type: "TXT".to_owned(),
            ttl: CHALLENGE_TTL,
            contents: vec![format!("\"{}\"", challenge.key_authorization().dns_value())],
            tenant: Some(CHALLENGE_LABEL.to_owned()),
        };
        dns.put(dns_zone, &set).await.map_err(|source| AcmeError::Dns { name: challenge_name.to_owned(), source })?;
        challenge.set_ready().await.map_err(protocol("accept the challenge answer"))?;
    }
    let retries = RetryPolicy::new().initial_delay(Duration::from_millis(100)).backoff(1.5).timeout(timeout);
    let status = order.poll_ready(&retries).await.map_err(protocol("validate the order"))?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::NotValidated { directory_url, name, status: format!("{status:?}").to_lowercase() });
    }
    let key = order.finalize().await.map_err(protocol("finalize the order"))?;
    let chain = order.poll_certificate(&retries).await.map_err(protocol("issue the certificate"))?;
    let (not_before, not_after) = leaf_validity(&chain)
        .map_err(|detail| AcmeError::Unreadable { directory_url: directory_url.clone(), detail })?;
    Ok(IssuedCertificate { pem: PemCertificate { chain, key }, not_before, not_after })
}

/// The validity of the first (leaf) certificate of a PEM chain.
pub fn leaf_validity(chain: &str) -> Result<(OffsetDateTime, OffsetDateTime), String> {
    let leaf = CertificateDer::pem_slice_iter(chain.as_bytes())
        .next()
        .ok_or("no certificate in the chain")?
        .map_err(|error| format!("not PEM: {error}"))?;
    let (_, certificate) =
        x509_parser::parse_x509_certificate(&leaf).map_err(|error| format!("not an X.509 certificate: {error}"))?;
    let validity = certificate.validity();
    Ok((validity.not_before.to_datetime(), validity.not_after.to_datetime()))
}

/// Whether a certificate valid from `not_before` to `not_after` is due for
/// renewal at `now`: when less than a third of its lifetime is left (as
/// Caddy and certbot decide for the certificates they manage).
pub fn needs_renewal(not_before: OffsetDateTime, not_after: OffsetDateTime, now: OffsetDateTime) -> bool {
    let lifetime = not_after - not_before;
    not_after - now < lifetime / 3
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_certificate_renews_with_a_third_of_its_lifetime_left() {
        let (from, until) = (datetime!(2026-01-01 0:00 UTC), datetime!(2026-04-01 0:00 UTC)); // 90 days
        assert!(!needs_renewal(from, until, datetime!(2026-01-02 0:00 UTC)));
        assert!(!needs_renewal(from, until, datetime!(2026-03-01 0:00 UTC))); // 31 days left
        assert!(needs_renewal(from, until, datetime!(2026-03-03 0:00 UTC))); // 29 days left
        assert!(needs_renewal(from, until, datetime!(2026-05-01 0:00 UTC))); // expired
    }

    #[test]
    fn the_leaf_of_a_chain_gives_the_validity() {
        let key = rcgen::KeyPair::generate().expect("a key");
        let mut params = rcgen::CertificateParams::new(vec!["*.apps.example.net".to_owned()]).expect("params");
        params.not_before = datetime!(2026-01-01 0:00 UTC);
        params.not_after = datetime!(2026-04-01 0:00 UTC);
        let leaf = params.self_signed(&key).expect("a certificate");
        let chain = format!("{}{}", leaf.pem(), leaf.pem());
        assert_eq!(leaf_validity(&chain), Ok((params.not_before, params.not_after)));
        assert!(leaf_validity("no pem here").is_err());
    }
}
