//! A minimal HTTP/1.1 client for the tests (hyper-util, no redirects followed, every
//! call under a timeout), and one keep-alive connection for request floods.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::wait::STEP;

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
        header(&self.headers, name)
    }

    /// Every value of header `name` (e.g. `set-cookie`).
    pub fn header_all(&self, name: &str) -> Vec<String> {
        header_all(&self.headers, name)
    }

    /// Status, headers and the start of the body, for assertion messages.
    pub fn describe(&self) -> String {
        let text = self.text();
        let body: String = text.chars().take(400).collect();
        format!("{} {:?} body: {body}", self.status, self.headers)
    }
}

/// The first value of `name` in `headers`, when present and visible ASCII.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Every value of `name` in `headers`, as (lossy) text.
pub fn header_all(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
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

/// One keep-alive HTTP/1.1 connection for request floods.
pub struct KeepAlive {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
}

impl KeepAlive {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> KeepAlive {
        let stream = timeout(STEP, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        let (sender, conn) = timeout(
            STEP,
            hyper::client::conn::http1::handshake(TokioIo::new(stream)),
        )
        .await
        .expect("handshake in time")
        .expect("handshake");
        tokio::spawn(conn);
        KeepAlive { sender }
    }

    /// `GET path` with `headers` on this connection; the status.
    pub async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> u16 {
        let mut req = Request::get(path).header("host", "gw.test");
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let exchange = async {
            self.sender.ready().await.expect("connection usable");
            let resp = self
                .sender
                .send_request(req.body(Empty::new()).expect("request"))
                .await
                .expect("response");
            let status = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            status
        };
        timeout(STEP, exchange).await.expect("response in time")
    }
}
