//! End to end: a real Dask scheduler and worker behind the gateway (SPEC §2–§4). Each
//! test starts its own cluster (one worker) and gateway; where a test must prove that
//! the gateway made no upstream connection, the route points at a fake upstream.
//! Pages and redirects here; credentials, Bokeh sessions and WebSocket origins in
//! `dask_e2e/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "dask_e2e/bokeh.rs"]
mod bokeh;
#[path = "dask_e2e/credentials.rs"]
mod credentials;
#[path = "dask_e2e/origins.rs"]
mod origins;

use std::time::Duration;

use ::http::{Method, Version};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use support::bokeh::{decode_token_payload, payload_part, BokehSession};
use support::bokeh_page::session_token_from_html;
use support::config::GatewayConfig;
use support::dask::DaskCluster;
use support::gateway::TestGateway;
use support::http::{self, Response};
use support::upstream::{CountingListener, HttpUpstream, Reply};
use support::ws::{assert_ws_refused, websocket};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

const WF: &str = "3f1c2b4a-9d7e-4c1b-8a55-0e2e00000001";
const OWNER: &str = "alice";
const COOKIE: &str = "dask_dashboard_token";

/// Both URL forms of workflow `wf`, as `(name, prefix ending in '/')`.
fn prefixes(wf: &str) -> [(&'static str, String); 2] {
    [
        ("gateway form", format!("/dashboard/{wf}/")),
        ("REANA form", format!("/{wf}/dashboard/")),
    ]
}

/// A cluster with one worker and a gateway routing `WF` (owner alice) to it.
async fn cluster_and_gateway() -> (DaskCluster, TestGateway) {
    let cluster = DaskCluster::start(1).await;
    let upstream = format!("http://{}", cluster.dashboard);
    let gw = TestGateway::start(&GatewayConfig::new().route(WF, &upstream, OWNER)).await;
    (cluster, gw)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The path (and query) a browser at `base` (a path) goes to for `location`.
fn resolve(base: &str, location: &str) -> String {
    if let Some(rest) = location
        .strip_prefix("http://")
        .or_else(|| location.strip_prefix("https://"))
    {
        return rest.find('/').map_or("/".into(), |i| rest[i..].to_owned());
    }
    if location.starts_with('/') {
        return location.to_owned();
    }
    let base = base.split('?').next().unwrap_or_default();
    let dir = &base[..=base.rfind('/').unwrap_or(0)];
    format!("{dir}{location}")
}

fn location_of(resp: &Response, base: &str) -> String {
    let location = resp
        .header("location")
        .unwrap_or_else(|| panic!("no Location: {}", resp.describe()));
    resolve(base, location)
}

/// `src="…"` and `href="…"` values of a page that are relative links into it.
fn relative_links(html: &str) -> Vec<String> {
    let mut links = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let Some(end) = part.find('"') else { continue };
            let link = &part[..end];
            let foreign = link.contains("://") || link.starts_with("javascript:");
            if !link.is_empty() && !foreign && !link.starts_with(['/', '#']) {
                links.push(link.to_owned());
            }
        }
    }
    links.sort();
    links.dedup();
    links
}

/// 1. Every page the scheduler serves answers 200 through the gateway, under both URL
/// forms, and so do the statics the status page links to (byte for byte).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_page_and_static_answers_through_both_url_forms() {
    let (cluster, gw) = cluster_and_gateway().await;
    let auth = bearer(&gw.token(OWNER));

    let plots = cluster.individual_plots().await;
    assert!(
        plots.iter().any(|p| p == "/individual-task-stream"),
        "the scheduler lists no individual-task-stream: {plots:?}"
    );
    let mut pages: Vec<String> = [
        "status",
        "workers",
        "tasks",
        "system",
        "profile",
        "graph",
        "groups",
        "info/main/workers.html",
        "json/identity.json",
        "individual-plots.json",
        "health",
    ]
    .map(str::to_owned)
    .to_vec();
    pages.extend(plots.iter().map(|p| p.trim_start_matches('/').to_owned()));

    let requests: Vec<(String, String)> = prefixes(WF)
        .iter()
        .flat_map(|(_, prefix)| pages.iter().map(move |page| (prefix.clone(), page.clone())))
        .collect();
    let results: Vec<(String, u16)> = futures_util::stream::iter(requests)
        .map(|(prefix, page)| {
            let url = gw.url(&format!("{prefix}{page}"));
            let auth = auth.clone();
            async move {
                let resp = http::get(&url, &[("authorization", &auth)]).await;
                (format!("{prefix}{page}"), resp.status)
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let failed: Vec<_> = results
        .iter()
        .filter(|(_, status)| *status != 200)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} pages did not answer 200 through the gateway: {failed:?}",
        failed.len(),
        results.len()
    );

    // The right scheduler answers.
    let direct = http::get(&cluster.url("/json/identity.json"), &[])
        .await
        .json();
    for (form, prefix) in prefixes(WF) {
        let url = gw.url(&format!("{prefix}json/identity.json"));
        let via = http::get(&url, &[("authorization", &auth)]).await;
        assert_eq!(via.json()["id"], direct["id"], "{form}: {}", via.describe());
    }

    // The statics /status links to (CSS, images, BokehJS), byte for byte.
    for (form, prefix) in prefixes(WF) {
        let status_url = gw.url(&format!("{prefix}status"));
        let page = http::get(&status_url, &[("authorization", &auth)]).await;
        assert_eq!(page.status, 200, "{form}: {}", page.describe());
        let statics: Vec<String> = relative_links(&page.text())
            .into_iter()
            .filter(|l| l.starts_with("static/") || l.starts_with("statics/"))
            .collect();
        assert!(
            statics
                .iter()
                .any(|l| l.starts_with("static/js/bokeh.min.js"))
                && statics.iter().any(|l| l.starts_with("statics/css/")),
            "{form}: /status links no BokehJS or CSS: {statics:?}"
        );
        for link in statics {
            let via = http::get(
                &gw.url(&format!("{prefix}{link}")),
                &[("authorization", &auth)],
            )
            .await;
            assert_eq!(via.status, 200, "{form} {link}: {}", via.describe());
            let direct = http::get(&cluster.url(&format!("/{link}")), &[]).await;
            assert_eq!(direct.status, 200, "direct {link}: {}", direct.describe());
            assert!(
                via.body == direct.body,
                "{form} {link}: {} bytes through the gateway, {} direct",
                via.body.len(),
                direct.body.len()
            );
        }
    }
}

/// 2. Redirects: the gateway's own for the bare prefix, the scheduler's relative one
/// (`/info`), and an upstream's absolute `Location: /status` rewritten into the prefix
/// the request came in on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_stay_inside_the_prefix() {
    let (_cluster, gw) = cluster_and_gateway().await;
    let auth = bearer(&gw.token(OWNER));
    let headers = [("authorization", auth.as_str())];

    let plain = format!("/dashboard/{WF}/status");
    let reana = format!("/{WF}/dashboard/status");
    for (path, want) in [
        (format!("/dashboard/{WF}"), &plain),
        (format!("/dashboard/{WF}/"), &plain),
        (format!("/{WF}/dashboard/"), &reana),
    ] {
        let resp = http::get(&gw.url(&path), &headers).await;
        assert!(
            (300..400).contains(&resp.status),
            "GET {path}: {}",
            resp.describe()
        );
        let target = location_of(&resp, &path);
        assert_eq!(target.split('?').next(), Some(want.as_str()), "GET {path}");
    }

    // The scheduler answers /info with 302 `Location: info/main/workers.html`.
    for (form, prefix) in prefixes(WF) {
        let path = format!("{prefix}info");
        let resp = http::get(&gw.url(&path), &headers).await;
        assert_eq!(resp.status, 302, "{form} GET {path}: {}", resp.describe());
        let target = location_of(&resp, &path);
        assert_eq!(target, format!("{prefix}info/main/workers.html"), "{form}");
        let followed = http::get(&gw.url(&target), &headers).await;
        assert_eq!(
            followed.status,
            200,
            "{form} GET {target}: {}",
            followed.describe()
        );
    }

    // An absolute-path Location from the upstream.
    let fake = HttpUpstream::start(|_| Reply::status(301).header("location", "/status")).await;
    let other = "redirecting-workflow";
    let gw2 = TestGateway::start(&GatewayConfig::new().route(other, &fake.url(), OWNER)).await;
    let auth2 = bearer(&gw2.token(OWNER));
    for (form, prefix) in prefixes(other) {
        let path = format!("{prefix}somewhere/deeper");
        let resp = http::get(&gw2.url(&path), &[("authorization", &auth2)]).await;
        assert_eq!(resp.status, 301, "{form} GET {path}: {}", resp.describe());
        assert_eq!(
            resp.header("location"),
            Some(format!("{prefix}status").as_str()),
            "{form}: the upstream's `Location: /status` must be rewritten into the prefix"
        );
    }
    let heads = fake.requests();
    assert_eq!(heads.len(), 2, "{heads:?}");
    for head in &heads {
        assert!(
            (&head.method, head.uri.as_str(), head.version)
                == (&Method::GET, "/somewhere/deeper", Version::HTTP_11),
            "the upstream must see the path without the prefix: {}",
            head.dump()
        );
        assert!(
            head.header("authorization").is_none(),
            "the credential reached the upstream: {}",
            head.dump()
        );
    }
}

/// A page's Bokeh session token, fetched through the gateway.
async fn page_token(gw: &TestGateway, path: &str, headers: &[(&str, &str)]) -> String {
    let page = http::get(&gw.url(path), headers).await;
    assert_eq!(page.status, 200, "GET {path}: {}", page.describe());
    session_token_from_html(&page.text())
        .unwrap_or_else(|| panic!("no session token in {path}: {}", page.describe()))
}
