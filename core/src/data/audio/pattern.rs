//! File-name patterns (`"{label}_{speaker}_{index}.wav"`): literal text and `{field}`
//! placeholders, matched against each file name to read its label and fields.

use std::collections::BTreeMap;

use crate::error::Invalid;

/// A file-name pattern: literal text and `{field}` placeholders.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Field(String),
}

impl Pattern {
    pub fn parse(src: &str) -> std::result::Result<Self, Invalid> {
        let mut parts = Vec::new();
        let mut rest = src;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let end = after.find('}').ok_or_else(|| format!("pattern \"{src}\": `{{` without `}}`"))?;
                let name = &after[..end];
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!("pattern \"{src}\": bad field name `{{{name}}}`").into());
                }
                if matches!(parts.last(), Some(Part::Field(_))) {
                    return Err(format!("pattern \"{src}\": fields need literal text between them").into());
                }
                parts.push(Part::Field(name.to_owned()));
                rest = &after[end + 1..];
            } else {
                let end = rest.find('{').unwrap_or(rest.len());
                if rest[..end].contains('}') {
                    return Err(format!("pattern \"{src}\": `}}` without `{{`").into());
                }
                parts.push(Part::Lit(rest[..end].to_owned()));
                rest = &rest[end..];
            }
        }
        let pat = Self { parts };
        if !pat.has("label") {
            return Err(format!("pattern \"{src}\" has no `{{label}}` field").into());
        }
        Ok(pat)
    }

    pub(super) fn has(&self, field: &str) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Field(f) if f == field))
    }

    /// The fields of `name`, or `None` when it does not match. Each field takes the
    /// shortest text that lets the rest match.
    pub fn matches(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        self.match_from(0, name, &mut out).then_some(out)
    }

    fn match_from(&self, k: usize, s: &str, out: &mut BTreeMap<String, String>) -> bool {
        match self.parts.get(k) {
            None => s.is_empty(),
            Some(Part::Lit(l)) => s.strip_prefix(l.as_str()).is_some_and(|r| self.match_from(k + 1, r, out)),
            Some(Part::Field(f)) => {
                for (end, _) in s.char_indices().skip(1).chain(std::iter::once((s.len(), ' '))) {
                    if self.match_from(k + 1, &s[end..], out) {
                        out.insert(f.clone(), s[..end].to_owned());
                        return true;
                    }
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_reads_fsdd_names() {
        let p = Pattern::parse("{label}_{speaker}_{index}.wav").unwrap();
        let f = p.matches("7_jackson_32.wav").unwrap();
        assert_eq!((f["label"].as_str(), f["speaker"].as_str(), f["index"].as_str()), ("7", "jackson", "32"));
        // Fields take the shortest text that lets the rest match.
        let f = p.matches("3_yweweler_b_5.wav").unwrap();
        assert_eq!((f["speaker"].as_str(), f["index"].as_str()), ("yweweler", "b_5"));
        assert!(p.matches("7_jackson.wav").is_none());
        assert!(p.matches("7_jackson_32.wave").is_none());
        assert!(Pattern::parse("{speaker}_{index}.wav").is_err());
        assert!(Pattern::parse("{label}{index}.wav").is_err());
        assert!(Pattern::parse("{label.wav").is_err());
    }
}
