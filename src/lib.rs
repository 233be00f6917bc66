//! dask-dashboard-gateway: an authenticating reverse proxy for Dask dashboards on
//! REANA. [`Prepared::new`] does all start-up work that can fail on the
//! configuration, [`Gateway::bind`] binds the listeners (port 0 works, for tests) and
//! [`Gateway::run`] serves until the given shutdown future completes.

mod admin;
pub mod auth;
pub mod body;
pub mod config;
pub mod discovery;
pub mod error;
pub mod logging;
pub mod metrics;
mod pages;
mod prepared;
#[cfg(test)]
mod props;
pub mod proxy;
pub mod readiness;
pub mod routes;
mod server;
mod state;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use crate::prepared::Prepared;

use crate::admin::Admin;
use crate::config::ConfigError;
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::routes::RouteTable;
use crate::server::ConnSettings;
use crate::state::State;
use prometheus_client::metrics::counter::Counter;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration (or a key or certificate it names) is unusable.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// Discovery could not start.
    #[error("discovery: {0}")]
    Discovery(#[from] discovery::DiscoveryError),
    /// A serving thread could not be started.
    #[error("cannot start a serving thread: {0}")]
    Thread(std::io::Error),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A gateway with its listeners bound, ready to [`run`](Gateway::run).
pub struct Gateway {
    /// One listener per serving thread, all on the public port.
    public: Vec<std::net::TcpListener>,
    admin: TcpListener,
    tls: Option<TlsAcceptor>,
    cert: Option<Arc<tls::ReloadingCert>>,
    state: Arc<State>,
    admin_state: Admin,
    settings: ConnSettings,
    grace: Duration,
    drain_delay: Duration,
    /// Stops discovery's background tasks when dropped (after `run`, or with a
    /// gateway that never ran).
    stop_discovery: DropGuard,
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

impl Gateway {
    /// Starts the verifiers' background work and discovery, and binds both
    /// listeners.
    pub async fn bind(prepared: Prepared) -> Result<Gateway, StartError> {
        let Prepared { config, auth, tls } = prepared;
        auth.start();
        let (cert, tls) = tls.unzip();
        let routes = Arc::new(RouteTable::new());
        let metrics = Arc::new(Metrics::new());
        let readiness = Readiness::new();
        let public =
            server::bind_shared(config.server.listen, config.server.threads).map_err(|source| {
                StartError::Bind {
                    addr: config.server.listen,
                    source,
                }
            })?;
        let admin = bind(config.server.admin_listen).await?;
        let stop_discovery = CancellationToken::new();
        discovery::start(
            &config.discovery,
            Arc::clone(&routes),
            readiness.clone(),
            Arc::clone(&metrics),
            stop_discovery.clone(),
        )
        .await?;
        let state = State::new(
            &config,
            auth,
            Arc::clone(&routes),
            Arc::clone(&metrics),
            readiness.clone(),
        );
        Ok(Gateway {
            public,
            admin,
            tls,
            cert,
            state: Arc::new(state),
            admin_state: Admin {
                metrics,
                routes,
                readiness,
            },
            settings: ConnSettings::new(&config.server, config.upstream.max_header_bytes),
            grace: config.server.shutdown_grace,
            drain_delay: config.server.drain_delay,
            stop_discovery: stop_discovery.drop_guard(),
        })
    }

    /// The bound public address.
    pub fn public_addr(&self) -> SocketAddr {
        self.public
            .first()
            .and_then(|l| l.local_addr().ok())
            .unwrap_or_else(|| ([0, 0, 0, 0], 0).into())
    }

    /// Reports the log writer's count of dropped lines as
    /// `dashboard_gateway_log_lines_dropped_total`.
    pub fn count_dropped_log_lines(&self, dropped: logging::DroppedLines) {
        self.state
            .metrics
            .count_dropped_log_lines(move || dropped.get());
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into())
    }

    /// Serves until `shutdown` completes, then drains: `/readyz` turns 503, new
    /// connections are still accepted for `server.drain_delay`, then no more; in-flight
    /// requests finish and WebSockets are closed with 1001. One deadline,
    /// `server.shutdown_grace` after `shutdown` completed, bounds all of it: what is
    /// still open then is dropped, and `run` returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let Gateway {
            public,
            admin,
            tls,
            cert,
            state,
            admin_state,
            settings,
            grace,
            drain_delay,
            stop_discovery,
        } = self;
        tracing::info!(
            public = %public.first().and_then(|l| l.local_addr().ok()).map(|a| a.to_string()).unwrap_or_default(),
            admin = %admin.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            tls = tls.is_some(),
            threads = public.len(),
            "gateway listening"
        );
        let stop_public = CancellationToken::new();
        let stop_admin = CancellationToken::new();
        if let Some(cert) = cert {
            tokio::spawn(cert.watch(tls::RELOAD_INTERVAL, stop_admin.clone()));
        }

        let release = CancellationToken::new();
        let serving = server::Serving {
            tls,
            settings,
            stop: stop_public.clone(),
            release: release.clone(),
            handoffs: state.metrics.http1_handoffs(),
        };
        let mut workers: Vec<server::Worker> = Vec::with_capacity(public.len());
        for (index, listener) in public.into_iter().enumerate() {
            let worker_state = Arc::new(state.for_worker());
            let started = server::Worker::start(
                index,
                listener,
                move |req, raw, peer| proxy::handle(Arc::clone(&worker_state), req, raw, peer),
                serving.clone(),
                state.metrics.connections_accepted(index),
                workers.last(),
            );
            match started {
                Ok(worker) => workers.push(worker),
                Err(error) => {
                    release.cancel();
                    stop_admin.cancel();
                    return Err(StartError::Thread(error));
                }
            }
        }
        // The admin listener answers until the end (`/readyz` says 503 meanwhile),
        // and its connections are dropped as it stops.
        let admin_task = tokio::spawn(server::serve(
            admin,
            server::Accepting::Always,
            None,
            settings,
            move |mut req: http::Request<_>, raw: Option<proxy::raw::RawHead>, _peer| {
                // The admin endpoints read their requests from a map.
                if let Some(raw) = raw {
                    *req.headers_mut() = raw.to_map();
                }
                let reply = proxy::Reply::from(admin_state.handle(&req));
                async move { reply }
            },
            // The admin listener's hand-offs and connections are not the dashboards'
            // business.
            server::Ends {
                stop: stop_admin.clone(),
                abort: stop_admin.clone(),
                handoffs: Counter::default(),
            },
            Counter::default(),
        ));

        shutdown.await;
        let deadline = tokio::time::Instant::now() + grace;
        tracing::info!(grace_seconds = grace.as_secs_f64(), "shutting down");
        state.readiness.set_draining();
        // Keep accepting while load balancers notice /readyz.
        tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + drain_delay)).await;
        stop_public.cancel();
        state.shutdown.cancel();
        state.ws_tasks.close();
        let drained = tokio::time::timeout_at(deadline, async {
            for worker in &mut workers {
                let _ = (&mut worker.served).await;
            }
            state.ws_tasks.wait().await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!("shutdown grace period elapsed with work still open; dropping it");
        }
        // Ends the serving threads, dropping what still runs on them: dropped
        // connections and sockets take moments, not another grace period.
        release.cancel();
        let ended_by = tokio::time::Instant::now() + THREADS_END_WITHIN;
        for worker in workers {
            worker.ended_by(ended_by).await;
        }
        stop_admin.cancel();
        drop(stop_discovery);
        let _ = tokio::time::timeout(THREADS_END_WITHIN, admin_task).await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// How long the serving threads get to close what was still open at the end of
/// the drain.
const THREADS_END_WITHIN: Duration = Duration::from_millis(500);
