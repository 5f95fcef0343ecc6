//! Semantic checks of a loaded config, offline (CI runs `headcount validate` without
//! credentials): names resolve, fields exist for the target kind, identity keys can identify,
//! expressions compile, units parse. Every problem is collected, each pointing at its line and
//! column, and a config that passes becomes the [`SyncSpec`]s the planner runs.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use super::diagnostic::{ConfigError, ConfigErrors, ErrorKind};
use super::load::{LoadedConfig, span_len, suggest, sync_label};
use super::located::{Located, Pos};
use super::model::{Config, ExprText, ManagePolicy, RemovedPolicy};
use super::tree::{NodeId, NodeKind, Seg, Style, Tree, TreeLimits};
use super::units::parse_max_removals;
use crate::connectors::{TargetConfig, TargetKind};
use crate::expr::Expr;
use crate::model::SecretRef;
use crate::model::checks::{Checks, PathSeg};
use crate::planner::SyncSpec;

/// A config that passed validation: the syncs ready to plan, and warnings worth showing.
#[derive(Debug, Clone)]
pub struct Validated {
    pub syncs: Vec<SyncSpec>,
    /// `path:line:column: warning: message` lines (or `path: warning: message`).
    pub warnings: Vec<String>,
}

/// Checks everything that can be checked without network access. Secrets are not read (see
/// [`check_secrets`]).
pub fn validate(loaded: &LoadedConfig) -> Result<Validated, ConfigErrors> {
    let mut cx = Cx::new(loaded);
    let cfg = &loaded.config;

    cx.check_state(cfg);
    for (name, source) in &cfg.sources {
        cx.check_entry("sources", name, |c| source.check(c));
    }
    for (name, target) in &cfg.targets {
        cx.check_entry("targets", name, |c| target.check(c));
    }
    let syncs = cx.check_syncs(cfg);
    cx.check_usage(cfg);

    if cx.errors.is_empty() {
        Ok(Validated {
            syncs,
            warnings: cx.warnings,
        })
    } else {
        Err(ConfigErrors(cx.errors))
    }
}

/// Reads every secret the config references and lists the ones that cannot be read (missing
/// environment variable, unreadable or empty file), never their values. For `validate --online`
/// and the start of `plan`/`apply`.
pub fn check_secrets(cfg: &Config, base_dir: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |owner: String, field: &str, secret: &SecretRef| {
        if let Err(e) = secret.resolve(base_dir) {
            problems.push(format!("{owner}: `{field}` ({}): {e}", secret.describe()));
        }
    };
    for (name, source) in &cfg.sources {
        for (field, secret) in source.secrets() {
            check(format!("source `{name}`"), field, secret);
        }
    }
    for (name, target) in &cfg.targets {
        for (field, secret) in target.secrets() {
            check(format!("target `{name}`"), field, secret);
        }
    }
    if let Some(n) = &cfg.notifications {
        check("notifications".to_string(), "webhook.url", &n.webhook.url);
    }
    if let Some(url) = &cfg.state.url {
        check("state".to_string(), "url", url);
    }
    problems
}

/// A connector's checks of one `sources` or `targets` entry, placed in the file.
struct EntryChecks<'a> {
    cx: &'a mut Cx,
    section: &'static str,
    name: &'a str,
}

impl EntryChecks<'_> {
    fn path(&self, rel: &[PathSeg<'_>]) -> Vec<Seg> {
        let mut path = vec![key(self.section), key(self.name)];
        path.extend(rel.iter().map(|s| match s {
            PathSeg::Key(k) => key(k),
            PathSeg::Index(i) => Seg::Index(*i),
        }));
        path
    }
}

impl Checks for EntryChecks<'_> {
    fn owner(&self) -> String {
        let what = if self.section == "sources" {
            "source"
        } else {
            "target"
        };
        format!("{what} `{}`", self.name)
    }

    fn error(&mut self, path: &[PathSeg<'_>], message: String, help: Option<String>) {
        let node = self.cx.at(&self.path(path));
        self.cx.error(node, message, help);
    }

    fn secret_error(&mut self, path: &[PathSeg<'_>], message: String, help: Option<String>) {
        let node = self.cx.at(&self.path(path));
        self.cx.error(node, message, help);
        if let Some(id) = node
            && let Some(e) = self.cx.errors.pop()
        {
            let n = self.cx.tree.node(id);
            let e = e
                .with_kind(ErrorKind::Secret)
                .with_label("masked: may hold a secret")
                .redact(n.start.byte..n.end.byte.max(n.start.byte));
            self.cx.errors.push(e);
        }
    }

    fn error_at_key(&mut self, path: &[PathSeg<'_>], message: String, help: Option<String>) {
        let node = self.cx.key_at(&self.path(path));
        self.cx.error(node, message, help);
    }

    fn warn_at_key(&mut self, path: &[PathSeg<'_>], message: String) {
        let node = self.cx.key_at(&self.path(path));
        self.cx.warn(node, message);
    }
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

struct Cx {
    name: String,
    text: Arc<String>,
    tree: Tree,
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
}

impl Cx {
    fn new(loaded: &LoadedConfig) -> Self {
        let text = loaded.text.strip_prefix('\u{feff}').unwrap_or(&loaded.text);
        // The loader parsed this text already; positions are a help, so a failure here (the
        // config was built in code) only means errors without positions.
        let tree = Tree::parse(text, TreeLimits::default()).unwrap_or_default();
        Cx {
            name: loaded.path.display().to_string(),
            text: Arc::new(super::diagnostic::mask_secret_values(text)),
            tree,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// An error pointing at `node` (its first line).
    fn error(&mut self, node: Option<NodeId>, message: String, help: Option<String>) {
        let mut e = ConfigError::new(ErrorKind::Invalid, &self.name, message);
        if let Some(id) = node {
            let n = self.tree.node(id);
            e = e.at(
                &self.text,
                n.start.line,
                n.start.col,
                span_len(&self.tree, id),
            );
        }
        if let Some(h) = help {
            e = e.with_help(h);
        }
        self.errors.push(e);
    }

    /// An error pointing at a located value.
    fn error_at<T>(&mut self, value: &Located<T>, message: String, help: Option<String>) {
        let node = self.node_at(value.pos);
        if node.is_some() || !value.pos.is_known() {
            return self.error(node, message, help);
        }
        let mut e = ConfigError::new(ErrorKind::Invalid, &self.name, message).at(
            &self.text,
            value.pos.line,
            value.pos.column,
            1,
        );
        if let Some(h) = help {
            e = e.with_help(h);
        }
        self.errors.push(e);
    }

    fn warn(&mut self, node: Option<NodeId>, message: String) {
        let line = match node {
            Some(id) => {
                let n = self.tree.node(id);
                format!(
                    "{}:{}:{}: warning: {message}",
                    self.name, n.start.line, n.start.col
                )
            }
            None => format!("{}: warning: {message}", self.name),
        };
        self.warnings.push(line);
    }

    fn node_at(&self, pos: Pos) -> Option<NodeId> {
        if !pos.is_known() {
            return None;
        }
        self.tree
            .nodes
            .iter()
            .position(|n| n.start.line == pos.line && n.start.col == pos.column)
    }

    /// The value node at `path`.
    fn at(&self, path: &[Seg]) -> Option<NodeId> {
        self.tree.at(path)
    }

    /// The key node of the last segment of `path` (for "this key is wrong").
    fn key_at(&self, path: &[Seg]) -> Option<NodeId> {
        self.tree.key_at(path)
    }

    fn check_state(&mut self, cfg: &Config) {
        if cfg.state.path.trim().is_empty() {
            let node = self.at(&[key("state"), key("path")]);
            self.error(
                node,
                "`path` in `state` is empty".to_string(),
                Some("omit it for the default `.headcount/state.json`, or give a file path".into()),
            );
        }
        self.check_state_backend(cfg);
        if cfg.audit.path.trim().is_empty() {
            let node = self.at(&[key("audit"), key("path")]);
            self.error(
                node,
                "`path` in `audit` is empty".to_string(),
                Some(
                    "omit it for the default `.headcount/audit.jsonl`, or give a file path".into(),
                ),
            );
        }
    }

    /// `backend: postgres` needs `url`; `url`/`schema`/`table` mean nothing to a local state;
    /// schema and table names are plain SQL identifiers (they are put into SQL statements).
    fn check_state_backend(&mut self, cfg: &Config) {
        use super::model::StateBackendKind;
        let state = &cfg.state;
        match state.backend {
            StateBackendKind::Postgres => {
                if state.url.is_none() {
                    let node = self.at(&[key("state"), key("backend")]);
                    self.error(
                        node,
                        "`backend: postgres` in `state` needs `url`".to_string(),
                        Some("add `url: { env: HEADCOUNT_STATE_URL }` naming the variable that holds the connection URL (postgres://user:password@host/db)".into()),
                    );
                }
            }
            StateBackendKind::Local => {
                for (name, set) in [
                    ("url", state.url.is_some()),
                    ("schema", state.schema.is_some()),
                    ("table", state.table.is_some()),
                ] {
                    if set {
                        let node = self.at(&[key("state"), key(name)]);
                        self.error(
                            node,
                            format!("`{name}` in `state` only applies to `backend: postgres`"),
                            Some("add `backend: postgres`, or remove it to keep the state in a local file".into()),
                        );
                    }
                }
            }
        }
        for (name, value) in [("schema", &state.schema), ("table", &state.table)] {
            if let Some(v) = value
                && let Err(why) = crate::state::check_sql_identifier(v)
            {
                let node = self.at(&[key("state"), key(name)]);
                self.error(
                    node,
                    format!("`{name}` in `state` is not a usable name: {why}"),
                    Some(
                        "use lower-case letters, digits and `_`, starting with a letter or `_`"
                            .into(),
                    ),
                );
            }
        }
    }

    /// A source's or target's own checks, reported at its entry.
    fn check_entry(
        &mut self,
        section: &'static str,
        name: &str,
        check: impl FnOnce(&mut dyn Checks),
    ) {
        let mut entry = EntryChecks {
            cx: self,
            section,
            name,
        };
        check(&mut entry);
    }

    fn check_syncs(&mut self, cfg: &Config) -> Vec<SyncSpec> {
        if cfg.syncs.is_empty() {
            let node = self
                .key_at(&[key("syncs")])
                .or_else(|| self.key_at(&[key("version")]));
            self.error(
                node,
                "the config has no syncs: nothing would be planned".to_string(),
                Some("add one under `syncs:` with `name`, `from` (a source), `to` (a target), `identity` and `fields`; `headcount init` shows an example".to_string()),
            );
            return Vec::new();
        }
        let mut specs = Vec::new();
        let mut names: HashMap<String, Pos> = HashMap::new();
        for (i, sync) in cfg.syncs.iter().enumerate() {
            let before = self.errors.len();
            let label = sync_label(&self.tree, i);
            let label = if sync.name.trim().is_empty() {
                label
            } else {
                format!("sync `{}`", sync.name.value)
            };

            // Name: the state keys managed accounts by it.
            let name = sync.name.value.as_str();
            if name.trim().is_empty() {
                self.error_at(
                    &sync.name,
                    format!("{label} has an empty `name`"),
                    Some("give each sync a short unique name such as `support-staff`".into()),
                );
            } else if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            {
                self.error_at(
                    &sync.name,
                    format!("sync name `{name}` may only hold letters, digits, `_`, `.` and `-`"),
                    Some("the state and `--sync NAME` refer to syncs by this name".into()),
                );
            } else if let Some(first) = names.get(name) {
                let first = *first;
                self.error_at(
                    &sync.name,
                    format!(
                        "sync name `{name}` is used twice (first at line {})",
                        first.line
                    ),
                    Some(
                        "sync names must be unique: the state keeps managed accounts by name"
                            .into(),
                    ),
                );
            } else {
                names.insert(name.to_string(), sync.name.pos);
            }

            // from / to.
            if !cfg.sources.contains_key(sync.from.as_str()) {
                let msg = unknown_name("source", &sync.from, cfg.sources.keys(), &label, "from");
                self.error_at(&sync.from, msg.0, Some(msg.1));
            }
            let target = cfg.targets.get(sync.to.as_str());
            if target.is_none() {
                let msg = unknown_name("target", &sync.to, cfg.targets.keys(), &label, "to");
                self.error_at(&sync.to, msg.0, Some(msg.1));
            }

            let base = [key("syncs"), Seg::Index(i)];
            let table = target.map(TargetConfig::field_table);
            let kind = target.map(TargetConfig::kind);

            // fields.
            let mut fields = Vec::new();
            for (field, expr) in &sync.fields {
                if let (Some(kind), Some(table)) = (kind, &table)
                    && let Err(e) = table.lookup(field)
                {
                    let node = self.key_at(&[&base[..], &[key("fields"), key(field)]].concat());
                    self.error(
                        node,
                        format!("{label}: {e}"),
                        Some(format!(
                            "`headcount fields {kind}` lists the fields a {kind} target has"
                        )),
                    );
                }
                let compiled = match expr {
                    Some(e) => self.compile(e, &format!("`fields.{field}`"), &label),
                    None => None,
                };
                fields.push((field.clone(), compiled));
            }

            // identity.
            let mut identity = Vec::new();
            if sync.identity.is_empty() {
                let node = self.key_at(&[&base[..], &[key("identity")]].concat());
                self.error(
                    node,
                    format!("{label} has an empty `identity`"),
                    Some("list the target fields that match a person to an existing account, in precedence order, e.g. `identity: [email]`".into()),
                );
            }
            for id in &sync.identity {
                if identity.contains(&id.value) {
                    self.error_at(
                        id,
                        format!("{label}: `identity` lists `{}` twice", id.value),
                        None,
                    );
                    continue;
                }
                identity.push(id.value.clone());
                if let (Some(kind), Some(table)) = (kind, &table) {
                    match table.lookup(id) {
                        Err(e) => {
                            self.error_at(id, format!("{label}: `identity`: {e}"), None);
                            continue;
                        }
                        Ok(spec) if spec.identity.is_none() => {
                            self.error_at(
                                id,
                                format!(
                                    "{label}: `{}` cannot identify an account in {kind}",
                                    id.value
                                ),
                                Some(format!(
                                    "fields of {kind} usable as identity: {}",
                                    identity_fields(kind)
                                )),
                            );
                            continue;
                        }
                        Ok(_) => {}
                    }
                }
                match sync.fields.get(id.as_str()) {
                    None => self.error_at(
                        id,
                        format!(
                            "{label}: identity field `{}` is not mapped in `fields`",
                            id.value
                        ),
                        Some(format!(
                            "add `{}: <expression>` under `fields` so headcount knows each person's value",
                            id.value
                        )),
                    ),
                    Some(None) => {
                        let node = self.key_at(
                            &[&base[..], &[key("fields"), key(id.as_str())]].concat(),
                        );
                        self.error(
                            node,
                            format!(
                                "{label}: identity field `{}` is mapped to null",
                                id.value
                            ),
                            Some("an identity field needs a value to match accounts by".into()),
                        );
                    }
                    Some(Some(_)) => {}
                }
            }

            // Expressions.
            let where_ = sync
                .where_
                .as_ref()
                .and_then(|e| self.compile(e, "`where`", &label));
            let active = sync
                .active
                .as_ref()
                .and_then(|e| self.compile(e, "`active`", &label));

            // Limits.
            let max_removals = match parse_max_removals(&sync.limits.max_removals) {
                Ok(m) => Some(m),
                Err(e) => {
                    let node =
                        self.at(&[&base[..], &[key("limits"), key("max_removals")]].concat());
                    self.error(node, format!("{label}: {e}"), None);
                    None
                }
            };

            if sync.removed == RemovedPolicy::Delete
                && let Some(kind) = kind
                && let Some(why) = kind.no_delete()
            {
                let node = self.at(&[&base[..], &[key("removed")]].concat());
                self.error(
                    node,
                    format!("{label}: `removed: delete` is not possible on a {kind} target: {why}"),
                    Some("use `removed: deactivate` (or `keep`)".into()),
                );
            }

            if !sync.protect.is_empty() && sync.manage != ManagePolicy::All {
                let node = self.key_at(&[&base[..], &[key("protect")]].concat());
                self.warn(
                    node,
                    format!("{label}: `protect` only matters with `manage: all`; a sync that manages only the accounts it created or adopted never touches others"),
                );
            }

            if self.errors.len() == before
                && let (Some(table), Some(max_removals)) = (table, max_removals)
            {
                specs.push(SyncSpec {
                    name: sync.name.value.clone(),
                    source: sync.from.value.clone(),
                    target: sync.to.value.clone(),
                    target_fields: table,
                    where_,
                    identity,
                    fields,
                    active,
                    on_create: sync.on_create,
                    removed: sync.removed,
                    manage: sync.manage,
                    protect: sync.protect.clone(),
                    max_removals,
                });
            }
        }
        specs
    }

    /// Warnings about things that are legal but probably not meant.
    fn check_usage(&mut self, cfg: &Config) {
        for name in cfg.sources.keys() {
            if !cfg.syncs.iter().any(|s| s.from.value == *name) {
                let node = self.key_at(&[key("sources"), key(name)]);
                self.warn(node, format!("source `{name}` is not used by any sync"));
            }
        }
        let mut by_target: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, sync) in cfg.syncs.iter().enumerate() {
            by_target.entry(sync.to.as_str()).or_default().push(i);
        }
        for name in cfg.targets.keys() {
            if !by_target.contains_key(name.as_str()) {
                let node = self.key_at(&[key("targets"), key(name)]);
                self.warn(node, format!("target `{name}` is not used by any sync"));
            }
        }
        for (target, syncs) in by_target {
            if syncs.len() < 2 {
                continue;
            }
            for &i in &syncs {
                let sync = &cfg.syncs[i];
                if sync.manage != ManagePolicy::All {
                    continue;
                }
                let others: Vec<String> = syncs
                    .iter()
                    .filter(|&&j| j != i)
                    .map(|&j| format!("`{}`", cfg.syncs[j].name.value))
                    .collect();
                let node = self.at(&[key("syncs"), Seg::Index(i), key("manage")]);
                self.warn(
                    node,
                    format!(
                        "sync `{}` has `manage: all` on target `{target}`, which sync {} also writes to: it would treat their accounts as its own; accounts claimed by two syncs are a plan error",
                        sync.name.value,
                        others.join(", ")
                    ),
                );
            }
        }
    }

    /// Compiles an expression; a compile error points at the offending character.
    fn compile(&mut self, expr: &ExprText, what: &str, label: &str) -> Option<Expr> {
        if expr.value.trim().is_empty() {
            self.error_at(
                expr,
                format!("{what} of {label} is an empty expression"),
                Some("write a CEL expression, or remove the key (for a field, `null` leaves it unset)".into()),
            );
            return None;
        }
        match Expr::compile(&expr.value) {
            Ok(e) => Some(e),
            Err(ce) => {
                let node = self.node_at(expr.pos);
                let (line, col) = match (node, ce.offset) {
                    (Some(id), Some(off)) => expr_position(&self.tree, &self.text, id, off),
                    (Some(id), None) => {
                        let n = self.tree.node(id);
                        (n.start.line, n.start.col)
                    }
                    (None, off) => (
                        expr.pos.line,
                        expr.pos
                            .column
                            .saturating_add(u32::try_from(off.unwrap_or(0)).unwrap_or(0)),
                    ),
                };
                let mut e = ConfigError::new(
                    ErrorKind::Invalid,
                    &self.name,
                    format!("{what} of {label} does not compile: {}", ce.message),
                )
                .with_help("expressions are CEL over `user` (the source record) and `source` (its name); quote the whole YAML value when it holds `:` or starts with `!`, `'` or `\"`");
                if expr.pos.is_known() {
                    e = e.at(&self.text, line, col, 1).with_label("here");
                }
                self.errors.push(e);
                None
            }
        }
    }
}

fn identity_fields(kind: TargetKind) -> String {
    kind.fields()
        .iter()
        .filter(|f| f.identity.is_some())
        .map(|f| f.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Message and help for a `from`/`to` naming nothing.
fn unknown_name<'a>(
    what: &str,
    value: &Located<String>,
    known: impl Iterator<Item = &'a String> + Clone,
    label: &str,
    field: &str,
) -> (String, String) {
    let mut msg = format!(
        "{label}: `{field}` names {what} `{}`, which is not defined",
        value.value
    );
    if let Some(n) = suggest(&value.value, known.clone().map(String::as_str)) {
        msg.push_str(&format!("; did you mean `{n}`?"));
    }
    let list: Vec<&str> = known.map(String::as_str).collect();
    let help = if list.is_empty() {
        format!("define it under `{what}s:`")
    } else {
        format!("{what}s defined: {}", list.join(", "))
    };
    (msg, help)
}

/// Where the character at `offset` (in chars) of a scalar's value is in the file. Exact for
/// plain and quoted scalars (quotes, `''` and `\` escapes, line folding); line by line for block
/// scalars (`|`, `>`), which is exact for `|` and close for `>`.
fn expr_position(tree: &Tree, text: &str, id: NodeId, offset: usize) -> (u32, u32) {
    let node = tree.node(id);
    let NodeKind::Scalar { style, value, .. } = &node.kind else {
        return (node.start.line, node.start.col);
    };
    let raw = text.get(node.start.byte..node.end.byte).unwrap_or_default();
    let mut chars = Vec::new();
    let (mut line, mut col) = (node.start.line, node.start.col);
    for c in raw.chars() {
        chars.push((c, line, col));
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    let positions = match style {
        Style::Literal | Style::Folded => block_positions(&chars, node.start.col - 1),
        _ => flow_positions(&chars, *style),
    };
    match positions.get(offset) {
        Some(p) => *p,
        // Past the end ("unexpected end of expression"): just after the last character, or at
        // the end of the last line when the value ends with a line break (block scalars).
        None => match positions.last() {
            Some((l, c)) if value.ends_with('\n') => (*l, *c),
            Some((l, c)) => (*l, c + 1),
            None => (node.start.line, node.start.col),
        },
    }
}

/// Value-char positions of a plain or quoted scalar.
fn flow_positions(chars: &[(char, u32, u32)], style: Style) -> Vec<(u32, u32)> {
    let quoted = matches!(style, Style::SingleQuoted | Style::DoubleQuoted);
    let mut i = usize::from(quoted);
    let end = if quoted && chars.len() > 1 {
        chars.len() - 1
    } else {
        chars.len()
    };
    let pos = |k: usize| (chars[k].1, chars[k].2);
    let mut out = Vec::new();
    while i < end {
        let c = chars[i].0;
        if matches!(c, ' ' | '\t' | '\n' | '\r') {
            let mut j = i;
            let mut breaks = 0;
            while j < end && matches!(chars[j].0, ' ' | '\t' | '\n' | '\r') {
                breaks += usize::from(chars[j].0 == '\n');
                j += 1;
            }
            if breaks == 0 {
                out.extend((i..j).map(pos));
            } else {
                // Folding: one break is a space, n breaks are n-1 newlines.
                let n = if breaks == 1 { 1 } else { breaks - 1 };
                out.extend(std::iter::repeat_n(pos(i), n));
            }
            i = j;
            continue;
        }
        if style == Style::SingleQuoted && c == '\'' && chars.get(i + 1).map(|c| c.0) == Some('\'')
        {
            out.push(pos(i));
            i += 2;
            continue;
        }
        if style == Style::DoubleQuoted && c == '\\' {
            let next = chars.get(i + 1).map(|c| c.0);
            match next {
                Some('\n') | Some('\r') => {
                    // An escaped line break: no character, and the next line's indent is skipped.
                    i += 2;
                    while i < end && matches!(chars[i].0, ' ' | '\t' | '\n' | '\r') {
                        i += 1;
                    }
                }
                Some('x') => {
                    out.push(pos(i));
                    i += 4;
                }
                Some('u') => {
                    out.push(pos(i));
                    i += 6;
                }
                Some('U') => {
                    out.push(pos(i));
                    i += 10;
                }
                _ => {
                    out.push(pos(i));
                    i += 2;
                }
            }
            continue;
        }
        out.push(pos(i));
        i += 1;
    }
    out
}

/// Value-char positions of a block scalar whose content starts at `chars[0]` with `indent`
/// columns of indentation.
fn block_positions(chars: &[(char, u32, u32)], indent: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut at_line_start = false;
    let mut skipped = 0;
    for &(c, line, col) in chars {
        if c == '\n' {
            out.push((line, col));
            at_line_start = true;
            skipped = 0;
            continue;
        }
        if c == '\r' {
            continue;
        }
        if at_line_start && c == ' ' && skipped < indent {
            skipped += 1;
            continue;
        }
        at_line_start = false;
        out.push((line, col));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn position_of(yaml: &str, offset: usize) -> (u32, u32) {
        let tree = Tree::parse(yaml, TreeLimits::default()).unwrap();
        let root = tree.root.unwrap();
        let (_, v) = tree.entry(root, "e").unwrap();
        expr_position(&tree, yaml, v, offset)
    }

    #[test]
    fn offsets_map_to_file_positions() {
        // plain: `e: ab == c`, offset 3 is the first `=` at column 7.
        assert_eq!(position_of("e: ab == c\n", 3), (1, 7));
        // single quotes: the opening quote shifts by one; `''` is one character.
        assert_eq!(position_of("e: 'ab == c'\n", 3), (1, 8));
        assert_eq!(position_of("e: 'it''s x'\n", 5), (1, 11));
        // double quotes with an escape.
        assert_eq!(position_of("e: \"a\\\"b c\"\n", 4), (1, 10));
        // past the end: just after the last character.
        assert_eq!(position_of("e: 'ab =='\n", 99), (1, 10));
        // literal block; past the end is the end of the last line.
        assert_eq!(position_of("e: |\n  ab &&\n  cd ==\n", 9), (3, 6));
        assert_eq!(position_of("e: |\n  ab &&\n  cd ==\n", 12), (3, 8));
        // folded plain scalar over two lines.
        assert_eq!(position_of("e: ab &&\n  cd\n", 6), (2, 3));
    }

    #[test]
    fn audit_path_defaults_and_must_not_be_empty() {
        let check = |text: &str| {
            let path = std::path::PathBuf::from("headcount.yaml");
            let config = crate::config::parse(text, &path).unwrap();
            let loaded = crate::config::LoadedConfig {
                path,
                base_dir: std::path::PathBuf::from("."),
                sha256: String::new(),
                text: text.to_string(),
                config,
            };
            let errs = validate(&loaded).err().map(|e| e.render(false));
            (loaded.config.audit.path.clone(), errs.unwrap_or_default())
        };
        let (path, errs) = check("version: 1\n");
        assert_eq!(path, ".headcount/audit.jsonl");
        assert!(!errs.contains("audit"), "{errs}");
        let (path, errs) = check("version: 1\naudit:\n  path: logs/audit.jsonl\n");
        assert_eq!(path, "logs/audit.jsonl");
        assert!(!errs.contains("audit"), "{errs}");
        let (_, text) = check("version: 1\naudit:\n  path: \"\"\n");
        assert!(text.contains("`path` in `audit` is empty"), "{text}");
        assert!(text.contains(":3:"), "placed on its line: {text}");
    }
}
