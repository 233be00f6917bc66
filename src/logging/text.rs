//! The plain-text line format (no colours), written without the general-purpose
//! formatting machinery: `2026-12-02T04:21:00.123456Z  INFO access: request_id="…"
//! method=GET status=200 …`, the same text `tracing-subscriber`'s default format
//! prints without ANSI colours, at a fraction of its cost per line.

use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The text event format.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Text;

impl<S, N> FormatEvent<S, N> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // The line is put together in a buffer of this thread's (plain appends, no
        // dynamic call per piece) and handed over in one write.
        LINE.with(|cell| {
            let mut line = cell.take();
            line.clear();
            let result = format_line(&mut line, event).and_then(|()| writer.write_str(&line));
            if line.capacity() <= MAX_KEPT_LINE {
                cell.set(line);
            }
            result
        })
    }
}

/// A line buffer larger than this is not kept for the next line.
pub(super) const MAX_KEPT_LINE: usize = 4096;

thread_local! {
    /// The line being formatted on this thread.
    static LINE: Cell<String> = const { Cell::new(String::new()) };
}

fn format_line(line: &mut String, event: &Event<'_>) -> fmt::Result {
    write_timestamp(line, SystemTime::now())?;
    let meta = event.metadata();
    line.push_str(level(meta.level()));
    line.push(' ');
    line.push_str(meta.target());
    line.push(':');
    let mut fields = Fields {
        out: line,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result?;
    line.push('\n');
    Ok(())
}

/// The level, right-aligned to five characters, after a separating space.
fn level(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => " ERROR",
        Level::WARN => "  WARN",
        Level::INFO => "  INFO",
        Level::DEBUG => " DEBUG",
        Level::TRACE => " TRACE",
    }
}

thread_local! {
    /// The last second formatted on this thread, and its text.
    static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// Appends the timestamp of a line (see `write_timestamp`).
pub(super) fn push_timestamp(out: &mut String, now: SystemTime) {
    // Writing into a `String` does not fail.
    let _ = write_timestamp(out, now);
}

/// Appends a string field's value as a line shows it: quoted as `{:?}` quotes it.
pub(super) fn push_str_value(out: &mut String, value: &str) {
    if plain(value) {
        out.push('"');
        out.push_str(value);
        out.push('"');
    } else {
        let _ = write!(out, "{value:?}");
    }
}

/// Appends a number field's value as a line shows it (see `write_f64`).
pub(super) fn push_f64(out: &mut String, value: f64) {
    let _ = write_f64(out, value);
}

/// RFC 3339 in UTC with microseconds: `2026-12-02T04:21:00.123456Z`.
fn write_timestamp(out: &mut impl fmt::Write, now: SystemTime) -> fmt::Result {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let text = SECOND.with(|cell| {
        let (cached, text) = cell.get();
        if cached == secs {
            return text;
        }
        let text = format_second(secs);
        cell.set((secs, text));
        text
    });
    out.write_str(std::str::from_utf8(&text).unwrap_or("0000-00-00T00:00:00"))?;
    let micros = since.subsec_micros();
    let mut frac = *b".000000Z";
    let mut rest = micros;
    for digit in frac[1..7].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.write_str(std::str::from_utf8(&frac).unwrap_or(".000000Z"))
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time (proleptic Gregorian calendar, UTC).
fn format_second(secs: u64) -> [u8; 19] {
    let days = secs / 86_400;
    let in_day = secs % 86_400;
    // Days to civil date (Howard Hinnant's algorithm), for dates after 1970.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let mut out = *b"0000-00-00T00:00:00";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for digit in out[at..at + width].iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, in_day / 3600);
    put(14, 2, in_day / 60 % 60);
    put(17, 2, in_day % 60);
    out
}

/// Writes ` name=value` per field (the message bare), strings quoted as `{:?}`
/// quotes them.
struct Fields<'a> {
    out: &'a mut String,
    result: fmt::Result,
}

impl Fields<'_> {
    fn name(&mut self, field: &Field) {
        self.out.push(' ');
        if field.name() != "message" {
            self.out.push_str(field.name());
            self.out.push('=');
        }
    }

    fn put(&mut self, field: &Field, value: impl FnOnce(&mut String) -> fmt::Result) {
        if self.result.is_ok() {
            self.name(field);
            self.result = value(self.out);
        }
    }
}

/// True when `{:?}` prints `s` as `"` + `s` + `"` (nothing escaped).
fn plain(s: &str) -> bool {
    // A pass without early exit, which the compiler runs on vectors.
    s.bytes().fold(true, |ok, b| {
        ok & ((0x20..0x7f).contains(&b) & (b != b'"') & (b != b'\\'))
    })
}

/// `{:?}` of `value` (the shortest text that reads back as the same number), without
/// the general float formatting when `value` is a whole number of thousandths, as
/// durations in milliseconds with microsecond precision are.
fn write_f64(out: &mut String, value: f64) -> fmt::Result {
    let thousandths = (value * 1000.0).round();
    // Below 2^53 every such number is exact, and its shortest text is its decimal
    // form; from 1e-4 on, `{:?}` writes it without an exponent.
    if !(1.0..9.0e15).contains(&thousandths) || thousandths / 1000.0 != value {
        return write!(out, "{value:?}");
    }
    let n = thousandths as u64;
    out.push_str(itoa::Buffer::new().format(n / 1000));
    let frac = n % 1000;
    let digits = [
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ];
    let keep = if frac % 100 == 0 {
        1
    } else if frac % 10 == 0 {
        2
    } else {
        3
    };
    out.push('.');
    out.push_str(std::str::from_utf8(&digits[..keep]).unwrap_or("0"));
    Ok(())
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let bare = field.name() == "message";
        self.put(field, |out| {
            if bare {
                out.push_str(value);
            } else {
                push_str_value(out, value);
            }
            Ok(())
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, |out| {
            out.push_str(itoa::Buffer::new().format(value));
            Ok(())
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, |out| {
            out.push_str(itoa::Buffer::new().format(value));
            Ok(())
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, |out| write_f64(out, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, |out| {
            out.push_str(if value { "true" } else { "false" });
            Ok(())
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, |out| write!(out, "{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, |out| write!(out, "{value:?}"));
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::io;
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::Duration;

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[test]
    fn seconds_are_civil_utc_dates() {
        let text = |secs| String::from_utf8(format_second(secs).to_vec()).expect("ascii");
        assert_eq!(text(0), "1970-01-01T00:00:00");
        assert_eq!(text(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(text(1_798_761_599), "2026-12-31T23:59:59");
        assert_eq!(text(4_107_542_400), "2100-03-01T00:00:00");
        let mut out = String::new();
        let at = UNIX_EPOCH + Duration::from_micros(1_798_761_599_000_042);
        write_timestamp(&mut out, at).expect("formatted");
        assert_eq!(out, "2026-12-31T23:59:59.000042Z");
    }

    #[test]
    fn numbers_are_written_as_debug_writes_them() {
        let text = |value: f64| {
            let mut out = String::new();
            write_f64(&mut out, value).expect("formatted");
            out
        };
        let mut values: Vec<f64> = (0..200_000u64).map(|m| m as f64 / 1000.0).collect();
        values.extend((0..20_000u64).map(|m| (m * 7_919 + 123_456_789) as f64 / 1000.0));
        values.extend([
            -1.5,
            0.0,
            -0.0,
            1e-7,
            0.0001,
            0.0004,
            0.1234567,
            1.0 / 3.0,
            123_456.789_012,
            8.9e12,
            9.1e12,
            1e16,
            1e20,
            f64::NAN,
            f64::INFINITY,
            f64::MIN_POSITIVE,
        ]);
        for value in values {
            assert_eq!(text(value), format!("{value:?}"), "{value:e}");
        }
    }

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    pub(in crate::logging) struct Captured(pub(in crate::logging) Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            all.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// The line of one access event, formatted by `format` (without the timestamp).
    fn line_of<F>(format: F) -> String
    where
        F: FormatEvent<
                tracing_subscriber::Registry,
                tracing_subscriber::fmt::format::DefaultFields,
            > + Send
            + Sync
            + 'static,
    {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(captured.clone())
            .event_format(format)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let method = http::Method::GET;
            tracing::info!(
                target: "access",
                request_id = "0f3a",
                method = %method,
                path = "/dashboard/w1/status",
                status = 200u16,
                duration_ms = 1.25,
                user = "alice \"a\"",
                websocket = false,
            );
            tracing::warn!(error = %"no route", workflow = "w1", "request refused");
        });
        let all = captured
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let text = String::from_utf8(all).expect("utf-8");
        // The timestamp differs between the two formats: compare what follows it.
        text.lines()
            .map(|l| l.split_once('Z').map_or(l, |(_, rest)| rest))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn lines_match_the_default_format_without_colours() {
        let default = tracing_subscriber::fmt::format()
            .with_ansi(false)
            .with_target(true);
        assert_eq!(line_of(Text), line_of(default));
        assert!(line_of(Text).contains(
            "  INFO access: request_id=\"0f3a\" method=GET path=\"/dashboard/w1/status\" status=200 duration_ms=1.25 user=\"alice \\\"a\\\"\" websocket=false"
        ), "{}", line_of(Text));
    }
}
