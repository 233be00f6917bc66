//! The request path: parse the URL, authenticate, look up the route, authorize,
//! then forward HTTP or WebSocket. Errors become responses in `error.rs` only.

mod frame;
pub mod headers;
mod http;
pub mod path;
mod pump;
pub(crate) mod raw;
mod relay;
pub(crate) mod upstream;
mod upstream_socket;
mod ws;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ::http::header::{CACHE_CONTROL, HOST, LOCATION, REFERRER_POLICY, SET_COOKIE};
use ::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use bytes::Bytes;

use crate::auth::credentials::{self, Credential};
use crate::auth::{limiter, Access, AuthError, Identity, Verifier};
use crate::body::{empty, Body, BoxError};
use crate::error::{ErrorContext, ProxyError};
use crate::logging::access::AccessLine;
use crate::metrics::{AuthResult, RequestKind};
use crate::routes::Route;
use crate::state::State;
use path::Target;
use raw::{Fields, RawHead};

pub use relay::{relay, relay_checked, Recheck, RelayEnd, RelayLimits};

#[cfg(test)]
mod service_tests;

#[cfg(test)]
mod retry_after_tests {
    use std::time::Duration;

    #[test]
    fn waits_become_whole_seconds_within_a_day() {
        let secs = super::retry_after_secs;
        assert_eq!(secs(Duration::ZERO), 1);
        assert_eq!(secs(Duration::from_millis(1)), 1);
        assert_eq!(secs(Duration::from_millis(1001)), 2);
        assert_eq!(secs(Duration::from_secs(30)), 30);
        assert_eq!(secs(Duration::MAX), 86_400);
    }
}

/// What a client's request body must be: any body of bytes (hyper's `Incoming` on
/// the listeners, in-memory bodies in tests).
pub(crate) trait ClientBody:
    http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

impl<B> ClientBody for B
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the access log says about a request beyond method, path and status.
#[derive(Debug, Default)]
struct Outcome<'a> {
    user: Option<Arc<str>>,
    workflow: Option<&'a str>,
    client: Option<IpAddr>,
}

/// Everything the forwarders need about an authorized request.
pub(crate) struct Forward<'a> {
    route: &'a Route,
    prefix: &'a str,
    /// Normalised upstream path plus the query without credentials.
    path_and_query: String,
    client_ip: IpAddr,
    proto: &'static str,
    request_id: &'a HeaderValue,
    cookie_name: &'a str,
    /// The client's fields, surveyed before any was changed.
    survey: headers::Survey,
    /// When the caller's credential expires (closes WebSockets; `None` for plain
    /// requests).
    deadline: Option<tokio::time::Instant>,
    /// Periodic re-check of an introspected credential (closes WebSockets).
    recheck: Option<Recheck>,
}

impl Forward<'_> {
    /// Removes credentials and adds the forwarding fields and the request id to an
    /// upstream request's map (a WebSocket handshake's).
    fn prepare_headers(&self, headers: &mut HeaderMap) {
        self.added_fields(headers).insert_into(headers);
    }

    /// Removes credentials and the client's forwarding fields and request id from an
    /// upstream request; the gateway's own, to be written after the rest.
    fn added_fields(&self, headers: &mut HeaderMap) -> headers::Added {
        credentials::strip_surveyed(headers, self.cookie_name, self.survey);
        let host = headers.get(HOST).cloned();
        let added = self.added(headers::forwarded_for(headers, self.survey), host.as_ref());
        headers::remove_added(headers, self.survey);
        added
    }

    /// The gateway's own fields, after the client's `X-Forwarded-For` values and
    /// with the `Host` the scheduler gets.
    fn added<'v>(
        &self,
        forwarded_for: impl Iterator<Item = &'v [u8]>,
        host: Option<&HeaderValue>,
    ) -> headers::Added {
        headers::added_fields(
            forwarded_for,
            self.client_ip,
            self.proto,
            host,
            self.prefix,
            self.request_id,
        )
    }
}

/// A response for the client. The scheduler client may keep the scheduler's header
/// fields as lines (see `RawFields`): the gateway's HTTP/1.1 loop writes those as
/// they are, hyper gets them in the map ([`Reply::into_response`]). Carried beside
/// the response, not in its extensions, which would cost three allocations.
pub(crate) struct Reply {
    pub(crate) response: Response<Body>,
    pub(crate) raw: Option<upstream::RawFields>,
}

impl From<Response<Body>> for Reply {
    fn from(response: Response<Body>) -> Reply {
        Reply {
            response,
            raw: None,
        }
    }
}

impl Reply {
    /// The response with every header field in its map (for hyper).
    pub(crate) fn into_response(self) -> Response<Body> {
        let Reply { mut response, raw } = self;
        if let Some(raw) = raw {
            let rest = std::mem::take(response.headers_mut());
            *response.headers_mut() = raw.into_map(rest);
        }
        response
    }
}

/// Handles one request on the public listener. Never fails: every error is turned
/// into a response here, counted, and logged once. The request's fields are in its
/// map, or (from the gateway's own HTTP/1.1 loop) in `raw`, its map empty.
pub(crate) async fn handle<B: ClientBody>(
    state: Arc<State>,
    req: Request<B>,
    raw: Option<RawHead>,
    client: SocketAddr,
) -> Reply {
    let start = Instant::now();
    let fields = Fields::of(&req, raw.as_ref());
    let survey = fields.survey();
    let request_id = survey
        .has(headers::Survey::REQUEST_ID)
        .then(|| headers::request_id_of(fields))
        .flatten()
        .unwrap_or_else(new_request_id);
    let method = req.method().clone();
    // The URI shares the request head's buffer: kept for the log without a copy.
    let uri = req.uri().clone();
    let html = survey.has(headers::Survey::ACCEPT) && headers::wants_html_of(fields);
    let kind = if survey.has(headers::Survey::CONNECTION)
        && survey.has(headers::Survey::UPGRADE)
        && headers::is_websocket_upgrade(req.method(), req.headers())
    {
        RequestKind::WebSocket
    } else {
        RequestKind::Http
    };
    let mut outcome = Outcome::default();
    let asked = Asked {
        uri: &uri,
        kind,
        survey,
        request_id: &request_id,
    };
    let result = dispatch(&state, req, raw, asked, client, &mut outcome).await;
    let id = request_id.to_str().unwrap_or("-");
    let mut reply = match result {
        Ok(reply) => reply,
        Err(error) => refusal(&state, error, html, id),
    };
    let elapsed = start.elapsed();
    let status = reply.response.status().as_u16();
    state.metrics.request(kind, status, elapsed);
    AccessLine {
        request_id: id,
        method: method.as_str(),
        path: uri.path(),
        status,
        duration: elapsed,
        user: outcome.user.as_deref().unwrap_or("-"),
        workflow: outcome.workflow.unwrap_or("-"),
        client: outcome.client.unwrap_or_else(|| client.ip()),
        websocket: kind == RequestKind::WebSocket,
    }
    .log();
    // After the scheduler's fields when they are kept as lines (see `RawFields`).
    match &mut reply.raw {
        Some(raw) => raw.push(&X_REQUEST_ID, &request_id),
        None => {
            reply
                .response
                .headers_mut()
                .insert(X_REQUEST_ID.clone(), request_id);
        }
    }
    reply
}

/// The response to a refused request.
#[cold]
#[inline(never)]
fn refusal(state: &State, error: ProxyError, html: bool, request_id: &str) -> Reply {
    tracing::debug!(request_id, error = error.as_label(), "request refused");
    let ctx = ErrorContext {
        html,
        public_url: state.auth_config.public_url(),
    };
    Reply::from(error.into_response(&ctx))
}

/// 32 random hexadecimal digits. The value owns its digits behind a reference
/// count: the copy for the scheduler's request allocates nothing.
fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bits = rand::random::<u128>();
    let mut id = [0u8; 32];
    for digit in id.iter_mut().rev() {
        *digit = HEX[(bits & 0xf) as usize];
        bits >>= 4;
    }
    HeaderValue::from_maybe_shared(Bytes::from_owner(id))
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// What `handle` learnt of a request before dispatching it.
struct Asked<'u> {
    /// The request's URI (a clone sharing its bytes, which the route and the access
    /// line borrow from while the request itself moves on).
    uri: &'u ::http::Uri,
    kind: RequestKind,
    survey: headers::Survey,
    request_id: &'u HeaderValue,
}

async fn dispatch<'u, B: ClientBody>(
    state: &Arc<State>,
    mut req: Request<B>,
    raw: Option<RawHead>,
    asked: Asked<'u>,
    client: SocketAddr,
    outcome: &mut Outcome<'u>,
) -> Result<Reply, ProxyError> {
    let Asked {
        uri,
        kind,
        survey,
        request_id,
    } = asked;
    if Fields::of(&req, raw.as_ref()).size() > state.upstream.max_header_bytes {
        return Err(ProxyError::HeaderTooLarge);
    }
    let target = path::parse(uri.path(), state.reana_paths).map_err(|_| ProxyError::NotFound)?;
    let query = uri.query();
    let (workflow, prefix, rest) = match target {
        Target::Bare { workflow, prefix } => {
            outcome.workflow = Some(workflow);
            return Ok(to_status_page(prefix, query));
        }
        Target::Dashboard {
            workflow,
            prefix,
            rest,
        } => (workflow, prefix, rest),
    };
    outcome.workflow = Some(workflow);
    let websocket = kind == RequestKind::WebSocket;
    let Admitted {
        credential,
        identity,
        route,
    } = admit(
        state,
        &req,
        raw.as_ref(),
        survey,
        client,
        workflow,
        websocket,
        outcome,
    )
    .await?;

    let path_and_query = match query.and_then(credentials::strip_query) {
        Some(q) => format!("{rest}?{q}"),
        None => rest.into_owned(),
    };
    let is_read = req.method() == Method::GET || req.method() == Method::HEAD;
    if credential.from_query() && !websocket && is_read {
        let location = format!("{prefix}{path_and_query}");
        if let Some(response) = cookie_redirect(state, &credential, &identity, prefix, &location) {
            return Ok(response.into());
        }
    }

    let recheck = (websocket && identity.verifier == Verifier::Reana)
        .then(|| recheck(state, credential, &identity, &route));
    let fwd = Forward {
        route: &route,
        prefix,
        path_and_query,
        // Each hop appends its TCP peer: a reader applying the trusted-proxy rule to
        // the forwarded chain arrives at `client_ip`, as the limiter did.
        client_ip: client.ip().to_canonical(),
        proto: if state.tls { "https" } else { "http" },
        request_id,
        cookie_name: &state.auth_config.cookie_name,
        survey,
        // Only a WebSocket outlives its request: two clock readings saved otherwise.
        deadline: identity
            .expires_at
            .filter(|_| websocket)
            .map(deadline_instant),
        recheck,
    };
    if websocket {
        // The HTTP/1.1 loop hands upgrades to hyper: never a raw head here, but
        // the handshake would get its fields all the same.
        if let Some(raw) = &raw {
            *req.headers_mut() = raw.to_map();
        }
        // Boxed: the handshake's state is large and most requests are not upgrades.
        Box::pin(ws::forward(state, req, fwd))
            .await
            .map(Reply::from)
    } else {
        http::forward(state, req, raw, fwd).await
    }
}

/// The redirect from a dashboard's bare prefix to its status page.
// Rare paths are kept out of line: the common one stays in fewer cache lines.
#[cold]
#[inline(never)]
fn to_status_page(prefix: &str, query: Option<&str>) -> Reply {
    let location = match query {
        Some(q) => format!("{prefix}/status?{q}"),
        None => format!("{prefix}/status"),
    };
    redirect(StatusCode::FOUND, &location).into()
}

/// A request that passed every check, with what the forwarders need of them.
struct Admitted {
    credential: Credential,
    identity: Identity,
    route: Arc<Route>,
}

/// Every check before forwarding, in order: WebSocket Origin, failure limit of the
/// client address, credential, route, access, cluster readiness.
#[allow(clippy::too_many_arguments)]
async fn admit<B>(
    state: &State,
    req: &Request<B>,
    raw: Option<&RawHead>,
    survey: headers::Survey,
    client: SocketAddr,
    workflow: &str,
    websocket: bool,
    outcome: &mut Outcome<'_>,
) -> Result<Admitted, ProxyError> {
    if websocket {
        check_origin(state, req)?;
    }
    let fields = Fields::of(req, raw);
    let client_ip = limiter::client_addr_of(client.ip(), fields, &state.trusted_proxies);
    outcome.client = Some(client_ip);
    let cookie_name = &state.auth_config.cookie_name;
    let credential = credentials::extract_surveyed(fields, survey, req.uri().query(), cookie_name);
    let (credential, identity) = authenticate(state, credential, client_ip).await?;
    outcome.user = Some(identity.user.clone());
    let route = state
        .routes
        .lookup(workflow)
        .ok_or(ProxyError::WorkflowNotFound)?;
    authorize(state, &identity, &credential, &route, req.method()).await?;
    if !route.ready {
        return Err(ProxyError::ClusterStarting);
    }
    Ok(Admitted {
        credential,
        identity,
        route,
    })
}

/// SPEC §4: a WebSocket handshake from a foreign Origin is refused.
#[inline(never)]
fn check_origin<B>(state: &State, req: &Request<B>) -> Result<(), ProxyError> {
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or(req.uri().authority().map(|a| a.as_str()));
    let origin = req.headers().get(::http::header::ORIGIN);
    if headers::origin_allowed(origin, host, &state.auth_config.allowed_origins) {
        Ok(())
    } else {
        Err(ProxyError::OriginRejected)
    }
}

/// Refuses clients with too many failures (before any verification), verifies the
/// credential, and counts a rejected one against the client's address.
async fn authenticate(
    state: &State,
    credential: Option<Credential>,
    client_ip: IpAddr,
) -> Result<(Credential, Identity), ProxyError> {
    let Some(credential) = credential else {
        state.metrics.auth(AuthResult::Missing);
        return Err(ProxyError::Unauthenticated);
    };
    if let Err(wait) = state.auth.limiter().check(client_ip) {
        state.metrics.auth(AuthResult::RateLimited);
        tracing::debug!(client = %client_ip, "too many failed authentications");
        return Err(ProxyError::TooManyRequests {
            retry_after_secs: retry_after_secs(wait),
        });
    }
    match state.auth.authenticate(&credential).await {
        Ok(identity) => Ok((credential, identity)),
        Err(e) => Err(not_authenticated(state, e, client_ip)),
    }
}

/// Counts a credential that did not verify (against the client's address too, when
/// it was wrong rather than unverifiable).
#[cold]
#[inline(never)]
fn not_authenticated(state: &State, e: AuthError, client_ip: IpAddr) -> ProxyError {
    state.metrics.auth(match e {
        AuthError::Missing => AuthResult::Missing,
        AuthError::Expired => AuthResult::Expired,
        AuthError::Invalid(_) => AuthResult::Invalid,
        AuthError::Unavailable => AuthResult::Unavailable,
    });
    if matches!(e, AuthError::Invalid(_) | AuthError::Expired) {
        state.auth.limiter().record_failure(client_ip);
    }
    ProxyError::from(e)
}

/// A wait as whole seconds for `Retry-After`: rounded up, at least 1, at most a day.
fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait
        .as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0));
    secs.clamp(1, 86_400)
}

/// Owner: anything. Shared: GET and HEAD only (a WebSocket handshake is a GET).
async fn authorize(
    state: &State,
    identity: &Identity,
    credential: &Credential,
    route: &Route,
    method: &Method,
) -> Result<(), ProxyError> {
    let access = state.auth.authorize(identity, credential, route).await;
    let (result, label) = match access {
        Ok(Access::Owner) => (Ok(()), AuthResult::Allowed),
        Ok(Access::Shared) if method == Method::GET || method == Method::HEAD => {
            (Ok(()), AuthResult::Allowed)
        }
        Ok(Access::Shared) => (Err(ProxyError::ReadOnly), AuthResult::Forbidden),
        Ok(Access::Denied) => (Err(ProxyError::Forbidden), AuthResult::Forbidden),
        Err(AuthError::Unavailable) => (Err(ProxyError::AuthUnavailable), AuthResult::Unavailable),
        Err(e @ (AuthError::Missing | AuthError::Expired | AuthError::Invalid(_))) => {
            (Err(ProxyError::from(e)), AuthResult::Invalid)
        }
    };
    state.metrics.auth(label);
    result
}

/// Re-checks an introspected credential every `cache_ttl` while a WebSocket lives:
/// still the same user and still allowed. reana-server being unavailable keeps the
/// socket open (the next check decides); a definite "no" closes it with 1008.
#[inline(never)]
fn recheck(
    state: &Arc<State>,
    credential: Credential,
    identity: &Identity,
    route: &Arc<Route>,
) -> Recheck {
    let every = state
        .auth_config
        .reana
        .as_ref()
        .map_or(Duration::from_secs(30), |r| r.cache_ttl);
    let (state, user, route) = (Arc::clone(state), identity.user.clone(), Arc::clone(route));
    let credential = Arc::new(credential);
    Recheck {
        every,
        check: Box::new(move || {
            let (state, user, route, credential) = (
                Arc::clone(&state),
                user.clone(),
                Arc::clone(&route),
                Arc::clone(&credential),
            );
            Box::pin(async move {
                let identity = match state.auth.authenticate(&credential).await {
                    Ok(identity) if identity.user == user => identity,
                    Ok(_)
                    | Err(AuthError::Missing | AuthError::Expired | AuthError::Invalid(_)) => {
                        return false
                    }
                    Err(AuthError::Unavailable) => return true,
                };
                match state.auth.authorize(&identity, &credential, &route).await {
                    Ok(Access::Owner | Access::Shared) | Err(AuthError::Unavailable) => true,
                    Ok(Access::Denied)
                    | Err(AuthError::Missing | AuthError::Expired | AuthError::Invalid(_)) => false,
                }
            })
        }),
    }
}

/// Converts a wall-clock expiry into a tokio instant (already past → now).
fn deadline_instant(at: SystemTime) -> tokio::time::Instant {
    let remaining = at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    tokio::time::Instant::now() + remaining
}

fn redirect(status: StatusCode, location: &str) -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A credential given in the query string: keep it in an HttpOnly cookie scoped to
/// the workflow's prefix and send the browser to the same URL without it. `None`
/// when the credential cannot be a cookie value (the request is then served as is).
#[cold]
#[inline(never)]
fn cookie_redirect(
    state: &State,
    credential: &Credential,
    identity: &Identity,
    prefix: &str,
    location: &str,
) -> Option<Response<Body>> {
    let mut max_age = state.auth_config.cookie_max_age;
    if let Some(exp) = identity.expires_at {
        max_age = max_age.min(
            exp.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
        );
    }
    let cookie = credentials::set_cookie(
        &state.auth_config.cookie_name,
        credential.secret(),
        prefix,
        max_age,
        state.auth_config.cookie_secure,
    )?;
    let mut response = redirect(StatusCode::SEE_OTHER, location);
    let headers = response.headers_mut();
    headers.insert(SET_COOKIE, cookie);
    // The URL this answers carries the credential: never send it on as a Referer.
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    Some(response)
}
