//! Scanner tests on hand-built frames, fed whole and split at every byte.

use super::*;

/// One frame: header (with a mask key when `masked`) and `len` payload bytes.
fn frame(fin: bool, opcode: u8, masked: bool, len: usize) -> Vec<u8> {
    let mut f = vec![if fin { FIN | opcode } else { opcode }];
    let mask = if masked { MASK } else { 0 };
    match len {
        0..=125 => f.push(mask | len as u8),
        126..=65535 => {
            f.push(mask | 126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            f.push(mask | 127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if masked {
        f.extend_from_slice(&[1, 2, 3, 4]);
    }
    f.extend(std::iter::repeat_n(0x5a, len));
    f
}

fn client(opcode: u8, len: usize) -> Vec<u8> {
    frame(true, opcode, true, len)
}

/// Scans `stream` cut into pieces of `step` bytes; returns the last scan.
fn scan_in_steps(scanner: &mut Scanner, stream: &[u8], step: usize) -> Scan {
    let mut last = scanner.scan(&[]);
    for piece in stream.chunks(step) {
        last = scanner.scan(piece);
        if last.stop.is_some() {
            break;
        }
    }
    last
}

#[test]
fn whole_frames_of_every_length_form_are_cleared_in_any_split() {
    let stream: Vec<u8> = [
        client(0x1, 5),
        client(0x2, 300),
        client(0x2, 70_000),
        client(0x9, 0),
    ]
    .concat();
    for step in [1, 2, 3, 7, 13, 14, 1000, stream.len()] {
        let mut s = Scanner::new(Sender::Client, 1 << 20);
        let scan = scan_in_steps(&mut s, &stream, step);
        assert_eq!(
            scan,
            Scan {
                clear: stream.len() as u64,
                stop: None
            },
            "step {step}"
        );
        assert!(s.at_frame_boundary());
    }
}

#[test]
fn an_incomplete_header_is_held_back() {
    let f = frame(true, 0x2, false, 200);
    let mut s = Scanner::new(Sender::Server, 1024);
    assert_eq!(
        s.scan(&f[..3]),
        Scan {
            clear: 0,
            stop: None
        }
    );
    assert_eq!(
        s.scan(&f[3..4]),
        Scan {
            clear: 4,
            stop: None
        }
    );
    assert!(!s.at_frame_boundary(), "payload still to come");
    assert_eq!(s.scan(&f[4..]).clear, f.len() as u64);
    assert!(s.at_frame_boundary());
}

#[test]
fn payload_bytes_pass_as_they_arrive() {
    let f = frame(true, 0x2, false, 10_000);
    let mut s = Scanner::new(Sender::Server, 1 << 20);
    assert_eq!(s.scan(&f[..5000]).clear, 5000);
    assert!(!s.at_frame_boundary());
}

#[test]
fn a_close_frame_stops_right_after_itself() {
    let stream = [client(0x1, 3), client(0x8, 2), client(0x1, 3)].concat();
    let close_end = (client(0x1, 3).len() + client(0x8, 2).len()) as u64;
    for step in [1, 5, stream.len()] {
        let mut s = Scanner::new(Sender::Client, 1024);
        let scan = scan_in_steps(&mut s, &stream, step);
        assert_eq!(
            scan,
            Scan {
                clear: close_end,
                stop: Some(Stop::Close)
            },
            "step {step}"
        );
        // Later bytes change nothing.
        assert_eq!(s.scan(&stream), scan);
    }
    let mut empty_close = Scanner::new(Sender::Server, 1024);
    let scan = empty_close.scan(&frame(true, 0x8, false, 0));
    assert_eq!(
        scan,
        Scan {
            clear: 2,
            stop: Some(Stop::Close)
        }
    );
}

#[test]
fn message_limit_counts_every_fragment() {
    let first = frame(false, 0x2, false, 600);
    let ping = frame(true, 0x9, false, 4);
    let second = frame(false, 0x0, false, 400);
    let third = frame(true, 0x0, false, 100);
    let stream = [first.clone(), ping.clone(), second.clone(), third].concat();
    let mut s = Scanner::new(Sender::Server, 1024);
    let scan = s.scan(&stream);
    let third_at = (first.len() + ping.len() + second.len()) as u64;
    assert_eq!(
        scan,
        Scan {
            clear: third_at,
            stop: Some(Stop::TooLarge)
        }
    );

    let mut fits = Scanner::new(Sender::Server, 1100);
    assert_eq!(fits.scan(&stream).stop, None);
    // A new message starts from zero.
    assert_eq!(fits.scan(&frame(true, 0x2, false, 1100)).stop, None);
    assert_eq!(
        fits.scan(&frame(true, 0x2, false, 1101)).stop,
        Some(Stop::TooLarge)
    );
}

#[test]
fn a_stop_at_a_header_split_across_reads_points_at_its_start() {
    let ok = frame(true, 0x2, false, 10);
    let big = frame(true, 0x2, false, 5000);
    let stream = [ok.clone(), big].concat();
    let mut s = Scanner::new(Sender::Server, 1024);
    assert_eq!(s.scan(&stream[..ok.len() + 1]).clear, ok.len() as u64);
    let scan = s.scan(&stream[ok.len() + 1..ok.len() + 6]);
    assert_eq!(
        scan,
        Scan {
            clear: ok.len() as u64,
            stop: Some(Stop::TooLarge)
        }
    );
}

#[test]
fn framing_errors_are_protocol_stops() {
    let cases: Vec<(Sender, Vec<u8>)> = vec![
        (Sender::Client, frame(true, 0x1, false, 3)),
        (Sender::Server, frame(true, 0x1, true, 3)),
        (Sender::Server, vec![0x80 | 0x40 | 0x1, 0]),
        (Sender::Server, frame(true, 0x3, false, 0)),
        (Sender::Server, frame(true, 0xb, false, 0)),
        (Sender::Server, frame(false, 0x9, false, 1)),
        (Sender::Server, frame(true, 0x9, false, 126)),
        (Sender::Server, frame(true, 0x0, false, 1)),
        (
            Sender::Server,
            [frame(false, 0x1, false, 1), frame(true, 0x1, false, 1)].concat(),
        ),
        (Sender::Server, vec![0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]),
    ];
    for (i, (sender, bytes)) in cases.into_iter().enumerate() {
        let mut s = Scanner::new(sender, 1 << 20);
        let scan = s.scan(&bytes);
        assert!(
            matches!(scan.stop, Some(Stop::Protocol(_))),
            "case {i}: {scan:?}"
        );
    }
}

#[test]
fn close_frames_are_encoded_for_each_direction() {
    let to_client = close_frame(Sender::Server, 1008, "credential expired");
    assert_eq!(&to_client[..4], &[0x88, 20, 0x03, 0xf0]);
    assert_eq!(&to_client[4..], b"credential expired");

    let to_server = close_frame(Sender::Client, 1001, "bye");
    assert_eq!(to_server[0], 0x88);
    assert_eq!(to_server[1], MASK | 5);
    let key = &to_server[2..6];
    let payload: Vec<u8> = to_server[6..]
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % 4])
        .collect();
    assert_eq!(payload, [&1001u16.to_be_bytes()[..], b"bye"].concat());

    // Both read back as a close by the scanner of their direction.
    let mut s = Scanner::new(Sender::Client, 1024);
    assert_eq!(s.scan(&to_server).stop, Some(Stop::Close));
    let long = close_frame(Sender::Server, 1000, &"x".repeat(300));
    assert_eq!(long.len(), 2 + 125);
}

#[test]
fn a_refused_frame_can_be_skipped_to_find_the_close_after_it() {
    let big = frame(true, 0x2, true, 5000);
    let close = client(0x8, 2);
    let mut s = Scanner::new(Sender::Client, 1024);
    // The read that brought the refused header and 100 bytes of its payload.
    let scan = s.scan(&big[..106]);
    assert_eq!(
        scan,
        Scan {
            clear: 0,
            stop: Some(Stop::TooLarge)
        }
    );
    s.skip_refused_frame();
    let rest = [&big[106..], &close[..]].concat();
    assert_eq!(scan_in_steps(&mut s, &rest, 999).stop, Some(Stop::Close));

    // A protocol stop cannot be followed further.
    let mut bad = Scanner::new(Sender::Client, 1024);
    assert!(matches!(
        bad.scan(&frame(true, 0x1, false, 1)).stop,
        Some(Stop::Protocol(_))
    ));
    bad.skip_refused_frame();
    assert!(matches!(bad.scan(&close).stop, Some(Stop::Protocol(_))));
}
