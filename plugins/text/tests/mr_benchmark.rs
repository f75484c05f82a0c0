//! Success rate and queries per example of the three attacks on MR, against two models
//! trained here: a bag-of-words logistic regression and a small Kim-style word-CNN (random
//! embeddings, widths 3/4/5, max-pool over time), stand-ins for the engine's models, which
//! this crate cannot depend on. Ignored by default: it wants a release build (the CNN trains
//! for about a minute). It reads the repository's `data/mr/mr.csv` (`TEMPERED_MR_CSV`
//! overrides).
//!
//! `cargo test --release -p tempered-text --test mr_benchmark -- --ignored --nocapture`

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tempered_plugin::testing::{TestBatch, TestModel, TestOutcome, run};
use tempered_plugin::{Input, Perturbed, PluginError, Rng};
use tempered_text::{Beam, Pwws, TextFooler};

mod common;
use common::{binary_probs, data_path, sigmoid};

fn read_mr(path: &Path) -> Vec<(u32, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .map(|line| {
            let (label, rest) = line.split_once(',').unwrap();
            let text = match rest.strip_prefix('"') {
                Some(q) => q.strip_suffix('"').unwrap().replace("\"\"", "\""),
                None => rest.to_owned(),
            };
            (label.parse().unwrap(), text)
        })
        .collect()
}

/// Logistic regression on word counts; unknown words (and "<unk>") weigh nothing.
struct LogReg {
    w: HashMap<String, f32>,
    b: f32,
}

impl LogReg {
    fn train(data: &[&(u32, String)]) -> Self {
        let mut m = Self { w: HashMap::new(), b: 0.0 };
        let (lr, l2) = (0.05f32, 1e-4f32);
        // The file lists all negatives first: visit rows in a fixed scrambled order.
        let order: Vec<usize> = (0..data.len()).map(|i| i * 7919 % data.len()).collect();
        for _ in 0..10 {
            for (y, text) in order.iter().map(|&i| data[i]) {
                let p = sigmoid(m.logit(text));
                let g = p - *y as f32;
                for word in text.split_whitespace() {
                    let w = m.w.entry(word.to_owned()).or_insert(0.0);
                    *w -= lr * (g + l2 * *w);
                }
                m.b -= lr * g;
            }
        }
        m
    }

    fn logit(&self, text: &str) -> f32 {
        self.b + text.split_whitespace().map(|w| self.w.get(w).copied().unwrap_or(0.0)).sum::<f32>()
    }
}

impl TestModel for LogReg {
    fn n_classes(&self) -> usize {
        2
    }
    fn predict(&self, input: Input<'_>) -> Vec<f32> {
        binary_probs(input, |t| self.logit(t))
    }
    fn loss_grad(&self, _: Input<'_>, _: &[u32]) -> (Vec<f32>, Vec<f32>) {
        unimplemented!()
    }
}

const DIM: usize = 48;
const WIDTHS: [usize; 3] = [3, 4, 5];
const FILTERS: usize = 32;
const FEATURES: usize = WIDTHS.len() * FILTERS;

/// Kim (2014)'s CNN-rand, small: embeddings, one conv layer per width with ReLU, max-pool
/// over time, a linear layer. Trained by plain SGD with hand-written backprop.
struct WordCnn {
    vocab: HashMap<String, usize>,
    /// Row 0: padding (stays zero); row 1: unknown words.
    emb: Vec<f32>,
    /// Per width: FILTERS rows of width * DIM weights, then FILTERS biases.
    conv: Vec<(Vec<f32>, Vec<f32>)>,
    out_w: Vec<f32>,
    out_b: [f32; 2],
}

struct Trace {
    ids: Vec<usize>,
    h: Vec<f32>,
    /// Per feature: the window start that won the max-pool.
    arg: Vec<usize>,
    p: [f32; 2],
}

impl WordCnn {
    fn train(data: &[&(u32, String)]) -> Self {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for (_, t) in data {
            for w in t.split_whitespace() {
                *counts.entry(w).or_default() += 1;
            }
        }
        let mut words: Vec<&str> = counts.iter().filter(|(_, c)| **c >= 2).map(|(w, _)| *w).collect();
        words.sort_unstable();
        let vocab: HashMap<String, usize> =
            words.iter().enumerate().map(|(i, w)| (w.to_string(), i + 2)).collect();
        let mut rng = Rng::new(7);
        let mut m = Self {
            emb: (0..(vocab.len() + 2) * DIM)
                .map(|i| if i < DIM { 0.0 } else { rng.uniform(-0.25, 0.25) })
                .collect(),
            conv: WIDTHS
                .iter()
                .map(|&k| {
                    let a = (1.0 / (k * DIM) as f32).sqrt();
                    ((0..FILTERS * k * DIM).map(|_| rng.uniform(-a, a)).collect(), vec![0.0; FILTERS])
                })
                .collect(),
            out_w: (0..2 * FEATURES).map(|_| rng.uniform(-0.1, 0.1)).collect(),
            out_b: [0.0; 2],
            vocab,
        };
        let order: Vec<usize> = (0..data.len()).map(|i| i * 7919 % data.len()).collect();
        for epoch in 0..6 {
            let lr = 0.02 / (1.0 + epoch as f32);
            for &i in &order {
                let (y, text) = data[i];
                let t = m.forward(text);
                m.backward(&t, *y as usize, lr);
            }
        }
        m
    }

    fn ids(&self, text: &str) -> Vec<usize> {
        let mut ids: Vec<usize> =
            text.split_whitespace().map(|w| self.vocab.get(w).copied().unwrap_or(1)).collect();
        ids.resize(ids.len().max(WIDTHS[2]), 0);
        ids
    }

    fn forward(&self, text: &str) -> Trace {
        let ids = self.ids(text);
        let x: Vec<f32> = ids.iter().flat_map(|&i| &self.emb[i * DIM..(i + 1) * DIM]).copied().collect();
        let (mut h, mut arg) = (Vec::with_capacity(FEATURES), Vec::with_capacity(FEATURES));
        for (&k, (w, b)) in WIDTHS.iter().zip(&self.conv) {
            for f in 0..FILTERS {
                let wf = &w[f * k * DIM..(f + 1) * k * DIM];
                let (mut best, mut at) = (f32::NEG_INFINITY, 0);
                for t in 0..=ids.len() - k {
                    let a = b[f] + wf.iter().zip(&x[t * DIM..(t + k) * DIM]).map(|(p, q)| p * q).sum::<f32>();
                    if a > best {
                        (best, at) = (a, t);
                    }
                }
                h.push(best.max(0.0));
                arg.push(at);
            }
        }
        let z: Vec<f32> = (0..2)
            .map(|c| {
                self.out_b[c]
                    + self.out_w[c * FEATURES..(c + 1) * FEATURES]
                        .iter()
                        .zip(&h)
                        .map(|(p, q)| p * q)
                        .sum::<f32>()
            })
            .collect();
        let p1 = 1.0 / (1.0 + (z[0] - z[1]).exp());
        Trace { ids, h, arg, p: [1.0 - p1, p1] }
    }

    fn backward(&mut self, t: &Trace, y: usize, lr: f32) {
        let dz = [t.p[0] - f32::from(y == 0), t.p[1] - f32::from(y == 1)];
        let mut dh = vec![0.0f32; FEATURES];
        for (c, &g) in dz.iter().enumerate() {
            let w = &mut self.out_w[c * FEATURES..(c + 1) * FEATURES];
            for ((d, w), h) in dh.iter_mut().zip(w).zip(&t.h) {
                *d += g * *w;
                *w -= lr * g * h;
            }
            self.out_b[c] -= lr * g;
        }
        for (g, (&k, (w, b))) in WIDTHS.iter().zip(self.conv.iter_mut()).enumerate() {
            for (f, bias) in b.iter_mut().enumerate() {
                let j = g * FILTERS + f;
                if t.h[j] <= 0.0 {
                    continue;
                }
                let da = dh[j];
                for r in 0..k {
                    let id = t.ids[t.arg[j] + r];
                    let wf = &mut w[f * k * DIM + r * DIM..f * k * DIM + (r + 1) * DIM];
                    let e = &mut self.emb[id * DIM..(id + 1) * DIM];
                    for (wi, ei) in wf.iter_mut().zip(e) {
                        let old = *ei;
                        if id != 0 {
                            *ei -= lr * da * *wi;
                        }
                        *wi -= lr * da * old;
                    }
                }
                *bias -= lr * da;
            }
        }
    }
}

impl TestModel for WordCnn {
    fn n_classes(&self) -> usize {
        2
    }
    fn predict(&self, input: Input<'_>) -> Vec<f32> {
        let Input::Text(texts) = input else { panic!("text only") };
        texts.iter().flat_map(|t| self.forward(t).p).collect()
    }
    fn loss_grad(&self, _: Input<'_>, _: &[u32]) -> (Vec<f32>, Vec<f32>) {
        unimplemented!()
    }
}

fn label(model: &dyn TestModel, text: &str) -> u32 {
    let p = model.predict(Input::Text(&[text]));
    u32::from(p[1] > p[0])
}

type Runner = fn(&str, &TestBatch, &dyn TestModel) -> Result<TestOutcome, PluginError>;

#[test]
#[ignore = "a benchmark: wants a release build"]
fn mr_success_rate_and_queries() {
    let csv =
        std::env::var_os("TEMPERED_MR_CSV").map(PathBuf::from).unwrap_or_else(|| data_path("mr/mr.csv"));
    let rows = read_mr(&csv);
    // The README's split: the last 533 lines of each class are the test set.
    let is_test = |i: usize| (4798..5331).contains(&i) || (5331 + 4798..10662).contains(&i);
    let train: Vec<&(u32, String)> =
        rows.iter().enumerate().filter(|(i, _)| !is_test(*i)).map(|r| r.1).collect();
    let test: Vec<&(u32, String)> =
        rows.iter().enumerate().filter(|(i, _)| is_test(*i)).map(|r| r.1).collect();
    let start = std::time::Instant::now();
    let models: [(&str, Box<dyn TestModel>); 2] = [
        ("logistic regression", Box::new(LogReg::train(&train))),
        ("word-CNN", Box::new(WordCnn::train(&train))),
    ];
    println!("trained in {:.1?}", start.elapsed());
    for (model_name, model) in &models {
        attack_all(model_name, model.as_ref(), &test);
    }
}

fn attack_all(model_name: &str, model: &dyn TestModel, test: &[&(u32, String)]) {
    let correct: Vec<&&(u32, String)> = test.iter().filter(|(y, t)| label(model, t) == *y).collect();
    println!(
        "{model_name}: clean accuracy {:.3} on {} test rows",
        correct.len() as f32 / test.len() as f32,
        test.len()
    );
    let n = std::env::var("TEMPERED_MR_N").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let sample: Vec<&&(u32, String)> =
        correct.iter().step_by((correct.len() / n).max(1)).copied().take(n).collect();
    let batch =
        TestBatch::text(sample.iter().map(|r| r.1.clone()).collect(), sample.iter().map(|r| r.0).collect());

    let d = |p: &str| data_path(p).display().to_string();
    let ratio: f64 = std::env::var("TEMPERED_MR_RATIO").ok().and_then(|v| v.parse().ok()).unwrap_or(0.2);
    let common = serde_json::json!({
        "synonyms": d("wordnet-synonyms/wordnet-synonyms.tsv"),
        "antonyms": [d("counterfit-constraints/ppdb_antonyms.txt"), d("counterfit-constraints/wordnet_antonyms.txt")],
        "stopwords": d("stopwords/english.txt"),
        "max_change_ratio": ratio,
    });
    let with = |extra: serde_json::Value| {
        let mut p = common.clone();
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        p.to_string()
    };
    let ppdb = d("counterfit-constraints/ppdb_synonyms.txt");
    let runs: [(&str, Runner, String); 4] = [
        ("pwws", run::<Pwws>, with(serde_json::json!({}))),
        ("pwws lazy=false", run::<Pwws>, with(serde_json::json!({"lazy": false}))),
        ("textfooler", run::<TextFooler>, with(serde_json::json!({"ppdb_synonyms": ppdb}))),
        ("beam", run::<Beam>, with(serde_json::json!({"ppdb_synonyms": ppdb}))),
    ];
    for (name, attack, params) in runs {
        let start = std::time::Instant::now();
        let out = attack(&params, &batch, model).unwrap();
        let Perturbed::Text(adv) = &out.perturbed else { panic!() };
        let flipped = adv.iter().zip(&sample).filter(|(a, r)| label(model, a) != r.0).count();
        let changed: usize = adv
            .iter()
            .zip(&sample)
            .map(|(a, r)| a.split(' ').zip(r.1.split(' ')).filter(|(x, y)| x != y).count())
            .sum();
        let queries: u64 = out.queries.iter().sum();
        println!(
            "{name:16} success {:.3}  queries/example {:.1}  words changed/example {:.2}  ({:.1?})",
            flipped as f32 / sample.len() as f32,
            queries as f32 / sample.len() as f32,
            changed as f32 / sample.len() as f32,
            start.elapsed()
        );
    }
}
