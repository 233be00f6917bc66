//! WebSocket proxying: connect to the scheduler first (so a failure is an HTTP
//! error the client can see), answer the client's handshake with the scheduler's
//! choice of subprotocol, then relay messages in a tracked task.

use std::sync::Arc;

use http::header::{
    CONNECTION, HOST, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::WebSocketStream;

use super::headers::remove_hop_by_hop;
use super::relay::{relay_checked, RelayEnd, RelayLimits};
use super::Forward;
use crate::body::{empty, full, Body};
use crate::error::ProxyError;
use crate::metrics::UpstreamError;
use crate::state::State;

/// Proxies one WebSocket handshake; on success the relay runs in the background.
pub(crate) async fn forward(
    state: &Arc<State>,
    mut req: Request<Incoming>,
    mut fwd: Forward<'_>,
) -> Result<Response<Body>, ProxyError> {
    let version_ok = req
        .headers()
        .get(SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    let client_key = req
        .headers()
        .get(SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()))
        .ok_or(ProxyError::BadRequest("missing Sec-WebSocket-Key"))?;
    if !version_ok {
        return Err(ProxyError::BadRequest("unsupported WebSocket version"));
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let upstream_req = upstream_request(&req, &fwd)?;

    let cfg = &state.upstream;
    let stream = match timeout(cfg.connect_timeout, TcpStream::connect(&fwd.route.upstream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(_)) | Err(_) => return Err(upstream_error(state, UpstreamError::Connect)),
    };
    let _ = stream.set_nodelay(true);
    let ws_config = ws_config(cfg.max_ws_message);
    let handshake =
        tokio_tungstenite::client_async_with_config(upstream_req, stream, Some(ws_config));
    let (upstream, upstream_resp) = match timeout(cfg.response_timeout, handshake).await {
        Err(_) => return Err(upstream_error(state, UpstreamError::Timeout)),
        Ok(Err(WsError::Http(resp))) => return Ok(relay_refusal(*resp)),
        Ok(Err(_)) => return Err(upstream_error(state, UpstreamError::Protocol)),
        Ok(Ok(pair)) => pair,
    };

    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&client_key) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(protocol) = upstream_resp.headers().get(SEC_WEBSOCKET_PROTOCOL) {
        headers.insert(SEC_WEBSOCKET_PROTOCOL, protocol.clone());
    }

    let limits = RelayLimits {
        idle: cfg.ws_idle_timeout,
        deadline: fwd.deadline,
        shutdown: state.shutdown.clone(),
    };
    let recheck = fwd.recheck.take();
    let metrics = Arc::clone(&state.metrics);
    let workflow = fwd.route.workflow.clone();
    state.ws_tasks.spawn(async move {
        let io = match on_upgrade.await {
            Ok(upgraded) => TokioIo::new(upgraded),
            Err(error) => {
                tracing::debug!(%error, workflow, "client upgrade failed");
                return;
            }
        };
        let client = WebSocketStream::from_raw_socket(io, Role::Server, Some(ws_config)).await;
        metrics.websocket_delta(1);
        let end = relay_checked(client, upstream, limits, recheck).await;
        metrics.websocket_delta(-1);
        if end == RelayEnd::UpstreamLost {
            metrics.upstream_error(UpstreamError::WebSocketLost);
        }
        tracing::debug!(workflow, ?end, "websocket closed");
    });
    Ok(response)
}

fn upstream_error(state: &State, reason: UpstreamError) -> ProxyError {
    state.metrics.upstream_error(reason);
    match reason {
        UpstreamError::Connect => ProxyError::UpstreamConnect,
        UpstreamError::Timeout => ProxyError::UpstreamTimeout,
        UpstreamError::Protocol | UpstreamError::WebSocketLost => ProxyError::UpstreamProtocol,
    }
}

/// The scheduler's WebSocket message-size limit is the gateway's.
fn ws_config(max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

/// The handshake sent to the scheduler: the client's own headers (credentials and
/// hop-by-hop headers removed, Host and Origin kept), the subprotocols verbatim, a
/// fresh key, and no extensions (the relay works on whole messages).
fn upstream_request(req: &Request<Incoming>, fwd: &Forward<'_>) -> Result<Request<()>, ProxyError> {
    let uri = format!("ws://{}{}", fwd.route.upstream, fwd.path_and_query);
    let mut upstream = Request::get(uri)
        .body(())
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
    let key = HeaderValue::from_str(&generate_key()).map_err(|_| ProxyError::UpstreamProtocol)?;
    headers.insert(SEC_WEBSOCKET_KEY, key);
    Ok(upstream)
}

/// The scheduler refused the handshake with an HTTP answer: pass its status on.
fn relay_refusal(resp: http::Response<Option<Vec<u8>>>) -> Response<Body> {
    let (parts, body) = resp.into_parts();
    let mut response = Response::new(full(body.unwrap_or_default()));
    *response.status_mut() = parts.status;
    if let Some(ct) = parts.headers.get(http::header::CONTENT_TYPE) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, ct.clone());
    }
    response
}
