//! Test an attack without the engine: [`run`] drives it through the same `extern "C"`
//! entry points the engine calls (params as JSON bytes, `catch_unwind`, the oracle vtable),
//! against a model you write in plain Rust, counts queries per example the way the host
//! does (cap included), refuses output of the wrong shape or with non-finite values as
//! the host does, and judges every returned example with the host's own rules
//! ([`crate::judge`]) against the threat model the attack declares.

use std::cell::RefCell;
use std::ffi::c_void;
use std::sync::Mutex;

use crate::abi::{self, BatchOut, BatchView, FeatureSpec, Modality, OracleVTable, StrRef};
use crate::column::Column;
use crate::constraints::TabularConstraints;
use crate::export::attack_decl;
use crate::judge::{self, Verdict, WordLists};
use crate::ledger::{Ledger, Refused};
use crate::safe::{Attack, Input, Perturbed, PluginError};
use crate::threat::ThreatModel;

/// A model for tests: probabilities and loss gradients over plain slices.
/// `Sync`: an attack may ask the oracle from several threads at once, as the engine allows.
pub trait TestModel: Sync {
    fn n_classes(&self) -> usize;
    /// `rows * n_classes` probabilities.
    fn predict(&self, input: Input<'_>) -> Vec<f32>;
    /// Per-row cross-entropy against `labels` and its input gradient (see the ABI docs).
    fn loss_grad(&self, input: Input<'_>, labels: &[u32]) -> (Vec<f32>, Vec<f32>);
    /// Sentence similarity; `None` when the model has no encoder.
    fn similarity(&self, _a: &str, _b: &str) -> Option<f32> {
        None
    }
    /// Whether the model reads `word` as itself; `None` when it has no vocabulary (then
    /// `Oracle::known_words` fails, as for a model without one).
    fn knows(&self, _word: &str) -> Option<bool> {
        None
    }
}

/// An owned batch for [`run`].
#[derive(Debug, Clone)]
pub struct TestBatch {
    pub modality: Modality,
    pub labels: Vec<u32>,
    pub data: Vec<f32>,
    pub width: usize,
    pub texts: Vec<String>,
    pub features: Vec<Column>,
    pub sample_rate: u32,
    pub seed: u64,
    /// The host's cap on oracle rows per example (`None`: none).
    pub query_budget: Option<u64>,
    /// Tabular: directions and relations, as a pipeline declares them.
    pub constraints: TabularConstraints,
}

impl TestBatch {
    /// A dense batch. A tabular one starts with `width` unbounded continuous columns
    /// (`x0`, `x1`…, scale 1, cost 1), as the engine always sends a schema; replace
    /// `features` to test real columns.
    pub fn dense(modality: Modality, data: Vec<f32>, width: usize, labels: Vec<u32>) -> Self {
        let features = if modality == Modality::Tabular {
            (0..width).map(|j| Column::continuous(&format!("x{j}"))).collect()
        } else {
            Vec::new()
        };
        Self {
            modality,
            labels,
            data,
            width,
            texts: Vec::new(),
            features,
            sample_rate: 0,
            seed: 0,
            query_budget: None,
            constraints: TabularConstraints::default(),
        }
    }

    pub fn text(texts: Vec<String>, labels: Vec<u32>) -> Self {
        Self {
            modality: Modality::Text,
            labels,
            data: Vec::new(),
            width: 0,
            texts,
            features: Vec::new(),
            sample_rate: 0,
            seed: 0,
            query_budget: None,
            constraints: TabularConstraints::default(),
        }
    }
}

/// What an attack returned, and the oracle queries the host would have counted.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    pub perturbed: Perturbed,
    pub queries: Vec<u64>,
    /// What the attack declared (already checked to be well formed for the modality).
    pub threat: ThreatModel,
    /// The host's verdict on each returned example, queries included.
    pub verdicts: Vec<Verdict>,
}

impl TestOutcome {
    /// Every rule each example broke, as `example i: note`.
    pub fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, v) in self.verdicts.iter().enumerate() {
            out.extend(v.notes.iter().map(|n| format!("example {i}: {n}")));
        }
        out
    }
}

struct Ctx<'m> {
    model: &'m dyn TestModel,
    queries: Mutex<Ledger>,
}

thread_local! {
    /// The message of this thread's last failed call: per thread, as the ABI promises.
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_error(msg: String) {
    LAST_ERROR.with(|e| *e.borrow_mut() = msg);
}

/// `len` values at `ptr`, or none for a null or empty one (`from_raw_parts` wants a
/// non-null pointer even for zero values).
///
/// # Safety
/// A non-null `ptr` must point to `len` valid values for `'a`.
unsafe fn slice<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: non-null, and the caller promises `len` values.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

/// # Safety
/// A non-null `ptr` must point to `len` writable values for `'a`.
unsafe fn slice_mut<'a, T>(ptr: *mut T, len: usize) -> &'a mut [T] {
    if ptr.is_null() || len == 0 {
        &mut []
    } else {
        // SAFETY: non-null, and the caller promises `len` writable values.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }
}

/// # Safety
/// `view` must be a valid [`BatchView`].
unsafe fn input_of<'a>(view: &'a BatchView, texts: &'a mut Vec<&'a str>) -> Input<'a> {
    if view.modality == Modality::Text as u32 {
        // SAFETY: a valid text view holds `n` strings.
        for r in unsafe { slice(view.texts, view.n) } {
            // SAFETY: each string of a valid view is `len` live bytes.
            texts.push(std::str::from_utf8(unsafe { r.as_bytes() }).unwrap_or(""));
        }
        Input::Text(texts)
    } else {
        // SAFETY: a valid dense view holds `n * width` values.
        let data = unsafe { slice(view.data, view.n * view.width) };
        Input::Dense { data, width: view.width }
    }
}

/// Counts the call's rows per example with the host's own ledger.
///
/// # Safety
/// `view` must be a valid [`BatchView`].
unsafe fn count(ctx: &Ctx<'_>, view: &BatchView) -> Result<(), abi::Status> {
    // SAFETY: a non-null `example_ids` of a valid view holds `n` ids.
    let ids = unsafe { slice(view.example_ids, view.n) };
    ctx.queries.lock().unwrap_or_else(|e| e.into_inner()).charge(view.n, ids).map_err(|e| {
        set_error(e.to_string());
        match e {
            Refused::Budget(_) => abi::STATUS_QUERY_BUDGET,
            Refused::BadId(_) => abi::STATUS_ERROR,
        }
    })
}

/// # Safety
/// The ABI's `predict`, with `ctx` a `Ctx` from [`run`].
unsafe extern "C" fn predict(
    ctx: *mut c_void,
    input: *const BatchView,
    out: *mut f32,
    out_len: usize,
) -> abi::Status {
    // SAFETY: `run` passes its own live `Ctx`.
    let ctx = unsafe { &*ctx.cast::<Ctx<'_>>() };
    // SAFETY: the plugin passes a batch valid for the call.
    let view = unsafe { &*input };
    // SAFETY: as above.
    if let Err(status) = unsafe { count(ctx, view) } {
        return status;
    }
    let mut texts = Vec::new();
    // SAFETY: as above.
    let probs = ctx.model.predict(unsafe { input_of(view, &mut texts) });
    if probs.len() != out_len || probs.len() != view.n * ctx.model.n_classes() {
        set_error(format!("test model gave {} probabilities, wanted {out_len}", probs.len()));
        return abi::STATUS_ERROR;
    }
    // SAFETY: the plugin gives `out_len` writable values.
    unsafe { slice_mut(out, out_len) }.copy_from_slice(&probs);
    abi::STATUS_OK
}

/// # Safety
/// The ABI's `loss_grad`, with `ctx` a `Ctx` from [`run`].
unsafe extern "C" fn loss_grad(
    ctx: *mut c_void,
    input: *const BatchView,
    loss: *mut f32,
    grad: *mut f32,
    grad_len: usize,
) -> abi::Status {
    // SAFETY: `run` passes its own live `Ctx`.
    let ctx = unsafe { &*ctx.cast::<Ctx<'_>>() };
    // SAFETY: the plugin passes a batch valid for the call.
    let view = unsafe { &*input };
    // SAFETY: as above.
    if let Err(status) = unsafe { count(ctx, view) } {
        return status;
    }
    // SAFETY: as above: `n` labels.
    let labels = unsafe { slice(view.labels, view.n) };
    let mut texts = Vec::new();
    // SAFETY: as above.
    let (l, g) = ctx.model.loss_grad(unsafe { input_of(view, &mut texts) }, labels);
    if l.len() != view.n || g.len() != grad_len {
        set_error(format!("test model gave {} losses / {} gradients", l.len(), g.len()));
        return abi::STATUS_ERROR;
    }
    // SAFETY: the plugin gives `n` losses and `grad_len` gradient values, writable.
    unsafe { slice_mut(loss, view.n) }.copy_from_slice(&l);
    // SAFETY: as above.
    unsafe { slice_mut(grad, grad_len) }.copy_from_slice(&g);
    abi::STATUS_OK
}

/// # Safety
/// The ABI's `similarity`, with `ctx` a `Ctx` from [`run`].
unsafe extern "C" fn similarity(
    ctx: *mut c_void,
    a: *const StrRef,
    b: *const StrRef,
    n: usize,
    out: *mut f32,
) -> abi::Status {
    // SAFETY: `run` passes its own live `Ctx`.
    let ctx = unsafe { &*ctx.cast::<Ctx<'_>>() };
    // SAFETY: the plugin passes `n` strings in each list and `n` writable outputs.
    let (a, b, out) = unsafe { (slice(a, n), slice(b, n), slice_mut(out, n)) };
    for i in 0..n {
        // SAFETY: each string is `len` live bytes.
        let (sa, sb) = unsafe { (a[i].to_string_lossy(), b[i].to_string_lossy()) };
        match ctx.model.similarity(&sa, &sb) {
            Some(s) => out[i] = s,
            None => {
                set_error("no sentence encoder".into());
                return abi::STATUS_ERROR;
            }
        }
    }
    abi::STATUS_OK
}

/// # Safety
/// The ABI's `known_words`, with `ctx` a `Ctx` from [`run`].
unsafe extern "C" fn known_words(
    ctx: *mut c_void,
    words: *const StrRef,
    n: usize,
    out: *mut u8,
) -> abi::Status {
    // SAFETY: `run` passes its own live `Ctx`.
    let ctx = unsafe { &*ctx.cast::<Ctx<'_>>() };
    // SAFETY: the plugin passes `n` strings and `n` writable outputs.
    let (words, out) = unsafe { (slice(words, n), slice_mut(out, n)) };
    for (w, o) in words.iter().zip(out) {
        // SAFETY: each string is `len` live bytes.
        match ctx.model.knows(&unsafe { w.to_string_lossy() }) {
            Some(k) => *o = u8::from(k),
            None => {
                set_error("this model has no word vocabulary".into());
                return abi::STATUS_ERROR;
            }
        }
    }
    abi::STATUS_OK
}

/// # Safety
/// None beyond the ABI's: the context is not touched (the message is per thread).
unsafe extern "C" fn last_error(_ctx: *mut c_void) -> StrRef {
    // The String lives in this thread's slot and is replaced only by the next failing call
    // on this thread, after the plugin has copied it.
    LAST_ERROR.with(|e| {
        let e = e.borrow();
        StrRef { ptr: e.as_ptr(), len: e.len() }
    })
}

/// Creates attack `A` from JSON `params` and perturbs `batch` against `model`, through the
/// plugin's C entry points, and fails, as a test should, when an example breaks the
/// modality's rules or a budget the attack declares: what the engine would count as a
/// violation. [`run_judged`] returns the verdicts instead.
pub fn run<A: Attack>(
    params: &str,
    batch: &TestBatch,
    model: &dyn TestModel,
) -> Result<TestOutcome, PluginError> {
    let out = run_judged::<A>(params, batch, model)?;
    let broken = out.violations();
    if !broken.is_empty() {
        return Err(PluginError(format!(
            "the engine would count {} violation(s): {}",
            broken.len(),
            broken.join("; ")
        )));
    }
    Ok(out)
}

/// [`run`], returning the host's verdict on every example (in `verdicts`) rather than
/// failing on a violation: for tests of what an attack does at or past its limits.
pub fn run_judged<A: Attack>(
    params: &str,
    batch: &TestBatch,
    model: &dyn TestModel,
) -> Result<TestOutcome, PluginError> {
    let decl = attack_decl::<A>();
    // SAFETY: the plugin side's `last_error` takes no arguments.
    let plugin_error = || unsafe { crate::export::last_error().to_string_lossy() };
    let mut state: *mut c_void = std::ptr::null_mut();
    // SAFETY: `params` is `params.len()` bytes and `state` a writable slot.
    if unsafe { (decl.create)(params.as_ptr(), params.len(), &mut state) } != abi::STATUS_OK {
        return Err(PluginError(plugin_error()));
    }
    let mut threat_json = StrRef::empty();
    // SAFETY: `state` is the live state `create` just made; `threat_json` is writable.
    let threat = if unsafe { (decl.threat_model)(state, &mut threat_json) } == abi::STATUS_OK {
        // SAFETY: the JSON lives in the state until the next call on it.
        let bytes = unsafe { threat_json.as_bytes() };
        serde_json::from_slice::<ThreatModel>(bytes).map_err(|e| PluginError(format!("threat model: {e}")))
    } else {
        Err(PluginError(plugin_error()))
    };
    let threat = match threat.and_then(|t| t.validate(batch.modality).map(|()| t).map_err(PluginError)) {
        Ok(t) => t,
        Err(e) => {
            // SAFETY: the state from `create`, released once.
            unsafe { (decl.release)(state) };
            return Err(e);
        }
    };
    // Each spec borrows its column's name from `batch`, which outlives the call.
    let specs: Vec<FeatureSpec> = batch.features.iter().map(Column::spec).collect();
    let text_refs: Vec<StrRef> = batch.texts.iter().map(|s| StrRef::new(s)).collect();
    let constraints = if batch.constraints.is_empty() {
        String::new()
    } else {
        // Plain numbers and enums: serializing cannot fail.
        serde_json::to_string(&batch.constraints).unwrap_or_default()
    };
    let view = BatchView {
        modality: batch.modality as u32,
        n: batch.labels.len(),
        width: batch.width,
        data: batch.data.as_ptr(),
        texts: if text_refs.is_empty() { std::ptr::null() } else { text_refs.as_ptr() },
        labels: batch.labels.as_ptr(),
        example_ids: std::ptr::null(),
        sample_rate: batch.sample_rate,
        features: if specs.is_empty() { std::ptr::null() } else { specs.as_ptr() },
        seed: batch.seed,
        query_budget: batch.query_budget.unwrap_or(abi::NO_QUERY_BUDGET),
        constraints: StrRef::new(&constraints),
    };
    let ctx = Ctx { model, queries: Mutex::new(Ledger::new(batch.labels.len(), batch.query_budget)) };
    let oracle = OracleVTable {
        ctx: (&ctx as *const Ctx<'_>).cast_mut().cast(),
        n_classes: model.n_classes(),
        predict,
        loss_grad,
        similarity,
        last_error,
        known_words,
    };
    let mut out = BatchOut::empty();
    // SAFETY: the state is live; the batch, the oracle (and its `Ctx`) and `out` outlive the
    // call.
    let status = unsafe { (decl.perturb)(state, &view, &oracle, &mut out) };
    let result = if status == abi::STATUS_OK {
        // SAFETY: a successful `perturb` wrote these, alive until released.
        unsafe { read_output(batch, &out) }.map(|perturbed| {
            let queries = ctx.queries.into_inner().unwrap_or_else(|e| e.into_inner()).into_counts();
            let verdicts = judge_all(batch, &perturbed, &queries, &threat, model);
            TestOutcome { perturbed, queries, threat, verdicts }
        })
    } else {
        Err(PluginError(plugin_error()))
    };
    // SAFETY: `out` is this plugin's answer (or empty), and `state` is released once, after it.
    unsafe {
        (decl.release_output)(&mut out);
        (decl.release)(state);
    }
    result
}

/// Copies the plugin's answer out, refusing what the engine refuses (a wrong number of
/// values or texts, non-finite values), with the engine's wording.
///
/// # Safety
/// `out` was written by a successful `perturb` and is not yet released.
unsafe fn read_output(batch: &TestBatch, out: &BatchOut) -> Result<Perturbed, PluginError> {
    let n = batch.labels.len();
    if batch.modality == Modality::Text {
        if out.n_texts != n {
            return Err(PluginError(format!("returned {} texts for {n} examples", out.n_texts)));
        }
        // SAFETY: the caller's promise: `n_texts` strings.
        let refs = unsafe { slice(out.texts, out.n_texts) };
        let mut texts = Vec::with_capacity(n);
        for (i, r) in refs.iter().enumerate() {
            // SAFETY: each string is `len` live bytes until released.
            let bytes = unsafe { r.as_bytes() };
            let s = std::str::from_utf8(bytes)
                .map_err(|e| PluginError(format!("returned invalid UTF-8 for example {i}: {e}")))?;
            texts.push(s.to_owned());
        }
        return Ok(Perturbed::Text(texts));
    }
    let want = n * batch.width;
    if out.data_len != want {
        return Err(PluginError(format!(
            "returned {} values for {n} examples of width {} (expected {want})",
            out.data_len, batch.width
        )));
    }
    // SAFETY: the caller's promise: `data_len` values.
    let data = unsafe { slice(out.data, out.data_len) }.to_vec();
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        let w = batch.width.max(1);
        return Err(PluginError(format!(
            "returned a non-finite value ({}) for example {} at position {}",
            data[i],
            i / w,
            i % w
        )));
    }
    Ok(Perturbed::Dense(data))
}

/// The host's verdict on every example of `perturbed`.
fn judge_all(
    batch: &TestBatch,
    perturbed: &Perturbed,
    queries: &[u64],
    threat: &ThreatModel,
    model: &dyn TestModel,
) -> Vec<Verdict> {
    let budgets = &threat.budgets;
    let w = batch.width;
    let lists = WordLists::default();
    let similarity =
        |a: &str, b: &str| model.similarity(a, b).ok_or_else(|| "no sentence encoder".to_owned());
    let has_encoder = model.similarity("", "").is_some();
    (0..batch.labels.len())
        .map(|i| {
            let mut v = match (batch.modality, perturbed) {
                (Modality::Text, Perturbed::Text(t)) => {
                    let sim: Option<judge::Similarity<'_>> = has_encoder.then_some(&similarity as _);
                    judge::text(&batch.texts[i], &t[i], budgets, &lists, sim)
                }
                (Modality::Audio, Perturbed::Dense(d)) => judge::audio(
                    batch.sample_rate,
                    &batch.data[i * w..(i + 1) * w],
                    &d[i * w..(i + 1) * w],
                    budgets,
                ),
                (Modality::Tabular, Perturbed::Dense(d)) => {
                    let (x, z) = (&batch.data[i * w..(i + 1) * w], &d[i * w..(i + 1) * w]);
                    judge::tabular(&batch.features, &batch.constraints, x, z, budgets)
                }
                _ => {
                    let mut v = Verdict::default();
                    v.fail(format!("a {} example of another kind", batch.modality));
                    v
                }
            };
            judge::queries(&mut v, queries[i], budgets);
            v
        })
        .collect()
}
