//! Turning byte offsets and key paths of a pipeline file into `file:line:col`.

use std::path::Path;

use toml::de::{DeTable, DeValue};

/// 1-based line and column of byte `offset` in `src` (columns count characters).
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = src[line_start..offset].chars().count() + 1;
    (line, col)
}

/// `file:line:col: msg`, pointing at `offset` (or `file: msg` when unknown).
pub fn at(file: &Path, src: &str, offset: Option<usize>, msg: &str) -> String {
    let msg = &clip_words(msg);
    match offset {
        Some(o) => {
            let (l, c) = line_col(src, o);
            format!("{}:{l}:{c}: {msg}", file.display())
        }
        None => format!("{}: {msg}", file.display()),
    }
}

/// A word of a message longer than this is cut: the TOML parser echoes keys and values
/// whole, and a 100 KB key would bury the place it is reported at.
const MAX_WORD_CHARS: usize = 200;
/// How much of a cut word is kept.
const KEPT_CHARS: usize = 60;

/// `msg` with every run of non-space characters longer than [`MAX_WORD_CHARS`] cut to its
/// start and its length.
pub fn clip_words(msg: &str) -> String {
    if msg.len() <= MAX_WORD_CHARS {
        return msg.to_owned();
    }
    let mut out = String::with_capacity(msg.len().min(4 * MAX_WORD_CHARS));
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let n = word.chars().count();
        if n > MAX_WORD_CHARS {
            out.extend(word.chars().take(KEPT_CHARS));
            out.push_str(&format!("… ({n} characters)"));
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in msg.chars() {
        if c.is_whitespace() {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// A validation failure: the key path it is about, and what is wrong. Unlike a plain
/// [`crate::error::Invalid`] it knows its key, so the error can name the line.
pub struct AtKey {
    pub path: Vec<Key>,
    pub msg: String,
}

impl AtKey {
    pub fn new(path: Vec<Key>, msg: impl Into<String>) -> Self {
        Self { path, msg: msg.into() }
    }
}

pub(super) fn keys(names: &[&str]) -> Vec<Key> {
    names.iter().map(|&n| n.into()).collect()
}

/// A path to a key: table names, then an array index for `[[array]]` tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Name(String),
    Index(usize),
}

impl From<&str> for Key {
    fn from(s: &str) -> Self {
        Key::Name(s.to_owned())
    }
}

impl From<usize> for Key {
    fn from(i: usize) -> Self {
        Key::Index(i)
    }
}

/// The byte offset of the deepest part of `path` found in `src`: the key itself when it
/// exists, else the closest table that does, so an error always points somewhere useful.
pub fn offset_of(src: &str, path: &[Key]) -> Option<usize> {
    let doc = DeTable::parse(src).ok()?;
    let mut best = None;
    let mut table: &DeTable<'_> = doc.get_ref();
    let mut value: Option<&DeValue<'_>> = None;
    for key in path {
        match key {
            Key::Name(name) => {
                if let Some(v) = value {
                    let Some(t) = v.as_table() else { return best };
                    table = t;
                }
                let Some((k, v)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == name.as_str()) else {
                    return best;
                };
                best = Some(k.span().start);
                value = Some(v.get_ref());
            }
            Key::Index(i) => {
                let Some(item) = value.and_then(|v| v.as_array()).and_then(|a| a.get(*i)) else {
                    return best;
                };
                best = Some(item.span().start);
                value = Some(item.get_ref());
            }
        }
    }
    best
}

/// `train.lr`, `attack[1].params.epsilon`, `data.columns."odd name".cost`.
pub fn dotted(path: &[Key]) -> String {
    let mut out = String::new();
    for key in path {
        match key {
            Key::Name(n) => {
                if !out.is_empty() {
                    out.push('.');
                }
                let bare =
                    !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if bare {
                    out.push_str(n);
                } else {
                    out.push_str(&format!("{n:?}"));
                }
            }
            Key::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A float in the file that is NaN or infinite.
#[derive(Debug, Clone, PartialEq)]
pub struct NonFinite {
    /// Where its value starts.
    pub offset: usize,
    pub path: Vec<Key>,
    /// As written (`nan`, `-inf`).
    pub text: String,
}

/// The first NaN or infinite float in `src`, in file order, skipping infinities at the
/// paths `inf_ok` accepts. TOML can spell both, serde takes them as they are, and JSON
/// (the plugins' params) cannot, so they would reach a plugin as `null`.
pub fn non_finite(src: &str, inf_ok: impl Fn(&[Key]) -> bool) -> Option<NonFinite> {
    fn walk(
        v: &toml::de::DeValue<'_>,
        offset: usize,
        path: &mut Vec<Key>,
        inf_ok: &dyn Fn(&[Key]) -> bool,
        found: &mut Option<NonFinite>,
    ) {
        match v {
            DeValue::Float(f) => {
                let x: f64 = f.as_str().parse().unwrap_or(f64::NAN);
                let bad = x.is_nan() || (x.is_infinite() && !inf_ok(path));
                if bad && found.as_ref().is_none_or(|b| offset < b.offset) {
                    *found = Some(NonFinite { offset, path: path.clone(), text: f.as_str().to_owned() });
                }
            }
            DeValue::Table(t) => walk_table(t, path, inf_ok, found),
            DeValue::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    path.push(Key::Index(i));
                    walk(item.get_ref(), item.span().start, path, inf_ok, found);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    fn walk_table(
        t: &DeTable<'_>,
        path: &mut Vec<Key>,
        inf_ok: &dyn Fn(&[Key]) -> bool,
        found: &mut Option<NonFinite>,
    ) {
        for (k, v) in t.iter() {
            path.push(Key::Name(k.get_ref().as_ref().to_owned()));
            walk(v.get_ref(), v.span().start, path, inf_ok, found);
            path.pop();
        }
    }
    let doc = DeTable::parse(src).ok()?;
    let mut found = None;
    walk_table(doc.get_ref(), &mut Vec::new(), &inf_ok, &mut found);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, src.find("= 2").unwrap()), (2, 4));
    }

    #[test]
    fn finds_nested_keys_and_array_tables() {
        let src = "[train]\nepochs = 3\n\n[[attack]]\nid = \"a\"\n\n[[attack]]\nid = \"b\"\n";
        let o = offset_of(src, &["train".into(), "epochs".into()]).unwrap();
        assert_eq!(line_col(src, o), (2, 1));
        let o = offset_of(src, &["attack".into(), 1.into(), "id".into()]).unwrap();
        assert_eq!(line_col(src, o), (8, 1));
        assert_eq!(offset_of(src, &["nope".into()]), None);
        let o = offset_of(src, &["train".into(), "lr".into()]).unwrap();
        assert_eq!(line_col(src, o), (1, 2), "falls back to the table that exists");
    }

    #[test]
    fn only_words_too_long_to_read_are_cut() {
        assert_eq!(clip_words("unknown field `seed`"), "unknown field `seed`");
        let long = format!("unknown field `{}`, expected one of `a`", "k".repeat(10_000));
        let clipped = clip_words(&long);
        assert!(
            clipped.starts_with(&format!("unknown field `{}… (10003 characters) expected", "k".repeat(59))),
            "{clipped}"
        );
        assert!(clipped.ends_with(" expected one of `a`"), "{clipped}");
        let e = at(Path::new("p.toml"), "x", Some(0), &long);
        assert!(e.starts_with("p.toml:1:1: unknown field") && e.len() < 200, "{e}");
    }

    #[test]
    fn an_offset_inside_a_character_does_not_panic() {
        assert_eq!(line_col("é = 1", 1), (1, 1));
    }

    #[test]
    fn finds_the_first_non_finite_float_in_file_order() {
        let src = "[b]\nx = [1.0, nan]\n[a]\ny = inf\nz = -inf\n";
        let nf = non_finite(src, |_| false).unwrap();
        assert_eq!(dotted(&nf.path), "b.x[1]");
        assert_eq!((line_col(src, nf.offset), nf.text.as_str()), ((2, 11), "nan"));
        let nf = non_finite(src, |p| p.last() == Some(&Key::from("y"))).unwrap();
        assert_eq!(dotted(&nf.path), "b.x[1]");
        let nf = non_finite("[a]\ny = inf\nz = -inf\n", |p| p.last() == Some(&Key::from("y"))).unwrap();
        assert_eq!((dotted(&nf.path), nf.text.as_str()), ("a.z".to_owned(), "-inf"));
        assert_eq!(non_finite("a = 1.5\nb = { c = 2.0 }", |_| false), None);
        assert_eq!(
            dotted(&["data".into(), "columns".into(), "odd name".into()]),
            "data.columns.\"odd name\""
        );
    }
}
