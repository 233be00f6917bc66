//! `[auth.jwt] jwks_url` end to end (SPEC §4; issue 3 item 4): a fake JWK Set
//! endpoint (the harness's recording upstream with a reply the test switches), an
//! in-process gateway and a recording upstream. Rotation is picked up without
//! restart, an unknown `kid` triggers at most one refresh per `jwks_min_refresh`, and
//! a gateway whose JWKS endpoint is down answers 503 until the keys arrive.
//!
//! The background refresher runs on the test's runtime, so its timers are driven on
//! a paused clock; the on-demand refresh runs with the request on a serving thread,
//! on the wall clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use support::config::{GatewayConfig, Jwt};
use support::gateway::TestGateway;
use support::http;
use support::jwt;
use support::upstream::{HttpUpstream, Reply, ReplySwitch};
use support::wait::{on_paused_clock, within, STEP};

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
    jwt::sign(&header, &key.signing, USER, 3600)
}

/// The JWK Set endpoint: answers what the test switches it to; counts fetches.
struct FakeJwks {
    up: HttpUpstream,
    answer: ReplySwitch,
}

impl FakeJwks {
    async fn start(status: u16, body: String) -> FakeJwks {
        let (up, answer) = HttpUpstream::switchable(Reply::with_body(status, body)).await;
        FakeJwks { up, answer }
    }

    fn serve(&self, status: u16, body: String) {
        self.answer.set(Reply::with_body(status, body));
    }

    fn fetches(&self) -> usize {
        self.up.heads()
    }
}

async fn gateway(jwks: &FakeJwks, up: &HttpUpstream, interval: &str, min: &str) -> TestGateway {
    let keys = Jwt::jwks(&format!("{}/.well-known/jwks.json", jwks.up.url()))
        .set("jwks_refresh_interval", interval)
        .set("jwks_min_refresh", min);
    let config = GatewayConfig::new()
        .jwt(keys)
        .rate_limit(1000, 1.0)
        .route(WF, &up.url(), USER);
    TestGateway::start(&config).await
}

async fn status_with(gw: &TestGateway, token: &str) -> http::Response {
    let auth = format!("Bearer {token}");
    http::get(
        &gw.url(&format!("/dashboard/{WF}/status")),
        &[("authorization", &auth)],
    )
    .await
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

    // The issuer rotates to k2 and drops k1. (Wall clock: `jwks_min_refresh` is
    // measured on the serving thread that handles the request, not on this runtime.)
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
    // The second refresh starts only after the first one has swapped the keys in.
    let seen = jwks.fetches();
    on_paused_clock("two background refreshes", Duration::from_secs(5), || {
        jwks.fetches() >= seen + 2
    })
    .await;
    assert_eq!(status_with(&gw, &token(&b, Some("k2"))).await.status, 200);
    assert_eq!(status_with(&gw, &token(&a, Some("k1"))).await.status, 200);
    // A bad answer keeps the previous keys.
    jwks.serve(200, "{\"keys\": []}".into());
    let seen = jwks.fetches();
    on_paused_clock(
        "two refreshes with an empty set",
        Duration::from_secs(5),
        || jwks.fetches() >= seen + 2,
    )
    .await;
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
    // The endpoint recovers: the background retry (after 1 s, 2 s, …: a paused
    // clock's seconds) fetches the keys.
    jwks.serve(200, set(vec![jwk(&a, "k1")]));
    let failed = jwks.fetches();
    on_paused_clock(
        "a retry after the failures",
        Duration::from_secs(60),
        || jwks.fetches() > failed,
    )
    .await;
    // Once that fetch is through, the keys serve (503 until then, never another answer).
    within("the keys in use", STEP, || async {
        let r = status_with(&gw, &t).await;
        assert!([200, 503].contains(&r.status), "{}", r.describe());
        r.status == 200
    })
    .await;
    // A token signed with a key outside the set stays refused.
    let r = status_with(&gw, &token(&key_b(), Some("k1"))).await;
    assert_eq!(r.status, 401, "{}", r.describe());
}
