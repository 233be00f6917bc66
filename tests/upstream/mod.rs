//! Small upstreams for the proxy tests, written here so that every byte they see and
//! send is under the test's control, all on 127.0.0.1:0: a recording HTTP server, a
//! WebSocket server that behaves like Bokeh's, a connection-counting TCP listener
//! (also a "blackhole" that never answers), plus raw and streaming clients and a
//! gateway configuration builder.
#![allow(dead_code, unreachable_pub)]

pub mod fixture;
pub mod load;
pub mod raw_ws;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request as WsRequest, Response as WsResponse,
};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// How long any single wait in these helpers may take.
pub const STEP: Duration = Duration::from_secs(10);

/// The HS256 secret of the gateways built with [`GatewayToml`].
pub const SECRET: &str = "proxy-integration-test-secret-0123456789abcdef-xyz";

// ---------------------------------------------------------------------------------
// Byte patterns.

/// `len` deterministic, non-repeating-looking bytes (so a reordered or truncated body
/// does not compare equal by accident).
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// FNV-1a 64 of `data`: enough to compare two 20 MiB bodies in a message.
pub fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

// ---------------------------------------------------------------------------------
// A body fed from a channel (streamed request and response bodies).

/// A `hyper` body whose chunks come from an mpsc channel; it ends when every sender
/// is dropped.
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl ChannelBody {
    /// A body and the sender that feeds it.
    pub fn new(capacity: usize) -> (mpsc::Sender<Bytes>, ChannelBody) {
        let (tx, rx) = mpsc::channel(capacity);
        (tx, ChannelBody { rx })
    }
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

// ---------------------------------------------------------------------------------
// (a) The recording HTTP upstream.

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method.
    pub method: Method,
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
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of `name`.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
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

    /// `status` with an empty body.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Full(Bytes::new()),
            delay: Duration::ZERO,
        }
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

/// An HTTP/1.1 upstream that records every request and answers with `handler`.
pub struct HttpUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    records: Arc<Mutex<Vec<Recorded>>>,
    heads: Arc<AtomicUsize>,
    body_bytes: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl HttpUpstream {
    /// An upstream answering every request with `200 upstream ok`.
    pub async fn ok() -> HttpUpstream {
        HttpUpstream::start(|_| Reply::ok("upstream ok")).await
    }

    /// An upstream answering with `handler` (called once the whole body is read).
    pub async fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the HTTP upstream");
        let addr = listener.local_addr().expect("upstream address");
        let records = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(AtomicUsize::new(0));
        let body_bytes = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let handler: Handler = Arc::new(handler);
        let shared = (
            Arc::clone(&records),
            Arc::clone(&heads),
            Arc::clone(&body_bytes),
            Arc::clone(&connections),
        );
        let task = tokio::spawn(async move {
            let (records, heads, body_bytes, connections) = shared;
            while let Ok((stream, _)) = listener.accept().await {
                connections.fetch_add(1, Ordering::SeqCst);
                let handler = Arc::clone(&handler);
                let (records, heads, body_bytes) = (
                    Arc::clone(&records),
                    Arc::clone(&heads),
                    Arc::clone(&body_bytes),
                );
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
            }
        });
        HttpUpstream {
            addr,
            records,
            heads,
            body_bytes,
            connections,
            task,
        }
    }

    /// `http://<addr>` (for a static route).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
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

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
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
        wait_until(|| self.heads() >= n, &format!("{n} upstream request heads")).await;
    }
}

impl Drop for HttpUpstream {
    fn drop(&mut self) {
        self.task.abort();
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

/// Polls `cond` every 10 ms for at most [`STEP`]; panics naming `what` otherwise.
pub async fn wait_until(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + STEP;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------
// (b) The WebSocket upstream.

/// The handshake request a WebSocket upstream received.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// Path and query.
    pub uri: String,
    /// Every header.
    pub headers: HeaderMap,
}

impl Handshake {
    /// The first value of `name`, if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of `name`.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect()
    }
}

/// A WebSocket server like a Bokeh one: it records each handshake, selects the first
/// offered subprotocol, echoes text and binary messages and records everything it
/// receives. A text message `cmd:…` makes it act instead of echoing:
///
/// - `cmd:close:<code>:<reason>`: close with that code and reason;
/// - `cmd:drop`: drop the TCP connection without a close frame;
/// - `cmd:ping:<payload>`: send a ping;
/// - `cmd:big:<n>`: send a binary message of `n` bytes;
/// - `cmd:flood:<n>`: send binary messages of `n` bytes until a send fails, still
///   reading (see [`load::flood`], [`WsUpstream::flooded_bytes`]);
/// - `cmd:stall`: stop reading for good, keeping the connection open until the
///   gateway drops it (see [`load::stall`], [`WsUpstream::stalled`]).
///
/// A handshake whose path ends with `/refuse` is refused with `404`.
pub struct WsUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    handshakes: Arc<Mutex<Vec<Handshake>>>,
    events: Arc<Mutex<Vec<Message>>>,
    connections: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    load: Arc<load::LoadCounters>,
    task: JoinHandle<()>,
}

/// Counts one open connection until dropped.
struct OpenGuard(Arc<AtomicUsize>);

impl OpenGuard {
    fn new(open: &Arc<AtomicUsize>) -> OpenGuard {
        open.fetch_add(1, Ordering::SeqCst);
        OpenGuard(Arc::clone(open))
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl WsUpstream {
    /// Starts the server.
    pub async fn start() -> WsUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the WebSocket upstream");
        let addr = listener.local_addr().expect("upstream address");
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let events = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let load = Arc::new(load::LoadCounters::default());
        let shared = (
            Arc::clone(&handshakes),
            Arc::clone(&events),
            Arc::clone(&connections),
            Arc::clone(&open),
            Arc::clone(&load),
        );
        let task = tokio::spawn(async move {
            let (handshakes, events, connections, open, load) = shared;
            while let Ok((stream, _)) = listener.accept().await {
                connections.fetch_add(1, Ordering::SeqCst);
                let guard = OpenGuard::new(&open);
                let (handshakes, events, load) = (
                    Arc::clone(&handshakes),
                    Arc::clone(&events),
                    Arc::clone(&load),
                );
                tokio::spawn(async move {
                    let _guard = guard;
                    // The error type is tungstenite's `Callback` API.
                    #[allow(clippy::result_large_err)]
                    let callback = move |req: &WsRequest, mut resp: WsResponse| {
                        let uri = req
                            .uri()
                            .path_and_query()
                            .map(|p| p.as_str().to_owned())
                            .unwrap_or_default();
                        handshakes.lock().expect("handshakes lock").push(Handshake {
                            uri: uri.clone(),
                            headers: req.headers().clone(),
                        });
                        if uri
                            .split('?')
                            .next()
                            .unwrap_or_default()
                            .ends_with("/refuse")
                        {
                            let mut refusal = ErrorResponse::new(Some("no such plot".into()));
                            *refusal.status_mut() = StatusCode::NOT_FOUND;
                            return Err(refusal);
                        }
                        let first = req
                            .headers()
                            .get("sec-websocket-protocol")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.split(',').next())
                            .map(str::trim)
                            .filter(|p| !p.is_empty())
                            .map(str::to_owned);
                        if let Some(first) = first {
                            let value = HeaderValue::from_str(&first).expect("subprotocol");
                            resp.headers_mut().insert("sec-websocket-protocol", value);
                        }
                        Ok(resp)
                    };
                    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                        return;
                    };
                    serve_ws(ws, &events, &load).await;
                });
            }
        });
        WsUpstream {
            addr,
            handshakes,
            events,
            connections,
            open,
            load,
            task,
        }
    }

    /// `http://<addr>` (for a static route).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every handshake request so far.
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.handshakes.lock().expect("handshakes lock").clone()
    }

    /// The only handshake; panics when there is not exactly one.
    pub fn only_handshake(&self) -> Handshake {
        let all = self.handshakes();
        assert_eq!(all.len(), 1, "expected one upstream handshake: {all:#?}");
        all.into_iter().next().expect("one handshake")
    }

    /// Every message received so far (pings, pongs and close frames included).
    pub fn events(&self) -> Vec<Message> {
        self.events.lock().expect("events lock").clone()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Connections still open: accepted, and neither side has ended them.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Bytes of `cmd:flood` messages sent so far, over all connections.
    pub fn flooded_bytes(&self) -> usize {
        self.load.flooded.load(Ordering::SeqCst)
    }

    /// Connections that stopped reading (`cmd:stall`) so far.
    pub fn stalled(&self) -> usize {
        self.load.stalled.load(Ordering::SeqCst)
    }

    /// The codes of the close frames received so far (`None`: a close without one).
    pub fn close_codes(&self) -> Vec<Option<u16>> {
        self.events()
            .iter()
            .filter_map(|m| match m {
                Message::Close(frame) => Some(close_code(frame)),
                _ => None,
            })
            .collect()
    }

    /// Waits until no connection is open; panics naming `what` when one still is at
    /// `deadline`.
    pub async fn wait_released(&self, what: &str, deadline: Instant) {
        while self.open_connections() > 0 {
            assert!(
                Instant::now() < deadline,
                "{what}: the upstream connection was still open (close frames it \
                 received: {:?})",
                self.close_codes()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (at most [`STEP`]) for a received message matching `pred` and returns it.
    pub async fn wait_event(&self, what: &str, pred: impl Fn(&Message) -> bool) -> Message {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(m) = self.events().into_iter().find(|m| pred(m)) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "the WebSocket upstream never received {what}; it got {:?}",
                self.events()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for WsUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_ws(
    mut ws: WebSocketStream<TcpStream>,
    events: &Mutex<Vec<Message>>,
    load: &load::LoadCounters,
) {
    while let Some(Ok(message)) = ws.next().await {
        events.lock().expect("events lock").push(message.clone());
        let reply = match message {
            Message::Text(text) => match text.as_str().strip_prefix("cmd:") {
                Some(cmd) => match ws_command(cmd) {
                    Command::Drop => return,
                    Command::Flood(size) => return load::flood(ws, size, load, events).await,
                    Command::Stall => return load::stall(ws, load).await,
                    Command::Send(m) => m,
                },
                None => Message::Text(text),
            },
            Message::Binary(data) => Message::Binary(data),
            // Pings are answered by tungstenite itself; close replies too.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => continue,
        };
        if ws.send(reply).await.is_err() {
            return;
        }
    }
}

enum Command {
    Drop,
    Flood(usize),
    Stall,
    Send(Message),
}

fn ws_command(cmd: &str) -> Command {
    let mut parts = cmd.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("drop"), _, _) => Command::Drop,
        (Some("flood"), Some(n), _) => Command::Flood(n.parse().expect("flood message size")),
        (Some("stall"), _, _) => Command::Stall,
        (Some("close"), Some(code), reason) => Command::Send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(code.parse::<u16>().expect("close code")),
            reason: reason.unwrap_or_default().to_owned().into(),
        }))),
        (Some("ping"), Some(payload), _) => {
            Command::Send(Message::Ping(Bytes::copy_from_slice(payload.as_bytes())))
        }
        (Some("big"), Some(n), _) => {
            let n = n.parse::<usize>().expect("size");
            Command::Send(Message::Binary(Bytes::from(pattern(n, 7))))
        }
        _ => Command::Send(Message::text(format!("unknown command {cmd}"))),
    }
}

// ---------------------------------------------------------------------------------
// (c) and (d): a listener that counts connections and never answers.

/// Accepts TCP connections, counts them and holds them open without reading or
/// writing a byte: proves that no upstream connection was made, and is the
/// "blackhole" upstream that never answers.
pub struct CountingListener {
    /// Where it listens.
    pub addr: SocketAddr,
    count: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl CountingListener {
    /// Starts the listener.
    pub async fn start() -> CountingListener {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the counting listener");
        let addr = listener.local_addr().expect("listener address");
        let count = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&count);
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        CountingListener { addr, count, task }
    }

    /// `http://<addr>` (for a static route).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

impl Drop for CountingListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An upstream that accepts connections and never answers (for `504`).
pub async fn blackhole() -> CountingListener {
    CountingListener::start().await
}

/// An address nothing listens on (bound, then released): connecting is refused.
pub async fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a throwaway port");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    addr
}

// ---------------------------------------------------------------------------------
// Clients.

/// A response read from a raw TCP exchange.
#[derive(Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Header lines, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// Everything after the head, as sent (chunked framing included).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Every value of `name` (lowercase).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Status, headers and the body as (lossy) text, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "{} {:?} body: {}",
            self.status,
            self.headers,
            String::from_utf8_lossy(&self.body)
        )
    }
}

/// Writes `request` as is, then reads until the server closes the connection (send
/// `Connection: close`), all within [`STEP`].
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request).await.expect("write request");
        let mut data = Vec::new();
        let _ = stream.read_to_end(&mut data).await;
        data
    };
    let data = timeout(STEP, exchange)
        .await
        .expect("the server did not finish its response and close the connection");
    parse_raw(&data)
}

fn parse_raw(data: &[u8]) -> RawResponse {
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no complete response head: {:?}",
                String::from_utf8_lossy(data)
            )
        });
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: data[end + 4..].to_vec(),
    }
}

/// Sends one request over a fresh HTTP/1.1 connection and returns the response head
/// with its body still streaming. The connection lives as long as the body is read.
pub async fn send_streaming(addr: SocketAddr, req: Request<ChannelBody>) -> Response<Incoming> {
    let exchange = async {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP/1.1 handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        sender.send_request(req).await.expect("send the request")
    };
    timeout(STEP, exchange)
        .await
        .expect("no response head within the step timeout")
}

/// Sends one request over a fresh HTTP/2 connection with prior knowledge (h2c); the
/// URI must be absolute (its authority becomes `:authority`).
pub async fn send_h2(addr: SocketAddr, req: Request<ChannelBody>) -> Response<Incoming> {
    let exchange = async {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(stream),
        )
        .await
        .expect("HTTP/2 handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        sender.send_request(req).await.expect("send the request")
    };
    timeout(STEP, exchange)
        .await
        .expect("no HTTP/2 response head within the step timeout")
}

/// Reads the next data chunk of `body` within [`STEP`]; `None` at its end.
pub async fn next_chunk(body: &mut Incoming) -> Option<Bytes> {
    loop {
        let frame = timeout(STEP, body.frame())
            .await
            .expect("no body data within the step timeout")?;
        let frame = frame.expect("body error");
        if let Ok(data) = frame.into_data() {
            return Some(data);
        }
    }
}

// ---------------------------------------------------------------------------------
// WebSocket client helpers.

/// The next message of any kind within [`STEP`]; `None` when the stream ended.
pub async fn next_message<S>(ws: &mut WebSocketStream<S>) -> Option<Message>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match timeout(STEP, ws.next()).await {
        Err(_) => panic!("no WebSocket message within {STEP:?}"),
        Ok(None) => None,
        Ok(Some(Ok(m))) => Some(m),
        Ok(Some(Err(e))) => panic!("WebSocket error instead of a message: {e}"),
    }
}

/// The next text or binary message (pings and pongs skipped) within [`STEP`].
pub async fn next_data<S>(ws: &mut WebSocketStream<S>) -> Message
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match next_message(ws).await {
            Some(Message::Ping(_) | Message::Pong(_)) => continue,
            Some(m) => return m,
            None => panic!("the WebSocket ended while a message was expected"),
        }
    }
}

/// Reads until a close frame arrives (within [`STEP`] per message) and returns it;
/// panics when the stream breaks or ends without one.
pub async fn expect_close<S>(ws: &mut WebSocketStream<S>) -> Option<CloseFrame>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match timeout(STEP, ws.next()).await {
            Err(_) => panic!("no close frame within {STEP:?}"),
            Ok(None) => panic!("the WebSocket ended without a close frame"),
            Ok(Some(Err(e))) => panic!("the WebSocket broke without a close frame: {e}"),
            Ok(Some(Ok(Message::Close(frame)))) => return frame,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// The code of a close frame, as a number (`None` for a close without a frame).
pub fn close_code(frame: &Option<CloseFrame>) -> Option<u16> {
    frame.as_ref().map(|f| u16::from(f.code))
}

// ---------------------------------------------------------------------------------
// Gateway configuration.

/// Builds a gateway TOML configuration: listeners on 127.0.0.1:0, HS256 with
/// [`SECRET`], static routes, plus extra lines per section.
#[derive(Default)]
pub struct GatewayToml {
    routes: Vec<(String, String, String)>,
    server: Vec<String>,
    upstream: Vec<String>,
    auth: Vec<String>,
    tables: Vec<String>,
}

impl GatewayToml {
    /// An empty configuration.
    pub fn new() -> GatewayToml {
        GatewayToml::default()
    }

    /// Adds a static route (`upstream` is `http://host:port`).
    pub fn route(mut self, workflow: &str, upstream: &str, owner: &str) -> Self {
        self.routes
            .push((workflow.into(), upstream.into(), owner.into()));
        self
    }

    /// Adds a line to `[server]`.
    pub fn server(mut self, line: &str) -> Self {
        self.server.push(line.into());
        self
    }

    /// Adds a line to `[upstream]`.
    pub fn upstream(mut self, line: &str) -> Self {
        self.upstream.push(line.into());
        self
    }

    /// Adds a line to `[auth]`.
    pub fn auth(mut self, line: &str) -> Self {
        self.auth.push(line.into());
        self
    }

    /// Appends a whole table (e.g. `[auth.reana]` with its keys) verbatim.
    pub fn table(mut self, text: &str) -> Self {
        self.tables.push(text.into());
        self
    }

    /// The TOML text.
    pub fn build(&self) -> String {
        let mut text = String::from(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nshutdown_grace = \"10s\"\n",
        );
        for line in &self.server {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str("\n[upstream]\n");
        for line in &self.upstream {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str("\n[auth]\ncookie_secure = false\n");
        for line in &self.auth {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str(&format!(
            "\n[auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = \"{SECRET}\"\n\n[discovery]\nkind = \"static\"\n"
        ));
        for (workflow, upstream, owner) in &self.routes {
            text.push_str(&format!(
                "\n[[discovery.static.routes]]\nworkflow = \"{workflow}\"\nupstream = \"{upstream}\"\nowner = \"{owner}\"\n"
            ));
        }
        for table in &self.tables {
            text.push('\n');
            text.push_str(table);
            text.push('\n');
        }
        text
    }
}

/// An HS256 JWT signed with [`SECRET`] for `user` whose `exp` is `exp_offset`
/// seconds from now (negative: already expired).
pub fn jwt_with_exp(user: &str, exp_offset: i64) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({
        "sub": user,
        "iat": now,
        "exp": now.saturating_add_signed(exp_offset),
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign a test JWT")
}
