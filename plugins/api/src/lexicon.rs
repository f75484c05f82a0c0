//! The word lists: synonym candidates (WordNet, optionally PPDB), antonym pairs that veto a
//! candidate, and stop words that are never swapped. Here, in the API crate, because the
//! host judges a declared [`Budget::Synonyms`](crate::Budget::Synonyms) by exactly the rules
//! a text attack draws its candidates by, inflections included.
//!
//! Everything is read once, in the attack's constructor. Words are interned to `u32` ids so
//! the ~130 k synonym entries cost 4 bytes each instead of a `String`, and each word's final
//! candidate list (merged, deduplicated, antonyms removed, truncated) is computed at load
//! time: a lookup during the search is one hash probe and a slice.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::{PluginError, Result};

/// Which files to read and how to cut the candidate lists.
#[derive(Debug, Clone, Default)]
pub struct LexiconFiles {
    /// `wordnet-synonyms.tsv`: `word<TAB>pos<TAB>syn1<TAB>syn2...`.
    pub synonyms: PathBuf,
    /// `ppdb_synonyms.txt`: `word synonym` pairs, taken as symmetric.
    pub ppdb_synonyms: Option<PathBuf>,
    /// `ppdb_antonyms.txt`, `wordnet_antonyms.txt`: `word antonym` pairs, taken as symmetric.
    pub antonyms: Vec<PathBuf>,
    /// One stop word per line.
    pub stopwords: Option<PathBuf>,
    /// Keep at most this many candidates per word (`None`: all).
    pub max_candidates: Option<usize>,
    /// Look a word the table lacks up by its base form and re-inflect the candidates.
    pub inflections: bool,
    /// Also offer, like nltk's `wordnet.synsets(word)` that TextAttack's WordNet swap uses,
    /// every base form WordNet's morphy finds for the word in any part of speech and that
    /// base's synonyms, uninflected ("films" → "film", "movie"; "felt" → "feel", "sense").
    pub base_forms: bool,
    /// `wordnet-exceptions.tsv`: `inflected<TAB>pos<TAB>base...`, the irregular forms morphy
    /// looks up before its suffix rules ("better" → "good"). Used by `base_forms`.
    pub exceptions: Option<PathBuf>,
    /// `wordnet-lemmas.tsv`: `word<TAB>pos...`, the lemmas without synonyms, which the
    /// synonym table lacks ("critic"), so `base_forms` can still offer them ("critics" →
    /// "critic").
    pub lemmas: Option<PathBuf>,
}

/// Synonym candidates and stop words, keyed by lower-case word.
#[derive(Debug)]
pub struct Lexicon {
    ids: HashMap<Box<str>, u32>,
    words: Vec<Box<str>>,
    /// By word id; empty for a word that has no usable candidate.
    candidates: Vec<Box<[u32]>>,
    /// Symmetric. Kept after load for re-inflected candidates, which are checked as words.
    antonyms: HashSet<(u32, u32)>,
    stopwords: HashSet<Box<str>>,
    inflections: bool,
    /// WordNet's own list for each (word id, part of speech), in sense order; with
    /// `base_forms` only (empty otherwise).
    senses: HashMap<(u32, Pos), Box<[u32]>>,
    /// Irregular inflection → its base forms, by part of speech.
    exceptions: HashMap<(u32, Pos), Box<[u32]>>,
    /// Lemmas without synonyms.
    lemmas: HashSet<(u32, Pos)>,
    base_forms: bool,
    /// `max_candidates`, or no limit.
    cap: usize,
}

/// A part of speech, as an index into [`POS`].
type Pos = u8;

const POS: [&str; 4] = ["noun", "verb", "adj", "adv"];

/// Index into [`POS`] of a name the caller checked is in it.
fn pos_index(name: &str) -> Pos {
    POS.iter().position(|&p| p == name).expect("a checked part of speech") as Pos
}

/// nltk's morphy suffix rules per part of speech (in [`POS`] order): inflected ending,
/// base ending. Unlike [`MORPHY`], every rule that applies is tried.
const MORPHY_RULES: [&[(&str, &str)]; 4] = [
    &[
        ("s", ""),
        ("ses", "s"),
        ("ves", "f"),
        ("xes", "x"),
        ("zes", "z"),
        ("ches", "ch"),
        ("shes", "sh"),
        ("men", "man"),
        ("ies", "y"),
    ],
    &[("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")],
    &[("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
    &[],
];

/// Interns words while the files are read.
#[derive(Default)]
struct Interner {
    ids: HashMap<Box<str>, u32>,
    words: Vec<Box<str>>,
}

impl Interner {
    fn id(&mut self, w: &str) -> u32 {
        if let Some(&id) = self.ids.get(w) {
            return id;
        }
        let id = self.words.len() as u32;
        self.words.push(w.into());
        self.ids.insert(w.into(), id);
        id
    }
}

fn read(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| PluginError(format!("cannot read {what} file {}: {e}", path.display())))
}

fn malformed(path: &Path, line_no: usize, expected: &str, line: &str) -> PluginError {
    PluginError(format!("{}:{line_no}: malformed line, expected {expected}, got {line:?}", path.display()))
}

/// Non-blank lines with their 1-based numbers; CR and trailing blanks are not content
/// (the PPDB antonym file ends every line with a space).
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end())).filter(|(_, l)| !l.is_empty())
}

/// Reads a tab-separated WordNet table, handing each row to `row`. A row needs `valid`
/// and no empty field or field with blanks in it; `expected` names the layout for the error.
fn tsv(
    path: &Path,
    what: &str,
    expected: &str,
    valid: impl Fn(&[&str]) -> bool,
    mut row: impl FnMut(&[&str]),
) -> Result<()> {
    let text = read(path, what)?;
    for (n, line) in lines(&text) {
        let fields: Vec<&str> = line.split('\t').collect();
        if !valid(&fields) || fields.iter().any(|f| f.is_empty() || f.contains(char::is_whitespace)) {
            let expected = format!("{expected} with pos one of noun, verb, adj, adv");
            return Err(malformed(path, n, &expected, line));
        }
        row(&fields);
    }
    Ok(())
}

/// Reads a file of `a b` pairs.
fn pairs(path: &Path, what: &str) -> Result<Vec<(String, String)>> {
    let text = read(path, what)?;
    let mut out = Vec::new();
    for (n, line) in lines(&text) {
        let mut it = line.split_whitespace();
        match (it.next(), it.next(), it.next()) {
            (Some(a), Some(b), None) => out.push((a.to_lowercase(), b.to_lowercase())),
            _ => return Err(malformed(path, n, "two words separated by a space", line)),
        }
    }
    Ok(out)
}

impl Lexicon {
    pub fn load(files: &LexiconFiles) -> Result<Self> {
        if files.max_candidates == Some(0) {
            return Err("max_candidates must be at least 1".into());
        }
        let mut interner = Interner::default();
        // Per word id: its WordNet lists, one per part of speech, in file (sense) order.
        let mut wordnet: Vec<Vec<(Pos, Vec<u32>)>> = Vec::new();
        let has_pos = |f: &[&str]| f.len() >= 3 && POS.contains(&f[1]);
        tsv(&files.synonyms, "synonyms", "`word<TAB>pos<TAB>synonym...`", has_pos, |f| {
            let head = interner.id(&f[0].to_lowercase()) as usize;
            let syns: Vec<u32> = f[2..].iter().map(|s| interner.id(&s.to_lowercase())).collect();
            if wordnet.len() <= head {
                wordnet.resize_with(head + 1, Vec::new);
            }
            wordnet[head].push((pos_index(f[1]), syns));
        })?;

        let mut exceptions: HashMap<(u32, Pos), Box<[u32]>> = HashMap::new();
        if let (true, Some(path)) = (files.base_forms, &files.exceptions) {
            tsv(path, "WordNet exceptions", "`inflected<TAB>pos<TAB>base...`", has_pos, |f| {
                let word = interner.id(&f[0].to_lowercase());
                let bases = f[2..].iter().map(|b| interner.id(&b.to_lowercase())).collect();
                exceptions.insert((word, pos_index(f[1])), bases);
            })?;
        }
        let mut lemmas: HashSet<(u32, Pos)> = HashSet::new();
        if let (true, Some(path)) = (files.base_forms, &files.lemmas) {
            let all_pos = |f: &[&str]| f.len() >= 2 && f[1..].iter().all(|p| POS.contains(p));
            tsv(path, "WordNet lemmas", "`word<TAB>pos...`", all_pos, |f| {
                let word = interner.id(&f[0].to_lowercase());
                lemmas.extend(f[1..].iter().map(|p| (word, pos_index(p))));
            })?;
        }

        let mut ppdb: HashMap<u32, Vec<u32>> = HashMap::new();
        if let Some(path) = &files.ppdb_synonyms {
            for (a, b) in pairs(path, "PPDB synonyms")? {
                let (a, b) = (interner.id(&a), interner.id(&b));
                for (x, y) in [(a, b), (b, a)] {
                    let list = ppdb.entry(x).or_default();
                    if !list.contains(&y) {
                        list.push(y);
                    }
                }
            }
        }

        let mut antonyms: HashSet<(u32, u32)> = HashSet::new();
        for path in &files.antonyms {
            for (a, b) in pairs(path, "antonyms")? {
                let (a, b) = (interner.id(&a), interner.id(&b));
                antonyms.insert((a, b));
                antonyms.insert((b, a));
            }
        }

        let mut stopwords = HashSet::new();
        if let Some(path) = &files.stopwords {
            let text = read(path, "stop words")?;
            for (n, line) in lines(&text) {
                let w = line.trim_start();
                if w.contains(char::is_whitespace) {
                    return Err(malformed(path, n, "one word per line", line));
                }
                stopwords.insert(w.to_lowercase().into_boxed_str());
            }
        }

        let n = interner.words.len();
        wordnet.resize_with(n, Vec::new);
        let cap = files.max_candidates.unwrap_or(usize::MAX);
        let candidates = (0..n as u32)
            .map(|w| {
                let mut out: Vec<u32> = Vec::new();
                let mut push = |c: u32| {
                    if c != w && !antonyms.contains(&(w, c)) && !out.contains(&c) && out.len() < cap {
                        out.push(c);
                    }
                };
                // PPDB first: those pairs are what pulled the counter-fitted neighbours of
                // TextFooler together, so they are its closest candidates.
                for &c in ppdb.get(&w).map(Vec::as_slice).unwrap_or_default() {
                    push(c);
                }
                // Round-robin over the parts of speech, each in sense order: with no tagger,
                // this keeps the first senses of every reading ahead of the rare ones of one
                // reading when a list is truncated ("good" adj before "good" noun's tail).
                let lists = &wordnet[w as usize];
                let longest = lists.iter().map(|(_, l)| l.len()).max().unwrap_or(0);
                for k in 0..longest {
                    for (_, list) in lists {
                        if let Some(&c) = list.get(k) {
                            push(c);
                        }
                    }
                }
                out.into_boxed_slice()
            })
            .collect();
        let senses = if files.base_forms {
            let by_word = wordnet.into_iter().enumerate();
            by_word
                .flat_map(|(w, lists)| lists.into_iter().map(move |(p, l)| ((w as u32, p), l.into())))
                .collect()
        } else {
            HashMap::new()
        };
        Ok(Self {
            ids: interner.ids,
            words: interner.words,
            candidates,
            antonyms,
            stopwords,
            inflections: files.inflections,
            senses,
            exceptions,
            lemmas,
            base_forms: files.base_forms,
            cap,
        })
    }

    /// The base forms of `word` as a `pos` (its own form included when it is one), the
    /// way nltk's morphy finds them: the exception list if it has the word, else the word
    /// and each suffix rule's result, kept when the table lists it as that part of speech.
    fn bases(&self, word: &str, pos: Pos) -> Vec<u32> {
        let id = self.ids.get(word).copied();
        let lemma = |w: u32| self.senses.contains_key(&(w, pos)) || self.lemmas.contains(&(w, pos));
        let mut out: Vec<u32> = Vec::new();
        let mut keep = |w: u32| {
            if lemma(w) && !out.contains(&w) {
                out.push(w);
            }
        };
        if let Some(bases) = id.and_then(|w| self.exceptions.get(&(w, pos))) {
            id.into_iter().chain(bases.iter().copied()).for_each(&mut keep);
            return out;
        }
        id.into_iter().for_each(&mut keep);
        for &(ending, base_ending) in MORPHY_RULES[pos as usize] {
            let Some(stem) = word.strip_suffix(ending) else { continue };
            if let Some(&b) =
                self.ids.get(format!("{stem}{base_ending}").as_str()).filter(|_| !stem.is_empty())
            {
                keep(b);
            }
        }
        out
    }

    /// What `base_forms` adds for `word`: each base form (but the word itself) and then
    /// the synonyms of every base form, part of speech by part of speech; none that is an
    /// antonym of the word, or a synonym that is one of its base form.
    fn base_form_candidates(&self, word: &str) -> Vec<u32> {
        let surface = self.ids.get(word).copied();
        let allowed = |c: u32| Some(c) != surface && surface.is_none_or(|w| !self.antonyms.contains(&(w, c)));
        let mut out: Vec<u32> = Vec::new();
        let mut lists: Vec<(u32, &[u32])> = Vec::new();
        for pos in 0..POS.len() as Pos {
            for b in self.bases(word, pos) {
                if allowed(b) && !out.contains(&b) {
                    out.push(b);
                }
                if let Some(list) = self.senses.get(&(b, pos)) {
                    lists.push((b, list));
                }
            }
        }
        for (b, list) in lists {
            for &c in list {
                if allowed(c) && !self.antonyms.contains(&(b, c)) && !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        out
    }

    fn listed(&self, word: &str) -> &[u32] {
        self.ids.get(word).map(|&id| &*self.candidates[id as usize]).unwrap_or_default()
    }

    /// Replacement candidates for `word` (any case, returned lower-case), best first; empty
    /// when it has none.
    ///
    /// The table lists base forms only. With `inflections`, a word it lacks is reduced by
    /// WordNet's morphy suffix rules to the first base form that has candidates, and those
    /// are inflected back the same way ("films" → "film" → "movie" → "movies"), so far more
    /// of MR's non-stop words are swappable (BENCHMARKS.md). The inflection is rule
    /// based, so an irregular word can come out as a non-word; a word-level model reads that
    /// as unknown, which is still a legal swap.
    ///
    /// With `base_forms`, the word's own synonyms come first, then what nltk's
    /// `wordnet.synsets(word)` adds through morphy (`bases`), then the re-inflected
    /// ones; `max_candidates` cuts the whole list.
    pub fn candidates(&self, word: &str) -> Vec<String> {
        let word = lower(word);
        let direct = self.listed(&word);
        if !self.base_forms {
            if !direct.is_empty() || !self.inflections {
                return direct.iter().map(|&c| self.words[c as usize].to_string()).collect();
            }
            return self.inflected(&word);
        }
        let mut out: Vec<String> = Vec::new();
        for &c in direct.iter().chain(&self.base_form_candidates(&word)) {
            let c = &*self.words[c as usize];
            if out.len() < self.cap && !out.iter().any(|o| o == c) {
                out.push(c.to_owned());
            }
        }
        // With base forms, a listed word gets its re-inflected candidates too: "amazing"
        // (adj) also gets "astounding", "baffling" from the verb "amaze".
        if self.inflections {
            for c in self.inflected(&word) {
                if out.len() < self.cap && !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        out
    }

    /// The word reduced by the suffix rules to the first base form that has candidates,
    /// and those inflected back the same way. Without `base_forms`, only for a word the
    /// table lacks.
    fn inflected(&self, word: &str) -> Vec<String> {
        if !self.base_forms && !self.listed(word).is_empty() {
            return Vec::new();
        }
        for &(ending, base_ending, form) in &MORPHY {
            let Some(stem) = word.strip_suffix(ending) else { continue };
            if stem.len() < 2 {
                continue;
            }
            let base = format!("{stem}{base_ending}");
            let listed = self.listed(&base);
            if listed.is_empty() {
                continue;
            }
            let surface = self.ids.get(word);
            let mut out: Vec<String> = Vec::new();
            for &c in listed {
                let inflected = inflect(&self.words[c as usize], form);
                let antonym = surface
                    .zip(self.ids.get(inflected.as_str()))
                    .is_some_and(|(&w, &c)| self.antonyms.contains(&(w, c)));
                if !antonym && inflected != word && !out.contains(&inflected) {
                    out.push(inflected);
                }
            }
            return out;
        }
        Vec::new()
    }

    /// Whether `candidate` is among [`Self::candidates`] of `word`, case aside: how the
    /// host judges a declared [`Budget::Synonyms`](crate::Budget::Synonyms).
    pub fn offers(&self, word: &str, candidate: &str) -> bool {
        let candidate = lower(candidate);
        self.candidates(word).iter().any(|c| lower(c) == candidate)
    }

    pub fn is_stopword(&self, word: &str) -> bool {
        self.stopwords.contains(lower(word).as_ref())
    }

    /// Words that have at least one candidate.
    pub fn n_words_with_candidates(&self) -> usize {
        self.candidates.iter().filter(|c| !c.is_empty()).count()
    }

    pub fn n_stopwords(&self) -> usize {
        self.stopwords.len()
    }
}

#[derive(Debug, Clone, Copy)]
enum Form {
    /// Noun plural or verb third person: -s.
    S,
    /// Past tense or participle: -ed.
    Ed,
    /// Present participle: -ing.
    Ing,
}

/// WordNet's morphy detachment rules for nouns and verbs (longest ending first), plus
/// -ied → -y, which morphy leaves to its exception lists: the inflected ending, the base
/// ending that replaces it, the form it marks.
const MORPHY: [(&str, &str, Form); 15] = [
    ("ches", "ch", Form::S),
    ("shes", "sh", Form::S),
    ("ies", "y", Form::S),
    ("ses", "s", Form::S),
    ("xes", "x", Form::S),
    ("zes", "z", Form::S),
    ("men", "man", Form::S),
    ("es", "e", Form::S),
    ("es", "", Form::S),
    ("s", "", Form::S),
    ("ied", "y", Form::Ed),
    ("ed", "e", Form::Ed),
    ("ed", "", Form::Ed),
    ("ing", "e", Form::Ing),
    ("ing", "", Form::Ing),
];

fn inflect(base: &str, form: Form) -> String {
    let consonant_y =
        base.ends_with('y') && base.len() > 1 && !"aeiou".contains(&base[base.len() - 2..base.len() - 1]);
    match form {
        Form::S if base.ends_with("man") => format!("{}men", &base[..base.len() - 3]),
        Form::S if ["s", "x", "z", "ch", "sh"].iter().any(|e| base.ends_with(e)) => format!("{base}es"),
        Form::S if consonant_y => format!("{}ies", &base[..base.len() - 1]),
        Form::S => format!("{base}s"),
        Form::Ed if base.ends_with('e') => format!("{base}d"),
        Form::Ed if consonant_y => format!("{}ied", &base[..base.len() - 1]),
        Form::Ed => format!("{base}ed"),
        Form::Ing if base.ends_with("ie") => format!("{}ying", &base[..base.len() - 2]),
        Form::Ing if base.ends_with('e') && !base.ends_with("ee") => {
            format!("{}ing", &base[..base.len() - 1])
        }
        Form::Ing => format!("{base}ing"),
    }
}

/// Lower case without allocating for the usual, already lower-case word.
fn lower(word: &str) -> std::borrow::Cow<'_, str> {
    if word.chars().any(char::is_uppercase) { word.to_lowercase().into() } else { word.into() }
}

/// `candidate` written in the case pattern of `original` ("Good" → "Decent", "GOOD" →
/// "DECENT"), so a swap does not announce itself by its case.
pub fn match_case(original: &str, candidate: &str) -> String {
    let mut letters = original.chars().filter(|c| c.is_alphabetic());
    let first_upper = letters.next().is_some_and(char::is_uppercase);
    let rest_upper = original.chars().filter(|c| c.is_alphabetic()).count() > 1
        && original.chars().filter(|c| c.is_alphabetic()).skip(1).all(char::is_uppercase);
    if first_upper && rest_upper {
        candidate.to_uppercase()
    } else if first_upper {
        let mut c = candidate.chars();
        c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
    } else {
        candidate.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tempered-text-lexicon-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn merges_ppdb_first_then_round_robin_over_pos_and_drops_antonyms_and_self() {
        let d = dir("merge");
        std::fs::write(d.join("wn.tsv"), "good\tnoun\tgoodness\tcommodity\ngood\tadj\tfine\tbad\tgood\n")
            .unwrap();
        std::fs::write(d.join("ppdb.txt"), "good nice\nnice good\n").unwrap();
        std::fs::write(d.join("ant.txt"), "bad good \n").unwrap();
        let files = LexiconFiles {
            synonyms: d.join("wn.tsv"),
            ppdb_synonyms: Some(d.join("ppdb.txt")),
            antonyms: vec![d.join("ant.txt")],
            ..Default::default()
        };
        let lex = Lexicon::load(&files).unwrap();
        assert_eq!(lex.candidates("Good"), ["nice", "goodness", "fine", "commodity"]);
        // PPDB pairs are symmetric; WordNet lines are not made symmetric.
        assert_eq!(lex.candidates("nice"), ["good"]);
        assert!(lex.candidates("fine").is_empty());

        let lex = Lexicon::load(&LexiconFiles { max_candidates: Some(2), ..files }).unwrap();
        assert_eq!(lex.candidates("good"), ["nice", "goodness"]);
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let d = dir("malformed");
        let cases = [
            ("wn.tsv", "good\tadj\tfine\n\ngood\tadjective\tfine\n", 3),
            ("wn2.tsv", "good\tadj\n", 1),
            ("wn3.tsv", "good\tadj\tfine one\n", 1),
        ];
        for (name, body, line) in cases {
            std::fs::write(d.join(name), body).unwrap();
            let e =
                Lexicon::load(&LexiconFiles { synonyms: d.join(name), ..Default::default() }).unwrap_err();
            assert!(e.0.contains(&format!("{name}:{line}: malformed line")), "{e}");
        }
        std::fs::write(d.join("ok.tsv"), "good\tadj\tfine\n").unwrap();
        std::fs::write(d.join("pairs.txt"), "a b\nc\n").unwrap();
        std::fs::write(d.join("stop.txt"), "the\na b\n").unwrap();
        let base = LexiconFiles { synonyms: d.join("ok.tsv"), ..Default::default() };
        let e =
            Lexicon::load(&LexiconFiles { antonyms: vec![d.join("pairs.txt")], ..base.clone() }).unwrap_err();
        assert!(e.0.contains("pairs.txt:2: malformed line"), "{e}");
        let e = Lexicon::load(&LexiconFiles { ppdb_synonyms: Some(d.join("pairs.txt")), ..base.clone() })
            .unwrap_err();
        assert!(e.0.contains("pairs.txt:2: malformed line"), "{e}");
        let e = Lexicon::load(&LexiconFiles { stopwords: Some(d.join("stop.txt")), ..base }).unwrap_err();
        assert!(e.0.contains("stop.txt:2: malformed line"), "{e}");
    }

    #[test]
    fn inflected_words_get_inflected_candidates_when_asked() {
        let d = dir("inflect");
        let table = "film\tnoun\tmovie\tpicture\tflick\nlove\tverb\tenjoy\tadore\ttie\n\
                     story\tnoun\tnarrative\tbox\tchairman\ncry\tverb\tweep\tcarry\n";
        std::fs::write(d.join("wn.tsv"), table).unwrap();
        std::fs::write(d.join("ant.txt"), "loved enjoyed\n").unwrap();
        let files = LexiconFiles {
            synonyms: d.join("wn.tsv"),
            antonyms: vec![d.join("ant.txt")],
            inflections: true,
            ..Default::default()
        };
        let lex = Lexicon::load(&files).unwrap();
        assert_eq!(lex.candidates("films"), ["movies", "pictures", "flicks"]);
        // "enjoyed" is listed as an antonym of "loved" (for the test's sake).
        assert_eq!(lex.candidates("loved"), ["adored", "tied"]);
        assert_eq!(lex.candidates("loving"), ["enjoying", "adoring", "tying"]);
        assert_eq!(lex.candidates("stories"), ["narratives", "boxes", "chairmen"]);
        assert_eq!(lex.candidates("cried"), ["weeped", "carried"]);
        assert!(lex.candidates("is").is_empty());
        let plain = Lexicon::load(&LexiconFiles { inflections: false, ..files }).unwrap();
        assert!(plain.candidates("films").is_empty());
        assert_eq!(plain.candidates("film"), ["movie", "picture", "flick"]);
    }

    #[test]
    fn base_forms_add_what_morphy_finds_in_every_part_of_speech() {
        let d = dir("base-forms");
        let table = "film\tnoun\tmovie\tpicture\nfilm\tverb\tshoot\n\
                     good\tadj\tfine\tbad\nfeel\tverb\tsense\nfelt\tnoun\tfleece\n\
                     review\tnoun\tcritique\n";
        std::fs::write(d.join("wn.tsv"), table).unwrap();
        std::fs::write(d.join("exc.tsv"), "better\tadj\tgood\nfelt\tverb\tfeel\n").unwrap();
        std::fs::write(d.join("lemmas.tsv"), "critic\tnoun\n").unwrap();
        std::fs::write(d.join("ant.txt"), "good bad\n").unwrap();
        let files = LexiconFiles {
            synonyms: d.join("wn.tsv"),
            antonyms: vec![d.join("ant.txt")],
            base_forms: true,
            exceptions: Some(d.join("exc.tsv")),
            lemmas: Some(d.join("lemmas.tsv")),
            ..Default::default()
        };
        let lex = Lexicon::load(&files).unwrap();
        // The base form itself, its synonyms in every part of speech, uninflected.
        assert_eq!(lex.candidates("films"), ["film", "movie", "picture", "shoot"]);
        // Listed words keep their own synonyms first; the exception list adds "feel".
        assert_eq!(lex.candidates("felt"), ["fleece", "feel", "sense"]);
        // An irregular form through the exception list; "bad", good's antonym, stays out.
        assert_eq!(lex.candidates("better"), ["good", "fine"]);
        // A lemma with no synonyms of its own still counts as a base form.
        assert_eq!(lex.candidates("critics"), ["critic"]);
        // With inflections too, the re-inflected forms follow.
        let both = Lexicon::load(&LexiconFiles { inflections: true, ..files.clone() }).unwrap();
        assert_eq!(
            both.candidates("films"),
            ["film", "movie", "picture", "shoot", "movies", "shoots", "pictures"]
        );
        assert_eq!(both.candidates("reviews"), ["review", "critique", "critiques"]);
        // The cap applies to the whole list.
        let capped = Lexicon::load(&LexiconFiles { max_candidates: Some(2), ..files.clone() }).unwrap();
        assert_eq!(capped.candidates("films"), ["film", "movie"]);
        // Without base forms, none of that.
        let plain = Lexicon::load(&LexiconFiles { base_forms: false, ..files }).unwrap();
        assert!(plain.candidates("films").is_empty());
        assert_eq!(plain.candidates("felt"), ["fleece"]);

        std::fs::write(d.join("bad.tsv"), "critic\tnoun\tsomething\n").unwrap();
        let e = Lexicon::load(&LexiconFiles {
            synonyms: d.join("wn.tsv"),
            base_forms: true,
            lemmas: Some(d.join("bad.tsv")),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.0.contains("bad.tsv:1: malformed line"), "{e}");
    }

    #[test]
    fn case_follows_the_original() {
        assert_eq!(match_case("good", "decent"), "decent");
        assert_eq!(match_case("Good", "decent"), "Decent");
        assert_eq!(match_case("GOOD", "decent"), "DECENT");
        assert_eq!(match_case("A", "decent"), "Decent");
    }
}
