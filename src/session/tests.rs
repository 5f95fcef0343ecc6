//! The session driven through an in-memory [`StateBackend`]: proof that the trait is all the
//! session needs, so a database backend fits without touching it. Also checks that the audit
//! log goes where the config says.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::*;
use crate::state::{JournalStatus, Liveness, Loaded, LockInfo, ManagedAccount, Origin, StateError};

/// State, journal and lock holder kept in memory, shared by the backend and its locks.
#[derive(Default)]
struct Memory {
    state: Option<State>,
    /// The base of the apply in progress and the ops appended on top of it.
    journal: Option<(State, Vec<StateOp>)>,
    holder: Option<LockInfo>,
    commits: usize,
    appends: usize,
    /// Faults to inject: appends or commits fail.
    fail_appends: bool,
    fail_commit: bool,
}

/// The error an injected fault returns.
fn injected() -> StateError {
    StateError::Io {
        action: "write the state (injected)",
        path: PathBuf::from("memory"),
        source: std::io::Error::other("injected fault"),
    }
}

impl Memory {
    /// The committed state with the journal replayed.
    fn replayed(&self) -> (Option<State>, usize) {
        match &self.journal {
            Some((base, ops)) if !ops.is_empty() => {
                let mut s = self.state.clone().unwrap_or_else(|| base.clone());
                for op in ops {
                    s.apply_op(op);
                }
                (Some(s), ops.len())
            }
            _ => (self.state.clone(), 0),
        }
    }
}

#[derive(Clone, Default)]
struct MemoryBackend(Arc<Mutex<Memory>>);

struct MemoryLock {
    memory: Arc<Mutex<Memory>>,
    info: LockInfo,
}

#[async_trait]
impl StateBackend for MemoryBackend {
    fn location(&self) -> String {
        "memory".to_string()
    }

    async fn load(&self) -> Result<Loaded, StateError> {
        let (state, ops) = self.0.lock().unwrap().replayed();
        Ok(Loaded {
            state,
            journal: if ops == 0 {
                JournalStatus::Absent
            } else {
                JournalStatus::Replayed { ops }
            },
        })
    }

    async fn lock(&self, operation: &str) -> Result<Box<dyn LockedState>, StateError> {
        let mut m = self.0.lock().unwrap();
        if let Some(info) = &m.holder {
            return Err(StateError::Locked {
                path: PathBuf::from("memory"),
                info: Box::new(info.clone()),
                liveness: Liveness::Unknown,
            });
        }
        let info = LockInfo::for_this_process(operation);
        m.holder = Some(info.clone());
        Ok(Box::new(MemoryLock {
            memory: self.0.clone(),
            info,
        }))
    }

    async fn lock_info(&self) -> Result<Option<LockInfo>, StateError> {
        Ok(self.0.lock().unwrap().holder.clone())
    }

    async fn unlock(&self) -> Result<crate::state::Unlocked, StateError> {
        Ok(match self.0.lock().unwrap().holder.take() {
            Some(info) => crate::state::Unlocked::OtherHost(info),
            None => crate::state::Unlocked::Nothing,
        })
    }
}

#[async_trait]
impl LockedState for MemoryLock {
    fn info(&self) -> &LockInfo {
        &self.info
    }

    async fn recover(&mut self) -> Result<Option<State>, StateError> {
        let mut m = self.memory.lock().unwrap();
        let (state, ops) = m.replayed();
        m.journal = None;
        if ops > 0
            && let Some(mut s) = state
        {
            s.serial += 1;
            m.state = Some(s);
            m.commits += 1;
        }
        Ok(m.state.clone())
    }

    async fn begin_journal(&mut self, base: &State) -> Result<(), StateError> {
        self.memory.lock().unwrap().journal = Some((base.clone(), Vec::new()));
        Ok(())
    }

    async fn append(&mut self, op: &StateOp) -> Result<(), StateError> {
        let mut m = self.memory.lock().unwrap();
        if m.fail_appends {
            return Err(injected());
        }
        m.appends += 1;
        match m.journal.as_mut() {
            Some((_, ops)) => {
                ops.push(op.clone());
                Ok(())
            }
            None => Err(StateError::NoJournal {
                location: "memory".into(),
            }),
        }
    }

    async fn commit(&mut self, state: &mut State) -> Result<(), StateError> {
        let mut m = self.memory.lock().unwrap();
        if m.fail_commit {
            return Err(injected());
        }
        state.serial += 1;
        m.state = Some(state.clone());
        m.journal = None;
        m.commits += 1;
        Ok(())
    }

    async fn release(self: Box<Self>) -> Result<(), StateError> {
        Ok(()) // Drop releases.
    }
}

impl Drop for MemoryLock {
    fn drop(&mut self) {
        if let Ok(mut m) = self.memory.lock() {
            m.holder = None;
        }
    }
}

/// Collects what the session reports, and how many ops were journalled at each event.
#[derive(Default)]
struct Recording {
    memory: Option<Arc<Mutex<Memory>>>,
    plans: Mutex<usize>,
    events: Mutex<Vec<(OpEvent, usize)>>,
}

impl SessionObserver for Recording {
    fn plan_ready(&self, _doc: &PlanDocument) {
        *self.plans.lock().unwrap() += 1;
    }
    fn operation(&self, event: &OpEvent) {
        let appends = self
            .memory
            .as_ref()
            .map_or(0, |m| m.lock().unwrap().appends);
        self.events.lock().unwrap().push((event.clone(), appends));
    }
}

/// A config folder with `people.csv` holding `csv` and `headcount.yaml` holding `config`.
fn workspace_with(csv: &str, config: &str) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("people.csv"), csv).unwrap();
    let path = dir.path().join("headcount.yaml");
    std::fs::write(&path, config).unwrap();
    let engine = Engine::open(&path, false).unwrap();
    (dir, engine)
}

/// A config with a CSV source of three people and a CSV export target, its audit log moved
/// to `logs/apply-audit.jsonl`.
fn workspace() -> (tempfile::TempDir, Engine) {
    workspace_with(
        "email,first\nann@example.com,Ann\nbob@example.com,Bob\ncid@example.com,Cid\n",
        r#"version: 1
audit:
  path: logs/apply-audit.jsonl
sources:
  hr:
    kind: csv
    path: people.csv
targets:
  mojo:
    kind: csv_export
    dir: out
syncs:
  - name: staff
    from: hr
    to: mojo
    identity: [email]
    fields:
      email: user.email
      first_name: user.first
"#,
    )
}

fn audit_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn a_session_plans_applies_and_commits_through_the_backend_trait() {
    let (dir, engine) = workspace();
    let backend = MemoryBackend::default();
    let memory = backend.0.clone();

    let mut session = Session::open(&engine, &backend, "apply").await.unwrap();
    assert!(session.state().is_none());
    // One writer at a time.
    let err = Session::open(&engine, &backend, "apply")
        .await
        .err()
        .expect("a second session is refused while the first holds the lock");
    assert!(matches!(
        err,
        SessionError::State(StateError::Locked { .. })
    ));

    let seen = Recording {
        memory: Some(memory.clone()),
        ..Recording::default()
    };
    let planned = session.plan(&[], false, &seen).await.unwrap();
    assert_eq!(*seen.plans.lock().unwrap(), 1);
    assert_eq!(planned.readiness(), Readiness::Ready);
    assert_eq!(planned.doc.total_changes(), 3);

    let outcome = session
        .apply(planned, &ApplyOptions::default(), &seen)
        .await
        .unwrap();
    assert!(outcome.complete(), "{:?}", outcome.report);
    assert_eq!(outcome.report.succeeded(), 3);
    assert_eq!(outcome.total_changes, 3);
    {
        let events = seen.events.lock().unwrap();
        assert_eq!(events.len(), 3);
        for (n, (event, appends)) in events.iter().enumerate() {
            assert!(event.error.is_none(), "{event:?}");
            assert!(
                *appends > n,
                "event {n} was reported before it was journalled"
            );
        }
    }
    {
        let m = memory.lock().unwrap();
        assert_eq!(m.appends, 3, "every success journalled");
        assert_eq!(m.commits, 1);
        assert!(m.journal.is_none(), "commit clears the journal");
        let state = m.state.as_ref().unwrap();
        assert_eq!(state.serial, 1);
        assert_eq!(state.syncs["staff"].accounts.len(), 3);
    }
    assert_eq!(session.state().map(|s| s.serial), Some(1));

    // The audit log is where the config put it, one line per operation.
    let audit = audit_lines(&dir.path().join("logs/apply-audit.jsonl"));
    assert_eq!(audit.len(), 3);
    assert!(audit.iter().all(|l| l["result"] == "ok"));
    assert!(!dir.path().join(".headcount/audit.jsonl").exists());

    // Same session, same lock: the next plan has nothing left to do.
    let again = session.plan(&[], false, &Quiet).await.unwrap();
    assert_eq!(again.readiness(), Readiness::NoChanges);
    session.close().await.unwrap();
    assert!(memory.lock().unwrap().holder.is_none(), "close releases");
    Session::open(&engine, &backend, "apply").await.unwrap();
}

#[tokio::test]
async fn an_interrupted_apply_is_recovered_when_a_session_opens() {
    let (_dir, engine) = workspace();
    let backend = MemoryBackend::default();
    let base = State::new("lineage-m".into());
    let op = StateOp::Upsert {
        sync: "staff".into(),
        target: "mojo".into(),
        target_id: "ann@example.com".into(),
        account: ManagedAccount {
            identity: BTreeMap::from([("email".to_string(), "ann@example.com".to_string())]),
            fields: BTreeMap::new(),
            active: Some(true),
            origin: Origin::Created,
            deactivated_by_headcount: false,
        },
    };
    backend.0.lock().unwrap().journal = Some((base, vec![op]));

    let session = Session::open(&engine, &backend, "apply").await.unwrap();
    let state = session.state().unwrap();
    assert_eq!((state.lineage.as_str(), state.serial), ("lineage-m", 1));
    assert!(
        state.syncs["staff"]
            .accounts
            .contains_key("ann@example.com")
    );
    let m = backend.0.lock().unwrap();
    assert_eq!(m.commits, 1);
    assert!(m.journal.is_none());
}

#[tokio::test]
async fn forget_goes_through_lock_recover_and_commit() {
    let (_dir, engine) = workspace();
    let backend = MemoryBackend::default();
    assert!(backend.forget("1").await.unwrap().is_none(), "no state yet");
    let mut session = Session::open(&engine, &backend, "apply").await.unwrap();
    let planned = session.plan(&[], false, &Quiet).await.unwrap();
    session
        .apply(planned, &ApplyOptions::default(), &Quiet)
        .await
        .unwrap();
    drop(session);
    let id = backend.load().await.unwrap().state.unwrap().list_rows()[0]
        .target_id
        .clone();
    let after = backend.forget(&id).await.unwrap().unwrap();
    assert_eq!(after.serial, 2);
    assert_eq!(after.syncs["staff"].accounts.len(), 2);
    assert!(backend.lock_info().await.unwrap().is_none());
}

#[tokio::test]
async fn a_journal_that_cannot_be_written_fails_the_operations_and_commits_nothing() {
    let (_dir, engine) = workspace();
    let backend = MemoryBackend::default();
    backend.0.lock().unwrap().fail_appends = true;
    let mut session = Session::open(&engine, &backend, "apply").await.unwrap();
    let planned = session.plan(&[], false, &Quiet).await.unwrap();
    let outcome = session
        .apply(planned, &ApplyOptions::default(), &Quiet)
        .await
        .unwrap();
    assert!(!outcome.complete());
    assert_eq!(outcome.report.succeeded(), 0);
    assert_eq!(outcome.report.failures.len(), 3);
    let message = &outcome.report.failures[0].message;
    assert!(
        message.contains("applied in the target but not recorded in the state"),
        "{message}"
    );
    let m = backend.0.lock().unwrap();
    assert_eq!(m.commits, 0);
    assert!(m.state.is_none());
}

#[tokio::test]
async fn a_failed_commit_is_an_error_that_points_to_the_journal() {
    let (_dir, engine) = workspace();
    let backend = MemoryBackend::default();
    backend.0.lock().unwrap().fail_commit = true;
    let mut session = Session::open(&engine, &backend, "apply").await.unwrap();
    let planned = session.plan(&[], false, &Quiet).await.unwrap();
    let err = session
        .apply(planned, &ApplyOptions::default(), &Quiet)
        .await
        .unwrap_err();
    assert!(matches!(err, SessionError::Commit(_)), "{err}");
    assert!(err.to_string().contains("recovers them from the journal"));
    // What was journalled is recovered by the next session.
    drop(session);
    backend.0.lock().unwrap().fail_commit = false;
    let session = Session::open(&engine, &backend, "apply").await.unwrap();
    assert_eq!(session.state().unwrap().syncs["staff"].accounts.len(), 3);
}

fn intent(email: &str, settles_by: i64) -> crate::state::Intent {
    crate::state::Intent {
        sync: "staff".into(),
        target: "mojo".into(),
        action: "create".into(),
        identity: BTreeMap::from([("email".to_string(), email.to_string())]),
        fields: BTreeMap::from([("email".to_string(), serde_json::json!(email))]),
        active: true,
        recorded_at: 0,
        settles_by,
        attempt_secs: 3600,
    }
}

/// Issue 7, point 5: a create left in flight by a killed run is resolved by a lookup before
/// anything is planned for its identity: found, it is recorded as created (never created
/// twice); not found while it may still land, its create is refused with the reason; not found
/// after that, it is planned again.
#[tokio::test]
async fn intents_of_a_killed_run_are_resolved_before_planning() {
    let (_dir, engine) = workspace();
    let backend = MemoryBackend::default();
    let mut session = Session::open(&engine, &backend, "apply").await.unwrap();
    let planned = session.plan(&[], false, &Quiet).await.unwrap();
    session
        .apply(planned, &ApplyOptions::default(), &Quiet)
        .await
        .unwrap();
    drop(session);
    // Ann's create landed but the run died before recording it; Bob's may still land.
    let ann_id = backend.load().await.unwrap().state.unwrap().list_rows()[0]
        .target_id
        .clone();
    backend.forget(&ann_id).await.unwrap();
    let far = i64::MAX;
    {
        let mut m = backend.0.lock().unwrap();
        let state = m.state.as_mut().unwrap();
        state.intents = vec![intent("ann@example.com", far)];
    }
    // Dan, new in the source, had a create in flight that the target does not show.
    std::fs::write(
        engine.loaded.base_dir.join("people.csv"),
        "email,first\nann@example.com,Ann\nbob@example.com,Bob\ncid@example.com,Cid\ndan@example.com,Dan\n",
    )
    .unwrap();
    backend
        .0
        .lock()
        .unwrap()
        .state
        .as_mut()
        .unwrap()
        .intents
        .push(intent("dan@example.com", far));

    let mut session = Session::open(&engine, &backend, "apply").await.unwrap();
    let planned = session.plan(&[], false, &Quiet).await.unwrap();
    let state = session.state().unwrap();
    let ann = &state.syncs["staff"].accounts[&ann_id];
    assert_eq!(ann.origin, Origin::Created, "found: recorded as created");
    // Dan's window is brought forward to one attempt's timeout: its sender is gone.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert_eq!(state.intents.len(), 1);
    let dan = &state.intents[0];
    assert_eq!(dan.identity["email"], "dan@example.com");
    assert!(
        dan.settles_by > now && dan.settles_by <= now + 3600,
        "{dan:?}"
    );
    assert_eq!(planned.readiness(), Readiness::Blocked);
    let sync = &planned.doc.syncs[0];
    assert!(
        sync.changes
            .iter()
            .all(|c| c.identity["email"] != "dan@example.com"),
        "{:?}",
        sync.changes
    );
    let error = sync.errors.join("\n");
    assert!(error.contains("email=dan@example.com"), "{error}");
    assert!(error.contains("no known outcome"), "{error}");
    assert!(
        sync.changes
            .iter()
            .all(|c| c.identity["email"] != "ann@example.com"
                || c.action != crate::plan::Action::Create),
        "ann is never created again"
    );
    drop(session);

    // `plan` takes no lock and resolves nothing: it holds Dan's create while the intent may
    // still take effect, and no longer once its window has passed.
    let mut held = backend.load().await.unwrap().state.unwrap();
    let planned = engine.read_and_plan(&[], Some(&held), false).await.unwrap();
    assert!(!planned.planned[0].plan.errors.is_empty());
    held.intents = vec![intent("dan@example.com", 0)];
    let planned = engine.read_and_plan(&[], Some(&held), false).await.unwrap();
    assert!(
        planned.planned[0].plan.errors.is_empty(),
        "{:?}",
        planned.planned[0].plan.errors
    );

    // Past its window, an intent whose account is not there is dropped: Dan is planned.
    backend.0.lock().unwrap().state.as_mut().unwrap().intents = vec![intent("dan@example.com", 0)];
    let mut session = Session::open(&engine, &backend, "apply").await.unwrap();
    let planned = session.plan(&[], false, &Quiet).await.unwrap();
    assert!(session.state().unwrap().intents.is_empty());
    assert_eq!(planned.readiness(), Readiness::Ready);
    assert!(planned.doc.syncs[0].changes.iter().any(
        |c| c.identity["email"] == "dan@example.com" && c.action == crate::plan::Action::Create
    ));
    session
        .apply(planned, &ApplyOptions::default(), &Quiet)
        .await
        .unwrap();
    assert!(session.state().unwrap().intents.is_empty());
}

/// `run` will drive sessions from spawned tasks: the session's futures must be `Send`.
#[allow(dead_code)]
fn session_futures_are_send<'e>(
    engine: &'e Engine,
    backend: &'e dyn StateBackend,
    session: &'e mut Session<'e>,
    planned: PlannedApply,
    options: &'e ApplyOptions,
) {
    fn send<T: Send>(_: T) {}
    send(Session::open(engine, backend, "run"));
    send(session.plan(&[], false, &Quiet));
    send(session.apply(planned, options, &Quiet));
}

/// A workspace whose sync maps a sensitive field (`password`) from the source.
fn password_workspace() -> (tempfile::TempDir, Engine) {
    workspace_with(
        "email,pw\nann@example.com,real-pw-1\nbob@example.com,real-pw-2\n",
        r#"version: 1
sources:
  hr:
    kind: csv
    path: people.csv
targets:
  mojo:
    kind: csv_export
    dir: out
syncs:
  - name: staff
    from: hr
    to: mojo
    identity: [email]
    fields:
      email: user.email
      password: user.pw
"#,
    )
}

/// What a tampered plan (or a bug) could do: a sensitive value in clear, its flag dropped.
fn inject_password(doc: &mut PlanDocument) {
    for sync in &mut doc.syncs {
        for change in &mut sync.changes {
            if let Some(d) = change.fields.get_mut("password") {
                d.after = serde_json::json!("injected-pw");
                d.sensitive = false;
            }
        }
    }
}

#[tokio::test]
async fn no_sensitive_value_reaches_a_plan_the_journal_the_state_or_the_audit_log() {
    // The plan guard puts the marker back and the flag on.
    let (_dir, engine) = password_workspace();
    let backend = MemoryBackend::default();
    let mut session = Session::open(&engine, &backend, "apply").await.unwrap();
    let mut doc = session.plan(&[], false, &Quiet).await.unwrap().doc;
    assert!(!serde_json::to_string(&doc).unwrap().contains("real-pw"));
    inject_password(&mut doc);
    assert_eq!(engine.sensitive().scrub_document(&mut doc), 2);
    let text = serde_json::to_string(&doc).unwrap();
    assert!(!text.contains("injected-pw"), "{text}");
    assert!(doc.syncs[0].changes[0].fields["password"].sensitive);
    drop(session);

    // The journal: a commit that fails leaves the journalled ops to look at.
    let (_dir, engine) = password_workspace();
    let backend = MemoryBackend::default();
    backend.0.lock().unwrap().fail_commit = true;
    let mut session = Session::open(&engine, &backend, "apply").await.unwrap();
    let mut planned = session.plan(&[], false, &Quiet).await.unwrap();
    inject_password(&mut planned.doc);
    let err = session
        .apply(planned, &ApplyOptions::default(), &Quiet)
        .await
        .unwrap_err();
    assert!(matches!(err, SessionError::Commit(_)), "{err}");
    {
        let m = backend.0.lock().unwrap();
        let (_, ops) = m.journal.as_ref().unwrap();
        assert_eq!(ops.len(), 2);
        let text = serde_json::to_string(ops).unwrap();
        assert!(!text.contains("-pw"), "{text}");
    }

    // The state and the audit log; the target still gets the source's value, never the plan's.
    let (dir, engine) = password_workspace();
    let backend = MemoryBackend::default();
    let mut session = Session::open(&engine, &backend, "apply").await.unwrap();
    let mut planned = session.plan(&[], false, &Quiet).await.unwrap();
    inject_password(&mut planned.doc);
    let seen = Recording::default();
    let outcome = session
        .apply(planned, &ApplyOptions::default(), &seen)
        .await
        .unwrap();
    assert!(outcome.complete(), "{:?}", outcome.report);
    let state = serde_json::to_string(&backend.0.lock().unwrap().state).unwrap();
    assert!(!state.contains("-pw"), "{state}");
    let audit = std::fs::read_to_string(dir.path().join(".headcount/audit.jsonl")).unwrap();
    assert!(!audit.contains("-pw"), "{audit}");
    for (event, _) in seen.events.lock().unwrap().iter() {
        assert_eq!(event.fields["password"].after, "(sensitive)");
    }
    let users =
        std::fs::read_to_string(dir.path().join("out/export-000001/users-001.csv")).unwrap();
    assert!(
        users.contains("real-pw-1") && !users.contains("injected-pw"),
        "{users}"
    );
}
