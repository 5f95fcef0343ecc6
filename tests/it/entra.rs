//! `entra_id` and `entra_guests` behaviours against the Graph emulator: delta reads and their
//! cache, groups, keyless credentials, errors an admin can act on, and the S5 example through
//! the binary.

use std::collections::BTreeMap;
use std::path::Path;

use headcount::connectors::entra::{
    CACHE_FILE, DeltaCache, EntraGuestsConfig, EntraGuestsTarget, EntraIdConfig, EntraIdSource,
    select_list,
};
use headcount::connectors::spec::{SourceSpec, TargetSpec};
use headcount::connectors::{
    ApplyOptions, BuildContext, ClientPool, ConnectorError, Source, SourceRecord, TargetOp,
};
use headcount::http::auth::{Certificate, ClientAuth, TokenFile};
use headcount::testkit::compliance::apply_all;
use headcount::testkit::graph::{CLIENT_ID, GraphEmulator, TENANT, TEST_CERT_PEM};
use headcount::testkit::{Fault, Match};
use secrecy::SecretString;
use serde_json::{Value, json};

const SECRET: &str = "entra-test-secret-value";

fn secret() -> ClientAuth {
    ClientAuth::Secret {
        secret: SecretString::from(SECRET),
        reference: "`client_secret` (env X)".to_string(),
    }
}

fn delta_source(emu: &GraphEmulator, dir: &Path, full: bool) -> EntraIdSource {
    EntraIdSource::new(
        emu.client(secret()),
        &[],
        vec![],
        Some(DeltaCache::new(dir.to_path_buf())),
        full,
    )
}

/// `displayName` by `userPrincipalName`, sorted.
fn names(records: &[SourceRecord]) -> BTreeMap<String, String> {
    records
        .iter()
        .map(|r| {
            (
                r.data["userPrincipalName"].as_str().unwrap().to_string(),
                r.data["displayName"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn select() -> String {
    select_list(&[]).join(",")
}

async fn read(s: &EntraIdSource) -> Vec<SourceRecord> {
    s.read().await.unwrap()
}

#[tokio::test]
async fn delta_reads_everything_once_then_only_the_changes() {
    let emu = GraphEmulator::start(SECRET).await;
    let a = emu.add_member(1, "Ann One");
    let b = emu.add_member(2, "Bob Two");
    emu.add_member(3, "Cy Three");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("src");
    let first = read(&delta_source(&emu, &cache, false)).await;
    assert_eq!(first.len(), 3);
    assert_eq!(
        emu.log().lines(),
        [format!("GET /v1.0/users/delta?$select={}", select())]
    );
    let file = cache.join(CACHE_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the snapshot names people: owner-only");
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    emu.update_user(&a, json!({"displayName": "Ann Renamed"}));
    emu.remove_user(&b);
    emu.add_member(4, "Di Four");
    emu.log().clear();
    let second = read(&delta_source(&emu, &cache, false)).await;
    let lines = emu.log().lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("GET /v1.0/users/delta?$deltatoken="),
        "only the delta link is read: {lines:?}"
    );
    assert_eq!(
        names(&second),
        BTreeMap::from([
            ("user1@contoso.example".into(), "Ann Renamed".into()),
            ("user3@contoso.example".into(), "Cy Three".into()),
            ("user4@contoso.example".into(), "Di Four".into()),
        ])
    );
    // Merged records keep every selected property, and `groups` is always there.
    let ann = second
        .iter()
        .find(|r| r.data["displayName"] == "Ann Renamed")
        .unwrap();
    assert_eq!(ann.data["mail"], "user1@contoso.example");
    assert_eq!(ann.data["groups"], json!([]));

    // No change: one request, nothing read.
    emu.log().clear();
    assert_eq!(read(&delta_source(&emu, &cache, false)).await.len(), 3);
    assert_eq!(emu.log().lines().len(), 1);
}

#[tokio::test]
async fn full_read_ignores_the_delta_link_and_renews_it() {
    let emu = GraphEmulator::start(SECRET).await;
    emu.add_member(1, "Ann One");
    let dir = tempfile::tempdir().unwrap();
    read(&delta_source(&emu, dir.path(), false)).await;
    let before = std::fs::read_to_string(dir.path().join(CACHE_FILE)).unwrap();
    emu.log().clear();
    assert_eq!(read(&delta_source(&emu, dir.path(), true)).await.len(), 1);
    assert_eq!(
        emu.log().lines(),
        [format!("GET /v1.0/users/delta?$select={}", select())],
        "--full starts a new delta round"
    );
    let after = std::fs::read_to_string(dir.path().join(CACHE_FILE)).unwrap();
    assert_ne!(before, after, "the delta link was renewed");
    emu.add_member(2, "Bob Two");
    emu.log().clear();
    assert_eq!(read(&delta_source(&emu, dir.path(), false)).await.len(), 2);
    assert!(emu.log().lines()[0].contains("$deltatoken="));
}

#[tokio::test]
async fn an_expired_delta_link_falls_back_to_a_full_read() {
    let emu = GraphEmulator::start(SECRET).await;
    emu.add_member(1, "Ann One");
    let dir = tempfile::tempdir().unwrap();
    read(&delta_source(&emu, dir.path(), false)).await;
    emu.expire_delta_links();
    emu.add_member(2, "Bob Two");
    emu.log().clear();
    let (logs, guard) = headcount::testkit::capture::logs();
    let records = read(&delta_source(&emu, dir.path(), false)).await;
    drop(guard);
    assert_eq!(records.len(), 2);
    let lines = emu.log().lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("$deltatoken="), "{lines:?}");
    assert_eq!(
        lines[1],
        format!("GET /v1.0/users/delta?$select={}", select())
    );
    assert!(
        logs.text().contains("delta link has expired"),
        "said at info level: {}",
        logs.text()
    );
    // The new link works.
    emu.log().clear();
    assert_eq!(read(&delta_source(&emu, dir.path(), false)).await.len(), 2);
    assert!(emu.log().lines()[0].contains("$deltatoken="));
}

#[tokio::test]
async fn a_failed_delta_read_fails_and_leaves_the_cache_intact() {
    let emu = GraphEmulator::start(SECRET).await;
    emu.set_page_cap(1);
    let a = emu.add_member(1, "Ann One");
    emu.add_member(2, "Bob Two");
    let dir = tempfile::tempdir().unwrap();
    read(&delta_source(&emu, dir.path(), false)).await;
    let before = std::fs::read(dir.path().join(CACHE_FILE)).unwrap();
    emu.update_user(&a, json!({"displayName": "Ann Renamed"}));
    emu.add_member(3, "Cy Three");
    // The second page of the changes fails: the whole read fails.
    emu.faults()
        .on(Match::get("/v1.0/users/delta"))
        .nth(2)
        .inject(Fault::status(400));
    let err = delta_source(&emu, dir.path(), false)
        .read()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("GET /v1.0/users/delta"), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join(CACHE_FILE)).unwrap(),
        before,
        "the cached snapshot and link are untouched"
    );
    emu.faults().clear();
    let records = read(&delta_source(&emu, dir.path(), false)).await;
    assert_eq!(records.len(), 3);
    assert!(names(&records).values().any(|n| n == "Ann Renamed"));
}

#[tokio::test]
async fn probe_reads_one_page_and_never_touches_the_cursor() {
    let emu = GraphEmulator::start(SECRET).await;
    emu.set_page_cap(2);
    for i in 0..5 {
        emu.add_member(i, &format!("User {i}"));
    }
    let dir = tempfile::tempdir().unwrap();
    let probed = delta_source(&emu, dir.path(), false).probe().await.unwrap();
    assert_eq!(probed.len(), 2);
    assert_eq!(
        emu.log().lines(),
        [format!("GET /v1.0/users?$select={}&$top=999", select())]
    );
    assert!(!dir.path().join(CACHE_FILE).exists());
}

#[tokio::test]
async fn groups_are_transitive_display_names_resolved_by_id_or_name() {
    let emu = GraphEmulator::start(SECRET).await;
    let ann = emu.add_member(1, "Ann One");
    let bob = emu.add_member(2, "Bob Two");
    emu.add_member(3, "Cy Three");
    let nested = emu.add_group("Tier 2", &[&bob]);
    let team = emu.add_group("Support Team", &[&ann, &nested]);
    let other = emu.add_group("Sales", &[&bob]);
    let source = EntraIdSource::new(
        emu.client(secret()),
        &[],
        vec!["Support Team".to_string(), other.clone()],
        None,
        false,
    );
    let records = read(&source).await;
    let groups: BTreeMap<String, Value> = records
        .iter()
        .map(|r| (r.label.clone(), r.data["groups"].clone()))
        .collect();
    assert_eq!(groups["user1@contoso.example"], json!(["Support Team"]));
    assert_eq!(
        groups["user2@contoso.example"],
        json!(["Support Team", "Sales"])
    );
    assert_eq!(groups["user3@contoso.example"], json!([]));
    let casts: Vec<_> = emu
        .log()
        .all()
        .into_iter()
        .filter(|l| l.path.ends_with("/microsoft.graph.user"))
        .collect();
    assert_eq!(casts.len(), 2);
    for l in casts {
        assert_eq!(l.header("consistencylevel"), Some("eventual"));
        assert_eq!(l.query("$count"), Some("true"));
    }
    assert!(
        emu.log().lines().contains(
            &"GET /v1.0/groups?$filter=displayName eq 'Support Team'&$select=id,displayName"
                .to_string()
        )
    );
    let _ = team;

    // A missing or ambiguous name is an error, never an empty group.
    emu.add_group("Sales", &[]);
    for (name, words) in [
        ("Nobody", "no group or Team is named"),
        ("Sales", "2 groups are named"),
    ] {
        let source = EntraIdSource::new(
            emu.client(secret()),
            &[],
            vec![name.to_string()],
            None,
            false,
        );
        let err = source.read().await.unwrap_err().to_string();
        assert!(err.contains(words), "{name}: {err}");
    }
}

#[tokio::test]
async fn select_is_configurable_and_only_selected_properties_come_back() {
    let emu = GraphEmulator::start(SECRET).await;
    emu.add_member(1, "Ann One");
    let source = EntraIdSource::new(
        emu.client(secret()),
        &["mail".to_string(), "employeeId".to_string()],
        vec![],
        None,
        false,
    );
    let records = read(&source).await;
    let mut keys: Vec<&String> = records[0].data.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["employeeId", "groups", "id", "mail"]);
    assert_eq!(
        emu.log().lines(),
        ["GET /v1.0/users?$select=id,mail,employeeId&$top=999"]
    );
}

// ---- keyless credentials -------------------------------------------------------------------

fn token_form(emu: &GraphEmulator, i: usize) -> BTreeMap<String, String> {
    let body = emu.token_requests()[i].body.clone().unwrap();
    url::form_urlencoded::parse(body.as_str().unwrap().as_bytes())
        .into_owned()
        .collect()
}

#[tokio::test]
async fn the_assertion_file_is_read_again_when_it_changes() {
    let emu = GraphEmulator::start(SECRET).await;
    emu.add_member(1, "Ann One");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("azure-identity-token");
    std::fs::write(&path, "federated-token-one\n").unwrap();
    emu.trust_federated("federated-token-one");
    let source = EntraIdSource::new(
        emu.client(ClientAuth::AssertionFile(TokenFile::new(
            path.clone(),
            "`client_assertion_file`",
        ))),
        &[],
        vec![],
        None,
        false,
    );
    assert_eq!(read(&source).await.len(), 1);
    let form = token_form(&emu, 0);
    assert_eq!(form["client_assertion"], "federated-token-one");
    assert_eq!(
        form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert_eq!(form["client_id"], CLIENT_ID);
    assert_eq!(form["scope"], format!("{}/.default", emu.origin()));
    assert!(!form.contains_key("client_secret"));

    // The token is cached: a second read fetches none.
    read(&source).await;
    assert_eq!(emu.token_requests().len(), 1);

    // Workload identity rotates the file; the old token stops working.
    std::fs::write(&path, "federated-token-two-rotated\n").unwrap();
    emu.trust_federated("federated-token-two-rotated");
    emu.revoke_tokens();
    assert_eq!(read(&source).await.len(), 1);
    assert_eq!(
        token_form(&emu, 1)["client_assertion"],
        "federated-token-two-rotated"
    );

    // An untrusted token: the message says where to add a federated credential.
    std::fs::write(&path, "someone-else").unwrap();
    emu.revoke_tokens();
    let err = source.read().await.unwrap_err();
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("AADSTS700213") && msg.contains("Federated credentials"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_certificate_assertion_is_signed_and_verified() {
    let emu = GraphEmulator::start(SECRET).await;
    emu.add_member(1, "Ann One");
    let cert =
        Certificate::from_pem(&SecretString::from(TEST_CERT_PEM), "`client_certificate`").unwrap();
    let source = EntraIdSource::new(
        emu.client(ClientAuth::Certificate(cert)),
        &[],
        vec![],
        None,
        false,
    );
    assert_eq!(
        read(&source).await.len(),
        1,
        "the emulator verified the signature"
    );
    let form = token_form(&emu, 0);
    assert_eq!(form["client_assertion"].split('.').count(), 3);

    emu.unregister_certificates();
    emu.revoke_tokens();
    let msg = source.read().await.unwrap_err().to_string();
    assert!(msg.contains("AADSTS700027"), "{msg}");
    assert!(msg.contains("not registered on the app"), "{msg}");
}

// ---- errors an admin can act on ------------------------------------------------------------

/// Builds the source from its config entry, as the engine does.
fn from_config(emu: &GraphEmulator, dir: &Path, entry: Value) -> Result<Box<dyn Source>, String> {
    let mut entry = entry;
    entry["graph_url"] = json!(emu.origin());
    entry["login_url"] = json!(emu.login_origin());
    entry["timeout"] = json!("2s");
    let config: EntraIdConfig = serde_json::from_value(entry).map_err(|e| e.to_string())?;
    let pool = ClientPool::default();
    let cx = BuildContext::new(dir, &pool);
    config.build("people", &cx).map_err(|e| e.to_string())
}

#[tokio::test]
async fn refused_credentials_say_what_to_fix() {
    let emu = GraphEmulator::start(SECRET).await;
    emu.add_member(1, "Ann One");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("right"), SECRET).unwrap();
    std::fs::write(dir.path().join("wrong"), "not-the-secret").unwrap();
    let cases = [
        (TENANT, "wrong", "AADSTS7000215", "Certificates & secrets"),
        (
            "no-such-tenant",
            "right",
            "AADSTS90002",
            "check `tenant_id`",
        ),
    ];
    for (tenant, file, code, hint) in cases {
        let source = from_config(
            &emu,
            dir.path(),
            json!({"tenant_id": tenant, "client_id": CLIENT_ID, "client_secret": {"file": file}}),
        )
        .unwrap();
        let err = source.read().await.unwrap_err();
        assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(code) && msg.contains(hint), "{code}: {msg}");
        assert!(!msg.contains(SECRET));
    }
    let ok = from_config(
        &emu,
        dir.path(),
        json!({"tenant_id": TENANT, "client_id": CLIENT_ID, "client_secret": {"file": "right"}}),
    )
    .unwrap();
    assert_eq!(ok.read().await.unwrap().len(), 1);
}

#[tokio::test]
async fn missing_permissions_are_named_with_admin_consent() {
    let emu = GraphEmulator::start(SECRET).await;
    let ann = emu.add_member(1, "Ann One");
    emu.add_group("Support", &[&ann]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), SECRET).unwrap();
    let entry = json!({"tenant_id": TENANT, "client_id": CLIENT_ID,
        "client_secret": {"file": "secret"}, "groups": ["Support"]});

    emu.set_permissions(&[]);
    let msg = from_config(&emu, dir.path(), entry.clone())
        .unwrap()
        .read()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("User.Read.All") && msg.contains("Grant admin consent"),
        "{msg}"
    );
    assert!(msg.contains("Authorization_RequestDenied"), "{msg}");

    emu.set_permissions(&["User.Read.All"]);
    let err = from_config(&emu, dir.path(), entry)
        .unwrap()
        .read()
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Permission { .. }), "{err:?}");
    assert!(err.to_string().contains("GroupMember.Read.All"), "{err}");

    let guests = EntraGuestsTarget::new(emu.client(secret()), None);
    let r = apply_all(
        &guests,
        &[TargetOp::Create {
            fields: BTreeMap::from([("email".to_string(), json!("x@partner.example"))]),
            active: true,
            notify: false,
        }],
        &ApplyOptions::default(),
    )
    .await;
    let msg = r[0].as_ref().unwrap_err().to_string();
    assert!(
        msg.contains("User.Invite.All") && msg.contains("User.ReadWrite.All"),
        "{msg}"
    );
}

#[tokio::test]
async fn graph_error_bodies_and_bad_page_sizes_are_read() {
    let emu = GraphEmulator::start(SECRET).await;
    emu.faults().on(Match::get("/v1.0/users")).always().inject(Fault::Answer {
        status: 400,
        headers: vec![("content-type".into(), "application/json".into())],
        body: r#"{"error":{"code":"Request_BadRequest","message":"Invalid page size specified: '1000'. Must be between 1 and 999 inclusive.","innerError":{"request-id":"req-42"}}}"#.into(),
    });
    let source = EntraIdSource::new(emu.client(secret()), &[], vec![], None, false);
    let msg = source.read().await.unwrap_err().to_string();
    assert!(
        msg.contains("Request_BadRequest: Invalid page size"),
        "{msg}"
    );
    assert!(msg.contains("request-id req-42"), "{msg}");
}

#[tokio::test]
async fn config_checks_want_exactly_one_credential() {
    let base = json!({"tenant_id": TENANT, "client_id": CLIENT_ID});
    let mut both = base.clone();
    both["client_secret"] = json!({"env": "X"});
    both["client_assertion_file"] = json!("token");
    let config: EntraGuestsConfig = serde_json::from_value(both).unwrap();
    let pool = ClientPool::default();
    let cx = BuildContext::new(Path::new("."), &pool);
    let err = config.build("guests", &cx).err().unwrap().to_string();
    assert!(err.contains("exactly one of"), "{err}");
    // `base_url` is still read as `graph_url`.
    let mut old = base;
    old["base_url"] = json!("http://127.0.0.1:1");
    old["client_secret"] = json!({"env": "X"});
    let config: EntraIdConfig = serde_json::from_value(old).unwrap();
    assert_eq!(config.graph_url.as_deref(), Some("http://127.0.0.1:1"));
}

// ---- entra_guests specifics ----------------------------------------------------------------

/// Graph answers an invitation of an existing guest with that guest: inviting someone made a
/// guest after the plan would take that account over silently. The create asks first and
/// fails naming the guest; nothing is invited.
#[tokio::test]
async fn a_guest_invited_since_the_plan_is_named_never_taken_over() {
    let emu = GraphEmulator::start(SECRET).await;
    let existing = emu.add_user(json!({
        "mail": "jane@partner.example",
        "displayName": "Jane",
        "userType": "Guest",
        "accountEnabled": true,
    }));
    let t = EntraGuestsTarget::new(emu.client(secret()), None);
    let op = TargetOp::Create {
        fields: BTreeMap::from([("email".to_string(), json!("jane@partner.example"))]),
        active: true,
        notify: false,
    };
    let r = apply_all(&t, &[op], &ApplyOptions::default()).await;
    let err = r[0].as_ref().unwrap_err();
    assert!(!err.is_ambiguous(), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&existing) && msg.contains("plan again"),
        "{msg}"
    );
    assert!(emu.log().method("POST").is_empty(), "nothing is invited");
    assert_eq!(emu.users().len(), 1);
}

#[tokio::test]
async fn invitations_carry_the_redirect_and_notify_and_deactivate_patches() {
    let emu = GraphEmulator::start(SECRET).await;
    let t = EntraGuestsTarget::new(emu.client(secret()), Some("https://apps.example/".into()));
    let create = |email: &str, notify: bool, active: bool| TargetOp::Create {
        fields: BTreeMap::from([
            ("email".to_string(), json!(email)),
            ("display_name".to_string(), json!("Jane Doe")),
        ]),
        active,
        notify,
    };
    let r = apply_all(
        &t,
        &[
            create("jane@partner.example", true, true),
            create("joe@partner.example", false, false),
        ],
        &ApplyOptions {
            parallelism: 1,
            ..ApplyOptions::default()
        },
    )
    .await;
    assert!(r.iter().all(Result::is_ok), "{r:?}");
    let posts = emu.log().method("POST");
    assert_eq!(posts.len(), 2);
    let body = posts[0].body.clone().unwrap();
    assert_eq!(body["invitedUserEmailAddress"], "jane@partner.example");
    assert_eq!(body["invitedUserDisplayName"], "Jane Doe");
    assert_eq!(body["inviteRedirectUrl"], "https://apps.example/");
    assert_eq!(body["sendInvitationMessage"], true);
    assert_eq!(emu.invitation_emails(), 1);
    // An inactive create is invited, then disabled.
    let patches = emu.log().method("PATCH");
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].body, Some(json!({"accountEnabled": false})));
    let joe_id = r[1].as_ref().unwrap();
    let joe = emu
        .users()
        .into_iter()
        .find(|u| u["id"] == *joe_id)
        .unwrap();
    assert_eq!(joe["accountEnabled"], false);

    // Reactivate and rename: one PATCH.
    let r = apply_all(
        &t,
        &[TargetOp::Modify {
            id: joe_id.clone(),
            fields: BTreeMap::from([("display_name".to_string(), json!("Joe D"))]),
            expected: BTreeMap::new(),
            active: Some(true),
            removal: false,
        }],
        &ApplyOptions::default(),
    )
    .await;
    assert!(r[0].is_ok(), "{r:?}");
    let patches = emu.log().method("PATCH");
    assert_eq!(
        patches[1].body,
        Some(json!({"displayName": "Joe D", "accountEnabled": true}))
    );
}

#[tokio::test]
async fn find_falls_back_to_every_guest_when_no_mail_matches() {
    use headcount::connectors::Target as _;
    let emu = GraphEmulator::start(SECRET).await;
    emu.add_user(json!({
        "mail": null, "otherMails": [],
        "userPrincipalName": "old_partner.example#EXT#@emulated.onmicrosoft.com",
        "displayName": "Old", "accountEnabled": true, "userType": "Guest"
    }));
    let t = EntraGuestsTarget::new(emu.client(secret()), None);
    let found = t
        .find(&BTreeMap::from([(
            "email".to_string(),
            "old@partner.example".to_string(),
        )]))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].fields["email"], "old@partner.example");
    let lines = emu.log().lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("$filter=mail eq 'old@partner.example'"),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_source_and_a_target_of_one_app_share_one_client() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), SECRET).unwrap();
    let entry = json!({"tenant_id": TENANT, "client_id": CLIENT_ID,
        "client_secret": {"file": "secret"}, "graph_url": "http://127.0.0.1:9",
        "login_url": "http://127.0.0.1:9"});
    let pool = ClientPool::default();
    let cx = BuildContext::new(dir.path(), &pool);
    let target: EntraGuestsConfig = serde_json::from_value(entry.clone()).unwrap();
    let source: EntraIdConfig = serde_json::from_value(entry.clone()).unwrap();
    target
        .build("guests", &cx)
        .map_err(|e| e.to_string())
        .unwrap();
    source
        .build("people", &cx)
        .map_err(|e| e.to_string())
        .unwrap();
    assert_eq!(
        pool.len(),
        1,
        "one token cache and rate limiter per tenant and app"
    );
    let mut other = entry;
    other["tenant_id"] = json!("another-tenant");
    let source: EntraIdConfig = serde_json::from_value(other).unwrap();
    source
        .build("people2", &cx)
        .map_err(|e| e.to_string())
        .unwrap();
    assert_eq!(pool.len(), 2);
}

#[tokio::test]
async fn bad_token_endpoint_answers_and_revoked_tokens_are_clear_errors() {
    let emu = GraphEmulator::start(SECRET).await;
    emu.add_member(1, "Ann One");
    emu.login_faults()
        .on(Match::any())
        .always()
        .inject(Fault::html_error_page());
    let source = EntraIdSource::new(emu.client(secret()), &[], vec![], None, false);
    let err = source.read().await.unwrap_err();
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("no token from"), "{msg}");
    assert!(!msg.to_ascii_lowercase().contains("<html"), "{msg}");

    // Graph refuses every token: 401 after one fresh token, with what to check.
    emu.login_faults().clear();
    emu.faults().on(Match::any()).always().inject(Fault::Answer {
        status: 401,
        headers: vec![("content-type".into(), "application/json".into())],
        body: r#"{"error":{"code":"InvalidAuthenticationToken","message":"Access token validation failure."}}"#.into(),
    });
    let err = source.read().await.unwrap_err();
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("InvalidAuthenticationToken"), "{msg}");
    assert!(msg.contains("admin consent"), "{msg}");
    assert_eq!(
        emu.log().count(),
        2,
        "one retry with a fresh token: {:?}",
        emu.log().lines()
    );
}

/// The emulator holds Graph's own rules, so the connector cannot pass by leaning on a lax one.
#[tokio::test]
async fn the_emulator_enforces_graph_query_rules() {
    use headcount::http::Request;
    let emu = GraphEmulator::start(SECRET).await;
    let ann = emu.add_member(1, "Ann One");
    let group = emu.add_group("Support", &[&ann]);
    let graph = emu.client(secret());
    let status = |r: Result<headcount::http::Response, headcount::http::HttpError>| match r {
        Ok(resp) => (
            resp.status.as_u16(),
            String::from_utf8_lossy(&resp.body).to_string(),
        ),
        Err(e) => (e.status().unwrap_or(0), e.to_string()),
    };
    let (code, msg) = status(
        graph
            .http()
            .send(Request::get("users").query("$top", 1000))
            .await,
    );
    assert_eq!(code, 400);
    assert!(msg.contains("Must be between 1 and 999 inclusive"), "{msg}");
    let cast = format!("groups/{group}/transitiveMembers/microsoft.graph.user");
    let (code, msg) = status(
        graph
            .http()
            .send(Request::get(cast.clone()).query("$count", "true"))
            .await,
    );
    assert_eq!(code, 400, "the cast needs ConsistencyLevel: eventual");
    assert!(msg.contains("Request_UnsupportedQuery"), "{msg}");
    // Without $select: the default property set, no accountEnabled.
    let (code, body) = status(graph.http().send(Request::get("users")).await);
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["value"][0].get("accountEnabled").is_none(), "{v}");
    assert_eq!(v["value"][0]["userPrincipalName"], "user1@contoso.example");
    // Delta does not take $top.
    let (code, _) = status(
        graph
            .http()
            .send(Request::get("users/delta").query("$top", 5))
            .await,
    );
    assert_eq!(code, 400);
}

/// `409 Directory_ConcurrencyViolation` is retryable after a short delay (apis.md 4.6).
#[tokio::test(start_paused = true)]
async fn a_concurrency_violation_is_retried_after_a_wait() {
    let emu = GraphEmulator::start(SECRET).await;
    let id = emu.add_user(json!({"mail": "g@partner.example", "displayName": "G",
        "accountEnabled": true, "userType": "Guest"}));
    emu.faults()
        .on(Match::method("PATCH").path_contains("/v1.0/users/"))
        .inject(Fault::Answer {
            status: 409,
            headers: vec![("content-type".into(), "application/json".into())],
            body: r#"{"error":{"code":"Directory_ConcurrencyViolation","message":"Another update is in progress."}}"#.into(),
        });
    let t = EntraGuestsTarget::new(emu.client(secret()), None);
    let r = apply_all(
        &t,
        &[TargetOp::Modify {
            id: id.clone(),
            fields: BTreeMap::from([("display_name".to_string(), json!("New"))]),
            expected: BTreeMap::new(),
            active: None,
            removal: false,
        }],
        &ApplyOptions::default(),
    )
    .await;
    assert!(r[0].is_ok(), "{r:?}");
    let patches = emu.log().method("PATCH");
    assert_eq!(patches.len(), 2, "{:?}", emu.log().lines());
    assert!(patches[1].at - patches[0].at >= std::time::Duration::from_secs(1));
    assert_eq!(emu.users()[0]["displayName"], "New");
}
