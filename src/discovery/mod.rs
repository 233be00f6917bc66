//! Discovery: the only writer of the [`RouteTable`](crate::routes::RouteTable).

mod index;
mod kubernetes;
mod parse;
mod static_routes;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::DiscoveryConfig;
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::routes::RouteTable;

/// Why discovery could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DiscoveryError(pub String);

/// Fills `table` according to `config` (in background tasks where discovery is
/// continuous, until `stop` is cancelled) and releases `ready` once the first full
/// set of routes is in place.
pub async fn start(
    config: &DiscoveryConfig,
    table: Arc<RouteTable>,
    ready: Readiness,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> Result<(), DiscoveryError> {
    match config {
        DiscoveryConfig::Static(routes) => {
            static_routes::load(routes, &table);
            ready.set_synced();
            Ok(())
        }
        DiscoveryConfig::Kubernetes(k8s) => {
            kubernetes::start(k8s, k8s.kubeconfig.as_deref(), table, ready, metrics, stop).await
        }
    }
}
