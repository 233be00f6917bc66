//! The Rust end of the browser tests: runs one scenario of `scenarios.mjs` in a
//! `node` child (bounded in time, killed on every way out, its browser profile in a
//! temporary directory of its own) and serves the cross-site attack page.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::Command;

/// `tests/browser`, where `scenarios.mjs` and its `node_modules` live.
pub(crate) fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Panics with the install step when Chromium or playwright-core is missing.
pub(crate) fn require_browser() {
    let modules = browser_dir().join("node_modules/playwright-core");
    assert!(
        modules.is_dir(),
        "no {}: run scripts/test (npm ci in tests/browser)",
        modules.display()
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "no /usr/bin/chromium: run scripts/test (apt-get install chromium)"
    );
}

/// `<target>/browser`, created: the screenshots of this run.
fn screenshot_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| root.join(dir))
        .unwrap_or_else(|| root.join("target"));
    let dir = target.join("browser");
    std::fs::create_dir_all(&dir).expect("creating the screenshot directory");
    dir
}

/// Where the screenshot `name` of this run goes.
pub(crate) fn shot(name: &str) -> String {
    screenshot_dir().join(name).display().to_string()
}

/// Runs one scenario of `scenarios.mjs` with `input` (plus its `budget_ms`), calling
/// `on_progress` for each progress line; returns its result or panics with its
/// error, its progress and its stderr. The child is killed on every path out.
pub(crate) async fn scenario(
    mut input: Value,
    budget: Duration,
    mut on_progress: impl FnMut(&Value),
) -> Value {
    require_browser();
    let dir = browser_dir();
    let name = input["scenario"].as_str().unwrap_or("?").to_owned();
    input["budget_ms"] = json!(budget.as_millis() as u64);
    // playwright puts the fresh profile under TMPDIR; this directory goes with the run.
    let tmp = tempfile::Builder::new()
        .prefix("ddg-browser-")
        .tempdir()
        .unwrap();
    let mut child = Command::new("node")
        .arg("scenarios.mjs")
        .arg(input.to_string())
        .current_dir(&dir)
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting node (Node.js 20 or later is needed)");
    // Held open while the scenario runs: its closing tells the script to quit.
    let lifeline = child.stdin.take();
    let mut err_pipe = child.stderr.take().unwrap();
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let _ = err_pipe.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut result, mut error) = (None, None);
    let start = Instant::now();
    let reading = async {
        while let Ok(Some(line)) = lines.next_line().await {
            let message: Value = serde_json::from_str(&line).unwrap_or(json!({"raw": line}));
            let elapsed = start.elapsed().as_secs_f64();
            eprintln!("[{name} {elapsed:>5.1}s] {}", abridged(&message));
            match message["event"].as_str() {
                Some("result") => result = Some(message["result"].clone()),
                Some("error") => error = message["message"].as_str().map(str::to_owned),
                Some("progress") => on_progress(&message),
                _ => {}
            }
        }
    };
    let finished = tokio::time::timeout(budget + Duration::from_secs(15), reading).await;
    drop(lifeline);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    let _ = child.kill().await;
    let exited_ok = matches!(status, Ok(Ok(s)) if s.success());
    match result {
        Some(result) if finished.is_ok() && exited_ok => result,
        _ => {
            let stderr = tokio::time::timeout(Duration::from_secs(2), stderr).await;
            let stderr = stderr.ok().and_then(Result::ok).unwrap_or_default();
            let how = if finished.is_err() {
                "timed out"
            } else {
                "ended"
            };
            let error = error.unwrap_or_else(|| "no result".into());
            panic!("browser scenario {name} {how} (exit {status:?}): {error}\n--- stderr ---\n{stderr}")
        }
    }
}

/// A message for the test log, without the long page texts.
pub(crate) fn abridged(message: &Value) -> String {
    let text = message.to_string();
    match text.char_indices().nth(600) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// A page on another origin that tries to open the WebSocket named in `?ws=` with
/// the dashboard's Bokeh subprotocols, and records what happens in `window.attack`.
const ATTACK_PAGE: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Cute cat pictures</title></head>
<body><h1>Cute cat pictures</h1><script>
const target = new URLSearchParams(location.search).get('ws');
window.attack = {target, opened: false, errored: false, messages: 0, close_code: null, done: false};
const ws = new WebSocket(target, ['bokeh', 'x']);
ws.onopen = () => { window.attack.opened = true; };
ws.onerror = () => { window.attack.errored = true; };
ws.onmessage = () => { window.attack.messages += 1; };
ws.onclose = (e) => { window.attack.close_code = e.code; window.attack.done = true; };
</script></body></html>
"#;

/// Serves [`ATTACK_PAGE`] for any request on 127.0.0.1:0 until dropped.
pub(crate) struct AttackSite {
    /// Where it listens, on 127.0.0.1 (and so on `localhost`).
    pub(crate) port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl AttackSite {
    /// Starts serving.
    pub(crate) async fn start() -> AttackSite {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let answer = async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{ATTACK_PAGE}",
                        ATTACK_PAGE.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                };
                tokio::spawn(tokio::time::timeout(Duration::from_secs(5), answer));
            }
        });
        AttackSite { port, task }
    }

    /// The attack page on `host` aiming at `ws`.
    pub(crate) fn url(&self, host: &str, ws: &str) -> String {
        let ws: String = form_urlencoded::byte_serialize(ws.as_bytes()).collect();
        format!("http://{host}:{}/?ws={ws}", self.port)
    }
}

impl Drop for AttackSite {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `values` as u64s (a JSON array of counts).
pub(crate) fn counts(values: &Value) -> Vec<u64> {
    let array = values.as_array().expect("an array of counts");
    array.iter().map(|v| v.as_u64().unwrap()).collect()
}

/// The value of a Prometheus sample line `name{labels} value`.
pub(crate) fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}
