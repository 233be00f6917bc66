//! Credentials through an in-process gateway to a recording upstream (SPEC §4):
//! what reaches the scheduler, the query-token cookie flow, and the answers for a
//! missing, expired or foreign credential.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use ::http::Method;
use support::config::Reana;
use support::fixture::{bearer, dash, one_route, reana, routed, start, COOKIE, OWNER};
use support::http;
use support::jwt::with_exp as jwt_with_exp;
use support::upstream::{refused_addr, HttpUpstream, Reply};

// ---------------------------------------------------------------------------------
// Credentials (SPEC §4).

#[tokio::test]
async fn credentials_never_reach_the_upstream() {
    let up = HttpUpstream::ok().await;
    let gw = one_route(&up.url()).await;
    let token = gw.token(OWNER);
    let auth = format!("Bearer {token}");
    let other = gw.token("someone-else");

    // Every credential form at once; the Bearer header is the one used.
    let cookie = format!("theme=dark; {COOKIE}={other}; session=reana-session-secret; lang=en");
    let path = dash(&format!(
        "/status?x=1&access_token={other}&y=%20z&token=interactive-secret&acc%65ss_token=encoded-secret"
    ));
    let r = http::get(
        &gw.url(&path),
        &[("authorization", &auth), ("cookie", &cookie)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.describe());

    // The gateway cookie alone.
    let cookie = format!("a=1; {COOKIE}={token}");
    let r = http::get(&gw.url(&dash("/x?keep=me")), &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 200, "{}", r.describe());

    // A POST whose query carries the token (no redirect for POST).
    let path = dash(&format!("/post?token={token}&b=2"));
    let r = http::request("POST", &gw.url(&path), &[], "body").await;
    assert_eq!(r.status, 200, "{}", r.describe());

    let reqs = up.requests();
    assert_eq!(reqs.len(), 3, "{reqs:#?}");
    for req in &reqs {
        let dump = req.dump();
        assert!(req.header("authorization").is_none(), "{dump}");
        for secret in [
            &token,
            &other,
            "reana-session-secret",
            "interactive-secret",
            "encoded-secret",
        ] {
            assert!(
                !dump.contains(secret),
                "a credential reached the upstream:\n{dump}"
            );
        }
        assert!(!dump.contains(COOKIE), "{dump}");
        assert!(!dump.contains("session="), "{dump}");
        assert!(!dump.contains("access_token"), "{dump}");
    }
    assert_eq!(reqs[0].uri, "/status?x=1&y=%20z");
    assert_eq!(
        reqs[0].header_all("cookie").join("; "),
        "theme=dark; lang=en"
    );
    assert_eq!(reqs[1].uri, "/x?keep=me");
    assert_eq!(reqs[1].header_all("cookie"), ["a=1"]);
    assert_eq!(reqs[2].uri, "/post?b=2");
    assert_eq!(reqs[2].method, Method::POST);
    assert_eq!(reqs[2].body, "body");
}

#[tokio::test]
async fn query_token_on_get_sets_cookie_and_redirects() {
    let up = HttpUpstream::ok().await;
    let gw = one_route(&up.url()).await;
    let lifetime = 600;
    let token = gw.token_for(OWNER, Duration::from_secs(lifetime));

    for (prefix, param) in [(dash(""), "access_token"), (reana(""), "token")] {
        let path = format!("{prefix}/status?x=1&{param}={token}&y=2");
        let r = http::get(&gw.url(&path), &[]).await;
        assert_eq!(r.status, 303, "{path}: {}", r.describe());
        // Neither kept by a cache nor passed on as a Referer: the URL has the token.
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
        let want = format!("{prefix}/status?x=1&y=2");
        assert_eq!(r.header("location"), Some(want.as_str()));
        let set = http::set_cookie(&r, COOKIE).unwrap_or_else(|| panic!("{}", r.describe()));
        let attrs: Vec<String> = set.split(';').map(|a| a.trim().to_owned()).collect();
        assert_eq!(attrs[0], format!("{COOKIE}={token}"));
        let has = |a: &str| attrs.iter().any(|x| x.eq_ignore_ascii_case(a));
        assert!(has("HttpOnly"), "{set}");
        assert!(has("SameSite=Lax"), "{set}");
        assert!(has(&format!("Path={prefix}")), "{set}");
        let max_age: u64 = attrs
            .iter()
            .find_map(|a| a.strip_prefix("Max-Age="))
            .unwrap_or_else(|| panic!("no Max-Age: {set}"))
            .parse()
            .expect("numeric Max-Age");
        assert!(max_age > 0 && max_age <= lifetime, "{set}");

        // Following the redirect with the cookie reaches the upstream.
        let cookie = attrs[0].clone();
        let r = http::get(&gw.url(&want), &[("cookie", &cookie)]).await;
        assert_eq!(r.status, 200, "{}", r.describe());
    }
    // HEAD too; a query holding only the credential leaves no bare `?`.
    let path = dash(&format!("/status?access_token={token}"));
    let r = http::request("HEAD", &gw.url(&path), &[], "").await;
    assert_eq!(r.status, 303, "{}", r.describe());
    assert_eq!(r.header("location"), Some(dash("/status").as_str()));
    assert!(http::set_cookie(&r, COOKIE).is_some(), "{}", r.describe());

    let reqs = up.requests();
    assert_eq!(
        reqs.len(),
        2,
        "the redirects themselves must not be proxied"
    );
    assert!(reqs.iter().all(|r| r.uri == "/status?x=1&y=2"), "{reqs:#?}");
}

#[tokio::test]
async fn invalid_query_token_is_401_without_a_cookie() {
    let up = HttpUpstream::ok().await;
    let gw = one_route(&up.url()).await;
    let expired = jwt_with_exp(OWNER, -3600);
    for token in ["not-a-jwt", expired.as_str()] {
        let r = http::get(
            &gw.url(&dash(&format!("/status?access_token={token}"))),
            &[],
        )
        .await;
        assert_eq!(r.status, 401, "{}", r.describe());
        assert!(http::set_cookie(&r, COOKIE).is_none(), "{}", r.describe());
    }
    assert_eq!(up.requests().len(), 0);
}

#[tokio::test]
async fn post_with_query_token_is_forwarded_without_it() {
    let up = HttpUpstream::start(|req| Reply::ok(req.body.clone())).await;
    let gw = one_route(&up.url()).await;
    let token = gw.token(OWNER);
    let path = dash(&format!("/submit?access_token={token}&x=1"));
    let r = http::request("POST", &gw.url(&path), &[], "payload").await;
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.text(), "payload");
    assert!(http::set_cookie(&r, COOKIE).is_none(), "{}", r.describe());
    let req = up.only_request();
    assert_eq!(req.method, Method::POST);
    assert_eq!(req.uri, "/submit?x=1");
}

#[tokio::test]
async fn no_credential_is_401_json_for_api_clients_html_for_browsers() {
    let up = HttpUpstream::ok().await;
    let gw = one_route(&up.url()).await;
    let url = gw.url(&dash("/status"));

    let api = http::get(&url, &[("accept", "application/json")]).await;
    assert_eq!(api.status, 401, "{}", api.describe());
    let challenge = api.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "{}", api.describe());
    assert!(
        api.header("content-type")
            .unwrap_or_default()
            .contains("json"),
        "{}",
        api.describe()
    );
    let _ = api.json();

    let html = http::get(&url, &[("accept", BROWSER_ACCEPT)]).await;
    assert_eq!(html.status, 401, "{}", html.describe());
    assert!(html
        .header("www-authenticate")
        .unwrap_or_default()
        .starts_with("Bearer"));
    assert!(
        html.header("content-type")
            .unwrap_or_default()
            .starts_with("text/html"),
        "{}",
        html.describe()
    );
    let body = html.text();
    assert!(body.contains("<html"), "{body}");
    assert!(
        body.contains("REANA"),
        "the page should say how to open the dashboard: {body}"
    );
    assert_eq!(up.requests().len(), 0);
}

const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,*/*;q=0.8";

#[tokio::test]
async fn no_credential_page_links_to_the_reana_public_url() {
    let up = HttpUpstream::ok().await;
    let reana_server = refused_addr().await;
    let reana_server = Reana::new(&format!("http://{reana_server}"));
    let gw =
        start(routed(&up.url()).reana(reana_server.public_url("https://reana.example.org"))).await;
    let html = http::get(&gw.url(&dash("/status")), &[("accept", BROWSER_ACCEPT)]).await;
    assert_eq!(html.status, 401, "{}", html.describe());
    let body = html.text();
    assert!(
        body.contains("href=\"https://reana.example.org\""),
        "{body}"
    );
    assert_eq!(up.requests().len(), 0);
}

#[tokio::test]
async fn expired_or_forged_token_is_401() {
    let up = HttpUpstream::ok().await;
    let gw = one_route(&up.url()).await;
    let url = gw.url(&dash("/status"));
    // Well past the default 30 s leeway.
    let expired = format!("Bearer {}", jwt_with_exp(OWNER, -3600));
    let r = http::get(&url, &[("authorization", &expired)]).await;
    assert_eq!(r.status, 401, "{}", r.describe());
    assert!(r
        .header("www-authenticate")
        .unwrap_or_default()
        .starts_with("Bearer"));

    let good = gw.token(OWNER);
    let forged = format!("Bearer {}x", &good[..good.len() - 1]);
    let r = http::get(&url, &[("authorization", &forged)]).await;
    assert_eq!(r.status, 401, "{}", r.describe());
    assert_eq!(up.requests().len(), 0);
}

#[tokio::test]
async fn other_user_is_403() {
    let up = HttpUpstream::ok().await;
    let gw = one_route(&up.url()).await;
    let auth = format!("Bearer {}", gw.token("mallory"));
    let r = http::get(&gw.url(&dash("/status")), &[("authorization", &auth)]).await;
    assert_eq!(r.status, 403, "{}", r.describe());
    let r = http::get(&gw.url(&reana("/status")), &[("authorization", &auth)]).await;
    assert_eq!(r.status, 403, "{}", r.describe());
    assert_eq!(up.requests().len(), 0);
}

#[tokio::test]
async fn unknown_workflow_is_404_explaining_the_cluster_lifetime() {
    let up = HttpUpstream::ok().await;
    let gw = one_route(&up.url()).await;
    let auth = bearer(&gw);
    let url = gw.url("/dashboard/5e1e5e1e-0000-4000-8000-00000000dead/status");
    let r = http::get(&url, &[("authorization", &auth), ("accept", "text/html")]).await;
    assert_eq!(r.status, 404, "{}", r.describe());
    assert!(
        r.text().contains("only exists while the workflow runs"),
        "{}",
        r.describe()
    );
    assert_eq!(up.requests().len(), 0);
}

/// The headers of every gateway page: not stored, not sniffed, nothing loaded but
/// its inline style, never framed.
fn assert_gateway_page_headers(r: &http::Response) {
    assert_eq!(
        r.header("cache-control"),
        Some("no-store"),
        "{}",
        r.describe()
    );
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{}",
        r.describe()
    );
    assert_eq!(
        r.header_all("content-security-policy"),
        [
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; \
          form-action 'none'; frame-ancestors 'none'"
        ],
        "{}",
        r.describe()
    );
}

#[tokio::test]
async fn refusals_carry_the_gateway_page_headers() {
    let up = HttpUpstream::ok().await;
    let gw = one_route(&up.url()).await;
    let mallory = format!("Bearer {}", gw.token("mallory"));
    let owner = bearer(&gw);
    let cases = [
        (dash("/status"), None, 401),
        (dash("/status"), Some(mallory.as_str()), 403),
        (
            "/dashboard/5e1e5e1e-0000-4000-8000-00000000dead/status".to_owned(),
            Some(owner.as_str()),
            404,
        ),
    ];
    for (path, auth, status) in &cases {
        for accept in [BROWSER_ACCEPT, "application/json"] {
            let mut headers = vec![("accept", accept)];
            if let Some(auth) = auth {
                headers.push(("authorization", auth));
            }
            let r = http::get(&gw.url(path), &headers).await;
            assert_eq!(r.status, *status, "{path}: {}", r.describe());
            assert_gateway_page_headers(&r);
        }
    }
    assert_eq!(up.requests().len(), 0);
}
