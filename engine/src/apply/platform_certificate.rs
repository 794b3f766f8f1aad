//! The platform zone's wildcard certificate: one `*.<platform_zone>`
//! certificate serves every platform subdomain on every target, so a partner
//! onboarding a thousand customers orders no certificate per customer (an
//! ACME CA's rate limits would stop her after a few dozen).
//!
//! The certificate is obtained by Atrium (`backends::acme`, DNS-01 through
//! the platform zone's DNS API), kept in the registry (one row per zone,
//! shared by every process and both front doors), and loaded into each
//! target's reverse proxy before the first platform route is written there,
//! so the proxy never starts an order of its own for a covered name. It is
//! renewed by the first apply of a platform subdomain that finds less than a
//! third of its lifetime left (a plan shows such domains as `renewal_due`);
//! a renewal is loaded into each proxy as that target's next platform
//! subdomain is applied. A renewal the CA refuses while the certificate
//! still serves is a logged warning, not a failed apply: the next apply
//! tries again. Customers' own domains keep
//! their own certificates from the proxy's ACME issuer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

use super::domain::rfc3339;
use crate::backends::acme::{self, AcmeError, AcmeSettings};
use crate::backends::dns::DnsZones;
use crate::backends::ingress::{Ingress, IngressError, PemCertificate};
use crate::registry::{PlatformCertificateRecord, Registry, RegistryError};

#[derive(Debug, thiserror::Error)]
pub enum PlatformCertificateError {
    #[error("the registry failed while reading or storing the certificate of *.{zone}")]
    Registry {
        zone: String,
        #[source]
        source: RegistryError,
    },
    #[error("cannot obtain the certificate of *.{zone}")]
    Acme {
        zone: String,
        #[source]
        source: AcmeError,
    },
    #[error("the reverse proxy of target {target} cannot load the certificate of *.{zone}")]
    Ingress {
        zone: String,
        target: String,
        #[source]
        source: IngressError,
    },
}

impl PlatformCertificateError {
    pub fn is_retryable(&self) -> bool {
        match self {
            PlatformCertificateError::Registry { source, .. } => source.is_retryable(),
            PlatformCertificateError::Acme { source, .. } => source.is_retryable(),
            PlatformCertificateError::Ingress { source, .. } => source.is_retryable(),
        }
    }
}

/// The wildcard certificate of one platform zone, as one process uses it.
pub struct PlatformCertificate {
    settings: AcmeSettings,
    /// Without the trailing dot.
    zone: String,
    /// The certificate in use once read or obtained; held while ordering, so
    /// a process places one order at a time.
    current: tokio::sync::Mutex<Option<PlatformCertificateRecord>>,
    /// The chain each target's proxy is known to have loaded; held while
    /// loading, so parallel applies on one target load it once.
    loaded: tokio::sync::Mutex<HashMap<String, String>>,
    orders: AtomicU64,
    /// A renewal failed in this process (the current certificate still serves).
    renewal_failed: AtomicBool,
}

impl PlatformCertificate {
    pub fn new(settings: AcmeSettings, zone: &str) -> PlatformCertificate {
        PlatformCertificate {
            settings,
            zone: zone.trim_end_matches('.').to_owned(),
            current: tokio::sync::Mutex::new(None),
            loaded: tokio::sync::Mutex::new(HashMap::new()),
            orders: AtomicU64::new(0),
            renewal_failed: AtomicBool::new(false),
        }
    }

    /// How many certificates this process ordered (tests and benchmarks).
    pub fn orders(&self) -> u64 {
        self.orders.load(Ordering::Relaxed)
    }

    /// The label of the certificate in the proxies' configuration.
    pub fn tag(&self) -> String {
        format!("atrium-platform-{}", self.zone)
    }

    /// The certificate to serve: the one in memory or in the registry while
    /// it is not due for renewal, else a new one ordered now (within `timeout`).
    pub async fn current(
        &self,
        registry: &Registry,
        dns: &dyn DnsZones,
        timeout: Duration,
    ) -> Result<PlatformCertificateRecord, PlatformCertificateError> {
        let zone = || self.zone.clone();
        let mut current = self.current.lock().await;
        let now = OffsetDateTime::now_utc();
        if let Some(record) = current.as_ref().filter(|record| !due(record, now)) {
            return Ok(record.clone());
        }
        let stored = registry
            .get_platform_certificate(&self.zone)
            .await
            .map_err(|source| PlatformCertificateError::Registry { zone: zone(), source })?;
        if let Some(stored) = stored.as_ref().filter(|record| !due(record, now)) {
            *current = Some(stored.clone());
            return Ok(stored.clone());
        }
        // A renewal that failed once in this process is not tried again by
        // each of its other domains: the certificate still serves.
        let still_valid = stored.filter(|record| !expired(record, now));
        if let Some(still_valid) = still_valid.as_ref().filter(|_| self.renewal_failed.load(Ordering::Relaxed)) {
            return Ok(still_valid.clone());
        }
        tracing::info!(zone = %self.zone, "ordering the platform zone's wildcard certificate");
        let issued = match acme::order_wildcard(&self.settings, &self.zone, dns, timeout).await {
            Ok(issued) => issued,
            Err(source) => {
                let Some(still_valid) = still_valid else {
                    return Err(PlatformCertificateError::Acme { zone: zone(), source });
                };
                // The CA is down or refuses: the current certificate serves
                // until it expires, and the next apply tries again (a plan
                // shows its domains as `renewal_due` meanwhile).
                tracing::warn!(
                    zone = %self.zone,
                    expires = %still_valid.not_after,
                    error = %crate::backends::error_chain(&source),
                    "renewing the platform certificate failed; the current one serves until it expires"
                );
                self.renewal_failed.store(true, Ordering::Relaxed);
                *current = Some(still_valid.clone());
                return Ok(still_valid);
            }
        };
        self.orders.fetch_add(1, Ordering::Relaxed);
        let record = PlatformCertificateRecord {
            zone: zone(),
            certificate_pem: issued.pem.chain,
            key_pem: issued.pem.key,
            not_before: rfc3339(issued.not_before),
            not_after: rfc3339(issued.not_after),
            obtained_at: rfc3339(now),
        };
        // Another process may have renewed it meanwhile: the registry keeps the longer-lived one.
        let kept = registry
            .put_platform_certificate(&record)
            .await
            .map_err(|source| PlatformCertificateError::Registry { zone: zone(), source })?;
        *current = Some(kept.clone());
        Ok(kept)
    }

    /// Whether the certificate the registry holds is due for renewal (the
    /// next apply of a platform subdomain renews it); `false` while there
    /// is none. Read once per process.
    pub async fn renewal_due(&self, registry: &Registry) -> Result<bool, PlatformCertificateError> {
        let mut current = self.current.lock().await;
        if current.is_none() {
            *current = registry
                .get_platform_certificate(&self.zone)
                .await
                .map_err(|source| PlatformCertificateError::Registry { zone: self.zone.clone(), source })?;
        }
        Ok(current.as_ref().is_some_and(|record| due(record, OffsetDateTime::now_utc())))
    }

    /// Makes `target`'s proxy serve the current certificate (obtaining or
    /// renewing it first when due); returns its expiry (RFC 3339).
    pub async fn ensure_served(
        &self,
        registry: &Registry,
        dns: &dyn DnsZones,
        target: &str,
        ingress: &dyn Ingress,
        deadline: Duration,
    ) -> Result<String, PlatformCertificateError> {
        let record = self.current(registry, dns, deadline).await?;
        let mut loaded = self.loaded.lock().await;
        if loaded.get(target) == Some(&record.certificate_pem) {
            return Ok(record.not_after);
        }
        let pem = PemCertificate { chain: record.certificate_pem.clone(), key: record.key_pem.clone() };
        ingress.load_certificate(&self.tag(), &pem, deadline).await.map_err(|source| {
            PlatformCertificateError::Ingress { zone: self.zone.clone(), target: target.to_owned(), source }
        })?;
        loaded.insert(target.to_owned(), record.certificate_pem.clone());
        Ok(record.not_after)
    }
}

/// Whether a stored certificate no longer serves (or its end cannot be read).
fn expired(record: &PlatformCertificateRecord, now: OffsetDateTime) -> bool {
    OffsetDateTime::parse(&record.not_after, &time::format_description::well_known::Rfc3339)
        .map_or(true, |not_after| not_after <= now)
}

/// Whether a stored certificate must be renewed now; one whose dates cannot
/// be read is renewed too.
fn due(record: &PlatformCertificateRecord, now: OffsetDateTime) -> bool {
    let parse = |text: &str| OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok();
    match (parse(&record.not_before), parse(&record.not_after)) {
        (Some(not_before), Some(not_after)) => acme::needs_renewal(not_before, not_after, now),
        _ => true,
    }
}
