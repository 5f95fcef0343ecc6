//! SPEC scenario S5 through the binary: `examples/s5-entra-group-guests/headcount.yaml` (the
//! members of an Entra group in tenant A as B2B guests in tenant B), run against two Graph
//! emulators; and the request count of a no-change run with and without delta queries.

use std::path::Path;
use std::process::Output;

use headcount::connectors::Source;
use headcount::connectors::entra::{DeltaCache, EntraIdSource};
use headcount::http::auth::ClientAuth;
use headcount::testkit::graph::{CLIENT_ID, GraphEmulator, TENANT};
use secrecy::SecretString;
use serde_json::Value;

const SECRET_A: &str = "contoso-secret-for-s5";
const SECRET_B: &str = "fabrikam-secret-for-s5";

/// The example, pointed at the emulators (ids, `graph_url`, `login_url`).
fn config(a: &GraphEmulator, b: &GraphEmulator) -> String {
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/s5-entra-group-guests/headcount.yaml");
    let text = std::fs::read_to_string(example).unwrap();
    let at = |emu: &GraphEmulator| {
        format!(
            "\n    graph_url: {}\n    login_url: {}",
            emu.origin(),
            emu.login_origin()
        )
    };
    text.replace("0a0a0a0a-0000-4000-8000-00000000000a", TENANT)
        .replace("0b0b0b0b-0000-4000-8000-00000000000b", TENANT)
        .replace("0c0c0c0c-0000-4000-8000-00000000000c", CLIENT_ID)
        .replace("0d0d0d0d-0000-4000-8000-00000000000d", CLIENT_ID)
        .replace("kind: entra_id", &format!("kind: entra_id{}", at(a)))
        .replace(
            "kind: entra_guests",
            &format!("kind: entra_guests{}", at(b)),
        )
}

fn guest_names(b: &GraphEmulator) -> Vec<(String, String, bool)> {
    let mut out: Vec<_> = b
        .guests()
        .iter()
        .map(|g| {
            (
                g["mail"].as_str().unwrap().to_string(),
                g["displayName"].as_str().unwrap().to_string(),
                g["accountEnabled"].as_bool().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5_group_members_become_guests_and_leavers_are_deleted() {
    let a = GraphEmulator::start(SECRET_A).await;
    let b = GraphEmulator::start(SECRET_B).await;
    let ann = a.add_member(1, "Ann One");
    let bob = a.add_member(2, "Bob Two");
    a.add_member(3, "Cy Three");
    let dee = a.add_member(4, "Dee Four");
    let tier2 = a.add_group("Tier 2", &[&bob]);
    let group = a.add_group("Partner Support", &[&ann, &tier2]);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("headcount.yaml"), config(&a, &b)).unwrap();
    let run = |args: &'static [&'static str]| {
        let dir = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_headcount"))
                .args(args)
                .current_dir(&dir)
                .env_remove("HEADCOUNT_CONFIG")
                .env("NO_COLOR", "1")
                .env("CONTOSO_CLIENT_SECRET", SECRET_A)
                .env("FABRIKAM_CLIENT_SECRET", SECRET_B)
                .output()
                .unwrap()
        })
    };
    let check = |out: &Output, code: i32| {
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(code), "{stdout}\n{stderr}");
        assert!(!stdout.contains(SECRET_A) && !stderr.contains(SECRET_B));
        stdout
    };

    check(&run(&["validate", "--online"]).await.unwrap(), 0);
    assert!(
        b.log().writes().is_empty() && a.log().writes().is_empty(),
        "validate writes nothing"
    );
    let cache = dir
        .path()
        .join(".headcount/cache/contoso")
        .join(headcount::connectors::entra::CACHE_FILE);
    assert!(
        !cache.exists(),
        "validate --online never starts a delta link"
    );
    let plan = check(&run(&["plan", "--detailed-exitcode"]).await.unwrap(), 2);
    assert!(plan.contains("2 to create"), "{plan}");
    check(
        &run(&["apply", "--auto-approve", "--no-progress"])
            .await
            .unwrap(),
        0,
    );
    assert_eq!(
        guest_names(&b),
        [
            ("user1@contoso.example".into(), "Ann One".into(), true),
            ("user2@contoso.example".into(), "Bob Two".into(), true),
        ]
    );
    assert_eq!(
        b.invitation_emails(),
        2,
        "on_create.notify sends the invitation"
    );
    assert!(
        a.log().writes().is_empty(),
        "nothing is ever written to the source"
    );
    assert!(
        cache.exists(),
        "the delta link and snapshot are kept beside the state"
    );

    // No changes; with delta the source costs one delta request plus the group.
    a.log().clear();
    b.log().clear();
    let plan = check(&run(&["plan", "--detailed-exitcode"]).await.unwrap(), 0);
    assert!(plan.contains("No changes"), "{plan}");
    let source_requests = a.log().lines();
    assert_eq!(source_requests.len(), 3, "{source_requests:?}");
    assert!(source_requests[0].starts_with("GET /v1.0/users/delta?$deltatoken="));
    assert_eq!(b.log().lines().len(), 1, "one guest page");

    // Bob leaves (his nested group loses him), Dee joins, Ann is renamed.
    a.set_members(&tier2, &[]);
    a.set_members(&group, &[&ann, &tier2, &dee]);
    a.update_user(&ann, serde_json::json!({"displayName": "Ann Renamed"}));
    let plan = check(&run(&["plan", "--detailed-exitcode"]).await.unwrap(), 2);
    assert!(plan.contains("1 to create"), "{plan}");
    assert!(plan.contains("1 to update"), "{plan}");
    assert!(plan.contains("1 to delete"), "{plan}");
    check(
        &run(&["apply", "--auto-approve", "--no-progress"])
            .await
            .unwrap(),
        0,
    );
    assert_eq!(
        guest_names(&b),
        [
            ("user1@contoso.example".into(), "Ann Renamed".into(), true),
            ("user4@contoso.example".into(), "Dee Four".into(), true),
        ]
    );
    let plan = check(&run(&["plan", "--detailed-exitcode"]).await.unwrap(), 0);
    assert!(plan.contains("No changes"), "{plan}");

    // `--full` reads everything and renews the link.
    a.log().clear();
    check(
        &run(&["plan", "--full", "--detailed-exitcode"])
            .await
            .unwrap(),
        0,
    );
    assert!(a.log().lines()[0].starts_with("GET /v1.0/users/delta?$select="));
}

/// Requests of a no-change source read of 3000 users (Graph's 999 per page), with and without
/// delta. The numbers are in BENCHMARKS (`cargo test --all-features --test it
/// entra_s5::no_change_request_counts -- --nocapture`).
#[tokio::test]
async fn no_change_request_counts_with_and_without_delta() {
    let emu = GraphEmulator::start(SECRET_A).await;
    for i in 0..3000 {
        emu.add_member(i, &format!("User {i}"));
    }
    let auth = || ClientAuth::Secret {
        secret: SecretString::from(SECRET_A),
        reference: "`client_secret`".into(),
    };
    let full = EntraIdSource::new(emu.client(auth()), &[], vec![], None, false);
    assert_eq!(full.read().await.unwrap().len(), 3000);
    let without = emu.log().count();
    emu.log().clear();

    let dir = tempfile::tempdir().unwrap();
    let delta = || {
        EntraIdSource::new(
            emu.client(auth()),
            &[],
            vec![],
            Some(DeltaCache::new(dir.path().to_path_buf())),
            false,
        )
    };
    assert_eq!(delta().read().await.unwrap().len(), 3000);
    let first_delta = emu.log().count();
    emu.log().clear();
    let records = delta().read().await.unwrap();
    assert_eq!(records.len(), 3000);
    let with = emu.log().count();
    headcount::testkit::say(&format!(
        "entra_id no-change read of 3000 users: {without} Graph requests without delta, {with} with delta (first delta round: {first_delta})"
    ));
    assert_eq!(without, 4, "3000 users at 999 per page");
    assert_eq!(with, 1, "only the delta link");
    assert!(
        records
            .iter()
            .all(|r| r.data["groups"] == Value::Array(vec![]))
    );
}
