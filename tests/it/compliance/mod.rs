//! The connector compliance suite (`headcount::testkit::compliance`) wired for every connector:
//! each file implements the harness of one kind and invokes the suite macro once.

mod csv;
mod csv_export;
mod mojo_helpdesk;
mod scim;
mod zendesk;
