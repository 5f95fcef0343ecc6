//! Bounds on evaluation: no value an expression builds may exceed [`MAX_VALUE_BYTES`], and one
//! evaluation may build at most [`MAX_EVAL_BYTES`] in all and take at most [`MAX_STEPS`] steps.
//! A record that exceeds a bound is invalid with that reason.
//!
//! The `cel` crate has no hook between steps and runs `+` and the strings extension itself, so
//! compiling rewrites the tree (after the static check, so messages name what was written):
//!
//! - every built-in call that builds a string, bytes or list ([`BUILDERS`]), and every list,
//!   map and comprehension the user wrote, is wrapped in `@check(...)`, which counts a step and
//!   measures a value that was newly built (borrowed values, such as the record's own fields,
//!   cost nothing) against the size cap and the evaluation's byte budget; an element `map` or
//!   `filter` appends is wrapped in `@item(...)`, charged even when borrowed since it is copied;
//! - a comprehension's range is wrapped in `@range(...)`, which charges one step per element up
//!   front, so nested loops are paid for before they run;
//! - the operations whose result can be far larger than their inputs run our own code, which
//!   computes the result's size before building it: `+` (`@add`), `replace` (`@replace`) and
//!   `join` (`@join`). Everything else grows its input by a small factor at most, so checking
//!   its result after the fact is enough, given that inputs are bounded: record strings over
//!   [`MAX_VALUE_BYTES`] are refused when the record is converted. Our own functions (`lower`,
//!   `upper`, `trim`, these three) charge themselves, so they need no wrapper.
//!
//! Each wrapper is one more level of the interpreter's recursion, so the instrumented tree is
//! held to [`MAX_INSTRUMENTED_DEPTH`] as well (see `check::MAX_DEPTH` for why depth matters).
//!
//! The comprehension's own bookkeeping (`@result + [x]`, `@result && x`) is left as the macro
//! wrote it, so the interpreter's in-place append for `map` and `filter` still applies.
//!
//! The budget is per thread and reset by [`start`] before each evaluation; evaluations never
//! nest, and the planner may evaluate on several threads.

use std::cell::Cell;

use cel::common::ast::{CallExpr, EntryExpr, Expr as Node, ListExpr};
use cel::common::types::{
    CelBytes, CelInt, CelList, CelMap, CelOptional, CelString, DYN_TYPE, INT_TYPE, LIST_TYPE,
    STRING_TYPE,
};
use cel::common::value::{CowVal, Val};
use cel::{Env, ExecutionError, IdedExpr};

/// The largest string, bytes, list or map an expression may build or read, in bytes (list and
/// map entries count 16 bytes each on top of their contents). No field of an account
/// comes near it.
pub const MAX_VALUE_BYTES: u64 = 1024 * 1024;
/// The most bytes one evaluation may build in all.
pub const MAX_EVAL_BYTES: u64 = 16 * 1024 * 1024;
/// The most steps (calls, and elements a loop goes over) one evaluation may take.
pub const MAX_STEPS: u64 = 100_000;
/// How deeply the instrumented tree may nest: 48 interpreter levels stay inside a 2 MiB stack
/// in a debug build. Only expressions chaining many value-building calls come near it.
pub(super) const MAX_INSTRUMENTED_DEPTH: usize = 48;
/// What a list or map entry counts for, besides its contents.
const ENTRY_BYTES: u64 = 16;

pub(super) const CHECK: &str = "@check";
pub(super) const RANGE: &str = "@range";
pub(super) const ADD: &str = "@add";
pub(super) const REPLACE: &str = "@replace";
pub(super) const JOIN: &str = "@join";
pub(super) const ITEM: &str = "@item";

/// Built-in calls that build a string, bytes or list: their results are checked. Operators and
/// functions giving a bool or a number, or a part of an existing value, are not wrapped (each
/// wrapper is one more level of the interpreter's recursion); nor are our own functions, which
/// charge themselves.
const BUILDERS: &[&str] = &[
    "format",
    "strings.quote",
    "split",
    "substring",
    "charAt",
    "reverse",
    "lowerAscii",
    "upperAscii",
    "string",
    "bytes",
];

thread_local! {
    static STEPS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

/// Resets this thread's budget before an evaluation.
pub(super) fn start() {
    STEPS.with(|s| s.set(0));
    BYTES.with(|b| b.set(0));
}

fn limit_error(message: String) -> ExecutionError {
    ExecutionError::function_error(CHECK, message)
}

/// Human size: `1 MiB`, `2.5 MiB`, `300 KiB`, `12 bytes`.
pub(super) fn show_bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let f = n as f64;
    if f >= KIB * KIB {
        format!("{:.1} MiB", f / (KIB * KIB)).replace(".0 ", " ")
    } else if f >= KIB {
        format!("{:.1} KiB", f / KIB).replace(".0 ", " ")
    } else {
        format!("{n} bytes")
    }
}

fn too_large(size: u64) -> String {
    format!(
        "the expression builds a value of {} or more; the limit is {} per value",
        show_bytes(size),
        show_bytes(MAX_VALUE_BYTES)
    )
}

fn charge_steps(n: u64) -> Result<(), ExecutionError> {
    let total = STEPS.with(|s| {
        let t = s.get().saturating_add(n);
        s.set(t);
        t
    });
    if total > MAX_STEPS {
        return Err(limit_error(format!(
            "the expression takes more than {MAX_STEPS} steps on this record; simplify it"
        )));
    }
    Ok(())
}

fn charge_bytes(n: u64) -> Result<(), ExecutionError> {
    let total = BYTES.with(|b| {
        let t = b.get().saturating_add(n);
        b.set(t);
        t
    });
    if total > MAX_EVAL_BYTES {
        return Err(limit_error(format!(
            "the expression builds more than {} in all on this record; simplify it",
            show_bytes(MAX_EVAL_BYTES)
        )));
    }
    Ok(())
}

/// The size of a value, counted until it passes `stop` (then any number above `stop`), so that
/// measuring never costs more than the cap allows.
pub(super) fn size_of(val: &dyn Val, stop: u64) -> u64 {
    fn walk(val: &dyn Val, stop: u64, depth: usize) -> u64 {
        if let Some(s) = val.downcast_ref::<CelString>() {
            return s.inner().len() as u64;
        }
        if let Some(b) = val.downcast_ref::<CelBytes>() {
            return b.inner().len() as u64;
        }
        if depth > 128 {
            return stop.saturating_add(1);
        }
        if let Some(o) = val.downcast_ref::<CelOptional>() {
            return o.option().map_or(0, |v| walk(v, stop, depth + 1));
        }
        if let Some(map) = val.downcast_ref::<CelMap>() {
            let mut total = 0u64;
            for (k, v) in map.inner() {
                total = total
                    .saturating_add(ENTRY_BYTES)
                    .saturating_add(walk(k.inner(), stop, depth + 1))
                    .saturating_add(walk(v.as_ref(), stop, depth + 1));
                if total > stop {
                    break;
                }
            }
            return total;
        }
        if let Some(list) = val.downcast_ref::<CelList>() {
            let mut total = 0u64;
            for item in list.inner() {
                total = total.saturating_add(ENTRY_BYTES).saturating_add(walk(
                    item.as_ref(),
                    stop,
                    depth + 1,
                ));
                if total > stop {
                    break;
                }
            }
            return total;
        }
        if let Some(iterable) = val.as_iterable() {
            let mut total = 0u64;
            let mut items = iterable.iter();
            while let Some(item) = items.next() {
                total =
                    total
                        .saturating_add(ENTRY_BYTES)
                        .saturating_add(walk(item, stop, depth + 1));
                if total > stop {
                    break;
                }
            }
            return total;
        }
        8
    }
    walk(val, stop, 0)
}

/// Measures a value just built against the caps; a borrowed one was measured (or is input).
fn account(value: &CowVal<'_, '_>) -> Result<(), ExecutionError> {
    if let CowVal::Owned(v) = value {
        let size = size_of(v.as_ref(), MAX_VALUE_BYTES);
        if size > MAX_VALUE_BYTES {
            return Err(limit_error(too_large(size)));
        }
        charge_bytes(size)?;
    }
    Ok(())
}

fn check<'b, 'v>(mut args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let value = args
        .pop()
        .ok_or_else(|| ExecutionError::invalid_argument_count(1, 0))?;
    charge_steps(1)?;
    account(&value)?;
    Ok(value)
}

fn range<'b, 'v>(mut args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let value = args
        .pop()
        .ok_or_else(|| ExecutionError::invalid_argument_count(1, 0))?;
    account(&value)?;
    let len = value
        .as_sizer()
        .map_or(0, |s| u64::try_from(*s.size().inner()).unwrap_or(0));
    charge_steps(len.saturating_add(1))?;
    Ok(value)
}

/// `a + b`, refusing a string, bytes or list result over the cap before building it.
fn add<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [lhs, rhs] = args.as_slice() else {
        return Err(ExecutionError::invalid_argument_count(2, args.len()));
    };
    let grows = |v: &dyn Val| {
        v.downcast_ref::<CelString>().is_some()
            || v.downcast_ref::<CelBytes>().is_some()
            || v.downcast_ref::<CelList>().is_some()
    };
    if grows(lhs.as_ref()) && grows(rhs.as_ref()) {
        let size = size_of(lhs.as_ref(), MAX_VALUE_BYTES)
            .saturating_add(size_of(rhs.as_ref(), MAX_VALUE_BYTES));
        if size > MAX_VALUE_BYTES {
            return Err(limit_error(too_large(size)));
        }
    }
    let Some(adder) = lhs.as_adder() else {
        return Err(ExecutionError::UnsupportedBinaryOperator(
            "add",
            cel::Value::try_from(lhs.as_ref()).unwrap_or(cel::Value::Null),
            cel::Value::try_from(rhs.as_ref()).unwrap_or(cel::Value::Null),
        ));
    };
    charged(CowVal::Owned(adder.add(rhs.as_ref())?.into_owned()))
}

/// Charges a step and a value just built by one of our functions, and returns it.
pub(super) fn charged<'b, 'v>(value: CowVal<'b, 'v>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    charge_steps(1)?;
    account(&value)?;
    Ok(value)
}

fn string_at<'a>(args: &'a [CowVal<'_, '_>], i: usize, f: &str) -> Result<&'a str, ExecutionError> {
    args.get(i)
        .and_then(|a| a.downcast_ref::<CelString>())
        .map(CelString::inner)
        .ok_or_else(|| ExecutionError::function_error(f, "expected a string argument"))
}

/// `s.replace(old, new)` and `s.replace(old, new, n)`: as the strings extension (all
/// occurrences when `n` is negative), with the result's size computed before it is built.
fn replace<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = string_at(&args, 0, "replace")?;
    let old = string_at(&args, 1, "replace")?;
    let new = string_at(&args, 2, "replace")?;
    let limit = match args.get(3) {
        None => None,
        Some(n) => {
            let n = n
                .downcast_ref::<CelInt>()
                .map(|i| *i.inner())
                .ok_or_else(|| {
                    ExecutionError::function_error("replace", "expected an int count")
                })?;
            usize::try_from(n).ok()
        }
    };
    // Occurrences, as `str::replacen` finds them (an empty `old` matches at every char
    // boundary, start and end included).
    let found = if old.is_empty() {
        s.chars().count() as u64 + 1
    } else {
        s.matches(old).count() as u64
    };
    let count = limit.map_or(found, |n| found.min(n as u64));
    let size = (s.len() as u64)
        .saturating_sub(count.saturating_mul(old.len() as u64))
        .saturating_add(count.saturating_mul(new.len() as u64));
    if size > MAX_VALUE_BYTES {
        return Err(limit_error(too_large(size)));
    }
    let out = match limit {
        Some(n) => s.replacen(old, new, n),
        None => s.replace(old, new),
    };
    charged(CowVal::owned(CelString::from(out)))
}

/// `list.join()` and `list.join(sep)`, with the result's size computed before it is built.
fn join<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let list = args
        .first()
        .ok_or_else(|| ExecutionError::invalid_argument_count(1, 0))?;
    let sep = match args.get(1) {
        Some(_) => string_at(&args, 1, "join")?,
        None => "",
    };
    let iterable = list
        .as_iterable()
        .ok_or_else(|| ExecutionError::function_error("join", "expected a list"))?;
    let mut parts = Vec::new();
    let mut size = 0u64;
    let mut items = iterable.iter();
    while let Some(item) = items.next() {
        let part = item
            .downcast_ref::<CelString>()
            .map(CelString::inner)
            .ok_or_else(|| {
                ExecutionError::function_error(
                    "join",
                    format!(
                        "expected a list of strings, got a {}",
                        item.get_type().name()
                    ),
                )
            })?;
        if !parts.is_empty() {
            size = size.saturating_add(sep.len() as u64);
        }
        size = size.saturating_add(part.len() as u64);
        if size > MAX_VALUE_BYTES {
            return Err(limit_error(too_large(size)));
        }
        parts.push(part);
    }
    charged(CowVal::owned(CelString::from(parts.join(sep))))
}

/// An element a `map` or `filter` appends: copied into the result even when borrowed, so its
/// size is charged either way.
fn item<'b, 'v>(mut args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let value = args
        .pop()
        .ok_or_else(|| ExecutionError::invalid_argument_count(1, 0))?;
    charge_steps(1)?;
    let size = size_of(value.as_ref(), MAX_VALUE_BYTES);
    if size > MAX_VALUE_BYTES {
        return Err(limit_error(too_large(size)));
    }
    charge_bytes(size)?;
    Ok(value)
}

/// Declares the functions the rewritten tree calls.
pub(super) fn declare(env: &mut Env) -> Result<(), cel::DeclarationError> {
    env.add_overload(CHECK, "limits_check", vec![DYN_TYPE], check)?;
    env.add_overload(RANGE, "limits_range", vec![DYN_TYPE], range)?;
    env.add_overload(ITEM, "limits_item", vec![DYN_TYPE], item)?;
    env.add_overload(ADD, "limits_add", vec![DYN_TYPE, DYN_TYPE], add)?;
    let s = || STRING_TYPE;
    env.add_member_overload(REPLACE, "limits_replace", s(), vec![s(), s()], replace)?;
    env.add_member_overload(
        REPLACE,
        "limits_replace_n",
        s(),
        vec![s(), s(), INT_TYPE],
        replace,
    )?;
    env.add_member_overload(JOIN, "limits_join", LIST_TYPE, vec![], join)?;
    env.add_member_overload(JOIN, "limits_join_sep", LIST_TYPE, vec![s()], join)?;
    Ok(())
}

fn wrap(expr: &mut IdedExpr, function: &str) {
    let inner = std::mem::take(expr);
    expr.id = inner.id;
    expr.expr = Node::Call(CallExpr {
        func_name: function.to_owned(),
        target: None,
        args: vec![inner],
    });
}

/// Rewrites a checked tree so that evaluating it stays within the bounds (see the module doc).
pub(super) fn instrument(expr: &mut IdedExpr) {
    match &mut expr.expr {
        Node::Comprehension(c) => {
            instrument(&mut c.iter_range);
            wrap(&mut c.iter_range, RANGE);
            let accu = c.accu_var.clone();
            bookkeeping(&mut c.loop_step, &accu);
        }
        Node::Call(call) => {
            match call.func_name.as_str() {
                "_+_" => call.func_name = ADD.to_owned(),
                "replace" if call.target.is_some() => call.func_name = REPLACE.to_owned(),
                "join" if call.target.is_some() => call.func_name = JOIN.to_owned(),
                _ => {}
            }
            for child in super::check::children_mut(expr) {
                instrument(child);
            }
        }
        _ => {
            for child in super::check::children_mut(expr) {
                instrument(child);
            }
        }
    }
    let builds = match &expr.expr {
        Node::Call(call) => BUILDERS.contains(&call.func_name.as_str()),
        Node::List(_) | Node::Map(_) | Node::Comprehension(_) => true,
        _ => false,
    };
    if builds {
        wrap(expr, CHECK);
    }
}

fn mentions(expr: &IdedExpr, name: &str) -> bool {
    let mut found = false;
    visit(expr, &mut |e| {
        if matches!(&e.expr, Node::Ident(n) if n == name) {
            found = true;
        }
    });
    found
}

fn visit(expr: &IdedExpr, f: &mut dyn FnMut(&IdedExpr)) {
    f(expr);
    match &expr.expr {
        Node::Call(call) => {
            if let Some(t) = &call.target {
                visit(t, f);
            }
            for a in &call.args {
                visit(a, f);
            }
        }
        Node::Comprehension(c) => {
            for e in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                visit(e, f);
            }
        }
        Node::List(l) => l.elements.iter().for_each(|e| visit(e, f)),
        Node::Map(m) => {
            for entry in &m.entries {
                if let EntryExpr::MapEntry(e) = &entry.expr {
                    visit(&e.key, f);
                    visit(&e.value, f);
                }
            }
        }
        Node::Select(s) => visit(&s.operand, f),
        _ => {}
    }
}

/// A loop step: the parts that mention the accumulator are the macro's bookkeeping and stay as
/// they are (the list appended by `map`/`filter` included), the rest is the user's and is
/// instrumented.
fn bookkeeping(expr: &mut IdedExpr, accu: &str) {
    // A nested comprehension is the user's: every macro names its accumulator `@result`, so
    // the inner one's mentions are its own.
    if matches!(expr.expr, Node::Comprehension(_)) || !mentions(expr, accu) {
        instrument(expr);
        return;
    }
    if let Node::Call(call) = &mut expr.expr
        && call.func_name == "_+_"
        && let [lhs, rhs] = call.args.as_mut_slice()
        && matches!(&lhs.expr, Node::Ident(n) if n == accu)
        && let Node::List(ListExpr { elements, .. }) = &mut rhs.expr
    {
        for element in elements.iter_mut() {
            instrument(element);
            wrap(element, ITEM);
        }
        return;
    }
    for child in super::check::children_mut(expr) {
        bookkeeping(child, accu);
    }
}
