//! The token endpoint call shared by the OAuth providers: a form POST through the same HTTP
//! layer (retries on 5xx and timeouts, throttle waits, redacted logs), whose OAuth error body is
//! parsed into [`AuthError::Refused`].

use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;
use url::Url;

use super::AuthError;
use super::cache::Token;
use crate::http::{Auth, HttpClient, HttpError, Request, RetryPolicy, redact};

/// Lifetime assumed when the endpoint gives no `expires_in` (Google and Entra always do).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// How the token endpoint is called.
#[derive(Debug, Clone, Copy)]
pub struct EndpointOptions {
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries on timeouts, connection errors and 5xx.
    pub retry: RetryPolicy,
}

impl Default for EndpointOptions {
    fn default() -> Self {
        EndpointOptions {
            timeout: crate::http::DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }
}

pub(crate) struct TokenEndpoint {
    http: HttpClient,
    url: Url,
    /// The URL for messages, secrets removed.
    shown: String,
}

impl TokenEndpoint {
    pub(crate) fn new(
        url: &Url,
        options: EndpointOptions,
        reference: &str,
    ) -> Result<Self, AuthError> {
        let shown = redact::url(url);
        let http = HttpClient::builder(format!("token endpoint {shown}"), url.as_str())
            .auth(Auth::None)
            .unlimited()
            .retry_policy(options.retry)
            .timeout_duration(options.timeout)
            .build()
            .map_err(|e| AuthError::Endpoint {
                reference: reference.to_string(),
                endpoint: shown.clone(),
                cause: e.to_string(),
            })?;
        Ok(TokenEndpoint {
            http,
            url: url.clone(),
            shown,
        })
    }

    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    /// POSTs `form` and reads `access_token` and `expires_in` from the answer.
    pub(crate) async fn fetch(
        &self,
        form: &[(&str, &str)],
        reference: &str,
    ) -> Result<Token, AuthError> {
        let endpoint_error = |cause: String| AuthError::Endpoint {
            reference: reference.to_string(),
            endpoint: self.shown.clone(),
            cause,
        };
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        // Asking for a token twice is harmless, so the layer may resend it.
        let req = Request::post(self.url.as_str())
            .form(SecretString::from(body))
            .idempotent(true);
        let resp = match self.http.send(req).await {
            Ok(r) => r,
            Err(HttpError::Status { status, body, .. }) if (400..500).contains(&status) => {
                return Err(match oauth_error(body.as_bytes()) {
                    Some((error, description)) => AuthError::Refused {
                        reference: reference.to_string(),
                        endpoint: self.shown.clone(),
                        status,
                        error,
                        description,
                    },
                    None => endpoint_error(format!(
                        "answered {status} without an OAuth error: {}",
                        redact::truncate(&redact::body(body.as_bytes()), 300)
                    )),
                });
            }
            Err(HttpError::Transport {
                cause, attempts, ..
            }) => {
                return Err(endpoint_error(format!(
                    "{cause} (after {attempts} attempt(s)): check the token URL and the network"
                )));
            }
            Err(e) => return Err(endpoint_error(e.to_string())),
        };
        let v: Value = serde_json::from_slice(&resp.body)
            .map_err(|e| endpoint_error(format!("the answer is not JSON: {e}")))?;
        let access_token = v
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| endpoint_error("the answer has no `access_token`".to_string()))?;
        // `expires_in` is a number, but Azure AD v1 sent it as a string.
        let lifetime = match v.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_LIFETIME);
        Ok(Token {
            access_token: SecretString::from(access_token),
            lifetime,
        })
    }
}

/// `error` and `error_description` of an OAuth error body (RFC 6749 §5.2).
pub(crate) fn oauth_error(body: &[u8]) -> Option<(String, Option<String>)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let error = v.get("error")?.as_str()?.trim().to_string();
    if error.is_empty() {
        return None;
    }
    let description = v
        .get("error_description")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    Some((error, description))
}
