//! `pipelines/speech-small.toml` end to end through the real `tempered-audio` cdylib, the
//! host's budget checks on every adversarial waveform, and the wav loader's formats and
//! bad files.

mod common;

use std::path::{Path, PathBuf};

use tempered_core::data::audio::{self, Align, AudioDataConfig, AudioSplitConfig, OnBadFile};
use tempered_core::engine::{self, RunOptions};
use tempered_core::pipeline::Pipeline;
use tempered_tests::{
    assert_first_party_attack, assert_phases_timed, assert_reproducible, assert_run_files,
    golden_run_metrics, pipeline_file, repo_pipeline, scratch,
};

use common::run_repo_pipeline;

fn run_small(out: &Path) -> engine::Finished {
    run_repo_pipeline("speech-small.toml", out)
}

fn read_wav(path: &Path) -> (u32, Vec<f32>) {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rate = r.spec().sample_rate;
    (rate, r.samples::<f32>().map(Result::unwrap).collect())
}

/// SNR (dB) and L∞ of `adv` against `x`, computed here, independently of the host's judge.
fn snr_linf(x: &[f32], adv: &[f32]) -> (f64, f64) {
    let signal: f64 = x.iter().map(|&v| f64::from(v).powi(2)).sum();
    let noise: f64 = x.iter().zip(adv).map(|(&a, &b)| (f64::from(b) - f64::from(a)).powi(2)).sum();
    let linf = x.iter().zip(adv).map(|(&a, &b)| (f64::from(b) - f64::from(a)).abs()).fold(0.0, f64::max);
    (10.0 * (signal / noise).log10(), linf)
}

/// Clean / adversarial pairs saved under `samples/<folder>/`.
fn wav_pairs(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut pairs = Vec::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        if let Some(stem) = name.strip_suffix("-clean.wav") {
            let adv = dir.join(format!("{stem}-adv.wav"));
            assert!(adv.is_file(), "{} has no adversarial partner", p.display());
            pairs.push((p, adv));
        }
    }
    pairs.sort();
    pairs
}

#[test]
fn speech_small_trains_attacks_hardens_and_reports() {
    let out = scratch("speech-e2e").join("run");
    let finished = run_small(&out);
    assert_run_files(&out, &["config.toml", "metrics.json", "report.md", "plots/sweep-pgd.png"]);

    let m = golden_run_metrics(&out, "speech-small", "audio");
    assert_eq!(m["seed"], 7);
    for phase in ["before", "after"] {
        let acc = m["clean"][phase]["accuracy"].as_f64().unwrap_or_else(|| panic!("clean.{phase}.accuracy"));
        assert!((0.0..=1.0).contains(&acc), "clean.{phase}.accuracy = {acc}");
        assert!(m["clean"][phase].get("pr_auc").is_none(), "ten classes: no binary metrics");
    }
    let attacks = m["attacks"].as_array().unwrap();
    assert_eq!(attacks.len(), 4, "pgd and noise, before and after");
    for a in attacks {
        let id =
            assert_first_party_attack(a, "audio", "pgd", "every waveform within its SNR budget and [-1, 1]");
        assert_eq!(a["perturbation_unit"], "snr_db");
        if a["successes"].as_u64().unwrap() > 0 {
            let snr = a["mean_perturbation"].as_f64().unwrap();
            let floor = if id == "pgd" { 30.0 } else { 20.0 };
            assert!(snr >= floor - 1e-6 && snr < floor + 5.0, "{id}: mean SNR {snr} dB, budget {floor} dB");
            assert!(a["extra"]["linf"].as_f64().unwrap() > 0.0);
        }
    }
    let pgd_before = attacks.iter().find(|a| a["id"] == "pgd" && a["phase"] == "before").unwrap();
    assert_eq!(pgd_before["mean_queries"].as_f64().unwrap(), 3.0, "PGD-3: one loss_grad per step");
    let sweeps = m["sweeps"].as_array().unwrap();
    assert_eq!(sweeps.len(), 4, "two SNR budgets, before and after");
    assert!(sweeps.iter().all(|s| s["budget_unit"] == "SNR budget (dB)"));
    assert_phases_timed(&m);

    // Wav pairs one can listen to, at the pipeline's rate, within the budget.
    let pairs = wav_pairs(&out.join("samples/pgd-before"));
    assert!(!pairs.is_empty(), "PGD at 30 dB fools a two-epoch model at least once");
    for (clean, adv) in &pairs {
        let ((r1, x), (r2, z)) = (read_wav(clean), read_wav(adv));
        assert_eq!((r1, r2), (8000, 8000));
        assert_eq!((x.len(), z.len()), (4000, 4000));
        let (snr, _) = snr_linf(&x, &z);
        assert!(snr >= 30.0, "{}: {snr} dB", adv.display());
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("![Robust accuracy against the budget](plots/sweep-pgd.png)"), "{report}");
    assert!(report.contains("samples/pgd-before/"), "the report links the wav pairs");
    assert!(report.contains("| `noise` | **no (held out)**"), "{report}");
    assert_eq!(finished.metrics.attacks.len(), 4);
}

/// Every adversarial waveform is judged by the host: SNR floors for `pgd` (SNR budget) and
/// `noise`, L∞ for `pgd` and `fgsm` under `budget = "linf"`, and [-1, 1] for all.
#[test]
fn gradient_attacks_never_exceed_their_budget() {
    let src = repo_pipeline("speech-small.toml");
    let head = &src[..src.find("[[attack]]").unwrap()];
    let src = format!(
        r#"{head}
[[attack]]
id = "pgd-snr"
plugin = "audio"
attack = "pgd"
params = {{ budget = "snr", snr_db = 25.0, steps = 4, restarts = 2 }}

[[attack]]
id = "pgd-linf"
plugin = "audio"
attack = "pgd"
params = {{ budget = "linf", epsilon = 0.003, steps = 4 }}

[[attack]]
id = "fgsm-linf"
plugin = "audio"
attack = "fgsm"
params = {{ epsilon = 0.003 }}

[[attack]]
id = "pink"
plugin = "audio"
attack = "noise"
params = {{ kind = "pink", snr_db = 10.0 }}

[harden]
enabled = false

[evaluate]
examples = 40

[report]
samples = 40
"#
    );
    let p = Pipeline::load(&pipeline_file("speech-budgets", &src)).unwrap();
    let out = scratch("speech-budgets-run").join("run");
    let finished = engine::run(&p, &RunOptions { out: Some(out.clone()), resume: false }).unwrap();
    for a in &finished.metrics.attacks {
        assert_eq!(a.constraint_violations, 0, "{}: host counted violations", a.id);
        let linf = a.extra.get("linf").copied().unwrap_or(0.0);
        match a.id.as_str() {
            // Noise may fool nobody; when it does, its SNR is the one asked for.
            "pink" => assert!(
                a.successes == 0 || (a.mean_perturbation - 10.0).abs() < 0.01,
                "{}",
                a.mean_perturbation
            ),
            "pgd-snr" => {
                assert!(a.successes > 0, "PGD did something to judge");
                assert!(a.mean_perturbation >= 25.0, "{}", a.mean_perturbation);
            }
            _ => {
                assert!(a.successes > 0, "{}: the attack did something to judge", a.id);
                assert!(linf <= 0.003 && linf > 0.002, "{}: L∞ {linf}", a.id);
            }
        }
    }
    // Independently of the judge: every saved pair, against its attack's budget.
    for (folder, snr_floor, eps) in [
        ("pgd-snr-before", 25.0, 1.0),
        ("pgd-linf-before", -100.0, 0.003),
        ("fgsm-linf-before", -100.0, 0.003),
    ] {
        let pairs = wav_pairs(&out.join("samples").join(folder));
        assert!(!pairs.is_empty(), "{folder}");
        for (clean, adv) in pairs {
            let ((_, x), (_, z)) = (read_wav(&clean), read_wav(&adv));
            let (snr, linf) = snr_linf(&x, &z);
            assert!(snr >= snr_floor && linf <= eps, "{}: SNR {snr} dB, L∞ {linf}", adv.display());
            assert!(z.iter().all(|v| (-1.0..=1.0).contains(v)));
        }
    }
}

#[test]
fn same_seed_gives_identical_metrics_and_wavs() {
    let dir = assert_reproducible("speech-seed", |out| {
        run_small(out);
    });
    let (pa, pb) = (wav_pairs(&dir.join("a/samples/pgd-after")), wav_pairs(&dir.join("b/samples/pgd-after")));
    assert_eq!(pa.len(), pb.len());
    for ((_, x), (_, y)) in pa.iter().zip(&pb) {
        assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap(), "{}", x.display());
    }
}

/// 64 samples of a sine at half amplitude: short enough to write in every format.
fn tone() -> Vec<f32> {
    (0..64).map(|i| (i as f32 * 0.3).sin() * 0.5).collect()
}

fn write_wav(path: &Path, channels: u16, rate: u32, bits: u16, float: bool, frames: &[f32]) {
    let sample_format = if float { hound::SampleFormat::Float } else { hound::SampleFormat::Int };
    let spec = hound::WavSpec { channels, sample_rate: rate, bits_per_sample: bits, sample_format };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &v in frames {
        for c in 0..channels {
            // Stereo: the right channel is the negated left one plus 0.2, so the mix is 0.1.
            let v = if c == 1 { -v + 0.2 } else { v };
            if float {
                w.write_sample(v).unwrap();
            } else {
                w.write_sample((f64::from(v) * (1i64 << (bits - 1)) as f64).round() as i32).unwrap();
            }
        }
    }
    w.finalize().unwrap();
}

/// Labels from `{label}_{name}.wav`, 64 samples at 8 kHz, everything in train.
fn config(dir: &Path, resample: bool) -> AudioDataConfig {
    AudioDataConfig {
        path: dir.to_owned(),
        pattern: Some("{label}_{name}.wav".into()),
        manifest: None,
        sample_rate: 8000,
        resample,
        length: 64,
        align: Align::Center,
        on_bad_file: OnBadFile::Fail,
        limit: None,
        split: AudioSplitConfig { test_index: None, test: 0.0, validation: 0.0 },
    }
}

#[test]
fn every_documented_wav_format_loads() {
    let dir = scratch("speech-formats");
    let tone = tone();
    for (name, channels, bits, float) in [
        ("a_int8.wav", 1, 8, false),
        ("a_int16.wav", 1, 16, false),
        ("a_int24.wav", 1, 24, false),
        ("a_int32.wav", 1, 32, false),
        ("a_float32.wav", 1, 32, true),
        ("b_stereo16.wav", 2, 16, false),
    ] {
        write_wav(&dir.join(name), channels, 8000, bits, float, &tone);
    }
    let long: Vec<f32> = (0..128).map(|i| (i as f32 * 0.15).sin() * 0.5).collect();
    write_wav(&dir.join("b_rate16k.wav"), 1, 16000, 16, false, &long);
    let d = audio::load(&config(&dir, true), Path::new("."), 1).unwrap();
    assert_eq!(d.classes, vec!["a", "b"]);
    assert_eq!(d.train.files.len(), 7);
    assert_eq!(d.resampled_files, 1);
    let row = |name: &str| {
        let i = d.train.files.iter().position(|f| f == name).unwrap();
        d.train.x[i * 64..(i + 1) * 64].to_vec()
    };
    for (name, tol) in [
        ("a_int8.wav", 1.0 / 128.0),
        ("a_int16.wav", 1e-4),
        ("a_int24.wav", 1e-6),
        ("a_int32.wav", 1e-6),
        ("a_float32.wav", 0.0),
    ] {
        let err = row(name).iter().zip(&tone).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(err <= tol, "{name}: off by {err}");
    }
    assert!(row("b_stereo16.wav").iter().all(|v| (v - 0.1).abs() < 1e-4), "stereo is averaged to mono");
    let resampled = row("b_rate16k.wav");
    let err = resampled[8..56].iter().zip(&tone[8..56]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(err < 0.03, "16 kHz resampled to 8 kHz: off by {err}");
    // Without `resample`, the other rate is a bad file that names itself.
    let e = audio::load(&config(&dir, false), Path::new("."), 1).unwrap_err().to_string();
    assert!(e.contains("b_rate16k.wav") && e.contains("16000 Hz") && e.contains("resample = true"), "{e}");
}

#[test]
fn corrupt_empty_and_wrong_rate_files_fail_by_name_or_are_skipped_and_counted() {
    let dir = scratch("speech-bad");
    let tone = tone();
    for name in ["a_good.wav", "b_good.wav", "b_whole.wav"] {
        write_wav(&dir.join(name), 1, 8000, 16, false, &tone);
    }
    let whole = std::fs::read(dir.join("b_whole.wav")).unwrap();
    std::fs::write(dir.join("a_truncated.wav"), &whole[..whole.len() - 40]).unwrap();
    std::fs::write(dir.join("a_empty.wav"), b"").unwrap();
    std::fs::write(dir.join("a_text.wav"), b"label,file\nnot,audio\n").unwrap();
    write_wav(&dir.join("b_fast.wav"), 1, 22050, 16, false, &tone);
    std::fs::write(dir.join("notes.txt"), b"not a .wav name: ignored").unwrap();
    let cases = [
        ("a_truncated.wav", "truncated"),
        ("a_empty.wav", "empty file"),
        ("a_text.wav", "not a valid wav file"),
        ("b_fast.wav", "22050 Hz"),
    ];
    // One bad file at a time: the error names it and says what is wrong.
    let bad_dir = scratch("speech-bad-one");
    for (name, why) in cases {
        for f in std::fs::read_dir(&bad_dir).unwrap() {
            std::fs::remove_file(f.unwrap().path()).unwrap();
        }
        for keep in ["a_good.wav", "b_good.wav", name] {
            std::fs::copy(dir.join(keep), bad_dir.join(keep)).unwrap();
        }
        let e = audio::load(&config(&bad_dir, false), Path::new("."), 1).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(why), "{name}: {e}");
    }
    // All of them, skipped and counted.
    let mut cfg = config(&dir, false);
    cfg.on_bad_file = OnBadFile::Skip;
    let d = audio::load(&cfg, Path::new("."), 1).unwrap();
    assert_eq!(d.train.files, vec!["a_good.wav", "b_good.wav", "b_whole.wav"]);
    let mut skipped: Vec<String> =
        d.skipped.iter().map(|(p, _)| p.file_name().unwrap().to_str().unwrap().to_owned()).collect();
    skipped.sort();
    assert_eq!(skipped, vec!["a_empty.wav", "a_text.wav", "a_truncated.wav", "b_fast.wav"]);

    // Through a whole pipeline: the run stops before training and names the file.
    let src = format!(
        r#"[pipeline]
name = "bad-audio"
modality = "audio"

[data]
path = {:?}
pattern = "{{label}}_{{name}}.wav"
length = 64

[model]
channels = [4]
kernel = 8

[harden]
enabled = false
"#,
        dir.display().to_string()
    );
    let p = Pipeline::load(&pipeline_file("bad-audio", &src)).unwrap();
    let out = scratch("bad-audio-run").join("run");
    let Err(e) = engine::run(&p, &RunOptions { out: Some(out), resume: false }) else {
        panic!("a bad file must stop the run")
    };
    let e = e.to_string();
    assert!(e.contains("a_empty.wav") && e.contains("empty file"), "{e}");
}
