//! The apply engine: turns the changes of a plan into target operations, records each success
//! in the state (through a journal sink, so a crash loses nothing), and reports what failed.
//! It does not decide anything: every decision is in the plan.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde_json::Value;

use crate::connector::{ApplyOptions, LiveAccount, OpResult, Target, TargetOp};
use crate::plan::{Action, Change, SyncPlan};
use crate::planner::{SyncSpec, desired, values};
use crate::state::{ManagedAccount, Origin, State, StateOp};

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

/// Everything one apply needs.
pub struct ApplyInput<'a> {
    pub syncs: &'a [SyncPlan],
    pub specs: &'a [SyncSpec],
    pub targets: &'a HashMap<String, Box<dyn Target>>,
    /// The live accounts the changes were checked against, per target name.
    pub live: &'a HashMap<String, Vec<LiveAccount>>,
    pub secrets: &'a Secrets,
    pub options: &'a ApplyOptions,
}

/// Applies every change. `record` is called for each state operation right after the target
/// confirmed it (the caller journals it); the in-memory `state` is updated too.
pub async fn apply(
    input: ApplyInput<'_>,
    state: &mut State,
    record: &(dyn Fn(&StateOp) -> Result<(), String> + Send + Sync),
) -> ApplyReport {
    let mut report = ApplyReport::default();
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
            match prepare(sync, spec, change, &live_by_id, state, secrets) {
                Prepared::StateOnly(op) => {
                    if let Err(e) = record(&op) {
                        report.failures.push(failure(sync, change, e));
                        continue;
                    }
                    state.apply_op(&op);
                    *report
                        .applied
                        .entry(sync.name.clone())
                        .or_default()
                        .entry(change.action)
                        .or_default() += 1;
                }
                Prepared::Target(op) => {
                    ops.push(op);
                    op_changes.push(change);
                }
                Prepared::Fail(message) => report.failures.push(failure(sync, change, message)),
            }
        }
        if ops.is_empty() {
            continue;
        }
        let Some(target) = input.targets.get(&sync.target) else {
            for change in op_changes {
                report.failures.push(failure(
                    sync,
                    change,
                    format!("target `{}` is not configured", sync.target),
                ));
            }
            continue;
        };

        // Each outcome is journalled from inside the callback, as soon as it is known.
        let outcome: Mutex<Vec<(usize, Result<StateOp, String>)>> = Mutex::new(Vec::new());
        let state_snapshot = state.clone();
        let done = |i: usize, result: OpResult| {
            let Some(change) = op_changes.get(i) else {
                return;
            };
            let entry = match result {
                Ok(id) => {
                    let ops = state_ops(sync, spec, change, &id, &live_by_id, &state_snapshot);
                    let mut journalled = Ok(ops.last().cloned());
                    for op in &ops {
                        if let Err(e) = record(op) {
                            journalled = Err(format!(
                                "applied in the target but not recorded in the state: {e}"
                            ));
                            break;
                        }
                    }
                    match journalled {
                        Ok(_) => Ok(ops),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            if let Ok(mut list) = outcome.lock() {
                match entry {
                    Ok(ops) => {
                        for op in ops {
                            list.push((i, Ok(op)));
                        }
                    }
                    Err(e) => list.push((i, Err(e))),
                }
            }
        };
        if let Err(e) = target.apply(&ops, input.options, &done).await {
            for change in &op_changes {
                report.failures.push(failure(sync, change, e.to_string()));
            }
            continue;
        }
        let results = outcome.into_inner().unwrap_or_default();
        let mut counted = vec![false; op_changes.len()];
        for (i, r) in results {
            let Some(change) = op_changes.get(i) else {
                continue;
            };
            match r {
                Ok(op) => {
                    state.apply_op(&op);
                    if !counted[i] {
                        counted[i] = true;
                        *report
                            .applied
                            .entry(sync.name.clone())
                            .or_default()
                            .entry(change.action)
                            .or_default() += 1;
                    }
                }
                Err(message) => {
                    counted[i] = true;
                    report.failures.push(failure(sync, change, message));
                }
            }
        }
        for (i, seen) in counted.iter().enumerate() {
            if !seen && let Some(change) = op_changes.get(i) {
                report.failures.push(failure(
                    sync,
                    change,
                    "the target reported no outcome for this operation; run plan again".to_string(),
                ));
            }
        }
    }
    report
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
    let after = |c: &Change| -> BTreeMap<String, Value> {
        c.fields
            .iter()
            .map(|(k, d)| (k.clone(), d.after.clone()))
            .collect()
    };
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
                if diff.sensitive {
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
    let after: BTreeMap<String, Value> = change
        .fields
        .iter()
        .map(|(k, d)| (k.clone(), d.after.clone()))
        .collect();
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
