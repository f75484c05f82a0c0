//! The house rules of `docs/architecture.md`, checked on the sources: no circle between the
//! files of a crate, and no module of `tempered-core` reaching up to a module listed below
//! it in the architecture page's table (tests aside). `tempered-nn` cannot reach up into
//! `tempered-core` at all: that one the compiler checks.
//!
//! A file's dependencies are the modules its `crate::…` and `super::…` paths name (in `use`
//! lines and inline, grouped imports unfolded), each resolved to the longest module path
//! that is a file. A module using its own ancestors is not counted: Rust's parent/child
//! modules name each other by construction.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use tempered_tests::{repo, scratch};

type Module = Vec<String>;
type Graph = BTreeMap<Module, BTreeSet<Module>>;

/// The crates whose files are checked for circles.
const CRATES: &[&str] = &[
    "nn/src",
    "core/src",
    "plugins/api/src",
    "plugins/tabular/src",
    "plugins/text/src",
    "plugins/audio/src",
];

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rs_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `model/bert/mod.rs` → `[model, bert]`; `lib.rs` and `main.rs` are the root.
fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Module = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// The code of a file with comments and tests cut: lines from the first `#[cfg(test)]` on,
/// and whole files that only tests compile (`tests.rs`).
fn code(file: &Path) -> String {
    if file.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("#[cfg(test)]") || line.trim_start().starts_with("#[cfg(all(test") {
            break;
        }
        if !line.trim_start().starts_with("//") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Every path after `crate::` / `super::` in `text`, grouped imports unfolded, with `super`
/// resolved against `module`.
fn paths(text: &str, module: &Module) -> Vec<Module> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let word_start =
            i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b':');
        let base = if !word_start {
            None
        } else if bytes[i..].starts_with(b"crate::") {
            i += "crate::".len();
            Some(Vec::new())
        } else if bytes[i..].starts_with(b"super::") {
            let mut base = module.clone();
            while bytes[i..].starts_with(b"super::") {
                base.pop();
                i += "super::".len();
            }
            Some(base)
        } else {
            None
        };
        match base {
            Some(base) => i = unfold(text, i, base, &mut found),
            None => i += 1,
        }
    }
    found
}

/// Reads one path (or `{…}` group of paths) starting at `i` below `prefix`; returns where
/// it ends.
fn unfold(text: &str, mut i: usize, mut prefix: Module, found: &mut Vec<Module>) -> usize {
    let bytes = text.as_bytes();
    loop {
        if bytes.get(i) == Some(&b'{') {
            i += 1;
            loop {
                while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace() || *b == b',') {
                    i += 1;
                }
                if bytes.get(i).is_none_or(|b| *b == b'}') {
                    return i + 1;
                }
                i = unfold(text, i, prefix.clone(), found);
            }
        }
        let start = i;
        while bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_') {
            i += 1;
        }
        if i > start {
            prefix.push(text[start..i].to_owned());
        }
        if bytes[i..].starts_with(b"::") {
            i += 2;
        } else {
            found.push(prefix);
            // Skip an `as name` and anything else up to the end of this item.
            while bytes.get(i).is_some_and(|b| !matches!(b, b',' | b'}' | b';' | b'\n')) {
                i += 1;
            }
            return i;
        }
    }
}

/// The file-level dependency graph of the crate rooted at `src`.
fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rs_files(src, &mut files);
    // A binary's `main.rs` is a crate of its own, using the library by its name.
    files.retain(|f| f != &src.join("main.rs"));
    let modules: BTreeMap<Module, PathBuf> = files.iter().map(|f| (module_of(src, f), f.clone())).collect();
    let mut g = Graph::new();
    for (module, file) in &modules {
        let deps = g.entry(module.clone()).or_default();
        for path in paths(&code(file), module) {
            let Some(target) = (0..=path.len()).rev().map(|k| &path[..k]).find(|p| modules.contains_key(*p))
            else {
                continue;
            };
            let ancestor = target.len() <= module.len() && module[..target.len()] == *target;
            if !ancestor {
                deps.insert(target.to_vec());
            }
        }
    }
    g
}

/// The strongly connected components of more than one module (Tarjan).
fn circles(g: &Graph) -> Vec<Vec<Module>> {
    struct State<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        out: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        for w in s.g.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                s.low.entry(v).and_modify(|l| *l = (*l).min(lw));
            } else if s.stack.contains(&w) {
                let iw = s.index[w];
                s.low.entry(v).and_modify(|l| *l = (*l).min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                s.out.push(comp);
            }
        }
    }
    let mut s = State { g, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), out: Vec::new() };
    for v in g.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn shown(m: &Module) -> String {
    if m.is_empty() { "(root)".to_owned() } else { m.join("::") }
}

#[test]
fn no_circle_between_the_files_of_a_crate() {
    let mut found = Vec::new();
    for src in CRATES {
        for comp in circles(&graph(&repo().join(src))) {
            found.push(format!("{src}: {}", comp.iter().map(shown).collect::<Vec<_>>().join(" ⇄ ")));
        }
    }
    assert!(found.is_empty(), "files that depend on each other:\n{}", found.join("\n"));
}

/// The layers of `tempered-core` as `docs/architecture.md` lists them: one row of its
/// `core/src` module table per layer, the names in backticks in the row's first cell.
fn core_layers() -> Vec<Vec<String>> {
    let doc = std::fs::read_to_string(repo().join("docs/architecture.md")).unwrap();
    let mut rows = doc.lines().skip_while(|l| !l.starts_with("| module (`core/src`)")).skip(2);
    let mut layers = Vec::new();
    while let Some(row) = rows.next().filter(|r| r.starts_with('|')) {
        let cell = row.split('|').nth(1).unwrap();
        let names = cell.split('`').skip(1).step_by(2).map(|n| n.trim_end_matches('/').to_owned()).collect();
        layers.push(names);
    }
    layers
}

#[test]
fn no_core_module_reaches_up_a_layer_and_the_architecture_page_lists_them_all() {
    let layers = core_layers();
    let layer_of = |m: &str| layers.iter().position(|l| l.iter().any(|n| n == m));
    let g = graph(&repo().join("core/src"));
    let top: BTreeSet<&String> = g.keys().filter_map(|m| m.first()).collect();
    let unlisted: Vec<&&String> = top.iter().filter(|m| layer_of(m).is_none()).collect();
    assert!(unlisted.is_empty(), "core modules missing from docs/architecture.md: {unlisted:?}");
    let mut up = Vec::new();
    for (from, deps) in &g {
        let Some(f) = from.first() else { continue };
        for to in deps {
            let Some(t) = to.first() else { continue };
            if let (Some(lf), Some(lt)) = (layer_of(f), layer_of(t))
                && lt > lf
            {
                up.push(format!("{} → {}", shown(from), shown(to)));
            }
        }
    }
    assert!(up.is_empty(), "modules using a layer below them in docs/architecture.md:\n{}", up.join("\n"));
}

#[test]
fn the_checks_catch_a_circle_and_read_grouped_imports() {
    let src = scratch("layering");
    let write = |path: &str, text: &str| {
        let p = src.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n");
    write("a/mod.rs", "pub mod inner;\nuse crate::{c::X, b::{self, Y as Z}};\n");
    write("a/inner.rs", "use super::super::c;\n");
    write("b.rs", "// use crate::c;\nfn f() { crate::a::inner::g(); }\n#[cfg(test)]\nuse crate::c;\n");
    write("c.rs", "pub struct X;\n");
    let g = graph(&src);
    let m = |s: &str| s.split("::").map(str::to_owned).collect::<Module>();
    assert_eq!(g[&m("a")], BTreeSet::from([m("b"), m("c")]));
    assert_eq!(g[&m("a::inner")], BTreeSet::from([m("c")]));
    assert_eq!(g[&m("b")], BTreeSet::from([m("a::inner")]), "comments and tests are not dependencies");
    assert!(circles(&g).is_empty());
    write("c.rs", "use crate::a::inner;\n");
    let found = circles(&graph(&src));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].iter().collect::<BTreeSet<_>>(), BTreeSet::from([&m("a::inner"), &m("c")]));
}
