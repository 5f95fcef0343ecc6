//! The reconcile loop (`headcount run`, SPEC section 3): each round is the plan + apply of
//! `apply --auto-approve` through the apply session, a sync stopped by the mass-removal guard
//! left out; then a wait of the interval (jittered), or of an exponential backoff after failed
//! rounds; a stop (SIGINT/SIGTERM) ends it after the operations in flight. The state lock is
//! held during a round only; HTTP clients (tokens, rate limiters) live in the engine's
//! `ClientPool` across rounds. Conditions (a failed round, a guard, drift = a round with
//! changes to apply) are announced on a webhook once when they appear, and when they clear.

pub mod conditions;
pub mod metrics;
pub mod notify;
pub mod round;
pub mod schedule;
pub mod server;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

pub use conditions::{Condition, Notice, Tracker};
pub use metrics::{Health, Metrics};
pub use notify::{Notifier, NotifyError};
pub use round::{RoundReport, round};
pub use schedule::Schedule;

use crate::engine::Engine;
use crate::session::SessionObserver;

/// How the loop runs.
#[derive(Debug, Clone, Copy)]
pub struct LoopOptions {
    pub schedule: Schedule,
    /// One round, then return (`--once`).
    pub once: bool,
    /// Operations in flight at once per target.
    pub parallelism: usize,
}

/// Asks the loop to stop: no new operation starts, those in flight finish, no new round.
#[derive(Clone)]
pub struct Stop {
    cancel: Arc<AtomicBool>,
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            cancel: Arc::new(AtomicBool::new(false)),
            tx: Arc::new(watch::channel(false).0),
        }
    }
}

impl Stop {
    pub fn stop(&self) {
        self.cancel.store(true, Ordering::SeqCst);
        self.tx.send_replace(true);
    }

    pub fn is_stopped(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// Resolves once [`Stop::stop`] was called.
    pub async fn stopped(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }
}

/// What the caller hears between rounds (on top of the session's events).
pub trait LoopObserver: SessionObserver {
    /// A round finished; `next` is the wait before the next one (`None`: the loop ends).
    fn round_done(&self, _report: &RoundReport, _next: Option<Duration>) {}
    /// A notification could not be sent.
    fn notify_failed(&self, _error: &NotifyError) {}
}

/// Runs rounds until `stop` (or after one with `once`) and returns the last round's report.
pub async fn run(
    engine: &Engine,
    options: &LoopOptions,
    stop: &Stop,
    metrics: &Metrics,
    notifier: Option<&Notifier>,
    observer: &dyn LoopObserver,
) -> RoundReport {
    let mut tracker = Tracker::default();
    let mut failures: u32 = 0;
    let config = engine.loaded.path.display().to_string();
    loop {
        let report = round(engine, options.parallelism, &stop.cancel, observer).await;
        metrics.record(&report, engine.clients.stats());
        if let Some(n) = notifier {
            // A guard is "resolved" only by a round that planned its sync cleanly.
            let undetermined = |c: &Condition| match c {
                Condition::GuardBlocked { sync } => {
                    report.error.is_some() || report.failed_syncs.iter().any(|(s, _)| s == sync)
                }
                _ => false,
            };
            for notice in tracker.observe_with(&notify::conditions(&report), &undetermined) {
                if let Err(e) = n.send(&notify::message(&notice, &config)).await {
                    tracker.not_sent(&notice);
                    metrics.notification_failed();
                    observer.notify_failed(&e);
                }
            }
        }
        failures = if report.failed() {
            failures.saturating_add(1)
        } else {
            0
        };
        if options.once || stop.is_stopped() {
            observer.round_done(&report, None);
            return report;
        }
        let wait = options.schedule.delay(failures, schedule::random_unit());
        observer.round_done(&report, Some(wait));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.stopped() => return report,
        }
    }
}
