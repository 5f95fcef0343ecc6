//! The fault layer every emulator wears: it records each request (method, path, query,
//! selected headers, body, arrival time) and, per request matcher and per occurrence, answers
//! with a scripted fault instead of (or after) the emulator.
//!
//! ```ignore
//! let served = serve_with_faults(router).await;
//! served.faults.on(Match::post("/Users")).nth(1).inject(Fault::LoseResponse);
//! served.faults.on(Match::get("/Users")).first(2).inject(Fault::too_many_requests(1));
//! // ... run the connector ...
//! assert_eq!(served.log.lines(), ["GET /t/v2/Users?startIndex=1&count=500", ...]);
//! ```
//!
//! Arrival times are `tokio::time::Instant`s: real time normally, virtual time under a paused
//! clock (`#[tokio::test(start_paused = true)]`), so Retry-After checks work either way.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::time::Instant;

/// Request headers kept in the log (lower case). Authorization is kept so that tests can check
/// what was sent; nothing here is ever printed by the product.
const LOGGED_HEADERS: [&str; 7] = [
    "authorization",
    "consistencylevel",
    "content-type",
    "accept",
    "if-match",
    "if-none-match",
    "x-request-id",
];

/// Largest request body the layer reads (the emulators take far less).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One request as the emulator received it.
#[derive(Debug, Clone)]
pub struct Logged {
    /// 0-based arrival order.
    pub seq: usize,
    /// Arrival time (tokio clock: virtual under a paused clock).
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// The headers of [`LOGGED_HEADERS`] that were present.
    pub headers: BTreeMap<String, String>,
    /// The body as JSON; a non-JSON body as a JSON string; `None` when empty.
    pub body: Option<Value>,
    /// The name of the fault injected into this request, if any.
    pub fault: Option<&'static str>,
}

impl Logged {
    /// The first value of query parameter `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// `METHOD /path?k=v&...` (query decoded, in request order).
    pub fn line(&self) -> String {
        let mut s = format!("{} {}", self.method, self.path);
        for (i, (k, v)) in self.query.iter().enumerate() {
            s.push(if i == 0 { '?' } else { '&' });
            s.push_str(&format!("{k}={v}"));
        }
        s
    }

    /// True for methods that change state.
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
    }
}

/// Every request an emulator received, in arrival order. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct RequestLog {
    entries: Arc<Mutex<Vec<Logged>>>,
}

impl RequestLog {
    pub fn all(&self) -> Vec<Logged> {
        self.entries.lock().map(|e| e.clone()).unwrap_or_default()
    }

    pub fn count(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or_default()
    }

    /// The requests `m` matches, in order.
    pub fn matching(&self, m: &Match) -> Vec<Logged> {
        self.all().into_iter().filter(|l| m.matches(l)).collect()
    }

    /// Requests with this method.
    pub fn method(&self, method: &str) -> Vec<Logged> {
        self.matching(&Match::method(method))
    }

    /// Requests that change state (POST, PUT, PATCH, DELETE).
    pub fn writes(&self) -> Vec<Logged> {
        self.all().into_iter().filter(Logged::is_write).collect()
    }

    /// [`Logged::line`] of every request, for exact-sequence assertions.
    pub fn lines(&self) -> Vec<String> {
        self.all().iter().map(Logged::line).collect()
    }

    pub fn clear(&self) {
        if let Ok(mut e) = self.entries.lock() {
            e.clear();
        }
    }

    fn push(&self, mut l: Logged) {
        if let Ok(mut e) = self.entries.lock() {
            l.seq = e.len();
            e.push(l);
        }
    }
}

/// Which requests a rule applies to. Empty parts match anything.
#[derive(Debug, Clone, Default)]
pub struct Match {
    method: Option<String>,
    /// The path must end with this (emulators serve under a tenant prefix).
    path_suffix: Option<String>,
    /// The path must contain this.
    path_contains: Option<String>,
    query: Vec<(String, String)>,
}

impl Match {
    /// Every request.
    pub fn any() -> Match {
        Match::default()
    }

    pub fn method(method: &str) -> Match {
        Match {
            method: Some(method.to_ascii_uppercase()),
            ..Match::default()
        }
    }

    /// `GET` of a path ending with `suffix`.
    pub fn get(suffix: &str) -> Match {
        Match::method("GET").path(suffix)
    }

    pub fn post(suffix: &str) -> Match {
        Match::method("POST").path(suffix)
    }

    pub fn patch(suffix: &str) -> Match {
        Match::method("PATCH").path(suffix)
    }

    pub fn delete(suffix: &str) -> Match {
        Match::method("DELETE").path(suffix)
    }

    /// Writes only (POST, PUT, PATCH, DELETE); combine with [`Match::path`].
    pub fn writes() -> Match {
        Match::method("WRITE")
    }

    /// The path ends with `suffix`.
    pub fn path(mut self, suffix: &str) -> Match {
        self.path_suffix = Some(suffix.to_string());
        self
    }

    /// The path contains `part` (e.g. `/Users/` for any single user).
    pub fn path_contains(mut self, part: &str) -> Match {
        self.path_contains = Some(part.to_string());
        self
    }

    /// Query parameter `name` equals `value`.
    pub fn query(mut self, name: &str, value: &str) -> Match {
        self.query.push((name.to_string(), value.to_string()));
        self
    }

    pub fn matches(&self, l: &Logged) -> bool {
        let method_ok = match self.method.as_deref() {
            None => true,
            Some("WRITE") => l.is_write(),
            Some(m) => m == l.method,
        };
        method_ok
            && self
                .path_suffix
                .as_deref()
                .is_none_or(|s| l.path.ends_with(s))
            && self
                .path_contains
                .as_deref()
                .is_none_or(|s| l.path.contains(s))
            && self.query.iter().all(|(k, v)| l.query(k) == Some(v))
    }
}

/// What the layer does to a request a rule selects.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this instead of passing the request on (nothing is applied).
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Hold the request this long (past the client's timeout), then drop the connection;
    /// nothing is applied.
    Hold(Duration),
    /// Drop the connection without an answer; nothing is applied.
    Drop,
    /// Apply the request (pass it on), then drop the connection instead of answering: the
    /// write happened and the client cannot know.
    LoseResponse,
    /// Apply the request, then answer this instead of the emulator's answer (e.g. a `409`
    /// for a create that was stored).
    AfterApply { status: u16, body: String },
    /// Answer `status` with a SCIM error whose `detail` (and a plain `echo` field) repeats the
    /// request's `Authorization` header and its credential as is, in base64 and URL-encoded,
    /// as careless servers do; nothing is applied.
    EchoAuthorization { status: u16 },
}

impl Fault {
    /// `429 Too Many Requests` with `Retry-After: secs`.
    pub fn too_many_requests(retry_after_secs: u64) -> Fault {
        Fault::Answer {
            status: 429,
            headers: vec![("retry-after".into(), retry_after_secs.to_string())],
            body: String::new(),
        }
    }

    /// A 5xx (or any status) with a short plain-text body.
    pub fn status(status: u16) -> Fault {
        Fault::Answer {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: format!("injected {status}"),
        }
    }

    /// The HTML error page a proxy in front of the vendor answers with (`502`, `text/html`).
    pub fn html_error_page() -> Fault {
        Fault::Answer {
            status: 502,
            headers: vec![("content-type".into(), "text/html; charset=utf-8".into())],
            body: "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>".into(),
        }
    }

    /// A `200` whose JSON is not what the vendor's API documents.
    pub fn unexpected_json() -> Fault {
        Fault::Answer {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: r#"{"Resources": "not a list", "data": {"items": 7}, "totalResults": "many"}"#
                .into(),
        }
    }

    /// A `200` whose body is not JSON at all.
    pub fn not_json() -> Fault {
        Fault::Answer {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: "<<not json>>".into(),
        }
    }

    /// Short name for the request log.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Answer { status: 429, .. } => "429",
            Fault::Answer { status: 200, .. } => "unexpected_body",
            Fault::Answer { status, .. } if (500..600).contains(status) => "5xx",
            Fault::Answer { .. } => "answer",
            Fault::Hold(_) => "hold",
            Fault::Drop => "drop",
            Fault::LoseResponse => "lose_response",
            Fault::AfterApply { .. } => "after_apply",
            Fault::EchoAuthorization { .. } => "echo_authorization",
        }
    }
}

/// Which occurrences of matching requests a rule takes (1-based, counted per rule).
#[derive(Debug, Clone, Copy)]
enum Occurrence {
    Nth(usize),
    First(usize),
    Always,
}

#[derive(Debug, Clone)]
struct Rule {
    when: Match,
    which: Occurrence,
    fault: Fault,
    /// Matching requests seen so far.
    seen: usize,
}

/// The fault script of one emulator. Rules are tried in the order they were added; the first
/// whose matcher and occurrence select a request decides its fault. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Faults {
    rules: Arc<Mutex<Vec<Rule>>>,
}

/// A rule being built: `faults.on(matcher).nth(2).inject(fault)`.
#[must_use = "a rule takes effect only with .inject(fault)"]
pub struct RuleBuilder<'a> {
    faults: &'a Faults,
    when: Match,
    which: Occurrence,
}

impl RuleBuilder<'_> {
    /// Only the `n`th matching request (1-based).
    pub fn nth(mut self, n: usize) -> Self {
        self.which = Occurrence::Nth(n);
        self
    }

    /// The first `n` matching requests.
    pub fn first(mut self, n: usize) -> Self {
        self.which = Occurrence::First(n);
        self
    }

    /// Every matching request.
    pub fn always(mut self) -> Self {
        self.which = Occurrence::Always;
        self
    }

    pub fn inject(self, fault: Fault) {
        if let Ok(mut rules) = self.faults.rules.lock() {
            rules.push(Rule {
                when: self.when,
                which: self.which,
                fault,
                seen: 0,
            });
        }
    }
}

impl Faults {
    /// Starts a rule for requests `when` matches; by default it takes the first one only.
    pub fn on(&self, when: Match) -> RuleBuilder<'_> {
        RuleBuilder {
            faults: self,
            when,
            which: Occurrence::First(1),
        }
    }

    /// Removes every rule.
    pub fn clear(&self) {
        if let Ok(mut r) = self.rules.lock() {
            r.clear();
        }
    }

    /// The fault for this request, counting it against every matching rule.
    fn pick(&self, l: &Logged) -> Option<Fault> {
        let mut rules = self.rules.lock().ok()?;
        let mut chosen = None;
        for rule in rules.iter_mut() {
            if !rule.when.matches(l) {
                continue;
            }
            rule.seen += 1;
            let takes = match rule.which {
                Occurrence::Nth(n) => rule.seen == n,
                Occurrence::First(n) => rule.seen <= n,
                Occurrence::Always => true,
            };
            if takes && chosen.is_none() {
                chosen = Some(rule.fault.clone());
            }
        }
        chosen
    }
}

/// The axum middleware: log, then fault or pass on. Generic over the emulator behind it.
#[derive(Clone)]
pub struct FaultLayer {
    log: RequestLog,
    faults: Faults,
}

impl FaultLayer {
    pub fn new(log: RequestLog, faults: Faults) -> FaultLayer {
        FaultLayer { log, faults }
    }

    /// `app` with this layer around every route.
    pub fn wrap(self, app: axum::Router) -> axum::Router {
        app.layer(axum::middleware::from_fn_with_state(self, intercept))
    }
}

async fn intercept(State(layer): State<FaultLayer>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .unwrap_or_default();
    let query = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let headers = LOGGED_HEADERS
        .iter()
        .filter_map(|name| {
            let v = parts.headers.get(*name)?.to_str().ok()?;
            Some((name.to_string(), v.to_string()))
        })
        .collect();
    let body = (!bytes.is_empty()).then(|| {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    });
    let mut logged = Logged {
        seq: 0,
        at: Instant::now(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query,
        headers,
        body,
        fault: None,
    };
    let authorization = logged
        .header("authorization")
        .unwrap_or_default()
        .to_string();
    let fault = layer.faults.pick(&logged);
    logged.fault = fault.as_ref().map(Fault::name);
    layer.log.push(logged);
    let req = Request::from_parts(parts, Body::from(bytes));
    match fault {
        None => next.run(req).await,
        Some(Fault::Answer {
            status,
            headers,
            body,
        }) => answer(status, &headers, body),
        Some(Fault::Hold(d)) => {
            tokio::time::sleep(d).await;
            dropped()
        }
        Some(Fault::Drop) => dropped(),
        Some(Fault::LoseResponse) => {
            let _applied = next.run(req).await;
            dropped()
        }
        Some(Fault::EchoAuthorization { status }) => {
            use base64::Engine as _;
            let credential = authorization
                .split_once(' ')
                .map_or(authorization.as_str(), |(_, c)| c);
            let b64 = base64::engine::general_purpose::STANDARD.encode(credential);
            let encoded: String =
                url::form_urlencoded::byte_serialize(credential.as_bytes()).collect();
            let body = serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": status.to_string(),
                "detail": format!("bad request; you sent Authorization: {authorization} (base64 {b64}, url {encoded})"),
                "echo": {"authorization": authorization, "base64": b64, "url": encoded},
            });
            answer(
                status,
                &[("content-type".into(), "application/scim+json".into())],
                body.to_string(),
            )
        }
        Some(Fault::AfterApply { status, body }) => {
            let _applied = next.run(req).await;
            answer(
                status,
                &[("content-type".into(), "application/json".into())],
                body,
            )
        }
    }
}

fn answer(status: u16, headers: &[(String, String)], body: String) -> Response {
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    )
        .into_response();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::try_from(k.as_str()),
            HeaderValue::try_from(v.as_str()),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// A response whose body fails at once: hyper aborts the connection, so the client gets no
/// usable answer (as when a proxy or the network drops it).
fn dropped() -> Response {
    let broken = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("connection dropped by the testkit"))
    });
    (StatusCode::OK, Body::from_stream(broken)).into_response()
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::get;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::http::Request as HttpRequest;
    use crate::testkit::{builder, serve_with_faults};

    /// A tiny emulator: GET and POST `/things`, counting the writes it applied.
    async fn things() -> (crate::testkit::Served, Arc<AtomicUsize>) {
        let applied = Arc::new(AtomicUsize::new(0));
        let a = applied.clone();
        let app = Router::new().route(
            "/api/things",
            get(|| async { axum::Json(json!({"items": []})) }).post(move || {
                let a = a.clone();
                async move {
                    a.fetch_add(1, Ordering::SeqCst);
                    (StatusCode::CREATED, axum::Json(json!({"id": "1"})))
                }
            }),
        );
        (serve_with_faults(app).await, applied)
    }

    #[tokio::test]
    async fn logs_every_request_and_scripts_faults_per_occurrence() {
        let (s, applied) = things().await;
        s.faults
            .on(Match::get("/things"))
            .nth(2)
            .inject(Fault::status(503));
        s.faults
            .on(Match::post("/things"))
            .inject(Fault::LoseResponse);
        let client = builder(&s.origin).build().unwrap();
        client
            .send(HttpRequest::get("/api/things").query("page", 1))
            .await
            .unwrap();
        // The second GET gets a 503 and is retried.
        client
            .send(HttpRequest::get("/api/things").query("page", 2))
            .await
            .unwrap();
        let err = client
            .send(HttpRequest::post("/api/things").json(json!({"a": 1})))
            .await
            .unwrap_err();
        assert!(err.is_ambiguous(), "{err}");
        assert_eq!(
            applied.load(Ordering::SeqCst),
            1,
            "the lost write was applied"
        );
        assert_eq!(
            s.log.lines(),
            [
                "GET /api/things?page=1",
                "GET /api/things?page=2",
                "GET /api/things?page=2",
                "POST /api/things",
            ]
        );
        let all = s.log.all();
        assert_eq!(all[1].fault, Some("5xx"));
        assert_eq!(all[3].fault, Some("lose_response"));
        assert_eq!(all[3].body, Some(json!({"a": 1})));
        assert_eq!(all[3].header("content-type"), Some("application/json"));
        assert_eq!(s.log.writes().len(), 1);
    }

    #[tokio::test]
    async fn drops_holds_and_answers_without_applying() {
        let (s, applied) = things().await;
        s.faults.on(Match::post("/things")).inject(Fault::Drop);
        s.faults
            .on(Match::post("/things"))
            .nth(2)
            .inject(Fault::Hold(Duration::from_millis(800)));
        s.faults
            .on(Match::post("/things"))
            .nth(3)
            .inject(Fault::html_error_page());
        let client = builder(&s.origin)
            .timeout_duration(Duration::from_millis(200))
            .build()
            .unwrap();
        for _ in 0..2 {
            let err = client
                .send(HttpRequest::post("/api/things"))
                .await
                .unwrap_err();
            assert!(err.is_ambiguous(), "{err}");
        }
        let err = client
            .send(HttpRequest::post("/api/things"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("502"), "{err}");
        assert_eq!(applied.load(Ordering::SeqCst), 0);
        client.send(HttpRequest::post("/api/things")).await.unwrap();
        assert_eq!(applied.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_is_honoured_under_a_paused_clock() {
        let (s, _) = things().await;
        s.faults
            .on(Match::get("/things"))
            .inject(Fault::too_many_requests(30));
        let client = builder(&s.origin)
            .retry_policy(crate::http::RetryPolicy {
                max_wait: Duration::from_secs(60),
                max_total: Duration::from_secs(120),
                ..crate::testkit::fast_policy()
            })
            .build()
            .unwrap();
        client.send(HttpRequest::get("/api/things")).await.unwrap();
        let gets = s.log.all();
        assert_eq!(gets.len(), 2);
        assert!(gets[1].at - gets[0].at >= Duration::from_secs(30));
    }
}
