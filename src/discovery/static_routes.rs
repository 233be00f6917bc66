//! Static discovery: the routes listed in `[[discovery.static.routes]]`.

use crate::config::StaticRoute;
use crate::routes::{Route, RouteTable};

/// Puts every configured route into `table`.
pub(super) fn load(routes: &[StaticRoute], table: &RouteTable) {
    table.replace_all(routes.iter().map(|r| Route {
        workflow: r.workflow.clone(),
        upstream: r.upstream.clone(),
        owner: r.owner.clone(),
        ready: true,
    }));
    tracing::info!(routes = routes.len(), "static routes loaded");
}
