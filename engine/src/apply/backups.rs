//! An instance's backups on demand: take one now, list them, restore one in
//! place. The scheduled ones are taken by the instance's backup container
//! (see [`crate::catalog::render_backups`]); these run the same script as a
//! one-shot job beside it, under the same lock.

use crate::apply::app_instance::{AppApplyError, AppContext, backup_jobs};
use crate::apply::runner::injectable;
use crate::backends::{CommandOutput, RuntimeError, error_chain};
use crate::catalog::{
    BackupJobs, ContainerSpec, OffsiteStore, STORE_NAME, SourceRepository, VERSION_TAG, labels,
    render_app_container_name,
};
use crate::model::app_instance::{AppInstanceId, AppInstanceRecord};
use crate::model::backup::Snapshot;

/// Why a backup, a listing or a restore did not complete.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("app instance {id} does not exist")]
    NotFound { id: AppInstanceId },
    #[error("app {app} of instance {id} takes no backups (its catalog entry declares none)")]
    NoBackups { id: AppInstanceId, app: String },
    #[error(transparent)]
    Apply(#[from] AppApplyError),
    #[error(
        "snapshot {snapshot} of app instance {id} was taken by version {taken_by}, whose data version {running} (which the instance runs) cannot read: upgrade the instance to {taken_by} first, or restore a snapshot taken by {running}; nothing was changed"
    )]
    LaterVersion { id: AppInstanceId, snapshot: String, taken_by: String, running: String },
    #[error("app instance {id} has no snapshot {snapshot}: {}", list_snapshots(available))]
    NoSuchSnapshot { id: AppInstanceId, snapshot: String, available: Vec<Snapshot> },
    #[error("app instance {id} cannot be restored from the backups of {from}: {reason}; nothing was changed")]
    CloneRefused { id: AppInstanceId, from: AppInstanceId, reason: String },
    #[error(
        "app instance {id} cannot be restored from the off-site copy of target {target}'s backups: {reason}; nothing was changed"
    )]
    NoOffsiteStore { id: AppInstanceId, target: String, reason: String },
    #[error("{what} of app instance {id} failed (exit code {exit_code:?}). Its output: {output}")]
    Job { id: AppInstanceId, what: &'static str, exit_code: Option<i64>, output: String },
    #[error("restoring snapshot {} of app instance {id} failed: {}; {}", failure.snapshot, failure.reason, failure.kept)]
    Restore { id: AppInstanceId, failure: Box<RestoreFailure> },
}

fn list_snapshots(snapshots: &[Snapshot]) -> String {
    if snapshots.is_empty() {
        return "it has none yet (take one with a backup first)".to_owned();
    }
    let listed: Vec<String> = snapshots.iter().map(|s| format!("{} ({})", s.short_id(), s.time)).collect();
    format!("give `latest` or one of {}", listed.join(", "))
}

/// How a restore failed: the snapshot, why, and what serves now.
#[derive(Debug)]
pub struct RestoreFailure {
    pub snapshot: String,
    pub reason: String,
    pub kept: String,
}

/// What serves after a restore that failed before any data changed.
const NOTHING_CHANGED: &str = "nothing was changed: the app serves its data as before";

/// The error of a restore's step that failed before any data changed.
fn failed_step<'a>(id: &'a AppInstanceId, snapshot: &'a str) -> impl Fn(String) -> BackupError + 'a {
    move |reason| BackupError::Restore {
        id: id.clone(),
        failure: Box::new(RestoreFailure { snapshot: snapshot.to_owned(), reason, kept: NOTHING_CHANGED.to_owned() }),
    }
}

/// How a failed job begins its reason.
const JOB_FAILED: &str = "its job failed";

/// A job's run as a step's result: the reason, with its output, when it failed.
fn job_succeeded(ran: CommandOutput) -> Result<(), String> {
    match ran.exit_code {
        Some(0) => Ok(()),
        _ => Err(format!("{JOB_FAILED} (exit code {:?}). Its output: {}", ran.exit_code, ran.output)),
    }
}

/// A finished restore: the snapshot restored, and the one taken of the data
/// it replaced (so nothing is lost by restoring the wrong one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub restored: Snapshot,
    pub replaced_data: Snapshot,
    /// What became of the manager's password (the restore brought back the
    /// snapshot's accounts): `Ok` what was done (a new one emailed), `Err`
    /// why she cannot sign in with a password she was given yet.
    pub manager: Result<String, String>,
}

impl AppContext<'_> {
    pub(super) async fn backups_of(&self, id: &AppInstanceId) -> Result<(AppInstanceRecord, BackupJobs), BackupError> {
        let record = self
            .registry
            .get_app_instance(id)
            .await
            .map_err(self.registry_error(id))?
            .ok_or_else(|| BackupError::NotFound { id: id.clone() })?;
        let entry = self.entry(&record.spec)?;
        let tenant = self.tenant(&record.spec).await?;
        let offsite = self.offsite_store(&record.spec.target).map(|(_, store)| store);
        let jobs = backup_jobs(entry, &record, &tenant, offsite.as_ref())
            .map_err(|reason| AppApplyError::Catalog { id: id.clone(), reason })?
            .ok_or_else(|| BackupError::NoBackups { id: id.clone(), app: record.spec.app.clone() })?;
        Ok((record, jobs))
    }

    /// Makes sure the off-site store of `target`'s backups runs on its own
    /// target (when `target` names one), for instance `id`'s deployment.
    /// Parallel deployments share one check.
    pub(super) async fn ensure_offsite_store(&self, id: &AppInstanceId, target: &str) -> Result<(), AppApplyError> {
        let Some((store_target, store)) = self.offsite_store(target) else {
            return Ok(());
        };
        let store_target = store_target.as_str();
        let container = store.container().map_err(|reason| AppApplyError::Catalog { id: id.clone(), reason })?;
        let runtime = self.runtime(id, store_target).await?;
        let labels = OffsiteStore::labels();
        let volume = crate::catalog::VolumeSpec { name: STORE_NAME.to_owned(), labels: labels.clone() };
        self.targets
            .coalesce(&format!("offsite-store/{store_target}"), || async {
                runtime.ensure_network(STORE_NAME, &labels).await?;
                runtime.ensure_volume(&volume).await?;
                runtime.ensure_container(&container).await
            })
            .await
            .map_err(self.runtime_error(id, store_target))
    }

    pub(super) async fn run(
        &self,
        record: &AppInstanceRecord,
        job: &crate::catalog::ContainerSpec,
    ) -> Result<CommandOutput, BackupError> {
        let (id, target) = (&record.spec.id, &record.spec.target);
        let runtime = self.runtime(id, target).await?;
        let remaining = crate::backends::retry::remaining(self.deadline);
        Ok(runtime.run_once(job, remaining).await.map_err(self.runtime_error(id, target))?)
    }

    /// Takes a backup of the instance now (the database dumped, the app's
    /// volumes read) into its repository; returns the new snapshot.
    pub async fn backup_now(&self, id: &AppInstanceId) -> Result<Snapshot, BackupError> {
        let (record, jobs) = self.backups_of(id).await?;
        self.take_backup(&record, &jobs.backup_now).await
    }

    async fn take_backup(
        &self,
        record: &AppInstanceRecord,
        job: &crate::catalog::ContainerSpec,
    ) -> Result<Snapshot, BackupError> {
        let id = &record.spec.id;
        let ran = self.run(record, job).await?;
        let saved = ran.output.lines().rev().find_map(|line| line.strip_prefix("atrium-backup: snapshot "));
        match (ran.exit_code, saved.and_then(|saved| saved.split_once(' '))) {
            (Some(0), Some((snapshot, time))) => Snapshot::new(snapshot, time)
                .map(|taken| Snapshot { version: Some(record.spec.version.clone()), ..taken })
                .ok_or_else(|| BackupError::Job {
                    id: id.clone(),
                    what: "the backup",
                    exit_code: ran.exit_code,
                    output: format!("not a snapshot id and time: {saved:?}"),
                }),
            _ => Err(BackupError::Job {
                id: id.clone(),
                what: "the backup",
                exit_code: ran.exit_code,
                output: ran.output,
            }),
        }
    }

    /// The instance's snapshots, oldest first.
    pub async fn snapshots(&self, id: &AppInstanceId) -> Result<Vec<Snapshot>, BackupError> {
        let (record, jobs) = self.backups_of(id).await?;
        self.list(&record, &jobs.snapshots).await
    }

    pub(super) async fn list(
        &self,
        record: &AppInstanceRecord,
        job: &crate::catalog::ContainerSpec,
    ) -> Result<Vec<Snapshot>, BackupError> {
        let id = &record.spec.id;
        let ran = self.run(record, job).await?;
        let failed = |output: String| BackupError::Job {
            id: id.clone(),
            what: "listing the snapshots",
            exit_code: ran.exit_code,
            output,
        };
        if ran.exit_code != Some(0) {
            return Err(failed(ran.output.clone()));
        }
        let listing = ran.output.lines().find(|line| line.starts_with('[')).unwrap_or_default();
        #[derive(serde::Deserialize)]
        struct Listed {
            id: String,
            time: String,
            #[serde(default)]
            tags: Vec<String>,
        }
        let listed: Vec<Listed> =
            serde_json::from_str(listing).map_err(|error| failed(format!("{error} in {:?}", ran.output)))?;
        listed
            .into_iter()
            .map(|snapshot| {
                let version = snapshot.tags.iter().find_map(|tag| tag.strip_prefix(VERSION_TAG)).map(str::to_owned);
                Snapshot::new(&snapshot.id, &snapshot.time)
                    .map(|found| Snapshot { version, ..found })
                    .ok_or_else(|| failed(format!("{:?} is not a snapshot id", snapshot.id)))
            })
            .collect()
    }

    /// Restores `snapshot` (an id, a prefix of one, or `latest`) in place:
    /// a backup of the data as it is now is taken first (and handed to
    /// `replaced`, so that a caller can show it before anything changes),
    /// while the snapshot is restored into a staging directory beside it
    /// (the app serving on: a snapshot that cannot be read changes nothing);
    /// then the app stops, the snapshot's volumes and database are put back (and
    /// migrated when an earlier version took it), and the app starts again
    /// (when it ran) and must turn healthy. When any of that fails (the job,
    /// the runtime, the health check), the data it replaced is put back from
    /// that first backup and the app starts again on it.
    pub async fn restore(
        &self,
        id: &AppInstanceId,
        snapshot: &str,
        replaced: impl FnOnce(&Snapshot) + Send,
    ) -> Result<Restored, BackupError> {
        self.restore_from(id, None, None, snapshot, replaced).await
    }

    /// Restores `snapshot` of `from`'s repository (another instance of the
    /// same tenant and app on the same target, live or destroyed with its
    /// data kept) into instance `id`, as [`AppContext::restore`] does its
    /// own (`None`): a clone, e.g. to test an upgrade on a copy. With
    /// `offsite_of`, the snapshot is read from the copy of `from`'s (or the
    /// instance's own) backups in the off-site store of that target: how an
    /// instance comes back on another target when its own is lost.
    pub async fn restore_from(
        &self,
        id: &AppInstanceId,
        from: Option<&AppInstanceId>,
        offsite_of: Option<&str>,
        snapshot: &str,
        replaced: impl FnOnce(&Snapshot) + Send,
    ) -> Result<Restored, BackupError> {
        let (record, jobs) = self.backups_of(id).await?;
        jobs.restore(snapshot).map_err(|reason| AppApplyError::Catalog { id: id.clone(), reason })?;
        let source = match (from, offsite_of) {
            (from, Some(target)) => Some(self.offsite_source(&record, from, target).await?),
            (Some(from), None) => Some(self.clone_source(&record, from).await?),
            (None, None) => None,
        };
        // The snapshot is chosen before anything changes (`latest` must not
        // become the backup taken below).
        let listing = source.as_ref().map_or_else(|| jobs.snapshots.clone(), |source| jobs.snapshots_in(source));
        let available = self.list(&record, &listing).await?;
        let chosen = match snapshot {
            "latest" => available.last(),
            prefix => {
                let matching: Vec<&Snapshot> = available.iter().filter(|s| s.id.starts_with(prefix)).collect();
                match matching.as_slice() {
                    [one] => Some(*one),
                    _ => None,
                }
            }
        };
        let Some(chosen) = chosen.cloned() else {
            return Err(BackupError::NoSuchSnapshot { id: id.clone(), snapshot: snapshot.to_owned(), available });
        };
        let (taken_by, migrate) = self.migration_for(&record, &jobs, &chosen)?;
        let catalog_error = |reason| AppApplyError::Catalog { id: id.clone(), reason };
        let staged = jobs.staged(&chosen.id, source.as_ref()).map_err(catalog_error)?;
        // Another deployment on the target waits while the app is down.
        let _slot = self.targets.deployment_slot(&record.spec.target).await;
        // The backup of the data the restore replaces, and the snapshot
        // restored into the staging directory beside it: the app serves on.
        let (replaced_data, stage) = tokio::join!(
            injectable("back up the data the restore replaces", failed_step(id, &chosen.id), async {
                self.take_backup(&record, &jobs.backup_keeping_all()).await
            }),
            injectable("stage the snapshot", failed_step(id, &chosen.id), async {
                job_succeeded(self.run(&record, &staged.stage).await?).map_err(failed_step(id, &chosen.id))
            })
        );
        let replaced_data = match stage.and(replaced_data) {
            Ok(replaced_data) => replaced_data,
            Err(error) => {
                // What the staging left is thrown away (the next restore
                // would anyway); the backup taken, if any, stays.
                if let Err(error) = self.run(&record, &staged.discard).await {
                    tracing::warn!(instance = %id, error = %error_chain(&error), "could not throw away a restore's staging directory");
                }
                return Err(error);
            }
        };
        tracing::info!(instance = %id, snapshot = %replaced_data.id, "took a backup of the data the restore replaces");
        replaced(&replaced_data);
        let back = jobs.restore(&replaced_data.id).map_err(catalog_error)?;
        let target = &record.spec.target;
        let runtime = self.runtime(id, target).await?;
        let app = render_app_container_name(&record.spec, record.generation);
        let was_running =
            runtime.inspect(&app).await.map_err(self.runtime_error(id, target))?.is_some_and(|c| c.running);
        let stopped = injectable("stop the app", failed_step(id, &chosen.id), async {
            Ok(runtime.stop_container(&app).await.map_err(self.runtime_error(id, target))?)
        })
        .await;
        if let Err(error) = stopped {
            // No data changed: the app serves on (again), the staging is thrown away.
            let restarted =
                self.put_in(&record, &app, &[("throw the staging away", &staged.discard)], was_running).await;
            if let Err(reason) = restarted {
                tracing::warn!(instance = %id, reason = %reason, "could not start the app again after a failed stop");
            }
            return Err(error);
        }
        let steps: Vec<(&str, &ContainerSpec)> = std::iter::once(("put the data in", &staged.put_in))
            .chain(migrate.as_ref().map(|job| ("migrate the data", job)))
            .collect();
        let failed = match self.put_in(&record, &app, &steps, was_running).await {
            Ok(()) => {
                let manager = self.renew_manager_after_restore(id, was_running, &chosen).await;
                return Ok(Restored { restored: chosen, replaced_data, manager });
            }
            Err(reason) => reason,
        };
        let failed = if migrate.is_some() && failed.starts_with(JOB_FAILED) {
            format!("{failed} (the restore or the migration of the data {} {taken_by} wrote)", record.spec.app)
        } else {
            failed
        };
        tracing::warn!(instance = %id, snapshot = %chosen.id, reason = %failed, "the restore failed; putting back the data it replaced");
        // The data the failed run may have changed part of is put back, and
        // the app starts on it, with time of its own past the deadline.
        let undone = crate::backends::retry::with_grace(
            crate::apply::runner::DATA_UNDO_GRACE,
            self.put_in(&record, &app, &[("put the replaced data back", &back)], was_running),
        )
        .await;
        let kept = match undone {
            Ok(()) => {
                format!("the data it would have replaced was put back from snapshot {}", replaced_data.short_id())
            }
            Err(reason) => format!(
                "putting back the data it would have replaced failed too ({reason}): that data is snapshot {}; restore it with `atrium restore {id} {}`",
                replaced_data.short_id(),
                replaced_data.short_id()
            ),
        };
        Err(BackupError::Restore {
            id: id.clone(),
            failure: Box::new(RestoreFailure { snapshot: chosen.id, reason: failed, kept }),
        })
    }

    /// The version that took `chosen` and the migration its data needs to
    /// run on `record`'s version (none when the same version took it). Data a
    /// later version wrote is never given to an earlier one.
    pub(super) fn migration_for(
        &self,
        record: &AppInstanceRecord,
        jobs: &BackupJobs,
        chosen: &Snapshot,
    ) -> Result<(String, Option<crate::catalog::ContainerSpec>), BackupError> {
        let running = &record.spec.version;
        let taken_by = chosen.version.clone().unwrap_or_else(|| running.clone());
        let entry = self.entry(&record.spec)?;
        if entry.downgrade_refusal(&record.spec.channel, &taken_by, running).is_some() {
            return Err(BackupError::LaterVersion {
                id: record.spec.id.clone(),
                snapshot: chosen.short_id().to_owned(),
                taken_by,
                running: running.clone(),
            });
        }
        let migrate = if taken_by != *running { jobs.migrate.clone() } else { None };
        Ok((taken_by, migrate))
    }

    /// The repository a clone of `from` into `record` reads: `from` must be
    /// another instance of the same tenant (a customer's data never goes to
    /// another's), of the same app when it exists, made by this owner, with
    /// its backups on `record`'s target.
    async fn clone_source(
        &self,
        record: &AppInstanceRecord,
        from: &AppInstanceId,
    ) -> Result<SourceRepository, BackupError> {
        let id = &record.spec.id;
        let refused = |reason: String| BackupError::CloneRefused { id: id.clone(), from: from.clone(), reason };
        if from == id {
            return Err(refused("it is the same instance: restore it without `from`".to_owned()));
        }
        self.check_clone(record, from).await?;
        let volume_name = crate::catalog::backup_volume_name(from.tenant_id.as_str(), &from.name);
        let target = &record.spec.target;
        let runtime = self.runtime(id, target).await?;
        let volumes = runtime.list_managed_volumes().await.map_err(self.runtime_error(id, target))?;
        let Some(volume) = volumes.iter().find(|volume| volume.name == volume_name) else {
            return Err(refused(format!("it has no backups on target {target} (no volume {volume_name})")));
        };
        let owner = volume.labels.get(labels::OWNER).map(String::as_str).unwrap_or_default();
        if owner != self.owner.as_str() {
            return Err(refused(format!("its data belongs to {owner}")));
        }
        Ok(SourceRepository::of(from.tenant_id.as_str(), &from.name))
    }

    /// The copy of `from`'s backups (`None`: the instance's own) in the
    /// off-site store of `target`, checked as a clone's source is (without
    /// its volume: the copy is what is left when that target is lost). The
    /// store keeps each owner's copies apart.
    async fn offsite_source(
        &self,
        record: &AppInstanceRecord,
        from: Option<&AppInstanceId>,
        target: &str,
    ) -> Result<SourceRepository, BackupError> {
        let id = &record.spec.id;
        let from = from.unwrap_or(id);
        if from != id {
            self.check_clone(record, from).await?;
        }
        let refused =
            |reason: String| BackupError::NoOffsiteStore { id: id.clone(), target: target.to_owned(), reason };
        if self.targets.document(target).is_err() {
            return Err(refused(format!("the configuration has no target {target}")));
        }
        let (_, store) = self.offsite_store(target).ok_or_else(|| {
            refused(format!("target {target} sends its backups to no off-site store (it has no offsite_backups block)"))
        })?;
        Ok(SourceRepository::offsite(&store, self.owner.as_str(), from.tenant_id.as_str(), &from.name))
    }

    /// Refuses a clone of `from` into `record` of another tenant or app.
    async fn check_clone(&self, record: &AppInstanceRecord, from: &AppInstanceId) -> Result<(), BackupError> {
        let id = &record.spec.id;
        let refused = |reason: String| BackupError::CloneRefused { id: id.clone(), from: from.clone(), reason };
        if from.tenant_id != id.tenant_id {
            return Err(refused(format!(
                "it belongs to tenant {}: an instance is cloned only from instances of its own tenant",
                from.tenant_id
            )));
        }
        if let Some(source) = self.registry.get_app_instance(from).await.map_err(self.registry_error(id))?
            && source.spec.app != record.spec.app
        {
            return Err(refused(format!("it runs {}, not {}", source.spec.app, record.spec.app)));
        }
        Ok(())
    }

    /// Runs `jobs` (named steps: the data put in, then migrated; the app
    /// stopped) one after the other, then starts the app again when it ran
    /// and waits until it is healthy; the registry and the routes follow the
    /// port it publishes now.
    async fn put_in(
        &self,
        record: &AppInstanceRecord,
        app: &str,
        jobs: &[(&str, &ContainerSpec)],
        start: bool,
    ) -> Result<(), String> {
        let (id, target) = (&record.spec.id, &record.spec.target);
        let chain = |error: AppApplyError| error_chain(&error);
        for &(name, job) in jobs {
            injectable(name, |reason| reason, async {
                job_succeeded(self.run(record, job).await.map_err(|error| error_chain(&error))?)
            })
            .await?;
        }
        if !start {
            return Ok(());
        }
        let runtime = self.runtime(id, target).await.map_err(chain)?;
        let runtime_error = |error: RuntimeError| chain(self.runtime_error(id, target)(error));
        injectable("start the app", |reason| reason, async {
            runtime.start_container(app).await.map_err(runtime_error)
        })
        .await?;
        injectable("wait until the app is healthy", |reason| reason, async {
            runtime.wait_healthy(app, self.deadline).await.map_err(runtime_error)
        })
        .await?;
        // A restarted container publishes its port anew.
        if let Some(observed) = runtime.inspect(app).await.map_err(runtime_error)?
            && let Some(refreshed) = record.with_address(observed.published_port, observed.published_host)
        {
            self.registry.put_app_instance(&refreshed).await.map_err(|error| chain(self.registry_error(id)(error)))?;
            self.repoint_routes(&refreshed).await.map_err(chain)?;
        }
        Ok(())
    }
}
