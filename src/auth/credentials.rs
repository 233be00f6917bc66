//! Finding a credential in a request (SPEC §4 order), and removing every credential
//! before the request is forwarded upstream.

use std::fmt;
use std::time::Duration;

use http::header::{AUTHORIZATION, COOKIE, REFERER};
use http::{HeaderMap, HeaderValue};

use crate::proxy::headers::Survey;
use crate::proxy::raw::Fields;

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
    extract_surveyed(
        Fields::Map(headers),
        Survey::of(headers),
        query,
        gateway_cookie,
    )
}

/// [`extract`] for fields already surveyed: no lookup for a field the survey did not
/// see.
pub(crate) fn extract_surveyed(
    headers: Fields<'_>,
    survey: Survey,
    query: Option<&str>,
    gateway_cookie: &str,
) -> Option<Credential> {
    if survey.has(Survey::AUTHORIZATION) {
        if let Some(token) = headers.values(&AUTHORIZATION).find_map(bearer) {
            return Some(Credential::new(CredentialSource::Bearer, token));
        }
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
    if !survey.has(Survey::COOKIE) {
        return None;
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
fn bearer(value: &[u8]) -> Option<&str> {
    let (scheme, token) = visible_ascii(value)?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A value as text when it is visible ASCII and tabs only (as `HeaderValue::to_str`).
fn visible_ascii(value: &[u8]) -> Option<&str> {
    let visible = value.iter().fold(true, |ok, &b| {
        ok & ((b' '..0x7f).contains(&b) | (b == b'\t'))
    });
    // Only ASCII, so valid UTF-8.
    visible.then(|| std::str::from_utf8(value).ok()).flatten()
}

/// The first non-empty value of cookie `name` across all `Cookie` headers.
fn cookie<'a>(headers: Fields<'a>, name: &str) -> Option<&'a str> {
    headers.values(&COOKIE).find_map(|header| {
        cookie_pairs(header)
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
fn is_credential_param(param: &[u8]) -> bool {
    form_urlencoded::parse(param)
        .next()
        .is_some_and(|(name, _)| QUERY_NAMES.contains(&name.as_ref()))
}

/// The parameters of a raw query that are no credential and not empty, byte-for-byte
/// and in order (as [`strip_query`] keeps them, on bytes).
fn kept_params(query: &[u8]) -> impl Iterator<Item = &[u8]> {
    query
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty() && !is_credential_param(p))
}

/// Removes every `access_token` and `token` parameter from a raw query string, keeping
/// all other parameters byte-for-byte and in order (no re-encoding). Names are compared
/// after percent-decoding, so `acc%65ss_token` is removed too. Returns `None` when
/// nothing is left.
pub fn strip_query(query: &str) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !is_credential_param(p.as_bytes()))
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// True when the raw query has an `access_token` or `token` parameter (even an empty one).
pub fn query_has_credential(query: &str) -> bool {
    has_credential_param(query.as_bytes())
}

/// True when a raw `&`-separated list has an `access_token` or `token` parameter.
/// Such a name holds `token` as it is or some `%XX`: a list with neither is passed
/// over without being parsed.
fn has_credential_param(list: &[u8]) -> bool {
    let may_hold =
        memchr::memchr(b'%', list).is_some() || memchr::memmem::find(list, b"token").is_some();
    may_hold && list.split(|&b| b == b'&').any(is_credential_param)
}

/// A URL split at its first `#` and, before that, its first `?` (RFC 3986 §3):
/// everything before the query, the query, the fragment.
fn url_parts(url: &[u8]) -> (&[u8], Option<&[u8]>, Option<&[u8]>) {
    let (before, fragment) = match memchr::memchr(b'#', url) {
        Some(i) => (&url[..i], Some(&url[i + 1..])),
        None => (url, None),
    };
    match memchr::memchr(b'?', before) {
        Some(i) => (&before[..i], Some(&before[i + 1..]), fragment),
        None => (before, None, fragment),
    }
}

/// Whether a `Referer` carries a credential: an `access_token`/`token` parameter in its
/// query or in a fragment (where OAuth's implicit flow puts one).
fn referer_has_credential(referer: &[u8]) -> bool {
    // Nearly every Referer is a plain page URL: one scan, nothing parsed.
    if memchr::memchr2(b'?', b'#', referer).is_none() {
        return false;
    }
    let (_, query, fragment) = url_parts(referer);
    query.is_some_and(has_credential_param) || fragment.is_some_and(has_credential_param)
}

/// A `Referer` value as it is sent on: as it is without a credential, else as
/// [`stripped_referer`] leaves it; `None`: not sent.
pub(crate) fn stripped_referer_bytes(referer: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    if !referer_has_credential(referer) {
        return Some(std::borrow::Cow::Borrowed(referer));
    }
    stripped_referer_parts(referer).map(std::borrow::Cow::Owned)
}

/// A `Referer` without credentials: the query loses them as in [`strip_query`] (no `?`
/// when nothing is left), the fragment goes entirely (a Referer has none, RFC 9110
/// §10.1.3), the rest is kept byte-for-byte. `None` when nothing is left.
fn stripped_referer(referer: &[u8]) -> Option<HeaderValue> {
    // Pieces of a valid header value, so the result is one too.
    HeaderValue::from_maybe_shared(bytes::Bytes::from(stripped_referer_parts(referer)?)).ok()
}

/// The bytes of [`stripped_referer`].
fn stripped_referer_parts(referer: &[u8]) -> Option<Vec<u8>> {
    let (base, query, _) = url_parts(referer);
    let mut out = Vec::with_capacity(referer.len());
    out.extend_from_slice(base);
    for (i, param) in kept_params(query.unwrap_or_default()).enumerate() {
        out.push(if i == 0 { b'?' } else { b'&' });
        out.extend_from_slice(param);
    }
    (!out.is_empty()).then_some(out)
}

/// Removes credentials from every `Referer` header: the page a request came from is
/// often the dashboard URL a user opened with `?access_token=...`. Nothing is
/// allocated for a Referer without any.
fn strip_referer(headers: &mut HeaderMap) {
    let mut values = headers.get_all(REFERER).iter();
    if !values.any(|v| referer_has_credential(v.as_bytes())) {
        return;
    }
    let old: Vec<HeaderValue> = match headers.entry(REFERER) {
        http::header::Entry::Occupied(e) => e.remove_entry_mult().1.collect(),
        http::header::Entry::Vacant(_) => return,
    };
    for value in old {
        if !referer_has_credential(value.as_bytes()) {
            headers.append(REFERER, value);
        } else if let Some(stripped) = stripped_referer(value.as_bytes()) {
            headers.append(REFERER, stripped);
        }
    }
}

/// Removes the gateway cookie and REANA's `session` cookie from every `Cookie` header,
/// keeping the other cookies (joined with `"; "`) and dropping headers left empty.
/// Also removes `Authorization` entirely, and `access_token`/`token` parameters from
/// `Referer`. Headers with nothing to remove stay as sent.
pub fn strip_request_credentials(headers: &mut HeaderMap, gateway_cookie: &str) {
    strip_surveyed(headers, gateway_cookie, Survey::of(headers));
}

/// [`strip_request_credentials`] for fields already surveyed: no lookup for a field
/// the survey did not see.
pub(crate) fn strip_surveyed(headers: &mut HeaderMap, gateway_cookie: &str, survey: Survey) {
    if survey.has(Survey::AUTHORIZATION) {
        headers.remove(AUTHORIZATION);
    }
    if survey.has(Survey::REFERER) {
        strip_referer(headers);
    }
    if !survey.has(Survey::COOKIE) {
        return;
    }
    // One lookup: the entry is read, then rewritten in place.
    let http::header::Entry::Occupied(mut cookies) = headers.entry(COOKIE) else {
        return;
    };
    let touched = cookies
        .iter()
        .any(|h| has_secret_cookie(h.as_bytes(), gateway_cookie));
    if !touched {
        return;
    }
    // Nearly always one `Cookie` field: replaced (or removed) in place.
    if cookies.iter().nth(1).is_none() {
        match other_cookies(cookies.get().as_bytes(), gateway_cookie) {
            Some(kept) => {
                cookies.insert(kept);
            }
            None => {
                cookies.remove();
            }
        }
        return;
    }
    let old: Vec<HeaderValue> = cookies.remove_entry_mult().1.collect();
    for header in old {
        if let Some(kept) = other_cookies(header.as_bytes(), gateway_cookie) {
            headers.append(COOKIE, kept);
        }
    }
}

/// Whether a cookie of this name is a credential: the gateway's or REANA's session.
fn is_secret_cookie(name: &[u8], gateway_cookie: &str) -> bool {
    !name.is_empty()
        && (name == gateway_cookie.as_bytes() || name == REANA_SESSION_COOKIE.as_bytes())
}

/// Whether a `Cookie` value holds the gateway's or REANA's session cookie.
pub(crate) fn has_secret_cookie(value: &[u8], gateway_cookie: &str) -> bool {
    cookie_pairs(value).any(|(name, _)| is_secret_cookie(name, gateway_cookie))
}

/// The cookies of a `Cookie` value but the gateway's and REANA's, joined with
/// "; "; `None` when none is left.
pub(crate) fn other_cookie_bytes(value: &[u8], gateway_cookie: &str) -> Option<Vec<u8>> {
    let mut kept: Vec<u8> = Vec::new();
    for piece in pieces(value) {
        let piece = piece.trim_ascii();
        if piece.is_empty() || has_secret_cookie(piece, gateway_cookie) {
            continue;
        }
        if !kept.is_empty() {
            kept.extend_from_slice(b"; ");
        }
        kept.extend_from_slice(piece);
    }
    (!kept.is_empty()).then_some(kept)
}

/// [`other_cookie_bytes`] as a header value.
fn other_cookies(value: &[u8], gateway_cookie: &str) -> Option<HeaderValue> {
    // The pieces come from a valid header value, so joining them stays valid.
    HeaderValue::from_maybe_shared(bytes::Bytes::from(other_cookie_bytes(
        value,
        gateway_cookie,
    )?))
    .ok()
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
#[path = "credentials_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "credentials_props.rs"]
mod props;

#[cfg(test)]
#[path = "cookie_props.rs"]
mod cookie_props;
