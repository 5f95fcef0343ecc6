//! headcount: keeps the user accounts of helpdesks and SaaS apps in line with identity sources.
//!
//! The crate is a library with a thin CLI (`src/main.rs`, `src/cli/`). See `ARCHITECTURE.md`
//! for the code map and the invariants (notably: the planner does no I/O).

// An item is only as visible as its reach, so that `dead_code` sees every item that is not part
// of the library's API (ARCHITECTURE.md, "Lints").
#![warn(unreachable_pub)]
// The library never prints: the CLI decides what reaches stdout and stderr.
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod apply;
pub mod audit;
pub mod config;
pub mod connectors;
pub mod drift;
pub mod engine;
pub mod expr;
pub mod http;
pub mod model;
pub mod plan;
pub mod planner;
pub mod reconcile;
pub mod render;
pub mod sensitive;
pub mod session;
pub mod state;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod util;

#[cfg(test)]
mod invariants;
