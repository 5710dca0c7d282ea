//! Stable identifiers. `std`'s hashers are not stable across releases, so ids use FNV-1a,
//! run twice with different bases for 128 bits (collisions are then negligible at any
//! realistic task volume). The same inputs give the same id on every machine, forever.

const PRIME: u64 = 0x0000_0100_0000_01b3;

pub fn fnv1a(seed: u64, parts: &[&str]) -> u64 {
    let mut h = seed;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            // A separator byte that cannot occur in UTF-8 keeps ("ab","c") apart from ("a","bc").
            h ^= 0xff;
            h = h.wrapping_mul(PRIME);
        }
        for b in p.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    }
    h
}

const BASE_A: u64 = 0xcbf2_9ce4_8422_2325;
const BASE_B: u64 = 0x6c62_272e_07bb_0142;

/// A 128-bit id as 32 hex digits behind a prefix, e.g. `t-3f9a...`.
pub fn stable_id(prefix: &str, parts: &[&str]) -> String {
    format!(
        "{prefix}-{:016x}{:016x}",
        fnv1a(BASE_A, parts),
        fnv1a(BASE_B, parts)
    )
}

/// A 64-bit fingerprint for in-memory sets (duplicate event ids).
pub fn fingerprint(s: &str) -> u64 {
    fnv1a(BASE_A, &[s])
}

/// The hasher of the engine's in-memory maps (customers, shared strings). Much faster than
/// std's SipHash on short keys, and seeded per process from std's `RandomState`, so which keys
/// collide cannot be worked out in advance. Not stable across runs: never persist its values.
#[derive(Clone, Debug)]
pub struct FastState {
    seed: u64,
}

impl Default for FastState {
    fn default() -> Self {
        use std::hash::BuildHasher;
        FastState {
            seed: std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64),
        }
    }
}

impl std::hash::BuildHasher for FastState {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.seed)
    }
}

pub struct FastHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl std::hash::Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // A final mix, so the high bits (which hashbrown groups by) depend on every input bit.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_separated() {
        assert_eq!(
            stable_id("t", &["c-1", "order-1"]),
            stable_id("t", &["c-1", "order-1"])
        );
        assert_ne!(stable_id("t", &["ab", "c"]), stable_id("t", &["a", "bc"]));
        // Pinned: changing the hash would change every task id consumers have stored.
        assert_eq!(fnv1a(BASE_A, &["a"]), 0xaf63dc4c8601ec8c);
    }
}
