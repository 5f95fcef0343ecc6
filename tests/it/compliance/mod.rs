//! The connector compliance suite (`headcount::testkit::compliance`) wired for every connector:
//! each file implements the harness of one kind and invokes the suite macro once.

mod csv;
mod csv_export;
mod entra_guests;
mod entra_id;
mod google_workspace;
mod ldap;
mod mojo_helpdesk;
mod request_tracker;
mod scim;
mod zendesk;
