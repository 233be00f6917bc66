//! One direction of the WebSocket relay: bytes read from one peer are written to the
//! other as they arrive, frame headers read on the way ([`Scanner`]).
//!
//! A pump is polled, never awaited: it returns `Pending` when its source has nothing
//! or its destination takes nothing, so whoever polls it stays free to act on timers.
//! It reads at most [`READ_CHUNK`] bytes at a time into a buffer on the poller's
//! stack and writes them straight on; only what the destination does not take at
//! once is copied to the heap ([`Outbox`]), and nothing more is read until that is
//! written. An idle pump owns no buffer, and a stalled one at most one chunk, so
//! backpressure reaches the sender through TCP.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::frame::{Scanner, Stop};

/// Largest read from a peer.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// Reads per poll before a pump yields, so that one busy direction cannot starve the
/// other or the relay's timers.
const READS_PER_POLL: usize = 8;

/// Why a pump stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PumpEnd {
    /// Forwarding ended at a frame boundary for this reason; everything before it
    /// was written.
    Stopped(Stop),
    /// The source ended (EOF or error) without a close frame.
    SourceLost,
    /// Writing to the destination failed.
    DestinationLost,
}

/// Bytes owed to a destination: stream offsets `[start, start + buf.len())`, of which
/// `[written, clear)` may be written now and `[clear, …)` is the start of a frame
/// header still incomplete.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    buf: Vec<u8>,
    start: u64,
    written: u64,
    clear: u64,
    needs_flush: bool,
    /// Since when the destination has refused every write, while bytes wait.
    pub(crate) stalled_since: Option<Instant>,
}

impl Outbox {
    /// Writes (and flushes) everything cleared.
    pub(crate) fn poll_drain<W>(
        &mut self,
        cx: &mut Context<'_>,
        dst: &mut W,
    ) -> Poll<io::Result<()>>
    where
        W: AsyncWrite + Unpin,
    {
        while self.written < self.clear {
            let from = offset(self.written - self.start);
            let to = offset(self.clear - self.start);
            match Pin::new(&mut *dst).poll_write(cx, &self.buf[from..to]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.progress(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return self.stalled(),
            }
        }
        self.compact();
        if self.needs_flush {
            match Pin::new(&mut *dst).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return self.stalled(),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Queues bytes of the relay's own (a close frame): they follow what is cleared,
    /// and an incomplete header behind it is dropped.
    pub(crate) fn push_own(&mut self, bytes: &[u8]) {
        self.buf.truncate(offset(self.clear - self.start));
        self.buf.extend_from_slice(bytes);
        self.clear += bytes.len() as u64;
    }

    fn progress(&mut self, n: usize) {
        self.written += n as u64;
        self.needs_flush = true;
        self.stalled_since = None;
    }

    fn stalled<T>(&mut self) -> Poll<T> {
        self.stalled_since.get_or_insert_with(Instant::now);
        Poll::Pending
    }

    /// Drops what was written; frees the buffer when nothing is left in it.
    fn compact(&mut self) {
        let done = offset(self.written - self.start);
        if done == 0 {
            return;
        }
        if done == self.buf.len() {
            self.buf = Vec::new();
        } else {
            self.buf.drain(..done);
        }
        self.start = self.written;
    }

    /// Takes `data`, the next bytes read (stream offsets from `start + buf.len()`),
    /// of which those before `clear` may be written and none after a `stop`. With
    /// nothing waiting, they are written straight from `data`, and only what `dst`
    /// does not take is kept.
    fn take<W>(
        &mut self,
        cx: &mut Context<'_>,
        dst: &mut W,
        data: &[u8],
        clear: u64,
        stopped: bool,
    ) -> io::Result<()>
    where
        W: AsyncWrite + Unpin,
    {
        let base = self.start + self.buf.len() as u64;
        let end = if stopped {
            clear
        } else {
            base + data.len() as u64
        };
        self.clear = clear;
        if end < base {
            // A stop at a header that began in an earlier read: drop its first bytes.
            self.buf.truncate(offset(end - self.start));
            return Ok(());
        }
        let mut sent = 0;
        if self.buf.is_empty() && clear > base {
            match Pin::new(&mut *dst).poll_write(cx, &data[..offset(clear - base)]) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    self.progress(n);
                    sent = n;
                    self.start = self.written;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {
                    self.stalled_since.get_or_insert_with(Instant::now);
                }
            }
        }
        self.buf.extend_from_slice(&data[sent..offset(end - base)]);
        Ok(())
    }
}

/// Converts an in-buffer distance (at most a few chunks) to an index.
fn offset(distance: u64) -> usize {
    usize::try_from(distance).unwrap_or(usize::MAX)
}

/// One direction: reads one peer, writes the other.
#[derive(Debug)]
pub(crate) struct Pump {
    /// Reads the headers of the frames this pump forwards.
    pub(crate) scanner: Scanner,
    /// What the destination has not taken yet.
    pub(crate) out: Outbox,
    /// Set when the scanner stopped forwarding.
    stop: Option<Stop>,
}

impl Pump {
    /// A pump forwarding frames as `scanner` reads them.
    pub(crate) fn new(scanner: Scanner) -> Pump {
        Pump {
            scanner,
            out: Outbox::default(),
            stop: None,
        }
    }

    /// Forwards from `src` to `dst` until either has nothing to give or take;
    /// `last_read` is set at each read that brought data.
    pub(crate) fn poll_forward<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        src: &mut R,
        dst: &mut W,
        last_read: &mut Instant,
    ) -> Poll<PumpEnd>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        for _ in 0..READS_PER_POLL {
            match self.out.poll_drain(cx, dst) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return Poll::Ready(PumpEnd::DestinationLost),
                Poll::Pending => return Poll::Pending,
            }
            if let Some(stop) = self.stop {
                return Poll::Ready(PumpEnd::Stopped(stop));
            }
            let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut read = ReadBuf::uninit(&mut chunk);
            match Pin::new(&mut *src).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(PumpEnd::SourceLost),
                Poll::Ready(Ok(())) => {}
            }
            let data = read.filled();
            if data.is_empty() {
                return Poll::Ready(PumpEnd::SourceLost);
            }
            *last_read = Instant::now();
            let scan = self.scanner.scan(data);
            self.stop = scan.stop;
            if self
                .out
                .take(cx, dst, data, scan.clear, scan.stop.is_some())
                .is_err()
            {
                return Poll::Ready(PumpEnd::DestinationLost);
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::super::frame::Sender;
    use super::*;

    /// One unmasked binary frame of `len` bytes (`len` < 65536).
    fn frame(len: usize) -> Vec<u8> {
        let mut f = vec![0x82, 126];
        f.extend_from_slice(&u16::try_from(len).expect("short frame").to_be_bytes());
        f.extend(std::iter::repeat_n(0x33, len));
        f
    }

    /// Polls the pump once; it must not finish.
    async fn poll_once<R, W>(pump: &mut Pump, src: &mut R, dst: &mut W)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut last_read = Instant::now();
        let polled =
            poll_fn(|cx| Poll::Ready(pump.poll_forward(cx, src, dst, &mut last_read))).await;
        assert!(polled.is_pending(), "the pump ended: {polled:?}");
    }

    #[tokio::test]
    async fn a_stalled_destination_holds_at_most_one_chunk_and_an_idle_pump_none() {
        let (mut sender, mut src) = tokio::io::duplex(1 << 20);
        let (mut dst, mut receiver) = tokio::io::duplex(4096);
        let mut pump = Pump::new(Scanner::new(Sender::Server, 1 << 20));
        let stream: Vec<u8> = (0..40).flat_map(|_| frame(10_000)).collect();
        sender.write_all(&stream).await.expect("fill the source");
        for _ in 0..20 {
            poll_once(&mut pump, &mut src, &mut dst).await;
            assert!(
                pump.out.buf.len() <= READ_CHUNK + 14,
                "{} bytes held",
                pump.out.buf.len()
            );
        }
        assert!(pump.out.stalled_since.is_some(), "the destination is full");

        // A reader drains the destination; everything arrives in order and the pump
        // ends up holding no buffer at all.
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; stream.len()];
            receiver.read_exact(&mut got).await.expect("read all");
            (got, stream)
        });
        let drained = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while !reader.is_finished() {
                poll_once(&mut pump, &mut src, &mut dst).await;
                tokio::task::yield_now().await;
            }
        });
        drained.await.expect("the destination was drained");
        let (got, stream) = reader.await.expect("reader");
        assert!(got == stream, "bytes changed on the way");
        poll_once(&mut pump, &mut src, &mut dst).await;
        assert_eq!(pump.out.buf.capacity(), 0);
        assert!(pump.out.stalled_since.is_none());
    }
}
