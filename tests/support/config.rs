//! The one gateway configuration builder of the tests: typed sections that render
//! the TOML the gateway reads (keys as in `src/config` and the README). The base
//! ([`GatewayConfig::new`]) listens on 127.0.0.1:0 (public and admin), sends
//! cookies without `Secure`, verifies HS256 JWTs signed with [`SECRET`] and routes
//! statically; every setter changes one part of it.

use std::path::{Path, PathBuf};

use dask_dashboard_gateway::config::Config;
use toml::{Table, Value};

pub use super::jwt::SECRET;

/// A whole gateway configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    root: Table,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig::new()
    }
}

/// The table at `path` under `root`, created when missing.
fn table<'a>(root: &'a mut Table, path: &[&str]) -> &'a mut Table {
    path.iter().fold(root, |t, key| {
        t.entry(key.to_string())
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .unwrap_or_else(|| panic!("`{key}` is not a table"))
    })
}

impl GatewayConfig {
    /// The base configuration (see the module documentation).
    pub fn new() -> GatewayConfig {
        let config = GatewayConfig { root: Table::new() }
            .listen("127.0.0.1:0")
            .admin_listen("127.0.0.1:0")
            .server("shutdown_grace", "10s")
            .auth("cookie_secure", false)
            .jwt(Jwt::secret(SECRET));
        config.discovery_static()
    }

    fn set(mut self, path: &[&str], key: &str, value: impl Into<Value>) -> Self {
        table(&mut self.root, path).insert(key.into(), value.into());
        self
    }

    /// Sets `key` of `[server]` (e.g. `"header_read_timeout", "500ms"`).
    pub fn server(self, key: &str, value: impl Into<Value>) -> Self {
        self.set(&["server"], key, value)
    }

    /// Sets `key` of `[upstream]` (e.g. `"max_ws_message", "64KiB"`).
    pub fn upstream(self, key: &str, value: impl Into<Value>) -> Self {
        self.set(&["upstream"], key, value)
    }

    /// Sets `key` of `[auth]` (e.g. `"allowed_origins", vec![...]`).
    pub fn auth(self, key: &str, value: impl Into<Value>) -> Self {
        self.set(&["auth"], key, value)
    }

    /// Sets `key` of `[log]` (`format`, `level`).
    pub fn log(self, key: &str, value: impl Into<Value>) -> Self {
        self.set(&["log"], key, value)
    }

    /// `server.listen`.
    pub fn listen(self, addr: impl ToString) -> Self {
        self.server("listen", addr.to_string())
    }

    /// `server.admin_listen`.
    pub fn admin_listen(self, addr: impl ToString) -> Self {
        self.server("admin_listen", addr.to_string())
    }

    /// TLS on the public listener with this certificate and key (PEM files).
    pub fn tls(self, cert: &Path, key: &Path) -> Self {
        self.server("tls_cert", path_value(cert))
            .server("tls_key", path_value(key))
    }

    /// `[auth.rate_limit]`: `burst`, refilled at `per_second`.
    pub fn rate_limit(self, burst: u32, per_second: f64) -> Self {
        self.set(&["auth", "rate_limit"], "burst", i64::from(burst))
            .set(&["auth", "rate_limit"], "per_second", per_second)
    }

    /// Replaces `[auth.jwt]`.
    pub fn jwt(mut self, jwt: Jwt) -> Self {
        table(&mut self.root, &["auth"]).insert("jwt".into(), Value::Table(jwt.0));
        self
    }

    /// Removes `[auth.jwt]` (e.g. for a gateway that knows REANA identities only).
    pub fn no_jwt(mut self) -> Self {
        table(&mut self.root, &["auth"]).remove("jwt");
        self
    }

    /// Sets `[auth.reana]`.
    pub fn reana(mut self, reana: Reana) -> Self {
        table(&mut self.root, &["auth"]).insert("reana".into(), Value::Table(reana.0));
        self
    }

    fn discovery_static(mut self) -> Self {
        let mut discovery = Table::new();
        discovery.insert("kind".into(), "static".into());
        self.root
            .insert("discovery".into(), Value::Table(discovery));
        self
    }

    /// Adds a static route: requests for `workflow` from `owner` go to `upstream`
    /// (`http://host:port`).
    pub fn route(mut self, workflow: &str, upstream: &str, owner: &str) -> Self {
        let mut route = Table::new();
        route.insert("workflow".into(), workflow.into());
        route.insert("upstream".into(), upstream.into());
        route.insert("owner".into(), owner.into());
        let routes = table(&mut self.root, &["discovery", "static"])
            .entry("routes")
            .or_insert_with(|| Value::Array(Vec::new()));
        routes
            .as_array_mut()
            .expect("routes is an array")
            .push(Value::Table(route));
        self
    }

    /// Kubernetes discovery instead of static routes.
    pub fn kubernetes(mut self, kube: Kube) -> Self {
        let mut discovery = kube.0;
        discovery.insert("kind".into(), "kubernetes".into());
        self.root
            .insert("discovery".into(), Value::Table(discovery));
        self
    }

    /// The TOML text.
    pub fn render(&self) -> String {
        toml::to_string(&self.root).expect("the test configuration renders as TOML")
    }

    /// The configuration as the gateway reads it; panics (with the text) when the
    /// gateway rejects it.
    pub fn config(&self) -> Config {
        let text = self.render();
        Config::from_toml(&text)
            .unwrap_or_else(|e| panic!("test configuration rejected: {e}\n{text}"))
    }

    /// Writes the TOML to `dir/name` and returns the path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.render()).expect("write the configuration");
        path
    }
}

fn path_value(path: &Path) -> Value {
    Value::String(path.to_str().expect("a UTF-8 path").to_owned())
}

/// `[auth.jwt]`.
#[derive(Debug, Clone)]
pub struct Jwt(Table);

impl Jwt {
    /// Accepts `algorithms`, with no key yet.
    pub fn algorithms(algorithms: &[&str]) -> Jwt {
        let mut table = Table::new();
        table.insert("algorithms".into(), algorithms.to_vec().into());
        Jwt(table)
    }

    /// HS256 with `secret`.
    pub fn secret(secret: &str) -> Jwt {
        Jwt::algorithms(&["HS256"]).set("secret", secret)
    }

    /// RS256 with the keys of the JWK Set at `url`.
    pub fn jwks(url: &str) -> Jwt {
        Jwt::algorithms(&["RS256"]).set("jwks_url", url)
    }

    /// Sets `key` (e.g. `"jwks_min_refresh", "2s"`).
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Jwt {
        self.0.insert(key.into(), value.into());
        self
    }
}

/// `[auth.reana]`: identities from reana-server at `server_url`.
#[derive(Debug, Clone)]
pub struct Reana(Table);

impl Reana {
    /// reana-server at `server_url`, every other key at its default.
    pub fn new(server_url: &str) -> Reana {
        let mut table = Table::new();
        table.insert("server_url".into(), server_url.into());
        Reana(table)
    }

    fn set(mut self, key: &str, value: impl Into<Value>) -> Reana {
        self.0.insert(key.into(), value.into());
        self
    }

    /// `public_url`: where the 401 page sends the user.
    pub fn public_url(self, url: &str) -> Reana {
        self.set("public_url", url)
    }

    /// `host_header`: the Host the gateway sends to reana-server.
    pub fn host_header(self, host: &str) -> Reana {
        self.set("host_header", host)
    }

    /// `cache_ttl` of positive answers (e.g. `"300ms"`).
    pub fn cache_ttl(self, ttl: &str) -> Reana {
        self.set("cache_ttl", ttl)
    }

    /// `negative_ttl` of refusals.
    pub fn negative_ttl(self, ttl: &str) -> Reana {
        self.set("negative_ttl", ttl)
    }

    /// `timeout` of one call to reana-server.
    pub fn timeout(self, timeout: &str) -> Reana {
        self.set("timeout", timeout)
    }

    /// `cache_max_entries`.
    pub fn cache_max_entries(self, entries: i64) -> Reana {
        self.set("cache_max_entries", entries)
    }

    /// `max_concurrent` calls to reana-server.
    pub fn max_concurrent(self, calls: i64) -> Reana {
        self.set("max_concurrent", calls)
    }
}

/// `[discovery]` with `kind = "kubernetes"`.
#[derive(Debug, Clone)]
pub struct Kube(Table);

impl Kube {
    /// Through the API server `kubeconfig` names, in all namespaces.
    pub fn new(kubeconfig: &Path) -> Kube {
        let mut table = Table::new();
        table.insert("kubeconfig".into(), path_value(kubeconfig));
        Kube(table)
    }

    /// Only in `namespace`.
    pub fn namespace(mut self, namespace: &str) -> Kube {
        self.0.insert("namespace".into(), namespace.into());
        self
    }
}
