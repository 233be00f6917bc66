//! `State`: everything the request path needs, built once at start-up and shared
//! read-only between connections; each serving thread has its own copy, which shares
//! all but the upstream connection pool.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
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
    /// `Content-Security-Policy: frame-ancestors <server.frame_ancestors>`, given to
    /// dashboard responses without a policy of their own. Built once per serving
    /// thread, cloned per response without allocating.
    pub(crate) dashboard_csp: HeaderValue,
    /// Proxies whose `X-Forwarded-For` tells the client's address.
    pub(crate) trusted_proxies: Vec<ipnet::IpNet>,
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
            dashboard_csp: dashboard_csp(&format!(
                "frame-ancestors {}",
                config.server.frame_ancestors
            )),
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
            dashboard_csp: dashboard_csp(
                self.dashboard_csp
                    .to_str()
                    .unwrap_or(STRICTEST_DASHBOARD_CSP),
            ),
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

/// The dashboard policy for the default `server.frame_ancestors`.
const DEFAULT_DASHBOARD_CSP: &str = "frame-ancestors 'self'";
/// The policy used should a configured one not be a header value (validation
/// refuses such values): the strictest.
const STRICTEST_DASHBOARD_CSP: &str = "frame-ancestors 'none'";

/// `policy` as a header value prepared for cloning on every response: the default
/// is static (a clone copies it), any other lives in bytes of its own (a clone bumps
/// a reference count that only the calling serving thread touches).
fn dashboard_csp(policy: &str) -> HeaderValue {
    if policy == DEFAULT_DASHBOARD_CSP {
        return HeaderValue::from_static(DEFAULT_DASHBOARD_CSP);
    }
    HeaderValue::from_maybe_shared(Bytes::from_owner(policy.to_owned()))
        .unwrap_or_else(|_| HeaderValue::from_static(STRICTEST_DASHBOARD_CSP))
}
