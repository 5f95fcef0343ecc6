//! Matching desired accounts to live ones, ownership, actions and the mass-removal guard
//! (SPEC section 7).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use super::desired::{self, Desired};
use super::values;
use super::{MaxRemovalsSpec, SyncSpec};
use crate::model::{
    FieldSpec, IdentityNorm, LiveAccount, ManagePolicy, RemovedPolicy, SourceRecord, Writable,
};
use crate::plan::{
    Action, ActiveDiff, Change, Conflict, FieldDiff, Summary, SyncPlan, sensitive_marker,
};
use crate::state::{ManagedAccount, State};

/// Everything the planner needs for one sync. Read errors are passed in as values so that the
/// planner decides what they mean (never "everyone left").
#[derive(Debug, Clone, Copy)]
pub struct SyncInput<'a> {
    pub spec: &'a SyncSpec,
    pub records: Result<&'a [SourceRecord], &'a str>,
    pub live: Result<&'a [LiveAccount], &'a str>,
    pub state: Option<&'a State>,
    pub allow_mass_removal: bool,
}

/// The plan of one sync plus what must not be written into the plan document.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedSync {
    pub plan: SyncPlan,
    /// Sensitive values in clear for creates: primary identity → field → value.
    pub secrets: BTreeMap<String, BTreeMap<String, Value>>,
    /// `manage: all`: live accounts in scope that no state entry holds and nothing desires
    /// (target id → identity), whether or not the `removed` policy changes them. `drift`
    /// reports them as `unmanaged`.
    pub unmanaged: BTreeMap<String, BTreeMap<String, String>>,
}

/// A stable hash of a live account, checked again before apply.
pub fn fingerprint(account: &LiveAccount) -> String {
    let bytes = serde_json::to_vec(account).unwrap_or_default();
    crate::util::sha256_hex(&bytes)
}

/// Plans one sync.
pub fn plan_sync(input: SyncInput<'_>) -> PlannedSync {
    let spec = input.spec;
    let mut plan = SyncPlan {
        name: spec.name.clone(),
        source: spec.source.clone(),
        target: spec.target.clone(),
        summary: Summary::default(),
        changes: Vec::new(),
        invalid: Vec::new(),
        conflicts: Vec::new(),
        errors: Vec::new(),
        guard_blocked: false,
    };
    let mut secrets = BTreeMap::new();

    let records = match input.records {
        Ok(r) => r,
        Err(e) => {
            plan.errors.push(format!(
                "source `{}` could not be read, so nothing is planned for this sync: {e}",
                spec.source
            ));
            return PlannedSync {
                plan,
                secrets,
                unmanaged: BTreeMap::new(),
            };
        }
    };
    let live = match input.live {
        Ok(l) => l,
        Err(e) => {
            plan.errors.push(format!(
                "target `{}` could not be listed, so nothing is planned for this sync: {e}",
                spec.target
            ));
            return PlannedSync {
                plan,
                secrets,
                unmanaged: BTreeMap::new(),
            };
        }
    };

    let empty = BTreeMap::new();
    let managed: &BTreeMap<String, ManagedAccount> = input
        .state
        .and_then(|s| s.syncs.get(&spec.name))
        .map(|s| &s.accounts)
        .unwrap_or(&empty);
    // Accounts of the same target managed by other syncs.
    let others: HashMap<&str, &str> = input
        .state
        .map(|s| {
            s.syncs
                .iter()
                .filter(|(name, sync)| **name != spec.name && sync.target == spec.target)
                .flat_map(|(name, sync)| {
                    sync.accounts
                        .keys()
                        .map(move |id| (id.as_str(), name.as_str()))
                })
                .collect()
        })
        .unwrap_or_default();

    if records.is_empty() && !managed.is_empty() && !input.allow_mass_removal {
        plan.errors.push(format!(
            "source `{}` returned no records while this sync manages {} accounts: refusing to treat that as everyone leaving. Check the source; if they really all left, re-run with --allow-mass-removal",
            spec.source,
            managed.len()
        ));
        plan.guard_blocked = true;
        return PlannedSync {
            plan,
            secrets,
            unmanaged: BTreeMap::new(),
        };
    }

    let desired_set = desired::evaluate(spec, records);
    plan.invalid = desired_set.invalid;
    plan.conflicts = desired_set.conflicts;
    if let Some(error) = desired::nobody_matches(&desired_set.accounts, &plan) {
        // A config mistake (a typo in a field, a missing column), not "no changes": nothing
        // is planned, so removals cannot follow from it either.
        plan.errors.push(error);
        plan.summary.invalid = plan.invalid.len();
        plan.summary.conflicts = plan.conflicts.len();
        return PlannedSync {
            plan,
            secrets,
            unmanaged: BTreeMap::new(),
        };
    }
    let specs = desired::field_specs(spec);
    let norms: BTreeMap<&str, IdentityNorm> = spec
        .identity
        .iter()
        .map(|k| {
            let norm = specs
                .get(k)
                .and_then(|f| f.identity)
                .unwrap_or(IdentityNorm::Exact);
            (k.as_str(), norm)
        })
        .collect();

    // Live identity index: key → normalised value → live indexes.
    let live_identity: Vec<BTreeMap<String, String>> = live
        .iter()
        .map(|acc| live_identity_of(acc, &spec.identity, &norms))
        .collect();
    let mut index: HashMap<&str, HashMap<&str, Vec<usize>>> = HashMap::new();
    for (li, ident) in live_identity.iter().enumerate() {
        for (k, v) in ident {
            index
                .entry(k.as_str())
                .or_default()
                .entry(v.as_str())
                .or_default()
                .push(li);
        }
    }
    let protected: Vec<bool> = live_identity
        .iter()
        .map(|ident| {
            ident.iter().any(|(k, v)| {
                let norm = norms
                    .get(k.as_str())
                    .copied()
                    .unwrap_or(IdentityNorm::Exact);
                spec.protect.iter().any(|p| norm.normalise(p) == *v)
            })
        })
        .collect();
    let live_by_id: HashMap<&str, usize> = live
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id.as_str(), i))
        .collect();

    // Match each desired account: the first identity key with a match wins; keys that point
    // at different accounts, or a key matching several accounts, is a conflict.
    let mut held_back: HashSet<(String, String)> = desired_set.held_back.into_iter().collect();
    let mut assignment: Vec<Option<usize>> = Vec::with_capacity(desired_set.accounts.len());
    let mut bad = vec![false; desired_set.accounts.len()];
    for (di, d) in desired_set.accounts.iter().enumerate() {
        let mut chosen: Option<(usize, &str)> = None;
        let mut problem = None;
        for key in &spec.identity {
            let Some(value) = d.identity.get(key) else {
                continue;
            };
            let hits = index
                .get(key.as_str())
                .and_then(|m| m.get(value.as_str()))
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            match hits {
                [] => {}
                [li] => match chosen {
                    None => chosen = Some((*li, key)),
                    Some((c, ck)) if c != *li => {
                        problem = Some(format!(
                            "{ck} matches target account {} but {key} matches target account {}",
                            live[c].id, live[*li].id
                        ));
                    }
                    Some(_) => {}
                },
                many => {
                    problem = Some(format!(
                        "{key}={value} matches {} target accounts ({})",
                        many.len(),
                        many.iter()
                            .map(|i| live[*i].id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
        if let Some(reason) = problem {
            bad[di] = true;
            plan.conflicts.push(Conflict {
                identity: identity_text(&d.identity, spec),
                records: vec![d.label.clone()],
                reason: format!("{reason}; merge or fix the accounts in the target"),
            });
        }
        assignment.push(chosen.map(|(li, _)| li));
    }
    // Two desired accounts landing on one live account.
    let mut by_live: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (di, a) in assignment.iter().enumerate() {
        if let (Some(li), false) = (a, bad[di]) {
            by_live.entry(*li).or_default().push(di);
        }
    }
    for (li, dis) in by_live.iter().filter(|(_, d)| d.len() > 1) {
        for &di in dis {
            bad[di] = true;
        }
        plan.conflicts.push(Conflict {
            identity: format!("target account {}", live[*li].id),
            records: dis
                .iter()
                .map(|&di| desired_set.accounts[di].label.clone())
                .collect(),
            reason: "several records match the same target account through different identity keys"
                .to_string(),
        });
    }
    for (di, d) in desired_set.accounts.iter().enumerate() {
        if bad[di] {
            held_back.extend(d.identity.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }

    // Managed accounts that vanished from the target, by primary identity (a create of the same
    // person replaces them).
    let mut gone_by_primary: HashMap<&str, Vec<&str>> = HashMap::new();
    if let Some(key) = spec.identity.first() {
        for (id, m) in managed {
            if !live_by_id.contains_key(id.as_str())
                && let Some(p) = m.identity.get(key)
            {
                gone_by_primary
                    .entry(p.as_str())
                    .or_default()
                    .push(id.as_str());
            }
        }
    }
    let mut touched: HashSet<usize> = HashSet::new();
    let mut creates_by_primary: HashSet<String> = HashSet::new();
    for (di, d) in desired_set.accounts.iter().enumerate() {
        if bad[di] {
            if let Some(li) = assignment[di] {
                touched.insert(li);
            }
            continue;
        }
        match assignment[di] {
            Some(li) => {
                touched.insert(li);
                let acc = &live[li];
                if protected[li] {
                    plan.summary.unchanged += 1;
                    continue;
                }
                if let Some(other) = others.get(acc.id.as_str()) {
                    plan.errors.push(format!(
                        "target account {} ({}) is claimed by syncs `{other}` and `{}`: give each account to one sync (narrow one sync's `where`)",
                        acc.id,
                        d.primary(spec),
                        spec.name
                    ));
                    continue;
                }
                let entry = managed.get(&acc.id);
                if let Some(change) = change_for_match(spec, &specs, d, acc, entry) {
                    plan.changes.push(change);
                } else {
                    plan.summary.unchanged += 1;
                }
            }
            None => {
                let gone = gone_by_primary
                    .get(d.primary(spec))
                    .cloned()
                    .unwrap_or_default();
                let (change, secret) = create_change(spec, &specs, d, &gone);
                creates_by_primary.insert(d.primary(spec).to_string());
                if !secret.is_empty() {
                    secrets.insert(d.primary(spec).to_string(), secret);
                }
                plan.changes.push(change);
            }
        }
    }

    let is_held_back = |ident: &BTreeMap<String, String>| {
        ident
            .iter()
            .any(|(k, v)| held_back.contains(&(k.clone(), v.clone())))
    };

    // Managed accounts no longer desired.
    for (id, m) in managed {
        match live_by_id.get(id.as_str()) {
            Some(&li) => {
                if touched.contains(&li) || protected[li] || is_held_back(&m.identity) {
                    if !touched.contains(&li) {
                        plan.summary.unchanged += 1;
                    }
                    continue;
                }
                touched.insert(li);
                match removal(spec, &live[li], m.identity.clone()) {
                    Some(c) => plan.changes.push(c),
                    None => plan.summary.unchanged += 1,
                }
            }
            None => {
                let primary = spec
                    .identity
                    .first()
                    .and_then(|k| m.identity.get(k))
                    .cloned()
                    .unwrap_or_default();
                if creates_by_primary.contains(&primary) {
                    continue; // the create replaces the entry
                }
                plan.changes.push(Change {
                    action: Action::Forget,
                    identity: m.identity.clone(),
                    target_id: Some(id.clone()),
                    fields: BTreeMap::new(),
                    active: None,
                    live_fingerprint: None,
                    removal: false,
                    notes: vec![
                        "the account is gone from the target and no longer desired: headcount stops managing it".to_string(),
                    ],
                });
            }
        }
    }

    // `manage: all`: every other account in the target is in scope.
    let mut unmanaged_in_scope = 0usize;
    let mut unmanaged = BTreeMap::new();
    if spec.manage == ManagePolicy::All {
        for (li, acc) in live.iter().enumerate() {
            if touched.contains(&li)
                || protected[li]
                || managed.contains_key(&acc.id)
                || others.contains_key(acc.id.as_str())
                || is_held_back(&live_identity[li])
            {
                continue;
            }
            unmanaged_in_scope += 1;
            unmanaged.insert(acc.id.clone(), live_identity[li].clone());
            match removal(spec, acc, live_identity[li].clone()) {
                Some(c) => plan.changes.push(c),
                None => plan.summary.unchanged += 1,
            }
        }
    }

    // Mass-removal guard.
    let removals = plan
        .changes
        .iter()
        .filter(|c| c.action.is_removal())
        .count() as u64;
    let base = (managed.len() + unmanaged_in_scope) as u64;
    let (limit, how) = removal_limit(spec.max_removals, base);
    if removals > limit && !input.allow_mass_removal {
        plan.errors.push(format!(
            "{removals} deactivations/deletions exceed limits.max_removals ({how}): check the source and the `where` filter; if this is intended, re-run with --allow-mass-removal"
        ));
        plan.guard_blocked = true;
    }

    plan.changes.sort_by(|a, b| {
        (action_rank(a.action), primary_of(a, spec))
            .cmp(&(action_rank(b.action), primary_of(b, spec)))
    });
    for c in &plan.changes {
        plan.summary.add(c.action);
    }
    plan.summary.invalid = plan.invalid.len();
    plan.summary.conflicts = plan.conflicts.len();
    PlannedSync {
        plan,
        secrets,
        unmanaged,
    }
}

/// The limit and how it was computed, for the message.
pub fn removal_limit(max: MaxRemovalsSpec, managed: u64) -> (u64, String) {
    match max {
        MaxRemovalsSpec::Count(n) => (n, format!("{n}")),
        MaxRemovalsSpec::Percent(p) => {
            let raw = (p / 100.0 * managed as f64).floor() as u64;
            let limit = if managed > 0 { raw.max(1) } else { 0 };
            (
                limit,
                format!("{p}% of {managed} managed accounts = {limit}"),
            )
        }
    }
}

fn action_rank(a: Action) -> u8 {
    match a {
        Action::Create => 0,
        Action::Adopt => 1,
        Action::Update => 2,
        Action::Reactivate => 3,
        Action::Deactivate => 4,
        Action::Delete => 5,
        Action::Forget => 6,
    }
}

fn primary_of<'c>(c: &'c Change, spec: &SyncSpec) -> &'c str {
    spec.identity
        .first()
        .and_then(|k| c.identity.get(k))
        .map(String::as_str)
        .unwrap_or_default()
}

fn identity_text(ident: &BTreeMap<String, String>, spec: &SyncSpec) -> String {
    spec.identity
        .iter()
        .filter_map(|k| ident.get(k).map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn live_identity_of(
    acc: &LiveAccount,
    keys: &[String],
    norms: &BTreeMap<&str, IdentityNorm>,
) -> BTreeMap<String, String> {
    keys.iter()
        .filter_map(|k| {
            let raw = match acc.fields.get(k)? {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            let norm = norms
                .get(k.as_str())
                .copied()
                .unwrap_or(IdentityNorm::Exact);
            let v = norm.normalise(&raw);
            (!v.is_empty()).then(|| (k.clone(), v))
        })
        .collect()
}

/// What to do with a desired account that matched a live one; `None` when nothing.
fn change_for_match(
    spec: &SyncSpec,
    specs: &BTreeMap<String, FieldSpec>,
    d: &Desired,
    acc: &LiveAccount,
    entry: Option<&ManagedAccount>,
) -> Option<Change> {
    let mut fields = BTreeMap::new();
    let mut notes = Vec::new();
    for (name, want) in &d.fields {
        let Some(fspec) = specs.get(name) else {
            continue;
        };
        if fspec.sensitive {
            continue; // create-only secrets are never compared
        }
        let have = values::live_value(fspec, name, acc.fields.get(name).unwrap_or(&Value::Null));
        if values::same(fspec, want, &have) {
            continue;
        }
        if fspec.writable == Writable::CreateOnly {
            notes.push(format!(
                "`{name}` is {} in the target but {} is wanted; it cannot be changed after create, so it is left alone",
                values::short(&have),
                values::short(want)
            ));
            continue;
        }
        fields.insert(
            name.clone(),
            FieldDiff {
                before: have,
                after: want.clone(),
                sensitive: false,
            },
        );
    }

    let may_activate = spec.on_create.active || entry.is_some_and(|m| m.deactivated_by_headcount);
    let active_change = if !d.active && acc.active {
        Some(false)
    } else if d.active && !acc.active && may_activate {
        Some(true)
    } else {
        if d.active && !acc.active {
            notes.push(
                "inactive in the target: accounts created pending (on_create.active: false) are activated by a person, not by headcount".to_string(),
            );
        }
        None
    };

    let action = if entry.is_none() {
        Action::Adopt
    } else {
        match active_change {
            Some(false) => Action::Deactivate,
            Some(true) => Action::Reactivate,
            None if fields.is_empty() => return None,
            None => Action::Update,
        }
    };
    if action == Action::Deactivate {
        notes.push("inactive in the source (`active` is false)".to_string());
    }
    Some(Change {
        action,
        identity: d.identity.clone(),
        target_id: Some(acc.id.clone()),
        fields,
        active: active_change.map(|after| ActiveDiff {
            before: Some(acc.active),
            after,
        }),
        live_fingerprint: Some(fingerprint(acc)),
        removal: false,
        notes,
    })
}

fn create_change(
    spec: &SyncSpec,
    specs: &BTreeMap<String, FieldSpec>,
    d: &Desired,
    gone: &[&str],
) -> (Change, BTreeMap<String, Value>) {
    let mut fields = BTreeMap::new();
    let mut secret = BTreeMap::new();
    for (name, value) in &d.fields {
        if value.is_null() {
            continue;
        }
        let sensitive = specs.get(name).is_some_and(|f| f.sensitive);
        let after = match (sensitive, value) {
            (true, _) => {
                secret.insert(name.clone(), value.clone());
                sensitive_marker()
            }
            _ => value.clone(),
        };
        fields.insert(
            name.clone(),
            FieldDiff {
                before: Value::Null,
                after,
                sensitive,
            },
        );
    }
    let mut notes: Vec<String> = gone
        .iter()
        .map(|id| {
            format!(
                "was managed as {id} but that account is gone from the target; it is created again"
            )
        })
        .collect();
    let active = spec.on_create.active && d.active;
    if !d.active {
        notes.push("created inactive: inactive in the source".to_string());
    } else if !spec.on_create.active {
        notes.push("created pending (on_create.active: false)".to_string());
    }
    (
        Change {
            action: Action::Create,
            identity: d.identity.clone(),
            target_id: None,
            fields,
            active: Some(ActiveDiff {
                before: None,
                after: active,
            }),
            live_fingerprint: None,
            removal: false,
            notes,
        },
        secret,
    )
}

/// The removal policy for an account that is managed but no longer desired.
fn removal(
    spec: &SyncSpec,
    acc: &LiveAccount,
    identity: BTreeMap<String, String>,
) -> Option<Change> {
    let (action, active) = match spec.removed {
        RemovedPolicy::Keep => return None,
        RemovedPolicy::Deactivate if !acc.active => return None,
        RemovedPolicy::Deactivate => (
            Action::Deactivate,
            Some(ActiveDiff {
                before: Some(true),
                after: false,
            }),
        ),
        RemovedPolicy::Delete => (Action::Delete, None),
    };
    Some(Change {
        action,
        identity,
        target_id: Some(acc.id.clone()),
        fields: BTreeMap::new(),
        active,
        live_fingerprint: Some(fingerprint(acc)),
        removal: true,
        notes: vec![format!(
            "no longer desired (gone from source `{}`, filtered out by `where`, or out of scope): removed: {}",
            spec.source,
            match spec.removed {
                RemovedPolicy::Deactivate => "deactivate",
                RemovedPolicy::Delete => "delete",
                RemovedPolicy::Keep => "keep",
            }
        )],
    })
}
