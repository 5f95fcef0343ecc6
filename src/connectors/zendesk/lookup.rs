//! Finding a user by identity: after a create of unknown outcome, a create refused because
//! the email or external id is taken, and `Target::find`. Search by email
//! (`/api/v2/users/search?query=email:...`) or exact external id (`?external_id=...`); search
//! matches partial values, so only exact (case-insensitive) matches are kept.

use std::collections::BTreeMap;

use serde_json::Value;

use super::bulk::Item;
use super::users::identity_of;
use crate::http::{HttpClient, HttpError, Request};

/// The id of the user with the identity in `fields` (email, else external id), if any.
pub(super) async fn lookup(
    client: &HttpClient,
    fields: &BTreeMap<String, Value>,
) -> Result<Option<String>, HttpError> {
    let identity = identity_of(fields);
    let found = search(client, &identity).await?;
    // Search goes by one key; the user a create made holds every key it sent. A user with the
    // same email but another external id (matched by neither in the plan) is someone else's.
    Ok(found
        .iter()
        .find(|u| holds_all(u, &identity))
        .and_then(|u| super::source::user_id(u).ok()))
}

/// True when the Zendesk user `u` carries every identity value (both compare without case).
fn holds_all(u: &Value, identity: &BTreeMap<String, String>) -> bool {
    identity.iter().all(|(k, want)| {
        u.get(k)
            .and_then(Value::as_str)
            .is_some_and(|have| have.trim().to_lowercase() == want.trim().to_lowercase())
    })
}

/// Users carrying this identity exactly: search by email, or by external id.
pub(super) async fn search(
    client: &HttpClient,
    identity: &BTreeMap<String, String>,
) -> Result<Vec<Value>, HttpError> {
    let (req, key, want) = if let Some(email) = identity.get("email") {
        let req = Request::get("api/v2/users/search").query("query", format!("email:{email}"));
        (req, "email", email)
    } else if let Some(ext) = identity.get("external_id") {
        let req = Request::get("api/v2/users/search").query("external_id", ext);
        (req, "external_id", ext)
    } else {
        return Ok(vec![]);
    };
    let body: Value = client.send_json(req).await?;
    let users = body
        .get("users")
        .and_then(Value::as_array)
        .ok_or_else(|| HttpError::Decode {
            what: "GET /api/v2/users/search".to_string(),
            cause: "no `users` list in the answer".to_string(),
        })?;
    // Search matches partial values: keep exact matches only (both are case-insensitive).
    Ok(users
        .iter()
        .filter(|u| {
            u.get(key)
                .and_then(Value::as_str)
                .is_some_and(|v| v.to_lowercase() == want.to_lowercase())
        })
        .cloned()
        .collect())
}

/// True when a 422 says the email or external id is taken by another user.
pub(super) fn taken(e: &HttpError) -> bool {
    let HttpError::Status { body, .. } = e else {
        return false;
    };
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return false;
    };
    let Some(details) = v.get("details").and_then(Value::as_object) else {
        return false;
    };
    details
        .values()
        .flat_map(|d| d.as_array().cloned().unwrap_or_default())
        .any(|d| {
            let item = Item::Failed {
                code: d
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                details: d
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            };
            item.already_exists()
        })
}
