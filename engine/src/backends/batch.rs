//! Changes from concurrent calls, written together.
//!
//! Some backends pay for every write far more than for what it holds: Caddy
//! reloads its whole configuration on each admin write (cancelling
//! certificate orders and resetting connections), and a PowerDNS PATCH costs
//! a zone read and a rectify whether it holds one record set or fifty. A
//! `WriteBatcher` lets such a backend take the changes of concurrent calls
//! in one write: each call queues its change and waits for the one writer;
//! whichever call gets the writer takes everything queued by then and writes
//! it, and every call gets its own change's outcome. A call that finds its
//! change already written by another just returns that outcome.
//!
//! The batcher knows nothing of what a change is or how it is written; the
//! backend's write function decides, and reports each change's outcome
//! through `Waiting::finish` (or `finish_all`).

use std::future::Future;

use tokio::sync::oneshot;

/// The queue of changes waiting to be written, and the one writer.
pub(crate) struct WriteBatcher<Change, Error> {
    /// Changes queued since the last writer took the queue.
    pending: std::sync::Mutex<Vec<Waiting<Change, Error>>>,
    /// Held by the one call that writes a batch; the others wait behind it
    /// and find their change written, or write the next batch.
    writer: tokio::sync::Mutex<()>,
}

/// One call's change in a batch, with where to report how it went.
pub(crate) struct Waiting<Change, Error> {
    pub(crate) change: Change,
    done: oneshot::Sender<Result<(), Error>>,
}

impl<Change, Error> Waiting<Change, Error> {
    /// Tells the call that queued this change how it went.
    pub(crate) fn finish(self, outcome: Result<(), Error>) {
        // The call may have gone (its future dropped); then nobody is told.
        let _ = self.done.send(outcome);
    }
}

/// Reports one outcome to every call of `batch`: success, or a copy of
/// `error` for each (`copy` may adapt it to the change it reports on).
pub(crate) fn finish_all<Change, Error>(
    batch: Vec<Waiting<Change, Error>>,
    outcome: Result<(), &Error>,
    copy: impl Fn(&Error, &Change) -> Error,
) {
    for waiting in batch {
        let result = outcome.map_err(|error| copy(error, &waiting.change));
        waiting.finish(result);
    }
}

impl<Change, Error> Default for WriteBatcher<Change, Error> {
    fn default() -> Self {
        WriteBatcher { pending: std::sync::Mutex::new(Vec::new()), writer: tokio::sync::Mutex::new(()) }
    }
}

impl<Change, Error> WriteBatcher<Change, Error> {
    /// Queues `change`, waits for the writer and, holding it, hands every
    /// queued change to `write` (unless another writer took them all,
    /// this call's included). Returns this call's outcome; `abandoned`
    /// makes the error for a change that `write` dropped without reporting
    /// on it, as happens when the call that was writing is cancelled.
    pub(crate) async fn submit<Write, Written>(
        &self,
        change: Change,
        write: Write,
        abandoned: impl FnOnce() -> Error,
    ) -> Result<(), Error>
    where
        Write: FnOnce(Vec<Waiting<Change, Error>>) -> Written,
        Written: Future<Output = ()>,
    {
        let (done, outcome) = oneshot::channel();
        self.lock_pending().push(Waiting { change, done });
        {
            let _writer = self.writer.lock().await;
            let batch = std::mem::take(&mut *self.lock_pending());
            if !batch.is_empty() {
                write(batch).await;
            }
        }
        outcome.await.unwrap_or_else(|_| Err(abandoned()))
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Vec<Waiting<Change, Error>>> {
        // A panic while holding this lock leaves only a list behind, which stays usable.
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::Mutex;

    use super::*;

    /// A batcher whose writes record each batch and fail the odd changes.
    async fn submit_all_at_once(changes: Vec<u32>) -> (Vec<Result<(), String>>, Vec<Vec<u32>>) {
        let batcher = Arc::new(WriteBatcher::<u32, String>::default());
        let batches = Arc::new(Mutex::new(Vec::new()));
        let mut calls = tokio::task::JoinSet::new();
        for (index, change) in changes.into_iter().enumerate() {
            let batcher = Arc::clone(&batcher);
            let batches = Arc::clone(&batches);
            calls.spawn(async move {
                let outcome = batcher
                    .submit(
                        change,
                        |batch| async move {
                            // Let every other call queue its change before this write ends.
                            tokio::task::yield_now().await;
                            batches.lock().unwrap().push(batch.iter().map(|waiting| waiting.change).collect());
                            for waiting in batch {
                                let outcome = if waiting.change % 2 == 0 {
                                    Ok(())
                                } else {
                                    Err(format!("{} is odd", waiting.change))
                                };
                                waiting.finish(outcome);
                            }
                        },
                        || "abandoned".to_owned(),
                    )
                    .await;
                (index, outcome)
            });
        }
        let mut outcomes = vec![Ok(()); calls.len()];
        while let Some(joined) = calls.join_next().await {
            let (index, outcome) = joined.expect("no call panics");
            outcomes[index] = outcome;
        }
        let batches = batches.lock().unwrap().clone();
        (outcomes, batches)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_changes_share_writes_and_each_call_gets_its_own_outcome() {
        let (outcomes, batches) = submit_all_at_once((0..10).collect()).await;
        let expected: Vec<Result<(), String>> =
            (0..10).map(|change| if change % 2 == 0 { Ok(()) } else { Err(format!("{change} is odd")) }).collect();
        assert_eq!(outcomes, expected);
        // Every change is written once, and the first write's wait gathers all the others.
        let mut written: Vec<u32> = batches.iter().flatten().copied().collect();
        written.sort_unstable();
        assert_eq!(written, (0..10).collect::<Vec<_>>());
        assert_eq!(batches.len(), 2, "{batches:?}");
    }

    #[tokio::test]
    async fn a_change_dropped_by_the_writer_gets_the_abandoned_error() {
        let batcher = WriteBatcher::<u32, String>::default();
        let outcome = batcher.submit(1, |batch| async move { drop(batch) }, || "abandoned".to_owned()).await;
        assert_eq!(outcome, Err("abandoned".to_owned()));
    }

    #[test]
    fn finishing_a_batch_gives_every_call_its_copy_of_the_error() {
        let (first, first_outcome) = oneshot::channel();
        let (second, second_outcome) = oneshot::channel();
        let batch = vec![Waiting { change: "a", done: first }, Waiting { change: "b", done: second }];
        let error = "refused".to_owned();
        finish_all(batch, Err(&error), |error, change| format!("{change}: {error}"));
        assert_eq!(first_outcome.blocking_recv().unwrap(), Err("a: refused".to_owned()));
        assert_eq!(second_outcome.blocking_recv().unwrap(), Err("b: refused".to_owned()));
    }
}
