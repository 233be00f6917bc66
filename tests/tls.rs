//! TLS on the public listener: HTTP/1.1 and HTTP/2 by ALPN, and certificate reload
//! (a new certificate for new connections, open connections undisturbed, a garbage
//! file ignored), and a WebSocket relayed over TLS. The certificate watcher runs on
//! the test's runtime: its polls are driven on a paused clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use dask_dashboard_gateway::tls::RELOAD_INTERVAL;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use support::config::GatewayConfig;
use support::gateway::TestGateway;
use support::upstream::WsUpstream;
use support::wait::{pass_paused, STEP as T};

/// A self-signed certificate for 127.0.0.1 with common name `cn`.
fn make_cert(dir: &Path, cn: &str) {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-days", "2", "-subj", &format!("/CN={cn}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(dir.join("new.key"))
        .arg("-out")
        .arg(dir.join("new.crt"))
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success());
    // Replace both files the way a cert-manager Secret update does: rename into place.
    std::fs::rename(dir.join("new.key"), dir.join("tls.key")).unwrap();
    std::fs::rename(dir.join("new.crt"), dir.join("tls.crt")).unwrap();
}

fn der(dir: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(dir.join("tls.crt")).unwrap()
}

fn connector(trusted: &[CertificateDer<'static>], alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in trusted {
        roots.add(cert.clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

async fn connect(
    addr: std::net::SocketAddr,
    trusted: &[CertificateDer<'static>],
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    timeout(T, connector(trusted, alpn).connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("tls handshake timed out"))?
}

/// Sends a keep-alive request for a path that answers without any upstream and
/// returns the status line.
async fn status_line(stream: &mut TlsStream<TcpStream>) -> String {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = timeout(T, stream.read(&mut buf)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    text.lines().next().unwrap_or_default().to_string()
}

/// A TLS gateway serving `dir`'s `tls.crt` and `tls.key`, with one static route
/// `tls-wf` owned by `alice` to `route`, if any.
async fn gateway_to(dir: &Path, route: Option<&str>) -> TestGateway {
    let mut config = GatewayConfig::new().tls(&dir.join("tls.crt"), &dir.join("tls.key"));
    if let Some(upstream) = route {
        config = config.route("tls-wf", upstream, "alice");
    }
    TestGateway::start(&config).await
}

/// Lets the certificate watcher (a task of this runtime, polling the files every
/// `RELOAD_INTERVAL`) take two looks on a paused clock: whatever it makes of the
/// files is in place afterwards, without waiting on the wall clock. (The TLS
/// handshakes themselves run on the serving threads' wall clock, after this.)
async fn two_watcher_rounds() {
    pass_paused(RELOAD_INTERVAL * 5 / 2).await;
}

#[tokio::test]
async fn serves_http1_and_http2_by_alpn() {
    let dir = tempfile::tempdir().unwrap();
    make_cert(dir.path(), "first");
    let gw = gateway_to(dir.path(), None).await;
    let addr = gw.public;
    let cert = der(dir.path());
    let h2 = connect(addr, std::slice::from_ref(&cert), &[b"h2", b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut h1 = connect(addr, &[cert], &[b"http/1.1"]).await.unwrap();
    assert_eq!(h1.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(status_line(&mut h1).await, "HTTP/1.1 404 Not Found");
}

#[tokio::test]
async fn reloads_certificate_without_disturbing_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    make_cert(dir.path(), "first");
    let first = der(dir.path());
    let gw = gateway_to(dir.path(), None).await;
    let addr = gw.public;

    let mut open = connect(addr, std::slice::from_ref(&first), &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(status_line(&mut open).await, "HTTP/1.1 404 Not Found");

    // A garbage certificate is ignored: the first one is still served.
    std::fs::write(dir.path().join("tls.crt"), b"not a certificate").unwrap();
    two_watcher_rounds().await;
    let still = connect(addr, std::slice::from_ref(&first), &[b"http/1.1"]).await;
    assert!(
        still.is_ok(),
        "the old certificate must still be served: {still:?}"
    );

    make_cert(dir.path(), "second");
    let second = der(dir.path());
    assert_ne!(first, second);
    two_watcher_rounds().await;
    // A client trusting only the new certificate gets in: it is loaded.
    let new = connect(addr, std::slice::from_ref(&second), &[b"http/1.1"]).await;
    assert!(new.is_ok(), "the new certificate is not served: {new:?}");
    // The first connection is undisturbed and keeps working.
    assert_eq!(status_line(&mut open).await, "HTTP/1.1 404 Not Found");
    // A client that trusts only the old certificate is now refused.
    assert!(connect(addr, &[first], &[b"http/1.1"]).await.is_err());
}

#[tokio::test]
async fn websocket_frames_pass_through_tls_both_ways() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let up = WsUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    make_cert(dir.path(), "ws");
    let gw = gateway_to(dir.path(), Some(&up.url())).await;
    let addr = gw.public;
    let token = gw.token_for("alice", Duration::from_secs(600));
    let tls = connect(addr, &[der(dir.path())], &[b"http/1.1"])
        .await
        .unwrap();
    let mut request = format!("wss://127.0.0.1:{}/dashboard/tls-wf/status/ws", addr.port())
        .into_client_request()
        .unwrap();
    let bearer = format!("Bearer {token}").parse().unwrap();
    request.headers_mut().insert("authorization", bearer);
    let (mut ws, response) = timeout(T, tokio_tungstenite::client_async(request, tls))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 101);
    // Small and large messages, several records' worth, both ways and in order.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    for message in [
        Message::text("over tls"),
        Message::binary(big.clone()),
        Message::text("after"),
    ] {
        timeout(T, ws.send(message.clone())).await.unwrap().unwrap();
        let echoed = loop {
            match timeout(T, ws.next()).await.unwrap().unwrap().unwrap() {
                Message::Ping(_) | Message::Pong(_) => continue,
                other => break other,
            }
        };
        assert_eq!(echoed, message);
    }
    timeout(T, ws.close(None)).await.unwrap().unwrap();
    up.wait_event("the client's close", |m| matches!(m, Message::Close(_)))
        .await;
}
