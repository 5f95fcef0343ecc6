//! Drift classification: the cause rule as a table, then whole syncs planned and classified,
//! with snapshots of the labelled differences.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{DriftInput, NEVER_APPLIED, cause_of, classify};
use crate::connectors::TargetKind;
use crate::drift::{Cause, SyncDrift};
use crate::expr::Expr;
use crate::model::{LiveAccount, ManagePolicy, OnCreate, RemovedPolicy, SourceRecord};
use crate::plan::Action;
use crate::planner::{MaxRemovalsSpec, SyncInput, SyncSpec, plan_sync};
use crate::state::{ManagedAccount, Origin, State, SyncState};

fn expr(src: &str) -> Expr {
    Expr::compile(src).expect("test expression compiles")
}

/// A Mojo sync over CSV-like records: email, first, last, password, active.
fn spec() -> SyncSpec {
    SyncSpec {
        name: "staff".into(),
        source: "hr".into(),
        target: "helpdesk".into(),
        target_fields: TargetKind::MojoHelpdesk.field_table(&[]),
        where_: None,
        identity: vec!["email".into()],
        fields: vec![
            ("email".into(), Some(expr("user.email"))),
            ("first_name".into(), Some(expr("user.first"))),
            ("last_name".into(), Some(expr("user.last"))),
        ],
        active: Some(expr("user.active")),
        on_create: OnCreate::default(),
        removed: RemovedPolicy::Deactivate,
        manage: ManagePolicy::Owned,
        protect: vec![],
        max_removals: MaxRemovalsSpec::Count(100),
    }
}

fn person(email: &str, first: &str, last: &str, active: bool) -> SourceRecord {
    SourceRecord {
        label: email.into(),
        data: json!({"email": email, "first": first, "last": last, "active": active}),
    }
}

fn live(id: &str, email: &str, first: &str, last: &str, active: bool) -> LiveAccount {
    LiveAccount {
        id: id.into(),
        active,
        fields: BTreeMap::from([
            ("email".to_string(), json!(email)),
            ("first_name".to_string(), json!(first)),
            ("last_name".to_string(), json!(last)),
        ]),
    }
}

/// What apply leaves in the state for an account it wrote.
fn applied(email: &str, first: &str, last: &str, active: bool) -> ManagedAccount {
    ManagedAccount {
        identity: BTreeMap::from([("email".to_string(), email.to_string())]),
        fields: BTreeMap::from([
            ("email".to_string(), json!(email)),
            ("first_name".to_string(), json!(first)),
            ("last_name".to_string(), json!(last)),
        ]),
        active: Some(active),
        origin: Origin::Created,
        deactivated_by_headcount: false,
    }
}

fn state(accounts: Vec<(&str, ManagedAccount)>) -> State {
    let mut s = State::new("lineage-1".into());
    s.syncs.insert(
        "staff".into(),
        SyncState {
            target: "helpdesk".into(),
            accounts: accounts
                .into_iter()
                .map(|(id, m)| (id.to_string(), m))
                .collect(),
        },
    );
    s
}

fn drift(
    spec: &SyncSpec,
    records: &[SourceRecord],
    live: &[LiveAccount],
    st: Option<&State>,
) -> SyncDrift {
    let planned = plan_sync(SyncInput {
        spec,
        records: Ok(records),
        live: Ok(live),
        state: st,
        allow_mass_removal: true,
    });
    classify(DriftInput {
        spec: Some(spec),
        planned: &planned,
        live,
        state: st,
    })
}

fn causes(d: &SyncDrift) -> Vec<(String, Cause)> {
    d.differences
        .iter()
        .map(|x| (x.identity["email"].clone(), x.cause))
        .collect()
}

#[test]
fn the_cause_rule() {
    // (desired changed since last apply, live changed since last apply) → cause
    let table = [
        (true, false, Cause::Source),
        (false, true, Cause::Target),
        (true, true, Cause::Both),
        (false, false, Cause::Source),
    ];
    for (desired, live, want) in table {
        assert_eq!(cause_of(desired, live), want, "{desired} {live}");
    }
}

#[test]
fn one_field_per_cause() {
    // (source last name, live last name, last applied last name) → the field's cause
    let table = [
        ("Two", "Hacked", "Two", Some(Cause::Target)),
        ("Twain", "Two", "Two", Some(Cause::Source)),
        ("Tree", "Thrice", "Two", Some(Cause::Both)),
        // Desired and live moved to the same value: nothing to do, no drift.
        ("Same", "Same", "Two", None),
        // The target went back to what headcount wrote: in sync.
        ("Two", "Two", "Two", None),
    ];
    let s = spec();
    for (desired, have, last, want) in table {
        let st = state(vec![("1", applied("b@x.io", "Bob", last, true))]);
        let d = drift(
            &s,
            &[person("b@x.io", "Bob", desired, true)],
            &[live("1", "b@x.io", "Bob", have, true)],
            Some(&st),
        );
        let got = d
            .differences
            .first()
            .and_then(|x| x.fields.get("last_name"))
            .map(|f| f.cause);
        assert_eq!(got, want, "desired {desired}, live {have}, last {last}");
        if let Some(f) = d
            .differences
            .first()
            .and_then(|x| x.fields.get("last_name"))
        {
            assert_eq!(f.last_applied, json!(last));
            assert_eq!(f.live, json!(have));
            assert_eq!(f.desired, json!(desired));
        }
        assert_eq!(d.summary.in_sync, usize::from(want.is_none()));
    }
}

#[test]
fn active_flag_per_cause() {
    // (active in the source, live, last applied) → action and the flag's cause
    let table = [
        (true, false, true, Action::Reactivate, Cause::Target),
        (false, true, true, Action::Deactivate, Cause::Source),
    ];
    let s = spec();
    for (want_active, live_active, last, action, cause) in table {
        let mut m = applied("a@x.io", "Ann", "One", last);
        m.deactivated_by_headcount = !last;
        let st = state(vec![("1", m)]);
        let d = drift(
            &s,
            &[person("a@x.io", "Ann", "One", want_active)],
            &[live("1", "a@x.io", "Ann", "One", live_active)],
            Some(&st),
        );
        let x = &d.differences[0];
        assert_eq!(x.action, Some(action));
        let a = x.active.expect("active differs");
        assert_eq!((a.cause, x.cause), (cause, cause));
        assert_eq!(a.last_applied, Some(last));
        assert_eq!(a.live, Some(live_active));
        assert_eq!(a.desired, Some(want_active));
    }
}

#[test]
fn a_source_field_and_a_target_field_make_the_account_both() {
    let s = spec();
    let st = state(vec![("1", applied("a@x.io", "Ann", "One", true))]);
    let d = drift(
        &s,
        &[person("a@x.io", "Annie", "One", true)],
        &[live("1", "a@x.io", "Ann", "Hacked", true)],
        Some(&st),
    );
    let x = &d.differences[0];
    assert_eq!(x.cause, Cause::Both);
    assert_eq!(x.fields["first_name"].cause, Cause::Source);
    assert_eq!(x.fields["last_name"].cause, Cause::Target);
    assert_eq!(d.summary.both, 1);
}

#[test]
fn never_applied_values_are_source_with_a_note() {
    let s = spec();
    // Adopted with `state adopt`: an entry without last-applied values.
    let mut m = applied("a@x.io", "Ann", "One", true);
    m.fields.clear();
    m.active = None;
    m.origin = Origin::Adopted;
    let st = state(vec![("1", m)]);
    let d = drift(
        &s,
        &[person("a@x.io", "Ann", "One", true)],
        &[live("1", "a@x.io", "Ann", "Hacked", true)],
        Some(&st),
    );
    let x = &d.differences[0];
    assert_eq!(x.cause, Cause::Source);
    assert_eq!(x.fields["last_name"].cause, Cause::Source);
    assert_eq!(x.fields["last_name"].last_applied, Value::Null);
    assert!(x.notes.iter().any(|n| n == NEVER_APPLIED), "{:?}", x.notes);

    // No state at all: the account is adopted by the next apply, a `source` difference.
    let d = drift(
        &s,
        &[person("a@x.io", "Ann", "One", true)],
        &[live("1", "a@x.io", "Ann", "Hacked", true)],
        None,
    );
    assert_eq!(d.differences[0].action, Some(Action::Adopt));
    assert_eq!(d.differences[0].cause, Cause::Source);
}

#[test]
fn missing_accounts_are_recreated_or_forgotten() {
    let s = spec();
    let st = state(vec![
        ("1", applied("a@x.io", "Ann", "One", true)),
        ("2", applied("b@x.io", "Bob", "Two", true)),
    ]);
    // Both deleted in the target; only Ann is still in the source.
    let d = drift(&s, &[person("a@x.io", "Ann", "One", true)], &[], Some(&st));
    assert_eq!(
        causes(&d),
        vec![
            ("a@x.io".into(), Cause::Missing),
            ("b@x.io".into(), Cause::Missing)
        ]
    );
    let actions: Vec<_> = d.differences.iter().map(|x| x.action).collect();
    assert_eq!(actions, [Some(Action::Create), Some(Action::Forget)]);
    assert_eq!(d.differences[0].target_id.as_deref(), Some("1"));
    assert_eq!(d.summary.missing, 2);
}

#[test]
fn sensitive_values_are_never_compared_nor_shown() {
    let mut s = spec();
    s.fields
        .push(("password".into(), Some(expr("\"hunter2-secret\""))));
    let mut m = applied("a@x.io", "Ann", "One", true);
    m.fields
        .insert("password".into(), crate::plan::sensitive_marker());
    let st = state(vec![("1", m)]);
    // Gone from the target: the password is shown as the marker on both sides.
    let d = drift(&s, &[person("a@x.io", "Ann", "One", true)], &[], Some(&st));
    let f = &d.differences[0].fields["password"];
    assert!(f.sensitive);
    assert_eq!(f.last_applied, crate::plan::sensitive_marker());
    assert_eq!(f.desired, crate::plan::sensitive_marker());
    let text = serde_json::to_string(&d).unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    // Present and unchanged: a sensitive field is no drift.
    let d = drift(
        &s,
        &[person("a@x.io", "Ann", "One", true)],
        &[live("1", "a@x.io", "Ann", "One", true)],
        Some(&st),
    );
    assert!(d.differences.is_empty(), "{d:?}");
}

#[test]
fn manage_all_reports_unmanaged_accounts_whatever_the_removed_policy() {
    for (removed, action) in [
        (RemovedPolicy::Deactivate, Some(Action::Deactivate)),
        (RemovedPolicy::Delete, Some(Action::Delete)),
        (RemovedPolicy::Keep, None),
    ] {
        let mut s = spec();
        s.manage = ManagePolicy::All;
        s.removed = removed;
        let st = state(vec![("1", applied("a@x.io", "Ann", "One", true))]);
        let d = drift(
            &s,
            &[person("a@x.io", "Ann", "One", true)],
            &[
                live("1", "a@x.io", "Ann", "One", true),
                live("9", "stray@x.io", "Stray", "X", true),
            ],
            Some(&st),
        );
        assert_eq!(causes(&d), vec![("stray@x.io".into(), Cause::Unmanaged)]);
        assert_eq!(d.differences[0].action, action, "{removed:?}");
        assert_eq!(d.summary.unmanaged, 1);
        assert_eq!(d.summary.in_sync, 1, "{removed:?}");
    }
    // Without `manage: all` an unknown account is none of headcount's business.
    let st = state(vec![("1", applied("a@x.io", "Ann", "One", true))]);
    let d = drift(
        &spec(),
        &[person("a@x.io", "Ann", "One", true)],
        &[
            live("1", "a@x.io", "Ann", "One", true),
            live("9", "stray@x.io", "Stray", "X", true),
        ],
        Some(&st),
    );
    assert!(d.differences.is_empty());
}

#[test]
fn a_sync_that_could_not_be_planned_has_errors_and_no_differences() {
    let s = spec();
    let st = state(vec![("1", applied("a@x.io", "Ann", "One", true))]);
    let planned = plan_sync(SyncInput {
        spec: &s,
        records: Err("connection refused"),
        live: Ok(&[]),
        state: Some(&st),
        allow_mass_removal: true,
    });
    let d = classify(DriftInput {
        spec: Some(&s),
        planned: &planned,
        live: &[],
        state: Some(&st),
    });
    assert!(d.differences.is_empty());
    assert_eq!(d.errors.len(), 1);
}

#[test]
fn every_cause_in_one_sync() {
    let mut s = spec();
    s.manage = ManagePolicy::All;
    let st = state(vec![
        ("1", applied("ann@x.io", "Ann", "One", true)),
        ("2", applied("bob@x.io", "Bob", "Two", true)),
        ("3", applied("cat@x.io", "Cat", "Three", true)),
        ("4", applied("dan@x.io", "Dan", "Four", true)),
        ("5", applied("eve@x.io", "Eve", "Five", true)),
    ]);
    let d = drift(
        &s,
        &[
            person("ann@x.io", "Ann", "One", true),
            person("bob@x.io", "Bob", "Twain", true),
            person("cat@x.io", "Cat", "Tree", true),
            person("dan@x.io", "Dan", "Four", true),
            person("eve@x.io", "Eve", "Five", true),
            person("fay@x.io", "Fay", "Six", true),
        ],
        &[
            live("1", "ann@x.io", "Ann", "Hacked", true),
            live("2", "bob@x.io", "Bob", "Two", true),
            live("3", "cat@x.io", "Cat", "Thrice", true),
            live("5", "eve@x.io", "Eve", "Five", false),
            live("9", "stray@x.io", "Stray", "X", true),
        ],
        Some(&st),
    );
    insta::assert_yaml_snapshot!(d);
}

#[test]
fn a_sync_gone_from_the_config_is_forgotten_a_source_difference() {
    let st = state(vec![("1", applied("a@x.io", "Ann", "One", true))]);
    // `staff` is no longer configured: `plan_all` forgets its accounts; its target is not read.
    let planned = crate::planner::plan_all(&[], Some(&st), true);
    let d = classify(DriftInput {
        spec: None,
        planned: &planned[0],
        live: &[],
        state: Some(&st),
    });
    assert_eq!(causes(&d), vec![("a@x.io".into(), Cause::Source)]);
    assert_eq!(d.differences[0].action, Some(Action::Forget));
}
