//! The upstream seam: [`Upstream`] sends one HTTP request to a scheduler and returns
//! its response with the body still streaming. [`Http1Client`] is the real one: an
//! HTTP/1.1 client driven inside the request's own task (no connection task, no
//! channel between the client connection and the scheduler connection), with a pool
//! of idle connections per serving thread. Tests put a fake behind the same trait.

mod body;
mod chunked;
mod pool;
mod wire;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, Version};
use http_body::Body as _;
use http_body_util::combinators::UnsyncBoxBody;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::body::{empty, full, Body, BoxError};
use crate::config::UpstreamConfig;
pub(crate) use crate::proxy::headers::Added;
use crate::proxy::Reply;
use body::{Framing, UpstreamBody};
use chunked::Chunked;
use pool::{Conn, Pool};
pub(crate) use wire::RawFields;
use wire::{RequestFraming, ResponseFraming, ResponseHead};

/// The body of a request on its way to a scheduler.
pub(crate) type RequestBody = UnsyncBoxBody<Bytes, BoxError>;

/// A request for a scheduler, its headers already rewritten by the proxy.
pub(crate) struct Outgoing {
    /// Method.
    pub(crate) method: Method,
    /// Origin-form target: the normalised path and the query without credentials.
    pub(crate) target: String,
    /// Header fields, `Host` included; framing headers are the client's business.
    pub(crate) headers: HeaderMap,
    /// More of them as `name: value\r\n` lines, sent after `headers` (the client's
    /// fields rewritten without a map, `Host` included).
    pub(crate) lines: Vec<u8>,
    /// The gateway's own fields, sent after `headers`.
    pub(crate) added: Added,
    /// The body.
    pub(crate) body: RequestBody,
}

/// Why a request got no response from the scheduler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UpstreamFailure {
    /// No connection could be made.
    #[error("connect failed: {0}")]
    Connect(io::ErrorKind),
    /// The connection failed or closed before a whole response head arrived.
    #[error("connection lost: {0}")]
    Io(io::ErrorKind),
    /// The scheduler broke HTTP/1.1.
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// The request cannot be written as HTTP/1.1.
    #[error("request cannot be sent")]
    InvalidRequest,
    /// The client's request body failed while being sent on.
    #[error("request body failed")]
    RequestBody,
}

/// The future of [`Upstream::send`].
pub(crate) type SendFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Reply, UpstreamFailure>> + Send + 'a>>;

/// Sends requests to schedulers.
pub(crate) trait Upstream: Send + Sync {
    /// Sends `request` to the scheduler at `addr` (`host:port`) and resolves with its
    /// response once the head has arrived. No overall timeout: the caller sets one.
    fn send<'a>(&'a self, addr: &'a str, request: Outgoing) -> SendFuture<'a>;
}

/// The HTTP/1.1 client for schedulers, one per serving thread.
#[derive(Debug)]
pub(crate) struct Http1Client {
    pool: Arc<Pool>,
    connect_timeout: Duration,
    max_head: usize,
}

impl Http1Client {
    /// A client with the `[upstream]` settings.
    pub(crate) fn new(config: &UpstreamConfig) -> Http1Client {
        Http1Client {
            pool: Arc::new(Pool::new(
                config.pool_max_idle_per_host,
                config.pool_idle_timeout,
            )),
            connect_timeout: config.connect_timeout,
            max_head: config.max_header_bytes,
        }
    }

    async fn connect(&self, addr: &str) -> Result<Conn, UpstreamFailure> {
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => return Err(UpstreamFailure::Connect(error.kind())),
                Err(_) => return Err(UpstreamFailure::Connect(io::ErrorKind::TimedOut)),
            };
        let _ = stream.set_nodelay(true);
        Ok(Conn::new(stream, Arc::from(addr)))
    }

    async fn round_trip(&self, addr: &str, request: Outgoing) -> Result<Reply, UpstreamFailure> {
        // Only what the exchange needs stays in this future's state: the request's
        // fields end with its head.
        let Encoded {
            method,
            head,
            framing,
            mut body,
        } = Encoded::new(request)?;
        // A request without a body that is safe to repeat may be sent again when a
        // pooled connection turns out closed before any byte of the answer.
        let replayable =
            framing.is_empty() && matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
        loop {
            let (mut conn, reused) = match self.pool.take(addr) {
                Some(conn) => (conn, true),
                // Boxed: a new connection is rare, and its future would otherwise
                // be part of every request's.
                None => (Box::pin(self.connect(addr)).await?, false),
            };
            let sent = send_request(&mut conn, &head, framing, body.take()).await;
            let answer = match sent {
                Ok(()) => read_head(&mut conn, &method, self.max_head).await,
                Err(failure) => Err(failure),
            };
            match answer {
                Ok(head) => return Ok(self.response(conn, head)),
                Err(UpstreamFailure::Io(_)) if reused && replayable && conn.buf.is_empty() => {
                    tracing::debug!(upstream = addr, "pooled connection was closed; retrying");
                    self.pool.forget(addr);
                }
                Err(failure) => return Err(failure),
            }
        }
    }

    /// The client's response: the head, and a body read from `conn` (which goes back
    /// to the pool at its end, or at once when the buffer holds the whole body).
    fn response(&self, mut conn: Conn, head: ResponseHead) -> Reply {
        let ResponseHead {
            status,
            headers,
            raw,
            framing,
            keep_alive,
        } = head;
        let body = match framing {
            ResponseFraming::Empty => {
                if keep_alive {
                    self.pool.put(conn);
                }
                empty()
            }
            ResponseFraming::Length(n) if conn.buf.len() as u64 >= n => {
                // The whole body came with the head: free the connection now. The
                // body is split off the read buffer, not copied: once it has been
                // written to the client, the buffer is whole again for the next read.
                let data = conn.buf.split_to(n as usize).freeze();
                if keep_alive {
                    self.pool.put(conn);
                }
                full(data)
            }
            ResponseFraming::Length(n) => {
                UpstreamBody::new(conn, Framing::Length(n), keep_alive, Arc::clone(&self.pool))
                    .boxed_body()
            }
            ResponseFraming::Chunked => UpstreamBody::new(
                conn,
                Framing::Chunked(Chunked::new()),
                keep_alive,
                Arc::clone(&self.pool),
            )
            .boxed_body(),
            ResponseFraming::Close => {
                UpstreamBody::new(conn, Framing::Close, false, Arc::clone(&self.pool)).boxed_body()
            }
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.version_mut() = Version::HTTP_11;
        *response.headers_mut() = headers;
        Reply { response, raw }
    }
}

/// A request ready for the wire: its head encoded, its body if it has one.
struct Encoded {
    method: Method,
    head: Vec<u8>,
    framing: RequestFraming,
    body: Option<RequestBody>,
}

impl Encoded {
    fn new(request: Outgoing) -> Result<Encoded, UpstreamFailure> {
        let Outgoing {
            method,
            target,
            headers,
            lines,
            added,
            body,
        } = request;
        let framing = RequestFraming::new(&method, body.size_hint().exact(), body.is_end_stream());
        let mut head = Vec::with_capacity(256 + target.len() + 32 * headers.len() + lines.len());
        let fields = wire::Fields {
            headers: &headers,
            lines: &lines,
            added: &added,
        };
        wire::encode_request_head(&mut head, &method, &target, fields, framing)?;
        Ok(Encoded {
            method,
            head,
            framing,
            body: (!framing.is_empty()).then_some(body),
        })
    }
}

impl UpstreamBody {
    fn boxed_body(self) -> Body {
        http_body_util::BodyExt::boxed(self)
    }
}

impl Upstream for Http1Client {
    fn send<'a>(&'a self, addr: &'a str, request: Outgoing) -> SendFuture<'a> {
        Box::pin(self.round_trip(addr, request))
    }
}

/// Writes the head and then the body (framed as announced).
async fn send_request(
    conn: &mut Conn,
    head: &[u8],
    framing: RequestFraming,
    body: Option<RequestBody>,
) -> Result<(), UpstreamFailure> {
    let io = |e: io::Error| UpstreamFailure::Io(e.kind());
    conn.stream.write_all(head).await.map_err(io)?;
    let Some(mut body) = body else {
        return Ok(());
    };
    let mut sent = 0u64;
    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
        let frame = frame.map_err(|_| UpstreamFailure::RequestBody)?;
        let Ok(data) = frame.into_data() else {
            continue; // Trailers are not forwarded.
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        if framing == RequestFraming::Chunked {
            let size = format!("{:x}\r\n", data.len());
            conn.stream.write_all(size.as_bytes()).await.map_err(io)?;
            conn.stream.write_all(&data).await.map_err(io)?;
            conn.stream.write_all(b"\r\n").await.map_err(io)?;
        } else {
            conn.stream.write_all(&data).await.map_err(io)?;
        }
    }
    match framing {
        RequestFraming::Chunked => conn.stream.write_all(b"0\r\n\r\n").await.map_err(io),
        RequestFraming::Length(n) if n != sent => Err(UpstreamFailure::RequestBody),
        RequestFraming::Length(_) | RequestFraming::None => Ok(()),
    }
}

/// Reads until a final response head (interim 1xx answers are skipped).
async fn read_head(
    conn: &mut Conn,
    method: &Method,
    max_head: usize,
) -> Result<ResponseHead, UpstreamFailure> {
    loop {
        let parsed = if conn.buf.is_empty() {
            None
        } else {
            wire::parse_response_head(&mut conn.buf, method)?
        };
        if let Some(head) = parsed {
            if head.status.is_informational() {
                if head.status == http::StatusCode::SWITCHING_PROTOCOLS {
                    return Err(UpstreamFailure::Protocol("unrequested protocol switch"));
                }
                continue;
            }
            return Ok(head);
        }
        if conn.buf.len() > max_head {
            return Err(UpstreamFailure::Protocol("response head too large"));
        }
        let read = std::future::poll_fn(|cx| body::poll_fill(conn, cx, 8 * 1024)).await;
        match read {
            Ok(0) if conn.buf.is_empty() => {
                return Err(UpstreamFailure::Io(io::ErrorKind::UnexpectedEof))
            }
            Ok(0) => return Err(UpstreamFailure::Protocol("connection closed inside a head")),
            Ok(_) => {}
            Err(error) => return Err(UpstreamFailure::Io(error.kind())),
        }
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
