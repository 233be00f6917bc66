//! The admin listener: `/healthz` (the process serves), `/readyz` (discovery synced
//! and not draining), `/metrics` (Prometheus text format).

use std::sync::Arc;

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response, StatusCode};

use crate::body::{full, Body};
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::routes::RouteTable;

/// What the admin endpoints read.
#[derive(Clone)]
pub(crate) struct Admin {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) routes: Arc<RouteTable>,
    pub(crate) readiness: Readiness,
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

impl Admin {
    /// Answers one admin request.
    pub(crate) fn handle<B>(&self, req: &Request<B>) -> Response<Body> {
        const PLAIN: &str = "text/plain; charset=utf-8";
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                PLAIN,
                "method not allowed\n".into(),
            );
        }
        match req.uri().path() {
            "/healthz" => text(StatusCode::OK, PLAIN, "ok\n".into()),
            "/readyz" if self.readiness.is_ready() => text(StatusCode::OK, PLAIN, "ready\n".into()),
            "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, PLAIN, "not ready\n".into()),
            "/metrics" => text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics.render(self.routes.len()),
            ),
            _ => text(StatusCode::NOT_FOUND, PLAIN, "not found\n".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(admin: &Admin, path: &str) -> StatusCode {
        let req = Request::get(path).body(()).unwrap_or_default();
        admin.handle(&req).status()
    }

    #[test]
    fn readiness_follows_sync_and_drain() {
        let admin = Admin {
            metrics: Arc::new(Metrics::new()),
            routes: Arc::new(RouteTable::new()),
            readiness: Readiness::new(),
        };
        assert_eq!(get(&admin, "/healthz"), StatusCode::OK);
        assert_eq!(get(&admin, "/readyz"), StatusCode::SERVICE_UNAVAILABLE);
        admin.readiness.set_synced();
        assert_eq!(get(&admin, "/readyz"), StatusCode::OK);
        admin.readiness.set_draining();
        assert_eq!(get(&admin, "/readyz"), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(get(&admin, "/metrics"), StatusCode::OK);
        assert_eq!(get(&admin, "/nope"), StatusCode::NOT_FOUND);
    }
}
