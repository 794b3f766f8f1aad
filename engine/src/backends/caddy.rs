//! The ingress role on Caddy, through its admin API.
//!
//! Caddy's config holds two servers that `scripts/services.sh` (or an
//! operator) sets up: `atrium` (HTTPS, certificates from Caddy's ACME issuer)
//! and `atrium_http` (plain HTTP). Each ends with a catch-all route answering
//! 404, and every domain's route goes before it.
//!
//! Every change starts from one read of `/config/apps/http/servers`, whose
//! `Etag` guards the write that follows (`If-Match`): Caddy checks it against
//! the whole servers object under its config lock, so a write based on a stale
//! read is refused with 412 and nothing another writer did is lost. A change is
//! decided as one small step at a time (restore the catch-all, drop a stray
//! copy of our route, insert or replace it, remove it from the other server),
//! each written by position, until the config needs no further step.
//!
//! Three facts of Caddy shape this. Route `@id`s are global and duplicates
//! are accepted silently, so we keep ours unique by hand and address routes by
//! index rather than through `/id/`. Every accepted write reloads Caddy,
//! which cancels certificate requests in flight, so a change that finds the
//! config already right writes nothing. And a reload replaces the admin
//! server too, so a request that meets another writer's reload may see its
//! connection reset: reads and writes retry connection failures, and a write
//! whose answer was lost is settled by the next read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use http_body_util::BodyExt;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::{Value, json};
use x509_parser::extensions::GeneralName;

use super::batch::{Waiting, WriteBatcher, finish_all};
use super::ingress::{
    Ingress, IngressError, ObservedRoute, PemCertificate, RouteHandler, RouteSpec, ServedCertificate, route_id,
};

/// The server that serves routes with `tls: true`.
const HTTPS_SERVER: &str = "atrium";
/// The server that serves routes with `tls: false`.
const HTTP_SERVER: &str = "atrium_http";
/// The config path read once per change; its Etag guards writes to both servers.
const SERVERS_PATH: &str = "/config/apps/http/servers";
/// The TLS app, where certificates Atrium obtained itself are loaded.
const TLS_PATH: &str = "/config/apps/tls";
/// The body of the catch-all routes, as `scripts/services.sh` writes them.
const CATCH_ALL_BODY: &str = "atrium: no app here\n";

/// How long a TCP connection to the admin API or the HTTPS server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one admin request may take; a write waits for Caddy's reload.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a TLS handshake with the HTTPS server may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `list_routes`, which has no deadline of its own, retries transient
/// failures. Caddy replaces its admin server on every config change, so a
/// read that meets another writer's change can see its connection reset.
const LIST_DEADLINE: Duration = Duration::from_secs(5);

/// Caddy beside one target, reached at its admin API and its HTTPS listener.
pub struct CaddyIngress {
    target: String,
    admin_url: String,
    /// `host:port` where the `atrium` server listens, for certificate checks.
    https_address: String,
    client: reqwest::Client,
    tls_connector: tokio_rustls::TlsConnector,
    /// Admin API requests made, for tests and benchmarks that count writes.
    api_calls: AtomicU64,
    /// Route changes of concurrent calls, written together.
    route_writes: WriteBatcher<WantedRoute, IngressError>,
}

/// What a call wants for one hostname.
#[derive(Debug, Clone)]
enum WantedRoute {
    Put(RouteSpec),
    Removed(String),
}

impl WantedRoute {
    fn hostname(&self) -> &str {
        match self {
            WantedRoute::Put(spec) => &spec.hostname,
            WantedRoute::Removed(hostname) => hostname,
        }
    }
}

/// A route change waiting for a batch write.
type PendingChange = Waiting<WantedRoute, IngressError>;

impl CaddyIngress {
    /// Prepares clients for Caddy beside `target`; nothing is contacted until the first call.
    pub fn new(target: &str, admin_url: &str, https_address: &str) -> CaddyIngress {
        // No idle connections are kept: Caddy replaces its admin server on
        // every config change (anyone's), so a kept connection is most often
        // closed by the time it is used again. Building fails only when the
        // TLS backend cannot start, which `reqwest::Client::new` treats as a
        // panic too.
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(0)
            .build()
            .expect("reqwest's rustls backend initializes");
        CaddyIngress {
            target: target.to_owned(),
            admin_url: admin_url.trim_end_matches('/').to_owned(),
            https_address: https_address.to_owned(),
            client,
            tls_connector: certificate_reading_connector(),
            api_calls: AtomicU64::new(0),
            route_writes: WriteBatcher::default(),
        }
    }

    /// How many admin API requests this ingress has made.
    pub fn api_calls(&self) -> u64 {
        self.api_calls.load(Ordering::Relaxed)
    }

    fn connect_error(&self, source: impl std::error::Error + Send + Sync + 'static) -> IngressError {
        IngressError::Connect { admin_url: self.admin_url.clone(), source: Box::new(source) }
    }

    /// Sends one admin request, counting it.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, IngressError> {
        self.api_calls.fetch_add(1, Ordering::Relaxed);
        request.send().await.map_err(|source| self.connect_error(source))
    }

    /// Turns an unsuccessful answer into an error carrying Caddy's own message
    /// (its error bodies are `{"error": "..."}`).
    async fn refusal(&self, operation: String, response: reqwest::Response) -> IngressError {
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|body| body.get("error")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| text.trim().to_owned());
        IngressError::Api { admin_url: self.admin_url.clone(), operation, status, message }
    }

    /// Both servers' config and its Etag.
    async fn read_servers(&self) -> Result<(Value, Option<String>), IngressError> {
        self.read_config(SERVERS_PATH, "read the HTTP servers").await
    }

    /// The config under `path` (`null` when there is none) and its Etag.
    /// Caddy sends the Etag as an HTTP trailer (it hashes the config while
    /// writing it), so the whole body is read frame by frame rather than with
    /// `Response::bytes`, which drops trailers.
    async fn read_config(&self, path: &str, operation: &str) -> Result<(Value, Option<String>), IngressError> {
        let response = self.send(self.client.get(format!("{}{path}", self.admin_url))).await?;
        if !response.status().is_success() {
            return Err(self.refusal(operation.to_owned(), response).await);
        }
        let status = response.status().as_u16();
        let header_etag = response.headers().get(reqwest::header::ETAG).cloned();
        let collected = reqwest::Body::from(response).collect().await.map_err(|source| self.connect_error(source))?;
        let etag = collected
            .trailers()
            .and_then(|trailers| trailers.get(reqwest::header::ETAG))
            .or(header_etag.as_ref())
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let config = serde_json::from_slice(&collected.to_bytes()).map_err(|error| IngressError::Api {
            admin_url: self.admin_url.clone(),
            operation: operation.to_owned(),
            status,
            message: format!("the answer is not JSON: {error}"),
        })?;
        Ok((config, etag))
    }

    /// `read_servers`, repeated after transient failures while `pacing` allows.
    async fn read_servers_retrying(&self, pacing: &mut RetryPacing) -> Result<(Value, Option<String>), IngressError> {
        loop {
            match self.read_servers().await {
                Err(error) if error.is_retryable() && pacing.wait(&error).await => {}
                result => return result,
            }
        }
    }

    /// Brings the route of one hostname to what `wanted` says. Changes from
    /// concurrent calls are written together: every admin write makes Caddy
    /// reload (cancelling certificate orders in flight and resetting
    /// connections), so ten parallel applies cost one write where they can,
    /// not ten racing ones.
    async fn change_route(&self, wanted: WantedRoute, deadline: Duration) -> Result<(), IngressError> {
        self.route_writes
            .submit(
                wanted,
                |batch| self.write_batch(batch, deadline),
                || IngressError::Api {
                    admin_url: self.admin_url.clone(),
                    operation: "change a route".to_owned(),
                    status: 500,
                    message: "the batch writer stopped before reporting".to_owned(),
                },
            )
            .await
    }

    /// Reads the servers, applies every change of the batch to a copy (each
    /// one step at a time, as `next_change_to_put`/`next_change_to_remove`
    /// decide), and writes the result in one PATCH guarded by the read's
    /// Etag; a refused (412) or failed write is retried within `deadline`.
    async fn write_batch(&self, mut batch: Vec<PendingChange>, deadline: Duration) {
        let mut pacing = RetryPacing::new(deadline);
        let mut stale_writes = 0;
        loop {
            let (servers, etag) = match self.read_servers_retrying(&mut pacing).await {
                Ok(read) => read,
                Err(error) => return finish_all(batch, Err(&error), copy_error),
            };
            let mut wanted = servers.clone();
            let mut kept = Vec::with_capacity(batch.len());
            for change in batch {
                match self.apply_wanted(&mut wanted, &change.change) {
                    Ok(()) => kept.push(change),
                    Err(error) => change.finish(Err(error)),
                }
            }
            batch = kept;
            if wanted == servers || batch.is_empty() {
                return finish_all(batch, Ok(()), copy_error);
            }
            let Some(etag) = etag else {
                let error = IngressError::Api {
                    admin_url: self.admin_url.clone(),
                    operation: "change routes".to_owned(),
                    status: 200,
                    message:
                        "reading the HTTP servers gave no Etag to guard the write with (Caddy 2.6 or later sends one)"
                            .to_owned(),
                };
                return finish_all(batch, Err(&error), copy_error);
            };
            tracing::debug!(target_name = %self.target, changes = batch.len(), "writing Caddy routes");
            let request = self
                .client
                .patch(format!("{}{SERVERS_PATH}", self.admin_url))
                .header(reqwest::header::IF_MATCH, etag)
                .json(&wanted);
            let outcome = match self.send(request).await {
                Ok(response) if response.status().is_success() => return finish_all(batch, Ok(()), copy_error),
                Ok(response) if response.status() == reqwest::StatusCode::PRECONDITION_FAILED => None,
                Ok(response) => Some(self.refusal("change routes".to_owned(), response).await),
                Err(error) => Some(error),
            };
            match outcome {
                None => {
                    stale_writes += 1;
                    tracing::debug!(target_name = %self.target, stale_writes, "Caddy's config changed under us");
                    if !pacing.wait_quietly().await {
                        let error = IngressError::Contended {
                            admin_url: self.admin_url.clone(),
                            hostname: batch.first().map(|c| c.change.hostname().to_owned()).unwrap_or_default(),
                            attempts: stale_writes,
                        };
                        return finish_all(batch, Err(&error), copy_error);
                    }
                }
                Some(error) if error.is_retryable() && pacing.wait(&error).await => {}
                Some(error) => return finish_all(batch, Err(&error), copy_error),
            }
        }
    }

    /// Applies one call's wish to a copy of the servers, step by step.
    fn apply_wanted(&self, servers: &mut Value, wanted: &WantedRoute) -> Result<(), IngressError> {
        // Each step removes a difference, so a handful always suffices; the
        // bound only guards against a config that keeps changing shape.
        for _ in 0..64 {
            let step = match wanted {
                WantedRoute::Put(spec) => next_change_to_put(servers, spec).map_err(|server| {
                    IngressError::MissingServer { admin_url: self.admin_url.clone(), server: server.to_owned() }
                })?,
                WantedRoute::Removed(hostname) => next_change_to_remove(servers, hostname),
            };
            let Some(step) = step else { return Ok(()) };
            tracing::trace!(target_name = %self.target, step = %step.describe(), "planned route step");
            step.apply_to(servers);
        }
        Err(IngressError::Api {
            admin_url: self.admin_url.clone(),
            operation: format!("change the route of {}", wanted.hostname()),
            status: 500,
            message: "the routes did not settle".to_owned(),
        })
    }

    /// Refuses the two hostnames whose route ids are the catch-alls' ids.
    fn refuse_catch_all_hostname(&self, hostname: &str, operation: &str) -> Result<(), IngressError> {
        if is_catch_all_id(&route_id(hostname)) {
            return Err(IngressError::Api {
                admin_url: self.admin_url.clone(),
                operation: format!("{operation} {hostname}"),
                status: 400,
                message: format!(
                    "{} is the id of a catch-all route, so Atrium refuses that hostname",
                    route_id(hostname)
                ),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Ingress for CaddyIngress {
    async fn list_routes(&self) -> Result<Vec<ObservedRoute>, IngressError> {
        let (servers, _) = self.read_servers_retrying(&mut RetryPacing::new(LIST_DEADLINE)).await?;
        Ok(observed_routes(&servers))
    }

    async fn put_route(&self, spec: &RouteSpec, deadline: Duration) -> Result<(), IngressError> {
        self.refuse_catch_all_hostname(&spec.hostname, "put the route of")?;
        self.change_route(WantedRoute::Put(spec.clone()), deadline).await
    }

    async fn remove_route(&self, hostname: &str, deadline: Duration) -> Result<(), IngressError> {
        self.refuse_catch_all_hostname(hostname, "remove the route of")?;
        self.change_route(WantedRoute::Removed(hostname.to_owned()), deadline).await
    }

    async fn load_certificate(
        &self,
        tag: &str,
        certificate: &PemCertificate,
        deadline: Duration,
    ) -> Result<(), IngressError> {
        let operation = "load a certificate";
        let mut pacing = RetryPacing::new(deadline);
        let mut stale_writes = 0;
        loop {
            let (tls, etag) = match self.read_config(TLS_PATH, "read the TLS app").await {
                Err(error) if error.is_retryable() && pacing.wait(&error).await => continue,
                read => read?,
            };
            let Some(wanted) = with_loaded_certificate(&tls, tag, certificate) else { return Ok(()) };
            tracing::debug!(target_name = %self.target, tag, "loading a certificate into Caddy");
            // POST sets or replaces the object at the path, which may not exist yet.
            let mut request = self.client.post(format!("{}{TLS_PATH}", self.admin_url)).json(&wanted);
            if let Some(etag) = etag {
                request = request.header(reqwest::header::IF_MATCH, etag);
            }
            let error = match self.send(request).await {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) if response.status() == reqwest::StatusCode::PRECONDITION_FAILED => {
                    stale_writes += 1;
                    if pacing.wait_quietly().await {
                        continue;
                    }
                    return Err(IngressError::Contended {
                        admin_url: self.admin_url.clone(),
                        hostname: tag.to_owned(),
                        attempts: stale_writes,
                    });
                }
                Ok(response) => self.refusal(operation.to_owned(), response).await,
                Err(error) => error,
            };
            if !(error.is_retryable() && pacing.wait(&error).await) {
                return Err(error);
            }
        }
    }

    async fn served_certificate(&self, hostname: &str) -> Result<Option<ServedCertificate>, IngressError> {
        // A name rustls cannot send as SNI is not one Caddy can have a certificate for.
        let Ok(server_name) = ServerName::try_from(hostname.to_owned()) else {
            return Ok(None);
        };
        let unreachable = |source: std::io::Error| IngressError::Connect {
            admin_url: format!("https://{}", self.https_address),
            source: Box::new(source),
        };
        let timed_out = |what: &str| std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} timed out"));
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&self.https_address))
            .await
            .map_err(|_| unreachable(timed_out("connecting")))?
            .map_err(unreachable)?;
        let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.tls_connector.connect(server_name, connection))
            .await
            .map_err(|_| unreachable(timed_out("the TLS handshake")))?;
        let stream = match handshake {
            Ok(stream) => stream,
            // Caddy ends the handshake with an alert while it has no
            // certificate for the name; tokio-rustls reports TLS failures as
            // invalid data, and everything else is a connection problem.
            Err(error) if error.kind() == std::io::ErrorKind::InvalidData => return Ok(None),
            Err(error) => return Err(unreachable(error)),
        };
        let Some(leaf) = stream.get_ref().1.peer_certificates().and_then(|chain| chain.first()) else {
            return Ok(None);
        };
        Ok(certificate_for_hostname(leaf, hostname))
    }
}

/// One step towards the route config a call wants, addressed by position
/// because `/id/` paths are ambiguous when an id is duplicated.
#[derive(Debug, Clone, PartialEq)]
enum RouteChange {
    /// Appends the server's catch-all as its last route, creating the route
    /// list when the server has none (Caddy's POST sets rather than appends
    /// to a missing list, so that case is a PUT of a one-route list).
    AppendCatchAll { server: &'static str, route_list_exists: bool },
    /// Inserts `route` at `index`, moving the route there (the catch-all) one down.
    Insert { server: &'static str, index: usize, route: Value },
    /// Replaces the route at `index` with `route`.
    Replace { server: &'static str, index: usize, route: Value },
    /// Deletes the route at `index`, which has id `id`.
    Delete { server: &'static str, index: usize, id: String },
}

impl RouteChange {
    fn server(&self) -> &'static str {
        match self {
            RouteChange::AppendCatchAll { server, .. }
            | RouteChange::Insert { server, .. }
            | RouteChange::Replace { server, .. }
            | RouteChange::Delete { server, .. } => server,
        }
    }

    /// The step as an error message or a log line names it.
    fn describe(&self) -> String {
        let id_of_route = |route: &Value| id_of(route).unwrap_or("(no id)").to_owned();
        match self {
            RouteChange::AppendCatchAll { server, .. } => format!("restore the catch-all route of server {server}"),
            RouteChange::Insert { server, index, route } => {
                format!("insert route {} into server {server} at position {index}", id_of_route(route))
            }
            RouteChange::Replace { server, index, route } => {
                format!("replace route {} at position {index} of server {server}", id_of_route(route))
            }
            RouteChange::Delete { server, index, id } => {
                format!("delete route {id} at position {index} of server {server}")
            }
        }
    }

    /// Does to a copy of the servers' config what Caddy does on this write.
    fn apply_to(&self, servers: &mut Value) {
        let Some(server) = servers.get_mut(self.server()).and_then(Value::as_object_mut) else {
            return;
        };
        let routes = server.entry("routes").or_insert_with(|| json!([]));
        if !routes.is_array() {
            *routes = json!([]);
        }
        let Some(routes) = routes.as_array_mut() else {
            return;
        };
        match self {
            RouteChange::AppendCatchAll { server, .. } => routes.push(catch_all_route(server)),
            RouteChange::Insert { index, route, .. } => routes.insert((*index).min(routes.len()), route.clone()),
            RouteChange::Replace { index, route, .. } => {
                if let Some(existing) = routes.get_mut(*index) {
                    *existing = route.clone();
                }
            }
            RouteChange::Delete { index, .. } => {
                if *index < routes.len() {
                    routes.remove(*index);
                }
            }
        }
    }
}

/// The TLS app's config with `certificate` loaded under `tag` (replacing
/// whatever was loaded under it), or `None` when it is already so.
fn with_loaded_certificate(tls: &Value, tag: &str, certificate: &PemCertificate) -> Option<Value> {
    let entry = json!({"certificate": certificate.chain, "key": certificate.key, "tags": [tag]});
    let tagged = |loaded: &Value| {
        loaded.get("tags").and_then(Value::as_array).is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(tag)))
    };
    let loaded = tls.pointer("/certificates/load_pem").and_then(Value::as_array);
    let mine: Vec<&Value> = loaded.into_iter().flatten().filter(|loaded| tagged(loaded)).collect();
    if mine == [&entry] {
        return None;
    }
    let mut wanted = if tls.is_object() { tls.clone() } else { json!({}) };
    let certificates = wanted.as_object_mut()?.entry("certificates").or_insert_with(|| json!({}));
    if !certificates.is_object() {
        *certificates = json!({});
    }
    let list = certificates.as_object_mut()?.entry("load_pem").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    let list = list.as_array_mut()?;
    list.retain(|loaded| !tagged(loaded));
    list.push(entry);
    Some(wanted)
}

/// The server a route's `tls` puts it on, and the other one.
fn servers_for(tls: bool) -> (&'static str, &'static str) {
    if tls { (HTTPS_SERVER, HTTP_SERVER) } else { (HTTP_SERVER, HTTPS_SERVER) }
}

fn catch_all_id(server: &str) -> &'static str {
    if server == HTTPS_SERVER { "atrium-catch-all" } else { "atrium-catch-all-http" }
}

fn is_catch_all_id(id: &str) -> bool {
    id == catch_all_id(HTTPS_SERVER) || id == catch_all_id(HTTP_SERVER)
}

/// The catch-all that `scripts/services.sh` configures, restored when missing.
fn catch_all_route(server: &str) -> Value {
    json!({
        "@id": catch_all_id(server),
        "handle": [{"handler": "static_response", "status_code": 404, "body": CATCH_ALL_BODY}],
    })
}

fn id_of(route: &Value) -> Option<&str> {
    route.get("@id")?.as_str()
}

/// A server's routes; `None` when the server does not exist, empty when it has no route list.
fn server_routes<'a>(servers: &'a Value, server: &str) -> Option<&'a [Value]> {
    let server = servers.get(server)?.as_object()?;
    Some(server.get("routes").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default())
}

/// The reverse proxy to an instance. With several upstreams (the nodes of a
/// cluster, of which only the one running the task listens on its port), the
/// first that accepts the connection serves, and one that refuses is left
/// out for a while: a task that moves to another node is found within one
/// request, without a new route.
fn proxy_json(upstreams: &[String]) -> Value {
    let dials: Vec<Value> = upstreams.iter().map(|upstream| json!({"dial": upstream})).collect();
    if dials.len() < 2 {
        return json!({"handler": "reverse_proxy", "upstreams": dials});
    }
    json!({
        "handler": "reverse_proxy",
        "upstreams": dials,
        "load_balancing": {"selection_policy": {"policy": "first"}, "try_duration": "5s", "try_interval": "100ms"},
        "health_checks": {"passive": {"fail_duration": "10s"}},
    })
}

/// The route Atrium writes for a domain.
fn route_json(spec: &RouteSpec) -> Value {
    let handler = match &spec.handler {
        RouteHandler::Proxy { upstreams } => proxy_json(upstreams),
        RouteHandler::Suspended { message } => json!({
            "handler": "static_response",
            "status_code": 503,
            "headers": {"Content-Type": ["text/html; charset=utf-8"]},
            "body": suspended_page(message),
        }),
    };
    json!({
        "@id": route_id(&spec.hostname),
        "match": [{"host": [spec.hostname]}],
        "handle": [handler],
        "terminal": true,
    })
}

const SUSPENDED_PAGE_START: &str =
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Unavailable</title></head>\n<body><p>";
const SUSPENDED_PAGE_END: &str = "</p></body></html>\n";

/// The page a suspended domain answers with. Braces are escaped too, because
/// Caddy expands `{placeholders}` (`{env.*}` among them) in a static body.
fn suspended_page(message: &str) -> String {
    format!("{SUSPENDED_PAGE_START}{}{SUSPENDED_PAGE_END}", escape_html(message))
}

/// The message of a page `suspended_page` wrote; `None` for any other body.
fn suspended_message(page: &str) -> Option<String> {
    let escaped = page.strip_prefix(SUSPENDED_PAGE_START)?.strip_suffix(SUSPENDED_PAGE_END)?;
    let message = unescape_html(escaped)?;
    (escape_html(&message) == escaped).then_some(message)
}

const HTML_ESCAPES: [(char, &str); 7] =
    [('&', "&amp;"), ('<', "&lt;"), ('>', "&gt;"), ('"', "&quot;"), ('\'', "&#39;"), ('{', "&#123;"), ('}', "&#125;")];

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match HTML_ESCAPES.iter().find(|(special, _)| *special == character) {
            Some((_, entity)) => escaped.push_str(entity),
            None => escaped.push(character),
        }
    }
    escaped
}

/// Undoes `escape_html`; `None` when the text holds an entity it does not write.
fn unescape_html(escaped: &str) -> Option<String> {
    let mut text = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(start) = rest.find('&') {
        text.push_str(&rest[..start]);
        let (character, entity) = HTML_ESCAPES.iter().find(|(_, entity)| rest[start..].starts_with(entity))?;
        text.push(*character);
        rest = &rest[start + entity.len()..];
    }
    text.push_str(rest);
    Some(text)
}

/// The handler of a route, when the route is exactly what `route_json` writes
/// for it: anything added or changed by hand makes it a shape we did not write.
fn parse_handler(route: &Value, hostname: &str, tls: bool) -> Option<RouteHandler> {
    let [handle] = route.get("handle")?.as_array()?.as_slice() else {
        return None;
    };
    let handler = match handle.get("handler")?.as_str()? {
        "reverse_proxy" => {
            let upstreams = handle.get("upstreams")?.as_array()?;
            let upstreams: Option<Vec<String>> =
                upstreams.iter().map(|upstream| Some(upstream.get("dial")?.as_str()?.to_owned())).collect();
            RouteHandler::Proxy { upstreams: upstreams? }
        }
        "static_response" => RouteHandler::Suspended { message: suspended_message(handle.get("body")?.as_str()?)? },
        _ => return None,
    };
    let spec = RouteSpec { hostname: hostname.to_owned(), tls, handler };
    (route_json(&spec) == *route).then_some(spec.handler)
}

/// Atrium's routes on both servers, in config order, catch-alls left out.
fn observed_routes(servers: &Value) -> Vec<ObservedRoute> {
    let mut observed = Vec::new();
    for tls in [true, false] {
        let (server, _) = servers_for(tls);
        for route in server_routes(servers, server).unwrap_or_default() {
            let Some(id) = id_of(route).filter(|id| !is_catch_all_id(id)) else {
                continue;
            };
            if let Some(hostname) = id.strip_prefix("atrium-") {
                let handler = parse_handler(route, hostname, tls);
                observed.push(ObservedRoute { hostname: hostname.to_owned(), tls, handler });
            }
        }
    }
    observed
}

/// The next step towards `spec`'s route being on its server, once and before
/// the catch-all, and on no other server; `None` when the config is already
/// so. `Err` names the server that `spec.tls` asks for when it does not exist.
fn next_change_to_put(servers: &Value, spec: &RouteSpec) -> Result<Option<RouteChange>, &'static str> {
    let (server, other_server) = servers_for(spec.tls);
    let routes = server_routes(servers, server).ok_or(server)?;
    let Some(catch_all_index) = routes.iter().position(|route| id_of(route) == Some(catch_all_id(server))) else {
        let route_list_exists = servers.get(server).and_then(|s| s.get("routes")).is_some_and(Value::is_array);
        return Ok(Some(RouteChange::AppendCatchAll { server, route_list_exists }));
    };
    let id = route_id(&spec.hostname);
    let copies: Vec<usize> = (0..routes.len()).filter(|&index| id_of(&routes[index]) == Some(&id)).collect();
    // The first copy before the catch-all is the one that serves. Copies after
    // the catch-all are never reached, and further copies are strays (left by
    // a crash or by hand): they go first, the last one first.
    let serving = copies.iter().copied().find(|&index| index < catch_all_index);
    if let Some(&stray) = copies.iter().rev().find(|&&index| Some(index) != serving) {
        return Ok(Some(RouteChange::Delete { server, index: stray, id }));
    }
    let route = route_json(spec);
    match serving {
        Some(index) if routes[index] == route => {}
        Some(index) => return Ok(Some(RouteChange::Replace { server, index, route })),
        None => return Ok(Some(RouteChange::Insert { server, index: catch_all_index, route })),
    }
    // The route moves from the other server only once it serves on this one.
    let other_routes = server_routes(servers, other_server).unwrap_or_default();
    Ok(other_routes.iter().rposition(|route| id_of(route) == Some(&id)).map(|index| RouteChange::Delete {
        server: other_server,
        index,
        id,
    }))
}

/// The next step towards no route for `hostname` on either server.
fn next_change_to_remove(servers: &Value, hostname: &str) -> Option<RouteChange> {
    let id = route_id(hostname);
    [HTTPS_SERVER, HTTP_SERVER].into_iter().find_map(|server| {
        let index = server_routes(servers, server)?.iter().rposition(|route| id_of(route) == Some(&id))?;
        Some(RouteChange::Delete { server, index, id: id.clone() })
    })
}

/// Waits between attempts with the one retry policy (`crate::backends::retry`),
/// within the call's deadline and the operation's.
struct RetryPacing {
    backoff: crate::backends::retry::Backoff,
}

impl RetryPacing {
    fn new(deadline: Duration) -> RetryPacing {
        RetryPacing { backoff: crate::backends::retry::Backoff::new(deadline) }
    }

    /// After a transient failure: logs it and waits; `false` when the deadline leaves no time.
    async fn wait(&mut self, error: &IngressError) -> bool {
        tracing::warn!(error = %error, "transient Caddy error; retrying");
        self.wait_quietly().await
    }

    /// Waits; `false` (without waiting) when the wait would end past the deadline.
    async fn wait_quietly(&mut self) -> bool {
        self.backoff.wait().await
    }
}

/// A TLS connector for `served_certificate`, which only reads the certificate
/// the proxy serves for a name (to report on issuance) and sends nothing over
/// the connection: it accepts any chain, whoever issued it.
fn certificate_reading_connector() -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(AnyServerCertificate { algorithms: provider.signature_verification_algorithms });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Accepts any certificate chain: see `certificate_reading_connector`. The
/// handshake's signatures are still checked, so the certificate read is one
/// whose key the server holds.
#[derive(Debug)]
struct AnyServerCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, certificate, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The expiry and issuer of a leaf certificate (DER) whose names cover
/// `hostname`; `None` for a certificate of other names (such as the default
/// one Caddy may serve) or one that does not parse.
fn certificate_for_hostname(leaf: &[u8], hostname: &str) -> Option<ServedCertificate> {
    let (_, certificate) = x509_parser::parse_x509_certificate(leaf).ok()?;
    let alternative_names = certificate.subject_alternative_name().ok()??;
    let covered = alternative_names.value.general_names.iter().any(|name| match name {
        GeneralName::DNSName(name) => name_covers(name, hostname),
        _ => false,
    });
    if !covered {
        return None;
    }
    let issuer = certificate
        .issuer()
        .iter_common_name()
        .find_map(|common_name| common_name.as_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| certificate.issuer().to_string());
    Some(ServedCertificate { not_after: certificate.validity().not_after.to_datetime(), issuer })
}

/// Whether a certificate's DNS name covers `hostname`: the same name (case
/// aside), or a wildcard for exactly one label in front of the rest.
fn name_covers(certificate_name: &str, hostname: &str) -> bool {
    let certificate_name = certificate_name.trim_end_matches('.');
    let hostname = hostname.trim_end_matches('.');
    if certificate_name.eq_ignore_ascii_case(hostname) {
        return true;
    }
    match (certificate_name.strip_prefix("*."), hostname.split_once('.')) {
        (Some(parent), Some((label, rest))) => !label.is_empty() && parent.eq_ignore_ascii_case(rest),
        _ => false,
    }
}

/// A copy of `error` for another call of the same batch: a source error
/// becomes its message chain (all that is ever shown of it), and a
/// contended write names the call's own hostname.
fn copy_error(error: &IngressError, wanted: &WantedRoute) -> IngressError {
    match error {
        IngressError::Connect { admin_url, source } => IngressError::Connect {
            admin_url: admin_url.clone(),
            source: crate::backends::error_chain(source.as_ref()).into(),
        },
        IngressError::Api { admin_url, operation, status, message } => IngressError::Api {
            admin_url: admin_url.clone(),
            operation: operation.clone(),
            status: *status,
            message: message.clone(),
        },
        IngressError::MissingServer { admin_url, server } => {
            IngressError::MissingServer { admin_url: admin_url.clone(), server: server.clone() }
        }
        IngressError::Contended { admin_url, attempts, .. } => IngressError::Contended {
            admin_url: admin_url.clone(),
            hostname: wanted.hostname().to_owned(),
            attempts: *attempts,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(hostname: &str, tls: bool, upstream: &str) -> RouteSpec {
        RouteSpec { hostname: hostname.into(), tls, handler: RouteHandler::Proxy { upstreams: vec![upstream.into()] } }
    }

    fn suspended(hostname: &str, tls: bool, message: &str) -> RouteSpec {
        RouteSpec { hostname: hostname.into(), tls, handler: RouteHandler::Suspended { message: message.into() } }
    }

    /// Both servers as `scripts/services.sh` starts them, with extra routes before each catch-all.
    fn servers(https_routes: Vec<Value>, http_routes: Vec<Value>) -> Value {
        let with_catch_all = |mut routes: Vec<Value>, server| {
            routes.push(catch_all_route(server));
            routes
        };
        json!({
            "atrium": {"listen": ["127.0.0.1:58443"], "routes": with_catch_all(https_routes, HTTPS_SERVER)},
            "atrium_http": {"listen": ["127.0.0.1:58080"], "routes": with_catch_all(http_routes, HTTP_SERVER)},
        })
    }

    fn foreign_route() -> Value {
        json!({"@id": "hand-made", "match": [{"host": ["hand.example"]}], "handle": [{"handler": "static_response"}]})
    }

    #[test]
    fn a_route_to_the_nodes_of_a_swarm_tries_them_in_order_and_reads_back_as_written() {
        let nodes = ["10.77.0.12:20001", "10.77.0.11:20001", "10.77.0.13:20001"].map(String::from).to_vec();
        let spec = RouteSpec {
            hostname: "chat.acme.com".into(),
            tls: true,
            handler: RouteHandler::Proxy { upstreams: nodes.clone() },
        };
        let written = route_json(&spec);
        let handler = &written["handle"][0];
        assert_eq!(handler["upstreams"][0]["dial"], "10.77.0.12:20001", "the node it was seen on comes first");
        assert_eq!(handler["load_balancing"]["selection_policy"]["policy"], "first");
        assert_eq!(handler["health_checks"]["passive"]["fail_duration"], "10s");
        assert_eq!(parse_handler(&written, "chat.acme.com", true), Some(RouteHandler::Proxy { upstreams: nodes }));
        // The same upstreams without the failover settings were changed by hand.
        let mut bare = written.clone();
        bare["handle"][0].as_object_mut().unwrap().remove("load_balancing");
        assert_eq!(parse_handler(&bare, "chat.acme.com", true), None);
    }

    #[test]
    fn routes_are_written_as_caddy_json() {
        fn check(spec: RouteSpec, expected: Value) {
            assert_eq!(route_json(&spec), expected, "{spec:?}");
        }
        check(
            proxy("erp.acme.com", true, "127.0.0.1:32768"),
            json!({
                "@id": "atrium-erp.acme.com",
                "match": [{"host": ["erp.acme.com"]}],
                "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": "127.0.0.1:32768"}]}],
                "terminal": true,
            }),
        );
        check(
            suspended("erp.acme.com", false, "Suspended."),
            json!({
                "@id": "atrium-erp.acme.com",
                "match": [{"host": ["erp.acme.com"]}],
                "handle": [{
                    "handler": "static_response",
                    "status_code": 503,
                    "headers": {"Content-Type": ["text/html; charset=utf-8"]},
                    "body": format!("{SUSPENDED_PAGE_START}Suspended.{SUSPENDED_PAGE_END}"),
                }],
                "terminal": true,
            }),
        );
    }

    #[test]
    fn suspended_pages_escape_html_and_placeholders() {
        fn check(message: &str, expected_in_page: &str) {
            let page = suspended_page(message);
            assert!(page.contains(expected_in_page), "{page}");
            assert!(!page[SUSPENDED_PAGE_START.len()..].contains(['{', '}']), "{page}");
            assert_eq!(suspended_message(&page).as_deref(), Some(message), "round trip of {message:?}");
        }
        check("Suspended.", "<p>Suspended.</p>");
        check("Billing & <support>", "Billing &amp; &lt;support&gt;");
        check("\"quoted\" 'single'", "&quot;quoted&quot; &#39;single&#39;");
        check("{env.HOME}", "&#123;env.HOME&#125;");
        check("already &amp; escaped", "already &amp;amp; escaped");
        check("", "<p></p>");

        // Bodies written by someone else are not our pages.
        assert_eq!(suspended_message("Suspended."), None);
        assert_eq!(suspended_message(&format!("{SUSPENDED_PAGE_START}a &nbsp; b{SUSPENDED_PAGE_END}")), None);
        assert_eq!(suspended_message(&format!("{SUSPENDED_PAGE_START}a < b{SUSPENDED_PAGE_END}")), None);
    }

    #[test]
    fn routes_are_observed_with_their_handler_when_we_wrote_them() {
        fn check(servers: Value, expected: Vec<ObservedRoute>) {
            assert_eq!(observed_routes(&servers), expected, "{servers}");
        }
        let observed = |hostname: &str, tls, handler| ObservedRoute { hostname: hostname.into(), tls, handler };
        let written = |spec: &RouteSpec| route_json(spec);

        check(servers(vec![], vec![]), vec![]);
        check(json!(null), vec![]);
        check(
            servers(
                vec![written(&proxy("a.example", true, "127.0.0.1:1")), foreign_route()],
                vec![written(&suspended("b.example", false, "Back soon & <then>"))],
            ),
            vec![
                observed("a.example", true, Some(RouteHandler::Proxy { upstreams: vec!["127.0.0.1:1".into()] })),
                observed("b.example", false, Some(RouteHandler::Suspended { message: "Back soon & <then>".into() })),
            ],
        );

        // Changed by hand: still ours, but not a shape we write.
        let mut extra_field = written(&proxy("c.example", false, "127.0.0.1:1"));
        extra_field["terminal"] = json!(false);
        let mut two_upstreams = written(&proxy("d.example", false, "127.0.0.1:1"));
        two_upstreams["handle"][0]["upstreams"] = json!([{"dial": "127.0.0.1:1"}, {"dial": "127.0.0.1:2"}]);
        let mut other_host = written(&proxy("e.example", false, "127.0.0.1:1"));
        other_host["match"] = json!([{"host": ["f.example"]}]);
        let mut other_status = written(&suspended("g.example", false, "x"));
        other_status["handle"][0]["status_code"] = json!(500);
        let mut encoded_route = written(&proxy("h.example", false, "127.0.0.1:1"));
        encoded_route["handle"] = json!([{"handler": "encode"}, encoded_route["handle"][0].clone()]);
        check(
            servers(vec![], vec![extra_field, two_upstreams, other_host, other_status, encoded_route]),
            ["c.example", "d.example", "e.example", "g.example", "h.example"]
                .into_iter()
                .map(|hostname| observed(hostname, false, None))
                .collect(),
        );
    }

    #[test]
    fn put_decides_one_step_at_a_time() {
        fn check(servers: Value, spec: RouteSpec, expected: Result<Option<RouteChange>, &'static str>) {
            assert_eq!(next_change_to_put(&servers, &spec), expected, "{servers} {spec:?}");
        }
        let spec = proxy("a.example", true, "127.0.0.1:8000");
        let route = route_json(&spec);
        let older = route_json(&proxy("a.example", true, "127.0.0.1:7000"));
        let other = route_json(&proxy("b.example", true, "127.0.0.1:7000"));
        let id = || "atrium-a.example".to_owned();

        // Absent: inserted just before the catch-all, after other routes.
        check(
            servers(vec![other.clone(), foreign_route()], vec![]),
            spec.clone(),
            Ok(Some(RouteChange::Insert { server: HTTPS_SERVER, index: 2, route: route.clone() })),
        );
        // Present and identical: nothing to write.
        check(servers(vec![other.clone(), route.clone()], vec![]), spec.clone(), Ok(None));
        // Present with other content: replaced where it stands.
        check(
            servers(vec![older.clone(), other.clone()], vec![]),
            spec.clone(),
            Ok(Some(RouteChange::Replace { server: HTTPS_SERVER, index: 0, route: route.clone() })),
        );
        // On the other server: removed once it serves on this one.
        check(
            servers(vec![route.clone()], vec![other.clone(), older.clone()]),
            spec.clone(),
            Ok(Some(RouteChange::Delete { server: HTTP_SERVER, index: 1, id: id() })),
        );
        check(
            servers(vec![], vec![older.clone()]),
            spec.clone(),
            Ok(Some(RouteChange::Insert { server: HTTPS_SERVER, index: 0, route: route.clone() })),
        );
        // Duplicates: the extra copies go first, the last one first.
        check(
            servers(vec![route.clone(), other.clone(), older.clone(), older.clone()], vec![]),
            spec.clone(),
            Ok(Some(RouteChange::Delete { server: HTTPS_SERVER, index: 3, id: id() })),
        );
        // A copy after the catch-all is never reached: removed, then inserted before it.
        let mut after_catch_all = servers(vec![], vec![]);
        after_catch_all["atrium"]["routes"].as_array_mut().unwrap().push(route.clone());
        check(
            after_catch_all,
            spec.clone(),
            Ok(Some(RouteChange::Delete { server: HTTPS_SERVER, index: 1, id: id() })),
        );
        // A missing catch-all is appended first.
        let mut no_catch_all = servers(vec![], vec![]);
        no_catch_all["atrium"]["routes"] = json!([other.clone()]);
        check(
            no_catch_all,
            spec.clone(),
            Ok(Some(RouteChange::AppendCatchAll { server: HTTPS_SERVER, route_list_exists: true })),
        );
        let mut no_route_list = servers(vec![], vec![]);
        no_route_list["atrium"].as_object_mut().unwrap().remove("routes");
        check(
            no_route_list,
            spec.clone(),
            Ok(Some(RouteChange::AppendCatchAll { server: HTTPS_SERVER, route_list_exists: false })),
        );
        // A missing server is an error; the other server may be missing.
        let mut no_https_server = servers(vec![], vec![]);
        no_https_server.as_object_mut().unwrap().remove("atrium");
        check(no_https_server.clone(), spec.clone(), Err(HTTPS_SERVER));
        check(
            no_https_server,
            proxy("a.example", false, "127.0.0.1:8000"),
            Ok(Some(RouteChange::Insert {
                server: HTTP_SERVER,
                index: 0,
                route: route_json(&proxy("a.example", false, "127.0.0.1:8000")),
            })),
        );
        check(json!(null), spec, Err(HTTPS_SERVER));
    }

    #[test]
    fn remove_decides_one_step_at_a_time() {
        fn check(servers: Value, hostname: &str, expected: Option<RouteChange>) {
            assert_eq!(next_change_to_remove(&servers, hostname), expected, "{servers} {hostname}");
        }
        let route = route_json(&proxy("a.example", true, "127.0.0.1:8000"));
        let other = route_json(&proxy("b.example", true, "127.0.0.1:7000"));
        let delete = |server, index| Some(RouteChange::Delete { server, index, id: "atrium-a.example".into() });

        check(servers(vec![other.clone(), foreign_route()], vec![]), "a.example", None);
        check(json!(null), "a.example", None);
        check(servers(vec![other.clone(), route.clone()], vec![]), "a.example", delete(HTTPS_SERVER, 1));
        check(servers(vec![route.clone(), route.clone()], vec![]), "a.example", delete(HTTPS_SERVER, 1));
        check(servers(vec![other.clone()], vec![foreign_route(), route.clone()]), "a.example", delete(HTTP_SERVER, 1));
    }

    /// Decides and applies steps as `converge` does when no write is refused.
    fn converge_locally(
        mut servers: Value,
        next_change: impl Fn(&Value) -> Option<RouteChange>,
    ) -> (Value, Vec<RouteChange>) {
        let mut changes = Vec::new();
        while let Some(change) = next_change(&servers) {
            assert!(changes.len() < 10, "no convergence: {changes:?}");
            change.apply_to(&mut servers);
            changes.push(change);
        }
        (servers, changes)
    }

    #[test]
    fn steps_converge_to_one_copy_before_the_catch_all() {
        fn check(servers: Value, spec: RouteSpec, expected_servers: Value, expected_writes: usize) {
            let (converged, changes) =
                converge_locally(servers.clone(), |servers| next_change_to_put(servers, &spec).unwrap());
            assert_eq!(converged, expected_servers, "{servers} {spec:?}: {changes:?}");
            assert_eq!(changes.len(), expected_writes, "{changes:?}");
        }
        let spec = proxy("a.example", false, "127.0.0.1:8000");
        let route = route_json(&spec);
        let on_https = route_json(&proxy("a.example", true, "127.0.0.1:8000"));
        let older = route_json(&proxy("a.example", false, "127.0.0.1:7000"));

        check(
            servers(vec![], vec![foreign_route()]),
            spec.clone(),
            servers(vec![], vec![foreign_route(), route.clone()]),
            1,
        );
        check(servers(vec![on_https.clone()], vec![]), spec.clone(), servers(vec![], vec![route.clone()]), 2);
        check(
            servers(vec![on_https.clone(), on_https], vec![older.clone(), foreign_route(), older]),
            spec.clone(),
            servers(vec![], vec![route.clone(), foreign_route()]),
            4,
        );
        let mut no_routes = servers(vec![], vec![]);
        no_routes["atrium_http"].as_object_mut().unwrap().remove("routes");
        check(no_routes, spec.clone(), servers(vec![], vec![route]), 2);

        let (removed, changes) = converge_locally(
            servers(vec![route_json(&proxy("a.example", true, "x:1"))], vec![route_json(&spec), foreign_route()]),
            |servers| next_change_to_remove(servers, "a.example"),
        );
        assert_eq!(removed, servers(vec![], vec![foreign_route()]), "{changes:?}");
    }

    #[test]
    fn catch_all_ids_are_never_taken_for_domains() {
        assert!(is_catch_all_id(&route_id("catch-all")));
        assert!(is_catch_all_id(&route_id("catch-all-http")));
        assert!(!is_catch_all_id(&route_id("catch-all.example")));
        let observed = observed_routes(&servers(vec![], vec![]));
        assert!(observed.is_empty(), "{observed:?}");
    }

    #[test]
    fn certificates_are_loaded_under_their_tag_and_only_when_they_differ() {
        let pem = |chain: &str| PemCertificate { chain: chain.into(), key: format!("key of {chain}") };
        let entry =
            |chain: &str, tag: &str| json!({"certificate": chain, "key": format!("key of {chain}"), "tags": [tag]});
        let operators = json!({"certificate": "/etc/own.pem", "key": "/etc/own-key.pem"});
        // Nothing there yet: the TLS app (even a missing one) gets the list.
        assert_eq!(
            with_loaded_certificate(&Value::Null, "atrium-a", &pem("A")),
            Some(json!({"certificates": {"load_pem": [entry("A", "atrium-a")]}}))
        );
        let existing = json!({
            "automation": {"policies": []},
            "certificates": {"load_files": [operators.clone()], "load_pem": [entry("B", "atrium-b"), entry("A", "atrium-a")]}
        });
        // Already loaded: no write.
        assert_eq!(with_loaded_certificate(&existing, "atrium-a", &pem("A")), None);
        // A renewal replaces only its own tag and keeps everything else.
        assert_eq!(
            with_loaded_certificate(&existing, "atrium-a", &pem("A2")),
            Some(json!({
                "automation": {"policies": []},
                "certificates": {"load_files": [operators], "load_pem": [entry("B", "atrium-b"), entry("A2", "atrium-a")]}
            }))
        );
        // Two copies under one tag (an interrupted writer) become one.
        let doubled = json!({"certificates": {"load_pem": [entry("A", "atrium-a"), entry("A", "atrium-a")]}});
        assert_eq!(
            with_loaded_certificate(&doubled, "atrium-a", &pem("A")),
            Some(json!({"certificates": {"load_pem": [entry("A", "atrium-a")]}}))
        );
    }

    #[test]
    fn certificate_names_cover_hostnames() {
        fn check(certificate_name: &str, hostname: &str, expected: bool) {
            assert_eq!(name_covers(certificate_name, hostname), expected, "{certificate_name} {hostname}");
        }
        check("erp.acme.com", "erp.acme.com", true);
        check("ERP.acme.com", "erp.ACME.com.", true);
        check("erp.acme.com", "crm.acme.com", false);
        check("*.acme.com", "erp.acme.com", true);
        check("*.acme.com", "acme.com", false);
        check("*.acme.com", "a.erp.acme.com", false);
        check("*.acme.com", ".acme.com", false);
        check("localhost", "erp.acme.com", false);
    }
}
