//! The `google_workspace` source against the Google emulator: paging, records as the API
//! returns them, nested groups (each listed once, cycles safe), custom schemas, one token per
//! read, and the source as the config builds it (key file, scopes in the JWT).

use std::path::Path;

use base64::Engine as _;
use headcount::connectors::google::{GoogleWorkspaceConfig, Listing};
use headcount::connectors::spec::SourceSpec;
use headcount::connectors::{BuildContext, ClientPool, Source};
use headcount::testkit::google::{ADMIN, CLIENT_EMAIL, GoogleEmulator};
use serde_json::{Value, json};

fn user(email: &str, extra: Value) -> Value {
    let mut u = json!({"primaryEmail": email,
        "name": {"givenName": email.split('@').next().unwrap(), "familyName": "Doe"}});
    for (k, v) in extra.as_object().unwrap() {
        u[k] = v.clone();
    }
    u
}

fn groups(records: &[headcount::connectors::SourceRecord], email: &str) -> Vec<String> {
    let r = records
        .iter()
        .find(|r| r.label == email)
        .unwrap_or_else(|| panic!("{email} not read"));
    r.data["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap().to_string())
        .collect()
}

fn with_groups(g: &[&str]) -> Listing {
    Listing {
        groups: g.iter().map(|s| s.to_string()).collect(),
        ..Listing::default()
    }
}

/// Every page, suspended and archived users kept as records, the fields as Google gives them,
/// `groups` present (empty) without `groups:`; one token for the whole read.
#[tokio::test]
async fn every_page_and_every_user_one_token_per_read() {
    let emu = GoogleEmulator::start().await;
    emu.insert_user(user("ann@example.com", json!({"orgUnitPath": "/Support"})));
    emu.insert_user(user("bob@example.com", json!({"suspended": true})));
    emu.insert_user(user("cid@example.com", json!({"archived": true})));
    emu.insert_user(user("dee@example.com", json!({})));
    emu.insert_user(user("eve@example.com", json!({})));
    emu.set_page_cap(Some(2));
    let source = emu.source(Listing::default());
    let records = source.read().await.unwrap();
    let labels: Vec<_> = records.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "ann@example.com",
            "bob@example.com",
            "cid@example.com",
            "dee@example.com",
            "eve@example.com"
        ]
    );
    assert_eq!(records[1].data["suspended"], true);
    assert_eq!(records[2].data["archived"], true);
    assert_eq!(records[0].data["orgUnitPath"], "/Support");
    assert_eq!(records[0].data["name"]["fullName"], "ann Doe");
    assert_eq!(records[0].data["groups"], json!([]));
    let lines = emu.log().lines();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("POST /token"))
            .count(),
        1,
        "{lines:?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("GET ")).count(),
        3,
        "{lines:?}"
    );
    // Every API request carries the token; a second read reuses it.
    for l in emu.log().method("GET") {
        assert!(
            l.header("authorization")
                .unwrap()
                .starts_with("Bearer ya29.emu-")
        );
    }
    source.read().await.unwrap();
    assert_eq!(emu.tokens_issued(), 1);
}

/// `domain` instead of `customer`, the query passed as written and understood by the
/// emulator's subset (`isSuspended=`, `orgUnitPath=`, `email:`).
#[tokio::test]
async fn domain_and_query_narrow_the_list() {
    let emu = GoogleEmulator::start().await;
    emu.insert_user(user(
        "ann@example.com",
        json!({"orgUnitPath": "/Support/EU"}),
    ));
    emu.insert_user(user(
        "bob@example.com",
        json!({"orgUnitPath": "/Support", "suspended": true}),
    ));
    emu.insert_user(user("cid@example.com", json!({"orgUnitPath": "/Sales"})));
    emu.insert_user(user("dan@other.org", json!({"orgUnitPath": "/Support"})));
    let read = |listing: Listing| {
        let source = emu.source(listing);
        async move {
            source
                .read()
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.label)
                .collect::<Vec<_>>()
        }
    };
    let l = Listing {
        domain: Some("example.com".into()),
        query: Some("orgUnitPath='/Support' isSuspended=false".into()),
        ..Listing::default()
    };
    assert_eq!(read(l).await, ["ann@example.com"]);
    let l = Listing {
        query: Some("email:b*".into()),
        ..Listing::default()
    };
    assert_eq!(read(l).await, ["bob@example.com"]);
    let lines = emu.log().lines();
    assert!(
        lines.contains(&"GET /admin/directory/v1/users?domain=example.com&query=orgUnitPath='/Support' isSuspended=false&maxResults=500&projection=full".to_string()),
        "{lines:?}"
    );
}

/// Nested groups are flattened, a cycle ends, each group is listed once per read even when
/// nested under two configured groups, and a user in no configured group has `groups: []`.
#[tokio::test]
async fn nested_groups_each_listed_once_cycles_safe() {
    let emu = GoogleEmulator::start().await;
    for u in ["ann", "bob", "cid", "dee", "eve"] {
        emu.insert_user(user(&format!("{u}@example.com"), json!({})));
    }
    // support ⊃ {ann, tier2}; tier2 ⊃ {bob, support (cycle)}; staff ⊃ {cid, tier2, managers}
    // managers ⊃ {dee}; eve in nothing.
    emu.set_group(
        "support@example.com",
        &[("ann@example.com", "USER"), ("tier2@example.com", "GROUP")],
    );
    emu.set_group(
        "tier2@example.com",
        &[
            ("bob@example.com", "USER"),
            ("support@example.com", "GROUP"),
        ],
    );
    emu.set_group(
        "staff@example.com",
        &[
            ("cid@example.com", "USER"),
            ("tier2@example.com", "GROUP"),
            ("managers@example.com", "GROUP"),
        ],
    );
    emu.set_group("managers@example.com", &[("Dee@Example.com", "USER")]);
    let source = emu.source(with_groups(&["support@example.com", "staff@example.com"]));
    let records = source.read().await.unwrap();
    // ann is in support, which is in tier2 (the cycle), which is in staff.
    assert_eq!(
        groups(&records, "ann@example.com"),
        ["support@example.com", "staff@example.com"]
    );
    assert_eq!(
        groups(&records, "bob@example.com"),
        ["support@example.com", "staff@example.com"]
    );
    assert_eq!(groups(&records, "cid@example.com"), ["staff@example.com"]);
    assert_eq!(groups(&records, "dee@example.com"), ["staff@example.com"]);
    assert_eq!(groups(&records, "eve@example.com"), Vec::<String>::new());
    let member_lists: Vec<String> = emu
        .log()
        .lines()
        .into_iter()
        .filter(|l| l.contains("/members"))
        .collect();
    assert_eq!(member_lists.len(), 4, "each group once: {member_lists:?}");
    for g in ["support", "tier2", "staff", "managers"] {
        assert!(
            member_lists.contains(&format!(
                "GET /admin/directory/v1/groups/{g}@example.com/members?maxResults=200"
            )),
            "{member_lists:?}"
        );
    }
}

/// A group's members span pages (`maxResults=200`, then `pageToken`), all read; a missing
/// group is an error naming it, never a read without it.
#[tokio::test]
async fn members_pages_are_followed_and_a_missing_group_is_an_error() {
    let emu = GoogleEmulator::start().await;
    let emails: Vec<String> = (0..5).map(|i| format!("u{i}@example.com")).collect();
    for e in &emails {
        emu.insert_user(user(e, json!({})));
    }
    let members: Vec<(&str, &str)> = emails.iter().map(|e| (e.as_str(), "USER")).collect();
    emu.set_group("all@example.com", &members);
    emu.set_page_cap(Some(2));
    let records = emu
        .source(with_groups(&["all@example.com"]))
        .read()
        .await
        .unwrap();
    assert!(
        records
            .iter()
            .all(|r| r.data["groups"] == json!(["all@example.com"]))
    );
    let member_pages = emu
        .log()
        .lines()
        .into_iter()
        .filter(|l| l.contains("/members"))
        .count();
    assert_eq!(member_pages, 3);

    let err = emu
        .source(with_groups(&["gone@example.com"]))
        .read()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "not_found");
    let text = err.to_string();
    assert!(
        text.contains("group gone@example.com (in `groups`) does not exist"),
        "{text}"
    );
}

/// `custom_field_mask`: `projection=custom` with the mask, only those schemas; without it,
/// `projection=full` returns every schema.
#[tokio::test]
async fn custom_schemas_follow_the_projection() {
    let emu = GoogleEmulator::start().await;
    emu.insert_user(user(
        "ann@example.com",
        json!({"customSchemas": {"HR": {"costCenter": "42"}, "Badge": {"no": 7}}}),
    ));
    let masked = emu
        .source(Listing {
            custom_field_mask: Some("HR".into()),
            ..Listing::default()
        })
        .read()
        .await
        .unwrap();
    assert_eq!(
        masked[0].data["customSchemas"],
        json!({"HR": {"costCenter": "42"}})
    );
    let full = emu.source(Listing::default()).read().await.unwrap();
    assert_eq!(full[0].data["customSchemas"]["Badge"]["no"], 7);
    let lines = emu.log().lines();
    assert!(
        lines.contains(&"GET /admin/directory/v1/users?customer=my_customer&maxResults=500&projection=custom&customFieldMask=HR".to_string()),
        "{lines:?}"
    );
}

/// `probe` (validate --online): the first page of users and of each configured group, no more.
#[tokio::test]
async fn probe_reads_one_page_of_users_and_of_each_group() {
    let emu = GoogleEmulator::start().await;
    for i in 0..5 {
        emu.insert_user(user(&format!("u{i}@example.com"), json!({})));
    }
    emu.set_group(
        "a@example.com",
        &[
            ("u0@example.com", "USER"),
            ("u1@example.com", "USER"),
            ("u2@example.com", "USER"),
        ],
    );
    emu.set_group(
        "b@example.com",
        &[("u3@example.com", "USER"), ("n@example.com", "GROUP")],
    );
    emu.set_page_cap(Some(2));
    let records = emu
        .source(with_groups(&["a@example.com", "b@example.com"]))
        .probe()
        .await
        .unwrap();
    assert_eq!(records.len(), 2);
    let gets: Vec<String> = emu.log().method("GET").iter().map(|l| l.line()).collect();
    assert_eq!(gets.len(), 3, "{gets:?}");
}

/// Built from the config with a key file: the JWT is signed for the key's client, acts as the
/// subject, asks exactly the read-only scopes the config needs (space-delimited), lives at most
/// an hour, and is sent to the key's `token_uri` (or `token_url`).
#[tokio::test]
async fn built_from_config_the_jwt_has_the_expected_claims() {
    let emu = GoogleEmulator::start().await;
    emu.insert_user(user("ann@example.com", json!({})));
    emu.set_group("staff@example.com", &[("ann@example.com", "USER")]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sa.json"), emu.key_json()).unwrap();
    let source = build(
        dir.path(),
        json!({"customer": "my_customer", "base_url": emu.base_url(), "groups": ["staff@example.com"],
            "credentials": {"service_account_key": {"file": "sa.json"}, "subject": ADMIN}}),
    );
    let records = source.read().await.unwrap();
    assert_eq!(groups(&records, "ann@example.com"), ["staff@example.com"]);
    let claims = jwt_claims(&emu);
    assert_eq!(claims["iss"], CLIENT_EMAIL);
    assert_eq!(claims["sub"], ADMIN);
    assert_eq!(claims["aud"], emu.token_url());
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/admin.directory.user.readonly https://www.googleapis.com/auth/admin.directory.group.member.readonly"
    );
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert!(lifetime <= 3600, "{lifetime}");
}

/// The claims of the JWT of the first token request the emulator got.
pub fn jwt_claims(emu: &GoogleEmulator) -> Value {
    let token = emu
        .log()
        .all()
        .into_iter()
        .find(|l| l.method == "POST" && l.path == "/token")
        .expect("a token request");
    let form = token.body.unwrap();
    let form = form.as_str().unwrap();
    let assertion = url::form_urlencoded::parse(form.as_bytes())
        .find(|(k, _)| k == "assertion")
        .unwrap()
        .1
        .to_string();
    let claims = assertion.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The source as `SourceSpec::build` makes it from `config` (JSON of the YAML entry).
pub fn build(dir: &Path, config: Value) -> Box<dyn Source> {
    let cfg: GoogleWorkspaceConfig = serde_json::from_value(config).unwrap();
    let pool = ClientPool::default();
    let cx = BuildContext::new(dir, &pool);
    cfg.build("workspace", &cx).unwrap()
}

/// A read that fails part-way (the second page keeps failing) fails whole: never a partial
/// list, which would plan the unseen users as gone.
#[tokio::test]
async fn a_read_failing_part_way_fails_whole() {
    let emu = GoogleEmulator::start().await;
    for i in 0..4 {
        emu.insert_user(user(&format!("u{i}@example.com"), json!({})));
    }
    emu.set_page_cap(Some(2));
    emu.faults()
        .on(headcount::testkit::Match::get("/users").query("pageToken", "emu-page-2"))
        .always()
        .inject(headcount::testkit::Fault::status(503));
    let err = emu.source(Listing::default()).read().await.unwrap_err();
    assert_eq!(err.kind(), "unavailable");
    assert!(err.to_string().contains("pageToken=emu-page-2"), "{err}");
    // A group page failing part-way fails the read too.
    emu.faults().clear();
    emu.set_group(
        "g@example.com",
        &[
            ("u0@example.com", "USER"),
            ("u1@example.com", "USER"),
            ("u2@example.com", "USER"),
        ],
    );
    emu.faults()
        .on(headcount::testkit::Match::get("/members").query("pageToken", "emu-page-2"))
        .always()
        .inject(headcount::testkit::Fault::status(503));
    assert!(
        emu.source(with_groups(&["g@example.com"]))
            .read()
            .await
            .is_err()
    );
}

/// A `CUSTOMER` member (everyone in the account) puts every user in the group.
#[tokio::test]
async fn a_customer_member_means_everyone() {
    let emu = GoogleEmulator::start().await;
    emu.insert_user(user("ann@example.com", json!({})));
    emu.insert_user(user("bob@example.com", json!({})));
    emu.set_group("all@example.com", &[("", "CUSTOMER")]);
    let records = emu
        .source(with_groups(&["all@example.com"]))
        .read()
        .await
        .unwrap();
    assert!(
        records
            .iter()
            .all(|r| r.data["groups"] == json!(["all@example.com"]))
    );
}

/// The token is cached until shortly before it expires (a minute before), then refreshed: a
/// long `run` never sends an expired token (paused clock: no real wait).
#[tokio::test(start_paused = true)]
async fn the_token_is_reused_until_a_minute_before_it_expires() {
    let emu = GoogleEmulator::start().await;
    emu.insert_user(user("ann@example.com", json!({})));
    emu.set_token_lifetime(600);
    let source = emu.source(Listing::default());
    source.read().await.unwrap();
    tokio::time::advance(std::time::Duration::from_secs(530)).await;
    source.read().await.unwrap();
    assert_eq!(emu.tokens_issued(), 1, "70 s left: reused");
    tokio::time::advance(std::time::Duration::from_secs(20)).await;
    source.read().await.unwrap();
    assert_eq!(emu.tokens_issued(), 2, "50 s left: refreshed");
    let bearers: Vec<String> = emu
        .log()
        .method("GET")
        .iter()
        .map(|l| l.header("authorization").unwrap().to_string())
        .collect();
    assert_eq!(bearers[0], bearers[1]);
    assert_ne!(bearers[1], bearers[2]);
}
