//! A scheduler's response body, read from its connection as the client takes it and
//! decoded by its framing; the connection goes back to the pool once the body has
//! ended cleanly, and is closed if the body is dropped before that.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use super::chunked::{Chunked, Step};
use super::pool::{Conn, Pool};
use crate::body::BoxError;

/// Read at most this much per system call.
const READ_SIZE: usize = 64 * 1024;
/// Read at least this much room.
const MIN_READ: usize = 4 * 1024;

/// How the rest of the body is delimited.
#[derive(Debug)]
pub(crate) enum Framing {
    /// This many bytes left.
    Length(u64),
    /// Chunked transfer coding.
    Chunked(Chunked),
    /// Until the scheduler closes the connection.
    Close,
}

/// The body of one scheduler response.
#[derive(Debug)]
pub(crate) struct UpstreamBody {
    /// The connection, until the body has ended.
    conn: Option<Conn>,
    framing: Framing,
    /// Whether the connection may serve another request once the body has ended.
    keep_alive: bool,
    pool: Arc<Pool>,
}

impl UpstreamBody {
    /// The body that follows a response head on `conn` (whose buffer may hold the
    /// first bytes of it already).
    pub(crate) fn new(conn: Conn, framing: Framing, keep_alive: bool, pool: Arc<Pool>) -> Self {
        UpstreamBody {
            conn: Some(conn),
            framing,
            keep_alive,
            pool,
        }
    }

    /// The body has ended: the connection goes back to the pool if it can be reused.
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.keep_alive {
                self.pool.put(conn);
            }
        }
    }
}

/// Reads once from `conn` into its buffer; `Ok(0)` is the end of the stream.
pub(crate) fn poll_fill(
    conn: &mut Conn,
    cx: &mut Context<'_>,
    want: u64,
) -> Poll<io::Result<usize>> {
    let room = usize::try_from(want)
        .unwrap_or(READ_SIZE)
        .clamp(MIN_READ, READ_SIZE);
    if conn.buf.capacity() - conn.buf.len() < MIN_READ {
        conn.buf.reserve(room);
    }
    tokio_util::io::poll_read_buf(Pin::new(&mut conn.stream), cx, &mut conn.buf)
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let want = match &mut this.framing {
                Framing::Length(left) => {
                    if !conn.buf.is_empty() {
                        let n = usize::try_from(*left)
                            .unwrap_or(usize::MAX)
                            .min(conn.buf.len());
                        let data = conn.buf.split_to(n).freeze();
                        *left -= n as u64;
                        if *left == 0 {
                            this.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    *left
                }
                Framing::Chunked(decoder) => match decoder.step(&mut conn.buf) {
                    Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Step::Done) => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(Step::More) => READ_SIZE as u64,
                    Err(error) => {
                        this.conn = None;
                        return Poll::Ready(Some(Err(error.into())));
                    }
                },
                Framing::Close => {
                    if !conn.buf.is_empty() {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    READ_SIZE as u64
                }
            };
            match ready!(poll_fill(conn, cx, want)) {
                Ok(0) => {
                    this.conn = None;
                    if matches!(this.framing, Framing::Close) {
                        return Poll::Ready(None);
                    }
                    let error = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "scheduler closed the connection inside a response body",
                    );
                    return Poll::Ready(Some(Err(error.into())));
                }
                Ok(_) => {}
                Err(error) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(error.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.conn, &self.framing) {
            (None, _) => SizeHint::with_exact(0),
            (Some(_), Framing::Length(left)) => SizeHint::with_exact(*left),
            (Some(_), Framing::Chunked(_) | Framing::Close) => SizeHint::default(),
        }
    }
}
