//! The HTTP/1.1 wire format toward the scheduler (RFC 9112): the request head the
//! gateway writes, the response head it reads, and how that response's body is
//! framed. Pure functions over bytes; the connection that uses them is in `exchange`.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};

use super::UpstreamFailure;
use crate::proxy::headers::{is_hop_by_hop, name_is, names_another_field, Added};

/// Most header fields read in one response head.
const MAX_RESPONSE_HEADERS: usize = 128;

/// Bytes reserved after a response's field lines for the fields the proxy adds.
const RAW_ROOM: usize = 512;

/// How the request body is framed on the wire (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestFraming {
    /// No body and no framing header (GET, HEAD and the like without a body).
    None,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked` (a body of unknown length).
    Chunked,
}

impl RequestFraming {
    /// The framing for a body that has ended already (`end`) or whose exact length is
    /// `exact`. An empty body of a method that defines one (POST, PUT, PATCH) is
    /// announced as `Content-Length: 0` (RFC 9110 §8.6).
    pub(crate) fn new(method: &Method, exact: Option<u64>, end: bool) -> RequestFraming {
        match exact {
            _ if end => {
                if *method == Method::POST || *method == Method::PUT || *method == Method::PATCH {
                    RequestFraming::Length(0)
                } else {
                    RequestFraming::None
                }
            }
            Some(n) => RequestFraming::Length(n),
            None => RequestFraming::Chunked,
        }
    }

    /// True when no body bytes follow the head.
    pub(crate) fn is_empty(self) -> bool {
        matches!(self, RequestFraming::None | RequestFraming::Length(0))
    }
}

/// A request's header fields for the wire: a map, lines, and the gateway's own.
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a> {
    pub(crate) headers: &'a HeaderMap,
    /// `name: value\r\n` lines without framing fields.
    pub(crate) lines: &'a [u8],
    pub(crate) added: &'a Added,
}

/// Writes the request head into `out`: request line, every header of `headers` but
/// the framing ones (and `Expect`: the gateway sends the body at once), the lines,
/// the gateway's fields, then the framing header. `target` must be an origin-form
/// request target.
pub(crate) fn encode_request_head(
    out: &mut Vec<u8>,
    method: &Method,
    target: &str,
    Fields {
        headers,
        lines,
        added,
    }: Fields<'_>,
    framing: RequestFraming,
) -> Result<(), UpstreamFailure> {
    // hyper validated the client's target; this keeps a rewritten one honest too.
    if !target.starts_with('/') || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(UpstreamFailure::InvalidRequest);
    }
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == EXPECT {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(lines);
    added.encode(out);
    match framing {
        RequestFraming::None => {}
        RequestFraming::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        RequestFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseFraming {
    /// No body (HEAD, 1xx, 204, 304).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the scheduler closes the connection.
    Close,
}

/// A response's header fields kept as the bytes an HTTP/1.1 client gets: one
/// `name: value\r\n` line each, names in lower case, in the scheduler's order, the
/// hop-by-hop ones left out. Used for a response with a body of known length (or
/// an answer to `HEAD`) that has no `Location` to rewrite and no name twice apart:
/// the gateway's HTTP/1.1 loop writes them as they are, which is what hyper writes
/// for the same fields in a map (`into_map` gives that map to hyper).
#[derive(Debug, Clone)]
pub(crate) struct RawFields {
    /// The field lines.
    pub(crate) lines: Vec<u8>,
    /// There is a `Date` field.
    pub(crate) has_date: bool,
    /// There is a `Content-Security-Policy` field.
    pub(crate) has_csp: bool,
}

impl RawFields {
    /// Adds a field after the others (the proxy's own: a policy, the request id).
    pub(crate) fn push(&mut self, name: &HeaderName, value: &HeaderValue) {
        self.lines.extend_from_slice(name.as_str().as_bytes());
        self.lines.extend_from_slice(b": ");
        self.lines.extend_from_slice(value.as_bytes());
        self.lines.extend_from_slice(b"\r\n");
    }

    /// The fields in a map, followed by those of `rest`.
    pub(crate) fn into_map(self, rest: HeaderMap) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(rest.len() + 16);
        let lines = Bytes::from(self.lines);
        for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = memchr::memchr(b':', line) else {
                continue;
            };
            let value_at = colon + 2;
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(&line[..colon]),
                HeaderValue::from_maybe_shared(lines.slice_ref(&line[value_at.min(line.len())..])),
            ) else {
                continue;
            };
            map.append(name, value);
        }
        let mut last = None;
        for (name, value) in rest {
            if let Some(name) = name {
                last = Some(name);
            }
            if let Some(name) = &last {
                map.append(name.clone(), value);
            }
        }
        map
    }
}

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    /// Status code.
    pub(crate) status: StatusCode,
    /// Header fields, without the hop-by-hop ones and those `Connection` names
    /// (empty when they are kept as `raw`).
    pub(crate) headers: HeaderMap,
    /// The same fields as lines, instead of `headers`.
    pub(crate) raw: Option<RawFields>,
    /// How the body that follows is delimited.
    pub(crate) framing: ResponseFraming,
    /// Whether the connection may carry another request after this response.
    pub(crate) keep_alive: bool,
}

/// Parses a response head at the start of `buf`. `Ok(None)`: incomplete, read more.
/// On success the head's bytes are taken off `buf`, which then starts with the body.
/// Header values share one copy of the head (no copy per field), so that `buf` stays
/// the connection's own, to be reused by its next response.
pub(crate) fn parse_response_head(
    buf: &mut BytesMut,
    request_method: &Method,
) -> Result<Option<ResponseHead>, UpstreamFailure> {
    let mut fields =
        [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut fields,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(UpstreamFailure::Protocol("response head too large"))
        }
        Err(_) => return Err(UpstreamFailure::Protocol("malformed response head")),
    };
    let code = response.code.unwrap_or(0);
    let status =
        StatusCode::from_u16(code).map_err(|_| UpstreamFailure::Protocol("invalid status code"))?;
    let version = if response.version == Some(1) {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    let fields = &*response.headers;
    // The framing is read off the raw fields; the hop-by-hop ones (RFC 9110 §7.6.1)
    // end here, as no header map is built for them.
    let scan = Scan::of(fields);
    let (framing, reusable) = response_framing(request_method, status, &scan)?;
    let keep_alive = reusable && framing != ResponseFraming::Close && scan.persistent(version);
    // `Connection` seldom names a field of its own (`keep-alive` and `close` are
    // options): only then is each name compared with its list.
    let lists_fields = scan.lists_fields;
    let kept = |name: &[u8]| !(is_hop_by_hop(name) || (lists_fields && listed(name, fields)));
    let raw_framing = match framing {
        ResponseFraming::Length(_) => true,
        ResponseFraming::Empty => *request_method == Method::HEAD,
        ResponseFraming::Chunked | ResponseFraming::Close => false,
    };
    if raw_framing && !scan.location && !scan.repeats_apart {
        // Room for the proxy's own fields too (a policy, the request id).
        let mut lines = Vec::with_capacity(len + RAW_ROOM);
        let head = &buf[..len];
        let base = head.as_ptr() as usize;
        for field in fields.iter().filter(|f| kept(f.name.as_bytes())) {
            let name = field.name.as_bytes();
            let at = lines.len();
            match usual_line(head, base, name, field.value) {
                // Written as it will be sent: one copy.
                Some(line) => lines.extend_from_slice(line),
                None => {
                    lines.extend_from_slice(name);
                    lines.extend_from_slice(b": ");
                    lines.extend_from_slice(field.value);
                    lines.extend_from_slice(b"\r\n");
                }
            }
            lines[at..at + name.len()].make_ascii_lowercase();
        }
        let raw = RawFields {
            lines,
            has_date: scan.date && kept(b"date"),
            has_csp: scan.csp && kept(b"content-security-policy"),
        };
        buf.advance(len);
        return Ok(Some(ResponseHead {
            status,
            headers: HeaderMap::new(),
            raw: Some(raw),
            framing,
            keep_alive,
        }));
    }
    // Values share one copy of the head.
    let head = Bytes::copy_from_slice(&buf[..len]);
    let base = buf.as_ptr() as usize;
    let mut headers = HeaderMap::with_capacity(fields.len());
    for field in fields {
        let name = field.name.as_bytes();
        if !kept(name) {
            continue;
        }
        let name = HeaderName::from_bytes(name)
            .map_err(|_| UpstreamFailure::Protocol("invalid header name"))?;
        let start = field.value.as_ptr() as usize - base;
        let value = HeaderValue::from_maybe_shared(head.slice(start..start + field.value.len()))
            .map_err(|_| UpstreamFailure::Protocol("invalid header value"))?;
        headers.append(name, value);
    }
    buf.advance(len);
    Ok(Some(ResponseHead {
        status,
        headers,
        raw: None,
        framing,
        keep_alive,
    }))
}

/// A field's line in `head` (which starts at address `base`) when it has the usual
/// form, `name: value\r\n`, with the name and value httparse read.
fn usual_line<'h>(head: &'h [u8], base: usize, name: &[u8], value: &[u8]) -> Option<&'h [u8]> {
    let start = (name.as_ptr() as usize).checked_sub(base)?;
    let value_at = start + name.len() + 2;
    let end = value_at + value.len();
    let line = head.get(start..end + 2)?;
    let usual = line[name.len()..name.len() + 2] == *b": "
        && std::ptr::eq(line[value_at - start..].as_ptr(), value.as_ptr())
        && line[end - start..] == *b"\r\n";
    usual.then_some(line)
}

/// The comma-separated items of every field named `name`, trimmed, empty ones left
/// out.
fn items<'a>(
    fields: &'a [httparse::Header<'a>],
    name: &'a [u8],
) -> impl Iterator<Item = &'a [u8]> + 'a {
    fields
        .iter()
        .filter(move |f| f.name.as_bytes().eq_ignore_ascii_case(name))
        .flat_map(|f| f.value.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|item| !item.is_empty())
}

/// Whether a `Connection` field lists `name` (then it is for this hop only).
fn listed(name: &[u8], fields: &[httparse::Header<'_>]) -> bool {
    items(fields, b"connection").any(|listed| listed.eq_ignore_ascii_case(name))
}

/// What one pass over a response's fields finds: all that the framing, the
/// connection and the choice between lines and a map depend on.
#[derive(Debug, Default)]
struct Scan {
    /// There is a `Transfer-Encoding` field.
    transfer_encoding: bool,
    /// The last transfer coding is `chunked`.
    chunked: bool,
    /// There is a `Content-Length` field.
    has_length: bool,
    /// Its value.
    length: Option<u64>,
    /// Why it is unusable (reported only where the length counts).
    bad_length: Option<&'static str>,
    /// `Connection` has `close`.
    close: bool,
    /// `Connection` has `keep-alive`.
    keep_alive: bool,
    /// `Connection` names a field besides the hop-by-hop ones.
    lists_fields: bool,
    /// There is a `Location` field.
    location: bool,
    /// There is a `Date` field.
    date: bool,
    /// There is a `Content-Security-Policy` field.
    csp: bool,
    /// A name comes twice with another field between (a map would put them
    /// together).
    repeats_apart: bool,
}

impl Scan {
    fn of(fields: &[httparse::Header<'_>]) -> Scan {
        let mut scan = Scan::default();
        // One bit per name, by its length and ends: a bit seen before sends the name
        // to the exact comparison with the fields before it.
        let mut seen = 0u64;
        for (i, field) in fields.iter().enumerate() {
            let name = field.name.as_bytes();
            let is = |known: &str| name_is(name, known);
            match name.len() {
                17 if is("transfer-encoding") => {
                    scan.transfer_encoding = true;
                    if let Some(last) = list(field.value).last() {
                        scan.chunked = last.eq_ignore_ascii_case(b"chunked");
                    }
                }
                14 if is("content-length") => {
                    scan.has_length = true;
                    scan.add_length(field.value);
                }
                10 if is("connection") => {
                    for option in list(field.value) {
                        if option.eq_ignore_ascii_case(b"close") {
                            scan.close = true;
                        } else if option.eq_ignore_ascii_case(b"keep-alive") {
                            scan.keep_alive = true;
                        } else if names_another_field(option) {
                            scan.lists_fields = true;
                        }
                    }
                }
                8 if is("location") => scan.location = true,
                4 if is("date") => scan.date = true,
                23 if is("content-security-policy") => scan.csp = true,
                _ => {}
            }
            let (Some(first), Some(last)) = (name.first(), name.last()) else {
                continue;
            };
            let bit = 1u64
                << ((name.len() + 7 * usize::from(first | 0x20) + 13 * usize::from(last | 0x20))
                    % 64);
            if seen & bit != 0 && i >= 2 && !same_name(name, &fields[i - 1]) {
                scan.repeats_apart |= fields[..i - 1].iter().any(|f| same_name(name, f));
            }
            seen |= bit;
        }
        scan
    }

    /// Takes in one `Content-Length` field's value (a list of equal numbers).
    fn add_length(&mut self, value: &[u8]) {
        if self.bad_length.is_some() {
            return;
        }
        for item in value.split(|&b| b == b',') {
            let Some(n) = parse_decimal(item.trim_ascii()) else {
                self.bad_length = Some("invalid content-length");
                return;
            };
            if self.length.is_some_and(|seen| seen != n) {
                self.bad_length = Some("conflicting content-length");
                return;
            }
            self.length = Some(n);
        }
    }

    /// HTTP/1.1 connections persist unless `Connection: close`; HTTP/1.0 ones only
    /// with `Connection: keep-alive` (RFC 9112 §9.3).
    fn persistent(&self, version: Version) -> bool {
        if version == Version::HTTP_11 {
            !self.close
        } else {
            self.keep_alive
        }
    }
}

fn same_name(name: &[u8], field: &httparse::Header<'_>) -> bool {
    field.name.len() == name.len() && field.name.as_bytes().eq_ignore_ascii_case(name)
}

/// The trimmed, non-empty items of a comma-separated field value.
fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|item| !item.is_empty())
}

/// The body's framing, and whether the framing leaves the connection reusable
/// (RFC 9112 §6.3; a response with both `Transfer-Encoding` and `Content-Length` is
/// read by the former and its connection closed afterwards).
fn response_framing(
    method: &Method,
    status: StatusCode,
    scan: &Scan,
) -> Result<(ResponseFraming, bool), UpstreamFailure> {
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((ResponseFraming::Empty, true));
    }
    if scan.transfer_encoding {
        let framing = if scan.chunked {
            ResponseFraming::Chunked
        } else {
            ResponseFraming::Close
        };
        return Ok((framing, !scan.has_length));
    }
    if let Some(why) = scan.bad_length {
        return Err(UpstreamFailure::Protocol(why));
    }
    Ok(match scan.length {
        Some(0) => (ResponseFraming::Empty, true),
        Some(n) => (ResponseFraming::Length(n), true),
        None => (ResponseFraming::Close, false),
    })
}

/// Digits only, no sign, no overflow.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
