//! The `request_tracker` target: RT 5 users through REST 2.0.
//!
//! * `list`: the user collection (`GET /users?fields=id,Name&find_disabled_rows=1`, 100 a
//!   page), then `GET /user/{id}` per user, four at a time. RT 5.0.3's collections report
//!   `Disabled` and `Privileged` as `""` for every user, and neither search filters on them nor
//!   `/users/privileged` exists there, so the per-user read is the only faithful one: a list of
//!   N users costs `ceil(N/100) + N` requests. RT's own `RT_System` and `Nobody` are skipped.
//!   Account ids are RT's numeric user ids (a rename keeps them).
//! * `create`: `POST /user`, then `GET /user/{name}` for the numeric id. A lost answer is
//!   looked up by `EmailAddress` and `Name` before anything is resent; an "already in use"
//!   refusal (RT 5.0.3 answers 400, the docs say 409) is looked up too, and reported with the
//!   account that holds the Name or address, never made twice.
//! * `modify`: `PUT /user/{id}` with only the changed fields (and `Disabled` 0/1), `If-Match`
//!   with the version last read. RT answers 200 with a list of messages even when it refused
//!   some of them ("Email address in use"), so the user is read back and every field RT did not
//!   take is reported with RT's words. A `412` re-reads the user: when the plan's expected
//!   values still hold the write is retried once with the new version, otherwise it fails
//!   asking for a new plan.
//! * `delete`: RT never deletes users (its `DELETE` only disables): validation refuses
//!   `removed: delete` for this kind, and a delete operation is refused here too.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use reqwest::header::IF_MATCH;
use serde_json::{Map, Value};

use super::api;
use super::user::{self, is_system};
use crate::connectors::{ApplyOptions, ConnectorError, LiveAccount, OpResult, Target, TargetOp};
use crate::http::{HttpClient, HttpError, Request};

/// Per-user reads in flight during a list.
const READ_CONCURRENCY: usize = 4;
/// Creates resent after a lost answer and a lookup that found nothing.
const CREATE_ATTEMPTS: u32 = 3;
/// Writes sent per update: the first, and one more after a `412` whose expected values held.
const PRECONDITION_ROUNDS: usize = 2;

/// Why RT cannot delete, for validation and for a delete operation that gets here anyway.
pub const NO_DELETE: &str = "Request Tracker never deletes users (its DELETE only disables them, and tickets keep referring to them)";

/// The `request_tracker` target.
pub struct RequestTrackerTarget {
    client: HttpClient,
    per_page: usize,
    /// The `ETag` of each user as last read, sent as `If-Match` on its next update.
    etags: Mutex<HashMap<String, String>>,
}

impl RequestTrackerTarget {
    pub fn new(client: HttpClient) -> Self {
        RequestTrackerTarget {
            client,
            per_page: api::PER_PAGE,
            etags: Mutex::new(HashMap::new()),
        }
    }

    /// Smaller pages (tests page through a few users; RT clamps anything above 100).
    pub fn with_per_page(mut self, per_page: usize) -> Self {
        self.per_page = per_page.clamp(1, api::PER_PAGE);
        self
    }

    pub fn client(&self) -> &HttpClient {
        &self.client
    }

    /// One user by numeric id or name, remembering its `ETag`.
    async fn get_user(&self, id: &str) -> Result<LiveAccount, ConnectorError> {
        let resp = self
            .client
            .send(Request::get(format!(
                "user/{}",
                crate::http::path_segment(id)
            )))
            .await?;
        let body: Value = resp.json()?;
        let live = user::to_live(&body, &resp.what)?;
        if let Some(tag) = resp.header("etag")
            && let Ok(mut m) = self.etags.lock()
        {
            m.insert(live.id.clone(), tag.to_string());
        }
        Ok(live)
    }

    /// The users of a collection or search, each read in full (system users skipped).
    async fn read_users(&self, first: Request) -> Result<Vec<LiveAccount>, ConnectorError> {
        let items = api::collect(&self.client, first).await?;
        let mut ids = Vec::with_capacity(items.len());
        for item in &items {
            let name = item.get("Name").and_then(Value::as_str).unwrap_or("");
            if is_system(name) {
                continue;
            }
            let id = user::numeric_id(item.get("id")).ok_or_else(|| {
                ConnectorError::BadData(format!(
                    "request_tracker: RT's user collection listed a user without a numeric id ({}); expected RT 5 collection items with `fields=id,Name`",
                    crate::http::redact::truncate(&item.to_string(), 200)
                ))
            })?;
            ids.push(id);
        }
        let users: Vec<LiveAccount> = futures::stream::iter(ids)
            .map(|id| async move { self.get_user(&id).await })
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(users)
    }

    /// Users holding the `Name` or `EmailAddress` of `fields` (disabled ones included).
    async fn lookup(&self, keys: &[(&str, &str)]) -> Result<Vec<LiveAccount>, ConnectorError> {
        let mut found: Vec<LiveAccount> = Vec::new();
        for (field, value) in keys {
            for acc in self
                .read_users(api::search(field, value, self.per_page))
                .await?
            {
                if !found.iter().any(|f| f.id == acc.id) {
                    found.push(acc);
                }
            }
        }
        Ok(found)
    }

    /// After a create of unknown outcome: the user this create made, i.e. one holding every key
    /// it sent. A user holding only some of them (an old `jdoe` while a new jdoe@ was created)
    /// is someone else's and is never taken: the outcome stays unknown and the create's intent
    /// is resolved by the next run, which matches by the sync's own identity.
    async fn find_own(
        &self,
        keys: &[(&str, &str)],
        who: &str,
        what: &str,
    ) -> Result<Option<String>, ConnectorError> {
        let found = self
            .lookup(keys)
            .await
            .map_err(|e| ConnectorError::Ambiguous {
                what: format!("{what} ({who})"),
                cause: format!("looking the user up failed: {e}; run plan again before retrying"),
            })?;
        if let Some(acc) = found.iter().find(|a| holds_all(a, keys)) {
            return Ok(Some(acc.id.clone()));
        }
        match found.first() {
            Some(other) => Err(ConnectorError::Ambiguous {
                what: format!("{what} ({who})"),
                cause: format!(
                    "RT user {} holds part of this identity but not all of it: it is not taken as the new user; the next run looks the create up again",
                    other.id
                ),
            }),
            None => Ok(None),
        }
    }

    async fn create(&self, fields: &BTreeMap<String, Value>, active: bool) -> OpResult {
        let key = |name: &str| {
            fields
                .get(name)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let keys: Vec<(&str, &str)> = ["EmailAddress", "Name"]
            .into_iter()
            .filter_map(|k| key(k).map(|v| (k, v)))
            .collect();
        if keys.is_empty() {
            return Err(ConnectorError::rejected(
                "an RT user needs a `Name` or an `EmailAddress`: map one in the sync's fields",
            ));
        }
        let who = keys.iter().map(|(_, v)| *v).collect::<Vec<_>>().join(", ");
        let body = Value::Object(user::body(fields, Some(active))?);
        let mut last = None;
        for _ in 0..CREATE_ATTEMPTS {
            match self
                .client
                .send(Request::post("user").json(body.clone()))
                .await
            {
                Ok(resp) => {
                    let created: Value = serde_json::from_slice(&resp.body).unwrap_or_default();
                    let name = created.get("id").and_then(|v| match v {
                        Value::String(s) if !s.is_empty() => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    });
                    if let Some(name) = name {
                        // Created for sure; only its numeric id is unknown until read back.
                        return self.get_user(&name).await.map(|u| u.id).map_err(|e| {
                            ConnectorError::Ambiguous {
                                what: format!("{} ({who})", resp.what),
                                cause: format!(
                                    "RT created the user {name:?}, but reading it back failed: {e}"
                                ),
                            }
                        });
                    }
                    // Created, but the answer does not say which user: find it, never resend.
                    return match self.find_own(&keys, &who, &resp.what).await? {
                        Some(id) => Ok(id),
                        None => Err(ConnectorError::BadData(format!(
                            "request_tracker: {} answered {} without the new user's id, and no user {who} is found",
                            resp.what, resp.status
                        ))),
                    };
                }
                Err(e) if e.is_ambiguous() => {
                    tracing::info!("create of {who}: {e}; looking it up by EmailAddress and Name");
                    if let Some(id) = self.find_own(&keys, &who, "POST /REST/2.0/user").await? {
                        return Ok(id);
                    }
                    last = Some(e);
                }
                Err(e) if matches!(e.status(), Some(400 | 409)) => {
                    // RT says "Name in use" / "Email address in use" (400 in 5.0.3, 409 in the
                    // docs): which account holds it is decided by a lookup, not by the words.
                    // The refusal is definite (nothing was written by this request); a lookup
                    // that fails does not change that.
                    let Ok(holders) = self.lookup(&keys).await else {
                        return Err(ConnectorError::Rejected {
                            status: e.status(),
                            vendor: None,
                            message: format!("{e} (looking up which RT user holds it failed)"),
                        });
                    };
                    // After an attempt of ours whose outcome was unknown, a holder of every key
                    // is that attempt having landed.
                    if last.is_some()
                        && let Some(own) = holders.iter().find(|a| holds_all(a, &keys))
                    {
                        return Ok(own.id.clone());
                    }
                    let Some(acc) = holders.first() else {
                        return Err(e.into());
                    };
                    let shown = |k: &str| {
                        acc.fields
                            .get(k)
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string()
                    };
                    return Err(ConnectorError::Rejected {
                        status: e.status(),
                        vendor: match &e {
                            HttpError::Status { message, .. } => message.clone(),
                            _ => None,
                        },
                        message: format!(
                            "{e}. RT already has user {} (Name {:?}, EmailAddress {:?}{}) holding the Name or EmailAddress of {who}: it appeared since the plan; run plan again (it is matched by identity, or rename one of them)",
                            acc.id,
                            shown("Name"),
                            shown("EmailAddress"),
                            if acc.active { "" } else { ", disabled" },
                        ),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last.map(ConnectorError::from).unwrap_or_else(|| {
            ConnectorError::Unavailable(format!("create of {who} failed {CREATE_ATTEMPTS} times"))
        }))
    }

    fn etag(&self, id: &str) -> Option<String> {
        self.etags.lock().ok().and_then(|m| m.get(id).cloned())
    }

    async fn modify(
        &self,
        id: &str,
        fields: &BTreeMap<String, Value>,
        expected: &BTreeMap<String, Value>,
        active: Option<bool>,
    ) -> OpResult {
        let body: Map<String, Value> = user::body(fields, active)?;
        if body.is_empty() {
            return Ok(id.to_string());
        }
        let path = format!("user/{}", crate::http::path_segment(id));
        for _ in 0..PRECONDITION_ROUNDS {
            let mut req = Request::put(path.clone()).json(Value::Object(body.clone()));
            if let Some(tag) = self.etag(id) {
                req = req.header(IF_MATCH, tag);
            }
            match self.client.send(req).await {
                Ok(resp) => {
                    let said = api::messages(&resp.body);
                    let fresh = self.get_user(id).await?;
                    let missed = user::not_taken(&fresh, fields, active);
                    if missed.is_empty() {
                        return Ok(id.to_string());
                    }
                    let words = if said.is_empty() {
                        "no message".to_string()
                    } else {
                        said.join("; ")
                    };
                    return Err(ConnectorError::Rejected {
                        status: Some(resp.status.as_u16()),
                        vendor: Some(words.clone()),
                        message: format!(
                            "{}: RT answered {} but did not set {} of user {id} (RT said: {words}); fix the value (a Name or EmailAddress another user holds, a value RT refuses) and run plan again",
                            resp.what,
                            resp.status.as_u16(),
                            missed.join(", ")
                        ),
                    });
                }
                Err(e) if e.status() == Some(412) => {
                    let fresh = self.get_user(id).await?;
                    if user::not_taken(&fresh, fields, active).is_empty() {
                        return Ok(id.to_string());
                    }
                    let changed = user::not_taken(&fresh, expected, None);
                    if !changed.is_empty() {
                        return Err(ConnectorError::Rejected {
                            status: Some(412),
                            vendor: None,
                            message: format!(
                                "user {id}: {} changed in RT since the plan: run plan again",
                                changed.join(", ")
                            ),
                        });
                    }
                    tracing::debug!(
                        "PUT /REST/2.0/user/{id}: 412, the planned values still hold; retrying with the new version"
                    );
                }
                Err(e) if e.status() == Some(404) => {
                    return Err(ConnectorError::NotFound {
                        message: format!("{e}. User {id} is not in RT (any more): run plan again"),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ConnectorError::Rejected {
            status: Some(412),
            vendor: None,
            message: format!(
                "PUT /REST/2.0/user/{id}: RT kept answering 412 Precondition Failed (the user keeps changing); run plan again"
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
            TargetOp::Delete { id } => Err(ConnectorError::rejected(format!(
                "user {id} was not deleted: {NO_DELETE}. Use `removed: deactivate` (or `keep`)"
            ))),
        }
    }
}

#[async_trait]
impl Target for RequestTrackerTarget {
    async fn list(&self) -> Result<Vec<LiveAccount>, ConnectorError> {
        self.read_users(api::all_users(self.per_page)).await
    }

    /// JSON searches on `EmailAddress` and `Name` (the identity fields); every user when the
    /// identity has neither.
    async fn find(
        &self,
        identity: &BTreeMap<String, String>,
    ) -> Result<Vec<LiveAccount>, ConnectorError> {
        let keys: Vec<(&str, &str)> = ["EmailAddress", "Name"]
            .into_iter()
            .filter_map(|k| {
                identity
                    .get(k)
                    .map(|v| v.trim())
                    .filter(|v| !v.is_empty())
                    .map(|v| (k, v))
            })
            .collect();
        if keys.is_empty() {
            return self.list().await;
        }
        self.lookup(&keys).await
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

/// True when `acc` holds every `(field, value)` of `keys` (RT compares both without case).
fn holds_all(acc: &LiveAccount, keys: &[(&str, &str)]) -> bool {
    keys.iter().all(|(field, value)| {
        acc.fields
            .get(*field)
            .and_then(Value::as_str)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(value.trim()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(name: &str, email: &str) -> LiveAccount {
        LiveAccount {
            id: "7".to_string(),
            active: true,
            fields: BTreeMap::from([
                ("Name".to_string(), Value::String(name.to_string())),
                ("EmailAddress".to_string(), Value::String(email.to_string())),
            ]),
        }
    }

    /// A user holding only the Name of a create (an old `jdoe`) is not the new jdoe@.
    #[test]
    fn a_lookup_takes_only_a_user_holding_every_key_sent() {
        let keys = [("EmailAddress", "jdoe@new.example"), ("Name", "jdoe")];
        assert!(holds_all(&acc("jdoe", "JDoe@New.example"), &keys));
        assert!(!holds_all(&acc("jdoe", "jdoe@old.example"), &keys));
        assert!(!holds_all(&acc("jane", "jdoe@new.example"), &keys));
        assert!(holds_all(&acc("x", "jdoe@new.example"), &keys[..1]));
    }
}
