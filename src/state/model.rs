//! The state document (SPEC section 10): which target accounts each sync manages and the values
//! headcount last wrote. Pure data; the file backend is in `store.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const FORMAT_VERSION: &str = "1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub format_version: String,
    /// Fixed when the state is created; a plan made against another lineage is refused.
    pub lineage: String,
    /// Incremented on every write.
    pub serial: u64,
    #[serde(default)]
    pub syncs: BTreeMap<String, SyncState>,
    /// Creates that were sent (or about to be) with no recorded outcome: a run was killed
    /// while they were in flight. Each is resolved by a lookup by identity before anything is
    /// planned for that identity again (issue 7, point 5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intents: Vec<Intent>,
}

impl State {
    pub fn new(lineage: String) -> Self {
        State {
            format_version: FORMAT_VERSION.to_string(),
            lineage,
            serial: 0,
            syncs: BTreeMap::new(),
            intents: Vec::new(),
        }
    }

    /// The pending intent of `sync` for this identity, if any.
    pub fn intent(&self, sync: &str, identity: &BTreeMap<String, String>) -> Option<&Intent> {
        self.intents
            .iter()
            .find(|i| i.sync == sync && i.identity == *identity)
    }

    /// Applies one journalled operation.
    pub fn apply_op(&mut self, op: &StateOp) {
        match op {
            StateOp::Upsert {
                sync,
                target,
                target_id,
                account,
            } => {
                let s = self.syncs.entry(sync.clone()).or_insert_with(|| SyncState {
                    target: target.clone(),
                    accounts: BTreeMap::new(),
                });
                s.target = target.clone();
                s.accounts.insert(target_id.clone(), account.clone());
            }
            StateOp::Remove { sync, target_id } => {
                if let Some(s) = self.syncs.get_mut(sync) {
                    s.accounts.remove(target_id);
                    if s.accounts.is_empty() {
                        self.syncs.remove(sync);
                    }
                }
            }
            StateOp::Intend { intent } => {
                self.intents
                    .retain(|i| !(i.sync == intent.sync && i.identity == intent.identity));
                self.intents.push(intent.clone());
            }
            StateOp::Settle { sync, identity } => {
                self.intents
                    .retain(|i| !(i.sync == *sync && i.identity == *identity));
            }
        }
    }
}

/// The accounts one sync manages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncState {
    /// Name of the target in the config.
    pub target: String,
    /// Target id → what headcount knows of the account.
    pub accounts: BTreeMap<String, ManagedAccount>,
}

/// One managed account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManagedAccount {
    /// Identity field → normalised value.
    pub identity: BTreeMap<String, String>,
    /// The field values headcount last wrote (sensitive ones as hash markers).
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
    /// The active flag headcount last wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    pub origin: Origin,
    /// Set when headcount deactivated the account, so that it may reactivate it later. Accounts
    /// created inactive (`on_create.active: false`) are pending and never activated by headcount.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deactivated_by_headcount: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Created,
    Adopted,
}

/// One change to the state, as journalled during apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum StateOp {
    Upsert {
        sync: String,
        target: String,
        target_id: String,
        account: ManagedAccount,
    },
    Remove {
        sync: String,
        target_id: String,
    },
    /// A non-idempotent write is about to be sent; journalled (durably) before it is.
    Intend {
        intent: Intent,
    },
    /// The intent of `sync` for `identity` has an outcome (recorded, refused, never sent, or
    /// resolved by a lookup): it no longer blocks anything.
    Settle {
        sync: String,
        identity: BTreeMap<String, String>,
    },
}

/// A write whose outcome the state must learn even if this process dies: a create, which a
/// retry would duplicate. Deletes and updates need none: the next plan sees the target as it
/// is and does or skips them again, harmlessly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub sync: String,
    /// Name of the target in the config.
    pub target: String,
    /// `create`, the only non-idempotent write today.
    pub action: String,
    /// Identity field → normalised value: what the lookup searches for.
    pub identity: BTreeMap<String, String>,
    /// The values the create writes (sensitive ones as hash markers), recorded as the
    /// last-applied values when the lookup finds the account.
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
    pub active: bool,
    /// Unix time (seconds) the intent was recorded, just before the write was handed over.
    pub recorded_at: i64,
    /// Unix time after which the write can no longer take effect in the target (the target's
    /// request time budget is spent): before it, a lookup that finds nothing proves nothing.
    /// Brought forward to "now + `attempt_secs`" by the first lookup of a later run: the run
    /// that sent it is gone, so no attempt starts any more and the last one is bounded by its
    /// timeout.
    pub settles_by: i64,
    /// The target's timeout for one attempt, in seconds.
    #[serde(default)]
    pub attempt_secs: i64,
}
