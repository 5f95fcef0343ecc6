//! The state lock (SPEC section 10): a file created with `create_new` next to the state, so that
//! two applies never write the same state at once. It is advisory: it stops a second headcount,
//! not someone editing the files by hand. A crashed headcount leaves it behind; the error then
//! says whether it looks stale and how to remove it (`headcount state unlock`).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
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
}

impl LockGuard {
    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    pub fn path(&self) -> &Path {
        &self.path
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

/// Creates the lock file atomically (`create_new`), or explains who holds it.
pub(crate) fn acquire(path: &Path, operation: &str) -> Result<LockGuard, StateError> {
    create_parent_dir(path)?;
    let info = LockInfo::for_this_process(operation);
    let mut body = serde_json::to_vec_pretty(&info).map_err(|source| StateError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    body.push(b'\n');
    // A lock removed between our failed create and our read: try again a few times.
    for _ in 0..3 {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut file) => {
                if let Err(e) = file.write_all(&body).and_then(|()| file.sync_all()) {
                    let _ = fs::remove_file(path);
                    return Err(StateError::io("write the lock", path)(e));
                }
                return Ok(LockGuard {
                    path: path.to_path_buf(),
                    info,
                    released: false,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if let Some(holder) = read(path)? {
                    let liveness = holder.liveness();
                    return Err(StateError::Locked {
                        path: path.to_path_buf(),
                        info: Box::new(holder),
                        liveness,
                    });
                }
            }
            Err(e) => return Err(StateError::io("create the lock", path)(e)),
        }
    }
    Err(StateError::LockUnreadable {
        path: path.to_path_buf(),
        detail: "it keeps appearing and disappearing".to_string(),
    })
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

/// Removes the lock whoever holds it (`headcount state unlock`). Returns what it held, or `None`
/// when there was no lock or its contents could not be read (it is removed all the same).
pub(crate) fn force_remove(path: &Path) -> Result<Option<LockInfo>, StateError> {
    let info = match read(path) {
        Ok(info) => info,
        Err(StateError::LockUnreadable { .. }) => None,
        Err(e) => return Err(e),
    };
    match fs::remove_file(path) {
        Ok(()) => Ok(info),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
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
