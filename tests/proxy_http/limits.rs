//! Limits on what clients send and how long they may idle: header size, header read
//! timeout, HTTP/1.1 keep-alive and HTTP/2 idle timeouts (SPEC §6).

use super::*;

#[tokio::test]
async fn request_headers_over_max_header_bytes_are_431() {
    let up = HttpUpstream::ok().await;
    let gw = start(routed(&up.url()).upstream("max_header_bytes", "4KiB")).await;
    let auth = bearer(&gw);
    let url = gw.url(&dash("/status"));
    let small = format!("big={}", "a".repeat(3 * 1024));
    let r = http::get(&url, &[("authorization", &auth), ("cookie", &small)]).await;
    assert_eq!(
        r.status,
        200,
        "a 3 KiB cookie is within 4 KiB: {}",
        r.describe()
    );
    let large = format!("big={}", "a".repeat(6 * 1024));
    let r = http::get(&url, &[("authorization", &auth), ("cookie", &large)]).await;
    assert_eq!(r.status, 431, "{}", r.describe());
    assert_eq!(
        up.requests().len(),
        1,
        "the oversized request reached the upstream"
    );
}

/// Against a gateway with `header_read_timeout = "500ms"`: connects, sends `prefix`,
/// then stalls. Asserts the gateway closed the connection no earlier than the
/// timeout and within 5 s, and that nothing reached the upstream.
async fn dropped_after_header_read_timeout(prefix: &[u8]) {
    let up = HttpUpstream::ok().await;
    let gw = start(routed(&up.url()).server("header_read_timeout", "500ms")).await;
    let mut stream = timeout(STEP, TcpStream::connect(gw.public))
        .await
        .expect("connect timed out")
        .expect("connect");
    let started = Instant::now();
    stream.write_all(prefix).await.expect("write");
    let mut sink = Vec::new();
    let what = String::from_utf8_lossy(prefix);
    timeout(Duration::from_secs(5), stream.read_to_end(&mut sink))
        .await
        .unwrap_or_else(|_| {
            panic!("the gateway kept a stalled connection open for 5 s after {what:?}")
        })
        .ok();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(400), "dropped after {took:?}");
    assert_eq!(up.requests().len(), 0);
}

#[tokio::test]
async fn half_sent_request_head_is_dropped_after_header_read_timeout() {
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: gw.test\r\nAccept: */*\r\n",
        dash("/status")
    );
    dropped_after_header_read_timeout(head.as_bytes()).await;
}

#[tokio::test]
async fn silent_connection_is_dropped_after_header_read_timeout() {
    // Not a single byte: no request head either.
    dropped_after_header_read_timeout(b"").await;
}

#[tokio::test]
async fn stalled_http2_preface_prefix_is_dropped_after_header_read_timeout() {
    // The first 16 of the 24 bytes of the HTTP/2 connection preface.
    dropped_after_header_read_timeout(b"PRI * HTTP/2.0\r\n").await;
}

#[tokio::test]
async fn idle_http1_connection_is_closed_after_the_keep_alive_timeout() {
    let up = HttpUpstream::ok().await;
    let gw = start(
        routed(&up.url())
            .server("header_read_timeout", "5s")
            .server("http1_keep_alive_timeout", "600ms"),
    )
    .await;
    let mut stream = timeout(STEP, TcpStream::connect(gw.public))
        .await
        .expect("connect timed out")
        .expect("connect");
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: gw.test\r\nAuthorization: {}\r\n\r\n",
        dash("/status"),
        bearer(&gw)
    );
    // Two requests on the connection: it is kept alive between them.
    for _ in 0..2 {
        stream.write_all(head.as_bytes()).await.expect("write");
        let mut got = Vec::new();
        while !got.ends_with(b"upstream ok") {
            let mut buf = [0u8; 4096];
            let n = timeout(STEP, stream.read(&mut buf))
                .await
                .expect("no response within the step timeout")
                .expect("read");
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    }
    let idle = Instant::now();
    let mut rest = Vec::new();
    timeout(Duration::from_secs(4), stream.read_to_end(&mut rest))
        .await
        .expect("the idle connection outlived its keep-alive timeout by far")
        .ok();
    let took = idle.elapsed();
    assert!(took >= Duration::from_millis(500), "closed after {took:?}");
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
}

#[tokio::test]
async fn idle_http2_connection_is_closed_but_not_while_a_stream_is_open() {
    let gate = Arc::new(Notify::new());
    let reply = {
        let gate = Arc::clone(&gate);
        move |req: &Recorded| match req.path() {
            "/stream" => Reply::gated("first", " rest", &gate),
            _ => Reply::ok("quick"),
        }
    };
    let up = HttpUpstream::start(reply).await;
    let gw = start(
        routed(&up.url())
            .server("header_read_timeout", "200ms")
            .server("http2_idle_timeout", "600ms"),
    )
    .await;
    let stream = timeout(STEP, TcpStream::connect(gw.public))
        .await
        .expect("connect timed out")
        .expect("connect");
    let (mut sender, conn) = timeout(
        STEP,
        hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        ),
    )
    .await
    .expect("handshake timed out")
    .expect("HTTP/2 handshake");
    let mut closed = tokio::spawn(conn);
    let auth = bearer(&gw);
    let get = |path: &str| {
        let (tx, body) = ChannelBody::new(1);
        drop(tx);
        Request::get(format!("http://gw.test{}", dash(path)))
            .header("authorization", &auth)
            .body(body)
            .expect("request")
    };
    let mut resp = timeout(STEP, sender.send_request(get("/stream")))
        .await
        .expect("no response head")
        .expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        next_chunk(resp.body_mut()).await.as_deref(),
        Some(&b"first"[..])
    );
    // An open stream is not idleness, however long it takes: the connection still
    // takes new requests (a GOAWAY would refuse them).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let quick = timeout(STEP, sender.send_request(get("/quick")))
        .await
        .expect("no response head")
        .expect("a new request on a connection with an open stream");
    assert_eq!(quick.status(), 200);
    gate.notify_one();
    let mut rest = Vec::new();
    while let Some(chunk) = next_chunk(resp.body_mut()).await {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b" rest");
    let idle = Instant::now();
    timeout(Duration::from_secs(4), &mut closed)
        .await
        .expect("the idle HTTP/2 connection outlived its idle timeout by far")
        .expect("connection task")
        .expect("a graceful close (GOAWAY), not an error");
    let took = idle.elapsed();
    assert!(took >= Duration::from_millis(500), "closed after {took:?}");
}
