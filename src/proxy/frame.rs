//! WebSocket frame headers (RFC 6455 §5.2), read as they pass through the relay.
//!
//! The relay forwards frames byte for byte; [`Scanner`] reads only the headers of one
//! direction's stream so that the relay knows where frames end (to put a close frame of
//! its own between two frames), how long the current message is (1009 above the
//! limit), when a close frame has passed, and when a peer breaks the framing rules
//! (1002). It holds 14 bytes of state and never copies a payload.

use rand::Rng;

/// `FIN` bit of the first header byte.
const FIN: u8 = 0x80;
/// The three `RSV` bits: no extension is negotiated, so they must be 0.
const RSV: u8 = 0x70;
/// `MASK` bit of the second header byte.
const MASK: u8 = 0x80;
/// Largest payload of a control frame (§5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// Who writes the stream being scanned: clients mask every frame, servers none (§5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sender {
    /// The browser: every frame masked.
    Client,
    /// The scheduler: no frame masked.
    Server,
}

/// Why a stream stops being forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// A close frame ends at the stop offset: it is forwarded, nothing after it.
    Close,
    /// The frame starting at the stop offset would make its message exceed the limit.
    TooLarge,
    /// The frame starting at the stop offset breaks RFC 6455 framing.
    Protocol(&'static str),
}

/// Where scanning stands after some bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Stream offset up to which bytes may be forwarded (whole frames and payload
    /// bytes; a header is held back until it is complete).
    pub(crate) clear: u64,
    /// Set when forwarding ends at `clear`.
    pub(crate) stop: Option<Stop>,
}

/// Reads the frame headers of one direction of a WebSocket connection.
#[derive(Debug)]
pub(crate) struct Scanner {
    sender: Sender,
    max_message: u64,
    /// Stream offset of the next byte to scan.
    pos: u64,
    /// Bytes of a header still being read.
    header: [u8; 14],
    header_len: usize,
    /// Payload bytes of the current frame not yet scanned.
    remaining: u64,
    /// The current frame is a close frame.
    closing: bool,
    /// A fragmented data message is open (continuation frames expected).
    in_message: bool,
    /// Payload bytes of the open message so far.
    message_len: u64,
    /// Set once a stop was reported: nothing after it is scanned.
    stopped: Option<Scan>,
    /// Payload length and `FIN` of a frame refused as too large.
    refused: Option<(u64, bool)>,
}

impl Scanner {
    /// A scanner for frames written by `sender`, with messages of at most `max_message`
    /// payload bytes.
    pub(crate) fn new(sender: Sender, max_message: usize) -> Scanner {
        Scanner {
            sender,
            max_message: u64::try_from(max_message).unwrap_or(u64::MAX),
            pos: 0,
            header: [0; 14],
            header_len: 0,
            remaining: 0,
            closing: false,
            in_message: false,
            message_len: 0,
            stopped: None,
            refused: None,
        }
    }

    /// After a [`Stop::TooLarge`], scans on past the refused frame (with no limit), so
    /// that the peer's reply to the relay's close can be found in the bytes after those
    /// last scanned. Other stops leave the scanner stopped: the stream cannot be
    /// followed past them.
    pub(crate) fn skip_refused_frame(&mut self) {
        let Some((len, fin)) = self.refused.take() else {
            return;
        };
        self.stopped = None;
        self.remaining = len;
        self.in_message = !fin;
        self.max_message = u64::MAX;
    }

    /// Whether every byte cleared so far ends a whole frame, so that a frame of the
    /// relay's own may follow (a control frame may sit between two fragments).
    pub(crate) fn at_frame_boundary(&self) -> bool {
        self.remaining == 0
    }

    /// Scans the next `bytes` of the stream.
    pub(crate) fn scan(&mut self, bytes: &[u8]) -> Scan {
        if let Some(done) = self.stopped {
            return done;
        }
        let mut i = 0;
        while i < bytes.len() {
            if self.remaining > 0 {
                let take = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len() - i);
                i += take;
                self.remaining -= take as u64;
                if self.remaining == 0 && self.closing {
                    return self.stop(i, Stop::Close);
                }
                continue;
            }
            let header_start = self.pos + i as u64 - self.header_len as u64;
            let wanted = self.header_needed();
            let take = (wanted - self.header_len).min(bytes.len() - i);
            self.header[self.header_len..self.header_len + take]
                .copy_from_slice(&bytes[i..i + take]);
            self.header_len += take;
            i += take;
            if self.header_len < self.header_needed() {
                continue;
            }
            self.header_len = 0;
            if let Err(stop) = self.begin_frame() {
                // The caller drops what follows in `bytes`; a refused frame can be
                // skipped later only if that was all its own payload.
                let dropped = (bytes.len() - i) as u64;
                self.refused = self
                    .refused
                    .filter(|(len, _)| dropped <= *len)
                    .map(|(len, fin)| (len - dropped, fin));
                self.pos = header_start;
                let done = Scan {
                    clear: header_start,
                    stop: Some(stop),
                };
                self.stopped = Some(done);
                return done;
            }
            if self.remaining == 0 && self.closing {
                return self.stop(i, Stop::Close);
            }
        }
        self.pos += bytes.len() as u64;
        Scan {
            clear: self.pos - self.header_len as u64,
            stop: None,
        }
    }

    fn stop(&mut self, at: usize, stop: Stop) -> Scan {
        self.pos += at as u64;
        let done = Scan {
            clear: self.pos,
            stop: Some(stop),
        };
        self.stopped = Some(done);
        done
    }

    /// Length of the header being read, as far as its first two bytes tell.
    fn header_needed(&self) -> usize {
        if self.header_len < 2 {
            return 2;
        }
        let masked = if self.header[1] & MASK != 0 { 4 } else { 0 };
        let extended = match self.header[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        2 + extended + masked
    }

    /// Checks the complete header in `self.header` and starts its frame.
    fn begin_frame(&mut self) -> Result<(), Stop> {
        let (b0, b1) = (self.header[0], self.header[1]);
        let len = match b1 & 0x7f {
            126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
            127 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(&self.header[2..10]);
                u64::from_be_bytes(be)
            }
            short => u64::from(short),
        };
        if b0 & RSV != 0 {
            return Err(Stop::Protocol("reserved bits set"));
        }
        if len >> 63 != 0 {
            return Err(Stop::Protocol("frame length out of range"));
        }
        let masked = b1 & MASK != 0;
        match (self.sender, masked) {
            (Sender::Client, false) => return Err(Stop::Protocol("unmasked client frame")),
            (Sender::Server, true) => return Err(Stop::Protocol("masked server frame")),
            (Sender::Client, true) | (Sender::Server, false) => {}
        }
        let fin = b0 & FIN != 0;
        let opcode = b0 & 0x0f;
        self.closing = false;
        match opcode {
            // Continuation of a fragmented message.
            0x0 => {
                if !self.in_message {
                    return Err(Stop::Protocol("continuation without a message"));
                }
                self.message_len += len;
            }
            // Text, binary: a new message.
            0x1 | 0x2 => {
                if self.in_message {
                    return Err(Stop::Protocol("new message inside a fragmented one"));
                }
                self.message_len = len;
            }
            // Close, ping, pong.
            0x8..=0xa => {
                if !fin || len > MAX_CONTROL_PAYLOAD {
                    return Err(Stop::Protocol("invalid control frame"));
                }
                self.closing = opcode == 0x8;
                self.remaining = len;
                return Ok(());
            }
            _ => return Err(Stop::Protocol("reserved opcode")),
        }
        if self.message_len > self.max_message {
            self.refused = Some((len, fin));
            return Err(Stop::TooLarge);
        }
        self.in_message = !fin;
        self.remaining = len;
        Ok(())
    }
}

/// Encodes a close frame with `code` and `reason` as `sender` must send it (masked
/// toward a server).
pub(crate) fn close_frame(sender: Sender, code: u16, reason: &str) -> Vec<u8> {
    let reason = &reason.as_bytes()[..reason.len().min(123)];
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason);
    let mut frame = Vec::with_capacity(6 + payload.len());
    frame.push(FIN | 0x8);
    // The payload is at most 125 bytes, so it fits the 7-bit length.
    let len = payload.len() as u8;
    match sender {
        Sender::Server => {
            frame.push(len);
            frame.extend_from_slice(&payload);
        }
        Sender::Client => {
            let key: [u8; 4] = rand::rng().random();
            frame.push(MASK | len);
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
    }
    frame
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
