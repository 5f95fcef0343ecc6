//! The `ldap` source against the real OpenLDAP of `scripts/start-slapd.sh` (read-only seed
//! data): record shape, paging past the server's size limit, StartTLS and LDAPS, groups, and
//! every error an admin must be able to act on (SPEC section 13).

use std::path::Path;

use headcount::connectors::{ConnectorError, Source, SourceRecord};
use headcount::testkit::capture;
use serde_json::{Value, json};

use crate::support::slapd::{
    self, AGENTS, LIMITED_DN, LIMITED_PW, PEOPLE, READER_DN, READER_PW, SEED_PEOPLE,
};

/// A reader-bound config over the seed's people, with `extra` merged in.
fn config(server: &slapd::Slapd, dir: &Path, extra: Value) -> Value {
    let mut c = json!({
        "url": server.url(),
        "bind_dn": READER_DN,
        "bind_password": slapd::password_file(dir, "reader-pw", READER_PW),
        "base_dn": PEOPLE,
        "filter": "(objectClass=inetOrgPerson)",
    });
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

fn source(server: &slapd::Slapd, dir: &Path, extra: Value) -> Box<dyn Source> {
    slapd::build(config(server, dir, extra), dir).expect("build the ldap source")
}

/// A source for `url` that needs no slapd (servers the test itself plays).
fn standalone(url: &str, dir: &Path) -> Box<dyn Source> {
    let c = json!({
        "url": url,
        "bind_dn": READER_DN,
        "bind_password": slapd::password_file(dir, "reader-pw", READER_PW),
        "base_dn": PEOPLE,
    });
    slapd::build(c, dir).expect("build the ldap source")
}

async fn read_err(s: &dyn Source) -> ConnectorError {
    match s.read().await {
        Ok(records) => panic!("expected an error, read {} records", records.len()),
        Err(e) => e,
    }
}

fn by_uid(records: &[SourceRecord]) -> std::collections::BTreeMap<String, Value> {
    records
        .iter()
        .map(|r| {
            (
                r.data["uid"].as_str().unwrap_or("").to_string(),
                r.data.clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn records_have_dn_entry_uuid_single_multi_and_binary_values() {
    let Some(server) = slapd::server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = source(
        server,
        dir.path(),
        json!({
            "filter": "(|(uid=alice)(uid=frank))",
            "attributes": ["uid", "mail", "cn", "telephoneNumber", "jpegPhoto", "memberOf"],
            "multi_valued": ["memberOf"],
        }),
    );
    let (logs, guard) = capture::logs();
    let records = s.read().await.expect("read");
    drop(guard);
    let map = by_uid(&records);
    let alice = &map["alice"];
    assert_eq!(alice["dn"], json!("uid=alice,ou=people,dc=example,dc=com"));
    let uuid = alice["entryUUID"].as_str().expect("entryUUID");
    assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{uuid}");
    assert_eq!(alice["mail"], json!("alice@example.com"));
    assert_eq!(alice["cn"], json!("Alice Anderson"));
    // Single-valued with two values: the first, and a warning.
    assert_eq!(alice["telephoneNumber"], json!("+1 555 0101"));
    assert!(
        logs.text().contains("several values of `telephoneNumber`"),
        "{}",
        logs.text()
    );
    // Binary: base64, never mangled.
    assert_eq!(alice["jpegPhoto"], json!("/9j/4AAQSkZJRgABAQ=="));
    assert_eq!(alice["memberOf"], json!([AGENTS]));
    assert_eq!(alice["groups"], json!([]), "groups is always present");
    let frank = &map["frank"];
    assert!(
        frank.get("mail").is_none(),
        "an absent attribute stays absent"
    );
    assert_eq!(
        records
            .iter()
            .find(|r| r.data["uid"] == "alice")
            .unwrap()
            .label,
        "uid=alice,ou=people,dc=example,dc=com"
    );
}

#[tokio::test]
async fn paging_reads_every_entry_past_the_servers_size_limit() {
    let Some(server) = slapd::server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The server stops unpaged searches of this bind at 500 entries; the default pages of 500
    // and odd pages of 97 both read all 606.
    for extra in [
        json!({"attributes": ["uid"]}),
        json!({"attributes": ["uid"], "page_size": 97}),
    ] {
        let records = source(server, dir.path(), extra)
            .read()
            .await
            .expect("read");
        assert_eq!(records.len(), SEED_PEOPLE);
        let uids: std::collections::BTreeSet<&str> = records
            .iter()
            .filter_map(|r| r.data["uid"].as_str())
            .collect();
        assert_eq!(uids.len(), SEED_PEOPLE, "every entry exactly once");
    }
}

#[tokio::test]
async fn probe_binds_and_reads_the_first_page_only() {
    let Some(server) = slapd::server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = source(
        server,
        dir.path(),
        json!({"attributes": ["uid"], "page_size": 5}),
    );
    assert_eq!(s.probe().await.expect("probe").len(), 5);
    let bad =
        json!({"bind_password": slapd::password_file(dir.path(), "bad", "wrong-password-91")});
    let err = source(server, dir.path(), bad).probe().await.unwrap_err();
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
}

#[tokio::test]
async fn a_size_limit_without_paging_is_an_error_saying_what_to_do() {
    let Some(server) = slapd::server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // `uid=limited` may read 500 entries in total, paged or not: the read fails part-way.
    let s = source(
        server,
        dir.path(),
        json!({
            "bind_dn": LIMITED_DN,
            "bind_password": slapd::password_file(dir.path(), "limited-pw", LIMITED_PW),
            "attributes": ["uid"],
            "page_size": 200,
        }),
    );
    let err = read_err(s.as_ref()).await;
    let text = err.to_string();
    assert!(matches!(err, ConnectorError::Rejected { .. }), "{err:?}");
    assert!(text.contains("size limit exceeded, 4"), "{text}");
    assert!(text.contains("page_size"), "{text}");
    assert!(text.contains("refuses paging"), "{text}");
}

#[tokio::test]
async fn invalid_credentials_name_the_bind_dn_never_the_password() {
    let Some(server) = slapd::server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let password = "hc-wrong-password-5e2a";
    let s = source(
        server,
        dir.path(),
        json!({"bind_password": slapd::password_file(dir.path(), "pw", password)}),
    );
    let (logs, guard) = capture::logs();
    let err = read_err(s.as_ref()).await;
    drop(guard);
    let text = err.to_string();
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
    assert!(text.contains(READER_DN), "{text}");
    assert!(text.contains("invalid credentials (49)"), "{text}");
    assert!(text.contains("bind_password"), "{text}");
    for t in [text, format!("{err:?}"), logs.text()] {
        assert!(!t.contains(password), "the password leaked: {t}");
    }
}

#[tokio::test]
async fn a_base_dn_that_does_not_exist_is_no_such_object() {
    let Some(server) = slapd::server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let base = "ou=nobody-here,dc=example,dc=com";
    let err = read_err(source(server, dir.path(), json!({"base_dn": base})).as_ref()).await;
    let text = err.to_string();
    assert!(matches!(err, ConnectorError::NotFound { .. }), "{err:?}");
    assert!(
        text.contains(base) && text.contains("does not exist"),
        "{text}"
    );
    assert!(text.contains("base_dn"), "{text}");
}

#[tokio::test]
async fn insufficient_access_says_to_grant_read_access() {
    let Some(server) = slapd::server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let base = "ou=restricted,dc=example,dc=com";
    let err = read_err(source(server, dir.path(), json!({"base_dn": base})).as_ref()).await;
    let text = err.to_string();
    assert!(matches!(err, ConnectorError::Permission { .. }), "{err:?}");
    assert!(text.contains("insufficient access (50)"), "{text}");
    assert!(text.contains(READER_DN), "{text}");
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("ldap://127.0.0.1:{port}");
    let err = read_err(standalone(&url, dir.path()).as_ref()).await;
    let text = err.to_string();
    assert!(matches!(err, ConnectorError::Unavailable(_)), "{err:?}");
    assert!(
        text.contains("connection refused") && text.contains(&url),
        "{text}"
    );
}

/// A server that accepts and never answers: the timeout ends the read (paused clock: the
/// 30 s pass in virtual time as soon as the runtime is idle).
#[tokio::test(start_paused = true)]
async fn a_server_that_never_answers_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ldap://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let err = read_err(standalone(&url, dir.path()).as_ref()).await;
    let text = err.to_string();
    assert!(matches!(err, ConnectorError::Unavailable(_)), "{err:?}");
    assert!(text.contains("no answer within 30s"), "{text}");
    drop(listener);
}

/// A proxy's HTML page on the LDAP port is a clear error, never a panic or the page itself.
#[tokio::test]
async fn a_non_ldap_answer_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ldap://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let serve = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // Bounded: one connection per read below.
        for _ in 0..2 {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 512];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\n\r\n<html><body>Bad Gateway</body></html>")
                .await;
            let _ = sock.shutdown().await;
        }
    });
    for _ in 0..2 {
        let s = standalone(&url, dir.path());
        let err = read_err(s.as_ref()).await;
        let text = err.to_string();
        assert!(text.contains("LDAP source `directory`"), "{text}");
        assert!(text.contains(&url), "{text}");
        assert!(text.contains("not at an HTTP service"), "{text}");
        assert!(!text.to_ascii_lowercase().contains("<html"), "{text}");
    }
    serve.abort();
}

#[tokio::test]
async fn starttls_and_ldaps_verify_the_server_with_ca_file() {
    let Some(server) = slapd::server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = server.ca_file().display().to_string();
    for extra in [
        json!({"starttls": true, "ca_file": ca, "filter": "(uid=alice)"}),
        json!({"url": server.ldaps_url(), "ca_file": ca, "filter": "(uid=alice)"}),
    ] {
        let records = source(server, dir.path(), extra.clone())
            .read()
            .await
            .expect("read over TLS");
        assert_eq!(records.len(), 1, "{extra}");
        assert_eq!(records[0].data["uid"], json!("alice"));
    }
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_is_a_tls_error_never_ignored() {
    let Some(server) = slapd::server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A CA that did not sign the server's certificate.
    let other_ca = dir.path().join("other-ca.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=other",
        ])
        .arg("-keyout")
        .arg(dir.path().join("other.key"))
        .arg("-out")
        .arg(&other_ca)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{made:?}");
    let other = other_ca.display().to_string();
    for extra in [
        // System roots: the test CA is not among them.
        json!({"url": server.ldaps_url()}),
        json!({"starttls": true}),
        json!({"url": server.ldaps_url(), "ca_file": other}),
        json!({"starttls": true, "ca_file": other}),
    ] {
        let err = read_err(source(server, dir.path(), extra.clone()).as_ref()).await;
        let text = err.to_string();
        assert!(
            matches!(err, ConnectorError::Unavailable(_)),
            "{extra}: {err:?}"
        );
        assert!(text.contains("TLS failed"), "{extra}: {text}");
        assert!(text.contains("ca_file"), "{extra}: {text}");
    }
}

#[tokio::test]
async fn groups_from_member_of_by_dn_and_by_cn() {
    let Some(server) = slapd::server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = source(
        server,
        dir.path(),
        json!({
            "filter": "(|(uid=alice)(uid=dave)(uid=erin)(uid=frank))",
            "attributes": ["uid"],
            "groups": [AGENTS, "managers"],
            "group_base_dn": "ou=groups,dc=example,dc=com",
        }),
    );
    let map = by_uid(&s.read().await.expect("read"));
    assert_eq!(map["alice"]["groups"], json!([AGENTS]));
    assert_eq!(map["dave"]["groups"], json!(["managers"]));
    assert_eq!(map["erin"]["groups"], json!([]));
    assert_eq!(map["frank"]["groups"], json!([AGENTS]));
    assert!(
        map["alice"].get("memberOf").is_none(),
        "memberOf only when asked for"
    );
}

#[tokio::test]
async fn groups_from_member_lists_ignore_a_member_that_points_at_nothing() {
    let Some(server) = slapd::server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = source(
        server,
        dir.path(),
        json!({
            "attributes": ["uid"],
            "groups": ["helpdesk-agents", "cn=support-unique,ou=groups,dc=example,dc=com"],
            "group_membership": "member",
            "group_base_dn": "ou=groups,dc=example,dc=com",
        }),
    );
    let (logs, guard) = capture::logs();
    let records = s.read().await.expect("read");
    drop(guard);
    assert_eq!(records.len(), SEED_PEOPLE);
    let map = by_uid(&records);
    for uid in ["alice", "bob", "carol", "frank"] {
        assert_eq!(map[uid]["groups"], json!(["helpdesk-agents"]), "{uid}");
    }
    // support-unique is a groupOfUniqueNames: it has no `member` list.
    assert_eq!(map["erin"]["groups"], json!([]));
    let text = logs.text();
    assert!(
        text.contains("group `helpdesk-agents` lists 1 member(s)"),
        "{text}"
    );
    assert!(
        text.contains("uid=ghost,ou=people,dc=example,dc=com"),
        "{text}"
    );

    let s = source(
        server,
        dir.path(),
        json!({
            "filter": "(|(uid=alice)(uid=bob)(uid=erin))",
            "attributes": ["uid"],
            "groups": ["cn=support-unique,ou=groups,dc=example,dc=com"],
            "group_membership": "unique_member",
        }),
    );
    let map = by_uid(&s.read().await.expect("read"));
    let unique = json!(["cn=support-unique,ou=groups,dc=example,dc=com"]);
    assert_eq!(map["alice"]["groups"], unique);
    assert_eq!(map["erin"]["groups"], unique);
    assert_eq!(map["bob"]["groups"], json!([]));
}

#[tokio::test]
async fn a_configured_group_that_does_not_exist_is_an_error() {
    let Some(server) = slapd::server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for group in [
        "cn=no-such-group,ou=groups,dc=example,dc=com",
        "no-such-group",
    ] {
        let s = source(server, dir.path(), json!({"groups": [group]}));
        let err = read_err(s.as_ref()).await;
        let text = err.to_string();
        assert!(matches!(err, ConnectorError::NotFound { .. }), "{err:?}");
        assert!(text.contains(group) && text.contains("`groups`"), "{text}");
    }
}

#[test]
fn the_active_directory_example_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ldap-active-directory");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_headcount"))
        .current_dir(&dir)
        .args(["--color", "never", "validate"])
        .output()
        .expect("run headcount");
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(dir.join("headcount.yaml")).unwrap();
    assert!(text.contains("memberOf:1.2.840.113556.1.4.1941:="));
    assert!(text.contains("1.2.840.113556.1.4.803:=2"));

    // Its `active` expression reads ACCOUNTDISABLE (bit 2) of userAccountControl: run it on
    // records carrying the attribute as AD sends it (a decimal string).
    let active = text
        .lines()
        .find_map(|l| l.strip_prefix("    active: "))
        .expect("an `active:` line");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("people.csv"),
        "mail,userAccountControl\nenabled@example.com,512\ndisabled@example.com,514\nlocked@example.com,66050\n",
    )
    .unwrap();
    let config = format!(
        "version: 1\nsources:\n  ad:\n    kind: csv\n    path: people.csv\ntargets:\n  files:\n    kind: csv_export\n    dir: out\nsyncs:\n  - name: support\n    from: ad\n    to: files\n    identity: [email]\n    fields:\n      email: user.mail\n    active: {active}\n"
    );
    std::fs::write(work.path().join("headcount.yaml"), config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_headcount"))
        .current_dir(work.path())
        .args(["--color", "never", "plan", "--format", "json"])
        .output()
        .expect("run headcount");
    assert!(out.status.success(), "{out:?}");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("plan json");
    let mut seen: Vec<(String, Value)> = doc["syncs"][0]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            (
                c["identity"]["email"].as_str().unwrap_or("").to_string(),
                c["active"]["after"].clone(),
            )
        })
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        [
            ("disabled@example.com".to_string(), json!(false)),
            ("enabled@example.com".to_string(), json!(true)),
            ("locked@example.com".to_string(), json!(false)),
        ]
    );
}
