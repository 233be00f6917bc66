//! Browser end-to-end tests (issue 6): Debian's headless Chromium, driven over the
//! DevTools protocol by playwright-core (`tests/browser/scenarios.mjs`), against the
//! in-process gateway with `[auth.reana]` (the fake reana-server), Kubernetes
//! discovery (the fake API server) and a real `dask scheduler` + worker. The script
//! reports what a person sees (the DOM, the Bokeh WebSocket's frames, the URL bar,
//! the history); the assertions are here. Screenshots go to `<target>/browser/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "browser/driver.rs"]
mod driver;
mod support;

use std::time::Duration;

use driver::{abridged, counts, metric, require_browser, scenario, shot, AttackSite};
use k8s_openapi::api::core::v1::Service;
use serde_json::{json, Value};
use support::config::{GatewayConfig, Kube, Reana};
use support::dask::DaskCluster;
use support::fake_kube::{objects, FakeKube, Kind};
use support::fake_reana::FakeReana;
use support::gateway::TestGateway;
use support::http;
use support::wait::within;

const NS: &str = "default";
const WF: &str = "7b2d9e41-5c3a-4f8e-9d1b-2a6c8e0f4b01";
const WF_STARTING: &str = "8c3eaf52-6d4b-4a9f-8e2c-3b7d9f1a5c02";
const WF_FINISHED: &str = "9d4fb063-7e5c-4b0a-9f3d-4c8eaf2b6d03";
const OWNER: &str = "0a3f8c2e-7b1d-4e5f-9a6b-1c2d3e4f5a6b";
const STRANGER: &str = "2c5fae40-9d3f-4a7b-9c8d-3e4f5a6b7c8d";
const OWNER_TOKEN: &str = "Ow9_kP2xLr7mQz4vT1nB8s";
const STRANGER_TOKEN: &str = "St7_oP1qRs4tUv8wXy0zAb";
/// Flask session cookies: three dot-separated base64url parts.
const OWNER_SESSION: &str = "eyJfZnJlc2giOmZhbHNlfQ.Z2hxYQ.kT3vQ9xLm2Pn8Rs4Wz6Yb1Cd";
const STRANGER_SESSION: &str = "eyJfZnJlc2giOnRydWV9.Z2hxYg.pQ7rS1tU3vW5xY7zA9bC2dE";
const PUBLIC_URL: &str = "https://reana.example.org";
/// Seconds the user watches the live status page.
const WATCH_SECONDS: u64 = 10;

/// The fakes, a real Dask cluster and a gateway in front of them.
struct World {
    reana: FakeReana,
    kube: FakeKube,
    dask: DaskCluster,
    gw: TestGateway,
}

impl World {
    /// Starts everything; `services` are `(workflow, ready)` scheduler Services, all
    /// pointing at the one Dask cluster and owned by [`OWNER`].
    async fn start(services: &[(&str, bool)]) -> World {
        let reana = FakeReana::start().await;
        reana.add_user(OWNER, OWNER_TOKEN);
        reana.add_user(STRANGER, STRANGER_TOKEN);
        reana.add_session(OWNER_SESSION, OWNER);
        reana.add_session(STRANGER_SESSION, STRANGER);
        let kube = FakeKube::start().await;
        let dask = DaskCluster::start(1).await;
        for (wf, ready) in services {
            reana.add_workflow(wf, OWNER);
            let svc = scheduler(wf, &dask);
            kube.apply(&svc);
            kube.apply(&objects::slice_for(&svc, &["10.1.0.1"], *ready));
        }
        let gw = gateway(&reana, &kube, &[]).await;
        wait_until("the gateway's first discovery sync", || async {
            http::get(&gw.admin_url("/readyz"), &[]).await.status == 200
        })
        .await;
        World {
            reana,
            kube,
            dask,
            gw,
        }
    }

    /// `http://localhost:<port>` + `path`: the browser reaches the gateway by name.
    fn url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.gw.public.port())
    }

    /// A playwright cookie: REANA's `session` on the gateway's host, path `/`.
    fn session_cookie(&self, value: &str) -> Value {
        json!({"name": "session", "value": value, "url": self.url("/"), "httpOnly": true})
    }

    /// The status of `GET path` with REANA's `session` cookie of the owner.
    async fn owner_status(&self, path: &str) -> u16 {
        let cookie = format!("session={OWNER_SESSION}");
        let headers = [("cookie", cookie.as_str()), ("accept", "text/html")];
        http::get(&self.gw.url(path), &headers).await.status
    }
}

/// The scheduler Service of workflow `wf`, its dashboard on the Dask cluster.
fn scheduler(wf: &str, dask: &DaskCluster) -> Service {
    let name = format!("reana-run-dask-{}-scheduler", &wf[..8]);
    let port = dask.dashboard.port();
    objects::scheduler(NS, &name, wf, OWNER, "127.0.0.1", port)
}

/// A gateway with `[auth.reana]` (no JWTs) and Kubernetes discovery through `kube`.
async fn gateway(reana: &FakeReana, kube: &FakeKube, allowed_origins: &[String]) -> TestGateway {
    let config = GatewayConfig::new()
        .no_jwt()
        .auth("allowed_origins", allowed_origins.to_vec())
        .reana(Reana::new(&reana.url()).public_url(PUBLIC_URL))
        .kubernetes(Kube::new(&kube.kubeconfig()).namespace(NS));
    TestGateway::start(&config).await
}

/// Polls `check` for at most 20 s.
async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    within(what, Duration::from_secs(20), check).await;
}

/// Asserts that `facts` (from `pageFacts`) show a rendered Bokeh dashboard at `href`.
fn assert_dashboard(facts: &Value, href: &str, title: &str) {
    let what = format!("{href}: {}", abridged(facts));
    assert_eq!(facts["href"], href, "{what}");
    assert_eq!(facts["status"], 200, "{what}");
    assert_eq!(facts["title"], title, "{what}");
    assert!(
        facts["bokeh_version"].is_string(),
        "no window.Bokeh: {what}"
    );
    assert!(facts["bokeh_documents"].as_u64() >= Some(1), "{what}");
    assert!(facts["bokeh_roots"].as_u64() >= Some(1), "{what}");
    assert!(facts["root_elements"].as_u64() >= Some(1), "{what}");
    assert!(facts["canvases"].as_u64() >= Some(1), "{what}");
}

/// Asserts that a recorded socket (from `socketWindow`) is `url`, pulled its Bokeh
/// document and is still open.
fn assert_socket_open(socket: &Value, url: &str) {
    assert_eq!(socket["url"], url, "{socket}");
    assert!(
        socket["msgtypes"]["PULL-DOC-REPLY"].as_u64() >= Some(1),
        "{socket}"
    );
    assert_eq!(socket["closed"], false, "the socket closed: {socket}");
    assert_eq!(socket["error"], Value::Null, "{socket}");
}

/// The click path: only REANA's `session` cookie, the Dashboard icon, a new tab; the
/// live status page for [`WATCH_SECONDS`], then Workers and Tasks from its menu.
async fn click_path(world: &World) {
    let port = world.gw.public.port();
    let status_url = world.url(&format!("/{WF}/dashboard/status"));
    let input = json!({
        "scenario": "click_path",
        "dashboard_url": status_url,
        "cookies": [world.session_cookie(OWNER_SESSION)],
        "watch_ms": WATCH_SECONDS * 1000,
        "screenshots": {"dashboard": shot("dashboard.png"), "workers": shot("workers.png"),
            "tasks": shot("tasks.png")},
    });
    let seen = scenario(input, Duration::from_secs(90), |_| {}).await;
    assert_eq!(
        seen["tabs"], 2,
        "the REANA page and the dashboard's new tab"
    );
    assert_dashboard(&seen["status"]["facts"], &status_url, "Dask: Status");
    assert!(seen["status"]["facts"]["canvases"].as_u64() >= Some(4));
    let socket = &seen["status"]["socket"];
    assert_socket_open(
        socket,
        &format!("ws://localhost:{port}/{WF}/dashboard/status/ws"),
    );
    let patches = counts(&socket["patch_docs_per_second"]);
    assert_eq!(patches.len() as u64, WATCH_SECONDS, "{socket}");
    assert!(
        patches.iter().sum::<u64>() >= 20,
        "too few plot updates: {socket}"
    );
    assert!(
        patches.chunks(2).all(|two| two.iter().sum::<u64>() >= 1),
        "the plots stopped updating for 2 s or more: {socket}"
    );
    for (page, title) in [("workers", "Dask: Workers"), ("tasks", "Dask: Task Stream")] {
        let href = world.url(&format!("/{WF}/dashboard/{page}"));
        assert_dashboard(&seen[page]["facts"], &href, title);
        let ws = format!("ws://localhost:{port}/{WF}/dashboard/{page}/ws");
        assert_socket_open(&seen[page]["socket"], &ws);
    }
}

/// A token link: the token leaves the URL bar and the history at once (303), the
/// gateway's cookie carries the session on, the plots are live.
async fn token_link(world: &World) {
    let clean = world.url(&format!("/dashboard/{WF}/status"));
    let input = json!({
        "scenario": "token_link",
        "url": format!("{clean}?access_token={OWNER_TOKEN}"),
        "token": OWNER_TOKEN,
        "watch_ms": 5000,
        "screenshot": shot("token-link.png"),
    });
    let seen = scenario(input, Duration::from_secs(60), |_| {}).await;
    let redirects = seen["redirects"].as_array().unwrap();
    assert_eq!(redirects.len(), 2, "{seen}");
    assert!(redirects[0]["url"].as_str().unwrap().contains(OWNER_TOKEN));
    assert_eq!(redirects[0]["status"], 303, "{seen}");
    assert!(!redirects[0]["location"]
        .as_str()
        .unwrap()
        .contains(OWNER_TOKEN));
    assert_eq!(redirects[1]["url"], clean.as_str(), "{seen}");
    assert_eq!(redirects[1]["status"], 200, "{seen}");
    let facts = &seen["facts"];
    assert_dashboard(facts, &clean, "Dask: Status");
    assert_eq!(
        facts["history_length"], 1,
        "the token URL is in the history: {facts}"
    );
    assert_eq!(facts["navigation_entries"], json!([clean]), "{facts}");
    assert_eq!(
        seen["back"],
        Value::Null,
        "going back went somewhere: {seen}"
    );
    assert_eq!(seen["href_after_back"], clean.as_str());
    assert_eq!(
        seen["html_contains_token"], false,
        "the token is in the page"
    );
    assert!(!seen["socket_urls"].to_string().contains(OWNER_TOKEN));
    let cookies = seen["cookies"].as_array().unwrap();
    let cookie = cookies
        .iter()
        .find(|c| c["name"] == "dask_dashboard_token")
        .unwrap_or_else(|| panic!("no gateway cookie: {cookies:?}"));
    assert_eq!(cookie["path"], format!("/dashboard/{WF}"), "{cookie}");
    assert_eq!(cookie["http_only"], true, "{cookie}");
    assert_eq!(cookie["same_site"], "Lax", "{cookie}");
    assert!(!facts["document_cookie"]
        .as_str()
        .unwrap()
        .contains("dask_dashboard_token"));
    let socket = &seen["socket"];
    let port = world.gw.public.port();
    assert_socket_open(
        socket,
        &format!("ws://localhost:{port}/dashboard/{WF}/status/ws"),
    );
    assert!(
        counts(&socket["patch_docs_per_second"]).iter().sum::<u64>() >= 5,
        "{socket}"
    );
}

/// Cross-site WebSocket hijacking: with the user's session cookie in the browser, a
/// page on another origin (cross-site on 127.0.0.1, same-site on another port of
/// localhost, where the browser does send the cookie) never gets the socket open.
async fn hijacking(world: &World) {
    let site = AttackSite::start().await;
    let origins = ["localhost", "127.0.0.1"].map(|h| format!("http://{h}:{}", site.port));
    // The control: a gateway that allows the attack page's origins.
    let lenient = gateway(&world.reana, &world.kube, &origins).await;
    let port = world.gw.public.port();
    let target = format!("ws://localhost:{port}/{WF}/dashboard/status/ws");
    let allowed = format!(
        "ws://localhost:{}/{WF}/dashboard/status/ws",
        lenient.public.port()
    );
    let input = json!({
        "scenario": "hijack",
        "dashboard_url": world.url(&format!("/{WF}/dashboard/status")),
        "cookies": [world.session_cookie(OWNER_SESSION)],
        "attacks": [
            {"name": "cross-site", "url": site.url("127.0.0.1", &target)},
            {"name": "same-site", "url": site.url("localhost", &target)},
            {"name": "control: same-site, origin allowed", "url": site.url("localhost", &allowed)},
        ],
    });
    let before = http::get(&world.gw.admin_url("/metrics"), &[]).await.text();
    let seen = scenario(input, Duration::from_secs(60), |_| {}).await;
    assert_socket_open(&seen["control"], &target);
    let attacks = seen["attacks"].as_array().unwrap();
    for attack in &attacks[..2] {
        assert_eq!(
            attack["opened"], false,
            "a cross-origin page got the socket: {attack}"
        );
        assert_eq!(attack["done"], true, "onclose never fired: {attack}");
        assert_eq!(attack["errored"], true, "onerror never fired: {attack}");
        assert_eq!(attack["messages"], 0, "{attack}");
    }
    // The same page gets a socket from a gateway that allows its origin: the browser
    // sends the user's cookie from there, and only the Origin check stands in the way.
    assert_eq!(
        attacks[2]["opened"], true,
        "the control did not open: {}",
        attacks[2]
    );
    let after = http::get(&world.gw.admin_url("/metrics"), &[]).await.text();
    let refused = r#"dashboard_gateway_requests_total{kind="websocket",code="403"}"#;
    assert!(
        metric(&after, refused) - metric(&before, refused) >= 2.0,
        "the gateway did not refuse both handshakes with 403:\n{after}"
    );
    lenient.stop().await.unwrap();
}

/// The pages a person meets instead of a dashboard: no session (401, pointing to
/// REANA), a stranger (403), a finished workflow (404).
async fn error_pages(world: &World) {
    let page = |name: &str, wf: &str, session: Option<&str>| {
        let cookies: Vec<Value> = session
            .map(|s| world.session_cookie(s))
            .into_iter()
            .collect();
        json!({"name": name, "url": world.url(&format!("/{wf}/dashboard/status")),
            "cookies": cookies, "screenshot": shot(&format!("{name}.png"))})
    };
    let input = json!({
        "scenario": "visits",
        "visits": [
            page("401", WF, None),
            page("403", WF, Some(STRANGER_SESSION)),
            page("404", WF_FINISHED, Some(OWNER_SESSION)),
        ],
    });
    let seen = scenario(input, Duration::from_secs(60), |_| {}).await;
    let visits = seen["visits"].as_array().unwrap();
    let expected = [
        (401, "Sign-in required", "Open the dashboard from REANA"),
        (403, "Not your workflow", "Only the workflow's owner"),
        (
            404,
            "No running Dask cluster",
            "only exists while the workflow runs",
        ),
    ];
    assert_eq!(visits.len(), expected.len());
    for (visit, (status, h1, text)) in visits.iter().zip(expected) {
        let what = abridged(visit);
        assert_eq!(visit["response_status"], status, "{what}");
        assert_eq!(visit["status"], status, "{what}");
        assert_eq!(visit["h1"], h1, "{what}");
        assert!(visit["text"].as_str().unwrap().contains(text), "{what}");
        assert_eq!(visit["bokeh_documents"], 0, "{what}");
        assert_eq!(visit["meta_refresh"], Value::Null, "{what}");
    }
    let links = visits[0]["links"].as_array().unwrap();
    assert!(
        links.iter().any(|l| l["href"] == PUBLIC_URL),
        "no link to REANA: {links:?}"
    );
}

/// A starting cluster: the 503 page reloads itself, and once the test marks the
/// scheduler's endpoint ready it shows the dashboard, with no action in the browser.
async fn starting_cluster(world: &World) {
    let starting = scheduler(WF_STARTING, &world.dask);
    let url = world.url(&format!("/{WF_STARTING}/dashboard/status"));
    let input = json!({
        "scenario": "starting",
        "url": url,
        "cookies": [world.session_cookie(OWNER_SESSION)],
        "wait_ms": 25_000,
        "screenshots": {"starting": shot("503.png"), "ready": shot("started.png")},
    });
    let mut marked = false;
    let seen = scenario(input, Duration::from_secs(60), |progress| {
        if progress["step"] == "starting page shown" && !marked {
            world
                .kube
                .apply(&objects::slice_for(&starting, &["10.1.0.1"], true));
            marked = true;
        }
    })
    .await;
    assert!(marked, "the starting page was never reported");
    let first = &seen["first"];
    assert_eq!(first["status"], 503, "{}", abridged(first));
    assert_eq!(
        first["h1"],
        "The Dask cluster is starting",
        "{}",
        abridged(first)
    );
    assert_eq!(first["meta_refresh"], "5", "{}", abridged(first));
    assert_eq!(
        seen["rendered"],
        true,
        "no dashboard within 25 s: {}",
        abridged(&seen)
    );
    let navigations = seen["navigations"].as_array().unwrap();
    let statuses: Vec<_> = navigations.iter().map(|n| n["status"].as_u64()).collect();
    assert!(
        statuses.len() >= 2,
        "the page never reloaded itself: {statuses:?}"
    );
    assert_eq!(statuses.first(), Some(&Some(503)), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&Some(200)), "{statuses:?}");
    assert!(
        navigations.iter().all(|n| n["url"] == url.as_str()),
        "{navigations:?}"
    );
    assert_dashboard(&seen["last"], &url, "Dask: Status");
    assert!(
        seen["waited_ms"].as_u64() <= Some(20_000),
        "{}",
        seen["waited_ms"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reana_user_watches_a_live_dashboard_in_a_browser() {
    require_browser();
    let world = World::start(&[(WF, true)]).await;
    world.dask.submit_work_for(180);
    click_path(&world).await;
    token_link(&world).await;
    hijacking(&world).await;
    world.gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_meets_the_error_pages_and_a_starting_cluster() {
    require_browser();
    let world = World::start(&[(WF, true), (WF_STARTING, false), (WF_FINISHED, true)]).await;
    // The finished workflow ran, then its Dask cluster went away with its Service.
    let path = format!("/{WF_FINISHED}/dashboard/status");
    assert_eq!(world.owner_status(&path).await, 200);
    let name = scheduler(WF_FINISHED, &world.dask).metadata.name.unwrap();
    assert!(world.kube.delete(Kind::Service, NS, &name));
    wait_until("the finished workflow's route removed", || async {
        world.owner_status(&path).await == 404
    })
    .await;
    error_pages(&world).await;
    starting_cluster(&world).await;
    world.gw.stop().await.unwrap();
}
