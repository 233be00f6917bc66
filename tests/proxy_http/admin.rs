//! The admin listener and graceful shutdown.

use super::*;

#[tokio::test]
async fn admin_health_readiness_and_metrics() {
    let up = HttpUpstream::ok().await;
    let gw = one_route(&up.url()).await;
    let health = http::get(&gw.admin_url("/healthz"), &[]).await;
    assert_eq!(health.status, 200, "{}", health.describe());
    let ready = http::get(&gw.admin_url("/readyz"), &[]).await;
    assert_eq!(
        ready.status,
        200,
        "static discovery is ready at once: {}",
        ready.describe()
    );

    let r = owner_get(&gw, &dash("/status"), &[]).await;
    assert_eq!(r.status, 200);
    let metrics = http::get(&gw.admin_url("/metrics"), &[]).await;
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    assert!(
        text.lines()
            .any(|l| l == "dashboard_gateway_requests_total{kind=\"http\",code=\"200\"} 1"),
        "{text}"
    );
    for name in [
        "requests_total",
        "request_duration_seconds",
        "websockets_active",
        "routes",
        "auth_decisions_total",
        "upstream_errors_total",
        "discovery_events_total",
        "discovery_lag_seconds",
    ] {
        let declared = format!("# TYPE dashboard_gateway_{name} ");
        assert!(text.contains(&declared), "{name} missing:\n{text}");
    }
    assert!(
        text.lines().any(|l| l == "dashboard_gateway_routes 1"),
        "{text}"
    );
}

#[tokio::test]
async fn shutdown_finishes_in_flight_request_and_run_returns() {
    let up = HttpUpstream::start(|_| Reply::ok("finished").delay(Duration::from_secs(1))).await;
    let gw = one_route(&up.url()).await;
    let url = gw.url(&dash("/slow"));
    let public = gw.public;
    let auth = bearer(&gw);
    let client = tokio::spawn(async move {
        http::try_request("GET", &url, &[("authorization", &auth)], "").await
    });
    up.wait_heads(1).await;

    let stopped = timeout(Duration::from_secs(15), gw.stop())
        .await
        .expect("run() did not return within 15 s");
    assert_eq!(stopped, Ok(()));
    let r = timeout(STEP, client)
        .await
        .expect("client")
        .expect("client task")
        .expect("the in-flight request failed during shutdown");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.text(), "finished");
    // The listener is gone.
    let connect = timeout(STEP, TcpStream::connect(public))
        .await
        .expect("connect");
    assert!(
        connect.is_err(),
        "the gateway still accepts connections after run() returned"
    );
}
