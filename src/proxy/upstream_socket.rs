//! The scheduler's side of a relayed WebSocket: its TCP socket after the handshake,
//! with the bytes that arrived together with the `101` response read first.
//!
//! Tornado writes the parts of a Bokeh message in separate small segments without
//! `TCP_NODELAY`, so each part after the first waits for the previous one's ACK; a
//! reader that delays its ACKs (Linux does, up to 40 ms) holds every message back
//! that long. Re-arming `TCP_QUICKACK` after each read keeps this socket acknowledging
//! at once, which makes the dashboard faster through the gateway than direct (SPEC §2).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A scheduler connection after its WebSocket handshake.
#[derive(Debug)]
pub(crate) struct UpstreamSocket {
    tcp: TcpStream,
    /// Read past the handshake response; served before the socket.
    early: Bytes,
}

impl UpstreamSocket {
    /// Wraps `tcp`, whose next bytes are `early`.
    pub(crate) fn new(tcp: TcpStream, early: Bytes) -> UpstreamSocket {
        quick_ack(&tcp);
        UpstreamSocket { tcp, early }
    }
}

/// Asks the kernel to acknowledge the next segments at once (Linux only; a hint, so a
/// failure changes nothing but latency).
fn quick_ack(tcp: &TcpStream) {
    #[cfg(target_os = "linux")]
    {
        let _ = socket2::SockRef::from(tcp).set_tcp_quickack(true);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = tcp;
}

impl AsyncRead for UpstreamSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.early.is_empty() {
            let n = self.early.len().min(buf.remaining());
            buf.put_slice(&self.early[..n]);
            self.early.advance(n);
            if self.early.is_empty() {
                // Frees hyper's read buffer.
                self.early = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            quick_ack(&self.tcp);
        }
        read
    }
}

impl AsyncWrite for UpstreamSocket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test]
    async fn early_bytes_come_first_then_the_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (mut server, _) = server.expect("accept");
        let mut socket = UpstreamSocket::new(client.expect("connect"), Bytes::from_static(b"ab"));
        server.write_all(b"cd").await.expect("write");
        let mut got = [0u8; 4];
        socket.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"abcd");
        socket.write_all(b"ef").await.expect("write back");
        let mut back = [0u8; 2];
        server.read_exact(&mut back).await.expect("read back");
        assert_eq!(&back, b"ef");
    }
}
