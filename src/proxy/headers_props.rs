//! Properties of the WebSocket Origin check: no input makes it panic, and an origin
//! on another host or port than the request's is allowed only when it is listed.

use proptest::prelude::*;
use proptest::sample::select;

use super::*;
use crate::props::{ascii, header_value, text};

/// Hosts, some of them near others (a suffix, a prefix, another case).
const HOSTS: &[&str] = &[
    "gw.example.org",
    "GW.Example.ORG",
    "gw.example.org.evil.example",
    "xgw.example.org",
    "evil.example",
    "127.0.0.1",
    "[::1]",
    "[::1",
    "a:b",
    "",
];

/// `host[:port]`, ports default, explicit, empty or not numeric.
fn authority() -> impl Strategy<Value = String> {
    let ports = select(&["", "", ":80", ":443", ":8080", ":", ":x"]);
    (select(HOSTS), ports).prop_map(|(h, p)| format!("{h}{p}"))
}

/// An `Origin` value: a serialised origin, sometimes bent (a path, userinfo, a
/// fragment, spaces), `null`, or anything at all.
fn origin() -> impl Strategy<Value = String> {
    let scheme = select(&["http", "https", "HTTPS", "ws", "ftp", "1http", ""]);
    #[rustfmt::skip]
    const TAILS: &[&str] = &["", "", "", "/", "@evil.example", "#x", "?x", " ", "\t", "\\x"];
    let tail = select(TAILS);
    let lead = select(&["", "", "", "u@", " "]);
    prop_oneof![
        6 => (scheme, lead, authority(), tail).prop_map(|(s, l, a, t)| format!("{s}://{l}{a}{t}")),
        1 => Just("null".to_owned()),
        1 => ascii(|_| true, 0..24),
    ]
}

/// The host part of `host[:port]`, lowercased: an IPv6 literal up to its `]`, else up
/// to the first `:`.
fn host_name(authority: &str) -> String {
    let end = match authority.strip_prefix('[') {
        Some(rest) => rest.find(']').map_or(authority.len(), |i| i + 2),
        None => authority.find(':').unwrap_or(authority.len()),
    };
    authority[..end].to_ascii_lowercase()
}

/// The port `host[:port]` names, else the scheme's default (`None`: unknown).
fn port(scheme: &str, authority: &str) -> Option<u16> {
    let after_host = &authority[host_name(authority).len()..];
    match after_host.rsplit_once(':') {
        Some((_, port)) => port.parse().ok(),
        None => match scheme.to_ascii_lowercase().as_str() {
            "http" | "ws" => Some(80),
            "https" | "wss" => Some(443),
            _ => None,
        },
    }
}

proptest! {
    #![proptest_config(crate::props::config())]

    /// No Origin, Host or list makes the check panic.
    #[test]
    fn any_origin_is_checked_without_panic(
        origin in proptest::option::of(prop_oneof![text(0..24), origin()]),
        host in proptest::option::of(prop_oneof![text(0..16), authority()]),
        allowed in proptest::collection::vec(text(0..16), 0..3),
    ) {
        let origin = origin.as_deref().map(header_value);
        let _ = origin_allowed(origin.as_ref(), host.as_deref(), &allowed);
    }

    /// An origin that is not listed is allowed only when it names the request's own
    /// host, and the same port where both ports are known.
    #[test]
    fn foreign_origins_are_refused_unless_listed(
        origin in origin(),
        host in proptest::option::of(authority().prop_map(|a| format!(" {a}"))),
        allowed in proptest::collection::vec(origin(), 0..3),
    ) {
        let got = origin_allowed(Some(&header_value(&origin)), host.as_deref(), &allowed);
        let trimmed = origin.trim();
        let listed = allowed.iter().any(|a| a.eq_ignore_ascii_case(trimmed));
        if !got || listed {
            return Ok(());
        }
        let host = host.as_deref().map(str::trim);
        prop_assert!(host.is_some(), "{origin:?} allowed without a Host");
        let host = host.unwrap_or_default();
        let (scheme, authority) = trimmed.split_once("://").unwrap_or_default();
        prop_assert_eq!(host_name(authority), host_name(host), "{:?} for Host {:?}", origin, host);
        if let (Some(a), Some(b)) = (port(scheme, authority), port(scheme, host)) {
            prop_assert_eq!(a, b, "{:?} for Host {:?}", origin, host);
        }
    }

    /// The request's own origin, in any case, and a listed origin are allowed.
    #[test]
    fn own_and_listed_origins_are_allowed(
        https in any::<bool>(),
        host in select(&["gw.example.org", "127.0.0.1:8080", "[::1]:8787", "GW.example.org"]),
        upper in any::<bool>(),
        listed in select(&["https://reana.example.org", "http://127.0.0.1:9000"]),
    ) {
        let scheme = if https { "https" } else { "http" };
        let own = format!("{scheme}://{host}");
        let own = if upper { own.to_ascii_uppercase() } else { own.to_ascii_lowercase() };
        let allowed = [listed.to_owned()];
        prop_assert!(origin_allowed(Some(&header_value(&own)), Some(host), &allowed), "{}", own);
        let listed = if upper { listed.to_ascii_uppercase() } else { listed.to_owned() };
        prop_assert!(origin_allowed(Some(&header_value(&listed)), Some(host), &allowed));
        prop_assert!(origin_allowed(Some(&header_value(&listed)), None, &allowed));
    }
}
