//! Drift (SPEC section 9): the plan's differences labelled by cause. Pure: the plan of a sync,
//! its live accounts and the state in, labelled differences out.
//!
//! The rule per field, with `last` the value headcount last wrote (kept in the state):
//! desired ≠ last and live = last → `source`; desired = last and live ≠ last → `target`;
//! both ≠ last → `both`. A field with no last-applied value (an account adopted but never
//! applied, a create, a field added to the mapping since the last apply) has nothing to
//! compare with: it is labelled `source`, because applying is what the config asks for, and a
//! note says there was no last-applied value. Sensitive values are never compared nor shown.
//! A managed account gone from the target is `missing`; with `manage: all`, a live account in
//! scope that no state entry holds and nothing desires is `unmanaged`. An account whose fields
//! have different causes is `both` as a whole; each field keeps its own cause.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::Value;

use super::{PlannedSync, SyncSpec, desired, values};

#[cfg(test)]
mod tests;
use crate::drift::{ActiveDrift, Cause, Difference, DriftSummary, FieldDrift, SyncDrift};
use crate::model::{FieldSpec, LiveAccount};
use crate::plan::{Action, Change, sensitive_marker};
use crate::state::{ManagedAccount, State};

/// What drift needs about one sync.
#[derive(Debug, Clone, Copy)]
pub struct DriftInput<'a> {
    /// `None` for a sync gone from the config (its accounts are forgotten: a config change).
    pub spec: Option<&'a SyncSpec>,
    pub planned: &'a PlannedSync,
    /// The target's live accounts (empty when it could not be listed: the plan then holds an
    /// error and nothing is classified).
    pub live: &'a [LiveAccount],
    pub state: Option<&'a State>,
}

/// The note on a difference whose values were never applied.
pub const NEVER_APPLIED: &str =
    "no last-applied value (never applied by headcount): labelled `source`, the config asks for it";

/// Labels every difference of one planned sync by its cause.
pub fn classify(input: DriftInput<'_>) -> SyncDrift {
    let plan = &input.planned.plan;
    let mut out = SyncDrift {
        name: plan.name.clone(),
        source: plan.source.clone(),
        target: plan.target.clone(),
        summary: DriftSummary::default(),
        differences: Vec::new(),
        errors: plan.errors.clone(),
    };
    if !plan.errors.is_empty() {
        return out;
    }
    let empty = BTreeMap::new();
    let managed: &BTreeMap<String, ManagedAccount> = input
        .state
        .and_then(|s| s.syncs.get(&plan.name))
        .map(|s| &s.accounts)
        .unwrap_or(&empty);
    let specs = input.spec.map(desired::field_specs).unwrap_or_default();
    let sensitive: BTreeSet<&str> = specs
        .iter()
        .filter(|(_, f)| f.sensitive)
        .map(|(n, _)| n.as_str())
        .collect();
    let primary_key = input.spec.and_then(|s| s.identity.first());
    let live_ids: HashSet<&str> = input.live.iter().map(|a| a.id.as_str()).collect();
    let mut used: HashSet<usize> = HashSet::new();

    // Managed accounts gone from the target, with the change that recreates or forgets them.
    // A sync gone from the config has no target read: its accounts are forgotten (`source`).
    let gone = managed
        .iter()
        .filter(|(id, _)| input.spec.is_some() && !live_ids.contains(id.as_str()));
    for (id, m) in gone {
        let primary = primary_key.and_then(|k| m.identity.get(k));
        let found = plan.changes.iter().enumerate().find(|(i, c)| {
            !used.contains(i)
                && match c.action {
                    Action::Forget => c.target_id.as_deref() == Some(id.as_str()),
                    Action::Create => {
                        primary.is_some() && primary_key.and_then(|k| c.identity.get(k)) == primary
                    }
                    _ => false,
                }
        });
        let change = found.map(|(i, c)| {
            used.insert(i);
            c
        });
        out.differences.push(missing(id, m, change, &sensitive));
    }

    let mut unmanaged_left = input.planned.unmanaged.len();
    for (i, c) in plan.changes.iter().enumerate() {
        if used.contains(&i) {
            continue;
        }
        if let Some(id) = c.target_id.as_deref()
            && c.removal
            && input.planned.unmanaged.contains_key(id)
        {
            unmanaged_left -= 1;
            out.differences
                .push(unmanaged(id, c.identity.clone(), Some(c), input.live));
            continue;
        }
        let entry = c.target_id.as_deref().and_then(|id| managed.get(id));
        out.differences.push(labelled(c, entry, &specs, &sensitive));
    }
    // Unmanaged accounts the `removed` policy leaves alone (`keep`, already inactive).
    for (id, identity) in &input.planned.unmanaged {
        let changed = plan
            .changes
            .iter()
            .any(|c| c.removal && c.target_id.as_deref() == Some(id.as_str()));
        if !changed {
            out.differences
                .push(unmanaged(id, identity.clone(), None, input.live));
        }
    }

    out.differences.sort_by_key(|d| d.cause);
    for d in &out.differences {
        out.summary.add(d.cause);
    }
    // The planner counts unmanaged accounts it leaves alone as unchanged; they drifted.
    out.summary.in_sync = plan.summary.unchanged.saturating_sub(unmanaged_left);
    out
}

/// The cause of one value: how desired and live each compare with the last-applied one.
pub fn cause_of(desired_changed: bool, live_changed: bool) -> Cause {
    match (desired_changed, live_changed) {
        (false, true) => Cause::Target,
        (true, true) => Cause::Both,
        // (false, false) cannot be a difference; label it as what the config asks for.
        _ => Cause::Source,
    }
}

/// The account's cause: the one cause of its values, `both` when they disagree.
fn account_cause(causes: impl IntoIterator<Item = Cause>) -> Cause {
    let set: BTreeSet<Cause> = causes.into_iter().collect();
    match set.len() {
        0 => Cause::Source,
        1 => set.into_iter().next().unwrap_or(Cause::Source),
        _ => Cause::Both,
    }
}

fn is_marker(v: &Value) -> bool {
    v.get("sensitive").and_then(Value::as_bool) == Some(true)
}

fn same(spec: Option<&FieldSpec>, a: &Value, b: &Value) -> bool {
    match spec {
        Some(f) => values::same(f, a, b),
        None => a == b,
    }
}

/// A change of the plan on an account the target still holds.
fn labelled(
    c: &Change,
    entry: Option<&ManagedAccount>,
    specs: &BTreeMap<String, FieldSpec>,
    sensitive: &BTreeSet<&str>,
) -> Difference {
    let mut never_applied = false;
    // Creates, adopts, removals and forgets follow from the source or the config: nothing
    // headcount wrote was changed in the target.
    let compare = matches!(
        c.action,
        Action::Update | Action::Deactivate | Action::Reactivate
    ) && !c.removal;
    let mut fields = BTreeMap::new();
    for (name, diff) in &c.fields {
        let secret = diff.sensitive || sensitive.contains(name.as_str());
        let last = entry.and_then(|m| m.fields.get(name));
        let cause = match last {
            _ if secret || !compare => Cause::Source,
            Some(last) if !is_marker(last) => {
                let fspec = specs.get(name);
                cause_of(
                    !same(fspec, &diff.after, last),
                    !same(fspec, &diff.before, last),
                )
            }
            _ => {
                never_applied = true;
                Cause::Source
            }
        };
        let hide = |v: &Value| {
            if secret && !v.is_null() {
                sensitive_marker()
            } else {
                v.clone()
            }
        };
        fields.insert(
            name.clone(),
            FieldDrift {
                cause,
                last_applied: last.map(hide).unwrap_or(Value::Null),
                live: hide(&diff.before),
                desired: hide(&diff.after),
                sensitive: secret,
            },
        );
    }
    let active = c.active.map(|a| {
        let last = entry.and_then(|m| m.active);
        let cause = match last {
            _ if !compare => Cause::Source,
            Some(last) => cause_of(a.after != last, a.before != Some(last)),
            None => {
                never_applied = true;
                Cause::Source
            }
        };
        ActiveDrift {
            cause,
            last_applied: last,
            live: a.before,
            desired: Some(a.after),
        }
    });
    let mut notes = c.notes.clone();
    if never_applied || (compare && entry.is_none()) {
        notes.push(NEVER_APPLIED.to_string());
    }
    let cause = if compare {
        account_cause(
            fields
                .values()
                .map(|f| f.cause)
                .chain(active.map(|a| a.cause)),
        )
    } else {
        Cause::Source
    };
    Difference {
        cause,
        identity: c.identity.clone(),
        target_id: c.target_id.clone(),
        action: Some(c.action),
        fields,
        active,
        notes,
    }
}

/// A managed account gone from the target; `change` recreates or forgets it.
fn missing(
    id: &str,
    m: &ManagedAccount,
    change: Option<&Change>,
    sensitive: &BTreeSet<&str>,
) -> Difference {
    let mut fields = BTreeMap::new();
    let names: BTreeSet<&String> = m
        .fields
        .keys()
        .chain(change.into_iter().flat_map(|c| c.fields.keys()))
        .collect();
    for name in names {
        let last = m.fields.get(name).cloned().unwrap_or(Value::Null);
        let desired = change
            .and_then(|c| c.fields.get(name))
            .map(|d| d.after.clone())
            .unwrap_or(Value::Null);
        let secret = sensitive.contains(name.as_str()) || is_marker(&last) || is_marker(&desired);
        let hide = |v: Value| {
            if secret && !v.is_null() {
                sensitive_marker()
            } else {
                v
            }
        };
        fields.insert(
            name.clone(),
            FieldDrift {
                cause: Cause::Missing,
                last_applied: hide(last),
                live: Value::Null,
                desired: hide(desired),
                sensitive: secret,
            },
        );
    }
    let mut notes = vec![format!(
        "managed as {id} but gone from the target (deleted out of band)"
    )];
    notes.push(match change.map(|c| c.action) {
        Some(Action::Create) => "apply creates it again".to_string(),
        _ => "no longer desired either: apply stops managing it".to_string(),
    });
    Difference {
        cause: Cause::Missing,
        identity: m.identity.clone(),
        target_id: Some(id.to_string()),
        action: Some(change.map(|c| c.action).unwrap_or(Action::Forget)),
        fields,
        active: Some(ActiveDrift {
            cause: Cause::Missing,
            last_applied: m.active,
            live: None,
            desired: change.and_then(|c| c.active).map(|a| a.after),
        }),
        notes,
    }
}

/// A live account in scope of `manage: all` that nothing desires and no state entry holds.
fn unmanaged(
    id: &str,
    identity: BTreeMap<String, String>,
    removal: Option<&Change>,
    live: &[LiveAccount],
) -> Difference {
    let live_active = live.iter().find(|a| a.id == id).map(|a| a.active);
    let what = match removal.map(|c| c.action) {
        Some(Action::Delete) => "apply deletes it (removed: delete)",
        Some(_) => "apply deactivates it (removed: deactivate)",
        None => "apply leaves it as it is (removed policy)",
    };
    Difference {
        cause: Cause::Unmanaged,
        identity,
        target_id: Some(id.to_string()),
        action: removal.map(|c| c.action),
        fields: BTreeMap::new(),
        active: Some(ActiveDrift {
            cause: Cause::Unmanaged,
            last_applied: None,
            live: live_active,
            desired: removal.and_then(|c| c.active).map(|a| a.after),
        }),
        notes: vec![format!(
            "in the target but in no state entry and desired by no record (manage: all): {what}"
        )],
    }
}
