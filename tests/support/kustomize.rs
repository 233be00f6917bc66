//! Rendering `deploy/` with the real `kubectl kustomize` into JSON objects, for the
//! deploy tests (`#[path = "support/kustomize.rs"] mod kustomize;`).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// The repository's root.
pub fn repo() -> PathBuf {
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

/// `kubectl kustomize <dir>` (relative to the repository) as a list of objects.
pub fn render(dir: &str) -> Vec<Value> {
    render_path(&repo().join(dir))
}

/// `dir` (relative to the repository) with `components` added, in `namespace`, as a
/// list of objects: what an overlay of that namespace listing the components renders.
pub fn render_with_components(dir: &str, namespace: &str, components: &[&str]) -> Vec<Value> {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    // kustomize takes only relative paths to other kustomizations: up to `/`, then down.
    let depth = root
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count();
    let relative = |path: &str| {
        let absolute = repo().join(path);
        format!(
            "{}{}",
            "../".repeat(depth),
            absolute.strip_prefix("/").unwrap().display()
        )
    };
    let mut text = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: {namespace}\nresources:\n  - {}\ncomponents:\n",
        relative(dir)
    );
    for component in components {
        text.push_str(&format!("  - {}\n", relative(component)));
    }
    std::fs::write(root.join("kustomization.yaml"), text).unwrap();
    render_path(&root)
}

fn render_path(dir: &Path) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = Command::new(python())
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python runs");
    child.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let converted = child.wait_with_output().unwrap();
    assert!(converted.status.success());
    serde_json::from_slice(&converted.stdout).unwrap()
}

/// Every object of `kind`.
pub fn find<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// The one object of `kind`.
pub fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found = find(objects, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, got {}", found.len());
    found[0]
}

/// The object of `kind` named `name`.
pub fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    find(objects, kind)
        .into_iter()
        .find(|o| o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}
