//! Idle scheduler connections of one serving thread, kept per scheduler address for
//! reuse (last in, first out), each with its read buffer. Connections idle past the
//! timeout, or that the scheduler has closed, are dropped at the next checkout and by
//! a sweep in the background.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Waker};
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Read buffer capacity kept by an idle connection; a larger one is freed.
const IDLE_BUFFER: usize = 8 * 1024;

/// One connection to a scheduler.
#[derive(Debug)]
pub(crate) struct Conn {
    /// The socket.
    pub(crate) stream: TcpStream,
    /// Bytes read and not yet consumed.
    pub(crate) buf: BytesMut,
    /// The scheduler's address, the pool key.
    pub(crate) key: Arc<str>,
}

impl Conn {
    /// A fresh connection to `key`.
    pub(crate) fn new(stream: TcpStream, key: Arc<str>) -> Conn {
        Conn {
            stream,
            buf: BytesMut::with_capacity(IDLE_BUFFER),
            key,
        }
    }

    /// True when the socket has something to read while idle: the scheduler closed
    /// it (or sent bytes no request asked for). Asks the runtime's readiness first,
    /// which costs no system call; a close it has not seen yet is caught by the retry
    /// of a request that meets a closed connection.
    fn looks_closed(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        if self.stream.poll_read_ready(&mut cx).is_pending() {
            return false;
        }
        // Readiness can be stale (a read that filled the buffer exactly leaves it
        // set): only "would block" means open and quiet.
        let mut probe = [0u8; 1];
        !matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// An idle connection and when it became idle.
#[derive(Debug)]
struct Idle {
    conn: Conn,
    since: Instant,
}

/// Hashes a scheduler address (FNV-1a): the addresses come from the route table,
/// not from clients, so no keyed hash is needed against chosen collisions, and
/// this one costs a fraction of SipHash on every checkout and return.
#[derive(Debug, Clone, Copy)]
struct AddrHasher(u64);

impl Default for AddrHasher {
    fn default() -> Self {
        AddrHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for AddrHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Idle connections by scheduler address.
#[derive(Debug)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<Arc<str>, Vec<Idle>, BuildHasherDefault<AddrHasher>>>,
    max_per_host: usize,
    timeout: Duration,
    sweeping: AtomicBool,
}

impl Pool {
    /// An empty pool keeping up to `max_per_host` idle connections per scheduler, each
    /// for at most `timeout`.
    pub(crate) fn new(max_per_host: usize, timeout: Duration) -> Pool {
        Pool {
            idle: Mutex::new(HashMap::default()),
            max_per_host,
            timeout,
            sweeping: AtomicBool::new(false),
        }
    }

    /// The most recently used idle connection to `key` that still looks open.
    pub(crate) fn take(&self, key: &str) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let stack = idle.get_mut(key)?;
        let now = Instant::now();
        while let Some(entry) = stack.pop() {
            if now.duration_since(entry.since) < self.timeout && !entry.conn.looks_closed() {
                return Some(entry.conn);
            }
        }
        None
    }

    /// Keeps `conn` for reuse, unless its scheduler already has `max_per_host` idle
    /// connections here.
    pub(crate) fn put(self: &Arc<Self>, mut conn: Conn) {
        if self.max_per_host == 0 || !conn.buf.is_empty() {
            return;
        }
        if conn.buf.capacity() > IDLE_BUFFER {
            conn.buf = BytesMut::new();
        }
        let key = Arc::clone(&conn.key);
        {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let stack = idle.entry(key).or_default();
            if stack.len() >= self.max_per_host {
                return;
            }
            stack.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
        self.start_sweeping();
    }

    /// Drops every idle connection to `key` (after one of them turned out closed: the
    /// scheduler probably restarted).
    pub(crate) fn forget(&self, key: &str) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.remove(key);
    }

    /// Number of idle connections.
    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.values().map(Vec::len).sum()
    }

    /// Drops expired and closed connections, and schedulers left with none.
    fn sweep(&self) {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|_, stack| {
            stack.retain(|e| now.duration_since(e.since) < self.timeout && !e.conn.looks_closed());
            !stack.is_empty()
        });
    }

    /// Starts the background sweep on the current runtime, once.
    fn start_sweeping(self: &Arc<Self>) {
        if self.sweeping.swap(true, Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.sweeping.store(false, Ordering::Relaxed);
            return;
        };
        let pool: Weak<Pool> = Arc::downgrade(self);
        let every = (self.timeout / 2).max(Duration::from_millis(100));
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match pool.upgrade() {
                    Some(pool) => pool.sweep(),
                    None => return,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    async fn pair() -> (Conn, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let conn = Conn::new(client.expect("connect"), Arc::from(addr.to_string()));
        (conn, accepted.expect("accept").0)
    }

    #[tokio::test]
    async fn reuses_last_in_first_out_up_to_the_limit() {
        let pool = Arc::new(Pool::new(2, Duration::from_secs(60)));
        let mut peers = Vec::new();
        let mut ports = Vec::new();
        let mut key = None;
        for _ in 0..3 {
            let (conn, peer) = pair().await;
            ports.push(conn.stream.local_addr().expect("addr").port());
            // All three under one key, as if to one scheduler.
            let conn = Conn {
                key: Arc::clone(key.get_or_insert_with(|| Arc::clone(&conn.key))),
                ..conn
            };
            pool.put(conn);
            peers.push(peer);
        }
        assert_eq!(pool.idle_count(), 2, "the third is over the limit");
        let key = key.expect("key");
        let port = |c: Conn| c.stream.local_addr().expect("addr").port();
        assert_eq!(pool.take(&key).map(port), Some(ports[1]));
        assert_eq!(pool.take(&key).map(port), Some(ports[0]));
        assert!(pool.take(&key).is_none());
    }

    #[tokio::test]
    async fn closed_and_expired_connections_are_not_handed_out() {
        let pool = Arc::new(Pool::new(8, Duration::from_millis(300)));
        let (conn, peer) = pair().await;
        let key = Arc::clone(&conn.key);
        pool.put(conn);
        drop(peer);
        // Let the runtime see the close.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.take(&key).is_none(), "closed by the scheduler");

        let (conn, _peer) = pair().await;
        let key = Arc::clone(&conn.key);
        pool.put(conn);
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(pool.idle_count(), 0, "swept after the idle timeout");
        assert!(pool.take(&key).is_none());
    }

    #[tokio::test]
    async fn a_connection_with_unread_bytes_is_not_kept() {
        let pool = Arc::new(Pool::new(8, Duration::from_secs(60)));
        let (mut conn, _peer) = pair().await;
        conn.buf.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        pool.put(conn);
        assert_eq!(pool.idle_count(), 0);
    }
}
