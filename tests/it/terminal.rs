//! Issue 7, point 9: control characters from a source never reach the terminal raw (plans in
//! every human format, `show`, `apply`, `state list/show`), make an identity invalid, and logs
//! carry no colour codes when stderr is not a terminal.

use std::path::Path;
use std::process::Command;

/// A raw terminal control character (C0 but newline and tab, DEL, C1) or bidi override.
fn raw_control(text: &str) -> Option<char> {
    text.chars().find(|c| {
        (c.is_control() && !matches!(c, '\n' | '\t'))
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    })
}

#[test]
fn escape_sequences_in_a_csv_are_escaped_everywhere_and_invalid_in_identities() {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/e2e");
    std::fs::copy(
        src.join("headcount.yaml"),
        dir.path().join("headcount.yaml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("people.csv"),
        "email,first,last,company,dept,status,password,notes\n\
         ann@example.com,Ann\u{1b}[31mRED\u{1b}]0;title\u{7},Arch\u{9b}er\u{202e},Acme,Sales,active,,\"line1\u{1b}[2J\nline2\"\n\
         ev\u{1b}[1mil@example.com,Eve,E,Acme,Sales,active,,\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_headcount"))
            .current_dir(dir.path())
            .env_remove("HEADCOUNT_CONFIG")
            .env_remove("NO_COLOR")
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(c) = raw_control(&text) {
            panic!(
                "`headcount {}` printed U+{:04X} raw:\n{text}",
                args.join(" "),
                u32::from(c)
            );
        }
        (out.status.code(), text)
    };
    let (_, plan) = run(&["-vv", "plan"]);
    assert!(plan.contains("Ann\\u001b[31mRED"), "{plan}");
    assert!(
        plan.contains("identity field `email` holds a control character (U+001B)"),
        "{plan}"
    );
    run(&["-vv", "--color", "never", "plan", "--format", "markdown"]);
    run(&["plan", "--out", "plan.json"]);
    run(&["show", "plan.json"]);
    run(&["show", "plan.json", "--format", "markdown"]);
    let (code, _) = run(&["-vv", "apply", "--auto-approve"]);
    assert_eq!(code, Some(0));
    let (_, list) = run(&["state", "list"]);
    assert!(list.contains("ann@example.com"), "{list}");
    let (_, shown) = run(&["state", "show", "ann@example.com"]);
    assert!(shown.contains("Arch\\u009ber\\u202e"), "{shown}");
    let (_, missing) = run(&["state", "show", "x\u{1b}[2Jy"]);
    assert!(missing.contains("x\\u{1b}[2Jy"), "{missing}");
}
