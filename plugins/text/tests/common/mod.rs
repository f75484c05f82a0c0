//! What the text plugin's test files share: where the repository's data is, and the
//! binary models they attack, given by a logit.

// Each test file uses only some of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tempered_plugin::Input;

/// `data/<p>` of the repository.
pub fn data_path(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data").join(p)
}

/// σ(z) = P(class 1) of a logit.
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// `[P(0), P(1)]` for every text of `input`, with P(1) = σ(`logit(text)`).
pub fn binary_probs(input: Input<'_>, logit: impl Fn(&str) -> f32) -> Vec<f32> {
    let Input::Text(texts) = input else { panic!("text only") };
    texts
        .iter()
        .flat_map(|t| {
            let p = sigmoid(logit(t));
            [1.0 - p, p]
        })
        .collect()
}
