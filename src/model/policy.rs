//! The per-sync policies the config sets and the planner follows.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Options for newly created accounts.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OnCreate {
    /// Create accounts active. `false` creates them pending: headcount never activates an
    /// account it created inactive; a person does that in the target.
    #[serde(default = "yes")]
    pub active: bool,
    /// Send the target's welcome email.
    #[serde(default)]
    pub notify: bool,
}

impl Default for OnCreate {
    fn default() -> Self {
        OnCreate {
            active: true,
            notify: false,
        }
    }
}

fn yes() -> bool {
    true
}

/// What to do with a managed account that is no longer desired.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RemovedPolicy {
    /// Deactivate (suspend) the account; it can be reactivated later.
    #[default]
    Deactivate,
    /// Delete the account in the target.
    Delete,
    /// Leave the account as it is.
    Keep,
}

/// Which accounts a sync manages.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ManagePolicy {
    /// Only accounts it created or adopted.
    #[default]
    Owned,
    /// Every account in the target, except those listed in `protect`.
    All,
}
