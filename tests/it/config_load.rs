//! Loading config files: syntax, version, unknown keys, secrets, budgets (SPEC sections 4, 13).

use std::path::{Path, PathBuf};

use headcount::config::{self, ConfigError, ErrorKind, SecretRef};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

fn load_err(name: &str) -> ConfigError {
    config::load(&fixture(name)).expect_err("the fixture must fail to load")
}

fn parse_err(text: &str) -> ConfigError {
    config::parse(text, Path::new("headcount.yaml")).expect_err("the text must fail to parse")
}

/// A minimal valid config with `extra` appended under `targets:`'s entry.
const BASE: &str = "version: 1
sources:
  people:
    kind: csv
    path: hr/people.csv
targets:
  helpdesk:
    kind: mojo_helpdesk
    access_key: { env: MOJO_ACCESS_KEY }
syncs:
  - name: everyone
    from: people
    to: helpdesk
    identity: [email]
    fields:
      email: user.email
";

#[test]
fn the_spec_example_loads() {
    let loaded = config::load(&fixture("spec_example.yaml")).unwrap();
    assert_eq!(loaded.config.version, 1);
    assert_eq!(loaded.config.sources.len(), 2);
    assert_eq!(loaded.sha256.len(), 64);
    assert_eq!(loaded.base_dir, fixture(""));
    let sync = &loaded.config.syncs[0];
    assert_eq!(sync.name.value, "support-staff");
    assert_eq!((sync.name.pos.line, sync.name.pos.column), (28, 11));
}

#[test]
fn a_missing_file_says_how_to_start() {
    let err = config::load(Path::new("/nonexistent/headcount.yaml")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.render(false).contains("headcount init"),
        "{}",
        err.render(false)
    );
}

#[test]
fn a_yaml_syntax_error_has_line_column_and_snippet() {
    let err = load_err("syntax_error.yaml");
    assert_eq!(err.kind(), ErrorKind::Syntax);
    let out = err.render(false);
    let path = fixture("syntax_error.yaml").display().to_string();
    assert!(
        out.starts_with(&format!("{path}:5:4: YAML syntax error")),
        "{out}"
    );
    assert!(out.contains("5 |    path: hr/people.csv"), "{out}");
    assert!(
        out.contains("4 |     kind: csv"),
        "the line before gives context: {out}"
    );
    assert!(out.contains("^"), "{out}");
    assert!(out.contains("help:"), "{out}");
}

#[test]
fn an_unknown_top_level_key_is_named_with_its_position() {
    let err = parse_err(&format!("{BASE}sycns: []\n"));
    assert_eq!(err.kind(), ErrorKind::UnknownKey);
    assert_eq!((err.line(), err.column()), (Some(17), Some(1)));
    assert!(
        err.message()
            .contains("unknown key `sycns` at the top level; did you mean `syncs`?"),
        "{err}"
    );
}

#[test]
fn an_unknown_sync_key_suggests_the_nearest() {
    let err = load_err("unknown_sync_key.yaml");
    assert_eq!(err.kind(), ErrorKind::UnknownKey);
    assert_eq!((err.line(), err.column()), (Some(12), Some(5)));
    let out = err.render(false);
    assert!(
        out.contains("unknown key `frm` in sync `everyone`; did you mean `from`?"),
        "{out}"
    );
    assert!(out.contains("12 |     frm: people"), "{out}");
    assert!(out.contains("   |     ^^^ unknown key"), "{out}");
    assert!(
        out.contains("valid keys here: name, from, to, where"),
        "{out}"
    );
}

#[test]
fn an_unknown_key_inside_a_source_has_its_position() {
    let text = "version: 1\nsources:\n  people:\n    kind: csv\n    path: hr/people.csv\n    delimeter: ';'\n";
    let err = parse_err(text);
    assert_eq!(err.kind(), ErrorKind::UnknownKey);
    assert_eq!((err.line(), err.column()), (Some(6), Some(5)), "{err}");
    assert!(
        err.message()
            .contains("unknown key `delimeter` in source `people`; did you mean `delimiter`?"),
        "{err}"
    );
}

#[test]
fn an_unknown_key_inside_a_target_has_its_position() {
    let err = load_err("unknown_target_key.yaml");
    assert_eq!((err.line(), err.column()), (Some(10), Some(5)), "{err}");
    assert!(
        err.message().contains("`rate_limt` in target `helpdesk`"),
        "{err}"
    );
    assert!(
        err.message().contains("did you mean `rate_limit`?"),
        "{err}"
    );
    let out = err.render(false);
    assert!(out.contains("10 |     rate_limt: 120/min"), "{out}");
}

#[test]
fn errors_nested_in_a_source_point_inside_it() {
    // Nested mapping inside a tagged entry, with `kind` last.
    let text = "version: 1
sources:
  ws:
    customer: my_customer
    credentials:
      service_account_key: { env: KEY }
      subjct: admin@example.com
    kind: google_workspace
";
    let err = parse_err(text);
    assert_eq!((err.line(), err.column()), (Some(7), Some(7)), "{err}");
    assert!(
        err.message().contains("in `credentials` of source `ws`"),
        "{err}"
    );
    assert!(err.message().contains("did you mean `subject`?"), "{err}");
}

#[test]
fn wrong_types_have_positions() {
    let text = "version: 1\ntargets:\n  files:\n    kind: csv_export\n    dir: out\n    max_rows_per_file: lots\n";
    let err = parse_err(text);
    assert_eq!(err.kind(), ErrorKind::Type);
    assert_eq!((err.line(), err.column()), (Some(6), Some(24)), "{err}");
    assert!(
        err.message()
            .contains("`max_rows_per_file` in target `files`"),
        "{err}"
    );

    let err = parse_err(&BASE.replace("identity: [email]", "identity: email"));
    assert_eq!(err.kind(), ErrorKind::Type);
    assert_eq!(err.line(), Some(14), "{err}");
    assert!(
        err.message().contains("`identity` in sync `everyone`"),
        "{err}"
    );

    let err = parse_err(&format!("{BASE}    removed: deactvate\n"));
    assert!(
        err.message().contains("did you mean `deactivate`?"),
        "{err}"
    );
    assert_eq!((err.line(), err.column()), (Some(17), Some(14)), "{err}");
}

#[test]
fn unknown_and_missing_kinds() {
    let text = "version: 1\nsources:\n  hr:\n    kind: cvs\n    path: a.csv\n";
    let err = parse_err(text);
    assert!(err.message().contains("unknown source kind `cvs`"), "{err}");
    assert!(err.message().contains("did you mean `csv`?"), "{err}");
    assert_eq!((err.line(), err.column()), (Some(4), Some(11)), "{err}");

    let text = "version: 1\ntargets:\n  out:\n    dir: x\n";
    let err = parse_err(text);
    assert_eq!(err.kind(), ErrorKind::MissingKey);
    assert!(
        err.message().contains("missing key `kind` in target `out`"),
        "{err}"
    );
    assert!(
        err.help_text().unwrap_or_default().contains("csv_export"),
        "{err:?}"
    );

    let text = "version: 1\nsources:\n  hr:\n    kind: csv\n";
    let err = parse_err(text);
    assert!(
        err.message().contains("missing key `path` in source `hr`"),
        "{err}"
    );
    assert_eq!(err.line(), Some(3), "{err}");
}

#[test]
fn an_unknown_version_names_the_supported_ones() {
    let err = load_err("version_7.yaml");
    assert_eq!(err.kind(), ErrorKind::Version);
    assert_eq!((err.line(), err.column()), (Some(2), Some(10)));
    assert!(
        err.message()
            .contains("unsupported config version 7: this build reads version 1"),
        "{err}"
    );
    assert!(err.render(false).contains("versions this build reads: 1"));
}

#[test]
fn a_missing_version_is_an_error() {
    let err = parse_err(&BASE.replace("version: 1\n", ""));
    assert_eq!(err.kind(), ErrorKind::Version);
    assert!(err.message().contains("`version` is missing"), "{err}");
    assert!(err.render(false).contains("version: 1"));
}

#[test]
fn a_literal_secret_is_refused_with_its_position_and_not_echoed() {
    let err = load_err("literal_secret.yaml");
    assert_eq!(err.kind(), ErrorKind::Secret);
    assert_eq!((err.line(), err.column()), (Some(5), Some(17)), "{err}");
    assert!(
        err.message().contains("`access_key` in target `helpdesk`"),
        "{err}"
    );
    let out = err.render(false);
    assert!(!out.contains("s3cr3t-mojo-key"), "{out}");
    assert!(out.contains("{ env: VARIABLE }"), "{out}");
    assert!(
        !format!("{err:?}").contains("s3cr3t"),
        "the Debug form leaks: {err:?}"
    );

    // A literal number, nested inside a source's credentials.
    let text = "version: 1\nsources:\n  ws:\n    kind: google_workspace\n    credentials:\n      subject: a@example.com\n      service_account_key: 123456\n";
    let err = parse_err(text);
    assert_eq!(err.kind(), ErrorKind::Secret);
    assert_eq!((err.line(), err.column()), (Some(7), Some(28)), "{err}");
    assert!(!err.render(false).contains("123456"));
}

#[test]
fn secret_references_are_accepted_and_checked() {
    let text = BASE.replace("{ env: MOJO_ACCESS_KEY }", "{ file: secrets/mojo.key }");
    let cfg = config::parse(&text, Path::new("h.yaml")).unwrap();
    match &cfg.targets["helpdesk"] {
        config::TargetConfig::MojoHelpdesk(mojo) => {
            assert_eq!(mojo.access_key, SecretRef::File("secrets/mojo.key".into()));
        }
        other => panic!("{other:?}"),
    }
    let err = parse_err(&BASE.replace("{ env: MOJO_ACCESS_KEY }", "{ envv: MOJO_ACCESS_KEY }"));
    assert!(err.message().contains("unknown key `envv`"), "{err}");
    assert!(err.message().contains("did you mean `env`?"), "{err}");
    assert_eq!((err.line(), err.column()), (Some(9), Some(19)), "{err}");
    let err = parse_err(&BASE.replace("{ env: MOJO_ACCESS_KEY }", "{ env: A, file: b }"));
    assert_eq!(err.kind(), ErrorKind::Secret);
    assert!(
        err.message().contains("exactly one of `env` or `file`"),
        "{err}"
    );
}

#[test]
fn secret_resolution_errors_name_the_variable_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = SecretRef::Env("HEADCOUNT_TEST_SURELY_UNSET_VARIABLE".into());
    let msg = missing.resolve(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains("HEADCOUNT_TEST_SURELY_UNSET_VARIABLE"),
        "{msg}"
    );

    let missing = SecretRef::File("nope.key".into());
    let msg = missing.resolve(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("nope.key"), "{msg}");

    std::fs::write(dir.path().join("ok.key"), "s3cret\n").unwrap();
    let ok = SecretRef::File("ok.key".into())
        .resolve(dir.path())
        .unwrap();
    assert_eq!(secrecy::ExposeSecret::expose_secret(&ok), "s3cret");
}

#[test]
fn duplicate_keys_are_errors() {
    let err = parse_err(&format!("{BASE}    identity: [email]\n"));
    assert!(err.message().contains("duplicate key `identity`"), "{err}");
    assert_eq!(err.line(), Some(17));
}

#[test]
fn non_utf8_files_name_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("headcount.yaml");
    std::fs::write(&path, b"version: 1\nsources:\n  caf\xe9: {}\n").unwrap();
    let err = config::load(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Encoding);
    assert!(err.message().contains("line 3, column 6"), "{err}");
}

#[test]
fn a_bom_is_accepted() {
    let text = format!("\u{feff}{BASE}");
    config::parse(&text, Path::new("h.yaml")).unwrap();
}

#[test]
fn deep_or_huge_input_is_refused_by_budget() {
    let deep = format!(
        "version: 1\nx: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let err = parse_err(&deep);
    assert_eq!(err.kind(), ErrorKind::Budget, "{err}");

    let deep_block: String = (0..200)
        .map(|i| format!("{}k{i}:\n", "  ".repeat(i)))
        .collect();
    let err = parse_err(&format!("version: 1\n{deep_block}"));
    assert_eq!(err.kind(), ErrorKind::Budget, "{err}");

    let huge = format!("version: 1\n# {}\n", "x".repeat(config::MAX_CONFIG_BYTES));
    let err = parse_err(&huge);
    assert_eq!(err.kind(), ErrorKind::Budget, "{err}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.yaml");
    std::fs::write(&path, &huge).unwrap();
    assert_eq!(config::load(&path).unwrap_err().kind(), ErrorKind::Budget);

    let wide: String = (0..200_000).map(|i| format!("- {i}\n")).collect();
    let err = parse_err(&format!("version: 1\nsyncs:\n{wide}"));
    assert_eq!(err.kind(), ErrorKind::Budget, "{err}");
}

#[test]
fn an_alias_bomb_is_refused_by_budget() {
    // Ten levels of nine aliases: 9^10 strings once expanded. Inside a tagged source the whole
    // value is buffered, so serde would expand every alias.
    let mut bomb = String::from("[&a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]");
    for i in 1..10 {
        bomb.push_str(&format!(
            ", &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]",
            p = i - 1
        ));
    }
    bomb.push(']');
    let text = format!(
        "version: 1\nsources:\n  hr:\n    kind: csv\n    path: a.csv\n    delimiter: {bomb}\n"
    );
    let start = std::time::Instant::now();
    let err = parse_err(&text);
    assert!(start.elapsed().as_secs() < 10, "took {:?}", start.elapsed());
    assert_eq!(err.kind(), ErrorKind::Budget, "{err}");
}

#[test]
fn a_large_anchor_aliased_many_times_is_refused() {
    let big = "x".repeat(1024 * 1024);
    let aliases = vec!["*big"; 40].join(", ");
    let text = format!(
        "version: 1\nsources:\n  hr:\n    kind: csv\n    path: &big {big}\n    delimiter: [{aliases}]\n"
    );
    let err = parse_err(&text);
    assert_eq!(err.kind(), ErrorKind::Budget, "{err}");
    assert!(err.message().contains("aliases"), "{err}");
}

#[test]
fn truncated_prefixes_never_panic() {
    let text = std::fs::read_to_string(fixture("spec_example.yaml")).unwrap();
    let mut cut = 0;
    // Every other character and every line end (debug builds parse slowly; this keeps the
    // sweep to a few seconds while still cutting inside every token kind).
    for (i, c) in text.char_indices() {
        if i % 2 == 1 && c != '\n' {
            continue;
        }
        let prefix = &text[..i];
        match config::parse(prefix, Path::new("h.yaml")) {
            Ok(_) => {}
            Err(e) => {
                // Rendering must not panic either, and must name the file.
                assert!(e.render(false).starts_with("h.yaml"), "{}", e.render(false));
                let _ = e.render(true);
                cut += 1;
            }
        }
    }
    assert!(cut > 0);
    // Single-byte corruptions too.
    for (i, _) in text.char_indices().step_by(17) {
        for bad in [
            "\t", "'", "\"", "[", "{", ":", "&", "*", "!", "|", "-", "\u{0}",
        ] {
            let mutated = format!("{}{}{}", &text[..i], bad, &text[i..]);
            if let Err(e) = config::parse(&mutated, Path::new("h.yaml")) {
                let _ = e.render(false);
            }
        }
    }
}

/// Issue 7 point 10: the tab YAML rejects is pointed at, not the line above it.
#[test]
fn a_tab_is_pointed_at_where_it_is() {
    let text = "version: 1\nsources:\n  hr:\n    kind: csv\n\tpath: people.csv\n";
    let err = parse_err(text);
    assert_eq!((err.line(), err.column()), (Some(5), Some(1)), "{err}");
    assert!(err.message().contains("tab"), "{err}");
    let err = parse_err("version: 1\nsources:\n\thr:\n    kind: csv\n");
    assert_eq!((err.line(), err.column()), (Some(3), Some(1)), "{err}");
}

/// Issue 7 point 10: a number too large for its key names the key, also inside a source.
#[test]
fn a_too_large_number_names_its_key() {
    let text = BASE.replace(
        "    path: hr/people.csv\n",
        "    path: hr/people.csv\n    max_bytes: 99999999999999999999999\n",
    );
    let err = parse_err(&text);
    assert!(
        err.message()
            .contains("`max_bytes` in source `people` is too large a number"),
        "{err}"
    );
    assert_eq!((err.line(), err.column()), (Some(6), Some(16)), "{err}");
}

/// A bare number where a duration (a string) is expected is a wrong type, not "too large".
#[test]
fn a_number_for_a_duration_is_a_wrong_type_not_too_large() {
    let text = BASE.replace(
        "    access_key: { env: MOJO_ACCESS_KEY }\n",
        "    access_key: { env: MOJO_ACCESS_KEY }\n    timeout: 30\n",
    );
    let err = parse_err(&text);
    let msg = err.message();
    assert!(!msg.contains("too large"), "{err}");
    assert!(
        msg.contains("`timeout`") && msg.contains("wrong type"),
        "{err}"
    );
}
