//! `apply PLANFILE`: a saved plan is evidence, not instructions (SPEC section 8, issue 7 point
//! 1). The config, the state and every touched account must be as they were when it was made;
//! then the plan is made again from the config, the sources and the live target, and a saved
//! change is applied only when the new plan holds exactly that change. What is applied comes
//! from the new plan (config and sources), never from the file; changes the new plan has and the
//! file lacks are only reported as pending. Sensitive values come from the source, never a plan.

use serde::Serialize;

use crate::apply::Secrets;
use crate::engine::Engine;
use crate::plan::{Action, Change, ConfigInfo, PlanDocument, Summary, SyncPlan};
use crate::sensitive;
use crate::state::State;

use super::{PlannedApply, SessionError};

/// A change the config produces now that the saved plan does not hold (a new hire since the
/// plan was reviewed): not applied, left for the next plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pending {
    pub sync: String,
    pub action: Action,
    /// The account's first identity value.
    pub identity: String,
    pub target_id: Option<String>,
}

/// The checks a saved plan must pass before anything is opened or locked, so that a plan that
/// can never be applied writes nothing at all: every sync it changes is in the config with the
/// same source and target, and every sensitive value in it is the marker.
pub fn check_saved(engine: &Engine, doc: &PlanDocument, shown: &str) -> Result<(), SessionError> {
    let config = engine.loaded.path.display().to_string();
    let mut unknown = Vec::new();
    let mut problems = Vec::new();
    for (i, sync) in doc.syncs.iter().enumerate() {
        // A sync listed twice would have its changes applied twice.
        if doc.syncs.iter().take(i).any(|s| s.name == sync.name) {
            problems.push(format!("sync `{}` is listed twice", sync.name));
        }
        match engine.specs.iter().find(|s| s.name == sync.name) {
            // A sync gone from the config may only be forgotten (checked against the state
            // once it is locked).
            None if sync.changes.iter().all(|c| c.action == Action::Forget) => {}
            None => unknown.push(sync.name.clone()),
            Some(spec) => {
                if spec.source != sync.source || spec.target != sync.target {
                    problems.push(format!(
                        "sync `{}` reads `{}` and writes `{}` in the plan, but `{}` and `{}` in the config",
                        sync.name, sync.source, sync.target, spec.source, spec.target
                    ));
                }
            }
        }
    }
    if !unknown.is_empty() {
        return Err(SessionError::UnknownSyncs {
            plan: shown.to_string(),
            config,
            syncs: unknown,
        });
    }
    let fields = engine.sensitive();
    for sync in &doc.syncs {
        for change in &sync.changes {
            for (name, diff) in &change.fields {
                let flagged =
                    diff.sensitive || fields.is_sensitive(&sync.name, Some(&sync.target), name);
                if flagged && !(sensitive::is_safe(&diff.before) && sensitive::is_safe(&diff.after))
                {
                    return Err(SessionError::SensitiveValue {
                        plan: shown.to_string(),
                        sync: sync.name.clone(),
                        identity: first_identity(change),
                        field: name.clone(),
                    });
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(SessionError::Mismatch {
            plan: shown.to_string(),
            problems,
        });
    }
    Ok(())
}

/// Checks `doc` against what is there now, plans again and keeps the saved changes the new plan
/// holds exactly; refused when any saved change is not one of them.
pub(super) async fn load(
    engine: &Engine,
    state: Option<&State>,
    doc: PlanDocument,
    shown: &str,
    allow_mass_removal: bool,
) -> Result<PlannedApply, SessionError> {
    check_saved(engine, &doc, shown)?;
    let specs: Vec<_> = engine
        .specs
        .iter()
        .filter(|s| doc.syncs.iter().any(|p| p.name == s.name))
        .cloned()
        .collect();
    // Forgetting syncs gone from the config is planned only when the plan covers every sync,
    // as `plan` does without `--sync`.
    let all_syncs = engine
        .specs
        .iter()
        .all(|s| doc.syncs.iter().any(|p| p.name == s.name));
    let conns = engine.connect(&specs, true)?;
    let snap = engine.read(&conns).await;
    let problems = engine.check_stale(&doc, state, &snap.live);
    if !problems.is_empty() {
        return Err(SessionError::Stale {
            plan: shown.to_string(),
            problems,
        });
    }
    if doc.has_errors() {
        return Err(SessionError::PlanHasErrors {
            plan: shown.to_string(),
        });
    }

    // The plan as the config and the sources give it now. The mass-removal guard is checked on
    // its own below, against the removals the saved plan would apply.
    let now = engine.plan(&specs, &snap, state, true, all_syncs);
    let guarded =
        (!allow_mass_removal).then(|| engine.plan(&specs, &snap, state, false, all_syncs));
    let mut problems = Vec::new();
    let mut pending = Vec::new();
    let mut syncs = Vec::new();
    for saved in &doc.syncs {
        let Some(fresh) = now.iter().find(|p| p.plan.name == saved.name) else {
            for change in &saved.changes {
                problems.push(not_produced(&saved.name, change, None));
            }
            continue;
        };
        let fresh = &fresh.plan;
        if !fresh.errors.is_empty() {
            if !saved.changes.is_empty() {
                for e in &fresh.errors {
                    problems.push(format!("sync `{}`: {e}", saved.name));
                }
            }
            continue;
        }
        if saved.changes.iter().any(|c| c.action.is_removal())
            && let Some(guarded) = &guarded
            && let Some(g) = guarded.iter().find(|p| p.plan.name == saved.name)
        {
            for e in &g.plan.errors {
                problems.push(format!(
                    "sync `{}`: {e} (for a saved plan: `headcount apply --allow-mass-removal {shown}`)",
                    saved.name
                ));
            }
        }
        let mut used = vec![false; fresh.changes.len()];
        let mut kept = Vec::new();
        for change in &saved.changes {
            let found =
                fresh.changes.iter().enumerate().position(|(i, c)| {
                    !used.get(i).copied().unwrap_or(true) && same_change(c, change)
                });
            match found {
                Some(i) => {
                    if let (Some(u), Some(c)) = (used.get_mut(i), fresh.changes.get(i)) {
                        *u = true;
                        kept.push(c.clone());
                    }
                }
                None => problems.push(not_produced(&saved.name, change, Some(fresh))),
            }
        }
        for (c, _) in fresh.changes.iter().zip(&used).filter(|(_, u)| !**u) {
            pending.push(Pending {
                sync: saved.name.clone(),
                action: c.action,
                identity: first_identity(c),
                target_id: c.target_id.clone(),
            });
        }
        let mut summary = Summary {
            unchanged: fresh.summary.unchanged,
            invalid: fresh.summary.invalid,
            conflicts: fresh.summary.conflicts,
            ..Summary::default()
        };
        for c in &kept {
            summary.add(c.action);
        }
        syncs.push(SyncPlan {
            summary,
            changes: kept,
            ..fresh.clone()
        });
    }
    if !problems.is_empty() {
        return Err(SessionError::Mismatch {
            plan: shown.to_string(),
            problems,
        });
    }
    let secrets = Engine::secrets(&now);
    // The config facts the audit log records come from the config, not from the file.
    let config = ConfigInfo {
        path: engine.loaded.path.display().to_string(),
        sha256: engine.loaded.sha256.clone(),
        git: crate::engine::git_info(&engine.loaded.path),
    };
    let doc = PlanDocument {
        syncs,
        config,
        ..doc
    };
    check_secrets_present(&doc, &secrets)?;
    Ok(PlannedApply {
        doc,
        live: snap.live_ok(),
        secrets,
        conns,
        pending,
        read_errors: Vec::new(),
    })
}

/// The same change: action, account, target id, every field before and after, the active flag,
/// the removal flag and the live fingerprint. Notes are prose and not compared.
fn same_change(a: &Change, b: &Change) -> bool {
    a.action == b.action
        && a.identity == b.identity
        && a.target_id == b.target_id
        && a.fields == b.fields
        && a.active == b.active
        && a.removal == b.removal
        && a.live_fingerprint == b.live_fingerprint
}

/// Why a saved change is not in the fresh plan, naming the change and (never the values) the
/// fields that differ.
fn not_produced(sync: &str, change: &Change, fresh: Option<&SyncPlan>) -> String {
    let who = match &change.target_id {
        Some(id) => format!("{} {} (id {id})", change.action, first_identity(change)),
        None => format!("{} {}", change.action, first_identity(change)),
    };
    let same_account = |c: &&Change| match (&change.target_id, &c.target_id) {
        (Some(a), Some(b)) => a == b,
        (None, None) => c.identity == change.identity,
        _ => false,
    };
    let why = match fresh.and_then(|f| f.changes.iter().find(same_account)) {
        None => "the config and the sources plan no such change now".to_string(),
        Some(c) if c.action != change.action => {
            format!("the config and the sources now plan `{}` for it", c.action)
        }
        Some(c) => {
            let names: std::collections::BTreeSet<&String> = change
                .fields
                .keys()
                .chain(c.fields.keys())
                .filter(|k| change.fields.get(*k) != c.fields.get(*k))
                .collect();
            let mut differ: Vec<String> = names.iter().map(|k| format!("`{k}`")).collect();
            if change.identity != c.identity {
                differ.push("the identity".to_string());
            }
            if change.active != c.active {
                differ.push("the active flag".to_string());
            }
            if change.removal != c.removal {
                differ.push("the removal flag".to_string());
            }
            if change.live_fingerprint != c.live_fingerprint {
                differ.push("the live fingerprint".to_string());
            }
            format!(
                "the config and the sources give other values for {}",
                differ.join(", ")
            )
        }
    };
    format!("sync `{sync}`: {who} in the plan does not match: {why}")
}

fn first_identity(change: &Change) -> String {
    change.identity.values().next().cloned().unwrap_or_default()
}

/// Every sensitive value the plan needs must still come from the source.
fn check_secrets_present(doc: &PlanDocument, secrets: &Secrets) -> Result<(), SessionError> {
    for sync in &doc.syncs {
        for change in &sync.changes {
            for name in change
                .fields
                .iter()
                .filter(|(_, d)| d.sensitive)
                .map(|(n, _)| n)
            {
                let present = change.identity.values().any(|p| {
                    secrets
                        .get(&sync.name)
                        .and_then(|m| m.get(p))
                        .is_some_and(|m| m.contains_key(name))
                });
                if !present {
                    return Err(SessionError::SecretGone {
                        field: name.clone(),
                        identity: first_identity(change),
                    });
                }
            }
        }
    }
    Ok(())
}
