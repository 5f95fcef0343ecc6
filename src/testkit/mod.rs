//! Test-only kit (`cfg(test)` or the dev-only `testkit` feature; never in the shipped binary):
//! vendor emulators on axum bound to 127.0.0.1:0, a generic fault layer with a request log that
//! every emulator wears ([`fault`]), and the connector compliance suite ([`compliance`]).
//!
//! An emulator is an axum `Router` of the vendor's API; [`serve_with_faults`] wraps it in the
//! [`fault::FaultLayer`] so that a test can count and assert the exact requests, and script
//! failures per request matcher and per occurrence. New vendors (Mojo, Zendesk, Graph, Google)
//! add a module here next to [`scim`].
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod capture;
pub mod compliance;
pub mod fault;
pub mod google;
pub mod graph;
pub mod mojo;
pub mod scim;
pub mod zendesk;

use std::time::Duration;

pub use fault::{Fault, Faults, Logged, Match, RequestLog};

use crate::http::{HttpClient, HttpClientBuilder, RetryPolicy};

/// Serves `app` on an ephemeral 127.0.0.1 port; returns `http://127.0.0.1:PORT`. The server
/// stops with the test's runtime.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// A served emulator: its origin, the log of every request it got, and its fault script.
#[derive(Clone)]
pub struct Served {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub origin: String,
    pub log: RequestLog,
    pub faults: Faults,
}

/// Serves `app` behind a fresh [`fault::FaultLayer`] (request log + scripted faults).
pub async fn serve_with_faults(app: axum::Router) -> Served {
    let log = RequestLog::default();
    let faults = Faults::default();
    let app = fault::FaultLayer::new(log.clone(), faults.clone()).wrap(app);
    Served {
        origin: serve(app).await,
        log,
        faults,
    }
}

/// Writes one line straight to the process's stderr, past libtest's output capture, so that
/// an N/A or a skip is seen in a plain `cargo test` run, not only with `--nocapture`.
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Retry bounds small enough for tests: backoff of a few ms, at most 4 attempts.
pub fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        max_total: Duration::from_secs(20),
        max_wait: Duration::from_secs(5),
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(20),
    }
}

/// A client builder with the fast policy, no rate limit and a 2 s timeout.
pub fn builder(base: &str) -> HttpClientBuilder {
    HttpClient::builder("test", base)
        .unlimited()
        .retry_policy(fast_policy())
        .timeout_duration(Duration::from_secs(2))
}
