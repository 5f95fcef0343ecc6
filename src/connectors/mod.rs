//! Connectors: sources that read people and targets that keep accounts, one folder per vendor.
//! They know nothing of plans: a source yields records, a target lists accounts and carries
//! out operations. `registry.rs` lists the kinds; `spec.rs` says what each kind provides.

pub mod csv;
pub mod entra;
mod error;
pub mod google;
pub mod ldap;
pub mod mojo;
pub mod registry;
pub mod request_tracker;
pub mod scim;
pub mod spec;
pub mod zendesk;

use std::collections::BTreeMap;

use async_trait::async_trait;

pub use crate::model::{
    ApplyOptions, ConnectorError, LiveAccount, OpResult, Record, SourceRecord, TargetOp,
    WriteWindow,
};
pub use registry::{SourceConfig, SourceKind, TargetConfig, TargetKind};
pub use spec::{BuildContext, ClientPool};

/// Runs `run(i, op)` for every operation with at most `opts.parallelism` in flight, reporting
/// each outcome through `done` as soon as it is known. Each operation passes
/// [`ApplyOptions::before_send`] right before it is sent. Once cancelled, operations not yet
/// started are reported as [`ConnectorError::Cancelled`]. Targets with one request per change
/// use this; targets with batch semantics (files, bulk jobs) do their own.
pub async fn for_each_op<'a, F, Fut>(
    ops: &'a [TargetOp],
    opts: &ApplyOptions,
    run: F,
    done: &(dyn Fn(usize, OpResult) + Send + Sync),
) where
    F: Fn(usize, &'a TargetOp) -> Fut,
    Fut: std::future::Future<Output = OpResult>,
{
    use futures::StreamExt;
    use futures::stream::FuturesUnordered;
    let limit = opts.parallelism.max(1);
    let mut in_flight = FuturesUnordered::new();
    let mut next = 0;
    loop {
        while in_flight.len() < limit && next < ops.len() {
            let i = next;
            next += 1;
            if opts.cancelled() {
                done(i, Err(ConnectorError::Cancelled));
                continue;
            }
            // Futures are lazy: nothing is sent before the gate (the create's intent) passed.
            let fut = run(i, &ops[i]);
            in_flight.push(async move {
                match opts.before_send(i).await {
                    Ok(()) => (i, fut.await),
                    Err(e) => (i, Err(e)),
                }
            });
        }
        match in_flight.next().await {
            Some((i, result)) => done(i, result),
            None => break,
        }
    }
}

/// Reads people.
#[async_trait]
pub trait Source: Send + Sync {
    /// Every record, all pages. An error means the read is unusable (never "zero records").
    async fn read(&self) -> Result<Vec<SourceRecord>, ConnectorError>;

    /// A cheap read that proves endpoint, credentials and permissions (`validate --online`):
    /// the first page and whatever else the read needs (group lookups), returning the records
    /// of that page. Never updates an incremental cursor. The default reads everything.
    async fn probe(&self) -> Result<Vec<SourceRecord>, ConnectorError> {
        self.read().await
    }
}

/// Keeps accounts.
#[async_trait]
pub trait Target: Send + Sync {
    /// Every account, all pages.
    async fn list(&self) -> Result<Vec<LiveAccount>, ConnectorError>;

    /// Carries out `ops`, calling `done(i, result)` for `ops[i]` as soon as its outcome is known
    /// (the apply engine journals each success right away). An `Err` return means the batch as
    /// a whole failed before any operation took effect.
    async fn apply(
        &self,
        ops: &[TargetOp],
        opts: &ApplyOptions,
        done: &(dyn Fn(usize, OpResult) + Send + Sync),
    ) -> Result<(), ConnectorError>;

    /// Accounts that may carry this identity (field → value as the plan normalised it): a
    /// superset the caller narrows down exactly. Used after a kill, to learn whether a create
    /// that was in flight took effect. The default lists everything; a target with a search
    /// (SCIM's `filter`) asks for less.
    async fn find(
        &self,
        identity: &BTreeMap<String, String>,
    ) -> Result<Vec<LiveAccount>, ConnectorError> {
        let _ = identity;
        self.list().await
    }

    /// How long after a write is handed over it may still take effect in the target. Until
    /// then, an account that cannot be found may still appear. Zero for targets whose writes
    /// end with the process (local files).
    fn write_window(&self) -> WriteWindow {
        WriteWindow::default()
    }

    /// Request figures of HTTP targets (requests, retries, throttle waits), for the apply
    /// summary; `None` for targets that do no HTTP.
    fn http_stats(&self) -> Option<crate::http::HttpStats> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn for_each_op_bounds_concurrency_and_reports_every_op() {
        let ops: Vec<TargetOp> = (0..20)
            .map(|i| TargetOp::Delete { id: i.to_string() })
            .collect();
        let now = AtomicUsize::new(0);
        let max = AtomicUsize::new(0);
        let seen = Mutex::new(Vec::new());
        let opts = ApplyOptions {
            parallelism: 3,
            ..ApplyOptions::default()
        };
        for_each_op(
            &ops,
            &opts,
            |i, _| {
                let (now, max) = (&now, &max);
                async move {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(n, Ordering::SeqCst);
                    for _ in 0..3 {
                        tokio::task::yield_now().await;
                    }
                    now.fetch_sub(1, Ordering::SeqCst);
                    Ok(i.to_string())
                }
            },
            &|i, r| seen.lock().unwrap().push((i, r.is_ok())),
        )
        .await;
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, (0..20).map(|i| (i, true)).collect::<Vec<_>>());
        assert_eq!(max.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn for_each_op_starts_nothing_once_cancelled() {
        let ops: Vec<TargetOp> = (0..5)
            .map(|i| TargetOp::Delete { id: i.to_string() })
            .collect();
        let opts = ApplyOptions::default();
        opts.cancel.store(true, Ordering::SeqCst);
        let seen = Mutex::new(Vec::new());
        for_each_op(
            &ops,
            &opts,
            |_, _| async { Ok("x".to_string()) },
            &|i, r| {
                seen.lock()
                    .unwrap()
                    .push((i, matches!(r, Err(ConnectorError::Cancelled))))
            },
        )
        .await;
        assert_eq!(seen.into_inner().unwrap().len(), 5);
    }
}
