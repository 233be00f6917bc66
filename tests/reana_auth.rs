//! REANA identities end to end (SPEC §2, §4; issue 3): an in-process gateway with
//! `[auth.reana]` against the harness's fake reana-server, recording HTTP and
//! WebSocket upstreams, all on 127.0.0.1:0. Request floods and the rate limiter in
//! `reana_auth/floods.rs`, open WebSockets in `reana_auth/websocket.rs`.
//!
//! The decision cache (moka) keeps its own time and the requests are handled on
//! the gateway's serving threads: these tests run on the wall clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "reana_auth/floods.rs"]
mod floods;
#[path = "reana_auth/websocket.rs"]
mod websocket;

use std::time::{Duration, Instant};

use bytes::Bytes;
use dask_dashboard_gateway::auth::credentials::{Credential, CredentialSource};
use dask_dashboard_gateway::auth::Authenticator;
use futures_util::StreamExt;
use support::config::{GatewayConfig, Reana};
use support::fake_reana::{FakeReana, Mode};
use support::gateway::TestGateway;
use support::http::{self, KeepAlive};
use support::jwt;
use support::upstream::{HttpUpstream, Recorded, WsUpstream};
use support::wait::STEP;
use support::ws::{close_code, echo, expect_close, websocket, Ws};
use tokio::time::timeout;

const WF: &str = "5c1e7a52-3d4f-4b6a-9e21-0f8d2c3b4a51";
const WF_WS: &str = "6d2f8b63-4e5a-4c7b-8f32-1a9e3d4c5b62";
const OWNER: &str = "0a3f8c2e-7b1d-4e5f-9a6b-1c2d3e4f5a6b";
const SHARED: &str = "1b4e9d3f-8c2e-4f6a-8b7c-2d3e4f5a6b7c";
const STRANGER: &str = "2c5fae40-9d3f-4a7b-9c8d-3e4f5a6b7c8d";
const OWNER_TOKEN: &str = "Ow9_kP2xLr7mQz4vT1nB8s";
const SHARED_TOKEN: &str = "Sh3_aB6cDe9fGh2iJk5lMn";
const STRANGER_TOKEN: &str = "St7_oP1qRs4tUv8wXy0zAb";
/// A Flask session cookie has three dot-separated base64url parts, like a JWT.
const OWNER_SESSION: &str = "eyJfZnJlc2giOmZhbHNlfQ.Z2hxYQ.kT3vQ9xLm2Pn8Rs4Wz6Yb1Cd";
const WHOLE: Duration = Duration::from_secs(120);

/// A fake reana-server, an HTTP upstream for [`WF`], a WebSocket upstream for
/// [`WF_WS`] and a gateway in front of them.
struct World {
    reana: FakeReana,
    up: HttpUpstream,
    ws: WsUpstream,
    gw: TestGateway,
}

async fn world(reana: impl FnOnce(Reana) -> Reana) -> World {
    world_with(reana, |c| c).await
}

async fn world_with(
    reana_settings: impl FnOnce(Reana) -> Reana,
    more: impl FnOnce(GatewayConfig) -> GatewayConfig,
) -> World {
    let reana = FakeReana::start().await;
    for (user, token) in [
        (OWNER, OWNER_TOKEN),
        (SHARED, SHARED_TOKEN),
        (STRANGER, STRANGER_TOKEN),
    ] {
        reana.add_user(user, token);
    }
    reana.add_session(OWNER_SESSION, OWNER);
    for wf in [WF, WF_WS] {
        reana.add_workflow(wf, OWNER);
        reana.share(wf, SHARED);
    }
    let (up, ws) = (HttpUpstream::ok().await, WsUpstream::start().await);
    let config = more(
        GatewayConfig::new()
            .route(WF, &up.url(), OWNER)
            .route(WF_WS, &ws.url(), OWNER)
            .reana(reana_settings(Reana::new(&reana.url()))),
    );
    let gw = TestGateway::start(&config).await;
    World { reana, up, ws, gw }
}

fn dash(wf: &str, rest: &str) -> String {
    format!("/dashboard/{wf}{rest}")
}

async fn get_as(w: &World, path: &str, headers: &[(&str, &str)]) -> http::Response {
    http::get(&w.gw.url(path), headers).await
}

/// `GET` the status page of [`WF`] with `Authorization: Bearer <token>`.
async fn status_as(w: &World, token: &str) -> http::Response {
    get_as(
        w,
        &dash(WF, "/status"),
        &[("authorization", &bearer(token))],
    )
    .await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Opens a WebSocket to `wf` through the gateway with `headers` plus the right Origin.
async fn open_ws(w: &World, headers: &[(&str, &str)]) -> Ws {
    let origin = w.gw.origin();
    let mut all = vec![("origin", origin.as_str())];
    all.extend_from_slice(headers);
    match websocket(&w.gw.ws_url(&dash(WF_WS, "/status/ws")), &all).await {
        Ok((ws, _)) => ws,
        Err(e) => panic!("handshake refused: {e:?}"),
    }
}

#[tokio::test]
async fn owner_via_token_query_bearer_and_session_cookie() {
    let w = world(|r| r).await;
    // The token link: validated, kept in the gateway cookie, 303 to the clean URL.
    let r = get_as(
        &w,
        &format!(
            "{}?access_token={OWNER_TOKEN}&refresh=1",
            dash(WF, "/status")
        ),
        &[],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.describe());
    assert_eq!(
        r.header("location"),
        Some(format!("{}?refresh=1", dash(WF, "/status")).as_str())
    );
    let cookie = http::set_cookie(&r, "dask_dashboard_token").expect("gateway cookie");
    let pair = cookie.split(';').next().unwrap_or_default().to_owned();
    let r = get_as(&w, &dash(WF, "/status?refresh=1"), &[("cookie", &pair)]).await;
    assert_eq!(r.status, 200, "{}", r.describe());
    let r = status_as(&w, OWNER_TOKEN).await;
    assert_eq!(r.status, 200, "{}", r.describe());
    // The Dashboard icon's click path: REANA's own session cookie, REANA's URL form.
    let session = format!("session={OWNER_SESSION}");
    let r = get_as(
        &w,
        &format!("/{WF}/dashboard/status"),
        &[("cookie", &session)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    // reana-server saw the token in the query and the session as a cookie.
    let seen = w.reana.seen();
    assert!(seen
        .iter()
        .any(|s| s.query.as_deref() == Some(&format!("access_token={OWNER_TOKEN}")[..])));
    assert!(seen
        .iter()
        .any(|s| s.header("cookie") == Some(&session[..]) && s.query.is_none()));
    assert_eq!(
        w.reana.status_calls(),
        0,
        "the owner needs no sharing check"
    );
}

#[tokio::test]
async fn shared_user_reads_stranger_refused_revoked_and_unknown_get_401() {
    let w = world(|r| r.cache_ttl("300ms").negative_ttl("100ms")).await;
    let shared = bearer(SHARED_TOKEN);
    let r = get_as(&w, &dash(WF, "/status"), &[("authorization", &shared)]).await;
    assert_eq!(r.status, 200, "{}", r.describe());
    let r = http::request(
        "HEAD",
        &w.gw.url(&dash(WF, "/status")),
        &[("authorization", &shared)],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    let r = http::request(
        "POST",
        &w.gw.url(&dash(WF, "/api/v1")),
        &[("authorization", &shared)],
        "x",
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.describe());
    assert_eq!(r.json()["error"], "read_only");
    assert!(
        w.up.requests().iter().all(|q| q.method != "POST"),
        "the POST reached the upstream"
    );

    let r = status_as(&w, STRANGER_TOKEN).await;
    assert_eq!(r.status, 403, "{}", r.describe());
    assert_eq!(r.json()["error"], "forbidden");

    // An unknown token (403 "Token not valid.") and a revoked one (403 "User access
    // token revoked.") are both 401 here.
    let revoked = "Rv5_revokedTokenValue2";
    w.reana
        .add_user("3d6a0b51-ae4f-4b8c-8d9e-4f5a6b7c8d9e", revoked);
    w.reana.revoke(revoked);
    for token in ["Zz9_unknownTokenValue1", revoked] {
        let r = status_as(&w, token).await;
        assert_eq!(r.status, 401, "{}", r.describe());
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\"")
        );
    }
    // Revoking a token in use: refused once its cached identity expires (cache_ttl).
    // Wall clock: the cache (moka) keeps its own time, on the serving threads.
    w.reana.revoke(SHARED_TOKEN);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = get_as(&w, &dash(WF, "/status"), &[("authorization", &shared)]).await;
    assert_eq!(r.status, 401, "{}", r.describe());
    let html = get_as(&w, &dash(WF, "/status"), &[("accept", "text/html")]).await;
    assert_eq!(html.status, 401);
    assert!(html.text().contains("Dashboard icon"), "{}", html.text());
}

#[tokio::test]
async fn reana_down_cold_cache_503_warm_cache_served_errors_and_slowness_503() {
    let w = world(|r| r.cache_ttl("60s").timeout("300ms")).await;
    let owner = bearer(OWNER_TOKEN);
    let r = get_as(&w, &dash(WF, "/status"), &[("authorization", &owner)]).await;
    assert_eq!(r.status, 200, "{}", r.describe());
    w.reana.stop();
    let r = get_as(&w, &dash(WF, "/status"), &[("authorization", &owner)]).await;
    assert_eq!(
        r.status,
        200,
        "a still-valid cached identity serves: {}",
        r.describe()
    );
    let r = status_as(&w, SHARED_TOKEN).await;
    assert_eq!(r.status, 503, "{}", r.describe());
    assert_eq!(r.header("retry-after"), Some("5"));
    let session = format!("session={OWNER_SESSION}");
    let r = get_as(
        &w,
        &dash(WF, "/status"),
        &[("cookie", &session), ("accept", "text/html")],
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.describe());
    w.reana.restart().await;
    for mode in [Mode::Fail500, Mode::Malformed] {
        w.reana.set_mode(mode);
        let r = status_as(&w, STRANGER_TOKEN).await;
        assert_eq!(r.status, 503, "{mode:?}: {}", r.describe());
    }
    w.reana.set_mode(Mode::Normal);
    w.reana.set_delay(Duration::from_secs(2));
    let r = status_as(&w, STRANGER_TOKEN).await;
    assert_eq!(r.status, 503, "a slow reana-server: {}", r.describe());
    // Unavailability was not cached as a refusal: once reana-server answers, it counts.
    w.reana.set_delay(Duration::ZERO);
    let r = status_as(&w, STRANGER_TOKEN).await;
    assert_eq!(r.status, 403, "{}", r.describe());
}

#[tokio::test]
async fn credentials_never_reach_the_upstream() {
    let w = world(|r| r.host_header("reana.example.org")).await;
    let cookie =
        format!("session={OWNER_SESSION}; dask_dashboard_token=GwCookieSecret1; theme=dark");
    let headers = [("authorization", bearer(OWNER_TOKEN)), ("cookie", cookie)];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let path = dash(
        WF,
        "/status?access_token=QueryAccessSecret&token=QueryTokenSecret&x=1",
    );
    assert_eq!(get_as(&w, &path, &headers).await.status, 200);
    let session = format!("session={OWNER_SESSION}");
    let r = http::request(
        "POST",
        &w.gw.url(&dash(WF, "/api")),
        &[("cookie", &session)],
        "{}",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    let mut ws = open_ws(
        &w,
        &[
            ("cookie", &session),
            ("sec-websocket-protocol", "bokeh, tok"),
        ],
    )
    .await;
    echo(&mut ws, "hello").await;

    let secrets = [
        OWNER_TOKEN,
        OWNER_SESSION,
        "GwCookieSecret1",
        "QueryAccessSecret",
        "QueryTokenSecret",
    ];
    let requests = w.up.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].query(), Some("x=1"));
    assert_eq!(requests[0].header("cookie"), Some("theme=dark"));
    assert!(requests[1].header("cookie").is_none());
    let mut dumps: Vec<String> = requests.iter().map(Recorded::dump).collect();
    dumps.extend(
        w.ws.handshakes()
            .iter()
            .map(|h| format!("{} {:?}", h.uri, h.headers)),
    );
    for dump in &dumps {
        for secret in secrets {
            assert!(
                !dump.contains(secret),
                "a credential reached the upstream:\n{dump}"
            );
        }
        assert!(
            !dump.to_ascii_lowercase().contains("authorization"),
            "{dump}"
        );
    }
    for seen in w.reana.seen() {
        assert_eq!(seen.header("host"), Some("reana.example.org"));
        assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    }
}
