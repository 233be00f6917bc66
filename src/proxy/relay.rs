//! The WebSocket message pump between a client and a scheduler, generic over any
//! `Sink + Stream` of tungstenite messages so it can be tested without sockets.
//!
//! Every message kind is relayed as it comes (text, binary, ping, pong, close with
//! its code and reason). When one side ends, the other is closed with a code that
//! says why: 1001 going away, 1008 credential expired, 1009 too large, 1011 upstream
//! lost.

use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::error::Error as WsError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// How long the closing side waits for the other side's close reply.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Limits that can end a relay.
#[derive(Debug, Clone)]
pub struct RelayLimits {
    /// No message either way for this long closes both sides (1001).
    pub idle: Duration,
    /// The caller's credential expires at this instant (client closed with 1008).
    pub deadline: Option<Instant>,
    /// Gateway shutdown (both sides closed with 1001).
    pub shutdown: CancellationToken,
}

/// Why a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// The client sent a close frame.
    ClientClosed,
    /// The scheduler sent a close frame.
    UpstreamClosed,
    /// The client's connection broke without a close frame.
    ClientLost,
    /// The scheduler's connection broke without a close frame.
    UpstreamLost,
    /// A message exceeded the size limit.
    TooLarge,
    /// No traffic for the idle timeout.
    Idle,
    /// The credential expired.
    Expired,
    /// The gateway is shutting down.
    Shutdown,
}

fn close(code: CloseCode, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// Sends a close frame and waits (bounded) for the peer to finish the handshake.
async fn close_side<S>(side: &mut S, frame: Message)
where
    S: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    if side.send(frame).await.is_err() {
        return;
    }
    let _ = timeout(CLOSE_WAIT, async {
        while let Some(Ok(m)) = side.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
}

/// Relays messages until one side ends; returns why.
pub async fn relay<C, U>(mut client: C, mut upstream: U, limits: RelayLimits) -> RelayEnd
where
    C: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
    U: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    let far_future = Instant::now() + Duration::from_secs(86400 * 365);
    let deadline = sleep_until(limits.deadline.unwrap_or(far_future));
    tokio::pin!(deadline);
    let idle = sleep_until(Instant::now() + limits.idle);
    tokio::pin!(idle);
    loop {
        tokio::select! {
            msg = client.next() => match msg {
                Some(Ok(Message::Close(frame))) => {
                    // Completes the client's close handshake (tungstenite queued the reply).
                    let _ = client.flush().await;
                    close_side(&mut upstream, Message::Close(frame)).await;
                    return RelayEnd::ClientClosed;
                }
                Some(Ok(m)) => {
                    if upstream.send(m).await.is_err() {
                        close_side(&mut client, close(CloseCode::Error, "dask scheduler connection lost")).await;
                        return RelayEnd::UpstreamLost;
                    }
                }
                Some(Err(WsError::Capacity(_))) => {
                    let frame = close(CloseCode::Size, "message too large");
                    let _ = client.send(frame.clone()).await;
                    close_side(&mut upstream, frame).await;
                    return RelayEnd::TooLarge;
                }
                Some(Err(_)) | None => {
                    close_side(&mut upstream, close(CloseCode::Away, "client went away")).await;
                    return RelayEnd::ClientLost;
                }
            },
            msg = upstream.next() => match msg {
                Some(Ok(Message::Close(frame))) => {
                    let _ = upstream.flush().await;
                    close_side(&mut client, Message::Close(frame)).await;
                    return RelayEnd::UpstreamClosed;
                }
                Some(Ok(m)) => {
                    if client.send(m).await.is_err() {
                        close_side(&mut upstream, close(CloseCode::Away, "client went away")).await;
                        return RelayEnd::ClientLost;
                    }
                }
                Some(Err(WsError::Capacity(_))) => {
                    let frame = close(CloseCode::Size, "message too large");
                    let _ = upstream.send(frame.clone()).await;
                    close_side(&mut client, frame).await;
                    return RelayEnd::TooLarge;
                }
                Some(Err(_)) | None => {
                    close_side(&mut client, close(CloseCode::Error, "dask scheduler connection lost")).await;
                    return RelayEnd::UpstreamLost;
                }
            },
            () = &mut idle => {
                let frame = close(CloseCode::Away, "idle timeout");
                let _ = upstream.send(frame.clone()).await;
                close_side(&mut client, frame).await;
                return RelayEnd::Idle;
            }
            () = &mut deadline => {
                let _ = upstream.send(close(CloseCode::Away, "client credential expired")).await;
                close_side(&mut client, close(CloseCode::Policy, "credential expired")).await;
                return RelayEnd::Expired;
            }
            () = limits.shutdown.cancelled() => {
                let frame = close(CloseCode::Away, "gateway shutting down");
                let _ = upstream.send(frame.clone()).await;
                close_side(&mut client, frame).await;
                return RelayEnd::Shutdown;
            }
        }
        idle.as_mut().reset(Instant::now() + limits.idle);
    }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
