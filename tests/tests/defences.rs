//! `[[defence]]`: preprocessing defences judged by the plain and the adaptive (BPDA, EOT)
//! attacks, on the real fraud data through the real `tempered-tabular` cdylib; the text
//! defence (`spelling`) on MR through the real `tempered-text` cdylib, judged by transfer
//! and by attacks that query it.

use std::sync::Arc;

use tempered_core::data::{Examples, ExamplesRef};
use tempered_core::defence::{Defended, Gradient, Normalised, Preprocess, Quantise, RandomNoise, Spelling};
use tempered_core::engine::{self, RunOptions};
use tempered_core::modality::{self, Setup, Task};
use tempered_core::model::{Classifier, input_loss_grad_autograd};
use tempered_core::pipeline::defence::StepUnit;
use tempered_core::pipeline::{DeviceKind, Pipeline};
use tempered_core::plugin_host::Plugin;
use tempered_tests::{built_lib, pipeline_file, read_json, repo, repo_pipeline, run_outputs, scratch};

/// The fraud-small task (real rows, the MLP as initialised from the seed) and its first
/// `n` test rows.
fn fraud_task(n: usize) -> (Box<dyn Task>, Vec<f32>, usize, Vec<u32>) {
    let p = Pipeline::load(&repo().join("pipelines/fraud-small.toml")).unwrap();
    let dir = scratch("defence-task");
    let device = engine::device(DeviceKind::Cpu).unwrap();
    let task = modality::prepare(&p, &Setup { device: &device, checkpoints: &dir }).unwrap();
    // Selected, so in memory wherever the loader keeps the split.
    let test = task.parts().dataset.test.select(&(0..n).collect::<Vec<_>>()).unwrap();
    let Examples::Dense { data: x, width } = test.x else { panic!("dense rows") };
    (task, x, width, test.y)
}

/// Every column on a grid of one standard deviation.
fn quantiser(task: &dyn Task) -> Arc<dyn Preprocess> {
    let specs = task.schema().unwrap().specs();
    let steps = specs.iter().map(|s| s.scale).collect();
    let integer: Vec<bool> =
        specs.iter().map(|s| s.kind == tempered_plugin::FeatureKind::Integer as u32).collect();
    Arc::new(Quantise::new(steps, &integer, 1.0, StepUnit::Std))
}

fn loss_grad(model: &dyn Classifier, x: &[f32], y: &[u32]) -> (Vec<f32>, Vec<f32>) {
    let (mut l, mut g) = (vec![0f32; y.len()], vec![f32::NAN; x.len()]);
    model.input_loss_grad(x, y, &mut l, &mut g).expect("a defended model answers").unwrap();
    (l, g)
}

/// The test: through a quantiser the input gradient is exactly zero and PGD changes
/// nothing; BPDA gives a non-zero gradient and the same PGD fools some examples.
#[test]
fn bpda_sees_through_a_quantiser_that_blinds_the_plain_attack() {
    let n = 64;
    let (task, x, width, y) = fraud_task(n);
    let model = task.parts().model.as_ref();
    let q = quantiser(task.as_ref());
    let through = Defended::new(model, q.clone(), Gradient::Through);
    let bpda = Defended::new(model, q, Gradient::Bpda);

    let (_, g) = loss_grad(&through, &x, &y);
    assert!(g.iter().all(|&v| v == 0.0), "the true gradient of a quantiser is zero");
    let (_, g) = loss_grad(&bpda, &x, &y);
    assert!(g.iter().filter(|&&v| v != 0.0).count() > x.len() / 2, "BPDA: the model's gradient");

    let plugin = Plugin::load(&built_lib("tempered_tabular")).unwrap();
    let params = serde_json::json!({ "norm": "linf", "epsilon": 2.0, "steps": 10, "random_start": false });
    let rows = Examples::Dense { data: x.clone(), width };
    let attack = |m: &dyn Classifier| {
        let mut handle = plugin.create("pgd", &params, &repo()).unwrap();
        let ctx = modality::context(task.as_ref(), 7, None);
        let out = handle.perturb(m, &rows, &y, ctx).unwrap();
        let Examples::Dense { data, .. } = &out.examples else { panic!("dense rows") };
        let (before, _) = tempered_core::evaluate::predict(m, &rows, 256).unwrap();
        let (after, _) = tempered_core::evaluate::predict(m, &out.examples, 256).unwrap();
        let flipped = (0..n).filter(|&i| before[i] == y[i] && after[i] != y[i]).count();
        (data.clone(), flipped)
    };
    let (moved, flipped) = attack(&through);
    assert_eq!(moved, x, "PGD with a zero gradient has nowhere to go");
    assert_eq!(flipped, 0);
    let (moved, flipped) = attack(&bpda);
    assert_ne!(moved, x);
    assert!(flipped > 0, "PGD with BPDA fools some of the examples the defended model got right");
}

/// EOT's gradient and loss are the mean over draws 1…k of the model's at each noisy input.
#[test]
fn eot_averages_the_gradient_over_draws() {
    let (task, x, width, y) = fraud_task(16);
    let model = task.parts().model.as_ref();
    let scales: Vec<f32> = task.schema().unwrap().specs().iter().map(|s| 0.3 * s.scale).collect();
    let noise: Arc<dyn Preprocess> = Arc::new(RandomNoise::new(0.3, scales, 11));
    let k = 4;
    let (loss, grad) = loss_grad(&Defended::new(model, noise.clone(), Gradient::Eot { samples: k }), &x, &y);
    let (mut want_l, mut want_g) = (vec![0f32; y.len()], vec![0f32; x.len()]);
    let mut draws = Vec::new();
    for d in 1..=k as u64 {
        let mut xp = x.clone();
        noise.apply(&mut xp, width, d);
        let (l, g) = input_loss_grad_autograd(model, &ExamplesRef::Dense { data: &xp, width }, &y).unwrap();
        want_l.iter_mut().zip(&l).for_each(|(a, b)| *a += b / k as f32);
        want_g.iter_mut().zip(&g).for_each(|(a, b)| *a += b / k as f32);
        draws.push(g);
    }
    assert_ne!(draws[0], draws[1], "the draws differ");
    for (a, b) in grad.iter().zip(&want_g).chain(loss.iter().zip(&want_l)) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
    }
    // One draw (the deployed one, draw 0) is not the average.
    let (_, one) = loss_grad(&Defended::new(model, noise, Gradient::Through), &x, &y);
    assert!(one.iter().zip(&want_g).any(|(a, b)| (a - b).abs() > 1e-4));
}

fn config_error(extra: &str) -> String {
    let src = format!("{}\n{extra}\n", repo_pipeline("fraud-small.toml"));
    let file = pipeline_file("defence-config", &src);
    let e = Pipeline::load(&file).unwrap_err().to_string();
    assert!(e.starts_with(&file.display().to_string()), "names the file: {e}");
    e
}

#[test]
fn bad_defence_settings_are_refused_before_anything_runs_naming_the_key() {
    let e = config_error("[[defence]]\nkind = \"quantise\"");
    assert!(e.contains("needs `step`"), "{e}");
    let e = config_error("[[defence]]\nkind = \"quantise\"\nstep = -1.0");
    assert!(e.contains("step = -1: a finite number > 0"), "{e}");
    let e = config_error("[[defence]]\nkind = \"quantise\"\nstep = 0.5\nbits = 8");
    assert!(e.contains("`bits` is not a setting of kind = \"quantise\""), "{e}");
    let e = config_error("[[defence]]\nkind = \"bit-depth\"\nbits = 8");
    assert!(e.contains("preprocesses audio inputs; this pipeline is tabular"), "{e}");
    let e = config_error("[[defence]]\nkind = \"quantise\"\nstep = 0.5\nstrength = 2");
    assert!(e.contains("unknown field `strength`"), "{e}");
    let e = config_error("[[defence]]\nkind = \"blur\"");
    assert!(e.contains("unknown variant `blur`"), "{e}");
    let e = config_error(
        "[[defence]]\nkind = \"quantise\"\nstep = 0.5\n[[defence]]\nkind = \"quantise\"\nstep = 1.0",
    );
    assert!(e.contains("the id is used by defences #1 and #2"), "{e}");
    let e = config_error("[[defence]]\nkind = \"random-noise\"\nsigma = 0.1\nsamples = 0");
    assert!(e.contains("samples = 0"), "{e}");
    let e = config_error(
        "[evaluate]\noperating_point = { fpr = 0.01 }\n[[defence]]\nkind = \"random-noise\"\nsigma = 0.1",
    );
    assert!(e.contains("not supported yet"), "{e}");
    // At the line of the offending key: the extra text starts two lines after the file's last.
    let bits = repo_pipeline("fraud-small.toml").lines().count() + 5;
    let e = config_error("[[defence]]\nkind = \"quantise\"\nstep = 0.5\nbits = 8");
    assert!(e.contains(&format!(".toml:{bits}:1: defence `quantise`: `bits`")), "{e}");

    let audio = repo_pipeline("speech-small.toml");
    let load = |extra: &str| {
        let file = pipeline_file("defence-audio", &format!("{audio}\n{extra}\n"));
        Pipeline::load(&file).map(|_| ()).map_err(|e| e.to_string())
    };
    assert!(load("[[defence]]\nkind = \"median\"\nwindow = 5").is_ok());
    let e = load("[[defence]]\nkind = \"median\"\nwindow = 4").unwrap_err();
    assert!(e.contains("window = 4: an odd number"), "{e}");
    let e = load("[[defence]]\nkind = \"bit-depth\"\nbits = 0").unwrap_err();
    assert!(e.contains("bits = 0: between 1 and 16"), "{e}");
    let e = load("[[defence]]\nkind = \"low-pass\"\ncutoff_hz = 4000.0").unwrap_err();
    assert!(e.contains("below half the sample rate (4000 Hz)"), "{e}");
    let e = load("[[defence]]\nkind = \"quantise\"\nstep = 1.0").unwrap_err();
    assert!(e.contains("preprocesses tabular inputs; this pipeline is audio"), "{e}");
    let e = load("[[defence]]\nkind = \"random-noise\"\nsigma = 0.01\nunit = \"raw\"").unwrap_err();
    assert!(e.contains("`unit` is for tabular columns"), "{e}");
}

/// `pipelines/fraud-small-defended.toml` end to end: the defences phase leaves every other
/// number of fraud-small as it was, and report.md states each verdict with its numbers.
#[test]
fn fraud_small_defended_reports_a_verdict_per_defence_and_attack() {
    let out = scratch("defence-e2e").join("run");
    let p = Pipeline::load(&repo().join("pipelines/fraud-small-defended.toml")).unwrap();
    engine::run(&p, &RunOptions { out: Some(out.clone()), resume: false }).unwrap();
    let (m, report) = run_outputs(&out);
    let golden = read_json(&repo().join("tests/golden/fraud-small.json"));
    assert_eq!(m["attacks"].as_array().unwrap().len(), golden["attacks"].as_array().unwrap().len());
    for (a, g) in m["attacks"].as_array().unwrap().iter().zip(golden["attacks"].as_array().unwrap()) {
        assert_eq!(a["successes"], g["successes"], "the defences leave the attack phases as they were");
    }
    assert!(m["seconds"]["defences"].as_f64().is_some());

    let d = m["defences"].as_array().expect("metrics.json has `defences`");
    assert_eq!(d.len(), 2);
    let q = &d[0];
    assert_eq!((q["id"].as_str(), q["phase"].as_str()), (Some("quantise"), Some("after")));
    assert_eq!(
        (q["plain_gradient"].as_str(), q["adaptive_gradient"].as_str()),
        (Some("through"), Some("bpda"))
    );
    let pgd = q["attacks"].as_array().unwrap().iter().find(|a| a["id"] == "pgd").unwrap();
    assert_eq!(pgd["uses_gradients"], true);
    assert_eq!(pgd["plain"]["successes"], 0, "PGD through a quantiser has a zero gradient");
    assert!(pgd["adaptive"]["successes"].as_u64().unwrap() > 0, "BPDA: {pgd}");
    assert_eq!(pgd["verdict"], "masked", "{pgd}");
    let undefended =
        m["attacks"].as_array().unwrap().iter().find(|a| a["id"] == "pgd" && a["phase"] == "after").unwrap();
    assert_eq!(pgd["undefended"]["successes"], undefended["successes"]);
    assert_eq!(d[1]["adaptive_gradient"], "eot-8");
    assert!(report.contains("## Preprocessing defences"), "{report}");
    assert!(
        report.contains(
            "- `quantise` against `pgd`: **masked: falls to the adaptive attack** — robust accuracy +"
        ),
        "{report}"
    );
}

/// No examples to attack: every rate is `null` and the verdict says "not measured", never 0.
#[test]
fn a_defence_with_nothing_to_attack_is_reported_as_not_measured() {
    let src = repo_pipeline("fraud-small-defended.toml")
        .replace("classes = [1]\nparams = { norm", "classes = [7]\nparams = { norm")
        .replace("[harden]\nstrategy = \"pgd\"", "[harden]\nenabled = false\nstrategy = \"pgd\"");
    assert!(src.contains("classes = [7]") && src.contains("enabled = false"));
    let file = pipeline_file("defence-nothing", &src);
    let out = scratch("defence-nothing").join("run");
    engine::run(&Pipeline::load(&file).unwrap(), &RunOptions { out: Some(out.clone()), resume: false })
        .unwrap();
    let (m, report) = run_outputs(&out);
    let q = &m["defences"][0];
    assert_eq!(q["phase"], "before");
    let pgd = q["attacks"].as_array().unwrap().iter().find(|a| a["id"] == "pgd").unwrap();
    assert_eq!(pgd["verdict"], "not-measured", "{pgd}");
    assert_eq!(pgd["plain"]["examples"], 0);
    assert!(pgd["plain"]["robust_accuracy"].is_null() && pgd["plain"]["success_rate"].is_null(), "{pgd}");
    assert!(report.contains("**not measured**"), "{report}");
}

fn text_config_error(extra: &str) -> String {
    let src = format!("{}\n{extra}\n", repo_pipeline("sentiment-small.toml"));
    let file = pipeline_file("defence-text-config", &src);
    let e = Pipeline::load(&file).unwrap_err().to_string();
    assert!(e.starts_with(&file.display().to_string()), "names the file: {e}");
    e
}

#[test]
fn bad_text_defence_settings_are_refused_naming_the_key() {
    let e = config_error("[[defence]]\nkind = \"spelling\"\nmax_distance = 1");
    assert!(e.contains("kind = \"spelling\" preprocesses text inputs; this pipeline is tabular"), "{e}");
    let e = text_config_error("[[defence]]\nkind = \"quantise\"\nstep = 0.5");
    assert!(e.contains("kind = \"quantise\" preprocesses tabular inputs; this pipeline is text"), "{e}");
    let e = text_config_error("[[defence]]\nkind = \"spelling\"");
    assert!(e.contains("kind = \"spelling\" needs `max_distance` (1 to 3 character edits)"), "{e}");
    let e = text_config_error("[[defence]]\nkind = \"spelling\"\nmax_distance = 1\nbits = 8");
    assert!(e.contains("`bits` is not a setting of kind = \"spelling\" (it takes `max_distance`)"), "{e}");
    // At the line and column of the offending value: two lines after the file's last, then two more.
    let line = repo_pipeline("sentiment-small.toml").lines().count() + 4;
    for bad in [0, 4] {
        let e = text_config_error(&format!("[[defence]]\nkind = \"spelling\"\nmax_distance = {bad}"));
        assert!(
            e.contains(&format!(
                ".toml:{line}:1: defence `spelling`: max_distance = {bad}: from 1 to 3 character edits"
            )),
            "{e}"
        );
    }
    let e = text_config_error("[[defence]]\nkind = \"spelling\"\nmax_distance = -1");
    assert!(e.contains(&format!(".toml:{line}:16: invalid value: integer `-1`")), "{e}");
}

/// The sentiment-small task (real MR sentences, the word-CNN's vocabulary from its train split).
fn sentiment_task() -> Box<dyn Task> {
    let p = Pipeline::load(&repo().join("pipelines/sentiment-small.toml")).unwrap();
    let dir = scratch("defence-text-task");
    let device = engine::device(DeviceKind::Cpu).unwrap();
    modality::prepare(&p, &Setup { device: &device, checkpoints: &dir }).unwrap()
}

/// Typos made in real test sentences, one per sentence in a word the model knows, are
/// undone by the normaliser, so the defended model reads the original sentence; sentences
/// of known words pass untouched.
#[test]
fn the_spelling_normaliser_undoes_typos_in_real_sentences_and_leaves_known_words() {
    let task = sentiment_task();
    let model = task.parts().model.as_ref();
    let vocabulary = model.vocabulary().unwrap();
    let rank = |w: &str| vocabulary.iter().position(|v| v == w);
    let spelling = std::sync::Arc::new(Spelling::new(vocabulary.clone(), 1));
    let Examples::Text(texts) = &task.parts().dataset.test.x else { panic!("texts") };
    let (mut undone, mut made) = (0, 0);
    let mut originals = Vec::new();
    let mut typos = Vec::new();
    for t in texts.iter().take(60) {
        let words: Vec<&str> = t.split_whitespace().collect();
        // The longest known word of four letters or more, its middle two letters swapped.
        let Some(j) = (0..words.len())
            .filter(|&j| words[j].len() >= 4 && words[j].chars().all(|c| c.is_ascii_lowercase()))
            .filter(|&j| rank(words[j]).is_some())
            .max_by_key(|&j| words[j].len())
        else {
            continue;
        };
        let mut c: Vec<char> = words[j].chars().collect();
        let m = c.len() / 2;
        c.swap(m - 1, m);
        let typo: String = c.into_iter().collect();
        if typo == words[j] || rank(&typo).is_some() {
            continue;
        }
        made += 1;
        let fixed = spelling.correct(&typo);
        // The nearest known word: the original, or one as near and more frequent.
        assert!(tempered_plugin::judge::char_edits(fixed, &typo) <= 1, "{typo} → {fixed}");
        assert!(rank(fixed).unwrap() <= rank(words[j]).unwrap(), "{typo} → {fixed}, not {}", words[j]);
        if fixed == words[j] {
            undone += 1;
            let mut w2 = words.clone();
            w2[j] = &typo;
            originals.push(words.join(" "));
            typos.push(w2.join(" "));
        }
    }
    assert!(made >= 40, "{made} typos made");
    assert!(undone * 10 >= made * 9, "{undone} of {made} typos undone");
    // Behind the defence the typos are invisible (the sentences' other unknown words are
    // corrected in both, the same way).
    let defended = Normalised::new(model, spelling.clone());
    let on = |m: &dyn Classifier, t: &[String]| {
        tempered_core::evaluate::predict(m, &Examples::Text(t.to_vec()), 64).unwrap().1
    };
    assert_eq!(on(&defended, &typos), on(&defended, &originals));
    assert_ne!(on(model, &typos), on(model, &originals), "undefended, the typos are [UNK]s");
    // Training sentences, every word of which the vocabulary holds, come back as they were.
    let Examples::Text(train) = &task.parts().dataset.train.x else { panic!("texts") };
    for t in train.iter().take(200) {
        assert_eq!(&spelling.normalise(t), t);
    }
}

/// `pipelines/sentiment-defence-small.toml` end to end: per attack, the undefended numbers
/// are the attack phase's, the transfer run and the run against the defended model both
/// measured, and a verdict with its numbers in metrics.json and report.md.
#[test]
fn sentiment_defence_small_reports_a_verdict_for_the_spelling_defence() {
    let out = scratch("defence-text-e2e").join("run");
    let p = Pipeline::load(&repo().join("pipelines/sentiment-defence-small.toml")).unwrap();
    engine::run(&p, &RunOptions { out: Some(out.clone()), resume: false }).unwrap();
    let (m, report) = run_outputs(&out);
    let d = &m["defences"].as_array().expect("metrics.json has `defences`")[0];
    assert_eq!((d["kind"].as_str(), d["phase"].as_str()), (Some("spelling"), Some("before")));
    assert_eq!(
        (d["plain_gradient"].as_str(), d["adaptive_gradient"].as_str()),
        (Some("transfer"), Some("query-defended"))
    );
    assert!(d["clean"]["accuracy"].as_f64().is_some());
    for id in ["deepwordbug", "textfooler"] {
        let a = d["attacks"].as_array().unwrap().iter().find(|a| a["id"] == id).unwrap();
        let phase = m["attacks"].as_array().unwrap().iter().find(|r| r["id"] == id).unwrap();
        assert_eq!(a["undefended"]["successes"], phase["successes"], "{id}: the attack phase's numbers");
        for run in ["plain", "adaptive"] {
            assert_eq!(a[run]["examples"], phase["examples"], "{id} {run}: the same examples");
            assert_eq!(a[run]["constraint_violations"], 0, "{id} {run}");
        }
        assert_eq!(a["uses_gradients"], false, "{id}: a text attack only queries");
        let v = a["verdict"].as_str().unwrap();
        assert!(["masked", "holds", "no-gain"].contains(&v), "{id}: {a}");
        assert!(report.contains(&format!("- `spelling` against `{id}`: **")), "{report}");
    }
    // DeepWordBug's typos, transferred, are mostly undone by the normaliser.
    let dwb = d["attacks"].as_array().unwrap().iter().find(|a| a["id"] == "deepwordbug").unwrap();
    let undefended = dwb["undefended"]["successes"].as_u64().unwrap();
    assert!(undefended > 0, "{dwb}");
    assert!(dwb["plain"]["successes"].as_u64().unwrap() < undefended, "{dwb}");
    let row = m["attacks"].as_array().unwrap().iter().find(|r| r["id"] == "deepwordbug").unwrap();
    assert_eq!(row["budgets"][0]["budget"], "≤ 1 character edit in each of ≤ 20 % of words");
    assert_eq!(row["budgets"][0]["violations"], 0);
    assert!(report.contains("Text attacks only query the model"), "{report}");
}
