//! Configuration: the TOML file plus `DDG_<SECTION>__<KEY>` overrides, parsed into
//! raw serde structs and validated into [`Config`] before anything is bound.

mod env;
mod frame_ancestors;
mod raw;
mod raw_auth;
mod raw_discovery;
pub mod units;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::Algorithm;

/// The configuration shipped in `config/gateway.toml`, used when no file is given and
/// the default path does not exist (a binary run outside the source tree).
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/gateway.toml");

/// The development HS256 secret in `config/gateway.toml`. The gateway refuses to use
/// it on a listener that is reachable from other machines.
pub const DEV_SECRET: &str = "dask-dashboard-gateway-development-secret-do-not-deploy";

/// Why a configuration was rejected. The message names the key and the reason.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    pub(crate) fn key(key: &str, why: impl fmt::Display) -> Self {
        ConfigError(format!("`{key}`: {why}"))
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server]`
    pub server: ServerConfig,
    /// `[upstream]`
    pub upstream: UpstreamConfig,
    /// `[auth]`
    pub auth: AuthConfig,
    /// `[discovery]`
    pub discovery: DiscoveryConfig,
    /// `[log]`
    pub log: LogConfig,
}

/// Listeners and connection handling.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Public listener.
    pub listen: SocketAddr,
    /// Admin listener (`/healthz`, `/readyz`, `/metrics`).
    pub admin_listen: SocketAddr,
    /// Also serve REANA's `/<workflow-id>/dashboard/…` form.
    pub reana_paths: bool,
    /// Peers (ingress controllers) whose `X-Forwarded-For` is believed when telling
    /// the client's address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Optional TLS on the public listener.
    pub tls: Option<TlsConfig>,
    /// Deadline for in-flight work after SIGTERM.
    pub shutdown_grace: Duration,
    /// After SIGTERM, how long the listener keeps accepting (with `/readyz` already
    /// 503) so that load balancers stop routing here first. Part of the grace.
    pub drain_delay: Duration,
    /// A client must send its first request head within this time of connecting.
    pub header_read_timeout: Duration,
    /// An HTTP/1.1 connection is closed when the next request head has not fully
    /// arrived this long after the previous response.
    pub http1_keep_alive_timeout: Duration,
    /// How often an HTTP/2 connection is pinged.
    pub http2_keep_alive_interval: Duration,
    /// An HTTP/2 connection whose ping is not answered within this is closed.
    pub http2_keep_alive_timeout: Duration,
    /// An HTTP/2 connection with no open stream for this long is closed (GOAWAY).
    pub http2_idle_timeout: Duration,
    /// Sources of the `frame-ancestors` directive sent with dashboard responses that
    /// carry no `Content-Security-Policy` of their own (default `'self'`).
    pub frame_ancestors: String,
    /// Plain-text HTTP/1.1 `GET` and `HEAD` requests without a body or upgrade are
    /// served by the gateway's own HTTP/1.1 loop; every other request (and every
    /// later request on its connection), TLS and HTTP/2 by hyper. `false`: hyper
    /// serves everything.
    pub native_http1: bool,
    /// Serving threads, each a single-threaded runtime with its own upstream pool,
    /// accepting from one shared listening socket (the first always, each further
    /// one while the thread before it is busy).
    pub threads: usize,
}

/// PEM files for the public listener.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
}

/// Limits and timeouts towards the schedulers.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// TCP connect timeout (502 when exceeded).
    pub connect_timeout: Duration,
    /// Time until the upstream's response head (504 when exceeded).
    pub response_timeout: Duration,
    /// A WebSocket with no message either way for this long is closed.
    pub ws_idle_timeout: Duration,
    /// A WebSocket peer that takes no data for this long is dropped.
    pub ws_write_timeout: Duration,
    /// Largest WebSocket message relayed (close 1009 beyond).
    pub max_ws_message: usize,
    /// Largest request head accepted (431 beyond).
    pub max_header_bytes: usize,
    /// Idle pooled connections are closed after this long.
    pub pool_idle_timeout: Duration,
    /// Idle pooled connections kept per scheduler.
    pub pool_max_idle_per_host: usize,
}

/// Authentication and authorization.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The gateway's own cookie.
    pub cookie_name: String,
    /// Whether the cookie carries `Secure`.
    pub cookie_secure: bool,
    /// Lifetime of the cookie (capped at a JWT's remaining lifetime).
    pub cookie_max_age: Duration,
    /// Extra origins allowed to open WebSockets (`scheme://host[:port]`).
    pub allowed_origins: Vec<String>,
    /// Local JWT verification.
    pub jwt: Option<JwtConfig>,
    /// Introspection against reana-server.
    pub reana: Option<ReanaConfig>,
    /// Limits on failed authentications per client address.
    pub rate_limit: RateLimitConfig,
}

impl AuthConfig {
    /// Public URL of the REANA web UI (`auth.reana.public_url`), for error pages.
    pub fn public_url(&self) -> Option<&str> {
        self.reana.as_ref().and_then(|r| r.public_url.as_deref())
    }
}

/// `[auth.reana]`: introspection of REANA access tokens and the web-UI session
/// against reana-server.
#[derive(Debug, Clone)]
pub struct ReanaConfig {
    /// Base URL of reana-server as the gateway reaches it (no trailing slash), e.g.
    /// `http://reana-server.reana.svc:80`.
    pub server_url: String,
    /// Public URL of the REANA web UI, linked from the 401 page.
    pub public_url: Option<String>,
    /// `Host` header sent to reana-server (REANA's `reana_hostname`), when set; also
    /// sends `X-Forwarded-Proto: https`.
    pub host_header: Option<String>,
    /// How long a successful answer is reused.
    pub cache_ttl: Duration,
    /// How long a refusal is reused.
    pub negative_ttl: Duration,
    /// Deadline for one call to reana-server.
    pub timeout: Duration,
    /// Most cached decisions kept (identities and sharing answers together).
    pub cache_max_entries: usize,
    /// Calls to reana-server in flight at most; further ones wait for a free slot
    /// within their `timeout`.
    pub max_concurrent: usize,
}

/// `[auth.rate_limit]`: failed authentications allowed per client address (token
/// bucket). Beyond it the client gets 429 before any verification is attempted.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// Failures allowed in a burst.
    pub burst: u32,
    /// Failures allowed per second once the burst is spent.
    pub per_second: f64,
    /// Client addresses tracked at most (oldest forgotten first).
    pub max_clients: usize,
}

/// `[auth.jwt]`: local JWT verification.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// Algorithms accepted; all of one key family.
    pub algorithms: Vec<Algorithm>,
    /// The verification key.
    pub key: JwtKey,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Accepted `aud` values, when set.
    pub audience: Option<Vec<String>>,
    /// Clock skew allowed on `exp`/`nbf`.
    pub leeway_seconds: u64,
    /// Claim holding the user id.
    pub user_claim: String,
}

/// Key material for [`JwtConfig`].
#[derive(Clone)]
pub enum JwtKey {
    /// Shared secret for HS256/384/512.
    Secret(Vec<u8>),
    /// PEM public key (RSA, EC or Ed25519) for the asymmetric algorithms.
    PublicKeyPem(Vec<u8>),
    /// A JWK Set fetched from a URL and refreshed in the background.
    Jwks(JwksConfig),
}

/// Where and how often to fetch a JWK Set.
#[derive(Debug, Clone)]
pub struct JwksConfig {
    /// `http(s)://` URL of the JWK Set.
    pub url: String,
    /// Regular refresh period.
    pub refresh_interval: Duration,
    /// An unknown `kid` triggers a refresh at most this often.
    pub min_refresh: Duration,
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtKey::Secret(_) => f.write_str("Secret(<redacted>)"),
            JwtKey::PublicKeyPem(pem) => write!(f, "PublicKeyPem({} bytes)", pem.len()),
            JwtKey::Jwks(jwks) => write!(f, "Jwks({})", jwks.url),
        }
    }
}

/// Where routes come from.
#[derive(Debug, Clone)]
pub enum DiscoveryConfig {
    /// Fixed routes from the file.
    Static(Vec<StaticRoute>),
    /// Scheduler Services watched in Kubernetes.
    Kubernetes(KubernetesConfig),
}

/// `[discovery] kind = "kubernetes"`.
#[derive(Debug, Clone)]
pub struct KubernetesConfig {
    /// Namespace to watch; `None` watches all namespaces.
    pub namespace: Option<String>,
    /// Label selector for scheduler Services.
    pub selector: String,
    /// Label holding the workflow id.
    pub workflow_label: String,
    /// Labels holding the owner, first present wins.
    pub owner_labels: Vec<String>,
    /// Name of the dashboard port (else port 8787).
    pub port_name: String,
    /// A kubeconfig file to use instead of the in-cluster service account or
    /// `KUBECONFIG`.
    pub kubeconfig: Option<PathBuf>,
}

/// One `[[discovery.static.routes]]` entry.
#[derive(Debug, Clone)]
pub struct StaticRoute {
    /// Workflow id.
    pub workflow: String,
    /// `host:port` of the scheduler dashboard.
    pub upstream: String,
    /// Owner's user id.
    pub owner: String,
}

/// Log output.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// Filter directive, e.g. `info` or `dask_dashboard_gateway=debug` (`RUST_LOG` wins).
    pub level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// Loads `path`, applies `DDG_*` overrides from the process environment and
    /// validates. With `explicit == false` a missing file falls back to
    /// [`EMBEDDED_DEFAULT`].
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        let (text, base) = match std::fs::read_to_string(path) {
            Ok(text) => (text, path.parent().map(Path::to_path_buf)),
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
                (EMBEDDED_DEFAULT.to_string(), None)
            }
            Err(e) => return Err(ConfigError(format!("cannot read {}: {e}", path.display()))),
        };
        Self::parse(&text, std::env::vars(), base.as_deref())
    }

    /// Parses TOML text with the given environment overrides; relative file paths
    /// are resolved against `base` (the config file's directory) when given.
    pub fn parse(
        text: &str,
        vars: impl IntoIterator<Item = (String, String)>,
        base: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let vars = env::prefixed(vars);
        if vars.is_empty() {
            // No override: the text is deserialized as it is, without a table in
            // between (with 10,000 static routes, that table is most of the start-up).
            // A text it refuses is read again below, which words the error.
            if let Some(raw) = raw::RawConfig::deserialize_text(text) {
                return raw.validate(base);
            }
        }
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError(format!("invalid TOML: {e}")))?;
        env::apply_overrides(&mut table, vars)?;
        let raw: raw::RawConfig = raw::RawConfig::deserialize_table(table)?;
        raw.validate(base)
    }

    /// Parses TOML text alone (no environment, paths relative to the working
    /// directory). Convenient for tests.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Self::parse(text, std::iter::empty(), None)
    }
}
