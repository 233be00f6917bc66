//! URL layout (SPEC §3): which request paths the gateway serves, how they are normalised,
//! and how an upstream `Location` is rewritten into the prefix the request came in on.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

/// Returns true when `id` matches `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$` (SPEC §3).
///
/// The check runs on the raw, still percent-encoded segment: an encoded id is invalid.
pub fn valid_workflow_id(id: &str) -> bool {
    match id.as_bytes().split_first() {
        Some((first, tail)) => {
            first.is_ascii_alphanumeric()
                && tail.len() <= 63
                && tail
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
        None => false,
    }
}

/// A request path the gateway serves.
#[derive(Debug, Clone, PartialEq, Eq)]
///
/// Its parts borrow from the request path; only a remainder that needs normalising is
/// a new string.
pub enum Target<'a> {
    /// `/dashboard/<id>/<rest>` or (reana form) `/<id>/dashboard/<rest>`.
    Dashboard {
        /// The workflow id, as written in the path (always valid).
        workflow: &'a str,
        /// `/dashboard/<id>` or `/<id>/dashboard`, exactly as matched.
        prefix: &'a str,
        /// The normalised remainder: starts with `/`, no `//`, no `.`/`..` segments,
        /// original percent-encoding of each segment kept.
        rest: Cow<'a, str>,
    },
    /// `/dashboard/<id>` or `/dashboard/<id>/` (and the reana forms): redirect to
    /// `<prefix>/status`.
    Bare {
        /// The workflow id, as written in the path (always valid).
        workflow: &'a str,
        /// `/dashboard/<id>` or `/<id>/dashboard`, exactly as matched.
        prefix: &'a str,
    },
}

impl Target<'_> {
    /// The workflow id the path addresses.
    pub fn workflow(&self) -> &str {
        match self {
            Target::Dashboard { workflow, .. } | Target::Bare { workflow, .. } => workflow,
        }
    }

    /// The prefix the request came in on (`/dashboard/<id>` or `/<id>/dashboard`).
    pub fn prefix(&self) -> &str {
        match self {
            Target::Dashboard { prefix, .. } | Target::Bare { prefix, .. } => prefix,
        }
    }
}

/// Why a path is not served (always answered 404 without touching any upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path is in neither URL form.
    #[error("not a dashboard path")]
    NotDashboard,
    /// The workflow segment does not match the workflow id syntax.
    #[error("invalid workflow id")]
    InvalidWorkflow,
    /// A segment holds an encoded slash or backslash, a raw backslash or a control byte.
    #[error("path not allowed")]
    Forbidden,
}

/// The second segment of the reana form, and the first of the plain form.
const DASHBOARD: &str = "dashboard";

/// Parses the raw (still percent-encoded) request path. `reana_paths` enables
/// `/<id>/dashboard/...`.
///
/// The remainder after the prefix is normalised (see [`Target::Dashboard`]); `..` never
/// climbs above the prefix. A remainder that normalises to `/` is [`Target::Bare`].
pub fn parse(path: &str, reana_paths: bool) -> Result<Target<'_>, PathError> {
    let after_root = path.strip_prefix('/').ok_or(PathError::NotDashboard)?;
    let (first, after_first) = split_segment(after_root);
    let second = after_first.map(|s| split_segment(s).0);
    let workflow = match second {
        Some(id) if first == DASHBOARD && !id.is_empty() => id,
        Some(DASHBOARD) if reana_paths && !first.is_empty() => first,
        _ => return Err(PathError::NotDashboard),
    };
    if !valid_workflow_id(workflow) {
        return Err(PathError::InvalidWorkflow);
    }
    // Both forms are `/` + one segment + `/` + another: the prefix has the same length.
    let prefix_len = 1 + DASHBOARD.len() + 1 + workflow.len();
    let (prefix, raw_rest) = path.split_at(prefix_len);
    match normalise(raw_rest)? {
        rest if rest == "/" => Ok(Target::Bare { workflow, prefix }),
        rest => Ok(Target::Dashboard {
            workflow,
            prefix,
            rest,
        }),
    }
}

/// Splits off the first segment; the second value is what follows its `/`, if any.
fn split_segment(s: &str) -> (&str, Option<&str>) {
    // A byte search: `/` is ASCII, so both sides stay valid UTF-8.
    match memchr::memchr(b'/', s.as_bytes()) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

/// Normalises `raw` (empty or starting with `/`): collapses empty segments, drops `.`,
/// resolves `..` without climbing above the root, keeps a trailing slash.
fn normalise(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if raw.is_empty() {
        return Ok(Cow::Borrowed("/"));
    }
    if already_normal(raw.as_bytes()) {
        return Ok(Cow::Borrowed(raw));
    }
    normalise_segments(raw).map(Cow::Owned)
}

/// [`normalise`] segment by segment.
fn normalise_segments(raw: &str) -> Result<String, PathError> {
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in raw.split('/').skip(1) {
        let decoded: Cow<'_, [u8]> = percent_decode_str(segment).into();
        if decoded.iter().any(|&b| forbidden_byte(b)) {
            return Err(PathError::Forbidden);
        }
        trailing_slash = true;
        match &*decoded {
            b"" | b"." => {}
            b".." => {
                kept.pop();
            }
            _ => {
                kept.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(raw.len() + 1);
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(out)
}

/// Whether `raw` (starting with `/`) is its own normal form, as nearly every request
/// path is: no percent-encoding, no forbidden byte, no empty segment but a last one (a
/// trailing slash), no `.` or `..` segment. One pass over the bytes, no allocation.
fn already_normal(raw: &[u8]) -> bool {
    let Some((b'/', mut rest)) = raw.split_first() else {
        return false;
    };
    loop {
        let end = memchr::memchr(b'/', rest).unwrap_or(rest.len());
        let segment = &rest[..end];
        if end < rest.len() && segment.is_empty() {
            return false; // `//`
        }
        if segment == b"." || segment == b".." {
            return false;
        }
        if segment.iter().any(|&b| b == b'%' || forbidden_byte(b)) {
            return false;
        }
        if end == rest.len() {
            return true;
        }
        rest = &rest[end + 1..];
    }
}

/// A byte that may not appear in a segment, raw or percent-decoded. A decoded `/` can
/// only come from `%2f`, since segments are split on raw slashes.
fn forbidden_byte(b: u8) -> bool {
    b == b'/' || b == b'\\' || b < 0x20 || b == 0x7f
}

/// Rewrites an upstream `Location` into the prefix the request came in on.
///
/// - an absolute path `/status` → `<prefix>/status`;
/// - an absolute `http`/`https` URL whose authority equals `upstream_authority` or
///   `client_host` (case-insensitive) → `<prefix><path-and-query>`;
/// - `//host/...` (network-path) and anything else (other hosts, relative paths like
///   `status`) → None: leave it unchanged.
///
/// Query and fragment are kept. Authorities are compared with the URL scheme's default
/// port (`:80`, `:443`) removed. The path's `.` and `..` segments (`%2e` spellings and
/// `\` separators included) are resolved as a browser would resolve them, without
/// climbing above the prefix: a browser following the rewritten `Location` stays in it.
pub fn rewrite_location(
    location: &str,
    prefix: &str,
    upstream_authority: &str,
    client_host: Option<&str>,
) -> Option<String> {
    if location.starts_with("//") {
        return None;
    }
    if location.starts_with('/') {
        return Some(in_prefix(prefix, location));
    }
    let (scheme, after) = location.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, tail) = after.split_at(end);
    let ours = same_authority(scheme, authority, upstream_authority)
        || client_host.is_some_and(|host| same_authority(scheme, authority, host));
    ours.then(|| in_prefix(prefix, tail))
}

/// `prefix` followed by `tail` (a path, empty or absolute, then any query and
/// fragment), the path resolved by [`resolve_dots`].
fn in_prefix(prefix: &str, tail: &str) -> String {
    let end = tail.find(['?', '#']).unwrap_or(tail.len());
    let (path, query_and_fragment) = tail.split_at(end);
    let mut out = String::with_capacity(prefix.len() + tail.len() + 1);
    out.push_str(prefix);
    resolve_dots(path, &mut out);
    out.push_str(query_and_fragment);
    out
}

/// Appends `path` (empty or starting with `/` or `\`) to `out` the way a browser
/// resolves an http(s) URL's path (WHATWG URL Standard, path state): tabs dropped,
/// `\` read as `/`, `.` and `..` segments (`%2e` counting as a dot, in any case)
/// resolved without climbing above the start, a trailing dot segment leaving a
/// trailing slash. Empty segments and every other byte are kept.
fn resolve_dots(path: &str, out: &mut String) {
    let untabbed;
    let path = if path.contains('\t') {
        untabbed = path.replace('\t', "");
        &untabbed
    } else {
        path
    };
    let mut kept: Vec<&str> = Vec::new();
    let mut segments = path.split(['/', '\\']).skip(1).peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match dots(segment) {
            0 => kept.push(segment),
            n => {
                if n == 2 {
                    kept.pop();
                }
                if last {
                    kept.push("");
                }
            }
        }
    }
    if kept.is_empty() {
        out.push('/');
    }
    for segment in kept {
        out.push('/');
        out.push_str(segment);
    }
}

/// 1 for a `.` segment, 2 for `..`, 0 for any other; `%2e` is a dot (WHATWG URL).
fn dots(segment: &str) -> u8 {
    const ONE: [&str; 2] = [".", "%2e"];
    const TWO: [&str; 4] = ["..", ".%2e", "%2e.", "%2e%2e"];
    let is = |spellings: &[&str]| spellings.iter().any(|d| segment.eq_ignore_ascii_case(d));
    if is(&ONE) {
        1
    } else if is(&TWO) {
        2
    } else {
        0
    }
}

/// True when two `host[:port]` authorities are equal, case-insensitively, once the
/// default port of `scheme` (`:80` for http/ws, `:443` for https/wss) is removed.
pub(crate) fn same_authority(scheme: &str, a: &str, b: &str) -> bool {
    let (a, b) = (strip_default_port(scheme, a), strip_default_port(scheme, b));
    !a.is_empty() && a.eq_ignore_ascii_case(b)
}

fn strip_default_port<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => ":80",
        "https" | "wss" => ":443",
        _ => return authority,
    };
    authority.strip_suffix(default).unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders a parse result: `workflow prefix rest`, `bare workflow prefix`, or the error.
    fn show(result: Result<Target, PathError>) -> String {
        match result {
            Ok(Target::Dashboard {
                workflow,
                prefix,
                rest,
            }) => format!("{workflow} {prefix} {rest}"),
            Ok(Target::Bare { workflow, prefix }) => format!("bare {workflow} {prefix}"),
            Err(error) => format!("{error:?}"),
        }
    }

    #[test]
    fn workflow_ids() {
        let (id64, id65) = (
            format!("a{}", "b".repeat(63)),
            format!("a{}", "b".repeat(64)),
        );
        let uuid = "3f2a9c1e-1b2c-4d5e-8f90-123456789abc";
        for id in ["a", "0", uuid, "A.b_c-d", "a..b", &id64] {
            assert!(valid_workflow_id(id), "{id:?}");
        }
        for id in [
            "", ".a", "-a", "_a", "..", "%2e%2e", "a%20b", "a/b", "é", &id65,
        ] {
            assert!(!valid_workflow_id(id), "{id:?}");
        }
    }

    #[test]
    fn parse_table() {
        let b63 = "b".repeat(63);
        let (p64, p65) = (
            format!("/dashboard/a{b63}/x"),
            format!("/dashboard/ab{b63}/x"),
        );
        let want64 = format!("a{b63} /dashboard/a{b63} /x");
        #[rustfmt::skip]
        let cases: &[(&str, &str)] = &[
            // Both forms, bare prefixes, the plain form winning over the reana form.
            ("/dashboard/a/status", "a /dashboard/a /status"),
            ("/a/dashboard/status", "a /a/dashboard /status"),
            ("/a/dashboard", "bare a /a/dashboard"),
            ("/a/dashboard/", "bare a /a/dashboard"),
            ("/dashboard/a", "bare a /dashboard/a"),
            ("/dashboard/a/", "bare a /dashboard/a"),
            ("/dashboard/a//", "bare a /dashboard/a"),
            ("/dashboard/a/./", "bare a /dashboard/a"),
            ("/dashboard/a/x/..", "bare a /dashboard/a"),
            ("/dashboard/dashboard/x", "dashboard /dashboard/dashboard /x"),
            ("/dashboard/dashboard", "bare dashboard /dashboard/dashboard"),
            ("/dashboard/a/status/", "a /dashboard/a /status/"),
            ("/dashboard/a/static/css/x.css", "a /dashboard/a /static/css/x.css"),
            ("/dashboard/a/x%20y/%41", "a /dashboard/a /x%20y/%41"),
            (&p64, &want64),
            (&p65, "InvalidWorkflow"),
            // Not dashboard paths.
            ("/", "NotDashboard"),
            ("", "NotDashboard"),
            ("*", "NotDashboard"),
            ("/favicon.ico", "NotDashboard"),
            ("/dashboard", "NotDashboard"),
            ("/dashboard/", "NotDashboard"),
            ("/dashboard//status", "NotDashboard"),
            ("//dashboard/status", "NotDashboard"),
            ("/a/Dashboard/status", "NotDashboard"),
            ("/a/b/dashboard", "NotDashboard"),
            // Invalid ids, checked raw.
            ("/dashboard/.a/status", "InvalidWorkflow"),
            ("/dashboard/-a/status", "InvalidWorkflow"),
            ("/dashboard/%2e%2e/status", "InvalidWorkflow"),
            ("/dashboard/%61/status", "InvalidWorkflow"),
            ("/../dashboard/status", "InvalidWorkflow"),
            ("/.a/dashboard/status", "InvalidWorkflow"),
            // Traversal stays under the prefix; empty and dot segments go.
            ("/dashboard/a/../../etc/passwd", "a /dashboard/a /etc/passwd"),
            ("/a/dashboard/../../etc/passwd", "a /a/dashboard /etc/passwd"),
            ("/dashboard/a/%2e%2e/%2E%2E/x", "a /dashboard/a /x"),
            ("/dashboard/a/x/.%2e/y", "a /dashboard/a /y"),
            ("/dashboard/a/x/%2E%2e/y/", "a /dashboard/a /y/"),
            ("/dashboard/a/x/%2e/y", "a /dashboard/a /x/y"),
            ("/dashboard/a/x/y/..", "a /dashboard/a /x/"),
            ("/dashboard/a/x/./", "a /dashboard/a /x/"),
            ("/dashboard/a//status", "a /dashboard/a /status"),
            ("/dashboard/a///x//y", "a /dashboard/a /x/y"),
            ("/dashboard/a/...", "a /dashboard/a /..."),
            ("/dashboard/a/%252e%252e/x", "a /dashboard/a /%252e%252e/x"),
            // Encoded separators and control bytes.
            ("/dashboard/a/..%2fb", "Forbidden"),
            ("/dashboard/a/x%2Fy", "Forbidden"),
            ("/dashboard/a/x%5cy", "Forbidden"),
            ("/dashboard/a/x%5Cy", "Forbidden"),
            ("/dashboard/a/x\\y", "Forbidden"),
            ("/dashboard/a/x%00", "Forbidden"),
            ("/dashboard/a/x%1F", "Forbidden"),
            ("/dashboard/a/x%7f", "Forbidden"),
            ("/dashboard/a/x\ty", "Forbidden"),
            ("/dashboard/a/x\0y", "Forbidden"),
            ("/a/dashboard/%2f", "Forbidden"),
        ];
        for (path, want) in cases {
            assert_eq!(show(parse(path, true)), *want, "{path:?}");
        }
    }

    #[test]
    fn reana_form_switch_and_accessors() {
        assert_eq!(
            show(parse("/dashboard/a/status", false)),
            "a /dashboard/a /status"
        );
        assert_eq!(show(parse("/dashboard/a", false)), "bare a /dashboard/a");
        assert_eq!(
            parse("/a/dashboard/status", false),
            Err(PathError::NotDashboard)
        );
        assert_eq!(parse("/a/dashboard", false), Err(PathError::NotDashboard));
        let t = parse("/x1/dashboard/status", true).expect("reana form");
        assert_eq!((t.workflow(), t.prefix()), ("x1", "/x1/dashboard"));
    }

    #[test]
    fn location_rewriting() {
        let (up, ex, ex80) = (
            "127.0.0.1:8787",
            Some("example.org"),
            Some("example.org:80"),
        );
        #[rustfmt::skip]
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            ("/status", None, Some("/p/status")),
            ("/status?x=1#f", None, Some("/p/status?x=1#f")),
            ("/", None, Some("/p/")),
            ("http://127.0.0.1:8787/status?x=1", None, Some("/p/status?x=1")),
            ("http://127.0.0.1:8787", None, Some("/p/")),
            ("http://127.0.0.1:8787?x", None, Some("/p/?x")),
            ("HTTP://Example.ORG/status", ex, Some("/p/status")),
            ("https://example.org:443/s#f", ex, Some("/p/s#f")),
            ("http://example.org/s", ex80, Some("/p/s")),
            ("https://example.org/s", ex80, None),
            ("http://example.org:8080/s", ex, None),
            ("HTTP://Example.ORG/status", None, None),
            ("http://user@127.0.0.1:8787/x", None, None),
            ("//evil/x", None, None),
            ("//127.0.0.1:8787/x", None, None),
            ("https://other/x", ex, None),
            ("status", None, None),
            ("../status", None, None),
            ("?x=1", None, None),
            ("ftp://127.0.0.1:8787/x", None, None),
            ("", None, None),
            // Dot segments resolve inside the prefix, as the browser would resolve them.
            ("/a/../../x", None, Some("/p/x")),
            ("http://127.0.0.1:8787/%2e%2e", None, Some("/p/")),
            ("/a/.%2E/b/./c?d=/../#/..", None, Some("/p/b/c?d=/../#/..")),
            ("/a/b/..", None, Some("/p/a/")),
            ("/a\\..\\..\\b", None, Some("/p/b")),
            ("/.\t./x", None, Some("/p/x")),
            ("/\\evil.example/x", None, Some("/p//evil.example/x")),
            ("/a//b/.../c.css", None, Some("/p/a//b/.../c.css")),
        ];
        for (location, host, want) in cases {
            let got = rewrite_location(location, "/p", up, *host);
            assert_eq!(got.as_deref(), *want, "{location:?} host={host:?}");
        }
        let got = rewrite_location("/status", "/w/dashboard", up, None);
        assert_eq!(got.as_deref(), Some("/w/dashboard/status"));
    }

    #[test]
    fn paths_already_normal_are_what_normalising_makes_of_them() {
        // Every path of up to 7 bytes over an alphabet with the bytes that matter.
        let alphabet = [b'/', b'a', b'.', b'%', b'2', b'\\'];
        let mut paths = vec![Vec::new()];
        let mut fast = 0;
        for _ in 0..7 {
            let mut longer = Vec::new();
            for path in &paths {
                for &b in &alphabet {
                    let mut p = path.clone();
                    p.push(b);
                    longer.push(p);
                }
            }
            for path in &longer {
                let mut raw = vec![b'/'];
                raw.extend_from_slice(path);
                let raw = String::from_utf8(raw).expect("ascii");
                if already_normal(raw.as_bytes()) {
                    fast += 1;
                    assert_eq!(normalise_segments(&raw), Ok(raw.clone()), "{raw}");
                }
                assert_eq!(
                    normalise(&raw).map(Cow::into_owned),
                    normalise_segments(&raw),
                    "{raw}"
                );
            }
            paths = longer;
        }
        assert!(fast > 1000, "{fast}");
        assert_eq!(normalise(""), Ok(Cow::Borrowed("/")));
    }
}

#[cfg(test)]
#[path = "path_props.rs"]
mod props;
