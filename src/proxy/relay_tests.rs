//! Relay tests over in-memory pipes: the browser and the scheduler are real
//! tungstenite streams, the gateway's two sides the raw pipes the relay gets.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::{relay, relay_checked, revoked, Recheck, RelayEnd, RelayLimits};

#[path = "relay_stall_tests.rs"]
mod stall;

type Ws = WebSocketStream<DuplexStream>;

const T: Duration = Duration::from_secs(5);
/// Capacity of each in-memory pipe.
const PIPE: usize = 64 * 1024;

/// The browser, the gateway's client side, the gateway's scheduler side, the scheduler.
async fn pairs() -> (Ws, DuplexStream, DuplexStream, Ws) {
    let (browser, gw_client) = tokio::io::duplex(PIPE);
    let (gw_upstream, scheduler) = tokio::io::duplex(PIPE);
    (
        WebSocketStream::from_raw_socket(browser, Role::Client, None).await,
        gw_client,
        gw_upstream,
        WebSocketStream::from_raw_socket(scheduler, Role::Server, None).await,
    )
}

fn limits() -> RelayLimits {
    RelayLimits {
        idle: Duration::from_secs(600),
        write_timeout: Duration::from_secs(30),
        max_message: 1 << 20,
        deadline: None,
        shutdown: CancellationToken::new(),
    }
}

#[track_caller]
fn next(ws: &mut Ws) -> impl std::future::Future<Output = Message> + '_ {
    let caller = std::panic::Location::caller();
    async move {
        match timeout(T, ws.next()).await {
            Ok(Some(Ok(m))) => m,
            other => panic!("expected a message at {caller}, got {other:?}"),
        }
    }
}

/// Keeps reading so that the close handshake's reply is flushed, as a real peer does.
fn drain(mut ws: Ws) {
    tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
}

/// Reads up to the close frame and checks its code; then keeps reading.
async fn expect_close(mut ws: Ws, code: CloseCode) {
    loop {
        match next(&mut ws).await {
            Message::Close(Some(frame)) => {
                assert_eq!(frame.code, code, "reason: {}", frame.reason);
                drain(ws);
                return;
            }
            Message::Close(None) => panic!("close without code, wanted {code:?}"),
            _ => continue,
        }
    }
}

async fn ended(task: tokio::task::JoinHandle<RelayEnd>) -> RelayEnd {
    timeout(T, task)
        .await
        .expect("relay ended")
        .expect("relay task")
}

#[tokio::test]
async fn relays_every_message_kind_both_ways() {
    let (mut browser, gw_client, gw_upstream, mut scheduler) = pairs().await;
    let task = tokio::spawn(relay(gw_client, gw_upstream, limits()));
    browser.send(Message::text("hello")).await.unwrap();
    assert_eq!(next(&mut scheduler).await, Message::text("hello"));
    scheduler
        .send(Message::binary(vec![1u8, 2, 3]))
        .await
        .unwrap();
    assert_eq!(next(&mut browser).await, Message::binary(vec![1u8, 2, 3]));
    scheduler
        .send(Message::Ping(vec![9u8].into()))
        .await
        .unwrap();
    assert_eq!(next(&mut browser).await, Message::Ping(vec![9u8].into()));
    browser.send(Message::Pong(vec![7u8].into())).await.unwrap();
    // The relay answers no ping itself: the browser's pong (which replaces
    // tungstenite's queued automatic one) is what reaches the scheduler.
    loop {
        match next(&mut scheduler).await {
            Message::Pong(p) if p.as_ref() == [7u8] => break,
            Message::Pong(p) if p.as_ref() == [9u8] => continue,
            other => panic!("expected the browser's pong, got {other:?}"),
        }
    }
    scheduler
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Library(4001),
            reason: "bye".into(),
        })))
        .await
        .unwrap();
    match next(&mut browser).await {
        Message::Close(Some(f)) => {
            assert_eq!(f.code, CloseCode::Library(4001));
            assert_eq!(f.reason.as_str(), "bye");
        }
        other => panic!("expected close, got {other:?}"),
    }
    drain(browser);
    drain(scheduler);
    assert_eq!(ended(task).await, RelayEnd::UpstreamClosed);
}

#[tokio::test]
async fn large_and_pipelined_messages_pass_intact() {
    let (mut browser, gw_client, gw_upstream, mut scheduler) = pairs().await;
    let task = tokio::spawn(relay(gw_client, gw_upstream, limits()));
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let sender = tokio::spawn(async move {
        for i in 0..50u8 {
            browser.feed(Message::binary(vec![i; 1000])).await.unwrap();
        }
        browser.send(Message::binary(big.clone())).await.unwrap();
        (browser, big)
    });
    for i in 0..50u8 {
        assert_eq!(next(&mut scheduler).await, Message::binary(vec![i; 1000]));
    }
    let got = next(&mut scheduler).await;
    let (browser, big) = sender.await.unwrap();
    assert_eq!(got, Message::binary(big));
    drain(browser);
    drop(scheduler);
    assert_eq!(ended(task).await, RelayEnd::UpstreamLost);
}

#[tokio::test]
async fn fragmented_messages_pass_whole_and_count_against_the_limit() {
    let (mut browser, gw_client, gw_upstream, mut scheduler) = pairs().await;
    let mut l = limits();
    l.max_message = 4096;
    let task = tokio::spawn(relay(gw_client, gw_upstream, l));
    let part =
        |fin, opcode, byte: u8| Message::Frame(Frame::message(vec![byte; 1500], opcode, fin));
    browser
        .send(part(false, OpCode::Data(Data::Binary), 1))
        .await
        .unwrap();
    browser.send(Message::Ping(vec![5u8].into())).await.unwrap();
    browser
        .send(part(true, OpCode::Data(Data::Continue), 2))
        .await
        .unwrap();
    assert_eq!(next(&mut scheduler).await, Message::Ping(vec![5u8].into()));
    let whole = [vec![1u8; 1500], vec![2u8; 1500]].concat();
    assert_eq!(next(&mut scheduler).await, Message::binary(whole));
    // Three fragments of 1500 exceed 4096.
    for (fin, opcode) in [
        (false, OpCode::Data(Data::Binary)),
        (false, OpCode::Data(Data::Continue)),
        (true, OpCode::Data(Data::Continue)),
    ] {
        browser.send(part(fin, opcode, 3)).await.unwrap();
    }
    expect_close(browser, CloseCode::Size).await;
    expect_close(scheduler, CloseCode::Size).await;
    assert_eq!(ended(task).await, RelayEnd::TooLarge);
}

#[tokio::test]
async fn client_close_code_reaches_upstream() {
    let (mut browser, gw_client, gw_upstream, mut scheduler) = pairs().await;
    let task = tokio::spawn(relay(gw_client, gw_upstream, limits()));
    browser
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Library(4002),
            reason: "done".into(),
        })))
        .await
        .unwrap();
    match next(&mut scheduler).await {
        Message::Close(Some(f)) => {
            assert_eq!(f.code, CloseCode::Library(4002));
            assert_eq!(f.reason.as_str(), "done");
        }
        other => panic!("expected close, got {other:?}"),
    }
    drain(scheduler);
    // The browser's close handshake completes.
    assert!(matches!(next(&mut browser).await, Message::Close(_)));
    assert_eq!(ended(task).await, RelayEnd::ClientClosed);
}

#[tokio::test]
async fn lost_upstream_closes_client_with_1011() {
    let (browser, gw_client, gw_upstream, scheduler) = pairs().await;
    let task = tokio::spawn(relay(gw_client, gw_upstream, limits()));
    drop(scheduler);
    expect_close(browser, CloseCode::Error).await;
    assert_eq!(ended(task).await, RelayEnd::UpstreamLost);
}

#[tokio::test]
async fn lost_client_closes_upstream_with_1001() {
    let (browser, gw_client, gw_upstream, scheduler) = pairs().await;
    let task = tokio::spawn(relay(gw_client, gw_upstream, limits()));
    drop(browser);
    expect_close(scheduler, CloseCode::Away).await;
    assert_eq!(ended(task).await, RelayEnd::ClientLost);
}

#[tokio::test(start_paused = true)]
async fn expiry_closes_client_with_1008() {
    let (browser, gw_client, gw_upstream, scheduler) = pairs().await;
    let mut l = limits();
    l.deadline = Some(Instant::now() + Duration::from_millis(200));
    let task = tokio::spawn(relay(gw_client, gw_upstream, l));
    expect_close(browser, CloseCode::Policy).await;
    expect_close(scheduler, CloseCode::Away).await;
    assert_eq!(ended(task).await, RelayEnd::Expired);
}

#[tokio::test]
async fn shutdown_closes_both_with_1001() {
    let (browser, gw_client, gw_upstream, scheduler) = pairs().await;
    let l = limits();
    let token = l.shutdown.clone();
    let task = tokio::spawn(relay(gw_client, gw_upstream, l));
    token.cancel();
    expect_close(browser, CloseCode::Away).await;
    expect_close(scheduler, CloseCode::Away).await;
    assert_eq!(ended(task).await, RelayEnd::Shutdown);
}

#[tokio::test(start_paused = true)]
async fn idle_sockets_are_closed_but_traffic_keeps_them_open() {
    let (mut browser, gw_client, gw_upstream, mut scheduler) = pairs().await;
    let mut l = limits();
    l.idle = Duration::from_millis(300);
    let start = Instant::now();
    let task = tokio::spawn(relay(gw_client, gw_upstream, l));
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        scheduler.send(Message::text("tick")).await.unwrap();
        assert_eq!(next(&mut browser).await, Message::text("tick"));
    }
    expect_close(browser, CloseCode::Away).await;
    assert_eq!(ended(task).await, RelayEnd::Idle);
    let lived = start.elapsed();
    assert!(
        lived >= Duration::from_millis(1050),
        "closed after {lived:?}"
    );
}

#[tokio::test]
async fn oversized_message_closes_with_1009() {
    let (browser, gw_client, gw_upstream, mut scheduler) = pairs().await;
    let mut l = limits();
    l.max_message = 1024;
    let task = tokio::spawn(relay(gw_client, gw_upstream, l));
    scheduler
        .send(Message::binary(vec![0u8; 4096]))
        .await
        .unwrap();
    expect_close(browser, CloseCode::Size).await;
    expect_close(scheduler, CloseCode::Size).await;
    assert_eq!(ended(task).await, RelayEnd::TooLarge);
}

#[tokio::test]
async fn unmasked_client_frame_is_a_protocol_error() {
    let (mut browser, gw_client) = tokio::io::duplex(PIPE);
    let (gw_upstream, scheduler) = tokio::io::duplex(PIPE);
    let scheduler = WebSocketStream::from_raw_socket(scheduler, Role::Server, None).await;
    let task = tokio::spawn(relay(gw_client, gw_upstream, limits()));
    browser.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    let mut head = [0u8; 4];
    timeout(T, browser.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head[..2], [0x88, head[1] & 0x7f], "a close frame, unmasked");
    assert_eq!(u16::from_be_bytes([head[2], head[3]]), 1002);
    expect_close(scheduler, CloseCode::Away).await;
    drop(browser);
    assert_eq!(ended(task).await, RelayEnd::ProtocolError);
}

#[tokio::test(start_paused = true)]
async fn no_close_frame_lands_inside_a_frame() {
    let (mut browser, gw_client) = tokio::io::duplex(PIPE);
    let (gw_upstream, mut scheduler) = tokio::io::duplex(PIPE);
    let l = limits();
    let token = l.shutdown.clone();
    let task = tokio::spawn(relay(gw_client, gw_upstream, l));
    // A 1000-byte binary frame of which only 10 payload bytes arrive.
    let mut partial = vec![0x82, 126, 0x03, 0xe8];
    partial.extend_from_slice(&[7u8; 10]);
    scheduler.write_all(&partial).await.unwrap();
    let mut got = vec![0u8; partial.len()];
    timeout(T, browser.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, partial);
    token.cancel();
    // The client's connection is dropped: EOF, no close frame spliced in.
    let mut rest = Vec::new();
    timeout(T, browser.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty(), "bytes after the partial frame: {rest:?}");
    assert_eq!(ended(task).await, RelayEnd::Shutdown);
}

/// A recheck that answers `true` `allowed` times, then `false`, counting calls.
fn recheck(allowed: usize, calls: Arc<AtomicUsize>) -> Recheck {
    Recheck {
        every: Duration::from_millis(50),
        check: Box::new(move || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move { n < allowed }.boxed()
        }),
    }
}

#[tokio::test]
async fn a_failed_recheck_closes_with_1008_and_traffic_flows_before() {
    let (mut browser, gw_client, gw_upstream, mut scheduler) = pairs().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let task = tokio::spawn(relay_checked(
        gw_client,
        gw_upstream,
        limits(),
        Some(recheck(3, Arc::clone(&calls))),
    ));
    browser.send(Message::text("hi")).await.unwrap();
    assert_eq!(next(&mut scheduler).await, Message::text("hi"));
    expect_close(browser, CloseCode::Policy).await;
    expect_close(scheduler, CloseCode::Away).await;
    assert_eq!(ended(task).await, RelayEnd::Revoked);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn no_recheck_never_revokes() {
    let mut never = std::pin::pin!(revoked(None));
    let waited = timeout(Duration::from_millis(100), &mut never).await;
    assert!(waited.is_err());
}
