//! Properties of `path.rs`: the request path normaliser never lets a path out of its
//! workflow's prefix, and a rewritten `Location` never sends a browser out of it.

use proptest::prelude::*;

use super::*;
use crate::props::{chars, joined, text};

/// Letters and digits, a few of each kind.
const ALNUM: &str = "ABCXYZabcxyz0189";

/// Both URL forms of a workflow's prefix: `/dashboard/<id>` and `/<id>/dashboard`.
fn prefix_of(workflow: &str, reana_form: bool) -> String {
    if reana_form {
        format!("/{workflow}/{DASHBOARD}")
    } else {
        format!("/{DASHBOARD}/{workflow}")
    }
}

/// A valid workflow id (SPEC §3), short most of the time.
fn workflow() -> impl Strategy<Value = String> {
    let id = |len| (chars(ALNUM, 1..2), chars("ABCXYZabcxyz0189._-", len));
    prop_oneof![
        4 => id(0..9).prop_map(|(first, rest)| first + &rest),
        1 => id(0..64).prop_map(|(first, rest)| first + &rest),
        1 => Just(DASHBOARD.to_owned()),
    ]
}

/// One path segment, biased towards what a traversal attempt is made of.
fn segment() -> impl Strategy<Value = String> {
    #[rustfmt::skip]
    const TRICKY: &[&str] = &[
        "", ".", "..", "...", "%2e", "%2E", "%2e%2e", ".%2e", "%2E.", "%2e%2E", "%252e%252e",
        "%2f", "%2F..", "%5c", "\\", "..\\..", "%00", "%7f", "\t", "dashboard", "a.b",
    ];
    prop_oneof![
        3 => proptest::sample::select(TRICKY).prop_map(str::to_owned),
        2 => chars("aZ09._~%-", 1..7),
        1 => any::<u8>().prop_map(|b| format!("%{b:02X}")),
        1 => text(1..5),
    ]
}

/// Segments joined into a path tail (empty, or starting with `/`).
fn tail() -> impl Strategy<Value = String> {
    proptest::collection::vec(segment(), 0..10).prop_map(|segments| {
        segments.iter().fold(String::new(), |mut tail, s| {
            tail.push('/');
            tail.push_str(s);
            tail
        })
    })
}

/// True when a segment, percent-decoded, is `.` or `..`.
fn is_dot_segment(segment: &str) -> bool {
    let decoded: Cow<'_, [u8]> = percent_decode_str(segment).into();
    matches!(&*decoded, b"." | b"..")
}

/// Everything a served path must satisfy, whatever it was made of.
fn check_target(path: &str, target: &Target) -> Result<(), TestCaseError> {
    let (workflow, prefix) = (target.workflow(), target.prefix());
    prop_assert!(valid_workflow_id(workflow), "{path:?}: id {workflow:?}");
    let forms = [prefix_of(workflow, false), prefix_of(workflow, true)];
    prop_assert!(forms.iter().any(|f| f == prefix), "{path:?}: {prefix:?}");
    // The prefix is whole segments of the path: `/dashboard/ab` is not workflow `a`.
    let after = path.strip_prefix(prefix);
    prop_assert!(
        after.is_some_and(|a| a.is_empty() || a.starts_with('/')),
        "{path:?}"
    );
    let Target::Dashboard { rest, .. } = target else {
        return Ok(());
    };
    prop_assert!(
        rest.starts_with('/') && !rest.contains("//"),
        "{path:?} -> {rest:?}"
    );
    prop_assert!(rest != "/", "{path:?}: a bare prefix is Bare");
    for segment in rest.split('/').skip(1) {
        prop_assert!(!is_dot_segment(segment), "{path:?} -> {rest:?}");
        let decoded: Cow<'_, [u8]> = percent_decode_str(segment).into();
        prop_assert!(!decoded.iter().any(|&b| forbidden_byte(b)), "{rest:?}");
    }
    // Normalising a normalised path changes nothing.
    let joined = format!("{prefix}{rest}");
    let again = parse(&joined, true);
    prop_assert_eq!(again.as_ref(), Ok(target), "{:?}", path);
    Ok(())
}

/// `..` steps back past no more than what stands before it: the kept segments of the
/// rest are the input's non-dot segments, in order, minus some.
fn check_kept_from_input(tail: &str, rest: &str) -> Result<(), TestCaseError> {
    let mut input = tail
        .split('/')
        .filter(|s| !s.is_empty() && !is_dot_segment(s));
    for kept in rest.split('/').filter(|s| !s.is_empty()) {
        prop_assert!(input.any(|s| s == kept), "{tail:?} -> {rest:?}");
    }
    Ok(())
}

/// A path the way a browser resolves it against the origin (WHATWG URL, for http and
/// https): tabs dropped, `\` read as `/`, `%2e` as `.`, then RFC 3986 §5.2.4
/// `remove_dot_segments`. Query and fragment are cut off.
fn browser_path(location: &str) -> String {
    let location = location.replace('\t', "");
    let end = location.find(['?', '#']).unwrap_or(location.len());
    let path = location[..end]
        .replace('\\', "/")
        .replace("%2e", ".")
        .replace("%2E", ".");
    let (mut input, mut output) = (path.as_str(), String::new());
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../").or(input.strip_prefix("./")) {
            input = rest;
        } else if input.starts_with("/./") || input == "/." {
            input = &input[2..];
            if input.is_empty() {
                input = "/";
            }
        } else if input.starts_with("/../") || input == "/.." {
            input = &input[3..];
            if input.is_empty() {
                input = "/";
            }
            output.truncate(output.rfind('/').unwrap_or(0));
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let next = input
                .char_indices()
                .skip(1)
                .find(|&(_, c)| c == '/')
                .map_or(input.len(), |(i, _)| i);
            output.push_str(&input[..next]);
            input = &input[next..];
        }
    }
    output
}

/// A `Location` a scheduler might send: paths (traversals included), absolute URLs on
/// its own, the client's or another authority, network paths, relative references and
/// anything at all.
fn location() -> impl Strategy<Value = String> {
    let authority = proptest::sample::select(&[
        "127.0.0.1:8787",
        "gw.example.org",
        "GW.example.org:443",
        "gw.example.org:80",
        "evil.example",
        "",
        "user@127.0.0.1:8787",
    ]);
    let scheme = proptest::sample::select(&["http", "HTTPS", "https", "ftp", "javascript"]);
    let query = || chars("az=&./%?#", 0..8);
    prop_oneof![
        3 => (tail(), query()).prop_map(|(t, q)| format!("/{}{q}", t.trim_start_matches('/'))),
        3 => (scheme, authority, tail(), query())
            .prop_map(|(s, a, t, q)| format!("{s}://{a}{t}{q}")),
        1 => tail().prop_map(|t| format!("/{t}")),
        1 => tail().prop_map(|t| t.trim_start_matches('/').to_owned()),
        1 => text(0..24),
    ]
}

/// Pieces request paths are made of.
#[rustfmt::skip]
const PATH_PIECES: &[&str] = &["/", "dashboard", "a", "W-1.x", "%2e", ".", "%2F", "\\", "%", "é"];

proptest! {
    #![proptest_config(crate::props::config())]

    /// No input makes the parser panic, and whatever it serves is well-formed.
    #[test]
    fn any_path_is_parsed_without_panic(
        path in prop_oneof![text(0..40), joined(PATH_PIECES, 0..16)],
        reana in any::<bool>(),
    ) {
        if let Ok(target) = parse(&path, reana) {
            check_target(&path, &target)?;
        }
    }

    /// Arbitrary bytes after a prefix, as a lossily decoded request path.
    #[test]
    fn any_bytes_after_a_prefix(
        workflow in workflow(),
        reana_form in any::<bool>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let prefix = prefix_of(&workflow, reana_form);
        let path = format!("{prefix}/{}", String::from_utf8_lossy(&bytes));
        if let Ok(target) = parse(&path, true) {
            check_target(&path, &target)?;
            prop_assert_eq!(target.workflow(), workflow.as_str());
        }
    }

    /// A path in either form is served for exactly its workflow, under exactly its
    /// prefix, unless a segment holds a forbidden byte; no `..` climbs out of it.
    #[test]
    fn paths_stay_under_their_prefix(
        workflow in workflow(),
        reana_form in any::<bool>(),
        tail in tail(),
    ) {
        let prefix = prefix_of(&workflow, reana_form);
        let path = format!("{prefix}{tail}");
        let forbidden = tail.split('/').any(|s| percent_decode_str(s).any(forbidden_byte));
        match parse(&path, true) {
            Err(PathError::Forbidden) => prop_assert!(forbidden, "{path:?}"),
            Err(other) => prop_assert!(false, "{path:?}: {other:?}"),
            Ok(target) => {
                prop_assert!(!forbidden, "{path:?}");
                check_target(&path, &target)?;
                prop_assert_eq!(target.workflow(), workflow.as_str());
                prop_assert_eq!(target.prefix(), prefix.as_str());
                if let Target::Dashboard { rest, .. } = &target {
                    check_kept_from_input(&tail, rest)?;
                }
            }
        }
        // Without the reana form, only the plain form is served.
        let plain = parse(&path, false);
        if reana_form && workflow != DASHBOARD {
            prop_assert_eq!(plain, Err(PathError::NotDashboard), "{:?}", path);
        } else {
            prop_assert_eq!(plain, parse(&path, true), "{:?}", path);
        }
    }

    /// A rewritten `Location` starts with the prefix the request came in on and, as a
    /// browser resolves it, still addresses that prefix and workflow.
    #[test]
    fn rewritten_locations_stay_in_the_prefix(
        workflow in workflow(),
        reana_form in any::<bool>(),
        location in location(),
        client_host in proptest::option::of(proptest::sample::select(&["gw.example.org", "x"])),
    ) {
        let prefix = prefix_of(&workflow, reana_form);
        let upstream = "127.0.0.1:8787";
        let Some(rewritten) = rewrite_location(&location, &prefix, upstream, client_host) else {
            return Ok(());
        };
        let inside = format!("{prefix}/");
        prop_assert!(rewritten.starts_with(&inside), "{location:?} -> {rewritten:?}");
        let resolved = browser_path(&rewritten);
        prop_assert!(
            resolved.starts_with(&inside),
            "{location:?} -> {rewritten:?} -> {resolved:?}"
        );
        match parse(&resolved, true) {
            Ok(target) => prop_assert_eq!(target.prefix(), prefix.as_str(), "{:?}", resolved),
            Err(error) => prop_assert_eq!(error, PathError::Forbidden, "{:?}", resolved),
        }
    }
}

#[test]
fn browser_path_resolves_like_rfc_3986() {
    for (location, want) in [
        ("/a/b/c/./../../g", "/a/g"),
        ("/a/../..", "/"),
        ("/a/.%2e/b", "/b"),
        ("/a/..%2e/b", "/a/.../b"),
        ("/a/.\t./b?x=/../", "/b"),
        ("/a\\..\\b#/..", "/b"),
        ("/a//b/", "/a//b/"),
        ("/a/b/..", "/a/"),
    ] {
        assert_eq!(browser_path(location), want, "{location:?}");
    }
}
