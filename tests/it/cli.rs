//! End-to-end tests: the real binary on fixture configs in a scratch directory.

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

use crate::support::work::Work;

impl Work {
    /// Removes the source rows that contain `needle` (people who left).
    fn drop_rows(&self, needle: &str) {
        self.edit_csv(|t| {
            t.lines()
                .filter(|l| !l.contains(needle))
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        });
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
    let w = Work::new("e2e");
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
    let w = Work::new("e2e");
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
    let w = Work::new("e2e");
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
    let w = Work::new("e2e");
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
    let w = Work::new("e2e");
    let a = w
        .cmd()
        .args(["plan", "--color", "always"])
        .assert()
        .success();
    assert!(stdout_of(&a).contains('\x1b'));
}

#[test]
fn apply_refuses_without_a_terminal_or_auto_approve_and_writes_nothing() {
    let w = Work::new("e2e");
    w.run(&["apply"])
        .code(1)
        .stderr(predicate::str::contains("--auto-approve"));
    assert!(w.exports().is_empty());
    assert!(!w.path(".headcount/state.json").exists());
}

#[test]
fn apply_then_plan_is_a_no_op_and_state_is_private() {
    let w = Work::new("e2e");
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
    let w = Work::new("e2e");
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
    let w = Work::new("e2e");
    w.apply();
    w.drop_rows("Globex");
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
    let w = Work::new("e2e");
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
    let w = Work::new("e2e");
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
    let w = Work::new("e2e");
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
    let w = Work::new("e2e");
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
    let w = Work::new("e2e");
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
    let w = Work::new("e2e");
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

    // A lock of another host (a folder shared between machines) is never taken over, though
    // its OS lock is free here: the error names the holder and `state unlock`.
    let left = r#"{"holder":"ci@runner-7","pid":4194304,"host":"runner-7","created_at":"2026-11-20T10:00:00Z","operation":"apply","headcount_version":"0.1.0"}"#;
    fs::write(w.path(".headcount/state.json.lock"), left).expect("lock");
    let a = w.run(&["apply", "--auto-approve"]).code(1);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(
        err.contains("ci@runner-7") && err.contains("another host") && err.contains("state unlock"),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(w.path(".headcount/state.json.lock")).expect("lock"),
        left
    );
    w.run(&["state", "unlock"])
        .success()
        .stdout(predicate::str::contains("another host: ci@runner-7"));
    w.run(&["state", "unlock"])
        .success()
        .stdout(predicate::str::contains("nothing was removed"));
    // An unreadable lock file is reported, not replaced.
    fs::write(w.path(".headcount/state.json.lock"), "{\"holder").expect("lock");
    let a = w.run(&["apply", "--auto-approve"]).code(1);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(
        err.contains("cannot be read") && err.contains("state unlock"),
        "{err}"
    );
    w.run(&["state", "unlock"])
        .success()
        .stdout(predicate::str::contains("could not be read"));

    // A lock left by a run of this host that was killed: its OS lock died with it, so the next
    // apply takes it over and names the run that left it.
    let host = hostname::get()
        .expect("hostname")
        .to_string_lossy()
        .into_owned();
    let left = left.replace("\"host\":\"runner-7\"", &format!("\"host\":{host:?}"));
    fs::write(w.path(".headcount/state.json.lock"), &left).expect("lock");
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
    // `state unlock` removes it whoever holds it, naming the holder and saying it still runs.
    w.run(&["state", "unlock"]).success().stdout(
        predicate::str::contains("ci@runner-7")
            .and(predicate::str::contains("still running on this host")),
    );
    drop(held);
    w.apply();
}

#[test]
fn sync_removed_from_config_is_forgotten_not_touched() {
    let w = Work::new("e2e");
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
    let w = Work::new("e2e");
    w.run(&["plan", "--sync", "staf"])
        .code(1)
        .stderr(predicate::str::contains("did you mean `staff`"));
}

#[test]
fn bad_config_exits_1_with_location() {
    let w = Work::new("e2e");
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
    let w = Work::new("e2e");
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
    let w = Work::new("e2e");
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
    let w = Work::new("e2e");
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
    let w = Work::new("e2e");
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
    let w = Work::new("e2e");
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
    let w = Work::new("e2e");
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

/// Every file under the scratch folder except the plan files, with its contents: what a refused
/// apply must leave exactly as it was (exports, state, journal, lock, audit log).
fn files_of(w: &Work) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p
                .strip_prefix(root)
                .map(|r| r.display().to_string())
                .unwrap_or_default();
            if p.is_dir() {
                out.push((format!("{rel}/"), Vec::new()));
                walk(root, &p, out);
            } else if !rel.starts_with("plan") {
                out.push((rel, fs::read(&p).unwrap_or_default()));
            }
        }
    }
    let mut out = Vec::new();
    walk(w.dir.path(), w.dir.path(), &mut out);
    out.sort();
    out
}

/// Reads `plan.json`, lets `edit` change it, writes it back.
fn edit_plan(w: &Work, edit: impl Fn(&mut Value)) {
    let text = fs::read_to_string(w.path("plan.json")).expect("plan");
    let mut doc: Value = serde_json::from_str(&text).expect("json");
    edit(&mut doc);
    w.write(
        "plan.json",
        &serde_json::to_string_pretty(&doc).expect("json"),
    );
}

/// The change of `email` in the first sync of a plan document.
fn change_of<'a>(doc: &'a mut Value, email: &str) -> &'a mut Value {
    doc["syncs"][0]["changes"]
        .as_array_mut()
        .and_then(|c| c.iter_mut().find(|c| c["identity"]["email"] == email))
        .expect("change")
}

#[test]
fn saved_plan_with_an_edited_after_is_refused_and_writes_nothing() {
    let w = Work::new("e2e");
    w.apply();
    w.edit_csv(|t| t.replace("Ann,Archer", "Anne,Archer"));
    w.run(&["plan", "--out", "plan.json"]).success();
    edit_plan(&w, |doc| {
        change_of(doc, "ann@example.com")["fields"]["first_name"]["after"] = "Mallory".into();
    });
    let before = files_of(&w);
    w.run(&["apply", "plan.json"]).code(1).stderr(
        predicate::str::contains("update ann@example.com")
            .and(predicate::str::contains("`first_name`"))
            .and(predicate::str::contains("stale or was edited")),
    );
    assert_eq!(files_of(&w), before, "nothing written");
    // The honest plan still applies.
    w.run(&["plan", "--out", "plan.json"]).success();
    w.run(&["apply", "plan.json"]).success();
    assert_eq!(w.exports().len(), 2);
}

#[test]
fn saved_plan_with_a_create_no_source_has_is_refused_and_writes_nothing() {
    let w = Work::new("e2e");
    w.run(&["plan", "--out", "plan.json"]).success();
    edit_plan(&w, |doc| {
        let mut zed = change_of(doc, "ann@example.com").clone();
        zed["identity"]["email"] = "zed@example.com".into();
        zed["fields"]["email"]["after"] = "zed@example.com".into();
        let sync = &mut doc["syncs"][0];
        sync["changes"].as_array_mut().expect("changes").push(zed);
        sync["summary"]["create"] = 10.into();
    });
    let before = files_of(&w);
    w.run(&["apply", "plan.json"]).code(1).stderr(
        predicate::str::contains("create zed@example.com")
            .and(predicate::str::contains("plan no such change")),
    );
    assert_eq!(files_of(&w), before, "nothing written");
    assert!(!w.path(".headcount").exists(), "no empty state folder");
}

#[test]
fn saved_plan_with_a_plaintext_sensitive_value_is_refused_and_writes_nothing() {
    let w = Work::new("e2e");
    w.run(&["plan", "--out", "plan.json"]).success();
    let honest = fs::read_to_string(w.path("plan.json")).expect("plan");
    for drop_flag in [false, true] {
        w.write("plan.json", &honest);
        edit_plan(&w, |doc| {
            let pw = &mut change_of(doc, "bob@example.com")["fields"]["password"];
            pw["after"] = "injected-pw".into();
            if drop_flag {
                pw.as_object_mut().expect("diff").remove("sensitive");
            }
        });
        let before = files_of(&w);
        let a = w.run(&["apply", "plan.json"]).code(1).stderr(
            predicate::str::contains("sensitive field `password`")
                .and(predicate::str::contains("bob@example.com")),
        );
        assert!(!String::from_utf8_lossy(&a.get_output().stderr).contains("injected-pw"));
        assert_eq!(files_of(&w), before, "nothing written");
        assert!(!w.path(".headcount").exists(), "no empty state folder");
    }
}

#[test]
fn a_new_source_row_since_the_plan_is_pending_not_applied() {
    let w = Work::new("e2e");
    w.run(&["plan", "--out", "plan.json"]).success();
    w.edit_csv(|t| format!("{t}new@example.com,New,Hire,Acme,Ops,active,,\n"));
    let a = w.run(&["apply", "plan.json"]).success();
    let out = stdout_of(&a);
    assert!(
        out.contains("1 change(s) pending") && out.contains("staff create new@example.com"),
        "{out}"
    );
    assert!(out.contains("9 of 9 change(s) applied"), "{out}");
    let users = fs::read_to_string(w.path("out/export-000001/users-001.csv")).expect("users");
    assert!(!users.contains("new@example.com"), "never applied unseen");
    let state = fs::read_to_string(w.path(".headcount/state.json")).expect("state");
    assert!(!state.contains("new@example.com"));
    // The next plan has it.
    let out = stdout_of(&w.run(&["plan"]).success());
    assert!(out.contains("+ create new@example.com"), "{out}");

    // `--json` reports it as a `pending` event.
    w.edit_csv(|t| format!("{t}two@example.com,Two,Hire,Acme,Ops,active,,\n"));
    w.run(&["plan", "--out", "plan.json"]).success();
    w.edit_csv(|t| format!("{t}three@example.com,Three,Hire,Acme,Ops,active,,\n"));
    let a = w.run(&["apply", "plan.json", "--json"]).success();
    let lines: Vec<Value> = stdout_of(&a)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let pending = lines
        .iter()
        .find(|l| l["type"] == "pending")
        .expect("pending event");
    let emails: Vec<&Value> = pending["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| &c["identity"])
        .collect();
    assert_eq!(emails, [&Value::from("three@example.com")]);
    assert_eq!(lines.last().expect("summary")["applied"], 2);
}

#[test]
fn plan_out_to_a_folder_is_refused_and_leaves_no_temporary_file() {
    let w = Work::new("e2e");
    fs::create_dir(w.path("plans")).expect("dir");
    w.run(&["plan", "--out", "plans"])
        .code(1)
        .stderr(predicate::str::contains("is a folder"));
    assert_eq!(fs::read_dir(w.path("plans")).expect("dir").count(), 0);
    let leftovers: Vec<String> = fs::read_dir(w.dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn unreadable_or_unknown_plans_are_refused_before_anything_is_written() {
    let w = Work::new("e2e");
    // Missing, not JSON, not a plan.
    w.run(&["apply", "plan.json"])
        .code(1)
        .stderr(predicate::str::contains("cannot read the plan file"));
    w.write("plan.json", "not json");
    w.run(&["apply", "plan.json"]).code(1);
    w.write("plan.json", "{}");
    w.run(&["apply", "plan.json"]).code(1);
    assert!(!w.path(".headcount").exists(), "no empty state folder");

    // A plan naming a sync the config does not have: refused up front, no audit, no journal.
    w.run(&["plan", "--out", "plan.json"]).success();
    edit_plan(&w, |doc| doc["syncs"][0]["name"] = "ghost".into());
    w.run(&["apply", "plan.json"]).code(1).stderr(
        predicate::str::contains("`ghost`").and(predicate::str::contains("does not define")),
    );
    assert!(
        !w.path(".headcount").exists(),
        "no audit, no journal, no folder"
    );
    assert!(w.exports().is_empty());

    // A stale plan refused under the lock leaves no empty folder either.
    w.run(&["plan", "--out", "plan.json"]).success();
    let cfg = fs::read_to_string(w.path("headcount.yaml")).expect("cfg");
    w.write(
        "headcount.yaml",
        &cfg.replace("removed: deactivate", "removed: delete"),
    );
    w.run(&["apply", "plan.json"])
        .code(1)
        .stderr(predicate::str::contains("changed since the plan"));
    assert!(!w.path(".headcount").exists(), "no empty state folder");
}

#[test]
fn a_saved_plan_past_the_mass_removal_guard_needs_the_flag_again_at_apply() {
    let w = Work::new("e2e");
    w.apply();
    w.drop_rows("Globex");
    w.run(&["plan", "--allow-mass-removal", "--out", "plan.json"])
        .success();
    let before = files_of(&w);
    w.run(&["apply", "plan.json"]).code(1).stderr(
        predicate::str::contains("exceed limits.max_removals").and(predicate::str::contains(
            "apply --allow-mass-removal plan.json",
        )),
    );
    assert_eq!(files_of(&w), before, "nothing written");
    w.run(&["apply", "--allow-mass-removal", "plan.json"])
        .success();
    assert_eq!(w.exports().len(), 2);
}

#[test]
fn a_saved_plan_that_forgets_a_sync_gone_from_the_config_applies() {
    let w = Work::new("e2e");
    w.apply();
    let cfg = fs::read_to_string(w.path("headcount.yaml")).expect("cfg");
    // The sync now covers nobody, under another name: the old one is forgotten.
    w.write(
        "headcount.yaml",
        &cfg.replace("name: staff", "name: nobody")
            .replace("user.status != \"left\"", "false"),
    );
    w.run(&["plan", "--out", "plan.json"]).success();
    let a = w.run(&["apply", "plan.json"]).success();
    assert!(stdout_of(&a).contains("9 forgotten"), "{}", stdout_of(&a));
    w.run(&["plan", "--detailed-exitcode"]).code(0);
}

#[test]
fn a_saved_plan_listing_a_sync_twice_is_refused() {
    let w = Work::new("e2e");
    w.run(&["plan", "--out", "plan.json"]).success();
    edit_plan(&w, |doc| {
        let sync = doc["syncs"][0].clone();
        doc["syncs"].as_array_mut().expect("syncs").push(sync);
    });
    w.run(&["apply", "plan.json"])
        .code(1)
        .stderr(predicate::str::contains("sync `staff` is listed twice"));
    assert!(w.exports().is_empty());
    assert!(!w.path(".headcount").exists());
}

#[test]
fn a_failed_apply_leaves_no_empty_state_folder() {
    let w = Work::new("e2e");
    fs::remove_file(w.path("people.csv")).expect("rm");
    w.run(&["apply", "--auto-approve"]).code(1);
    assert!(!w.path(".headcount").exists(), "nothing written, no folder");
    assert!(w.exports().is_empty());
}

/// Issue 7 point 4: a config that matches nobody (a typo in a key) is an error naming the
/// reason, exit 1 with or without --detailed-exitcode, never "No changes".
#[test]
fn a_config_that_matches_nobody_is_an_error() {
    let w = Work::new("e2e");
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
    let w = Work::new("e2e");
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
    let w = Work::new("e2e");
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
