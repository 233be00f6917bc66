//! One accepted connection: the hyper builder with the listener's settings, the
//! service that hands requests to the handler, and the task that drives the
//! connection through its deadlines: the first request head, the drain (graceful
//! close) and the shutdown deadline (dropped).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::ConnSettings;
use crate::body::Body;

/// What a connection's task and its service share.
struct ConnState {
    /// Set when the first request head has arrived.
    started: AtomicBool,
}

/// The hyper service of one connection: the handler, with the client's address.
struct ConnService<H> {
    handler: H,
    peer: SocketAddr,
    conn: Arc<ConnState>,
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
        self.conn.started.store(true, Ordering::Relaxed);
        futures_util::FutureExt::map((self.handler)(req, self.peer), Ok)
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

/// When a connection's task lets go of it.
pub(super) struct Ends {
    /// Cancelled when the listener stops: the connection closes once its requests
    /// are answered.
    pub(super) stop: CancellationToken,
    /// Cancelled at the shutdown deadline: the connection is dropped.
    pub(super) abort: CancellationToken,
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
    H: Fn(Request<Incoming>, SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    // Until the first request head has arrived the connection lives on this budget
    // (hyper's own timer only starts once it has told HTTP/1 from HTTP/2, so a
    // silent client would otherwise stay forever).
    let first_head_by = Instant::now() + settings.header_read_timeout;
    let conn = Arc::new(ConnState {
        started: AtomicBool::new(false),
    });
    let service = ConnService {
        handler,
        peer,
        conn: Arc::clone(&conn),
    };
    let builder = builder(&settings);
    let result = match tls {
        None => {
            let served = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            drive(served, &conn, first_head_by, &ends).await
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
            drive(served, &conn, first_head_by, &ends).await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// Drives `served` until it ends, closing it gracefully when the listener stops,
/// and dropping it when no request head has arrived by `first_head_by` or at the
/// shutdown deadline.
async fn drive<C>(
    served: C,
    conn: &ConnState,
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
        }
    }
}
