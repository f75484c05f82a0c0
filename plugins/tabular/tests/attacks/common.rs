//! A softmax-linear test model, a mixed schema, and the checks the host makes on every row.

use tempered_plugin::testing::{TestBatch, TestModel, TestOutcome};
use tempered_plugin::{Column, FeatureKind, Input, Modality, Perturbed, Rng};

/// `logits = w · x + b` on raw rows, one weight row per class.
pub struct Linear {
    pub w: Vec<Vec<f32>>,
    pub b: Vec<f32>,
}

impl Linear {
    /// Two classes: `p(1) = sigmoid(w · x + b)`.
    pub fn logistic(w: &[f32], b: f32) -> Self {
        Self { w: vec![vec![0.0; w.len()], w.to_vec()], b: vec![0.0, b] }
    }

    pub fn probs(&self, row: &[f32]) -> Vec<f32> {
        let logits: Vec<f32> = self
            .w
            .iter()
            .zip(&self.b)
            .map(|(w, b)| w.iter().zip(row).map(|(w, x)| w * x).sum::<f32>() + b)
            .collect();
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f32 = e.iter().sum();
        e.iter().map(|v| v / sum).collect()
    }

    pub fn loss(&self, row: &[f32], y: u32) -> f32 {
        -self.probs(row)[y as usize].max(1e-30).ln()
    }

    pub fn class(&self, row: &[f32]) -> u32 {
        let p = self.probs(row);
        (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap() as u32
    }
}

impl TestModel for Linear {
    fn n_classes(&self) -> usize {
        self.w.len()
    }

    fn predict(&self, input: Input<'_>) -> Vec<f32> {
        let Input::Dense { data, width } = input else { panic!("dense only") };
        data.chunks(width).flat_map(|r| self.probs(r)).collect()
    }

    fn loss_grad(&self, input: Input<'_>, labels: &[u32]) -> (Vec<f32>, Vec<f32>) {
        let Input::Dense { data, width } = input else { panic!("dense only") };
        let mut loss = Vec::new();
        let mut grad = Vec::new();
        for (r, &y) in data.chunks(width).zip(labels) {
            let p = self.probs(r);
            loss.push(-p[y as usize].max(1e-30).ln());
            for j in 0..width {
                let g: f32 =
                    (0..p.len()).map(|c| (p[c] - (c == y as usize) as u32 as f32) * self.w[c][j]).sum();
                grad.push(g);
            }
        }
        (loss, grad)
    }
}

pub fn feature(kind: FeatureKind, mutable: bool, lower: f32, upper: f32, scale: f32) -> Column {
    Column { kind, mutable, lower, upper, scale, ..Column::continuous("f") }
}

/// A column of one-hot group `group`, in [0, 1].
pub fn one_hot_column(group: u32) -> Column {
    Column {
        kind: FeatureKind::Categorical,
        lower: 0.0,
        upper: 1.0,
        group: Some(group),
        ..Column::continuous("c")
    }
}

/// Every kind of column: unbounded and bounded continuous with scales != 1, integers,
/// an immutable column, binaries, a one-hot group, and a large value whose f32 spacing is
/// coarse against its budget.
pub fn mixed_schema() -> Vec<Column> {
    use FeatureKind::*;
    let inf = f32::INFINITY;
    let group = |g| Column { group: Some(g), ..feature(Categorical, true, 0.0, 1.0, 1.0) };
    vec![
        feature(Continuous, true, -inf, inf, 2.0),
        feature(Continuous, true, 0.0, 1.0, 0.5),
        feature(Integer, true, 0.0, 10.0, 3.0),
        feature(Continuous, false, -inf, inf, 1.0),
        feature(Binary, true, 0.0, 1.0, 1.0),
        group(7),
        group(7),
        group(7),
        feature(Integer, true, -inf, inf, 0.3),
        feature(Binary, false, 0.0, 1.0, 1.0),
        feature(Continuous, true, -inf, inf, 0.01),
    ]
}

/// `n` valid rows of `mixed_schema`, labels 0..n_classes.
pub fn mixed_batch(n: usize, n_classes: u32, seed: u64) -> TestBatch {
    let mut rng = Rng::new(seed);
    let mut data = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n {
        let hot = rng.below(3);
        data.extend([
            rng.normal() * 2.0,
            rng.next_f32(),
            rng.below(11) as f32,
            rng.normal(),
            rng.below(2) as f32,
            (hot == 0) as u32 as f32,
            (hot == 1) as u32 as f32,
            (hot == 2) as u32 as f32,
            rng.below(7) as f32 - 3.0,
            rng.below(2) as f32,
            12_345.678 + rng.next_f32(),
        ]);
        labels.push(i as u32 % n_classes);
    }
    let mut b = TestBatch::dense(Modality::Tabular, data, 11, labels);
    b.features = mixed_schema();
    b.seed = seed;
    b
}

/// A model that uses every column of `mixed_schema` (the large column centred).
pub fn mixed_model(n_classes: usize) -> Linear {
    let base = [0.8, -1.5, 0.3, 0.7, -0.9, 1.1, -0.4, 0.2, 0.5, -0.6];
    let mut w: Vec<Vec<f32>> = Vec::new();
    let mut b = Vec::new();
    for c in 0..n_classes {
        let mut row: Vec<f32> =
            base.iter().enumerate().map(|(j, v)| v * (((c + j) % 3) as f32 - 1.0) + 0.2 * c as f32).collect();
        let big = (c as f32 - 0.5) * 5.0;
        row.push(big);
        w.push(row);
        b.push(-big * 12_346.0);
    }
    Linear { w, b }
}

/// Labels each row with the class `model` gives it, so every row is correctly classified.
pub fn label_by(model: &Linear, b: &mut TestBatch) {
    b.labels = b.data.chunks(b.width).map(|r| model.class(r)).collect();
}

pub fn dense(out: &TestOutcome) -> &[f32] {
    match &out.perturbed {
        Perturbed::Dense(d) => d,
        Perturbed::Text(_) => panic!("expected dense rows"),
    }
}

/// The host's schema check: immutable unchanged, bounds, integers, binaries, one-hot groups.
pub fn check_row(features: &[Column], o: &[f32], x: &[f32]) -> Result<(), String> {
    assert_eq!(o.len(), x.len());
    for (j, f) in features.iter().enumerate() {
        let v = x[j];
        if !v.is_finite() {
            return Err(format!("column {j} is {v}"));
        }
        if !f.mutable && v != o[j] {
            return Err(format!("immutable column {j} changed {} -> {v}", o[j]));
        }
        if v < f.lower || v > f.upper {
            return Err(format!("column {j} = {v} outside [{}, {}]", f.lower, f.upper));
        }
        if f.kind == FeatureKind::Integer && v.fract() != 0.0 {
            return Err(format!("integer column {j} = {v}"));
        }
        if f.kind == FeatureKind::Binary && v != 0.0 && v != 1.0 {
            return Err(format!("binary column {j} = {v}"));
        }
    }
    let mut groups: Vec<u32> = features.iter().filter_map(|f| f.group).collect();
    groups.dedup();
    for g in groups {
        let vals: Vec<f32> =
            (0..features.len()).filter(|&j| features[j].group == Some(g)).map(|j| x[j]).collect();
        if vals.iter().filter(|&&v| v == 1.0).count() != 1 || vals.iter().any(|&v| v != 0.0 && v != 1.0) {
            return Err(format!("one-hot group {g} is {vals:?}"));
        }
    }
    Ok(())
}

/// Columns a norm budget covers: mutable continuous and integer columns outside groups.
fn budgeted(f: &Column) -> bool {
    f.mutable && f.group.is_none() && matches!(f.kind, FeatureKind::Continuous | FeatureKind::Integer)
}

/// Largest standardised change, exact (f64).
pub fn linf_std(features: &[Column], o: &[f32], x: &[f32]) -> f64 {
    features
        .iter()
        .enumerate()
        .filter(|(_, f)| budgeted(f))
        .map(|(j, f)| (x[j] as f64 - o[j] as f64).abs() / f.scale as f64)
        .fold(0.0, f64::max)
}

/// Standardised Euclidean change, exact (f64).
pub fn l2_std(features: &[Column], o: &[f32], x: &[f32]) -> f64 {
    features
        .iter()
        .enumerate()
        .filter(|(_, f)| budgeted(f))
        .map(|(j, f)| ((x[j] as f64 - o[j] as f64) / f.scale as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// `sum_j cost_j * |x_j - o_j|`, exact (f64).
pub fn cost(features: &[Column], o: &[f32], x: &[f32]) -> f64 {
    features.iter().enumerate().map(|(j, f)| f.cost as f64 * (x[j] as f64 - o[j] as f64).abs()).sum()
}

/// Continuous unbounded columns with the given costs and scales.
pub fn plain_schema(costs: &[f32], scales: &[f32]) -> Vec<Column> {
    costs
        .iter()
        .zip(scales)
        .map(|(&cost, &scale)| Column { cost, scale, ..Column::continuous("f") })
        .collect()
}

pub fn batch(features: Vec<Column>, data: Vec<f32>, labels: Vec<u32>) -> TestBatch {
    let width = features.len();
    let mut b = TestBatch::dense(Modality::Tabular, data, width, labels);
    b.features = features;
    b
}
