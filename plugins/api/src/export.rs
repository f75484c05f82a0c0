//! The `extern "C"` glue that [`export_plugin!`](crate::export_plugin) instantiates for
//! each [`Attack`]: every body runs inside `catch_unwind`, and errors land in a
//! thread-local the host reads through `last_error`.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::abi::{self, AttackDecl, BatchOut, BatchView, OracleVTable, Status, StrRef};
use crate::safe::{Attack, Batch, Oracle, Perturbed, PluginError};
use crate::threat::ThreatModel;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_error(msg: String) {
    LAST_ERROR.with(|e| *e.borrow_mut() = msg);
}

/// The plugin side's `last_error`. The pointer stays valid until the next call on this thread.
///
/// # Safety
/// None needed: it takes nothing. It is `unsafe` only to match the ABI's pointer type.
pub unsafe extern "C" fn last_error() -> StrRef {
    // The String lives in this thread's slot and is only replaced by `set_error`, which runs
    // inside a later call on this thread.
    LAST_ERROR.with(|e| StrRef::new(e.borrow().as_str()))
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

/// Runs `f`, turning an error or a panic into a status code and a stored message.
fn guarded(what: &str, f: impl FnOnce() -> Result<(), PluginError>) -> Status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => abi::STATUS_OK,
        Ok(Err(e)) => {
            set_error(e.0);
            abi::STATUS_ERROR
        }
        Err(payload) => {
            set_error(format!("panicked in {what}: {}", panic_message(payload.as_ref())));
            abi::STATUS_PANIC
        }
    }
}

/// Keeps a perturbed batch alive behind the pointers handed to the host.
struct Owned {
    _data: Vec<f32>,
    _texts: Vec<String>,
    _refs: Vec<StrRef>,
}

/// What `create` hands the host as the opaque state: the attack, and the JSON of its
/// threat model kept alive behind the pointer `threat_model` returns.
struct State<A> {
    attack: A,
    threat_json: String,
}

/// # Safety
/// `params` must be null or point to `params_len` readable bytes; `state` must be null or
/// point to a writable pointer. (The ABI's `create`.)
pub unsafe extern "C" fn create<A: Attack>(
    params: *const u8,
    params_len: usize,
    state: *mut *mut c_void,
) -> Status {
    // SAFETY: the caller's promises are `create_in`'s, with no base folder.
    unsafe { create_in::<A>(params, params_len, StrRef::empty(), state) }
}

/// # Safety
/// As [`create`]; `base_dir` must be empty or `len` live UTF-8 bytes for the call. (The
/// ABI's `create_in`.)
pub unsafe extern "C" fn create_in<A: Attack>(
    params: *const u8,
    params_len: usize,
    base_dir: StrRef,
    state: *mut *mut c_void,
) -> Status {
    guarded("create", || {
        if state.is_null() {
            return Err(PluginError("create called with a null state pointer".into()));
        }
        let bytes = if params.is_null() || params_len == 0 {
            &b"{}"[..]
        } else {
            // SAFETY: non-null, and the host promises `params_len` bytes for this call.
            unsafe { std::slice::from_raw_parts(params, params_len) }
        };
        // SAFETY: the host promises `len` live bytes for the call; copied right away.
        let base = String::from_utf8_lossy(unsafe { base_dir.as_bytes() }).into_owned();
        let params: A::Params = crate::paths::with_base_dir(&base, || serde_json::from_slice(bytes))
            .map_err(|e| {
                // serde_json's "at line 1 column 10" points into JSON the user never wrote.
                let msg = e.to_string();
                let msg = msg.rsplit_once(" at line ").map_or(msg.as_str(), |(m, _)| m).to_owned();
                PluginError(format!("bad params for attack `{}`: {msg}", A::NAME))
            })?;
        let attack = A::new(params)?;
        let boxed = Box::new(State { attack, threat_json: String::new() });
        // SAFETY: checked non-null above; the host gives a writable slot.
        unsafe { *state = Box::into_raw(boxed).cast() };
        Ok(())
    })
}

/// # Safety
/// `state` must come from `create::<A>` and not be released, with no other call on it in
/// flight; `batch`, `oracle` and `out` must be null or valid for the call, as documented on
/// [`BatchView`], [`OracleVTable`] and [`BatchOut`]. (The ABI's `perturb`.)
pub unsafe extern "C" fn perturb<A: Attack>(
    state: *mut c_void,
    batch: *const BatchView,
    oracle: *const OracleVTable,
    out: *mut BatchOut,
) -> Status {
    guarded("perturb", || {
        if state.is_null() || batch.is_null() || oracle.is_null() || out.is_null() {
            return Err(PluginError("perturb called with a null pointer".into()));
        }
        // SAFETY: `state` is a live `State<A>` from `create::<A>`, used by one call at a time.
        let state = unsafe { &mut *state.cast::<State<A>>() };
        // SAFETY: the host keeps the batch and what it points to alive for the call.
        let view = unsafe { &*batch };
        // SAFETY: as above: `view` is valid as documented on `BatchView` for the call.
        let batch = unsafe { Batch::from_view(view)? };
        // SAFETY: the host keeps its oracle table alive for the call.
        let oracle = Oracle::new(unsafe { &*oracle }, view);
        let result = state.attack.perturb(&batch, &oracle)?;
        let owned = match result {
            Perturbed::Dense(data) => Owned { _data: data, _texts: Vec::new(), _refs: Vec::new() },
            Perturbed::Text(texts) => {
                let refs = texts.iter().map(|s| StrRef::new(s)).collect();
                Owned { _data: Vec::new(), _texts: texts, _refs: refs }
            }
        };
        let owned = Box::new(owned);
        let answer = BatchOut {
            data: owned._data.as_ptr(),
            data_len: owned._data.len(),
            texts: owned._refs.as_ptr(),
            n_texts: owned._refs.len(),
            owner: Box::into_raw(owned).cast(),
        };
        // SAFETY: checked non-null above; the host gives a writable `BatchOut`.
        unsafe { *out = answer };
        Ok(())
    })
}

/// # Safety
/// `out` must be null or a `BatchOut` written by this plugin's `perturb` and not yet
/// released. (The ABI's `release_output`.)
pub unsafe extern "C" fn release_output(out: *mut BatchOut) {
    // A panic here could only come from the allocator; there is nothing to report it to.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if out.is_null() {
            return;
        }
        // SAFETY: non-null and written by `perturb`, as the caller promises.
        let out = unsafe { &mut *out };
        if !out.owner.is_null() {
            // SAFETY: `owner` is the `Box<Owned>` that `perturb` leaked, released once: the
            // `BatchOut` is emptied below.
            drop(unsafe { Box::from_raw(out.owner.cast::<Owned>()) });
        }
        *out = BatchOut::empty();
    }));
}

/// # Safety
/// `state` must be null or come from `create::<A>`, with no call on it in flight; it is
/// not used again. (The ABI's `release`.)
pub unsafe extern "C" fn release<A: Attack>(state: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if !state.is_null() {
            // SAFETY: the `Box<State<A>>` leaked by `create::<A>`, released once.
            drop(unsafe { Box::from_raw(state.cast::<State<A>>()) });
        }
    }));
}

/// # Safety
/// As [`perturb`] for `state`; `out` must be null or writable. (The ABI's `threat_model`.)
pub unsafe extern "C" fn threat_model<A: Attack>(state: *mut c_void, out: *mut StrRef) -> Status {
    guarded("threat_model", || {
        if state.is_null() || out.is_null() {
            return Err(PluginError("threat_model called with a null pointer".into()));
        }
        // SAFETY: a live `State<A>` from `create::<A>`, used by one call at a time.
        let state = unsafe { &mut *state.cast::<State<A>>() };
        let threat: ThreatModel = state.attack.threat_model();
        state.threat_json = serde_json::to_string(&threat).map_err(|e| PluginError(e.to_string()))?;
        // SAFETY: checked non-null above. The string stays in `state` until the next call.
        unsafe { *out = StrRef::new(&state.threat_json) };
        Ok(())
    })
}

/// The table entry for one attack type.
pub const fn attack_decl<A: Attack>() -> AttackDecl {
    AttackDecl {
        name: StrRef::from_static(A::NAME),
        description: StrRef::from_static(A::DESCRIPTION),
        create: create::<A>,
        perturb: perturb::<A>,
        release_output,
        release: release::<A>,
        threat_model: threat_model::<A>,
        create_in: create_in::<A>,
    }
}

/// Declares a plugin: its name, version, modality and attacks. Expands to the one exported
/// symbol the engine looks for.
///
/// ```ignore
/// tempered_plugin::export_plugin! {
///     name: "my-attacks",
///     version: env!("CARGO_PKG_VERSION"),
///     modality: tempered_plugin::Modality::Tabular,
///     attacks: [MyAttack],
/// }
/// ```
#[macro_export]
macro_rules! export_plugin {
    (name: $name:expr, version: $version:expr, modality: $modality:expr, attacks: [$($attack:ty),+ $(,)?] $(,)?) => {
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub extern "C" fn tempered_plugin_v1() -> *const $crate::abi::PluginDecl {
            static ATTACKS: &[$crate::abi::AttackDecl] = &[$($crate::export::attack_decl::<$attack>()),+];
            static DECL: $crate::abi::PluginDecl = $crate::abi::PluginDecl {
                abi_version: $crate::abi::ABI_VERSION,
                modality: $modality as u32,
                name: $crate::abi::StrRef::from_static($name),
                version: $crate::abi::StrRef::from_static($version),
                attacks: ATTACKS.as_ptr(),
                n_attacks: ATTACKS.len(),
                last_error: $crate::export::last_error,
            };
            &DECL
        }
    };
}
