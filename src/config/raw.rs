//! The configuration file as written (serde, defaults, unknown keys rejected) and its
//! validation into [`super::Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::units;
use super::{
    AuthConfig, Config, ConfigError, DiscoveryConfig, JwksConfig, JwtConfig, JwtKey,
    KubernetesConfig, LogConfig, LogFormat, RateLimitConfig, ReanaConfig, ServerConfig,
    StaticRoute, TlsConfig, UpstreamConfig, DEV_SECRET,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    upstream: RawUpstream,
    #[serde(default)]
    auth: RawAuth,
    discovery: RawDiscovery,
    #[serde(default)]
    log: RawLog,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    listen: String,
    admin_listen: String,
    reana_paths: bool,
    trusted_proxies: Vec<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(deserialize_with = "units::duration")]
    shutdown_grace: Duration,
    #[serde(deserialize_with = "units::duration")]
    drain_delay: Duration,
    #[serde(deserialize_with = "units::duration")]
    header_read_timeout: Duration,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "127.0.0.1:8080".into(),
            admin_listen: "127.0.0.1:9090".into(),
            reana_paths: true,
            trusted_proxies: Vec::new(),
            tls_cert: None,
            tls_key: None,
            shutdown_grace: Duration::from_secs(30),
            drain_delay: Duration::ZERO,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawUpstream {
    #[serde(deserialize_with = "units::duration")]
    connect_timeout: Duration,
    #[serde(deserialize_with = "units::duration")]
    response_timeout: Duration,
    #[serde(deserialize_with = "units::duration")]
    ws_idle_timeout: Duration,
    #[serde(deserialize_with = "units::size")]
    max_ws_message: u64,
    #[serde(deserialize_with = "units::size")]
    max_header_bytes: u64,
    #[serde(deserialize_with = "units::duration")]
    pool_idle_timeout: Duration,
    pool_max_idle_per_host: usize,
}

impl Default for RawUpstream {
    fn default() -> Self {
        RawUpstream {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            ws_idle_timeout: Duration::from_secs(600),
            max_ws_message: 32 << 20,
            max_header_bytes: 64 << 10,
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 32,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAuth {
    cookie_name: String,
    cookie_secure: bool,
    #[serde(deserialize_with = "units::duration")]
    cookie_max_age: Duration,
    allowed_origins: Vec<String>,
    jwt: Option<RawJwt>,
    reana: Option<RawReana>,
    rate_limit: RawRateLimit,
}

impl Default for RawAuth {
    fn default() -> Self {
        RawAuth {
            cookie_name: "dask_dashboard_token".into(),
            cookie_secure: true,
            cookie_max_age: Duration::from_secs(8 * 3600),
            allowed_origins: Vec::new(),
            jwt: None,
            reana: None,
            rate_limit: RawRateLimit::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReana {
    server_url: String,
    public_url: Option<String>,
    host_header: Option<String>,
    #[serde(default = "default_cache_ttl", deserialize_with = "units::duration")]
    cache_ttl: Duration,
    #[serde(default = "default_negative_ttl", deserialize_with = "units::duration")]
    negative_ttl: Duration,
    #[serde(
        default = "default_reana_timeout",
        deserialize_with = "units::duration"
    )]
    timeout: Duration,
    #[serde(default = "default_cache_max_entries")]
    cache_max_entries: usize,
}

fn default_cache_ttl() -> Duration {
    Duration::from_secs(30)
}

fn default_negative_ttl() -> Duration {
    Duration::from_secs(5)
}

fn default_reana_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_cache_max_entries() -> usize {
    100_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRateLimit {
    burst: u32,
    per_second: f64,
    max_clients: usize,
}

impl Default for RawRateLimit {
    fn default() -> Self {
        RawRateLimit {
            burst: 20,
            per_second: 1.0,
            max_clients: 100_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwt {
    algorithms: Vec<String>,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    public_key_file: Option<PathBuf>,
    jwks_url: Option<String>,
    #[serde(default = "default_jwks_refresh", deserialize_with = "units::duration")]
    jwks_refresh_interval: Duration,
    #[serde(
        default = "default_jwks_min_refresh",
        deserialize_with = "units::duration"
    )]
    jwks_min_refresh: Duration,
    issuer: Option<String>,
    audience: Option<Audience>,
    #[serde(default = "default_leeway")]
    leeway_seconds: u64,
    #[serde(default = "default_user_claim")]
    user_claim: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

fn default_jwks_refresh() -> Duration {
    Duration::from_secs(300)
}

fn default_jwks_min_refresh() -> Duration {
    Duration::from_secs(30)
}

fn default_leeway() -> u64 {
    30
}

fn default_user_claim() -> String {
    "sub".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiscovery {
    kind: DiscoveryKind,
    #[serde(default, rename = "static")]
    static_: Option<RawStatic>,
    namespace: Option<String>,
    #[serde(default = "default_selector")]
    selector: String,
    #[serde(default = "default_workflow_label")]
    workflow_label: String,
    #[serde(default = "default_owner_labels")]
    owner_labels: Vec<String>,
    #[serde(default = "default_port_name")]
    port_name: String,
    kubeconfig: Option<PathBuf>,
}

fn default_selector() -> String {
    "dask.org/component=scheduler".into()
}

fn default_workflow_label() -> String {
    "reana-run-dask-workflow-uuid".into()
}

fn default_owner_labels() -> Vec<String> {
    vec!["user-uuid".into(), "reana-run-dask-owner-uuid".into()]
}

fn default_port_name() -> String {
    "http-dashboard".into()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum DiscoveryKind {
    Static,
    Kubernetes,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatic {
    #[serde(default)]
    routes: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    workflow: String,
    upstream: String,
    owner: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLog {
    format: String,
    level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

impl RawConfig {
    pub(super) fn deserialize_table(table: toml::Table) -> Result<Self, ConfigError> {
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::key(&path, e.into_inner())
        })
    }

    pub(super) fn validate(self, base: Option<&Path>) -> Result<Config, ConfigError> {
        let server = self.server.validate(base)?;
        let auth = self.auth.validate(base, &server)?;
        Ok(Config {
            upstream: self.upstream.validate()?,
            discovery: self.discovery.validate(base)?,
            log: self.log.validate()?,
            server,
            auth,
        })
    }
}

fn resolve(base: Option<&Path>, path: &Path) -> PathBuf {
    match base {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

fn socket_addr(key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse()
        .map_err(|_| ConfigError::key(key, format!("`{text}` is not an address like 0.0.0.0:8080")))
}

/// `10.0.0.0/8`, `fd00::/8` or a single address.
fn cidr(text: &str) -> Option<(std::net::IpAddr, u8)> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (
            a.parse::<std::net::IpAddr>().ok()?,
            Some(l.parse::<u8>().ok()?),
        ),
        None => (text.parse().ok()?, None),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((addr, len))
}

fn positive(key: &str, d: Duration) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        return Err(ConfigError::key(key, "must be greater than zero"));
    }
    Ok(d)
}

impl RawServer {
    fn validate(self, base: Option<&Path>) -> Result<ServerConfig, ConfigError> {
        let listen = socket_addr("server.listen", &self.listen)?;
        let admin_listen = socket_addr("server.admin_listen", &self.admin_listen)?;
        if listen == admin_listen && listen.port() != 0 {
            return Err(ConfigError::key(
                "server.admin_listen",
                "must differ from server.listen",
            ));
        }
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsConfig {
                cert: resolve(base, &cert),
                key: resolve(base, &key),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::key(
                    "server.tls_key",
                    "missing (tls_cert is set)",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::key(
                    "server.tls_cert",
                    "missing (tls_key is set)",
                ))
            }
        };
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|t| {
                cidr(t).ok_or_else(|| {
                    ConfigError::key(
                        "server.trusted_proxies",
                        format!("`{t}` is not an address or CIDR like 10.0.0.0/8"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ServerConfig {
            listen,
            admin_listen,
            reana_paths: self.reana_paths,
            trusted_proxies,
            tls,
            shutdown_grace: self.shutdown_grace,
            drain_delay: if self.drain_delay < self.shutdown_grace || self.drain_delay.is_zero() {
                self.drain_delay
            } else {
                return Err(ConfigError::key(
                    "server.drain_delay",
                    "must be shorter than server.shutdown_grace",
                ));
            },
            header_read_timeout: positive("server.header_read_timeout", self.header_read_timeout)?,
        })
    }
}

impl RawUpstream {
    fn validate(self) -> Result<UpstreamConfig, ConfigError> {
        let max_ws_message = usize::try_from(self.max_ws_message)
            .ok()
            .filter(|n| *n >= 1024)
            .ok_or_else(|| ConfigError::key("upstream.max_ws_message", "must be at least 1KiB"))?;
        let max_header_bytes = usize::try_from(self.max_header_bytes)
            .ok()
            .filter(|n| (4096..=16 << 20).contains(n))
            .ok_or_else(|| {
                ConfigError::key(
                    "upstream.max_header_bytes",
                    "must be between 4KiB and 16MiB",
                )
            })?;
        Ok(UpstreamConfig {
            connect_timeout: positive("upstream.connect_timeout", self.connect_timeout)?,
            response_timeout: positive("upstream.response_timeout", self.response_timeout)?,
            ws_idle_timeout: positive("upstream.ws_idle_timeout", self.ws_idle_timeout)?,
            max_ws_message,
            max_header_bytes,
            pool_idle_timeout: positive("upstream.pool_idle_timeout", self.pool_idle_timeout)?,
            pool_max_idle_per_host: self.pool_max_idle_per_host,
        })
    }
}

impl RawAuth {
    fn validate(
        self,
        base: Option<&Path>,
        server: &ServerConfig,
    ) -> Result<AuthConfig, ConfigError> {
        let valid_cookie_name = !self.cookie_name.is_empty()
            && self
                .cookie_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_cookie_name {
            return Err(ConfigError::key(
                "auth.cookie_name",
                "is not a valid cookie name",
            ));
        }
        if self.cookie_name == "session" {
            return Err(ConfigError::key(
                "auth.cookie_name",
                "`session` is REANA's own cookie; choose another name",
            ));
        }
        for origin in &self.allowed_origins {
            let ok = origin.starts_with("http://") || origin.starts_with("https://");
            if !ok || origin.ends_with('/') {
                return Err(ConfigError::key(
                    "auth.allowed_origins",
                    format!("`{origin}` is not an origin like https://reana.example.org"),
                ));
            }
        }
        let jwt = self.jwt.map(|j| j.validate(base, server)).transpose()?;
        let reana = self.reana.map(RawReana::validate).transpose()?;
        if jwt.is_none() && reana.is_none() {
            return Err(ConfigError::key(
                "auth",
                "no verifier configured: set [auth.jwt] and/or [auth.reana] (the gateway never serves dashboards unauthenticated)",
            ));
        }
        Ok(AuthConfig {
            cookie_name: self.cookie_name,
            cookie_secure: self.cookie_secure,
            cookie_max_age: positive("auth.cookie_max_age", self.cookie_max_age)?,
            allowed_origins: self.allowed_origins,
            jwt,
            reana,
            rate_limit: self.rate_limit.validate()?,
        })
    }
}

fn http_url(key: &str, url: &str) -> Result<String, ConfigError> {
    let parsed: http::Uri = url
        .parse()
        .map_err(|_| ConfigError::key(key, format!("`{url}` is not a URL")))?;
    let scheme_ok = matches!(parsed.scheme_str(), Some("http") | Some("https"));
    if !scheme_ok || parsed.authority().is_none() {
        return Err(ConfigError::key(
            key,
            format!("`{url}` is not an http(s):// URL"),
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

impl RawReana {
    fn validate(self) -> Result<ReanaConfig, ConfigError> {
        let server_url = http_url("auth.reana.server_url", &self.server_url)?;
        let public_url = self
            .public_url
            .map(|u| http_url("auth.reana.public_url", &u))
            .transpose()?;
        if let Some(host) = &self.host_header {
            if host.parse::<http::uri::Authority>().is_err() {
                return Err(ConfigError::key(
                    "auth.reana.host_header",
                    format!("`{host}` is not a host name"),
                ));
            }
        }
        if self.cache_max_entries < 16 {
            return Err(ConfigError::key(
                "auth.reana.cache_max_entries",
                "must be at least 16",
            ));
        }
        Ok(ReanaConfig {
            server_url,
            public_url,
            host_header: self.host_header,
            cache_ttl: positive("auth.reana.cache_ttl", self.cache_ttl)?,
            negative_ttl: positive("auth.reana.negative_ttl", self.negative_ttl)?,
            timeout: positive("auth.reana.timeout", self.timeout)?,
            cache_max_entries: self.cache_max_entries,
        })
    }
}

impl RawRateLimit {
    fn validate(self) -> Result<RateLimitConfig, ConfigError> {
        if self.burst == 0 {
            return Err(ConfigError::key(
                "auth.rate_limit.burst",
                "must be at least 1",
            ));
        }
        if !(self.per_second.is_finite() && self.per_second > 0.0) {
            return Err(ConfigError::key(
                "auth.rate_limit.per_second",
                "must be a positive number",
            ));
        }
        if self.max_clients < 16 {
            return Err(ConfigError::key(
                "auth.rate_limit.max_clients",
                "must be at least 16",
            ));
        }
        Ok(RateLimitConfig {
            burst: self.burst,
            per_second: self.per_second,
            max_clients: self.max_clients,
        })
    }
}

impl RawJwt {
    fn validate(
        self,
        base: Option<&Path>,
        server: &ServerConfig,
    ) -> Result<JwtConfig, ConfigError> {
        if self.algorithms.is_empty() {
            return Err(ConfigError::key(
                "auth.jwt.algorithms",
                "list at least one algorithm",
            ));
        }
        let algorithms = self
            .algorithms
            .iter()
            .map(|name| {
                name.parse::<Algorithm>().map_err(|_| {
                    ConfigError::key(
                        "auth.jwt.algorithms",
                        format!("`{name}` is not a JWT algorithm"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let key = self.key(base, server)?;
        let audience = self.audience.map(|a| match a {
            Audience::One(s) => vec![s],
            Audience::Many(v) => v,
        });
        if audience.as_ref().is_some_and(Vec::is_empty) {
            return Err(ConfigError::key(
                "auth.jwt.audience",
                "must not be an empty list",
            ));
        }
        if self.user_claim.is_empty() {
            return Err(ConfigError::key("auth.jwt.user_claim", "must not be empty"));
        }
        Ok(JwtConfig {
            algorithms,
            key,
            issuer: self.issuer,
            audience,
            leeway_seconds: self.leeway_seconds,
            user_claim: self.user_claim,
        })
    }

    fn key(&self, base: Option<&Path>, server: &ServerConfig) -> Result<JwtKey, ConfigError> {
        let read = |key: &str, path: &Path| {
            let path = resolve(base, path);
            std::fs::read(&path)
                .map_err(|e| ConfigError::key(key, format!("cannot read {}: {e}", path.display())))
        };
        let key = match (
            &self.secret,
            &self.secret_file,
            &self.public_key_file,
            &self.jwks_url,
        ) {
            (Some(s), None, None, None) => JwtKey::Secret(s.clone().into_bytes()),
            (None, Some(f), None, None) => {
                let mut bytes = read("auth.jwt.secret_file", f)?;
                while bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
                    bytes.pop();
                }
                JwtKey::Secret(bytes)
            }
            (None, None, Some(f), None) => {
                JwtKey::PublicKeyPem(read("auth.jwt.public_key_file", f)?)
            }
            (None, None, None, Some(url)) => JwtKey::Jwks(JwksConfig {
                url: http_url("auth.jwt.jwks_url", url)?,
                refresh_interval: positive(
                    "auth.jwt.jwks_refresh_interval",
                    self.jwks_refresh_interval,
                )?,
                min_refresh: self.jwks_min_refresh,
            }),
            (None, None, None, None) => {
                return Err(ConfigError::key(
                    "auth.jwt",
                    "set one of secret, secret_file, public_key_file or jwks_url",
                ))
            }
            _ => {
                return Err(ConfigError::key(
                    "auth.jwt",
                    "set only one of secret, secret_file, public_key_file or jwks_url",
                ))
            }
        };
        if let JwtKey::Secret(s) = &key {
            if s.len() < 32 {
                return Err(ConfigError::key(
                    "auth.jwt.secret",
                    "must be at least 32 bytes",
                ));
            }
            let public = !server.listen.ip().is_loopback();
            if s.as_slice() == DEV_SECRET.as_bytes() && public {
                return Err(ConfigError::key(
                    "auth.jwt.secret",
                    "the development secret from config/gateway.toml may only be used on a loopback listener; set DDG_AUTH__JWT__SECRET",
                ));
            }
        }
        Ok(key)
    }
}

impl RawDiscovery {
    fn validate(self, base: Option<&Path>) -> Result<DiscoveryConfig, ConfigError> {
        match self.kind {
            DiscoveryKind::Static => {
                if self.kubeconfig.is_some() || self.namespace.is_some() {
                    return Err(ConfigError::key(
                        "discovery",
                        "namespace and kubeconfig are only used with kind = \"kubernetes\"",
                    ));
                }
                let routes = self.static_.map(|s| s.routes).unwrap_or_default();
                let mut seen = std::collections::HashSet::new();
                let routes = routes
                    .into_iter()
                    .map(|r| {
                        if !crate::proxy::path::valid_workflow_id(&r.workflow) {
                            return Err(ConfigError::key(
                                "discovery.static.routes.workflow",
                                format!("`{}` is not a valid workflow id", r.workflow),
                            ));
                        }
                        if !seen.insert(r.workflow.clone()) {
                            return Err(ConfigError::key(
                                "discovery.static.routes.workflow",
                                format!("`{}` is listed twice", r.workflow),
                            ));
                        }
                        if r.owner.is_empty() {
                            return Err(ConfigError::key(
                                "discovery.static.routes.owner",
                                "must not be empty",
                            ));
                        }
                        let upstream = upstream_authority(&r.upstream)?;
                        Ok(StaticRoute {
                            workflow: r.workflow,
                            upstream,
                            owner: r.owner,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(DiscoveryConfig::Static(routes))
            }
            DiscoveryKind::Kubernetes => {
                if self.static_.is_some() {
                    return Err(ConfigError::key(
                        "discovery.static",
                        "only used with kind = \"static\"",
                    ));
                }
                let nonempty = |key: &str, v: String| {
                    if v.trim().is_empty() {
                        Err(ConfigError::key(key, "must not be empty"))
                    } else {
                        Ok(v)
                    }
                };
                if self.owner_labels.is_empty() {
                    return Err(ConfigError::key(
                        "discovery.owner_labels",
                        "list at least one label",
                    ));
                }
                Ok(DiscoveryConfig::Kubernetes(KubernetesConfig {
                    namespace: self.namespace.filter(|n| !n.is_empty()),
                    selector: self.selector,
                    workflow_label: nonempty("discovery.workflow_label", self.workflow_label)?,
                    owner_labels: self.owner_labels,
                    port_name: nonempty("discovery.port_name", self.port_name)?,
                    kubeconfig: self.kubeconfig.map(|k| resolve(base, &k)),
                }))
            }
        }
    }
}

/// `http://host:port` → `host:port`.
fn upstream_authority(url: &str) -> Result<String, ConfigError> {
    let err = || {
        ConfigError::key(
            "discovery.static.routes.upstream",
            format!("`{url}` is not a URL like http://127.0.0.1:8787"),
        )
    };
    let rest = url.strip_prefix("http://").ok_or_else(err)?;
    let authority = rest.trim_end_matches('/');
    let parsed: http::uri::Authority = authority.parse().map_err(|_| err())?;
    if authority.contains('/') || authority.contains('@') || parsed.port_u16().is_none() {
        return Err(err());
    }
    Ok(authority.to_string())
}

impl RawLog {
    fn validate(self) -> Result<LogConfig, ConfigError> {
        let format = match self.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::key(
                    "log.format",
                    format!("`{other}` is not one of text, json"),
                ))
            }
        };
        Ok(LogConfig {
            format,
            level: self.level,
        })
    }
}
