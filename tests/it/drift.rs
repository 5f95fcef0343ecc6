//! `headcount drift` through the binary against the Mojo emulator (SPEC sections 3 and 9):
//! apply, then change accounts in the target by hand and in the source, and check each cause
//! label, the exit codes (`--fail-on`), the JSON document and the markdown view.

use std::path::{Path, PathBuf};
use std::process::Output;

use headcount::testkit::fault::{Fault, Match};
use headcount::testkit::mojo::MojoEmulator;
use serde_json::{Value, json};

const KEY: &str = "mojo-drift-key";

struct Setup {
    emu: MojoEmulator,
    dir: tempfile::TempDir,
}

fn config(base_url: &str, manage: &str) -> String {
    config_with(base_url, manage, "")
}

fn config_with(base_url: &str, manage: &str, extra: &str) -> String {
    format!(
        r#"version: 1
sources:
  hr: {{ kind: csv, path: people.csv }}
targets:
  helpdesk:
    kind: mojo_helpdesk
    base_url: {base_url}
    access_key: {{ env: HC_TEST_MOJO_KEY }}
syncs:
  - name: staff
    from: hr
    to: helpdesk
    identity: [email]
    manage: {manage}
    fields:
      email: user.email
      first_name: user.first
      last_name: user.last
{extra}"#
    )
}

const PEOPLE: &str = "email,first,last\n\
ann@x.io,Ann,One\n\
bob@x.io,Bob,Two\n\
cat@x.io,Cat,Three\n\
dan@x.io,Dan,Four\n\
eve@x.io,Eve,Five\n";

impl Setup {
    /// An emulator, a config and a CSV, applied once: the state holds five accounts.
    async fn applied(manage: &str) -> Setup {
        let emu = MojoEmulator::start(KEY).await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("people.csv"), PEOPLE).unwrap();
        std::fs::write(
            dir.path().join("headcount.yaml"),
            config(&emu.base_url(), manage),
        )
        .unwrap();
        let s = Setup { emu, dir };
        let out = s.run(&["apply", "--auto-approve", "--no-progress"]).await;
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(s.emu.users().len(), 5);
        s
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn edit_source(&self, from: &str, to: &str) {
        let p = self.path("people.csv");
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(from));
        std::fs::write(&p, text.replace(from, to)).unwrap();
    }

    async fn run(&self, args: &[&str]) -> Output {
        let dir: PathBuf = self.dir.path().to_path_buf();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || run_in(&dir, &args))
            .await
            .unwrap()
    }
}

fn run_in(dir: &Path, args: &[String]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_headcount"))
        .args(args)
        .current_dir(dir)
        .env("HC_TEST_MOJO_KEY", KEY)
        .env("NO_COLOR", "1")
        .env_remove("HEADCOUNT_CONFIG")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

/// The difference of `email` in the first sync of a drift document.
fn difference<'a>(doc: &'a Value, email: &str) -> &'a Value {
    doc["syncs"][0]["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["identity"]["email"] == email)
        .unwrap_or_else(|| panic!("no difference for {email}: {doc:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_difference_is_labelled_by_its_cause() {
    let s = Setup::applied("owned").await;
    let state_before = std::fs::read(s.path(".headcount/state.json")).unwrap();

    // Right after apply: no drift, exit 0, and only reads.
    s.emu.log().clear();
    let out = s.run(&["drift"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("No drift."), "{}", text(&out));
    assert!(
        text(&out).contains("staff: no drift, 5 in sync"),
        "{}",
        text(&out)
    );
    assert!(s.emu.log().writes().is_empty(), "drift only reads");
    assert_eq!(
        s.emu.log().count(),
        2,
        "one user page and one group page, as a no-op plan: {:?}",
        s.emu.log().lines()
    );

    // ann: changed by hand in the target → target.
    assert!(s.emu.edit("ann@x.io", json!({"last_name": "Hacked"})));
    // bob: changed in the source → source.
    s.edit_source("bob@x.io,Bob,Two", "bob@x.io,Bob,Twain");
    // cat: changed in both, to different values → both.
    s.edit_source("cat@x.io,Cat,Three", "cat@x.io,Cat,Tree");
    assert!(s.emu.edit("cat@x.io", json!({"last_name": "Thrice"})));
    // dan: deleted in the target → missing.
    assert!(s.emu.remove("dan@x.io"));
    // eve: deactivated by hand in the target, and her first name changed in the source: one
    // `target` value and one `source` value on one account.
    assert!(s.emu.edit("eve@x.io", json!({"is_active": false})));
    s.edit_source("eve@x.io,Eve,Five", "eve@x.io,Evelyn,Five");

    let out = s.run(&["drift", "--format", "json"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let doc = json_of(&out);
    assert_eq!(doc["format_version"], "1");
    assert!(doc["config"]["sha256"].is_string());
    let sync = &doc["syncs"][0];
    assert_eq!(sync["name"], "staff");
    assert_eq!(
        sync["summary"],
        json!({"source": 1, "target": 1, "both": 2, "missing": 1, "unmanaged": 0, "in_sync": 0})
    );

    let ann = difference(&doc, "ann@x.io");
    assert_eq!(ann["cause"], "target");
    assert_eq!(ann["action"], "update");
    assert!(ann["target_id"].is_string());
    assert_eq!(
        ann["fields"]["last_name"],
        json!({"cause": "target", "last_applied": "One", "live": "Hacked", "desired": "One"})
    );

    let bob = difference(&doc, "bob@x.io");
    assert_eq!(bob["cause"], "source");
    assert_eq!(
        bob["fields"]["last_name"],
        json!({"cause": "source", "last_applied": "Two", "live": "Two", "desired": "Twain"})
    );

    let cat = difference(&doc, "cat@x.io");
    assert_eq!(cat["cause"], "both");
    assert_eq!(
        cat["fields"]["last_name"],
        json!({"cause": "both", "last_applied": "Three", "live": "Thrice", "desired": "Tree"})
    );

    let dan = difference(&doc, "dan@x.io");
    assert_eq!(dan["cause"], "missing");
    assert_eq!(dan["action"], "create");
    assert_eq!(dan["fields"]["last_name"]["last_applied"], "Four");
    assert_eq!(dan["fields"]["last_name"]["live"], Value::Null);

    let eve = difference(&doc, "eve@x.io");
    assert_eq!(
        eve["cause"], "both",
        "one source field and one target value"
    );
    assert_eq!(eve["fields"]["first_name"]["cause"], "source");
    assert_eq!(
        eve["active"],
        json!({"cause": "target", "last_applied": true, "live": false, "desired": true})
    );

    // Text: a summary line like the plan's, each difference with its cause and live → desired.
    let out = s.run(&["drift"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        t.contains(
            "staff: 1 changed in the source, 1 changed in the target, 2 changed in both, 1 missing from the target, 0 in sync"
        ),
        "{t}"
    );
    assert!(
        t.contains("[target] last_name: \"Hacked\" → \"One\" (last applied: \"One\")"),
        "{t}"
    );
    assert!(t.contains("[missing] dan@x.io"), "{t}");
    assert!(
        t.contains("[target] active: false → true (last applied: true)"),
        "{t}"
    );
    assert!(
        t.contains("Drift: 5 accounts differ, 4 changed out of band in the target."),
        "{t}"
    );

    // Markdown: a table and details, no ANSI even when colour is forced.
    let out = s
        .run(&["--color", "always", "drift", "--format", "markdown"])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let md = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!md.contains('\x1b'), "{md}");
    assert!(md.contains("| staff | 1 | 1 | 2 | 1 | 0 | 0 |"), "{md}");
    assert!(md.contains("<details><summary>staff:"), "{md}");

    // `--fail-on target`: out-of-band changes are there, so 2.
    let out = s.run(&["drift", "--fail-on", "target"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // drift wrote nothing: the state is as apply left it.
    assert_eq!(
        std::fs::read(s.path(".headcount/state.json")).unwrap(),
        state_before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_on_target_ignores_source_changes() {
    let s = Setup::applied("owned").await;
    s.edit_source("bob@x.io,Bob,Two", "bob@x.io,Bob,Twain");
    s.edit_source("dan@x.io,Dan,Four\n", "");
    s.edit_source(
        "eve@x.io,Eve,Five\n",
        "eve@x.io,Eve,Five\nfay@x.io,Fay,Six\n",
    );

    let out = s.run(&["drift", "--fail-on", "target"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        t.contains("staff: 3 changed in the source, 3 in sync"),
        "{t}"
    );
    assert!(
        t.contains("Drift: 3 accounts differ, 0 changed out of band in the target."),
        "{t}"
    );

    let out = s.run(&["drift", "--format", "json"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let doc = json_of(&out);
    // A new person, someone who left, and a changed value: all `source`.
    assert_eq!(difference(&doc, "fay@x.io")["action"], "create");
    assert_eq!(difference(&doc, "fay@x.io")["target_id"], Value::Null);
    assert_eq!(difference(&doc, "dan@x.io")["action"], "deactivate");
    for email in ["bob@x.io", "dan@x.io", "fay@x.io"] {
        assert_eq!(difference(&doc, email)["cause"], "source", "{email}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manage_all_reports_unmanaged_accounts() {
    let s = Setup::applied("all").await;
    s.emu
        .insert(json!({"email": "stray@x.io", "first_name": "Stray", "is_active": true}));
    let out = s.run(&["drift", "--format", "json"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let doc = json_of(&out);
    let stray = difference(&doc, "stray@x.io");
    assert_eq!(stray["cause"], "unmanaged");
    assert_eq!(stray["action"], "deactivate");
    assert_eq!(doc["syncs"][0]["summary"]["unmanaged"], 1);
    assert_eq!(doc["syncs"][0]["summary"]["in_sync"], 5);
    // Not an out-of-band change of a managed account.
    let out = s.run(&["drift", "--fail-on", "target"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_exit_1_never_2() {
    let s = Setup::applied("owned").await;
    assert!(s.emu.edit("ann@x.io", json!({"last_name": "Hacked"})));
    // A usage error.
    let out = s.run(&["drift", "--fail-on", "sometimes"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = s.run(&["drift", "--bogus"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // An unknown sync.
    let out = s.run(&["drift", "--sync", "nope"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // A target that cannot be listed: drift is unknown, not absent.
    s.emu
        .faults()
        .on(Match::get("/api/v2/users"))
        .inject(Fault::status(403));
    let out = s.run(&["drift", "--fail-on", "target"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("could not be listed"), "{}", text(&out));
    s.emu.faults().clear();
    // A source that cannot be read: drift is unknown, not absent.
    std::fs::remove_file(s.path("people.csv")).unwrap();
    let out = s.run(&["drift"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("could not be compared"),
        "{}",
        text(&out)
    );
    // An empty source is a broken read, never "everyone left".
    std::fs::write(s.path("people.csv"), "email,first,last\n").unwrap();
    let out = s.run(&["drift", "--format", "json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        json_of(&out)["syncs"][0]["errors"][0]
            .as_str()
            .unwrap()
            .contains("returned no records")
    );
}

#[test]
fn help_lists_drift() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["--help".to_string()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("drift"));
    let out = run_in(dir.path(), &["drift".to_string(), "--help".to_string()]);
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(help.contains("--fail-on"), "{help}");
    assert!(help.contains("2  drift found"), "{help}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensitive_values_are_never_shown() {
    let emu = MojoEmulator::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("people.csv"),
        "email,first,last,pw\nann@x.io,Ann,One,hunter2-secret\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("headcount.yaml"),
        config_with(&emu.base_url(), "owned", "      password: user.pw\n"),
    )
    .unwrap();
    let s = Setup { emu, dir };
    let out = s.run(&["apply", "--auto-approve", "--no-progress"]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(s.emu.remove("ann@x.io"));
    for format in ["text", "json", "markdown"] {
        let out = s.run(&["drift", "--format", format]).await;
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(!text(&out).contains("hunter2"), "{format}: {}", text(&out));
    }
    let doc = json_of(&s.run(&["drift", "--format", "json"]).await);
    let pw = &difference(&doc, "ann@x.io")["fields"]["password"];
    assert_eq!(pw["sensitive"], true, "{doc:#}");
    assert_eq!(pw["desired"], json!({"sensitive": true}));
}
