//! Durability of the apply journal across a real SIGKILL: a child process appends ops and prints
//! each index once `append` has returned; the parent kills it mid-loop and checks that every
//! printed index is in the state it loads afterwards.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use headcount::state::{ManagedAccount, Origin, State, StateOp, StateStore};

/// Selects the child role and names its state file.
const CHILD_ENV: &str = "HEADCOUNT_TEST_KILL_CHILD_STATE";
/// The child role's full test name in the `it` binary.
const CHILD_TEST: &str = "state_kill::child_appends_until_killed";
const MAX_APPENDS: usize = 10_000;
const KILL_AFTER: usize = 50;

fn op(i: usize) -> StateOp {
    StateOp::Upsert {
        sync: "staff".into(),
        target: "mojo".into(),
        target_id: i.to_string(),
        account: ManagedAccount {
            identity: BTreeMap::from([("email".to_string(), format!("user{i}@example.com"))]),
            fields: BTreeMap::new(),
            active: Some(true),
            origin: Origin::Created,
            deactivated_by_headcount: false,
        },
    }
}

/// The child role. Ignored in a normal run (listed as ignored, never a vacuous pass);
/// `journal_survives_sigkill` runs it with `--ignored --exact` and kills it.
#[test]
#[ignore = "the child process of journal_survives_sigkill, which runs it"]
fn child_appends_until_killed() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::var_os(CHILD_ENV)
        .ok_or("run by journal_survives_sigkill only (it sets HEADCOUNT_TEST_KILL_CHILD_STATE)")?;
    let store = StateStore::new(PathBuf::from(path));
    let guard = store.lock("apply")?;
    let mut journal = store.journal(&guard, &State::new("kill-test".into()))?;
    for i in 0..MAX_APPENDS {
        journal.append(&op(i))?;
        // Stdout to a pipe is line-buffered: the line leaves the process here.
        println!("appended {i}");
    }
    Ok(())
}

#[test]
fn journal_survives_sigkill() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let state_path = dir.path().join(".headcount").join("state.json");
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "--ignored",
            "--exact",
            CHILD_TEST,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &state_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut printed: Vec<usize> = Vec::new();
    let parse = |line: &str| -> Option<usize> {
        line.strip_prefix("appended ").and_then(|n| n.parse().ok())
    };
    while printed.len() < KILL_AFTER {
        let line = lines
            .next()
            .ok_or("child ended before appending enough")??;
        if let Some(i) = parse(&line) {
            printed.push(i);
        }
    }
    child.kill()?; // SIGKILL
    // Lines already in the pipe were printed after their append returned, so they count too.
    for line in lines {
        if let Some(i) = parse(&line?) {
            printed.push(i);
        }
    }
    let status = child.wait()?;
    #[cfg(unix)]
    {
        // The pipe holds far fewer than MAX_APPENDS lines, so the child cannot have finished.
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "child was not killed: {status}");
    }
    #[cfg(not(unix))]
    let _ = status;

    let store = StateStore::new(state_path);
    let state = store.load()?.ok_or("no state after the kill")?;
    assert_eq!(state.lineage, "kill-test");
    let accounts = &state.syncs["staff"].accounts;
    for i in &printed {
        assert!(accounts.contains_key(&i.to_string()), "op {i} was lost");
    }
    assert!(accounts.len() >= printed.len());
    assert!(accounts.len() < MAX_APPENDS, "killed mid-loop");
    eprintln!("printed {}, recovered {}", printed.len(), accounts.len());
    // The killed holder left its lock behind; on Linux it is recognised as stale.
    let lock = store
        .lock_info()?
        .ok_or("the killed child's lock is gone")?;
    if std::path::Path::new("/proc/self").exists() {
        assert!(lock.looks_stale(), "{lock:?}");
    }
    Ok(())
}
