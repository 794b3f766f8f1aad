//! The DNS role: record sets in zones we serve (PowerDNS, `powerdns`), and
//! lookups of records published elsewhere (customers' verification TXT
//! records, through a resolver).
//!
//! Record sets Atrium writes carry a comment with account `atrium` naming the
//! tenant: that is our label, and record sets without it are never changed.

use async_trait::async_trait;

/// The comment account that marks a record set as Atrium's.
pub const OWNER_ACCOUNT: &str = "atrium";

/// One record set: a name and type with its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSet {
    /// Absolute, lowercase, with the trailing dot: `acme.apps.example.net.`.
    pub name: String,
    /// `A`, `AAAA`, `CNAME` or `TXT`.
    pub record_type: String,
    pub ttl: u32,
    /// Record contents as PowerDNS writes them (TXT contents in double quotes).
    pub contents: Vec<String>,
    /// The tenant named by Atrium's comment; `None` for a record set that is not Atrium's.
    pub tenant: Option<String>,
}

/// A DNS failure, with the server and whether retrying may help.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error(
        "cannot reach the DNS API (PowerDNS) at {api_url}; check that it runs there with its webserver and API on (dns.api_url)"
    )]
    Connect {
        api_url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the DNS API at {api_url} refused the API key (HTTP 401): check dns.api_key")]
    Unauthorized { api_url: String },
    #[error("the DNS server has no zone {zone}: create it, or set platform_zone to a zone it serves")]
    ZoneMissing { zone: String },
    /// `message` is the server's own explanation (e.g. a name outside the zone).
    #[error("the DNS API refused to {operation} in zone {zone} (HTTP {status}): {message}")]
    Api { zone: String, operation: String, status: u16, message: String },
    #[error("{name} {record_type} exists in zone {zone} but is not managed by Atrium; Atrium never changes it")]
    NotManaged { zone: String, name: String, record_type: String },
    /// A record set Atrium cannot write as asked (no tenant to mark it with, no records):
    /// a bug in the caller, refused before the server sees it.
    #[error("cannot write {name} {record_type} in zone {zone}: {reason}")]
    InvalidRecordSet { zone: String, name: String, record_type: String, reason: String },
    /// The resolver could not be set up (an unparsable nameserver address, no system configuration).
    #[error("cannot set up a DNS resolver using {nameserver}")]
    ResolverSetup {
        nameserver: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A lookup that failed for a reason other than the name having no such records
    /// (a timeout, a refusal, a server failure): the answer may be different later.
    #[error("looking up {name} through {nameserver} failed")]
    Lookup {
        name: String,
        nameserver: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl DnsError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            DnsError::Connect { .. } | DnsError::Lookup { .. } => true,
            DnsError::Api { status, .. } => *status >= 500 || *status == 429,
            DnsError::Unauthorized { .. }
            | DnsError::ZoneMissing { .. }
            | DnsError::NotManaged { .. }
            | DnsError::InvalidRecordSet { .. }
            | DnsError::ResolverSetup { .. } => false,
        }
    }
}

/// Zones on an authoritative DNS server with an API.
#[async_trait]
pub trait DnsZones: Send + Sync {
    /// Every record set of `zone` (absolute, with the trailing dot), from one API call.
    async fn list(&self, zone: &str) -> Result<Vec<RecordSet>, DnsError>;
    /// Creates or replaces a record set, marking it as Atrium's for `set.tenant`.
    /// An existing record set of that name and type without Atrium's mark is refused.
    async fn put(&self, zone: &str, set: &RecordSet) -> Result<(), DnsError>;
    /// Removes an Atrium record set; a missing one is fine; an unmarked one is refused.
    async fn remove(&self, zone: &str, name: &str, record_type: &str) -> Result<(), DnsError>;
}
