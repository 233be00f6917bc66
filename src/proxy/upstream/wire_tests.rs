//! Tests of the request head encoding and response head parsing.

use super::*;

fn head(
    method: &Method,
    target: &str,
    headers: &[(&str, &str)],
    framing: RequestFraming,
) -> String {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        );
    }
    let mut out = Vec::new();
    let fields = super::Fields {
        headers: &map,
        lines: &[],
        added: &Added::none(),
    };
    encode_request_head(&mut out, method, target, fields, framing).expect("encodable");
    String::from_utf8(out).expect("ascii")
}

#[test]
fn request_head_keeps_fields_and_sets_its_own_framing() {
    let text = head(
        &Method::POST,
        "/json/x?a=1",
        &[
            ("host", "reana.example.org"),
            ("content-length", "99"),
            ("transfer-encoding", "chunked"),
            ("expect", "100-continue"),
            ("x-a", "1"),
            ("x-a", "2"),
        ],
        RequestFraming::Length(5),
    );
    assert_eq!(
        text,
        "POST /json/x?a=1 HTTP/1.1\r\nhost: reana.example.org\r\nx-a: 1\r\nx-a: 2\r\ncontent-length: 5\r\n\r\n"
    );
    let text = head(
        &Method::GET,
        "/status",
        &[("host", "h")],
        RequestFraming::None,
    );
    assert_eq!(text, "GET /status HTTP/1.1\r\nhost: h\r\n\r\n");
    let text = head(&Method::PUT, "/", &[], RequestFraming::Chunked);
    assert_eq!(text, "PUT / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n");
}

#[test]
fn request_framing_follows_the_body() {
    assert_eq!(
        RequestFraming::new(&Method::GET, Some(0), true),
        RequestFraming::None
    );
    assert_eq!(
        RequestFraming::new(&Method::POST, Some(0), true),
        RequestFraming::Length(0)
    );
    assert_eq!(
        RequestFraming::new(&Method::POST, Some(7), false),
        RequestFraming::Length(7)
    );
    assert_eq!(
        RequestFraming::new(&Method::POST, None, false),
        RequestFraming::Chunked
    );
}

#[test]
fn targets_that_could_split_the_request_line_are_refused() {
    for target in ["status", "/a b", "/a\r\nx: y", "/\u{7f}", ""] {
        let mut out = Vec::new();
        let result = encode_request_head(
            &mut out,
            &Method::GET,
            target,
            Fields {
                headers: &HeaderMap::new(),
                lines: &[],
                added: &Added::none(),
            },
            RequestFraming::None,
        );
        assert_eq!(result, Err(UpstreamFailure::InvalidRequest), "{target:?}");
    }
}

fn parse(text: &str, method: &Method) -> Result<Option<ResponseHead>, UpstreamFailure> {
    let mut buf = BytesMut::from(text.as_bytes());
    parse_response_head(&mut buf, method)
}

fn parsed(text: &str, method: &Method) -> ResponseHead {
    parse(text, method).expect("valid").expect("complete")
}

#[test]
fn response_head_is_parsed_and_taken_off_the_buffer() {
    let mut buf = BytesMut::from(
        &b"HTTP/1.1 301 Moved Permanently\r\nLocation: /status\r\nContent-Length: 3\r\nX-A: 1\r\nX-A: 2\r\n\r\nabcNEXT"[..],
    );
    let head = parse_response_head(&mut buf, &Method::GET)
        .expect("valid")
        .expect("complete");
    assert_eq!(head.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(head.headers["location"], "/status");
    assert_eq!(head.headers.get_all("x-a").iter().count(), 2);
    assert_eq!(head.framing, ResponseFraming::Length(3));
    assert!(head.keep_alive);
    assert_eq!(&buf[..], b"abcNEXT");
}

#[test]
fn partial_and_malformed_heads() {
    assert!(parse("HTTP/1.1 200 OK\r\nContent-Len", &Method::GET)
        .expect("partial")
        .is_none());
    for bad in [
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        "SMTP 220 hello\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
    ] {
        assert!(parse(bad, &Method::GET).is_err(), "{bad:?}");
    }
}

#[test]
fn framing_per_rfc_9112_section_6_3() {
    let get = &Method::GET;
    let cases = [
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
            get,
            ResponseFraming::Length(10),
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\n\r\n",
            get,
            ResponseFraming::Length(4),
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            get,
            ResponseFraming::Empty,
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            get,
            ResponseFraming::Chunked,
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n",
            get,
            ResponseFraming::Chunked,
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            get,
            ResponseFraming::Close,
            false,
        ),
        // Both: the transfer coding wins, and the connection is not reused.
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            get,
            ResponseFraming::Chunked,
            false,
        ),
        (
            "HTTP/1.1 200 OK\r\n\r\n",
            get,
            ResponseFraming::Close,
            false,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
            &Method::HEAD,
            ResponseFraming::Empty,
            true,
        ),
        (
            "HTTP/1.1 204 No Content\r\n\r\n",
            get,
            ResponseFraming::Empty,
            true,
        ),
        (
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
            get,
            ResponseFraming::Empty,
            true,
        ),
        (
            "HTTP/1.1 100 Continue\r\n\r\n",
            get,
            ResponseFraming::Empty,
            true,
        ),
        (
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
            get,
            ResponseFraming::Length(1),
            false,
        ),
        (
            "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n",
            get,
            ResponseFraming::Length(1),
            false,
        ),
        (
            "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\n",
            get,
            ResponseFraming::Length(1),
            true,
        ),
    ];
    for (text, method, framing, keep_alive) in cases {
        let head = parsed(text, method);
        assert_eq!(
            (head.framing, head.keep_alive),
            (framing, keep_alive),
            "{text:?}"
        );
    }
}

#[test]
fn decimal_lengths() {
    assert_eq!(parse_decimal(b"0"), Some(0));
    assert_eq!(parse_decimal(b"18446744073709551615"), None, "20 digits");
    assert_eq!(
        parse_decimal(b"999999999999999999"),
        Some(999_999_999_999_999_999)
    );
    assert_eq!(parse_decimal(b"+1"), None);
    assert_eq!(parse_decimal(b""), None);
}

#[test]
fn hop_by_hop_fields_stop_at_the_parser() {
    let head = parsed(
        "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\n\
         Content-Type: text/html\r\nContent-Length: 0\r\nTE: trailers\r\nUpgrade: h2c\r\n\r\n",
        &Method::GET,
    );
    let names: Vec<&str> = head.headers.keys().map(HeaderName::as_str).collect();
    assert_eq!(names, ["content-type", "content-length"]);
    assert!(head.keep_alive);
}

#[test]
fn lines_of_any_form_are_written_in_the_usual_one() {
    // Without a space, with several, with trailing blanks, empty, in any case: each
    // becomes `name: value` in lower case, as the usual form is copied.
    let head = parsed(
        "HTTP/1.1 200 OK\r\nX-A:one\r\nX-B:   two\r\nX-C: three  \r\nX-Empty:\r\nX-E: \r\nX-Usual: four\r\nCONTENT-LENGTH: 0\r\n\r\n",
        &Method::HEAD,
    );
    let raw = head.raw.expect("kept as lines");
    assert_eq!(
        std::str::from_utf8(&raw.lines).unwrap(),
        "x-a: one\r\nx-b: two\r\nx-c: three\r\nx-empty: \r\nx-e: \r\nx-usual: four\r\ncontent-length: 0\r\n"
    );
}

#[test]
fn fields_of_a_plain_response_are_kept_as_the_lines_a_client_gets() {
    let head = parsed(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nDate: Tue, 01 Dec 2026 00:00:00 GMT\r\nContent-Length: 3\r\n\r\nabc",
        &Method::GET,
    );
    let raw = head.raw.expect("kept as lines");
    assert!(head.headers.is_empty());
    assert_eq!(
        std::str::from_utf8(&raw.lines).unwrap(),
        "content-type: text/plain\r\nset-cookie: a=1\r\nset-cookie: b=2\r\ndate: Tue, 01 Dec 2026 00:00:00 GMT\r\ncontent-length: 3\r\n"
    );
    assert!(raw.has_date && !raw.has_csp);
    let mut rest = HeaderMap::new();
    rest.insert("x-request-id", HeaderValue::from_static("id"));
    let map = raw.into_map(rest);
    let pairs: Vec<_> = map
        .iter()
        .map(|(n, v)| format!("{n}={}", v.to_str().unwrap()))
        .collect();
    assert_eq!(
        pairs,
        [
            "content-type=text/plain",
            "set-cookie=a=1",
            "set-cookie=b=2",
            "date=Tue, 01 Dec 2026 00:00:00 GMT",
            "content-length=3",
            "x-request-id=id"
        ]
    );
}

#[test]
fn fields_go_in_a_map_when_lines_would_not_be_what_hyper_writes() {
    for text in [
        // A Location to rewrite.
        "HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 1\r\n\r\n",
        // A name twice with another between (a map puts them together).
        "HTTP/1.1 200 OK\r\nX-A: 1\r\nX-B: 2\r\nx-a: 3\r\nContent-Length: 1\r\n\r\n",
        // Bodies hyper frames itself.
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 204 No Content\r\n\r\n",
    ] {
        let head = parsed(text, &Method::GET);
        assert!(head.raw.is_none(), "{text:?}");
    }
    let head = parsed("HTTP/1.1 200 OK\r\nX-A: 1\r\nX-A: 2\r\nContent-Security-Policy: x\r\nContent-Length: 9\r\n\r\n", &Method::HEAD);
    assert!(head.raw.is_some_and(|raw| raw.has_csp && !raw.has_date));
}

#[test]
fn a_name_repeated_apart_is_found_whatever_its_case_and_place() {
    // Every arrangement of up to six fields drawn from four names sharing a first
    // letter: the scan agrees with the definition, "a name comes again after another
    // name", case aside.
    let names = ["x-a", "X-B", "x-ab", "X-A"];
    for n in 1..=6u32 {
        for code in 0..4usize.pow(n) {
            let picked: Vec<&str> = (0..n).map(|i| names[code / 4usize.pow(i) % 4]).collect();
            let text: String = picked.iter().map(|name| format!("{name}: v\r\n")).collect();
            let text = format!("HTTP/1.1 200 OK\r\n{text}Content-Length: 0\r\n\r\n");
            let mut slots = [httparse::EMPTY_HEADER; 16];
            let mut response = httparse::Response::new(&mut slots);
            response.parse(text.as_bytes()).expect("valid head");
            let expected = (1..picked.len()).any(|i| {
                !picked[i].eq_ignore_ascii_case(picked[i - 1])
                    && picked[..i - 1]
                        .iter()
                        .any(|e| e.eq_ignore_ascii_case(picked[i]))
            });
            assert_eq!(
                Scan::of(response.headers).repeats_apart,
                expected,
                "{picked:?}"
            );
        }
    }
}

#[test]
fn a_bad_length_matters_only_where_the_length_is_read() {
    let bad = "HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n";
    assert_eq!(
        parse(bad, &Method::GET).err(),
        Some(UpstreamFailure::Protocol("conflicting content-length"))
    );
    let head = parsed(bad, &Method::HEAD);
    assert_eq!(head.framing, ResponseFraming::Empty);
    let bad = "HTTP/1.1 200 OK\r\nContent-Length: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(parsed(bad, &Method::GET).framing, ResponseFraming::Chunked);
    assert_eq!(
        parse(
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            &Method::GET
        )
        .err(),
        Some(UpstreamFailure::Protocol("invalid content-length"))
    );
}

#[test]
fn a_field_that_connection_names_is_neither_kept_nor_counted() {
    let head = parsed(
        "HTTP/1.1 200 OK\r\nConnection: Date, content-security-policy\r\nDate: x\r\n\
         Content-Security-Policy: y\r\nContent-Length: 1\r\n\r\n",
        &Method::GET,
    );
    let raw = head.raw.expect("kept as lines");
    assert_eq!(raw.lines, b"content-length: 1\r\n");
    assert!(!raw.has_date && !raw.has_csp);
}

#[test]
fn lines_are_the_same_whatever_the_spacing_of_the_scheduler() {
    let head = parsed(
        "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Type:text/plain\r\nX-A:   v  \r\nKeep-Alive: 5\r\n\
         ETag: \"e\"\r\nX-B: 1\r\nConnection: keep-alive\r\nCONTENT-LENGTH: 3\r\n\r\nabc",
        &Method::GET,
    );
    let raw = head.raw.expect("kept as lines");
    assert_eq!(
        std::str::from_utf8(&raw.lines).unwrap(),
        "server: x\r\ncontent-type: text/plain\r\nx-a: v\r\netag: \"e\"\r\nx-b: 1\r\n\
         content-length: 3\r\n"
    );
}
