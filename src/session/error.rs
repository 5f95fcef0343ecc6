//! Why an apply session stopped. Messages say what to do next; the CLI prints them as they are.

use crate::audit::AuditError;
use crate::engine::EngineError;
use crate::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A saved plan no longer matches the config, the state or the targets.
    #[error("{}", stale_message(plan, problems))]
    Stale { plan: String, problems: Vec<String> },
    /// A saved change is not one the config and the sources produce now: the plan is out of
    /// date or was edited.
    #[error("{}", mismatch_message(plan, problems))]
    Mismatch { plan: String, problems: Vec<String> },
    /// A saved plan changes syncs the config does not define.
    #[error(
        "the plan {plan} changes sync(s) {} that {config} does not define, so nothing was applied: it was made with another config or edited; run `headcount plan --out FILE` with this config",
        syncs.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
    )]
    UnknownSyncs {
        plan: String,
        config: String,
        syncs: Vec<String>,
    },
    /// A saved plan holds something other than the marker where a sensitive value would be.
    #[error(
        "the plan {plan} holds a value for the sensitive field `{field}` of {identity} (sync `{sync}`), where a plan only ever holds the marker {{\"sensitive\": true}}: it was edited, so nothing was applied; run `headcount plan --out FILE` again"
    )]
    SensitiveValue {
        plan: String,
        sync: String,
        identity: String,
        field: String,
    },
    #[error("the plan {plan} has errors and cannot be applied: fix them and plan again")]
    PlanHasErrors { plan: String },
    /// A sensitive value the saved plan needs is no longer given by the source.
    #[error(
        "the plan is stale: the source no longer gives the sensitive field `{field}` of {identity}; plan again"
    )]
    SecretGone { field: String, identity: String },
    /// The targets were changed and the journal holds it, but the state could not be written.
    #[error(
        "the changes were applied and journalled, but the state could not be saved; the next run recovers them from the journal"
    )]
    Commit(#[source] StateError),
}

fn mismatch_message(plan: &str, problems: &[String]) -> String {
    let mut msg = format!(
        "the plan {plan} is stale or was edited, and was not applied: a saved change is applied only when the config and the sources still produce exactly that change\n"
    );
    for p in problems {
        msg.push_str(&format!("  - {p}\n"));
    }
    msg.push_str("Run `headcount plan --out FILE` again, review it, and apply the new plan.");
    msg
}

fn stale_message(plan: &str, problems: &[String]) -> String {
    let mut msg = format!("the plan {plan} is stale and was not applied:\n");
    for p in problems {
        msg.push_str(&format!("  - {p}\n"));
    }
    msg.push_str("Run `headcount plan --out FILE` again, review it, and apply the new plan.");
    msg
}
