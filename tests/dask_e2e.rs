//! End to end: a real Dask scheduler and worker behind the gateway (SPEC §2–§4). Each
//! test starts its own cluster (one worker) and gateway; where a test must prove that
//! the gateway made no upstream connection, the route points at a fake upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use support::bokeh::{decode_token_payload, payload_part, BokehSession};
use support::bokeh_page::session_token_from_html;
use support::dask::DaskCluster;
use support::gateway::TestGateway;
use support::http::{self, FakeUpstream, Response};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

const WF: &str = "3f1c2b4a-9d7e-4c1b-8a55-0e2e00000001";
const OWNER: &str = "alice";
const COOKIE: &str = "dask_dashboard_token";

/// Both URL forms of workflow `wf`, as `(name, prefix ending in '/')`.
fn prefixes(wf: &str) -> [(&'static str, String); 2] {
    [
        ("gateway form", format!("/dashboard/{wf}/")),
        ("REANA form", format!("/{wf}/dashboard/")),
    ]
}

/// A cluster with one worker and a gateway routing `WF` (owner alice) to it.
async fn cluster_and_gateway() -> (DaskCluster, TestGateway) {
    let cluster = DaskCluster::start(1).await;
    let upstream = format!("http://{}", cluster.dashboard);
    let gw = TestGateway::start(&[(WF, &upstream, OWNER)]).await;
    (cluster, gw)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The path (and query) a browser at `base` (a path) goes to for `location`.
fn resolve(base: &str, location: &str) -> String {
    if let Some(rest) = location
        .strip_prefix("http://")
        .or_else(|| location.strip_prefix("https://"))
    {
        return rest.find('/').map_or("/".into(), |i| rest[i..].to_owned());
    }
    if location.starts_with('/') {
        return location.to_owned();
    }
    let base = base.split('?').next().unwrap_or_default();
    let dir = &base[..=base.rfind('/').unwrap_or(0)];
    format!("{dir}{location}")
}

fn location_of(resp: &Response, base: &str) -> String {
    let location = resp
        .header("location")
        .unwrap_or_else(|| panic!("no Location: {}", resp.describe()));
    resolve(base, location)
}

/// `src="…"` and `href="…"` values of a page that are relative links into it.
fn relative_links(html: &str) -> Vec<String> {
    let mut links = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let Some(end) = part.find('"') else { continue };
            let link = &part[..end];
            let foreign = link.contains("://") || link.starts_with("javascript:");
            if !link.is_empty() && !foreign && !link.starts_with(['/', '#']) {
                links.push(link.to_owned());
            }
        }
    }
    links.sort();
    links.dedup();
    links
}

/// 1. Every page the scheduler serves answers 200 through the gateway, under both URL
/// forms, and so do the statics the status page links to (byte for byte).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_page_and_static_answers_through_both_url_forms() {
    let (cluster, gw) = cluster_and_gateway().await;
    let auth = bearer(&gw.token(OWNER));

    let plots = cluster.individual_plots().await;
    assert!(
        plots.iter().any(|p| p == "/individual-task-stream"),
        "the scheduler lists no individual-task-stream: {plots:?}"
    );
    let mut pages: Vec<String> = [
        "status",
        "workers",
        "tasks",
        "system",
        "profile",
        "graph",
        "groups",
        "info/main/workers.html",
        "json/identity.json",
        "individual-plots.json",
        "health",
    ]
    .map(str::to_owned)
    .to_vec();
    pages.extend(plots.iter().map(|p| p.trim_start_matches('/').to_owned()));

    let requests: Vec<(String, String)> = prefixes(WF)
        .iter()
        .flat_map(|(_, prefix)| pages.iter().map(move |page| (prefix.clone(), page.clone())))
        .collect();
    let results: Vec<(String, u16)> = futures_util::stream::iter(requests)
        .map(|(prefix, page)| {
            let url = gw.url(&format!("{prefix}{page}"));
            let auth = auth.clone();
            async move {
                let resp = http::get(&url, &[("authorization", &auth)]).await;
                (format!("{prefix}{page}"), resp.status)
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let failed: Vec<_> = results
        .iter()
        .filter(|(_, status)| *status != 200)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} pages did not answer 200 through the gateway: {failed:?}",
        failed.len(),
        results.len()
    );

    // The right scheduler answers.
    let direct = http::get(&cluster.url("/json/identity.json"), &[])
        .await
        .json();
    for (form, prefix) in prefixes(WF) {
        let url = gw.url(&format!("{prefix}json/identity.json"));
        let via = http::get(&url, &[("authorization", &auth)]).await;
        assert_eq!(via.json()["id"], direct["id"], "{form}: {}", via.describe());
    }

    // The statics /status links to (CSS, images, BokehJS), byte for byte.
    for (form, prefix) in prefixes(WF) {
        let status_url = gw.url(&format!("{prefix}status"));
        let page = http::get(&status_url, &[("authorization", &auth)]).await;
        assert_eq!(page.status, 200, "{form}: {}", page.describe());
        let statics: Vec<String> = relative_links(&page.text())
            .into_iter()
            .filter(|l| l.starts_with("static/") || l.starts_with("statics/"))
            .collect();
        assert!(
            statics
                .iter()
                .any(|l| l.starts_with("static/js/bokeh.min.js"))
                && statics.iter().any(|l| l.starts_with("statics/css/")),
            "{form}: /status links no BokehJS or CSS: {statics:?}"
        );
        for link in statics {
            let via = http::get(
                &gw.url(&format!("{prefix}{link}")),
                &[("authorization", &auth)],
            )
            .await;
            assert_eq!(via.status, 200, "{form} {link}: {}", via.describe());
            let direct = http::get(&cluster.url(&format!("/{link}")), &[]).await;
            assert_eq!(direct.status, 200, "direct {link}: {}", direct.describe());
            assert!(
                via.body == direct.body,
                "{form} {link}: {} bytes through the gateway, {} direct",
                via.body.len(),
                direct.body.len()
            );
        }
    }
}

/// 2. Redirects: the gateway's own for the bare prefix, the scheduler's relative one
/// (`/info`), and an upstream's absolute `Location: /status` rewritten into the prefix
/// the request came in on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_stay_inside_the_prefix() {
    let (_cluster, gw) = cluster_and_gateway().await;
    let auth = bearer(&gw.token(OWNER));
    let headers = [("authorization", auth.as_str())];

    for path in [format!("/dashboard/{WF}"), format!("/dashboard/{WF}/")] {
        let resp = http::get(&gw.url(&path), &headers).await;
        assert!(
            (300..400).contains(&resp.status),
            "GET {path}: {}",
            resp.describe()
        );
        let target = location_of(&resp, &path);
        assert_eq!(
            target.split('?').next(),
            Some(format!("/dashboard/{WF}/status").as_str())
        );
    }
    let path = format!("/{WF}/dashboard/");
    let resp = http::get(&gw.url(&path), &headers).await;
    assert!(
        (300..400).contains(&resp.status),
        "GET {path}: {}",
        resp.describe()
    );
    let target = location_of(&resp, &path);
    assert_eq!(
        target.split('?').next(),
        Some(format!("/{WF}/dashboard/status").as_str())
    );

    // The scheduler answers /info with 302 `Location: info/main/workers.html`.
    for (form, prefix) in prefixes(WF) {
        let path = format!("{prefix}info");
        let resp = http::get(&gw.url(&path), &headers).await;
        assert_eq!(resp.status, 302, "{form} GET {path}: {}", resp.describe());
        let target = location_of(&resp, &path);
        assert_eq!(target, format!("{prefix}info/main/workers.html"), "{form}");
        let followed = http::get(&gw.url(&target), &headers).await;
        assert_eq!(
            followed.status,
            200,
            "{form} GET {target}: {}",
            followed.describe()
        );
    }

    // An absolute-path Location from the upstream.
    let fake = FakeUpstream::start(
        "HTTP/1.1 301 Moved Permanently\r\nLocation: /status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    let other = "redirecting-workflow";
    let gw2 = TestGateway::start(&[(other, &fake.url(), OWNER)]).await;
    let auth2 = bearer(&gw2.token(OWNER));
    for (form, prefix) in prefixes(other) {
        let path = format!("{prefix}somewhere/deeper");
        let resp = http::get(&gw2.url(&path), &[("authorization", &auth2)]).await;
        assert_eq!(resp.status, 301, "{form} GET {path}: {}", resp.describe());
        assert_eq!(
            resp.header("location"),
            Some(format!("{prefix}status").as_str()),
            "{form}: the upstream's `Location: /status` must be rewritten into the prefix"
        );
    }
    let heads = fake.requests();
    assert_eq!(heads.len(), 2, "{heads:?}");
    for head in &heads {
        assert!(
            head.starts_with("GET /somewhere/deeper HTTP/1.1\r\n"),
            "the upstream must see the path without the prefix: {head}"
        );
        assert!(
            !head.to_ascii_lowercase().contains("\r\nauthorization:"),
            "the credential reached the upstream: {head}"
        );
    }
}

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

/// A page's Bokeh session token, fetched through the gateway.
async fn page_token(gw: &TestGateway, path: &str, headers: &[(&str, &str)]) -> String {
    let page = http::get(&gw.url(path), headers).await;
    assert_eq!(page.status, 200, "GET {path}: {}", page.describe());
    session_token_from_html(&page.text())
        .unwrap_or_else(|| panic!("no session token in {path}: {}", page.describe()))
}

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
    let direct = http::websocket(&cluster.ws_url("/eventstream"), &[("origin", &origin)]).await;
    http::assert_ws_refused(
        direct,
        403,
        "the scheduler itself should refuse a cross-origin eventstream",
    );

    for (form, prefix) in prefixes(WF) {
        let url = gw.ws_url(&format!("{prefix}eventstream"));
        let (mut ws, _) = http::websocket(&url, &[("origin", &origin), ("authorization", &auth)])
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
            let refused = http::websocket(
                &url,
                &[
                    ("origin", "https://evil.example"),
                    ("authorization", &auth),
                    ("sec-websocket-protocol", &format!("bokeh, {token}")),
                ],
            )
            .await;
            let what = format!("{form} {page} with Origin https://evil.example");
            http::assert_ws_refused(refused, 403, &what);
        }
    }

    // 7. Prove that no upstream connection is made for a foreign Origin.
    let fake = FakeUpstream::silent().await;
    let other = "origin-check-workflow";
    let gw2 = TestGateway::start(&[(other, &fake.url(), OWNER)]).await;
    let auth2 = bearer(&gw2.token(OWNER));
    for (form, prefix) in prefixes(other) {
        let url = gw2.ws_url(&format!("{prefix}status/ws"));
        let refused = http::websocket(
            &url,
            &[
                ("origin", "https://evil.example"),
                ("authorization", &auth2),
                ("sec-websocket-protocol", "bokeh, some-token"),
            ],
        )
        .await;
        let what = format!("{form}: Origin https://evil.example to a fake upstream");
        http::assert_ws_refused(refused, 403, &what);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.accepted(),
        0,
        "the gateway connected upstream for a foreign Origin: {:?}",
        fake.requests()
    );
}
