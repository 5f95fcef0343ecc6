//! The binary end to end against the real RT 5: a CSV source → `request_tracker`: validate,
//! plan, apply, a plan with no changes, then a rename, a disable, a leaver and a new hire,
//! each checked in RT itself. Also: `removed: delete` refused at validate time, and the S6
//! example validating.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::rt_server::{self, Admin};
use crate::support::{Output, run_command};

const CONFIG: &str = r#"version: 1
sources:
  hr: { kind: csv, path: people.csv }
targets:
  rt:
    kind: request_tracker
    base_url: {{BASE}}
    token: { env: HC_TEST_RT_TOKEN }
syncs:
  - name: staff
    from: hr
    to: rt
    identity: [EmailAddress, Name]
    fields:
      Name: user.login
      EmailAddress: user.email
      RealName: user.name
      Organization: user.org
      Privileged: user.staff == "yes"
    active: user.active == "yes"
    removed: {{REMOVED}}
    limits: { max_removals: 5 }
"#;

struct Cli {
    dir: tempfile::TempDir,
    token: String,
}

impl Cli {
    fn new(base: &str, token: &str, removed: &str) -> Cli {
        let dir = tempfile::tempdir().unwrap();
        let text = CONFIG
            .replace("{{BASE}}", base)
            .replace("{{REMOVED}}", removed);
        std::fs::write(dir.path().join("headcount.yaml"), text).unwrap();
        std::fs::write(
            dir.path().join("people.csv"),
            "login,email,name,org,staff,active\n",
        )
        .unwrap();
        Cli {
            dir,
            token: token.to_string(),
        }
    }

    fn people(&self, rows: &[String]) {
        let mut text = "login,email,name,org,staff,active\n".to_string();
        for r in rows {
            text.push_str(r);
            text.push('\n');
        }
        std::fs::write(self.dir.path().join("people.csv"), text).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_headcount"));
        c.current_dir(self.dir.path())
            .env_remove("HEADCOUNT_CONFIG")
            .env("NO_COLOR", "1")
            .env("HC_TEST_RT_TOKEN", &self.token)
            .args(["--color", "never", "--no-progress"])
            .args(args)
            .stdin(std::process::Stdio::null());
        let out = run_command(
            c,
            &format!("headcount {}", args.join(" ")),
            Duration::from_secs(120),
        );
        assert!(
            !out.both().contains(&self.token),
            "the token leaked: {}",
            out.both()
        );
        out
    }
}

fn user(admin: &Admin, rt: &tokio::runtime::Runtime, name: &str) -> Option<Value> {
    rt.block_on(admin.user(name))
}

#[test]
fn csv_to_request_tracker_plan_apply_and_changes() {
    let Some(server) = rt_server::server() else {
        return;
    };
    let rt = crate::support::runtime();
    let _one = rt.block_on(rt_server::exclusive().lock_owned());
    let admin = Admin::new(server);
    let p = rt_server::prefix("cli");
    let row = |who: &str, name: &str, org: &str, staff: &str, active: &str| {
        format!("{p}{who},{p}{who}@example.com,{name},{org},{staff},{active}")
    };
    let cli = Cli::new(&server.origin, &server.token, "deactivate");
    cli.people(&[
        row("alice", "Alice Anderson", "Support", "yes", "yes"),
        row("bob", "Bob Brown", "", "no", "yes"),
        row("carol", "Carol Clark", "Sales", "no", "yes"),
    ]);

    let out = cli.run(&["validate"]);
    assert_eq!(out.code, Some(0), "{}", out.both());
    let out = cli.run(&["validate", "--online"]);
    assert_eq!(out.code, Some(0), "{}", out.both());
    let wrong = Cli::new(&server.origin, "1-1-not-a-token", "deactivate");
    let out = wrong.run(&["validate", "--online"]);
    assert_eq!(out.code, Some(1), "{}", out.both());
    assert!(out.both().contains("401"), "{}", out.both());

    let out = cli.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.code, Some(2), "{}", out.both());
    assert!(out.stdout.contains(&format!("{p}alice")), "{}", out.both());

    let out = cli.run(&["apply", "--auto-approve"]);
    assert_eq!(out.code, Some(0), "{}", out.both());
    let alice = user(&admin, &rt, &format!("{p}alice")).expect("alice in RT");
    assert_eq!(alice["RealName"], "Alice Anderson");
    assert_eq!(alice["Organization"], "Support");
    assert_eq!(alice["Privileged"], 1);
    assert_eq!(alice["Disabled"], "0");
    let bob = user(&admin, &rt, &format!("{p}bob")).expect("bob in RT");
    assert_eq!(bob["Privileged"], 0);
    assert_eq!(bob["EmailAddress"], format!("{p}bob@example.com"));
    let alice_id = alice["id"].clone();

    let out = cli.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.code, Some(0), "{}", out.both());
    assert!(out.stdout.contains("No changes"), "{}", out.both());

    // Alice renamed (login and name), Bob disabled, Carol left, Dave hired.
    cli.people(&[
        format!("{p}alice2,{p}alice@example.com,Alice Archer,Support,yes,yes"),
        row("bob", "Bob Brown", "", "no", "no"),
        row("dave", "Dave Dunn", "Support", "yes", "yes"),
    ]);
    let out = cli.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.code, Some(2), "{}", out.both());
    let out = cli.run(&["apply", "--auto-approve"]);
    assert_eq!(out.code, Some(0), "{}", out.both());

    assert!(
        user(&admin, &rt, &format!("{p}alice")).is_none(),
        "renamed away"
    );
    let alice = user(&admin, &rt, &format!("{p}alice2")).expect("alice2");
    assert_eq!(alice["id"], alice_id, "the rename kept the account");
    assert_eq!(alice["RealName"], "Alice Archer");
    assert_eq!(
        user(&admin, &rt, &format!("{p}bob")).unwrap()["Disabled"],
        "1"
    );
    let carol = user(&admin, &rt, &format!("{p}carol")).unwrap();
    assert_eq!(
        carol["Disabled"], "1",
        "the leaver is disabled, never deleted"
    );
    let dave = user(&admin, &rt, &format!("{p}dave")).expect("dave hired");
    assert_eq!(dave["Privileged"], 1);
    assert_eq!(dave["Disabled"], "0");

    let out = cli.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(out.code, Some(0), "{}", out.both());
    assert!(out.stdout.contains("No changes"), "{}", out.both());
}

#[test]
fn removed_delete_is_refused_at_validate_time() {
    let cli = Cli::new("https://rt.example.com", "unused-token", "delete");
    let out = cli.run(&["validate"]);
    assert_eq!(out.code, Some(1), "{}", out.both());
    let text = out.both();
    assert!(
        text.contains("`removed: delete` is not possible on a request_tracker target")
            && text.contains("never deletes users")
            && text.contains("removed: deactivate"),
        "{text}"
    );
}

#[test]
fn the_s6_ldap_to_rt_example_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/s6-ldap-to-rt");
    let mut c = Command::new(env!("CARGO_BIN_EXE_headcount"));
    c.current_dir(&dir)
        .env_remove("HEADCOUNT_CONFIG")
        .args(["validate"]);
    let out = run_command(
        c,
        "headcount validate (s6 example)",
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(0), "{}", out.both());
    assert!(out.stdout.contains("is valid"), "{}", out.both());
}
