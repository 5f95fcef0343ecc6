#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap as AxHeaders, StatusCode as AxStatus};
use axum::response::{IntoResponse, Response as AxResponse};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;

use super::jwt::RsaSigner;
use super::*;
use crate::http::{HttpClient, HttpError, Request, redact};
use crate::testkit::{builder, fast_policy, serve};

const KEY_PKCS8: &str = include_str!("testdata/test-key.pem");
const KEY_PKCS1: &str = include_str!("testdata/test-key-pkcs1.pem");
const CERT: &str = include_str!("testdata/test-cert.pem");
/// Thumbprints of `testdata/test-cert.pem`, computed with
/// `openssl x509 -outform der | openssl dgst -sha256 -binary | base64url`.
const CERT_X5T_S256: &str = "8aPOoewGVavEJgeEspaftXLikQXa2CBmKrn-MaMicaA";
const CERT_X5T: &str = "JT8drpztxQGpW0dp-MLJrh_jKMc";

const SECRET: &str = "s3cr3t-Value-never-shown";

/// A token endpoint and an API behind it. The endpoint hands out `tok-1`, `tok-2`... (or the
/// scripted error); the API accepts any handed-out token that is not revoked.
#[derive(Clone, Default)]
struct Fake {
    token_calls: Arc<AtomicUsize>,
    forms: Arc<Mutex<Vec<HashMap<String, String>>>>,
    expires_in: Arc<Mutex<Value>>,
    token_error: Arc<Mutex<Option<(u16, String)>>>,
    api_calls: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<String>>>,
    revoked: Arc<Mutex<HashSet<String>>>,
    /// Tokens the API takes without the endpoint having issued them (file tokens).
    accept_any: Arc<std::sync::atomic::AtomicBool>,
}

impl Fake {
    fn token_calls(&self) -> usize {
        self.token_calls.load(Ordering::SeqCst)
    }
    fn api_calls(&self) -> usize {
        self.api_calls.load(Ordering::SeqCst)
    }
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
    fn last_form(&self) -> HashMap<String, String> {
        self.forms.lock().unwrap().last().cloned().unwrap()
    }
    fn revoke(&self, token: &str) {
        self.revoked.lock().unwrap().insert(token.to_string());
    }
}

async fn token(State(f): State<Fake>, headers: AxHeaders, body: String) -> AxResponse {
    let n = f.token_calls.fetch_add(1, Ordering::SeqCst) + 1;
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    f.forms.lock().unwrap().push(form);
    if let Some((status, body)) = f.token_error.lock().unwrap().clone() {
        return (AxStatus::from_u16(status).unwrap(), body).into_response();
    }
    let expires_in = f.expires_in.lock().unwrap().clone();
    axum::Json(json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": expires_in}))
        .into_response()
}

async fn api(State(f): State<Fake>, headers: AxHeaders) -> AxResponse {
    f.api_calls.fetch_add(1, Ordering::SeqCst);
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    f.seen.lock().unwrap().push(auth.clone());
    let token = auth.strip_prefix("Bearer ").unwrap_or_default();
    let issued = token
        .strip_prefix("tok-")
        .and_then(|n| n.parse::<usize>().ok())
        .is_some_and(|n| n <= f.token_calls());
    let ok = (issued || f.accept_any.load(Ordering::SeqCst))
        && !f.revoked.lock().unwrap().contains(token);
    if ok {
        axum::Json(json!({"ok": true})).into_response()
    } else {
        (
            AxStatus::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid token"})),
        )
            .into_response()
    }
}

async fn fake() -> (Fake, String) {
    let f = Fake::default();
    *f.expires_in.lock().unwrap() = json!(3600);
    let app = Router::new()
        .route("/token", post(token))
        .route("/api/thing", get(api).post(api))
        .with_state(f.clone());
    (f, serve(app).await)
}

fn options() -> EndpointOptions {
    EndpointOptions {
        timeout: Duration::from_secs(2),
        retry: fast_policy(),
    }
}

fn secret_provider(base: &str) -> Arc<ClientCredentials> {
    Arc::new(
        ClientCredentials::new(ClientCredentialsConfig {
            token_url: Url::parse(&format!("{base}/token")).unwrap(),
            client_id: "app-id".into(),
            client_auth: ClientAuth::Secret {
                secret: SecretString::from(SECRET),
                reference: "`client_secret` ({ env: GRAPH_SECRET })".into(),
            },
            scope: "https://graph.microsoft.com/.default".into(),
            endpoint: options(),
        })
        .unwrap(),
    )
}

fn client(base: &str, provider: Arc<dyn AuthProvider>) -> HttpClient {
    builder(base).auth_provider(provider).build().unwrap()
}

/// The header, claims and verified signature of an RS256 JWT.
fn decode_verified(jwt: &str, key_pem: &str) -> (Value, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let public = RsaSigner::from_pem(key_pem, "test")
        .unwrap()
        .public_key_der();
    let signed = format!("{}.{}", parts[0], parts[1]);
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, public)
        .verify(signed.as_bytes(), &sig)
        .expect("the signature verifies with the test key's public key");
    let part = |p: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
    (part(parts[0]), part(parts[1]))
}

#[tokio::test]
async fn a_token_is_fetched_once_and_reused() {
    let (f, base) = fake().await;
    let http = client(&base, secret_provider(&base));
    for _ in 0..3 {
        http.send(Request::get("/api/thing")).await.unwrap();
    }
    assert_eq!(f.token_calls(), 1);
    assert_eq!(f.seen(), vec!["Bearer tok-1"; 3]);
    let form = f.last_form();
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], "app-id");
    assert_eq!(form["client_secret"], SECRET);
    assert_eq!(form["scope"], "https://graph.microsoft.com/.default");
}

#[tokio::test(start_paused = true)]
async fn a_token_is_refreshed_a_minute_before_it_expires() {
    let (f, base) = fake().await;
    *f.expires_in.lock().unwrap() = json!("300"); // as a string, like Azure AD v1
    let http = client(&base, secret_provider(&base));
    http.send(Request::get("/api/thing")).await.unwrap();
    tokio::time::advance(Duration::from_secs(239)).await;
    http.send(Request::get("/api/thing")).await.unwrap();
    assert_eq!(f.token_calls(), 1, "still 61 s left: reused");
    tokio::time::advance(Duration::from_secs(2)).await;
    http.send(Request::get("/api/thing")).await.unwrap();
    assert_eq!(f.token_calls(), 2, "59 s left: refreshed before expiry");
    assert_eq!(
        f.seen(),
        vec!["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]
    );
    assert_eq!(
        super::cache::refresh_after(Duration::from_secs(3600)),
        Duration::from_secs(3540)
    );
    assert_eq!(
        super::cache::refresh_after(Duration::from_secs(60)),
        Duration::from_secs(30)
    );
}

#[tokio::test]
async fn concurrent_requests_share_one_token_fetch() {
    let (f, base) = fake().await;
    let http = client(&base, secret_provider(&base));
    let all = (0..8).map(|_| http.send(Request::get("/api/thing")));
    for r in futures::future::join_all(all).await {
        r.unwrap();
    }
    assert_eq!(f.token_calls(), 1);
    assert_eq!(f.api_calls(), 8);
}

#[tokio::test]
async fn concurrent_requests_share_one_failing_fetch() {
    let (f, base) = fake().await;
    *f.token_error.lock().unwrap() = Some((400, json!({"error": "invalid_client"}).to_string()));
    let http = client(&base, secret_provider(&base));
    let all = (0..5).map(|_| http.send(Request::get("/api/thing")));
    for r in futures::future::join_all(all).await {
        assert!(matches!(r, Err(HttpError::Auth(AuthError::Refused { .. }))));
    }
    assert_eq!(f.token_calls(), 1);
    assert_eq!(f.api_calls(), 0);
}

#[tokio::test]
async fn a_401_drops_the_token_and_retries_once_with_a_fresh_one() {
    let (f, base) = fake().await;
    let http = client(&base, secret_provider(&base));
    http.send(Request::get("/api/thing")).await.unwrap();
    f.revoke("tok-1");
    // A create too: a 401 means nothing was done.
    http.send(Request::post("/api/thing").json(json!({})))
        .await
        .unwrap();
    assert_eq!(f.token_calls(), 2);
    assert_eq!(
        f.seen(),
        vec!["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]
    );

    // A token refused again is not retried a second time.
    f.revoke("tok-2");
    f.revoke("tok-3");
    let err = http.send(Request::get("/api/thing")).await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert_eq!(f.token_calls(), 3);
    assert_eq!(f.api_calls(), 5);
}

#[tokio::test]
async fn a_401_with_a_static_token_is_not_retried() {
    let (f, base) = fake().await;
    let http = builder(&base)
        .auth(crate::http::Auth::Bearer(SecretString::from("static")))
        .build()
        .unwrap();
    let err = http.send(Request::get("/api/thing")).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(f.api_calls(), 1);
    assert_eq!(f.seen(), vec!["Bearer static"]);
}

fn google_key(token_uri: &str) -> SecretString {
    SecretString::from(
        json!({
            "type": "service_account",
            "project_id": "p",
            "private_key_id": "kid-123",
            "private_key": KEY_PKCS8,
            "client_email": "sync@p.iam.gserviceaccount.com",
            "client_id": "1234567890",
            "token_uri": token_uri,
        })
        .to_string(),
    )
}

fn google(
    key_json: SecretString,
    subject: Option<&str>,
) -> Result<GoogleServiceAccount, AuthError> {
    GoogleServiceAccount::new(GoogleServiceAccountConfig {
        key_json,
        reference: "/etc/headcount/sa.json".into(),
        scopes: vec![
            "https://www.googleapis.com/auth/admin.directory.user.readonly".into(),
            "https://www.googleapis.com/auth/admin.directory.group.readonly".into(),
        ],
        subject: subject.map(str::to_string),
        token_url: None,
        endpoint: options(),
    })
}

#[tokio::test]
async fn google_service_account_jwt_is_signed_with_the_expected_claims() {
    let (f, base) = fake().await;
    let token_uri = format!("{base}/token");
    let sa = google(google_key(&token_uri), Some("admin@example.org")).unwrap();
    let http = client(&base, Arc::new(sa));
    http.send(Request::get("/api/thing")).await.unwrap();
    let form = f.last_form();
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let (header, claims) = decode_verified(&form["assertion"], KEY_PKCS8);
    assert_eq!(
        header,
        json!({"alg": "RS256", "typ": "JWT", "kid": "kid-123"})
    );
    assert_eq!(claims["iss"], "sync@p.iam.gserviceaccount.com");
    assert_eq!(claims["sub"], "admin@example.org");
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/admin.directory.user.readonly https://www.googleapis.com/auth/admin.directory.group.readonly"
    );
    assert_eq!(claims["aud"], token_uri);
    let iat = claims["iat"].as_u64().unwrap();
    let exp = claims["exp"].as_u64().unwrap();
    assert_eq!(exp - iat, 3600);
    assert!(iat.abs_diff(super::jwt::unix_now()) < 60);
    assert_eq!(f.seen(), vec!["Bearer tok-1"]);

    // Without a subject there is no `sub`.
    let sa = google(google_key(&token_uri), None).unwrap();
    client(&base, Arc::new(sa))
        .send(Request::get("/api/thing"))
        .await
        .unwrap();
    let (_, claims) = decode_verified(&f.last_form()["assertion"], KEY_PKCS8);
    assert!(claims.get("sub").is_none(), "{claims}");
}

#[test]
fn certificate_thumbprints_are_of_the_certificate_der() {
    let both = SecretString::from(format!("{KEY_PKCS8}\n{CERT}"));
    let cert = Certificate::from_pem(&both, "`client_certificate` (cert.pem)").unwrap();
    assert_eq!(cert.x5t_s256(), CERT_X5T_S256);
    assert_eq!(cert.x5t(), CERT_X5T);
    let cert = Certificate::from_pem_parts(&SecretString::from(KEY_PKCS1), CERT, "pkcs1").unwrap();
    assert_eq!(cert.x5t_s256(), CERT_X5T_S256);
    let dbg = format!("{cert:?}");
    assert!(!dbg.contains("PRIVATE"), "{dbg}");
}

#[tokio::test]
async fn certificate_credentials_send_a_signed_client_assertion() {
    let (f, base) = fake().await;
    let token_url = Url::parse(&format!("{base}/token")).unwrap();
    let pem = SecretString::from(format!("{CERT}\n{KEY_PKCS1}"));
    let provider = ClientCredentials::new(ClientCredentialsConfig {
        token_url: token_url.clone(),
        client_id: "app-id".into(),
        client_auth: ClientAuth::Certificate(Certificate::from_pem(&pem, "cert.pem").unwrap()),
        scope: "https://graph.microsoft.com/.default".into(),
        endpoint: options(),
    })
    .unwrap();
    client(&base, Arc::new(provider))
        .send(Request::get("/api/thing"))
        .await
        .unwrap();
    let form = f.last_form();
    assert_eq!(form["grant_type"], "client_credentials");
    assert!(!form.contains_key("client_secret"));
    assert_eq!(
        form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    let (header, claims) = decode_verified(&form["client_assertion"], KEY_PKCS8);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["x5t#S256"], CERT_X5T_S256);
    assert_eq!(header["x5t"], CERT_X5T);
    assert_eq!(claims["aud"], token_url.as_str());
    assert_eq!(claims["iss"], "app-id");
    assert_eq!(claims["sub"], "app-id");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert!(claims["exp"].as_u64().unwrap() > claims["iat"].as_u64().unwrap());
}

#[tokio::test]
async fn a_bearer_token_file_is_re_read_when_it_changes() {
    let (f, base) = fake().await;
    f.accept_any.store(true, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "ci-token-one\n").unwrap();
    let provider = FileBearer::new(TokenFile::new(&path, "`token_file` (ci)"));
    let http = client(&base, Arc::new(provider));
    http.send(Request::get("/api/thing")).await.unwrap();
    http.send(Request::get("/api/thing")).await.unwrap();
    std::fs::write(&path, "ci-token-number-two").unwrap(); // another length
    http.send(Request::get("/api/thing")).await.unwrap();
    assert_eq!(
        f.seen(),
        vec![
            "Bearer ci-token-one",
            "Bearer ci-token-one",
            "Bearer ci-token-number-two"
        ]
    );

    // Rewritten with the same length (and maybe the same mtime): a 401 re-reads it.
    f.revoke("ci-token-number-two");
    std::fs::write(&path, "ci-token-number-2wo").unwrap();
    http.send(Request::get("/api/thing")).await.unwrap();
    assert_eq!(f.seen().last().unwrap(), "Bearer ci-token-number-2wo");
}

#[tokio::test]
async fn a_client_assertion_file_is_sent_and_re_read() {
    let (f, base) = fake().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("azure-identity-token");
    std::fs::write(&path, "eyJ.federated.one").unwrap();
    let provider = ClientCredentials::new(ClientCredentialsConfig {
        token_url: Url::parse(&format!("{base}/token")).unwrap(),
        client_id: "app-id".into(),
        client_auth: ClientAuth::AssertionFile(TokenFile::new(&path, "`client_assertion_file`")),
        scope: String::new(),
        endpoint: options(),
    })
    .unwrap();
    let http = client(&base, Arc::new(provider));
    http.send(Request::get("/api/thing")).await.unwrap();
    let form = f.last_form();
    assert_eq!(form["client_assertion"], "eyJ.federated.one");
    assert!(!form.contains_key("scope"));
    std::fs::write(&path, "eyJ.federated.second").unwrap();
    f.revoke("tok-1");
    http.send(Request::get("/api/thing")).await.unwrap();
    assert_eq!(f.last_form()["client_assertion"], "eyJ.federated.second");
}

#[tokio::test]
async fn token_endpoint_errors_are_parsed_and_name_the_reference_not_the_secret() {
    let (f, base) = fake().await;
    *f.token_error.lock().unwrap() = Some((
        401,
        json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}).to_string(),
    ));
    let provider = secret_provider(&base);
    let http = client(&base, provider.clone());
    let err = http.send(Request::get("/api/thing")).await.unwrap_err();
    let HttpError::Auth(auth) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        auth.oauth_error(),
        Some((
            "invalid_client",
            Some("AADSTS7000215: Invalid client secret provided.")
        ))
    );
    assert_eq!(auth.reference(), "`client_secret` ({ env: GRAPH_SECRET })");
    let msg = err.to_string();
    assert!(
        msg.contains("`client_secret` ({ env: GRAPH_SECRET })"),
        "{msg}"
    );
    assert!(
        msg.contains("invalid_client") && msg.contains("AADSTS7000215"),
        "{msg}"
    );
    for shown in [msg, format!("{err:?}"), format!("{provider:?}")] {
        assert!(!shown.contains(SECRET), "{shown}");
    }

    // Google's refusals.
    for (error, description) in [
        (
            "unauthorized_client",
            "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
        ),
        ("invalid_grant", "Invalid email or User ID"),
    ] {
        *f.token_error.lock().unwrap() = Some((
            if error == "invalid_grant" { 400 } else { 401 },
            json!({"error": error, "error_description": description}).to_string(),
        ));
        let sa = google(
            google_key(&format!("{base}/token")),
            Some("nobody@example.org"),
        )
        .unwrap();
        let err = client(&base, Arc::new(sa))
            .send(Request::get("/api/thing"))
            .await
            .unwrap_err();
        let HttpError::Auth(auth) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(auth.oauth_error(), Some((error, Some(description))));
        assert!(err.to_string().contains("/etc/headcount/sa.json"), "{err}");
        assert!(!err.to_string().contains("PRIVATE KEY"), "{err}");
    }

    // Not an OAuth error body: still no secret, still the reference.
    *f.token_error.lock().unwrap() = Some((403, "<html>proxy says no</html>".into()));
    let err = client(&base, secret_provider(&base))
        .send(Request::get("/api/thing"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HttpError::Auth(AuthError::Endpoint { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("GRAPH_SECRET"), "{err}");
}

#[test]
fn unusable_credentials_name_the_reference_never_the_value() {
    // A key whose PEM is broken: the message must not quote it.
    let broken = SecretString::from(
        json!({
            "type": "service_account",
            "private_key": "-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYMATERIAL!!\n-----END PRIVATE KEY-----\n",
            "client_email": "a@b",
            "token_uri": "https://oauth2.googleapis.com/token",
        })
        .to_string(),
    );
    let err = google(broken, None).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("/etc/headcount/sa.json"), "{msg}");
    assert!(!msg.contains("TOPSECRET") && !format!("{err:?}").contains("TOPSECRET"));

    let not_json = SecretString::from(format!("{SECRET} is not JSON"));
    let err = google(not_json, None).unwrap_err();
    assert!(!err.to_string().contains(SECRET), "{err}");
    assert!(err.to_string().contains("sa.json"), "{err}");

    let no_email = SecretString::from(json!({"private_key": KEY_PKCS8}).to_string());
    let err = google(no_email, None).unwrap_err();
    assert!(err.to_string().contains("`client_email`"), "{err}");

    let no_cert = SecretString::from(KEY_PKCS8.to_string());
    let err = Certificate::from_pem(&no_cert, "`client_certificate` ({ env: CERT })").unwrap_err();
    assert!(err.to_string().contains("no certificate"), "{err}");
    assert!(err.to_string().contains("{ env: CERT }"), "{err}");
}

#[tokio::test]
async fn a_missing_token_file_names_the_reference_and_path() {
    let provider = FileBearer::new(TokenFile::new("/nonexistent/ci-token", "`token_file`"));
    let err = provider.credential().await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`token_file`") && msg.contains("/nonexistent/ci-token"),
        "{msg}"
    );
}

/// A token file is bounded like a secret file: a device or an oversized file is refused before
/// it is read into memory (a wrong path must neither hang nor exhaust memory).
#[tokio::test]
async fn a_token_file_that_is_a_device_or_too_large_is_refused() {
    let provider = FileBearer::new(TokenFile::new("/dev/zero", "`token_file`"));
    let err = provider.credential().await.unwrap_err().to_string();
    assert!(
        err.contains("not a regular file") && err.contains("`token_file`"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'a'; 65 * 1024]).unwrap();
    let provider = FileBearer::new(TokenFile::new(&big, "`token_file`"));
    let err = provider.credential().await.unwrap_err().to_string();
    assert!(err.contains("larger than"), "{err}");
}

#[test]
fn token_request_bodies_are_redacted_in_logs() {
    let form = format!(
        "grant_type=client_credentials&client_id=app&client_secret={SECRET}&client_assertion=eyJ.a.b&client_assertion_type=urn%3Ajwt&assertion=eyJ.c.d"
    );
    let shown = redact::body(form.as_bytes());
    assert!(!shown.contains(SECRET) && !shown.contains("eyJ"), "{shown}");
    assert!(shown.contains("client_id=app"), "{shown}");
    let answer = json!({"access_token": "at-secret", "expires_in": 3599}).to_string();
    assert!(!redact::body(answer.as_bytes()).contains("at-secret"));
}

/// Debug logs of a whole exchange (token request and API call) never hold a secret.
#[tokio::test]
async fn debug_logs_never_hold_the_secret_or_tokens() {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (_f, base) = fake().await;
    client(&base, secret_provider(&base))
        .send(Request::get("/api/thing"))
        .await
        .unwrap();
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("/token"), "the exchange is logged: {logs}");
    assert!(!logs.contains(SECRET), "{logs}");
    assert!(!logs.contains("tok-1"), "{logs}");
}
