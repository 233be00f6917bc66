//! The WebSocket message pump between a client and a scheduler, generic over any
//! `Sink + Stream` of tungstenite messages so it can be tested without sockets.
//!
//! Every message kind is relayed as it comes (text, binary, ping, pong, close with
//! its code and reason). When one side ends, the other is closed with a code that
//! says why: 1001 going away, 1008 credential expired or revoked, 1009 too large,
//! 1011 upstream lost.

use std::time::Duration;

use futures_util::future::BoxFuture;
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

/// A periodic check that the client may still watch: `check` runs every `every`
/// (concurrently with the relay, so messages keep flowing meanwhile); `false` closes
/// the client with 1008 and the scheduler with 1001.
pub struct Recheck {
    /// Time between checks.
    pub every: Duration,
    /// Resolves to whether access is still granted.
    pub check: Box<dyn FnMut() -> BoxFuture<'static, bool> + Send>,
}

impl std::fmt::Debug for Recheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recheck")
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

/// Resolves when a check of `recheck` says no; never without one.
async fn revoked(recheck: Option<Recheck>) {
    let Some(mut recheck) = recheck else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(recheck.every).await;
        if !(recheck.check)().await {
            return;
        }
    }
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
    /// A periodic re-check refused the credential (revoked, sharing ended).
    Revoked,
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

/// Sends `to_upstream` to the scheduler without waiting for its reply, then closes
/// the client with `to_client` (waiting, bounded, for its reply).
async fn end_both<C, U>(client: &mut C, upstream: &mut U, to_client: Message, to_upstream: Message)
where
    C: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
    U: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    let _ = upstream.send(to_upstream).await;
    close_side(client, to_client).await;
}

/// One end of the relay.
#[derive(Debug, Clone, Copy)]
enum Side {
    Client,
    Upstream,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Client => Side::Upstream,
            Side::Upstream => Side::Client,
        }
    }

    fn closed(self) -> RelayEnd {
        match self {
            Side::Client => RelayEnd::ClientClosed,
            Side::Upstream => RelayEnd::UpstreamClosed,
        }
    }

    fn lost(self) -> RelayEnd {
        match self {
            Side::Client => RelayEnd::ClientLost,
            Side::Upstream => RelayEnd::UpstreamLost,
        }
    }

    /// The close frame telling the other side that this one was lost.
    fn lost_frame(self) -> Message {
        match self {
            Side::Client => close(CloseCode::Away, "client went away"),
            Side::Upstream => close(CloseCode::Error, "dask scheduler connection lost"),
        }
    }
}

/// Handles one item read from `side` (`from`), relaying it to `to`; returns why the
/// relay ends, if it does.
async fn pass<A, B>(
    msg: Option<Result<Message, WsError>>,
    from: &mut A,
    to: &mut B,
    side: Side,
) -> Option<RelayEnd>
where
    A: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
    B: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    match msg {
        Some(Ok(Message::Close(frame))) => {
            // Completes the sender's close handshake (tungstenite queued the reply).
            let _ = from.flush().await;
            close_side(to, Message::Close(frame)).await;
            Some(side.closed())
        }
        Some(Ok(m)) => {
            if to.send(m).await.is_err() {
                close_side(from, side.other().lost_frame()).await;
                return Some(side.other().lost());
            }
            None
        }
        Some(Err(WsError::Capacity(_))) => {
            let frame = close(CloseCode::Size, "message too large");
            let _ = from.send(frame.clone()).await;
            close_side(to, frame).await;
            Some(RelayEnd::TooLarge)
        }
        Some(Err(_)) | None => {
            close_side(to, side.lost_frame()).await;
            Some(side.lost())
        }
    }
}

/// Relays messages until one side ends; returns why.
pub async fn relay<C, U>(client: C, upstream: U, limits: RelayLimits) -> RelayEnd
where
    C: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
    U: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    relay_checked(client, upstream, limits, None).await
}

/// [`relay`], plus an optional periodic [`Recheck`] of the client's access.
pub async fn relay_checked<C, U>(
    mut client: C,
    mut upstream: U,
    limits: RelayLimits,
    recheck: Option<Recheck>,
) -> RelayEnd
where
    C: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
    U: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    let revoked = revoked(recheck);
    tokio::pin!(revoked);
    let far_future = Instant::now() + Duration::from_secs(86400 * 365);
    let deadline = sleep_until(limits.deadline.unwrap_or(far_future));
    tokio::pin!(deadline);
    let idle = sleep_until(Instant::now() + limits.idle);
    tokio::pin!(idle);
    loop {
        tokio::select! {
            msg = client.next() => {
                if let Some(end) = pass(msg, &mut client, &mut upstream, Side::Client).await {
                    return end;
                }
            }
            msg = upstream.next() => {
                if let Some(end) = pass(msg, &mut upstream, &mut client, Side::Upstream).await {
                    return end;
                }
            }
            () = &mut idle => {
                let frame = close(CloseCode::Away, "idle timeout");
                end_both(&mut client, &mut upstream, frame.clone(), frame).await;
                return RelayEnd::Idle;
            }
            () = &mut deadline => {
                let to_client = close(CloseCode::Policy, "credential expired");
                let to_upstream = close(CloseCode::Away, "client credential expired");
                end_both(&mut client, &mut upstream, to_client, to_upstream).await;
                return RelayEnd::Expired;
            }
            () = &mut revoked => {
                let to_client = close(CloseCode::Policy, "access revoked");
                let to_upstream = close(CloseCode::Away, "client access revoked");
                end_both(&mut client, &mut upstream, to_client, to_upstream).await;
                return RelayEnd::Revoked;
            }
            () = limits.shutdown.cancelled() => {
                let frame = close(CloseCode::Away, "gateway shutting down");
                end_both(&mut client, &mut upstream, frame.clone(), frame).await;
                return RelayEnd::Shutdown;
            }
        }
        idle.as_mut().reset(Instant::now() + limits.idle);
    }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;

#[cfg(test)]
mod recheck_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use futures_util::FutureExt;
    use tokio::io::DuplexStream;
    use tokio::time::timeout;
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::WebSocketStream;
    use tokio_util::sync::CancellationToken;

    use super::*;

    type Ws = WebSocketStream<DuplexStream>;
    const T: Duration = Duration::from_secs(5);

    async fn pair() -> (Ws, Ws) {
        let (a, b) = tokio::io::duplex(1 << 16);
        (
            WebSocketStream::from_raw_socket(a, Role::Client, None).await,
            WebSocketStream::from_raw_socket(b, Role::Server, None).await,
        )
    }

    fn limits() -> RelayLimits {
        RelayLimits {
            idle: Duration::from_secs(60),
            deadline: None,
            shutdown: CancellationToken::new(),
        }
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

    async fn close_code(ws: &mut Ws) -> Option<CloseCode> {
        loop {
            match timeout(T, ws.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code),
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }

    #[tokio::test]
    async fn a_failed_recheck_closes_with_1008_and_traffic_flows_before() {
        let (mut browser, gw_client) = pair().await;
        let (gw_upstream, mut scheduler) = pair().await;
        let calls = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(relay_checked(
            gw_client,
            gw_upstream,
            limits(),
            Some(recheck(3, Arc::clone(&calls))),
        ));
        browser.send(Message::text("hi")).await.expect("send");
        let got = timeout(T, scheduler.next()).await.ok().flatten();
        assert!(matches!(got, Some(Ok(Message::Text(_)))));
        let (b, s) = tokio::join!(close_code(&mut browser), close_code(&mut scheduler));
        assert_eq!((b, s), (Some(CloseCode::Policy), Some(CloseCode::Away)));
        tokio::spawn(async move { while let Some(Ok(_)) = browser.next().await {} });
        assert_eq!(
            timeout(T, task).await.ok().and_then(Result::ok),
            Some(RelayEnd::Revoked)
        );
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn no_recheck_never_revokes() {
        let mut never = std::pin::pin!(revoked(None));
        let waited = timeout(Duration::from_millis(100), &mut never).await;
        assert!(waited.is_err());
    }
}
