//! The gateway most proxy tests start: one route to a test upstream, owned by
//! [`OWNER`], with the helpers that name its URLs and credentials.

use super::GatewayToml;
use crate::support::gateway::TestGateway;

/// The workflow of [`one_route`].
pub const WF: &str = "3f2a9c1e-1b2c-4d5e-8f90-123456789abc";
/// A workflow with no route.
pub const OTHER_WF: &str = "7b1d0e2f-0000-4000-8000-00000000beef";
/// The owner of [`WF`].
pub const OWNER: &str = "alice";
/// The gateway's cookie name (the default).
pub const COOKIE: &str = "dask_dashboard_token";

/// Starts a gateway from `toml`.
pub async fn start(toml: GatewayToml) -> TestGateway {
    TestGateway::start_toml(&toml.build()).await
}

/// A gateway with one route, owned by [`OWNER`], to `upstream`.
pub async fn one_route(upstream: &str) -> TestGateway {
    start(GatewayToml::new().route(WF, upstream, OWNER)).await
}

/// [`one_route`] with one `[upstream]` setting, e.g. `max_ws_message = "64KiB"`.
pub async fn one_route_with(upstream: &str, setting: &str) -> TestGateway {
    start(
        GatewayToml::new()
            .route(WF, upstream, OWNER)
            .upstream(setting),
    )
    .await
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
