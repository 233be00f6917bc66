//! Kubernetes discovery: kube-rs watchers on scheduler Services and their
//! EndpointSlices feeding the [`Index`], with backoff, reconnect logging, readiness
//! and the discovery metrics. All state lives in the index; this file is the I/O edge.
//!
//! Lag (`discovery_lag_seconds`) is measured from the newest time the object itself
//! records for its change to the moment the index has applied it: `creationTimestamp`
//! and `managedFields[].time` of a Service (an EndpointSlice's
//! `endpoints.kubernetes.io/last-change-trigger-time` annotation when present), and a
//! deleted object's `deletionTimestamp`. Limits: those timestamps have one-second
//! resolution (so lag reads up to 1 s high), they come from the API server's clock
//! (skew shows up as lag; a negative result is dropped), a deletion without
//! `deletionTimestamp` and objects seen in a (re)list have no measurable change time,
//! and results over ten minutes are dropped as not describing this event.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use super::index::Index;
use super::parse::SERVICE_NAME_LABEL;
use super::DiscoveryError;

use crate::config::KubernetesConfig;
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::routes::RouteTable;

/// The annotation the EndpointSlice controller sets to the time of the change
/// (pod or Service) that triggered the slice's update.
const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// Lags beyond this do not describe the event they were computed for.
const MAX_LAG: Duration = Duration::from_secs(600);

/// Builds a client (from `kubeconfig` when given, else `kube::Config::infer()`:
/// in-cluster or `KUBECONFIG`), starts both watchers in a background task and
/// returns. `ready` is released once both have completed their first list; the
/// watchers end when `stop` is cancelled.
pub(super) async fn start(
    config: &KubernetesConfig,
    kubeconfig: Option<&Path>,
    table: Arc<RouteTable>,
    ready: Readiness,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> Result<(), DiscoveryError> {
    let client = client(kubeconfig).await?;
    let (services, slices): (Api<Service>, Api<EndpointSlice>) = match &config.namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    let service_watch = watcher::Config::default().labels(&config.selector);
    let slice_watch = watcher::Config::default().labels(&slice_selector(&config.selector));
    tracing::info!(
        namespace = config.namespace.as_deref().unwrap_or("<all>"),
        selector = %config.selector,
        "watching scheduler services and their endpointslices"
    );
    let services = watcher::watcher(services, service_watch).default_backoff();
    let slices = watcher::watcher(slices, slice_watch).default_backoff();
    let state = Watching {
        index: Index::new(config, table),
        ready,
        metrics,
        failing: Failing::default(),
        synced: false,
    };
    tokio::spawn(async move {
        tokio::select! {
            () = state.run(services, slices) => {}
            () = stop.cancelled() => tracing::debug!("discovery stopped"),
        }
    });
    Ok(())
}

async fn client(kubeconfig: Option<&Path>) -> Result<Client, DiscoveryError> {
    let err = |what: &str, e: &dyn std::fmt::Display| DiscoveryError(format!("{what}: {e}"));
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).map_err(|e| err("kubeconfig", &e))?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|e| err("kubeconfig", &e))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| err("kubernetes client configuration", &e))?,
    };
    Client::try_from(config).map_err(|e| err("kubernetes client", &e))
}

/// EndpointSlices carry their Service's labels (the EndpointSlice controller copies
/// them) plus `kubernetes.io/service-name`: watch only those of scheduler Services.
fn slice_selector(selector: &str) -> String {
    if selector.trim().is_empty() {
        SERVICE_NAME_LABEL.to_owned()
    } else {
        format!("{selector},{SERVICE_NAME_LABEL}")
    }
}

/// Which watches are currently failing, to log reconnects once.
#[derive(Default)]
struct Failing {
    services: bool,
    slices: bool,
}

/// The watch task's state.
struct Watching {
    index: Index,
    ready: Readiness,
    metrics: Arc<Metrics>,
    failing: Failing,
    synced: bool,
}

type Item<K> = Result<Event<K>, watcher::Error>;

impl Watching {
    /// Applies events from both watchers as they come, for ever.
    async fn run(
        mut self,
        services: impl Stream<Item = Item<Service>>,
        slices: impl Stream<Item = Item<EndpointSlice>>,
    ) {
        let mut services = std::pin::pin!(services);
        let mut slices = std::pin::pin!(slices);
        loop {
            tokio::select! {
                Some(item) = services.next() => self.on_service(item),
                Some(item) = slices.next() => self.on_slice(item),
                else => break,
            }
            if !self.synced && self.index.is_synced() {
                self.synced = true;
                self.ready.set_synced();
                tracing::info!("kubernetes discovery synced");
            }
        }
        tracing::error!("kubernetes watch streams ended; routes are no longer updated");
    }

    fn on_service(&mut self, item: Item<Service>) {
        const RESOURCE: &str = "services";
        match item {
            Ok(event) => {
                recovered(RESOURCE, &mut self.failing.services);
                let changed = event_change(&event, |s| change_time(&s.metadata));
                self.index.apply_service(&event);
                count(&self.metrics, &event, changed);
                log_resync(RESOURCE, &event, self.synced);
            }
            Err(error) => failed(RESOURCE, &error, &mut self.failing.services),
        }
    }

    fn on_slice(&mut self, item: Item<EndpointSlice>) {
        const RESOURCE: &str = "endpointslices";
        match item {
            Ok(event) => {
                recovered(RESOURCE, &mut self.failing.slices);
                let changed = event_change(&event, slice_change_time);
                self.index.apply_slice(&event);
                count(&self.metrics, &event, changed);
                log_resync(RESOURCE, &event, self.synced);
            }
            Err(error) => failed(RESOURCE, &error, &mut self.failing.slices),
        }
    }
}

fn recovered(resource: &'static str, failing: &mut bool) {
    if std::mem::take(failing) {
        tracing::info!(resource, "watch reconnected");
    }
}

fn failed(resource: &'static str, error: &watcher::Error, failing: &mut bool) {
    *failing = true;
    match error {
        watcher::Error::WatchError(status) if status.code == 410 => {
            tracing::info!(resource, reason = %status.reason, "watch history expired; relisting");
        }
        _ => tracing::warn!(resource, %error,
            "watch failed; keeping the current routes and retrying with backoff"),
    }
}

fn log_resync<K>(resource: &'static str, event: &Event<K>, synced: bool) {
    match event {
        Event::Init if synced => tracing::info!(resource, "relisting"),
        Event::InitDone => tracing::debug!(resource, "list complete"),
        Event::Init | Event::InitApply(_) | Event::Apply(_) | Event::Delete(_) => {}
    }
}

/// Counts object events (not the Init/InitDone markers), with their lag when known.
fn count<K>(metrics: &Metrics, event: &Event<K>, changed: Option<Timestamp>) {
    match event {
        Event::Apply(_) | Event::Delete(_) | Event::InitApply(_) => {
            metrics.discovery_event(changed.and_then(|t| lag(t, Timestamp::now())));
        }
        Event::Init | Event::InitDone => {}
    }
}

/// When the change behind a live event happened, as far as the object tells.
fn event_change<K>(event: &Event<K>, applied: impl Fn(&K) -> Option<Timestamp>) -> Option<Timestamp>
where
    K: kube::Resource,
{
    match event {
        Event::Apply(obj) => applied(obj),
        Event::Delete(obj) => obj.meta().deletion_timestamp.as_ref().map(|t| t.0),
        Event::Init | Event::InitApply(_) | Event::InitDone => None,
    }
}

/// The newest of `creationTimestamp` and `managedFields[].time`.
fn change_time(meta: &ObjectMeta) -> Option<Timestamp> {
    let managed = meta.managed_fields.iter().flatten();
    let times = managed.filter_map(|f| f.time.as_ref().map(|t| t.0));
    times
        .chain(meta.creation_timestamp.as_ref().map(|t| t.0))
        .max()
}

/// The controller's trigger time when present, else [`change_time`].
fn slice_change_time(slice: &EndpointSlice) -> Option<Timestamp> {
    let annotations = slice.metadata.annotations.as_ref();
    annotations
        .and_then(|a| a.get(TRIGGER_TIME))
        .and_then(|t| t.parse::<Timestamp>().ok())
        .or_else(|| change_time(&slice.metadata))
}

/// `now - changed`, when that is between zero and [`MAX_LAG`].
fn lag(changed: Timestamp, now: Timestamp) -> Option<Duration> {
    Duration::try_from(now.duration_since(changed))
        .ok()
        .filter(|d| *d <= MAX_LAG)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn change_time_is_the_newest_recorded_time() {
        let meta = ObjectMeta {
            creation_timestamp: Some(Time(ts("2025-01-01T00:00:00Z"))),
            managed_fields: Some(vec![
                ManagedFieldsEntry {
                    time: Some(Time(ts("2025-01-01T00:00:05Z"))),
                    ..Default::default()
                },
                ManagedFieldsEntry::default(),
            ]),
            ..Default::default()
        };
        assert_eq!(change_time(&meta), Some(ts("2025-01-01T00:00:05Z")));
        assert_eq!(change_time(&ObjectMeta::default()), None);
    }

    #[test]
    fn slice_trigger_time_wins() {
        let mut slice = EndpointSlice::default();
        slice.metadata.creation_timestamp = Some(Time(ts("2025-01-01T00:00:00Z")));
        assert_eq!(slice_change_time(&slice), Some(ts("2025-01-01T00:00:00Z")));
        slice.metadata.annotations = Some(
            [(
                TRIGGER_TIME.to_owned(),
                "2025-01-01T00:00:07.250Z".to_owned(),
            )]
            .into(),
        );
        assert_eq!(
            slice_change_time(&slice),
            Some(ts("2025-01-01T00:00:07.25Z"))
        );
    }

    #[test]
    fn lag_is_bounded() {
        let t = ts("2025-01-01T00:00:00Z");
        assert_eq!(
            lag(t, ts("2025-01-01T00:00:01.5Z")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(lag(t, ts("2024-12-31T23:59:59Z")), None);
        assert_eq!(lag(t, ts("2025-01-01T01:00:00Z")), None);
    }

    #[test]
    fn slice_selector_adds_the_service_name_label() {
        assert_eq!(
            slice_selector("dask.org/component=scheduler"),
            "dask.org/component=scheduler,kubernetes.io/service-name"
        );
        assert_eq!(slice_selector(""), "kubernetes.io/service-name");
    }
}
