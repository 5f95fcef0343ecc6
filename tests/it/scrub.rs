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

const SCIM_CONFIG: &str = "version: 1
sources:
  hr:
    kind: csv
    path: people.csv
targets:
  app:
    kind: scim
    base_url: BASE
    token: { env: SCIM_TOKEN }
syncs:
  - name: staff
    from: hr
    to: app
    identity: [userName]
    fields:
      userName: user.userName
";

fn validate(base_url: &str) -> headcount::config::ConfigErrors {
    let text = SCIM_CONFIG.replace("BASE", base_url);
    let path = std::path::Path::new("headcount.yaml");
    let config = headcount::config::parse(&text, path).unwrap();
    let loaded = headcount::config::LoadedConfig {
        path: path.to_path_buf(),
        base_dir: ".".into(),
        text: text.clone(),
        sha256: String::new(),
        config,
    };
    match headcount::config::validate(&loaded) {
        Ok(_) => panic!("{base_url} was accepted"),
        Err(e) => e,
    }
}

#[test]
fn a_base_url_with_credentials_is_a_literal_secret_and_is_not_echoed() {
    for url in [
        "https://agent:hunter22-pw@scim.example.com/v2",
        "https://hunter22-pw@scim.example.com/v2",
    ] {
        let errs = validate(url);
        let shown = errs.render(false);
        assert!(shown.contains("carries credentials"), "{shown}");
        assert!(shown.contains("literal secret"), "{shown}");
        assert!(!shown.contains("hunter22"), "{shown}");
        let e = errs.iter().next().unwrap();
        assert_eq!(e.kind(), headcount::config::ErrorKind::Secret);
        assert_eq!(e.line(), Some(9), "{shown}");
    }
}

#[test]
fn a_base_url_with_a_query_is_refused_with_a_clear_message() {
    for url in [
        "https://scim.example.com/v2?access_key=k3y-value",
        "https://scim.example.com/v2#frag",
    ] {
        let shown = validate(url).render(false);
        assert!(
            shown.contains("appends API paths such as `/Users`"),
            "{shown}"
        );
        assert!(!shown.contains("k3y-value"), "{shown}");
    }
}

#[test]
fn a_base_url_with_credentials_is_refused_at_build_time_too() {
    let work = Workspace::new(
        "https://agent:hunter22-pw@127.0.0.1:9/v2",
        TOKEN,
        ConfigOptions::default(),
    );
    let out = work.run(&["plan"]);
    assert_eq!(out.code, Some(1), "{}", out.both());
    assert!(out.both().contains("credentials"), "{}", out.both());
    assert!(!out.both().contains("hunter22"), "{}", out.both());
}

#[test]
fn a_literal_secret_in_a_yaml_syntax_error_snippet_is_masked() {
    let dir = tempfile::tempdir().unwrap();
    for text in [
        "version: 1\ntargets:\n  helpdesk:\n    kind: mojo_helpdesk\n    access_key: s3cr3t-mojo-key: x\nsyncs: []\n",
        "version: 1\ntargets:\n  helpdesk:\n    kind: mojo_helpdesk\n    access_key: s3cr3t-mojo-key\n   bad: [\nsyncs: []\n",
        "version: 1\ntargets:\n  app: {kind: scim, token: \"s3cr3t-mojo-key, base_url: x}\n",
    ] {
        let path = dir.path().join("headcount.yaml");
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_headcount"))
            .args(["--color", "never", "-c"])
            .arg(&path)
            .arg("validate")
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{shown}");
        assert!(shown.contains("YAML syntax error"), "{shown}");
        assert!(shown.contains(" | "), "a snippet is shown: {shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }
}
