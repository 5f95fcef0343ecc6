//! Issue 7, point 2: a vendor that echoes our credential never gets it onto stdout, stderr
//! (`-vv` logs included), an error or the audit log; `base_url`s with credentials or a query
//! are refused; a literal secret near a YAML syntax error is masked in the snippet.

use base64::Engine as _;
use headcount::testkit::scim::ScimEmulator;
use headcount::testkit::{Fault, Match};

use crate::support::{ConfigOptions, Person, Workspace};

const TOKEN: &str = "sc1m/t0ken+Echo==";

/// Every form the token takes on the wire or in the echo.
fn forms() -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        TOKEN.to_string(),
        b64.encode(TOKEN),
        url::form_urlencoded::byte_serialize(TOKEN.as_bytes()).collect(),
        "sc1m%2Ft0ken%2BEcho%3D%3D".to_string(),
    ]
}

fn assert_clean(what: &str, text: &str) {
    for f in forms() {
        assert!(!text.contains(&f), "{what} holds `{f}`:\n{text}");
    }
}

#[test]
fn a_vendor_echoing_the_token_leaks_it_nowhere() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emu = rt.block_on(ScimEmulator::with_token(TOKEN));
    emu.faults()
        .on(Match::post("/Users"))
        .always()
        .inject(Fault::EchoAuthorization { status: 400 });
    let work = Workspace::new(&emu.base_url(), TOKEN, ConfigOptions::default());
    work.write_people(&[Person::new("ada", "Ada", "Lovelace")]);

    let out = work.run(&["-vv", "apply", "--auto-approve"]);
    assert!(!out.success(), "{}", out.both());
    assert!(out.both().contains("[redacted]"), "{}", out.both());
    assert_clean("apply output", &out.both());
    let audit = std::fs::read_to_string(work.path(".headcount/audit.jsonl")).unwrap();
    assert!(audit.contains("\"error\""), "{audit}");
    assert_clean("audit log", &audit);

    // A list that fails the same way: the error lands in the plan and its formats.
    emu.faults().clear();
    emu.faults()
        .on(Match::get("/Users"))
        .always()
        .inject(Fault::EchoAuthorization { status: 400 });
    for format in ["text", "markdown", "json"] {
        let out = work.run(&["-vv", "plan", "--format", format]);
        assert!(out.both().contains("400"), "{}", out.both());
        assert_clean("plan output", &out.both());
    }
    drop(rt);
}
