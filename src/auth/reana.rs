//! Introspection against reana-server (`[auth.reana]`, SPEC §2 and §4): who owns a
//! credential (`GET /api/you`) and whether it may see a workflow
//! (`GET /api/workflows/<id>/status`), both behind the [`DecisionCache`].
//!
//! The credential is sent the way REANA expects it: a token as `?access_token=`, the
//! web-UI session as `Cookie: session=…`. Any answer other than a clear yes or no
//! (timeout, 5xx, malformed JSON, connection refused) is [`Unavailable`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{COOKIE, HOST};
use http::{HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower::ServiceExt;

use super::cache::{CacheKey, Decision, DecisionCache, KeyKind, Rejection, Unavailable};
use super::AuthError;
use crate::config::{ConfigError, ReanaConfig};

/// Largest reana-server (or JWKS) response body read.
const MAX_BODY: usize = 1 << 20;

/// The HTTP(S) client used towards reana-server and JWKS endpoints: hyper-util's
/// pooled client behind a bound on the requests in flight (a tower layer), so that a
/// burst of new credentials cannot pile onto reana-server; a request waits for a
/// slot within its own deadline.
pub(crate) type HttpsClient =
    tower::limit::ConcurrencyLimit<Client<HttpsConnector<HttpConnector>, Empty<Bytes>>>;

/// An HTTP/1.1 client for `http://` and `https://` URLs (Mozilla roots, ring) with at
/// most `max_concurrent` requests in flight.
pub(crate) fn https_client(
    connect_timeout: Duration,
    max_concurrent: usize,
    key: &str,
) -> Result<HttpsClient, ConfigError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let https = HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| ConfigError::key(key, format!("cannot set up TLS: {e}")))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let client = Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(https);
    Ok(tower::ServiceBuilder::new()
        .concurrency_limit(max_concurrent)
        .service(client))
}

/// GETs `req` within `deadline` (waiting for a free slot included) and reads at most
/// [`MAX_BODY`] bytes of the body. Errors are fixed labels (never the URL, which may
/// carry a credential).
pub(crate) async fn fetch(
    client: &HttpsClient,
    req: Request<Empty<Bytes>>,
    deadline: Duration,
) -> Result<(StatusCode, Bytes), &'static str> {
    let exchange = async {
        // A clone shares the limit's slots; `oneshot` waits for one.
        let response = client.clone().oneshot(req).await.map_err(|e| {
            if e.is_connect() {
                "connect failed"
            } else {
                "request failed"
            }
        })?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|_| "body unreadable or too large")?;
        Ok((status, body.to_bytes()))
    };
    tokio::time::timeout(deadline, exchange)
        .await
        .map_err(|_| "timed out")?
}

/// A credential as reana-server takes it.
#[derive(Clone, Copy)]
pub enum ReanaCredential<'a> {
    /// An access token (`?access_token=`).
    Token(&'a str),
    /// The web UI's Flask `session` cookie.
    Session(&'a str),
}

impl ReanaCredential<'_> {
    fn kinds(&self) -> (KeyKind, KeyKind) {
        match self {
            ReanaCredential::Token(_) => (KeyKind::TokenIdentity, KeyKind::TokenWorkflow),
            ReanaCredential::Session(_) => (KeyKind::SessionIdentity, KeyKind::SessionWorkflow),
        }
    }

    fn secret(&self) -> &str {
        match self {
            ReanaCredential::Token(s) | ReanaCredential::Session(s) => s,
        }
    }
}

static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The reana-server client plus its decision cache.
pub struct Reana {
    client: HttpsClient,
    server_url: String,
    host: Option<HeaderValue>,
    timeout: Duration,
    cache: DecisionCache,
}

impl Reana {
    /// Builds the client and the cache (no request is made).
    pub fn new(cfg: &ReanaConfig) -> Result<Self, ConfigError> {
        let host = cfg
            .host_header
            .as_deref()
            .map(HeaderValue::from_str)
            .transpose()
            .map_err(|_| ConfigError::key("auth.reana.host_header", "is not a header value"))?;
        Ok(Reana {
            client: https_client(cfg.timeout, cfg.max_concurrent, "auth.reana.server_url")?,
            server_url: cfg.server_url.trim_end_matches('/').to_string(),
            host,
            timeout: cfg.timeout,
            cache: DecisionCache::new(cfg.cache_max_entries, cfg.cache_ttl, cfg.negative_ttl),
        })
    }

    /// Number of cached decisions.
    pub fn cached_decisions(&self) -> usize {
        self.cache.len()
    }

    /// The user the credential belongs to (`id_` of `GET /api/you`).
    pub async fn identify(&self, cred: ReanaCredential<'_>) -> Result<Arc<str>, AuthError> {
        let key = self.cache.key(cred.kinds().0, cred.secret(), None);
        let decision = self
            .cache
            .get_or_fetch(key, || {
                self.call(key, cred, "/api/you".into(), classify_you)
            })
            .await
            .map_err(|Unavailable| AuthError::Unavailable)?;
        match decision {
            Decision::User(user) => Ok(user),
            Decision::Rejected(Rejection::Revoked) => Err(AuthError::Invalid("token revoked")),
            Decision::Rejected(Rejection::Unauthenticated) => {
                Err(AuthError::Invalid("not signed in to REANA"))
            }
            Decision::Rejected(Rejection::NotValid) | Decision::Visible | Decision::NotVisible => {
                Err(AuthError::Invalid("token not valid"))
            }
        }
    }

    /// Whether reana-server shows `workflow` to the credential's user (owner or shared
    /// with): `GET /api/workflows/<id>/status` answering 200.
    pub async fn visible(
        &self,
        cred: ReanaCredential<'_>,
        workflow: &str,
    ) -> Result<bool, AuthError> {
        let key = self
            .cache
            .key(cred.kinds().1, cred.secret(), Some(workflow));
        let path = format!("/api/workflows/{workflow}/status");
        let decision = self
            .cache
            .get_or_fetch(key, || self.call(key, cred, path, classify_status))
            .await
            .map_err(|Unavailable| AuthError::Unavailable)?;
        Ok(decision == Decision::Visible)
    }

    /// One call to reana-server, classified by `classify`.
    async fn call(
        &self,
        key: CacheKey,
        cred: ReanaCredential<'_>,
        path: String,
        classify: fn(StatusCode, &[u8]) -> Result<Decision, Unavailable>,
    ) -> Result<Decision, Unavailable> {
        let route = if path == "/api/you" {
            "you"
        } else {
            "workflow_status"
        };
        let req = self.request(&path, cred).map_err(|why| {
            tracing::warn!(
                route,
                credential = key.fingerprint(),
                why,
                "cannot build a reana-server request"
            );
            Unavailable
        })?;
        let (status, body) = fetch(&self.client, req, self.timeout)
            .await
            .map_err(|why| {
                tracing::warn!(route, why, "reana-server unavailable");
                Unavailable
            })?;
        let decision = classify(status, &body);
        match &decision {
            Ok(d) => {
                tracing::debug!(route, credential = key.fingerprint(), decision = ?d, "reana-server answered")
            }
            Err(Unavailable) => {
                tracing::warn!(route, status = status.as_u16(), "reana-server unavailable")
            }
        }
        decision
    }

    /// `GET <server_url><path>` carrying the credential, `Host` and
    /// `X-Forwarded-Proto: https` when `host_header` is set.
    fn request(
        &self,
        path: &str,
        cred: ReanaCredential<'_>,
    ) -> Result<Request<Empty<Bytes>>, &'static str> {
        let mut uri = format!("{}{path}", self.server_url);
        let mut cookie = None;
        match cred {
            ReanaCredential::Token(token) => {
                uri.push_str("?access_token=");
                uri.extend(form_urlencoded::byte_serialize(token.as_bytes()));
            }
            ReanaCredential::Session(session) => {
                let mut value = HeaderValue::from_str(&format!("session={session}"))
                    .map_err(|_| "session cookie is not a header value")?;
                value.set_sensitive(true);
                cookie = Some(value);
            }
        }
        let mut builder = Request::get(uri);
        if let Some(cookie) = cookie {
            builder = builder.header(COOKIE, cookie);
        }
        if let Some(host) = &self.host {
            builder = builder
                .header(HOST, host.clone())
                .header(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("https"));
        }
        builder
            .body(Empty::new())
            .map_err(|_| "invalid reana-server URL")
    }
}

/// `GET /api/you`: 200 with a non-empty string `id_` → the user; 401 and 403 → refused
/// (403 "User access token revoked." → revoked); anything else → unavailable.
fn classify_you(status: StatusCode, body: &[u8]) -> Result<Decision, Unavailable> {
    match status {
        StatusCode::OK => {
            let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| Unavailable)?;
            match value.get("id_").and_then(|v| v.as_str()) {
                Some(id) if !id.is_empty() => Ok(Decision::User(id.into())),
                _ => Err(Unavailable),
            }
        }
        StatusCode::UNAUTHORIZED => Ok(Decision::Rejected(Rejection::Unauthenticated)),
        StatusCode::FORBIDDEN => {
            let message = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned));
            let revoked = message.is_some_and(|m| m.to_ascii_lowercase().contains("revoked"));
            Ok(Decision::Rejected(if revoked {
                Rejection::Revoked
            } else {
                Rejection::NotValid
            }))
        }
        _ => Err(Unavailable),
    }
}

/// `GET /api/workflows/<id>/status`: 200 → visible; 401, 403 and 404 → not visible
/// (a definite "no"); anything else → unavailable.
fn classify_status(status: StatusCode, _body: &[u8]) -> Result<Decision, Unavailable> {
    match status {
        StatusCode::OK => Ok(Decision::Visible),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
            Ok(Decision::NotVisible)
        }
        _ => Err(Unavailable),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn reana(host: Option<&str>) -> Reana {
        Reana::new(&ReanaConfig {
            server_url: "http://reana-server.reana.svc:80/".into(),
            public_url: None,
            host_header: host.map(str::to_owned),
            cache_ttl: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            cache_max_entries: 100,
            max_concurrent: 32,
        })
        .expect("valid config")
    }

    #[test]
    fn api_you_answers() {
        let ok = br#"{"id_": "00000000-0000-4000-8000-0000000000aa", "email": "a@b"}"#;
        assert_eq!(
            classify_you(StatusCode::OK, ok),
            Ok(Decision::User(
                "00000000-0000-4000-8000-0000000000aa".into()
            ))
        );
        for bad in [
            &b"not json"[..],
            br#"{"id_": ""}"#,
            br#"{"id_": 7}"#,
            br#"[]"#,
        ] {
            assert_eq!(classify_you(StatusCode::OK, bad), Err(Unavailable));
        }
        let revoked = br#"{"message": "User access token revoked."}"#;
        assert_eq!(
            classify_you(StatusCode::FORBIDDEN, revoked),
            Ok(Decision::Rejected(Rejection::Revoked))
        );
        let invalid = br#"{"message": "Token not valid."}"#;
        assert_eq!(
            classify_you(StatusCode::FORBIDDEN, invalid),
            Ok(Decision::Rejected(Rejection::NotValid))
        );
        assert_eq!(
            classify_you(StatusCode::FORBIDDEN, b""),
            Ok(Decision::Rejected(Rejection::NotValid))
        );
        assert_eq!(
            classify_you(StatusCode::UNAUTHORIZED, b"{}"),
            Ok(Decision::Rejected(Rejection::Unauthenticated))
        );
        for status in [500, 502, 503, 404, 302, 429] {
            let status = StatusCode::from_u16(status).expect("status");
            assert_eq!(classify_you(status, b"{}"), Err(Unavailable), "{status}");
        }
    }

    #[test]
    fn workflow_status_answers() {
        assert_eq!(classify_status(StatusCode::OK, b""), Ok(Decision::Visible));
        for status in [401, 403, 404] {
            let status = StatusCode::from_u16(status).expect("status");
            assert_eq!(classify_status(status, b""), Ok(Decision::NotVisible));
        }
        for status in [500, 503, 400, 301] {
            let status = StatusCode::from_u16(status).expect("status");
            assert_eq!(classify_status(status, b""), Err(Unavailable));
        }
    }

    #[test]
    fn token_goes_in_the_query_session_in_a_cookie() {
        let r = reana(None);
        let req = r
            .request("/api/you", ReanaCredential::Token("a+b/c=="))
            .expect("request");
        assert_eq!(
            req.uri(),
            "http://reana-server.reana.svc:80/api/you?access_token=a%2Bb%2Fc%3D%3D"
        );
        assert!(req.headers().get(COOKIE).is_none());
        assert!(req.headers().get(HOST).is_none());

        let r = reana(Some("reana.example.org"));
        let req = r
            .request(
                "/api/workflows/w1/status",
                ReanaCredential::Session("s.e-ss"),
            )
            .expect("request");
        assert_eq!(
            req.uri(),
            "http://reana-server.reana.svc:80/api/workflows/w1/status"
        );
        assert_eq!(req.headers()[COOKIE], "session=s.e-ss");
        assert!(req.headers()[COOKIE].is_sensitive());
        assert_eq!(req.headers()[HOST], "reana.example.org");
        assert_eq!(req.headers()["x-forwarded-proto"], "https");
        assert!(r
            .request("/api/you", ReanaCredential::Session("a\nb"))
            .is_err());
    }

    /// A server that answers each request after `delay` with a 200, counting the
    /// requests it holds at once; returns its address and the highest count seen.
    async fn slow_server(delay: Duration) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let seen = Arc::clone(&most);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (now, most) = (Arc::clone(&now), Arc::clone(&most));
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    // One request per connection is enough: its head fits one read.
                    if stream.read(&mut buf).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let held = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(held, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                        )
                        .await;
                });
            }
        });
        (addr, seen)
    }

    #[tokio::test]
    async fn calls_in_flight_are_bounded_and_wait_for_a_slot() {
        let (addr, most) = slow_server(Duration::from_millis(100)).await;
        let client = https_client(Duration::from_secs(1), 2, "test").expect("client");
        let get = |i: usize| {
            let client = client.clone();
            async move {
                let req = Request::get(format!("http://{addr}/api/you?n={i}"))
                    .body(Empty::new())
                    .expect("request");
                fetch(&client, req, Duration::from_secs(5)).await
            }
        };
        let all = futures_util::future::join_all((0..6).map(get));
        let results = tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .expect("all answered");
        for result in results {
            assert_eq!(result.map(|(status, _)| status), Ok(StatusCode::OK));
        }
        assert_eq!(most.load(Ordering::SeqCst), 2, "two at a time, never more");
    }

    #[tokio::test]
    async fn waiting_for_a_slot_counts_against_the_deadline() {
        let (addr, _) = slow_server(Duration::from_secs(3)).await;
        let client = https_client(Duration::from_secs(1), 1, "test").expect("client");
        let req = |path: &str| {
            Request::get(format!("http://{addr}{path}"))
                .body(Empty::new())
                .expect("request")
        };
        let first = fetch(&client, req("/a"), Duration::from_secs(5));
        let second = async {
            // Starts once the first holds the only slot.
            tokio::time::sleep(Duration::from_millis(200)).await;
            fetch(&client, req("/b"), Duration::from_millis(300)).await
        };
        let (first, second) = tokio::time::timeout(
            Duration::from_secs(10),
            futures_util::future::join(first, second),
        )
        .await
        .expect("both ended");
        assert_eq!(second, Err("timed out"));
        assert_eq!(first.map(|(status, _)| status), Ok(StatusCode::OK));
    }

    #[tokio::test]
    async fn refused_connection_is_unavailable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let r = Reana::new(&ReanaConfig {
            server_url: format!("http://{addr}"),
            public_url: None,
            host_header: None,
            cache_ttl: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            cache_max_entries: 100,
            max_concurrent: 32,
        })
        .expect("config");
        let got = tokio::time::timeout(
            Duration::from_secs(10),
            r.identify(ReanaCredential::Token("t")),
        )
        .await;
        assert_eq!(got, Ok(Err(AuthError::Unavailable)));
        assert_eq!(r.cached_decisions(), 0);
    }
}
