//! Plain HTTP forwarding: the request rewritten and handed to the upstream client,
//! the scheduler's response streamed back with hop-by-hop headers removed and
//! absolute `Location`s rewritten into the prefix, and a `frame-ancestors` policy
//! when the scheduler sent no policy of its own.

use http::header::{CONTENT_SECURITY_POLICY, HOST, LOCATION};
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use tokio::time::timeout;

use super::headers::{remove_hop_by_hop, Survey};
use super::path::rewrite_location;
use super::raw::RawHead;
use super::upstream::{Outgoing, UpstreamFailure};
use super::{ClientBody, Forward, Reply};
use crate::body::BoxError;
use crate::error::ProxyError;
use crate::metrics::UpstreamError;
use crate::state::State;

/// Forwards one HTTP request and returns the scheduler's response.
pub(crate) async fn forward<B>(
    state: &State,
    req: Request<B>,
    raw: Option<RawHead>,
    fwd: Forward<'_>,
) -> Result<Reply, ProxyError>
where
    B: ClientBody,
{
    let (parts, body) = req.into_parts();
    let mut headers = parts.headers;
    let mut lines = Vec::new();
    let (client_host, added) = match &raw {
        // The client's fields rewritten line by line (see `RawHead::rewrite`).
        Some(raw) => {
            let client_host = raw.host();
            let host = match &client_host {
                Some(host) => host.clone(),
                None => upstream_host(&fwd)?,
            };
            lines.reserve(raw.len() + 64);
            raw.rewrite(&mut lines, fwd.survey, fwd.cookie_name, &host);
            let forwarded_for = raw.forwarded_for(fwd.survey);
            (client_host, fwd.added(forwarded_for, Some(&host)))
        }
        None => {
            let client_host = headers.get(HOST).cloned().or_else(|| {
                parts
                    .uri
                    .authority()
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            });
            if fwd.survey.has(Survey::HOP_BY_HOP) {
                remove_hop_by_hop(&mut headers);
            }
            match &client_host {
                // Still there once (unless `Connection` named it): an insert would
                // cost, in a map sized for the client's fields, a second allocation.
                // More than one `Host` becomes the first.
                Some(_) if headers.get_all(HOST).iter().count() == 1 => {}
                Some(host) => {
                    headers.insert(HOST, host.clone());
                }
                None => {
                    headers.insert(HOST, upstream_host(&fwd)?);
                }
            }
            let added = fwd.added_fields(&mut headers);
            (client_host, added)
        }
    };
    drop(raw);
    let body = if body.is_end_stream() {
        // No allocation for the common bodiless request.
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed_unsync()
    } else {
        body.map_err(Into::<BoxError>::into).boxed_unsync()
    };
    let outgoing = Outgoing {
        method: parts.method,
        target: fwd.path_and_query,
        headers,
        lines,
        added,
        body,
    };

    let sent = timeout(
        state.upstream.response_timeout,
        state.client.send(&fwd.route.upstream, outgoing),
    )
    .await;
    let Reply { response, mut raw } = match sent {
        Ok(Ok(reply)) => reply,
        Err(_) => {
            state.metrics.upstream_error(UpstreamError::Timeout);
            return Err(ProxyError::UpstreamTimeout);
        }
        Ok(Err(failure)) => return Err(failed(state, fwd.route.workflow.as_str(), &failure)),
    };

    let (mut parts, body) = response.into_parts();
    // The scheduler client drops them already; this holds for any `Upstream`, at the
    // cost of one pass over the names when there are none.
    remove_hop_by_hop(&mut parts.headers);
    let host = client_host.as_ref().and_then(|h| h.to_str().ok());
    if let Some(location) = parts.headers.get(LOCATION).and_then(|l| l.to_str().ok()) {
        if let Some(rewritten) = rewrite_location(location, fwd.prefix, &fwd.route.upstream, host) {
            if let Ok(value) = HeaderValue::from_str(&rewritten) {
                parts.headers.insert(LOCATION, value);
            }
        }
    }
    // Fields kept as lines (never with a Location) say themselves whether they hold
    // a policy, and the gateway's goes after them. Otherwise one lookup in the map;
    // a clone of the prepared value allocates nothing.
    match &mut raw {
        Some(raw) => {
            if !raw.has_csp {
                raw.push(&CONTENT_SECURITY_POLICY, &state.dashboard_csp);
            }
        }
        None => {
            parts
                .headers
                .entry(CONTENT_SECURITY_POLICY)
                .or_insert_with(|| state.dashboard_csp.clone());
        }
    }
    Ok(Reply {
        response: Response::from_parts(parts, body),
        raw,
    })
}

/// The scheduler's own address as the `Host` of a request that named none.
fn upstream_host(fwd: &Forward<'_>) -> Result<HeaderValue, ProxyError> {
    HeaderValue::from_str(&fwd.route.upstream).map_err(|_| ProxyError::BadRequest("invalid host"))
}

/// Counts and maps a request the scheduler did not answer.
fn failed(state: &State, workflow: &str, failure: &UpstreamFailure) -> ProxyError {
    tracing::debug!(error = %failure, workflow, "upstream request failed");
    match failure {
        UpstreamFailure::Connect(_) => {
            state.metrics.upstream_error(UpstreamError::Connect);
            ProxyError::UpstreamConnect
        }
        UpstreamFailure::Io(_) | UpstreamFailure::Protocol(_) => {
            state.metrics.upstream_error(UpstreamError::Protocol);
            ProxyError::UpstreamProtocol
        }
        UpstreamFailure::InvalidRequest => ProxyError::BadRequest("invalid request target"),
        UpstreamFailure::RequestBody => ProxyError::BadRequest("request body failed"),
    }
}
