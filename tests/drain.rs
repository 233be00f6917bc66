//! Drain on shutdown: `/readyz` turns 503 at once, the public listener keeps
//! accepting for `server.drain_delay` so load balancers stop routing here first,
//! then stops, and `run` returns within `server.shutdown_grace`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use dask_dashboard_gateway::config::Config;
use dask_dashboard_gateway::{Gateway, Prepared};
use support::http;

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
