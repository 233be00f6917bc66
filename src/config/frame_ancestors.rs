//! `server.frame_ancestors`: the sources of the `frame-ancestors` directive put on
//! dashboard responses, checked so that the value can only ever be that one
//! directive.

use super::ConfigError;

const KEY: &str = "server.frame_ancestors";

/// Checks `text` (CSP sources separated by spaces, e.g. `'self'` or
/// `'self' https://reana.example.org`) and returns it with single spaces.
///
/// Refused: nothing at all; anything but printable ASCII; `;` and `,`, which would
/// start another directive or policy; quoted keywords other than `'self'` and
/// `'none'`; `'none'` beside other sources.
pub(super) fn validate(text: &str) -> Result<String, ConfigError> {
    let sources: Vec<&str> = text.split_ascii_whitespace().collect();
    if sources.is_empty() {
        return Err(ConfigError::key(
            KEY,
            "must name at least one source, e.g. \"'self'\"",
        ));
    }
    for source in &sources {
        if !source.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::key(
                KEY,
                format!("`{}` is not printable ASCII", source.escape_default()),
            ));
        }
        if source.contains([';', ',']) {
            return Err(ConfigError::key(
                KEY,
                "must not contain `;` or `,`: it holds the sources of one directive",
            ));
        }
        if source.starts_with('\'') && !matches!(*source, "'self'" | "'none'") {
            return Err(ConfigError::key(
                KEY,
                format!("`{source}`: the only keywords are 'self' and 'none'"),
            ));
        }
    }
    if sources.len() > 1 && sources.contains(&"'none'") {
        return Err(ConfigError::key(KEY, "'none' must stand alone"));
    }
    Ok(sources.join(" "))
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn sources_are_kept_with_single_spaces() {
        let ok = |text: &str| validate(text).map_err(|e| e.to_string());
        assert_eq!(ok("'self'"), Ok("'self'".to_owned()));
        assert_eq!(ok("'none'"), Ok("'none'".to_owned()));
        assert_eq!(
            ok("  'self'\thttps://reana.example.org  *.cern.ch "),
            Ok("'self' https://reana.example.org *.cern.ch".to_owned())
        );
    }

    #[test]
    fn anything_that_could_be_another_directive_is_refused() {
        for text in [
            "",
            "   ",
            "'self'; script-src *",
            "'self', default-src *",
            "https://a.example;",
            "'unsafe-inline'",
            "'none' 'self'",
            "'self' \u{e9}.example.org",
            "'self'\u{7f}",
        ] {
            let error = validate(text).expect_err(text).to_string();
            assert!(
                error.contains("server.frame_ancestors"),
                "{text:?}: {error}"
            );
        }
    }
}
