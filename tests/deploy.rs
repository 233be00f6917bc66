//! The manifests in `deploy/`: every kustomization renders with the real
//! `kubectl kustomize`, and the rendered objects hold what operators rely on
//! (kinds, probes, security context, RBAC verbs, both dashboard paths routed), and
//! the configurations they ship pass `--check-config`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

#[path = "support/kustomize.rs"]
mod kustomize;

use kustomize::{find, one, render, repo};

fn check_deployment(objects: &[Value]) {
    let deployment = one(objects, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["serviceAccountName"], "dask-dashboard-gateway");
    let container = &pod["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "admin");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "admin");
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    for key in ["requests", "limits"] {
        assert!(container["resources"][key]["cpu"].is_string(), "{key}.cpu");
        assert!(
            container["resources"][key]["memory"].is_string(),
            "{key}.memory"
        );
    }
    assert_eq!(container["imagePullPolicy"], "Always");
    check_token_mount(pod);
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace > 30,
        "the kubelet must wait longer than the gateway drains"
    );
    // The ConfigMap the pod mounts is the one kustomize generated (hashed name).
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "config")
        .unwrap();
    let config_map = one(objects, "ConfigMap");
    assert_eq!(volume["configMap"]["name"], config_map["metadata"]["name"]);
    assert_eq!(
        one(objects, "PodDisruptionBudget")["spec"]["minAvailable"],
        1
    );
    assert_eq!(
        one(objects, "HorizontalPodAutoscaler")["spec"]["minReplicas"],
        2
    );
    assert_eq!(
        one(objects, "Service")["spec"]["ports"][0]["targetPort"],
        "http"
    );
}

/// No token mounted by default; the gateway container alone gets the service
/// account's token, CA and namespace where kube-rs reads them in-cluster.
fn check_token_mount(pod: &Value) {
    assert_eq!(pod["automountServiceAccountToken"], false);
    let dir = "/var/run/secrets/kubernetes.io/serviceaccount";
    let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
    let mount = mounts.iter().find(|m| m["mountPath"] == dir).unwrap();
    assert_eq!(mount["readOnly"], true);
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    let sources = volume["projected"]["sources"].as_array().unwrap();
    let token = &sources[0]["serviceAccountToken"];
    assert_eq!(token["path"], "token");
    assert!(token["expirationSeconds"].as_u64().unwrap() >= 600);
    assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
    assert_eq!(sources[1]["configMap"]["items"][0]["path"], "ca.crt");
    let namespace = &sources[2]["downwardAPI"]["items"][0];
    assert_eq!(namespace["path"], "namespace");
    assert_eq!(namespace["fieldRef"]["fieldPath"], "metadata.namespace");
}

/// Every namespaced object is in `namespace` (never `default`), and the
/// ServiceAccount asks for no automatic token.
fn check_namespace(objects: &[Value], namespace: &str) {
    for o in objects {
        let cluster_wide =
            ["ClusterRole", "ClusterRoleBinding"].contains(&o["kind"].as_str().unwrap());
        if !cluster_wide {
            assert_eq!(o["metadata"]["namespace"], namespace, "{}", o["kind"]);
        }
        if o["kind"] == "ServiceAccount" {
            assert_eq!(o["automountServiceAccountToken"], false);
        }
    }
}

/// Only get/list/watch, only on services and endpointslices.
fn check_rules(rules: &Value) {
    let rules = rules.as_array().unwrap();
    let mut resources = Vec::new();
    for rule in rules {
        let mut verbs: Vec<&str> = rule["verbs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        verbs.sort_unstable();
        assert_eq!(verbs, ["get", "list", "watch"]);
        for r in rule["resources"].as_array().unwrap() {
            resources.push(r.as_str().unwrap().to_string());
        }
    }
    resources.sort();
    assert_eq!(resources, ["endpointslices", "services"]);
}

/// The shipped configuration is valid once its key file exists.
fn check_config(objects: &[Value]) {
    let text = one(objects, "ConfigMap")["data"]["gateway.toml"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let jwt = text.contains("[auth.jwt]");
    std::fs::write(&path, text).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_dask-dashboard-gateway"));
    command.arg("--config").arg(&path).arg("--check-config");
    if jwt {
        // The key comes from a Secret in the cluster; here, a test key.
        let key = repo().join("tests/fixtures/keys/rsa_public.pem");
        command.env("DDG_AUTH__JWT__PUBLIC_KEY_FILE", key);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "shipped config rejected: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn base_renders_a_hardened_deployment_with_namespaced_rbac() {
    let objects = render("deploy/base");
    check_deployment(&objects);
    check_rules(&one(&objects, "Role")["rules"]);
    let binding = one(&objects, "RoleBinding");
    assert_eq!(binding["subjects"][0]["name"], "dask-dashboard-gateway");
    assert_eq!(
        one(&objects, "ServiceAccount")["metadata"]["name"],
        "dask-dashboard-gateway"
    );
    assert!(find(&objects, "ClusterRole").is_empty());
    check_namespace(&objects, "dask-dashboard-gateway");
    check_config(&objects);
}

#[test]
fn cluster_rbac_grants_only_reads_of_services_and_endpointslices() {
    let objects = render("deploy/rbac/cluster");
    check_rules(&one(&objects, "ClusterRole")["rules"]);
    let binding = one(&objects, "ClusterRoleBinding");
    assert_eq!(binding["subjects"][0]["name"], "dask-dashboard-gateway");
    assert_eq!(
        binding["subjects"][0]["namespace"],
        "dask-dashboard-gateway"
    );
    check_namespace(&objects, "dask-dashboard-gateway");
    let objects = render("deploy/rbac/namespaced");
    check_rules(&one(&objects, "Role")["rules"]);
    check_namespace(&objects, "reana");
}

#[test]
fn reana_overlay_routes_both_dashboard_forms_and_introspects_with_reana() {
    let objects = render("deploy/overlays/reana");
    check_deployment(&objects);
    check_namespace(&objects, "reana");
    let ingress = one(&objects, "Ingress");
    let path = &ingress["spec"]["rules"][0]["http"]["paths"][0];
    assert_eq!(path["path"], "/dashboard/");
    assert_eq!(path["backend"]["service"]["name"], "dask-dashboard-gateway");
    let route = one(&objects, "IngressRoute");
    let rule = route["spec"]["routes"][0]["match"].as_str().unwrap();
    assert!(rule.contains("PathPrefix(`/dashboard/`)"), "{rule}");
    assert!(
        rule.contains("/dashboard(/|$)"),
        "REANA's /<uuid>/dashboard form: {rule}"
    );
    assert_eq!(
        route["spec"]["routes"][0]["services"][0]["name"],
        "dask-dashboard-gateway"
    );
    let config = one(&objects, "ConfigMap")["data"]["gateway.toml"]
        .as_str()
        .unwrap();
    assert!(config.contains("[auth.reana]"), "{config}");
    check_config(&objects);
}
