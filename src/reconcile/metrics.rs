//! What the loop has done, for `/metrics` (Prometheus text format) and `/healthz`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use tokio::time::Instant;

use super::round::RoundReport;
use crate::http::HttpStats;

/// The loop's figures. Shared between the loop and the HTTP listener.
#[derive(Debug)]
pub struct Metrics {
    interval: Duration,
    started: Instant,
    inner: Mutex<Figures>,
}

#[derive(Debug, Default)]
struct Figures {
    rounds_ok: u64,
    rounds_failed: u64,
    last_timestamp: Option<f64>,
    last_duration: Option<f64>,
    last_success_timestamp: Option<f64>,
    /// The last round's failure, for `/healthz`; `None` when it succeeded.
    last_failure: Option<String>,
    last_finished: Option<Instant>,
    changes: BTreeMap<(String, String), u64>,
    ops_failed: BTreeMap<String, u64>,
    guard_blocked: BTreeMap<String, u64>,
    read_errors: BTreeMap<(String, String), u64>,
    notifications_failed: u64,
    http: Vec<(String, HttpStats)>,
}

/// `/healthz`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub ok: bool,
    /// Why not, when not.
    pub reason: Option<String>,
}

impl Metrics {
    pub fn new(interval: Duration) -> Metrics {
        Metrics {
            interval,
            started: Instant::now(),
            inner: Mutex::default(),
        }
    }

    fn figures(&self) -> std::sync::MutexGuard<'_, Figures> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a finished round; `http` is every client's counters so far.
    pub fn record(&self, r: &RoundReport, http: Vec<(String, HttpStats)>) {
        let mut f = self.figures();
        let ts = r
            .started_at
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64());
        f.last_timestamp = ts;
        f.last_duration = Some(r.duration.as_secs_f64());
        f.last_finished = Some(Instant::now());
        if r.failed() {
            f.rounds_failed += 1;
            f.last_failure = Some(failure_reason(r));
        } else {
            f.rounds_ok += 1;
            f.last_failure = None;
            f.last_success_timestamp = ts;
        }
        for (sync, counts) in &r.applied.applied {
            for (action, n) in counts {
                *f.changes
                    .entry((sync.clone(), action.as_str().to_string()))
                    .or_default() += *n as u64;
            }
        }
        for fail in r.failures() {
            *f.ops_failed.entry(fail.sync.clone()).or_default() += 1;
        }
        for (sync, _) in &r.guard_blocked {
            *f.guard_blocked.entry(sync.clone()).or_default() += 1;
        }
        for (kind, name) in &r.read_errors {
            *f.read_errors
                .entry((kind.to_string(), name.clone()))
                .or_default() += 1;
        }
        f.http = http;
    }

    /// A notification could not be sent.
    pub fn notification_failed(&self) {
        self.figures().notifications_failed += 1;
    }

    /// Healthy when the last round succeeded, or when none has finished yet and the loop
    /// started less than two intervals ago.
    pub fn health(&self) -> Health {
        let f = self.figures();
        if let Some(reason) = &f.last_failure {
            return Health {
                ok: false,
                reason: Some(format!("the last round failed: {reason}")),
            };
        }
        if f.last_finished.is_none() && self.started.elapsed() > self.interval * 2 {
            return Health {
                ok: false,
                reason: Some(format!(
                    "no round has finished in {}s (two intervals) since the loop started",
                    self.started.elapsed().as_secs()
                )),
            };
        }
        Health {
            ok: true,
            reason: None,
        }
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let f = self.figures();
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        family(
            "headcount_rounds_total",
            "counter",
            "Reconcile rounds finished, by result.",
            vec![
                (labels(&[("result", "success")]), f.rounds_ok as f64),
                (labels(&[("result", "failure")]), f.rounds_failed as f64),
            ],
        );
        family(
            "headcount_last_round_timestamp_seconds",
            "gauge",
            "Unix time the last round started (0 before the first).",
            vec![(String::new(), f.last_timestamp.unwrap_or(0.0))],
        );
        family(
            "headcount_last_round_duration_seconds",
            "gauge",
            "How long the last round took.",
            vec![(String::new(), f.last_duration.unwrap_or(0.0))],
        );
        family(
            "headcount_last_success_timestamp_seconds",
            "gauge",
            "Unix time the last successful round started (0 before the first).",
            vec![(String::new(), f.last_success_timestamp.unwrap_or(0.0))],
        );
        family(
            "headcount_changes_applied_total",
            "counter",
            "Changes applied, by sync and action.",
            f.changes
                .iter()
                .map(|((s, a), n)| (labels(&[("sync", s), ("action", a)]), *n as f64))
                .collect(),
        );
        family(
            "headcount_operations_failed_total",
            "counter",
            "Operations that failed, by sync.",
            f.ops_failed
                .iter()
                .map(|(s, n)| (labels(&[("sync", s)]), *n as f64))
                .collect(),
        );
        family(
            "headcount_syncs_blocked_by_guard_total",
            "counter",
            "Rounds in which the mass-removal guard stopped a sync, by sync.",
            f.guard_blocked
                .iter()
                .map(|(s, n)| (labels(&[("sync", s)]), *n as f64))
                .collect(),
        );
        family(
            "headcount_read_errors_total",
            "counter",
            "Failed reads of a source or listings of a target, by kind and name.",
            f.read_errors
                .iter()
                .map(|((k, name), n)| (labels(&[("kind", k), ("name", name)]), *n as f64))
                .collect(),
        );
        family(
            "headcount_notifications_failed_total",
            "counter",
            "Webhook notifications that could not be sent.",
            vec![(String::new(), f.notifications_failed as f64)],
        );
        let per_client = |pick: fn(&HttpStats) -> f64| -> Vec<(String, f64)> {
            f.http
                .iter()
                .map(|(c, s)| (labels(&[("client", c)]), pick(s)))
                .collect()
        };
        let requests = per_client(|s| s.requests as f64);
        let retries = per_client(|s| s.retries as f64);
        let throttled = per_client(|s| s.throttled as f64);
        let waited = per_client(|s| s.waited_ms as f64 / 1000.0);
        family(
            "headcount_http_requests_total",
            "counter",
            "HTTP requests sent to vendors (retries included), by client.",
            requests,
        );
        family(
            "headcount_http_retries_total",
            "counter",
            "HTTP requests resent after a timeout, connection error, 5xx or throttle answer.",
            retries,
        );
        family(
            "headcount_http_throttled_total",
            "counter",
            "Throttle answers (429 and vendor equivalents).",
            throttled,
        );
        family(
            "headcount_http_wait_seconds_total",
            "counter",
            "Time spent waiting on throttle answers and backoff.",
            waited,
        );
        out
    }
}

/// The short reason a failed round gives `/healthz`.
fn failure_reason(r: &RoundReport) -> String {
    if let Some(e) = &r.error {
        return e.clone();
    }
    let mut parts = Vec::new();
    for (sync, errors) in &r.failed_syncs {
        parts.push(format!("sync `{sync}`: {}", errors.join("; ")));
    }
    if !r.failures().is_empty() {
        parts.push(format!("{} operation(s) failed", r.failures().len()));
    }
    parts.join("; ")
}

/// `{a="x",b="y"}` with values escaped as the format requires.
fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::Failure;
    use crate::plan::Action;

    fn failed() -> RoundReport {
        RoundReport {
            failed_syncs: vec![("staff".into(), vec!["source `hr` failed".into()])],
            read_errors: vec![("source", "hr".into())],
            ..RoundReport::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn health_follows_the_last_round_and_the_first_one_has_two_intervals() {
        let m = Metrics::new(Duration::from_secs(60));
        assert!(m.health().ok);
        tokio::time::advance(Duration::from_secs(119)).await;
        assert!(m.health().ok);
        tokio::time::advance(Duration::from_secs(2)).await;
        let h = m.health();
        assert!(!h.ok);
        assert!(h.reason.unwrap().contains("no round has finished"));
        m.record(&RoundReport::default(), vec![]);
        assert!(m.health().ok);
        m.record(&failed(), vec![]);
        let h = m.health();
        assert!(!h.ok);
        assert!(h.reason.unwrap().contains("source `hr` failed"));
        m.record(&RoundReport::default(), vec![]);
        assert!(m.health().ok);
    }

    #[test]
    fn metrics_render_every_family_with_escaped_labels() {
        let m = Metrics::new(Duration::from_secs(60));
        let mut ok = RoundReport::default();
        ok.applied
            .applied
            .entry("sta\"ff".into())
            .or_default()
            .insert(Action::Create, 2);
        ok.applied.failures.push(Failure {
            sync: "sta\"ff".into(),
            action: Action::Update,
            identity: "a@x".into(),
            target_id: None,
            message: "no".into(),
        });
        ok.guard_blocked
            .push(("other".into(), vec!["guard".into()]));
        m.record(&ok, vec![]);
        m.record(&ok, vec![]);
        m.record(
            &failed(),
            vec![(
                "mojo".into(),
                HttpStats {
                    requests: 7,
                    retries: 2,
                    throttled: 1,
                    waited_ms: 1500,
                    ambiguous: 0,
                },
            )],
        );
        m.notification_failed();
        let text = m.render();
        for line in [
            "headcount_rounds_total{result=\"success\"} 0",
            "headcount_rounds_total{result=\"failure\"} 3",
            "headcount_changes_applied_total{sync=\"sta\\\"ff\",action=\"create\"} 4",
            "headcount_operations_failed_total{sync=\"sta\\\"ff\"} 2",
            "headcount_syncs_blocked_by_guard_total{sync=\"other\"} 2",
            "headcount_read_errors_total{kind=\"source\",name=\"hr\"} 1",
            "headcount_notifications_failed_total 1",
            "headcount_http_requests_total{client=\"mojo\"} 7",
            "headcount_http_retries_total{client=\"mojo\"} 2",
            "headcount_http_throttled_total{client=\"mojo\"} 1",
            "headcount_http_wait_seconds_total{client=\"mojo\"} 1.5",
            "# TYPE headcount_last_round_duration_seconds gauge",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
    }
}
