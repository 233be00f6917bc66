//! End-to-end HTTP proxying through an in-process gateway to small upstreams written
//! in the tests (`tests/upstream`): URL forms, path safety, redirects, headers,
//! credentials, authentication answers, streaming, upstream failures, limits, the
//! admin listener and graceful shutdown (SPEC §3, §4, §6).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
mod upstream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ::http::{Method, Request};
use bytes::Bytes;
use support::http;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::timeout;
use upstream::{
    blackhole, fnv1a, next_chunk, pattern, raw_exchange, refused_addr, send_streaming, ChannelBody,
    GatewayToml, HttpUpstream, Reply, ReplyBody, STEP,
};

use upstream::fixture::{bearer, dash, one_route, reana, start, OTHER_WF, OWNER, WF};

// ---------------------------------------------------------------------------------
// URL layout (SPEC §3).

#[tokio::test]
async fn plain_form_reaches_upstream_with_path_and_query() {
    let up = HttpUpstream::ok().await;
    let gw = one_route(&up.url()).await;
    let r = http::get(
        &gw.url(&dash("/a/b?x=1")),
        &[("authorization", &bearer(&gw))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.text(), "upstream ok");
    let req = up.only_request();
    assert_eq!(req.method, Method::GET);
    assert_eq!(req.uri, "/a/b?x=1");
}

#[tokio::test]
async fn reana_form_reaches_upstream_with_path_and_query() {
    let up = HttpUpstream::ok().await;
    let gw = one_route(&up.url()).await;
    let r = http::get(
        &gw.url(&reana("/a/b?x=1")),
        &[("authorization", &bearer(&gw))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(up.only_request().uri, "/a/b?x=1");
}

#[tokio::test]
async fn reana_form_is_404_when_disabled() {
    let up = HttpUpstream::ok().await;
    let gw = start(
        GatewayToml::new()
            .route(WF, &up.url(), OWNER)
            .server("reana_paths = false"),
    )
    .await;
    let auth = bearer(&gw);
    let r = http::get(&gw.url(&reana("/status")), &[("authorization", &auth)]).await;
    assert_eq!(r.status, 404, "{}", r.describe());
    assert_eq!(
        up.requests().len(),
        0,
        "the reana form reached the upstream"
    );
    // The plain form still works on the same gateway.
    let r = http::get(&gw.url(&dash("/status")), &[("authorization", &auth)]).await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(up.only_request().uri, "/status");
}

#[tokio::test]
async fn invalid_ids_and_encoded_traversal_are_404_without_upstream() {
    let up = HttpUpstream::ok().await;
    let gw = one_route(&up.url()).await;
    let auth = bearer(&gw);
    let long_id = format!("a{}", "b".repeat(64));
    let paths = [
        "/dashboard/%2e%2e/status".to_string(),
        "/dashboard/%2E%2E/dashboard/status".to_string(),
        "/%2e%2e/dashboard/status".to_string(),
        "/dashboard/..%2fetc/status".to_string(),
        "/dashboard/-x/status".to_string(),
        "/dashboard/.hidden/status".to_string(),
        "/dashboard/a%20b/status".to_string(),
        format!("/dashboard/{long_id}/status"),
        dash("/..%2f..%2fadmin"),
        dash("/status%2F..%2F..%2Fsecret"),
        dash("/a%5c..%5cb"),
        reana("/x%2fy"),
        dash("/x%00y"),
    ];
    for path in &paths {
        let r = http::get(&gw.url(path), &[("authorization", &auth)]).await;
        assert_eq!(r.status, 404, "{path}: {}", r.describe());
    }
    assert_eq!(up.requests().len(), 0, "{:?}", up.requests());
    assert_eq!(up.connections(), 0, "the upstream was contacted");
}

#[tokio::test]
async fn dot_segments_never_leave_the_workflow_prefix() {
    let a = HttpUpstream::ok().await;
    let b = HttpUpstream::ok().await;
    let gw = start(
        GatewayToml::new()
            .route(WF, &a.url(), OWNER)
            .route(OTHER_WF, &b.url(), OWNER),
    )
    .await;
    let auth = bearer(&gw);
    let path = dash(&format!(
        "/x/%2e%2e/%2E%2e/../dashboard/{OTHER_WF}/status?y=2"
    ));
    let r = http::get(&gw.url(&path), &[("authorization", &auth)]).await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        a.only_request().uri,
        format!("/dashboard/{OTHER_WF}/status?y=2")
    );
    assert_eq!(b.requests().len(), 0, "traversal reached another workflow");
}

#[tokio::test]
async fn bare_prefix_redirects_to_status() {
    let up = HttpUpstream::ok().await;
    let gw = one_route(&up.url()).await;
    let auth = bearer(&gw);
    let cases = [
        (dash(""), dash("/status")),
        (dash("/"), dash("/status")),
        (reana(""), reana("/status")),
        (reana("/"), reana("/status")),
    ];
    for (path, want) in &cases {
        let r = http::get(&gw.url(path), &[("authorization", &auth)]).await;
        assert!(
            [301, 302, 303, 307, 308].contains(&r.status),
            "{path}: {}",
            r.describe()
        );
        assert_eq!(r.header("location"), Some(want.as_str()), "{path}");
    }
    assert_eq!(up.requests().len(), 0);
}

#[tokio::test]
async fn upstream_location_is_rewritten_into_the_request_prefix() {
    let up = HttpUpstream::start(|req| match req.path() {
        "/moved" => Reply::status(301).header("location", "/status"),
        "/moved-query" => Reply::status(302).header("location", "/status?tab=1"),
        _ => Reply::ok("x"),
    })
    .await;
    let gw = one_route(&up.url()).await;
    let auth = bearer(&gw);
    let cases = [
        (dash("/moved"), 301, dash("/status")),
        (reana("/moved"), 301, reana("/status")),
        (dash("/moved-query"), 302, dash("/status?tab=1")),
    ];
    for (path, status, want) in &cases {
        let r = http::get(&gw.url(path), &[("authorization", &auth)]).await;
        assert_eq!(r.status, *status, "{path}: {}", r.describe());
        assert_eq!(r.header("location"), Some(want.as_str()), "{path}");
    }
}

// ---------------------------------------------------------------------------------
// Headers.

#[tokio::test]
async fn hop_by_hop_request_headers_are_not_forwarded() {
    let up = HttpUpstream::ok().await;
    let gw = one_route(&up.url()).await;
    let request = format!(
        "POST {} HTTP/1.1\r\n\
         Host: gw.test\r\n\
         Authorization: {}\r\n\
         Connection: close, X-Client-Hop\r\n\
         X-Client-Hop: must-not-pass\r\n\
         Keep-Alive: timeout=5\r\n\
         TE: trailers\r\n\
         Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\
         Proxy-Connection: keep-alive\r\n\
         X-End-To-End: kept\r\n\
         Transfer-Encoding: chunked\r\n\
         \r\n\
         5\r\nhello\r\n0\r\n\r\n",
        dash("/hop"),
        bearer(&gw)
    );
    let r = raw_exchange(gw.public, request.as_bytes()).await;
    assert_eq!(r.status, 200, "{r:?}");
    let req = up.only_request();
    let dump = req.dump();
    for name in [
        "x-client-hop",
        "keep-alive",
        "te",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert!(req.header(name).is_none(), "{name} was forwarded:\n{dump}");
    }
    for value in req.header_all("connection") {
        assert!(
            !value.to_ascii_lowercase().contains("x-client-hop"),
            "the client's Connection header was forwarded:\n{dump}"
        );
    }
    // The gateway may frame the streamed body itself, but never repeats the
    // client's Transfer-Encoding on top of its own.
    let te = req.header_all("transfer-encoding");
    assert!(
        te.is_empty() || te == ["chunked"],
        "transfer-encoding {te:?}:\n{dump}"
    );
    assert_eq!(req.header("x-end-to-end"), Some("kept"), "{dump}");
    assert_eq!(req.body, "hello");
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_not_forwarded() {
    let up = HttpUpstream::start(|_| {
        Reply::ok("hop")
            .header("connection", "X-Upstream-Hop")
            .header("x-upstream-hop", "1")
            .header("keep-alive", "timeout=5, max=100")
            .header("proxy-authenticate", "Basic realm=\"x\"")
            .header("x-end-to-end", "kept")
    })
    .await;
    // The upstream really sends them: the test below can only pass by removal.
    let direct = http::get(&format!("{}/", up.url()), &[]).await;
    for name in ["x-upstream-hop", "keep-alive", "proxy-authenticate"] {
        assert!(
            direct.header(name).is_some(),
            "{name}: {}",
            direct.describe()
        );
    }
    let gw = one_route(&up.url()).await;
    let r = http::get(
        &gw.url(&dash("/status")),
        &[("authorization", &bearer(&gw))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.describe());
    for name in ["x-upstream-hop", "keep-alive", "proxy-authenticate"] {
        assert!(
            r.header(name).is_none(),
            "{name} reached the client: {}",
            r.describe()
        );
    }
    for value in r.header_all("connection") {
        assert!(
            !value.to_ascii_lowercase().contains("x-upstream-hop"),
            "{}",
            r.describe()
        );
    }
    assert_eq!(r.header("x-end-to-end"), Some("kept"));
    assert_eq!(r.text(), "hop");
}

#[tokio::test]
async fn dashboards_may_be_framed_by_the_configured_ancestors_unless_they_say_otherwise() {
    let own = "default-src 'self'; frame-ancestors 'none'";
    let up = HttpUpstream::start(move |req| match req.path() {
        "/own-policy" => Reply::ok("own").header("content-security-policy", own),
        _ => Reply::ok("plain"),
    })
    .await;
    let default = one_route(&up.url()).await;
    let configured = start(
        GatewayToml::new()
            .route(WF, &up.url(), OWNER)
            .server("frame_ancestors = \"'self' https://reana.example.org\""),
    )
    .await;
    let cases = [
        (&default, "/status", "frame-ancestors 'self'"),
        (
            &configured,
            "/status",
            "frame-ancestors 'self' https://reana.example.org",
        ),
        (&configured, "/own-policy", own),
    ];
    for (gw, path, want) in cases {
        let r = http::get(&gw.url(&dash(path)), &[("authorization", &bearer(gw))]).await;
        assert_eq!(r.status, 200, "{}", r.describe());
        assert_eq!(
            r.header_all("content-security-policy"),
            [want],
            "{path}: {}",
            r.describe()
        );
    }
}

#[tokio::test]
async fn client_host_is_preserved_and_forwarding_headers_are_set() {
    let up = HttpUpstream::ok().await;
    let gw = one_route(&up.url()).await;
    let auth = bearer(&gw);
    let headers = [
        ("authorization", auth.as_str()),
        ("host", "dash.example.org:8443"),
        ("x-forwarded-for", "203.0.113.9"),
    ];
    let r = http::get(&gw.url(&dash("/status")), &headers).await;
    assert_eq!(r.status, 200, "{}", r.describe());
    let r = http::get(&gw.url(&reana("/status")), &[("authorization", &auth)]).await;
    assert_eq!(r.status, 200, "{}", r.describe());

    let reqs = up.requests();
    assert_eq!(reqs.len(), 2);
    let (first, second) = (&reqs[0], &reqs[1]);
    assert_eq!(
        first.header("host"),
        Some("dash.example.org:8443"),
        "{}",
        first.dump()
    );
    assert_eq!(
        first.header("x-forwarded-host"),
        Some("dash.example.org:8443")
    );
    assert_eq!(first.header("x-forwarded-proto"), Some("http"));
    // The peer is appended (whether a client-sent chain is kept depends on
    // `server.trusted_proxies`).
    let xff = first.header("x-forwarded-for").unwrap_or_default();
    assert!(
        xff == "127.0.0.1" || xff == "203.0.113.9, 127.0.0.1",
        "x-forwarded-for {xff:?}"
    );
    assert_eq!(first.header("x-forwarded-prefix"), Some(dash("").as_str()));

    let gw_host = gw.public.to_string();
    assert_eq!(
        second.header("host"),
        Some(gw_host.as_str()),
        "{}",
        second.dump()
    );
    assert_eq!(second.header("x-forwarded-host"), Some(gw_host.as_str()));
    assert_eq!(second.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(
        second.header("x-forwarded-prefix"),
        Some(reana("").as_str())
    );
}

#[tokio::test]
async fn http2_request_is_proxied_with_the_authority_as_host() {
    let up = HttpUpstream::ok().await;
    let gw = one_route(&up.url()).await;
    let (tx, body) = ChannelBody::new(1);
    drop(tx);
    let req = Request::get(format!("http://dash.example.org{}", dash("/a?x=1")))
        .header("authorization", bearer(&gw))
        .header("cookie", "theme=dark")
        .body(body)
        .expect("request");
    let mut resp = upstream::send_h2(gw.public, req).await;
    assert_eq!(resp.status(), 200);
    let mut text = Vec::new();
    while let Some(chunk) = next_chunk(resp.body_mut()).await {
        text.extend_from_slice(&chunk);
    }
    assert_eq!(text, b"upstream ok");
    let req = up.only_request();
    assert_eq!(req.uri, "/a?x=1");
    assert_eq!(
        req.header("host"),
        Some("dash.example.org"),
        "{}",
        req.dump()
    );
    assert_eq!(req.header("x-forwarded-host"), Some("dash.example.org"));
    assert!(req.header("authorization").is_none());
    assert_eq!(req.header_all("cookie"), ["theme=dark"]);
}

#[tokio::test]
async fn request_id_is_honoured_or_generated_and_returned() {
    let up = HttpUpstream::ok().await;
    let gw = one_route(&up.url()).await;
    let auth = bearer(&gw);
    let url = gw.url(&dash("/status"));

    let given = http::get(
        &url,
        &[("authorization", &auth), ("x-request-id", "req-abc-123")],
    )
    .await;
    assert_eq!(given.status, 200);
    assert_eq!(given.header("x-request-id"), Some("req-abc-123"));

    let one = http::get(&url, &[("authorization", &auth)]).await;
    let two = http::get(&url, &[("authorization", &auth)]).await;
    let id1 = one
        .header("x-request-id")
        .expect("a generated request id")
        .to_owned();
    let id2 = two
        .header("x-request-id")
        .expect("a generated request id")
        .to_owned();
    assert!(!id1.is_empty() && id1 != id2, "{id1:?} {id2:?}");

    // Refused requests carry one too.
    let refused = http::get(&url, &[]).await;
    assert_eq!(refused.status, 401);
    assert!(
        refused.header("x-request-id").is_some(),
        "{}",
        refused.describe()
    );

    let reqs = up.requests();
    let ids: Vec<_> = reqs.iter().map(|r| r.header("x-request-id")).collect();
    assert_eq!(
        ids,
        [Some("req-abc-123"), Some(id1.as_str()), Some(id2.as_str())]
    );
}

// ---------------------------------------------------------------------------------
// Streaming bodies.

const BIG: usize = 20 << 20;

#[tokio::test]
async fn upload_of_20_mib_streams_to_the_upstream_intact() {
    let up = HttpUpstream::start(|req| {
        Reply::ok(format!("{} {:016x}", req.body.len(), fnv1a(&req.body)))
    })
    .await;
    let gw = one_route(&up.url()).await;
    let data = Bytes::from(pattern(BIG, 1));
    let (tx, body) = ChannelBody::new(8);
    let req = Request::post(dash("/upload"))
        .header("host", gw.public.to_string())
        .header("authorization", bearer(&gw))
        .body(body)
        .expect("request");
    let head = tokio::spawn(send_streaming(gw.public, req));

    // The first MiB must reach the upstream while the client still holds the rest.
    let first = 1 << 20;
    timeout(STEP, tx.send(data.slice(..first)))
        .await
        .expect("the gateway did not take the first MiB")
        .expect("send the first MiB");
    upstream::wait_until(
        || up.body_bytes() >= first,
        "the first MiB at the upstream before the upload finished (the gateway buffers uploads)",
    )
    .await;
    for piece in data[first..].chunks(64 * 1024) {
        timeout(STEP, tx.send(data.slice_ref(piece)))
            .await
            .expect("the gateway stopped reading the upload")
            .expect("send");
    }
    drop(tx);

    let mut resp = timeout(STEP, head)
        .await
        .expect("response head")
        .expect("task");
    assert_eq!(resp.status(), 200);
    let mut answer = Vec::new();
    while let Some(chunk) = upstream::next_chunk(resp.body_mut()).await {
        answer.extend_from_slice(&chunk);
    }
    let want = format!("{} {:016x}", BIG, fnv1a(&data));
    assert_eq!(String::from_utf8_lossy(&answer), want);
    assert_eq!(up.only_request().body.len(), BIG);
}

#[tokio::test]
async fn download_of_20_mib_streams_to_the_client_before_the_upstream_finishes() {
    let data = Bytes::from(pattern(BIG, 2));
    let gate = Arc::new(Notify::new());
    let first_len = 64 * 1024;
    let reply = {
        let (data, gate) = (data.clone(), Arc::clone(&gate));
        move |_: &upstream::Recorded| {
            Reply::ok("").body(ReplyBody::Gated {
                first: data.slice(..first_len),
                rest: data.slice(first_len..),
                gate: Arc::clone(&gate),
            })
        }
    };
    let up = HttpUpstream::start(reply).await;
    let gw = one_route(&up.url()).await;
    let (tx, body) = ChannelBody::new(1);
    drop(tx);
    let req = Request::get(dash("/download"))
        .header("host", gw.public.to_string())
        .header("authorization", bearer(&gw))
        .body(body)
        .expect("request");
    let mut resp = send_streaming(gw.public, req).await;
    assert_eq!(resp.status(), 200);

    // The upstream holds everything after the first 64 KiB until the client has it.
    let mut got = Vec::with_capacity(BIG);
    while got.len() < first_len {
        let chunk = next_chunk(resp.body_mut())
            .await
            .expect("the body ended early");
        got.extend_from_slice(&chunk);
    }
    gate.notify_one();
    while let Some(chunk) = next_chunk(resp.body_mut()).await {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got.len(), BIG);
    assert_eq!(fnv1a(&got), fnv1a(&data), "the downloaded body differs");
}

// ---------------------------------------------------------------------------------
// Upstream failures and limits (SPEC §6).

#[tokio::test]
async fn connect_refused_is_502() {
    let addr = refused_addr().await;
    let gw = one_route(&format!("http://{addr}")).await;
    let r = http::get(
        &gw.url(&dash("/status")),
        &[("authorization", &bearer(&gw))],
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.describe());
    // A gateway page: not stored, not sniffed, not framed, no scripts.
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(csp.starts_with("default-src 'none';"), "{}", r.describe());
}

#[tokio::test]
async fn upstream_slower_than_response_timeout_is_504() {
    let hole = blackhole().await;
    let slow = HttpUpstream::start(|_| Reply::ok("late").delay(Duration::from_secs(3))).await;
    let gw = start(
        GatewayToml::new()
            .route(WF, &hole.url(), OWNER)
            .route(OTHER_WF, &slow.url(), OWNER)
            .upstream("response_timeout = \"300ms\""),
    )
    .await;
    let auth = bearer(&gw);
    for path in [dash("/status"), format!("/dashboard/{OTHER_WF}/status")] {
        let started = Instant::now();
        let r = http::get(&gw.url(&path), &[("authorization", &auth)]).await;
        let elapsed = started.elapsed();
        assert_eq!(r.status, 504, "{path}: {}", r.describe());
        assert!(
            elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(2),
            "{path}: answered after {elapsed:?}"
        );
    }
    assert!(hole.count() >= 1, "the blackhole was never contacted");
}

#[tokio::test]
async fn response_timeout_covers_only_the_response_head() {
    let gate = Arc::new(Notify::new());
    let reply = {
        let gate = Arc::clone(&gate);
        move |_: &upstream::Recorded| {
            Reply::ok("").body(ReplyBody::Gated {
                first: Bytes::from_static(b"head-and-first-bytes;"),
                rest: Bytes::from_static(b"the rest, much later"),
                gate: Arc::clone(&gate),
            })
        }
    };
    let up = HttpUpstream::start(reply).await;
    let gw = start(
        GatewayToml::new()
            .route(WF, &up.url(), OWNER)
            .upstream("response_timeout = \"300ms\""),
    )
    .await;
    let (tx, body) = ChannelBody::new(1);
    drop(tx);
    let req = Request::get(dash("/slow-body"))
        .header("host", gw.public.to_string())
        .header("authorization", bearer(&gw))
        .body(body)
        .expect("request");
    let mut resp = send_streaming(gw.public, req).await;
    assert_eq!(resp.status(), 200);
    let first = next_chunk(resp.body_mut()).await.expect("first bytes");
    // The body continues well after the response timeout.
    tokio::time::sleep(Duration::from_millis(800)).await;
    gate.notify_one();
    let mut got = first.to_vec();
    while let Some(chunk) = next_chunk(resp.body_mut()).await {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        "head-and-first-bytes;the rest, much later"
    );
}

#[tokio::test]
async fn request_headers_over_max_header_bytes_are_431() {
    let up = HttpUpstream::ok().await;
    let gw = start(
        GatewayToml::new()
            .route(WF, &up.url(), OWNER)
            .upstream("max_header_bytes = \"4KiB\""),
    )
    .await;
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
    let gw = start(
        GatewayToml::new()
            .route(WF, &up.url(), OWNER)
            .server("header_read_timeout = \"500ms\""),
    )
    .await;
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
        GatewayToml::new()
            .route(WF, &up.url(), OWNER)
            .server("header_read_timeout = \"5s\"")
            .server("http1_keep_alive_timeout = \"600ms\""),
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
        move |req: &upstream::Recorded| match req.path() {
            "/stream" => Reply::ok("").body(ReplyBody::Gated {
                first: Bytes::from_static(b"first"),
                rest: Bytes::from_static(b" rest"),
                gate: Arc::clone(&gate),
            }),
            _ => Reply::ok("quick"),
        }
    };
    let up = HttpUpstream::start(reply).await;
    let gw = start(
        GatewayToml::new()
            .route(WF, &up.url(), OWNER)
            .server("header_read_timeout = \"200ms\"")
            .server("http2_idle_timeout = \"600ms\""),
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

// ---------------------------------------------------------------------------------
// Admin listener.

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

    let r = http::get(
        &gw.url(&dash("/status")),
        &[("authorization", &bearer(&gw))],
    )
    .await;
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

// ---------------------------------------------------------------------------------
// Shutdown.

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
