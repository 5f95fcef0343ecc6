//! S6 end to end (issue 8 item 7): the real OpenLDAP (`scripts/start-slapd.sh`) → the real
//! scim2-server, through the `headcount` binary and the example config
//! `examples/s6-ldap-to-scim/headcount.yaml` (a copy pointed at this test's own OU and SCIM
//! tenant). validate --online, plan, apply, plan = no changes; then a member leaves the group,
//! a new hire joins it and a member is renamed: plan and apply again, and check the server.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::slapd::{self, READER_PW};
use crate::support::{self, Output, ScimClient, scim_server, work_email};

const EXAMPLE_PEOPLE: &str = "ou=people,dc=example,dc=com";
const EXAMPLE_GROUP: &str = "cn=helpdesk-agents,ou=groups,dc=example,dc=com";

struct Case {
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    scim: ScimClient,
    token: String,
    ou: String,
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

impl Case {
    fn people(&self) -> String {
        format!("ou=people,{}", self.ou)
    }

    fn group(&self) -> String {
        format!("cn=helpdesk-agents,ou=groups,{}", self.ou)
    }

    fn dn(&self, uid: &str) -> String {
        format!("uid={uid},{}", self.people())
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_headcount"));
        c.current_dir(self.dir.path())
            .env_remove("HEADCOUNT_CONFIG")
            .env("NO_COLOR", "1")
            .env("SCIM_TOKEN", &self.token)
            .env("LDAP_BIND_PASSWORD", READER_PW)
            .args(["-c", "headcount.yaml", "--color", "never", "--no-progress"])
            .args(args)
            .stdin(Stdio::null());
        support::run_command(
            c,
            &format!("headcount {}", args.join(" ")),
            Duration::from_secs(60),
        )
    }

    /// `plan --format json`: the only sync's plan.
    fn plan(&self) -> Value {
        let out = self.run(&["plan", "--format", "json"]);
        assert!(out.success(), "plan failed\n{}", out.both());
        let doc: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("plan --format json: {e}\n{}", out.both()));
        doc["syncs"][0].clone()
    }

    fn apply(&self) -> Output {
        let out = self.run(&["apply", "--auto-approve"]);
        assert!(out.success(), "apply failed\n{}", out.both());
        out
    }

    fn assert_no_changes(&self) {
        let out = self.run(&["plan", "--detailed-exitcode"]);
        assert_eq!(out.code, Some(0), "expected no changes\n{}", out.both());
        // frank (no mail) stays listed as invalid, so the summary line says so.
        assert!(
            out.stdout.contains("no changes, 3 unchanged")
                || out.stdout.contains("no changes, 4 unchanged"),
            "{}",
            out.both()
        );
        assert!(out.stdout.contains("Plan: 0 to change"), "{}", out.both());
    }

    fn user(&self, name: &str) -> Value {
        self.rt
            .block_on(self.scim.user_by_name(name))
            .unwrap_or_else(|| panic!("{name} is not on the SCIM server"))
    }

    fn entry_uuid(&self, uid: &str) -> String {
        let dn = self.dn(uid);
        self.rt.block_on(async {
            let server = slapd::server().expect("slapd");
            let mut ldap = server.admin().await;
            let (entries, _) = ldap
                .search(
                    &dn,
                    ldap3::Scope::Base,
                    "(objectClass=*)",
                    vec!["entryUUID"],
                )
                .await
                .expect("search")
                .success()
                .expect("entry");
            let entry =
                ldap3::SearchEntry::construct(entries.into_iter().next().expect("one entry"));
            entry.attrs["entryUUID"][0].clone()
        })
    }
}

fn changes<'a>(sync: &'a Value, action: &str) -> Vec<&'a Value> {
    sync["changes"]
        .as_array()
        .map(|cs| cs.iter().filter(|c| c["action"] == action).collect())
        .unwrap_or_default()
}

fn user_names(changes: &[&Value]) -> Vec<String> {
    let mut names: Vec<String> = changes
        .iter()
        .map(|c| {
            c["identity"]["userName"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| c["identity"].to_string())
        })
        .collect();
    names.sort();
    names
}

/// The example config, pointed at this test's OU, slapd's ports and CA, and a SCIM tenant.
fn write_config(dir: &Path, server: &slapd::Slapd, ou: &str, base_url: &str) {
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/s6-ldap-to-scim/headcount.yaml");
    let text = std::fs::read_to_string(&example).expect("the S6 example");
    for needle in [
        "ldap://127.0.0.1:18389",
        "/tmp/headcount-it/slapd/tls/ca.pem",
        EXAMPLE_PEOPLE,
        EXAMPLE_GROUP,
        "http://127.0.0.1:8090/v2",
    ] {
        assert!(
            text.contains(needle),
            "the example no longer holds {needle}"
        );
    }
    let text = text
        .replace("ldap://127.0.0.1:18389", &server.url())
        .replace(
            "/tmp/headcount-it/slapd/tls/ca.pem",
            &server.ca_file().display().to_string(),
        )
        .replace(EXAMPLE_PEOPLE, &format!("ou=people,{ou}"))
        .replace(EXAMPLE_GROUP, &format!("cn=helpdesk-agents,ou=groups,{ou}"))
        .replace("http://127.0.0.1:8090/v2", base_url);
    std::fs::write(dir.join("headcount.yaml"), text).expect("write config");
}

#[test]
fn s6_ldap_group_to_scim_end_to_end() {
    let Some(ldap) = slapd::server() else { return };
    let Some(scim) = scim_server::server() else {
        return;
    };
    let one_at_a_time = scim_server::exclusive();
    let rt = support::runtime();
    let ou = rt.block_on(ldap.new_ou("s6"));
    let base_url = scim.new_tenant("s6-ldap");
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), ldap, &ou, &base_url);
    let c = Case {
        rt,
        dir,
        scim: ScimClient::new(&base_url, &scim.token),
        token: scim.token.clone(),
        ou,
        _one_at_a_time: one_at_a_time,
    };

    // The directory: four members (frank without mail), one non-member, and a member DN that
    // points at nothing.
    c.rt.block_on(async {
        let mut l = ldap.admin().await;
        let people = c.people();
        for (uid, given, sn, mail) in [
            ("alice", "Alice", "Anderson", Some("alice@example.com")),
            ("bob", "Bob", "Brown", Some("bob@example.com")),
            ("carol", "Carol", "Clark", Some("carol@example.com")),
            ("dave", "Dave", "Davis", Some("dave@example.com")),
            ("frank", "Frank", "Foster", None),
        ] {
            slapd::add_person(&mut l, &people, uid, given, sn, mail).await;
        }
        let members: Vec<String> = ["alice", "bob", "carol", "frank", "ghost"]
            .iter()
            .map(|u| c.dn(u))
            .collect();
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        slapd::add(
            &mut l,
            &c.group(),
            &[
                ("objectClass", &["groupOfNames"]),
                ("cn", &["helpdesk-agents"]),
                ("member", &members),
            ],
        )
        .await;
        let _ = l.unbind().await;
    });

    let out = c.run(&["validate"]);
    assert!(out.success(), "validate\n{}", out.both());
    let out = c.run(&["validate", "--online"]);
    assert!(out.success(), "validate --online\n{}", out.both());

    // First plan: three creates; frank is invalid (no mail) and listed; dave and the ghost DN
    // are not in it.
    let sync = c.plan();
    assert_eq!(
        user_names(&changes(&sync, "create")),
        ["alice", "bob", "carol"],
        "{sync:#}"
    );
    assert_eq!(
        sync["changes"].as_array().map(Vec::len),
        Some(3),
        "{sync:#}"
    );
    let invalid = sync["invalid"].as_array().expect("invalid");
    assert_eq!(invalid.len(), 1, "{sync:#}");
    assert_eq!(invalid[0]["record"], json!(c.dn("frank")));
    let text = c.run(&["plan"]);
    assert!(
        text.stdout.contains(&c.dn("frank")),
        "the text plan lists the invalid record\n{}",
        text.both()
    );

    c.apply();
    let alice = c.user("alice");
    assert_eq!(alice["externalId"], json!(c.entry_uuid("alice")));
    assert_eq!(alice["displayName"], json!("Alice Anderson"));
    assert_eq!(work_email(&alice), Some("alice@example.com"));
    assert_eq!(c.rt.block_on(c.scim.user_count()), 3);
    c.assert_no_changes();

    // Bob leaves the group, gina is hired into it, carol is renamed (new sn, cn and mail).
    let carol_id = c.user("carol")["id"].clone();
    c.rt.block_on(async {
        let mut l = ldap.admin().await;
        slapd::remove_value(&mut l, &c.group(), "member", &c.dn("bob")).await;
        slapd::add_person(
            &mut l,
            &c.people(),
            "gina",
            "Gina",
            "Green",
            Some("gina@example.com"),
        )
        .await;
        let gina = c.dn("gina");
        let ldap3_values = [gina.as_str()];
        let set: std::collections::HashSet<&str> = ldap3_values.into_iter().collect();
        l.modify(&c.group(), vec![ldap3::Mod::Add("member", set)])
            .await
            .expect("modify")
            .success()
            .expect("add gina to the group");
        let carol = c.dn("carol");
        slapd::replace(&mut l, &carol, "sn", &["Jones"]).await;
        slapd::replace(&mut l, &carol, "cn", &["Carol Jones"]).await;
        slapd::replace(&mut l, &carol, "mail", &["carol.jones@example.com"]).await;
        let _ = l.unbind().await;
    });

    let sync = c.plan();
    assert_eq!(user_names(&changes(&sync, "create")), ["gina"], "{sync:#}");
    assert_eq!(
        user_names(&changes(&sync, "deactivate")),
        ["bob"],
        "{sync:#}"
    );
    assert_eq!(user_names(&changes(&sync, "update")), ["carol"], "{sync:#}");
    assert_eq!(
        sync["changes"].as_array().map(Vec::len),
        Some(3),
        "{sync:#}"
    );
    assert_eq!(
        sync["invalid"].as_array().map(Vec::len),
        Some(1),
        "frank is still listed"
    );

    c.apply();
    assert_eq!(
        c.user("bob")["active"],
        json!(false),
        "bob left the group: deactivated"
    );
    let gina = c.user("gina");
    assert_eq!(gina["externalId"], json!(c.entry_uuid("gina")));
    assert_eq!(gina["active"], json!(true));
    let carol = c.user("carol");
    assert_eq!(carol["id"], carol_id, "renamed in place, not re-created");
    assert_eq!(carol["name"]["familyName"], json!("Jones"));
    assert_eq!(carol["displayName"], json!("Carol Jones"));
    assert_eq!(work_email(&carol), Some("carol.jones@example.com"));
    assert_eq!(c.rt.block_on(c.scim.user_count()), 4);
    c.assert_no_changes();
}
