//! CEL expressions for `where`, `fields` and `active` (SPEC section 4).
//!
//! An expression is compiled once, when the config is validated, and evaluated per record.
//! Expressions see two variables: `user`, the source record, and `source`, the source's name.
//!
//! Compiling parses the text and then checks it, since the CEL crate has no type checker:
//! unknown variables and functions, misused macros and bad literal regular expressions are
//! compile errors with a char offset, so the config layer can report a line and column.
//! Evaluating never panics: runtime problems (a missing key, a type mismatch, an index out of
//! range) are an [`EvalError`] that makes the record invalid.
//!
//! The functions available are listed in [`FUNCTIONS_DOC`], a markdown table for the README.

mod check;
mod convert;
mod library;
mod limits;
#[cfg(test)]
mod tests;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use cel::common::types::CelString;
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, ExecutionError, IdedExpr};
use serde_json::Value;

pub use library::FUNCTIONS_DOC;
pub use limits::{MAX_EVAL_BYTES, MAX_STEPS, MAX_VALUE_BYTES};

/// The longest expression accepted, in chars. Far above any sensible expression; bounds the
/// work and memory of parsing text that is not one.
pub const MAX_SOURCE_CHARS: usize = 10_000;

/// Stack for the parser thread. The generated parser recurses deeply with large frames (a
/// 2 MiB stack overflows on 50 nested parentheses in a debug build, and an overflow aborts the
/// process), so parsing runs on a thread of its own with room to spare; its own recursion limit
/// then stops deeper input with an error.
const PARSER_STACK_BYTES: usize = 64 * 1024 * 1024;

/// A compiled expression. Cheap to clone and shareable across threads.
#[derive(Clone)]
pub struct Expr {
    source: String,
    compiled: Arc<Compiled>,
}

impl std::fmt::Debug for Expr {
    // The text says it all; the tree would bury specs and plans that print an expression.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expr").field(&self.source).finish()
    }
}

/// What compiling produces, shared by the clones of an [`Expr`].
struct Compiled {
    ast: IdedExpr,
    env: Arc<Env>,
    access: check::UserAccess,
}

/// A compile error; `offset` is a char offset into the expression text when known.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct CompileError {
    pub message: String,
    pub offset: Option<usize>,
}

/// A runtime error: makes the record invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

impl Expr {
    /// Parses and checks `source`.
    pub fn compile(source: &str) -> Result<Expr, CompileError> {
        let chars = source.chars().count();
        if chars > MAX_SOURCE_CHARS {
            return Err(CompileError {
                message: format!(
                    "expression is {chars} characters long; the limit is {MAX_SOURCE_CHARS}"
                ),
                offset: None,
            });
        }
        if source.trim().is_empty() {
            return Err(CompileError {
                message: "expression is empty".to_owned(),
                offset: Some(0),
            });
        }
        let env = library::env().map_err(|message| CompileError {
            message,
            offset: None,
        })?;
        let compiled = std::thread::scope(|scope| {
            let parser = std::thread::Builder::new()
                .name("cel-parser".to_owned())
                .stack_size(PARSER_STACK_BYTES)
                .spawn_scoped(scope, || compile_on_this_thread(source, &env))
                .map_err(|e| CompileError {
                    message: format!("cannot start the expression parser: {e}"),
                    offset: None,
                })?;
            parser.join().unwrap_or_else(|_| {
                Err(CompileError {
                    message: "the expression parser failed on this input".to_owned(),
                    offset: None,
                })
            })
        })?;
        Ok(Expr {
            source: source.to_owned(),
            compiled: Arc::new(Compiled {
                ast: compiled.0,
                env,
                access: compiled.1,
            }),
        })
    }

    /// The expression text, as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates with `user` bound to the record and `source` to the source's name.
    pub fn eval(&self, user: &Value, source: &str) -> Result<Value, EvalError> {
        let compiled = &*self.compiled;
        // A bug in the interpreter must cost one record, not the run.
        catch_unwind(AssertUnwindSafe(|| compiled.eval(user, source))).unwrap_or_else(|_| {
            Err(EvalError(
                "the expression failed unexpectedly on this record".to_owned(),
            ))
        })
    }

    /// Evaluates a condition (`where`, `active`): the result must be a bool.
    pub fn eval_bool(&self, user: &Value, source: &str) -> Result<bool, EvalError> {
        match self.eval(user, source)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError(format!("expected true or false, got {other}"))),
        }
    }
}

impl Compiled {
    fn eval(&self, user: &Value, source: &str) -> Result<Value, EvalError> {
        limits::start();
        let variables = Variables {
            user: convert::user_to_val(user, self.access.keys.as_deref())?,
            source: CelString::from(source),
        };
        let mut context = Context::with_env(Arc::clone(&self.env));
        context.set_variable_resolver(&variables);
        let result = cel::Value::resolve_val(&self.ast, &context).map_err(|e| {
            let path = self.missing_path(&e, user);
            let mut message = convert::describe(&e, path);
            if let Some(hint) = path.and_then(|p| spaced_key(user, p)) {
                message.push_str(&hint);
            }
            EvalError(message)
        })?;
        convert::val_to_json(result.as_ref(), 0)
    }

    /// For a missing-key error, the path the expression selects on `user` that the record
    /// lacks, ending at that key.
    fn missing_path(&self, error: &ExecutionError, user: &Value) -> Option<&[String]> {
        let ExecutionError::NoSuchKey(key) = error else {
            return None;
        };
        self.access.paths.iter().find_map(|path| {
            let mut node = user;
            for (i, segment) in path.iter().enumerate() {
                match node.get(segment) {
                    Some(next) => node = next,
                    None if node.is_object() && segment == key.as_str() => {
                        return Some(&path[..=i]);
                    }
                    None => return None,
                }
            }
            None
        })
    }
}

/// When the record lacks `path`'s last key but has it with stray spaces (a CSV header such as
/// `email ` or ` email`), says so: the plain "not set" would send people looking elsewhere.
fn spaced_key(user: &Value, path: &[String]) -> Option<String> {
    let (last, parent) = path.split_last()?;
    let mut node = user;
    for segment in parent {
        node = node.get(segment)?;
    }
    let found = node
        .as_object()?
        .keys()
        .find(|k| k.trim() == last.as_str() && *k != last)?;
    Some(format!(
        "; the record has `{found:?}` with stray spaces: trim the name in the source (the CSV header) so it reads `{last}`"
    ))
}

/// The two variables of an evaluation. Served through a resolver rather than bound on the
/// context, which would allocate their names and a map for every record.
struct Variables<'v> {
    user: Box<dyn Val + 'v>,
    source: CelString<'v>,
}

impl VariableResolver for Variables<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        match variable {
            "user" => Some(CowVal::Borrowed(self.user.as_ref())),
            "source" => Some(CowVal::Borrowed(&self.source)),
            _ => None,
        }
    }
}

/// Parses and checks `source`; runs on the parser thread, so that the tree is also dropped
/// there when it is too deep to keep.
fn compile_on_this_thread(
    source: &str,
    env: &Env,
) -> Result<(IdedExpr, check::UserAccess), CompileError> {
    let (mut ast, info) = env
        .parser()
        .parse_with_source_info(source)
        .map_err(|errors| syntax_error(source, &errors))?;
    if !check::depth_within_limit(&ast) {
        return Err(CompileError {
            message: format!(
                "expression nests more than {} levels deep; split it or simplify it",
                check::MAX_DEPTH
            ),
            offset: None,
        });
    }
    check::validate(
        &ast,
        &check::Positions {
            source,
            info: &info,
        },
    )?;
    check::rewrite_matches(&mut ast);
    let access = check::user_access(&ast);
    limits::instrument(&mut ast);
    if !check::depth_within(&ast, limits::MAX_INSTRUMENTED_DEPTH) {
        return Err(CompileError {
            message: "expression chains too many calls that build values (lists, `format`, `substring`, ...) inside each other; split it or simplify it".to_owned(),
            offset: None,
        });
    }
    Ok((ast, access))
}

/// The first parse error, in plain words, at its char offset.
fn syntax_error(source: &str, errors: &cel::ParseErrors) -> CompileError {
    let Some(first) = errors.errors.first() else {
        return CompileError {
            message: "syntax error".to_owned(),
            offset: None,
        };
    };
    let raw = first
        .msg
        .strip_prefix("Syntax error: ")
        .unwrap_or(&first.msg);
    if raw.contains("Recursion limit") {
        return CompileError {
            message: "expression nests too deeply".to_owned(),
            offset: None,
        };
    }
    let quoted = |prefix: &str| {
        raw.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('\''))
            .and_then(|rest| {
                rest.split_once("' ")
                    .map(|(token, _)| token)
                    .or(rest.strip_suffix('\''))
            })
    };
    let message = match quoted("mismatched input ")
        .or_else(|| quoted("extraneous input "))
        .or_else(|| quoted("no viable alternative at input "))
    {
        Some("<EOF>") => "syntax error: unexpected end of expression".to_owned(),
        Some(token) => format!("syntax error: unexpected `{token}`"),
        None => {
            if let Some(text) = raw.strip_prefix("token recognition error at: ") {
                format!("syntax error: unexpected {text}")
            } else if let Some((missing, _)) = raw
                .strip_prefix("missing '")
                .and_then(|rest| rest.split_once("' at "))
            {
                format!("syntax error: missing `{missing}`")
            } else {
                format!("syntax error: {raw}")
            }
        }
    };
    CompileError {
        message,
        offset: line_column_to_offset(source, first.pos),
    }
}

/// The char offset of a parser position: a 1-based line and a 1-based column counted in chars.
fn line_column_to_offset(source: &str, (line, column): (isize, isize)) -> Option<usize> {
    let line = usize::try_from(line).ok()?.checked_sub(1)?;
    let column = usize::try_from(column).ok()?.checked_sub(1)?;
    let mut offset = 0;
    for (i, text) in source.split('\n').enumerate() {
        if i == line {
            return Some(offset + column.min(text.chars().count()));
        }
        offset += text.chars().count() + 1;
    }
    None
}
