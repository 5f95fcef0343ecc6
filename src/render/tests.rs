//! Snapshot and property tests for the text and markdown views, over hand-built plans.

use serde_json::{Value, json};

use super::*;
use crate::plan::{
    ActiveDiff, ConfigInfo, Conflict, FORMAT_VERSION, Invalid, PlanDocument, StateRef,
    sensitive_marker,
};

fn doc(syncs: Vec<SyncPlan>) -> PlanDocument {
    PlanDocument {
        format_version: FORMAT_VERSION.to_owned(),
        headcount_version: "0.1.0".to_owned(),
        created_at: "2025-01-01T00:00:00Z".to_owned(),
        config: ConfigInfo {
            path: "headcount.yaml".to_owned(),
            sha256: "abc".to_owned(),
            git: None,
        },
        state: StateRef {
            lineage: None,
            serial: 0,
        },
        syncs,
        base: None,
    }
}

/// A sync whose summary is derived from its changes, as the planner does.
fn sync(
    name: &str,
    source: &str,
    target: &str,
    changes: Vec<Change>,
    unchanged: usize,
) -> SyncPlan {
    let mut summary = Summary {
        unchanged,
        ..Summary::default()
    };
    for change in &changes {
        summary.add(change.action);
    }
    SyncPlan {
        name: name.to_owned(),
        source: source.to_owned(),
        target: target.to_owned(),
        summary,
        changes,
        invalid: vec![],
        conflicts: vec![],
        errors: vec![],
        guard_blocked: false,
    }
}

/// Built through serde so fields other developers add with `#[serde(default)]` need no edit here.
fn change(action: Action, email: &str, id: Option<u32>) -> Change {
    serde_json::from_value(json!({
        "action": action,
        "identity": {"email": email},
        "target_id": id.map(|id| id.to_string()),
        "fields": {},
        "live_fingerprint": id.map(|id| format!("fp{id}")),
    }))
    .expect("valid change")
}

fn field(before: Value, after: Value) -> FieldDiff {
    FieldDiff {
        before,
        after,
        sensitive: false,
    }
}

fn with_field(mut c: Change, name: &str, before: Value, after: Value) -> Change {
    c.fields.insert(name.to_owned(), field(before, after));
    c
}

fn with_active(mut c: Change, before: Option<bool>, after: bool) -> Change {
    c.active = Some(ActiveDiff { before, after });
    c
}

/// Every action, a create, a multi-line notes diff, a sensitive field, a note.
fn support_staff() -> SyncPlan {
    let mut create = change(Action::Create, "jane@example.com", None);
    create = with_field(create, "email", Value::Null, json!("jane@example.com"));
    create = with_field(create, "first_name", Value::Null, json!("Jane"));
    create = with_field(create, "last_name", Value::Null, json!("Doe"));
    create = with_field(create, "role", Value::Null, json!("technician"));
    create.fields.insert(
        "password".to_owned(),
        FieldDiff {
            before: Value::Null,
            after: sensitive_marker(),
            sensitive: true,
        },
    );
    create = with_active(create, None, true);

    let mut update = change(Action::Update, "bob@example.com", Some(42));
    update = with_field(update, "first_name", json!("Bob"), json!("Robert"));
    update = with_field(update, "cell_phone", Value::Null, json!("+1 555 0100"));
    update = with_field(
        update,
        "user_notes",
        json!("Joined 2019\nTeam: blue\nDesk 4\nFloor 2\nBuilding A\nParking: yes\nBadge 17\n"),
        json!("Joined 2019\nTeam: green\nDesk 4\nFloor 2\nBuilding A\nParking: yes\nBadge 18\n"),
    );
    update
        .notes
        .push("email differs but is create-only; not changed".to_owned());

    let deactivate = with_active(
        change(Action::Deactivate, "carol@example.com", Some(43)),
        Some(true),
        false,
    );
    let reactivate = with_active(
        change(Action::Reactivate, "dave@example.com", Some(44)),
        Some(false),
        true,
    );
    let delete = change(Action::Delete, "eve@example.com", Some(45));
    let adopt = with_field(
        change(Action::Adopt, "frank@example.com", Some(46)),
        "role",
        json!("user"),
        json!("technician"),
    );
    let mut forget = change(Action::Forget, "gina@example.com", Some(47));
    forget.notes.push("sync removed from the config".to_owned());

    let mut s = sync(
        "support-staff",
        "workspace",
        "mojo",
        vec![
            create, update, deactivate, reactivate, delete, adopt, forget,
        ],
        140,
    );
    s.invalid.push(Invalid {
        record: "row 7".to_owned(),
        reason: "missing email".to_owned(),
    });
    s.conflicts.push(Conflict {
        identity: "dup@example.com".to_owned(),
        records: vec!["row 3".to_owned(), "row 9".to_owned()],
        reason: "two records have the same email".to_owned(),
    });
    s.summary.invalid = 1;
    s.summary.conflicts = 1;
    s
}

fn full_plan() -> PlanDocument {
    let contractors = sync("contractors", "hr-csv", "mojo", vec![], 12);
    let mut guests = sync(
        "guests",
        "entra",
        "zendesk",
        vec![with_field(
            change(Action::Update, "ann@example.com", Some(7)),
            "password",
            sensitive_marker(),
            sensitive_marker(),
        )],
        3,
    );
    if let Some(f) = guests.changes[0].fields.get_mut("password") {
        f.sensitive = true;
    }
    doc(vec![support_staff(), contractors, guests])
}

fn error_plan() -> PlanDocument {
    let mut failed = sync("zendesk-agents", "zendesk", "mojo", vec![], 0);
    failed
        .errors
        .push("source read failed: HTTP 401 Unauthorized".to_owned());
    let removals: Vec<Change> = (1..=3)
        .map(|i| {
            with_active(
                change(Action::Deactivate, &format!("u{i}@example.com"), Some(i)),
                Some(true),
                false,
            )
        })
        .collect();
    let mut guarded = sync("staff", "ldap", "rt", removals, 5);
    guarded.errors.push(
        "mass-removal guard: 3 removals exceed limits.max_removals (1); re-run with --allow-mass-removal"
            .to_owned(),
    );
    doc(vec![failed, guarded])
}

fn no_change_plan() -> PlanDocument {
    doc(vec![sync(
        "support-staff",
        "workspace",
        "mojo",
        vec![],
        140,
    )])
}

fn big_plan(n: u32) -> PlanDocument {
    let changes = (0..n)
        .map(|i| {
            let c = change(Action::Update, &format!("user{i}@example.com"), Some(i));
            with_field(
                c,
                "first_name",
                json!(format!("Old{i}")),
                json!(format!("New{i}")),
            )
        })
        .collect();
    doc(vec![sync("bulk", "csv", "mojo", changes, 10)])
}

const PLAIN: TextOptions = TextOptions { color: false };

/// Strips SGR sequences, so colour output can be compared with plain output.
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Reads `… N changes not shown` back from markdown output.
fn hidden_count(md: &str) -> Option<usize> {
    let line = md
        .lines()
        .find(|l| l.starts_with("… ") && l.contains(" not shown (output truncated"))?;
    line.trim_start_matches("… ")
        .split(' ')
        .next()?
        .parse()
        .ok()
}

#[test]
fn summary_lines() {
    let base = sync("support-staff", "s", "t", vec![], 140);
    type Edit = fn(&mut SyncPlan);
    let cases: Vec<(Edit, &str)> = vec![
        (|_| {}, "support-staff: no changes, 140 unchanged"),
        (
            |s| {
                s.summary.create = 3;
                s.summary.update = 2;
                s.summary.deactivate = 1;
                s.summary.adopt = 1;
            },
            "support-staff: 3 to create, 2 to update, 1 to deactivate, 1 to adopt, 140 unchanged",
        ),
        (
            |s| {
                s.summary = Summary {
                    create: 1,
                    update: 2,
                    deactivate: 3,
                    reactivate: 4,
                    delete: 5,
                    adopt: 6,
                    forget: 7,
                    unchanged: 0,
                    invalid: 0,
                    conflicts: 0,
                }
            },
            "support-staff: 1 to create, 2 to update, 3 to deactivate, 4 to reactivate, 5 to delete, \
             6 to adopt, 7 to forget, 0 unchanged",
        ),
        (
            |s| {
                s.summary.invalid = 2;
                s.summary.conflicts = 1;
            },
            "support-staff: no changes, 140 unchanged, 2 invalid, 1 conflict",
        ),
        (
            |s| {
                s.summary.delete = 1;
                s.summary.conflicts = 4;
            },
            "support-staff: 1 to delete, 140 unchanged, 4 conflicts",
        ),
        (
            |s| s.errors = vec!["a".to_owned(), "b".to_owned()],
            "support-staff: no changes, 140 unchanged, 2 errors",
        ),
    ];
    for (edit, expected) in cases {
        let mut s = base.clone();
        edit(&mut s);
        assert_eq!(summary_line(&s), expected);
    }
}

#[test]
fn text_full_plan() {
    insta::assert_snapshot!(text(&full_plan(), &PLAIN));
}

#[test]
fn text_errors() {
    insta::assert_snapshot!(text(&error_plan(), &PLAIN));
}

#[test]
fn text_no_changes() {
    let out = text(&no_change_plan(), &PLAIN);
    assert!(out.ends_with("No changes. Accounts match the configuration.\n"));
    insta::assert_snapshot!(out);
}

#[test]
fn text_color_only_when_asked() {
    for plan in [full_plan(), error_plan(), no_change_plan()] {
        let plain = text(&plan, &PLAIN);
        let colored = text(&plan, &TextOptions { color: true });
        assert!(!plain.contains('\x1b'));
        assert!(colored.contains('\x1b'));
        assert_eq!(strip_ansi(&colored), plain);
    }
}

#[test]
fn hostile_data_cannot_inject_escapes_or_lines() {
    let c = with_field(
        change(Action::Update, "x\x1b[2J@example.com", Some(1)),
        "user_notes",
        json!("a\nb\x1b[31m\n"),
        json!("a\nc\u{202e}\n"),
    );
    let mut s = sync("s\nfake: 0 to create", "a", "b", vec![c], 0);
    s.errors.push("boom\x1b]0;title\x07".to_owned());
    let plan = doc(vec![s]);
    let out = text(&plan, &PLAIN);
    assert!(!out.contains('\x1b'));
    assert!(!out.contains('\u{202e}'));
    assert!(!out.lines().any(|l| l.starts_with("fake")));
    assert!(!markdown(&plan, MARKDOWN_LIMIT).contains('\x1b'));
}

#[test]
fn markdown_full_plan() {
    let md = markdown(&full_plan(), MARKDOWN_LIMIT);
    assert!(!md.contains('\x1b'));
    assert!(!md.contains("hunter22"));
    insta::assert_snapshot!(md);
}

#[test]
fn markdown_errors() {
    insta::assert_snapshot!(markdown(&error_plan(), MARKDOWN_LIMIT));
}

#[test]
fn markdown_no_changes() {
    let md = markdown(&no_change_plan(), MARKDOWN_LIMIT);
    assert!(md.ends_with("\nNo changes.\n"));
    insta::assert_snapshot!(md);
}

#[test]
fn markdown_values_cannot_break_layout() {
    let c = with_field(
        change(Action::Update, "a@example.com", Some(1)),
        "user_notes",
        json!("line\n````\n</details>\n"),
        json!("line\n```` ok\n</details><script>\n"),
    );
    let plan = doc(vec![sync("pipe|name <b>", "src|x", "t", vec![c], 0)]);
    let md = markdown(&plan, MARKDOWN_LIMIT);
    assert!(
        md.contains("\n`````diff\n"),
        "fence longer than any backtick run"
    );
    assert!(md.contains("| pipe\\|name &lt;b&gt; | src\\|x → t |"));
    assert!(md.contains("<summary>sync pipe|name &lt;b&gt;:"));
    assert_eq!(md.matches("<details>").count(), 1);
    insta::assert_snapshot!(md);
}

#[test]
fn markdown_truncates_large_plans_with_exact_count() {
    let plan = big_plan(5_000);
    let md = markdown(&plan, MARKDOWN_LIMIT);
    assert!(md.chars().count() <= MARKDOWN_LIMIT);
    assert!(!md.contains('\x1b'));
    let hidden = hidden_count(&md).expect("truncation note");
    let shown = md.lines().filter(|l| l.starts_with("! update ")).count();
    assert!(shown > 0);
    assert_eq!(shown + hidden, 5_000);
    assert_eq!(
        md.matches("<details>").count(),
        md.matches("</details>").count()
    );
    assert_eq!(md.matches("```").count() % 2, 0, "every fence is closed");
    assert!(
        md.ends_with("run headcount plan locally for the full plan.\n\nPlan: 5000 to change.\n")
    );
}

#[test]
fn markdown_truncation_at_every_size_is_exact_and_closed() {
    let mut plan = full_plan();
    plan.syncs.push(big_plan(30).syncs.remove(0));
    let listed: usize = plan.syncs.iter().map(|s| s.changes.len()).sum();
    let full = markdown(&plan, usize::MAX);
    assert_eq!(hidden_count(&full), None);
    for limit in (0..full.chars().count() + 10).step_by(7) {
        let md = markdown(&plan, limit);
        assert!(md.chars().count() <= limit, "limit {limit}");
        if md.contains("<details>") {
            assert_eq!(
                md.matches("<details>").count(),
                md.matches("</details>").count()
            );
            let hidden = hidden_count(&md).unwrap_or(0);
            let headers = md
                .lines()
                .filter(|l| {
                    [
                        "+ create ",
                        "! update ",
                        "- deactivate ",
                        "+ reactivate ",
                        "- delete ",
                        "! adopt ",
                        "· forget ",
                    ]
                    .iter()
                    .any(|p| l.starts_with(p))
                })
                .count();
            assert_eq!(headers + hidden, listed, "limit {limit}");
        }
    }
}

#[test]
fn markdown_truncated_layout() {
    insta::assert_snapshot!(markdown(&full_plan(), 1_600));
}

#[test]
fn markdown_tiny_limit_still_fits() {
    let plan = big_plan(10);
    for limit in [0, 5, 40, 200] {
        assert!(markdown(&plan, limit).chars().count() <= limit);
    }
}

#[test]
fn line_diff_hides_far_context() {
    let before: String = (1..=20).map(|i| format!("line {i}\n")).collect();
    let after = before.replace("line 10\n", "line ten\n");
    let lines = line_diff(&before, &after);
    assert_eq!(lines.first(), Some(&DiffLine::Hidden(7)));
    assert!(lines.contains(&DiffLine::Removed("line 10".to_owned())));
    assert!(lines.contains(&DiffLine::Added("line ten".to_owned())));
    assert_eq!(lines.last(), Some(&DiffLine::Hidden(8)));
}

/// Invalid records are never hidden behind "No changes": every view's closing line counts
/// them (the JSON document carries them in each sync's `summary.invalid`).
#[test]
fn invalid_records_are_counted_in_every_closing_line() {
    let mut s = sync("staff", "hr", "helpdesk", vec![], 3);
    s.invalid.push(Invalid {
        record: "row 2".to_owned(),
        reason: "field `first_name`: user.firstname is not set".to_owned(),
    });
    s.summary.invalid = 1;
    let plan = doc(vec![s]);
    let out = text(&plan, &PLAIN);
    assert!(!out.contains("No changes"), "{out}");
    assert!(
        out.ends_with("Plan: 0 to change; skipped: 1 invalid record.\n"),
        "{out}"
    );
    let md = markdown(&plan, MARKDOWN_LIMIT);
    assert!(!md.contains("No changes"), "{md}");
    assert!(
        md.ends_with("\nPlan: 0 to change; skipped: 1 invalid record.\n"),
        "{md}"
    );
    let json = serde_json::to_value(&plan).expect("plan serialises");
    assert_eq!(json["syncs"][0]["summary"]["invalid"], 1);
}
