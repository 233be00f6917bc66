//! Properties of the gateway's cookie handling: `Cookie` headers are read as sent,
//! and the `Set-Cookie` it writes is exactly one cookie with exactly its attributes,
//! which the gateway reads back (and strips) on the next request.

use http::header::COOKIE;
use proptest::prelude::*;
use proptest::sample::select;

use super::*;
use crate::props::{ascii, chars, text};

/// RFC 6265 `cookie-octet`, said otherwise: visible ASCII but `"`, `,`, `;` and `\`.
fn cookie_octet(b: u8) -> bool {
    b.is_ascii_graphic() && !b"\",;\\".contains(&b)
}

/// RFC 9110 `token` characters, said otherwise: visible ASCII but the delimiters.
fn token_char(b: u8) -> bool {
    b.is_ascii_graphic() && !b"\"(),/:;<=>?@[\\]{}".contains(&b)
}

/// A cookie name, value or path: mostly valid, sometimes holding what would break
/// the header (separators, spaces, quotes, controls, non-ASCII).
fn part(valid: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => valid,
        1 => chars("az;= \"\t,\\\u{7f}\u{e9}\r\n", 0..6),
        1 => text(0..8),
    ]
}

/// A valid cookie name.
fn name() -> impl Strategy<Value = String> {
    ascii(token_char, 1..12)
}

/// A valid cookie value (possibly empty).
fn value(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    ascii(cookie_octet, len)
}

/// A path as a cookie's `Path` attribute may hold it.
fn path() -> impl Strategy<Value = String> {
    ascii(|b| b != b';', 0..20).prop_map(|p| format!("/{p}"))
}

proptest! {
    #![proptest_config(crate::props::config())]

    /// `cookie_pairs` gives back the pairs a header was made of, in order, quotes
    /// around a value removed, however the pieces are spaced.
    #[test]
    fn cookie_header_reads_back_its_pairs(
        pairs in proptest::collection::vec((name(), value(0..12), any::<bool>()), 0..8),
        separators in proptest::collection::vec(select(&[";", "; ", " ; ", ";\t"]), 8),
    ) {
        let mut header = String::new();
        for (i, (name, value, quoted)) in pairs.iter().enumerate() {
            if i > 0 {
                header.push_str(separators[i]);
            }
            let q = if *quoted { "\"" } else { "" };
            header.push_str(&format!("{name}={q}{value}{q}"));
        }
        let got: Vec<(&[u8], &[u8])> = cookie_pairs(header.as_bytes()).collect();
        let want: Vec<(&[u8], &[u8])> = pairs
            .iter()
            .map(|(n, v, _)| (n.as_bytes(), v.as_bytes()))
            .collect();
        if pairs.is_empty() {
            prop_assert_eq!(got, [(&b""[..], &b""[..])]);
        } else {
            prop_assert_eq!(got, want);
        }
    }

    /// `set_cookie` sets a cookie exactly when name, token and path are safe in a
    /// header; then it is one cookie with the documented attributes and nothing
    /// more, and a browser sending it back is recognised, and stripped upstream.
    #[test]
    fn set_cookie_is_one_cookie_read_back_as_sent(
        name in part(name()),
        token in part(value(1..40)),
        path in part(path()),
        secs in prop_oneof![0..100_000u64, any::<u64>()],
        nanos in 0..1_000_000_000u32,
        secure in any::<bool>(),
    ) {
        let max_age = Duration::new(secs, nanos);
        let cookie = set_cookie(&name, &token, &path, max_age, secure);
        let safe = !name.is_empty()
            && name.bytes().all(token_char)
            && !token.is_empty()
            && token.bytes().all(cookie_octet)
            && path.bytes().all(|b| b == b' ' || (b.is_ascii_graphic() && b != b';'));
        prop_assert_eq!(cookie.is_some(), safe, "{:?} {:?} {:?}", name, token, path);
        let Some(cookie) = cookie else {
            return Ok(());
        };

        let text = cookie.to_str().expect("a cookie is ASCII");
        let secure_attr = if secure { "; Secure" } else { "" };
        let want = format!(
            "{name}={token}; Path={path}; Max-Age={secs}; HttpOnly; SameSite=Lax{secure_attr}"
        );
        prop_assert_eq!(text, want.as_str());
        prop_assert_eq!(text.matches(';').count(), 4 + usize::from(secure));

        // What the browser sends back: the pair alone, next to another cookie (whose
        // name is longer than any valid name generated).
        let mut h = HeaderMap::new();
        let pair = HeaderValue::from_str(&format!("x-other-cookie=1; {name}={token}"));
        let pair = pair.expect("a safe pair");
        h.insert(COOKIE, pair);
        let found = extract(&h, None, &name);
        let found = found.as_ref().map(|c| (c.source(), c.secret()));
        prop_assert_eq!(found, Some((CredentialSource::GatewayCookie, token.as_str())));
        strip_request_credentials(&mut h, &name);
        prop_assert_eq!(h[COOKIE].as_bytes(), b"x-other-cookie=1");
    }
}
