//! Batched observation: one registry listing serves every read in a short window.
//!
//! Terraform refreshes each resource with its own `ReadResource` call, often
//! ten at a time. Answering each from its own query costs O(resources); the
//! first read here lists every tenant once, and later reads within
//! [`SNAPSHOT_WINDOW`] answer from that snapshot, so a refresh costs O(1)
//! queries. Any write through this process invalidates the snapshot.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::model::TenantId;
use crate::model::tenant::TenantRecord;
use crate::registry::{Registry, RegistryError};

/// How long a snapshot answers reads before the next read lists again.
pub const SNAPSHOT_WINDOW: Duration = Duration::from_secs(5);

type TenantSnapshot = Arc<HashMap<TenantId, TenantRecord>>;

/// Observes tenants through snapshots of the registry.
#[derive(Debug)]
pub struct TenantObserver {
    registry: Registry,
    snapshot: Mutex<Option<(Instant, TenantSnapshot)>>,
    listings: AtomicU64,
}

impl TenantObserver {
    pub fn new(registry: Registry) -> Self {
        Self { registry, snapshot: Mutex::new(None), listings: AtomicU64::new(0) }
    }

    /// The tenant as the registry holds it now (at most [`SNAPSHOT_WINDOW`] old,
    /// never older than this process's own last write).
    pub async fn observe(&self, name: &TenantId) -> Result<Option<TenantRecord>, RegistryError> {
        let mut guard = self.snapshot.lock().await;
        let fresh = guard
            .as_ref()
            .filter(|(taken, _)| taken.elapsed() < SNAPSHOT_WINDOW)
            .map(|(_, snapshot)| Arc::clone(snapshot));
        let snapshot = match fresh {
            Some(snapshot) => snapshot,
            None => {
                let records = self.registry.list_tenants().await?;
                self.listings.fetch_add(1, Ordering::Relaxed);
                let snapshot: TenantSnapshot =
                    Arc::new(records.into_iter().map(|record| (record.spec.name.clone(), record)).collect());
                *guard = Some((Instant::now(), Arc::clone(&snapshot)));
                snapshot
            }
        };
        Ok(snapshot.get(name).cloned())
    }

    /// Forgets the snapshot; the next read lists again.
    pub async fn invalidate(&self) {
        *self.snapshot.lock().await = None;
    }

    /// How many registry listings this observer has made (for tests and benchmarks).
    pub fn listings(&self) -> u64 {
        self.listings.load(Ordering::Relaxed)
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}
