//! One cached access token per provider, refreshed shortly before it expires. The slot's lock
//! is held while a token is fetched, so concurrent requests wait for that one fetch instead of
//! each asking the token endpoint (no thundering herd).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secrecy::SecretString;
use tokio::time::Instant;

use super::AuthError;

/// Refresh this long before the token expires, so a request never leaves with a token that
/// dies in flight.
pub(crate) const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// A token as the endpoint gave it.
pub(crate) struct Token {
    pub access_token: SecretString,
    /// `expires_in`, as a duration from when the answer arrived.
    pub lifetime: Duration,
}

struct Cached {
    token: SecretString,
    refresh_at: Instant,
    generation: u64,
}

#[derive(Default)]
struct Slot {
    cached: Option<Cached>,
    /// Fetches finished so far, and the error of the last one when it failed: callers that
    /// waited for a failing fetch get its error instead of each trying again.
    fetches: u64,
    last_error: Option<AuthError>,
}

#[derive(Default)]
pub(crate) struct TokenCache {
    slot: tokio::sync::Mutex<Slot>,
    /// Mirrors `Slot::fetches`, readable without the lock.
    fetches: AtomicU64,
    /// The newest generation the API refused with a 401.
    rejected: AtomicU64,
    generations: AtomicU64,
}

impl TokenCache {
    /// The cached token, or a fresh one from `fetch` when there is none, it is due for refresh,
    /// or the API refused it.
    pub(crate) async fn get<F, Fut>(&self, fetch: F) -> Result<(SecretString, u64), AuthError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token, AuthError>>,
    {
        let seen = self.fetches.load(Ordering::SeqCst);
        let mut slot = self.slot.lock().await;
        if let Some(c) = &slot.cached
            && Instant::now() < c.refresh_at
            && c.generation > self.rejected.load(Ordering::SeqCst)
        {
            return Ok((c.token.clone(), c.generation));
        }
        if slot.fetches != seen
            && let Some(e) = &slot.last_error
        {
            return Err(e.clone());
        }
        let result = fetch().await;
        slot.fetches += 1;
        self.fetches.store(slot.fetches, Ordering::SeqCst);
        match result {
            Ok(t) => {
                let generation = self.generations.fetch_add(1, Ordering::SeqCst) + 1;
                slot.last_error = None;
                slot.cached = Some(Cached {
                    token: t.access_token.clone(),
                    refresh_at: Instant::now() + refresh_after(t.lifetime),
                    generation,
                });
                Ok((t.access_token, generation))
            }
            Err(e) => {
                slot.cached = None;
                slot.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// The API refused the token of `generation`: the next `get` fetches a new one.
    pub(crate) fn reject(&self, generation: u64) {
        self.rejected.fetch_max(generation, Ordering::SeqCst);
    }
}

/// When to refresh a token that lives `lifetime`: [`REFRESH_MARGIN`] before it expires, or
/// half-way for tokens shorter than two margins.
pub(crate) fn refresh_after(lifetime: Duration) -> Duration {
    lifetime - REFRESH_MARGIN.min(lifetime / 2)
}
