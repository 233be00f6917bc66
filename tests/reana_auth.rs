//! REANA identities end to end (SPEC §2, §4; issue 3): an in-process gateway with
//! `[auth.reana]` against a fake reana-server (`tests/fake_reana`), recording HTTP
//! and WebSocket upstreams (`tests/upstream`), all on 127.0.0.1:0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_reana;
mod support;
mod upstream;

use std::time::{Duration, Instant};

use bytes::Bytes;
use dask_dashboard_gateway::auth::credentials::{Credential, CredentialSource};
use dask_dashboard_gateway::auth::Authenticator;
use dask_dashboard_gateway::config::Config;
use fake_reana::{FakeReana, Mode};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use support::gateway::TestGateway;
use support::http::{self, websocket, Ws};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use upstream::{close_code, expect_close, next_data, GatewayToml, HttpUpstream, WsUpstream, STEP};

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

async fn world(reana_keys: &str) -> World {
    world_with(reana_keys, |t| t).await
}

async fn world_with(reana_keys: &str, more: impl FnOnce(GatewayToml) -> GatewayToml) -> World {
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
    let table = format!(
        "[auth.reana]\nserver_url = \"{}\"\n{reana_keys}\n",
        reana.url()
    );
    let toml = more(
        GatewayToml::new()
            .route(WF, &up.url(), OWNER)
            .route(WF_WS, &ws.url(), OWNER)
            .table(&table),
    );
    let gw = TestGateway::start_toml(&toml.build()).await;
    World { reana, up, ws, gw }
}

fn dash(wf: &str, rest: &str) -> String {
    format!("/dashboard/{wf}{rest}")
}

async fn get_as(w: &World, path: &str, headers: &[(&str, &str)]) -> http::Response {
    http::get(&w.gw.url(path), headers).await
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

async fn echo(ws: &mut Ws, text: &str) {
    timeout(STEP, ws.send(Message::text(text)))
        .await
        .expect("send in time")
        .expect("send");
    assert_eq!(next_data(ws).await, Message::text(text));
}

#[tokio::test]
async fn owner_via_token_query_bearer_and_session_cookie() {
    let w = world("").await;
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
    let r = get_as(
        &w,
        &dash(WF, "/status"),
        &[("authorization", &bearer(OWNER_TOKEN))],
    )
    .await;
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
    let w = world("cache_ttl = \"300ms\"\nnegative_ttl = \"100ms\"").await;
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

    let r = get_as(
        &w,
        &dash(WF, "/status"),
        &[("authorization", &bearer(STRANGER_TOKEN))],
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.describe());
    assert_eq!(r.json()["error"], "forbidden");

    // An unknown token (403 "Token not valid.") and a revoked one (403 "User access
    // token revoked.") are both 401 here.
    let revoked = "Rv5_revokedTokenValue2";
    w.reana
        .add_user("3d6a0b51-ae4f-4b8c-8d9e-4f5a6b7c8d9e", revoked);
    w.reana.revoke(revoked);
    for token in ["Zz9_unknownTokenValue1", revoked] {
        let r = get_as(
            &w,
            &dash(WF, "/status"),
            &[("authorization", &bearer(token))],
        )
        .await;
        assert_eq!(r.status, 401, "{}", r.describe());
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\"")
        );
    }
    // Revoking a token in use: refused once its cached identity expires (cache_ttl).
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
    let w = world("cache_ttl = \"60s\"\ntimeout = \"300ms\"").await;
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
    let r = get_as(
        &w,
        &dash(WF, "/status"),
        &[("authorization", &bearer(SHARED_TOKEN))],
    )
    .await;
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
        let r = get_as(
            &w,
            &dash(WF, "/status"),
            &[("authorization", &bearer(STRANGER_TOKEN))],
        )
        .await;
        assert_eq!(r.status, 503, "{mode:?}: {}", r.describe());
    }
    w.reana.set_mode(Mode::Normal);
    w.reana.set_delay(Duration::from_secs(2));
    let r = get_as(
        &w,
        &dash(WF, "/status"),
        &[("authorization", &bearer(STRANGER_TOKEN))],
    )
    .await;
    assert_eq!(r.status, 503, "a slow reana-server: {}", r.describe());
    // Unavailability was not cached as a refusal: once reana-server answers, it counts.
    w.reana.set_delay(Duration::ZERO);
    let r = get_as(
        &w,
        &dash(WF, "/status"),
        &[("authorization", &bearer(STRANGER_TOKEN))],
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.describe());
}

#[tokio::test]
async fn one_credential_200_requests_at_most_two_calls_and_concurrent_misses_collapse() {
    let w = world("").await;
    w.reana.set_delay(Duration::from_millis(500));
    let url = w.gw.url(&dash(WF, "/status"));
    let first: Vec<_> = (0..20)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                http::get(&url, &[("authorization", &bearer(SHARED_TOKEN))])
                    .await
                    .status
            })
        })
        .collect();
    for task in first {
        assert_eq!(
            timeout(STEP, task).await.expect("in time").expect("task"),
            200
        );
    }
    assert_eq!(
        (w.reana.you_calls(), w.reana.status_calls()),
        (1, 1),
        "20 concurrent first requests"
    );
    w.reana.set_delay(Duration::ZERO);
    let mut conn = KeepAlive::connect(w.gw.public).await;
    let auth = bearer(OWNER_TOKEN);
    for _ in 0..200 {
        assert_eq!(
            conn.get(&dash(WF, "/status"), &[("authorization", &auth)])
                .await,
            200
        );
    }
    assert!(
        w.reana.you_calls() <= 1 + 2,
        "{} /api/you calls",
        w.reana.you_calls()
    );
}

/// One keep-alive HTTP/1.1 connection for request floods.
struct KeepAlive {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
}

impl KeepAlive {
    async fn connect(addr: std::net::SocketAddr) -> KeepAlive {
        let stream = timeout(STEP, tokio::net::TcpStream::connect(addr))
            .await
            .expect("in time")
            .expect("connect");
        let (sender, conn) = timeout(
            STEP,
            hyper::client::conn::http1::handshake(TokioIo::new(stream)),
        )
        .await
        .expect("in time")
        .expect("handshake");
        tokio::spawn(conn);
        KeepAlive { sender }
    }

    async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> u16 {
        let mut req = ::http::Request::get(path).header("host", "gw.test");
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let exchange = async {
            self.sender.ready().await.expect("connection usable");
            let resp = self
                .sender
                .send_request(req.body(Empty::new()).expect("request"))
                .await
                .expect("response");
            let status = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            status
        };
        timeout(STEP, exchange).await.expect("response in time")
    }
}

#[tokio::test]
async fn token_flood_from_one_address_is_limited_before_reana() {
    let w = world("").await;
    let start = Instant::now();
    let (mut limited, mut unauthorized) = (0, 0);
    let mut conn = KeepAlive::connect(w.gw.public).await;
    for i in 0..10_000 {
        match conn
            .get(
                &dash(WF, "/status"),
                &[("authorization", &format!("Bearer flood{i:017}"))],
            )
            .await
        {
            429 => limited += 1,
            401 => unauthorized += 1,
            other => panic!("unexpected {other}"),
        }
    }
    // Burst 20, then 1 per second: every other token was refused unverified.
    let secs = start.elapsed().as_secs_f64();
    assert!(
        limited >= 9_900,
        "{limited} of 10000 got 429 ({unauthorized} got 401)"
    );
    assert_eq!(w.reana.you_calls(), unauthorized);
    assert!(
        unauthorized as f64 <= 20.0 + secs.ceil() + 1.0,
        "{unauthorized} calls in {secs:.1} s"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    let w = world_with("", |t| {
        t.server("trusted_proxies = [\"127.0.0.1/32\"]")
            .table("[auth.rate_limit]\nburst = 3\nper_second = 0.01\n")
    })
    .await;
    let bad = [
        ("authorization", "Bearer Xx0_notARealTokenAtAll"),
        ("x-forwarded-for", "203.0.113.7"),
    ];
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(get_as(&w, &dash(WF, "/status"), &bad).await.status);
        }
        v
    };
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    let r = get_as(&w, &dash(WF, "/status"), &bad).await;
    // One failure refills in 1 / 0.01 = 100 s: that is the wait announced.
    let wait: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After seconds: {}", r.describe()));
    assert!((95..=100).contains(&wait), "{wait}: {}", r.describe());
    // The limited address is refused before its credential is looked at, good or not.
    let owner = bearer(OWNER_TOKEN);
    let same = [
        ("authorization", owner.as_str()),
        ("x-forwarded-for", "203.0.113.7"),
    ];
    assert_eq!(get_as(&w, &dash(WF, "/status"), &same).await.status, 429);
    // One call: the bad token's refusal was cached, the owner's token never looked at.
    assert_eq!(w.reana.you_calls(), 1);
    let other = [
        ("authorization", owner.as_str()),
        ("x-forwarded-for", "198.51.100.4, 203.0.113.8"),
    ];
    assert_eq!(get_as(&w, &dash(WF, "/status"), &other).await.status, 200);
    let seen = w.up.requests();
    let xff = seen
        .last()
        .and_then(|r| r.header("x-forwarded-for").map(str::to_owned));
    assert_eq!(xff.as_deref(), Some("198.51.100.4, 203.0.113.8, 127.0.0.1"));
}

#[tokio::test]
async fn ten_thousand_bad_tokens_leave_the_cache_bounded() {
    let reana = FakeReana::start().await;
    reana.add_user(OWNER, OWNER_TOKEN);
    let text = format!(
        "[auth.reana]\nserver_url = \"{}\"\ncache_max_entries = 1000\n[discovery]\nkind = \"static\"\n",
        reana.url()
    );
    let auth = Config::from_toml(&text).expect("config").auth;
    let a = Authenticator::new(&auth).expect("authenticator");
    let owner = Credential::new(CredentialSource::Bearer, OWNER_TOKEN);
    let id = timeout(STEP, a.authenticate(&owner))
        .await
        .expect("in time")
        .expect("owner");
    assert_eq!(id.user, OWNER);
    let flood = futures_util::stream::iter(0..10_000)
        .map(|i| {
            let a = &a;
            async move {
                let cred =
                    Credential::new(CredentialSource::QueryAccessToken, format!("bad{i:019}"));
                a.authenticate(&cred).await
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>();
    let results = timeout(WHOLE, flood)
        .await
        .expect("the flood finished in time");
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(dask_dashboard_gateway::auth::AuthError::Invalid(_)))));
    assert_eq!(reana.you_calls(), 10_001);
    assert!(
        a.cached_decisions() <= 1000,
        "{} cached decisions",
        a.cached_decisions()
    );
    // The owner's identity survived the flood: no new call.
    timeout(STEP, a.authenticate(&owner))
        .await
        .expect("in time")
        .expect("owner");
    assert_eq!(reana.you_calls(), 10_001);
}

#[tokio::test]
async fn generous_limiter_lets_a_flood_reach_reana_and_real_users_stay_cached() {
    let w = world_with("cache_max_entries = 1000", |t| {
        t.table("[auth.rate_limit]\nburst = 1000000\nper_second = 1000000.0\n")
    })
    .await;
    let owner = bearer(OWNER_TOKEN);
    assert_eq!(
        get_as(&w, &dash(WF, "/status"), &[("authorization", &owner)])
            .await
            .status,
        200
    );
    let addr = w.gw.public;
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            tokio::spawn(async move {
                let mut conn = KeepAlive::connect(addr).await;
                for i in (worker..10_000).step_by(8) {
                    let auth = format!("Bearer bad{i:019}");
                    let status = conn
                        .get(&dash(WF, "/status"), &[("authorization", &auth)])
                        .await;
                    assert_eq!(status, 401);
                }
            })
        })
        .collect();
    for worker in workers {
        timeout(WHOLE, worker)
            .await
            .expect("the flood finished in time")
            .expect("worker");
    }
    assert_eq!(w.reana.you_calls(), 10_001);
    assert_eq!(
        get_as(&w, &dash(WF, "/status"), &[("authorization", &owner)])
            .await
            .status,
        200
    );
    assert_eq!(
        w.reana.you_calls(),
        10_001,
        "the owner's cached identity was not evicted"
    );
}

#[tokio::test]
async fn credentials_never_reach_the_upstream() {
    let w = world("host_header = \"reana.example.org\"").await;
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
    let mut dumps: Vec<String> = requests.iter().map(upstream::Recorded::dump).collect();
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

#[tokio::test]
async fn websocket_closes_with_1008_at_jwt_exp() {
    let w = world("").await;
    let auth = bearer(&upstream::jwt_with_exp(OWNER, 2));
    let mut ws = open_ws(&w, &[("authorization", &auth)]).await;
    echo(&mut ws, "before expiry").await;
    let started = Instant::now();
    assert_eq!(close_code(&expect_close(&mut ws).await), Some(1008));
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn websocket_follows_revocation_and_end_of_sharing_but_survives_an_outage() {
    let w = world("cache_ttl = \"400ms\"\nnegative_ttl = \"100ms\"\ntimeout = \"300ms\"").await;
    let mut owner = open_ws(&w, &[("authorization", &bearer(OWNER_TOKEN))]).await;
    let mut shared = open_ws(&w, &[("authorization", &bearer(SHARED_TOKEN))]).await;
    // reana-server away for several re-check periods: the sockets stay open.
    w.reana.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    echo(&mut owner, "still here").await;
    echo(&mut shared, "me too").await;
    w.reana.restart().await;

    w.reana.unshare(WF_WS, SHARED);
    let started = Instant::now();
    assert_eq!(close_code(&expect_close(&mut shared).await), Some(1008));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    echo(&mut owner, "owner unaffected").await;

    w.reana.revoke(OWNER_TOKEN);
    let started = Instant::now();
    assert_eq!(close_code(&expect_close(&mut owner).await), Some(1008));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
