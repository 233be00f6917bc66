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
