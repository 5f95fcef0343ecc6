//! The local file backend behind [`StateBackend`]: [`StateStore`] (atomic writes, fsync, mode
//! 0600, lineage/serial, OS file lock, journal replay) with its lock guard and open journal
//! held together, so the session never sees a file path.

use async_trait::async_trait;

use super::backend::{LockedState, StateBackend};
use super::error::StateError;
use super::journal::Journal;
use super::lock::{LockGuard, LockInfo};
use super::model::{State, StateOp};
use super::store::{Loaded, StateStore};

/// `state.json` with its lock and journal beside it.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    store: StateStore,
}

impl LocalBackend {
    pub fn new(store: StateStore) -> Self {
        LocalBackend { store }
    }

    /// The underlying store, for the tests and tools that work on the files directly.
    pub fn store(&self) -> &StateStore {
        &self.store
    }
}

#[async_trait]
impl StateBackend for LocalBackend {
    fn location(&self) -> String {
        self.store.path().display().to_string()
    }

    async fn load(&self) -> Result<Loaded, StateError> {
        self.store.load_detailed()
    }

    async fn lock(&self, operation: &str) -> Result<Box<dyn LockedState>, StateError> {
        let guard = self.store.lock(operation)?;
        Ok(Box::new(LocalLock {
            store: self.store.clone(),
            guard,
            journal: None,
        }))
    }

    async fn lock_info(&self) -> Result<Option<LockInfo>, StateError> {
        self.store.lock_info()
    }

    async fn unlock(&self) -> Result<Option<LockInfo>, StateError> {
        self.store.force_unlock()
    }
}

/// The lock guard of a [`LocalBackend`] and the journal of the apply in progress, if any.
#[derive(Debug)]
struct LocalLock {
    store: StateStore,
    /// Declared before `guard`, so the journal file is closed before the lock goes.
    journal: Option<Journal>,
    guard: LockGuard,
}

#[async_trait]
impl LockedState for LocalLock {
    fn info(&self) -> &LockInfo {
        self.guard.info()
    }

    async fn recover(&mut self) -> Result<Option<State>, StateError> {
        self.store.recover(&self.guard)
    }

    async fn begin_journal(&mut self, base: &State) -> Result<(), StateError> {
        self.journal = None;
        self.journal = Some(self.store.journal(&self.guard, base)?);
        Ok(())
    }

    async fn append(&mut self, op: &StateOp) -> Result<(), StateError> {
        match self.journal.as_mut() {
            Some(j) => j.append(op),
            None => Err(StateError::NoJournal {
                location: self.store.path().display().to_string(),
            }),
        }
    }

    async fn commit(&mut self, state: &mut State) -> Result<(), StateError> {
        // The journal's file handle is closed first; its ops are in `state`.
        self.journal = None;
        self.store.commit(&self.guard, state)
    }

    async fn release(self: Box<Self>) -> Result<(), StateError> {
        let LocalLock { journal, guard, .. } = *self;
        drop(journal);
        guard.release()
    }
}
