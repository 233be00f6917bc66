//! The WebSocket upstream: a server that behaves like Bokeh's, recording every
//! handshake and message, and acting on `cmd:` messages (close, drop, ping, flood,
//! stall).

use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request as WsRequest, Response as WsResponse,
};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{load, Listening};
use crate::support::http as http_client;
use crate::support::pattern::pattern;
use crate::support::wait::STEP;
use crate::support::ws::close_code;

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
        http_client::header(&self.headers, name)
    }

    /// Every value of `name`.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        http_client::header_all(&self.headers, name)
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
///
/// Its address, URL and connection count are its [`Listening`]'s.
pub struct WsUpstream {
    listening: Listening,
    handshakes: Arc<Mutex<Vec<Handshake>>>,
    events: Arc<Mutex<Vec<Message>>>,
    open: Arc<AtomicUsize>,
    load: Arc<load::LoadCounters>,
}

impl Deref for WsUpstream {
    type Target = Listening;

    fn deref(&self) -> &Listening {
        &self.listening
    }
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
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let events = Arc::new(Mutex::new(Vec::new()));
        let open = Arc::new(AtomicUsize::new(0));
        let load = Arc::new(load::LoadCounters::default());
        let shared = (
            Arc::clone(&handshakes),
            Arc::clone(&events),
            Arc::clone(&open),
            Arc::clone(&load),
        );
        let listening = Listening::start("the WebSocket upstream", move |stream| {
            let (handshakes, events, open, load) = shared.clone();
            let guard = OpenGuard::new(&open);
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
        })
        .await;
        WsUpstream {
            listening,
            handshakes,
            events,
            open,
            load,
        }
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
