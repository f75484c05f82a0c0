//! The parameters and limits all three attacks share: word lists, the share of words that
//! may change, the query budget and the optional sentence-similarity floor.

use tempered_plugin::{Budget, PluginError, Result, SynonymSource, ThreatModel};

use crate::tokens::Tokens;
use tempered_plugin::lexicon::{Lexicon, LexiconFiles, match_case};

pub(crate) fn default_max_change_ratio() -> f64 {
    0.2
}

pub(crate) fn default_query_budget() -> u64 {
    2000
}

pub(crate) fn yes() -> bool {
    true
}

/// Declares an attack's parameter struct: the shared fields, then the attack's own.
///
/// A macro rather than `#[serde(flatten)]`, because serde cannot combine `flatten` with
/// `deny_unknown_fields`, and a typo in a pipeline must stay an error.
macro_rules! attack_params {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Path to `wordnet-synonyms.tsv`. Required. Relative paths here and below
            /// resolve as the pipeline's own do.
            pub synonyms: tempered_plugin::PipelinePath,
            /// Antonym-pair files (`ppdb_antonyms.txt`, `wordnet_antonyms.txt`): a swap to an
            /// antonym of the replaced word is never made. Default: none.
            #[serde(default)]
            pub antonyms: Vec<tempered_plugin::PipelinePath>,
            /// Stop-word file; stop words are never swapped. Default: none (any word may be).
            #[serde(default)]
            pub stopwords: Option<tempered_plugin::PipelinePath>,
            /// At most this share of an example's words is changed (rounded down). Default 0.2.
            #[serde(default = "crate::constraints::default_max_change_ratio")]
            pub max_change_ratio: f64,
            /// At most this many model queries per example. Default 2000.
            #[serde(default = "crate::constraints::default_query_budget")]
            pub query_budget: u64,
            /// When set, every candidate sentence needs a host-encoder cosine similarity to
            /// the original of at least this. Default: unset (no check).
            #[serde(default)]
            pub min_similarity: Option<f32>,
            /// A word missing from the synonym table is looked up by its base form (WordNet's
            /// suffix rules: films → film) and the candidates re-inflected (movie → movies).
            /// Default true.
            #[serde(default = "crate::constraints::yes")]
            pub inflections: bool,
            /// Also every base form WordNet's morphy finds for a word, in any part of
            /// speech, and that form's synonyms, as nltk's `synsets(word)` gives them
            /// (what TextAttack's WordNet swap offers). Default false.
            #[serde(default)]
            pub base_forms: bool,
            /// `wordnet-exceptions.tsv`, the irregular forms for `base_forms` ("better" →
            /// "good"). Default: none (suffix rules only).
            #[serde(default)]
            pub exceptions: Option<tempered_plugin::PipelinePath>,
            /// `wordnet-lemmas.tsv`, the lemmas without synonyms, for `base_forms`
            /// ("critics" → "critic"). Default: none.
            #[serde(default)]
            pub lemmas: Option<tempered_plugin::PipelinePath>,
            $( $(#[$fmeta])* pub $field : $ty, )*
        }

        impl $name {
            /// Loads the shared word lists and limits; the PPDB list and the candidate cap
            /// are the attack's own to give.
            pub(crate) fn constraints(
                &self,
                ppdb_synonyms: Option<tempered_plugin::PipelinePath>,
                max_candidates: Option<usize>,
            ) -> tempered_plugin::Result<crate::constraints::Constraints> {
                let path = |p: &tempered_plugin::PipelinePath| p.as_path().to_owned();
                let files = tempered_plugin::lexicon::LexiconFiles {
                    synonyms: path(&self.synonyms),
                    ppdb_synonyms: ppdb_synonyms.as_ref().map(path),
                    antonyms: self.antonyms.iter().map(path).collect(),
                    stopwords: self.stopwords.as_ref().map(path),
                    max_candidates,
                    inflections: self.inflections,
                    base_forms: self.base_forms,
                    exceptions: self.exceptions.as_ref().map(path),
                    lemmas: self.lemmas.as_ref().map(path),
                };
                crate::constraints::Constraints::new(
                    &files,
                    self.max_change_ratio,
                    self.query_budget,
                    self.min_similarity,
                )
            }
        }
    };
}
pub(crate) use attack_params;

/// The loaded word lists and limits of one attack instance.
#[derive(Debug)]
pub struct Constraints {
    pub lexicon: Lexicon,
    pub max_change_ratio: f64,
    pub query_budget: u64,
    pub min_similarity: Option<f32>,
    /// The files the lexicon was read from, named again in the threat model for the host
    /// to check by.
    files: LexiconFiles,
}

/// A word that may be swapped, with its candidates in the case of the original.
#[derive(Debug, Clone)]
pub struct Slot {
    pub pos: usize,
    pub candidates: Vec<String>,
}

impl Constraints {
    pub fn new(
        files: &LexiconFiles,
        max_change_ratio: f64,
        query_budget: u64,
        min_similarity: Option<f32>,
    ) -> Result<Self> {
        if !(0.0..=1.0).contains(&max_change_ratio) {
            return Err(PluginError(format!("max_change_ratio must be in [0, 1], got {max_change_ratio}")));
        }
        if query_budget == 0 {
            return Err("query_budget must be at least 1".into());
        }
        if let Some(m) = min_similarity.filter(|m| !(-1.0..=1.0).contains(m)) {
            return Err(PluginError(format!("min_similarity is a cosine, in [-1, 1]; got {m}")));
        }
        Ok(Self {
            lexicon: Lexicon::load(files)?,
            max_change_ratio,
            query_budget,
            min_similarity,
            files: files.clone(),
        })
    }

    /// Everything the three attacks promise: one-for-one swaps within the ratio, every
    /// swap from the synonym table, no stop word or antonym swapped (by the very files they
    /// read), the similarity floor, and the query budget.
    pub fn threat_model(&self) -> ThreatModel {
        let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
        let files = &self.files;
        ThreatModel::new([
            Budget::WordSwaps { max_ratio: self.max_change_ratio },
            Budget::Synonyms(SynonymSource::of(files)),
            Budget::Queries { max: self.query_budget },
        ])
        .with_opt(files.stopwords.as_deref().map(|p| Budget::StopWords { files: vec![path(p)] }))
        .with_opt(
            (!files.antonyms.is_empty())
                .then(|| Budget::NoAntonyms { files: files.antonyms.iter().map(|p| path(p)).collect() }),
        )
        .with_opt(self.min_similarity.map(|f| Budget::MinSimilarity { floor: f64::from(f) }))
    }

    /// How many words of an `n_words`-word example may change. Rounded down, because the
    /// ratio is a ceiling ("at most this share"); the epsilon keeps 0.2 * 10 at 2.
    pub fn max_changes(&self, n_words: usize) -> usize {
        (n_words as f64 * self.max_change_ratio + 1e-9).floor() as usize
    }

    /// The words of `tokens` that may be swapped. Stop words and words with no candidate
    /// are left out here, so no search ever spends a query on them.
    pub fn slots(&self, tokens: &Tokens<'_>) -> Vec<Slot> {
        (0..tokens.len())
            .filter_map(|pos| {
                let word = tokens.word(pos);
                if self.lexicon.is_stopword(word) {
                    return None;
                }
                let mut candidates: Vec<String> = Vec::new();
                for c in self.lexicon.candidates(word) {
                    let c = match_case(word, &c);
                    if c != word && !candidates.contains(&c) {
                        candidates.push(c);
                    }
                }
                (!candidates.is_empty()).then_some(Slot { pos, candidates })
            })
            .collect()
    }
}
