//! # tempered-audio
//!
//! First-party audio attacks for Tempered, loaded by the engine like any third-party plugin.
//! A batch is `n` waveforms of `width` samples in [-1, 1] (the host pads with zeros / trims)
//! at `sample_rate`; every attack returns `n × width` finite samples in [-1, 1], and draws
//! all of its randomness from the batch seed, so a seeded run repeats.
//!
//! The host measures each adversarial row's SNR, `10·log10(Σx² / Σ(x_adv − x)²)` over the
//! whole row (padding included), and its L∞ distance, and counts violations of the attack's
//! budget. The SNR-budgeted attacks aim [`budget::SNR_MARGIN_DB`] above their floor and
//! re-check the stored `f32` row after clipping, so that count stays 0.
//!
//! ## `noise`: additive noise at an exact SNR
//!
//! ```toml
//! [[attack]]
//! plugin = "audio"
//! attack = "noise"
//! [attack.params]
//! kind = "pink"      # "white" (default) | "pink" (1/f) | "background" (another recording of the batch)
//! snr_db = 20        # required: the realised SNR of every row
//! ```
//!
//! ## `shift`: time shift and speed change
//!
//! ```toml
//! [[attack]]
//! plugin = "audio"
//! attack = "shift"
//! [attack.params]
//! max_shift = 0.1    # seconds, either way (default 0.1); zero-fill, not circular
//! max_stretch = 0.1  # speed factor drawn from [0.9, 1.1] (default 0: off)
//! ```
//!
//! Its budget is in samples (`round(max_shift · sample_rate)`), not dB: the host's SNR /
//! L∞ check does not apply to it.
//!
//! ## `fgsm`: one gradient step
//!
//! ```toml
//! [[attack]]
//! plugin = "audio"
//! attack = "fgsm"
//! [attack.params]
//! budget = "linf"        # "linf" | "snr"; default: inferred from epsilon / snr_db
//! epsilon = 0.005        # L∞: largest change of any sample, in amplitude units
//! random_start = false   # default false; true gives "fast" FGSM (step 1.25 × radius)
//! ```
//!
//! ## `pgd`: projected gradient ascent with restarts
//!
//! ```toml
//! [[attack]]
//! plugin = "audio"
//! attack = "pgd"
//! [attack.params]
//! budget = "snr"         # the perturbation's L2 norm stays ≤ ‖x‖₂ · 10^(−snr_db/20)
//! snr_db = 30
//! steps = 10             # default 10
//! # step_size: L∞ absolute (default 2.5·epsilon/steps); SNR a multiple of the row's radius (default 2.5/steps)
//! restarts = 1           # default 1; per example the run with the highest loss is kept
//! random_start = true    # default true
//! ```
//!
//! `pgd` asks exactly `steps × restarts` queries per example, one batched `loss_grad` per
//! step (see [`Pgd`] for how restarts are compared without another query).

pub mod budget;
pub mod gradient;
pub mod noise;
pub mod shift;

pub use gradient::{Fgsm, Pgd};
pub use noise::Noise;
pub use shift::Shift;

tempered_plugin::export_plugin! {
    name: "audio",
    version: env!("CARGO_PKG_VERSION"),
    modality: tempered_plugin::Modality::Audio,
    attacks: [Noise, Shift, Fgsm, Pgd],
}
