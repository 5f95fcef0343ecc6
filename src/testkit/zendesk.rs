//! An in-memory Zendesk Support (the users, organizations and job status endpoints) behind the
//! [`super::fault::FaultLayer`], answering as the vendor's documentation says:
//!
//! * Basic auth `{email}/token:{api_token}`; anything else gets `401 {"error": "Couldn't
//!   authenticate you"}`.
//! * `GET /api/v2/users` and `GET /api/v2/organizations` with cursor paging (`page[size]` at
//!   most 100, `page[after]`; `meta.has_more`, `meta.after_cursor`, `links.next`) and the
//!   user filters `role`, `role[]` (repeated), `permission_set` (custom role id) and
//!   `external_id`.
//! * `GET /api/v2/users/search` (`query=email:...` or `external_id=...`, offset shape), `GET`,
//!   `PUT`, `DELETE /api/v2/users/{id}`, `POST /api/v2/users`.
//! * `POST /api/v2/users/create_many` and `PUT /api/v2/users/update_many` (batch form) queue a
//!   job of at most 100 users, applied at once; `GET /api/v2/job_statuses/{id}` says `queued`
//!   for [`ZendeskEmulator::set_job_polls`] polls, then `completed` with per-item results
//!   (`{"id", "index"}` for creates, `{"action": "update", "id", "status": "Updated",
//!   "success": true}` for updates, `{"index", "error", "details", "status": "Failed"}` for
//!   refusals such as an invalid or taken email).
//! * A switch for "bulk import not enabled": `403` to `create_many`.
//! * Errors as Zendesk's bodies: `422 {"error": "RecordInvalid", "description": "Record
//!   validation errors", "details": {field: [{"description", "error"}]}}`, `404 {"error":
//!   "RecordNotFound", "description": "Not found"}`. `429` + `Retry-After` come from the fault
//!   layer.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as AxPath, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;

/// Handlers answer early with a whole response; its size does not matter in a test server.
type Answer<T> = Result<T, Box<Response>>;
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use super::{Faults, RequestLog, Served};
use crate::http::{Auth, HttpClientBuilder};

struct Job {
    status: Value,
    polls_left: usize,
}

#[derive(Default)]
struct ZdState {
    /// `Basic` credentials accepted: base64 of `email/token:api_token`.
    auth: String,
    users: Mutex<BTreeMap<i64, Value>>,
    orgs: Mutex<BTreeMap<i64, String>>,
    jobs: Mutex<HashMap<String, Job>>,
    next_id: AtomicI64,
    next_job: AtomicUsize,
    bulk_disabled: AtomicBool,
    job_polls: AtomicUsize,
    /// The last page of a list says there is more (a list contradicting itself).
    claim_more: AtomicBool,
}

/// A running Zendesk emulator.
#[derive(Clone)]
pub struct ZendeskEmulator {
    state: Arc<ZdState>,
    served: Served,
}

type S = State<Arc<ZdState>>;

impl ZendeskEmulator {
    /// Starts one on 127.0.0.1:0 accepting `email` with `token`.
    pub async fn start(email: &str, token: &str) -> ZendeskEmulator {
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{email}/token:{token}"));
        let state = Arc::new(ZdState {
            auth,
            next_id: AtomicI64::new(1000),
            next_job: AtomicUsize::new(1),
            ..ZdState::default()
        });
        let app = Router::new()
            .route("/api/v2/users", get(list_users).post(create_user))
            .route("/api/v2/users/search", get(search_users))
            .route("/api/v2/users/create_many", post(create_many))
            .route("/api/v2/users/update_many", put(update_many))
            .route(
                "/api/v2/users/{id}",
                get(show_user).put(update_user).delete(delete_user),
            )
            .route("/api/v2/job_statuses/{id}", get(job_status))
            .route("/api/v2/organizations", get(list_orgs).post(create_org))
            .with_state(state.clone());
        ZendeskEmulator {
            state,
            served: super::serve_with_faults(app).await,
        }
    }

    /// `http://127.0.0.1:PORT`: the connector's `base_url`.
    pub fn base_url(&self) -> String {
        self.served.origin.clone()
    }

    pub fn log(&self) -> &RequestLog {
        &self.served.log
    }

    pub fn faults(&self) -> &Faults {
        &self.served.faults
    }

    /// A client builder for this emulator: Basic auth, fast retries, no rate limit.
    pub fn client_builder(&self, email: &str, token: &str) -> HttpClientBuilder {
        super::builder(&self.base_url())
            .auth(Auth::Basic {
                user: format!("{email}/token"),
                password: SecretString::from(token.to_string()),
            })
            .message_hook(Arc::new(|b: &[u8]| {
                crate::connectors::zendesk::zendesk_message(b)
            }))
    }

    /// Stores a user as Zendesk would create it (`name` and `email` at least); returns its id.
    pub fn insert(&self, user: Value) -> i64 {
        let Value::Object(user) = user else {
            panic!("a user is an object")
        };
        self.state.insert(user)
    }

    /// Every user, by id.
    pub fn users(&self) -> Vec<Value> {
        self.state
            .users
            .lock()
            .map(|u| u.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The user with this email (case-insensitive).
    pub fn user(&self, email: &str) -> Option<Value> {
        let email = email.to_lowercase();
        self.users()
            .into_iter()
            .find(|u| u["email"].as_str().map(str::to_lowercase) == Some(email.clone()))
    }

    /// Changes a stored user (as a person in Zendesk's UI would).
    pub fn edit(&self, id: i64, changes: Value) {
        if let (Ok(mut users), Value::Object(changes)) = (self.state.users.lock(), changes)
            && let Some(u) = users.get_mut(&id)
        {
            for (k, v) in changes {
                u[k.as_str()] = v;
            }
        }
    }

    /// Organization names by id.
    pub fn orgs(&self) -> BTreeMap<i64, String> {
        self.state
            .orgs
            .lock()
            .map(|o| o.clone())
            .unwrap_or_default()
    }

    /// Adds an organization; returns its id.
    pub fn add_org(&self, name: &str) -> i64 {
        let id = self.state.next_id.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut o) = self.state.orgs.lock() {
            o.insert(id, name.to_string());
        }
        id
    }

    /// Bulk user import not enabled: `403` to `create_many` (Zendesk's default).
    pub fn set_bulk_import_enabled(&self, enabled: bool) {
        self.state.bulk_disabled.store(!enabled, Ordering::SeqCst);
    }

    /// Polls a job answers `queued` before it says `completed`.
    pub fn set_job_polls(&self, polls: usize) {
        self.state.job_polls.store(polls, Ordering::SeqCst);
    }

    /// The last page of every list says `has_more` (a list that contradicts itself).
    pub fn set_claim_more(&self, on: bool) {
        self.state.claim_more.store(on, Ordering::SeqCst);
    }
}

impl ZdState {
    fn insert(&self, mut user: Map<String, Value>) -> i64 {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        user.insert("id".into(), json!(id));
        for (k, v) in [
            ("role", json!("end-user")),
            ("active", json!(true)),
            ("suspended", json!(false)),
            ("organization_id", Value::Null),
            ("external_id", Value::Null),
            ("custom_role_id", Value::Null),
            ("phone", Value::Null),
            ("user_fields", json!({})),
        ] {
            if user.get(k).is_none() {
                user.insert(k.into(), v);
            }
        }
        user.remove("skip_verify_email");
        if let Ok(mut users) = self.users.lock() {
            users.insert(id, Value::Object(user));
        }
        id
    }

    fn authorized(&self, headers: &HeaderMap) -> Option<Response> {
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .unwrap_or_default();
        (given != self.auth).then(|| {
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": "Couldn't authenticate you"})),
            )
                .into_response()
        })
    }

    /// The checks Zendesk makes of a user to create (`existing`: its id when updating);
    /// `Err((code, field, description))`.
    fn check(
        &self,
        user: &Map<String, Value>,
        existing: Option<i64>,
    ) -> Result<(), (&'static str, &'static str, String)> {
        let users = self.users.lock().map(|u| u.clone()).unwrap_or_default();
        let text = |k: &str| user.get(k).and_then(Value::as_str).map(str::trim);
        if existing.is_none() && text("name").is_none_or(str::is_empty) {
            return Err(("BlankValue", "name", "Name: cannot be blank".into()));
        }
        if existing.is_none()
            && let Some(email) = text("email").filter(|e| !e.is_empty())
        {
            if !email.contains('@') || email.contains(' ') {
                return Err((
                    "InvalidFormat",
                    "email",
                    format!("Email: {email} is not properly formatted"),
                ));
            }
            let taken = users.values().any(|u| {
                u["email"]
                    .as_str()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
            });
            if taken {
                return Err((
                    "DuplicateValue",
                    "email",
                    format!("Email: {email} is already being used by another user"),
                ));
            }
        }
        if let Some(ext) = text("external_id").filter(|e| !e.is_empty()) {
            let taken = users.iter().any(|(id, u)| {
                Some(*id) != existing
                    && u["external_id"]
                        .as_str()
                        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
            });
            if taken {
                return Err((
                    "DuplicateValue",
                    "external_id",
                    format!("External: {ext} has already been taken"),
                ));
            }
        }
        if let Some(role) = text("role")
            && !["end-user", "agent", "admin"].contains(&role)
        {
            return Err(("InvalidValue", "role", format!("Role: {role} is not valid")));
        }
        if let Some(oid) = user.get("organization_id").filter(|v| !v.is_null()) {
            let known = oid
                .as_i64()
                .is_some_and(|id| self.orgs.lock().is_ok_and(|o| o.contains_key(&id)));
            if !known {
                return Err((
                    "InvalidValue",
                    "organization_id",
                    "Organization: is invalid".into(),
                ));
            }
        }
        Ok(())
    }

    /// Applies `changes` to user `id`; `None` when there is no such user.
    fn update(&self, id: i64, changes: Map<String, Value>) -> Option<Value> {
        let mut users = self.users.lock().ok()?;
        let user = users.get_mut(&id)?;
        for (k, v) in changes {
            match k.as_str() {
                // On update Zendesk adds a secondary email; the primary one stays.
                "id" | "email" | "skip_verify_email" => {}
                "user_fields" => {
                    if let (Value::Object(have), Value::Object(new)) = (&mut user["user_fields"], v)
                    {
                        have.extend(new);
                    }
                }
                _ => user[k.as_str()] = v,
            }
        }
        Some(user.clone())
    }

    fn queue(&self, results: Vec<Value>, job_type: &str) -> Response {
        let id = format!("job{}", self.next_job.fetch_add(1, Ordering::SeqCst));
        let total = results.len();
        let queued = json!({"id": id, "job_type": job_type, "status": "queued",
            "progress": null, "total": total, "message": null, "results": null,
            "url": format!("/api/v2/job_statuses/{id}.json")});
        let done = json!({"id": id, "job_type": job_type, "status": "completed",
            "progress": total, "total": total, "message": format!("Completed at {}", "now"),
            "results": results, "url": format!("/api/v2/job_statuses/{id}.json")});
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.insert(
                id,
                Job {
                    status: done,
                    polls_left: self.job_polls.load(Ordering::SeqCst),
                },
            );
        }
        axum::Json(json!({ "job_status": queued })).into_response()
    }
}

fn invalid((code, field, description): (&str, &str, String)) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(
            json!({"error": "RecordInvalid", "description": "Record validation errors",
            "details": { field: [{"description": description, "error": code}] }}),
        ),
    )
        .into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": "RecordNotFound", "description": "Not found"})),
    )
        .into_response()
}

fn bad_request(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": error, "description": description})),
    )
        .into_response()
}

fn pairs(q: &Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.as_deref().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A cursor page of `items` (sorted by id) under `key`, or the error Zendesk gives.
fn cursor_page(
    s: &ZdState,
    items: Vec<(i64, Value)>,
    q: &[(String, String)],
    key: &str,
    path: &str,
    headers: &HeaderMap,
) -> Response {
    let Some(size) = param(q, "page[size]") else {
        return offset_page(items, q, key, path, headers);
    };
    let size: usize = match size.parse() {
        Ok(n) if (1..=100).contains(&n) => n,
        _ => {
            return bad_request(
                "InvalidPaginationParameter",
                "page[size] must be a number between 1 and 100",
            );
        }
    };
    let after: i64 = match param(q, "page[after]") {
        None => i64::MIN,
        Some(c) => match c.strip_prefix("zd").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return bad_request("InvalidPaginationParameter", "page[after] is invalid"),
        },
    };
    let rest: Vec<(i64, Value)> = items.into_iter().filter(|(id, _)| *id > after).collect();
    let has_more = rest.len() > size || s.claim_more.load(Ordering::SeqCst);
    let page: Vec<(i64, Value)> = rest.into_iter().take(size).collect();
    let last = page.last().map_or(after, |(id, _)| *id);
    let cursor = format!("zd{last}");
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let next = has_more.then(|| {
        format!("http://{host}{path}.json?page%5Bafter%5D={cursor}&page%5Bsize%5D={size}")
    });
    let first = page.first().map(|(id, _)| format!("zd{}", id - 1));
    let items: Vec<Value> = page.into_iter().map(|(_, v)| v).collect();
    axum::Json(json!({
        key: items,
        "meta": {"has_more": has_more, "after_cursor": has_more.then_some(cursor), "before_cursor": first},
        "links": {"next": next, "prev": null},
    }))
    .into_response()
}

/// Offset paging (no `page[size]`): `page` and `per_page` (at most 100), `next_page`,
/// `previous_page`, `count`; past the first 10,000 records (100 pages) a `400`, as Zendesk
/// answers since 2023-08-15.
fn offset_page(
    items: Vec<(i64, Value)>,
    q: &[(String, String)],
    key: &str,
    path: &str,
    headers: &HeaderMap,
) -> Response {
    let page: usize = param(q, "page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let per: usize = param(q, "per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(100)
        .clamp(1, 100);
    if page * per > 10_000 {
        return bad_request(
            "InvalidPaginationParameter",
            "Offset pagination is limited to the first 10,000 records: use cursor pagination",
        );
    }
    let count = items.len();
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let link = |n: usize| format!("http://{host}{path}.json?page={n}&per_page={per}");
    let next = (page * per < count).then(|| link(page + 1));
    let previous = (page > 1).then(|| link(page - 1));
    let items: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per)
        .take(per)
        .map(|(_, v)| v)
        .collect();
    axum::Json(json!({ key: items, "next_page": next, "previous_page": previous, "count": count }))
        .into_response()
}

async fn list_users(State(s): S, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if let Some(r) = s.authorized(&headers) {
        return r;
    }
    let q = pairs(&q);
    let roles: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "role[]" || k == "role")
        .map(|(_, v)| v.as_str())
        .collect();
    let permission_set: Option<i64> = param(&q, "permission_set").and_then(|p| p.parse().ok());
    let external_id = param(&q, "external_id").map(str::to_lowercase);
    let users: Vec<(i64, Value)> = s
        .users
        .lock()
        .map(|u| u.iter().map(|(id, v)| (*id, v.clone())).collect())
        .unwrap_or_default();
    let users = users
        .into_iter()
        .filter(|(_, u)| roles.is_empty() || roles.iter().any(|r| u["role"] == *r))
        .filter(|(_, u)| permission_set.is_none_or(|p| u["custom_role_id"].as_i64() == Some(p)))
        .filter(|(_, u)| {
            external_id.as_ref().is_none_or(|e| {
                u["external_id"].as_str().map(str::to_lowercase).as_ref() == Some(e)
            })
        })
        .collect();
    cursor_page(&s, users, &q, "users", "/api/v2/users", &headers)
}

async fn search_users(State(s): S, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if let Some(r) = s.authorized(&headers) {
        return r;
    }
    let q = pairs(&q);
    let users = s.users.lock().map(|u| u.clone()).unwrap_or_default();
    let found: Vec<Value> = if let Some(ext) = param(&q, "external_id") {
        users
            .values()
            .filter(|u| {
                u["external_id"]
                    .as_str()
                    .is_some_and(|e| e.eq_ignore_ascii_case(ext))
            })
            .cloned()
            .collect()
    } else if let Some(query) = param(&q, "query") {
        let query = query.to_lowercase();
        match query.strip_prefix("email:") {
            Some(email) => users
                .values()
                .filter(|u| {
                    u["email"]
                        .as_str()
                        .is_some_and(|e| e.to_lowercase() == email.trim_matches('"'))
                })
                .cloned()
                .collect(),
            None => users
                .values()
                .filter(|u| {
                    ["name", "email"].iter().any(|k| {
                        u[*k]
                            .as_str()
                            .is_some_and(|v| v.to_lowercase().contains(&query))
                    })
                })
                .cloned()
                .collect(),
        }
    } else {
        return bad_request("InvalidParameter", "query or external_id is required");
    };
    let count = found.len();
    axum::Json(json!({"users": found, "next_page": null, "previous_page": null, "count": count}))
        .into_response()
}

fn user_body(body: &Bytes, key: &str) -> Answer<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut m)) => match m.remove(key) {
            Some(Value::Object(u)) => Ok(u),
            _ => Err(Box::new(bad_request(
                "InvalidParameter",
                &format!("`{key}` is required"),
            ))),
        },
        _ => Err(Box::new(bad_request(
            "InvalidJSON",
            "The request body is not valid JSON",
        ))),
    }
}

fn users_body(body: &Bytes) -> Answer<Vec<Map<String, Value>>> {
    let list = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut m)) => m.remove("users"),
        _ => {
            return Err(Box::new(bad_request(
                "InvalidJSON",
                "The request body is not valid JSON",
            )));
        }
    };
    let Some(Value::Array(list)) = list else {
        return Err(Box::new(bad_request(
            "InvalidParameter",
            "`users` is required",
        )));
    };
    if list.len() > 100 {
        return Err(Box::new(bad_request(
            "TooManyValues",
            "You can only create or update up to 100 users at a time",
        )));
    }
    list.into_iter()
        .map(|u| match u {
            Value::Object(u) => Ok(u),
            _ => Err(Box::new(bad_request(
                "InvalidParameter",
                "each user is an object",
            ))),
        })
        .collect()
}

async fn create_user(State(s): S, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = s.authorized(&headers) {
        return r;
    }
    let user = match user_body(&body, "user") {
        Ok(u) => u,
        Err(r) => return *r,
    };
    if let Err(e) = s.check(&user, None) {
        return invalid(e);
    }
    let id = s.insert(user);
    let created = s.users.lock().ok().and_then(|u| u.get(&id).cloned());
    (StatusCode::CREATED, axum::Json(json!({ "user": created }))).into_response()
}

async fn create_many(State(s): S, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = s.authorized(&headers) {
        return r;
    }
    if s.bulk_disabled.load(Ordering::SeqCst) {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"error": "Forbidden",
                "description": "You do not have access to this page. Please contact the account owner of this help desk for further help."})),
        )
            .into_response();
    }
    let users = match users_body(&body) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let mut results = Vec::new();
    for (index, user) in users.into_iter().enumerate() {
        match s.check(&user, None) {
            Ok(()) => {
                let id = s.insert(user);
                results.push(json!({"id": id, "index": index}));
            }
            Err((code, _, details)) => results.push(
                json!({"index": index, "error": code, "details": details, "status": "Failed"}),
            ),
        }
    }
    s.queue(results, "bulk_create_users")
}

async fn update_many(State(s): S, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = s.authorized(&headers) {
        return r;
    }
    let users = match users_body(&body) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let mut results = Vec::new();
    for (index, user) in users.into_iter().enumerate() {
        let id = user.get("id").and_then(Value::as_i64);
        let exists = id.is_some_and(|id| s.users.lock().is_ok_and(|u| u.contains_key(&id)));
        let (Some(id), true) = (id, exists) else {
            results.push(
                json!({"id": user.get("id"), "index": index, "error": "RecordNotFound",
                "details": "User not found", "status": "Failed"}),
            );
            continue;
        };
        match s.check(&user, Some(id)) {
            Ok(()) => {
                s.update(id, user);
                results.push(
                    json!({"action": "update", "id": id, "status": "Updated", "success": true}),
                );
            }
            Err((_, _, details)) => results.push(json!({"id": id, "index": index,
                "error": "UserUpdateError", "details": details, "status": "Failed"})),
        }
    }
    s.queue(results, "bulk_update_users")
}

async fn job_status(State(s): S, headers: HeaderMap, AxPath(id): AxPath<String>) -> Response {
    if let Some(r) = s.authorized(&headers) {
        return r;
    }
    let id = id.trim_end_matches(".json").to_string();
    let Ok(mut jobs) = s.jobs.lock() else {
        return not_found();
    };
    let Some(job) = jobs.get_mut(&id) else {
        return not_found();
    };
    if job.polls_left > 0 {
        job.polls_left -= 1;
        let mut working = job.status.clone();
        working["status"] = json!("working");
        working["results"] = Value::Null;
        return axum::Json(json!({ "job_status": working })).into_response();
    }
    axum::Json(json!({ "job_status": job.status })).into_response()
}

fn user_id(id: &str) -> Option<i64> {
    id.trim_end_matches(".json").parse().ok()
}

async fn show_user(State(s): S, headers: HeaderMap, AxPath(id): AxPath<String>) -> Response {
    if let Some(r) = s.authorized(&headers) {
        return r;
    }
    let found = user_id(&id).and_then(|id| s.users.lock().ok()?.get(&id).cloned());
    match found {
        Some(u) => axum::Json(json!({ "user": u })).into_response(),
        None => not_found(),
    }
}

async fn update_user(
    State(s): S,
    headers: HeaderMap,
    AxPath(id): AxPath<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = s.authorized(&headers) {
        return r;
    }
    let changes = match user_body(&body, "user") {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let Some(id) = user_id(&id) else {
        return not_found();
    };
    if let Err(e) = s.check(&changes, Some(id)) {
        return invalid(e);
    }
    match s.update(id, changes) {
        Some(u) => axum::Json(json!({ "user": u })).into_response(),
        None => not_found(),
    }
}

async fn delete_user(State(s): S, headers: HeaderMap, AxPath(id): AxPath<String>) -> Response {
    if let Some(r) = s.authorized(&headers) {
        return r;
    }
    let removed = user_id(&id).and_then(|id| s.users.lock().ok()?.remove(&id));
    match removed {
        Some(mut u) => {
            u["active"] = json!(false);
            axum::Json(json!({ "user": u })).into_response()
        }
        None => not_found(),
    }
}

async fn list_orgs(State(s): S, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if let Some(r) = s.authorized(&headers) {
        return r;
    }
    let q = pairs(&q);
    let orgs: Vec<(i64, Value)> = s
        .orgs
        .lock()
        .map(|o| {
            o.iter()
                .map(|(id, n)| (*id, json!({"id": id, "name": n})))
                .collect()
        })
        .unwrap_or_default();
    cursor_page(
        &s,
        orgs,
        &q,
        "organizations",
        "/api/v2/organizations",
        &headers,
    )
}

async fn create_org(State(s): S, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = s.authorized(&headers) {
        return r;
    }
    let org = match user_body(&body, "organization") {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let Some(name) = org
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
    else {
        return invalid(("BlankValue", "name", "Name: cannot be blank".into()));
    };
    let taken = s
        .orgs
        .lock()
        .is_ok_and(|o| o.values().any(|n| n.eq_ignore_ascii_case(&name)));
    if taken {
        return invalid((
            "DuplicateValue",
            "name",
            "Name: has already been taken".into(),
        ));
    }
    let id = s.next_id.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut o) = s.orgs.lock() {
        o.insert(id, name.clone());
    }
    (
        StatusCode::CREATED,
        axum::Json(json!({"organization": {"id": id, "name": name}})),
    )
        .into_response()
}
