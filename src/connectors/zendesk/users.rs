//! A Zendesk user ↔ headcount's fields: how `list` shows a user (`organization` by name,
//! `user_fields.<key>`, `active` = `active && !suspended`) and the `user` object a create or
//! update sends.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::orgs::{OrgCache, Orgs};
use crate::connectors::{ConnectorError, LiveAccount};
use crate::http::HttpClient;

/// Fields sent and read under the same name, as text.
const PLAIN: [&str; 5] = ["email", "external_id", "name", "phone", "role"];
pub(super) const USER_FIELDS: &str = "user_fields.";

/// Why an update never changes `email`, and what the admin does instead.
const CHANGED_EMAIL: &str = "`email` cannot be changed through the API: Zendesk writes it on create only, and an update would add a secondary email instead of replacing the primary one. Make the new address primary in Zendesk (the user's profile, or the Make Identity Primary API), then run plan again";

/// A user as a live account.
pub(super) fn to_live(
    user: &Value,
    user_fields: &[String],
    orgs: &Orgs,
) -> Result<LiveAccount, ConnectorError> {
    let id = super::source::user_id(user)
        .map_err(|cause| ConnectorError::BadData(format!("GET /api/v2/users: {cause}")))?;
    let mut fields = BTreeMap::new();
    for name in PLAIN {
        fields.insert(name.to_string(), text(user.get(name)));
    }
    let role = match user.get("custom_role_id") {
        Some(Value::Number(n)) => json!(n),
        _ => Value::Null,
    };
    fields.insert("custom_role_id".to_string(), role);
    let org = match user.get("organization_id").and_then(Value::as_i64) {
        Some(oid) => json!(orgs.name(oid)),
        None => Value::Null,
    };
    fields.insert("organization".to_string(), org);
    for key in user_fields {
        let v = user
            .get("user_fields")
            .and_then(|f| f.get(key))
            .cloned()
            .unwrap_or(Value::Null);
        let v = match v {
            Value::String(s) if s.is_empty() => Value::Null,
            v => v,
        };
        fields.insert(format!("{USER_FIELDS}{key}"), v);
    }
    let active = user.get("active").and_then(Value::as_bool).unwrap_or(true)
        && !user
            .get("suspended")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    Ok(LiveAccount { id, active, fields })
}

pub(super) fn to_live_all(
    users: &[Value],
    user_fields: &[String],
    orgs: Option<&Orgs>,
) -> Result<Vec<LiveAccount>, ConnectorError> {
    let empty = Orgs::default();
    let orgs = orgs.unwrap_or(&empty);
    users
        .iter()
        .map(|u| to_live(u, user_fields, orgs))
        .collect()
}

/// The `user` object of a create or update: headcount's names → Zendesk's, the
/// organization resolved (created when new).
pub(super) async fn body(
    fields: &BTreeMap<String, Value>,
    create: bool,
    orgs: &OrgCache,
    client: &HttpClient,
) -> Result<Map<String, Value>, ConnectorError> {
    let mut body = Map::new();
    let mut user_fields = Map::new();
    for (name, value) in fields {
        if create && value.is_null() {
            continue;
        }
        match name.as_str() {
            "email" if !create => {
                return Err(ConnectorError::rejected(CHANGED_EMAIL));
            }
            "organization" => {
                let name = value.as_str().unwrap_or_default();
                let id = orgs.id_for(client, name).await?;
                if !(create && id.is_null()) {
                    body.insert("organization_id".to_string(), id);
                }
            }
            "custom_role_id" => {
                body.insert(name.clone(), integer(value)?);
            }
            other => match other.strip_prefix(USER_FIELDS) {
                Some(key) => {
                    user_fields.insert(key.to_string(), value.clone());
                }
                None => {
                    body.insert(other.to_string(), value.clone());
                }
            },
        }
    }
    if !user_fields.is_empty() {
        body.insert("user_fields".to_string(), Value::Object(user_fields));
    }
    Ok(body)
}

/// A numeric id as a JSON number (Zendesk's ids are integers).
pub(super) fn id_value(id: &str) -> Value {
    id.parse::<u64>().map_or_else(|_| json!(id), |n| json!(n))
}

/// An integer field (`custom_role_id`) from a number or a string of digits.
pub(super) fn integer(v: &Value) -> Result<Value, ConnectorError> {
    match v {
        Value::Null => Ok(Value::Null),
        Value::Number(n) if n.is_u64() => Ok(v.clone()),
        Value::String(s) if s.trim().is_empty() => Ok(Value::Null),
        Value::String(s) => s.trim().parse::<u64>().map(|n| json!(n)).map_err(|_| {
            ConnectorError::rejected(format!(
                "`custom_role_id` {s:?} is not a Zendesk custom role id (a number)"
            ))
        }),
        other => Err(ConnectorError::rejected(format!(
            "`custom_role_id` {other} is not a Zendesk custom role id (a number)"
        ))),
    }
}

/// The identity of a create: its email, else its external id.
pub(super) fn identity_of(fields: &BTreeMap<String, Value>) -> BTreeMap<String, String> {
    ["email", "external_id"]
        .iter()
        .filter_map(|k| {
            let v = fields.get(*k)?.as_str()?.trim();
            (!v.is_empty()).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// The user a create is for, in messages.
pub(super) fn who(fields: &BTreeMap<String, Value>) -> String {
    let id = identity_of(fields);
    id.get("email")
        .or_else(|| id.get("external_id"))
        .cloned()
        .unwrap_or_else(|| "a user without email or external_id".to_string())
}

/// A text field as the planner compares it: a string, or null when absent or empty.
pub(super) fn text(v: Option<&Value>) -> Value {
    match v {
        Some(Value::String(s)) if !s.is_empty() => json!(s),
        Some(Value::Number(n)) => json!(n.to_string()),
        _ => Value::Null,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_listed_with_names_and_inactive_when_suspended() {
        let user = json!({"id": 5, "email": "a@x.io", "name": "A", "phone": "", "role": "agent",
            "custom_role_id": 7, "organization_id": 9, "active": true, "suspended": true,
            "user_fields": {"dept": "Ops", "other": "x"}});
        let orgs = Orgs::default();
        let acc = to_live(&user, &["dept".to_string()], &orgs).unwrap();
        assert_eq!(acc.id, "5");
        assert!(!acc.active);
        assert_eq!(acc.fields["phone"], Value::Null);
        assert_eq!(acc.fields["custom_role_id"], json!(7));
        assert_eq!(acc.fields["organization"], json!("organization 9"));
        assert_eq!(acc.fields["user_fields.dept"], json!("Ops"));
        assert!(!acc.fields.contains_key("user_fields.other"));
        let err = to_live(&json!({"email": "b@x.io"}), &[], &orgs).unwrap_err();
        assert!(err.to_string().contains("without an `id`"), "{err}");
    }

    #[test]
    fn custom_role_ids_are_numbers() {
        assert_eq!(integer(&json!("42")).unwrap(), json!(42));
        assert_eq!(integer(&json!(42)).unwrap(), json!(42));
        assert_eq!(integer(&json!("")).unwrap(), Value::Null);
        let err = integer(&json!("admin")).unwrap_err().to_string();
        assert!(err.contains("not a Zendesk custom role id"), "{err}");
        assert!(integer(&json!(-1)).is_err());
    }

    #[test]
    fn identity_prefers_email_then_external_id() {
        let f = |pairs: &[(&str, &str)]| -> BTreeMap<String, Value> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect()
        };
        assert_eq!(
            who(&f(&[("email", "a@x.io"), ("external_id", "e1")])),
            "a@x.io"
        );
        assert_eq!(who(&f(&[("email", " "), ("external_id", "e1")])), "e1");
        assert_eq!(identity_of(&f(&[("name", "A")])).len(), 0);
        assert_eq!(id_value("12"), json!(12));
        assert_eq!(id_value("x"), json!("x"));
    }
}
