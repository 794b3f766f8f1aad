//! Backends: one small trait per role, one implementation per real system.
//!
//! The container runtime on a Docker engine (`docker`); the ingress role
//! (`ingress`) on Caddy (`caddy`); the DNS role (`dns`) on PowerDNS
//! (`powerdns`), with lookups of other people's records through a resolver
//! (`resolver`); the support tracker role (`tracker`) on Redmine (`redmine`).
//! Swarm and SMTP follow the same shape.

pub mod acme;
pub(crate) mod batch;
pub mod caddy;
pub mod dns;
pub mod docker;
pub mod ingress;
pub mod mailer;
pub mod powerdns;
pub mod redmine;
pub mod resolver;
pub mod retry;
pub mod swarm;
pub use retry::Retryable;
pub mod targets;
pub mod tracker;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::model::container::{ContainerSpec, VolumeSpec};

/// The health of a container that cannot run because the cluster node
/// holding its data is drained or down.
pub const STRANDED: &str = "stranded";

/// A container as the runtime reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedContainer {
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub running: bool,
    /// `healthy`, `unhealthy`, `starting`, or `none` without a health check;
    /// [`STRANDED`] when the node holding its data is drained or down.
    pub health: String,
    pub environment: BTreeMap<String, String>,
    pub nano_cpus: i64,
    pub memory_bytes: i64,
    /// The app port published, if any: on the target's loopback, or on
    /// `published_host`.
    pub published_port: Option<u16>,
    /// The host the port is published on when it is not the target's
    /// loopback: the node running it on a swarm.
    pub published_host: Option<String>,
    /// The networks the container is attached to, by name.
    pub networks: Vec<String>,
    /// How many copies are meant to run: 1 for a container (0 on a swarm
    /// scaled to nothing).
    pub replicas: u32,
    /// Every host a running copy is published on (a swarm's nodes, sorted;
    /// `published_host` is one of them); empty on an engine.
    pub published_hosts: Vec<String>,
}

impl ObservedContainer {
    /// Whether its process runs: running, or a swarm task that is
    /// `starting` until its first health check passes (Docker says
    /// `running` of such a container). A sidecar whose check runs rarely
    /// (the backup container's, once a minute) is up long before.
    pub fn is_up(&self) -> bool {
        self.running || self.health == "starting"
    }
}

/// What a command run in a container printed, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// `None` when the engine did not report one.
    pub exit_code: Option<i64>,
    /// Standard output and error, interleaved.
    pub output: String,
}

/// A runtime failure, with the target and whether retrying may help.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "cannot reach the Docker engine of target {target} at {endpoint}; check that the engine runs and that this process may use that endpoint (socket permissions, TLS certificates)"
    )]
    Connect {
        target: String,
        endpoint: String,
        #[source]
        source: Box<bollard::errors::Error>,
    },
    #[error("Docker on target {target} refused to {operation} {object}")]
    Api {
        target: String,
        operation: &'static str,
        object: String,
        #[source]
        source: Box<bollard::errors::Error>,
    },
    #[error(
        "{object} on target {target} exists but is not managed by Atrium (no atrium.managed label); Atrium never touches it"
    )]
    NotManaged { target: String, object: String },
    #[error("container {container} on target {target} did not become healthy within {waited:?}: {output}")]
    Unhealthy { target: String, container: String, waited: Duration, output: String },
    #[error(
        "the operation's deadline ran out after {waited:?} while container {container} on target {target} was still starting (its health check so far: {output})"
    )]
    HealthDeadline { target: String, container: String, waited: Duration, output: String },
    #[error(
        "the Docker endpoint {endpoint} of target {target} is not a Swarm manager (target orchestrator \"swarm\"): point docker_host at a manager node, or set orchestrator = \"docker\""
    )]
    NotSwarmManager { target: String, endpoint: String },
    #[error("cannot use node {node} of swarm target {target}: {reason}")]
    NodeUnreachable { target: String, node: String, reason: String },
    #[error("service {service} on swarm target {target} has no running task")]
    NoRunningTask { target: String, service: String },
    #[error(
        "the operation's deadline ran out after {waited:?} while the one-shot container {container} on target {target} was still running; it was stopped and removed (its output so far: {output})"
    )]
    JobDeadline { target: String, container: String, waited: Duration, output: String },
    #[error("cannot copy volume {volume} on target {target}: {reason}")]
    Copy { target: String, volume: String, reason: String },
    #[error("cannot run {replicas} copies of {container} on target {target}: {reason}")]
    Replicas { target: String, container: String, replicas: u32, reason: String },
}

impl RuntimeError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        let source = match self {
            RuntimeError::Connect { .. } => return true,
            RuntimeError::Api { source, .. } => source,
            RuntimeError::NotManaged { .. }
            | RuntimeError::Unhealthy { .. }
            | RuntimeError::HealthDeadline { .. }
            | RuntimeError::JobDeadline { .. }
            | RuntimeError::Copy { .. }
            | RuntimeError::Replicas { .. }
            | RuntimeError::NotSwarmManager { .. }
            | RuntimeError::NodeUnreachable { .. } => {
                return false;
            }
            // A task between restarts runs again in a moment.
            RuntimeError::NoRunningTask { .. } => {
                return true;
            }
        };
        match source.as_ref() {
            // Docker answers some requests it can never carry out with a 500
            // (an invalid mount, a runtime that refuses the spec): those are
            // as permanent as a 4xx, and retrying them only waits out the deadline.
            bollard::errors::Error::DockerResponseServerError { status_code, message } if *status_code >= 500 => {
                !docker_message_is_permanent(message)
            }
            bollard::errors::Error::DockerResponseServerError { status_code, .. } => *status_code == 429,
            bollard::errors::Error::RequestTimeoutError | bollard::errors::Error::HyperResponseError { .. } => true,
            _ => false,
        }
    }
}

/// Whether a Docker 5xx message says that the request itself cannot work.
fn docker_message_is_permanent(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "invalid",
        "oci runtime create failed",
        "no such image",
        "executable file not found",
        "bind source path does not exist",
        "not supported",
    ]
    .iter()
    .any(|phrase| message.contains(phrase))
}

/// A managed volume as a target lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedVolume {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// When Docker created it (RFC 3339), when it says.
    pub created_at: Option<String>,
}

/// A volume's content on its way between two targets: the chunks of a tar
/// stream, bounded so that a copy holds a few chunks in memory at a time.
pub type ArchiveSender = tokio::sync::mpsc::Sender<Vec<u8>>;
/// The receiving end of an [`ArchiveSender`].
pub type ArchiveReceiver = tokio::sync::mpsc::Receiver<Vec<u8>>;

/// Runs containers on one target.
#[async_trait]
pub trait Runtime: Send + Sync {
    /// Creates the network if missing (labelled); an existing managed one is fine.
    async fn ensure_network(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<(), RuntimeError>;
    /// Removes a managed network when no container uses it any more.
    async fn remove_network_if_unused(&self, name: &str) -> Result<(), RuntimeError>;
    /// Creates the volume if missing; returns whether it was created now.
    async fn ensure_volume(&self, spec: &VolumeSpec) -> Result<bool, RuntimeError>;
    /// Removes a managed volume; a missing one is fine.
    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError>;
    /// Creates (if missing) and starts a container.
    async fn ensure_container(&self, spec: &ContainerSpec) -> Result<(), RuntimeError>;
    /// Removes a managed container (stopping it); a missing one is fine.
    async fn remove_container(&self, name: &str) -> Result<(), RuntimeError>;
    /// Stops a managed container, keeping it and its volumes; a stopped or missing one is fine.
    async fn stop_container(&self, name: &str) -> Result<(), RuntimeError>;
    /// Starts a managed, stopped container; a running one is fine.
    async fn start_container(&self, name: &str) -> Result<(), RuntimeError>;
    /// Every managed container, from one list call; environment and limits
    /// are filled only by [`Runtime::inspect`].
    async fn list_managed(&self) -> Result<Vec<ObservedContainer>, RuntimeError>;
    /// Every managed volume with its labels, from one list call.
    async fn list_managed_volumes(&self) -> Result<Vec<ObservedVolume>, RuntimeError>;
    /// One container in detail; `None` when it does not exist.
    async fn inspect(&self, name: &str) -> Result<Option<ObservedContainer>, RuntimeError>;
    /// Waits until the container's health check passes, up to `deadline`.
    async fn wait_healthy(&self, name: &str, deadline: Duration) -> Result<(), RuntimeError>;
    /// Runs a command in a running container and returns its output (tests and one-shot setup).
    async fn exec(&self, name: &str, command: &[String]) -> Result<CommandOutput, RuntimeError>;
    /// Runs a one-shot container (a [`ContainerRole::Job`](crate::model::container::ContainerRole)
    /// spec) to its end, up to `deadline`, and removes it; returns its exit
    /// code and the end of its output. A container of the same name left by
    /// an interrupted run is removed first.
    async fn run_once(&self, spec: &ContainerSpec, deadline: Duration) -> Result<CommandOutput, RuntimeError>;
    /// Runs a command in every running copy of a container (a swarm's
    /// replicas): for what changes the container itself (files it reads
    /// again, a page it serves), never the app's shared data.
    async fn exec_each(&self, name: &str, command: &[String]) -> Result<Vec<CommandOutput>, RuntimeError> {
        Ok(vec![self.exec(name, command).await?])
    }
    /// Writes files (absolute path → content) into a managed container (every copy of it), running or not.
    async fn write_files(&self, name: &str, files: &BTreeMap<String, String>) -> Result<(), RuntimeError>;
    /// Sends a managed volume's content into `sink` as a tar stream (owners,
    /// modes and times kept), read through a container made from `image`
    /// that never starts; returns how many bytes it sent. The volume should
    /// hold still meanwhile: its containers stopped.
    async fn export_volume(&self, volume: &VolumeSpec, image: &str, sink: ArchiveSender) -> Result<u64, RuntimeError>;
    /// Makes a managed volume anew, empty (whatever an earlier copy or a
    /// destroy kept under its name goes), and fills it with the tar stream
    /// from `source` as [`Runtime::export_volume`] sends it; returns how many
    /// bytes it received.
    async fn import_volume(
        &self,
        volume: &VolumeSpec,
        image: &str,
        source: ArchiveReceiver,
    ) -> Result<u64, RuntimeError>;
    /// The place holding instance `instance`'s (`TENANT/NAME`) data cannot
    /// run it (a cluster's node drained or lost): another place is chosen,
    /// where its volumes are made anew, empty, for a restore to fill; what
    /// the old place holds is left there. Returns where the data was and
    /// where it goes; `None` when its place can run it (nothing changes),
    /// and on a runtime with one place (an engine).
    async fn place_data_elsewhere(&self, _instance: &str) -> Result<Option<(String, String)>, RuntimeError> {
        Ok(None)
    }
    /// Where the reverse proxy beside the target reaches a container
    /// published on `port` (on `seen_on`, where the runtime reported it):
    /// the engine's own loopback, or every schedulable node of a cluster.
    async fn upstreams(&self, port: u16, _seen_on: Option<&str>) -> Result<Vec<String>, RuntimeError> {
        Ok(vec![format!("127.0.0.1:{port}")])
    }
    /// How many API requests this runtime has made (0 where it does not count).
    fn api_calls(&self) -> u64 {
        0
    }
}

/// How many chunks of a volume's tar stream wait between the two targets of a copy.
const COPY_CHUNKS: usize = 16;

/// Copies a managed volume's content from one target's runtime (`from`,
/// through `from_image`) to another's (`to`, the target named
/// `destination`, through `to_image`), streaming: a few chunks are in memory
/// at a time. The destination's volume is made anew; the source's is left as
/// it was. Returns the bytes copied, once both ends agree on the count.
pub async fn copy_volume(
    volume: &VolumeSpec,
    (from, from_image): (&dyn Runtime, &str),
    (to, to_image, destination): (&dyn Runtime, &str, &str),
) -> Result<u64, RuntimeError> {
    let (sink, source) = tokio::sync::mpsc::channel(COPY_CHUNKS);
    let (sent, received) =
        tokio::join!(from.export_volume(volume, from_image, sink), to.import_volume(volume, to_image, source));
    let sent = match (sent, received) {
        // The receiver failed first: the sender's error only says it stopped reading.
        (Err(RuntimeError::Copy { .. }), Err(receiver)) => return Err(receiver),
        (Err(sender), _) => return Err(sender),
        (Ok(_), Err(receiver)) => return Err(receiver),
        (Ok(sent), Ok(received)) if sent != received => {
            return Err(RuntimeError::Copy {
                target: destination.to_owned(),
                volume: volume.name.clone(),
                reason: format!("{sent} bytes were sent and {received} received"),
            });
        }
        (Ok(sent), Ok(_)) => sent,
    };
    Ok(sent)
}

impl Retryable for RuntimeError {
    fn is_retryable(&self) -> bool {
        RuntimeError::is_retryable(self)
    }
}

impl Retryable for mailer::MailError {
    fn is_retryable(&self) -> bool {
        mailer::MailError::is_retryable(self)
    }
}

impl Retryable for ingress::IngressError {
    fn is_retryable(&self) -> bool {
        ingress::IngressError::is_retryable(self)
    }
}

impl Retryable for dns::DnsError {
    fn is_retryable(&self) -> bool {
        dns::DnsError::is_retryable(self)
    }
}

/// An error and its sources as one line (`a: b: c`), for messages that go
/// to people rather than to logs.
/// A cause whose text the chain already holds (libraries often repeat
/// their source in their own message) is left out, so each cause reads once.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !cause_text.is_empty() && !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl Retryable for tracker::TrackerError {
    fn is_retryable(&self) -> bool {
        tracker::TrackerError::is_retryable(self)
    }
}

/// One failed undo step for people: `step: cause`, or `step: failed the
/// same way` when a cause of its error is already in `failure`, the text of
/// the error that made the undo necessary (a backend that is down fails the
/// undo for the reason the message has just given).
pub fn undo_failure(step: &str, error: &dyn std::error::Error, failure: &str) -> String {
    let mut cause: Option<&dyn std::error::Error> = Some(error);
    while let Some(current) = cause {
        let text = current.to_string();
        if !text.is_empty() && failure.contains(&text) {
            return format!("{step}: failed the same way");
        }
        cause = current.source();
    }
    format!("{step}: {}", error_chain(error))
}

/// An API key as a header value marked sensitive, so that HTTP debugging
/// output never prints it; `None` when the key cannot be a header value at
/// all, which the backends report as a refused key.
pub(crate) fn sensitive_api_key(api_key: &str) -> Option<reqwest::header::HeaderValue> {
    reqwest::header::HeaderValue::from_str(api_key).ok().map(|mut value| {
        value.set_sensitive(true);
        value
    })
}

/// An HTTP client for a backend's API whose timeouts bound a hung server.
pub(crate) fn api_client(connect_timeout: Duration, request_timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .build()
        .expect("an HTTP client with timeouts only fails to build when the TLS backend cannot start")
}

/// Sends one API request, with `body` as JSON if given, counts it in
/// `api_calls`, and returns the answer's status and body; a failure here is
/// always the connection's (refused, reset, timed out).
pub(crate) async fn send_counted(
    mut request: reqwest::RequestBuilder,
    body: Option<&serde_json::Value>,
    api_calls: &std::sync::atomic::AtomicU64,
) -> Result<(reqwest::StatusCode, String), reqwest::Error> {
    if let Some(body) = body {
        request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string());
    }
    api_calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let response = request.send().await?;
    let status = response.status();
    Ok((status, response.text().await?))
}

pub use crate::backends::retry::with_retries;

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(status_code: u16) -> RuntimeError {
        RuntimeError::Api {
            target: "test".into(),
            operation: "create container",
            object: "x".into(),
            source: Box::new(bollard::errors::Error::DockerResponseServerError { status_code, message: "boom".into() }),
        }
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let mut attempts = 0;
        let result = with_retries(Duration::from_secs(5), || {
            attempts += 1;
            let attempt = attempts;
            async move { if attempt < 3 { Err(server_error(503)) } else { Ok(attempt) } }
        })
        .await;
        assert_eq!(result.unwrap(), 3);
    }

    #[test]
    fn docker_500s_that_say_the_request_is_invalid_are_permanent() {
        let error = |message: &str| RuntimeError::Api {
            target: "test".into(),
            operation: "create container",
            object: "x".into(),
            source: Box::new(bollard::errors::Error::DockerResponseServerError {
                status_code: 500,
                message: message.into(),
            }),
        };
        assert!(error("connection reset by peer").is_retryable());
        for permanent in [
            "invalid mount config for type \"volume\": invalid mount path: '/' mount path must not be '/'",
            "OCI runtime create failed: runc create failed: invalid environment",
            "No such image: atrium/hello:9.9",
        ] {
            assert!(!error(permanent).is_retryable(), "{permanent}");
        }
    }

    #[tokio::test]
    async fn permanent_errors_and_deadlines_stop_the_retries() {
        let mut attempts = 0;
        let result: Result<(), _> = with_retries(Duration::from_secs(5), || {
            attempts += 1;
            async { Err(server_error(400)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(attempts, 1, "a 400 is not retried");

        let mut attempts = 0;
        let result: Result<(), _> = with_retries(Duration::from_millis(350), || {
            attempts += 1;
            async { Err(server_error(500)) }
        })
        .await;
        assert!(result.is_err());
        assert!((2..=4).contains(&attempts), "retried within the deadline only: {attempts}");
    }
}
