//! `[auth]` as written (`[auth.jwt]`, `[auth.reana]`, `[auth.rate_limit]`) and its
//! validation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::raw::{positive, resolve};
use super::units;
use super::{
    AuthConfig, ConfigError, JwksConfig, JwtConfig, JwtKey, RateLimitConfig, ReanaConfig,
    ServerConfig, DEV_SECRET,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAuth {
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
    #[serde(default = "default_max_concurrent")]
    max_concurrent: usize,
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

fn default_max_concurrent() -> usize {
    32
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

impl RawAuth {
    pub(super) fn validate(
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
        if self.max_concurrent == 0 {
            return Err(ConfigError::key(
                "auth.reana.max_concurrent",
                "must be at least 1",
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
            max_concurrent: self.max_concurrent,
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
