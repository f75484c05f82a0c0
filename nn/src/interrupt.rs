//! SIGINT and SIGTERM: let the file write in flight finish, say how to resume, and exit
//! with the conventional status (130, 143).
//!
//! Every epoch ends in one atomic commit and every output is written atomically
//! ([`crate::files`]), so stopping between two writes loses at most the epoch or the
//! attack in progress, which `--resume` redoes from the same seed.

use std::sync::Mutex;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// What to tell the user when interrupted; set once the run directory exists.
static RESUME_HINT: Mutex<Option<String>> = Mutex::new(None);

/// Records the command that continues the current run.
pub fn set_resume_hint(hint: String) {
    *RESUME_HINT.lock().unwrap_or_else(|e| e.into_inner()) = Some(hint);
}

/// Installs the handler (once per process; the binary calls it, library users may not
/// want their signals taken).
pub fn install() -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new().name("tempered-signals".into()).spawn(move || {
        if let Some(signal) = signals.forever().next() {
            // Waits for the write in flight; no new one starts while this is held.
            let _quiet = crate::files::WRITES.write().unwrap_or_else(|e| e.into_inner());
            let name = if signal == SIGINT { "SIGINT" } else { "SIGTERM" };
            let hint = RESUME_HINT.lock().unwrap_or_else(|e| e.into_inner()).clone();
            match hint {
                Some(h) => eprintln!(
                    "\ninterrupted ({name}): finished phases and epochs are saved; continue with\n  {h}"
                ),
                None => eprintln!("\ninterrupted ({name})"),
            }
            std::process::exit(128 + signal);
        }
    })?;
    Ok(())
}
