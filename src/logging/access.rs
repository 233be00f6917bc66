//! The access log: one line per request, at `info` on target `access`.
//!
//! With the plain-text format (the default outside a terminal) the line is
//! formatted here and handed to the batch writer directly: the same text the
//! `tracing` event would give (`text::Text`), without the dispatch, the field
//! visitor and `fmt` for the method and the address. Any other output (JSON, a
//! terminal's colours, a test's subscriber) gets the `tracing` event. Either way
//! the level filter decides, `RUST_LOG` included.

use std::cell::Cell;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use tracing::Level;

use super::batch::BatchWriter;
use super::text;
use crate::proxy::headers::IpText;

/// The writer of the direct path, set once when the text format is installed.
static DIRECT: OnceLock<BatchWriter> = OnceLock::new();

/// Sends access lines straight to `writer` from now on.
pub(super) fn write_directly(writer: BatchWriter) {
    let _ = DIRECT.set(writer);
}

/// What the access log says about one request.
#[derive(Debug)]
pub(crate) struct AccessLine<'a> {
    pub(crate) request_id: &'a str,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) status: u16,
    pub(crate) duration: Duration,
    pub(crate) user: &'a str,
    pub(crate) workflow: &'a str,
    pub(crate) client: IpAddr,
    pub(crate) websocket: bool,
}

impl AccessLine<'_> {
    /// Logs the line, if the filter lets `access` at `info` through.
    pub(crate) fn log(&self) {
        if !tracing::enabled!(target: "access", Level::INFO) {
            return;
        }
        match DIRECT.get() {
            Some(writer) => LINE.with(|cell| {
                let mut line = cell.take();
                line.clear();
                self.format(&mut line, SystemTime::now());
                writer.append(line.as_bytes());
                if line.capacity() <= text::MAX_KEPT_LINE {
                    cell.set(line);
                }
            }),
            None => self.event(),
        }
    }

    /// The `tracing` event (for every output but the plain text one).
    fn event(&self) {
        tracing::info!(
            target: "access",
            request_id = self.request_id,
            method = %self.method,
            path = self.path,
            status = self.status,
            // Microsecond precision.
            duration_ms = duration_ms(self.duration),
            user = self.user,
            workflow = self.workflow,
            client = %IpText::new(self.client),
            websocket = self.websocket,
        );
    }

    /// The line `text::Text` prints for the event, timestamp `now`.
    fn format(&self, line: &mut String, now: SystemTime) {
        text::push_timestamp(line, now);
        line.push_str("  INFO access: request_id=");
        text::push_str_value(line, self.request_id);
        line.push_str(" method=");
        line.push_str(self.method);
        line.push_str(" path=");
        text::push_str_value(line, self.path);
        line.push_str(" status=");
        line.push_str(itoa::Buffer::new().format(self.status));
        line.push_str(" duration_ms=");
        text::push_f64(line, duration_ms(self.duration));
        line.push_str(" user=");
        text::push_str_value(line, self.user);
        line.push_str(" workflow=");
        text::push_str_value(line, self.workflow);
        line.push_str(" client=");
        line.push_str(IpText::new(self.client).as_str());
        line.push_str(if self.websocket {
            " websocket=true\n"
        } else {
            " websocket=false\n"
        });
    }
}

fn duration_ms(duration: Duration) -> f64 {
    duration.as_micros() as f64 / 1000.0
}

thread_local! {
    /// The line being formatted on this thread.
    static LINE: Cell<String> = const { Cell::new(String::new()) };
}

#[cfg(test)]
mod tests {
    use std::sync::PoisonError;

    use super::super::text::tests::Captured;
    use super::*;

    /// The line through `tracing` and the text format, without its timestamp.
    fn through_tracing(access: &AccessLine<'_>) -> String {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(captured.clone())
            .event_format(text::Text)
            .finish();
        tracing::subscriber::with_default(subscriber, || access.event());
        let bytes = captured.0.lock().unwrap_or_else(PoisonError::into_inner);
        let line = String::from_utf8(bytes.clone()).expect("utf-8");
        line.split_once(' ').expect("timestamp").1.to_string()
    }

    #[test]
    fn the_direct_line_is_the_line_tracing_prints() {
        let cases = [
            AccessLine {
                request_id: "0123456789abcdef0123456789abcdef",
                method: "GET",
                path: "/dashboard/wf-1/status",
                status: 200,
                duration: Duration::from_micros(1234),
                user: "alice",
                workflow: "wf-1",
                client: "10.0.0.7".parse().expect("ip"),
                websocket: false,
            },
            AccessLine {
                request_id: "id with \"quotes\" and \\",
                method: "PROPFIND",
                path: "/dashboard/wf/é\u{7f}",
                status: 101,
                duration: Duration::from_secs(3) + Duration::from_nanos(7),
                user: "-",
                workflow: "-",
                client: "2001:db8::1".parse().expect("ip"),
                websocket: true,
            },
            AccessLine {
                request_id: "",
                method: "HEAD",
                path: "/",
                status: 404,
                duration: Duration::ZERO,
                user: "bob\n",
                workflow: "x",
                client: "::ffff:192.0.2.1".parse().expect("ip"),
                websocket: false,
            },
        ];
        for access in cases {
            let mut line = String::new();
            access.format(&mut line, SystemTime::UNIX_EPOCH);
            let (timestamp, rest) = line.split_once(' ').expect("timestamp");
            assert_eq!(timestamp, "1970-01-01T00:00:00.000000Z");
            assert_eq!(rest, through_tracing(&access), "{access:?}");
        }
    }
}
