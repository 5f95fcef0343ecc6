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

/// How long a write may take effect after it was handed to a target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteWindow {
    /// The whole time budget of the request: retries, waits and the last attempt.
    pub total: std::time::Duration,
    /// One attempt's timeout: once nothing retries any more (the process is gone), the last
    /// attempt lands within this, or never.
    pub attempt: std::time::Duration,
}

/// How a target carries out a batch of operations.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// At most this many operations in flight (`--parallelism`).
    pub parallelism: usize,
    /// Set on SIGINT/SIGTERM: no new operation starts; those in flight finish.
    pub cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Asked before each operation is sent; see [`ApplyOptions::before_send`].
    pub gate: Option<SendGate>,
}

/// What the apply engine runs before an operation is sent: it journals the intent of a create
/// (durably), so that a kill while the request is in flight leaves a trace. An error means
/// the operation must not be sent.
#[derive(Clone)]
pub struct SendGate(
    #[allow(clippy::type_complexity)]
    pub  std::sync::Arc<
        dyn Fn(usize) -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync,
    >,
);

impl std::fmt::Debug for SendGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SendGate")
    }
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            parallelism: 4,
            cancel: Default::default(),
            gate: None,
        }
    }
}

impl ApplyOptions {
    pub fn cancelled(&self) -> bool {
        self.cancel.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Must be awaited right before `ops[i]` is sent (per-op targets get it from
    /// `for_each_op`; a bulk target calls it for each item before sending the batch). An
    /// `Err` means: do not send, report the operation failed with this error.
    pub async fn before_send(&self, i: usize) -> Result<(), ConnectorError> {
        match &self.gate {
            Some(gate) => (gate.0)(i).await.map_err(ConnectorError::Io),
            None => Ok(()),
        }
    }
}
