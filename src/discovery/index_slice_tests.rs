//! Unit tests of the discovery index: EndpointSlices (readiness, headless Services).

use super::*;

#[test]
fn readiness_follows_endpointslices() {
    let (mut index, table) = synced();
    index.apply_service(&Event::Apply(svc("a", WF, "alice", "10.0.0.1")));
    assert_eq!(route(&table, WF), up("10.0.0.1:8787", "alice", false));
    let starting = slice("a-1", "a", &[("10.1.0.1", Some(false))]);
    index.apply_slice(&Event::Apply(starting));
    assert_eq!(route(&table, WF), up("10.0.0.1:8787", "alice", false));
    // `ready` absent counts as ready (Kubernetes: unknown means ready).
    index.apply_slice(&Event::Apply(slice("a-1", "a", &[("10.1.0.1", None)])));
    assert_eq!(route(&table, WF), up("10.0.0.1:8787", "alice", true));
    index.apply_slice(&Event::Apply(slice(
        "a-1",
        "a",
        &[("10.1.0.1", Some(false))],
    )));
    assert_eq!(route(&table, WF), up("10.0.0.1:8787", "alice", false));
    index.apply_slice(&Event::Apply(slice(
        "a-2",
        "a",
        &[("10.1.0.2", Some(true))],
    )));
    assert_eq!(route(&table, WF), up("10.0.0.1:8787", "alice", true));
    index.apply_slice(&Event::Delete(slice("a-2", "a", &[])));
    assert_eq!(route(&table, WF), up("10.0.0.1:8787", "alice", false));
    // A slice resync that misses a deletion.
    index.apply_slice(&Event::Apply(slice(
        "a-3",
        "a",
        &[("10.1.0.3", Some(true))],
    )));
    assert_eq!(route(&table, WF), up("10.0.0.1:8787", "alice", true));
    index.apply_slice(&Event::Init);
    index.apply_slice(&Event::InitDone);
    assert_eq!(route(&table, WF), up("10.0.0.1:8787", "alice", false));
}

#[test]
fn headless_service_uses_a_ready_endpoint() {
    let (mut index, table) = synced();
    index.apply_service(&Event::Apply(svc("a", WF, "alice", "None")));
    assert_eq!(route(&table, WF), None, "no address yet");
    index.apply_slice(&Event::Apply(slice(
        "a-1",
        "a",
        &[("10.1.0.9", Some(false))],
    )));
    assert_eq!(route(&table, WF), up("10.1.0.9:18787", "alice", false));
    let both = slice(
        "a-1",
        "a",
        &[("10.1.0.9", Some(false)), ("10.1.0.7", Some(true))],
    );
    index.apply_slice(&Event::Apply(both));
    assert_eq!(route(&table, WF), up("10.1.0.7:18787", "alice", true));
    let mut v6 = slice("a-1", "a", &[("fd00::7", Some(true))]);
    v6.ports = None;
    index.apply_slice(&Event::Apply(v6));
    assert_eq!(route(&table, WF), up("[fd00::7]:8787", "alice", true));
    index.apply_slice(&Event::Delete(slice("a-1", "a", &[])));
    assert_eq!(route(&table, WF), None);
}

#[test]
fn slices_of_other_services_do_not_matter() {
    let (mut index, table) = synced();
    index.apply_service(&Event::Apply(svc("a", WF, "alice", "10.0.0.1")));
    index.apply_slice(&Event::Apply(slice(
        "b-1",
        "b",
        &[("10.1.0.1", Some(true))],
    )));
    let mut foreign = slice("a-1", "a", &[("10.1.0.1", Some(true))]);
    foreign.metadata.namespace = Some("elsewhere".into());
    index.apply_slice(&Event::Apply(foreign));
    let mut unlabelled = slice("a-2", "a", &[("10.1.0.1", Some(true))]);
    unlabelled.metadata.labels = None;
    index.apply_slice(&Event::Apply(unlabelled));
    assert_eq!(route(&table, WF), up("10.0.0.1:8787", "alice", false));
}
