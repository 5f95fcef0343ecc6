//! `apply` against a real SCIM server (`scim2-server`) behind the fault proxy, for the cases a
//! random fault rate does not reach: a SIGTERM in the middle of an apply, a concurrent change
//! between plan and apply (ETag / `If-Match` / `412`), and one operation rejected by the server
//! while the others go through.
//!
//! Without the venv (`./scripts/start-scim.sh`) these tests skip with a message, unless `CI` is
//! set. Everything talks only to 127.0.0.1 and every wait is a poll with a deadline.

use crate::support;

use std::collections::BTreeSet;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::fault_proxy::{FaultConfig, FaultProxy, Match, OutOfBand, Rule, RuleAction};
use support::scim_server::ScimServer;
use support::{ConfigOptions, Output, Person, ScimClient, Workspace, assert_server_matches};

/// A fresh tenant, the fault proxy in front of the server (no faults unless a test sets them),
/// a workspace whose config points at the proxy, and a direct client to the tenant.
struct Case {
    // Declared before `rt`: the proxy's task is aborted while the runtime still runs.
    proxy: FaultProxy,
    work: Workspace,
    scim: ScimClient,
    server: &'static ScimServer,
    /// The tenant's base URL on the server (not through the proxy).
    base: String,
    rt: tokio::runtime::Runtime,
}

impl Case {
    fn new(label: &str, config: FaultConfig) -> Option<Case> {
        let server = support::scim_server::server()?;
        let base = server.new_tenant(label);
        let rt = support::runtime();
        let proxy = FaultProxy::start(rt.handle(), &server.origin(), config);
        let work = Workspace::new(
            &proxy.url_for(&base),
            &server.token,
            ConfigOptions::default(),
        );
        let scim = ScimClient::new(&base, &server.token);
        Some(Case {
            proxy,
            work,
            scim,
            server,
            base,
            rt,
        })
    }

    /// The tenant's path on the server, e.g. `/apply-3/v2`.
    fn base_path(&self) -> String {
        self.base
            .strip_prefix(&self.server.origin())
            .expect("tenant under the server origin")
            .to_string()
    }

    fn users(&self) -> Vec<Value> {
        self.rt.block_on(self.scim.users())
    }

    fn user(&self, name: &str) -> Value {
        self.rt
            .block_on(self.scim.user_by_name(name))
            .unwrap_or_else(|| panic!("{name} is not on the server"))
    }

    fn assert_server(&self, people: &[Person]) {
        self.rt.block_on(assert_server_matches(&self.scim, people));
    }

    fn apply_ok(&self) -> Output {
        let out = self.work.run(&["apply", "--auto-approve"]);
        assert!(out.success(), "apply failed\n{}", out.both());
        out
    }

    fn assert_no_changes(&self) {
        let out = self.work.run(&["plan", "--detailed-exitcode"]);
        assert_eq!(
            out.code,
            Some(0),
            "plan after apply should have no changes\n{}",
            out.both()
        );
    }

    /// The summary of the only sync in `plan --format json`.
    fn plan_summary(&self) -> Value {
        let out = self.work.run(&["plan", "--format", "json"]);
        assert!(out.success(), "plan failed\n{}", out.both());
        let doc: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("plan --format json: {e}\n{}", out.both()));
        doc["syncs"][0]["summary"].clone()
    }

    /// `headcount state list`: target id → identity column.
    fn state_list(&self) -> Vec<(String, String)> {
        let out = self.work.run(&["state", "list"]);
        assert!(out.success(), "state list failed\n{}", out.both());
        out.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let cols: Vec<&str> = l.split('\t').collect();
                assert!(cols.len() >= 4, "unexpected `state list` line {l:?}");
                (cols[2].to_string(), cols[3].to_string())
            })
            .collect()
    }

    /// The lines of `.headcount/audit.jsonl` (none when it does not exist).
    fn audit(&self) -> Vec<Value> {
        let path = self.work.path(".headcount/audit.jsonl");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// A rule acting once on the next PATCH of account `id`: first the out-of-band PATCH
    /// `replace path = value` straight to the server, then forwarding. Later PATCHes of the
    /// account are recorded (rule `retry`) so their `If-Match` can be checked.
    fn patch_behind_its_back(&self, id: &str, path: &str, value: Value) {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": path, "value": value}],
        });
        let when = Match {
            method: Some("PATCH".into()),
            path_contains: Some(format!("/Users/{id}")),
            body_contains: None,
        };
        self.proxy.add_rule(Rule {
            name: "out-of-band".into(),
            when: when.clone(),
            action: RuleAction::BeforeForward(OutOfBand {
                method: "PATCH".into(),
                path: format!("{}/Users/{id}", self.base_path()),
                headers: vec![
                    (
                        "authorization".into(),
                        format!("Bearer {}", self.server.token),
                    ),
                    ("content-type".into(), "application/scim+json".into()),
                ],
                body: Some(body.to_string()),
            }),
            times: Some(1),
        });
        self.proxy.add_rule(Rule {
            name: "retry".into(),
            when,
            action: RuleAction::Observe,
            times: None,
        });
    }
}

fn id_of(u: &Value) -> String {
    u["id"].as_str().expect("id").to_string()
}

fn count(summary: &Value, action: &str) -> u64 {
    summary[action].as_u64().unwrap_or(0)
}

/// A running `headcount` whose stdout and stderr are drained from the start (a full pipe would
/// block it: the plan of 600 creates is larger than a pipe buffer).
struct Running {
    child: Child,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Running {
    fn spawn(work: &Workspace, args: &[&str]) -> Running {
        let mut child = work.command(args).spawn().expect("spawn headcount");
        let drain = |mut r: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                String::from_utf8_lossy(&buf).into_owned()
            })
        };
        let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
        let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
        Running {
            child,
            stdout,
            stderr,
        }
    }

    fn exited(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_some()
    }

    /// Waits for the exit (killing it after `limit`, which fails the test) and collects both
    /// streams.
    fn finish(self, limit: Duration, what: &str) -> Output {
        let mut out = support::wait_with_limit(self.child, limit, what);
        out.stdout = self.stdout.join().unwrap_or_default();
        out.stderr = self.stderr.join().unwrap_or_default();
        out
    }
}

/// Polls until the tenant holds at least `n` users, the child exits, or `limit` passes;
/// returns the last count.
fn wait_for_users(c: &Case, child: &mut Running, n: u64, limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    loop {
        let got = c.rt.block_on(c.scim.user_count());
        if got >= n || Instant::now() > deadline || child.exited() {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_mid_apply_saves_every_finished_create_and_a_rerun_converges() {
    const PEOPLE: usize = 600;
    const KILL_AT: u64 = 100;
    let _one_at_a_time = support::scim_server::exclusive();
    let Some(c) = Case::new(
        "sigterm",
        FaultConfig {
            latency: Some((Duration::from_millis(20), Duration::from_millis(50))),
            ..FaultConfig::default()
        },
    ) else {
        return;
    };
    let people = Person::generated(PEOPLE);
    c.work.write_people(&people);

    let mut child = Running::spawn(&c.work, &["apply", "--auto-approve", "--parallelism", "4"]);
    let pid = child.child.id();
    let seen = wait_for_users(&c, &mut child, KILL_AT, Duration::from_secs(40));
    if child.exited() {
        let out = child.finish(Duration::from_secs(5), "apply");
        panic!(
            "apply ended before it could be interrupted ({seen} users on the server)\n{}",
            out.both()
        );
    }
    if seen < KILL_AT {
        let _ = child.child.kill();
        let out = child.finish(Duration::from_secs(10), "apply");
        panic!(
            "only {seen} users on the server after 40 s of apply\n{}",
            out.both()
        );
    }
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(term.success(), "kill -TERM {pid}: {term}");
    let out = child.finish(Duration::from_secs(30), "interrupted apply");
    eprintln!(
        "SIGTERM at {seen} users; apply exited {:?} after {:.1?}",
        out.code, out.elapsed
    );

    assert_eq!(
        out.code,
        Some(1),
        "interrupted apply exits 1\n{}",
        out.both()
    );
    assert!(out.stderr.contains("Interrupted"), "{}", out.both());
    assert!(
        !c.work.path(".headcount/state.json.lock").exists(),
        "the lock is left behind after the interrupted apply\n{}",
        out.both()
    );

    // Nothing done is lost: the state lists exactly the users on the server.
    let users = c.users();
    let on_server: BTreeSet<String> = users.iter().map(id_of).collect();
    assert!(
        on_server.len() as u64 >= KILL_AT && on_server.len() < PEOPLE,
        "{} users on the server: the apply was not interrupted midway\n{}",
        on_server.len(),
        out.both()
    );
    let state = c.state_list();
    let in_state: BTreeSet<String> = state.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(state.len(), in_state.len(), "duplicate ids in the state");
    let missing: Vec<&String> = on_server.difference(&in_state).collect();
    let extra: Vec<&String> = in_state.difference(&on_server).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "state and server differ: {} on the server but not in the state {missing:?}, {} in the state but not on the server {extra:?}",
        missing.len(),
        extra.len()
    );

    // The audit log: one successful `create` line per user created so far, and nothing for the
    // operations that never started (nothing was sent for them).
    let audit = c.audit();
    let mut audited = Vec::new();
    let mut not_started = 0;
    for l in &audit {
        assert_eq!(l["action"], "create", "{l}");
        if l["result"] == "ok" {
            assert!(l["error"].is_null(), "{l}");
            audited.push(l["target_id"].as_str().expect("target_id").to_string());
        } else {
            assert!(l["target_id"].is_null(), "an op failed after starting: {l}");
            assert!(
                l["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("not started")),
                "an op failed after starting: {l}"
            );
            not_started += 1;
        }
    }
    eprintln!(
        "audit log: {} created, {not_started} not started",
        audited.len()
    );
    assert_eq!(not_started, 0, "operations never sent are not audited");
    assert!(audited.len() + not_started <= PEOPLE);
    let audited_set: BTreeSet<String> = audited.iter().cloned().collect();
    assert_eq!(audited.len(), audited_set.len(), "an id audited twice");
    assert_eq!(
        audited_set, on_server,
        "the audit log does not hold one line per created user"
    );

    // A second apply finishes the job (no added latency, to keep the test short).
    c.proxy.set_latency(None);
    let again = c.apply_ok();
    eprintln!("second apply took {:.1?}", again.elapsed);
    c.assert_server(&people);
    c.assert_no_changes();
    assert_eq!(c.state_list().len(), PEOPLE);
}

#[test]
fn one_rejected_create_fails_alone_and_stays_planned() {
    const REJECTED: &str = "user00007";
    let _one_at_a_time = support::scim_server::exclusive();
    let Some(c) = Case::new("partial", FaultConfig::default()) else {
        return;
    };
    let people = Person::generated(20);
    c.work.write_people(&people);
    c.proxy.add_rule(Rule {
        name: "reserved".into(),
        when: Match {
            method: Some("POST".into()),
            path_contains: Some("/Users".into()),
            // The quoted value: the email and externalId contain it too, but not quoted.
            body_contains: Some(format!("\"{REJECTED}\"")),
        },
        action: RuleAction::Respond {
            status: 400,
            body: json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "400",
                "scimType": "invalidValue",
                "detail": "userName is reserved",
            })
            .to_string(),
        },
        times: None,
    });

    let out = c.work.run(&["apply", "--auto-approve"]);
    assert_eq!(out.code, Some(1), "{}", out.both());
    assert!(
        out.stdout.contains("1 operation(s) failed:"),
        "{}",
        out.both()
    );
    let failures: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("userName is reserved"))
        .collect();
    assert_eq!(failures.len(), 1, "{}", out.both());
    assert!(failures[0].contains(REJECTED), "{}", out.both());
    let hits = c.proxy.rule_hits();
    assert_eq!(hits.len(), 1, "the rejected POST was resent: {hits:#?}");

    let others: Vec<Person> = people
        .iter()
        .filter(|p| p.user_name != REJECTED)
        .cloned()
        .collect();
    c.assert_server(&others);
    let state = c.state_list();
    assert_eq!(state.len(), 19, "{state:#?}");
    assert!(
        state
            .iter()
            .all(|(_, identity)| !identity.contains(REJECTED)),
        "{state:#?}"
    );

    let s = c.plan_summary();
    assert_eq!(count(&s, "create"), 1, "{s}");
    let total: u64 = [
        "create",
        "update",
        "deactivate",
        "reactivate",
        "delete",
        "adopt",
        "forget",
    ]
    .iter()
    .map(|a| count(&s, a))
    .sum();
    assert_eq!(total, 1, "only the rejected create is left: {s}");
}

#[test]
fn concurrent_change_between_plan_and_apply_is_merged_or_refused() {
    let _one_at_a_time = support::scim_server::exclusive();
    let Some(c) = Case::new("etag", FaultConfig::default()) else {
        return;
    };
    let mut people = vec![
        Person::new("ann", "Ann", "Archer"),
        Person::new("bob", "Bob", "Baker"),
        Person::new("cat", "Cat", "Cole"),
    ];
    c.work.write_people(&people);
    c.apply_ok();
    c.assert_server(&people);
    let ann_id = id_of(&c.user("ann"));

    // The server itself: an ETag on reads, 412 on a stale If-Match.
    c.rt.block_on(async {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client");
        let url = format!("{}/Users/{ann_id}", c.base);
        let resp = http
            .get(&url)
            .bearer_auth(&c.server.token)
            .send()
            .await
            .expect("GET");
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let user: Value = resp.json().await.expect("user");
        assert!(etag.is_some(), "scim2-server sent no ETag: {user}");
        assert_eq!(user["meta"]["version"].as_str(), etag.as_deref(), "{user}");
        let resp = http
            .patch(&url)
            .bearer_auth(&c.server.token)
            .header("content-type", "application/scim+json")
            .header("if-match", "W/\"stale\"")
            .body(
                json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "title", "value": "never"}],
                })
                .to_string(),
            )
            .send()
            .await
            .expect("PATCH");
        assert_eq!(resp.status().as_u16(), 412, "stale If-Match");
    });
    assert!(
        c.user("ann")["title"].is_null(),
        "the 412 PATCH changed ann"
    );

    // 1. The concurrent change touches an attribute the sync does not map: headcount gets a
    // 412, sees that the values it planned from still hold, and writes again on the new version.
    people[0].first = "Anna".into();
    c.work.write_people(&people);
    c.patch_behind_its_back(&ann_id, "title", json!("Out-of-band title"));
    c.apply_ok();
    let hits = c.proxy.rule_hits();
    assert_eq!(hits.len(), 2, "one PATCH, then one retry: {hits:#?}");
    for h in &hits {
        eprintln!(
            "{} {} {} If-Match {:?} out-of-band {:?}",
            h.rule, h.method, h.path, h.if_match, h.out_of_band
        );
    }
    let (first, retry) = (&hits[0], &hits[1]);
    assert!(
        matches!(&first.out_of_band, Some((s, _)) if (200..300).contains(s)),
        "the out-of-band PATCH failed: {first:#?}"
    );
    assert!(
        first.if_match.is_some(),
        "headcount sent its PATCH without If-Match: {first:#?}"
    );
    assert!(
        retry.if_match.is_some() && retry.if_match != first.if_match,
        "the retry must carry the new version: {hits:#?}"
    );
    let ann = c.user("ann");
    assert_eq!(ann["title"], "Out-of-band title", "{ann}");
    c.assert_server(&people);
    c.assert_no_changes();

    // 2. The concurrent change touches a field the plan changes too: that operation is
    // refused (the server keeps the other writer's value), the others go through.
    c.proxy.clear_rules();
    people[0].first = "Annabel".into();
    people[1].last = "Barker".into();
    people[2].first = "Cathy".into();
    c.work.write_people(&people);
    c.patch_behind_its_back(&ann_id, "name.givenName", json!("Intruder"));
    let out = c.work.run(&["apply", "--auto-approve"]);
    assert_eq!(out.code, Some(1), "{}", out.both());
    // The failure lines of the apply summary are printed on stdout.
    let both = format!("{}\n{}", out.stdout, out.stderr);
    let refused: Vec<&str> = both
        .lines()
        .filter(|l| l.contains("changed in the target since the plan"))
        .collect();
    assert_eq!(refused.len(), 1, "{}", out.both());
    assert!(
        refused[0].contains("ann") && refused[0].contains(&ann_id),
        "the failure must name the user: {}",
        out.both()
    );
    assert!(
        out.stdout.contains("1 operation(s) failed:"),
        "{}",
        out.both()
    );
    let ann = c.user("ann");
    assert_eq!(ann["name"]["givenName"], "Intruder", "{ann}");
    assert_eq!(ann["displayName"], "Anna Archer", "{ann}");
    assert_eq!(ann["title"], "Out-of-band title", "{ann}");
    for p in &people[1..] {
        let u = c.user(&p.user_name);
        let diff = support::differences(p, &u);
        assert!(diff.is_empty(), "{}: {diff:?}", p.user_name);
    }
}
