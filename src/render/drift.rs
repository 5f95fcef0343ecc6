//! The drift report (SPEC section 9) as text and markdown, rendered from the [`DriftDocument`]
//! only, in the style of the plan views: a summary line per sync, then each difference with
//! its cause and live → desired values. Sensitive values are `(sensitive)`, never shown.

use std::fmt::Write as _;

use serde_json::Value;

use super::clean;
use super::markdown::{fence_for, html, inline};
use crate::drift::{
    ActiveDrift, Cause, Difference, DriftDocument, DriftSummary, FieldDrift, SyncDrift,
};

/// The verdict when nothing drifted.
const NO_DRIFT: &str = "No drift. Every account matches the configuration and the last apply.";

/// One-line summary of a sync, e.g. `staff: 1 changed in the source, 2 changed in the target,
/// 140 in sync`.
pub fn drift_summary_line(sync: &SyncDrift) -> String {
    format!("{}: {}", clean(&sync.name), summary_body(sync))
}

fn summary_body(sync: &SyncDrift) -> String {
    if !sync.errors.is_empty() {
        return format!(
            "not compared ({} error{})",
            sync.errors.len(),
            if sync.errors.len() == 1 { "" } else { "s" }
        );
    }
    let s: &DriftSummary = &sync.summary;
    let mut parts: Vec<String> = [
        (s.source, "changed in the source"),
        (s.target, "changed in the target"),
        (s.both, "changed in both"),
        (s.missing, "missing from the target"),
        (s.unmanaged, "unmanaged"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        parts.push("no drift".to_string());
    }
    parts.push(format!("{} in sync", s.in_sync));
    parts.join(", ")
}

/// The last line of both views.
fn verdict(doc: &DriftDocument) -> String {
    let total = doc.total();
    let failed = doc.syncs.iter().filter(|s| !s.errors.is_empty()).count();
    if failed > 0 {
        return format!(
            "Error: {failed} sync{} could not be compared; drift is unknown there.",
            if failed == 1 { "" } else { "s" }
        );
    }
    if total == 0 {
        return NO_DRIFT.to_string();
    }
    let out_of_band = doc
        .syncs
        .iter()
        .flat_map(|s| &s.differences)
        .filter(|d| is_out_of_band(d))
        .count();
    format!(
        "Drift: {total} account{} differ{}, {out_of_band} changed out of band in the target.",
        if total == 1 { "" } else { "s" },
        if total == 1 { "s" } else { "" }
    )
}

fn is_out_of_band(d: &Difference) -> bool {
    d.cause.is_out_of_band()
        || d.fields.values().any(|f| f.cause.is_out_of_band())
        || d.active.is_some_and(|a| a.cause.is_out_of_band())
}

fn label(d: &Difference) -> String {
    let mut label = match d.identity.len() {
        0 => "(no identity)".to_owned(),
        1 => d.identity.values().map(|v| clean(v).into_owned()).collect(),
        _ => d
            .identity
            .iter()
            .map(|(k, v)| format!("{}={}", clean(k), clean(v)))
            .collect::<Vec<_>>()
            .join(", "),
    };
    if let Some(id) = &d.target_id {
        label.push_str(&format!(" (id {})", clean(id)));
    }
    label
}

fn value(v: &Value, sensitive: bool) -> String {
    if sensitive && !v.is_null() {
        "(sensitive)".to_string()
    } else {
        clean(&v.to_string()).into_owned()
    }
}

fn flag(v: Option<bool>) -> String {
    v.map_or_else(|| "null".to_string(), |b| b.to_string())
}

/// The lines of one difference, without indentation or colour.
fn lines(d: &Difference) -> (String, Vec<String>) {
    let action = d
        .action
        .map_or_else(|| "leave it".to_string(), |a| a.to_string());
    let head = format!("[{}] {} (apply: {action})", d.cause, label(d));
    let mut body = Vec::new();
    for (name, f) in &d.fields {
        body.push(field_line(name, f));
    }
    if let Some(a) = d.active {
        body.push(active_line(&a));
    }
    for note in &d.notes {
        body.push(format!("# {}", clean(note)));
    }
    (head, body)
}

fn field_line(name: &str, f: &FieldDrift) -> String {
    format!(
        "[{}] {}: {} → {} (last applied: {})",
        f.cause,
        clean(name),
        value(&f.live, f.sensitive),
        value(&f.desired, f.sensitive),
        value(&f.last_applied, f.sensitive)
    )
}

fn active_line(a: &ActiveDrift) -> String {
    format!(
        "[{}] active: {} → {} (last applied: {})",
        a.cause,
        flag(a.live),
        flag(a.desired),
        flag(a.last_applied)
    )
}

/// Renders the drift report as text; colour (cause labels) only when `color`.
pub fn drift_text(doc: &DriftDocument, color: bool) -> String {
    let paint = |cause: Cause, s: &str| {
        if !color {
            return s.to_string();
        }
        let code = match cause {
            Cause::Source => "32",
            Cause::Target | Cause::Both => "33",
            Cause::Missing => "31",
            Cause::Unmanaged => "2",
        };
        format!("\x1b[{code}m{s}\x1b[0m")
    };
    let mut out = String::new();
    for sync in &doc.syncs {
        let _ = writeln!(out, "{}", drift_summary_line(sync));
    }
    for sync in &doc.syncs {
        if sync.errors.is_empty() && sync.differences.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\nsync {} ({} → {}):",
            clean(&sync.name),
            clean(&sync.source),
            clean(&sync.target)
        );
        for e in &sync.errors {
            let _ = writeln!(out, "  error: {}", clean(e));
        }
        for d in &sync.differences {
            let (head, body) = lines(d);
            let _ = writeln!(out, "  {}", paint(d.cause, &head));
            for line in body {
                let _ = writeln!(out, "      {line}");
            }
        }
    }
    let _ = writeln!(out, "\n{}", verdict(doc));
    out
}

/// Renders the drift report as markdown for an issue or PR comment, at most `max_chars`
/// characters: a summary table, one `<details>` block per sync; differences that do not fit
/// are cut from the end with a note saying how many.
pub fn drift_markdown(doc: &DriftDocument, max_chars: usize) -> String {
    let mut head = String::from("### headcount drift\n\n");
    head.push_str("| sync | source | target | both | missing | unmanaged | in sync |\n");
    head.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    for sync in &doc.syncs {
        let s = &sync.summary;
        if sync.errors.is_empty() {
            let _ = writeln!(
                head,
                "| {} | {} | {} | {} | {} | {} | {} |",
                inline(&sync.name),
                s.source,
                s.target,
                s.both,
                s.missing,
                s.unmanaged,
                s.in_sync
            );
        } else {
            let _ = writeln!(head, "| {} | error | | | | | |", inline(&sync.name));
        }
    }
    let mut errors = String::new();
    for sync in &doc.syncs {
        for e in &sync.errors {
            let _ = writeln!(
                errors,
                "\n> **Error** in {}: {}",
                inline(&sync.name),
                inline(e)
            );
        }
    }
    let footer_of = |cut: usize| {
        let mut f = String::new();
        if cut > 0 {
            let _ = writeln!(
                f,
                "\n_{cut} difference{} not shown (comment size limit); run `headcount drift` for all of them._",
                if cut == 1 { "" } else { "s" }
            );
        }
        let _ = writeln!(f, "\n**{}**", inline(&verdict(doc)));
        f
    };
    let len = |s: &str| s.chars().count();
    // Room for the longest footer (a cut count of up to 20 digits).
    let reserve = len(&footer_of(usize::MAX)) + 2;
    let mut out = head;
    out.push_str(&errors);
    let mut cut = 0usize;
    for sync in doc.syncs.iter().filter(|s| !s.differences.is_empty()) {
        let open = format!(
            "\n<details><summary>{}: {}</summary>\n\n",
            html(&sync.name),
            html(&summary_body(sync))
        );
        let blocks: Vec<String> = sync
            .differences
            .iter()
            .map(|d| {
                let (h, body) = lines(d);
                let mut s = format!("{h}\n");
                for l in body {
                    s.push_str(&format!("    {l}\n"));
                }
                s
            })
            .collect();
        let fence = fence_for(blocks.iter());
        let close = format!("{fence}\n\n</details>\n");
        let mut section = format!("{open}{fence}text\n");
        let mut shown = 0usize;
        for b in &blocks {
            if cut == 0 && len(&out) + len(&section) + len(b) + len(&close) + reserve <= max_chars {
                section.push_str(b);
                shown += 1;
            } else {
                cut += 1;
            }
        }
        if shown > 0 {
            section.push_str(&close);
            out.push_str(&section);
        }
    }
    out.push_str(&footer_of(cut));
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::drift::FORMAT_VERSION;
    use crate::plan::{Action, ConfigInfo, StateRef, sensitive_marker};

    fn field(cause: Cause, last: Value, live: Value, desired: Value) -> FieldDrift {
        FieldDrift {
            cause,
            last_applied: last,
            live,
            desired,
            sensitive: false,
        }
    }

    fn doc() -> DriftDocument {
        let ident = |e: &str| BTreeMap::from([("email".to_string(), e.to_string())]);
        let ann = Difference {
            cause: Cause::Target,
            identity: ident("ann@x.io"),
            target_id: Some("1".into()),
            action: Some(Action::Update),
            fields: BTreeMap::from([(
                "last_name".into(),
                field(
                    Cause::Target,
                    json!("One"),
                    json!("Hacked\u{1b}[31m"),
                    json!("One"),
                ),
            )]),
            active: None,
            notes: vec![],
        };
        let dan = Difference {
            cause: Cause::Missing,
            identity: ident("dan@x.io"),
            target_id: Some("4".into()),
            action: Some(Action::Create),
            fields: BTreeMap::from([(
                "password".into(),
                FieldDrift {
                    sensitive: true,
                    ..field(
                        Cause::Missing,
                        sensitive_marker(),
                        Value::Null,
                        sensitive_marker(),
                    )
                },
            )]),
            active: Some(ActiveDrift {
                cause: Cause::Missing,
                last_applied: Some(true),
                live: None,
                desired: Some(true),
            }),
            notes: vec!["managed as 4 but gone from the target (deleted out of band)".into()],
        };
        let stray = Difference {
            cause: Cause::Unmanaged,
            identity: ident("stray|<b>@x.io"),
            target_id: Some("9".into()),
            action: None,
            fields: BTreeMap::new(),
            active: None,
            notes: vec![],
        };
        let mut summary = DriftSummary {
            in_sync: 3,
            ..DriftSummary::default()
        };
        for d in [&ann, &dan, &stray] {
            summary.add(d.cause);
        }
        DriftDocument {
            format_version: FORMAT_VERSION.into(),
            headcount_version: "0.0.0".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            config: ConfigInfo {
                path: "headcount.yaml".into(),
                sha256: "abc".into(),
                git: None,
            },
            state: StateRef {
                lineage: Some("l".into()),
                serial: 3,
            },
            syncs: vec![
                SyncDrift {
                    name: "staff".into(),
                    source: "hr".into(),
                    target: "helpdesk".into(),
                    summary,
                    differences: vec![ann, dan, stray],
                    errors: vec![],
                },
                SyncDrift {
                    name: "contractors".into(),
                    source: "vendors".into(),
                    target: "helpdesk".into(),
                    summary: DriftSummary::default(),
                    differences: vec![],
                    errors: vec!["source `vendors` could not be read".into()],
                },
            ],
        }
    }

    #[test]
    fn text_view() {
        let t = drift_text(&doc(), false);
        assert!(!t.contains('\u{1b}'), "data cannot inject escapes: {t}");
        insta::assert_snapshot!(t);
    }

    #[test]
    fn text_colours_cause_labels_only_when_asked() {
        assert!(drift_text(&doc(), true).contains("\u{1b}[33m[target]"));
    }

    #[test]
    fn markdown_view() {
        let md = drift_markdown(&doc(), crate::render::MARKDOWN_LIMIT);
        assert!(!md.contains('\u{1b}'));
        assert!(md.contains("password: null → (sensitive)"), "{md}");
        insta::assert_snapshot!(md);
    }

    #[test]
    fn markdown_is_cut_with_a_note_under_the_limit() {
        let mut d = doc();
        let one = d.syncs[0].differences[0].clone();
        d.syncs[0].differences = vec![one; 400];
        let md = drift_markdown(&d, 5_000);
        assert!(md.chars().count() <= 5_000, "{}", md.chars().count());
        assert!(md.contains("differences not shown"), "{md}");
        assert_eq!(
            md.matches("<details>").count(),
            md.matches("</details>").count()
        );
    }

    #[test]
    fn no_drift_verdict() {
        let mut d = doc();
        d.syncs.truncate(1);
        d.syncs[0].differences.clear();
        d.syncs[0].summary = DriftSummary {
            in_sync: 3,
            ..DriftSummary::default()
        };
        let t = drift_text(&d, false);
        assert_eq!(t, format!("staff: no drift, 3 in sync\n\n{NO_DRIFT}\n"));
    }
}
