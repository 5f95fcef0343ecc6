//! The one error type of the state backend. Every message names the file involved and says what
//! to do next, because the person reading it is usually mid-apply and worried about their data.

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;

use super::lock::{Liveness, LockInfo};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("could not {action} {}: {source}; {}", path.display(), io_hint(action, source))]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "the state file {} is damaged: {detail}. headcount will not start a new state over it, \
         because that would forget which accounts it manages; restore the file from a backup or \
         version control (or fix the JSON by hand) and run the command again",
        path.display()
    )]
    Corrupt { path: PathBuf, detail: String },

    #[error(
        "the state file {} has format_version {found:?}, but this headcount only reads format \
         version {supported:?}; use the headcount release that wrote it (or a newer one)",
        path.display()
    )]
    UnsupportedFormat {
        path: PathBuf,
        found: String,
        supported: &'static str,
    },

    #[error("could not encode the state for {}: {source}; this is a bug in headcount, please report it", path.display())]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("{}", locked_message(path, info, *liveness))]
    Locked {
        path: PathBuf,
        info: Box<LockInfo>,
        liveness: Liveness,
    },

    #[error(
        "the state is locked by {info}, on another host than this one ({here}); the OS lock \
         proves nothing across hosts, so headcount never takes such a lock over. Lock file: {}. \
         If that run has ended (check on {}), run `headcount state unlock` to remove it",
        path.display(),
        info.host
    )]
    LockedElsewhere {
        path: PathBuf,
        info: Box<LockInfo>,
        here: String,
    },

    #[error(
        "the state is locked, but the lock file {} cannot be read ({detail}); another headcount \
         may be writing it right now, here or on another host sharing this folder. If no \
         headcount is running, run `headcount state unlock` to remove it",
        path.display()
    )]
    LockUnreadable { path: PathBuf, detail: String },

    #[error(
        "the state file {} is at serial {serial}, the largest there is: it cannot be written \
         again. Start a new state (move it aside; the next plan adopts the accounts) or fix its \
         serial by hand",
        path.display()
    )]
    SerialExhausted { path: PathBuf, serial: u64 },

    #[error(
        "the lock {} is no longer held by this process (it was removed, probably with \
         `headcount state unlock`, or taken by another headcount); nothing was written. Make sure \
         no other headcount is running, then run the command again: operations already done are \
         kept in the journal and folded in by the next apply",
        path.display()
    )]
    LockLost { path: PathBuf },

    #[error(
        "the lock guard is for {} but this state store locks {}; this is a bug in headcount, \
         please report it",
        guard_path.display(),
        path.display()
    )]
    WrongLock { guard_path: PathBuf, path: PathBuf },

    #[error(
        "the state file {} changed since it was read (expected {expected}, found {found}); \
         another process wrote it. Nothing was written: run the command again so it starts from \
         the current state",
        path.display()
    )]
    StateChanged {
        path: PathBuf,
        expected: String,
        found: String,
    },

    #[error(
        "the journal {} is damaged at line {line}: {detail}. It records operations already done \
         in the targets; restore it from a backup, or move it aside and run `headcount plan` to \
         see what the targets really hold",
        path.display()
    )]
    JournalCorrupt {
        path: PathBuf,
        line: usize,
        detail: String,
    },

    #[error(
        "the journal {} belongs to state lineage {journal_lineage}, but the state file {} has \
         lineage {state_lineage}; it records operations done under another state. Put back the \
         state file it belongs to, or, if that state is gone for good, move the journal aside \
         (its operations are then forgotten) and run `headcount plan`",
        path.display(),
        state_path.display()
    )]
    JournalLineage {
        path: PathBuf,
        journal_lineage: String,
        state_path: PathBuf,
        state_lineage: String,
    },

    #[error(
        "the journal {} was written on top of state serial {base_serial}, but the state file {} \
         is at serial {state_serial}: the state file is older than the journal (restored from a \
         backup?). Put back the state file at serial {base_serial}, or move the journal aside and \
         run `headcount plan`",
        path.display(),
        state_path.display()
    )]
    JournalAhead {
        path: PathBuf,
        base_serial: u64,
        state_path: PathBuf,
        state_serial: u64,
    },

    #[error(
        "the journal {} was written on top of state serial {base_serial}, but the state file {} \
         is missing; put the state file back (from a backup or version control), or move the \
         journal aside and run `headcount plan`",
        path.display(),
        state_path.display()
    )]
    JournalWithoutState {
        path: PathBuf,
        base_serial: u64,
        state_path: PathBuf,
    },

    #[error(
        "the journal {} holds operations of an interrupted apply that are not in the state file \
         yet; fold them in first (`StateStore::recover`, which every apply does after locking). \
         This is a bug in headcount if you see it, please report it",
        path.display()
    )]
    JournalPending { path: PathBuf },

    #[error(
        "an earlier write to the journal {} failed, so it no longer accepts operations; stop this \
         apply, fix the cause (disk full? permissions?) and run `headcount apply` again: what was \
         recorded is kept",
        path.display()
    )]
    JournalPoisoned { path: PathBuf },

    #[error(
        "no journal is open for the state at {location}: an operation was recorded before the \
         apply started its journal; this is a bug in headcount, please report it"
    )]
    NoJournal { location: String },

    #[error(
        "could not {action} in the PostgreSQL state {location}: {detail}; check that the server \
         is reachable, that `state.url` is right (user, password, database, sslmode) and that its \
         user may create and write tables in the schema, then run the command again"
    )]
    Database {
        location: String,
        action: &'static str,
        /// Already scrubbed of the URL's password.
        detail: String,
    },

    #[error(
        "the PostgreSQL state {location} is locked by {}; the lock is a PostgreSQL advisory \
         lock held by that run's database session (server pid {backend_pid}): it goes when that \
         run ends, however it ends. Wait for it, or if that run hangs, run `headcount state \
         unlock`, which ends its session",
        info.as_deref().map(ToString::to_string).unwrap_or_else(|| "a session that did not say who it is (its holder row is missing)".to_string())
    )]
    DatabaseLocked {
        location: String,
        info: Option<Box<LockInfo>>,
        backend_pid: i32,
    },

    #[error(
        "the PostgreSQL state {location} is at schema version {found}, but this headcount knows \
         versions up to {supported}; a newer headcount wrote it: use that release (or a newer one)"
    )]
    DatabaseNewer {
        location: String,
        found: i32,
        supported: i32,
    },

    #[error("the PostgreSQL state {location} is misconfigured: {detail}")]
    DatabaseConfig { location: String, detail: String },

    #[error("{}", not_found_message(id, suggestion.as_deref()))]
    AccountNotFound {
        id: String,
        suggestion: Option<String>,
    },

    #[error(
        "`{id}` matches several managed accounts: {}; say which one with SYNC/ID",
        candidates.join(", ")
    )]
    AmbiguousId { id: String, candidates: Vec<String> },
}

/// What to check after an I/O failure. A full disk is only suggested for writes (or when the
/// system says so): a read that fails is about the file, its folder or its permissions.
fn io_hint(action: &str, source: &io::Error) -> &'static str {
    let reads = action.starts_with("read") || action.starts_with("open");
    match source.kind() {
        io::ErrorKind::StorageFull => "free some disk space, then run the command again",
        io::ErrorKind::NotFound if reads => {
            "check the state path in the config (`state.path`) and that the file is there, then run the command again"
        }
        io::ErrorKind::PermissionDenied if reads => {
            "check that you may read the file and its folder, then run the command again"
        }
        _ if reads => {
            "check that the path names a readable file (not a folder) and that its disk is healthy, then run the command again"
        }
        _ => {
            "check that the directory exists, is writable by you and the disk is not full, then run the command again"
        }
    }
}

impl StateError {
    /// Shorthand for the I/O variant, used with `map_err`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| StateError::Io {
            action,
            path,
            source,
        }
    }
}

fn locked_message(path: &std::path::Path, info: &LockInfo, liveness: Liveness) -> String {
    let mut m = format!("the state is locked by {info}");
    let _ = match liveness {
        Liveness::NotRunning => write!(
            m,
            "; the lock looks stale: pid {} is not running on this host",
            info.pid
        ),
        Liveness::Running => write!(m, "; pid {} is still running on this host", info.pid),
        Liveness::Unknown => Ok(()),
    };
    let _ = write!(
        m,
        ". Lock file: {}. If no headcount is running, run `headcount state unlock` to remove it",
        path.display()
    );
    m
}

fn not_found_message(id: &str, suggestion: Option<&str>) -> String {
    let mut m = format!("no managed account has the id `{id}` in the state");
    match suggestion {
        Some(s) => {
            let _ = write!(m, "; did you mean `{s}`?");
        }
        None => m.push('.'),
    }
    m.push_str(" Run `headcount state list` to see the managed accounts and their ids");
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 7 point 10: a failed read never suggests a full disk; a failed write may.
    #[test]
    fn a_read_error_does_not_suggest_a_full_disk() {
        for kind in [
            io::ErrorKind::PermissionDenied,
            io::ErrorKind::NotFound,
            io::ErrorKind::IsADirectory,
            io::ErrorKind::InvalidData,
        ] {
            let e = StateError::io("read the state file", "/x/state.json")(io::Error::from(kind));
            let text = e.to_string();
            assert!(!text.contains("disk is not full"), "{text}");
            assert!(!text.contains("disk space"), "{text}");
        }
        let e = StateError::io("write the state file", "/x/state.json")(io::Error::from(
            io::ErrorKind::StorageFull,
        ));
        assert!(e.to_string().contains("free some disk space"), "{e}");
    }
}
