//! SCIM 2.0 (RFC 7643/7644) target and source, on the shared [`crate::http`] layer.
//!
//! * Fields are SCIM attribute paths exactly as `headcount fields scim` lists them; a User is
//!   flattened into them (`name.givenName`, the work email, enterprise attributes by URN).
//! * Updates are PATCH with only the changed paths; deactivation is `replace active=false`.
//! * A create whose answer was lost is looked up by `userName` before anything else, so a
//!   retry never makes a duplicate; a `409` after such an attempt is that attempt having
//!   landed. A `409` on a first attempt is an account made since the plan: the create fails,
//!   naming it (the next plan shows it as an adoption), never a silent takeover.
//! * ETags (`meta.version`) are sent as `If-Match` when the server offers them; a `412` re-reads
//!   the account and writes again only if the values the plan saw still hold.
//!
//! Default rate limit: [`DEFAULT_RATE_LIMIT`] (600 requests a minute). SCIM servers set their
//! own limits (RFC 7644 leaves it to them); 10/s is well under what hosted providers allow and
//! keeps a 10k-user apply under 20 minutes. Override with `rate_limit`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::IF_MATCH;
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use crate::connectors::{
    ApplyOptions, ConnectorError, LiveAccount, OpResult, Source, SourceRecord, Target, TargetOp,
};
use crate::http::{
    Auth, HttpClient, HttpClientBuilder, HttpError, Page, Request, Response, paging,
};
use crate::model::{HttpSettings, RateLimit};

/// 600 requests a minute: see the module documentation.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    count: 600,
    per: Duration::from_secs(60),
};
/// Users asked for per list page; servers may return fewer (they cap `count`).
pub const PAGE_SIZE: u64 = 500;
/// How often a create is resent after an ambiguous answer and a lookup that found nothing.
const CREATE_ATTEMPTS: u32 = 6;
/// How often a PATCH/DELETE is resent after a 412 whose expected values still held.
const PRECONDITION_ROUNDS: u32 = 3;

pub const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const MEDIA_TYPE: &str = "application/scim+json";

/// The HTTP client builder of a SCIM connector: bearer token, SCIM media type, 600/min
/// default. The caller adds the run's scrubber and builds it.
pub fn client(
    name: &str,
    base_url: &str,
    token: SecretString,
    settings: HttpSettings,
) -> Result<HttpClientBuilder, HttpError> {
    Ok(HttpClient::builder(name, base_url)
        .auth(Auth::Bearer(token))
        .media_type(MEDIA_TYPE, "application/scim+json, application/json")
        .rate_limit(settings.rate_limit.unwrap_or(DEFAULT_RATE_LIMIT))
        .timeout(settings.timeout))
}

/// One catalog path, parsed. Only the shapes the catalog uses (and enterprise attributes).
#[derive(Debug, Clone, PartialEq)]
enum AttrPath<'a> {
    /// `userName`
    Attr(&'a str),
    /// `name.givenName`
    Sub(&'a str, &'a str),
    /// `emails[type eq "work"].value`
    Typed {
        attr: &'a str,
        kind: String,
        sub: &'a str,
    },
    /// `urn:...:enterprise:2.0:User:department`
    Ext { urn: &'a str, attr: &'a str },
}

fn parse_path(path: &str) -> Option<AttrPath<'_>> {
    if path
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
    {
        let (urn, attr) = path.rsplit_once(':')?;
        return (!attr.is_empty() && !attr.contains(['.', '[']))
            .then_some(AttrPath::Ext { urn, attr });
    }
    if let Some((attr, rest)) = path.split_once('[') {
        let (filter, sub) = rest.split_once("].")?;
        let mut words = filter.splitn(3, ' ');
        let (Some(key), Some(op), Some(value)) = (words.next(), words.next(), words.next()) else {
            return None;
        };
        if key != "type" || !op.eq_ignore_ascii_case("eq") {
            return None;
        }
        let kind: String = serde_json::from_str(value.trim()).ok()?;
        return Some(AttrPath::Typed { attr, kind, sub });
    }
    match path.split_once('.') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains('.') => {
            Some(AttrPath::Sub(a, b))
        }
        Some(_) => None,
        None if !path.is_empty() => Some(AttrPath::Attr(path)),
        None => None,
    }
}

/// The entry of a multi-valued attribute a typed path reads: the one of that type, else the
/// primary one, else the first.
fn pick_entry<'v>(items: &'v [Value], kind: &str) -> Option<&'v Value> {
    let typed = |e: &&Value| {
        e.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case(kind))
    };
    items
        .iter()
        .find(typed)
        .or_else(|| {
            items
                .iter()
                .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
        })
        .or_else(|| items.first())
}

fn has_typed_entry(resource: &Value, attr: &str, kind: &str) -> bool {
    resource
        .get(attr)
        .and_then(Value::as_array)
        .is_some_and(|items| {
            items.iter().any(|e| {
                e.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.eq_ignore_ascii_case(kind))
            })
        })
}

/// The value at `path` in a User resource; `Null` when absent. Only scalars count: a complex
/// value where a scalar is expected is the server's business, not a field value.
fn read_path(resource: &Value, path: &AttrPath) -> Value {
    let found = match path {
        AttrPath::Attr(a) => resource.get(*a),
        AttrPath::Sub(a, b) => resource.get(*a).and_then(|v| v.get(*b)),
        AttrPath::Typed { attr, kind, sub } => resource
            .get(*attr)
            .and_then(Value::as_array)
            .and_then(|items| pick_entry(items, kind))
            .and_then(|e| e.get(*sub)),
        AttrPath::Ext { urn, attr } => resource.get(*urn).and_then(|v| v.get(*attr)),
    };
    match found {
        Some(v) if !v.is_object() && !v.is_array() => v.clone(),
        _ => Value::Null,
    }
}

/// Sets `parent[key][sub] = value`, making `parent[key]` an object when it is not one.
fn set_in_object(parent: &mut Map<String, Value>, key: &str, sub: &str, value: Value) {
    let mut inner = match parent.remove(key) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    inner.insert(sub.to_string(), value);
    parent.insert(key.to_string(), Value::Object(inner));
}

/// Writes `value` at `path` into a resource being built (for a create).
fn write_path(resource: &mut Map<String, Value>, path: &AttrPath, value: Value) {
    match path {
        AttrPath::Attr(a) => {
            resource.insert(a.to_string(), value);
        }
        AttrPath::Sub(a, b) => set_in_object(resource, a, b, value),
        AttrPath::Ext { urn, attr } => set_in_object(resource, urn, attr, value),
        AttrPath::Typed { attr, kind, sub } => {
            let slot = resource
                .entry(attr.to_string())
                .or_insert_with(|| Value::Array(Vec::new()));
            if !slot.is_array() {
                *slot = Value::Array(Vec::new());
            }
            if let Value::Array(items) = slot {
                let primary = items.is_empty();
                match items
                    .iter_mut()
                    .find(|e| e.get("type").and_then(Value::as_str) == Some(kind.as_str()))
                {
                    Some(Value::Object(e)) => {
                        e.insert(sub.to_string(), value);
                    }
                    _ => items.push(json!({"type": kind, *sub: value, "primary": primary})),
                }
            }
        }
    }
}

/// The field names a User is flattened into: the catalog's, plus any scalar enterprise
/// attribute the server returns.
fn catalog_paths() -> impl Iterator<Item = &'static str> {
    super::FIELDS.iter().map(|f| f.name)
}

/// A User resource as a live account.
pub fn to_live(resource: &Value) -> Result<LiveAccount, ConnectorError> {
    let id = match resource.get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(ConnectorError::BadData(format!(
                "a SCIM User has no `id`: {}",
                crate::http::redact::truncate(&resource.to_string(), 300)
            )));
        }
    };
    let active = resource
        .get("active")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let mut fields = BTreeMap::new();
    for name in catalog_paths() {
        if let Some(path) = parse_path(name) {
            let v = read_path(resource, &path);
            if !v.is_null() {
                fields.insert(name.to_string(), v);
            }
        }
    }
    if let Some(ext) = resource.get(ENTERPRISE_USER).and_then(Value::as_object) {
        for (k, v) in ext {
            if !v.is_null() && !v.is_object() && !v.is_array() {
                fields.insert(format!("{ENTERPRISE_USER}:{k}"), v.clone());
            }
        }
    }
    Ok(LiveAccount { id, active, fields })
}

/// The create body: core schema, enterprise schema when one of its attributes is set.
fn resource_for_create(
    fields: &BTreeMap<String, Value>,
    active: bool,
) -> Result<Value, ConnectorError> {
    let mut res = Map::new();
    let mut schemas = vec![CORE_USER.to_string()];
    for (name, value) in fields {
        if value.is_null() {
            continue;
        }
        let path = parse_path(name).ok_or_else(|| unknown_field(name))?;
        if let AttrPath::Ext { urn, .. } = &path
            && !schemas.iter().any(|s| s == urn)
        {
            schemas.push(urn.to_string());
        }
        write_path(&mut res, &path, value.clone());
    }
    res.insert("active".to_string(), Value::Bool(active));
    res.insert("schemas".to_string(), json!(schemas));
    Ok(Value::Object(res))
}

fn unknown_field(name: &str) -> ConnectorError {
    ConnectorError::Config(format!(
        "`{name}` is not a SCIM attribute path headcount can write: see `headcount fields scim`"
    ))
}

/// A SCIM filter string literal: JSON string syntax (quotes and backslashes escaped).
pub fn filter_literal(value: &str) -> String {
    Value::String(value.to_string()).to_string()
}

/// What was learnt about an account when it was last read: its version and whether its
/// multi-valued attributes have an entry of the type a path selects (else a `replace` on
/// `emails[type eq "work"].value` would have no target).
#[derive(Debug, Clone, Default)]
struct Known {
    etag: Option<String>,
    typed: HashSet<String>,
}

fn known_of(resource: &Value, header_etag: Option<&str>) -> Known {
    let etag = header_etag
        .map(str::to_string)
        .or_else(|| {
            resource
                .pointer("/meta/version")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|e| !e.is_empty());
    let mut typed = HashSet::new();
    for name in catalog_paths() {
        if let Some(AttrPath::Typed { attr, kind, .. }) = parse_path(name)
            && has_typed_entry(resource, attr, &kind)
        {
            typed.insert(format!("{attr}:{kind}"));
        }
    }
    Known { etag, typed }
}

/// A create refused because the account exists, and it is not one an earlier attempt of this
/// run made: someone made it after the plan. Never taken over silently.
pub(crate) fn exists_since_plan(key: &str, value: &str, id: &str) -> ConnectorError {
    ConnectorError::rejected(format!(
        "an account with {key} {value:?} already exists in the target (id {id}): it appeared after the plan was made. It is not taken over silently; run plan again, which shows it as an adoption to review"
    ))
}

/// The SCIM calls shared by the target and the source.
struct ScimApi {
    client: HttpClient,
}

impl ScimApi {
    /// The first page of Users (matching `filter`): what `validate --online` reads.
    async fn first_page(&self, filter: Option<&str>) -> Result<Vec<Value>, HttpError> {
        let mut req = Request::get("Users")
            .query("startIndex", 1)
            .query("count", PAGE_SIZE);
        if let Some(f) = filter.map(str::trim).filter(|f| !f.is_empty()) {
            req = req.query("filter", f);
        }
        let resp = self.client.send(req).await?;
        let v: Value = resp.json()?;
        match v.get("Resources") {
            Some(Value::Array(items)) => Ok(items.clone()),
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(_) => Err(decode(&resp, "`Resources` is not a list")),
        }
    }

    /// Every User (matching `filter`), following `startIndex`/`count` until `totalResults` (or
    /// an empty page when there is none). Fails when a page repeats users (a server ignoring
    /// `startIndex`) or the list ends before its own `totalResults`.
    async fn list(&self, filter: Option<&str>) -> Result<Vec<Value>, HttpError> {
        let mut first = Request::get("Users")
            .query("startIndex", 1)
            .query("count", PAGE_SIZE);
        if let Some(f) = filter.map(str::trim).filter(|f| !f.is_empty()) {
            first = first.query("filter", f);
        }
        let mut seen: u64 = 0;
        let mut ids: HashSet<String> = HashSet::new();
        let client = &self.client;
        client
            .collect_pages(first, |req, resp| {
                let v: Value = resp.json()?;
                let resources = match v.get("Resources") {
                    Some(Value::Array(items)) => items.clone(),
                    None | Some(Value::Null) => Vec::new(),
                    Some(_) => {
                        return Err(decode(&resp, "`Resources` is not a list"));
                    }
                };
                let total = v.get("totalResults").and_then(Value::as_u64);
                for r in &resources {
                    if let Some(id) = r.get("id").and_then(Value::as_str)
                        && !ids.insert(id.to_string())
                    {
                        return Err(client.inconsistent(
                            resp.what.clone(),
                            format!(
                                "user {id} came twice: the server does not page by `startIndex`"
                            ),
                        ));
                    }
                }
                let start = req
                    .query
                    .iter()
                    .find(|(k, _)| k == "startIndex")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(1);
                seen += resources.len() as u64;
                let next =
                    paging::next_by_index(req, "startIndex", start, resources.len(), seen, total)
                        .map_err(|cause| client.inconsistent(resp.what.clone(), cause))?;
                Ok(Page {
                    items: resources,
                    next,
                })
            })
            .await
    }

    /// The User with this `userName` (case-insensitive, as SCIM compares it), if any.
    async fn find_by_user_name(&self, user_name: &str) -> Result<Option<Value>, HttpError> {
        let filter = format!("userName eq {}", filter_literal(user_name));
        let resp = self
            .client
            .send(Request::get("Users").query("filter", filter))
            .await?;
        let v: Value = resp.json()?;
        let mut found: Vec<Value> = v
            .get("Resources")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| {
                r.get("userName")
                    .and_then(Value::as_str)
                    .is_some_and(|u| u.to_lowercase() == user_name.to_lowercase())
            })
            .collect();
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            n => Err(decode(
                &resp,
                &format!("{n} users have userName {user_name:?}; expected at most one"),
            )),
        }
    }

    async fn get(&self, id: &str) -> Result<(Value, Option<String>), HttpError> {
        let resp = self
            .client
            .send(Request::get(format!(
                "Users/{}",
                crate::http::path_segment(id)
            )))
            .await?;
        let etag = resp.header("etag").map(str::to_string);
        Ok((resp.json()?, etag))
    }
}

fn decode(resp: &Response, cause: &str) -> HttpError {
    HttpError::Decode {
        what: resp.what.clone(),
        cause: cause.to_string(),
    }
}

/// The `scim` target. Cheap to share across concurrent operations.
pub struct ScimTarget {
    api: ScimApi,
    known: Mutex<HashMap<String, Known>>,
    /// ServiceProviderConfig's `etag.supported`, read once on the first write.
    spc_etags: tokio::sync::OnceCell<bool>,
    /// Set when any answer carried an `ETag` header.
    etag_seen: AtomicBool,
}

impl ScimTarget {
    pub fn new(client: HttpClient) -> Self {
        ScimTarget {
            api: ScimApi { client },
            known: Mutex::new(HashMap::new()),
            spc_etags: tokio::sync::OnceCell::new(),
            etag_seen: AtomicBool::new(false),
        }
    }

    /// The HTTP client (for its stats).
    pub fn client(&self) -> &HttpClient {
        &self.api.client
    }

    fn remember(&self, id: &str, resource: &Value, header_etag: Option<&str>) {
        if header_etag.is_some() {
            self.etag_seen.store(true, Ordering::Relaxed);
        }
        let k = known_of(resource, header_etag);
        if let Ok(mut map) = self.known.lock() {
            map.insert(id.to_string(), k);
        }
    }

    fn known(&self, id: &str) -> Option<Known> {
        self.known.lock().ok().and_then(|m| m.get(id).cloned())
    }

    fn forget_etag(&self, id: &str) {
        if let Ok(mut m) = self.known.lock()
            && let Some(k) = m.get_mut(id)
        {
            k.etag = None;
        }
    }

    async fn etags_offered(&self) -> bool {
        if self.etag_seen.load(Ordering::Relaxed) {
            return true;
        }
        *self
            .spc_etags
            .get_or_init(|| async {
                match self
                    .api
                    .client
                    .send_json::<Value>(Request::get("ServiceProviderConfig"))
                    .await
                {
                    Ok(v) => v.pointer("/etag/supported").and_then(Value::as_bool) == Some(true),
                    Err(e) => {
                        tracing::debug!("SCIM ServiceProviderConfig unreadable ({e}): no ETags");
                        false
                    }
                }
            })
            .await
    }

    async fn if_match(&self, id: &str) -> Option<String> {
        let tag = self.known(id)?.etag?;
        self.etags_offered().await.then_some(tag)
    }

    /// Reads the account afresh (new version included) and flattens it.
    async fn reread(&self, id: &str) -> Result<LiveAccount, ConnectorError> {
        let (resource, etag) = self.api.get(id).await?;
        self.remember(id, &resource, etag.as_deref());
        to_live(&resource)
    }

    async fn create(&self, fields: &BTreeMap<String, Value>, active: bool) -> OpResult {
        let user_name = fields
            .get("userName")
            .and_then(Value::as_str)
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| {
                ConnectorError::rejected(
                    "a SCIM account needs `userName`: map it in the sync's fields",
                )
            })?;
        let body = resource_for_create(fields, active)?;
        let mut last: Option<HttpError> = None;
        for _ in 0..CREATE_ATTEMPTS {
            match self
                .api
                .client
                .send(Request::post("Users").json(body.clone()))
                .await
            {
                Ok(resp) => {
                    // The account exists now, whatever the body holds: an unreadable body
                    // means a lookup, never a second POST.
                    let created: Value = serde_json::from_slice(&resp.body).unwrap_or_default();
                    if let Some(id) = created.get("id").and_then(Value::as_str) {
                        self.remember(id, &created, resp.header("etag"));
                        return Ok(id.to_string());
                    }
                    // No id in the answer: the account is there; find it.
                    return match self.lookup_created(user_name).await? {
                        Some(id) => Ok(id),
                        None => Err(ConnectorError::BadData(format!(
                            "POST /Users answered {} without an id, and no user {user_name:?} is found",
                            resp.status
                        ))),
                    };
                }
                Err(e) if e.is_ambiguous() => {
                    tracing::info!("create of {user_name:?}: {e}; looking it up by userName");
                    if let Some(id) = self.lookup_created(user_name).await? {
                        return Ok(id);
                    }
                    last = Some(e);
                }
                // After an attempt of ours whose outcome was unknown, `409` is that attempt
                // having landed: the account is ours. On a first attempt it is an account that
                // appeared since the plan: taking it would bypass ownership (the plan would
                // have shown it as an adoption, for review), so the create fails, naming it.
                Err(e) if e.status() == Some(409) => {
                    return match self.lookup_created(user_name).await? {
                        Some(id) if last.is_some() => {
                            tracing::info!(
                                "create of {user_name:?}: the earlier attempt landed (409 now); it is {id}"
                            );
                            Ok(id)
                        }
                        Some(id) => Err(exists_since_plan("userName", user_name, &id)),
                        None => Err(e.into()),
                    };
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last.map(Into::into).unwrap_or_else(|| {
            ConnectorError::Unavailable(format!(
                "create of {user_name:?} failed {CREATE_ATTEMPTS} times"
            ))
        }))
    }

    /// After a create of unknown outcome: the account's id if it exists.
    async fn lookup_created(&self, user_name: &str) -> Result<Option<String>, ConnectorError> {
        let found =
            self.api
                .find_by_user_name(user_name)
                .await
                .map_err(|e| ConnectorError::Ambiguous {
                    what: format!("POST /Users ({user_name:?})"),
                    cause: format!(
                        "looking the account up failed: {e}; run plan again before retrying"
                    ),
                })?;
        Ok(found.and_then(|r| {
            let id = r.get("id").and_then(Value::as_str).map(str::to_string)?;
            self.remember(&id, &r, None);
            Some(id)
        }))
    }

    /// PatchOp operations for the changed paths only.
    fn patch_ops(
        &self,
        id: &str,
        fields: &BTreeMap<String, Value>,
        expected: &BTreeMap<String, Value>,
        active: Option<bool>,
    ) -> Result<(Vec<Value>, bool), ConnectorError> {
        let known = self.known(id);
        let mut ops = Vec::new();
        let mut idempotent = true;
        for (name, value) in fields {
            let path = parse_path(name).ok_or_else(|| unknown_field(name))?;
            if let AttrPath::Typed { attr, kind, sub } = &path {
                let has_entry = known
                    .as_ref()
                    .is_none_or(|k| k.typed.contains(&format!("{attr}:{kind}")));
                if !has_entry {
                    // No entry of that type: a filtered path would have no target.
                    if value.is_null() {
                        if let Some(old) = expected.get(name).and_then(Value::as_str) {
                            ops.push(json!({"op": "remove",
                                "path": format!("{attr}[{sub} eq {}]", filter_literal(old))}));
                        }
                    } else {
                        idempotent = false; // `add` to a list appends
                        ops.push(json!({"op": "add", "path": attr,
                            "value": [{"type": kind, *sub: value}]}));
                    }
                    continue;
                }
            }
            if value.is_null() {
                ops.push(json!({"op": "remove", "path": name}));
            } else {
                ops.push(json!({"op": "replace", "path": name, "value": value}));
            }
        }
        if let Some(a) = active {
            ops.push(json!({"op": "replace", "path": "active", "value": a}));
        }
        Ok((ops, idempotent))
    }

    async fn modify(
        &self,
        id: &str,
        fields: &BTreeMap<String, Value>,
        expected: &BTreeMap<String, Value>,
        active: Option<bool>,
    ) -> OpResult {
        let (ops, idempotent) = self.patch_ops(id, fields, expected, active)?;
        if ops.is_empty() {
            return Ok(id.to_string());
        }
        let body = json!({"schemas": [PATCH_OP], "Operations": ops});
        for _ in 0..PRECONDITION_ROUNDS {
            let mut req = Request::patch(format!("Users/{}", crate::http::path_segment(id)))
                .json(body.clone())
                .idempotent(idempotent);
            if let Some(tag) = self.if_match(id).await {
                req = req.header(IF_MATCH, tag);
            }
            match self.api.client.send(req).await {
                Ok(resp) => {
                    self.after_write(id, &resp);
                    return Ok(id.to_string());
                }
                Err(e) if e.status() == Some(412) => {
                    let fresh = self.reread(id).await?;
                    let get = |k: &str| fresh.fields.get(k).cloned().unwrap_or(Value::Null);
                    // Already as desired (an earlier attempt landed): done.
                    if fields.iter().all(|(k, v)| get(k) == *v)
                        && active.is_none_or(|a| fresh.active == a)
                    {
                        return Ok(id.to_string());
                    }
                    let changed: Vec<&str> = expected
                        .iter()
                        .filter(|(k, v)| get(k) != **v)
                        .map(|(k, _)| k.as_str())
                        .collect();
                    if !changed.is_empty() {
                        return Err(ConnectorError::Rejected {
                            status: Some(412),
                            vendor: None,
                            message: format!(
                                "account {id}: {} changed in the target since the plan: run plan again",
                                changed.join(", ")
                            ),
                        });
                    }
                    tracing::debug!(
                        "PATCH /Users/{id}: 412, the planned values still hold; retrying with the new version"
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ConnectorError::Rejected {
            status: Some(412),
            vendor: None,
            message: format!(
                "PATCH /Users/{id}: the server kept answering 412 Precondition Failed; run plan again"
            ),
        })
    }

    /// Keeps the version a write returned; without one the remembered version is stale.
    fn after_write(&self, id: &str, resp: &Response) {
        let body: Option<Value> = (!resp.body.is_empty())
            .then(|| serde_json::from_slice(&resp.body).ok())
            .flatten();
        match body {
            Some(r) if r.get("id").is_some() => self.remember(id, &r, resp.header("etag")),
            _ => match resp.header("etag") {
                Some(tag) => {
                    self.etag_seen.store(true, Ordering::Relaxed);
                    if let Ok(mut m) = self.known.lock() {
                        m.entry(id.to_string()).or_default().etag = Some(tag.to_string());
                    }
                }
                None => self.forget_etag(id),
            },
        }
    }

    async fn delete(&self, id: &str) -> OpResult {
        for _ in 0..PRECONDITION_ROUNDS {
            let mut req = Request::delete(format!("Users/{}", crate::http::path_segment(id)));
            if let Some(tag) = self.if_match(id).await {
                req = req.header(IF_MATCH, tag);
            }
            match self.api.client.send(req).await {
                Ok(_) => {
                    if let Ok(mut m) = self.known.lock() {
                        m.remove(id);
                    }
                    return Ok(id.to_string());
                }
                // Gone already (an earlier attempt landed, or someone else deleted it).
                Err(e) if e.status() == Some(404) => return Ok(id.to_string()),
                // The removal does not depend on the account's values: take the new version.
                Err(e) if e.status() == Some(412) => match self.api.get(id).await {
                    Ok((resource, etag)) => self.remember(id, &resource, etag.as_deref()),
                    Err(e) if e.status() == Some(404) => return Ok(id.to_string()),
                    Err(e) => return Err(e.into()),
                },
                Err(e) => return Err(e.into()),
            }
        }
        Err(ConnectorError::Rejected {
            status: Some(412),
            vendor: None,
            message: format!(
                "DELETE /Users/{id}: the server kept answering 412 Precondition Failed; run plan again"
            ),
        })
    }

    async fn run(&self, op: &TargetOp) -> OpResult {
        match op {
            TargetOp::Create { fields, active, .. } => self.create(fields, *active).await,
            TargetOp::Modify {
                id,
                fields,
                expected,
                active,
                ..
            } => self.modify(id, fields, expected, *active).await,
            TargetOp::Delete { id } => self.delete(id).await,
        }
    }
}

#[async_trait]
impl Target for ScimTarget {
    fn http_stats(&self) -> Option<crate::http::HttpStats> {
        Some(self.client().stats())
    }

    async fn list(&self) -> Result<Vec<LiveAccount>, ConnectorError> {
        let resources = self.api.list(None).await?;
        let mut out = Vec::with_capacity(resources.len());
        for r in &resources {
            let acc = to_live(r)?;
            self.remember(&acc.id, r, None);
            out.push(acc);
        }
        Ok(out)
    }

    /// By `userName` through the filter when the identity has it (the SCIM unique key);
    /// otherwise every account.
    async fn find(
        &self,
        identity: &BTreeMap<String, String>,
    ) -> Result<Vec<LiveAccount>, ConnectorError> {
        let Some(user_name) = identity.get("userName") else {
            return self.list().await;
        };
        let filter = format!("userName eq {}", filter_literal(user_name));
        let resources = self.api.list(Some(&filter)).await?;
        resources.iter().map(to_live).collect()
    }

    fn write_window(&self) -> crate::connectors::WriteWindow {
        self.client().write_window()
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
}

/// The `scim` source: every User (matching the optional filter) as a record.
pub struct ScimSource {
    api: ScimApi,
    filter: Option<String>,
}

impl ScimSource {
    pub fn new(client: HttpClient, filter: Option<String>) -> Self {
        ScimSource {
            api: ScimApi { client },
            filter,
        }
    }
}

/// A SCIM User as a source record, labelled by its `userName` (or `id`).
fn scim_record(r: Value) -> SourceRecord {
    let label = r
        .get("userName")
        .and_then(Value::as_str)
        .or_else(|| r.get("id").and_then(Value::as_str))
        .unwrap_or("(no userName)")
        .to_string();
    SourceRecord { label, data: r }
}

#[async_trait]
impl Source for ScimSource {
    async fn read(&self) -> Result<Vec<SourceRecord>, ConnectorError> {
        let resources = self.api.list(self.filter.as_deref()).await?;
        Ok(resources.into_iter().map(scim_record).collect())
    }

    async fn probe(&self) -> Result<Vec<SourceRecord>, ConnectorError> {
        let resources = self.api.first_page(self.filter.as_deref()).await?;
        Ok(resources.into_iter().map(scim_record).collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testkit::scim::ScimEmulator;
    use crate::testkit::{Fault, Match};

    async fn fake() -> (ScimEmulator, ScimTarget) {
        let f = ScimEmulator::start().await;
        let client = f.client_builder().build().unwrap();
        (f, ScimTarget::new(client))
    }

    fn user(n: usize) -> Value {
        json!({"schemas": [CORE_USER], "userName": format!("user{n}"), "active": true,
            "name": {"givenName": format!("G{n}"), "familyName": "F"},
            "emails": [{"type": "work", "value": format!("user{n}@x.io"), "primary": true}]})
    }

    fn fields(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    /// Applies `ops` and returns the outcomes in order.
    async fn apply(t: &ScimTarget, ops: Vec<TargetOp>) -> Vec<OpResult> {
        let results: Mutex<Vec<Option<OpResult>>> = Mutex::new(vec![None; ops.len()]);
        t.apply(&ops, &ApplyOptions::default(), &|i, r| {
            results.lock().unwrap()[i] = Some(r)
        })
        .await
        .unwrap();
        results
            .into_inner()
            .unwrap()
            .into_iter()
            .map(Option::unwrap)
            .collect()
    }

    fn create_op(name: &str) -> TargetOp {
        TargetOp::Create {
            fields: fields(&[
                ("userName", json!(name)),
                ("name.givenName", json!("Ann")),
                (
                    "emails[type eq \"work\"].value",
                    json!(format!("{name}@x.io")),
                ),
                (
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
                    json!("Support"),
                ),
                ("title", Value::Null),
            ]),
            active: true,
            notify: false,
        }
    }

    #[test]
    fn paths_parse_as_the_catalog_writes_them() {
        assert_eq!(parse_path("userName"), Some(AttrPath::Attr("userName")));
        assert_eq!(
            parse_path("name.givenName"),
            Some(AttrPath::Sub("name", "givenName"))
        );
        assert_eq!(
            parse_path("emails[type eq \"work\"].value"),
            Some(AttrPath::Typed {
                attr: "emails",
                kind: "work".into(),
                sub: "value"
            })
        );
        assert_eq!(
            parse_path(&format!("{ENTERPRISE_USER}:department")),
            Some(AttrPath::Ext {
                urn: ENTERPRISE_USER,
                attr: "department"
            })
        );
        for name in catalog_paths() {
            assert!(parse_path(name).is_some(), "{name}");
        }
        for bad in ["", "a.b.c", "emails[value eq \"x\"].value", "emails[type"] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
        assert_eq!(filter_literal("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(crate::http::path_segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn users_flatten_into_catalog_fields() {
        let r = json!({"id": "1", "userName": "ann", "active": false,
            "name": {"givenName": "Ann", "familyName": "Lee"},
            "emails": [{"type": "home", "value": "h@x.io"}, {"type": "Work", "value": "w@x.io"}],
            "phoneNumbers": [{"value": "+1", "primary": true}],
            ENTERPRISE_USER: {"department": "Ops", "employeeNumber": "7", "manager": {"value": "2"}},
            "groups": [{"value": "g"}]});
        let acc = to_live(&r).unwrap();
        assert_eq!(acc.id, "1");
        assert!(!acc.active);
        let f = &acc.fields;
        assert_eq!(f["name.givenName"], "Ann");
        assert_eq!(f["emails[type eq \"work\"].value"], "w@x.io");
        assert_eq!(f["phoneNumbers[type eq \"work\"].value"], "+1");
        assert_eq!(f[&format!("{ENTERPRISE_USER}:department")], "Ops");
        assert!(!f.contains_key(&format!("{ENTERPRISE_USER}:manager")));
        assert!(!f.contains_key("title"));
        assert!(to_live(&json!({"userName": "x"})).is_err());
    }

    #[tokio::test]
    async fn lists_all_users_across_capped_pages() {
        let (f, t) = fake().await;
        for n in 0..7 {
            f.insert(user(n));
        }
        f.set_max_count(Some(3));
        let accounts = t.list().await.unwrap();
        assert_eq!(accounts.len(), 7);
        assert_eq!(accounts[6].fields["userName"], "user6");
        assert_eq!(
            accounts[0].fields["emails[type eq \"work\"].value"],
            "user0@x.io"
        );
        assert_eq!(
            f.log().lines(),
            [
                "GET /t/v2/Users?startIndex=1&count=500",
                "GET /t/v2/Users?count=500&startIndex=4",
                "GET /t/v2/Users?count=500&startIndex=7",
            ]
        );

        let source = ScimSource::new(t.client().clone(), Some("userName eq \"user3\"".into()));
        let records = source.read().await.unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].label, "user3");
        assert_eq!(records[0].data["name"]["givenName"], "G3");

        // `validate --online` reads one page, however many there are.
        f.log().clear();
        let source = ScimSource::new(t.client().clone(), None);
        let first = source.probe().await.unwrap();
        assert_eq!(first.len(), 3);
        assert_eq!(f.log().lines(), ["GET /t/v2/Users?startIndex=1&count=500"]);
    }

    /// Issue 7, point 6: `totalResults: 1000000000000` with an empty first page is a broken
    /// server, not an empty target (creates would be planned for everyone).
    #[tokio::test]
    async fn a_list_that_ends_before_its_total_is_an_error_naming_the_target() {
        let (f, t) = fake().await;
        f.set_claimed_total(Some(1_000_000_000_000));
        let err = t.list().await.unwrap_err().to_string();
        assert!(err.contains("contradicts itself"), "{err}");
        assert!(err.contains("after 0 item(s)"), "{err}");
        assert!(err.contains("1000000000000"), "{err}");
        for n in 0..3 {
            f.insert(user(n));
        }
        f.set_max_count(Some(2));
        f.set_claimed_total(Some(4));
        let err = t.list().await.unwrap_err().to_string();
        assert!(err.contains("after 3 item(s)"), "{err}");
        // The client as the connector builds it names the target.
        let named = ScimTarget::new(
            HttpClient::builder("scim target `people`", f.base_url())
                .auth(Auth::Bearer(SecretString::from("t".to_string())))
                .unlimited()
                .build()
                .unwrap(),
        );
        let err = named.list().await.unwrap_err().to_string();
        assert!(err.starts_with("scim target `people`: GET"), "{err}");
        // Telling the truth again: the list is whole.
        f.set_claimed_total(None);
        assert_eq!(t.list().await.unwrap().len(), 3);
    }

    /// After a kill, an interrupted create is looked up by `userName` through the filter (one
    /// request, not the whole list); without `userName` in the identity, everything is listed.
    #[tokio::test]
    async fn find_looks_up_by_user_name_with_the_filter() {
        let (f, t) = fake().await;
        for n in 0..3 {
            f.insert(user(n));
        }
        let identity = BTreeMap::from([("userName".to_string(), "user1".to_string())]);
        let found = t.find(&identity).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].fields["userName"], "user1");
        assert_eq!(
            f.log().lines(),
            ["GET /t/v2/Users?startIndex=1&count=500&filter=userName eq \"user1\""]
        );
        let by_email = BTreeMap::from([("externalId".to_string(), "x".to_string())]);
        assert_eq!(t.find(&by_email).await.unwrap().len(), 3);
        assert!(t.write_window().attempt > Duration::ZERO);
        assert!(t.write_window().total > t.write_window().attempt);
    }

    /// A server that ignores `startIndex` repeats its first page: an error, never a loop or a
    /// short list.
    #[tokio::test]
    async fn a_page_that_repeats_is_an_error() {
        let (f, t) = fake().await;
        for n in 0..3 {
            f.insert(user(n));
        }
        f.set_max_count(Some(2));
        f.set_ignore_start_index(true);
        let err = t.list().await.unwrap_err().to_string();
        assert!(err.contains("contradicts itself"), "{err}");
        assert!(err.contains("came twice"), "{err}");
        assert_eq!(f.log().lines().len(), 2, "stopped at the repeat");
    }

    #[tokio::test]
    async fn creates_with_schemas_and_nested_attributes() {
        let (f, t) = fake().await;
        let id = apply(&t, vec![create_op("ann")]).await.remove(0).unwrap();
        let body = f.log().method("POST")[0].body.clone().unwrap();
        assert_eq!(body["schemas"], json!([CORE_USER, ENTERPRISE_USER]));
        assert_eq!(body["name"]["givenName"], "Ann");
        assert_eq!(
            body["emails"],
            json!([{"type": "work", "value": "ann@x.io", "primary": true}])
        );
        assert_eq!(body[ENTERPRISE_USER]["department"], "Support");
        assert_eq!(body["active"], true);
        assert!(body.get("title").is_none());
        let listed = t.list().await.unwrap();
        assert_eq!(listed[0].id, id);
    }

    #[tokio::test]
    async fn a_create_whose_answer_was_lost_is_found_not_duplicated() {
        let (f, t) = fake().await;
        f.faults()
            .on(Match::post("/Users"))
            .inject(Fault::LoseResponse);
        let results = apply(&t, vec![create_op("bob")]).await;
        let id = results[0].clone().unwrap();
        assert_eq!(f.users().len(), 1);
        assert_eq!(f.users()[0]["id"], id.as_str());
        assert_eq!(
            f.log().lines(),
            [
                "POST /t/v2/Users",
                r#"GET /t/v2/Users?filter=userName eq "bob""#
            ]
        );
        assert_eq!(t.client().stats().ambiguous, 1);
    }

    /// A first create that meets `409` is an account made since the plan: refused, naming
    /// it, never taken over (the next plan shows it as an adoption for review).
    #[tokio::test]
    async fn a_409_on_a_first_create_is_refused_naming_the_account() {
        let (f, t) = fake().await;
        let other = f.insert(user(7));
        let err = apply(&t, vec![create_op("user7")])
            .await
            .remove(0)
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(other["id"].as_str().unwrap()) && msg.contains("plan again"),
            "{msg}"
        );
        assert!(!err.is_ambiguous(), "nothing was written: {err:?}");
        assert_eq!(f.users().len(), 1);
    }

    /// A create whose answer was lost, not found at once (the server is slow to show it),
    /// retried, meets `409`: that is the first attempt having landed, so it is taken, and no
    /// second account exists.
    #[tokio::test]
    async fn a_409_after_a_lost_attempt_is_that_attempt() {
        let (f, t) = fake().await;
        f.faults()
            .on(Match::post("/Users"))
            .inject(Fault::LoseResponse);
        f.faults().on(Match::get("/Users")).inject(Fault::Answer {
            status: 200,
            headers: vec![("content-type".into(), "application/scim+json".into())],
            body: r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":0,"Resources":[]}"#.into(),
        });
        let id = apply(&t, vec![create_op("cy")]).await.remove(0).unwrap();
        assert_eq!(f.users().len(), 1);
        assert_eq!(f.users()[0]["id"], id.as_str());
    }

    #[tokio::test]
    async fn patches_only_the_changed_paths_then_deactivates_and_deletes() {
        let (f, t) = fake().await;
        let u = f.insert(user(1));
        let id = u["id"].as_str().unwrap().to_string();
        t.list().await.unwrap();
        let ops = vec![TargetOp::Modify {
            id: id.clone(),
            fields: fields(&[
                ("name.givenName", json!("Gia")),
                ("emails[type eq \"work\"].value", json!("new@x.io")),
                ("name.familyName", Value::Null),
            ]),
            expected: fields(&[("name.givenName", json!("G1"))]),
            active: None,
            removal: false,
        }];
        apply(&t, ops).await.remove(0).unwrap();
        let body = f.log().method("PATCH")[0].body.clone().unwrap();
        assert_eq!(
            body,
            json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@x.io"},
                {"op": "remove", "path": "name.familyName"},
                {"op": "replace", "path": "name.givenName", "value": "Gia"}]})
        );
        let acc = t.list().await.unwrap().remove(0);
        assert_eq!(acc.fields["name.givenName"], "Gia");
        assert_eq!(acc.fields["emails[type eq \"work\"].value"], "new@x.io");
        assert!(!acc.fields.contains_key("name.familyName"));

        let deactivate = TargetOp::Modify {
            id: id.clone(),
            fields: BTreeMap::new(),
            expected: BTreeMap::new(),
            active: Some(false),
            removal: true,
        };
        apply(&t, vec![deactivate]).await.remove(0).unwrap();
        let body = f.log().method("PATCH")[1].body.clone().unwrap();
        assert_eq!(
            body["Operations"],
            json!([{"op": "replace", "path": "active", "value": false}])
        );
        assert!(!t.list().await.unwrap()[0].active);

        let results = apply(
            &t,
            vec![TargetOp::Delete { id: id.clone() }, TargetOp::Delete { id }],
        )
        .await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert!(f.users().is_empty());
    }

    #[tokio::test]
    async fn a_missing_work_email_is_added_not_replaced() {
        let (f, t) = fake().await;
        let u = f.insert(json!({"userName": "dee", "emails": [{"value": "old@x.io"}]}));
        t.list().await.unwrap();
        let op = TargetOp::Modify {
            id: u["id"].as_str().unwrap().to_string(),
            fields: fields(&[("emails[type eq \"work\"].value", json!("dee@x.io"))]),
            expected: fields(&[("emails[type eq \"work\"].value", json!("old@x.io"))]),
            active: None,
            removal: false,
        };
        apply(&t, vec![op]).await.remove(0).unwrap();
        let body = f.log().method("PATCH")[0].body.clone().unwrap();
        assert_eq!(
            body["Operations"],
            json!([{"op": "add", "path": "emails", "value": [{"type": "work", "value": "dee@x.io"}]}])
        );
        let acc = t.list().await.unwrap().remove(0);
        assert_eq!(acc.fields["emails[type eq \"work\"].value"], "dee@x.io");
    }

    fn rename(id: &str, from: &str, to: &str) -> TargetOp {
        TargetOp::Modify {
            id: id.to_string(),
            fields: fields(&[("title", json!(to))]),
            expected: fields(&[("title", json!(from))]),
            active: None,
            removal: false,
        }
    }

    #[tokio::test]
    async fn a_412_with_the_planned_values_intact_retries_with_the_new_version() {
        let (f, t) = fake().await;
        f.set_etags(true);
        let mut u = user(1);
        u["title"] = json!("Agent");
        let id = f.insert(u)["id"].as_str().unwrap().to_string();
        t.list().await.unwrap();
        // Someone else changed another attribute: the version moved, the title did not.
        f.concurrent_write_before_next_patch(Some(("displayName", json!("X"))));
        apply(&t, vec![rename(&id, "Agent", "Lead")])
            .await
            .remove(0)
            .unwrap();
        let patches = f.log().method("PATCH");
        assert_eq!(patches.len(), 2);
        assert_eq!(patches[0].header("if-match"), Some("W/\"1\""));
        assert_eq!(patches[1].header("if-match"), Some("W/\"2\""));
        let users = f.users();
        assert_eq!(users[0]["title"], "Lead");
        assert_eq!(users[0]["displayName"], "X");
    }

    #[tokio::test]
    async fn a_412_with_changed_values_fails_that_operation_only() {
        let (f, t) = fake().await;
        f.set_etags(true);
        let mut a = user(1);
        a["title"] = json!("Agent");
        let a = f.insert(a)["id"].as_str().unwrap().to_string();
        let mut b = user(2);
        b["title"] = json!("Agent");
        let b = f.insert(b)["id"].as_str().unwrap().to_string();
        t.list().await.unwrap();
        f.concurrent_write_before_next_patch(Some(("title", json!("Boss"))));
        let opts = ApplyOptions {
            parallelism: 1,
            ..Default::default()
        };
        let results: Mutex<Vec<(usize, OpResult)>> = Mutex::default();
        let ops = vec![rename(&a, "Agent", "Lead"), rename(&b, "Agent", "Lead")];
        t.apply(&ops, &opts, &|i, r| results.lock().unwrap().push((i, r)))
            .await
            .unwrap();
        let mut results = results.into_inner().unwrap();
        results.sort_by_key(|(i, _)| *i);
        let msg = results[0].1.clone().unwrap_err().to_string();
        assert_eq!(
            msg,
            format!("account {a}: title changed in the target since the plan: run plan again")
        );
        assert!(results[1].1.is_ok());
        let users = f.users();
        assert_eq!(users[0]["title"], "Boss");
        assert_eq!(users[1]["title"], "Lead");
    }

    #[tokio::test]
    async fn no_if_match_without_etag_support() {
        let (f, t) = fake().await;
        let id = f.insert(user(1))["id"].as_str().unwrap().to_string();
        t.list().await.unwrap();
        apply(&t, vec![rename(&id, "", "Lead")])
            .await
            .remove(0)
            .unwrap();
        assert_eq!(f.log().method("PATCH")[0].header("if-match"), None);
    }

    #[tokio::test]
    async fn a_bad_token_says_so() {
        let (f, t) = fake().await;
        f.set_unauthorized(true);
        let err = t.list().await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("GET /t/v2/Users?startIndex=1&count=500 failed: 401 Unauthorized: Authorization failure; check the token"), "{msg}");
        assert!(matches!(err, ConnectorError::Auth { .. }));
        let err = apply(&t, vec![create_op("x")]).await.remove(0).unwrap_err();
        assert!(err.to_string().contains("401"), "{err}");
    }

    #[tokio::test]
    async fn cancelled_operations_do_not_start() {
        let (f, t) = fake().await;
        let opts = ApplyOptions::default();
        opts.cancel.store(true, Ordering::SeqCst);
        let ops = vec![create_op("a")];
        let hit = Mutex::new(Vec::new());
        t.apply(&ops, &opts, &|_, r| hit.lock().unwrap().push(r))
            .await
            .unwrap();
        assert!(matches!(
            hit.into_inner().unwrap()[0],
            Err(ConnectorError::Cancelled)
        ));
        assert!(f.log().method("POST").is_empty());
    }
}
