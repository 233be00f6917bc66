//! A real Dask cluster for the end-to-end tests: one `dask scheduler` with its
//! dashboard and N workers, all on 127.0.0.1 with ports chosen by the OS, from the
//! Python venv that `scripts/test` creates (`$DDG_TEST_VENV`).
//!
//! Every process runs in its own process group with its stdin a pipe from the test:
//! dropping the [`DaskCluster`] kills the groups, and a test process that dies without
//! dropping it closes the pipes, which a watchdog thread in each Python process turns
//! into `os.killpg`. Nothing outlives the test.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

use super::http;

/// Longest wait for the cluster to come up.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Log lines kept per process for failure messages.
const KEEP_LINES: usize = 200;

/// Runs a module (`-m name args…`) or a script file (`path args…`) after starting a
/// thread that kills the whole process group when stdin closes (the test is gone).
const WATCHDOG: &str = r#"
import os, runpy, sys, threading
def _watch():
    try:
        sys.stdin.buffer.read()
    finally:
        os.killpg(0, 9)
threading.Thread(target=_watch, daemon=True).start()
kind, target = sys.argv[1], sys.argv[2]
sys.argv = [target] + sys.argv[3:]
if kind == "-m":
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    runpy.run_path(target, run_name="__main__")
"#;

/// Keeps tasks flowing through the cluster for `duration` seconds so that the task
/// stream, progress and graph plots have something to show.
const WORK_SCRIPT: &str = r#"
import sys, time
from distributed import Client

def inc(x):
    time.sleep(0.005)
    return x + 1

client = Client(sys.argv[1], timeout="30s")
deadline = time.time() + float(sys.argv[2])
round = 0
while time.time() < deadline:
    futures = client.map(inc, range(300), key=[f"inc-{round}-{i}" for i in range(300)])
    total = client.submit(sum, futures, key=f"sum-{round}")
    total.result()
    round += 1
    time.sleep(0.2)
client.close()
"#;

type LogTail = Arc<Mutex<VecDeque<String>>>;

/// One Python child in its own process group.
struct Proc {
    label: String,
    child: Child,
    /// Held open: its closing is the watchdog's signal.
    _stdin: Option<ChildStdin>,
    log: LogTail,
}

impl Proc {
    fn spawn(
        python: &PathBuf,
        label: &str,
        args: &[String],
        cwd: &std::path::Path,
        lines: Option<mpsc::UnboundedSender<String>>,
    ) -> Proc {
        let mut cmd = Command::new(python);
        cmd.arg("-c")
            .arg(WATCHDOG)
            .args(args)
            .current_dir(cwd)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label} with {}: {e}", python.display()));
        let log: LogTail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(out) = child.stdout.take() {
            drain(out, label.to_owned(), log.clone(), None);
        }
        if let Some(err) = child.stderr.take() {
            drain(err, label.to_owned(), log.clone(), lines);
        }
        let stdin = child.stdin.take();
        Proc {
            label: label.to_owned(),
            child,
            _stdin: stdin,
            log,
        }
    }

    fn tail(&self) -> String {
        let lines = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        let mut out = format!("--- {} (last {} lines) ---\n", self.label, lines.len());
        for line in lines {
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    fn kill(&mut self) {
        if let Some(pid) = self.child.id() {
            // The child leads its own group (process_group(0)): its pid is the pgid.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.start_kill();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads a child's output line by line for as long as it lives, keeping the last
/// lines and, for the startup parser, forwarding them.
fn drain(
    stream: impl AsyncRead + Unpin + Send + 'static,
    label: String,
    log: LogTail,
    lines: Option<mpsc::UnboundedSender<String>>,
) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if std::env::var_os("DDG_TEST_DASK_LOG").is_some() {
                eprintln!("[{label}] {line}");
            }
            if let Some(tx) = &lines {
                let _ = tx.send(line.clone());
            }
            if let Ok(mut log) = log.lock() {
                if log.len() == KEEP_LINES {
                    log.pop_front();
                }
                log.push_back(line);
            }
        }
    });
}

/// The Python interpreter of the test venv; panics with instructions when missing.
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("DDG_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache/dask-dashboard-gateway/venv")
        });
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "no Python venv with dask at {}: run scripts/test to create the venv \
         (or point DDG_TEST_VENV at one with tests/requirements.txt installed)",
        venv.display()
    );
    python
}

/// A running scheduler (with dashboard) and its workers.
pub struct DaskCluster {
    /// The dashboard's HTTP address.
    pub dashboard: SocketAddr,
    /// The scheduler's comm address, `tcp://127.0.0.1:NNNN`.
    pub scheduler: String,
    python: PathBuf,
    procs: Mutex<Vec<Proc>>,
    dir: tempfile::TempDir,
}

impl DaskCluster {
    /// Starts a scheduler and `workers` workers and waits (at most
    /// [`START_TIMEOUT`]) until the scheduler reports all of them.
    pub async fn start(workers: usize) -> DaskCluster {
        let python = venv_python();
        let dir = tempfile::Builder::new()
            .prefix("ddg-dask-")
            .tempdir()
            .expect("temporary directory for the cluster");
        let deadline = Instant::now() + START_TIMEOUT;

        let (tx, mut rx) = mpsc::unbounded_channel();
        let scheduler_args = [
            "-m",
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--dashboard-address",
            "127.0.0.1:0",
        ]
        .map(str::to_owned);
        let scheduler_proc =
            Proc::spawn(&python, "scheduler", &scheduler_args, dir.path(), Some(tx));
        let mut cluster = DaskCluster {
            dashboard: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            scheduler: String::new(),
            python,
            procs: Mutex::new(vec![scheduler_proc]),
            dir,
        };

        let addresses = timeout(START_TIMEOUT, async {
            let (mut scheduler, mut dashboard) = (None, None);
            while scheduler.is_none() || dashboard.is_none() {
                let line = rx.recv().await?;
                if let Some(at) = line.find("Scheduler at:") {
                    scheduler = line[at..].split_whitespace().nth(2).map(str::to_owned);
                }
                if let Some(at) = line.find("dashboard at:") {
                    dashboard = line[at..]
                        .split_whitespace()
                        .nth(2)
                        .and_then(parse_http_addr);
                }
            }
            Some((scheduler?, dashboard?))
        })
        .await;
        drop(rx);
        match addresses {
            Ok(Some((scheduler, dashboard))) => {
                cluster.scheduler = scheduler;
                cluster.dashboard = dashboard;
            }
            Ok(None) => panic!("the scheduler exited during start-up\n{}", cluster.logs()),
            Err(_) => panic!(
                "the scheduler did not log its addresses within {START_TIMEOUT:?}\n{}",
                cluster.logs()
            ),
        }

        for i in 0..workers {
            let args = [
                "-m",
                "distributed.cli.dask_worker",
                &cluster.scheduler,
                "--nthreads",
                "1",
                "--host",
                "127.0.0.1",
                "--no-dashboard",
                "--no-nanny",
                "--name",
                &format!("test-worker-{i}"),
                "--memory-limit",
                "0",
                "--local-directory",
                &cluster.dir.path().display().to_string(),
            ]
            .map(|s| s.to_owned());
            let proc = Proc::spawn(
                &cluster.python,
                &format!("worker-{i}"),
                &args,
                cluster.dir.path(),
                None,
            );
            cluster.push(proc);
        }
        cluster.wait_for_workers(workers, deadline).await;
        cluster
    }

    /// `http://<dashboard>` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.dashboard)
    }

    /// `ws://<dashboard>` + `path`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.dashboard)
    }

    /// Starts a client in the background that keeps submitting small tasks for
    /// `seconds`; it is killed with the cluster.
    pub fn submit_work_for(&self, seconds: u32) {
        let script = self.dir.path().join("work.py");
        std::fs::write(&script, WORK_SCRIPT).expect("writing the work script");
        let args = [
            "-s".to_owned(),
            script.display().to_string(),
            self.scheduler.clone(),
            seconds.to_string(),
        ];
        let proc = Proc::spawn(&self.python, "work-client", &args, self.dir.path(), None);
        self.push(proc);
    }

    /// [`DaskCluster::submit_work_for`] for 60 s (longer than any test waits).
    pub fn submit_work(&self) {
        self.submit_work_for(60);
    }

    /// The bokeh application paths the dashboard serves as individual plots
    /// (`/individual-plots.json`), e.g. `/individual-task-stream`, plus the static
    /// individual pages under `/statics/`.
    pub async fn individual_plots(&self) -> Vec<String> {
        let resp = http::get(&self.url("/individual-plots.json"), &[]).await;
        assert_eq!(
            resp.status,
            200,
            "individual-plots.json: {}",
            resp.describe()
        );
        let mut paths: Vec<String> = resp
            .json()
            .as_object()
            .map(|m| {
                m.values()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        paths.sort();
        paths
    }

    /// The last log lines of every process, for failure messages.
    pub fn logs(&self) -> String {
        self.procs
            .lock()
            .map(|procs| procs.iter().map(Proc::tail).collect())
            .unwrap_or_default()
    }

    fn push(&self, proc: Proc) {
        if let Ok(mut procs) = self.procs.lock() {
            procs.push(proc);
        }
    }

    async fn wait_for_workers(&self, workers: usize, deadline: Instant) {
        let url = self.url("/json/identity.json");
        let mut seen = None;
        loop {
            if let Ok(resp) = http::try_request("GET", &url, &[], bytes::Bytes::new()).await {
                if resp.status == 200 {
                    let n = resp.json()["n_workers"].as_u64();
                    if n == Some(workers as u64) {
                        return;
                    }
                    seen = n;
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "the scheduler reports {seen:?} workers, not {workers}, after {START_TIMEOUT:?}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for DaskCluster {
    fn drop(&mut self) {
        if let Ok(mut procs) = self.procs.lock() {
            // Workers and clients first, so the scheduler does not log their loss.
            while let Some(mut proc) = procs.pop() {
                proc.kill();
            }
        }
    }
}

/// `http://127.0.0.1:39733/status` → `127.0.0.1:39733` (a host name counts as
/// loopback: the scheduler was told to listen there).
fn parse_http_addr(url: &str) -> Option<SocketAddr> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    if let Ok(addr) = authority.parse() {
        return Some(addr);
    }
    let (host, port) = authority.rsplit_once(':')?;
    let ip = host.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    Some(SocketAddr::new(ip, port.parse().ok()?))
}
