//! Turning byte offsets and key paths of a pipeline file into `file:line:col`.

use std::path::Path;

use toml::de::{DeTable, DeValue};

/// 1-based line and column of byte `offset` in `src` (columns count characters).
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = src[line_start..offset].chars().count() + 1;
    (line, col)
}

/// `file:line:col: msg`, pointing at `offset` (or `file: msg` when unknown).
pub fn at(file: &Path, src: &str, offset: Option<usize>, msg: &str) -> String {
    match offset {
        Some(o) => {
            let (l, c) = line_col(src, o);
            format!("{}:{l}:{c}: {msg}", file.display())
        }
        None => format!("{}: {msg}", file.display()),
    }
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
}
