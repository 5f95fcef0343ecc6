//! The integration tests, as one test binary (one link instead of ten; `cargo test --test it`).
//! Fixtures live in `tests/fixtures/`; `support/` starts the real scim2-server and holds the
//! fault-injecting proxy; `compliance/` runs the connector compliance suite of the testkit.
#![allow(clippy::unwrap_used)]

mod cli;
mod cli_contract;
mod compliance;
mod config_init;
mod config_load;
mod config_schema;
mod config_units;
mod config_validate;
mod create_kill;
mod drift;
mod entra;
mod entra_s5;
mod examples;
mod google;
mod google_emulator;
mod google_errors;
mod google_examples;
mod google_wif;
mod ldap_config;
mod ldap_e2e;
mod ldap_source;
mod ldap_wire;
mod mojo_helpdesk;
mod request_tracker_cli;
mod request_tracker_real;
mod run_loop;
mod s6_ldap_rt;
mod scim_apply;
mod scim_faults;
mod scim_real;
mod scrub;
mod state_kill;
mod state_postgres;
mod state_postgres_kill;
mod support;
mod terminal;
mod zendesk;
mod zendesk_s4;
