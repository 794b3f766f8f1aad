//! The ingress role: the reverse proxy beside a target, one route per domain.
//!
//! Implemented on Caddy's admin API (`caddy`). A route's id is
//! `atrium-<hostname>`: that prefix is our label, and routes without it are
//! never touched. Each proxy server keeps a final catch-all route that answers
//! 404, and domain routes are inserted before it.

use std::time::Duration;

use async_trait::async_trait;

/// What a domain's route does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteHandler {
    /// Proxies to the app instance: `host:port` as the proxy reaches it, one
    /// per node of a cluster target (the first that answers serves).
    Proxy { upstreams: Vec<String> },
    /// Answers 503 with a short page (a suspended tenant).
    Suspended { message: String },
}

/// One domain's route, fully decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// The host the route matches, e.g. `erp.acme.com` (no trailing dot).
    pub hostname: String,
    /// `true`: on the HTTPS server, with a certificate from the proxy's ACME
    /// issuer; `false`: on the plain HTTP server.
    pub tls: bool,
    pub handler: RouteHandler,
}

/// A route as the proxy has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedRoute {
    pub hostname: String,
    pub tls: bool,
    /// `None` when the route's handlers are not a shape Atrium writes (changed out of band).
    pub handler: Option<RouteHandler>,
}

/// The certificate the proxy serves for a host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedCertificate {
    pub not_after: time::OffsetDateTime,
    /// The issuer's common name, e.g. `Pebble Intermediate CA 5a1b2c`.
    pub issuer: String,
}

/// An ingress failure, with the proxy and whether retrying may help.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    /// `admin_url` is the admin API's, or `https://host:port` of the HTTPS
    /// server when a certificate check could not connect.
    #[error(
        "cannot reach the reverse proxy (Caddy) at {admin_url}; check that it runs and listens there (the target's ingress_admin_url, or ingress_https_address for certificates)"
    )]
    Connect {
        admin_url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// `status` is the HTTP status; `message` is the proxy's own explanation.
    #[error("the reverse proxy at {admin_url} refused to {operation} (HTTP {status}): {message}")]
    Api { admin_url: String, operation: String, status: u16, message: String },
    #[error("the reverse proxy at {admin_url} has no server {server:?}; configure it with a final catch-all route")]
    MissingServer { admin_url: String, server: String },
    #[error("the route for {hostname} changed under us {attempts} times on {admin_url}; giving up")]
    Contended { admin_url: String, hostname: String, attempts: u32 },
}

impl IngressError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            IngressError::Connect { .. } | IngressError::Contended { .. } => true,
            IngressError::Api { status, .. } => *status >= 500 || *status == 429,
            IngressError::MissingServer { .. } => false,
        }
    }
}

/// The reverse proxy beside one target.
#[async_trait]
pub trait Ingress: Send + Sync {
    /// Every Atrium route on both servers (catch-alls excluded), from one config read.
    async fn list_routes(&self) -> Result<Vec<ObservedRoute>, IngressError>;
    /// Creates or replaces the hostname's route on the server its `tls` names,
    /// before that server's catch-all (which it adds if missing), and removes a
    /// route for the same hostname from the other server. Concurrent changes to
    /// other routes are never lost (optimistic locking, retried within `deadline`).
    async fn put_route(&self, spec: &RouteSpec, deadline: Duration) -> Result<(), IngressError>;
    /// Removes the hostname's route from both servers; a missing one is fine.
    async fn remove_route(&self, hostname: &str, deadline: Duration) -> Result<(), IngressError>;
    /// The certificate served on the HTTPS server for `hostname` (by SNI);
    /// `None` while there is none for that name.
    async fn served_certificate(&self, hostname: &str) -> Result<Option<ServedCertificate>, IngressError>;
    /// Makes the proxy serve a certificate it did not obtain itself (chain
    /// and key in PEM) for the names it covers, labelled `tag`: a certificate
    /// loaded earlier under the same tag is replaced, and nothing is written
    /// when this one is already loaded. Names a loaded certificate covers get
    /// no certificate of their own from the proxy's ACME issuer.
    async fn load_certificate(
        &self,
        tag: &str,
        certificate: &PemCertificate,
        deadline: Duration,
    ) -> Result<(), IngressError>;
}

/// A certificate chain and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct PemCertificate {
    pub chain: String,
    pub key: String,
}

impl std::fmt::Debug for PemCertificate {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemCertificate").field("chain", &self.chain).finish_non_exhaustive()
    }
}

/// The route id for a hostname.
pub fn route_id(hostname: &str) -> String {
    format!("atrium-{hostname}")
}
