//! A connection handed from the gateway's own HTTP/1.1 loop to hyper: the bytes the
//! loop read but did not serve are read again first, then the socket.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `io` with `pre` put back in front of what it will read.
pub(super) struct Rewind<T> {
    pre: Bytes,
    io: T,
}

impl<T> Rewind<T> {
    pub(super) fn new(pre: Bytes, io: T) -> Rewind<T> {
        Rewind { pre, io }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pre.is_empty() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let n = this.pre.len().min(buf.remaining());
        buf.put_slice(&this.pre[..n]);
        this.pre.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_the_put_back_bytes_first() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b" world").await.unwrap();
        drop(a);
        let mut io = Rewind::new(Bytes::from_static(b"hello"), b);
        let mut got = String::new();
        io.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "hello world");
    }

    #[tokio::test]
    async fn small_reads_take_the_put_back_bytes_in_pieces() {
        let (_a, b) = tokio::io::duplex(64);
        let mut io = Rewind::new(Bytes::from_static(b"abcdef"), b);
        let mut two = [0u8; 2];
        io.read_exact(&mut two).await.unwrap();
        assert_eq!(&two, b"ab");
        io.read_exact(&mut two).await.unwrap();
        assert_eq!(&two, b"cd");
    }
}
