//! Drain on shutdown: `/readyz` turns 503 at once, the public listener keeps
//! accepting for `server.drain_delay` so load balancers stop routing here first,
//! then stops, and `run` returns within `server.shutdown_grace`. The grace is one
//! deadline counted from the signal: the process exits 0 then, dropping what is
//! still open. Every child process is killed when a test ends, every wait has a
//! deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::config::GatewayConfig;
use support::gateway::TestGateway;
use support::http;
use support::jwt;
use support::process::GatewayProcess;
use support::upstream::{HttpUpstream, Reply};
use support::wait::STEP;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

#[tokio::test]
async fn drain_delay_keeps_accepting_with_readyz_503_then_stops() {
    let config = GatewayConfig::new()
        .server("drain_delay", "1500ms")
        .server("shutdown_grace", "5s");
    let mut gw = TestGateway::start(&config).await;
    let public = gw.url("");
    let readyz = gw.admin_url("/readyz");
    assert_eq!(http::get(&readyz, &[]).await.status, 200);

    let started = Instant::now();
    gw.begin_stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        http::get(&readyz, &[]).await.status,
        503,
        "readyz must turn 503 at once"
    );
    // Still inside drain_delay: a new connection is accepted and answered.
    let during = http::try_request("GET", &format!("{public}/favicon.ico"), &[], Vec::new()).await;
    assert_eq!(during.map(|r| r.status).ok(), Some(404));
    assert!(started.elapsed() < Duration::from_millis(1500));

    let result = tokio::time::timeout(Duration::from_secs(10), gw.stop()).await;
    let elapsed = started.elapsed();
    assert_eq!(result, Ok(Ok(())), "run must return Ok");
    assert!(
        elapsed >= Duration::from_millis(1500),
        "stopped before the drain delay: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "took longer than the grace: {elapsed:?}"
    );
    // After the drain the listener is closed.
    let after = http::try_request("GET", &format!("{public}/favicon.ico"), &[], Vec::new()).await;
    assert!(
        after.is_err(),
        "the listener must be closed after the drain: {after:?}"
    );
}

// ---------------------------------------------------------------------------------
// The deadline, on the real process: SIGTERM, then exit 0 at signal + grace even
// while a request is still open.

/// The route's workflow.
const WF: &str = "wf-1";

/// A gateway process with one route, to `upstream`, and the given `threads`,
/// `shutdown_grace` and `drain_delay`.
async fn process(upstream: &HttpUpstream, grace: &str, drain_delay: &str) -> GatewayProcess {
    let config = GatewayConfig::new()
        .server("threads", 2)
        .server("shutdown_grace", grace)
        .server("drain_delay", drain_delay)
        .upstream("response_timeout", "60s")
        .route(WF, &upstream.url(), "alice");
    GatewayProcess::start(&config).await
}

/// Opens a connection to the gateway and sends the owner's GET for `path`; returns
/// once the request has reached `upstream`.
async fn open_request(
    public: std::net::SocketAddr,
    upstream: &HttpUpstream,
    path: &str,
) -> TcpStream {
    let token = jwt::token("alice", Duration::from_secs(600));
    let mut stream = tokio::time::timeout(STEP, TcpStream::connect(public))
        .await
        .expect("connect timed out")
        .expect("connect");
    let head = format!(
        "GET /dashboard/{WF}{path} HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    upstream.wait_heads(1).await;
    stream
}

/// How far past the deadline the exit may come.
const LATE: Duration = Duration::from_millis(1500);

/// Signals the process, waits for its exit and checks that it came with code 0 at
/// `grace` after the signal (not before, and at most [`LATE`] after), and that the
/// open request's connection was closed.
async fn assert_exit_at_deadline(
    mut process: GatewayProcess,
    mut open: TcpStream,
    grace: Duration,
) {
    let signalled = process.terminate();
    let (status, at) = process.exited_by(signalled + grace + LATE + STEP).await;
    let took = at - signalled;
    assert_eq!(status.code(), Some(0), "{status}: {}", process.output());
    assert!(
        took >= grace - Duration::from_millis(50),
        "exited {took:?} after SIGTERM, before the {grace:?} grace: {}",
        process.output()
    );
    assert!(
        took <= grace + LATE,
        "exited {took:?} after SIGTERM, a grace of {grace:?} was configured: {}",
        process.output()
    );
    let mut rest = Vec::new();
    tokio::time::timeout(STEP, open.read_to_end(&mut rest))
        .await
        .expect("the open request's connection outlived the process")
        .ok();
}

#[tokio::test]
async fn a_request_that_outlives_the_grace_is_dropped_and_the_exit_is_0_at_the_deadline() {
    // A scheduler that reads the request and never answers.
    let upstream =
        HttpUpstream::start(|_| Reply::ok("never").delay(Duration::from_secs(3600))).await;
    let process = process(&upstream, "2s", "0s").await;
    let open = open_request(process.public, &upstream, "/never-answered").await;
    assert_exit_at_deadline(process, open, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn the_grace_counts_from_the_signal_not_from_the_end_of_the_drain_delay() {
    // A scheduler that sends the head and a first chunk, then nothing more.
    let gate = Arc::new(Notify::new());
    let held = Arc::clone(&gate);
    let upstream = HttpUpstream::start(move |_| Reply::gated("first", "never sent", &held)).await;
    // A grace restarted after the delay would end 5 s after the signal.
    let process = process(&upstream, "3s", "2s").await;
    let mut open = open_request(process.public, &upstream, "/endless-stream").await;
    // The response is streaming: its head and first chunk have arrived.
    let mut got = Vec::new();
    while !got.windows(5).any(|w| w == b"first") {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(STEP, open.read(&mut buf))
            .await
            .expect("no response data")
            .expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert_exit_at_deadline(process, open, Duration::from_secs(3)).await;
    drop(gate);
}
