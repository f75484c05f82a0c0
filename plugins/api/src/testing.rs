//! Test an attack without the engine: [`run`] drives it through the same `extern "C"`
//! entry points the engine calls (params as JSON bytes, `catch_unwind`, the oracle vtable),
//! against a model you write in plain Rust, and counts queries per example the way the
//! host does.

use std::cell::RefCell;
use std::ffi::c_void;

use crate::abi::{self, BatchOut, BatchView, FeatureKind, FeatureSpec, Modality, OracleVTable, StrRef};
use crate::export::attack_decl;
use crate::safe::{Attack, Input, Perturbed, PluginError};

/// A model for tests: probabilities and loss gradients over plain slices.
pub trait TestModel {
    fn n_classes(&self) -> usize;
    /// `rows * n_classes` probabilities.
    fn predict(&self, input: Input<'_>) -> Vec<f32>;
    /// Per-row cross-entropy against `labels` and its input gradient (see the ABI docs).
    fn loss_grad(&self, input: Input<'_>, labels: &[u32]) -> (Vec<f32>, Vec<f32>);
    /// Sentence similarity; `None` when the model has no encoder.
    fn similarity(&self, _a: &str, _b: &str) -> Option<f32> {
        None
    }
}

/// An owned tabular column for [`TestBatch`].
#[derive(Debug, Clone)]
pub struct TestFeature {
    pub name: String,
    pub kind: FeatureKind,
    pub mutable: bool,
    pub lower: f32,
    pub upper: f32,
    pub cost: f32,
    pub scale: f32,
    pub group: Option<u32>,
}

impl TestFeature {
    pub fn continuous(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            kind: FeatureKind::Continuous,
            mutable: true,
            lower: f32::NEG_INFINITY,
            upper: f32::INFINITY,
            cost: 1.0,
            scale: 1.0,
            group: None,
        }
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
    pub features: Vec<TestFeature>,
    pub sample_rate: u32,
    pub seed: u64,
}

impl TestBatch {
    pub fn dense(modality: Modality, data: Vec<f32>, width: usize, labels: Vec<u32>) -> Self {
        Self {
            modality,
            labels,
            data,
            width,
            texts: Vec::new(),
            features: Vec::new(),
            sample_rate: 0,
            seed: 0,
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
        }
    }
}

/// What an attack returned, and the oracle queries the host would have counted.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    pub perturbed: Perturbed,
    pub queries: Vec<u64>,
}

struct Ctx<'m> {
    model: &'m dyn TestModel,
    queries: RefCell<Vec<u64>>,
    error: RefCell<String>,
}

/// # Safety
/// `view` must be a valid [`BatchView`].
unsafe fn input_of<'a>(view: &'a BatchView, texts: &'a mut Vec<&'a str>) -> Input<'a> {
    if view.modality == Modality::Text as u32 {
        let refs = unsafe { std::slice::from_raw_parts(view.texts, view.n) };
        for r in refs {
            texts.push(std::str::from_utf8(unsafe { r.as_bytes() }).unwrap_or(""));
        }
        Input::Text(texts)
    } else {
        let data = unsafe { std::slice::from_raw_parts(view.data, view.n * view.width) };
        Input::Dense { data, width: view.width }
    }
}

fn count(ctx: &Ctx<'_>, view: &BatchView) {
    let mut q = ctx.queries.borrow_mut();
    for i in 0..view.n {
        let id = if view.example_ids.is_null() { i } else { unsafe { *view.example_ids.add(i) as usize } };
        if let Some(slot) = q.get_mut(id) {
            *slot += 1;
        }
    }
}

extern "C" fn predict(
    ctx: *mut c_void,
    input: *const BatchView,
    out: *mut f32,
    out_len: usize,
) -> abi::Status {
    let ctx = unsafe { &*ctx.cast::<Ctx<'_>>() };
    let view = unsafe { &*input };
    count(ctx, view);
    let mut texts = Vec::new();
    let probs = ctx.model.predict(unsafe { input_of(view, &mut texts) });
    if probs.len() != out_len {
        *ctx.error.borrow_mut() = format!("test model gave {} probabilities, wanted {out_len}", probs.len());
        return abi::STATUS_ERROR;
    }
    unsafe { std::slice::from_raw_parts_mut(out, out_len) }.copy_from_slice(&probs);
    abi::STATUS_OK
}

extern "C" fn loss_grad(
    ctx: *mut c_void,
    input: *const BatchView,
    loss: *mut f32,
    grad: *mut f32,
    grad_len: usize,
) -> abi::Status {
    let ctx = unsafe { &*ctx.cast::<Ctx<'_>>() };
    let view = unsafe { &*input };
    count(ctx, view);
    let labels = unsafe { std::slice::from_raw_parts(view.labels, view.n) };
    let mut texts = Vec::new();
    let (l, g) = ctx.model.loss_grad(unsafe { input_of(view, &mut texts) }, labels);
    if l.len() != view.n || g.len() != grad_len {
        *ctx.error.borrow_mut() = format!("test model gave {} losses / {} gradients", l.len(), g.len());
        return abi::STATUS_ERROR;
    }
    unsafe { std::slice::from_raw_parts_mut(loss, view.n) }.copy_from_slice(&l);
    unsafe { std::slice::from_raw_parts_mut(grad, grad_len) }.copy_from_slice(&g);
    abi::STATUS_OK
}

extern "C" fn similarity(
    ctx: *mut c_void,
    a: *const StrRef,
    b: *const StrRef,
    n: usize,
    out: *mut f32,
) -> abi::Status {
    let ctx = unsafe { &*ctx.cast::<Ctx<'_>>() };
    for i in 0..n {
        let (sa, sb) = unsafe { ((*a.add(i)).to_string_lossy(), (*b.add(i)).to_string_lossy()) };
        match ctx.model.similarity(&sa, &sb) {
            Some(s) => unsafe { *out.add(i) = s },
            None => {
                *ctx.error.borrow_mut() = "no sentence encoder".into();
                return abi::STATUS_ERROR;
            }
        }
    }
    abi::STATUS_OK
}

extern "C" fn last_error(ctx: *mut c_void) -> StrRef {
    let ctx = unsafe { &*ctx.cast::<Ctx<'_>>() };
    let e = ctx.error.borrow();
    StrRef::new(e.as_str())
}

/// Creates attack `A` from JSON `params` and perturbs `batch` against `model`, through the
/// plugin's C entry points.
pub fn run<A: Attack>(
    params: &str,
    batch: &TestBatch,
    model: &dyn TestModel,
) -> Result<TestOutcome, PluginError> {
    let decl = attack_decl::<A>();
    let plugin_error = || unsafe { crate::export::last_error().to_string_lossy() };
    let mut state: *mut c_void = std::ptr::null_mut();
    if (decl.create)(params.as_ptr(), params.len(), &mut state) != abi::STATUS_OK {
        return Err(PluginError(plugin_error()));
    }
    let names: Vec<String> = batch.features.iter().map(|f| f.name.clone()).collect();
    let specs: Vec<FeatureSpec> = batch
        .features
        .iter()
        .zip(&names)
        .map(|(f, name)| FeatureSpec {
            name: StrRef::new(name),
            kind: f.kind as u32,
            mutable: f.mutable as u8,
            lower: f.lower,
            upper: f.upper,
            cost: f.cost,
            scale: f.scale,
            group: f.group.map_or(-1, |g| g as i32),
        })
        .collect();
    let text_refs: Vec<StrRef> = batch.texts.iter().map(|s| StrRef::new(s)).collect();
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
    };
    let ctx =
        Ctx { model, queries: RefCell::new(vec![0; batch.labels.len()]), error: RefCell::new(String::new()) };
    let oracle = OracleVTable {
        ctx: (&ctx as *const Ctx<'_>).cast_mut().cast(),
        n_classes: model.n_classes(),
        predict,
        loss_grad,
        similarity,
        last_error,
    };
    let mut out = BatchOut::empty();
    let status = (decl.perturb)(state, &view, &oracle, &mut out);
    let result = if status == abi::STATUS_OK {
        let perturbed = if batch.modality == Modality::Text {
            let refs = unsafe { std::slice::from_raw_parts(out.texts, out.n_texts) };
            Perturbed::Text(refs.iter().map(|r| unsafe { r.to_string_lossy() }).collect())
        } else {
            Perturbed::Dense(unsafe { std::slice::from_raw_parts(out.data, out.data_len) }.to_vec())
        };
        Ok(TestOutcome { perturbed, queries: ctx.queries.into_inner() })
    } else {
        Err(PluginError(plugin_error()))
    };
    (decl.release_output)(&mut out);
    (decl.release)(state);
    result
}
