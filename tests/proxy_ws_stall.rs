//! WebSocket proxying through an in-process gateway when a peer stops reading, and
//! the RFC 6455 handshake checks (SPEC §4, §6): a peer that takes no data neither
//! delays a JWT's expiry nor shutdown, is dropped after `ws_write_timeout`, and
//! holds the other side back (bounded buffering, not a growing queue); a malformed
//! handshake is refused before any scheduler is contacted; a fragmented message is
//! one message under `max_ws_message`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use support::fixture::{bearer, dash, one_route, one_route_with, routed, start, ws_as, OWNER};
use support::gateway::TestGateway;
use support::pattern::pattern;
use support::raw::{drain_until_dropped, upgrade_request, RawResponse, GOOD_KEY};
use support::upstream::{CountingListener, WsUpstream};
use support::wait::{until, STEP};
use support::ws::{close_code, expect_close, next_data, send, Ws};
use tokio::task::JoinHandle;
use tokio::time::{timeout, timeout_at};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// The size of the upstream's flood messages and of the client's messages toward
/// a stalled scheduler.
const MESSAGE: usize = 64 * 1024;

/// What the flooding side may have written while its reader takes nothing: kernel
/// socket buffers plus the relay's small ones, a few MiB on loopback.
const FLOOD_BOUND: usize = 32 << 20;

/// How much more the flooding side may write in a second once its reader stalled.
const FLOOD_GROWTH: usize = 1 << 20;

/// How long after a trigger (expiry, shutdown, write timeout) the gateway may take
/// to let go of both peers: about a second to act, at most 5 s for a close toward
/// a peer that is not reading, and a margin.
const RELEASE: Duration = Duration::from_secs(8);

/// Opens a WebSocket to the status page with `token` and the gateway's own origin.
async fn open(gw: &TestGateway, token: &str) -> Ws {
    match ws_as(gw, token, "/status/ws", &[]).await {
        Ok((ws, _)) => ws,
        Err(e) => panic!("the handshake through the gateway failed: {e:?}"),
    }
}

// ---------------------------------------------------------------------------------
// A client that stops reading while the scheduler floods it.

/// Opens a WebSocket, starts the upstream's flood of [`MESSAGE`]-byte messages and
/// returns once it flows; the caller then never reads the socket.
async fn flood_unread(gw: &TestGateway, up: &WsUpstream, token: &str) -> Ws {
    let mut ws = open(gw, token).await;
    send(&mut ws, Message::text(format!("cmd:flood:{MESSAGE}"))).await;
    until("the upstream's flood", || up.flooded_bytes() > 0).await;
    ws
}

/// The flood stays under [`FLOOD_BOUND`] and stops growing: two samples a second
/// apart, the first once the buffers had half a second to fill.
async fn assert_flood_held_back(up: &WsUpstream) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = up.flooded_bytes();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = up.flooded_bytes();
    assert!(
        second < FLOOD_BOUND,
        "the upstream wrote {second} bytes to a client that reads nothing"
    );
    assert!(
        second - first <= FLOOD_GROWTH,
        "the flood kept going while the client read nothing: {first} bytes, then \
         {second} a second later"
    );
}

/// After a trigger at `since`, within [`RELEASE`]: the upstream's connection ends
/// (a close frame it got says 1001), and the gateway drops the client's TCP
/// connection although the client never reads and never answers a close.
async fn assert_both_released(up: &WsUpstream, ws: &mut Ws, since: Instant, what: &str) {
    up.wait_released(what, since + RELEASE).await;
    let codes = up.close_codes();
    assert!(
        codes.iter().all(|c| *c == Some(1001)),
        "{what}: the upstream got close codes {codes:?}, expected 1001"
    );
    let drained = drain_until_dropped(ws.get_mut(), RELEASE, what).await;
    assert!(
        drained.bytes < FLOOD_BOUND,
        "{what}: the client read {drained:?} before the end"
    );
}

#[tokio::test]
async fn client_not_reading_a_flood_is_dropped_when_the_jwt_expires() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    // exp is whole seconds: the token lives 3 to 4 s, time for the samples before.
    let token = gw.token_for(OWNER, Duration::from_secs(4));
    let expires_by = Instant::now() + Duration::from_secs(4);
    let mut ws = flood_unread(&gw, &up, &token).await;
    assert_flood_held_back(&up).await;
    assert_eq!(up.open_connections(), 1, "released before the JWT expired");
    assert_both_released(&up, &mut ws, expires_by, "after the JWT expired").await;
}

#[tokio::test]
async fn shutdown_ends_a_websocket_whose_client_does_not_read() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let token = gw.token(OWNER);
    let mut ws = flood_unread(&gw, &up, &token).await;
    assert_flood_held_back(&up).await;
    let stopping = Instant::now();
    let stop = tokio::spawn(gw.stop());
    assert_both_released(&up, &mut ws, stopping, "after shutdown began").await;
    let left = Duration::from_secs(15).saturating_sub(stopping.elapsed());
    let stopped = timeout(left, stop)
        .await
        .expect("run() did not return within 15 s")
        .expect("stop task");
    assert_eq!(stopped, Ok(()));
}

#[tokio::test]
async fn client_not_reading_is_dropped_after_ws_write_timeout() {
    let up = WsUpstream::start().await;
    let gw = one_route_with(&up.url(), "ws_write_timeout", "1s").await;
    let mut ws = flood_unread(&gw, &up, &gw.token(OWNER)).await;
    let stalled = Instant::now() + Duration::from_secs(1);
    assert_both_released(&up, &mut ws, stalled, "after ws_write_timeout").await;
    assert!(up.flooded_bytes() < FLOOD_BOUND, "{}", up.flooded_bytes());
}

// ---------------------------------------------------------------------------------
// A scheduler that stops reading while the client sends.

/// Opens a WebSocket, stalls the upstream (`cmd:stall`), then keeps sending
/// [`MESSAGE`]-byte messages from a task (each send under [`STEP`]; they block
/// once the buffers are full) while the caller reads the returned half.
async fn send_to_stalled(
    gw: &TestGateway,
    up: &WsUpstream,
    token: &str,
) -> (SplitStream<Ws>, JoinHandle<()>) {
    let mut ws = open(gw, token).await;
    send(&mut ws, Message::text("cmd:stall")).await;
    until("the upstream to stall", || up.stalled() == 1).await;
    let (mut sink, stream) = ws.split();
    let sender = tokio::spawn(async move {
        let data = Bytes::from(pattern(MESSAGE, 6));
        while let Ok(Ok(())) = timeout(STEP, sink.send(Message::Binary(data.clone()))).await {}
    });
    (stream, sender)
}

/// Reads `stream` until a close frame, which must come before `deadline`.
async fn close_by(
    stream: &mut SplitStream<Ws>,
    deadline: Instant,
    what: &str,
) -> Option<CloseFrame> {
    loop {
        match timeout_at(deadline.into(), stream.next()).await {
            Err(_) => panic!("{what}: no close frame in time"),
            Ok(None) => panic!("{what}: the WebSocket ended without a close frame"),
            Ok(Some(Err(e))) => panic!("{what}: the WebSocket broke without a close frame: {e}"),
            Ok(Some(Ok(Message::Close(frame)))) => return frame,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

#[tokio::test]
async fn jwt_expiry_closes_the_client_with_1008_while_the_scheduler_does_not_read() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    // exp is whole seconds: the token lives 1 to 2 s.
    let token = gw.token_for(OWNER, Duration::from_secs(2));
    let expires_by = Instant::now() + Duration::from_secs(2);
    let (mut stream, sender) = send_to_stalled(&gw, &up, &token).await;
    let frame = close_by(&mut stream, expires_by + RELEASE, "after the JWT expired").await;
    assert_eq!(close_code(&frame), Some(1008), "{frame:?}");
    up.wait_released("the stalled upstream", expires_by + RELEASE)
        .await;
    sender.abort();
}

#[tokio::test]
async fn scheduler_not_reading_is_dropped_after_ws_write_timeout_with_1011() {
    let up = WsUpstream::start().await;
    let gw = one_route_with(&up.url(), "ws_write_timeout", "1s").await;
    let (mut stream, sender) = send_to_stalled(&gw, &up, &gw.token(OWNER)).await;
    let stalled = Instant::now() + Duration::from_secs(1);
    let frame = close_by(&mut stream, stalled + RELEASE, "after ws_write_timeout").await;
    assert_eq!(close_code(&frame), Some(1011), "{frame:?}");
    up.wait_released("the stalled upstream", stalled + RELEASE)
        .await;
    sender.abort();
}

// ---------------------------------------------------------------------------------
// RFC 6455 handshake checks.

/// Sends an upgrade to the status page's socket with a valid token and the
/// gateway's own origin, plus `ws_headers` (the handshake headers, none added).
async fn owner_upgrade(gw: &TestGateway, ws_headers: &[(&str, &str)]) -> RawResponse {
    let auth = bearer(gw);
    let origin = gw.origin();
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("Origin", origin.as_str()),
    ];
    headers.extend_from_slice(ws_headers);
    upgrade_request(gw.public, &dash("/status/ws"), &headers).await
}

/// Sends an upgrade with a valid token and the gateway's own origin (so only the
/// handshake headers can refuse it) plus `ws_headers`, to a gateway in front of a
/// listener that only counts connections; checks the status is `want` and that no
/// upstream connection was made. (`response_timeout` is short so that a handshake
/// forwarded by mistake is a quick 504, not a minute's wait.)
async fn assert_refused_before_upstream(ws_headers: &[(&str, &str)], want: u16) -> RawResponse {
    let counter = CountingListener::start().await;
    let gw = start(routed(&counter.url()).upstream("response_timeout", "1s")).await;
    let resp = owner_upgrade(&gw, ws_headers).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        (resp.status, counter.connections()),
        (want, 0),
        "(status, upstream connections) for {ws_headers:?}: {}",
        resp.describe()
    );
    resp
}

#[tokio::test]
async fn handshakes_with_a_missing_empty_or_wrong_sized_key_are_400() {
    for key in [
        None,
        Some(""),
        Some("not base64 at all!"),
        // Valid base64, of 8 bytes instead of 16.
        Some("AAECAwQFBgc="),
    ] {
        let mut headers = vec![("Sec-WebSocket-Version", "13")];
        headers.extend(key.map(|k| ("Sec-WebSocket-Key", k)));
        assert_refused_before_upstream(&headers, 400).await;
    }
}

/// RFC 6455 §4.2.2: a version the server does not understand gets 426 and the
/// versions it supports.
async fn assert_426_naming_13(ws_headers: &[(&str, &str)]) {
    let resp = assert_refused_before_upstream(ws_headers, 426).await;
    assert_eq!(
        resp.header_all("sec-websocket-version"),
        ["13"],
        "{}",
        resp.describe()
    );
}

#[tokio::test]
async fn handshake_with_version_8_is_426_naming_13() {
    assert_426_naming_13(&[
        ("Sec-WebSocket-Key", GOOD_KEY),
        ("Sec-WebSocket-Version", "8"),
    ])
    .await;
}

#[tokio::test]
async fn handshake_without_a_version_is_426_naming_13() {
    assert_426_naming_13(&[("Sec-WebSocket-Key", GOOD_KEY)]).await;
}

#[tokio::test]
async fn handshake_with_a_valid_key_and_version_13_is_101() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let headers = [
        ("Sec-WebSocket-Key", GOOD_KEY),
        ("Sec-WebSocket-Version", "13"),
    ];
    let resp = owner_upgrade(&gw, &headers).await;
    assert_eq!(resp.status, 101, "{}", resp.describe());
    let accept = derive_accept_key(GOOD_KEY.as_bytes());
    assert_eq!(resp.header_all("sec-websocket-accept"), [accept]);
    assert_eq!(up.handshakes().len(), 1);
}

// ---------------------------------------------------------------------------------
// Fragmented messages and max_ws_message.

/// Sends `data` as one binary message fragmented into `parts` frames.
async fn send_fragmented(ws: &mut Ws, data: &[u8], parts: usize) {
    let chunks: Vec<&[u8]> = data.chunks(data.len().div_ceil(parts)).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let opcode = match i {
            0 => OpCode::Data(Data::Binary),
            _ => OpCode::Data(Data::Continue),
        };
        let last = i + 1 == chunks.len();
        let frame = Frame::message(Bytes::copy_from_slice(chunk), opcode, last);
        send(ws, Message::Frame(frame)).await;
    }
}

/// The lengths of the binary messages the upstream received.
fn binary_lengths(up: &WsUpstream) -> Vec<usize> {
    up.events()
        .iter()
        .filter_map(|m| match m {
            Message::Binary(b) => Some(b.len()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn fragmented_message_under_max_ws_message_arrives_whole() {
    let up = WsUpstream::start().await;
    let gw = one_route_with(&up.url(), "max_ws_message", "64KiB").await;
    let mut ws = open(&gw, &gw.token(OWNER)).await;
    let data = pattern(60 * 1024, 8);
    send_fragmented(&mut ws, &data, 3).await;
    assert_eq!(next_data(&mut ws).await, Message::Binary(Bytes::from(data)));
    assert_eq!(binary_lengths(&up), [60 * 1024]);
}

#[tokio::test]
async fn fragmented_message_over_max_ws_message_closes_with_1009() {
    let up = WsUpstream::start().await;
    let gw = one_route_with(&up.url(), "max_ws_message", "64KiB").await;
    let mut ws = open(&gw, &gw.token(OWNER)).await;
    // Three frames of 30 KiB: each fits, the message does not.
    send_fragmented(&mut ws, &pattern(90 * 1024, 9), 3).await;
    let frame = expect_close(&mut ws).await;
    assert_eq!(close_code(&frame), Some(1009), "{frame:?}");
    assert_eq!(
        binary_lengths(&up),
        [0usize; 0],
        "the oversized message reached the upstream"
    );
}
