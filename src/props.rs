//! Settings and cheap generators shared by the property tests (the `*_props.rs`
//! files next to the code).
//!
//! In a debug build, regex strategies and proptest's default random source (ChaCha)
//! took most of each case's time: the generators below pick from sets, and the
//! random source is XorShift, so 10,000 cases a property take seconds in all.

use std::ops::Range;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, RngAlgorithm};

/// Cases per property when `PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 10_000;

/// 10,000 cases per property unless `PROPTEST_CASES` says otherwise, and no failure
/// files written into the tree: a failure prints its smallest input, which then
/// becomes a unit test. The random source is XorShift unless
/// `PROPTEST_RNG_ALGORITHM` names another.
pub(crate) fn config() -> Config {
    let default = Config::default();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let rng_algorithm = match std::env::var_os("PROPTEST_RNG_ALGORITHM") {
        Some(_) => default.rng_algorithm,
        None => RngAlgorithm::XorShift,
    };
    Config {
        cases,
        failure_persistence: None,
        rng_algorithm,
        ..default
    }
}

/// Strings of characters drawn from `set`.
pub(crate) fn chars(set: &'static str, len: Range<usize>) -> impl Strategy<Value = String> {
    let set: Vec<char> = set.chars().collect();
    vec(select(set), len).prop_map(String::from_iter)
}

/// Strings of the printable ASCII characters (space included) `keep` accepts.
pub(crate) fn ascii(keep: fn(u8) -> bool, len: Range<usize>) -> impl Strategy<Value = String> {
    let set: Vec<char> = (b' '..=b'~').filter(|&b| keep(b)).map(char::from).collect();
    vec(select(set), len).prop_map(String::from_iter)
}

/// Any text at all: any Unicode scalar values, controls included.
pub(crate) fn text(len: Range<usize>) -> impl Strategy<Value = String> {
    vec(any::<char>(), len).prop_map(String::from_iter)
}

/// Strings made of pieces of `pieces`, concatenated.
pub(crate) fn joined(
    pieces: &'static [&'static str],
    len: Range<usize>,
) -> impl Strategy<Value = String> {
    vec(select(pieces), len).prop_map(|p| p.concat())
}

/// A header value from any bytes: those a value may not hold (controls but tab, and
/// DEL) become spaces.
pub(crate) fn header_value(bytes: impl AsRef<[u8]>) -> http::HeaderValue {
    let forbidden = |b: u8| (b < 0x20 && b != b'\t') || b == 0x7f;
    let bytes: Vec<u8> = (bytes.as_ref().iter())
        .map(|&b| if forbidden(b) { b' ' } else { b })
        .collect();
    http::HeaderValue::from_bytes(&bytes).expect("control bytes were replaced")
}
