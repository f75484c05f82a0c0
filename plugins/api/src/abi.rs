//! The C ABI between the Tempered engine and an attack plugin.
//!
//! Everything here is `#[repr(C)]` plain data and `unsafe extern "C"` function pointers, so a
//! plugin built by another compiler version (or in another language) can be loaded. The
//! rules, learned from polars expression plugins and datafusion-ffi:
//!
//! * One exported symbol, [`ENTRY_SYMBOL`], returns a pointer to a static [`PluginDecl`].
//!   Its first field is the ABI version; the host reads that `u32` and nothing else until
//!   it has checked it, so the layout of everything after it may change between majors.
//! * Every function returns a [`Status`]; on error the message is read through
//!   `last_error` on the same side (plugin: [`PluginDecl::last_error`], host:
//!   [`OracleVTable::last_error`]).
//! * The side that allocates frees: a plugin's output lives until the host calls
//!   [`AttackDecl::release_output`]; an attack state until [`AttackDecl::release`].
//! * Options cross as bytes (JSON), which the plugin deserializes into its own serde struct.
//! * Every exported body runs inside `catch_unwind` (unwinding out of `extern "C"` aborts).
//! * Every function pointer is `unsafe` to call: its safety rests on the pointer arguments
//!   the caller passes, which only the documentation here describes.
//! * Threads: the host makes one call on an attack state at a time, but not always from
//!   the same thread, so a state must not keep thread-locals between calls. Inside
//!   `perturb`, the plugin may call the oracle from several threads at once (1.1): the
//!   host's oracle counts and answers each call on its own, and `last_error` is per
//!   thread on both sides.
//!
//! ## Versions
//!
//! 1.1 added, after every 1.0 field: [`AttackDecl::threat_model`] (what an attack promises,
//! checked by the host), [`AttackDecl::create_in`] (creation with the folder that relative
//! paths in params resolve against), [`BatchView::query_budget`] (the host's query cap),
//! [`BatchView::constraints`] (a table's directions and relations) and
//! [`OracleVTable::known_words`] (the model's vocabulary). A 1.1 host
//! reads a 1.0 plugin's attack table through [`v1_0::AttackDecl`] and reports its budgets
//! as not verified; a 1.0 plugin never reads past the 1.0 fields of a batch.

use std::ffi::c_void;

/// `major << 16 | minor`. A host accepts a plugin with the same major and a minor no newer
/// than its own.
pub const ABI_VERSION: u32 = abi_version(1, 1);

/// The symbol every plugin exports (NUL-terminated, as `libloading` wants it).
pub const ENTRY_SYMBOL: &[u8] = b"tempered_plugin_v1\0";

pub const fn abi_version(major: u16, minor: u16) -> u32 {
    ((major as u32) << 16) | minor as u32
}

pub const fn abi_major(version: u32) -> u16 {
    (version >> 16) as u16
}

pub const fn abi_minor(version: u32) -> u16 {
    (version & 0xffff) as u16
}

/// Return code of every ABI call.
pub type Status = i32;
pub const STATUS_OK: Status = 0;
pub const STATUS_ERROR: Status = 1;
pub const STATUS_PANIC: Status = 2;
/// An oracle call asked more rows for an example than its query budget has left (1.1).
/// Nothing in the call was answered or counted: the attack may ask for fewer rows, and
/// must return its best example so far for an example whose budget is spent.
pub const STATUS_QUERY_BUDGET: Status = 3;

/// A borrowed UTF-8 string: valid for as long as the owner documented at the use site.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct StrRef {
    pub ptr: *const u8,
    pub len: usize,
}

impl StrRef {
    pub const fn from_static(s: &'static str) -> Self {
        Self { ptr: s.as_ptr(), len: s.len() }
    }

    pub fn new(s: &str) -> Self {
        Self { ptr: s.as_ptr(), len: s.len() }
    }

    pub const fn empty() -> Self {
        Self { ptr: std::ptr::null(), len: 0 }
    }

    /// # Safety
    /// `ptr` must point to `len` bytes that stay alive and unchanged for `'a`.
    pub unsafe fn as_bytes<'a>(self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            // SAFETY: non-null, and the caller promises `len` live bytes for `'a`.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }

    /// Lossy: a plugin name or error message with bad UTF-8 is still worth showing.
    ///
    /// # Safety
    /// As [`StrRef::as_bytes`].
    pub unsafe fn to_string_lossy(self) -> String {
        // SAFETY: the caller's promise is `as_bytes`'s.
        String::from_utf8_lossy(unsafe { self.as_bytes() }).into_owned()
    }
}

/// What kind of examples an attack perturbs.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    Text = 0,
    Audio = 1,
    Tabular = 2,
}

impl Modality {
    const ALL: [Self; 3] = [Self::Text, Self::Audio, Self::Tabular];

    pub fn from_u32(v: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|&m| m as u32 == v)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Audio => "audio",
            Self::Tabular => "tabular",
        }
    }
}

impl std::fmt::Display for Modality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kind of a tabular feature, in [`FeatureSpec::kind`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureKind {
    Continuous = 0,
    Integer = 1,
    Binary = 2,
    /// One column of a one-hot group: see [`FeatureSpec::group`].
    Categorical = 3,
}

impl FeatureKind {
    const ALL: [Self; 4] = [Self::Continuous, Self::Integer, Self::Binary, Self::Categorical];

    pub fn from_u32(v: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|&k| k as u32 == v)
    }
}

/// One column of a tabular batch, in the units the plugin sees (raw, unstandardised): the
/// C form of a [`Column`](crate::Column), made by [`Column::spec`](crate::Column::spec) and
/// read back by [`Column::from_spec`](crate::Column::from_spec).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FeatureSpec {
    pub name: StrRef,
    /// A [`FeatureKind`] as `u32`.
    pub kind: u32,
    /// 0: the attacker may not touch it.
    pub mutable: u8,
    /// Inclusive bounds (may be ±inf).
    pub lower: f32,
    pub upper: f32,
    /// Attacker's cost per unit change (raw units).
    pub cost: f32,
    /// Standard deviation used by the model's standardisation: budgets "in standardised
    /// units" are multiplied by this to get raw units.
    pub scale: f32,
    /// One-hot group id for categorical columns (the columns of one group are one-hot
    /// together); -1 otherwise.
    pub group: i32,
}

/// A batch of examples, borrowed for the duration of one call.
///
/// Dense modalities (audio, tabular) fill `data` with `n * width` row-major `f32`s; text
/// fills `texts` with `n` strings. `labels` always has `n` entries. `example_ids` maps each
/// row to the example of the attack's input batch it stands for; the host counts oracle
/// queries per example through it (null means row `i` is example `i`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BatchView {
    pub modality: u32,
    pub n: usize,
    pub width: usize,
    pub data: *const f32,
    pub texts: *const StrRef,
    pub labels: *const u32,
    pub example_ids: *const u32,
    /// Audio: samples per second; 0 otherwise.
    pub sample_rate: u32,
    /// Tabular: `width` column descriptions; null otherwise.
    pub features: *const FeatureSpec,
    /// A seed for this batch: a plugin draws all its randomness from it, so runs repeat.
    pub seed: u64,
    /// (1.1) The most oracle rows the host answers for each example of this batch;
    /// [`NO_QUERY_BUDGET`] for no cap. Set in `perturb`'s batch only: the host ignores it in
    /// the views a plugin passes to the oracle (a 1.0 plugin's views end before it).
    pub query_budget: u64,
    /// (1.1) Tabular: the pipeline's directions and relations as JSON
    /// (`tempered_plugin::TabularConstraints`); empty for none. Set in `perturb`'s batch
    /// only, like `query_budget`.
    pub constraints: StrRef,
}

/// [`BatchView::query_budget`] when the host sets no cap.
pub const NO_QUERY_BUDGET: u64 = u64::MAX;

/// A plugin's answer to `perturb`: owned by the plugin until `release_output`.
#[repr(C)]
#[derive(Debug)]
pub struct BatchOut {
    /// Dense: `n * width` values, same layout as the input.
    pub data: *const f32,
    pub data_len: usize,
    /// Text: `n` strings.
    pub texts: *const StrRef,
    pub n_texts: usize,
    /// The plugin's allocation behind the pointers above.
    pub owner: *mut c_void,
}

impl BatchOut {
    pub const fn empty() -> Self {
        Self {
            data: std::ptr::null(),
            data_len: 0,
            texts: std::ptr::null(),
            n_texts: 0,
            owner: std::ptr::null_mut(),
        }
    }
}

/// The host's model, as a plugin sees it. Every call counts one query per row, attributed
/// to the example named in `BatchView::example_ids`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OracleVTable {
    pub ctx: *mut c_void,
    pub n_classes: usize,
    /// Class probabilities: writes `n * n_classes` values into `out` (`out_len` of them).
    pub predict: unsafe extern "C" fn(
        ctx: *mut c_void,
        input: *const BatchView,
        out: *mut f32,
        out_len: usize,
    ) -> Status,
    /// Cross-entropy of `input.labels` and its gradient with respect to the input.
    /// Dense: `grad` gets `n * width` values (raw units). Text: `grad` gets `n * width`
    /// word saliencies (`width` = the most whitespace-separated words of any row, padded
    /// with 0). `loss` gets `n` values.
    pub loss_grad: unsafe extern "C" fn(
        ctx: *mut c_void,
        input: *const BatchView,
        loss: *mut f32,
        grad: *mut f32,
        grad_len: usize,
    ) -> Status,
    /// Text only: cosine similarity of sentence embeddings of `a[i]` and `b[i]` for
    /// `i < n`, written to `out`. Fails when the pipeline names no sentence encoder.
    pub similarity: unsafe extern "C" fn(
        ctx: *mut c_void,
        a: *const StrRef,
        b: *const StrRef,
        n: usize,
        out: *mut f32,
    ) -> Status,
    /// The message of the last failed call on this thread, valid until the next oracle
    /// call on this thread.
    pub last_error: unsafe extern "C" fn(ctx: *mut c_void) -> StrRef,
    /// (1.1) Text only: for each of the `n` words, 1 when the model reads it as itself, 0
    /// when as its unknown token, written to `out`. Not counted as a query.
    pub known_words:
        unsafe extern "C" fn(ctx: *mut c_void, words: *const StrRef, n: usize, out: *mut u8) -> Status,
}

/// Builds an attack from JSON `params` (`params_len` bytes, UTF-8); writes an opaque state
/// to `*state`.
pub type CreateFn =
    unsafe extern "C" fn(params: *const u8, params_len: usize, state: *mut *mut c_void) -> Status;
/// Perturbs `batch`; the same modality and shape come back in `*out`. `state` came from
/// `create`; the host makes one call on a state at a time.
pub type PerturbFn = unsafe extern "C" fn(
    state: *mut c_void,
    batch: *const BatchView,
    oracle: *const OracleVTable,
    out: *mut BatchOut,
) -> Status;
/// Frees what a successful `perturb` wrote to `*out`, and empties it.
pub type ReleaseOutputFn = unsafe extern "C" fn(out: *mut BatchOut);
/// Frees a state from `create`. The state is not used again.
pub type ReleaseFn = unsafe extern "C" fn(state: *mut c_void);
/// (1.1) [`CreateFn`], with `base_dir` (UTF-8, valid for the call): the folder the
/// pipeline's own relative paths resolve against, for relative paths in `params`.
pub type CreateInFn = unsafe extern "C" fn(
    params: *const u8,
    params_len: usize,
    base_dir: StrRef,
    state: *mut *mut c_void,
) -> Status;
/// (1.1) Writes the attack's threat model, as JSON (`tempered_plugin::ThreatModel`), to
/// `*out`: valid until the next call on `state` or its release.
pub type ThreatModelFn = unsafe extern "C" fn(state: *mut c_void, out: *mut StrRef) -> Status;

/// One attack a plugin offers.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct AttackDecl {
    pub name: StrRef,
    pub description: StrRef,
    pub create: CreateFn,
    pub perturb: PerturbFn,
    pub release_output: ReleaseOutputFn,
    pub release: ReleaseFn,
    /// (1.1)
    pub threat_model: ThreatModelFn,
    /// (1.1) The host creates 1.1 attacks through this rather than `create`.
    pub create_in: CreateInFn,
}

/// The layouts of ABI 1.0 that changed in 1.1, so a 1.1 host can read a 1.0 plugin.
pub mod v1_0 {
    use super::*;

    /// An attack of a 1.0 plugin: [`super::AttackDecl`] without `threat_model`. The
    /// stride of a 1.0 attack table is this struct's size.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct AttackDecl {
        pub name: StrRef,
        pub description: StrRef,
        pub create: CreateFn,
        pub perturb: PerturbFn,
        pub release_output: ReleaseOutputFn,
        pub release: ReleaseFn,
    }
}

/// What [`ENTRY_SYMBOL`] returns. `abi_version` must stay the first field forever.
#[repr(C)]
pub struct PluginDecl {
    pub abi_version: u32,
    /// A [`Modality`] as `u32`.
    pub modality: u32,
    pub name: StrRef,
    pub version: StrRef,
    pub attacks: *const AttackDecl,
    pub n_attacks: usize,
    /// The message of the last failed call on this thread, valid until the next call into
    /// the plugin on this thread.
    pub last_error: unsafe extern "C" fn() -> StrRef,
}

// SAFETY: a declaration is immutable static data: string literals and function pointers,
// never written after the plugin builds it, so sharing it between threads is sound.
unsafe impl Sync for PluginDecl {}
// SAFETY: as for `PluginDecl`.
unsafe impl Sync for AttackDecl {}
// SAFETY: as for `PluginDecl`.
unsafe impl Sync for v1_0::AttackDecl {}

/// The signature of [`ENTRY_SYMBOL`].
pub type EntryFn = unsafe extern "C" fn() -> *const PluginDecl;
