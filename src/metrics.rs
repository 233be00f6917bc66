//! Every metric the gateway exports, registered in one place and rendered in the
//! Prometheus text format. Lock-free on the request path: fixed arrays of atomics
//! indexed by bounded label enums.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

const PREFIX: &str = "dashboard_gateway_";

/// `kind` label of `requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A fixed-bucket histogram of seconds.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(
            out,
            "# HELP {PREFIX}{name} {help}\n# TYPE {PREFIX}{name} histogram"
        );
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{PREFIX}{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{PREFIX}{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{PREFIX}{name}_sum {sum}\n{PREFIX}{name}_count {count}"
        );
    }
}

/// Writes a counter with one label whose values are fixed.
fn labelled_counter(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, &AtomicU64)],
) {
    let _ = writeln!(
        out,
        "# HELP {PREFIX}{name} {help}\n# TYPE {PREFIX}{name} counter"
    );
    for (value, counter) in values {
        let n = counter.load(Ordering::Relaxed);
        let _ = writeln!(out, "{PREFIX}{name}{{{label}=\"{value}\"}} {n}");
    }
}

/// Status codes are counted in a fixed array: 100..=599.
const CODES: usize = 500;

/// All metrics of one gateway.
#[derive(Debug)]
pub struct Metrics {
    requests: Vec<AtomicU64>,
    request_duration: Histogram,
    websockets_active: AtomicI64,
    auth_decisions: [AtomicU64; AuthResult::ALL.len()],
    upstream_errors: [AtomicU64; UpstreamError::ALL.len()],
    discovery_events: AtomicU64,
    discovery_lag: Histogram,
    log_lines_dropped: OnceLock<LogDrops>,
}

/// Where the count of dropped log lines comes from.
struct LogDrops(Box<dyn Fn() -> u64 + Send + Sync>);

impl std::fmt::Debug for LogDrops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogDrops")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: (0..RequestKind::ALL.len() * CODES)
                .map(|_| AtomicU64::new(0))
                .collect(),
            request_duration: Histogram::default(),
            websockets_active: AtomicI64::new(0),
            auth_decisions: Default::default(),
            upstream_errors: Default::default(),
            discovery_events: AtomicU64::new(0),
            discovery_lag: Histogram::default(),
            log_lines_dropped: OnceLock::new(),
        }
    }
}

impl Metrics {
    /// Fresh metrics, all zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts a finished request (or WebSocket handshake) and its duration.
    pub fn request(&self, kind: RequestKind, code: u16, duration: Duration) {
        let code = usize::from(code.clamp(100, 599)) - 100;
        let index = kind as usize * CODES + code;
        if let Some(counter) = self.requests.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.request_duration.observe(duration);
    }

    /// Counts an authentication/authorization decision.
    pub fn auth(&self, result: AuthResult) {
        self.auth_decisions[result as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an upstream failure.
    pub fn upstream_error(&self, reason: UpstreamError) {
        self.upstream_errors[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A proxied WebSocket opened (+1) or closed (-1).
    pub fn websocket_delta(&self, delta: i64) {
        self.websockets_active.fetch_add(delta, Ordering::Relaxed);
    }

    /// Counts a discovery event and, when known, how long after the object's change
    /// the route was served.
    pub fn discovery_event(&self, lag: Option<Duration>) {
        self.discovery_events.fetch_add(1, Ordering::Relaxed);
        if let Some(lag) = lag {
            self.discovery_lag.observe(lag);
        }
    }

    /// Reports the log writer's count of dropped lines from now on (set once).
    pub fn count_dropped_log_lines(&self, count: impl Fn() -> u64 + Send + Sync + 'static) {
        let _ = self.log_lines_dropped.set(LogDrops(Box::new(count)));
    }

    /// Renders everything in the Prometheus text exposition format.
    pub fn render(&self, routes: usize) -> String {
        let mut out = String::with_capacity(4096);
        let header = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(
                out,
                "# HELP {PREFIX}{name} {help}\n# TYPE {PREFIX}{name} {kind}"
            );
        };
        header(
            &mut out,
            "requests_total",
            "counter",
            "Requests answered, by kind and status code.",
        );
        for kind in RequestKind::ALL {
            for code in 0..CODES {
                let n = self.requests[kind as usize * CODES + code].load(Ordering::Relaxed);
                if n > 0 {
                    let (k, c) = (kind.as_label(), code + 100);
                    let _ = writeln!(
                        out,
                        "{PREFIX}requests_total{{kind=\"{k}\",code=\"{c}\"}} {n}"
                    );
                }
            }
        }
        self.request_duration.render(
            &mut out,
            "request_duration_seconds",
            "Time from request to response head (WebSocket: to the handshake answer).",
        );
        header(
            &mut out,
            "websockets_active",
            "gauge",
            "Proxied WebSockets open now.",
        );
        let active = self.websockets_active.load(Ordering::Relaxed);
        let _ = writeln!(out, "{PREFIX}websockets_active {active}");
        header(
            &mut out,
            "routes",
            "gauge",
            "Workflows with a known scheduler.",
        );
        let _ = writeln!(out, "{PREFIX}routes {routes}");
        let auth = AuthResult::ALL.map(|r| (r.as_label(), &self.auth_decisions[r as usize]));
        labelled_counter(
            &mut out,
            "auth_decisions_total",
            "Authentication and authorization decisions.",
            "result",
            &auth,
        );
        let upstream =
            UpstreamError::ALL.map(|r| (r.as_label(), &self.upstream_errors[r as usize]));
        labelled_counter(
            &mut out,
            "upstream_errors_total",
            "Failures talking to schedulers.",
            "reason",
            &upstream,
        );
        header(
            &mut out,
            "discovery_events_total",
            "counter",
            "Discovery events applied to the route table.",
        );
        let n = self.discovery_events.load(Ordering::Relaxed);
        let _ = writeln!(out, "{PREFIX}discovery_events_total {n}");
        self.discovery_lag.render(
            &mut out,
            "discovery_lag_seconds",
            "From a Service's change to its route being served.",
        );
        header(
            &mut out,
            "log_lines_dropped_total",
            "counter",
            "Log lines dropped because the log output did not keep up.",
        );
        let dropped = self.log_lines_dropped.get().map_or(0, |count| (count.0)());
        let _ = writeln!(out, "{PREFIX}log_lines_dropped_total {dropped}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::new();
        m.request(RequestKind::Http, 200, Duration::from_millis(3));
        m.request(RequestKind::Http, 200, Duration::from_millis(30));
        m.request(RequestKind::WebSocket, 101, Duration::from_millis(1));
        m.auth(AuthResult::Forbidden);
        m.upstream_error(UpstreamError::Timeout);
        m.websocket_delta(1);
        let text = m.render(7);
        assert!(text.contains("dashboard_gateway_requests_total{kind=\"http\",code=\"200\"} 2"));
        assert!(
            text.contains("dashboard_gateway_requests_total{kind=\"websocket\",code=\"101\"} 1")
        );
        assert!(text.contains("dashboard_gateway_request_duration_seconds_bucket{le=\"0.005\"} 2"));
        assert!(text.contains("dashboard_gateway_request_duration_seconds_count 3"));
        assert!(text.contains("dashboard_gateway_routes 7"));
        assert!(text.contains("dashboard_gateway_websockets_active 1"));
        assert!(text.contains("dashboard_gateway_auth_decisions_total{result=\"forbidden\"} 1"));
        assert!(text.contains("dashboard_gateway_upstream_errors_total{reason=\"timeout\"} 1"));
        assert!(text.contains("dashboard_gateway_discovery_events_total 0"));
        assert!(text.contains("dashboard_gateway_log_lines_dropped_total 0"));
    }

    #[test]
    fn dropped_log_lines_come_from_their_source() {
        let m = Metrics::new();
        m.count_dropped_log_lines(|| 42);
        assert!(m
            .render(0)
            .contains("dashboard_gateway_log_lines_dropped_total 42"));
    }
}
