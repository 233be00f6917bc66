//! Test data: deterministic byte patterns and a hash to compare large bodies.

/// `len` deterministic, non-repeating-looking bytes (so a reordered or truncated body
/// does not compare equal by accident).
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// FNV-1a 64 of `data`: enough to compare two 20 MiB bodies in a message.
pub fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
