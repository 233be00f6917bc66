//! Credentials: refusals and the query-token cookie flow against a real scheduler.

use super::*;

/// 3. No credential → 401, another user → 403, unknown workflow → 404;
/// `?access_token=` → 303 with the cookie and a clean Location, then the cookie alone
/// is enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_refusals_and_the_query_token_cookie_flow() {
    let (_cluster, gw) = cluster_and_gateway().await;
    let alice = gw.token(OWNER);
    let bob = gw.token("bob");
    let page = format!("/dashboard/{WF}/status");

    let none = http::get(&gw.url(&page), &[]).await;
    assert_eq!(none.status, 401, "{}", none.describe());
    let challenge = none.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "{}", none.describe());
    let browser = http::get(&gw.url(&page), &[("accept", "text/html")]).await;
    assert_eq!(browser.status, 401, "{}", browser.describe());
    assert!(
        browser
            .header("content-type")
            .unwrap_or_default()
            .starts_with("text/html"),
        "{}",
        browser.describe()
    );

    let garbage = http::get(&gw.url(&page), &[("authorization", "Bearer not.a.jwt")]).await;
    assert_eq!(garbage.status, 401, "{}", garbage.describe());
    let last = if alice.ends_with('A') { "B" } else { "A" };
    let tampered = format!("{}{last}", &alice[..alice.len() - 1]);
    let resp = http::get(&gw.url(&page), &[("authorization", &bearer(&tampered))]).await;
    assert_eq!(resp.status, 401, "tampered signature: {}", resp.describe());

    let wrong_user = http::get(&gw.url(&page), &[("authorization", &bearer(&bob))]).await;
    assert_eq!(wrong_user.status, 403, "{}", wrong_user.describe());
    let query_wrong = http::get(&gw.url(&format!("{page}?access_token={bob}")), &[]).await;
    assert_eq!(query_wrong.status, 403, "{}", query_wrong.describe());
    assert!(
        http::set_cookie(&query_wrong, COOKIE).is_none(),
        "{}",
        query_wrong.describe()
    );

    let unknown = "/dashboard/no-such-workflow/status";
    let resp = http::get(&gw.url(unknown), &[("authorization", &bearer(&alice))]).await;
    assert_eq!(resp.status, 404, "{}", resp.describe());
    let bad_id = "/dashboard/bad%24id/status";
    let resp = http::get(&gw.url(bad_id), &[("authorization", &bearer(&alice))]).await;
    assert_eq!(resp.status, 404, "{}", resp.describe());

    for (form, prefix) in prefixes(WF) {
        for param in ["access_token", "token"] {
            let path = format!("{prefix}status?keep=1&{param}={alice}");
            let resp = http::get(&gw.url(&path), &[]).await;
            assert_eq!(resp.status, 303, "{form} ?{param}=: {}", resp.describe());
            let target = location_of(&resp, &path);
            assert!(
                !target.contains(&alice),
                "{form}: the token stays in {target}"
            );
            assert_eq!(target, format!("{prefix}status?keep=1"), "{form} ?{param}=");

            let set_cookie = http::set_cookie(&resp, COOKIE)
                .unwrap_or_else(|| panic!("{form}: no {COOKIE} cookie: {}", resp.describe()));
            let attrs: Vec<String> = set_cookie
                .split(';')
                .map(|a| a.trim().to_ascii_lowercase())
                .collect();
            assert_eq!(
                set_cookie.split(';').next(),
                Some(format!("{COOKIE}={alice}").as_str())
            );
            assert!(attrs.contains(&"httponly".into()), "{set_cookie}");
            assert!(attrs.contains(&"samesite=lax".into()), "{set_cookie}");
            assert!(
                !attrs.contains(&"secure".into()),
                "cookie_secure = false: {set_cookie}"
            );
            let path_attr = attrs
                .iter()
                .find_map(|a| a.strip_prefix("path="))
                .unwrap_or("");
            assert_eq!(
                path_attr.trim_end_matches('/'),
                prefix.trim_end_matches('/').to_ascii_lowercase(),
                "{set_cookie}"
            );
            let max_age: u64 = attrs
                .iter()
                .find_map(|a| a.strip_prefix("max-age="))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no Max-Age: {set_cookie}"));
            assert!(
                (1..=3600).contains(&max_age),
                "capped at the JWT's lifetime: {set_cookie}"
            );

            let cookie = format!("{COOKIE}={alice}");
            let followed = http::get(&gw.url(&target), &[("cookie", &cookie)]).await;
            assert_eq!(
                followed.status,
                200,
                "{form} cookie alone: {}",
                followed.describe()
            );
        }
    }
    let cookie = format!("{COOKIE}=not-a-jwt");
    let resp = http::get(&gw.url(&page), &[("cookie", &cookie)]).await;
    assert_eq!(resp.status, 401, "bad cookie: {}", resp.describe());
}
