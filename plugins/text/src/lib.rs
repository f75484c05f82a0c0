//! # tempered-text
//!
//! First-party text attacks for Tempered's text models, loaded by the engine as the plugin
//! `text`: three word-substitution attacks and one character-level attack. A "word" is a
//! whitespace-separated token; a swap replaces one word by a synonym (or by a misspelling
//! of itself, for `deepwordbug`) and keeps every separator as it was.
//!
//! | attack | search | candidates |
//! |---|---|---|
//! | `pwws` | probability-weighted word saliency ([`pwws`]) | WordNet |
//! | `textfooler` | greedy, deletion importance ([`textfooler`]) | WordNet ∪ PPDB, top K |
//! | `beam` | beam search, deletion importance ([`beam`]) | WordNet ∪ PPDB, top K |
//! | `deepwordbug` | greedy, deletion importance ([`deepwordbug`]) | character edits of the word (swap, substitute, delete, insert) |
//!
//! `deepwordbug` reads no synonym table and has its own parameters (its module docs); the
//! rest of this page is about the three word-substitution attacks. All three share these constraints: stop words are never swapped, no swap turns a word
//! into one of its antonyms, no word is changed twice, at most `max_change_ratio` of the
//! words change, at most `query_budget` sentences per example go to the model, and, when
//! `min_similarity` is set, every candidate sentence is at least that similar to the
//! original under the host's sentence encoder (an error when the host has none). An
//! example that cannot be flipped comes back as the best attempt (lowest true-class
//! probability found) or unchanged; the host decides success by predicting.
//!
//! Shared parameters (every attack):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `synonyms` | required | path to `wordnet-synonyms.tsv` |
//! | `antonyms` | `[]` | antonym-pair files; a swap to an antonym of the replaced word is never made |
//! | `stopwords` | none | stop-word file; those words are never swapped |
//! | `max_change_ratio` | 0.2 | at most this share of the words changes, rounded down (10 words: 2) |
//! | `query_budget` | 2000 | at most this many sentences per example go to the model |
//! | `min_similarity` | unset | floor on the host encoder's cosine similarity to the original |
//! | `inflections` | true | a word missing from the table is looked up by its base form, candidates re-inflected |
//! | `base_forms` | false | also every base form morphy finds (any part of speech) and its synonyms, uninflected, as nltk's `wordnet.synsets(word)` and so TextAttack give them |
//! | `exceptions` | none | `wordnet-exceptions.tsv`: irregular forms for `base_forms` (better → good) |
//! | `lemmas` | none | `wordnet-lemmas.tsv`: lemmas without synonyms, so `base_forms` still offers them (critics → critic) |
//!
//! Queries are spent carefully, because the report counts them: misclassified examples
//! cost one query; stop words and words without candidates are never probed; the
//! per-word probes of a whole batch share one oracle call; no sentence is sent twice for
//! the same example (a cache per example); candidates under `min_similarity` are dropped
//! before they are sent. PWWS additionally evaluates swaps lazily ([`pwws`] explains
//! how). Measured on MR (`tests/mr_benchmark.rs`, stand-in models trained there), PWWS
//! spends about 39 queries per example, against about 82 for the paper's order of work at
//! the same success rate.
//!
//! Word lists are read once, when the attack is created; a missing file is an error that
//! names it, a malformed line one that names file and line. Paths are used as given, so
//! relative ones are relative to the engine's working directory (the repository root).
//! The lists ship in `data/` (see each folder's README for source and licence).
//!
//! ## `pwws`
//! ```toml
//! [[attack]]
//! plugin = "text"
//! attack = "pwws"
//! [attack.params]
//! synonyms = "data/wordnet-synonyms/wordnet-synonyms.tsv"   # required
//! antonyms = ["data/counterfit-constraints/ppdb_antonyms.txt",
//!             "data/counterfit-constraints/wordnet_antonyms.txt"]
//! stopwords = "data/stopwords/english.txt"
//! max_change_ratio = 0.2    # default 0.2
//! query_budget = 2000       # default 2000, per example
//! # min_similarity = 0.8    # default unset; needs a sentence encoder in the pipeline
//! # max_candidates = 20     # default: all WordNet synonyms
//! unk_token = "<unk>"       # default "<unk>"
//! lazy = true               # default true
//! in_context = true         # default true: last resort, re-score each word's synonyms in context
//! base_forms = true         # default false; TextAttack's WordNet candidates
//! exceptions = "data/wordnet-synonyms/wordnet-exceptions.tsv"
//! lemmas = "data/wordnet-synonyms/wordnet-lemmas.tsv"
//! ```
//!
//! ## `textfooler`
//! ```toml
//! [[attack]]
//! plugin = "text"
//! attack = "textfooler"
//! [attack.params]
//! synonyms = "data/wordnet-synonyms/wordnet-synonyms.tsv"   # required
//! ppdb_synonyms = "data/counterfit-constraints/ppdb_synonyms.txt"
//! antonyms = ["data/counterfit-constraints/ppdb_antonyms.txt",
//!             "data/counterfit-constraints/wordnet_antonyms.txt"]
//! stopwords = "data/stopwords/english.txt"
//! max_candidates = 30       # default 30
//! max_change_ratio = 0.2
//! query_budget = 2000
//! min_similarity = 0.84     # default unset
//! inflections = true        # default true
//! ```
//!
//! ## `beam`
//! ```toml
//! [[attack]]
//! plugin = "text"
//! attack = "beam"
//! [attack.params]
//! synonyms = "data/wordnet-synonyms/wordnet-synonyms.tsv"   # required
//! ppdb_synonyms = "data/counterfit-constraints/ppdb_synonyms.txt"
//! antonyms = ["data/counterfit-constraints/wordnet_antonyms.txt"]
//! stopwords = "data/stopwords/english.txt"
//! beam_width = 4            # default 4
//! max_candidates = 30       # default 30
//! max_change_ratio = 0.2
//! query_budget = 2000
//! ```

pub mod beam;
mod constraints;
pub mod deepwordbug;
pub mod pwws;
mod search;
pub mod textfooler;
mod tokens;

pub use beam::{Beam, BeamParams};
pub use deepwordbug::{DeepWordBug, DeepWordBugParams};
pub use pwws::{Pwws, PwwsParams};
pub use tempered_plugin::lexicon::{Lexicon, LexiconFiles};
pub use textfooler::{TextFooler, TextFoolerParams};

tempered_plugin::export_plugin! {
    name: "text",
    version: env!("CARGO_PKG_VERSION"),
    modality: tempered_plugin::Modality::Text,
    attacks: [Pwws, TextFooler, Beam, DeepWordBug],
}
