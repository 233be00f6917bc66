//! The NetworkPolicies and the ServiceMonitor component in `deploy/`, rendered with
//! the real `kubectl kustomize`: what each policy selects and which connections the
//! rendered set admits, evaluated with NetworkPolicy's rules (a pod selected by a
//! policy of a direction accepts only what some such policy allows; policies add up).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;

use serde_json::Value;

#[path = "support/kustomize.rs"]
mod kustomize;

use kustomize::{find, named, one, render, render_with_components};

/// One end of a connection: a pod (namespace and labels) or an address outside
/// any pod (the API server).
#[derive(Clone, Copy)]
struct End<'a> {
    namespace: Option<&'a str>,
    labels: &'a [(&'a str, &'a str)],
    ip: Option<Ipv4Addr>,
}

fn pod<'a>(namespace: &'a str, labels: &'a [(&'a str, &'a str)]) -> End<'a> {
    End {
        namespace: Some(namespace),
        labels,
        ip: None,
    }
}

fn address(ip: [u8; 4]) -> End<'static> {
    End {
        namespace: None,
        labels: &[],
        ip: Some(Ipv4Addr::from(ip)),
    }
}

/// A label selector; only `matchLabels` is used in `deploy/`.
fn selects(selector: &Value, labels: &[(&str, &str)]) -> bool {
    assert!(
        selector.get("matchExpressions").is_none(),
        "matchExpressions: extend this test"
    );
    selector["matchLabels"].as_object().is_none_or(|wanted| {
        wanted
            .iter()
            .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && v == lv))
    })
}

fn in_block(block: &Value, ip: Ipv4Addr) -> bool {
    let (net, bits) = block["cidr"].as_str().unwrap().split_once('/').unwrap();
    let (net, bits): (Ipv4Addr, u32) = (net.parse().unwrap(), bits.parse().unwrap());
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    assert!(
        block.get("except").is_none(),
        "ipBlock.except: extend this test"
    );
    u32::from(ip) & mask == u32::from(net) & mask
}

fn peer_matches(peer: &Value, policy_namespace: &str, end: End<'_>) -> bool {
    if let Some(block) = peer.get("ipBlock") {
        return end.ip.is_some_and(|ip| in_block(block, ip));
    }
    let Some(namespace) = end.namespace else {
        return false;
    };
    let namespace_ok = match peer.get("namespaceSelector") {
        Some(selector) => selects(selector, &[("kubernetes.io/metadata.name", namespace)]),
        None => namespace == policy_namespace,
    };
    namespace_ok
        && peer
            .get("podSelector")
            .is_none_or(|s| selects(s, end.labels))
}

fn port_matches(ports: Option<&Value>, port: u16, protocol: &str) -> bool {
    let Some(ports) = ports.and_then(Value::as_array) else {
        return true;
    };
    ports.iter().any(|p| {
        let number = p["port"].as_u64().expect("numbered ports only");
        number == u64::from(port) && p["protocol"].as_str().unwrap_or("TCP") == protocol
    })
}

/// Whether `subject` may take (`Ingress`) or open (`Egress`) a connection to or
/// from `peer` on `port`.
fn allowed(
    objects: &[Value],
    direction: &str,
    subject: End<'_>,
    peer: End<'_>,
    port: u16,
    protocol: &str,
) -> bool {
    let (rules_key, peers_key) = match direction {
        "Ingress" => ("ingress", "from"),
        _ => ("egress", "to"),
    };
    let namespace = subject.namespace.unwrap();
    let policies: Vec<&Value> = find(objects, "NetworkPolicy")
        .into_iter()
        .filter(|p| p["metadata"]["namespace"] == namespace)
        .filter(|p| selects(&p["spec"]["podSelector"], subject.labels))
        .filter(|p| {
            p["spec"]["policyTypes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == direction)
        })
        .collect();
    if policies.is_empty() {
        return true;
    }
    policies.iter().any(|policy| {
        let rules = policy["spec"][rules_key]
            .as_array()
            .cloned()
            .unwrap_or_default();
        rules.iter().any(|rule| {
            let peers = rule[peers_key].as_array().filter(|p| !p.is_empty());
            let peer_ok =
                peers.is_none_or(|peers| peers.iter().any(|p| peer_matches(p, namespace, peer)));
            peer_ok && port_matches(rule.get("ports"), port, protocol)
        })
    })
}

/// A rendered `labels` map.
fn labels(map: &Value) -> Vec<(&str, &str)> {
    let map = map.as_object().unwrap();
    map.iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
        .collect()
}

/// The gateway pod's labels, as the Deployment renders them.
fn gateway_labels(objects: &[Value]) -> Vec<(&str, &str)> {
    labels(&one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"])
}

fn container_port(objects: &[Value], name: &str) -> u16 {
    let ports = &one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["ports"];
    let port = ports
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap();
    u16::try_from(port["containerPort"].as_u64().unwrap()).unwrap()
}

const NGINX: &[(&str, &str)] = &[("app.kubernetes.io/name", "ingress-nginx")];
const TRAEFIK: &[(&str, &str)] = &[("app.kubernetes.io/name", "traefik")];
const PROMETHEUS: &[(&str, &str)] = &[("app.kubernetes.io/name", "prometheus")];
const KUBE_DNS: &[(&str, &str)] = &[("k8s-app", "kube-dns")];
const SCHEDULER: &[(&str, &str)] = &[("dask.org/component", "scheduler")];
const WORKER: &[(&str, &str)] = &[("dask.org/component", "worker")];
const WORKFLOW: &[(&str, &str)] = &[("reana-run-batch-workflow-uuid", "6d3c8a1e")];
const REANA_SERVER: &[(&str, &str)] = &[("app", "reana-server")];
const OPERATOR: &[(&str, &str)] = &[("app.kubernetes.io/name", "dask-kubernetes-operator")];
const OPERATOR_LEGACY: &[(&str, &str)] = &[("application", "dask-kubernetes-operator")];

/// What the gateway's own policies admit, in `namespace`, with the public port
/// reached by `ingress` (the ingress controller's pod).
fn check_gateway_policies(objects: &[Value], namespace: &str, ingress: End<'_>) {
    let labels = gateway_labels(objects);
    let gateway = pod(namespace, &labels);
    let (public, admin) = (
        container_port(objects, "http"),
        container_port(objects, "admin"),
    );
    let ingress_ok = |from: End<'_>, port| allowed(objects, "Ingress", gateway, from, port, "TCP");
    assert!(
        ingress_ok(ingress, public),
        "the ingress controller reaches the public port"
    );
    assert!(!ingress_ok(ingress, admin), "but not the admin port");
    let prometheus = pod("monitoring", PROMETHEUS);
    assert!(
        ingress_ok(prometheus, admin),
        "Prometheus reaches the admin port"
    );
    assert!(!ingress_ok(prometheus, public));
    for stranger in [
        pod(namespace, WORKFLOW),
        pod("elsewhere", TRAEFIK),
        pod(namespace, SCHEDULER),
    ] {
        assert!(!ingress_ok(stranger, public) && !ingress_ok(stranger, admin));
    }

    let egress_ok =
        |to: End<'_>, port, protocol| allowed(objects, "Egress", gateway, to, port, protocol);
    let dns = pod("kube-system", KUBE_DNS);
    assert!(
        egress_ok(dns, 53, "UDP") && egress_ok(dns, 53, "TCP"),
        "DNS"
    );
    assert!(
        !egress_ok(pod("kube-system", NGINX), 53, "UDP"),
        "DNS pods only"
    );
    let scheduler = pod(namespace, SCHEDULER);
    assert!(egress_ok(scheduler, 8787, "TCP"), "the dashboard port");
    assert!(!egress_ok(scheduler, 8786, "TCP"), "not the Dask protocol");
    assert!(
        !egress_ok(pod(namespace, WORKER), 8787, "TCP"),
        "schedulers only"
    );
    assert!(
        !egress_ok(pod("elsewhere", SCHEDULER), 8787, "TCP"),
        "in its namespace"
    );
    for apiserver in [
        address([10, 0, 0, 1]),
        address([172, 18, 0, 2]),
        address([192, 168, 49, 2]),
    ] {
        assert!(egress_ok(apiserver, 6443, "TCP") && egress_ok(apiserver, 443, "TCP"));
        assert!(
            !egress_ok(apiserver, 80, "TCP"),
            "the API server's ports only"
        );
    }
    assert!(
        !egress_ok(address([203, 0, 113, 7]), 443, "TCP"),
        "no public address"
    );
}

#[test]
fn base_policies_admit_the_ingress_controller_and_prometheus_and_reach_what_discovery_needs() {
    let objects = render("deploy/base");
    let policies = find(&objects, "NetworkPolicy");
    assert_eq!(policies.len(), 2);
    for policy in &policies {
        assert_eq!(
            policy["spec"]["podSelector"]["matchLabels"],
            serde_json::json!({"app.kubernetes.io/name": "dask-dashboard-gateway"})
        );
    }
    let main = named(&objects, "NetworkPolicy", "dask-dashboard-gateway");
    assert_eq!(
        main["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    let apiserver = named(
        &objects,
        "NetworkPolicy",
        "dask-dashboard-gateway-apiserver",
    );
    assert_eq!(
        apiserver["spec"]["policyTypes"],
        serde_json::json!(["Egress"])
    );
    for peer in apiserver["spec"]["egress"][0]["to"].as_array().unwrap() {
        assert!(
            peer["ipBlock"]["cidr"].is_string(),
            "an easy patch: ipBlocks only"
        );
    }
    let nginx = pod("ingress-nginx", NGINX);
    check_gateway_policies(&objects, "dask-dashboard-gateway", nginx);
    // No reana-server in the base: it verifies JWTs locally.
    let labels = gateway_labels(&objects);
    let gateway = pod("dask-dashboard-gateway", &labels);
    let reana_server = pod("reana", REANA_SERVER);
    let egress = allowed(&objects, "Egress", gateway, reana_server, 5000, "TCP");
    assert!(!egress);
}

#[test]
fn reana_overlay_leaves_the_gateway_the_only_way_to_a_dashboard() {
    let objects = render("deploy/overlays/reana");
    let traefik = pod("reana", TRAEFIK);
    check_gateway_policies(&objects, "reana", traefik);
    let labels = gateway_labels(&objects);
    let gateway = pod("reana", &labels);
    let to_gateway = |from, port| allowed(&objects, "Ingress", gateway, from, port, "TCP");
    let from_gateway = |to, port| allowed(&objects, "Egress", gateway, to, port, "TCP");
    // The public port admits REANA's Traefik, not every pod of REANA's namespace.
    assert!(!to_gateway(pod("reana", WORKFLOW), 8080));

    // reana-server: its pods' port, in the namespace gateway.toml names.
    assert!(from_gateway(pod("reana", REANA_SERVER), 5000));
    assert!(!from_gateway(pod("reana", WORKFLOW), 5000));
    let config = one(&objects, "ConfigMap")["data"]["gateway.toml"]
        .as_str()
        .unwrap();
    assert!(config.contains("http://reana-server.reana.svc"), "{config}");

    // The schedulers: an ingress-only policy (they still reach their workers).
    let policy = named(&objects, "NetworkPolicy", "dask-schedulers");
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"],
        serde_json::json!({"dask.org/component": "scheduler"})
    );
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress"])
    );
    let scheduler = pod("reana", SCHEDULER);
    let reaches = |from: End<'_>, port| allowed(&objects, "Ingress", scheduler, from, port, "TCP");
    assert!(reaches(gateway, 8787), "the gateway reaches the dashboard");
    assert!(
        reaches(pod("reana", OPERATOR), 8787),
        "the operator's autoscaler"
    );
    assert!(reaches(pod("reana", OPERATOR_LEGACY), 8787));
    assert!(reaches(pod("reana", OPERATOR), 8786), "its fallback");
    for other in [
        traefik,
        pod("ingress-nginx", NGINX),
        pod("reana", WORKFLOW),
        pod("reana", WORKER),
        pod("reana", REANA_SERVER),
        pod("monitoring", PROMETHEUS),
        pod("elsewhere", OPERATOR),
        pod("elsewhere", &labels),
    ] {
        assert!(!reaches(other, 8787), "no other way to a dashboard");
    }
    for own in [pod("reana", WORKFLOW), pod("reana", WORKER), gateway] {
        assert!(reaches(own, 8786), "the Dask protocol for REANA's pods");
    }
    assert!(!reaches(pod("elsewhere", WORKFLOW), 8786));
    assert!(!reaches(gateway, 8788), "no other port");
    assert!(!reaches(pod("reana", WORKFLOW), 8787));
}

#[test]
fn servicemonitor_component_scrapes_the_admin_port() {
    assert!(
        find(&render("deploy/overlays/reana"), "ServiceMonitor").is_empty(),
        "optional"
    );
    let objects = render_with_components(
        "deploy/overlays/reana",
        "reana",
        &["deploy/components/servicemonitor"],
    );
    let monitor = one(&objects, "ServiceMonitor");
    let service = one(&objects, "Service");
    assert_eq!(
        monitor["metadata"]["namespace"],
        service["metadata"]["namespace"]
    );
    let service_labels = labels(&service["metadata"]["labels"]);
    assert!(
        selects(&monitor["spec"]["selector"], &service_labels),
        "selects the gateway's Service"
    );
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"], "/metrics");
    let port = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == endpoint["port"])
        .expect("the endpoint names a Service port");
    assert_eq!(port["targetPort"], "admin");
    // ... whose container port the gateway's policy opens to Prometheus in `monitoring`.
    let admin = container_port(&objects, "admin");
    let gateway = gateway_labels(&objects);
    let prometheus = pod("monitoring", PROMETHEUS);
    assert!(allowed(
        &objects,
        "Ingress",
        pod("reana", &gateway),
        prometheus,
        admin,
        "TCP"
    ));
}
