//! A small, self-contained pseudo-random number generator for the simulator.
//!
//! xoshiro256** seeded through SplitMix64 (both public domain, Blackman and Vigna). It is
//! written here rather than taken from `rand` so that the simulator's output for a seed never
//! changes with a crate upgrade. For the same reason `exp` and `ln` are computed here with
//! plain IEEE-754 arithmetic instead of the platform's libm, whose last bit may differ between
//! systems: a seed gives byte-identical traffic everywhere.
//!
//! Nothing here reads the clock or any global state.

/// SplitMix64: used to expand one `u64` seed into a full xoshiro state, and to derive
/// independent streams from `(seed, stream, index)`.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// xoshiro256**: fast, small, good statistical quality; not for cryptography.
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        let mut sm = SplitMix64::new(seed);
        let mut s = [sm.next_u64(), sm.next_u64(), sm.next_u64(), sm.next_u64()];
        // The all-zero state is the one state xoshiro cannot leave; SplitMix64 practically never
        // yields it, but a fixed fallback costs nothing.
        if s == [0; 4] {
            s[0] = 1;
        }
        Rng { s }
    }

    /// An independent stream for `(seed, stream, index)`, e.g. one per customer. Streams do not
    /// depend on each other, so adding customers leaves the existing customers' traffic as is.
    pub(crate) fn stream(seed: u64, stream: u64, index: u64) -> Rng {
        let mut sm = SplitMix64::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let a = sm.next_u64();
        let mut sm = SplitMix64::new(a ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        Rng::new(sm.next_u64())
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1), 53 bits.
    pub(crate) fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n); 0 when n is 0. Lemire's multiply-shift (the bias is below 2^-64 x n,
    /// irrelevant here, and skipping the rejection step keeps the stream length fixed).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in [lo, hi); `lo` when the range is empty.
    pub(crate) fn between(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo) as u64) as i64
    }

    /// In [lo, hi), skewed towards `lo` (density falls linearly): most waits are short, a few
    /// are long.
    pub(crate) fn skewed(&mut self, lo: i64, hi: i64) -> i64 {
        let u = self.f64();
        lo + ((hi - lo).max(0) as f64 * u * u) as i64
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Index into `weights`, chosen with probability proportional to its weight.
    pub(crate) fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.f64() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len().saturating_sub(1)
    }

    /// Standard normal (Marsaglia's polar method; the second value is dropped so the stream
    /// carries no hidden state).
    pub(crate) fn normal(&mut self) -> f64 {
        loop {
            let u = 2.0 * self.f64() - 1.0;
            let v = 2.0 * self.f64() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                return u * (-2.0 * ln(s) / s).sqrt();
            }
        }
    }

    /// Log-normal with the given median and shape.
    pub(crate) fn log_normal(&mut self, median: f64, sigma: f64) -> f64 {
        median * exp(sigma * self.normal())
    }

    /// Poisson-distributed count with mean `lambda` (Knuth's method; a rounded normal above 400,
    /// where Knuth's product would underflow and the two agree closely anyway).
    pub(crate) fn poisson(&mut self, lambda: f64) -> u32 {
        if lambda.is_nan() || lambda <= 0.0 {
            return 0;
        }
        if lambda > 400.0 {
            let x = lambda + lambda.sqrt() * self.normal();
            return x.round().max(0.0) as u32;
        }
        let limit = exp(-lambda);
        let mut k = 0u32;
        let mut p = self.f64();
        while p > limit {
            k += 1;
            p *= self.f64();
        }
        k
    }
}

const LN_2: f64 = std::f64::consts::LN_2;

/// e^x with only IEEE-754 basic operations (deterministic on every platform); relative error
/// below 1e-15 over the whole range.
pub(crate) fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.0 {
        return f64::INFINITY;
    }
    if x < -708.0 {
        return 0.0;
    }
    let k = (x / LN_2).round();
    // Cody-Waite: ln 2 split in two so that k x LN2_HI is exact and the reduction loses nothing.
    const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000); // fdlibm's ln2_hi
    const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76); // fdlibm's ln2_lo
    let r = (x - k * LN2_HI) - k * LN2_LO; // |r| <= ln2/2: 16 Taylor terms are far below 1 ulp
    let mut term = 1.0;
    let mut sum = 1.0;
    for i in 1..=16 {
        term *= r / f64::from(i);
        sum += term;
    }
    // k is in [-1021, 1023], so 2^k is a normal f64 built directly from its bits.
    let pow2 = f64::from_bits(((k as i64 + 1023) as u64) << 52);
    sum * pow2
}

/// Natural logarithm with only IEEE-754 basic operations; see [`exp`]. ln(0) = -inf.
pub(crate) fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    // Subnormals: scale into the normal range first.
    let (x, adjust) = if x < f64::MIN_POSITIVE {
        (x * 18_014_398_509_481_984.0, 54.0 * LN_2)
    } else {
        (x, 0.0)
    };
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000);
    if m > std::f64::consts::SQRT_2 {
        m /= 2.0;
        e += 1;
    }
    // ln(m) = 2 atanh(s), s = (m-1)/(m+1), |s| <= 0.172: 12 odd terms are plenty.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0;
    let mut k = 1.0;
    for _ in 0..12 {
        sum += term / k;
        term *= s2;
        k += 2.0;
    }
    2.0 * sum + e as f64 * LN_2 - adjust
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..8)
            .map({
                let mut r = Rng::stream(42, 1, 7);
                move |_| r.next_u64()
            })
            .collect();
        let mut r = Rng::stream(42, 1, 7);
        assert!(a.iter().all(|x| *x == r.next_u64()));
        let mut other = Rng::stream(42, 1, 8);
        assert_ne!(a[0], other.next_u64());
        let mut other = Rng::stream(43, 1, 7);
        assert_ne!(a[0], other.next_u64());
    }

    #[test]
    fn splitmix_matches_the_reference_sequence() {
        // First outputs of the reference SplitMix64 for seed 1234567 (from Vigna's splitmix64.c).
        let mut sm = SplitMix64::new(1_234_567);
        assert_eq!(sm.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(sm.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn exp_and_ln_agree_with_libm() {
        for i in -700..700 {
            let x = f64::from(i) * 0.731 + 0.123;
            let (ours, std) = (exp(x), x.exp());
            assert!(
                ((ours - std) / std).abs() < 1e-14,
                "exp({x}): {ours} vs {std}"
            );
        }
        for x in [
            1e-310, 1e-300, 1e-9, 0.1, 0.5, 0.999, 1.0, 1.5, 2.0, 10.0, 12345.678, 1e200,
        ] {
            let (ours, std) = (ln(x), x.ln());
            assert!(
                (ours - std).abs() <= 1e-14 * std.abs().max(1.0),
                "ln({x}): {ours} vs {std}"
            );
        }
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
        assert!(ln(-1.0).is_nan());
    }

    #[test]
    fn distributions_have_the_right_centre() {
        let mut r = Rng::new(7);
        let n = 20_000;
        let mean_u: f64 = (0..n).map(|_| r.f64()).sum::<f64>() / f64::from(n);
        assert!((mean_u - 0.5).abs() < 0.01, "{mean_u}");
        let mean_z: f64 = (0..n).map(|_| r.normal()).sum::<f64>() / f64::from(n);
        assert!(mean_z.abs() < 0.03, "{mean_z}");
        let mean_p: f64 = (0..n).map(|_| f64::from(r.poisson(3.5))).sum::<f64>() / f64::from(n);
        assert!((mean_p - 3.5).abs() < 0.06, "{mean_p}");
        let mut counts = [0u32; 3];
        for _ in 0..n {
            counts[r.weighted(&[1.0, 2.0, 7.0])] += 1;
        }
        assert!(
            (f64::from(counts[2]) / f64::from(n) - 0.7).abs() < 0.02,
            "{counts:?}"
        );
        assert!((0..1000).all(|_| (5..9).contains(&r.between(5, 9))));
    }
}
