//! State: the model (pure) and the local file backend (atomic writes, lock, journal).

pub mod model;

pub use model::*;
