//! End-to-end tests: the real binary on fixture configs in a scratch directory.

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

/// A scratch copy of `tests/fixtures/e2e`.
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Work {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/e2e");
        for entry in fs::read_dir(&src).expect("fixtures") {
            let entry = entry.expect("entry");
            fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
        }
        Work { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("headcount").expect("binary");
        c.current_dir(self.dir.path())
            .env_remove("HEADCOUNT_CONFIG")
            .env("NO_COLOR", "1");
        c
    }

    fn run(&self, args: &[&str]) -> assert_cmd::assert::Assert {
        self.cmd().args(args).write_stdin("").assert()
    }

    fn write(&self, rel: &str, text: &str) {
        fs::write(self.path(rel), text).expect("write");
    }

    fn edit_csv(&self, f: impl Fn(String) -> String) {
        let text = fs::read_to_string(self.path("people.csv")).expect("read csv");
        self.write("people.csv", &f(text));
    }

    fn exports(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.path("out"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("export-"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn plan_json(&self, extra: &[&str]) -> Value {
        let mut args = vec!["plan", "--format", "json"];
        args.extend_from_slice(extra);
        let out = self.cmd().args(&args).output().expect("run");
        serde_json::from_slice(&out.stdout).expect("plan --format json prints one JSON document")
    }

    fn apply(&self) {
        self.run(&["apply", "--auto-approve"]).success();
    }
}

fn stdout_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

#[test]
fn help_documents_exit_codes_and_commands() {
    let a = Command::cargo_bin("headcount")
        .expect("bin")
        .arg("--help")
        .assert()
        .success();
    let out = stdout_of(&a);
    for needle in [
        "Exit status",
        "2  changes present",
        "plan",
        "apply",
        "state",
        "fields",
        "schema",
        "completions",
    ] {
        assert!(out.contains(needle), "--help lacks {needle}:\n{out}");
    }
}

#[test]
fn first_plan_lists_creates_invalid_records_and_summary() {
    let w = Work::new();
    let a = w.run(&["plan"]).success();
    let out = stdout_of(&a);
    assert!(
        out.starts_with("staff: 9 to create, 0 unchanged, 2 invalid"),
        "{out}"
    );
    assert!(out.contains("+ create ann@example.com"));
    assert!(out.contains("password: (sensitive)"));
    assert!(!out.contains("s3cret-pw"), "secrets never appear in plans");
    assert!(out.contains("shorter than 6 characters"));
    // The fixture's two invalid rows are counted in the closing line (issue 7 point 4).
    assert!(out.contains("Plan: 9 to change; skipped: 2 invalid records."));
    assert!(
        !out.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    assert!(
        !w.path(".headcount/state.json").exists(),
        "plan writes no state"
    );
    assert!(w.exports().is_empty(), "plan writes no export");
}

#[test]
fn detailed_exitcode_and_strict() {
    let w = Work::new();
    w.run(&["plan", "--detailed-exitcode"]).code(2);
    w.run(&["plan", "--strict"]).code(1);
    w.apply();
    // The fixture's invalid rows are never hidden behind "No changes".
    w.run(&["plan", "--detailed-exitcode"])
        .code(0)
        .stdout(predicate::str::contains(
            "Plan: 0 to change; skipped: 2 invalid records.",
        ));
}

#[test]
fn json_plan_is_the_versioned_document() {
    let w = Work::new();
    let doc = w.plan_json(&[]);
    assert_eq!(doc["format_version"], "1");
    assert!(doc["headcount_version"].is_string());
    assert!(doc["created_at"].is_string());
    assert_eq!(doc["config"]["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(doc["state"]["lineage"], Value::Null);
    let sync = &doc["syncs"][0];
    assert_eq!(sync["name"], "staff");
    assert_eq!(sync["summary"]["create"], 9);
    assert_eq!(sync["summary"]["invalid"], 2);
    assert_eq!(sync["invalid"].as_array().map(Vec::len), Some(2));
    let text = doc.to_string();
    assert!(!text.contains("s3cret-pw"));
}

#[test]
fn markdown_plan_is_for_pr_comments() {
    let w = Work::new();
    let a = w
        .cmd()
        .args(["plan", "--format", "markdown", "--color", "always"])
        .assert()
        .success();
    let out = stdout_of(&a);
    assert!(out.contains("| sync"), "{out}");
    assert!(out.contains("<details>"));
    assert!(out.contains("(sensitive)"));
    assert!(!out.contains('\x1b'), "markdown never has ANSI");
}

#[test]
fn color_always_colours_text() {
    let w = Work::new();
    let a = w
        .cmd()
        .args(["plan", "--color", "always"])
        .assert()
        .success();
    assert!(stdout_of(&a).contains('\x1b'));
}

#[test]
fn apply_refuses_without_a_terminal_or_auto_approve_and_writes_nothing() {
    let w = Work::new();
    w.run(&["apply"])
        .code(1)
        .stderr(predicate::str::contains("--auto-approve"));
    assert!(w.exports().is_empty());
    assert!(!w.path(".headcount/state.json").exists());
}

#[test]
fn apply_then_plan_is_a_no_op_and_state_is_private() {
    let w = Work::new();
    w.run(&["apply", "--auto-approve"])
        .success()
        .stdout(predicate::str::contains("9 of 9 change(s) applied"));
    assert_eq!(w.exports(), vec!["export-000001"]);
    let users = fs::read_to_string(w.path("out/export-000001/users-001.csv")).expect("users file");
    assert!(users.starts_with("First Name,Middle Name,Last Name,Email,Password,Company,Work Phone,Cell Phone,Home Phone,Notes,department"));
    assert!(
        users.contains("s3cret-pw"),
        "the export carries the password Mojo needs"
    );
    assert!(
        users.contains(",Individuals,"),
        "empty company → Individuals"
    );
    let removals = fs::read_to_string(w.path("out/export-000001/removals.csv")).expect("removals");
    assert!(
        removals.contains("dan@example.com,deactivate"),
        "suspended → created inactive"
    );

    let state_path = w.path(".headcount/state.json");
    let state: Value =
        serde_json::from_str(&fs::read_to_string(&state_path).expect("state")).expect("json");
    assert_eq!(state["serial"], 1);
    assert!(state["lineage"].as_str().is_some_and(|l| l.len() >= 32));
    assert!(
        !state.to_string().contains("s3cret-pw"),
        "secrets never in state"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&state_path)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    // Idempotent: a second apply finds nothing to do and writes no new export.
    w.run(&["apply", "--auto-approve"])
        .success()
        .stdout(predicate::str::contains("Plan: 0 to change"));
    assert_eq!(w.exports(), vec!["export-000001"]);
}

#[test]
fn source_changes_become_updates_and_removals() {
    let w = Work::new();
    w.apply();
    w.edit_csv(|t| {
        t.replace("Ann,Archer", "Anne,Archer").replace(
            "gus@example.com,Gus,Gray,Globex,Sales,active",
            "gus@example.com,Gus,Gray,Globex,Sales,left",
        )
    });
    let doc = w.plan_json(&[]);
    let s = &doc["syncs"][0]["summary"];
    assert_eq!(
        (s["update"].as_u64(), s["deactivate"].as_u64()),
        (Some(1), Some(1))
    );
    let out = stdout_of(&w.run(&["plan"]).success());
    assert!(out.contains("first_name: \"Ann\" → \"Anne\""), "{out}");
    w.apply();
    let second =
        fs::read_to_string(w.path("out/export-000002/users-001.csv")).expect("second export");
    assert_eq!(second.lines().count(), 2, "only the changed row:\n{second}");
    assert!(second.contains("Anne,,Archer,ann@example.com"));
    let removals = fs::read_to_string(w.path("out/export-000002/removals.csv")).expect("removals");
    assert!(removals.contains("gus@example.com,deactivate"));
    w.run(&["plan", "--detailed-exitcode"]).code(0);
}

#[test]
fn mass_removal_guard_blocks_until_allowed() {
    let w = Work::new();
    w.apply();
    w.edit_csv(|t| {
        t.lines()
            .filter(|l| !l.contains("Globex"))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    });
    let a = w.run(&["plan"]).code(1);
    assert!(stdout_of(&a).contains("exceed limits.max_removals"));
    w.run(&["apply", "--auto-approve"]).code(1);
    assert_eq!(w.exports().len(), 1, "a blocked plan applies nothing");
    w.run(&["apply", "--auto-approve", "--allow-mass-removal"])
        .success();
    assert_eq!(w.exports().len(), 2);
}

#[test]
fn empty_source_never_means_everyone_left() {
    let w = Work::new();
    w.apply();
    w.write(
        "people.csv",
        "email,first,last,company,dept,status,password,notes\n",
    );
    let a = w.run(&["plan"]).code(1);
    assert!(stdout_of(&a).contains("returned no records"));
}

#[test]
fn saved_plan_applies_once_then_is_stale() {
    let w = Work::new();
    w.run(&["plan", "--out", "plan.json"]).success();
    let shown = stdout_of(&w.run(&["show", "plan.json"]).success());
    assert!(shown.contains("Plan: 9 to change; skipped: 2 invalid records."));
    w.run(&["apply", "plan.json"]).success();
    assert_eq!(w.exports().len(), 1);
    let users = fs::read_to_string(w.path("out/export-000001/users-001.csv")).expect("users");
    assert!(
        users.contains("s3cret-pw"),
        "sensitive values are re-read from the source on apply"
    );
    w.run(&["apply", "plan.json"])
        .code(1)
        .stderr(predicate::str::contains("stale").and(predicate::str::contains("state changed")));
    assert_eq!(w.exports().len(), 1, "a stale plan writes nothing");
}

#[test]
fn saved_plan_is_stale_when_the_config_changes() {
    let w = Work::new();
    w.run(&["plan", "--out", "plan.json"]).success();
    let cfg = fs::read_to_string(w.path("headcount.yaml")).expect("cfg");
    w.write(
        "headcount.yaml",
        &cfg.replace("removed: deactivate", "removed: delete"),
    );
    w.run(&["apply", "plan.json"]).code(1).stderr(
        predicate::str::contains("config").and(predicate::str::contains("changed since the plan")),
    );
    assert!(w.exports().is_empty());
}

#[test]
fn saved_plan_is_stale_when_a_target_account_changed() {
    let w = Work::new();
    w.apply();
    w.edit_csv(|t| t.replace("Ann,Archer", "Anne,Archer"));
    w.run(&["plan", "--out", "plan.json"]).success();
    // Someone changes Ann in the target (another export set) after the plan was made.
    let dir = w.path("out/export-000002");
    fs::create_dir_all(&dir).expect("dir");
    fs::write(
        dir.join("users-001.csv"),
        "First Name,Middle Name,Last Name,Email,Password,Company,Work Phone,Cell Phone,Home Phone,Notes,department\nAnnie,,Archer,ann@example.com,,Acme,,,,,Sales\n",
    )
    .expect("write");
    w.run(&["apply", "plan.json"]).code(1).stderr(
        predicate::str::contains("ann@example.com")
            .and(predicate::str::contains("changed in the target")),
    );
    assert_eq!(w.exports().len(), 2);
}

#[test]
fn show_renders_every_format() {
    let w = Work::new();
    w.run(&["plan", "--out", "plan.json"]).success();
    let json = stdout_of(&w.run(&["show", "plan.json", "--format", "json"]).success());
    let saved: Value =
        serde_json::from_str(&fs::read_to_string(w.path("plan.json")).expect("plan"))
            .expect("json");
    assert_eq!(serde_json::from_str::<Value>(&json).expect("json"), saved);
    w.run(&["show", "plan.json", "--format", "markdown"])
        .success()
        .stdout(predicate::str::contains("<details>"));
    w.write("bad.json", "{\"format_version\": \"9\"}");
    w.run(&["show", "bad.json"])
        .code(1)
        .stderr(predicate::str::contains("format_version 9"));
}

#[test]
fn state_commands_list_show_forget_unlock() {
    let w = Work::new();
    w.apply();
    let list = stdout_of(&w.run(&["state", "list"]).success());
    assert_eq!(list.lines().count(), 9, "{list}");
    assert!(list.contains("staff\tmojo\tann@example.com"));
    w.run(&["state", "show", "ann@example.com"])
        .success()
        .stdout(predicate::str::contains("\"origin\": \"created\""));
    w.run(&["state", "show", "nobody@example.com"]).code(1);
    w.run(&["state", "forget", "ann@example.com"]).success();
    assert_eq!(
        stdout_of(&w.run(&["state", "list"]).success())
            .lines()
            .count(),
        8
    );
    // Forgotten, then seen again: adopted, never duplicated.
    let doc = w.plan_json(&[]);
    assert_eq!(doc["syncs"][0]["summary"]["adopt"], 1);
    assert_eq!(doc["syncs"][0]["summary"]["create"], 0);

    // A lock left by a run that was killed: its OS lock died with it, so the next apply takes
    // it over and names the run that left it.
    let left = r#"{"holder":"ci@runner-7","pid":4194304,"host":"runner-7","created_at":"2026-11-20T10:00:00Z","operation":"apply","headcount_version":"0.1.0"}"#;
    fs::write(w.path(".headcount/state.json.lock"), left).expect("lock");
    let a = w.run(&["apply", "--auto-approve"]).success();
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(
        err.contains("took over the state lock left by ci@runner-7"),
        "{err}"
    );
    assert!(
        !w.path(".headcount/state.json.lock").exists(),
        "released after the apply"
    );

    // A lock held by a running process blocks apply with its holder.
    let held = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(w.path(".headcount/state.json.lock"))
        .expect("lock file");
    held.lock().expect("OS lock");
    fs::write(
        w.path(".headcount/state.json.lock"),
        left.replace("4194304", &std::process::id().to_string()),
    )
    .expect("holder");
    let a = w.run(&["apply", "--auto-approve"]).code(1);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(
        err.contains("ci@runner-7") && err.contains("state unlock"),
        "{err}"
    );
    // `state unlock` removes it whoever holds it, naming the holder.
    w.run(&["state", "unlock"])
        .success()
        .stdout(predicate::str::contains("ci@runner-7"));
    drop(held);
    w.apply();
}

#[test]
fn sync_removed_from_config_is_forgotten_not_touched() {
    let w = Work::new();
    w.apply();
    let cfg = fs::read_to_string(w.path("headcount.yaml")).expect("cfg");
    w.write(
        "headcount.yaml",
        &cfg.replace("name: staff", "name: everyone"),
    );
    let doc = w.plan_json(&[]);
    let old = doc["syncs"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "staff"))
        .cloned();
    assert_eq!(
        old.map(|s| s["summary"]["forget"].clone()),
        Some(Value::from(9))
    );
}

#[test]
fn unknown_sync_name_suggests_the_nearest() {
    let w = Work::new();
    w.run(&["plan", "--sync", "staf"])
        .code(1)
        .stderr(predicate::str::contains("did you mean `staff`"));
}

#[test]
fn bad_config_exits_1_with_location() {
    let w = Work::new();
    let cfg = fs::read_to_string(w.path("headcount.yaml")).expect("cfg");
    w.write(
        "headcount.yaml",
        &cfg.replace("    from: hr", "    frm: hr"),
    );
    w.run(&["validate"]).code(1).stderr(
        predicate::str::contains("headcount.yaml:").and(predicate::str::contains("`from`")),
    );
    w.run(&["plan"]).code(1);
}

#[test]
fn non_utf8_csv_is_reported_with_row_and_offset_and_nothing_is_written() {
    let w = Work::new();
    let mut bytes = fs::read(w.path("people.csv")).expect("csv");
    let at = bytes.iter().position(|b| *b == b'A').expect("an A");
    bytes[at] = 0xff;
    fs::write(w.path("people.csv"), bytes).expect("write");
    let a = w.run(&["apply", "--auto-approve"]).code(1);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&a.get_output().stdout),
        String::from_utf8_lossy(&a.get_output().stderr)
    );
    assert!(
        out.contains("row 2") && out.contains("byte offset"),
        "{out}"
    );
    assert!(w.exports().is_empty());
}

#[test]
fn missing_config_says_how_to_start() {
    let dir = tempfile::tempdir().expect("tmp");
    Command::cargo_bin("headcount")
        .expect("bin")
        .current_dir(dir.path())
        .env_remove("HEADCOUNT_CONFIG")
        .arg("plan")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("headcount init"));
}

#[test]
fn init_writes_a_valid_starter_with_schema_modeline() {
    let dir = tempfile::tempdir().expect("tmp");
    let run = |args: &[&str]| {
        Command::cargo_bin("headcount")
            .expect("bin")
            .current_dir(dir.path())
            .env_remove("HEADCOUNT_CONFIG")
            .args(args)
            .assert()
    };
    run(&["init"]).success();
    let text = fs::read_to_string(dir.path().join("headcount.yaml")).expect("starter");
    assert!(text.starts_with("# yaml-language-server: $schema=./schemas/headcount.schema.json"));
    assert!(dir.path().join("schemas/headcount.schema.json").exists());
    run(&["validate"]).success();
    run(&["init"])
        .code(1)
        .stderr(predicate::str::contains("--force"));
    run(&["init", "--force", "--source", "ldap", "--target", "scim"]).success();
    run(&["validate"]).success();
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let committed = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/headcount.schema.json"),
    )
    .expect("schema");
    Command::cargo_bin("headcount")
        .expect("bin")
        .arg("schema")
        .assert()
        .success()
        .stdout(committed);
}

#[test]
fn fields_lists_kinds() {
    let a = Command::cargo_bin("headcount")
        .expect("bin")
        .args(["fields", "mojo_helpdesk"])
        .assert()
        .success();
    let out = stdout_of(&a);
    assert!(
        out.contains("email") && out.contains("create only") && out.contains("custom_field_<key>"),
        "{out}"
    );
    let a = Command::cargo_bin("headcount")
        .expect("bin")
        .args(["fields", "scim", "--format", "json"])
        .assert()
        .success();
    let v: Value = serde_json::from_slice(&a.get_output().stdout).expect("json");
    assert!(v.as_array().is_some_and(|f| {
        f.iter()
            .any(|f| f["name"] == "userName" && f["identity"] == "case_insensitive")
    }));
    Command::cargo_bin("headcount")
        .expect("bin")
        .args(["fields", "nope"])
        .assert()
        .code(1);
}

#[test]
fn completions_are_generated() {
    Command::cargo_bin("headcount")
        .expect("bin")
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("headcount"));
}

#[test]
fn quickstart_example_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    Command::cargo_bin("headcount")
        .expect("bin")
        .current_dir(&dir)
        .args(["validate"])
        .assert()
        .success();
}

#[test]
fn readme_documents_the_expression_functions() {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README");
    assert!(
        readme.contains(headcount::expr::FUNCTIONS_DOC.trim()),
        "README.md's expression table differs from expr::FUNCTIONS_DOC: copy it over"
    );
}

/// Runs `headcount apply` on a pseudo-terminal (util-linux `script`), answering `answer`.
fn apply_on_tty(w: &Work, answer: &str) -> String {
    let bin = assert_cmd::cargo::cargo_bin("headcount");
    let out = std::process::Command::new("script")
        .args(["-qec", &format!("{} apply", bin.display()), "/dev/null"])
        .current_dir(w.dir.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(answer.as_bytes())?;
            }
            child.wait_with_output()
        })
        .expect("script(1) from util-linux runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn apply_on_a_terminal_asks_and_only_yes_applies() {
    let w = Work::new();
    let out = apply_on_tty(&w, "no\n");
    assert!(out.contains("Only 'yes' will be accepted"), "{out}");
    assert!(out.contains("Apply cancelled."), "{out}");
    assert!(w.exports().is_empty());
    let out = apply_on_tty(&w, "yes\n");
    assert!(out.contains("9 of 9 change(s) applied"), "{out}");
    assert_eq!(w.exports(), vec!["export-000001"]);
}

#[test]
fn apply_writes_a_redacted_audit_log() {
    let w = Work::new();
    w.apply();
    let text = fs::read_to_string(w.path(".headcount/audit.jsonl")).expect("audit log");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 9, "one line per applied operation");
    for l in &lines {
        assert_eq!(l["result"], "ok");
        assert_eq!(l["sync"], "staff");
        assert_eq!(l["action"], "create");
        assert!(l["time"].is_string() && l["identity"]["email"].is_string());
    }
    let bob = lines
        .iter()
        .find(|l| l["identity"]["email"] == "bob@example.com")
        .expect("bob");
    assert_eq!(bob["fields"]["password"]["after"], "(sensitive)");
    assert!(
        !text.contains("s3cret-pw"),
        "secrets never in the audit log"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(w.path(".headcount/audit.jsonl"))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    // A later apply appends.
    w.edit_csv(|t| t.replace("Ann,Archer", "Anne,Archer"));
    w.apply();
    let text = fs::read_to_string(w.path(".headcount/audit.jsonl")).expect("audit log");
    assert_eq!(text.lines().count(), 10);
}

#[test]
fn apply_json_streams_one_object_per_operation() {
    let w = Work::new();
    w.run(&["apply", "--json"])
        .code(1)
        .stderr(predicate::str::contains("--auto-approve"));
    let a = w.run(&["apply", "--json", "--auto-approve"]).success();
    let lines: Vec<Value> = stdout_of(&a)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is one JSON object"))
        .collect();
    assert_eq!(lines[0]["type"], "plan");
    assert_eq!(lines.iter().filter(|l| l["type"] == "operation").count(), 9);
    let last = lines.last().expect("summary");
    assert_eq!(last["type"], "summary");
    assert_eq!(last["applied"], 9);
    assert_eq!(last["failed"], 0);
    assert!(!stdout_of(&a).contains("s3cret-pw"));
}

#[test]
fn saved_plan_is_stale_when_an_account_to_create_appeared() {
    let w = Work::new();
    w.run(&["plan", "--out", "plan.json"]).success();
    let dir = w.path("out/export-000001");
    fs::create_dir_all(&dir).expect("dir");
    fs::write(
        dir.join("users-001.csv"),
        "First Name,Middle Name,Last Name,Email,Password,Company,Work Phone,Cell Phone,Home Phone,Notes,department\nAnn,,Archer,ANN@example.com,,Acme,,,,,Sales\n",
    )
    .expect("write");
    w.run(&["apply", "plan.json"])
        .code(1)
        .stderr(predicate::str::contains(
            "ann@example.com was to be created",
        ));
    assert_eq!(w.exports().len(), 1, "nothing written");
}

fn git(dir: &Path, args: &[&str]) {
    let ok = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs")
        .status
        .success();
    assert!(ok, "git {args:?}");
}

#[test]
fn plan_base_separates_what_the_config_change_causes() {
    let w = Work::new();
    git(w.dir.path(), &["init", "-q", "-b", "main"]);
    git(w.dir.path(), &["add", "headcount.yaml", "people.csv"]);
    git(w.dir.path(), &["commit", "-q", "-m", "base"]);
    w.apply();
    // The config change: everyone's company becomes "Staff". A source change: Ann is renamed.
    let cfg = fs::read_to_string(w.path("headcount.yaml")).expect("cfg");
    w.write(
        "headcount.yaml",
        &cfg.replace("group: user.company", "group: '\"Staff\"'"),
    );
    w.edit_csv(|t| t.replace("Ann,Archer", "Anne,Archer"));
    let out = stdout_of(&w.run(&["plan", "--base", "main"]).success());
    assert!(
        out.contains("What the config change causes (compared with main"),
        "{out}"
    );
    assert!(
        out.contains("this change moves 5 accounts from Globex to Staff (group)"),
        "{out}"
    );
    assert!(
        out.contains("this change moves 3 accounts from Acme to Staff (group)"),
        "{out}"
    );
    assert!(
        out.contains("this change moves 1 account from Individuals to Staff (group)"),
        "{out}"
    );
    assert!(
        !out.contains("(first_name)"),
        "Ann's rename comes from the source, not the config:\n{out}"
    );
    let doc = w.plan_json(&["--base", "main"]);
    assert_eq!(doc["base"]["gitref"], "main");
    // Every update carries a group move, so all 9 are (at least partly) caused by the config.
    assert_eq!(
        doc["base"]["caused"][0]["changes"].as_array().map(Vec::len),
        Some(9)
    );
    assert_eq!(doc["base"]["pending"], 0);
    let md = stdout_of(
        &w.run(&["plan", "--base", "main", "--format", "markdown"])
            .success(),
    );
    assert!(md.contains("**What this config change causes**"), "{md}");
    w.run(&["plan", "--base", "no-such-ref"])
        .code(1)
        .stderr(predicate::str::contains("no-such-ref"));
}

/// Issue 7 point 4: a config that matches nobody (a typo in a key) is an error naming the
/// reason, exit 1 with or without --detailed-exitcode, never "No changes".
#[test]
fn a_config_that_matches_nobody_is_an_error() {
    let w = Work::new();
    let config = fs::read_to_string(w.path("headcount.yaml")).expect("config");
    w.write(
        "headcount.yaml",
        &config.replace("first_name: user.first", "first_name: user.firstname"),
    );
    for extra in [&[][..], &["--detailed-exitcode"][..]] {
        let mut args = vec!["plan"];
        args.extend_from_slice(extra);
        let a = w.run(&args).code(1);
        let out = stdout_of(&a);
        assert!(!out.contains("No changes"), "{out}");
        assert!(out.contains("matches nobody"), "{out}");
        assert!(out.contains("user.firstname is not set"), "{out}");
    }
    let json = w.plan_json(&[]);
    let sync = &json["syncs"][0];
    assert!(
        sync["summary"]["invalid"].as_u64().unwrap_or(0) > 0,
        "{sync}"
    );
    assert!(
        !sync["errors"].as_array().is_none_or(Vec::is_empty),
        "{sync}"
    );
    // Nothing can be applied from it.
    w.run(&["apply", "--auto-approve"]).code(1);
    assert!(w.exports().is_empty());
}

/// Issue 7 point 10: a plan applied with another config file says so, not "config changed".
#[test]
fn saved_plan_made_with_another_config_file_says_so() {
    let w = Work::new();
    w.run(&["plan", "--out", "plan.json"]).success();
    let cfg = fs::read_to_string(w.path("headcount.yaml")).expect("cfg");
    w.write(
        "other.yaml",
        &cfg.replace("removed: deactivate", "removed: delete"),
    );
    let a = w
        .run(&["--config", "other.yaml", "apply", "plan.json"])
        .code(1);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(
        err.contains("made with another config file, headcount.yaml, not other.yaml"),
        "{err}"
    );
    assert!(!err.contains("changed since the plan"), "{err}");
    assert!(w.exports().is_empty());
}

/// Issue 7 point 3: endless inputs end quickly with a clear error: a secret file at
/// `/dev/zero`, a CSV source at `/dev/zero`, and twelve chained `replace` calls.
#[test]
fn endless_inputs_end_quickly_with_a_clear_error() {
    let w = Work::new();
    let config = fs::read_to_string(w.path("headcount.yaml")).expect("config");
    let timed = |args: &[&str]| {
        let started = std::time::Instant::now();
        let out = w
            .cmd()
            .args(args)
            .env("SCIM_TOKEN", "t0ken")
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .expect("run");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{args:?} took {:?}",
            started.elapsed()
        );
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };

    let scim = "version: 1
sources:
  hr:
    kind: csv
    path: people.csv
targets:
  scim:
    kind: scim
    base_url: https://scim.example.com
    token: { file: /dev/zero }
syncs:
  - name: staff
    from: hr
    to: scim
    identity: [userName]
    fields:
      userName: user.email
";
    w.write("secret.yaml", scim);
    let out = timed(&["--config", "secret.yaml", "plan"]);
    assert!(out.contains("/dev/zero` is not a regular file"), "{out}");

    w.write(
        "zero.yaml",
        &config.replace("path: people.csv", "path: /dev/zero"),
    );
    let out = timed(&["--config", "zero.yaml", "plan"]);
    assert!(out.contains("/dev/zero: not a regular file"), "{out}");

    let replaces = ".replace(\"\", \"xx\")".repeat(12);
    w.write(
        "replace.yaml",
        &config.replace(
            "first_name: user.first",
            &format!("first_name: 'user.first{replaces}'"),
        ),
    );
    let out = timed(&["--config", "replace.yaml", "plan"]);
    assert!(out.contains("the limit is 1 MiB per value"), "{out}");
    assert!(out.contains("matches nobody"), "{out}");
}
