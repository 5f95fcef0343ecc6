//! State: the model (pure) and the local file backend (atomic writes, lock, journal).

mod error;
mod inspect;
mod journal;
mod lock;
mod model;
mod store;

pub use error::StateError;
pub use inspect::{AccountRef, StateRow};
pub use journal::{Journal, JournalHeader};
pub use lock::{Liveness, LockGuard, LockInfo};
pub use model::*;
pub use store::{JournalStatus, Loaded, StateStore};
