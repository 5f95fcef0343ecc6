//! The planner: records, live accounts and state in, plan out. Pure: no network, no clock, no
//! files. Most tests live here.

use crate::expr::Expr;
use crate::model::{FieldTable, ManagePolicy, OnCreate, RemovedPolicy};

/// A sync ready to plan: names resolved, expressions compiled.
#[derive(Debug, Clone)]
pub struct SyncSpec {
    pub name: String,
    pub source: String,
    pub target: String,
    /// The target's fields (its kind's, plus its declared custom fields).
    pub target_fields: FieldTable,
    pub where_: Option<Expr>,
    /// Identity fields in precedence order.
    pub identity: Vec<String>,
    /// Target field → expression (`None`: the literal `null`).
    pub fields: Vec<(String, Option<Expr>)>,
    pub active: Option<Expr>,
    pub on_create: OnCreate,
    pub removed: RemovedPolicy,
    pub manage: ManagePolicy,
    pub protect: Vec<String>,
    pub max_removals: MaxRemovalsSpec,
}

/// The mass-removal limit, parsed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxRemovalsSpec {
    Count(u64),
    Percent(f64),
}

pub mod compare;
pub(crate) mod desired;
pub mod drift;
pub(crate) mod reconcile;
pub(crate) mod values;

#[cfg(test)]
mod tests;

pub use reconcile::{PlannedSync, SyncInput, fingerprint, plan_sync, removal_limit};

use std::collections::BTreeMap;

use crate::plan::{Action, Change, Summary, SyncPlan};
use crate::state::State;

/// Plans several syncs together: each sync alone, then the checks that span syncs (two syncs
/// claiming one account) and, when `all_syncs` is set, `forget` for syncs gone from the config.
pub fn plan_all(
    inputs: &[SyncInput<'_>],
    state: Option<&State>,
    all_syncs: bool,
) -> Vec<PlannedSync> {
    let mut planned: Vec<PlannedSync> = inputs.iter().map(|i| plan_sync(*i)).collect();

    // Two syncs touching (or creating) the same account on one target.
    let mut claims: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, p) in planned.iter().enumerate() {
        for c in &p.plan.changes {
            let key = match (&c.target_id, c.action) {
                (Some(id), _) => format!("id {id}"),
                (None, _) => {
                    let primary = inputs[i]
                        .spec
                        .identity
                        .first()
                        .and_then(|k| c.identity.get(k).map(|v| format!("{k}={v}")))
                        .unwrap_or_default();
                    format!("new account {primary}")
                }
            };
            let list = claims.entry((p.plan.target.clone(), key)).or_default();
            if !list.contains(&i) {
                list.push(i);
            }
        }
    }
    for ((target, account), syncs) in claims.into_iter().filter(|(_, v)| v.len() > 1) {
        let names: Vec<String> = syncs
            .iter()
            .map(|&i| format!("`{}`", planned[i].plan.name))
            .collect();
        let msg = format!(
            "target `{target}` account ({account}) is claimed by syncs {}: give each account to one sync (narrow a `where`)",
            names.join(" and ")
        );
        for i in syncs {
            planned[i].plan.errors.push(msg.clone());
        }
    }

    if all_syncs && let Some(state) = state {
        for (name, sync) in &state.syncs {
            if inputs.iter().any(|i| i.spec.name == *name) {
                continue;
            }
            let changes: Vec<Change> = sync
                .accounts
                .iter()
                .map(|(id, m)| Change {
                    action: Action::Forget,
                    identity: m.identity.clone(),
                    target_id: Some(id.clone()),
                    fields: BTreeMap::new(),
                    active: None,
                    live_fingerprint: None,
                    removal: false,
                    notes: vec![format!(
                        "sync `{name}` is no longer in the config: headcount stops managing the account and leaves it as it is"
                    )],
                })
                .collect();
            let mut summary = Summary::default();
            for c in &changes {
                summary.add(c.action);
            }
            planned.push(PlannedSync {
                plan: SyncPlan {
                    name: name.clone(),
                    source: "(removed from config)".to_string(),
                    target: sync.target.clone(),
                    summary,
                    changes,
                    invalid: Vec::new(),
                    conflicts: Vec::new(),
                    errors: Vec::new(),
                    guard_blocked: false,
                },
                secrets: BTreeMap::new(),
                unmanaged: BTreeMap::new(),
            });
        }
    }
    planned
}
