//! `headcount init` starters: every source × target combination loads and validates as written.

use headcount::config;
use headcount::connectors::{SourceKind, TargetKind};

#[test]
fn every_starter_loads_and_validates_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    for source in SourceKind::ALL.iter().map(|k| k.as_str()) {
        for target in TargetKind::ALL.iter().map(|k| k.as_str()) {
            let text = config::starter(Some(source), Some(target)).unwrap();
            assert!(
                text.starts_with(
                    "# yaml-language-server: $schema=./schemas/headcount.schema.json\n"
                ),
                "{source} → {target}"
            );
            let path = dir.path().join(format!("{source}-{target}.yaml"));
            std::fs::write(&path, &text).unwrap();
            let loaded = config::load(&path)
                .unwrap_or_else(|e| panic!("{source} → {target}:\n{}\n{text}", e.render(false)));
            let validated = config::validate(&loaded)
                .unwrap_or_else(|e| panic!("{source} → {target}:\n{}\n{text}", e.render(false)));
            assert_eq!(validated.syncs.len(), 1);
            assert!(
                validated.warnings.is_empty(),
                "{source} → {target}: {:?}",
                validated.warnings
            );
            assert!(
                text.contains(&format!("kind: {source}\n")),
                "{source} → {target}"
            );
            assert!(
                text.contains(&format!("kind: {target}\n")),
                "{source} → {target}"
            );
        }
    }
}

#[test]
fn defaults_are_csv_to_csv_export() {
    assert_eq!(
        config::starter(None, None).unwrap(),
        config::starter(Some("csv"), Some("csv_export")).unwrap()
    );
}

#[test]
fn secrets_in_starters_are_references() {
    let text = config::starter(Some("google_workspace"), Some("mojo_helpdesk")).unwrap();
    assert!(text.contains("service_account_key: { env: GOOGLE_SA_KEY }"));
    assert!(text.contains("access_key: { env: MOJO_ACCESS_KEY }"));
}

#[test]
fn unknown_kinds_are_refused_with_the_list() {
    let e = config::starter(Some("okta"), None).unwrap_err();
    assert!(e.contains("unknown source kind `okta`"), "{e}");
    assert!(
        e.contains("csv, google_workspace, entra_id, zendesk, ldap, scim"),
        "{e}"
    );
    let e = config::starter(None, Some("mojo")).unwrap_err();
    assert!(e.contains("unknown target kind `mojo`"), "{e}");
    assert!(
        e.contains("csv_export, mojo_helpdesk, zendesk, scim, request_tracker, entra_guests"),
        "{e}"
    );
}
