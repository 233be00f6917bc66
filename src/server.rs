//! Listeners: the accept loop (plain TCP or TLS), HTTP/1.1 and HTTP/2 with upgrades,
//! the graceful drain of open connections when shutdown begins, and the serving
//! threads: one single-threaded runtime per thread, all accepting from one listening
//! socket as `placement` decides, so a connection lives on one thread from accept to
//! close.

mod conn;
mod h1;
mod placement;
mod rewind;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use http::Request;
use prometheus_client::metrics::counter::Counter;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::runtime::RuntimeMetrics;
use tokio::sync::oneshot;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::body::RequestBody;
use crate::config::ServerConfig;
use crate::proxy::raw::RawHead;
use crate::proxy::Reply;
pub(crate) use conn::Ends;
pub(crate) use placement::Accepting;
use placement::{CpuLoad, ThreadCell};

/// Connection-level settings of a listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnSettings {
    /// Drop a client that has not sent its first request head by then.
    pub(crate) header_read_timeout: Duration,
    /// Close an HTTP/1.1 connection whose next request head has not arrived this
    /// long after the previous response.
    pub(crate) http1_keep_alive_timeout: Duration,
    /// Ping HTTP/2 connections this often.
    pub(crate) http2_keep_alive_interval: Duration,
    /// Close an HTTP/2 connection whose ping is not answered within this.
    pub(crate) http2_keep_alive_timeout: Duration,
    /// Close an HTTP/2 connection with no open stream for this long.
    pub(crate) http2_idle_timeout: Duration,
    /// Largest request head (HTTP/1 read buffer, HTTP/2 header list).
    pub(crate) max_header_bytes: usize,
    /// Plain HTTP/1.1 requests go through the gateway's own loop first (`h1`).
    pub(crate) native_http1: bool,
}

impl ConnSettings {
    /// The settings `server` asks for, with heads up to `max_header_bytes`.
    pub(crate) fn new(server: &ServerConfig, max_header_bytes: usize) -> ConnSettings {
        ConnSettings {
            header_read_timeout: server.header_read_timeout,
            http1_keep_alive_timeout: server.http1_keep_alive_timeout,
            http2_keep_alive_interval: server.http2_keep_alive_interval,
            http2_keep_alive_timeout: server.http2_keep_alive_timeout,
            http2_idle_timeout: server.http2_idle_timeout,
            max_header_bytes,
            native_http1: server.native_http1,
        }
    }
}

/// Binds one listening socket on `addr` and hands out `count` handles to it (one per
/// serving thread; see `placement` for which of them accepts when).
pub(crate) fn bind_shared(
    addr: SocketAddr,
    count: usize,
) -> io::Result<Vec<std::net::TcpListener>> {
    let first = listener(addr)?;
    let mut all = Vec::with_capacity(count.max(1));
    for _ in 1..count {
        all.push(first.try_clone()?);
    }
    all.insert(0, first);
    Ok(all)
}

fn listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// What every serving thread is started with.
#[derive(Clone)]
pub(crate) struct Serving {
    /// TLS on the public listener.
    pub(crate) tls: Option<TlsAcceptor>,
    /// Connection limits.
    pub(crate) settings: ConnSettings,
    /// Cancelled to stop accepting and drain.
    pub(crate) stop: CancellationToken,
    /// Counts connections handed from the HTTP/1.1 loop to hyper.
    pub(crate) handoffs: Counter,
    /// Cancelled once the drain is over (everything finished, or the shutdown
    /// deadline): the threads end, dropping whatever still runs on them.
    pub(crate) release: CancellationToken,
}

/// One serving thread's running state, as the thread that started it sees it.
pub(crate) struct Worker {
    /// Resolves when the thread has stopped accepting and its HTTP connections have
    /// finished (or were dropped at the release); its WebSockets may still run.
    pub(crate) served: oneshot::Receiver<()>,
    /// Resolves when the thread's runtime, and all that ran on it, is gone.
    ended: oneshot::Receiver<()>,
    /// The thread's runtime's metrics and kernel thread id (how busy it is).
    metrics: RuntimeMetrics,
    thread: ThreadCell,
}

impl Worker {
    /// Starts a thread serving `listener` with `handler` until `serving.stop`; the
    /// thread and its runtime (with whatever still runs on it) end once
    /// `serving.release` is cancelled. The first thread (`before` is `None`) accepts
    /// always, the others while the thread `before` them is busy.
    pub(crate) fn start<H, F>(
        index: usize,
        listener: std::net::TcpListener,
        handler: H,
        serving: Serving,
        accepted: Counter,
        before: Option<&Worker>,
    ) -> io::Result<Worker>
    where
        H: Fn(Request<RequestBody>, Option<RawHead>, SocketAddr) -> F
            + Clone
            + Send
            + Sync
            + 'static,
        F: Future<Output = Reply> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let metrics = runtime.metrics();
        let thread = ThreadCell::default();
        let accepting = match before {
            None => Accepting::Always,
            Some(before) => Accepting::WhileBusy(Box::new(CpuLoad::new(
                before.thread.clone(),
                before.metrics.clone(),
            ))),
        };
        let this_thread = thread.clone();
        let (done, served) = oneshot::channel();
        let (gone, ended) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("ddg-serve-{index}"))
            .spawn(move || {
                this_thread.set_to_current();
                runtime.block_on(async move {
                    let Serving {
                        tls,
                        settings,
                        stop,
                        release,
                        handoffs,
                    } = serving;
                    match TcpListener::from_std(listener) {
                        Ok(listener) => {
                            serve(
                                listener,
                                accepting,
                                tls,
                                settings,
                                handler,
                                Ends {
                                    stop,
                                    abort: release.clone(),
                                    handoffs,
                                },
                                accepted,
                            )
                            .await;
                        }
                        Err(error) => tracing::error!(%error, "serving thread has no listener"),
                    }
                    let _ = done.send(());
                    release.cancelled().await;
                });
                // Closes the connections and WebSockets still open.
                drop(runtime);
                let _ = gone.send(());
            })?;
        Ok(Worker {
            served,
            ended,
            metrics,
            thread,
        })
    }

    /// Waits until `by` at the latest for the thread to end after its release.
    pub(crate) async fn ended_by(self, by: Instant) {
        let _ = tokio::time::timeout_at(by, self.ended).await;
    }
}

/// Serves `listener` (when `accepting` says so) until `ends.stop` is cancelled, then
/// lets open HTTP connections finish (upgraded connections are tracked by their
/// owner) until they have, or until `ends.abort` is cancelled. `accepted` counts the
/// connections accepted.
pub(crate) async fn serve<H, F>(
    listener: TcpListener,
    mut accepting: Accepting,
    tls: Option<TlsAcceptor>,
    settings: ConnSettings,
    handler: H,
    ends: Ends,
    accepted: Counter,
) where
    H: Fn(Request<RequestBody>, Option<RawHead>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    // This thread's own token: its connections wait on it without sharing a lock
    // with every other thread's (cancelling `stop` cancels it).
    let ends = Ends {
        stop: ends.stop.child_token(),
        ..ends
    };
    let connections = TaskTracker::new();
    let mut listener = Listener::Polled(listener);
    if !accepting.at_start() {
        listener = listener.set(false);
    }
    let mut probe = tokio::time::interval(placement::PROBE_EVERY);
    probe.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let (stream, peer) = tokio::select! {
            () = ends.stop.cancelled() => break,
            _ = probe.tick(), if accepting.probes() => {
                let open = accepting.probe(listener.is_polled());
                listener = listener.set(open);
                continue;
            }
            accepted = listener.accept(), if listener.is_polled() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        accepted.inc();
        let _ = stream.set_nodelay(true);
        connections.spawn(conn::serve(
            stream,
            peer,
            tls.clone(),
            settings,
            handler.clone(),
            ends.clone(),
        ));
    }
    drop(listener);
    connections.close();
    // The connections first: with none left the admin listener (whose `abort` is
    // its `stop`) ends quietly.
    tokio::select! {
        biased;
        () = connections.wait() => {}
        () = ends.abort.cancelled() => {
            tracing::warn!("open connections did not finish within the shutdown grace period");
        }
    }
}

/// A serving thread's handle on the listening socket: polled by its runtime, or set
/// aside (not registered with it, so that new connections do not wake the thread).
enum Listener {
    Polled(TcpListener),
    Aside(std::net::TcpListener),
    /// Lost in a failed change (logged); the other threads still accept.
    Lost,
}

impl Listener {
    fn is_polled(&self) -> bool {
        matches!(self, Listener::Polled(_))
    }

    async fn accept(&self) -> io::Result<(tokio::net::TcpStream, SocketAddr)> {
        match self {
            Listener::Polled(listener) => listener.accept().await,
            Listener::Aside(_) | Listener::Lost => std::future::pending().await,
        }
    }

    /// Polled when `polled`, set aside otherwise.
    fn set(self, polled: bool) -> Listener {
        match (self, polled) {
            (Listener::Aside(listener), true) => match TcpListener::from_std(listener) {
                Ok(listener) => {
                    tracing::debug!("serving thread accepting");
                    Listener::Polled(listener)
                }
                Err(error) => {
                    tracing::warn!(%error, "serving thread cannot poll the listener");
                    Listener::Lost
                }
            },
            (Listener::Polled(listener), false) => match listener.into_std() {
                Ok(listener) => {
                    tracing::debug!("serving thread no longer accepting");
                    Listener::Aside(listener)
                }
                Err(error) => {
                    tracing::warn!(%error, "serving thread cannot set the listener aside");
                    Listener::Lost
                }
            },
            (unchanged, _) => unchanged,
        }
    }
}

#[cfg(test)]
#[path = "server/serve_tests.rs"]
mod serve_tests;
