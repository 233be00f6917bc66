//! The gateway's own HTTP/1.1 loop (`server.native_http1`) against hyper: the same
//! requests, as raw bytes, to two gateways in front of one upstream, one with the
//! loop and one without. What reaches the scheduler and what comes back to the
//! client must be the same byte for byte, but for the date, generated request ids
//! and a cookie's remaining lifetime. The hand-off counter shows which requests the
//! loop served itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::config::GatewayConfig;
use support::fixture::{dash, reana, routed, start, OTHER_WF, OWNER, WF};
use support::gateway::TestGateway;
use support::raw::raw_bytes;
use support::upstream::{HttpUpstream, Recorded, Reply, ReplyBody};
use support::wait::STEP;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// The upstream's answer, chosen by the last path segment.
fn reply(req: &Recorded) -> Reply {
    let last = req.path().rsplit('/').next().unwrap_or_default();
    match last {
        "len" => Reply::ok("hello").header("x-upstream", "1"),
        "chunked" => Reply::ok("").body(ReplyBody::Chunked {
            data: "0123456789abcdef".repeat(300).into(),
            chunk: 1000,
        }),
        "redirect" => Reply::status(302).header("location", "/info/main/workers.html"),
        "nocontent" => Reply::status(204),
        "notmodified" => Reply::status(304).header("etag", "\"v1\""),
        "csp" => Reply::ok("own policy").header("content-security-policy", "default-src 'none'"),
        "hop" => Reply::ok("hop")
            .header("connection", "x-private")
            .header("x-private", "1")
            .header("keep-alive", "timeout=5"),
        "teapot" => Reply::with_body(418, "short and stout"),
        _ => Reply::ok("upstream ok"),
    }
}

fn config(upstream: &str, native: bool) -> GatewayConfig {
    routed(upstream)
        .route(OTHER_WF, upstream, "bob")
        .server("trusted_proxies", vec!["127.0.0.1/32"])
        .server("native_http1", native)
}

/// Everything the client gets until the gateway closes the connection, normalised.
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    normalise(&String::from_utf8_lossy(&raw_bytes(addr, request).await))
}

/// Masks what differs between two answers to one request: the date, a generated
/// request id, a cookie's remaining lifetime.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive("\r\n") {
        let lower = line.to_ascii_lowercase();
        let generated_id = lower.strip_prefix("x-request-id: ").is_some_and(|v| {
            let v = v.trim_end();
            v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit())
        });
        if lower.starts_with("date: ") {
            out.push_str("date: *\r\n");
        } else if generated_id {
            out.push_str("x-request-id: *\r\n");
        } else if let Some(at) = line.find("Max-Age=") {
            let rest = &line[at + 8..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            out.push_str(&line[..at + 8]);
            out.push('*');
            out.push_str(&rest[digits..]);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// The requests the upstream received since `seen`, as text, request ids masked.
fn received(up: &HttpUpstream, seen: &mut usize) -> String {
    let all = up.requests();
    let new: Vec<String> = all[*seen..]
        .iter()
        .map(|r| {
            let body = String::from_utf8_lossy(&r.body);
            normalise(&r.dump().replace('\n', "\r\n")) + &body
        })
        .collect();
    *seen = all.len();
    new.join("\r\n---\r\n")
}

/// Sends `request` to each gateway in turn; asserts that the client's answers and
/// the requests the upstream received (those after `seen`) are the same. Returns
/// the answer.
async fn same_answers(
    up: &HttpUpstream,
    seen: &mut usize,
    [native, hyper]: [&TestGateway; 2],
    what: &str,
    request: &[u8],
) -> String {
    let from_native = exchange(native.public, request).await;
    let at_upstream_native = received(up, seen);
    let from_hyper = exchange(hyper.public, request).await;
    let at_upstream_hyper = received(up, seen);
    assert_eq!(
        from_native, from_hyper,
        "{what}: the client's answers differ"
    );
    assert_eq!(
        at_upstream_native, at_upstream_hyper,
        "{what}: the scheduler's requests differ"
    );
    from_native
}

/// `dashboard_gateway_http1_handoffs_total` of `gw`.
async fn handoffs(gw: &TestGateway) -> u64 {
    let metrics = support::http::get(&gw.admin_url("/metrics"), &[])
        .await
        .text();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("dashboard_gateway_http1_handoffs_total "))
        .expect("the hand-off counter is exported")
        .trim()
        .parse()
        .expect("a count")
}

fn get(path: &str, fields: &[&str]) -> Vec<u8> {
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: gw.example\r\n");
    for field in fields {
        head.push_str(field);
        head.push_str("\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    head.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_native_loop_answers_as_hyper_does() {
    let up = HttpUpstream::start(reply).await;
    let native = start(config(&up.url(), true)).await;
    let hyper = start(config(&up.url(), false)).await;
    let token = native.token(OWNER);
    let cookie = format!("Cookie: theme=dark; dask_dashboard_token={token}; lang=en");
    let bearer = format!("Authorization: Bearer {token}");
    let bob = format!("Authorization: Bearer {}", native.token("bob"));
    let referer = format!(
        "Referer: http://gw.example{}?access_token={token}&x=1",
        dash("/status")
    );

    let served: Vec<(&str, Vec<u8>)> = vec![
        ("cookie, other cookies kept", get(&dash("/len"), &[&cookie])),
        (
            "bearer, forwarded chain, client request id, credential in Referer",
            get(
                &dash("/len?x=1&y=2"),
                &[
                    &bearer,
                    "X-Forwarded-For: 10.1.2.3, 10.9.9.9",
                    "X-Forwarded-Proto: gopher",
                    "X-Request-Id: client-id-42",
                    &referer,
                ],
            ),
        ),
        ("HEAD keeps the length", {
            let mut r = get(&dash("/len"), &[&bearer]);
            r.splice(0..3, b"HEAD".iter().copied());
            r
        }),
        ("chunked body", get(&dash("/chunked"), &[&bearer])),
        ("relative redirect", get(&dash("/redirect"), &[&bearer])),
        ("204", get(&dash("/nocontent"), &[&bearer])),
        (
            "304",
            get(&dash("/notmodified"), &[&bearer, "If-None-Match: \"v1\""]),
        ),
        ("own CSP", get(&dash("/csp"), &[&bearer])),
        (
            "hop-by-hop fields",
            get(
                &dash("/hop"),
                &[&bearer, "Connection: x-mine, close", "X-Mine: 2"],
            ),
        ),
        ("418", get(&dash("/teapot"), &[&bearer])),
        ("REANA's URL form", get(&reana("/len"), &[&cookie])),
        ("no credential", get(&dash("/len"), &[])),
        (
            "no credential, a browser",
            get(&dash("/len"), &["Accept: text/html"]),
        ),
        (
            "bad token",
            get(&dash("/len"), &["Authorization: Bearer not.a.jwt"]),
        ),
        ("another user's workflow", get(&dash("/len"), &[&bob])),
        (
            "unknown workflow",
            get(&format!("/dashboard/{}/len", "0000"), &[&bearer]),
        ),
        (
            "bare workflow",
            get(&format!("/dashboard/{WF}"), &[&bearer]),
        ),
        (
            "token in the query",
            get(&dash(&format!("/len?access_token={token}&z=9")), &[]),
        ),
        (
            "dot segments",
            get(&format!("/dashboard/{WF}/a/../len"), &[&bearer]),
        ),
        (
            "escape attempt",
            get(&format!("/dashboard/{WF}/..%2f..%2fetc"), &[&bearer]),
        ),
        ("pipelined", {
            let mut two = get(&dash("/len"), &[&bearer]);
            // The first without `Connection: close`.
            let first = String::from_utf8(two.clone())
                .unwrap()
                .replace("Connection: close\r\n", "");
            two.splice(0..0, first.into_bytes());
            two
        }),
    ];
    let mut seen = 0;
    for (what, request) in &served {
        let answer = same_answers(&up, &mut seen, [&native, &hyper], what, request).await;
        assert!(answer.starts_with("HTTP/1.1 "), "{what}: {answer}");
    }
    assert_eq!(
        handoffs(&native).await,
        0,
        "the loop served every GET and HEAD itself"
    );

    // What the loop does not serve goes to hyper, answered the same way.
    let handed = [
        (
            "a POST with a body",
            format!("POST {} HTTP/1.1\r\nHost: gw.example\r\n{bearer}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello", dash("/len")),
        ),
        ("HTTP/1.0", format!("GET {} HTTP/1.0\r\n{bearer}\r\n\r\n", dash("/len"))),
        ("a broken head", "GET /x HTTP/1.1\r\nBad Field\r\n\r\n".to_string()),
    ];
    for (what, request) in &handed {
        same_answers(&up, &mut seen, [&native, &hyper], what, request.as_bytes()).await;
    }
    assert_eq!(handoffs(&native).await, handed.len() as u64);
    assert_eq!(
        handoffs(&hyper).await,
        0,
        "without the loop nothing is handed off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_moves_to_hyper_at_its_first_upgrade_or_body() {
    let up = HttpUpstream::start(reply).await;
    let gw = start(config(&up.url(), true)).await;
    let bearer = format!("Authorization: Bearer {}", gw.token(OWNER));
    let get = format!(
        "GET {} HTTP/1.1\r\nHost: gw\r\n{bearer}\r\n\r\n",
        dash("/len")
    );
    let post = format!(
        "POST {} HTTP/1.1\r\nHost: gw\r\n{bearer}\r\nContent-Length: 3\r\n\r\nabc",
        dash("/len")
    );
    let last = format!(
        "GET {} HTTP/1.1\r\nHost: gw\r\n{bearer}\r\nConnection: close\r\n\r\n",
        dash("/len")
    );
    // GET (the loop), POST (hyper from here on), GET (hyper), all on one connection.
    let text = exchange(gw.public, format!("{get}{post}{last}").as_bytes()).await;
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 3, "{text}");
    assert_eq!(text.matches("\r\n\r\nhello").count(), 3, "{text}");
    let bodies: Vec<_> = up.requests().iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies, ["", "abc", ""]);
    assert_eq!(handoffs(&gw).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_is_dropped_at_the_keep_alive_timeout_and_a_silent_one_at_the_first_head() {
    let up = HttpUpstream::start(reply).await;
    let gw = start(
        config(&up.url(), true)
            .server("http1_keep_alive_timeout", "300ms")
            .server("header_read_timeout", "300ms"),
    )
    .await;
    let bearer = format!("Authorization: Bearer {}", gw.token(OWNER));

    // Silent from the start: closed once the first head is late.
    let mut silent = TcpStream::connect(gw.public).await.unwrap();
    let mut byte = [0u8; 1];
    let read = timeout(Duration::from_secs(5), silent.read(&mut byte)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");

    // One request, then idle: closed after the keep-alive timeout, not before.
    let mut idle = TcpStream::connect(gw.public).await.unwrap();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: gw\r\n{bearer}\r\n\r\n",
        dash("/len")
    );
    idle.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = timeout(STEP, idle.read(&mut buf)).await.unwrap().unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
    let answered = std::time::Instant::now();
    let read = timeout(Duration::from_secs(5), idle.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert!(
        answered.elapsed() >= Duration::from_millis(250),
        "{:?}",
        answered.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_connection_outlives_its_first_head_deadline_and_closes_a_keep_alive_after_its_last_request(
) {
    let up = HttpUpstream::start(reply).await;
    let gw = start(
        config(&up.url(), true)
            .server("header_read_timeout", "300ms")
            .server("http1_keep_alive_timeout", "600ms"),
    )
    .await;
    let bearer = format!("Authorization: Bearer {}", gw.token(OWNER));
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: gw\r\n{bearer}\r\n\r\n",
        dash("/len")
    );
    let mut conn = TcpStream::connect(gw.public).await.unwrap();
    let mut buf = vec![0u8; 4096];
    // Requests 250 ms apart, until well past the first head's deadline (300 ms).
    for _ in 0..4 {
        conn.write_all(request.as_bytes()).await.unwrap();
        let n = timeout(STEP, conn.read(&mut buf)).await.unwrap().unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let answered = std::time::Instant::now() - Duration::from_millis(250);
    let read = timeout(Duration::from_secs(5), conn.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(550) && idle < Duration::from_millis(1500),
        "{idle:?}"
    );
}
