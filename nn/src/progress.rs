//! Progress for long phases: an indicatif bar with ETA when stdout is a terminal, plain
//! log lines (at most one every few seconds) when it is not, so CI logs stay readable.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    done: u64,
    started: Instant,
    last_log: Instant,
    quiet: bool,
}

const LOG_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    /// A progress indicator for `total` units of `label`.
    pub fn new(label: &str, total: u64) -> Self {
        let quiet = std::env::var_os("TEMPERED_QUIET").is_some();
        let bar = (!quiet && std::io::stdout().is_terminal()).then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{msg:<28} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_message(label.to_owned());
            bar
        });
        let now = Instant::now();
        Self { bar, label: label.to_owned(), total, done: 0, started: now, last_log: now, quiet }
    }

    pub fn set_message(&mut self, msg: &str) {
        self.label = msg.to_owned();
        if let Some(b) = &self.bar {
            b.set_message(msg.to_owned());
        }
    }

    pub fn inc(&mut self, n: u64) {
        self.done += n;
        if let Some(b) = &self.bar {
            b.inc(n);
        } else if !self.quiet && self.last_log.elapsed() >= LOG_EVERY {
            self.last_log = Instant::now();
            let secs = self.started.elapsed().as_secs_f64();
            let eta = if self.done > 0 {
                secs / self.done as f64 * (self.total - self.done.min(self.total)) as f64
            } else {
                0.0
            };
            tracing::info!("{}: {}/{} ({secs:.0} s, ETA {eta:.0} s)", self.label, self.done, self.total);
        }
    }

    /// Shows a line without breaking the bar.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None if !self.quiet => tracing::info!("{line}"),
            None => {}
        }
    }

    pub fn finish(self) -> Duration {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        self.started.elapsed()
    }
}
