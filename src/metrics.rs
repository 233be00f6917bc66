//! Every metric the gateway exports, registered in one place and rendered by
//! prometheus-client in the Prometheus text format (0.0.4). The request path touches
//! only counter handles resolved ahead of time (atomics behind an `Arc`: no label
//! lookup, no lock) and the duration histogram.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    prometheus_text, DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric,
    LabelValueEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

const PREFIX: &str = "dashboard_gateway";

/// `kind` label of `requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// Plain HTTP request.
    Http,
    /// WebSocket handshake.
    WebSocket,
}

impl RequestKind {
    const ALL: [RequestKind; 2] = [RequestKind::Http, RequestKind::WebSocket];

    fn as_label(self) -> &'static str {
        match self {
            RequestKind::Http => "http",
            RequestKind::WebSocket => "websocket",
        }
    }
}

/// `result` label of `auth_decisions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthResult {
    /// Authenticated and authorized.
    Allowed,
    /// No credential.
    Missing,
    /// Bad credential.
    Invalid,
    /// Expired credential.
    Expired,
    /// Authenticated but not allowed for the workflow.
    Forbidden,
    /// The verifier could not answer; refused.
    Unavailable,
    /// Refused before verification: too many failures from the client address.
    RateLimited,
}

impl AuthResult {
    const ALL: [AuthResult; 7] = [
        AuthResult::Allowed,
        AuthResult::Missing,
        AuthResult::Invalid,
        AuthResult::Expired,
        AuthResult::Forbidden,
        AuthResult::Unavailable,
        AuthResult::RateLimited,
    ];

    fn as_label(self) -> &'static str {
        match self {
            AuthResult::Allowed => "allowed",
            AuthResult::Missing => "missing",
            AuthResult::Invalid => "invalid",
            AuthResult::Expired => "expired",
            AuthResult::Forbidden => "forbidden",
            AuthResult::Unavailable => "unavailable",
            AuthResult::RateLimited => "rate_limited",
        }
    }
}

/// `reason` label of `upstream_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamError {
    /// TCP connect failed or timed out.
    Connect,
    /// No response head within `response_timeout`.
    Timeout,
    /// Invalid HTTP or WebSocket from the scheduler.
    Protocol,
    /// An established WebSocket to the scheduler broke.
    WebSocketLost,
}

impl UpstreamError {
    const ALL: [UpstreamError; 4] = [
        UpstreamError::Connect,
        UpstreamError::Timeout,
        UpstreamError::Protocol,
        UpstreamError::WebSocketLost,
    ];

    fn as_label(self) -> &'static str {
        match self {
            UpstreamError::Connect => "connect",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Protocol => "protocol",
            UpstreamError::WebSocketLost => "websocket_lost",
        }
    }
}

/// Label values from each enum's fixed `as_label()`, so cardinality stays bounded.
macro_rules! label_values {
    ($($t:ty),*) => {$(
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                self.as_label().encode(encoder)
            }
        }
    )*};
}

label_values!(RequestKind, AuthResult, UpstreamError);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    kind: RequestKind,
    code: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AuthLabels {
    result: AuthResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpstreamLabels {
    reason: UpstreamError,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ThreadLabels {
    thread: u64,
}

const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Status codes a request is counted under: 100..=599.
const CODES: usize = 500;

/// All metrics of one gateway.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    /// One handle per (kind, code), taken from `requests` on first use: a code is
    /// exported once it has been answered, and later requests skip the family's lock.
    request_counters: Box<[OnceLock<Counter>]>,
    request_duration: Histogram,
    websockets_active: Gauge,
    routes: Gauge,
    auth_decisions: [Counter; AuthResult::ALL.len()],
    upstream_errors: [Counter; UpstreamError::ALL.len()],
    discovery_events: Counter,
    discovery_lag: Histogram,
    http1_handoffs: Counter,
    connections_accepted: Family<ThreadLabels, Counter>,
    log_lines_dropped: Arc<OnceLock<LogDrops>>,
}

/// Where the count of dropped log lines comes from.
struct LogDrops(Box<dyn Fn() -> u64 + Send + Sync>);

impl std::fmt::Debug for LogDrops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogDrops")
    }
}

/// `log_lines_dropped_total`, read from the log writer at each scrape.
#[derive(Debug)]
struct DroppedLogLines(Arc<OnceLock<LogDrops>>);

impl Collector for DroppedLogLines {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let dropped = self.0.get().map_or(0, |count| (count.0)());
        let counter = ConstCounter::new(dropped);
        let metric = encoder.encode_descriptor(
            "log_lines_dropped",
            "Log lines dropped because the log output did not keep up.",
            None,
            counter.metric_type(),
        )?;
        counter.encode(metric)
    }
}

/// Every label value of a one-label counter family, each with its handle.
fn counters<L, const N: usize>(family: &Family<L, Counter>, labels: [L; N]) -> [Counter; N]
where
    L: Clone + std::hash::Hash + Eq,
{
    labels.map(|l| family.get_or_create(&l).clone())
}

impl Default for Metrics {
    fn default() -> Self {
        // prometheus-client ends every HELP text with a full stop and every
        // counter's name with `_total`.
        let mut registry = Registry::with_prefix(PREFIX);
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by kind and status code",
            requests.clone(),
        );
        let request_duration = Histogram::new(BUCKETS);
        registry.register(
            "request_duration_seconds",
            "Time from request to response head (WebSocket: to the handshake answer)",
            request_duration.clone(),
        );
        let websockets_active = Gauge::default();
        registry.register(
            "websockets_active",
            "Proxied WebSockets open now",
            websockets_active.clone(),
        );
        let routes = Gauge::default();
        registry.register("routes", "Workflows with a known scheduler", routes.clone());
        let auth = Family::<AuthLabels, Counter>::default();
        registry.register(
            "auth_decisions",
            "Authentication and authorization decisions",
            auth.clone(),
        );
        let upstream = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Failures talking to schedulers",
            upstream.clone(),
        );
        let discovery_events = Counter::default();
        registry.register(
            "discovery_events",
            "Discovery events applied to the route table",
            discovery_events.clone(),
        );
        let discovery_lag = Histogram::new(BUCKETS);
        registry.register(
            "discovery_lag_seconds",
            "From a Service's change to its route being served",
            discovery_lag.clone(),
        );
        let http1_handoffs = Counter::default();
        registry.register(
            "http1_handoffs",
            "Connections the gateway's own HTTP/1.1 loop handed to hyper (a request with a body, an upgrade, HTTP/1.0, a head it could not read)",
            http1_handoffs.clone(),
        );
        let connections_accepted = Family::<ThreadLabels, Counter>::default();
        registry.register(
            "connections_accepted",
            "Connections accepted on the public listener, by serving thread (the first takes them all until it is busy)",
            connections_accepted.clone(),
        );
        let log_lines_dropped = Arc::new(OnceLock::new());
        registry.register_collector(Box::new(DroppedLogLines(Arc::clone(&log_lines_dropped))));
        Metrics {
            registry,
            requests,
            request_counters: (0..RequestKind::ALL.len() * CODES)
                .map(|_| OnceLock::new())
                .collect(),
            request_duration,
            websockets_active,
            routes,
            auth_decisions: counters(&auth, AuthResult::ALL.map(|result| AuthLabels { result })),
            upstream_errors: counters(
                &upstream,
                UpstreamError::ALL.map(|reason| UpstreamLabels { reason }),
            ),
            discovery_events,
            discovery_lag,
            http1_handoffs,
            connections_accepted,
            log_lines_dropped,
        }
    }
}

impl Metrics {
    /// Fresh metrics, all zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter of connections handed from the gateway's HTTP/1.1 loop to hyper.
    pub(crate) fn http1_handoffs(&self) -> Counter {
        self.http1_handoffs.clone()
    }

    /// The counter of connections serving thread `thread` (from 0) accepted.
    pub(crate) fn connections_accepted(&self, thread: usize) -> Counter {
        let thread = u64::try_from(thread).unwrap_or(u64::MAX);
        self.connections_accepted
            .get_or_create(&ThreadLabels { thread })
            .clone()
    }

    /// Counts a finished request (or WebSocket handshake) and its duration.
    pub fn request(&self, kind: RequestKind, code: u16, duration: Duration) {
        let code = code.clamp(100, 599);
        let index = kind as usize * CODES + usize::from(code - 100);
        if let Some(slot) = self.request_counters.get(index) {
            slot.get_or_init(|| {
                self.requests
                    .get_or_create(&RequestLabels { kind, code })
                    .clone()
            })
            .inc();
        }
        self.request_duration.observe(duration.as_secs_f64());
    }

    /// Counts an authentication/authorization decision.
    pub fn auth(&self, result: AuthResult) {
        self.auth_decisions[result as usize].inc();
    }

    /// Counts an upstream failure.
    pub fn upstream_error(&self, reason: UpstreamError) {
        self.upstream_errors[reason as usize].inc();
    }

    /// A proxied WebSocket opened (+1) or closed (-1).
    pub fn websocket_delta(&self, delta: i64) {
        self.websockets_active.inc_by(delta);
    }

    /// Counts a discovery event and, when known, how long after the object's change
    /// the route was served.
    pub fn discovery_event(&self, lag: Option<Duration>) {
        self.discovery_events.inc();
        if let Some(lag) = lag {
            self.discovery_lag.observe(lag.as_secs_f64());
        }
    }

    /// Reports the log writer's count of dropped lines from now on (set once).
    pub fn count_dropped_log_lines(&self, count: impl Fn() -> u64 + Send + Sync + 'static) {
        let _ = self.log_lines_dropped.set(LogDrops(Box::new(count)));
    }

    /// Renders everything in the Prometheus text exposition format (0.0.4), with
    /// `routes` as the number of known routes.
    pub fn render(&self, routes: usize) -> String {
        self.routes.set(i64::try_from(routes).unwrap_or(i64::MAX));
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
