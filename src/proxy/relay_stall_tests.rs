//! A peer that stops reading while the other floods: control still acts, on a paused
//! clock, and the flood stays bounded by the pipes (backpressure, no growing queue).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use super::super::{relay, relay_checked, Recheck, RelayEnd, RelayLimits, CLOSE_WAIT};
use super::{limits, pairs, Ws, PIPE};

/// Longest the relay may take past the moment it should act.
const SLACK: Duration = Duration::from_secs(1);

/// Sends 16 KiB messages until a send fails; `sent` counts the bytes accepted.
fn flood(mut sink: SplitSink<Ws, Message>, sent: Arc<AtomicUsize>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let message = Message::binary(vec![0x42u8; 16 * 1024]);
        while sink.send(message.clone()).await.is_ok() {
            sent.fetch_add(16 * 1024, Ordering::SeqCst);
        }
    })
}

/// Waits until the flood stops making progress, then checks it stays stopped and
/// bounded by what the pipes and the relay can hold.
async fn assert_stalled(sent: &AtomicUsize) {
    sleep(Duration::from_secs(1)).await;
    let before = sent.load(Ordering::SeqCst);
    sleep(Duration::from_secs(2)).await;
    let after = sent.load(Ordering::SeqCst);
    assert_eq!(
        before, after,
        "the flood kept going while the reader stalled"
    );
    assert!(after <= 2 * PIPE + 64 * 1024, "{after} bytes in flight");
}

/// Reads `stream` as a live peer does, concurrently with the test: returns the first
/// close code (data before it skipped; `None` when the stream ended without one) once
/// the stream has ended, that is once the relay released the connection.
fn watch(mut stream: SplitStream<Ws>) -> JoinHandle<Option<CloseCode>> {
    tokio::spawn(async move {
        let mut code = None;
        while let Some(Ok(message)) = stream.next().await {
            if let (Message::Close(frame), None) = (message, code) {
                code = Some(frame.map(|f| f.code));
            }
        }
        code.flatten()
    })
}

/// The close code `watcher` saw, failing if the connection was not released.
async fn released(watcher: JoinHandle<Option<CloseCode>>) -> Option<CloseCode> {
    timeout(Duration::from_secs(30), watcher)
        .await
        .expect("the connection was not released")
        .expect("watcher task")
}

async fn ends_by(task: JoinHandle<RelayEnd>, by: Instant) -> RelayEnd {
    let end = timeout(Duration::from_secs(60), task)
        .await
        .expect("relay ended")
        .expect("relay task");
    assert!(Instant::now() <= by, "ended {:?} late", Instant::now() - by);
    end
}

/// Client stops reading while the scheduler floods; the relay must end as `want`
/// by `by` (the moment it should act, plus the bounded close).
async fn stalled_client(l: RelayLimits, recheck: Option<Recheck>, by: Instant, want: RelayEnd) {
    let (browser, gw_client, gw_upstream, scheduler) = pairs().await;
    let task = tokio::spawn(relay_checked(gw_client, gw_upstream, l, recheck));
    let (sink, stream) = scheduler.split();
    let watcher = watch(stream);
    let sent = Arc::new(AtomicUsize::new(0));
    let flooder = flood(sink, Arc::clone(&sent));
    assert_stalled(&sent).await;
    assert_eq!(ends_by(task, by).await, want);
    assert_eq!(released(watcher).await, Some(CloseCode::Away));
    let _ = timeout(Duration::from_secs(30), flooder).await;
    // The browser finds its connection gone once it reads again.
    let (_, from_gateway) = browser.split();
    released(watch(from_gateway)).await;
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_closed_at_expiry() {
    let mut l = limits();
    let at = Instant::now() + Duration::from_secs(5);
    l.deadline = Some(at);
    stalled_client(l, None, at + CLOSE_WAIT + SLACK, RelayEnd::Expired).await;
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_closed_at_shutdown() {
    let l = limits();
    let token = l.shutdown.clone();
    let at = Instant::now() + Duration::from_secs(5);
    tokio::spawn(async move {
        tokio::time::sleep_until(at).await;
        token.cancel();
    });
    stalled_client(l, None, at + CLOSE_WAIT + SLACK, RelayEnd::Shutdown).await;
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_closed_at_revocation() {
    // Access holds until the flood has long stalled, then is refused.
    let refused_from = Instant::now() + Duration::from_secs(5);
    let check = Recheck {
        every: Duration::from_millis(50),
        check: Box::new(move || Box::pin(async move { Instant::now() < refused_from })),
    };
    let by = refused_from + Duration::from_millis(50) + CLOSE_WAIT + SLACK;
    stalled_client(limits(), Some(check), by, RelayEnd::Revoked).await;
}

#[tokio::test(start_paused = true)]
async fn a_client_that_takes_nothing_is_dropped_after_the_write_timeout() {
    let (_browser, gw_client, gw_upstream, scheduler) = pairs().await;
    let mut l = limits();
    l.write_timeout = Duration::from_secs(2);
    let start = Instant::now();
    let task = tokio::spawn(relay(gw_client, gw_upstream, l));
    let (sink, stream) = scheduler.split();
    let watcher = watch(stream);
    let flooder = flood(sink, Arc::new(AtomicUsize::new(0)));
    let by = start + Duration::from_secs(2) + CLOSE_WAIT + SLACK;
    assert_eq!(ends_by(task, by).await, RelayEnd::ClientStalled);
    assert!(start.elapsed() >= Duration::from_secs(2));
    assert_eq!(released(watcher).await, Some(CloseCode::Away));
    let _ = timeout(Duration::from_secs(30), flooder).await;
}

/// Scheduler stops reading while the client floods.
async fn stalled_scheduler(l: RelayLimits, by: Instant, want: RelayEnd, code: CloseCode) {
    let (browser, gw_client, gw_upstream, _scheduler) = pairs().await;
    let task = tokio::spawn(relay(gw_client, gw_upstream, l));
    let (sink, stream) = browser.split();
    let watcher = watch(stream);
    let sent = Arc::new(AtomicUsize::new(0));
    let flooder = flood(sink, Arc::clone(&sent));
    assert_eq!(ends_by(task, by).await, want);
    assert_eq!(released(watcher).await, Some(code));
    let _ = timeout(Duration::from_secs(30), flooder).await;
    assert!(sent.load(Ordering::SeqCst) <= 2 * PIPE + 64 * 1024);
}

#[tokio::test(start_paused = true)]
async fn a_scheduler_that_stops_reading_does_not_delay_expiry() {
    let mut l = limits();
    let at = Instant::now() + Duration::from_secs(5);
    l.deadline = Some(at);
    stalled_scheduler(
        l,
        at + CLOSE_WAIT + SLACK,
        RelayEnd::Expired,
        CloseCode::Policy,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_scheduler_that_takes_nothing_is_dropped_after_the_write_timeout() {
    let mut l = limits();
    l.write_timeout = Duration::from_secs(2);
    let by = Instant::now() + Duration::from_secs(2) + CLOSE_WAIT + SLACK;
    stalled_scheduler(l, by, RelayEnd::UpstreamStalled, CloseCode::Error).await;
}
