//! Drain on shutdown: `/readyz` turns 503 at once, the public listener keeps
//! accepting for `server.drain_delay` so load balancers stop routing here first,
//! then stops, and `run` returns within `server.shutdown_grace`. The grace is one
//! deadline counted from the signal: the process exits 0 then, dropping what is
//! still open. Every child process is killed when a test ends, every wait has a
//! deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use dask_dashboard_gateway::config::Config;
use dask_dashboard_gateway::{Gateway, Prepared};
use support::http;
use support::process::{command, read, Guard};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
drain_delay = "1500ms"
shutdown_grace = "5s"
[auth.jwt]
algorithms = ["HS256"]
secret = "drain-test-secret-0123456789abcdef0123456789abcdef"
[discovery]
kind = "static"
"#;

#[tokio::test]
async fn drain_delay_keeps_accepting_with_readyz_503_then_stops() {
    let gateway = Gateway::bind(Prepared::new(Config::from_toml(CONFIG).unwrap()).unwrap())
        .await
        .unwrap();
    let public = format!("http://{}", gateway.public_addr());
    let readyz = format!("http://{}/readyz", gateway.admin_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(gateway.run(async move {
        let _ = rx.await;
    }));
    assert_eq!(http::get(&readyz, &[]).await.status, 200);

    let started = Instant::now();
    tx.send(()).unwrap();
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

    let result = tokio::time::timeout(Duration::from_secs(10), run).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(result, Ok(Ok(Ok(())))),
        "run must return Ok: {result:?}"
    );
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

const SECRET: &str = "drain-process-secret-0123456789abcdef0123456789";
/// The route's workflow.
const WF: &str = "wf-1";

/// A gateway process (killed when dropped), its output in files of `dir`.
struct Process {
    guard: Guard,
    dir: tempfile::TempDir,
    public: SocketAddr,
}

fn process_config(upstream: SocketAddr, grace: &str, drain_delay: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
threads = 2
shutdown_grace = "{grace}"
drain_delay = "{drain_delay}"
[upstream]
response_timeout = "60s"
[auth.jwt]
algorithms = ["HS256"]
secret = "{SECRET}"
[discovery]
kind = "static"
[[discovery.static.routes]]
workflow = "{WF}"
upstream = "http://{upstream}"
owner = "alice"
[log]
format = "json"
"#
    )
}

impl Process {
    /// Starts the binary with `config` and waits (30 s at most) for its log to name
    /// the public address it bound.
    async fn start(config: &str) -> Process {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, config).expect("write the config");
        let path = path.to_str().expect("utf-8 path");
        let child = command(dir.path(), &["--config", path], &[])
            .spawn()
            .expect("spawn the binary");
        let mut process = Process {
            guard: Guard { child },
            dir,
            public: ([127, 0, 0, 1], 0).into(),
        };
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(public) = process.listening() {
                process.public = public;
                return process;
            }
            if let Some(status) = process.guard.exited() {
                panic!("the gateway exited early ({status}): {}", process.output());
            }
            assert!(
                Instant::now() < until,
                "no `gateway listening` line: {}",
                process.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The public address from the `gateway listening` log line, once written.
    fn listening(&self) -> Option<SocketAddr> {
        read(self.dir.path(), "stdout").lines().find_map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).ok()?;
            (event["message"] == "gateway listening").then_some(())?;
            event["public"].as_str()?.parse().ok()
        })
    }

    fn output(&self) -> String {
        let dir = self.dir.path();
        format!(
            "stdout: {}\nstderr: {}",
            read(dir, "stdout"),
            read(dir, "stderr")
        )
    }

    /// Sends SIGTERM; returns when it was sent.
    fn terminate(&self) -> Instant {
        let pid = self.guard.child.id().to_string();
        let sent = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        sent
    }

    /// Waits (until `by`) for the exit; returns its status and when it was seen.
    async fn exited_by(&mut self, by: Instant) -> (ExitStatus, Instant) {
        loop {
            if let Some(status) = self.guard.exited() {
                return (status, Instant::now());
            }
            assert!(
                Instant::now() < by,
                "still running past the deadline: {}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A scheduler that reads each request head, answers it with `answer` (possibly
/// nothing) and then neither says more nor closes. Reports each request it has.
async fn stuck_upstream(answer: &'static [u8]) -> (SocketAddr, mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (seen, requests) = mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(answer).await;
                let _ = seen.send(()).await;
                std::future::pending::<()>().await;
            });
        }
    });
    (addr, requests)
}

/// Opens a connection to the gateway and sends the owner's GET for `path`.
async fn open_request(public: SocketAddr, config: &str, path: &str) -> TcpStream {
    let config = Config::from_toml(config).expect("config");
    let jwt = config.auth.jwt.as_ref().expect("[auth.jwt]");
    let token = dask_dashboard_gateway::auth::jwt::mint(jwt, "alice", Duration::from_secs(600))
        .expect("token");
    let mut stream = tokio::time::timeout(STEP, TcpStream::connect(public))
        .await
        .expect("connect timed out")
        .expect("connect");
    let head = format!(
        "GET /dashboard/{WF}{path} HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream
}

/// How long any one step may take.
const STEP: Duration = Duration::from_secs(10);
/// How far past the deadline the exit may come.
const LATE: Duration = Duration::from_millis(1500);

/// Signals the process, waits for its exit and checks that it came with code 0 at
/// `grace` after the signal (not before, and at most [`LATE`] after), and that the
/// open request's connection was closed.
async fn assert_exit_at_deadline(mut process: Process, mut open: TcpStream, grace: Duration) {
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
    let (upstream, mut requests) = stuck_upstream(b"").await;
    let config = process_config(upstream, "2s", "0s");
    let process = Process::start(&config).await;
    let open = open_request(process.public, &config, "/never-answered").await;
    tokio::time::timeout(STEP, requests.recv())
        .await
        .expect("the request did not reach the scheduler")
        .expect("upstream task");
    assert_exit_at_deadline(process, open, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn the_grace_counts_from_the_signal_not_from_the_end_of_the_drain_delay() {
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n";
    let (upstream, mut requests) = stuck_upstream(head).await;
    // A grace restarted after the delay would end 5 s after the signal.
    let config = process_config(upstream, "3s", "2s");
    let process = Process::start(&config).await;
    let mut open = open_request(process.public, &config, "/endless-stream").await;
    tokio::time::timeout(STEP, requests.recv())
        .await
        .expect("the request did not reach the scheduler")
        .expect("upstream task");
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
}
