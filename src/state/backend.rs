//! The state backend trait (SPEC section 10). The apply session talks to state only through
//! these two traits, so a backend that shares nothing with the local disk (PostgreSQL: an
//! advisory lock, a journal table, a row per state) plugs in without touching the session.
//!
//! The protocol every writer follows, whatever the backend:
//! 1. [`StateBackend::lock`] names the holder (pid, host, time, command) and returns a
//!    [`LockedState`], the only handle that can write;
//! 2. [`LockedState::recover`] folds in the journal of an interrupted apply;
//! 3. [`LockedState::begin_journal`], then [`LockedState::append`] after each confirmed target
//!    operation (durable when it returns), and before each create is sent, its intent
//!    ([`StateOp::Intend`], settled by [`StateOp::Settle`]): unsettled intents are part of the
//!    state, so a backend stores them like any op and the next run looks them up;
//! 4. [`LockedState::commit`] writes the state with the next serial and clears the journal.

use async_trait::async_trait;

use super::error::StateError;
use super::lock::{LockInfo, Unlocked};
use super::model::{State, StateOp};
use super::store::Loaded;

/// Where the state lives, and who may write it.
#[async_trait]
pub trait StateBackend: Send + Sync {
    /// Where the state is, for messages (`.headcount/state.json`, a database name).
    fn location(&self) -> String;

    /// The state as the next plan should see it: committed state with any pending journal
    /// replayed in memory. Takes no lock and writes nothing.
    async fn load(&self) -> Result<Loaded, StateError>;

    /// Takes the lock for `operation` (`apply`, `state forget`, ...). Fails naming the holder
    /// when another run holds it.
    async fn lock(&self, operation: &str) -> Result<Box<dyn LockedState>, StateError>;

    /// Who holds the lock, if anyone.
    async fn lock_info(&self) -> Result<Option<LockInfo>, StateError>;

    /// Removes the lock whoever holds it (`headcount state unlock`) and says what it was.
    async fn unlock(&self) -> Result<Unlocked, StateError>;

    /// Stops managing the account `id` (`headcount state forget`): lock, recover, remove it,
    /// commit. `None` when there is no state at all. A backend with transactions may override
    /// this with one statement.
    async fn forget(&self, id: &str) -> Result<Option<State>, StateError> {
        let mut lock = self.lock("state forget").await?;
        let Some(mut state) = lock.recover().await? else {
            return Ok(None);
        };
        let op = state.forget_account(id)?;
        state.apply_op(&op);
        lock.commit(&mut state).await?;
        // Dropped, not released: a lock file that cannot be removed is a warning, as for every
        // other command.
        drop(lock);
        Ok(Some(state))
    }
}

/// A held state lock: proof of being the one writer. Dropping it releases the lock (a failure
/// is then only logged); [`LockedState::release`] reports it.
#[async_trait]
pub trait LockedState: Send + Sync {
    /// What the lock says about its holder (this process).
    fn info(&self) -> &LockInfo;

    /// Loads the state and commits the ops of an interrupted apply's journal, if any, so the
    /// journal is folded in before anything new is written. `None` when nothing was ever
    /// applied.
    async fn recover(&mut self) -> Result<Option<State>, StateError>;

    /// Starts the journal of an apply on top of `base`, which must be the state as committed
    /// (after [`LockedState::recover`]).
    async fn begin_journal(&mut self, base: &State) -> Result<(), StateError>;

    /// Records one state operation in the journal; durable when it returns.
    async fn append(&mut self, op: &StateOp) -> Result<(), StateError>;

    /// Writes `state` with the next serial (`state.serial` is updated once it is durable) and
    /// clears the journal, whose ops `state` must contain.
    async fn commit(&mut self, state: &mut State) -> Result<(), StateError>;

    /// Releases the lock now, reporting a failure.
    async fn release(self: Box<Self>) -> Result<(), StateError>;
}
