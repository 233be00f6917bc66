//! End-to-end WebSocket proxying through an in-process gateway to a Bokeh-like
//! WebSocket upstream written in the tests (`tests/upstream`): the handshake
//! (subprotocols, extensions, Origin, credentials), message relay, close codes,
//! limits, credential expiry and shutdown (SPEC §2, §4, §6).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
mod upstream;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::SinkExt;
use support::gateway::TestGateway;
use support::http::{self, websocket, Ws, WsRefused};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use upstream::{
    close_code, expect_close, next_data, next_message, pattern, CountingListener, GatewayToml,
    WsUpstream, STEP,
};

use upstream::fixture::{bearer, one_route, one_route_with, start, COOKIE, OWNER, WF};

fn ws_path(path: &str) -> String {
    format!("/dashboard/{WF}{path}")
}

/// Opens a WebSocket through `gw` to `path` with a valid bearer token and the
/// gateway's own origin; panics when refused.
async fn open(gw: &TestGateway, path: &str) -> Ws {
    let auth = bearer(gw);
    let origin = gw.origin();
    let headers = [
        ("authorization", auth.as_str()),
        ("origin", origin.as_str()),
    ];
    match websocket(&gw.ws_url(&ws_path(path)), &headers).await {
        Ok((ws, _)) => ws,
        Err(e) => panic!("the handshake through the gateway failed: {e:?}"),
    }
}

/// The handshake response returned by `support::http::websocket`.
type Head = ::http::Response<Option<Vec<u8>>>;

fn refused_status(result: Result<(Ws, Head), WsRefused>) -> (u16, String) {
    match result {
        Ok((_, resp)) => panic!("the handshake succeeded: {resp:?}"),
        Err(WsRefused::Status { status, body, .. }) => (status, body),
        Err(other) => panic!("the handshake failed without a status: {other:?}"),
    }
}

async fn send(ws: &mut Ws, message: Message) {
    timeout(STEP, ws.send(message))
        .await
        .expect("sending took too long")
        .expect("send");
}

// ---------------------------------------------------------------------------------
// Handshake.

#[tokio::test]
async fn subprotocols_are_forwarded_verbatim_and_the_upstream_choice_returned() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    // A Bokeh session token: long, base64url with dots.
    let session = format!(
        "eyJzZXNzaW9uX2lkIjoi{}.{}",
        "QUJD".repeat(200),
        "x_-".repeat(40)
    );
    let offered = format!("bokeh, {session}");
    let auth = bearer(&gw);
    let origin = gw.origin();
    let headers = [
        ("authorization", auth.as_str()),
        ("origin", origin.as_str()),
        ("sec-websocket-protocol", offered.as_str()),
    ];
    let (mut ws, resp) = websocket(&gw.ws_url(&ws_path("/status/ws")), &headers)
        .await
        .expect("handshake");
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("bokeh")
    );
    let hs = up.only_handshake();
    assert_eq!(hs.header_all("sec-websocket-protocol"), [offered]);
    send(&mut ws, Message::text("hello")).await;
    assert_eq!(next_data(&mut ws).await, Message::text("hello"));
}

#[tokio::test]
async fn permessage_deflate_is_not_negotiated() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let auth = bearer(&gw);
    let origin = gw.origin();
    let headers = [
        ("authorization", auth.as_str()),
        ("origin", origin.as_str()),
        (
            "sec-websocket-extensions",
            "permessage-deflate; client_max_window_bits",
        ),
    ];
    let (mut ws, resp) = websocket(&gw.ws_url(&ws_path("/status/ws")), &headers)
        .await
        .expect("handshake");
    assert!(
        resp.headers().get("sec-websocket-extensions").is_none(),
        "{resp:?}"
    );
    let hs = up.only_handshake();
    assert!(
        hs.header("sec-websocket-extensions").is_none(),
        "the extension offer reached the upstream: {hs:?}"
    );
    // Uncompressed messages flow.
    let text = "a".repeat(10_000);
    send(&mut ws, Message::text(text.clone())).await;
    assert_eq!(next_data(&mut ws).await, Message::text(text));
}

#[tokio::test]
async fn foreign_origin_is_403_without_an_upstream_connection() {
    let counter = CountingListener::start().await;
    let gw = one_route(&counter.url()).await;
    let auth = bearer(&gw);
    for origin in [
        "https://evil.example.com",
        "null",
        "http://127.0.0.1.evil.example.com",
    ] {
        let headers = [("authorization", auth.as_str()), ("origin", origin)];
        let result = websocket(&gw.ws_url(&ws_path("/status/ws")), &headers).await;
        let (status, _) = refused_status(result);
        assert_eq!(status, 403, "{origin}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(counter.count(), 0, "the gateway connected to the upstream");
}

#[tokio::test]
async fn same_host_origin_with_another_scheme_is_accepted() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let auth = bearer(&gw);
    // TLS ends at the ingress: the page is https, the gateway sees plain http.
    let origin = format!("https://{}", gw.public);
    let headers = [
        ("authorization", auth.as_str()),
        ("origin", origin.as_str()),
    ];
    let (mut ws, _) = websocket(&gw.ws_url(&ws_path("/status/ws")), &headers)
        .await
        .expect("a same-host origin must be accepted");
    send(&mut ws, Message::text("ok")).await;
    assert_eq!(next_data(&mut ws).await, Message::text("ok"));
    assert_eq!(up.only_handshake().header("origin"), Some(origin.as_str()));
}

#[tokio::test]
async fn listed_allowed_origin_is_accepted() {
    let up = WsUpstream::start().await;
    let gw = start(
        GatewayToml::new()
            .route(WF, &up.url(), OWNER)
            .auth("allowed_origins = [\"https://reana.example.org\"]"),
    )
    .await;
    let auth = bearer(&gw);
    let url = gw.ws_url(&ws_path("/status/ws"));
    let headers = [
        ("authorization", auth.as_str()),
        ("origin", "https://reana.example.org"),
    ];
    let (mut ws, _) = websocket(&url, &headers)
        .await
        .expect("a listed origin must be accepted");
    send(&mut ws, Message::text("ok")).await;
    assert_eq!(next_data(&mut ws).await, Message::text("ok"));
    // Only that origin: a look-alike is not.
    let headers = [
        ("authorization", auth.as_str()),
        ("origin", "https://reana.example.org.evil.com"),
    ];
    let (status, _) = refused_status(websocket(&url, &headers).await);
    assert_eq!(status, 403);
    assert_eq!(up.handshakes().len(), 1);
}

#[tokio::test]
async fn no_credential_is_401_without_an_upstream_connection() {
    let counter = CountingListener::start().await;
    let gw = one_route(&counter.url()).await;
    let origin = gw.origin();
    let headers = [("origin", origin.as_str())];
    let result = websocket(&gw.ws_url(&ws_path("/status/ws")), &headers).await;
    let (status, _) = refused_status(result);
    assert_eq!(status, 401);
    // Another user's token: 403, still no connection.
    let other = format!("Bearer {}", gw.token("mallory"));
    let headers = [
        ("origin", origin.as_str()),
        ("authorization", other.as_str()),
    ];
    let result = websocket(&gw.ws_url(&ws_path("/status/ws")), &headers).await;
    assert_eq!(refused_status(result).0, 403);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(counter.count(), 0, "the gateway connected to the upstream");
}

#[tokio::test]
async fn credentials_are_stripped_from_the_upstream_handshake() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let token = gw.token(OWNER);
    let auth = format!("Bearer {token}");
    let origin = gw.origin();
    let cookie = format!("theme=dark; {COOKIE}={token}; session=reana-session-secret; lang=en");
    let path = ws_path(&format!(
        "/individual-plots/ws?x=1&access_token={token}&y=2&token=interactive-secret"
    ));
    let headers = [
        ("authorization", auth.as_str()),
        ("origin", origin.as_str()),
        ("cookie", cookie.as_str()),
    ];
    let (mut ws, _) = websocket(&gw.ws_url(&path), &headers)
        .await
        .expect("handshake");
    send(&mut ws, Message::text("ping-through")).await;
    assert_eq!(next_data(&mut ws).await, Message::text("ping-through"));

    let hs = up.only_handshake();
    assert_eq!(hs.uri, "/individual-plots/ws?x=1&y=2");
    assert!(hs.header("authorization").is_none(), "{hs:?}");
    assert_eq!(hs.header_all("cookie").join("; "), "theme=dark; lang=en");
    let dump = format!("{hs:?}");
    for secret in [token.as_str(), "reana-session-secret", "interactive-secret"] {
        assert!(
            !dump.contains(secret),
            "a credential reached the upstream: {dump}"
        );
    }
    // Host and Origin are the browser's (Tornado's same-origin check needs them).
    let host = gw.public.to_string();
    assert_eq!(hs.header("host"), Some(host.as_str()));
    assert_eq!(hs.header("origin"), Some(origin.as_str()));
}

#[tokio::test]
async fn hop_by_hop_headers_are_not_forwarded_in_the_handshake() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let auth = bearer(&gw);
    let origin = gw.origin();
    let headers = [
        ("authorization", auth.as_str()),
        ("origin", origin.as_str()),
        ("connection", "Upgrade, X-Client-Hop"),
        ("x-client-hop", "must-not-pass"),
        ("keep-alive", "timeout=5"),
        ("proxy-authorization", "Basic Zm9vOmJhcg=="),
        ("x-end-to-end", "kept"),
    ];
    let (mut ws, _) = websocket(&gw.ws_url(&ws_path("/status/ws")), &headers)
        .await
        .expect("handshake");
    send(&mut ws, Message::text("x")).await;
    assert_eq!(next_data(&mut ws).await, Message::text("x"));
    let hs = up.only_handshake();
    for name in ["x-client-hop", "keep-alive", "proxy-authorization"] {
        assert!(hs.header(name).is_none(), "{name} was forwarded: {hs:?}");
    }
    assert_eq!(hs.header("x-end-to-end"), Some("kept"));
}

#[tokio::test]
async fn expired_token_is_401_at_the_handshake() {
    let counter = CountingListener::start().await;
    let gw = one_route(&counter.url()).await;
    let auth = format!("Bearer {}", upstream::jwt_with_exp(OWNER, -3600));
    let origin = gw.origin();
    let headers = [
        ("authorization", auth.as_str()),
        ("origin", origin.as_str()),
    ];
    let result = websocket(&gw.ws_url(&ws_path("/status/ws")), &headers).await;
    assert_eq!(refused_status(result).0, 401);
    assert_eq!(counter.count(), 0);
}

#[tokio::test]
async fn unreachable_upstream_is_502_at_the_handshake() {
    let addr = upstream::refused_addr().await;
    let gw = one_route(&format!("http://{addr}")).await;
    let auth = bearer(&gw);
    let origin = gw.origin();
    let headers = [
        ("authorization", auth.as_str()),
        ("origin", origin.as_str()),
    ];
    let result = websocket(&gw.ws_url(&ws_path("/status/ws")), &headers).await;
    assert_eq!(refused_status(result).0, 502);
}

#[tokio::test]
async fn upstream_never_answering_the_handshake_is_504() {
    let hole = upstream::blackhole().await;
    let gw = start(
        GatewayToml::new()
            .route(WF, &hole.url(), OWNER)
            .upstream("response_timeout = \"300ms\""),
    )
    .await;
    let auth = bearer(&gw);
    let origin = gw.origin();
    let headers = [
        ("authorization", auth.as_str()),
        ("origin", origin.as_str()),
    ];
    let started = Instant::now();
    let result = websocket(&gw.ws_url(&ws_path("/status/ws")), &headers).await;
    assert_eq!(refused_status(result).0, 504);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(hole.count(), 1);
}

#[tokio::test]
async fn query_token_opens_a_websocket_without_reaching_the_upstream() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let token = gw.token(OWNER);
    let origin = gw.origin();
    let path = ws_path(&format!(
        "/status/ws?access_token={token}&bokeh-session-id=abc"
    ));
    let (mut ws, _) = websocket(&gw.ws_url(&path), &[("origin", origin.as_str())])
        .await
        .expect("a WebSocket handshake with a query token is not redirected");
    send(&mut ws, Message::text("q")).await;
    assert_eq!(next_data(&mut ws).await, Message::text("q"));
    assert_eq!(up.only_handshake().uri, "/status/ws?bokeh-session-id=abc");
}

#[tokio::test]
async fn cookie_credential_opens_a_websocket() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let cookie = format!("{COOKIE}={}", gw.token(OWNER));
    let origin = gw.origin();
    let headers = [("cookie", cookie.as_str()), ("origin", origin.as_str())];
    let (mut ws, _) = websocket(&gw.ws_url(&ws_path("/status/ws")), &headers)
        .await
        .expect("handshake with the gateway cookie");
    send(&mut ws, Message::text("c")).await;
    assert_eq!(next_data(&mut ws).await, Message::text("c"));
    assert!(up.only_handshake().header("cookie").is_none());
}

#[tokio::test]
async fn upstream_refusing_the_upgrade_with_404_yields_404() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let auth = bearer(&gw);
    let origin = gw.origin();
    let headers = [
        ("authorization", auth.as_str()),
        ("origin", origin.as_str()),
    ];
    let result = websocket(&gw.ws_url(&ws_path("/nope/refuse")), &headers).await;
    let (status, _) = refused_status(result);
    assert_eq!(status, 404);
    assert_eq!(up.only_handshake().uri, "/nope/refuse");
}

// ---------------------------------------------------------------------------------
// Relay.

#[tokio::test]
async fn text_binary_ping_and_pong_are_relayed() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let mut ws = open(&gw, "/status/ws").await;

    send(&mut ws, Message::text("héllo")).await;
    assert_eq!(next_data(&mut ws).await, Message::text("héllo"));
    let blob = Bytes::from(pattern(50_000, 3));
    send(&mut ws, Message::Binary(blob.clone())).await;
    assert_eq!(next_data(&mut ws).await, Message::Binary(blob));

    // Upstream ping reaches the client.
    send(&mut ws, Message::text("cmd:ping:from-upstream")).await;
    loop {
        match next_message(&mut ws).await {
            Some(Message::Ping(p)) if p == "from-upstream" => break,
            Some(Message::Pong(_)) => continue,
            other => panic!("expected the upstream's ping, got {other:?}"),
        }
    }
    // Client ping reaches the upstream, and a pong comes back.
    send(&mut ws, Message::Ping(Bytes::from_static(b"from-client"))).await;
    loop {
        match next_message(&mut ws).await {
            Some(Message::Pong(p)) if p == "from-client" => break,
            Some(Message::Ping(_) | Message::Pong(_)) => continue,
            other => panic!("expected a pong, got {other:?}"),
        }
    }
    up.wait_event(
        "the client's ping",
        |m| matches!(m, Message::Ping(p) if p == "from-client"),
    )
    .await;
    // An unsolicited client pong can only reach the upstream through the relay.
    send(&mut ws, Message::Pong(Bytes::from_static(b"unsolicited"))).await;
    up.wait_event(
        "the client's pong",
        |m| matches!(m, Message::Pong(p) if p == "unsolicited"),
    )
    .await;
}

#[tokio::test]
async fn upstream_close_code_and_reason_reach_the_client() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let mut ws = open(&gw, "/status/ws").await;
    send(&mut ws, Message::text("cmd:close:4001:bye")).await;
    let frame = expect_close(&mut ws)
        .await
        .expect("a close frame with a code");
    assert_eq!(u16::from(frame.code), 4001);
    assert_eq!(frame.reason.as_str(), "bye");
}

#[tokio::test]
async fn client_close_code_reaches_the_upstream() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let mut ws = open(&gw, "/status/ws").await;
    let frame = CloseFrame {
        code: CloseCode::from(4002),
        reason: "client done".into(),
    };
    timeout(STEP, ws.close(Some(frame)))
        .await
        .expect("close took too long")
        .expect("close");
    let got = up
        .wait_event("the client's close frame", |m| {
            matches!(m, Message::Close(_))
        })
        .await;
    let Message::Close(Some(got)) = got else {
        panic!("close without a frame: {got:?}")
    };
    assert_eq!(u16::from(got.code), 4002);
    assert_eq!(got.reason.as_str(), "client done");
}

#[tokio::test]
async fn client_initiated_close_handshake_completes() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let mut ws = open(&gw, "/status/ws").await;
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    };
    timeout(STEP, ws.send(Message::Close(Some(frame))))
        .await
        .expect("close took too long")
        .expect("close");
    // RFC 6455 §5.5.1: the gateway answers the client's close frame with one.
    let reply = expect_close(&mut ws).await;
    assert_eq!(close_code(&reply), Some(1000), "{reply:?}");
}

#[tokio::test]
async fn upstream_dropping_tcp_closes_the_client_with_1011() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let mut ws = open(&gw, "/status/ws").await;
    send(&mut ws, Message::text("cmd:drop")).await;
    let frame = expect_close(&mut ws).await;
    assert_eq!(close_code(&frame), Some(1011), "{frame:?}");
}

#[tokio::test]
async fn client_message_over_max_ws_message_closes_with_1009() {
    let up = WsUpstream::start().await;
    let gw = one_route_with(&up.url(), "max_ws_message = \"64KiB\"").await;
    let mut ws = open(&gw, "/status/ws").await;
    // Just under the limit passes.
    let fits = Bytes::from(pattern(60 * 1024, 4));
    send(&mut ws, Message::Binary(fits.clone())).await;
    assert_eq!(next_data(&mut ws).await, Message::Binary(fits));
    send(
        &mut ws,
        Message::Binary(Bytes::from(pattern(100 * 1024, 5))),
    )
    .await;
    let frame = expect_close(&mut ws).await;
    assert_eq!(close_code(&frame), Some(1009), "{frame:?}");
    let big_seen = up
        .events()
        .iter()
        .any(|m| matches!(m, Message::Binary(b) if b.len() > 64 * 1024));
    assert!(!big_seen, "the oversized message reached the upstream");
}

#[tokio::test]
async fn upstream_message_over_max_ws_message_closes_with_1009() {
    let up = WsUpstream::start().await;
    let gw = one_route_with(&up.url(), "max_ws_message = \"64KiB\"").await;
    let mut ws = open(&gw, "/status/ws").await;
    send(&mut ws, Message::text("cmd:big:102400")).await;
    let frame = expect_close(&mut ws).await;
    assert_eq!(close_code(&frame), Some(1009), "{frame:?}");
}

#[tokio::test]
async fn expiring_jwt_closes_the_socket_with_1008() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    // exp is whole seconds: the token lives between 1 and 2 s from now.
    let auth = format!("Bearer {}", gw.token_for(OWNER, Duration::from_secs(2)));
    let origin = gw.origin();
    let headers = [
        ("authorization", auth.as_str()),
        ("origin", origin.as_str()),
    ];
    let opened = Instant::now();
    let (mut ws, _) = websocket(&gw.ws_url(&ws_path("/status/ws")), &headers)
        .await
        .expect("handshake");
    send(&mut ws, Message::text("still valid")).await;
    assert_eq!(next_data(&mut ws).await, Message::text("still valid"));
    let frame = expect_close(&mut ws).await;
    let after = opened.elapsed();
    assert_eq!(close_code(&frame), Some(1008), "{frame:?}");
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(5),
        "closed after {after:?}"
    );
}

#[tokio::test]
async fn gateway_shutdown_closes_open_sockets_with_1001() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let mut ws = open(&gw, "/status/ws").await;
    send(&mut ws, Message::text("before")).await;
    assert_eq!(next_data(&mut ws).await, Message::text("before"));

    let stop = tokio::spawn(gw.stop());
    let frame = expect_close(&mut ws).await;
    assert_eq!(close_code(&frame), Some(1001), "{frame:?}");
    // Finish the close handshake so the relay can end.
    while let Ok(Some(Ok(_))) = timeout(STEP, futures_util::StreamExt::next(&mut ws)).await {}
    let stopped = timeout(Duration::from_secs(15), stop)
        .await
        .expect("run() did not return within 15 s")
        .expect("stop task");
    assert_eq!(stopped, Ok(()));
}

#[tokio::test]
async fn websocket_metrics_count_handshakes_and_open_sockets() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let mut ws = open(&gw, "/status/ws").await;
    send(&mut ws, Message::text("x")).await;
    assert_eq!(next_data(&mut ws).await, Message::text("x"));
    let text = http::get(&gw.admin_url("/metrics"), &[]).await.text();
    assert!(
        text.lines()
            .any(|l| l == "dashboard_gateway_requests_total{kind=\"websocket\",code=\"101\"} 1"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "dashboard_gateway_websockets_active 1"),
        "{text}"
    );
    // Closing brings the gauge back to zero.
    timeout(STEP, ws.close(None))
        .await
        .expect("close took too long")
        .expect("close");
    let deadline = Instant::now() + STEP;
    loop {
        let text = http::get(&gw.admin_url("/metrics"), &[]).await.text();
        if text
            .lines()
            .any(|l| l == "dashboard_gateway_websockets_active 0")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the gauge stayed up: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
