//! An in-memory Google: the OAuth token endpoint (jwt-bearer grant with domain-wide
//! delegation), STS and IAM Credentials `signJwt` (workload identity federation), and the
//! Directory API's `users.list` and `members.list`, behind the [`super::fault::FaultLayer`],
//! answering as the vendor's documentation says:
//!
//! * the token endpoint verifies the JWT's RS256 signature with the test key's public key and
//!   its claims (`iss`, `aud` = the token URL, `sub` an existing user, `scope` space-delimited,
//!   `exp - iat` ≤ 3600); delegation grants are per client id and scopes (none →
//!   `401 unauthorized_client`, some scopes missing → `access_denied`);
//! * `users.list` needs `customer` or `domain`, `maxResults` in 1..=500 (default 100),
//!   pages by `pageToken`/`nextPageToken`, understands `isSuspended=`, `isArchived=`,
//!   `isAdmin=`, `orgUnitPath=` and `email:` queries, and returns `customSchemas` only with
//!   `projection=full` or `custom` (the schemas of `customFieldMask`);
//! * `members.list` pages by 200 at most, with `type: USER | GROUP | CUSTOMER` members;
//! * errors in Google's shape `{"error": {"code", "message", "errors": [{"domain", "reason",
//!   "message"}]}}`; [`throttle`] makes `403 userRateLimitExceeded` / `429 rateLimitExceeded`
//!   answers with or without `Retry-After` for the fault layer.

#![allow(clippy::result_large_err)] // handlers answer early with a whole Response

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, Path as AxPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, UnparsedPublicKey,
};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::{Fault, Faults, RequestLog, Served};
use crate::connectors::google::{Account, GoogleSource, Listing, scopes};
use crate::http::auth::{EndpointOptions, GoogleServiceAccount, GoogleServiceAccountConfig};

/// The test-only RSA key (never used anywhere else).
pub const TEST_KEY_PEM: &str = include_str!("../http/auth/testdata/test-key.pem");
pub const CLIENT_EMAIL: &str = "headcount-sync@acme-test.iam.gserviceaccount.com";
pub const CLIENT_ID: &str = "104729000000000000001";
pub const PROJECT: &str = "acme-test";
/// The admin the tests impersonate (a user of the directory).
pub const ADMIN: &str = "admin@example.com";
/// The workload identity provider the emulated STS accepts.
pub const WIF_AUDIENCE: &str = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/ci/providers/github";
/// The OIDC token the emulated STS accepts.
pub const OIDC_TOKEN: &str = "eyJ-test-oidc-token-from-the-ci-runner";

const SCOPE_PREFIX: &str = "https://www.googleapis.com/auth/";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

struct Grant {
    scopes: BTreeSet<String>,
}

#[derive(Default)]
struct GState {
    /// `http://127.0.0.1:PORT`, known once served.
    origin: Mutex<String>,
    key: Option<RsaKeyPair>,
    public_der: Vec<u8>,
    /// Delegation grants: client id → scopes.
    grants: Mutex<HashMap<String, BTreeSet<String>>>,
    /// Admins that may be impersonated besides the users listed (lower-case emails).
    subjects: Mutex<BTreeSet<String>>,
    /// Users by lower-case primary email.
    users: Mutex<BTreeMap<String, Value>>,
    /// Members by lower-case group email.
    groups: Mutex<BTreeMap<String, Vec<Value>>>,
    tokens: Mutex<HashMap<String, Grant>>,
    sts_tokens: Mutex<HashSet<String>>,
    next: AtomicU64,
    /// Largest page served whatever `maxResults` asks (small pages for paging tests).
    page_cap: Mutex<Option<usize>>,
    /// Every Directory call answers this `(status, reason, message)`.
    api_error: Mutex<Option<(u16, String, String)>>,
    /// `expires_in` of issued tokens.
    lifetime: AtomicU64,
    /// The pool principal may call `signJwt` on the service account.
    token_creator: Mutex<bool>,
    /// The OIDC token STS accepts.
    oidc_token: Mutex<String>,
    /// Every `nextPageToken` is the same one (a server ignoring `pageToken`).
    stuck_paging: Mutex<bool>,
}

/// A running Google emulator.
#[derive(Clone)]
pub struct GoogleEmulator {
    state: Arc<GState>,
    served: Served,
}

type S = State<Arc<GState>>;
type Q = Query<Vec<(String, String)>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Google's error body.
pub fn google_error(status: u16, reason: &str, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        axum::Json(json!({"error": {"code": status, "message": message,
            "errors": [{"domain": "global", "reason": reason, "message": message}]}})),
    )
        .into_response()
}

fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        code,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// A throttle answer for the fault layer: `403 userRateLimitExceeded` or `429
/// rateLimitExceeded` (by `status`), with `Retry-After` when given.
pub fn throttle(status: u16, reason: &str, retry_after: Option<u64>) -> Fault {
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(s) = retry_after {
        headers.push(("retry-after".to_string(), s.to_string()));
    }
    Fault::Answer {
        status,
        headers,
        body:
            json!({"error": {"code": status, "message": "Quota exceeded for quota metric 'Queries'",
            "errors": [{"domain": "usageLimits", "reason": reason, "message": "Quota exceeded"}]}})
            .to_string(),
    }
}

/// Every read-only scope the source may ask.
pub fn all_scopes() -> Vec<String> {
    scopes(true, true)
}

impl GoogleEmulator {
    /// Starts one with no users, the admin [`ADMIN`] (who may be impersonated but is not
    /// listed, as an admin of another domain of the account) and a delegation grant of every
    /// read-only scope to [`CLIENT_ID`].
    pub async fn start() -> GoogleEmulator {
        let pem = pem::parse(TEST_KEY_PEM).expect("test key PEM");
        let key = RsaKeyPair::from_pkcs8(pem.contents()).expect("test key");
        let public_der = key.public().as_ref().to_vec();
        let state = Arc::new(GState {
            key: Some(key),
            public_der,
            lifetime: AtomicU64::new(3599),
            next: AtomicU64::new(100_000),
            token_creator: Mutex::new(true),
            oidc_token: Mutex::new(OIDC_TOKEN.to_string()),
            ..GState::default()
        });
        lock(&state.grants).insert(CLIENT_ID.to_string(), all_scopes().into_iter().collect());
        lock(&state.subjects).insert(ADMIN.to_string());
        let app = Router::new()
            .route("/token", post(token))
            .route("/v1/token", post(sts))
            .route("/v1/projects/-/serviceAccounts/{name}", post(sign_jwt))
            .route("/admin/directory/v1/users", get(list_users))
            .route(
                "/admin/directory/v1/groups/{group}/members",
                get(list_members),
            )
            .with_state(state.clone());
        let served = super::serve_with_faults(app).await;
        *lock(&state.origin) = served.origin.clone();
        GoogleEmulator { state, served }
    }

    /// `http://127.0.0.1:PORT`: the source's `base_url`.
    pub fn base_url(&self) -> String {
        self.served.origin.clone()
    }

    /// The token endpoint (the key's `token_uri`, the JWT's `aud`).
    pub fn token_url(&self) -> String {
        format!("{}/token", self.served.origin)
    }

    /// The STS endpoint (`sts_url`).
    pub fn sts_url(&self) -> String {
        format!("{}/v1/token", self.served.origin)
    }

    /// The IAM Credentials root (`iam_url`).
    pub fn iam_url(&self) -> String {
        self.served.origin.clone()
    }

    pub fn log(&self) -> &RequestLog {
        &self.served.log
    }

    pub fn faults(&self) -> &Faults {
        &self.served.faults
    }

    /// The service-account key JSON, its `token_uri` this emulator.
    pub fn key_json(&self) -> String {
        json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "emu-key-1",
            "private_key": TEST_KEY_PEM,
            "client_email": CLIENT_EMAIL,
            "client_id": CLIENT_ID,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_url(),
        })
        .to_string()
    }

    /// A source on this emulator as the connector builds it (key, delegation, hooks), with
    /// the testkit's fast retries and no rate limit.
    pub fn source(&self, listing: Listing) -> GoogleSource {
        let scopes = scopes(
            !listing.groups.is_empty(),
            listing.custom_field_mask.is_some(),
        );
        let sa = GoogleServiceAccount::new(GoogleServiceAccountConfig {
            key_json: SecretString::from(self.key_json()),
            reference: "`credentials.service_account_key` (test)".to_string(),
            scopes: scopes.clone(),
            subject: Some(ADMIN.to_string()),
            token_url: None,
            endpoint: EndpointOptions {
                retry: super::fast_policy(),
                ..EndpointOptions::default()
            },
        })
        .expect("service account");
        let client = super::builder(&self.base_url())
            .auth_provider(Arc::new(sa))
            .throttle_hook(Arc::new(|status, _h, body: &[u8]| {
                crate::connectors::google::google_throttled(status.as_u16(), body)
            }))
            .message_hook(Arc::new(|b: &[u8]| {
                crate::connectors::google::google_message(b)
            }))
            .build()
            .expect("client");
        let account = Account {
            client_id: Some(CLIENT_ID.to_string()),
            client_email: CLIENT_EMAIL.to_string(),
            subject: ADMIN.to_string(),
            scopes,
            project: Some(PROJECT.to_string()),
        };
        GoogleSource::new(client, listing, account)
    }

    /// Stores a user (`primaryEmail` at least) as the directory would hold it; returns its id.
    pub fn insert_user(&self, mut user: Value) -> String {
        let id = self.state.next.fetch_add(1, Ordering::SeqCst).to_string();
        let email = user["primaryEmail"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let defaults = json!({"kind": "admin#directory#user", "id": id, "suspended": false,
            "archived": false, "isAdmin": false, "orgUnitPath": "/",
            "customerId": "C03az79cb"});
        for (k, v) in defaults.as_object().unwrap() {
            if user.get(k).is_none() {
                user[k] = v.clone();
            }
        }
        if let Some(name) = user.get_mut("name").and_then(Value::as_object_mut) {
            let full = format!(
                "{} {}",
                name.get("givenName")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                name.get("familyName")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            );
            name.insert("fullName".to_string(), json!(full.trim()));
        }
        let id = user["id"].as_str().unwrap_or_default().to_string();
        lock(&self.state.users).insert(email.to_lowercase(), user);
        id
    }

    /// Changes a stored user (merging top-level keys).
    pub fn update_user(&self, email: &str, changes: Value) {
        let mut users = lock(&self.state.users);
        let u = users.get_mut(&email.to_lowercase()).expect("no such user");
        for (k, v) in changes.as_object().expect("an object") {
            u[k] = v.clone();
        }
    }

    /// The stored user's id.
    pub fn user_id(&self, email: &str) -> Option<String> {
        lock(&self.state.users)
            .get(&email.to_lowercase())
            .and_then(|u| u["id"].as_str().map(str::to_string))
    }

    /// Makes a group whose members are `(email, type)` (`USER`, `GROUP`, `CUSTOMER`).
    pub fn set_group(&self, group: &str, members: &[(&str, &str)]) {
        let list = members
            .iter()
            .map(|(email, kind)| {
                let id = match *kind {
                    "USER" => self.user_id(email),
                    _ => None,
                }
                .unwrap_or_else(|| self.state.next.fetch_add(1, Ordering::SeqCst).to_string());
                let mut m = json!({"kind": "admin#directory#member", "id": id, "role": "MEMBER",
                    "type": kind, "status": "ACTIVE", "etag": "\"m\""});
                if *kind != "CUSTOMER" {
                    m["email"] = json!(email);
                }
                m
            })
            .collect();
        lock(&self.state.groups).insert(group.to_lowercase(), list);
    }

    /// Forgets the admin [`ADMIN`]: impersonating them fails as for a deleted user.
    pub fn remove_admin(&self) {
        lock(&self.state.subjects).clear();
    }

    /// Serves at most `n` items a page, whatever `maxResults` asks.
    pub fn set_page_cap(&self, n: Option<usize>) {
        *lock(&self.state.page_cap) = n;
    }

    /// Every Directory API call answers `status` with `reason` and `message`.
    pub fn set_api_error(&self, error: Option<(u16, &str, &str)>) {
        *lock(&self.state.api_error) = error.map(|(s, r, m)| (s, r.to_string(), m.to_string()));
    }

    /// The delegation grant of `client_id` (`None`: not granted at all).
    pub fn set_grant(&self, client_id: &str, scopes: Option<&[String]>) {
        let mut g = lock(&self.state.grants);
        match scopes {
            Some(s) => {
                g.insert(client_id.to_string(), s.iter().cloned().collect());
            }
            None => {
                g.remove(client_id);
            }
        }
    }

    /// `expires_in` of the tokens issued from now on.
    pub fn set_token_lifetime(&self, secs: u64) {
        self.state.lifetime.store(secs, Ordering::SeqCst);
    }

    /// Whether the pool's principal holds Token Creator on the service account.
    pub fn set_token_creator(&self, yes: bool) {
        *lock(&self.state.token_creator) = yes;
    }

    /// The OIDC token STS accepts from now on.
    pub fn set_oidc_token(&self, token: &str) {
        *lock(&self.state.oidc_token) = token.to_string();
    }

    /// Every `nextPageToken` is the same (a server ignoring `pageToken`).
    pub fn set_stuck_paging(&self, yes: bool) {
        *lock(&self.state.stuck_paging) = yes;
    }

    /// Access tokens issued so far.
    pub fn tokens_issued(&self) -> usize {
        lock(&self.state.tokens).len()
    }
}

fn b64_json(segment: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `POST /token`: the jwt-bearer grant.
async fn token(State(st): S, Form(form): Form<HashMap<String, String>>) -> Response {
    if form.get("grant_type").map(String::as_str) != Some(JWT_BEARER) {
        return oauth_error(400, "unsupported_grant_type", "Invalid grant_type: ");
    }
    let Some(assertion) = form.get("assertion") else {
        return oauth_error(
            400,
            "invalid_request",
            "Missing required parameter: assertion",
        );
    };
    let parts: Vec<&str> = assertion.split('.').collect();
    if parts.len() != 3 {
        return oauth_error(400, "invalid_grant", "Invalid JWT: not three segments");
    }
    let signed = format!("{}.{}", parts[0], parts[1]);
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap_or_default();
    let key = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &st.public_der);
    if key.verify(signed.as_bytes(), &sig).is_err() {
        return oauth_error(400, "invalid_grant", "Invalid JWT Signature.");
    }
    let (Some(header), Some(claims)) = (b64_json(parts[0]), b64_json(parts[1])) else {
        return oauth_error(400, "invalid_grant", "Invalid JWT: unreadable segments");
    };
    if header["alg"] != "RS256" {
        return oauth_error(400, "invalid_grant", "Invalid JWT: alg must be RS256");
    }
    if claims["iss"] != CLIENT_EMAIL {
        return oauth_error(401, "invalid_client", "The OAuth client was not found.");
    }
    if claims["aud"].as_str() != Some(format!("{}/token", lock(&st.origin)).as_str()) {
        return oauth_error(400, "invalid_grant", "Invalid JWT: Failed audience check.");
    }
    let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
    let short_lived = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.";
    match (iat, exp) {
        (Some(iat), Some(exp))
            if exp > iat && exp - iat <= 3600 && exp > now() && iat <= now() + 60 => {}
        _ => return oauth_error(400, "invalid_grant", short_lived),
    }
    let Some(scope) = claims["scope"].as_str().filter(|s| !s.trim().is_empty()) else {
        return oauth_error(400, "invalid_scope", "Empty or missing scope not allowed.");
    };
    if scope.contains(',') {
        return oauth_error(
            400,
            "invalid_scope",
            "Scopes are space-delimited, not comma-separated.",
        );
    }
    let asked: BTreeSet<String> = scope.split_whitespace().map(str::to_string).collect();
    let sub = claims["sub"].as_str().unwrap_or_default().to_lowercase();
    if !lock(&st.users).contains_key(&sub) && !lock(&st.subjects).contains(&sub) {
        return oauth_error(400, "invalid_grant", "Invalid email or User ID");
    }
    match lock(&st.grants).get(CLIENT_ID) {
        None => {
            return oauth_error(
                401,
                "unauthorized_client",
                "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
            );
        }
        Some(granted) if !asked.is_subset(granted) => {
            return oauth_error(400, "access_denied", "Requested client not authorized.");
        }
        Some(_) => {}
    }
    let n = st.next.fetch_add(1, Ordering::SeqCst);
    let access = format!("ya29.emu-{n}");
    lock(&st.tokens).insert(access.clone(), Grant { scopes: asked });
    axum::Json(json!({"access_token": access, "token_type": "Bearer",
        "expires_in": st.lifetime.load(Ordering::SeqCst)}))
    .into_response()
}

/// `POST /v1/token`: STS token exchange of the CI's OIDC token.
async fn sts(State(st): S, Form(form): Form<HashMap<String, String>>) -> Response {
    let want = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        (
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ("scope", "https://www.googleapis.com/auth/cloud-platform"),
    ];
    for (k, v) in want {
        if form.get(k).map(String::as_str) != Some(v) {
            return oauth_error(
                400,
                "invalid_request",
                &format!("Invalid value for \"{k}\"."),
            );
        }
    }
    if form.get("audience").map(String::as_str) != Some(WIF_AUDIENCE) {
        return oauth_error(
            400,
            "invalid_target",
            "The target service indicated by the \"audience\" parameters is invalid.",
        );
    }
    if form.get("subject_token") != Some(&*lock(&st.oidc_token)) {
        return oauth_error(
            400,
            "invalid_grant",
            "The subject token is invalid or expired.",
        );
    }
    let access = format!("sts-{}", st.next.fetch_add(1, Ordering::SeqCst));
    lock(&st.sts_tokens).insert(access.clone());
    axum::Json(json!({"access_token": access,
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "token_type": "Bearer", "expires_in": 3600}))
    .into_response()
}

fn bearer(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string()
}

/// `POST /v1/projects/-/serviceAccounts/{sa}:signJwt`.
async fn sign_jwt(
    State(st): S,
    AxPath(name): AxPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(sa) = name.strip_suffix(":signJwt") else {
        return google_error(404, "notFound", "Method not found.");
    };
    if !lock(&st.sts_tokens).contains(&bearer(&headers)) {
        return google_error(
            401,
            "authError",
            "Request had invalid authentication credentials.",
        );
    }
    if sa != CLIENT_EMAIL || !*lock(&st.token_creator) {
        return google_error(
            403,
            "forbidden",
            "Permission 'iam.serviceAccounts.signJwt' denied on resource (or it may not exist).",
        );
    }
    let payload = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["payload"].as_str().map(str::to_string));
    let Some(claims) = payload.filter(|p| serde_json::from_str::<Value>(p).is_ok()) else {
        return google_error(400, "badRequest", "Invalid JSON payload received.");
    };
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "emu-key-1"});
    let mut jwt = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let key = st.key.as_ref().expect("key");
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        jwt.as_bytes(),
        &mut sig,
    )
    .expect("sign");
    jwt.push('.');
    jwt.push_str(&URL_SAFE_NO_PAD.encode(sig));
    axum::Json(json!({"keyId": "emu-key-1", "signedJwt": jwt})).into_response()
}

/// The token's grant, or Google's 401 / 403.
fn authorize(st: &GState, headers: &HeaderMap, any_of: &[&str]) -> Result<(), Response> {
    let tokens = lock(&st.tokens);
    let Some(grant) = tokens.get(&bearer(headers)) else {
        return Err(google_error(401, "required", "Login Required."));
    };
    if !any_of
        .iter()
        .any(|s| grant.scopes.contains(&format!("{SCOPE_PREFIX}{s}")))
    {
        return Err(google_error(
            403,
            "insufficientPermissions",
            "Request had insufficient authentication scopes.",
        ));
    }
    if let Some((status, reason, message)) = lock(&st.api_error).clone() {
        return Err(google_error(status, &reason, &message));
    }
    Ok(())
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// `maxResults` within `1..=max` (default `default`), else Google's 400.
fn max_results(q: &[(String, String)], default: usize, max: usize) -> Result<usize, Response> {
    match param(q, "maxResults") {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(google_error(
                400,
                "invalid",
                &format!("Invalid value '{v}'. Values must be within the range: [1, {max}]"),
            )),
        },
    }
}

/// One page of `items` from `pageToken`, and the next token.
fn page(
    st: &GState,
    q: &[(String, String)],
    items: Vec<Value>,
    size: usize,
) -> Result<(Vec<Value>, Option<String>), Response> {
    let start = match param(q, "pageToken") {
        None => 0,
        Some(t) => t
            .strip_prefix("emu-page-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| google_error(400, "invalid", "Invalid Input: pageToken"))?,
    };
    let size = lock(&st.page_cap).map_or(size, |cap| size.min(cap));
    let end = (start + size).min(items.len());
    let next = (end < items.len()).then(|| {
        if *lock(&st.stuck_paging) {
            "emu-page-0".to_string()
        } else {
            format!("emu-page-{end}")
        }
    });
    Ok((
        items
            .get(start..end)
            .map(<[Value]>::to_vec)
            .unwrap_or_default(),
        next,
    ))
}

/// One `query` clause applied to a user, or `None` when the clause is not understood.
fn clause_matches(user: &Value, clause: &str) -> Option<bool> {
    let unquote = |v: &str| v.trim_matches(|c| c == '\'' || c == '"').to_string();
    let flag = |field: &str, v: &str| Some(user[field].as_bool().unwrap_or(false) == (v == "true"));
    if let Some(v) = clause.strip_prefix("isSuspended=") {
        return flag("suspended", v);
    }
    if let Some(v) = clause.strip_prefix("isArchived=") {
        return flag("archived", v);
    }
    if let Some(v) = clause.strip_prefix("isAdmin=") {
        return flag("isAdmin", v);
    }
    if let Some(v) = clause.strip_prefix("orgUnitPath=") {
        let want = unquote(v);
        let ou = user["orgUnitPath"].as_str().unwrap_or("/");
        let under = want == "/"
            || ou == want
            || ou.starts_with(&format!("{}/", want.trim_end_matches('/')));
        return Some(under);
    }
    let email = user["primaryEmail"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    if let Some(v) = clause.strip_prefix("email:") {
        let v = unquote(v).to_lowercase();
        return Some(match v.strip_suffix('*') {
            Some(prefix) => email.starts_with(prefix),
            None => email == v,
        });
    }
    if let Some(v) = clause.strip_prefix("email=") {
        return Some(email == unquote(v).to_lowercase());
    }
    None
}

/// `GET /admin/directory/v1/users`.
async fn list_users(State(st): S, Query(q): Q, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(
        &st,
        &headers,
        &["admin.directory.user.readonly", "admin.directory.user"],
    ) {
        return r;
    }
    let (customer, domain) = (param(&q, "customer"), param(&q, "domain"));
    if customer.is_none() && domain.is_none() {
        return google_error(400, "badRequest", "Bad Request");
    }
    if let Some(c) = customer
        && c != "my_customer"
        && c != "C03az79cb"
    {
        return google_error(400, "badRequest", "Bad Request");
    }
    let size = match max_results(&q, 100, 500) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let projection = param(&q, "projection").unwrap_or("basic");
    let mask: Option<BTreeSet<String>> =
        param(&q, "customFieldMask").map(|m| m.split(',').map(|s| s.trim().to_string()).collect());
    match (projection, &mask) {
        ("custom", None) => {
            return google_error(
                400,
                "invalid",
                "Invalid Input: customFieldMask required with projection=custom",
            );
        }
        ("basic" | "full", Some(_)) => {
            return google_error(
                400,
                "invalid",
                "Invalid Input: customFieldMask is only valid with projection=custom",
            );
        }
        ("basic" | "full" | "custom", _) => {}
        _ => return google_error(400, "invalid", &format!("Invalid value '{projection}'")),
    }
    let clauses: Vec<String> = param(&q, "query")
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let mut users = Vec::new();
    for user in lock(&st.users).values() {
        if let Some(d) = domain {
            let email = user["primaryEmail"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase();
            if !email.ends_with(&format!("@{}", d.to_lowercase())) {
                continue;
            }
        }
        let mut keep = true;
        for c in &clauses {
            match clause_matches(user, c) {
                Some(m) => keep &= m,
                None => return google_error(400, "invalid", "Invalid Input"),
            }
        }
        if !keep {
            continue;
        }
        let mut u = user.clone();
        match projection {
            "basic" => {
                if let Some(o) = u.as_object_mut() {
                    o.remove("customSchemas");
                }
            }
            "custom" => {
                let mask = mask.clone().unwrap_or_default();
                if let Some(schemas) = u.get_mut("customSchemas").and_then(Value::as_object_mut) {
                    schemas.retain(|k, _| mask.contains(k));
                }
            }
            _ => {}
        }
        users.push(u);
    }
    let (items, next) = match page(&st, &q, users, size) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut body = json!({"kind": "admin#directory#users", "etag": "\"emu\""});
    if !items.is_empty() {
        body["users"] = json!(items);
    }
    if let Some(t) = next {
        body["nextPageToken"] = json!(t);
    }
    axum::Json(body).into_response()
}

/// `GET /admin/directory/v1/groups/{group}/members`.
async fn list_members(
    State(st): S,
    AxPath(group): AxPath<String>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    let scopes = [
        "admin.directory.group.member.readonly",
        "admin.directory.group.member",
        "admin.directory.group.readonly",
        "admin.directory.group",
    ];
    if let Err(r) = authorize(&st, &headers, &scopes) {
        return r;
    }
    let size = match max_results(&q, 200, 200) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let Some(members) = lock(&st.groups).get(&group.to_lowercase()).cloned() else {
        return google_error(404, "notFound", "Resource Not Found: groupKey");
    };
    let (items, next) = match page(&st, &q, members, size) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut body = json!({"kind": "admin#directory#members", "etag": "\"emu\""});
    if !items.is_empty() {
        body["members"] = json!(items);
    }
    if let Some(t) = next {
        body["nextPageToken"] = json!(t);
    }
    axum::Json(body).into_response()
}
