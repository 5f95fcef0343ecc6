//! What connectors exchange with the rest of headcount: records from sources, live accounts and
//! operations for targets. Plain data, so that the planner and connectors share it without
//! depending on each other.

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::ConnectorError;

/// A person as a source yields it: a JSON object that expressions read as `user`.
pub type Record = Value;

/// A record and a short label that identifies it in messages (`row 12`, an id).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    pub label: String,
    pub data: Record,
}

/// An account as it exists in a target, with its fields named as in `headcount fields KIND`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LiveAccount {
    pub id: String,
    pub active: bool,
    pub fields: BTreeMap<String, Value>,
}

/// One operation on one account. Field values are the real ones (sensitive values included).
#[derive(Debug, Clone, PartialEq)]
pub enum TargetOp {
    Create {
        fields: BTreeMap<String, Value>,
        active: bool,
        notify: bool,
    },
    Modify {
        id: String,
        /// Fields to write; empty when only the active flag changes.
        fields: BTreeMap<String, Value>,
        /// The values of `fields` the plan saw in the target. A connector that meets a
        /// concurrent change (e.g. SCIM 412) re-reads the account and writes only if these
        /// still hold; it never overwrites blindly.
        expected: BTreeMap<String, Value>,
        active: Option<bool>,
        /// Set for removals (deactivate because no longer desired), for targets that report
        /// removals separately.
        removal: bool,
    },
    Delete {
        id: String,
    },
}

/// The outcome of one operation: the account's id in the target, or why it failed.
pub type OpResult = Result<String, ConnectorError>;

/// How a target carries out a batch of operations.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// At most this many operations in flight (`--parallelism`).
    pub parallelism: usize,
    /// Set on SIGINT/SIGTERM: no new operation starts; those in flight finish.
    pub cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            parallelism: 4,
            cancel: Default::default(),
        }
    }
}

impl ApplyOptions {
    pub fn cancelled(&self) -> bool {
        self.cancel.load(std::sync::atomic::Ordering::SeqCst)
    }
}
