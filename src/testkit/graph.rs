//! An in-memory Microsoft Graph and Microsoft identity platform token endpoint behind the
//! [`super::fault::FaultLayer`], answering as the vendor documents (apis.md section 4):
//!
//! * `POST /{tenant}/oauth2/v2.0/token`: client credentials by `client_secret`, by a
//!   certificate assertion (RS256 signature checked against the registered certificate's
//!   public key, `x5t`, `aud` = the token URL, `iss` = `sub` = client id, `exp`) or by a
//!   federated token; refusals carry the AADSTS codes Entra sends.
//! * `GET /v1.0/users` (`$select`, default property set, `$top` 1..999, `$filter` by
//!   `userType`/`mail`, `@odata.nextLink` with `$skiptoken`), `/users/delta` (nextLink then
//!   deltaLink, changes and `@removed`, expirable links → 410 `syncStateNotFound`),
//!   `/groups?$filter=displayName eq`, `/groups/{id}`, `/groups/{id}/transitiveMembers`
//!   (nested groups flattened; the `microsoft.graph.user` cast needs `ConsistencyLevel:
//!   eventual` and `$count=true`), `POST /invitations`, `PATCH`/`DELETE /users/{id}`.
//! * Bearer tokens checked (401 `InvalidAuthenticationToken`), application permissions checked
//!   (403 `Authorization_RequestDenied`), Graph's error body shape throughout.

// Handlers return ready axum responses as their errors: a test emulator, not a hot path.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as AxPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use sha1::{Digest as _, Sha1};

use super::{Faults, RequestLog, Served};
use crate::connectors::entra::GraphClient;
use crate::http::auth::{ClientAuth, ClientCredentials, ClientCredentialsConfig, EndpointOptions};

/// The tenant the emulator knows.
pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";
/// The app registration it knows.
pub const CLIENT_ID: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
/// The test certificate (`src/http/auth/testdata`): key and certificate in one PEM.
pub const TEST_CERT_PEM: &str = concat!(
    include_str!("../http/auth/testdata/test-key.pem"),
    include_str!("../http/auth/testdata/test-cert.pem")
);
/// Every application permission the emulator knows, granted by default.
pub const ALL_PERMISSIONS: [&str; 4] = [
    "User.ReadWrite.All",
    "GroupMember.Read.All",
    "User.Invite.All",
    "User.Read.All",
];
/// Graph's default `/users` property set (no `$select`).
const DEFAULT_PROPERTIES: [&str; 11] = [
    "businessPhones",
    "displayName",
    "givenName",
    "id",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
];

#[derive(Clone)]
enum Cursor {
    /// A `/users/delta` page: changes after `since` (`None`: everything) seen up to `upto`.
    Delta {
        since: Option<u64>,
        upto: u64,
        offset: usize,
        select: Option<String>,
    },
}

struct Group {
    name: String,
    /// User or group ids.
    members: Vec<String>,
}

#[derive(Default)]
struct GraphState {
    secret: String,
    federated: Mutex<Vec<String>>,
    /// `x5t` → RSAPublicKey DER of registered certificates.
    certs: Mutex<HashMap<String, Vec<u8>>>,
    tokens: Mutex<HashSet<String>>,
    next: AtomicU64,
    permissions: Mutex<BTreeSet<String>>,
    users: Mutex<BTreeMap<String, Value>>,
    groups: Mutex<BTreeMap<String, Group>>,
    /// The change sequence and, per user id, the sequence of its last change.
    seq: AtomicU64,
    changed: Mutex<BTreeMap<String, u64>>,
    cursors: Mutex<HashMap<String, Cursor>>,
    /// Delta links handed out, by token → the sequence they resume after.
    delta_links: Mutex<HashMap<String, u64>>,
    /// Largest page the server returns.
    page_cap: AtomicUsize,
    invitation_emails: AtomicUsize,
    /// Graph's origin: the token scope is `{graph}/.default`.
    graph_origin: Mutex<String>,
}

/// A running Graph emulator.
#[derive(Clone)]
pub struct GraphEmulator {
    state: Arc<GraphState>,
    /// Graph (`graph_url`).
    served: Served,
    /// The identity platform (`login_url`): another host, as in Azure, with its own log.
    login: Served,
}

type S = State<Arc<GraphState>>;
type Q = Query<BTreeMap<String, String>>;

/// Graph's error body.
fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message, "innerError": {
            "date": "2026-01-01T00:00:00", "request-id": "emulated-request", "client-request-id": "emulated-request"
        }}})),
    )
        .into_response()
}

/// The identity platform's OAuth error body.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description, "error_codes": []})),
    )
        .into_response()
}

impl GraphEmulator {
    /// Starts one on 127.0.0.1:0 for [`TENANT`] and [`CLIENT_ID`] with `secret`, every
    /// permission granted, and the test certificate registered.
    pub async fn start(secret: &str) -> GraphEmulator {
        let state = Arc::new(GraphState {
            secret: secret.to_string(),
            next: AtomicU64::new(1),
            page_cap: AtomicUsize::new(999),
            permissions: Mutex::new(ALL_PERMISSIONS.iter().map(|s| s.to_string()).collect()),
            ..GraphState::default()
        });
        let emu_state = state.clone();
        let login = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .with_state(state.clone());
        let app = Router::new()
            .route("/v1.0/users", get(list_users))
            .route("/v1.0/users/delta", get(users_delta))
            .route("/v1.0/users/{id}", patch(update_user).delete(delete_user))
            .route("/v1.0/groups", get(list_groups))
            .route("/v1.0/groups/{id}", get(show_group))
            .route("/v1.0/groups/{id}/transitiveMembers", get(members))
            .route(
                "/v1.0/groups/{id}/transitiveMembers/{cast}",
                get(members_cast),
            )
            .route("/v1.0/invitations", post(invite))
            .with_state(state);
        let emu = GraphEmulator {
            state: emu_state,
            served: super::serve_with_faults(app).await,
            login: super::serve_with_faults(login).await,
        };
        *emu.state.graph_origin.lock().unwrap() = emu.origin();
        emu.register_certificate(TEST_CERT_PEM);
        emu
    }

    /// `http://127.0.0.1:PORT` of Graph: the `graph_url`.
    pub fn origin(&self) -> String {
        self.served.origin.clone()
    }

    /// `http://127.0.0.1:PORT` of the token endpoint: the `login_url`.
    pub fn login_origin(&self) -> String {
        self.login.origin.clone()
    }

    /// The token URL of [`TENANT`].
    pub fn token_url(&self) -> String {
        format!("{}/{TENANT}/oauth2/v2.0/token", self.login_origin())
    }

    /// Graph requests.
    pub fn log(&self) -> &RequestLog {
        &self.served.log
    }

    /// Graph's fault script.
    pub fn faults(&self) -> &Faults {
        &self.served.faults
    }

    /// Token endpoint requests.
    pub fn login_log(&self) -> &RequestLog {
        &self.login.log
    }

    /// The token endpoint's fault script.
    pub fn login_faults(&self) -> &Faults {
        &self.login.faults
    }

    /// A Graph client signing in with `auth`: fast retries, no rate limit.
    pub fn client(&self, auth: ClientAuth) -> GraphClient {
        let provider = ClientCredentials::new(ClientCredentialsConfig {
            token_url: url::Url::parse(&self.token_url()).unwrap(),
            client_id: CLIENT_ID.to_string(),
            client_auth: auth,
            scope: format!("{}/.default", self.origin()),
            endpoint: EndpointOptions {
                timeout: std::time::Duration::from_secs(2),
                retry: super::fast_policy(),
            },
        })
        .unwrap();
        let http = super::builder(&format!("{}/v1.0", self.origin()))
            .message_hook(Arc::new(|b: &[u8]| {
                crate::connectors::entra::graph_message(b)
            }))
            .auth_provider(Arc::new(provider))
            .build()
            .unwrap();
        GraphClient::new(http, CLIENT_ID.to_string())
    }

    /// Accepts `token` as a federated client assertion (a workload identity's OIDC token).
    pub fn trust_federated(&self, token: &str) {
        self.state.federated.lock().unwrap().push(token.to_string());
    }

    /// Registers the certificate of `pem` on the app (its first `CERTIFICATE` block).
    pub fn register_certificate(&self, pem_text: &str) {
        let cert = pem::parse_many(pem_text)
            .unwrap()
            .into_iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .unwrap();
        let x5t = URL_SAFE_NO_PAD.encode(Sha1::digest(cert.contents()));
        let key = rsa_public_key(cert.contents()).expect("an RSA certificate");
        self.state.certs.lock().unwrap().insert(x5t, key);
    }

    /// Removes every registered certificate.
    pub fn unregister_certificates(&self) {
        self.state.certs.lock().unwrap().clear();
    }

    /// The application permissions granted (admin-consented) to the app.
    pub fn set_permissions(&self, granted: &[&str]) {
        *self.state.permissions.lock().unwrap() = granted.iter().map(|s| s.to_string()).collect();
    }

    /// Tokens issued so far are refused from now on (as after expiry).
    pub fn revoke_tokens(&self) {
        self.state.tokens.lock().unwrap().clear();
    }

    /// Token requests received.
    pub fn token_requests(&self) -> Vec<super::Logged> {
        self.login_log().all()
    }

    /// The largest page the server returns, whatever `$top` asks.
    pub fn set_page_cap(&self, n: usize) {
        self.state.page_cap.store(n.max(1), Ordering::SeqCst);
    }

    /// Every delta link handed out so far is expired (410 `syncStateNotFound`).
    pub fn expire_delta_links(&self) {
        self.state.delta_links.lock().unwrap().clear();
    }

    /// Adds a user (properties as Graph names them); returns its id.
    pub fn add_user(&self, user: Value) -> String {
        self.state.add_user(user)
    }

    /// A member user `n`: `user{n}@contoso.example`.
    pub fn add_member(&self, n: usize, name: &str) -> String {
        let (given, family) = name.split_once(' ').unwrap_or((name, ""));
        self.add_user(json!({
            "userPrincipalName": format!("user{n}@contoso.example"),
            "mail": format!("user{n}@contoso.example"),
            "givenName": given,
            "surname": family,
            "displayName": name,
            "accountEnabled": true,
            "userType": "Member",
            "employeeId": format!("E{n}"),
            "department": "Support",
            "jobTitle": "Agent",
        }))
    }

    /// Changes some properties of user `id`.
    pub fn update_user(&self, id: &str, changes: Value) {
        self.state
            .update(id, changes.as_object().cloned().unwrap_or_default());
    }

    /// Deletes user `id` (and its group memberships).
    pub fn remove_user(&self, id: &str) {
        self.state.remove(id);
    }

    /// Every user, by id.
    pub fn users(&self) -> Vec<Value> {
        self.state.users.lock().unwrap().values().cloned().collect()
    }

    /// Guests only.
    pub fn guests(&self) -> Vec<Value> {
        self.users()
            .into_iter()
            .filter(|u| u["userType"] == "Guest")
            .collect()
    }

    /// Adds a group with these member ids (users or groups); returns its id.
    pub fn add_group(&self, name: &str, members: &[&str]) -> String {
        let id = self.state.new_id();
        self.state.groups.lock().unwrap().insert(
            id.clone(),
            Group {
                name: name.to_string(),
                members: members.iter().map(|s| s.to_string()).collect(),
            },
        );
        id
    }

    /// Replaces the members of group `id`.
    pub fn set_members(&self, id: &str, members: &[&str]) {
        if let Some(g) = self.state.groups.lock().unwrap().get_mut(id) {
            g.members = members.iter().map(|s| s.to_string()).collect();
        }
    }

    /// Invitations sent with `sendInvitationMessage: true`.
    pub fn invitation_emails(&self) -> usize {
        self.state.invitation_emails.load(Ordering::SeqCst)
    }
}

impl GraphState {
    fn new_id(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        format!("{n:08x}-0000-4000-8000-{n:012x}")
    }

    fn touch(&self, id: &str) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        self.changed.lock().unwrap().insert(id.to_string(), seq);
    }

    fn add_user(&self, mut user: Value) -> String {
        let id = self.new_id();
        user["id"] = json!(id);
        self.users.lock().unwrap().insert(id.clone(), user);
        self.touch(&id);
        id
    }

    fn update(&self, id: &str, changes: Map<String, Value>) -> bool {
        let mut users = self.users.lock().unwrap();
        let Some(user) = users.get_mut(id) else {
            return false;
        };
        for (k, v) in changes {
            if k != "id" {
                user[k.as_str()] = v;
            }
        }
        drop(users);
        self.touch(id);
        true
    }

    fn remove(&self, id: &str) -> bool {
        let gone = self.users.lock().unwrap().remove(id).is_some();
        if gone {
            for g in self.groups.lock().unwrap().values_mut() {
                g.members.retain(|m| m != id);
            }
            self.touch(id);
        }
        gone
    }

    /// `None` when the bearer token was issued here; else Graph's 401.
    fn unauthenticated(&self, headers: &HeaderMap) -> Option<Response> {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match token {
            None => Some(graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token is empty.",
            )),
            Some(t) if self.tokens.lock().unwrap().contains(t) => None,
            Some(_) => Some(graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            )),
        }
    }

    /// `None` when the token is valid and one of `any_of` is granted; else 401 or 403.
    fn refuse(&self, headers: &HeaderMap, any_of: &[&str]) -> Option<Response> {
        if let Some(r) = self.unauthenticated(headers) {
            return Some(r);
        }
        let granted = self.permissions.lock().unwrap();
        if any_of.iter().any(|p| granted.contains(*p)) {
            return None;
        }
        Some(graph_error(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        ))
    }

    fn page_size(&self, q: &BTreeMap<String, String>) -> Result<usize, Response> {
        let cap = self.page_cap.load(Ordering::SeqCst);
        match q.get("$top") {
            None => Ok(100.min(cap)),
            Some(t) => match t.parse::<usize>() {
                Ok(n) if (1..=999).contains(&n) => Ok(n.min(cap)),
                _ => Err(graph_error(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    &format!(
                        "Invalid page size specified: '{t}'. Must be between 1 and 999 inclusive."
                    ),
                )),
            },
        }
    }
}

/// `user` with only the `$select`ed properties (Graph's default set without one).
fn project(user: &Value, select: Option<&str>) -> Value {
    let mut out = Map::new();
    let wanted: Vec<&str> = match select {
        Some(s) => s.split(',').map(str::trim).collect(),
        None => DEFAULT_PROPERTIES.to_vec(),
    };
    for k in wanted {
        out.insert(k.to_string(), user.get(k).cloned().unwrap_or(Value::Null));
    }
    Value::Object(out)
}

/// `prop eq 'value'` (the one `$filter` form the emulator reads), quotes unescaped.
fn parse_eq(filter: &str) -> Option<(String, String)> {
    let (prop, rest) = filter.trim().split_once(" eq ")?;
    let value = rest.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    Some((prop.trim().to_string(), value.replace("''", "'")))
}

fn unsupported_query() -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        "Request_UnsupportedQuery",
        "Unsupported Query.",
    )
}

fn host(headers: &HeaderMap) -> String {
    let h = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{h}")
}

/// One page of `items` from `offset`, with a nextLink made by `next` when more remain.
fn page(
    items: Vec<Value>,
    offset: usize,
    size: usize,
    next: impl FnOnce(usize) -> String,
) -> (Vec<Value>, Option<String>) {
    let end = (offset + size).min(items.len());
    let slice = items
        .get(offset..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let link = (end < items.len()).then(|| next(end));
    (slice, link)
}

fn link_with(base: String, q: &BTreeMap<String, String>, skip: usize) -> String {
    let mut url = url::Url::parse(&base).unwrap();
    {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in q {
            if k != "$skiptoken" {
                pairs.append_pair(k, v);
            }
        }
        pairs.append_pair("$skiptoken", &skip.to_string());
    }
    url.to_string()
}

async fn token(
    State(s): S,
    AxPath(tenant): AxPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    if tenant != TENANT {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!(
                "AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type.",
        );
    }
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    if client_id != CLIENT_ID {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            &format!(
                "AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{TENANT}'."
            ),
        );
    }
    let origin = host(&headers);
    let graph = s.graph_origin.lock().unwrap().clone();
    if form.get("scope") != Some(&format!("{graph}/.default")) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "AADSTS70011: The provided value for the input parameter 'scope' is not valid.",
        );
    }
    let token_url = format!("{origin}/{tenant}/oauth2/v2.0/token");
    if let Some(secret) = form.get("client_secret") {
        if *secret != s.secret {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                &format!(
                    "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{CLIENT_ID}'."
                ),
            );
        }
    } else if let Some(assertion) = form.get("client_assertion") {
        if form.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "AADSTS50027: client_assertion_type must be jwt-bearer.",
            );
        }
        if let Err(r) = s.check_assertion(assertion, &token_url) {
            return r;
        }
    } else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    }
    let n = s.next.fetch_add(1, Ordering::SeqCst);
    let token = format!("graph-access-token-{n}");
    s.tokens.lock().unwrap().insert(token.clone());
    axum::Json(json!({
        "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token
    }))
    .into_response()
}

impl GraphState {
    /// A federated token registered as trusted, or a certificate assertion whose signature,
    /// thumbprint and claims check out.
    fn check_assertion(&self, assertion: &str, token_url: &str) -> Result<(), Response> {
        if self
            .federated
            .lock()
            .unwrap()
            .iter()
            .any(|t| t == assertion)
        {
            return Ok(());
        }
        let refused = |why: &str| {
            oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                &format!("AADSTS700027: Client assertion failed signature validation. {why}"),
            )
        };
        let parts: Vec<&str> = assertion.split('.').collect();
        let decode = |p: &str| -> Option<Value> {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
        };
        let (header, claims) = match parts.as_slice() {
            [h, c, _] => match (decode(h), decode(c)) {
                (Some(h), Some(c)) => (h, c),
                _ => return Err(refused("The assertion is not a JWT.")),
            },
            _ => {
                return Err(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_client",
                    "AADSTS700213: No matching federated identity record found for presented assertion subject.",
                ));
            }
        };
        let Some(x5t) = header.get("x5t").and_then(Value::as_str) else {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client",
                "AADSTS700213: No matching federated identity record found for presented assertion issuer.",
            ));
        };
        if header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(refused("Unsupported algorithm."));
        }
        let Some(key) = self.certs.lock().unwrap().get(x5t).cloned() else {
            return Err(refused(&format!(
                "Key was not found: no certificate with thumbprint '{x5t}' is registered."
            )));
        };
        let signed = format!("{}.{}", parts[0], parts[1]);
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap_or_default();
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            key,
        );
        if public.verify(signed.as_bytes(), &sig).is_err() {
            return Err(refused(
                "The signature does not match the registered certificate.",
            ));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claim = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or_default();
        if claim("aud") != token_url {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client",
                "AADSTS700212: No matching audience found in the client assertion.",
            ));
        }
        if claim("iss") != CLIENT_ID || claim("sub") != CLIENT_ID {
            return Err(refused("iss and sub must be the client id."));
        }
        if claims.get("jti").and_then(Value::as_str).is_none() {
            return Err(refused("jti is missing."));
        }
        if claims
            .get("exp")
            .and_then(Value::as_u64)
            .is_none_or(|e| e <= now)
        {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client",
                "AADSTS700024: Client assertion is not within its valid time range.",
            ));
        }
        Ok(())
    }
}

/// The `RSAPublicKey` inside an X.509 certificate's SubjectPublicKeyInfo (a minimal DER walk).
fn rsa_public_key(der: &[u8]) -> Option<Vec<u8>> {
    fn tlv(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let tag = *d.first()?;
        let first = *d.get(1)? as usize;
        let (len, start) = if first < 0x80 {
            (first, 2)
        } else {
            let n = first & 0x7f;
            let mut len = 0usize;
            for b in d.get(2..2 + n)? {
                len = (len << 8) | *b as usize;
            }
            (len, 2 + n)
        };
        let content = d.get(start..start + len)?;
        Some((tag, content, d.get(start + len..)?))
    }
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    let (tag, _, r) = tlv(rest)?;
    if tag == 0xa0 {
        rest = r;
    }
    // serial, signature algorithm, issuer, validity, subject
    for _ in 0..5 {
        rest = tlv(rest)?.2;
    }
    let (_, spki, _) = tlv(rest)?;
    let (_, bits, _) = tlv(tlv(spki)?.2)?;
    Some(bits.get(1..)?.to_vec())
}

async fn list_users(State(s): S, headers: HeaderMap, Query(q): Q) -> Response {
    if let Some(r) = s.refuse(
        &headers,
        &["User.Read.All", "User.ReadWrite.All", "Directory.Read.All"],
    ) {
        return r;
    }
    let size = match s.page_size(&q) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let filter = match q.get("$filter") {
        None => None,
        Some(f) => match parse_eq(f) {
            Some((p, v)) if p == "userType" || p == "mail" => Some((p, v)),
            _ => return unsupported_query(),
        },
    };
    let users: Vec<Value> = s
        .users
        .lock()
        .unwrap()
        .values()
        .filter(|u| match &filter {
            None => true,
            Some((p, v)) => u
                .get(p)
                .and_then(Value::as_str)
                .is_some_and(|x| x.eq_ignore_ascii_case(v)),
        })
        .map(|u| project(u, q.get("$select").map(String::as_str)))
        .collect();
    let offset = q
        .get("$skiptoken")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let base = format!("{}/v1.0/users", host(&headers));
    let (items, next) = page(users, offset, size, |end| link_with(base, &q, end));
    let mut body = json!({"@odata.context": "emulated#users", "value": items});
    if let Some(n) = next {
        body["@odata.nextLink"] = json!(n);
    }
    axum::Json(body).into_response()
}

async fn users_delta(State(s): S, headers: HeaderMap, Query(q): Q) -> Response {
    if let Some(r) = s.refuse(
        &headers,
        &["User.Read.All", "User.ReadWrite.All", "Directory.Read.All"],
    ) {
        return r;
    }
    if q.contains_key("$top") || q.contains_key("$orderby") || q.contains_key("$expand") {
        return unsupported_query();
    }
    let cursor = if let Some(t) = q.get("$deltatoken") {
        match s.delta_links.lock().unwrap().get(t) {
            Some(since) => Cursor::Delta {
                since: Some(*since),
                upto: s.seq.load(Ordering::SeqCst),
                offset: 0,
                select: None,
            },
            None => {
                return graph_error(
                    StatusCode::GONE,
                    "syncStateNotFound",
                    "The sync state was not found or has expired. Restart the sync without a state token.",
                );
            }
        }
    } else if let Some(t) = q.get("$skiptoken") {
        match s.cursors.lock().unwrap().get(t) {
            Some(c) => c.clone(),
            None => return unsupported_query(),
        }
    } else {
        Cursor::Delta {
            since: None,
            upto: s.seq.load(Ordering::SeqCst),
            offset: 0,
            select: q.get("$select").cloned(),
        }
    };
    // The select of a delta link is the one of its first round.
    let Cursor::Delta {
        since,
        upto,
        offset,
        mut select,
    } = cursor;
    if let Some(t) = q.get("$deltatoken") {
        select = s
            .cursors
            .lock()
            .unwrap()
            .get(&format!("select-{t}"))
            .and_then(|c| match c {
                Cursor::Delta { select, .. } => select.clone(),
            });
    }
    let users = s.users.lock().unwrap();
    let changed = s.changed.lock().unwrap();
    let items: Vec<Value> = match since {
        None => users
            .values()
            .map(|u| project(u, select.as_deref()))
            .collect(),
        Some(since) => changed
            .iter()
            .filter(|(_, seq)| **seq > since)
            .map(|(id, _)| match users.get(id) {
                Some(u) => project(u, select.as_deref()),
                None => json!({"id": id, "@removed": {"reason": "deleted"}}),
            })
            .collect(),
    };
    drop((users, changed));
    let size = s.page_cap.load(Ordering::SeqCst).min(100);
    let origin = host(&headers);
    let (items, next) = page(items, offset, size, |end| {
        let t = format!("skip{}", s.next.fetch_add(1, Ordering::SeqCst));
        s.cursors.lock().unwrap().insert(
            t.clone(),
            Cursor::Delta {
                since,
                upto,
                offset: end,
                select: select.clone(),
            },
        );
        format!("{origin}/v1.0/users/delta?$skiptoken={t}")
    });
    let mut body = json!({"@odata.context": "emulated#users", "value": items});
    match next {
        Some(n) => body["@odata.nextLink"] = json!(n),
        None => {
            let t = format!("delta{}", s.next.fetch_add(1, Ordering::SeqCst));
            s.delta_links.lock().unwrap().insert(t.clone(), upto);
            s.cursors.lock().unwrap().insert(
                format!("select-{t}"),
                Cursor::Delta {
                    since: None,
                    upto,
                    offset: 0,
                    select,
                },
            );
            body["@odata.deltaLink"] = json!(format!("{origin}/v1.0/users/delta?$deltatoken={t}"));
        }
    }
    axum::Json(body).into_response()
}

const READ_GROUPS: [&str; 3] = [
    "GroupMember.Read.All",
    "Group.Read.All",
    "Directory.Read.All",
];

async fn list_groups(State(s): S, headers: HeaderMap, Query(q): Q) -> Response {
    if let Some(r) = s.refuse(&headers, &READ_GROUPS) {
        return r;
    }
    let name = match q.get("$filter").map(|f| parse_eq(f)) {
        None => None,
        Some(Some((p, v))) if p == "displayName" => Some(v),
        Some(_) => return unsupported_query(),
    };
    let groups: Vec<Value> = s
        .groups
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, g)| name.as_ref().is_none_or(|n| *n == g.name))
        .map(|(id, g)| json!({"id": id, "displayName": g.name}))
        .collect();
    axum::Json(json!({"value": groups})).into_response()
}

async fn show_group(State(s): S, headers: HeaderMap, AxPath(id): AxPath<String>) -> Response {
    if let Some(r) = s.refuse(&headers, &READ_GROUPS) {
        return r;
    }
    match s.groups.lock().unwrap().get(&id) {
        Some(g) => axum::Json(json!({"id": id, "displayName": g.name})).into_response(),
        None => graph_error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        ),
    }
}

impl GraphState {
    /// Users and groups under `id`, nested groups flattened (each once).
    fn transitive(&self, id: &str) -> Option<Vec<Value>> {
        let groups = self.groups.lock().unwrap();
        let users = self.users.lock().unwrap();
        groups.get(id)?;
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let mut stack = vec![id.to_string()];
        while let Some(g) = stack.pop() {
            for m in groups
                .get(&g)
                .map(|g| g.members.clone())
                .unwrap_or_default()
            {
                if !seen.insert(m.clone()) {
                    continue;
                }
                if let Some(sub) = groups.get(&m) {
                    out.push(json!({"@odata.type": "#microsoft.graph.group", "id": m, "displayName": sub.name}));
                    stack.push(m);
                } else if let Some(u) = users.get(&m) {
                    let mut u = u.clone();
                    u["@odata.type"] = json!("#microsoft.graph.user");
                    out.push(u);
                }
            }
        }
        Some(out)
    }

    fn members_page(
        &self,
        id: &str,
        users_only: bool,
        headers: &HeaderMap,
        q: &BTreeMap<String, String>,
    ) -> Response {
        if let Some(r) = self.refuse(headers, &READ_GROUPS) {
            return r;
        }
        let size = match self.page_size(q) {
            Ok(n) => n,
            Err(r) => return r,
        };
        let Some(all) = self.transitive(id) else {
            return graph_error(
                StatusCode::NOT_FOUND,
                "Request_ResourceNotFound",
                &format!("Resource '{id}' does not exist."),
            );
        };
        let items: Vec<Value> = all
            .into_iter()
            .filter(|m| !users_only || m["@odata.type"] == "#microsoft.graph.user")
            .map(|m| {
                let mut p = project(&m, q.get("$select").map(String::as_str));
                p["@odata.type"] = m["@odata.type"].clone();
                p
            })
            .collect();
        let count = items.len();
        let offset = q
            .get("$skiptoken")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let path = if users_only {
            format!(
                "{}/v1.0/groups/{id}/transitiveMembers/microsoft.graph.user",
                host(headers)
            )
        } else {
            format!("{}/v1.0/groups/{id}/transitiveMembers", host(headers))
        };
        let (items, next) = page(items, offset, size, |end| link_with(path, q, end));
        let mut body = json!({"value": items});
        if q.get("$count").map(String::as_str) == Some("true") {
            body["@odata.count"] = json!(count);
        }
        if let Some(n) = next {
            body["@odata.nextLink"] = json!(n);
        }
        axum::Json(body).into_response()
    }
}

async fn members(
    State(s): S,
    headers: HeaderMap,
    AxPath(id): AxPath<String>,
    Query(q): Q,
) -> Response {
    s.members_page(&id, false, &headers, &q)
}

async fn members_cast(
    State(s): S,
    headers: HeaderMap,
    AxPath((id, cast)): AxPath<(String, String)>,
    Query(q): Q,
) -> Response {
    if cast != "microsoft.graph.user" {
        return unsupported_query();
    }
    // An OData cast is an advanced query: ConsistencyLevel: eventual and $count=true.
    let eventual = headers
        .get("consistencylevel")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("eventual"));
    if !eventual || q.get("$count").map(String::as_str) != Some("true") {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            "The specified OData cast requires the ConsistencyLevel: eventual header and $count=true.",
        );
    }
    s.members_page(&id, true, &headers, &q)
}

async fn invite(State(s): S, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = s.refuse(&headers, &["User.Invite.All"]) {
        return r;
    }
    let Ok(Value::Object(inv)) = serde_json::from_slice::<Value>(&body) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid request body.",
        );
    };
    let text = |k: &str| {
        inv.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let email = text("invitedUserEmailAddress");
    if !email.contains('@') {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "The invited user email address is invalid.",
        );
    }
    if text("inviteRedirectUrl").is_empty() {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "inviteRedirectUrl is required.",
        );
    }
    let existing = s
        .users
        .lock()
        .unwrap()
        .values()
        .find(|u| {
            u.get("mail")
                .and_then(Value::as_str)
                .is_some_and(|m| m.eq_ignore_ascii_case(&email))
        })
        .and_then(|u| u.get("id").and_then(Value::as_str).map(str::to_string));
    // Inviting an existing user again re-sends the invitation to that same user.
    let id = existing.unwrap_or_else(|| {
        let name = text("invitedUserDisplayName");
        s.add_user(json!({
            "mail": email,
            "otherMails": [email],
            "userPrincipalName": format!("{}#EXT#@emulated.onmicrosoft.com", email.replace('@', "_")),
            "displayName": if name.is_empty() { email.clone() } else { name },
            "accountEnabled": true,
            "userType": "Guest",
            "externalUserState": "PendingAcceptance",
        }))
    });
    let send = inv
        .get("sendInvitationMessage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if send {
        s.invitation_emails.fetch_add(1, Ordering::SeqCst);
    }
    let n = s.next.fetch_add(1, Ordering::SeqCst);
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "id": format!("invitation-{n}"),
            "inviteRedeemUrl": format!("https://login.microsoftonline.com/redeem?ticket={n}"),
            "invitedUserEmailAddress": email,
            "sendInvitationMessage": send,
            "status": "PendingAcceptance",
            "invitedUser": {"id": id},
        })),
    )
        .into_response()
}

async fn update_user(
    State(s): S,
    headers: HeaderMap,
    AxPath(id): AxPath<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = s.refuse(&headers, &["User.ReadWrite.All"]) {
        return r;
    }
    let Ok(Value::Object(changes)) = serde_json::from_slice::<Value>(&body) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid request body.",
        );
    };
    if s.update(&id, changes) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        graph_error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &format!("Resource '{id}' does not exist."),
        )
    }
}

async fn delete_user(State(s): S, headers: HeaderMap, AxPath(id): AxPath<String>) -> Response {
    if let Some(r) = s.refuse(&headers, &["User.ReadWrite.All"]) {
        return r;
    }
    if s.remove(&id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        graph_error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &format!("Resource '{id}' does not exist."),
        )
    }
}
