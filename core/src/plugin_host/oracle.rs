//! The host's side of the oracle: a plugin's `predict` and `loss_grad` calls land here,
//! run on the pipeline's model, and are counted per example.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use tempered_plugin::abi::{self, BatchView, Modality, OracleVTable, Status, StrRef};

use crate::Error;
use crate::data::ExamplesRef;
use crate::model::{Classifier, Mode, SentenceEncoder, input_loss_grad_autograd};

/// Oracle queries per example of one perturb call.
pub type QueryCounts = Vec<u64>;

pub(super) struct Oracle<'m> {
    model: &'m dyn Classifier,
    encoder: Option<&'m dyn SentenceEncoder>,
    counts: Mutex<QueryCounts>,
    budget: Option<u64>,
    error: Mutex<String>,
}

impl<'m> Oracle<'m> {
    pub fn new(
        model: &'m dyn Classifier,
        encoder: Option<&'m dyn SentenceEncoder>,
        n: usize,
        budget: Option<u64>,
    ) -> Self {
        Self { model, encoder, counts: Mutex::new(vec![0; n]), budget, error: Mutex::new(String::new()) }
    }

    pub fn vtable(&self) -> OracleVTable {
        OracleVTable {
            ctx: (self as *const Self).cast_mut().cast(),
            n_classes: self.model.n_classes(),
            predict,
            loss_grad,
            similarity,
            last_error,
        }
    }

    pub fn into_counts(self) -> QueryCounts {
        self.counts.into_inner().expect("query counts")
    }

    /// Counts one query per row against the example it names, refusing rows past the budget.
    fn count(&self, view: &BatchView) -> crate::Result<()> {
        let mut counts = self.counts.lock().expect("query counts");
        let n_examples = counts.len();
        for i in 0..view.n {
            let id =
                if view.example_ids.is_null() { i } else { unsafe { *view.example_ids.add(i) as usize } };
            let slot = counts.get_mut(id).ok_or_else(|| {
                Error::invalid(format!("row {i} names example {id}, but the batch has {n_examples}"))
            })?;
            *slot += 1;
            if let Some(b) = self.budget
                && *slot > b
            {
                return Err(Error::invalid(format!("example {id} has used its query budget of {b}")));
            }
        }
        Ok(())
    }

    fn fail(&self, msg: String) -> Status {
        *self.error.lock().expect("oracle error") = msg;
        abi::STATUS_ERROR
    }
}

/// # Safety
/// `view` must be a valid [`BatchView`] for the duration of the call.
unsafe fn examples<'a>(view: &'a BatchView) -> crate::Result<ExamplesRef<'a>> {
    if view.modality == Modality::Text as u32 {
        if view.n > 0 && view.texts.is_null() {
            return Err(Error::invalid("text rows without texts"));
        }
        let refs =
            if view.n == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(view.texts, view.n) } };
        let mut texts = Vec::with_capacity(view.n);
        for (i, r) in refs.iter().enumerate() {
            texts.push(
                std::str::from_utf8(unsafe { r.as_bytes() })
                    .map_err(|e| Error::external(format!("row {i}"), e))?,
            );
        }
        Ok(ExamplesRef::Text(texts))
    } else {
        if view.n > 0 && (view.data.is_null() || view.width == 0) {
            return Err(Error::invalid("dense rows without data"));
        }
        let data = if view.n == 0 {
            &[][..]
        } else {
            unsafe { std::slice::from_raw_parts(view.data, view.n * view.width) }
        };
        // Every PGD step passes through here: a whole-chunk test vectorises, where
        // `position` stops to branch on every value.
        let bad = |c: &[f32]| c.iter().fold(false, |acc, v| acc | !v.is_finite());
        if data.chunks(256).any(bad)
            && let Some(i) = data.iter().position(|v| !v.is_finite())
        {
            return Err(Error::invalid(format!("row {} holds a non-finite value", i / view.width)));
        }
        Ok(ExamplesRef::Dense { data, width: view.width })
    }
}

/// Runs `f` on the oracle behind `ctx`, turning errors and panics into a status.
fn guarded(ctx: *mut c_void, f: impl FnOnce(&Oracle<'_>) -> crate::Result<()>) -> Status {
    let oracle = unsafe { &*ctx.cast::<Oracle<'_>>() };
    match catch_unwind(AssertUnwindSafe(|| f(oracle))) {
        Ok(Ok(())) => abi::STATUS_OK,
        Ok(Err(e)) => oracle.fail(e.to_string()),
        Err(_) => oracle.fail("the host panicked while answering".into()),
    }
}

extern "C" fn predict(ctx: *mut c_void, input: *const BatchView, out: *mut f32, out_len: usize) -> Status {
    guarded(ctx, |o| {
        let view = unsafe { input.as_ref() }.ok_or_else(|| Error::invalid("null batch"))?;
        let want = view.n * o.model.n_classes();
        if out.is_null() || out_len != want {
            return Err(Error::invalid(format!("predict needs an output of {want} values, got {out_len}")));
        }
        o.count(view)?;
        let x = unsafe { examples(view) }?;
        let probs = probabilities(o.model, &x)?;
        unsafe { std::slice::from_raw_parts_mut(out, out_len) }.copy_from_slice(&probs);
        Ok(())
    })
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

extern "C" fn loss_grad(
    ctx: *mut c_void,
    input: *const BatchView,
    loss: *mut f32,
    grad: *mut f32,
    grad_len: usize,
) -> Status {
    guarded(ctx, |o| {
        let view = unsafe { input.as_ref() }.ok_or_else(|| Error::invalid("null batch"))?;
        if view.n > 0 && view.labels.is_null() {
            return Err(Error::invalid("loss_grad needs labels"));
        }
        if view.modality == Modality::Text as u32 {
            return text_saliency(o, view, loss, grad, grad_len);
        }
        if !o.model.dense_input() {
            return Err(Error::invalid("this model offers no input gradient"));
        }
        if grad_len != view.n * view.width || loss.is_null() || (grad_len > 0 && grad.is_null()) {
            return Err(Error::invalid(format!(
                "loss_grad needs a gradient buffer of {} values",
                view.n * view.width
            )));
        }
        o.count(view)?;
        if view.n == 0 {
            return Ok(());
        }
        let x = unsafe { examples(view) }?;
        let labels = unsafe { std::slice::from_raw_parts(view.labels, view.n) };
        let classes = o.model.n_classes() as u32;
        if let Some(l) = labels.iter().find(|&&l| l >= classes) {
            return Err(Error::invalid(format!("label {l} is not a class of this {classes}-class model")));
        }
        let loss = unsafe { std::slice::from_raw_parts_mut(loss, view.n) };
        let grad = unsafe { std::slice::from_raw_parts_mut(grad, grad_len) };
        let ExamplesRef::Dense { data, .. } = &x else { unreachable!("dense view") };
        if let Some(done) = o.model.input_loss_grad(data, labels, loss, grad) {
            return done;
        }
        let (l, g) = input_loss_grad_autograd(o.model, &x, labels)?;
        loss.copy_from_slice(&l);
        grad.copy_from_slice(&g);
        Ok(())
    })
}

/// Text: per-row loss (from `predict`) and the model's per-word saliency.
fn text_saliency(
    o: &Oracle<'_>,
    view: &BatchView,
    loss: *mut f32,
    grad: *mut f32,
    grad_len: usize,
) -> crate::Result<()> {
    let ExamplesRef::Text(texts) = (unsafe { examples(view) })? else { unreachable!("text view") };
    let width = texts.iter().map(|t| t.split_whitespace().count()).max().unwrap_or(0);
    if grad_len != view.n * width || (view.n > 0 && loss.is_null()) {
        return Err(Error::invalid(format!(
            "loss_grad needs a saliency buffer of {} values",
            view.n * width
        )));
    }
    o.count(view)?;
    if view.n == 0 {
        return Ok(());
    }
    let labels = unsafe { std::slice::from_raw_parts(view.labels, view.n) };
    let saliency = o.model.word_saliency(&texts, labels)?;
    if saliency.len() != grad_len {
        return Err(Error::invalid(format!(
            "the model gave {} saliencies, wanted {grad_len}",
            saliency.len()
        )));
    }
    let probs = probabilities(o.model, &ExamplesRef::Text(texts))?;
    let k = o.model.n_classes();
    let out = unsafe { std::slice::from_raw_parts_mut(loss, view.n) };
    for (i, l) in out.iter_mut().enumerate() {
        *l = -probs[i * k + labels[i] as usize].max(f32::MIN_POSITIVE).ln();
    }
    if grad_len > 0 {
        unsafe { std::slice::from_raw_parts_mut(grad, grad_len) }.copy_from_slice(&saliency);
    }
    Ok(())
}

extern "C" fn similarity(
    ctx: *mut c_void,
    a: *const StrRef,
    b: *const StrRef,
    n: usize,
    out: *mut f32,
) -> Status {
    guarded(ctx, |o| {
        let encoder = o.encoder.ok_or_else(|| {
            Error::invalid("this pipeline names no sentence encoder ([model] encoder = \"...\")")
        })?;
        if n == 0 {
            return Ok(());
        }
        if a.is_null() || b.is_null() || out.is_null() {
            return Err(Error::invalid("similarity called with a null pointer"));
        }
        let read = |p: *const StrRef| -> crate::Result<Vec<&str>> {
            unsafe { std::slice::from_raw_parts(p, n) }
                .iter()
                .map(|r| {
                    std::str::from_utf8(unsafe { r.as_bytes() }).map_err(|e| Error::external("a sentence", e))
                })
                .collect()
        };
        let (a, b) = (read(a)?, read(b)?);
        let sims = encoder.similarity(&a, &b)?;
        if sims.len() != n {
            return Err(Error::invalid(format!(
                "the encoder gave {} similarities for {n} pairs",
                sims.len()
            )));
        }
        unsafe { std::slice::from_raw_parts_mut(out, n) }.copy_from_slice(&sims);
        Ok(())
    })
}

extern "C" fn last_error(ctx: *mut c_void) -> StrRef {
    let oracle = unsafe { &*ctx.cast::<Oracle<'_>>() };
    match oracle.error.lock() {
        // The String is only replaced by the next failing call, after the plugin has read it.
        Ok(e) => StrRef { ptr: e.as_ptr(), len: e.len() },
        Err(_) => StrRef::from_static("oracle error unavailable"),
    }
}
