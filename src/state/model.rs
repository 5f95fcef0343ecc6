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
}

impl State {
    pub fn new(lineage: String) -> Self {
        State {
            format_version: FORMAT_VERSION.to_string(),
            lineage,
            serial: 0,
            syncs: BTreeMap::new(),
        }
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
}
