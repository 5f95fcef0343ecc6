//! The state lock (SPEC section 10): a file next to the state holding its holder (who, pid, host,
//! since when, doing what), protected by an exclusive OS file lock (`flock`) that the kernel
//! releases when the holder exits, however it exits. So a second headcount is stopped with the
//! holder's name while the holder runs, and a lock left by a killed run is taken over by the next
//! one, with a warning naming the run that left it; nobody has to guess whether it is stale.
//! It is advisory: it stops a second headcount, not someone editing the files by hand.
//! `headcount state unlock` still removes the file (for a holder on another machine whose file
//! system does not carry OS locks).

use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

use super::error::StateError;
use super::store::create_parent_dir;

/// What the lock file holds: enough for a person to find the process that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// `user@host`, for the message a blocked colleague reads.
    pub holder: String,
    pub pid: u32,
    pub host: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The command that took the lock (`apply`, `state forget`, ...).
    pub operation: String,
    pub headcount_version: String,
}

/// Whether the process holding a lock still runs, as far as this machine can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Same host and the pid exists (it may in rare cases be a reused pid).
    Running,
    /// Same host and the pid does not exist: the lock is stale.
    NotRunning,
    /// Another host, or no `/proc` to look in.
    Unknown,
}

impl LockInfo {
    /// The lock this process would write.
    pub fn for_this_process(operation: &str) -> Self {
        let host = this_host();
        let user = ["USER", "USERNAME", "LOGNAME"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
            .unwrap_or_else(|| "unknown".to_string());
        LockInfo {
            holder: format!("{user}@{host}"),
            pid: std::process::id(),
            host,
            created_at: time::OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_else(|_| "unknown".to_string()),
            operation: operation.to_string(),
            headcount_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// Looks the pid up in `/proc` when the lock was taken on this host.
    pub fn liveness(&self) -> Liveness {
        if self.host != this_host() || !Path::new("/proc/self").exists() {
            return Liveness::Unknown;
        }
        if self.pid == std::process::id() || Path::new(&format!("/proc/{}", self.pid)).exists() {
            Liveness::Running
        } else {
            Liveness::NotRunning
        }
    }

    /// True when the holder is known not to run any more.
    pub fn looks_stale(&self) -> bool {
        self.liveness() == Liveness::NotRunning
    }
}

/// `alice@build-1 (pid 4242 on build-1, since 2025-01-01T10:00:00Z, running `apply`, headcount
/// 0.1.0)`: who to go and ask.
impl std::fmt::Display for LockInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (pid {} on {}, since {}, running `{}`, headcount {})",
            self.holder,
            self.pid,
            self.host,
            self.created_at,
            self.operation,
            self.headcount_version
        )
    }
}

fn this_host() -> String {
    hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Proof that this process holds the lock; the state store asks for it before every write.
/// Dropping it removes the lock file (only if it is still ours).
#[derive(Debug)]
pub struct LockGuard {
    path: PathBuf,
    info: LockInfo,
    released: bool,
    /// The open lock file: its OS lock is held as long as this lives (dropped after the file is
    /// removed, so a waiter never locks a file that is about to go).
    _file: File,
}

impl LockGuard {
    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    /// Removes the lock now and reports a failure, which `Drop` cannot.
    pub fn release(mut self) -> Result<(), StateError> {
        self.released = true;
        remove_if_ours(&self.path, &self.info)
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.released
            && let Err(e) = remove_if_ours(&self.path, &self.info)
        {
            tracing::warn!("{e}");
        }
    }
}

/// Leaves a lock that someone else took meanwhile (after a forced unlock) alone.
fn remove_if_ours(path: &Path, info: &LockInfo) -> Result<(), StateError> {
    match read(path) {
        Ok(Some(current)) if current == *info => match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StateError::io("remove the lock", path)(e)),
        },
        Ok(_) => Ok(()),
        Err(StateError::LockUnreadable { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Takes the lock: opens (or creates) the lock file and takes its exclusive OS lock without
/// waiting. A live holder makes this fail with its name; a file left by a holder that died is
/// taken over (its OS lock went with it), with a warning naming it.
pub(crate) fn acquire(path: &Path, operation: &str) -> Result<LockGuard, StateError> {
    create_parent_dir(path)?;
    let info = LockInfo::for_this_process(operation);
    let mut body = serde_json::to_vec_pretty(&info).map_err(|source| StateError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    body.push(b'\n');
    // The file may be removed (by its holder releasing it) between our open and our lock: then
    // we hold a lock on a file that is gone, and try again on the new one.
    for _ in 0..5 {
        let mut options = crate::util::private_file_options();
        options.read(true).write(true).create(true).truncate(false);
        let mut file = crate::util::open_private(&options, path)
            .map_err(StateError::io("open the lock", path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => match read(path) {
                Ok(Some(holder)) => {
                    return Err(StateError::Locked {
                        path: path.to_path_buf(),
                        info: Box::new(holder),
                        liveness: Liveness::Running,
                    });
                }
                Ok(None) => continue,
                Err(StateError::LockUnreadable { .. }) => {
                    return Err(StateError::LockUnreadable {
                        path: path.to_path_buf(),
                        detail: "a running headcount holds it and is still writing it".to_string(),
                    });
                }
                Err(e) => return Err(e),
            },
            Err(fs::TryLockError::Error(e)) => {
                return Err(StateError::io("lock", path)(e));
            }
        }
        if !is_same_file(&file, path) {
            continue;
        }
        // The OS lock is ours, which proves the previous holder is gone only if it ran on this
        // host: a lock taken through a shared file system from another machine holds no OS lock
        // here. So a lock naming another host is never taken over, and one that cannot be read
        // is reported rather than replaced (it may be such a lock, half written).
        let mut previous = Vec::new();
        file.read_to_end(&mut previous)
            .map_err(StateError::io("read the lock", path))?;
        if !previous.iter().all(u8::is_ascii_whitespace) {
            let left: LockInfo =
                serde_json::from_slice(&previous).map_err(|e| StateError::LockUnreadable {
                    path: path.to_path_buf(),
                    detail: e.to_string(),
                })?;
            if left.host != info.host {
                return Err(StateError::LockedElsewhere {
                    path: path.to_path_buf(),
                    info: Box::new(left),
                    here: info.host,
                });
            }
            tracing::warn!(
                "took over the state lock left by {left}: that run ended without releasing it (killed or crashed); the journal keeps what it did"
            );
        }
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(&body))
            .and_then(|()| file.sync_all());
        if let Err(e) = written {
            return Err(StateError::io("write the lock", path)(e));
        }
        return Ok(LockGuard {
            path: path.to_path_buf(),
            info,
            released: false,
            _file: file,
        });
    }
    Err(StateError::LockUnreadable {
        path: path.to_path_buf(),
        detail: "it keeps being replaced".to_string(),
    })
}

/// Whether `file` is still the file at `path` (not removed or replaced since it was opened).
fn is_same_file(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        true
    }
}

/// The current lock, if any.
pub(crate) fn read(path: &Path) -> Result<Option<LockInfo>, StateError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io("read the lock", path)(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StateError::LockUnreadable {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
}

/// What `headcount state unlock` removed, so that it can say so truthfully.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unlocked {
    /// There was no lock.
    Nothing,
    /// A lock of a run on this host that no longer runs.
    Stale(LockInfo),
    /// A lock of a process on this host that still runs (or whose pid was reused): it will
    /// find its lock gone at its next write and stop.
    Running(LockInfo),
    /// A lock of a run on another host: only a person can know that it has ended.
    OtherHost(LockInfo),
    /// A lock of this host where it cannot be told whether the process runs (no `/proc`).
    Undetermined(LockInfo),
    /// A lock file whose contents could not be read: whoever held it is unknown.
    Unreadable { detail: String },
    /// A PostgreSQL advisory lock, which lives as long as its holder's database session: that
    /// session (server pid `backend_pid`) was ended, and with it the lock.
    SessionEnded { info: LockInfo, backend_pid: i32 },
}

/// Removes the lock whoever holds it (`headcount state unlock`) and says what it was.
pub(crate) fn force_remove(path: &Path) -> Result<Unlocked, StateError> {
    let removed = match read(path) {
        Ok(None) => return Ok(Unlocked::Nothing),
        Ok(Some(info)) => match info.liveness() {
            Liveness::NotRunning => Unlocked::Stale(info),
            Liveness::Running => Unlocked::Running(info),
            Liveness::Unknown if info.host == this_host() => Unlocked::Undetermined(info),
            Liveness::Unknown => Unlocked::OtherHost(info),
        },
        Err(StateError::LockUnreadable { detail, .. }) => Unlocked::Unreadable { detail },
        Err(e) => return Err(e),
    };
    match fs::remove_file(path) {
        Ok(()) => Ok(removed),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Unlocked::Nothing),
        Err(e) => Err(StateError::io("remove the lock", path)(e)),
    }
}

/// Checks, before a write, that `guard` is this store's lock and that nobody removed or replaced
/// it since (a forced unlock while we run would otherwise let two writers race).
pub(crate) fn ensure_held(guard: &LockGuard, path: &Path) -> Result<(), StateError> {
    if guard.path != path {
        return Err(StateError::WrongLock {
            guard_path: guard.path.clone(),
            path: path.to_path_buf(),
        });
    }
    match read(path) {
        Ok(Some(current)) if current == guard.info => Ok(()),
        Ok(_) | Err(StateError::LockUnreadable { .. }) => Err(StateError::LockLost {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(e),
    }
}
