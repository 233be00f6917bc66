//! The accept loop's placement: a thread that accepts only while the thread before
//! it is busy leaves new connections to the others until then.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::placement::{Accepting, Load};
use super::*;

/// A load set by the test, in thousandths.
struct Set(Arc<AtomicU32>);

impl Load for Set {
    fn busy(&mut self) -> f64 {
        f64::from(self.0.load(Ordering::Relaxed)) / 1000.0
    }
}

fn settings() -> ConnSettings {
    ConnSettings {
        header_read_timeout: Duration::from_secs(30),
        http1_keep_alive_timeout: Duration::from_secs(30),
        http2_keep_alive_interval: Duration::from_secs(30),
        http2_keep_alive_timeout: Duration::from_secs(30),
        http2_idle_timeout: Duration::from_secs(30),
        max_header_bytes: 16 * 1024,
        native_http1: true,
    }
}

/// Sends a request on a new connection and waits up to `within` for the answer's
/// first bytes (connecting succeeds either way: the kernel queues the connection).
async fn answered(addr: SocketAddr, within: Duration) -> bool {
    let mut client = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .expect("connected in time")
        .expect("connect");
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("write");
    let mut answer = [0u8; 64];
    match tokio::time::timeout(within, client.read(&mut answer)).await {
        Ok(Ok(n)) => answer[..n].starts_with(b"HTTP/1.1 200"),
        Ok(Err(_)) | Err(_) => false,
    }
}

#[tokio::test]
async fn a_thread_accepts_only_while_the_thread_before_it_is_busy() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let level = Arc::new(AtomicU32::new(0));
    let stop = CancellationToken::new();
    let handler = |_req: Request<RequestBody>, _raw, _peer: SocketAddr| async {
        Reply::from(http::Response::new(crate::body::full("ok")))
    };
    let served = tokio::spawn(serve(
        listener,
        Accepting::WhileBusy(Box::new(Set(Arc::clone(&level)))),
        None,
        settings(),
        handler,
        Ends {
            stop: stop.clone(),
            abort: stop.clone(),
            handoffs: Counter::default(),
        },
        Counter::default(),
    ));
    let unanswered = placement::PROBE_EVERY * 4;

    // The thread before is idle: nobody here takes the connection.
    assert!(!answered(addr, unanswered).await, "accepted while idle");

    // Busy: taken at the next probe, at the latest.
    level.store(900, Ordering::Relaxed);
    assert!(
        answered(addr, Duration::from_secs(5)).await,
        "not accepted while busy"
    );

    // Between the thresholds the thread keeps accepting.
    level.store(600, Ordering::Relaxed);
    tokio::time::sleep(unanswered).await;
    assert!(
        answered(addr, Duration::from_secs(5)).await,
        "stopped above the lower threshold"
    );

    // Idle again: no longer.
    level.store(100, Ordering::Relaxed);
    tokio::time::sleep(unanswered).await;
    assert!(
        !answered(addr, unanswered).await,
        "accepted after the load fell"
    );

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("stopped in time")
        .expect("served");
}
