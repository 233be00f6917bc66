//! The WebSocket handshake through the gateway: subprotocols, extensions, Origin,
//! credentials, hop-by-hop headers, and the answers when the upstream is
//! unreachable, silent or refuses.

use super::*;

#[tokio::test]
async fn subprotocols_are_forwarded_verbatim_and_the_upstream_choice_returned() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    // A Bokeh session token: long, base64url with dots.
    let session = format!(
        "eyJzZXNzaW9uX2lkIjoi{}.{}",
        "QUJD".repeat(200),
        "x_-".repeat(40)
    );
    let offered = format!("bokeh, {session}");
    let extra = [("sec-websocket-protocol", offered.as_str())];
    let (mut ws, resp) = owner_ws(&gw, STATUS_WS, &extra).await.expect("handshake");
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("bokeh")
    );
    let hs = up.only_handshake();
    assert_eq!(hs.header_all("sec-websocket-protocol"), [offered]);
    echo(&mut ws, "hello").await;
}

#[tokio::test]
async fn permessage_deflate_is_not_negotiated() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let extra = [(
        "sec-websocket-extensions",
        "permessage-deflate; client_max_window_bits",
    )];
    let (mut ws, resp) = owner_ws(&gw, STATUS_WS, &extra).await.expect("handshake");
    assert!(
        resp.headers().get("sec-websocket-extensions").is_none(),
        "{resp:?}"
    );
    let hs = up.only_handshake();
    assert!(
        hs.header("sec-websocket-extensions").is_none(),
        "the extension offer reached the upstream: {hs:?}"
    );
    // Uncompressed messages flow.
    echo(&mut ws, &"a".repeat(10_000)).await;
}

#[tokio::test]
async fn foreign_origin_is_403_without_an_upstream_connection() {
    let counter = CountingListener::start().await;
    let gw = one_route(&counter.url()).await;
    let auth = bearer(&gw);
    for origin in [
        "https://evil.example.com",
        "null",
        "http://127.0.0.1.evil.example.com",
    ] {
        let headers = [("authorization", auth.as_str()), ("origin", origin)];
        let result = websocket(&gw.ws_url(&dash(STATUS_WS)), &headers).await;
        let (status, _) = refused_status(result);
        assert_eq!(status, 403, "{origin}");
    }
    assert_not_contacted(&counter).await;
}

#[tokio::test]
async fn same_host_origin_with_another_scheme_is_accepted() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let auth = bearer(&gw);
    // TLS ends at the ingress: the page is https, the gateway sees plain http.
    let origin = format!("https://{}", gw.public);
    let headers = [
        ("authorization", auth.as_str()),
        ("origin", origin.as_str()),
    ];
    let (mut ws, _) = websocket(&gw.ws_url(&dash(STATUS_WS)), &headers)
        .await
        .expect("a same-host origin must be accepted");
    echo(&mut ws, "ok").await;
    assert_eq!(up.only_handshake().header("origin"), Some(origin.as_str()));
}

#[tokio::test]
async fn listed_allowed_origin_is_accepted() {
    let up = WsUpstream::start().await;
    let gw =
        start(routed(&up.url()).auth("allowed_origins", vec!["https://reana.example.org"])).await;
    let auth = bearer(&gw);
    let url = gw.ws_url(&dash(STATUS_WS));
    let headers = [
        ("authorization", auth.as_str()),
        ("origin", "https://reana.example.org"),
    ];
    let (mut ws, _) = websocket(&url, &headers)
        .await
        .expect("a listed origin must be accepted");
    echo(&mut ws, "ok").await;
    // Only that origin: a look-alike is not.
    let headers = [
        ("authorization", auth.as_str()),
        ("origin", "https://reana.example.org.evil.com"),
    ];
    let (status, _) = refused_status(websocket(&url, &headers).await);
    assert_eq!(status, 403);
    assert_eq!(up.handshakes().len(), 1);
}

#[tokio::test]
async fn no_credential_is_401_without_an_upstream_connection() {
    let counter = CountingListener::start().await;
    let gw = one_route(&counter.url()).await;
    let origin = gw.origin();
    let headers = [("origin", origin.as_str())];
    let result = websocket(&gw.ws_url(&dash(STATUS_WS)), &headers).await;
    let (status, _) = refused_status(result);
    assert_eq!(status, 401);
    // Another user's token: 403, still no connection.
    let result = ws_as(&gw, &gw.token("mallory"), STATUS_WS, &[]).await;
    assert_eq!(refused_status(result).0, 403);
    assert_not_contacted(&counter).await;
}

#[tokio::test]
async fn credentials_are_stripped_from_the_upstream_handshake() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let token = gw.token(OWNER);
    let cookie = format!("theme=dark; {COOKIE}={token}; session=reana-session-secret; lang=en");
    let path =
        format!("/individual-plots/ws?x=1&access_token={token}&y=2&token=interactive-secret");
    let (mut ws, _) = ws_as(&gw, &token, &path, &[("cookie", cookie.as_str())])
        .await
        .expect("handshake");
    echo(&mut ws, "ping-through").await;

    let hs = up.only_handshake();
    assert_eq!(hs.uri, "/individual-plots/ws?x=1&y=2");
    assert!(hs.header("authorization").is_none(), "{hs:?}");
    assert_eq!(hs.header_all("cookie").join("; "), "theme=dark; lang=en");
    let dump = format!("{hs:?}");
    for secret in [token.as_str(), "reana-session-secret", "interactive-secret"] {
        assert!(
            !dump.contains(secret),
            "a credential reached the upstream: {dump}"
        );
    }
    // Host and Origin are the browser's (Tornado's same-origin check needs them).
    let host = gw.public.to_string();
    assert_eq!(hs.header("host"), Some(host.as_str()));
    assert_eq!(hs.header("origin"), Some(gw.origin().as_str()));
}

#[tokio::test]
async fn hop_by_hop_headers_are_not_forwarded_in_the_handshake() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let extra = [
        ("connection", "Upgrade, X-Client-Hop"),
        ("x-client-hop", "must-not-pass"),
        ("keep-alive", "timeout=5"),
        ("proxy-authorization", "Basic Zm9vOmJhcg=="),
        ("x-end-to-end", "kept"),
    ];
    let (mut ws, _) = owner_ws(&gw, STATUS_WS, &extra).await.expect("handshake");
    echo(&mut ws, "x").await;
    let hs = up.only_handshake();
    for name in ["x-client-hop", "keep-alive", "proxy-authorization"] {
        assert!(hs.header(name).is_none(), "{name} was forwarded: {hs:?}");
    }
    assert_eq!(hs.header("x-end-to-end"), Some("kept"));
}

#[tokio::test]
async fn expired_token_is_401_at_the_handshake() {
    let counter = CountingListener::start().await;
    let gw = one_route(&counter.url()).await;
    let expired = jwt::with_exp(OWNER, -3600);
    let result = ws_as(&gw, &expired, STATUS_WS, &[]).await;
    assert_eq!(refused_status(result).0, 401);
    assert_eq!(counter.connections(), 0);
}

#[tokio::test]
async fn unreachable_upstream_is_502_at_the_handshake() {
    let addr = refused_addr().await;
    let gw = one_route(&format!("http://{addr}")).await;
    let result = owner_ws(&gw, STATUS_WS, &[]).await;
    assert_eq!(refused_status(result).0, 502);
}

#[tokio::test]
async fn upstream_never_answering_the_handshake_is_504() {
    let hole = blackhole().await;
    let gw = start(routed(&hole.url()).upstream("response_timeout", "300ms")).await;
    let started = Instant::now();
    let result = owner_ws(&gw, STATUS_WS, &[]).await;
    assert_eq!(refused_status(result).0, 504);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(hole.connections(), 1);
}

#[tokio::test]
async fn query_token_opens_a_websocket_without_reaching_the_upstream() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let token = gw.token(OWNER);
    let origin = gw.origin();
    let path = dash(&format!(
        "/status/ws?access_token={token}&bokeh-session-id=abc"
    ));
    let (mut ws, _) = websocket(&gw.ws_url(&path), &[("origin", origin.as_str())])
        .await
        .expect("a WebSocket handshake with a query token is not redirected");
    echo(&mut ws, "q").await;
    assert_eq!(up.only_handshake().uri, "/status/ws?bokeh-session-id=abc");
}

#[tokio::test]
async fn cookie_credential_opens_a_websocket() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let cookie = format!("{COOKIE}={}", gw.token(OWNER));
    let origin = gw.origin();
    let headers = [("cookie", cookie.as_str()), ("origin", origin.as_str())];
    let (mut ws, _) = websocket(&gw.ws_url(&dash(STATUS_WS)), &headers)
        .await
        .expect("handshake with the gateway cookie");
    echo(&mut ws, "c").await;
    assert!(up.only_handshake().header("cookie").is_none());
}

#[tokio::test]
async fn upstream_refusing_the_upgrade_with_404_yields_404() {
    let up = WsUpstream::start().await;
    let gw = one_route(&up.url()).await;
    let result = owner_ws(&gw, "/nope/refuse", &[]).await;
    let (status, _) = refused_status(result);
    assert_eq!(status, 404);
    assert_eq!(up.only_handshake().uri, "/nope/refuse");
}
