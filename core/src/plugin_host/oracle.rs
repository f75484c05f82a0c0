//! The host's side of the oracle: a plugin's `predict` and `loss_grad` calls land here,
//! run on the pipeline's model, and are counted per example. The C boundary itself
//! (pointers, UTF-8, panics, `last_error`) is `tempered_plugin::host`'s, shared with the
//! plugin test harness; what is checked here depends on the model.

use std::sync::Mutex;

use tempered_plugin::Input;
use tempered_plugin::abi::OracleVTable;
use tempered_plugin::host::{self, Answer, OracleHost, OutBuf, Query, Refusal, copy_answer};
use tempered_plugin::ledger::Ledger;
use tempered_plugin::words::word_count;

use crate::data::ExamplesRef;
use crate::model::{Classifier, Mode, SentenceEncoder, input_loss_grad_autograd};

/// Oracle queries per example of one perturb call.
pub type QueryCounts = Vec<u64>;

pub(super) struct Oracle<'m> {
    model: &'m dyn Classifier,
    encoder: Option<&'m dyn SentenceEncoder>,
    ledger: Mutex<Ledger>,
}

impl<'m> Oracle<'m> {
    pub fn new(
        model: &'m dyn Classifier,
        encoder: Option<&'m dyn SentenceEncoder>,
        n: usize,
        budget: Option<u64>,
    ) -> Self {
        Self { model, encoder, ledger: Mutex::new(Ledger::new(n, budget)) }
    }

    /// The table a plugin calls; valid while `self` lives.
    pub fn vtable(&self) -> OracleVTable {
        host::vtable(self)
    }

    pub fn into_counts(self) -> QueryCounts {
        self.ledger.into_inner().expect("query counts").into_counts()
    }

    /// Counts one query per row against the example it names, with the ledger the plugin
    /// test harness uses too: a call past the budget is refused whole and counts nothing.
    fn charge(&self, q: &Query<'_>) -> Answer {
        Ok(self.ledger.lock().expect("query counts").charge(q.n, q.example_ids)?)
    }

    /// Refuses a label this model has no class for.
    fn check_labels(&self, labels: &[u32]) -> Answer {
        let classes = self.model.n_classes() as u32;
        match labels.iter().find(|&&l| l >= classes) {
            Some(l) => Err(Refusal::error(format!("label {l} is not a class of this {classes}-class model"))),
            None => Ok(()),
        }
    }

    /// Text: per-row loss (from `predict`) and the model's per-word saliency.
    fn text_saliency(&self, q: &Query<'_>, loss: OutBuf<'_, f32>, grad: OutBuf<'_, f32>) -> Answer {
        let ExamplesRef::Text(texts) = examples(q)? else { unreachable!("text query") };
        let width = texts.iter().map(|t| word_count(t)).max().unwrap_or(0);
        let want = q.n * width;
        let (Some(loss), Some(grad)) = (loss.exactly(q.n), grad.exactly(want)) else {
            return Err(Refusal::error(format!("loss_grad needs a saliency buffer of {want} values")));
        };
        self.charge(q)?;
        if q.n == 0 {
            return Ok(());
        }
        let labels = q.labels;
        self.check_labels(labels)?;
        let saliency = self.model.word_saliency(&texts, labels)?;
        // Checked before any loss is written: a refused call writes nothing.
        if saliency.len() != grad.len() {
            return Err(Refusal::error(format!(
                "the model gave {} saliencies, wanted {}",
                saliency.len(),
                grad.len()
            )));
        }
        let probs = probabilities(self.model, &ExamplesRef::Text(texts))?;
        let k = self.model.n_classes();
        for (i, l) in loss.iter_mut().enumerate() {
            *l = -probs[i * k + labels[i] as usize].max(f32::MIN_POSITIVE).ln();
        }
        grad.copy_from_slice(&saliency);
        Ok(())
    }
}

/// The query's rows as the model reads them, refusing a non-finite dense value.
fn examples<'a>(q: &Query<'a>) -> Result<ExamplesRef<'a>, Refusal> {
    match q.input()? {
        Input::Text(texts) => Ok(ExamplesRef::Text(texts.to_vec())),
        Input::Dense { data, width } => {
            // Every PGD step passes through here: a whole-chunk test vectorises, where
            // `position` stops to branch on every value.
            let bad = |c: &[f32]| c.iter().fold(false, |acc, v| acc | !v.is_finite());
            if data.chunks(256).any(bad)
                && let Some(i) = data.iter().position(|v| !v.is_finite())
            {
                return Err(Refusal::error(format!("row {} holds a non-finite value", i / width)));
            }
            Ok(ExamplesRef::Dense { data, width })
        }
    }
}

impl OracleHost for Oracle<'_> {
    fn n_classes(&self) -> usize {
        self.model.n_classes()
    }

    fn predict(&self, q: &Query<'_>, out: &mut [f32]) -> Answer {
        self.charge(q)?;
        let x = examples(q)?;
        let probs = probabilities(self.model, &x)?;
        out.copy_from_slice(&probs);
        Ok(())
    }

    fn loss_grad(&self, q: &Query<'_>, loss: OutBuf<'_, f32>, grad: OutBuf<'_, f32>) -> Answer {
        if q.is_text() {
            return self.text_saliency(q, loss, grad);
        }
        if !self.model.dense_input() {
            return Err(Refusal::error("this model offers no input gradient"));
        }
        let want = q.n.saturating_mul(q.width);
        // A null loss is refused even for no rows, as it always was for dense batches.
        let loss_null = loss.is_null();
        let (false, Some(loss), Some(grad)) = (loss_null, loss.exactly(q.n), grad.exactly(want)) else {
            return Err(Refusal::error(format!("loss_grad needs a gradient buffer of {want} values")));
        };
        self.charge(q)?;
        if q.n == 0 {
            return Ok(());
        }
        let x = examples(q)?;
        self.check_labels(q.labels)?;
        let ExamplesRef::Dense { data, .. } = &x else { unreachable!("dense query") };
        if let Some(done) = self.model.input_loss_grad(data, q.labels, loss, grad) {
            return Ok(done?);
        }
        let (l, g) = input_loss_grad_autograd(self.model, &x, q.labels)?;
        loss.copy_from_slice(&l);
        grad.copy_from_slice(&g);
        Ok(())
    }

    fn similarity(&self, a: &[&str], b: &[&str], out: &mut [f32]) -> Answer {
        let encoder = self.encoder.ok_or_else(|| {
            Refusal::error("this pipeline names no sentence encoder ([model] encoder = \"...\")")
        })?;
        if a.is_empty() {
            return Ok(());
        }
        let sims = encoder.similarity(a, b)?;
        copy_answer(out, &sims, |got, n| format!("the encoder gave {got} similarities for {n} pairs"))
    }

    fn known_words(&self, words: &[&str], out: &mut [u8]) -> Answer {
        if words.is_empty() {
            return Ok(());
        }
        let known: Vec<u8> = self.model.known_words(words)?.into_iter().map(u8::from).collect();
        copy_answer(out, &known, |got, n| format!("the model answered for {got} of {n} words"))
    }
}

/// Softmax probabilities, row-major.
pub fn probabilities(model: &dyn Classifier, x: &ExamplesRef<'_>) -> crate::Result<Vec<f32>> {
    if x.is_empty() {
        return Ok(Vec::new());
    }
    let t = model.encode(x)?;
    let logits = model.forward(&t, Mode::EVAL)?;
    let p = candle_nn::ops::softmax_last_dim(&logits)?;
    Ok(p.flatten_all()?.to_vec1::<f32>()?)
}
