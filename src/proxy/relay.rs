//! The WebSocket relay between a client and a scheduler, generic over any pair of
//! byte streams so it can be tested over in-memory pipes.
//!
//! Frames pass byte for byte, each direction in its own [`Pump`]; the client's masks
//! stay as the browser chose them (the relay is the scheduler's only peer, so there is
//! no intermediary between them for masking to protect). The control path — credential
//! expiry, revocation, idle and write timeouts, shutdown — is polled beside the pumps
//! and never waits on a peer: a pump that cannot write returns `Pending` instead of
//! holding the relay.
//!
//! When the relay ends a connection itself it sends a close frame with a code that
//! says why (1001 going away, 1002 protocol error, 1008 credential expired or revoked,
//! 1009 too large, 1011 scheduler lost or not reading), waits for the reply at most
//! [`CLOSE_WAIT`], and drops the TCP connection. A close is only sent where the stream
//! toward that peer stands at a frame boundary; otherwise, and toward a peer that
//! stopped reading, the connection is dropped.

use std::future::poll_fn;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;

use super::frame::{close_frame, Scanner, Sender, Stop};
use super::pump::{Outbox, Pump, PumpEnd};

/// How long a close handshake the relay starts may take before the TCP connection is
/// dropped.
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// Limits that can end a relay.
#[derive(Debug, Clone)]
pub struct RelayLimits {
    /// No message either way for this long closes both sides (1001).
    pub idle: Duration,
    /// A peer that takes no data for this long is dropped; the other side is closed.
    pub write_timeout: Duration,
    /// Largest message relayed either way (1009 beyond).
    pub max_message: usize,
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
    /// The client took no data for the write timeout.
    ClientStalled,
    /// The scheduler took no data for the write timeout.
    UpstreamStalled,
    /// A message exceeded the size limit.
    TooLarge,
    /// A peer broke the framing rules.
    ProtocolError,
    /// No traffic for the idle timeout.
    Idle,
    /// The credential expired.
    Expired,
    /// A periodic re-check refused the credential (revoked, sharing ended).
    Revoked,
    /// The gateway is shutting down.
    Shutdown,
}

/// A close the relay sends: code and reason.
type Close = (u16, &'static str);

const AWAY: u16 = 1001;
const PROTOCOL: u16 = 1002;
const POLICY: u16 = 1008;
const TOO_LARGE: u16 = 1009;
const ERROR: u16 = 1011;

/// How the relay winds down.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// A peer's close frame was forwarded; the other peer's reply is forwarded too.
    Forwarded { from_client: bool },
    /// The relay closes each side with its frame, or drops it at once (`None`).
    Close {
        client: Option<Close>,
        upstream: Option<Close>,
        end: RelayEnd,
    },
}

impl Ending {
    fn both(close: Close, end: RelayEnd) -> Ending {
        Ending::Close {
            client: Some(close),
            upstream: Some(close),
            end,
        }
    }

    fn client_gone(end: RelayEnd) -> Ending {
        Ending::Close {
            client: None,
            upstream: Some((AWAY, "client went away")),
            end,
        }
    }

    fn upstream_gone(reason: &'static str, end: RelayEnd) -> Ending {
        Ending::Close {
            client: Some((ERROR, reason)),
            upstream: None,
            end,
        }
    }

    /// The client's pump (client → scheduler) ended.
    fn from_client_pump(end: PumpEnd) -> Ending {
        match end {
            PumpEnd::Stopped(Stop::Close) => Ending::Forwarded { from_client: true },
            PumpEnd::Stopped(Stop::TooLarge) => {
                Ending::both((TOO_LARGE, "message too large"), RelayEnd::TooLarge)
            }
            PumpEnd::Stopped(Stop::Protocol(reason)) => Ending::Close {
                client: Some((PROTOCOL, reason)),
                upstream: Some((AWAY, "client protocol error")),
                end: RelayEnd::ProtocolError,
            },
            PumpEnd::SourceLost => Ending::client_gone(RelayEnd::ClientLost),
            PumpEnd::DestinationLost => {
                Ending::upstream_gone("dask scheduler connection lost", RelayEnd::UpstreamLost)
            }
        }
    }

    /// The scheduler's pump (scheduler → client) ended.
    fn from_upstream_pump(end: PumpEnd) -> Ending {
        match end {
            PumpEnd::Stopped(Stop::Close) => Ending::Forwarded { from_client: false },
            PumpEnd::Stopped(Stop::TooLarge) => {
                Ending::both((TOO_LARGE, "message too large"), RelayEnd::TooLarge)
            }
            PumpEnd::Stopped(Stop::Protocol(reason)) => Ending::Close {
                client: Some((ERROR, "dask scheduler protocol error")),
                upstream: Some((PROTOCOL, reason)),
                end: RelayEnd::ProtocolError,
            },
            PumpEnd::SourceLost => {
                Ending::upstream_gone("dask scheduler connection lost", RelayEnd::UpstreamLost)
            }
            PumpEnd::DestinationLost => Ending::client_gone(RelayEnd::ClientLost),
        }
    }
}

/// What one poll of both pumps brought.
enum Step {
    /// A pump ended.
    Ended(Ending),
    /// A destination just stopped taking data: the watchdog must look sooner.
    Stalled,
}

/// Both peers and both directions.
struct Duplex<C, U> {
    client: C,
    upstream: U,
    /// Client → scheduler.
    up: Pump,
    /// Scheduler → client.
    down: Pump,
    last_read: Instant,
}

impl<C, U> Duplex<C, U>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Step> {
        let was_stalled = self.stalled();
        let up = self.up.poll_forward(
            cx,
            &mut self.client,
            &mut self.upstream,
            &mut self.last_read,
        );
        if let Poll::Ready(end) = up {
            return Poll::Ready(Step::Ended(Ending::from_client_pump(end)));
        }
        let down = self.down.poll_forward(
            cx,
            &mut self.upstream,
            &mut self.client,
            &mut self.last_read,
        );
        if let Poll::Ready(end) = down {
            return Poll::Ready(Step::Ended(Ending::from_upstream_pump(end)));
        }
        let now_stalled = self.stalled();
        if (now_stalled.0 && !was_stalled.0) || (now_stalled.1 && !was_stalled.1) {
            return Poll::Ready(Step::Stalled);
        }
        Poll::Pending
    }

    /// Whether the scheduler, and the client, refuse data.
    fn stalled(&self) -> (bool, bool) {
        (
            self.up.out.stalled_since.is_some(),
            self.down.out.stalled_since.is_some(),
        )
    }

    /// When the watchdog must next look: idle, or a stalled peer's write timeout.
    fn next_check(&self, limits: &RelayLimits) -> Instant {
        [
            Some(self.last_read + limits.idle),
            self.up.out.stalled_since.map(|t| t + limits.write_timeout),
            self.down
                .out
                .stalled_since
                .map(|t| t + limits.write_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| Instant::now() + limits.idle)
    }

    /// The watchdog's verdict at `now`.
    fn check(&self, limits: &RelayLimits, now: Instant) -> Option<Ending> {
        let overdue =
            |since: Option<Instant>| since.is_some_and(|t| now >= t + limits.write_timeout);
        if overdue(self.down.out.stalled_since) {
            return Some(Ending::Close {
                client: None,
                upstream: Some((AWAY, "client not reading")),
                end: RelayEnd::ClientStalled,
            });
        }
        if overdue(self.up.out.stalled_since) {
            return Some(Ending::Close {
                client: Some((ERROR, "dask scheduler not reading")),
                upstream: None,
                end: RelayEnd::UpstreamStalled,
            });
        }
        (now >= self.last_read + limits.idle)
            .then(|| Ending::both((AWAY, "idle timeout"), RelayEnd::Idle))
    }

    /// Ends the relay as `ending` says, within [`CLOSE_WAIT`], then drops both peers.
    async fn finish(mut self, ending: Ending) -> RelayEnd {
        let end = match ending {
            Ending::Forwarded { from_client } => {
                let Duplex {
                    client,
                    upstream,
                    up,
                    down,
                    last_read,
                } = &mut self;
                // The reply travels the other way; nothing else is read.
                let _ = timeout(
                    CLOSE_WAIT,
                    poll_fn(|cx| match from_client {
                        true => down.poll_forward(cx, upstream, client, last_read),
                        false => up.poll_forward(cx, client, upstream, last_read),
                    }),
                )
                .await;
                match from_client {
                    true => RelayEnd::ClientClosed,
                    false => RelayEnd::UpstreamClosed,
                }
            }
            Ending::Close {
                client: to_client,
                upstream: to_upstream,
                end,
            } => {
                let Duplex {
                    client,
                    upstream,
                    up,
                    down,
                    ..
                } = &mut self;
                let client_frame = to_client
                    .filter(|_| down.scanner.at_frame_boundary())
                    .map(|(code, reason)| close_frame(Sender::Server, code, reason));
                let upstream_frame = to_upstream
                    .filter(|_| up.scanner.at_frame_boundary())
                    .map(|(code, reason)| close_frame(Sender::Client, code, reason));
                let _ = timeout(
                    CLOSE_WAIT,
                    futures_util::future::join(
                        close_peer(client, &mut down.out, &mut up.scanner, client_frame),
                        close_peer(upstream, &mut up.out, &mut down.scanner, upstream_frame),
                    ),
                )
                .await;
                end
            }
        };
        // FIN toward both (a no-op wait for plain TCP; TLS sends its close_notify).
        let _ = timeout(
            Duration::from_secs(1),
            futures_util::future::join(self.client.shutdown(), self.upstream.shutdown()),
        )
        .await;
        end
    }
}

/// Sends `frame` to `peer` after what it is owed, then reads (and drops) what it sends
/// until its close reply or EOF. Without a frame, nothing is done: the caller drops the
/// connection.
async fn close_peer<P>(
    peer: &mut P,
    out: &mut Outbox,
    replies: &mut Scanner,
    frame: Option<Vec<u8>>,
) where
    P: AsyncRead + AsyncWrite + Unpin,
{
    let Some(frame) = frame else { return };
    out.push_own(&frame);
    if poll_fn(|cx| out.poll_drain(cx, peer)).await.is_err() {
        return;
    }
    // Reading on (rather than closing with unread data, which resets the connection
    // and can destroy the close frame in flight) until the reply, EOF, or the
    // caller's deadline; past a framing error the bytes are only drained.
    replies.skip_refused_frame();
    let mut buf = vec![0u8; 4096];
    loop {
        match peer.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if replies.scan(&buf[..n]).stop == Some(Stop::Close) {
                    return;
                }
            }
        }
    }
}

/// Relays frames until one side ends; returns why.
pub async fn relay<C, U>(client: C, upstream: U, limits: RelayLimits) -> RelayEnd
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    relay_checked(client, upstream, limits, None).await
}

/// [`relay`], plus an optional periodic [`Recheck`] of the client's access.
pub async fn relay_checked<C, U>(
    client: C,
    upstream: U,
    limits: RelayLimits,
    recheck: Option<Recheck>,
) -> RelayEnd
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let mut duplex = Duplex {
        client,
        upstream,
        up: Pump::new(Scanner::new(Sender::Client, limits.max_message)),
        down: Pump::new(Scanner::new(Sender::Server, limits.max_message)),
        last_read: Instant::now(),
    };
    let revoked = revoked(recheck);
    tokio::pin!(revoked);
    let far_future = Instant::now() + Duration::from_secs(86400 * 365);
    let deadline = sleep_until(limits.deadline.unwrap_or(far_future));
    tokio::pin!(deadline);
    let watchdog = sleep_until(duplex.next_check(&limits));
    tokio::pin!(watchdog);
    let ending = loop {
        tokio::select! {
            step = poll_fn(|cx| duplex.poll_step(cx)) => match step {
                Step::Ended(ending) => break ending,
                Step::Stalled => watchdog.as_mut().reset(duplex.next_check(&limits)),
            },
            () = &mut watchdog => match duplex.check(&limits, Instant::now()) {
                Some(ending) => break ending,
                None => watchdog.as_mut().reset(duplex.next_check(&limits)),
            },
            () = &mut deadline => break Ending::Close {
                client: Some((POLICY, "credential expired")),
                upstream: Some((AWAY, "client credential expired")),
                end: RelayEnd::Expired,
            },
            () = &mut revoked => break Ending::Close {
                client: Some((POLICY, "access revoked")),
                upstream: Some((AWAY, "client access revoked")),
                end: RelayEnd::Revoked,
            },
            () = limits.shutdown.cancelled() => {
                break Ending::both((AWAY, "gateway shutting down"), RelayEnd::Shutdown)
            }
        }
    };
    duplex.finish(ending).await
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
