//! Test helpers: serve an axum router on 127.0.0.1 and build clients with short bounds.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::{HttpClient, HttpClientBuilder, RetryPolicy};

/// Serves `app` on an ephemeral 127.0.0.1 port; returns `http://127.0.0.1:PORT`. The server
/// stops with the test's runtime.
pub(crate) async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// Retry bounds small enough for tests: backoff of a few ms, 1 s per request.
pub(crate) fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        max_total: Duration::from_secs(20),
        max_wait: Duration::from_secs(5),
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(20),
    }
}

/// A client builder with the fast policy, no rate limit and a 2 s timeout.
pub(crate) fn builder(base: &str) -> HttpClientBuilder {
    HttpClient::builder("test", base)
        .unlimited()
        .retry_policy(fast_policy())
        .timeout_duration(Duration::from_secs(2))
}
