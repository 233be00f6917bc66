//! End-to-end WebSocket proxying through an in-process gateway to the harness's
//! Bokeh-like WebSocket upstream: message relay, close codes, limits, credential
//! expiry, shutdown and metrics here; the handshake (subprotocols, extensions,
//! Origin, credentials) in `proxy_ws/handshake.rs` (SPEC §2, §4, §6).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "proxy_ws/handshake.rs"]
mod handshake;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::SinkExt;
use support::fixture::{
    bearer, dash, one_route, one_route_with, open_owner_ws, owner_ws, routed, start, ws_as, COOKIE,
    OWNER,
};
use support::http;
use support::jwt;
use support::pattern::pattern;
use support::upstream::{blackhole, refused_addr, CountingListener, WsUpstream};
use support::wait::{within, STEP};
use support::ws::{
    close_code, echo, expect_close, next_data, next_message, refused_status, send, websocket,
};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// The status page's WebSocket, under the route's prefix.
const STATUS_WS: &str = "/status/ws";

/// Waits a moment for a connection the gateway should not make, then checks that
/// `counter` saw none.
async fn assert_not_contacted(counter: &CountingListener) {
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        counter.connections(),
        0,
        "the gateway connected to the upstream"
    );
}

// ---------------------------------------------------------------------------------
// Relay.

#[tokio::test]
async fn text_binary_ping_and_pong_are_relayed() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let mut ws = open_owner_ws(&gw, STATUS_WS).await;

    echo(&mut ws, "héllo").await;
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
    let mut ws = open_owner_ws(&gw, STATUS_WS).await;
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
    let mut ws = open_owner_ws(&gw, STATUS_WS).await;
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
    let mut ws = open_owner_ws(&gw, STATUS_WS).await;
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
    let mut ws = open_owner_ws(&gw, STATUS_WS).await;
    send(&mut ws, Message::text("cmd:drop")).await;
    let frame = expect_close(&mut ws).await;
    assert_eq!(close_code(&frame), Some(1011), "{frame:?}");
}

#[tokio::test]
async fn client_message_over_max_ws_message_closes_with_1009() {
    let up = WsUpstream::start().await;
    let gw = one_route_with(&up.url(), "max_ws_message", "64KiB").await;
    let mut ws = open_owner_ws(&gw, STATUS_WS).await;
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
    let gw = one_route_with(&up.url(), "max_ws_message", "64KiB").await;
    let mut ws = open_owner_ws(&gw, STATUS_WS).await;
    send(&mut ws, Message::text("cmd:big:102400")).await;
    let frame = expect_close(&mut ws).await;
    assert_eq!(close_code(&frame), Some(1009), "{frame:?}");
}

#[tokio::test]
async fn expiring_jwt_closes_the_socket_with_1008() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    // exp is whole seconds: the token lives between 1 and 2 s from now.
    let token = gw.token_for(OWNER, Duration::from_secs(2));
    let opened = Instant::now();
    let (mut ws, _) = ws_as(&gw, &token, STATUS_WS, &[]).await.expect("handshake");
    echo(&mut ws, "still valid").await;
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
    let mut ws = open_owner_ws(&gw, STATUS_WS).await;
    echo(&mut ws, "before").await;

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
    let mut ws = open_owner_ws(&gw, STATUS_WS).await;
    echo(&mut ws, "x").await;
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
    within("dashboard_gateway_websockets_active 0", STEP, || async {
        let text = http::get(&gw.admin_url("/metrics"), &[]).await.text();
        text.lines()
            .any(|l| l == "dashboard_gateway_websockets_active 0")
    })
    .await;
}
