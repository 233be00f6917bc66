//! Listeners: the accept loop (plain TCP or TLS), HTTP/1.1 and HTTP/2 with upgrades,
//! the graceful drain of open connections when shutdown begins, and the serving
//! threads: one single-threaded runtime per thread, each with its own listener on the
//! shared port, so a connection lives on one thread from accept to close.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::body::Body;

/// Connection-level settings of a listener.
#[derive(Debug, Clone)]
pub(crate) struct ConnSettings {
    /// Drop a client that has not sent a whole request head by then.
    pub(crate) header_read_timeout: Duration,
    /// Largest request head (HTTP/1 read buffer, HTTP/2 header list).
    pub(crate) max_header_bytes: usize,
}

/// Binds `count` listeners on `addr` that share one port (`SO_REUSEPORT` when there
/// are several; the kernel spreads new connections over them). Port 0 picks one port
/// for all.
pub(crate) fn bind_shared(
    addr: SocketAddr,
    count: usize,
) -> io::Result<Vec<std::net::TcpListener>> {
    let first = listener(addr, count > 1)?;
    let addr = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..count {
        all.push(listener(addr, true)?);
    }
    Ok(all)
}

fn listener(addr: SocketAddr, share: bool) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if share {
        socket.set_reuse_port(true)?;
    }
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
    /// How long the drain of HTTP connections may take.
    pub(crate) grace: Duration,
    /// Cancelled to end the threads (after the drain).
    pub(crate) release: CancellationToken,
}

/// One serving thread's running state, as the thread that started it sees it.
pub(crate) struct Worker {
    /// Resolves when the thread has stopped accepting and its HTTP connections have
    /// finished (or the grace ran out); its WebSockets may still run.
    pub(crate) served: oneshot::Receiver<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Worker {
    /// Starts a thread serving `listener` with `handler` until `serving.stop`; the
    /// thread and its runtime (with whatever still runs on it) end once
    /// `serving.release` is cancelled.
    pub(crate) fn start<H, F>(
        index: usize,
        listener: std::net::TcpListener,
        handler: H,
        serving: Serving,
    ) -> io::Result<Worker>
    where
        H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<Body>> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (done, served) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("ddg-serve-{index}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let Serving {
                        tls,
                        settings,
                        stop,
                        grace,
                        release,
                    } = serving;
                    match TcpListener::from_std(listener) {
                        Ok(listener) => serve(listener, tls, settings, handler, stop, grace).await,
                        Err(error) => tracing::error!(%error, "serving thread has no listener"),
                    }
                    let _ = done.send(());
                    release.cancelled().await;
                });
            })?;
        Ok(Worker { served, thread })
    }

    /// Waits (off the async threads) for the thread to end after its release.
    pub(crate) async fn join(self) {
        let _ = tokio::task::spawn_blocking(move || self.thread.join()).await;
    }
}

fn builder(settings: &ConnSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper answers 431 itself when a head outgrows its buffer; the handler checks
    // the exact limit, so the buffer leaves room for the request line.
    let buf = (settings.max_header_bytes + 16 * 1024).max(8192);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(buf);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Drives `conn`, dropping it at `deadline` if no request has started by then.
async fn first_request_within<C, E>(
    deadline: tokio::time::Instant,
    started: &AtomicBool,
    conn: C,
) -> Result<(), E>
where
    C: Future<Output = Result<(), E>>,
{
    tokio::pin!(conn);
    tokio::select! {
        result = &mut conn => return result,
        () = tokio::time::sleep_until(deadline) => {}
    }
    if started.load(Ordering::Relaxed) {
        conn.await
    } else {
        tracing::debug!("connection sent no request in time; dropped");
        Ok(())
    }
}

/// The hyper service of one connection: the handler, with the client's address, and
/// a flag set when the first request head has arrived.
struct ConnService<H> {
    handler: H,
    peer: SocketAddr,
    started: Arc<AtomicBool>,
}

impl<H, F> hyper::service::Service<Request<Incoming>> for ConnService<H>
where
    H: Fn(Request<Incoming>, SocketAddr) -> F,
    F: Future<Output = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future =
        futures_util::future::Map<F, fn(Response<Body>) -> Result<Response<Body>, Infallible>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.started.store(true, Ordering::Relaxed);
        futures_util::FutureExt::map((self.handler)(req, self.peer), Ok)
    }
}

/// Serves `listener` until `stop` is cancelled, then waits up to `grace` for open
/// HTTP connections to finish (upgraded connections are tracked by their owner).
pub(crate) async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    settings: ConnSettings,
    handler: H,
    stop: CancellationToken,
    grace: Duration,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let builder = builder(&settings);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        // Set when the first request head has arrived; until then the connection
        // lives on the header-read budget (hyper's own timer only starts once it has
        // told HTTP/1 from HTTP/2, so a silent client would otherwise stay forever).
        let started = Arc::new(AtomicBool::new(false));
        let service = ConnService {
            handler: handler.clone(),
            peer,
            started: Arc::clone(&started),
        };
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let budget = settings.header_read_timeout;
        let tls = tls.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + budget;
            let result = match tls {
                None => {
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    first_request_within(deadline, &started, watcher.watch(conn.into_owned())).await
                }
                Some(acceptor) => {
                    // The TLS handshake counts against the same budget.
                    let stream =
                        match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(error)) => {
                                tracing::debug!(%error, "tls handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    first_request_within(deadline, &started, watcher.watch(conn.into_owned())).await
                }
            };
            if let Err(error) = result {
                tracing::debug!(error = %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("open connections did not finish within the shutdown grace period");
    }
}
