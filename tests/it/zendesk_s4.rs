//! SPEC scenario S4 end to end through the binary: `examples/s4-zendesk-pending` (Zendesk
//! agents → Mojo Helpdesk, created inactive) against the Zendesk and Mojo emulators. validate,
//! plan, apply, plan = no changes; then a rename, a suspension and a new hire; an account
//! activated by hand in Mojo stays active; nothing is ever written to Zendesk. Also the
//! `zendesk` target through the binary (plan → apply → plan, bulk import off).

use std::path::{Path, PathBuf};
use std::process::Output;

use headcount::http::Request;
use headcount::testkit::mojo::MojoEmulator;
use headcount::testkit::zendesk::ZendeskEmulator;
use serde_json::{Value, json};

const AGENT: &str = "admin@example.com";
const ZD_TOKEN: &str = "zd-s4-token";
const MOJO_KEY: &str = "mojo-s4-key";
const CUSTOM_ROLE: i64 = 360_000_000_001;

/// The example, copied with its `base_url`s pointed at the emulators.
fn workspace(zd: &ZendeskEmulator, mojo: &MojoEmulator) -> tempfile::TempDir {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/s4-zendesk-pending");
    let text = std::fs::read_to_string(example.join("headcount.yaml")).unwrap();
    let zd_line = "    # base_url: https://example.zendesk.com   # the default; tests point it at an emulator";
    let mojo_line = "    base_url: https://app.mojohelpdesk.com";
    assert!(text.contains(zd_line) && text.contains(mojo_line));
    let text = text
        .replace(zd_line, &format!("    base_url: {}", zd.base_url()))
        .replace(mojo_line, &format!("    base_url: {}", mojo.base_url()));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("headcount.yaml"), text).unwrap();
    dir
}

async fn run(dir: &Path, args: &[&str]) -> Output {
    let dir: PathBuf = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_headcount"))
            .args(&args)
            .current_dir(&dir)
            .env("ZENDESK_API_TOKEN", ZD_TOKEN)
            .env("MOJO_ACCESS_KEY", MOJO_KEY)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn plan_json(dir: &Path) -> Value {
    let out = run(dir, &["plan", "--format", "json"]).await;
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `action identity.email` of every change of the one sync, sorted.
fn changes(doc: &Value) -> Vec<String> {
    let mut out: Vec<String> = doc["syncs"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["action"].as_str().unwrap(),
                c["identity"]["email"].as_str().unwrap_or("?")
            )
        })
        .collect();
    out.sort();
    out
}

fn mojo_user(mojo: &MojoEmulator, email: &str) -> Value {
    mojo.users()
        .into_iter()
        .find(|u| u["email"] == email)
        .unwrap_or_else(|| panic!("{email} not in Mojo: {:?}", mojo.users()))
}

/// A person activates the account in Mojo's UI.
async fn activate_by_hand(mojo: &MojoEmulator, email: &str) {
    let id = mojo_user(mojo, email)["id"].clone();
    let client = mojo.client_builder(MOJO_KEY).build().unwrap();
    client
        .send(Request::put(format!("api/v2/users/{id}")).json(json!({"is_active": true})))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s4_zendesk_agents_are_imported_pending_and_kept_in_line() {
    let zd = ZendeskEmulator::start(AGENT, ZD_TOKEN).await;
    let mojo = MojoEmulator::start(MOJO_KEY).await;
    zd.insert(json!({"name": "Alice Archer", "email": "alice@x.io", "role": "agent"}));
    let bob = zd.insert(json!({"name": "Bob Builder", "email": "bob@x.io", "role": "admin"}));
    let carol = zd.insert(
        json!({"name": "Carol Custom", "email": "carol@x.io", "role": "agent",
        "custom_role_id": CUSTOM_ROLE}),
    );
    zd.insert(json!({"name": "Dan Enduser", "email": "dan@x.io", "role": "end-user"}));
    let dir = workspace(&zd, &mojo);
    let dir = dir.path();

    let out = run(dir, &["validate"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let out = run(dir, &["validate", "--online"]).await;
    assert!(out.status.success(), "{}", text(&out));

    // First plan: the three agents (not the end-user) are created, inactive.
    let doc = plan_json(dir).await;
    assert_eq!(
        changes(&doc),
        ["create alice@x.io", "create bob@x.io", "create carol@x.io"]
    );
    let out = run(dir, &["apply", "--auto-approve", "--no-progress"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(mojo.users().len(), 3);
    for email in ["alice@x.io", "bob@x.io", "carol@x.io"] {
        assert_eq!(mojo_user(&mojo, email)["is_active"], false, "{email}");
    }
    assert_eq!(mojo_user(&mojo, "bob@x.io")["first_name"], "Bob");
    assert_eq!(mojo_user(&mojo, "bob@x.io")["last_name"], "Builder");
    assert_eq!(
        mojo_user(&mojo, "bob@x.io")["role_id"],
        30,
        "admin → manager"
    );
    assert_eq!(mojo_user(&mojo, "carol@x.io")["role_id"], 20);
    assert_eq!(mojo.welcome_emails(), 0);

    // Pending accounts are not "changes": the next plan has none, and costs only the lists
    // (one page per Zendesk series, one user page and one group page of Mojo).
    zd.log().clear();
    mojo.log().clear();
    let out = run(dir, &["plan", "--detailed-exitcode"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("No changes"), "{}", text(&out));
    assert_eq!(
        zd.log().lines(),
        [
            "GET /api/v2/users?role[]=agent&role[]=admin&page[size]=100",
            format!("GET /api/v2/users?permission_set={CUSTOM_ROLE}&page[size]=100").as_str(),
        ]
    );
    assert_eq!(mojo.log().count(), 2, "{:?}", mojo.log().lines());
    assert!(!text(&out).contains(ZD_TOKEN) && !text(&out).contains(MOJO_KEY));

    // People activate Alice and Carol in Mojo; then Bob is renamed, Carol suspended and
    // Erin hired in Zendesk.
    activate_by_hand(&mojo, "alice@x.io").await;
    activate_by_hand(&mojo, "carol@x.io").await;
    zd.edit(bob, json!({"name": "Robert Builder"}));
    zd.edit(carol, json!({"suspended": true}));
    zd.insert(json!({"name": "Erin Newhire", "email": "erin@x.io", "role": "agent"}));

    let doc = plan_json(dir).await;
    assert_eq!(
        changes(&doc),
        [
            "create erin@x.io",
            "deactivate carol@x.io",
            "update bob@x.io"
        ],
        "Alice, activated by hand, is left active"
    );
    let out = run(dir, &["apply", "--auto-approve", "--no-progress"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(mojo_user(&mojo, "alice@x.io")["is_active"], true);
    assert_eq!(mojo_user(&mojo, "bob@x.io")["first_name"], "Robert");
    assert_eq!(
        mojo_user(&mojo, "bob@x.io")["is_active"],
        false,
        "still pending"
    );
    assert_eq!(mojo_user(&mojo, "carol@x.io")["is_active"], false);
    assert_eq!(
        mojo_user(&mojo, "erin@x.io")["is_active"],
        false,
        "new: pending"
    );

    let out = run(dir, &["plan", "--detailed-exitcode"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Carol is unsuspended in Zendesk: headcount deactivated her, so it reactivates her.
    zd.edit(carol, json!({"suspended": false}));
    let doc = plan_json(dir).await;
    assert_eq!(changes(&doc), ["reactivate carol@x.io"]);

    // Nothing was ever written to Zendesk.
    assert!(zd.log().writes().is_empty(), "{:?}", zd.log().lines());
}

/// The example validates as committed, without its secrets (offline `validate` reads none).
#[test]
fn the_s4_example_validates_as_committed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/s4-zendesk-pending");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_headcount"))
        .arg("validate")
        .current_dir(&dir)
        .env_remove("ZENDESK_API_TOKEN")
        .env_remove("MOJO_ACCESS_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!dir.join(".headcount").exists(), "validate writes nothing");
}

/// The `zendesk` target through the binary: plan → apply → plan. Without bulk import the
/// apply says so once on stderr and creates one by one; the no-change plan costs only the
/// list pages (users, then organizations).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zendesk_target_plan_apply_plan_through_the_binary() {
    let zd = ZendeskEmulator::start(AGENT, ZD_TOKEN).await;
    zd.set_bulk_import_enabled(false);
    zd.insert(json!({"name": "Kept One", "email": "kept@x.io", "role": "agent"}));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("people.csv"),
        "email,name,team\nkept@x.io,Kept One,\nnew@x.io,New Two,Support\nthird@x.io,Third Three,Support\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("headcount.yaml"),
        format!(
            r#"version: 1
sources:
  hr: {{ kind: csv, path: people.csv }}
targets:
  zendesk:
    kind: zendesk
    subdomain: example
    base_url: {}
    email: {AGENT}
    api_token: {{ env: ZENDESK_API_TOKEN }}
syncs:
  - name: staff
    from: hr
    to: zendesk
    identity: [email]
    manage: all
    fields:
      email: user.email
      name: user.name
      role: '"agent"'
      organization: user.team
"#,
            zd.base_url()
        ),
    )
    .unwrap();
    let dir = dir.path();
    let out = run(dir, &["apply", "--auto-approve", "--no-progress"]).await;
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert_eq!(
        all.matches("bulk user import is not enabled").count(),
        1,
        "{all}"
    );
    assert!(!all.contains(ZD_TOKEN));
    assert_eq!(zd.users().len(), 3);
    let support = zd
        .orgs()
        .into_iter()
        .find(|(_, n)| n == "Support")
        .unwrap()
        .0;
    assert_eq!(zd.user("new@x.io").unwrap()["organization_id"], support);
    assert_eq!(zd.user("third@x.io").unwrap()["organization_id"], support);

    zd.log().clear();
    let out = run(dir, &["plan", "--detailed-exitcode"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("No changes"), "{}", text(&out));
    assert_eq!(
        zd.log().lines(),
        [
            "GET /api/v2/users?page[size]=100",
            "GET /api/v2/organizations?page[size]=100",
        ]
    );
}
