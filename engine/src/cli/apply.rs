//! Carrying out a plan: deletes first (dependents before what they depend
//! on), then creates and updates (tenants before their instances, instances
//! before their domains), each group's objects in parallel up to the
//! parallelism. A group with a failure stops the run before the next group
//! (what depends on a failed object is not attempted); every object's apply
//! is the engine's, idempotent, so the next apply finishes what is left.
//!
//! The registry is the CLI's state: an object created here is confirmed in
//! its claim once it exists, so the next plan knows it as this owner's.

use std::collections::BTreeMap;

use futures_util::StreamExt as _;
use futures_util::stream;

use super::config::{Configuration, Declared};
use super::diagnostic::Diagnostic;
use super::kinds::{self, Document};
use super::plan::{KIND_ORDER, Plan, ResourceChange};
use super::progress::Progress;
use super::schema::KindSchema;
use super::session::Session;
use crate::backends::error_chain;
use crate::model::ownership::{Confirmation, CreateToken, ObjectKind};
use crate::plan::text::Action;

/// What an apply did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub added: usize,
    pub changed: usize,
    pub replaced: usize,
    pub destroyed: usize,
    pub failures: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    /// Changes not attempted: after a failure, or after Ctrl-C.
    pub not_attempted: usize,
    pub interrupted: bool,
}

impl Outcome {
    pub fn summary(&self) -> String {
        format!(
            "{} added, {} changed, {} replaced, {} destroyed.",
            self.added, self.changed, self.replaced, self.destroyed
        )
    }
}

/// One unit of work: a change's delete half or its create/update half.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Half {
    Delete,
    Put,
}

fn verb(action: Action, half: Half) -> (&'static str, &'static str) {
    match (action, half) {
        (_, Half::Delete) => ("Destroying...", "Destruction complete"),
        (Action::Create | Action::Replace, Half::Put) => ("Creating...", "Creation complete"),
        _ => ("Modifying...", "Modifications complete"),
    }
}

/// The write-only values of a declared object (its configuration's), which
/// the plan never holds and apply takes from the configuration.
fn with_write_only(after: &Document, change: &ResourceChange, declared: Option<&Declared>) -> Document {
    let schema = KindSchema::of_kind(change.kind);
    let mut after = after.clone();
    if let Some(declared) = declared {
        for attribute in &schema.write_only {
            if let Some(value) = declared.values.get(attribute) {
                after.insert(attribute.clone(), value.clone());
            }
        }
    }
    after
}

/// Why one unit of work did not happen.
enum Failed {
    /// The run is stopping (Ctrl-C): the change was not started.
    Cancelled,
    Error(Diagnostic),
}

/// What one unit of work answers: the create token of what it created, and
/// warnings for the user.
type RunResult = Result<(Option<CreateToken>, Vec<Diagnostic>), Failed>;

async fn run_one(session: &Session, change: &ResourceChange, half: Half, declared: Option<&Declared>) -> RunResult {
    let position = || declared.and_then(|r| r.position.clone());
    let failed = |failure: kinds::ApplyFailure| {
        if failure.cancelled {
            return Failed::Cancelled;
        }
        let position = declared.and_then(|r| failure.attribute.map_or(r.position.clone(), |a| r.position_of(a)));
        Failed::Error(Diagnostic::new(failure.summary, format!("{}: {}", change.address, failure.detail), position))
    };
    let registry = &session.platform.registry;
    match half {
        Half::Delete => {
            let applied = kinds::apply(
                session,
                change.kind,
                &change.key,
                change.before.as_ref(),
                None,
                None,
                &CreateToken::new(),
            )
            .await
            .map_err(failed)?;
            Ok((None, warnings_of(change, &applied.warnings)))
        }
        Half::Put => {
            let Some(after) = &change.after else { return Ok((None, Vec::new())) };
            let creating = matches!(change.action, Action::Create | Action::Replace);
            if let Some(token) = &change.stale_claim {
                // The object was deleted by hand: its name is free again.
                registry.release_claim_of(change.kind, &change.key, &CreateToken::from_stored(token)).await.map_err(
                    |error| Failed::Error(Diagnostic::new("Cannot free the name", error_chain(&error), position())),
                )?;
            }
            let token = CreateToken::new();
            let before = if creating { None } else { change.before.as_ref() };
            let after = with_write_only(after, change, declared);
            let applied =
                kinds::apply(session, change.kind, &change.key, before, Some(&after), change.decision.as_ref(), &token)
                    .await
                    .map_err(failed)?;
            Ok((creating.then_some(token), warnings_of(change, &applied.warnings)))
        }
    }
}

fn warnings_of(change: &ResourceChange, warnings: &[crate::model::attribute::ValidationError]) -> Vec<Diagnostic> {
    warnings
        .iter()
        .map(|warning| {
            Diagnostic::warning(warning.summary.clone(), format!("{}: {}", change.address, warning.detail), None)
        })
        .collect()
}

/// Applies `plan`; `configuration` supplies write-only values and positions.
pub async fn apply(
    plan: &Plan,
    configuration: Option<&Configuration>,
    session: &Session,
    parallelism: usize,
    progress: &Progress,
) -> Outcome {
    let mut outcome = Outcome::default();
    // Each change's declaration (write-only values, positions), found once.
    let declared: std::collections::HashMap<&str, &Declared> =
        configuration.map(|c| c.resources.iter().map(|r| (r.address.as_str(), r)).collect()).unwrap_or_default();
    let declared = &declared;
    // Claims of objects that are gone: forgotten.
    for change in plan.changes.iter().filter(|c| c.before.is_none() && c.after.is_none()) {
        if let Some(token) = &change.stale_claim {
            let released = session
                .platform
                .registry
                .release_claim_of(change.kind, &change.key, &CreateToken::from_stored(token))
                .await;
            if let Err(error) = released {
                outcome.failures.push(Diagnostic::new("Cannot forget a vanished object", error_chain(&error), None));
            }
        }
    }
    let mut groups: Vec<(String, Half, Vec<&ResourceChange>)> = Vec::new();
    for kind in KIND_ORDER.iter().rev() {
        let deletes: Vec<&ResourceChange> = plan
            .changes
            .iter()
            .filter(|c| c.kind == *kind && matches!(c.action, Action::Delete | Action::Replace))
            .collect();
        groups.push((format!("destroy {}s", kind.noun()), Half::Delete, deletes));
    }
    for kind in KIND_ORDER {
        let puts: Vec<&ResourceChange> = plan
            .changes
            .iter()
            .filter(|c| c.kind == kind && matches!(c.action, Action::Create | Action::Update | Action::Replace))
            .collect();
        groups.push((format!("apply {}s", kind.noun()), Half::Put, puts));
    }
    let targets = targets_of(plan);
    let targets = &targets;
    let mut confirmations: Vec<Confirmation> = Vec::new();
    let mut stopped = false;
    for (name, half, changes) in groups {
        if changes.is_empty() {
            continue;
        }
        if stopped || *session.cancelled.borrow() {
            outcome.interrupted |= *session.cancelled.borrow();
            outcome.not_attempted += changes.len();
            stopped = true;
            continue;
        }
        let mut totals: BTreeMap<String, usize> = BTreeMap::new();
        for change in &changes {
            *totals
                .entry(targets.get(&(change.kind, change.key.as_str())).cloned().unwrap_or_default())
                .or_default() += 1;
        }
        progress.phase_per_target(&name, &totals);
        let results: Vec<(&ResourceChange, Option<RunResult>)> =
            stream::iter(changes.into_iter().map(|change| async move {
                // Ctrl-C: what is in flight finishes, nothing new starts.
                if *session.cancelled.borrow() {
                    return (change, None);
                }
                let (_, done) = verb(change.action, half);
                let result = run_one(session, change, half, declared.get(change.address.as_str()).copied()).await;
                let target = targets.get(&(change.kind, change.key.as_str())).map_or("", String::as_str);
                match &result {
                    Ok(_) => progress.step_on(target, &format!("{}: {done}", change.address)),
                    Err(Failed::Cancelled) => progress.note(&format!("{}: not started (interrupted)", change.address)),
                    Err(Failed::Error(_)) => progress.note(&format!("{}: failed", change.address)),
                }
                (change, Some(result))
            }))
            .buffer_unordered(parallelism.max(1))
            .collect()
            .await;
        for (change, result) in results {
            match result {
                None | Some(Err(Failed::Cancelled)) => {
                    outcome.not_attempted += 1;
                    outcome.interrupted = true;
                    stopped = true;
                }
                Some(Err(Failed::Error(diagnostic))) => {
                    outcome.failures.push(diagnostic);
                    stopped = true;
                }
                Some(Ok((token, warnings))) => {
                    outcome.warnings.extend(warnings);
                    if let Some(token) = token {
                        confirmations.push((change.kind, change.key.clone(), token, session.owner.clone()));
                    }
                    match (change.action, half) {
                        (Action::Create, Half::Put) => outcome.added += 1,
                        (Action::Update, Half::Put) => outcome.changed += 1,
                        (Action::Replace, Half::Put) => outcome.replaced += 1,
                        (Action::Delete, Half::Delete) => outcome.destroyed += 1,
                        _ => {}
                    }
                }
            }
        }
    }
    progress.finish();
    if let Err(detail) = confirm(session, plan, confirmations).await {
        outcome.failures.push(Diagnostic::new(
            "Cannot record the applied objects as this owner's",
            format!("{detail}. The objects exist; the next atrium apply records them."),
            None,
        ));
    }
    outcome
}

/// The target each app instance and domain of the plan is on (a domain is
/// where its app instance is), for a progress bar per target.
fn targets_of(plan: &Plan) -> std::collections::HashMap<(ObjectKind, &str), String> {
    let document = |change: &ResourceChange| change.after.clone().or_else(|| change.before.clone());
    let text = |change: &ResourceChange, attribute: &str| {
        document(change).and_then(|d| d.get(attribute).and_then(|v| v.as_str().map(str::to_owned)))
    };
    let instances: std::collections::HashMap<&str, String> = plan
        .changes
        .iter()
        .filter(|c| c.kind == ObjectKind::AppInstance)
        .filter_map(|c| Some((c.key.as_str(), text(c, "target")?)))
        .collect();
    let mut targets: std::collections::HashMap<(ObjectKind, &str), String> =
        instances.iter().map(|(key, target)| ((ObjectKind::AppInstance, *key), target.clone())).collect();
    for change in plan.changes.iter().filter(|c| c.kind == ObjectKind::Domain) {
        if let Some(target) = text(change, "app_instance_id").and_then(|id| instances.get(id.as_str()).cloned()) {
            targets.insert((ObjectKind::Domain, change.key.as_str()), target);
        }
    }
    targets
}

/// Confirms the claims of what this apply created, and of declared objects
/// whose create an earlier, interrupted run left unconfirmed.
async fn confirm(session: &Session, plan: &Plan, mut confirmations: Vec<Confirmation>) -> Result<(), String> {
    let registry = &session.platform.registry;
    let declared: BTreeMap<(ObjectKind, &str), ()> =
        plan.changes.iter().filter(|c| c.after.is_some()).map(|c| ((c.kind, c.key.as_str()), ())).collect();
    let claims = registry.list_claims().await.map_err(|error| error_chain(&error))?;
    let planned_addresses: BTreeMap<(ObjectKind, &str), &str> = plan
        .changes
        .iter()
        .filter(|c| c.after.is_some())
        .map(|c| ((c.kind, c.key.as_str()), c.address.as_str()))
        .collect();
    let mut addresses = Vec::new();
    for claim in &claims {
        let planned = planned_addresses.get(&(claim.kind, claim.key.as_str()));
        if claim.owner == session.owner
            && let Some(address) = planned.filter(|address| **address != claim.address)
        {
            addresses.push((claim.kind, claim.key.clone(), (*address).to_owned()));
        }
    }
    let confirming: std::collections::HashSet<CreateToken> =
        confirmations.iter().map(|(_, _, token, _)| token.clone()).collect();
    for claim in claims {
        if claim.owner == session.owner
            && !claim.confirmed
            && declared.contains_key(&(claim.kind, claim.key.as_str()))
            && !confirming.contains(&claim.create_token)
        {
            confirmations.push((claim.kind, claim.key.clone(), claim.create_token.clone(), claim.owner.clone()));
        }
    }
    registry.confirm_claims(&confirmations).await.map_err(|error| error_chain(&error))?;
    registry.set_claim_addresses(&session.owner, &addresses).await.map_err(|error| error_chain(&error))
}
