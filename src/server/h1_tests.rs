use http::{HeaderName, HeaderValue};

use super::*;

fn parsed(raw: &str) -> (Parsed, BytesMut) {
    let mut buf = BytesMut::from(raw.as_bytes());
    let parsed = parse(&mut buf, &mut Vec::new());
    (parsed, buf)
}

fn served(raw: &str) -> Head {
    match parsed(raw).0 {
        Parsed::Complete(head) => head,
        Parsed::Partial => panic!("partial: {raw:?}"),
        Parsed::Other => panic!("handed to hyper: {raw:?}"),
    }
}

fn handed_off(raw: &str) -> bool {
    let (parsed, buf) = parsed(raw);
    // Nothing is taken from a head hyper gets.
    matches!(parsed, Parsed::Other) && buf == raw.as_bytes()
}

#[test]
fn plain_gets_and_heads_are_served() {
    let head = served(
        "GET /dashboard/wf/status?x=1 HTTP/1.1\r\nHost: gw\r\nCookie: a=b\r\nCookie: c=d\r\n\r\n",
    );
    assert!(!head.close);
    let req = head.request;
    assert_eq!(req.method(), Method::GET);
    assert_eq!(req.uri().path(), "/dashboard/wf/status");
    assert_eq!(req.uri().query(), Some("x=1"));
    assert_eq!(req.version(), http::Version::HTTP_11);
    // The fields are in the raw head, not in the request's map.
    assert!(req.headers().is_empty());
    let fields = head.raw.to_map();
    assert_eq!(fields["host"], "gw");
    let cookies: Vec<_> = fields.get_all("cookie").iter().collect();
    assert_eq!(cookies, ["a=b", "c=d"]);
    assert!(req.body().is_end_stream());

    let head = served("HEAD / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n");
    assert_eq!(head.request.method(), Method::HEAD);
    assert!(head.close);
}

#[test]
fn a_head_is_taken_off_the_buffer_and_the_next_one_stays() {
    let (parsed, buf) = parsed("GET /a HTTP/1.1\r\nHost: gw\r\n\r\nGET /b HTTP/1.1\r\n");
    assert!(matches!(parsed, Parsed::Complete(_)));
    assert_eq!(&buf[..], b"GET /b HTTP/1.1\r\n");
}

#[test]
fn incomplete_heads_wait_for_more() {
    let (parsed, buf) = parsed("GET /a HTTP/1.1\r\nHost: g");
    assert!(matches!(parsed, Parsed::Partial));
    assert_eq!(&buf[..], b"GET /a HTTP/1.1\r\nHost: g");
}

#[test]
fn everything_else_goes_to_hyper_untouched() {
    for raw in [
        "POST /a HTTP/1.1\r\nHost: gw\r\nContent-Length: 1\r\n\r\nx",
        "GET /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "GET /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET /a HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        "GET /a HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
        "GET /a HTTP/1.0\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\n\r\n",
        "GET http://gw/a HTTP/1.1\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "GET /a HTTP/1.1\r\nBad Name: x\r\n\r\n",
        "GET /a\x01 HTTP/1.1\r\n\r\n",
        "get /a HTTP/1.1\r\n\r\n",
    ] {
        assert!(handed_off(raw), "{raw:?}");
    }
}

#[test]
fn too_many_fields_go_to_hyper() {
    let mut raw = String::from("GET / HTTP/1.1\r\n");
    for i in 0..=MAX_HEADERS {
        raw.push_str(&format!("x-{i}: y\r\n"));
    }
    raw.push_str("\r\n");
    assert!(handed_off(&raw));
}

fn head_of(
    status: StatusCode,
    fields: &[(&str, &str)],
    length: BodyLength,
    head_only: bool,
    close: bool,
) -> (String, Framing, bool) {
    let mut headers = HeaderMap::new();
    for (name, value) in fields {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let mut out = Vec::new();
    let mut close = close;
    let framing = encode_head(
        &mut out, status, None, &headers, length, head_only, &mut close,
    );
    (String::from_utf8(out).unwrap(), framing, close)
}

const DATE_LINE: &str = "date: Tue, 01 Dec 2026 00:00:00 GMT";

#[test]
fn heads_are_written_as_hyper_writes_them() {
    let date = ("date", &DATE_LINE[6..]);
    let (text, framing, close) = head_of(
        StatusCode::OK,
        &[("content-type", "text/plain"), date],
        BodyLength::Known(5),
        false,
        false,
    );
    assert_eq!(
        text,
        format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n{DATE_LINE}\r\ncontent-length: 5\r\n\r\n")
    );
    assert_eq!((framing, close), (Framing::Length(5), false));

    // A length field the body agrees with is kept where it is.
    let (text, framing, _) = head_of(
        StatusCode::NOT_FOUND,
        &[("content-length", "3"), date],
        BodyLength::Known(3),
        false,
        false,
    );
    assert_eq!(
        text,
        format!("HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n{DATE_LINE}\r\n\r\n")
    );
    assert_eq!(framing, Framing::Length(3));

    // A body of unknown length is chunked; closing is announced.
    let (text, framing, close) = head_of(StatusCode::OK, &[date], BodyLength::Unknown, false, true);
    assert_eq!(
        text,
        format!("HTTP/1.1 200 OK\r\n{DATE_LINE}\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n")
    );
    assert_eq!((framing, close), (Framing::Chunked, true));

    // An empty body gets `content-length: 0`, except where no length may be sent.
    let (text, framing, _) = head_of(StatusCode::FOUND, &[date], BodyLength::Empty, false, false);
    assert_eq!(
        text,
        format!("HTTP/1.1 302 Found\r\n{DATE_LINE}\r\ncontent-length: 0\r\n\r\n")
    );
    assert_eq!(framing, Framing::None);
    let (text, _, _) = head_of(
        StatusCode::NOT_MODIFIED,
        &[date],
        BodyLength::Empty,
        false,
        false,
    );
    assert_eq!(
        text,
        format!("HTTP/1.1 304 Not Modified\r\n{DATE_LINE}\r\n\r\n")
    );

    // HEAD: the length of what GET would send stays; no body follows.
    let (text, framing, _) = head_of(
        StatusCode::OK,
        &[("content-length", "2048"), date],
        BodyLength::Empty,
        true,
        false,
    );
    assert_eq!(
        text,
        format!("HTTP/1.1 200 OK\r\ncontent-length: 2048\r\n{DATE_LINE}\r\n\r\n")
    );
    assert_eq!(framing, Framing::None);

    // A response that says close closes the connection.
    let (_, _, close) = head_of(
        StatusCode::OK,
        &[("connection", "close"), date],
        BodyLength::Empty,
        false,
        false,
    );
    assert!(close);
}

#[test]
fn a_missing_date_is_added() {
    let (text, _, _) = head_of(StatusCode::OK, &[], BodyLength::Empty, false, false);
    let date = text
        .lines()
        .find_map(|l| l.strip_prefix("date: "))
        .expect("a date field");
    assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
    assert!(text.ends_with("\r\n\r\n"));
}

#[test]
fn classification_of_fields() {
    assert_eq!(classify(b"Content-Length", b"0"), Field::NotServed);
    assert_eq!(classify(b"TRANSFER-ENCODING", b"chunked"), Field::NotServed);
    assert_eq!(classify(b"upgrade", b"websocket"), Field::NotServed);
    assert_eq!(classify(b"expect", b"100-continue"), Field::NotServed);
    assert_eq!(classify(b"connection", b"keep-alive"), Field::Plain);
    assert_eq!(
        classify(b"connection", b" keep-alive , CLOSE "),
        Field::Close
    );
    assert_eq!(classify(b"content-type", b"text/plain"), Field::Plain);
}

/// A connection served by the loop on loopback, with the client's end.
async fn loop_on_loopback(stop: CancellationToken) -> (tokio::task::JoinHandle<Ended>, TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (mut server, peer) = accepted.expect("accept");
    let settings = ConnSettings {
        header_read_timeout: std::time::Duration::from_secs(30),
        http1_keep_alive_timeout: std::time::Duration::from_secs(30),
        http2_keep_alive_interval: std::time::Duration::from_secs(30),
        http2_keep_alive_timeout: std::time::Duration::from_secs(30),
        http2_idle_timeout: std::time::Duration::from_secs(30),
        max_header_bytes: 16 * 1024,
        native_http1: true,
    };
    let served = tokio::spawn(async move {
        let handler = |_req: Request<RequestBody>, _raw, _peer: SocketAddr| async {
            Reply::from(http::Response::new(crate::body::full("ok")))
        };
        let by = Instant::now() + settings.header_read_timeout;
        let started = AtomicBool::new(false);
        serve(&mut server, peer, &settings, &handler, &stop, by, &started).await
    });
    (served, client.expect("connect"))
}

#[tokio::test]
async fn a_stop_closes_a_keep_alive_connection_waiting_after_its_response() {
    use tokio::io::AsyncReadExt as _;
    let wait = std::time::Duration::from_secs(5);
    let stop = CancellationToken::new();
    let (served, mut client) = loop_on_loopback(stop.clone()).await;
    client
        .write_all(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("write");
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(wait, client.read(&mut answer))
        .await
        .expect("answered in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
    // The loop now waits for a second request (the stop is only checked then).
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        !served.is_finished(),
        "the connection stays open until the stop"
    );
    stop.cancel();
    let ended = tokio::time::timeout(wait, served)
        .await
        .expect("the stop ends the wait")
        .expect("served");
    assert!(matches!(ended, Ended::Closed), "{ended:?}");
}
