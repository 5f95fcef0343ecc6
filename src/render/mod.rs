//! Renders a plan document as text (terminal) or markdown (PR comments).
//!
//! Both views are pure functions of [`PlanDocument`] so that `plan`, `show PLANFILE` and CI
//! comments always agree. They keep the document's order: the planner owns ordering.
//! Every string that comes from source or target data goes through `clean` so hostile data
//! cannot inject terminal escapes or break a line-based layout.

mod drift;
mod markdown;
mod text;

use std::borrow::Cow;

use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use crate::plan::{Action, Change, FieldDiff, PlanDocument, Summary, SyncPlan};

pub use drift::{drift_markdown, drift_summary_line, drift_text};
pub use markdown::{MARKDOWN_LIMIT, markdown};
pub use text::{TextOptions, text};

/// One-line summary of a sync, e.g. `staff: 3 to create, 1 to adopt, 140 unchanged`.
///
/// Shared with apply output so people read the same wording everywhere.
pub fn summary_line(sync: &SyncPlan) -> String {
    format!("{}: {}", clean(&sync.name), summary_body(sync))
}

/// The summary without the sync name (markdown puts the name elsewhere).
pub(crate) fn summary_body(sync: &SyncPlan) -> String {
    summary_parts(sync)
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a summary segment counts; the text view colours segments by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Action(Action),
    NoChanges,
    Unchanged,
    Invalid,
    Conflicts,
    Errors,
}

/// Summary segments in the fixed order of the spec: non-zero actions, unchanged, then problems.
pub(crate) fn summary_parts(sync: &SyncPlan) -> Vec<(Part, String)> {
    let s: &Summary = &sync.summary;
    let counts = [
        (Action::Create, s.create),
        (Action::Update, s.update),
        (Action::Deactivate, s.deactivate),
        (Action::Reactivate, s.reactivate),
        (Action::Delete, s.delete),
        (Action::Adopt, s.adopt),
        (Action::Forget, s.forget),
    ];
    let mut parts: Vec<(Part, String)> = counts
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(action, n)| (Part::Action(action), format!("{n} to {action}")))
        .collect();
    if parts.is_empty() {
        parts.push((Part::NoChanges, "no changes".to_owned()));
    }
    parts.push((Part::Unchanged, format!("{} unchanged", s.unchanged)));
    if s.invalid > 0 {
        parts.push((Part::Invalid, format!("{} invalid", s.invalid)));
    }
    if s.conflicts > 0 {
        parts.push((Part::Conflicts, plural(s.conflicts, "conflict")));
    }
    if !sync.errors.is_empty() {
        parts.push((Part::Errors, plural(sync.errors.len(), "error")));
    }
    parts
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else if let Some(stem) = word.strip_suffix('y') {
        format!("{n} {stem}ies")
    } else {
        format!("{n} {word}s")
    }
}

/// The last line of both views. A plan whose syncs failed never claims "no changes": the
/// accounts were not compared, so saying they match would be false. Skipped records (invalid,
/// conflicting) are counted here too, so a config that matches nobody never reads as "no
/// changes".
pub(crate) fn plan_line(doc: &PlanDocument, no_changes: &str) -> String {
    let total = doc.total_changes();
    let invalid: usize = doc.syncs.iter().map(|s| s.invalid.len()).sum();
    let conflicts: usize = doc.syncs.iter().map(|s| s.conflicts.len()).sum();
    if total == 0 && !doc.has_errors() && invalid == 0 && conflicts == 0 {
        return no_changes.to_owned();
    }
    let mut skipped = Vec::new();
    if invalid > 0 {
        skipped.push(plural(invalid, "invalid record"));
    }
    if conflicts > 0 {
        skipped.push(plural(conflicts, "conflicting identity"));
    }
    if skipped.is_empty() {
        format!("Plan: {total} to change.")
    } else {
        format!("Plan: {total} to change; skipped: {}.", skipped.join(", "))
    }
}

/// Escapes control and bidi-override characters (`\n`, ESC, U+202E...) so that data can
/// neither move the cursor, colour the terminal, nor split one displayed line into several.
pub(crate) fn clean(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// How a change names its account: the identity value(s), then the target id when known.
pub(crate) fn identity_label(change: &Change) -> String {
    let mut label = match change.identity.len() {
        0 => "(no identity)".to_owned(),
        1 => change
            .identity
            .values()
            .map(|v| clean(v).into_owned())
            .collect(),
        _ => change
            .identity
            .iter()
            .map(|(k, v)| format!("{}={}", clean(k), clean(v)))
            .collect::<Vec<_>>()
            .join(", "),
    };
    if let Some(id) = &change.target_id {
        label.push_str(&format!(" (id {})", clean(id)));
    }
    label
}

/// One field of a change, reduced to what both views need to draw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FieldView {
    /// The value is secret; only the fact that it is written is shown.
    Sensitive,
    /// A one-line value; `before` is `None` for a create, which has nothing to compare with.
    Single {
        before: Option<String>,
        after: String,
    },
    /// A multi-line text shown as a line diff.
    Lines(Vec<DiffLine>),
}

/// One line of a multi-line field diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DiffLine {
    Same(String),
    Removed(String),
    Added(String),
    /// Unchanged lines left out around the hunks, so long notes stay readable.
    Hidden(usize),
}

/// Unchanged lines kept around each changed line of a multi-line diff.
const DIFF_CONTEXT: usize = 2;

pub(crate) fn field_view(action: Action, field: &FieldDiff) -> FieldView {
    if is_sensitive(field) {
        return FieldView::Sensitive;
    }
    if is_multiline(&field.before) || is_multiline(&field.after) {
        return FieldView::Lines(line_diff(&as_text(&field.before), &as_text(&field.after)));
    }
    let before = (action != Action::Create).then(|| format_value(&field.before));
    FieldView::Single {
        before,
        after: format_value(&field.after),
    }
}

/// Sensitive when flagged, or when either side is a sensitive marker: a hand-edited or older
/// plan file without the flag must still never show a hash as if it were the value.
fn is_sensitive(field: &FieldDiff) -> bool {
    field.sensitive || is_marker(&field.before) || is_marker(&field.after)
}

fn is_marker(value: &Value) -> bool {
    value.get("sensitive").and_then(Value::as_bool) == Some(true)
}

fn is_multiline(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.contains('\n'))
}

/// A value as text for the line diff; null is the empty text, so adding notes is all `+`.
fn as_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// JSON-ish display: strings quoted and escaped, `null`, numbers and booleans bare.
pub(crate) fn format_value(value: &Value) -> String {
    clean(&value.to_string()).into_owned()
}

/// Line diff of two texts with a little context, via `similar`.
pub(crate) fn line_diff(before: &str, after: &str) -> Vec<DiffLine> {
    let diff = TextDiff::from_lines(before, after);
    let old_len = diff.old_slices().len();
    let mut lines = Vec::new();
    let mut shown_until = 0;
    for group in diff.grouped_ops(DIFF_CONTEXT) {
        let Some(first) = group.first() else { continue };
        let start = first.old_range().start;
        if start > shown_until {
            lines.push(DiffLine::Hidden(start - shown_until));
        }
        for op in &group {
            for change in diff.iter_changes(op) {
                let text = clean(change.value().trim_end_matches(['\n', '\r'])).into_owned();
                lines.push(match change.tag() {
                    ChangeTag::Equal => DiffLine::Same(text),
                    ChangeTag::Delete => DiffLine::Removed(text),
                    ChangeTag::Insert => DiffLine::Added(text),
                });
            }
            shown_until = op.old_range().end;
        }
    }
    if !lines.is_empty() && old_len > shown_until {
        lines.push(DiffLine::Hidden(old_len - shown_until));
    }
    lines
}

/// `N unchanged line(s) hidden`, shared wording for both views.
pub(crate) fn hidden_lines(n: usize) -> String {
    if n == 1 {
        "… 1 unchanged line".to_owned()
    } else {
        format!("… {n} unchanged lines")
    }
}

#[cfg(test)]
pub(crate) mod tests;
