//! WebSocket load tool for `bench/ws`: an echo upstream, pipelined echo load, idle
//! sockets held open, and Bokeh SERVER-INFO round trips through a dashboard.
//!
//! Every subcommand runs on one current-thread runtime, so the tool costs one core at
//! most. Clients set TCP_NODELAY and nothing else, as a browser does. Every wait is
//! bounded; errors end the process with a message and a non-zero status.

use std::error::Error;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use http::header::{HeaderName, HeaderValue};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep, timeout, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

// Shared with the tests, which export it (`pub`) to their own crates.
#[allow(unreachable_pub)]
#[path = "../tests/support/bokeh_page.rs"]
mod bokeh_page;
use bokeh_page::session_token_from_html;

type BoxError = Box<dyn Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;
type Ws = WebSocketStream<TcpStream>;

/// Longest wait for any single step: a handshake, a message, a page.
const STEP: Duration = Duration::from_secs(30);

#[derive(Parser)]
#[command(about = "WebSocket load tool for bench/ws")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve WebSockets that echo every text and binary message.
    Echo {
        /// Address to listen on, e.g. 127.0.0.1:9000.
        #[arg(long)]
        listen: String,
    },
    /// Keep `window` binary messages in flight on each connection; print msgs/s.
    EchoLoad {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 16)]
        connections: usize,
        #[arg(long, default_value_t = 64)]
        window: usize,
        /// Message size in bytes (at least 8: a sequence number leads each).
        #[arg(long, default_value_t = 1024)]
        size: usize,
        /// Load before the measured period.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        /// The measured period.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Open idle WebSockets (one echo each), print `ready`, hold them, close them.
    Hold {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        #[arg(long, default_value_t = 5.0)]
        hold_seconds: f64,
    },
    /// Time Bokeh SERVER-INFO-REQ → SERVER-INFO-REPLY on a dashboard's /status/ws.
    BokehRtt {
        /// The dashboard's base URL, e.g. http://127.0.0.1:8787 or
        /// http://127.0.0.1:8080/dashboard/dask.
        #[arg(long)]
        base: String,
        /// Extra request header `Name: value` (repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
        #[arg(long, default_value_t = 50)]
        count: usize,
    },
}

#[derive(clap::Args)]
struct Target {
    /// ws://host:port/path
    #[arg(long)]
    url: String,
    /// Extra request header `Name: value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Echo { listen } => echo_server(&listen).await,
            Command::EchoLoad {
                target,
                connections,
                window,
                size,
                warmup,
                seconds,
            } => {
                let load = EchoLoad {
                    connections,
                    window,
                    size,
                    warmup: secs(warmup)?,
                    seconds: secs(seconds)?,
                };
                echo_load(&target, &load).await
            }
            Command::Hold {
                target,
                connections,
                hold_seconds,
            } => hold(&target, connections, secs(hold_seconds)?).await,
            Command::BokehRtt {
                base,
                headers,
                count,
            } => bokeh_rtt(&base, &headers, count).await,
        }
    })
}

fn secs(value: f64) -> Result<Duration> {
    Ok(Duration::try_from_secs_f64(value)?)
}

/// Prints one line to stdout at once: the script reads these as they come.
fn say(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

// ---- client side ----

/// Opens a WebSocket to `url` with extra headers over a TCP_NODELAY socket.
async fn connect(url: &str, headers: &[String]) -> Result<Ws> {
    let mut req = url.into_client_request()?;
    for header in headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("header `{header}` is not `Name: value`"))?;
        req.headers_mut().append(
            HeaderName::from_bytes(name.trim().as_bytes())?,
            HeaderValue::from_str(value.trim())?,
        );
    }
    let authority = req
        .uri()
        .authority()
        .ok_or_else(|| format!("no host in {url}"))?
        .to_string();
    let open = async {
        let tcp = TcpStream::connect(&authority).await?;
        tcp.set_nodelay(true)?;
        let (ws, _) = tokio_tungstenite::client_async(req, tcp).await?;
        Ok::<_, BoxError>(ws)
    };
    timeout(STEP, open)
        .await
        .map_err(|_| format!("no handshake with {url} within {STEP:?}"))?
        .map_err(|e| format!("opening {url}: {e}").into())
}

/// The next message of any kind, within [`STEP`].
async fn next(ws: &mut Ws) -> Result<Message> {
    match timeout(STEP, ws.next()).await {
        Err(_) => Err(format!("no message within {STEP:?}").into()),
        Ok(None) => Err("the connection closed".into()),
        Ok(Some(msg)) => Ok(msg?),
    }
}

// ---- echo ----

async fn echo_server(listen: &str) -> Result<()> {
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (tcp, _) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = echo_connection(tcp).await {
                eprintln!("wsbench echo: {e}");
            }
        });
    }
}

/// Echoes every text and binary message, each in its own write, until the peer
/// closes.
async fn echo_connection(tcp: TcpStream) -> Result<()> {
    tcp.set_nodelay(true)?;
    // A port probe (bench/ws waits for the port) closes without a handshake.
    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
        return Ok(());
    };
    while let Some(msg) = ws.next().await {
        match msg? {
            msg @ (Message::Text(_) | Message::Binary(_)) => ws.send(msg).await?,
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
    // Sends the close reply tungstenite queued; the peer may be gone.
    let _ = ws.flush().await;
    Ok(())
}

// ---- echo-load ----

struct EchoLoad {
    connections: usize,
    window: usize,
    size: usize,
    warmup: Duration,
    seconds: Duration,
}

/// Prints `measuring` when the measured period starts, `done` when it ends, then
/// `messages=N seconds=T msgs_per_s=R` (echoes received in that period).
async fn echo_load(target: &Target, load: &EchoLoad) -> Result<()> {
    if load.size < 8 || load.window == 0 {
        return Err("--size must be at least 8 and --window at least 1".into());
    }
    let template: Bytes = (0..load.size).map(|i| i as u8).collect::<Vec<u8>>().into();
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..load.connections {
        let ws = connect(&target.url, &target.headers).await?;
        let pump = Pump {
            window: load.window,
            template: template.clone(),
            received: received.clone(),
            stop: stop.clone(),
        };
        tasks.push(tokio::spawn(pump.run(ws)));
    }

    sleep(load.warmup).await;
    let start = (Instant::now(), received.load(Ordering::Relaxed));
    say("measuring")?;
    sleep(load.seconds).await;
    let end = (Instant::now(), received.load(Ordering::Relaxed));
    say("done")?;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        timeout(STEP, task)
            .await
            .map_err(|_| "a connection did not stop")???;
    }

    let messages = end.1 - start.1;
    let seconds = (end.0 - start.0).as_secs_f64();
    say(&format!(
        "messages={messages} seconds={seconds:.3} msgs_per_s={:.0}",
        messages as f64 / seconds
    ))
}

/// One connection of the echo load: `window` messages sent, then one more for each
/// echo received, in order.
struct Pump {
    window: usize,
    template: Bytes,
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Pump {
    async fn run(self, mut ws: Ws) -> Result<()> {
        let (mut sent, mut echoed) = (0u64, 0u64);
        // Each message in its own write, as a browser's `WebSocket.send` does.
        for _ in 0..self.window {
            ws.send(self.message(sent)).await?;
            sent += 1;
        }
        while !self.stop.load(Ordering::Relaxed) {
            let msg = next(&mut ws).await?;
            if self.check(msg, &mut echoed)? {
                ws.send(self.message(sent)).await?;
                sent += 1;
            }
        }
        // Wind down without resets: take the echoes in flight, close, await the reply.
        let wind_down = async {
            while echoed < sent {
                let msg = next(&mut ws).await?;
                self.check(msg, &mut echoed)?;
            }
            ws.close(None).await?;
            while let Some(Ok(_)) = ws.next().await {}
            Ok::<_, BoxError>(())
        };
        timeout(Duration::from_secs(5), wind_down)
            .await
            .map_err(|_| "the connection did not wind down within 5 s")?
    }

    /// Message `seq`: the template with `seq` in its first 8 bytes.
    fn message(&self, seq: u64) -> Message {
        let mut payload = self.template.to_vec();
        payload[..8].copy_from_slice(&seq.to_le_bytes());
        Message::Binary(payload.into())
    }

    /// True for the echo of the next message in order; an error for anything else
    /// but control frames.
    fn check(&self, msg: Message, echoed: &mut u64) -> Result<bool> {
        let payload = match msg {
            Message::Binary(payload) => payload,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Ok(false),
            other => return Err(format!("unexpected message {other:?}").into()),
        };
        let seq = payload
            .get(..8)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
            .map(u64::from_le_bytes);
        if seq != Some(*echoed) || payload[8..] != self.template[8..] {
            return Err(format!("echo {echoed} is wrong (seq {seq:?})").into());
        }
        *echoed += 1;
        self.received.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }
}

// ---- hold ----

/// Opens `connections` sockets, one echo on each, prints `ready`, holds them idle
/// for `hold_for`, closes them and prints `closed`.
async fn hold(target: &Target, connections: usize, hold_for: Duration) -> Result<()> {
    let mut sockets = Vec::with_capacity(connections);
    for i in 0..connections {
        let mut ws = connect(&target.url, &target.headers)
            .await
            .map_err(|e| format!("socket {i}: {e}"))?;
        ws.send(Message::text("hello")).await?;
        match next(&mut ws).await? {
            Message::Text(t) if t.as_str() == "hello" => {}
            other => return Err(format!("socket {i}: no echo but {other:?}").into()),
        }
        sockets.push(ws);
    }
    say("ready")?;
    sleep(hold_for).await;
    let closes = sockets
        .iter_mut()
        .map(|ws| timeout(Duration::from_secs(5), ws.close(None)));
    futures_util::future::join_all(closes).await;
    say("closed")
}

// ---- bokeh-rtt ----

/// Prints `p50_ms=… p90_ms=… min_ms=… max_ms=… n=…` for `count` SERVER-INFO round
/// trips on one Bokeh session of `<base>/status`.
async fn bokeh_rtt(base: &str, headers: &[String], count: usize) -> Result<()> {
    let base = base.trim_end_matches('/');
    let page = http_get(&format!("{base}/status"), headers).await?;
    let token = session_token_from_html(&page).ok_or("no Bokeh session token in /status")?;
    let ws_url = match base.strip_prefix("http://") {
        Some(rest) => format!("ws://{rest}/status/ws"),
        None => return Err(format!("{base} is not an http:// URL").into()),
    };
    let mut ws_headers = headers.to_vec();
    ws_headers.push(format!("Sec-WebSocket-Protocol: bokeh, {token}"));
    let mut ws = connect(&ws_url, &ws_headers).await?;
    let ack = next_bokeh(&mut ws).await?;
    if ack["msgtype"] != "ACK" {
        return Err(format!("expected ACK first, got {ack}").into());
    }

    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        let msgid = format!("wsbench-{i}");
        let start = Instant::now();
        let header = json!({"msgid": msgid, "msgtype": "SERVER-INFO-REQ"});
        for part in [header.to_string(), "{}".to_owned(), "{}".to_owned()] {
            ws.send(Message::text(part)).await?;
        }
        loop {
            let reply = next_bokeh(&mut ws).await?;
            if reply["msgtype"] == "SERVER-INFO-REPLY" && reply["reqid"] == msgid.as_str() {
                break;
            }
        }
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = timeout(Duration::from_secs(5), ws.close(None)).await;

    if times.is_empty() {
        return Err("--count must be at least 1".into());
    }
    times.sort_by(f64::total_cmp);
    // Nearest rank: the smallest time with at least p of all at or below it.
    let rank = |p: f64| times[((p * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
    say(&format!(
        "p50_ms={:.2} p90_ms={:.2} min_ms={:.2} max_ms={:.2} n={}",
        rank(0.5),
        rank(0.9),
        times[0],
        times[times.len() - 1],
        times.len()
    ))
}

/// Reads one whole Bokeh message (header, metadata, content, then `num_buffers`
/// pairs of buffer header and binary payload, as bokeh's `protocol/receiver.py`
/// expects) and returns its header.
async fn next_bokeh(ws: &mut Ws) -> Result<Value> {
    let header: Value = serde_json::from_str(&next_text(ws).await?)?;
    next_text(ws).await?; // metadata
    next_text(ws).await?; // content
    for _ in 0..header["num_buffers"].as_u64().unwrap_or(0) {
        next_text(ws).await?;
        match next_data(ws).await? {
            Message::Binary(_) => {}
            other => return Err(format!("expected a binary buffer, got {other:?}").into()),
        }
    }
    Ok(header)
}

async fn next_text(ws: &mut Ws) -> Result<String> {
    match next_data(ws).await? {
        Message::Text(t) => Ok(t.to_string()),
        other => Err(format!("expected a text fragment, got {other:?}").into()),
    }
}

/// The next text, binary or close message (control frames skipped).
async fn next_data(ws: &mut Ws) -> Result<Message> {
    loop {
        match next(ws).await? {
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            Message::Close(frame) => return Err(format!("closed: {frame:?}").into()),
            msg => return Ok(msg),
        }
    }
}

/// `GET url` with extra headers; the body of a 200 response as text.
async fn http_get(url: &str, headers: &[String]) -> Result<String> {
    let mut req = http::Request::get(url);
    for header in headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("header `{header}` is not `Name: value`"))?;
        req = req.header(name.trim(), value.trim());
    }
    let req = req.body(Empty::<Bytes>::new())?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let exchange = async {
        let resp = client.request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok::<_, BoxError>((status, body))
    };
    let (status, body) = timeout(STEP, exchange)
        .await
        .map_err(|_| format!("GET {url}: no response within {STEP:?}"))??;
    if status != http::StatusCode::OK {
        return Err(format!("GET {url}: {status}").into());
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}
