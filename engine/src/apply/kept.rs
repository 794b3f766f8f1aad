//! Data kept on destroy: the volumes an instance destroyed with
//! `delete_data_on_destroy = false` leaves on its target (its data and its
//! backup repository), listed and purged by the instance's handle
//! (`TENANT/NAME`). A new instance of the same name on the same target takes
//! them over (and can restore the kept snapshots); nothing is kept without a
//! way to see it and delete it.

use std::collections::BTreeMap;

use crate::apply::app_instance::AppContext;
use crate::backends::targets::TargetError;
use crate::backends::{RuntimeError, error_chain};
use crate::catalog::backup_volume_name;
use crate::model::app_instance::AppInstanceId;
use crate::model::container::labels;
pub use crate::model::kept::KeptData;
use crate::registry::RegistryError;

/// Why kept data could not be listed or purged.
#[derive(Debug, thiserror::Error)]
pub enum KeptError {
    #[error("cannot read the registry")]
    Registry(#[from] RegistryError),
    #[error("target {target} is not reachable")]
    Target { target: String, source: Box<TargetError> },
    #[error("target {target} failed")]
    Runtime { target: String, source: Box<RuntimeError> },
    #[error(
        "app instance {id} exists: its data is in use, not kept. Destroy it with delete_data_on_destroy = true to delete its data"
    )]
    InUse { id: AppInstanceId },
    #[error("no data of app instance {id} is kept on any target (`atrium kept` lists what is)")]
    NotFound { id: AppInstanceId },
    #[error("the data of app instance {id} kept on target {target} belongs to {owner}; purge it from there")]
    OtherOwner { id: AppInstanceId, target: String, owner: String },
}

/// The kept data of the targets that answered, and the ones that did not
/// (with why): data on those is not listed.
#[derive(Debug, Default)]
pub struct KeptListing {
    pub kept: Vec<KeptData>,
    pub unreachable: Vec<(String, String)>,
}

impl AppContext<'_> {
    /// The data destroyed instances left on every configured target, by
    /// instance and target; the volumes of instances that exist are not kept
    /// data and are left out. A target that does not answer is named in the
    /// listing, not an error: the others' data is still listed.
    pub async fn kept_data(&self) -> Result<KeptListing, KeptError> {
        let live: Vec<(String, String)> = self
            .registry
            .list_app_instances()
            .await?
            .into_iter()
            .map(|record| (record.spec.id.to_string(), record.spec.target))
            .collect();
        let mut listing = KeptListing::default();
        for target in self.targets.names() {
            let volumes = match self.targets.runtime(target).await {
                Ok(runtime) => runtime.list_managed_volumes().await.map_err(|error| error_chain(&error)),
                Err(error) => Err(error_chain(&error)),
            };
            let volumes = match volumes {
                Ok(volumes) => volumes,
                Err(reason) => {
                    listing.unreachable.push((target.to_owned(), reason));
                    continue;
                }
            };
            let mut by_instance: BTreeMap<String, KeptData> = BTreeMap::new();
            for volume in volumes {
                let Some(instance) = volume.labels.get(labels::INSTANCE) else { continue };
                let Ok(id) = AppInstanceId::parse(instance) else { continue };
                if live.contains(&(instance.clone(), target.to_owned())) {
                    continue;
                }
                let entry = by_instance.entry(instance.clone()).or_insert_with(|| KeptData {
                    instance: id.clone(),
                    target: target.to_owned(),
                    owner: volume.labels.get(labels::OWNER).cloned().unwrap_or_default(),
                    volumes: Vec::new(),
                    backups: false,
                    created_at: None,
                });
                entry.backups |= volume.name == backup_volume_name(id.tenant_id.as_str(), &id.name);
                entry.created_at = match (entry.created_at.take(), volume.created_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                entry.volumes.push(volume.name);
            }
            listing.kept.extend(by_instance.into_values());
        }
        Ok(listing)
    }

    /// Deletes the data instance `id` left on the targets that answer, when
    /// this owner made it; what was deleted, and the targets that did not
    /// answer (data there is left).
    /// An instance that exists has kept data only on the targets it moved
    /// away from (the copy a move leaves); its own target's volumes are in use.
    pub async fn purge_kept(&self, id: &AppInstanceId) -> Result<KeptListing, KeptError> {
        let mut listing = self.kept_data().await?;
        listing.kept.retain(|kept| kept.instance == *id);
        if listing.kept.is_empty() {
            return Err(match self.registry.get_app_instance(id).await?.is_some() {
                true => KeptError::InUse { id: id.clone() },
                false => KeptError::NotFound { id: id.clone() },
            });
        }
        // Nothing is deleted unless all of it is this owner's.
        if let Some(other) = listing.kept.iter().find(|kept| kept.owner != self.owner.as_str()) {
            return Err(KeptError::OtherOwner {
                id: id.clone(),
                target: other.target.clone(),
                owner: other.owner.clone(),
            });
        }
        for data in &listing.kept {
            let runtime = self
                .targets
                .runtime(&data.target)
                .await
                .map_err(|source| KeptError::Target { target: data.target.clone(), source: Box::new(source) })?;
            for volume in &data.volumes {
                runtime
                    .remove_volume(volume)
                    .await
                    .map_err(|source| KeptError::Runtime { target: data.target.clone(), source: Box::new(source) })?;
            }
        }
        Ok(listing)
    }
}
