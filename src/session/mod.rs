//! The apply session (issue 6, point 4): lock, journal recovery, plan or saved-plan check,
//! apply, journal, audit and commit, in one place that `apply`, `apply PLANFILE` and later `run`
//! and `drift` call, so none of them copies the protocol. It prints nothing and asks nothing:
//! events go to a [`SessionObserver`]; the caller confirms, prints and maps the outcome to an
//! exit code. It writes state only through [`StateBackend`]/[`LockedState`].

mod error;
mod saved;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::apply::{self, ApplyInput, ApplyReport, OpEvent, Recorder, Secrets};
use crate::audit::{AuditError, AuditLog};
use crate::connectors::{ApplyOptions, LiveAccount};
use crate::engine::{Connections, Engine, Planned};
use crate::http::HttpStats;
use crate::plan::PlanDocument;
use crate::state::{LockedState, State, StateBackend, StateOp};

pub use error::SessionError;

/// What a caller hears while a session works. Every method has a default that ignores it.
pub trait SessionObserver: Send + Sync {
    /// A plan was made ([`Session::plan`]); nothing is applied yet.
    fn plan_ready(&self, _doc: &PlanDocument) {}
    /// One change's outcome, once it is journalled (or known to have failed).
    fn operation(&self, _event: &OpEvent) {}
    /// The audit log could not be written; reported once per apply, which goes on.
    fn audit_failed(&self, _error: &AuditError) {}
}

/// An observer that ignores everything.
pub struct Quiet;

impl SessionObserver for Quiet {}

/// A lock held on the state, the state as recovered under it, and the engine to plan with.
/// Dropping the session releases the lock.
pub struct Session<'e> {
    engine: &'e Engine,
    lock: Box<dyn LockedState>,
    state: Option<State>,
}

/// A plan ready to apply, with what applying it needs: the connectors, the live accounts it
/// was checked against and the sensitive values (never stored in the plan itself).
pub struct PlannedApply {
    pub doc: PlanDocument,
    conns: Connections,
    live: HashMap<String, Vec<LiveAccount>>,
    secrets: Secrets,
}

/// Whether a fresh plan can be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// The plan has errors (a guard stopped a sync, a source failed): nothing may be applied.
    Blocked,
    /// Nothing to do.
    NoChanges,
    /// Changes to apply, once confirmed.
    Ready,
}

impl PlannedApply {
    pub fn readiness(&self) -> Readiness {
        if self.doc.has_errors() {
            Readiness::Blocked
        } else if self.doc.total_changes() == 0 {
            Readiness::NoChanges
        } else {
            Readiness::Ready
        }
    }
}

/// What an apply did.
#[derive(Debug, Clone)]
pub struct ApplyOutcome {
    pub report: ApplyReport,
    /// The apply was cancelled: operations in flight finished, none started after.
    pub interrupted: bool,
    /// Request figures of each HTTP target, by target name.
    pub http: Vec<(String, HttpStats)>,
    /// How many changes the plan had.
    pub total_changes: usize,
}

impl ApplyOutcome {
    /// Every change applied and nothing was interrupted.
    pub fn complete(&self) -> bool {
        self.report.failures.is_empty() && !self.interrupted
    }
}

impl<'e> Session<'e> {
    /// Takes the state lock for `operation` and folds in the journal of an interrupted apply.
    pub async fn open(
        engine: &'e Engine,
        backend: &dyn StateBackend,
        operation: &str,
    ) -> Result<Session<'e>, SessionError> {
        let mut lock = backend.lock(operation).await?;
        let state = lock.recover().await?;
        Ok(Session {
            engine,
            lock,
            state,
        })
    }

    /// The state as committed under this session's lock (`None` before the first apply).
    pub fn state(&self) -> Option<&State> {
        self.state.as_ref()
    }

    /// Reads the sources and targets of the named syncs (all when none) and plans them.
    pub async fn plan(
        &self,
        syncs: &[String],
        allow_mass_removal: bool,
        observer: &dyn SessionObserver,
    ) -> Result<PlannedApply, SessionError> {
        let Planned {
            conns,
            snapshot,
            planned,
        } = self
            .engine
            .read_and_plan(syncs, self.state.as_ref(), allow_mass_removal)
            .await?;
        let doc = self.engine.document(&planned, self.state.as_ref());
        observer.plan_ready(&doc);
        Ok(PlannedApply {
            doc,
            live: snapshot.live_ok(),
            secrets: Engine::secrets(&planned),
            conns,
        })
    }

    /// A saved plan (`apply PLANFILE`), checked against the config, the state and the targets
    /// as they are now; refused as stale unless it can be applied exactly. `shown` names the
    /// plan in messages (its path).
    pub async fn load_saved(
        &self,
        doc: PlanDocument,
        shown: &str,
    ) -> Result<PlannedApply, SessionError> {
        saved::load(self.engine, self.state.as_ref(), doc, shown).await
    }

    /// Applies `planned`: journal on top of the committed state, every operation audited and
    /// journalled before it is reported, then commit when anything succeeded. Cancel through
    /// `options.cancel`: operations in flight finish and what succeeded is committed.
    pub async fn apply(
        &mut self,
        planned: PlannedApply,
        options: &ApplyOptions,
        observer: &dyn SessionObserver,
    ) -> Result<ApplyOutcome, SessionError> {
        let PlannedApply {
            doc,
            conns,
            live,
            secrets,
        } = planned;
        let base = self
            .state
            .clone()
            .unwrap_or_else(|| State::new(uuid::Uuid::new_v4().to_string()));
        self.lock.begin_journal(&base).await?;

        // A failure to write the audit log is reported, never silently dropped.
        let audit =
            AuditLog::open(&self.engine.audit_path)?.scrubbing(self.engine.scrubber().clone());
        let audit_failed = AtomicBool::new(false);
        let commit = doc.config.git.as_ref().map(|g| g.commit.clone());
        let observe = |event: &OpEvent| {
            if !event.not_started
                && let Err(e) = audit.append(event, commit.as_deref())
                && !audit_failed.swap(true, Ordering::SeqCst)
            {
                observer.audit_failed(&e);
            }
            observer.operation(event);
        };

        let mut new_state = base;
        let journal = JournalRecorder {
            lock: futures::lock::Mutex::new(&mut self.lock),
        };
        let report = apply::apply_recorded(
            ApplyInput {
                syncs: &doc.syncs,
                specs: &self.engine.specs,
                targets: &conns.targets,
                live: &live,
                secrets: &secrets,
                options,
                observer: &observe,
            },
            &mut new_state,
            &journal,
        )
        .await;
        drop(journal);
        if report.succeeded() > 0 {
            self.lock
                .commit(&mut new_state)
                .await
                .map_err(SessionError::Commit)?;
            self.state = Some(new_state);
        }
        let mut http: Vec<(String, HttpStats)> = conns
            .targets
            .iter()
            .filter_map(|(name, t)| t.http_stats().map(|s| (name.clone(), s)))
            .collect();
        http.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(ApplyOutcome {
            report,
            interrupted: options.cancelled(),
            http,
            total_changes: doc.total_changes(),
        })
    }

    /// Releases the lock now, reporting a failure (dropping the session only logs it).
    pub async fn close(self) -> Result<(), SessionError> {
        self.lock.release().await.map_err(SessionError::from)
    }
}

/// The session's journal as the apply engine's [`Recorder`]: one append at a time.
struct JournalRecorder<'a> {
    lock: futures::lock::Mutex<&'a mut Box<dyn LockedState>>,
}

#[async_trait::async_trait]
impl Recorder for JournalRecorder<'_> {
    async fn record(&self, op: &StateOp) -> Result<(), String> {
        let mut lock = self.lock.lock().await;
        lock.append(op).await.map_err(|e| e.to_string())
    }
}
