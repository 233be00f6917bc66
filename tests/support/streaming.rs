//! Streaming bodies both ways: a request body fed from a channel, and one request
//! over a fresh HTTP/1.1 or HTTP/2 connection whose response body is read chunk by
//! chunk.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::wait::STEP;

/// A `hyper` body whose chunks come from an mpsc channel; it ends when every sender
/// is dropped.
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl ChannelBody {
    /// A body and the sender that feeds it.
    pub fn new(capacity: usize) -> (mpsc::Sender<Bytes>, ChannelBody) {
        let (tx, rx) = mpsc::channel(capacity);
        (tx, ChannelBody { rx })
    }
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

/// Sends one request over a fresh HTTP/1.1 connection and returns the response head
/// with its body still streaming. The connection lives as long as the body is read.
pub async fn send_streaming(addr: SocketAddr, req: Request<ChannelBody>) -> Response<Incoming> {
    send(addr, req, false).await
}

/// Sends one request over a fresh HTTP/2 connection with prior knowledge (h2c); the
/// URI must be absolute (its authority becomes `:authority`).
pub async fn send_h2(addr: SocketAddr, req: Request<ChannelBody>) -> Response<Incoming> {
    send(addr, req, true).await
}

async fn send(addr: SocketAddr, req: Request<ChannelBody>, h2: bool) -> Response<Incoming> {
    let exchange = async {
        let io = TokioIo::new(TcpStream::connect(addr).await.expect("connect"));
        if h2 {
            let (mut sender, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .expect("HTTP/2 handshake");
            tokio::spawn(conn);
            sender.send_request(req).await
        } else {
            let (mut sender, conn) = http1::handshake(io).await.expect("HTTP/1.1 handshake");
            tokio::spawn(conn);
            sender.send_request(req).await
        }
        .expect("send the request")
    };
    timeout(STEP, exchange)
        .await
        .expect("no response head within the step timeout")
}

/// Reads the next data chunk of `body` within [`STEP`]; `None` at its end.
pub async fn next_chunk(body: &mut Incoming) -> Option<Bytes> {
    loop {
        let frame = timeout(STEP, body.frame())
            .await
            .expect("no body data within the step timeout")?;
        let frame = frame.expect("body error");
        if let Ok(data) = frame.into_data() {
            return Some(data);
        }
    }
}
