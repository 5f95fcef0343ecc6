//! The real Request Tracker 5 the `request_tracker` tests run against: started (and, as root,
//! installed) by `scripts/start-rt.sh` when it is not already answering, on
//! `127.0.0.1:$RT_PORT` (default 18791) with its token in `$RT_DIR/token` (default
//! `/tmp/headcount-it/rt`). The server outlives the test binary (it takes seconds to start,
//! so every test run reuses it); `./scripts/start-rt.sh stop` stops it.
//!
//! RT has no tenants: every test uses its own user-name prefix ([`prefix`]) and sees only its
//! own users through [`Scoped`]; tests that count requests against the whole user table hold
//! [`exclusive`]. [`proxy`] puts the testkit's fault layer (request log + scripted faults) in
//! front of the real server.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use headcount::connectors::request_tracker::{self, RequestTrackerTarget};
use headcount::connectors::{
    ApplyOptions, ConnectorError, LiveAccount, OpResult, Target, TargetOp,
};
use headcount::http::{HttpClient, Request};
use headcount::model::HttpSettings;
use headcount::testkit::{Served, serve_with_faults};
use secrecy::SecretString;
use serde_json::{Value, json};

/// How long `start-rt.sh` may take (a first install downloads ~66 MB).
const START_LIMIT: Duration = Duration::from_secs(600);

pub struct RtServer {
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
    pub token: String,
}

pub fn rt_dir() -> PathBuf {
    std::env::var_os("RT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/headcount-it/rt"))
}

pub fn rt_port() -> u16 {
    std::env::var("RT_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(18791)
}

/// The running RT, started on first use. `None` (after a visible `SKIPPED:` line) when RT is
/// not installed and cannot be installed here, outside CI; under CI that is a failure.
pub fn server() -> Option<&'static RtServer> {
    static SERVER: OnceLock<Result<RtServer, (bool, String)>> = OnceLock::new();
    match SERVER.get_or_init(start) {
        Ok(s) => Some(s),
        Err((true, why)) => {
            super::missing_prerequisite(why);
            None
        }
        Err((false, why)) => panic!("{why}"),
    }
}

fn read_token() -> Option<String> {
    let t = std::fs::read_to_string(rt_dir().join("token")).ok()?;
    let t = t.trim().to_string();
    (!t.is_empty()).then_some(t)
}

fn answers(token: &str) -> bool {
    http_status(rt_port(), "/REST/2.0/rt", &format!("token {token}")) == Some(200)
}

/// Users in RT past which the first test of a run starts from a fresh database: every run
/// adds its users for good, and a list reads each user once.
const RESET_ABOVE: u64 = 300;

/// The `total` of RT's user collection (disabled users included).
fn user_total(token: &str) -> Option<u64> {
    let body = http_get(
        rt_port(),
        "/REST/2.0/users?per_page=1&find_disabled_rows=1",
        &format!("token {token}"),
    )?;
    let json = body.split_once("\r\n\r\n")?.1;
    serde_json::from_str::<Value>(json).ok()?["total"].as_u64()
}

/// A minimal blocking HTTP/1.0 GET (no runtime needed): the whole answer, head and body.
fn http_get(port: u16, path: &str, authorization: &str) -> Option<String> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {authorization}\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.take(1 << 20).read_to_end(&mut buf).ok()?;
    String::from_utf8(buf).ok()
}

/// A minimal blocking HTTP/1.0 GET (no runtime needed): the status, `None` when nothing answers.
fn http_status(port: u16, path: &str, authorization: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {authorization}\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        let n = s.read(&mut buf[got..]).ok()?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let head = std::str::from_utf8(&buf[..got]).ok()?;
    head.split_whitespace().nth(1)?.parse().ok()
}

/// `Err((missing, why))`: `missing` when RT is not installed and could not be.
fn start() -> Result<RtServer, (bool, String)> {
    let origin = format!("http://127.0.0.1:{}", rt_port());
    let mut reset = false;
    if let Some(token) = read_token()
        && answers(&token)
    {
        match user_total(&token) {
            Some(n) if n > RESET_ABOVE => reset = true,
            _ => return Ok(RtServer { origin, token }),
        }
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/start-rt.sh");
    let installed = std::path::Path::new("/usr/share/request-tracker5/libexec/rt-server").exists();
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(&script).arg("start");
    if reset {
        cmd.env("RESET", "1");
    }
    let out = super::run_command(cmd, "scripts/start-rt.sh start", START_LIMIT);
    if !out.success() {
        let why = format!(
            "Request Tracker 5 could not be started by {} (as root it installs request-tracker5 with apt):\n{}",
            script.display(),
            out.both()
        );
        return Err((!installed, why));
    }
    match read_token() {
        Some(token) if answers(&token) => Ok(RtServer { origin, token }),
        _ => Err((
            false,
            format!(
                "start-rt.sh succeeded but RT does not answer on {origin} with the token in {}",
                rt_dir().display()
            ),
        )),
    }
}

/// Tests that count requests over the whole user table take this (async tests hold the
/// owned guard across awaits; sync tests use `blocking_lock_owned`).
pub fn exclusive() -> Arc<tokio::sync::Mutex<()>> {
    static ONE: OnceLock<Arc<tokio::sync::Mutex<()>>> = OnceLock::new();
    ONE.get_or_init(|| Arc::new(tokio::sync::Mutex::new(())))
        .clone()
}

/// A user-name prefix unique to this test (RT's database is shared by all tests and runs).
pub fn prefix(label: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000)
        .unwrap_or(0);
    format!("hc{label}{}x{n}x{nanos}-", std::process::id())
}

/// A forwarding proxy to RT, inside the testkit's fault layer: every request is logged and
/// scripted faults are served instead of (or after) forwarding.
pub async fn proxy(server: &RtServer) -> Served {
    use axum::body::{Body, to_bytes};
    use axum::extract::{Request as AxRequest, State};
    use axum::response::Response;
    #[derive(Clone)]
    struct Upstream {
        origin: String,
        client: reqwest::Client,
    }
    async fn forward(State(up): State<Upstream>, req: AxRequest) -> Response {
        let (parts, body) = req.into_parts();
        let bytes = to_bytes(body, 16 << 20).await.unwrap_or_default();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut rb = up
            .client
            .request(parts.method.clone(), format!("{}{path}", up.origin));
        for (k, v) in &parts.headers {
            if k != "host" && k != "content-length" {
                rb = rb.header(k, v);
            }
        }
        match rb.body(bytes).send().await {
            Ok(resp) => {
                let mut out = Response::builder().status(resp.status());
                for (k, v) in resp.headers() {
                    if k != "transfer-encoding" && k != "content-length" && k != "connection" {
                        out = out.header(k, v);
                    }
                }
                let body = resp.bytes().await.unwrap_or_default();
                out.body(Body::from(body)).unwrap()
            }
            Err(e) => Response::builder()
                .status(502)
                .body(Body::from(format!("proxy: {e}")))
                .unwrap(),
        }
    }
    let up = Upstream {
        origin: server.origin.clone(),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
    };
    serve_with_faults(axum::Router::new().fallback(forward).with_state(up)).await
}

/// A client of RT at `origin` (the server or a proxy) with the test's fast retry policy.
pub fn client(origin: &str, token: &str) -> HttpClient {
    request_tracker::client(
        "request_tracker test",
        origin,
        SecretString::from(token.to_string()),
        HttpSettings {
            rate_limit: None,
            timeout: Some(Duration::from_secs(30)),
        },
    )
    .unlimited()
    .retry_policy(headcount::testkit::fast_policy())
    .build()
    .unwrap()
}

/// Direct access to RT for seeding and checking (never through the target under test).
pub struct Admin {
    client: HttpClient,
}

impl Admin {
    pub fn new(server: &RtServer) -> Admin {
        Admin {
            client: client(&server.origin, &server.token),
        }
    }

    /// `POST /user`; panics unless RT answers 201.
    pub async fn create(&self, body: Value) {
        let resp = self
            .client
            .send(Request::post("user").json(body.clone()))
            .await
            .unwrap_or_else(|e| panic!("creating {body}: {e}"));
        assert_eq!(resp.status.as_u16(), 201, "creating {body}");
    }

    /// `GET /user/{name or id}`, `None` when RT has no such user.
    pub async fn user(&self, name: &str) -> Option<Value> {
        let seg: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
        match self
            .client
            .send_json(Request::get(format!("user/{seg}")))
            .await
        {
            Ok(v) => Some(v),
            Err(e) if e.status() == Some(404) => None,
            Err(e) => panic!("reading user {name}: {e}"),
        }
    }

    /// `PUT /user/{name}`; RT's messages.
    pub async fn update(&self, name: &str, body: Value) -> Value {
        let seg: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
        self.client
            .send_json(Request::put(format!("user/{seg}")).json(body))
            .await
            .unwrap_or_else(|e| panic!("updating {name}: {e}"))
    }

    /// Every user (disabled ones too): `(numeric id, Name)` in RT's order.
    pub async fn all_users(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut page = 1;
        loop {
            let v: Value = self
                .client
                .send_json(
                    Request::get("users")
                        .query("fields", "id,Name")
                        .query("find_disabled_rows", 1)
                        .query("per_page", 100)
                        .query("page", page),
                )
                .await
                .unwrap();
            let items = v["items"].as_array().cloned().unwrap_or_default();
            for i in &items {
                out.push((
                    i["id"].to_string(),
                    i["Name"].as_str().unwrap_or("").to_string(),
                ));
            }
            if items.is_empty() || v["next_page"].as_str().is_none() {
                return out;
            }
            page += 1;
        }
    }
}

/// A user of the tests: `{prefix}{n}` with an address and a real name.
pub fn user_body(prefix: &str, n: usize) -> Value {
    json!({
        "Name": format!("{prefix}{n}"),
        "EmailAddress": format!("{prefix}{n}@example.com"),
        "RealName": format!("User {n}"),
        "Privileged": 0,
    })
}

/// The target as a test sees it: only the users whose Name starts with the test's prefix
/// (RT's user table is shared by every test); everything else passes straight through.
pub struct Scoped {
    pub inner: RequestTrackerTarget,
    pub prefix: String,
}

impl Scoped {
    fn mine(&self, accounts: Vec<LiveAccount>) -> Vec<LiveAccount> {
        accounts
            .into_iter()
            .filter(|a| {
                a.fields
                    .get("Name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.to_lowercase().starts_with(&self.prefix.to_lowercase()))
            })
            .collect()
    }
}

#[async_trait]
impl Target for Scoped {
    async fn list(&self) -> Result<Vec<LiveAccount>, ConnectorError> {
        Ok(self.mine(self.inner.list().await?))
    }

    async fn find(
        &self,
        identity: &BTreeMap<String, String>,
    ) -> Result<Vec<LiveAccount>, ConnectorError> {
        Ok(self.mine(self.inner.find(identity).await?))
    }

    async fn apply(
        &self,
        ops: &[TargetOp],
        opts: &ApplyOptions,
        done: &(dyn Fn(usize, OpResult) + Send + Sync),
    ) -> Result<(), ConnectorError> {
        self.inner.apply(ops, opts, done).await
    }
}
