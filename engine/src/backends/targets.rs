//! The hosting targets of the configuration, connected on first use.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

/// How many deployments may run at once on one target, however many the
/// front door starts: a small on-premises host is not flooded by a bulk apply.
pub const DEPLOYMENTS_PER_TARGET: usize = 8;

/// How many certificate orders one target's reverse proxy has in flight at
/// once: an ACME CA limits new orders per account, and a bulk apply of
/// custom domains queues here rather than at the CA.
pub const CERTIFICATE_ORDERS_PER_TARGET: usize = 10;

use crate::backends::caddy::CaddyIngress;
use crate::backends::docker::DockerRuntime;
use crate::backends::ingress::Ingress;
use crate::backends::swarm::SwarmRuntime;
use crate::backends::{Runtime, RuntimeError};
use crate::config::{Orchestrator, TargetDocument};

/// Named targets and their runtimes.
pub struct Targets {
    configured: BTreeMap<String, TargetDocument>,
    connected: Mutex<HashMap<String, Arc<dyn Runtime>>>,
    ingresses: Mutex<HashMap<String, Arc<dyn Ingress>>>,
    deployment_slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    certificate_slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    coalesced: std::sync::Mutex<HashMap<String, Arc<Coalesced>>>,
}

/// The runs of one coalesced task: how many were asked for, and up to
/// which request the last successful run covered (held while running).
#[derive(Default)]
struct Coalesced {
    requested: AtomicU64,
    covered: Mutex<u64>,
}

/// A permit of the target's semaphore in `slots`, made with `permits` on first use.
async fn slot(slots: &Mutex<HashMap<String, Arc<Semaphore>>>, target: &str, permits: usize) -> OwnedSemaphorePermit {
    let semaphore =
        Arc::clone(slots.lock().await.entry(target.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(permits))));
    semaphore.acquire_owned().await.expect("target semaphores are never closed")
}

/// A target that is not configured or cannot be reached.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("target {target:?} is not configured (configured: {configured})")]
    Unknown { target: String, configured: String },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("target {target:?} has no {attribute}: {hint}")]
    Incomplete { target: String, attribute: &'static str, hint: &'static str },
}

impl Targets {
    pub fn new(configured: BTreeMap<String, TargetDocument>) -> Targets {
        Targets::with_runtimes(configured, HashMap::new())
    }

    /// Targets served by runtimes the caller built (tests inject failures this way).
    pub fn with_runtimes(
        configured: BTreeMap<String, TargetDocument>,
        runtimes: HashMap<String, Arc<dyn Runtime>>,
    ) -> Targets {
        Targets::with_backends(configured, runtimes, HashMap::new())
    }

    /// Targets served by runtimes and reverse proxies the caller built.
    pub fn with_backends(
        configured: BTreeMap<String, TargetDocument>,
        runtimes: HashMap<String, Arc<dyn Runtime>>,
        ingresses: HashMap<String, Arc<dyn Ingress>>,
    ) -> Targets {
        Targets {
            configured,
            connected: Mutex::new(runtimes),
            ingresses: Mutex::new(ingresses),
            deployment_slots: Mutex::new(HashMap::new()),
            certificate_slots: Mutex::new(HashMap::new()),
            coalesced: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn names(&self) -> Vec<&str> {
        self.configured.keys().map(String::as_str).collect()
    }

    /// The names of the targets that are Docker Swarm clusters.
    pub fn swarm_names(&self) -> Vec<&str> {
        let swarm = |document: &TargetDocument| document.orchestrator == Some(crate::config::Orchestrator::Swarm);
        self.configured.iter().filter(|(_, document)| swarm(document)).map(|(name, _)| name.as_str()).collect()
    }

    /// A target's configuration.
    pub fn document(&self, target: &str) -> Result<&TargetDocument, TargetError> {
        self.configured
            .get(target)
            .ok_or_else(|| TargetError::Unknown { target: target.to_owned(), configured: self.names().join(", ") })
    }

    /// The address DNS records point at for apps on `target`.
    pub fn public_address(&self, target: &str) -> Result<&str, TargetError> {
        self.document(target)?.public_address.as_deref().ok_or_else(|| TargetError::Incomplete {
            target: target.to_owned(),
            attribute: "public_address",
            hint: "set it to the IP address or host name that DNS records for its apps point at",
        })
    }

    /// The reverse proxy beside `target` (built once).
    pub async fn ingress(&self, target: &str) -> Result<Arc<dyn Ingress>, TargetError> {
        let mut ingresses = self.ingresses.lock().await;
        if let Some(ingress) = ingresses.get(target) {
            return Ok(Arc::clone(ingress));
        }
        let document = self.document(target)?;
        let admin_url = document.ingress_admin_url.as_deref().ok_or_else(|| TargetError::Incomplete {
            target: target.to_owned(),
            attribute: "ingress_admin_url",
            hint: "set it to the Caddy admin API beside the target, e.g. http://127.0.0.1:2019",
        })?;
        let https_address = document.https_address().ok_or_else(|| TargetError::Incomplete {
            target: target.to_owned(),
            attribute: "ingress_https_address",
            hint: "set it (or public_address) so the certificate served for each domain can be read",
        })?;
        let ingress: Arc<dyn Ingress> = Arc::new(CaddyIngress::new(target, admin_url, &https_address));
        ingresses.insert(target.to_owned(), Arc::clone(&ingress));
        Ok(ingress)
    }

    /// Waits for one of the target's [`DEPLOYMENTS_PER_TARGET`] deployment slots.
    pub async fn deployment_slot(&self, target: &str) -> OwnedSemaphorePermit {
        slot(&self.deployment_slots, target, DEPLOYMENTS_PER_TARGET).await
    }

    /// Waits for one of the target's [`CERTIFICATE_ORDERS_PER_TARGET`] certificate order slots.
    pub async fn certificate_slot(&self, target: &str) -> OwnedSemaphorePermit {
        slot(&self.certificate_slots, target, CERTIFICATE_ORDERS_PER_TARGET).await
    }

    /// Runs `task`, the one task named `key` (telling an app instance its
    /// addresses), unless a run that started after this call has already
    /// succeeded: every run reads what it needs afresh, so parallel callers
    /// (the applies of an instance's many domains) share a run instead of
    /// each making one. One run of a key at a time; a failed run covers no one.
    pub async fn coalesce<E, F: Future<Output = Result<(), E>>>(
        &self,
        key: &str,
        task: impl FnOnce() -> F,
    ) -> Result<(), E> {
        let runs = {
            let mut coalesced = self.coalesced.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(coalesced.entry(key.to_owned()).or_default())
        };
        let mine = runs.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut covered = runs.covered.lock().await;
        if *covered >= mine {
            return Ok(());
        }
        // Every request made so far is covered by a run that starts now.
        let covers = runs.requested.load(Ordering::SeqCst);
        task().await?;
        *covered = covers;
        Ok(())
    }

    /// Docker API requests made so far, per connected target (for benchmarks).
    pub async fn api_calls(&self) -> Vec<(String, u64)> {
        let connected = self.connected.lock().await;
        let mut calls: Vec<(String, u64)> =
            connected.iter().map(|(name, runtime)| (name.clone(), runtime.api_calls())).collect();
        calls.sort();
        calls
    }

    /// Where the reverse proxy beside `target` reaches a container published
    /// on `port` (see [`Runtime::upstreams`]). A single engine's answer needs
    /// no connection; a swarm is asked each time (nodes come and go).
    pub async fn upstreams(&self, target: &str, port: u16, seen_on: Option<&str>) -> Result<Vec<String>, TargetError> {
        match self.document(target)?.orchestrator {
            Some(Orchestrator::Swarm) => Ok(self.runtime(target).await?.upstreams(port, seen_on).await?),
            Some(Orchestrator::Docker) | None => Ok(vec![format!("127.0.0.1:{port}")]),
        }
    }

    /// The runtime of `target`, connecting (and negotiating the API version) once.
    pub async fn runtime(&self, target: &str) -> Result<Arc<dyn Runtime>, TargetError> {
        let mut connected = self.connected.lock().await;
        if let Some(runtime) = connected.get(target) {
            return Ok(Arc::clone(runtime));
        }
        let document = self.document(target)?;
        let endpoint = document.docker_host.as_str();
        let cert_path = document.docker_cert_path.as_deref();
        let runtime: Arc<dyn Runtime> = match document.orchestrator {
            Some(Orchestrator::Swarm) => Arc::new(
                SwarmRuntime::connect(target, endpoint, cert_path)
                    .await?
                    .with_encrypted_networks(document.encrypted_networks.unwrap_or(true)),
            ),
            Some(Orchestrator::Docker) | None => Arc::new(DockerRuntime::connect(target, endpoint, cert_path).await?),
        };
        connected.insert(target.to_owned(), Arc::clone(&runtime));
        Ok(runtime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parallel_requests_share_a_run_that_started_after_them() {
        let targets = Targets::new(BTreeMap::new());
        let runs = AtomicU64::new(0);
        let task = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Ok::<(), ()>(())
        };
        // One after another: each runs.
        for _ in 0..3 {
            targets.coalesce("acme/web", task).await.unwrap();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        // Ten at once: the first runs, the other nine share the run after it.
        runs.store(0, Ordering::SeqCst);
        let all = (0..10).map(|_| targets.coalesce("acme/web", task));
        futures_util::future::join_all(all).await.into_iter().collect::<Result<Vec<()>, ()>>().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // Another key is not held up by, nor covered by, this one's runs.
        targets.coalesce("acme/erp", task).await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        // A failed run covers no one: the next caller runs again.
        assert_eq!(targets.coalesce("acme/erp", || async { Err::<(), &str>("down") }).await, Err("down"));
        targets.coalesce("acme/erp", task).await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 4);
    }
}
