//! For hosts: the engine and the test harness. The C side of the oracle, written once.
//!
//! A host implements [`OracleHost`] over safe, decoded arguments, and [`vtable`] gives the
//! [`OracleVTable`] a plugin calls. The `extern "C"` functions behind it do everything
//! unsafe about the boundary, so no host repeats it: null and length checks, slices from
//! raw parts, UTF-8 decoding, `catch_unwind` (a panicking host answers with an error; it
//! never unwinds into the plugin), and the per-thread message `last_error` reads back.
//!
//! What depends on the model stays with the host: the sizes of buffers whose width only
//! the model knows (a text loss's saliencies), which inputs it accepts, and when a call is
//! charged against the query budget.

use std::cell::RefCell;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::abi::{self, BatchView, Modality, OracleVTable, Status, StrRef};
use crate::ledger::Refused;
use crate::safe::{Input, slice};

/// Why a host did not answer a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// [`STATUS_ERROR`](abi::STATUS_ERROR), with the message `last_error` gives.
    Error(String),
    /// [`STATUS_QUERY_BUDGET`](abi::STATUS_QUERY_BUDGET): an example is out of queries, and
    /// nothing of the call was counted, so the attack can go on with the others.
    QueryBudget(String),
}

impl Refusal {
    pub fn error(msg: impl Into<String>) -> Self {
        Refusal::Error(msg.into())
    }

    pub fn status(&self) -> Status {
        match self {
            Refusal::Error(_) => abi::STATUS_ERROR,
            Refusal::QueryBudget(_) => abi::STATUS_QUERY_BUDGET,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Refusal::Error(m) | Refusal::QueryBudget(m) => m,
        }
    }
}

/// Any error is a plain refusal with its message, so a host can use `?` on its own
/// errors. (`Refusal` itself is no `std::error::Error`, which keeps this impl coherent.)
impl<E: std::error::Error> From<E> for Refusal {
    fn from(e: E) -> Self {
        Refusal::Error(e.to_string())
    }
}

/// The ledger's refusals: a spent budget keeps its own status, a bad example id is an error.
impl From<Refused> for Refusal {
    fn from(e: Refused) -> Self {
        match e {
            Refused::Budget(m) => Refusal::QueryBudget(m),
            Refused::BadId(m) => Refusal::Error(m),
        }
    }
}

/// What a host's answer to one call comes to: done, or refused.
pub type Answer = Result<(), Refusal>;

/// Copies a model's `values` to `out`, refusing (with `wrong(got, wanted)` as the message)
/// an answer of another length, which would otherwise be a panic or a short write.
pub fn copy_answer<T: Copy>(
    out: &mut [T],
    values: &[T],
    wrong: impl FnOnce(usize, usize) -> String,
) -> Answer {
    if values.len() != out.len() {
        return Err(Refusal::error(wrong(values.len(), out.len())));
    }
    out.copy_from_slice(values);
    Ok(())
}

/// The batch of a `predict` or `loss_grad` call, read from the plugin's [`BatchView`].
#[derive(Debug)]
pub struct Query<'a> {
    /// Rows.
    pub n: usize,
    /// Values per dense row, as the plugin sent it (0 for text).
    pub width: usize,
    /// `n` labels, or none when the plugin sent none (`loss_grad` always has them).
    pub labels: &'a [u32],
    /// The example each row stands for; empty when row `i` is example `i`.
    pub example_ids: &'a [u32],
    text: bool,
    input: Result<Input<'a>, String>,
}

impl<'a> Query<'a> {
    /// Whether the rows are texts; every other modality is read as dense rows.
    pub fn is_text(&self) -> bool {
        self.text
    }

    /// The rows, or a plain refusal when they cannot be read (a null pointer, text that is
    /// not UTF-8, a size past memory). The error waits here rather than refusing the call
    /// outright so a host keeps its own order of checks, charging included.
    pub fn input(&self) -> Result<Input<'a>, Refusal> {
        self.input.clone().map_err(Refusal::Error)
    }
}

/// A buffer the plugin passed for the host to fill: `len` values at a pointer that may be
/// null. Its values are reachable only at the length the host means to write.
#[derive(Debug)]
pub struct OutBuf<'a, T> {
    ptr: *mut T,
    len: usize,
    _call: std::marker::PhantomData<&'a mut [T]>,
}

impl<'a, T> OutBuf<'a, T> {
    /// # Safety
    /// A non-null `ptr` must point to `len` writable values, alive and not otherwise
    /// accessed for `'a`.
    unsafe fn new(ptr: *mut T, len: usize) -> Self {
        Self { ptr, len, _call: std::marker::PhantomData }
    }

    /// The length the plugin declared.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_null(&self) -> bool {
        self.ptr.is_null()
    }

    /// The values, when the plugin declared exactly `want` of them (a null pointer passes
    /// only for none); `None` otherwise.
    pub fn exactly(self, want: usize) -> Option<&'a mut [T]> {
        if self.len != want {
            None
        } else if want == 0 {
            Some(&mut [])
        } else if self.ptr.is_null() {
            None
        } else {
            // SAFETY: non-null with `len` writable values for `'a`, as `new` requires; `self`
            // is consumed, so this is the only slice over them.
            Some(unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) })
        }
    }
}

/// The host's side of the oracle, over safe arguments. `Sync`: a plugin may call from
/// several threads at once during one `perturb`.
pub trait OracleHost: Sync {
    fn n_classes(&self) -> usize;

    /// Writes `q.n * n_classes` probabilities to `out`, which has exactly that many.
    fn predict(&self, q: &Query<'_>, out: &mut [f32]) -> Answer;

    /// Per-row losses against `q.labels` (`loss` is declared `q.n` long) and the input
    /// gradient or word saliency (`grad`, as long as the plugin declared): see
    /// [`OracleVTable::loss_grad`]. The host checks both against the sizes it will write.
    fn loss_grad(&self, q: &Query<'_>, loss: OutBuf<'_, f32>, grad: OutBuf<'_, f32>) -> Answer;

    /// Sentence similarity of `a[i]` and `b[i]` into `out[i]`, all of one length.
    fn similarity(&self, _a: &[&str], _b: &[&str], _out: &mut [f32]) -> Answer {
        Err(Refusal::error("no sentence encoder"))
    }

    /// For each word, 1 when the model reads it as itself, else 0; `out` as long as `words`.
    fn known_words(&self, _words: &[&str], _out: &mut [u8]) -> Answer {
        Err(Refusal::error("this model has no word vocabulary"))
    }
}

/// The table a plugin calls to reach `host`. Its `ctx` points at `host`: the table may be
/// called only while `host` lives (the host keeps both for the `perturb` it passes it to).
pub fn vtable<H: OracleHost>(host: &H) -> OracleVTable {
    OracleVTable {
        ctx: (host as *const H).cast_mut().cast(),
        n_classes: host.n_classes(),
        predict: predict::<H>,
        loss_grad: loss_grad::<H>,
        similarity: similarity::<H>,
        last_error,
        known_words: known_words::<H>,
    }
}

thread_local! {
    /// This thread's last failed oracle call: per thread, as the ABI promises, so a plugin
    /// calling from several threads reads its own error.
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs `f` on the host behind `ctx`, turning a refusal or a panic into a status.
///
/// # Safety
/// `ctx` must be the context of a [`vtable`] whose host is alive.
unsafe fn guarded<H: OracleHost>(ctx: *mut c_void, f: impl FnOnce(&H) -> Answer) -> Status {
    // SAFETY: the caller promises a live `H`; it is only shared (`H: Sync`).
    let host = unsafe { &*ctx.cast_const().cast::<H>() };
    let refusal = match catch_unwind(AssertUnwindSafe(|| f(host))) {
        Ok(Ok(())) => return abi::STATUS_OK,
        Ok(Err(r)) => r,
        Err(_) => Refusal::error("the host panicked while answering"),
    };
    let status = refusal.status();
    LAST_ERROR.with(|e| {
        *e.borrow_mut() = match refusal {
            Refusal::Error(m) | Refusal::QueryBudget(m) => m,
        }
    });
    status
}

/// [`guarded`], with the call's batch read into a [`Query`]: the part of `predict` and
/// `loss_grad` in common.
///
/// # Safety
/// As [`guarded`]; `input` must be null or a batch valid for the call, as documented on
/// [`BatchView`].
unsafe fn guarded_query<H: OracleHost>(
    ctx: *mut c_void,
    input: *const BatchView,
    f: impl FnOnce(&H, &Query<'_>) -> Answer,
) -> Status {
    let answer = |host: &H| {
        // SAFETY: the caller's promise for `input`.
        unsafe { with_query(input, |q| f(host, q)) }
    };
    // SAFETY: the caller's promise for `ctx`.
    unsafe { guarded(ctx, answer) }
}

/// As [`slice`], writable.
///
/// # Safety
/// A non-null `ptr` must point to `len` writable values for `'a`, not otherwise accessed.
unsafe fn slice_mut<'a, T>(ptr: *mut T, len: usize) -> &'a mut [T] {
    if ptr.is_null() || len == 0 {
        &mut []
    } else {
        // SAFETY: non-null, and the caller promises `len` writable values of its own.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }
}

/// `n` strings at `refs`, decoded; `what(i)` names string `i` in the error for one that is
/// not UTF-8.
///
/// # Safety
/// A non-null `refs` must point to `n` strings, each `len` live bytes, for `'a`.
unsafe fn strs<'a>(
    refs: *const StrRef,
    n: usize,
    what: impl Fn(usize) -> String,
) -> Result<Vec<&'a str>, String> {
    // SAFETY: the caller's promise.
    let refs = unsafe { slice(refs, n) };
    let mut out = Vec::with_capacity(refs.len());
    for (i, r) in refs.iter().enumerate() {
        // SAFETY: each string is `len` live bytes for `'a`, as the caller promises.
        let bytes = unsafe { r.as_bytes() };
        out.push(std::str::from_utf8(bytes).map_err(|e| format!("{}: {e}", what(i)))?);
    }
    Ok(out)
}

/// Reads `input` into a [`Query`] for `f`.
///
/// # Safety
/// `input` must be null or a batch valid for the call, as documented on [`BatchView`].
unsafe fn with_query(input: *const BatchView, f: impl FnOnce(&Query<'_>) -> Answer) -> Answer {
    // SAFETY: null or a batch valid for the call, as the caller promises.
    let view = unsafe { input.as_ref() }.ok_or_else(|| Refusal::error("null batch"))?;
    let (n, width) = (view.n, view.width);
    let text = view.modality == Modality::Text as u32;
    // Declared here so the query can borrow the decoded texts.
    let texts: Result<Vec<&str>, String>;
    let input = if text {
        texts = if n > 0 && view.texts.is_null() {
            Err("text rows without texts".into())
        } else {
            // SAFETY: a non-null `texts` of a valid view holds `n` strings of live bytes.
            unsafe { strs(view.texts, n, |i| format!("row {i}")) }
        };
        texts.as_deref().map(Input::Text).map_err(Clone::clone)
    } else if n > 0 && (view.data.is_null() || width == 0) {
        Err("dense rows without data".into())
    } else {
        match n.checked_mul(width) {
            // SAFETY: a non-null `data` of a valid view holds `n * width` values.
            Some(len) => Ok(Input::Dense { data: unsafe { slice(view.data, len) }, width }),
            None => Err(format!("{n} rows of {width} values are more than memory holds")),
        }
    };
    let q = Query {
        n,
        width,
        // SAFETY: non-null `labels` and `example_ids` of a valid view hold `n` values each.
        labels: unsafe { slice(view.labels, n) },
        // SAFETY: as above.
        example_ids: unsafe { slice(view.example_ids, n) },
        text,
        input,
    };
    f(&q)
}

/// # Safety
/// The ABI's `predict`: `ctx` from [`vtable`] with its host alive, `input` null or a valid
/// batch, `out` null or `out_len` writable values.
unsafe extern "C" fn predict<H: OracleHost>(
    ctx: *mut c_void,
    input: *const BatchView,
    out: *mut f32,
    out_len: usize,
) -> Status {
    let answer = |host: &H, q: &Query<'_>| {
        let want = q.n.saturating_mul(host.n_classes());
        if out.is_null() || out_len != want {
            return Err(Refusal::error(format!("predict needs an output of {want} values, got {out_len}")));
        }
        // SAFETY: non-null (checked) with `out_len` writable values, as the ABI promises.
        host.predict(q, unsafe { slice_mut(out, out_len) })
    };
    // SAFETY: the plugin passes back the context of the table it was given, and a batch
    // valid for the call.
    unsafe { guarded_query(ctx, input, answer) }
}

/// # Safety
/// The ABI's `loss_grad`: `ctx` from [`vtable`] with its host alive, `input` null or a
/// valid batch, `loss` null or `n` and `grad` null or `grad_len` writable values.
unsafe extern "C" fn loss_grad<H: OracleHost>(
    ctx: *mut c_void,
    input: *const BatchView,
    loss: *mut f32,
    grad: *mut f32,
    grad_len: usize,
) -> Status {
    let answer = |host: &H, q: &Query<'_>| {
        if q.n > 0 && q.labels.is_empty() {
            return Err(Refusal::error("loss_grad needs labels"));
        }
        // SAFETY: as the ABI promises, `loss` and `grad` are null or distinct buffers of `n`
        // and `grad_len` writable values.
        let (loss, grad) = unsafe { (OutBuf::new(loss, q.n), OutBuf::new(grad, grad_len)) };
        host.loss_grad(q, loss, grad)
    };
    // SAFETY: the plugin passes back the context of the table it was given, and a batch
    // valid for the call.
    unsafe { guarded_query(ctx, input, answer) }
}

/// # Safety
/// The ABI's `similarity`: `ctx` from [`vtable`] with its host alive; `a` and `b` null or
/// `n` valid strings each, `out` null or `n` writable values.
unsafe extern "C" fn similarity<H: OracleHost>(
    ctx: *mut c_void,
    a: *const StrRef,
    b: *const StrRef,
    n: usize,
    out: *mut f32,
) -> Status {
    let answer = |host: &H| {
        if n > 0 && (a.is_null() || b.is_null() || out.is_null()) {
            return Err(Refusal::error("similarity called with a null pointer"));
        }
        // SAFETY: non-null (checked) `n` valid strings each, as the ABI promises.
        let (a, b) = unsafe { (strs(a, n, |_| "a sentence".into()), strs(b, n, |_| "a sentence".into())) };
        let (a, b) = (a.map_err(Refusal::Error)?, b.map_err(Refusal::Error)?);
        // SAFETY: non-null (checked) `n` writable values, as the ABI promises.
        host.similarity(&a, &b, unsafe { slice_mut(out, n) })
    };
    // SAFETY: the plugin passes back the context of the table it was given.
    unsafe { guarded(ctx, answer) }
}

/// # Safety
/// The ABI's `known_words`: `ctx` from [`vtable`] with its host alive; `words` null or `n`
/// valid strings, `out` null or `n` writable bytes.
unsafe extern "C" fn known_words<H: OracleHost>(
    ctx: *mut c_void,
    words: *const StrRef,
    n: usize,
    out: *mut u8,
) -> Status {
    let answer = |host: &H| {
        if n > 0 && (words.is_null() || out.is_null()) {
            return Err(Refusal::error("known_words called with a null pointer"));
        }
        // SAFETY: non-null (checked) `n` valid strings, as the ABI promises.
        let words = unsafe { strs(words, n, |_| "a word".into()) }.map_err(Refusal::Error)?;
        // SAFETY: non-null (checked) `n` writable bytes, as the ABI promises.
        host.known_words(&words, unsafe { slice_mut(out, n) })
    };
    // SAFETY: the plugin passes back the context of the table it was given.
    unsafe { guarded(ctx, answer) }
}

/// # Safety
/// None beyond the ABI's: the context is not touched (the message is per thread).
unsafe extern "C" fn last_error(_ctx: *mut c_void) -> StrRef {
    // The String lives in this thread's slot and is replaced only by the next failing
    // oracle call on this thread, after the plugin has copied it.
    LAST_ERROR.with(|e| StrRef::new(e.borrow().as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills dense `loss_grad` buffers when they have the size it wants, and falls over in
    /// `predict`.
    struct Fragile;

    impl OracleHost for Fragile {
        fn n_classes(&self) -> usize {
            2
        }

        fn predict(&self, _q: &Query<'_>, _out: &mut [f32]) -> Answer {
            panic!("the model fell over")
        }

        fn loss_grad(&self, q: &Query<'_>, loss: OutBuf<'_, f32>, grad: OutBuf<'_, f32>) -> Answer {
            let want = q.n * q.width;
            let (Some(loss), Some(grad)) = (loss.exactly(q.n), grad.exactly(want)) else {
                return Err(Refusal::error(format!("needs {want} gradient values")));
            };
            loss.fill(1.0);
            grad.fill(2.0);
            Ok(())
        }
    }

    /// Checks that a call answered `status` was refused with `msg`, read back as a plugin
    /// reads it.
    fn refused(v: &OracleVTable, status: Status, msg: &str) {
        // SAFETY: the table's own context; the message is copied before the next call.
        let got = unsafe { (v.last_error)(v.ctx).to_string_lossy() };
        assert_eq!((status, got.as_str()), (abi::STATUS_ERROR, msg));
    }

    fn dense(data: &[f32], width: usize, labels: &[u32]) -> BatchView {
        BatchView {
            modality: Modality::Tabular as u32,
            n: labels.len(),
            width,
            data: data.as_ptr(),
            texts: std::ptr::null(),
            labels: labels.as_ptr(),
            example_ids: std::ptr::null(),
            sample_rate: 0,
            features: std::ptr::null(),
            seed: 0,
            query_budget: abi::NO_QUERY_BUDGET,
            constraints: StrRef::empty(),
        }
    }

    #[test]
    fn a_panicking_host_answers_with_an_error_status_and_does_not_unwind() {
        let v = vtable(&Fragile);
        let (data, labels, mut out) = ([0.5f32, 0.5], [1u32], [0f32; 2]);
        // SAFETY: the host is a constant that outlives the call; the batch and `out` (2
        // values) are live.
        let status = unsafe { (v.predict)(v.ctx, &dense(&data, 2, &labels), out.as_mut_ptr(), 2) };
        refused(&v, status, "the host panicked while answering");
    }

    #[test]
    fn null_and_short_buffers_are_errors_and_nothing_is_written() {
        let v = vtable(&Fragile);
        let (data, labels) = ([0.5f32, 0.5, 0.1, 0.2], [1u32, 0]);
        let view = dense(&data, 2, &labels);
        let (mut out, mut loss, mut grad) = ([0f32; 4], [0f32; 2], [0f32; 4]);
        // SAFETY: the host outlives this call and those below, and every non-null buffer
        // holds as many values as it is said to: `out` 3 or 4, `loss` n = 2, `grad` 3 or 4.
        let status = unsafe { (v.predict)(v.ctx, &view, out.as_mut_ptr(), 3) };
        refused(&v, status, "predict needs an output of 4 values, got 3");
        // SAFETY: as above.
        let status = unsafe { (v.predict)(v.ctx, &view, std::ptr::null_mut(), 4) };
        refused(&v, status, "predict needs an output of 4 values, got 4");
        // SAFETY: as above.
        let status = unsafe { (v.predict)(v.ctx, std::ptr::null(), out.as_mut_ptr(), 4) };
        refused(&v, status, "null batch");
        // SAFETY: as above.
        let status = unsafe { (v.loss_grad)(v.ctx, &view, loss.as_mut_ptr(), grad.as_mut_ptr(), 3) };
        refused(&v, status, "needs 4 gradient values");
        // SAFETY: as above.
        let status = unsafe { (v.loss_grad)(v.ctx, &view, loss.as_mut_ptr(), std::ptr::null_mut(), 4) };
        refused(&v, status, "needs 4 gradient values");
        let no_labels = BatchView { labels: std::ptr::null(), ..view };
        // SAFETY: as above.
        let status = unsafe { (v.loss_grad)(v.ctx, &no_labels, loss.as_mut_ptr(), grad.as_mut_ptr(), 4) };
        refused(&v, status, "loss_grad needs labels");
        // SAFETY: as above.
        let status = unsafe { (v.known_words)(v.ctx, std::ptr::null(), 2, std::ptr::null_mut()) };
        refused(&v, status, "known_words called with a null pointer");
        assert_eq!((out, loss, grad), ([0.0; 4], [0.0; 2], [0.0; 4]), "nothing written");

        // SAFETY: as above, at the full sizes.
        let status = unsafe { (v.loss_grad)(v.ctx, &view, loss.as_mut_ptr(), grad.as_mut_ptr(), 4) };
        assert_eq!((status, loss, grad), (abi::STATUS_OK, [1.0; 2], [2.0; 4]));
    }

    #[test]
    fn text_that_is_not_utf8_is_refused_with_the_place_it_was_found() {
        let v = vtable(&Fragile);
        let bad = [b'o', 0xff];
        let (a, b) = ([StrRef { ptr: bad.as_ptr(), len: bad.len() }], [StrRef::from_static("ok")]);
        let mut out = [0f32; 1];
        // SAFETY: the host outlives the call; one string in each list (`len` live bytes) and
        // one output value.
        let status = unsafe { (v.similarity)(v.ctx, a.as_ptr(), b.as_ptr(), 1, out.as_mut_ptr()) };
        refused(&v, status, "a sentence: invalid utf-8 sequence of 1 bytes from index 1");
    }
}
