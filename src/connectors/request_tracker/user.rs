//! An RT user record as headcount sees it: the JSON of `GET /REST/2.0/user/{id}` turned into a
//! live account, and field values turned into the JSON RT takes on `POST /user` / `PUT`.
//!
//! RT 5.0.3 serialises `Disabled` as a string (`"0"`/`"1"`) and `Privileged` as a number; both
//! are read leniently (number, numeric string or bool). Empty text fields are absent or `""`
//! in RT's answers; both read as `null`, which is also how a cleared field is written (`""`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::connectors::{ConnectorError, LiveAccount};

/// Text fields read and written under the same name.
pub(super) const TEXT_FIELDS: [&str; 8] = [
    "Name",
    "EmailAddress",
    "RealName",
    "Organization",
    "WorkPhone",
    "MobilePhone",
    "HomePhone",
    "Comments",
];

/// Users RT itself needs (`RT_System`, `Nobody`): never listed as manageable accounts.
pub(super) const SYSTEM_USERS: [&str; 2] = ["RT_System", "Nobody"];

/// True for RT's own system users.
pub(super) fn is_system(name: &str) -> bool {
    SYSTEM_USERS.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// A user's numeric id as the account id (stable across renames, unlike the Name).
pub(super) fn numeric_id(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) if n.is_u64() => Some(n.to_string()),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Some(s.clone())
        }
        _ => None,
    }
}

/// A flag RT sends as `1`, `"1"`, `true` (set) or `0`, `"0"`, `""`, `false`, absent (unset).
/// `None` for anything else (an answer we do not understand).
pub(super) fn flag(v: Option<&Value>) -> Option<bool> {
    match v {
        None | Some(Value::Null) => Some(false),
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::Number(n)) => n.as_i64().map(|n| n != 0),
        Some(Value::String(s)) => match s.trim() {
            "" | "0" => Some(false),
            "1" => Some(true),
            _ => None,
        },
        _ => None,
    }
}

/// A text field as the planner compares it: a string, or null when absent or empty.
fn text(v: Option<&Value>) -> Value {
    match v {
        Some(Value::String(s)) if !s.is_empty() => json!(s),
        Some(Value::Number(n)) => json!(n.to_string()),
        _ => Value::Null,
    }
}

/// `GET /user/{id}`'s answer as a live account. `what` names the request, for errors.
pub(super) fn to_live(user: &Value, what: &str) -> Result<LiveAccount, ConnectorError> {
    let bad = |why: &str| {
        ConnectorError::BadData(format!(
            "request_tracker: {what} answered a user {why}; expected RT 5's user record (`id`, `Name`, `Disabled`, `Privileged`)"
        ))
    };
    if !user.is_object() {
        return Err(bad("that is not a JSON object"));
    }
    let id = numeric_id(user.get("id")).ok_or_else(|| bad("without a numeric `id`"))?;
    let mut fields = BTreeMap::new();
    for name in TEXT_FIELDS {
        fields.insert(name.to_string(), text(user.get(name)));
    }
    if fields.get("Name").is_none_or(Value::is_null) {
        return Err(bad("without a `Name`"));
    }
    // RT shows `Disabled` only to users with the AdminUsers right; without it every user
    // would read as active, and leavers would never be seen as disabled.
    if user.get("Disabled").is_none() {
        return Err(ConnectorError::Permission {
            message: format!(
                "request_tracker: {what} answered without `Disabled`: the token's user lacks RT's AdminUsers right (RT shows only a summary of users then). Grant AdminUsers (Admin > Global > Group Rights or User Rights) to the user whose token `token` holds"
            ),
        });
    }
    let privileged =
        flag(user.get("Privileged")).ok_or_else(|| bad("whose `Privileged` is neither 0 nor 1"))?;
    fields.insert("Privileged".to_string(), json!(privileged));
    let disabled =
        flag(user.get("Disabled")).ok_or_else(|| bad("whose `Disabled` is neither 0 nor 1"))?;
    Ok(LiveAccount {
        id,
        active: !disabled,
        fields,
    })
}

/// The JSON body of a create or update: text fields as strings (`null` clears: `""`),
/// `Privileged` as 0/1, plus `Disabled` when the active flag is set.
pub(super) fn body(
    fields: &BTreeMap<String, Value>,
    active: Option<bool>,
) -> Result<Map<String, Value>, ConnectorError> {
    let mut body = Map::new();
    for (name, value) in fields {
        if name == "Privileged" {
            let on = match value {
                Value::Null => false,
                other => flag(Some(other)).ok_or_else(|| {
                    ConnectorError::rejected(format!(
                        "`Privileged` must be true or false, not {other}"
                    ))
                })?,
            };
            body.insert(name.clone(), json!(u8::from(on)));
        } else if TEXT_FIELDS.contains(&name.as_str()) {
            let v = match value {
                Value::Null => json!(""),
                Value::String(s) => json!(s),
                Value::Number(_) | Value::Bool(_) => json!(value.to_string()),
                other => {
                    return Err(ConnectorError::rejected(format!(
                        "`{name}` must be text, not {other}"
                    )));
                }
            };
            body.insert(name.clone(), v);
        } else {
            return Err(ConnectorError::rejected(format!(
                "`{name}` is not a Request Tracker user field (see `headcount fields request_tracker`)"
            )));
        }
    }
    if let Some(a) = active {
        body.insert("Disabled".to_string(), json!(u8::from(!a)));
    }
    Ok(body)
}

/// The fields of `wanted` whose value in `live` differs (RT did not take them). Emails are
/// compared without regard to case, text after trimming (RT trims what it stores).
pub(super) fn not_taken(
    live: &LiveAccount,
    wanted: &BTreeMap<String, Value>,
    active: Option<bool>,
) -> Vec<String> {
    let norm = |name: &str, v: &Value| -> Value {
        match v {
            Value::String(s) if s.trim().is_empty() => Value::Null,
            Value::String(s) if name == "EmailAddress" => json!(s.trim().to_lowercase()),
            Value::String(s) => json!(s.trim()),
            Value::Null if name == "Privileged" => json!(false),
            other => other.clone(),
        }
    };
    let mut missed: Vec<String> = wanted
        .iter()
        .filter(|(k, v)| {
            let have = live.fields.get(k.as_str()).unwrap_or(&Value::Null);
            norm(k, have) != norm(k, v)
        })
        .map(|(k, _)| k.clone())
        .collect();
    if active.is_some_and(|a| a != live.active) {
        missed.push("Disabled".to_string());
    }
    missed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rt_5_0_3_user_records_read_as_live_accounts() {
        let user = json!({"id": 27, "Name": "alice", "EmailAddress": "alice@example.com",
            "RealName": "Alice", "Disabled": "0", "Privileged": 1, "Comments": "a\nb",
            "WorkPhone": ""});
        let acc = to_live(&user, "GET /REST/2.0/user/27").unwrap();
        assert_eq!(acc.id, "27");
        assert!(acc.active);
        assert_eq!(acc.fields["Privileged"], json!(true));
        assert_eq!(acc.fields["WorkPhone"], Value::Null);
        assert_eq!(acc.fields["HomePhone"], Value::Null);
        assert_eq!(acc.fields["Comments"], json!("a\nb"));
        let user = json!({"id": "31", "Name": "bob", "Disabled": "1", "Privileged": 0});
        let acc = to_live(&user, "x").unwrap();
        assert!(!acc.active);
        assert_eq!(acc.fields["Privileged"], json!(false));
    }

    #[test]
    fn a_summary_without_disabled_is_a_permission_error_never_an_active_user() {
        let summary = json!({"id": 27, "Name": "alice", "Privileged": 1, "_hyperlinks": []});
        let err = to_live(&summary, "GET /REST/2.0/user/27").unwrap_err();
        assert!(matches!(err, ConnectorError::Permission { .. }), "{err:?}");
        assert!(err.to_string().contains("AdminUsers"), "{err}");
    }

    #[test]
    fn unexpected_user_records_are_errors_naming_the_request() {
        for bad in [
            json!([1, 2]),
            json!({"Name": "x"}),
            json!({"id": "alice", "Name": "alice"}),
            json!({"id": 3}),
            json!({"id": 3, "Name": "x", "Disabled": "maybe"}),
            json!({"id": 3, "Name": "x", "Disabled": "0", "Privileged": {"a": 1}}),
        ] {
            let err = to_live(&bad, "GET /REST/2.0/user/3")
                .unwrap_err()
                .to_string();
            assert!(err.contains("GET /REST/2.0/user/3"), "{err}");
            assert!(err.contains("request_tracker"), "{err}");
        }
    }

    #[test]
    fn bodies_carry_flags_as_numbers_and_clear_with_empty_strings() {
        let fields = BTreeMap::from([
            ("Privileged".to_string(), json!(true)),
            ("RealName".to_string(), Value::Null),
            ("WorkPhone".to_string(), json!("+1 555")),
        ]);
        let b = body(&fields, Some(false)).unwrap();
        assert_eq!(
            Value::Object(b),
            json!({"Privileged": 1, "RealName": "", "WorkPhone": "+1 555", "Disabled": 1})
        );
        let b = body(&BTreeMap::new(), Some(true)).unwrap();
        assert_eq!(Value::Object(b), json!({"Disabled": 0}));
        let bad = BTreeMap::from([("Password".to_string(), json!("x"))]);
        assert!(body(&bad, None).is_err());
    }

    #[test]
    fn fields_rt_did_not_take_are_named() {
        let acc = to_live(
            &json!({"id": 1, "Name": "a", "EmailAddress": "A@Example.com", "Disabled": "0", "Privileged": 0}),
            "x",
        )
        .unwrap();
        let wanted = BTreeMap::from([
            ("EmailAddress".to_string(), json!("a@example.com")),
            ("RealName".to_string(), json!("")),
            ("Privileged".to_string(), json!(true)),
        ]);
        assert_eq!(not_taken(&acc, &wanted, Some(true)), vec!["Privileged"]);
        assert_eq!(
            not_taken(&acc, &BTreeMap::new(), Some(false)),
            vec!["Disabled"]
        );
    }

    #[test]
    fn system_users_are_known() {
        assert!(is_system("RT_System") && is_system("nobody"));
        assert!(!is_system("root"));
    }
}
