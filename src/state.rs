//! `State`: everything the request path needs, built once at start-up and shared
//! read-only between connections.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::config::{AuthConfig, Config, UpstreamConfig};
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::routes::RouteTable;

/// The pooled HTTP/1.1 client used for every scheduler.
pub(crate) type UpstreamClient = Client<HttpConnector, Incoming>;

/// Shared, immutable-after-start request-path state.
pub(crate) struct State {
    /// Serve `/<id>/dashboard/…` too.
    pub(crate) reana_paths: bool,
    /// Whether the public listener terminates TLS (for `X-Forwarded-Proto`).
    pub(crate) tls: bool,
    /// Proxies whose `X-Forwarded-For` tells the client's address.
    pub(crate) trusted_proxies: Vec<(std::net::IpAddr, u8)>,
    /// Upstream limits and timeouts.
    pub(crate) upstream: UpstreamConfig,
    /// Cookie and origin settings.
    pub(crate) auth_config: AuthConfig,
    /// Credential verification, authorization and failure limiting.
    pub(crate) auth: Authenticator,
    /// Live routes (written by discovery only).
    pub(crate) routes: Arc<RouteTable>,
    /// Metrics registry.
    pub(crate) metrics: Arc<Metrics>,
    /// Pooled upstream client.
    pub(crate) client: UpstreamClient,
    /// Readiness latch and draining flag.
    pub(crate) readiness: Readiness,
    /// Cancelled when shutdown begins; open WebSockets close with 1001.
    pub(crate) shutdown: CancellationToken,
    /// Relay tasks of open WebSockets, awaited on shutdown.
    pub(crate) ws_tasks: TaskTracker,
}

impl State {
    /// Builds the state from a validated config and starts the authenticator's
    /// background work (JWK Set refresh). Runs inside the Tokio runtime.
    pub(crate) fn new(
        config: &Config,
        auth: Authenticator,
        routes: Arc<RouteTable>,
        metrics: Arc<Metrics>,
        readiness: Readiness,
    ) -> State {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.upstream.connect_timeout));
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(config.upstream.pool_idle_timeout)
            .pool_max_idle_per_host(config.upstream.pool_max_idle_per_host)
            .build(connector);
        if tokio::runtime::Handle::try_current().is_ok() {
            auth.start();
        }
        State {
            reana_paths: config.server.reana_paths,
            tls: config.server.tls.is_some(),
            trusted_proxies: config.server.trusted_proxies.clone(),
            upstream: config.upstream.clone(),
            auth_config: config.auth.clone(),
            auth,
            routes,
            metrics,
            client,
            readiness,
            shutdown: CancellationToken::new(),
            ws_tasks: TaskTracker::new(),
        }
    }
}
