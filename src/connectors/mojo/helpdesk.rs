//! The `mojo_helpdesk` target: Mojo Helpdesk's REST API v2 (`/api/v2/users`, `/api/v2/groups`).
//!
//! * `list` reads every user page by page (`page`/`per_page`; a bare JSON array, no total: a
//!   short or empty page is the last) and every group once per run, so `group` is shown by name.
//! * `role` is Mojo's `role_id` by name; `group` is the user's company (`company_id`) by name,
//!   created on demand, and a user without a company is in `Individuals`.
//! * A create is a non-idempotent POST: when its answer is lost, the user is looked up with
//!   `get_by_email` before anything else, so a retry never makes a second account. Mojo answers
//!   an unknown email (and an unknown id) with `400`, not `404`.
//! * Updates are a PUT of the changed fields only; email is not updatable in Mojo (the planner
//!   treats it as create-only) and passwords are set on create only.
//! * A `401` on a write after reads succeeded means the key is read-only (or its agent is below
//!   Manager): said so, with where to make a read-write key.
//!
//! Mojo documents no rate limit; [`DEFAULT_RATE_LIMIT`] stays well under what a helpdesk UI
//! itself sends, and 429/Retry-After is honoured by the HTTP layer anyway.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use crate::connectors::{ApplyOptions, ConnectorError, LiveAccount, OpResult, Target, TargetOp};
use crate::http::{Auth, HttpClient, HttpClientBuilder, HttpError, Page, Request, paging};
use crate::model::{HttpSettings, RateLimit};

/// 120 requests a minute (Mojo publishes no limit).
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    count: 120,
    per: Duration::from_secs(60),
};
/// Users and groups asked for per page.
pub const PER_PAGE: usize = 100;
/// Creates resent after a lost answer and a lookup that found nothing.
const CREATE_ATTEMPTS: u32 = 3;
/// The group of a user without a company.
pub const INDIVIDUALS: &str = "Individuals";

/// Mojo's roles by `role_id` (API v2 `UserCreateRequest.role_id`).
pub const ROLES: [(&str, i64); 6] = [
    ("user", 10),
    ("restricted_technician", 15),
    ("technician", 20),
    ("manager", 30),
    ("admin", 35),
    ("owner", 40),
];

/// Profile fields sent and read under the same name.
const PLAIN: [&str; 8] = [
    "email",
    "first_name",
    "middle_name",
    "last_name",
    "work_phone",
    "cell_phone",
    "home_phone",
    "user_notes",
];

/// The HTTP client of a Mojo account, to build: the access key as a query parameter.
pub fn client(
    name: &str,
    base_url: &str,
    access_key: SecretString,
    settings: HttpSettings,
) -> Result<HttpClientBuilder, HttpError> {
    Ok(HttpClient::builder(name, base_url)
        .auth(Auth::Query {
            param: "access_key".to_string(),
            value: access_key,
        })
        .message_hook(std::sync::Arc::new(|body: &[u8]| mojo_message(body)))
        .rate_limit(settings.rate_limit.unwrap_or(DEFAULT_RATE_LIMIT))
        .timeout(settings.timeout))
}

/// The human message of Mojo's three error shapes: `{"error": "..." | [...]}`,
/// `{"message": "...", "messages": [...]}` and `{"code": "...", "messages": [...]}`.
pub fn mojo_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let texts = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => vec![],
        }
    };
    let mut parts = texts(v.get("error").unwrap_or(&Value::Null));
    if let Some(m) = v.get("message").and_then(Value::as_str) {
        parts.push(m.to_string());
    }
    for m in texts(v.get("messages").unwrap_or(&Value::Null)) {
        if !parts.contains(&m) {
            parts.push(m);
        }
    }
    if parts.is_empty() {
        return None;
    }
    let text = parts.join("; ");
    Some(match v.get("code").and_then(Value::as_str) {
        Some(code) => format!("{code}: {text}"),
        None => text,
    })
}

/// Group names and ids, read once per run and grown as groups are created.
#[derive(Default)]
struct Groups {
    by_id: HashMap<i64, String>,
    /// Lower-cased name → id (Mojo group names are matched without regard to case).
    by_name: HashMap<String, i64>,
}

impl Groups {
    fn add(&mut self, id: i64, name: &str) {
        self.by_id.insert(id, name.to_string());
        self.by_name.entry(name.to_lowercase()).or_insert(id);
    }
}

/// The `mojo_helpdesk` target.
pub struct MojoHelpdeskTarget {
    client: HttpClient,
    custom_fields: Vec<String>,
    groups: tokio::sync::Mutex<Option<Groups>>,
}

impl MojoHelpdeskTarget {
    pub fn new(client: HttpClient, custom_fields: Vec<String>) -> Self {
        MojoHelpdeskTarget {
            client,
            custom_fields,
            groups: tokio::sync::Mutex::new(None),
        }
    }

    pub fn client(&self) -> &HttpClient {
        &self.client
    }

    /// Every page of a bare-array list, `page`/`per_page` until a short page.
    async fn list_all(&self, path: &str) -> Result<Vec<Value>, HttpError> {
        let first = Request::get(path)
            .query("page", 1)
            .query("per_page", PER_PAGE);
        self.client
            .collect_pages(first, |req, resp| {
                let items: Vec<Value> = resp.json()?;
                let page: u64 = req
                    .query
                    .iter()
                    .find(|(k, _)| k == "page")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(1);
                let next = paging::next_by_page_number(req, "page", page, items.len(), PER_PAGE);
                Ok(Page { items, next })
            })
            .await
    }

    /// The groups, read on first use.
    async fn groups(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Groups>>, ConnectorError> {
        let mut guard = self.groups.lock().await;
        if guard.is_none() {
            let mut groups = Groups::default();
            for g in self.list_all("api/v2/groups").await? {
                if let (Some(id), Some(name)) = (
                    g.get("id").and_then(Value::as_i64),
                    g.get("name").and_then(Value::as_str),
                ) {
                    groups.add(id, name);
                }
            }
            *guard = Some(groups);
        }
        Ok(guard)
    }

    /// The id of the group `name`, created when missing.
    async fn group_id(&self, name: &str) -> Result<i64, ConnectorError> {
        let mut guard = self.groups().await?;
        let groups = guard.get_or_insert_with(Groups::default);
        if let Some(id) = groups.by_name.get(&name.to_lowercase()) {
            return Ok(*id);
        }
        // Holding the lock while creating: two creates of one new group never race.
        let created: Value = self
            .client
            .send_json(Request::post("api/v2/groups").json(json!({ "name": name })))
            .await
            .map_err(|e| write_error(e, &format!("creating the group {name:?}")))?;
        let id = created.get("id").and_then(Value::as_i64).ok_or_else(|| {
            ConnectorError::BadData(format!(
                "POST /api/v2/groups answered without an id for the group {name:?}"
            ))
        })?;
        tracing::info!("created the Mojo group {name:?} (id {id})");
        groups.add(id, name);
        Ok(id)
    }

    /// A user as a live account; groups give `group` its name.
    fn to_live(&self, user: &Value, groups: &Groups) -> Result<LiveAccount, ConnectorError> {
        let id = match user.get("id") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(ConnectorError::BadData(
                    "GET /api/v2/users returned a user without an id".to_string(),
                ));
            }
        };
        let mut fields = BTreeMap::new();
        for name in PLAIN {
            fields.insert(name.to_string(), text(user.get(name)));
        }
        let role = match user.get("role_id").and_then(Value::as_i64) {
            Some(rid) => ROLES
                .iter()
                .find(|(_, r)| *r == rid)
                .map_or_else(|| json!(rid.to_string()), |(n, _)| json!(n)),
            None => Value::Null,
        };
        fields.insert("role".to_string(), role);
        let group = match user.get("company_id").and_then(Value::as_i64) {
            Some(cid) => groups
                .by_id
                .get(&cid)
                .map_or_else(|| json!(format!("group {cid}")), |n| json!(n)),
            None => json!(INDIVIDUALS),
        };
        fields.insert("group".to_string(), group);
        for key in &self.custom_fields {
            let name = format!("custom_field_{key}");
            fields.insert(name.clone(), text(user.get(&name)));
        }
        Ok(LiveAccount {
            id,
            active: user
                .get("is_active")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            fields,
        })
    }

    /// The request body of `fields` (headcount names → Mojo's), with `group` resolved.
    async fn body(
        &self,
        fields: &BTreeMap<String, Value>,
        create: bool,
    ) -> Result<Map<String, Value>, ConnectorError> {
        let mut body = Map::new();
        for (name, value) in fields {
            match name.as_str() {
                "email" if !create => {} // not updatable: the planner never asks
                "password" => {
                    if create && let Some(p) = value.as_str().filter(|p| !p.is_empty()) {
                        body.insert("password".to_string(), json!(p));
                    }
                }
                "role" => {
                    let role = value.as_str().unwrap_or("user");
                    let rid = ROLES
                        .iter()
                        .find(|(n, _)| *n == role)
                        .map(|(_, r)| *r)
                        .ok_or_else(|| {
                            ConnectorError::rejected(format!(
                                "`role` {role:?} is not a Mojo role: use one of user, restricted_technician, technician, manager, admin, owner"
                            ))
                        })?;
                    body.insert("role_id".to_string(), json!(rid));
                }
                "group" => {
                    let group = value
                        .as_str()
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .unwrap_or(INDIVIDUALS);
                    let id = self.group_id(group).await?;
                    body.insert("company_id".to_string(), json!(id));
                }
                other => {
                    body.insert(other.to_string(), value.clone());
                }
            }
        }
        Ok(body)
    }

    /// After a create of unknown outcome: the user's id if the email exists.
    async fn find_by_email(&self, email: &str) -> Result<Option<String>, ConnectorError> {
        let req = Request::get("api/v2/users/get_by_email").query("email", email);
        match self.client.send_json::<Value>(req).await {
            Ok(user) => Ok(user.get("id").map(|id| match id {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })),
            // Mojo answers an unknown email with 400 `Invalid user email`, not 404.
            Err(e) if matches!(e.status(), Some(400 | 404)) => Ok(None),
            Err(e) => Err(ConnectorError::Ambiguous {
                what: format!("POST /api/v2/users ({email})"),
                cause: format!("looking the user up failed: {e}; run plan again before retrying"),
            }),
        }
    }

    async fn create(
        &self,
        fields: &BTreeMap<String, Value>,
        active: bool,
        notify: bool,
    ) -> OpResult {
        let email = fields
            .get("email")
            .and_then(Value::as_str)
            .filter(|e| !e.trim().is_empty())
            .ok_or_else(|| {
                ConnectorError::rejected(
                    "a Mojo user needs `email` (its unique key): map it in the sync's fields",
                )
            })?
            .to_string();
        let mut body = self.body(fields, true).await?;
        body.insert("is_active".to_string(), json!(active));
        let body = Value::Object(body);
        let mut last = None;
        for _ in 0..CREATE_ATTEMPTS {
            let req = Request::post("api/v2/users")
                .query("send_welcome_email", if notify { 1 } else { 0 })
                .json(body.clone());
            match self.client.send(req).await {
                Ok(resp) => {
                    let created: Value = serde_json::from_slice(&resp.body).unwrap_or_default();
                    if let Some(id) = created.get("id").filter(|v| !v.is_null()) {
                        return Ok(match id {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        });
                    }
                    // Created, but no id in the answer: find it rather than POST again.
                    return self.find_by_email(&email).await?.ok_or_else(|| {
                        ConnectorError::BadData(format!(
                            "POST /api/v2/users answered {} without an id, and {email} is not found",
                            resp.status
                        ))
                    });
                }
                Err(e) if e.is_ambiguous() => {
                    tracing::info!("create of {email}: {e}; looking it up by email");
                    if let Some(id) = self.find_by_email(&email).await? {
                        return Ok(id);
                    }
                    last = Some(e);
                }
                Err(e) => return Err(write_error(e, &format!("creating {email}"))),
            }
        }
        Err(last.map(ConnectorError::from).unwrap_or_else(|| {
            ConnectorError::Unavailable(format!("create of {email} failed {CREATE_ATTEMPTS} times"))
        }))
    }

    async fn modify(
        &self,
        id: &str,
        fields: &BTreeMap<String, Value>,
        active: Option<bool>,
    ) -> OpResult {
        let mut body = self.body(fields, false).await?;
        if let Some(a) = active {
            body.insert("is_active".to_string(), json!(a));
        }
        if body.is_empty() {
            return Ok(id.to_string());
        }
        self.client
            .send(
                Request::put(format!("api/v2/users/{}", crate::http::path_segment(id)))
                    .json(Value::Object(body)),
            )
            .await
            .map_err(|e| write_error(e, &format!("updating user {id}")))?;
        Ok(id.to_string())
    }

    async fn delete(&self, id: &str) -> OpResult {
        match self
            .client
            .send(Request::delete(format!(
                "api/v2/users/{}",
                crate::http::path_segment(id)
            )))
            .await
        {
            Ok(_) => Ok(id.to_string()),
            // Gone already (an earlier attempt landed, or someone deleted it).
            Err(e) if e.status() == Some(404) => Ok(id.to_string()),
            Err(e) => Err(write_error(e, &format!("deleting user {id}"))),
        }
    }

    async fn run(&self, op: &TargetOp) -> OpResult {
        match op {
            TargetOp::Create {
                fields,
                active,
                notify,
            } => self.create(fields, *active, *notify).await,
            TargetOp::Modify {
                id, fields, active, ..
            } => self.modify(id, fields, *active).await,
            TargetOp::Delete { id } => self.delete(id).await,
        }
    }
}

/// A write's failure, with Mojo's read-only key explained: reads work with such a key, writes
/// get `401`.
fn write_error(e: HttpError, doing: &str) -> ConnectorError {
    if e.status() == Some(401) {
        return ConnectorError::Auth {
            message: format!(
                "{e}. Mojo refused {doing} although reads work: the access key is read-only, or its agent is below the Manager role. Generate a read-write key from an admin or owner account (My profile > Dev settings > API keys) and point `access_key` at it"
            ),
        };
    }
    e.into()
}

/// A text field as the planner compares it: a string, or null when absent or empty.
fn text(v: Option<&Value>) -> Value {
    match v {
        Some(Value::String(s)) if !s.is_empty() => json!(s),
        Some(Value::Number(n)) => json!(n.to_string()),
        _ => Value::Null,
    }
}

#[async_trait]
impl Target for MojoHelpdeskTarget {
    async fn list(&self) -> Result<Vec<LiveAccount>, ConnectorError> {
        let users = self.list_all("api/v2/users").await?;
        let guard = self.groups().await?;
        let empty = Groups::default();
        let groups = guard.as_ref().unwrap_or(&empty);
        users.iter().map(|u| self.to_live(u, groups)).collect()
    }

    /// By email through `get_by_email` when the identity has it (Mojo's unique key);
    /// otherwise every user.
    async fn find(
        &self,
        identity: &BTreeMap<String, String>,
    ) -> Result<Vec<LiveAccount>, ConnectorError> {
        let Some(email) = identity.get("email") else {
            return self.list().await;
        };
        let req = Request::get("api/v2/users/get_by_email").query("email", email);
        let user = match self.client.send_json::<Value>(req).await {
            Ok(user) => user,
            // Mojo answers an unknown email with 400 `Invalid user email`, not 404.
            Err(e) if matches!(e.status(), Some(400 | 404)) => return Ok(vec![]),
            Err(e) => return Err(e.into()),
        };
        let guard = self.groups().await?;
        let empty = Groups::default();
        Ok(vec![self.to_live(&user, guard.as_ref().unwrap_or(&empty))?])
    }

    fn write_window(&self) -> crate::connectors::WriteWindow {
        self.client.write_window()
    }

    async fn apply(
        &self,
        ops: &[TargetOp],
        opts: &ApplyOptions,
        done: &(dyn Fn(usize, OpResult) + Send + Sync),
    ) -> Result<(), ConnectorError> {
        crate::connectors::for_each_op(ops, opts, |_, op| self.run(op), done).await;
        Ok(())
    }

    fn http_stats(&self) -> Option<crate::http::HttpStats> {
        Some(self.client.stats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_error_shapes_read_as_one_message() {
        assert_eq!(
            mojo_message(br#"{"error":"Invalid user email"}"#).as_deref(),
            Some("Invalid user email")
        );
        assert_eq!(
            mojo_message(br#"{"error":["Email is invalid","Email has already been taken"]}"#)
                .as_deref(),
            Some("Email is invalid; Email has already been taken")
        );
        assert_eq!(
            mojo_message(
                br#"{"message":"This API key is read-only and cannot perform write operations.","messages":["This API key is read-only and cannot perform write operations."]}"#
            )
            .as_deref(),
            Some("This API key is read-only and cannot perform write operations.")
        );
        assert_eq!(
            mojo_message(br#"{"code":"invalid_request","messages":["Invalid User ID."]}"#)
                .as_deref(),
            Some("invalid_request: Invalid User ID.")
        );
        assert_eq!(mojo_message(b"<html>502</html>"), None);
        assert_eq!(mojo_message(br#"{"other":1}"#), None);
    }
}
