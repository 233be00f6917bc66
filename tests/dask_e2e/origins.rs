//! WebSocket origins: the eventstream with the gateway's own Origin, a foreign
//! Origin refused before any upstream connection.

use super::*;

/// 6 and 7. `/eventstream` (Tornado's same-origin check) opens with the gateway's own
/// Origin; a foreign Origin is refused with 403 before any upstream connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_origins_eventstream_and_foreign_origin() {
    let (cluster, gw) = cluster_and_gateway().await;
    let auth = bearer(&gw.token(OWNER));
    let origin = gw.origin();

    // Tornado compares Origin with Host: the same Origin sent straight to the
    // scheduler (whose Host differs) is refused, so passing through proves the
    // gateway preserved the client's Host.
    let direct = websocket(&cluster.ws_url("/eventstream"), &[("origin", &origin)]).await;
    assert_ws_refused(
        direct,
        403,
        "the scheduler itself should refuse a cross-origin eventstream",
    );

    for (form, prefix) in prefixes(WF) {
        let url = gw.ws_url(&format!("{prefix}eventstream"));
        let (mut ws, _) = websocket(&url, &[("origin", &origin), ("authorization", &auth)])
            .await
            .unwrap_or_else(|e| panic!("{form} eventstream: {e:?}\n{}", cluster.logs()));
        ws.send(Message::text(r#"{"name": "ping"}"#)).await.unwrap();
        let pong = timeout(Duration::from_secs(10), async {
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Text(text) = msg {
                    let value: Value = serde_json::from_str(&text).unwrap_or_default();
                    if value["name"] == "pong" {
                        return Some(value);
                    }
                }
            }
            None
        })
        .await;
        assert!(
            matches!(pong, Ok(Some(_))),
            "{form}: no pong on the eventstream: {pong:?}"
        );
        let _ = timeout(Duration::from_secs(5), ws.close(None)).await;

        // The scheme is not compared (TLS ends at the ingress).
        let https_origin = format!("https://{}", gw.public);
        let token = page_token(&gw, &format!("{prefix}status"), &[("authorization", &auth)]).await;
        let session = BokehSession::open(
            &gw.ws_url(&format!("{prefix}status/ws")),
            &token,
            &[("origin", &https_origin), ("authorization", &auth)],
        )
        .await
        .unwrap_or_else(|e| panic!("{form} Origin {https_origin}: {e}"));
        session.close().await;

        // A foreign Origin on the real scheduler's routes.
        for page in ["status/ws", "eventstream"] {
            let url = gw.ws_url(&format!("{prefix}{page}"));
            let refused = websocket(
                &url,
                &[
                    ("origin", "https://evil.example"),
                    ("authorization", &auth),
                    ("sec-websocket-protocol", &format!("bokeh, {token}")),
                ],
            )
            .await;
            let what = format!("{form} {page} with Origin https://evil.example");
            assert_ws_refused(refused, 403, &what);
        }
    }

    // 7. Prove that no upstream connection is made for a foreign Origin.
    let fake = CountingListener::start().await;
    let other = "origin-check-workflow";
    let gw2 = TestGateway::start(&GatewayConfig::new().route(other, &fake.url(), OWNER)).await;
    let auth2 = bearer(&gw2.token(OWNER));
    for (form, prefix) in prefixes(other) {
        let url = gw2.ws_url(&format!("{prefix}status/ws"));
        let refused = websocket(
            &url,
            &[
                ("origin", "https://evil.example"),
                ("authorization", &auth2),
                ("sec-websocket-protocol", "bokeh, some-token"),
            ],
        )
        .await;
        let what = format!("{form}: Origin https://evil.example to a fake upstream");
        assert_ws_refused(refused, 403, &what);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.connections(),
        0,
        "the gateway connected upstream for a foreign Origin"
    );
}
