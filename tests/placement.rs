//! Which serving thread takes a connection: all threads share one listening socket,
//! and with `server.threads = 2` the second accepts only while the first is busy.
//! An idle gateway therefore serves every new connection on its first thread, as
//! `dashboard_gateway_connections_accepted_total` shows per thread.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::config::GatewayConfig;
use support::gateway::TestGateway;
use support::wait::STEP;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// `dashboard_gateway_connections_accepted_total` of each serving thread.
async fn accepted(gw: &TestGateway) -> Vec<(String, u64)> {
    let metrics = support::http::get(&gw.admin_url("/metrics"), &[])
        .await
        .text();
    let mut counts: Vec<(String, u64)> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("dashboard_gateway_connections_accepted_total{thread=\""))
        .map(|rest| {
            let (thread, count) = rest.split_once("\"} ").expect("a labelled sample");
            (thread.to_owned(), count.trim().parse().expect("a count"))
        })
        .collect();
    counts.sort();
    counts
}

/// One request on a connection of its own; returns the status line.
async fn one_request(gw: &TestGateway) -> String {
    let mut stream = timeout(STEP, TcpStream::connect(gw.public))
        .await
        .expect("connect timed out")
        .expect("connect");
    stream
        .write_all(b"GET /favicon.ico HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    timeout(STEP, stream.read_to_end(&mut answer))
        .await
        .expect("answered in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn an_idle_gateway_serves_new_connections_on_its_first_thread() {
    let gw = TestGateway::start(&GatewayConfig::new().server("threads", 2)).await;
    assert_eq!(
        accepted(&gw).await,
        vec![("0".to_owned(), 0), ("1".to_owned(), 0)],
        "one counter per serving thread"
    );
    for _ in 0..20 {
        assert_eq!(one_request(&gw).await, "HTTP/1.1 404 Not Found");
        // Apart, as a browser's first connections to a quiet gateway come.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        accepted(&gw).await,
        vec![("0".to_owned(), 20), ("1".to_owned(), 0)],
        "the second thread waits until the first is busy"
    );
}
