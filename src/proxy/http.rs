//! Plain HTTP forwarding: the request streamed to the scheduler over the pooled
//! client, its response streamed back with hop-by-hop headers removed and
//! absolute `Location`s rewritten into the prefix.

use std::sync::Arc;

use http::header::{HOST, LOCATION};
use http::{HeaderValue, Request, Response, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::timeout;

use super::headers::remove_hop_by_hop;
use super::path::rewrite_location;
use super::Forward;
use crate::body::Body;
use crate::error::ProxyError;
use crate::metrics::UpstreamError;
use crate::state::State;

/// Forwards one HTTP request and returns the scheduler's response.
pub(crate) async fn forward(
    state: &Arc<State>,
    req: Request<Incoming>,
    fwd: Forward<'_>,
) -> Result<Response<Body>, ProxyError> {
    let (mut parts, body) = req.into_parts();
    let client_host = parts.headers.get(HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let uri = format!("http://{}{}", fwd.route.upstream, fwd.path_and_query);
    parts.uri = uri
        .parse()
        .map_err(|_| ProxyError::BadRequest("invalid request target"))?;
    parts.version = Version::HTTP_11;
    remove_hop_by_hop(&mut parts.headers);
    if let Some(host) = &client_host {
        parts.headers.insert(HOST, host.clone());
    }
    fwd.prepare_headers(&mut parts.headers);
    let upstream_req = Request::from_parts(parts, body);

    let response = match timeout(
        state.upstream.response_timeout,
        state.client.request(upstream_req),
    )
    .await
    {
        Err(_) => {
            state.metrics.upstream_error(UpstreamError::Timeout);
            return Err(ProxyError::UpstreamTimeout);
        }
        Ok(Err(error)) if error.is_connect() => {
            tracing::debug!(%error, workflow = fwd.route.workflow, "upstream connect failed");
            state.metrics.upstream_error(UpstreamError::Connect);
            return Err(ProxyError::UpstreamConnect);
        }
        Ok(Err(error)) => {
            tracing::debug!(%error, workflow = fwd.route.workflow, "upstream request failed");
            state.metrics.upstream_error(UpstreamError::Protocol);
            return Err(ProxyError::UpstreamProtocol);
        }
        Ok(Ok(response)) => response,
    };

    let (mut parts, body) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    let host = client_host.as_ref().and_then(|h| h.to_str().ok());
    if let Some(location) = parts.headers.get(LOCATION).and_then(|l| l.to_str().ok()) {
        if let Some(rewritten) = rewrite_location(location, fwd.prefix, &fwd.route.upstream, host) {
            if let Ok(value) = HeaderValue::from_str(&rewritten) {
                parts.headers.insert(LOCATION, value);
            }
        }
    }
    Ok(Response::from_parts(parts, body.boxed()))
}
