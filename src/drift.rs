//! The drift document (SPEC section 9): what `drift --format json` writes, and what its text and
//! markdown views are rendered from. Each difference between what the config wants and what
//! the target holds is labelled by its cause, found with the last-applied values in the state.
//! The classification itself is pure and lives in `planner::drift`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::plan::{Action, ConfigInfo, StateRef};

/// The only drift format this build writes.
pub const FORMAT_VERSION: &str = "1";

/// A whole drift report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftDocument {
    pub format_version: String,
    pub headcount_version: String,
    pub created_at: String,
    pub config: ConfigInfo,
    pub state: StateRef,
    pub syncs: Vec<SyncDrift>,
}

/// Why a value differs from what the config wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The desired value changed since the last apply (source data or config); also every
    /// difference with no last-applied value to compare with (never applied).
    Source,
    /// The live value differs from the last-applied one while the desired value did not
    /// change: someone changed the account in the target.
    Target,
    /// Both the desired and the live value moved away from the last-applied one.
    Both,
    /// A managed account is gone from the target.
    Missing,
    /// `manage: all`: a live account in scope that no state entry holds and nothing desires.
    Unmanaged,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Source => "source",
            Cause::Target => "target",
            Cause::Both => "both",
            Cause::Missing => "missing",
            Cause::Unmanaged => "unmanaged",
        }
    }

    /// Whether someone changed the target out of band (`--fail-on target`).
    pub fn is_out_of_band(self) -> bool {
        matches!(self, Cause::Target | Cause::Both | Cause::Missing)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The drift of one sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncDrift {
    pub name: String,
    pub source: String,
    pub target: String,
    pub summary: DriftSummary,
    pub differences: Vec<Difference>,
    /// Why this sync could not be compared (a source or target read failed, a guard): drift
    /// then exits 1, never "no drift".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// Accounts per cause, and accounts that match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftSummary {
    pub source: usize,
    pub target: usize,
    pub both: usize,
    pub missing: usize,
    pub unmanaged: usize,
    pub in_sync: usize,
}

impl DriftSummary {
    pub fn add(&mut self, cause: Cause) {
        match cause {
            Cause::Source => self.source += 1,
            Cause::Target => self.target += 1,
            Cause::Both => self.both += 1,
            Cause::Missing => self.missing += 1,
            Cause::Unmanaged => self.unmanaged += 1,
        }
    }

    /// Accounts that drifted, whatever the cause.
    pub fn drifted(&self) -> usize {
        self.source + self.target + self.both + self.missing + self.unmanaged
    }
}

/// One account that differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// The account's cause: the one cause of all its fields, `both` when its fields have
    /// different causes (one `source` field and one `target` field), `missing` or `unmanaged`.
    pub cause: Cause,
    /// Identity field → normalised value.
    pub identity: BTreeMap<String, String>,
    /// The target's id; `None` for someone the source wants and the target never had.
    pub target_id: Option<String>,
    /// What `apply` would do about it; `None` when it would leave the account alone (an
    /// unmanaged account under `removed: keep`).
    pub action: Option<Action>,
    /// Per field: last applied, live and desired values, each with its own cause. Sensitive
    /// values are the marker only and are never compared.
    pub fields: BTreeMap<String, FieldDrift>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<ActiveDrift>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDrift {
    pub cause: Cause,
    /// What headcount last wrote; null when it never wrote this field.
    pub last_applied: Value,
    /// What the target holds now; null for an account that is not in the target.
    pub live: Value,
    /// What the config wants now; null when nothing desires the account.
    pub desired: Value,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

/// The active flag, when it differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveDrift {
    pub cause: Cause,
    pub last_applied: Option<bool>,
    pub live: Option<bool>,
    pub desired: Option<bool>,
}

impl DriftDocument {
    pub fn has_errors(&self) -> bool {
        self.syncs.iter().any(|s| !s.errors.is_empty())
    }

    /// Accounts that drifted, over all syncs.
    pub fn total(&self) -> usize {
        self.syncs.iter().map(|s| s.summary.drifted()).sum()
    }

    /// Whether any account (or field) was changed out of band in the target.
    pub fn has_out_of_band(&self) -> bool {
        self.syncs.iter().flat_map(|s| &s.differences).any(|d| {
            d.cause.is_out_of_band()
                || d.fields.values().any(|f| f.cause.is_out_of_band())
                || d.active.is_some_and(|a| a.cause.is_out_of_band())
        })
    }
}
