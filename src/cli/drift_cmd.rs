//! `drift`: the plan's differences labelled by cause (SPEC sections 3 and 9). Reads like
//! `plan`, takes no lock and writes nothing.

use headcount::drift::DriftDocument;
use headcount::engine::Engine;
use headcount::render;

use super::args::{Cli, DriftArgs, FailOn, Format};
use super::{EXIT_CHANGES, EXIT_ERROR, EXIT_OK, Ui};

pub(crate) async fn drift(cli: &Cli, args: &DriftArgs, ui: &Ui) -> anyhow::Result<u8> {
    let mut engine = Engine::open_with(&cli.config, ui.color_stderr, super::out::scrubber())?;
    engine.full_read = args.full;
    for w in &engine.warnings {
        ui.note(format!("warning: {w}"));
    }
    let state = engine.state.load().await?.state;
    // The mass-removal guard is lifted: drift reports what differs, it never applies, and a
    // guard error would hide the very drift it guards against.
    let planned = engine
        .read_and_plan(&args.syncs, state.as_ref(), true)
        .await?;
    let doc = engine.drift_document(&planned, state.as_ref());
    out!("{}", render_drift(&doc, args.format, ui));
    Ok(exit_code(&doc, args.fail_on))
}

/// 1 when a sync could not be compared; 2 when drift that `--fail-on` counts was found.
fn exit_code(doc: &DriftDocument, fail_on: FailOn) -> u8 {
    let drifted = match fail_on {
        FailOn::Any => doc.total() > 0,
        FailOn::Target => doc.has_out_of_band(),
    };
    if doc.has_errors() {
        EXIT_ERROR
    } else if drifted {
        EXIT_CHANGES
    } else {
        EXIT_OK
    }
}

fn render_drift(doc: &DriftDocument, format: Format, ui: &Ui) -> String {
    match format {
        Format::Text => render::drift_text(doc, ui.color),
        Format::Markdown => render::drift_markdown(doc, render::MARKDOWN_LIMIT),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(doc).unwrap_or_default();
            s.push('\n');
            s
        }
    }
}
