//! A small client for Bokeh's server protocol (bokeh 3): the session token embedded in
//! a page, its payload, and a WebSocket session that speaks ACK, PULL-DOC and
//! PATCH-DOC. Formats as in bokeh's `util/token.py`, `embed/elements.py` and
//! `protocol/receiver.py`.

use std::fmt;
use std::io::Read;
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::Message;

use super::ws::{websocket, Ws, WsRefused};

/// The payload key bokeh stores the zlib-compressed extra payload under.
pub const ZLIB_KEY: &str = "__bk__zlib_";

/// How long the server may take for the handshake, its ACK and the PULL-DOC-REPLY.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Decodes a Bokeh session token's payload (the first `.`-separated part, base64url
/// JSON). The `__bk__zlib_` field (base64url of zlib-compressed JSON holding the
/// `headers`, `cookies` and `arguments` of the page request) is replaced by its
/// decompressed JSON, and `{"bytes": <base64>}` values (query arguments) by their
/// text, as bokeh's own `_BytesDecoder` does. Panics on a malformed token.
pub fn decode_token_payload(token: &str) -> Value {
    let first = token.split('.').next().unwrap_or_default();
    let raw = b64url(first).unwrap_or_else(|e| panic!("token payload is not base64url: {e}"));
    let mut payload: Value =
        serde_json::from_slice(&raw).unwrap_or_else(|e| panic!("token payload is not JSON: {e}"));
    let compressed = payload
        .get(ZLIB_KEY)
        .and_then(Value::as_str)
        .map(|s| b64url(s).unwrap_or_else(|e| panic!("{ZLIB_KEY} is not base64url: {e}")));
    if let Some(compressed) = compressed {
        let mut text = Vec::new();
        flate2::read::ZlibDecoder::new(compressed.as_slice())
            .read_to_end(&mut text)
            .unwrap_or_else(|e| panic!("{ZLIB_KEY} is not zlib data: {e}"));
        let inner: Value = serde_json::from_slice(&text)
            .unwrap_or_else(|e| panic!("{ZLIB_KEY} does not hold JSON: {e}"));
        payload[ZLIB_KEY] = decode_bytes_objects(inner);
    }
    payload
}

/// The `headers`, `cookies` and `arguments` objects of a decoded payload (empty
/// objects when absent).
pub fn payload_part<'a>(payload: &'a Value, part: &str) -> &'a serde_json::Map<String, Value> {
    static EMPTY: std::sync::OnceLock<serde_json::Map<String, Value>> = std::sync::OnceLock::new();
    payload
        .get(ZLIB_KEY)
        .and_then(|p| p.get(part))
        .and_then(Value::as_object)
        .unwrap_or_else(|| EMPTY.get_or_init(serde_json::Map::new))
}

fn b64url(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let trimmed = text.trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed)
}

fn decode_bytes_objects(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            if map.len() == 1 {
                if let Some(Value::String(b)) = map.get("bytes") {
                    if let Ok(bytes) = b64url(b) {
                        return Value::String(String::from_utf8_lossy(&bytes).into_owned());
                    }
                }
            }
            Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, decode_bytes_objects(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(decode_bytes_objects).collect()),
        other => other,
    }
}

/// One Bokeh protocol message: three text fragments plus `num_buffers` pairs of a
/// buffer header (text) and its payload (binary).
#[derive(Debug, Clone)]
pub struct BokehMessage {
    /// `{"msgid", "msgtype", "reqid"?, "num_buffers"?}`
    pub header: Value,
    /// Free-form metadata.
    pub metadata: Value,
    /// The message type's content.
    pub content: Value,
    /// `(buffer header, payload)` pairs.
    pub buffers: Vec<(Value, Vec<u8>)>,
}

impl BokehMessage {
    /// `header.msgtype`, e.g. `ACK`, `PATCH-DOC`.
    pub fn msgtype(&self) -> &str {
        self.header["msgtype"].as_str().unwrap_or_default()
    }

    /// `header.reqid`: the request a reply answers.
    pub fn reqid(&self) -> Option<&str> {
        self.header["reqid"].as_str()
    }
}

/// Why a Bokeh session failed.
#[derive(Debug)]
pub enum BokehError {
    /// The WebSocket handshake was refused or failed.
    Refused(WsRefused),
    /// The server sent something that is not the Bokeh protocol.
    Protocol(String),
    /// The socket closed (with the close code and reason, when sent).
    Closed(Option<(u16, String)>),
    /// Nothing arrived in time.
    Timeout(String),
    /// A WebSocket error.
    Ws(String),
}

impl fmt::Display for BokehError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for BokehError {}

enum Fragment {
    Text(String),
    Binary(Vec<u8>),
}

/// An open Bokeh session: ACK received, document pulled.
pub struct BokehSession {
    ws: Ws,
    /// The handshake's 101 response.
    pub handshake: http::Response<Option<Vec<u8>>>,
    /// The server's ACK.
    pub ack: BokehMessage,
    /// The PULL-DOC-REPLY to our PULL-DOC-REQ.
    pub doc: BokehMessage,
}

impl BokehSession {
    /// Connects to `ws_url` (`ws://host:port/<page>/ws`) offering the subprotocols
    /// `bokeh, <token>` plus `extra_headers`, waits for ACK, sends PULL-DOC-REQ and
    /// waits for the PULL-DOC-REPLY that answers it (other messages in between are
    /// skipped). Every step is bounded by [`OPEN_TIMEOUT`].
    pub async fn open(
        ws_url: &str,
        token: &str,
        extra_headers: &[(&str, &str)],
    ) -> Result<BokehSession, BokehError> {
        let protocols = format!("bokeh, {token}");
        let mut headers = vec![("Sec-WebSocket-Protocol", protocols.as_str())];
        headers.extend_from_slice(extra_headers);
        let (ws, handshake) = websocket(ws_url, &headers)
            .await
            .map_err(BokehError::Refused)?;
        let mut session = BokehSession {
            ws,
            handshake,
            ack: empty_message(),
            doc: empty_message(),
        };
        let ack = session.next_message_within(OPEN_TIMEOUT).await?;
        if ack.msgtype() != "ACK" {
            return Err(BokehError::Protocol(format!(
                "expected ACK first, got {:?}",
                ack.header
            )));
        }
        session.ack = ack;

        let msgid = "ddg-test-pull-1";
        session
            .send(
                json!({"msgid": msgid, "msgtype": "PULL-DOC-REQ"}),
                json!({}),
            )
            .await?;
        let deadline = Instant::now() + OPEN_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = session.next_message_within(left).await?;
            match msg.msgtype() {
                "PULL-DOC-REPLY" if msg.reqid() == Some(msgid) => {
                    session.doc = msg;
                    return Ok(session);
                }
                "ERROR" => {
                    return Err(BokehError::Protocol(format!(
                        "server answered PULL-DOC-REQ with ERROR: {}",
                        msg.content
                    )))
                }
                _ => continue,
            }
        }
    }

    /// Sends one message (header, `{}` metadata, content; no buffers).
    pub async fn send(&mut self, header: Value, content: Value) -> Result<(), BokehError> {
        for part in [header, json!({}), content] {
            let send = self.ws.send(Message::text(part.to_string()));
            timeout(OPEN_TIMEOUT, send)
                .await
                .map_err(|_| BokehError::Timeout("sending a message".into()))?
                .map_err(|e| BokehError::Ws(e.to_string()))?;
        }
        Ok(())
    }

    /// The next whole message (no time limit: wrap it, or use
    /// [`BokehSession::next_message_within`]).
    pub async fn next_message(&mut self) -> Result<BokehMessage, BokehError> {
        let header = self.next_json().await?;
        let metadata = self.next_json().await?;
        let content = self.next_json().await?;
        let count = header["num_buffers"].as_u64().unwrap_or(0);
        let mut buffers = Vec::new();
        for _ in 0..count {
            let buffer_header = self.next_json().await?;
            match self.next_fragment().await? {
                Fragment::Binary(payload) => buffers.push((buffer_header, payload)),
                Fragment::Text(t) => {
                    return Err(BokehError::Protocol(format!(
                        "expected a binary buffer, got text {t:.200}"
                    )))
                }
            }
        }
        Ok(BokehMessage {
            header,
            metadata,
            content,
            buffers,
        })
    }

    /// [`BokehSession::next_message`] bounded by `limit`.
    pub async fn next_message_within(
        &mut self,
        limit: Duration,
    ) -> Result<BokehMessage, BokehError> {
        timeout(limit, self.next_message())
            .await
            .map_err(|_| BokehError::Timeout(format!("no message within {limit:?}")))?
    }

    /// Reads messages for `window` and counts those of type `msgtype`.
    pub async fn count_messages(
        &mut self,
        msgtype: &str,
        window: Duration,
    ) -> Result<usize, BokehError> {
        let deadline = Instant::now() + window;
        let mut count = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_message_within(left).await {
                Ok(msg) if msg.msgtype() == msgtype => count += 1,
                Ok(_) => {}
                Err(BokehError::Timeout(_)) => return Ok(count),
                Err(e) => return Err(e),
            }
        }
    }

    /// The first message of type `msgtype` within `limit`.
    pub async fn wait_for(
        &mut self,
        msgtype: &str,
        limit: Duration,
    ) -> Result<BokehMessage, BokehError> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = self.next_message_within(left).await.map_err(|e| match e {
                BokehError::Timeout(_) => BokehError::Timeout(format!("no {msgtype} in {limit:?}")),
                other => other,
            })?;
            if msg.msgtype() == msgtype {
                return Ok(msg);
            }
        }
    }

    /// Closes the socket politely (bounded to 5 s).
    pub async fn close(mut self) {
        let _ = timeout(Duration::from_secs(5), self.ws.close(None)).await;
    }

    async fn next_json(&mut self) -> Result<Value, BokehError> {
        match self.next_fragment().await? {
            Fragment::Text(text) => serde_json::from_str(&text).map_err(|e| {
                BokehError::Protocol(format!("fragment is not JSON ({e}): {text:.200}"))
            }),
            Fragment::Binary(b) => Err(BokehError::Protocol(format!(
                "expected a text fragment, got {} binary bytes",
                b.len()
            ))),
        }
    }

    async fn next_fragment(&mut self) -> Result<Fragment, BokehError> {
        loop {
            match self.ws.next().await {
                None => return Err(BokehError::Closed(None)),
                Some(Err(e)) => return Err(BokehError::Ws(e.to_string())),
                Some(Ok(Message::Text(t))) => return Ok(Fragment::Text(t.to_string())),
                Some(Ok(Message::Binary(b))) => return Ok(Fragment::Binary(b.to_vec())),
                Some(Ok(Message::Close(frame))) => {
                    return Err(BokehError::Closed(
                        frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                    ))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            }
        }
    }
}

fn empty_message() -> BokehMessage {
    BokehMessage {
        header: Value::Null,
        metadata: Value::Null,
        content: Value::Null,
        buffers: Vec::new(),
    }
}
