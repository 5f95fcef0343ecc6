//! One round of the loop: the same plan + apply as `apply --auto-approve`, through the apply
//! session, except that a sync the mass-removal guard stopped (or whose plan has any other
//! error) is left out and the others are applied.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::apply::{ApplyReport, Failure};
use crate::connectors::ApplyOptions;
use crate::engine::Engine;
use crate::http::HttpStats;
use crate::session::{Session, SessionObserver};

/// What one round did.
#[derive(Debug, Clone, Default)]
pub struct RoundReport {
    /// When it started.
    pub started_at: Option<SystemTime>,
    pub duration: Duration,
    /// The round could not plan at all (state locked, a connector that cannot be built).
    pub error: Option<String>,
    /// Syncs not applied because their plan has errors (other than the guard), with them.
    pub failed_syncs: Vec<(String, Vec<String>)>,
    /// Syncs the mass-removal guard stopped, with its words.
    pub guard_blocked: Vec<(String, Vec<String>)>,
    /// Sources and targets whose read failed, as (`source`|`target`, name).
    pub read_errors: Vec<(&'static str, String)>,
    /// Changes planned for the syncs that were applied, per sync (drift: non-zero).
    pub planned: BTreeMap<String, usize>,
    /// What the apply did (empty when nothing was applied).
    pub applied: ApplyReport,
    /// A stop was asked for: operations in flight finished, none started after.
    pub interrupted: bool,
    /// Request figures of the HTTP targets applied to.
    pub http: Vec<(String, HttpStats)>,
}

impl RoundReport {
    /// Failed: it could not plan, a sync's plan has errors, or an operation failed. A sync the
    /// guard stopped does not fail the round (it is its own condition).
    pub fn failed(&self) -> bool {
        self.error.is_some() || !self.failed_syncs.is_empty() || !self.applied.failures.is_empty()
    }

    /// Changes the round found to apply.
    pub fn drift(&self) -> usize {
        self.planned.values().sum()
    }

    /// The operations that failed.
    pub fn failures(&self) -> &[Failure] {
        &self.applied.failures
    }
}

/// Runs one round: lock, plan every sync, apply those without errors, release the lock.
/// `cancel` stops it between operations (and before the apply when set while planning).
pub async fn round(
    engine: &Engine,
    parallelism: usize,
    cancel: &Arc<AtomicBool>,
    observer: &dyn SessionObserver,
) -> RoundReport {
    let started = tokio::time::Instant::now();
    let mut report = RoundReport {
        started_at: Some(SystemTime::now()),
        ..RoundReport::default()
    };
    if let Err(e) = plan_and_apply(engine, parallelism, cancel, observer, &mut report).await {
        report.error = Some(engine.scrubber().scrub(&e));
    }
    report.duration = started.elapsed();
    report
}

async fn plan_and_apply(
    engine: &Engine,
    parallelism: usize,
    cancel: &Arc<AtomicBool>,
    observer: &dyn SessionObserver,
    report: &mut RoundReport,
) -> Result<(), String> {
    let mut session = Session::open(engine, engine.state.as_ref(), "run")
        .await
        .map_err(|e| e.to_string())?;
    let result = async {
        let mut planned = session
            .plan(&[], false, observer)
            .await
            .map_err(|e| e.to_string())?;
        report.read_errors = std::mem::take(&mut planned.read_errors);
        // Only syncs whose plan is clean are applied.
        planned.doc.syncs.retain(|s| {
            if s.errors.is_empty() {
                return true;
            }
            let entry = (s.name.clone(), s.errors.clone());
            if s.guard_blocked {
                report.guard_blocked.push(entry);
            } else {
                report.failed_syncs.push(entry);
            }
            false
        });
        for s in &planned.doc.syncs {
            if !s.changes.is_empty() {
                report.planned.insert(s.name.clone(), s.changes.len());
            }
        }
        if planned.doc.total_changes() == 0 {
            return Ok(());
        }
        if cancel.load(Ordering::SeqCst) {
            report.interrupted = true;
            return Ok(());
        }
        let options = ApplyOptions {
            parallelism,
            cancel: cancel.clone(),
            gate: None,
        };
        let outcome = session
            .apply(planned, &options, observer)
            .await
            .map_err(|e| e.to_string())?;
        report.applied = outcome.report;
        report.interrupted = outcome.interrupted;
        report.http = outcome.http;
        Ok(())
    }
    .await;
    // The lock is released between rounds, so `state`, `plan` and a person's `apply` can run.
    let closed = session.close().await.map_err(|e| e.to_string());
    result.and(closed)
}
