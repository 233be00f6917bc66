//! A minimal HTTP/1.1 client for the tests (hyper-util, no redirects followed, every
//! call under a 30 s timeout), a raw WebSocket handshake helper, and a fake upstream.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::WebSocketStream;

/// How long one request (connect, head and whole body) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A whole HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Response {
    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {}", self.text()))
    }

    /// The first value of header `name`, when present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of header `name` (e.g. `set-cookie`).
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// Status, headers and the start of the body, for assertion messages.
    pub fn describe(&self) -> String {
        let text = self.text();
        let body: String = text.chars().take(400).collect();
        format!("{} {:?} body: {body}", self.status, self.headers)
    }
}

/// `GET url` with extra headers.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Response {
    request("GET", url, headers, Bytes::new()).await
}

/// Any request; panics (with the reason) when it cannot be sent or times out.
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Response {
    try_request(method, url, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// Any request; `Err` when the connection fails, breaks or takes longer than
/// [`REQUEST_TIMEOUT`].
pub async fn try_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Response, String> {
    let method = Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let req = builder
        .body(Full::new(body.into()))
        .map_err(|e| format!("bad request: {e}"))?;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http();
    let exchange = async {
        let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("reading body: {e}"))?
            .to_bytes();
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    };
    timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no complete response within {REQUEST_TIMEOUT:?}"))?
}

/// The `name=value` pair of the first `Set-Cookie` whose name is `name`.
pub fn set_cookie(resp: &Response, name: &str) -> Option<String> {
    resp.header_all("set-cookie").into_iter().find(|c| {
        c.split(';')
            .next()
            .and_then(|pair| pair.split_once('='))
            .is_some_and(|(n, _)| n.trim() == name)
    })
}

/// A WebSocket handshake that the server refused, or that failed.
#[derive(Debug)]
pub enum WsRefused {
    /// The server answered with this non-101 status.
    Status {
        /// Status code.
        status: u16,
        /// Response headers.
        headers: HeaderMap,
        /// Body, when it sent one.
        body: String,
    },
    /// Connect, protocol or timeout failure.
    Other(String),
}

impl WsRefused {
    /// The refusal's status code, when the server answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            WsRefused::Status { status, .. } => Some(*status),
            WsRefused::Other(_) => None,
        }
    }
}

/// Panics unless `result` is a handshake refused with status `want`; `what` names
/// the attempt in the message.
#[track_caller]
pub fn assert_ws_refused(result: WsResult, want: u16, what: &str) {
    match result {
        Ok((_, resp)) => panic!(
            "{what}: the handshake was accepted ({} {:?}), expected {want}",
            resp.status(),
            resp.headers()
        ),
        Err(refused) => assert_eq!(refused.status(), Some(want), "{what}: {refused:?}"),
    }
}

/// An open client WebSocket over plain TCP.
pub type Ws = WebSocketStream<TcpStream>;

/// An open WebSocket and its 101 response, or why there is none.
pub type WsResult = Result<(Ws, http::Response<Option<Vec<u8>>>), WsRefused>;

/// Opens a WebSocket to `url` (`ws://host:port/path`) with extra request headers
/// (e.g. `Origin`, `Authorization`, `Sec-WebSocket-Protocol`; a `Host` given here
/// replaces the one derived from the URL). Returns the stream and the 101 response.
pub async fn websocket(url: &str, headers: &[(&str, &str)]) -> WsResult {
    let mut req = url
        .into_client_request()
        .map_err(|e| WsRefused::Other(format!("bad url {url}: {e}")))?;
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| WsRefused::Other(format!("bad header name {name}: {e}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|e| WsRefused::Other(format!("bad header value: {e}")))?;
        req.headers_mut().insert(name, value);
    }
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .ok_or_else(|| WsRefused::Other(format!("no host in {url}")))?;
    let handshake = async {
        let tcp = TcpStream::connect(&authority)
            .await
            .map_err(|e| WsRefused::Other(format!("connect {authority}: {e}")))?;
        tokio_tungstenite::client_async(req, tcp)
            .await
            .map_err(|e| match e {
                WsError::Http(resp) => WsRefused::Status {
                    status: resp.status().as_u16(),
                    headers: resp.headers().clone(),
                    body: resp
                        .body()
                        .as_deref()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_default(),
                },
                other => WsRefused::Other(format!("handshake: {other}")),
            })
    };
    timeout(REQUEST_TIMEOUT, handshake)
        .await
        .map_err(|_| WsRefused::Other(format!("no handshake within {REQUEST_TIMEOUT:?}")))?
}

/// A stand-in upstream on 127.0.0.1:0: counts the connections it accepts, records
/// each request head, and answers every request with one canned raw response.
pub struct FakeUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeUpstream {
    /// Starts one that answers `response` (a whole raw HTTP/1.1 response; the
    /// connection is closed after it).
    pub async fn start(response: &str) -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the fake upstream");
        let addr = listener.local_addr().expect("fake upstream address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let response = response.to_owned();
        let task = tokio::spawn({
            let accepted = accepted.clone();
            let requests = requests.clone();
            async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let requests = requests.clone();
                    let response = response.clone();
                    tokio::spawn(async move {
                        let head = timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await;
                        if let Ok(Some(head)) = head {
                            if let Ok(mut r) = requests.lock() {
                                r.push(head);
                            }
                            let _ = stream.write_all(response.as_bytes()).await;
                            let _ = stream.shutdown().await;
                        }
                    });
                }
            }
        });
        FakeUpstream {
            addr,
            accepted,
            requests,
            task,
        }
    }

    /// Starts one that never answers usefully: for tests that must prove no
    /// connection was made.
    pub async fn silent() -> FakeUpstream {
        FakeUpstream::start(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await
    }

    /// `http://<addr>`, for a static route.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The request heads received so far (request line and headers).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 || head.len() > 1 << 20 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}
