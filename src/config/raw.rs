//! The configuration file as written (serde, defaults, unknown keys rejected) and its
//! validation into [`super::Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};
use serde::Deserialize;

use super::raw_auth::RawAuth;
use super::raw_discovery::RawDiscovery;
use super::units;
use super::{Config, ConfigError, LogConfig, LogFormat, ServerConfig, TlsConfig, UpstreamConfig};

/// Most serving threads `server.threads` accepts.
const MAX_THREADS: usize = 256;

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
    #[serde(deserialize_with = "units::duration")]
    http1_keep_alive_timeout: Duration,
    #[serde(deserialize_with = "units::duration")]
    http2_keep_alive_interval: Duration,
    #[serde(deserialize_with = "units::duration")]
    http2_keep_alive_timeout: Duration,
    #[serde(deserialize_with = "units::duration")]
    http2_idle_timeout: Duration,
    frame_ancestors: String,
    threads: Option<usize>,
    native_http1: bool,
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
            // Longer than the ingress proxies keep idle connections to a backend
            // (nginx 60 s, Traefik 90 s): they close first, and never send a
            // request on a connection this side is closing.
            http1_keep_alive_timeout: Duration::from_secs(120),
            http2_keep_alive_interval: Duration::from_secs(20),
            http2_keep_alive_timeout: Duration::from_secs(20),
            http2_idle_timeout: Duration::from_secs(300),
            frame_ancestors: "'self'".into(),
            threads: None,
            native_http1: true,
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
    #[serde(deserialize_with = "units::duration")]
    ws_write_timeout: Duration,
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
            ws_write_timeout: Duration::from_secs(30),
            max_ws_message: 32 << 20,
            max_header_bytes: 64 << 10,
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 64,
        }
    }
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
    /// The configuration straight from its text; `None` when the text is not one
    /// (`deserialize_table` says why).
    pub(super) fn deserialize_text(text: &str) -> Option<Self> {
        let document = toml::Deserializer::parse(text).ok()?;
        Self::deserialize(document).ok()
    }

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

pub(super) fn resolve(base: Option<&Path>, path: &Path) -> PathBuf {
    match base {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

fn socket_addr(key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse()
        .map_err(|_| ConfigError::key(key, format!("`{text}` is not an address like 0.0.0.0:8080")))
}

/// `10.0.0.0/8`, `fd00::/8` or a single address. An IPv4-mapped IPv6 network
/// (`::ffff:10.0.0.0/104`) is kept as the IPv4 network it maps: peers are compared
/// in their IPv4 form.
fn cidr(text: &str) -> Option<IpNet> {
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(text.parse::<std::net::IpAddr>().ok()?),
    };
    Some(match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        net => net,
    })
}

pub(super) fn positive(key: &str, d: Duration) -> Result<Duration, ConfigError> {
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
            http1_keep_alive_timeout: positive(
                "server.http1_keep_alive_timeout",
                self.http1_keep_alive_timeout,
            )?,
            http2_keep_alive_interval: positive(
                "server.http2_keep_alive_interval",
                self.http2_keep_alive_interval,
            )?,
            http2_keep_alive_timeout: positive(
                "server.http2_keep_alive_timeout",
                self.http2_keep_alive_timeout,
            )?,
            http2_idle_timeout: positive("server.http2_idle_timeout", self.http2_idle_timeout)?,
            frame_ancestors: super::frame_ancestors::validate(&self.frame_ancestors)?,
            native_http1: self.native_http1,
            threads: match self.threads {
                None => std::thread::available_parallelism().map_or(1, usize::from),
                Some(n @ 1..=MAX_THREADS) => n,
                Some(_) => {
                    return Err(ConfigError::key(
                        "server.threads",
                        format!("must be between 1 and {MAX_THREADS}"),
                    ))
                }
            },
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
            ws_write_timeout: positive("upstream.ws_write_timeout", self.ws_write_timeout)?,
            max_ws_message,
            max_header_bytes,
            pool_idle_timeout: positive("upstream.pool_idle_timeout", self.pool_idle_timeout)?,
            pool_max_idle_per_host: self.pool_max_idle_per_host,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key the file knows, with a value unlike its default.
    const EVERY_KEY: &str = r#"
[server]
listen = "127.0.0.1:18080"
admin_listen = "127.0.0.1:19090"
reana_paths = false
trusted_proxies = ["10.0.0.0/8", "2001:db8::1"]
shutdown_grace = "40s"
drain_delay = "2s"
header_read_timeout = "7s"
http1_keep_alive_timeout = "95s"
http2_keep_alive_interval = "15s"
http2_keep_alive_timeout = "12s"
http2_idle_timeout = "4m"
frame_ancestors = "'self' https://reana.example.org"
threads = 3
native_http1 = false

[upstream]
connect_timeout = "3s"
response_timeout = "45s"
ws_idle_timeout = "9m"
ws_write_timeout = "20s"
max_ws_message = "16MiB"
max_header_bytes = "32KiB"
pool_idle_timeout = "80s"
pool_max_idle_per_host = 16

[auth]
cookie_name = "ddg"
cookie_secure = false
cookie_max_age = "2h"
allowed_origins = ["https://reana.example.org"]

[auth.jwt]
algorithms = ["HS256", "HS384"]
secret = "a-test-secret-0123456789abcdef0123456789abcdef"
issuer = "https://reana.example.org"
audience = "dask"
leeway_seconds = 5
user_claim = "user"

[auth.reana]
server_url = "http://reana-server:5000"
public_url = "https://reana.example.org"
host_header = "reana.example.org"
cache_ttl = "20s"
negative_ttl = "3s"
timeout = "4s"
cache_max_entries = 500
max_concurrent = 8

[auth.rate_limit]
burst = 5
per_second = 0.5
max_clients = 1000

[discovery]
kind = "static"
[[discovery.static.routes]]
workflow = "wf-1"
upstream = "http://127.0.0.1:8787"
owner = "user-1"
[[discovery.static.routes]]
workflow = "wf-2"
upstream = "http://10.1.2.3:8787"
owner = "user-2"

[log]
format = "json"
level = "debug"
"#;

    /// Without an override the text is deserialized directly; with a `DDG_*`
    /// variable that overrides nothing, through the table. Both give the same.
    #[test]
    fn the_direct_and_the_table_reading_agree() {
        let texts = [
            super::super::EMBEDDED_DEFAULT,
            include_str!("../../deploy/base/gateway.toml"),
            include_str!("../../deploy/overlays/reana/gateway.toml"),
            EVERY_KEY,
        ];
        for text in texts {
            assert!(RawConfig::deserialize_text(text).is_some(), "{text}");
            let direct = format!("{:?}", Config::parse(text, [], None));
            let unrelated = [("DDG_UNRELATED".to_string(), "1".to_string())];
            let table = format!("{:?}", Config::parse(text, unrelated, None));
            assert_eq!(direct, table, "{text}");
        }
        let every = Config::parse(EVERY_KEY, [], None).expect("valid");
        assert_eq!(every.server.threads, 3);
        // What the direct reading refuses, the table reading words.
        let bad = EVERY_KEY.replace("threads = 3", "threads = \"three\"");
        assert!(RawConfig::deserialize_text(&bad).is_none());
        let error = Config::parse(&bad, [], None).expect_err("refused");
        assert!(error.0.contains("server.threads"), "{error}");
    }

    fn net(s: &str) -> IpNet {
        s.parse().expect("network")
    }

    #[test]
    fn trusted_proxies_are_networks_or_addresses() {
        assert_eq!(cidr("10.0.0.0/8"), Some(net("10.0.0.0/8")));
        assert_eq!(cidr("1.2.3.4"), Some(net("1.2.3.4/32")));
        assert_eq!(cidr("fd00::/8"), Some(net("fd00::/8")));
        assert_eq!(cidr("2001:db8::1"), Some(net("2001:db8::1/128")));
        assert_eq!(cidr("0.0.0.0/0"), Some(net("0.0.0.0/0")));
        assert_eq!(cidr("::ffff:10.0.0.0/104"), Some(net("10.0.0.0/8")));
        assert_eq!(cidr("::ffff:0:0/95"), Some(net("::ffff:0:0/95")));
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.0/",
            "/8",
            "ten",
            "10.0.0/8",
            "",
        ] {
            assert_eq!(cidr(bad), None, "{bad}");
        }
    }
}
