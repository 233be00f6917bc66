//! `State`: everything the request path needs, built once at start-up and shared
//! read-only between connections; each serving thread has its own copy, which shares
//! all but the upstream connection pool.

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
    pub(crate) auth: Arc<Authenticator>,
    /// Live routes (written by discovery only).
    pub(crate) routes: Arc<RouteTable>,
    /// Metrics registry.
    pub(crate) metrics: Arc<Metrics>,
    /// Pooled upstream client, one per serving thread: its connections are driven
    /// by the thread that opened them.
    pub(crate) client: UpstreamClient,
    /// Readiness latch and draining flag.
    pub(crate) readiness: Readiness,
    /// Cancelled when shutdown begins; open WebSockets close with 1001.
    pub(crate) shutdown: CancellationToken,
    /// Relay tasks of open WebSockets, awaited on shutdown.
    pub(crate) ws_tasks: TaskTracker,
}

impl State {
    /// Builds the state from a validated config (the authenticator's background work
    /// is started by its owner).
    pub(crate) fn new(
        config: &Config,
        auth: Arc<Authenticator>,
        routes: Arc<RouteTable>,
        metrics: Arc<Metrics>,
        readiness: Readiness,
    ) -> State {
        State {
            reana_paths: config.server.reana_paths,
            tls: config.server.tls.is_some(),
            trusted_proxies: config.server.trusted_proxies.clone(),
            upstream: config.upstream.clone(),
            auth_config: config.auth.clone(),
            auth,
            routes,
            metrics,
            client: upstream_client(&config.upstream),
            readiness,
            shutdown: CancellationToken::new(),
            ws_tasks: TaskTracker::new(),
        }
    }

    /// The state for another serving thread: everything shared but the upstream pool.
    pub(crate) fn for_worker(&self) -> State {
        State {
            reana_paths: self.reana_paths,
            tls: self.tls,
            trusted_proxies: self.trusted_proxies.clone(),
            upstream: self.upstream.clone(),
            auth_config: self.auth_config.clone(),
            auth: Arc::clone(&self.auth),
            routes: Arc::clone(&self.routes),
            metrics: Arc::clone(&self.metrics),
            client: upstream_client(&self.upstream),
            readiness: self.readiness.clone(),
            shutdown: self.shutdown.clone(),
            ws_tasks: self.ws_tasks.clone(),
        }
    }
}

/// A pooled HTTP/1.1 client with the upstream settings.
fn upstream_client(config: &UpstreamConfig) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(config.connect_timeout));
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(config.pool_idle_timeout)
        .pool_max_idle_per_host(config.pool_max_idle_per_host)
        .build(connector)
}
