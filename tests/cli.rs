//! The `dask-dashboard-gateway` binary as operators run it (SPEC §6): `--version`,
//! `--check-config` (exit 0, or 64 naming the bad key), `DDG_*` overrides, the
//! `token` subcommand, and serving until SIGTERM. Every child process is killed when
//! a test ends, and every wait has a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

mod support;

use support::config::{GatewayConfig, Jwt, Reana};
use support::http;
use support::jwt::SECRET;
use support::process::{command, read, GatewayProcess, Guard};

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

/// A valid configuration; the bad ones below differ from it in one place.
fn valid() -> GatewayConfig {
    GatewayConfig::new()
        .listen("127.0.0.1:18080")
        .admin_listen("127.0.0.1:19090")
        .route("wf-1", "http://127.0.0.1:8787", "alice")
}

/// `--check-config` of `config`, with `env`.
fn check(config: &GatewayConfig, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = config.write(dir.path(), "gateway.toml");
    run(&["--config", path.to_str().unwrap(), "--check-config"], env)
}

/// `out` is an exit with 64 whose stderr names every one of `keys`.
#[track_caller]
fn assert_rejected(what: &str, out: &Output, keys: &[&str]) {
    assert_eq!(out.code, Some(EXIT_CONFIG), "{what}: {}", out.describe());
    for key in keys {
        assert!(
            out.stderr.contains(key),
            "{what}: stderr does not name {key}: {}",
            out.describe()
        );
    }
}

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
    let out = check(&valid(), &[]);
    assert_eq!(
        out.code,
        Some(0),
        "the base configuration: {}",
        out.describe()
    );

    let dev_secret = "dask-dashboard-gateway-development-secret-do-not-deploy";
    let cases: Vec<(&str, GatewayConfig, Vec<&str>)> = vec![
        (
            "unknown key",
            valid().server("listen_address", "127.0.0.1:1"),
            vec!["listen_address"],
        ),
        (
            "bad duration",
            valid().server("shutdown_grace", "5 parsecs"),
            vec!["server.shutdown_grace"],
        ),
        (
            "a second directive in frame_ancestors",
            valid().server("frame_ancestors", "'self'; script-src *"),
            vec!["server.frame_ancestors"],
        ),
        (
            "a keep-alive timeout of zero",
            valid().server("http2_idle_timeout", "0s"),
            vec!["server.http2_idle_timeout"],
        ),
        (
            "no serving thread",
            valid().server("threads", 0),
            vec!["server.threads"],
        ),
        (
            "missing secret",
            valid().jwt(Jwt::algorithms(&["HS256"])),
            vec!["auth.jwt", "secret"],
        ),
        (
            "development secret on 0.0.0.0",
            valid().jwt(Jwt::secret(dev_secret)).listen("0.0.0.0:18080"),
            vec!["auth.jwt.secret"],
        ),
        ("no [auth.jwt]", valid().no_jwt(), vec!["auth.jwt"]),
        (
            "no call to reana-server allowed at once",
            valid().reana(Reana::new("http://reana-server:80").max_concurrent(0)),
            vec!["auth.reana.max_concurrent"],
        ),
    ];
    for (what, config, keys) in cases {
        assert_ne!(
            config.render(),
            valid().render(),
            "{what}: the case changes nothing"
        );
        assert_rejected(what, &check(&config, &[]), &keys);
    }
}

/// `--check-config` loads what the configuration names (the TLS pair, the JWT key
/// with its family, the log filter), as start-up would, and names the key at fault.
#[test]
fn check_config_loads_what_the_config_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "-----BEGIN CERTIFICATE-----\nnot base64\n").expect("write junk");
    /// What the case is, the configuration, the environment, the key the error
    /// must name.
    type Case<'a> = (&'a str, GatewayConfig, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "unusable TLS pair",
            valid().tls(&junk, &junk),
            vec![],
            "server.tls_cert",
        ),
        (
            "secret for an RSA algorithm",
            valid().jwt(Jwt::algorithms(&["RS256"]).set("secret", SECRET)),
            vec![],
            "auth.jwt",
        ),
        (
            "bad log level",
            valid().log("level", "warn,gateway=shouting"),
            vec![],
            "log.level",
        ),
        (
            "bad RUST_LOG",
            valid(),
            vec![("RUST_LOG", "info,gateway=shouting")],
            "RUST_LOG",
        ),
    ];
    for (what, config, env, key) in cases {
        assert_rejected(what, &check(&config, &env), &[key]);
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

#[tokio::test]
async fn serves_healthz_and_exits_0_after_sigterm_within_the_grace_period() {
    let config = valid()
        .listen("127.0.0.1:0")
        .admin_listen("127.0.0.1:0")
        .server("shutdown_grace", "2s");
    let mut gateway = GatewayProcess::start(&config).await;
    let health = http::get(&gateway.admin_url("/healthz"), &[]).await;
    assert_eq!(health.status, 200, "{}", health.describe());
    // The public listener is up too, and refuses an unauthenticated request.
    let public = http::get(&gateway.url("/dashboard/wf-1/status"), &[]).await;
    assert_eq!(public.status, 401, "{}", public.describe());

    let signalled = gateway.terminate();
    // Nothing is in flight: the 2 s grace period is an upper bound, plus start-up slack.
    let (status, _) = gateway.exited_by(signalled + Duration::from_secs(7)).await;
    assert_eq!(
        status.code(),
        Some(0),
        "exit after SIGTERM: {status}; {}",
        gateway.output()
    );
    let after = http::try_request("GET", &gateway.admin_url("/healthz"), &[], Vec::new()).await;
    assert!(
        after.is_err(),
        "the admin port still answers after exit: {after:?}"
    );
}
