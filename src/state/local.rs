//! The local file backend behind [`StateBackend`]: [`StateStore`] (atomic writes, fsync, mode
//! 0600, lineage/serial, OS file lock, journal replay) with its lock guard and open journal
//! held together, so the session never sees a file path.

use async_trait::async_trait;

use super::backend::{LockedState, StateBackend};
use super::error::StateError;
use super::journal::Journal;
use super::lock::{LockGuard, LockInfo, Unlocked};
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
        // The lock file needs the state folder; when this run creates it, it goes again with
        // the lock unless something was written into it (a refused apply writes nothing).
        let dir = super::store::parent_dir(self.store.path()).to_path_buf();
        let created = (!dir.exists()).then_some(CreatedDir(dir));
        let guard = self.store.lock(operation)?;
        Ok(Box::new(LocalLock {
            store: self.store.clone(),
            guard,
            journal: None,
            _created: created,
        }))
    }

    async fn lock_info(&self) -> Result<Option<LockInfo>, StateError> {
        self.store.lock_info()
    }

    async fn unlock(&self) -> Result<Unlocked, StateError> {
        self.store.force_unlock()
    }
}

/// The lock guard of a [`LocalBackend`] and the journal of the apply in progress, if any.
#[derive(Debug)]
struct LocalLock {
    store: StateStore,
    /// Declared before `guard`, so the journal file is closed before the lock goes.
    journal: Option<OpenJournal>,
    guard: LockGuard,
    /// Declared after `guard`: the folder is removed (when empty) once the lock file is gone.
    _created: Option<CreatedDir>,
}

/// The journal of the apply in progress and how many ops it holds. Dropped with none (an
/// apply where nothing succeeded, or one that never got to write), its file goes too: it holds
/// nothing to recover. With ops it stays, for the next run to fold in.
#[derive(Debug)]
struct OpenJournal {
    journal: Journal,
    path: std::path::PathBuf,
    ops: usize,
}

impl Drop for OpenJournal {
    fn drop(&mut self) {
        if self.ops == 0 {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A state folder this run created for its lock: removed on drop if nothing else was written
/// into it, so that a refused or empty run leaves no empty `.headcount/` behind.
#[derive(Debug)]
struct CreatedDir(std::path::PathBuf);

impl Drop for CreatedDir {
    fn drop(&mut self) {
        // Fails, as it should, when the folder holds anything (state, journal, audit log).
        let _ = std::fs::remove_dir(&self.0);
    }
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
        self.journal = Some(OpenJournal {
            journal: self.store.journal(&self.guard, base)?,
            path: self.store.journal_path(),
            ops: 0,
        });
        Ok(())
    }

    async fn append(&mut self, op: &StateOp) -> Result<(), StateError> {
        match self.journal.as_mut() {
            Some(j) => {
                j.journal.append(op)?;
                j.ops += 1;
                Ok(())
            }
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
        let LocalLock {
            journal,
            guard,
            _created,
            ..
        } = *self;
        drop(journal);
        let released = guard.release();
        drop(_created);
        released
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::state::{ManagedAccount, Origin};

    fn upsert(id: &str) -> StateOp {
        StateOp::Upsert {
            sync: "staff".into(),
            target: "mojo".into(),
            target_id: id.into(),
            account: ManagedAccount {
                identity: BTreeMap::from([("email".to_string(), format!("{id}@example.com"))]),
                fields: BTreeMap::new(),
                active: Some(true),
                origin: Origin::Created,
                deactivated_by_headcount: false,
            },
        }
    }

    /// A lock that wrote nothing leaves no state folder behind; one that did keeps it, and a
    /// folder that was there before is never removed.
    #[tokio::test]
    async fn the_state_folder_exists_only_when_something_was_written_into_it() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join(".headcount");
        let backend = LocalBackend::new(StateStore::new(folder.join("state.json")));
        let lock = backend.lock("apply").await.unwrap();
        assert!(folder.is_dir());
        lock.release().await.unwrap();
        assert!(!folder.exists(), "released: no empty folder");
        drop(backend.lock("apply").await.unwrap());
        assert!(!folder.exists(), "dropped: no empty folder");

        // A journal that recorded nothing goes too.
        let mut lock = backend.lock("apply").await.unwrap();
        lock.begin_journal(&State::new("l".into())).await.unwrap();
        assert!(backend.store().journal_path().exists());
        lock.release().await.unwrap();
        assert!(!folder.exists(), "no journal, no folder");

        let mut lock = backend.lock("apply").await.unwrap();
        let mut state = State::new("l".into());
        lock.begin_journal(&state).await.unwrap();
        lock.append(&upsert("1")).await.unwrap();
        state.apply_op(&upsert("1"));
        lock.commit(&mut state).await.unwrap();
        lock.release().await.unwrap();
        assert!(folder.join("state.json").is_file());

        let empty = dir.path().join("mine");
        std::fs::create_dir(&empty).unwrap();
        let backend = LocalBackend::new(StateStore::new(empty.join("state.json")));
        backend
            .lock("apply")
            .await
            .unwrap()
            .release()
            .await
            .unwrap();
        assert!(empty.is_dir(), "a folder the user made stays");
    }

    /// The trait protocol on the files: lock, journal, a "crash", recovery, commit, forget.
    #[tokio::test]
    async fn the_trait_protocol_on_the_local_files() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(StateStore::new(dir.path().join(".headcount/state.json")));
        let store = backend.store().clone();
        {
            let mut lock = backend.lock("apply").await.unwrap();
            assert_eq!(lock.info().operation, "apply");
            assert!(backend.lock("apply").await.is_err(), "one writer");
            assert_eq!(
                backend.lock_info().await.unwrap().as_ref(),
                Some(lock.info())
            );
            assert!(lock.recover().await.unwrap().is_none());
            assert!(matches!(
                lock.append(&upsert("0")).await,
                Err(StateError::NoJournal { .. })
            ));
            lock.begin_journal(&State::new("l".into())).await.unwrap();
            lock.append(&upsert("1")).await.unwrap();
            lock.append(&upsert("2")).await.unwrap();
            // Dropped without commit: a killed apply.
        }
        let loaded = backend.load().await.unwrap();
        assert_eq!(
            loaded.journal,
            crate::state::JournalStatus::Replayed { ops: 2 }
        );
        let mut lock = backend.lock("apply").await.unwrap();
        let mut state = lock.recover().await.unwrap().unwrap();
        assert_eq!(state.serial, 1);
        assert!(!store.journal_path().exists());
        lock.begin_journal(&state).await.unwrap();
        lock.append(&upsert("3")).await.unwrap();
        state.apply_op(&upsert("3"));
        lock.commit(&mut state).await.unwrap();
        assert_eq!(state.serial, 2);
        lock.release().await.unwrap();
        assert!(!store.lock_path().exists());

        let after = backend.forget("1").await.unwrap().unwrap();
        assert_eq!(after.serial, 3);
        let ids: Vec<_> = after.syncs["staff"].accounts.keys().cloned().collect();
        assert_eq!(ids, ["2", "3"]);
        assert_eq!(backend.load().await.unwrap().state, Some(after));

        let held = backend.lock("apply").await.unwrap();
        assert_eq!(
            backend.unlock().await.unwrap(),
            Unlocked::Running(held.info().clone())
        );
        assert_eq!(backend.unlock().await.unwrap(), Unlocked::Nothing);
    }
}
