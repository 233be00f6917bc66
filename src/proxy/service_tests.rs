//! The request path without a socket: requests go straight into `handle`, and the
//! scheduler is a fake behind the `Upstream` trait that records what reached it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    AUTHORIZATION, CACHE_CONTROL, COOKIE, HOST, LOCATION, REFERRER_POLICY, SET_COOKIE,
    WWW_AUTHENTICATE,
};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;

use super::raw::RawHead;
use super::upstream::{Outgoing, RawFields, SendFuture, Upstream, UpstreamFailure};
use crate::auth::Authenticator;
use crate::body::{full, Body};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::routes::{Route, RouteTable};
use crate::state::State;

mod response_headers;

const SECRET: &str = "service-test-secret-0123456789abcdef";
const CLIENT: &str = "192.0.2.7:50000";

/// What the fake scheduler answers.
#[derive(Clone)]
enum Answer {
    /// A response with these headers and body.
    Respond(StatusCode, Vec<(&'static str, &'static str)>, &'static str),
    /// A failure.
    Fail(UpstreamFailure),
    /// Nothing, ever.
    Hang,
}

/// A request as the scheduler received it.
#[derive(Debug)]
struct Seen {
    addr: String,
    method: Method,
    target: String,
    headers: HeaderMap,
    body: Bytes,
}

struct Fake {
    answer: Answer,
    seen: Mutex<Vec<Seen>>,
}

impl Upstream for Fake {
    fn send<'a>(&'a self, addr: &'a str, request: Outgoing) -> SendFuture<'a> {
        Box::pin(async move {
            let Outgoing {
                method,
                target,
                headers,
                lines,
                added,
                body,
            } = request;
            // The fields as the scheduler reads them: the map's, the lines', the
            // gateway's.
            let lines = RawFields {
                lines,
                has_date: false,
                has_csp: false,
            };
            let mut headers = lines.into_map(headers);
            added.insert_into(&mut headers);
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            self.seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Seen {
                    addr: addr.to_owned(),
                    method,
                    target,
                    headers,
                    body,
                });
            match self.answer.clone() {
                Answer::Respond(status, headers, body) => {
                    let mut response = Response::new(full(body));
                    *response.status_mut() = status;
                    for (name, value) in headers {
                        response
                            .headers_mut()
                            .append(name, http::HeaderValue::from_static(value));
                    }
                    Ok(response.into())
                }
                Answer::Fail(failure) => Err(failure),
                Answer::Hang => std::future::pending().await,
            }
        })
    }
}

/// A gateway state with one route (`w1`, owned by alice) to the fake.
struct Harness {
    state: Arc<State>,
    fake: Arc<Fake>,
    config: Config,
}

impl Harness {
    fn new(answer: Answer) -> Harness {
        Harness::with_server(answer, "")
    }

    /// A harness whose `[server]` table holds `server` (TOML lines).
    fn with_server(answer: Answer, server: &str) -> Harness {
        let text = format!(
            "[server]\n{server}\n[auth]\ncookie_secure = false\n[auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = \"{SECRET}\"\n\
             [upstream]\nresponse_timeout = \"2s\"\n[discovery]\nkind = \"static\"\n"
        );
        let config = Config::from_toml(&text).expect("valid config");
        let auth = Arc::new(Authenticator::new(&config.auth).expect("verifiers"));
        let routes = Arc::new(RouteTable::new());
        routes.upsert(Route {
            workflow: "w1".into(),
            upstream: "10.0.0.1:8787".into(),
            owner: "alice".into(),
            ready: true,
        });
        let mut state = State::new(
            &config,
            auth,
            routes,
            Arc::new(Metrics::new()),
            Readiness::new(),
        );
        let fake = Arc::new(Fake {
            answer,
            seen: Mutex::new(Vec::new()),
        });
        state.client = Arc::clone(&fake) as Arc<dyn Upstream>;
        Harness {
            state: Arc::new(state),
            fake,
            config,
        }
    }

    fn token(&self, user: &str) -> String {
        let jwt = self.config.auth.jwt.as_ref().expect("jwt config");
        crate::auth::jwt::mint(jwt, user, Duration::from_secs(600)).expect("token")
    }

    async fn send(&self, req: Request<Body>) -> Response<Body> {
        self.send_with(req, None).await
    }

    /// Sends `req` with its fields in `raw` (its map empty), as the gateway's own
    /// HTTP/1.1 loop does.
    async fn send_raw(&self, mut req: Request<Body>, raw: RawHead) -> Response<Body> {
        req.headers_mut().clear();
        self.send_with(req, Some(raw)).await
    }

    async fn send_with(&self, req: Request<Body>, raw: Option<RawHead>) -> Response<Body> {
        let client: SocketAddr = CLIENT.parse().expect("addr");
        let handled = super::handle(Arc::clone(&self.state), req, raw, client);
        tokio::time::timeout(Duration::from_secs(10), handled)
            .await
            .expect("answered")
            .into_response()
    }

    fn seen(&self) -> Vec<Seen> {
        std::mem::take(
            &mut *self
                .fake
                .seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

fn ok(headers: Vec<(&'static str, &'static str)>) -> Answer {
    Answer::Respond(StatusCode::OK, headers, "dashboard")
}

fn get(uri: &str) -> http::request::Builder {
    Request::get(uri).header(HOST, "reana.example.org")
}

async fn body_of(response: Response<Body>) -> Bytes {
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

#[tokio::test]
async fn an_owner_reaches_the_scheduler_without_any_credential() {
    let h = Harness::new(ok(vec![
        ("content-type", "text/html"),
        ("connection", "close, x-secret-hop"),
        ("x-secret-hop", "1"),
        ("keep-alive", "timeout=5"),
    ]));
    let token = h.token("alice");
    let req = get("/w1/dashboard/individual-plots.json?a=1&b=2")
        .header(
            COOKIE,
            format!("_xsrf=x1; dask_dashboard_token={token}; session=reana"),
        )
        .header("referer", "https://reana.example.org/")
        .body(full(""))
        .expect("request");
    let response = h.send(req).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(body_of(response).await, "dashboard");
    assert_eq!(headers["content-type"], "text/html");
    for hop in ["connection", "x-secret-hop", "keep-alive"] {
        assert!(!headers.contains_key(hop), "{hop} reached the client");
    }
    assert!(headers.contains_key("x-request-id"));

    let seen = h.seen();
    assert_eq!(seen.len(), 1);
    let up = &seen[0];
    assert_eq!(up.addr, "10.0.0.1:8787");
    assert_eq!(up.method, Method::GET);
    assert_eq!(up.target, "/individual-plots.json?a=1&b=2");
    assert_eq!(up.headers[HOST], "reana.example.org");
    assert_eq!(up.headers[COOKIE], "_xsrf=x1");
    assert!(!up.headers.contains_key(AUTHORIZATION));
    assert_eq!(up.headers["x-forwarded-for"], "192.0.2.7");
    assert_eq!(up.headers["x-forwarded-proto"], "http");
    assert_eq!(up.headers["x-forwarded-prefix"], "/w1/dashboard");
    assert_eq!(up.headers["x-request-id"], headers["x-request-id"]);
    let all = format!("{:?}", up.headers);
    assert!(!all.contains(&token) && !all.contains("reana\""), "{all}");
}

#[tokio::test]
async fn the_scheduler_gets_one_host_field_the_clients_first() {
    let h = Harness::new(ok(vec![]));
    let cookie = format!("dask_dashboard_token={}", h.token("alice"));
    let twice = get("/dashboard/w1/status")
        .header(HOST, "other.example.org")
        .header(COOKIE, &cookie)
        .body(full(""))
        .expect("request");
    // `Connection` naming `Host` takes it off as a hop-by-hop field; the client's
    // value is put back.
    let named = get("/dashboard/w1/status")
        .header("connection", "host")
        .header(COOKIE, &cookie)
        .body(full(""))
        .expect("request");
    for req in [twice, named] {
        assert_eq!(h.send(req).await.status(), StatusCode::OK);
        let seen = h.seen();
        let hosts: Vec<_> = seen[0].headers.get_all(HOST).iter().collect();
        assert_eq!(hosts, ["reana.example.org"]);
    }
}

#[tokio::test]
async fn credentials_in_a_header_or_the_query_are_not_forwarded_and_a_body_is() {
    let h = Harness::new(ok(vec![]));
    let bearer = Request::post("/dashboard/w1/api/v1/retire_workers?n=1")
        .header(AUTHORIZATION, format!("Bearer {}", h.token("alice")));
    let query = format!(
        "/dashboard/w1/api/v1/retire_workers?access_token={}&n=1",
        h.token("alice")
    );
    // The page the request came from was opened with the token in its query.
    let page = "https://reana.example.org/dashboard/w1/status";
    let referer = format!("{page}?access_token={}&tab=2", h.token("alice"));
    for req in [bearer, Request::post(query.as_str())] {
        let req = req
            .header(HOST, "reana.example.org")
            .header("referer", &referer)
            .body(full("{\"n\": 1}"))
            .expect("request");
        assert_eq!(h.send(req).await.status(), StatusCode::OK);
        let seen = h.seen();
        assert_eq!(seen[0].method, Method::POST);
        assert_eq!(seen[0].target, "/api/v1/retire_workers?n=1");
        assert_eq!(seen[0].body, "{\"n\": 1}");
        assert!(!seen[0].headers.contains_key(AUTHORIZATION));
        assert_eq!(seen[0].headers["referer"], format!("{page}?tab=2").as_str());
    }
}

#[tokio::test]
async fn location_is_rewritten_into_the_prefix_the_request_came_in_on() {
    let h = Harness::new(Answer::Respond(
        StatusCode::MOVED_PERMANENTLY,
        vec![("location", "/status")],
        "",
    ));
    let cookie = format!("dask_dashboard_token={}", h.token("alice"));
    for (path, prefix) in [
        ("/dashboard/w1/x", "/dashboard/w1"),
        ("/w1/dashboard/x", "/w1/dashboard"),
    ] {
        let req = get(path)
            .header(COOKIE, &cookie)
            .body(full(""))
            .expect("request");
        let response = h.send(req).await;
        assert_eq!(
            response.headers()[LOCATION],
            format!("{prefix}/status").as_str()
        );
    }
}

#[tokio::test]
async fn refused_requests_never_reach_the_scheduler() {
    let h = Harness::new(ok(vec![]));
    let cases = [
        (get("/dashboard/w1/status"), StatusCode::UNAUTHORIZED),
        (
            get("/dashboard/w1/status").header(
                COOKIE,
                format!("dask_dashboard_token={}", h.token("mallory")),
            ),
            StatusCode::FORBIDDEN,
        ),
        (
            get("/dashboard/w1/status").header(COOKIE, "dask_dashboard_token=not.a.jwt"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            get("/dashboard/w2/status")
                .header(COOKIE, format!("dask_dashboard_token={}", h.token("alice"))),
            StatusCode::NOT_FOUND,
        ),
        (get("/dashboard/bad%2fid/status"), StatusCode::NOT_FOUND),
    ];
    for (req, status) in cases {
        let response = h.send(req.body(full("")).expect("request")).await;
        assert_eq!(response.status(), status);
        if status == StatusCode::UNAUTHORIZED {
            assert!(response.headers().contains_key(WWW_AUTHENTICATE));
        }
    }
    assert!(h.seen().is_empty());
}

#[tokio::test]
async fn a_query_token_becomes_a_cookie_and_a_clean_redirect() {
    let h = Harness::new(ok(vec![]));
    let uri = format!("/dashboard/w1/status?x=1&access_token={}", h.token("alice"));
    let response = h.send(get(&uri).body(full("")).expect("request")).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/dashboard/w1/status?x=1");
    let cookie = response.headers()[SET_COOKIE].to_str().expect("ascii");
    assert!(cookie.starts_with("dask_dashboard_token=") && cookie.contains("Path=/dashboard/w1"));
    // The URL it answers carries the token: not stored, not sent on as a Referer.
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(response.headers()[REFERRER_POLICY], "no-referrer");
    assert!(h.seen().is_empty());
}

#[tokio::test]
async fn scheduler_failures_map_to_gateway_errors() {
    let cases = [
        (
            Answer::Fail(UpstreamFailure::Connect(
                std::io::ErrorKind::ConnectionRefused,
            )),
            StatusCode::BAD_GATEWAY,
        ),
        (
            Answer::Fail(UpstreamFailure::Protocol("malformed response head")),
            StatusCode::BAD_GATEWAY,
        ),
        (
            Answer::Fail(UpstreamFailure::Io(std::io::ErrorKind::ConnectionReset)),
            StatusCode::BAD_GATEWAY,
        ),
        (
            Answer::Fail(UpstreamFailure::RequestBody),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (answer, status) in cases {
        let h = Harness::new(answer);
        let cookie = format!("dask_dashboard_token={}", h.token("alice"));
        let req = get("/dashboard/w1/status")
            .header(COOKIE, cookie)
            .body(full(""))
            .expect("request");
        assert_eq!(h.send(req).await.status(), status);
    }
}

#[tokio::test(start_paused = true)]
async fn a_scheduler_that_never_answers_is_a_504_at_the_response_timeout() {
    let h = Harness::new(Answer::Hang);
    let cookie = format!("dask_dashboard_token={}", h.token("alice"));
    let req = get("/dashboard/w1/status")
        .header(COOKIE, cookie)
        .body(full(""))
        .expect("request");
    let started = tokio::time::Instant::now();
    assert_eq!(h.send(req).await.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(started.elapsed(), Duration::from_secs(2));
}

/// The same request through hyper's map and through the raw head the gateway's own
/// HTTP/1.1 loop gives: the same answer, and the scheduler gets the same fields.
mod raw_and_map {
    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::sample::select;

    use super::*;

    /// Field names the proxy reads or rewrites (in several cases) and others.
    const NAMES: &[&str] = &[
        "Host",
        "host",
        "Cookie",
        "COOKIE",
        "Authorization",
        "Referer",
        "Connection",
        "X-Forwarded-For",
        "x-forwarded-host",
        "X-Forwarded-Prefix",
        "X-Request-Id",
        "Accept",
        "Keep-Alive",
        "TE",
        "Trailer",
        "Proxy-Authorization",
        "X-Custom",
        "x-custom",
        "User-Agent",
    ];

    /// Values, among them credentials, lists, spoofed forwarding and oddities.
    const VALUES: &[&str] = &[
        "reana.example.org",
        "other.example.org:8080",
        "TOKEN",
        "dask_dashboard_token=TOKEN",
        "_xsrf=1; dask_dashboard_token=TOKEN; session=s",
        " a=1 ;; b=2",
        "session=s",
        "Bearer TOKEN",
        "Basic Zm9vOmJhcg==",
        "https://reana.example.org/w?access_token=TOKEN&tab=2",
        "https://reana.example.org/w#token=TOKEN",
        "https://reana.example.org/w",
        "keep-alive",
        "close",
        "keep-alive, X-Custom",
        "cookie, Host",
        "x-forwarded-for",
        "10.0.0.1",
        " 192.0.2.1 , 198.51.100.2",
        "",
        "text/html",
        "client-id-1",
        "v\tw",
        "caf\u{e9}",
    ];

    fn fields() -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
        vec((select(NAMES), select(VALUES)), 0..8)
    }

    /// What the scheduler got, without the request id (a new one each time when
    /// the client sent none).
    fn seen_without_id(h: &Harness) -> Option<(String, HeaderMap)> {
        let mut seen = h.seen();
        let mut one = seen.pop()?;
        one.headers.remove("x-request-id");
        Some((one.target, one.headers))
    }

    #[tokio::test]
    async fn a_browsers_request_reaches_the_scheduler_the_same_both_ways() {
        let h = Harness::new(ok(vec![]));
        let cookie = format!("_xsrf=1; dask_dashboard_token={}", h.token("alice"));
        let fields = [
            ("Host", "reana.example.org"),
            ("User-Agent", "Mozilla/5.0"),
            ("Accept", "text/html"),
            ("Cookie", cookie.as_str()),
            ("Connection", "keep-alive"),
            ("X-Forwarded-For", "192.0.2.1"),
            (
                "Referer",
                "https://reana.example.org/w?access_token=x&tab=2",
            ),
        ];
        let raw = RawHead::from_fields(&fields);
        let mut req = Request::get("/dashboard/w1/status")
            .body(full(""))
            .expect("request");
        *req.headers_mut() = raw.to_map();
        assert_eq!(h.send(req).await.status(), StatusCode::OK);
        let by_map = seen_without_id(&h).expect("forwarded");
        let req = Request::get("/dashboard/w1/status")
            .body(full(""))
            .expect("request");
        assert_eq!(h.send_raw(req, raw).await.status(), StatusCode::OK);
        let by_raw = seen_without_id(&h).expect("forwarded");
        assert_eq!(by_map, by_raw);
        assert_eq!(by_raw.1["cookie"], "_xsrf=1");
        assert_eq!(by_raw.1["x-forwarded-for"], "192.0.2.1, 192.0.2.7");
        assert_eq!(by_raw.1["referer"], "https://reana.example.org/w?tab=2");
    }

    proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: crate::props::config().cases.min(2_000),
            ..crate::props::config()
        })]

        #[test]
        fn both_ways_send_the_scheduler_the_same_fields(
            mut fields in fields(),
            signed_in in any::<bool>(),
        ) {
            // Half the requests carry the gateway's cookie first, so that most of
            // them reach the scheduler.
            if signed_in {
                fields.insert(0, ("cookie", "dask_dashboard_token=TOKEN"));
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let h = Harness::new(ok(vec![]));
            let token = h.token("alice");
            let fields: Vec<(&str, String)> = fields
                .into_iter()
                .map(|(name, value)| (name, value.replace("TOKEN", &token)))
                .collect();
            let pairs: Vec<(&str, &str)> =
                fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let raw = RawHead::from_fields(&pairs);
            let request = || {
                let mut req = Request::get("/dashboard/w1/status?a=1")
                    .body(full(""))
                    .expect("request");
                *req.headers_mut() = raw.to_map();
                req
            };
            let (by_map, by_raw) = runtime.block_on(async {
                let by_map = h.send(request()).await.status();
                let seen_map = seen_without_id(&h);
                let by_raw = h.send_raw(request(), RawHead::from_fields(&pairs)).await.status();
                let seen_raw = seen_without_id(&h);
                ((by_map, seen_map), (by_raw, seen_raw))
            });
            prop_assert_eq!(by_map, by_raw);
        }
    }
}
