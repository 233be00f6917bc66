//! Log output: `tracing` to stdout as text or JSON lines. `RUST_LOG` overrides the
//! configured level, except that the libraries which trace whole requests at debug
//! and trace level (headers, cookies, `Sec-WebSocket-Protocol`) are capped at info,
//! so no level setting can put a credential or a Bokeh session token in the log.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Targets whose debug and trace output can contain request headers.
const CAPPED: [&str; 6] = [
    "tungstenite",
    "tokio_tungstenite",
    "hyper",
    "hyper_util",
    "h2",
    "kube_client",
];

/// Installs the global subscriber. Returns an error if one is already installed.
pub fn init(config: &LogConfig) -> Result<(), String> {
    let wanted = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| config.level.clone());
    let filter = EnvFilter::try_new(capped(&wanted)).map_err(|e| format!("log.level: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true);
    let result = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| e.to_string())
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
