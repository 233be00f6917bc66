//! Which serving thread takes a new connection. All threads accept from one listening
//! socket; the first always does, and each further thread only while the thread
//! before it is busy. Light load is served by as few threads as carry it: a thread
//! with all the connections sleeps and wakes less often per request than two threads
//! with half each (each wake-up is a context switch and cold caches), while a load
//! that keeps a thread busy spreads over the next ones as new connections arrive.
//! Once accepted, a connection stays on its thread until it closes.

use std::time::Duration;

use tokio::runtime::RuntimeMetrics;
use tokio::time::Instant;

/// How often a waiting thread looks at the load of the thread before it.
pub(crate) const PROBE_EVERY: Duration = Duration::from_millis(100);

/// A thread starts accepting when the thread before it was busy for at least this
/// share of the last probe interval...
pub(crate) const OPEN_AT: f64 = 0.75;

/// ...and stops again when that share falls below this one.
pub(crate) const CLOSE_BELOW: f64 = 0.5;

/// The share of wall-clock time another runtime's worker spends running tasks
/// (polling futures, their system calls included; not waiting for events).
pub(crate) trait Load: Send {
    /// The busy share since the previous call (or since creation), in `0.0..=1.0`.
    fn busy(&mut self) -> f64;
}

/// The load of a single-threaded runtime, from its own metrics: tokio adds up the
/// time its worker spends between wake-ups, at every park.
pub(crate) struct RuntimeLoad {
    metrics: RuntimeMetrics,
    busy: Duration,
    at: Instant,
}

impl RuntimeLoad {
    /// Measures the runtime `metrics` come from, from now on.
    pub(crate) fn new(metrics: RuntimeMetrics) -> RuntimeLoad {
        let busy = total_busy(&metrics);
        RuntimeLoad {
            metrics,
            busy,
            at: Instant::now(),
        }
    }
}

fn total_busy(metrics: &RuntimeMetrics) -> Duration {
    if metrics.num_workers() == 0 {
        return Duration::ZERO;
    }
    metrics.worker_total_busy_duration(0)
}

impl Load for RuntimeLoad {
    fn busy(&mut self) -> f64 {
        let (busy, at) = (total_busy(&self.metrics), Instant::now());
        let ran = busy.saturating_sub(self.busy).as_secs_f64();
        let passed = at.saturating_duration_since(self.at).as_secs_f64();
        (self.busy, self.at) = (busy, at);
        if passed <= 0.0 {
            return 0.0;
        }
        (ran / passed).clamp(0.0, 1.0)
    }
}

/// When a thread accepts new connections.
pub(crate) enum Accepting {
    /// Always (the first serving thread, the admin listener).
    Always,
    /// While the thread before it is busy: from a probe that finds it at
    /// [`OPEN_AT`] or more until one that finds it below [`CLOSE_BELOW`].
    WhileBusy(Box<dyn Load>),
}

impl Accepting {
    /// Whether it is worth probing at all.
    pub(crate) fn probes(&self) -> bool {
        matches!(self, Accepting::WhileBusy(_))
    }

    /// Whether to accept after a probe, given whether the thread accepted before.
    pub(crate) fn probe(&mut self, open: bool) -> bool {
        match self {
            Accepting::Always => true,
            Accepting::WhileBusy(load) => gate(open, load.busy()),
        }
    }

    /// Whether to accept before the first probe.
    pub(crate) fn at_start(&self) -> bool {
        !self.probes()
    }
}

/// The decision with hysteresis: opens at [`OPEN_AT`], closes below [`CLOSE_BELOW`].
pub(crate) fn gate(open: bool, busy_before: f64) -> bool {
    if open {
        busy_before >= CLOSE_BELOW
    } else {
        busy_before >= OPEN_AT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_opens_when_busy_and_closes_when_idle_with_hysteresis() {
        assert!(!gate(false, 0.0));
        assert!(!gate(false, OPEN_AT - 0.01));
        assert!(gate(false, OPEN_AT));
        assert!(gate(false, 1.0));
        // Open: stays open between the two thresholds.
        assert!(gate(true, OPEN_AT - 0.01));
        assert!(gate(true, CLOSE_BELOW));
        assert!(!gate(true, CLOSE_BELOW - 0.01));
        assert!(!gate(true, 0.0));
        const { assert!(CLOSE_BELOW < OPEN_AT) };
    }

    #[test]
    fn always_accepts_and_never_probes() {
        let mut always = Accepting::Always;
        assert!(always.at_start());
        assert!(!always.probes());
        assert!(always.probe(false));
    }

    /// A runtime whose worker blocks in a task reads as busy; the same runtime
    /// waiting for a timer reads as idle.
    #[test]
    fn a_runtimes_load_is_its_workers_busy_share() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut load = RuntimeLoad::new(runtime.metrics());
        let (ran, waited) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async {
                // Blocking on purpose: the worker is busy all along.
                std::thread::sleep(Duration::from_millis(300));
                let _ = ran.send(());
                // Idle: parked until the timer fires.
                tokio::time::sleep(Duration::from_millis(400)).await;
            });
        });
        waited
            .recv_timeout(Duration::from_secs(10))
            .expect("the busy part ran");
        // Counted once the worker parks, right after the send.
        std::thread::sleep(Duration::from_millis(20));
        let busy = load.busy();
        assert!(busy > 0.5, "busy share while the task ran: {busy}");
        std::thread::sleep(Duration::from_millis(100));
        let idle = load.busy();
        assert!(idle < 0.3, "busy share while parked: {idle}");
        thread.join().expect("runtime thread");
    }
}
