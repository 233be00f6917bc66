//! The gateway's own HTTP/1.1 loop for plain-text connections. It serves what
//! nearly every request to a dashboard is, `GET` or `HEAD` over HTTP/1.1 without a
//! body and without an upgrade, through the same handler as hyper, with less work
//! per request: one read buffer per connection, the request head taken from it
//! without copies, the response head and a body already in memory written in one
//! system call, no timer or cancellation registered per request.
//!
//! Anything else (another method, a body, an upgrade, HTTP/1.0, a head it cannot
//! read) is handed to hyper with the bytes read so far, and hyper serves the
//! connection from then on: its answers to such requests (400, 431, WebSocket
//! upgrades, request bodies) stay hyper's.

use std::future::Future as _;
use std::io::{self, Write as _};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::io::poll_read_buf;
use tokio_util::sync::CancellationToken;

use super::ConnSettings;
use crate::body::RequestBody;
use crate::proxy::headers::name_is;
use crate::proxy::raw::{FieldAt, RawHead};
use crate::proxy::upstream::RawFields;
use crate::proxy::Reply;

/// Most header fields in a request head (hyper's limit too).
const MAX_HEADERS: usize = 100;

/// Body bytes up to this size are copied behind the head (or the previous chunk) and
/// written with it; larger ones are written on their own.
const COALESCE: usize = 16 * 1024;

/// Response bytes gathered before they are written even though more are ready.
const WRITE_BATCH: usize = 64 * 1024;

/// How the loop let go of its connection.
#[derive(Debug)]
pub(super) enum Ended {
    /// The connection is over: closed by the client, a deadline, the drain, a failed
    /// write, or after a response that ends it.
    Closed,
    /// A request this loop does not serve arrived: hyper serves the connection from
    /// here on, reading these bytes first.
    HandOff(Bytes),
}

/// What the connection needs to know about a request head besides the request.
struct Head {
    /// The request, with an empty header map: its fields are in `raw`.
    request: Request<RequestBody>,
    raw: RawHead,
    /// The client asked to close the connection after this response.
    close: bool,
}

/// What the first bytes of the buffer hold.
// Unpacked as soon as it is returned: a box would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    Complete(Head),
    Partial,
    /// Not a request for this loop (or not valid HTTP/1.1): hyper's.
    Other,
}

/// Serves requests on `stream` until the connection ends or a request for hyper
/// arrives. The first request head must be complete by `first_head_by`, each later
/// one within `http1_keep_alive_timeout` of the previous response; once `stop` is
/// cancelled, an idle connection closes and a busy one closes after its response.
/// `started` is set when the first request head has arrived.
pub(super) async fn serve<H, F>(
    stream: &mut TcpStream,
    peer: SocketAddr,
    settings: &ConnSettings,
    handler: &H,
    stop: &CancellationToken,
    first_head_by: Instant,
    started: &AtomicBool,
) -> Ended
where
    H: Fn(Request<RequestBody>, Option<RawHead>, SocketAddr) -> F,
    F: std::future::Future<Output = Reply>,
{
    // As hyper's read buffer: the handler answers 431 for heads above the exact limit.
    let limit = (settings.max_header_bytes + 16 * 1024).max(8192);
    let mut buf = BytesMut::with_capacity(8192);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut fields = Vec::with_capacity(32);
    // Registered once for the connection, not once per request.
    let mut stopping = pin!(stop.cancelled());
    // When the connection closes unless a request head arrives. The timer is not
    // moved later with each request (`armed` stays): when it fires before
    // `idle_until`, it is set again.
    let mut idle_until = first_head_by;
    let mut armed = first_head_by;
    let mut deadline = pin!(tokio::time::sleep_until(first_head_by));
    // The timer and the stop, once polled, wake this task (the same task whatever
    // it waits for later): a wait after that only checks whether they have come,
    // which costs less than polling them again.
    let mut deadline_polled = false;
    let mut stop_polled = false;
    loop {
        let head = loop {
            if !buf.is_empty() {
                match parse(&mut buf, &mut fields) {
                    Parsed::Complete(head) => break head,
                    Parsed::Partial => {}
                    Parsed::Other => return Ended::HandOff(buf.freeze()),
                }
            }
            if buf.len() >= limit {
                return Ended::HandOff(buf.freeze());
            }
            buf.reserve(4096);
            let woke = std::future::poll_fn(|cx| {
                if let Poll::Ready(read) = poll_read_buf(Pin::new(&mut *stream), cx, &mut buf) {
                    return Poll::Ready(Woke::Read(read));
                }
                if !deadline_polled || deadline.is_elapsed() {
                    deadline_polled = true;
                    if deadline.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Woke::Deadline);
                    }
                }
                if buf.is_empty() {
                    // `cancel` marks the token before it wakes the waiting tasks.
                    let stopped = if stop_polled {
                        stop.is_cancelled()
                    } else {
                        stop_polled = true;
                        stopping.as_mut().poll(cx).is_ready()
                    };
                    if stopped {
                        return Poll::Ready(Woke::Stop);
                    }
                }
                Poll::Pending
            })
            .await;
            match woke {
                Woke::Read(Ok(0) | Err(_)) | Woke::Stop => return Ended::Closed,
                Woke::Read(Ok(_)) => {}
                Woke::Deadline => {
                    if Instant::now() >= idle_until {
                        return Ended::Closed;
                    }
                    armed = idle_until;
                    deadline.as_mut().reset(armed);
                    deadline_polled = false;
                }
            }
        };
        started.store(true, Ordering::Relaxed);
        let head_only = head.request.method() == Method::HEAD;
        let response = handler(head.request, Some(head.raw), peer).await;
        let close = head.close || stop.is_cancelled();
        match write_response(stream, response, head_only, close, &mut out).await {
            Ok(true) => {}
            Ok(false) => {
                let _ = stream.shutdown().await;
                return Ended::Closed;
            }
            Err(error) => {
                tracing::debug!(%error, "response not written");
                return Ended::Closed;
            }
        }
        idle_until = Instant::now() + settings.http1_keep_alive_timeout;
        if idle_until < armed {
            armed = idle_until;
            deadline.as_mut().reset(armed);
            deadline_polled = false;
        }
    }
}

/// What ended a wait for more of a request head.
enum Woke {
    Read(io::Result<usize>),
    Deadline,
    Stop,
}

/// Takes a complete request head off the front of `buf` when it holds one this loop
/// serves. Nothing is taken otherwise. `fields` is scratch space, kept by the
/// connection so that no request allocates or clears it.
fn parse(buf: &mut BytesMut, fields: &mut Vec<FieldAt>) -> Parsed {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    let method = match req.method {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        _ => return Parsed::Other,
    };
    let Some(path) = req.path.filter(|p| p.starts_with('/')) else {
        return Parsed::Other;
    };
    if req.version != Some(1) {
        return Parsed::Other;
    }
    let mut close = false;
    for header in req.headers.iter() {
        match classify(header.name.as_bytes(), header.value) {
            Field::Plain => {}
            Field::Close => close = true,
            Field::NotServed => return Parsed::Other,
        }
    }
    // Offsets into the head, so that the head can be split off and shared.
    let base = buf.as_ptr() as usize;
    let offset = |s: &[u8]| s.as_ptr() as usize - base;
    let path = (offset(path.as_bytes()), path.len());
    fields.clear();
    fields.extend(req.headers.iter().map(|header| {
        (
            offset(header.name.as_bytes()),
            header.name.len(),
            offset(header.value),
            header.value.len(),
        )
    }));
    let head = buf.split_to(len).freeze();
    let Some(request) = build(&head, method, path) else {
        // hyper reads it again (and answers it as it sees fit).
        let mut whole = BytesMut::with_capacity(head.len() + buf.len());
        whole.extend_from_slice(&head);
        whole.extend_from_slice(buf);
        *buf = whole;
        return Parsed::Other;
    };
    // No map: httparse took names that are tokens and values without control
    // characters but tabs, which is what `http`'s types take too.
    let raw = RawHead::new(head, fields.clone());
    Parsed::Complete(Head {
        request,
        raw,
        close,
    })
}

/// The request, its URI sharing `head`'s bytes. `None` when the target is not what
/// `http` accepts.
fn build(
    head: &Bytes,
    method: Method,
    (path_at, path_len): (usize, usize),
) -> Option<Request<RequestBody>> {
    let uri = Uri::from_maybe_shared(head.slice(path_at..path_at + path_len)).ok()?;
    let mut request = Request::new(RequestBody::Empty);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    Some(request)
}

/// What a request header field means for this loop.
#[derive(Debug, PartialEq, Eq)]
enum Field {
    /// Nothing for the connection; the handler sees it.
    Plain,
    /// `Connection: close`.
    Close,
    /// A body, an upgrade or an expectation: hyper's.
    NotServed,
}

fn classify(name: &[u8], value: &[u8]) -> Field {
    let is = |n: &str| name_is(name, n);
    match name.len() {
        14 if is("content-length") => Field::NotServed,
        17 if is("transfer-encoding") => Field::NotServed,
        7 if is("upgrade") => Field::NotServed,
        6 if is("expect") => Field::NotServed,
        10 if is("connection") => {
            let close = value
                .split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
            if close {
                Field::Close
            } else {
                Field::Plain
            }
        }
        _ => Field::Plain,
    }
}

/// How the body follows the head on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body bytes (HEAD, 1xx, 204, 304, or an empty body).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// What the body's own description says of its length (hyper's view of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyLength {
    Empty,
    Known(u64),
    Unknown,
}

/// Writes the response head into `out` as hyper writes it for an HTTP/1.1 request,
/// and says how the body follows.
fn encode_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    raw: Option<&RawFields>,
    headers: &HeaderMap,
    length: BodyLength,
    head_only: bool,
    close: &mut bool,
) -> Framing {
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let no_length_field = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let can_have_body = !head_only && !no_length_field;
    let mut framing = None;
    let mut wrote_date = false;
    let mut says_close = false;
    if let Some(raw) = raw {
        // The scheduler's fields, as hyper would write them from a map: with a
        // `Content-Length` when the body has a length (see `RawFields`).
        out.extend_from_slice(&raw.lines);
        wrote_date = raw.has_date;
        if let BodyLength::Known(n) = length {
            framing = Some(Framing::Length(n));
        }
    }
    for (name, value) in headers {
        if name == CONTENT_LENGTH {
            if framing.is_some() {
                continue;
            }
            let declared = std::str::from_utf8(value.as_bytes())
                .ok()
                .and_then(|v| v.parse::<u64>().ok());
            let Some(declared) = declared else { continue };
            match length {
                // An empty body's length field stays for HEAD only (the length of
                // what GET would have sent).
                BodyLength::Empty if !head_only => continue,
                BodyLength::Known(n) => framing = Some(Framing::Length(n)),
                _ => framing = Some(Framing::Length(declared)),
            }
        } else if name == TRANSFER_ENCODING {
            // The body's framing is this loop's to choose.
            continue;
        } else if name == CONNECTION {
            says_close |= value
                .as_bytes()
                .split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
        } else if name == DATE {
            wrote_date = true;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // hyper puts its `close` into the map: after the fields, before the framing.
    if *close && !says_close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    *close |= says_close;
    let framing = match framing {
        Some(framing) => framing,
        None => match length {
            BodyLength::Unknown if can_have_body => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Framing::Chunked
            }
            BodyLength::Unknown => Framing::None,
            BodyLength::Empty | BodyLength::Known(0) => {
                if !no_length_field && !head_only {
                    out.extend_from_slice(b"content-length: 0\r\n");
                }
                Framing::None
            }
            BodyLength::Known(n) => {
                if !no_length_field {
                    out.extend_from_slice(b"content-length: ");
                    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                Framing::Length(n)
            }
        },
    };
    if !wrote_date {
        out.extend_from_slice(b"date: ");
        date::extend(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if can_have_body {
        framing
    } else {
        Framing::None
    }
}

/// Writes `response`; `Ok(true)` when the connection can carry another request.
async fn write_response(
    stream: &mut TcpStream,
    reply: Reply,
    head_only: bool,
    mut close: bool,
    out: &mut Vec<u8>,
) -> io::Result<bool> {
    let Reply { response, raw } = reply;
    let (parts, mut body) = response.into_parts();
    let length = if body.is_end_stream() {
        BodyLength::Empty
    } else {
        match body.size_hint().exact() {
            Some(n) => BodyLength::Known(n),
            None => BodyLength::Unknown,
        }
    };
    out.clear();
    let framing = encode_head(
        out,
        parts.status,
        raw.as_ref(),
        &parts.headers,
        length,
        head_only,
        &mut close,
    );
    drop(parts);
    if framing == Framing::None {
        stream.write_all(out).await?;
        return Ok(!close);
    }
    let mut sent = 0u64;
    loop {
        // What is ready now joins the bytes waiting to be written; before waiting
        // for more, those are written.
        let frame = match body.frame().now_or_never() {
            Some(frame) => frame,
            None => {
                if !out.is_empty() {
                    stream.write_all(out).await?;
                    out.clear();
                }
                body.frame().await
            }
        };
        let data = match frame {
            None => break,
            Some(Err(error)) => return Err(io::Error::other(error)),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                // Trailers are not sent on.
                Err(_) => continue,
            },
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        if let Framing::Length(n) = framing {
            if sent > n {
                return Err(io::Error::other("body longer than its content-length"));
            }
        }
        if framing == Framing::Chunked {
            // Upper-case digits, as hyper writes them; no allocation per chunk.
            let _ = write!(out, "{:X}\r\n", data.len());
        }
        if data.len() <= COALESCE {
            out.extend_from_slice(&data);
        } else {
            stream.write_all(out).await?;
            out.clear();
            stream.write_all(&data).await?;
        }
        if framing == Framing::Chunked {
            out.extend_from_slice(b"\r\n");
        }
        if out.len() >= WRITE_BATCH {
            stream.write_all(out).await?;
            out.clear();
        }
    }
    match framing {
        Framing::Chunked => out.extend_from_slice(b"0\r\n\r\n"),
        Framing::Length(n) if sent != n => {
            return Err(io::Error::other("body shorter than its content-length"));
        }
        _ => {}
    }
    if !out.is_empty() {
        stream.write_all(out).await?;
    }
    Ok(!close)
}

/// The `Date` field value, formatted once a second per thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }

    /// Appends the current date (IMF-fixdate) to `out`.
    pub(super) fn extend(out: &mut Vec<u8>) {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        CACHED.with(|cached| {
            let mut cached = cached.borrow_mut();
            if cached.0 != secs || cached.1.is_empty() {
                *cached = (secs, httpdate::fmt_http_date(now));
            }
            out.extend_from_slice(cached.1.as_bytes());
        });
    }
}

#[cfg(test)]
#[path = "h1_tests.rs"]
mod tests;
