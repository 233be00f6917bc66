//! The headers that keep gateway answers and dashboards out of caches, other
//! sites' frames and Referers: redirects, error pages, proxied responses.

use http::header::{
    ACCEPT, CACHE_CONTROL, CONTENT_SECURITY_POLICY, COOKIE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use http::{Response, StatusCode};

use super::{body_of, get, ok, Answer, Harness};
use crate::body::{full, Body};
use crate::proxy::upstream::UpstreamFailure;

const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; \
                        form-action 'none'; frame-ancestors 'none'";

fn csp_values(response: &Response<Body>) -> Vec<&str> {
    response
        .headers()
        .get_all(CONTENT_SECURITY_POLICY)
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect()
}

#[tokio::test]
async fn the_bare_workflow_redirect_is_not_stored() {
    let h = Harness::new(ok(vec![]));
    for path in ["/dashboard/w1", "/w1/dashboard/"] {
        let response = h.send(get(path).body(full("")).expect("request")).await;
        assert_eq!(response.status(), StatusCode::FOUND, "{path}");
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store", "{path}");
    }
}

#[tokio::test]
async fn gateway_pages_are_not_stored_sniffed_framed_or_referred() {
    let ok_harness = Harness::new(ok(vec![]));
    let down = Harness::new(Answer::Fail(UpstreamFailure::Connect(
        std::io::ErrorKind::ConnectionRefused,
    )));
    let cookie = |h: &Harness, user: &str| format!("dask_dashboard_token={}", h.token(user));
    let cases = [
        (
            &ok_harness,
            "/dashboard/w1/status",
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            &ok_harness,
            "/dashboard/w1/status",
            Some(cookie(&ok_harness, "mallory")),
            StatusCode::FORBIDDEN,
        ),
        (
            &ok_harness,
            "/dashboard/w2/status",
            Some(cookie(&ok_harness, "alice")),
            StatusCode::NOT_FOUND,
        ),
        (
            &down,
            "/dashboard/w1/status",
            Some(cookie(&down, "alice")),
            StatusCode::BAD_GATEWAY,
        ),
    ];
    for (h, path, cookie, status) in cases {
        for accept in ["text/html", "application/json"] {
            let mut req = get(path).header(ACCEPT, accept);
            if let Some(cookie) = &cookie {
                req = req.header(COOKIE, cookie);
            }
            let response = h.send(req.body(full("")).expect("request")).await;
            let what = format!("{status} for {accept}");
            assert_eq!(response.status(), status, "{what}");
            let headers = response.headers();
            assert_eq!(headers[CACHE_CONTROL], "no-store", "{what}");
            assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff", "{what}");
            assert_eq!(headers[REFERRER_POLICY], "no-referrer", "{what}");
            assert_eq!(csp_values(&response), [PAGE_CSP], "{what}");
            // The page needs nothing the policy refuses: one inline style, and
            // links (navigations, which the policy leaves alone).
            let body = String::from_utf8(body_of(response).await.to_vec()).expect("utf-8");
            if accept == "text/html" {
                assert!(body.contains("<style>"), "{what}: {body}");
                for refused in [
                    "<script", "<link", "<img", "<form", "<iframe", " style=", "src=",
                ] {
                    assert!(!body.contains(refused), "{what}: {refused} in {body}");
                }
            }
        }
    }
    assert!(ok_harness.seen().is_empty());
}

#[tokio::test]
async fn dashboard_responses_may_be_framed_by_the_configured_ancestors_only() {
    let owner = |h: &Harness| format!("dask_dashboard_token={}", h.token("alice"));
    let cases = [
        (Harness::new(ok(vec![])), "frame-ancestors 'self'"),
        (
            Harness::with_server(
                ok(vec![]),
                "frame_ancestors = \"'self'  https://reana.example.org\"",
            ),
            "frame-ancestors 'self' https://reana.example.org",
        ),
    ];
    for (h, want) in cases {
        for _ in 0..2 {
            let req = get("/dashboard/w1/status").header(COOKIE, owner(&h));
            let response = h.send(req.body(full("")).expect("request")).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(csp_values(&response), [want]);
        }
    }
}

#[tokio::test]
async fn a_scheduler_policy_is_passed_on_untouched() {
    let own = "default-src 'self'; frame-ancestors 'none'";
    let second = "frame-ancestors https://elsewhere.example";
    let h = Harness::with_server(
        ok(vec![
            ("content-security-policy", own),
            ("content-security-policy", second),
        ]),
        "frame_ancestors = \"https://reana.example.org\"",
    );
    let req = get("/dashboard/w1/status")
        .header(COOKIE, format!("dask_dashboard_token={}", h.token("alice")));
    let response = h.send(req.body(full("")).expect("request")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(csp_values(&response), [own, second]);
}
