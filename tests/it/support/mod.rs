//! Shared helpers of the integration tests that drive the `headcount` binary against a real
//! SCIM server (`scim2-server` from PyPI), directly or through a fault-injecting proxy.
//!
//! Everything here talks only to 127.0.0.1, and every wait is a poll with a deadline.

pub mod fault_proxy;
pub mod postgres;
pub mod rt_server;
pub mod scim_server;
pub mod slapd;
pub mod work;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The config template of the SCIM tests (`{{BASE_URL}}`, `{{REMOVED}}`, `{{TARGET_EXTRA}}`).
const CONFIG_TEMPLATE: &str = include_str!("../../fixtures/scim/headcount.yaml.tmpl");

/// The CSV header the template's expressions read.
pub const CSV_HEADER: &str = "userName,externalId,first,last,email,status";

/// One row of the test CSV, and the account it should become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub user_name: String,
    pub external_id: String,
    pub first: String,
    pub last: String,
    pub email: String,
    /// `active` or `suspended`.
    pub active: bool,
}

impl Person {
    pub fn new(user_name: &str, first: &str, last: &str) -> Person {
        Person {
            user_name: user_name.to_string(),
            external_id: format!("ext-{user_name}"),
            first: first.to_string(),
            last: last.to_string(),
            email: format!("{user_name}@example.com"),
            active: true,
        }
    }

    /// `n` generated people, `user00000` ...; every seventh is inactive.
    pub fn generated(n: usize) -> Vec<Person> {
        (0..n)
            .map(|i| {
                let mut p = Person::new(
                    &format!("user{i:05}"),
                    &format!("Given{i}"),
                    &format!("Family{}", i % 97),
                );
                p.active = i % 7 != 3;
                p
            })
            .collect()
    }

    pub fn display_name(&self) -> String {
        format!("{} {}", self.first, self.last)
    }

    fn csv_row(&self) -> String {
        let status = if self.active { "active" } else { "suspended" };
        format!(
            "{},{},{},{},{},{}",
            self.user_name, self.external_id, self.first, self.last, self.email, status
        )
    }
}

pub fn csv(people: &[Person]) -> String {
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for p in people {
        s.push_str(&p.csv_row());
        s.push('\n');
    }
    s
}

/// Options of the generated config.
#[derive(Debug, Clone)]
pub struct ConfigOptions {
    /// `delete`, `deactivate` or `keep`.
    pub removed: &'static str,
    /// Per-request timeout of the target, e.g. `2s`.
    pub timeout: &'static str,
    /// Rate limit of the target, e.g. `2000/s`.
    pub rate_limit: &'static str,
}

impl Default for ConfigOptions {
    fn default() -> Self {
        ConfigOptions {
            removed: "delete",
            timeout: "10s",
            rate_limit: "2000/s",
        }
    }
}

/// The result of one run of the binary.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Both streams, for assertion messages.
    pub fn both(&self) -> String {
        format!(
            "exit {:?} after {:.1?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// A scratch directory with a CSV source and a config pointing a `scim` target at `base_url`.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub base_url: String,
    pub token: String,
    pub options: ConfigOptions,
}

impl Workspace {
    pub fn new(base_url: &str, token: &str, options: ConfigOptions) -> Workspace {
        let dir = tempfile::tempdir().expect("tempdir");
        let w = Workspace {
            dir,
            base_url: base_url.to_string(),
            token: token.to_string(),
            options,
        };
        w.write_config();
        w.write_people(&[]);
        w
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Rewrites the config with the current base URL and options.
    pub fn write_config(&self) {
        let text = CONFIG_TEMPLATE
            .replace("{{BASE_URL}}", &self.base_url)
            .replace("{{REMOVED}}", self.options.removed)
            .replace("{{TIMEOUT}}", self.options.timeout)
            .replace("{{RATE_LIMIT}}", self.options.rate_limit);
        std::fs::write(self.path("headcount.yaml"), text).expect("write config");
    }

    pub fn write_people(&self, people: &[Person]) {
        std::fs::write(self.path("people.csv"), csv(people)).expect("write csv");
    }

    /// The binary with this workspace's config and token; no colour, no progress bars.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_headcount"));
        c.current_dir(self.dir.path())
            .env_remove("HEADCOUNT_CONFIG")
            .env("NO_COLOR", "1")
            .env("SCIM_TOKEN", &self.token)
            .args(["-c", "headcount.yaml", "--color", "never", "--no-progress"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs the binary to completion; kills it and panics when it outlives `limit`.
    pub fn run_with_limit(&self, args: &[&str], limit: Duration) -> Output {
        run_command(
            self.command(args),
            &format!("headcount {}", args.join(" ")),
            limit,
        )
    }

    /// Runs the binary with a 60 s limit.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_limit(args, Duration::from_secs(60))
    }
}

/// Runs a command with piped stdout/stderr to completion, killing it after `limit`.
pub fn run_command(mut cmd: Command, what: &str, limit: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    wait_with_limit(child, limit, what)
}

/// Waits for a child that has piped stdout/stderr, killing it after `limit`.
pub fn wait_with_limit(mut child: Child, limit: Duration, what: &str) -> Output {
    let start = Instant::now();
    let stdout = child.stdout.take().map(reader_thread);
    let stderr = child.stderr.take().map(reader_thread);
    let status: Option<ExitStatus> = loop {
        match child.try_wait().expect("try_wait") {
            Some(status) => break Some(status),
            None if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let out = Output {
        code: status.and_then(|s| s.code()),
        stdout: stdout.map(join_reader).unwrap_or_default(),
        stderr: stderr.map(join_reader).unwrap_or_default(),
        elapsed: start.elapsed(),
    };
    assert!(
        status.is_some(),
        "{what} did not finish within {limit:?} and was killed\n{}",
        out.both()
    );
    out
}

fn reader_thread<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn join_reader(h: std::thread::JoinHandle<String>) -> String {
    h.join().unwrap_or_default()
}

/// A runtime for the HTTP helpers and the fault proxy, owned by one test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Plain HTTP access to one SCIM tenant, bypassing headcount (and any proxy).
#[derive(Clone)]
pub struct ScimClient {
    pub base_url: String,
    token: String,
    http: reqwest::Client,
}

impl ScimClient {
    pub fn new(base_url: &str, token: &str) -> ScimClient {
        ScimClient {
            base_url: base_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("http client"),
        }
    }

    /// Every user of the tenant (all pages).
    pub async fn users(&self) -> Vec<Value> {
        let mut all = Vec::new();
        let mut start = 1usize;
        // Bounded: at most 1,000 pages.
        for _ in 0..1000 {
            let url = format!("{}/Users?startIndex={start}&count=1000", self.base_url);
            let page: Value = self.get_json(&url).await;
            let resources = page["Resources"].as_array().cloned().unwrap_or_default();
            let total = page["totalResults"].as_u64().unwrap_or(0) as usize;
            let n = resources.len();
            all.extend(resources);
            if n == 0 || all.len() >= total {
                return all;
            }
            start += n;
        }
        panic!("more than 1,000 pages of users at {}", self.base_url);
    }

    /// The number of users, from `count=0`.
    pub async fn user_count(&self) -> u64 {
        let url = format!("{}/Users?count=0", self.base_url);
        self.get_json(&url).await["totalResults"]
            .as_u64()
            .expect("totalResults")
    }

    /// Users keyed by `userName`; panics on a duplicate (case-insensitive, like the server).
    pub async fn users_by_name(&self) -> BTreeMap<String, Value> {
        let mut map = BTreeMap::new();
        for u in self.users().await {
            let name = u["userName"].as_str().expect("userName").to_lowercase();
            if let Some(prev) = map.insert(name.clone(), u.clone()) {
                panic!("duplicate userName {name}:\n{prev}\n{u}");
            }
        }
        map
    }

    pub async fn user_by_name(&self, user_name: &str) -> Option<Value> {
        self.users_by_name().await.remove(&user_name.to_lowercase())
    }

    async fn get_json(&self, url: &str) -> Value {
        let resp = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert!(status.is_success(), "GET {url}: {status}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: {e}: {text}"))
    }

    /// Creates a user the way another admin would; returns it.
    pub async fn create(&self, person: &Person) -> Value {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": person.user_name,
            "externalId": person.external_id,
            "displayName": person.display_name(),
            "name": {"givenName": person.first, "familyName": person.last},
            "emails": [{"value": person.email, "type": "work", "primary": true}],
            "active": person.active,
        });
        let url = format!("{}/Users", self.base_url);
        let resp = self
            .http
            .post(&url)
            .bearer_auth(&self.token)
            .header("content-type", "application/scim+json")
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert_eq!(status.as_u16(), 201, "POST {url}: {text}");
        serde_json::from_str(&text).expect("created user")
    }

    /// PATCH `replace` of `path` to `value`, out of band.
    pub async fn patch_replace(&self, id: &str, path: &str, value: Value) {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": path, "value": value}],
        });
        let url = format!("{}/Users/{id}", self.base_url);
        let resp = self
            .http
            .patch(&url)
            .bearer_auth(&self.token)
            .header("content-type", "application/scim+json")
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PATCH {url}: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "PATCH {url}: {status}: {text}");
    }
}

/// The work email of a SCIM user.
pub fn work_email(u: &Value) -> Option<&str> {
    u["emails"]
        .as_array()?
        .iter()
        .find(|e| e["type"] == "work")
        .and_then(|e| e["value"].as_str())
}

/// Differences between a user on the server and the person it should be (empty = equal).
pub fn differences(p: &Person, u: &Value) -> Vec<String> {
    let mut d = Vec::new();
    let mut check = |what: &str, got: Option<&str>, want: &str| {
        if got != Some(want) {
            d.push(format!("{what}: got {got:?}, want {want:?}"));
        }
    };
    check("userName", u["userName"].as_str(), &p.user_name);
    check("externalId", u["externalId"].as_str(), &p.external_id);
    check("displayName", u["displayName"].as_str(), &p.display_name());
    check("name.givenName", u["name"]["givenName"].as_str(), &p.first);
    check("name.familyName", u["name"]["familyName"].as_str(), &p.last);
    check("work email", work_email(u), &p.email);
    // A user without `active` counts as active (the attribute is optional in SCIM).
    let active = u["active"].as_bool().unwrap_or(true);
    if active != p.active {
        d.push(format!("active: got {active}, want {}", p.active));
    }
    d
}

/// Asserts that the tenant holds exactly `people` (no duplicates, nothing else, right values).
pub async fn assert_server_matches(client: &ScimClient, people: &[Person]) {
    let users = client.users().await;
    let mut by_name: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for u in &users {
        let name = u["userName"].as_str().unwrap_or("").to_lowercase();
        by_name.entry(name).or_default().push(u);
    }
    let mut problems = Vec::new();
    for (name, us) in &by_name {
        if us.len() > 1 {
            problems.push(format!("{name}: {} copies", us.len()));
        }
    }
    for p in people {
        match by_name.get(&p.user_name.to_lowercase()) {
            None => problems.push(format!("{}: missing", p.user_name)),
            Some(us) => {
                for diff in differences(p, us[0]) {
                    problems.push(format!("{}: {diff}", p.user_name));
                }
            }
        }
    }
    let wanted: std::collections::BTreeSet<String> =
        people.iter().map(|p| p.user_name.to_lowercase()).collect();
    for name in by_name.keys() {
        if !wanted.contains(name) {
            problems.push(format!("{name}: on the server but not desired"));
        }
    }
    let shown: Vec<&String> = problems.iter().take(30).collect();
    assert!(
        problems.is_empty(),
        "server state differs from the desired state in {} ways ({} users on the server, {} desired); first ones:\n{shown:#?}",
        problems.len(),
        users.len(),
        people.len()
    );
}

/// The one way a test meets a missing prerequisite (a venv, a system tool): under CI it fails
/// the test; elsewhere it prints `SKIPPED: <test>: <why>` straight to stderr (past libtest's
/// capture, so a plain `cargo test` shows it) and the caller returns.
pub fn missing_prerequisite(why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    assert!(
        !under_ci(),
        "{test}: {why}\n(CI is set, so a missing prerequisite is a failure, not a skip)"
    );
    headcount::testkit::say(&format!("SKIPPED: {test}: {why}"));
}

/// `true` when running under CI (`CI` set to anything but `false`/`0`/empty).
pub fn under_ci() -> bool {
    std::env::var("CI")
        .map(|v| !v.is_empty() && v != "false" && v != "0")
        .unwrap_or(false)
}

/// The crate's `target` directory (for figures written by the tests).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}
