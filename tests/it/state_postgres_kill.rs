//! The PostgreSQL backend across a real SIGKILL: a child process (this test binary) takes the
//! lock, journals ops and prints each index once `append` has returned. While it runs, the
//! `headcount` binary's `apply` on the same table is refused naming it; after the kill, the
//! server frees the lock with the dead session, and every printed op is in the state the next
//! run recovers.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use headcount::state::{State, StateBackend};
use predicates::prelude::*;

use crate::state_postgres::{lock_when_free, upsert};
use crate::support::postgres;
use crate::support::work::Work;

/// Selects the child role and names its table.
const CHILD_ENV: &str = "HEADCOUNT_TEST_PG_KILL_TABLE";
const CHILD_TEST: &str = "state_postgres_kill::child_appends_until_killed";
/// The child never gets this far: it is killed (a full pipe blocks it well before).
const MAX_APPENDS: usize = 1_000_000;
const KILL_AFTER: usize = 30;

/// The child role. Ignored in a normal run; `killed_apply_loses_nothing_and_frees_the_lock`
/// runs it with `--ignored --exact` and kills it.
#[test]
#[ignore = "the child process of killed_apply_loses_nothing_and_frees_the_lock, which runs it"]
fn child_appends_until_killed() -> Result<(), Box<dyn std::error::Error>> {
    let table = std::env::var(CHILD_ENV).map_err(|_| "run by the kill test only")?;
    let pg = postgres::server().ok_or("no PostgreSQL")?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let backend = pg.backend(&table);
        let mut lock = backend.lock("apply").await?;
        let base = lock
            .recover()
            .await?
            .unwrap_or_else(|| State::new("kill-test".into()));
        lock.begin_journal(&base).await?;
        for i in 0..MAX_APPENDS {
            lock.append(&upsert(&i.to_string())).await?;
            println!("appended {i}");
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

#[test]
fn killed_apply_loses_nothing_and_frees_the_lock() -> Result<(), Box<dyn std::error::Error>> {
    let Some(pg) = postgres::server() else {
        return Ok(());
    };
    let table = pg.table("kill");
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "--ignored",
            "--exact",
            CHILD_TEST,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &table)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let child_pid = child.id();
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

    // A second process (the CLI) while the child holds the lock: refused, naming the child.
    let w = Work::new("e2e");
    let config = std::fs::read_to_string(w.path("headcount.yaml"))?;
    w.write(
        "headcount.yaml",
        &format!("{config}state:\n  backend: postgres\n  url: {{ env: HC_IT_STATE_URL }}\n  table: {table}\n"),
    );
    w.cmd()
        .env("HC_IT_STATE_URL", pg.url())
        .args(["apply", "--auto-approve"])
        .write_stdin("")
        .assert()
        .failure()
        .stderr(
            predicate::str::contains(format!("pid {child_pid}"))
                .and(predicate::str::contains("locked by")),
        );

    child.kill()?; // SIGKILL
    for line in lines {
        if let Some(i) = parse(&line?) {
            printed.push(i);
        }
    }
    let status = child.wait()?;
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "child was not killed: {status}");
    }
    #[cfg(not(unix))]
    let _ = status;

    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let backend = pg.backend(&table);
        // The server frees the lock once it sees the dead session's connection close.
        let deadline = Instant::now() + Duration::from_secs(20);
        while backend.lock_info().await?.is_some() {
            assert!(
                Instant::now() < deadline,
                "the dead child's lock was never freed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let loaded = backend.load().await?;
        let state = loaded.state.ok_or("no state after the kill")?;
        assert_eq!(state.lineage, "kill-test");
        let accounts = &state.syncs["staff"].accounts;
        for i in &printed {
            assert!(accounts.contains_key(&i.to_string()), "op {i} was lost");
        }
        assert!(accounts.len() >= printed.len());
        let mut lock = lock_when_free(&backend).await;
        let recovered = lock.recover().await?.ok_or("nothing recovered")?;
        assert_eq!(recovered.serial, 1);
        assert_eq!(recovered.syncs["staff"].accounts.len(), accounts.len());
        lock.release().await?;
        eprintln!("printed {}, recovered {}", printed.len(), accounts.len());
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;

    // The CLI's apply now goes through: it folds in the journal first, then applies its plan.
    w.cmd()
        .env("HC_IT_STATE_URL", pg.url())
        .args(["apply", "--auto-approve"])
        .write_stdin("")
        .assert()
        .success();
    Ok(())
}
