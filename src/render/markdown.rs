//! The plan as GitHub-flavoured markdown for PR comments: a summary table, one collapsed
//! `<details>` block per sync, and a hard size cap because comment APIs reject long bodies.

use super::{
    DiffLine, FieldView, clean, field_view, hidden_lines, identity_label, plan_line, summary_body,
};
use crate::plan::{Action, Change, PlanDocument, SyncPlan};

/// Size cap for PR comments: GitHub rejects bodies over 65,536 characters; the margin leaves
/// room for whatever the CI step wraps around the plan.
pub const MARKDOWN_LIMIT: usize = 60_000;

/// Renders the plan as markdown of at most `max_chars` characters (Unicode scalar values).
///
/// When the plan does not fit, changes are left out from the end, every open block is closed
/// and a note says exactly how many changes were not shown.
pub fn markdown(doc: &PlanDocument, max_chars: usize) -> String {
    let out = render(doc, max_chars);
    if char_len(&out) <= max_chars {
        out
    } else {
        // Only reached when even the table and errors do not fit (absurdly small limits or
        // thousands of syncs): say what was cut rather than post a broken comment.
        fallback(doc, max_chars)
    }
}

/// Output with a running character count, so size checks do not rescan the buffer.
#[derive(Default)]
struct Out {
    buf: String,
    chars: usize,
}

impl Out {
    fn push(&mut self, s: &str) {
        self.chars += char_len(s);
        self.buf.push_str(s);
    }
}

/// The `--base` effects as a short list (the changes themselves are in the sync blocks).
fn base_section(doc: &PlanDocument) -> String {
    let Some(base) = &doc.base else {
        return String::new();
    };
    let short = base.commit.get(..10).unwrap_or(&base.commit);
    let mut s = format!(
        "**What this config change causes** (compared with `{}` at `{short}`):\n\n",
        html(&base.gitref).replace('`', "ʼ")
    );
    if base.effects.is_empty() {
        s.push_str("- nothing: the base config plans the same changes\n");
    }
    for effect in &base.effects {
        s.push_str(&format!("- this change {}\n", html(effect)));
    }
    s.push_str(&format!(
        "\n{} other change{} would happen with the base config too (pending source or target changes).\n\n",
        base.pending,
        if base.pending == 1 { "" } else { "s" }
    ));
    s
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

fn render(doc: &PlanDocument, max_chars: usize) -> String {
    let mut out = Out::default();
    out.push("### headcount plan\n\n");
    out.push(&table(doc));
    out.push(&errors(doc));
    out.push(&base_section(doc));

    let listed_changes: usize = doc.syncs.iter().map(|s| s.changes.len()).sum();
    let listed_problems: usize = doc.syncs.iter().map(problem_count).sum();
    // The footer can only shrink from this (fewer hidden items, fewer digits), so reserving
    // its worst case keeps every later check exact enough.
    let reserve = char_len(&footer(doc, listed_changes, listed_problems));
    let fits = |out: &Out, extra: usize| out.chars + extra + reserve <= max_chars;

    let mut shown_changes = 0;
    let mut shown_problems = 0;
    for sync in &doc.syncs {
        let changes: Vec<String> = sync.changes.iter().map(change_block).collect();
        let problems = problem_items(sync);
        let Some(first) = changes.first().or(problems.first()) else {
            continue;
        };

        let fence = fence_for(changes.iter().chain(&problems));
        let open = format!(
            "<details><summary>sync {}: {}</summary>\n\n",
            html(&sync.name),
            html(&summary_body(sync))
        );
        let block_open = format!("{fence}diff\n");
        let block_close = format!("{fence}\n\n");
        let close = "</details>\n\n";
        let closing = char_len(&block_close) + char_len(close);
        // Open a sync only if at least its first item fits; an empty `<details>` helps nobody.
        if !fits(
            &out,
            char_len(&open) + char_len(&block_open) + char_len(first) + closing,
        ) {
            break;
        }
        out.push(&open);

        let mut truncated = false;
        if !changes.is_empty() {
            out.push(&block_open);
            for block in &changes {
                if !fits(&out, char_len(block) + closing) {
                    truncated = true;
                    break;
                }
                out.push(block);
                shown_changes += 1;
            }
            out.push(&block_close);
        }
        if !truncated && !problems.is_empty() {
            let list_open = format!("{fence}text\n");
            let mut opened = false;
            for item in &problems {
                let opening = if opened { 0 } else { char_len(&list_open) };
                if !fits(&out, opening + char_len(item) + closing) {
                    truncated = true;
                    break;
                }
                if !opened {
                    out.push(&list_open);
                    opened = true;
                }
                out.push(item);
                shown_problems += 1;
            }
            if opened {
                out.push(&block_close);
            }
        }
        out.push(close);
        if truncated {
            break;
        }
    }

    out.push(&footer(
        doc,
        listed_changes - shown_changes,
        listed_problems - shown_problems,
    ));
    out.buf
}

/// Notes about what was cut, then the verdict line.
fn footer(doc: &PlanDocument, hidden_changes: usize, hidden_problems: usize) -> String {
    let mut s = String::new();
    if hidden_changes > 0 {
        let noun = if hidden_changes == 1 {
            "change"
        } else {
            "changes"
        };
        s.push_str(&format!(
            "… {hidden_changes} {noun} not shown (output truncated to fit a PR comment); \
             run headcount plan locally for the full plan.\n\n"
        ));
    }
    if hidden_problems > 0 {
        s.push_str(&format!(
            "… {hidden_problems} invalid records and conflicts not shown; \
             run headcount plan locally for the full list.\n\n"
        ));
    }
    s.push_str(&plan_line(doc, "No changes."));
    s.push('\n');
    s
}

/// The smallest honest comment: title, how much was cut, verdict; cut to the limit if needed.
fn fallback(doc: &PlanDocument, max_chars: usize) -> String {
    let changes: usize = doc.syncs.iter().map(|s| s.changes.len()).sum();
    let problems: usize = doc.syncs.iter().map(problem_count).sum();
    let s = format!("### headcount plan\n\n{}", footer(doc, changes, problems));
    s.chars().take(max_chars).collect()
}

fn table(doc: &PlanDocument) -> String {
    // `forget` is rare; a column of zeros would only add width, so it appears when used.
    let forget = doc.syncs.iter().any(|s| s.summary.forget > 0);
    let mut head = vec![
        "sync",
        "source → target",
        "create",
        "update",
        "deactivate",
        "reactivate",
        "delete",
        "adopt",
    ];
    if forget {
        head.push("forget");
    }
    head.extend(["unchanged", "invalid", "conflicts"]);

    let mut s = format!("| {} |\n", head.join(" | "));
    let align: Vec<&str> = head
        .iter()
        .enumerate()
        .map(|(i, _)| if i < 2 { ":--" } else { "--:" })
        .collect();
    s.push_str(&format!("| {} |\n", align.join(" | ")));

    for sync in &doc.syncs {
        let m = &sync.summary;
        let mut cells = vec![
            inline(&sync.name),
            format!("{} → {}", inline(&sync.source), inline(&sync.target)),
        ];
        let mut counts = vec![
            m.create,
            m.update,
            m.deactivate,
            m.reactivate,
            m.delete,
            m.adopt,
        ];
        if forget {
            counts.push(m.forget);
        }
        counts.extend([m.unchanged, m.invalid, m.conflicts]);
        cells.extend(counts.into_iter().map(|n| n.to_string()));
        s.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    s.push('\n');
    s
}

/// Errors block the apply, so they sit above the collapsed details where nobody can miss them.
fn errors(doc: &PlanDocument) -> String {
    if !doc.has_errors() {
        return String::new();
    }
    let mut s = String::from("> [!WARNING]\n> This plan has errors and cannot be applied:\n>\n");
    for sync in &doc.syncs {
        for error in &sync.errors {
            s.push_str(&format!(
                "> - **sync {}:** {}\n",
                inline(&sync.name),
                inline(error)
            ));
        }
    }
    s.push('\n');
    s
}

fn problem_count(sync: &SyncPlan) -> usize {
    sync.invalid.len() + sync.conflicts.len()
}

/// One string per invalid record or conflict; the first of each kind carries its heading so
/// truncation never leaves a heading without items.
fn problem_items(sync: &SyncPlan) -> Vec<String> {
    let mut items = Vec::with_capacity(problem_count(sync));
    for (i, invalid) in sync.invalid.iter().enumerate() {
        let heading = if i == 0 {
            format!("Invalid records ({}):\n", sync.invalid.len())
        } else {
            String::new()
        };
        items.push(format!(
            "{heading}  {}: {}\n",
            clean(&invalid.record),
            clean(&invalid.reason)
        ));
    }
    for (i, conflict) in sync.conflicts.iter().enumerate() {
        let heading = if i == 0 {
            format!("Conflicts ({}):\n", sync.conflicts.len())
        } else {
            String::new()
        };
        let records: Vec<_> = conflict.records.iter().map(|r| clean(r)).collect();
        items.push(format!(
            "{heading}  {} ({}): {}\n",
            clean(&conflict.identity),
            records.join(", "),
            clean(&conflict.reason)
        ));
    }
    items
}

/// One change as `diff` lines: GitHub colours `+` green, `-` red and `!` orange, so the first
/// column carries the meaning (`~` would not be coloured).
fn change_block(change: &Change) -> String {
    let mark = match change.action {
        Action::Create | Action::Reactivate => '+',
        Action::Update | Action::Adopt => '!',
        Action::Deactivate | Action::Delete => '-',
        Action::Forget => '·',
    };
    let mut s = format!("{mark} {} {}\n", change.action, identity_label(change));
    for (name, field) in &change.fields {
        let name = clean(name);
        match field_view(change.action, field) {
            FieldView::Sensitive => {
                let mark = if change.action == Action::Create {
                    '+'
                } else {
                    '!'
                };
                s.push_str(&format!("{mark}     {name}: (sensitive)\n"));
            }
            FieldView::Single {
                before: None,
                after,
            } => {
                s.push_str(&format!("+     {name}: {after}\n"));
            }
            FieldView::Single {
                before: Some(before),
                after,
            } => {
                s.push_str(&format!("-     {name}: {before}\n+     {name}: {after}\n"));
            }
            FieldView::Lines(lines) => {
                s.push_str(&format!("      {name}:\n"));
                for line in lines {
                    let line = match line {
                        DiffLine::Same(text) => format!("          {text}"),
                        DiffLine::Removed(text) => format!("-         {text}"),
                        DiffLine::Added(text) => format!("+         {text}"),
                        DiffLine::Hidden(n) => format!("          {}", hidden_lines(n)),
                    };
                    s.push_str(line.trim_end());
                    s.push('\n');
                }
            }
        }
    }
    if let Some(active) = change.active {
        match active.before {
            Some(before) if before != active.after => {
                s.push_str(&format!(
                    "-     active: {before}\n+     active: {}\n",
                    active.after
                ));
            }
            _ => s.push_str(&format!("{mark}     active: {}\n", active.after)),
        }
    }
    for note in &change.notes {
        s.push_str(&format!("      # {}\n", clean(note)));
    }
    s
}

/// A backtick fence longer than any backtick run in the content, so no value can close it.
pub(super) fn fence_for<'a>(items: impl Iterator<Item = &'a String>) -> String {
    let longest = items
        .flat_map(|item| item.split(|c| c != '`'))
        .map(str::len)
        .max()
        .unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

/// Escapes for HTML contexts (`<summary>`): data must not open or close tags.
pub(super) fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in clean(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// Escapes for inline markdown (table cells, warning lines): no tags, no code spans, no
/// emphasis, no links, and `|` cannot split a table cell.
pub(super) fn inline(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in clean(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}
