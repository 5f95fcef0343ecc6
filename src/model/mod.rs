//! The shared vocabulary: records, live accounts, target operations, connector errors, field
//! tables, policies, secret references and typed config units. A leaf: it imports no other
//! module of the crate but `util`, so the planner, the connectors, the HTTP layer and the
//! config can all use it without importing each other.

pub mod checks;
pub mod error;
pub mod fields;
pub mod policy;
pub mod records;
pub mod scrub;
pub mod secret;
pub mod units;

pub use error::ConnectorError;
pub use fields::{FieldSpec, FieldTable, FieldType, IdentityNorm, LookupError, Writable};
pub use policy::{ManagePolicy, OnCreate, RemovedPolicy};
pub use records::{
    ApplyOptions, LiveAccount, OpResult, Record, SourceRecord, TargetOp, WriteWindow,
};
pub use scrub::Scrubber;
pub use secret::{SecretError, SecretRef};
pub use units::{HttpSettings, RateLimit};
