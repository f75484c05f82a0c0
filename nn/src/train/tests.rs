//! The trainer's tests: gradients against finite differences, exact resume from any kill
//! point, class weights, the on-disk dataset, the collapse and escalation guards.

use super::step::*;
use super::*;
use crate::model::{Mlp, TabularModelConfig};
use candle_core::Device;
use candle_core::Tensor;

fn data() -> Dataset {
    // Two Gaussian-ish blobs from a fixed formula: class = sign of x0 + x1.
    let make = |n: usize, off: usize| {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let a = (((i + off) * 37) % 101) as f32 / 50.0 - 1.0;
            let b = (((i + off) * 53) % 97) as f32 / 48.0 - 1.0;
            x.extend([a, b]);
            y.push(u32::from(a + b > 0.0));
        }
        Labelled { x: Examples::Dense { data: x, width: 2 }, y }
    };
    Dataset { n_classes: 2, train: make(200, 0), validation: make(50, 1000), test: make(50, 2000) }
}

fn fit_cfg(epochs: usize) -> Fit {
    Fit::clean(epochs, 32, 1e-2)
}

fn model() -> Mlp {
    Mlp::new(&TabularModelConfig::default(), &[0.0, 0.0], &[1.0, 1.0], 2, 3, &Device::Cpu).unwrap()
}

/// A small MLP, a batch of three rows and adversarial versions of the first two.
fn trades_case() -> (Mlp, Labelled, Labelled) {
    let cfg = TabularModelConfig { hidden: vec![5], ..Default::default() };
    let m = Mlp::new(&cfg, &[0.0, 0.0], &[1.0, 1.0], 2, 5, &Device::Cpu).unwrap();
    let batch = Labelled {
        x: Examples::Dense { data: vec![0.3, -0.2, -0.5, 0.8, 0.1, 0.4], width: 2 },
        y: vec![1, 0, 1],
    };
    let adv = Labelled { x: Examples::Dense { data: vec![0.6, -0.5, -0.2, 0.5], width: 2 }, y: vec![1, 0] };
    (m, batch, adv)
}

/// Checks autograd's gradient of `loss` against central finite differences at the first,
/// middle and last weight of every tensor; returns how many weights were checked.
fn gradient_matches_finite_differences(m: &Mlp, loss: &dyn Fn(&Mlp) -> Tensor) -> usize {
    let value = |m: &Mlp| f64::from(loss(m).to_scalar::<f32>().unwrap());
    let grads = loss(m).backward().unwrap();
    let mut checked = 0;
    for var in &m.trainable() {
        let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let w0 = var.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let set = |w: Vec<f32>| {
            var.set(&Tensor::from_vec(w, var.as_tensor().shape(), &Device::Cpu).unwrap()).unwrap()
        };
        for k in [0, w0.len() / 2, w0.len() - 1] {
            let h = 1e-2f32;
            let at = |d: f32| {
                let mut w = w0.clone();
                w[k] += d;
                set(w);
                value(m)
            };
            let numeric = (at(h) - at(-h)) / (2.0 * f64::from(h));
            set(w0.clone());
            assert!(
                (numeric - f64::from(g[k])).abs() <= 2e-3 * (1.0 + numeric.abs()),
                "weight {k}: finite difference {numeric}, autograd {}",
                g[k]
            );
            checked += 1;
        }
    }
    checked
}

/// Class-weighted TRADES: equal weights give the plain loss; other weights give each
/// term's class-weighted mean (checked against the rows' own CE and KL), and the
/// gradient still matches finite differences.
#[test]
fn class_weighted_trades_weighs_both_terms_by_class() {
    let (m, batch, adv) = trades_case();
    let loss = |m: &Mlp, w: Option<&[f64]>| {
        f64::from(trades_loss(m, &batch, &adv, 6.0, w, Mode::TRAIN).unwrap().to_scalar::<f32>().unwrap())
    };
    assert!((loss(&m, Some(&[1.0, 1.0])) - loss(&m, None)).abs() < 1e-6);
    let logits = |x: &Examples| m.forward(&m.encode(&x.view().unwrap()).unwrap(), Mode::TRAIN).unwrap();
    let (clean, adv_logits) = (logits(&batch.x), logits(&adv.x));
    let lp = candle_nn::ops::log_softmax(&clean, D::Minus1).unwrap().to_vec2::<f32>().unwrap();
    let kl = kl_rows(&clean.narrow(0, 0, 2).unwrap(), &adv_logits).unwrap().to_vec1::<f32>().unwrap();
    let w = [1.0f64, 4.0];
    let wy = |y: u32| w[y as usize];
    let ce: f64 =
        batch.y.iter().enumerate().map(|(i, &y)| -wy(y) * f64::from(lp[i][y as usize])).sum::<f64>()
            / batch.y.iter().map(|&y| wy(y)).sum::<f64>();
    let kl: f64 = adv.y.iter().zip(&kl).map(|(&y, &k)| wy(y) * f64::from(k)).sum::<f64>()
        / adv.y.iter().map(|&y| wy(y)).sum::<f64>();
    let weighted = loss(&m, Some(&w));
    assert!((weighted - (ce + 6.0 * kl)).abs() < 1e-5, "{weighted} vs {}", ce + 6.0 * kl);
    assert!((weighted - loss(&m, None)).abs() > 1e-4, "the weights matter here");
    let weighted_loss = |m: &Mlp| trades_loss(m, &batch, &adv, 6.0, Some(&w), Mode::TRAIN).unwrap();
    assert!(gradient_matches_finite_differences(&m, &weighted_loss) >= 6);
}

/// TRADES' gradient, by autograd, against central finite differences of its loss.
#[test]
fn the_trades_gradient_matches_finite_differences() {
    let (m, batch, adv) = trades_case();
    let loss = |m: &Mlp| trades_loss(m, &batch, &adv, 6.0, None, Mode::TRAIN).unwrap();
    let checked = gradient_matches_finite_differences(&m, &loss);
    assert!(checked >= 6);
    // With the adversarial rows equal to the clean ones the KL term vanishes.
    let same = Labelled { x: Examples::Dense { data: vec![0.3, -0.2, -0.5, 0.8], width: 2 }, y: vec![1, 0] };
    let ce = |m: &Mlp| {
        f64::from(
            cross_entropy(
                &m.forward(&m.encode(&batch.x.view().unwrap()).unwrap(), Mode::TRAIN).unwrap(),
                &batch.y,
            )
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        )
    };
    let with_same = f64::from(
        trades_loss(&m, &batch, &same, 6.0, None, Mode::TRAIN).unwrap().to_scalar::<f32>().unwrap(),
    );
    assert!((with_same - ce(&m)).abs() < 1e-6);
}

/// The hand-written step and autograd take the same AdamW steps, clean and mixed.
#[test]
fn the_hand_written_step_matches_autograd() {
    let cfg = TabularModelConfig { hidden: vec![16, 8], ..Default::default() };
    let make = || Mlp::new(&cfg, &[0.5, -1.0, 2.0], &[2.0, 0.5, 1.0], 3, 11, &Device::Cpu).unwrap();
    let (fast, slow) = (make(), make());
    let params = ParamsAdamW { lr: 1e-2, weight_decay: 1e-2, ..Default::default() };
    let mut opt_fast = AdamW::new(fast.trainable(), params.clone()).unwrap();
    let mut opt_slow = AdamW::new(slow.trainable(), params).unwrap();
    let mut grads = vec![Vec::new(); fast.trainable().len()];
    let rows = |n: usize, off: usize| {
        let x: Vec<f32> = (0..n * 3).map(|i| (((i + off) * 37 % 23) as f32 - 11.0) / 4.0).collect();
        let y: Vec<u32> = (0..n).map(|i| ((i + off) % 3) as u32).collect();
        Labelled { x: Examples::Dense { data: x, width: 3 }, y }
    };
    for step in 0..6 {
        let batch = rows(20, step * 7);
        // Clean steps first, then mixed ones with fewer adversarial rows than clean.
        let adv = (step >= 2).then(|| rows(13, 100 + step));
        let w = if step >= 2 { 0.3 } else { 0.0 };
        let a = step_by_hand(&fast, &mut opt_fast, &mut grads, &batch, adv.as_ref(), w).unwrap();
        let b = step_by_autograd(&slow, &mut opt_slow, &batch, adv.as_ref(), w).unwrap();
        let a = a.expect("the MLP takes the hand-written path on the CPU");
        assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "step {step}: loss {a} vs {b}");
        for (p, q) in fast.trainable().iter().zip(slow.trainable()) {
            let (p, q) = (p.flatten_all().unwrap().to_vec1::<f32>().unwrap(), q.flatten_all().unwrap());
            for (u, v) in p.iter().zip(q.to_vec1::<f32>().unwrap()) {
                assert!((u - v).abs() < 1e-5 * (1.0 + v.abs()), "step {step}: weight {u} vs {v}");
            }
        }
    }
}

/// Every tensor of `m`, by name, as bits.
fn weights(m: &dyn Classifier) -> Vec<(String, Vec<u32>)> {
    model::tensors(m)
        .into_iter()
        .map(|(n, t)| {
            let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (n, v.iter().map(|x| x.to_bits()).collect())
        })
        .collect()
}

/// The state without timings, the only numbers allowed to differ.
fn untimed(mut s: TrainState) -> TrainState {
    s.log.iter_mut().for_each(|e| e.seconds = 0.0);
    s
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tempered-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn killer(epoch: usize, point: Point) -> FailPoint {
    FailPoint { epoch, point, action: failpoint::Action::Fail }
}

/// Stops a run at each kill point (the in-process stand-in for SIGKILL: nothing after it
/// runs) and resumes it with a fresh model: the log and the weights are the
/// uninterrupted run's, bit for bit.
fn resumes_exactly<M: Classifier>(
    make: impl Fn() -> M,
    data: &Dataset,
    cfg: &Fit,
    points: &[(usize, Point)],
    name: &str,
) -> TrainState {
    resumes_exactly_with(make, data, cfg, &Balance::default(), points, name)
}

fn resumes_exactly_with<M: Classifier>(
    make: impl Fn() -> M,
    data: &Dataset,
    cfg: &Fit,
    balance: &Balance,
    points: &[(usize, Point)],
    name: &str,
) -> TrainState {
    let root = scratch(name);
    let full_model = make();
    let ck = |d: &str| {
        std::fs::create_dir_all(root.join(d)).unwrap();
        Checkpoints { dir: root.join(d), phase: "clean".into() }
    };
    let full = fit_balanced(&full_model, data, cfg, balance, None, 9, &ck("full")).unwrap();
    for (i, &(epoch, point)) in points.iter().enumerate() {
        let ck = ck(&format!("kill-{i}"));
        let killed = fit_with(&make(), data, cfg, balance, None, 9, &ck, Some(&killer(epoch, point)));
        let err = killed.expect_err("the fail point stops the run").to_string();
        assert!(err.contains(failpoint::VAR), "{err}");
        let m = make();
        let resumed = fit_balanced(&m, data, cfg, balance, None, 9, &ck).unwrap();
        let at = format!("killed at epoch {epoch}, {point:?}");
        assert_eq!(untimed(resumed), untimed(full.clone()), "{at}");
        assert!(weights(&m) == weights(&full_model), "{at}: the weights differ");
        // A finished phase reloads to the same weights too.
        let again = make();
        let reloaded = fit_balanced(&again, data, cfg, balance, None, 9, &ck).unwrap();
        assert_eq!(untimed(reloaded), untimed(full.clone()));
        assert!(weights(&again) == weights(&full_model), "{at}: reloaded weights differ");
        let left: Vec<String> = std::fs::read_dir(&ck.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["clean.safetensors"], "{at}: one final commit, nothing else");
    }
    let _ = std::fs::remove_dir_all(&root);
    full
}

#[test]
fn training_learns_and_resumes_exactly_from_any_point() {
    // A high learning rate, so that some epochs are worse than the best one so far and
    // the commits carry the best weights besides the current ones.
    let cfg = Fit { lr: 0.3, ..fit_cfg(5) };
    let mut points = Vec::new();
    for epoch in 1..=5 {
        points.extend([(epoch, Point::Batch(1)), (epoch, Point::Batch(4)), (epoch, Point::Tmp)]);
        points.extend([(epoch, Point::Renamed), (epoch, Point::End)]);
    }
    let full = resumes_exactly(model, &data(), &cfg, &points, "mlp");
    assert!(full.log.last().unwrap().validation_accuracy > 0.9, "{:?}", full.log);
    assert!(full.best_epoch < full.epochs_done, "a worse last epoch: {:?}", full.log);
}

/// An average of the weights changes what is validated and kept, never how training
/// goes: the optimiser's steps (the training losses) are the plain run's, bit for bit, and
/// the kept model is the one whose validation numbers the log shows for its epoch.
#[test]
fn averaging_changes_what_is_validated_and_kept_not_how_training_goes() {
    let root = scratch("averaged");
    let data = data();
    let plain_cfg = Fit { lr: 0.3, ..fit_cfg(4) };
    let run = |cfg: &Fit, name: &str| {
        std::fs::create_dir_all(root.join(name)).unwrap();
        let ck = Checkpoints { dir: root.join(name), phase: "clean".into() };
        let m = model();
        let state = fit(&m, &data, cfg, None, 9, &ck).unwrap();
        (state, m)
    };
    let (plain, plain_model) = run(&plain_cfg, "plain");
    let (avg, avg_model) = run(&Fit { weight_average: Some(0.9), ..plain_cfg.clone() }, "average");
    let losses = |s: &TrainState| s.log.iter().map(|e| e.train_loss.to_bits()).collect::<Vec<_>>();
    assert_eq!(losses(&avg), losses(&plain), "averaging must not move the optimiser");
    let validated = |s: &TrainState| s.log.iter().map(|e| e.validation_loss.to_bits()).collect::<Vec<_>>();
    assert_ne!(validated(&avg), validated(&plain), "the average is what is validated");
    assert!(weights(&avg_model) != weights(&plain_model), "the average is what is kept");
    for (state, m) in [(&plain, &plain_model), (&avg, &avg_model)] {
        let kept = &state.log[state.best_epoch - 1];
        let (loss, acc) = evaluate_loss(m, &data.validation, 1024).unwrap();
        assert_eq!((loss.to_bits(), acc), (kept.validation_loss.to_bits(), kept.validation_accuracy));
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// The average is in every epoch commit: a killed averaging phase resumes to the
/// uninterrupted one's log and kept weights from any point, also when the best epoch's
/// average lies in an earlier commit than the newest.
#[test]
fn an_averaging_phase_resumes_exactly_from_any_point() {
    let cfg = Fit { lr: 0.6, weight_average: Some(0.9), ..fit_cfg(5) };
    let mut points = Vec::new();
    for epoch in 1..=5 {
        points.extend([(epoch, Point::Batch(2)), (epoch, Point::Tmp), (epoch, Point::End)]);
    }
    let full = resumes_exactly(model, &data(), &cfg, &points, "mlp-averaged");
    assert!(full.best_epoch < full.epochs_done, "a worse last epoch: {:?}", full.log);
}

/// A commit written with an average cannot be resumed without one, nor the other way
/// round: the two would keep different models.
#[test]
fn a_commit_is_resumed_only_with_the_averaging_it_was_written_with() {
    let data = data();
    let averaged = Fit { weight_average: Some(0.9), ..fit_cfg(3) };
    let other = Fit { weight_average: Some(0.99), ..fit_cfg(3) };
    for (written, resumed) in [(&averaged, &fit_cfg(3)), (&fit_cfg(3), &averaged), (&averaged, &other)] {
        let dir = scratch("averaging-changed");
        let ck = Checkpoints { dir: dir.clone(), phase: "clean".into() };
        let killed = fit_with(
            &model(),
            &data,
            written,
            &Balance::default(),
            None,
            9,
            &ck,
            Some(&killer(1, Point::End)),
        );
        assert!(killed.is_err());
        let e = fit(&model(), &data, resumed, None, 9, &ck).unwrap_err().to_string();
        assert!(e.contains("clean-epoch-0001.safetensors") && e.contains("weight_average"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Labels of `data()` turned into a rare class: one row in ten is class 1.
fn rare(mut d: Dataset) -> Dataset {
    for split in [&mut d.train, &mut d.validation, &mut d.test] {
        let Examples::Dense { data, .. } = &split.x else { unreachable!() };
        let data = data.clone();
        for (i, y) in split.y.iter_mut().enumerate() {
            *y = u32::from(data[2 * i] + data[2 * i + 1] > 1.0);
        }
    }
    d
}

/// Weighted and oversampled phases resume to the uninterrupted run's numbers too: the
/// weights come from the split, the draws from the epoch's seed.
#[test]
fn weighted_and_balanced_phases_resume_exactly() {
    let data = rare(data());
    let share = data.train.y.iter().filter(|&&y| y == 1).count() as f64 / data.train.len() as f64;
    assert!(share > 0.02 && share < 0.2, "a rare class: {share}");
    let cfg = Fit { lr: 0.05, ..fit_cfg(3) };
    let points = [(1, Point::End), (2, Point::Batch(3)), (3, Point::Renamed)];
    let weighted = Balance { class_weights: Some(vec![1.0, 8.0]), sampling: false };
    resumes_exactly_with(model, &data, &cfg, &weighted, &points, "weighted");
    let sampled = Balance { class_weights: None, sampling: true };
    resumes_exactly_with(model, &data, &cfg, &sampled, &points, "sampled");
}

/// The class-weighted step through the hand-written gradients and through autograd
/// agree, and equal the weighted mean `Σ c_y · CE / Σ c_y`.
#[test]
fn the_weighted_step_matches_autograd_and_the_weighted_mean() {
    let (fast, slow) = (model(), model());
    let params = ParamsAdamW { lr: 1e-2, ..Default::default() };
    let mut opt_fast = AdamW::new(fast.trainable(), params.clone()).unwrap();
    let mut opt_slow = AdamW::new(slow.trainable(), params).unwrap();
    let mut grads = vec![Vec::new(); fast.trainable().len()];
    let batch = rare(data()).train.select(&(0..40).collect::<Vec<_>>()).unwrap();
    let weights = [1.0, 5.0];
    // The expected loss, before any step: per-row CE by autograd, weighted by hand.
    let logits = fast.forward(&fast.encode(&batch.x.view().unwrap()).unwrap(), Mode::EVAL).unwrap();
    let y = Tensor::from_slice(&batch.y, batch.y.len(), &Device::Cpu).unwrap();
    let per_row: Vec<f32> = candle_nn::ops::log_softmax(&logits, D::Minus1)
        .unwrap()
        .gather(&y.unsqueeze(1).unwrap(), 1)
        .unwrap()
        .squeeze(1)
        .unwrap()
        .neg()
        .unwrap()
        .to_vec1()
        .unwrap();
    let (num, den) = per_row
        .iter()
        .zip(&batch.y)
        .fold((0.0, 0.0), |(n, d), (&l, &c)| (n + weights[c as usize] * l as f64, d + weights[c as usize]));
    let a = step_weighted(&fast, &mut opt_fast, &mut grads, &batch, None, 0.0, &weights).unwrap();
    assert!(((a as f64) - num / den).abs() < 1e-5, "{a} vs {}", num / den);
    let adv = Labelled { x: batch.x.clone(), y: batch.y.clone() };
    let b = step_weighted(&fast, &mut opt_fast, &mut grads, &batch, Some(&adv), 0.3, &weights).unwrap();
    let parts = class_parts(&batch, &weights, 1.0).unwrap();
    let total: f64 = parts.iter().map(|(_, s)| s).sum();
    assert!((total - 1.0).abs() < 1e-12, "the shares sum to 1: {total}");
    // The same loss through autograd, from the same starting weights.
    let a2 = {
        let mut loss: Option<Tensor> = None;
        for (part, scale) in &parts {
            let ce = cross_entropy(
                &slow.forward(&slow.encode(&part.x.view().unwrap()).unwrap(), Mode::TRAIN).unwrap(),
                &part.y,
            )
            .unwrap();
            let t = (ce * *scale).unwrap();
            loss = Some(match loss {
                Some(l) => (l + t).unwrap(),
                None => t,
            });
        }
        let loss = loss.unwrap();
        opt_slow.backward_step(&loss).unwrap();
        loss.to_scalar::<f32>().unwrap()
    };
    assert!((a - a2).abs() < 1e-5, "{a} vs {a2}");
    assert!(b.is_finite());
}

/// On a rare class, weighting the loss makes the model flag more of it than the
/// unweighted loss does.
#[test]
fn weighting_flags_more_of_the_rare_class() {
    let data = rare(data());
    let cfg = Fit { lr: 0.05, ..fit_cfg(8) };
    let flagged = |balance: &Balance, name: &str| {
        let dir = scratch(name);
        let m = model();
        let ck = Checkpoints { dir: dir.clone(), phase: "clean".into() };
        fit_balanced(&m, &data, &cfg, balance, None, 9, &ck).unwrap();
        let logits = m.forward(&m.encode(&data.train.x.view().unwrap()).unwrap(), Mode::EVAL).unwrap();
        let pred = logits.argmax(D::Minus1).unwrap().to_vec1::<u32>().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        pred.iter().zip(&data.train.y).filter(|&(&p, &y)| p == 1 && y == 1).count()
    };
    let plain = flagged(&Balance::default(), "plain");
    let weighted = flagged(&Balance { class_weights: Some(vec![1.0, 9.0]), sampling: false }, "weighted");
    let sampled = flagged(&Balance { class_weights: None, sampling: true }, "sampled");
    assert!(weighted > plain, "weighted {weighted} vs unweighted {plain}");
    assert!(sampled > plain, "balanced sampling {sampled} vs {plain}");
}

/// The word-CNN draws dropout masks from a generator that runs across batches and
/// epochs: the commits carry its position.
#[test]
fn a_model_with_dropout_resumes_exactly() {
    use crate::model::text::TextModelConfig;
    use crate::model::word_cnn::{Vocab, WordCnn};
    let words = ["good", "great", "fine", "bad", "awful", "poor", "the", "film", "plot", "was"];
    let make_split = |n: usize, off: usize| {
        let mut texts = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let k = (i + off) * 7;
            let label = (k / 3) % 2;
            let sentiment = &words[label * 3..label * 3 + 3];
            texts.push(format!(
                "{} {} {} {}",
                words[6 + k % 4],
                sentiment[k % 3],
                words[6 + (k / 5) % 4],
                sentiment[(k / 7) % 3]
            ));
            y.push(label as u32);
        }
        Labelled { x: Examples::Text(texts), y }
    };
    let data = Dataset {
        n_classes: 2,
        train: make_split(60, 0),
        validation: make_split(20, 100),
        test: make_split(4, 200),
    };
    let Examples::Text(texts) = &data.train.x else { unreachable!() };
    let make = || {
        let vocab = Vocab::build(texts.iter(), 1).unwrap();
        let cfg = TextModelConfig { embedding_dim: 8, filters: 4, word_dropout: 0.2, ..Default::default() };
        WordCnn::new(&cfg, vocab, 2, 3, &Device::Cpu).unwrap()
    };
    let cfg = Fit { batch_size: 16, ..fit_cfg(3) };
    let points = [(1, Point::End), (2, Point::Batch(2)), (3, Point::Batch(1)), (3, Point::Renamed)];
    resumes_exactly(make, &data, &cfg, &points, "word-cnn");
}

/// Shifts every value by an amount drawn from the seed, and counts what it was given.
struct Nudge {
    seen: usize,
}

impl Adversary for Nudge {
    fn generate(&mut self, _: &dyn Classifier, x: &Examples, y: &[u32], seed: u64) -> Result<Examples> {
        self.seen += y.len();
        let Examples::Dense { data, width } = x else { unreachable!("dense rows") };
        let shift = (seed % 7) as f32 * 0.05;
        Ok(Examples::Dense { data: data.iter().map(|v| v + shift).collect(), width: *width })
    }
    fn state(&self) -> serde_json::Value {
        self.seen.into()
    }
    fn restore(&mut self, state: &serde_json::Value) -> Result<()> {
        self.seen = state.as_u64().ok_or_else(|| Error::msg("a count"))? as usize;
        Ok(())
    }
}

/// Adversarial epochs resume exactly too, and the adversary gets its counters back,
/// from an epoch commit and from the final one.
#[test]
fn an_adversarial_phase_resumes_exactly_with_the_adversary_state() {
    let root = scratch("adversarial");
    let cfg = Fit {
        adversarial_weight: 0.5,
        share: 0.5,
        clean_epochs: 1,
        validation_attack_examples: 20,
        ..fit_cfg(3)
    };
    let data = data();
    let ck = |d: &str| {
        std::fs::create_dir_all(root.join(d)).unwrap();
        Checkpoints { dir: root.join(d), phase: "hardened".into() }
    };
    let (full_model, mut full_adv) = (model(), Nudge { seen: 0 });
    let full = fit(&full_model, &data, &cfg, Some(&mut full_adv), 9, &ck("full")).unwrap();
    assert!(full_adv.seen > 0);
    for (i, (epoch, point)) in
        [(2, Point::Batch(3)), (2, Point::End), (3, Point::Tmp)].into_iter().enumerate()
    {
        let ck = ck(&format!("kill-{i}"));
        let mut adv = Nudge { seen: 0 };
        let killed = fit_with(
            &model(),
            &data,
            &cfg,
            &Balance::default(),
            Some(&mut adv),
            9,
            &ck,
            Some(&killer(epoch, point)),
        );
        assert!(killed.is_err());
        let (m, mut adv) = (model(), Nudge { seen: 0 });
        let resumed = fit(&m, &data, &cfg, Some(&mut adv), 9, &ck).unwrap();
        assert_eq!(untimed(resumed), untimed(full.clone()), "killed at epoch {epoch}, {point:?}");
        assert!(weights(&m) == weights(&full_model), "killed at epoch {epoch}, {point:?}");
        assert_eq!(adv.seen, full_adv.seen, "killed at epoch {epoch}, {point:?}");
        let mut again = Nudge { seen: 0 };
        fit(&model(), &data, &cfg, Some(&mut again), 9, &ck).unwrap();
        assert_eq!(again.seen, full_adv.seen, "the finished phase's counters");
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// A dataset whose splits are on disk trains to the in-memory dataset's weights and log,
/// bit for bit: clean, class-weighted with balanced sampling (validation by class),
/// adversarial and TRADES; and predicts and evaluates the same.
#[test]
fn a_dataset_on_disk_trains_and_evaluates_to_the_same_bits() {
    let rows = tempfile::tempdir().unwrap();
    let root = scratch("stored");
    let dense = rare(data());
    let disk = crate::examples::stored_dataset(&dense, rows.path());
    assert!(matches!(disk.train.x, Examples::Stored(_)));
    let adversarial = Fit {
        adversarial_weight: 0.5,
        share: 0.5,
        clean_epochs: 1,
        validation_attack_examples: 20,
        ..fit_cfg(3)
    };
    let weighted = Balance { class_weights: Some(vec![1.0, 8.0]), sampling: true };
    let cases = [
        ("clean", fit_cfg(2), Balance::default(), false),
        ("balanced", Fit { lr: 0.05, ..fit_cfg(2) }, weighted.clone(), false),
        ("adversarial", adversarial.clone(), weighted, true),
        ("trades", Fit { trades_beta: Some(6.0), ..adversarial }, Balance::default(), true),
    ];
    for (name, cfg, balance, attacked) in cases {
        let run = |d: &Dataset, tag: &str| {
            let dir = root.join(format!("{name}-{tag}"));
            std::fs::create_dir_all(&dir).unwrap();
            let ck = Checkpoints { dir, phase: "hardened".into() };
            let (m, mut adv) = (model(), Nudge { seen: 0 });
            let adv_ref = attacked.then_some(&mut adv as &mut dyn Adversary);
            let state = fit_balanced(&m, d, &cfg, &balance, adv_ref, 9, &ck).unwrap();
            (untimed(state), weights(&m), adv.seen, m)
        };
        let (a, b) = (run(&dense, "memory"), run(&disk, "disk"));
        assert_eq!(a.0, b.0, "{name}: the logs differ");
        assert!(a.1 == b.1, "{name}: the weights differ");
        assert_eq!(a.2, b.2, "{name}: the adversary saw other rows");
        assert!(!attacked || a.2 > 0, "{name}: the adversary was used");
        let m = a.3;
        for (x, y) in [(&dense.test, &disk.test), (&dense.validation, &disk.validation)] {
            let (p, q) = (predict(&m, &x.x, 7), predict(&m, &y.x, 7));
            assert_eq!(p.0, q.0);
            let bits = |v: &[Vec<f32>]| v.iter().flatten().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&p.1), bits(&q.1), "{name}: the probabilities differ");
            let (l, r) = (evaluate_loss(&m, x, 16).unwrap(), evaluate_loss(&m, y, 16).unwrap());
            assert_eq!((l.0.to_bits(), l.1.to_bits()), (r.0.to_bits(), r.1.to_bits()));
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// Flips the value of tensor `name` in the safetensors file `path` to NaN.
fn poison(path: &std::path::Path, name: &str) {
    let mut bytes = std::fs::read(path).unwrap();
    let (n, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let at = 8 + n + meta.info(name).unwrap().data_offsets.0;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_checkpoint_is_refused_naming_the_file_and_the_tensor() {
    let dir = scratch("damaged");
    let ck = Checkpoints { dir: dir.clone(), phase: "clean".into() };
    let data = data();
    // Killed after epoch 1: an epoch commit with weights and moments.
    let killed = fit_with(
        &model(),
        &data,
        &fit_cfg(3),
        &Balance::default(),
        None,
        9,
        &ck,
        Some(&killer(1, Point::End)),
    );
    assert!(killed.is_err());
    let commit = dir.join("clean-epoch-0001.safetensors");
    for tensor in ["@adamw/v/1", "layer0.weight"] {
        poison(&commit, tensor);
        let m = model();
        let before = weights(&m);
        let e = fit(&m, &data, &fit_cfg(3), None, 9, &ck).unwrap_err().to_string();
        assert!(e.contains(&commit.display().to_string()), "{e}");
        // The file's own hash catches it before any tensor is read (a NaN written as
        // such is named by its tensor: `checkpoint::tests`).
        assert!(e.contains("do not match the hash written with them"), "{tensor}: {e}");
        assert!(weights(&m) == before, "nothing was loaded");
    }

    // The final commit of another architecture: every tensor's shape is checked.
    std::fs::remove_file(&commit).unwrap();
    fit(&model(), &data, &fit_cfg(1), None, 9, &ck).unwrap();
    let cfg = TabularModelConfig { hidden: vec![5, 7], ..Default::default() };
    let other = Mlp::new(&cfg, &[0.0, 0.0], &[1.0, 1.0], 2, 3, &Device::Cpu).unwrap();
    let e = fit(&other, &data, &fit_cfg(1), None, 9, &ck).unwrap_err().to_string();
    assert!(e.contains("clean.safetensors") && e.contains("shape"), "{e}");
    poison(&ck.best(), "layer1.bias");
    let e = fit(&model(), &data, &fit_cfg(1), None, 9, &ck).unwrap_err().to_string();
    assert!(e.contains("clean.safetensors: its tensors do not match the hash written with them"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_collapse_is_half_the_best_and_twenty_points_down() {
    assert!(!collapsed(None, 0.0), "nothing to compare with yet");
    assert!(collapsed(Some(0.6), 0.2));
    assert!(!collapsed(Some(0.6), 0.35), "not below half");
    assert!(collapsed(Some(0.4), 0.2 - 1e-9));
    assert!(!collapsed(Some(0.25), 0.1), "a drop of 15 points is noise at this level");
}

/// Trains on the clean rows; its probe answers with the rows' mirror image from the
/// third call on, which the model gets wrong: a constructed catastrophic overfit.
struct Collapsing {
    probes: usize,
}

impl Adversary for Collapsing {
    fn generate(&mut self, _m: &dyn Classifier, x: &Examples, _y: &[u32], _s: u64) -> Result<Examples> {
        Ok(x.clone())
    }
    fn probe(&mut self, _m: &dyn Classifier, x: &Examples, _y: &[u32], _s: u64) -> Option<Result<Examples>> {
        self.probes += 1;
        let Examples::Dense { data, width } = x else { unreachable!("dense") };
        let flip = if self.probes >= 3 { -1.0 } else { 1.0 };
        Some(Ok(Examples::Dense { data: data.iter().map(|v| v * flip).collect(), width: *width }))
    }
}

#[test]
fn a_collapse_under_the_probe_stops_training_and_keeps_the_epoch_before() {
    let dir = scratch("collapse");
    let ck = Checkpoints { dir: dir.clone(), phase: "hardened".into() };
    let cfg = Fit { lr: 0.05, adversarial_weight: 0.5, validation_attack_examples: 50, ..fit_cfg(6) };
    let mut adv = Collapsing { probes: 0 };
    let m = model();
    let state = fit(&m, &data(), &cfg, Some(&mut adv), 9, &ck).unwrap();
    assert_eq!(state.collapsed_at, Some(3), "{:?}", state.log);
    assert_eq!(state.epochs_done, 3, "training stopped at the collapse");
    assert!(state.best_epoch < 3, "the collapsed epoch is never kept");
    let probe: Vec<f64> = state.log.iter().map(|e| e.probe_accuracy.unwrap()).collect();
    assert!(probe[2] < 0.5 * probe[1], "{probe:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Attacks class 1 only, and from the third probe on mirrors those rows, which the model
/// then gets wrong: a collapse that all-rows accuracy would halve, not reveal.
struct CollapsingOnOneClass {
    probes: usize,
}

impl Adversary for CollapsingOnOneClass {
    fn generate(&mut self, _m: &dyn Classifier, x: &Examples, _y: &[u32], _s: u64) -> Result<Examples> {
        Ok(x.clone())
    }
    fn attacks_class(&self, label: u32) -> bool {
        label == 1
    }
    fn probe(&mut self, _m: &dyn Classifier, x: &Examples, y: &[u32], _s: u64) -> Option<Result<Examples>> {
        self.probes += 1;
        let Examples::Dense { data, width } = x else { unreachable!("dense") };
        let mut out = data.clone();
        if self.probes >= 3 {
            for (row, _) in out.chunks_mut(*width).zip(y).filter(|(_, y)| **y == 1) {
                row.iter_mut().for_each(|v| *v = -*v);
            }
        }
        Some(Ok(Examples::Dense { data: out, width: *width }))
    }
}

#[test]
fn robust_and_probe_accuracies_count_only_the_attacked_class() {
    let dir = scratch("collapse-one-class");
    let ck = Checkpoints { dir: dir.clone(), phase: "hardened".into() };
    let cfg = Fit { lr: 0.05, adversarial_weight: 0.5, validation_attack_examples: 50, ..fit_cfg(6) };
    let mut adv = CollapsingOnOneClass { probes: 0 };
    let state = fit(&model(), &data(), &cfg, Some(&mut adv), 9, &ck).unwrap();
    let probe: Vec<f64> = state.log.iter().map(|e| e.probe_accuracy.unwrap()).collect();
    assert_eq!(state.collapsed_at, Some(3), "probe accuracy per epoch: {probe:?}");
    assert!(probe[2] < 0.2, "class-1 rows only, all mirrored: {probe:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Trains on the clean rows; its probe mirrors one row in ten, which the model then gets
/// wrong, and from the third call on three in ten: robust accuracy that falls under the
/// probe, by less than a collapse, while the training attack's does not.
struct Fading {
    probes: usize,
}

impl Adversary for Fading {
    fn generate(&mut self, _m: &dyn Classifier, x: &Examples, _y: &[u32], _s: u64) -> Result<Examples> {
        Ok(x.clone())
    }
    fn probe(&mut self, _m: &dyn Classifier, x: &Examples, _y: &[u32], _s: u64) -> Option<Result<Examples>> {
        self.probes += 1;
        let Examples::Dense { data, width } = x else { unreachable!("dense") };
        let mut out = data.clone();
        for row in out.chunks_mut(*width).step_by(10) {
            row.iter_mut().for_each(|v| *v = -*v);
        }
        if self.probes >= 3 {
            for row in out.chunks_mut(*width).skip(1).step_by(5) {
                row.iter_mut().for_each(|v| *v = -*v);
            }
        }
        Some(Ok(Examples::Dense { data: out, width: *width }))
    }
}

#[test]
fn robust_accuracy_early_stopping_follows_the_probe_when_there_is_one() {
    let dir = scratch("probe-stop");
    let ck = Checkpoints { dir: dir.clone(), phase: "hardened".into() };
    let cfg = Fit {
        lr: 0.05,
        adversarial_weight: 0.5,
        validation_attack_examples: 50,
        stop_on_robust_accuracy: true,
        ..fit_cfg(6)
    };
    let state = fit(&model(), &data(), &cfg, Some(&mut Fading { probes: 0 }), 9, &ck).unwrap();
    let probe: Vec<f64> = state.log.iter().map(|e| e.probe_accuracy.unwrap()).collect();
    let robust: Vec<f64> = state.log.iter().map(|e| e.robust_accuracy.unwrap()).collect();
    assert_eq!((state.collapsed_at, state.epochs_done), (None, 6), "a fall, not a collapse: {probe:?}");
    assert!(probe[2..].iter().all(|&p| p < probe[1]), "the probe falls from epoch 3: {probe:?}");
    assert!(state.best_epoch <= 2, "kept epoch {}: probe {probe:?}", state.best_epoch);
    // The objective is the probe's error, not the training attack's.
    let kept = &state.log[state.best_epoch - 1];
    assert_eq!(kept.objective, 1.0 - probe[state.best_epoch - 1]);
    assert!(robust[state.best_epoch - 1] > probe[state.best_epoch - 1], "robust {robust:?}");
    assert!(robust[2..].iter().all(|&r| r >= robust[1] - 0.021), "no fall under FGSM: {robust:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Hands back the rows unchanged (so the model "beats" its examples) while its probe
/// mirrors them (so the probe always wins): FGSM-style robustness that is not real.
#[derive(Default)]
struct Beaten {
    escalated: bool,
}

impl Adversary for Beaten {
    fn generate(&mut self, _m: &dyn Classifier, x: &Examples, _y: &[u32], _s: u64) -> Result<Examples> {
        Ok(x.clone())
    }
    fn escalate(&mut self) -> bool {
        self.escalated = true;
        true
    }
    fn probe(&mut self, _m: &dyn Classifier, x: &Examples, _y: &[u32], _s: u64) -> Option<Result<Examples>> {
        let Examples::Dense { data, width } = x else { unreachable!("dense") };
        Some(Ok(Examples::Dense { data: data.iter().map(|v| -v).collect(), width: *width }))
    }
}

#[test]
fn beaten_training_examples_switch_hardening_to_the_probe_also_after_a_resume() {
    let dir = scratch("escalate");
    let ck = Checkpoints { dir: dir.clone(), phase: "hardened".into() };
    let cfg = Fit { lr: 0.05, adversarial_weight: 0.5, validation_attack_examples: 50, ..fit_cfg(4) };
    let mut adv = Beaten::default();
    let state = fit(&model(), &data(), &cfg, Some(&mut adv), 9, &ck).unwrap();
    assert!(adv.escalated);
    assert_eq!(state.escalated_at, Some(1), "{:?}", state.log);
    assert_eq!(state.epochs_done, 4, "training goes on with the probe's attack");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&dir).unwrap();

    // Killed after epoch 2: the resumed phase trains with the probe's attack again.
    let killed = fit_with(
        &model(),
        &data(),
        &cfg,
        &Balance::default(),
        Some(&mut Beaten::default()),
        9,
        &ck,
        Some(&killer(2, Point::End)),
    );
    assert!(killed.is_err());
    let mut resumed = Beaten::default();
    let again = fit(&model(), &data(), &cfg, Some(&mut resumed), 9, &ck).unwrap();
    assert!(resumed.escalated, "a resume goes on with the attack it had switched to");
    assert_eq!(again.escalated_at, Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_diverging_run_stops_naming_the_phase_epoch_batch_and_learning_rate() {
    let dir = scratch("diverging");
    let ck = Checkpoints { dir: dir.clone(), phase: "clean".into() };
    let e = fit(&model(), &data(), &Fit { lr: 1e30, ..fit_cfg(3) }, None, 9, &ck).unwrap_err().to_string();
    assert!(e.starts_with("clean epoch 1, batch "), "{e}");
    assert!(e.contains("the training loss is NaN (lr = 1e30): lower [train] lr"), "{e}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "nothing was committed");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Predicted classes and probabilities of `x`, `batch` rows at a time (rows on disk are
/// never viewed whole).
fn predict(m: &dyn Classifier, x: &Examples, batch: usize) -> (Vec<u32>, Vec<Vec<f32>>) {
    let (mut preds, mut probs) = (Vec::new(), Vec::new());
    let idx: Vec<usize> = (0..x.len()).collect();
    for chunk in idx.chunks(batch) {
        let logits =
            m.forward(&m.encode(&x.select(chunk).unwrap().view().unwrap()).unwrap(), Mode::EVAL).unwrap();
        preds.extend(logits.argmax(candle_core::D::Minus1).unwrap().to_vec1::<u32>().unwrap());
        probs.extend(candle_nn::ops::softmax_last_dim(&logits).unwrap().to_vec2::<f32>().unwrap());
    }
    (preds, probs)
}
