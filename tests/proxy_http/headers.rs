//! Headers: hop-by-hop fields, framing policy, forwarding headers, HTTP/2, request ids.

use super::*;

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
    let r = owner_get(&gw, &dash("/status"), &[]).await;
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
    let configured =
        start(routed(&up.url()).server("frame_ancestors", "'self' https://reana.example.org"))
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
    let r = owner_get(&gw, &reana("/status"), &[]).await;
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
    let mut resp = send_h2(gw.public, req).await;
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
