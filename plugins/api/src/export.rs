//! The `extern "C"` glue that [`export_plugin!`](crate::export_plugin) instantiates for
//! each [`Attack`]: every body runs inside `catch_unwind`, and errors land in a
//! thread-local the host reads through `last_error`.

// These functions are only ever called through the ABI's function pointers, whose
// contract (documented on `abi::AttackDecl`) is what makes the pointer arguments valid.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::any::Any;
use std::cell::RefCell;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::abi::{self, AttackDecl, BatchOut, BatchView, OracleVTable, Status, StrRef};
use crate::safe::{Attack, Batch, Oracle, Perturbed, PluginError};

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_error(msg: String) {
    LAST_ERROR.with(|e| *e.borrow_mut() = msg);
}

/// The plugin side's `last_error`. The pointer stays valid until the next call on this thread.
pub extern "C" fn last_error() -> StrRef {
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

pub extern "C" fn create<A: Attack>(params: *const u8, params_len: usize, state: *mut *mut c_void) -> Status {
    guarded("create", || {
        let bytes = if params.is_null() || params_len == 0 {
            &b"{}"[..]
        } else {
            unsafe { std::slice::from_raw_parts(params, params_len) }
        };
        let params: A::Params = serde_json::from_slice(bytes).map_err(|e| {
            // serde_json's "at line 1 column 10" points into JSON the user never wrote.
            let msg = e.to_string();
            let msg = msg.rsplit_once(" at line ").map_or(msg.as_str(), |(m, _)| m).to_owned();
            PluginError(format!("bad params for attack `{}`: {msg}", A::NAME))
        })?;
        let attack = A::new(params)?;
        unsafe { *state = Box::into_raw(Box::new(attack)).cast() };
        Ok(())
    })
}

pub extern "C" fn perturb<A: Attack>(
    state: *mut c_void,
    batch: *const BatchView,
    oracle: *const OracleVTable,
    out: *mut BatchOut,
) -> Status {
    guarded("perturb", || {
        if state.is_null() || batch.is_null() || oracle.is_null() || out.is_null() {
            return Err(PluginError("perturb called with a null pointer".into()));
        }
        let attack = unsafe { &mut *state.cast::<A>() };
        let view = unsafe { &*batch };
        let batch = unsafe { Batch::from_view(view)? };
        let oracle = Oracle::new(unsafe { &*oracle }, view);
        let result = attack.perturb(&batch, &oracle)?;
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
        unsafe { *out = answer };
        Ok(())
    })
}

pub extern "C" fn release_output(out: *mut BatchOut) {
    // A panic here could only come from the allocator; there is nothing to report it to.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if out.is_null() {
            return;
        }
        let out = unsafe { &mut *out };
        if !out.owner.is_null() {
            drop(unsafe { Box::from_raw(out.owner.cast::<Owned>()) });
        }
        *out = BatchOut::empty();
    }));
}

pub extern "C" fn release<A: Attack>(state: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if !state.is_null() {
            drop(unsafe { Box::from_raw(state.cast::<A>()) });
        }
    }));
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
