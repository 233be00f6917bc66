//! Unit tests of the discovery index, fed hand-built watcher events.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;

const WF: &str = "3f2a1b4c-0000-4000-8000-000000000001";
const WF2: &str = "3f2a1b4c-0000-4000-8000-000000000002";

fn config() -> KubernetesConfig {
    KubernetesConfig {
        namespace: None,
        selector: "dask.org/component=scheduler".into(),
        workflow_label: "reana-run-dask-workflow-uuid".into(),
        owner_labels: vec!["user-uuid".into(), "reana-run-dask-owner-uuid".into()],
        port_name: "http-dashboard".into(),
        kubeconfig: None,
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A scheduler Service as the dask-kubernetes operator creates it for REANA.
fn svc(name: &str, workflow: &str, owner: &str, ip: &str) -> Service {
    let mut s = Service::default();
    s.metadata.name = Some(name.into());
    s.metadata.namespace = Some("default".into());
    s.metadata.resource_version = Some("1".into());
    s.metadata.creation_timestamp = Some(Time("2025-01-01T00:00:00Z".parse().unwrap()));
    s.metadata.labels = Some(labels(&[
        ("dask.org/component", "scheduler"),
        ("reana-run-dask-workflow-uuid", workflow),
        ("user-uuid", owner),
    ]));
    s.spec = Some(ServiceSpec {
        cluster_ip: Some(ip.into()),
        ports: Some(vec![
            port(Some("tcp-comm"), 8786),
            port(Some("http-dashboard"), 8787),
        ]),
        ..Default::default()
    });
    s
}

fn port(name: Option<&str>, number: i32) -> ServicePort {
    ServicePort {
        name: name.map(str::to_owned),
        port: number,
        ..Default::default()
    }
}

fn slice(name: &str, service: &str, endpoints: &[(&str, Option<bool>)]) -> EndpointSlice {
    let mut s = EndpointSlice::default();
    s.metadata.name = Some(name.into());
    s.metadata.namespace = Some("default".into());
    s.metadata.labels = Some(labels(&[(parse::SERVICE_NAME_LABEL, service)]));
    s.address_type = "IPv4".into();
    s.ports = Some(vec![EndpointPort {
        name: Some("http-dashboard".into()),
        port: Some(18787),
        ..Default::default()
    }]);
    s.endpoints = endpoints
        .iter()
        .map(|(addr, ready)| Endpoint {
            addresses: vec![(*addr).to_owned()],
            conditions: Some(EndpointConditions {
                ready: *ready,
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    s
}

/// An index that has completed an (empty) initial sync of both watches.
fn synced() -> (Index, Arc<RouteTable>) {
    let table = Arc::new(RouteTable::new());
    let mut index = Index::new(&config(), Arc::clone(&table));
    index.apply_service(&Event::Init);
    index.apply_service(&Event::InitDone);
    index.apply_slice(&Event::Init);
    index.apply_slice(&Event::InitDone);
    assert!(index.is_synced());
    (index, table)
}

fn route(table: &RouteTable, workflow: &str) -> Option<(String, String, bool)> {
    table
        .lookup(workflow)
        .map(|r| (r.upstream.clone(), r.owner.clone(), r.ready))
}

fn up(upstream: &str, owner: &str, ready: bool) -> Option<(String, String, bool)> {
    Some((upstream.to_owned(), owner.to_owned(), ready))
}

#[test]
fn add_modify_delete() {
    let (mut index, table) = synced();
    let mut s = svc("reana-run-dask-3f2a1b4c-scheduler", WF, "alice", "10.0.0.1");
    index.apply_service(&Event::Apply(s.clone()));
    assert_eq!(route(&table, WF), up("10.0.0.1:8787", "alice", false));

    // Ports, owner and IP change.
    s.metadata.resource_version = Some("2".into());
    s.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("user-uuid".into(), "bob".into());
    s.spec.as_mut().unwrap().ports = Some(vec![port(Some("http-dashboard"), 9999)]);
    s.spec.as_mut().unwrap().cluster_ip = Some("10.0.0.9".into());
    index.apply_service(&Event::Apply(s.clone()));
    assert_eq!(route(&table, WF), up("10.0.0.9:9999", "bob", false));

    // The workflow label changes: the old route goes, the new one comes.
    s.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("reana-run-dask-workflow-uuid".into(), WF2.into());
    index.apply_service(&Event::Apply(s.clone()));
    assert_eq!(route(&table, WF), None);
    assert_eq!(route(&table, WF2), up("10.0.0.9:9999", "bob", false));

    index.apply_service(&Event::Delete(s));
    assert!(table.is_empty());
}

#[test]
fn nothing_is_published_before_both_watches_synced() {
    let table = Arc::new(RouteTable::new());
    let mut index = Index::new(&config(), Arc::clone(&table));
    index.apply_service(&Event::Init);
    index.apply_service(&Event::InitApply(svc("a", WF, "alice", "10.0.0.1")));
    index.apply_service(&Event::InitDone);
    assert!(!index.is_synced());
    assert!(table.is_empty());
    index.apply_slice(&Event::Init);
    index.apply_slice(&Event::InitApply(slice(
        "a-x",
        "a",
        &[("10.1.0.1", Some(true))],
    )));
    assert!(table.is_empty());
    index.apply_slice(&Event::InitDone);
    assert!(index.is_synced());
    assert_eq!(route(&table, WF), up("10.0.0.1:8787", "alice", true));
}

#[test]
fn resync_drops_a_missed_deletion_and_keeps_routes_until_done() {
    let (mut index, table) = synced();
    index.apply_service(&Event::Apply(svc("a", WF, "alice", "10.0.0.1")));
    index.apply_service(&Event::Apply(svc("b", WF2, "bob", "10.0.0.2")));
    assert_eq!(table.len(), 2);
    // The watch reconnects after "a" was deleted: relist without it.
    index.apply_service(&Event::Init);
    index.apply_service(&Event::InitApply(svc("b", WF2, "bob", "10.0.0.2")));
    assert_eq!(table.len(), 2, "routes are kept until the relist completes");
    index.apply_service(&Event::InitDone);
    assert_eq!(route(&table, WF), None);
    assert_eq!(route(&table, WF2), up("10.0.0.2:8787", "bob", false));
}

#[test]
fn malformed_services_are_skipped() {
    let (mut index, table) = synced();
    let mut no_label = svc("a", WF, "alice", "10.0.0.1");
    no_label
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .remove("reana-run-dask-workflow-uuid");
    let bad_id = svc("b", "../etc", "alice", "10.0.0.1");
    let mut no_owner = svc("c", WF, "alice", "10.0.0.1");
    no_owner
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .remove("user-uuid");
    let mut no_port = svc("d", WF, "alice", "10.0.0.1");
    no_port.spec.as_mut().unwrap().ports = Some(vec![port(Some("tcp-comm"), 8786)]);
    let no_spec = Service {
        spec: None,
        ..svc("e", WF, "alice", "10.0.0.1")
    };
    let headless = svc("f", WF, "alice", "None");
    let mut nameless = svc("g", WF, "alice", "10.0.0.1");
    nameless.metadata.name = None;
    for bad in [
        no_label, bad_id, no_owner, no_port, no_spec, headless, nameless,
    ] {
        index.apply_service(&Event::Apply(bad.clone()));
        index.apply_service(&Event::Apply(bad));
    }
    assert!(table.is_empty());
    // A good one next to them still routes, and becoming malformed removes it.
    let mut good = svc("h", WF2, "bob", "10.0.0.8");
    index.apply_service(&Event::Apply(good.clone()));
    assert_eq!(route(&table, WF2), up("10.0.0.8:8787", "bob", false));
    good.metadata.labels.as_mut().unwrap().remove("user-uuid");
    index.apply_service(&Event::Apply(good));
    assert!(table.is_empty());
}

#[test]
fn warnings_are_given_once_per_version() {
    let mut warned = HashMap::new();
    assert!(warn_once(&mut warned, "default/a", "1"));
    assert!(!warn_once(&mut warned, "default/a", "1"));
    assert!(warn_once(&mut warned, "default/a", "2"));
    assert!(warn_once(&mut warned, "default/b", "2"));
}

#[test]
fn owner_label_fallback_and_port_8787_fallback() {
    let (mut index, table) = synced();
    let mut old = svc("a", WF, "ignored", "10.0.0.1");
    let l = old.metadata.labels.as_mut().unwrap();
    l.remove("user-uuid");
    l.insert("reana-run-dask-owner-uuid".into(), "carol".into());
    old.spec.as_mut().unwrap().ports = Some(vec![port(None, 8787)]);
    index.apply_service(&Event::Apply(old.clone()));
    assert_eq!(route(&table, WF), up("10.0.0.1:8787", "carol", false));
    // `user-uuid` wins when both are present.
    let l = old.metadata.labels.as_mut().unwrap();
    l.insert("user-uuid".into(), "dave".into());
    index.apply_service(&Event::Apply(old));
    assert_eq!(route(&table, WF), up("10.0.0.1:8787", "dave", false));
}

#[test]
fn colliding_names_are_told_apart_by_label() {
    // Two workflows whose uuids share the first 8 hex digits: identical Service
    // names, in different namespaces, routed by their labels.
    let (mut index, table) = synced();
    let name = "reana-run-dask-3f2a1b4c-scheduler";
    let mut other = svc(name, WF2, "bob", "10.0.0.2");
    other.metadata.namespace = Some("other".into());
    index.apply_service(&Event::Apply(svc(name, WF, "alice", "10.0.0.1")));
    index.apply_service(&Event::Apply(other));
    assert_eq!(route(&table, WF), up("10.0.0.1:8787", "alice", false));
    assert_eq!(route(&table, WF2), up("10.0.0.2:8787", "bob", false));
}

#[test]
fn two_services_claiming_one_workflow_oldest_wins() {
    let (mut index, table) = synced();
    let mut young = svc("young", WF, "mallory", "10.0.0.66");
    young.metadata.creation_timestamp = Some(Time("2025-06-01T00:00:00Z".parse().unwrap()));
    let old = svc("old", WF, "alice", "10.0.0.1");
    index.apply_service(&Event::Apply(young.clone()));
    assert_eq!(route(&table, WF), up("10.0.0.66:8787", "mallory", false));
    index.apply_service(&Event::Apply(old.clone()));
    assert_eq!(route(&table, WF), up("10.0.0.1:8787", "alice", false));
    // Same age: the first by namespace/name wins, whatever the arrival order.
    let twin = svc("a-twin", WF, "trent", "10.0.0.5");
    index.apply_service(&Event::Apply(twin.clone()));
    assert_eq!(route(&table, WF), up("10.0.0.5:8787", "trent", false));
    index.apply_service(&Event::Delete(twin));
    index.apply_service(&Event::Delete(old));
    assert_eq!(route(&table, WF), up("10.0.0.66:8787", "mallory", false));
}

#[test]
fn route_ages_survive_modifications_and_resyncs() {
    let (mut index, table) = synced();
    let s = svc("a", WF, "alice", "10.0.0.1");
    index.apply_service(&Event::Apply(s.clone()));
    std::thread::sleep(std::time::Duration::from_millis(15));
    index.apply_slice(&Event::Apply(slice(
        "a-1",
        "a",
        &[("10.1.0.1", Some(true))],
    )));
    index.apply_service(&Event::Init);
    index.apply_service(&Event::InitApply(s));
    index.apply_service(&Event::InitDone);
    let snap = table.snapshot();
    assert_eq!(snap.len(), 1);
    assert!(snap[0].0.ready);
    assert!(snap[0].1 >= std::time::Duration::from_millis(15));
}

/// Counts WARN events while `f` runs.
fn warnings_during(f: impl FnOnce()) -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tracing_subscriber::layer::{Context, SubscriberExt};

    struct Count(Arc<AtomicUsize>);
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Count {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            if *event.metadata().level() == tracing::Level::WARN {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    let count = Arc::new(AtomicUsize::new(0));
    let subscriber = tracing_subscriber::registry().with(Count(Arc::clone(&count)));
    tracing::subscriber::with_default(subscriber, f);
    count.load(Ordering::SeqCst)
}

#[test]
fn each_problem_is_warned_once_per_version() {
    let (mut index, table) = synced();
    let mut no_owner = svc("a", WF, "alice", "10.0.0.1");
    no_owner
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .remove("user-uuid");
    let headless = svc("b", WF2, "alice", "None");
    let (first, second) = (
        svc("c", WF, "alice", "10.0.0.3"),
        svc("d", WF, "bob", "10.0.0.4"),
    );
    let warned = warnings_during(|| {
        for _ in 0..3 {
            for s in [&no_owner, &headless, &first, &second] {
                index.apply_service(&Event::Apply(s.clone()));
            }
        }
        // A relist of the same versions warns no more.
        index.apply_service(&Event::Init);
        for s in [&no_owner, &headless, &first, &second] {
            index.apply_service(&Event::InitApply(s.clone()));
        }
        index.apply_service(&Event::InitDone);
    });
    assert_eq!(warned, 3, "malformed, headless without address, collision");
    assert_eq!(route(&table, WF), up("10.0.0.3:8787", "alice", false));
    no_owner.metadata.resource_version = Some("2".into());
    let warned = warnings_during(|| index.apply_service(&Event::Apply(no_owner.clone())));
    assert_eq!(
        warned, 1,
        "a new version of a malformed service is warned about again"
    );
}

#[path = "index_slice_tests.rs"]
mod slices;
