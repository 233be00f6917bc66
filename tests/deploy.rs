//! The manifests in `deploy/`: every kustomization renders with the real
//! `kubectl kustomize`, and the rendered objects hold what operators rely on
//! (kinds, probes, security context, RBAC verbs, both dashboard paths routed), and
//! the configurations they ship pass `--check-config`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Python with PyYAML (the Dask test environment has it) turns YAML into JSON.
fn python() -> PathBuf {
    let venv = std::env::var_os("DDG_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            Path::new(&home).join(".cache/dask-dashboard-gateway/venv")
        });
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test",
        python.display()
    );
    python
}

/// `kubectl kustomize <dir>` as a list of objects.
fn render(dir: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(repo().join(dir))
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = Command::new(python())
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let converted = child.wait_with_output().unwrap();
    assert!(converted.status.success());
    serde_json::from_slice(&converted.stdout).unwrap()
}

fn find<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = find(objects, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, got {}", found.len());
    found[0]
}

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
    check_config(&objects);
}

#[test]
fn cluster_rbac_grants_only_reads_of_services_and_endpointslices() {
    let objects = render("deploy/rbac/cluster");
    check_rules(&one(&objects, "ClusterRole")["rules"]);
    let binding = one(&objects, "ClusterRoleBinding");
    assert_eq!(binding["subjects"][0]["name"], "dask-dashboard-gateway");
    let objects = render("deploy/rbac/namespaced");
    check_rules(&one(&objects, "Role")["rules"]);
}

#[test]
fn reana_overlay_routes_both_dashboard_forms_and_introspects_with_reana() {
    let objects = render("deploy/overlays/reana");
    check_deployment(&objects);
    for o in &objects {
        if o["metadata"]["namespace"].is_string() {
            assert_eq!(o["metadata"]["namespace"], "default", "{}", o["kind"]);
        }
    }
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
