//! Finding, loading and calling attack plugins over the `tempered-plugin` C ABI.
//!
//! A library is checked in this order, and any failure is an error naming the plugin:
//! the file can be handed to the dynamic loader without crashing the process (a regular,
//! readable file; on ELF platforms a whole library of this host's class and byte order: see
//! `check_library`), it loads, it exports the entry symbol, the ABI version (read before
//! anything else) is one this engine speaks, the declaration is well formed. Loaded
//! libraries are never unloaded (as in polars): attack states and outputs may outlive any
//! one handle.
//!
//! A 1.1 attack declares its threat model ([`AttackHandle::threat`]); a 1.0 plugin's table
//! is read with the 1.0 layout and its budgets are reported as not verified.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

mod elf;
pub mod oracle;
mod search;

use std::collections::HashMap;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use tempered_plugin::abi::{
    self, ABI_VERSION, AttackDecl, BatchOut, BatchView, CreateFn, CreateInFn, ENTRY_SYMBOL, EntryFn,
    FeatureSpec, Modality, PerturbFn, PluginDecl, ReleaseFn, ReleaseOutputFn, StrRef, ThreatModelFn,
    abi_major, abi_minor, v1_0,
};
use tempered_plugin::{Column, ThreatModel};

use crate::data::Examples;
use crate::model::Classifier;
use crate::{Error, Result};

pub use oracle::QueryCounts;
pub use search::{FolderState, SearchPath, folder_state, library_file_names};

/// A loaded plugin.
#[derive(Debug, Clone)]
pub struct Plugin {
    pub path: PathBuf,
    pub name: String,
    pub version: String,
    pub modality: Modality,
    pub abi_version: u32,
    pub attacks: Vec<AttackInfo>,
    last_error: unsafe extern "C" fn() -> StrRef,
}

#[derive(Debug, Clone)]
pub struct AttackInfo {
    pub name: String,
    pub description: String,
    fns: AttackFns,
}

/// An attack's entry points, from either ABI minor's table layout. Function pointers only
/// (plain `Send + Sync` data), pointing into a library that is never unloaded.
#[derive(Clone, Copy)]
struct AttackFns {
    create: CreateFn,
    perturb: PerturbFn,
    release_output: ReleaseOutputFn,
    release: ReleaseFn,
    /// `None` for a 1.0 plugin (as is `create_in`).
    threat_model: Option<ThreatModelFn>,
    create_in: Option<CreateInFn>,
}

impl std::fmt::Debug for AttackFns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AttackFns")
    }
}

impl AttackFns {
    fn v1_1(a: &AttackDecl) -> Self {
        Self {
            create: a.create,
            perturb: a.perturb,
            release_output: a.release_output,
            release: a.release,
            threat_model: Some(a.threat_model),
            create_in: Some(a.create_in),
        }
    }

    fn v1_0(a: &v1_0::AttackDecl) -> Self {
        Self {
            create: a.create,
            perturb: a.perturb,
            release_output: a.release_output,
            release: a.release,
            threat_model: None,
            create_in: None,
        }
    }
}

pub fn format_abi(v: u32) -> String {
    format!("{}.{}", abi_major(v), abi_minor(v))
}

fn loaded() -> &'static Mutex<HashMap<PathBuf, Plugin>> {
    static LOADED: OnceLock<Mutex<HashMap<PathBuf, Plugin>>> = OnceLock::new();
    LOADED.get_or_init(Default::default)
}

impl Plugin {
    /// Loads the plugin library at `path` (once per process).
    pub fn load(path: &Path) -> Result<Plugin> {
        let key = path.canonicalize().unwrap_or_else(|_| path.to_owned());
        if let Some(p) = loaded().lock().expect("plugin registry").get(&key) {
            return Ok(p.clone());
        }
        let label = path.display().to_string();
        let fail = |msg: String| Error::plugin(&label, msg);
        elf::check_library(path)?;
        // SAFETY: `check_library` has just made sure the file is a regular file whose every
        // segment lies within it, so the loader cannot map a page past its end (a truncated
        // library raises SIGBUS there, killing the process); anything else wrong with it is an
        // error the loader returns. Loading runs the library's initialisers: plugins are
        // trusted code the user chose to run, like any dependency.
        let lib = unsafe { libloading::Library::new(path) }
            .map_err(|e| fail(format!("cannot load: {}", with_causes(&e))))?;
        let lib: &'static libloading::Library = Box::leak(Box::new(lib));
        // SAFETY: the symbol is declared by the ABI as `EntryFn`; a library exporting the
        // name with another type is not a Tempered plugin, which nothing can detect.
        let entry: EntryFn = unsafe {
            *lib.get::<EntryFn>(ENTRY_SYMBOL).map_err(|_| {
                fail(format!(
                    "no `{}` symbol: not a Tempered plugin, or one built for another ABI major \
                     (this engine speaks {})",
                    String::from_utf8_lossy(&ENTRY_SYMBOL[..ENTRY_SYMBOL.len() - 1]),
                    format_abi(ABI_VERSION)
                ))
            })?
        };
        // SAFETY: the entry function takes nothing and returns a pointer to static data.
        let decl_ptr = unsafe { entry() };
        if decl_ptr.is_null() {
            return Err(fail("the entry symbol returned a null declaration".into()));
        }
        // Only the version is read before it is checked: it is the one field whose place
        // every ABI version promises to keep.
        // SAFETY: non-null, and every ABI version's declaration starts with this `u32`.
        let version = unsafe { std::ptr::read(decl_ptr.cast::<u32>()) };
        if abi_major(version) != abi_major(ABI_VERSION) {
            return Err(fail(format!(
                "ABI version {} is not supported: this engine speaks {} (rebuild the plugin against \
                 tempered-plugin {}.x)",
                format_abi(version),
                format_abi(ABI_VERSION),
                abi_major(ABI_VERSION)
            )));
        }
        if abi_minor(version) > abi_minor(ABI_VERSION) {
            return Err(fail(format!(
                "built for ABI {}, newer than this engine's {}: its declaration may hold entries this \
                 engine cannot read. Update the engine, or build the plugin against a tempered-plugin \
                 that speaks ABI {}",
                format_abi(version),
                format_abi(ABI_VERSION),
                format_abi(ABI_VERSION)
            )));
        }
        // SAFETY: the version is 1.x with x no newer than ours, and `PluginDecl` has kept its
        // layout since 1.0 (only the attack table's entries grew).
        let decl: &PluginDecl = unsafe { &*decl_ptr };
        let modality = Modality::from_u32(decl.modality)
            .ok_or_else(|| fail(format!("unknown modality code {}", decl.modality)))?;
        // SAFETY: the declaration's strings are static data of the never-unloaded library.
        let text = |s: StrRef| unsafe { s.to_string_lossy() };
        let name = text(decl.name);
        if name.is_empty() {
            return Err(fail("the plugin declares an empty name".into()));
        }
        if decl.n_attacks > 0 && decl.attacks.is_null() {
            return Err(fail("the attack table is null".into()));
        }
        let attacks: Vec<AttackInfo> = if decl.n_attacks == 0 {
            Vec::new()
        } else if abi_minor(version) == 0 {
            // SAFETY: a 1.0 plugin's table holds `n_attacks` entries of the 1.0 layout.
            let table = unsafe {
                std::slice::from_raw_parts(decl.attacks.cast::<v1_0::AttackDecl>(), decl.n_attacks)
            };
            let info = |a: &v1_0::AttackDecl| AttackInfo {
                name: text(a.name),
                description: text(a.description),
                fns: AttackFns::v1_0(a),
            };
            table.iter().map(info).collect()
        } else {
            // SAFETY: a 1.1 plugin's table holds `n_attacks` entries of this layout.
            let table = unsafe { std::slice::from_raw_parts(decl.attacks, decl.n_attacks) };
            let info = |a: &AttackDecl| AttackInfo {
                name: text(a.name),
                description: text(a.description),
                fns: AttackFns::v1_1(a),
            };
            table.iter().map(info).collect()
        };
        let plugin = Plugin {
            path: key.clone(),
            name,
            version: text(decl.version),
            modality,
            abi_version: version,
            attacks,
            last_error: decl.last_error,
        };
        loaded().lock().expect("plugin registry").insert(key, plugin.clone());
        Ok(plugin)
    }

    fn last_error(&self) -> String {
        // SAFETY: the plugin's `last_error` takes nothing; its message is copied before the
        // next call into the plugin on this thread.
        unsafe { (self.last_error)().to_string_lossy() }
    }

    pub fn attack(&self, name: &str) -> Result<&AttackInfo> {
        self.attacks.iter().find(|a| a.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.attacks.iter().map(|a| a.name.as_str()).collect();
            Error::plugin(&self.name, format!("has no attack `{name}` (it offers: {})", names.join(", ")))
        })
    }

    /// Creates attack `name` with JSON `params`, and reads what it promises. Relative paths
    /// in the params resolve against `base_dir` (a 1.0 plugin: against the current folder).
    pub fn create(&self, name: &str, params: &serde_json::Value, base_dir: &Path) -> Result<AttackHandle> {
        let info = self.attack(name)?;
        if let Some(why) = special_file_param(params, base_dir, "params") {
            return Err(Error::plugin(&self.name, format!("attack `{name}`: {why}")));
        }
        let bytes = serde_json::to_vec(params).map_err(|e| Error::plugin(&self.name, e.to_string()))?;
        let mut state: *mut c_void = std::ptr::null_mut();
        let base = base_dir.to_string_lossy();
        let status = match info.fns.create_in {
            // SAFETY: `bytes` is `bytes.len()` bytes of JSON, `base` lives through the call,
            // and `state` is a writable slot.
            Some(create_in) => unsafe {
                create_in(bytes.as_ptr(), bytes.len(), StrRef::new(&base), &mut state)
            },
            // SAFETY: as above.
            None => unsafe { (info.fns.create)(bytes.as_ptr(), bytes.len(), &mut state) },
        };
        if status != abi::STATUS_OK {
            return Err(Error::plugin(
                &self.name,
                format!("attack `{name}`: {}", self.status_message(status)),
            ));
        }
        let mut handle = AttackHandle {
            plugin: self.clone(),
            attack: name.to_owned(),
            fns: info.fns,
            state,
            threat: None,
        };
        if let Some(threat_model) = info.fns.threat_model {
            handle.threat = Some(handle.read_threat(threat_model)?);
        }
        Ok(handle)
    }

    fn status_message(&self, status: abi::Status) -> String {
        let msg = self.last_error();
        match status {
            abi::STATUS_PANIC => format!("{msg} (the plugin panicked; the engine caught it)"),
            _ if msg.is_empty() => format!("failed with status {status} and no message"),
            _ => msg,
        }
    }
}

/// One created attack. Releases its state when dropped.
pub struct AttackHandle {
    pub plugin: Plugin,
    pub attack: String,
    fns: AttackFns,
    state: *mut c_void,
    /// What the attack promises; `None` for a 1.0 plugin, which cannot say.
    threat: Option<ThreatModel>,
}

// SAFETY: the ABI lets the host call a state from any thread, one call at a time (the
// plugin's states must not rely on thread-locals between calls), and the handle makes every
// call through `&mut self`. For Rust plugins `Attack: Send` also holds the state to it.
unsafe impl Send for AttackHandle {}

impl Drop for AttackHandle {
    fn drop(&mut self) {
        // SAFETY: the state from `create`, with no call in flight (we hold `&mut self`),
        // released once.
        unsafe { (self.fns.release)(self.state) };
    }
}

/// A table's columns, with their ABI form (derived from them) and the table's constraints.
pub struct Schema {
    columns: Vec<Column>,
    /// `columns` as [`FeatureSpec`]s, whose names point into `columns`.
    specs: Vec<FeatureSpec>,
    /// `TabularConstraints` as JSON; empty for none.
    constraints: String,
}

impl Schema {
    pub fn new(columns: Vec<Column>, constraints: &tempered_plugin::TabularConstraints) -> Self {
        let specs = columns.iter().map(Column::spec).collect();
        let constraints = if constraints.is_empty() {
            String::new()
        } else {
            // Indices, floats and enums: serializing cannot fail.
            serde_json::to_string(constraints).unwrap_or_default()
        };
        Self { columns, specs, constraints }
    }

    pub fn specs(&self) -> &[FeatureSpec] {
        &self.specs
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }
}

// SAFETY: the specs' names point into the heap buffers of `columns`' names, owned
// alongside and never mutated (the schema hands out only shared references): moving or
// sharing the schema moves or shares their target with them.
unsafe impl Send for Schema {}
// SAFETY: as for `Send`.
unsafe impl Sync for Schema {}

/// What a batch carries besides examples and labels.
#[derive(Clone, Copy)]
pub struct BatchContext<'a> {
    pub modality: Modality,
    pub schema: Option<&'a Schema>,
    pub sample_rate: u32,
    pub seed: u64,
    /// Stop answering an example's oracle calls past this many queries.
    pub query_budget: Option<u64>,
    /// Answers the oracle's `similarity` (text pipelines that name an encoder).
    pub encoder: Option<&'a dyn crate::model::SentenceEncoder>,
}

/// A perturbed batch and the oracle queries spent on each example.
pub struct PerturbOutcome {
    pub examples: Examples,
    pub queries: Vec<u64>,
}

impl AttackHandle {
    pub fn label(&self) -> String {
        format!("{}/{}", self.plugin.name, self.attack)
    }

    /// The budgets the attack declared, to be checked on its every example; `None` when the
    /// plugin predates threat models (ABI 1.0).
    pub fn threat(&self) -> Option<&ThreatModel> {
        self.threat.as_ref()
    }

    fn read_threat(&mut self, threat_model: ThreatModelFn) -> Result<ThreatModel> {
        let mut json = StrRef::empty();
        // SAFETY: the live state from `create`, one call at a time; `json` is writable.
        let status = unsafe { threat_model(self.state, &mut json) };
        if status != abi::STATUS_OK {
            return Err(self.fail(format!("threat model: {}", self.plugin.status_message(status))));
        }
        // SAFETY: the JSON lives in the state until the next call on it: copied right away.
        let bytes = unsafe { json.as_bytes() }.to_vec();
        let threat: ThreatModel = serde_json::from_slice(&bytes)
            .map_err(|e| self.fail(format!("its threat model is not one this engine reads: {e}")))?;
        threat.validate(self.plugin.modality).map_err(|e| self.fail(e))?;
        Ok(threat)
    }

    fn fail(&self, msg: impl std::fmt::Display) -> Error {
        Error::plugin(&self.plugin.name, format!("attack `{}`: {msg}", self.attack))
    }

    /// Perturbs `x` (true labels `y`) against `model`.
    pub fn perturb(
        &mut self,
        model: &dyn Classifier,
        x: &Examples,
        y: &[u32],
        ctx: BatchContext<'_>,
    ) -> Result<PerturbOutcome> {
        let n = y.len();
        if x.len() != n {
            return Err(Error::invalid(format!("{} examples but {n} labels", x.len())));
        }
        if let Examples::Stored(_) = x {
            // A plugin reads its batch from memory: the rows are read first. (The engine
            // hands attacks selected batches, which are never on disk.)
            let rows = x.select(&(0..n).collect::<Vec<_>>())?;
            return self.perturb(model, &rows, y, ctx);
        }
        let text_refs: Vec<StrRef> = match x {
            Examples::Text(t) => t.iter().map(|s| StrRef::new(s)).collect(),
            Examples::Dense { .. } | Examples::Stored(_) => Vec::new(),
        };
        let modality = ctx.modality;
        let (data, width) = match x {
            Examples::Dense { data, width } => (data.as_ptr(), *width),
            Examples::Text(_) | Examples::Stored(_) => (std::ptr::null(), 0),
        };
        if modality != self.plugin.modality {
            return Err(self.fail(format!(
                "is a {} attack, but this pipeline's examples are {modality}",
                self.plugin.modality
            )));
        }
        let view = BatchView {
            modality: modality as u32,
            n,
            width,
            data,
            texts: if text_refs.is_empty() { std::ptr::null() } else { text_refs.as_ptr() },
            labels: y.as_ptr(),
            example_ids: std::ptr::null(),
            sample_rate: ctx.sample_rate,
            features: ctx.schema.map_or(std::ptr::null(), |s| s.specs().as_ptr()),
            seed: ctx.seed,
            query_budget: ctx.query_budget.unwrap_or(abi::NO_QUERY_BUDGET),
            constraints: ctx.schema.map_or(StrRef::empty(), |s| StrRef::new(&s.constraints)),
        };
        let oracle = oracle::Oracle::new(model, ctx.encoder, n, ctx.query_budget);
        let vtable = oracle.vtable();
        let mut out = BatchOut::empty();
        // SAFETY: the live state, one call at a time (`&mut self`); the batch and what it
        // points to (`x`, `y`, `text_refs`, the schema), the oracle behind `vtable` and
        // `out` all outlive the call.
        let status = unsafe { (self.fns.perturb)(self.state, &view, &vtable, &mut out) };
        if status != abi::STATUS_OK {
            return Err(self.fail(self.plugin.status_message(status)));
        }
        let result = self.read_output(&out, x, n);
        // SAFETY: `out` is what this `perturb` wrote, released once, after it was copied.
        unsafe { (self.fns.release_output)(&mut out) };
        let examples = result?;
        Ok(PerturbOutcome { examples, queries: oracle.into_counts() })
    }

    /// Copies the plugin's answer out, refusing a wrong shape or non-finite values.
    fn read_output(&self, out: &BatchOut, x: &Examples, n: usize) -> Result<Examples> {
        match x {
            // (Rows on disk never get here: `perturb` reads them first.)
            Examples::Dense { .. } | Examples::Stored(_) => {
                let width = x.width().unwrap_or(0);
                let want = n * width;
                if out.data_len != want || (want > 0 && out.data.is_null()) {
                    return Err(self.fail(format!(
                        "returned {} values for {n} examples of width {width} (expected {want})",
                        out.data_len
                    )));
                }
                let data = if want == 0 {
                    Vec::new()
                } else {
                    // SAFETY: non-null and `data_len == want` values, alive until released.
                    unsafe { std::slice::from_raw_parts(out.data, want) }.to_vec()
                };
                if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                    return Err(self.fail(format!(
                        "returned a non-finite value ({}) for example {} at position {}",
                        data[i],
                        i / width,
                        i % width
                    )));
                }
                Ok(Examples::Dense { data, width })
            }
            Examples::Text(_) => {
                if out.n_texts != n || (n > 0 && out.texts.is_null()) {
                    return Err(self.fail(format!("returned {} texts for {n} examples", out.n_texts)));
                }
                let refs = if n == 0 {
                    &[][..]
                } else {
                    // SAFETY: non-null and `n_texts == n` strings, alive until released.
                    unsafe { std::slice::from_raw_parts(out.texts, n) }
                };
                let mut texts = Vec::with_capacity(n);
                for (i, r) in refs.iter().enumerate() {
                    // SAFETY: each string the plugin wrote is `len` live bytes until released.
                    let s = std::str::from_utf8(unsafe { r.as_bytes() })
                        .map_err(|e| self.fail(format!("returned invalid UTF-8 for example {i}: {e}")))?;
                    texts.push(s.to_owned());
                }
                Ok(Examples::Text(texts))
            }
        }
    }
}

/// An error and its causes, `: `-separated. libloading's own text is only "dlopen failed":
/// the loader's reason (`dlerror()`) is its source.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// A string param (at any depth) that names a FIFO, a socket or a device, said as
/// `params.key = "value": path is a FIFO, ...`. The host does not know which params a plugin
/// reads as files, but no plugin means such a file: a word list that is a FIFO would block
/// the plugin's read, and the run with it, forever.
fn special_file_param(v: &serde_json::Value, base_dir: &Path, at: &str) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.is_empty() && s.len() < 4096 && !s.contains('\n') => {
            let p = Path::new(s);
            let p = if p.is_absolute() { p.to_owned() } else { base_dir.join(p) };
            let t = std::fs::metadata(&p).ok()?.file_type();
            (!t.is_file() && !t.is_dir()).then(|| {
                format!(
                    "{at} = {s:?}: {} is {}, not a file; give a regular file",
                    p.display(),
                    crate::data::file_kind(&t)
                )
            })
        }
        serde_json::Value::Array(a) => {
            a.iter().enumerate().find_map(|(i, x)| special_file_param(x, base_dir, &format!("{at}[{i}]")))
        }
        serde_json::Value::Object(m) => {
            m.iter().find_map(|(k, x)| special_file_param(x, base_dir, &format!("{at}.{k}")))
        }
        _ => None,
    }
}

#[cfg(test)]
mod special_file_tests {
    use super::*;

    #[test]
    fn a_param_naming_a_fifo_is_refused_before_a_plugin_can_block_on_it() {
        let dir = std::env::temp_dir().join(format!("tempered-fifo-param-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("words.txt"), "a\n").unwrap();
        assert!(std::process::Command::new("mkfifo").arg(dir.join("syn.tsv")).status().unwrap().success());
        let ok = serde_json::json!({ "stopwords": "words.txt", "norm": "linf", "steps": 3, "lists": ["words.txt"] });
        assert_eq!(special_file_param(&ok, &dir, "params"), None);
        let bad = serde_json::json!({ "stopwords": "words.txt", "lists": ["words.txt", "syn.tsv"] });
        let why = special_file_param(&bad, &dir, "params").expect("refused");
        assert!(why.starts_with("params.lists[1] = \"syn.tsv\": ") && why.contains("is a FIFO"), "{why}");
        let dev = serde_json::json!({ "synonyms": "/dev/zero" });
        assert!(special_file_param(&dev, &dir, "params").unwrap().contains("a character device"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
