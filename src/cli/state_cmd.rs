//! `state list|show|forget|unlock`, like `terraform state`.

use headcount::state::StateStore;

use super::args::{Cli, StateCommand};
use super::{EXIT_OK, Ui};

/// The state store of the config, without validating the syncs (state commands must work even
/// when the config is mid-edit).
fn store(cli: &Cli) -> anyhow::Result<StateStore> {
    let loaded =
        headcount::config::load(&cli.config).map_err(|e| anyhow::anyhow!(e.render(false)))?;
    Ok(StateStore::new(
        loaded.base_dir.join(&loaded.config.state.path),
    ))
}

pub(crate) fn run(cli: &Cli, cmd: &StateCommand, ui: &Ui) -> anyhow::Result<u8> {
    let store = store(cli)?;
    match cmd {
        StateCommand::List { sync } => {
            let Some(state) = store.load()? else {
                ui.note(format!(
                    "No state at {} yet: nothing is managed.",
                    store.path().display()
                ));
                return Ok(EXIT_OK);
            };
            for row in state.list_rows() {
                if sync.as_ref().is_some_and(|s| *s != row.sync) {
                    continue;
                }
                outln!("{row}");
            }
            Ok(EXIT_OK)
        }
        StateCommand::Show { id } => {
            let Some(state) = store.load()? else {
                anyhow::bail!(
                    "no state at {} yet: nothing is managed",
                    store.path().display()
                );
            };
            let account = state.show_account(id)?;
            outln!("{}", serde_json::to_string_pretty(&account)?);
            Ok(EXIT_OK)
        }
        StateCommand::Forget { id } => {
            let guard = store.lock("state forget")?;
            let Some(mut state) = store.recover(&guard)? else {
                anyhow::bail!(
                    "no state at {} yet: nothing is managed",
                    store.path().display()
                );
            };
            let op = state.forget_account(id)?;
            state.apply_op(&op);
            store.commit(&guard, &mut state)?;
            outln!(
                "Forgot {id}: headcount no longer manages it; the account itself was not changed."
            );
            Ok(EXIT_OK)
        }
        StateCommand::Unlock => {
            match store.force_unlock()? {
                Some(info) => outln!(
                    "Removed the lock held by {} (pid {} on {}, {} since {}).",
                    info.holder,
                    info.pid,
                    info.host,
                    info.operation,
                    info.created_at
                ),
                None => outln!("The state is not locked."),
            }
            Ok(EXIT_OK)
        }
    }
}
