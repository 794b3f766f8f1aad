//! `atrium backup`, `atrium snapshots`, `atrium restore` and `atrium
//! restore-test`: an app instance's backups by hand, beside the ones its
//! backup container takes on its schedule.

use std::time::Duration;

use super::diagnostic::Diagnostic;
use super::session::Session;
use crate::apply::backups::BackupError;
use crate::backends::error_chain;
use crate::model::app_instance::AppInstanceId;
use crate::model::backup::Snapshot;
use crate::model::ownership::ObjectKind;

/// How long one backup or restore may take (a large database takes minutes).
pub const DEADLINE: Duration = Duration::from_secs(3600);

/// The instance named on the command line, checked.
pub fn instance_id(text: &str) -> Result<AppInstanceId, Vec<Diagnostic>> {
    AppInstanceId::parse(text).map_err(|detail| {
        vec![Diagnostic::new("Invalid app instance", format!("{text:?}: {detail}; write TENANT/NAME"), None)]
    })
}

fn failed(summary: &str, error: &BackupError) -> Vec<Diagnostic> {
    vec![Diagnostic::new(summary, error_chain(error), None)]
}

/// Takes a backup now; prints the snapshot.
pub async fn backup(session: &Session, id: &AppInstanceId) -> Result<i32, Vec<Diagnostic>> {
    let context = session.apps_context(DEADLINE);
    let snapshot = context.backup_now(id).await.map_err(|error| failed("Backup failed", &error))?;
    println!("Backed up app instance {id}: snapshot {} ({}).", snapshot.short_id(), snapshot.time);
    Ok(0)
}

/// Lists the snapshots, oldest first (JSON with `json`).
pub async fn snapshots(session: &Session, id: &AppInstanceId, json: bool) -> Result<i32, Vec<Diagnostic>> {
    let context = session.apps_context(DEADLINE);
    let snapshots = context.snapshots(id).await.map_err(|error| failed("Cannot list the snapshots", &error))?;
    if json {
        let listed: Vec<serde_json::Value> =
            snapshots.iter().map(|s| serde_json::json!({ "id": s.id, "time": s.time })).collect();
        println!("{}", serde_json::Value::Array(listed));
    } else if snapshots.is_empty() {
        println!("App instance {id} has no snapshots yet.");
    } else {
        println!("{:<10} TIME", "SNAPSHOT");
        for snapshot in &snapshots {
            println!("{:<10} {}", snapshot.short_id(), snapshot.time);
        }
    }
    Ok(0)
}

/// Tests restores of the instances `ids` (none: every instance of this
/// owner whose app takes backups), one after another; exit code 1 when a
/// test failed or could not run.
pub async fn restore_test(session: &Session, ids: &[AppInstanceId]) -> Result<i32, Vec<Diagnostic>> {
    let registry = &session.platform.registry;
    let registry_failed = |error: crate::registry::RegistryError| {
        vec![Diagnostic::new("Cannot read the registry", error_chain(&error), None)]
    };
    let every = ids.is_empty();
    let ids: Vec<AppInstanceId> = if every {
        let instances = registry.list_app_instances().await.map_err(registry_failed)?;
        instances
            .into_iter()
            .filter(|record| record.owner == session.owner.as_str())
            .filter(|record| {
                session.platform.catalog().get(&record.spec.app).is_some_and(|entry| entry.backup.is_some())
            })
            .map(|record| record.spec.id)
            .collect()
    } else {
        ids.to_vec()
    };
    for id in &ids {
        let claim = registry.get_claim(ObjectKind::AppInstance, &id.to_string()).await.map_err(registry_failed)?;
        if let Some(claim) = claim.filter(|claim| claim.owner != session.owner) {
            return Err(vec![Diagnostic::new(
                "App instance belongs to another owner",
                format!("{id} is managed by {}; test its restores from there", claim.owner),
                None,
            )]);
        }
    }
    if ids.is_empty() {
        println!("No app instance of {} takes backups: nothing to test.", session.owner.as_str());
        return Ok(0);
    }
    let context = session.apps_context(DEADLINE);
    let mut failures = 0;
    for id in &ids {
        match context.restore_test(id).await {
            Ok(test) => {
                println!("{id}: {}", test.line);
                if let Err(reason) = &test.recorded {
                    eprintln!("Warning: {id}: the result was not recorded: {reason}");
                }
                failures += usize::from(!test.passed);
            }
            // Every instance's, when none was named: one without a snapshot yet is not a failure.
            Err(BackupError::NoSuchSnapshot { available, .. }) if every && available.is_empty() => {
                println!("{id}: no snapshot yet; not tested.");
            }
            Err(error) => {
                eprintln!("{id}: the restore test could not run: {}", error_chain(&error));
                failures += 1;
            }
        }
    }
    if failures > 0 {
        eprintln!("{failures} of {} restore tests failed or could not run.", ids.len());
    }
    Ok(i32::from(failures > 0))
}

/// Restores a snapshot in place, after asking (unless `auto_approve`).
/// Only the owner of the instance may: another team's data is not this
/// owner's to replace.
pub async fn restore(
    session: &Session,
    id: &AppInstanceId,
    from: Option<&AppInstanceId>,
    offsite_of: Option<&str>,
    snapshot: &str,
    auto_approve: bool,
    confirmed: impl FnOnce(&str) -> bool,
) -> Result<i32, Vec<Diagnostic>> {
    let registry = &session.platform.registry;
    let claim = registry
        .get_claim(ObjectKind::AppInstance, &id.to_string())
        .await
        .map_err(|error| vec![Diagnostic::new("Cannot read the registry", error_chain(&error), None)])?;
    if let Some(claim) = claim.filter(|claim| claim.owner != session.owner) {
        return Err(vec![Diagnostic::new(
            "App instance belongs to another owner",
            format!(
                "{id} is managed by {}; restore it from there (the atrium CLI never replaces another owner's data)",
                claim.owner
            ),
            None,
        )]);
    }
    let mut whose = from.map(|from| format!(" of {from}")).unwrap_or_default();
    if let Some(target) = offsite_of {
        whose.push_str(&format!(" in the off-site copy of target {target}'s backups"));
    }
    let question = format!(
        "Restore app instance {id} from snapshot {snapshot}{whose}?\n  Its data (database and volumes) is replaced by the snapshot's; a backup of the data as it is now is taken first."
    );
    if !auto_approve && !confirmed(&question) {
        println!("\nRestore cancelled.");
        return Ok(1);
    }
    let context = session.apps_context(DEADLINE);
    // The backup of the data about to be replaced is shown before anything
    // changes: whatever happens next, the operator knows where it is.
    let replaced = |taken: &Snapshot| {
        println!(
            "Took snapshot {} ({}) of the data the restore replaces; restoring it undoes the restore.",
            taken.short_id(),
            taken.time
        );
    };
    let restored = context
        .restore_from(id, from, offsite_of, snapshot, replaced)
        .await
        .map_err(|error| failed("Restore failed", &error))?;
    println!(
        "Restored app instance {id} from snapshot {}{whose} ({}). The data it replaced is snapshot {}.",
        restored.restored.short_id(),
        restored.restored.time,
        restored.replaced_data.short_id(),
    );
    match &restored.manager {
        Ok(done) => println!("The app's accounts are as the snapshot had them: {done}."),
        Err(warning) => eprintln!("Warning: the app's accounts are as the snapshot had them: {warning}."),
    }
    Ok(0)
}
