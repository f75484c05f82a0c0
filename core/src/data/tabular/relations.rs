//! `[[data.relations]]`: a column that follows from others, `column = a·x + b·y + c`,
//! parsed from the pipeline and turned into feature indices for plugins and the judge.

use crate::error::Invalid;

use tempered_plugin::{FeatureKind, Relation};

use super::FeatureInfo;
use super::config::RelationConfig;

/// `expr` as `(column name, coefficient)` terms and a constant: `a - 2 * b + 3`, with
/// `` `odd name` `` for a name that is not a plain word.
fn parse(expr: &str) -> Result<(Vec<(String, f64)>, f64), String> {
    let mut terms: Vec<(String, f64)> = Vec::new();
    let mut constant = 0.0;
    let mut rest = expr.trim();
    let mut sign = 1.0;
    let mut first = true;
    while !rest.is_empty() {
        if !first || rest.starts_with(['+', '-']) {
            sign = match rest.chars().next() {
                Some('+') => 1.0,
                Some('-') => -1.0,
                _ => return Err(format!("expected + or - at `{rest}`")),
            };
            rest = rest[1..].trim_start();
        }
        first = false;
        // An optional number, then `*` and a name, or the number alone.
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E'))
            .unwrap_or(rest.len());
        let (mut coef, mut after) = (1.0, rest);
        if num_end > 0 && rest[..num_end].parse::<f64>().is_ok() {
            coef = rest[..num_end].parse::<f64>().expect("checked");
            after = rest[num_end..].trim_start();
            match after.strip_prefix('*') {
                Some(a) => after = a.trim_start(),
                None => {
                    constant += sign * coef;
                    rest = after;
                    continue;
                }
            }
        }
        let (name, tail) = if let Some(quoted) = after.strip_prefix('`') {
            let end = quoted.find('`').ok_or_else(|| format!("an unclosed ` in `{after}`"))?;
            (quoted[..end].to_owned(), &quoted[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':' || c == '.'))
                .unwrap_or(after.len());
            if end == 0 {
                return Err(format!("expected a column name at `{after}`"));
            }
            (after[..end].to_owned(), &after[end..])
        };
        terms.push((name, sign * coef));
        rest = tail.trim_start();
    }
    if terms.is_empty() {
        return Err("names no column".into());
    }
    Ok((terms, constant))
}

/// The relations of `configs` over `features`, by feature index. Every column named must
/// be a numeric feature; a derived column may not appear in any relation's terms.
pub(super) fn resolve(
    configs: &[RelationConfig],
    features: &[FeatureInfo],
) -> Result<Vec<Relation>, Invalid> {
    let index = |name: &str, at: &str| -> Result<usize, Invalid> {
        let j = features
            .iter()
            .position(|f| f.name == name)
            .ok_or_else(|| Invalid::new(format!("{at} names `{name}`, which is not a feature column")))?;
        match features[j].kind {
            FeatureKind::Continuous | FeatureKind::Integer => Ok(j),
            _ => Err(Invalid::new(format!("{at} names `{name}`, which is not a numeric column"))),
        }
    };
    let mut out: Vec<Relation> = Vec::with_capacity(configs.len());
    for (k, c) in configs.iter().enumerate() {
        let at = format!("[[data.relations]] #{} (`{} = {}`)", k + 1, c.column, c.equals);
        let column = index(&c.column, &at)?;
        let (terms, constant) = parse(&c.equals).map_err(|e| format!("{at}: `equals` {e}"))?;
        let mut resolved = Vec::with_capacity(terms.len());
        for (name, coef) in terms {
            let j = index(&name, &at)?;
            if j == column {
                return Err(format!("{at}: `{name}` cannot follow from itself").into());
            }
            resolved.push((j, coef));
        }
        if out.iter().any(|r| r.column == column) {
            return Err(format!("{at}: `{}` already follows from another relation", c.column).into());
        }
        out.push(Relation { column, terms: resolved, constant });
    }
    for r in &out {
        if let Some(&(j, _)) = r.terms.iter().find(|&&(j, _)| out.iter().any(|o| o.column == j)) {
            return Err(format!(
                "[[data.relations]]: `{}` follows from `{}`, which itself follows from others; write it from the free columns",
                features[r.column].name, features[j].name
            ).into());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_parse_into_terms_and_a_constant() {
        let t = |e: &str| parse(e).unwrap();
        assert_eq!(t("a - b"), (vec![("a".into(), 1.0), ("b".into(), -1.0)], 0.0));
        assert_eq!(t("0.5 * a + 2*b - 3"), (vec![("a".into(), 0.5), ("b".into(), 2.0)], -3.0));
        assert_eq!(t("-a + `odd name` + 1e2"), (vec![("a".into(), -1.0), ("odd name".into(), 1.0)], 100.0));
        assert!(parse("a b").is_err());
        assert!(parse("3").unwrap_err().contains("names no column"));
        assert!(parse("a + `b").unwrap_err().contains("unclosed"));
    }
}
