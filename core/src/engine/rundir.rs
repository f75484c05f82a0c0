//! The run directory: `<out_dir>/<pipeline>/<timestamp>/` with the resolved config,
//! checkpoints, metrics, report, plots and samples.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use super::RunOptions;
use crate::pipeline::Pipeline;
use crate::{Error, Result};

pub struct RunDir {
    pub path: PathBuf,
}

const CONFIG: &str = "config.toml";

impl RunDir {
    pub fn create(pipeline: &Pipeline, opts: &RunOptions) -> Result<Self> {
        let resolved = format!(
            "# Resolved from {} (every default spelled out).\n{}",
            pipeline.file.display(),
            pipeline.spec.to_toml()?
        );
        let path = match &opts.out {
            Some(p) => p.clone(),
            None => {
                let root = pipeline.resolve(&pipeline.spec.pipeline().out_dir).join(pipeline.name());
                let mut p = root.join(timestamp());
                let mut k = 1;
                while p.exists() {
                    k += 1;
                    p = root.join(format!("{}-{k}", timestamp()));
                }
                p
            }
        };
        let config = path.join(CONFIG);
        if opts.resume {
            let saved = std::fs::read_to_string(&config).map_err(|e| {
                Error::msg(format!("cannot resume {}: {} ({e})", path.display(), config.display()))
            })?;
            if body(&saved) != body(&resolved) {
                return Err(Error::msg(format!(
                    "cannot resume {}: the pipeline changed since the run started (compare {})",
                    path.display(),
                    config.display()
                )));
            }
        } else {
            let busy = std::fs::read_dir(&path).map(|mut d| d.next().is_some()).unwrap_or(false);
            if busy {
                return Err(Error::msg(format!(
                    "{} already holds a run: pass --resume to continue it, or choose another --out",
                    path.display()
                )));
            }
            std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
            std::fs::write(&config, resolved).map_err(|e| Error::io(&config, e))?;
        }
        let dir = Self { path };
        std::fs::create_dir_all(dir.checkpoints()).map_err(|e| Error::io(dir.checkpoints(), e))?;
        Ok(dir)
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.path.join("checkpoints")
    }
}

/// The config without its header comment (which names the file it came from).
fn body(s: &str) -> &str {
    s.split_once('\n').map_or(s, |(_, rest)| rest)
}

/// `YYYYMMDD-HHMMSS` in UTC.
pub fn timestamp() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}
