//! Test an attack without the engine: [`run`] drives it through the same `extern "C"`
//! entry points the engine calls (params as JSON bytes, `catch_unwind`, the oracle vtable),
//! against a model you write in plain Rust. The oracle's C side is the engine's own
//! ([`crate::host`]), so a malformed call is refused as the engine refuses it. Queries are
//! counted per example the way the host counts them (cap included), output of the wrong
//! shape or with non-finite values is refused as the host refuses it, and every returned
//! example is judged with the host's own rules ([`crate::judge`]) against the threat model
//! the attack declares.

use std::ffi::c_void;
use std::sync::Mutex;

use crate::abi::{self, BatchOut, BatchView, FeatureSpec, Modality, StrRef};
use crate::column::Column;
use crate::constraints::TabularConstraints;
use crate::export::attack_decl;
use crate::host::{self, Answer, OracleHost, OutBuf, Query, Refusal, copy_answer};
use crate::judge::{self, Verdict, WordLists};
use crate::ledger::Ledger;
use crate::safe::{Attack, Input, Perturbed, PluginError, slice};
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

/// The harness's side of the oracle: `model`, with the host's query ledger.
struct Host<'m> {
    model: &'m dyn TestModel,
    queries: Mutex<Ledger>,
}

impl Host<'_> {
    /// Counts the call's rows per example with the host's own ledger.
    fn charge(&self, q: &Query<'_>) -> Answer {
        Ok(self.queries.lock().unwrap_or_else(|e| e.into_inner()).charge(q.n, q.example_ids)?)
    }
}

impl OracleHost for Host<'_> {
    fn n_classes(&self) -> usize {
        self.model.n_classes()
    }

    fn predict(&self, q: &Query<'_>, out: &mut [f32]) -> Answer {
        self.charge(q)?;
        let probs = self.model.predict(q.input()?);
        copy_answer(out, &probs, |got, want| format!("test model gave {got} probabilities, wanted {want}"))
    }

    fn loss_grad(&self, q: &Query<'_>, loss: OutBuf<'_, f32>, grad: OutBuf<'_, f32>) -> Answer {
        self.charge(q)?;
        let (l, g) = self.model.loss_grad(q.input()?, q.labels);
        let (Some(loss), Some(grad)) =
            (loss.exactly(l.len()).filter(|_| l.len() == q.n), grad.exactly(g.len()))
        else {
            return Err(Refusal::error(format!(
                "test model gave {} losses / {} gradients",
                l.len(),
                g.len()
            )));
        };
        loss.copy_from_slice(&l);
        grad.copy_from_slice(&g);
        Ok(())
    }

    fn similarity(&self, a: &[&str], b: &[&str], out: &mut [f32]) -> Answer {
        for ((a, b), o) in a.iter().zip(b).zip(out) {
            *o = self.model.similarity(a, b).ok_or_else(|| Refusal::error("no sentence encoder"))?;
        }
        Ok(())
    }

    fn known_words(&self, words: &[&str], out: &mut [u8]) -> Answer {
        for (w, o) in words.iter().zip(out) {
            let known =
                self.model.knows(w).ok_or_else(|| Refusal::error("this model has no word vocabulary"))?;
            *o = u8::from(known);
        }
        Ok(())
    }
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
    let host = Host { model, queries: Mutex::new(Ledger::new(batch.labels.len(), batch.query_budget)) };
    let oracle = host::vtable(&host);
    let mut out = BatchOut::empty();
    // SAFETY: the state is live; the batch, the oracle (and its `host`) and `out` outlive the
    // call.
    let status = unsafe { (decl.perturb)(state, &view, &oracle, &mut out) };
    let result = if status == abi::STATUS_OK {
        // SAFETY: a successful `perturb` wrote these, alive until released.
        unsafe { read_output(batch, &out) }.map(|perturbed| {
            let queries = host.queries.into_inner().unwrap_or_else(|e| e.into_inner()).into_counts();
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
