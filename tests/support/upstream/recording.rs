//! The recording HTTP upstream: every request it receives is kept (method, URI,
//! headers, whole body) and answered with a [`Reply`] the test chooses.

use std::convert::Infallible;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;

use super::Listening;
use crate::support::http as http_client;
use crate::support::streaming::ChannelBody;
use crate::support::wait::until;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method.
    pub method: Method,
    /// HTTP version of the request line.
    pub version: Version,
    /// Path and query exactly as on the request line.
    pub uri: String,
    /// Every header.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Recorded {
    /// The first value of `name`, if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        http_client::header(&self.headers, name)
    }

    /// Every value of `name`.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        http_client::header_all(&self.headers, name)
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or_default()
    }

    /// The query without `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.uri.split_once('?').map(|(_, q)| q)
    }

    /// Every header line and the request line, for "this secret is nowhere" checks.
    pub fn dump(&self) -> String {
        let mut out = format!("{} {}\n", self.method, self.uri);
        for (name, value) in &self.headers {
            out.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        out
    }
}

/// How the upstream's response body is produced.
#[derive(Clone)]
pub enum ReplyBody {
    /// The whole body at once (with Content-Length).
    Full(Bytes),
    /// The body in chunks of `chunk` bytes, streamed (chunked transfer encoding).
    Chunked {
        /// The whole body.
        data: Bytes,
        /// Chunk size.
        chunk: usize,
    },
    /// `first` is sent at once; `rest` (in 64 KiB chunks) only after `gate` is
    /// notified: proves that a proxy forwards a body before the upstream finishes.
    Gated {
        /// Sent with the head.
        first: Bytes,
        /// Sent after the gate opens.
        rest: Bytes,
        /// Opened by the test.
        gate: Arc<Notify>,
    },
}

/// A configurable response.
#[derive(Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers, in order (several with one name allowed).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: ReplyBody,
    /// Wait this long before sending the response head.
    pub delay: Duration,
}

impl Reply {
    /// `200` with a small text body.
    pub fn ok(body: impl Into<Bytes>) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: ReplyBody::Full(body.into()),
            delay: Duration::ZERO,
        }
    }

    /// `status` with `body` as its whole body.
    pub fn with_body(status: u16, body: impl Into<Bytes>) -> Reply {
        Reply::status(status).body(ReplyBody::Full(body.into()))
    }

    /// `status` with an empty body.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Full(Bytes::new()),
            delay: Duration::ZERO,
        }
    }

    /// `200` whose body starts with `first` and goes on with `rest` only once `gate`
    /// is notified (see [`ReplyBody::Gated`]).
    pub fn gated(first: impl Into<Bytes>, rest: impl Into<Bytes>, gate: &Arc<Notify>) -> Reply {
        Reply::ok("").body(ReplyBody::Gated {
            first: first.into(),
            rest: rest.into(),
            gate: Arc::clone(gate),
        })
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Waits `delay` before the response head.
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    /// Replaces the body.
    pub fn body(mut self, body: ReplyBody) -> Reply {
        self.body = body;
        self
    }
}

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// Sets the reply of an upstream started with [`HttpUpstream::switchable`].
#[derive(Clone)]
pub struct ReplySwitch(Arc<Mutex<Reply>>);

impl ReplySwitch {
    /// Every request from now on gets `reply`.
    pub fn set(&self, reply: Reply) {
        *self.0.lock().expect("reply lock") = reply;
    }
}

/// An HTTP/1.1 upstream that records every request and answers with `handler`.
/// Its address, URL and connection count are its [`Listening`]'s.
pub struct HttpUpstream {
    listening: Listening,
    records: Arc<Mutex<Vec<Recorded>>>,
    heads: Arc<AtomicUsize>,
    body_bytes: Arc<AtomicUsize>,
}

impl Deref for HttpUpstream {
    type Target = Listening;

    fn deref(&self) -> &Listening {
        &self.listening
    }
}

impl HttpUpstream {
    /// An upstream answering every request with `200 upstream ok`.
    pub async fn ok() -> HttpUpstream {
        HttpUpstream::start(|_| Reply::ok("upstream ok")).await
    }

    /// An upstream answering with `handler` (called once the whole body is read).
    pub async fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let records = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(AtomicUsize::new(0));
        let body_bytes = Arc::new(AtomicUsize::new(0));
        let handler: Handler = Arc::new(handler);
        let shared = (
            Arc::clone(&records),
            Arc::clone(&heads),
            Arc::clone(&body_bytes),
        );
        let listening = Listening::start("the HTTP upstream", move |stream| {
            let (records, heads, body_bytes) = shared.clone();
            let handler = Arc::clone(&handler);
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let handler = Arc::clone(&handler);
                let (records, heads, body_bytes) = (
                    Arc::clone(&records),
                    Arc::clone(&heads),
                    Arc::clone(&body_bytes),
                );
                async move {
                    heads.fetch_add(1, Ordering::SeqCst);
                    let recorded = record(req, &body_bytes).await;
                    let reply = handler(&recorded);
                    records.lock().expect("records lock").push(recorded);
                    Ok::<_, Infallible>(respond(reply).await)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        })
        .await;
        HttpUpstream {
            listening,
            records,
            heads,
            body_bytes,
        }
    }

    /// An upstream answering every request with `first` until the returned switch
    /// sets another reply.
    pub async fn switchable(first: Reply) -> (HttpUpstream, ReplySwitch) {
        let switch = ReplySwitch(Arc::new(Mutex::new(first)));
        let current = switch.clone();
        let up = HttpUpstream::start(move |_| current.0.lock().expect("reply lock").clone()).await;
        (up, switch)
    }

    /// Every request received so far (complete bodies only).
    pub fn requests(&self) -> Vec<Recorded> {
        self.records.lock().expect("records lock").clone()
    }

    /// Request heads seen so far (counted before the body is read).
    pub fn heads(&self) -> usize {
        self.heads.load(Ordering::SeqCst)
    }

    /// Request body bytes received so far, over all requests.
    pub fn body_bytes(&self) -> usize {
        self.body_bytes.load(Ordering::SeqCst)
    }

    /// The only request received; panics when there is not exactly one.
    pub fn only_request(&self) -> Recorded {
        let all = self.requests();
        assert_eq!(
            all.len(),
            1,
            "expected exactly one upstream request, got {:#?}",
            all.iter().map(Recorded::dump).collect::<Vec<_>>()
        );
        all.into_iter().next().expect("one request")
    }

    /// Waits (at most [`STEP`]) until `n` request heads have arrived.
    pub async fn wait_heads(&self, n: usize) {
        until(&format!("{n} upstream request heads"), || self.heads() >= n).await;
    }
}

async fn record(req: Request<Incoming>, body_bytes: &AtomicUsize) -> Recorded {
    let (parts, mut body) = req.into_parts();
    let mut data = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(chunk) = frame.into_data() {
            body_bytes.fetch_add(chunk.len(), Ordering::SeqCst);
            data.extend_from_slice(&chunk);
        }
    }
    Recorded {
        method: parts.method,
        version: parts.version,
        uri: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        headers: parts.headers,
        body: Bytes::from(data),
    }
}

async fn respond(reply: Reply) -> Response<ChannelBody> {
    tokio::time::sleep(reply.delay).await;
    let (tx, body) = ChannelBody::new(4);
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(reply.status).expect("status code");
    for (name, value) in &reply.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).expect("header name");
        let value = HeaderValue::from_str(value).expect("header value");
        response.headers_mut().append(name, value);
    }
    match reply.body {
        ReplyBody::Full(data) => {
            response
                .headers_mut()
                .insert(http::header::CONTENT_LENGTH, HeaderValue::from(data.len()));
            if !data.is_empty() {
                let _ = tx.try_send(data);
            }
        }
        ReplyBody::Chunked { data, chunk } => {
            tokio::spawn(async move {
                for piece in data.chunks(chunk.max(1)) {
                    if tx.send(data.slice_ref(piece)).await.is_err() {
                        return;
                    }
                }
            });
        }
        ReplyBody::Gated { first, rest, gate } => {
            tokio::spawn(async move {
                if tx.send(first).await.is_err() {
                    return;
                }
                gate.notified().await;
                for piece in rest.chunks(64 * 1024) {
                    if tx.send(rest.slice_ref(piece)).await.is_err() {
                        return;
                    }
                }
            });
        }
    }
    response
}
