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
use crate::engine::{Connections, Engine};
use crate::http::HttpStats;
use crate::plan::PlanDocument;
use crate::sensitive::SensitiveFields;
use crate::state::{LockedState, ManagedAccount, Origin, State, StateBackend, StateOp};

pub use error::SessionError;
pub use saved::{Pending, check_saved};

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
    /// For a saved plan: changes the config produces now that the plan lacks, left for the
    /// next plan (never applied unseen).
    pub pending: Vec<Pending>,
    /// Sources and targets whose read failed while planning, as (`source`|`target`, name),
    /// for the reconcile loop's metrics (the plan's sync errors say why).
    pub read_errors: Vec<(&'static str, String)>,
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

    /// Reads the sources and targets of the named syncs (all when none) and plans them. Creates
    /// left in flight by a killed run are resolved first ([`Session::resolve_intents`]).
    pub async fn plan(
        &mut self,
        syncs: &[String],
        allow_mass_removal: bool,
        observer: &dyn SessionObserver,
    ) -> Result<PlannedApply, SessionError> {
        let specs = self.engine.select(syncs)?;
        let conns = self.engine.connect(&specs, true)?;
        self.resolve_intents(&conns).await?;
        let snapshot = self.engine.read(&conns).await;
        let planned = self.engine.plan(
            &specs,
            &snapshot,
            self.state.as_ref(),
            allow_mass_removal,
            syncs.is_empty(),
        );
        let doc = self.engine.document(&planned, self.state.as_ref());
        observer.plan_ready(&doc);
        let mut read_errors: Vec<(&'static str, String)> = snapshot
            .records
            .iter()
            .filter(|(_, r)| r.is_err())
            .map(|(n, _)| ("source", n.clone()))
            .chain(
                snapshot
                    .live
                    .iter()
                    .filter(|(_, r)| r.is_err())
                    .map(|(n, _)| ("target", n.clone())),
            )
            .collect();
        read_errors.sort();
        Ok(PlannedApply {
            read_errors,
            doc,
            live: snapshot.live_ok(),
            secrets: Engine::secrets(&planned),
            conns,
            pending: Vec::new(),
        })
    }

    /// Resolves the intents of creates a killed run left without an outcome, before anything
    /// is planned for their identities: the target is asked for the account by identity; found,
    /// it is recorded as created (so it is never created twice); not found once the write's
    /// window has passed, the intent is dropped (the create never took effect, and the plan
    /// makes it again). Not found before that, or a lookup that fails, leaves the intent, and
    /// the plan refuses to create that identity ([`Engine::plan`]). The first lookup brings the
    /// window forward to one attempt's timeout: the process that sent the write is gone (this
    /// session holds the lock), so nothing will resend it. Intents of targets not
    /// connected here wait for a run that plans their sync.
    pub async fn resolve_intents(&mut self, conns: &Connections) -> Result<(), SessionError> {
        let Some(state) = self.state.as_ref().filter(|s| !s.intents.is_empty()) else {
            return Ok(());
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut ops = Vec::new();
        for intent in &state.intents {
            let (Some(target), Some(spec)) = (
                conns.targets.get(&intent.target),
                self.engine.specs.iter().find(|s| s.name == intent.sync),
            ) else {
                continue;
            };
            let found = match target.find(&intent.identity).await {
                Ok(candidates) => candidates,
                Err(e) => {
                    tracing::warn!(
                        "sync `{}`: could not look up {} after an interrupted create: {e}",
                        intent.sync,
                        crate::engine::identity_text(&intent.identity)
                    );
                    continue;
                }
            };
            let matching: Vec<&LiveAccount> = found
                .iter()
                .filter(|a| crate::engine::identity_matches(spec, a, &intent.identity))
                .collect();
            let settle = StateOp::Settle {
                sync: intent.sync.clone(),
                identity: intent.identity.clone(),
            };
            match matching.as_slice() {
                [account] => {
                    tracing::info!(
                        "sync `{}`: the create of {} interrupted by a stopped run took effect (account {}); recorded as created",
                        intent.sync,
                        crate::engine::identity_text(&intent.identity),
                        account.id
                    );
                    ops.push(StateOp::Upsert {
                        sync: intent.sync.clone(),
                        target: intent.target.clone(),
                        target_id: account.id.clone(),
                        account: ManagedAccount {
                            identity: intent.identity.clone(),
                            fields: intent.fields.clone(),
                            active: Some(intent.active),
                            origin: Origin::Created,
                            deactivated_by_headcount: false,
                        },
                    });
                    ops.push(settle);
                }
                [] if now > intent.settles_by => ops.push(settle),
                // The run that sent it is gone and nothing resends it: its last attempt lands
                // within one timeout from now, or never. Brought forward once, durably.
                [] if now.saturating_add(intent.attempt_secs) < intent.settles_by => {
                    let mut sooner = intent.clone();
                    sooner.settles_by = now.saturating_add(intent.attempt_secs);
                    ops.push(StateOp::Intend { intent: sooner });
                }
                // Not there yet, or several: only a later lookup (or a person) can tell.
                _ => {}
            }
        }
        if ops.is_empty() {
            return Ok(());
        }
        let mut next = state.clone();
        self.lock.begin_journal(&next).await?;
        for op in &ops {
            self.lock.append(op).await?;
            next.apply_op(op);
        }
        self.lock
            .commit(&mut next)
            .await
            .map_err(SessionError::Commit)?;
        self.state = Some(next);
        Ok(())
    }

    /// A saved plan (`apply PLANFILE`), checked against the config, the state and the targets
    /// as they are now and planned again; refused unless every saved change is one the config
    /// and the sources produce now. `shown` names the plan in messages (its path);
    /// `allow_mass_removal` lifts the mass-removal guard for the removals it applies. Creates
    /// left in flight by a killed run are resolved first; when that records anything, the
    /// state's serial moves and the plan is stale: plan again.
    pub async fn load_saved(
        &mut self,
        doc: PlanDocument,
        shown: &str,
        allow_mass_removal: bool,
    ) -> Result<PlannedApply, SessionError> {
        if self.state.as_ref().is_some_and(|s| !s.intents.is_empty()) {
            let specs: Vec<_> = self
                .engine
                .specs
                .iter()
                .filter(|s| doc.syncs.iter().any(|p| p.name == s.name))
                .cloned()
                .collect();
            let conns = self.engine.connect(&specs, false)?;
            self.resolve_intents(&conns).await?;
        }
        saved::load(
            self.engine,
            self.state.as_ref(),
            doc,
            shown,
            allow_mass_removal,
        )
        .await
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
            ..
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
        // The last guard: no sensitive value reaches the audit log, the journal or the state,
        // whatever the plan said (issue 7, point 1).
        let sensitive = SensitiveFields::of(&self.engine.specs);
        let observe = |event: &OpEvent| {
            let mut event = event.clone();
            sensitive.scrub_event(&mut event);
            if !event.not_started
                && let Err(e) = audit.append(&event, commit.as_deref())
                && !audit_failed.swap(true, Ordering::SeqCst)
            {
                observer.audit_failed(&e);
            }
            observer.operation(&event);
        };

        let mut new_state = base;
        let journal = JournalRecorder {
            lock: futures::lock::Mutex::new(&mut self.lock),
            sensitive: &sensitive,
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
            sensitive.scrub_state(&mut new_state);
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
    /// Scrubs every op before it is journalled.
    sensitive: &'a SensitiveFields,
}

#[async_trait::async_trait]
impl Recorder for JournalRecorder<'_> {
    async fn record(&self, op: &StateOp) -> Result<(), String> {
        let mut op = op.clone();
        self.sensitive.scrub_op(&mut op);
        let mut lock = self.lock.lock().await;
        lock.append(&op).await.map_err(|e| e.to_string())
    }
}
