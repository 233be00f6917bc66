//! Kubernetes discovery through the real gateway (SPEC §5), against the fake API
//! server in `tests/support/fake_kube`, which speaks the list/watch protocol over HTTP and is
//! reached through a kubeconfig file (`discovery.kubeconfig`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "kube_discovery/resync.rs"]
mod resync;
mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use support::config::{GatewayConfig, Kube};
use support::dask::DaskCluster;
use support::fake_kube::{objects, FakeKube, Kind};
use support::gateway::TestGateway;
use support::http::{self, Response};
use support::upstream::HttpUpstream;
use support::wait::within;

const WF: &str = "3f1c2b4a-9d7e-4c1b-8a55-0e2e00000001";
const WF2: &str = "3f1c2b4a-9d7e-4c1b-8a55-0e2e00000002";
const NS: &str = "default";
/// The name of [`WF`]'s scheduler Service.
const SVC: &str = "reana-run-dask-3f1c2b4a-scheduler";
/// A gateway discovering through `fake` (all namespaces, or `namespace`).
/// Logs go to the test's output, filtered by `RUST_LOG` (nothing when unset).
async fn gateway_in(fake: &FakeKube, namespace: Option<&str>) -> TestGateway {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
    let mut kube = Kube::new(&fake.kubeconfig());
    if let Some(namespace) = namespace {
        kube = kube.namespace(namespace);
    }
    TestGateway::start(&GatewayConfig::new().kubernetes(kube)).await
}

async fn gateway(fake: &FakeKube) -> TestGateway {
    gateway_in(fake, None).await
}

/// `GET /dashboard/<wf>/status` as `user`.
async fn dashboard(gw: &TestGateway, wf: &str, user: &str) -> Response {
    let auth = format!("Bearer {}", gw.token(user));
    http::get(
        &gw.url(&format!("/dashboard/{wf}/status")),
        &[("authorization", &auth)],
    )
    .await
}

async fn status(gw: &TestGateway, wf: &str, user: &str) -> u16 {
    dashboard(gw, wf, user).await.status
}

async fn wait_ready(gw: &TestGateway) -> Duration {
    let url = gw.admin_url("/readyz");
    within("/readyz 200", Duration::from_secs(20), || async {
        http::get(&url, &[]).await.status == 200
    })
    .await
}

async fn routes(gw: &TestGateway) -> Vec<serde_json::Value> {
    let resp = http::get(&gw.admin_url("/routes"), &[]).await;
    assert_eq!(resp.status, 200, "{}", resp.describe());
    resp.json().as_array().cloned().unwrap_or_default()
}

/// A scheduler Service in [`NS`] for `wf`, owned by `owner`, whose dashboard is
/// at 127.0.0.1:`port`.
fn local_scheduler(name: &str, wf: &str, owner: &str, port: u16) -> Service {
    objects::scheduler(NS, name, wf, owner, "127.0.0.1", port)
}

/// Applies a scheduler Service for `wf` (owner alice) whose dashboard is at
/// 127.0.0.1:`port`, with an EndpointSlice saying whether it is `ready`.
fn apply_scheduler(fake: &FakeKube, name: &str, wf: &str, port: u16, ready: bool) -> Service {
    let svc = local_scheduler(name, wf, "alice", port);
    fake.apply(&svc);
    fake.apply(&objects::slice_for(&svc, &["10.1.0.1"], ready));
    svc
}

/// A ready scheduler Service for `wf` (owner alice) pointing at `upstream`.
fn add_scheduler(fake: &FakeKube, name: &str, wf: &str, upstream: &HttpUpstream) {
    apply_scheduler(fake, name, wf, upstream.addr.port(), true);
}

/// A fake API server with no scheduler yet, an upstream for the schedulers to
/// come, and a ready gateway discovering through the fake.
async fn empty_cluster() -> (FakeKube, HttpUpstream, TestGateway) {
    let fake = FakeKube::start().await;
    let upstream = HttpUpstream::ok().await;
    let gw = gateway(&fake).await;
    wait_ready(&gw).await;
    (fake, upstream, gw)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in metrics"))
}

#[tokio::test]
async fn route_appears_and_disappears_within_a_second() {
    let (fake, upstream, gw) = empty_cluster().await;
    assert_eq!(status(&gw, WF, "alice").await, 404);

    add_scheduler(&fake, SVC, WF, &upstream);
    let appeared = within("route served", Duration::from_secs(1), || async {
        status(&gw, WF, "alice").await == 200
    })
    .await;
    let resp = dashboard(&gw, WF, "alice").await;
    assert_eq!(resp.text(), "upstream ok", "{}", resp.describe());
    assert_eq!(
        status(&gw, WF, "bob").await,
        403,
        "only the owner label's user"
    );

    // A change of the owner label moves the route to the new owner.
    let svc = local_scheduler(SVC, WF, "bob", upstream.addr.port());
    fake.apply(&svc);
    within("owner change applied", Duration::from_secs(1), || async {
        status(&gw, WF, "bob").await == 200
    })
    .await;
    assert_eq!(status(&gw, WF, "alice").await, 403);

    fake.delete(Kind::Service, NS, svc.metadata.name.as_deref().unwrap());
    let gone = within("route removed", Duration::from_secs(1), || async {
        status(&gw, WF, "bob").await == 404
    })
    .await;
    eprintln!("service created -> route served: {appeared:?}; deleted -> 404: {gone:?}");

    let metrics = http::get(&gw.admin_url("/metrics"), &[]).await.text();
    assert!(
        metric(&metrics, "dashboard_gateway_discovery_events_total") >= 4.0,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "dashboard_gateway_discovery_lag_seconds_count") >= 3.0,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "dashboard_gateway_routes"), 0.0);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn starting_cluster_answers_503_until_an_endpoint_is_ready() {
    let fake = FakeKube::start().await;
    let upstream = HttpUpstream::ok().await;
    let svc = apply_scheduler(&fake, SVC, WF, upstream.addr.port(), false);
    let gw = gateway(&fake).await;
    wait_ready(&gw).await;

    let resp = dashboard(&gw, WF, "alice").await;
    assert_eq!(resp.status, 503, "{}", resp.describe());
    assert!(resp.header("retry-after").is_some(), "{}", resp.describe());
    let html = http::get(
        &gw.url(&format!("/dashboard/{WF}/status")),
        &[
            ("authorization", &format!("Bearer {}", gw.token("alice"))),
            ("accept", "text/html"),
        ],
    )
    .await
    .text();
    assert!(html.contains("http-equiv=\"refresh\""), "{html}");
    assert!(html.contains("starting"), "{html}");
    assert_eq!(
        upstream.connections(),
        0,
        "a starting cluster is not contacted"
    );
    let listed = routes(&gw).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["ready"], false);

    fake.apply(&objects::slice_for(&svc, &["10.1.0.1"], true));
    within("ready endpoint applied", Duration::from_secs(1), || async {
        status(&gw, WF, "alice").await == 200
    })
    .await;
    assert_eq!(routes(&gw).await[0]["ready"], true);
}

#[tokio::test]
async fn five_thousand_services_load_and_route() {
    const N: usize = 5000;
    let fake = FakeKube::start().await;
    let upstream = HttpUpstream::ok().await;
    let port = upstream.addr.port();
    let wf = |i: usize| format!("5000aaaa-0000-4000-8000-{i:012}");
    let services: Vec<_> = (0..N)
        .map(|i| {
            local_scheduler(
                &format!("reana-run-dask-{i:08x}-scheduler"),
                &wf(i),
                "alice",
                port,
            )
        })
        .collect();
    fake.apply_all(
        services
            .iter()
            .map(|s| objects::slice_for(s, &["10.1.0.1"], true)),
    );
    fake.apply_all(services);

    let started = Instant::now();
    let gw = gateway(&fake).await;
    wait_ready(&gw).await;
    let loaded = started.elapsed();
    let listed = routes(&gw).await;
    assert_eq!(listed.len(), N);
    assert!(listed
        .iter()
        .all(|r| r["ready"] == true && r["owner"] == "alice"));
    let ids: Vec<&str> = listed
        .iter()
        .filter_map(|r| r["workflow"].as_str())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted by workflow");
    assert_eq!(ids[0], wf(0));
    for i in [0, 1, 2499, 4998, N - 1] {
        assert_eq!(status(&gw, &wf(i), "alice").await, 200, "workflow {i}");
    }
    let metrics = http::get(&gw.admin_url("/metrics"), &[]).await.text();
    assert_eq!(metric(&metrics, "dashboard_gateway_routes"), N as f64);
    eprintln!("{N} services (+{N} endpointslices) listed and routed in {loaded:?}");
    assert!(loaded < Duration::from_secs(20), "{loaded:?}");
}

#[tokio::test]
async fn a_namespaced_gateway_sees_only_its_namespace_and_skips_malformed_services() {
    let fake = FakeKube::start().await;
    let upstream = HttpUpstream::ok().await;
    let mut elsewhere = objects::scheduler(
        "other",
        "s",
        WF2,
        "alice",
        "127.0.0.1",
        upstream.addr.port(),
    );
    fake.apply(&elsewhere);
    let mut malformed =
        objects::scheduler("reana", "no-owner", "3f1c2b4a-bad", "alice", "127.0.0.1", 1);
    malformed
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .remove("user-uuid");
    fake.apply(&malformed);
    let good = objects::scheduler(
        "reana",
        "good",
        WF,
        "alice",
        "127.0.0.1",
        upstream.addr.port(),
    );
    fake.apply(&good);
    fake.apply(&objects::slice_for(&good, &["10.1.0.1"], true));
    let gw = gateway_in(&fake, Some("reana")).await;
    wait_ready(&gw).await;
    assert_eq!(status(&gw, WF, "alice").await, 200);
    assert_eq!(status(&gw, WF2, "alice").await, 404);
    let listed = routes(&gw).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        listed[0]["upstream"],
        format!("127.0.0.1:{}", upstream.addr.port())
    );
    assert!(listed[0]["age_seconds"].as_u64().is_some());
    // Later events in the other namespace are not seen either.
    elsewhere.metadata.namespace = Some("reana-other".into());
    fake.apply(&elsewhere);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(status(&gw, WF2, "alice").await, 404);
}

#[tokio::test]
async fn a_real_dask_scheduler_behind_a_service_serves_its_dashboard() {
    let cluster = DaskCluster::start(0).await;
    let fake = FakeKube::start().await;
    let gw = gateway(&fake).await;
    wait_ready(&gw).await;
    apply_scheduler(&fake, SVC, WF, cluster.dashboard.port(), true);
    within("dashboard served", Duration::from_secs(5), || async {
        status(&gw, WF, "alice").await == 200
    })
    .await;
    let page = dashboard(&gw, WF, "alice").await;
    let html = page.text();
    assert!(
        html.contains("Dask") && html.contains("bokeh"),
        "{}",
        page.describe()
    );
    let health = http::get(
        &gw.url(&format!("/{WF}/dashboard/health")),
        &[("authorization", &format!("Bearer {}", gw.token("alice")))],
    )
    .await;
    assert_eq!(health.text(), "ok", "{}", health.describe());
    fake.delete(Kind::Service, NS, SVC);
    within("dashboard gone", Duration::from_secs(1), || async {
        status(&gw, WF, "alice").await == 404
    })
    .await;
    drop(cluster);
}
