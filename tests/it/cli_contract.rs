//! The command-line contract of SPEC section 3 that CI recipes and shells rely on: exit codes of
//! usage errors, a quiet end on a closed pipe, and owner-only files for personal data.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use predicates::prelude::*;

use crate::support::work::Work;

impl Work {
    /// Replaces the source with `n` active people, so that plans are large.
    fn many_people(&self, n: usize) {
        let mut csv = String::from("email,first,last,status,notes\n");
        for i in 0..n {
            csv.push_str(&format!(
                "person{i:05}@example.com,First{i},Last{i},active,a note long enough to fill lines {i}\n"
            ));
        }
        fs::write(self.path("people.csv"), csv).expect("write csv");
    }
}

// --- usage errors exit 1, never 2 (2 means "changes present") ---

/// Each is a usage error clap rejects before any command runs.
const USAGE_ERRORS: &[&[&str]] = &[
    // A misspelled flag in a CI recipe: must never read as "changes present".
    &["plan", "--detailed-exitcod"],
    // A command this build does not have.
    &["dirft"],
    &["plna"],
    // An unknown global flag.
    &["--colour", "never", "plan"],
    // A bad value.
    &["plan", "--format", "xml"],
    &["drift", "--fail-on", "sometimes"],
    &["apply", "--parallelism", "0"],
    &["fields", "no_such_kind"],
    // A missing argument or command.
    &["show"],
    &["state", "show"],
    &["completions"],
    &[],
];

#[test]
fn usage_errors_exit_1_with_clap_message_on_stderr() {
    let w = Work::new("contract");
    for args in USAGE_ERRORS {
        let out = w.cmd().args(*args).write_stdin("").output().expect("run");
        assert_eq!(out.status.code(), Some(1), "headcount {args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("error:") || stderr.contains("Usage:"),
            "headcount {args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "headcount {args:?} wrote to stdout");
    }
}

#[test]
fn a_misspelled_flag_names_the_flag_it_meant() {
    Work::new("contract")
        .run(&["plan", "--detailed-exitcod"])
        .code(1)
        .stderr(predicate::str::contains("--detailed-exitcode"));
}

#[test]
fn help_and_version_exit_0_on_stdout_and_help_documents_exit_codes() {
    let w = Work::new("contract");
    for args in [&["--help"][..], &["-h"], &["help"], &["plan", "--help"]] {
        w.run(args)
            .code(0)
            .stdout(predicate::str::contains("Usage:"))
            .stderr("");
    }
    for args in [&["--help"][..], &["plan", "--help"], &["apply", "--help"]] {
        w.run(args)
            .code(0)
            .stdout(predicate::str::contains("Exit status:"))
            .stdout(predicate::str::contains("usage error"))
            .stdout(predicate::str::contains("2  changes present"));
    }
    w.run(&["--version"])
        .code(0)
        .stdout(predicate::str::starts_with("headcount "));
}

// --- a closed pipe ends quietly ---

/// Runs `headcount ARGS`, reads one line of stdout and closes it, then waits. Returns the exit
/// code and stderr.
fn read_one_line_then_close(w: &Work, args: &[&str]) -> (Option<i32>, String) {
    let mut child = w
        .spawnable()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).expect("read one line");
    assert!(!line.is_empty(), "headcount {args:?} printed nothing");
    drop(reader);
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_pipe_on_large_output_ends_quietly() {
    let w = Work::new("contract");
    // Text and JSON plans far larger than a pipe buffer (64 KiB), so the writer meets the
    // closed pipe mid-output (markdown is capped at 60,000 characters and may fit).
    w.many_people(1500);
    let cases: &[(&[&str], i32)] = &[
        (&["plan"], 0),
        (&["plan", "--format", "json"], 0),
        (&["plan", "--format", "markdown"], 0),
        // The exit code is still the command's own: changes are present.
        (&["plan", "--detailed-exitcode"], 2),
        (&["drift"], 2),
        (&["drift", "--format", "json"], 2),
        (&["schema"], 0),
        (&["completions", "bash"], 0),
        (&["completions", "zsh"], 0),
    ];
    for (args, expected) in cases {
        let (code, stderr) = read_one_line_then_close(&w, args);
        assert!(!stderr.contains("panicked"), "headcount {args:?}: {stderr}");
        assert!(
            !stderr.contains("Broken pipe"),
            "headcount {args:?}: {stderr}"
        );
        assert_ne!(code, Some(101), "headcount {args:?} panicked: {stderr}");
        assert_eq!(code, Some(*expected), "headcount {args:?}: {stderr}");
    }

    // A saved plan, the state and an apply's event stream, each large.
    w.run(&["plan", "--out", "plan.json"]).code(0);
    for args in [
        &["show", "plan.json"][..],
        &["show", "plan.json", "--format", "json"],
    ] {
        let (code, stderr) = read_one_line_then_close(&w, args);
        assert!(!stderr.contains("panicked"), "headcount {args:?}: {stderr}");
        assert_eq!(code, Some(0), "headcount {args:?}: {stderr}");
    }
    let (code, stderr) = read_one_line_then_close(&w, &["apply", "--auto-approve", "--json"]);
    assert!(!stderr.contains("panicked"), "apply --json: {stderr}");
    assert_eq!(code, Some(0), "apply --json: {stderr}");
    // The apply went on to the end although nobody read its output.
    w.run(&["plan", "--detailed-exitcode"]).code(0);
    let (code, stderr) = read_one_line_then_close(&w, &["state", "list"]);
    assert!(!stderr.contains("panicked"), "state list: {stderr}");
    assert_eq!(code, Some(0), "state list: {stderr}");
}

/// A full disk behind a redirection is an error, named, unlike a closed pipe.
#[cfg(target_os = "linux")]
#[test]
fn a_failed_write_to_stdout_is_an_error() {
    let w = Work::new("contract");
    for args in [&["schema"][..], &["plan"], &["--help"]] {
        let full = fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let out = w.spawnable().args(args).stdout(full).output().expect("run");
        assert_eq!(out.status.code(), Some(1), "headcount {args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("cannot write to stdout"),
            "headcount {args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "headcount {args:?}: {stderr}");
    }
}

// --- files holding personal data are owner-only ---

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every file under `dir`, recursively.
#[cfg(unix)]
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.push(path.clone());
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[cfg(unix)]
#[test]
fn files_holding_personal_data_are_owner_only() {
    let w = Work::new("contract");
    // A saved plan, in a folder headcount creates for it.
    w.run(&["plan", "--out", "plans/first.json"]).code(0);
    assert_eq!(mode(&w.path("plans")), 0o700);
    assert_eq!(mode(&w.path("plans/first.json")), 0o600);

    // First apply: the export folder, an export set, the state and the audit log.
    w.run(&["apply", "--auto-approve"]).code(0);
    // Then someone leaves: the next export set holds a removals file.
    let csv = fs::read_to_string(w.path("people.csv")).expect("read csv");
    fs::write(
        w.path("people.csv"),
        csv.replace(
            "bob@example.com,Bob,Baker,active",
            "bob@example.com,Bob,Baker,left",
        ),
    )
    .expect("write csv");
    w.run(&["apply", "--auto-approve"]).code(0);

    assert_eq!(mode(&w.path(".headcount")), 0o700);
    assert_eq!(mode(&w.path(".headcount/state.json")), 0o600);
    assert_eq!(mode(&w.path(".headcount/audit.jsonl")), 0o600);
    assert_eq!(mode(&w.path("out")), 0o700);
    let exports = files_under(&w.path("out"));
    let removals = w.path("out/export-000002/removals.csv");
    assert!(exports.contains(&removals), "{exports:?}");
    assert!(exports.contains(&w.path("out/export-000001/users-001.csv")));
    for path in &exports {
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(path), expected, "{}", path.display());
    }
}

/// The journal and the lock exist only while an apply runs: they are looked at while the apply
/// is held up by a reader that does not read.
#[cfg(unix)]
#[test]
fn journal_and_lock_are_owner_only() {
    let w = Work::new("contract");
    w.many_people(1000);
    let mut child = w
        .spawnable()
        .args(["apply", "--auto-approve", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let journal = w.path(".headcount/state.json.journal");
    let lock = w.path(".headcount/state.json.lock");
    // Wait for the first operation event: by then the lock is held and the journal exists.
    let mut line = String::new();
    let mut seen = false;
    while reader.read_line(&mut line).expect("read") > 0 {
        if line.contains("\"type\":\"operation\"") {
            seen = true;
            break;
        }
        line.clear();
    }
    // The child is now blocked writing the other events into the full pipe, before its
    // commit: the lock is held and the journal open.
    let modes = (
        lock.exists().then(|| mode(&lock)),
        journal.exists().then(|| mode(&journal)),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen, "no operation event from apply --json");
    assert_eq!(modes, (Some(0o600), Some(0o600)), "lock file, journal");
}
