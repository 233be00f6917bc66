//! The two load modes of [`super::WsUpstream`]: a scheduler that floods its peer
//! with binary messages while still reading (`cmd:flood:<bytes>`), and one that
//! stops reading for good while keeping its connection open (`cmd:stall`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::support::pattern::pattern;

/// An empty unmasked ping frame: what a stalled scheduler writes to notice that
/// its connection was dropped.
const PROBE: [u8; 2] = [0x89, 0x00];

/// How often a stalled scheduler probes its connection.
const PROBE_EVERY: Duration = Duration::from_millis(200);

/// Counters shared by every connection of one upstream.
#[derive(Default)]
pub struct LoadCounters {
    /// Bytes of flood messages whose send completed, over all connections.
    pub flooded: AtomicUsize,
    /// Connections that stopped reading (`cmd:stall`).
    pub stalled: AtomicUsize,
}

/// Sends binary messages of `size` bytes until a send fails, counting the bytes
/// of each completed send, while still reading (and recording into `events`) what
/// the peer sends, so that a close frame from the gateway is seen. Returns when
/// either direction ends: the gateway closed or dropped the connection.
pub async fn flood(
    ws: WebSocketStream<TcpStream>,
    size: usize,
    counters: &LoadCounters,
    events: &Mutex<Vec<Message>>,
) {
    let (mut sink, mut stream) = ws.split();
    let message = Bytes::from(pattern(size, 11));
    let send = async {
        while sink.send(Message::Binary(message.clone())).await.is_ok() {
            counters.flooded.fetch_add(size, Ordering::SeqCst);
        }
    };
    let read = async {
        while let Some(Ok(m)) = stream.next().await {
            events.lock().expect("events lock").push(m);
        }
    };
    tokio::select! {
        () = send => {}
        () = read => {}
    }
}

/// Stops reading the connection for good and keeps it open; every
/// [`PROBE_EVERY`] writes a tiny ping, so that a connection the gateway dropped
/// (a write to it is answered with a reset) ends this function.
pub async fn stall(ws: WebSocketStream<TcpStream>, counters: &LoadCounters) {
    let mut tcp = ws.into_inner();
    counters.stalled.fetch_add(1, Ordering::SeqCst);
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        // A probe that cannot be written within a second is no sign of a drop.
        if let Ok(Err(_)) = timeout(Duration::from_secs(1), tcp.write_all(&PROBE)).await {
            return;
        }
    }
}
