//! `apply`: plan + confirm + apply, or apply a saved plan exactly (refusing a stale one). The
//! protocol itself is [`headcount::session`]; this file parses, confirms, prints and maps the
//! outcome to an exit code.

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use headcount::apply::{ApplyReport, OpEvent};
use headcount::audit::AuditError;
use headcount::connectors::ApplyOptions;
use headcount::engine::Engine;
use headcount::plan::PlanDocument;
use headcount::render;
use headcount::session::{ApplyOutcome, Pending, Readiness, Session, SessionObserver, check_saved};
use headcount::util;

use super::args::{ApplyArgs, Cli};
use super::plan_cmd::read_plan;
use super::{EXIT_ERROR, EXIT_OK, Ui};

pub(crate) async fn apply(cli: &Cli, args: &ApplyArgs, ui: &Ui) -> anyhow::Result<u8> {
    if args.planfile.is_some() && !args.syncs.is_empty() {
        anyhow::bail!(
            "--sync cannot be combined with a plan file: the plan already says which syncs it covers"
        );
    }
    let mut engine = Engine::open_with(&cli.config, ui.color_stderr, super::out::scrubber())?;
    engine.full_read = args.full;
    for w in &engine.warnings {
        ui.note(format!("warning: {w}"));
    }
    // Fail fast before touching anything when no one can confirm.
    if args.planfile.is_none() && !args.auto_approve && args.json {
        anyhow::bail!(
            "--json needs --auto-approve (or a plan file): a plan cannot be confirmed while streaming JSON"
        );
    }
    if args.planfile.is_none() && !args.auto_approve && !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "stdin is not a terminal, so the plan cannot be confirmed: review it with `headcount plan` and re-run with --auto-approve, or apply a saved plan file"
        );
    }

    // A plan file that cannot be read, or that can never be applied with this config, is
    // refused before the lock is taken: a refusal writes nothing, not even `.headcount/`.
    let saved = match &args.planfile {
        Some(path) => {
            let doc = read_plan(path)?;
            check_saved(&engine, &doc, &path.display().to_string())?;
            Some(doc)
        }
        None => None,
    };

    let mut session = Session::open(&engine, engine.state.as_ref(), "apply").await?;
    let planned = match &args.planfile {
        None => {
            let shown = PlanPrinter {
                stdout: StdoutWarning::default(),
                json: args.json,
                color: ui.color,
            };
            let planned = session
                .plan(&args.syncs, args.allow_mass_removal, &shown)
                .await?;
            match planned.readiness() {
                Readiness::Blocked => {
                    ui.note("The plan has errors (above); nothing was applied.");
                    return Ok(EXIT_ERROR);
                }
                Readiness::NoChanges => {
                    if args.json {
                        emit_json(&empty_summary())?;
                    }
                    return Ok(EXIT_OK);
                }
                Readiness::Ready => {}
            }
            if !args.auto_approve && !confirm()? {
                outln!("Apply cancelled.");
                return Ok(EXIT_ERROR);
            }
            planned
        }
        Some(path) => {
            let Some(doc) = saved else {
                anyhow::bail!("the plan file {} was not read", path.display());
            };
            let planned = session
                .load_saved(doc, &path.display().to_string(), args.allow_mass_removal)
                .await?;
            print_pending(&planned.pending, args.json)?;
            if planned.doc.total_changes() == 0 {
                if args.json {
                    emit_json(&empty_summary())?;
                } else {
                    outln!("No changes in the plan. Nothing to apply.");
                }
                return Ok(EXIT_OK);
            }
            planned
        }
    };

    let options = ApplyOptions {
        parallelism: usize::from(args.parallelism),
        cancel: Arc::new(AtomicBool::new(false)),
        gate: None,
    };
    let signals = tokio::spawn(watch_signals(options.cancel.clone(), ui.quiet));
    let events = ApplyPrinter {
        stdout: StdoutWarning::default(),
        json: args.json,
        progress: Progress::start(planned.doc.total_changes(), ui.progress && !args.json),
    };
    let outcome = session.apply(planned, &options, &events).await;
    signals.abort();
    events.progress.finish();
    let outcome = outcome?;
    print_outcome(&outcome, args.json, ui)?;
    Ok(if outcome.complete() {
        EXIT_OK
    } else {
        EXIT_ERROR
    })
}

/// Shows the plan as soon as it is made: text, or a `plan` event line with `--json`.
struct PlanPrinter {
    json: bool,
    color: bool,
    stdout: StdoutWarning,
}

impl SessionObserver for PlanPrinter {
    fn plan_ready(&self, doc: &PlanDocument) {
        let written = if self.json {
            emit_json(&serde_json::json!({"type": "plan", "plan": doc}))
        } else {
            super::out::stdout(format_args!(
                "{}",
                render::text(doc, &render::TextOptions { color: self.color })
            ))
        };
        self.stdout.check(written);
    }
}

/// A write to stdout that failed for another reason than a closed pipe (a full disk behind a
/// redirection): said once on stderr, and the apply goes on.
#[derive(Default)]
struct StdoutWarning(AtomicBool);

impl StdoutWarning {
    fn check(&self, written: std::io::Result<()>) {
        if let Err(e) = written
            && !self.0.swap(true, Ordering::SeqCst)
        {
            errln!("warning: {e}");
        }
    }
}

/// Per-operation output while applying: `operation` event lines with `--json`, the progress
/// bar otherwise.
struct ApplyPrinter {
    json: bool,
    progress: Progress,
    stdout: StdoutWarning,
}

impl SessionObserver for ApplyPrinter {
    fn operation(&self, event: &OpEvent) {
        if self.json {
            self.stdout.check(emit_json(
                &serde_json::json!({"type": "operation", "event": event}),
            ));
        }
        self.progress.inc();
    }

    fn audit_failed(&self, error: &AuditError) {
        errln!("warning: {error}");
    }
}

/// Changes the config produces now that the saved plan lacks: said, never applied. A `pending`
/// event with `--json`.
fn print_pending(pending: &[Pending], json: bool) -> std::io::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    if json {
        return emit_json(&serde_json::json!({"type": "pending", "changes": pending}));
    }
    outln!(
        "{} change(s) pending that the saved plan does not hold (made since it was reviewed); they are not applied now, run `headcount plan` to review them:",
        pending.len()
    );
    for p in pending {
        outln!(
            "  {} {} {}{}",
            p.sync,
            p.action,
            p.identity,
            p.target_id
                .as_ref()
                .map(|id| format!(" (id {id})"))
                .unwrap_or_default()
        );
    }
    outln!();
    Ok(())
}

/// The `summary` event of an apply with nothing to do.
fn empty_summary() -> serde_json::Value {
    serde_json::json!({"type": "summary", "applied": 0, "failed": 0, "interrupted": false, "failures": []})
}

/// The end of an apply: HTTP figures and the summary (events with `--json`, text otherwise).
fn print_outcome(outcome: &ApplyOutcome, json: bool, ui: &Ui) -> std::io::Result<()> {
    let report = &outcome.report;
    if json {
        for (name, stats) in &outcome.http {
            emit_json(&serde_json::json!({"type": "http", "target": name, "stats": stats}))?;
        }
        emit_json(&serde_json::json!({
            "type": "summary",
            "applied": report.succeeded(),
            "failed": report.failures.len(),
            "interrupted": outcome.interrupted,
            "failures": &report.failures,
        }))?;
    } else {
        print_report(outcome.total_changes, report, ui)?;
        for (name, stats) in &outcome.http {
            ui.note(format!("target `{name}`: {stats}"));
        }
    }
    if outcome.interrupted {
        ui.note("Interrupted: in-flight operations finished and the state was saved; run `headcount apply` again to finish.");
    }
    Ok(())
}

/// Prints one JSON object on its own line (the `--json` event stream).
fn emit_json(value: &serde_json::Value) -> std::io::Result<()> {
    super::out::stdout(format_args!("{value}\n"))
}

/// Sets `cancel` on the first SIGINT or SIGTERM, so that no new operation starts; those in
/// flight finish and the state is saved. The handler stays installed, so later signals do not
/// cut that short (SIGKILL does; the journal and create intents make even that safe).
async fn watch_signals(cancel: Arc<AtomicBool>, quiet: bool) {
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
    cancel.store(true, Ordering::SeqCst);
    if !quiet {
        errln!("\nInterrupt received: finishing the operations in flight and saving the state...");
    }
}

/// A progress bar on stderr, shown only on a terminal and only for applies that last more than
/// a couple of seconds.
struct Progress {
    bar: indicatif::ProgressBar,
    reveal: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(total: usize, enabled: bool) -> Progress {
        let bar = indicatif::ProgressBar::hidden();
        bar.set_length(total as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} changes, {elapsed} elapsed, ~{eta} left",
        ) {
            bar.set_style(style);
        }
        let reveal = enabled.then(|| {
            let bar = bar.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                if !bar.is_finished() {
                    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                }
            })
        });
        Progress { bar, reveal }
    }

    fn inc(&self) {
        self.bar.inc(1);
    }

    fn finish(&self) {
        if let Some(r) = &self.reveal {
            r.abort();
        }
        self.bar.finish_and_clear();
    }
}

fn confirm() -> anyhow::Result<bool> {
    out!(
        "\nDo you want to apply these changes?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: "
    );
    super::out::flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}

fn print_report(total: usize, report: &ApplyReport, ui: &Ui) -> std::io::Result<()> {
    for (sync, counts) in &report.applied {
        let parts: Vec<String> = counts
            .iter()
            .map(|(a, n)| format!("{n} {}", past(*a)))
            .collect();
        outln!("{sync}: {}", parts.join(", "));
    }
    if !report.failures.is_empty() {
        outln!("\n{} operation(s) failed:", report.failures.len());
        for f in &report.failures {
            // Identities, ids and vendor messages are data: escaped.
            outln!(
                "  {} {} {}{}: {}",
                f.sync,
                f.action,
                util::printable(&f.identity),
                f.target_id
                    .as_ref()
                    .map(|id| format!(" (id {})", util::printable(id)))
                    .unwrap_or_default(),
                util::printable(&f.message)
            );
        }
        ui.note("The operations that succeeded are recorded in the state; run `headcount plan` to see what is left.");
    }
    outln!(
        "\nApply complete! {} of {total} change(s) applied, {} failed.",
        report.succeeded(),
        report.failures.len()
    );
    Ok(())
}

fn past(a: headcount::plan::Action) -> &'static str {
    use headcount::plan::Action::*;
    match a {
        Create => "created",
        Update => "updated",
        Deactivate => "deactivated",
        Reactivate => "reactivated",
        Delete => "deleted",
        Adopt => "adopted",
        Forget => "forgotten",
    }
}
