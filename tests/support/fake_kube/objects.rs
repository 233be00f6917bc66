//! What the fake API server serves besides objects (version and discovery documents),
//! and builders for the objects REANA's Dask clusters have: scheduler Services
//! labelled as SPEC §2 describes and the EndpointSlices the controller makes for them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use serde_json::{json, Value};

/// The workflow label (SPEC §2).
pub const WORKFLOW_LABEL: &str = "reana-run-dask-workflow-uuid";

/// `/version`, `/api`, `/apis` and the group documents, for kubectl's discovery.
pub fn discovery_document(path: &str) -> Option<Value> {
    let services = json!({"name": "services", "singularName": "service", "namespaced": true,
        "kind": "Service", "verbs": ["get", "list", "watch"], "shortNames": ["svc"],
        "categories": ["all"]});
    let slices = json!({"name": "endpointslices", "singularName": "endpointslice",
        "namespaced": true, "kind": "EndpointSlice", "verbs": ["get", "list", "watch"]});
    let group_version = json!({"groupVersion": "discovery.k8s.io/v1", "version": "v1"});
    let group = json!({"name": "discovery.k8s.io", "versions": [group_version],
        "preferredVersion": group_version});
    Some(match path.trim_end_matches('/') {
        "/version" => json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake",
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc",
            "platform": "linux/amd64"}),
        "/api" => json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                "serverAddress": "127.0.0.1:6443"}]}),
        "/apis" => json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]}),
        "/apis/discovery.k8s.io" => {
            let mut g = group;
            g["kind"] = json!("APIGroup");
            g["apiVersion"] = json!("v1");
            g
        }
        "/api/v1" => json!({"kind": "APIResourceList", "groupVersion": "v1",
            "resources": [services]}),
        "/apis/discovery.k8s.io/v1" => json!({"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": "discovery.k8s.io/v1", "resources": [slices]}),
        _ => return None,
    })
}

/// The scheduler Service the dask-kubernetes operator creates for REANA workflow
/// `workflow` of `owner`: ClusterIP `cluster_ip`, `tcp-comm` 8786 and
/// `http-dashboard` `dashboard_port`.
pub fn scheduler(
    namespace: &str,
    name: &str,
    workflow: &str,
    owner: &str,
    cluster_ip: &str,
    dashboard_port: u16,
) -> Service {
    let cluster = name.trim_end_matches("-scheduler");
    let mut svc = Service::default();
    svc.metadata.name = Some(name.to_owned());
    svc.metadata.namespace = Some(namespace.to_owned());
    svc.metadata.labels = Some(labels(&[
        ("dask.org/cluster-name", cluster),
        ("dask.org/component", "scheduler"),
        (WORKFLOW_LABEL, workflow),
        ("user-uuid", owner),
    ]));
    let port = |name: &str, port: u16| ServicePort {
        name: Some(name.to_owned()),
        port: i32::from(port),
        protocol: Some("TCP".to_owned()),
        ..Default::default()
    };
    svc.spec = Some(ServiceSpec {
        type_: Some("ClusterIP".to_owned()),
        cluster_ip: Some(cluster_ip.to_owned()),
        cluster_ips: Some(vec![cluster_ip.to_owned()]),
        ports: Some(vec![
            port("tcp-comm", 8786),
            port("http-dashboard", dashboard_port),
        ]),
        selector: Some(labels(&[
            ("dask.org/cluster-name", cluster),
            ("dask.org/component", "scheduler"),
        ])),
        ..Default::default()
    });
    svc
}

/// The EndpointSlice the controller makes for `svc`: the Service's labels plus
/// `kubernetes.io/service-name`, one endpoint per address with `ready` as given.
pub fn slice_for(svc: &Service, addresses: &[&str], ready: bool) -> EndpointSlice {
    let service = svc.metadata.name.clone().unwrap_or_default();
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.insert("kubernetes.io/service-name".into(), service.clone());
    labels.insert(
        "endpointslice.kubernetes.io/managed-by".into(),
        "endpointslice-controller.k8s.io".into(),
    );
    let mut slice = EndpointSlice::default();
    slice.metadata.name = Some(format!("{service}-x7k2p"));
    slice.metadata.namespace = svc.metadata.namespace.clone();
    slice.metadata.labels = Some(labels);
    slice.address_type = "IPv4".into();
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    slice.ports = Some(
        ports
            .into_iter()
            .map(|p| EndpointPort {
                name: p.name,
                port: Some(p.port),
                protocol: p.protocol,
                ..Default::default()
            })
            .collect(),
    );
    slice.endpoints = addresses
        .iter()
        .map(|a| Endpoint {
            addresses: vec![(*a).to_owned()],
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                serving: Some(ready),
                terminating: Some(false),
            }),
            ..Default::default()
        })
        .collect();
    slice
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
