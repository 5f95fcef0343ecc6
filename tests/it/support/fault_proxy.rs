//! An HTTP reverse proxy on 127.0.0.1 that injects faults in front of a real server.
//!
//! Per request, with probability `rate`, one fault kind is drawn (seeded xorshift, so runs are
//! reproducible up to thread interleaving):
//! - `429` with `Retry-After` (the request is not forwarded),
//! - `500` and `503` (not forwarded),
//! - slow: the request is held for `hold` (longer than the client timeout), then the connection
//!   is dropped without an answer (not forwarded),
//! - dropped connection before forwarding,
//! - lost response: the request IS forwarded, the upstream answer awaited, then the connection
//!   is dropped without answering (the write happened; the client cannot know).
//!
//! It counts requests and faults, and checks that every 429 was honoured: requests are keyed by
//! (method, path and query, body); when a key that got a 429 comes again, at least
//! `Retry-After` must have passed, otherwise a violation is recorded.
//!
//! Targeted rules ([`FaultProxy::add_rule`]) act on chosen requests before any random fault:
//! answer a matching request with a fixed status and body instead of forwarding it, send an
//! out-of-band request straight to the upstream just before forwarding it, or only record it
//! (with its `If-Match`). Every match is kept as a [`RuleHit`].
//!
//! The proxy runs as a task on a runtime owned by the test and stops when dropped.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// The tokio clock, so that a test can drive the Retry-After check with a paused clock.
use tokio::time::Instant;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    TooManyRequests,
    InternalError,
    Unavailable,
    Slow,
    DropBeforeForward,
    LostResponse,
}

impl FaultKind {
    pub const ALL: [FaultKind; 6] = [
        FaultKind::TooManyRequests,
        FaultKind::InternalError,
        FaultKind::Unavailable,
        FaultKind::Slow,
        FaultKind::DropBeforeForward,
        FaultKind::LostResponse,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::TooManyRequests => "429_retry_after",
            FaultKind::InternalError => "500",
            FaultKind::Unavailable => "503",
            FaultKind::Slow => "slow_past_timeout",
            FaultKind::DropBeforeForward => "dropped_before_forward",
            FaultKind::LostResponse => "lost_response_after_write",
        }
    }
}

/// What the proxy does; can be changed while it runs ([`FaultProxy::set_rate`]).
#[derive(Clone, Debug)]
pub struct FaultConfig {
    /// Probability that a request gets a fault, 0.0 ..= 1.0.
    pub rate: f64,
    /// The kinds drawn from, uniformly.
    pub kinds: Vec<FaultKind>,
    /// How long a `Slow` request is held before its connection is dropped.
    pub hold: Duration,
    /// Extra latency (min, max) added to every request before anything else.
    pub latency: Option<(Duration, Duration)>,
    /// The `Retry-After` of 429 answers, in seconds.
    pub retry_after_secs: u64,
    /// Seed of the xorshift generator (0 is replaced by a fixed non-zero seed).
    pub seed: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            rate: 0.0,
            kinds: FaultKind::ALL.to_vec(),
            hold: Duration::from_secs(3),
            latency: None,
            retry_after_secs: 1,
            seed: 0x9E37_79B9_7F4A_7C15,
        }
    }
}

/// Counters, read with [`FaultProxy::stats`].
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Requests received.
    pub requests: u64,
    /// Requests by method.
    pub by_method: BTreeMap<String, u64>,
    /// Requests passed on to the upstream (including those whose answer was then lost).
    pub forwarded: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<FaultKind, u64>,
    /// Requests whose key (method, path, body) had been seen before: retries, plus identical
    /// reads from later runs.
    pub repeated_keys: u64,
    /// Repeats of a key that had been answered 429 (each one checked against `Retry-After`).
    pub retry_after_checks: u64,
    /// Repeats that came too early after a 429: "METHOD path after N ms".
    pub violations: Vec<String>,
    /// Upstream failures (the proxy answered 502).
    pub upstream_errors: u64,
}

impl Stats {
    pub fn total_faults(&self) -> u64 {
        self.faults.values().sum()
    }

    pub fn fault(&self, kind: FaultKind) -> u64 {
        self.faults.get(&kind).copied().unwrap_or(0)
    }

    /// The counts since `earlier` (a snapshot of the same proxy).
    pub fn since(&self, earlier: &Stats) -> Stats {
        let sub = |a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>| {
            a.iter()
                .map(|(k, v)| (k.clone(), v - b.get(k).copied().unwrap_or(0)))
                .collect()
        };
        Stats {
            requests: self.requests - earlier.requests,
            by_method: sub(&self.by_method, &earlier.by_method),
            forwarded: self.forwarded - earlier.forwarded,
            faults: self
                .faults
                .iter()
                .map(|(k, v)| (*k, v - earlier.fault(*k)))
                .collect(),
            repeated_keys: self.repeated_keys - earlier.repeated_keys,
            retry_after_checks: self.retry_after_checks - earlier.retry_after_checks,
            violations: self.violations[earlier.violations.len()..].to_vec(),
            upstream_errors: self.upstream_errors - earlier.upstream_errors,
        }
    }
}

/// A tiny xorshift64 generator; no `rand` crate needed.
#[derive(Debug)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(if seed == 0 {
            0x2545_F491_4F6C_DD1D
        } else {
            seed
        })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n); n > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Which requests a [`Rule`] applies to: every condition given must hold.
#[derive(Clone, Debug, Default)]
pub struct Match {
    /// The method, e.g. `PATCH` (any when `None`).
    pub method: Option<String>,
    /// A substring of the path and query.
    pub path_contains: Option<String>,
    /// A substring of the request body (read as UTF-8, lossily).
    pub body_contains: Option<String>,
}

impl Match {
    fn matches(&self, method: &str, path: &str, body: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
            && self
                .body_contains
                .as_deref()
                .is_none_or(|b| body.contains(b))
    }
}

/// A request the proxy sends straight to the upstream, bypassing the client under test.
#[derive(Clone, Debug)]
pub struct OutOfBand {
    pub method: String,
    /// Path and query on the upstream, e.g. `/tenant-1/v2/Users/ID`.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// What a [`Rule`] does with a matching request.
#[derive(Clone, Debug)]
pub enum RuleAction {
    /// Answers with `status` and `body` (as `application/scim+json`); nothing is forwarded.
    Respond { status: u16, body: String },
    /// Sends the out-of-band request to the upstream and awaits its answer, then goes on as
    /// usual (random faults, forwarding).
    BeforeForward(OutOfBand),
    /// Only records the request, then goes on as usual.
    Observe,
}

/// A targeted action on the requests that match; see [`FaultProxy::add_rule`].
#[derive(Clone, Debug)]
pub struct Rule {
    /// Names the rule in [`RuleHit`]s.
    pub name: String,
    pub when: Match,
    pub action: RuleAction,
    /// How many requests the rule acts on (`None`: all of them).
    pub times: Option<u32>,
}

/// A request a rule acted on.
#[derive(Clone, Debug)]
pub struct RuleHit {
    pub rule: String,
    pub method: String,
    pub path: String,
    /// The request's `If-Match` header.
    pub if_match: Option<String>,
    /// For [`RuleAction::BeforeForward`]: the upstream's status and body for the out-of-band
    /// request (status 0 when it could not be sent).
    pub out_of_band: Option<(u16, String)>,
}

struct Seen {
    count: u32,
    throttled_at: Option<Instant>,
}

struct Shared {
    upstream: String,
    config: Mutex<FaultConfig>,
    rng: Mutex<XorShift>,
    stats: Mutex<Stats>,
    seen: Mutex<HashMap<u64, Seen>>,
    /// Rules with how many requests each has acted on, tried in order.
    rules: Mutex<Vec<(Rule, u32)>>,
    hits: Mutex<Vec<RuleHit>>,
    client: reqwest::Client,
}

pub struct FaultProxy {
    pub port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

/// Why a connection was dropped instead of answered.
#[derive(Debug)]
struct Dropped(&'static str);

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connection dropped by the fault proxy: {}", self.0)
    }
}

impl std::error::Error for Dropped {}

type ProxyResult = Result<Response<Full<Bytes>>, Dropped>;

impl FaultProxy {
    /// Starts the proxy on a free port of 127.0.0.1, forwarding to `upstream_origin`
    /// (`http://127.0.0.1:PORT`, no path), on the runtime behind `handle`.
    pub fn start(
        handle: &tokio::runtime::Handle,
        upstream_origin: &str,
        config: FaultConfig,
    ) -> FaultProxy {
        assert!(
            upstream_origin.starts_with("http://127.0.0.1:"),
            "the fault proxy only forwards to 127.0.0.1, not {upstream_origin}"
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fault proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("local_addr").port();
        let shared = Arc::new(Shared {
            upstream: upstream_origin.trim_end_matches('/').to_string(),
            rng: Mutex::new(XorShift::new(config.seed)),
            config: Mutex::new(config),
            stats: Mutex::new(Stats::default()),
            seen: Mutex::new(HashMap::new()),
            rules: Mutex::new(Vec::new()),
            hits: Mutex::new(Vec::new()),
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("upstream client"),
        });
        let accept_shared = Arc::clone(&shared);
        let task = handle.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            // Dropping the set (when this task is aborted) aborts every connection task.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let shared = Arc::clone(&accept_shared);
                        connections.spawn(async move {
                            let service = service_fn(move |req| {
                                let shared = Arc::clone(&shared);
                                async move { serve_request(shared, req).await }
                            });
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        FaultProxy { port, shared, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The proxy URL for an upstream URL (same path and query).
    pub fn url_for(&self, upstream_url: &str) -> String {
        let rest = upstream_url
            .strip_prefix(&self.shared.upstream)
            .unwrap_or_else(|| panic!("{upstream_url} is not under {}", self.shared.upstream));
        format!("{}{rest}", self.origin())
    }

    /// Changes the fault rate from now on (0.0 turns faults off).
    pub fn set_rate(&self, rate: f64) {
        self.shared.config.lock().expect("config").rate = rate;
    }

    /// Changes the fault kinds drawn from now on.
    pub fn set_kinds(&self, kinds: &[FaultKind]) {
        self.shared.config.lock().expect("config").kinds = kinds.to_vec();
    }

    /// Changes how long `Slow` requests are held from now on.
    pub fn set_hold(&self, hold: Duration) {
        self.shared.config.lock().expect("config").hold = hold;
    }

    /// Changes the added latency from now on.
    pub fn set_latency(&self, latency: Option<(Duration, Duration)>) {
        self.shared.config.lock().expect("config").latency = latency;
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats.lock().expect("stats").clone()
    }

    /// Adds a rule after the existing ones. For each request, the first matching rule that
    /// has acts left applies, before any random fault.
    pub fn add_rule(&self, rule: Rule) {
        self.shared.rules.lock().expect("rules").push((rule, 0));
    }

    /// Removes every rule (the hits are kept).
    pub fn clear_rules(&self) {
        self.shared.rules.lock().expect("rules").clear();
    }

    /// Every request a rule acted on, in order.
    pub fn rule_hits(&self) -> Vec<RuleHit> {
        self.shared.hits.lock().expect("hits").clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn key_of(method: &str, path: &str, body: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    method.hash(&mut h);
    path.hash(&mut h);
    body.hash(&mut h);
    h.finish()
}

async fn serve_request(shared: Arc<Shared>, req: Request<Incoming>) -> ProxyResult {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(Dropped("request body unreadable")),
    };
    let method = parts.method.as_str().to_string();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    let key = key_of(&method, &path, &body);

    let (fault, latency, hold, retry_after) = {
        let config = shared.config.lock().expect("config").clone();
        let mut rng = shared.rng.lock().expect("rng");
        let fault = if config.rate > 0.0 && !config.kinds.is_empty() {
            let roll = rng.next_f64();
            (roll < config.rate)
                .then(|| config.kinds[rng.below(config.kinds.len() as u64) as usize])
        } else {
            None
        };
        let latency = config.latency.map(|(lo, hi)| {
            let span = hi.saturating_sub(lo).as_millis() as u64;
            lo + Duration::from_millis(if span == 0 { 0 } else { rng.below(span + 1) })
        });
        (
            fault,
            latency,
            config.hold,
            Duration::from_secs(config.retry_after_secs),
        )
    };

    {
        let mut stats = shared.stats.lock().expect("stats");
        let mut seen = shared.seen.lock().expect("seen");
        stats.requests += 1;
        *stats.by_method.entry(method.clone()).or_default() += 1;
        let entry = seen.entry(key).or_insert(Seen {
            count: 0,
            throttled_at: None,
        });
        if entry.count > 0 {
            stats.repeated_keys += 1;
        }
        entry.count += 1;
        if let Some(at) = entry.throttled_at.take() {
            stats.retry_after_checks += 1;
            let waited = at.elapsed();
            if waited < retry_after {
                stats.violations.push(format!(
                    "{method} {path} again after {} ms (Retry-After {} s)",
                    waited.as_millis(),
                    retry_after.as_secs()
                ));
            }
        }
        if let Some(kind) = fault {
            *stats.faults.entry(kind).or_default() += 1;
            if kind == FaultKind::TooManyRequests {
                entry.throttled_at = Some(Instant::now());
            }
        }
    }

    if let Some(latency) = latency {
        tokio::time::sleep(latency).await;
    }

    let rule = {
        let text = String::from_utf8_lossy(&body);
        let mut rules = shared.rules.lock().expect("rules");
        rules
            .iter_mut()
            .find(|(r, used)| {
                r.times.is_none_or(|t| *used < t) && r.when.matches(&method, &path, &text)
            })
            .map(|(r, used)| {
                *used += 1;
                r.clone()
            })
    };
    if let Some(rule) = rule {
        let mut hit = RuleHit {
            rule: rule.name.clone(),
            method: method.clone(),
            path: path.clone(),
            if_match: parts
                .headers
                .get(header::IF_MATCH)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            out_of_band: None,
        };
        match rule.action {
            RuleAction::Respond { status, body } => {
                shared.hits.lock().expect("hits").push(hit);
                let mut r = Response::new(Full::new(Bytes::from(body)));
                *r.status_mut() = StatusCode::from_u16(status).expect("rule status");
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/scim+json"),
                );
                return Ok(r);
            }
            RuleAction::BeforeForward(oob) => {
                hit.out_of_band = Some(out_of_band(&shared, &oob).await);
                shared.hits.lock().expect("hits").push(hit);
            }
            RuleAction::Observe => shared.hits.lock().expect("hits").push(hit),
        }
    }

    match fault {
        Some(FaultKind::TooManyRequests) => {
            let mut r = scim_error(StatusCode::TOO_MANY_REQUESTS, "too many requests");
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&retry_after.as_secs().to_string()).expect("header"),
            );
            Ok(r)
        }
        Some(FaultKind::InternalError) => Ok(scim_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "injected internal error",
        )),
        Some(FaultKind::Unavailable) => Ok(scim_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "injected unavailability",
        )),
        Some(FaultKind::Slow) => {
            tokio::time::sleep(hold).await;
            Err(Dropped("held past the client timeout"))
        }
        Some(FaultKind::DropBeforeForward) => Err(Dropped("before forwarding")),
        Some(FaultKind::LostResponse) => {
            let _ = forward(&shared, &parts, &path, body).await;
            Err(Dropped("after the upstream answered"))
        }
        None => Ok(forward(&shared, &parts, &path, body).await),
    }
}

/// Sends a rule's out-of-band request to the upstream; its status and body (0 and the error
/// when it could not be sent).
async fn out_of_band(shared: &Shared, oob: &OutOfBand) -> (u16, String) {
    let Ok(method) = hyper::Method::from_bytes(oob.method.as_bytes()) else {
        return (0, format!("bad method {}", oob.method));
    };
    let mut req = shared
        .client
        .request(method, format!("{}{}", shared.upstream, oob.path));
    for (name, value) in &oob.headers {
        req = req.header(name.as_str(), value.as_str());
    }
    if let Some(body) = &oob.body {
        req = req.body(body.clone());
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

fn scim_error(status: StatusCode, detail: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": status.as_u16().to_string(),
        "detail": detail,
    });
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/scim+json"),
    );
    r
}

fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
    )
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !hop_by_hop(name) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// Forwards the request (keeping `Host`, so URLs the server builds point at the proxy).
async fn forward(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    path: &str,
    body: Bytes,
) -> Response<Full<Bytes>> {
    shared.stats.lock().expect("stats").forwarded += 1;
    let url = format!("{}{path}", shared.upstream);
    let mut headers = HeaderMap::new();
    copy_headers(&parts.headers, &mut headers);
    let result = shared
        .client
        .request(parts.method.clone(), &url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let upstream = match result {
        Ok(r) => r,
        Err(e) => {
            shared.stats.lock().expect("stats").upstream_errors += 1;
            return scim_error(StatusCode::BAD_GATEWAY, &format!("upstream: {e}"));
        }
    };
    let status = upstream.status();
    let mut out_headers = HeaderMap::new();
    copy_headers(upstream.headers(), &mut out_headers);
    let bytes = match upstream.bytes().await {
        Ok(b) => b,
        Err(e) => {
            shared.stats.lock().expect("stats").upstream_errors += 1;
            return scim_error(StatusCode::BAD_GATEWAY, &format!("upstream body: {e}"));
        }
    };
    let mut r = Response::new(Full::new(bytes));
    *r.status_mut() = status;
    *r.headers_mut() = out_headers;
    r
}
