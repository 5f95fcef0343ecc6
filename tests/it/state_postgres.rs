//! The PostgreSQL state backend against a real server (`scripts/start-postgres.sh`): the same
//! protocol as the local files (load/commit/serial/lineage, one writer naming its holder, the
//! journal replayed after a crash, forget, unlock), optimistic serial checks, scrubbed errors,
//! and the CLI end to end with `backend: postgres`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use headcount::state::{
    JournalStatus, LockedState, ManagedAccount, Origin, State, StateBackend, StateError, StateOp,
    Unlocked,
};
use predicates::prelude::*;
use secrecy::SecretString;

use crate::support::postgres::{self, Postgres};
use crate::support::work::Work;

pub fn upsert(id: &str) -> StateOp {
    StateOp::Upsert {
        sync: "staff".into(),
        target: "mojo".into(),
        target_id: id.into(),
        account: ManagedAccount {
            identity: BTreeMap::from([("email".to_string(), format!("{id}@example.com"))]),
            fields: BTreeMap::new(),
            active: Some(true),
            origin: Origin::Created,
            deactivated_by_headcount: false,
        },
    }
}

/// Takes the lock, waiting (bounded) while the server ends the session of a lock just dropped:
/// a dropped client closes its connection, and the server frees the lock when it sees that.
pub async fn lock_when_free(backend: &dyn StateBackend) -> Box<dyn LockedState> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match backend.lock("apply").await {
            Ok(l) => return l,
            Err(StateError::DatabaseLocked { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("lock: {e}"),
        }
    }
}

fn server() -> Option<&'static Postgres> {
    postgres::server()
}

/// The trait protocol: lock (one writer, refusal naming the holder), journal, a "crash"
/// (dropped without commit), recovery, commit with the next serial, forget, unlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trait_protocol_on_postgres() {
    let Some(pg) = server() else { return };
    let table = pg.table("protocol");
    let backend = pg.backend(&table);
    assert!(backend.location().contains(&table));
    // Nothing exists yet: no state, nothing created by a reader.
    let loaded = backend.load().await.unwrap();
    assert_eq!(loaded.state, None);
    assert_eq!(loaded.journal, JournalStatus::Absent);
    assert_eq!(
        pg.psql(&format!("SELECT to_regclass('{table}') IS NULL")),
        "t"
    );
    assert_eq!(backend.lock_info().await.unwrap(), None);
    {
        let mut lock = backend.lock("apply").await.unwrap();
        assert_eq!(lock.info().operation, "apply");
        let refused = backend.lock("apply").await.err().expect("one writer");
        let text = refused.to_string();
        assert!(
            text.contains(&lock.info().holder)
                && text.contains(&format!("pid {}", std::process::id())),
            "the refusal names the holder: {text}"
        );
        assert_eq!(
            backend.lock_info().await.unwrap().as_ref(),
            Some(lock.info())
        );
        assert!(lock.recover().await.unwrap().is_none());
        assert!(matches!(
            lock.append(&upsert("0")).await,
            Err(StateError::NoJournal { .. })
        ));
        lock.begin_journal(&State::new("l".into())).await.unwrap();
        lock.append(&upsert("1")).await.unwrap();
        lock.append(&upsert("2")).await.unwrap();
        // Dropped without commit: a killed apply.
    }
    let loaded = backend.load().await.unwrap();
    assert_eq!(loaded.journal, JournalStatus::Replayed { ops: 2 });
    assert_eq!(loaded.state.as_ref().map(|s| s.serial), Some(0));
    let mut lock = lock_when_free(&backend).await;
    let mut state = lock.recover().await.unwrap().unwrap();
    assert_eq!(state.serial, 1);
    assert_eq!(state.lineage, "l");
    assert_eq!(
        pg.psql(&format!("SELECT count(*) FROM {table}_journal")),
        "0",
        "the journal is folded in"
    );
    lock.begin_journal(&state).await.unwrap();
    lock.append(&upsert("3")).await.unwrap();
    state.apply_op(&upsert("3"));
    lock.commit(&mut state).await.unwrap();
    assert_eq!(state.serial, 2);
    lock.release().await.unwrap();
    assert_eq!(backend.lock_info().await.unwrap(), None, "released at once");
    assert_eq!(pg.psql(&format!("SELECT count(*) FROM {table}_lock")), "0");

    let after = backend.forget("1").await.unwrap().unwrap();
    assert_eq!(
        pg.psql(&format!("SELECT count(*) FROM {table}_lock")),
        "0",
        "forget releases its lock and holder row"
    );
    assert_eq!(after.serial, 3);
    let ids: Vec<_> = after.syncs["staff"].accounts.keys().cloned().collect();
    assert_eq!(ids, ["2", "3"]);
    let loaded = backend.load().await.unwrap();
    assert_eq!(loaded.state, Some(after));
    assert_eq!(loaded.journal, JournalStatus::Absent);
    assert_eq!(
        pg.psql(&format!("SELECT serial, lineage FROM {table}")),
        "3|l"
    );
    assert_eq!(
        pg.psql(&format!("SELECT max(version) FROM {table}_migrations")),
        "1"
    );
}

/// `state unlock` ends the holder's session (an advisory lock cannot be removed from another
/// one): the holder's next write fails, the lock is free, and with no holder it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_ends_the_holders_session() {
    let Some(pg) = server() else { return };
    let backend = pg.backend(&pg.table("unlock"));
    assert_eq!(backend.unlock().await.unwrap(), Unlocked::Nothing);
    let mut held = backend.lock("apply").await.unwrap();
    held.begin_journal(&State::new("u".into())).await.unwrap();
    held.append(&upsert("1")).await.unwrap();
    match backend.unlock().await.unwrap() {
        Unlocked::SessionEnded { info, backend_pid } => {
            assert_eq!(&info, held.info());
            assert!(backend_pid > 0);
        }
        other => panic!("{other:?}"),
    }
    let err = held
        .append(&upsert("2"))
        .await
        .expect_err("the holder's session is gone: its next write fails")
        .to_string();
    assert!(err.contains("session was ended"), "{err}");
    let mut lock = lock_when_free(&backend).await;
    let state = lock.recover().await.unwrap().unwrap();
    assert_eq!(state.serial, 1, "what the holder journalled is kept");
    assert!(state.syncs["staff"].accounts.contains_key("1"));
    lock.release().await.unwrap();
}

/// A write whose serial moved (another writer, a restored row) is refused, never lost; so is a
/// journal over another state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_serial_moved_is_refused() {
    let Some(pg) = server() else { return };
    let table = pg.table("serial");
    let backend = pg.backend(&table);
    let mut lock = backend.lock("apply").await.unwrap();
    let mut state = State::new("s".into());
    state.apply_op(&upsert("1"));
    lock.commit(&mut state).await.unwrap();
    assert_eq!(state.serial, 1);
    // Someone moves the row on (here: by hand).
    pg.psql(&format!(
        "UPDATE {table} SET serial = 5, document = jsonb_set(document, '{{serial}}', '5')"
    ));
    let before = state.clone();
    let err = lock.commit(&mut state).await.expect_err("refused");
    assert!(matches!(err, StateError::StateChanged { .. }), "{err}");
    assert_eq!(
        state, before,
        "the serial is not advanced by a refused write"
    );
    let err = lock.begin_journal(&state).await.expect_err("refused");
    assert!(matches!(err, StateError::StateChanged { .. }), "{err}");
    lock.release().await.unwrap();
    assert_eq!(
        backend.load().await.unwrap().state.map(|s| s.serial),
        Some(5)
    );

    // A document whose lineage disagrees with its row is damage, not a state.
    pg.psql(&format!("UPDATE {table} SET lineage = 'other'"));
    let err = backend.load().await.expect_err("damaged");
    assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
}

/// The URL's password never shows in an error; a missing variable is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_never_show_the_password() {
    let Some(pg) = server() else { return };
    let url = format!(
        "postgres://nosuchuser:hunter2-pw@127.0.0.1:{}/nosuchdb?sslmode=disable",
        pg.port
    );
    let backend = headcount::state::PostgresBackend::new(
        Box::new(move || Ok(SecretString::from(url.clone()))),
        None,
        Some("x"),
    );
    let err = backend.load().await.expect_err("no such role").to_string();
    assert!(!err.contains("hunter2-pw"), "{err}");
    assert!(
        err.contains("127.0.0.1") && err.contains("state.url"),
        "{err}"
    );

    let backend = headcount::state::PostgresBackend::new(
        Box::new(|| Err("environment variable HC_NOPE is not set".to_string())),
        None,
        None,
    );
    let err = backend.load().await.expect_err("no url").to_string();
    assert!(err.contains("HC_NOPE"), "{err}");
}

/// The CLI end to end with `backend: postgres`: apply, then plan and apply find nothing to do,
/// no state file is written, and the state commands work on the table.
#[test]
fn cli_apply_then_plan_is_a_no_op_with_backend_postgres() {
    let Some(pg) = server() else { return };
    let table = pg.table("cli");
    let w = Work::new("e2e");
    let config = std::fs::read_to_string(w.path("headcount.yaml")).unwrap();
    w.write(
        "headcount.yaml",
        &format!(
            "{config}state:\n  backend: postgres\n  url: {{ env: HC_IT_STATE_URL }}\n  table: {table}\n"
        ),
    );
    let run = |args: &[&str]| {
        w.cmd()
            .env("HC_IT_STATE_URL", pg.url())
            .args(args)
            .write_stdin("")
            .assert()
    };
    run(&["validate"]).success();
    run(&["apply", "--auto-approve"])
        .success()
        .stdout(predicate::str::contains("9 of 9 change(s) applied"));
    assert!(!w.path(".headcount/state.json").exists(), "no state file");
    assert_eq!(pg.psql(&format!("SELECT serial FROM {table}")), "1");
    run(&["plan", "--detailed-exitcode"]).code(0);
    run(&["apply", "--auto-approve"])
        .success()
        .stdout(predicate::str::contains("Plan: 0 to change"));
    run(&["state", "list"])
        .success()
        .stdout(predicate::str::contains("staff"));
    run(&["state", "unlock"])
        .success()
        .stdout(predicate::str::contains("not locked"));
    // Without the variable: an error naming it, nothing written.
    w.cmd()
        .env_remove("HC_IT_STATE_URL")
        .args(["plan"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("HC_IT_STATE_URL"));
}

/// `sslmode` is honoured over TLS: with the server's CA (`sslrootcert`) `verify-full` and
/// `require` connect and work; without it the certificate is refused (rustls always verifies),
/// never silently accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connections_verify_the_server_certificate() {
    let Some(pg) = server() else { return };
    let table = pg.table("tls");
    let base = format!(
        "postgres://headcount:tls-pw-1234@127.0.0.1:{}/postgres",
        pg.port
    );
    let ca = pg.ca_file();
    for mode in ["verify-full", "require"] {
        let backend = pg.backend_at(format!("{base}?sslmode={mode}&sslrootcert={ca}"), &table);
        let mut lock = backend
            .lock("apply")
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        let mut state = lock
            .recover()
            .await
            .unwrap()
            .unwrap_or_else(|| State::new("t".into()));
        lock.commit(&mut state).await.unwrap();
        lock.release().await.unwrap();
    }
    assert_eq!(pg.psql(&format!("SELECT serial FROM {table}")), "2");
    let untrusted = pg.backend_at(format!("{base}?sslmode=require"), &table);
    let err = untrusted
        .load()
        .await
        .expect_err("an unknown CA is refused")
        .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(!err.contains("tls-pw-1234"), "{err}");
    // `prefer` (the default) takes TLS when offered, and then verifies it too.
    let preferred = pg.backend_at(base.clone(), &table);
    let err = preferred
        .load()
        .await
        .expect_err("prefer verifies too")
        .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    let preferred = pg.backend_at(format!("{base}?sslrootcert={ca}"), &table);
    assert_eq!(
        preferred.load().await.unwrap().state.map(|s| s.serial),
        Some(2)
    );
}

/// Two applies started at once on the same table: each either applies or is refused naming
/// the other; never both writing. The state ends consistent: the next plan has nothing to do.
#[test]
fn two_concurrent_applies_never_both_write() {
    let Some(pg) = server() else { return };
    let table = pg.table("twoapply");
    let w = Work::new("e2e");
    let config = std::fs::read_to_string(w.path("headcount.yaml")).unwrap();
    w.write(
        "headcount.yaml",
        &format!(
            "{config}state:\n  backend: postgres\n  url: {{ env: HC_IT_STATE_URL }}\n  table: {table}\n"
        ),
    );
    let spawn = || {
        w.spawnable()
            .env("HC_IT_STATE_URL", pg.url())
            .args(["apply", "--auto-approve"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let mut applied = 0;
    for out in &outs {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            applied += 1;
        } else {
            assert!(stderr.contains("is locked by"), "{stdout}\n{stderr}");
        }
    }
    assert!(applied >= 1, "one of them applied");
    let creates: usize = outs
        .iter()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .matches("9 of 9 change(s) applied")
                .count()
        })
        .sum();
    assert_eq!(creates, 1, "the accounts were created by one apply only");
    let exports = std::fs::read_dir(w.path("out")).unwrap().count();
    assert_eq!(exports, 1, "one export written");
    w.cmd()
        .env("HC_IT_STATE_URL", pg.url())
        .args(["plan", "--detailed-exitcode"])
        .assert()
        .code(0);
}

/// `headcount state unlock` on a PostgreSQL state held by another run: the CLI says it ended
/// that run's session, naming it, and the lock is free afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_state_unlock_ends_the_holders_session() {
    let Some(pg) = server() else { return };
    let table = pg.table("cliunlock");
    let backend = pg.backend(&table);
    let held = backend.lock("apply").await.unwrap();
    let holder = held.info().holder.clone();
    let w = Work::new("e2e");
    let config = std::fs::read_to_string(w.path("headcount.yaml")).unwrap();
    w.write(
        "headcount.yaml",
        &format!(
            "{config}state:\n  backend: postgres\n  url: {{ env: HC_IT_STATE_URL }}\n  table: {table}\n"
        ),
    );
    let url = pg.url();
    let out = tokio::task::spawn_blocking(move || {
        let out = w
            .cmd()
            .env("HC_IT_STATE_URL", url)
            .args(["state", "unlock"])
            .write_stdin("")
            .output()
            .unwrap();
        (out, w)
    })
    .await
    .unwrap()
    .0;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Ended the PostgreSQL session") && stdout.contains(&holder),
        "{stdout}"
    );
    drop(held);
    lock_when_free(&backend).await.release().await.unwrap();
}

/// The tables are created on first lock in the configured schema (created if missing), at the
/// current schema version; a database migrated by a newer headcount is refused, not misread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_are_versioned_and_a_newer_schema_is_refused() {
    let Some(pg) = server() else { return };
    let schema = pg.table("schema");
    let url = pg.url();
    let backend = headcount::state::PostgresBackend::new(
        Box::new(move || Ok(SecretString::from(url.clone()))),
        Some(&schema),
        Some("st"),
    );
    assert!(backend.location().contains(&format!("{schema}.st")));
    backend
        .lock("apply")
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
    assert_eq!(
        pg.psql(&format!(
            "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = '{schema}'"
        )),
        "st,st_journal,st_lock,st_migrations"
    );
    // A second lock migrates nothing again.
    backend
        .lock("apply")
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
    assert_eq!(
        pg.psql(&format!("SELECT count(*) FROM {schema}.st_migrations")),
        "1"
    );

    pg.psql(&format!(
        "INSERT INTO {schema}.st_migrations (version) VALUES (99)"
    ));
    for err in [
        backend.load().await.expect_err("newer"),
        backend.lock("apply").await.err().expect("newer"),
    ] {
        assert!(
            matches!(err, StateError::DatabaseNewer { found: 99, .. }),
            "{err}"
        );
    }
}
