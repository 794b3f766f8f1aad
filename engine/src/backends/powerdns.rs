//! The DNS role on PowerDNS's authoritative HTTP API (`/api/v1`).
//!
//! Atrium marks every record set it writes with a comment of account
//! [`OWNER_ACCOUNT`] whose content is `atrium.managed tenant=<tenant>`. A record
//! set without that comment belongs to someone else: `put` and `remove` refuse
//! it and leave it exactly as it is.
//!
//! PowerDNS has no conditional writes, so `put` and `remove` read the zone and
//! then write. A record set that someone else creates under the same name and
//! type between the two requests would be replaced; the window is one round
//! trip, and the names Atrium writes are its own.
//!
//! Concurrent `put`s and `remove`s in one zone are written together: the
//! calls that arrive while a write is in flight wait, and the next write
//! reads the zone once and sends all of their record sets in one PATCH (a
//! bulk apply of a hundred domains costs a few zone reads and writes, not a
//! hundred of each). PowerDNS applies a PATCH whole or not at all, so when it
//! refuses one, each record set of it is written alone and only the record
//! sets it refuses fail.

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::batch::{Waiting, WriteBatcher, finish_all};
use super::dns::{DnsError, DnsZones, OWNER_ACCOUNT, RecordSet};
use super::{api_client, send_counted, sensitive_api_key, with_retries};

/// The first word of Atrium's comment; the rest is `key=value` pairs.
const OWNER_MARK: &str = "atrium.managed";

/// How long one operation may keep retrying 5xx answers and connection
/// failures before it reports the last error.
const RETRY_DEADLINE: Duration = Duration::from_secs(15);

/// A loopback or LAN API answers in milliseconds; these only bound a hung server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest piece of a non-JSON error body quoted in an error message.
const QUOTED_BODY_LIMIT: usize = 300;

/// One PowerDNS server's zones, reached through its HTTP API.
///
/// Every call retries 5xx answers, 429 and connection failures with a backoff
/// from 100 ms doubling to 2 s, for up to about 15 s in all, before it returns
/// the last error; PATCH with `REPLACE` or `DELETE` is idempotent, so a retried
/// write that had in fact arrived does no harm. Callers therefore need no retry
/// loop of their own around these calls.
///
/// The API key is sent only in the `X-API-Key` header, marked sensitive, and
/// never appears in `Debug` output, errors or logs.
pub struct PowerDns {
    /// The webserver's base URL, e.g. `http://127.0.0.1:8081` (without `/api/v1`).
    api_url: String,
    /// The server id in API paths; `localhost` on every authoritative server.
    server_id: String,
    /// `None` when the configured key cannot be an HTTP header value: such a key
    /// can never be right, and every call then reports `Unauthorized`.
    api_key: Option<HeaderValue>,
    client: reqwest::Client,
    /// HTTP requests sent, retries included, for tests that count writes.
    api_calls: AtomicU64,
    retry_deadline: Duration,
    /// Record changes of concurrent calls, written together.
    record_writes: WriteBatcher<ZoneChange, DnsError>,
}

/// What a call wants for one record set.
#[derive(Debug, Clone)]
enum RecordChange {
    /// Replace the record set with these records, marked as this tenant's.
    Put {
        set: RecordSet,
        tenant: String,
    },
    Remove {
        name: String,
        record_type: String,
    },
}

impl RecordChange {
    fn name_and_type(&self) -> (&str, &str) {
        match self {
            RecordChange::Put { set, .. } => (&set.name, &set.record_type),
            RecordChange::Remove { name, record_type } => (name, record_type),
        }
    }

    /// What the error message says was being done.
    fn operation(&self) -> String {
        match self {
            RecordChange::Put { set, .. } => format!("replace {} {}", set.name, set.record_type),
            RecordChange::Remove { name, record_type } => format!("delete {name} {record_type}"),
        }
    }

    /// The PATCH entry that makes the change over `existing` (the record set
    /// as the zone has it), `None` when there is nothing to write, or the
    /// refusal of a record set that is not Atrium's.
    fn rrset_to_write(
        &self,
        zone: &str,
        existing: Option<&RrsetDocument>,
    ) -> Result<Option<serde_json::Value>, DnsError> {
        let (name, record_type) = self.name_and_type();
        if existing.is_some_and(|rrset| owner_tenant(&rrset.comments).is_none()) {
            return Err(DnsError::NotManaged {
                zone: zone.to_owned(),
                name: name.to_owned(),
                record_type: record_type.to_owned(),
            });
        }
        Ok(match (self, existing) {
            (RecordChange::Put { set, .. }, Some(rrset)) if same_record_set(&record_set_from_rrset(rrset), set) => None,
            (RecordChange::Put { set, tenant }, existing) => {
                let comments = existing.map(|rrset| rrset.comments.as_slice()).unwrap_or_default();
                Some(replace_rrset(set, tenant, comments))
            }
            (RecordChange::Remove { .. }, None) => None,
            (RecordChange::Remove { name, record_type }, Some(_)) => Some(delete_rrset(name, record_type)),
        })
    }
}

/// A record change in its zone.
struct ZoneChange {
    zone: String,
    change: RecordChange,
}

/// A record change waiting for a batch write.
type PendingWrite = Waiting<ZoneChange, DnsError>;

impl fmt::Debug for PowerDns {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PowerDns")
            .field("api_url", &self.api_url)
            .field("server_id", &self.server_id)
            .field("api_key", &"<redacted>")
            .field("api_calls", &self.api_calls())
            .finish_non_exhaustive()
    }
}

impl PowerDns {
    /// A client for the API at `api_url` (the webserver's base URL, without
    /// `/api/v1`). Nothing is sent until the first call, so a wrong URL or key
    /// shows up as that call's error.
    pub fn new(api_url: &str, api_key: &str, server_id: &str) -> PowerDns {
        let api_key = sensitive_api_key(api_key);
        let client = api_client(CONNECT_TIMEOUT, REQUEST_TIMEOUT);
        PowerDns {
            api_url: api_url.trim_end_matches('/').to_owned(),
            server_id: server_id.to_owned(),
            api_key,
            client,
            api_calls: AtomicU64::new(0),
            retry_deadline: RETRY_DEADLINE,
            record_writes: WriteBatcher::default(),
        }
    }

    /// Shortens (or lengthens) how long each call keeps retrying transient
    /// failures; tests of an unreachable server use this to fail quickly.
    pub fn with_retry_deadline(mut self, retry_deadline: Duration) -> PowerDns {
        self.retry_deadline = retry_deadline;
        self
    }

    /// How many HTTP requests this client has sent, retries included: lets
    /// tests check that an unchanged record set costs one read and no write.
    pub fn api_calls(&self) -> u64 {
        self.api_calls.load(Ordering::Relaxed)
    }

    /// The URL of `segments` under the server's API, e.g. `["zones", "acme.test."]`.
    fn server_url(&self, segments: &[&str]) -> Result<Url, DnsError> {
        let connect_error = |source: Box<dyn std::error::Error + Send + Sync>| DnsError::Connect {
            api_url: self.api_url.clone(),
            source,
        };
        // The configuration checks `dns.api_url` before a backend exists; these
        // errors only guard a `PowerDns` made directly from a bad URL.
        let mut url = Url::parse(&self.api_url).map_err(|error| connect_error(Box::new(error)))?;
        url.path_segments_mut()
            .map_err(|()| connect_error("the DNS API URL cannot carry a path".into()))?
            .pop_if_empty()
            .extend(["api", "v1", "servers", &self.server_id])
            .extend(segments);
        Ok(url)
    }

    fn zone_url(&self, zone: &str) -> Result<Url, DnsError> {
        self.server_url(&["zones", zone])
    }

    /// Sends one request and returns the answer's body, mapping every failure to a `DnsError`.
    async fn send_once(
        &self,
        method: Method,
        url: &Url,
        zone: &str,
        operation: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<String, DnsError> {
        let Some(api_key) = &self.api_key else {
            return Err(DnsError::Unauthorized { api_url: self.api_url.clone() });
        };
        let connect_error =
            |source: reqwest::Error| DnsError::Connect { api_url: self.api_url.clone(), source: Box::new(source) };
        let request = self.client.request(method, url.clone()).header("X-API-Key", api_key.clone());
        let (status, text) = send_counted(request, body, &self.api_calls).await.map_err(connect_error)?;
        if status.is_success() {
            return Ok(text);
        }
        Err(match status {
            StatusCode::UNAUTHORIZED => DnsError::Unauthorized { api_url: self.api_url.clone() },
            StatusCode::NOT_FOUND => DnsError::ZoneMissing { zone: zone.to_owned() },
            _ => DnsError::Api {
                zone: zone.to_owned(),
                operation: operation.to_owned(),
                status: status.as_u16(),
                message: api_error_message(&text),
            },
        })
    }

    /// Sends a request to the zone's URL, retrying transient failures until the deadline.
    async fn send(
        &self,
        method: Method,
        zone: &str,
        operation: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<String, DnsError> {
        let url = self.zone_url(zone)?;
        let result =
            with_retries(self.retry_deadline, || self.send_once(method.clone(), &url, zone, operation, body)).await;
        match result {
            Err(DnsError::ZoneMissing { .. }) if self.server_is_unknown().await => Err(DnsError::Api {
                zone: zone.to_owned(),
                operation: operation.to_owned(),
                status: 404,
                message: format!("PowerDNS has no server {:?}; check dns.server_id", self.server_id),
            }),
            result => result,
        }
    }

    /// PowerDNS answers a bare 404 both for a missing zone and for a server id
    /// it does not know; this asks which, so that a wrong server id is not
    /// reported as a missing zone. Only a clear 404 counts as unknown.
    async fn server_is_unknown(&self) -> bool {
        let (Ok(url), Some(api_key)) = (self.server_url(&[]), &self.api_key) else {
            return false;
        };
        self.api_calls.fetch_add(1, Ordering::Relaxed);
        let response = self.client.get(url).header("X-API-Key", api_key.clone()).send().await;
        response.is_ok_and(|response| response.status() == StatusCode::NOT_FOUND)
    }

    /// The zone's record sets as PowerDNS returns them, from one GET.
    async fn read_zone(&self, zone: &str) -> Result<Vec<RrsetDocument>, DnsError> {
        let operation = "read the record sets";
        let text = self.send(Method::GET, zone, operation, None).await?;
        let document: ZoneDocument = serde_json::from_str(&text).map_err(|error| DnsError::Api {
            zone: zone.to_owned(),
            operation: operation.to_owned(),
            status: 200,
            message: format!("the answer is not a zone document: {error}"),
        })?;
        Ok(document.rrsets)
    }

    /// Brings one record set to what `change` says, written together with
    /// the changes of concurrent calls (see the module's documentation).
    async fn change_record_set(&self, zone: String, change: RecordChange) -> Result<(), DnsError> {
        let abandoned = DnsError::Api {
            zone: zone.clone(),
            operation: change.operation(),
            status: 500,
            message: "the batch writer stopped before reporting".to_owned(),
        };
        self.record_writes.submit(ZoneChange { zone, change }, |batch| self.write_batch(batch), || abandoned).await
    }

    /// Writes a batch zone by zone. One PATCH cannot hold a record set twice,
    /// so a second change of the same record set waits for a later round,
    /// which keeps the calls' order.
    async fn write_batch(&self, mut batch: Vec<PendingWrite>) {
        while !batch.is_empty() {
            let mut seen = std::collections::HashSet::new();
            let (round, later): (Vec<PendingWrite>, Vec<PendingWrite>) = batch.into_iter().partition(|pending| {
                let (name, record_type) = pending.change.change.name_and_type();
                seen.insert((pending.change.zone.clone(), name.to_owned(), record_type.to_owned()))
            });
            batch = later;
            let mut zones: Vec<(String, Vec<PendingWrite>)> = Vec::new();
            for pending in round {
                match zones.iter_mut().find(|(zone, _)| *zone == pending.change.zone) {
                    Some((_, changes)) => changes.push(pending),
                    None => zones.push((pending.change.zone.clone(), vec![pending])),
                }
            }
            for (zone, changes) in zones {
                self.write_zone_batch(&zone, changes).await;
            }
        }
    }

    /// Reads `zone` once, works out each change against it, and sends what
    /// must be written in one PATCH; when PowerDNS refuses that PATCH and it
    /// holds more than one record set, each is written alone so that the
    /// refusal reaches only the call it concerns.
    async fn write_zone_batch(&self, zone: &str, changes: Vec<PendingWrite>) {
        let rrsets = match self.read_zone(zone).await {
            Ok(rrsets) => rrsets,
            Err(error) => return finish_all(changes, Err(&error), |error, _| copy_error(error)),
        };
        let mut writes = Vec::with_capacity(changes.len());
        for pending in changes {
            let (name, record_type) = pending.change.change.name_and_type();
            let existing = rrsets.iter().find(|rrset| {
                absolute_name(&rrset.name) == name && rrset.record_type.eq_ignore_ascii_case(record_type)
            });
            match pending.change.change.rrset_to_write(zone, existing) {
                Ok(Some(rrset)) => writes.push((pending, rrset)),
                Ok(None) => pending.finish(Ok(())),
                Err(error) => pending.finish(Err(error)),
            }
        }
        if writes.is_empty() {
            return;
        }
        let operation = match writes.as_slice() {
            [(pending, _)] => pending.change.change.operation(),
            _ => format!("write {} record sets", writes.len()),
        };
        let rrsets: Vec<&serde_json::Value> = writes.iter().map(|(_, rrset)| rrset).collect();
        tracing::debug!(zone, record_sets = writes.len(), "writing DNS record sets");
        let patch = serde_json::json!({ "rrsets": rrsets });
        let outcome = self.send(Method::PATCH, zone, &operation, Some(&patch)).await;
        match outcome {
            Err(DnsError::Api { status, .. }) if writes.len() > 1 && (400..500).contains(&status) => {
                for (pending, rrset) in writes {
                    let patch = serde_json::json!({ "rrsets": [rrset] });
                    let operation = pending.change.change.operation();
                    let outcome = self.send(Method::PATCH, zone, &operation, Some(&patch)).await;
                    pending.finish(outcome.map(|_| ()));
                }
            }
            outcome => {
                let batch = writes.into_iter().map(|(pending, _)| pending).collect();
                finish_all(batch, outcome.as_ref().map(|_| ()), |error, _| copy_error(error));
            }
        }
    }
}

/// A copy of `error` for another call of the same batch; a source error
/// becomes its message chain, which is all that is ever shown of it.
fn copy_error(error: &DnsError) -> DnsError {
    let chain = |source: &(dyn std::error::Error + Send + Sync)| -> Box<dyn std::error::Error + Send + Sync> {
        crate::backends::error_chain(source).into()
    };
    match error {
        DnsError::Connect { api_url, source } => {
            DnsError::Connect { api_url: api_url.clone(), source: chain(source.as_ref()) }
        }
        DnsError::Unauthorized { api_url } => DnsError::Unauthorized { api_url: api_url.clone() },
        DnsError::ZoneMissing { zone } => DnsError::ZoneMissing { zone: zone.clone() },
        DnsError::Api { zone, operation, status, message } => DnsError::Api {
            zone: zone.clone(),
            operation: operation.clone(),
            status: *status,
            message: message.clone(),
        },
        DnsError::NotManaged { zone, name, record_type } => {
            DnsError::NotManaged { zone: zone.clone(), name: name.clone(), record_type: record_type.clone() }
        }
        DnsError::InvalidRecordSet { zone, name, record_type, reason } => DnsError::InvalidRecordSet {
            zone: zone.clone(),
            name: name.clone(),
            record_type: record_type.clone(),
            reason: reason.clone(),
        },
        DnsError::ResolverSetup { nameserver, source } => {
            DnsError::ResolverSetup { nameserver: nameserver.clone(), source: chain(source.as_ref()) }
        }
        DnsError::Lookup { name, nameserver, source } => {
            DnsError::Lookup { name: name.clone(), nameserver: nameserver.clone(), source: chain(source.as_ref()) }
        }
    }
}

#[async_trait]
impl DnsZones for PowerDns {
    async fn list(&self, zone: &str) -> Result<Vec<RecordSet>, DnsError> {
        let zone = absolute_name(zone);
        let mut record_sets: Vec<RecordSet> = self.read_zone(&zone).await?.iter().map(record_set_from_rrset).collect();
        record_sets.sort_by(|a, b| (&a.name, &a.record_type).cmp(&(&b.name, &b.record_type)));
        Ok(record_sets)
    }

    async fn put(&self, zone: &str, set: &RecordSet) -> Result<(), DnsError> {
        let zone = absolute_name(zone);
        let desired = RecordSet {
            name: absolute_name(&set.name),
            record_type: set.record_type.to_ascii_uppercase(),
            ..set.clone()
        };
        let tenant = writable_tenant(&desired)
            .map_err(|reason| DnsError::InvalidRecordSet {
                zone: zone.clone(),
                name: desired.name.clone(),
                record_type: desired.record_type.clone(),
                reason: reason.to_owned(),
            })?
            .to_owned();
        self.change_record_set(zone, RecordChange::Put { set: desired, tenant }).await
    }

    async fn remove(&self, zone: &str, name: &str, record_type: &str) -> Result<(), DnsError> {
        let change = RecordChange::Remove { name: absolute_name(name), record_type: record_type.to_ascii_uppercase() };
        self.change_record_set(absolute_name(zone), change).await
    }
}

/// The part of PowerDNS's zone document that Atrium reads.
#[derive(Debug, Deserialize)]
struct ZoneDocument {
    #[serde(default)]
    rrsets: Vec<RrsetDocument>,
}

#[derive(Debug, Clone, Deserialize)]
struct RrsetDocument {
    name: String,
    #[serde(rename = "type")]
    record_type: String,
    #[serde(default)]
    ttl: u32,
    #[serde(default)]
    records: Vec<RecordDocument>,
    #[serde(default)]
    comments: Vec<CommentDocument>,
}

#[derive(Debug, Clone, Deserialize)]
struct RecordDocument {
    content: String,
    #[serde(default)]
    disabled: bool,
}

/// A comment on a record set; kept whole so that other people's comments on
/// Atrium's record sets survive a replace.
#[derive(Debug, Clone, Deserialize, Serialize)]
struct CommentDocument {
    content: String,
    #[serde(default)]
    account: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modified_at: Option<u64>,
}

/// The body of PowerDNS's 4xx answers.
#[derive(Debug, Deserialize)]
struct ErrorDocument {
    error: String,
}

/// An absolute, lowercase name with its trailing dot, the form PowerDNS
/// answers with, so that names given either way compare equal.
fn absolute_name(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    if name.ends_with('.') { name } else { format!("{name}.") }
}

/// The comment content that marks a record set as `tenant`'s.
fn owner_mark(tenant: &str) -> String {
    format!("{OWNER_MARK} tenant={tenant}")
}

/// The tenant named by Atrium's comment: one of account [`OWNER_ACCOUNT`]
/// reading `atrium.managed tenant=<tenant>`. Anything else (another account,
/// a mark without a tenant) leaves the record set unmarked, so that Atrium
/// never takes over a record set it cannot positively call its own.
fn owner_tenant(comments: &[CommentDocument]) -> Option<String> {
    comments.iter().filter(|comment| comment.account == OWNER_ACCOUNT).find_map(|comment| {
        let mut words = comment.content.split_whitespace();
        if words.next()? != OWNER_MARK {
            return None;
        }
        words.find_map(|word| word.strip_prefix("tenant=")).filter(|tenant| !tenant.is_empty()).map(str::to_owned)
    })
}

/// A record set as the DNS role sees it. Disabled records are left out: they
/// do not answer queries, so a record set whose records someone disabled
/// differs from what Atrium wants and the next `put` enables them again.
fn record_set_from_rrset(rrset: &RrsetDocument) -> RecordSet {
    RecordSet {
        name: absolute_name(&rrset.name),
        record_type: rrset.record_type.to_ascii_uppercase(),
        ttl: rrset.ttl,
        contents: rrset.records.iter().filter(|record| !record.disabled).map(|record| record.content.clone()).collect(),
        tenant: owner_tenant(&rrset.comments),
    }
}

/// Record contents in a form where equal records compare equal: order does
/// not matter, and PowerDNS rewrites addresses (`2001:DB8:0::1` comes back as
/// `2001:db8::1`). Other contents PowerDNS stores as given or refuses.
fn canonical_contents(record_type: &str, contents: &[String]) -> Vec<String> {
    let mut canonical: Vec<String> = contents
        .iter()
        .map(|content| match record_type {
            "A" | "AAAA" => content.parse::<IpAddr>().map_or_else(|_| content.clone(), |address| address.to_string()),
            _ => content.clone(),
        })
        .collect();
    canonical.sort();
    canonical.dedup();
    canonical
}

/// Whether writing `desired` over `observed` would change nothing that answers or marks it.
fn same_record_set(observed: &RecordSet, desired: &RecordSet) -> bool {
    observed.ttl == desired.ttl
        && observed.tenant == desired.tenant
        && canonical_contents(&observed.record_type, &observed.contents)
            == canonical_contents(&desired.record_type, &desired.contents)
}

/// The tenant to mark `set` with, or why it cannot be written.
fn writable_tenant(set: &RecordSet) -> Result<&str, &'static str> {
    let tenant = set.tenant.as_deref().ok_or("a record set Atrium writes must name its tenant")?;
    if tenant.is_empty() || tenant.contains(char::is_whitespace) {
        return Err("the tenant name must be one word, without spaces");
    }
    if set.contents.is_empty() {
        return Err("a record set needs at least one record; remove it instead");
    }
    Ok(tenant)
}

/// The PATCH entry that replaces `set`'s records and marks it as `tenant`'s,
/// keeping comments of other accounts.
fn replace_rrset(set: &RecordSet, tenant: &str, existing_comments: &[CommentDocument]) -> serde_json::Value {
    let mut comments: Vec<serde_json::Value> = existing_comments
        .iter()
        .filter(|comment| comment.account != OWNER_ACCOUNT)
        .map(|comment| serde_json::json!(comment))
        .collect();
    comments.push(serde_json::json!({ "content": owner_mark(tenant), "account": OWNER_ACCOUNT }));
    let records: Vec<serde_json::Value> =
        set.contents.iter().map(|content| serde_json::json!({ "content": content, "disabled": false })).collect();
    serde_json::json!({
        "name": set.name,
        "type": set.record_type,
        "ttl": set.ttl,
        "changetype": "REPLACE",
        "records": records,
        "comments": comments,
    })
}

/// The PATCH entry that deletes the record set `name`/`record_type`.
fn delete_rrset(name: &str, record_type: &str) -> serde_json::Value {
    serde_json::json!({ "name": name, "type": record_type, "changetype": "DELETE" })
}

/// PowerDNS's own explanation from an error body: the `error` field of its
/// JSON, or the start of a plain-text body.
fn api_error_message(body: &str) -> String {
    if let Ok(document) = serde_json::from_str::<ErrorDocument>(body) {
        return document.error;
    }
    let body = body.trim();
    if body.is_empty() {
        return "no explanation in the answer".to_owned();
    }
    match body.char_indices().nth(QUOTED_BODY_LIMIT) {
        Some((cut, _)) => format!("{}…", &body[..cut]),
        None => body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record_set(name: &str, record_type: &str, ttl: u32, contents: &[&str], tenant: Option<&str>) -> RecordSet {
        RecordSet {
            name: name.to_owned(),
            record_type: record_type.to_owned(),
            ttl,
            contents: contents.iter().map(|content| content.to_string()).collect(),
            tenant: tenant.map(str::to_owned),
        }
    }

    fn check_rrset(rrset: serde_json::Value, expected: RecordSet) {
        let document: RrsetDocument = serde_json::from_value(rrset.clone()).expect("an rrset document");
        assert_eq!(record_set_from_rrset(&document), expected, "mapping {rrset}");
    }

    #[test]
    fn rrsets_map_to_record_sets_with_the_tenant_of_atriums_comment() {
        check_rrset(
            json!({"name": "www.acme.test.", "type": "A", "ttl": 60,
                   "records": [{"content": "10.0.0.1", "disabled": false}],
                   "comments": [{"content": "atrium.managed tenant=acme", "account": "atrium", "modified_at": 1}]}),
            record_set("www.acme.test.", "A", 60, &["10.0.0.1"], Some("acme")),
        );
        check_rrset(
            json!({"name": "acme.test.", "type": "NS", "ttl": 3600,
                   "records": [{"content": "ns1.atrium.test.", "disabled": false}], "comments": []}),
            record_set("acme.test.", "NS", 3600, &["ns1.atrium.test."], None),
        );
        check_rrset(
            json!({"name": "WWW.Acme.Test", "type": "txt", "ttl": 5,
                   "records": [{"content": "\"a\"", "disabled": false}, {"content": "\"b\"", "disabled": true}],
                   "comments": [{"content": "hand-made", "account": "ops"},
                                {"content": "atrium.managed tenant=beta since=2026", "account": "atrium"}]}),
            record_set("www.acme.test.", "TXT", 5, &["\"a\""], Some("beta")),
        );
        check_rrset(
            json!({"name": "comment-only.acme.test.", "type": "A", "ttl": 60, "records": [],
                   "comments": [{"content": "atrium.managed tenant=acme", "account": "atrium"}]}),
            record_set("comment-only.acme.test.", "A", 60, &[], Some("acme")),
        );
        check_rrset(
            json!({"name": "x.acme.test.", "type": "CNAME", "ttl": 60,
                   "records": [{"content": "y.acme.test."}]}),
            record_set("x.acme.test.", "CNAME", 60, &["y.acme.test."], None),
        );
    }

    #[test]
    fn only_a_well_formed_comment_of_atriums_account_names_a_tenant() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("atrium", "atrium.managed tenant=acme", Some("acme")),
            ("atrium", "  atrium.managed   tenant=acme-gmbh ", Some("acme-gmbh")),
            ("atrium", "atrium.managed note=x tenant=acme", Some("acme")),
            ("ops", "atrium.managed tenant=acme", None),
            ("", "atrium.managed tenant=acme", None),
            ("atrium", "atrium.managed", None),
            ("atrium", "atrium.managed tenant=", None),
            ("atrium", "managed by atrium tenant=acme", None),
            ("atrium", "", None),
        ];
        for (account, content, expected) in cases {
            let comments =
                [CommentDocument { content: content.to_string(), account: account.to_string(), modified_at: None }];
            assert_eq!(owner_tenant(&comments).as_deref(), *expected, "account {account:?}, content {content:?}");
        }
        let mark = owner_mark("acme");
        let comments = [CommentDocument { content: mark, account: OWNER_ACCOUNT.into(), modified_at: None }];
        assert_eq!(owner_tenant(&comments).as_deref(), Some("acme"), "the mark Atrium writes reads back");
    }

    #[test]
    fn names_become_absolute_and_lowercase() {
        let cases = [
            ("www.acme.test.", "www.acme.test."),
            ("www.acme.test", "www.acme.test."),
            ("WWW.Acme.TEST", "www.acme.test."),
            ("_acme-challenge.Acme.test.", "_acme-challenge.acme.test."),
            (".", "."),
        ];
        for (input, expected) in cases {
            assert_eq!(absolute_name(input), expected, "normalising {input:?}");
        }
    }

    #[test]
    fn record_sets_compare_by_what_answers_and_who_owns_them() {
        let desired = record_set("www.acme.test.", "A", 60, &["10.0.0.1", "10.0.0.2"], Some("acme"));
        let cases = [
            (record_set("www.acme.test.", "A", 60, &["10.0.0.2", "10.0.0.1"], Some("acme")), true),
            (record_set("www.acme.test.", "A", 60, &["10.0.0.1", "10.0.0.2", "10.0.0.1"], Some("acme")), true),
            (record_set("www.acme.test.", "A", 61, &["10.0.0.1", "10.0.0.2"], Some("acme")), false),
            (record_set("www.acme.test.", "A", 60, &["10.0.0.1"], Some("acme")), false),
            (record_set("www.acme.test.", "A", 60, &["10.0.0.1", "10.0.0.2"], Some("beta")), false),
        ];
        for (observed, expected) in cases {
            assert_eq!(same_record_set(&observed, &desired), expected, "{observed:?} against {desired:?}");
        }
        let v6_desired = record_set("v6.acme.test.", "AAAA", 60, &["2001:DB8:0::1"], Some("acme"));
        let v6_observed = record_set("v6.acme.test.", "AAAA", 60, &["2001:db8::1"], Some("acme"));
        assert!(same_record_set(&v6_observed, &v6_desired), "PowerDNS's rewritten IPv6 address is the same address");
    }

    #[test]
    fn replacing_writes_the_records_and_atriums_comment_and_keeps_other_comments() {
        let set = record_set("www.acme.test.", "A", 60, &["10.0.0.1"], Some("acme"));
        let existing = [
            CommentDocument {
                content: "atrium.managed tenant=old".into(),
                account: "atrium".into(),
                modified_at: Some(5),
            },
            CommentDocument { content: "ask ops first".into(), account: "ops".into(), modified_at: Some(7) },
        ];
        let expected = json!({
            "name": "www.acme.test.", "type": "A", "ttl": 60, "changetype": "REPLACE",
            "records": [{"content": "10.0.0.1", "disabled": false}],
            "comments": [
                {"content": "ask ops first", "account": "ops", "modified_at": 7},
                {"content": "atrium.managed tenant=acme", "account": "atrium"},
            ],
        });
        assert_eq!(replace_rrset(&set, "acme", &existing), expected);
        assert_eq!(
            delete_rrset("www.acme.test.", "A"),
            json!({"name": "www.acme.test.", "type": "A", "changetype": "DELETE"})
        );
    }

    fn rrset(name: &str, record_type: &str, content: &str, account: &str) -> RrsetDocument {
        serde_json::from_value(json!({
            "name": name, "type": record_type, "ttl": 60,
            "records": [{"content": content, "disabled": false}],
            "comments": [{"content": "atrium.managed tenant=acme", "account": account}],
        }))
        .expect("an rrset document")
    }

    #[test]
    fn a_change_writes_only_what_differs_and_never_touches_a_record_set_that_is_not_atriums() {
        let put = RecordChange::Put {
            set: record_set("www.acme.test.", "A", 60, &["10.0.0.1"], Some("acme")),
            tenant: "acme".to_owned(),
        };
        let remove = RecordChange::Remove { name: "www.acme.test.".to_owned(), record_type: "A".to_owned() };
        let same = rrset("www.acme.test.", "A", "10.0.0.1", "atrium");
        let other_address = rrset("www.acme.test.", "A", "10.0.0.9", "atrium");
        let not_ours = rrset("www.acme.test.", "A", "10.0.0.1", "ops");
        let written = |change: &RecordChange, existing: Option<&RrsetDocument>| {
            change.rrset_to_write("acme.test.", existing).map(|rrset| rrset.map(|rrset| rrset["changetype"].clone()))
        };
        assert_eq!(written(&put, None).unwrap(), Some(json!("REPLACE")), "a new record set is written");
        assert_eq!(written(&put, Some(&same)).unwrap(), None, "an identical one is left alone");
        assert_eq!(written(&put, Some(&other_address)).unwrap(), Some(json!("REPLACE")), "a changed one is replaced");
        assert_eq!(written(&remove, None).unwrap(), None, "removing a missing one writes nothing");
        assert_eq!(written(&remove, Some(&same)).unwrap(), Some(json!("DELETE")), "an existing one is deleted");
        for change in [&put, &remove] {
            let refused = written(change, Some(&not_ours)).unwrap_err();
            assert!(matches!(refused, DnsError::NotManaged { .. }), "{change:?}: {refused}");
        }
    }

    #[test]
    fn every_call_of_a_failed_batch_gets_the_same_error() {
        let source: Box<dyn std::error::Error + Send + Sync> = "connection refused".into();
        let errors = [
            DnsError::Connect { api_url: "http://127.0.0.1:8081".into(), source },
            DnsError::Api { zone: "acme.test.".into(), operation: "write".into(), status: 422, message: "no".into() },
            DnsError::ZoneMissing { zone: "acme.test.".into() },
        ];
        for error in errors {
            let copy = copy_error(&error);
            assert_eq!(crate::backends::error_chain(&copy), crate::backends::error_chain(&error));
            assert_eq!(copy.is_retryable(), error.is_retryable(), "{error}");
        }
    }

    #[test]
    fn record_sets_without_a_tenant_or_records_are_not_written() {
        let cases = [
            (record_set("a.acme.test.", "A", 60, &["10.0.0.1"], Some("acme")), true),
            (record_set("a.acme.test.", "A", 60, &["10.0.0.1"], None), false),
            (record_set("a.acme.test.", "A", 60, &["10.0.0.1"], Some("")), false),
            (record_set("a.acme.test.", "A", 60, &["10.0.0.1"], Some("acme gmbh")), false),
            (record_set("a.acme.test.", "A", 60, &[], Some("acme")), false),
        ];
        for (set, writable) in cases {
            assert_eq!(writable_tenant(&set).is_ok(), writable, "{set:?}");
        }
    }

    #[test]
    fn error_messages_are_powerdns_own_words() {
        let long_body = "x".repeat(400);
        let cases = [
            (
                r#"{"error": "RRset www.other.test. IN A: Name is out of zone"}"#,
                "RRset www.other.test. IN A: Name is out of zone".to_owned(),
            ),
            ("Not Found\n", "Not Found".to_owned()),
            ("", "no explanation in the answer".to_owned()),
            (long_body.as_str(), format!("{}…", "x".repeat(QUOTED_BODY_LIMIT))),
        ];
        for (body, expected) in cases {
            assert_eq!(api_error_message(body), expected, "body {body:?}");
        }
    }

    #[test]
    fn zone_urls_join_the_base_url_server_and_zone() {
        let cases = [
            (
                "http://127.0.0.1:8081",
                "localhost",
                "acme.test.",
                "http://127.0.0.1:8081/api/v1/servers/localhost/zones/acme.test.",
            ),
            (
                "http://127.0.0.1:8081/",
                "localhost",
                "acme.test.",
                "http://127.0.0.1:8081/api/v1/servers/localhost/zones/acme.test.",
            ),
            (
                "http://dns.internal/pdns",
                "edge",
                "acme.test.",
                "http://dns.internal/pdns/api/v1/servers/edge/zones/acme.test.",
            ),
        ];
        for (api_url, server_id, zone, expected) in cases {
            let powerdns = PowerDns::new(api_url, "key", server_id);
            assert_eq!(powerdns.zone_url(zone).unwrap().as_str(), expected, "{api_url} {server_id} {zone}");
        }
        assert!(matches!(PowerDns::new("not a url", "key", "localhost").zone_url("a."), Err(DnsError::Connect { .. })));
    }

    #[test]
    fn debug_output_never_shows_the_api_key() {
        let powerdns = PowerDns::new("http://127.0.0.1:8081", "very-secret-key", "localhost");
        let debug = format!("{powerdns:?}");
        assert!(!debug.contains("very-secret-key"), "{debug}");
        assert!(debug.contains("<redacted>") && debug.contains("127.0.0.1:8081"), "{debug}");
    }
}
