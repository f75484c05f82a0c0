//! The training memory a model needs, estimated from the file alone, so that a model the
//! machine cannot hold is refused before anything is trained.

use super::Spec;
use super::span::{AtKey, keys};
use crate::model::audio::AudioModelConfig;
use crate::model::mlp::TabularModelKind;
use crate::model::text::{TextModelConfig, TextModelKind};

/// Bytes per trained parameter: the weight, its gradient and AdamW's two moments.
const BYTES_PER_PARAM: f64 = 16.0;
/// Bytes per activation kept for the backward pass: the value and its gradient.
const BYTES_PER_ACTIVATION: f64 = 8.0;
/// The memory limit where /proc/meminfo cannot be read.
const FALLBACK_MEMORY: u64 = 64 << 30;

/// A lower bound on what training a model takes: the data's width, class count and
/// vocabulary are unknown before the data is read, so the smallest values stand in.
struct Footprint {
    params: f64,
    /// Per example.
    activations: f64,
}

impl Footprint {
    fn bytes(&self, batch: usize) -> f64 {
        self.params * BYTES_PER_PARAM + self.activations * batch as f64 * BYTES_PER_ACTIVATION
    }
}

fn mlp_footprint(width: usize, hidden: &[usize]) -> Footprint {
    let mut dims = vec![width as f64];
    dims.extend(hidden.iter().map(|&h| h as f64));
    dims.push(2.0);
    Footprint { params: dims.windows(2).map(|d| (d[0] + 1.0) * d[1]).sum(), activations: dims.iter().sum() }
}

/// The M5's shapes as `model::audio` builds them (first conv `kernel`/`stride`, then kernel 3
/// with one zero each side; max-pool after each), for waveforms of `length` samples.
fn m5_footprint(m: &AudioModelConfig, length: usize) -> Footprint {
    let per_norm = if m.norm == crate::model::audio::Norm::Batch { 2.0 } else { 1.0 };
    let (mut params, mut c_in) = (0.0, 1.0);
    for (i, &c) in m.channels.iter().enumerate() {
        let k = if i == 0 { m.kernel as f64 } else { 3.0 };
        params += c as f64 * k * c_in + per_norm * c as f64;
        c_in = c as f64;
    }
    params += (c_in + 1.0) * 2.0;
    let mut activations = length as f64;
    if length >= m.kernel && m.stride > 0 && m.pool > 0 {
        let mut l_in = length + (m.stride - (length - m.kernel) % m.stride) % m.stride;
        for (i, &c) in m.channels.iter().enumerate() {
            let (k, s, pad) = if i == 0 { (m.kernel, m.stride, 0) } else { (3, 1, 1) };
            let Some(span) = (l_in + 2 * pad).checked_sub(k) else { break };
            let t_out = span / s + 1;
            let p_out = t_out / m.pool;
            // The conv output, then the pooled values, their argmax and the normalised output.
            activations += (t_out + 3 * p_out) as f64 * c as f64;
            l_in = p_out;
        }
    }
    Footprint { params, activations }
}

fn word_cnn_footprint(m: &TextModelConfig) -> Footprint {
    let (d, f, words) = (m.embedding_dim as f64, m.filters as f64, m.max_words as f64);
    let convs: f64 = m.widths.iter().map(|&w| w as f64 * d * f + f).sum();
    let features = f * m.widths.len() as f64;
    Footprint {
        // [PAD] and [UNK] at least in the vocabulary, two classes at least.
        params: 2.0 * d + convs + (features + 1.0) * 2.0,
        activations: words * d + words * features,
    }
}

/// MemAvailable of /proc/meminfo in bytes.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `1.5 GiB`.
fn human(bytes: f64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{v:.0} bytes") } else { format!("{v:.1} {}", units[u]) }
}

/// Refuses a model whose estimated training memory is more than the machine has: such a
/// model would abort on allocation, possibly hours in.
pub(super) fn check_footprint(spec: &Spec) -> std::result::Result<(), AtKey> {
    let batch =
        spec.attacks().iter().map(|a| a.batch_size).chain([spec.train().batch_size]).max().unwrap_or(1);
    let (fp, key) = match spec {
        Spec::Tabular(s) => {
            let hidden: &[usize] = match s.model.kind {
                TabularModelKind::Mlp => &s.model.hidden,
                TabularModelKind::Logistic => &[],
            };
            let width = s.data.features.as_ref().map_or(1, Vec::len);
            (mlp_footprint(width, hidden), keys(&["model", "hidden"]))
        }
        Spec::Text(s) if s.model.kind == TextModelKind::WordCnn => {
            (word_cnn_footprint(&s.model), keys(&["model"]))
        }
        Spec::Text(_) => return Ok(()),
        Spec::Audio(s) => (m5_footprint(&s.model, s.data.length), keys(&["model", "channels"])),
    };
    let need = fp.bytes(batch);
    let (limit, what) = match available_memory() {
        Some(b) => (b as f64, "what this machine has available (MemAvailable in /proc/meminfo)"),
        None => (FALLBACK_MEMORY as f64, "the fixed cap used where /proc/meminfo cannot be read"),
    };
    if need > limit {
        return Err(AtKey::new(
            key,
            format!(
                "this model needs about {} to train ({:.3e} parameters × {BYTES_PER_PARAM} bytes, plus {:.3e} activations per example × {batch} examples per batch × {BYTES_PER_ACTIVATION} bytes), more than the {} that is {what}; make it smaller",
                human(need),
                fp.params,
                fp.activations,
                human(limit)
            ),
        ));
    }
    Ok(())
}
