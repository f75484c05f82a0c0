//! The tests of the column keys and patterns, and what the tests of the `[data]` section
//! share: a config with the given column tables.

use super::{FeatureConfig, SplitConfig, TabularDataConfig, glob_match, is_pattern};

pub(super) fn cfg(columns: &[(&str, FeatureConfig)]) -> TabularDataConfig {
    TabularDataConfig {
        path: "t.csv".into(),
        label: "y".into(),
        classes: None,
        features: None,
        defaults: FeatureConfig::default(),
        columns: columns.iter().map(|(k, c)| (k.to_string(), c.clone())).collect(),
        split: SplitConfig::default(),
        limit: None,
        files: None,
        relations: Vec::new(),
        stream: None,
    }
}

#[test]
fn glob_patterns_match_like_a_shell() {
    assert!(glob_match("V*", "V1") && glob_match("V*", "V") && glob_match("V*", "V28"));
    assert!(!glob_match("V*", "Amount") && !glob_match("V?", "V12"));
    assert!(glob_match("V?", "V1") && glob_match("*_24h", "n_tx_last_24h"));
    assert!(glob_match("a*b*c", "aXXbYYc") && !glob_match("a*b*c", "aXXbYY"));
    assert!(glob_match("*", "") && glob_match("**", "x") && !glob_match("?", ""));
    assert!(is_pattern("V*") && is_pattern("a?") && !is_pattern("Amount"));
}
