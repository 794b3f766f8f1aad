//! The one apply runner: a change's steps as values, run in order, each
//! journaled before and after it runs, and unwound in reverse when one fails.
//!
//! A step is idempotent both ways: its `apply` treats "already done" as done,
//! its `undo` treats "already gone" as done. That is what lets a crashed run
//! be finished (run the steps again) or undone (undo every step the journal
//! shows started) by the next one, and lets the runner undo the failed step
//! itself, whatever part of it happened.
//!
//! The runner decides nothing about the change: the plan did. It owns the
//! order, the journal, the one retry policy ([`crate::backends::retry`],
//! within the operation's deadline) and the report: a failed undo is part of
//! the error, never dropped, and stops the unwinding so that nothing a later
//! step still needs is removed from under it (the journal keeps the rest for
//! the next run).

use std::fmt;

use async_trait::async_trait;

use crate::backends::retry::{Retryable, with_grace, with_retries};

/// How long an undo may keep retrying, even past the operation's deadline
/// (which a failure by timeout has used up).
const UNDO_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How long an undo that keeps data may take past the operation's deadline:
/// putting back a backup, starting the old version and waiting for its
/// health check.
pub const DATA_UNDO_GRACE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// How long a step may keep retrying when the operation set no deadline.
const STEP_BUDGET: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Why a step failed, and whether trying the same step again may succeed.
#[derive(Debug)]
pub struct StepError {
    pub source: Box<dyn std::error::Error + Send + Sync>,
    pub retryable: bool,
}

impl StepError {
    /// A failure that trying again cannot fix (a refusal, bad input, 4xx).
    pub fn permanent(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StepError {
        StepError { source: source.into(), retryable: false }
    }

    /// A failure that may pass (5xx, 429, connection trouble), as the backend's error says.
    pub fn from_backend<E: Retryable + std::error::Error + Send + Sync + 'static>(error: E) -> StepError {
        let retryable = error.is_retryable();
        StepError { source: Box::new(error), retryable }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", crate::backends::error_chain(self.source.as_ref()))
    }
}

/// Its text holds the whole chain of causes already.
impl std::error::Error for StepError {}

impl Retryable for StepError {
    fn is_retryable(&self) -> bool {
        self.retryable
    }
}

/// One step of a change, with its undo. `C` is what the steps of one
/// resource share (the registry, the target's backends, the rendered specs).
#[async_trait]
pub trait Step<C: Sync + ?Sized>: Send + Sync {
    /// What the step does, for the journal and for people ("app container").
    fn name(&self) -> String;
    /// Does the step; done already is success.
    async fn apply(&self, context: &C) -> Result<(), StepError>;
    /// Undoes the step, or whatever part of it happened; gone already is success.
    async fn undo(&self, context: &C) -> Result<(), StepError>;
    /// Whether the step cannot be undone (it removes data, or what nothing
    /// points at any more): from the moment it starts, the change is past
    /// its point of no return, so a failure is not unwound and the next
    /// apply finishes the change instead.
    fn forward_only(&self) -> bool {
        false
    }
    /// How long the undo may take past the operation's deadline (which a
    /// failure by timeout has used up). A few seconds, except for undos that
    /// must finish to keep data (putting a backup back, starting the old
    /// version again), which get as long as they need within a bound.
    fn undo_grace(&self) -> std::time::Duration {
        UNDO_GRACE
    }
}

/// One part of an object (a row, a project, a membership) that can be made
/// as a value says, or removed: the shape of most steps.
#[async_trait]
pub trait Part<C: Sync + ?Sized>: Send + Sync {
    type Value: Send + Sync;
    /// The part, for the journal and for people ("support project").
    fn name(&self) -> String;
    /// Makes the part as `value` says (`None`: removes it); done already is success.
    async fn make(&self, context: &C, value: Option<&Self::Value>) -> Result<(), StepError>;
}

/// The step that takes a part from `before` to `after`; its undo takes it back.
pub struct Transition<P, V> {
    pub part: P,
    pub before: Option<V>,
    pub after: Option<V>,
}

impl<P, V> Transition<P, V> {
    pub fn new(part: P, before: Option<V>, after: Option<V>) -> Transition<P, V> {
        Transition { part, before, after }
    }
}

#[async_trait]
impl<P: Part<C, Value = V>, V: Send + Sync, C: Sync + ?Sized> Step<C> for Transition<P, V> {
    fn name(&self) -> String {
        self.part.name()
    }
    async fn apply(&self, context: &C) -> Result<(), StepError> {
        self.part.make(context, self.after.as_ref()).await
    }
    async fn undo(&self, context: &C) -> Result<(), StepError> {
        self.part.make(context, self.before.as_ref()).await
    }
}

/// What the journal records of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepEvent {
    Started,
    Finished,
    Undone,
}

impl StepEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            StepEvent::Started => "started",
            StepEvent::Finished => "finished",
            StepEvent::Undone => "undone",
        }
    }

    fn parse(text: &str) -> Option<StepEvent> {
        [StepEvent::Started, StepEvent::Finished, StepEvent::Undone].into_iter().find(|event| event.as_str() == text)
    }
}

/// One step's last event in an operation's journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub index: usize,
    pub step: String,
    pub event: StepEvent,
}

/// Where the runner writes what it is doing, so that the next run after a
/// crash knows which steps started. An operation is named by its caller
/// (kind, natural key and create token), unique per change.
#[async_trait]
pub trait Journal: Send + Sync {
    /// Records `event` as the step's last event.
    async fn record(&self, operation: &str, entry: &JournalEntry) -> Result<(), StepError>;
    /// The last event of every step the operation journaled, by step index.
    async fn entries(&self, operation: &str) -> Result<Vec<JournalEntry>, StepError>;
    /// Forgets the operation: it finished, or was undone entirely.
    async fn forget(&self, operation: &str) -> Result<(), StepError>;
    /// Moves what `from` journaled to `to` (entries `to` has win): a run
    /// that resumes an interrupted operation under a new name takes over its
    /// journal, so that a failure now undoes what the interrupted run made.
    async fn adopt(&self, from: &str, to: &str) -> Result<(), StepError>;
}

/// Why a run failed: the step, its error, and every undo that failed after it.
#[derive(Debug)]
pub struct RunError {
    /// The step that failed (or whose journal entry could not be written).
    pub step: String,
    pub source: StepError,
    /// Undos that failed while unwinding, with their steps; the unwinding
    /// stopped at the first, and the journal keeps what is left for the next run.
    pub undo_failures: Vec<(String, StepError)>,
    /// Whether everything the run did was undone.
    pub unwound: bool,
    /// The forward-only step the run had started, when the failure came at
    /// or after it: nothing was undone, and the next apply finishes the change.
    pub past_no_return: Option<String>,
}

impl fmt::Display for RunError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "step \"{}\" failed: {}", self.step, self.source)?;
        if self.unwound {
            write!(formatter, "; everything this run did was undone")?;
        }
        for (step, error) in &self.undo_failures {
            let text = error.to_string();
            if text == self.source.to_string() {
                write!(formatter, "; undoing step \"{step}\" failed the same way")?;
            } else {
                write!(formatter, "; undoing step \"{step}\" failed: {text}")?;
            }
        }
        if let Some(step) = &self.past_no_return {
            write!(
                formatter,
                "; nothing was undone, because step \"{step}\" cannot be: the change is past its point of no return, and the next apply finishes it"
            )?;
        } else if !self.unwound {
            write!(formatter, "; the next apply finishes or undoes what is left")?;
        }
        Ok(())
    }
}

impl std::error::Error for RunError {}

impl RunError {
    /// The failed step's own error, when it is an `E` and everything the run
    /// did was undone (so the failure reads as the step's alone); else the
    /// run's error, with its undo failures.
    pub fn into_step_error<E: std::error::Error + 'static>(self) -> Result<E, RunError> {
        if !self.unwound || !self.source.source.is::<E>() {
            return Err(self);
        }
        let RunError { step, source: StepError { source, retryable }, undo_failures, unwound, past_no_return } = self;
        source.downcast::<E>().map(|own| *own).map_err(|source| RunError {
            step,
            source: StepError { source, retryable },
            undo_failures,
            unwound,
            past_no_return,
        })
    }
}

/// Runs `steps` in order as `operation`, journaling each; on a failure,
/// undoes the failed step and every earlier one in reverse. A journal left
/// by an interrupted run of the same operation is simply run over: every
/// step is idempotent, so running them all again finishes it.
pub async fn run<C: Sync + ?Sized>(
    operation: &str,
    steps: &[Box<dyn Step<C>>],
    context: &C,
    journal: &dyn Journal,
) -> Result<(), RunError> {
    // A single step needs no journal: whatever part of it an interrupted run
    // did, running it again finishes it, and its own undo removes it.
    if let [step] = steps {
        let name = step.name();
        return match apply_step(step.as_ref(), context).await {
            Ok(()) => Ok(()),
            Err(error) => Err(unwind(operation, steps, context, &NoJournal, name, error).await),
        };
    }
    // Steps an interrupted run of this operation started: a failure now must
    // undo them too, or forgetting the journal would orphan what they made.
    let earlier =
        journal.entries(operation).await.map_err(|source| journal_failure("read the journal", source, false))?;
    let earlier_last = last_started(&earlier, steps);
    let through = |index: usize| earlier_last.map_or(index, |last| last.max(index)).min(steps.len() - 1);
    for (index, step) in steps.iter().enumerate() {
        let name = step.name();
        let entry = |event| JournalEntry { index, step: name.clone(), event };
        let done = match journal.record(operation, &entry(StepEvent::Started)).await {
            Ok(()) => apply_step(step.as_ref(), context).await,
            // Nothing of this step happened: unwind only what came before.
            Err(error) => {
                let until = earlier_last.map_or(index, |last| (last + 1).max(index).min(steps.len()));
                return Err(unwind(operation, &steps[..until], context, journal, name, error).await);
            }
        };
        let done = match done {
            Ok(()) => journal.record(operation, &entry(StepEvent::Finished)).await,
            Err(error) => Err(error),
        };
        if let Err(error) = done {
            return Err(unwind(operation, &steps[..=through(index)], context, journal, name, error).await);
        }
    }
    journal
        .forget(operation)
        .await
        .map_err(|source| journal_failure("forget the finished operation's journal", source, false))
}

/// Does one step under the retry policy, or fails it as a test injected.
async fn apply_step<C: Sync + ?Sized>(step: &dyn Step<C>, context: &C) -> Result<(), StepError> {
    let started = tokio::time::Instant::now();
    injectable(&step.name(), StepError::permanent, with_retries(STEP_BUDGET, || step.apply(context))).await?;
    tracing::debug!(step = %step.name(), elapsed_ms = started.elapsed().as_millis() as u64, "step done");
    Ok(())
}

/// Does `step` (named `name`), or fails it as a test injected (see
/// [`with_injected_failure`]), the error made by `error` from the reason:
/// the runner's steps, and the steps of sequences with an undo of their
/// own (a restore), are made to fail in turn the same way.
pub(crate) async fn injectable<T, E>(
    name: &str,
    error: impl Fn(String) -> E,
    step: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let injected = INJECTION.try_with(|injection| injection.next_step()).ok().flatten();
    let injected_error = |when: &str| error(format!("failure injected {when} step \"{name}\" (a test asked for it)"));
    if injected == Some(InjectedFailure::Before) {
        return Err(injected_error("before"));
    }
    let done = step.await?;
    match injected {
        Some(InjectedFailure::After) => Err(injected_error("after")),
        Some(InjectedFailure::Crash) => {
            // The process dies here: the test drops the run, journal as it is.
            if let Ok(injection) = INJECTION.try_with(std::sync::Arc::clone) {
                injection.crashed.notify_one();
            }
            std::future::pending().await
        }
        _ => Ok(done),
    }
}

/// Where a test makes a step fail: before it does anything, after it did
/// everything (so that its undo has something to remove), or by a crash
/// right after it did everything (nothing is undone; the journal says the
/// step started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedFailure {
    Before,
    After,
    Crash,
}

/// A failure to inject into the `at`th step (from 1) that any run starts.
struct Injection {
    at: usize,
    failure: InjectedFailure,
    started: std::sync::atomic::AtomicUsize,
    /// Told when the crashing step is reached.
    crashed: tokio::sync::Notify,
}

impl Injection {
    fn next_step(&self) -> Option<InjectedFailure> {
        let number = self.started.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        (number == self.at).then_some(self.failure)
    }
}

tokio::task_local! {
    static INJECTION: std::sync::Arc<Injection>;
}

/// Runs `future` with the `at`th step (from 1, counted across every run it
/// starts) failing as `failure` says: how one generic test makes every step
/// of every resource fail in turn, as steno injects an error into a saga's
/// node. Returns the future's output (`None` when it crashed: it was
/// dropped at the step) and whether the step was reached.
pub async fn with_injected_failure<F: std::future::Future>(
    at: usize,
    failure: InjectedFailure,
    future: F,
) -> (Option<F::Output>, bool) {
    let injection = std::sync::Arc::new(Injection {
        at,
        failure,
        started: std::sync::atomic::AtomicUsize::new(0),
        crashed: tokio::sync::Notify::new(),
    });
    let output = tokio::select! {
        output = INJECTION.scope(injection.clone(), future) => Some(output),
        () = injection.crashed.notified() => None,
    };
    let reached = injection.started.load(std::sync::atomic::Ordering::SeqCst) >= at;
    (output, reached)
}

/// The last of `steps` a journal shows started and not undone. An entry
/// whose step is not the one at its index in `steps` was journaled by a
/// change of another shape under the same operation (an update interrupted
/// before a destroy): its steps are not these, so it is not undone with them.
fn last_started<C: Sync + ?Sized>(entries: &[JournalEntry], steps: &[Box<dyn Step<C>>]) -> Option<usize> {
    entries
        .iter()
        .filter(|entry| entry.event != StepEvent::Undone)
        .filter(|entry| steps.get(entry.index).is_some_and(|step| step.name() == entry.step))
        .map(|entry| entry.index)
        .max()
}

/// A failure of the journal itself, outside any step.
fn journal_failure(what: &str, source: StepError, unwound: bool) -> RunError {
    RunError { step: what.to_owned(), source, undo_failures: Vec::new(), unwound, past_no_return: None }
}

/// Undoes every step the journal of `operation` shows started, in reverse
/// (a run that a crash or a cancellation left behind and that is not to be
/// finished), then forgets the operation.
pub async fn undo_journaled<C: Sync + ?Sized>(
    operation: &str,
    steps: &[Box<dyn Step<C>>],
    context: &C,
    journal: &dyn Journal,
) -> Result<(), RunError> {
    let entries =
        journal.entries(operation).await.map_err(|source| journal_failure("read the journal", source, false))?;
    let Some(last) = last_started(&entries, steps) else {
        return journal.forget(operation).await.map_err(|source| journal_failure("forget the journal", source, true));
    };
    let until = (last + 1).min(steps.len());
    let failures = undo_in_reverse(operation, &steps[..until], context, journal).await;
    match failures.into_iter().next() {
        None => Ok(()),
        Some((step, source)) => Err(journal_failure(&step, source, false)),
    }
}

async fn unwind<C: Sync + ?Sized>(
    operation: &str,
    steps: &[Box<dyn Step<C>>],
    context: &C,
    journal: &dyn Journal,
    step: String,
    source: StepError,
) -> RunError {
    if let Some(no_return) = steps.iter().find(|step| step.forward_only()) {
        // The journal keeps the run as it is, for the next apply to finish.
        let past_no_return = Some(no_return.name());
        return RunError { step, source, undo_failures: Vec::new(), unwound: false, past_no_return };
    }
    let undo_failures = undo_in_reverse(operation, steps, context, journal).await;
    let unwound = undo_failures.is_empty();
    RunError { step, source, undo_failures, unwound, past_no_return: None }
}

/// Undoes `steps` from the last to the first, journaling each; stops at the
/// first failure (returned) so that nothing a later step still holds is
/// removed from under it. Forgets the operation once all are undone.
async fn undo_in_reverse<C: Sync + ?Sized>(
    operation: &str,
    steps: &[Box<dyn Step<C>>],
    context: &C,
    journal: &dyn Journal,
) -> Vec<(String, StepError)> {
    for (index, step) in steps.iter().enumerate().rev() {
        let name = step.name();
        let undone = match with_grace(step.undo_grace(), with_retries(STEP_BUDGET, || step.undo(context))).await {
            Ok(()) => {
                let entry = JournalEntry { index, step: name.clone(), event: StepEvent::Undone };
                journal.record(operation, &entry).await
            }
            Err(error) => Err(error),
        };
        if let Err(error) = undone {
            return vec![(name, error)];
        }
    }
    match journal.forget(operation).await {
        Ok(()) => Vec::new(),
        Err(error) => vec![("forget the undone operation's journal".to_owned(), error)],
    }
}

/// What a single-step run journals: nothing.
struct NoJournal;

#[async_trait]
impl Journal for NoJournal {
    async fn record(&self, _: &str, _: &JournalEntry) -> Result<(), StepError> {
        Ok(())
    }
    async fn entries(&self, _: &str) -> Result<Vec<JournalEntry>, StepError> {
        Ok(Vec::new())
    }
    async fn forget(&self, _: &str) -> Result<(), StepError> {
        Ok(())
    }
    async fn adopt(&self, _: &str, _: &str) -> Result<(), StepError> {
        Ok(())
    }
}

/// A journal in memory: for the engine's own tests and for runs that need no
/// crash recovery. The registry's journal is the one that survives a crash.
#[derive(Debug, Default)]
pub struct MemoryJournal {
    operations: std::sync::Mutex<std::collections::BTreeMap<String, Vec<JournalEntry>>>,
}

impl MemoryJournal {
    fn operations(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, std::collections::BTreeMap<String, Vec<JournalEntry>>>, StepError> {
        self.operations.lock().map_err(|_| StepError::permanent("the in-memory journal was poisoned by a panic"))
    }
}

#[async_trait]
impl Journal for MemoryJournal {
    async fn record(&self, operation: &str, entry: &JournalEntry) -> Result<(), StepError> {
        let mut operations = self.operations()?;
        let entries = operations.entry(operation.to_owned()).or_default();
        entries.retain(|existing| existing.index != entry.index);
        entries.push(entry.clone());
        entries.sort_by_key(|existing| existing.index);
        Ok(())
    }

    async fn entries(&self, operation: &str) -> Result<Vec<JournalEntry>, StepError> {
        Ok(self.operations()?.get(operation).cloned().unwrap_or_default())
    }

    async fn forget(&self, operation: &str) -> Result<(), StepError> {
        self.operations()?.remove(operation);
        Ok(())
    }

    async fn adopt(&self, from: &str, to: &str) -> Result<(), StepError> {
        let mut operations = self.operations()?;
        let Some(adopted) = operations.remove(from) else { return Ok(()) };
        let entries = operations.entry(to.to_owned()).or_default();
        for entry in adopted {
            if !entries.iter().any(|existing| existing.index == entry.index) {
                entries.push(entry);
            }
        }
        entries.sort_by_key(|existing| existing.index);
        Ok(())
    }
}

/// The journal in the registry: the one that survives a crash, shared by
/// every process and front door that uses the same registry.
pub struct RegistryJournal<'a>(pub &'a crate::registry::Registry);

/// A registry failure as a step's, retryable as the registry says.
pub fn registry_step_error(error: crate::registry::RegistryError) -> StepError {
    let retryable = error.is_retryable();
    StepError { source: Box::new(error), retryable }
}

#[async_trait]
impl Journal for RegistryJournal<'_> {
    async fn record(&self, operation: &str, entry: &JournalEntry) -> Result<(), StepError> {
        self.0
            .journal_record(operation, entry.index as u64, &entry.step, entry.event.as_str())
            .await
            .map_err(registry_step_error)
    }

    async fn entries(&self, operation: &str) -> Result<Vec<JournalEntry>, StepError> {
        let rows = self.0.journal_entries(operation).await.map_err(registry_step_error)?;
        rows.into_iter()
            .map(|row| {
                let event = StepEvent::parse(&row.event).ok_or_else(|| {
                    StepError::permanent(format!(
                        "the registry's journal of {operation} holds an unknown event {:?}",
                        row.event
                    ))
                })?;
                let index = usize::try_from(row.step_index).map_err(|_| {
                    StepError::permanent(format!("the registry's journal of {operation} holds step {}", row.step_index))
                })?;
                Ok(JournalEntry { index, step: row.step, event })
            })
            .collect()
    }

    async fn forget(&self, operation: &str) -> Result<(), StepError> {
        self.0.journal_forget(operation).await.map_err(registry_step_error)
    }

    async fn adopt(&self, from: &str, to: &str) -> Result<(), StepError> {
        self.0.journal_adopt(from, to).await.map_err(registry_step_error)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// What the test steps did, in order, and how they are told to fail.
    #[derive(Default)]
    struct World {
        log: Mutex<Vec<String>>,
        /// Objects that exist now.
        objects: Mutex<std::collections::BTreeSet<String>>,
        fail_apply: Option<(usize, bool)>,
        fail_undo: Option<usize>,
        transient_failures_left: AtomicUsize,
    }

    struct MakeObject(usize);

    #[async_trait]
    impl Step<World> for MakeObject {
        fn name(&self) -> String {
            format!("object {}", self.0)
        }

        async fn apply(&self, world: &World) -> Result<(), StepError> {
            world.log.lock().unwrap().push(format!("apply {}", self.0));
            if let Some((index, half_done)) = world.fail_apply
                && index == self.0
            {
                if half_done {
                    world.objects.lock().unwrap().insert(format!("object {}", self.0));
                }
                return Err(StepError::permanent(format!("object {} cannot be made", self.0)));
            }
            if world
                .transient_failures_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1))
                .is_ok()
            {
                return Err(StepError { source: "connection reset".into(), retryable: true });
            }
            world.objects.lock().unwrap().insert(format!("object {}", self.0));
            Ok(())
        }

        async fn undo(&self, world: &World) -> Result<(), StepError> {
            world.log.lock().unwrap().push(format!("undo {}", self.0));
            if world.fail_undo == Some(self.0) {
                return Err(StepError::permanent(format!("object {} cannot be removed", self.0)));
            }
            world.objects.lock().unwrap().remove(&format!("object {}", self.0));
            Ok(())
        }
    }

    fn steps(count: usize) -> Vec<Box<dyn Step<World>>> {
        (0..count).map(|index| Box::new(MakeObject(index)) as Box<dyn Step<World>>).collect()
    }

    fn objects(world: &World) -> Vec<String> {
        world.objects.lock().unwrap().iter().cloned().collect()
    }

    #[tokio::test]
    async fn a_run_does_every_step_in_order_and_forgets_its_journal() {
        let world = World::default();
        let journal = MemoryJournal::default();
        run("op", &steps(3), &world, &journal).await.unwrap();
        assert_eq!(*world.log.lock().unwrap(), ["apply 0", "apply 1", "apply 2"]);
        assert_eq!(objects(&world), ["object 0", "object 1", "object 2"]);
        assert!(journal.entries("op").await.unwrap().is_empty());
    }

    /// Every step failing in turn, half done or not: the run fails naming the
    /// step, everything is undone in reverse (the failed step too), nothing
    /// is left, and running again makes everything.
    #[tokio::test(start_paused = true)]
    async fn every_step_failure_unwinds_and_the_next_run_converges() {
        for count in 1..=4 {
            for failing in 0..count {
                for half_done in [false, true] {
                    let world = World { fail_apply: Some((failing, half_done)), ..World::default() };
                    let journal = MemoryJournal::default();
                    let error = run("op", &steps(count), &world, &journal).await.unwrap_err();
                    assert_eq!(error.step, format!("object {failing}"));
                    assert!(error.unwound && error.undo_failures.is_empty(), "{error}");
                    assert!(objects(&world).is_empty(), "left behind: {:?}", objects(&world));
                    let undos: Vec<String> =
                        world.log.lock().unwrap().iter().filter(|line| line.starts_with("undo")).cloned().collect();
                    let expected: Vec<String> = (0..=failing).rev().map(|index| format!("undo {index}")).collect();
                    assert_eq!(undos, expected);
                    assert!(journal.entries("op").await.unwrap().is_empty());

                    let world = World { objects: Mutex::new(world.objects.into_inner().unwrap()), ..World::default() };
                    run("op", &steps(count), &world, &journal).await.unwrap();
                    assert_eq!(objects(&world).len(), count);
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_undo_is_reported_stops_the_unwinding_and_stays_in_the_journal() {
        let world = World { fail_apply: Some((2, false)), fail_undo: Some(1), ..World::default() };
        let journal = MemoryJournal::default();
        let error = run("op", &steps(3), &world, &journal).await.unwrap_err();
        assert_eq!(error.step, "object 2");
        assert!(!error.unwound);
        assert_eq!(error.undo_failures.len(), 1);
        assert_eq!(error.undo_failures[0].0, "object 1");
        let text = error.to_string();
        assert!(text.contains("object 2 cannot be made"), "{text}");
        assert!(text.contains("undoing step \"object 1\" failed: object 1 cannot be removed"), "{text}");
        assert!(text.contains("the next apply finishes or undoes what is left"), "{text}");
        // Object 0 was not removed from under object 1, which still exists.
        assert_eq!(objects(&world), ["object 0", "object 1"]);
        let left: Vec<(usize, StepEvent)> =
            journal.entries("op").await.unwrap().iter().map(|entry| (entry.index, entry.event)).collect();
        assert_eq!(left, [(0, StepEvent::Finished), (1, StepEvent::Finished), (2, StepEvent::Undone)]);

        // The next run, told to give up on the change, undoes what the journal shows.
        let world = World { objects: Mutex::new(world.objects.into_inner().unwrap()), ..World::default() };
        undo_journaled("op", &steps(3), &world, &journal).await.unwrap();
        assert!(objects(&world).is_empty());
        assert!(journal.entries("op").await.unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_failure_is_retried_and_a_permanent_one_is_not() {
        let world = World { transient_failures_left: AtomicUsize::new(2), ..World::default() };
        let journal = MemoryJournal::default();
        run("op", &steps(1), &world, &journal).await.unwrap();
        assert_eq!(*world.log.lock().unwrap(), ["apply 0", "apply 0", "apply 0"]);

        let world = World { fail_apply: Some((0, false)), ..World::default() };
        run("op", &steps(1), &world, &journal).await.unwrap_err();
        assert_eq!(*world.log.lock().unwrap(), ["apply 0", "undo 0"]);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_at_the_operations_deadline() {
        let world = World { transient_failures_left: AtomicUsize::new(usize::MAX), ..World::default() };
        let journal = MemoryJournal::default();
        let started = tokio::time::Instant::now();
        let error = crate::backends::retry::within(std::time::Duration::from_secs(3), async {
            run("op", &steps(1), &world, &journal).await
        })
        .await
        .unwrap_err();
        assert!(error.source.retryable);
        assert!(started.elapsed() <= std::time::Duration::from_secs(3), "{:?}", started.elapsed());
        assert!(objects(&world).is_empty());
    }

    #[tokio::test]
    async fn undoing_an_empty_journal_forgets_it_and_touches_nothing() {
        let world = World::default();
        let journal = MemoryJournal::default();
        undo_journaled("op", &steps(2), &world, &journal).await.unwrap();
        assert!(world.log.lock().unwrap().is_empty());
    }
    #[tokio::test]
    async fn a_failure_also_undoes_what_an_interrupted_run_of_the_operation_made() {
        let journal = MemoryJournal::default();
        for index in 0..3 {
            journal
                .record("op", &JournalEntry { index, step: format!("object {index}"), event: StepEvent::Finished })
                .await
                .unwrap();
        }
        let objects_before = ["object 0", "object 1", "object 2"].map(str::to_owned);
        let world = World {
            objects: Mutex::new(objects_before.into_iter().collect()),
            fail_apply: Some((1, false)),
            ..World::default()
        };
        let error = run("op", &steps(4), &world, &journal).await.unwrap_err();
        assert!(error.unwound, "{error}");
        assert!(objects(&world).is_empty(), "left behind: {:?}", objects(&world));
        assert!(journal.entries("op").await.unwrap().is_empty());
    }

    /// A step that removes what cannot come back.
    struct Irreversible;

    #[async_trait]
    impl Step<World> for Irreversible {
        fn name(&self) -> String {
            "irreversible".to_owned()
        }
        async fn apply(&self, _: &World) -> Result<(), StepError> {
            Ok(())
        }
        async fn undo(&self, _: &World) -> Result<(), StepError> {
            panic!("a forward-only step is never undone")
        }
        fn forward_only(&self) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn a_failure_past_a_forward_only_step_undoes_nothing_and_keeps_the_journal() {
        let journal = MemoryJournal::default();
        let world = World { fail_apply: Some((2, false)), ..World::default() };
        let mut steps = steps(3);
        steps.insert(1, Box::new(Irreversible));
        let error = run("op", &steps, &world, &journal).await.unwrap_err();
        assert!(!error.unwound && error.undo_failures.is_empty(), "{error}");
        assert_eq!(error.past_no_return.as_deref(), Some("irreversible"));
        assert!(error.to_string().contains("the next apply finishes it"), "{error}");
        // Steps: object 0, irreversible, object 1, object 2 (which fails).
        assert_eq!(objects(&world), ["object 0", "object 1"].map(str::to_owned), "nothing was undone");
        assert_eq!(journal.entries("op").await.unwrap().len(), 4, "the journal keeps the run");
        // Before the forward-only step, a failure unwinds as usual.
        let world = World { fail_apply: Some((0, false)), ..World::default() };
        let error = run("op2", &steps, &world, &journal).await.unwrap_err();
        assert!(error.unwound && error.past_no_return.is_none(), "{error}");
    }

    #[tokio::test]
    async fn a_journal_of_other_steps_under_the_same_operation_is_not_undone_with_these() {
        let journal = MemoryJournal::default();
        // An interrupted change of another shape (other steps at these indexes).
        for index in 0..3 {
            let entry = JournalEntry { index, step: format!("something else {index}"), event: StepEvent::Started };
            journal.record("op", &entry).await.unwrap();
        }
        let world = World { fail_apply: Some((0, false)), ..World::default() };
        world.objects.lock().unwrap().extend(["object 1", "object 2"].map(str::to_owned));
        let error = run("op", &steps(3), &world, &journal).await.unwrap_err();
        assert!(error.unwound, "{error}");
        assert_eq!(
            objects(&world),
            ["object 1", "object 2"].map(str::to_owned).into_iter().collect::<Vec<_>>(),
            "steps 1 and 2 never ran here and were not undone"
        );
    }
}
