//! A randomised defence: Gaussian noise added to every input.

use super::Preprocess;
use crate::hash::Fnv;

/// Adds `N(0, σ_j²)` to value `j` of each row. The noise of a row is drawn from the row's
/// own values, the draw index and the defence's seed: a fresh draw for every new input, yet
/// the same numbers on every run and whatever order the oracle's calls come in.
pub struct RandomNoise {
    sigma: f32,
    /// Per column (tabular); empty: `sigma` for every value (audio).
    per_column: Vec<f32>,
    seed: u64,
}

impl RandomNoise {
    pub fn new(sigma: f32, per_column: Vec<f32>, seed: u64) -> Self {
        Self { sigma, per_column, seed }
    }

    fn rng(&self, row: &[f32], draw: u64) -> tempered_plugin::Rng {
        let mut h = Fnv::new();
        h.word(self.seed);
        h.word(draw);
        for v in row {
            h.word(u64::from(v.to_bits()));
        }
        tempered_plugin::Rng::new(h.finish())
    }
}

impl Preprocess for RandomNoise {
    fn apply(&self, x: &mut [f32], width: usize, draw: u64) {
        for row in x.chunks_mut(width) {
            let mut rng = self.rng(row, draw);
            for (j, v) in row.iter_mut().enumerate() {
                let s = self.per_column.get(j).copied().unwrap_or(self.sigma);
                *v += s * rng.normal();
            }
        }
    }

    /// Additive noise: the Jacobian is the identity.
    fn backward(&self, _x: &[f32], _width: usize, _draw: u64, _g: &mut [f32]) {}

    fn randomised(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        if self.per_column.is_empty() {
            format!("Gaussian noise of σ = {} added to every sample", self.sigma)
        } else {
            format!("Gaussian noise of σ = {} (per column) added to every value", self.sigma)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_noise_depends_on_the_row_and_the_draw_only() {
        let n = RandomNoise::new(0.1, Vec::new(), 7);
        let row = [0.5f32, -0.25, 0.0];
        let draw = |d: u64| {
            let mut x = row.to_vec();
            n.apply(&mut x, 3, d);
            x
        };
        assert_eq!(draw(0), draw(0), "same row, same draw: same noise");
        assert_ne!(draw(0), draw(1));
        let mut two = [row, row].concat();
        n.apply(&mut two, 3, 0);
        assert_eq!(&two[..3], &two[3..], "a row's noise does not depend on its neighbours");
        assert_ne!(&two[..3], &row[..]);
    }
}
