//! Connectors: sources that read people and targets that keep accounts. They know nothing of
//! plans: a source yields records, a target lists accounts and carries out operations.

pub mod build;
pub mod csv_export;
pub mod csv_source;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value;

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

/// Why a connector call failed. The message says what to do next.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Data(String),
    #[error("{message}")]
    Rejected { message: String },
    #[error("the {kind} connector is not available in this build yet")]
    Unsupported { kind: String },
}

/// Reads people.
#[async_trait]
pub trait Source: Send + Sync {
    /// Every record, all pages. An error means the read is unusable (never "zero records").
    async fn read(&self) -> Result<Vec<SourceRecord>, ConnectorError>;
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

/// Keeps accounts.
#[async_trait]
pub trait Target: Send + Sync {
    /// Every account, all pages.
    async fn list(&self) -> Result<Vec<LiveAccount>, ConnectorError>;

    /// Carries out `ops`, calling `done(i, result)` for `ops[i]` as soon as its outcome is known
    /// (the apply engine journals each success right away). An `Err` return means the batch as
    /// a whole failed before any operation took effect.
    async fn apply(
        &self,
        ops: &[TargetOp],
        done: &(dyn Fn(usize, OpResult) + Send + Sync),
    ) -> Result<(), ConnectorError>;
}
