//! `state list|show|forget|unlock`, like `terraform state`, through the state backend.

use std::sync::Arc;

use headcount::state::{LockInfo, StateBackend, Unlocked};
use headcount::util;

use super::args::{Cli, StateCommand};
use super::{EXIT_OK, Ui};

/// The state backend of the config, without validating the syncs (state commands must work
/// even when the config is mid-edit).
fn backend(cli: &Cli) -> anyhow::Result<Arc<dyn StateBackend>> {
    let loaded =
        headcount::config::load(&cli.config).map_err(|e| anyhow::anyhow!(e.render(false)))?;
    Ok(headcount::engine::state_backend(&loaded))
}

pub(crate) async fn run(cli: &Cli, cmd: &StateCommand, ui: &Ui) -> anyhow::Result<u8> {
    let backend = backend(cli)?;
    match cmd {
        StateCommand::List { sync } => {
            let Some(state) = backend.load().await?.state else {
                ui.note(format!(
                    "No state at {} yet: nothing is managed.",
                    backend.location()
                ));
                return Ok(EXIT_OK);
            };
            for row in state.list_rows() {
                if sync.as_ref().is_some_and(|s| *s != row.sync) {
                    continue;
                }
                // Values come from sources and vendors: escaped by the row, one per line.
                outln!("{row}");
            }
            Ok(EXIT_OK)
        }
        StateCommand::Show { id } => {
            let Some(state) = backend.load().await?.state else {
                anyhow::bail!("no state at {} yet: nothing is managed", backend.location());
            };
            let account = state
                .show_account(id)
                .map_err(|e| anyhow::anyhow!(util::printable(&e.to_string()).into_owned()))?;
            let json = serde_json::to_string_pretty(&account)?;
            outln!("{}", util::json_printable(&json));
            Ok(EXIT_OK)
        }
        StateCommand::Forget { id } => {
            if backend.forget(id).await?.is_none() {
                anyhow::bail!("no state at {} yet: nothing is managed", backend.location());
            }
            outln!(
                "Forgot {}: headcount no longer manages it; the account itself was not changed.",
                util::printable(id)
            );
            Ok(EXIT_OK)
        }
        StateCommand::Unlock => {
            let said = |info: &LockInfo| {
                format!(
                    "{} (pid {} on {}, `{}` since {})",
                    info.holder, info.pid, info.host, info.operation, info.created_at
                )
            };
            match backend.unlock().await? {
                Unlocked::Nothing => outln!("The state is not locked: nothing was removed."),
                Unlocked::Stale(info) => outln!(
                    "Removed a stale lock of this host: {}; that process no longer runs.",
                    said(&info)
                ),
                Unlocked::Running(info) => outln!(
                    "Removed the lock of {}, which is still running on this host: it stops at its next state write; the journal keeps what it did.",
                    said(&info)
                ),
                Unlocked::OtherHost(info) => outln!(
                    "Removed the lock of another host: {}. If that run was still going, it stops at its next state write.",
                    said(&info)
                ),
                Unlocked::Undetermined(info) => outln!(
                    "Removed the lock of {} on this host; whether that process still runs cannot be told here.",
                    said(&info)
                ),
                Unlocked::SessionEnded { info, backend_pid } => outln!(
                    "Ended the PostgreSQL session {backend_pid} holding the state lock ({}), and with it the lock: that run stops at its next state write; the journal keeps what it did.",
                    said(&info)
                ),
                Unlocked::Unreadable { detail } => outln!(
                    "Removed a lock file that could not be read ({detail}): who held it is unknown."
                ),
            }
            Ok(EXIT_OK)
        }
    }
}
