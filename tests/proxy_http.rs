//! End-to-end HTTP proxying through an in-process gateway to the harness's fake
//! upstreams (`tests/support/upstream`): URL forms, path safety, redirects, headers,
//! streaming, upstream failures, limits, the admin listener and graceful shutdown
//! (SPEC §3, §4, §6). One topic a file under `proxy_http/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "proxy_http/admin.rs"]
mod admin;
#[path = "proxy_http/headers.rs"]
mod headers;
#[path = "proxy_http/limits.rs"]
mod limits;
#[path = "proxy_http/streaming.rs"]
mod streaming;
#[path = "proxy_http/urls.rs"]
mod urls;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ::http::{Method, Request};
use bytes::Bytes;
use hyper::body::Incoming;
use support::fixture::{bearer, dash, one_route, owner_get, reana, routed, start, OTHER_WF, OWNER};
use support::gateway::TestGateway;
use support::http;
use support::pattern::{fnv1a, pattern};
use support::raw::raw_exchange;
use support::streaming::{next_chunk, send_h2, send_streaming, ChannelBody};
use support::upstream::{blackhole, refused_addr, HttpUpstream, Recorded, Reply};
use support::wait::{until, STEP};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::timeout;

/// `GET dash(path)` as [`OWNER`] over a fresh HTTP/1.1 connection; the response
/// head, its body still streaming.
async fn owner_get_streaming(gw: &TestGateway, path: &str) -> ::http::Response<Incoming> {
    let (tx, body) = ChannelBody::new(1);
    drop(tx);
    let req = Request::get(dash(path))
        .header("host", gw.public.to_string())
        .header("authorization", bearer(gw))
        .body(body)
        .expect("request");
    send_streaming(gw.public, req).await
}
