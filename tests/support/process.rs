//! The `dask-dashboard-gateway` binary as a child process: started with a clean
//! environment and its output in files, killed (and reaped) when its guard drops;
//! and [`GatewayProcess`], the gateway served by it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::config::GatewayConfig;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_dask-dashboard-gateway");

/// A child process that is killed (and reaped) when dropped.
pub struct Guard {
    /// The process.
    pub child: Child,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Guard {
    /// Waits for the exit until `deadline`; `None` when still running. Blocks the
    /// thread: async tests use [`Guard::exited`] polling instead.
    pub fn wait_until(&mut self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// The exit status, once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }
}

/// The binary with a clean environment (no inherited `DDG_*`, no `RUST_LOG`),
/// running in `dir`, its output going to the files `stdout` and `stderr` there.
pub fn command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(dir).stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("DDG_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out = std::fs::File::create(dir.join("stdout")).expect("stdout file");
    let err = std::fs::File::create(dir.join("stderr")).expect("stderr file");
    cmd.stdout(out).stderr(err);
    cmd
}

/// The file `name` in `dir` (empty when unreadable).
pub fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

/// The gateway as a child process (killed when dropped), its output in files of a
/// temporary directory. Its clock is its own: a test's paused clock does not reach it.
pub struct GatewayProcess {
    guard: Guard,
    dir: tempfile::TempDir,
    /// The public listener.
    pub public: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
}

impl GatewayProcess {
    /// Starts the binary with `config` (logging JSON, so that the addresses it
    /// bound can be read) and waits (30 s at most) for its `gateway listening` line.
    pub async fn start(config: &GatewayConfig) -> GatewayProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = config
            .clone()
            .log("format", "json")
            .write(dir.path(), "gateway.toml");
        let path = path.to_str().expect("utf-8 path");
        let child = command(dir.path(), &["--config", path], &[])
            .spawn()
            .expect("spawn the binary");
        let unbound: SocketAddr = ([127, 0, 0, 1], 0).into();
        let mut process = GatewayProcess {
            guard: Guard { child },
            dir,
            public: unbound,
            admin: unbound,
        };
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((public, admin)) = process.listening() {
                (process.public, process.admin) = (public, admin);
                return process;
            }
            if let Some(status) = process.guard.exited() {
                panic!("the gateway exited early ({status}): {}", process.output());
            }
            assert!(
                Instant::now() < until,
                "no `gateway listening` line: {}",
                process.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The public and admin addresses from the `gateway listening` log line.
    fn listening(&self) -> Option<(SocketAddr, SocketAddr)> {
        read(self.dir.path(), "stdout").lines().find_map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).ok()?;
            (event["message"] == "gateway listening").then_some(())?;
            let addr = |key: &str| event[key].as_str()?.parse().ok();
            Some((addr("public")?, addr("admin")?))
        })
    }

    /// `http://<public>` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.public)
    }

    /// `http://<admin>` + `path`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// Its stdout and stderr, for assertion messages.
    pub fn output(&self) -> String {
        let dir = self.dir.path();
        format!(
            "stdout: {}\nstderr: {}",
            read(dir, "stdout"),
            read(dir, "stderr")
        )
    }

    /// Sends SIGTERM; returns when it was sent.
    pub fn terminate(&self) -> Instant {
        let pid = self.guard.child.id().to_string();
        let sent = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        sent
    }

    /// Waits (until `by`) for the exit; returns its status and when it was seen.
    pub async fn exited_by(&mut self, by: Instant) -> (ExitStatus, Instant) {
        loop {
            if let Some(status) = self.guard.exited() {
                return (status, Instant::now());
            }
            assert!(
                Instant::now() < by,
                "still running past the deadline: {}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
