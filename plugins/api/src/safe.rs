//! The safe side of the ABI: what a plugin author implements and calls.

use std::sync::Mutex;

use crate::abi::{self, BatchView, FeatureKind, FeatureSpec, Modality, OracleVTable, StrRef};
use crate::constraints::TabularConstraints;
use crate::threat::ThreatModel;

/// An error a plugin reports to the engine; the engine shows it with the plugin's name.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginError(pub String);

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PluginError {}

impl From<String> for PluginError {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for PluginError {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

pub type Result<T, E = PluginError> = std::result::Result<T, E>;

/// One attack. Implement this and list the type in [`export_plugin!`](crate::export_plugin).
pub trait Attack: Sized + Send + 'static {
    /// Its options: deserialized from the pipeline's `[attack.params]` table.
    /// Use `#[serde(deny_unknown_fields)]` so a typo in the TOML is an error.
    type Params: serde::de::DeserializeOwned;
    /// The name pipelines use in `attack = "..."`.
    const NAME: &'static str;
    const DESCRIPTION: &'static str;

    fn new(params: Self::Params) -> Result<Self>;

    /// Perturb every example of `batch`, asking `oracle` about the model as needed.
    /// Return one example per input example, in order, of the same modality and width.
    fn perturb(&mut self, batch: &Batch<'_>, oracle: &Oracle<'_>) -> Result<Perturbed>;

    /// Every budget this attack, as configured, promises to keep on every example it
    /// returns. The host checks each one on each example and counts a breach as a
    /// violation, never a success; what is not declared here is reported as "not verified
    /// by the host". The default declares nothing.
    fn threat_model(&self) -> ThreatModel {
        ThreatModel::default()
    }
}

/// A tabular column, as the attack sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature<'a> {
    pub name: &'a str,
    pub kind: FeatureKind,
    pub mutable: bool,
    pub lower: f32,
    pub upper: f32,
    pub cost: f32,
    /// Standard deviation of the model's standardisation (raw units per standardised unit).
    pub scale: f32,
    /// One-hot group id for categorical columns.
    pub group: Option<u32>,
}

impl Feature<'_> {
    /// Projects `v` onto what this column allows (bounds, then integrality), leaving
    /// one-hot groups to [`project_row`].
    pub fn clamp(&self, v: f32) -> f32 {
        // max/min rather than f32::clamp: a malformed schema must not panic inside a plugin.
        let v = v.max(self.lower).min(self.upper);
        match self.kind {
            FeatureKind::Integer => v.round().max(self.lower.ceil()).min(self.upper.floor()),
            FeatureKind::Binary => {
                if v >= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            _ => v,
        }
    }
}

/// The examples to attack.
pub struct Batch<'a> {
    pub modality: Modality,
    /// True labels, one per example.
    pub labels: &'a [u32],
    /// Dense rows (audio, tabular): `labels.len() * width` values.
    pub data: &'a [f32],
    pub width: usize,
    /// Text examples.
    pub texts: Vec<&'a str>,
    /// Tabular columns (`width` of them).
    pub features: Vec<Feature<'a>>,
    /// Audio sample rate.
    pub sample_rate: u32,
    /// Draw all randomness from this, so a seeded run repeats.
    pub seed: u64,
    /// The most oracle rows the host answers for each example (`None`: no cap). A call
    /// that would go past it is refused whole; see [`Oracle::queries_left`].
    pub query_budget: Option<u64>,
    /// Tabular: which way each column may move and which columns follow from others. The
    /// host checks them on every row; [`Batch::project`] keeps them.
    pub constraints: TabularConstraints,
}

impl<'a> Batch<'a> {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Row `i` of a dense batch.
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.width..(i + 1) * self.width]
    }

    /// Makes `row`, a perturbed version of row `i`, keep every rule the host checks on a
    /// table row: [`project_row`] (immutable columns, bounds, integers, binaries, one-hot
    /// groups), then the pipeline's directions and relations.
    pub fn project(&self, i: usize, row: &mut [f32]) {
        let original = self.row(i);
        project_row(&self.features, original, row);
        self.constraints.apply(original, row);
    }

    /// # Safety
    /// `view` must be valid as documented on [`BatchView`] for `'a`.
    pub(crate) unsafe fn from_view(view: &'a BatchView) -> Result<Self> {
        let modality = Modality::from_u32(view.modality)
            .ok_or_else(|| PluginError(format!("unknown modality {}", view.modality)))?;
        let n = view.n;
        // SAFETY: the caller promises `view` is valid, so each non-null pointer has the
        // length the ABI documents for it (here and in the slices below).
        let labels = unsafe { slice(view.labels, n) };
        let (data, text_refs) = if modality == Modality::Text {
            // SAFETY: as above.
            (&[][..], unsafe { slice(view.texts, n) })
        } else {
            // SAFETY: as above.
            (unsafe { slice(view.data, n * view.width) }, &[][..])
        };
        let mut texts = Vec::new();
        for r in text_refs {
            // SAFETY: each text of a valid view is `len` live bytes.
            let bytes = unsafe { r.as_bytes() };
            texts.push(
                std::str::from_utf8(bytes).map_err(|e| PluginError(format!("text is not UTF-8: {e}")))?,
            );
        }
        let mut features = Vec::new();
        // SAFETY: a non-null `features` of a valid view holds `width` columns.
        for f in unsafe { slice(view.features, if view.features.is_null() { 0 } else { view.width }) } {
            features.push(Feature {
                // SAFETY: a column name of a valid view is `len` live bytes.
                name: std::str::from_utf8(unsafe { f.name.as_bytes() }).unwrap_or("?"),
                kind: FeatureKind::from_u32(f.kind)
                    .ok_or_else(|| PluginError(format!("unknown feature kind {}", f.kind)))?,
                mutable: f.mutable != 0,
                lower: f.lower,
                upper: f.upper,
                cost: f.cost,
                scale: f.scale,
                group: u32::try_from(f.group).ok(),
            });
        }
        Ok(Self {
            modality,
            labels,
            data,
            width: view.width,
            texts,
            features,
            sample_rate: view.sample_rate,
            seed: view.seed,
            query_budget: (view.query_budget != abi::NO_QUERY_BUDGET).then_some(view.query_budget),
            constraints: {
                // SAFETY: the string of a valid view is `len` live bytes (or empty).
                let json = unsafe { view.constraints.as_bytes() };
                if json.is_empty() {
                    TabularConstraints::default()
                } else {
                    let c: TabularConstraints = serde_json::from_slice(json)
                        .map_err(|e| PluginError(format!("the host's table constraints: {e}")))?;
                    c.validate(view.width)
                        .map_err(|e| PluginError(format!("the host's table constraints: {e}")))?;
                    c
                }
            },
        })
    }
}

/// Makes a tabular row satisfy every column constraint: immutable columns restored from
/// `original`, bounds, integers, binaries, and one-hot groups (the largest value wins).
/// Directions and relations live in the batch: [`Batch::project`] applies those too.
pub fn project_row(features: &[Feature<'_>], original: &[f32], row: &mut [f32]) {
    for (j, f) in features.iter().enumerate() {
        row[j] = if f.mutable && row[j].is_finite() { f.clamp(row[j]) } else { original[j] };
    }
    let mut seen: Vec<u32> = Vec::new();
    for f in features {
        let Some(g) = f.group else { continue };
        if seen.contains(&g) {
            continue;
        }
        seen.push(g);
        let cols: Vec<usize> = (0..features.len()).filter(|&j| features[j].group == Some(g)).collect();
        if cols.iter().any(|&j| !features[j].mutable) {
            for &j in &cols {
                row[j] = original[j];
            }
            continue;
        }
        let best = cols
            .iter()
            .copied()
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .expect("a group has at least one column");
        for &j in &cols {
            row[j] = if j == best { 1.0 } else { 0.0 };
        }
    }
}

/// What an attack returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Perturbed {
    Dense(Vec<f32>),
    Text(Vec<String>),
}

/// Examples sent to the oracle.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// Rows of `width` values, as in [`Batch::data`].
    Dense {
        data: &'a [f32],
        width: usize,
    },
    Text(&'a [&'a str]),
}

impl Input<'_> {
    fn rows(&self) -> usize {
        match self {
            Input::Dense { data, width } => data.len().checked_div(*width).unwrap_or(0),
            Input::Text(t) => t.len(),
        }
    }
}

/// The host's model. Each row sent counts as one query against the example it belongs to.
pub struct Oracle<'a> {
    vtable: &'a OracleVTable,
    modality: Modality,
    sample_rate: u32,
    features: *const FeatureSpec,
    /// The host's cap and the rows asked so far per example, mirroring the host's count.
    budget: Option<u64>,
    asked: Mutex<Vec<u64>>,
}

// SAFETY: the host's oracle may be called from several threads during one `perturb`
// (ABI 1.1: it counts and answers each call on its own, and `last_error` is per thread);
// `features` points to the host's column descriptions, read-only for the whole call; the
// query tally is behind a mutex. So `&Oracle` may be shared by the threads of one
// `perturb` (scoped: they cannot outlive the call, as `'a` bounds them).
unsafe impl Sync for Oracle<'_> {}

impl<'a> Oracle<'a> {
    pub(crate) fn new(vtable: &'a OracleVTable, batch: &BatchView) -> Self {
        Self {
            vtable,
            modality: Modality::from_u32(batch.modality).unwrap_or(Modality::Tabular),
            sample_rate: batch.sample_rate,
            features: batch.features,
            budget: (batch.query_budget != abi::NO_QUERY_BUDGET).then_some(batch.query_budget),
            asked: Mutex::new(vec![0; batch.n]),
        }
    }

    pub fn n_classes(&self) -> usize {
        self.vtable.n_classes
    }

    /// How many more rows the host answers for `example` (`None`: no cap). A call asking
    /// more than this for any example is refused whole, and counts nothing.
    pub fn queries_left(&self, example: u32) -> Option<u64> {
        let asked =
            self.asked.lock().unwrap_or_else(|e| e.into_inner()).get(example as usize).copied().unwrap_or(0);
        self.budget.map(|b| b.saturating_sub(asked))
    }

    /// Adds a successful call's `rows` rows to the per-example tally behind
    /// `queries_left` (no `ids`: row `i` is example `i`).
    fn tally(&self, rows: usize, ids: &[u32]) {
        let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        for i in 0..rows {
            let id = ids.get(i).map_or(i, |&id| id as usize);
            if let Some(slot) = asked.get_mut(id) {
                *slot += 1;
            }
        }
    }

    fn view(
        &self,
        input: &Input<'_>,
        labels: &[u32],
        ids: &[u32],
        refs: &mut Vec<StrRef>,
    ) -> Result<BatchView> {
        let n = input.rows();
        // No ids: row `i` is example `i`, the common case of asking about the whole batch.
        if (!ids.is_empty() && ids.len() != n) || (!labels.is_empty() && labels.len() != n) {
            return Err(PluginError(format!(
                "oracle call with {n} rows but {} example ids and {} labels",
                ids.len(),
                labels.len()
            )));
        }
        let (data, width) = match input {
            Input::Dense { data, width } => (data.as_ptr(), *width),
            Input::Text(t) => {
                refs.extend(t.iter().map(|s| StrRef::new(s)));
                (std::ptr::null(), 0)
            }
        };
        Ok(BatchView {
            modality: self.modality as u32,
            n,
            width,
            data,
            texts: if refs.is_empty() { std::ptr::null() } else { refs.as_ptr() },
            labels: if labels.is_empty() { std::ptr::null() } else { labels.as_ptr() },
            example_ids: if ids.is_empty() { std::ptr::null() } else { ids.as_ptr() },
            sample_rate: self.sample_rate,
            features: self.features,
            seed: 0,
            query_budget: abi::NO_QUERY_BUDGET,
            constraints: StrRef::empty(),
        })
    }

    fn error(&self, status: abi::Status) -> PluginError {
        // SAFETY: the host's `last_error` takes its own context and nothing else; the
        // message is copied out before the next oracle call.
        let msg = unsafe { (self.vtable.last_error)(self.vtable.ctx).to_string_lossy() };
        if status == abi::STATUS_QUERY_BUDGET {
            PluginError(format!("host: query budget: {msg}"))
        } else {
            PluginError(format!("host: {msg}"))
        }
    }

    /// Class probabilities, `rows * n_classes` values. `ids[i]` is the example row `i` is
    /// for; `&[]` when row `i` is example `i`.
    pub fn predict(&self, input: Input<'_>, ids: &[u32]) -> Result<Vec<f32>> {
        let mut refs = Vec::new();
        let view = self.view(&input, &[], ids, &mut refs)?;
        let mut out = vec![0f32; view.n * self.n_classes()];
        // SAFETY: `view` and what it points to (`input`, `ids`, `refs`) outlive the call, and
        // `out` holds the `n * n_classes` values the host writes.
        let status = unsafe { (self.vtable.predict)(self.vtable.ctx, &view, out.as_mut_ptr(), out.len()) };
        if status != abi::STATUS_OK {
            return Err(self.error(status));
        }
        self.tally(view.n, ids);
        Ok(out)
    }

    /// Per-row cross-entropy against `labels`, and its gradient with respect to the input
    /// (dense: `rows * width` values in raw units; text: per-word saliency, see the ABI).
    pub fn loss_grad(&self, input: Input<'_>, labels: &[u32], ids: &[u32]) -> Result<(Vec<f32>, Vec<f32>)> {
        let (mut loss, mut grad) = (Vec::new(), Vec::new());
        self.loss_grad_into(input, labels, ids, &mut loss, &mut grad)?;
        Ok((loss, grad))
    }

    /// [`Oracle::loss_grad`] into the caller's buffers (resized to fit), so an attack that
    /// asks every step reuses the same memory instead of allocating a batch's worth.
    pub fn loss_grad_into(
        &self,
        input: Input<'_>,
        labels: &[u32],
        ids: &[u32],
        loss: &mut Vec<f32>,
        grad: &mut Vec<f32>,
    ) -> Result<()> {
        let mut refs = Vec::new();
        let view = self.view(&input, labels, ids, &mut refs)?;
        if labels.len() != view.n {
            return Err(PluginError("loss_grad needs one label per row".into()));
        }
        let width = match input {
            Input::Dense { width, .. } => width,
            Input::Text(t) => t.iter().map(|s| crate::words::word_count(s)).max().unwrap_or(0),
        };
        // The host overwrites every value, so stale contents need no clearing.
        loss.resize(view.n, 0.0);
        grad.resize(view.n * width, 0.0);
        // SAFETY: `view` and what it points to outlive the call; `loss` holds `n` values and
        // `grad` the `grad.len()` the host is told about.
        let status = unsafe {
            (self.vtable.loss_grad)(self.vtable.ctx, &view, loss.as_mut_ptr(), grad.as_mut_ptr(), grad.len())
        };
        if status != abi::STATUS_OK {
            return Err(self.error(status));
        }
        self.tally(view.n, ids);
        Ok(())
    }

    /// Text: whether the model reads each word as itself (`true`) or as its unknown token,
    /// so edits that only make a word unknown can be told apart. Costs no query.
    pub fn known_words(&self, words: &[&str]) -> Result<Vec<bool>> {
        let refs: Vec<StrRef> = words.iter().map(|s| StrRef::new(s)).collect();
        let mut out = vec![0u8; words.len()];
        // SAFETY: `refs` (pointing into `words`) and `out` hold `words.len()` entries each
        // and outlive the call.
        let status = unsafe {
            (self.vtable.known_words)(self.vtable.ctx, refs.as_ptr(), words.len(), out.as_mut_ptr())
        };
        if status != abi::STATUS_OK {
            return Err(self.error(status));
        }
        Ok(out.into_iter().map(|b| b != 0).collect())
    }

    /// Cosine similarity of the host's sentence embeddings of `a[i]` and `b[i]`.
    pub fn similarity(&self, a: &[&str], b: &[&str]) -> Result<Vec<f32>> {
        if a.len() != b.len() {
            return Err(PluginError("similarity needs two lists of the same length".into()));
        }
        let ra: Vec<StrRef> = a.iter().map(|s| StrRef::new(s)).collect();
        let rb: Vec<StrRef> = b.iter().map(|s| StrRef::new(s)).collect();
        let mut out = vec![0f32; a.len()];
        // SAFETY: `ra`, `rb` (pointing into `a`, `b`) and `out` hold `a.len()` entries each
        // and outlive the call.
        let status = unsafe {
            (self.vtable.similarity)(self.vtable.ctx, ra.as_ptr(), rb.as_ptr(), a.len(), out.as_mut_ptr())
        };
        if status != abi::STATUS_OK {
            return Err(self.error(status));
        }
        Ok(out)
    }
}

/// # Safety
/// `ptr` must be null or point to `len` valid `T`s for `'a`.
unsafe fn slice<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: non-null, and the caller promises `len` valid values for `'a`.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}
