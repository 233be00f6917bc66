//! Tests of the scheduler client against scripted HTTP/1.1 servers on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::time::timeout;

use super::*;

const WAIT: Duration = Duration::from_secs(5);

/// A server that runs `script` on each accepted connection; counts connections.
async fn server<F, Fut>(script: F) -> (String, Arc<AtomicUsize>)
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    let script = Arc::new(script);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(script(stream));
        }
    });
    (addr, accepted)
}

/// Reads one request (head, and a body of `Content-Length` or chunked) and returns
/// it as text; `None` at the end of the stream.
async fn read_request(stream: &mut TcpStream, pending: &mut Vec<u8>) -> Option<String> {
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(pending).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end + 4];
            let lower = head.to_ascii_lowercase();
            let body_end = if let Some(at) = lower.find("content-length: ") {
                let digits: String = lower[at + 16..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                Some(end + 4 + digits.parse::<usize>().expect("length"))
            } else if lower.contains("transfer-encoding: chunked") {
                text[end + 4..].find("0\r\n\r\n").map(|at| end + 4 + at + 5)
            } else {
                Some(end + 4)
            };
            if let Some(body_end) = body_end.filter(|&e| e <= pending.len()) {
                let request = String::from_utf8_lossy(&pending[..body_end]).into_owned();
                pending.drain(..body_end);
                return Some(request);
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Answers every request on the connection with `response`.
async fn answer_each(mut stream: TcpStream, response: &'static str) {
    let mut pending = Vec::new();
    while read_request(&mut stream, &mut pending).await.is_some() {
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn client() -> Http1Client {
    Http1Client {
        pool: Arc::new(Pool::new(8, Duration::from_secs(60))),
        connect_timeout: Duration::from_secs(2),
        max_head: 64 * 1024,
    }
}

fn get(target: &str) -> Outgoing {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::HOST,
        http::HeaderValue::from_static("reana.example.org"),
    );
    Outgoing {
        method: Method::GET,
        target: target.into(),
        headers,
        lines: Vec::new(),
        added: Added::none(),
        body: http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed_unsync(),
    }
}

fn with_body(method: Method, body: RequestBody) -> Outgoing {
    Outgoing {
        method,
        body,
        ..get("/upload")
    }
}

async fn send(
    client: &Http1Client,
    addr: &str,
    request: Outgoing,
) -> Result<(u16, Bytes), UpstreamFailure> {
    let response = timeout(WAIT, client.send(addr, request))
        .await
        .expect("in time")?
        .into_response();
    let status = response.status().as_u16();
    let body = timeout(WAIT, response.into_body().collect())
        .await
        .expect("in time");
    Ok((status, body.expect("body").to_bytes()))
}

#[tokio::test]
async fn keep_alive_connections_are_reused() {
    let (addr, accepted) =
        server(|s| answer_each(s, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")).await;
    let client = client();
    for _ in 0..5 {
        assert_eq!(
            send(&client, &addr, get("/status")).await,
            Ok((200, Bytes::from_static(b"hello")))
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn chunked_bodies_are_decoded_and_the_connection_reused() {
    let (addr, accepted) = server(|s| {
        answer_each(
            s,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n",
        )
    })
    .await;
    let client = client();
    for _ in 0..3 {
        assert_eq!(
            send(&client, &addr, get("/")).await,
            Ok((200, Bytes::from_static(b"wikipedia")))
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn close_delimited_bodies_end_with_the_connection() {
    let (addr, accepted) = server(|mut s| async move {
        let mut pending = Vec::new();
        if read_request(&mut s, &mut pending).await.is_some() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\nuntil close").await;
        }
    })
    .await;
    let client = client();
    for _ in 0..2 {
        assert_eq!(
            send(&client, &addr, get("/")).await,
            Ok((200, Bytes::from_static(b"until close")))
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "never reused");
}

#[tokio::test]
async fn large_bodies_stream_in_pieces() {
    static BIG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let big = BIG.get_or_init(|| {
        let body = "x".repeat(1 << 20);
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    });
    let (addr, accepted) = server(move |s| answer_each(s, big.as_str())).await;
    let client = client();
    for _ in 0..2 {
        let (status, body) = send(&client, &addr, get("/")).await.expect("answered");
        assert_eq!((status, body.len()), (200, 1 << 20));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn request_bodies_are_framed() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (addr, _) = server(move |mut s| {
        let tx = tx.clone();
        async move {
            let mut pending = Vec::new();
            while let Some(request) = read_request(&mut s, &mut pending).await {
                let _ = tx.send(request);
                let _ = s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
            }
        }
    })
    .await;
    let client = client();
    let known = Full::new(Bytes::from_static(b"hello"))
        .map_err(|never| match never {})
        .boxed_unsync();
    assert_eq!(
        send(&client, &addr, with_body(Method::POST, known)).await,
        Ok((204, Bytes::new()))
    );
    let request = rx.recv().await.expect("request");
    assert!(
        request.starts_with("POST /upload HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.ends_with("content-length: 5\r\n\r\nhello"),
        "{request}"
    );

    let (sender, stream) =
        tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, BoxError>>(4);
    let unknown = http_body_util::StreamBody::new(tokio_stream_from(stream)).boxed_unsync();
    let sending = tokio::spawn(async move {
        for part in ["ab", "", "cde"] {
            let frame = http_body::Frame::data(Bytes::from_static(part.as_bytes()));
            let _ = sender.send(Ok(frame)).await;
        }
    });
    assert_eq!(
        send(&client, &addr, with_body(Method::PUT, unknown)).await,
        Ok((204, Bytes::new()))
    );
    sending.await.expect("sender");
    let request = rx.recv().await.expect("request");
    assert!(
        request.contains("transfer-encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"),
        "{request}"
    );
}

/// A stream of the channel's items.
fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn a_get_on_a_pooled_connection_the_scheduler_closed_is_sent_again() {
    // Each connection answers once, keeps the connection as if alive, then closes it
    // before the next request can be read: the client meets a closed pooled socket.
    let (addr, accepted) = server(|mut s| async move {
        let mut pending = Vec::new();
        if read_request(&mut s, &mut pending).await.is_some() {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    })
    .await;
    let client = client();
    assert_eq!(
        send(&client, &addr, get("/")).await,
        Ok((200, Bytes::from_static(b"ok")))
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        send(&client, &addr, get("/")).await,
        Ok((200, Bytes::from_static(b"ok")))
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_post_is_never_sent_twice() {
    // The scheduler reads the request, then drops the connection without answering.
    let (addr, accepted) = server(|mut s| async move {
        let mut pending = Vec::new();
        let _ = read_request(&mut s, &mut pending).await;
    })
    .await;
    let client = client();
    let body = Full::new(Bytes::from_static(b"x"))
        .map_err(|never| match never {})
        .boxed_unsync();
    let result = send(&client, &addr, with_body(Method::POST, body)).await;
    assert!(matches!(result, Err(UpstreamFailure::Io(_))), "{result:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn interim_responses_are_skipped() {
    let (addr, _) = server(|s| {
        answer_each(
            s,
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz",
        )
    })
    .await;
    assert_eq!(
        send(&client(), &addr, get("/")).await,
        Ok((200, Bytes::from_static(b"z")))
    );
}

#[tokio::test]
async fn broken_answers_are_protocol_errors() {
    for answer in [
        "HTTP/1.1 101 Switching Protocols\r\n\r\n",
        "garbage\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    ] {
        let (addr, _) = server(move |s| answer_each(s, answer)).await;
        let result = send(&client(), &addr, get("/")).await;
        assert!(
            matches!(result, Err(UpstreamFailure::Protocol(_))),
            "{answer:?}: {result:?}"
        );
    }
    let (addr, _) = server(|mut s| async move {
        let mut pending = Vec::new();
        if read_request(&mut s, &mut pending).await.is_some() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n").await;
            loop {
                if s.write_all(b"X-Filler: 0123456789012345678901234567890123456789\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    })
    .await;
    let result = send(&client(), &addr, get("/")).await;
    assert_eq!(
        result,
        Err(UpstreamFailure::Protocol("response head too large"))
    );
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_and_its_connection_dropped() {
    let (addr, accepted) = server(|mut s| async move {
        let mut pending = Vec::new();
        if read_request(&mut s, &mut pending).await.is_some() {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial")
                .await;
        }
    })
    .await;
    let client = client();
    let response = timeout(WAIT, client.send(&addr, get("/")))
        .await
        .expect("in time")
        .expect("head")
        .into_response();
    let body = timeout(WAIT, response.into_body().collect())
        .await
        .expect("in time");
    assert!(body.is_err());
    assert_eq!(client.pool.idle_count(), 0);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unreachable_scheduler_is_a_connect_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let result = send(&client(), &addr, get("/")).await;
    assert!(
        matches!(result, Err(UpstreamFailure::Connect(_))),
        "{result:?}"
    );
}
