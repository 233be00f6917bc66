//! `ProxyError`: every way a request can fail, and the one place where a failure
//! becomes an HTTP response (status, JSON or HTML page, headers).

use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, RETRY_AFTER,
    SEC_WEBSOCKET_VERSION, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderValue, Response, StatusCode};

use crate::auth::AuthError;
use crate::body::{full, Body};
use crate::pages::{escape, page};

/// Why the gateway answered instead of the scheduler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// Not a dashboard path, or a malformed workflow id or path.
    #[error("not found")]
    NotFound,
    /// An authorized caller asked for a workflow without a running Dask cluster.
    #[error("no dask cluster for this workflow")]
    WorkflowNotFound,
    /// The request carries no credential.
    #[error("no credential")]
    Unauthenticated,
    /// The credential was rejected.
    #[error("credential rejected: {0}")]
    BadCredential(AuthError),
    /// Authenticated, but not allowed to see this workflow.
    #[error("not allowed for this workflow")]
    Forbidden,
    /// A user the workflow is shared with tried a method other than GET/HEAD.
    #[error("shared dashboards are read-only")]
    ReadOnly,
    /// reana-server (or the JWKS endpoint) is unreachable and nothing is cached.
    #[error("authentication service unavailable")]
    AuthUnavailable,
    /// Too many failed authentications from this client address.
    #[error("too many failed authentications")]
    TooManyRequests {
        /// How long until the client's next attempt would be considered, rounded up
        /// to whole seconds (at least 1, at most a day): the `Retry-After` value.
        retry_after_secs: u64,
    },
    /// The workflow's scheduler Service exists but has no ready endpoint yet.
    #[error("dask cluster starting")]
    ClusterStarting,
    /// A WebSocket handshake from an origin that is not allowed.
    #[error("websocket origin not allowed")]
    OriginRejected,
    /// The request is malformed (bad WebSocket handshake and the like).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// A WebSocket handshake of a protocol version other than 13 (RFC 6455 §4.4).
    #[error("unsupported websocket version")]
    WebSocketVersion,
    /// The request head is larger than `upstream.max_header_bytes`.
    #[error("request header fields too large")]
    HeaderTooLarge,
    /// The scheduler could not be reached.
    #[error("upstream connect failed")]
    UpstreamConnect,
    /// The scheduler did not send its response head in time.
    #[error("upstream response timed out")]
    UpstreamTimeout,
    /// The scheduler answered with something that is not valid HTTP or WebSocket.
    #[error("upstream protocol error")]
    UpstreamProtocol,
}

impl From<AuthError> for ProxyError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing => ProxyError::Unauthenticated,
            AuthError::Unavailable => ProxyError::AuthUnavailable,
            other => ProxyError::BadCredential(other),
        }
    }
}

/// Seconds a client is asked to wait before retrying a 429 or 503.
const RETRY_AFTER_SECONDS: &str = "5";

/// The policy of every gateway-made page (`pages.rs`): its one inline `<style>`,
/// nothing else loaded, no base, no form, not framed. Links and the starting-cluster
/// page's `<meta http-equiv="refresh">` are navigations, which it does not restrict.
const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What the error page may say beyond the error itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorContext<'a> {
    /// The client asked for HTML (a browser).
    pub html: bool,
    /// Public URL of the REANA web UI, for the 401 page.
    pub public_url: Option<&'a str>,
}

impl ProxyError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NotFound | ProxyError::WorkflowNotFound => StatusCode::NOT_FOUND,
            ProxyError::Unauthenticated | ProxyError::BadCredential(_) => StatusCode::UNAUTHORIZED,
            ProxyError::Forbidden | ProxyError::ReadOnly | ProxyError::OriginRejected => {
                StatusCode::FORBIDDEN
            }
            ProxyError::AuthUnavailable | ProxyError::ClusterStarting => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::WebSocketVersion => StatusCode::UPGRADE_REQUIRED,
            ProxyError::HeaderTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::UpstreamConnect | ProxyError::UpstreamProtocol => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// A fixed label for logs and metrics (bounded cardinality).
    pub fn as_label(&self) -> &'static str {
        match self {
            ProxyError::NotFound => "not_found",
            ProxyError::WorkflowNotFound => "workflow_not_found",
            ProxyError::Unauthenticated => "unauthenticated",
            ProxyError::BadCredential(AuthError::Expired) => "expired_credential",
            ProxyError::BadCredential(_) => "invalid_credential",
            ProxyError::Forbidden => "forbidden",
            ProxyError::ReadOnly => "read_only",
            ProxyError::AuthUnavailable => "auth_unavailable",
            ProxyError::TooManyRequests { .. } => "too_many_requests",
            ProxyError::ClusterStarting => "cluster_starting",
            ProxyError::OriginRejected => "origin_rejected",
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::WebSocketVersion => "websocket_version",
            ProxyError::HeaderTooLarge => "header_too_large",
            ProxyError::UpstreamConnect => "upstream_connect",
            ProxyError::UpstreamTimeout => "upstream_timeout",
            ProxyError::UpstreamProtocol => "upstream_protocol",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ProxyError::NotFound => "Not found",
            ProxyError::WorkflowNotFound => "No running Dask cluster",
            ProxyError::Unauthenticated => "Sign-in required",
            ProxyError::BadCredential(AuthError::Expired) => "Your access has expired",
            ProxyError::BadCredential(_) => "Access token not accepted",
            ProxyError::Forbidden => "Not your workflow",
            ProxyError::ReadOnly => "Read-only access",
            ProxyError::AuthUnavailable => "Sign-in temporarily unavailable",
            ProxyError::TooManyRequests { .. } => "Too many failed sign-in attempts",
            ProxyError::ClusterStarting => "The Dask cluster is starting",
            ProxyError::OriginRejected => "Cross-site request refused",
            ProxyError::BadRequest(_) => "Bad request",
            ProxyError::WebSocketVersion => "Unsupported WebSocket version",
            ProxyError::HeaderTooLarge => "Request headers too large",
            ProxyError::UpstreamConnect => "Dask scheduler unreachable",
            ProxyError::UpstreamTimeout => "Dask scheduler too slow",
            ProxyError::UpstreamProtocol => "Dask scheduler answered badly",
        }
    }

    fn explanation(&self, ctx: &ErrorContext<'_>) -> String {
        let reana_link = match ctx.public_url {
            Some(url) => format!("<a href=\"{0}\">{0}</a>", escape(url)),
            None => "the REANA web interface".to_string(),
        };
        match self {
            ProxyError::NotFound => "There is no dashboard at this address.".into(),
            ProxyError::WorkflowNotFound => "This workflow has no running Dask cluster. \
                The Dask dashboard only exists while the workflow runs: a finished, \
                stopped or unknown workflow has none."
                .into(),
            ProxyError::Unauthenticated | ProxyError::BadCredential(_) => format!(
                "Open the dashboard from REANA: sign in at {reana_link}, go to your \
                 workflow and click its Dashboard icon. A dashboard link that carries an \
                 access token also works."
            ),
            ProxyError::Forbidden => "Only the workflow's owner and the users it is shared \
                with can open its Dask dashboard."
                .into(),
            ProxyError::ReadOnly => "This workflow is shared with you for viewing: its \
                dashboard cannot be changed from your account."
                .into(),
            ProxyError::AuthUnavailable => "REANA could not confirm who you are just now. \
                Try again in a moment."
                .into(),
            ProxyError::TooManyRequests { .. } => {
                "Too many requests with invalid credentials came \
                from your address. Wait a little and open the dashboard from REANA again."
                    .into()
            }
            ProxyError::ClusterStarting => "The workflow's Dask scheduler is not ready yet. \
                This page reloads by itself and shows the dashboard as soon as it is."
                .into(),
            ProxyError::OriginRejected => {
                "A page on another site tried to open this dashboard's live connection.".into()
            }
            ProxyError::BadRequest(why) => format!("The request was malformed: {}.", escape(why)),
            ProxyError::WebSocketVersion => {
                "This dashboard's live connection needs WebSocket version 13.".into()
            }
            ProxyError::HeaderTooLarge => "The request's headers (often its cookies) are too \
                large. Clearing this site's cookies usually helps."
                .into(),
            ProxyError::UpstreamConnect
            | ProxyError::UpstreamTimeout
            | ProxyError::UpstreamProtocol => "The workflow's Dask scheduler did not answer \
                properly. It may be starting or shutting down; try again in a moment."
                .into(),
        }
    }

    /// Turns the error into the response the client sees: an HTML page for browsers,
    /// JSON otherwise. Never contains request data beyond fixed strings.
    pub fn into_response(self, ctx: &ErrorContext<'_>) -> Response<Body> {
        let status = self.status();
        let (content_type, body) = if ctx.html {
            let refresh = matches!(self, ProxyError::ClusterStarting);
            let html = page(
                self.title(),
                &format!("<p>{}</p>", self.explanation(ctx)),
                refresh,
            );
            ("text/html; charset=utf-8", html)
        } else {
            let json = serde_json::json!({
                "error": self.as_label(),
                "message": self.title(),
            });
            ("application/json", json.to_string())
        };
        let mut response = Response::new(full(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
        // The URL of a refused request can carry a rejected token in its query.
        headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        if let ProxyError::TooManyRequests { retry_after_secs } = self {
            headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        if status == StatusCode::UPGRADE_REQUIRED {
            // RFC 6455 §4.4: the versions the server speaks.
            headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        }
        if status == StatusCode::UNAUTHORIZED {
            let challenge = match self {
                ProxyError::BadCredential(_) => "Bearer error=\"invalid_token\"",
                _ => "Bearer",
            };
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn text(r: Response<Body>) -> String {
        let bytes = r.into_body().collect().await.map(|c| c.to_bytes());
        String::from_utf8(bytes.unwrap_or_default().to_vec()).unwrap_or_default()
    }

    #[tokio::test]
    async fn unauthenticated_browser_gets_reana_hint() {
        let ctx = ErrorContext {
            html: true,
            public_url: Some("https://reana.example.org"),
        };
        let r = ProxyError::Unauthenticated.into_response(&ctx);
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");
        let body = text(r).await;
        assert!(
            body.contains("href=\"https://reana.example.org\""),
            "{body}"
        );
        assert!(body.contains("Dashboard icon"));
    }

    #[tokio::test]
    async fn api_clients_get_json() {
        let r =
            ProxyError::BadCredential(AuthError::Expired).into_response(&ErrorContext::default());
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        let v: serde_json::Value = serde_json::from_str(&text(r).await).unwrap_or_default();
        assert_eq!(v["error"], "expired_credential");
    }

    #[tokio::test]
    async fn starting_cluster_page_refreshes_itself() {
        let ctx = ErrorContext {
            html: true,
            public_url: None,
        };
        let r = ProxyError::ClusterStarting.into_response(&ctx);
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[RETRY_AFTER], RETRY_AFTER_SECONDS);
        let body = text(r).await;
        assert!(body.contains("http-equiv=\"refresh\""), "{body}");
    }

    #[test]
    fn statuses() {
        assert_eq!(ProxyError::AuthUnavailable.status(), 503);
        let limited = ProxyError::TooManyRequests {
            retry_after_secs: 7,
        };
        assert_eq!(limited.status(), 429);
        let r = limited.into_response(&ErrorContext {
            html: false,
            public_url: None,
        });
        assert_eq!(r.headers()[RETRY_AFTER], "7");
        assert_eq!(ProxyError::ReadOnly.status(), 403);
        assert_eq!(ProxyError::WorkflowNotFound.status(), 404);
        assert_eq!(ProxyError::Forbidden.status(), 403);
        assert_eq!(ProxyError::OriginRejected.status(), 403);
        assert_eq!(ProxyError::HeaderTooLarge.status(), 431);
        assert_eq!(ProxyError::UpstreamConnect.status(), 502);
        assert_eq!(ProxyError::UpstreamTimeout.status(), 504);
        assert_eq!(ProxyError::WebSocketVersion.status(), 426);
    }

    #[test]
    fn version_refusal_names_the_supported_version() {
        let r = ProxyError::WebSocketVersion.into_response(&ErrorContext::default());
        assert_eq!(r.status(), 426);
        assert_eq!(r.headers()[SEC_WEBSOCKET_VERSION], "13");
    }
}
