//! `plan` and `show`.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use headcount::engine::Engine;
use headcount::plan::{FORMAT_VERSION, PlanDocument};
use headcount::{render, util};

use super::args::{Cli, Format, PlanArgs, ShowArgs};
use super::{EXIT_CHANGES, EXIT_ERROR, EXIT_OK, Ui};

pub(crate) async fn plan(cli: &Cli, args: &PlanArgs, ui: &Ui) -> anyhow::Result<u8> {
    if let Some(out) = &args.out {
        check_out_path(out)?;
    }
    let mut engine = Engine::open_with(&cli.config, ui.color_stderr, super::out::scrubber())?;
    engine.full_read = args.full;
    for w in &engine.warnings {
        ui.note(format!("warning: {w}"));
    }
    let state = engine.state.load().await?.state;
    let headcount::engine::Planned {
        snapshot: snap,
        planned,
        ..
    } = engine
        .read_and_plan(&args.syncs, state.as_ref(), args.allow_mass_removal)
        .await?;
    let mut doc = engine.document(&planned, state.as_ref());
    if let Some(gitref) = &args.base {
        let (base_specs, commit) = engine.base_specs(gitref)?;
        let cfg = &engine.loaded.config;
        let mut comparable = Vec::new();
        for spec in base_specs {
            if !args.syncs.is_empty() && !args.syncs.contains(&spec.name) {
                continue;
            }
            if cfg.sources.contains_key(&spec.source) && cfg.targets.contains_key(&spec.target) {
                comparable.push(spec);
            } else {
                ui.note(format!(
                    "warning: sync `{}` at {gitref} reads `{}` or writes `{}`, which the current config no longer defines; it is left out of the comparison",
                    spec.name, spec.source, spec.target
                ));
            }
        }
        // The base syncs may read sources or targets the current syncs do not: read those too.
        let extra: Vec<_> = comparable
            .iter()
            .filter(|s| !snap.records.contains_key(&s.source) || !snap.live.contains_key(&s.target))
            .cloned()
            .collect();
        let mut snap = snap;
        if !extra.is_empty() {
            let more = engine.read(&engine.connect(&extra, true)?).await;
            for (k, v) in more.records {
                snap.records.entry(k).or_insert(v);
            }
            for (k, v) in more.live {
                snap.live.entry(k).or_insert(v);
            }
        }
        let base_planned = engine.plan(
            &comparable,
            &snap,
            state.as_ref(),
            args.allow_mass_removal,
            false,
        );
        let head: Vec<_> = planned.iter().map(|p| p.plan.clone()).collect();
        let base: Vec<_> = base_planned.into_iter().map(|p| p.plan).collect();
        doc.base = Some(headcount::planner::compare::compare(
            gitref, &commit, &head, &base,
        ));
    }
    // The guard again, after `--base` added its changes: no sensitive value in any plan.
    engine.sensitive().scrub_document(&mut doc);
    if let Some(out) = &args.out {
        write_plan(out, &doc)?;
        ui.note(format!(
            "Saved the plan to {}; apply it with `headcount apply {}`.",
            out.display(),
            out.display()
        ));
    }
    out!("{}", render_doc(&doc, args.format, ui));
    Ok(exit_code(&doc, args.detailed_exitcode, args.strict))
}

/// The exit code of a plan: errors and (with --strict) invalid records are 1; changes are 2
/// only with --detailed-exitcode.
pub(crate) fn exit_code(doc: &PlanDocument, detailed: bool, strict: bool) -> u8 {
    if doc.has_errors() || (strict && doc.has_invalid()) {
        EXIT_ERROR
    } else if detailed && doc.total_changes() > 0 {
        EXIT_CHANGES
    } else {
        EXIT_OK
    }
}

pub(crate) fn render_doc(doc: &PlanDocument, format: Format, ui: &Ui) -> String {
    match format {
        Format::Text => render::text(doc, &render::TextOptions { color: ui.color }),
        Format::Markdown => render::markdown(doc, render::MARKDOWN_LIMIT),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(doc).unwrap_or_default();
            s.push('\n');
            s
        }
    }
}

/// Refuses an `--out` that names a folder before anything is read or written.
fn check_out_path(path: &Path) -> anyhow::Result<()> {
    if path.is_dir() {
        anyhow::bail!(
            "--out {} is a folder: give a file name for the plan, e.g. --out {}",
            path.display(),
            path.join("plan.json").display()
        );
    }
    Ok(())
}

/// Writes the plan document atomically (a half-written plan must never be applied); a write
/// that fails leaves no temporary file behind.
pub(crate) fn write_plan(path: &Path, doc: &PlanDocument) -> anyhow::Result<()> {
    check_out_path(path)?;
    let mut text = serde_json::to_string_pretty(doc)?;
    text.push('\n');
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    util::create_private_dir_all(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("plan"),
        std::process::id()
    ));
    // The plan lists people and their field values: owner-only from the first byte.
    let written = (|| {
        let mut options = util::private_file_options();
        options.write(true).create(true).truncate(true);
        let mut file = util::open_private(&options, &tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", tmp.display()));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

/// Reads a saved plan, refusing formats this build does not know.
pub(crate) fn read_plan(path: &Path) -> anyhow::Result<PlanDocument> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the plan file {}", path.display()))?;
    let raw: serde_json::Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a plan file (not JSON): write one with `headcount plan --out FILE`",
            path.display()
        )
    })?;
    match raw.get("format_version").and_then(|v| v.as_str()) {
        Some(FORMAT_VERSION) => {}
        Some(other) => anyhow::bail!(
            "{} has plan format_version {other}; this build reads version {FORMAT_VERSION}: re-run `headcount plan --out` with this version",
            path.display()
        ),
        None => anyhow::bail!(
            "{} is not a headcount plan (no format_version)",
            path.display()
        ),
    }
    serde_json::from_value(raw)
        .with_context(|| format!("{} is not a valid plan document", path.display()))
}

pub(crate) fn show(args: &ShowArgs, ui: &Ui) -> anyhow::Result<u8> {
    let doc = read_plan(&args.planfile)?;
    out!("{}", render_doc(&doc, args.format, ui));
    Ok(EXIT_OK)
}
