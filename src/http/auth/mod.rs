//! How a request gets its credential. The client asks its [`AuthProvider`] before every
//! attempt, so a provider can fetch a token, reuse a cached one, or refresh it shortly before it
//! expires; a `401` from the API tells the provider which token was refused, and the client
//! retries once with a fresh one.
//!
//! Providers:
//! * [`Auth`](super::Auth): a static bearer token, basic credentials or query key (no refresh).
//! * [`ClientCredentials`]: the OAuth2 client-credentials grant (Entra ID), authenticated by a
//!   secret, a certificate ([`Certificate`]) or a client-assertion file ([`TokenFile`]).
//! * [`GoogleServiceAccount`]: a signed JWT exchanged with the jwt-bearer grant; signed with the
//!   key, or keyless through STS and IAM `signJwt` ([`WorkloadIdentityConfig`]).
//! * [`FileBearer`]: a bearer token read from a file and re-read when the file changes.
//!
//! Every failure is an [`AuthError`] naming the credential's *reference* (the label the caller
//! passes, such as ``client_secret` ({ env: GRAPH_SECRET })`` or a key file's path), never its
//! value. The HTTP layer knows nothing of the config: providers take typed values.
//!
//! A connector builds its provider once per account and shares it (an `Arc`) between the
//! source and the target of that account:
//!
//! ```no_run
//! # fn demo(secret: secrecy::SecretString, key_json: secrecy::SecretString,
//! #         pem: secrecy::SecretString) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use headcount::http::auth::*;
//! use headcount::http::{Auth, HttpClient};
//! use url::Url;
//!
//! // Static, as before: `.auth(Auth::Bearer(token))`.
//! let scim = HttpClient::builder("scim target \"people\"", "https://scim.example/v2")
//!     .auth(Auth::Bearer(secret.clone()))
//!     .build()?;
//!
//! // Entra ID with a client secret (or `ClientAuth::Certificate(Certificate::from_pem(..)?)`,
//! // or `ClientAuth::AssertionFile(TokenFile::new(path, reference))`).
//! let entra = ClientCredentials::new(ClientCredentialsConfig {
//!     token_url: Url::parse("https://login.microsoftonline.com/TENANT/oauth2/v2.0/token")?,
//!     client_id: "APP-ID".into(),
//!     client_auth: ClientAuth::Secret {
//!         secret,
//!         reference: "`client_secret` ({ env: GRAPH_SECRET })".into(),
//!     },
//!     scope: "https://graph.microsoft.com/.default".into(),
//!     endpoint: EndpointOptions::default(),
//! })?;
//! let graph = HttpClient::builder("entra_id source", "https://graph.microsoft.com/v1.0")
//!     .auth_provider(Arc::new(entra))
//!     .build()?;
//!
//! // Google Workspace with a service-account key and domain-wide delegation.
//! let google = GoogleServiceAccount::new(GoogleServiceAccountConfig {
//!     key_json,
//!     reference: "/etc/headcount/sa.json".into(),
//!     scopes: vec!["https://www.googleapis.com/auth/admin.directory.user.readonly".into()],
//!     subject: Some("admin@example.org".into()),
//!     token_url: None,
//!     endpoint: EndpointOptions::default(),
//! })?;
//! let directory = HttpClient::builder("google_workspace source", "https://admin.googleapis.com")
//!     .auth_provider(Arc::new(google))
//!     .build()?;
//!
//! // A federated CI token used as the bearer token itself.
//! let ci = FileBearer::new(TokenFile::new("/var/run/secrets/token", "`token_file`"));
//! let api = HttpClient::builder("scim target", "https://scim.example/v2")
//!     .auth_provider(Arc::new(ci))
//!     .build()?;
//! # let _ = (scim, graph, directory, api, pem); Ok(()) }
//! ```

mod cache;
mod client_credentials;
mod file;
mod google;
mod google_wif;
mod jwt;
mod token;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;

use async_trait::async_trait;
use secrecy::SecretString;

pub use client_credentials::{ClientAuth, ClientCredentials, ClientCredentialsConfig};
pub use file::{FileBearer, TokenFile};
pub use google::{GOOGLE_TOKEN_URL, GoogleServiceAccount, GoogleServiceAccountConfig};
pub use google_wif::{DEFAULT_IAM_URL, DEFAULT_STS_URL, WorkloadIdentityConfig};
pub use jwt::Certificate;
pub use token::EndpointOptions;

/// What a provider puts on one request. Secrets stay wrapped until the request is built.
#[derive(Clone, Default)]
pub enum Credential {
    #[default]
    None,
    /// `Authorization: Bearer TOKEN`.
    Bearer(SecretString),
    /// `Authorization: Basic`.
    Basic {
        user: String,
        password: SecretString,
    },
    /// A query parameter on the request.
    Query { param: String, value: SecretString },
    /// `Authorization: SCHEME TOKEN` (RT's `token` scheme).
    Scheme { scheme: String, token: SecretString },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::None => f.write_str("None"),
            Credential::Bearer(_) => f.write_str("Bearer([redacted])"),
            Credential::Basic { user, .. } => write!(f, "Basic({user}, [redacted])"),
            Credential::Query { param, .. } => write!(f, "Query({param}=[redacted])"),
            Credential::Scheme { scheme, .. } => write!(f, "Scheme({scheme} [redacted])"),
        }
    }
}

/// A credential with the generation of the token it carries, so that a `401` invalidates that
/// token only, not a fresher one another request already fetched.
#[derive(Debug, Clone, Default)]
pub struct Issued {
    pub credential: Credential,
    /// Grows each time the provider gets a new token; `0` for static credentials.
    pub generation: u64,
}

/// Supplies the credential of each request. Implementations share one refresh among
/// concurrent callers and never put a secret in their `Debug` output.
#[async_trait]
pub trait AuthProvider: fmt::Debug + Send + Sync {
    /// The credential for the next request: cached, or fetched when missing or about to expire.
    async fn credential(&self) -> Result<Issued, AuthError>;

    /// The API answered `401` to a request sent with `generation`: forget that token. Returns
    /// true when a new credential may differ, so that one retry is worth it.
    async fn rejected(&self, generation: u64) -> bool {
        let _ = generation;
        false
    }
}

/// Why no credential could be had. Each message names the credential reference and what to
/// do; none holds a secret value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// The credential itself cannot be used (not a service-account key, not PEM, no RSA key).
    #[error("{reference}: {reason}")]
    Unusable { reference: String, reason: String },
    /// A credential file could not be read.
    #[error("{reference}: cannot read {}: {cause}", .path.display())]
    File {
        reference: String,
        path: PathBuf,
        cause: String,
    },
    /// The token endpoint refused the credential with an OAuth error (`invalid_client`,
    /// `unauthorized_client`, `invalid_grant`...).
    #[error(
        "{reference} was refused by the token endpoint {endpoint} ({status}): {error}{}",
        .description.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
    )]
    Refused {
        reference: String,
        /// The token URL, secrets removed.
        endpoint: String,
        status: u16,
        /// The OAuth `error` code.
        error: String,
        /// The OAuth `error_description`.
        description: Option<String>,
    },
    /// The token endpoint could not be reached, failed, or answered something else than a
    /// token.
    #[error("{reference}: no token from {endpoint}: {cause}")]
    Endpoint {
        reference: String,
        endpoint: String,
        cause: String,
    },
}

impl AuthError {
    /// The credential reference the error is about.
    pub fn reference(&self) -> &str {
        match self {
            AuthError::Unusable { reference, .. }
            | AuthError::File { reference, .. }
            | AuthError::Refused { reference, .. }
            | AuthError::Endpoint { reference, .. } => reference,
        }
    }

    /// The error with every registered secret replaced (a token endpoint may echo what it
    /// was sent).
    pub fn scrubbed(self, s: &crate::model::Scrubber) -> AuthError {
        let f = |t: String| s.scrub(&t);
        match self {
            AuthError::Unusable { reference, reason } => AuthError::Unusable {
                reference: f(reference),
                reason: f(reason),
            },
            AuthError::File {
                reference,
                path,
                cause,
            } => AuthError::File {
                reference: f(reference),
                path,
                cause: f(cause),
            },
            AuthError::Refused {
                reference,
                endpoint,
                status,
                error,
                description,
            } => AuthError::Refused {
                reference: f(reference),
                endpoint: f(endpoint),
                status,
                error: f(error),
                description: description.map(f),
            },
            AuthError::Endpoint {
                reference,
                endpoint,
                cause,
            } => AuthError::Endpoint {
                reference: f(reference),
                endpoint: f(endpoint),
                cause: f(cause),
            },
        }
    }

    /// The OAuth error code and description of a refusal, for admin-actionable messages.
    pub fn oauth_error(&self) -> Option<(&str, Option<&str>)> {
        match self {
            AuthError::Refused {
                error, description, ..
            } => Some((error, description.as_deref())),
            _ => None,
        }
    }
}

/// The static credentials of today's connectors are a provider that never refreshes.
#[async_trait]
impl AuthProvider for super::Auth {
    async fn credential(&self) -> Result<Issued, AuthError> {
        use super::Auth;
        let credential = match self {
            Auth::None => Credential::None,
            Auth::Bearer(t) => Credential::Bearer(t.clone()),
            Auth::Basic { user, password } => Credential::Basic {
                user: user.clone(),
                password: password.clone(),
            },
            Auth::Query { param, value } => Credential::Query {
                param: param.clone(),
                value: value.clone(),
            },
            Auth::Scheme { scheme, token } => Credential::Scheme {
                scheme: scheme.clone(),
                token: token.clone(),
            },
        };
        Ok(Issued {
            credential,
            generation: 0,
        })
    }
}
