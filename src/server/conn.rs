//! One accepted connection: the hyper builder with the listener's settings, the
//! service that hands requests to the handler, and the task that drives the
//! connection through its deadlines: the first request head, HTTP/2 idleness, the
//! drain (graceful close) and the shutdown deadline (dropped).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::rewind::Rewind;
use super::{h1, ConnSettings};
use crate::body::{Body, RequestBody};
use crate::proxy::raw::RawHead;
use crate::proxy::Reply;

/// What a connection's task, its service and its HTTP/2 streams share.
struct ConnState {
    /// Set when the first request head has arrived.
    started: AtomicBool,
    /// HTTP/2 streams being served (HTTP/1 never counts any).
    open_streams: AtomicUsize,
    /// Set when the first HTTP/2 stream opens.
    http2: AtomicBool,
    /// When the last stream closed, as nanoseconds after `accepted`.
    idle_since: AtomicU64,
    accepted: Instant,
}

impl ConnState {
    fn new(accepted: Instant) -> ConnState {
        ConnState {
            started: AtomicBool::new(false),
            open_streams: AtomicUsize::new(0),
            http2: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            accepted,
        }
    }

    /// Since when no stream has been open, or `None` while one is.
    fn idle_since(&self) -> Option<Instant> {
        (self.open_streams.load(Ordering::Relaxed) == 0)
            .then(|| self.accepted + Duration::from_nanos(self.idle_since.load(Ordering::Relaxed)))
    }
}

/// Counts one HTTP/2 stream as open while it lives.
struct OpenStream(Arc<ConnState>);

impl OpenStream {
    fn new(conn: Arc<ConnState>) -> OpenStream {
        conn.http2.store(true, Ordering::Relaxed);
        conn.open_streams.fetch_add(1, Ordering::Relaxed);
        OpenStream(conn)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let since = self.0.accepted.elapsed().as_nanos();
        let since = u64::try_from(since).unwrap_or(u64::MAX);
        self.0.idle_since.store(since, Ordering::Relaxed);
        self.0.open_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connection's executor. hyper runs each HTTP/2 stream (request and response
/// body) as a task of its own through it, so its tasks are the open streams; HTTP/1
/// never uses it.
#[derive(Clone)]
struct StreamExecutor(Arc<ConnState>);

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, stream: F) {
        let open = OpenStream::new(Arc::clone(&self.0));
        tokio::spawn(async move {
            let _open = open;
            stream.await;
        });
    }
}

/// The hyper service of one connection: the handler, with the client's address.
struct ConnService<H> {
    handler: H,
    peer: SocketAddr,
    conn: Arc<ConnState>,
}

impl<H, F> hyper::service::Service<Request<Incoming>> for ConnService<H>
where
    H: Fn(Request<RequestBody>, Option<RawHead>, SocketAddr) -> F,
    F: Future<Output = Reply>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = futures_util::future::Map<F, fn(Reply) -> Result<Response<Body>, Infallible>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.conn.started.store(true, Ordering::Relaxed);
        let future = (self.handler)(req.map(RequestBody::Hyper), None, self.peer);
        futures_util::FutureExt::map(future, for_hyper)
    }
}

/// The handler's response as hyper takes it: every header field in the map.
fn for_hyper(reply: Reply) -> Result<Response<Body>, Infallible> {
    Ok(reply.into_response())
}

fn builder(settings: &ConnSettings, executor: StreamExecutor) -> auto::Builder<StreamExecutor> {
    let mut builder = auto::Builder::new(executor);
    // hyper answers 431 itself when a head outgrows its buffer; the handler checks
    // the exact limit, so the buffer leaves room for the request line.
    let buf = (settings.max_header_bytes + 16 * 1024).max(8192);
    // hyper's header-read timer starts when a connection goes idle after a response
    // and stops when the next head is complete: it is the keep-alive timeout. The
    // first head has `header_read_timeout` (see `drive`).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.http1_keep_alive_timeout)
        .max_buf_size(buf);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(settings.http2_keep_alive_interval)
        .keep_alive_timeout(settings.http2_keep_alive_timeout)
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// When a listener's connections end (each connection's task holds a copy).
#[derive(Clone)]
pub(crate) struct Ends {
    /// Cancelled when the listener stops: the connection closes once its requests
    /// are answered.
    pub(crate) stop: CancellationToken,
    /// Cancelled at the shutdown deadline: the connection is dropped.
    pub(crate) abort: CancellationToken,
    /// Counts connections the HTTP/1.1 loop hands to hyper.
    pub(crate) handoffs: prometheus_client::metrics::counter::Counter,
}

/// Serves one accepted connection (TLS first, when configured) until it ends.
pub(super) async fn serve<H, F>(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    settings: ConnSettings,
    handler: H,
    ends: Ends,
) where
    H: Fn(Request<RequestBody>, Option<RawHead>, SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let accepted = Instant::now();
    // Until the first request head has arrived the connection lives on this budget
    // (hyper's own timer only starts once it has told HTTP/1 from HTTP/2, so a
    // silent client would otherwise stay forever).
    let first_head_by = accepted + settings.header_read_timeout;
    let conn = Arc::new(ConnState::new(accepted));
    let service = ConnService {
        handler,
        peer,
        conn: Arc::clone(&conn),
    };
    let builder = builder(&settings, StreamExecutor(Arc::clone(&conn)));
    let result = match tls {
        None => {
            let mut stream = stream;
            let pre = if settings.native_http1 {
                let native = h1::serve(
                    &mut stream,
                    peer,
                    &settings,
                    &service.handler,
                    &ends.stop,
                    first_head_by,
                    &conn.started,
                );
                let ended = tokio::select! {
                    biased;
                    () = ends.abort.cancelled() => return,
                    ended = native => ended,
                };
                match ended {
                    h1::Ended::Closed => return,
                    h1::Ended::HandOff(pre) => {
                        ends.handoffs.inc();
                        pre
                    }
                }
            } else {
                Bytes::new()
            };
            let io = TokioIo::new(Rewind::new(pre, stream));
            let served = builder.serve_connection_with_upgrades(io, service);
            drive(served, &conn, &settings, first_head_by, &ends).await
        }
        Some(acceptor) => {
            // The TLS handshake counts against the same budget.
            let handshake = tokio::time::timeout_at(first_head_by, acceptor.accept(stream));
            let stream = tokio::select! {
                biased;
                () = ends.abort.cancelled() => return,
                accepted = handshake => match accepted {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "tls handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
            };
            let served = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            drive(served, &conn, &settings, first_head_by, &ends).await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// Drives `served` until it ends, closing it gracefully when the listener stops or
/// an HTTP/2 connection has been idle for `http2_idle_timeout`, and dropping it when
/// no request head has arrived by `first_head_by` or at the shutdown deadline.
async fn drive<C>(
    served: C,
    conn: &ConnState,
    settings: &ConnSettings,
    first_head_by: Instant,
    ends: &Ends,
) -> Result<(), C::Error>
where
    C: GracefulConnection,
{
    tokio::pin!(served);
    let first_head = tokio::time::sleep_until(first_head_by);
    tokio::pin!(first_head);
    let mut awaiting_first_head = true;
    let mut closing = false;
    loop {
        // The connection first: the other branches are polled only while it waits.
        tokio::select! {
            biased;
            result = &mut served => return result,
            () = &mut first_head, if awaiting_first_head => {
                if !conn.started.load(Ordering::Relaxed) {
                    tracing::debug!("connection sent no request in time; dropped");
                    return Ok(());
                }
                awaiting_first_head = false;
            }
            () = ends.stop.cancelled(), if !closing => {
                closing = true;
                served.as_mut().graceful_shutdown();
            }
            () = ends.abort.cancelled(), if closing => {
                tracing::debug!("connection still open at the shutdown deadline; dropped");
                return Ok(());
            }
            () = idle(conn, settings.http2_idle_timeout),
                if !closing && !awaiting_first_head && conn.http2.load(Ordering::Relaxed) => {
                tracing::debug!("http/2 connection idle; closing");
                closing = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Resolves once no stream of `conn` has been open for `timeout`.
async fn idle(conn: &ConnState, timeout: Duration) {
    loop {
        let next = match conn.idle_since() {
            Some(since) if since + timeout <= Instant::now() => return,
            Some(since) => since + timeout,
            // Streams are open: look again a timeout from now at the soonest.
            None => Instant::now() + timeout,
        };
        tokio::time::sleep_until(next).await;
    }
}
