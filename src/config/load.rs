//! Reading a config file: budgets, YAML syntax, `version`, then typed deserialization, each
//! failure turned into a [`ConfigError`] that points at the line and column and says what to do.
//!
//! The order matters: a syntax error is reported before anything else, and `version` is checked
//! before the typed pass so that a file written for another version gets "unsupported config
//! version" rather than a confusing unknown-key error.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_saphyr::MessageFormatter;

use super::diagnostic::{ConfigError, ErrorKind};
use super::model::{Config, SourceConfig, TargetConfig};
use super::tree::{NodeId, NodeKind, Seg, Style, Tree, TreeLimits};
use crate::model::secret::LITERAL_SECRET;

/// The config format versions this build reads.
pub const SUPPORTED_VERSIONS: &[u32] = &[1];

/// Largest config file accepted. Real configs are a few kilobytes; the cap keeps a hostile
/// file (the config can come from a pull request) from exhausting memory.
pub const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;

/// A config file read from disk, with what later steps need: where it is (relative paths resolve
/// against `base_dir`), its text (for positions) and its hash (plans record it).
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub path: PathBuf,
    /// The folder of the config file; relative paths in the config resolve against it.
    pub base_dir: PathBuf,
    /// The file's text (without a leading BOM).
    pub text: String,
    /// Hex SHA-256 of the file's bytes.
    pub sha256: String,
    pub config: Config,
}

/// Reads and parses the config file at `path`.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let name = path.display().to_string();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::new(
                ErrorKind::NotFound,
                &name,
                format!("config file `{name}` does not exist"),
            )
            .with_help(
                "run `headcount init` to write a commented starter `headcount.yaml`, or point `-c FILE` at your config",
            ));
        }
        Err(e) => {
            return Err(ConfigError::new(
                ErrorKind::Io,
                &name,
                format!("cannot read config file `{name}`: {e}"),
            ));
        }
    };
    if meta.is_dir() {
        return Err(ConfigError::new(
            ErrorKind::Io,
            &name,
            format!("`{name}` is a folder, not a config file"),
        )
        .with_help("point `-c` at the YAML file, e.g. `-c config/headcount.yaml`"));
    }
    let too_large = || {
        ConfigError::new(
            ErrorKind::Budget,
            &name,
            format!(
                "config file `{name}` is larger than {} MiB",
                MAX_CONFIG_BYTES / (1024 * 1024)
            ),
        )
        .with_help("a headcount config is normally a few kilobytes: is this the right file?")
    };
    if meta.len() > MAX_CONFIG_BYTES as u64 {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CONFIG_BYTES as u64 + 1).read_to_end(&mut bytes));
    if let Err(e) = read {
        return Err(ConfigError::new(
            ErrorKind::Io,
            &name,
            format!("cannot read config file `{name}`: {e}"),
        ));
    }
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(too_large());
    }
    let text = decode(&bytes, &name)?;
    let config = parse(&text, path)?;
    let base_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok(LoadedConfig {
        path: path.to_path_buf(),
        base_dir,
        sha256: crate::util::sha256_hex(&bytes),
        text,
        config,
    })
}

/// UTF-8 text without a BOM; otherwise an error naming the line, column and byte offset.
fn decode(bytes: &[u8], name: &str) -> Result<String, ConfigError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.strip_prefix('\u{feff}').unwrap_or(text).to_string()),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
            let column = String::from_utf8_lossy(&valid[line_start..])
                .chars()
                .count()
                + 1;
            Err(ConfigError::new(
                ErrorKind::Encoding,
                name,
                format!(
                    "the config is not UTF-8: invalid byte at line {line}, column {column} (byte offset {})",
                    e.valid_up_to()
                ),
            )
            .with_help("save the file as UTF-8"))
        }
    }
}

/// Parses config text. `path_for_messages` names the file in errors (for a config read from
/// git, e.g. `origin/main:headcount.yaml`).
pub fn parse(text: &str, path_for_messages: &Path) -> Result<Config, ConfigError> {
    let name = path_for_messages.display().to_string();
    if text.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::new(
            ErrorKind::Budget,
            &name,
            format!(
                "the config is larger than {} MiB",
                MAX_CONFIG_BYTES / (1024 * 1024)
            ),
        ));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Snippets are cut from a copy whose secret values are masked: a syntax error next to a
    // literal secret must not print it.
    let shared = Arc::new(super::diagnostic::mask_secret_values(text));
    let tree = Tree::parse(text, TreeLimits::default()).map_err(|e| {
        let (kind, help) = if e.budget {
            (
                ErrorKind::Budget,
                "a headcount config is small and shallow: check for runaway nesting or aliases",
            )
        } else {
            (
                ErrorKind::Syntax,
                "fix the YAML here: check the indentation (spaces, not tabs), quotes, brackets and the space after each `:`",
            )
        };
        let prefix = if e.budget { "" } else { "YAML syntax error: " };
        let help = match e.open_flow {
            Some((c, m)) => format!(
                "the `{c}` at line {}, column {} is not closed: close it with `{}` (or quote the value if the `{c}` is text)",
                m.line,
                m.col,
                if c == '[' { ']' } else { '}' }
            ),
            None => help.to_string(),
        };
        // The scanner reports a tab where the scalar before it began or ended, often on the
        // line above: point at the tab itself.
        if !e.budget
            && e.message.contains("tab")
            && let Some((line, col)) = first_tab_from(text, e.mark.line)
        {
            return ConfigError::new(
                kind,
                &name,
                format!(
                    "YAML syntax error: a tab character at line {line}, column {col}: YAML indents with spaces only"
                ),
            )
            .at(&shared, line, col, 1)
            .with_label("tab")
            .with_help("replace the tab with spaces");
        }
        ConfigError::new(kind, &name, format!("{prefix}{}", e.message))
            .at(&shared, e.mark.line, e.mark.col, 1)
            .with_help(help)
    })?;
    check_version(&tree, &shared, &name)?;
    serde_saphyr::from_str_with_options::<Config>(text, options())
        .map_err(|e| translate(&e, &tree, &shared, &name))
}

/// The line and column (1-based, in chars) of the first tab on `line` or after it. The scanner
/// may report a position just past the tab, or on the line above it.
fn first_tab_from(text: &str, line: u32) -> Option<(u32, u32)> {
    for (i, l) in text.split('\n').enumerate() {
        let n = u32::try_from(i + 1).ok()?;
        if n < line {
            continue;
        }
        if let Some(c) = l
            .chars()
            .enumerate()
            .find_map(|(c, ch)| (ch == '\t').then_some(c))
        {
            return Some((n, u32::try_from(c + 1).ok()?));
        }
    }
    None
}

/// Options for the typed pass. The tree pass has already bounded size, nodes, depth and alias
/// count (so serde-saphyr's own budget pre-pass, a second full parse, is skipped); what remains
/// is alias *expansion*, which only happens here (a "billion laughs" file), and is capped.
fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: None,
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 100_000,
            max_replay_stack_depth: 16,
            max_alias_expansions_per_anchor: 1_000,
        },
        with_snippet: false,
    }
}

fn supported() -> String {
    SUPPORTED_VERSIONS
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_version(tree: &Tree, text: &Arc<String>, name: &str) -> Result<(), ConfigError> {
    let reads = match SUPPORTED_VERSIONS {
        [one] => format!("this build reads version {one}"),
        _ => format!("this build reads versions {}", supported()),
    };
    let Some(root) = tree.root else {
        return Err(ConfigError::new(
            ErrorKind::Version,
            name,
            "the config is empty",
        )
        .with_help(
            "start with `version: 1`, then `sources`, `targets` and `syncs`; `headcount init` writes a commented starter",
        ));
    };
    let root_node = tree.node(tree.resolve(root));
    if !matches!(root_node.kind, NodeKind::Map(_)) {
        return Err(ConfigError::new(
            ErrorKind::Type,
            name,
            "the config must be a mapping with `version`, `sources`, `targets` and `syncs`",
        )
        .at(text, root_node.start.line, root_node.start.col, 1)
        .with_help("`headcount init` writes a commented starter"));
    }
    let Some((key, value)) = tree.entry(root, "version") else {
        return Err(ConfigError::new(
            ErrorKind::Version,
            name,
            format!("`version` is missing: {reads}"),
        )
        .at(text, root_node.start.line, root_node.start.col, 1)
        .with_help("add `version: 1` at the top of the file"));
    };
    let node = tree.node(value);
    let raw = tree.scalar(value).unwrap_or_default().trim();
    let len = span_len(tree, value);
    match raw.parse::<u64>() {
        Ok(v) if SUPPORTED_VERSIONS.iter().any(|s| u64::from(*s) == v) => Ok(()),
        Ok(v) => Err(ConfigError::new(
            ErrorKind::Version,
            name,
            format!("unsupported config version {v}: {reads}"),
        )
        .at(text, node.start.line, node.start.col, len)
        .with_label("unsupported version")
        .with_help(format!(
            "versions this build reads: {}; a newer file needs a newer headcount",
            supported()
        ))),
        Err(_) => {
            let (line, col) = if matches!(node.kind, NodeKind::Scalar { .. }) {
                (node.start.line, node.start.col)
            } else {
                let k = tree.node(key);
                (k.start.line, k.start.col)
            };
            Err(ConfigError::new(
                ErrorKind::Version,
                name,
                format!("`version` must be a whole number: {reads}"),
            )
            .at(text, line, col, len)
            .with_help("write `version: 1`"))
        }
    }
}

/// Characters of a node on its first line (what a caret can underline).
pub(crate) fn span_len(tree: &Tree, id: NodeId) -> u32 {
    let n = tree.node(id);
    if n.end.line == n.start.line && n.end.col > n.start.col {
        n.end.col - n.start.col
    } else {
        1
    }
}

/// The innermost error (serde-saphyr wraps errors for snippets and aliases).
fn innermost(mut e: &serde_saphyr::Error) -> &serde_saphyr::Error {
    for _ in 0..8 {
        match e {
            serde_saphyr::Error::WithSnippet { error, .. }
            | serde_saphyr::Error::AliasError { error, .. } => e = error,
            _ => return e,
        }
    }
    e
}

/// serde's own wording of `expected` lists, to compare with errors from re-running serde.
fn one_of(names: &[&str], none: &str) -> String {
    match names {
        [] => none.to_string(),
        [a] => format!("expected `{a}`"),
        [a, b] => format!("expected `{a}` or `{b}`"),
        _ => format!(
            "expected one of {}",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The error in serde's standard wording, as serde_json would print it.
fn serde_text(e: &serde_saphyr::Error) -> Option<String> {
    use serde_saphyr::Error as E;
    Some(match e {
        E::SerdeUnknownField {
            field, expected, ..
        } => format!(
            "unknown field `{field}`, {}",
            one_of(expected, "there are no fields")
        ),
        E::SerdeUnknownVariant {
            variant, expected, ..
        } => format!(
            "unknown variant `{variant}`, {}",
            one_of(expected, "there are no variants")
        ),
        E::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => format!("invalid type: {unexpected}, expected {expected}"),
        E::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => format!("invalid value: {unexpected}, expected {expected}"),
        E::SerdeInvalidLength { len, expected, .. } => {
            format!("invalid length {len}, expected {expected}")
        }
        E::Message { msg, .. } => msg.clone(),
        _ => return None,
    })
}

/// serde-saphyr cannot tell where inside an internally tagged enum (a source or target entry)
/// an error happened: it reports the entry. This re-runs serde on prefixes of the entry (its
/// `kind` always first) in document order; the node whose addition first produces the same
/// error is the culprit.
fn refine(tree: &Tree, section: &str, entry_name: &str, want: &str) -> Option<NodeId> {
    const MAX_STEPS: usize = 1_000;
    let entry = tree.at(&[
        Seg::Key(section.to_string()),
        Seg::Key(entry_name.to_string()),
    ])?;
    let entries = tree.entries(entry);
    let kind = entries
        .iter()
        .find(|(k, _)| tree.scalar(*k) == Some("kind"))
        .copied();
    let attempt = |n: usize| -> (Option<String>, Vec<NodeId>) {
        let mut map = serde_json::Map::new();
        let mut visited = Vec::new();
        if let Some((_, v)) = kind {
            let value = tree
                .to_json(v, &mut 1, &mut Vec::new(), 1)
                .unwrap_or(serde_json::Value::Null);
            map.insert("kind".to_string(), value);
        }
        let mut remaining = n;
        for (k, v) in entries {
            if Some(*k) == kind.map(|(k, _)| k) {
                continue;
            }
            if remaining == 0 {
                break;
            }
            remaining -= 1;
            visited.push(*k);
            let value = tree
                .to_json(*v, &mut remaining, &mut visited, 1)
                .unwrap_or(serde_json::Value::Null);
            map.insert(tree.scalar(*k).unwrap_or_default().to_string(), value);
        }
        let value = serde_json::Value::Object(map);
        let err = if section == "sources" {
            SourceConfig::deserialize(value)
                .err()
                .map(|e| e.to_string())
        } else {
            TargetConfig::deserialize(value)
                .err()
                .map(|e| e.to_string())
        };
        (err, visited)
    };
    // serde-saphyr and serde_json print floats differently (a number too large for an integer
    // is read as one), so floats are left out of the comparison.
    let want = loose_floats(want);
    let matches = |n: usize| attempt(n).0.is_some_and(|e| loose_floats(&e) == want);
    if matches(0) {
        return kind.map(|(_, v)| v);
    }
    let total = attempt(MAX_STEPS + 1).1.len();
    if total > MAX_STEPS || !matches(total) {
        return None;
    }
    // Once the culprit is in, every longer prefix fails on it too (serde stops at the first
    // error, in document order), so the first failing prefix can be found by bisection.
    let (mut lo, mut hi) = (1, total);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if matches(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    attempt(lo).1.last().copied()
}

/// `floating point `1e23`` → `floating point`, for comparing serde messages.
fn loose_floats(message: &str) -> String {
    match message.split_once("floating point `") {
        Some((head, rest)) => match rest.split_once('`') {
            Some((_, tail)) => format!("{head}floating point{tail}"),
            None => message.to_string(),
        },
        None => message.to_string(),
    }
}

/// The nearest candidate by edit distance, or else one that the word is a prefix of
/// (`max_rows` → `max_rows_per_file`).
pub(crate) fn suggest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str> + Clone,
{
    crate::util::nearest(word, candidates.clone()).or_else(|| {
        let w = word.to_lowercase();
        (w.len() >= 3)
            .then(|| {
                candidates
                    .into_iter()
                    .find(|c| c.to_lowercase().starts_with(&w))
            })
            .flatten()
    })
}

/// Describes where `path` points, for messages: "in sync `x`", "in `credentials` of source `y`".
pub(crate) fn describe(tree: &Tree, path: &[Seg]) -> String {
    fn dotted(rest: &[Seg]) -> String {
        let mut out = String::new();
        for seg in rest {
            match seg {
                Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
    fn within(rest: &[Seg], owner: String) -> String {
        if rest.is_empty() {
            format!("in {owner}")
        } else {
            format!("in `{}` of {owner}", dotted(rest))
        }
    }
    match path {
        [] => "at the top level".to_string(),
        [Seg::Key(s), Seg::Key(n), rest @ ..] if s == "sources" || s == "targets" => {
            let what = if s == "sources" { "source" } else { "target" };
            within(rest, format!("{what} `{n}`"))
        }
        [Seg::Key(s), Seg::Index(i), rest @ ..] if s == "syncs" => {
            within(rest, sync_label(tree, *i))
        }
        [Seg::Key(k), rest @ ..] => within(rest, format!("`{k}`")),
        [Seg::Index(_), ..] => "in the document".to_string(),
    }
}

/// `sync `name`` or `sync #3` when it has no usable name.
pub(crate) fn sync_label(tree: &Tree, index: usize) -> String {
    let name = tree
        .at(&[
            Seg::Key("syncs".into()),
            Seg::Index(index),
            Seg::Key("name".into()),
        ])
        .filter(|n| {
            matches!(&tree.node(*n).kind, NodeKind::Scalar { style, .. } if *style != Style::Plain)
                || !matches!(tree.scalar(*n), Some("" | "~" | "null" | "Null" | "NULL"))
        })
        .and_then(|n| tree.scalar(n))
        .filter(|n| !n.trim().is_empty());
    match name {
        Some(n) => format!("sync `{n}`"),
        None => format!("sync #{}", index + 1),
    }
}

/// serde's and serde-saphyr's names for what was expected, in the config's words.
fn friendly_expected(expected: &str) -> String {
    match expected {
        "internally tagged enum SourceConfig" => "a source: a mapping with `kind`".to_string(),
        "internally tagged enum TargetConfig" => "a target: a mapping with `kind`".to_string(),
        "mapping start" | "a map" => "a mapping".to_string(),
        "sequence start" | "a sequence" => "a list".to_string(),
        "string scalar" => "a string".to_string(),
        e if e.starts_with("struct ") => "a mapping".to_string(),
        e => e.to_string(),
    }
}

/// Turns a serde-saphyr error into a message that names the key, the place and a fix.
fn translate(
    err: &serde_saphyr::Error,
    tree: &Tree,
    text: &Arc<String>,
    name: &str,
) -> ConfigError {
    use serde_saphyr::Error as E;
    let inner = innermost(err);
    let (line, col) = err
        .location()
        .or_else(|| inner.location())
        .map_or((0, 0), |l| {
            (
                u32::try_from(l.line()).unwrap_or(0),
                u32::try_from(l.column()).unwrap_or(0),
            )
        });
    let mut path = if line > 0 {
        tree.locate(line, col)
    } else {
        Vec::new()
    };

    // The node the error is about: refined inside sources/targets, else what starts at the
    // reported position.
    let mut node: Option<NodeId> = None;
    if let [Seg::Key(section), Seg::Key(entry), ..] = path.as_slice()
        && (section == "sources" || section == "targets")
        && !matches!(inner, E::SerdeMissingField { .. })
        && let Some(want) = serde_text(inner)
        && let Some(found) = refine(tree, section, entry, &want)
    {
        let n = tree.node(found);
        path = tree.locate(n.start.line, n.start.col);
        node = Some(found);
    }
    if node.is_none() && line > 0 {
        node = tree
            .nodes
            .iter()
            .position(|n| n.start.line == line && n.start.col == col);
    }
    let (at_line, at_col, len) = match node {
        Some(id) => {
            let n = tree.node(id);
            (n.start.line, n.start.col, span_len(tree, id))
        }
        None => (line, col, 1),
    };

    // The key the error is about, and the mapping it sits in.
    let key = path.iter().rev().find_map(|s| match s {
        Seg::Key(k) => Some(k.clone()),
        Seg::Index(_) => None,
    });
    let owner: &[Seg] = match path.iter().rposition(|s| matches!(s, Seg::Key(_))) {
        Some(i) => &path[..i],
        None => &path[..],
    };
    let ctx = describe(tree, owner);
    let mut missing_at: Option<NodeId> = None;
    let key_ctx = match (path.as_slice(), &key) {
        ([Seg::Key(s), Seg::Key(n)], _) if s == "sources" || s == "targets" => {
            format!("{} `{n}`", &s[..s.len() - 1])
        }
        (_, Some(k)) => format!("`{k}` {ctx}"),
        (_, None) => ctx.clone(),
    };

    let mut out = match inner {
        E::SerdeUnknownField {
            field, expected, ..
        } => {
            // The reported position is the unknown key; its mapping is everything before it.
            let ctx = if key.as_deref() == Some(field.as_str()) {
                ctx.clone()
            } else {
                describe(tree, &path)
            };
            let mut msg = format!("unknown key `{field}` {ctx}");
            if let Some(n) = suggest(field, expected.iter().copied()) {
                msg.push_str(&format!("; did you mean `{n}`?"));
            }
            let help = if expected.is_empty() {
                "this mapping takes no keys".to_string()
            } else {
                format!("valid keys here: {}", expected.join(", "))
            };
            ConfigError::new(ErrorKind::UnknownKey, name, msg)
                .with_label("unknown key")
                .with_help(help)
        }
        E::SerdeMissingField { field, .. } => {
            // serde-saphyr reports a missing field at the last key of the mapping that lacks
            // it, or, inside a source or target, at the entry's name.
            let entry = matches!(path.as_slice(), [Seg::Key(s), Seg::Key(_)] if s == "sources" || s == "targets");
            let here = if entry {
                describe(tree, &path)
            } else {
                // Point at the start of the mapping rather than at its last key.
                if let Some(map) = tree.at(owner)
                    && let Some((first, _)) = tree.entries(map).first()
                {
                    missing_at = Some(*first);
                }
                ctx.clone()
            };
            let help = if *field == "kind" {
                let kinds = if path.first() == Some(&Seg::Key("targets".into())) {
                    crate::connectors::TargetKind::ALL
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                } else {
                    crate::connectors::SourceKind::ALL
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                format!("add `kind:` with one of: {kinds}")
            } else {
                format!("add `{field}:` there")
            };
            ConfigError::new(
                ErrorKind::MissingKey,
                name,
                format!("missing key `{field}` {here}"),
            )
            .with_label(format!("`{field}` missing"))
            .with_help(help)
        }
        E::SerdeUnknownVariant {
            variant, expected, ..
        } => {
            let mut msg = if key.as_deref() == Some("kind") {
                let what = if path.first() == Some(&Seg::Key("targets".into())) {
                    "target"
                } else {
                    "source"
                };
                format!("unknown {what} kind `{variant}` {ctx}")
            } else {
                format!("{key_ctx} cannot be `{variant}`")
            };
            if let Some(n) = suggest(variant, expected.iter().copied()) {
                msg.push_str(&format!("; did you mean `{n}`?"));
            }
            ConfigError::new(ErrorKind::Type, name, msg)
                .with_label("unknown value")
                .with_help(format!("valid values: {}", expected.join(", ")))
        }
        E::Unexpected { expected, .. } => {
            let expected = friendly_expected(expected);
            ConfigError::new(
                ErrorKind::Type,
                name,
                format!("{key_ctx} has the wrong type: expected {expected}"),
            )
            .with_label(format!("expected {expected}"))
        }
        // A whole number too large for its field reaches serde as a float: say so.
        E::SerdeInvalidType { expected, .. }
            if is_integer_type(expected)
                && node
                .and_then(|id| tree.scalar(id))
                .is_some_and(|t| {
                    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
                    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
                }) =>
        {
            let largest = match expected.as_str() {
                "u8" => u64::from(u8::MAX).to_string(),
                "u16" => u64::from(u16::MAX).to_string(),
                "u32" => u32::MAX.to_string(),
                "i32" => i32::MAX.to_string(),
                "i64" => i64::MAX.to_string(),
                _ => u64::MAX.to_string(),
            };
            ConfigError::new(
                ErrorKind::Type,
                name,
                format!("{key_ctx} is too large a number: the largest it takes is {largest}"),
            )
            .with_label("too large")
        }
        E::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => {
            let expected = friendly_expected(expected);
            ConfigError::new(
            ErrorKind::Type,
            name,
            format!("{key_ctx} has the wrong type: expected {expected}, found {unexpected}"),
        )
        .with_label(format!("expected {expected}"))
        }
        E::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => ConfigError::new(
            ErrorKind::Type,
            name,
            format!("{key_ctx} has an invalid value: {unexpected}, expected {expected}"),
        )
        .with_label(format!("expected {expected}")),
        E::SerdeInvalidLength { len, expected, .. } => ConfigError::new(
            ErrorKind::Type,
            name,
            format!("{key_ctx} has {len} items, expected {expected}"),
        ),
        E::InvalidScalar { ty, .. } => ConfigError::new(
            ErrorKind::Type,
            name,
            format!("{key_ctx} is not a valid {ty}"),
        )
        .with_label(format!("expected {ty}")),
        E::NullIntoString { .. } => ConfigError::new(
            ErrorKind::Type,
            name,
            format!("{key_ctx} is empty"),
        )
        .with_help("give it a value"),
        E::DuplicateMappingKey { key: dup, .. } => {
            let dup = dup.clone().or(key.clone()).unwrap_or_default();
            ConfigError::new(
                ErrorKind::Syntax,
                name,
                format!("duplicate key `{dup}` {ctx}"),
            )
            .with_label("second occurrence")
            .with_help("a key may appear once per mapping: remove one of them")
        }
        E::Message { msg, .. } if msg == LITERAL_SECRET => ConfigError::new(
            ErrorKind::Secret,
            name,
            format!("{key_ctx} is a literal secret: secrets may not be written in the config, which lives in git"),
        )
        .with_label("literal secret")
        .with_help(format!(
            "write `{k}: {{ env: VARIABLE }}` or `{k}: {{ file: PATH }}` and put the secret there",
            k = key.as_deref().unwrap_or("token")
        )),
        E::Message { msg, .. } if msg.contains("secret reference") => {
            ConfigError::new(ErrorKind::Secret, name, format!("{key_ctx}: {msg}"))
        }
        E::Message { msg, .. } => {
            ConfigError::new(ErrorKind::Type, name, format!("{key_ctx}: {msg}"))
        }
        E::Budget { .. }
        | E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. }
        | E::AliasReplayCounterOverflow { .. } => ConfigError::new(
            ErrorKind::Budget,
            name,
            format!(
                "the config exceeds an input limit: {}",
                serde_saphyr::UserMessageFormatter.format_message(inner)
            ),
        )
        .with_help(
            "a headcount config is small: check for alias (`*name`) chains that expand to huge values",
        ),
        other => {
            let msg = serde_saphyr::UserMessageFormatter.format_message(other);
            let msg: String = msg.chars().filter(|c| !c.is_control()).collect();
            let msg = if key.is_some() {
                format!("{key_ctx}: {msg}")
            } else {
                msg
            };
            ConfigError::new(ErrorKind::Type, name, msg)
        }
    };
    let (at_line, at_col, len) = match missing_at {
        Some(id) => {
            let n = tree.node(id);
            (n.start.line, n.start.col, span_len(tree, id))
        }
        None => (at_line, at_col, len),
    };
    if at_line > 0 {
        out = out.at(text, at_line, at_col, len);
        if out.kind() == ErrorKind::Secret
            && let Some(id) = node
        {
            let n = tree.node(id);
            out = out.redact(n.start.byte..n.end.byte.max(n.start.byte));
        }
    }
    out
}

/// Whether serde's `expected` names an integer type (a digits-only value that reaches it as
/// something else was too large), as opposed to a string field given a number (`timeout: 30`).
fn is_integer_type(expected: &str) -> bool {
    matches!(
        expected,
        "u8" | "u16"
            | "u32"
            | "u64"
            | "u128"
            | "usize"
            | "i8"
            | "i16"
            | "i32"
            | "i64"
            | "i128"
            | "isize"
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn err(text: &str) -> ConfigError {
        parse(text, Path::new("hc.yaml")).unwrap_err()
    }

    #[test]
    fn version_is_checked_before_the_typed_pass() {
        let e = err("version: 7\nnonsense: 1\n");
        assert_eq!(e.kind(), ErrorKind::Version);
        assert!(
            e.message()
                .contains("unsupported config version 7: this build reads version 1")
        );
        assert_eq!((e.line(), e.column()), (Some(1), Some(10)));
        let e = err("sources: {}\n");
        assert!(e.message().contains("`version` is missing"), "{e}");
        let e = err("version: one\n");
        assert!(e.message().contains("whole number"), "{e}");
        assert_eq!(err("").kind(), ErrorKind::Version);
        assert_eq!(err("- 1\n").kind(), ErrorKind::Type);
    }

    #[test]
    fn errors_inside_sources_point_at_the_key() {
        let text =
            "version: 1\nsources:\n  hr:\n    kind: csv\n    path: a.csv\n    delimitr: ';'\n";
        let e = err(text);
        assert_eq!(e.kind(), ErrorKind::UnknownKey);
        assert_eq!((e.line(), e.column()), (Some(6), Some(5)), "{e}");
        assert!(e.message().contains("did you mean `delimiter`"), "{e}");
        assert!(e.message().contains("in source `hr`"), "{e}");
    }

    #[test]
    fn kind_may_come_last() {
        let text =
            "version: 1\ntargets:\n  t:\n    dir: out\n    max_rows: 5\n    kind: csv_export\n";
        let e = err(text);
        assert_eq!((e.line(), e.column()), (Some(5), Some(5)), "{e}");
        assert!(
            e.message().contains("did you mean `max_rows_per_file`"),
            "{e}"
        );
    }
}
