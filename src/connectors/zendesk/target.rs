//! The `zendesk` target: Zendesk Support users.
//!
//! * `list` reads every user (cursor paging) and the organizations once per run, so
//!   `organization` is shown by name. `active` is `active && !suspended`.
//! * Creates go through `create_many` and updates through the batch form of `update_many`,
//!   [`BATCH`] per job, each change reported as soon as its job ends. Never an upsert
//!   (`create_or_update*` would take over an account that appeared between plan and apply).
//! * A create whose answer was lost or whose job did not say is looked up by identity (search
//!   by email, or `external_id`) and never sent again blindly: no duplicate is ever made. A
//!   create Zendesk refused because the email or external id is taken fails, naming the
//!   account that holds it (made since the plan): never a silent takeover.
//! * `403` to a bulk endpoint means bulk import is not enabled on the account (Zendesk turns
//!   it on only on request): headcount says so once and goes on with one request per change.
//! * Deactivation suspends (`suspended: true`), reactivation unsuspends; `removed: delete`
//!   deletes (`DELETE /api/v2/users/{id}`, a soft delete Zendesk cannot undo).
//! * `email` is Zendesk's primary identity, writable on create only: an update that changes
//!   it is refused with the reason (Zendesk would add a secondary email instead).
//! * An empty `organization` clears the user's default organization (`organization_id:
//!   null`); a new name creates the organization.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::{Map, Value, json};

use super::bulk::{self, BATCH, Item, JobError};
use super::client::list_all;
use super::errors::{explain, item_error, job_error};
use super::lookup::{lookup, search, taken};
use super::orgs::OrgCache;
use super::users::{body, id_value, to_live_all, who};
use crate::connectors::{ApplyOptions, ConnectorError, LiveAccount, OpResult, Target, TargetOp};
use crate::http::{HttpClient, HttpError, Request};

type Done<'a> = &'a (dyn Fn(usize, OpResult) + Send + Sync);

/// Zendesk Support users.
pub struct ZendeskTarget {
    client: HttpClient,
    user_fields: Vec<String>,
    orgs: OrgCache,
    /// Set after a `403` to `create_many`: one create request per user from then on.
    single_create: AtomicBool,
    /// Set after a `403` to `update_many`: one update request per user from then on.
    single_update: AtomicBool,
    /// The fallback was reported (once per run).
    warned: AtomicBool,
}

impl ZendeskTarget {
    pub fn new(client: HttpClient, user_fields: Vec<String>) -> Self {
        ZendeskTarget {
            client,
            user_fields,
            orgs: OrgCache::default(),
            single_create: AtomicBool::new(false),
            single_update: AtomicBool::new(false),
            warned: AtomicBool::new(false),
        }
    }

    /// After a create of unknown outcome (or refused as existing): the user's id if it exists,
    /// else the error to report.
    async fn settle_unknown(
        &self,
        fields: &BTreeMap<String, Value>,
        why: ConnectorError,
    ) -> OpResult {
        let who = who(fields);
        match lookup(&self.client, fields).await {
            Ok(Some(id)) => {
                tracing::info!("create of {who}: {why}; found it by identity (id {id})");
                Ok(id)
            }
            Ok(None) => Err(why),
            Err(e) => Err(ConnectorError::Ambiguous {
                what: format!("creating {who}"),
                cause: format!(
                    "{why}; looking the user up failed: {e}; run plan again before retrying"
                ),
            }),
        }
    }

    /// A create Zendesk refused because the email or external id is taken. The refusal is
    /// definite (nothing was written), and headcount never re-sends a create whose outcome it
    /// did not know, so the holder is an account made since the plan: it is looked up to be
    /// named, never taken over (the next plan shows it as an adoption, for review).
    async fn settle_taken(
        &self,
        fields: &BTreeMap<String, Value>,
        why: ConnectorError,
    ) -> OpResult {
        let who = who(fields);
        match lookup(&self.client, fields).await {
            Ok(Some(id)) => Err(ConnectorError::rejected(format!(
                "creating {who}: Zendesk already has this user (id {id}), made after the plan. It is not taken over silently; run plan again, which shows it as an adoption to review"
            ))),
            Ok(None) => Err(why),
            Err(e) => Err(ConnectorError::rejected(format!(
                "{why}; looking the existing user up failed too: {e}"
            ))),
        }
    }

    /// Says once that bulk import is off and switches to single requests.
    fn fall_back(&self, flag: &AtomicBool, e: &HttpError) {
        flag.store(true, Ordering::SeqCst);
        if !self.warned.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                "Zendesk refused a bulk request ({e}): bulk user import is not enabled on this account (Zendesk Support turns it on when the account owner asks), or the token's agent may not do this. Going on with one request per user, which is slower and uses more of the rate limit"
            );
        }
    }

    async fn create_one(&self, fields: &BTreeMap<String, Value>, body: Value) -> OpResult {
        let req = Request::post("api/v2/users").json(json!({ "user": body }));
        match self.client.send_json::<Value>(req).await {
            Ok(v) => match v.get("user").map(super::source::user_id) {
                Some(Ok(id)) => Ok(id),
                _ => {
                    let why = ConnectorError::BadData(
                        "POST /api/v2/users answered without `user.id`".to_string(),
                    );
                    self.settle_unknown(fields, why).await
                }
            },
            Err(e) if e.is_ambiguous() => self.settle_unknown(fields, e.into()).await,
            Err(e) if e.status() == Some(422) && taken(&e) => {
                self.settle_taken(fields, ConnectorError::from(e)).await
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn update_one(&self, id: &str, body: Value) -> OpResult {
        let req = Request::put(format!("api/v2/users/{}", crate::http::path_segment(id)))
            .json(json!({ "user": body }));
        self.client.send(req).await?;
        Ok(id.to_string())
    }

    /// One batch of creates: `items` are (op index, fields, body).
    async fn create_batch(&self, items: Vec<Prepared<'_>>, done: Done<'_>) {
        if !self.single_create.load(Ordering::SeqCst) {
            let users: Vec<Value> = items.iter().map(|p| p.body.clone()).collect();
            let req = Request::post("api/v2/users/create_many").json(json!({ "users": users }));
            match bulk::run(&self.client, req, items.len(), None).await {
                Ok(end) => {
                    for (p, item) in items.iter().zip(end.items) {
                        done(
                            p.i,
                            self.create_outcome(p, item, &end.status, end.message.as_deref())
                                .await,
                        );
                    }
                    return;
                }
                Err(JobError::Forbidden(e)) => self.fall_back(&self.single_create, &e),
                Err(e @ (JobError::Ambiguous(_) | JobError::Unknown { .. })) => {
                    let why = job_error(&e, "create_many");
                    for p in &items {
                        done(p.i, self.settle_unknown(p.fields, why.clone()).await);
                    }
                    return;
                }
                Err(e) => {
                    let why = job_error(&e, "create_many");
                    for p in &items {
                        done(p.i, Err(why.clone()));
                    }
                    return;
                }
            }
        }
        for p in items {
            done(p.i, self.create_one(p.fields, p.body).await);
        }
    }

    async fn create_outcome(
        &self,
        p: &Prepared<'_>,
        item: Item,
        status: &str,
        message: Option<&str>,
    ) -> OpResult {
        let who = who(p.fields);
        match item {
            Item::Done(id) => Ok(id),
            Item::Failed { .. } if item.already_exists() => {
                let why = item_error(&item, &format!("creating {who}"));
                self.settle_taken(p.fields, why).await
            }
            Item::Failed { .. } => Err(item_error(&item, &format!("creating {who}"))),
            Item::Missing => {
                let why = ConnectorError::Ambiguous {
                    what: format!("creating {who}"),
                    cause: format!(
                        "the create_many job ended `{status}` without a result for this user{}",
                        message.map(|m| format!(" ({m})")).unwrap_or_default()
                    ),
                };
                self.settle_unknown(p.fields, why).await
            }
        }
    }

    /// One batch of updates: `items` are (op index, id, body).
    async fn update_batch(&self, items: Vec<Prepared<'_>>, done: Done<'_>) {
        if !self.single_update.load(Ordering::SeqCst) {
            let users: Vec<Value> = items
                .iter()
                .map(|p| {
                    let mut u = Map::new();
                    u.insert("id".to_string(), id_value(&p.id));
                    u.extend(p.body.as_object().cloned().unwrap_or_default());
                    Value::Object(u)
                })
                .collect();
            let ids: Vec<String> = items.iter().map(|p| p.id.clone()).collect();
            let req = Request::put("api/v2/users/update_many").json(json!({ "users": users }));
            match bulk::run(&self.client, req, items.len(), Some(&ids)).await {
                Ok(end) => {
                    for (p, item) in items.iter().zip(end.items) {
                        let r = match item {
                            Item::Done(_) => Ok(p.id.clone()),
                            Item::Failed { .. } => {
                                Err(item_error(&item, &format!("updating user {}", p.id)))
                            }
                            Item::Missing => Err(ConnectorError::Ambiguous {
                                what: format!("updating user {}", p.id),
                                cause: format!(
                                    "the update_many job ended `{}` without a result for this user",
                                    end.status
                                ),
                            }),
                        };
                        done(p.i, r);
                    }
                    return;
                }
                Err(JobError::Forbidden(e)) => self.fall_back(&self.single_update, &e),
                Err(e) => {
                    for p in &items {
                        done(p.i, Err(job_error(&e, "update_many")));
                    }
                    return;
                }
            }
        }
        for p in items {
            done(p.i, self.update_one(&p.id, p.body).await);
        }
    }

    async fn delete(&self, id: &str) -> OpResult {
        let req = Request::delete(format!("api/v2/users/{}", crate::http::path_segment(id)));
        match self.client.send(req).await {
            Ok(_) => Ok(id.to_string()),
            // Gone already (an earlier attempt landed, or someone deleted it).
            Err(e) if e.status() == Some(404) => Ok(id.to_string()),
            Err(e) => Err(e.into()),
        }
    }

    /// Prepares op `i` (its body; the organization created when new) and passes its send
    /// gate. `Err` is the op's outcome; `Ok(None)` means nothing to send (already done).
    async fn prepare<'a>(
        &self,
        i: usize,
        op: &'a TargetOp,
        opts: &ApplyOptions,
    ) -> Result<Option<Prepared<'a>>, ConnectorError> {
        let prepared = match op {
            TargetOp::Create {
                fields,
                active,
                notify,
            } => {
                let mut body = body(fields, true, &self.orgs, &self.client).await?;
                if !active {
                    body.insert("suspended".to_string(), json!(true));
                }
                if !notify {
                    body.insert("skip_verify_email".to_string(), json!(true));
                }
                Prepared {
                    i,
                    id: String::new(),
                    fields,
                    body: Value::Object(body),
                }
            }
            TargetOp::Modify {
                id, fields, active, ..
            } => {
                if id.parse::<u64>().is_err() {
                    return Err(ConnectorError::NotFound {
                        message: format!(
                            "updating Zendesk user {id:?}: Zendesk user ids are numbers; run plan again"
                        ),
                    });
                }
                let mut body = body(fields, false, &self.orgs, &self.client).await?;
                if let Some(a) = active {
                    body.insert("suspended".to_string(), json!(!a));
                }
                if body.is_empty() {
                    return Ok(None);
                }
                Prepared {
                    i,
                    id: id.clone(),
                    fields,
                    body: Value::Object(body),
                }
            }
            TargetOp::Delete { .. } => return Ok(None),
        };
        opts.before_send(i).await?;
        Ok(Some(prepared))
    }

    /// Runs the creates (or the updates) in `indices` in jobs of [`BATCH`], at most
    /// `opts.parallelism` jobs at a time; each job's changes are reported when it ends.
    async fn run_batches(
        &self,
        ops: &[TargetOp],
        indices: &[usize],
        opts: &ApplyOptions,
        done: Done<'_>,
        create: bool,
    ) {
        let mut in_flight = FuturesUnordered::new();
        let mut chunks = indices.chunks(BATCH);
        loop {
            while in_flight.len() < opts.parallelism.max(1) {
                let Some(chunk) = chunks.next() else { break };
                let mut ready = Vec::new();
                for &i in chunk {
                    if opts.cancelled() {
                        done(i, Err(ConnectorError::Cancelled));
                        continue;
                    }
                    match self.prepare(i, &ops[i], opts).await {
                        Ok(Some(p)) => ready.push(p),
                        Ok(None) => done(i, Ok(op_id(&ops[i]))),
                        Err(e) => done(i, Err(e)),
                    }
                }
                if ready.is_empty() {
                    continue;
                }
                in_flight.push(async move {
                    if create {
                        self.create_batch(ready, done).await;
                    } else {
                        self.update_batch(ready, done).await;
                    }
                });
            }
            if in_flight.next().await.is_none() {
                break;
            }
        }
    }
}

impl ZendeskTarget {
    /// Deletes, one request each, at most `opts.parallelism` at a time.
    async fn run_deletes(
        &self,
        ops: &[TargetOp],
        indices: &[usize],
        opts: &ApplyOptions,
        done: Done<'_>,
    ) {
        let mut in_flight = FuturesUnordered::new();
        let mut next = indices.iter();
        loop {
            while in_flight.len() < opts.parallelism.max(1) {
                let Some(&i) = next.next() else { break };
                if opts.cancelled() {
                    done(i, Err(ConnectorError::Cancelled));
                    continue;
                }
                let id = op_id(&ops[i]);
                in_flight.push(async move {
                    let r = match opts.before_send(i).await {
                        Ok(()) => self.delete(&id).await,
                        Err(e) => Err(e),
                    };
                    (i, r)
                });
            }
            match in_flight.next().await {
                Some((i, r)) => done(i, r),
                None => break,
            }
        }
    }
}

/// One change ready to send.
struct Prepared<'a> {
    i: usize,
    /// The user's id (updates).
    id: String,
    fields: &'a BTreeMap<String, Value>,
    body: Value,
}

fn op_id(op: &TargetOp) -> String {
    match op {
        TargetOp::Modify { id, .. } | TargetOp::Delete { id } => id.clone(),
        TargetOp::Create { .. } => String::new(),
    }
}

#[async_trait]
impl Target for ZendeskTarget {
    async fn list(&self) -> Result<Vec<LiveAccount>, ConnectorError> {
        let users = list_all(&self.client, Request::get("api/v2/users"), "users")
            .await
            .map_err(|e| explain(e.into()))?;
        let guard = self.orgs.get(&self.client).await.map_err(explain)?;
        to_live_all(&users, &self.user_fields, guard.as_ref())
    }

    /// By email through search, or by external id; otherwise every user.
    async fn find(
        &self,
        identity: &BTreeMap<String, String>,
    ) -> Result<Vec<LiveAccount>, ConnectorError> {
        if !identity.contains_key("email") && !identity.contains_key("external_id") {
            return self.list().await;
        }
        let users = search(&self.client, identity)
            .await
            .map_err(|e| explain(e.into()))?;
        let guard = self.orgs.get(&self.client).await.map_err(explain)?;
        to_live_all(&users, &self.user_fields, guard.as_ref())
    }

    /// The HTTP write window plus the time a queued job may take to run: a job accepted
    /// before a kill still runs on Zendesk's side.
    fn write_window(&self) -> crate::connectors::WriteWindow {
        let w = self.client.write_window();
        crate::connectors::WriteWindow {
            total: w.total + bulk::POLL_LIMIT,
            attempt: w.attempt + bulk::POLL_LIMIT,
        }
    }

    async fn apply(
        &self,
        ops: &[TargetOp],
        opts: &ApplyOptions,
        done: &(dyn Fn(usize, OpResult) + Send + Sync),
    ) -> Result<(), ConnectorError> {
        let done = &|i, r: OpResult| done(i, r.map_err(explain));
        let (mut creates, mut updates, mut deletes) = (Vec::new(), Vec::new(), Vec::new());
        for (i, op) in ops.iter().enumerate() {
            match op {
                TargetOp::Create { .. } => creates.push(i),
                TargetOp::Modify { .. } => updates.push(i),
                TargetOp::Delete { .. } => deletes.push(i),
            }
        }
        self.run_batches(ops, &creates, opts, done, true).await;
        self.run_batches(ops, &updates, opts, done, false).await;
        self.run_deletes(ops, &deletes, opts, done).await;
        Ok(())
    }

    fn http_stats(&self) -> Option<crate::http::HttpStats> {
        Some(self.client.stats())
    }
}
