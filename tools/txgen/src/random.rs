//! Randomness owned by the crate, so that a seed's bytes outlive dependency upgrades.

/// The random source: xoshiro256++ plus the spare Box–Muller normal.
///
/// A generator written out here rather than taken from `rand`: the bytes a seed produces must
/// not change when a dependency is upgraded (`rand` reserves the right to change its value
/// streams between versions), and it stays fast in unoptimised test builds, where ChaCha is
/// not. The spare normal halves the logarithms and cosines, the costliest part of a row.
pub(crate) struct Source {
    s: [u64; 4],
    spare: Option<f64>,
}

impl Source {
    /// Independent streams per concern (customers, clock, rows), so that e.g. the customer
    /// table does not change with the number of rows drawn from the row stream. SplitMix64
    /// spreads seed and stream over the state, as the xoshiro authors recommend.
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        let mut x = seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let mut s = [0; 4];
        for w in &mut s {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            *w = z ^ (z >> 31);
        }
        Source { s, spare: None }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform on [0, 1), 53 random bits.
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in `lo..hi` (multiply-shift; the bias is below 2^-32).
    pub(crate) fn below(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (((self.next_u64() >> 32) * u64::from(hi - lo)) >> 32) as u32
    }

    pub(crate) fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let r = (-2.0 * (1.0 - self.uniform()).ln()).sqrt();
        let (sin, cos) = (std::f64::consts::TAU * self.uniform()).sin_cos();
        self.spare = Some(r * sin);
        r * cos
    }

    pub(crate) fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    pub(crate) fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.uniform()).ln()
    }

    pub(crate) fn poisson(&mut self, lambda: f64) -> u32 {
        if lambda > 12.0 {
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as u32;
        }
        let limit = (-lambda).exp();
        let mut k = 0;
        let mut p = self.uniform();
        while p > limit {
            k += 1;
            p *= self.uniform();
        }
        k
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// An index drawn from cumulative, normalised weights (see [`cumulative`]).
    pub(crate) fn pick(&mut self, cum: &[f64]) -> u8 {
        let u = self.uniform();
        cum.iter().position(|&c| u < c).unwrap_or(cum.len() - 1) as u8
    }

    /// An index drawn from raw weights, for the short tables used once per row.
    pub(crate) fn pick_weights(&mut self, weights: &[f64]) -> u8 {
        let mut u = self.uniform() * weights.iter().sum::<f64>();
        for (i, w) in weights.iter().enumerate() {
            if u < *w {
                return i as u8;
            }
            u -= w;
        }
        (weights.len() - 1) as u8
    }
}

/// Cumulative, normalised weights for [`Source::pick`].
pub(crate) fn cumulative(weights: &[f64]) -> Vec<f64> {
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    weights
        .iter()
        .map(|w| {
            acc += w / total;
            acc
        })
        .collect()
}
