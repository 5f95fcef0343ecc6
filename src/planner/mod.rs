//! The planner: records, live accounts and state in, plan out. Pure: no network, no clock, no
//! files. Most tests live here.

use crate::catalog::TargetKind;
use crate::config::{ManagePolicy, OnCreate, RemovedPolicy};
use crate::expr::Expr;

/// A sync ready to plan: names resolved, expressions compiled.
#[derive(Debug, Clone)]
pub struct SyncSpec {
    pub name: String,
    pub source: String,
    pub target: String,
    pub target_kind: TargetKind,
    /// Custom fields declared for the target.
    pub custom_fields: Vec<String>,
    pub where_: Option<Expr>,
    /// Identity fields in precedence order.
    pub identity: Vec<String>,
    /// Target field → expression (`None`: the literal `null`).
    pub fields: Vec<(String, Option<Expr>)>,
    pub active: Option<Expr>,
    pub on_create: OnCreate,
    pub removed: RemovedPolicy,
    pub manage: ManagePolicy,
    pub protect: Vec<String>,
    pub max_removals: MaxRemovalsSpec,
}

/// The mass-removal limit, parsed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxRemovalsSpec {
    Count(u64),
    Percent(f64),
}
