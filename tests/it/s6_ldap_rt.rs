//! S6 end to end (issue 8 item 8 / issue 9 item 6): the real OpenLDAP
//! (`scripts/start-slapd.sh`, over LDAPS) → the real Request Tracker 5 (`scripts/start-rt.sh`),
//! through the `headcount` binary and the example config `examples/s6-ldap-to-rt/headcount.yaml`
//! (a scratch copy pointed at this test's own OU, slapd's CA and the local RT).
//!
//! validate, validate --online, plan (members become privileged RT users; a member without
//! `mail` is invalid and listed; a member DN pointing at nothing is ignored), apply, plan = no
//! changes; then a member leaves the group (disabled, not deleted), a new hire joins and a
//! member is renamed (same RT id): plan shows exactly those, apply, RT checked through its REST
//! API, and a last plan with no changes.
//!
//! Isolation: slapd and RT are shared by every test and run. The LDAP side lives in an OU of
//! its own ([`slapd::Slapd::new_ou`]); every uid (so every RT `Name`) and address starts with a
//! unique prefix ([`rt_server::prefix`]), and the state file lives in the test's scratch folder,
//! so the syncs manage only this test's users. The RT tests' lock is held throughout.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::rt_server::{self, Admin};
use crate::support::slapd::{self, READER_DN, READER_PW};
use crate::support::work::Work;
use crate::support::{self, Output};

/// What the example names, rewritten for the test.
const EXAMPLE_URL: &str = "url: ldaps://ldap.example.com:636";
const EXAMPLE_CA: &str = "# ca_file: /etc/ssl/certs/corp-ldap-ca.pem";
const EXAMPLE_BIND: &str = "cn=headcount,ou=services,dc=example,dc=com";
const EXAMPLE_GROUP: &str = "cn=helpdesk-agents,ou=groups,dc=example,dc=com";
const EXAMPLE_PEOPLE: &str = "ou=people,dc=example,dc=com";
const EXAMPLE_RT: &str = "base_url: https://rt.example.com";

struct Case {
    rt: tokio::runtime::Runtime,
    work: Work,
    admin: Admin,
    token: String,
    ou: String,
    /// Every uid and address starts with it.
    prefix: String,
}

impl Case {
    fn uid(&self, who: &str) -> String {
        format!("{}{who}", self.prefix)
    }

    fn mail(&self, who: &str) -> String {
        format!("{}{who}@example.com", self.prefix)
    }

    fn people(&self) -> String {
        format!("ou=people,{}", self.ou)
    }

    fn group(&self) -> String {
        format!("cn=helpdesk-agents,ou=groups,{}", self.ou)
    }

    fn dn(&self, who: &str) -> String {
        format!("uid={},{}", self.uid(who), self.people())
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_headcount"));
        c.current_dir(self.work.dir.path())
            .env_remove("HEADCOUNT_CONFIG")
            .env("NO_COLOR", "1")
            .env("RT_TOKEN", &self.token)
            .env("LDAP_BIND_PASSWORD", READER_PW)
            .args(["-c", "headcount.yaml", "--color", "never", "--no-progress"])
            .args(args)
            .stdin(Stdio::null());
        let out = support::run_command(
            c,
            &format!("headcount {}", args.join(" ")),
            Duration::from_secs(120),
        );
        let both = out.both();
        assert!(
            !both.contains(&self.token) && !both.contains(READER_PW),
            "a secret leaked into the output of {args:?}\n{both}"
        );
        out
    }

    /// `plan --format json`: the only sync's plan.
    fn plan(&self) -> Value {
        let out = self.run(&["plan", "--format", "json"]);
        assert!(out.success(), "plan failed\n{}", out.both());
        let doc: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("plan --format json: {e}\n{}", out.both()));
        assert_eq!(doc["syncs"].as_array().map(Vec::len), Some(1), "{doc:#}");
        doc["syncs"][0].clone()
    }

    fn apply(&self) {
        let out = self.run(&["apply", "--auto-approve"]);
        assert!(out.success(), "apply failed\n{}", out.both());
    }

    /// `plan --detailed-exitcode` says "no changes" (exit 0) and still lists the invalid member.
    fn assert_no_changes(&self, unchanged: usize) {
        let out = self.run(&["plan", "--detailed-exitcode"]);
        assert_eq!(out.code, Some(0), "expected no changes\n{}", out.both());
        assert!(
            out.stdout
                .contains(&format!("no changes, {unchanged} unchanged")),
            "{}",
            out.both()
        );
        assert!(out.stdout.contains("Plan: 0 to change"), "{}", out.both());
        assert!(
            out.stdout.contains(&self.dn("frank")),
            "the member without mail stays listed\n{}",
            out.both()
        );
    }

    /// The RT user `who` (by this test's uid), read straight from RT's REST API.
    fn rt_user(&self, who: &str) -> Value {
        let name = self.uid(who);
        self.rt
            .block_on(self.admin.user(&name))
            .unwrap_or_else(|| panic!("{name} is not in RT"))
    }

    fn in_rt(&self, who: &str) -> bool {
        self.rt.block_on(self.admin.user(&self.uid(who))).is_some()
    }
}

fn changes<'a>(sync: &'a Value, action: &str) -> Vec<&'a Value> {
    sync["changes"]
        .as_array()
        .map(|cs| cs.iter().filter(|c| c["action"] == action).collect())
        .unwrap_or_default()
}

/// The RT `Name`s of some changes, sorted.
fn names(changes: &[&Value]) -> Vec<String> {
    let mut names: Vec<String> = changes
        .iter()
        .map(|c| {
            c["identity"]["Name"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| c["identity"].to_string())
        })
        .collect();
    names.sort();
    names
}

/// The names of the fields a change writes, sorted.
fn field_names(change: &Value) -> Vec<String> {
    change["fields"]
        .as_object()
        .map(|f| f.keys().cloned().collect())
        .unwrap_or_default()
}

/// Checks an RT user as S6 wants it: privileged, enabled or disabled, with these values.
fn assert_rt_user(user: &Value, email: &str, real_name: &str, disabled: bool) {
    assert_eq!(user["Privileged"], json!(1), "privileged (staff): {user:#}");
    assert_eq!(
        user["Disabled"],
        json!(if disabled { "1" } else { "0" }),
        "{user:#}"
    );
    assert_eq!(user["EmailAddress"], json!(email), "{user:#}");
    assert_eq!(user["RealName"], json!(real_name), "{user:#}");
}

/// An attribute absent in LDAP is empty in RT (RT's REST API shows an empty value as null).
fn assert_empty(user: &Value, field: &str) {
    assert!(
        user[field].is_null() || user[field] == json!(""),
        "{field} absent in LDAP must be empty in RT: {user:#}"
    );
}

#[test]
fn s6_ldap_group_to_privileged_rt_users_end_to_end() {
    let Some(ldap) = slapd::server() else { return };
    let Some(server) = rt_server::server() else {
        return;
    };
    let rt = support::runtime();
    let _one_at_a_time = rt.block_on(rt_server::exclusive().lock_owned());
    let ou = rt.block_on(ldap.new_ou("s6rt"));
    let ca = ldap.ca_file().display().to_string();
    let ca_line = format!("ca_file: {ca}");
    let people = format!("ou=people,{ou}");
    let group = format!("cn=helpdesk-agents,ou=groups,{ou}");
    // The example, pointed at slapd over LDAPS (its CA), the reader account, this test's OU
    // and the local RT.
    let work = Work::example(
        "s6-ldap-to-rt",
        &[
            (EXAMPLE_URL, &format!("url: {}", ldap.ldaps_url())),
            (EXAMPLE_CA, &ca_line),
            (EXAMPLE_BIND, READER_DN),
            (EXAMPLE_GROUP, &group),
            (EXAMPLE_PEOPLE, &people),
            (EXAMPLE_RT, &format!("base_url: {}", server.origin)),
        ],
    );
    let c = Case {
        rt,
        work,
        admin: Admin::new(server),
        token: server.token.clone(),
        ou,
        prefix: rt_server::prefix("s6"),
    };

    // The directory: four members (frank without mail), one person outside the group, and a
    // member DN that points at nothing. Alice has the optional attributes; her address is
    // mixed case (RT gets it lower-cased).
    c.rt.block_on(async {
        let mut l = ldap.admin().await;
        let people = c.people();
        let alice_mail = c.mail("Alice").replace("example.com", "Example.COM");
        for (who, given, sn, mail) in [
            ("alice", "Alice", "Anderson", Some(alice_mail)),
            ("bob", "Bob", "Brown", Some(c.mail("bob"))),
            ("carol", "Carol", "Clark", Some(c.mail("carol"))),
            ("dave", "Dave", "Davis", Some(c.mail("dave"))),
            ("frank", "Frank", "Foster", None),
        ] {
            let uid = c.uid(who);
            slapd::add_person(&mut l, &people, &uid, given, sn, mail.as_deref()).await;
        }
        let alice = c.dn("alice");
        slapd::replace(&mut l, &alice, "o", &["Support"]).await;
        slapd::replace(&mut l, &alice, "telephoneNumber", &["+1 555 0100"]).await;
        slapd::replace(&mut l, &alice, "description", &["Tier 2"]).await;
        let members: Vec<String> = ["alice", "bob", "carol", "frank", "ghost"]
            .iter()
            .map(|w| c.dn(w))
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

    // First plan: three privileged creates; frank is invalid (no mail) and listed; dave (not a
    // member) and the ghost DN are not in it.
    let sync = c.plan();
    let creates = changes(&sync, "create");
    assert_eq!(
        names(&creates),
        [c.uid("alice"), c.uid("bob"), c.uid("carol")],
        "{sync:#}"
    );
    assert_eq!(
        sync["changes"].as_array().map(Vec::len),
        Some(3),
        "{sync:#}"
    );
    for create in &creates {
        assert_eq!(
            create["fields"]["Privileged"]["after"],
            json!(true),
            "{create:#}"
        );
    }
    let invalid = sync["invalid"].as_array().expect("invalid");
    assert_eq!(invalid.len(), 1, "{sync:#}");
    assert_eq!(invalid[0]["record"], json!(c.dn("frank")), "{sync:#}");
    assert!(
        invalid[0].to_string().contains("mail"),
        "the reason names the missing attribute: {sync:#}"
    );
    assert!(
        !sync.to_string().contains("ghost"),
        "the member DN that points at nothing is ignored: {sync:#}"
    );
    let text = c.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(text.code, Some(2), "changes present\n{}", text.both());
    assert!(
        text.stdout.contains(&c.dn("frank")),
        "the text plan lists the invalid record\n{}",
        text.both()
    );
    assert!(
        !c.in_rt("alice") && !c.in_rt("bob") && !c.in_rt("carol"),
        "plan wrote nothing"
    );

    c.apply();
    let alice = c.rt_user("alice");
    assert_rt_user(&alice, &c.mail("alice"), "Alice Anderson", false);
    assert_eq!(alice["Organization"], json!("Support"), "{alice:#}");
    assert_eq!(alice["WorkPhone"], json!("+1 555 0100"), "{alice:#}");
    assert_eq!(alice["Comments"], json!("Tier 2"), "{alice:#}");
    let bob = c.rt_user("bob");
    assert_rt_user(&bob, &c.mail("bob"), "Bob Brown", false);
    assert_empty(&bob, "Organization");
    assert_rt_user(&c.rt_user("carol"), &c.mail("carol"), "Carol Clark", false);
    for who in ["dave", "frank", "ghost"] {
        assert!(!c.in_rt(who), "{who} must not be in RT");
    }
    c.assert_no_changes(3);

    // Bob leaves the group, gina is hired into it, carol is renamed (new sn, cn and mail; her
    // uid, so her RT login, stays).
    let carol_id = c.rt_user("carol")["id"].clone();
    let bob_id = bob["id"].clone();
    c.rt.block_on(async {
        let mut l = ldap.admin().await;
        slapd::remove_value(&mut l, &c.group(), "member", &c.dn("bob")).await;
        let gina = c.uid("gina");
        let gina_mail = c.mail("gina");
        slapd::add_person(
            &mut l,
            &c.people(),
            &gina,
            "Gina",
            "Green",
            Some(&gina_mail),
        )
        .await;
        let gina_dn = c.dn("gina");
        let set: std::collections::HashSet<&str> = [gina_dn.as_str()].into_iter().collect();
        l.modify(&c.group(), vec![ldap3::Mod::Add("member", set)])
            .await
            .expect("modify")
            .success()
            .expect("add gina to the group");
        let carol = c.dn("carol");
        let carol_mail = c.mail("carol.jones");
        slapd::replace(&mut l, &carol, "sn", &["Jones"]).await;
        slapd::replace(&mut l, &carol, "cn", &["Carol Jones"]).await;
        slapd::replace(&mut l, &carol, "mail", &[carol_mail.as_str()]).await;
        let _ = l.unbind().await;
    });

    let sync = c.plan();
    assert_eq!(
        names(&changes(&sync, "create")),
        [c.uid("gina")],
        "{sync:#}"
    );
    assert_eq!(
        names(&changes(&sync, "deactivate")),
        [c.uid("bob")],
        "{sync:#}"
    );
    let updates = changes(&sync, "update");
    assert_eq!(names(&updates), [c.uid("carol")], "{sync:#}");
    assert_eq!(
        field_names(updates[0]),
        ["EmailAddress", "RealName"],
        "only what changed is written: {sync:#}"
    );
    assert_eq!(
        updates[0]["fields"]["EmailAddress"]["after"],
        json!(c.mail("carol.jones")),
        "{sync:#}"
    );
    assert_eq!(
        sync["changes"].as_array().map(Vec::len),
        Some(3),
        "exactly the leaver, the new hire and the rename: {sync:#}"
    );
    assert_eq!(
        sync["invalid"].as_array().map(Vec::len),
        Some(1),
        "frank is still listed: {sync:#}"
    );

    c.apply();
    let bob = c.rt_user("bob");
    assert_eq!(bob["id"], bob_id, "the leaver is the same RT user");
    assert_rt_user(&bob, &c.mail("bob"), "Bob Brown", true);
    let gina = c.rt_user("gina");
    assert_rt_user(&gina, &c.mail("gina"), "Gina Green", false);
    assert_empty(&gina, "Organization");
    let carol = c.rt_user("carol");
    assert_eq!(carol["id"], carol_id, "renamed in place, not re-created");
    assert_rt_user(&carol, &c.mail("carol.jones"), "Carol Jones", false);
    assert_rt_user(
        &c.rt_user("alice"),
        &c.mail("alice"),
        "Alice Anderson",
        false,
    );
    for who in ["dave", "frank", "ghost"] {
        assert!(!c.in_rt(who), "{who} must not be in RT");
    }
    // Alice, carol and gina in the group; bob's disabled account is still managed.
    c.assert_no_changes(4);
}
