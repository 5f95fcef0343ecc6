//! `apply`: plan + confirm + apply, or apply a saved plan exactly (refusing a stale one).

use std::io::{BufRead, IsTerminal};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use headcount::apply::{self, ApplyInput, ApplyReport, OpEvent};
use headcount::audit::AuditLog;
use headcount::connector::ApplyOptions;
use headcount::engine::{Engine, Snapshot};
use headcount::plan::PlanDocument;
use headcount::render;
use headcount::state::{State, StateOp};

use super::args::{ApplyArgs, Cli};
use super::plan_cmd::read_plan;
use super::{EXIT_ERROR, EXIT_OK, Ui};

pub(crate) async fn apply(cli: &Cli, args: &ApplyArgs, ui: &Ui) -> anyhow::Result<u8> {
    if args.planfile.is_some() && !args.syncs.is_empty() {
        anyhow::bail!(
            "--sync cannot be combined with a plan file: the plan already says which syncs it covers"
        );
    }
    let engine = Engine::open(&cli.config, ui.color_stderr)?;
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

    let guard = engine.store.lock("apply")?;
    let state = engine.store.recover(&guard)?;

    let (doc, secrets, live, conns) = match &args.planfile {
        None => {
            let headcount::engine::Planned {
                conns,
                snapshot: snap,
                planned,
            } = engine
                .read_and_plan(&args.syncs, state.as_ref(), args.allow_mass_removal)
                .await?;
            let doc = engine.document(&planned, state.as_ref());
            if args.json {
                emit_json(&serde_json::json!({"type": "plan", "plan": &doc}))?;
            } else {
                out!(
                    "{}",
                    render::text(&doc, &render::TextOptions { color: ui.color })
                );
            }
            if doc.has_errors() {
                ui.note("The plan has errors (above); nothing was applied.");
                return Ok(EXIT_ERROR);
            }
            if doc.total_changes() == 0 {
                if args.json {
                    emit_json(
                        &serde_json::json!({"type": "summary", "applied": 0, "failed": 0, "interrupted": false, "failures": []}),
                    )?;
                }
                return Ok(EXIT_OK);
            }
            if !args.auto_approve && !confirm()? {
                outln!("Apply cancelled.");
                return Ok(EXIT_ERROR);
            }
            let secrets = Engine::secrets(&planned);
            (doc, secrets, snap, conns)
        }
        Some(path) => {
            let doc = read_plan(path)?;
            let specs: Vec<_> = engine
                .specs
                .iter()
                .filter(|s| doc.syncs.iter().any(|p| p.name == s.name))
                .cloned()
                .collect();
            let need = headcount::engine::needs_secrets(&doc);
            let with_secrets: Vec<_> = specs
                .iter()
                .filter(|s| need.contains(&s.name))
                .cloned()
                .collect();
            let conns = engine.connect(&specs, false)?;
            let live = headcount::engine::list_targets(&conns).await;
            let problems = engine.check_stale(&doc, state.as_ref(), &live);
            if !problems.is_empty() {
                let mut msg = format!(
                    "the plan {} is stale and was not applied:\n",
                    path.display()
                );
                for p in &problems {
                    msg.push_str(&format!("  - {p}\n"));
                }
                msg.push_str(
                    "Run `headcount plan --out FILE` again, review it, and apply the new plan.",
                );
                anyhow::bail!(msg);
            }
            if doc.has_errors() {
                anyhow::bail!(
                    "the plan {} has errors and cannot be applied: fix them and plan again",
                    path.display()
                );
            }
            let mut snap = Snapshot {
                live,
                ..Snapshot::default()
            };
            let mut secrets = Default::default();
            if !with_secrets.is_empty() {
                // Sensitive values are never stored in a plan: read them again from the source.
                let conns = engine.connect(&with_secrets, true)?;
                for (name, source) in &conns.sources {
                    snap.records
                        .insert(name.clone(), source.read().await.map_err(|e| e.to_string()));
                }
                let planned = engine.plan(&with_secrets, &snap, state.as_ref(), true, false);
                secrets = Engine::secrets(&planned);
                check_secrets_present(&doc, &secrets)?;
            }
            if doc.total_changes() == 0 {
                if args.json {
                    emit_json(
                        &serde_json::json!({"type": "summary", "applied": 0, "failed": 0, "interrupted": false, "failures": []}),
                    )?;
                } else {
                    outln!("No changes in the plan. Nothing to apply.");
                }
                return Ok(EXIT_OK);
            }
            (doc, secrets, snap, conns)
        }
    };

    let base = state
        .clone()
        .unwrap_or_else(|| State::new(uuid::Uuid::new_v4().to_string()));
    let journal = Mutex::new(engine.store.journal(&guard, &base)?);
    let record = |op: &StateOp| -> Result<(), String> {
        let mut j = journal
            .lock()
            .map_err(|_| "the journal lock is poisoned".to_string())?;
        j.append(op).map_err(|e| e.to_string())
    };

    // Audit log next to the state; a failure to write it is reported, never silently dropped.
    let audit_path = engine
        .store
        .path()
        .parent()
        .map(|d| d.join("audit.jsonl"))
        .unwrap_or_else(|| std::path::PathBuf::from("audit.jsonl"));
    let audit = AuditLog::open(&audit_path)?;
    let audit_failed = AtomicBool::new(false);
    let stdout_failed = AtomicBool::new(false);
    let commit = doc.config.git.as_ref().map(|g| g.commit.clone());

    let options = ApplyOptions {
        parallelism: usize::from(args.parallelism),
        cancel: Arc::new(AtomicBool::new(false)),
    };
    let signals = tokio::spawn(watch_signals(options.cancel.clone(), ui.quiet));
    let progress = Progress::start(doc.total_changes(), ui.progress && !args.json);
    let observer = |event: &OpEvent| {
        if !event.not_started
            && let Err(e) = audit.append(event, commit.as_deref())
            && !audit_failed.swap(true, Ordering::SeqCst)
        {
            errln!("warning: {e}");
        }
        // The apply goes on whatever happens to stdout: a failure is reported once.
        if args.json
            && let Err(e) = emit_json(&serde_json::json!({"type": "operation", "event": event}))
            && !stdout_failed.swap(true, Ordering::SeqCst)
        {
            errln!("warning: cannot write to stdout: {e}");
        }
        progress.inc();
    };

    let mut new_state = base.clone();
    let live_ok = live.live_ok();
    let report = apply::apply(
        ApplyInput {
            syncs: &doc.syncs,
            specs: &engine.specs,
            targets: &conns.targets,
            live: &live_ok,
            secrets: &secrets,
            options: &options,
            observer: &observer,
        },
        &mut new_state,
        &record,
    )
    .await;
    signals.abort();
    progress.finish();
    drop(journal);
    if report.succeeded() > 0 {
        engine
            .store
            .commit(&guard, &mut new_state)
            .context("the changes were applied and journalled, but the state could not be saved; the next run recovers them from the journal")?;
    }
    let interrupted = options.cancelled();
    let mut http: Vec<(&String, headcount::http::HttpStats)> = conns
        .targets
        .iter()
        .filter_map(|(name, t)| t.http_stats().map(|s| (name, s)))
        .collect();
    http.sort_by(|a, b| a.0.cmp(b.0));
    if args.json {
        for (name, stats) in &http {
            emit_json(&serde_json::json!({"type": "http", "target": name, "stats": stats}))?;
        }
        emit_json(&serde_json::json!({
            "type": "summary",
            "applied": report.succeeded(),
            "failed": report.failures.len(),
            "interrupted": interrupted,
            "failures": &report.failures,
        }))?;
    } else {
        print_report(&doc, &report, ui)?;
        for (name, stats) in &http {
            ui.note(format!("target `{name}`: {stats}"));
        }
    }
    if interrupted {
        ui.note("Interrupted: in-flight operations finished and the state was saved; run `headcount apply` again to finish.");
    }
    Ok(if report.failures.is_empty() && !interrupted {
        EXIT_OK
    } else {
        EXIT_ERROR
    })
}

/// Prints one JSON object on its own line (the `--json` event stream).
fn emit_json(value: &serde_json::Value) -> std::io::Result<()> {
    outln!("{value}");
    Ok(())
}

/// Sets `cancel` on the first SIGINT or SIGTERM, so that no new operation starts; those in
/// flight finish and the state is saved. A second signal is left to the default handling.
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

/// Every sensitive value the plan needs must still come from the source.
fn check_secrets_present(doc: &PlanDocument, secrets: &apply::Secrets) -> anyhow::Result<()> {
    for sync in &doc.syncs {
        for change in &sync.changes {
            for name in change
                .fields
                .iter()
                .filter(|(_, d)| d.sensitive)
                .map(|(n, _)| n)
            {
                let present = change.identity.values().any(|p| {
                    secrets
                        .get(&sync.name)
                        .and_then(|m| m.get(p))
                        .is_some_and(|m| m.contains_key(name))
                });
                if !present {
                    anyhow::bail!(
                        "the plan is stale: the source no longer gives the sensitive field `{name}` of {}; plan again",
                        change.identity.values().next().cloned().unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(())
}

fn print_report(doc: &PlanDocument, report: &ApplyReport, ui: &Ui) -> std::io::Result<()> {
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
            outln!(
                "  {} {} {}{}: {}",
                f.sync,
                f.action,
                f.identity,
                f.target_id
                    .as_ref()
                    .map(|id| format!(" (id {id})"))
                    .unwrap_or_default(),
                f.message
            );
        }
        ui.note("The operations that succeeded are recorded in the state; run `headcount plan` to see what is left.");
    }
    let total: usize = doc.total_changes();
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
