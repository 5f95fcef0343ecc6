//! The apply engine: turns the changes of a plan into target operations, records each success
//! in the state (through a journal sink, so a crash loses nothing), and reports what failed.
//! It does not decide anything: every decision is in the plan.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use futures::StreamExt;
use serde_json::Value;

use crate::connectors::{ApplyOptions, ConnectorError, LiveAccount, OpResult, Target, TargetOp};
use crate::model::records::SendGate;
use crate::plan::{Action, Change, SyncPlan};
use crate::planner::{SyncSpec, desired, values};
use crate::state::{Intent, ManagedAccount, Origin, State, StateOp};

/// One operation that failed, with the vendor's message.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Failure {
    pub sync: String,
    pub action: Action,
    pub identity: String,
    pub target_id: Option<String>,
    pub message: String,
}

/// What an apply did.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct ApplyReport {
    /// Per sync: action → how many succeeded.
    pub applied: BTreeMap<String, BTreeMap<Action, usize>>,
    pub failures: Vec<Failure>,
}

impl ApplyReport {
    pub fn succeeded(&self) -> usize {
        self.applied.values().flat_map(|m| m.values()).sum()
    }
}

/// Sensitive values in clear, per sync, per primary identity, per field.
pub type Secrets = HashMap<String, BTreeMap<String, BTreeMap<String, Value>>>;

/// What happened to one change, as it happens: for the audit log, `--json` and progress.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OpEvent {
    pub sync: String,
    pub target: String,
    pub action: Action,
    pub target_id: Option<String>,
    pub identity: BTreeMap<String, String>,
    /// Changed fields, sensitive values replaced by `(sensitive)`.
    pub fields: BTreeMap<String, RedactedDiff>,
    /// What became of it.
    pub outcome: Outcome,
    /// `None` on success, else the reason.
    pub error: Option<String>,
    /// Set when the operation never started because the apply was interrupted: nothing was
    /// sent, so the audit log leaves it out (the `--json` stream still reports it).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub not_started: bool,
}

/// What became of one change. Decided from the connector's typed error, never its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Error,
    /// The write may or may not have happened (the answer was lost): the next plan lists the
    /// target and finds out; the audit log says `unknown`, not `error`.
    Unknown,
    /// Never started: the apply was interrupted first.
    NotStarted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Unknown => "unknown",
            Outcome::NotStarted => "not_started",
        }
    }

    /// The outcome of a connector's error.
    pub fn of(e: &ConnectorError) -> Outcome {
        match e {
            ConnectorError::Cancelled => Outcome::NotStarted,
            e if e.is_ambiguous() => Outcome::Unknown,
            _ => Outcome::Error,
        }
    }
}

/// Why a change did not succeed: its outcome and the message.
type Failed = (Outcome, String);

/// A field change safe to log.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RedactedDiff {
    pub before: Value,
    pub after: Value,
}

fn event(sync: &SyncPlan, change: &Change, result: &Result<Option<String>, Failed>) -> OpEvent {
    let (target_id, outcome, error) = match result {
        Ok(id) => (id.clone(), Outcome::Ok, None),
        Err((outcome, message)) => (None, *outcome, Some(message.clone())),
    };
    let redact = |sensitive: bool, v: &Value| {
        if sensitive && !v.is_null() {
            Value::String("(sensitive)".to_string())
        } else {
            v.clone()
        }
    };
    OpEvent {
        sync: sync.name.clone(),
        target: sync.target.clone(),
        action: change.action,
        target_id: target_id.or_else(|| change.target_id.clone()),
        identity: change.identity.clone(),
        fields: change
            .fields
            .iter()
            .map(|(k, d)| {
                (
                    k.clone(),
                    RedactedDiff {
                        before: redact(d.sensitive, &d.before),
                        after: redact(d.sensitive, &d.after),
                    },
                )
            })
            .collect(),
        not_started: outcome == Outcome::NotStarted,
        outcome,
        error,
    }
}

/// The message of an operation that never started (see [`ConnectorError::Cancelled`]).
const NOT_STARTED: &str = "not started: the apply was interrupted";

/// Everything one apply needs.
pub struct ApplyInput<'a> {
    pub syncs: &'a [SyncPlan],
    pub specs: &'a [SyncSpec],
    pub targets: &'a HashMap<String, Box<dyn Target>>,
    /// The live accounts the changes were checked against, per target name.
    pub live: &'a HashMap<String, Vec<LiveAccount>>,
    pub secrets: &'a Secrets,
    pub options: &'a ApplyOptions,
    /// Called once per change, as soon as its outcome is known.
    pub observer: &'a (dyn Fn(&OpEvent) + Send + Sync),
}

/// Where the apply engine records each state operation a target confirmed: the session's
/// journal. Async, so a backend whose journal is a database table fits.
#[async_trait::async_trait]
pub trait Recorder: Send + Sync {
    /// Records `op` durably; an error means it was not recorded.
    async fn record(&self, op: &StateOp) -> Result<(), String>;
}

/// A synchronous recorder (tests and tools that journal in memory).
struct FnRecorder<'a>(&'a (dyn Fn(&StateOp) -> Result<(), String> + Send + Sync));

#[async_trait::async_trait]
impl Recorder for FnRecorder<'_> {
    async fn record(&self, op: &StateOp) -> Result<(), String> {
        (self.0)(op)
    }
}

/// Applies every change. `record` is called for each state operation right after the target
/// confirmed it (the caller journals it); the in-memory `state` is updated too.
pub async fn apply(
    input: ApplyInput<'_>,
    state: &mut State,
    record: &(dyn Fn(&StateOp) -> Result<(), String> + Send + Sync),
) -> ApplyReport {
    apply_recorded(input, state, &FnRecorder(record)).await
}

/// [`apply`] with an async [`Recorder`]. Each outcome a target reports is journalled before it
/// is observed; outcomes are handled in the order the target reports them.
pub async fn apply_recorded(
    input: ApplyInput<'_>,
    state: &mut State,
    recorder: &dyn Recorder,
) -> ApplyReport {
    let report = Mutex::new(ApplyReport::default());
    let observe = |sync: &SyncPlan, change: &Change, result: Result<Option<String>, Failed>| {
        (input.observer)(&event(sync, change, &result));
        if let Ok(mut r) = report.lock() {
            match result.err().map(|(_, message)| message) {
                None => {
                    *r.applied
                        .entry(sync.name.clone())
                        .or_default()
                        .entry(change.action)
                        .or_default() += 1
                }
                Some(message) => r.failures.push(failure(sync, change, message)),
            }
        }
    };
    for sync in input.syncs {
        if sync.changes.is_empty() {
            continue;
        }
        let spec = input.specs.iter().find(|s| s.name == sync.name);
        let live_by_id: HashMap<&str, &LiveAccount> = input
            .live
            .get(&sync.target)
            .map(|l| l.iter().map(|a| (a.id.as_str(), a)).collect())
            .unwrap_or_default();
        let empty = BTreeMap::new();
        let secrets = input.secrets.get(&sync.name).unwrap_or(&empty);

        // State-only changes first: they need no target.
        let mut ops = Vec::new();
        let mut op_changes = Vec::new();
        for change in &sync.changes {
            if input.options.cancelled() {
                observe(
                    sync,
                    change,
                    Err((Outcome::NotStarted, NOT_STARTED.to_string())),
                );
                continue;
            }
            match prepare(sync, spec, change, &live_by_id, state, secrets) {
                Prepared::StateOnly(op) => match recorder.record(&op).await {
                    Ok(()) => {
                        state.apply_op(&op);
                        observe(sync, change, Ok(None));
                    }
                    Err(e) => observe(sync, change, Err((Outcome::Error, e))),
                },
                Prepared::Target(op) => {
                    ops.push(op);
                    op_changes.push(change);
                }
                Prepared::Fail(message) => observe(sync, change, Err((Outcome::Error, message))),
            }
        }
        if ops.is_empty() {
            continue;
        }
        let Some(target) = input.targets.get(&sync.target) else {
            for change in op_changes {
                observe(
                    sync,
                    change,
                    Err((
                        Outcome::Error,
                        format!("target `{}` is not configured", sync.target),
                    )),
                );
            }
            continue;
        };

        // A create is not idempotent: its intent is journalled (durably) right before it is
        // sent, through the gate the target awaits per operation, so a run killed while the
        // request is in flight leaves a trace that the next run resolves by a lookup instead
        // of creating the account a second time.
        let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let window = target.write_window();
        let (window, attempt_secs) = (secs(window.total), secs(window.attempt));
        let intents: Vec<Option<Intent>> = ops
            .iter()
            .zip(&op_changes)
            .map(|(op, change)| match op {
                TargetOp::Create { active, .. } => Some(Intent {
                    sync: sync.name.clone(),
                    target: sync.target.clone(),
                    action: change.action.to_string(),
                    identity: change.identity.clone(),
                    fields: after_values(change),
                    active: *active,
                    recorded_at: 0,
                    settles_by: 0,
                    attempt_secs,
                }),
                _ => None,
            })
            .collect();
        type GateAsk = (usize, futures::channel::oneshot::Sender<Result<(), String>>);
        let (gate_sender, gate_asks) = futures::channel::mpsc::unbounded::<GateAsk>();
        let gated: std::sync::Arc<Vec<bool>> =
            std::sync::Arc::new(intents.iter().map(Option::is_some).collect());
        let mut options = input.options.clone();
        options.gate = Some(SendGate(std::sync::Arc::new(move |i| {
            let sender = gated
                .get(i)
                .copied()
                .unwrap_or(false)
                .then(|| gate_sender.clone());
            Box::pin(async move {
                let Some(sender) = sender else {
                    return Ok(());
                };
                let stopped = || "not sent: the apply engine stopped".to_string();
                let (reply, answer) = futures::channel::oneshot::channel();
                sender.unbounded_send((i, reply)).map_err(|_| stopped())?;
                answer.await.map_err(|_| stopped())?
            })
        })));

        // The target's callback is synchronous; it hands each outcome over to a loop that runs
        // alongside the target (same task), journals it and only then reports it.
        let (sender, outcomes) = futures::channel::mpsc::unbounded::<(usize, OpResult)>();
        let run = async move {
            let done = move |i: usize, result: OpResult| {
                // The receiver lives until the target returns, so this cannot fail.
                let _ = sender.unbounded_send((i, result));
            };
            // The options (and the gate's sender in them) go when the target returns, which
            // ends the journal loop below.
            let options = options;
            target.apply(&ops, &options, &done).await
        };
        let mut journalled: Vec<StateOp> = Vec::new();
        let mut seen = vec![false; op_changes.len()];
        let before = &*state;
        enum Msg {
            Gate(GateAsk),
            Outcome(usize, OpResult),
        }
        let mut messages = futures::stream::select(
            outcomes.map(|(i, r)| Msg::Outcome(i, r)),
            gate_asks.map(Msg::Gate),
        );
        // Which operations have a journalled intent, to settle once their outcome is known.
        let mut intended = vec![false; op_changes.len()];
        let journal = async {
            while let Some(message) = messages.next().await {
                let (i, result) = match message {
                    Msg::Outcome(i, result) => (i, result),
                    Msg::Gate((i, reply)) => {
                        let answer = match intents.get(i).cloned().flatten() {
                            Some(mut intent) => {
                                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                                intent.recorded_at = now;
                                intent.settles_by = now.saturating_add(window);
                                let op = StateOp::Intend { intent };
                                match recorder.record(&op).await {
                                    Ok(()) => {
                                        journalled.push(op);
                                        if let Some(flag) = intended.get_mut(i) {
                                            *flag = true;
                                        }
                                        Ok(())
                                    }
                                    Err(e) => Err(format!(
                                        "not sent: its intent could not be recorded in the state ({e})"
                                    )),
                                }
                            }
                            None => Ok(()),
                        };
                        let _ = reply.send(answer);
                        continue;
                    }
                };
                let Some(change) = op_changes.get(i) else {
                    continue;
                };
                match seen.get_mut(i) {
                    Some(s) if !*s => *s = true,
                    _ => continue, // a target reporting twice: the first outcome stands
                }
                let settle = intended
                    .get(i)
                    .copied()
                    .unwrap_or(false)
                    .then(|| StateOp::Settle {
                        sync: sync.name.clone(),
                        identity: change.identity.clone(),
                    });
                match result {
                    Ok(id) => {
                        let mut ops = state_ops(sync, spec, change, &id, &live_by_id, before);
                        ops.extend(settle);
                        let mut outcome = Ok(Some(id));
                        for op in &ops {
                            if let Err(e) = recorder.record(op).await {
                                outcome = Err((
                                    Outcome::Error,
                                    format!(
                                        "applied in the target but not recorded in the state ({e}); run plan: the account will be adopted"
                                    ),
                                ));
                                break;
                            }
                            journalled.push(op.clone());
                        }
                        observe(sync, change, outcome);
                    }
                    Err(e) => {
                        // A create that surely made nothing settles its intent; one whose
                        // outcome is unknown keeps it, for the next run's lookup.
                        if let Some(op) = settle.filter(|_| never_created(&e))
                            && recorder.record(&op).await.is_ok()
                        {
                            journalled.push(op);
                        }
                        match e {
                            ConnectorError::Cancelled => observe(
                                sync,
                                change,
                                Err((Outcome::NotStarted, NOT_STARTED.to_string())),
                            ),
                            e => observe(sync, change, Err((Outcome::of(&e), e.to_string()))),
                        }
                    }
                }
            }
        };
        let (batch, ()) = futures::join!(run, journal);
        for op in &journalled {
            state.apply_op(op);
        }
        for (i, change) in op_changes.iter().enumerate() {
            if seen.get(i).copied().unwrap_or(false) {
                continue;
            }
            let failed = match &batch {
                Err(e) => (Outcome::of(e), e.to_string()),
                Ok(()) => (
                    Outcome::Error,
                    "the target reported no outcome for this operation; run plan again".to_string(),
                ),
            };
            observe(sync, change, Err(failed));
        }
    }
    report.into_inner().unwrap_or_default()
}

/// Whether a failed create surely made no account: refused before or without processing.
fn never_created(e: &crate::connectors::ConnectorError) -> bool {
    use crate::connectors::ConnectorError as E;
    matches!(
        e,
        E::Cancelled
            | E::Config(_)
            | E::Auth { .. }
            | E::Permission { .. }
            | E::Rejected { .. }
            | E::Throttled { .. }
            | E::Unsupported { .. }
    )
}

enum Prepared {
    StateOnly(StateOp),
    Target(TargetOp),
    Fail(String),
}

fn failure(sync: &SyncPlan, change: &Change, message: String) -> Failure {
    Failure {
        sync: sync.name.clone(),
        action: change.action,
        identity: change.identity.values().next().cloned().unwrap_or_default(),
        target_id: change.target_id.clone(),
        message,
    }
}

fn prepare(
    sync: &SyncPlan,
    spec: Option<&SyncSpec>,
    change: &Change,
    live: &HashMap<&str, &LiveAccount>,
    state: &State,
    secrets: &BTreeMap<String, BTreeMap<String, Value>>,
) -> Prepared {
    let after = after_values;
    match change.action {
        Action::Forget => match &change.target_id {
            Some(id) => Prepared::StateOnly(StateOp::Remove {
                sync: sync.name.clone(),
                target_id: id.clone(),
            }),
            None => Prepared::Fail("forget without a target id".to_string()),
        },
        Action::Create => {
            let Some(spec) = spec else {
                return Prepared::Fail(format!("sync `{}` is not in the config", sync.name));
            };
            let primary = primary(spec, change);
            let mut fields = after(change);
            for (name, diff) in &change.fields {
                // A sensitive value only ever comes from the source, never from the plan, even
                // when an edited plan dropped the flag.
                let catalog_sensitive = spec.target_fields.lookup(name).is_ok_and(|f| f.sensitive);
                if diff.sensitive || catalog_sensitive {
                    match secrets.get(&primary).and_then(|s| s.get(name)) {
                        Some(v) => {
                            fields.insert(name.clone(), v.clone());
                        }
                        None => {
                            return Prepared::Fail(format!(
                                "the value of sensitive field `{name}` is not available: it is never stored in a plan, and the source no longer yields it; run plan again"
                            ));
                        }
                    }
                }
            }
            Prepared::Target(TargetOp::Create {
                fields,
                active: change.active.map(|a| a.after).unwrap_or(true),
                notify: spec.on_create.notify,
            })
        }
        Action::Delete => match &change.target_id {
            Some(id) => Prepared::Target(TargetOp::Delete { id: id.clone() }),
            None => Prepared::Fail("delete without a target id".to_string()),
        },
        Action::Update | Action::Adopt | Action::Deactivate | Action::Reactivate => {
            let Some(id) = &change.target_id else {
                return Prepared::Fail(format!("{} without a target id", change.action));
            };
            let fields = after(change);
            let active = change.active.map(|a| a.after);
            if fields.is_empty() && active.is_none() {
                // A pure adopt: nothing to write in the target.
                let ops = state_ops(sync, spec, change, id, live, state);
                return match ops.into_iter().next() {
                    Some(op) => Prepared::StateOnly(op),
                    None => Prepared::Fail("nothing to record".to_string()),
                };
            }
            Prepared::Target(TargetOp::Modify {
                id: id.clone(),
                fields,
                expected: change
                    .fields
                    .iter()
                    .map(|(k, d)| (k.clone(), d.before.clone()))
                    .collect(),
                active,
                removal: change.removal,
            })
        }
    }
}

/// The values a change writes, by field.
fn after_values(change: &Change) -> BTreeMap<String, Value> {
    change
        .fields
        .iter()
        .map(|(k, d)| (k.clone(), d.after.clone()))
        .collect()
}

fn primary(spec: &SyncSpec, change: &Change) -> String {
    spec.identity
        .first()
        .and_then(|k| change.identity.get(k))
        .cloned()
        .unwrap_or_default()
}

/// The state operations that record a successful change.
fn state_ops(
    sync: &SyncPlan,
    spec: Option<&SyncSpec>,
    change: &Change,
    id: &str,
    live: &HashMap<&str, &LiveAccount>,
    state: &State,
) -> Vec<StateOp> {
    let existing = state.syncs.get(&sync.name).and_then(|s| s.accounts.get(id));
    let remove = StateOp::Remove {
        sync: sync.name.clone(),
        target_id: id.to_string(),
    };
    // The state keeps the marker for a sensitive value, never the value.
    let mut after = after_values(change);
    for (name, diff) in &change.fields {
        if diff.sensitive
            && let Some(v) = after.get_mut(name)
            && !v.is_null()
        {
            *v = crate::plan::sensitive_marker();
        }
    }
    match change.action {
        Action::Delete | Action::Forget => vec![remove],
        Action::Create => {
            let mut ops = Vec::new();
            // An entry for an account that vanished from the target is replaced.
            if let (Some(spec), Some(s)) = (spec, state.syncs.get(&sync.name)) {
                let p = primary(spec, change);
                for (old_id, m) in &s.accounts {
                    let same = spec.identity.first().and_then(|k| m.identity.get(k)) == Some(&p);
                    if same && old_id != id {
                        ops.push(StateOp::Remove {
                            sync: sync.name.clone(),
                            target_id: old_id.clone(),
                        });
                    }
                }
            }
            ops.push(StateOp::Upsert {
                sync: sync.name.clone(),
                target: sync.target.clone(),
                target_id: id.to_string(),
                account: ManagedAccount {
                    identity: change.identity.clone(),
                    fields: after,
                    active: Some(change.active.map(|a| a.after).unwrap_or(true)),
                    origin: Origin::Created,
                    deactivated_by_headcount: false,
                },
            });
            ops
        }
        Action::Update | Action::Adopt | Action::Deactivate | Action::Reactivate => {
            // Last-applied values: the live values of the mapped fields, with the change on top.
            let mut fields = BTreeMap::new();
            if let (Some(spec), Some(acc)) = (spec, live.get(id)) {
                let specs = desired::field_specs(spec);
                for (name, fspec) in &specs {
                    if fspec.sensitive {
                        continue;
                    }
                    let raw = acc.fields.get(name).unwrap_or(&Value::Null);
                    fields.insert(name.clone(), values::live_value(fspec, name, raw));
                }
            } else if let Some(m) = existing {
                fields = m.fields.clone();
            }
            fields.extend(after);
            let live_active = live.get(id).map(|a| a.active);
            let active = change.active.map(|a| a.after).or(live_active);
            let deactivated_by_headcount = match change.action {
                Action::Deactivate => true,
                Action::Reactivate => false,
                _ => existing.is_some_and(|m| m.deactivated_by_headcount),
            };
            vec![StateOp::Upsert {
                sync: sync.name.clone(),
                target: sync.target.clone(),
                target_id: id.to_string(),
                account: ManagedAccount {
                    identity: change.identity.clone(),
                    fields,
                    active,
                    origin: match (change.action, existing) {
                        (Action::Adopt, _) | (_, None) => Origin::Adopted,
                        (_, Some(m)) => m.origin,
                    },
                    deactivated_by_headcount,
                },
            }]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ManagePolicy, OnCreate, RemovedPolicy};
    use crate::connectors::TargetKind;
    use crate::connectors::{ConnectorError, for_each_op};
    use crate::expr::Expr;
    use crate::plan::{ActiveDiff, FieldDiff, Summary};
    use crate::planner::MaxRemovalsSpec;
    use async_trait::async_trait;
    use serde_json::json;
    use std::sync::Mutex as StdMutex;

    /// A target that fails every operation whose email starts with "bad", and loses the answer
    /// of those starting with "lost".
    struct Picky {
        seen: StdMutex<Vec<TargetOp>>,
    }

    #[async_trait]
    impl Target for Picky {
        async fn list(&self) -> Result<Vec<LiveAccount>, ConnectorError> {
            Ok(vec![])
        }
        async fn apply(
            &self,
            ops: &[TargetOp],
            opts: &ApplyOptions,
            done: &(dyn Fn(usize, OpResult) + Send + Sync),
        ) -> Result<(), ConnectorError> {
            for_each_op(
                ops,
                opts,
                |i, op| {
                    self.seen.lock().unwrap().push(op.clone());
                    let result = match op {
                        TargetOp::Create { fields, .. } => {
                            let email = fields["email"].as_str().unwrap_or_default().to_string();
                            if email.starts_with("bad") {
                                Err(ConnectorError::rejected(format!(
                                    "422 Email {email} is blocked"
                                )))
                            } else if email.starts_with("lost") {
                                Err(ConnectorError::Ambiguous {
                                    what: "POST /users".into(),
                                    cause: "connection dropped".into(),
                                })
                            } else {
                                Ok(format!("id-{i}"))
                            }
                        }
                        _ => Ok("x".to_string()),
                    };
                    async move { result }
                },
                done,
            )
            .await;
            Ok(())
        }
    }

    fn spec() -> SyncSpec {
        SyncSpec {
            name: "s".into(),
            source: "hr".into(),
            target: "t".into(),
            target_fields: TargetKind::MojoHelpdesk.field_table(&[]),
            where_: None,
            identity: vec!["email".into()],
            fields: vec![
                ("email".into(), Some(Expr::compile("user.email").unwrap())),
                ("password".into(), Some(Expr::compile("user.pw").unwrap())),
            ],
            active: None,
            on_create: OnCreate::default(),
            removed: RemovedPolicy::Deactivate,
            manage: ManagePolicy::Owned,
            protect: vec![],
            max_removals: MaxRemovalsSpec::Count(10),
        }
    }

    fn create(email: &str) -> Change {
        Change {
            action: Action::Create,
            identity: BTreeMap::from([("email".into(), email.into())]),
            target_id: None,
            fields: BTreeMap::from([
                (
                    "email".into(),
                    FieldDiff {
                        before: Value::Null,
                        after: json!(email),
                        sensitive: false,
                    },
                ),
                (
                    "password".into(),
                    FieldDiff {
                        before: Value::Null,
                        after: crate::plan::sensitive_marker(),
                        sensitive: true,
                    },
                ),
            ]),
            active: Some(ActiveDiff {
                before: None,
                after: true,
            }),
            live_fingerprint: None,
            removal: false,
            notes: vec![],
        }
    }

    #[tokio::test]
    async fn a_failed_operation_fails_alone_and_only_successes_are_recorded() {
        let emails = ["a@x.com", "bad@x.com", "c@x.com", "lost@x.com"];
        let sync = SyncPlan {
            name: "s".into(),
            source: "hr".into(),
            target: "t".into(),
            summary: Summary::default(),
            changes: emails.iter().map(|e| create(e)).collect(),
            invalid: vec![],
            conflicts: vec![],
            errors: vec![],
            guard_blocked: false,
        };
        let picky = Picky {
            seen: StdMutex::new(vec![]),
        };
        let targets: HashMap<String, Box<dyn Target>> =
            HashMap::from([("t".to_string(), Box::new(picky) as Box<dyn Target>)]);
        let secrets: Secrets = HashMap::from([(
            "s".to_string(),
            emails
                .iter()
                .map(|e| {
                    (
                        e.to_string(),
                        BTreeMap::from([("password".to_string(), json!("pw-123456"))]),
                    )
                })
                .collect(),
        )]);
        let recorded = StdMutex::new(Vec::new());
        let events = StdMutex::new(Vec::new());
        let mut state = State::new("l".into());
        let report = apply(
            ApplyInput {
                syncs: std::slice::from_ref(&sync),
                specs: &[spec()],
                targets: &targets,
                live: &HashMap::new(),
                secrets: &secrets,
                options: &ApplyOptions::default(),
                observer: &|e: &OpEvent| events.lock().unwrap().push(e.clone()),
            },
            &mut state,
            &|op: &StateOp| {
                recorded.lock().unwrap().push(op.clone());
                Ok(())
            },
        )
        .await;
        assert_eq!(report.succeeded(), 2);
        assert_eq!(report.failures.len(), 2);
        assert_eq!(report.failures[0].identity, "bad@x.com");
        assert!(
            report.failures[0]
                .message
                .contains("422 Email bad@x.com is blocked")
        );
        let managed: Vec<&String> = state.syncs["s"].accounts.keys().collect();
        assert_eq!(managed.len(), 2);
        let recorded = recorded.lock().unwrap();
        let count = |f: fn(&StateOp) -> bool| recorded.iter().filter(|op| f(op)).count();
        assert_eq!(
            count(|op| matches!(op, StateOp::Upsert { .. })),
            2,
            "only successes are recorded as accounts"
        );
        // Every create's intent was journalled before it was sent, and settled by its outcome
        // (the refused one too: a 422 made nothing); the one whose answer was lost stays, as
        // unknown, for the next run's lookup.
        assert_eq!(count(|op| matches!(op, StateOp::Intend { .. })), 4);
        assert_eq!(count(|op| matches!(op, StateOp::Settle { .. })), 3);
        let first_intent = recorded
            .iter()
            .position(|op| matches!(op, StateOp::Intend { .. }))
            .unwrap();
        let first_upsert = recorded
            .iter()
            .position(|op| matches!(op, StateOp::Upsert { .. }))
            .unwrap();
        assert!(first_intent < first_upsert, "{recorded:?}");
        let pending: Vec<&str> = state
            .intents
            .iter()
            .filter_map(|i| i.identity.get("email").map(String::as_str))
            .collect();
        assert_eq!(pending, ["lost@x.com"]);
        let events = events.lock().unwrap();
        assert_eq!(events.len(), 4);
        for e in events.iter() {
            assert_eq!(e.fields["password"].after, json!("(sensitive)"));
        }
        // The outcome comes from the error's kind, not its text: a lost answer is unknown.
        let outcome = |email: &str| {
            events
                .iter()
                .find(|e| e.identity["email"] == email)
                .map(|e| e.outcome)
        };
        assert_eq!(outcome("a@x.com"), Some(Outcome::Ok));
        assert_eq!(outcome("bad@x.com"), Some(Outcome::Error));
        assert_eq!(outcome("lost@x.com"), Some(Outcome::Unknown));
        // The real secret reached the target, and only there.
        let stored = serde_json::to_string(&state).unwrap();
        assert!(!stored.contains("pw-123456"));
    }

    #[tokio::test]
    async fn cancelled_apply_starts_nothing_new() {
        let sync = SyncPlan {
            name: "s".into(),
            source: "hr".into(),
            target: "t".into(),
            summary: Summary::default(),
            changes: vec![create("a@x.com")],
            invalid: vec![],
            conflicts: vec![],
            errors: vec![],
            guard_blocked: false,
        };
        let targets: HashMap<String, Box<dyn Target>> = HashMap::from([(
            "t".to_string(),
            Box::new(Picky {
                seen: StdMutex::new(vec![]),
            }) as Box<dyn Target>,
        )]);
        let options = ApplyOptions::default();
        options
            .cancel
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let mut state = State::new("l".into());
        let report = apply(
            ApplyInput {
                syncs: std::slice::from_ref(&sync),
                specs: &[spec()],
                targets: &targets,
                live: &HashMap::new(),
                secrets: &HashMap::new(),
                options: &options,
                observer: &|_: &OpEvent| {},
            },
            &mut state,
            &|_: &StateOp| Ok(()),
        )
        .await;
        assert_eq!(report.succeeded(), 0);
        assert!(report.failures[0].message.contains("interrupted"));
        assert!(state.syncs.is_empty());
    }
}
