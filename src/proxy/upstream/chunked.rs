//! The chunked transfer coding of a scheduler's response body (RFC 9112 §7.1),
//! decoded in place: data chunks come out as slices of the read buffer, the chunk
//! framing and any trailer section are consumed and dropped.

use bytes::{Buf, Bytes, BytesMut};

use super::UpstreamFailure;

/// Longest chunk-size line (with extensions) or trailer line accepted.
const MAX_LINE: usize = 4096;
/// Largest trailer section accepted.
const MAX_TRAILERS: usize = 16 * 1024;

/// Where the decoder is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one; bytes seen so far.
    Trailers(usize),
    /// The body has ended.
    Done,
}

/// What one decoding step produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Body data.
    Data(Bytes),
    /// The buffer holds no whole piece: read more.
    More,
    /// The body has ended; the buffer now starts after it.
    Done,
}

/// A chunked-body decoder.
#[derive(Debug)]
pub(crate) struct Chunked {
    state: State,
}

impl Chunked {
    /// A decoder at the start of a body.
    pub(crate) fn new() -> Chunked {
        Chunked { state: State::Size }
    }

    /// Consumes what it can of `buf`: returns data as soon as there is some.
    pub(crate) fn step(&mut self, buf: &mut BytesMut) -> Result<Step, UpstreamFailure> {
        loop {
            match self.state {
                State::Size => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Step::More);
                    };
                    let size = chunk_size(&line)?;
                    self.state = if size == 0 {
                        State::Trailers(0)
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(n).freeze();
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(Step::Data(data));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Step::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(UpstreamFailure::Protocol("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    self.state = State::Size;
                }
                State::Trailers(seen) => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Step::More);
                    };
                    if line.is_empty() {
                        self.state = State::Done;
                        return Ok(Step::Done);
                    }
                    let seen = seen + line.len() + 2;
                    if seen > MAX_TRAILERS {
                        return Err(UpstreamFailure::Protocol("trailer section too large"));
                    }
                    self.state = State::Trailers(seen);
                }
                State::Done => return Ok(Step::Done),
            }
        }
    }
}

/// Takes one CRLF-terminated line off `buf` (without its CRLF); `None` when `buf`
/// holds no whole line yet.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, UpstreamFailure> {
    let window = &buf[..buf.len().min(MAX_LINE + 2)];
    let Some(end) = window.iter().position(|&b| b == b'\n') else {
        if buf.len() > MAX_LINE + 1 {
            return Err(UpstreamFailure::Protocol("chunk line too long"));
        }
        return Ok(None);
    };
    if end == 0 || buf[end - 1] != b'\r' {
        return Err(UpstreamFailure::Protocol("chunk line not ended by CRLF"));
    }
    let mut line = buf.split_to(end + 1);
    line.truncate(end - 1);
    Ok(Some(line))
}

/// The hexadecimal chunk size at the start of `line`, before any `;` extension.
fn chunk_size(line: &[u8]) -> Result<u64, UpstreamFailure> {
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii_end();
    if digits.is_empty() || digits.len() > 15 {
        return Err(UpstreamFailure::Protocol("invalid chunk size"));
    }
    digits.iter().try_fold(0u64, |n, &d| {
        let v = char::from(d)
            .to_digit(16)
            .ok_or(UpstreamFailure::Protocol("invalid chunk size"))?;
        Ok(n << 4 | u64::from(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; returns the data and what is
    /// left in the buffer after the body.
    fn decode(input: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), UpstreamFailure> {
        let mut decoder = Chunked::new();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match decoder.step(&mut buf)? {
                Step::Data(data) => out.extend_from_slice(&data),
                Step::Done => return Ok((out, buf.to_vec())),
                Step::More => {
                    assert!(fed < input.len(), "body ended early");
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn decodes_whatever_the_read_sizes() {
        let body =
            b"5\r\nhello\r\n1;ext=\"x\"\r\n \r\nA \r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, 100] {
            let (data, rest) = decode(body, step).expect("valid body");
            assert_eq!(data, b"hello 0123456789", "step {step}");
            // Whatever followed the body stays in the buffer.
            assert!(b"NEXT".starts_with(&rest), "step {step}: {rest:?}");
        }
    }

    #[test]
    fn an_empty_body_is_just_the_last_chunk() {
        assert_eq!(decode(b"0\r\n\r\n", 5).expect("valid").0, b"");
    }

    #[test]
    fn malformed_framing_is_an_error() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"1000000000000000\r\n",
            b"-1\r\n",
        ] {
            assert!(
                decode(bad, 64).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn lines_and_trailers_are_bounded() {
        let mut long = vec![b'1'; 1];
        long.extend(std::iter::repeat_n(b' ', MAX_LINE + 10));
        assert!(decode(&long, 64).is_err());
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..(MAX_TRAILERS / 10 + 2) {
            trailers.extend_from_slice(b"x: 123456\r\n");
        }
        trailers.extend_from_slice(b"\r\n");
        assert!(decode(&trailers, 4096).is_err());
    }

    #[test]
    fn large_sizes_are_counted_down_across_reads() {
        let mut decoder = Chunked::new();
        let mut buf = BytesMut::from(&b"fffff\r\nabc"[..]);
        assert_eq!(
            decoder.step(&mut buf),
            Ok(Step::Data(Bytes::from_static(b"abc")))
        );
        assert_eq!(decoder.step(&mut buf), Ok(Step::More));
        assert_eq!(decoder.state, State::Data(0xfffff - 3));
    }
}
