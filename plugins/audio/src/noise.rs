//! `noise`: additive white, pink or background noise at an exact SNR.

use serde::Deserialize;
use tempered_plugin::{Attack, Batch, Budget, Oracle, Perturbed, Result, Rng, ThreatModel};

use crate::budget;

/// Keeps this attack's random stream apart from the others' when a pipeline chains attacks
/// under one seed.
const SALT: u64 = 0x6e6f_6973_6500_0001;

/// Long enough for the slowest pole of the pink filter (time constant ~880 samples) to
/// forget its zero start, so the first samples of a row are as pink as the rest.
const PINK_WARMUP: usize = 4096;

#[derive(Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NoiseKind {
    #[default]
    White,
    Pink,
    Background,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct NoiseParams {
    /// `"white"` (default), `"pink"` (1/f) or `"background"` (another recording of the batch).
    #[serde(default)]
    pub kind: NoiseKind,
    /// Target SNR in dB over the whole row (required).
    pub snr_db: f64,
}

/// Adds noise scaled per row so that `10·log10(Σx² / Σδ²)` equals `snr_db` (plus
/// [`budget::SNR_MARGIN_DB`]). Clipping to [-1, 1] is compensated by raising the noise, as
/// far as the headroom allows. A silent row has no SNR to hit and is returned unchanged.
pub struct Noise {
    kind: NoiseKind,
    snr_db: f64,
}

impl Attack for Noise {
    type Params = NoiseParams;
    const NAME: &'static str = "noise";
    const DESCRIPTION: &'static str =
        "additive white / pink / background (other recordings of the batch) noise at a target SNR";

    fn new(p: NoiseParams) -> Result<Self> {
        if !p.snr_db.is_finite() {
            return Err(format!("noise: snr_db must be a finite number of dB, got {}", p.snr_db).into());
        }
        Ok(Self { kind: p.kind, snr_db: p.snr_db })
    }

    /// The SNR the noise is mixed at (a floor, after clipping), and no model queries.
    fn threat_model(&self) -> ThreatModel {
        ThreatModel::new([Budget::SnrFloor { db: self.snr_db }, Budget::Queries { max: 0 }])
    }

    fn perturb(&mut self, batch: &Batch<'_>, _oracle: &Oracle<'_>) -> Result<Perturbed> {
        let batch = batch.audio()?;
        let (n, w) = (batch.len(), batch.width);
        let mut out = vec![0f32; n * w];
        if w == 0 {
            return Ok(Perturbed::Dense(out));
        }
        let mut rng = Rng::new(batch.seed ^ SALT);
        let mut noise = vec![0f32; w];
        // One offset for the whole batch: row i borrows row (i + k) mod n, a derangement.
        let offset = if n > 1 { 1 + rng.below(n - 1) } else { 0 };
        let loud: Vec<bool> = match self.kind {
            NoiseKind::Background => (0..n).map(|i| budget::energy(batch.row(i)) > 0.0).collect(),
            _ => Vec::new(),
        };
        for (i, out_row) in out.chunks_exact_mut(w).enumerate() {
            let x = batch.row(i);
            let radius = budget::l2_radius(x, self.snr_db);
            if radius == 0.0 {
                out_row.copy_from_slice(x);
                continue;
            }
            match self.kind {
                NoiseKind::White => white(&mut rng, &mut noise),
                NoiseKind::Pink => pink(&mut rng, &mut noise),
                NoiseKind::Background => {
                    // A silent partner cannot carry any SNR; try the next one along, and only
                    // when the batch has no other sound at all fall back to white noise.
                    let partner = (0..n).map(|j| (i + offset + j) % n).find(|&p| p != i && loud[p]);
                    match partner {
                        Some(p) => noise.copy_from_slice(batch.row(p)),
                        None => white(&mut rng, &mut noise),
                    }
                }
            }
            budget::mix_at_radius(x, &noise, radius, out_row);
        }
        Ok(Perturbed::Dense(out))
    }
}

fn white(rng: &mut Rng, out: &mut [f32]) {
    for v in out {
        *v = rng.normal();
    }
}

/// Paul Kellet's refined pink filter: six leaky integrators whose poles are spread so their
/// sum falls at 3 dB per octave (±0.05 dB) over all but the lowest ~0.02 % of the band.
/// Cheaper than Voss–McCartney per sample and with no stair-step artefacts.
fn pink(rng: &mut Rng, out: &mut [f32]) {
    let mut b = [0f32; 7];
    let mut next = |white: f32| {
        b[0] = 0.99886 * b[0] + white * 0.055_517_9;
        b[1] = 0.99332 * b[1] + white * 0.075_075_9;
        b[2] = 0.96900 * b[2] + white * 0.153_852;
        b[3] = 0.86650 * b[3] + white * 0.310_485_6;
        b[4] = 0.55000 * b[4] + white * 0.532_952_2;
        b[5] = -0.7616 * b[5] - white * 0.016_898;
        let pink = b[0] + b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + white * 0.5362;
        b[6] = white * 0.115_926;
        pink
    };
    for _ in 0..PINK_WARMUP {
        next(rng.normal());
    }
    for v in out {
        *v = next(rng.normal());
    }
}
