//! The loop on the paused tokio clock, over the CSV → csv_export fixture in a scratch folder:
//! backoff after failed rounds, its reset, a stop that ends the wait, and a guard that stops one
//! sync while the others are applied.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::*;

fn scratch(extra_config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/e2e");
    for f in ["headcount.yaml", "people.csv"] {
        std::fs::copy(fixture.join(f), dir.path().join(f)).unwrap();
    }
    if !extra_config.is_empty() {
        std::fs::write(dir.path().join("headcount.yaml"), extra_config).unwrap();
    }
    dir
}

fn exports(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("export-"))
                .count()
        })
        .unwrap_or(0)
}

/// Records each round; puts the source back after `fix_after` rounds, stops after `stop_after`.
struct Script {
    dir: PathBuf,
    stop: Stop,
    fix_after: usize,
    stop_after: usize,
    seen: Mutex<Vec<(bool, Option<Duration>, Instant)>>,
}

impl SessionObserver for Script {}

impl LoopObserver for Script {
    fn round_done(&self, r: &RoundReport, next: Option<Duration>) {
        let mut seen = self.seen.lock().unwrap();
        seen.push((r.failed(), next, Instant::now()));
        if seen.len() == self.fix_after {
            std::fs::rename(self.dir.join("people.away"), self.dir.join("people.csv")).unwrap();
        }
        if seen.len() == self.stop_after {
            self.stop.stop();
        }
    }
}

#[tokio::test(start_paused = true)]
async fn failed_rounds_back_off_a_good_round_resets_and_a_stop_ends_the_wait() {
    let dir = scratch("");
    std::fs::rename(
        dir.path().join("people.csv"),
        dir.path().join("people.away"),
    )
    .unwrap();
    let engine = Engine::open(&dir.path().join("headcount.yaml"), false).unwrap();
    let stop = Stop::default();
    let script = Script {
        dir: dir.path().to_path_buf(),
        stop: stop.clone(),
        fix_after: 3,
        stop_after: 5,
        seen: Mutex::default(),
    };
    let options = LoopOptions {
        schedule: Schedule {
            interval: Duration::from_secs(60),
            jitter_pct: 0,
        },
        once: false,
        parallelism: 4,
    };
    let metrics = Metrics::new(options.schedule.interval);
    let start = Instant::now();
    let last = run(&engine, &options, &stop, &metrics, None, &script).await;
    let ended = Instant::now();
    assert!(!last.failed());
    let seen = script.seen.into_inner().unwrap();
    let summary: Vec<(bool, Option<u64>)> = seen
        .iter()
        .map(|(failed, next, _)| (*failed, next.map(|d| d.as_secs())))
        .collect();
    assert_eq!(
        summary,
        [
            (true, Some(30)),
            (true, Some(60)),
            (true, Some(120)),
            (false, Some(60)),
            // The stop comes while the fifth round is announced: its wait is cut short.
            (false, Some(60)),
        ],
        "backoff 30s, 60s, 120s; reset to the interval after a good round"
    );
    // The waits really were those (the clock is paused: a round takes no time).
    let at: Vec<u64> = seen
        .iter()
        .map(|(_, _, t)| (*t - start).as_secs())
        .collect();
    assert_eq!(at, [0, 30, 90, 210, 270]);
    assert!(ended - seen[4].2 < Duration::from_secs(1));
    assert_eq!(exports(&dir.path().join("out")), 1);
    // The lock was released after each round.
    let lock = engine.state.lock("test").await.unwrap();
    lock.release().await.unwrap();
    let text = metrics.render();
    assert!(
        text.contains("headcount_rounds_total{result=\"failure\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("headcount_rounds_total{result=\"success\"} 2"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_while_waiting_ends_the_loop_without_another_round() {
    let dir = scratch("");
    let engine = Engine::open(&dir.path().join("headcount.yaml"), false).unwrap();
    let stop = Stop::default();
    let options = LoopOptions {
        schedule: Schedule {
            interval: Duration::from_secs(3600),
            jitter_pct: 10,
        },
        once: false,
        parallelism: 4,
    };
    let metrics = Metrics::new(options.schedule.interval);
    let stopper = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        stopper.stop();
    });
    let start = Instant::now();
    let last = run(&engine, &options, &stop, &metrics, None, &Quiet).await;
    assert!(!last.failed());
    assert_eq!(Instant::now() - start, Duration::from_secs(5));
    assert!(
        metrics
            .render()
            .contains("headcount_rounds_total{result=\"success\"} 1")
    );
}

struct Quiet;
impl SessionObserver for Quiet {}
impl LoopObserver for Quiet {}

const TWO_SYNCS: &str = r#"version: 1
sources:
  hr:
    kind: csv
    path: people.csv
targets:
  a:
    kind: csv_export
    dir: out-a
  b:
    kind: csv_export
    dir: out-b
syncs:
  - name: strict
    from: hr
    to: a
    identity: [email]
    fields: { email: user.email, first_name: user.first, last_name: user.last }
    removed: deactivate
    limits: { max_removals: 0 }
  - name: relaxed
    from: hr
    to: b
    identity: [email]
    fields: { email: user.email, first_name: user.first, last_name: user.last }
    removed: deactivate
"#;

#[tokio::test]
async fn a_guard_blocked_sync_is_left_out_and_the_others_are_applied() {
    let dir = scratch(TWO_SYNCS);
    let engine = Engine::open(&dir.path().join("headcount.yaml"), false).unwrap();
    let cancel = std::sync::Arc::new(AtomicBool::new(false));
    let first = round(&engine, 4, &cancel, &Quiet).await;
    assert!(
        !first.failed() && first.guard_blocked.is_empty(),
        "{first:?}"
    );
    assert_eq!(first.drift(), first.applied.succeeded());
    // Ann leaves: one removal, over `strict`'s limit of 0, within `relaxed`'s 10%.
    let csv = std::fs::read_to_string(dir.path().join("people.csv")).unwrap();
    let kept: Vec<&str> = csv.lines().filter(|l| !l.starts_with("ann@")).collect();
    std::fs::write(dir.path().join("people.csv"), kept.join("\n") + "\n").unwrap();
    let second = round(&engine, 4, &cancel, &Quiet).await;
    assert!(!second.failed(), "{second:?}");
    assert_eq!(
        second
            .guard_blocked
            .iter()
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>(),
        ["strict"]
    );
    assert!(second.guard_blocked[0].1[0].contains("max_removals"));
    assert_eq!(
        second.applied.applied["relaxed"][&crate::plan::Action::Deactivate],
        1
    );
    assert!(!second.applied.applied.contains_key("strict"));
    assert_eq!(
        exports(&dir.path().join("out-a")),
        1,
        "strict was not applied"
    );
    assert_eq!(exports(&dir.path().join("out-b")), 2);
    assert_eq!(notify::conditions(&second).len(), 2, "guard and drift");
}

#[tokio::test]
async fn a_stop_asked_while_planning_applies_nothing_and_releases_the_lock() {
    let dir = scratch("");
    let engine = Engine::open(&dir.path().join("headcount.yaml"), false).unwrap();
    let cancel = std::sync::Arc::new(AtomicBool::new(true));
    let r = round(&engine, 4, &cancel, &Quiet).await;
    assert!(r.interrupted && !r.failed(), "{r:?}");
    assert!(r.drift() > 0, "the plan was made");
    assert_eq!(r.applied.succeeded(), 0);
    assert_eq!(exports(&dir.path().join("out")), 0);
    let lock = engine.state.lock("test").await.unwrap();
    lock.release().await.unwrap();
}
