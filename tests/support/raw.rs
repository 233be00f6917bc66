//! Raw TCP exchanges, below what an HTTP or WebSocket library lets a client do: a
//! request written byte for byte, an upgrade request with exactly the handshake
//! headers a test chooses, and reading a client's socket as plain TCP to learn
//! whether the gateway dropped it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};

use super::wait::STEP;

/// A response read from a raw TCP exchange.
#[derive(Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Header lines, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// Everything after the head, as sent (chunked framing included).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Every value of `name` (lowercase).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Status, headers and the body as (lossy) text, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "{} {:?} body: {}",
            self.status,
            self.headers,
            String::from_utf8_lossy(&self.body)
        )
    }
}

/// Writes `request` as is, then reads until the server closes the connection (send
/// `Connection: close`), all within [`STEP`].
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> RawResponse {
    parse_raw(&raw_bytes(addr, request).await)
}

/// Sends `request` as given on a new connection to `addr`; every byte the server
/// sends until it closes the connection (within [`STEP`]).
pub async fn raw_bytes(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request).await.expect("write request");
        let mut data = Vec::new();
        let _ = stream.read_to_end(&mut data).await;
        data
    };
    timeout(STEP, exchange)
        .await
        .expect("the server did not finish its response and close the connection")
}

fn parse_raw(data: &[u8]) -> RawResponse {
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no complete response head: {:?}",
                String::from_utf8_lossy(data)
            )
        });
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: data[end + 4..].to_vec(),
    }
}

/// A valid `Sec-WebSocket-Key` (RFC 6455 §1.3's example: base64 of 16 bytes).
pub const GOOD_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Sends `GET path` to `addr` as an HTTP/1.1 WebSocket upgrade: `Host: addr`,
/// `Connection: Upgrade`, `Upgrade: websocket`, then `headers` exactly as given
/// (so the handshake headers are the caller's: none are added). Returns the
/// response head (its body is whatever came with it) read within [`STEP`].
pub async fn upgrade_request(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> RawResponse {
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("write the upgrade request");
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        while !data.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.expect("read the response");
            assert!(
                n > 0,
                "the connection closed before a response head: {:?}",
                String::from_utf8_lossy(&data)
            );
            data.extend_from_slice(&buf[..n]);
        }
        data
    };
    let data = timeout(STEP, exchange)
        .await
        .expect("no response head to the upgrade request within the step timeout");
    parse_raw(&data)
}

/// How a client's socket ended when read as plain TCP.
#[derive(Debug)]
pub struct Drained {
    /// Bytes read before the end.
    pub bytes: usize,
    /// `None` for an orderly end (EOF), else the read error (e.g. a reset).
    pub error: Option<std::io::ErrorKind>,
}

/// Reads `tcp` without ever writing (so no close handshake is answered) until the
/// peer ends the connection (EOF or a reset); panics when it is still open after
/// `within`: the peer kept the connection although nobody answers it.
pub async fn drain_until_dropped(tcp: &mut TcpStream, within: Duration, what: &str) -> Drained {
    let deadline = Instant::now() + within;
    let mut buf = vec![0u8; 256 * 1024];
    let mut bytes = 0;
    loop {
        match timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => panic!(
                "{what}: the connection was still open {within:?} later \
                 ({bytes} bytes read, no EOF or reset)"
            ),
            Ok(Ok(0)) => return Drained { bytes, error: None },
            Ok(Ok(n)) => bytes += n,
            Ok(Err(e)) => {
                return Drained {
                    bytes,
                    error: Some(e.kind()),
                }
            }
        }
    }
}
