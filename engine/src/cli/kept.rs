//! `atrium kept` and `atrium purge`: the data destroyed app instances left
//! on the targets (`delete_data_on_destroy = false`), seen and deleted by
//! the instance's handle.

use std::time::Duration;

use super::diagnostic::Diagnostic;
use super::session::Session;
use crate::apply::kept::{KeptData, KeptError, KeptListing};
use crate::backends::error_chain;
use crate::model::app_instance::AppInstanceId;
use crate::model::kept::KeptEntry;

/// How long listing and deleting volumes may take.
const DEADLINE: Duration = Duration::from_secs(300);

fn failed(summary: &str, error: &KeptError) -> Vec<Diagnostic> {
    vec![Diagnostic::new(summary, error_chain(error), None)]
}

/// Lists the kept data of every target (JSON with `json`).
pub async fn list(session: &Session, json: bool) -> Result<i32, Vec<Diagnostic>> {
    let context = session.apps_context(DEADLINE);
    let listing = context.kept_data().await.map_err(|error| failed("Cannot list the kept data", &error))?;
    warn_unreachable(&listing);
    let kept = listing.kept;
    if json {
        // The same entries as the atrium_kept_data data source's `kept`.
        let listed: Vec<KeptEntry> = kept.iter().map(KeptEntry::from).collect();
        println!("{}", serde_json::to_value(listed).unwrap_or_default());
    } else if kept.is_empty() {
        println!("No destroyed app instance left data on the targets.");
    } else {
        println!("{:<32} {:<16} {:<20} {:<8} VOLUMES", "INSTANCE", "TARGET", "OWNER", "BACKUPS");
        for data in &kept {
            let backups = if data.backups { "yes" } else { "no" };
            println!(
                "{:<32} {:<16} {:<20} {:<8} {}",
                data.instance.to_string(),
                data.target,
                data.owner,
                backups,
                data.volumes.join(", ")
            );
        }
    }
    Ok(0)
}

/// Names the targets that did not answer, on stderr: data there is not listed.
fn warn_unreachable(listing: &KeptListing) {
    for (target, reason) in &listing.unreachable {
        eprintln!("Warning: target {target} did not answer; data kept there is not listed ({reason}).");
    }
}

fn describe(kept: &[KeptData]) -> String {
    kept.iter().map(|data| format!("{} on {}", data.volumes.join(", "), data.target)).collect::<Vec<_>>().join("; ")
}

/// Deletes what instance `id` left, after asking (unless `auto_approve`).
pub async fn purge(
    session: &Session,
    id: &AppInstanceId,
    auto_approve: bool,
    confirmed: impl FnOnce(&str) -> bool,
) -> Result<i32, Vec<Diagnostic>> {
    let context = session.apps_context(DEADLINE);
    if !auto_approve {
        let listing = context.kept_data().await.map_err(|error| failed("Cannot list the kept data", &error))?;
        warn_unreachable(&listing);
        let kept: Vec<KeptData> = listing.kept.into_iter().filter(|kept| kept.instance == *id).collect();
        if kept.is_empty() {
            return Err(failed("Nothing to purge", &KeptError::NotFound { id: id.clone() }));
        }
        let question = format!(
            "Delete the data app instance {id} left: {}?\n  Its data and its backups are gone for good; a new instance of the same name starts empty.",
            describe(&kept)
        );
        if !confirmed(&question) {
            println!("\nPurge cancelled.");
            return Ok(1);
        }
    }
    let purged = context.purge_kept(id).await.map_err(|error| failed("Purge failed", &error))?;
    if auto_approve {
        warn_unreachable(&purged);
    }
    println!("Deleted the data app instance {id} left: {}.", describe(&purged.kept));
    Ok(0)
}
