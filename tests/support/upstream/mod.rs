//! The fake upstreams, all on 127.0.0.1:0, written here so that every byte they see
//! and send is under the test's control: a recording HTTP server ([`HttpUpstream`]),
//! a WebSocket server that behaves like Bokeh's ([`WsUpstream`]), and a listener that
//! only counts connections and never answers ([`CountingListener`], the "blackhole").

pub mod load;
pub mod recording;
pub mod websocket;

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

// Re-exported for the tests; not every test binary uses each.
#[allow(unused_imports)]
pub use recording::{HttpUpstream, Recorded, Reply, ReplyBody, ReplySwitch};
#[allow(unused_imports)]
pub use websocket::{Handshake, WsUpstream};

/// Binds a listener on 127.0.0.1:0 for `what` (named in the panic when it fails).
pub async fn bind(what: &str) -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("binding {what}: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("the address of {what}: {e}"));
    (listener, addr)
}

/// What every fake upstream has: where it listens on 127.0.0.1, the connections it
/// accepted, and its accept loop, stopped when it is dropped.
pub struct Listening {
    /// Where it listens.
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Listening {
    /// Binds 127.0.0.1:0 for `what` and hands every accepted connection to
    /// `serve`, counting them.
    pub async fn start(what: &str, mut serve: impl FnMut(TcpStream) + Send + 'static) -> Listening {
        let (listener, addr) = bind(what).await;
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                serve(stream);
            }
        });
        Listening {
            addr,
            connections,
            task,
        }
    }

    /// `http://<addr>` (for a static route).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts TCP connections, counts them ([`Listening::connections`]) and holds
/// them open without reading or writing a byte: proves that no upstream connection
/// was made, and is the "blackhole" upstream that never answers.
pub struct CountingListener {
    listening: Listening,
}

impl CountingListener {
    /// Starts the listener.
    pub async fn start() -> CountingListener {
        let mut held = Vec::new();
        let listening =
            Listening::start("the counting listener", move |stream| held.push(stream)).await;
        CountingListener { listening }
    }
}

impl Deref for CountingListener {
    type Target = Listening;

    fn deref(&self) -> &Listening {
        &self.listening
    }
}

/// An upstream that accepts connections and never answers (for `504`).
pub async fn blackhole() -> CountingListener {
    CountingListener::start().await
}

/// An address nothing listens on (bound, then released): connecting is refused.
pub async fn refused_addr() -> SocketAddr {
    let (listener, addr) = bind("a throwaway port").await;
    drop(listener);
    addr
}
