//! The Grafana dashboard in `deploy/grafana/` queries only what the gateway exports:
//! every metric name and label in its PromQL (selectors, `by (...)` clauses,
//! `label_values`, `{{label}}` legends) is checked against what a running gateway's
//! `/metrics` serves, after requests that give every labelled metric a sample.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use support::fixture::{dash, one_route, owner_get};
use support::http;
use support::upstream::refused_addr;

const DASHBOARD: &str = "deploy/grafana/dask-dashboard-gateway.json";

/// Labels Prometheus adds to every scraped series (the target's, through the
/// ServiceMonitor), which `/metrics` itself does not carry.
const TARGET_LABELS: &[&str] = &["namespace", "pod", "instance", "job", "service", "endpoint"];

/// PromQL functions, aggregations and keywords the dashboard may use.
const PROMQL: &[&str] = &[
    "sum",
    "max",
    "min",
    "avg",
    "rate",
    "increase",
    "histogram_quantile",
];

/// What one query asks of the gateway's metrics.
#[derive(Debug, Default)]
struct Query {
    /// Metric names with the labels their selectors match on.
    metrics: Vec<(String, Vec<String>)>,
    /// Labels the result is grouped by or named with (`by`, `label_values`, legends).
    grouping: Vec<String>,
    /// Identifiers that are neither a gateway metric nor known PromQL.
    unknown: Vec<String>,
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Index just past the string literal that starts at `i`.
fn skip_string(chars: &[char], mut i: usize) -> usize {
    let quote = chars[i];
    i += 1;
    while i < chars.len() && chars[i] != quote {
        i += if chars[i] == '\\' { 2 } else { 1 };
    }
    i + 1
}

fn skip_ws(chars: &[char], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    i
}

fn word(chars: &[char], start: usize) -> (String, usize) {
    let mut end = start;
    while chars.get(end).is_some_and(|c| ident_char(*c)) {
        end += 1;
    }
    (chars[start..end].iter().collect(), end)
}

/// The label names of `name op "value", ...` up to `close`; returns the index
/// past it. Serves selectors (`{...}`) and the exposition's label sets alike.
fn label_names(chars: &[char], mut i: usize, close: char) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    loop {
        i = skip_ws(chars, i);
        match chars.get(i) {
            None => return (names, i),
            Some(c) if *c == close => return (names, i + 1),
            Some(',') => i += 1,
            Some(c) if ident_char(*c) => {
                let (name, end) = word(chars, i);
                names.push(name);
                i = skip_ws(chars, end);
                while chars.get(i).is_some_and(|c| matches!(c, '=' | '!' | '~')) {
                    i += 1;
                }
                i = skip_ws(chars, i);
                if chars.get(i).is_some_and(|c| matches!(c, '"' | '\'' | '`')) {
                    i = skip_string(chars, i);
                }
            }
            Some(c) => panic!("unexpected {c:?} in a label list"),
        }
    }
}

/// Reads a PromQL expression (or a Grafana `label_values(...)` query).
fn parse(expr: &str) -> Query {
    let chars: Vec<char> = expr.chars().collect();
    let mut query = Query::default();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            i = skip_string(&chars, i);
        } else if c == '[' {
            // A range: `[5m]`, `[$__rate_interval]`.
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
        } else if c == '$' || c.is_ascii_digit() {
            // A Grafana variable or a number.
            i += 1;
            while chars.get(i).is_some_and(|c| ident_char(*c) || *c == '.') {
                i += 1;
            }
            continue;
        } else if ident_char(c) {
            let (name, end) = word(&chars, i);
            let next = skip_ws(&chars, end);
            i = end;
            if matches!(name.as_str(), "by" | "without") && chars.get(next) == Some(&'(') {
                let (labels, end) = label_names(&chars, next + 1, ')');
                query.grouping.extend(labels);
                i = end;
            } else if name == "label_values" {
                // label_values(<series>, <label>)
                let close = chars[next..].iter().position(|c| *c == ')').unwrap() + next;
                let inner: String = chars[next + 1..close].iter().collect();
                let (series, label) = inner.rsplit_once(',').expect("label_values(series, label)");
                let inner = parse(series);
                query.metrics.extend(inner.metrics);
                query.unknown.extend(inner.unknown);
                query.grouping.push(label.trim().to_string());
                i = close + 1;
            } else if name.starts_with("dashboard_gateway_") {
                let mut labels = Vec::new();
                if chars.get(next) == Some(&'{') {
                    (labels, i) = label_names(&chars, next + 1, '}');
                }
                query.metrics.push((name, labels));
            } else if !PROMQL.contains(&name.as_str()) {
                query.unknown.push(name);
            }
            continue;
        }
        i += 1;
    }
    query
}

/// The `{{label}}` names of a legend.
fn legend_labels(legend: &str) -> Vec<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|part| part.split_once("}}"))
        .map(|(label, _)| label.trim().to_string())
        .collect()
}

/// The dashboard's queries: every target's `expr` (with its legend's labels) and
/// every templating query.
fn queries(dashboard: &Value, out: &mut Vec<(String, Query)>) {
    match dashboard {
        Value::Object(map) => {
            if let Some(expr) = map.get("expr").and_then(Value::as_str) {
                let mut query = parse(expr);
                let legend = map.get("legendFormat").and_then(Value::as_str);
                query
                    .grouping
                    .extend(legend.map(legend_labels).unwrap_or_default());
                out.push((expr.to_string(), query));
            }
            if map.get("type").and_then(Value::as_str) == Some("query") {
                let text = map["definition"].as_str().unwrap();
                out.push((text.to_string(), parse(text)));
            }
            map.values().for_each(|v| queries(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

/// What `/metrics` serves: each family's `# TYPE`, each sample name's label names.
#[derive(Debug, Default)]
struct Exported {
    types: BTreeMap<String, String>,
    labels: BTreeMap<String, BTreeSet<String>>,
}

fn exported(text: &str) -> Exported {
    let mut out = Exported::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            out.types.insert(name.to_string(), kind.trim().to_string());
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let chars: Vec<char> = line.chars().collect();
            let (name, end) = word(&chars, 0);
            let labels = out.labels.entry(name).or_default();
            if chars.get(end) == Some(&'{') {
                labels.extend(label_names(&chars, end + 1, '}').0);
            }
        }
    }
    out
}

/// What is wrong with one query against `exported`; empty when nothing is.
fn problems(exported: &Exported, query: &Query) -> Vec<String> {
    let mut problems: Vec<String> = query
        .unknown
        .iter()
        .map(|name| format!("`{name}` is neither a gateway metric nor PromQL this test knows"))
        .collect();
    for (name, selector) in &query.metrics {
        let Some(served) = exported.labels.get(name) else {
            problems.push(format!("`{name}` is not exported"));
            continue;
        };
        if let Some(family) = name.strip_suffix("_bucket") {
            if exported.types.get(family).map(String::as_str) != Some("histogram") {
                problems.push(format!("`{name}`: `{family}` is not a histogram"));
            }
        }
        for label in selector.iter().chain(&query.grouping) {
            if !served.contains(label) && !TARGET_LABELS.contains(&label.as_str()) {
                problems.push(format!("`{name}` has no label `{label}`"));
            }
        }
    }
    problems
}

#[tokio::test]
async fn dashboard_queries_only_metrics_and_labels_the_gateway_exports() {
    // Samples for every labelled metric: a request without a credential (401,
    // `missing`) and an allowed one to a scheduler that refuses connections (502,
    // `allowed`, upstream `connect`).
    let gw = one_route(&format!("http://{}", refused_addr().await)).await;
    let missing = http::get(&gw.url(&dash("/status")), &[]).await;
    assert_eq!(missing.status, 401, "{}", missing.describe());
    let allowed = owner_get(&gw, &dash("/status"), &[]).await;
    assert_eq!(allowed.status, 502, "{}", allowed.describe());
    let metrics = http::get(&gw.admin_url("/metrics"), &[]).await;
    assert_eq!(metrics.status, 200);
    let exported = exported(&metrics.text());
    gw.stop().await.unwrap();

    // The checker itself finds what it is for.
    for wrong in [
        "rate(dashboard_gateway_requests_totl[5m])",
        "sum by (status) (rate(dashboard_gateway_requests_total[5m]))",
        "dashboard_gateway_routes{workflow=\"x\"}",
        "histogram_quantile(0.9, rate(dashboard_gateway_routes_bucket[5m]))",
        "rate(dashbord_gateway_requests_total[5m])",
    ] {
        assert!(
            !problems(&exported, &parse(wrong)).is_empty(),
            "{wrong} passed"
        );
    }

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DASHBOARD);
    let dashboard: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let mut found = Vec::new();
    queries(&dashboard, &mut found);
    let mut queried = BTreeSet::new();
    let mut wrong = Vec::new();
    for (text, query) in &found {
        queried.extend(query.metrics.iter().map(|(name, _)| name.clone()));
        for problem in problems(&exported, query) {
            wrong.push(format!("{problem}\n    in {text}"));
        }
    }
    assert!(wrong.is_empty(), "{DASHBOARD}:\n{}", wrong.join("\n"));

    // It charts what an operator watches.
    for family in [
        "requests_total",
        "request_duration_seconds_bucket",
        "websockets_active",
        "auth_decisions_total",
        "upstream_errors_total",
        "routes",
        "discovery_lag_seconds_bucket",
    ] {
        let name = format!("dashboard_gateway_{family}");
        assert!(queried.contains(&name), "{DASHBOARD} does not chart {name}");
    }
}
