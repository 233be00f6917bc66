//! An in-process gateway for the tests: static routes, HS256 JWTs, listeners on
//! 127.0.0.1:0. Dropping the [`TestGateway`] stops it.

use std::net::SocketAddr;
use std::time::Duration;

use dask_dashboard_gateway::config::Config;
use dask_dashboard_gateway::{Gateway, Prepared, StartError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The HS256 secret of every test gateway.
pub const SECRET: &str = "end-to-end-test-secret-0123456789abcdef-0123456789";

/// A static route: `(workflow, upstream "http://host:port", owner)`.
pub type RouteSpec<'a> = (&'a str, &'a str, &'a str);

/// The TOML configuration [`TestGateway::start`] uses for `routes`.
pub fn config_toml(routes: &[RouteSpec<'_>]) -> String {
    let mut text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[auth]
cookie_secure = false

[auth.jwt]
algorithms = ["HS256"]
secret = "{SECRET}"

[discovery]
kind = "static"
"#
    );
    for (workflow, upstream, owner) in routes {
        text.push_str(&format!(
            "\n[[discovery.static.routes]]\nworkflow = \"{workflow}\"\nupstream = \"{upstream}\"\nowner = \"{owner}\"\n"
        ));
    }
    text
}

/// A running gateway.
pub struct TestGateway {
    /// The public listener.
    pub public: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    /// The configuration it runs with.
    pub config: Config,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), StartError>>>,
}

impl TestGateway {
    /// Starts a gateway serving `routes` (see [`config_toml`]).
    pub async fn start(routes: &[RouteSpec<'_>]) -> TestGateway {
        TestGateway::start_toml(&config_toml(routes)).await
    }

    /// Starts a gateway from a whole TOML configuration.
    pub async fn start_toml(toml_text: &str) -> TestGateway {
        let config = Config::from_toml(toml_text)
            .unwrap_or_else(|e| panic!("test configuration rejected: {e}\n{toml_text}"));
        let prepared = Prepared::new(config.clone())
            .unwrap_or_else(|e| panic!("test configuration not usable: {e}\n{toml_text}"));
        let gateway = tokio::time::timeout(Duration::from_secs(30), Gateway::bind(prepared))
            .await
            .expect("Gateway::bind did not finish within 30 s")
            .unwrap_or_else(|e| panic!("Gateway::bind: {e}"));
        let public = gateway.public_addr();
        let admin = gateway.admin_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.run(async move {
            let _ = rx.await;
        }));
        TestGateway {
            public,
            admin,
            config,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// A JWT for `user`, valid for an hour.
    pub fn token(&self, user: &str) -> String {
        self.token_for(user, Duration::from_secs(3600))
    }

    /// A JWT for `user`, valid for `lifetime`.
    pub fn token_for(&self, user: &str, lifetime: Duration) -> String {
        let jwt = self
            .config
            .auth
            .jwt
            .as_ref()
            .expect("the test config has [auth.jwt]");
        dask_dashboard_gateway::auth::jwt::mint(jwt, user, lifetime)
            .unwrap_or_else(|e| panic!("minting a JWT: {e:?}"))
    }

    /// `http://<public>` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.public)
    }

    /// `ws://<public>` + `path`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.public)
    }

    /// The browser Origin of a page served by this gateway.
    pub fn origin(&self) -> String {
        format!("http://{}", self.public)
    }

    /// `http://<admin>` + `path`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// Asks the gateway to shut down and waits (at most 30 s) for `run` to return.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(Duration::from_secs(30), task).await {
            Err(_) => Err("the gateway did not stop within 30 s".into()),
            Ok(Err(join)) => Err(format!("the gateway task failed: {join}")),
            Ok(Ok(Err(e))) => Err(format!("the gateway returned an error: {e}")),
            Ok(Ok(Ok(()))) => Ok(()),
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
