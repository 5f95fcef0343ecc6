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

fn stale_message(plan: &str, problems: &[String]) -> String {
    let mut msg = format!("the plan {plan} is stale and was not applied:\n");
    for p in problems {
        msg.push_str(&format!("  - {p}\n"));
    }
    msg.push_str("Run `headcount plan --out FILE` again, review it, and apply the new plan.");
    msg
}
