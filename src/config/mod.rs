//! The config file: its types (the schema), loading with diagnostics, secrets and validation.

pub mod located;
pub mod model;
pub mod secret;

pub use located::{Located, Pos};
pub use model::*;
pub use secret::{SecretError, SecretRef};
