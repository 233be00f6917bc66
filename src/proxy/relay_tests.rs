//! Relay tests over in-memory pipes: both ends are real tungstenite streams.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::DuplexStream;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use super::{relay, RelayEnd, RelayLimits};

type Ws = WebSocketStream<DuplexStream>;

const T: Duration = Duration::from_secs(5);

/// (browser, gateway's client side, gateway's upstream side, scheduler)
async fn pairs(max: Option<usize>) -> (Ws, Ws, Ws, Ws) {
    let config = WebSocketConfig::default()
        .max_message_size(max)
        .max_frame_size(max);
    let (a, b) = tokio::io::duplex(1 << 20);
    let (c, d) = tokio::io::duplex(1 << 20);
    (
        WebSocketStream::from_raw_socket(a, Role::Client, None).await,
        WebSocketStream::from_raw_socket(b, Role::Server, Some(config)).await,
        WebSocketStream::from_raw_socket(c, Role::Client, Some(config)).await,
        WebSocketStream::from_raw_socket(d, Role::Server, None).await,
    )
}

fn limits() -> RelayLimits {
    RelayLimits {
        idle: Duration::from_secs(60),
        deadline: None,
        shutdown: CancellationToken::new(),
    }
}

async fn next(ws: &mut Ws) -> Message {
    match timeout(T, ws.next()).await {
        Ok(Some(Ok(m))) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Keeps reading so that the close handshake's reply is flushed, as a real peer does.
fn drain(mut ws: Ws) {
    tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
}

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

#[tokio::test]
async fn relays_every_message_kind_both_ways() {
    let (mut browser, gw_client, gw_upstream, mut scheduler) = pairs(None).await;
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
    // The scheduler sees the gateway's automatic pong and the browser's relayed one.
    let mut pongs = Vec::new();
    while pongs.len() < 2 {
        if let Message::Pong(p) = next(&mut scheduler).await {
            pongs.push(p.to_vec());
        }
    }
    assert!(pongs.contains(&vec![7u8]));
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
    assert_eq!(
        timeout(T, task).await.unwrap().unwrap(),
        RelayEnd::UpstreamClosed
    );
}

#[tokio::test]
async fn client_close_code_reaches_upstream() {
    let (mut browser, gw_client, gw_upstream, mut scheduler) = pairs(None).await;
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
    assert_eq!(
        timeout(T, task).await.unwrap().unwrap(),
        RelayEnd::ClientClosed
    );
}

#[tokio::test]
async fn lost_upstream_closes_client_with_1011() {
    let (browser, gw_client, gw_upstream, scheduler) = pairs(None).await;
    let task = tokio::spawn(relay(gw_client, gw_upstream, limits()));
    drop(scheduler);
    expect_close(browser, CloseCode::Error).await;
    assert_eq!(
        timeout(T, task).await.unwrap().unwrap(),
        RelayEnd::UpstreamLost
    );
}

#[tokio::test]
async fn lost_client_closes_upstream_with_1001() {
    let (browser, gw_client, gw_upstream, scheduler) = pairs(None).await;
    let task = tokio::spawn(relay(gw_client, gw_upstream, limits()));
    drop(browser);
    expect_close(scheduler, CloseCode::Away).await;
    assert_eq!(
        timeout(T, task).await.unwrap().unwrap(),
        RelayEnd::ClientLost
    );
}

#[tokio::test]
async fn expiry_closes_client_with_1008() {
    let (browser, gw_client, gw_upstream, scheduler) = pairs(None).await;
    let mut l = limits();
    l.deadline = Some(Instant::now() + Duration::from_millis(200));
    let task = tokio::spawn(relay(gw_client, gw_upstream, l));
    expect_close(browser, CloseCode::Policy).await;
    expect_close(scheduler, CloseCode::Away).await;
    assert_eq!(timeout(T, task).await.unwrap().unwrap(), RelayEnd::Expired);
}

#[tokio::test]
async fn shutdown_closes_both_with_1001() {
    let (browser, gw_client, gw_upstream, scheduler) = pairs(None).await;
    let l = limits();
    let token = l.shutdown.clone();
    let task = tokio::spawn(relay(gw_client, gw_upstream, l));
    token.cancel();
    expect_close(browser, CloseCode::Away).await;
    expect_close(scheduler, CloseCode::Away).await;
    assert_eq!(timeout(T, task).await.unwrap().unwrap(), RelayEnd::Shutdown);
}

#[tokio::test]
async fn idle_sockets_are_closed_but_traffic_keeps_them_open() {
    let (mut browser, gw_client, gw_upstream, mut scheduler) = pairs(None).await;
    let mut l = limits();
    l.idle = Duration::from_millis(300);
    let task = tokio::spawn(relay(gw_client, gw_upstream, l));
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        scheduler.send(Message::text("tick")).await.unwrap();
        assert_eq!(next(&mut browser).await, Message::text("tick"));
    }
    expect_close(browser, CloseCode::Away).await;
    assert_eq!(timeout(T, task).await.unwrap().unwrap(), RelayEnd::Idle);
}

#[tokio::test]
async fn oversized_message_closes_with_1009() {
    let (browser, gw_client, gw_upstream, mut scheduler) = pairs(Some(1024)).await;
    let task = tokio::spawn(relay(gw_client, gw_upstream, limits()));
    scheduler
        .send(Message::binary(vec![0u8; 4096]))
        .await
        .unwrap();
    expect_close(browser, CloseCode::Size).await;
    expect_close(scheduler, CloseCode::Size).await;
    assert_eq!(timeout(T, task).await.unwrap().unwrap(), RelayEnd::TooLarge);
}
