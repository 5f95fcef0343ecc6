//! `zendesk` behaviours of SPEC sections 11 and 12 against the Zendesk emulator: bulk jobs of
//! 100 with their polls, per-item results mapped to the right change, the fallback when bulk
//! import is off, suspend/unsuspend/delete, organizations on demand, the lookups that keep a
//! create from ever making a duplicate, and the source's role filters.

use std::collections::BTreeMap;

use headcount::connectors::zendesk::{ZendeskSource, ZendeskTarget};
use headcount::connectors::{ApplyOptions, ConnectorError, Source, Target, TargetOp};
use headcount::testkit::compliance::apply_all;
use headcount::testkit::zendesk::ZendeskEmulator;
use headcount::testkit::{Fault, Match};
use serde_json::{Value, json};

const AGENT: &str = "admin@example.com";
const TOKEN: &str = "zd-test-token";

async fn start() -> (ZendeskEmulator, ZendeskTarget) {
    let emu = ZendeskEmulator::start(AGENT, TOKEN).await;
    let t = target(&emu);
    (emu, t)
}

fn target(emu: &ZendeskEmulator) -> ZendeskTarget {
    ZendeskTarget::new(
        emu.client_builder(AGENT, TOKEN).build().unwrap(),
        vec!["department".to_string()],
    )
}

fn create(email: &str, extra: &[(&str, Value)]) -> TargetOp {
    let mut fields = BTreeMap::from([
        ("email".to_string(), json!(email)),
        ("name".to_string(), json!(format!("Name of {email}"))),
    ]);
    for (k, v) in extra {
        fields.insert(k.to_string(), v.clone());
    }
    TargetOp::Create {
        fields,
        active: true,
        notify: false,
    }
}

fn modify(id: i64, fields: &[(&str, Value)], active: Option<bool>) -> TargetOp {
    TargetOp::Modify {
        id: id.to_string(),
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        expected: BTreeMap::new(),
        active,
        removal: false,
    }
}

fn count(emu: &ZendeskEmulator, method: &str, path: &str) -> usize {
    emu.log()
        .all()
        .iter()
        .filter(|l| l.method == method && l.path.starts_with(path))
        .count()
}

fn seeded(emu: &ZendeskEmulator, email: &str) -> i64 {
    emu.insert(json!({"name": format!("Name of {email}"), "email": email, "role": "agent"}))
}

/// 250 creates are three create_many jobs (100, 100, 50), each polled until done, and
/// nothing else: no single create, no list.
#[tokio::test(start_paused = true)]
async fn creates_go_in_jobs_of_100_polled_until_done() {
    let (emu, t) = start().await;
    emu.set_job_polls(1);
    let ops: Vec<TargetOp> = (0..250)
        .map(|n| create(&format!("u{n}@x.io"), &[]))
        .collect();
    let r = apply_all(&t, &ops, &ApplyOptions::default()).await;
    assert!(r.iter().all(Result::is_ok), "{r:?}");
    assert_eq!(emu.users().len(), 250);
    // Each reported id is the user made from that very op.
    for (n, id) in r.iter().enumerate() {
        let u = emu.user(&format!("u{n}@x.io")).unwrap();
        assert_eq!(&u["id"].to_string(), id.as_ref().unwrap());
    }
    let posts = emu.log().method("POST");
    let sizes: Vec<usize> = posts
        .iter()
        .map(|l| l.body.as_ref().unwrap()["users"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [100, 100, 50]);
    assert!(posts.iter().all(|l| l.path == "/api/v2/users/create_many"));
    // One `working` answer, then `completed`: two polls per job.
    assert_eq!(count(&emu, "GET", "/api/v2/job_statuses/"), 6);
    assert_eq!(emu.log().count(), 9, "{:#?}", emu.log().lines());
    // Created without the verification email, as on_create.notify: false says.
    assert!(posts[0].body.as_ref().unwrap()["users"][0]["skip_verify_email"] == json!(true));
}

/// Per-item failures of a job go to the change they belong to, in Zendesk's words; the
/// others of the batch succeed.
#[tokio::test(start_paused = true)]
async fn per_item_failures_map_to_their_change() {
    let (emu, t) = start().await;
    let existing = seeded(&emu, "kept@x.io");
    let ops = [
        create("a@x.io", &[]),
        create("not-an-email", &[]),
        create("c@x.io", &[]),
        modify(existing, &[("name", json!("Kept Renamed"))], None),
        modify(999_999, &[("name", json!("Nobody"))], None),
    ];
    let r = apply_all(&t, &ops, &ApplyOptions::default()).await;
    assert!(r[0].is_ok() && r[2].is_ok() && r[3].is_ok(), "{r:?}");
    let err = r[1].as_ref().unwrap_err();
    assert!(matches!(err, ConnectorError::Rejected { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("creating not-an-email"), "{msg}");
    assert!(msg.contains("is not properly formatted"), "{msg}");
    let msg = r[4].as_ref().unwrap_err().to_string();
    assert!(msg.contains("updating user 999999"), "{msg}");
    assert!(msg.contains("RecordNotFound"), "{msg}");
    assert!(msg.contains("run plan again"), "{msg}");
    assert_eq!(emu.user("kept@x.io").unwrap()["name"], "Kept Renamed");
    assert_eq!(emu.users().len(), 3);
    // One job for the creates, one for the updates: the batch form with ids.
    let puts = emu.log().method("PUT");
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].path, "/api/v2/users/update_many");
    assert_eq!(
        puts[0].body.as_ref().unwrap()["users"],
        json!([{"id": existing, "name": "Kept Renamed"}, {"id": 999_999, "name": "Nobody"}])
    );
    assert_eq!(count(&emu, "POST", "/api/v2/users/create_many"), 1);
}

/// A create refused because the email is taken (an account made after the plan) is looked
/// up to be named and fails: never a duplicate, never a silent takeover of someone else's
/// account (the next plan shows it as an adoption, for review).
#[tokio::test(start_paused = true)]
async fn a_taken_email_is_named_never_duplicated_nor_taken_over() {
    let (emu, t) = start().await;
    let existing = seeded(&emu, "Taken@x.io");
    let r = apply_all(&t, &[create("taken@x.io", &[])], &ApplyOptions::default()).await;
    let err = r[0].as_ref().unwrap_err();
    assert!(!err.is_ambiguous(), "nothing was written: {err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("id {existing}")) && msg.contains("plan again"),
        "{msg}"
    );
    assert_eq!(emu.users().len(), 1);
    let searches = emu.log().matching(&Match::get("/api/v2/users/search"));
    assert_eq!(searches.len(), 1);
    assert_eq!(searches[0].query("query"), Some("email:taken@x.io"));
}

/// The answer of create_many is lost after the job was queued: each user is looked up by
/// identity, found, and never sent again.
#[tokio::test(start_paused = true)]
async fn a_lost_create_many_answer_is_looked_up_before_anything_else() {
    let (emu, t) = start().await;
    emu.faults()
        .on(Match::post("/api/v2/users/create_many"))
        .inject(Fault::LoseResponse);
    let ops = [create("a@x.io", &[]), create("b@x.io", &[])];
    let r = apply_all(&t, &ops, &ApplyOptions::default()).await;
    assert!(r.iter().all(Result::is_ok), "{r:?}");
    assert_eq!(emu.users().len(), 2);
    assert_eq!(count(&emu, "POST", "/api/v2/users"), 1, "never re-sent");
    assert_eq!(count(&emu, "GET", "/api/v2/users/search"), 2);
}

/// An external-id-only identity is looked up with `external_id=`, exactly.
#[tokio::test(start_paused = true)]
async fn find_uses_search_by_email_or_external_id() {
    let (emu, t) = start().await;
    emu.insert(json!({"name": "A", "email": "a@x.io", "external_id": "HR-1"}));
    emu.insert(json!({"name": "AB", "email": "ab@x.io", "external_id": "hr-10"}));
    let by_ext = t
        .find(&BTreeMap::from([(
            "external_id".to_string(),
            "hr-1".to_string(),
        )]))
        .await
        .unwrap();
    assert_eq!(by_ext.len(), 1, "{by_ext:?}");
    assert_eq!(by_ext[0].fields["email"], "a@x.io");
    let by_email = t
        .find(&BTreeMap::from([(
            "email".to_string(),
            "AB@x.io".to_string(),
        )]))
        .await
        .unwrap();
    assert_eq!(by_email.len(), 1);
    assert_eq!(by_email[0].fields["external_id"], "hr-10");
    let none = t
        .find(&BTreeMap::from([(
            "email".to_string(),
            "zz@x.io".to_string(),
        )]))
        .await
        .unwrap();
    assert!(none.is_empty());
}

/// Without bulk import (403 to create_many), headcount says so once and goes on with one
/// request per user; later batches do not try create_many again.
#[tokio::test(start_paused = true)]
async fn without_bulk_import_creates_fall_back_to_single_requests_and_say_so_once() {
    let (emu, t) = start().await;
    emu.set_bulk_import_enabled(false);
    let (logs, guard) = headcount::testkit::capture::logs();
    let r = apply_all(
        &t,
        &[create("a@x.io", &[]), create("b@x.io", &[])],
        &ApplyOptions::default(),
    )
    .await;
    assert!(r.iter().all(Result::is_ok), "{r:?}");
    let r = apply_all(&t, &[create("c@x.io", &[])], &ApplyOptions::default()).await;
    assert!(r[0].is_ok(), "{r:?}");
    drop(guard);
    assert_eq!(emu.users().len(), 3);
    assert_eq!(count(&emu, "POST", "/api/v2/users/create_many"), 1);
    let singles = emu
        .log()
        .all()
        .iter()
        .filter(|l| l.method == "POST" && l.path == "/api/v2/users")
        .count();
    assert_eq!(singles, 3);
    let text = logs.text();
    assert_eq!(
        text.matches("bulk user import is not enabled").count(),
        1,
        "{text}"
    );
    // The single create carries the user under `user`.
    let single = emu.log().matching(&Match::post("/api/v2/users"));
    assert_eq!(single[0].body.as_ref().unwrap()["user"]["email"], "a@x.io");
}

/// Deactivation suspends, reactivation unsuspends, `removed: delete` deletes; `list` shows
/// a suspended user as inactive.
#[tokio::test(start_paused = true)]
async fn suspend_unsuspend_and_delete() {
    let (emu, t) = start().await;
    let a = seeded(&emu, "a@x.io");
    let b = seeded(&emu, "b@x.io");
    let r = apply_all(&t, &[modify(a, &[], Some(false))], &ApplyOptions::default()).await;
    assert!(r[0].is_ok(), "{r:?}");
    assert_eq!(emu.user("a@x.io").unwrap()["suspended"], true);
    let listed = t.list().await.unwrap();
    assert!(
        !listed
            .iter()
            .find(|l| l.id == a.to_string())
            .unwrap()
            .active
    );
    let r = apply_all(&t, &[modify(a, &[], Some(true))], &ApplyOptions::default()).await;
    assert!(r[0].is_ok(), "{r:?}");
    assert_eq!(emu.user("a@x.io").unwrap()["suspended"], false);
    let r = apply_all(
        &t,
        &[TargetOp::Delete { id: b.to_string() }],
        &ApplyOptions::default(),
    )
    .await;
    assert!(r[0].is_ok(), "{r:?}");
    assert!(emu.user("b@x.io").is_none());
    assert_eq!(
        emu.log()
            .matching(&Match::delete(&format!("/api/v2/users/{b}")))
            .len(),
        1
    );
    let bodies: Vec<Value> = emu
        .log()
        .method("PUT")
        .iter()
        .map(|l| l.body.clone().unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            json!({"users": [{"id": a, "suspended": true}]}),
            json!({"users": [{"id": a, "suspended": false}]})
        ]
    );
}

/// A create of an inactive (pending) user makes it suspended.
#[tokio::test(start_paused = true)]
async fn an_inactive_create_is_suspended() {
    let (emu, t) = start().await;
    let op = TargetOp::Create {
        fields: BTreeMap::from([
            ("email".to_string(), json!("p@x.io")),
            ("name".to_string(), json!("Pending")),
        ]),
        active: false,
        notify: true,
    };
    let r = apply_all(&t, &[op], &ApplyOptions::default()).await;
    assert!(r[0].is_ok(), "{r:?}");
    let u = emu.user("p@x.io").unwrap();
    assert_eq!(u["suspended"], true);
    let sent = &emu.log().method("POST")[0];
    assert!(
        sent.body.as_ref().unwrap()["users"][0]
            .get("skip_verify_email")
            .is_none()
    );
}

/// Organizations: listed once, a new name created once for two users, an existing one found
/// by name (any case), an empty one clears the default organization; `list` shows names.
#[tokio::test(start_paused = true)]
async fn organizations_by_name_created_on_demand_and_cleared_when_empty() {
    let (emu, t) = start().await;
    let support = emu.add_org("Support");
    let kept = seeded(&emu, "kept@x.io");
    emu.edit(kept, json!({"organization_id": support}));
    let ops = [
        create("a@x.io", &[("organization", json!("support"))]),
        create("b@x.io", &[("organization", json!("New Org"))]),
        create("c@x.io", &[("organization", json!("New Org"))]),
        modify(kept, &[("organization", json!(""))], None),
    ];
    let r = apply_all(&t, &ops, &ApplyOptions::default()).await;
    assert!(r.iter().all(Result::is_ok), "{r:?}");
    assert_eq!(count(&emu, "GET", "/api/v2/organizations"), 1);
    assert_eq!(count(&emu, "POST", "/api/v2/organizations"), 1);
    let new_org = emu
        .orgs()
        .into_iter()
        .find(|(_, n)| n == "New Org")
        .unwrap()
        .0;
    assert_eq!(emu.user("a@x.io").unwrap()["organization_id"], support);
    assert_eq!(emu.user("b@x.io").unwrap()["organization_id"], new_org);
    assert_eq!(emu.user("c@x.io").unwrap()["organization_id"], new_org);
    assert_eq!(
        emu.user("kept@x.io").unwrap()["organization_id"],
        Value::Null
    );
    let listed = t.list().await.unwrap();
    let org_of = |email: &str| {
        listed
            .iter()
            .find(|l| l.fields["email"] == email)
            .unwrap()
            .fields["organization"]
            .clone()
    };
    assert_eq!(org_of("a@x.io"), "Support");
    assert_eq!(org_of("b@x.io"), "New Org");
    assert_eq!(org_of("kept@x.io"), Value::Null);
}

/// Fields as `list` shows them and as updates write them: role, custom role id, phone,
/// external id, user fields.
#[tokio::test(start_paused = true)]
async fn fields_round_trip_and_a_changed_name_updates() {
    let (emu, t) = start().await;
    let op = create(
        "a@x.io",
        &[
            ("role", json!("agent")),
            ("custom_role_id", json!(7)),
            ("phone", json!("+15551234567")),
            ("external_id", json!("hr-1")),
            ("user_fields.department", json!("Ops")),
        ],
    );
    let id = apply_all(&t, &[op], &ApplyOptions::default()).await[0]
        .clone()
        .unwrap();
    let acc = t.list().await.unwrap().remove(0);
    assert_eq!(acc.id, id);
    assert!(acc.active);
    for (k, v) in [
        ("email", json!("a@x.io")),
        ("name", json!("Name of a@x.io")),
        ("role", json!("agent")),
        ("custom_role_id", json!(7)),
        ("phone", json!("+15551234567")),
        ("external_id", json!("hr-1")),
        ("organization", Value::Null),
        ("user_fields.department", json!("Ops")),
    ] {
        assert_eq!(acc.fields[k], v, "{k}: {acc:?}");
    }
    let id: i64 = id.parse().unwrap();
    let r = apply_all(
        &t,
        &[modify(
            id,
            &[
                ("name", json!("New Name")),
                ("phone", Value::Null),
                ("user_fields.department", json!("Sales")),
            ],
            None,
        )],
        &ApplyOptions::default(),
    )
    .await;
    assert!(r[0].is_ok(), "{r:?}");
    let u = emu.user("a@x.io").unwrap();
    assert_eq!(u["name"], "New Name");
    assert_eq!(u["phone"], Value::Null);
    assert_eq!(u["user_fields"]["department"], "Sales");
}

/// A changed email is refused before anything is sent, saying why and what to do.
#[tokio::test]
async fn a_changed_email_is_a_clear_error() {
    let (emu, t) = start().await;
    let a = seeded(&emu, "a@x.io");
    let r = apply_all(
        &t,
        &[modify(a, &[("email", json!("new@x.io"))], None)],
        &ApplyOptions::default(),
    )
    .await;
    let msg = r[0].as_ref().unwrap_err().to_string();
    assert!(msg.contains("secondary email"), "{msg}");
    assert!(msg.contains("primary"), "{msg}");
    assert!(emu.log().writes().is_empty());
}

/// A job that never finishes is polled with backoff up to the limit, then its changes are
/// of unknown outcome (creates are looked up first): never reported as failed or done.
#[tokio::test(start_paused = true)]
async fn a_job_that_never_ends_is_bounded_and_unknown() {
    let (emu, t) = start().await;
    emu.set_job_polls(usize::MAX);
    let a = seeded(&emu, "a@x.io");
    let r = apply_all(
        &t,
        &[modify(a, &[("name", json!("X"))], None)],
        &ApplyOptions::default(),
    )
    .await;
    let err = r[0].as_ref().unwrap_err();
    assert!(err.is_ambiguous(), "{err:?}");
    assert!(err.to_string().contains("job_statuses"), "{err}");
    let polls = count(&emu, "GET", "/api/v2/job_statuses/");
    assert!((80..=100).contains(&polls), "polls: {polls}");
}

/// Zendesk's error bodies read as one message with the details, the 401 explained.
#[tokio::test]
async fn error_bodies_are_clear_messages() {
    let (emu, t) = start().await;
    emu.set_bulk_import_enabled(false);
    let r = apply_all(
        &t,
        &[create("x@x.io", &[("role", json!("boss"))])],
        &ApplyOptions::default(),
    )
    .await;
    let msg = r[0].as_ref().unwrap_err().to_string();
    assert!(
        msg.contains("RecordInvalid: Record validation errors: role: Role: boss is not valid"),
        "{msg}"
    );
    let wrong = ZendeskTarget::new(emu.client_builder(AGENT, "wrong").build().unwrap(), vec![]);
    let err = wrong.list().await.unwrap_err();
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
    assert!(
        err.to_string().contains("Couldn't authenticate you"),
        "{err}"
    );
    assert!(
        err.to_string().contains("Zendesk API"),
        "where tokens live: {err}"
    );
    let source = ZendeskSource::new(
        emu.client_builder(AGENT, "wrong").build().unwrap(),
        vec![],
        vec![],
    );
    let err = source.read().await.unwrap_err();
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains("token access"), "{err}");
    // A 403 to a write says which role the token's agent needs.
    emu.faults()
        .on(Match::method("PUT"))
        .always()
        .inject(Fault::status(403));
    let a = seeded(&emu, "a@x.io");
    let r = apply_all(
        &t,
        &[modify(a, &[("name", json!("A2"))], None)],
        &ApplyOptions::default(),
    )
    .await;
    let err = r[0].as_ref().unwrap_err();
    assert!(matches!(err, ConnectorError::Permission { .. }), "{err:?}");
    assert!(err.to_string().contains("needs an admin"), "{err}");
}

/// The source reads the configured roles in one series and each custom role in its own,
/// each user once; `probe` reads one page per series; nothing is ever written.
#[tokio::test]
async fn the_source_filters_by_role_and_custom_role() {
    let emu = ZendeskEmulator::start(AGENT, TOKEN).await;
    for n in 0..120 {
        emu.insert(
            json!({"name": format!("A{n}"), "email": format!("a{n}@x.io"), "role": "agent"}),
        );
    }
    emu.insert(json!({"name": "Admin", "email": "boss@x.io", "role": "admin"}));
    emu.insert(json!({"name": "Custom", "email": "c@x.io", "role": "agent", "custom_role_id": 7}));
    emu.insert(json!({"name": "Light", "email": "l@x.io", "role": "agent", "custom_role_id": 8}));
    emu.insert(json!({"name": "End", "email": "e@x.io", "role": "end-user"}));
    let client = || emu.client_builder(AGENT, TOKEN).build().unwrap();

    let only_custom = ZendeskSource::new(client(), vec![], vec![7, 8]);
    let records = only_custom.read().await.unwrap();
    let labels: Vec<&str> = records.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["c@x.io", "l@x.io"]);
    assert_eq!(records[0].data["custom_role_id"], 7);

    emu.log().clear();
    let both = ZendeskSource::new(client(), vec!["admin".into(), "agent".into()], vec![7]);
    let records = both.read().await.unwrap();
    assert_eq!(records.len(), 123, "every agent and admin once");
    assert_eq!(emu.log().count(), 3, "{:?}", emu.log().lines());
    assert!(emu.log().writes().is_empty());

    emu.log().clear();
    let probed = both.probe().await.unwrap();
    assert_eq!(probed.len(), 101, "the first page of each series");
    assert_eq!(
        emu.log().lines(),
        [
            "GET /api/v2/users?role[]=admin&role[]=agent&page[size]=100",
            "GET /api/v2/users?permission_set=7&page[size]=100",
        ]
    );

    let everyone = ZendeskSource::new(client(), vec![], vec![]);
    assert_eq!(everyone.read().await.unwrap().len(), 124, "end-users too");
}

/// A `403` to update_many falls back to one `PUT /api/v2/users/{id}` per user.
#[tokio::test(start_paused = true)]
async fn a_refused_update_many_falls_back_to_single_updates() {
    let (emu, t) = start().await;
    let a = seeded(&emu, "a@x.io");
    let b = seeded(&emu, "b@x.io");
    emu.faults()
        .on(Match::method("PUT").path("/api/v2/users/update_many"))
        .inject(Fault::status(403));
    let ops = [
        modify(a, &[("name", json!("A2"))], None),
        modify(b, &[], Some(false)),
    ];
    let r = apply_all(&t, &ops, &ApplyOptions::default()).await;
    assert!(r.iter().all(Result::is_ok), "{r:?}");
    assert_eq!(emu.user("a@x.io").unwrap()["name"], "A2");
    assert_eq!(emu.user("b@x.io").unwrap()["suspended"], true);
    let puts: Vec<String> = emu
        .log()
        .method("PUT")
        .iter()
        .map(|l| l.path.clone())
        .collect();
    assert_eq!(
        puts,
        [
            "/api/v2/users/update_many".to_string(),
            format!("/api/v2/users/{a}"),
            format!("/api/v2/users/{b}"),
        ]
    );
}

/// A `429` to create_many is waited out (Retry-After) and sent again: it was refused
/// unprocessed, so resending cannot duplicate.
#[tokio::test(start_paused = true)]
async fn a_throttled_create_many_waits_for_retry_after() {
    let (emu, t) = start().await;
    emu.faults()
        .on(Match::post("/api/v2/users/create_many"))
        .inject(Fault::too_many_requests(3));
    let r = apply_all(&t, &[create("a@x.io", &[])], &ApplyOptions::default()).await;
    assert!(r[0].is_ok(), "{r:?}");
    let posts = emu.log().method("POST");
    assert_eq!(posts.len(), 2);
    assert!(posts[1].at - posts[0].at >= std::time::Duration::from_secs(3));
    assert_eq!(emu.users().len(), 1);
}

/// A job whose status cannot be read (a proxy's HTML page on every poll) may still have
/// run: its creates are looked up (found: done), its updates are of unknown outcome.
#[tokio::test(start_paused = true)]
async fn an_unreadable_job_status_is_never_taken_for_a_failure() {
    let (emu, t) = start().await;
    let a = seeded(&emu, "a@x.io");
    emu.faults()
        .on(Match::method("GET").path_contains("/api/v2/job_statuses/"))
        .always()
        .inject(Fault::html_error_page());
    let ops = [
        create("new@x.io", &[]),
        modify(a, &[("name", json!("A2"))], None),
    ];
    let r = apply_all(&t, &ops, &ApplyOptions::default()).await;
    let created = r[0].as_ref().unwrap();
    assert_eq!(&emu.user("new@x.io").unwrap()["id"].to_string(), created);
    let err = r[1].as_ref().unwrap_err();
    assert!(err.is_ambiguous(), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("update_many job"), "{msg}");
    assert!(!msg.to_lowercase().contains("<html"), "{msg}");
    assert_eq!(emu.users().len(), 2);
}

/// The connector's own client: Basic auth as `{email}/token`, and a 429 without Retry-After
/// waits for Zendesk's `ratelimit-reset`.
#[tokio::test(start_paused = true)]
async fn the_connector_client_authenticates_and_waits_for_ratelimit_reset() {
    let emu = ZendeskEmulator::start(AGENT, TOKEN).await;
    seeded(&emu, "a@x.io");
    emu.faults()
        .on(Match::get("/api/v2/users"))
        .inject(Fault::Answer {
            status: 429,
            headers: vec![("ratelimit-reset".into(), "4".into())],
            body: String::new(),
        });
    let client = headcount::connectors::zendesk::client(
        "zendesk target `t`",
        &emu.base_url(),
        AGENT,
        secrecy::SecretString::from(TOKEN.to_string()),
        headcount::model::HttpSettings::default(),
    )
    .unwrap()
    .unlimited()
    .retry_policy(headcount::testkit::fast_policy())
    .build()
    .unwrap();
    let t = ZendeskTarget::new(client, vec![]);
    assert_eq!(t.list().await.unwrap().len(), 1);
    let gets = emu.log().matching(&Match::get("/api/v2/users"));
    assert_eq!(gets.len(), 2);
    assert!(gets[1].at - gets[0].at >= std::time::Duration::from_secs(4));
}

/// The emulator keeps Zendesk's own rules: `page[size]` at most 100, offset paging limited
/// to 10,000 records, a `401` for wrong credentials.
#[tokio::test]
async fn the_emulator_keeps_zendesks_rules() {
    use headcount::http::Request;
    let emu = ZendeskEmulator::start(AGENT, TOKEN).await;
    for n in 0..3 {
        seeded(&emu, &format!("u{n}@x.io"));
    }
    let client = emu.client_builder(AGENT, TOKEN).build().unwrap();
    let err = client
        .send(Request::get("api/v2/users").query("page[size]", 101))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    let err = client
        .send(Request::get("api/v2/users").query("page", 101))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    let page: Value = client
        .send_json(Request::get("api/v2/users").query("per_page", 2))
        .await
        .unwrap();
    assert_eq!(page["users"].as_array().unwrap().len(), 2);
    assert_eq!(page["count"], 3);
    assert!(page["next_page"].as_str().unwrap().contains("page=2"));
    let wrong = emu.client_builder(AGENT, "nope").build().unwrap();
    let err = wrong.send(Request::get("api/v2/users")).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(
        err.to_string().contains("Couldn't authenticate you"),
        "{err}"
    );
}
