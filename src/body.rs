//! The body types shared by every handler: upstream bodies streamed as they come,
//! gateway-made bodies from memory.

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};

/// The error of a body: whatever failed while it streamed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Body of every response the gateway sends.
pub type Body = BoxBody<Bytes, BoxError>;

/// A body made of `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// The body of a request as the handlers get it: hyper's, or none at all for a
/// request read by the gateway's own HTTP/1.1 loop (`GET` or `HEAD` without a body).
#[derive(Debug)]
pub enum RequestBody {
    /// A request hyper read.
    Hyper(hyper::body::Incoming),
    /// A request without a body.
    Empty,
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Hyper(body) => std::pin::Pin::new(body).poll_frame(cx),
            RequestBody::Empty => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Hyper(body) => body.is_end_stream(),
            RequestBody::Empty => true,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            RequestBody::Hyper(body) => body.size_hint(),
            RequestBody::Empty => http_body::SizeHint::with_exact(0),
        }
    }
}
