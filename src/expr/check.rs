//! Compile-time checks on the parsed expression. The CEL crate has no type checker, so without
//! these a typo (`usr.email`, `user.email.lowercase()`) would only surface as an error on every
//! record at plan time, instead of as a validation error pointing at the config.
//!
//! Also here: the analysis of which top-level keys of `user` an expression reads, so that
//! evaluation converts only those from JSON, and the rewrite of `matches` to its cached form.

use std::collections::BTreeSet;

use cel::IdedExpr;
use cel::common::ast::{EntryExpr, Expr as Node, LiteralValue, SourceInfo};

use super::CompileError;
use super::library::{CACHED_MATCHES, FUNCTIONS, MACROS, Style, TYPE_NAMES, compile_regex};
use crate::util::nearest;

/// The variables every expression sees.
pub(super) const VARIABLES: &[&str] = &["user", "source"];

/// How deeply an expression may nest. The interpreter recurses once per level, with large
/// frames in debug builds (about 35 KiB), and a stack overflow aborts the process rather than
/// failing one record: 32 levels stay well inside a 2 MiB thread stack. Real expressions nest
/// less than 15 levels.
pub(super) const MAX_DEPTH: usize = 32;

/// Whether `expr` nests at most `MAX_DEPTH` levels. Stops descending past the limit, so it is
/// safe on any tree the parser returns.
pub(super) fn depth_within_limit(expr: &IdedExpr) -> bool {
    depth_within(expr, MAX_DEPTH)
}

/// Whether `expr` nests at most `max` levels.
pub(super) fn depth_within(expr: &IdedExpr, max: usize) -> bool {
    fn within(expr: &IdedExpr, depth: usize, max: usize) -> bool {
        if depth > max {
            return false;
        }
        children(expr).iter().all(|c| within(c, depth + 1, max))
    }
    within(expr, 1, max)
}

/// The direct sub-expressions of `expr`.
fn children(expr: &IdedExpr) -> Vec<&IdedExpr> {
    match &expr.expr {
        Node::Unspecified | Node::Ident(_) | Node::Literal(_) => Vec::new(),
        Node::Call(call) => call
            .target
            .as_deref()
            .into_iter()
            .chain(&call.args)
            .collect(),
        Node::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Node::List(list) => list.elements.iter().collect(),
        Node::Map(map) => map
            .entries
            .iter()
            .flat_map(|e| entry_children(&e.expr))
            .collect(),
        Node::Struct(s) => s
            .entries
            .iter()
            .flat_map(|e| entry_children(&e.expr))
            .collect(),
        Node::Select(select) => vec![&select.operand],
    }
}

fn entry_children(entry: &EntryExpr) -> Vec<&IdedExpr> {
    match entry {
        EntryExpr::StructField(f) => vec![&f.value],
        EntryExpr::MapEntry(e) => vec![&e.key, &e.value],
    }
}

/// Whether `name` is an operator (`_+_`, `@in`, `!_`, ...) rather than a function someone
/// wrote: those are never identifiers.
fn is_operator(name: &str) -> bool {
    name.starts_with('@')
        || name
            .chars()
            .any(|c| !(c.is_alphanumeric() || c == '_' || c == '.'))
}

/// The qualified name `expr` spells (`a.b.c`), if it is only identifiers and field selections.
fn qualified_name(expr: &IdedExpr) -> Option<String> {
    match &expr.expr {
        Node::Ident(name) => Some(name.clone()),
        Node::Select(select) if !select.test => {
            qualified_name(&select.operand).map(|base| format!("{base}.{}", select.field))
        }
        _ => None,
    }
}

/// Converts byte offsets of the source into char offsets, as [`CompileError::offset`] wants.
pub(super) struct Positions<'a> {
    pub(super) source: &'a str,
    pub(super) info: &'a SourceInfo,
}

impl Positions<'_> {
    /// The char offset where node `id` starts.
    fn of(&self, id: u64) -> Option<usize> {
        let (start, _) = self.info.offset_for(id)?;
        byte_to_char(self.source, usize::try_from(start).ok()?)
    }

    /// The char offset of the name of the function called by node `id`: the parser places a
    /// call at its `(`, so step back over the name when the source has it just before.
    fn of_call(&self, id: u64, name: &str) -> Option<usize> {
        let (start, _) = self.info.offset_for(id)?;
        let start = usize::try_from(start).ok()?;
        let named = start
            .checked_sub(name.len())
            .filter(|&s| self.source.get(s..start) == Some(name));
        byte_to_char(self.source, named.unwrap_or(start))
    }
}

/// The char offset of byte offset `byte` in `source`, if it falls on a char boundary.
pub(super) fn byte_to_char(source: &str, byte: usize) -> Option<usize> {
    source.get(..byte).map(|prefix| prefix.chars().count())
}

fn error(message: String, offset: Option<usize>) -> CompileError {
    CompileError { message, offset }
}

/// Rejects unknown variables and functions, misused macros, struct literals, and literal
/// regular expressions that do not compile. Reports the first problem, in source order of
/// the walk.
pub(super) fn validate(expr: &IdedExpr, pos: &Positions<'_>) -> Result<(), CompileError> {
    let mut scope: Vec<&str> = Vec::new();
    walk(expr, pos, &mut scope)
}

fn walk<'e>(
    expr: &'e IdedExpr,
    pos: &Positions<'_>,
    scope: &mut Vec<&'e str>,
) -> Result<(), CompileError> {
    match &expr.expr {
        Node::Ident(name) => check_ident(name, expr.id, pos, scope),
        Node::Call(call) => {
            if is_operator(&call.func_name) {
                return walk_all(
                    call.target.as_deref().into_iter().chain(&call.args),
                    pos,
                    scope,
                );
            }
            // `optional.of(x)` parses as a call of `of` on `optional`: a namespaced function.
            if let Some(target) = call.target.as_deref()
                && let Some(namespace) = qualified_name(target)
                && !scope.contains(&namespace.split('.').next().unwrap_or_default())
            {
                let full = format!("{namespace}.{}", call.func_name);
                if FUNCTIONS.iter().any(|(name, _)| *name == full) {
                    return walk_all(call.args.iter(), pos, scope);
                }
            }
            check_call(&call.func_name, call.target.is_some(), expr.id, pos)?;
            if call.func_name == "matches" {
                check_literal_pattern(call.target.as_deref(), &call.args, pos)?;
            }
            walk_all(
                call.target.as_deref().into_iter().chain(&call.args),
                pos,
                scope,
            )
        }
        Node::Comprehension(c) => {
            walk(&c.iter_range, pos, scope)?;
            walk(&c.accu_init, pos, scope)?;
            let outer = scope.len();
            scope.push(&c.iter_var);
            if let Some(var) = &c.iter_var2 {
                scope.push(var);
            }
            scope.push(&c.accu_var);
            let inner = walk_all(
                [&c.loop_cond, &c.loop_step, &c.result].into_iter(),
                pos,
                scope,
            );
            scope.truncate(outer);
            inner
        }
        Node::Struct(s) => Err(error(
            format!(
                "`{}{{...}}` builds a message, which expressions cannot do; use a map literal \
                 such as {{\"key\": value}}",
                s.type_name
            ),
            pos.of(expr.id),
        )),
        _ => walk_all(children(expr).into_iter(), pos, scope),
    }
}

fn walk_all<'e>(
    exprs: impl Iterator<Item = &'e IdedExpr>,
    pos: &Positions<'_>,
    scope: &mut Vec<&'e str>,
) -> Result<(), CompileError> {
    for e in exprs {
        walk(e, pos, scope)?;
    }
    Ok(())
}

fn check_ident(
    name: &str,
    id: u64,
    pos: &Positions<'_>,
    scope: &[&str],
) -> Result<(), CompileError> {
    // A leading dot only says "not relative to a container"; the parser's own variables
    // (`@result`) start with `@`.
    let bare = name.strip_prefix('.').unwrap_or(name);
    if bare.starts_with('@')
        || scope.contains(&bare)
        || VARIABLES.contains(&bare)
        || TYPE_NAMES.contains(&bare)
    {
        return Ok(());
    }
    let hint = match nearest(bare, VARIABLES.iter().copied()) {
        Some(var) => format!("did you mean `{var}`?"),
        None => format!("did you mean `user.{bare}`?"),
    };
    Err(error(
        format!(
            "unknown variable `{bare}`: expressions see `user` (the record) and `source` (its name); {hint}"
        ),
        pos.of(id),
    ))
}

fn check_call(name: &str, method: bool, id: u64, pos: &Positions<'_>) -> Result<(), CompileError> {
    let at = pos.of_call(id, name);
    if let Some((_, usage)) = MACROS.iter().find(|(m, _)| *m == name) {
        return Err(error(format!("`{name}` is written {usage}"), at));
    }
    match FUNCTIONS.iter().find(|(f, _)| *f == name) {
        Some((_, style)) if (method && style.method()) || (!method && style.global()) => Ok(()),
        Some((_, Style::Method)) | Some((_, Style::Both)) => Err(error(
            format!("`{name}` is a method: write x.{name}(...)"),
            at,
        )),
        Some((_, Style::Global)) => Err(error(
            format!("`{name}` is not a method: write {name}(x, ...)"),
            at,
        )),
        None => {
            let known = FUNCTIONS
                .iter()
                .map(|(f, _)| *f)
                .chain(MACROS.iter().map(|(m, _)| *m));
            let hint = nearest(name, known)
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            Err(error(format!("unknown function `{name}`{hint}"), at))
        }
    }
}

/// A `matches` with a literal pattern gets its pattern checked now rather than on each record.
fn check_literal_pattern(
    target: Option<&IdedExpr>,
    args: &[IdedExpr],
    pos: &Positions<'_>,
) -> Result<(), CompileError> {
    let pattern = match (target, args) {
        (Some(_), [pattern]) | (None, [_, pattern]) => pattern,
        _ => return Ok(()),
    };
    if let Node::Literal(LiteralValue::String(s)) = &pattern.expr {
        compile_regex(s.inner()).map_err(|m| error(m, pos.of(pattern.id)))?;
    }
    Ok(())
}

/// Points `matches` calls at the cached implementation (see [`CACHED_MATCHES`]). Runs after
/// [`validate`], so the call shapes are known good; the interpreter then finds our overload
/// for the same arguments.
pub(super) fn rewrite_matches(expr: &mut IdedExpr) {
    if let Node::Call(call) = &mut expr.expr
        && call.func_name == "matches"
    {
        call.func_name = CACHED_MATCHES.to_owned();
    }
    for child in children_mut(expr) {
        rewrite_matches(child);
    }
}

pub(super) fn children_mut(expr: &mut IdedExpr) -> Vec<&mut IdedExpr> {
    match &mut expr.expr {
        Node::Unspecified | Node::Ident(_) | Node::Literal(_) => Vec::new(),
        Node::Call(call) => call
            .target
            .as_deref_mut()
            .into_iter()
            .chain(call.args.iter_mut())
            .collect(),
        Node::Comprehension(c) => {
            let c = &mut **c;
            vec![
                &mut c.iter_range,
                &mut c.accu_init,
                &mut c.loop_cond,
                &mut c.loop_step,
                &mut c.result,
            ]
        }
        Node::List(list) => list.elements.iter_mut().collect(),
        Node::Map(map) => map
            .entries
            .iter_mut()
            .flat_map(|e| entry_children_mut(&mut e.expr))
            .collect(),
        Node::Struct(s) => s
            .entries
            .iter_mut()
            .flat_map(|e| entry_children_mut(&mut e.expr))
            .collect(),
        Node::Select(select) => vec![&mut *select.operand],
    }
}

fn entry_children_mut(entry: &mut EntryExpr) -> Vec<&mut IdedExpr> {
    match entry {
        EntryExpr::StructField(f) => vec![&mut f.value],
        EntryExpr::MapEntry(e) => vec![&mut e.key, &mut e.value],
    }
}

/// What an expression reads of `user`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct UserAccess {
    /// The top-level keys it reads, or `None` when it uses `user` as a whole (`size(user)`,
    /// `user[k]` with a computed `k`, ...) and needs all of it.
    pub(super) keys: Option<Vec<String>>,
    /// The field paths it selects (`user.name.givenName` is `["name", "givenName"]`), to name
    /// the missing one when a record lacks a key.
    pub(super) paths: Vec<Vec<String>>,
}

/// Finds which top-level keys of `user` `expr` reads, so evaluation converts only those.
pub(super) fn user_access(expr: &IdedExpr) -> UserAccess {
    let mut keys = Some(BTreeSet::new());
    let mut paths = Vec::new();
    collect_access(expr, &mut keys, &mut paths);
    paths.sort();
    paths.dedup();
    UserAccess {
        keys: keys.map(|k| k.into_iter().collect()),
        paths,
    }
}

fn is_user(expr: &IdedExpr) -> bool {
    matches!(&expr.expr, Node::Ident(name) if name == "user" || name == ".user")
}

/// The path of field selections `expr` makes on `user`, if it is `user.a.b...`.
fn user_path(expr: &IdedExpr) -> Option<Vec<String>> {
    match &expr.expr {
        Node::Select(select) if !select.test => {
            if is_user(&select.operand) {
                Some(vec![select.field.clone()])
            } else {
                let mut path = user_path(&select.operand)?;
                path.push(select.field.clone());
                Some(path)
            }
        }
        _ => None,
    }
}

fn string_literal(expr: &IdedExpr) -> Option<&str> {
    match &expr.expr {
        Node::Literal(LiteralValue::String(s)) => Some(s.inner()),
        _ => None,
    }
}

fn collect_access(
    expr: &IdedExpr,
    keys: &mut Option<BTreeSet<String>>,
    paths: &mut Vec<Vec<String>>,
) {
    let mut add = |key: &str| {
        if let Some(keys) = keys.as_mut() {
            keys.insert(key.to_owned());
        }
    };
    match &expr.expr {
        Node::Ident(_) if is_user(expr) => *keys = None,
        Node::Select(select) if is_user(&select.operand) => add(&select.field),
        Node::Call(call)
            if matches!(call.func_name.as_str(), "_[_]" | "_[?_]" | "_?._")
                && call.target.is_none()
                && call.args.len() == 2
                && is_user(&call.args[0])
                && string_literal(&call.args[1]).is_some() =>
        {
            if let Some(key) = string_literal(&call.args[1]) {
                add(key);
            }
        }
        _ => {}
    }
    if let Some(path) = user_path(expr) {
        paths.push(path);
    }
    // `user` directly under a select or a literal index was handled above: skip it so it
    // does not count as a use of the whole record.
    for child in children(expr) {
        let handled = is_user(child)
            && match &expr.expr {
                Node::Select(_) => true,
                Node::Call(call) => {
                    matches!(call.func_name.as_str(), "_[_]" | "_[?_]" | "_?._")
                        && call.args.len() == 2
                        && string_literal(&call.args[1]).is_some()
                }
                _ => false,
            };
        if !handled {
            collect_access(child, keys, paths);
        }
    }
}
