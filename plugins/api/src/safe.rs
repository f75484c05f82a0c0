//! The safe side of the ABI: what a plugin author implements and calls.

use std::sync::Mutex;

use crate::abi::{self, BatchView, FeatureSpec, Modality, OracleVTable, StrRef};
use crate::column::{Column, project_row};
use crate::constraints::TabularConstraints;
pub use crate::error::{PluginError, Result};
use crate::threat::ThreatModel;

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

/// The examples to attack, typed by modality: an attack takes its own kind with
/// [`Batch::table`], [`Batch::audio`] or [`Batch::text`] (a plugin declares one modality, so
/// the host only ever sends that kind), and a text attack has no rows to misread.
pub enum Batch<'a> {
    Table(TableBatch<'a>),
    Audio(AudioBatch<'a>),
    Text(TextBatch<'a>),
}

/// Table rows (tabular attacks).
pub struct TableBatch<'a> {
    /// True labels, one per row.
    pub labels: &'a [u32],
    /// `labels.len() * width` values, raw units.
    pub data: &'a [f32],
    pub width: usize,
    /// The columns (`width` of them).
    pub features: Vec<Column>,
    /// Which way each column may move and which columns follow from others. The host
    /// checks them on every row; [`TableBatch::project`] keeps them.
    pub constraints: TabularConstraints,
    /// Draw all randomness from this, so a seeded run repeats.
    pub seed: u64,
    /// The most oracle rows the host answers for each example (`None`: no cap). A call
    /// that would go past it is refused whole; see [`Oracle::queries_left`].
    pub query_budget: Option<u64>,
}

/// Waveforms (audio attacks).
pub struct AudioBatch<'a> {
    /// True labels, one per waveform.
    pub labels: &'a [u32],
    /// `labels.len() * width` samples in [-1, 1]; `width` is the model's input length.
    pub data: &'a [f32],
    pub width: usize,
    /// Samples per second.
    pub sample_rate: u32,
    /// Draw all randomness from this, so a seeded run repeats.
    pub seed: u64,
    /// As [`TableBatch::query_budget`].
    pub query_budget: Option<u64>,
}

/// Texts (text attacks).
pub struct TextBatch<'a> {
    /// True labels, one per text.
    pub labels: &'a [u32],
    pub texts: Vec<&'a str>,
    /// Draw all randomness from this, so a seeded run repeats.
    pub seed: u64,
    /// As [`TableBatch::query_budget`].
    pub query_budget: Option<u64>,
}

/// `len`, `is_empty` and `row` of a batch of `width`-wide rows (tables, waveforms).
macro_rules! dense_rows {
    ($batch:ident, $row:literal) => {
        impl<'a> $batch<'a> {
            pub fn len(&self) -> usize {
                self.labels.len()
            }

            pub fn is_empty(&self) -> bool {
                self.labels.is_empty()
            }

            #[doc = $row]
            pub fn row(&self, i: usize) -> &'a [f32] {
                &self.data[i * self.width..(i + 1) * self.width]
            }
        }
    };
}

dense_rows!(TableBatch, "Row `i`.");
dense_rows!(AudioBatch, "Waveform `i`.");

impl TableBatch<'_> {
    /// Makes `row`, a perturbed version of row `i`, keep every rule the host checks on a
    /// table row: [`project_row`] (immutable columns, bounds, integers, binaries, one-hot
    /// groups), then the pipeline's directions and relations.
    pub fn project(&self, i: usize, row: &mut [f32]) {
        let original = self.row(i);
        project_row(&self.features, original, row);
        self.constraints.apply(original, row);
    }
}

impl TextBatch<'_> {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// `$e` with `$b` bound to whichever typed batch `$batch` holds: for the fields every kind has.
macro_rules! any_kind {
    ($batch:expr, $b:ident => $e:expr) => {
        match $batch {
            Batch::Table($b) => $e,
            Batch::Audio($b) => $e,
            Batch::Text($b) => $e,
        }
    };
}

impl<'a> Batch<'a> {
    pub fn modality(&self) -> Modality {
        match self {
            Batch::Table(_) => Modality::Tabular,
            Batch::Audio(_) => Modality::Audio,
            Batch::Text(_) => Modality::Text,
        }
    }

    /// True labels, one per example.
    pub fn labels(&self) -> &'a [u32] {
        any_kind!(self, b => b.labels)
    }

    pub fn len(&self) -> usize {
        self.labels().len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels().is_empty()
    }

    /// The seed all of the call's randomness is drawn from.
    pub fn seed(&self) -> u64 {
        any_kind!(self, b => b.seed)
    }

    /// The host's query cap per example (`None`: no cap).
    pub fn query_budget(&self) -> Option<u64> {
        any_kind!(self, b => b.query_budget)
    }

    /// The table rows of a tabular batch.
    pub fn table(&self) -> Result<&TableBatch<'a>> {
        match self {
            Batch::Table(b) => Ok(b),
            other => Err(other.not("tabular")),
        }
    }

    /// The waveforms of an audio batch.
    pub fn audio(&self) -> Result<&AudioBatch<'a>> {
        match self {
            Batch::Audio(b) => Ok(b),
            other => Err(other.not("audio")),
        }
    }

    /// The texts of a text batch.
    pub fn text(&self) -> Result<&TextBatch<'a>> {
        match self {
            Batch::Text(b) => Ok(b),
            other => Err(other.not("text")),
        }
    }

    fn not(&self, wanted: &str) -> PluginError {
        let article = if wanted.starts_with('a') { "an" } else { "a" };
        PluginError(format!("{article} {wanted} attack was given {} examples", self.modality()))
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
        let (seed, query_budget) =
            (view.seed, (view.query_budget != abi::NO_QUERY_BUDGET).then_some(view.query_budget));
        match modality {
            Modality::Text => {
                let mut texts = Vec::new();
                // SAFETY: as above.
                for r in unsafe { slice(view.texts, n) } {
                    // SAFETY: each text of a valid view is `len` live bytes.
                    let bytes = unsafe { r.as_bytes() };
                    texts.push(
                        std::str::from_utf8(bytes)
                            .map_err(|e| PluginError(format!("text is not UTF-8: {e}")))?,
                    );
                }
                Ok(Batch::Text(TextBatch { labels, texts, seed, query_budget }))
            }
            Modality::Audio => Ok(Batch::Audio(AudioBatch {
                labels,
                // SAFETY: as above.
                data: unsafe { slice(view.data, n * view.width) },
                width: view.width,
                sample_rate: view.sample_rate,
                seed,
                query_budget,
            })),
            Modality::Tabular => {
                // SAFETY: a non-null `features` of a valid view holds `width` columns.
                let specs =
                    unsafe { slice(view.features, if view.features.is_null() { 0 } else { view.width }) };
                let features = specs
                    .iter()
                    // SAFETY: a column name of a valid view is `len` live bytes.
                    .map(|f| unsafe { Column::from_spec(f) })
                    .collect::<Result<Vec<_>>>()?;
                // SAFETY: the string of a valid view is `len` live bytes (or empty).
                let json = unsafe { view.constraints.as_bytes() };
                let constraints = if json.is_empty() {
                    TabularConstraints::default()
                } else {
                    let c: TabularConstraints = serde_json::from_slice(json)
                        .map_err(|e| PluginError(format!("the host's table constraints: {e}")))?;
                    c.validate(view.width)
                        .map_err(|e| PluginError(format!("the host's table constraints: {e}")))?;
                    c
                };
                Ok(Batch::Table(TableBatch {
                    labels,
                    // SAFETY: as above.
                    data: unsafe { slice(view.data, n * view.width) },
                    width: view.width,
                    features,
                    constraints,
                    seed,
                    query_budget,
                }))
            }
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
    /// Rows of `width` values, as in [`TableBatch::data`].
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

/// `len` values at `ptr`; none for a null or empty one (`from_raw_parts` wants a non-null
/// pointer even for zero values).
///
/// # Safety
/// `ptr` must be null or point to `len` valid `T`s for `'a`.
pub(crate) unsafe fn slice<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: non-null, and the caller promises `len` valid values for `'a`.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind offers its own parts and refuses the others' with an error naming both.
    #[test]
    fn a_batch_gives_its_own_kind_and_refuses_the_others() {
        let labels = [1u32, 0];
        let text = Batch::Text(TextBatch {
            labels: &labels,
            texts: vec!["a b", "c"],
            seed: 7,
            query_budget: Some(3),
        });
        assert_eq!(
            (text.modality(), text.len(), text.seed(), text.query_budget()),
            (Modality::Text, 2, 7, Some(3))
        );
        assert_eq!(text.text().unwrap().texts, ["a b", "c"]);
        assert_eq!(text.table().err().unwrap().0, "a tabular attack was given text examples");
        assert_eq!(text.audio().err().unwrap().0, "an audio attack was given text examples");

        let data = [0.1f32, 0.2, 0.3, 0.4];
        let audio = Batch::Audio(AudioBatch {
            labels: &labels,
            data: &data,
            width: 2,
            sample_rate: 8000,
            seed: 1,
            query_budget: None,
        });
        let a = audio.audio().unwrap();
        assert_eq!((a.row(1), a.sample_rate, audio.labels()), (&[0.3f32, 0.4][..], 8000, &labels[..]));
        assert!(audio.text().is_err() && audio.table().is_err());
    }
}
