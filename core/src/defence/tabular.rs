//! Tabular: every column rounded to its grid (feature squeezing for tables).

use super::Preprocess;
use crate::pipeline::defence::StepUnit;

/// Rounds column `j` to the nearest multiple of `steps[j]`. An integer column keeps whole
/// steps (at least 1), so it stays on the integers it was drawn from.
pub struct Quantise {
    steps: Vec<f32>,
    step: f64,
    unit: StepUnit,
}

impl Quantise {
    pub fn new(steps: Vec<f32>, integer: &[bool], step: f64, unit: StepUnit) -> Self {
        let steps = steps
            .into_iter()
            .zip(integer.iter().copied().chain(std::iter::repeat(false)))
            .map(|(s, int)| if int { s.round().max(1.0) } else { s })
            .collect();
        Self { steps, step, unit }
    }
}

impl Preprocess for Quantise {
    fn apply(&self, x: &mut [f32], width: usize, _draw: u64) {
        for row in x.chunks_mut(width) {
            for (v, &s) in row.iter_mut().zip(&self.steps) {
                // A constant column (step 0) has nothing to round.
                if s > 0.0 && s.is_finite() {
                    *v = (*v / s).round() * s;
                }
            }
        }
    }

    /// A step function's derivative is zero wherever it is defined.
    fn backward(&self, _x: &[f32], _width: usize, _draw: u64, g: &mut [f32]) {
        g.fill(0.0);
    }

    fn describe(&self) -> String {
        match self.unit {
            StepUnit::Std => format!("every column rounded to a grid of {} standard deviations", self.step),
            StepUnit::Raw => format!("every column rounded to a grid of {} raw units", self.step),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_each_column_to_its_own_grid() {
        let q = Quantise::new(vec![0.5, 10.0, 0.3], &[false, false, true], 0.5, StepUnit::Std);
        let mut x = vec![0.74, 14.0, 2.4, -0.26, 16.0, 2.6];
        q.apply(&mut x, 3, 0);
        assert_eq!(x, vec![0.5, 10.0, 2.0, -0.5, 20.0, 3.0]);
        let mut g = vec![1.0; 6];
        q.backward(&x, 3, 0, &mut g);
        assert!(g.iter().all(|&v| v == 0.0));
    }
}
