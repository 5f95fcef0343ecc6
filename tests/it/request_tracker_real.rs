//! `request_tracker` behaviours against the real RT 5 (`scripts/start-rt.sh`) that the
//! compliance suite does not reach: the exact requests of a list, RT's flags read faithfully,
//! failures hidden in a 200 answer, ETag / 412, "already in use" creates, deletes refused,
//! `find`, Retry-After in real time. Each test uses its own user-name prefix (RT's user table
//! is shared); the ones that count requests over the whole table hold `exclusive()`.

use std::collections::BTreeMap;
use std::time::Duration;

use headcount::connectors::request_tracker::RequestTrackerTarget;
use headcount::connectors::{ApplyOptions, ConnectorError, Target, TargetOp};
use headcount::testkit::compliance::apply_all;
use headcount::testkit::{Fault, Match, Served};
use serde_json::{Value, json};

use crate::support::rt_server::{self, Admin, RtServer, user_body};

struct Case {
    served: Served,
    target: RequestTrackerTarget,
    admin: Admin,
    prefix: String,
    server: &'static RtServer,
    /// Every test here writes users, and one counts the whole table: one at a time.
    _one: tokio::sync::OwnedMutexGuard<()>,
}

async fn case(label: &str) -> Option<Case> {
    let server = rt_server::server()?;
    let one = rt_server::exclusive().lock_owned().await;
    let served = rt_server::proxy(server).await;
    let target = RequestTrackerTarget::new(rt_server::client(&served.origin, &server.token));
    Some(Case {
        target,
        admin: Admin::new(server),
        prefix: rt_server::prefix(label),
        served,
        server,
        _one: one,
    })
}

impl Case {
    fn name(&self, n: usize) -> String {
        format!("{}{n}", self.prefix)
    }

    /// The numeric id of one of this test's users.
    async fn id(&self, n: usize) -> String {
        let u = self.admin.user(&self.name(n)).await.unwrap();
        u["id"].to_string()
    }

    async fn live(&self, n: usize) -> headcount::connectors::LiveAccount {
        let id = self.id(n).await;
        self.target
            .list()
            .await
            .unwrap()
            .into_iter()
            .find(|a| a.id == id)
            .unwrap()
    }
}

fn modify(id: &str, fields: &[(&str, Value)], expected: &[(&str, Value)]) -> TargetOp {
    let map = |kv: &[(&str, Value)]| {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    TargetOp::Modify {
        id: id.to_string(),
        fields: map(fields),
        expected: map(expected),
        active: None,
        removal: false,
    }
}

async fn apply_one(t: &RequestTrackerTarget, op: TargetOp) -> Result<String, ConnectorError> {
    apply_all(t, &[op], &ApplyOptions::default())
        .await
        .remove(0)
}

#[tokio::test]
async fn list_reads_every_page_and_each_user_once() {
    let Some(c) = case("page").await else { return };
    for i in 0..3 {
        c.admin.create(user_body(&c.prefix, i)).await;
    }
    let target = RequestTrackerTarget::new(rt_server::client(&c.served.origin, &c.server.token))
        .with_per_page(2);
    let all = c.admin.all_users().await;
    let listed = target.list().await.unwrap();
    let users: Vec<&(String, String)> = all
        .iter()
        .filter(|(_, n)| n != "RT_System" && n != "Nobody")
        .collect();
    assert_eq!(listed.len(), users.len(), "{listed:?}");
    assert!(
        listed
            .iter()
            .all(|a| !matches!(a.fields["Name"].as_str(), Some("RT_System" | "Nobody"))),
        "system users are never manageable accounts"
    );
    let gets = c.served.log.method("GET");
    let pages = all.len().div_ceil(2);
    let collection: Vec<String> = gets
        .iter()
        .filter(|l| l.path == "/REST/2.0/users")
        .map(|l| l.line())
        .collect();
    let expected: Vec<String> = (1..=pages)
        .map(|p| {
            format!("GET /REST/2.0/users?fields=id,Name&find_disabled_rows=1&per_page=2&page={p}")
        })
        .collect();
    assert_eq!(collection, expected);
    let mut singles: Vec<String> = gets
        .iter()
        .filter(|l| l.path.starts_with("/REST/2.0/user/"))
        .map(|l| l.path.clone())
        .collect();
    singles.sort();
    let mut want: Vec<String> = users
        .iter()
        .map(|(id, _)| format!("/REST/2.0/user/{id}"))
        .collect();
    want.sort();
    assert_eq!(singles, want, "one GET per user, no more");
    assert_eq!(gets.len(), pages + users.len(), "ceil(N/100) + N requests");
    assert!(
        gets.iter()
            .all(|l| l.header("authorization") == Some(&format!("token {}", c.server.token))),
        "every request carries `Authorization: token ...`"
    );
}

#[tokio::test]
async fn privileged_and_disabled_are_read_as_rt_holds_them() {
    let Some(c) = case("flags").await else { return };
    let mut body = user_body(&c.prefix, 0);
    body["Privileged"] = json!(1);
    body["Disabled"] = json!(1);
    body["Comments"] = json!("first\nsecond");
    c.admin.create(body).await;
    c.admin.create(user_body(&c.prefix, 1)).await;
    let a = c.live(0).await;
    assert!(!a.active, "{a:?}");
    assert_eq!(a.fields["Privileged"], json!(true));
    assert_eq!(a.fields["Comments"], json!("first\nsecond"));
    assert_eq!(a.fields["WorkPhone"], Value::Null);
    let b = c.live(1).await;
    assert!(b.active, "{b:?}");
    assert_eq!(b.fields["Privileged"], json!(false));
    assert_eq!(
        b.fields["EmailAddress"],
        json!(format!("{}1@example.com", c.prefix))
    );
}

#[tokio::test]
async fn a_refusal_inside_a_200_answer_is_reported() {
    let Some(c) = case("refuse").await else {
        return;
    };
    c.admin.create(user_body(&c.prefix, 0)).await;
    c.admin.create(user_body(&c.prefix, 1)).await;
    let id = c.id(0).await;
    let taken = format!("{}1@example.com", c.prefix);
    let err = apply_one(
        &c.target,
        modify(
            &id,
            &[("EmailAddress", json!(taken)), ("RealName", json!("Zed"))],
            &[],
        ),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            ConnectorError::Rejected {
                status: Some(200),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(text.contains("did not set EmailAddress"), "{text}");
    assert!(text.contains("Email address in use"), "{text}");
    assert!(!text.contains("RealName,"), "RealName was taken: {text}");
    let u = c.admin.user(&c.name(0)).await.unwrap();
    assert_eq!(u["RealName"], "Zed");
    assert_eq!(
        u["EmailAddress"],
        json!(format!("{}0@example.com", c.prefix))
    );
}

#[tokio::test]
async fn updates_send_only_the_changed_fields_with_if_match() {
    let Some(c) = case("upd").await else { return };
    c.admin.create(user_body(&c.prefix, 0)).await;
    let id = c.live(0).await.id;
    apply_one(
        &c.target,
        modify(
            &id,
            &[
                ("WorkPhone", json!("+1 555 0101")),
                ("Privileged", json!(true)),
            ],
            &[("WorkPhone", Value::Null), ("Privileged", json!(false))],
        ),
    )
    .await
    .unwrap();
    let puts = c.served.log.method("PUT");
    assert_eq!(puts.len(), 1);
    assert_eq!(
        puts[0].body.clone().unwrap(),
        json!({"Privileged": 1, "WorkPhone": "+1 555 0101"})
    );
    assert!(puts[0].header("if-match").is_some(), "{:?}", puts[0]);
    let a = c.live(0).await;
    assert_eq!(a.fields["Privileged"], json!(true));
    assert_eq!(a.fields["WorkPhone"], json!("+1 555 0101"));
    // Disable, then enable: `Disabled` 1 / 0.
    for active in [false, true] {
        let op = TargetOp::Modify {
            id: id.clone(),
            fields: BTreeMap::new(),
            expected: BTreeMap::new(),
            active: Some(active),
            removal: !active,
        };
        apply_one(&c.target, op).await.unwrap();
        assert_eq!(c.live(0).await.active, active);
    }
}

#[tokio::test]
async fn a_412_rereads_and_retries_once_or_asks_for_a_new_plan() {
    let Some(c) = case("etag").await else { return };
    c.admin.create(user_body(&c.prefix, 0)).await;
    let id = c.live(0).await.id; // remembers the ETag
    // Someone changes another field: the planned value still holds, so one retry succeeds.
    c.admin
        .update(&c.name(0), json!({"Organization": "Elsewhere"}))
        .await;
    apply_one(
        &c.target,
        modify(
            &id,
            &[("RealName", json!("New"))],
            &[("RealName", json!("User 0"))],
        ),
    )
    .await
    .unwrap();
    let puts = c.served.log.method("PUT");
    assert_eq!(puts.len(), 2, "{:?}", c.served.log.lines());
    assert_ne!(puts[0].header("if-match"), puts[1].header("if-match"));
    assert_eq!(c.admin.user(&c.name(0)).await.unwrap()["RealName"], "New");
    // Someone changes the planned field itself: no overwrite, a new plan is asked for.
    c.admin
        .update(&c.name(0), json!({"RealName": "Theirs"}))
        .await;
    let err = apply_one(
        &c.target,
        modify(
            &id,
            &[("RealName", json!("Mine"))],
            &[("RealName", json!("New"))],
        ),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("RealName changed in RT since the plan"),
        "{err}"
    );
    assert_eq!(
        c.admin.user(&c.name(0)).await.unwrap()["RealName"],
        "Theirs"
    );
}

#[tokio::test]
async fn a_create_of_a_name_in_use_names_the_holder_and_makes_no_duplicate() {
    let Some(c) = case("dup").await else { return };
    c.admin.create(user_body(&c.prefix, 0)).await;
    let holder = c.id(0).await;
    let op = TargetOp::Create {
        fields: BTreeMap::from([
            ("Name".to_string(), json!(c.name(0))),
            (
                "EmailAddress".to_string(),
                json!(format!("other-{}0@example.com", c.prefix)),
            ),
        ]),
        active: true,
        notify: false,
    };
    let err = apply_one(&c.target, op).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("Name in use"), "{text}");
    assert!(
        text.contains(&format!("RT already has user {holder}")),
        "{text}"
    );
    let mine = c
        .admin
        .all_users()
        .await
        .into_iter()
        .filter(|(_, n)| n.starts_with(&c.prefix))
        .count();
    assert_eq!(mine, 1);
    // A value RT refuses outright is RT's own message.
    let bad = TargetOp::Create {
        fields: BTreeMap::from([
            ("Name".to_string(), json!(c.name(5))),
            ("EmailAddress".to_string(), json!("not an address")),
        ]),
        active: true,
        notify: false,
    };
    let err = apply_one(&c.target, bad).await.unwrap_err().to_string();
    assert!(err.contains("Invalid syntax for email address"), "{err}");
}

#[tokio::test]
async fn deletes_are_refused_and_nothing_is_sent() {
    let Some(c) = case("del").await else { return };
    c.admin.create(user_body(&c.prefix, 0)).await;
    let id = c.id(0).await;
    let err = apply_one(&c.target, TargetOp::Delete { id })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("never deletes users"), "{err}");
    assert!(c.served.log.writes().is_empty());
    assert!(c.admin.user(&c.name(0)).await.unwrap()["Disabled"] == "0");
}

#[tokio::test]
async fn find_searches_email_and_name_disabled_users_included() {
    let Some(c) = case("find").await else { return };
    let mut body = user_body(&c.prefix, 0);
    body["Disabled"] = json!(1);
    c.admin.create(body).await;
    let id = c.id(0).await;
    let by_email = BTreeMap::from([(
        "EmailAddress".to_string(),
        format!("{}0@EXAMPLE.com", c.prefix).to_uppercase(),
    )]);
    let found = c.target.find(&by_email).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, id);
    assert!(!found[0].active);
    let by_name = BTreeMap::from([("Name".to_string(), c.name(0))]);
    assert_eq!(c.target.find(&by_name).await.unwrap()[0].id, id);
    let nobody = BTreeMap::from([("Name".to_string(), c.name(9))]);
    assert!(c.target.find(&nobody).await.unwrap().is_empty());
    let posts = c.served.log.method("POST");
    assert!(
        posts.iter().all(|l| l.path == "/REST/2.0/users"),
        "searches only"
    );
    assert_eq!(
        posts[0].body.clone().unwrap(),
        json!([{"field": "EmailAddress", "value": by_email["EmailAddress"]}])
    );
}

/// Real time, not the paused clock (a real server cannot run under it): a 1 s Retry-After.
#[tokio::test]
async fn retry_after_is_honoured() {
    let Some(c) = case("429").await else { return };
    c.served
        .faults
        .on(Match::get("/REST/2.0/users"))
        .inject(Fault::too_many_requests(1));
    c.target.list().await.unwrap();
    let lists: Vec<_> = c
        .served
        .log
        .all()
        .into_iter()
        .filter(|l| l.path == "/REST/2.0/users" && l.query("page") == Some("1"))
        .collect();
    assert_eq!(lists.len(), 2, "{:?}", c.served.log.lines());
    assert_eq!(lists[0].fault, Some("429"));
    assert!(lists[1].at - lists[0].at >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_wrong_token_is_a_clear_auth_error() {
    let Some(c) = case("auth").await else { return };
    let t = RequestTrackerTarget::new(rt_server::client(&c.served.origin, "1-1-wrong"));
    let err = t.list().await.unwrap_err();
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("GET /REST/2.0/users") && text.contains("401"),
        "{text}"
    );
}

#[tokio::test]
async fn a_lost_create_is_looked_up_before_anything_is_resent() {
    let Some(c) = case("lost").await else { return };
    c.served
        .faults
        .on(Match::post("/REST/2.0/user"))
        .inject(Fault::LoseResponse);
    let op = TargetOp::Create {
        fields: BTreeMap::from([
            ("Name".to_string(), json!(c.name(0))),
            (
                "EmailAddress".to_string(),
                json!(format!("{}0@example.com", c.prefix)),
            ),
        ]),
        active: true,
        notify: false,
    };
    let id = apply_one(&c.target, op).await.unwrap();
    assert_eq!(id, c.id(0).await);
    let posts: Vec<String> = c
        .served
        .log
        .method("POST")
        .iter()
        .map(|l| l.path.clone())
        .collect();
    assert_eq!(
        posts,
        ["/REST/2.0/user", "/REST/2.0/users", "/REST/2.0/users"],
        "one create, then the searches by EmailAddress and Name; never a second create"
    );
}

#[tokio::test]
async fn a_bad_answer_for_one_user_is_an_error_naming_that_request() {
    let Some(c) = case("badone").await else {
        return;
    };
    c.admin.create(user_body(&c.prefix, 0)).await;
    let id = c.id(0).await;
    let path = format!("/REST/2.0/user/{id}");
    for fault in [Fault::html_error_page(), Fault::unexpected_json()] {
        c.served.faults.clear();
        c.served.faults.on(Match::get(&path)).always().inject(fault);
        let err = c.target.list().await.unwrap_err().to_string();
        assert!(err.contains(&format!("GET {path}")), "{err}");
        assert!(!err.to_lowercase().contains("<html"), "{err}");
    }
}
