//! Log output: `tracing` to stdout as text or JSON lines. `RUST_LOG` overrides the
//! configured level, except that the libraries which trace whole requests at debug
//! and trace level (headers, cookies, `Sec-WebSocket-Protocol`) are capped at info,
//! so no level setting can put a credential or a Bokeh session token in the log.
//!
//! Lines are formatted where they happen and written in batches by a thread of their
//! own (`batch`), so the access log costs a request neither a system call nor a
//! wake-up. Should stdout fall behind by [`BUFFERED_LINES`], further lines are dropped
//! rather than stalling requests, and counted ([`DroppedLines`]).

pub(crate) mod access;
mod batch;
mod text;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{ConfigError, LogConfig, LogFormat};

/// Targets whose debug and trace output can contain request headers.
const CAPPED: [&str; 6] = [
    "tungstenite",
    "tokio_tungstenite",
    "hyper",
    "hyper_util",
    "h2",
    "kube_client",
];

/// Lines waiting for stdout before new ones are dropped.
pub const BUFFERED_LINES: usize = 64 * 1024;

/// The log writer thread: dropping this flushes what is buffered and ends it.
#[derive(Debug)]
pub struct LogOutput {
    _worker: batch::BatchGuard,
    dropped: batch::BatchWriter,
}

impl LogOutput {
    /// The count of lines dropped because stdout did not keep up.
    pub fn dropped(&self) -> DroppedLines {
        DroppedLines(self.dropped.clone())
    }
}

/// A live count of log lines dropped because stdout did not keep up.
#[derive(Debug, Clone)]
pub struct DroppedLines(batch::BatchWriter);

impl DroppedLines {
    /// Lines dropped so far.
    pub fn get(&self) -> u64 {
        self.0.dropped()
    }
}

/// The filter `config` (or `RUST_LOG`, which overrides it) asks for.
fn filter(config: &LogConfig) -> Result<EnvFilter, ConfigError> {
    let (key, wanted) = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => ("RUST_LOG", v),
        _ => ("log.level", config.level.clone()),
    };
    EnvFilter::try_new(capped(&wanted)).map_err(|e| ConfigError::key(key, e))
}

/// Checks the log filter without installing anything.
pub fn check(config: &LogConfig) -> Result<(), ConfigError> {
    filter(config).map(drop)
}

/// Installs the global subscriber and starts its writer thread. Returns an error if
/// a subscriber is already installed.
pub fn init(config: &LogConfig) -> Result<LogOutput, String> {
    let filter = filter(config).map_err(|e| e.to_string())?;
    let (writer, worker) = batch::start(std::io::stdout(), BUFFERED_LINES)
        .map_err(|e| format!("cannot start the log writer: {e}"))?;
    let dropped = writer.clone();
    // Colours only for a person at a terminal, not in `kubectl logs`.
    let ansi = std::io::stdout().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(ansi)
        .with_writer(writer);
    let result = match config.format {
        LogFormat::Text if ansi => builder.try_init(),
        LogFormat::Text => {
            let result = builder.event_format(text::Text).try_init();
            if result.is_ok() {
                access::write_directly(dropped.clone());
            }
            result
        }
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| e.to_string())?;
    Ok(LogOutput {
        _worker: worker,
        dropped,
    })
}

/// `directives` without any directive for a [`CAPPED`] target, plus `<target>=info`
/// for each of them.
fn capped(directives: &str) -> String {
    let is_capped = |d: &str| {
        let target = d.split(['=', '[']).next().unwrap_or("").trim();
        CAPPED
            .iter()
            .any(|c| target == *c || target.starts_with(&format!("{c}::")))
    };
    let mut kept: Vec<String> = directives
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !is_capped(d))
        .map(str::to_string)
        .collect();
    kept.extend(CAPPED.iter().map(|c| format!("{c}=info")));
    kept.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_tracing_libraries_stay_at_info_even_when_asked_for_trace() {
        let directives = capped("debug,tungstenite=trace,hyper::proto=trace, h2[conn]=debug");
        assert!(!directives.contains("trace"), "{directives}");
        assert!(directives.starts_with("debug,"), "{directives}");
        for target in CAPPED {
            assert!(
                directives.contains(&format!("{target}=info")),
                "{directives}"
            );
        }
        assert!(!directives.contains("h2[conn]"), "{directives}");
        assert!(EnvFilter::try_new(&directives).is_ok());
    }
}
