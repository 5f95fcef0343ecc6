//! The function library expressions can call: the CEL standard library, the CEL strings
//! extension, and a few functions of our own (`lower`, `upper`, function-style `trim`, and a
//! `matches` that caches its compiled regular expressions).
//!
//! The environment is built once per process and shared by every evaluation: registering
//! functions per record would dominate the cost of evaluating a simple expression.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use cel::common::types::{CelBool, CelString, STRING_TYPE};
use cel::common::value::CowVal;
use cel::{Env, ExecutionError, extensions};

/// The name `matches` calls are rewritten to at compile time, so that they reach
/// [`matches_cached`] instead of the standard overload, which compiles its pattern on every call.
/// The `@` keeps it out of reach of expression text.
pub(super) const CACHED_MATCHES: &str = "@matches";

/// How a function may be called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    /// `f(x)` only.
    Global,
    /// `x.f()` only.
    Method,
    /// Both `f(x)` and `x.f()`.
    Both,
}

impl Style {
    pub(super) fn global(self) -> bool {
        matches!(self, Style::Global | Style::Both)
    }

    pub(super) fn method(self) -> bool {
        matches!(self, Style::Method | Style::Both)
    }
}

/// Every function the environment declares, and how it is called. The compile-time check
/// rejects any other call, so this list must match [`build_env`]: a test calls each entry in
/// each style and checks the interpreter knows it exactly in the declared ones.
///
/// Ours come first: on a tie, the nearest-name suggestion picks the earlier entry, and
/// `lowercase` should suggest `lower` rather than `lowerAscii`.
pub(super) const FUNCTIONS: &[(&str, Style)] = &[
    // ours (`trim` is the extension's method plus our function form)
    ("lower", Style::Both),
    ("upper", Style::Both),
    ("trim", Style::Both),
    // standard library
    ("size", Style::Both),
    ("contains", Style::Method),
    ("startsWith", Style::Method),
    ("endsWith", Style::Method),
    ("matches", Style::Both),
    ("int", Style::Global),
    ("uint", Style::Global),
    ("double", Style::Global),
    ("string", Style::Global),
    ("bool", Style::Global),
    ("bytes", Style::Global),
    ("dyn", Style::Global),
    ("type", Style::Global),
    // optional values
    ("optional.of", Style::Global),
    ("optional.none", Style::Global),
    ("optional.ofNonZeroValue", Style::Global),
    ("hasValue", Style::Method),
    ("value", Style::Method),
    ("or", Style::Method),
    ("orValue", Style::Method),
    // strings extension
    ("charAt", Style::Method),
    ("indexOf", Style::Method),
    ("lastIndexOf", Style::Method),
    ("join", Style::Method),
    ("lowerAscii", Style::Method),
    ("upperAscii", Style::Method),
    ("replace", Style::Method),
    ("split", Style::Method),
    ("substring", Style::Method),
    ("format", Style::Method),
    ("reverse", Style::Method),
    ("strings.quote", Style::Global),
];

/// The macros the parser expands, with a usage line for when one is called the wrong way (the
/// parser then leaves it as a plain call, which would fail on every record).
pub(super) const MACROS: &[(&str, &str)] = &[
    ("has", "has(user.field)"),
    ("all", "list.all(x, condition)"),
    ("exists", "list.exists(x, condition)"),
    ("exists_one", "list.exists_one(x, condition)"),
    ("existsOne", "list.existsOne(x, condition)"),
    (
        "map",
        "list.map(x, expression) or list.map(x, condition, expression)",
    ),
    ("filter", "list.filter(x, condition)"),
];

/// Type names an expression may mention, as in `type(user.id) == int`.
pub(super) const TYPE_NAMES: &[&str] = &[
    "bool",
    "bytes",
    "double",
    "dyn",
    "int",
    "list",
    "map",
    "null_type",
    "optional_type",
    "string",
    "type",
    "uint",
];

/// Markdown table of the functions expressions can use (for the README).
pub const FUNCTIONS_DOC: &str = r#"| Function | Example | Result / notes |
|---|---|---|
| `lower(s)`, `s.lower()` | `user.email.lower()` | lower-cased string (Unicode-aware: `"ÉVA".lower()` is `"éva"`) |
| `upper(s)`, `s.upper()` | `upper(user.country)` | upper-cased string (Unicode-aware) |
| `trim(s)`, `s.trim()` | `user.name.trim()` | string without leading and trailing whitespace |
| `s.split(sep)`, `s.split(sep, n)` | `user.orgUnitPath.split("/")[1]` | list of strings (`"/Support/L1"` gives `["", "Support", "L1"]`); `n` caps the number of parts |
| `list.join()`, `list.join(sep)` | `user.groups.join(", ")` | the strings of a list joined into one |
| `s.replace(old, new)`, `s.replace(old, new, n)` | `user.phone.replace(" ", "")` | string with every (or the first `n`) `old` replaced |
| `s.contains(sub)` | `user.email.contains("+")` | bool |
| `s.startsWith(prefix)` | `user.orgUnitPath.startsWith("/Support")` | bool |
| `s.endsWith(suffix)` | `user.email.endsWith("@example.com")` | bool |
| `s.matches(regex)`, `matches(s, regex)` | `user.employeeId.matches("^[0-9]{6}$")` | bool; RE2-style syntax, unanchored unless you use `^`/`$`; a literal pattern is checked when the config is validated |
| `size(x)`, `x.size()` | `size(user.groups) > 0` | length of a string (in characters), list or map |
| `has(x.f)` | `has(user.nickname)` | whether the record has the key (true even if its value is `null`) |
| `x.?f`, `x[?"key"]` | `user.?nickname` | an *optional*: the value if the key exists (even as `null`), else none; chain with `.?` |
| `opt.orValue(default)` | `user.?nickname.orValue(user.name.givenName)` | the optional's value, else `default` |
| `opt.hasValue()`, `opt.value()`, `opt.or(other)` | `user.?manager.or(user.?lead)` | test, unwrap, or fall back to another optional |
| `cond ? a : b` | `user.isAdmin ? "technician" : "user"` | `a` if `cond` is true, else `b` |
| `x in list`, `k in map` | `"admins@example.com" in user.groups` | membership |
| `a + b` | `user.name.givenName + " " + user.name.familyName` | string, list concatenation; number addition |
| `list[i]`, `map["key"]`, `x.f` | `user.emails[0].address` | element / value; an error if absent (guard with `has` or `.?`) |
| `list.exists(x, cond)`, `list.all(x, cond)`, `list.exists_one(x, cond)` | `user.groups.exists(g, g.endsWith("@support.example.com"))` | bool |
| `list.map(x, expr)`, `list.filter(x, cond)` | `user.emails.filter(e, e.primary).map(e, e.address)` | list |
| `int(x)`, `uint(x)`, `double(x)`, `string(x)`, `bool(x)` | `int(user.employeeNumber)` | conversions (from strings too) |
| `type(x)` | `type(user.id) == string` | the type of a value |
| `s.lowerAscii()`, `s.upperAscii()` | `user.code.upperAscii()` | ASCII-only case change |
| `s.indexOf(sub)`, `s.lastIndexOf(sub)`, `s.charAt(i)`, `s.substring(start, end)`, `s.reverse()` | `user.email.substring(0, user.email.indexOf("@"))` | string helpers (indices in characters) |
| `fmt.format(list)`, `strings.quote(s)` | `"%s (%s)".format([user.name, source])` | formatting |

Variables: `user` is the source record, `source` the name of the source. A `null` result for a field means "leave unset / clear"; an optional with no value gives `null` too."#;

/// The shared environment, built on first use.
static ENV: LazyLock<Result<Arc<Env>, String>> = LazyLock::new(|| build_env().map(Arc::new));

/// The shared environment, or why it could not be built (a bug: it has no input).
pub(super) fn env() -> Result<Arc<Env>, String> {
    ENV.as_ref().map(Arc::clone).map_err(Clone::clone)
}

/// The CEL standard library, the strings extension, and our functions.
fn build_env() -> Result<Env, String> {
    let mut env = Env::stdlib();
    let declare = |env: &mut Env| -> Result<(), cel::DeclarationError> {
        extensions::strings(env)?;
        super::limits::declare(env)?;
        env.add_overload("lower", "lower_string", vec![STRING_TYPE], lower)?;
        env.add_member_overload("lower", "string_lower", STRING_TYPE, vec![], lower)?;
        env.add_overload("upper", "upper_string", vec![STRING_TYPE], upper)?;
        env.add_member_overload("upper", "string_upper", STRING_TYPE, vec![], upper)?;
        env.add_overload("trim", "trim_string", vec![STRING_TYPE], trim)?;
        env.add_overload(
            CACHED_MATCHES,
            "cached_matches_string_string",
            vec![STRING_TYPE, STRING_TYPE],
            matches_cached,
        )?;
        env.add_member_overload(
            CACHED_MATCHES,
            "string_cached_matches_string",
            STRING_TYPE,
            vec![STRING_TYPE],
            matches_cached,
        )?;
        Ok(())
    };
    declare(&mut env).map_err(|e| format!("cannot set up the expression functions: {e}"))?;
    Ok(env)
}

/// The string argument at `index`; the dispatcher only calls an overload with the declared
/// types, so a mismatch is reported rather than trusted.
fn string_arg<'a>(
    function: &str,
    args: &'a [CowVal<'_, '_>],
    index: usize,
) -> Result<&'a str, ExecutionError> {
    let arg = args
        .get(index)
        .ok_or_else(|| ExecutionError::invalid_argument_count(index + 1, args.len()))?;
    arg.downcast_ref::<CelString>()
        .map(CelString::inner)
        .ok_or_else(|| {
            ExecutionError::function_error(
                function,
                format!("expected a string, got {}", arg.get_type().name()),
            )
        })
}

fn lower<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = string_arg("lower", &args, 0)?;
    super::limits::charged(CowVal::owned(CelString::from(s.to_lowercase())))
}

fn upper<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = string_arg("upper", &args, 0)?;
    super::limits::charged(CowVal::owned(CelString::from(s.to_uppercase())))
}

fn trim<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = string_arg("trim", &args, 0)?;
    super::limits::charged(CowVal::owned(CelString::from(s.trim().to_owned())))
}

/// How many compiled patterns each thread keeps; past that the cache starts over, which only
/// matters for expressions building patterns from record data.
const REGEX_CACHE_SIZE: usize = 256;

thread_local! {
    /// Compiled patterns by source text. Per thread, so evaluations never contend on a lock.
    static REGEX_CACHE: RefCell<HashMap<String, Arc<regex::Regex>>> = RefCell::new(HashMap::new());
}

/// Compiles `pattern`, or explains why it is not a valid regular expression.
pub(super) fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(pattern).map_err(|e| {
        // The regex crate's message spans several lines with a caret; its last line says what
        // is wrong.
        let text = e.to_string();
        let reason = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("invalid")
            .trim()
            .trim_start_matches("error: ")
            .to_owned();
        format!("invalid regular expression {pattern:?}: {reason}")
    })
}

/// A compiled `pattern`, from this thread's cache when possible.
fn cached_regex(pattern: &str) -> Result<Arc<regex::Regex>, ExecutionError> {
    REGEX_CACHE.with(|cache| {
        if let Some(re) = cache.borrow().get(pattern) {
            return Ok(Arc::clone(re));
        }
        let re = Arc::new(
            compile_regex(pattern).map_err(|m| ExecutionError::function_error("matches", m))?,
        );
        let mut cache = cache.borrow_mut();
        if cache.len() >= REGEX_CACHE_SIZE {
            cache.clear();
        }
        cache.insert(pattern.to_owned(), Arc::clone(&re));
        Ok(re)
    })
}

/// `s.matches(re)` and `matches(s, re)`, with the pattern compiled once per thread.
fn matches_cached<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let text = string_arg("matches", &args, 0)?;
    let pattern = string_arg("matches", &args, 1)?;
    let re = cached_regex(pattern)?;
    Ok(CowVal::owned(CelBool::from(re.is_match(text))))
}
