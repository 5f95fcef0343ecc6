//! The config file: its types (the schema), loading with diagnostics, secrets and validation.

pub mod diagnostic;
pub mod init;
pub mod load;
pub mod located;
pub mod model;
pub mod schema;
pub mod tree;
pub mod units;
pub mod validate;

pub use crate::model::{SecretError, SecretRef};
pub use diagnostic::{ConfigError, ConfigErrors, ErrorKind};
pub use init::starter;
pub use load::{LoadedConfig, MAX_CONFIG_BYTES, SUPPORTED_VERSIONS, load, parse};
pub use located::{Located, Pos};
pub use model::*;
pub use schema::schema_json;
pub use units::{parse_duration, parse_max_removals, parse_rate_limit};
pub use validate::{Validated, check_secrets, validate};
