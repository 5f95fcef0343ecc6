//! The Graph client shared by the `entra_id` source and the `entra_guests` target: requests
//! under `{graph_url}/v1.0`, every `@odata.nextLink` followed, and Graph's and the token
//! endpoint's refusals turned into errors an admin can act on (which application permission is
//! missing, which credential was refused and where to fix it).

use serde_json::Value;

use crate::connectors::ConnectorError;
use crate::http::auth::AuthError;
use crate::http::{HttpClient, HttpClientBuilder, HttpError, Page, Request, paging};
use crate::model::HttpSettings;

/// Attempts of a request refused with `409 Directory_ConcurrencyViolation`.
const CONCURRENCY_ATTEMPTS: u32 = 3;
/// The first wait after one (doubled for the second).
const CONCURRENCY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// What a request needed, so a 403 names the application permission to grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Reading users (`/users`, `/users/delta`).
    ReadUsers,
    /// Reading groups and their transitive members.
    ReadGroups,
    /// Inviting, updating and deleting guests.
    WriteGuests,
}

impl Need {
    fn permissions(self) -> &'static str {
        match self {
            Need::ReadUsers => "the application permission `User.Read.All`",
            Need::ReadGroups => {
                "the application permission `GroupMember.Read.All` (or `Group.Read.All`)"
            }
            Need::WriteGuests => {
                "the application permissions `User.Invite.All` and `User.ReadWrite.All`"
            }
        }
    }
}

/// The HTTP client builder of a Graph account (auth is added by the caller).
pub(super) fn builder(who: &str, graph_url: &str, settings: HttpSettings) -> HttpClientBuilder {
    HttpClient::builder(who, format!("{}/v1.0", graph_url.trim_end_matches('/')))
        .message_hook(std::sync::Arc::new(|b: &[u8]| graph_message(b)))
        .rate_limit(
            settings
                .rate_limit
                .unwrap_or(super::auth::DEFAULT_RATE_LIMIT),
        )
        .timeout(settings.timeout)
}

/// `code: message (request-id ...)` of Graph's error body
/// `{"error":{"code","message","innerError":{"request-id",...}}}`.
pub fn graph_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let err = v.get("error")?;
    let code = err.get("code").and_then(Value::as_str).unwrap_or_default();
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if code.is_empty() && message.is_empty() {
        return crate::http::vendor_message(body);
    }
    let mut out = match (code.is_empty(), message.is_empty()) {
        (false, false) => format!("{code}: {message}"),
        (false, true) => code.to_string(),
        _ => message.to_string(),
    };
    let inner = err.get("innerError").or_else(|| err.get("innererror"));
    if let Some(id) = inner
        .and_then(|i| i.get("request-id"))
        .and_then(Value::as_str)
    {
        out.push_str(&format!(" (request-id {id})"));
    }
    Some(out)
}

/// Graph's error `code` in an error body.
pub(super) fn graph_code(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    v.pointer("/error/code")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// A Graph client for one tenant and app.
#[derive(Clone)]
pub struct GraphClient {
    http: HttpClient,
    client_id: String,
}

impl GraphClient {
    pub fn new(http: HttpClient, client_id: String) -> GraphClient {
        GraphClient { http, client_id }
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Every page from `first` on: the items of each `value`, and the `@odata.deltaLink` of the
    /// last page when there is one. A page that is not `{"value": [...]}` is an error naming
    /// the request.
    pub async fn pages(
        &self,
        first: Request,
        need: Need,
    ) -> Result<(Vec<Value>, Option<String>), ConnectorError> {
        self.pages_raw(first).await.map_err(|e| self.error(e, need))
    }

    /// [`GraphClient::pages`] with the HTTP error as it came (delta reads look at its status).
    pub async fn pages_raw(
        &self,
        first: Request,
    ) -> Result<(Vec<Value>, Option<String>), HttpError> {
        let mut delta_link = None;
        let items = self
            .http
            .collect_pages(first, |req, resp| {
                let body: Value = resp.json()?;
                let Some(items) = body.get("value").and_then(Value::as_array) else {
                    return Err(HttpError::Decode {
                        what: resp.what.clone(),
                        cause: "expected a Graph collection `{\"value\": [...]}`".to_string(),
                    });
                };
                if let Some(bad) = items.iter().find(|i| !i.is_object()) {
                    return Err(HttpError::Decode {
                        what: resp.what.clone(),
                        cause: format!("expected objects in `value`, found {bad}"),
                    });
                }
                let next = body.get("@odata.nextLink").and_then(Value::as_str);
                if next.is_none() {
                    delta_link = body
                        .get("@odata.deltaLink")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                }
                Ok(Page {
                    items: items.clone(),
                    next: paging::next_by_link(req, next),
                })
            })
            .await?;
        Ok((items, delta_link))
    }

    /// One page only (`probe`).
    pub async fn first_page(&self, req: Request, need: Need) -> Result<Vec<Value>, ConnectorError> {
        let resp = self.http.send(req).await.map_err(|e| self.error(e, need))?;
        let body: Value = resp.json().map_err(|e| self.error(e, need))?;
        match body.get("value").and_then(Value::as_array) {
            Some(items) if items.iter().all(Value::is_object) => Ok(items.clone()),
            _ => Err(ConnectorError::BadData(format!(
                "{}: the answer is not the expected JSON: expected a Graph collection `{{\"value\": [...]}}`",
                resp.what
            ))),
        }
    }

    /// Sends `req`, mapping a failure to an actionable error. An idempotent request refused
    /// with `409 Directory_ConcurrencyViolation` (another write to the object in flight) is
    /// sent again after a short wait, as Graph documents it retryable.
    pub async fn send(
        &self,
        req: Request,
        need: Need,
    ) -> Result<crate::http::Response, ConnectorError> {
        let mut attempt = 1;
        loop {
            match self.http.send(req.clone()).await {
                Err(HttpError::Status {
                    status: 409,
                    ref body,
                    ..
                }) if req.idempotent
                    && attempt < CONCURRENCY_ATTEMPTS
                    && graph_code(body).as_deref() == Some("Directory_ConcurrencyViolation") =>
                {
                    tracing::info!(
                        "{} {}: Directory_ConcurrencyViolation, sending it again in {}s",
                        req.method,
                        req.path,
                        CONCURRENCY_WAIT.as_secs()
                    );
                    tokio::time::sleep(CONCURRENCY_WAIT * attempt).await;
                    attempt += 1;
                }
                other => return other.map_err(|e| self.error(e, need)),
            }
        }
    }

    /// A failed request as an error an admin can act on.
    pub fn error(&self, e: HttpError, need: Need) -> ConnectorError {
        graph_error(e, need, &self.client_id)
    }
}

/// A failure as an error that says what to do: a Graph 403 names the permission to grant, a
/// token endpoint's AADSTS code says which credential or setting is wrong.
pub fn graph_error(e: HttpError, need: Need, client_id: &str) -> ConnectorError {
    match &e {
        HttpError::Status {
            status: 403, body, ..
        } => {
            let code = graph_code(body).unwrap_or_default();
            let what = if code == "Authorization_RequestDenied" {
                "the app registration lacks a permission"
            } else {
                "Graph refused the request"
            };
            ConnectorError::Permission {
                message: format!(
                    "{e}. {what}: grant the app {client_id} {} in Entra admin center > App registrations > API permissions, then \"Grant admin consent\"",
                    need.permissions()
                ),
            }
        }
        HttpError::Status {
            status: 401, body, ..
        } => ConnectorError::Auth {
            message: format!(
                "{e}. Graph refused the access token{}: check `tenant_id` and `client_id`, and that the app's permissions were granted admin consent",
                graph_code(body)
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            ),
        },
        HttpError::Auth(auth) => ConnectorError::Auth {
            message: token_refusal(auth, client_id),
        },
        _ => e.into(),
    }
}

/// The token endpoint's refusal with what to do, by its `AADSTS` code.
fn token_refusal(auth: &AuthError, client_id: &str) -> String {
    let text = auth.to_string();
    let Some((_, description)) = auth.oauth_error() else {
        return text;
    };
    let description = description.unwrap_or_default();
    let has = |code: &str| {
        description
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w == code)
    };
    let hint = if has("AADSTS7000215") {
        format!(
            "the client secret is wrong (AADSTS7000215: give the secret's value, not its id): make a new one in Entra admin center > App registrations > {client_id} > Certificates & secrets, and point `client_secret` at it"
        )
    } else if has("AADSTS7000222") {
        format!(
            "the client secret has expired (AADSTS7000222): make a new one in App registrations > {client_id} > Certificates & secrets"
        )
    } else if has("AADSTS700027") {
        format!(
            "the client assertion was refused (AADSTS700027): the certificate is not registered on the app {client_id}, or the key does not match it; upload the certificate in App registrations > {client_id} > Certificates & secrets"
        )
    } else if has("AADSTS700213") || has("AADSTS70021") || has("AADSTS700211") {
        format!(
            "the federated token was refused: no federated identity credential of the app {client_id} matches its issuer and subject; add one in App registrations > {client_id} > Certificates & secrets > Federated credentials"
        )
    } else if has("AADSTS700024") {
        "the client assertion is expired or not yet valid (AADSTS700024): check the clock, or that the token file is being refreshed".to_string()
    } else if has("AADSTS90002") {
        "the tenant was not found (AADSTS90002): check `tenant_id` (the directory id or a verified domain) and `login_url`".to_string()
    } else if has("AADSTS700016") {
        format!(
            "the application {client_id} was not found in the tenant (AADSTS700016): check `client_id` and `tenant_id`, and that the app was consented in this tenant"
        )
    } else if has("AADSTS70011") {
        "the scope was refused (AADSTS70011): check `graph_url`".to_string()
    } else {
        return text;
    };
    format!("{text}. {hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_error_bodies_read_as_code_message_and_request_id() {
        let body = br#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","innerError":{"date":"2026-01-01T00:00:00","request-id":"r-1","client-request-id":"c-1"}}}"#;
        assert_eq!(
            graph_message(body).as_deref(),
            Some(
                "Authorization_RequestDenied: Insufficient privileges to complete the operation. (request-id r-1)"
            )
        );
        assert_eq!(graph_message(b"<html>502</html>"), None);
        assert_eq!(graph_message(br#"{"value":[]}"#), None);
    }

    fn refused(description: &str) -> HttpError {
        HttpError::Auth(AuthError::Refused {
            reference: "`client_secret` (env X)".into(),
            endpoint: "https://login/t/oauth2/v2.0/token".into(),
            status: 401,
            error: "invalid_client".into(),
            description: Some(description.into()),
        })
    }

    #[test]
    fn aadsts_codes_say_what_to_fix() {
        for (code, words) in [
            (
                "AADSTS7000215: Invalid client secret provided.",
                "Certificates & secrets",
            ),
            (
                "AADSTS700027: Client assertion failed signature validation.",
                "not registered",
            ),
            ("AADSTS90002: Tenant 'x' not found.", "check `tenant_id`"),
            (
                "AADSTS700213: No matching federated identity record found",
                "Federated credentials",
            ),
        ] {
            let e = graph_error(refused(code), Need::ReadUsers, "APP");
            assert!(matches!(e, ConnectorError::Auth { .. }), "{e:?}");
            assert!(e.to_string().contains(words), "{code}: {e}");
        }
    }

    #[test]
    fn a_403_names_the_permission_and_admin_consent() {
        let e = HttpError::Status {
            what: "GET /v1.0/users".into(),
            status: 403,
            message: Some("Authorization_RequestDenied: Insufficient privileges".into()),
            body: r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges"}}"#.into(),
            attempts: 1,
        };
        for (need, perm) in [
            (Need::ReadUsers, "User.Read.All"),
            (Need::ReadGroups, "GroupMember.Read.All"),
            (Need::WriteGuests, "User.Invite.All"),
        ] {
            let msg = graph_error(e.clone(), need, "APP").to_string();
            assert!(msg.contains(perm), "{msg}");
            assert!(msg.contains("Grant admin consent"), "{msg}");
            assert!(msg.contains("GET /v1.0/users"), "{msg}");
        }
    }
}
