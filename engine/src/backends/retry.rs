//! One retry policy for every backend, bounded by the operation's deadline.
//!
//! An operation (one resource's apply, or one refresh) gets its deadline
//! from `timeouts` once, at its start, through [`within`]; every retry loop
//! inside it, in every backend (Docker, Caddy, PowerDNS, Redmine, SMTP, the
//! registry) and every wait (health checks, certificates), ends at that same
//! instant. A loop's own budget (a backend's default for a call made outside
//! any operation) only ever shortens it. The policy: retry what the error
//! says is retryable, waiting from [`FIRST_BACKOFF`] doubling to
//! [`LONGEST_BACKOFF`], each wait jittered, and never start a wait that would
//! end past the deadline.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// The first wait after a transient failure.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between two attempts.
pub const LONGEST_BACKOFF: Duration = Duration::from_secs(2);

tokio::task_local! {
    /// The instant the current operation must end by.
    static OPERATION_DEADLINE: Instant;
}

/// Runs `future` as one operation that must end `budget` from now (or
/// earlier, when it runs inside an operation with an earlier deadline).
pub async fn within<F: Future>(budget: Duration, future: F) -> F::Output {
    OPERATION_DEADLINE.scope(deadline(budget), future).await
}

/// Runs `future` with a deadline of its own, `grace` from now, even past the
/// operation's: undoing what a run that ran out of time made still gets a
/// few tries.
pub async fn with_grace<F: Future>(grace: Duration, future: F) -> F::Output {
    OPERATION_DEADLINE.scope(Instant::now() + grace, future).await
}

/// The instant a wait or retry loop with its own `budget` must end by: the
/// earlier of now + `budget` and the operation's deadline.
pub fn deadline(budget: Duration) -> Instant {
    let own = Instant::now() + budget;
    OPERATION_DEADLINE.try_with(|operation| (*operation).min(own)).unwrap_or(own)
}

/// How long is left of `budget`, within the operation's deadline.
pub fn remaining(budget: Duration) -> Duration {
    deadline(budget).saturating_duration_since(Instant::now())
}

/// Waits between attempts: exponential, jittered, and never past the deadline.
pub struct Backoff {
    until: Instant,
    next: Duration,
}

impl Backoff {
    /// A backoff for a loop with its own `budget` (within the operation's deadline).
    pub fn new(budget: Duration) -> Backoff {
        Backoff { until: deadline(budget), next: FIRST_BACKOFF }
    }

    /// Waits before the next attempt; `false`, without waiting, when the wait
    /// would end past the deadline (the caller reports its last error then).
    pub async fn wait(&mut self) -> bool {
        let wait = jittered(self.next);
        if Instant::now() + wait >= self.until {
            return false;
        }
        tokio::time::sleep(wait).await;
        self.next = (self.next * 2).min(LONGEST_BACKOFF);
        true
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        Instant::now() >= self.until
    }
}

/// A duration between half of `backoff` and all of it, so that callers that
/// failed together do not retry together.
fn jittered(backoff: Duration) -> Duration {
    use std::hash::BuildHasher as _;
    // Each RandomState has fresh keys, which is all the randomness a backoff needs.
    let random = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
    let fraction = (random % 1_000) as f64 / 1_000.0;
    backoff / 2 + backoff.mul_f64(fraction / 2.0)
}

/// Runs `operation` again while it fails with a retryable error (5xx, 429,
/// timeouts, connection trouble), until it succeeds, fails for good, or the
/// deadline (`budget`, within the operation's) leaves no time for a wait.
pub async fn with_retries<T, E, F, Fut>(budget: Duration, mut operation: F) -> Result<T, E>
where
    E: Retryable,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new(budget);
    loop {
        match operation().await {
            Err(error) if error.is_retryable() && backoff.wait().await => {
                tracing::warn!(error = %error, "transient backend error; retrying");
            }
            result => return result,
        }
    }
}

/// An error that knows whether the same call may succeed later, so that
/// [`with_retries`] can serve every backend.
pub trait Retryable: std::fmt::Display {
    /// Whether the same call may succeed later (5xx, 429, timeouts, connection trouble).
    fn is_retryable(&self) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jittered_waits_stay_between_half_and_all_of_the_backoff() {
        for _ in 0..100 {
            let wait = jittered(Duration::from_millis(800));
            assert!((Duration::from_millis(400)..=Duration::from_millis(800)).contains(&wait), "{wait:?}");
        }
    }

    #[tokio::test]
    async fn an_operation_deadline_shortens_every_loop_inside_it() {
        let inside = within(Duration::from_millis(300), async {
            let started = Instant::now();
            let mut backoff = Backoff::new(Duration::from_secs(60));
            while backoff.wait().await {}
            started.elapsed()
        })
        .await;
        assert!(inside < Duration::from_millis(400), "a 60 s loop ended at the 300 ms operation deadline: {inside:?}");
        // Nested operations keep the earlier deadline.
        let nested = within(
            Duration::from_millis(200),
            within(Duration::from_secs(60), async { remaining(Duration::from_secs(90)) }),
        )
        .await;
        assert!(nested <= Duration::from_millis(200), "{nested:?}");
        // Outside any operation, the loop's own budget counts.
        assert!(remaining(Duration::from_secs(5)) > Duration::from_secs(4));
    }
}
