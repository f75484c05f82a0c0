//! The host's side of the oracle: a plugin's `predict` and `loss_grad` calls land here,
//! run on the pipeline's model, and are counted per example.

use std::cell::RefCell;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use tempered_plugin::abi::{self, BatchView, Modality, OracleVTable, Status, StrRef};
use tempered_plugin::ledger::{Ledger, Refused};

use crate::Error;
use crate::data::ExamplesRef;
use crate::model::{Classifier, Mode, SentenceEncoder, input_loss_grad_autograd};

/// Oracle queries per example of one perturb call.
pub type QueryCounts = Vec<u64>;

pub(super) struct Oracle<'m> {
    model: &'m dyn Classifier,
    encoder: Option<&'m dyn SentenceEncoder>,
    ledger: Mutex<Ledger>,
}

thread_local! {
    /// The message of this thread's last failed oracle call: per thread, as the ABI promises,
    /// so a plugin calling from several threads reads its own error.
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Why a call was refused: a plain error, or an example out of queries (a typed status, so
/// the attack can go on with the examples that have some left).
enum Refusal {
    Error(Error),
    QueryBudget(String),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Error(e)
    }
}

impl From<candle_core::Error> for Refusal {
    fn from(e: candle_core::Error) -> Self {
        Refusal::Error(e.into())
    }
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

    pub fn vtable(&self) -> OracleVTable {
        OracleVTable {
            ctx: (self as *const Self).cast_mut().cast(),
            n_classes: self.model.n_classes(),
            predict,
            loss_grad,
            similarity,
            last_error,
            known_words,
        }
    }

    pub fn into_counts(self) -> QueryCounts {
        self.ledger.into_inner().expect("query counts").into_counts()
    }

    /// Counts one query per row against the example it names, with the ledger the plugin
    /// test harness uses too: a call past the budget is refused whole and counts nothing.
    fn count(&self, view: &BatchView) -> Result<(), Refusal> {
        let ids = if view.example_ids.is_null() || view.n == 0 {
            &[][..]
        } else {
            // SAFETY: a non-null `example_ids` of a valid view holds `n` ids.
            unsafe { std::slice::from_raw_parts(view.example_ids, view.n) }
        };
        self.ledger.lock().expect("query counts").charge(view.n, ids).map_err(|e| match e {
            Refused::Budget(m) => Refusal::QueryBudget(m),
            Refused::BadId(m) => Refusal::Error(Error::invalid(m)),
        })
    }
}

fn fail(msg: String, status: Status) -> Status {
    LAST_ERROR.with(|e| *e.borrow_mut() = msg);
    status
}

/// # Safety
/// `view` must be a valid [`BatchView`] for the duration of the call.
unsafe fn examples<'a>(view: &'a BatchView) -> crate::Result<ExamplesRef<'a>> {
    if view.modality == Modality::Text as u32 {
        if view.n > 0 && view.texts.is_null() {
            return Err(Error::invalid("text rows without texts"));
        }
        let refs = if view.n == 0 {
            &[][..]
        } else {
            // SAFETY: non-null (checked) `n` strings of a valid view.
            unsafe { std::slice::from_raw_parts(view.texts, view.n) }
        };
        let mut texts = Vec::with_capacity(view.n);
        for (i, r) in refs.iter().enumerate() {
            texts.push(
                // SAFETY: each string of a valid view is `len` live bytes.
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
            // SAFETY: non-null (checked) `n * width` values of a valid view.
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

/// The oracle behind a vtable's context.
///
/// # Safety
/// `ctx` must be the context of a live [`Oracle::vtable`].
unsafe fn oracle<'a>(ctx: *mut c_void) -> &'a Oracle<'a> {
    // SAFETY: the caller promises a live oracle; it is only read, behind its own locks.
    unsafe { &*ctx.cast::<Oracle<'_>>() }
}

/// Runs `f` on `oracle`, turning errors and panics into a status.
fn guarded(oracle: &Oracle<'_>, f: impl FnOnce(&Oracle<'_>) -> Result<(), Refusal>) -> Status {
    match catch_unwind(AssertUnwindSafe(|| f(oracle))) {
        Ok(Ok(())) => abi::STATUS_OK,
        Ok(Err(Refusal::Error(e))) => fail(e.to_string(), abi::STATUS_ERROR),
        Ok(Err(Refusal::QueryBudget(msg))) => fail(msg, abi::STATUS_QUERY_BUDGET),
        Err(_) => fail("the host panicked while answering".into(), abi::STATUS_ERROR),
    }
}

/// # Safety
/// The ABI's `predict`: `ctx` from [`Oracle::vtable`], `input` a valid batch or null, `out`
/// `out_len` writable values.
unsafe extern "C" fn predict(
    ctx: *mut c_void,
    input: *const BatchView,
    out: *mut f32,
    out_len: usize,
) -> Status {
    // SAFETY: the plugin passes back the context of the vtable it was given.
    guarded(unsafe { oracle(ctx) }, |o| {
        // SAFETY: null or a batch valid for the call, as the ABI promises.
        let view = unsafe { input.as_ref() }.ok_or_else(|| Error::invalid("null batch"))?;
        let want = view.n * o.model.n_classes();
        if out.is_null() || out_len != want {
            return Err(
                Error::invalid(format!("predict needs an output of {want} values, got {out_len}")).into()
            );
        }
        o.count(view)?;
        // SAFETY: as above.
        let x = unsafe { examples(view) }?;
        let probs = probabilities(o.model, &x)?;
        if out_len > 0 {
            // SAFETY: non-null (checked) with `out_len` writable values, as the ABI promises.
            unsafe { std::slice::from_raw_parts_mut(out, out_len) }.copy_from_slice(&probs);
        }
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

/// # Safety
/// The ABI's `loss_grad`: `ctx` from [`Oracle::vtable`], `input` a valid batch or null,
/// `loss` `n` and `grad` `grad_len` writable values.
unsafe extern "C" fn loss_grad(
    ctx: *mut c_void,
    input: *const BatchView,
    loss: *mut f32,
    grad: *mut f32,
    grad_len: usize,
) -> Status {
    // SAFETY: the plugin passes back the context of the vtable it was given.
    guarded(unsafe { oracle(ctx) }, |o| {
        // SAFETY: null or a batch valid for the call, as the ABI promises.
        let view = unsafe { input.as_ref() }.ok_or_else(|| Error::invalid("null batch"))?;
        if view.n > 0 && view.labels.is_null() {
            return Err(Error::invalid("loss_grad needs labels").into());
        }
        if view.modality == Modality::Text as u32 {
            // SAFETY: as above, and the buffers are the plugin's.
            return unsafe { text_saliency(o, view, loss, grad, grad_len) };
        }
        if !o.model.dense_input() {
            return Err(Error::invalid("this model offers no input gradient").into());
        }
        if grad_len != view.n * view.width || loss.is_null() || (grad_len > 0 && grad.is_null()) {
            return Err(Error::invalid(format!(
                "loss_grad needs a gradient buffer of {} values",
                view.n * view.width
            ))
            .into());
        }
        o.count(view)?;
        if view.n == 0 {
            return Ok(());
        }
        // SAFETY: as above.
        let x = unsafe { examples(view) }?;
        // SAFETY: non-null (checked) `n` labels of a valid view.
        let labels = unsafe { std::slice::from_raw_parts(view.labels, view.n) };
        let classes = o.model.n_classes() as u32;
        if let Some(l) = labels.iter().find(|&&l| l >= classes) {
            return Err(
                Error::invalid(format!("label {l} is not a class of this {classes}-class model")).into()
            );
        }
        // SAFETY: non-null (checked) `n` writable losses, as the ABI promises.
        let loss = unsafe { std::slice::from_raw_parts_mut(loss, view.n) };
        // SAFETY: non-null (checked: `grad_len = n * width > 0`) writable values.
        let grad = unsafe { std::slice::from_raw_parts_mut(grad, grad_len) };
        let ExamplesRef::Dense { data, .. } = &x else { unreachable!("dense view") };
        if let Some(done) = o.model.input_loss_grad(data, labels, loss, grad) {
            return Ok(done?);
        }
        let (l, g) = input_loss_grad_autograd(o.model, &x, labels)?;
        loss.copy_from_slice(&l);
        grad.copy_from_slice(&g);
        Ok(())
    })
}

/// Text: per-row loss (from `predict`) and the model's per-word saliency.
///
/// # Safety
/// `view` valid; `loss` `n` and `grad` `grad_len` writable values (or null where none).
unsafe fn text_saliency(
    o: &Oracle<'_>,
    view: &BatchView,
    loss: *mut f32,
    grad: *mut f32,
    grad_len: usize,
) -> Result<(), Refusal> {
    // SAFETY: the caller promises a valid view.
    let ExamplesRef::Text(texts) = (unsafe { examples(view) })? else { unreachable!("text view") };
    let width = texts.iter().map(|t| t.split_whitespace().count()).max().unwrap_or(0);
    if grad_len != view.n * width || (view.n > 0 && loss.is_null()) || (grad_len > 0 && grad.is_null()) {
        return Err(Error::invalid(format!(
            "loss_grad needs a saliency buffer of {} values",
            view.n * width
        ))
        .into());
    }
    o.count(view)?;
    if view.n == 0 {
        return Ok(());
    }
    // SAFETY: the caller's valid view has `n` labels (checked non-null by the caller).
    let labels = unsafe { std::slice::from_raw_parts(view.labels, view.n) };
    let classes = o.model.n_classes() as u32;
    if let Some(l) = labels.iter().find(|&&l| l >= classes) {
        return Err(Error::invalid(format!("label {l} is not a class of this {classes}-class model")).into());
    }
    let saliency = o.model.word_saliency(&texts, labels)?;
    if saliency.len() != grad_len {
        return Err(Error::invalid(format!(
            "the model gave {} saliencies, wanted {grad_len}",
            saliency.len()
        ))
        .into());
    }
    let probs = probabilities(o.model, &ExamplesRef::Text(texts))?;
    let k = o.model.n_classes();
    // SAFETY: non-null (checked) `n` writable losses.
    let out = unsafe { std::slice::from_raw_parts_mut(loss, view.n) };
    for (i, l) in out.iter_mut().enumerate() {
        *l = -probs[i * k + labels[i] as usize].max(f32::MIN_POSITIVE).ln();
    }
    if grad_len > 0 {
        // SAFETY: non-null (checked) `grad_len` writable values.
        unsafe { std::slice::from_raw_parts_mut(grad, grad_len) }.copy_from_slice(&saliency);
    }
    Ok(())
}

/// # Safety
/// The ABI's `similarity`: `ctx` from [`Oracle::vtable`], `a` and `b` `n` valid strings each,
/// `out` `n` writable values.
unsafe extern "C" fn similarity(
    ctx: *mut c_void,
    a: *const StrRef,
    b: *const StrRef,
    n: usize,
    out: *mut f32,
) -> Status {
    // SAFETY: the plugin passes back the context of the vtable it was given.
    guarded(unsafe { oracle(ctx) }, |o| {
        let encoder = o.encoder.ok_or_else(|| {
            Error::invalid("this pipeline names no sentence encoder ([model] encoder = \"...\")")
        })?;
        if n == 0 {
            return Ok(());
        }
        if a.is_null() || b.is_null() || out.is_null() {
            return Err(Error::invalid("similarity called with a null pointer").into());
        }
        let read = |p: *const StrRef| -> crate::Result<Vec<&str>> {
            // SAFETY: non-null (checked), `n` strings as the ABI promises.
            unsafe { std::slice::from_raw_parts(p, n) }
                .iter()
                .map(|r| {
                    // SAFETY: each string is `len` live bytes for the call.
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
            ))
            .into());
        }
        // SAFETY: non-null (checked) `n` writable values.
        unsafe { std::slice::from_raw_parts_mut(out, n) }.copy_from_slice(&sims);
        Ok(())
    })
}

/// # Safety
/// The ABI's `known_words`: `ctx` from [`Oracle::vtable`], `words` `n` valid strings,
/// `out` `n` writable bytes.
unsafe extern "C" fn known_words(ctx: *mut c_void, words: *const StrRef, n: usize, out: *mut u8) -> Status {
    // SAFETY: the plugin passes back the context of the vtable it was given.
    guarded(unsafe { oracle(ctx) }, |o| {
        if n == 0 {
            return Ok(());
        }
        if words.is_null() || out.is_null() {
            return Err(Error::invalid("known_words called with a null pointer").into());
        }
        // SAFETY: non-null (checked), `n` strings as the ABI promises.
        let refs = unsafe { std::slice::from_raw_parts(words, n) };
        let words = refs
            .iter()
            // SAFETY: each string is `len` live bytes for the call.
            .map(|r| std::str::from_utf8(unsafe { r.as_bytes() }).map_err(|e| Error::external("a word", e)))
            .collect::<crate::Result<Vec<&str>>>()?;
        let known = o.model.known_words(&words)?;
        if known.len() != n {
            return Err(Error::invalid(format!("the model answered for {} of {n} words", known.len())).into());
        }
        // SAFETY: non-null (checked) `n` writable bytes.
        let out = unsafe { std::slice::from_raw_parts_mut(out, n) };
        for (o, k) in out.iter_mut().zip(known) {
            *o = u8::from(k);
        }
        Ok(())
    })
}

/// # Safety
/// None beyond the ABI's: the context is not touched (the message is per thread).
unsafe extern "C" fn last_error(_ctx: *mut c_void) -> StrRef {
    // The String lives in this thread's slot and is replaced only by the next failing
    // oracle call on this thread, after the plugin has copied it.
    LAST_ERROR.with(|e| {
        let e = e.borrow();
        StrRef { ptr: e.as_ptr(), len: e.len() }
    })
}
