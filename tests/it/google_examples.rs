//! The Google examples, each validated and run end to end by the real binary against the
//! emulators (a copy of the example whose URLs point at them; the example keeps Google's):
//! S1 (Workspace → Mojo Helpdesk), Happeo (Workspace → SCIM) and S5 (a Google group → SCIM).

use std::path::{Path, PathBuf};
use std::process::Output;

use headcount::testkit::google::GoogleEmulator;
use headcount::testkit::mojo::MojoEmulator;
use headcount::testkit::scim::ScimEmulator;
use serde_json::{Value, json};

const MOJO_KEY: &str = "mojo-example-key";
const SCIM_TOKEN: &str = "scim-example-token";

fn example_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// A working copy of example `name`: its config with `replace` applied (each pattern must
/// occur) and the emulator's service-account key in `secrets/google-sa.json`.
fn copy_example(
    name: &str,
    google: &GoogleEmulator,
    replace: &[(&str, String)],
) -> tempfile::TempDir {
    let mut text = std::fs::read_to_string(example_dir(name).join("headcount.yaml")).unwrap();
    assert!(
        text.contains("https://admin.googleapis.com"),
        "{name} keeps Google's URL"
    );
    text = text.replace("https://admin.googleapis.com", &google.base_url());
    for (from, to) in replace {
        assert!(text.contains(from), "{name}: {from} not in the example");
        text = text.replace(from, to);
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("headcount.yaml"), text).unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/google-sa.json"), google.key_json()).unwrap();
    dir
}

async fn run(dir: &Path, args: &[&str]) -> Output {
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_headcount"))
            .args(&args)
            .arg("--no-progress")
            .current_dir(&dir)
            .env("NO_COLOR", "1")
            .env("MOJO_ACCESS_KEY", MOJO_KEY)
            .env("HAPPEO_SCIM_TOKEN", SCIM_TOKEN)
            .env("APP_SCIM_TOKEN", SCIM_TOKEN)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `plan --detailed-exitcode`: 2 with changes, 0 without.
async fn plan(dir: &Path, expect: i32) -> String {
    let out = run(dir, &["plan", "--detailed-exitcode"]).await;
    assert_eq!(out.status.code(), Some(expect), "{}", text(&out));
    text(&out)
}

async fn apply(dir: &Path) -> String {
    let out = run(dir, &["apply", "--auto-approve"]).await;
    assert!(out.status.success(), "{}", text(&out));
    text(&out)
}

fn person(email: &str, given: &str, family: &str, extra: Value) -> Value {
    let mut u = json!({"primaryEmail": email, "name": {"givenName": given, "familyName": family}});
    for (k, v) in extra.as_object().unwrap() {
        u[k] = v.clone();
    }
    u
}

#[test]
fn the_google_examples_validate_and_keep_googles_urls() {
    for name in [
        "s1-workspace-to-mojo",
        "happeo-workspace-to-scim",
        "s5-google-group",
    ] {
        let dir = example_dir(name);
        assert!(dir.join("README.md").is_file(), "{name} has a README");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_headcount"))
            .arg("validate")
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", text(&out));
        let config = std::fs::read_to_string(dir.join("headcount.yaml")).unwrap();
        assert!(
            config.contains("base_url: https://admin.googleapis.com"),
            "{name}"
        );
    }
}

fn mojo_user(mojo: &MojoEmulator, email: &str) -> Value {
    mojo.users()
        .into_iter()
        .find(|u| u["email"] == email)
        .unwrap_or_else(|| panic!("{email} not in Mojo: {:?}", mojo.users()))
}

/// S1: all users as `user`, the staff group (nested) as `technician`, suspended → inactive,
/// an existing account adopted (same id, updated), archived users left out; a second plan has
/// no changes and costs only the list pages; then a rename, a suspension, a group departure and
/// a new hire all reach the helpdesk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_workspace_to_mojo_end_to_end() {
    let google = GoogleEmulator::start().await;
    let mojo = MojoEmulator::start(MOJO_KEY).await;
    google.insert_user(person("ann@example.com", "Ann", "Lee", json!({})));
    google.insert_user(person("bob@example.com", "Bob", "Ray", json!({})));
    google.insert_user(person(
        "cat@example.com",
        "Cat",
        "Fox",
        json!({"suspended": true}),
    ));
    google.insert_user(person(
        "dan@example.com",
        "Dan",
        "Old",
        json!({"archived": true}),
    ));
    google.insert_user(person("dee@example.com", "Dee", "Kim", json!({})));
    google.set_group(
        "helpdesk-staff@example.com",
        &[("ann@example.com", "USER"), ("tier2@example.com", "GROUP")],
    );
    google.set_group("tier2@example.com", &[("dee@example.com", "USER")]);
    let bob_id = mojo.insert(json!({"email": "bob@example.com", "first_name": "Robert", "last_name": "Ray", "role_id": 10}));
    let w = copy_example(
        "s1-workspace-to-mojo",
        &google,
        &[("https://app.mojohelpdesk.com", mojo.base_url())],
    );
    let dir = w.path();
    let out = run(dir, &["validate"]).await;
    assert!(out.status.success(), "{}", text(&out));

    let first = plan(dir, 2).await;
    assert!(first.contains("adopt"), "{first}");
    apply(dir).await;
    let users = mojo.users();
    assert_eq!(
        users.len(),
        4,
        "ann, bob (adopted), cat, dee; never dan: {users:?}"
    );
    assert_eq!(mojo_user(&mojo, "ann@example.com")["role_id"], 20);
    assert_eq!(
        mojo_user(&mojo, "dee@example.com")["role_id"],
        20,
        "nested group member"
    );
    let bob = mojo_user(&mojo, "bob@example.com");
    assert_eq!(
        (bob["id"].as_i64(), &bob["first_name"], &bob["role_id"]),
        (Some(bob_id), &json!("Bob"), &json!(10))
    );
    assert_eq!(mojo_user(&mojo, "cat@example.com")["is_active"], false);
    assert_eq!(mojo.welcome_emails(), 0);

    google.log().clear();
    mojo.log().clear();
    let again = plan(dir, 0).await;
    assert!(again.contains("No changes"), "{again}");
    assert_eq!(
        google.log().lines(),
        [
            "POST /token",
            "GET /admin/directory/v1/users?customer=my_customer&maxResults=500&projection=full",
            "GET /admin/directory/v1/groups/helpdesk-staff@example.com/members?maxResults=200",
            "GET /admin/directory/v1/groups/tier2@example.com/members?maxResults=200",
        ],
        "a no-op plan costs one token, the user page and each group once"
    );
    assert!(!again.contains("BEGIN PRIVATE KEY") && !again.contains(MOJO_KEY));

    // Rename, suspend, leave the group, new hire.
    google.update_user(
        "ann@example.com",
        json!({"name": {"givenName": "Anne", "familyName": "Lee"}}),
    );
    google.update_user("bob@example.com", json!({"suspended": true}));
    google.set_group(
        "helpdesk-staff@example.com",
        &[("tier2@example.com", "GROUP")],
    );
    google.insert_user(person("eve@example.com", "Eve", "New", json!({})));
    plan(dir, 2).await;
    apply(dir).await;
    let ann = mojo_user(&mojo, "ann@example.com");
    assert_eq!(
        (&ann["first_name"], &ann["role_id"]),
        (&json!("Anne"), &json!(10))
    );
    assert_eq!(mojo_user(&mojo, "bob@example.com")["is_active"], false);
    assert_eq!(mojo_user(&mojo, "eve@example.com")["role_id"], 10);
    assert_eq!(mojo.users().len(), 5);
    plan(dir, 0).await;
}

fn scim_user(scim: &ScimEmulator, user_name: &str) -> Value {
    scim.users()
        .into_iter()
        .find(|u| u["userName"] == user_name)
        .unwrap_or_else(|| panic!("{user_name} not in SCIM: {:?}", scim.users()))
}

/// Happeo: Workspace → SCIM. Non-archived users provisioned (suspended ones inactive), a
/// second plan has no changes, a rename is one update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happeo_workspace_to_scim_end_to_end() {
    let google = GoogleEmulator::start().await;
    let scim = ScimEmulator::with_token(SCIM_TOKEN).await;
    google.insert_user(person(
        "ann@example.com",
        "Ann",
        "Lee",
        json!({"organizations": [{"title": "Engineer", "primary": true}]}),
    ));
    google.insert_user(person(
        "bob@example.com",
        "Bob",
        "Ray",
        json!({"suspended": true}),
    ));
    google.insert_user(person(
        "cid@example.com",
        "Cid",
        "Gone",
        json!({"archived": true}),
    ));
    let w = copy_example(
        "happeo-workspace-to-scim",
        &google,
        &[("https://scim.happeo.example/scim/v2", scim.base_url())],
    );
    let dir = w.path();
    apply(dir).await;
    assert_eq!(scim.users().len(), 2, "{:?}", scim.users());
    let ann = scim_user(&scim, "ann@example.com");
    assert_eq!(
        (&ann["title"], &ann["active"], &ann["displayName"]),
        (&json!("Engineer"), &json!(true), &json!("Ann Lee"))
    );
    assert_eq!(
        ann["externalId"],
        json!(google.user_id("ann@example.com").unwrap())
    );
    assert_eq!(scim_user(&scim, "bob@example.com")["active"], false);
    let users_query = google
        .log()
        .all()
        .into_iter()
        .find(|l| l.method == "GET")
        .unwrap();
    assert_eq!(users_query.query("query"), Some("isArchived=false"));
    plan(dir, 0).await;
    google.update_user(
        "ann@example.com",
        json!({"name": {"givenName": "Anna", "familyName": "Lee", "fullName": "Anna Lee"}}),
    );
    plan(dir, 2).await;
    apply(dir).await;
    assert_eq!(
        scim_user(&scim, "ann@example.com")["name"]["givenName"],
        "Anna"
    );
    plan(dir, 0).await;
}

/// S5 (Google side): members of the group (nested too) get accounts; leaving the group
/// deactivates the account; others are never provisioned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5_google_group_end_to_end() {
    let google = GoogleEmulator::start().await;
    let scim = ScimEmulator::with_token(SCIM_TOKEN).await;
    for (e, g) in [("ann", "Ann"), ("bob", "Bob"), ("cid", "Cid")] {
        google.insert_user(person(&format!("{e}@example.com"), g, "Doe", json!({})));
    }
    google.set_group(
        "app-users@example.com",
        &[("ann@example.com", "USER"), ("team@example.com", "GROUP")],
    );
    google.set_group(
        "team@example.com",
        &[
            ("bob@example.com", "USER"),
            ("app-users@example.com", "GROUP"),
        ],
    );
    let w = copy_example(
        "s5-google-group",
        &google,
        &[("https://app.example.com/scim/v2", scim.base_url())],
    );
    let dir = w.path();
    apply(dir).await;
    let names: Vec<Value> = scim.users().iter().map(|u| u["userName"].clone()).collect();
    assert_eq!(names.len(), 2, "ann and bob (nested), never cid: {names:?}");
    assert_eq!(scim_user(&scim, "bob@example.com")["active"], true);
    plan(dir, 0).await;
    // bob's team leaves the group.
    google.set_group("app-users@example.com", &[("ann@example.com", "USER")]);
    let p = plan(dir, 2).await;
    assert!(p.contains("bob@example.com"), "{p}");
    apply(dir).await;
    assert_eq!(scim_user(&scim, "bob@example.com")["active"], false);
    assert_eq!(scim_user(&scim, "ann@example.com")["active"], true);
    plan(dir, 0).await;
}

/// `validate --online` on S1 proves the credentials with one page of users and of the group
/// (no nesting, nothing else); with delegation revoked it fails saying where to grant it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_validate_online_probes_and_explains_missing_delegation() {
    let google = GoogleEmulator::start().await;
    let mojo = MojoEmulator::start(MOJO_KEY).await;
    google.insert_user(person("ann@example.com", "Ann", "Lee", json!({})));
    google.set_group(
        "helpdesk-staff@example.com",
        &[("ann@example.com", "USER"), ("tier2@example.com", "GROUP")],
    );
    google.set_group("tier2@example.com", &[]);
    let w = copy_example(
        "s1-workspace-to-mojo",
        &google,
        &[("https://app.mojohelpdesk.com", mojo.base_url())],
    );
    let out = run(w.path(), &["validate", "--online"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        google.log().lines(),
        [
            "POST /token",
            "GET /admin/directory/v1/users?customer=my_customer&maxResults=500&projection=full",
            "GET /admin/directory/v1/groups/helpdesk-staff@example.com/members?maxResults=200",
        ]
    );
    google.set_grant(headcount::testkit::google::CLIENT_ID, None);
    let out = run(w.path(), &["validate", "--online"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("Manage Domain Wide Delegation"), "{t}");
    assert!(t.contains(headcount::testkit::google::CLIENT_ID), "{t}");
    assert!(!t.contains("BEGIN PRIVATE KEY"), "{t}");
}
