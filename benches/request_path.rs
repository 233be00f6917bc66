//! Criterion micro-benchmarks of the gateway's per-request work: credential
//! extraction, JWT verification (cached and uncached), route lookup, and the header
//! and path rewriting done before a request is forwarded.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use dask_dashboard_gateway::auth::credentials;
use dask_dashboard_gateway::auth::jwt::{self, JwtVerifier};
use dask_dashboard_gateway::config::{DiscoveryConfig, JwtConfig, JwtKey, StaticRoute};
use dask_dashboard_gateway::discovery;
use dask_dashboard_gateway::metrics::Metrics;
use dask_dashboard_gateway::proxy::{headers, path};
use dask_dashboard_gateway::readiness::Readiness;
use dask_dashboard_gateway::routes::RouteTable;
use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue};
use jsonwebtoken::Algorithm;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

/// The gateway's default cookie name (`auth.cookie_name`).
const COOKIE_NAME: &str = "dask_dashboard_token";

/// A REANA workflow id, as it appears in dashboard URLs.
const WORKFLOW: &str = "3f2b8c1e-7d4a-4e0b-9c6f-1a2b3c4d5e6f";

/// Distinct tokens verified per fresh verifier in the uncached benchmark.
const DISTINCT_TOKENS: usize = 1024;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread Tokio runtime can be built")
}

fn jwt_config() -> JwtConfig {
    JwtConfig {
        algorithms: vec![Algorithm::HS256],
        key: JwtKey::Secret(b"a-shared-secret-of-thirty-two-bytes!".to_vec()),
        issuer: Some("https://reana.example.org".into()),
        audience: Some(vec!["dask-dashboard".into()]),
        leeway_seconds: 30,
        user_claim: "sub".into(),
    }
}

fn mint(cfg: &JwtConfig, user: &str) -> String {
    jwt::mint(cfg, user, Duration::from_secs(3600)).expect("an HS256 configuration mints tokens")
}

fn header(name: &'static str, value: &str) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_static(name),
        HeaderValue::from_str(value).expect("benchmark header values are valid"),
    )
}

/// The headers of a browser's dashboard request as the ingress hands it on: browser
/// headers, the ingress's forwarding headers, and the gateway cookie between the
/// web UI's `_xsrf` and REANA's `session` cookies.
fn browser_request(token: &str) -> HeaderMap {
    let cookie = format!(
        "_xsrf=2|8e1f3c4a|5b7d0e9f2a6c4b8d1e3f5a7c9b0d2e4f|1733112000; \
         {COOKIE_NAME}={token}; \
         session=.eJwlzjEOwjAMBdC7ZO5gx4njcBmU2DFiaaUCE-LuVGJ9y3uX-1rX8Sy31_rkrdyfUW7F2wBHcKYIR5gdJRBGZU6osjSzJDPPOSJjTSGmbdJoK2Owd5LVpMp0awxVYA6JbgwLwXvlDcgZJCqq5jwNx7ZMEBOkSc3OIR3I5fwGV2kvx-pr8yhFRRs"
    );
    [
        header("host", "reana.example.org"),
        header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Safari/537.36",
        ),
        header(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,\
             image/webp,image/apng,*/*;q=0.8",
        ),
        header("accept-language", "en-GB,en;q=0.9,fr;q=0.8"),
        header("accept-encoding", "gzip, deflate, br, zstd"),
        header(
            "referer",
            &format!("https://reana.example.org/details/{WORKFLOW}"),
        ),
        header("cookie", &cookie),
        header("connection", "keep-alive"),
        header("x-request-id", "5c0f3a9e8b7d6c5b4a3f2e1d0c9b8a7f"),
        header("x-real-ip", "192.0.2.44"),
        header("x-forwarded-for", "192.0.2.44"),
        header("x-forwarded-host", "reana.example.org"),
        header("x-forwarded-proto", "https"),
    ]
    .into_iter()
    .collect()
}

fn credential_extraction(c: &mut Criterion) {
    let request = browser_request(&mint(&jwt_config(), "alice"));
    let mut group = c.benchmark_group("credential_extraction");
    group.bench_function("extract", |b| {
        b.iter(|| credentials::extract(black_box(&request), black_box(None), COOKIE_NAME))
    });
    group.bench_function("extract_and_strip", |b| {
        b.iter_batched(
            || request.clone(),
            |mut headers| {
                let credential = credentials::extract(&headers, None, COOKIE_NAME);
                credentials::strip_request_credentials(&mut headers, COOKIE_NAME);
                (credential, headers)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// `verify` of one token over and over: after the first call every one is answered
/// by the verifier's cache of recent successes.
fn jwt_verify(c: &mut Criterion) {
    let cfg = jwt_config();
    let rt = runtime();
    let mut group = c.benchmark_group("jwt_verify");

    let verifier = JwtVerifier::new(&cfg).expect("the HS256 configuration is valid");
    let token = mint(&cfg, "alice");
    group.bench_function("same_token_cached", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let identity = verifier.verify(black_box(&token)).await;
                    black_box(identity.expect("the token verifies"));
                }
                start.elapsed()
            })
        })
    });

    // The cache keeps every success (up to 10,000) for 30 s, so cycling a fixed set
    // of tokens through one verifier would hit it from the second round on. Each
    // round of DISTINCT_TOKENS verifications runs on a verifier that has seen none of
    // them; building and dropping it is not timed.
    let tokens: Vec<String> = (0..DISTINCT_TOKENS)
        .map(|i| mint(&cfg, &format!("user-{i}")))
        .collect();
    group.bench_function("distinct_tokens_uncached", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let round = left.min(DISTINCT_TOKENS as u64);
                left -= round;
                let verifier = JwtVerifier::new(&cfg).expect("the HS256 configuration is valid");
                let elapsed = rt.block_on(async {
                    let start = Instant::now();
                    for token in tokens.iter().take(round as usize) {
                        let identity = verifier.verify(black_box(token)).await;
                        black_box(identity.expect("the token verifies"));
                    }
                    start.elapsed()
                });
                total += elapsed;
                drop(verifier);
            }
            total
        })
    });
    group.finish();
}

/// A workflow id in the UUID form REANA uses, distinct for each `i`.
fn workflow_id(i: usize) -> String {
    format!("{i:08x}-0000-4000-8000-{i:012x}")
}

/// A table filled the way the gateway fills it from `[[discovery.static.routes]]`.
fn route_table(rt: &Runtime, routes: usize) -> Arc<RouteTable> {
    let config = DiscoveryConfig::Static(
        (0..routes)
            .map(|i| StaticRoute {
                workflow: workflow_id(i),
                upstream: format!(
                    "10.{}.{}.{}:8787",
                    (i >> 16) & 0xff,
                    (i >> 8) & 0xff,
                    i & 0xff
                ),
                owner: format!("user-{i}"),
            })
            .collect(),
    );
    let table = Arc::new(RouteTable::new());
    rt.block_on(discovery::start(
        &config,
        Arc::clone(&table),
        Readiness::new(),
        Arc::new(Metrics::new()),
        CancellationToken::new(),
    ))
    .expect("static discovery starts");
    assert_eq!(table.len(), routes, "every static route is in the table");
    table
}

fn route_lookup(c: &mut Criterion) {
    let rt = runtime();
    let missing = workflow_id(0xffff_ffff);
    let mut group = c.benchmark_group("route_lookup");
    for routes in [1, 10_000] {
        let table = route_table(&rt, routes);
        let present = workflow_id(routes / 2);
        assert!(table.lookup(&present).is_some(), "the present id is routed");
        assert!(table.lookup(&missing).is_none(), "the missing id is not");
        group.bench_function(format!("{routes}_routes/present"), |b| {
            b.iter(|| table.lookup(black_box(&present)))
        });
        group.bench_function(format!("{routes}_routes/missing"), |b| {
            b.iter(|| table.lookup(black_box(&missing)))
        });
    }
    group.finish();
}

fn header_rewrite(c: &mut Criterion) {
    let request = browser_request(&mint(&jwt_config(), "alice"));
    let client_ip = IpAddr::V4(Ipv4Addr::new(10, 42, 0, 17));
    let prefix = format!("/dashboard/{WORKFLOW}");
    let request_id = http::HeaderValue::from_static("0123456789abcdef0123456789abcdef");
    let mut group = c.benchmark_group("header_rewrite");
    group.bench_function("request_headers", |b| {
        b.iter_batched(
            || request.clone(),
            |mut headers| {
                headers::remove_hop_by_hop(&mut headers);
                credentials::strip_request_credentials(&mut headers, COOKIE_NAME);
                let host = headers.get(HOST).cloned();
                headers::set_forwarded(
                    &mut headers,
                    client_ip,
                    "https",
                    host.as_ref(),
                    &prefix,
                    &request_id,
                );
                headers
            },
            BatchSize::SmallInput,
        )
    });

    let plain = format!("/dashboard/{WORKFLOW}/individual-task-stream");
    let reana = format!("/{WORKFLOW}/dashboard/status");
    group.bench_function("parse_path/dashboard_form", |b| {
        b.iter(|| path::parse(black_box(&plain), true).expect("the path is a dashboard path"))
    });
    group.bench_function("parse_path/reana_form", |b| {
        b.iter(|| path::parse(black_box(&reana), true).expect("the path is a dashboard path"))
    });

    let upstream = "10.42.3.7:8787";
    group.bench_function("rewrite_location/absolute_path", |b| {
        b.iter(|| {
            path::rewrite_location(
                black_box("/status"),
                &prefix,
                upstream,
                Some("reana.example.org"),
            )
        })
    });
    group.bench_function("rewrite_location/upstream_url", |b| {
        b.iter(|| {
            path::rewrite_location(
                black_box("http://10.42.3.7:8787/status?refresh=1"),
                &prefix,
                upstream,
                Some("reana.example.org"),
            )
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    credential_extraction,
    jwt_verify,
    route_lookup,
    header_rewrite
);
criterion_main!(benches);
