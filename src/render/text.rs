//! The human plan: Terraform-like text for a terminal, optionally coloured.

use std::fmt::Write as _;

use super::{
    DiffLine, FieldView, Part, clean, field_view, hidden_lines, identity_label, plan_line,
    summary_line, summary_parts,
};
use crate::plan::{Action, Change, PlanDocument, SyncPlan};

/// How to draw text. The caller decides colour (TTY, `--color`, `NO_COLOR`); the renderer
/// never looks at the environment so output is reproducible in tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextOptions {
    pub color: bool,
}

/// Renders the whole plan as text; the last line is always the `Plan:` / `No changes.` verdict.
pub fn text(doc: &PlanDocument, opts: &TextOptions) -> String {
    let p = Painter { color: opts.color };
    let mut out = String::new();

    for sync in &doc.syncs {
        out.push_str(&painted_summary(&p, sync));
        out.push('\n');
    }
    for sync in doc.syncs.iter().filter(|s| has_details(s)) {
        out.push('\n');
        write_sync(&mut out, &p, sync);
    }
    if let Some(base) = &doc.base {
        write_base(&mut out, &p, base);
    }

    out.push('\n');
    let failed = doc.syncs.iter().filter(|s| !s.errors.is_empty()).count();
    if failed > 0 {
        let what = if failed == 1 {
            "1 sync has".to_owned()
        } else {
            format!("{failed} syncs have")
        };
        let line = format!("Error: {what} errors; this plan cannot be applied.");
        let _ = writeln!(out, "{}", p.paint(Style::BoldRed, &line));
    }
    let verdict = plan_line(doc, "No changes. Accounts match the configuration.");
    let _ = writeln!(out, "{}", p.paint(Style::Bold, &verdict));
    out
}

/// The `--base` section: what the config change itself causes, apart from pending changes.
fn write_base(out: &mut String, p: &Painter, base: &crate::plan::BaseComparison) {
    let short = base.commit.get(..10).unwrap_or(&base.commit);
    let heading = format!(
        "What the config change causes (compared with {} at {short}):",
        clean(&base.gitref)
    );
    let _ = writeln!(out, "\n{}", p.paint(Style::Bold, &heading));
    if base.effects.is_empty() {
        let _ = writeln!(
            out,
            "  nothing: the config at {} plans the same changes",
            clean(&base.gitref)
        );
    }
    for effect in &base.effects {
        let _ = writeln!(out, "  - this change {}", clean(effect));
    }
    for group in &base.caused {
        let _ = writeln!(out, "  sync {}:", clean(&group.sync));
        for change in &group.changes {
            write_change(out, p, change);
        }
    }
    let _ = writeln!(
        out,
        "  {} other change{} would happen with the base config too (pending source or target changes).",
        base.pending,
        if base.pending == 1 { "" } else { "s" }
    );
}

/// A sync with nothing but unchanged accounts is fully told by its summary line.
fn has_details(sync: &SyncPlan) -> bool {
    !(sync.changes.is_empty()
        && sync.invalid.is_empty()
        && sync.conflicts.is_empty()
        && sync.errors.is_empty())
}

/// [`summary_line`] with each segment coloured like the changes it counts.
fn painted_summary(p: &Painter, sync: &SyncPlan) -> String {
    if !p.color {
        return summary_line(sync);
    }
    let parts: Vec<String> = summary_parts(sync)
        .into_iter()
        .map(|(part, text)| {
            let style = match part {
                Part::Action(action) => action_style(action),
                Part::NoChanges | Part::Unchanged => Style::Dim,
                Part::Invalid | Part::Conflicts => Style::Yellow,
                Part::Errors => Style::BoldRed,
            };
            p.paint(style, &text)
        })
        .collect();
    format!(
        "{}: {}",
        p.paint(Style::Bold, &clean(&sync.name)),
        parts.join(", ")
    )
}

fn write_sync(out: &mut String, p: &Painter, sync: &SyncPlan) {
    let heading = format!(
        "sync {} ({} → {})",
        clean(&sync.name),
        clean(&sync.source),
        clean(&sync.target)
    );
    let _ = writeln!(out, "{}", p.paint(Style::Bold, &heading));

    // Errors first: they block the apply, so they must not scroll away under the changes.
    if !sync.errors.is_empty() {
        let _ = writeln!(out, "  {}", p.paint(Style::BoldRed, "Errors:"));
        for error in &sync.errors {
            let _ = writeln!(
                out,
                "    {}",
                p.paint(Style::Red, &format!("✗ {}", clean(error)))
            );
        }
    }

    for change in &sync.changes {
        write_change(out, p, change);
    }

    if !sync.invalid.is_empty() {
        let heading = format!("Invalid records ({}):", sync.invalid.len());
        let _ = writeln!(out, "\n  {}", p.paint(Style::Bold, &heading));
        for invalid in &sync.invalid {
            let _ = writeln!(
                out,
                "    {}: {}",
                clean(&invalid.record),
                clean(&invalid.reason)
            );
        }
    }
    if !sync.conflicts.is_empty() {
        let heading = format!("Conflicts ({}):", sync.conflicts.len());
        let _ = writeln!(out, "\n  {}", p.paint(Style::Bold, &heading));
        for conflict in &sync.conflicts {
            let records: Vec<_> = conflict.records.iter().map(|r| clean(r)).collect();
            let _ = writeln!(
                out,
                "    {} ({}): {}",
                clean(&conflict.identity),
                records.join(", "),
                clean(&conflict.reason)
            );
        }
    }
}

fn write_change(out: &mut String, p: &Painter, change: &Change) {
    let style = action_style(change.action);
    let head = format!("{} {}", symbol(change.action), change.action);
    let _ = writeln!(
        out,
        "  {} {}",
        p.paint(style, &head),
        identity_label(change)
    );

    for (name, field) in &change.fields {
        let name = clean(name);
        match field_view(change.action, field) {
            FieldView::Sensitive => {
                let _ = writeln!(out, "      {name}: {}", p.paint(Style::Dim, "(sensitive)"));
            }
            FieldView::Single {
                before: None,
                after,
            } => {
                let _ = writeln!(out, "      {name}: {after}");
            }
            FieldView::Single {
                before: Some(before),
                after,
            } => {
                let _ = writeln!(out, "      {name}: {before} → {after}");
            }
            FieldView::Lines(lines) => {
                let _ = writeln!(out, "      {name}:");
                for line in lines {
                    let _ = writeln!(out, "        {}", diff_line(p, &line));
                }
            }
        }
    }
    if let Some(active) = change.active {
        match active.before {
            Some(before) if before != active.after => {
                let _ = writeln!(out, "      active: {before} → {}", active.after);
            }
            _ => {
                let _ = writeln!(out, "      active: {}", active.after);
            }
        }
    }
    for note in &change.notes {
        let _ = writeln!(
            out,
            "      {}",
            p.paint(Style::Dim, &format!("# {}", clean(note)))
        );
    }
}

fn diff_line(p: &Painter, line: &DiffLine) -> String {
    match line {
        DiffLine::Same(text) => format!("  {text}"),
        DiffLine::Removed(text) => p.paint(Style::Red, &format!("- {text}")),
        DiffLine::Added(text) => p.paint(Style::Green, &format!("+ {text}")),
        DiffLine::Hidden(n) => p.paint(Style::Dim, &format!("  {}", hidden_lines(*n))),
    }
}

/// One distinct mark per action so a scan of the left margin tells them apart.
fn symbol(action: Action) -> &'static str {
    match action {
        Action::Create => "+",
        Action::Update => "~",
        Action::Deactivate => "-",
        Action::Reactivate => "↺",
        Action::Delete => "x",
        Action::Adopt => "←",
        Action::Forget => "·",
    }
}

/// Green gives access, yellow edits, red takes access away, dim touches nothing.
fn action_style(action: Action) -> Style {
    match action {
        Action::Create | Action::Reactivate => Style::Green,
        Action::Update | Action::Adopt => Style::Yellow,
        Action::Deactivate | Action::Delete => Style::Red,
        Action::Forget => Style::Dim,
    }
}

#[derive(Debug, Clone, Copy)]
enum Style {
    Green,
    Yellow,
    Red,
    Dim,
    Bold,
    BoldRed,
}

/// Wraps text in ANSI SGR codes only when colour is on, so plain output has no ESC byte.
struct Painter {
    color: bool,
}

impl Painter {
    fn paint(&self, style: Style, text: &str) -> String {
        if !self.color {
            return text.to_owned();
        }
        let code = match style {
            Style::Green => "32",
            Style::Yellow => "33",
            Style::Red => "31",
            Style::Dim => "2",
            Style::Bold => "1",
            Style::BoldRed => "1;31",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}
