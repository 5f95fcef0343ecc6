//! The one HTTP layer every connector uses, so that rate limits, retries, throttling, paging,
//! logging and error messages behave the same against every vendor (SPEC §11).
//!
//! * [`HttpClient`] is built once per source/target and is cheap to clone (an `Arc`).
//! * A token bucket (governor) spaces requests under the configured `rate_limit`, or the
//!   vendor default the connector passes.
//! * Timeouts, connection errors and 5xx are retried with exponential backoff and full jitter,
//!   bounded in attempts ([`DEFAULT_MAX_ATTEMPTS`]) and total time ([`DEFAULT_MAX_TOTAL`]).
//! * `429` (and vendor throttle answers recognised by a connector hook) wait exactly what the
//!   server asks (`Retry-After`, or a vendor reset header) up to [`DEFAULT_MAX_WAIT`]; the wait
//!   pauses every request of the client, not only the throttled one.
//! * A request marked non-idempotent (a create) is never retried once the server may have
//!   applied it: the caller gets [`HttpError::Ambiguous`] and looks the account up first.
//! * Credentials come from an [`auth::AuthProvider`] asked before every attempt (tokens are
//!   cached and refreshed before they expire); a `401` drops the token and the request is
//!   retried once with a fresh one.
//! * Requests and answers are logged at debug level with secrets redacted ([`redact`]).

pub mod auth;
pub mod paging;
pub mod redact;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

pub use auth::{AuthError, AuthProvider, Credential};

use crate::model::{RateLimit, Scrubber};

pub use paging::Page;

/// Per-request timeout when the config gives none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts per request for timeouts, connection errors and 5xx (the first one included).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 6;
/// Time budget of one request, retries and waits included.
pub const DEFAULT_MAX_TOTAL: Duration = Duration::from_secs(300);
/// The longest single wait a throttle answer may ask for; past it the request fails.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(120);
/// First backoff step; doubles per attempt, with full jitter.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Largest backoff step.
pub const DEFAULT_BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Throttle answers tolerated per request (each waits as asked), on top of the attempts.
const MAX_THROTTLED: u32 = 20;
/// Error bodies kept in [`HttpError::Status`] (enough for any vendor error document).
const MAX_ERROR_BODY: usize = 16 * 1024;

/// Static credentials (no refresh). Secrets stay in [`SecretString`] until the request is
/// built. Refreshing credentials are [`auth`] providers, given with
/// [`HttpClientBuilder::auth_provider`].
#[derive(Clone, Default)]
pub enum Auth {
    #[default]
    None,
    /// `Authorization: Bearer TOKEN` (SCIM, Graph, Google, RT).
    Bearer(SecretString),
    /// `Authorization: Basic` (Zendesk `email/token:TOKEN`).
    Basic {
        user: String,
        password: SecretString,
    },
    /// A query parameter on every request (Mojo's `access_key`).
    Query { param: String, value: SecretString },
    /// `Authorization: SCHEME TOKEN` for schemes other than Bearer (RT's `token`).
    Scheme { scheme: String, token: SecretString },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Bearer(_) => f.write_str("Bearer([redacted])"),
            Auth::Basic { user, .. } => write!(f, "Basic({user}, [redacted])"),
            Auth::Query { param, .. } => write!(f, "Query({param}=[redacted])"),
            Auth::Scheme { scheme, .. } => write!(f, "Scheme({scheme} [redacted])"),
        }
    }
}

/// Decides whether an answer other than 429 is a throttle answer (Google's
/// `403 rateLimitExceeded`): `(status, headers, body) -> throttled?`.
pub type ThrottleHook = Arc<dyn Fn(StatusCode, &HeaderMap, &[u8]) -> bool + Send + Sync>;

/// Extracts the vendor's human message from an error body.
pub type MessageHook = Arc<dyn Fn(&[u8]) -> Option<String> + Send + Sync>;

/// Bounds of the retry loop. Tests shrink them.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub max_total: Duration,
    pub max_wait: Duration,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            max_total: DEFAULT_MAX_TOTAL,
            max_wait: DEFAULT_MAX_WAIT,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_cap: DEFAULT_BACKOFF_CAP,
        }
    }
}

/// Why a request failed. Each message names the request (method and path, secrets removed),
/// what the server said and what to do next.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    /// The configuration of the client is unusable (bad base URL, rate limit, timeout).
    #[error("{0}")]
    Config(String),
    /// The server answered with an error status (after retries when it was retryable).
    #[error("{}", status_message(.what, *.status, .message.as_deref(), *.attempts))]
    Status {
        /// `METHOD /path?query` with secrets redacted.
        what: String,
        status: u16,
        /// The vendor's message from the error body, when there is one.
        message: Option<String>,
        /// The error body (cut to 16 KB), for connectors that read vendor codes from it.
        body: String,
        attempts: u32,
    },
    /// A non-idempotent request may or may not have been applied: it was sent and the answer
    /// was lost (timeout, dropped connection) or was a 5xx. It was not retried.
    #[error(
        "{what}: no usable answer ({cause}); the server may have applied it, so it was not retried blindly"
    )]
    Ambiguous { what: String, cause: String },
    /// The server could not be reached or kept timing out.
    #[error(
        "{what} failed after {attempts} attempt(s): {cause}: check that `base_url` is right and the server is up"
    )]
    Transport {
        what: String,
        cause: String,
        attempts: u32,
    },
    /// The server asked to wait longer than headcount waits, or kept throttling.
    #[error(
        "{what}: the server is throttling requests and asked to wait {wait_secs}s ({why}); run again later or lower `rate_limit`"
    )]
    Throttled {
        what: String,
        wait_secs: u64,
        why: String,
    },
    /// The answer was not the JSON the connector expected.
    #[error("{what}: the answer is not the expected JSON: {cause}")]
    Decode { what: String, cause: String },
    /// A list that contradicts itself (ends before its own total, repeats a page): never read
    /// as complete, since accounts it did not show would be planned as missing.
    #[error(
        "{who}: {what}: the server's list contradicts itself ({cause}); headcount does not \
         take it for the complete list, since it would plan creates for accounts it did not \
         see. Try again later; if it persists, the server's paging is broken"
    )]
    Inconsistent {
        who: String,
        what: String,
        cause: String,
    },
    /// No credential could be had (token endpoint refusal, unreadable key or token file).
    #[error(transparent)]
    Auth(#[from] AuthError),
}

fn status_message(what: &str, status: u16, message: Option<&str>, attempts: u32) -> String {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut out = format!("{what} failed: {status} {reason}")
        .trim_end()
        .to_string();
    if let Some(m) = message.filter(|m| !m.trim().is_empty()) {
        out.push_str(": ");
        out.push_str(m.trim());
    }
    if attempts > 1 {
        out.push_str(&format!(" (after {attempts} attempts)"));
    }
    let hint = match status {
        401 => "check the token or credentials: they may be wrong, expired or for another tenant",
        403 => "the credentials lack permission for this: grant it, or use an account that has it",
        404 => "check `base_url`, and that the resource still exists",
        429 => "the server kept throttling: run again later or lower `rate_limit`",
        500..=599 => "the server failed: try again later",
        _ => "",
    };
    if !hint.is_empty() {
        out.push_str("; ");
        out.push_str(hint);
    }
    out
}

impl HttpError {
    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when a non-idempotent request may have been applied.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, HttpError::Ambiguous { .. })
    }
}

/// One request, relative to the client's base URL (or an absolute URL on the same origin, for
/// next-links). The body is JSON.
#[derive(Clone)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Option<Value>,
    /// A form body (`application/x-www-form-urlencoded`), already encoded; kept secret since
    /// token requests carry client secrets and assertions in it. Sent instead of `body`.
    pub form: Option<SecretString>,
    /// May the layer resend it after the server may have applied it? True for GET, PUT,
    /// DELETE, HEAD; false for POST and PATCH unless the caller knows better.
    pub idempotent: bool,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body may hold sensitive values: never in Debug output.
        write!(f, "Request({} {})", self.method, self.path)
    }
}

impl Request {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        let idempotent = !matches!(method, Method::POST | Method::PATCH);
        Request {
            method,
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            form: None,
            idempotent,
        }
    }
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }
    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path)
    }
    pub fn put(path: impl Into<String>) -> Self {
        Self::new(Method::PUT, path)
    }
    pub fn patch(path: impl Into<String>) -> Self {
        Self::new(Method::PATCH, path)
    }
    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path)
    }

    /// Sets a query parameter, replacing an earlier value of the same name.
    pub fn query(mut self, name: &str, value: impl ToString) -> Self {
        self.query.retain(|(k, _)| k != name);
        self.query.push((name.to_string(), value.to_string()));
        self
    }

    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.retain(|(k, _)| k != name);
        self.headers.push((name, value.into()));
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    /// A form body, already encoded (`a=b&c=d`).
    pub fn form(mut self, encoded: SecretString) -> Self {
        self.form = Some(encoded);
        self
    }

    /// Overrides the method's default idempotency (a SCIM PATCH of `replace` ops is safe to
    /// resend; a POST that creates is not).
    pub fn idempotent(mut self, yes: bool) -> Self {
        self.idempotent = yes;
        self
    }
}

/// A successful (2xx) answer with its body read.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// `METHOD /path` of the request, for messages.
    pub what: String,
}

impl Response {
    /// The body as JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| HttpError::Decode {
            what: self.what.clone(),
            cause: e.to_string(),
        })
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Counters the CLI prints after a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct HttpStats {
    /// Requests sent (retries included).
    pub requests: u64,
    /// Requests resent after a timeout, connection error, 5xx or throttle answer.
    pub retries: u64,
    /// Throttle answers (429 and vendor equivalents).
    pub throttled: u64,
    /// Time spent waiting for throttle answers and backoff.
    pub waited_ms: u64,
    /// Non-idempotent requests whose outcome was unknown.
    pub ambiguous: u64,
}

impl HttpError {
    /// The error with every registered secret replaced in the vendor's words and in our own
    /// descriptions (a vendor may echo the `Authorization` header in an error body).
    pub fn scrubbed(self, s: &Scrubber) -> HttpError {
        let f = |t: String| s.scrub(&t);
        match self {
            HttpError::Config(m) => HttpError::Config(f(m)),
            HttpError::Status {
                what,
                status,
                message,
                body,
                attempts,
            } => HttpError::Status {
                what: f(what),
                status,
                message: message.map(f),
                body: f(body),
                attempts,
            },
            HttpError::Ambiguous { what, cause } => HttpError::Ambiguous {
                what: f(what),
                cause: f(cause),
            },
            HttpError::Transport {
                what,
                cause,
                attempts,
            } => HttpError::Transport {
                what: f(what),
                cause: f(cause),
                attempts,
            },
            HttpError::Throttled {
                what,
                wait_secs,
                why,
            } => HttpError::Throttled {
                what: f(what),
                wait_secs,
                why: f(why),
            },
            HttpError::Decode { what, cause } => HttpError::Decode {
                what: f(what),
                cause: f(cause),
            },
            HttpError::Inconsistent { who, what, cause } => HttpError::Inconsistent {
                who,
                what: f(what),
                cause: f(cause),
            },
            HttpError::Auth(e) => HttpError::Auth(e.scrubbed(s)),
        }
    }
}

impl fmt::Display for HttpStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests, {} retries, {} throttled, waited {:.1}s, {} ambiguous",
            self.requests,
            self.retries,
            self.throttled,
            self.waited_ms as f64 / 1000.0,
            self.ambiguous
        )
    }
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    waited_ms: AtomicU64,
    ambiguous: AtomicU64,
}

fn bump(c: &AtomicU64, by: u64) {
    c.fetch_add(by, Ordering::Relaxed);
}

/// Builds an [`HttpClient`]. `name` labels log lines (`scim target "people"`).
pub struct HttpClientBuilder {
    name: String,
    base_url: String,
    auth: Arc<dyn AuthProvider>,
    rate: Option<(u32, Duration)>,
    timeout: Duration,
    policy: RetryPolicy,
    reset_header: Option<HeaderName>,
    throttle_hook: Option<ThrottleHook>,
    message_hook: Option<MessageHook>,
    content_type: &'static str,
    accept: &'static str,
    scrubber: Scrubber,
}

impl HttpClientBuilder {
    /// The run's scrubber: errors and log lines of this client are scrubbed with it, and the
    /// credentials the client sends are registered in it.
    pub fn scrubber(mut self, scrubber: Scrubber) -> Self {
        self.scrubber = scrubber;
        self
    }

    /// Static credentials.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = Arc::new(auth);
        self
    }

    /// A provider asked for the credential of every request (tokens that expire or rotate).
    pub fn auth_provider(mut self, provider: Arc<dyn AuthProvider>) -> Self {
        self.auth = provider;
        self
    }

    /// Sets the rate limit (the config's, or the vendor default the connector passes).
    pub fn rate_limit(mut self, rate: RateLimit) -> Self {
        self.rate = Some((rate.count, rate.per));
        self
    }

    /// No client-side rate limit (tests, or vendors that throttle for us).
    pub fn unlimited(mut self) -> Self {
        self.rate = None;
        self
    }

    /// Sets the per-request timeout; `None` keeps [`DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
        self
    }

    pub fn timeout_duration(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The vendor header that says when a throttle window resets (`X-Rate-Limit-Reset`,
    /// `ratelimit-reset`): seconds to wait, or a Unix time.
    pub fn reset_header(mut self, name: &'static str) -> Self {
        self.reset_header = Some(HeaderName::from_static(name));
        self
    }

    pub fn throttle_hook(mut self, hook: ThrottleHook) -> Self {
        self.throttle_hook = Some(hook);
        self
    }

    pub fn message_hook(mut self, hook: MessageHook) -> Self {
        self.message_hook = Some(hook);
        self
    }

    /// Media type of request bodies and of `Accept` (SCIM: `application/scim+json`).
    pub fn media_type(mut self, content_type: &'static str, accept: &'static str) -> Self {
        self.content_type = content_type;
        self.accept = accept;
        self
    }

    pub fn build(self) -> Result<HttpClient, HttpError> {
        // A URL that fails to parse may still hold `user:password@`: never echoed then.
        let raw = if self.base_url.contains('@') {
            "(not shown: it may hold credentials)".to_string()
        } else {
            format!("{:?}", self.base_url)
        };
        let base = Url::parse(self.base_url.trim()).map_err(|e| {
            HttpError::Config(format!(
                "`base_url` {raw} is not a URL ({e}): write it like https://host/path"
            ))
        })?;
        if !base.username().is_empty() || base.password().is_some() {
            return Err(HttpError::Config(format!(
                "`base_url` {} carries credentials (`user:password@`): a literal secret is not allowed in the config; give the credential as a secret reference",
                redact::url(&base)
            )));
        }
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(HttpError::Config(format!(
                "`base_url` {raw} must be an http(s) URL with a host"
            )));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(HttpError::Config(
                "`base_url` has a query string or fragment (`?...` or `#...`): API paths such as `/Users` are appended to it, so it must end with the path; remove everything from the `?` or `#` on".to_string(),
            ));
        }
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(concat!("headcount/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(self.timeout.min(Duration::from_secs(10)))
            .timeout(self.timeout)
            .build()
            .map_err(|e| HttpError::Config(format!("cannot start the HTTP client: {e}")))?;
        let limiter = match self.rate {
            Some((n, per)) => Some(RateLimiter::direct(quota(n, per)?)),
            None => None,
        };
        Ok(HttpClient {
            inner: Arc::new(Inner {
                name: self.name,
                client,
                base,
                auth: self.auth,
                limiter,
                policy: self.policy,
                reset_header: self.reset_header,
                throttle_hook: self.throttle_hook,
                message_hook: self.message_hook,
                content_type: self.content_type,
                accept: self.accept,
                scrubber: self.scrubber,
                timeout: self.timeout,
                paused_until: std::sync::Mutex::new(None),
                counters: Counters::default(),
            }),
        })
    }
}

/// `n` requests per `per` as a token bucket: a burst of `n`, refilled one every `per / n`.
fn quota(n: u32, per: Duration) -> Result<Quota, HttpError> {
    let burst = std::num::NonZeroU32::new(n)
        .ok_or_else(|| HttpError::Config("the rate limit allows no requests".to_string()))?;
    let period = per / n;
    Quota::with_period(period.max(Duration::from_nanos(1)))
        .map(|q| q.allow_burst(burst))
        .ok_or_else(|| HttpError::Config("the rate limit is too high".to_string()))
}

struct Inner {
    name: String,
    client: reqwest::Client,
    base: Url,
    auth: Arc<dyn AuthProvider>,
    limiter: Option<DefaultDirectRateLimiter>,
    policy: RetryPolicy,
    reset_header: Option<HeaderName>,
    throttle_hook: Option<ThrottleHook>,
    message_hook: Option<MessageHook>,
    content_type: &'static str,
    accept: &'static str,
    scrubber: Scrubber,
    timeout: Duration,
    /// Set by a throttle answer: no request of this client starts before it.
    paused_until: std::sync::Mutex<Option<Instant>>,
    counters: Counters,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let stats = snapshot(&self.counters);
        if stats.requests > 0 {
            tracing::info!(target: "headcount::http", "{}: {stats}", self.name);
        }
    }
}

fn snapshot(c: &Counters) -> HttpStats {
    HttpStats {
        requests: c.requests.load(Ordering::Relaxed),
        retries: c.retries.load(Ordering::Relaxed),
        throttled: c.throttled.load(Ordering::Relaxed),
        waited_ms: c.waited_ms.load(Ordering::Relaxed),
        ambiguous: c.ambiguous.load(Ordering::Relaxed),
    }
}

/// The shared HTTP client of one connector. Clone it freely: clones share the connection
/// pool, the rate limiter, the throttle pause and the counters.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HttpClient({}, {})", self.inner.name, self.inner.base)
    }
}

/// What one attempt produced, before the retry decision.
enum Attempt {
    Answer(Response),
    /// Not sent at all (connection refused, DNS): always safe to retry.
    NotSent(String),
    /// Sent, answer lost (timeout, dropped connection, unreadable body).
    Lost(String),
}

impl HttpClient {
    pub fn builder(name: impl Into<String>, base_url: impl Into<String>) -> HttpClientBuilder {
        HttpClientBuilder {
            name: name.into(),
            base_url: base_url.into(),
            auth: Arc::new(Auth::None),
            rate: None,
            timeout: DEFAULT_TIMEOUT,
            policy: RetryPolicy::default(),
            reset_header: None,
            throttle_hook: None,
            message_hook: None,
            content_type: "application/json",
            accept: "application/json",
            scrubber: Scrubber::default(),
        }
    }

    /// The scrubber of this client's errors and log lines.
    pub fn scrubber(&self) -> &Scrubber {
        &self.inner.scrubber
    }

    /// The name the client was built with (the connector's), for metrics labels.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The counters so far (shared by all clones).
    pub fn stats(&self) -> HttpStats {
        snapshot(&self.inner.counters)
    }

    /// Logs the counters at info level.
    pub fn log_stats(&self) {
        tracing::info!(target: "headcount::http", "{}: {}", self.inner.name, self.stats());
    }

    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// The URL of `req`: the path appended to the base URL, or an absolute URL that must be on
    /// the base URL's origin (a next-link elsewhere would carry our credentials away).
    pub fn url_of(&self, req: &Request) -> Result<Url, HttpError> {
        let base = &self.inner.base;
        let mut url = if req.path.starts_with("http://") || req.path.starts_with("https://") {
            let u = Url::parse(&req.path).map_err(|e| HttpError::Decode {
                what: format!("{} {}", req.method, req.path),
                cause: format!("invalid next-page URL: {e}"),
            })?;
            if u.origin() != base.origin() {
                return Err(HttpError::Decode {
                    what: format!("{} {}", req.method, redact::url(&u)),
                    cause: format!(
                        "the server sent a link to another origin than {}: not followed",
                        base.origin().ascii_serialization()
                    ),
                });
            }
            u
        } else {
            let joined = format!(
                "{}/{}",
                base.as_str().trim_end_matches('/'),
                req.path.trim_start_matches('/')
            );
            // `base` may carry a query (rare); the path goes before it.
            let mut u = base.clone();
            let path_part = joined
                .split_once('?')
                .map(|(p, _)| p.to_string())
                .unwrap_or(joined);
            let parsed = Url::parse(&path_part).map_err(|e| {
                HttpError::Config(format!("cannot build a URL from {:?}: {e}", req.path))
            })?;
            u.set_path(parsed.path());
            u
        };
        if !req.query.is_empty() {
            url.query_pairs_mut().extend_pairs(req.query.iter());
        }
        Ok(url)
    }

    /// `METHOD /path?query` for messages, secrets removed.
    fn describe(&self, method: &Method, url: &Url) -> String {
        let shown = redact::url(url);
        let origin = url.origin().ascii_serialization();
        let rel = shown.strip_prefix(&origin).unwrap_or(&shown);
        format!("{method} {rel}")
    }

    /// How long after [`HttpClient::send`] is called its request may still reach the server
    /// and take effect: the whole time budget plus one more timeout for the last attempt; and
    /// that one timeout alone once nothing retries any more.
    pub fn write_window(&self) -> crate::model::WriteWindow {
        crate::model::WriteWindow {
            total: self.inner.policy.max_total + self.inner.timeout,
            attempt: self.inner.timeout,
        }
    }

    /// Sends `req` with rate limiting, retries and throttle waits; `Ok` only for 2xx answers.
    /// Every error is scrubbed of the run's secrets.
    pub async fn send(&self, req: Request) -> Result<Response, HttpError> {
        self.send_unscrubbed(req)
            .await
            .map_err(|e| e.scrubbed(&self.inner.scrubber))
    }

    async fn send_unscrubbed(&self, req: Request) -> Result<Response, HttpError> {
        let url = self.url_of(&req)?;
        let what = self.describe(&req.method, &url);
        let inner = &self.inner;
        let policy = inner.policy;
        let start = Instant::now();
        let mut attempts = 0u32;
        let mut throttles = 0u32;
        let mut auth_retried = false;
        loop {
            attempts += 1;
            self.wait_turn().await;
            let issued = inner.auth.credential().await?;
            register(&inner.scrubber, &issued.credential);
            bump(&inner.counters.requests, 1);
            let outcome = self.attempt(&req, &url, &what, &issued.credential).await?;
            let elapsed = start.elapsed();
            let retry_in = match outcome {
                Attempt::Answer(resp) if resp.status.is_success() => return Ok(resp),
                // A 401 refused the token before doing anything, so even a create may be
                // resent, once, with a fresh token (it may have expired or been revoked).
                Attempt::Answer(resp)
                    if resp.status == StatusCode::UNAUTHORIZED
                        && !auth_retried
                        && inner.auth.rejected(issued.generation).await =>
                {
                    tracing::debug!(target: "headcount::http", "{what}: 401, retrying once with a fresh credential");
                    auth_retried = true;
                    attempts -= 1;
                    bump(&inner.counters.retries, 1);
                    continue;
                }
                Attempt::Answer(resp) => {
                    let status = resp.status;
                    let throttled = status == StatusCode::TOO_MANY_REQUESTS
                        || inner
                            .throttle_hook
                            .as_ref()
                            .is_some_and(|h| h(status, &resp.headers, &resp.body));
                    let asked = self.asked_wait(&resp.headers);
                    if throttled || (status == StatusCode::SERVICE_UNAVAILABLE && asked.is_some()) {
                        // The server refused without processing: safe even for a create.
                        bump(&inner.counters.throttled, 1);
                        throttles += 1;
                        let (wait, why) = match asked {
                            Some(found) => found,
                            None => (
                                self.backoff(throttles),
                                "no Retry-After; backing off".to_string(),
                            ),
                        };
                        if wait > policy.max_wait {
                            return Err(HttpError::Throttled {
                                what,
                                wait_secs: wait.as_secs(),
                                why: format!(
                                    "{why}, more than the {}s headcount waits",
                                    policy.max_wait.as_secs()
                                ),
                            });
                        }
                        if throttles > MAX_THROTTLED || elapsed + wait > policy.max_total {
                            return Err(HttpError::Throttled {
                                what,
                                wait_secs: wait.as_secs(),
                                why: format!(
                                    "{why}; throttled {throttles} times, giving up after {}s",
                                    elapsed.as_secs()
                                ),
                            });
                        }
                        self.pause_all(wait);
                        tracing::debug!(target: "headcount::http", "{what}: throttled ({status}), waiting {}ms ({why})", wait.as_millis());
                        attempts -= 1; // throttle waits do not use up the error budget
                        bump(&inner.counters.retries, 1);
                        continue;
                    }
                    let error = self.status_error(&what, &resp, attempts);
                    if !status.is_server_error() {
                        return Err(error);
                    }
                    if !req.idempotent {
                        bump(&inner.counters.ambiguous, 1);
                        return Err(HttpError::Ambiguous {
                            what,
                            cause: format!("the server answered {status}"),
                        });
                    }
                    match self.next_backoff(attempts, elapsed) {
                        Some(d) => d,
                        None => return Err(error),
                    }
                }
                Attempt::NotSent(cause) => match self.next_backoff(attempts, elapsed) {
                    Some(d) => d,
                    None => {
                        return Err(HttpError::Transport {
                            what,
                            cause,
                            attempts,
                        });
                    }
                },
                Attempt::Lost(cause) => {
                    if !req.idempotent {
                        bump(&inner.counters.ambiguous, 1);
                        return Err(HttpError::Ambiguous { what, cause });
                    }
                    match self.next_backoff(attempts, elapsed) {
                        Some(d) => d,
                        None => {
                            return Err(HttpError::Transport {
                                what,
                                cause,
                                attempts,
                            });
                        }
                    }
                }
            };
            tracing::debug!(target: "headcount::http", "{what}: retrying in {}ms (attempt {attempts} failed)", retry_in.as_millis());
            bump(&inner.counters.retries, 1);
            bump(&inner.counters.waited_ms, millis(retry_in));
            tokio::time::sleep(retry_in).await;
        }
    }

    /// Sends `req` and decodes the JSON answer.
    pub async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        req: Request,
    ) -> Result<T, HttpError> {
        self.send(req)
            .await?
            .json()
            .map_err(|e| e.scrubbed(&self.inner.scrubber))
    }

    /// Waits for a throttle pause to end and for a token of the rate limiter.
    async fn wait_turn(&self) {
        loop {
            let until = self
                .inner
                .paused_until
                .lock()
                .map(|g| *g)
                .unwrap_or_default();
            match until {
                Some(t) if t > Instant::now() => {
                    let d = t - Instant::now();
                    bump(&self.inner.counters.waited_ms, millis(d));
                    tokio::time::sleep_until(t).await;
                }
                _ => break,
            }
        }
        if let Some(limiter) = &self.inner.limiter {
            limiter.until_ready().await;
        }
    }

    fn pause_all(&self, wait: Duration) {
        let until = Instant::now() + wait;
        if let Ok(mut g) = self.inner.paused_until.lock()
            && g.is_none_or(|t| t < until)
        {
            *g = Some(until);
        }
    }

    /// The backoff before attempt `attempts + 1`, or `None` when the budget is spent.
    fn next_backoff(&self, attempts: u32, elapsed: Duration) -> Option<Duration> {
        let policy = self.inner.policy;
        if attempts >= policy.max_attempts {
            return None;
        }
        let d = self.backoff(attempts);
        (elapsed + d <= policy.max_total).then_some(d)
    }

    /// Exponential backoff with full jitter: uniform in `[0, min(cap, base * 2^(n-1))]`, so
    /// that clients retrying together do not hit the server together again. Hand-rolled on
    /// purpose: backon's jitter adds up to one step on top (`[d, 2d)`), not full jitter, and the
    /// retry loop's other decisions (throttle waits, ambiguous writes, the time budget) are ours.
    fn backoff(&self, n: u32) -> Duration {
        let policy = self.inner.policy;
        let exp = policy
            .backoff_base
            .saturating_mul(1u32 << n.saturating_sub(1).min(20));
        let ceiling = exp.min(policy.backoff_cap);
        let r = (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0;
        ceiling.mul_f64(r)
    }

    /// The wait the server asked for: `Retry-After` (seconds or HTTP-date), else the vendor's
    /// reset header (seconds, or a Unix time when it is that large).
    fn asked_wait(&self, headers: &HeaderMap) -> Option<(Duration, String)> {
        let text = |v: &HeaderValue| v.to_str().ok().map(str::trim).map(str::to_string);
        if let Some(v) = headers.get(RETRY_AFTER).and_then(text)
            && let Some(d) = parse_retry_after(&v, SystemTime::now())
        {
            return Some((d, format!("Retry-After: {v}")));
        }
        let name = self.inner.reset_header.as_ref()?;
        let v = headers.get(name).and_then(text)?;
        parse_reset(&v, SystemTime::now()).map(|d| (d, format!("{name}: {v}")))
    }

    fn status_error(&self, what: &str, resp: &Response, attempts: u32) -> HttpError {
        let message = match &self.inner.message_hook {
            Some(hook) => hook(&resp.body),
            None => None,
        }
        .or_else(|| vendor_message(&resp.body));
        HttpError::Status {
            what: what.to_string(),
            status: resp.status.as_u16(),
            message,
            body: redact::truncate(&String::from_utf8_lossy(&resp.body), MAX_ERROR_BODY),
            attempts,
        }
    }

    /// One try: build, log, send, read the body, log.
    async fn attempt(
        &self,
        req: &Request,
        url: &Url,
        what: &str,
        credential: &Credential,
    ) -> Result<Attempt, HttpError> {
        let inner = &self.inner;
        let mut url = url.clone();
        if let Credential::Query { param, value } = credential {
            url.query_pairs_mut()
                .append_pair(param, value.expose_secret());
        }
        let mut rb = inner
            .client
            .request(req.method.clone(), url)
            .header(ACCEPT, inner.accept);
        rb = match credential {
            Credential::Bearer(t) => rb.bearer_auth(t.expose_secret()),
            Credential::Basic { user, password } => {
                rb.basic_auth(user, Some(password.expose_secret()))
            }
            Credential::Scheme { scheme, token } => rb.header(
                reqwest::header::AUTHORIZATION,
                format!("{scheme} {}", token.expose_secret()),
            ),
            Credential::Query { .. } | Credential::None => rb,
        };
        for (name, value) in &req.headers {
            rb = rb.header(name, value);
        }
        let body_bytes = match (&req.form, &req.body) {
            (Some(form), _) => {
                let bytes = form.expose_secret().as_bytes().to_vec();
                rb = rb
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(bytes.clone());
                Some(bytes)
            }
            (None, Some(b)) => {
                let bytes = serde_json::to_vec(b).map_err(|e| HttpError::Decode {
                    what: what.to_string(),
                    cause: format!("cannot encode the request body: {e}"),
                })?;
                rb = rb
                    .header(CONTENT_TYPE, inner.content_type)
                    .body(bytes.clone());
                Some(bytes)
            }
            (None, None) => None,
        };
        let built = rb.build().map_err(|e| {
            HttpError::Config(format!("{what}: cannot build the request: {}", cause(&e)))
        })?;
        if tracing::enabled!(target: "headcount::http", tracing::Level::DEBUG) {
            let line = format!(
                "→ {} {} [{}] {}",
                built.method(),
                redact::url(built.url()),
                redact::headers(built.headers()),
                body_bytes.as_deref().map(redact::body).unwrap_or_default()
            );
            tracing::debug!(target: "headcount::http", "{}", inner.scrubber.scrub(&line));
        }
        let started = Instant::now();
        let resp = match inner.client.execute(built).await {
            Ok(r) => r,
            Err(e) => {
                let c = cause(&e);
                tracing::debug!(target: "headcount::http", "✗ {what}: {}", inner.scrubber.scrub(&c));
                // A failure while connecting (refused, DNS, connect timeout) means nothing
                // was sent, so even a create may be resent.
                return Ok(if e.is_connect() || is_refused(&e) {
                    Attempt::NotSent(c)
                } else if e.is_timeout() {
                    Attempt::Lost(format!(
                        "no answer within the timeout ({:?})",
                        inner.timeout
                    ))
                } else {
                    Attempt::Lost(c)
                });
            }
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = match resp.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => {
                let c = format!("the answer ({status}) was cut off: {}", cause(&e));
                tracing::debug!(target: "headcount::http", "✗ {what}: {}", inner.scrubber.scrub(&c));
                return Ok(Attempt::Lost(c));
            }
        };
        if tracing::enabled!(target: "headcount::http", tracing::Level::DEBUG) {
            let line = format!(
                "← {status} {what} in {}ms [{}] {}",
                started.elapsed().as_millis(),
                redact::headers(&headers),
                redact::body(&body)
            );
            tracing::debug!(target: "headcount::http", "{}", inner.scrubber.scrub(&line));
        }
        Ok(Attempt::Answer(Response {
            status,
            headers,
            body,
            what: what.to_string(),
        }))
    }
}

/// Registers what a credential puts on the wire (a refreshed token is new each time).
fn register(s: &Scrubber, credential: &Credential) {
    match credential {
        Credential::None => {}
        Credential::Bearer(t) => s.register(t.expose_secret()),
        Credential::Basic { user, password } => s.register_basic(user, password.expose_secret()),
        Credential::Query { value, .. } => s.register(value.expose_secret()),
        Credential::Scheme { token, .. } => s.register(token.expose_secret()),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A connection refused is "not sent" even when reqwest does not flag it as a connect error.
fn is_refused(e: &reqwest::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        src = s.source();
    }
    false
}

/// The error and its causes on one line, without the URL (it may hold a query secret).
fn cause(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    let top = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else if e.is_body() || e.is_decode() {
        "error reading the answer".to_string()
    } else if e.is_request() {
        "error sending the request".to_string()
    } else {
        "HTTP error".to_string()
    };
    parts.push(top);
    while let Some(s) = src {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        src = s.source();
    }
    parts.join(": ")
}

/// `Retry-After` as delay-seconds or an HTTP-date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::try_from_secs_f64(secs).ok())
            .flatten();
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(v, &format)
        .ok()?
        .assume_utc();
    let at = SystemTime::from(at);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A vendor reset header: seconds to wait, or a Unix time in seconds when the number is that
/// large (vendors disagree on which).
pub fn parse_reset(value: &str, now: SystemTime) -> Option<Duration> {
    let n: f64 = value.trim().parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    if n > 1_000_000_000.0 {
        let at = SystemTime::UNIX_EPOCH + Duration::try_from_secs_f64(n).ok()?;
        return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
    }
    Duration::try_from_secs_f64(n).ok()
}

/// The human message of common vendor error bodies: SCIM `detail`, `error.message` (Google,
/// Graph), `error`/`description` (Zendesk), `message`, `error_description` (OAuth).
pub fn vendor_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let s = |v: &Value| v.as_str().map(str::to_string).filter(|s| !s.is_empty());
    let mut parts = Vec::new();
    if let Some(t) = v.get("scimType").and_then(s) {
        parts.push(t);
    }
    let main = v
        .get("detail")
        .and_then(s)
        .or_else(|| v.pointer("/error/message").and_then(s))
        .or_else(|| v.get("error_description").and_then(s))
        .or_else(|| v.get("description").and_then(s))
        .or_else(|| v.get("message").and_then(s))
        .or_else(|| v.get("error").and_then(s))
        .or_else(|| v.get("errors").map(|e| redact::json(e).to_string()));
    parts.extend(main);
    if let Some(details) = v.get("details").filter(|d| !d.is_null()) {
        parts.push(redact::truncate(&redact::json(details).to_string(), 500));
    }
    (!parts.is_empty()).then(|| parts.join(": "))
}

/// An id as one URL path segment: RFC 3986 unreserved characters kept, every other byte
/// percent-encoded (a space is `%20`, never the `+` of form encoding, which a path reads as a
/// plus sign). Every connector that puts a vendor id or name in a path uses this.
pub fn path_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
