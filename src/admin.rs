//! The admin listener: `/healthz` (the process serves), `/readyz` (discovery synced
//! and not draining), `/metrics` (Prometheus text format), `/routes` (the route
//! table as JSON, for operators).

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
                crate::metrics::CONTENT_TYPE,
                self.metrics.render(self.routes.len()),
            ),
            "/routes" => text(StatusCode::OK, "application/json", self.routes_json()),
            _ => text(StatusCode::NOT_FOUND, PLAIN, "not found\n".into()),
        }
    }

    /// `[{workflow, upstream, owner, ready, age_seconds}, …]` sorted by workflow.
    /// Routes hold no credentials, so nothing needs redacting.
    fn routes_json(&self) -> String {
        let routes: Vec<serde_json::Value> = self
            .routes
            .snapshot()
            .into_iter()
            .map(|(route, age)| {
                serde_json::json!({
                    "workflow": route.workflow,
                    "upstream": route.upstream,
                    "owner": route.owner,
                    "ready": route.ready,
                    "age_seconds": age.as_secs(),
                })
            })
            .collect();
        let mut body = serde_json::Value::Array(routes).to_string();
        body.push('\n');
        body
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

    #[test]
    fn routes_lists_the_table_sorted() {
        let routes = Arc::new(RouteTable::new());
        for (id, ready) in [("wf-b", false), ("wf-a", true)] {
            routes.upsert(crate::routes::Route {
                workflow: id.into(),
                upstream: "10.0.0.1:8787".into(),
                owner: "alice".into(),
                ready,
            });
        }
        let admin = Admin {
            metrics: Arc::new(Metrics::new()),
            routes,
            readiness: Readiness::new(),
        };
        let req = Request::get("/routes").body(()).unwrap_or_default();
        let resp = admin.handle(&req);
        assert_eq!(resp.status(), StatusCode::OK);
        let body: serde_json::Value = serde_json::from_str(&admin.routes_json()).unwrap();
        let ids: Vec<&str> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["workflow"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["wf-a", "wf-b"]);
        assert_eq!(body[1]["ready"], false);
        assert_eq!(body[0]["upstream"], "10.0.0.1:8787");
        assert_eq!(body[0]["owner"], "alice");
        assert_eq!(body[0]["age_seconds"], 0);
    }
}
