//! JSON to CEL and back, and plain-language runtime errors.
//!
//! Records come in as `serde_json::Value`; CEL values borrow their strings from it rather than
//! copying, and only the keys an expression reads are converted (see
//! [`super::check::user_access`]), which keeps a per-record evaluation cheap.

use std::collections::HashMap;

use cel::ExecutionError;
use cel::common::types::{
    CelBool, CelBytes, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelOptional,
    CelString, CelType, CelUInt, Kind,
};
use cel::common::value::Val;
use serde_json::Value;

use super::EvalError;

/// How deeply records and results may nest; both are converted recursively, and no identity
/// source produces anything close.
const MAX_NESTING: usize = 128;

fn too_deep() -> EvalError {
    EvalError(format!("value nests deeper than {MAX_NESTING} levels"))
}

/// `user` as a CEL value: only `keys` of it when given and the record is an object.
pub(super) fn user_to_val<'v>(
    user: &'v Value,
    keys: Option<&[String]>,
) -> Result<Box<dyn Val + 'v>, EvalError> {
    match (user, keys) {
        (Value::Object(map), Some(keys)) => {
            let mut out: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> =
                HashMap::with_capacity(keys.len());
            for key in keys {
                if let Some((k, v)) = map.get_key_value(key.as_str()) {
                    out.insert(CelMapKey::from(k.as_str()), json_to_val(v, 1)?);
                }
            }
            Ok(Box::new(CelMap::from(out)))
        }
        _ => json_to_val(user, 0),
    }
}

/// A JSON value as a CEL value. Integers become `int` (`uint` past `i64::MAX`), other numbers
/// `double`.
pub(super) fn json_to_val(value: &Value, depth: usize) -> Result<Box<dyn Val + '_>, EvalError> {
    if depth > MAX_NESTING {
        return Err(too_deep());
    }
    Ok(match value {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Box::new(CelInt::from(i))
            } else if let Some(u) = n.as_u64() {
                Box::new(CelUInt::from(u))
            } else {
                Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
        Value::String(s) if s.len() as u64 > super::limits::MAX_VALUE_BYTES => {
            return Err(EvalError(format!(
                "the record holds a value of {}; expressions read values up to {}",
                super::limits::show_bytes(s.len() as u64),
                super::limits::show_bytes(super::limits::MAX_VALUE_BYTES)
            )));
        }
        Value::String(s) => Box::new(CelString::from(s.as_str())),
        Value::Array(items) => {
            let items = items
                .iter()
                .map(|item| json_to_val(item, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            Box::new(CelList::from(items))
        }
        Value::Object(map) => {
            let mut out = HashMap::with_capacity(map.len());
            for (k, v) in map {
                out.insert(CelMapKey::from(k.as_str()), json_to_val(v, depth + 1)?);
            }
            Box::new(CelMap::from(out))
        }
    })
}

/// A CEL result as JSON. An optional gives its value, or `null` when it has none; bytes give
/// a string when they are UTF-8; a type gives its name. Map keys are sorted so that results
/// (and so plans) do not depend on hash order.
pub(super) fn val_to_json(val: &dyn Val, depth: usize) -> Result<Value, EvalError> {
    if depth > MAX_NESTING {
        return Err(too_deep());
    }
    if let Some(s) = val.downcast_ref::<CelString>() {
        return Ok(Value::String(s.inner().to_owned()));
    }
    if let Some(b) = val.downcast_ref::<CelBool>() {
        return Ok(Value::Bool(*b.inner()));
    }
    if let Some(i) = val.downcast_ref::<CelInt>() {
        return Ok(Value::from(*i.inner()));
    }
    if let Some(u) = val.downcast_ref::<CelUInt>() {
        return Ok(Value::from(*u.inner()));
    }
    if let Some(d) = val.downcast_ref::<CelDouble>() {
        let d = *d.inner();
        return serde_json::Number::from_f64(d)
            .map(Value::Number)
            .ok_or_else(|| EvalError(format!("result is not a finite number: {d}")));
    }
    if val.downcast_ref::<CelNull>().is_some() {
        return Ok(Value::Null);
    }
    if let Some(o) = val.downcast_ref::<CelOptional>() {
        return match o.option() {
            Some(inner) => val_to_json(inner, depth + 1),
            None => Ok(Value::Null),
        };
    }
    if let Some(b) = val.downcast_ref::<CelBytes>() {
        return String::from_utf8(b.inner().to_vec())
            .map(Value::String)
            .map_err(|_| EvalError("result is bytes that are not UTF-8 text".to_owned()));
    }
    if let Some(t) = val.downcast_ref::<CelType>() {
        return Ok(Value::String(t.name().to_owned()));
    }
    if let Some(map) = val.downcast_ref::<CelMap>() {
        let mut entries = map
            .inner()
            .iter()
            .map(|(k, v)| {
                Ok((
                    key_to_string(k.inner())?,
                    val_to_json(v.as_ref(), depth + 1)?,
                ))
            })
            .collect::<Result<Vec<_>, EvalError>>()?;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        return Ok(Value::Object(entries.into_iter().collect()));
    }
    if val.get_type().kind() == Kind::List
        && let Some(iterable) = val.as_iterable()
    {
        let mut items = Vec::new();
        let mut iter = iterable.iter();
        while let Some(item) = iter.next() {
            items.push(val_to_json(item, depth + 1)?);
        }
        return Ok(Value::Array(items));
    }
    Err(EvalError(format!(
        "the result is a {}, which cannot be stored: convert it, e.g. with string(...)",
        val.get_type().name()
    )))
}

/// A map key as a JSON object key.
fn key_to_string(key: &dyn Val) -> Result<String, EvalError> {
    match val_to_json(key, 0)? {
        Value::String(s) => Ok(s),
        other => Ok(other.to_string()),
    }
}

/// A value inside an error message: JSON when it has a JSON form, else its debug form.
fn show(value: &cel::Value) -> String {
    match value.json() {
        Ok(json) => json.to_string(),
        Err(_) => format!("{value:?}"),
    }
}

/// The operator an internal function name stands for (`_+_` is `+`).
fn operator(name: &str) -> &str {
    match name {
        "_+_" => "+",
        "_-_" => "-",
        "_*_" => "*",
        "_/_" => "/",
        "_%_" => "%",
        "_==_" => "==",
        "_!=_" => "!=",
        "_<_" => "<",
        "_<=_" => "<=",
        "_>_" => ">",
        "_>=_" => ">=",
        "_&&_" => "&&",
        "_||_" => "||",
        "!_" => "!",
        "-_" => "unary -",
        "_[_]" => "[]",
        "_[?_]" => "[?]",
        "_._" => ".",
        "_?._" => ".?",
        "@in" => "in",
        "_?_:_" => "?:",
        "add" => "+",
        "sub" => "-",
        "mul" => "*",
        "div" => "/",
        "rem" => "%",
        super::library::CACHED_MATCHES => "matches",
        super::limits::ADD => "+",
        super::limits::REPLACE => "replace",
        super::limits::JOIN => "join",
        super::limits::CHECK | super::limits::RANGE => "limit",
        other => other,
    }
}

/// A short message naming the problem, for a record made invalid by an expression.
/// `missing_user_path` names the `user` field that is absent from the record, when the error is
/// a missing key that the expression reads from `user`.
pub(super) fn describe(error: &ExecutionError, missing_user_path: Option<&[String]>) -> String {
    match error {
        ExecutionError::NoSuchKey(key) => match missing_user_path {
            Some(path) => {
                let full = path.join(".");
                let (parent, last) = match path.split_last() {
                    Some((last, parent)) if !parent.is_empty() => {
                        (format!("user.{}", parent.join(".")), last.as_str())
                    }
                    Some((last, _)) => ("user".to_owned(), last.as_str()),
                    None => ("user".to_owned(), key.as_str()),
                };
                format!(
                    "user.{full} is not set: guard with has(user.{full}) or use \
                     {parent}.?{last}.orValue(\"\")"
                )
            }
            None => format!("no such key: {key} (guard with has(...) or use .?{key}.orValue(...))"),
        },
        ExecutionError::NoSuchOverload(overload) => {
            let types = overload.argument_types();
            let name = operator(overload.function());
            let null = types.iter().any(|t| t == "null_type");
            let mut message = if overload.is_member_function() && !types.is_empty() {
                format!(
                    "`{name}` cannot be called on a {} with arguments ({})",
                    types[0],
                    types[1..].join(", ")
                )
            } else {
                format!("`{name}` cannot be applied to ({})", types.join(", "))
            };
            if null {
                message.push_str(": a value is null (test it with `!= null` first)");
            }
            message
        }
        ExecutionError::UnsupportedBinaryOperator(op, left, right) => format!(
            "`{}` cannot be applied to {} and {}",
            operator(op),
            show(left),
            show(right)
        ),
        ExecutionError::ValuesNotComparable(left, right) => {
            format!("cannot compare {} with {}", show(left), show(right))
        }
        ExecutionError::IndexOutOfBounds(index) => {
            format!("index {} is out of range", show(index))
        }
        ExecutionError::UndeclaredReference(name) => format!("unknown name: {name}"),
        ExecutionError::FunctionError { function, message } => {
            format!("{}: {message}", operator(function))
        }
        ExecutionError::UnexpectedType { got, want } => format!("expected {want}, got {got}"),
        ExecutionError::DivisionByZero(_) => "division by zero".to_owned(),
        ExecutionError::RemainderByZero(_) => "remainder of a division by zero".to_owned(),
        ExecutionError::Overflow(op, left, right) => format!(
            "integer overflow in {} {} {}",
            show(left),
            operator(op),
            show(right)
        ),
        ExecutionError::DuplicateKey(key) => format!("map literal repeats the key {}", show(key)),
        ExecutionError::UnsupportedKeyType(key) => {
            format!("{} cannot be a map key", show(key))
        }
        ExecutionError::InvalidArgumentCount { expected, actual } => {
            format!("expected {expected} arguments, got {actual}")
        }
        other => other.to_string(),
    }
}
