//! The bad-input catalogue of issue 10 ("Runs you can trust"), re-run against the release
//! binary as a new user meets it: bad pipeline files, bad data in every modality, broken
//! plugins, degenerate runs, signals, concurrent resumes, full or closed output.
//!
//! Each case runs `target/release/tempered` in a fresh folder with a wall-clock limit and is
//! classified: a clear error (names the file and the place), an unclear error, a panic, a
//! crash (killed by a signal), a hang (killed at the limit), a silent wrong result (exit 0
//! with numbers that mean nothing, or a bad input accepted), lost or corrupted files, a failed
//! check (exit 1 with the report written and the failure at its top: the right answer for a
//! degenerate run), or ok. It fails on any panic, crash, hang, silent wrong result or lost
//! file, on a valid input refused, and when fewer than 95 % of the errors name file and place.
//!
//! It needs the release build and takes about 20 s once that is built (each case starts a
//! process), so it is ignored by `cargo test`:
//!
//!     just catalogue
//!     # = cargo build --release && cargo test --release -p tempered-tests --test catalogue -- --ignored --nocapture
//!
//! `CATALOGUE_FILTER=csv` runs the cases whose name contains `csv`; `TEMPERED_BIN` picks
//! another binary. Adding a case is one entry in [`cases`].

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempered_tests::{repo, repo_pipeline};

// ---------------------------------------------------------------------------------------
// The pipelines the cases edit: tiny, so a run takes about a second in release.

/// A tabular pipeline on `in/data.csv` (written by [`table`]).
const TAB: &str = r#"[pipeline]
name = "cat"
modality = "tabular"
seed = 1

[data]
path = "in/data.csv"
label = "Class"

[model]
kind = "mlp"
hidden = [8]

[train]
epochs = 8
batch_size = 32
lr = 1e-2
patience = 0

[[attack]]
id = "pgd"
plugin = "tabular"
attack = "pgd"
classes = [1]
params = { norm = "linf", epsilon = 0.5, steps = 3 }

[harden]
strategy = "pgd"
attack = "pgd"
epochs = 1
patience = 0
"#;

/// A text pipeline on a slice of MR with one cheap attack and no hardening.
const TEXT: &str = r#"[pipeline]
name = "cat-text"
modality = "text"
seed = 1

[data]
path = "data/mr/mr.csv"
label = "label"
text = "text"
classes = ["0", "1"]
split = { test_last_per_class = 533, validation = 0.1 }
limit = { train = 800, validation = 50, test = 30 }

[model]
kind = "word-cnn"
embedding_dim = 16
filters = 8
widths = [3]
max_words = 32

[train]
epochs = 8
batch_size = 50
lr = 1e-2
patience = 0

[[attack]]
id = "textfooler"
plugin = "text"
attack = "textfooler"
query_budget = 40

[attack.params]
synonyms = "data/wordnet-synonyms/wordnet-synonyms.tsv"
stopwords = "data/stopwords/english.txt"
max_candidates = 5
max_change_ratio = 0.2
query_budget = 40

[harden]
enabled = false
"#;

/// An audio pipeline on a slice of FSDD (or on `in/wav`, written by [`wav_set`]).
const AUDIO: &str = r#"[pipeline]
name = "cat-audio"
modality = "audio"
seed = 1

[data]
path = "data/fsdd/recordings"
pattern = "{label}_{speaker}_{index}.wav"
sample_rate = 8000
length = 4000
limit = 120
split = { test_index = [0, 4], validation = 0.1 }

[model]
kind = "m5"
channels = [8, 8, 16, 16]

[train]
epochs = 1
batch_size = 32
lr = 3e-3
patience = 0

[[attack]]
id = "pgd"
plugin = "audio"
attack = "pgd"
params = { budget = "snr", snr_db = 30.0, steps = 2 }

[harden]
strategy = "pgd"
attack = "pgd"
epochs = 1
patience = 0

[evaluate]
examples = 10
"#;

fn fraud() -> String {
    repo_pipeline("fraud-small.toml")
}

/// `base` with each `(from, to)` replaced once; a `from` that is not there is a mistake in
/// the catalogue itself, said before anything runs.
fn edit(base: &str, edits: &[(&str, &str)]) -> String {
    let mut s = base.to_owned();
    for (from, to) in edits {
        assert!(s.contains(from), "catalogue: `{from}` is not in the pipeline being edited");
        s = s.replacen(from, to, 1);
    }
    s
}

/// `base` with `extra` appended.
fn plus(base: &str, extra: &str) -> String {
    format!("{base}\n{extra}\n")
}

// ---------------------------------------------------------------------------------------
// Files the cases write.

/// A learnable table `a,b,c,Class` of `rows` rows (a third of them class 1), with `edit`
/// applied to each data row (1-based) before it is joined.
fn table_with(rows: usize, edit: impl Fn(usize, &mut Vec<String>)) -> String {
    let mut out = String::from("a,b,c,Class\n");
    for r in 0..rows {
        let class = usize::from(r % 3 == 0);
        let a = class as f64 * 2.0 + ((r * 7) % 10) as f64 / 10.0;
        let b = ((r * 13) % 17) as f64 / 4.0;
        let c = ((r * 5) % 11) as f64 - 5.0;
        let mut cells = vec![format!("{a:.2}"), format!("{b:.2}"), format!("{c:.1}"), class.to_string()];
        edit(r + 1, &mut cells);
        out += &(cells.join(",") + "\n");
    }
    out
}

fn table() -> String {
    table_with(300, |_, _| {})
}

/// A 16-bit mono wav of `secs` seconds of a tone at `hz`.
fn wav_bytes(secs: f64, rate: u32, hz: f64, channels: u16) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cur = std::io::Cursor::new(Vec::new());
    {
        let mut w = hound::WavWriter::new(&mut cur, spec).unwrap();
        let n = (secs * rate as f64) as usize;
        for i in 0..n {
            let v = (i as f64 * hz * std::f64::consts::TAU / rate as f64).sin() * 8000.0;
            for _ in 0..channels {
                w.write_sample(v as i16).unwrap();
            }
        }
        w.finalize().unwrap();
    }
    cur.into_inner()
}

/// Two classes (a low and a high tone), two speakers, 12 takes each, named like FSDD.
fn wav_set(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for label in 0..2u32 {
        for speaker in ["ann", "bob"] {
            for index in 0..12 {
                let hz = if label == 0 { 300.0 } else { 1200.0 } + index as f64 * 7.0;
                let file = dir.join(format!("{label}_{speaker}_{index}.wav"));
                std::fs::write(file, wav_bytes(0.5, 8000, hz, 1)).unwrap();
            }
        }
    }
}

/// What a case puts at a path under its folder before it runs.
#[derive(Clone)]
enum Content {
    Text(String),
    Bytes(Vec<u8>),
    Fifo,
    Dir,
    Link(String),
    /// Written by a function given the path.
    Gen(fn(&Path)),
    /// A copy of a file of the repository (or of the release folder, with `@B`).
    Copy(String),
}

// ---------------------------------------------------------------------------------------
// Cases.

/// Where a clear error points: `Toml` is `<pipeline>:<line>:<col>:`; `Has` needs every
/// string (a file's name, `row 7`, a column, an argument) in stderr.
#[derive(Clone)]
enum Place {
    Toml,
    Has(Vec<String>),
}

fn toml() -> Place {
    Place::Toml
}

fn has(tokens: &[&str]) -> Place {
    Place::Has(tokens.iter().map(|s| s.to_string()).collect())
}

#[derive(Clone)]
enum Expect {
    /// Refused with an error naming the place.
    Error(Place),
    /// Exit 0 (and the case's check).
    Ok,
    /// Never green: an error naming the place, or a failed check with the report written.
    NotGreen(Place),
    /// Exit 0 (and the check), a failed check, or an error naming the place.
    Either(Place),
    /// Stopped by this signal: exit 128 + signal, saying how to resume.
    Signal(i32),
}

#[derive(Clone, Copy, PartialEq)]
enum Stdout {
    File,
    DevFull,
    Closed,
}

#[derive(Clone)]
enum Step {
    /// A command run before the one under test (its outcome is not judged).
    Run(Vec<String>),
    /// A change to the case's folder between steps.
    Edit(fn(&Path)),
    /// A command started and left running (until its first committed epoch) while the
    /// command under test runs; killed afterwards.
    Spawn(Vec<String>),
    /// A command stopped by a signal once it has committed an epoch.
    Interrupt(Vec<String>, i32),
}

type Check = fn(&Ctx) -> Result<(), String>;

struct Ctx {
    dir: PathBuf,
    stdout: String,
}

#[derive(Clone)]
struct Case {
    name: String,
    files: Vec<(String, Content)>,
    steps: Vec<Step>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdout: Stdout,
    nobody: bool,
    expect: Expect,
    check: Option<Check>,
    keep: Vec<String>,
    timeout: Duration,
    /// Sent once the run has committed an epoch.
    signal: Option<i32>,
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

impl Case {
    fn cli(name: &str, a: &[&str]) -> Self {
        Case {
            name: name.into(),
            files: Vec::new(),
            steps: Vec::new(),
            args: args(a),
            env: Vec::new(),
            stdout: Stdout::File,
            nobody: false,
            expect: Expect::Ok,
            check: None,
            keep: Vec::new(),
            timeout: Duration::from_secs(30),
            signal: None,
        }
    }
    /// `tempered validate` on `src` (written as `pipelines/p.toml`).
    fn validate(name: &str, src: &str) -> Self {
        Case::cli(name, &["validate", "@P"]).file("pipelines/p.toml", Content::Text(src.into()))
    }
    /// `tempered run` on `src`, into `run/`.
    fn run(name: &str, src: &str) -> Self {
        Case::cli(name, &["run", "@P", "--out", "@D/run"])
            .file("pipelines/p.toml", Content::Text(src.into()))
            .timeout(120)
    }
    /// A tabular run on `csv` (as `in/data.csv`).
    fn csv(name: &str, csv: &str) -> Self {
        Case::run(name, TAB).file("in/data.csv", Content::Text(csv.into()))
    }
    fn file(mut self, rel: &str, c: Content) -> Self {
        self.files.push((rel.into(), c));
        self
    }
    fn step(mut self, s: Step) -> Self {
        self.steps.push(s);
        self
    }
    fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    fn err(mut self, p: Place) -> Self {
        self.expect = Expect::Error(p);
        self
    }
    fn ok(mut self) -> Self {
        self.expect = Expect::Ok;
        self
    }
    fn not_green(mut self, p: Place) -> Self {
        self.expect = Expect::NotGreen(p);
        self
    }
    fn either(mut self, p: Place) -> Self {
        self.expect = Expect::Either(p);
        self
    }
    fn check(mut self, c: Check) -> Self {
        self.check = Some(c);
        self
    }
    fn keep(mut self, rel: &str) -> Self {
        self.keep.push(rel.into());
        self
    }
    fn stdout(mut self, s: Stdout) -> Self {
        self.stdout = s;
        self
    }
    fn nobody(mut self) -> Self {
        self.nobody = true;
        self
    }
    fn timeout(mut self, secs: u64) -> Self {
        self.timeout = Duration::from_secs(secs);
        self
    }
    fn signal(mut self, sig: i32) -> Self {
        self.signal = Some(sig);
        self.expect = Expect::Signal(sig);
        self
    }
}

const RUN: &[&str] = &["run", "@P", "--out", "@D/run"];
const RESUME: &[&str] = &["run", "@P", "--out", "@D/run", "--resume"];

/// A finished tabular run in `run/`, for the cases that resume or score it.
fn with_run(c: Case) -> Case {
    c.step(Step::Run(args(RUN)))
}

// Checks on what a case left behind.

fn metrics(ctx: &Ctx) -> Result<serde_json::Value, String> {
    let f = ctx.dir.join("run/metrics.json");
    let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))
}

fn stdout_lists_unusable(ctx: &Ctx) -> Result<(), String> {
    for bad in ["libempty.so", "libtrunc.so", "libtext.so", "libfifo.so"] {
        if !ctx.stdout.lines().any(|l| l.contains("(unusable)") && l.contains(bad)) {
            return Err(format!("`{bad}` is not listed as unusable"));
        }
    }
    if !ctx.stdout.contains("tabular") {
        return Err("the good plugins are no longer listed".into());
    }
    Ok(())
}

fn scores_have_probability(ctx: &Ctx) -> Result<(), String> {
    let f = ctx.dir.join("scores.csv");
    let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
    let header = text.lines().next().unwrap_or_default();
    if !header.contains("probability") || text.lines().count() != 301 {
        return Err(format!("scores.csv: header `{header}`, {} lines", text.lines().count()));
    }
    Ok(())
}

fn no_output_file(ctx: &Ctx) -> Result<(), String> {
    match ctx.dir.join("scores.csv").exists() {
        true => Err("a refused score left scores.csv".into()),
        false => Ok(()),
    }
}

// Edits between steps.

fn flip_checkpoint(dir: &Path) {
    let ck = dir.join("run/checkpoints");
    for e in std::fs::read_dir(&ck).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            let mut b = std::fs::read(&p).unwrap();
            let n = b.len();
            for i in (n / 2..n).step_by(7) {
                b[i] ^= 0xA5;
            }
            std::fs::write(&p, b).unwrap();
        }
    }
    std::fs::remove_file(dir.join("run/metrics.json")).ok();
    // Take the run back before its hardening, so the resume must read the flipped weights.
    for e in std::fs::read_dir(&ck).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("harden") {
            let _ = std::fs::remove_file(e.path()).or_else(|_| std::fs::remove_dir_all(e.path()));
        }
    }
}

/// Flips the last bytes of every checkpoint: the weights, not the header, are wrong.
fn flip_weights(dir: &Path) {
    let ck = dir.join("run/checkpoints");
    for e in std::fs::read_dir(&ck).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            let mut b = std::fs::read(&p).unwrap();
            let n = b.len();
            for x in &mut b[n - 16..] {
                *x ^= 0x5A;
            }
            std::fs::write(&p, b).unwrap();
        }
    }
    std::fs::remove_file(dir.join("run/metrics.json")).ok();
    for e in std::fs::read_dir(&ck).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("harden") {
            let _ = std::fs::remove_file(e.path()).or_else(|_| std::fs::remove_dir_all(e.path()));
        }
    }
}

fn truncate_checkpoints(dir: &Path) {
    for e in std::fs::read_dir(dir.join("run/checkpoints")).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            let b = std::fs::read(&p).unwrap();
            std::fs::write(&p, &b[..b.len().min(40)]).unwrap();
        }
    }
    std::fs::remove_file(dir.join("run/metrics.json")).ok();
}

fn relabel_and_shorten(dir: &Path) {
    let f = dir.join("in/data.csv");
    let text = std::fs::read_to_string(&f).unwrap();
    let lines: Vec<&str> = text.lines().take(200).collect();
    let relabelled: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| if i > 0 && i % 4 == 0 { l.replacen(",0", ",1", 1) } else { l.to_string() })
        .collect();
    std::fs::write(&f, relabelled.join("\n") + "\n").unwrap();
}

fn change_lr(dir: &Path) {
    let f = dir.join("pipelines/p.toml");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, text.replace("lr = 1e-2", "lr = 2e-2")).unwrap();
}

fn add_sweep(dir: &Path) {
    let f = dir.join("pipelines/p.toml");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(
        f,
        text + "\n[[evaluate.sweep]]\nattack = \"pgd\"\nparam = \"epsilon\"\nvalues = [0.25, 1.0]\n",
    )
    .unwrap();
}

fn delete_metrics(dir: &Path) {
    std::fs::remove_file(dir.join("run/metrics.json")).unwrap();
}

fn stale_lock(dir: &Path) {
    // What a `kill -9` leaves: the lock file, held by no process.
    std::fs::write(dir.join("run/.lock"), "999999\n").unwrap();
}

fn delete_checkpoints(dir: &Path) {
    std::fs::remove_dir_all(dir.join("run/checkpoints")).unwrap();
}

fn fill_out_dir(dir: &Path) {
    std::fs::create_dir_all(dir.join("run")).unwrap();
    std::fs::write(dir.join("run/notes.txt"), "my notes\n").unwrap();
    std::fs::write(dir.join("run/config.toml"), "# mine, not a run's\n").unwrap();
}

/// Takes every permission away from `rel` (the case then runs as nobody: root reads anything).
fn unreadable(dir: &Path, rel: &str) {
    std::fs::set_permissions(dir.join(rel), std::fs::Permissions::from_mode(0o000)).unwrap();
}

/// Whether the run spent training time: a committed clean epoch.
fn trained(ctx: &Ctx) -> Result<(), String> {
    match tempered_tests::nothing_trained(&ctx.dir.join("run")) {
        true => Ok(()),
        false => Err("trained before the mistake was found".into()),
    }
}

fn read_only_run(dir: &Path) {
    std::fs::create_dir_all(dir.join("ro")).unwrap();
    std::fs::set_permissions(dir.join("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
}

fn rate_is_null(ctx: &Ctx) -> Result<(), String> {
    let m = metrics(ctx)?;
    for a in m["attacks"].as_array().into_iter().flatten() {
        if a["attacked"] == 0 && !a["success_rate"].is_null() {
            return Err(format!("a rate over zero examples: {a}"));
        }
    }
    Ok(())
}

/// The big table. Names are unique; the prefix says the area.
fn cases() -> Vec<Case> {
    use Content::*;
    let f = fraud();
    let lib = |n: &str| format!("@B/lib{n}.so");
    let mut c: Vec<Case> = Vec::new();

    // --- the command line ---
    c.push(Case::cli("cli-no-args", &[]).err(has(&["Usage"])));
    c.push(Case::cli("cli-unknown-subcommand", &["frobnicate"]).err(has(&["frobnicate"])));
    c.push(Case::cli("cli-run-without-pipeline", &["run"]).err(has(&["PIPELINE"])));
    c.push(Case::cli("cli-run-missing-file", &["run", "nope.toml"]).err(has(&["nope.toml"])));
    c.push(Case::cli("cli-validate-missing-file", &["validate", "@D/nope.toml"]).err(has(&["nope.toml"])));
    c.push(
        Case::cli("cli-resume-without-out", &["run", "@P", "--resume"])
            .file("pipelines/p.toml", Text(TAB.into()))
            .err(has(&["--out"])),
    );
    c.push(
        Case::cli("cli-device-tpu", &["run", "@P", "--device", "tpu"])
            .file("pipelines/p.toml", Text(TAB.into()))
            .err(has(&["tpu"])),
    );
    c.push(
        Case::cli("cli-device-cuda-on-cpu-build", &["run", "@P", "--device", "cuda", "--out", "@D/run"])
            .file("pipelines/p.toml", Text(TAB.into()))
            .err(has(&["--device cuda"])),
    );
    c.push(
        Case::cli("cli-unknown-flag", &["validate", "@P", "--frob"])
            .file("pipelines/p.toml", Text(TAB.into()))
            .err(has(&["--frob"])),
    );
    c.push(Case::cli("cli-version", &["--version"]).ok());
    c.push(Case::cli("cli-help", &["--help"]).ok());
    c.push(
        Case::cli("cli-plugins-missing-pipeline", &["plugins", "--pipeline", "@D/nope.toml"])
            .err(has(&["nope.toml"])),
    );
    c.push(
        Case::cli("cli-validate-closed-stdout", &["validate", "@P"])
            .file("pipelines/p.toml", Text(f.clone()))
            .stdout(Stdout::Closed)
            .ok(),
    );
    c.push(
        Case::cli("cli-validate-dev-full", &["validate", "@P"])
            .file("pipelines/p.toml", Text(f.clone()))
            .stdout(Stdout::DevFull)
            .err(has(&["standard output"])),
    );
    c.push(
        Case::cli("cli-plugins-dev-full", &["plugins"])
            .stdout(Stdout::DevFull)
            .err(has(&["standard output"])),
    );
    c.push(Case::cli("cli-plugins-closed-stdout", &["plugins"]).stdout(Stdout::Closed).ok());
    c.push(
        Case::csv("cli-run-dev-full", &table())
            .stdout(Stdout::DevFull)
            .err(has(&["standard output"]))
            .check(|ctx| metrics(ctx).map(|_| ())),
    );
    c.push(Case::csv("cli-run-closed-stdout", &table()).stdout(Stdout::Closed).ok());
    c.push(
        Case::csv("cli-out-is-a-file", &table())
            .file("run", Text("not a folder\n".into()))
            .keep("run")
            .err(has(&["run"])),
    );
    c.push(
        Case::csv("cli-out-under-dev-null", &table())
            .map_args(&["run", "@P", "--out", "/dev/null/run"])
            .err(has(&["/dev/null"])),
    );
    c.push(
        Case::csv("cli-out-is-a-users-folder", &table())
            .step(Step::Edit(fill_out_dir))
            .keep("run/notes.txt")
            .keep("run/config.toml")
            .err(has(&["run"])),
    );
    c.push(Case::csv("cli-resume-nothing-there", &table()).map_args(RESUME).err(has(&["run"])));
    c.push(
        Case::csv("cli-resume-other-pipeline", &table())
            .step(Step::Run(args(RUN)))
            .step(Step::Edit(|d| {
                let f = d.join("pipelines/p.toml");
                let t = std::fs::read_to_string(&f).unwrap();
                std::fs::write(&f, t.replace("name = \"cat\"", "name = \"other\"")).unwrap();
            }))
            .map_args(RESUME)
            .err(has(&["run"])),
    );
    c.push(
        Case::cli("cli-bench-epochs-0", &["bench", "--pipeline", "@P", "--epochs", "0"])
            .file("pipelines/p.toml", Text(f.clone()))
            .err(has(&["epochs"])),
    );
    c.push(
        Case::cli("cli-bench-steps-0", &["bench", "--pipeline", "@P", "--steps", "0", "--epochs", "1"])
            .file("pipelines/p.toml", Text(f.clone()))
            .err(has(&["steps"])),
    );
    c.push(
        Case::cli(
            "cli-bench-epsilon-nan",
            &["bench", "--pipeline", "@P", "--epsilon", "nan", "--epochs", "1"],
        )
        .file("pipelines/p.toml", Text(f.clone()))
        .err(has(&["epsilon"])),
    );
    c.push(
        Case::cli(
            "cli-bench-epsilon-negative",
            &["bench", "--pipeline", "@P", "--epsilon=-1", "--epochs", "1"],
        )
        .file("pipelines/p.toml", Text(f.clone()))
        .err(has(&["epsilon"])),
    );
    c.push(
        Case::cli(
            "cli-bench-epsilon-inf",
            &["bench", "--pipeline", "@P", "--epsilon", "inf", "--epochs", "1"],
        )
        .file("pipelines/p.toml", Text(f.clone()))
        .err(has(&["epsilon"])),
    );
    c.push(
        Case::cli(
            "cli-bench-unknown-attack",
            &["bench", "--pipeline", "@P", "--attack", "nope", "--epochs", "1"],
        )
        .file("pipelines/p.toml", Text(f.clone()))
        .err(has(&["nope"])),
    );
    c.push(
        Case::cli("cli-bench-missing-pipeline", &["bench", "--pipeline", "@D/nope.toml"])
            .err(has(&["nope.toml"])),
    );
    c.push(
        Case::cli("cli-bench-epochs-word", &["bench", "--epochs", "many"]).err(has(&["--epochs", "many"])),
    );
    c.push(
        Case::cli("cli-bench-export-rows-to-dir", &["bench", "--pipeline", "@P", "--export-rows", "@D/in"])
            .file("pipelines/p.toml", Text(f.clone()))
            .file("in", Dir)
            .err(has(&["in"])),
    );
    c.push(
        Case::cli(
            "cli-bench-snr-nan-audio",
            &["bench", "--pipeline", "@P", "--snr-db", "nan", "--epochs", "1"],
        )
        .file("pipelines/p.toml", Text(AUDIO.into()))
        .err(has(&["snr"])),
    );

    // --- the pipeline file as a file ---
    c.push(Case::validate("file-empty", "").err(toml()));
    c.push(Case::validate("file-whitespace-only", "  \n\n\t\n").err(toml()));
    c.push(Case::cli("file-is-a-directory", &["validate", "@D/in"]).file("in", Dir).err(has(&["in"])));
    c.push(
        Case::cli("file-is-a-fifo", &["validate", "@D/p.toml"]).file("p.toml", Fifo).err(has(&["p.toml"])),
    );
    c.push(
        Case::cli("file-run-on-a-fifo", &["run", "@D/p.toml", "--out", "@D/run"])
            .file("p.toml", Fifo)
            .err(has(&["p.toml"])),
    );
    c.push(Case::cli("file-dev-zero", &["validate", "/dev/zero"]).err(has(&["/dev/zero"])));
    c.push(
        Case::cli("file-dangling-link", &["validate", "@D/p.toml"])
            .file("p.toml", Link("@D/gone.toml".into()))
            .err(has(&["p.toml"])),
    );
    c.push(
        Case::cli("file-link-loop", &["validate", "@D/p.toml"])
            .file("p.toml", Link("@D/p.toml".into()))
            .err(has(&["p.toml"])),
    );
    c.push(
        Case::cli("file-is-a-plugin-binary", &["validate", "@D/p.toml"])
            .file("p.toml", Copy(lib("tempered_tabular")))
            .err(has(&["p.toml"])),
    );
    c.push(
        Case::validate("file-huge-comment", "")
            .file(
                "pipelines/p.toml",
                Gen(|p| std::fs::write(p, format!("{}\n{}", "#".repeat(3 << 20), fraud())).unwrap()),
            )
            .err(has(&["p.toml", "too big"])),
    );
    c.push(
        Case::validate("file-not-utf8", &format!("{}\n# caf\u{e9}\n", f))
            .file(
                "pipelines/p.toml",
                Gen(|p| {
                    let mut b = fraud().into_bytes();
                    b.extend_from_slice(b"\n# caf\xe9 latin-1\n");
                    std::fs::write(p, b).unwrap();
                }),
            )
            .err(toml()),
    );
    c.push(
        Case::validate("file-utf16", "")
            .file(
                "pipelines/p.toml",
                Gen(|p| {
                    let mut b = vec![0xFF, 0xFE];
                    for u in fraud().encode_utf16() {
                        b.extend_from_slice(&u.to_le_bytes());
                    }
                    std::fs::write(p, b).unwrap();
                }),
            )
            .err(toml()),
    );
    c.push(Case::validate("file-bom", &format!("\u{feff}{f}")).either(toml()));
    c.push(Case::validate("file-crlf", &f.replace('\n', "\r\n")).ok());
    c.push(
        Case::validate("file-tabs-and-trailing-space", &f.replace(" = ", "\t=\t").replace('\n', "   \n"))
            .ok(),
    );
    c.push(
        Case::validate("file-unreadable", &f)
            .step(Step::Edit(|d| unreadable(d, "pipelines/p.toml")))
            .nobody()
            .err(has(&["p.toml"])),
    );
    c.push(
        Case::validate(
            "file-huge-echoed-name",
            &edit(&f, &[("name = \"fraud-small\"", &format!("name = \"{}\"", "x".repeat(200_000)))]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "file-huge-echoed-unknown-key",
            &plus(&f, &format!("[report.{}]\nx = 1", "k".repeat(100_000))),
        )
        .err(toml()),
    );

    // --- TOML syntax ---
    c.push(Case::validate("toml-double-equals", &edit(&f, &[("seed = 7", "seed = = 7")])).err(toml()));
    c.push(
        Case::validate(
            "toml-unterminated-string",
            &edit(&f, &[("name = \"fraud-small\"", "name = \"fraud-small")]),
        )
        .err(toml()),
    );
    c.push(Case::validate("toml-unclosed-header", &edit(&f, &[("[model]", "[model")])).err(toml()));
    c.push(
        Case::validate("toml-duplicate-key", &edit(&f, &[("seed = 7", "seed = 7\nseed = 8")])).err(toml()),
    );
    c.push(Case::validate("toml-duplicate-table", &plus(&f, "[model]\nkind = \"mlp\"")).err(toml()));
    c.push(Case::validate("toml-table-and-array-of-tables", &plus(&f, "[attack]\nid = \"x\"")).err(toml()));
    c.push(
        Case::validate("toml-unclosed-array", &edit(&f, &[("hidden = [32, 32]", "hidden = [32, 32")]))
            .err(toml()),
    );
    c.push(
        Case::validate("toml-unclosed-inline-table", &edit(&f, &[("steps = 5 }", "steps = 5")])).err(toml()),
    );
    c.push(
        Case::validate("toml-bare-word-value", &edit(&f, &[("kind = \"mlp\"", "kind = mlp")])).err(toml()),
    );
    c.push(Case::validate("toml-key-without-value", &edit(&f, &[("seed = 7", "seed =")])).err(toml()));
    c.push(
        Case::validate("toml-garbage-line", &edit(&f, &[("[model]", "this is not toml\n[model]")]))
            .err(toml()),
    );
    c.push(
        Case::validate("toml-integer-overflow", &edit(&f, &[("seed = 7", "seed = 99999999999999999999999")]))
            .err(toml()),
    );
    c.push(
        Case::validate("toml-bad-escape", &edit(&f, &[("name = \"fraud-small\"", "name = \"fr\\qaud\"")]))
            .err(toml()),
    );
    c.push(Case::validate("toml-nul-byte", &edit(&f, &[("seed = 7", "seed = 7\u{0}")])).err(toml()));
    c.push(Case::validate("toml-json-instead", "{\"pipeline\": {\"name\": \"x\"}}").err(toml()));
    c.push(Case::validate("toml-yaml-instead", "pipeline:\n  name: x\n  modality: tabular\n").err(toml()));

    // --- [pipeline] ---
    c.push(
        Case::validate(
            "pipeline-missing-table",
            &edit(&f, &[("[pipeline]\nname = \"fraud-small\"\nmodality = \"tabular\"\nseed = 7\n", "")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate("pipeline-missing-modality", &edit(&f, &[("modality = \"tabular\"\n", "")]))
            .err(toml()),
    );
    c.push(
        Case::validate(
            "pipeline-modality-image",
            &edit(&f, &[("modality = \"tabular\"", "modality = \"image\"")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate("pipeline-modality-number", &edit(&f, &[("modality = \"tabular\"", "modality = 3")]))
            .err(toml()),
    );
    c.push(
        Case::validate(
            "pipeline-modality-text-on-table",
            &edit(&f, &[("modality = \"tabular\"", "modality = \"text\"")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "pipeline-modality-audio-on-table",
            &edit(&f, &[("modality = \"tabular\"", "modality = \"audio\"")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate("pipeline-name-dotdot", &edit(&f, &[("name = \"fraud-small\"", "name = \"..\"")]))
            .err(toml()),
    );
    c.push(
        Case::validate("pipeline-name-empty", &edit(&f, &[("name = \"fraud-small\"", "name = \"\"")]))
            .err(toml()),
    );
    c.push(
        Case::validate("pipeline-name-slash", &edit(&f, &[("name = \"fraud-small\"", "name = \"a/b\"")]))
            .err(toml()),
    );
    c.push(
        Case::validate("pipeline-name-absolute", &edit(&f, &[("name = \"fraud-small\"", "name = \"/etc\"")]))
            .err(toml()),
    );
    c.push(
        Case::validate("pipeline-name-newline", &edit(&f, &[("name = \"fraud-small\"", "name = \"a\\nb\"")]))
            .err(toml()),
    );
    c.push(Case::validate("pipeline-seed-negative", &edit(&f, &[("seed = 7", "seed = -1")])).err(toml()));
    c.push(Case::validate("pipeline-seed-float", &edit(&f, &[("seed = 7", "seed = 1.5")])).err(toml()));
    c.push(Case::validate("pipeline-seed-string", &edit(&f, &[("seed = 7", "seed = \"7\"")])).err(toml()));
    c.push(
        Case::validate("pipeline-unknown-key", &edit(&f, &[("seed = 7", "seed = 7\nsead = 8")])).err(toml()),
    );
    c.push(
        Case::validate("pipeline-device-tpu", &edit(&f, &[("seed = 7", "seed = 7\ndevice = \"tpu\"")]))
            .err(toml()),
    );
    c.push(
        Case::validate(
            "pipeline-device-cuda-cpu-build",
            &edit(&f, &[("seed = 7", "seed = 7\ndevice = \"cuda\"")]),
        )
        .err(toml()),
    );
    c.push(Case::validate("pipeline-unknown-table", &plus(&f, "[extras]\nx = 1")).err(toml()));
    c.push(
        Case::run(
            "pipeline-out-dir-is-a-file",
            &edit(TAB, &[("seed = 1", "seed = 1\nout_dir = \"in/data.csv\"")]),
        )
        .map_args(&["run", "@P"])
        .file("in/data.csv", Text(table()))
        .keep("in/data.csv")
        .err(has(&["data.csv"])),
    );

    // --- [data], tabular ---
    c.push(
        Case::validate(
            "data-missing-table",
            &edit(TAB, &[("[data]\npath = \"in/data.csv\"\nlabel = \"Class\"\n", "")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "data-unknown-key",
            &edit(&f, &[("label = \"Class\"", "label = \"Class\"\npth = \"x.csv\"")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "data-text-key-on-table",
            &edit(&f, &[("label = \"Class\"", "label = \"Class\"\ntext = \"x\"")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "data-path-number",
            &edit(&f, &[("path = \"data/creditcard-ulb/creditcard_ulb_sample.csv\"", "path = 3")]),
        )
        .err(toml()),
    );
    c.push(Case::validate("data-limit-negative", &edit(&f, &[("limit = 900", "limit = -3")])).err(toml()));
    c.push(Case::validate("data-limit-zero", &edit(&f, &[("limit = 900", "limit = 0")])).err(toml()));
    c.push(
        Case::validate("data-split-over-one", &edit(&f, &[("validation = 0.2", "validation = 1.5")]))
            .err(toml()),
    );
    c.push(
        Case::validate(
            "data-split-sum-over-one",
            &edit(&f, &[("validation = 0.2, test = 0.3", "validation = 0.6, test = 0.6")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate("data-split-negative", &edit(&f, &[("validation = 0.2", "validation = -0.1")]))
            .err(toml()),
    );
    c.push(
        Case::validate("data-split-nan", &edit(&f, &[("validation = 0.2", "validation = nan")])).err(toml()),
    );
    c.push(Case::validate("data-split-zero-test", &edit(&f, &[("test = 0.3", "test = 0.0")])).err(toml()));
    c.push(
        Case::validate("data-column-kind-unknown", &edit(&f, &[("kind = \"integer\"", "kind = \"weird\"")]))
            .err(toml()),
    );
    c.push(
        Case::validate("data-column-cost-negative", &edit(&f, &[("cost = 0.01", "cost = -1.0")])).err(toml()),
    );
    c.push(Case::validate("data-column-cost-nan", &edit(&f, &[("cost = 0.01", "cost = nan")])).err(toml()));
    c.push(
        Case::validate(
            "data-column-bounds-crossed",
            &edit(&f, &[("lower = 0.0", "lower = 10.0\nupper = 1.0")]),
        )
        .err(toml()),
    );
    c.push(Case::validate("data-column-lower-nan", &edit(&f, &[("lower = 0.0", "lower = nan")])).err(toml()));
    c.push(
        Case::validate("data-label-empty", &edit(&f, &[("label = \"Class\"", "label = \"\"")])).err(toml()),
    );
    c.push(
        Case::run("data-column-that-is-not-there", &plus(TAB, "[data.columns.Nope]\ncost = 1.0"))
            .file("in/data.csv", Text(table()))
            .err(has(&["Nope"])),
    );
    c.push(
        Case::run("data-label-not-there", &edit(TAB, &[("label = \"Class\"", "label = \"Klass\"")]))
            .file("in/data.csv", Text(table()))
            .err(has(&["data.csv", "Klass"])),
    );
    c.push(Case::run("data-path-missing", TAB).err(has(&["data.csv"])));
    c.push(
        Case::run("data-path-empty", &edit(TAB, &[("path = \"in/data.csv\"", "path = \"\"")])).err(toml()),
    );
    c.push(
        Case::run("data-path-is-a-dir-of-nothing", &edit(TAB, &[("in/data.csv", "in")]))
            .file("in", Dir)
            .err(has(&["in"])),
    );
    c.push(
        Case::run("data-path-dev-null", &edit(TAB, &[("in/data.csv", "/dev/null")])).err(has(&["/dev/null"])),
    );
    c.push(
        Case::run("data-path-glob-nothing", &edit(TAB, &[("in/data.csv", "in/part-*.csv")]))
            .file("in", Dir)
            .err(has(&["part-*.csv"])),
    );
    c.push(
        Case::run("data-path-txt-extension", &edit(TAB, &[("in/data.csv", "in/data.txt")]))
            .file("in/data.txt", Text(table()))
            .err(has(&["data.txt"])),
    );
    c.push(Case::csv("data-csv-is-a-fifo", "").file("in/data.csv", Fifo).err(has(&["data.csv"])));
    c.push(Case::csv("data-csv-is-a-dir", "").file("in/data.csv", Dir).err(has(&["data.csv"])));
    c.push(
        Case::csv("data-csv-unreadable", &table())
            .step(Step::Edit(|d| unreadable(d, "in/data.csv")))
            .nobody()
            .err(has(&["data.csv"])),
    );
    c.push(
        Case::run("data-parquet-that-is-csv", &edit(TAB, &[("in/data.csv", "in/data.parquet")]))
            .file("in/data.parquet", Text(table()))
            .err(has(&["data.parquet"])),
    );
    c.push(
        Case::run("data-parquet-empty", &edit(TAB, &[("in/data.csv", "in/data.parquet")]))
            .file("in/data.parquet", Text(String::new()))
            .err(has(&["data.parquet"])),
    );
    c.push(
        Case::run("data-partitions-mismatched", &edit(TAB, &[("in/data.csv", "in/parts")]))
            .file("in/parts/part-1.csv", Text(table()))
            .file("in/parts/part-2.csv", Text(table().replace("a,b,c,Class", "a,b,d,Class")))
            .err(has(&["part-2.csv"])),
    );

    // --- CSV contents ---
    let cell = |row: usize, col: usize, v: &'static str| {
        table_with(300, move |r, c| {
            if r == row {
                c[col] = v.into()
            }
        })
    };
    c.push(Case::csv("csv-empty", "").err(has(&["data.csv"])));
    c.push(Case::csv("csv-one-newline", "\n").err(has(&["data.csv"])));
    c.push(Case::csv("csv-header-only", "a,b,c,Class\n").err(has(&["data.csv"])));
    c.push(Case::csv("csv-string-cell", &cell(17, 1, "abc")).err(has(&["data.csv", "row 17", "b"])));
    c.push(Case::csv("csv-nan-cell", &cell(5, 0, "NaN")).err(has(&["data.csv", "row 5", "a"])));
    c.push(Case::csv("csv-inf-cell", &cell(6, 2, "inf")).err(has(&["data.csv", "row 6", "c"])));
    c.push(Case::csv("csv-huge-number-cell", &cell(8, 2, "1e400")).err(has(&["data.csv", "row 8", "c"])));
    c.push(Case::csv("csv-empty-cell", &cell(9, 1, "")).err(has(&["data.csv", "row 9", "b"])));
    c.push(Case::csv("csv-empty-label", &cell(11, 3, "")).err(has(&["data.csv", "row 11", "Class"])));
    c.push(
        Case::csv(
            "csv-extra-field",
            &table_with(300, |r, c| {
                if r == 12 {
                    c.push("9".into())
                }
            }),
        )
        .err(has(&["data.csv", "12"])),
    );
    c.push(
        Case::csv(
            "csv-missing-field",
            &table_with(300, |r, c| {
                if r == 13 {
                    c.pop();
                }
            }),
        )
        .err(has(&["data.csv", "13"])),
    );
    c.push(
        Case::csv("csv-duplicate-header", &table().replacen("a,b,c,Class", "a,b,a,Class", 1))
            .err(has(&["data.csv", "a"])),
    );
    c.push(
        Case::csv("csv-empty-header-name", &table().replacen("a,b,c,Class", "a,,c,Class", 1))
            .err(has(&["data.csv"])),
    );
    c.push(
        Case::csv("csv-label-one-class", &table_with(300, |_, c| c[3] = "0".into()))
            .err(has(&["data.csv", "Class"])),
    );
    c.push(Case::csv("csv-four-rows", &table_with(4, |_, _| {})).not_green(has(&["data.csv"])));
    c.push(Case::csv("csv-twelve-rows", &table_with(12, |_, _| {})).not_green(has(&["data.csv"])));
    c.push(Case::csv("csv-semicolons", &table().replace(',', ";")).err(has(&["data.csv", "Class"])));
    c.push(Case::csv("csv-tabs", &table().replace(',', "\t")).err(has(&["data.csv", "Class"])));
    c.push(Case::csv("csv-crlf", &table().replace('\n', "\r\n")).ok());
    c.push(Case::csv("csv-bom", &format!("\u{feff}{}", table())).either(has(&["data.csv"])));
    c.push(
        Case::csv(
            "csv-unterminated-quote",
            &table_with(300, |r, c| {
                if r == 20 {
                    c[1] = "\"1.0".into()
                }
            }),
        )
        .err(has(&["data.csv"])),
    );
    c.push(
        Case::csv("csv-not-utf8-cell", "")
            .file(
                "in/data.csv",
                Gen(|p| {
                    let mut b = table().into_bytes();
                    b.extend_from_slice(b"1.0,\xff\xfe,2.0,0\n");
                    std::fs::write(p, b).unwrap();
                }),
            )
            .err(has(&["data.csv"])),
    );
    c.push(
        Case::csv("csv-binary-garbage", "")
            .file("in/data.csv", Copy(lib("tempered_tabular")))
            .err(has(&["data.csv"])),
    );
    c.push(
        Case::csv(
            "csv-label-three-classes",
            &table_with(300, |r, c| {
                if r % 5 == 0 {
                    c[3] = "2".into()
                }
            }),
        )
        .either(has(&["data.csv"])),
    );
    c.push(
        Case::csv(
            "csv-label-words",
            &table_with(300, |_, c| c[3] = if c[3] == "1" { "fraud".into() } else { "ok".into() }),
        )
        .either(has(&["data.csv", "Class"])),
    );
    c.push(
        Case::csv(
            "csv-label-float",
            &table_with(300, |r, c| {
                if r == 4 {
                    c[3] = "0.5".into()
                }
            }),
        )
        .err(has(&["data.csv", "Class"])),
    );
    c.push(
        Case::csv(
            "csv-constant-features",
            &table_with(300, |_, c| {
                c[0] = "1".into();
                c[1] = "1".into();
                c[2] = "1".into();
            }),
        )
        .not_green(has(&["data.csv"])),
    );
    c.push(
        Case::csv(
            "csv-long-cell",
            &table_with(300, |r, c| {
                if r == 3 {
                    c[0] = "9".repeat(1 << 20)
                }
            }),
        )
        .err(has(&["data.csv", "row 3", "a"])),
    );
    c.push(
        Case::csv(
            "csv-quoted-cells",
            &table()
                .lines()
                .map(|l| l.split(',').map(|x| format!("\"{x}\"")).collect::<Vec<_>>().join(",") + "\n")
                .collect::<String>(),
        )
        .ok(),
    );

    // --- [model], tabular ---
    c.push(
        Case::validate("model-kind-unknown", &edit(&f, &[("kind = \"mlp\"", "kind = \"transformer\"")]))
            .err(toml()),
    );
    c.push(
        Case::validate(
            "model-kind-word-cnn-on-table",
            &edit(&f, &[("kind = \"mlp\"", "kind = \"word-cnn\"")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate("model-hidden-zero", &edit(&f, &[("hidden = [32, 32]", "hidden = [0, 32]")]))
            .err(toml()),
    );
    c.push(
        Case::validate(
            "model-hidden-huge",
            &edit(&f, &[("hidden = [32, 32]", "hidden = [1000000, 1000000]")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate("model-hidden-negative", &edit(&f, &[("hidden = [32, 32]", "hidden = [-1]")]))
            .err(toml()),
    );
    c.push(
        Case::validate("model-hidden-string", &edit(&f, &[("hidden = [32, 32]", "hidden = \"32\"")]))
            .err(toml()),
    );
    c.push(
        Case::validate("model-hidden-float", &edit(&f, &[("hidden = [32, 32]", "hidden = [32.5]")]))
            .err(toml()),
    );
    c.push(
        Case::run("model-hidden-empty", &edit(TAB, &[("hidden = [8]", "hidden = []")]))
            .file("in/data.csv", Text(table()))
            .either(toml()),
    );
    c.push(
        Case::validate("model-unknown-key", &edit(&f, &[("kind = \"mlp\"", "kind = \"mlp\"\nlayers = 3")]))
            .err(toml()),
    );

    // --- [train] ---
    c.push(Case::validate("train-epochs-negative", &edit(&f, &[("epochs = 6", "epochs = -1")])).err(toml()));
    c.push(Case::validate("train-epochs-float", &edit(&f, &[("epochs = 6", "epochs = 1e9")])).err(toml()));
    c.push(
        Case::validate("train-batch-zero", &edit(&f, &[("batch_size = 128", "batch_size = 0")])).err(toml()),
    );
    c.push(
        Case::validate("train-batch-negative", &edit(&f, &[("batch_size = 128", "batch_size = -5")]))
            .err(toml()),
    );
    c.push(Case::validate("train-lr-zero", &edit(&f, &[("lr = 3e-3", "lr = 0.0")])).err(toml()));
    c.push(Case::validate("train-lr-negative", &edit(&f, &[("lr = 3e-3", "lr = -1.0")])).err(toml()));
    c.push(Case::validate("train-lr-nan", &edit(&f, &[("lr = 3e-3", "lr = nan")])).err(toml()));
    c.push(Case::validate("train-lr-inf", &edit(&f, &[("lr = 3e-3", "lr = inf")])).err(toml()));
    c.push(Case::validate("train-lr-string", &edit(&f, &[("lr = 3e-3", "lr = \"fast\"")])).err(toml()));
    c.push(
        Case::run("train-lr-1e30", &edit(TAB, &[("lr = 1e-2", "lr = 1e30")]))
            .file("in/data.csv", Text(table()))
            .not_green(toml()),
    );
    c.push(
        Case::run("train-epochs-0", &edit(TAB, &[("epochs = 8", "epochs = 0")]))
            .file("in/data.csv", Text(table()))
            .not_green(toml()),
    );
    c.push(
        Case::validate(
            "train-patience-negative",
            &edit(&f, &[("patience = 0\n\n[[attack]]", "patience = -1\n\n[[attack]]")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "train-class-weight-word",
            &edit(&f, &[("lr = 3e-3", "lr = 3e-3\nclass_weight = \"heavy\"")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "train-class-weight-negative",
            &edit(&f, &[("lr = 3e-3", "lr = 3e-3\nclass_weight = [1.0, -1.0]")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "train-class-weight-nan",
            &edit(&f, &[("lr = 3e-3", "lr = 3e-3\nclass_weight = [1.0, nan]")]),
        )
        .err(toml()),
    );
    c.push(
        Case::run(
            "train-class-weight-wrong-count",
            &edit(TAB, &[("lr = 1e-2", "lr = 1e-2\nclass_weight = [1.0, 2.0, 3.0]")]),
        )
        .file("in/data.csv", Text(table()))
        .err(toml()),
    );
    c.push(
        Case::validate(
            "train-weight-and-sampling",
            &edit(&f, &[("lr = 3e-3", "lr = 3e-3\nclass_weight = \"balanced\"\nsampling = \"balanced\"")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate("train-sampling-word", &edit(&f, &[("lr = 3e-3", "lr = 3e-3\nsampling = \"weird\"")]))
            .err(toml()),
    );
    c.push(
        Case::run("train-init-missing", &edit(TAB, &[("lr = 1e-2", "lr = 1e-2\ninit = \"runs/nope\"")]))
            .file("in/data.csv", Text(table()))
            .err(has(&["runs/nope"])),
    );
    c.push(
        Case::run(
            "train-init-garbage",
            &edit(TAB, &[("lr = 1e-2", "lr = 1e-2\ninit = \"in/w.safetensors\"")]),
        )
        .file("in/data.csv", Text(table()))
        .file("in/w.safetensors", Text("garbage".into()))
        .err(has(&["w.safetensors"])),
    );
    c.push(
        with_run(Case::csv("train-init-wrong-shape", &table()))
            .step(Step::Edit(|d| {
                let f = d.join("pipelines/p.toml");
                let t = std::fs::read_to_string(&f).unwrap();
                std::fs::write(
                    &f,
                    t.replace("hidden = [8]", "hidden = [16]")
                        .replace("lr = 1e-2", "lr = 1e-2\ninit = \"run\""),
                )
                .unwrap();
            }))
            .map_args(&["run", "@P", "--out", "@D/run2"])
            .err(has(&["run"])),
    );
    c.push(
        Case::validate("train-unknown-key", &edit(&f, &[("lr = 3e-3", "lr = 3e-3\nmomentum = 0.9")]))
            .err(toml()),
    );

    // --- [[attack]] ---
    c.push(
        Case::validate(
            "attack-missing-plugin",
            &edit(&f, &[("plugin = \"tabular\"\nattack = \"fraudster\"", "attack = \"fraudster\"")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "attack-plugin-unknown",
            &edit(
                &f,
                &[(
                    "plugin = \"tabular\"\nattack = \"fraudster\"",
                    "plugin = \"nope\"\nattack = \"fraudster\"",
                )],
            ),
        )
        .err(toml()),
    );
    c.push(
        Case::validate("attack-name-unknown", &edit(&f, &[("attack = \"fraudster\"", "attack = \"nope\"")]))
            .err(toml()),
    );
    c.push(
        Case::validate("attack-duplicate-ids", &edit(&f, &[("id = \"fraudster\"", "id = \"pgd\"")]))
            .err(toml()),
    );
    c.push(
        Case::validate("attack-id-empty", &edit(&f, &[("id = \"fraudster\"", "id = \"\"")])).either(toml()),
    );
    c.push(
        Case::validate("attack-id-slash", &edit(&f, &[("id = \"fraudster\"", "id = \"../x\"")]))
            .either(toml()),
    );
    c.push(Case::validate("attack-params-nan", &edit(&f, &[("epsilon = 0.5", "epsilon = nan")])).err(toml()));
    c.push(Case::validate("attack-params-inf", &edit(&f, &[("epsilon = 0.5", "epsilon = inf")])).err(toml()));
    c.push(
        Case::validate("attack-params-negative", &edit(&f, &[("epsilon = 0.5", "epsilon = -1.0")]))
            .err(toml()),
    );
    c.push(
        Case::validate("attack-params-string", &edit(&f, &[("epsilon = 0.5", "epsilon = \"big\"")]))
            .err(toml()),
    );
    c.push(
        Case::validate("attack-params-misspelt", &edit(&f, &[("epsilon = 0.5", "epsilom = 0.5")]))
            .err(toml()),
    );
    c.push(
        Case::validate("attack-params-steps-zero", &edit(&f, &[("steps = 5 }", "steps = 0 }")])).err(toml()),
    );
    c.push(
        Case::validate("attack-params-norm-unknown", &edit(&f, &[("norm = \"linf\"", "norm = \"l7\"")]))
            .err(toml()),
    );
    c.push(
        Case::validate("attack-params-huge-steps", &edit(&f, &[("steps = 5 }", "steps = 1e300 }")]))
            .err(toml()),
    );
    c.push(
        Case::validate("attack-params-budget-nan", &edit(&f, &[("budget = 3.0", "budget = nan")]))
            .err(toml()),
    );
    c.push(
        Case::validate("attack-classes-empty", &edit(&f, &[("classes = [1]", "classes = []")])).err(toml()),
    );
    c.push(
        Case::validate("attack-classes-negative", &edit(&f, &[("classes = [1]", "classes = [-1]")]))
            .err(toml()),
    );
    c.push(
        Case::run("attack-classes-7", &edit(TAB, &[("classes = [1]", "classes = [7]")]))
            .file("in/data.csv", Text(table()))
            .not_green(toml())
            .check(rate_is_null),
    );
    c.push(
        Case::validate(
            "attack-query-budget-zero",
            &edit(&f, &[("id = \"fraudster\"", "id = \"fraudster\"\nquery_budget = 0")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "attack-batch-zero",
            &edit(&f, &[("id = \"fraudster\"", "id = \"fraudster\"\nbatch_size = 0")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "attack-on-error-word",
            &edit(&f, &[("id = \"fraudster\"", "id = \"fraudster\"\non_error = \"maybe\"")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "attack-unknown-key",
            &edit(&f, &[("id = \"fraudster\"", "id = \"fraudster\"\nweight = 2")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "attack-audio-plugin-on-table",
            &edit(
                &f,
                &[("plugin = \"tabular\"\nattack = \"fraudster\"", "plugin = \"audio\"\nattack = \"noise\"")],
            ),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "attack-text-plugin-on-audio",
            &edit(AUDIO, &[("plugin = \"audio\"\nattack = \"pgd\"", "plugin = \"text\"\nattack = \"pwws\"")]),
        )
        .err(toml()),
    );
    c.push(Case::validate("attack-none-with-harden", &edit(TAB, &[("[[attack]]\nid = \"pgd\"\nplugin = \"tabular\"\nattack = \"pgd\"\nclasses = [1]\nparams = { norm = \"linf\", epsilon = 0.5, steps = 3 }\n", "")])).err(toml()));

    c.push(
        Case::run("attack-params-string-run", &edit(TAB, &[("epsilon = 0.5", "epsilon = \"big\"")]))
            .file("in/data.csv", Text(table()))
            .err(toml())
            .check(trained),
    );
    c.push(
        Case::csv(
            "csv-pandas-index",
            &table()
                .lines()
                .enumerate()
                .map(|(i, l)| if i == 0 { format!(",{l}\n") } else { format!("{},{l}\n", i - 1) })
                .collect::<String>(),
        )
        .err(has(&["data.csv", "column 1"])),
    );

    // --- plugin files ---
    let plugin_at = |path: &str| {
        edit(
            &f,
            &[(
                "plugin = \"tabular\"\nattack = \"fraudster\"",
                &format!("plugin = \"tabular\"\npath = \"{path}\"\nattack = \"fraudster\""),
            )],
        )
    };
    c.push(Case::validate("so-path-missing", &plugin_at("@D/nope.so")).err(has(&["nope.so"])));
    c.push(Case::validate("so-path-is-a-dir", &plugin_at("@D/in")).file("in", Dir).err(has(&["in"])));
    c.push(
        Case::validate("so-empty", &plugin_at("@D/libx.so"))
            .file("libx.so", Text(String::new()))
            .err(has(&["libx.so"])),
    );
    c.push(
        Case::validate("so-text", &plugin_at("@D/libx.so"))
            .file("libx.so", Text("hello\n".into()))
            .err(has(&["libx.so"])),
    );
    c.push(
        Case::validate("so-truncated", &plugin_at("@D/libx.so"))
            .file(
                "libx.so",
                Gen(|p| {
                    let b = std::fs::read(release().join("libtempered_tabular.so")).unwrap();
                    std::fs::write(p, &b[..b.len() / 3]).unwrap();
                }),
            )
            .err(has(&["libx.so"])),
    );
    c.push(
        Case::validate("so-truncated-header", &plugin_at("@D/libx.so"))
            .file(
                "libx.so",
                Gen(|p| {
                    let b = std::fs::read(release().join("libtempered_tabular.so")).unwrap();
                    std::fs::write(p, &b[..100]).unwrap();
                }),
            )
            .err(has(&["libx.so"])),
    );
    c.push(
        Case::validate("so-foreign-library", &plugin_at("@D/libx.so"))
            .file(
                "libx.so",
                Gen(|p| {
                    let libm = [
                        "/lib/x86_64-linux-gnu/libm.so.6",
                        "/usr/lib/x86_64-linux-gnu/libm.so.6",
                        "/lib64/libm.so.6",
                        "/lib/aarch64-linux-gnu/libm.so.6",
                    ]
                    .into_iter()
                    .find(|l| Path::new(l).exists())
                    .expect("a libm");
                    std::fs::copy(libm, p).unwrap();
                }),
            )
            .err(has(&["libx.so"])),
    );
    c.push(
        Case::validate("so-other-architecture", &plugin_at("@D/libx.so"))
            .file(
                "libx.so",
                Gen(|p| {
                    let mut b = std::fs::read(release().join("libtempered_tabular.so")).unwrap();
                    b[18] = 0x28; // e_machine: ARM
                    b[19] = 0;
                    std::fs::write(p, b).unwrap();
                }),
            )
            .err(has(&["libx.so"])),
    );
    c.push(Case::validate("so-executable", &plugin_at("@B/tempered")).err(has(&["tempered"])));
    c.push(Case::validate("so-fifo", &plugin_at("@D/libx.so")).file("libx.so", Fifo).err(has(&["libx.so"])));
    c.push(
        Case::validate("so-dangling-link", &plugin_at("@D/libx.so"))
            .file("libx.so", Link("@D/gone.so".into()))
            .err(has(&["libx.so"])),
    );
    c.push(
        Case::validate("so-wrong-plugin-name", &plugin_at(&lib("tempered_audio")))
            .err(has(&["tempered_audio"])),
    );
    c.push(
        Case::validate("so-truncated-on-search-path", &f)
            .file("plugdir/libtempered_tabular.so", Text("\x7fELF".into()))
            .env("TEMPERED_PLUGIN_PATH", "@D/plugdir")
            .err(has(&["libtempered_tabular.so"])),
    );
    c.push(
        Case::run("so-truncated-on-search-path-run", TAB)
            .file("in/data.csv", Text(table()))
            .file("plugdir/libtempered_tabular.so", Text(String::new()))
            .env("TEMPERED_PLUGIN_PATH", "@D/plugdir")
            .err(has(&["libtempered_tabular.so"]))
            .check(trained),
    );
    let bad_plugdir = |c: Case| {
        c.file("plugdir/libempty.so", Text(String::new()))
            .file("plugdir/libtext.so", Text("not a library".into()))
            .file("plugdir/libfifo.so", Fifo)
            .file(
                "plugdir/libtrunc.so",
                Gen(|p| {
                    let b = std::fs::read(release().join("libtempered_tabular.so")).unwrap();
                    std::fs::write(p, &b[..b.len() / 2]).unwrap();
                }),
            )
            .env("TEMPERED_PLUGIN_PATH", "@D/plugdir")
    };
    c.push(
        bad_plugdir(Case::cli("plugins-bad-files-listed", &["plugins"])).ok().check(stdout_lists_unusable),
    );
    c.push(
        Case::cli("plugins-path-is-a-file", &["plugins"])
            .file("plugfile", Text("x".into()))
            .env("TEMPERED_PLUGIN_PATH", "@D/plugfile")
            .ok(),
    );
    c.push(
        Case::cli("plugins-path-missing", &["plugins"])
            .env("TEMPERED_PLUGIN_PATH", "@D/nothing:/nonexistent")
            .ok(),
    );
    c.push(
        Case::cli("plugins-unreadable-folder", &["plugins"])
            .file("plugdir/libx.so", Text("x".into()))
            .env("TEMPERED_PLUGIN_PATH", "@D/plugdir")
            .step(Step::Edit(|d| unreadable(d, "plugdir")))
            .nobody()
            .ok()
            .check(|ctx| {
                if ctx.stdout.contains("plugdir  (") {
                    Ok(())
                } else {
                    Err("the unreadable folder is not said".into())
                }
            }),
    );
    c.push(
        Case::cli("plugins-search-path-missing", &["plugins", "--pipeline", "@P"])
            .file("pipelines/p.toml", Text(plus(&f, "[plugins]\nsearch_path = [\"/nonexistent\"]")))
            .ok(),
    );
    c.push(Case::validate("plugins-search-path-number", &plus(&f, "[plugins]\nsearch_path = 3")).err(toml()));
    c.push(bad_plugdir(Case::validate("plugins-bad-files-validate", &f)).ok());

    // --- [harden] ---
    c.push(
        Case::validate(
            "harden-attack-dangling",
            &edit(
                &f,
                &[("strategy = \"pgd\"\nattack = \"pgd\"", "strategy = \"pgd\"\nattack = \"pgd-typo\"")],
            ),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "harden-strategy-unknown",
            &edit(&f, &[("strategy = \"pgd\"", "strategy = \"magic\"")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "harden-weight-over-one",
            &edit(&f, &[("epochs = 2\npatience = 0", "epochs = 2\npatience = 0\nadversarial_weight = 2.0")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "harden-weight-negative",
            &edit(&f, &[("epochs = 2\npatience = 0", "epochs = 2\npatience = 0\nadversarial_weight = -0.5")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "harden-weight-nan",
            &edit(&f, &[("epochs = 2\npatience = 0", "epochs = 2\npatience = 0\nadversarial_weight = nan")]),
        )
        .err(toml()),
    );
    for (name, value) in [("one", "1.0"), ("zero", "0.0"), ("nan", "nan")] {
        let average = format!("epochs = 2\npatience = 0\nweight_average = {value}");
        c.push(
            Case::validate(
                &format!("harden-weight-average-{name}"),
                &edit(&f, &[("epochs = 2\npatience = 0", &average)]),
            )
            .err(toml()),
        );
    }
    c.push(
        Case::validate(
            "train-weight-average-negative",
            &edit(&f, &[("lr = 3e-3", "lr = 3e-3\nweight_average = -0.99")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "harden-attack-list-empty",
            &edit(&f, &[("strategy = \"pgd\"\nattack = \"pgd\"", "strategy = \"pgd\"\nattack = []")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "harden-attack-list-duplicate",
            &edit(
                &f,
                &[(
                    "strategy = \"pgd\"\nattack = \"pgd\"",
                    "strategy = \"pgd\"\nattack = [\"pgd\", \"pgd\"]",
                )],
            ),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "harden-beta-on-pgd",
            &edit(&f, &[("strategy = \"pgd\"", "strategy = \"pgd\"\nbeta = 6.0")]),
        )
        // Accepted: config.toml, the resolved pipeline a user may run again, spells out
        // every default, beta included, whatever the strategy.
        .either(toml()),
    );
    c.push(
        Case::validate(
            "harden-trades-beta-negative",
            &edit(&f, &[("strategy = \"pgd\"", "strategy = \"trades\"\nbeta = -1.0")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "harden-params-nan",
            &edit(
                &f,
                &[("epochs = 2\npatience = 0", "epochs = 2\npatience = 0\nparams = { epsilon = nan }")],
            ),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "harden-params-misspelt",
            &edit(
                &f,
                &[("epochs = 2\npatience = 0", "epochs = 2\npatience = 0\nparams = { epsilom = 1.0 }")],
            ),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "harden-unknown-key",
            &edit(&f, &[("epochs = 2\npatience = 0", "epochs = 2\npatience = 0\nrounds = 3")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "harden-early-stopping-word",
            &edit(&f, &[("epochs = 2\npatience = 0", "epochs = 2\npatience = 0\nearly_stopping = \"soon\"")]),
        )
        .err(toml()),
    );
    c.push(
        Case::run(
            "harden-steps-0",
            &edit(TAB, &[("epochs = 1\npatience = 0", "epochs = 1\npatience = 0\nparams = { steps = 0 }")]),
        )
        .file("in/data.csv", Text(table()))
        .not_green(has(&["steps"])),
    );
    c.push(
        Case::run(
            "harden-epsilon-0",
            &edit(
                TAB,
                &[("epochs = 1\npatience = 0", "epochs = 1\npatience = 0\nparams = { epsilon = 0.0 }")],
            ),
        )
        .file("in/data.csv", Text(table()))
        .not_green(has(&["epsilon"])),
    );
    c.push(
        Case::run("harden-epochs-0", &edit(TAB, &[("epochs = 1\npatience = 0", "epochs = 0\npatience = 0")]))
            .file("in/data.csv", Text(table()))
            .not_green(toml()),
    );

    // --- [evaluate] and sweeps ---
    c.push(
        Case::run("evaluate-examples-0", &plus(TAB, "[evaluate]\nexamples = 0"))
            .file("in/data.csv", Text(table()))
            .not_green(toml())
            .check(rate_is_null),
    );
    c.push(Case::validate("evaluate-examples-negative", &plus(&f, "[evaluate]\nexamples = -1")).err(toml()));
    c.push(
        Case::validate(
            "evaluate-operating-point-over-one",
            &plus(&f, "[evaluate]\noperating_point = { fpr = 2.0 }"),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "evaluate-operating-point-nan",
            &plus(&f, "[evaluate]\noperating_point = { fpr = nan }"),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "evaluate-operating-point-both",
            &plus(&f, "[evaluate]\noperating_point = { fpr = 0.01, precision = 0.9 }"),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "evaluate-operating-point-on-audio",
            &edit(AUDIO, &[("examples = 10", "examples = 10\noperating_point = { fpr = 0.01 }")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "sweep-attack-dangling",
            &edit(&f, &[("attack = \"pgd\"\nparam = \"epsilon\"", "attack = \"nope\"\nparam = \"epsilon\"")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate("sweep-param-misspelt", &edit(&f, &[("param = \"epsilon\"", "param = \"epsilom\"")]))
            .err(toml()),
    );
    c.push(
        Case::run(
            "sweep-param-misspelt-run",
            &plus(TAB, "[[evaluate.sweep]]\nattack = \"pgd\"\nparam = \"epsilom\"\nvalues = [0.25]"),
        )
        .file("in/data.csv", Text(table()))
        .err(toml())
        .check(trained),
    );
    c.push(
        Case::validate("sweep-values-empty", &edit(&f, &[("values = [0.25, 1.0]", "values = []")]))
            .err(toml()),
    );
    c.push(
        Case::validate("sweep-values-nan", &edit(&f, &[("values = [0.25, 1.0]", "values = [0.25, nan]")]))
            .err(toml()),
    );
    c.push(
        Case::validate("sweep-values-inf", &edit(&f, &[("values = [0.25, 1.0]", "values = [inf]")]))
            .err(toml()),
    );
    c.push(
        Case::validate("sweep-values-strings", &edit(&f, &[("values = [0.25, 1.0]", "values = [\"a\"]")]))
            .err(toml()),
    );
    c.push(
        Case::validate("sweep-values-negative", &edit(&f, &[("values = [0.25, 1.0]", "values = [-1.0]")]))
            .err(toml()),
    );
    c.push(
        Case::validate(
            "sweep-param-steps-float",
            &edit(&f, &[("param = \"epsilon\"\nvalues = [0.25, 1.0]", "param = \"steps\"\nvalues = [2.5]")]),
        )
        .err(toml()),
    );
    c.push(Case::validate("evaluate-unknown-key", &plus(&f, "[evaluate]\nexampels = 10")).err(toml()));

    // --- [report] ---
    c.push(
        Case::validate("report-samples-negative", &edit(&f, &[("samples = 4", "samples = -1")])).err(toml()),
    );
    c.push(
        Case::validate("report-unknown-key", &edit(&f, &[("samples = 4", "samples = 4\nplotz = false")]))
            .err(toml()),
    );
    c.push(
        Case::run("report-samples-huge", &plus(TAB, "[report]\nsamples = 1000000"))
            .file("in/data.csv", Text(table()))
            .ok(),
    );

    // --- [tradeoff] ---
    let tr = |body: &str| {
        plus(&edit(&f, &[("strategy = \"pgd\"", "strategy = \"trades\"")]), &format!("[tradeoff]\n{body}"))
    };
    c.push(Case::validate("tradeoff-param-unknown", &tr("param = \"gamma\"\nvalues = [1.0]")).err(toml()));
    c.push(Case::validate("tradeoff-values-empty", &tr("param = \"beta\"\nvalues = []")).err(toml()));
    c.push(Case::validate("tradeoff-values-nan", &tr("param = \"beta\"\nvalues = [1.0, nan]")).err(toml()));
    c.push(
        Case::validate(
            "tradeoff-drop-negative",
            &tr("param = \"beta\"\nvalues = [1.0, 3.0]\nchoose = { max_clean_drop = -1.0 }"),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "tradeoff-choose-attack-dangling",
            &tr("param = \"beta\"\nvalues = [1.0, 3.0]\nchoose = { attack = \"nope\" }"),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "tradeoff-choose-held-out",
            &tr("param = \"beta\"\nvalues = [1.0, 3.0]\nchoose = { attack = \"fraudster\" }"),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "tradeoff-beta-without-trades",
            &plus(&f, "[tradeoff]\nparam = \"beta\"\nvalues = [1.0]"),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "tradeoff-without-harden",
            &plus(
                &edit(
                    &f,
                    &[("strategy = \"pgd\"\nattack = \"pgd\"\nepochs = 2\npatience = 0", "enabled = false")],
                ),
                "[tradeoff]\nparam = \"adversarial_weight\"\nvalues = [0.5]",
            ),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "tradeoff-params-misspelt",
            &plus(&f, "[tradeoff]\nparam = \"params.epsilom\"\nvalues = [0.5, 1.0]"),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "tradeoff-weight-over-one",
            &plus(&f, "[tradeoff]\nparam = \"adversarial_weight\"\nvalues = [0.5, 1.5]"),
        )
        .err(toml()),
    );

    // --- [[defence]] ---
    c.push(Case::validate("defence-kind-unknown", &plus(&f, "[[defence]]\nkind = \"magic\"")).err(toml()));
    c.push(
        Case::validate(
            "defence-quantise-step-zero",
            &plus(&f, "[[defence]]\nkind = \"quantise\"\nstep = 0.0"),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "defence-quantise-step-negative",
            &plus(&f, "[[defence]]\nkind = \"quantise\"\nstep = -0.5"),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "defence-quantise-step-nan",
            &plus(&f, "[[defence]]\nkind = \"quantise\"\nstep = nan"),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "defence-bit-depth-on-table",
            &plus(&f, "[[defence]]\nkind = \"bit-depth\"\nbits = 8"),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "defence-median-even-window",
            &plus(AUDIO, "[[defence]]\nkind = \"median\"\nwindow = 4"),
        )
        .err(toml()),
    );
    c.push(
        Case::validate("defence-bits-zero", &plus(AUDIO, "[[defence]]\nkind = \"bit-depth\"\nbits = 0"))
            .err(toml()),
    );
    c.push(
        Case::validate(
            "defence-noise-samples-zero",
            &plus(&f, "[[defence]]\nkind = \"random-noise\"\nsigma = 0.3\nsamples = 0"),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "defence-low-pass-over-nyquist",
            &plus(AUDIO, "[[defence]]\nkind = \"low-pass\"\ncutoff_hz = 9000.0"),
        )
        .err(toml()),
    );
    c.push(
        Case::validate("defence-on-text", &plus(TEXT, "[[defence]]\nkind = \"quantise\"\nstep = 0.5"))
            .err(toml()),
    );
    c.push(Case::validate("defence-duplicate-ids", &plus(&f, "[[defence]]\nid = \"q\"\nkind = \"quantise\"\nstep = 0.5\n[[defence]]\nid = \"q\"\nkind = \"quantise\"\nstep = 1.0")).err(toml()));
    c.push(Case::validate("defence-missing-kind", &plus(&f, "[[defence]]\nstep = 0.5")).err(toml()));

    // --- text ---
    let tcsv = |body: &str| {
        edit(
            TEXT,
            &[
                ("path = \"data/mr/mr.csv\"", &format!("path = \"in/t.csv\"{body}")),
                (
                    "split = { test_last_per_class = 533, validation = 0.1 }\nlimit = { train = 800, validation = 50, test = 30 }",
                    "split = { validation = 0.1, test = 0.2 }",
                ),
            ],
        )
    };
    let reviews = |n: usize| {
        let mut s = String::from("label,text\n");
        for i in 0..n {
            let (l, t) = if i % 2 == 0 {
                (0, "a dull , boring and tedious film")
            } else {
                (1, "a wonderful , moving and brilliant film")
            };
            s += &format!("{l},\"{t} number {}\"\n", i % 13);
        }
        s
    };
    c.push(
        Case::validate(
            "text-min-count-huge",
            &edit(TEXT, &[("max_words = 32", "max_words = 32\nmin_count = 100000")]),
        )
        .either(toml()),
    );
    c.push(
        Case::run(
            "text-min-count-huge-run",
            &edit(TEXT, &[("max_words = 32", "max_words = 32\nmin_count = 100000")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate("text-max-words-zero", &edit(TEXT, &[("max_words = 32", "max_words = 0")]))
            .err(toml()),
    );
    c.push(
        Case::validate("text-embedding-zero", &edit(TEXT, &[("embedding_dim = 16", "embedding_dim = 0")]))
            .err(toml()),
    );
    c.push(Case::validate("text-filters-zero", &edit(TEXT, &[("filters = 8", "filters = 0")])).err(toml()));
    c.push(Case::validate("text-widths-empty", &edit(TEXT, &[("widths = [3]", "widths = []")])).err(toml()));
    c.push(Case::validate("text-widths-zero", &edit(TEXT, &[("widths = [3]", "widths = [0]")])).err(toml()));
    c.push(
        Case::validate("text-widths-over-max-words", &edit(TEXT, &[("widths = [3]", "widths = [100]")]))
            .err(toml()),
    );
    c.push(
        Case::validate("text-model-mlp", &edit(TEXT, &[("kind = \"word-cnn\"", "kind = \"mlp\"")]))
            .err(toml()),
    );
    c.push(
        Case::run(
            "text-bert-missing-folder",
            &edit(
                TEXT,
                &[(
                    "kind = \"word-cnn\"\nembedding_dim = 16\nfilters = 8\nwidths = [3]\nmax_words = 32",
                    "kind = \"bert\"\nbert = { path = \"models/nope\" }",
                )],
            ),
        )
        .err(has(&["models/nope"])),
    );
    c.push(
        Case::validate("text-classes-empty", &edit(TEXT, &[("classes = [\"0\", \"1\"]", "classes = []")]))
            .err(toml()),
    );
    c.push(
        Case::validate("text-classes-one", &edit(TEXT, &[("classes = [\"0\", \"1\"]", "classes = [\"0\"]")]))
            .err(toml()),
    );
    c.push(
        Case::validate(
            "text-classes-duplicate",
            &edit(TEXT, &[("classes = [\"0\", \"1\"]", "classes = [\"0\", \"0\"]")]),
        )
        .err(toml()),
    );
    c.push(
        Case::run(
            "text-classes-absent",
            &edit(TEXT, &[("classes = [\"0\", \"1\"]", "classes = [\"0\", \"1\", \"2\"]")]),
        )
        .not_green(has(&["mr.csv", "`2`"])),
    );
    c.push(
        Case::run("text-column-missing", &edit(TEXT, &[("text = \"text\"", "text = \"review\"")]))
            .err(has(&["mr.csv", "review"])),
    );
    c.push(
        Case::run("text-label-missing", &edit(TEXT, &[("label = \"label\"", "label = \"sentiment\"")]))
            .err(has(&["mr.csv", "sentiment"])),
    );
    let tail_validation = |n: &str| {
        let split = format!("split = {{ test_last_per_class = 533, validation_last_per_class = {n} }}");
        edit(TEXT, &[("split = { test_last_per_class = 533, validation = 0.1 }", &split)])
    };
    c.push(Case::validate("text-validation-tail-zero", &tail_validation("0")).err(toml()));
    c.push(Case::run("text-validation-tail-too-long", &tail_validation("4798")).err(has(&[
        "mr.csv",
        "validation_last_per_class = 4798",
        "4798 non-test rows",
    ])));
    let encoding = |settings: &str| {
        edit(TEXT, &[("max_words = 32", &format!("max_words = 32\nsynonym_encoding = {{ {settings} }}"))])
    };
    c.push(
        Case::run("text-synonym-encoding-missing-list", &encoding("synonyms = \"data/nope.tsv\""))
            .err(has(&["synonym_encoding", "nope.tsv"])),
    );
    c.push(
        Case::run("text-synonym-encoding-fifo", &encoding("synonyms = \"in/s.tsv\""))
            .file("in/s.tsv", Fifo)
            .err(has(&["synonym_encoding", "s.tsv", "not a regular file"])),
    );
    c.push(
        Case::validate(
            "text-synonym-encoding-zero-candidates",
            &encoding("synonyms = \"data/wordnet-synonyms/wordnet-synonyms.tsv\", max_candidates = 0"),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "text-synonym-encoding-unknown-key",
            &encoding("synonyms = \"data/wordnet-synonyms/wordnet-synonyms.tsv\", synonym = \"x\""),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "text-synonym-encoding-bert",
            &edit(
                TEXT,
                &[(
                    "kind = \"word-cnn\"\nembedding_dim = 16\nfilters = 8\nwidths = [3]\nmax_words = 32",
                    "kind = \"bert\"\nbert = { path = \"models/nope\" }\nsynonym_encoding = { synonyms = \
                     \"data/wordnet-synonyms/wordnet-synonyms.tsv\" }",
                )],
            ),
        )
        .err(toml()),
    );
    c.push(Case::validate("text-limit-zero", &edit(TEXT, &[("train = 800", "train = 0")])).err(toml()));
    c.push(
        Case::validate("text-limit-negative", &edit(TEXT, &[("train = 800", "train = -800")])).err(toml()),
    );
    c.push(
        Case::validate(
            "text-delimiter-long",
            &edit(TEXT, &[("text = \"text\"", "text = \"text\"\ndelimiter = \"::\"")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "text-query-budget-zero",
            &edit(TEXT, &[("query_budget = 40\n\n[attack.params]", "query_budget = 0\n\n[attack.params]")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "text-synonyms-missing",
            &edit(TEXT, &[("data/wordnet-synonyms/wordnet-synonyms.tsv", "data/nope.tsv")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "text-synonyms-dir",
            &edit(TEXT, &[("data/wordnet-synonyms/wordnet-synonyms.tsv", "in")]),
        )
        .file("in", Dir)
        .err(toml()),
    );
    c.push(
        Case::validate(
            "text-synonyms-fifo",
            &edit(TEXT, &[("data/wordnet-synonyms/wordnet-synonyms.tsv", "in/s.tsv")]),
        )
        .file("in/s.tsv", Fifo)
        .err(toml()),
    );
    c.push(
        Case::validate("text-stopwords-not-utf8", &edit(TEXT, &[("data/stopwords/english.txt", "in/s.txt")]))
            .file("in/s.txt", Bytes(b"the\na\n\xff\xfe\n".to_vec()))
            .err(toml()),
    );
    c.push(
        Case::validate(
            "text-params-nan",
            &edit(TEXT, &[("max_change_ratio = 0.2", "max_change_ratio = nan")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "text-audio-key",
            &edit(TEXT, &[("text = \"text\"", "text = \"text\"\nsample_rate = 8000")]),
        )
        .err(toml()),
    );
    c.push(Case::run("text-csv-empty", &tcsv("")).file("in/t.csv", Text(String::new())).err(has(&["t.csv"])));
    c.push(
        Case::run("text-csv-header-only", &tcsv(""))
            .file("in/t.csv", Text("label,text\n".into()))
            .err(has(&["t.csv"])),
    );
    c.push(
        Case::run("text-csv-one-class", &tcsv(""))
            .file("in/t.csv", Text(reviews(200).replace("\n1,", "\n0,")))
            .err(has(&["t.csv"])),
    );
    c.push(
        Case::run("text-csv-not-utf8", &tcsv(""))
            .file(
                "in/t.csv",
                Gen(|p| {
                    let mut b = b"label,text\n".to_vec();
                    for i in 0..200 {
                        b.extend_from_slice(if i == 57 {
                            b"1,\"caf\xe9 au lait\"\n"
                        } else if i % 2 == 0 {
                            b"0,\"dull and tedious\"\n"
                        } else {
                            b"1,\"moving and brilliant\"\n"
                        });
                    }
                    std::fs::write(p, b).unwrap();
                }),
            )
            .err(has(&["t.csv", "58"])),
    );
    c.push(
        Case::run("text-csv-crlf", &tcsv(""))
            .file("in/t.csv", Text(reviews(200).replace('\n', "\r\n")))
            .either(has(&["t.csv"]))
            .check(|ctx| {
                let m = metrics(ctx)?;
                match m["clean"]["before"]["accuracy"].as_f64() {
                    Some(a) if a > 0.9 => Ok(()),
                    other => Err(format!("accuracy {other:?} on a trivial CRLF file")),
                }
            }),
    );
    c.push(
        Case::run("text-csv-bom", &tcsv(""))
            .file("in/t.csv", Text(format!("\u{feff}{}", reviews(200))))
            .either(has(&["t.csv"])),
    );
    c.push(
        Case::run("text-csv-label-not-in-classes", &tcsv(""))
            .file("in/t.csv", Text(reviews(200).replacen("\n1,", "\n7,", 1)))
            .err(has(&["t.csv", "7"])),
    );
    c.push(
        Case::run("text-csv-empty-text", &tcsv(""))
            .file(
                "in/t.csv",
                Text(reviews(200).replacen("\n0,\"a dull , boring and tedious film number 0\"", "\n0,", 1)),
            )
            .either(has(&["t.csv"])),
    );
    c.push(
        Case::run("text-csv-extra-field", &tcsv(""))
            .file("in/t.csv", Text(reviews(200).replacen("number 3\"\n", "number 3\",extra\n", 1)))
            .err(has(&["t.csv"])),
    );
    c.push(
        Case::run("text-csv-unterminated-quote", &tcsv(""))
            .file("in/t.csv", Text(reviews(200).replacen("number 5\"\n", "number 5\n", 1)))
            .err(has(&["t.csv"])),
    );
    c.push(Case::run("text-csv-fifo", &tcsv("")).file("in/t.csv", Fifo).err(has(&["t.csv"])));
    c.push(
        Case::run("text-csv-unreadable", &tcsv(""))
            .file("in/data.csv", Text(reviews(200)))
            .file("in/t.csv", Text(reviews(200)))
            .step(Step::Edit(|d| unreadable(d, "in/t.csv")))
            .nobody()
            .err(has(&["t.csv"])),
    );
    c.push(
        Case::run("text-csv-binary", &tcsv(""))
            .file("in/t.csv", Copy(lib("tempered_text")))
            .err(has(&["t.csv"])),
    );

    // --- audio ---
    let own = |extra: &str| {
        edit(
            AUDIO,
            &[
                ("path = \"data/fsdd/recordings\"", "path = \"in/wav\""),
                (
                    "limit = 120\nsplit = { test_index = [0, 4], validation = 0.1 }",
                    &format!("split = {{ test_index = [0, 3], validation = 0.2 }}{extra}"),
                ),
            ],
        )
    };
    c.push(
        Case::validate(
            "audio-channels-huge",
            &edit(AUDIO, &[("channels = [8, 8, 16, 16]", "channels = [100000, 100000]")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "audio-channels-zero",
            &edit(AUDIO, &[("channels = [8, 8, 16, 16]", "channels = [0, 8, 16, 16]")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "audio-channels-empty",
            &edit(AUDIO, &[("channels = [8, 8, 16, 16]", "channels = []")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate("audio-length-huge", &edit(AUDIO, &[("length = 4000", "length = 4000000000")]))
            .err(toml()),
    );
    c.push(Case::validate("audio-length-zero", &edit(AUDIO, &[("length = 4000", "length = 0")])).err(toml()));
    c.push(Case::run("audio-length-tiny", &edit(AUDIO, &[("length = 4000", "length = 10")])).err(toml()));
    c.push(
        Case::validate("audio-rate-zero", &edit(AUDIO, &[("sample_rate = 8000", "sample_rate = 0")]))
            .err(toml()),
    );
    c.push(
        Case::validate(
            "audio-rate-huge",
            &edit(AUDIO, &[("sample_rate = 8000", "sample_rate = 4000000000")]),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "audio-pattern-no-label",
            &edit(
                AUDIO,
                &[("pattern = \"{label}_{speaker}_{index}.wav\"", "pattern = \"{speaker}_{index}.wav\"")],
            ),
        )
        .err(toml()),
    );
    c.push(
        Case::validate(
            "audio-pattern-unknown-field",
            &edit(
                AUDIO,
                &[("pattern = \"{label}_{speaker}_{index}.wav\"", "pattern = \"{label}_{mood}.wav\"")],
            ),
        )
        .err(toml()),
    );
    c.push(
        Case::validate("audio-text-key", &edit(AUDIO, &[("length = 4000", "length = 4000\ntext = \"x\"")]))
            .err(toml()),
    );
    c.push(
        Case::validate("audio-model-word-cnn", &edit(AUDIO, &[("kind = \"m5\"", "kind = \"word-cnn\"")]))
            .err(toml()),
    );
    c.push(
        Case::validate("audio-params-snr-nan", &edit(AUDIO, &[("snr_db = 30.0", "snr_db = nan")]))
            .err(toml()),
    );
    c.push(
        Case::validate(
            "audio-test-index-reversed",
            &edit(AUDIO, &[("test_index = [0, 4]", "test_index = [4, 0]")]),
        )
        .err(toml()),
    );
    c.push(Case::run("audio-folder-missing", &own("")).err(has(&["in/wav"])));
    c.push(Case::run("audio-folder-empty", &own("")).file("in/wav", Dir).err(has(&["in/wav"])));
    c.push(
        Case::run("audio-folder-is-a-file", &own("")).file("in/wav", Text("x".into())).err(has(&["in/wav"])),
    );
    c.push(
        Case::run("audio-no-file-matches", &own(""))
            .file("in/wav/hello.wav", Bytes(wav_bytes(0.5, 8000, 440.0, 1)))
            .err(has(&["in/wav"])),
    );
    c.push(
        Case::run("audio-one-class", &own(""))
            .file(
                "in/wav",
                Gen(|p| {
                    wav_set(p);
                    for e in std::fs::read_dir(p).unwrap().flatten() {
                        if e.file_name().to_string_lossy().starts_with('1') {
                            std::fs::remove_file(e.path()).unwrap();
                        }
                    }
                }),
            )
            .err(has(&["in/wav", "class"])),
    );
    c.push(Case::run("audio-own-folder-ok", &own("")).file("in/wav", Gen(wav_set)).either(has(&["in/wav"])));
    let set_with = |name: &'static str, content: Content| {
        Case::run(name, &own("")).file("in/wav", Gen(wav_set)).file("in/wav/1_ann_5.wav", content)
    };
    c.push(set_with("audio-wav-text", Text("not a wav".into())).err(has(&["1_ann_5.wav"])));
    c.push(set_with("audio-wav-empty", Text(String::new())).err(has(&["1_ann_5.wav"])));
    c.push(
        set_with("audio-wav-header-only", Bytes(wav_bytes(0.5, 8000, 440.0, 1)[..44].to_vec()))
            .err(has(&["1_ann_5.wav"])),
    );
    c.push(
        set_with("audio-wav-truncated", Bytes(wav_bytes(0.5, 8000, 440.0, 1)[..1001].to_vec()))
            .either(has(&["1_ann_5.wav"])),
    );
    c.push(set_with("audio-wav-fifo", Fifo).err(has(&["1_ann_5.wav"])));
    c.push(set_with("audio-wav-dir", Dir).err(has(&["1_ann_5.wav"])));
    c.push(set_with("audio-wav-dangling-link", Link("@D/gone.wav".into())).err(has(&["1_ann_5.wav"])));
    c.push(
        set_with(
            "audio-wav-huge-size-claim",
            Bytes({
                let mut b = wav_bytes(0.5, 8000, 440.0, 1);
                b[40..44].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
                b
            }),
        )
        .either(has(&["1_ann_5.wav"])),
    );
    c.push(
        set_with(
            "audio-wav-rate-zero",
            Bytes({
                let mut b = wav_bytes(0.5, 8000, 440.0, 1);
                b[24..28].copy_from_slice(&0u32.to_le_bytes());
                b
            }),
        )
        .err(has(&["1_ann_5.wav"])),
    );
    c.push(
        set_with(
            "audio-wav-channels-zero",
            Bytes({
                let mut b = wav_bytes(0.5, 8000, 440.0, 1);
                b[22..24].copy_from_slice(&0u16.to_le_bytes());
                b
            }),
        )
        .err(has(&["1_ann_5.wav"])),
    );
    c.push(
        set_with("audio-wav-44k-stereo", Bytes(wav_bytes(0.5, 44100, 440.0, 2)))
            .either(has(&["1_ann_5.wav"])),
    );
    c.push(
        set_with(
            "audio-wav-10-minutes",
            Gen(|p| std::fs::write(p, wav_bytes(600.0, 44100, 440.0, 1)).unwrap()),
        )
        .timeout(120)
        .either(has(&["1_ann_5.wav"])),
    );
    c.push(set_with("audio-wav-silent", Bytes(wav_bytes(0.5, 8000, 0.0, 1))).either(has(&["1_ann_5.wav"])));
    c.push(
        set_with("audio-wav-unreadable", Bytes(wav_bytes(0.5, 8000, 440.0, 1)))
            .step(Step::Edit(|d| unreadable(d, "in/wav/1_ann_5.wav")))
            .nobody()
            .err(has(&["1_ann_5.wav"])),
    );
    c.push(
        Case::run(
            "audio-on-bad-file-word",
            &edit(&own(""), &[("length = 4000", "length = 4000\non_bad_file = \"shrug\"")]),
        )
        .file("in/wav", Gen(wav_set))
        .err(toml()),
    );
    c.push(
        Case::run("audio-examples-0", &edit(AUDIO, &[("examples = 10", "examples = 0")]))
            .not_green(toml())
            .check(rate_is_null),
    );

    c.push(
        with_run(Case::csv("resume-flipped-weights", &table()))
            .step(Step::Edit(flip_weights))
            .map_args(RESUME)
            .err(has(&["safetensors"])),
    );
    let resampled = |name: &'static str, content: Content| {
        Case::run(name, &edit(&own(""), &[("length = 4000", "length = 4000\nresample = true")]))
            .file("in/wav", Gen(wav_set))
            .file("in/wav/1_ann_5.wav", content)
    };
    c.push(
        resampled(
            "audio-wav-10-minutes-resampled",
            Gen(|p| std::fs::write(p, wav_bytes(600.0, 44100, 440.0, 1)).unwrap()),
        )
        .timeout(120)
        .either(has(&["1_ann_5.wav"])),
    );
    c.push(
        resampled("audio-wav-44k-stereo-resampled", Bytes(wav_bytes(0.5, 44100, 440.0, 2)))
            .either(has(&["1_ann_5.wav"])),
    );

    // --- degenerate runs, resume, signals ---
    c.push(
        with_run(Case::csv("resume-flipped-checkpoint", &table()))
            .step(Step::Edit(flip_checkpoint))
            .map_args(RESUME)
            .err(has(&["safetensors"])),
    );
    c.push(
        with_run(Case::csv("resume-truncated-checkpoint", &table()))
            .step(Step::Edit(truncate_checkpoints))
            .map_args(RESUME)
            .err(has(&["safetensors"])),
    );
    c.push(
        with_run(Case::csv("resume-relabelled-shortened-data", &table()))
            .step(Step::Edit(relabel_and_shorten))
            .map_args(RESUME)
            .err(has(&["data.csv", "changed"]))
            .keep("run/metrics.json"),
    );
    c.push(
        with_run(Case::csv("resume-changed-lr", &table()))
            .step(Step::Edit(change_lr))
            .map_args(RESUME)
            .err(has(&["[train]"]))
            .keep("run/metrics.json"),
    );
    c.push(
        with_run(Case::csv("resume-added-sweep", &table())).step(Step::Edit(add_sweep)).map_args(RESUME).ok(),
    );
    c.push(
        with_run(Case::csv("resume-metrics-deleted", &table()))
            .step(Step::Edit(delete_metrics))
            .map_args(RESUME)
            .ok(),
    );
    c.push(
        with_run(Case::csv("resume-stale-lock", &table())).step(Step::Edit(stale_lock)).map_args(RESUME).ok(),
    );
    c.push(
        with_run(Case::csv("resume-checkpoints-deleted", &table()))
            .step(Step::Edit(delete_checkpoints))
            .map_args(RESUME)
            .either(has(&["checkpoints"])),
    );
    c.push(with_run(Case::csv("resume-finished-run", &table())).map_args(RESUME).ok());
    c.push(
        with_run(Case::csv("rerun-without-resume", &table()))
            .keep("run/metrics.json")
            .err(has(&["run", "--resume"])),
    );
    c.push(
        Case::csv("run-out-read-only", &table())
            .step(Step::Edit(read_only_run))
            .map_args(&["run", "@P", "--out", "@D/ro/run"])
            .nobody()
            .err(has(&["ro"])),
    );
    let long = edit(TAB, &[("epochs = 8", "epochs = 3000")]);
    c.push(Case::run("signal-sigint", &long).file("in/data.csv", Text(table())).signal(2));
    c.push(Case::run("signal-sigterm", &long).file("in/data.csv", Text(table())).signal(15));
    c.push(
        Case::run("signal-sigint-then-resume", &edit(TAB, &[("epochs = 8", "epochs = 200")]))
            .file("in/data.csv", Text(table()))
            .step(Step::Interrupt(args(RUN), 2))
            .map_args(RESUME)
            .ok(),
    );
    c.push(
        Case::run("signal-sigterm-then-resume", &edit(TAB, &[("epochs = 8", "epochs = 200")]))
            .file("in/data.csv", Text(table()))
            .step(Step::Interrupt(args(RUN), 15))
            .map_args(RESUME)
            .ok(),
    );
    c.push(
        Case::run("signal-sigkill-then-resume", &edit(TAB, &[("epochs = 8", "epochs = 200")]))
            .file("in/data.csv", Text(table()))
            .step(Step::Interrupt(args(RUN), 9))
            .map_args(RESUME)
            .ok(),
    );
    c.push(
        Case::run("two-runs-one-folder", &long)
            .file("in/data.csv", Text(table()))
            .step(Step::Spawn(args(RUN)))
            .map_args(RESUME)
            .err(has(&["run"])),
    );
    c.push(
        Case::run("two-resumes-at-once", &long)
            .file("in/data.csv", Text(table()))
            .step(Step::Interrupt(args(RUN), 2))
            .step(Step::Spawn(args(RESUME)))
            .map_args(RESUME)
            .err(has(&["run"])),
    );
    c.push(Case::run("run-fraud-small-ok", &f).ok().check(rate_is_null));
    c.push(Case::run("run-text-ok", TEXT).either(has(&["mr.csv"])).check(rate_is_null));
    c.push(Case::run("run-audio-ok", AUDIO).either(has(&["recordings"])).check(rate_is_null));

    // --- tempered score ---
    let score_base = |name: &str| with_run(Case::csv(name, &table()));
    let score = |a: &[&str]| {
        let mut v = args(&["score", "@D/run", "@D/in/new.csv", "--out", "@D/scores.csv"]);
        v.extend(args(a));
        v
    };
    c.push(
        score_base("score-ok")
            .file("in/new.csv", Text(table()))
            .map_args_v(score(&[]))
            .ok()
            .check(scores_have_probability),
    );
    c.push(
        score_base("score-run-missing")
            .file("in/new.csv", Text(table()))
            .map_args(&["score", "@D/nope", "@D/in/new.csv", "--out", "@D/scores.csv"])
            .err(has(&["nope"]))
            .check(no_output_file),
    );
    c.push(
        score_base("score-run-is-a-file")
            .file("in/new.csv", Text(table()))
            .map_args(&["score", "@D/in/new.csv", "@D/in/new.csv", "--out", "@D/scores.csv"])
            .err(has(&["new.csv"]))
            .check(no_output_file),
    );
    c.push(
        score_base("score-run-without-encoding")
            .file("in/new.csv", Text(table()))
            .step(Step::Edit(|d| std::fs::remove_file(d.join("run/encoding.json")).unwrap()))
            .map_args_v(score(&[]))
            .err(has(&["encoding.json"]))
            .check(no_output_file),
    );
    c.push(
        score_base("score-encoding-garbage")
            .file("in/new.csv", Text(table()))
            .step(Step::Edit(|d| std::fs::write(d.join("run/encoding.json"), "{\"nope\": ").unwrap()))
            .map_args_v(score(&[]))
            .err(has(&["encoding.json"]))
            .check(no_output_file),
    );
    c.push(
        score_base("score-missing-column")
            .file("in/new.csv", Text(table().replace("a,b,c,Class", "a,x,c,Class")))
            .map_args_v(score(&[]))
            .err(has(&["new.csv", "b"]))
            .check(no_output_file),
    );
    c.push(
        score_base("score-extra-columns")
            .file(
                "in/new.csv",
                Text(table_with(300, |r, c| c.push(format!("id{r}"))).replacen(
                    "a,b,c,Class",
                    "a,b,c,Class,id",
                    1,
                )),
            )
            .map_args_v(score(&[]))
            .ok()
            .check(scores_have_probability),
    );
    c.push(
        score_base("score-without-label")
            .file(
                "in/new.csv",
                Text(table().lines().map(|l| l.rsplit_once(',').unwrap().0.to_owned() + "\n").collect()),
            )
            .map_args_v(score(&[]))
            .ok()
            .check(scores_have_probability),
    );
    c.push(
        score_base("score-bad-cell")
            .file(
                "in/new.csv",
                Text(table_with(300, |r, c| {
                    if r == 42 {
                        c[1] = "oops".into()
                    }
                })),
            )
            .map_args_v(score(&[]))
            .err(has(&["new.csv", "42", "b"]))
            .check(no_output_file),
    );
    c.push(
        score_base("score-input-empty")
            .file("in/new.csv", Text(String::new()))
            .map_args_v(score(&[]))
            .err(has(&["new.csv"]))
            .check(no_output_file),
    );
    c.push(
        score_base("score-input-fifo")
            .file("in/new.csv", Fifo)
            .map_args_v(score(&[]))
            .err(has(&["new.csv"]))
            .check(no_output_file),
    );
    c.push(
        score_base("score-input-dir")
            .file("in/new.csv", Dir)
            .map_args_v(score(&[]))
            .err(has(&["new.csv"]))
            .check(no_output_file),
    );
    c.push(
        score_base("score-out-txt")
            .file("in/new.csv", Text(table()))
            .map_args(&["score", "@D/run", "@D/in/new.csv", "--out", "@D/scores.txt"])
            .err(has(&["scores.txt"])),
    );
    c.push(
        score_base("score-out-is-a-dir")
            .file("in/new.csv", Text(table()))
            .file("scores.csv", Dir)
            .map_args_v(score(&[]))
            .err(has(&["scores.csv"])),
    );
    c.push(
        score_base("score-out-over-input")
            .file("in/new.csv", Text(table()))
            .keep("in/new.csv")
            .map_args(&["score", "@D/run", "@D/in/new.csv", "--out", "@D/in/new.csv"])
            .err(has(&["new.csv"])),
    );
    c.push(
        score_base("score-threshold-nan")
            .file("in/new.csv", Text(table()))
            .map_args_v(score(&["--threshold", "nan"]))
            .err(has(&["threshold"]))
            .check(no_output_file),
    );
    c.push(
        score_base("score-threshold-two")
            .file("in/new.csv", Text(table()))
            .map_args_v(score(&["--threshold", "2"]))
            .err(has(&["threshold"]))
            .check(no_output_file),
    );
    c.push(
        score_base("score-model-word")
            .file("in/new.csv", Text(table()))
            .map_args_v(score(&["--model", "best"]))
            .err(has(&["best"])),
    );
    c.push(
        Case::run("score-text-run", TEXT)
            .step(Step::Run(args(RUN)))
            .file("in/new.csv", Text("label,text\n0,\"fine\"\n".into()))
            .map_args_v(score(&[]))
            .err(has(&["run"])),
    );
    c.push(
        score_base("score-hardened-without-hardening")
            .file("in/new.csv", Text(table()))
            .file(
                "pipelines/p.toml",
                Text(edit(
                    TAB,
                    &[("strategy = \"pgd\"\nattack = \"pgd\"\nepochs = 1\npatience = 0", "enabled = false")],
                )),
            )
            .map_args_v(score(&["--model", "hardened"]))
            .err(has(&["hardened"])),
    );
    c.push(
        score_base("score-input-crlf")
            .file("in/new.csv", Text(table().replace('\n', "\r\n")))
            .map_args_v(score(&[]))
            .ok()
            .check(scores_have_probability),
    );
    c
}

// Case mutators that replace the command, kept apart from the builder above.
impl Case {
    fn map_args(mut self, a: &[&str]) -> Self {
        self.args = args(a);
        self
    }
    fn map_args_v(mut self, a: Vec<String>) -> Self {
        self.args = a;
        self
    }
}

// ---------------------------------------------------------------------------------------
// Running a case.

fn release() -> PathBuf {
    if let Some(b) = std::env::var_os("TEMPERED_BIN") {
        return PathBuf::from(b).parent().unwrap().to_owned();
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("target"));
    target.join("release")
}

fn binary() -> PathBuf {
    std::env::var_os("TEMPERED_BIN").map(PathBuf::from).unwrap_or_else(|| release().join("tempered"))
}

fn subst(s: &str, dir: &Path) -> String {
    s.replace("@P", &dir.join("pipelines/p.toml").display().to_string())
        .replace("@D", &dir.display().to_string())
        .replace("@B", &release().display().to_string())
        .replace("@R", &repo().display().to_string())
}

fn lay_out(dir: &Path, case: &Case) {
    std::fs::create_dir_all(dir.join("pipelines")).unwrap();
    std::os::unix::fs::symlink(repo().join("data"), dir.join("data")).unwrap();
    for (rel, content) in &case.files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        if p.symlink_metadata().is_ok() && !p.is_dir() {
            std::fs::remove_file(&p).unwrap();
        }
        match content {
            Content::Text(s) => std::fs::write(&p, subst(s, dir)).unwrap(),
            Content::Bytes(b) => std::fs::write(&p, b).unwrap(),
            Content::Dir => std::fs::create_dir_all(&p).unwrap(),
            Content::Fifo => {
                let ok = Command::new("mkfifo").arg(&p).status().unwrap().success();
                assert!(ok, "mkfifo {}", p.display());
            }
            Content::Link(to) => std::os::unix::fs::symlink(subst(to, dir), &p).unwrap(),
            Content::Gen(f) => f(&p),
            Content::Copy(from) => {
                let from = subst(from, dir);
                let from =
                    if Path::new(&from).is_absolute() { PathBuf::from(from) } else { repo().join(from) };
                std::fs::copy(&from, &p).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
            }
        }
    }
}

fn command(case: &Case, dir: &Path, a: &[String]) -> Command {
    let bin = binary();
    let mut cmd = if case.nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    cmd.args(a.iter().map(|s| subst(s, dir))).current_dir(dir);
    // Plain logs: a progress bar would only fill the log files.
    cmd.env("RUST_LOG", "info").env("NO_COLOR", "1").env_remove("TEMPERED_PLUGIN_PATH");
    for (k, v) in &case.env {
        cmd.env(k, subst(v, dir));
    }
    cmd
}

fn has_commit(dir: &Path) -> bool {
    std::fs::read_dir(dir.join("run/checkpoints"))
        .is_ok_and(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("clean")))
}

fn wait_for_commit(child: &mut Child, dir: &Path) {
    let t = Instant::now();
    while !has_commit(dir) && t.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for `child` at most `limit`; `None` (after killing it) when it ran over.
fn wait(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Outcome {
    Ok,
    FailedCheck,
    Clear,
    Unclear,
    Refused,
    Panic,
    Crash,
    Hang,
    SilentWrong,
    Lost,
    Skipped,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::FailedCheck => "failed check",
            Outcome::Clear => "clear error",
            Outcome::Unclear => "UNCLEAR ERROR",
            Outcome::Refused => "REFUSED (valid input)",
            Outcome::Panic => "PANIC",
            Outcome::Crash => "CRASH",
            Outcome::Hang => "HANG",
            Outcome::SilentWrong => "SILENT WRONG",
            Outcome::Lost => "LOST FILES",
            Outcome::Skipped => "skipped",
        }
    }
    fn bad(self) -> bool {
        matches!(
            self,
            Outcome::Panic
                | Outcome::Crash
                | Outcome::Hang
                | Outcome::SilentWrong
                | Outcome::Lost
                | Outcome::Refused
        )
    }
}

struct Row {
    name: String,
    expected: &'static str,
    outcome: Outcome,
    why: String,
    seconds: f64,
}

fn expected_label(e: &Expect) -> &'static str {
    match e {
        Expect::Error(_) => "error",
        Expect::Ok => "ok",
        Expect::NotGreen(_) => "not green",
        Expect::Either(_) => "ok or error",
        Expect::Signal(_) => "signal exit",
    }
}

/// Every file under `dir` (not following links), with its bytes' hash.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64)> {
    use std::hash::{Hash as _, Hasher as _};
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(meta) = p.symlink_metadata() else { continue };
        if meta.is_dir() {
            out.extend(snapshot(&p));
        } else if meta.is_file() {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::fs::read(&p).unwrap_or_default().hash(&mut h);
            out.push((p, h.finish()));
        }
    }
    out
}

/// Files that are torn: a temporary file left behind, JSON that does not parse, a PNG that
/// does not end.
fn torn(dir: &Path, before: &[(PathBuf, u64)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (p, _) in snapshot(dir) {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let known = before.iter().any(|(q, _)| q == &p);
        if name.starts_with('.') && name.contains(".tmp") && !known {
            bad.push(format!("temporary file left: {}", p.display()));
            continue;
        }
        let Ok(bytes) = std::fs::read(&p) else { continue };
        if name.ends_with(".json") && serde_json::from_slice::<serde_json::Value>(&bytes).is_err() && !known {
            bad.push(format!("torn JSON: {}", p.display()));
        }
        if name.ends_with(".png") && !bytes.ends_with(&[0xAE, 0x42, 0x60, 0x82]) {
            bad.push(format!("torn PNG: {}", p.display()));
        }
    }
    bad
}

/// Whether `stderr` names `pipeline` at a `line:col`.
fn names_toml_place(stderr: &str, pipeline: &str) -> bool {
    stderr.match_indices(pipeline).any(|(i, _)| {
        let rest = &stderr[i + pipeline.len()..];
        let mut parts = rest.splitn(4, ':');
        parts.next() == Some("")
            && parts.next().is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
            && parts.next().is_some_and(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
    })
}

fn names_place(place: &Place, stderr: &str, dir: &Path) -> std::result::Result<(), String> {
    // A wall of text hides the place as well as silence does.
    if stderr.len() > 16 * 1024 {
        return Err(format!("{} bytes of error", stderr.len()));
    }
    match place {
        Place::Toml => {
            let p = dir.join("pipelines/p.toml").display().to_string();
            if names_toml_place(stderr, &p) { Ok(()) } else { Err("no pipeline file:line:col".into()) }
        }
        Place::Has(tokens) => {
            let missing: Vec<String> =
                tokens.iter().map(|t| subst(t, dir)).filter(|t| !stderr.contains(t.as_str())).collect();
            if missing.is_empty() { Ok(()) } else { Err(format!("does not name {missing:?}")) }
        }
    }
}

fn run_case(case: &Case, root: &Path, can_drop: bool) -> Row {
    let t0 = Instant::now();
    let dir = root.join(&case.name);
    let result = |outcome: Outcome, why: String| Row {
        name: case.name.clone(),
        expected: expected_label(&case.expect),
        outcome,
        why,
        seconds: t0.elapsed().as_secs_f64(),
    };
    if case.nobody && !can_drop {
        return result(Outcome::Skipped, "needs root and setpriv to run as nobody".into());
    }
    lay_out(&dir, case);
    let mut spawned: Vec<Child> = Vec::new();
    for step in &case.steps {
        match step {
            Step::Run(a) => {
                let mut cmd = command(case, &dir, a);
                if case.nobody {
                    cmd = Command::new(binary());
                    cmd.args(a.iter().map(|s| subst(s, &dir))).current_dir(&dir);
                }
                let out = dir.join(".step.log");
                let log = std::fs::File::create(&out).unwrap();
                let mut child = cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap();
                if wait(&mut child, Duration::from_secs(120)).is_none() {
                    return result(Outcome::Hang, "a setup step ran over two minutes".into());
                }
                let _ = std::fs::remove_file(out);
            }
            Step::Edit(f) => f(&dir),
            Step::Spawn(a) => {
                let mut child =
                    command(case, &dir, a).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
                wait_for_commit(&mut child, &dir);
                // A resume finds its commit at once: give it the time to take the lock.
                std::thread::sleep(Duration::from_millis(500));
                spawned.push(child);
            }
            Step::Interrupt(a, sig) => {
                let mut child =
                    command(case, &dir, a).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
                wait_for_commit(&mut child, &dir);
                send_signal(child.id(), *sig);
                if wait(&mut child, Duration::from_secs(60)).is_none() {
                    return result(Outcome::Hang, format!("did not stop within a minute of signal {sig}"));
                }
            }
        }
    }
    if case.nobody {
        // The unprivileged user writes its run and logs here.
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777));
    }
    let logs = root.join(format!("{}.log", case.name));
    let before = snapshot(&dir);
    let kept: Vec<(PathBuf, Option<u64>)> = case
        .keep
        .iter()
        .map(|rel| {
            let p = dir.join(rel);
            (p.clone(), before.iter().find(|(q, _)| q == &p).map(|(_, h)| *h))
        })
        .collect();
    let mut cmd = command(case, &dir, &case.args);
    let stderr_file = root.join(format!("{}.stderr", case.name));
    let stdout_file = root.join(format!("{}.stdout", case.name));
    cmd.stderr(std::fs::File::create(&stderr_file).unwrap());
    let mut pipe_to_close = false;
    match case.stdout {
        Stdout::File => {
            cmd.stdout(std::fs::File::create(&stdout_file).unwrap());
        }
        Stdout::DevFull => {
            cmd.stdout(std::fs::File::options().write(true).open("/dev/full").unwrap());
        }
        Stdout::Closed => {
            cmd.stdout(Stdio::piped());
            pipe_to_close = true;
        }
    }
    let mut child = cmd.spawn().unwrap();
    if pipe_to_close {
        drop(child.stdout.take());
    }
    if let Some(sig) = case.signal {
        wait_for_commit(&mut child, &dir);
        send_signal(child.id(), sig);
    }
    let status = wait(&mut child, case.timeout);
    for mut s in spawned {
        // Stopped as a user would (Ctrl-C), so that what it leaves is judged too.
        send_signal(s.id(), 15);
        if wait(&mut s, Duration::from_secs(30)).is_none() {
            return result(Outcome::Hang, "the run started alongside did not stop on SIGTERM".into());
        }
    }
    let stderr = std::fs::read_to_string(&stderr_file).unwrap_or_default();
    let stdout = std::fs::read_to_string(&stdout_file).unwrap_or_default();
    let _ = std::fs::write(&logs, format!("$ tempered {}\n{stderr}", case.args.join(" ")));
    let ctx = Ctx { dir: dir.clone(), stdout };
    let last = |s: &str| {
        s.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("").chars().take(300).collect::<String>()
    };

    let Some(status) = status else {
        return result(Outcome::Hang, format!("killed after {:?}", case.timeout));
    };
    if stderr.contains("panicked") || status.code() == Some(101) {
        let line = stderr.lines().find(|l| l.contains("panicked")).unwrap_or("exit 101");
        return result(Outcome::Panic, line.chars().take(300).collect());
    }
    if let Some(sig) = status.signal() {
        return result(Outcome::Crash, format!("killed by signal {sig}"));
    }
    let mut lost = torn(&dir, &before);
    for (p, h) in &kept {
        let now = std::fs::read(p).ok().map(|b| {
            use std::hash::{Hash as _, Hasher as _};
            let mut x = std::collections::hash_map::DefaultHasher::new();
            b.hash(&mut x);
            x.finish()
        });
        if now != *h {
            lost.push(format!("{} was changed or removed", p.display()));
        }
    }
    if !lost.is_empty() {
        return result(Outcome::Lost, lost.join("; "));
    }
    let code = status.code().unwrap_or(-1);
    let failed_check = stderr.contains("check(s) failed");
    let is_run = case.args.first().is_some_and(|a| a == "run");
    let generic = |ctx: &Ctx| -> std::result::Result<(), String> {
        if is_run && ctx.dir.join("run/metrics.json").exists() {
            rate_is_null(ctx)?;
        }
        match case.check {
            Some(c) => c(ctx),
            None => Ok(()),
        }
    };
    // Only the error itself counts, not the log lines before it.
    let message = stderr.find("error:").map_or(stderr.as_str(), |i| &stderr[i..]);
    let error = |place: &Place| match names_place(place, message, &dir) {
        Ok(()) => result(Outcome::Clear, last(&stderr)),
        Err(why) => result(Outcome::Unclear, format!("{why}: {}", last(&stderr))),
    };
    match &case.expect {
        Expect::Signal(sig) => {
            if code == 128 + sig && stderr.contains("--resume") {
                result(Outcome::Ok, last(&stderr))
            } else {
                result(Outcome::SilentWrong, format!("exit {code}: {}", last(&stderr)))
            }
        }
        Expect::Ok => match (code, generic(&ctx)) {
            (0, Ok(())) => result(Outcome::Ok, String::new()),
            (0, Err(why)) => result(Outcome::SilentWrong, why),
            _ if failed_check => result(Outcome::Refused, format!("failed check: {}", last(&stderr))),
            _ => result(Outcome::Refused, last(&stderr)),
        },
        Expect::Error(place) => match code {
            0 => result(Outcome::SilentWrong, "accepted".into()),
            _ if failed_check => result(Outcome::FailedCheck, last(&stderr)),
            _ => match generic(&ctx) {
                Err(why) if case.check.is_some() => result(Outcome::SilentWrong, why),
                _ => error(place),
            },
        },
        Expect::NotGreen(place) => match code {
            0 => result(Outcome::SilentWrong, "green".into()),
            _ if failed_check => match generic(&ctx) {
                Ok(()) => result(Outcome::FailedCheck, last(&stderr)),
                Err(why) => result(Outcome::SilentWrong, why),
            },
            _ => error(place),
        },
        Expect::Either(place) => match code {
            0 => match generic(&ctx) {
                Ok(()) => result(Outcome::Ok, String::new()),
                Err(why) => result(Outcome::SilentWrong, why),
            },
            _ if failed_check => result(Outcome::FailedCheck, last(&stderr)),
            _ => error(place),
        },
    }
}

fn send_signal(pid: u32, sig: i32) {
    // std has no kill(2) with a signal; the kill command does it.
    let _ = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status();
}

fn can_drop_privileges() -> bool {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    root && Command::new("setpriv").arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
#[ignore = "runs the release binary for a few minutes: `just catalogue`"]
fn the_bad_input_catalogue() {
    let bin = binary();
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --release` first (or `just catalogue`)",
        bin.display()
    );
    let cases = cases();
    let mut seen = std::collections::BTreeSet::new();
    for c in &cases {
        assert!(seen.insert(c.name.clone()), "catalogue: two cases are named {}", c.name);
    }
    let filter = std::env::var("CATALOGUE_FILTER").unwrap_or_default();
    let root = std::env::temp_dir().join(format!("tempered-catalogue-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    // World-readable, so the cases run as nobody reach their folders.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let can_drop = can_drop_privileges();
    let t0 = Instant::now();
    let mut results = Vec::new();
    for case in cases.iter().filter(|c| c.name.contains(&filter)) {
        let r = run_case(case, &root, can_drop);
        eprintln!(
            "{:<42} {:<12} {:<22} {:>6.1}s  {}",
            r.name,
            r.expected,
            r.outcome.label(),
            r.seconds,
            r.why
        );
        let _ = std::io::stderr().flush();
        results.push(r);
    }
    let total = t0.elapsed();

    let mut counts: std::collections::BTreeMap<Outcome, usize> = Default::default();
    for r in &results {
        *counts.entry(r.outcome).or_default() += 1;
    }
    let n = |o: Outcome| counts.get(&o).copied().unwrap_or(0);
    let errors = n(Outcome::Clear) + n(Outcome::Unclear);
    let clear_share = if errors == 0 { 1.0 } else { n(Outcome::Clear) as f64 / errors as f64 };
    println!("\ncase | expected | outcome");
    for r in &results {
        println!(
            "{} | {} | {}{}",
            r.name,
            r.expected,
            r.outcome.label(),
            if r.outcome == Outcome::Ok || r.outcome == Outcome::Clear || r.outcome == Outcome::FailedCheck {
                String::new()
            } else {
                format!(" ({})", r.why)
            }
        );
    }
    println!("\n{} cases in {:.0} s ({})", results.len(), total.as_secs_f64(), bin.display());
    for (o, k) in &counts {
        println!("  {:<24} {k}", o.label());
    }
    println!(
        "  errors naming file and place: {}/{} = {:.1} %",
        n(Outcome::Clear),
        errors,
        100.0 * clear_share
    );
    let bad: Vec<&Row> = results.iter().filter(|r| r.outcome.bad()).collect();
    for r in &bad {
        println!("FAILED {}: {} ({})", r.name, r.outcome.label(), r.why);
    }
    // The folders (a 10-minute wav among them) are kept only where there is something to read.
    if bad.is_empty() && clear_share >= 0.95 {
        let _ = std::fs::remove_dir_all(&root);
    } else {
        println!("logs and case folders: {}", root.display());
    }
    assert!(
        bad.is_empty(),
        "{} case(s) panicked, crashed, hung, were silently wrong, lost files or refused valid input",
        bad.len()
    );
    assert!(
        clear_share >= 0.95,
        "only {:.1} % of the errors name the file and the place",
        100.0 * clear_share
    );
}
