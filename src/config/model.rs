//! The config file format, version 1 (SPEC section 4). These types are the single source of the
//! JSON Schema (`headcount schema`, `schemas/headcount.schema.json`).

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::located::Located;
pub use crate::connectors::{SourceConfig, TargetConfig};
pub use crate::model::policy::{ManagePolicy, OnCreate, RemovedPolicy};

/// A CEL expression as written in the config.
pub type ExprText = Located<String>;

/// A headcount configuration file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Format version of this file. This build reads version 1.
    pub version: u32,
    /// Where headcount keeps which accounts each sync manages.
    #[serde(default)]
    pub state: StateConfig,
    /// Where headcount appends one line per applied operation.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Where people come from, by name.
    #[serde(default)]
    pub sources: IndexMap<String, SourceConfig>,
    /// Where accounts are kept, by name.
    #[serde(default)]
    pub targets: IndexMap<String, TargetConfig>,
    /// Which source feeds which target, with filters, identity keys and field mappings.
    #[serde(default)]
    pub syncs: Vec<SyncConfig>,
    /// Where the reconcile loop (`headcount run`) reports a failed round, a sync stopped by the
    /// mass-removal guard, or drift found: once per new condition, and again when it clears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<NotificationsConfig>,
}

/// Notifications of the reconcile loop.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// A webhook that takes Slack-compatible JSON (`{"text": "..."}`): Slack incoming webhooks,
    /// Mattermost, Rocket.Chat, Teams workflows and most chat tools.
    pub webhook: WebhookConfig,
}

/// A Slack-compatible webhook.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The webhook URL, as a secret reference (`{ env: SLACK_WEBHOOK_URL }` or `{ file: PATH }`):
    /// whoever knows a Slack webhook URL can post to the channel.
    pub url: crate::model::SecretRef,
}

/// The state backend.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Path of the state file, relative to the config file. The lock and the journal sit next
    /// to it.
    #[serde(default = "default_state_path")]
    pub path: String,
    /// Where the state lives: `local` (the file at `path`) or `postgres` (a row in a
    /// PostgreSQL table, for CI runners that share no disk; the lock is an advisory lock).
    #[serde(default)]
    pub backend: StateBackendKind,
    /// `postgres` only: the connection URL (`postgres://user:password@host/db?sslmode=require`),
    /// as a secret reference because it holds the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<crate::model::SecretRef>,
    /// `postgres` only: the schema holding the state tables (default `public`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// `postgres` only: the state table's name (default `headcount_state`); the journal, lock
    /// holder and migration tables are named after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

/// The kinds of state backend.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StateBackendKind {
    /// `state.json` with its lock and journal beside it.
    #[default]
    Local,
    /// A PostgreSQL database (`url`, `schema`, `table`).
    Postgres,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            path: default_state_path(),
            backend: StateBackendKind::Local,
            url: None,
            schema: None,
            table: None,
        }
    }
}

fn default_state_path() -> String {
    ".headcount/state.json".to_string()
}

/// The audit log: one JSON line per applied operation. Its own setting, not derived from where
/// the state is, because a state kept in a database has no folder to put it next to.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Path of the audit log (JSON lines, appended, mode 0600), relative to the config file.
    #[serde(default = "default_audit_path")]
    pub path: String,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            path: default_audit_path(),
        }
    }
}

fn default_audit_path() -> String {
    ".headcount/audit.jsonl".to_string()
}

/// One sync: a source, a target, and the rules between them.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Unique name; the state keys managed accounts by it.
    pub name: Located<String>,
    /// Name of a source under `sources`.
    pub from: Located<String>,
    /// Name of a target under `targets`.
    pub to: Located<String>,
    /// CEL bool expression: which records are in scope. Default: all.
    #[serde(default, rename = "where")]
    pub where_: Option<ExprText>,
    /// Target fields that identify an account, in precedence order.
    pub identity: Vec<Located<String>>,
    /// Target field → CEL expression over `user` and `source`. `null` leaves or makes it unset.
    pub fields: IndexMap<String, Option<ExprText>>,
    /// CEL bool expression: should the account be active. Default: true.
    #[serde(default)]
    pub active: Option<ExprText>,
    /// What happens when an account is created.
    #[serde(default)]
    pub on_create: OnCreate,
    /// What happens to a managed account that is no longer desired.
    #[serde(default)]
    pub removed: RemovedPolicy,
    /// Which target accounts this sync manages.
    #[serde(default)]
    pub manage: ManagePolicy,
    /// Identity values of accounts never touched (with `manage: all`).
    #[serde(default)]
    pub protect: Vec<String>,
    /// Safety limits.
    #[serde(default)]
    pub limits: Limits,
}

/// Safety limits of a sync.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most deactivations + deletions one plan may hold: a count (`5`) or a percentage of the
    /// managed accounts (`"10%"`). Default `"10%"`.
    #[serde(default = "default_max_removals")]
    pub max_removals: MaxRemovals,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_removals: default_max_removals(),
        }
    }
}

fn default_max_removals() -> MaxRemovals {
    MaxRemovals::Text("10%".to_string())
}

/// A count or a percentage.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(untagged)]
pub enum MaxRemovals {
    /// Most removals per plan.
    Count(u64),
    /// `"N%"` of the managed accounts, or `"N"`.
    Text(#[schemars(pattern(r"^\s*[0-9]+(\.[0-9]+)?\s*%?\s*$"))] String),
}

// Hand-written so that anything scalar is kept as written and judged by validation, which says
// what is wrong (`-3`, `150%`) instead of serde's "did not match any variant".
impl<'de> Deserialize<'de> for MaxRemovals {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = MaxRemovals;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a count like 5 or a percentage like \"10%\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<MaxRemovals, E> {
                Ok(MaxRemovals::Count(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<MaxRemovals, E> {
                Ok(u64::try_from(v)
                    .map_or_else(|_| MaxRemovals::Text(v.to_string()), MaxRemovals::Count))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<MaxRemovals, E> {
                Ok(MaxRemovals::Text(v.to_string()))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MaxRemovals, E> {
                Ok(MaxRemovals::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}
