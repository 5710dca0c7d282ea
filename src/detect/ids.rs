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
