//! Synonym encoding (Wang et al. 2021, "Natural Language Adversarial Defense through
//! Synonym Encoding"): words that are synonyms of one another are read as one word, so a
//! swap inside a cluster changes nothing the model sees. It is part of the model, not a
//! preprocessing step in front of it: every attack queries the model with the encoding
//! inside, so the robustness it buys is measured by the same black-box search as any other.
//!
//! The clusters are built greedily from the synonym table (the paper's greedy encoding,
//! with the table instead of embedding distances): the train split's words in order of
//! frequency, each one not yet encoded becomes a representative and takes every candidate
//! the [`Lexicon`] offers for it that is not encoded yet. With `clusters = "stars"` (the
//! default) that is all; with `"chains"`, a word already in a cluster also brings its own
//! unencoded candidates in, as SEM does, so clusters follow chains of synonyms: more swaps
//! fall inside a cluster, and more words of different meaning share one. Stop words
//! are never encoded (they are never swapped, and "no" is not "not"). The word-CNN's
//! vocabulary is built from the encoded train texts, and every other member of a cluster is
//! an alias of its representative's id (see [`super::word_cnn::Vocab::alias`]).
//!
//! ```toml
//! [model]
//! kind = "word-cnn"
//! # The training attack's own word lists: what it may swap, the model reads as one word.
//! synonym_encoding = { synonyms = "data/wordnet-synonyms/wordnet-synonyms.tsv", ppdb_synonyms = "data/counterfit-constraints/ppdb_synonyms.txt", stopwords = "data/stopwords/english.txt" }
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tempered_plugin::lexicon::{Lexicon, LexiconFiles};

use crate::error::Invalid;

/// `[model] synonym_encoding`: the word lists the clusters are drawn from, as a text attack
/// names them (relative paths resolve against the pipeline's folder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynonymEncodingConfig {
    /// `wordnet-synonyms.tsv`: `word<TAB>pos<TAB>synonym...`.
    pub synonyms: PathBuf,
    /// `ppdb_synonyms.txt`: `word synonym` pairs, added to the WordNet candidates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppdb_synonyms: Option<PathBuf>,
    /// Antonym-pair files: a word's antonym never joins its cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub antonyms: Vec<PathBuf>,
    /// Stop words, never encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopwords: Option<PathBuf>,
    /// At most this many candidates of a representative join its cluster (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_candidates: Option<usize>,
    /// A word the table lacks is looked up by its base form and the candidates re-inflected,
    /// as the text attacks do by default (default true).
    #[serde(default = "yes")]
    pub inflections: bool,
    /// How far a cluster reaches (default `stars`).
    #[serde(default)]
    pub clusters: Clusters,
}

/// The shape of the clusters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Clusters {
    /// A representative and its own candidates.
    #[default]
    Stars,
    /// A word already in a cluster brings its own candidates not yet encoded into it, so
    /// clusters grow along chains of synonyms (SEM's greedy encoding): more swaps land
    /// inside a cluster, and more words of different meaning share one.
    Chains,
}

fn yes() -> bool {
    true
}

impl SynonymEncodingConfig {
    /// The settings make an encoding (the files are read only when the model is built).
    pub fn check(&self) -> Result<(), Invalid> {
        if self.max_candidates == Some(0) {
            return Err("model.synonym_encoding.max_candidates must be at least 1".into());
        }
        Ok(())
    }

    fn files(&self, base_dir: &Path) -> LexiconFiles {
        let at = |p: &Path| if p.is_absolute() { p.to_owned() } else { base_dir.join(p) };
        LexiconFiles {
            synonyms: at(&self.synonyms),
            ppdb_synonyms: self.ppdb_synonyms.as_deref().map(at),
            antonyms: self.antonyms.iter().map(|p| at(p)).collect(),
            stopwords: self.stopwords.as_deref().map(at),
            max_candidates: self.max_candidates,
            inflections: self.inflections,
            ..LexiconFiles::default()
        }
    }
}

/// Each encoded word's representative (a representative maps to itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SynonymEncoding {
    representative: HashMap<String, String>,
}

impl SynonymEncoding {
    /// Reads the word lists and clusters the words of `train` (see the module docs). The
    /// error names the file that could not be read.
    pub fn build<S: AsRef<str>>(
        cfg: &SynonymEncodingConfig,
        base_dir: &Path,
        train: &[S],
    ) -> Result<Self, Invalid> {
        cfg.check()?;
        let files = cfg.files(base_dir);
        let named = files.ppdb_synonyms.iter().chain(&files.antonyms).chain(&files.stopwords);
        for p in std::iter::once(&files.synonyms).chain(named) {
            // A FIFO or a device would block the read, and the run with it, forever.
            if let Ok(m) = std::fs::metadata(p)
                && !m.is_file()
            {
                return Err(Invalid::new(format!(
                    "model.synonym_encoding: {} is not a regular file; give a word list",
                    p.display()
                )));
            }
        }
        let lexicon =
            Lexicon::load(&files).map_err(|e| Invalid::new(format!("model.synonym_encoding: {e}")))?;
        Ok(Self::cluster(&lexicon, train, cfg.clusters))
    }

    /// The greedy star clustering of `train`'s words by `lexicon`.
    pub fn cluster<S: AsRef<str>>(lexicon: &Lexicon, train: &[S], shape: Clusters) -> Self {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for t in train {
            for w in tempered_plugin::words::words(t.as_ref()) {
                *counts.entry(w).or_default() += 1;
            }
        }
        let mut order: Vec<(&str, usize)> = counts.into_iter().collect();
        // Most frequent first, ties in byte order: the same clusters on every machine.
        order.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let chains = shape == Clusters::Chains;
        let mut representative: HashMap<String, String> = HashMap::new();
        for (word, _) in order {
            if lexicon.is_stopword(word) || (!chains && representative.contains_key(word)) {
                continue;
            }
            let members: Vec<String> = lexicon
                .candidates(word)
                .into_iter()
                .filter(|c| c != word && !lexicon.is_stopword(c) && !representative.contains_key(c))
                .collect();
            if members.is_empty() {
                continue;
            }
            let rep = representative.entry(word.to_owned()).or_insert_with(|| word.to_owned()).clone();
            for m in members {
                representative.insert(m, rep.clone());
            }
        }
        Self { representative }
    }

    /// The word the model reads for `word`.
    pub fn encode<'a>(&'a self, word: &'a str) -> &'a str {
        self.representative.get(word).map_or(word, String::as_str)
    }

    /// `text` with every word replaced by its representative, words joined by one space.
    pub fn encode_text(&self, text: &str) -> String {
        tempered_plugin::words::words(text).map(|w| self.encode(w)).collect::<Vec<_>>().join(" ")
    }

    /// Every (word, representative) pair where the two differ, in byte order of the word.
    pub fn aliases(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = self
            .representative
            .iter()
            .filter(|(w, r)| w != r)
            .map(|(w, r)| (w.as_str(), r.as_str()))
            .collect();
        out.sort_unstable();
        out
    }

    /// How many clusters (representatives) there are.
    pub fn n_clusters(&self) -> usize {
        self.representatives().count()
    }

    /// Each cluster's representative, in no particular order.
    pub fn representatives(&self) -> impl Iterator<Item = &str> {
        self.representative.iter().filter(|(w, r)| w == r).map(|(w, _)| w.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    fn lists(tag: &str) -> (PathBuf, SynonymEncodingConfig) {
        let dir = std::env::temp_dir().join(format!("tempered-synenc-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // good ~ great ~ fine; fine ~ ok; bad ~ poor; not ~ no (stop words).
        let synonyms = write(
            &dir,
            "wn.tsv",
            "good\tadj\tgreat\tfine\ngreat\tadj\tgood\nfine\tadj\tgood\tok\nok\tadj\tfine\n\
             bad\tadj\tpoor\tgood\npoor\tadj\tbad\nnot\tadv\tno\n",
        );
        let antonyms = write(&dir, "ant.txt", "bad good\n");
        let stopwords = write(&dir, "stop.txt", "not\nno\n");
        let cfg = SynonymEncodingConfig {
            synonyms,
            ppdb_synonyms: None,
            antonyms: vec![antonyms],
            stopwords: Some(stopwords),
            max_candidates: None,
            inflections: false,
            clusters: Clusters::Stars,
        };
        (dir, cfg)
    }

    #[test]
    fn clusters_grow_from_the_most_frequent_words_and_skip_stop_words_and_antonyms() {
        let (dir, cfg) = lists("stars");
        let train = ["good good fine film", "good ok not bad", "poor poor poor film no"];
        let e = SynonymEncoding::build(&cfg, &dir, &train).unwrap();
        // good and poor (3 each) come first, good by byte order: it takes great and fine,
        // poor takes bad. ok is fine's synonym, not good's, and fine is encoded already, so
        // ok stays a word of its own (a star, not a chain).
        assert_eq!(e.encode("bad"), "poor");
        assert_eq!(e.encode("great"), "good");
        assert_eq!(e.encode("fine"), "good");
        assert_eq!(e.encode("ok"), "ok");
        assert_eq!(e.encode("film"), "film");
        // The antonym vetoes bad → good, and stop words are never encoded.
        assert_eq!(e.encode("not"), "not");
        assert_eq!(e.encode("no"), "no");
        assert_eq!(e.n_clusters(), 2);
        assert_eq!(e.aliases(), vec![("bad", "poor"), ("fine", "good"), ("great", "good")]);
        assert_eq!(e.encode_text("a  great\tfilm , not bad"), "a good film , not poor");
        // As chains, fine (already good's) brings its own synonym ok along.
        let chains = SynonymEncodingConfig { clusters: Clusters::Chains, ..cfg };
        let e = SynonymEncoding::build(&chains, &dir, &train).unwrap();
        assert_eq!(e.encode("ok"), "good");
        assert_eq!((e.encode("bad"), e.encode("not")), ("poor", "not"));
        assert_eq!(e.n_clusters(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_list_or_a_folder_is_named_and_zero_candidates_refused() {
        let (dir, cfg) = lists("missing");
        let gone = SynonymEncodingConfig { synonyms: dir.join("nope.tsv"), ..cfg.clone() };
        let e = SynonymEncoding::build(&gone, &dir, &["good"]).unwrap_err();
        assert!(e.contains("model.synonym_encoding") && e.contains("nope.tsv"), "{e}");
        let folder = SynonymEncodingConfig { stopwords: Some(dir.clone()), ..cfg.clone() };
        let e = SynonymEncoding::build(&folder, &dir, &["good"]).unwrap_err();
        assert!(e.contains("is not a regular file"), "{e}");
        let zero = SynonymEncodingConfig { max_candidates: Some(0), ..cfg };
        assert!(SynonymEncoding::build(&zero, &dir, &["good"]).unwrap_err().contains("max_candidates"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
