//! The `dask-dashboard-gateway` binary as a child process: started with a clean
//! environment and its output in files, killed (and reaped) when its guard drops.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

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
