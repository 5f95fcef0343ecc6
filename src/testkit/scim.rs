//! An in-memory SCIM 2.0 server (RFC 7644, the parts headcount uses) under `/t/v2`, behind the
//! [`super::fault::FaultLayer`]: `GET/POST /Users` (paging by `startIndex`/`count`, the
//! `userName eq` filter), `GET/PATCH/DELETE /Users/{id}`, `GET /ServiceProviderConfig`.
//!
//! Vendor behaviours under test are switches ([`ScimEmulator::set_max_count`], ETags, a
//! concurrent write before the next PATCH, a revoked token); transport failures are faults of
//! the layer ([`ScimEmulator::faults`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as AxPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use super::{Faults, RequestLog, Served};
use crate::http::{Auth, HttpClientBuilder};

/// The path every route is served under (a tenant, as hosted SCIM services have).
pub const PREFIX: &str = "/t/v2";
/// `count` when the client gives none.
const DEFAULT_COUNT: usize = 100;
const MEDIA_TYPE: &str = "application/scim+json";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

#[derive(Default)]
struct ScimState {
    token: String,
    users: Mutex<Vec<Value>>,
    /// Largest `count` the server returns (servers cap it).
    max_count: Mutex<Option<usize>>,
    etags: AtomicBool,
    /// Before the next PATCH: someone else writes (version bump, optional field change).
    concurrent_write: Mutex<Option<Option<(String, Value)>>>,
    unauthorized: AtomicBool,
    next_id: AtomicU64,
    /// `totalResults` reported instead of the real count (a server that contradicts itself).
    claimed_total: Mutex<Option<u64>>,
    /// Every list answers the first page, whatever `startIndex` asks.
    ignore_start_index: AtomicBool,
    /// Creates with a `userName` that exists are accepted (servers that do not enforce it).
    allow_duplicates: AtomicBool,
    /// Creates are answered after this long and applied just before the answer, even when
    /// the client has gone meanwhile (a slow server finishing a request its client abandoned).
    create_delay: Mutex<Option<std::time::Duration>>,
}

/// A running SCIM emulator.
#[derive(Clone)]
pub struct ScimEmulator {
    state: Arc<ScimState>,
    served: Served,
    token: String,
}

impl ScimEmulator {
    /// Starts one on 127.0.0.1:0 that accepts `Bearer t`.
    pub async fn start() -> ScimEmulator {
        ScimEmulator::with_token("t").await
    }

    /// Starts one that accepts `Bearer <token>` only.
    pub async fn with_token(token: &str) -> ScimEmulator {
        let state = Arc::new(ScimState {
            token: token.to_string(),
            ..ScimState::default()
        });
        let app = Router::new()
            .route(&format!("{PREFIX}/Users"), get(list).post(create))
            .route(
                &format!("{PREFIX}/Users/{{id}}"),
                get(get_one).patch(patch).delete(delete),
            )
            .route(&format!("{PREFIX}/ServiceProviderConfig"), get(spc))
            .with_state(state.clone());
        ScimEmulator {
            state,
            served: super::serve_with_faults(app).await,
            token: token.to_string(),
        }
    }

    /// `http://127.0.0.1:PORT/t/v2`: the connector's `base_url`.
    pub fn base_url(&self) -> String {
        format!("{}{PREFIX}", self.served.origin)
    }

    pub fn log(&self) -> &RequestLog {
        &self.served.log
    }

    pub fn faults(&self) -> &Faults {
        &self.served.faults
    }

    /// A client builder for this emulator: fast retries, its token, the SCIM media type.
    pub fn client_builder(&self) -> HttpClientBuilder {
        super::builder(&self.base_url())
            .auth(Auth::Bearer(SecretString::from(self.token.clone())))
            .media_type(MEDIA_TYPE, MEDIA_TYPE)
    }

    /// Stores `user` with a fresh id and version; returns it as stored.
    pub fn insert(&self, user: Value) -> Value {
        self.state.insert(user)
    }

    /// Every stored user, in creation order.
    pub fn users(&self) -> Vec<Value> {
        self.state
            .users
            .lock()
            .map(|u| u.clone())
            .unwrap_or_default()
    }

    /// Caps the page size the server returns, whatever `count` asks.
    pub fn set_max_count(&self, max: Option<usize>) {
        if let Ok(mut m) = self.state.max_count.lock() {
            *m = max;
        }
    }

    /// Offers ETags (`ETag` headers, `etag.supported`, `If-Match` checked).
    pub fn set_etags(&self, on: bool) {
        self.state.etags.store(on, Ordering::SeqCst);
    }

    /// Before the next PATCH, someone else bumps the account's version and optionally sets
    /// `path` to a value.
    pub fn concurrent_write_before_next_patch(&self, change: Option<(&str, Value)>) {
        if let Ok(mut c) = self.state.concurrent_write.lock() {
            *c = Some(change.map(|(p, v)| (p.to_string(), v)));
        }
    }

    /// Reports `totalResults: total` in every list answer, whatever it holds.
    pub fn set_claimed_total(&self, total: Option<u64>) {
        if let Ok(mut t) = self.state.claimed_total.lock() {
            *t = total;
        }
    }

    /// Answers every list with its first page, ignoring `startIndex`.
    pub fn set_ignore_start_index(&self, on: bool) {
        self.state.ignore_start_index.store(on, Ordering::SeqCst);
    }

    /// Accepts a create whose `userName` already exists (no `409 uniqueness`).
    pub fn set_allow_duplicates(&self, on: bool) {
        self.state.allow_duplicates.store(on, Ordering::SeqCst);
    }

    /// Holds each create for `delay`, then stores the user and answers. The work runs in a
    /// task of its own, so a client that disconnects (or is killed) meanwhile does not stop
    /// it: the user appears `delay` after the request arrived.
    pub fn set_create_delay(&self, delay: Option<std::time::Duration>) {
        if let Ok(mut d) = self.state.create_delay.lock() {
            *d = delay;
        }
    }

    /// Answers every request with `401` (a revoked token).
    pub fn set_unauthorized(&self, on: bool) {
        self.state.unauthorized.store(on, Ordering::SeqCst);
    }
}

type S = State<Arc<ScimState>>;

impl ScimState {
    fn insert(&self, mut user: Value) -> Value {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        user["id"] = json!(format!("u{n}"));
        user["meta"] = json!({"resourceType": "User", "version": "W/\"1\""});
        if let Ok(mut users) = self.users.lock() {
            users.push(user.clone());
        }
        user
    }

    fn auth_fails(&self, h: &HeaderMap) -> Option<Response> {
        let want = format!("Bearer {}", self.token);
        let ok = h.get("authorization").and_then(|v| v.to_str().ok()) == Some(want.as_str());
        (!ok || self.unauthorized.load(Ordering::SeqCst))
            .then(|| scim_error(StatusCode::UNAUTHORIZED, "", "Authorization failure"))
    }

    fn with_etag(&self, status: StatusCode, u: &Value) -> Response {
        let mut resp = (status, axum::Json(u.clone())).into_response();
        if self.etags.load(Ordering::SeqCst)
            && let Ok(v) = version(u).parse()
        {
            resp.headers_mut().insert("etag", v);
        }
        resp
    }
}

fn scim_error(status: StatusCode, scim_type: &str, detail: &str) -> Response {
    let body = json!({"schemas": [ERROR_SCHEMA], "status": status.as_u16().to_string(),
        "scimType": scim_type, "detail": detail});
    (status, axum::Json(body)).into_response()
}

fn bad_request(detail: &str) -> Response {
    scim_error(StatusCode::BAD_REQUEST, "invalidValue", detail)
}

fn version(u: &Value) -> String {
    u.pointer("/meta/version")
        .and_then(Value::as_str)
        .unwrap_or("W/\"0\"")
        .to_string()
}

fn bump(u: &mut Value) {
    let v: u64 = version(u)
        .trim_start_matches("W/\"")
        .trim_end_matches('"')
        .parse()
        .unwrap_or(0);
    u["meta"]["version"] = json!(format!("W/\"{}\"", v + 1));
}

fn user_name(u: &Value) -> &str {
    u["userName"].as_str().unwrap_or_default()
}

async fn list(State(f): S, h: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(r) = f.auth_fails(&h) {
        return r;
    }
    let users = f.users.lock().map(|u| u.clone()).unwrap_or_default();
    let matching: Vec<Value> = match q.get("filter") {
        Some(filter) => {
            let Some(lit) = filter.strip_prefix("userName eq ") else {
                return scim_error(StatusCode::BAD_REQUEST, "invalidFilter", "unsupported");
            };
            let Ok(want) = serde_json::from_str::<String>(lit) else {
                return scim_error(StatusCode::BAD_REQUEST, "invalidFilter", "bad literal");
            };
            users
                .into_iter()
                .filter(|u| user_name(u).eq_ignore_ascii_case(&want))
                .collect()
        }
        None => users,
    };
    let (Ok(mut start), Ok(count)) = (
        q.get("startIndex").map_or(Ok(1), |s| s.parse::<usize>()),
        q.get("count")
            .map_or(Ok(DEFAULT_COUNT), |s| s.parse::<usize>()),
    ) else {
        return bad_request("startIndex and count are integers");
    };
    let count = match f.max_count.lock().ok().and_then(|m| *m) {
        Some(max) => count.min(max),
        None => count,
    };
    if f.ignore_start_index.load(Ordering::SeqCst) {
        start = 1;
    }
    let page: Vec<Value> = matching
        .iter()
        .skip(start.saturating_sub(1))
        .take(count)
        .cloned()
        .collect();
    let total = f
        .claimed_total
        .lock()
        .ok()
        .and_then(|t| *t)
        .unwrap_or(matching.len() as u64);
    axum::Json(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total, "startIndex": start,
        "itemsPerPage": page.len(), "Resources": page}))
    .into_response()
}

async fn create(State(f): S, h: HeaderMap, body: Bytes) -> Response {
    let delay = f.create_delay.lock().ok().and_then(|d| *d);
    match delay {
        None => create_now(&f, &h, &body),
        Some(delay) => {
            let task = tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                create_now(&f, &h, &body)
            });
            task.await.unwrap_or_else(|_| {
                scim_error(StatusCode::INTERNAL_SERVER_ERROR, "", "create task failed")
            })
        }
    }
}

fn create_now(f: &ScimState, h: &HeaderMap, body: &Bytes) -> Response {
    if let Some(r) = f.auth_fails(h) {
        return r;
    }
    let Ok(user) = serde_json::from_slice::<Value>(body) else {
        return bad_request("the body is not JSON");
    };
    let name = user_name(&user).to_string();
    if name.is_empty() {
        return bad_request("userName is required");
    }
    let exists = f
        .users
        .lock()
        .map(|users| {
            users
                .iter()
                .any(|u| user_name(u).eq_ignore_ascii_case(&name))
        })
        .unwrap_or(false);
    if exists && !f.allow_duplicates.load(Ordering::SeqCst) {
        return scim_error(
            StatusCode::CONFLICT,
            "uniqueness",
            "userName already exists",
        );
    }
    let stored = f.insert(user);
    f.with_etag(StatusCode::CREATED, &stored)
}

async fn get_one(State(f): S, h: HeaderMap, AxPath(id): AxPath<String>) -> Response {
    if let Some(r) = f.auth_fails(&h) {
        return r;
    }
    let found = f
        .users
        .lock()
        .ok()
        .and_then(|users| users.iter().find(|u| u["id"] == id.as_str()).cloned());
    match found {
        Some(u) => f.with_etag(StatusCode::OK, &u),
        None => scim_error(StatusCode::NOT_FOUND, "", "not found"),
    }
}

/// A PATCH path, as RFC 7644 §3.5.2 writes the shapes headcount sends.
enum PatchPath {
    /// `userName`
    Attr(String),
    /// `name.givenName`, or `urn:...:User:department` (parent = the URN)
    Sub(String, String),
    /// `emails[type eq "work"].value`
    Typed {
        attr: String,
        kind: String,
        sub: String,
    },
    /// `emails[value eq "x"]`
    Filter {
        attr: String,
        key: String,
        value: String,
    },
}

fn parse_patch_path(path: &str) -> Option<PatchPath> {
    if path.to_ascii_lowercase().starts_with("urn:") {
        let (urn, attr) = path.rsplit_once(':')?;
        return Some(PatchPath::Sub(urn.to_string(), attr.to_string()));
    }
    if let Some((attr, rest)) = path.split_once('[') {
        let (filter, tail) = rest.split_once(']')?;
        let mut words = filter.splitn(3, ' ');
        let (key, op, lit) = (words.next()?, words.next()?, words.next()?);
        if !op.eq_ignore_ascii_case("eq") {
            return None;
        }
        let value: String = serde_json::from_str(lit).ok()?;
        return match tail.strip_prefix('.') {
            Some(sub) if key == "type" => Some(PatchPath::Typed {
                attr: attr.to_string(),
                kind: value,
                sub: sub.to_string(),
            }),
            None if tail.is_empty() => Some(PatchPath::Filter {
                attr: attr.to_string(),
                key: key.to_string(),
                value,
            }),
            _ => None,
        };
    }
    match path.split_once('.') {
        Some((a, b)) => Some(PatchPath::Sub(a.to_string(), b.to_string())),
        None if !path.is_empty() => Some(PatchPath::Attr(path.to_string())),
        None => None,
    }
}

/// Applies the PatchOp operations to `user`; `Err` is the `invalidPath` detail.
fn apply_patch(user: &mut Map<String, Value>, ops: &[Value]) -> Result<(), String> {
    for op in ops {
        let path = op["path"].as_str().ok_or("an operation has no path")?;
        let value = op["value"].clone();
        let kind = op["op"].as_str().unwrap_or_default().to_ascii_lowercase();
        let parsed = parse_patch_path(path).ok_or_else(|| format!("bad path {path:?}"))?;
        match (kind.as_str(), parsed) {
            ("add" | "replace", PatchPath::Attr(a)) if value.is_array() => {
                let list = user.entry(a).or_insert(json!([]));
                if let (Some(list), Some(new)) = (list.as_array_mut(), value.as_array()) {
                    list.extend(new.iter().cloned());
                }
            }
            ("add" | "replace", PatchPath::Attr(a)) => {
                user.insert(a, value);
            }
            ("add" | "replace", PatchPath::Sub(a, b)) => {
                let parent = user.entry(a).or_insert(json!({}));
                if !parent.is_object() {
                    *parent = json!({});
                }
                parent[b] = value;
            }
            ("add" | "replace", PatchPath::Typed { attr, kind, sub }) => {
                let list = user.entry(attr).or_insert(json!([]));
                let Some(items) = list.as_array_mut() else {
                    return Err(format!("{path} is not multi-valued"));
                };
                match items.iter_mut().find(|e| e["type"] == kind.as_str()) {
                    Some(e) => e[sub] = value,
                    None => {
                        let primary = items.is_empty();
                        items.push(json!({"type": kind, sub: value, "primary": primary}));
                    }
                }
            }
            ("remove", PatchPath::Attr(a)) => {
                user.remove(&a);
            }
            ("remove", PatchPath::Sub(a, b)) => {
                if let Some(Value::Object(m)) = user.get_mut(&a) {
                    m.remove(&b);
                }
            }
            ("remove", PatchPath::Typed { attr, kind, .. }) => {
                if let Some(Value::Array(items)) = user.get_mut(&attr) {
                    items.retain(|e| e["type"] != kind.as_str());
                }
            }
            ("remove", PatchPath::Filter { attr, key, value }) => {
                if let Some(Value::Array(items)) = user.get_mut(&attr) {
                    items.retain(|e| e[&key] != value.as_str());
                }
            }
            (other, _) => return Err(format!("unsupported op {other:?} on {path}")),
        }
    }
    Ok(())
}

async fn patch(State(f): S, h: HeaderMap, AxPath(id): AxPath<String>, body: Bytes) -> Response {
    if let Some(r) = f.auth_fails(&h) {
        return r;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("the body is not JSON");
    };
    let Some(ops) = body["Operations"].as_array() else {
        return bad_request("Operations is required");
    };
    let Ok(mut users) = f.users.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some(user) = users.iter_mut().find(|u| u["id"] == id.as_str()) else {
        return scim_error(StatusCode::NOT_FOUND, "", "not found");
    };
    if let Some(change) = f.concurrent_write.lock().ok().and_then(|mut c| c.take()) {
        bump(user);
        if let (Some((path, value)), Value::Object(map)) = (change, &mut *user) {
            let op = json!([{"op": "replace", "path": path, "value": value}]);
            if let Err(e) = apply_patch(map, op.as_array().map_or(&[], Vec::as_slice)) {
                return bad_request(&e);
            }
        }
    }
    if f.etags.load(Ordering::SeqCst)
        && let Some(tag) = h.get("if-match").and_then(|t| t.to_str().ok())
        && tag != version(user)
    {
        return scim_error(StatusCode::PRECONDITION_FAILED, "", "version mismatch");
    }
    let mut updated = user.clone();
    let Value::Object(map) = &mut updated else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Err(e) = apply_patch(map, ops) {
        return scim_error(StatusCode::BAD_REQUEST, "invalidPath", &e);
    }
    bump(&mut updated);
    *user = updated;
    // Like scim2-server: 204 and no body.
    StatusCode::NO_CONTENT.into_response()
}

async fn delete(State(f): S, h: HeaderMap, AxPath(id): AxPath<String>) -> Response {
    if let Some(r) = f.auth_fails(&h) {
        return r;
    }
    let Ok(mut users) = f.users.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let before = users.len();
    users.retain(|u| u["id"] != id.as_str());
    if users.len() == before {
        return scim_error(StatusCode::NOT_FOUND, "", "not found");
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn spc(State(f): S) -> axum::Json<Value> {
    axum::Json(json!({"etag": {"supported": f.etags.load(Ordering::SeqCst)}}))
}
