//! Discovery: the only writer of the [`RouteTable`](crate::routes::RouteTable).

mod static_routes;

use std::sync::Arc;

use crate::config::DiscoveryConfig;
use crate::readiness::Readiness;
use crate::routes::RouteTable;

/// Fills `table` according to `config` and releases `ready` once the first full set
/// of routes is in place.
pub fn start(config: &DiscoveryConfig, table: Arc<RouteTable>, ready: Readiness) {
    match config {
        DiscoveryConfig::Static(routes) => {
            static_routes::load(routes, &table);
            ready.set_synced();
        }
    }
}
