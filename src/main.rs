//! The `dask-dashboard-gateway` binary: parse flags, load the configuration (exit 64
//! when it is invalid), start logging, and run until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use dask_dashboard_gateway::config::{self, Config, DiscoveryConfig};
use dask_dashboard_gateway::{auth, logging, Gateway, Prepared};

/// Exit status for an unusable configuration (EX_CONFIG is 78; the contract says 64).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "dask-dashboard-gateway",
    version,
    about = "Authenticating gateway for Dask dashboards on REANA"
)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Validate the configuration (keys included) and exit: 0 when valid, 64 otherwise.
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Mint a development JWT with the configured shared secret and print a dashboard
    /// URL that carries it.
    Token {
        /// User id to put in the token (default: the first static route's owner).
        #[arg(long)]
        user: Option<String>,
        /// Workflow for the printed URL (default: the first static route).
        #[arg(long)]
        workflow: Option<String>,
        /// Token lifetime, e.g. "1h".
        #[arg(long, default_value = "8h", value_parser = config::units::parse_duration)]
        ttl: Duration,
    },
}

/// mimalloc: per-thread free lists that a proxy's many small, short-lived buffers
/// stay in (glibc's overflow under load, and each overflow costs a slow path), and
/// freed pages returned to the system on its own, e.g. after a burst of WebSockets
/// has closed. Transparent huge pages are off for it (`no_thp`): they would back a
/// few small heaps with 2 MiB pages each (idle RSS 16.8 MiB instead of 11.9, measured side by side).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (path, explicit) = match &cli.config {
        Some(path) => (path.clone(), true),
        None => (PathBuf::from("config/gateway.toml"), false),
    };
    let config = match Config::load(&path, explicit) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("dask-dashboard-gateway: invalid configuration: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let prepared = match Prepared::new(config) {
        Ok(prepared) => prepared,
        Err(error) => {
            eprintln!("dask-dashboard-gateway: invalid configuration: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if cli.check_config {
        println!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    match cli.command {
        Some(Command::Token {
            user,
            workflow,
            ttl,
        }) => token(prepared.config(), user, workflow, ttl),
        None => serve(prepared),
    }
}

fn token(
    config: &Config,
    user: Option<String>,
    workflow: Option<String>,
    ttl: Duration,
) -> ExitCode {
    let first = match &config.discovery {
        DiscoveryConfig::Static(routes) => routes.first(),
        DiscoveryConfig::Kubernetes(_) => None,
    };
    let Some(user) = user.or_else(|| first.map(|r| r.owner.clone())) else {
        eprintln!(
            "dask-dashboard-gateway: no --user given and no static route to take an owner from"
        );
        return ExitCode::from(2);
    };
    let Some(jwt) = &config.auth.jwt else {
        eprintln!("dask-dashboard-gateway: [auth.jwt] is not configured");
        return ExitCode::from(EXIT_CONFIG);
    };
    let token = match auth::jwt::mint(jwt, &user, ttl) {
        Ok(token) => token,
        Err(error) => {
            eprintln!("dask-dashboard-gateway: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match workflow.or_else(|| first.map(|r| r.workflow.clone())) {
        Some(workflow) => {
            let scheme = if config.server.tls.is_some() {
                "https"
            } else {
                "http"
            };
            let addr = config.server.listen;
            println!("{scheme}://{addr}/dashboard/{workflow}/status?access_token={token}");
        }
        None => println!("{token}"),
    }
    ExitCode::SUCCESS
}

fn serve(prepared: Prepared) -> ExitCode {
    let log = match logging::init(&prepared.config().log) {
        Ok(log) => log,
        Err(error) => {
            eprintln!("dask-dashboard-gateway: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Requests are served on threads of their own (`server.threads`); this runtime
    // runs discovery, key refresh, certificate reload and the admin listener.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("dask-dashboard-gateway: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        let gateway = match Gateway::bind(prepared).await {
            Ok(gateway) => gateway,
            Err(error) => {
                tracing::error!(%error, "cannot start");
                return ExitCode::FAILURE;
            }
        };
        gateway.count_dropped_log_lines(log.dropped());
        tokio::spawn(report_dropped_log_lines(log.dropped()));
        match gateway.run(shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, "gateway failed");
                ExitCode::FAILURE
            }
        }
    });
    // The drain has kept its deadline: blocking work still running (a DNS lookup, a
    // file read) does not hold the exit up.
    runtime.shutdown_background();
    code
}

/// Says on stderr, at most every 10 s, when log lines had to be dropped (stdout did
/// not keep up): never silently, and without going through the log that is behind.
async fn report_dropped_log_lines(dropped: logging::DroppedLines) {
    let mut reported = 0;
    let mut every = tokio::time::interval(Duration::from_secs(10));
    loop {
        every.tick().await;
        let now = dropped.get();
        if now > reported {
            eprintln!(
                "dask-dashboard-gateway: {} log lines dropped because stdout did not keep up ({now} in all)",
                now - reported
            );
            reported = now;
        }
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
