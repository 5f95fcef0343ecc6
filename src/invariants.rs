//! The layering rules of ARCHITECTURE.md, checked on the source text: a forbidden import or an
//! import cycle between top-level modules fails the build's tests, not a later review.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules and the crate paths each imports, from non-test code only.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&src) {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if matches!(
            module.as_str(),
            "main" | "cli" | "lib" | "invariants" | "testkit"
        ) {
            continue;
        }
        let name = file.file_name().unwrap().to_string_lossy();
        if name == "tests.rs" || name == "testing.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let paths = out.entry(module).or_default();
        for path in crate_paths(without_test_module(&text)) {
            paths.insert(path);
        }
    }
    out
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The text before a file's `#[cfg(test)] mod ... {` (test modules come last by convention).
fn without_test_module(text: &str) -> &str {
    let mut from = 0;
    while let Some(i) = text[from..].find("#[cfg(test)]") {
        let at = from + i;
        let rest = text[at + "#[cfg(test)]".len()..].trim_start();
        let rest = skip_attributes(rest);
        if rest.starts_with("mod ")
            || rest.starts_with("pub mod ")
            || rest.starts_with("pub(crate) mod ")
        {
            return &text[..at];
        }
        from = at + 1;
    }
    text
}

fn skip_attributes(mut rest: &str) -> &str {
    while rest.starts_with("#[") {
        match rest.find(']') {
            Some(end) => rest = rest[end + 1..].trim_start(),
            None => break,
        }
    }
    rest
}

/// Every `crate::a::b` path, with `crate::{a::b, c}` groups expanded (first two segments).
fn crate_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            for item in split_top_level(&group[..end]) {
                out.push(two_segments(item.trim()));
            }
        } else {
            out.push(two_segments(rest));
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

fn matching_brace(s: &str) -> usize {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

fn split_top_level(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// `a::b` of `a::b::c...` (or `a`, or `a::{...}` as `a::*`).
fn two_segments(s: &str) -> String {
    let ident = |s: &str| -> usize {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len())
    };
    let n = ident(s);
    let first = &s[..n];
    let after = &s[n..];
    match after.strip_prefix("::") {
        Some(more) if more.starts_with('{') => format!("{first}::*"),
        Some(more) => format!("{first}::{}", &more[..ident(more)]),
        None => first.to_string(),
    }
}

fn top(path: &str) -> &str {
    path.split("::").next().unwrap_or(path)
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let graph: BTreeMap<String, BTreeSet<String>> = imports()
        .into_iter()
        .map(|(m, paths)| {
            let deps = paths
                .iter()
                .map(|p| top(p).to_string())
                .filter(|d| d != &m)
                .collect();
            (m, deps)
        })
        .collect();
    // Depth-first search for a back edge.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = stack.iter().position(|s| s == m) {
            panic!(
                "import cycle between top-level modules: {} -> {m}",
                stack[i..].join(" -> ")
            );
        }
        stack.push(m.to_string());
        for d in graph.get(m).into_iter().flatten() {
            visit(d, graph, stack, done);
        }
        stack.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
    assert!(graph.contains_key("planner") && graph.contains_key("connectors"));
}

/// `module` may import none of `forbidden` (a top-level module, or `module::item`).
fn assert_forbids(module: &str, forbidden: &[&str], why: &str) {
    let all = imports();
    let paths = all
        .get(module)
        .unwrap_or_else(|| panic!("no module {module}"));
    let bad: Vec<&String> = paths
        .iter()
        .filter(|p| {
            forbidden.iter().any(|f| {
                if f.contains("::") {
                    p.as_str() == *f
                } else {
                    top(p) == *f
                }
            })
        })
        .collect();
    assert!(bad.is_empty(), "{module} imports {bad:?}: {why}");
}

#[test]
fn the_planner_is_pure() {
    assert_forbids(
        "planner",
        &[
            "http",
            "connectors",
            "engine",
            "apply",
            "audit",
            "session",
            "config",
            "state::store",
            "state::lock",
            "state::journal",
            "state::StateStore",
            "state::backend",
        ],
        "the planner takes records, live accounts and state as values and does no I/O",
    );
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/planner");
    for file in rust_files(&src) {
        if file.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = without_test_module(&text);
        for word in [
            "tokio",
            "reqwest",
            "std::fs",
            "std::net",
            "std::env",
            "SystemTime",
            "Instant::now",
        ] {
            assert!(
                !code.contains(word),
                "{} uses {word}: the planner does no I/O and reads no clock",
                file.display()
            );
        }
    }
}

#[test]
fn connectors_know_nothing_of_plans_or_state() {
    assert_forbids(
        "connectors",
        &[
            "planner",
            "plan",
            "state",
            "engine",
            "apply",
            "audit",
            "session",
            "config",
            "render",
            "reconcile",
        ],
        "connectors read and write accounts; plans and state are the engine's business",
    );
}

#[test]
fn the_http_layer_reads_no_config_and_knows_no_connector() {
    assert_forbids(
        "http",
        &[
            "config",
            "connectors",
            "planner",
            "plan",
            "state",
            "engine",
            "apply",
            "reconcile",
        ],
        "the HTTP layer takes typed settings and serves every connector alike",
    );
}

#[test]
fn the_model_is_a_leaf() {
    let all = imports();
    let bad: Vec<&String> = all["model"].iter().filter(|p| top(p) != "util").collect();
    assert!(
        bad.is_empty(),
        "model imports {bad:?}: it is the shared vocabulary, a leaf"
    );
}

#[test]
fn the_scanner_sees_grouped_and_nested_imports() {
    let paths = crate_paths(
        "use crate::{http::X, state::{store::S, Y}};\nfn f() { crate::planner::plan(); }",
    );
    assert_eq!(paths, ["http::X", "state::*", "planner::plan"]);
    let text = "use crate::a::b;\n#[cfg(test)]\n#[allow(x)]\nmod tests { use crate::c::d; }";
    assert_eq!(crate_paths(without_test_module(text)), ["a::b"]);
    let field = "struct S {\n #[cfg(test)]\n f: u8 }\nuse crate::e::f;";
    assert_eq!(crate_paths(without_test_module(field)), ["e::f"]);
}
