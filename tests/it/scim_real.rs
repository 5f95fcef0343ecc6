//! The `headcount` binary against a real SCIM 2.0 server (`scim2-server` from PyPI, installed by
//! `scripts/start-scim.sh`), no proxy. One server per test binary, one tenant per test, one real-server test at a time; the
//! server state is checked with plain HTTP after every step.
//!
//! Without the venv these tests skip (with a message), unless `CI` is set.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{ConfigOptions, Person, ScimClient, Workspace, assert_server_matches};

/// A runtime, a workspace whose config points at a fresh tenant, and a direct client to it.
struct Case {
    rt: tokio::runtime::Runtime,
    work: Workspace,
    scim: ScimClient,
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

impl Case {
    fn new(label: &str) -> Option<Case> {
        let server = support::scim_server::server()?;
        let one_at_a_time = support::scim_server::exclusive();
        let base = server.new_tenant(label);
        let work = Workspace::new(&base, &server.token, ConfigOptions::default());
        let scim = ScimClient::new(&base, &server.token);
        Some(Case {
            rt: support::runtime(),
            work,
            scim,
            _one_at_a_time: one_at_a_time,
        })
    }

    fn apply(&self) {
        let out = self.work.run(&["apply", "--auto-approve"]);
        assert!(out.success(), "apply failed\n{}", out.both());
    }

    fn assert_server(&self, people: &[Person]) {
        self.rt.block_on(assert_server_matches(&self.scim, people));
    }

    fn user(&self, name: &str) -> Value {
        self.rt
            .block_on(self.scim.user_by_name(name))
            .unwrap_or_else(|| panic!("{name} is not on the server"))
    }

    fn users(&self) -> Vec<Value> {
        self.rt.block_on(self.scim.users())
    }

    /// The summary of the only sync in `plan --format json`.
    fn plan_summary(&self) -> Value {
        let out = self.work.run(&["plan", "--format", "json"]);
        assert!(out.success(), "plan failed\n{}", out.both());
        let doc: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("plan --format json: {e}\n{}", out.both()));
        doc["syncs"][0]["summary"].clone()
    }

    fn assert_no_changes(&self) {
        let out = self.work.run(&["plan", "--detailed-exitcode"]);
        assert_eq!(
            out.code,
            Some(0),
            "plan after apply should have no changes\n{}",
            out.both()
        );
        assert!(out.stdout.contains("No changes"), "{}", out.both());
    }
}

fn count(summary: &Value, action: &str) -> u64 {
    summary[action].as_u64().unwrap_or(0)
}

fn trio() -> Vec<Person> {
    vec![
        Person::new("ann", "Ann", "Archer"),
        Person::new("bob", "Bob", "Baker"),
        Person::new("cat", "Cat", "Cole"),
    ]
}

#[test]
fn full_cycle_create_update_deactivate_reactivate_delete() {
    let Some(c) = Case::new("cycle") else { return };
    let mut people = trio();

    // Create.
    c.work.write_people(&people);
    let s = c.plan_summary();
    assert_eq!(count(&s, "create"), 3, "{s}");
    c.apply();
    c.assert_server(&people);
    let bob_id = c.user("bob")["id"].as_str().expect("id").to_string();

    // Update a name: PATCH in place, same id.
    people[1].last = "Barker".into();
    c.work.write_people(&people);
    let s = c.plan_summary();
    assert_eq!(count(&s, "update"), 1, "{s}");
    c.apply();
    c.assert_server(&people);
    assert_eq!(c.user("bob")["id"], json!(bob_id), "updated in place");

    // Deactivate through `active`.
    people[2].active = false;
    c.work.write_people(&people);
    let s = c.plan_summary();
    assert_eq!(count(&s, "deactivate"), 1, "{s}");
    c.apply();
    c.assert_server(&people);
    assert_eq!(c.user("cat")["active"], json!(false));

    // Reactivate.
    people[2].active = true;
    c.work.write_people(&people);
    let s = c.plan_summary();
    assert_eq!(count(&s, "reactivate"), 1, "{s}");
    c.apply();
    c.assert_server(&people);
    assert_eq!(c.user("cat")["active"], json!(true));

    // Gone from the source with `removed: delete`.
    let bob = people.remove(1);
    c.work.write_people(&people);
    let s = c.plan_summary();
    assert_eq!(count(&s, "delete"), 1, "{s}");
    c.apply();
    c.assert_server(&people);
    assert!(
        c.rt.block_on(c.scim.user_by_name(&bob.user_name)).is_none(),
        "bob was deleted"
    );
    c.assert_no_changes();
}

#[test]
fn plan_apply_plan_ends_with_no_changes() {
    let Some(c) = Case::new("noop") else { return };
    let people = trio();
    c.work.write_people(&people);
    let out = c.work.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.code, Some(2), "changes pending\n{}", out.both());
    c.apply();
    c.assert_server(&people);
    c.assert_no_changes();
    // And applying again changes nothing on the server.
    let before = c.users();
    let out = c.work.run(&["apply", "--auto-approve"]);
    assert!(out.success(), "{}", out.both());
    assert_eq!(c.users(), before, "a second apply must not write");
}

#[test]
fn stale_plan_is_refused_and_writes_nothing() {
    let Some(c) = Case::new("stale") else { return };
    let mut people = trio();
    c.work.write_people(&people);
    c.apply();

    // A pending change to bob, saved as a plan.
    people[1].last = "Barker".into();
    c.work.write_people(&people);
    let out = c.work.run(&["plan", "--out", "p.json"]);
    assert!(out.success(), "{}", out.both());
    assert!(c.work.path("p.json").exists());

    // Someone changes bob in the target before the plan is applied.
    let bob_id = c.user("bob")["id"].as_str().expect("id").to_string();
    c.rt.block_on(
        c.scim
            .patch_replace(&bob_id, "displayName", json!("Robert (changed by hand)")),
    );
    let before = c.users();

    let out = c.work.run(&["apply", "p.json"]);
    assert_eq!(
        out.code,
        Some(1),
        "stale plan must be refused\n{}",
        out.both()
    );
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(text.contains("stale"), "{}", out.both());
    assert!(
        text.contains("bob") || text.contains(&bob_id),
        "the refusal names the account\n{}",
        out.both()
    );
    assert_eq!(c.users(), before, "a refused plan writes nothing");
    assert_eq!(
        c.user("bob")["name"]["familyName"],
        json!("Baker"),
        "bob untouched"
    );
}

#[test]
fn apply_after_out_of_band_change_converges() {
    let Some(c) = Case::new("oob") else { return };
    let people = trio();
    c.work.write_people(&people);
    c.apply();

    // Another admin edits ann and suspends cat by hand.
    let ann_id = c.user("ann")["id"].as_str().expect("id").to_string();
    let cat_id = c.user("cat")["id"].as_str().expect("id").to_string();
    c.rt.block_on(async {
        c.scim
            .patch_replace(&ann_id, "name.givenName", json!("Annie"))
            .await;
        c.scim
            .patch_replace(&ann_id, "displayName", json!("Annie Archer"))
            .await;
        c.scim.patch_replace(&cat_id, "active", json!(false)).await;
    });
    let out = c.work.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.code, Some(2), "drift is a change\n{}", out.both());

    c.apply();
    c.assert_server(&people);
    assert_eq!(c.user("ann")["id"], json!(ann_id), "fixed in place");
    c.assert_no_changes();
}

#[test]
fn existing_user_with_same_user_name_is_adopted_not_duplicated() {
    let Some(c) = Case::new("adopt") else { return };
    let people = trio();
    // ann exists already, created by someone else, with stale values.
    let mut old_ann = people[0].clone();
    old_ann.first = "Old".into();
    old_ann.email = "old-ann@example.com".into();
    let existing = c.rt.block_on(c.scim.create(&old_ann));
    let existing_id = existing["id"].as_str().expect("id").to_string();

    c.work.write_people(&people);
    let s = c.plan_summary();
    assert_eq!(count(&s, "adopt"), 1, "{s}");
    assert_eq!(count(&s, "create"), 2, "{s}");
    c.apply();
    c.assert_server(&people);
    assert_eq!(
        c.user("ann")["id"],
        json!(existing_id),
        "the existing account was adopted and updated, not replaced"
    );
    c.assert_no_changes();
    let listed = c.work.run(&["state", "list"]);
    assert!(listed.success(), "{}", listed.both());
    assert!(
        listed.stdout.contains(&existing_id) || listed.stdout.contains("ann"),
        "the adopted account is managed\n{}",
        listed.both()
    );
}

#[test]
fn wrong_token_is_a_clear_error_without_the_secret() {
    // Guards the harness itself: the tenant needs the token, so a config without it fails.
    let Some(c) = Case::new("auth") else { return };
    c.work.write_people(&trio());
    let mut cmd = c.work.command(&["plan"]);
    cmd.env("SCIM_TOKEN", "wrong-token");
    let out = support::run_command(cmd, "headcount plan (wrong token)", Duration::from_secs(60));
    assert_eq!(
        out.code,
        Some(1),
        "a wrong token is an error\n{}",
        out.both()
    );
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("401") && text.contains("token"),
        "the error says the credentials were refused\n{}",
        out.both()
    );
    assert!(
        !text.contains("wrong-token"),
        "secrets never appear in errors"
    );
}
