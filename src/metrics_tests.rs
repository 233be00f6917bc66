//! Tests of `metrics.rs`.
use super::*;

/// What the gateway's own renderer wrote (before prometheus-client) for the state
/// that `exercised` builds: the exposition is a public contract.
const EXPECTED: &str = include_str!("../tests/fixtures/metrics.prom");

fn exercised() -> Metrics {
    let m = Metrics::new();
    m.request(RequestKind::Http, 200, Duration::from_micros(15_625));
    m.request(RequestKind::Http, 200, Duration::from_micros(31_250));
    m.request(RequestKind::WebSocket, 101, Duration::from_millis(500));
    m.auth(AuthResult::Forbidden);
    m.upstream_error(UpstreamError::Timeout);
    m.websocket_delta(1);
    m.discovery_event(Some(Duration::from_millis(1500)));
    m.count_dropped_log_lines(|| 42);
    let handoffs = m.http1_handoffs();
    handoffs.inc_by(3);
    m
}

/// The lines of each metric family, sorted: label sets within a family come in
/// no particular order.
fn families(text: &str) -> Vec<Vec<&str>> {
    let mut families: Vec<Vec<&str>> = Vec::new();
    for line in text.lines() {
        match families.last_mut() {
            Some(family) if !line.starts_with("# HELP ") => family.push(line),
            _ => families.push(vec![line]),
        }
    }
    for family in &mut families {
        family[2..].sort_unstable();
    }
    families
}

#[test]
fn renders_what_the_previous_renderer_did() {
    let text = exercised().render(7);
    assert_eq!(families(&text), families(EXPECTED), "{text}");
}

#[test]
fn codes_are_counted_once_answered_and_clamped() {
    let m = Metrics::new();
    let text = m.render(0);
    assert!(!text.contains("requests_total"), "{text}");
    assert!(text.contains("dashboard_gateway_auth_decisions_total{result=\"allowed\"} 0"));
    m.request(RequestKind::Http, 42, Duration::ZERO);
    m.request(RequestKind::Http, 100, Duration::ZERO);
    m.request(RequestKind::WebSocket, 999, Duration::ZERO);
    let text = m.render(0);
    assert!(text.contains("dashboard_gateway_requests_total{kind=\"http\",code=\"100\"} 2"));
    assert!(text.contains("dashboard_gateway_requests_total{kind=\"websocket\",code=\"599\"} 1"));
    assert_eq!(text.matches("requests_total{").count(), 2, "{text}");
}

#[test]
fn dropped_log_lines_come_from_their_source() {
    let m = Metrics::new();
    assert!(m
        .render(0)
        .contains("dashboard_gateway_log_lines_dropped_total 0"));
    m.count_dropped_log_lines(|| 42);
    assert!(m
        .render(0)
        .contains("dashboard_gateway_log_lines_dropped_total 42"));
}
