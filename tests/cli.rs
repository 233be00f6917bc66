//! The `dask-dashboard-gateway` binary as operators run it (SPEC §6): `--version`,
//! `--check-config` (exit 0, or 64 naming the bad key), `DDG_*` overrides, the
//! `token` subcommand, and serving until SIGTERM. Every child process is killed when
//! a test ends, and every wait has a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

#[path = "support/process.rs"]
mod process;

use process::{command, read, Guard};

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/gateway.toml");
const EXIT_CONFIG: i32 = 64;
/// How long a one-shot invocation may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// What a finished invocation printed.
struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Output {
    fn describe(&self) -> String {
        format!(
            "exit {:?}\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the binary to completion (killed after [`RUN_TIMEOUT`]).
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let child = command(dir.path(), args, env)
        .spawn()
        .expect("spawn the binary");
    let mut guard = Guard { child };
    let status = guard
        .wait_until(Instant::now() + RUN_TIMEOUT)
        .unwrap_or_else(|| panic!("`{}` did not exit within {RUN_TIMEOUT:?}", args.join(" ")));
    Output {
        code: status.code(),
        stdout: read(dir.path(), "stdout"),
        stderr: read(dir.path(), "stderr"),
    }
}

fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

/// A valid configuration; the bad ones below differ from it in one place.
const VALID: &str = r#"
[server]
listen = "127.0.0.1:18080"
admin_listen = "127.0.0.1:19090"

[auth]
cookie_secure = false

[auth.jwt]
algorithms = ["HS256"]
secret = "cli-test-secret-0123456789abcdef-0123456789"

[discovery]
kind = "static"

[[discovery.static.routes]]
workflow = "wf-1"
upstream = "http://127.0.0.1:8787"
owner = "alice"
"#;

#[test]
fn version_prints_the_crate_version() {
    let out = run(&["--version"], &[]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(
        out.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{}",
        out.describe()
    );
}

#[test]
fn check_config_accepts_the_shipped_file() {
    let out = run(&["--config", SHIPPED, "--check-config"], &[]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
}

#[test]
fn check_config_rejects_bad_files_with_64_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let valid = write_config(dir.path(), "valid.toml", VALID);
    let out = run(
        &["--config", valid.to_str().unwrap(), "--check-config"],
        &[],
    );
    assert_eq!(
        out.code,
        Some(0),
        "the base configuration: {}",
        out.describe()
    );

    let dev_secret = "dask-dashboard-gateway-development-secret-do-not-deploy";
    let test_secret = "cli-test-secret-0123456789abcdef-0123456789";
    let jwt_table = format!("[auth.jwt]\nalgorithms = [\"HS256\"]\nsecret = \"{test_secret}\"\n");
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "unknown key",
            VALID.replace("[server]\n", "[server]\nlisten_address = \"127.0.0.1:1\"\n"),
            vec!["listen_address"],
        ),
        (
            "bad duration",
            VALID.replace("[server]\n", "[server]\nshutdown_grace = \"5 parsecs\"\n"),
            vec!["server.shutdown_grace"],
        ),
        (
            "a second directive in frame_ancestors",
            VALID.replace(
                "[server]\n",
                "[server]\nframe_ancestors = \"'self'; script-src *\"\n",
            ),
            vec!["server.frame_ancestors"],
        ),
        (
            "a keep-alive timeout of zero",
            VALID.replace("[server]\n", "[server]\nhttp2_idle_timeout = \"0s\"\n"),
            vec!["server.http2_idle_timeout"],
        ),
        (
            "no serving thread",
            VALID.replace("[server]\n", "[server]\nthreads = 0\n"),
            vec!["server.threads"],
        ),
        (
            "missing secret",
            VALID.replace(&format!("secret = \"{test_secret}\"\n"), ""),
            vec!["auth.jwt", "secret"],
        ),
        (
            "development secret on 0.0.0.0",
            VALID
                .replace(test_secret, dev_secret)
                .replace("listen = \"127.0.0.1:18080\"", "listen = \"0.0.0.0:18080\""),
            vec!["auth.jwt.secret"],
        ),
        (
            "no [auth.jwt]",
            VALID.replace(&jwt_table, ""),
            vec!["auth.jwt"],
        ),
        (
            "no call to reana-server allowed at once",
            format!(
                "{VALID}\n[auth.reana]\nserver_url = \"http://reana-server:80\"\nmax_concurrent = 0\n"
            ),
            vec!["auth.reana.max_concurrent"],
        ),
    ];
    for (what, text, keys) in cases {
        assert_ne!(text, VALID, "{what}: the case changes nothing");
        let path = write_config(dir.path(), "bad.toml", &text);
        let out = run(&["--config", path.to_str().unwrap(), "--check-config"], &[]);
        assert_eq!(out.code, Some(EXIT_CONFIG), "{what}: {}", out.describe());
        for key in keys {
            assert!(
                out.stderr.contains(key),
                "{what}: stderr does not name {key}: {}",
                out.describe()
            );
        }
    }
}

/// `--check-config` loads what the configuration names (the TLS pair, the JWT key
/// with its family, the log filter), as start-up would, and names the key at fault.
#[test]
fn check_config_loads_what_the_config_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "-----BEGIN CERTIFICATE-----\nnot base64\n").expect("write junk");
    let junk = junk.to_str().unwrap().to_owned();
    let tls = format!("[server]\ntls_cert = \"{junk}\"\ntls_key = \"{junk}\"\n");
    /// What the case is, the file, the environment, the key the error must name.
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "unusable TLS pair",
            VALID.replace("[server]\n", &tls),
            vec![],
            "server.tls_cert",
        ),
        (
            "secret for an RSA algorithm",
            VALID.replace("algorithms = [\"HS256\"]", "algorithms = [\"RS256\"]"),
            vec![],
            "auth.jwt",
        ),
        (
            "bad log level",
            format!("{VALID}\n[log]\nlevel = \"warn,gateway=shouting\"\n"),
            vec![],
            "log.level",
        ),
        (
            "bad RUST_LOG",
            VALID.to_owned(),
            vec![("RUST_LOG", "info,gateway=shouting")],
            "RUST_LOG",
        ),
    ];
    for (what, text, env, key) in cases {
        let path = write_config(dir.path(), "bad.toml", &text);
        let out = run(
            &["--config", path.to_str().unwrap(), "--check-config"],
            &env,
        );
        assert_eq!(out.code, Some(EXIT_CONFIG), "{what}: {}", out.describe());
        assert!(
            out.stderr.contains(key),
            "{what}: stderr does not name {key}: {}",
            out.describe()
        );
    }
}

#[test]
fn environment_override_with_garbage_listen_exits_64() {
    let env = [("DDG_SERVER__LISTEN", "garbage")];
    let out = run(&["--config", SHIPPED, "--check-config"], &env);
    assert_eq!(out.code, Some(EXIT_CONFIG), "{}", out.describe());
    assert!(out.stderr.contains("server.listen"), "{}", out.describe());
    // Starting for real fails the same way, before binding anything.
    let out = run(&["--config", SHIPPED], &env);
    assert_eq!(out.code, Some(EXIT_CONFIG), "{}", out.describe());
    assert!(out.stderr.contains("server.listen"), "{}", out.describe());
}

#[test]
fn token_prints_a_dashboard_url_with_a_valid_access_token() {
    let out = run(&["--config", SHIPPED, "token"], &[]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let url = out
        .stdout
        .lines()
        .find(|l| l.contains("access_token="))
        .unwrap_or_else(|| panic!("no URL with access_token=: {}", out.describe()));
    assert!(url.starts_with("http"), "{url}");
    assert!(
        url.contains("/dashboard/00000000-0000-4000-8000-000000000001/"),
        "{url}"
    );
    let token = url.split("access_token=").nth(1).unwrap_or_default();
    let token = token.split('&').next().unwrap_or_default();
    // The token verifies with the shipped development key and claims.
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_issuer(&["dask-dashboard-gateway-dev"]);
    validation.set_audience(&["dask-dashboard"]);
    let key = jsonwebtoken::DecodingKey::from_secret(
        b"dask-dashboard-gateway-development-secret-do-not-deploy",
    );
    let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
        .unwrap_or_else(|e| panic!("the printed token does not verify: {e}"));
    assert_eq!(data.claims["sub"], "dev-user");
}

/// Two distinct loopback ports that were free a moment ago.
fn free_ports() -> (SocketAddr, SocketAddr) {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind");
    (a.local_addr().expect("addr"), b.local_addr().expect("addr"))
}

/// One HTTP/1.1 GET over a fresh connection; `None` when the server is not there
/// (yet). Every socket operation has a timeout.
fn try_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

#[test]
fn serves_healthz_and_exits_0_after_sigterm_within_the_grace_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (public, admin) = free_ports();
    let text = VALID
        .replace("127.0.0.1:18080", &public.to_string())
        .replace("127.0.0.1:19090", &admin.to_string())
        .replace("[server]\n", "[server]\nshutdown_grace = \"2s\"\n");
    let config = write_config(dir.path(), "gateway.toml", &text);
    let child = command(dir.path(), &["--config", config.to_str().unwrap()], &[])
        .spawn()
        .expect("spawn the binary");
    let mut guard = Guard { child };

    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        if let Some(status) = guard.child.try_wait().expect("try_wait") {
            panic!(
                "the gateway exited early ({status}): {}",
                read(dir.path(), "stderr")
            );
        }
        if let Some(response) = try_get(admin, "/healthz") {
            break response;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz never answered: {}",
            read(dir.path(), "stderr")
        );
        sleep(Duration::from_millis(50));
    };
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    // The public listener is up too, and refuses an unauthenticated request.
    let public_answer = try_get(public, "/dashboard/wf-1/status").expect("public listener");
    assert!(public_answer.starts_with("HTTP/1.1 401"), "{public_answer}");

    let pid = guard.child.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -TERM {pid} failed");
    let signalled = Instant::now();
    // Nothing is in flight: the 2 s grace period is an upper bound, plus start-up slack.
    let status = guard
        .wait_until(signalled + Duration::from_secs(7))
        .unwrap_or_else(|| panic!("still running 7 s after SIGTERM"));
    assert_eq!(
        status.code(),
        Some(0),
        "exit after SIGTERM: {status}; stderr: {}",
        read(dir.path(), "stderr")
    );
    assert!(
        try_get(admin, "/healthz").is_none(),
        "the admin port still answers after exit"
    );
}
