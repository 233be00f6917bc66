//! Finding a credential in a request (SPEC §4 order), and removing every credential
//! before the request is forwarded upstream.

use std::fmt;
use std::time::Duration;

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderValue};

/// REANA's own session cookie.
const REANA_SESSION_COOKIE: &str = "session";
/// Query parameters that carry a credential.
const QUERY_NAMES: [&str; 2] = ["access_token", "token"];

/// Where a credential was found (SPEC §4 order: Bearer, query `access_token`, query
/// `token`, gateway cookie, REANA `session` cookie).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// Query parameter `access_token`.
    QueryAccessToken,
    /// Query parameter `token`.
    QueryToken,
    /// The gateway's own cookie (`auth.cookie_name`).
    GatewayCookie,
    /// REANA's `session` cookie (only forwarded to reana-server).
    ReanaSession,
}

/// A credential taken from a request. `Debug` and `Display` never show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    source: CredentialSource,
    secret: String,
}

impl Credential {
    /// A credential found at `source`.
    pub fn new(source: CredentialSource, secret: impl Into<String>) -> Self {
        Credential {
            source,
            secret: secret.into(),
        }
    }

    /// Where the credential was found.
    pub fn source(&self) -> CredentialSource {
        self.source
    }

    /// The credential itself. Never log it.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// True when the credential came from the query string (the caller then sets the
    /// cookie and redirects to the URL without it).
    pub fn from_query(&self) -> bool {
        matches!(
            self.source,
            CredentialSource::QueryAccessToken | CredentialSource::QueryToken
        )
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("source", &self.source)
            .field("secret", &format_args!("<redacted>"))
            .finish()
    }
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} credential", self.source)
    }
}

/// The first credential in SPEC §4 order. `query` is the raw query string without
/// `?`; `gateway_cookie` is the name of the gateway's cookie.
///
/// Bearer: `Authorization: Bearer <t>` (scheme case-insensitive). Query values are
/// percent-decoded (`application/x-www-form-urlencoded`). Cookies are read from every
/// `Cookie` header (HTTP/2 may send one per cookie). Empty values are ignored.
pub fn extract(
    headers: &HeaderMap,
    query: Option<&str>,
    gateway_cookie: &str,
) -> Option<Credential> {
    if let Some(token) = headers.get_all(AUTHORIZATION).iter().find_map(bearer) {
        return Some(Credential::new(CredentialSource::Bearer, token));
    }
    if let Some(query) = query {
        let sources = [
            CredentialSource::QueryAccessToken,
            CredentialSource::QueryToken,
        ];
        for (name, source) in QUERY_NAMES.into_iter().zip(sources) {
            let found =
                form_urlencoded::parse(query.as_bytes()).find(|(k, v)| k == name && !v.is_empty());
            if let Some((_, value)) = found {
                return Some(Credential::new(source, value));
            }
        }
    }
    let sources = [
        (gateway_cookie, CredentialSource::GatewayCookie),
        (REANA_SESSION_COOKIE, CredentialSource::ReanaSession),
    ];
    for (name, source) in sources {
        if let Some(value) = cookie(headers, name) {
            return Some(Credential::new(source, value));
        }
    }
    None
}

/// The token of an `Authorization: Bearer <t>` header (RFC 6750 §2.1).
fn bearer(value: &HeaderValue) -> Option<&str> {
    let (scheme, token) = value.to_str().ok()?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The first non-empty value of cookie `name` across all `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(COOKIE).iter().find_map(|header| {
        cookie_pairs(header.as_bytes())
            .filter(|(n, _)| !n.is_empty() && *n == name.as_bytes())
            .find_map(|(_, v)| std::str::from_utf8(v).ok().filter(|v| !v.is_empty()))
    })
}

/// `name=value` pairs of one `Cookie` header (RFC 6265 §5.4), trimmed; a value in
/// double quotes loses them. A piece without `=` yields an empty name.
fn cookie_pairs(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    pieces(header).map(|piece| {
        let (name, value) = match memchr::memchr(b'=', piece) {
            Some(i) => (&piece[..i], &piece[i + 1..]),
            None => (&piece[..0], piece),
        };
        let value = value.trim_ascii();
        let value = match value {
            [b'"', inner @ .., b'"'] => inner,
            other => other,
        };
        (name.trim_ascii(), value)
    })
}

/// The `;`-separated pieces of one `Cookie` header, untrimmed. memchr finds the
/// separators many bytes at a time: a gateway cookie holds a JWT of a few hundred
/// bytes, looked at on every request.
fn pieces(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(header);
    std::iter::from_fn(move || {
        let left = rest?;
        Some(match memchr::memchr(b';', left) {
            Some(i) => {
                rest = Some(&left[i + 1..]);
                &left[..i]
            }
            None => {
                rest = None;
                left
            }
        })
    })
}

/// Whether one raw `name[=value]` query parameter carries a credential; the name is
/// compared after percent-decoding.
fn is_credential_param(param: &str) -> bool {
    form_urlencoded::parse(param.as_bytes())
        .next()
        .is_some_and(|(name, _)| QUERY_NAMES.contains(&name.as_ref()))
}

/// Removes every `access_token` and `token` parameter from a raw query string, keeping
/// all other parameters byte-for-byte and in order (no re-encoding). Names are compared
/// after percent-decoding, so `acc%65ss_token` is removed too. Returns `None` when
/// nothing is left.
pub fn strip_query(query: &str) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !is_credential_param(p))
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// True when the raw query has an `access_token` or `token` parameter (even an empty one).
pub fn query_has_credential(query: &str) -> bool {
    query.split('&').any(is_credential_param)
}

/// Removes the gateway cookie and REANA's `session` cookie from every `Cookie` header,
/// keeping the other cookies (joined with `"; "`) and dropping headers left empty.
/// Also removes `Authorization` entirely. Headers with nothing to remove stay as sent.
pub fn strip_request_credentials(headers: &mut HeaderMap, gateway_cookie: &str) {
    headers.remove(AUTHORIZATION);
    let secret = |name: &[u8]| {
        !name.is_empty()
            && (name == gateway_cookie.as_bytes() || name == REANA_SESSION_COOKIE.as_bytes())
    };
    let touched = headers
        .get_all(COOKIE)
        .iter()
        .any(|h| cookie_pairs(h.as_bytes()).any(|(n, _)| secret(n)));
    if !touched {
        return;
    }
    let old: Vec<HeaderValue> = match headers.entry(COOKIE) {
        http::header::Entry::Occupied(e) => e.remove_entry_mult().1.collect(),
        http::header::Entry::Vacant(_) => return,
    };
    for header in old {
        // The other cookies, joined with "; " (nothing is allocated when none is left).
        let mut kept: Vec<u8> = Vec::new();
        for piece in pieces(header.as_bytes()) {
            let piece = piece.trim_ascii();
            if piece.is_empty() || cookie_pairs(piece).any(|(n, _)| secret(n)) {
                continue;
            }
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(piece);
        }
        if kept.is_empty() {
            continue;
        }
        // The pieces come from a valid header value, so joining them stays valid.
        if let Ok(value) = HeaderValue::from_maybe_shared(bytes::Bytes::from(kept)) {
            headers.append(COOKIE, value);
        }
    }
}

/// RFC 6265 §4.1.1 `cookie-octet`.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// RFC 9110 §5.6.2 `tchar` (a cookie name is a token).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A `Set-Cookie` value: `<name>=<token>; Path=<path>; Max-Age=<secs>; HttpOnly;
/// SameSite=Lax`, plus `; Secure` when `secure`. Returns `None` (set no cookie) when the
/// token is empty or has characters outside RFC 6265 `cookie-octet`, the name is not a
/// token, or the path has `;` or control characters.
pub fn set_cookie(
    name: &str,
    token: &str,
    path: &str,
    max_age: Duration,
    secure: bool,
) -> Option<HeaderValue> {
    let name_ok = !name.is_empty() && name.bytes().all(is_tchar);
    let token_ok = !token.is_empty() && token.bytes().all(is_cookie_octet);
    let path_ok = path.bytes().all(|b| b != b';' && (0x20..0x7F).contains(&b));
    if !(name_ok && token_ok && path_ok) {
        return None;
    }
    let secure = if secure { "; Secure" } else { "" };
    let value = format!(
        "{name}={token}; Path={path}; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        max_age.as_secs()
    );
    HeaderValue::from_str(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: &str = "gw";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            let name = http::header::HeaderName::from_bytes(name.as_bytes()).expect("name");
            h.append(name, HeaderValue::from_str(value).expect("value"));
        }
        h
    }

    fn found(h: &HeaderMap, q: Option<&str>) -> Option<(CredentialSource, String)> {
        extract(h, q, GW).map(|c| (c.source(), c.secret().to_string()))
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_a_token() {
        use CredentialSource::Bearer;
        let got = |v| found(&headers(&[("authorization", v)]), None);
        assert_eq!(got("Bearer abc"), Some((Bearer, "abc".into())));
        assert_eq!(got("bEaReR  abc "), Some((Bearer, "abc".into())));
        assert_eq!(got("Bearer "), None);
        assert_eq!(got("Basic dXNlcjpwdw=="), None);
        assert_eq!(got("Bearerabc"), None);
    }

    #[test]
    fn sources_in_spec_order() {
        use CredentialSource::*;
        let all = [
            ("authorization", "Bearer b"),
            ("cookie", "gw=c"),
            ("cookie", "session=s"),
        ];
        let q = Some("token=t&access_token=a");
        assert_eq!(found(&headers(&all), q), Some((Bearer, "b".into())));
        assert_eq!(
            found(&headers(&all[1..]), q),
            Some((QueryAccessToken, "a".into()))
        );
        assert_eq!(
            found(&headers(&all[1..]), Some("x=1&token=t")),
            Some((QueryToken, "t".into()))
        );
        assert_eq!(
            found(&headers(&all[1..]), Some("x=1")),
            Some((GatewayCookie, "c".into()))
        );
        assert_eq!(
            found(&headers(&all[2..]), None),
            Some((ReanaSession, "s".into()))
        );
        assert_eq!(found(&headers(&[]), Some("x=1")), None);
    }

    #[test]
    fn query_values_are_percent_decoded_and_empty_ones_skipped() {
        let h = headers(&[("cookie", "gw=c")]);
        assert_eq!(
            found(&h, Some("access_token=a%2Bb%3D&token=t")),
            Some((CredentialSource::QueryAccessToken, "a+b=".into()))
        );
        assert_eq!(
            found(&h, Some("access_token=&token=")),
            Some((CredentialSource::GatewayCookie, "c".into()))
        );
    }

    #[test]
    fn cookies_from_several_headers() {
        let h = headers(&[
            ("cookie", "a=1; gw="),
            ("cookie", "session=s"),
            ("cookie", "b=2;  gw = \"tok\" ;c=3"),
        ]);
        let c = extract(&h, None, GW).expect("cookie found");
        assert_eq!(c.source(), CredentialSource::GatewayCookie);
        assert_eq!(c.secret(), "tok");
        assert!(!c.from_query());
        let h = headers(&[("cookie", "xgw=1; gwx=2"), ("cookie", "session=s")]);
        assert_eq!(
            found(&h, None),
            Some((CredentialSource::ReanaSession, "s".into()))
        );
    }

    #[test]
    fn strip_query_keeps_others_verbatim() {
        assert_eq!(
            strip_query("a=1&access_token=x&b=%20&token=y").as_deref(),
            Some("a=1&b=%20")
        );
        assert_eq!(
            strip_query("acc%65ss_token=x&b=2&t%6Fken").as_deref(),
            Some("b=2")
        );
        assert_eq!(
            strip_query("tokens=1&x=a+b&&").as_deref(),
            Some("tokens=1&x=a+b")
        );
        assert_eq!(strip_query("access_token=x&token="), None);
        assert_eq!(strip_query(""), None);
    }

    #[test]
    fn query_has_credential_detects_encoded_names() {
        assert!(query_has_credential("a=1&token="));
        assert!(query_has_credential("%61ccess_token=x"));
        assert!(!query_has_credential("tokens=1&my_token=2"));
    }

    #[test]
    fn strip_request_credentials_keeps_other_cookies() {
        let mut h = headers(&[
            ("authorization", "Bearer b"),
            ("cookie", "a=1; gw=t"),
            ("cookie", "session=s"),
            ("cookie", "b=2;session=s;c=3"),
            ("x-other", "kept"),
        ]);
        strip_request_credentials(&mut h, GW);
        assert!(h.get(AUTHORIZATION).is_none());
        let cookies: Vec<_> = h.get_all(COOKIE).iter().collect();
        assert_eq!(cookies, ["a=1", "b=2; c=3"]);
        assert_eq!(h["x-other"], "kept");
        assert_eq!(extract(&h, None, GW), None);

        let mut h = headers(&[("cookie", "a=1;b=2")]);
        strip_request_credentials(&mut h, GW);
        assert_eq!(h[COOKIE], "a=1;b=2");
    }

    #[test]
    fn debug_and_display_hide_the_secret() {
        let c = Credential::new(CredentialSource::Bearer, "s3cr3t-value");
        let debug = format!("{c:?}");
        assert_eq!(debug, "Credential { source: Bearer, secret: <redacted> }");
        assert!(!format!("{c}").contains("s3cr3t"));
        assert!(Credential::new(CredentialSource::QueryToken, "x").from_query());
    }

    #[test]
    fn set_cookie_attributes() {
        let max_age = Duration::from_secs(3600);
        let v = set_cookie("gw", "a.b-c_d", "/w1/", max_age, true).expect("valid");
        assert_eq!(
            v,
            "gw=a.b-c_d; Path=/w1/; Max-Age=3600; HttpOnly; SameSite=Lax; Secure"
        );
        let v = set_cookie("gw", "tok", "/", max_age, false).expect("valid");
        assert_eq!(v, "gw=tok; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax");
    }

    #[test]
    fn set_cookie_rejects_unsafe_values() {
        let d = Duration::from_secs(60);
        assert!(set_cookie("gw", "a;b", "/", d, true).is_none());
        assert!(set_cookie("gw", "a b", "/", d, true).is_none());
        assert!(set_cookie("gw", "a\"b", "/", d, true).is_none());
        assert!(set_cookie("gw", "", "/", d, true).is_none());
        assert!(set_cookie("g w", "tok", "/", d, true).is_none());
        assert!(set_cookie("gw", "tok", "/x;Domain=evil", d, true).is_none());
    }
}
