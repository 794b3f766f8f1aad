//! Batched observation: one listing serves every read in a short window.
//!
//! Terraform refreshes each resource with its own `ReadResource` call, often
//! ten at a time. Answering each from its own query costs O(resources); here
//! the first read lists once (all tenants, all app instances, every managed
//! container of a target) and later reads within [`SNAPSHOT_WINDOW`] answer
//! from that snapshot, so a refresh costs O(targets) list calls. Writes
//! through this process clear the snapshots.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::backends::dns::{DnsError, DnsZones, RecordSet};
use crate::backends::ingress::{Ingress, IngressError, ObservedRoute};
use crate::backends::{ObservedContainer, Runtime, RuntimeError};
use crate::model::TenantId;
use crate::model::app_instance::{AppInstanceId, AppInstanceRecord};
use crate::model::domain::{DomainRecord, Hostname};
use crate::model::ownership::{Claim, Confirmation, CreateToken, ObjectKind, Owner};
use crate::model::tenant::TenantRecord;
use crate::registry::{Registry, RegistryError};

/// How long a snapshot answers reads before the next read lists again.
pub const SNAPSHOT_WINDOW: Duration = Duration::from_secs(5);

/// A listing and when it was taken.
type Taken<K, V> = Option<(Instant, Arc<Listing<K, V>>)>;

/// A listing's entries sorted by key, for lookups by key. It holds exactly as
/// many slots as entries: a hash map of a thousand tenants holds two thousand
/// (and three thousand while it grows), most of a large plan's peak heap.
pub struct Listing<K, V> {
    entries: Box<[(K, V)]>,
}

impl<K: Ord, V> Listing<K, V> {
    /// The entry for `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let index = self.entries.binary_search_by(|(candidate, _)| candidate.borrow().cmp(key)).ok()?;
        Some(&self.entries[index].1)
    }

    /// Every entry's value, in key order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, value)| value)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Of entries with equal keys the last one listed is kept, as a map would.
impl<K: Ord, V> FromIterator<(K, V)> for Listing<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut entries: Vec<(K, V)> = entries.into_iter().collect();
        entries.reverse();
        // Stable: of equal keys, the last listed (now first) stays first.
        entries.sort_by(|(a, _), (b, _)| a.cmp(b));
        entries.dedup_by(|(later, _), (earlier, _)| later == earlier);
        Self { entries: entries.into_boxed_slice() }
    }
}

impl<K: Ord, V> From<HashMap<K, V>> for Listing<K, V> {
    fn from(map: HashMap<K, V>) -> Self {
        map.into_iter().collect()
    }
}

/// One listing, kept for [`SNAPSHOT_WINDOW`]. Concurrent readers wait for the
/// one listing in flight instead of each making their own.
pub struct Snapshot<K, V> {
    taken: Mutex<Taken<K, V>>,
    listings: AtomicU64,
}

impl<K: Ord, V> Default for Snapshot<K, V> {
    fn default() -> Self {
        Self { taken: Mutex::new(None), listings: AtomicU64::new(0) }
    }
}

impl<K: Ord, V> Snapshot<K, V> {
    /// The current snapshot, listing with `list` when there is none or it is stale.
    pub async fn get<F, Fut, E>(&self, list: F) -> Result<Arc<Listing<K, V>>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Listing<K, V>, E>>,
    {
        let mut guard = self.taken.lock().await;
        if let Some((taken, snapshot)) = guard.as_ref()
            && taken.elapsed() < SNAPSHOT_WINDOW
        {
            return Ok(Arc::clone(snapshot));
        }
        let snapshot = Arc::new(list().await?);
        self.listings.fetch_add(1, Ordering::Relaxed);
        *guard = Some((Instant::now(), Arc::clone(&snapshot)));
        Ok(snapshot)
    }

    /// Forgets the snapshot; the next read lists again.
    pub async fn clear(&self) {
        *self.taken.lock().await = None;
    }

    /// How many listings were made (for tests and benchmarks).
    pub fn listings(&self) -> u64 {
        self.listings.load(Ordering::Relaxed)
    }
}

/// A tenant from a snapshot of the registry's tenants (listing them when stale).
async fn tenant_from(
    snapshot: &Snapshot<TenantId, TenantRecord>,
    registry: &Registry,
    id: &TenantId,
) -> Result<Option<TenantRecord>, RegistryError> {
    let tenants = snapshot
        .get(|| async {
            let records = registry.list_tenants().await?;
            Ok(records.into_iter().map(|record| (record.spec.name.clone(), record)).collect())
        })
        .await?;
    Ok(tenants.get(id).cloned())
}

/// An app instance from a snapshot of the registry's instances (listing them when stale).
async fn instance_from(
    snapshot: &Snapshot<AppInstanceId, AppInstanceRecord>,
    registry: &Registry,
    id: &AppInstanceId,
) -> Result<Option<AppInstanceRecord>, RegistryError> {
    let instances = snapshot
        .get(|| async {
            let records = registry.list_app_instances().await?;
            Ok(records.into_iter().map(|record| (record.spec.id.clone(), record)).collect())
        })
        .await?;
    Ok(instances.get(id).cloned())
}

pub use crate::model::tenant::TenantDependents;

/// Observes tenants through snapshots of the registry.
pub struct TenantObserver {
    registry: Registry,
    tenants: Snapshot<TenantId, TenantRecord>,
    dependents: Snapshot<TenantId, TenantDependents>,
}

impl TenantObserver {
    pub fn new(registry: Registry) -> Self {
        Self { registry, tenants: Snapshot::default(), dependents: Snapshot::default() }
    }

    /// What depends on the tenant, from one listing of the instances and one
    /// of the support plans per window (a plan of a thousand tenants lists
    /// them once, not once per tenant).
    pub async fn dependents(&self, name: &TenantId) -> Result<TenantDependents, RegistryError> {
        let all = self
            .dependents
            .get(|| async {
                let mut by_tenant: HashMap<TenantId, TenantDependents> = HashMap::new();
                for instance in self.registry.list_app_instances().await? {
                    let entry = by_tenant.entry(instance.spec.id.tenant_id.clone()).or_default();
                    entry.instances.push((instance.spec.id.clone(), instance.spec.users));
                }
                for plan in self.registry.list_support_plans().await? {
                    by_tenant.entry(plan.spec.tenant_id.clone()).or_default().support_level = Some(plan.spec.level);
                }
                Ok(Listing::from(by_tenant))
            })
            .await?;
        Ok(all.get(name).cloned().unwrap_or_default())
    }

    /// The tenant as the registry holds it now (at most [`SNAPSHOT_WINDOW`] old,
    /// never older than this process's own last write).
    pub async fn observe(&self, name: &TenantId) -> Result<Option<TenantRecord>, RegistryError> {
        tenant_from(&self.tenants, &self.registry, name).await
    }

    /// Forgets the snapshots; the next read lists again.
    pub async fn invalidate(&self) {
        self.tenants.clear().await;
        self.dependents.clear().await;
    }

    /// How many registry listings this observer has made (for tests and benchmarks).
    pub fn listings(&self) -> u64 {
        self.tenants.listings()
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// Snapshots for app instance reads: registry rows and each target's managed containers.
#[derive(Default)]
pub struct AppObservations {
    instances: Snapshot<AppInstanceId, AppInstanceRecord>,
    tenants: Snapshot<TenantId, TenantRecord>,
    containers: Mutex<HashMap<String, Arc<Snapshot<String, ObservedContainer>>>>,
}

impl AppObservations {
    pub async fn instance(
        &self,
        registry: &Registry,
        id: &AppInstanceId,
    ) -> Result<Option<AppInstanceRecord>, RegistryError> {
        instance_from(&self.instances, registry, id).await
    }

    pub async fn tenant(&self, registry: &Registry, id: &TenantId) -> Result<Option<TenantRecord>, RegistryError> {
        tenant_from(&self.tenants, registry, id).await
    }

    /// The managed container named `name` on `target`, from one list call per window
    /// (environment and limits are not filled; inspect for those).
    pub async fn listed_container(
        &self,
        target: &str,
        runtime: &dyn Runtime,
        name: &str,
    ) -> Result<Option<ObservedContainer>, RuntimeError> {
        let snapshot = Arc::clone(self.containers.lock().await.entry(target.to_owned()).or_default());
        let containers = snapshot
            .get(|| async { Ok(runtime.list_managed().await?.into_iter().map(|c| (c.name.clone(), c)).collect()) })
            .await?;
        Ok(containers.get(name).cloned())
    }

    /// Forgets every snapshot (after a write through this process).
    pub async fn clear(&self) {
        self.instances.clear().await;
        self.tenants.clear().await;
        self.containers.lock().await.clear();
    }
}

/// A zone's record sets by (name, type).
type ZoneSnapshot = Snapshot<(String, String), RecordSet>;

/// Snapshots for domain reads: registry rows, each target's routes (one
/// config read) and each zone's record sets (one zone read).
#[derive(Default)]
pub struct DomainObservations {
    domains: Snapshot<Hostname, DomainRecord>,
    tenants: Snapshot<TenantId, TenantRecord>,
    instances: Snapshot<AppInstanceId, AppInstanceRecord>,
    routes: Mutex<HashMap<String, Arc<Snapshot<String, ObservedRoute>>>>,
    zones: Mutex<HashMap<String, Arc<ZoneSnapshot>>>,
}

impl DomainObservations {
    pub async fn domain(
        &self,
        registry: &Registry,
        hostname: &Hostname,
    ) -> Result<Option<DomainRecord>, RegistryError> {
        let snapshot = self
            .domains
            .get(|| async {
                let records = registry.list_domains().await?;
                Ok(records.into_iter().map(|record| (record.spec.hostname.clone(), record)).collect())
            })
            .await?;
        Ok(snapshot.get(hostname).cloned())
    }

    pub async fn instance(
        &self,
        registry: &Registry,
        id: &AppInstanceId,
    ) -> Result<Option<AppInstanceRecord>, RegistryError> {
        instance_from(&self.instances, registry, id).await
    }

    pub async fn tenant(&self, registry: &Registry, id: &TenantId) -> Result<Option<TenantRecord>, RegistryError> {
        tenant_from(&self.tenants, registry, id).await
    }

    /// Atrium's routes on `target` by host name, from one config read per window.
    pub async fn routes(
        &self,
        target: &str,
        ingress: &dyn Ingress,
    ) -> Result<Arc<Listing<String, ObservedRoute>>, IngressError> {
        let snapshot = Arc::clone(self.routes.lock().await.entry(target.to_owned()).or_default());
        snapshot
            .get(|| async { Ok(ingress.list_routes().await?.into_iter().map(|r| (r.hostname.clone(), r)).collect()) })
            .await
    }

    /// The record sets of `zone`, from one zone read per window.
    pub async fn zone(&self, zone: &str, dns: &dyn DnsZones) -> Result<Vec<RecordSet>, DnsError> {
        let snapshot = Arc::clone(self.zones.lock().await.entry(zone.to_owned()).or_default());
        let sets = snapshot
            .get(|| async {
                Ok(dns
                    .list(zone)
                    .await?
                    .into_iter()
                    .map(|set| ((set.name.clone(), set.record_type.clone()), set))
                    .collect())
            })
            .await?;
        Ok(sets.values().cloned().collect())
    }

    /// Forgets every snapshot (after a write through this process).
    pub async fn clear(&self) {
        self.domains.clear().await;
        self.tenants.clear().await;
        self.instances.clear().await;
        self.routes.lock().await.clear();
        self.zones.lock().await.clear();
    }
}

/// A claim's key in a snapshot: its kind and natural key.
type ClaimKey = (ObjectKind, String);

/// Claims from one listing per window, for the checks a plan makes before a
/// create, and the confirmations that states send back (written in batches:
/// a plan after a bulk create confirms every object once).
pub struct ClaimObserver {
    registry: Registry,
    claims: Snapshot<ClaimKey, Claim>,
    /// Claims this process saw a state hold (kind, key, token): confirmed,
    /// whether or not their batched write has happened yet.
    acknowledged: std::sync::Mutex<std::collections::HashSet<(ObjectKind, String, String)>>,
    /// Confirmations not written yet, and whether a write is on its way.
    pending: std::sync::Mutex<(Vec<Confirmation>, bool)>,
    /// Serializes the batched writes (and lets `flush` wait for the one in flight).
    writing: Mutex<()>,
}

impl ClaimObserver {
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            claims: Snapshot::default(),
            acknowledged: std::sync::Mutex::new(Default::default()),
            pending: std::sync::Mutex::new((Vec::new(), false)),
            writing: Mutex::new(()),
        }
    }

    /// The claim on a key, from the snapshot.
    pub async fn claim(&self, kind: ObjectKind, key: &str) -> Result<Option<Claim>, RegistryError> {
        let claims = self
            .claims
            .get(|| async {
                let claims = self.registry.list_claims().await?;
                Ok(claims.into_iter().map(|claim| ((claim.kind, claim.key.clone()), claim)).collect())
            })
            .await?;
        let Some(mut claim) = claims.get(&(kind, key.to_owned())).cloned() else { return Ok(None) };
        if !claim.confirmed
            && self.acknowledged.lock().is_ok_and(|acknowledged| {
                acknowledged.contains(&(kind, key.to_owned(), claim.create_token.as_str().to_owned()))
            })
        {
            claim.confirmed = true;
        }
        Ok(Some(claim))
    }

    /// Notes that `owner`'s state holds the object made by the create with
    /// `token` (`None`: a state written before tokens existed). The claim is
    /// confirmed, in a batched write, when it was not yet.
    pub async fn acknowledge(
        self: &Arc<Self>,
        kind: ObjectKind,
        key: &str,
        token: Option<&CreateToken>,
        owner: &Owner,
    ) -> Result<(), RegistryError> {
        let Some(claim) = self.claim(kind, key).await? else { return Ok(()) };
        let token = token.cloned().unwrap_or_else(|| CreateToken::from_stored(""));
        let needs_write = claim.create_token == token
            && (!claim.confirmed || (claim.owner.is_legacy_terraform() && owner.is_terraform()));
        if !needs_write {
            return Ok(());
        }
        if let Ok(mut acknowledged) = self.acknowledged.lock() {
            acknowledged.insert((kind, key.to_owned(), token.as_str().to_owned()));
        }
        let start_writer = {
            let Ok(mut pending) = self.pending.lock() else { return Ok(()) };
            pending.0.push((kind, key.to_owned(), token, owner.clone()));
            !std::mem::replace(&mut pending.1, true)
        };
        if start_writer {
            let observer = Arc::clone(self);
            tokio::spawn(async move {
                // Gather what the other refreshes of this plan confirm meanwhile.
                tokio::time::sleep(Duration::from_millis(50)).await;
                if let Err(error) = observer.flush().await {
                    tracing::warn!(error = %error, "cannot record that the state holds its objects; the next plan tries again");
                }
            });
        }
        Ok(())
    }

    /// Writes the confirmations gathered so far (called on shutdown too).
    pub async fn flush(&self) -> Result<(), RegistryError> {
        let _writing = self.writing.lock().await;
        let batch = match self.pending.lock() {
            Ok(mut pending) => {
                pending.1 = false;
                std::mem::take(&mut pending.0)
            }
            Err(_) => return Ok(()),
        };
        if batch.is_empty() {
            return Ok(());
        }
        // The snapshot stays: the confirmed keys are in `acknowledged` already.
        self.registry.confirm_claims(&batch).await
    }

    /// Forgets the snapshot (after a write through this process).
    pub async fn invalidate(&self) {
        self.claims.clear().await;
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

#[cfg(test)]
mod tests {
    use super::Listing;

    #[test]
    fn a_listing_finds_every_key_and_keeps_the_last_of_equal_keys() {
        let listing: Listing<String, u32> =
            [("b", 1), ("a", 2), ("c", 3), ("b", 4)].into_iter().map(|(key, value)| (key.to_owned(), value)).collect();
        assert_eq!(listing.len(), 3);
        assert_eq!(listing.get("a"), Some(&2));
        assert_eq!(listing.get("b"), Some(&4), "the later of two equal keys wins, as in a map");
        assert_eq!(listing.get("c"), Some(&3));
        assert_eq!(listing.get("d"), None);
        assert_eq!(listing.values().copied().collect::<Vec<_>>(), vec![2, 4, 3]);
        let empty: Listing<String, u32> = std::iter::empty().collect();
        assert!(empty.is_empty());
        assert_eq!(empty.get("a"), None);
    }
}
