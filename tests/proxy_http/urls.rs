//! URL layout (SPEC §3): both URL forms, path safety, redirects.

use super::*;

#[tokio::test]
async fn plain_form_reaches_upstream_with_path_and_query() {
    let up = HttpUpstream::ok().await;
    let gw = one_route(&up.url()).await;
    let r = owner_get(&gw, &dash("/a/b?x=1"), &[]).await;
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
    let r = owner_get(&gw, &reana("/a/b?x=1"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(up.only_request().uri, "/a/b?x=1");
}

#[tokio::test]
async fn reana_form_is_404_when_disabled() {
    let up = HttpUpstream::ok().await;
    let gw = start(routed(&up.url()).server("reana_paths", false)).await;
    let r = owner_get(&gw, &reana("/status"), &[]).await;
    assert_eq!(r.status, 404, "{}", r.describe());
    assert_eq!(
        up.requests().len(),
        0,
        "the reana form reached the upstream"
    );
    // The plain form still works on the same gateway.
    let r = owner_get(&gw, &dash("/status"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(up.only_request().uri, "/status");
}

#[tokio::test]
async fn invalid_ids_and_encoded_traversal_are_404_without_upstream() {
    let up = HttpUpstream::ok().await;
    let gw = one_route(&up.url()).await;
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
        let r = owner_get(&gw, path, &[]).await;
        assert_eq!(r.status, 404, "{path}: {}", r.describe());
    }
    assert_eq!(up.requests().len(), 0, "{:?}", up.requests());
    assert_eq!(up.connections(), 0, "the upstream was contacted");
}

#[tokio::test]
async fn dot_segments_never_leave_the_workflow_prefix() {
    let a = HttpUpstream::ok().await;
    let b = HttpUpstream::ok().await;
    let gw = start(routed(&a.url()).route(OTHER_WF, &b.url(), OWNER)).await;
    let path = dash(&format!(
        "/x/%2e%2e/%2E%2e/../dashboard/{OTHER_WF}/status?y=2"
    ));
    let r = owner_get(&gw, &path, &[]).await;
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
    let cases = [
        (dash(""), dash("/status")),
        (dash("/"), dash("/status")),
        (reana(""), reana("/status")),
        (reana("/"), reana("/status")),
    ];
    for (path, want) in &cases {
        let r = owner_get(&gw, path, &[]).await;
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
    let cases = [
        (dash("/moved"), 301, dash("/status")),
        (reana("/moved"), 301, reana("/status")),
        (dash("/moved-query"), 302, dash("/status?tab=1")),
    ];
    for (path, status, want) in &cases {
        let r = owner_get(&gw, path, &[]).await;
        assert_eq!(r.status, *status, "{path}: {}", r.describe());
        assert_eq!(r.header("location"), Some(want.as_str()), "{path}");
    }
}
