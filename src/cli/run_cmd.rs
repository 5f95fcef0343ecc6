//! `run`: the reconcile loop ([`headcount::reconcile`]). This file opens the engine, the
//! webhook and the listener, turns SIGINT/SIGTERM into a stop, prints one line per round and
//! maps the end to an exit code.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use headcount::engine::Engine;
use headcount::reconcile::{
    self, LoopObserver, LoopOptions, Metrics, Notifier, NotifyError, RoundReport, Schedule, Stop,
};
use headcount::session::SessionObserver;
use headcount::util;

use super::args::{Cli, RunArgs};
use super::{EXIT_ERROR, EXIT_OK, Ui};

/// `--once` without `--interval`: the figure `/healthz` uses for "no round yet".
const ONCE_INTERVAL: Duration = Duration::from_secs(3600);

pub(crate) async fn run(cli: &Cli, args: &RunArgs, ui: &Ui) -> anyhow::Result<u8> {
    let engine = Engine::open_with(&cli.config, ui.color_stderr, super::out::scrubber())?;
    for w in &engine.warnings {
        ui.note(format!("warning: {w}"));
    }
    let notifier = match &engine.loaded.config.notifications {
        Some(n) => Some(Notifier::new(
            &n.webhook.url,
            &engine.loaded.base_dir,
            engine.scrubber(),
        )?),
        None => None,
    };
    let interval = args.interval.unwrap_or(ONCE_INTERVAL);
    let metrics = Arc::new(Metrics::new(interval));
    let stop = Stop::default();

    let server = match args.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--listen)"))?;
            let bound = listener.local_addr()?;
            // Always said, even with --quiet: a port 0 listener is found through this line.
            errln!("headcount run: listening on http://{bound} (/healthz, /metrics)");
            let s = stop.clone();
            Some(tokio::spawn(reconcile::server::serve(
                listener,
                metrics.clone(),
                async move { s.stopped().await },
            )))
        }
        None => None,
    };
    let signals = tokio::spawn(watch_signals(stop.clone(), ui.quiet));

    let options = LoopOptions {
        schedule: Schedule {
            interval,
            jitter_pct: args.jitter,
        },
        once: args.once,
        parallelism: usize::from(args.parallelism),
    };
    let printer = RoundPrinter { quiet: ui.quiet };
    let last = reconcile::run(
        &engine,
        &options,
        &stop,
        &metrics,
        notifier.as_ref(),
        &printer,
    )
    .await;
    signals.abort();
    stop.stop();
    if let Some(server) = server {
        match server.await {
            Ok(Err(e)) => errln!("warning: the /healthz and /metrics listener failed: {e}"),
            Err(e) => errln!("warning: the /healthz and /metrics listener stopped: {e}"),
            Ok(Ok(())) => {}
        }
    }
    if last.interrupted {
        ui.note("Stopped: operations in flight finished and the state was saved.");
    }
    Ok(
        if !args.once || (!last.failed() && last.guard_blocked.is_empty()) {
            EXIT_OK
        } else {
            EXIT_ERROR
        },
    )
}

/// One line per round on stdout, the details of what went wrong on stderr.
struct RoundPrinter {
    quiet: bool,
}

impl SessionObserver for RoundPrinter {}

impl LoopObserver for RoundPrinter {
    fn round_done(&self, r: &RoundReport, next: Option<Duration>) {
        let when = next
            .map(|d| format!("; next round in {}s", d.as_secs()))
            .unwrap_or_default();
        let result = if r.failed() { "failed" } else { "ok" };
        // A stdout that cannot be written to must not stop the loop: the line is dropped.
        let _ = super::out::stdout(format_args!(
            "round {result} in {:.1}s: {} change(s) planned, {} applied, {} failed, {} sync(s) stopped by the guard{when}\n",
            r.duration.as_secs_f64(),
            r.drift(),
            r.applied.succeeded(),
            r.failures().len(),
            r.guard_blocked.len()
        ));
        if let Some(e) = &r.error {
            errln!("error: {e}");
        }
        for (sync, errors) in r.failed_syncs.iter().chain(&r.guard_blocked) {
            for e in errors {
                errln!("error: sync `{sync}`: {}", util::printable(e));
            }
        }
        for f in r.failures() {
            errln!(
                "error: {} {} {}: {}",
                f.sync,
                f.action,
                util::printable(&f.identity),
                util::printable(&f.message)
            );
        }
        if !self.quiet {
            for (name, stats) in &r.http {
                errln!("target `{name}`: {stats}");
            }
        }
    }

    fn notify_failed(&self, e: &NotifyError) {
        errln!("warning: {e}");
    }
}

/// Stops the loop on the first SIGINT or SIGTERM: no new operation or round starts; those in
/// flight finish and the state is saved.
async fn watch_signals(stop: Stop, quiet: bool) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
    }
    stop.stop();
    if !quiet {
        errln!("Stop asked: finishing the operations in flight and saving the state...");
    }
}
