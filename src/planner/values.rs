//! Field values: coercion to what a target field can hold, and comparison semantics.
//!
//! Desired values (from expressions) and live values (from the target) go through the same
//! normalisation so that `""` and `null`, `"true"` and `true`, or `Ann@X.com` and `ann@x.com` on
//! an identity field do not show up as changes.

use serde_json::Value;

use crate::model::{FieldSpec, FieldType};

/// Coerces a desired value into what the field can hold, or says why it cannot.
pub(crate) fn desired_value(spec: &FieldSpec, name: &str, raw: &Value) -> Result<Value, String> {
    text_not_scalar(spec, name, raw)?;
    let value = coerce(spec, name, raw)?;
    let value = match (value, spec.empty_means) {
        (Value::Null, Some(default)) => Value::String(default.to_string()),
        (v, _) => v,
    };
    if let (Some(min), Value::String(s)) = (spec.min_len, &value)
        && s.chars().count() < min
    {
        return Err(format!(
            "`{name}` is shorter than {min} characters (leave it blank to let the target generate one)"
        ));
    }
    Ok(value)
}

/// A bool or a number from an expression into a text field (string, email, one of a set) is a
/// type mismatch: writing `"false"` into a name is a config mistake, never what was meant.
/// Only desired values are held to this; live values are read leniently.
fn text_not_scalar(spec: &FieldSpec, name: &str, raw: &Value) -> Result<(), String> {
    let text_field = matches!(
        spec.ty,
        FieldType::String | FieldType::Email | FieldType::Enum(_)
    );
    let kind = match raw {
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        _ => return Ok(()),
    };
    if text_field {
        return Err(format!(
            "type mismatch: `{name}` holds text but the expression gives {kind} ({}): convert it with string(...) or map it to text, e.g. `cond ? \"yes\" : \"no\"`",
            short(raw)
        ));
    }
    Ok(())
}

/// Normalises a value read from the target for comparison; never fails (odd live values are
/// kept as they are and will simply differ).
pub(crate) fn live_value(spec: &FieldSpec, name: &str, raw: &Value) -> Value {
    let value = coerce(spec, name, raw).unwrap_or_else(|_| raw.clone());
    match (value, spec.empty_means) {
        (Value::Null, Some(default)) => Value::String(default.to_string()),
        (v, _) => v,
    }
}

/// Whether two normalised values are the same for this field.
pub(crate) fn same(spec: &FieldSpec, a: &Value, b: &Value) -> bool {
    match (spec.identity, a, b) {
        (Some(norm), Value::String(x), Value::String(y)) => norm.normalise(x) == norm.normalise(y),
        _ => a == b,
    }
}

fn coerce(spec: &FieldSpec, name: &str, raw: &Value) -> Result<Value, String> {
    match raw {
        Value::Null => Ok(Value::Null),
        Value::Array(_) | Value::Object(_) => Err(format!(
            "`{name}` must be a single value, got {}",
            short(raw)
        )),
        _ => match &spec.ty {
            FieldType::String => Ok(non_empty_string(scalar_text(raw))),
            FieldType::Email => {
                let text = scalar_text(raw);
                if text.trim().is_empty() {
                    return Ok(Value::Null);
                }
                if !looks_like_email(text.trim()) {
                    return Err(format!("`{name}` is not an email address: {}", short(raw)));
                }
                Ok(Value::String(text.trim().to_string()))
            }
            FieldType::Bool => match raw {
                Value::Bool(b) => Ok(Value::Bool(*b)),
                Value::String(s) if s.trim().is_empty() => Ok(Value::Null),
                Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                    "true" | "yes" | "1" | "y" => Ok(Value::Bool(true)),
                    "false" | "no" | "0" | "n" => Ok(Value::Bool(false)),
                    _ => Err(format!(
                        "`{name}` must be true or false, got {}",
                        short(raw)
                    )),
                },
                Value::Number(n) if n.as_i64() == Some(1) => Ok(Value::Bool(true)),
                Value::Number(n) if n.as_i64() == Some(0) => Ok(Value::Bool(false)),
                _ => Err(format!(
                    "`{name}` must be true or false, got {}",
                    short(raw)
                )),
            },
            FieldType::Integer => match raw {
                Value::Number(n) if n.is_i64() || n.is_u64() => Ok(raw.clone()),
                Value::Number(n) => match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Value::from(f as i64)),
                    _ => Err(format!(
                        "`{name}` must be a whole number, got {}",
                        short(raw)
                    )),
                },
                Value::String(s) if s.trim().is_empty() => Ok(Value::Null),
                Value::String(s) => s
                    .trim()
                    .parse::<i64>()
                    .map(Value::from)
                    .map_err(|_| format!("`{name}` must be a whole number, got {}", short(raw))),
                _ => Err(format!(
                    "`{name}` must be a whole number, got {}",
                    short(raw)
                )),
            },
            FieldType::Enum(values) => {
                let text = scalar_text(raw);
                if text.is_empty() {
                    return Ok(Value::Null);
                }
                if values.contains(&text.as_str()) {
                    Ok(Value::String(text))
                } else {
                    Err(format!(
                        "`{name}` cannot be {}: the target accepts {}",
                        short(raw),
                        values.join(", ")
                    ))
                }
            }
        },
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn non_empty_string(s: String) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s)
    }
}

fn looks_like_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// A value shortened for messages.
pub(crate) fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::TargetKind;
    use serde_json::json;

    fn spec(kind: TargetKind, name: &str) -> FieldSpec {
        kind.field_table(&["dept".to_string()])
            .lookup(name)
            .unwrap()
    }

    #[test]
    fn desired_values_table() {
        use TargetKind::*;
        let cases: &[(TargetKind, &str, Value, Result<Value, &str>)] = &[
            (MojoHelpdesk, "first_name", json!("Ann"), Ok(json!("Ann"))),
            (MojoHelpdesk, "first_name", json!(""), Ok(Value::Null)),
            (MojoHelpdesk, "first_name", json!(42), Err("type mismatch")),
            (
                MojoHelpdesk,
                "first_name",
                json!(false),
                Err("type mismatch"),
            ),
            (
                MojoHelpdesk,
                "first_name",
                json!(1.5),
                Err("gives a number"),
            ),
            (MojoHelpdesk, "email", json!(true), Err("gives a bool")),
            (MojoHelpdesk, "role", json!(1), Err("type mismatch")),
            (
                MojoHelpdesk,
                "first_name",
                json!(["a"]),
                Err("single value"),
            ),
            (
                MojoHelpdesk,
                "email",
                json!(" Ann@Example.com "),
                Ok(json!("Ann@Example.com")),
            ),
            (
                MojoHelpdesk,
                "email",
                json!("not-an-email"),
                Err("not an email"),
            ),
            (
                MojoHelpdesk,
                "role",
                json!("technician"),
                Ok(json!("technician")),
            ),
            (
                MojoHelpdesk,
                "role",
                json!("wizard"),
                Err("the target accepts user"),
            ),
            (
                MojoHelpdesk,
                "password",
                json!("abc"),
                Err("shorter than 6"),
            ),
            (MojoHelpdesk, "password", json!(""), Ok(Value::Null)),
            (
                MojoHelpdesk,
                "password",
                json!("secret1"),
                Ok(json!("secret1")),
            ),
            (MojoHelpdesk, "group", json!(""), Ok(json!("Individuals"))),
            (MojoHelpdesk, "group", Value::Null, Ok(json!("Individuals"))),
            (
                MojoHelpdesk,
                "custom_field_dept",
                json!("Ops"),
                Ok(json!("Ops")),
            ),
            (RequestTracker, "Privileged", json!("yes"), Ok(json!(true))),
            (RequestTracker, "Privileged", json!(0), Ok(json!(false))),
            (
                RequestTracker,
                "Privileged",
                json!("maybe"),
                Err("true or false"),
            ),
            (Zendesk, "custom_role_id", json!("17"), Ok(json!(17))),
            (Zendesk, "custom_role_id", json!(1.5), Err("whole number")),
        ];
        for (kind, name, input, expected) in cases {
            let got = desired_value(&spec(*kind, name), name, input);
            match (expected, &got) {
                (Ok(want), Ok(have)) => assert_eq!(want, have, "{kind} {name} {input}"),
                (Err(want), Err(have)) => assert!(have.contains(want), "{kind} {name}: {have}"),
                _ => panic!("{kind} {name} {input}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn identity_fields_compare_normalised() {
        let email = spec(TargetKind::MojoHelpdesk, "email");
        assert!(same(&email, &json!("Ann@X.com"), &json!("ann@x.com")));
        let name = spec(TargetKind::MojoHelpdesk, "first_name");
        assert!(!same(&name, &json!("Ann"), &json!("ann")));
    }
}
