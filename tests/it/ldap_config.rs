//! The `ldap` source's offline config checks (`headcount validate`), placed in the YAML.

use std::path::{Path, PathBuf};

use headcount::config::{self, ConfigErrors, LoadedConfig};

fn validate(text: &str) -> Result<config::Validated, ConfigErrors> {
    let path = Path::new("headcount.yaml");
    let cfg = config::parse(text, path).unwrap_or_else(|e| panic!("{}", e.render(false)));
    config::validate(&LoadedConfig {
        path: path.to_path_buf(),
        base_dir: PathBuf::from("."),
        text: text.to_string(),
        sha256: String::new(),
        config: cfg,
    })
}

fn config(source: &str) -> String {
    format!(
        "version: 1
sources:
  dir:
    kind: ldap
{source}targets:
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
"
    )
}

#[test]
fn bind_filter_timeout_and_url_are_checked_where_they_are_written() {
    let text = config(
        "    url: ldap://
    bind_dn: cn=x,dc=example,dc=com
    base_dn: dc=example,dc=com
    filter: \"(uid=alice\"
    timeout: soon
    groups: [\"\"]
",
    );
    let errs = match validate(&text) {
        Ok(v) => panic!("expected errors: {:?}", v.warnings),
        Err(e) => e,
    };
    let rendered = errs.render(false);
    for needle in [
        "`url` of source `dir` names no server",
        "`bind_dn` needs `bind_password`",
        "`filter` of source `dir` is not a valid LDAP filter",
        "`timeout` of source `dir`",
        "`groups` of source `dir` holds an empty name",
    ] {
        assert!(
            errs.iter().any(|e| e.message().contains(needle)),
            "no error contains {needle:?}:\n{rendered}"
        );
    }
    let filter = errs
        .iter()
        .find(|e| e.message().contains("not a valid LDAP filter"))
        .expect("filter error");
    assert_eq!(filter.line(), Some(8), "{rendered}");
}

#[test]
fn a_complete_ldap_source_validates_and_warns_about_starttls_on_ldaps() {
    let text = config(
        "    url: ldaps://ldap.example.com
    starttls: true
    bind_dn: cn=x,dc=example,dc=com
    bind_password: { env: LDAP_BIND_PASSWORD }
    base_dn: ou=people,dc=example,dc=com
    filter: \"(&(objectClass=user)(memberOf:1.2.840.113556.1.4.1941:=cn=support,dc=example,dc=com))\"
    scope: one
    ca_file: ca.pem
    timeout: 10s
    groups: [support, cn=admins,ou=groups,dc=example,dc=com]
    group_membership: unique_member
    group_base_dn: ou=groups,dc=example,dc=com
    page_size: 200
",
    );
    let v = validate(&text).unwrap_or_else(|e| panic!("{}", e.render(false)));
    assert!(
        v.warnings
            .iter()
            .any(|w| w.contains("`starttls` has no effect on an ldaps:// URL")),
        "{:?}",
        v.warnings
    );
}

/// A simple bind over plain ldap:// to another host sends the password in clear text: said
/// at validate time; StartTLS, ldaps:// and loopback are quiet.
#[test]
fn a_clear_text_bind_to_another_host_is_warned_about() {
    let with = |url: &str, starttls: bool| {
        let text = config(&format!(
            "    url: {url}
    starttls: {starttls}
    bind_dn: cn=x,dc=example,dc=com
    bind_password: {{ env: LDAP_BIND_PASSWORD }}
    base_dn: ou=people,dc=example,dc=com
"
        ));
        let v = validate(&text).unwrap_or_else(|e| panic!("{}", e.render(false)));
        v.warnings.iter().any(|w| w.contains("clear text"))
    };
    assert!(with("ldap://ldap.example.com", false));
    assert!(!with("ldap://ldap.example.com", true));
    assert!(!with("ldaps://ldap.example.com", false));
    assert!(!with("ldap://127.0.0.1:18389", false));
}
