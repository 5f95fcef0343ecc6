//! The local file backend (SPEC section 10): `state.json`, with `state.json.lock` and
//! `state.json.journal` beside it.
//!
//! Write protocol, which every writer follows while holding the lock:
//! 1. [`StateStore::recover`]: fold in the journal of an interrupted apply, if any.
//! 2. [`StateStore::journal`] on top of that state; [`Journal::append`] after each successful
//!    target operation.
//! 3. [`StateStore::commit`] (or [`StateStore::commit_journal`]): write the state atomically with
//!    the next serial, then remove the journal.
//!
//! Journal semantics on [`StateStore::load`] (reads only, never writes):
//! - header lineage = state lineage and `base_serial` = state serial: the apply was interrupted;
//!   its ops are replayed in memory.
//! - `base_serial` < state serial: the journal was committed and the process died before removing
//!   it. Every commit writes a state that contains the journal's ops (it is built from `load`, which
//!   replays them, or from [`Journal::into_state`]), so the journal is ignored; `recover` deletes it.
//! - `base_serial` > state serial, another lineage, or a journal on top of a serial > 0 with no
//!   state file: the state file is not the one the journal was written for. That is an error, since
//!   replaying would lose or misplace operations already done in the targets.
//! - no state file and a first-apply journal (`base_serial` 0): the state is `State::new(lineage)`
//!   plus the ops; with no op at all, there is still no state (`None`).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::error::StateError;
use super::journal::{self, Journal};
use super::lock::{self, LockGuard, LockInfo, Unlocked};
use super::model::{FORMAT_VERSION, State};
use crate::util;

/// What [`StateStore::load_detailed`] did with the journal, for messages such as "recovered 12
/// operations of an interrupted apply".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalStatus {
    /// No journal file.
    Absent,
    /// A journal for this state with no op in it (an apply that did nothing before it stopped).
    Empty,
    /// The ops of an interrupted apply were replayed on top of the state file.
    Replayed { ops: usize },
    /// A journal already folded into the state (its serial is older); ignored.
    AlreadyCommitted { base_serial: u64 },
}

/// The state with the journal replayed, and what the journal contributed.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub state: Option<State>,
    pub journal: JournalStatus,
}

/// The state file and its lock and journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateStore {
    path: PathBuf,
}

impl StateStore {
    pub fn new(path: PathBuf) -> Self {
        StateStore { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn lock_path(&self) -> PathBuf {
        sibling(&self.path, ".lock")
    }

    pub fn journal_path(&self) -> PathBuf {
        sibling(&self.path, ".journal")
    }

    /// The state as the next plan should see it: the file with any pending journal replayed in
    /// memory. `None` when nothing was ever applied.
    pub fn load(&self) -> Result<Option<State>, StateError> {
        self.load_detailed().map(|l| l.state)
    }

    /// [`StateStore::load`], also saying what the journal contributed.
    pub fn load_detailed(&self) -> Result<Loaded, StateError> {
        let journal_path = self.journal_path();
        // Journal first: a lock-free reader racing a commit then sees the journal's base serial
        // at most equal to the state's, never a journal from a newer apply over an older file.
        let contents = journal::read(&journal_path)?;
        let state = read_state(&self.path)?;
        let Some(contents) = contents else {
            return Ok(Loaded {
                state,
                journal: JournalStatus::Absent,
            });
        };
        if contents.dropped_partial_line {
            tracing::warn!(
                "ignoring an unfinished last line in {} (headcount was stopped while writing it)",
                journal_path.display()
            );
        }
        let Some(header) = contents.header else {
            return Ok(Loaded {
                state,
                journal: JournalStatus::Empty,
            });
        };
        let ops = contents.ops.len();
        let mut state = match state {
            None if header.base_serial != 0 => {
                return Err(StateError::JournalWithoutState {
                    path: journal_path,
                    base_serial: header.base_serial,
                    state_path: self.path.clone(),
                });
            }
            None if ops == 0 => {
                return Ok(Loaded {
                    state: None,
                    journal: JournalStatus::Empty,
                });
            }
            None => State::new(header.lineage),
            Some(s) if s.lineage != header.lineage => {
                return Err(StateError::JournalLineage {
                    path: journal_path,
                    journal_lineage: header.lineage,
                    state_path: self.path.clone(),
                    state_lineage: s.lineage,
                });
            }
            Some(s) if header.base_serial > s.serial => {
                return Err(StateError::JournalAhead {
                    path: journal_path,
                    base_serial: header.base_serial,
                    state_path: self.path.clone(),
                    state_serial: s.serial,
                });
            }
            Some(s) if header.base_serial < s.serial => {
                return Ok(Loaded {
                    state: Some(s),
                    journal: JournalStatus::AlreadyCommitted {
                        base_serial: header.base_serial,
                    },
                });
            }
            Some(s) => s,
        };
        for op in &contents.ops {
            state.apply_op(op);
        }
        Ok(Loaded {
            state: Some(state),
            journal: if ops == 0 {
                JournalStatus::Empty
            } else {
                JournalStatus::Replayed { ops }
            },
        })
    }

    /// Takes the lock for `operation` (`apply`, `state forget`, ...).
    pub fn lock(&self, operation: &str) -> Result<LockGuard, StateError> {
        lock::acquire(&self.lock_path(), operation)
    }

    /// Who holds the lock, if anyone.
    pub fn lock_info(&self) -> Result<Option<LockInfo>, StateError> {
        lock::read(&self.lock_path())
    }

    /// Removes the lock whoever holds it (`headcount state unlock`) and says what it was.
    pub fn force_unlock(&self) -> Result<Unlocked, StateError> {
        lock::force_remove(&self.lock_path())
    }

    /// Starts the journal of an apply on top of `base`, which must be the state as committed on
    /// disk (`recover` first: a journal still holding unfolded ops is never overwritten).
    pub fn journal(&self, guard: &LockGuard, base: &State) -> Result<Journal, StateError> {
        lock::ensure_held(guard, &self.lock_path())?;
        self.ensure_on_disk(base)?;
        let journal_path = self.journal_path();
        // An empty journal, or one already committed, may be replaced; one with ops to fold in
        // may not, or those ops would be forgotten.
        if let Some(existing) = journal::read(&journal_path)?
            && let Some(header) = existing.header
            && !existing.ops.is_empty()
        {
            if header.lineage != base.lineage {
                return Err(StateError::JournalLineage {
                    path: journal_path,
                    journal_lineage: header.lineage,
                    state_path: self.path.clone(),
                    state_lineage: base.lineage.clone(),
                });
            }
            if header.base_serial >= base.serial {
                return Err(StateError::JournalPending { path: journal_path });
            }
        }
        journal::create(&journal_path, base)
    }

    /// Writes `state` with the next serial (atomically, mode 0600), then removes the journal,
    /// whose ops `state` must contain. `state.serial` is updated only once the write is durable.
    pub fn commit(&self, guard: &LockGuard, state: &mut State) -> Result<(), StateError> {
        lock::ensure_held(guard, &self.lock_path())?;
        self.ensure_on_disk(state)?;
        // Never wraps: a serial that went back to 0 would make old plans look current.
        let serial = state
            .serial
            .checked_add(1)
            .ok_or_else(|| StateError::SerialExhausted {
                path: self.path.clone(),
                serial: state.serial,
            })?;
        state.serial = serial;
        let encoded = serde_json::to_string_pretty(&*state);
        state.serial = serial - 1;
        let mut text = encoded.map_err(|source| StateError::Encode {
            path: self.path.clone(),
            source,
        })?;
        text.push('\n');
        write_atomic(&self.path, text.as_bytes())?;
        state.serial = serial;
        // A journal left behind is harmless (its serial is now older, so load ignores it).
        let journal_path = self.journal_path();
        match fs::remove_file(&journal_path) {
            Ok(()) => {
                if let Err(e) = sync_dir(parent_dir(&journal_path)) {
                    tracing::warn!("{e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(
                "the state was saved at serial {serial}, but the journal {} could not be removed \
                 ({e}); it is ignored from now on, delete it when convenient",
                journal_path.display()
            ),
        }
        Ok(())
    }

    /// Commits what a journal recorded: its base state with every appended op.
    pub fn commit_journal(&self, guard: &LockGuard, journal: Journal) -> Result<State, StateError> {
        let mut state = journal.into_state();
        self.commit(guard, &mut state)?;
        Ok(state)
    }

    /// Loads the state and, if a journal of an interrupted apply was replayed, commits it so that
    /// the journal is folded into the state file. Removes a journal with nothing left to fold.
    pub fn recover(&self, guard: &LockGuard) -> Result<Option<State>, StateError> {
        lock::ensure_held(guard, &self.lock_path())?;
        let loaded = self.load_detailed()?;
        match (loaded.journal, loaded.state) {
            (JournalStatus::Replayed { ops }, Some(mut state)) => {
                self.commit(guard, &mut state)?;
                tracing::info!(
                    "recovered {ops} operation(s) of an interrupted apply into {} (serial {})",
                    self.path.display(),
                    state.serial
                );
                Ok(Some(state))
            }
            (JournalStatus::Absent, state) => Ok(state),
            (_, state) => {
                let journal_path = self.journal_path();
                match fs::remove_file(&journal_path) {
                    Ok(()) => sync_dir(parent_dir(&journal_path))?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StateError::io("remove the journal", journal_path)(e)),
                }
                Ok(state)
            }
        }
    }

    /// Refuses to write on top of a state file that is not the one `state` was read from.
    fn ensure_on_disk(&self, state: &State) -> Result<(), StateError> {
        let on_disk = read_state(&self.path)?;
        let found = match &on_disk {
            None if state.serial == 0 => return Ok(()),
            Some(d) if d.lineage == state.lineage && d.serial == state.serial => return Ok(()),
            None => "no state file".to_string(),
            Some(d) => format!("lineage {} serial {}", d.lineage, d.serial),
        };
        Err(StateError::StateChanged {
            path: self.path.clone(),
            expected: format!("lineage {} serial {}", state.lineage, state.serial),
            found,
        })
    }
}

/// Reads and checks the state file; `None` when it does not exist.
fn read_state(path: &Path) -> Result<Option<State>, StateError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Err(StateError::Corrupt {
                path: path.to_path_buf(),
                detail: "it is not UTF-8".to_string(),
            });
        }
        Err(e) => return Err(StateError::io("read the state file", path)(e)),
    };
    let corrupt = |detail: String| StateError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    // The version is checked before the shape, so a newer format is reported as such and not
    // as damage.
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| corrupt(format!("invalid JSON: {e}")))?;
    match value.get("format_version") {
        Some(serde_json::Value::String(v)) if v == FORMAT_VERSION => {}
        Some(serde_json::Value::String(v)) => {
            return Err(StateError::UnsupportedFormat {
                path: path.to_path_buf(),
                found: v.clone(),
                supported: FORMAT_VERSION,
            });
        }
        Some(other) => {
            return Err(StateError::UnsupportedFormat {
                path: path.to_path_buf(),
                found: other.to_string(),
                supported: FORMAT_VERSION,
            });
        }
        None => return Err(corrupt("it has no format_version".to_string())),
    }
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| corrupt(e.to_string()))
}

/// Temp file in the same directory, mode 0600 before any byte is written, fsync, rename, fsync
/// the directory: a reader sees the old file or the new one, never a mix, even after power loss.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    create_parent_dir(path)?;
    let tmp = temp_path(path);
    let result = (|| {
        let mut options = util::private_file_options();
        options.write(true).create_new(true);
        let mut file = util::open_private(&options, &tmp)
            .map_err(StateError::io("create a temporary state file", &tmp))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(StateError::io("write the state file", &tmp))?;
        drop(file);
        fs::rename(&tmp, path).map_err(StateError::io("replace the state file", path))?;
        sync_dir(parent_dir(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `state.json` → `state.json.lock`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// A unique hidden name next to `path`, for write-then-rename.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_dir(path).join(format!(".{name}.tmp-{}", uuid::Uuid::new_v4().simple()))
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates the state directory on first write; owner-only because the state lists people.
pub(crate) fn create_parent_dir(path: &Path) -> Result<(), StateError> {
    let dir = parent_dir(path);
    util::create_private_dir_all(dir).map_err(StateError::io("create the state directory", dir))
}

/// Makes a rename or removal in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StateError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StateError::io("sync the state directory", dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::state::lock::Liveness;
    use crate::state::model::{ManagedAccount, Origin, StateOp};

    fn store(dir: &tempfile::TempDir) -> StateStore {
        StateStore::new(dir.path().join(".headcount").join("state.json"))
    }

    fn upsert(id: &str) -> StateOp {
        StateOp::Upsert {
            sync: "staff".into(),
            target: "mojo".into(),
            target_id: id.into(),
            account: ManagedAccount {
                identity: BTreeMap::from([("email".to_string(), format!("{id}@example.com"))]),
                fields: BTreeMap::from([("first_name".to_string(), serde_json::json!("Ann"))]),
                active: Some(true),
                origin: Origin::Created,
                deactivated_by_headcount: false,
            },
        }
    }

    /// A committed state at serial 1 holding account "1".
    fn committed(store: &StateStore) -> State {
        let guard = store.lock("test").unwrap();
        let mut state = State::new("lineage-a".into());
        state.apply_op(&upsert("1"));
        store.commit(&guard, &mut state).unwrap();
        state
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        assert_eq!(store.load().unwrap(), None);
        let state = committed(&store);
        assert_eq!(state.serial, 1);
        assert_eq!(store.load().unwrap(), Some(state));
        let text = fs::read_to_string(store.path()).unwrap();
        assert!(text.ends_with("}\n"), "trailing newline");
        assert!(
            text.contains("\n  \"lineage\": \"lineage-a\""),
            "pretty: {text}"
        );
    }

    #[test]
    fn serial_increments_and_lineage_stays() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        committed(&store);
        let guard = store.lock("test").unwrap();
        let mut state = store.load().unwrap().unwrap();
        state.apply_op(&upsert("2"));
        store.commit(&guard, &mut state).unwrap();
        store.commit(&guard, &mut state).unwrap();
        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded.serial, 3);
        assert_eq!(loaded.lineage, "lineage-a");
        assert_eq!(loaded.syncs["staff"].accounts.len(), 2);
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let state = committed(&store);
        assert_eq!(mode(store.path()), 0o600);
        assert_eq!(mode(parent_dir(store.path())), 0o700);
        let guard = store.lock("test").unwrap();
        assert_eq!(mode(&store.lock_path()), 0o600);
        let _journal = store.journal(&guard, &state).unwrap();
        assert_eq!(mode(&store.journal_path()), 0o600);
    }

    #[test]
    fn commit_leaves_no_temp_file_and_removes_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let state = committed(&store);
        let guard = store.lock("test").unwrap();
        let mut journal = store.journal(&guard, &state).unwrap();
        journal.append(&upsert("2")).unwrap();
        let state = store.commit_journal(&guard, journal).unwrap();
        assert_eq!(state.serial, 2);
        drop(guard);
        let names: Vec<String> = fs::read_dir(parent_dir(store.path()))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["state.json"]);
    }

    #[test]
    fn lock_contention_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let guard = store.lock("apply").unwrap();
        let err = store.lock("plan").unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&guard.info().holder), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("`apply`"), "{text}");
        assert!(text.contains("headcount state unlock"), "{text}");
        assert!(text.contains("still running"), "{text}");
        assert!(matches!(
            err,
            StateError::Locked {
                liveness: Liveness::Running,
                ..
            }
        ));
        drop(guard);
        assert_eq!(store.lock_info().unwrap(), None, "guard removes the lock");
        store.lock("apply").unwrap();
    }

    #[test]
    fn lock_left_by_a_dead_run_is_reported_stale_and_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let mut info = LockInfo::for_this_process("apply");
        info.pid = 4_194_305; // above Linux's PID_MAX_LIMIT
        fs::create_dir_all(parent_dir(store.path())).unwrap();
        fs::write(store.lock_path(), serde_json::to_vec(&info).unwrap()).unwrap();
        if Path::new("/proc/self").exists() {
            assert!(store.lock_info().unwrap().unwrap().looks_stale());
        }
        // Its OS lock died with it: the next run takes the lock over.
        let guard = store.lock("apply").unwrap();
        assert_eq!(store.lock_info().unwrap().as_ref(), Some(guard.info()));
        assert_eq!(guard.info().pid, std::process::id());
    }

    #[test]
    fn force_unlock_removes_any_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        assert_eq!(store.force_unlock().unwrap(), Unlocked::Nothing);
        let old = store.lock("apply").unwrap();
        let removed = store.force_unlock().unwrap();
        assert_eq!(removed, Unlocked::Running(old.info().clone()));
        assert_eq!(store.lock_info().unwrap(), None);
        // The old holder cannot write any more, and its drop leaves the new lock alone.
        let mut state = State::new("l".into());
        let new = store.lock("apply").unwrap();
        let err = store.commit(&old, &mut state).unwrap_err();
        assert!(matches!(err, StateError::LockLost { .. }), "{err}");
        drop(old);
        assert_eq!(store.lock_info().unwrap().as_ref(), Some(new.info()));
        // An unreadable lock is removed too, and said to be.
        drop(new);
        fs::write(store.lock_path(), "{not json").unwrap();
        assert!(matches!(
            store.force_unlock().unwrap(),
            Unlocked::Unreadable { .. }
        ));
        assert!(!store.lock_path().exists());
        assert_eq!(store.force_unlock().unwrap(), Unlocked::Nothing);
    }

    /// Issue 7, point 7: `state unlock` says what it removed.
    #[test]
    fn force_unlock_tells_what_it_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        fs::create_dir_all(parent_dir(store.path())).unwrap();
        let mut dead = LockInfo::for_this_process("apply");
        dead.pid = 4_194_305; // above Linux's PID_MAX_LIMIT
        fs::write(store.lock_path(), serde_json::to_vec(&dead).unwrap()).unwrap();
        let removed = store.force_unlock().unwrap();
        if Path::new("/proc/self").exists() {
            assert_eq!(removed, Unlocked::Stale(dead));
        }
        let mut elsewhere = LockInfo::for_this_process("apply");
        elsewhere.host = "runner-7.invalid".into();
        fs::write(store.lock_path(), serde_json::to_vec(&elsewhere).unwrap()).unwrap();
        assert_eq!(
            store.force_unlock().unwrap(),
            Unlocked::OtherHost(elsewhere)
        );
    }

    /// Issue 7, point 7: a lock naming another host is never taken over, even though its OS
    /// lock is free here (a shared folder carries no OS lock across machines).
    #[test]
    fn a_lock_of_another_host_is_never_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        fs::create_dir_all(parent_dir(store.path())).unwrap();
        let mut info = LockInfo::for_this_process("apply");
        info.host = "runner-7.invalid".into();
        info.holder = "ci@runner-7.invalid".into();
        let body = serde_json::to_vec(&info).unwrap();
        fs::write(store.lock_path(), &body).unwrap();
        let err = store.lock("apply").unwrap_err();
        assert!(matches!(err, StateError::LockedElsewhere { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("ci@runner-7.invalid"), "{text}");
        assert!(text.contains("headcount state unlock"), "{text}");
        assert_eq!(fs::read(store.lock_path()).unwrap(), body, "left as it was");
    }

    /// Issue 7, point 7: an unreadable lock file is reported, not silently replaced; an empty
    /// one (a run killed between creating and writing it) holds nothing and is taken.
    #[test]
    fn an_unreadable_lock_is_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        fs::create_dir_all(parent_dir(store.path())).unwrap();
        fs::write(store.lock_path(), "{\"holder\": \"ci@r").unwrap();
        let err = store.lock("apply").unwrap_err();
        assert!(matches!(err, StateError::LockUnreadable { .. }), "{err}");
        assert!(err.to_string().contains("headcount state unlock"), "{err}");
        assert_eq!(
            fs::read_to_string(store.lock_path()).unwrap(),
            "{\"holder\": \"ci@r"
        );
        fs::write(store.lock_path(), "").unwrap();
        let guard = store.lock("apply").unwrap();
        assert_eq!(store.lock_info().unwrap().as_ref(), Some(guard.info()));
    }

    /// Issue 7, point 7: the serial never wraps.
    #[test]
    fn the_serial_never_wraps() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let mut state = committed(&store);
        let guard = store.lock("apply").unwrap();
        state.serial = u64::MAX;
        let text = serde_json::to_string(&state).unwrap();
        fs::write(store.path(), text).unwrap();
        let err = store.commit(&guard, &mut state).unwrap_err();
        assert!(matches!(err, StateError::SerialExhausted { .. }), "{err}");
        assert_eq!(state.serial, u64::MAX, "unchanged on failure");
        assert_eq!(store.load().unwrap().unwrap().serial, u64::MAX);
    }

    #[test]
    fn journal_replayed_after_crash_then_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let base = committed(&store);
        {
            let guard = store.lock("apply").unwrap();
            let mut journal = store.journal(&guard, &base).unwrap();
            journal.append(&upsert("2")).unwrap();
            journal.append(&upsert("3")).unwrap();
            journal
                .append(&StateOp::Remove {
                    sync: "staff".into(),
                    target_id: "1".into(),
                })
                .unwrap();
            // Crash: journal and guard dropped without commit.
        }
        let loaded = store.load_detailed().unwrap();
        assert_eq!(loaded.journal, JournalStatus::Replayed { ops: 3 });
        let state = loaded.state.unwrap();
        assert_eq!(state.serial, 1, "load does not write");
        let ids: Vec<_> = state.syncs["staff"].accounts.keys().cloned().collect();
        assert_eq!(ids, ["2", "3"]);
        assert!(store.journal_path().exists());

        let guard = store.lock("apply").unwrap();
        let recovered = store.recover(&guard).unwrap().unwrap();
        assert_eq!(recovered.serial, 2);
        assert_eq!(recovered.syncs, state.syncs);
        assert!(!store.journal_path().exists());
        assert_eq!(store.load().unwrap(), Some(recovered.clone()));
        // Nothing left to recover: no new serial.
        assert_eq!(store.recover(&guard).unwrap(), Some(recovered));
    }

    #[test]
    fn truncated_last_journal_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let base = committed(&store);
        {
            let guard = store.lock("apply").unwrap();
            let mut journal = store.journal(&guard, &base).unwrap();
            journal.append(&upsert("2")).unwrap();
        }
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(store.journal_path())
            .unwrap();
        let line = serde_json::to_string(&upsert("3")).unwrap();
        f.write_all(&line.as_bytes()[..line.len() / 2]).unwrap();
        let state = store.load().unwrap().unwrap();
        let ids: Vec<_> = state.syncs["staff"].accounts.keys().cloned().collect();
        assert_eq!(ids, ["1", "2"]);
    }

    #[test]
    fn journal_of_another_lineage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        committed(&store);
        let header = serde_json::json!({"lineage": "lineage-b", "base_serial": 1});
        let op = serde_json::to_string(&upsert("2")).unwrap();
        fs::write(store.journal_path(), format!("{header}\n{op}\n")).unwrap();
        let err = store.load().unwrap_err();
        assert!(matches!(err, StateError::JournalLineage { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("lineage-b") && text.contains("lineage-a"),
            "{text}"
        );
        let guard = store.lock("apply").unwrap();
        assert!(store.recover(&guard).is_err());
        assert!(store.journal_path().exists(), "never dropped silently");
    }

    #[test]
    fn first_apply_journal_without_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        {
            let guard = store.lock("apply").unwrap();
            let base = State::new("fresh".into());
            let mut journal = store.journal(&guard, &base).unwrap();
            assert_eq!(store.load().unwrap(), None, "no op yet, no state");
            journal.append(&upsert("7")).unwrap();
        }
        assert!(!store.path().exists());
        let state = store.load().unwrap().unwrap();
        assert_eq!((state.lineage.as_str(), state.serial), ("fresh", 0));
        assert!(state.syncs["staff"].accounts.contains_key("7"));
        let guard = store.lock("apply").unwrap();
        let recovered = store.recover(&guard).unwrap().unwrap();
        assert_eq!(recovered.serial, 1);
        assert_eq!(store.load().unwrap(), Some(recovered));
        assert!(!store.journal_path().exists());
    }

    #[test]
    fn committed_journal_left_behind_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let base = committed(&store);
        let guard = store.lock("apply").unwrap();
        let mut journal = store.journal(&guard, &base).unwrap();
        journal.append(&upsert("2")).unwrap();
        let copy = fs::read(store.journal_path()).unwrap();
        let mut state = store.commit_journal(&guard, journal).unwrap();
        // Crash between the rename and the journal removal; then someone forgets account 2.
        fs::write(store.journal_path(), &copy).unwrap();
        let loaded = store.load_detailed().unwrap();
        assert_eq!(
            loaded.journal,
            JournalStatus::AlreadyCommitted { base_serial: 1 }
        );
        state.apply_op(&StateOp::Remove {
            sync: "staff".into(),
            target_id: "2".into(),
        });
        store.commit(&guard, &mut state).unwrap();
        assert!(
            !store.load().unwrap().unwrap().syncs["staff"]
                .accounts
                .contains_key("2")
        );
        fs::write(store.journal_path(), &copy).unwrap();
        store.recover(&guard).unwrap();
        assert!(!store.journal_path().exists());
    }

    #[test]
    fn journal_that_does_not_fit_the_state_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        fs::create_dir_all(parent_dir(store.path())).unwrap();
        let op = serde_json::to_string(&upsert("2")).unwrap();
        let header = serde_json::json!({"lineage": "lineage-a", "base_serial": 4});
        fs::write(store.journal_path(), format!("{header}\n{op}\n")).unwrap();
        let err = store.load().unwrap_err();
        assert!(
            matches!(err, StateError::JournalWithoutState { .. }),
            "{err}"
        );
        fs::remove_file(store.journal_path()).unwrap();
        committed(&store);
        fs::write(store.journal_path(), format!("{header}\n{op}\n")).unwrap();
        let err = store.load().unwrap_err();
        assert!(matches!(err, StateError::JournalAhead { .. }), "{err}");
    }

    #[test]
    fn pending_journal_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let base = committed(&store);
        let guard = store.lock("apply").unwrap();
        let mut journal = store.journal(&guard, &base).unwrap();
        journal.append(&upsert("2")).unwrap();
        drop(journal);
        let err = store.journal(&guard, &base).unwrap_err();
        assert!(matches!(err, StateError::JournalPending { .. }), "{err}");
        let state = store.recover(&guard).unwrap().unwrap();
        store.journal(&guard, &state).unwrap();
    }

    #[test]
    fn commit_refuses_a_state_changed_underneath() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let mut stale = committed(&store);
        let guard = store.lock("apply").unwrap();
        let mut fresh = stale.clone();
        store.commit(&guard, &mut fresh).unwrap();
        let err = store.commit(&guard, &mut stale).unwrap_err();
        assert!(matches!(err, StateError::StateChanged { .. }), "{err}");
        assert_eq!(stale.serial, 1, "unchanged on failure");
        let mut other = State::new("lineage-z".into());
        assert!(store.commit(&guard, &mut other).is_err());
    }

    #[test]
    fn damaged_or_newer_state_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        fs::create_dir_all(parent_dir(store.path())).unwrap();
        fs::write(store.path(), "{\"format_version\": \"1\", \"lineage\": ").unwrap();
        let text = store.load().unwrap_err().to_string();
        assert!(
            text.contains("damaged") && text.contains("restore"),
            "{text}"
        );
        assert!(text.contains("state.json"), "{text}");
        fs::write(store.path(), r#"{"format_version": "9", "lineage": "x"}"#).unwrap();
        let err = store.load().unwrap_err();
        assert!(matches!(err, StateError::UnsupportedFormat { .. }), "{err}");
        assert!(err.to_string().contains("\"1\""), "{err}");
        fs::write(store.path(), r#"{"format_version": "1", "serial": 1}"#).unwrap();
        assert!(matches!(store.load(), Err(StateError::Corrupt { .. })));
    }

    #[test]
    fn bare_file_name_uses_the_current_directory() {
        assert_eq!(parent_dir(Path::new("state.json")), Path::new("."));
        let s = StateStore::new(PathBuf::from(".headcount/state.json"));
        assert_eq!(s.lock_path(), Path::new(".headcount/state.json.lock"));
        assert_eq!(s.journal_path(), Path::new(".headcount/state.json.journal"));
    }
}
