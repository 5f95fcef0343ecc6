//! An in-memory Mojo Helpdesk (REST API v2, the user and group endpoints) behind the
//! [`super::fault::FaultLayer`], answering as the vendor's spec says: the key in the
//! `access_key` query parameter; bare JSON arrays for lists (`page`, `per_page`, default 30, no
//! total); `400 {"error": ...}` for an unknown id or email (not 404) and for refused creates;
//! `404 {"message", "messages"}` for deleting an unknown user; a read-only key that reads but
//! gets `401` on every write; `send_welcome_email` (sent unless `0`); a user limit.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as AxPath, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use super::{Faults, RequestLog, Served};
use crate::http::{Auth, HttpClientBuilder};

/// The group every user without a company belongs to.
pub const INDIVIDUALS_ID: i64 = 1;
const READ_ONLY: &str = "This API key is read-only and cannot perform write operations.";

#[derive(Default)]
struct MojoState {
    key: String,
    read_only_key: String,
    users: Mutex<BTreeMap<i64, Value>>,
    groups: Mutex<BTreeMap<i64, String>>,
    next_id: AtomicI64,
    /// Users the plan allows (`None`: no limit).
    user_limit: Mutex<Option<usize>>,
    welcome_emails: AtomicUsize,
}

/// A running Mojo emulator.
#[derive(Clone)]
pub struct MojoEmulator {
    state: Arc<MojoState>,
    served: Served,
}

type S = State<Arc<MojoState>>;
type Q = Query<BTreeMap<String, String>>;

impl MojoEmulator {
    /// Starts one on 127.0.0.1:0 accepting `key` (read-write) and `key-ro` (read-only), with
    /// the `Individuals` group.
    pub async fn start(key: &str) -> MojoEmulator {
        let state = Arc::new(MojoState {
            key: key.to_string(),
            read_only_key: format!("{key}-ro"),
            next_id: AtomicI64::new(1000),
            ..MojoState::default()
        });
        if let Ok(mut g) = state.groups.lock() {
            g.insert(INDIVIDUALS_ID, "Individuals".to_string());
        }
        let app = Router::new()
            .route("/api/v2/users", get(list_users).post(create_user))
            .route("/api/v2/users/get_by_email", get(get_by_email))
            .route(
                "/api/v2/users/{id}",
                get(show_user)
                    .put(update_user)
                    .patch(update_user)
                    .delete(delete_user),
            )
            .route("/api/v2/groups", get(list_groups).post(create_group))
            .with_state(state.clone());
        MojoEmulator {
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

    /// A client builder for this emulator with `key`: fast retries, no rate limit.
    pub fn client_builder(&self, key: &str) -> HttpClientBuilder {
        super::builder(&self.base_url())
            .auth(Auth::Query {
                param: "access_key".to_string(),
                value: SecretString::from(key.to_string()),
            })
            .message_hook(Arc::new(|b: &[u8]| {
                crate::connectors::mojo::mojo_message(b)
            }))
    }

    /// Stores a user (an `email` at least) as Mojo would create it; returns its id.
    pub fn insert(&self, user: Value) -> i64 {
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

    /// Group names by id.
    pub fn groups(&self) -> BTreeMap<i64, String> {
        self.state
            .groups
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default()
    }

    /// Adds a group; returns its id.
    pub fn add_group(&self, name: &str) -> i64 {
        let id = self.state.next_id.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut g) = self.state.groups.lock() {
            g.insert(id, name.to_string());
        }
        id
    }

    /// Refuses creates past `limit` users, as a plan's user limit does.
    pub fn set_user_limit(&self, limit: Option<usize>) {
        if let Ok(mut l) = self.state.user_limit.lock() {
            *l = limit;
        }
    }

    /// Changes the user with `email` as a person would in Mojo's UI (out of band): each key of
    /// `patch` replaces the user's. Returns whether the user was there.
    pub fn edit(&self, email: &str, patch: Value) -> bool {
        let Ok(mut users) = self.state.users.lock() else {
            return false;
        };
        let Some(user) = users.values_mut().find(|u| u["email"] == email) else {
            return false;
        };
        if let (Some(u), Value::Object(p)) = (user.as_object_mut(), patch) {
            u.extend(p);
        }
        true
    }

    /// Deletes the user with `email` as a person would in Mojo's UI (out of band).
    pub fn remove(&self, email: &str) -> bool {
        self.state
            .users
            .lock()
            .map(|mut users| {
                let before = users.len();
                users.retain(|_, u| u["email"] != email);
                users.len() < before
            })
            .unwrap_or(false)
    }

    /// Welcome emails sent (creates without `send_welcome_email=0`).
    pub fn welcome_emails(&self) -> usize {
        self.state.welcome_emails.load(Ordering::SeqCst)
    }
}

impl MojoState {
    fn insert(&self, mut user: Value) -> i64 {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        user["id"] = json!(id);
        if user.get("role_id").is_none_or(Value::is_null) {
            user["role_id"] = json!(10);
        }
        if user.get("is_active").is_none_or(Value::is_null) {
            user["is_active"] = json!(true);
        }
        if user.get("company_id").is_none_or(Value::is_null) {
            user["company_id"] = json!(INDIVIDUALS_ID);
        }
        if let Ok(mut users) = self.users.lock() {
            users.insert(id, user);
        }
        id
    }

    /// `None` when the key may do `method`; else the 401 Mojo answers.
    fn refuse(&self, q: &BTreeMap<String, String>, method: &Method) -> Option<Response> {
        let key = q.get("access_key").map(String::as_str).unwrap_or_default();
        if key == self.key {
            return None;
        }
        if key == self.read_only_key {
            return (*method != Method::GET).then(|| message(StatusCode::UNAUTHORIZED, READ_ONLY));
        }
        Some(message(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: invalid access key",
        ))
    }
}

/// Mojo's `Error` shape (most 400s).
fn error(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "error": text }))).into_response()
}

/// Mojo's `MessageError` shape (401, 404, 422).
fn message(status: StatusCode, text: &str) -> Response {
    (
        status,
        axum::Json(json!({ "message": text, "messages": [text] })),
    )
        .into_response()
}

fn page_of<T: Clone>(items: &[T], q: &BTreeMap<String, String>) -> Vec<T> {
    let page: usize = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let per: usize = q
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    items
        .iter()
        .skip((page - 1) * per)
        .take(per)
        .cloned()
        .collect()
}

async fn list_users(State(s): S, Query(q): Q) -> Response {
    if let Some(r) = s.refuse(&q, &Method::GET) {
        return r;
    }
    let users: Vec<Value> = s
        .users
        .lock()
        .map(|u| u.values().cloned().collect())
        .unwrap_or_default();
    axum::Json(page_of(&users, &q)).into_response()
}

fn parse_object(body: &Bytes) -> Result<Map<String, Value>, Box<Response>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "Invalid JSON body",
        ))),
    }
}

/// The checks Mojo makes of a create or update body; `None` when it passes.
fn invalid(s: &MojoState, body: &Map<String, Value>) -> Option<Response> {
    if let Some(cid) = body.get("company_id").filter(|v| !v.is_null()) {
        let known = cid
            .as_i64()
            .is_some_and(|id| s.groups.lock().is_ok_and(|g| g.contains_key(&id)));
        if !known {
            return Some(error(StatusCode::BAD_REQUEST, "Invalid company id"));
        }
    }
    if let Some(rid) = body.get("role_id").filter(|v| !v.is_null()) {
        match rid.as_i64() {
            Some(10 | 15 | 20 | 30 | 35 | 40) => {}
            Some(r) if r > 40 => {
                return Some(error(
                    StatusCode::BAD_REQUEST,
                    "You are not allowed to set a super admin role.",
                ));
            }
            _ => return Some(error(StatusCode::BAD_REQUEST, "Invalid role id")),
        }
    }
    if let Some(p) = body.get("password").and_then(Value::as_str)
        && p.len() < 6
    {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "Password is too short (minimum is 6 characters)",
        ));
    }
    None
}

async fn create_user(State(s): S, Query(q): Q, body: Bytes) -> Response {
    if let Some(r) = s.refuse(&q, &Method::POST) {
        return r;
    }
    let mut user = match parse_object(&body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let Some(email) = user
        .get("email")
        .and_then(Value::as_str)
        .map(str::to_lowercase)
        .filter(|e| e.contains('@'))
    else {
        return error(StatusCode::BAD_REQUEST, "Email is invalid");
    };
    if let Some(r) = invalid(&s, &user) {
        return r;
    }
    let (exists, count) = s
        .users
        .lock()
        .map(|u| {
            (
                u.values().any(|x| {
                    x.get("email")
                        .and_then(Value::as_str)
                        .is_some_and(|e| e.to_lowercase() == email)
                }),
                u.len(),
            )
        })
        .unwrap_or_default();
    if exists {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("The user with email {email} already exists as a user."),
        );
    }
    if s.user_limit
        .lock()
        .ok()
        .and_then(|l| *l)
        .is_some_and(|l| count >= l)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "Cannot create new users because the user limit is reached.",
        );
    }
    if q.get("send_welcome_email").map(String::as_str) != Some("0") {
        s.welcome_emails.fetch_add(1, Ordering::SeqCst);
    }
    // Passwords are never shown back.
    user.remove("password");
    let id = s.insert(Value::Object(user));
    let created = s.users.lock().ok().and_then(|u| u.get(&id).cloned());
    (StatusCode::CREATED, axum::Json(created)).into_response()
}

async fn get_by_email(State(s): S, Query(q): Q) -> Response {
    if let Some(r) = s.refuse(&q, &Method::GET) {
        return r;
    }
    let email = q.get("email").map(|e| e.to_lowercase()).unwrap_or_default();
    let found = s.users.lock().ok().and_then(|u| {
        u.values()
            .find(|x| {
                x.get("email")
                    .and_then(Value::as_str)
                    .is_some_and(|e| e.to_lowercase() == email)
            })
            .cloned()
    });
    match found {
        Some(u) => axum::Json(u).into_response(),
        None => error(StatusCode::BAD_REQUEST, "Invalid user email"),
    }
}

fn user_id(id: &str) -> Option<i64> {
    id.parse().ok()
}

async fn show_user(State(s): S, AxPath(id): AxPath<String>, Query(q): Q) -> Response {
    if let Some(r) = s.refuse(&q, &Method::GET) {
        return r;
    }
    let found = user_id(&id).and_then(|id| s.users.lock().ok()?.get(&id).cloned());
    match found {
        Some(u) => axum::Json(u).into_response(),
        None => error(StatusCode::BAD_REQUEST, "Invalid user id"),
    }
}

async fn update_user(
    State(s): S,
    AxPath(id): AxPath<String>,
    Query(q): Q,
    body: Bytes,
) -> Response {
    if let Some(r) = s.refuse(&q, &Method::PUT) {
        return r;
    }
    let changes = match parse_object(&body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    if let Some(r) = invalid(&s, &changes) {
        return r;
    }
    let Some(id) = user_id(&id) else {
        return error(StatusCode::BAD_REQUEST, "Invalid user id");
    };
    let Ok(mut users) = s.users.lock() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "lock");
    };
    let Some(user) = users.get_mut(&id) else {
        return error(StatusCode::BAD_REQUEST, "Invalid user id");
    };
    for (k, v) in changes {
        // Email is not updatable through this endpoint: ignored, as Mojo does.
        if k != "email" && k != "password" && k != "id" {
            user[k.as_str()] = v;
        }
    }
    axum::Json(user.clone()).into_response()
}

async fn delete_user(State(s): S, AxPath(id): AxPath<String>, Query(q): Q) -> Response {
    if let Some(r) = s.refuse(&q, &Method::DELETE) {
        return r;
    }
    let removed = user_id(&id).and_then(|id| s.users.lock().ok()?.remove(&id));
    match removed {
        Some(_) => StatusCode::OK.into_response(),
        None => message(StatusCode::NOT_FOUND, "Not found"),
    }
}

async fn list_groups(State(s): S, Query(q): Q) -> Response {
    if let Some(r) = s.refuse(&q, &Method::GET) {
        return r;
    }
    let groups: Vec<Value> = s
        .groups
        .lock()
        .map(|g| {
            g.iter()
                .map(|(id, n)| json!({"id": id, "name": n}))
                .collect()
        })
        .unwrap_or_default();
    axum::Json(page_of(&groups, &q)).into_response()
}

async fn create_group(State(s): S, Query(q): Q, body: Bytes) -> Response {
    if let Some(r) = s.refuse(&q, &Method::POST) {
        return r;
    }
    let name = match parse_object(&body) {
        Ok(m) => m.get("name").and_then(Value::as_str).map(str::to_string),
        Err(r) => return *r,
    };
    let Some(name) = name.filter(|n| !n.trim().is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "Name can't be blank");
    };
    let id = s.next_id.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut g) = s.groups.lock() {
        g.insert(id, name.clone());
    }
    (
        StatusCode::CREATED,
        axum::Json(json!({"id": id, "name": name})),
    )
        .into_response()
}
