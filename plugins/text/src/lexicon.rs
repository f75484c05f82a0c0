//! The word lists: synonym candidates (WordNet, optionally PPDB), antonym pairs that veto a
//! candidate, and stop words that are never swapped.
//!
//! Everything is read once, in the attack's constructor. Words are interned to `u32` ids so
//! the ~130 k synonym entries cost 4 bytes each instead of a `String`, and each word's final
//! candidate list (merged, deduplicated, antonyms removed, truncated) is computed at load
//! time: a lookup during the search is one hash probe and a slice.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use tempered_plugin::{PluginError, Result};

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
}

const POS: [&str; 4] = ["noun", "verb", "adj", "adv"];

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
        let mut wordnet: Vec<Vec<Vec<u32>>> = Vec::new();
        let path = &files.synonyms;
        let text = read(path, "synonyms")?;
        let expected = "`word<TAB>pos<TAB>synonym...` with pos one of noun, verb, adj, adv";
        for (n, line) in lines(&text) {
            let fields: Vec<&str> = line.split('\t').collect();
            let ok = fields.len() >= 3
                && POS.contains(&fields[1])
                && fields.iter().all(|f| !f.is_empty() && !f.contains(char::is_whitespace));
            if !ok {
                return Err(malformed(path, n, expected, line));
            }
            let head = interner.id(&fields[0].to_lowercase()) as usize;
            let syns: Vec<u32> = fields[2..].iter().map(|s| interner.id(&s.to_lowercase())).collect();
            if wordnet.len() <= head {
                wordnet.resize_with(head + 1, Vec::new);
            }
            wordnet[head].push(syns);
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
                let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
                for k in 0..longest {
                    for list in lists {
                        if let Some(&c) = list.get(k) {
                            push(c);
                        }
                    }
                }
                out.into_boxed_slice()
            })
            .collect();
        Ok(Self {
            ids: interner.ids,
            words: interner.words,
            candidates,
            antonyms,
            stopwords,
            inflections: files.inflections,
        })
    }

    fn listed(&self, word: &str) -> &[u32] {
        self.ids.get(word).map(|&id| &*self.candidates[id as usize]).unwrap_or_default()
    }

    /// Replacement candidates for `word` (any case, returned lower-case), best first; empty
    /// when it has none.
    ///
    /// The table lists base forms only. With `inflections`, a word it lacks is reduced by
    /// WordNet's morphy suffix rules to the first base form that has candidates, and those
    /// are inflected back the same way ("films" → "film" → "movie" → "movies"). On MR this
    /// makes 82 % of the non-stop words swappable instead of 68 %. The inflection is rule
    /// based, so an irregular word can come out as a non-word; a word-level model reads that
    /// as unknown, which is still a legal swap.
    pub fn candidates(&self, word: &str) -> Vec<String> {
        let word = lower(word);
        let direct = self.listed(&word);
        if !direct.is_empty() || !self.inflections {
            return direct.iter().map(|&c| self.words[c as usize].to_string()).collect();
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
            let surface = self.ids.get(word.as_ref());
            let mut out: Vec<String> = Vec::new();
            for &c in listed {
                let inflected = inflect(&self.words[c as usize], form);
                let antonym = surface
                    .zip(self.ids.get(inflected.as_str()))
                    .is_some_and(|(&w, &c)| self.antonyms.contains(&(w, c)));
                if !antonym && inflected != *word && !out.contains(&inflected) {
                    out.push(inflected);
                }
            }
            return out;
        }
        Vec::new()
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
    fn case_follows_the_original() {
        assert_eq!(match_case("good", "decent"), "decent");
        assert_eq!(match_case("Good", "decent"), "Decent");
        assert_eq!(match_case("GOOD", "decent"), "DECENT");
        assert_eq!(match_case("A", "decent"), "Decent");
    }
}
