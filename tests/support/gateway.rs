//! An in-process gateway for the tests, built from a [`GatewayConfig`], its
//! listeners on 127.0.0.1:0. Dropping the [`TestGateway`] stops it.
//!
//! Its serving threads run their own single-threaded runtimes (as in production),
//! so requests are handled on the wall clock whatever the test's runtime does;
//! what `Gateway::bind` and `run` spawn (the JWKS refresher, the TLS certificate
//! watcher, discovery) runs on the test's runtime and its clock.

use std::net::SocketAddr;
use std::time::Duration;

use dask_dashboard_gateway::config::Config;
use dask_dashboard_gateway::{Gateway, Prepared, StartError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::config::GatewayConfig;
use super::jwt;

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
    /// Starts a gateway with `config`.
    pub async fn start(config: &GatewayConfig) -> TestGateway {
        let toml_text = config.render();
        let config = config.config();
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

    /// A JWT for `user`, valid for `lifetime` (HS256 with [`super::jwt::SECRET`]).
    pub fn token_for(&self, user: &str, lifetime: Duration) -> String {
        assert!(
            self.config.auth.jwt.is_some(),
            "the test config has no [auth.jwt]"
        );
        jwt::token(user, lifetime)
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

    /// Asks the gateway to shut down (what SIGTERM does); [`TestGateway::stop`]
    /// then waits for the end.
    pub fn begin_stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Asks the gateway to shut down and waits (at most 30 s) for `run` to return.
    pub async fn stop(mut self) -> Result<(), String> {
        self.begin_stop();
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
        self.begin_stop();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
