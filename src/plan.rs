//! The plan document (SPEC section 8): one versioned JSON shape, written by `plan --out` and
//! `--format json`, read by `show` and `apply PLANFILE`. Text and markdown are rendered from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The only plan format this build writes and reads.
pub const FORMAT_VERSION: &str = "1";

/// A whole plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanDocument {
    pub format_version: String,
    pub headcount_version: String,
    pub created_at: String,
    pub config: ConfigInfo,
    pub state: StateRef,
    pub syncs: Vec<SyncPlan>,
    /// With `plan --base GITREF`: what the config change itself causes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseComparison>,
}

/// The plan the config at a git ref would produce against the same source, target and state
/// data, compared with this one: the difference is what the config change itself causes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaseComparison {
    pub gitref: String,
    pub commit: String,
    /// One sentence per kind of effect, e.g. "moves 12 accounts from user to technician (role)".
    pub effects: Vec<String>,
    /// Per sync, changes this config plans that the base config would not (or differently).
    pub caused: Vec<CausedChanges>,
    /// Changes the base config would plan that this config does not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prevented: Vec<CausedChanges>,
    /// Changes both configs plan: pending source or target changes, not caused by the config.
    pub pending: usize,
}

/// Changes of one sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CausedChanges {
    pub sync: String,
    pub changes: Vec<Change>,
}

/// Which config the plan was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigInfo {
    pub path: String,
    pub sha256: String,
    pub git: Option<GitInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GitInfo {
    pub commit: String,
    pub dirty: bool,
}

/// The state the plan was made against. `lineage` is `None` when there was no state yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateRef {
    pub lineage: Option<String>,
    pub serial: u64,
}

/// The plan for one sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncPlan {
    pub name: String,
    pub source: String,
    pub target: String,
    pub summary: Summary,
    pub changes: Vec<Change>,
    pub invalid: Vec<Invalid>,
    pub conflicts: Vec<Conflict>,
    /// Set when this sync cannot be applied (source read failed, mass-removal guard, two syncs
    /// claiming one account). A plan with any error exits 1 and cannot be applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// The mass-removal guard (limits.max_removals, or an empty source read) stopped this sync:
    /// one of `errors` says why. The reconcile loop skips such a sync and notifies.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guard_blocked: bool,
}

/// Counts per action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub deactivate: usize,
    pub reactivate: usize,
    pub delete: usize,
    pub adopt: usize,
    #[serde(default)]
    pub forget: usize,
    pub unchanged: usize,
    pub invalid: usize,
    pub conflicts: usize,
}

impl Summary {
    /// Changes that touch the target or the state.
    pub fn changes(&self) -> usize {
        self.create
            + self.update
            + self.deactivate
            + self.reactivate
            + self.delete
            + self.adopt
            + self.forget
    }

    pub fn add(&mut self, action: Action) {
        match action {
            Action::Create => self.create += 1,
            Action::Update => self.update += 1,
            Action::Deactivate => self.deactivate += 1,
            Action::Reactivate => self.reactivate += 1,
            Action::Delete => self.delete += 1,
            Action::Adopt => self.adopt += 1,
            Action::Forget => self.forget += 1,
        }
    }
}

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Deactivate,
    Reactivate,
    Delete,
    Adopt,
    Forget,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Deactivate => "deactivate",
            Action::Reactivate => "reactivate",
            Action::Delete => "delete",
            Action::Adopt => "adopt",
            Action::Forget => "forget",
        }
    }

    /// Whether the action removes access (counted by the mass-removal guard).
    pub fn is_removal(self) -> bool {
        matches!(self, Action::Deactivate | Action::Delete)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change to one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub action: Action,
    /// Identity field → normalised value.
    pub identity: BTreeMap<String, String>,
    /// The target's id for the account; `None` for a create.
    pub target_id: Option<String>,
    /// Fields to write. For a create, every mapped field (`before` is null).
    pub fields: BTreeMap<String, FieldDiff>,
    /// `Some(bool)` when the account's active flag is set by this change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<ActiveDiff>,
    /// Hash of the live account as planned against (`None` for a create: the account must
    /// still be absent at apply time).
    pub live_fingerprint: Option<String>,
    /// Set when the account is deactivated or deleted because it is no longer desired (as
    /// opposed to inactive in the source).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removal: bool,
    /// Human notes: why this change, or what it cannot do (e.g. a create-only field differs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The active flag before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveDiff {
    pub before: Option<bool>,
    pub after: bool,
}

/// One field before and after. Sensitive values are replaced by the [`sensitive_marker`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDiff {
    pub before: Value,
    pub after: Value,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

/// How a sensitive value is written in a plan or the state: a marker, never the value nor a hash
/// of it (a hash of a short password is as good as the password). `apply PLANFILE` reads the
/// value from the source again.
pub fn sensitive_marker() -> Value {
    serde_json::json!({ "sensitive": true })
}

/// A record that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invalid {
    /// Where the record came from, e.g. `row 14` or an id; whatever identifies it best.
    pub record: String,
    pub reason: String,
}

/// Records or accounts that could not be told apart, all skipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    pub identity: String,
    pub records: Vec<String>,
    pub reason: String,
}

impl PlanDocument {
    /// Total changes over all syncs.
    pub fn total_changes(&self) -> usize {
        self.syncs.iter().map(|s| s.summary.changes()).sum()
    }

    pub fn has_errors(&self) -> bool {
        self.syncs.iter().any(|s| !s.errors.is_empty())
    }

    pub fn has_invalid(&self) -> bool {
        self.syncs
            .iter()
            .any(|s| !s.invalid.is_empty() || !s.conflicts.is_empty())
    }
}
