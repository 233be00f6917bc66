//! Waiting for a condition, always with a deadline: on the wall clock, or on the
//! test runtime's paused clock (for the gateway's background timers that run on it).

use std::future::{ready, Future};
use std::time::{Duration, Instant};

/// How long any single wait in the helpers may take.
pub const STEP: Duration = Duration::from_secs(10);

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(10);

/// Polls `cond` for at most [`STEP`]; panics naming `what` otherwise.
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, STEP, || ready(cond())).await;
}

/// Polls the async `check` until it returns true; the time it took, or a panic
/// naming `what` after `limit`.
pub async fn within<F, Fut>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    let polling = async {
        while !check().await {
            tokio::time::sleep(POLL).await;
        }
    };
    tokio::time::timeout(limit, polling)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {limit:?}"));
    start.elapsed()
}

/// Pauses the test runtime's clock and lets it run ahead (auto-advancing from one
/// timer to the next, so every timer fires in order) until `cond` holds, at most
/// `limit` of virtual time; then resumes the wall clock. Only for waits on timers
/// of this runtime with nothing outside it involved: the gateway's serving threads
/// have their own runtimes and keep the wall clock.
pub async fn on_paused_clock(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    while !cond() {
        let virtual_elapsed = start.elapsed();
        if virtual_elapsed > limit {
            tokio::time::resume();
            panic!("{what}: not within {limit:?} of paused time");
        }
        tokio::time::sleep(POLL).await;
    }
    tokio::time::resume();
}

/// Lets `span` pass on the test runtime's paused clock (every timer of this
/// runtime due within it fires, in order), then resumes the wall clock. Only for
/// timers of this runtime with nothing outside it involved (see
/// [`on_paused_clock`]).
pub async fn pass_paused(span: Duration) {
    tokio::time::pause();
    tokio::time::sleep(span).await;
    tokio::time::resume();
}
