//! State: the model (pure), the backend trait the apply session writes through, and the local
//! file backend (atomic writes, lock, journal) as its first implementation.

mod backend;
mod error;
mod inspect;
mod journal;
mod local;
mod lock;
mod model;
mod postgres;
mod store;

pub use backend::{LockedState, StateBackend};
pub use error::StateError;
pub use inspect::{AccountRef, StateRow};
pub use journal::{Journal, JournalHeader};
pub use local::LocalBackend;
pub use lock::{Liveness, LockGuard, LockInfo, Unlocked};
pub use model::*;
pub use postgres::{
    PostgresBackend, UrlSource, check_sql_identifier, url_secrets as postgres_url_secrets,
};
pub use store::{JournalStatus, Loaded, StateStore};
