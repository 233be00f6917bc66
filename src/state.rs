//! `State`: everything the request path needs, built once at start-up and shared
//! read-only between connections; each serving thread has its own copy, which shares
//! all but the upstream connection pool.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::config::{AuthConfig, Config, UpstreamConfig};
use crate::metrics::Metrics;
use crate::proxy::upstream::{Http1Client, Upstream};
use crate::readiness::Readiness;
use crate::routes::RouteTable;

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
    /// The schedulers' client, one per serving thread: its pooled connections are
    /// driven by the requests of the thread that opened them.
    pub(crate) client: Arc<dyn Upstream>,
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
            client: Arc::new(Http1Client::new(&config.upstream)),
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
            client: Arc::new(Http1Client::new(&self.upstream)),
            readiness: self.readiness.clone(),
            shutdown: self.shutdown.clone(),
            ws_tasks: self.ws_tasks.clone(),
        }
    }
}
