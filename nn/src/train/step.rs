//! One optimiser step on a batch, each loss the trainer knows: cross-entropy (clean and
//! adversarial mixed by weight, per class when classes are weighted) and TRADES (clean
//! cross-entropy plus β · KL between clean and adversarial predictions). The hand-written
//! CPU step is used where the model offers one; autograd otherwise.

use candle_core::{D, Tensor};

use super::AdamW;
use crate::examples::{Examples, Labelled};
use crate::model::{Classifier, Mode, TrainPart};
use crate::{Error, Result};

/// Mean cross-entropy of `logits` against `y`.
pub(super) fn cross_entropy(logits: &Tensor, y: &[u32]) -> candle_core::Result<Tensor> {
    let y = Tensor::from_slice(y, y.len(), logits.device())?;
    candle_nn::loss::cross_entropy(logits, &y)
}

/// Rows of `batch` split by class, each class entering with `scale · c_k · n_k / Σ c_j n_j`
/// times its mean cross-entropy: summed, `scale` times the class-weighted mean loss.
pub(super) fn class_parts(batch: &Labelled, weights: &[f64], scale: f64) -> Result<Vec<(Labelled, f64)>> {
    class_rows(&batch.y, weights, scale)
        .into_iter()
        .map(|(r, share)| Ok((batch.select(&r)?, share)))
        .collect()
}

/// The rows of [`class_parts`] (indices into `y`) and their shares.
pub(super) fn class_rows(y: &[u32], weights: &[f64], scale: f64) -> Vec<(Vec<usize>, f64)> {
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); weights.len()];
    for (i, &y) in y.iter().enumerate() {
        if let Some(r) = rows.get_mut(y as usize) {
            r.push(i);
        }
    }
    let total: f64 = rows.iter().zip(weights).map(|(r, w)| r.len() as f64 * w).sum();
    rows.into_iter()
        .zip(weights)
        .filter(|(r, _)| !r.is_empty())
        // A batch holding only zero-weighted classes contributes nothing, rather than 0 / 0.
        .map(|(r, &w)| {
            let share = if total > 0.0 { w * r.len() as f64 / total } else { 0.0 };
            (r, scale * share)
        })
        .collect()
}

/// The class-weighted step: clean rows at `1 − w`, adversarial rows at `w`, each by class.
pub(super) fn step_weighted(
    model: &dyn Classifier,
    opt: &mut AdamW,
    grads: &mut [Vec<f32>],
    batch: &Labelled,
    adv: Option<&Labelled>,
    w: f64,
    weights: &[f64],
) -> Result<f32> {
    let mut parts = class_parts(batch, weights, if adv.is_some() { 1.0 - w } else { 1.0 })?;
    if let Some(adv) = adv {
        parts.extend(class_parts(adv, weights, w)?);
    }
    let refs: Vec<(&Labelled, f64)> = parts.iter().map(|(l, s)| (l, *s)).collect();
    if let Some(loss) = step_parts_by_hand(model, opt, grads, &refs)? {
        return Ok(loss);
    }
    let mut loss: Option<Tensor> = None;
    for (part, scale) in &refs {
        let ce = cross_entropy(&model.forward(&model.encode(&part.x.view()?)?, Mode::TRAIN)?, &part.y)?;
        let term = (ce * *scale)?;
        loss = Some(match loss {
            Some(l) => (l + term)?,
            None => term,
        });
    }
    let loss = loss.ok_or_else(|| Error::invalid("an empty training batch"))?;
    opt.backward_step(&loss)?;
    Ok(loss.to_scalar::<f32>()?)
}

/// One optimiser step on `(1 − w) · CE(batch) + w · CE(adv)` (just `CE(batch)` without
/// adversarial examples) through candle's autograd. Returns the loss.
pub(super) fn step_by_autograd(
    model: &dyn Classifier,
    opt: &mut AdamW,
    batch: &Labelled,
    adv: Option<&Labelled>,
    w: f64,
) -> Result<f32> {
    let clean = cross_entropy(&model.forward(&model.encode(&batch.x.view()?)?, Mode::TRAIN)?, &batch.y)?;
    let loss = match adv {
        Some(adv) => {
            let adv_loss =
                cross_entropy(&model.forward(&model.encode(&adv.x.view()?)?, Mode::TRAIN)?, &adv.y)?;
            ((clean * (1.0 - w))? + (adv_loss * w)?)?
        }
        None => clean,
    };
    opt.backward_step(&loss)?;
    Ok(loss.to_scalar::<f32>()?)
}

/// `KL(softmax(clean) ‖ softmax(adv))` of each row: how far the adversarial examples moved
/// the model's prediction from its clean one.
pub(super) fn kl_rows(clean: &Tensor, adv: &Tensor) -> candle_core::Result<Tensor> {
    let log_p = candle_nn::ops::log_softmax(clean, D::Minus1)?;
    let log_q = candle_nn::ops::log_softmax(adv, D::Minus1)?;
    let p = log_p.exp()?;
    (p * (log_p - log_q)?)?.sum(D::Minus1)
}

/// The mean of [`kl_rows`], or with class weights the mean weighted by each row's class.
pub(super) fn kl_clean_adv(
    clean: &Tensor,
    adv: &Tensor,
    weighted: Option<(&[u32], &[f64])>,
) -> candle_core::Result<Tensor> {
    let kl = kl_rows(clean, adv)?;
    match weighted {
        None => kl.mean_all(),
        Some((y, weights)) => weighted_mean(&kl, y, weights),
    }
}

/// `Σ w_{y_i} v_i / Σ w_{y_i}`: the class-weighted mean that [`class_parts`] gives a loss.
pub(super) fn weighted_mean(v: &Tensor, y: &[u32], weights: &[f64]) -> candle_core::Result<Tensor> {
    let w: Vec<f32> = y.iter().map(|&c| weights.get(c as usize).copied().unwrap_or(1.0) as f32).collect();
    let total: f32 = w.iter().sum();
    let w = Tensor::from_vec(w, y.len(), v.device())?;
    (v * w)?.sum_all()? / f64::from(total.max(f32::MIN_POSITIVE))
}

/// The TRADES loss of a batch whose first `adv.len()` rows were attacked:
/// `CE(clean, y) + β · KL(p_clean ‖ p_adv)` over the attacked rows; with class weights both
/// terms are means weighted by each row's class, so a rare class counts as it does in
/// clean training.
pub(super) fn trades_loss(
    model: &dyn Classifier,
    batch: &Labelled,
    adv: &Labelled,
    beta: f64,
    weights: Option<&[f64]>,
    mode: Mode,
) -> Result<Tensor> {
    let clean = model.forward(&model.encode(&batch.x.view()?)?, mode)?;
    let ce = match weights {
        None => cross_entropy(&clean, &batch.y)?,
        Some(w) => {
            let log_p = candle_nn::ops::log_softmax(&clean, D::Minus1)?;
            let y = Tensor::from_slice(&batch.y, batch.y.len(), clean.device())?.unsqueeze(1)?;
            let nll = log_p.gather(&y, 1)?.squeeze(1)?.neg()?;
            weighted_mean(&nll, &batch.y, w)?
        }
    };
    let adv_logits = model.forward(&model.encode(&adv.x.view()?)?, mode)?;
    let kl = kl_clean_adv(&clean.narrow(0, 0, adv.len())?, &adv_logits, weights.map(|w| (&adv.y[..], w)))?;
    Ok((ce + (kl * beta)?)?)
}

pub(super) fn step_trades(
    model: &dyn Classifier,
    opt: &mut AdamW,
    batch: &Labelled,
    adv: &Labelled,
    beta: f64,
    weights: Option<&[f64]>,
) -> Result<f32> {
    let loss = trades_loss(model, batch, adv, beta, weights, Mode::TRAIN)?;
    opt.backward_step(&loss)?;
    Ok(loss.to_scalar::<f32>()?)
}

/// One optimiser step through the model's hand-written gradients, when it has them and
/// the optimiser can take them: returns the loss, or `None` to leave the step to autograd.
pub(super) fn step_by_hand(
    model: &dyn Classifier,
    opt: &mut AdamW,
    grads: &mut [Vec<f32>],
    batch: &Labelled,
    adv: Option<&Labelled>,
    w: f64,
) -> Result<Option<f32>> {
    let parts = match adv {
        None => vec![(batch, 1.0)],
        Some(adv) => vec![(batch, 1.0 - w), (adv, w)],
    };
    step_parts_by_hand(model, opt, grads, &parts)
}

/// [`step_by_hand`] on the loss `Σ weight · mean CE(part)`.
pub(super) fn step_parts_by_hand(
    model: &dyn Classifier,
    opt: &mut AdamW,
    grads: &mut [Vec<f32>],
    parts: &[(&Labelled, f64)],
) -> Result<Option<f32>> {
    fn part(l: &Labelled, weight: f64) -> Option<TrainPart<'_>> {
        match &l.x {
            Examples::Dense { data, .. } => Some(TrainPart { x: data, labels: &l.y, weight: weight as f32 }),
            // Batches are selected, so never on disk; texts have no hand-written gradients.
            Examples::Text(_) | Examples::Stored(_) => None,
        }
    }
    if !opt.takes_slices() {
        return Ok(None);
    }
    let parts = parts.iter().map(|&(l, w)| part(l, w));
    let Some(parts) = parts.collect::<Option<Vec<_>>>() else { return Ok(None) };
    let Some(loss) = model.train_grads(&parts, grads) else { return Ok(None) };
    let loss = loss?;
    opt.step_slices(grads)?;
    Ok(Some(loss))
}
