//! The log's writer: formatted lines are appended to one shared buffer (a short lock,
//! no system call, no wake-up per line), and a thread of its own writes that buffer
//! to stdout in batches, at most [`GATHER`] after the first line of a batch arrived.
//! When stdout falls behind by [`BUFFERED_LINES`](super::BUFFERED_LINES) lines,
//! further lines are dropped and counted instead of stalling requests.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a batch gathers lines before it is written.
pub(crate) const GATHER: Duration = Duration::from_millis(50);

/// Lines waiting for the writer thread.
#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    lines: usize,
    closed: bool,
}

/// What the serving threads and the writer thread share.
#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    /// Signalled when a batch starts and when the writer is closed.
    started: Condvar,
    dropped: AtomicU64,
    limit: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `MakeWriter` handed to `tracing-subscriber`: each event is one `write`.
#[derive(Debug, Clone)]
pub(crate) struct BatchWriter {
    shared: Arc<Shared>,
}

/// The writer thread; dropping it writes what is pending and ends the thread.
#[derive(Debug)]
pub(crate) struct BatchGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread for `out`, keeping at most `limit` lines pending.
pub(crate) fn start<W: Write + Send + 'static>(
    out: W,
    limit: usize,
) -> io::Result<(BatchWriter, BatchGuard)> {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending::default()),
        started: Condvar::new(),
        dropped: AtomicU64::new(0),
        limit,
    });
    let thread = {
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("ddg-log".into())
            .spawn(move || write_batches(&shared, out))?
    };
    Ok((
        BatchWriter {
            shared: Arc::clone(&shared),
        },
        BatchGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

impl BatchWriter {
    /// Adds one line to the batch, or counts it as dropped when the writer is
    /// `limit` lines behind.
    pub(crate) fn append(&self, line: &[u8]) {
        let mut pending = self.shared.lock();
        if pending.lines >= self.shared.limit {
            drop(pending);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let starts_batch = pending.bytes.is_empty();
        pending.bytes.extend_from_slice(line);
        pending.lines += 1;
        drop(pending);
        if starts_batch {
            self.shared.started.notify_one();
        }
    }

    /// Lines dropped so far because the writer was `limit` lines behind.
    pub(crate) fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

/// The writer thread: waits for a batch to start, lets it gather, writes it.
fn write_batches<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        let mut pending = shared.lock();
        while pending.bytes.is_empty() && !pending.closed {
            pending = shared
                .started
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if pending.bytes.is_empty() {
            return; // Closed, and everything written.
        }
        if !pending.closed {
            drop(pending);
            std::thread::sleep(GATHER);
            pending = shared.lock();
        }
        std::mem::swap(&mut pending.bytes, &mut batch);
        pending.lines = 0;
        drop(pending);
        // A failing stdout loses this batch; there is nowhere else to say so.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if batch.capacity() > 1 << 20 {
            batch = Vec::new();
        }
    }
}

impl Drop for BatchGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.started.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Write for BatchWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.append(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = BatchWriter;

    fn make_writer(&'a self) -> BatchWriter {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// A sink that hands every batch it is given to a channel, and can be held up.
    struct Sink {
        batches: mpsc::Sender<Vec<u8>>,
        hold: Arc<Mutex<()>>,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _held = self.hold.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = self.batches.send(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn sink() -> (Sink, mpsc::Receiver<Vec<u8>>, Arc<Mutex<()>>) {
        let (batches, rx) = mpsc::channel();
        let hold = Arc::new(Mutex::new(()));
        let sink = Sink {
            batches,
            hold: Arc::clone(&hold),
        };
        (sink, rx, hold)
    }

    #[test]
    fn lines_are_written_in_batches_and_all_of_them_on_drop() {
        let (sink, rx, _hold) = sink();
        let (writer, guard) = start(sink, 1000).expect("thread");
        for i in 0..100 {
            writer
                .make_writer()
                .write_all(format!("line {i}\n").as_bytes())
                .expect("write");
        }
        let first = rx.recv_timeout(Duration::from_secs(5)).expect("a batch");
        assert!(first.starts_with(b"line 0\n"));
        for i in 100..110 {
            writer
                .make_writer()
                .write_all(format!("line {i}\n").as_bytes())
                .expect("write");
        }
        drop(guard);
        let mut all = first;
        all.extend(rx.try_iter().flatten());
        let text = String::from_utf8(all).expect("utf-8");
        let expected: String = (0..110).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, expected);
        assert_eq!(writer.dropped(), 0);
    }

    #[test]
    fn a_stalled_stdout_drops_and_counts_lines_beyond_the_limit() {
        let (sink, rx, hold) = sink();
        let held = hold.lock().expect("hold");
        let (writer, guard) = start(sink, 10).expect("thread");
        // The first batch is taken and stuck in the sink; 10 more may wait.
        writer.make_writer().write_all(b"first\n").expect("write");
        std::thread::sleep(GATHER * 3);
        for _ in 0..15 {
            writer
                .make_writer()
                .write_all(b"x\n")
                .expect("never blocks");
        }
        assert_eq!(writer.dropped(), 5);
        drop(held);
        drop(guard);
        let written: usize = rx.try_iter().map(|b| b.len()).sum();
        assert_eq!(written, "first\n".len() + 10 * 2);
    }
}
