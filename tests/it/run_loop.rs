//! `headcount run`: the reconcile loop through the binary, on the CSV → csv_export fixture.
//! The loop runs with `--interval 1s --jitter 0`; every wait below waits for a condition (a
//! line, a metric, a webhook), bounded by `DEADLINE`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::support::work::Work;

const DEADLINE: Duration = Duration::from_secs(30);
const HOOK_PATH: &str = "/services/T000/B000/hook-secret-part";

impl Work {
    fn with_webhook(&self) {
        let config = std::fs::read_to_string(self.path("headcount.yaml")).unwrap();
        self.write(
            "headcount.yaml",
            &format!("{config}notifications:\n  webhook:\n    url: {{ env: RUN_LOOP_WEBHOOK }}\n"),
        );
    }

    fn export_count(&self) -> usize {
        std::fs::read_dir(self.path("out"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with("export-"))
                    .count()
            })
            .unwrap_or(0)
    }
}

/// A tiny Slack-compatible receiver: every body posted to `HOOK_PATH`.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let got: Arc<Mutex<Vec<Value>>> = Arc::default();
        let sink = got.clone();
        let app = axum::Router::new().route(
            HOOK_PATH,
            axum::routing::post(move |body: axum::Json<Value>| {
                let sink = sink.clone();
                async move {
                    sink.lock().unwrap().push(body.0);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://{addr}{HOOK_PATH}"),
            got,
        }
    }

    fn texts(&self) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|v| {
                v["text"]
                    .as_str()
                    .expect("a Slack `text` string")
                    .to_string()
            })
            .collect()
    }

    async fn wait_for(&self, what: &str, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
        wait(what, || {
            let t = self.texts();
            pred(&t).then_some(t)
        })
        .await
    }
}

/// Polls `check` until it gives a value, at most `DEADLINE`.
async fn wait<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The loop as a child process, its stderr drained into `stderr`.
struct Loop {
    child: Child,
    addr: String,
    stderr: Arc<Mutex<String>>,
}

impl Loop {
    async fn start(w: &Work, hook: Option<&Receiver>) -> Loop {
        Loop::start_with(w, hook, &[], &[]).await
    }

    async fn start_with(
        w: &Work,
        hook: Option<&Receiver>,
        extra_args: &[&str],
        envs: &[(&str, &str)],
    ) -> Loop {
        let mut cmd = w.spawnable();
        cmd.args([
            "run",
            "--interval",
            "1s",
            "--jitter",
            "0",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(extra_args)
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        if let Some(h) = hook {
            cmd.env("RUN_LOOP_WEBHOOK", &h.url);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let addr = wait("the listening line", || {
            let s = stderr.lock().unwrap();
            s.lines()
                .find_map(|l| l.split("listening on http://").nth(1))
                .map(|rest| rest.split_whitespace().next().unwrap().to_string())
        })
        .await;
        Loop {
            child,
            addr,
            stderr,
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("http://{}{path}", self.addr))
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// The value of one sample in /metrics (0 when absent).
    async fn metric(&self, sample: &str) -> f64 {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .find_map(|l| l.strip_prefix(sample).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    async fn wait_metric(&self, sample: &str, at_least: f64) {
        let start = std::time::Instant::now();
        while self.metric(sample).await < at_least {
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {sample} >= {at_least}; stderr:\n{}",
                self.stderr.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then the exit code.
    async fn terminate(mut self) -> i32 {
        let pid = self.child.id().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = wait("the loop to exit", || self.child.try_wait().unwrap()).await;
        status.code().expect("exited, not killed by the signal")
    }
}

const SUCCESS: &str = "headcount_rounds_total{result=\"success\"}";
const FAILURE: &str = "headcount_rounds_total{result=\"failure\"}";

#[test]
fn run_once_applies_then_has_nothing_to_do() {
    let w = Work::new("e2e");
    let a = w.run(&["run", "--once"]).success();
    let out = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(out.contains("round ok"), "{out}");
    assert_eq!(w.export_count(), 1);
    let a = w.run(&["run", "--once"]).success();
    let out = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(out.contains("0 change(s) planned, 0 applied"), "{out}");
    assert_eq!(w.export_count(), 1, "nothing to do: no new export");
    w.run(&["plan", "--detailed-exitcode"]).code(0);
}

#[test]
fn run_once_with_a_failing_source_exits_1_and_writes_nothing() {
    let w = Work::new("e2e");
    std::fs::remove_file(w.path("people.csv")).unwrap();
    let a = w.run(&["run", "--once"]).code(1);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(err.contains("sync `staff`"), "{err}");
    assert_eq!(w.export_count(), 0);
}

#[test]
fn run_needs_an_interval_of_at_least_a_second_unless_once() {
    let w = Work::new("e2e");
    w.run(&["run"]).code(1);
    w.run(&["run", "--interval", "500ms"]).code(1);
    w.run(&["run", "--once", "--jitter", "101"]).code(1);
}

#[tokio::test]
async fn a_guard_blocked_sync_is_not_applied_and_is_notified() {
    let hook = Receiver::start().await;
    let w = Work::new("e2e");
    w.run(&["apply", "--auto-approve"]).success();
    // Everyone at Globex leaves at once: over the default 10% guard.
    let csv = std::fs::read_to_string(w.path("people.csv")).unwrap();
    let kept: Vec<&str> = csv.lines().filter(|l| !l.contains("Globex")).collect();
    w.write("people.csv", &(kept.join("\n") + "\n"));
    w.with_webhook();
    let mut cmd = w.cmd();
    cmd.env("RUN_LOOP_WEBHOOK", &hook.url);
    let out = tokio::task::spawn_blocking(move || cmd.args(["run", "--once"]).output().unwrap())
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a guard-blocked sync fails --once"
    );
    assert_eq!(w.export_count(), 1, "the blocked sync was not applied");
    let texts = hook.texts();
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(
        texts[0].contains("mass-removal guard stopped sync `staff`"),
        "{}",
        texts[0]
    );
    assert!(texts[0].contains("--allow-mass-removal"), "{}", texts[0]);
    assert!(
        !texts[0].contains("hook-secret-part"),
        "the URL is a secret"
    );
}

#[tokio::test]
async fn the_loop_serves_health_and_metrics_and_stops_on_sigterm() {
    let w = Work::new("e2e");
    let l = Loop::start(&w, None).await;
    l.wait_metric(SUCCESS, 2.0).await;
    let (status, body) = l.get("/healthz").await;
    assert_eq!(status, 200, "{body}");
    let (_, metrics) = l.get("/metrics").await;
    for family in [
        "# TYPE headcount_rounds_total counter",
        "headcount_last_round_timestamp_seconds",
        "headcount_last_round_duration_seconds",
        "headcount_changes_applied_total{sync=\"staff\",action=\"create\"}",
        "headcount_http_requests_total",
    ] {
        assert!(metrics.contains(family), "{family} missing:\n{metrics}");
    }
    assert_eq!(l.metric(FAILURE).await, 0.0);
    assert_eq!(l.get("/nope").await.0, 404);
    assert_eq!(l.terminate().await, 0);
    // The lock was released and the state is whole: nothing left to do.
    assert_eq!(w.export_count(), 1);
    w.run(&["plan", "--detailed-exitcode"]).code(0);
}

#[tokio::test]
async fn a_failing_source_is_notified_once_then_resolved() {
    let hook = Receiver::start().await;
    let w = Work::new("e2e");
    w.with_webhook();
    std::fs::rename(w.path("people.csv"), w.path("people.away")).unwrap();
    let l = Loop::start(&w, Some(&hook)).await;
    let first = hook
        .wait_for("the failure webhook", |t| !t.is_empty())
        .await;
    assert!(
        first[0].contains("a reconcile round failed"),
        "{}",
        first[0]
    );
    assert!(
        first[0].contains("sync `staff` was not applied"),
        "{}",
        first[0]
    );
    let (status, body) = l.get("/healthz").await;
    assert_eq!(status, 503);
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "failing");
    assert!(
        health["reason"].as_str().unwrap().contains("staff"),
        "{body}"
    );
    // A second failed round: the condition lasts, nothing new is sent.
    l.wait_metric(FAILURE, 2.0).await;
    assert_eq!(hook.texts().len(), 1, "{:?}", hook.texts());
    assert!(
        l.metric("headcount_read_errors_total{kind=\"source\",name=\"hr\"}")
            .await
            >= 2.0
    );

    std::fs::rename(w.path("people.away"), w.path("people.csv")).unwrap();
    let texts = hook
        .wait_for("the resolved webhook", |t| {
            t.iter()
                .any(|m| m.contains("resolved: the last round succeeded"))
        })
        .await;
    assert!(
        texts.iter().any(|m| m.contains("drift found")),
        "the recovering round applied the creates: {texts:?}"
    );
    l.wait_metric(SUCCESS, 1.0).await;
    assert_eq!(l.get("/healthz").await.0, 200);
    let failures = texts
        .iter()
        .filter(|m| m.contains("a reconcile round failed"))
        .count();
    assert_eq!(failures, 1, "{texts:?}");
    assert_eq!(l.terminate().await, 0);
}

#[test]
fn the_webhook_url_is_a_secret_reference_checked_before_the_loop_starts() {
    let w = Work::new("e2e");
    w.with_webhook();
    let a = w.run(&["validate", "--online"]).code(1);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(
        err.contains("notifications: `webhook.url` (env RUN_LOOP_WEBHOOK)"),
        "{err}"
    );
    let a = w.run(&["run", "--once"]).code(1);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(
        err.contains("notifications.webhook.url (env RUN_LOOP_WEBHOOK)"),
        "{err}"
    );
    assert_eq!(w.export_count(), 0, "nothing runs without its webhook");

    let config = std::fs::read_to_string(w.path("headcount.yaml")).unwrap();
    w.write(
        "headcount.yaml",
        &config.replace(
            "{ env: RUN_LOOP_WEBHOOK }",
            "https://hooks.example.com/services/T/B/literal",
        ),
    );
    let a = w.run(&["validate"]).code(1);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(err.contains("is a literal secret"), "{err}");
    assert!(!err.contains("services/T/B/literal"), "{err}");
}

const SCIM_CONFIG: &str = "version: 1
sources:
  hr:
    kind: csv
    path: people.csv
targets:
  app:
    kind: scim
    base_url: BASE
    token: { env: RUN_LOOP_SCIM_TOKEN }
syncs:
  - name: staff
    from: hr
    to: app
    identity: [userName]
    fields:
      userName: user.userName
";

#[tokio::test]
async fn sigterm_mid_round_finishes_the_operation_in_flight_and_loses_nothing() {
    const PEOPLE: usize = 20;
    let scim = headcount::testkit::scim::ScimEmulator::start().await;
    scim.set_create_delay(Some(Duration::from_millis(300)));
    let w = Work::new("e2e");
    w.write(
        "headcount.yaml",
        &SCIM_CONFIG.replace("BASE", &scim.base_url()),
    );
    let rows: Vec<String> = (0..PEOPLE)
        .map(|n| format!("u{n:02}@example.com"))
        .collect();
    w.write("people.csv", &format!("userName\n{}\n", rows.join("\n")));
    let l = Loop::start_with(
        &w,
        None,
        &["--parallelism", "1"],
        &[("RUN_LOOP_SCIM_TOKEN", "t")],
    )
    .await;
    wait("two creates", || (scim.users().len() >= 2).then_some(())).await;
    assert_eq!(l.terminate().await, 0, "a stopped loop exits 0");

    // The create in flight finished; nothing started after the stop; every create is in the
    // state, and the lock is gone.
    let made = scim.users().len();
    assert!((2..PEOPLE).contains(&made), "{made} users: stopped midway");
    let listed = w.run(&["state", "list"]).success();
    let listed = String::from_utf8_lossy(&listed.get_output().stdout).into_owned();
    assert_eq!(listed.matches("@example.com").count(), made, "{listed}");
    assert!(!w.path(".headcount/state.json.lock").exists());

    // The next round finishes the job without a duplicate.
    scim.set_create_delay(None);
    let mut once = w.cmd();
    once.env("RUN_LOOP_SCIM_TOKEN", "t").args(["run", "--once"]);
    let out = tokio::task::spawn_blocking(move || once.output().unwrap())
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(scim.users().len(), PEOPLE);
    assert_eq!(
        scim.log().method("POST").len(),
        PEOPLE,
        "one create per person"
    );
}
