//! The gateway most proxy tests start: one route to a test upstream, owned by
//! [`OWNER`], with the helpers that name its URLs and credentials.

use super::config::GatewayConfig;
use super::gateway::TestGateway;
use super::http::{self, Response};
use super::ws::{websocket, Ws, WsResult};

/// The workflow of [`one_route`].
pub const WF: &str = "3f2a9c1e-1b2c-4d5e-8f90-123456789abc";
/// A workflow with no route.
pub const OTHER_WF: &str = "7b1d0e2f-0000-4000-8000-00000000beef";
/// The owner of [`WF`].
pub const OWNER: &str = "alice";
/// The gateway's cookie name (the default).
pub const COOKIE: &str = "dask_dashboard_token";

/// The base configuration with the route of [`WF`], owned by [`OWNER`], to
/// `upstream`.
pub fn routed(upstream: &str) -> GatewayConfig {
    GatewayConfig::new().route(WF, upstream, OWNER)
}

/// Starts a gateway with `config`.
pub async fn start(config: GatewayConfig) -> TestGateway {
    TestGateway::start(&config).await
}

/// A gateway with one route, owned by [`OWNER`], to `upstream`.
pub async fn one_route(upstream: &str) -> TestGateway {
    start(routed(upstream)).await
}

/// [`one_route`] with one `[upstream]` setting, e.g. `max_ws_message = "64KiB"`.
pub async fn one_route_with(upstream: &str, key: &str, value: &str) -> TestGateway {
    start(routed(upstream).upstream(key, value)).await
}

/// `Authorization` value carrying a JWT of [`OWNER`].
pub fn bearer(gw: &TestGateway) -> String {
    format!("Bearer {}", gw.token(OWNER))
}

/// `path` under the gateway's own URL form for [`WF`].
pub fn dash(path: &str) -> String {
    format!("/dashboard/{WF}{path}")
}

/// `path` under REANA's URL form for [`WF`].
pub fn reana(path: &str) -> String {
    format!("/{WF}/dashboard{path}")
}

/// `GET path` on `gw` as [`OWNER`] (a Bearer token), plus `headers`.
pub async fn owner_get(gw: &TestGateway, path: &str, headers: &[(&str, &str)]) -> Response {
    let auth = bearer(gw);
    let mut all = vec![("authorization", auth.as_str())];
    all.extend_from_slice(headers);
    http::get(&gw.url(path), &all).await
}

/// A WebSocket handshake to `dash(path)` on `gw` with `Authorization: Bearer
/// <token>`, the gateway's own Origin, and `extra` headers.
pub async fn ws_as(gw: &TestGateway, token: &str, path: &str, extra: &[(&str, &str)]) -> WsResult {
    let auth = format!("Bearer {token}");
    let origin = gw.origin();
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("origin", origin.as_str()),
    ];
    headers.extend_from_slice(extra);
    websocket(&gw.ws_url(&dash(path)), &headers).await
}

/// [`ws_as`] with a token of [`OWNER`].
pub async fn owner_ws(gw: &TestGateway, path: &str, extra: &[(&str, &str)]) -> WsResult {
    ws_as(gw, &gw.token(OWNER), path, extra).await
}

/// An open WebSocket to `dash(path)` as [`OWNER`]; panics when refused.
pub async fn open_owner_ws(gw: &TestGateway, path: &str) -> Ws {
    match owner_ws(gw, path, &[]).await {
        Ok((ws, _)) => ws,
        Err(e) => panic!("the handshake through the gateway failed: {e:?}"),
    }
}
