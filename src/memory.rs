//! Giving memory back to the system once WebSockets have closed.
//!
//! Each open WebSocket holds buffers of its own on the serving thread's heap. When
//! many close at once (a browser tab closed on a big dashboard, a load balancer
//! dropping a batch of connections), the C allocator keeps the freed pages in its
//! pools: measured with `bench/soak`, 1,000 WebSockets opened and closed left some
//! 17 MiB held for 1.4 MiB in use, and RSS stayed there. So, with glibc, the
//! allocator is asked to release what it keeps (`malloc_trim`) once closes have come
//! to rest: at most once per [`CHECK`], and only after a check found WebSockets
//! closed since the previous trim and none closing since the check before. Nothing
//! happens while no WebSocket closes, and the request path is not involved.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often closes are looked at.
pub(crate) const CHECK: Duration = Duration::from_secs(1);

/// WebSockets closed since start.
static CLOSED: AtomicU64 = AtomicU64::new(0);

/// Counts one closed WebSocket.
pub(crate) fn websocket_closed() {
    CLOSED.fetch_add(1, Ordering::Relaxed);
}

/// When to trim, given the closes counted at the last trim, at the previous check
/// and now: some since the last trim, none since the previous check.
fn settled(at_trim: u64, previous: u64, now: u64) -> bool {
    now != at_trim && now == previous
}

/// Runs until `stop`: checks every [`CHECK`] and trims when closes have settled.
pub(crate) async fn release_after_closes(stop: CancellationToken) {
    let mut at_trim = CLOSED.load(Ordering::Relaxed);
    let mut previous = at_trim;
    let mut ticks = tokio::time::interval(CHECK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let now = CLOSED.load(Ordering::Relaxed);
        if settled(at_trim, previous, now) {
            // Walking the allocator's arenas takes a moment: off the async threads.
            let _ = tokio::task::spawn_blocking(trim).await;
            at_trim = now;
        }
        previous = now;
    }
}

/// Asks the allocator to return free memory to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: `malloc_trim` only reorganises glibc's own free lists; it takes no
    // pointer and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators return memory by themselves (or not at all): nothing to ask.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_closes_have_come_to_rest() {
        // No close since the last trim: never.
        assert!(!settled(5, 5, 5));
        // Closes still coming in: not yet.
        assert!(!settled(5, 6, 9));
        // Closes since the trim, none since the previous check: now.
        assert!(settled(5, 9, 9));
    }

    #[tokio::test(start_paused = true)]
    async fn the_task_ends_when_stopped() {
        let stop = CancellationToken::new();
        let task = tokio::spawn(release_after_closes(stop.clone()));
        websocket_closed();
        tokio::time::sleep(CHECK * 3).await;
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("ended")
            .expect("no panic");
    }
}
