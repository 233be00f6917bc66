//! Bokeh sessions through the gateway, and what reaches Bokeh of the credentials.

use super::*;

/// 4. A Bokeh session through the gateway: ACK, PULL-DOC-REPLY, then PATCH-DOCs
/// while tasks run, under both URL forms and both ways a client authenticates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bokeh_session_through_the_gateway_pulls_the_doc_and_gets_patches() {
    let (cluster, gw) = cluster_and_gateway().await;
    let jwt = gw.token(OWNER);
    let auth = bearer(&jwt);
    let cookie = format!("{COOKIE}={jwt}");
    let origin = gw.origin();
    cluster.submit_work();

    let mut sessions = Vec::new();
    for (form, prefix) in prefixes(WF) {
        // A script: Bearer, no Origin.
        let token = page_token(&gw, &format!("{prefix}status"), &[("authorization", &auth)]).await;
        let ws = gw.ws_url(&format!("{prefix}status/ws"));
        let session = BokehSession::open(&ws, &token, &[("authorization", &auth)])
            .await
            .unwrap_or_else(|e| panic!("{form} (Bearer): {e}\n{}", cluster.logs()));
        sessions.push((format!("{form} (Bearer)"), session));

        // A browser: the cookie and a same-origin Origin.
        let token = page_token(
            &gw,
            &format!("{prefix}individual-task-stream"),
            &[("cookie", &cookie)],
        )
        .await;
        let ws = gw.ws_url(&format!("{prefix}individual-task-stream/ws"));
        let session = BokehSession::open(&ws, &token, &[("cookie", &cookie), ("origin", &origin)])
            .await
            .unwrap_or_else(|e| panic!("{form} (cookie): {e}\n{}", cluster.logs()));
        sessions.push((format!("{form} (cookie)"), session));
    }

    for (name, mut session) in sessions {
        assert_eq!(
            session
                .handshake
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.as_bytes()),
            Some(&b"bokeh"[..]),
            "{name}: the upstream's subprotocol choice must be returned"
        );
        assert_eq!(session.ack.msgtype(), "ACK", "{name}");
        assert_eq!(session.doc.msgtype(), "PULL-DOC-REPLY", "{name}");
        assert!(
            session.doc.content["doc"]["roots"]
                .as_array()
                .is_some_and(|r| !r.is_empty()),
            "{name}: PULL-DOC-REPLY without roots: {}",
            session.doc.content
        );
        session
            .wait_for("PATCH-DOC", Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", cluster.logs()));
        let more = session
            .count_messages("PATCH-DOC", Duration::from_secs(2))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            more >= 2,
            "{name}: only {more} PATCH-DOC in 2 s while tasks run"
        );
        session.close().await;
    }
}

/// 5. What reaches Bokeh (copied into the session token) holds no credential: not the
/// JWT, not the gateway cookie, not REANA's `session` cookie, no `Authorization`, no
/// `access_token` argument — whichever way the client authenticated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bokeh_token_payload_carries_no_credentials() {
    let (cluster, gw) = cluster_and_gateway().await;
    let jwt = gw.token(OWNER);
    let reana_session = "reana-flask-session-value-7f3a9c";
    let session_cookie = format!("session={reana_session}");
    let auth = bearer(&jwt);
    let page = format!("/dashboard/{WF}/status");

    // (how, path, headers) of the request that renders the page.
    type Case = (&'static str, String, Vec<(String, String)>);
    let mut cases: Vec<Case> = vec![
        (
            "Bearer",
            page.clone(),
            vec![
                ("authorization".into(), auth.clone()),
                ("cookie".into(), session_cookie.clone()),
            ],
        ),
        (
            "cookie",
            page.clone(),
            vec![("cookie".into(), format!("{COOKIE}={jwt}; {session_cookie}"))],
        ),
    ];
    // The query token: follow the 303 like a browser.
    let query_path = format!("{page}?access_token={jwt}");
    let resp = http::get(&gw.url(&query_path), &[("cookie", &session_cookie)]).await;
    assert_eq!(resp.status, 303, "{}", resp.describe());
    let target = location_of(&resp, &query_path);
    let set_cookie = http::set_cookie(&resp, COOKIE).expect("the query token sets a cookie");
    let pair = set_cookie.split(';').next().unwrap().to_owned();
    cases.push((
        "query token",
        target,
        vec![("cookie".into(), format!("{pair}; {session_cookie}"))],
    ));

    for (how, path, headers) in cases {
        let mut headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        headers.push(("x-test-marker", "visible"));
        let token = page_token(&gw, &path, &headers).await;
        let payload = decode_token_payload(&token);
        let text = payload.to_string();
        let sent_headers = payload_part(&payload, "headers");
        assert_eq!(
            sent_headers.get("X-Test-Marker").and_then(Value::as_str),
            Some("visible"),
            "{how}: ordinary headers must reach the scheduler: {payload}"
        );
        assert!(
            !text.contains(&jwt),
            "{how}: the JWT reached the scheduler: {payload}"
        );
        assert!(
            !text.contains(reana_session),
            "{how}: REANA's session cookie reached the scheduler: {payload}"
        );
        let auth_headers: Vec<_> = sent_headers
            .keys()
            .filter(|k| k.eq_ignore_ascii_case("authorization"))
            .collect();
        assert!(
            auth_headers.is_empty(),
            "{how}: {auth_headers:?} reached the scheduler: {payload}"
        );
        let cookies = payload_part(&payload, "cookies");
        assert!(
            !cookies.contains_key(COOKIE) && !cookies.contains_key("session"),
            "{how}: credential cookies reached the scheduler: {payload}"
        );
        let arguments = payload_part(&payload, "arguments");
        assert!(
            !arguments.contains_key("access_token") && !arguments.contains_key("token"),
            "{how}: the query credential reached the scheduler: {payload}"
        );

        // The same token opens the session (the handshake echoes it to the scheduler).
        let ws = gw.ws_url(&format!("/dashboard/{WF}/status/ws"));
        let session = BokehSession::open(&ws, &token, &headers)
            .await
            .unwrap_or_else(|e| panic!("{how}: {e}\n{}", cluster.logs()));
        session.close().await;
    }
}
