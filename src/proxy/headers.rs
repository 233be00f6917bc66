//! Header helpers for the proxy, as pure functions over `http` types: hop-by-hop removal,
//! upgrade detection, forwarding headers, request ids and the WebSocket Origin check.

use std::net::IpAddr;

use http::header::{
    ACCEPT, CONNECTION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING,
    UPGRADE,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::path::same_authority;
use super::raw::Fields;

/// `X-Forwarded-For` (de facto standard, appended to).
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto` (de facto standard, replaced).
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host` (de facto standard, replaced).
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Forwarded-Prefix` (de facto standard, replaced).
const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
/// `X-Request-Id` (honoured when well-formed, SPEC §6).
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Hop-by-hop headers always removed (RFC 9110 §7.6.1; `Keep-Alive` and the non-standard
/// `Proxy-Connection` are HTTP/1.0 leftovers, RFC 9112 Appendix C.2.2).
/// Names, not strings: a lookup by name hashes without parsing it first.
const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
];

/// The longest request id taken from a client.
const MAX_REQUEST_ID: usize = 128;

/// Which of the fields the proxy reads or rewrites a request has, found in one pass
/// over its names. A field the survey did not see is absent, and the helpers that
/// take a survey skip their lookups for it: most requests carry none of the
/// forwarding, hop-by-hop or credential fields but a cookie.
///
/// A survey holds while fields are only removed from its map (a set bit may then
/// name a field that is gone, which costs a lookup and nothing else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Survey(u16);

impl Survey {
    /// `Connection`.
    pub const CONNECTION: u16 = 1;
    /// `Upgrade`.
    pub const UPGRADE: u16 = 1 << 1;
    /// Any of the always-removed hop-by-hop fields (`Connection` and `Upgrade` too).
    pub const HOP_BY_HOP: u16 = 1 << 2;
    /// `Accept`.
    pub const ACCEPT: u16 = 1 << 3;
    /// `Authorization`.
    pub const AUTHORIZATION: u16 = 1 << 4;
    /// `Cookie`.
    pub const COOKIE: u16 = 1 << 5;
    /// `Referer`.
    pub const REFERER: u16 = 1 << 6;
    /// `X-Forwarded-For`.
    pub const FORWARDED_FOR: u16 = 1 << 7;
    /// Any of the gateway's own fields ([`Added`]): the forwarding ones and `X-Request-Id`.
    pub const ADDED: u16 = 1 << 8;
    /// `X-Request-Id`.
    pub const REQUEST_ID: u16 = 1 << 9;

    /// `Host`.
    pub const HOST: u16 = 1 << 10;

    /// The survey of `headers`.
    pub fn of(headers: &HeaderMap) -> Survey {
        Survey::of_names(headers.keys().map(|name| name.as_str().as_bytes()))
    }

    /// The survey of field names as sent (any case).
    pub(crate) fn of_names<'a>(names: impl Iterator<Item = &'a [u8]>) -> Survey {
        Survey(names.fold(0, |bits, name| bits | Survey::bits(name)))
    }

    /// Whether a field of `bit` may be present.
    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }

    /// What a field named `name` (a token, any case) is to the proxy: the bits of
    /// the survey it sets.
    pub(crate) fn bits(name: &[u8]) -> u16 {
        let is = |known: &str| name_is(name, known);
        let hop = Survey::HOP_BY_HOP;
        // By length first: most names are ruled out by it, the rest by one or two
        // comparisons.
        match name.len() {
            2 if is("te") => hop,
            4 if is("host") => Survey::HOST,
            6 if is("cookie") => Survey::COOKIE,
            6 if is("accept") => Survey::ACCEPT,
            7 if is("referer") => Survey::REFERER,
            7 if is("upgrade") => Survey::UPGRADE | hop,
            7 if is("trailer") => hop,
            10 if is("connection") => Survey::CONNECTION | hop,
            10 if is("keep-alive") => hop,
            12 if is("x-request-id") => Survey::REQUEST_ID | Survey::ADDED,
            13 if is("authorization") => Survey::AUTHORIZATION,
            15 if is("x-forwarded-for") => Survey::FORWARDED_FOR | Survey::ADDED,
            16 if is("x-forwarded-host") => Survey::ADDED,
            16 if is("proxy-connection") => hop,
            17 if is("x-forwarded-proto") => Survey::ADDED,
            17 if is("transfer-encoding") => hop,
            18 if is("x-forwarded-prefix") => Survey::ADDED,
            18 if is("proxy-authenticate") => hop,
            19 if is("proxy-authorization") => hop,
            _ => 0,
        }
    }
}

/// Whether a field name (a token, any case; or any bytes a field value may hold)
/// is `lower`, a name of lower-case letters, digits and `-`.
///
/// Those all have 0x20 set, and of the bytes a name or value may hold only an
/// upper-case letter turns into one of them when 0x20 is set (into its lower-case
/// letter; CR, which would turn into `-`, and the controls that would turn into
/// digits are in neither), so `b | 0x20 == l` compares without regard to case.
/// Eight bytes at a time.
pub(crate) fn name_is(name: &[u8], lower: &str) -> bool {
    let lower = lower.as_bytes();
    if name.len() != lower.len() {
        return false;
    }
    let word = |bytes: &[u8]| {
        let mut eight = [0u8; 8];
        eight[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(eight)
    };
    let mut diff = 0;
    for (a, l) in name.chunks(8).zip(lower.chunks(8)) {
        // The padding of a short last chunk is zero on both sides; 0x20 is set
        // only in the name's bytes.
        let mask = word(&[0x20; 8][..a.len()]);
        diff |= (word(a) | mask) ^ word(l);
    }
    diff == 0
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1): Connection, Keep-Alive,
/// Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-Authenticate,
/// Proxy-Authorization, and every header named in any Connection header's
/// comma-separated list (case-insensitive, trimmed).
///
/// A client can name any header in `Connection`, so call this before adding the
/// gateway's own headers (e.g. [`set_forwarded`]).
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none (or only `Connection`): one pass over the names
    // instead of a lookup per hop-by-hop name.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(list_items)
        .filter(|token| names_another_field(token))
        .filter_map(|token| HeaderName::from_bytes(token).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Whether `name` (any case) is one of the always-removed hop-by-hop field names.
pub(crate) fn is_hop_by_hop(name: &[u8]) -> bool {
    Survey::bits(name) & Survey::HOP_BY_HOP != 0
}

/// Whether a `Connection` option names a field to remove besides the always-removed
/// ones: not `close`, not a hop-by-hop name (`keep-alive` and `close` are nearly all
/// there is, and cost no lookup).
pub(crate) fn names_another_field(option: &[u8]) -> bool {
    !option.eq_ignore_ascii_case(b"close") && !is_hop_by_hop(option)
}

/// True when the request asks for a WebSocket upgrade: method GET, `Connection` contains
/// token `upgrade` (case-insensitive, comma list, several headers possible) and `Upgrade`
/// contains `websocket` (case-insensitive).
///
/// `Connection` is RFC 9110 §7.6.1, `Upgrade` RFC 9110 §7.8 (a protocol may carry a
/// `/version`, which is ignored); the WebSocket handshake itself is RFC 6455 §4.1.
pub fn is_websocket_upgrade(method: &Method, headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(list_items)
        .any(|token| token.eq_ignore_ascii_case(b"upgrade"));
    let upgrade_websocket = headers
        .get_all(UPGRADE)
        .iter()
        .flat_map(list_items)
        .any(|protocol| {
            let name = protocol.split(|&b| b == b'/').next().unwrap_or(protocol);
            name.eq_ignore_ascii_case(b"websocket")
        });
    method == Method::GET && connection_upgrade && upgrade_websocket
}

/// The gateway's own fields of a forwarded request, set after the client's: the
/// four forwarding fields and `X-Request-Id`. `None`: left out (a value that is no
/// valid header value).
/// Values only, in the order of `ADDED_NAMES`: the names are constants, and a
/// smaller value is less to move into each request's futures.
#[derive(Debug)]
pub(crate) struct Added([Option<HeaderValue>; 5]);

impl Added {
    /// Nothing added (requests the proxy did not prepare, in tests).
    #[cfg(test)]
    pub(crate) fn none() -> Added {
        Added([const { None }; 5])
    }

    /// Writes `name: value\r\n` for each field, as the request head's last fields.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        for (name, value) in ADDED_NAMES.iter().zip(&self.0) {
            if let Some(value) = value {
                out.extend_from_slice(name.as_str().as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// Puts the fields into `headers` (whose own fields of these names are gone).
    pub(crate) fn insert_into(self, headers: &mut HeaderMap) {
        for (name, value) in ADDED_NAMES.into_iter().zip(self.0) {
            if let Some(value) = value {
                headers.insert(name, value);
            }
        }
    }
}

/// The names of [`Added`]'s fields, in their order.
const ADDED_NAMES: [HeaderName; 5] = [
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    X_FORWARDED_PREFIX,
    X_REQUEST_ID,
];

/// The gateway's fields for a forwarded request: X-Forwarded-For (`client_ip`
/// appended to the client's values `forwarded_for`, comma-separated),
/// X-Forwarded-Proto (`proto`), X-Forwarded-Host (the client's Host; none when
/// None), X-Forwarded-Prefix (`prefix`) and X-Request-Id (`request_id`). They
/// replace the client's own fields of these names.
///
/// These are the de facto counterparts of RFC 7239 `Forwarded`; the client's `Host`
/// itself (RFC 9110 §7.2) is left untouched.
pub(crate) fn added_fields<'v>(
    forwarded_for: impl Iterator<Item = &'v [u8]>,
    client_ip: IpAddr,
    proto: &str,
    host: Option<&HeaderValue>,
    prefix: &str,
    request_id: &HeaderValue,
) -> Added {
    let ip = IpText::new(client_ip);
    let mut listed = forwarded_for
        .map(<[u8]>::trim_ascii)
        .filter(|value| !value.is_empty())
        .peekable();
    let forwarded_for = if listed.peek().is_none() {
        HeaderValue::from_str(ip.as_str()).ok()
    } else {
        let mut chain: Vec<u8> = Vec::with_capacity(64);
        for value in listed {
            chain.extend_from_slice(value);
            chain.extend_from_slice(b", ");
        }
        chain.extend_from_slice(ip.as_str().as_bytes());
        // A listed value that is no valid header value leaves just the client's address.
        HeaderValue::from_maybe_shared(bytes::Bytes::from(chain))
            .or_else(|_| HeaderValue::from_str(ip.as_str()))
            .ok()
    };
    let proto = match proto {
        "http" => Ok(HeaderValue::from_static("http")),
        "https" => Ok(HeaderValue::from_static("https")),
        other => HeaderValue::from_str(other),
    };
    Added([
        forwarded_for,
        proto.ok(),
        host.cloned(),
        HeaderValue::from_str(prefix).ok(),
        Some(request_id.clone()),
    ])
}

/// The client's values of `X-Forwarded-For` when the survey saw one.
pub(crate) fn forwarded_for(headers: &HeaderMap, survey: Survey) -> impl Iterator<Item = &[u8]> {
    survey
        .has(Survey::FORWARDED_FOR)
        .then(|| headers.get_all(&X_FORWARDED_FOR).iter())
        .into_iter()
        .flatten()
        .map(HeaderValue::as_bytes)
}

/// Takes the client's fields of the names of [`Added`] out of `headers` (when the
/// survey saw one: a lookup per name otherwise).
pub(crate) fn remove_added(headers: &mut HeaderMap, survey: Survey) {
    if survey.has(Survey::ADDED) {
        for name in &ADDED_NAMES {
            headers.remove(name);
        }
    }
}

/// Sets the fields of [`added_fields`] in `headers`, replacing the client's: what
/// the proxy does to a WebSocket handshake it forwards (a plain request gets them
/// written after the client's fields instead).
pub fn set_forwarded(
    headers: &mut HeaderMap,
    client_ip: IpAddr,
    proto: &str,
    host: Option<&HeaderValue>,
    prefix: &str,
    request_id: &HeaderValue,
) {
    let survey = Survey::of(headers);
    let added = added_fields(
        forwarded_for(headers, survey),
        client_ip,
        proto,
        host,
        prefix,
        request_id,
    );
    remove_added(headers, survey);
    added.insert_into(headers);
}

/// The text of an address, as `Display` writes it, without the general formatting
/// machinery for IPv4 (an address is written into every forwarded request and every
/// access line).
#[derive(Clone, Copy)]
pub(crate) struct IpText {
    bytes: [u8; IpText::MAX],
    len: usize,
}

impl IpText {
    /// The longest text: an IPv6 address with an embedded IPv4 one.
    const MAX: usize = 45;

    pub(crate) fn new(ip: IpAddr) -> IpText {
        let mut bytes = [0u8; IpText::MAX];
        let len = match ip {
            IpAddr::V4(v4) => {
                let mut at = 0;
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        bytes[at] = b'.';
                        at += 1;
                    }
                    if octet >= 100 {
                        bytes[at] = b'0' + octet / 100;
                        at += 1;
                    }
                    if octet >= 10 {
                        bytes[at] = b'0' + octet / 10 % 10;
                        at += 1;
                    }
                    bytes[at] = b'0' + octet % 10;
                    at += 1;
                }
                at
            }
            IpAddr::V6(v6) => {
                use std::io::Write as _;
                let mut rest = &mut bytes[..];
                // 45 bytes hold every IPv6 text form.
                let _ = write!(rest, "{v6}");
                IpText::MAX - rest.len()
            }
        };
        IpText { bytes, len }
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("-")
    }
}

impl std::fmt::Display for IpText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Total size of a request head's header section as sent on the wire: for each header
/// `name.len() + value.len() + 4`.
///
/// The 4 bytes are `": "` and CRLF of each field line (RFC 9112 §5); compared against
/// `upstream.max_header_bytes` (431, RFC 6585 §5).
pub fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// A request id from `X-Request-Id` if it is 1..=128 visible ASCII chars (0x21..=0x7e),
/// else None.
///
/// Visible characters are RFC 9110 §5.5 `VCHAR` without obs-text; only the first
/// `X-Request-Id` header is considered.
pub fn request_id(headers: &HeaderMap) -> Option<&HeaderValue> {
    headers
        .get(&X_REQUEST_ID)
        .filter(|value| valid_request_id(value.as_bytes()))
}

/// [`request_id`] of any request's fields, as the value to send on and answer with.
pub(crate) fn request_id_of(fields: Fields<'_>) -> Option<HeaderValue> {
    match fields {
        Fields::Map(headers) => request_id(headers).cloned(),
        Fields::Raw(raw) => raw
            .first_value(X_REQUEST_ID.as_str())
            .filter(|value| valid_request_id(value.as_bytes())),
    }
}

fn valid_request_id(bytes: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&bytes.len()) && bytes.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// True when the client prefers HTML: an `Accept` header containing `text/html`.
///
/// `Accept` is RFC 9110 §12.5.1; media types compare case-insensitively (§8.3.1).
pub fn wants_html(headers: &HeaderMap) -> bool {
    wants_html_of(Fields::Map(headers))
}

/// [`wants_html`] of any request's fields.
pub(crate) fn wants_html_of(fields: Fields<'_>) -> bool {
    fields.values(&ACCEPT).any(|value| {
        value
            .windows(b"text/html".len())
            .any(|window| window.eq_ignore_ascii_case(b"text/html"))
    })
}

/// Origin check for WebSocket upgrades (SPEC §4). True when there is no Origin header;
/// when the Origin (e.g. `https://reana.example.org` or `http://127.0.0.1:8080`) is listed
/// exactly in `allowed` (case-insensitive); or when its `host[:port]` equals `host` (the
/// request's Host, case-insensitive; scheme not compared; a default port `:80`/`:443` on
/// either side normalised away according to the Origin's scheme). False for
/// `Origin: null`, an unparsable Origin, or any other origin.
///
/// `Origin` is RFC 6454 §7 (serialised as `scheme://host[:port]`, §6.2); `Host` is
/// RFC 9110 §7.2.
pub fn origin_allowed(
    origin: Option<&HeaderValue>,
    host: Option<&str>,
    allowed: &[String],
) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim();
    let Some((scheme, authority)) = parse_origin(origin) else {
        return false;
    };
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    host.is_some_and(|host| same_authority(scheme, authority, host.trim()))
}

/// Splits a serialised origin into scheme and `host[:port]`; None for `null` and anything
/// that is not `scheme://host[:port]` with a non-empty host and a numeric port.
fn parse_origin(origin: &str) -> Option<(&str, &str)> {
    let (scheme, authority) = origin.split_once("://")?;
    let mut scheme_chars = scheme.chars();
    let scheme_ok = scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let authority_ok = !authority.is_empty()
        && !authority
            .bytes()
            .any(|b| matches!(b, b'/' | b'?' | b'#' | b'@' | b'\\') || b <= b' ' || b == 0x7f);
    if !scheme_ok || !authority_ok {
        return None;
    }
    // The port follows the last `:` outside an IPv6 literal's brackets.
    let host_end = authority.rfind(']').map_or(0, |i| i + 1);
    let (host, port) = match authority[host_end..].rfind(':') {
        Some(i) => authority.split_at(host_end + i),
        None => (authority, ""),
    };
    let port_ok =
        port.is_empty() || (port.len() > 1 && port[1..].bytes().all(|b| b.is_ascii_digit()));
    let host_ok = !host.is_empty() && (host.starts_with('[') == host.ends_with(']'));
    (port_ok && host_ok).then_some((scheme, authority))
}

/// The trimmed, non-empty items of a comma-separated header value (RFC 9110 §5.6.1).
fn list_items(value: &HeaderValue) -> impl Iterator<Item = &[u8]> {
    value
        .as_bytes()
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|item| !item.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> HeaderValue {
        HeaderValue::from_static("req-1")
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("name");
            headers.append(name, HeaderValue::from_str(value).expect("value"));
        }
        headers
    }

    #[test]
    fn name_is_compares_as_eq_ignore_ascii_case_does_for_any_value_byte() {
        let names = [
            "te",
            "host",
            "cookie",
            "accept",
            "referer",
            "x-request-id",
            "x-forwarded-prefix",
            "proxy-authorization",
            "content-security-policy",
            "a0-9z",
        ];
        let may_hold = |b: u8| b == b'\t' || (b >= 0x20 && b != 0x7f);
        for lower in names {
            assert!(name_is(lower.as_bytes(), lower));
            assert!(name_is(lower.to_ascii_uppercase().as_bytes(), lower));
            assert!(!name_is(&lower.as_bytes()[1..], lower));
            // Every byte a name or value may hold, in every place.
            for at in 0..lower.len() {
                for b in (0..=255u8).filter(|&b| may_hold(b)) {
                    let mut name = lower.as_bytes().to_vec();
                    name[at] = b;
                    assert_eq!(
                        name_is(&name, lower),
                        name.eq_ignore_ascii_case(lower.as_bytes()),
                        "{name:?} against {lower}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_survey_sees_each_field_it_names_and_nothing_else() {
        let cases: &[(&str, u16)] = &[
            ("Accept", Survey::ACCEPT),
            ("cookie", Survey::COOKIE),
            ("Referer", Survey::REFERER),
            ("authorization", Survey::AUTHORIZATION),
            ("Connection", Survey::CONNECTION | Survey::HOP_BY_HOP),
            ("upgrade", Survey::UPGRADE | Survey::HOP_BY_HOP),
            ("X-Request-Id", Survey::REQUEST_ID | Survey::ADDED),
            ("x-forwarded-for", Survey::FORWARDED_FOR | Survey::ADDED),
            ("X-Forwarded-Proto", Survey::ADDED),
            ("x-forwarded-host", Survey::ADDED),
            ("X-Forwarded-Prefix", Survey::ADDED),
            ("host", Survey::HOST),
            ("user-agent", 0),
            ("x-forwarded-port", 0),
            ("acceptx", 0),
        ];
        for (name, bits) in cases {
            let survey = Survey::of(&map(&[(name, "v")]));
            for bit in (0..16).map(|i| 1u16 << i) {
                assert_eq!(survey.has(bit), bits & bit != 0, "{name} {bit:#x}");
            }
        }
        for hop in &HOP_BY_HOP {
            let survey = Survey::of(&map(&[(hop.as_str(), "v")]));
            assert!(survey.has(Survey::HOP_BY_HOP), "{hop}");
        }
        for added in &ADDED_NAMES {
            assert!(Survey::of(&map(&[(added.as_str(), "v")])).has(Survey::ADDED));
        }
        let both = Survey::of(&map(&[("cookie", "a=b"), ("accept", "*/*"), ("host", "h")]));
        assert!(both.has(Survey::COOKIE) && both.has(Survey::ACCEPT));
        assert!(!both.has(Survey::AUTHORIZATION) && !both.has(Survey::HOP_BY_HOP));
    }

    #[test]
    fn ip_text_is_what_display_writes() {
        let cases = [
            "0.0.0.0",
            "127.0.0.1",
            "10.9.99.100",
            "255.255.255.255",
            "::",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:192.0.2.128",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "0:0:0:0:0:ffff:255.255.255.255",
        ];
        for case in cases {
            let ip: IpAddr = case.parse().expect("address");
            assert_eq!(IpText::new(ip).as_str(), ip.to_string(), "{case}");
            assert_eq!(IpText::new(ip).to_string(), ip.to_string(), "{case}");
        }
        for octet in 0..=255u8 {
            let ip = IpAddr::from([octet, 255 - octet, octet / 3, 7]);
            assert_eq!(IpText::new(ip).as_str(), ip.to_string());
        }
    }

    fn names(headers: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn hop_by_hop_fixed_list() {
        #[rustfmt::skip]
        let mut headers = map(&[
            ("Connection", "close"), ("Keep-Alive", "timeout=5"), ("TE", "trailers"),
            ("Proxy-Connection", "keep-alive"), ("Trailer", "X-Checksum"),
            ("Transfer-Encoding", "chunked"), ("Upgrade", "websocket"),
            ("Proxy-Authenticate", "Basic"), ("Proxy-Authorization", "Basic abc"),
            ("Host", "example.org"), ("Accept", "*/*"), ("Sec-WebSocket-Protocol", "bokeh, t"),
        ]);
        remove_hop_by_hop(&mut headers);
        assert_eq!(
            names(&headers),
            ["accept", "host", "sec-websocket-protocol"]
        );
    }

    #[test]
    fn hop_by_hop_named_in_connection() {
        #[rustfmt::skip]
        let mut headers = map(&[
            ("Connection", "keep-alive, X-Foo"), ("Connection", " x-bar ,,Upgrade"),
            ("X-Foo", "1"), ("X-Bar", "2"), ("X-Baz", "3"),
            ("Keep-Alive", "timeout=5"), ("Upgrade", "websocket"),
        ]);
        remove_hop_by_hop(&mut headers);
        assert_eq!(names(&headers), ["x-baz"]);
        // An unparsable token is ignored, not fatal.
        let mut headers = map(&[
            ("Connection", "bad name, X-Qux"),
            ("X-Qux", "1"),
            ("A", "b"),
        ]);
        remove_hop_by_hop(&mut headers);
        assert_eq!(names(&headers), ["a"]);
    }

    #[test]
    fn websocket_upgrade_detection() {
        type Case<'a> = (Method, &'a [(&'a str, &'a str)], bool);
        let (c, u) = ("Connection", "Upgrade");
        #[rustfmt::skip]
        let cases: &[Case<'_>] = &[
            (Method::GET, &[(c, "Upgrade"), (u, "websocket")], true),
            (Method::GET, &[(c, "keep-alive, Upgrade"), (u, "websocket")], true),
            (Method::GET, &[("connection", "upgrade"), ("upgrade", "WebSocket")], true),
            (Method::GET, &[(c, "keep-alive"), (c, "upgrade"), (u, "websocket")], true),
            (Method::GET, &[(c, "Upgrade"), (u, "h2c, websocket/13")], true),
            (Method::POST, &[(c, "Upgrade"), (u, "websocket")], false),
            (Method::HEAD, &[(c, "Upgrade"), (u, "websocket")], false),
            (Method::GET, &[(c, "keep-alive"), (u, "websocket")], false),
            (Method::GET, &[(c, "upgrades"), (u, "websocket")], false),
            (Method::GET, &[(c, "Upgrade"), (u, "h2c")], false),
            (Method::GET, &[(c, "Upgrade")], false),
            (Method::GET, &[(u, "websocket")], false),
            (Method::GET, &[], false),
        ];
        for (method, pairs, want) in cases {
            assert_eq!(
                is_websocket_upgrade(method, &map(pairs)),
                *want,
                "{method} {pairs:?}"
            );
        }
    }

    #[test]
    fn forwarded_headers_replace_spoofed_values() {
        let ip: IpAddr = "10.0.0.7".parse().expect("ip");
        let host = HeaderValue::from_static("reana.example.org");
        #[rustfmt::skip]
        let mut headers = map(&[
            ("X-Forwarded-Proto", "http"), ("X-Forwarded-Prefix", "/spoofed"),
            ("X-Forwarded-Host", "evil"), ("X-Forwarded-Host", "evil2"),
        ]);
        set_forwarded(
            &mut headers,
            ip,
            "https",
            Some(&host),
            "/dashboard/a",
            &id(),
        );
        assert_eq!(headers["x-forwarded-for"], "10.0.0.7");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-host"], "reana.example.org");
        assert_eq!(headers["x-forwarded-prefix"], "/dashboard/a");
        assert_eq!(headers.get_all("x-forwarded-host").iter().count(), 1);
    }

    #[test]
    fn forwarded_for_appends() {
        let ip: IpAddr = "::1".parse().expect("ip");
        let xff = "X-Forwarded-For";
        let mut headers = map(&[(xff, "1.2.3.4, 5.6.7.8"), (xff, "9.9.9.9 ")]);
        set_forwarded(&mut headers, ip, "http", None, "/a/dashboard", &id());
        assert_eq!(headers.get_all(xff).iter().count(), 1);
        assert_eq!(headers[xff], "1.2.3.4, 5.6.7.8, 9.9.9.9, ::1");
        let mut headers = map(&[(xff, "1.2.3.4"), ("X-Forwarded-Host", "evil")]);
        set_forwarded(&mut headers, ip, "http", None, "/a/dashboard", &id());
        assert_eq!(headers[xff], "1.2.3.4, ::1");
        assert!(headers.get("x-forwarded-host").is_none());
    }

    #[test]
    fn header_section_size() {
        assert_eq!(header_bytes(&HeaderMap::new()), 0);
        // "host: a\r\n" = 4 + 1 + 4; "x-a: bc\r\n" twice = (3 + 2 + 4) * 2.
        let headers = map(&[("Host", "a"), ("X-A", "bc"), ("X-A", "bc")]);
        assert_eq!(header_bytes(&headers), 9 + 18);
    }

    #[test]
    fn request_ids() {
        let (max, too_long) = ("a".repeat(128), "a".repeat(129));
        #[rustfmt::skip]
        let cases: &[(&str, Option<&str>)] = &[
            ("abc-123", Some("abc-123")), ("!~", Some("!~")), (&max, Some(&max)),
            (&too_long, None), ("", None), ("a b", None), ("a\tb", None),
        ];
        for (value, want) in cases {
            let headers = map(&[("X-Request-Id", value)]);
            let got = request_id(&headers).map(|v| v.to_str().expect("visible ascii"));
            assert_eq!(got, *want, "{value:?}");
        }
        assert_eq!(request_id(&HeaderMap::new()), None);
        let mut headers = HeaderMap::new();
        let non_ascii = HeaderValue::from_bytes("idé".as_bytes()).expect("obs-text value");
        headers.insert(X_REQUEST_ID, non_ascii);
        assert_eq!(request_id(&headers), None);
    }

    #[test]
    fn html_preference() {
        assert!(wants_html(&map(&[(
            "Accept",
            "text/html,application/xhtml+xml;q=0.9"
        )])));
        assert!(wants_html(&map(&[
            ("Accept", "application/json"),
            ("Accept", "TEXT/HTML")
        ])));
        assert!(!wants_html(&map(&[("Accept", "application/json")])));
        assert!(!wants_html(&map(&[("Accept", "*/*")])));
        assert!(!wants_html(&HeaderMap::new()));
    }

    #[test]
    fn origins() {
        let allowed = ["https://reana.example.org".to_owned()];
        let (gw, lo) = (Some("gw.example.org"), Some("127.0.0.1:8080"));
        #[rustfmt::skip]
        let cases: &[(Option<&str>, Option<&str>, bool)] = &[
            (None, gw, true),
            (None, None, true),
            (Some("https://gw.example.org"), gw, true),
            (Some("http://gw.example.org"), gw, true),
            (Some("HTTPS://GW.Example.org"), Some("gw.example.ORG"), true),
            (Some("http://127.0.0.1:8080"), lo, true),
            (Some("http://127.0.0.1:8080"), Some("127.0.0.1:8081"), false),
            (Some("http://127.0.0.1:8080"), Some("127.0.0.1"), false),
            (Some("http://127.0.0.1"), lo, false),
            (Some("https://gw.example.org:443"), gw, true),
            (Some("https://gw.example.org"), Some("gw.example.org:443"), true),
            (Some("http://gw.example.org"), Some("gw.example.org:80"), true),
            (Some("http://gw.example.org"), Some("gw.example.org:443"), false),
            (Some("https://gw.example.org"), Some("gw.example.org:80"), false),
            (Some("http://[::1]:8080"), Some("[::1]:8080"), true),
            (Some("http://[::1]"), Some("[::1]:80"), true),
            (Some("https://evil.example"), gw, false),
            (Some("https://evil.example"), None, false),
            (Some("https://reana.example.org"), gw, true),
            (Some("HTTPS://REANA.example.org"), None, true),
            (Some("http://reana.example.org"), gw, false),
            (Some("null"), gw, false),
            (Some("gw.example.org"), gw, false),
            (Some("https://"), Some(""), false),
            (Some("https://gw.example.org/"), gw, false),
            (Some("https://u@gw.example.org"), gw, false),
            (Some("https://gw.example.org:"), Some("gw.example.org:"), false),
            (Some("https://gw.example.org:x"), Some("gw.example.org:x"), false),
            (Some("1http://gw.example.org"), gw, false),
        ];
        for (origin, host, want) in cases {
            let value = origin.map(|o| HeaderValue::from_str(o).expect("origin"));
            let got = origin_allowed(value.as_ref(), *host, &allowed);
            assert_eq!(got, *want, "origin={origin:?} host={host:?}");
        }
        let non_utf8 = HeaderValue::from_bytes(b"https://\xff").expect("obs-text value");
        assert!(!origin_allowed(Some(&non_utf8), Some("x"), &[]));
    }
}

#[cfg(test)]
#[path = "headers_props.rs"]
mod props;
