//! A WebSocket client for the tests: the handshake (with the headers a test chooses,
//! and the refusal's status when there is one), and reading messages and close
//! frames, every wait under a timeout.

use futures_util::{SinkExt, StreamExt};
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::http::REQUEST_TIMEOUT;
use super::wait::STEP;

/// A WebSocket handshake that the server refused, or that failed.
#[derive(Debug)]
pub enum WsRefused {
    /// The server answered with this non-101 status.
    Status {
        /// Status code.
        status: u16,
        /// Response headers.
        headers: HeaderMap,
        /// Body, when it sent one.
        body: String,
    },
    /// Connect, protocol or timeout failure.
    Other(String),
}

impl WsRefused {
    /// The refusal's status code, when the server answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            WsRefused::Status { status, .. } => Some(*status),
            WsRefused::Other(_) => None,
        }
    }
}

/// Panics unless `result` is a handshake refused with status `want`; `what` names
/// the attempt in the message.
#[track_caller]
pub fn assert_ws_refused(result: WsResult, want: u16, what: &str) {
    match result {
        Ok((_, resp)) => panic!(
            "{what}: the handshake was accepted ({} {:?}), expected {want}",
            resp.status(),
            resp.headers()
        ),
        Err(refused) => assert_eq!(refused.status(), Some(want), "{what}: {refused:?}"),
    }
}

/// An open client WebSocket over plain TCP.
pub type Ws = WebSocketStream<TcpStream>;

/// An open WebSocket and its 101 response, or why there is none.
pub type WsResult = Result<(Ws, http::Response<Option<Vec<u8>>>), WsRefused>;

/// Opens a WebSocket to `url` (`ws://host:port/path`) with extra request headers
/// (e.g. `Origin`, `Authorization`, `Sec-WebSocket-Protocol`; a `Host` given here
/// replaces the one derived from the URL). Returns the stream and the 101 response.
pub async fn websocket(url: &str, headers: &[(&str, &str)]) -> WsResult {
    let mut req = url
        .into_client_request()
        .map_err(|e| WsRefused::Other(format!("bad url {url}: {e}")))?;
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| WsRefused::Other(format!("bad header name {name}: {e}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|e| WsRefused::Other(format!("bad header value: {e}")))?;
        req.headers_mut().insert(name, value);
    }
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .ok_or_else(|| WsRefused::Other(format!("no host in {url}")))?;
    let handshake = async {
        let tcp = TcpStream::connect(&authority)
            .await
            .map_err(|e| WsRefused::Other(format!("connect {authority}: {e}")))?;
        tokio_tungstenite::client_async(req, tcp)
            .await
            .map_err(|e| match e {
                WsError::Http(resp) => WsRefused::Status {
                    status: resp.status().as_u16(),
                    headers: resp.headers().clone(),
                    body: resp
                        .body()
                        .as_deref()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_default(),
                },
                other => WsRefused::Other(format!("handshake: {other}")),
            })
    };
    timeout(REQUEST_TIMEOUT, handshake)
        .await
        .map_err(|_| WsRefused::Other(format!("no handshake within {REQUEST_TIMEOUT:?}")))?
}

/// The status and body of a refused handshake; panics when it was accepted or
/// failed without a status.
#[track_caller]
pub fn refused_status(result: WsResult) -> (u16, String) {
    match result {
        Ok((_, resp)) => panic!("the handshake succeeded: {resp:?}"),
        Err(WsRefused::Status { status, body, .. }) => (status, body),
        Err(other) => panic!("the handshake failed without a status: {other:?}"),
    }
}

/// Sends `message` within [`STEP`].
pub async fn send(ws: &mut Ws, message: Message) {
    timeout(STEP, ws.send(message))
        .await
        .expect("sending took too long")
        .expect("send");
}

/// Sends `text` and expects it echoed back (pings and pongs skipped).
pub async fn echo(ws: &mut Ws, text: &str) {
    send(ws, Message::text(text)).await;
    assert_eq!(next_data(ws).await, Message::text(text));
}

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
