//! State: the model (pure), the backend trait the apply session writes through, and the local
//! file backend (atomic writes, lock, journal) as its first implementation.

pub mod backend;
pub mod error;
pub mod inspect;
pub mod journal;
pub mod local;
pub mod lock;
pub mod model;
pub mod store;

pub use backend::{LockedState, StateBackend};
pub use error::StateError;
pub use inspect::{AccountRef, StateRow};
pub use journal::{Journal, JournalHeader};
pub use local::LocalBackend;
pub use lock::{Liveness, LockGuard, LockInfo};
pub use model::*;
pub use store::{DEFAULT_STATE_PATH, JournalStatus, Loaded, StateStore};
