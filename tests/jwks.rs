//! `[auth.jwt] jwks_url` end to end (SPEC §4; issue 3 item 4): a fake JWK Set
//! endpoint on 127.0.0.1:0 whose keys the test switches, an in-process gateway and a
//! recording upstream. Rotation is picked up without restart, an unknown `kid`
//! triggers at most one refresh per `jwks_min_refresh`, and a gateway whose JWKS
//! endpoint is down answers 503 until the keys arrive.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
mod upstream;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use support::gateway::TestGateway;
use support::http;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use upstream::{HttpUpstream, STEP};

const WF: &str = "7e3a9c74-5f6b-4d8c-9a43-2b0f4e5d6c73";
const USER: &str = "4e7b1c62-bf5a-4c9d-9e0f-5a6b7c8d9e0f";

macro_rules! key {
    ($file:literal) => {
        include_bytes!(concat!("fixtures/keys/", $file)).as_slice()
    };
}

/// A signing key and its public JWK under `kid`.
struct TestKey {
    signing: EncodingKey,
    public: &'static [u8],
}

fn key_a() -> TestKey {
    TestKey {
        signing: EncodingKey::from_rsa_pem(key!("rsa_private.pem")).expect("rsa"),
        public: key!("rsa_public.pem"),
    }
}

fn key_b() -> TestKey {
    TestKey {
        signing: EncodingKey::from_rsa_pem(key!("rsa_wrong_private.pem")).expect("rsa"),
        public: key!("rsa_wrong_public.pem"),
    }
}

fn jwk(key: &TestKey, kid: &str) -> Jwk {
    let decoding = DecodingKey::from_rsa_pem(key.public).expect("public key");
    let mut jwk = Jwk::from_decoding_key(&decoding, Some(Algorithm::RS256)).expect("jwk");
    jwk.common.key_id = Some(kid.into());
    jwk
}

fn set(keys: Vec<Jwk>) -> String {
    serde_json::to_string(&JwkSet { keys }).expect("jwks json")
}

/// An RS256 token for [`USER`], valid for an hour, with header `kid`.
fn token(key: &TestKey, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({"sub": USER, "iat": now, "exp": now + 3600});
    jsonwebtoken::encode(&header, &claims, &key.signing).expect("sign")
}

/// The JWK Set endpoint: answers `(status, body)` as set by the test, counts fetches.
struct FakeJwks {
    addr: SocketAddr,
    answer: Arc<Mutex<(u16, String)>>,
    fetches: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl FakeJwks {
    async fn start(status: u16, body: String) -> FakeJwks {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind jwks");
        let addr = listener.local_addr().expect("jwks address");
        let answer = Arc::new(Mutex::new((status, body)));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (a, f) = (Arc::clone(&answer), Arc::clone(&fetches));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (a, f) = (Arc::clone(&a), Arc::clone(&f));
                let service = hyper::service::service_fn(move |_req: hyper::Request<Incoming>| {
                    f.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = a.lock().expect("answer").clone();
                    let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
                    *r.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
                    async move { Ok::<_, Infallible>(r) }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeJwks {
            addr,
            answer,
            fetches,
            task,
        }
    }

    fn serve(&self, status: u16, body: String) {
        *self.answer.lock().expect("answer") = (status, body);
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for FakeJwks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn gateway(jwks: &FakeJwks, up: &HttpUpstream, interval: &str, min: &str) -> TestGateway {
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[auth]
cookie_secure = false

[auth.jwt]
algorithms = ["RS256"]
jwks_url = "http://{}/.well-known/jwks.json"
jwks_refresh_interval = "{interval}"
jwks_min_refresh = "{min}"

[auth.rate_limit]
burst = 1000

[discovery]
kind = "static"

[[discovery.static.routes]]
workflow = "{WF}"
upstream = "{}"
owner = "{USER}"
"#,
        jwks.addr,
        up.url()
    );
    TestGateway::start_toml(&toml).await
}

async fn status_with(gw: &TestGateway, token: &str) -> http::Response {
    let auth = format!("Bearer {token}");
    http::get(
        &gw.url(&format!("/dashboard/{WF}/status")),
        &[("authorization", &auth)],
    )
    .await
}

/// Polls `cond` every 50 ms for at most [`STEP`].
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn rotation_via_unknown_kid_refreshes_at_most_once_per_min_refresh() {
    let (a, b) = (key_a(), key_b());
    let jwks = FakeJwks::start(200, set(vec![jwk(&a, "k1")])).await;
    let up = HttpUpstream::ok().await;
    // RSA signing is slow in debug builds: every token is signed before the clock matters.
    let unknown: Vec<String> = (0..20)
        .map(|i| token(&b, Some(&format!("unknown-{i}"))))
        .collect();
    let other: Vec<String> = (0..10)
        .map(|i| token(&b, Some(&format!("other-{i}"))))
        .collect();
    let (a1, b2) = (token(&a, Some("k1")), token(&b, Some("k2")));
    let gw = gateway(&jwks, &up, "1h", "2s").await;
    let r = status_with(&gw, &a1).await;
    assert_eq!(r.status, 200, "{}", r.describe());
    // The start-up fetch (a first request racing it may add one on-demand fetch).
    let base = jwks.fetches();
    assert!((1..=2).contains(&base), "{base} fetches");

    // The issuer rotates to k2 and drops k1.
    jwks.serve(200, set(vec![jwk(&b, "k2")]));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = status_with(&gw, &b2).await;
    assert_eq!(r.status, 200, "rotation picked up: {}", r.describe());
    assert_eq!(jwks.fetches(), base + 1, "one on-demand refresh");

    // A flood of unknown kids right after: no further fetch within min_refresh.
    for t in &unknown {
        let r = status_with(&gw, t).await;
        assert_eq!(r.status, 401, "{}", r.describe());
    }
    let r = status_with(&gw, &a1).await;
    assert_eq!(r.status, 401, "the retired key: {}", r.describe());
    assert_eq!(jwks.fetches(), base + 1);
    // Once min_refresh has passed, one unknown kid may refresh again — once.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let tasks: Vec<_> = other
        .iter()
        .map(|t| {
            let url = gw.url(&format!("/dashboard/{WF}/status"));
            let auth = format!("Bearer {t}");
            tokio::spawn(async move { http::get(&url, &[("authorization", &auth)]).await.status })
        })
        .collect();
    for task in tasks {
        let status = tokio::time::timeout(STEP, task).await.expect("in time");
        assert_eq!(status.expect("task"), 401);
    }
    assert_eq!(jwks.fetches(), base + 2);
    // A token without kid is checked against every key of the set.
    assert_eq!(status_with(&gw, &token(&b, None)).await.status, 200);
}

#[tokio::test]
async fn background_refresh_rotates_keys_without_any_request() {
    let (a, b) = (key_a(), key_b());
    let jwks = FakeJwks::start(200, set(vec![jwk(&a, "k1")])).await;
    let up = HttpUpstream::ok().await;
    // min_refresh of an hour: only the background refresher can fetch again.
    let gw = gateway(&jwks, &up, "300ms", "1h").await;
    assert_eq!(status_with(&gw, &token(&a, Some("k1"))).await.status, 200);
    jwks.serve(200, set(vec![jwk(&a, "k1"), jwk(&b, "k2")]));
    let seen = jwks.fetches();
    eventually("two background refreshes", || jwks.fetches() >= seen + 2).await;
    assert_eq!(status_with(&gw, &token(&b, Some("k2"))).await.status, 200);
    assert_eq!(status_with(&gw, &token(&a, Some("k1"))).await.status, 200);
    // A bad answer keeps the previous keys.
    jwks.serve(200, "{\"keys\": []}".into());
    let seen = jwks.fetches();
    eventually("a refresh with an empty set", || jwks.fetches() >= seen + 2).await;
    assert_eq!(status_with(&gw, &token(&b, Some("k2"))).await.status, 200);
}

#[tokio::test]
async fn jwks_down_at_start_answers_503_until_keys_arrive() {
    let a = key_a();
    let jwks = FakeJwks::start(500, "oops".into()).await;
    let up = HttpUpstream::ok().await;
    let gw = gateway(&jwks, &up, "1h", "1h").await;
    let t = token(&a, Some("k1"));
    let r = status_with(&gw, &t).await;
    assert_eq!(r.status, 503, "{}", r.describe());
    assert_eq!(r.header("retry-after"), Some("5"));
    assert!(up.requests().is_empty());
    // The endpoint recovers: the background retry (1 s, 2 s, …) loads the keys.
    jwks.serve(200, set(vec![jwk(&a, "k1")]));
    let deadline = Instant::now() + STEP;
    loop {
        let r = status_with(&gw, &t).await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.describe());
        assert!(Instant::now() < deadline, "keys never arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A token signed with a key outside the set stays refused.
    let r = status_with(&gw, &token(&key_b(), Some("k1"))).await;
    assert_eq!(r.status, 401, "{}", r.describe());
}
