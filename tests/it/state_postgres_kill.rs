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

/// The `headcount` binary itself killed mid-apply with `backend: postgres`: its create's intent
/// is in the journal rows, so the next applies find the account the server finished meanwhile
/// (or refuse to create it again while it may still appear), never create it twice; the
/// journal is folded into the table and the intent settled.
#[test]
fn a_binary_killed_mid_apply_resumes_from_the_journal_rows() {
    use crate::support::{self, ConfigOptions, Person, Workspace};
    use headcount::testkit::scim::ScimEmulator;

    let Some(pg) = postgres::server() else { return };
    let table = pg.table("binkill");
    const HOLD: Duration = Duration::from_secs(2);
    const RUN_LIMIT: Duration = Duration::from_secs(60);
    let rt = support::runtime();
    let emu = rt.block_on(ScimEmulator::start());
    emu.set_allow_duplicates(true);
    emu.set_create_delay(Some(HOLD));
    let work = Workspace::new(
        &emu.base_url(),
        "t",
        ConfigOptions {
            removed: "keep",
            timeout: "10s",
            rate_limit: "2000/s",
        },
    );
    // The URL from a file (a secret reference): the workspace's runs inherit no variable.
    std::fs::write(work.path("state-url"), pg.url()).expect("url file");
    let config = std::fs::read_to_string(work.path("headcount.yaml")).expect("config");
    std::fs::write(
        work.path("headcount.yaml"),
        format!("{config}\nstate:\n  backend: postgres\n  url: {{ file: state-url }}\n  table: {table}\n"),
    )
    .expect("config");
    work.write_people(&[Person::new("pgkill", "Kim", "Kill")]);

    let mut child = work
        .command(&["apply", "--auto-approve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn apply");
    let deadline = Instant::now() + RUN_LIMIT;
    while emu.log().method("POST").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the create never reached the server"
        );
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("apply ended ({status}) before its create was sent");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().expect("SIGKILL apply");
    child.wait().expect("wait");
    assert_eq!(
        pg.psql(&format!(
            "SELECT count(*) FROM {table}_journal WHERE op::text LIKE '%intent%'"
        )),
        "1",
        "the create's intent was journalled before it was sent"
    );

    let mut done = false;
    for _ in 0..40 {
        let out = work.run_with_limit(&["apply", "--auto-approve"], RUN_LIMIT);
        if out.success() {
            done = true;
            break;
        }
        assert!(
            out.both().contains("no known outcome") || out.both().contains("locked by"),
            "a failed apply must be the refusal (or the dead run's lock, until the server drops it)\n{}",
            out.both()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(done, "apply never succeeded after the kill");
    std::thread::sleep(HOLD);
    let count = emu
        .users()
        .iter()
        .filter(|u| u["userName"] == "pgkill")
        .count();
    assert_eq!(count, 1, "pgkill exists exactly once");
    let plan = work.run_with_limit(&["plan", "--detailed-exitcode"], RUN_LIMIT);
    assert_eq!(plan.code, Some(0), "no changes left\n{}", plan.both());
    let document = pg.psql(&format!("SELECT document::text FROM {table}"));
    assert!(document.contains("pgkill"), "{document}");
    assert!(
        !document.contains("\"intents\""),
        "intents settled\n{document}"
    );
    assert_eq!(
        pg.psql(&format!("SELECT count(*) FROM {table}_journal")),
        "0"
    );
}
