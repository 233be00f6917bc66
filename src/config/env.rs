//! `DDG_<SECTION>__<KEY>` environment overrides, applied to the parsed TOML table
//! before validation (e.g. `DDG_AUTH__JWT__SECRET`, `DDG_SERVER__LISTEN`).

use super::ConfigError;

const PREFIX: &str = "DDG_";

/// Sections of the file: a `DDG_<SECTION>_<KEY>` variable (one underscore) is a
/// typo of an override and is refused rather than silently ignored.
const SECTIONS: [&str; 5] = ["SERVER", "UPSTREAM", "AUTH", "DISCOVERY", "LOG"];

/// Applies every `DDG_<SECTION>__<KEY>` variable to `table`. A value that parses as a
/// TOML value (`true`, `30`, `["a", "b"]`) is taken as that; anything else as a
/// string. Other `DDG_*` variables without `__` are not overrides and are left alone.
pub(super) fn apply_overrides(
    table: &mut toml::Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let mut vars = prefixed(vars);
    vars.sort();
    for (name, value) in vars {
        let rest = &name[PREFIX.len()..];
        if !rest.contains("__") {
            let typo = SECTIONS
                .iter()
                .any(|s| rest.strip_prefix(s).is_some_and(|r| r.starts_with('_')));
            if typo {
                return Err(ConfigError(format!(
                    "environment variable {name}: overrides are written DDG_<SECTION>__<KEY> (two underscores)"
                )));
            }
            continue;
        }
        let path: Vec<String> = name[PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError(format!(
                "environment variable {name}: expected DDG_<SECTION>__<KEY>"
            )));
        }
        set(table, &path, parse_value(&value), &name)?;
    }
    Ok(())
}

/// The variables that may be overrides (or typos of one): those named `DDG_*`.
pub(super) fn prefixed(vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    vars.into_iter()
        .filter(|(k, _)| k.starts_with(PREFIX))
        .collect()
}

fn parse_value(text: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {text}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(text.to_string())),
        Err(_) => toml::Value::String(text.to_string()),
    }
}

fn set(
    table: &mut toml::Table,
    path: &[String],
    value: toml::Value,
    name: &str,
) -> Result<(), ConfigError> {
    let Some((last, parents)) = path.split_last() else {
        return Ok(());
    };
    let mut node = table;
    for key in parents {
        let entry = node
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(ConfigError(format!(
                    "environment variable {name}: `{key}` is not a section"
                )))
            }
        };
    }
    node.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_nested_keys_and_types() {
        let mut t: toml::Table = toml::from_str("[server]\nlisten = \"127.0.0.1:1\"").unwrap();
        apply_overrides(
            &mut t,
            [
                ("DDG_SERVER__LISTEN".into(), "0.0.0.0:8080".into()),
                ("DDG_AUTH__JWT__SECRET".into(), "s3cret".into()),
                ("DDG_AUTH__COOKIE_SECURE".into(), "false".into()),
                ("OTHER".into(), "x".into()),
            ],
        )
        .unwrap();
        assert_eq!(t["server"]["listen"].as_str(), Some("0.0.0.0:8080"));
        assert_eq!(t["auth"]["jwt"]["secret"].as_str(), Some("s3cret"));
        assert_eq!(t["auth"]["cookie_secure"].as_bool(), Some(false));
        assert!(!t.contains_key("other"));
    }

    #[test]
    fn rejects_malformed_names() {
        let mut t = toml::Table::new();
        let err = apply_overrides(&mut t, [("DDG_SERVER____X".into(), "1".into())]);
        assert!(err.is_err());
        let err = apply_overrides(&mut t, [("DDG_SERVER_LISTEN".into(), "x".into())]);
        assert!(err.unwrap_err().0.contains("two underscores"));
        // Not an override at all: left alone.
        apply_overrides(&mut t, [("DDG_TEST_VENV".into(), "/tmp/venv".into())]).unwrap();
        assert!(t.is_empty());
        let mut t: toml::Table = toml::from_str("server = 1").unwrap();
        let err = apply_overrides(&mut t, [("DDG_SERVER__LISTEN".into(), "x".into())]);
        assert!(err.unwrap_err().0.contains("not a section"));
    }
}
