//! Which serving thread takes a new connection. All threads accept from one listening
//! socket; the first always does, and each further thread only while the thread
//! before it is busy. Light load is served by as few threads as carry it: a thread
//! with all the connections sleeps and wakes less often per request than two threads
//! with half each (each wake-up is a context switch and cold caches), while a load
//! that keeps a thread busy spreads over the next ones as new connections arrive.
//! Once accepted, a connection stays on its thread until it closes.
//!
//! Busy means CPU time: the share of the last second the thread before ran on a CPU.
//! Only a thread near a whole CPU is helped by another one; a thread that waits for
//! a CPU other processes hold is not helped by a second thread competing for the
//! same CPUs.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::runtime::RuntimeMetrics;
use tokio::time::Instant;

/// How often a waiting thread looks at the load of the thread before it.
pub(crate) const PROBE_EVERY: Duration = Duration::from_millis(100);

/// A thread starts accepting when the thread before it ran on a CPU for at least
/// this share of the last second...
pub(crate) const OPEN_AT: f64 = 0.85;

/// ...and stops again when that share falls below this one.
pub(crate) const CLOSE_BELOW: f64 = 0.6;

/// Probes a share is computed over (about a second: the kernel counts a thread's
/// CPU time in ticks of 10 ms).
const WINDOW: usize = 11;

/// Shorter spans than this give no share yet (counted as idle).
const MIN_SPAN: Duration = Duration::from_millis(500);

/// Seconds per tick of `/proc/<pid>/task/<tid>/stat`'s CPU times (`USER_HZ`, 100
/// on every Linux architecture).
const TICK: f64 = 0.01;

/// The busy share of another serving thread.
pub(crate) trait Load: Send {
    /// The busy share by the latest measurement, in `0.0..=1.0`.
    fn busy(&mut self) -> f64;
}

/// A serving thread's kernel thread id, set by the thread itself once it runs (so
/// that the next thread can read its CPU time).
#[derive(Debug, Clone, Default)]
pub(crate) struct ThreadCell(Arc<OnceLock<u32>>);

impl ThreadCell {
    /// Records the calling thread (nothing when `/proc` does not tell it).
    pub(crate) fn set_to_current(&self) {
        if let Some(tid) = current_thread() {
            let _ = self.0.set(tid);
        }
    }
}

/// The calling thread's kernel id, from `/proc/thread-self` (`<pid>/task/<tid>`).
fn current_thread() -> Option<u32> {
    std::fs::read_link("/proc/thread-self")
        .ok()?
        .file_name()?
        .to_str()?
        .parse()
        .ok()
}

/// User plus system CPU time of thread `tid` of this process, in ticks.
fn cpu_ticks(tid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // After the command name (which may hold anything but ends with the last ')'):
    // state is field 3 of the line, utime 14 and stime 15.
    let mut fields = stat.rsplit_once(')')?.1.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime.saturating_add(stime))
}

/// The CPU share of the span from the oldest to the newest of `samples` (probe
/// instant, CPU ticks); 0 while the span is shorter than [`MIN_SPAN`].
fn cpu_share(samples: &VecDeque<(Instant, u64)>) -> f64 {
    let (Some(&(from, first)), Some(&(to, last))) = (samples.front(), samples.back()) else {
        return 0.0;
    };
    let span = to.saturating_duration_since(from);
    if span < MIN_SPAN {
        return 0.0;
    }
    let ran = last.saturating_sub(first) as f64 * TICK;
    (ran / span.as_secs_f64()).clamp(0.0, 1.0)
}

/// The CPU share of a serving thread over about the last second; where `/proc`
/// does not tell it, the busy share of its runtime ([`RuntimeLoad`]).
pub(crate) struct CpuLoad {
    thread: ThreadCell,
    samples: VecDeque<(Instant, u64)>,
    runtime: RuntimeLoad,
}

impl CpuLoad {
    /// Measures the thread `thread` will name, which runs the runtime of `metrics`.
    pub(crate) fn new(thread: ThreadCell, metrics: RuntimeMetrics) -> CpuLoad {
        CpuLoad {
            thread,
            samples: VecDeque::with_capacity(WINDOW),
            runtime: RuntimeLoad::new(metrics),
        }
    }
}

impl Load for CpuLoad {
    fn busy(&mut self) -> f64 {
        let runtime = self.runtime.busy();
        let Some(ticks) = self.thread.0.get().and_then(|&tid| cpu_ticks(tid)) else {
            return runtime;
        };
        if self.samples.len() == WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back((Instant::now(), ticks));
        cpu_share(&self.samples)
    }
}

/// The busy share of a single-threaded runtime since the previous probe, from its
/// own metrics: tokio adds up the wall-clock time its worker spends running tasks
/// (their system calls included, and any time the thread waits for a CPU meanwhile),
/// at every park.
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

    #[test]
    fn a_share_is_cpu_time_over_the_span_of_the_window() {
        let t0 = Instant::now();
        let at = |ms: u64, ticks: u64| (t0 + Duration::from_millis(ms), ticks);
        let mut samples = VecDeque::new();
        assert_eq!(cpu_share(&samples), 0.0, "nothing measured");
        samples.push_back(at(0, 1000));
        samples.push_back(at(400, 1040));
        assert_eq!(cpu_share(&samples), 0.0, "too short a span");
        samples.push_back(at(1000, 1090));
        assert!((cpu_share(&samples) - 0.9).abs() < 1e-9, "90 ticks in 1 s");
        samples.push_back(at(2000, 1090));
        assert!((cpu_share(&samples) - 0.45).abs() < 1e-9, "90 ticks in 2 s");
        samples.push_back(at(2500, 1500));
        assert_eq!(cpu_share(&samples), 1.0, "never above a whole CPU");
        let backwards = VecDeque::from([at(0, 50), at(1000, 10)]);
        assert_eq!(cpu_share(&backwards), 0.0, "a count that went back is none");
    }

    /// `/proc` tells this thread's id and its CPU time, which grows as it computes.
    #[test]
    fn a_threads_cpu_time_is_read_from_proc() {
        let cell = ThreadCell::default();
        cell.set_to_current();
        let tid = *cell.0.get().expect("/proc/thread-self names the thread");
        let before = cpu_ticks(tid).expect("the thread's CPU time");
        let until = std::time::Instant::now() + Duration::from_secs(10);
        let mut spun = 0u64;
        while cpu_ticks(tid).unwrap_or(before) < before + 3 && std::time::Instant::now() < until {
            for i in 0..100_000u64 {
                spun = std::hint::black_box(spun.wrapping_add(i));
            }
        }
        assert!(
            cpu_ticks(tid).unwrap_or(before) >= before + 3,
            "CPU time did not grow while spinning"
        );
        assert_eq!(current_thread(), Some(tid));
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
