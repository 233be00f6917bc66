//! WebSocket proxying: check the client's handshake (RFC 6455 §4.2.1), open the
//! scheduler's WebSocket first (so a failure is an HTTP error the client can see),
//! answer the client with the scheduler's choice of subprotocol, then relay frames in
//! a tracked task.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http::header::{
    CONNECTION, CONTENT_TYPE, HOST, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS,
    SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::headers::{is_websocket_upgrade, remove_hop_by_hop};
use super::relay::{relay_checked, RelayEnd, RelayLimits};
use super::upstream_socket::UpstreamSocket;
use super::Forward;
use crate::body::{empty, full, Body};
use crate::error::ProxyError;
use crate::metrics::UpstreamError;
use crate::state::State;

/// Largest body of a scheduler's refusal passed on to the client.
const MAX_REFUSAL_BODY: usize = 64 * 1024;

/// Proxies one WebSocket handshake; on success the relay runs in the background.
pub(crate) async fn forward<B>(
    state: &Arc<State>,
    mut req: Request<B>,
    mut fwd: Forward<'_>,
) -> Result<Response<Body>, ProxyError> {
    let accept = accept_key(req.headers())?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (upstream_req, key) = upstream_request(&req, &fwd)?;
    let (upstream, protocol) =
        match open_upstream(state, &fwd.route.upstream, upstream_req, &key).await? {
            Opened::Socket { socket, protocol } => (socket, protocol),
            Opened::Refused(response) => return Ok(response),
        };

    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    if let Some(protocol) = protocol {
        headers.insert(SEC_WEBSOCKET_PROTOCOL, protocol);
    }

    let cfg = &state.upstream;
    let limits = RelayLimits {
        idle: cfg.ws_idle_timeout,
        write_timeout: cfg.ws_write_timeout,
        max_message: cfg.max_ws_message,
        deadline: fwd.deadline,
        shutdown: state.shutdown.clone(),
    };
    let recheck = fwd.recheck.take();
    let metrics = Arc::clone(&state.metrics);
    let workflow = fwd.route.workflow.clone();
    state.ws_tasks.spawn(async move {
        let client = match on_upgrade.await {
            Ok(upgraded) => TokioIo::new(upgraded),
            Err(error) => {
                tracing::debug!(%error, workflow, "client upgrade failed");
                return;
            }
        };
        metrics.websocket_delta(1);
        let end = relay_checked(client, upstream, limits, recheck).await;
        metrics.websocket_delta(-1);
        if matches!(end, RelayEnd::UpstreamLost | RelayEnd::UpstreamStalled) {
            metrics.upstream_error(UpstreamError::WebSocketLost);
        }
        tracing::debug!(workflow, ?end, "websocket closed");
    });
    Ok(response)
}

/// RFC 6455 §4.2.1: version 13 (else 426 naming it) and a key that is base64 of 16
/// bytes (else 400). Returns the `Sec-WebSocket-Accept` answering the key.
fn accept_key(headers: &HeaderMap) -> Result<HeaderValue, ProxyError> {
    let mut versions = headers.get_all(SEC_WEBSOCKET_VERSION).iter();
    match (versions.next(), versions.next()) {
        (Some(v), None) if v.as_bytes() == b"13" => {}
        _ => return Err(ProxyError::WebSocketVersion),
    }
    let mut keys = headers.get_all(SEC_WEBSOCKET_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (Some(key), None) => key.as_bytes(),
        _ => {
            return Err(ProxyError::BadRequest(
                "missing or repeated Sec-WebSocket-Key",
            ))
        }
    };
    let decoded = base64::engine::general_purpose::STANDARD.decode(key);
    if !decoded.is_ok_and(|k| k.len() == 16) {
        return Err(ProxyError::BadRequest(
            "Sec-WebSocket-Key is not base64 of 16 bytes",
        ));
    }
    HeaderValue::from_str(&derive_accept_key(key)).map_err(|_| ProxyError::UpstreamProtocol)
}

/// A fresh `Sec-WebSocket-Key` for the scheduler.
fn new_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>())
}

/// The handshake sent to the scheduler: the client's own headers (credentials and
/// hop-by-hop headers removed, Host and Origin kept), the subprotocols verbatim, a
/// fresh key, and no extensions (frames are relayed as they are). Returns it with
/// its key.
fn upstream_request<B>(
    req: &Request<B>,
    fwd: &Forward<'_>,
) -> Result<(Request<Empty<Bytes>>, String), ProxyError> {
    let mut upstream = Request::get(fwd.path_and_query.as_str())
        .body(Empty::new())
        .map_err(|_| ProxyError::BadRequest("invalid request target"))?;
    let headers = upstream.headers_mut();
    *headers = req.headers().clone();
    remove_hop_by_hop(headers);
    for name in [
        SEC_WEBSOCKET_KEY,
        SEC_WEBSOCKET_VERSION,
        SEC_WEBSOCKET_EXTENSIONS,
        SEC_WEBSOCKET_ACCEPT,
    ] {
        headers.remove(name);
    }
    fwd.prepare_headers(headers);
    if !headers.contains_key(HOST) {
        let host = HeaderValue::from_str(&fwd.route.upstream)
            .map_err(|_| ProxyError::BadRequest("invalid host"))?;
        headers.insert(HOST, host);
    }
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    let key = new_key();
    let value = HeaderValue::from_str(&key).map_err(|_| ProxyError::UpstreamProtocol)?;
    headers.insert(SEC_WEBSOCKET_KEY, value);
    Ok((upstream, key))
}

/// What the scheduler answered the handshake with.
enum Opened {
    /// `101`: its socket and chosen subprotocol.
    Socket {
        socket: UpstreamSocket,
        protocol: Option<HeaderValue>,
    },
    /// Any other answer, passed on to the client.
    Refused(Response<Body>),
}

/// Connects to `addr` and performs the handshake, within the connect and response
/// timeouts.
async fn open_upstream(
    state: &State,
    addr: &str,
    req: Request<Empty<Bytes>>,
    key: &str,
) -> Result<Opened, ProxyError> {
    let cfg = &state.upstream;
    let tcp = match timeout(cfg.connect_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(_)) | Err(_) => return Err(upstream_error(state, UpstreamError::Connect)),
    };
    let _ = tcp.set_nodelay(true);
    match timeout(cfg.response_timeout, handshake(tcp, req, key)).await {
        Err(_) => Err(upstream_error(state, UpstreamError::Timeout)),
        Ok(Err(Refusal)) => Err(upstream_error(state, UpstreamError::Protocol)),
        Ok(Ok(opened)) => Ok(opened),
    }
}

/// The scheduler broke the handshake protocol.
struct Refusal;

/// Sends `req` over `tcp` with hyper's HTTP/1 client and takes the socket back on
/// `101`, with whatever it read past the response.
async fn handshake(
    tcp: TcpStream,
    req: Request<Empty<Bytes>>,
    key: &str,
) -> Result<Opened, Refusal> {
    let (mut sender, conn) = http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|_| Refusal)?;
    let mut conn = Some(Box::pin(conn.with_upgrades()));
    let mut response = beside(&mut conn, sender.send_request(req))
        .await
        .map_err(|_| Refusal)?;
    drop(sender);
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (parts, body) = response.into_parts();
        let body = beside(&mut conn, Limited::new(body, MAX_REFUSAL_BODY).collect()).await;
        let mut refusal = Response::new(full(body.map(|b| b.to_bytes()).unwrap_or_default()));
        *refusal.status_mut() = parts.status;
        if let Some(ct) = parts.headers.get(CONTENT_TYPE) {
            refusal.headers_mut().insert(CONTENT_TYPE, ct.clone());
        }
        return Ok(Opened::Refused(refusal));
    }
    let headers = response.headers();
    let accepted = headers
        .get(SEC_WEBSOCKET_ACCEPT)
        .is_some_and(|a| a.as_bytes() == derive_accept_key(key.as_bytes()).as_bytes());
    // No extension was offered, so none may be chosen (frames pass unchanged).
    if !accepted
        || headers.contains_key(SEC_WEBSOCKET_EXTENSIONS)
        || !is_websocket_upgrade(&http::Method::GET, headers)
    {
        return Err(Refusal);
    }
    let protocol = headers.get(SEC_WEBSOCKET_PROTOCOL).cloned();
    let on_upgrade = hyper::upgrade::on(&mut response);
    let upgraded = beside(&mut conn, on_upgrade).await;
    let parts = upgraded
        .map_err(|_| Refusal)?
        .downcast::<TokioIo<TcpStream>>()
        .map_err(|_| Refusal)?;
    Ok(Opened::Socket {
        socket: UpstreamSocket::new(parts.io.into_inner(), parts.read_buf),
        protocol,
    })
}

/// Runs `work` while driving the connection future `conn` beside it (hyper's client
/// connection must be polled for a request to make progress); `conn` becomes `None`
/// once it has ended, which it does on its own after an upgrade.
async fn beside<C, F>(conn: &mut Option<Pin<Box<C>>>, work: F) -> F::Output
where
    C: Future,
    F: Future,
{
    tokio::pin!(work);
    loop {
        let Some(running) = conn.as_mut() else {
            return work.await;
        };
        tokio::select! {
            out = &mut work => return out,
            _ = running.as_mut() => *conn = None,
        }
    }
}

fn upstream_error(state: &State, reason: UpstreamError) -> ProxyError {
    state.metrics.upstream_error(reason);
    match reason {
        UpstreamError::Connect => ProxyError::UpstreamConnect,
        UpstreamError::Timeout => ProxyError::UpstreamTimeout,
        UpstreamError::Protocol | UpstreamError::WebSocketLost => ProxyError::UpstreamProtocol,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("header value"));
        }
        map
    }

    const KEY: (&str, &str) = ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    const V13: (&str, &str) = ("sec-websocket-version", "13");

    #[test]
    fn rfc_6455_sample_key_is_accepted() {
        let accept = accept_key(&headers(&[KEY, V13])).expect("valid handshake");
        // RFC 6455 §1.3.
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn keys_that_are_not_base64_of_16_bytes_are_400() {
        for key in [
            "",
            "not base64!",
            "AAAAAAAAAAA=",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZXg=",
        ] {
            let map = headers(&[("sec-websocket-key", key), V13]);
            let err = accept_key(&map).expect_err(key);
            assert_eq!(err.status(), 400, "{key:?}");
        }
        let err = accept_key(&headers(&[V13])).expect_err("no key");
        assert_eq!(err.status(), 400);
        let err = accept_key(&headers(&[KEY, KEY, V13])).expect_err("two keys");
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn versions_other_than_13_are_426() {
        for version in ["8", "12", "14", "13, 8", ""] {
            let map = headers(&[KEY, ("sec-websocket-version", version)]);
            assert_eq!(
                accept_key(&map).expect_err(version).status(),
                426,
                "{version:?}"
            );
        }
        assert_eq!(
            accept_key(&headers(&[KEY])).expect_err("none").status(),
            426
        );
    }
}
