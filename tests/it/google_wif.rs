//! Keyless Google credentials (SPEC §5): the CI's OIDC token file → STS exchange → IAM
//! `signJwt` → jwt-bearer grant, then the Directory API; the token file is re-read for each
//! exchange, and each refusal on the way says what to fix.

use std::path::Path;

use headcount::testkit::google::{ADMIN, CLIENT_EMAIL, GoogleEmulator, OIDC_TOKEN, WIF_AUDIENCE};
use serde_json::{Value, json};

use crate::google::{build, jwt_claims};

fn keyless(emu: &GoogleEmulator) -> Value {
    json!({
        "customer": "my_customer",
        "base_url": emu.base_url(),
        "token_url": emu.token_url(),
        "credentials": {
            "workload_identity": {
                "audience": WIF_AUDIENCE,
                "service_account": CLIENT_EMAIL,
                "subject_token_file": "oidc.token",
                "sts_url": emu.sts_url(),
                "iam_url": emu.iam_url(),
            },
            "subject": ADMIN,
        }
    })
}

async fn emulator() -> GoogleEmulator {
    let emu = GoogleEmulator::start().await;
    emu.insert_user(json!({"primaryEmail": "ann@example.com", "name": {"givenName": "Ann", "familyName": "Lee"}}));
    emu
}

fn write_token(dir: &Path, token: &str) {
    std::fs::write(dir.join("oidc.token"), format!("{token}\n")).unwrap();
}

#[tokio::test]
async fn the_oidc_token_is_exchanged_signed_by_iam_and_granted() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    write_token(dir.path(), OIDC_TOKEN);
    let source = build(dir.path(), keyless(&emu));
    let (logs, guard) = headcount::testkit::capture::logs();
    let records = source.read().await.unwrap();
    drop(guard);
    assert_eq!(records.len(), 1);
    // No credential of the chain reaches a log line, even at trace level.
    let logged = logs.text();
    assert!(
        logged.contains("signJwt"),
        "the capture saw the requests: {logged}"
    );
    let signed = emu.log().all()[2].body.clone().unwrap();
    let assertion = url::form_urlencoded::parse(signed.as_str().unwrap().as_bytes())
        .find(|(k, _)| k == "assertion")
        .unwrap()
        .1
        .to_string();
    for secret in [OIDC_TOKEN, "sts-", "ya29.emu", assertion.as_str()] {
        assert!(!logged.contains(secret), "{secret} leaked into the logs");
    }
    let lines = emu.log().lines();
    assert_eq!(
        lines,
        [
            "POST /v1/token".to_string(),
            format!("POST /v1/projects/-/serviceAccounts/{CLIENT_EMAIL}:signJwt"),
            "POST /token".to_string(),
            "GET /admin/directory/v1/users?customer=my_customer&maxResults=500&projection=full"
                .to_string(),
        ]
    );
    let all = emu.log().all();
    // The STS exchange, as Google documents it (the emulator refuses any other value).
    let sts = all[0].body.as_ref().unwrap().as_str().unwrap().to_string();
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(sts.as_bytes())
            .into_owned()
            .collect();
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:token-exchange"
    );
    assert_eq!(
        form["subject_token_type"],
        "urn:ietf:params:oauth:token-type:jwt"
    );
    assert_eq!(
        form["requested_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(form["audience"], WIF_AUDIENCE);
    assert_eq!(
        form["scope"],
        "https://www.googleapis.com/auth/cloud-platform"
    );
    // signJwt is called with the federated token and the claims as a JSON string.
    assert!(
        all[1]
            .header("authorization")
            .unwrap()
            .starts_with("Bearer sts-")
    );
    let payload: Value =
        serde_json::from_str(all[1].body.as_ref().unwrap()["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["iss"], CLIENT_EMAIL);
    assert_eq!(payload["sub"], ADMIN);
    let claims = jwt_claims(&emu);
    assert_eq!(claims, payload, "the JWT granted is the one IAM signed");
    assert_eq!(claims["aud"], emu.token_url());
    // A second read reuses the token: no new exchange.
    source.read().await.unwrap();
    assert_eq!(emu.log().method("POST").len(), 3);
}

/// The token file is read at each exchange: a run whose token was refused succeeds once the
/// runner has written a fresh one, without a restart.
#[tokio::test]
async fn the_subject_token_file_is_re_read_for_each_exchange() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    write_token(dir.path(), "an-expired-token");
    let source = build(dir.path(), keyless(&emu));
    let err = source.read().await.unwrap_err();
    assert_eq!(err.kind(), "auth");
    let text = err.to_string();
    assert!(text.contains("STS refused the OIDC token"), "{text}");
    assert!(text.contains("oidc.token"), "{text}");
    assert!(text.contains("`audience`"), "{text}");
    assert!(!text.contains("an-expired-token"), "{text}");
    write_token(dir.path(), OIDC_TOKEN);
    assert_eq!(source.read().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_missing_token_creator_role_is_explained() {
    let emu = emulator().await;
    emu.set_token_creator(false);
    let dir = tempfile::tempdir().unwrap();
    write_token(dir.path(), OIDC_TOKEN);
    let err = build(dir.path(), keyless(&emu)).read().await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("roles/iam.serviceAccountTokenCreator"),
        "{text}"
    );
    assert!(text.contains(CLIENT_EMAIL), "{text}");
}

/// Keyless, there is no key to read the client id from: the message says where to find it.
#[tokio::test]
async fn keyless_unauthorized_client_points_to_the_unique_id() {
    let emu = emulator().await;
    emu.set_grant(headcount::testkit::google::CLIENT_ID, None);
    let dir = tempfile::tempdir().unwrap();
    write_token(dir.path(), OIDC_TOKEN);
    let text = build(dir.path(), keyless(&emu))
        .read()
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("unauthorized_client"), "{text}");
    assert!(text.contains("numeric Unique ID"), "{text}");
}

/// `validate` checks the credential block offline: one of key and workload identity, an email
/// for the service account, the provider's full name as the audience, each error placed on its
/// key.
#[test]
fn validate_checks_the_credentials_block() {
    let check = |credentials: &str| {
        let text = format!(
            "version: 1
sources:
  ws:
    kind: google_workspace
    credentials:
{credentials}
      subject: admin@example.com
targets:
  out: {{ kind: csv_export, dir: out }}
syncs:
  - name: s
    from: ws
    to: out
    identity: [email]
    fields: {{ email: user.primaryEmail }}
"
        );
        let cfg = headcount::config::parse(&text, Path::new("headcount.yaml")).unwrap();
        let loaded = headcount::config::LoadedConfig {
            path: "headcount.yaml".into(),
            base_dir: ".".into(),
            text: text.clone(),
            sha256: String::new(),
            config: cfg,
        };
        match headcount::config::validate(&loaded) {
            Ok(_) => String::new(),
            Err(e) => e.render(false),
        }
    };
    let wif = "      workload_identity:
        audience: //iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/g
        service_account: sa@p.iam.gserviceaccount.com
        subject_token_file: token";
    assert_eq!(check(wif), "");
    assert_eq!(check("      service_account_key: { file: sa.json }"), "");
    let both = format!("      service_account_key: {{ file: sa.json }}\n{wif}");
    let out = check(&both);
    assert!(
        out.contains("sets both `service_account_key` and `workload_identity`"),
        "{out}"
    );
    let out = check("      # nothing");
    assert!(
        out.contains("needs `service_account_key` or `workload_identity`"),
        "{out}"
    );
    let bad = wif
        .replace("sa@p.iam.gserviceaccount.com", "sa")
        .replace("//iam.googleapis.com/projects/1", "projects/1");
    let out = check(&bad);
    assert!(out.contains("must be the service account's email"), "{out}");
    assert!(
        out.contains("must name the provider as //iam.googleapis.com/"),
        "{out}"
    );
}
