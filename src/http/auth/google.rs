//! Google service accounts: an RS256 JWT signed with the key's private key, exchanged at the
//! key's `token_uri` with the jwt-bearer grant (RFC 7523 §2.1). With `subject`, the token acts
//! as that Workspace user (domain-wide delegation), which the Directory API needs.
//!
//! Without a key ([`GoogleServiceAccount::workload_identity`]), the same JWT is signed by the
//! IAM Credentials `signJwt` call, authorised by a federated token from STS (`google_wif.rs`).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use url::Url;

use super::cache::{Token, TokenCache};
use super::google_wif::{IamSigner, WorkloadIdentityConfig};
use super::jwt::{RsaSigner, unix_now};
use super::token::{EndpointOptions, TokenEndpoint};
use super::{AuthError, AuthProvider, Credential, Issued};

/// The `grant_type` that exchanges a signed JWT for an access token.
pub(crate) const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Lifetime asked in `exp`: Google's maximum.
const JWT_LIFETIME: Duration = Duration::from_secs(3600);

/// Google's OAuth token endpoint: the `aud` of keyless JWTs, which have no key `token_uri`.
pub const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// Who signs the delegation JWT: the key's private key, or IAM on the service account's behalf.
enum Signer {
    Key {
        signer: RsaSigner,
        key_id: Option<String>,
    },
    Iam(IamSigner),
}

/// What a service-account provider needs.
#[derive(Debug)]
pub struct GoogleServiceAccountConfig {
    /// The service-account key file's JSON text.
    pub key_json: SecretString,
    /// Names the key in errors: its path, or ``credentials` ({ env: GOOGLE_KEY })`.
    pub reference: String,
    /// Scopes (`https://www.googleapis.com/auth/admin.directory.user.readonly`).
    pub scopes: Vec<String>,
    /// The user to impersonate (an admin), when the API needs one.
    pub subject: Option<String>,
    /// Overrides the key's `token_uri` (tests, private endpoints); it is also the `aud`.
    pub token_url: Option<Url>,
    pub endpoint: EndpointOptions,
}

/// Bearer tokens for a Google service account, cached and refreshed before expiry.
pub struct GoogleServiceAccount {
    reference: String,
    client_email: String,
    /// The key's numeric `client_id`: what an admin authorises for domain-wide delegation.
    client_id: Option<String>,
    signer: Signer,
    scope: String,
    subject: Option<String>,
    endpoint: TokenEndpoint,
    cache: TokenCache,
}

impl fmt::Debug for GoogleServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "GoogleServiceAccount({}, {}, sub={:?})",
            self.reference, self.client_email, self.subject
        )
    }
}

impl GoogleServiceAccount {
    pub fn new(config: GoogleServiceAccountConfig) -> Result<Self, AuthError> {
        let reference = config.reference;
        let unusable = |reason: String| AuthError::Unusable {
            reference: reference.clone(),
            reason,
        };
        // serde_json's errors give a position, never the text around it.
        let key: Value = serde_json::from_str(config.key_json.expose_secret()).map_err(|e| {
            unusable(format!(
                "is not a service-account key (JSON): {e}; download a JSON key for the service account"
            ))
        })?;
        let field = |name: &str| {
            key.get(name)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        if let Some(kind) = field("type")
            && kind != "service_account"
        {
            return Err(unusable(format!(
                "is a `{kind}` credential, not a service-account key"
            )));
        }
        let missing =
            |name: &str| unusable(format!("has no `{name}`: is it a service-account key?"));
        let client_email = field("client_email").ok_or_else(|| missing("client_email"))?;
        let private_key = field("private_key").ok_or_else(|| missing("private_key"))?;
        let token_url = match config.token_url {
            Some(u) => u,
            None => {
                let text = field("token_uri").ok_or_else(|| missing("token_uri"))?;
                Url::parse(text)
                    .map_err(|e| unusable(format!("its `token_uri` {text:?} is not a URL: {e}")))?
            }
        };
        if !matches!(token_url.scheme(), "https" | "http") {
            return Err(unusable(format!(
                "its token URL {token_url} is not http(s)"
            )));
        }
        let signer = Signer::Key {
            signer: RsaSigner::from_pem(private_key, &reference)?,
            key_id: field("private_key_id").map(str::to_string),
        };
        let endpoint = TokenEndpoint::new(&token_url, config.endpoint, &reference)?;
        Ok(GoogleServiceAccount {
            client_email: client_email.to_string(),
            client_id: field("client_id").map(str::to_string),
            signer,
            scope: join_scopes(&config.scopes),
            subject: config.subject.filter(|s| !s.trim().is_empty()),
            endpoint,
            cache: TokenCache::default(),
            reference,
        })
    }

    /// A keyless service account (workload identity federation): the CI's OIDC token is
    /// exchanged at STS, IAM's `signJwt` signs the delegation JWT as the service account, and
    /// the jwt-bearer grant at `token_url` (default [`GOOGLE_TOKEN_URL`]) turns it into a token.
    pub fn workload_identity(config: WorkloadIdentityConfig) -> Result<Self, AuthError> {
        let reference = config.reference.clone();
        let token_url = match &config.token_url {
            Some(u) => u.clone(),
            None => Url::parse(GOOGLE_TOKEN_URL).map_err(|e| AuthError::Unusable {
                reference: reference.clone(),
                reason: format!("the token URL is not a URL: {e}"),
            })?,
        };
        let endpoint = TokenEndpoint::new(&token_url, config.endpoint, &reference)?;
        let scope = join_scopes(&config.scopes);
        let subject = config.subject.clone().filter(|s| !s.trim().is_empty());
        let client_email = config.service_account.trim().to_string();
        Ok(GoogleServiceAccount {
            signer: Signer::Iam(IamSigner::new(config)?),
            client_email,
            client_id: None,
            scope,
            subject,
            endpoint,
            cache: TokenCache::default(),
            reference,
        })
    }

    /// The key's numeric client id (`client_id`), the one an admin authorises for domain-wide
    /// delegation; `None` for keyless credentials.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// The service account's email (`client_email`).
    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    /// The signed JWT: `iss` the service account, `scope`, `aud` the token URL, `sub` the
    /// impersonated user, valid one hour.
    async fn assertion(&self) -> Result<SecretString, AuthError> {
        let now = unix_now();
        let mut claims = json!({
            "iss": self.client_email,
            "scope": self.scope,
            "aud": self.endpoint.url().as_str(),
            "iat": now,
            "exp": now + JWT_LIFETIME.as_secs(),
        });
        if let Some(sub) = &self.subject {
            claims["sub"] = json!(sub);
        }
        match &self.signer {
            Signer::Key { signer, key_id } => {
                let mut header = json!({"alg": "RS256", "typ": "JWT"});
                if let Some(kid) = key_id {
                    header["kid"] = json!(kid);
                }
                signer.sign(&header, &claims, &self.reference)
            }
            Signer::Iam(iam) => iam.sign(&claims).await,
        }
    }

    async fn fetch(&self) -> Result<Token, AuthError> {
        let assertion = self.assertion().await?;
        let form = [
            ("grant_type", JWT_BEARER_GRANT),
            ("assertion", assertion.expose_secret()),
        ];
        self.endpoint.fetch(&form, &self.reference).await
    }
}

#[async_trait]
impl AuthProvider for GoogleServiceAccount {
    async fn credential(&self) -> Result<Issued, AuthError> {
        let (token, generation) = self.cache.get(|| self.fetch()).await?;
        Ok(Issued {
            credential: Credential::Bearer(token),
            generation,
        })
    }

    async fn rejected(&self, generation: u64) -> bool {
        self.cache.reject(generation);
        true
    }
}

/// Scopes as the JWT's `scope` claim wants them: space-delimited, never commas.
fn join_scopes(scopes: &[String]) -> String {
    scopes
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
