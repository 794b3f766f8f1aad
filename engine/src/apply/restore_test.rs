//! The restore test: a backup is worth something only if it restores. The
//! latest snapshot of an instance is restored into a scratch instance
//! beside it (its own database, volumes and app container, on the tenant's
//! network, with secrets of its own), the app must turn healthy on that
//! data by its catalog health check, the scratch instance is removed, and
//! the result is recorded in the instance's backup volume, where a refresh
//! reads it (`latest_restore_test`). `atrium restore-test` runs it; a timer
//! or cron job running that command is its schedule.
//!
//! The live instance is never touched: the snapshot is read from its
//! repository, nothing is written to it but the result line.

use std::time::Instant;

use crate::apply::app_instance::{AppApplyError, AppContext, backup_jobs, recorded_input, render_instance};
use crate::apply::backups::BackupError;
use crate::backends::{Runtime, error_chain};
use crate::catalog::{BACKUP_ROLE, ContainerRole, RenderedApp, SourceRepository, render_users_in_use_command};
use crate::model::app_instance::{AppInstanceId, AppInstanceRecord, UsersInUseRead};
use crate::model::backup::Snapshot;

/// What a scratch instance's name adds to its instance's: instance names
/// never hold `_`, so no instance can take a scratch instance's names.
pub const SCRATCH_SUFFIX: &str = "_restore-test";

/// A finished restore test: the snapshot it restored and what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreTest {
    pub snapshot: Snapshot,
    /// Whether the app turned healthy on the snapshot's data.
    pub passed: bool,
    /// The result as recorded (and as `latest_restore_test` shows it).
    pub line: String,
    /// `Err` when the result could not be recorded in the backup volume.
    pub recorded: Result<(), String>,
}

/// The scratch instance of `record`: the same app, version and settings
/// under the scratch name, with secrets of its own and no welcome.
fn scratch_of(record: &AppInstanceRecord, secrets: std::collections::BTreeMap<String, String>) -> AppInstanceRecord {
    let mut scratch = record.clone();
    scratch.spec.id = AppInstanceId {
        tenant_id: record.spec.id.tenant_id.clone(),
        name: format!("{}{SCRATCH_SUFFIX}", record.spec.id.name),
    };
    scratch.generation = 0;
    scratch.published_port = None;
    scratch.published_host = None;
    scratch.secrets = secrets;
    scratch.manager_password_hash = String::new();
    scratch
}

/// The line a restore test records: `passed at TIME: ...` or `failed at TIME: ...`.
fn result_line(snapshot: &Snapshot, tested_at: &str, outcome: &Result<String, String>) -> String {
    let what = format!("snapshot {} (taken {})", snapshot.short_id(), snapshot.time);
    let line = match outcome {
        Ok(detail) => format!("passed at {tested_at}: {what} restored into a scratch instance; {detail}"),
        Err(reason) => format!("failed at {tested_at}: {what} restored into a scratch instance; {reason}"),
    };
    // One line of bounded length: it is an attribute in a state.
    let line: String = line.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(500) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

impl AppContext<'_> {
    /// Restores the latest snapshot of instance `id` into a scratch
    /// instance, waits for its app's health check, counts its users (apps
    /// that count them), removes the scratch instance and records the
    /// result. `Err` only when no test could run (no instance, no backups,
    /// no snapshot yet, a snapshot a later version took); a test that ran
    /// and failed is `Ok` with `passed: false`.
    pub async fn restore_test(&self, id: &AppInstanceId) -> Result<RestoreTest, BackupError> {
        let (record, jobs) = self.backups_of(id).await?;
        let entry = self.entry(&record.spec)?;
        let tenant = self.tenant(&record.spec).await?;
        let available = self.list(&record, &jobs.snapshots).await?;
        let Some(chosen) = available.last().cloned() else {
            return Err(BackupError::NoSuchSnapshot { id: id.clone(), snapshot: "latest".to_owned(), available });
        };
        let catalog_error = |reason: String| AppApplyError::Catalog { id: id.clone(), reason };
        let secrets = crate::catalog::required_secrets(entry)
            .into_iter()
            .map(|name| (name, crate::model::password::random_text::<28>()))
            .collect();
        let scratch = scratch_of(&record, secrets);
        let mut rendered = render_instance(entry, &scratch.spec, &tenant, &record.owner, 0, &scratch.secrets, "", None)
            .map_err(catalog_error)?;
        // The scratch instance takes no backups of its own.
        rendered.containers.retain(|c| c.role != ContainerRole::Sidecar(BACKUP_ROLE.to_owned()));
        let scratch_jobs = backup_jobs(entry, &scratch, &tenant, None)
            .map_err(catalog_error)?
            .ok_or_else(|| BackupError::NoBackups { id: id.clone(), app: record.spec.app.clone() })?;
        let source = SourceRepository::of(id.tenant_id.as_str(), &id.name);
        let restore = scratch_jobs.restore_from(&chosen.id, &source).map_err(catalog_error)?;
        // The scratch instance's migration (the live one's would run on the live data).
        let migrate = self.migration_for(&record, &jobs, &chosen)?.1.and(scratch_jobs.migrate.clone());
        let users_command =
            render_users_in_use_command(entry, &recorded_input(&scratch, &tenant)).map_err(catalog_error)?;
        let runtime = self.runtime(id, &record.spec.target).await?;

        tracing::info!(instance = %id, snapshot = %chosen.id, "restore test: restoring into a scratch instance");
        // Leftovers of an interrupted test go first.
        let outcome = match remove_scratch(runtime.as_ref(), &rendered).await {
            Ok(()) => {
                let scratch_run =
                    ScratchRun { runtime: runtime.as_ref(), rendered: &rendered, deadline: self.deadline };
                scratch_run.run(&restore, migrate.as_ref(), users_command.as_deref()).await
            }
            Err(reason) => Err(format!("removing an earlier test's scratch instance failed: {reason}")),
        };
        let removed = crate::backends::retry::with_grace(
            crate::apply::runner::DATA_UNDO_GRACE,
            remove_scratch(runtime.as_ref(), &rendered),
        )
        .await;
        if let Err(reason) = &removed {
            tracing::warn!(instance = %id, %reason, "restore test: the scratch instance was not removed");
        }
        let passed = outcome.is_ok();
        let line = result_line(&chosen, &crate::registry::now_rfc3339(), &outcome);
        let recorded = match self.run(&record, &jobs.record_restore_test(&line)).await {
            Ok(ran) if ran.exit_code == Some(0) => Ok(()),
            Ok(ran) => Err(format!("the job failed (exit code {:?}): {}", ran.exit_code, ran.output.trim())),
            Err(error) => Err(error_chain(&error)),
        };
        let recorded = match (recorded, removed) {
            (Ok(()), Err(reason)) => {
                Err(format!("the scratch instance was not removed ({reason}); the next restore test removes it first"))
            }
            (recorded, _) => recorded,
        };
        Ok(RestoreTest { snapshot: chosen, passed, line, recorded })
    }
}

/// A scratch instance being made and checked on one target.
struct ScratchRun<'a> {
    runtime: &'a dyn Runtime,
    rendered: &'a RenderedApp,
    deadline: std::time::Duration,
}

impl ScratchRun<'_> {
    /// The database and volumes made, the snapshot restored (and migrated),
    /// the app started and healthy; `Ok` says how it went.
    async fn run(
        &self,
        restore: &crate::catalog::ContainerSpec,
        migrate: Option<&crate::catalog::ContainerSpec>,
        users_command: Option<&[String]>,
    ) -> Result<String, String> {
        let runtime = self.runtime;
        let failed = |what: &str| {
            let what = what.to_owned();
            move |error: crate::backends::RuntimeError| format!("{what} failed: {}", error_chain(&error))
        };
        runtime
            .ensure_network(&self.rendered.network, &self.rendered.network_labels)
            .await
            .map_err(failed("making the tenant's network"))?;
        for volume in &self.rendered.volumes {
            runtime.ensure_volume(volume).await.map_err(failed(&format!("making volume {}", volume.name)))?;
        }
        let sidecars: Vec<_> = self.rendered.containers.iter().filter(|c| c.role != ContainerRole::App).collect();
        for sidecar in &sidecars {
            runtime.ensure_container(sidecar).await.map_err(failed(&format!("starting {}", sidecar.name)))?;
        }
        for sidecar in sidecars.iter().filter(|c| c.health.is_some()) {
            let remaining = crate::backends::retry::remaining(self.deadline);
            runtime
                .wait_healthy(&sidecar.name, remaining)
                .await
                .map_err(failed(&format!("{}'s health check", sidecar.name)))?;
        }
        for (what, job) in std::iter::once(("the restore", restore)).chain(migrate.map(|job| ("the migration", job))) {
            let remaining = crate::backends::retry::remaining(self.deadline);
            let ran = runtime.run_once(job, remaining).await.map_err(failed(what))?;
            if ran.exit_code != Some(0) {
                let output: String =
                    ran.output.trim().chars().rev().take(400).collect::<Vec<_>>().into_iter().rev().collect();
                return Err(format!("{what} failed (exit code {:?}): {output}", ran.exit_code));
            }
        }
        let app = self.rendered.app_container();
        runtime.ensure_container(app).await.map_err(failed("starting the app"))?;
        let started = Instant::now();
        let remaining = crate::backends::retry::remaining(self.deadline);
        runtime.wait_healthy(&app.name, remaining).await.map_err(failed("the app's health check"))?;
        let healthy_after = started.elapsed().as_secs();
        let mut detail = format!("the app turned healthy {healthy_after} s after it started");
        if let Some(command) = users_command {
            let output = runtime.exec(&app.name, command).await.map_err(failed("counting its users"))?;
            match (output.exit_code, UsersInUseRead::parse(&output.output)) {
                (Some(0), UsersInUseRead::Read(Some(users))) => detail.push_str(&format!(" and counts {users} users")),
                _ => return Err(format!("the app is healthy but could not count its users: {}", output.output.trim())),
            }
        }
        Ok(detail)
    }
}

/// Removes a scratch instance's containers and volumes (missing ones are fine).
async fn remove_scratch(runtime: &dyn Runtime, rendered: &RenderedApp) -> Result<(), String> {
    for container in rendered.containers.iter().rev() {
        runtime.remove_container(&container.name).await.map_err(|error| error_chain(&error))?;
    }
    for volume in &rendered.volumes {
        runtime.remove_volume(&volume.name).await.map_err(|error| error_chain(&error))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot::new("3f9a12bc77aa", "2026-12-04T01:00:00.123Z").expect("a snapshot")
    }

    #[test]
    fn the_result_is_one_bounded_line_saying_passed_or_failed() {
        let passed =
            result_line(&snapshot(), "2026-12-04T02:00:00Z", &Ok("the app turned healthy 4 s after it started".into()));
        assert_eq!(
            passed,
            "passed at 2026-12-04T02:00:00Z: snapshot 3f9a12bc (taken 2026-12-04T01:00:00.123Z) restored into a scratch instance; the app turned healthy 4 s after it started"
        );
        let failed = result_line(
            &snapshot(),
            "2026-12-04T02:00:00Z",
            &Err("the restore failed (exit code Some(1)):\nno dump\n".into()),
        );
        assert!(failed.starts_with("failed at 2026-12-04T02:00:00Z: snapshot 3f9a12bc"), "{failed}");
        assert!(!failed.contains('\n'), "{failed}");
        let long = result_line(&snapshot(), "2026-12-04T02:00:00Z", &Err("é".repeat(2000)));
        assert_eq!(long.chars().count(), 501, "{long}");
        assert!(long.ends_with('…'));
    }

    #[test]
    fn a_scratch_instance_has_a_name_no_instance_can_take_and_secrets_of_its_own() {
        let id = AppInstanceId::parse("acme/erp").expect("an id");
        assert!(crate::model::app_instance::check_instance_name(&format!("erp{SCRATCH_SUFFIX}")).is_err());
        assert!(AppInstanceId::parse(&format!("{id}{SCRATCH_SUFFIX}")).is_err(), "kept-data listings skip it");
        let record = AppInstanceRecord {
            spec: crate::model::app_instance::AppInstanceSpec {
                id: id.clone(),
                app: "redmine".into(),
                channel: "stable".into(),
                version: "5.0".into(),
                target: "local".into(),
                users: 10,
                replicas: 1,
                resources: None,
                environment: Default::default(),
                extra_volumes: Default::default(),
                files: Default::default(),
                admin_password: None,
                password_version: 0,
                delete_data_on_destroy: false,
                backup: None,
                restore: None,
            },
            generation: 4,
            previous_version: None,
            deployed_at: "2026-12-01T10:00:00Z".into(),
            published_port: Some(32768),
            published_host: None,
            moved_from: None,
            secrets: [("postgres_password".to_owned(), "the-live-one".to_owned())].into(),
            manager_password_hash: "$6$rounds=5000$c2FsdA$sample".into(),
            welcome: crate::model::app_instance::WelcomeState::Sent,
            password_given: false,
            owner: "terraform".into(),
            created_at: "2026-12-01T09:00:00Z".into(),
        };
        let scratch = scratch_of(&record, [("postgres_password".to_owned(), "new".to_owned())].into());
        assert_eq!(scratch.spec.id.name, "erp_restore-test");
        assert_eq!(scratch.spec.id.tenant_id, id.tenant_id);
        assert_eq!(scratch.secrets.get("postgres_password").map(String::as_str), Some("new"));
        assert_eq!((scratch.generation, scratch.published_port, scratch.manager_password_hash.as_str()), (0, None, ""));
        assert_eq!((scratch.spec.app, scratch.spec.version), (record.spec.app, record.spec.version));
    }
}
