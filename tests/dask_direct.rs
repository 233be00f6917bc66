//! The harness speaks real Bokeh: the test helpers against a real scheduler's
//! dashboard, with no gateway in between. When these fail, the end-to-end tests'
//! failures say nothing about the gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::bokeh::{decode_token_payload, payload_part, BokehSession};
use support::bokeh_page::session_token_from_html;
use support::dask::DaskCluster;
use support::http;

#[tokio::test]
async fn harness_talks_to_a_real_dashboard() {
    let cluster = DaskCluster::start(1).await;

    let health = http::get(&cluster.url("/health"), &[]).await;
    assert_eq!(health.status, 200, "{}", health.describe());
    assert_eq!(health.text(), "ok");

    let root = http::get(&cluster.url("/"), &[]).await;
    assert_eq!(root.status, 301, "{}", root.describe());
    assert_eq!(root.header("location"), Some("/status"));

    let plots = cluster.individual_plots().await;
    assert!(
        plots.iter().any(|p| p == "/individual-task-stream"),
        "{plots:?}"
    );

    // The page's token carries the request's headers and cookies.
    let page = http::get(
        &cluster.url("/status?probe=1"),
        &[
            ("x-harness", "marker-1"),
            ("cookie", "harness_cookie=marker-2"),
        ],
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.describe());
    let token = session_token_from_html(&page.text()).expect("a session token in /status");
    let payload = decode_token_payload(&token);
    assert!(payload["session_id"].is_string(), "{payload}");
    let headers = payload_part(&payload, "headers");
    assert_eq!(
        headers.get("X-Harness").and_then(|v| v.as_str()),
        Some("marker-1"),
        "{payload}"
    );
    let cookies = payload_part(&payload, "cookies");
    assert_eq!(
        cookies.get("harness_cookie").and_then(|v| v.as_str()),
        Some("marker-2"),
        "{payload}"
    );
    let arguments = payload_part(&payload, "arguments");
    assert_eq!(
        arguments.get("probe"),
        Some(&serde_json::json!(["1"])),
        "{payload}"
    );

    // Bokeh copies credentials too (SPEC §2): what the end-to-end tests must not find
    // behind the gateway is really there when nothing strips it.
    let exposed = http::get(
        &cluster.url("/status?access_token=query-secret"),
        &[
            ("authorization", "Bearer header-secret"),
            (
                "cookie",
                "session=reana-secret; dask_dashboard_token=cookie-secret",
            ),
        ],
    )
    .await;
    assert_eq!(exposed.status, 200, "{}", exposed.describe());
    let exposed = decode_token_payload(&session_token_from_html(&exposed.text()).unwrap());
    let text = exposed.to_string();
    for secret in [
        "query-secret",
        "header-secret",
        "reana-secret",
        "cookie-secret",
    ] {
        assert!(text.contains(secret), "{secret} not in {exposed}");
    }
    assert_eq!(
        payload_part(&exposed, "headers").get("Authorization"),
        Some(&serde_json::json!("Bearer header-secret")),
        "{exposed}"
    );

    // A Bokeh session: ACK, PULL-DOC-REPLY, then PATCH-DOCs once tasks run.
    let mut session = BokehSession::open(&cluster.ws_url("/status/ws"), &token, &[])
        .await
        .unwrap_or_else(|e| panic!("bokeh session: {e}\n{}", cluster.logs()));
    assert_eq!(
        session
            .handshake
            .headers()
            .get("sec-websocket-protocol")
            .unwrap(),
        "bokeh"
    );
    assert!(
        session.doc.content["doc"]["roots"].is_array(),
        "{}",
        session.doc.content
    );

    cluster.submit_work();
    let patch = session
        .wait_for("PATCH-DOC", Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    assert!(patch.content["events"].is_array(), "{}", patch.content);
    session.close().await;
}
