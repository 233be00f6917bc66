//! The real `kubectl` reads the fake API server's answers (discovery, lists with label
//! selectors, and a watch stream of ADDED/MODIFIED/DELETED events): the fake speaks
//! the Kubernetes protocol, not just what the gateway's own client expects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use support::fake_kube::{objects, FakeKube, Kind};
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::time::timeout;

const KUBECTL: &str = "/usr/bin/kubectl";
const WF: &str = "3f1c2b4a-9d7e-4c1b-8a55-0e2e00000001";
const WF2: &str = "7d0e9a11-2b3c-4d5e-8f60-0e2e00000002";
const LIMIT: Duration = Duration::from_secs(30);

fn kubectl(fake: &FakeKube, args: &[&str]) -> Command {
    let mut cmd = Command::new(KUBECTL);
    cmd.arg("--kubeconfig")
        .arg(fake.kubeconfig())
        .arg("--cache-dir")
        .arg(fake.scratch().join("cache"))
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs kubectl to completion; its stdout, or a panic with stderr.
async fn run(fake: &FakeKube, args: &[&str]) -> String {
    let out = timeout(LIMIT, kubectl(fake, args).output())
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish within {LIMIT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {KUBECTL}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}\n{stderr}",
        out.status
    );
    String::from_utf8(out.stdout).expect("kubectl prints UTF-8")
}

async fn run_json(fake: &FakeKube, args: &[&str]) -> Value {
    let text = run(fake, args).await;
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("kubectl {args:?} printed no JSON ({e}): {text}"))
}

fn names(list: &Value) -> Vec<String> {
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let mut names: Vec<String> = items
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["metadata"]["namespace"].as_str().unwrap_or(""),
                i["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    names.sort();
    names
}

async fn populated() -> FakeKube {
    let fake = FakeKube::start().await;
    let a = objects::scheduler(
        "default",
        "reana-run-dask-3f1c2b4a-scheduler",
        WF,
        "alice",
        "10.96.0.10",
        8787,
    );
    let b = objects::scheduler(
        "reana",
        "reana-run-dask-7d0e9a11-scheduler",
        WF2,
        "bob",
        "10.96.0.11",
        8787,
    );
    fake.apply(&a);
    fake.apply(&b);
    fake.apply(&objects::slice_for(&a, &["10.244.0.5"], true));
    fake.apply(&objects::slice_for(&b, &["10.244.0.6"], false));
    let mut other = objects::scheduler("default", "unrelated", WF, "x", "10.96.0.12", 80);
    other.metadata.labels = Some([("app".to_owned(), "web".to_owned())].into());
    fake.apply(&other);
    fake
}

#[tokio::test]
async fn kubectl_reads_version_and_discovery() {
    let fake = populated().await;
    let version = run_json(&fake, &["version", "-o", "json"]).await;
    assert_eq!(version["serverVersion"]["minor"], "33", "{version}");
    let resources = run(&fake, &["api-resources", "--no-headers"]).await;
    assert!(
        resources.contains("services") && resources.contains("endpointslices"),
        "{resources}"
    );
}

#[tokio::test]
async fn kubectl_lists_services_and_endpointslices() {
    let fake = populated().await;
    let all = run_json(&fake, &["get", "services", "-A", "-o", "json"]).await;
    assert_eq!(
        names(&all),
        [
            "default/reana-run-dask-3f1c2b4a-scheduler",
            "default/unrelated",
            "reana/reana-run-dask-7d0e9a11-scheduler"
        ]
    );
    let first = &all["items"][0];
    assert_eq!(first["kind"], "Service", "kubectl typed the list items");
    assert_eq!(first["metadata"]["labels"][objects::WORKFLOW_LABEL], WF);
    assert_eq!(first["spec"]["ports"][1]["name"], "http-dashboard");
    assert!(first["metadata"]["resourceVersion"].as_str().is_some());

    let selected = run_json(
        &fake,
        &[
            "get",
            "services",
            "-A",
            "-l",
            "dask.org/component=scheduler",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(names(&selected).len(), 2);
    let in_reana = run_json(&fake, &["get", "services", "-n", "reana", "-o", "json"]).await;
    assert_eq!(
        names(&in_reana),
        ["reana/reana-run-dask-7d0e9a11-scheduler"]
    );
    let one = run_json(
        &fake,
        &[
            "get",
            "service",
            "-n",
            "reana",
            "reana-run-dask-7d0e9a11-scheduler",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(one["spec"]["clusterIP"], "10.96.0.11");

    let slices = run_json(
        &fake,
        &[
            "get",
            "endpointslices",
            "-A",
            "-l",
            "kubernetes.io/service-name",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(names(&slices).len(), 2, "{slices}");
    let ready: Vec<&Value> = slices["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["endpoints"][0]["conditions"]["ready"])
        .collect();
    assert_eq!(ready, [&Value::Bool(true), &Value::Bool(false)]);

    // Pagination: kubectl follows `continue` tokens.
    let paged = run_json(
        &fake,
        &["get", "services", "-A", "--chunk-size", "1", "-o", "json"],
    )
    .await;
    assert_eq!(names(&paged), names(&all));
    let plain = run(&fake, &["get", "services", "-A", "-o", "name"]).await;
    assert_eq!(plain.lines().count(), 3, "{plain}");
}

/// The stdout of `kubectl get --watch --output-watch-events -o json`, parsed as it
/// arrives.
struct WatchOutput {
    stdout: tokio::process::ChildStdout,
    buffer: Vec<u8>,
}

impl WatchOutput {
    /// Every event printed so far, once there are at least `n`.
    async fn at_least(&mut self, n: usize) -> Vec<Value> {
        let reading = async {
            let mut chunk = [0u8; 8192];
            loop {
                let events: Vec<Value> = serde_json::Deserializer::from_slice(&self.buffer)
                    .into_iter::<Value>()
                    .map_while(Result::ok)
                    .collect();
                if events.len() >= n {
                    return events;
                }
                let read = self.stdout.read(&mut chunk).await.expect("reading kubectl");
                assert!(
                    read > 0,
                    "kubectl exited: {}",
                    String::from_utf8_lossy(&self.buffer)
                );
                self.buffer.extend_from_slice(&chunk[..read]);
            }
        };
        match timeout(LIMIT, reading).await {
            Ok(events) => events,
            Err(_) => panic!(
                "kubectl watch output incomplete: {}",
                String::from_utf8_lossy(&self.buffer)
            ),
        }
    }
}

#[tokio::test]
async fn kubectl_follows_a_watch() {
    let fake = populated().await;
    let mut child = kubectl(
        &fake,
        &[
            "get",
            "services",
            "-n",
            "default",
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawning kubectl");
    let mut output = WatchOutput {
        stdout: child.stdout.take().expect("piped stdout"),
        buffer: Vec::new(),
    };
    let initial = output.at_least(2).await;
    assert!(initial.iter().all(|e| e["type"] == "ADDED"), "{initial:?}");

    let c = objects::scheduler(
        "default",
        "reana-run-dask-0c0c0c0c-scheduler",
        WF2,
        "carol",
        "10.96.0.13",
        8787,
    );
    fake.apply(&c);
    let mut changed = c.clone();
    changed
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("user-uuid".into(), "dave".into());
    fake.apply(&changed);
    fake.bookmark();
    fake.delete(
        Kind::Service,
        "default",
        "reana-run-dask-0c0c0c0c-scheduler",
    );
    fake.apply(&objects::scheduler(
        "reana",
        "elsewhere",
        WF,
        "x",
        "10.96.0.14",
        8787,
    ));
    let events = output.at_least(5).await;
    let seen: Vec<(&str, &str)> = events[2..]
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or(""),
                e["object"]["metadata"]["name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let name = "reana-run-dask-0c0c0c0c-scheduler";
    assert_eq!(
        seen,
        [("ADDED", name), ("MODIFIED", name), ("DELETED", name)]
    );
    assert_eq!(
        events[3]["object"]["metadata"]["labels"]["user-uuid"],
        "dave"
    );
    child.start_kill().expect("stopping kubectl");
    let _ = timeout(LIMIT, child.wait()).await;
}

#[tokio::test]
async fn kubectl_reads_the_410_expired_status() {
    let fake = populated().await;
    let first_page = run_json(&fake, &["get", "--raw", "/api/v1/services?limit=1"]).await;
    let token = first_page["metadata"]["continue"]
        .as_str()
        .expect("a continue token")
        .to_owned();
    fake.apply(&objects::scheduler(
        "default",
        "later",
        WF,
        "x",
        "10.96.0.15",
        8787,
    ));
    fake.compact();
    let path = format!("/api/v1/services?limit=1&continue={token}");
    let out = timeout(LIMIT, kubectl(&fake, &["get", "--raw", &path]).output())
        .await
        .expect("kubectl finished")
        .expect("kubectl ran");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Error from server (Expired)")
            && stderr.contains("too old resource version"),
        "kubectl did not read the Status: {stderr}"
    );
}
