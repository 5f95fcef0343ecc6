//! `mojo_helpdesk` behaviours of SPEC section 12 against the Mojo emulator: welcome emails,
//! groups by name, roles, partial updates, the read-only key, the vendor's own limits, and a
//! whole plan → apply → plan through the binary.

use std::collections::BTreeMap;

use headcount::connectors::mojo::MojoHelpdeskTarget;
use headcount::connectors::{ApplyOptions, ConnectorError, Target, TargetOp};
use headcount::testkit::compliance::apply_all;
use headcount::testkit::mojo::{INDIVIDUALS_ID, MojoEmulator};
use serde_json::{Value, json};

const KEY: &str = "mojo-test-key";

fn create(email: &str, extra: &[(&str, Value)], notify: bool) -> TargetOp {
    let mut fields = BTreeMap::from([("email".to_string(), json!(email))]);
    for (k, v) in extra {
        fields.insert(k.to_string(), v.clone());
    }
    TargetOp::Create {
        fields,
        active: true,
        notify,
    }
}

async fn target(emu: &MojoEmulator, key: &str) -> MojoHelpdeskTarget {
    MojoHelpdeskTarget::new(
        emu.client_builder(key).build().unwrap(),
        vec!["dept".to_string()],
    )
}

#[tokio::test]
async fn no_welcome_email_unless_notify() {
    let emu = MojoEmulator::start(KEY).await;
    let t = target(&emu, KEY).await;
    let r = apply_all(
        &t,
        &[create("a@x.io", &[], false), create("b@x.io", &[], true)],
        &ApplyOptions {
            parallelism: 1,
            ..ApplyOptions::default()
        },
    )
    .await;
    assert!(r.iter().all(Result::is_ok), "{r:?}");
    let sent: Vec<String> = emu
        .log()
        .method("POST")
        .iter()
        .filter(|l| l.path == "/api/v2/users")
        .map(|l| {
            l.query("send_welcome_email")
                .unwrap_or("absent")
                .to_string()
        })
        .collect();
    assert_eq!(sent, ["0", "1"]);
    assert_eq!(emu.welcome_emails(), 1);
}

#[tokio::test]
async fn groups_are_found_by_name_created_once_and_empty_means_individuals() {
    let emu = MojoEmulator::start(KEY).await;
    let support = emu.add_group("Support");
    let t = target(&emu, KEY).await;
    let ops = [
        create("a@x.io", &[("group", json!("support"))], false),
        create("b@x.io", &[("group", json!("Sales"))], false),
        create("c@x.io", &[("group", json!("Sales"))], false),
        create("d@x.io", &[("group", json!(""))], false),
    ];
    let r = apply_all(&t, &ops, &ApplyOptions::default()).await;
    assert!(r.iter().all(Result::is_ok), "{r:?}");
    let group_posts = emu
        .log()
        .method("POST")
        .iter()
        .filter(|l| l.path == "/api/v2/groups")
        .count();
    assert_eq!(group_posts, 1, "Sales is created once, Support reused");
    let groups = emu.groups();
    let sales = groups
        .iter()
        .find(|(_, n)| *n == "Sales")
        .map(|(id, _)| *id);
    let company = |email: &str| {
        emu.users()
            .iter()
            .find(|u| u["email"] == email)
            .and_then(|u| u["company_id"].as_i64())
    };
    assert_eq!(company("a@x.io"), Some(support));
    assert_eq!(company("b@x.io"), sales);
    assert_eq!(company("d@x.io"), Some(INDIVIDUALS_ID));
    // Listed back by name, as the config writes them.
    let listed = t.list().await.unwrap();
    let group = |email: &str| {
        listed
            .iter()
            .find(|a| a.fields["email"] == email)
            .map(|a| a.fields["group"].clone())
    };
    assert_eq!(group("a@x.io"), Some(json!("Support")));
    assert_eq!(group("d@x.io"), Some(json!("Individuals")));
}

#[tokio::test]
async fn roles_map_to_role_ids_and_back() {
    let emu = MojoEmulator::start(KEY).await;
    let t = target(&emu, KEY).await;
    for (i, (role, id)) in headcount::connectors::mojo::ROLES.iter().enumerate() {
        let email = format!("r{i}@x.io");
        let r = apply_all(
            &t,
            &[create(&email, &[("role", json!(role))], false)],
            &ApplyOptions::default(),
        )
        .await;
        assert!(r[0].is_ok(), "{r:?}");
        let stored = emu
            .users()
            .into_iter()
            .find(|u| u["email"] == email.as_str())
            .unwrap();
        assert_eq!(stored["role_id"], json!(id), "{role}");
        let listed = t.list().await.unwrap();
        let acc = listed
            .iter()
            .find(|a| a.fields["email"] == email.as_str())
            .unwrap();
        assert_eq!(acc.fields["role"], json!(role));
    }
}

#[tokio::test]
async fn updates_send_only_the_changed_fields_and_never_the_email_or_password() {
    let emu = MojoEmulator::start(KEY).await;
    let id = emu.insert(json!({"email": "a@x.io", "first_name": "Ann", "last_name": "Lee"}));
    let t = target(&emu, KEY).await;
    let op = TargetOp::Modify {
        id: id.to_string(),
        fields: BTreeMap::from([
            ("first_name".to_string(), json!("Anne")),
            ("custom_field_dept".to_string(), json!("IT")),
        ]),
        expected: BTreeMap::new(),
        active: Some(false),
        removal: false,
    };
    let r = apply_all(&t, &[op], &ApplyOptions::default()).await;
    assert!(r[0].is_ok(), "{r:?}");
    let puts = emu.log().method("PUT");
    assert_eq!(puts.len(), 1);
    assert_eq!(
        puts[0].body,
        Some(json!({"first_name": "Anne", "custom_field_dept": "IT", "is_active": false}))
    );
    let listed = t.list().await.unwrap();
    assert!(!listed[0].active);
    assert_eq!(listed[0].fields["custom_field_dept"], json!("IT"));
    assert_eq!(listed[0].fields["last_name"], json!("Lee"));
}

#[tokio::test]
async fn find_looks_a_user_up_by_email() {
    let emu = MojoEmulator::start(KEY).await;
    emu.insert(json!({"email": "a@x.io", "first_name": "Ann"}));
    let t = target(&emu, KEY).await;
    let found = t
        .find(&BTreeMap::from([(
            "email".to_string(),
            "a@x.io".to_string(),
        )]))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].fields["first_name"], json!("Ann"));
    let none = t
        .find(&BTreeMap::from([(
            "email".to_string(),
            "b@x.io".to_string(),
        )]))
        .await
        .unwrap();
    assert!(
        none.is_empty(),
        "Mojo's 400 for an unknown email is \"not found\""
    );
    assert!(
        emu.log()
            .lines()
            .iter()
            .any(|l| l.starts_with("GET /api/v2/users/get_by_email?email=b@x.io")),
        "{:?}",
        emu.log().lines()
    );
}

#[tokio::test]
async fn a_read_only_key_reads_and_its_first_write_is_explained() {
    let emu = MojoEmulator::start(KEY).await;
    emu.insert(json!({"email": "a@x.io"}));
    let t = target(&emu, &format!("{KEY}-ro")).await;
    assert_eq!(t.list().await.unwrap().len(), 1);
    let r = apply_all(
        &t,
        &[create("b@x.io", &[], false)],
        &ApplyOptions::default(),
    )
    .await;
    let err = r[0].as_ref().unwrap_err();
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("read-only"), "{msg}");
    assert!(msg.contains("Dev settings > API keys"), "{msg}");
    assert!(!msg.contains(KEY), "the key never appears: {msg}");
    assert_eq!(emu.users().len(), 1);
}

#[tokio::test]
async fn the_vendors_limits_are_reported_in_its_words() {
    let emu = MojoEmulator::start(KEY).await;
    emu.insert(json!({"email": "a@x.io"}));
    emu.set_user_limit(Some(1));
    let t = target(&emu, KEY).await;
    let r = apply_all(
        &t,
        &[create("b@x.io", &[], false)],
        &ApplyOptions::default(),
    )
    .await;
    let err = r[0].as_ref().unwrap_err();
    assert!(
        matches!(
            err,
            ConnectorError::Rejected {
                status: Some(400),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("Cannot create new users because the user limit is reached."),
        "{err}"
    );
    // An existing email is refused by Mojo, never taken over.
    emu.set_user_limit(None);
    let r = apply_all(
        &t,
        &[create("a@x.io", &[], false)],
        &ApplyOptions::default(),
    )
    .await;
    let err = r[0].as_ref().unwrap_err().to_string();
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(emu.users().len(), 1);
}

/// plan → apply → plan through the binary, against the emulator: the second plan has no
/// changes, and a no-op plan costs only the list pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_apply_plan_through_the_binary() {
    let emu = MojoEmulator::start(KEY).await;
    emu.insert(json!({"email": "kept@x.io", "first_name": "Kept", "role_id": 10}));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("people.csv"),
        "email,first,last,team\nkept@x.io,Kept,One,\nnew@x.io,New,Two,Support\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("headcount.yaml"),
        format!(
            r#"version: 1
sources:
  hr: {{ kind: csv, path: people.csv }}
targets:
  helpdesk:
    kind: mojo_helpdesk
    base_url: {}
    access_key: {{ env: HC_TEST_MOJO_KEY }}
syncs:
  - name: staff
    from: hr
    to: helpdesk
    identity: [email]
    manage: all
    fields:
      email: user.email
      first_name: user.first
      last_name: user.last
      role: '"user"'
      group: user.team
"#,
            emu.base_url()
        ),
    )
    .unwrap();
    let run = |args: &'static [&'static str]| {
        let dir = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_headcount"))
                .args(args)
                .current_dir(&dir)
                .env("HC_TEST_MOJO_KEY", KEY)
                .output()
                .unwrap()
        })
    };
    let out = run(&["apply", "--auto-approve", "--no-progress"])
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let users = emu.users();
    assert_eq!(users.len(), 2, "{users:?}");
    assert!(
        users
            .iter()
            .any(|u| u["email"] == "new@x.io" && u["last_name"] == "Two")
    );
    assert_eq!(emu.welcome_emails(), 0);

    emu.log().clear();
    let out = run(&["plan", "--detailed-exitcode"]).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("No changes"), "{stdout}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(KEY));
    let requests = emu.log().lines().len();
    assert_eq!(
        requests, 2,
        "a no-op plan reads one user page and one group page"
    );
}
