//! The OAuth2 client-credentials grant (RFC 6749 §4.4), as Entra ID uses it: the client
//! authenticates with a secret, or with a client assertion (RFC 7523) that headcount signs with
//! a certificate's key or reads from a federated-token file.

use std::fmt;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::cache::{Token, TokenCache};
use super::token::{EndpointOptions, TokenEndpoint};
use super::{AuthError, AuthProvider, Certificate, Credential, Issued, TokenFile};

/// The `client_assertion_type` of a JWT client assertion.
pub(crate) const JWT_BEARER_ASSERTION: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How the client proves who it is at the token endpoint.
pub enum ClientAuth {
    /// `client_secret`. `reference` names it in errors (``client_secret` ({ env: GRAPH_SECRET })`).
    Secret {
        secret: SecretString,
        reference: String,
    },
    /// A client assertion signed with the certificate's private key.
    Certificate(Certificate),
    /// A client assertion read from a file (a federated OIDC token), re-read when it changes.
    AssertionFile(TokenFile),
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientAuth::Secret { reference, .. } => write!(f, "Secret({reference}, [redacted])"),
            ClientAuth::Certificate(c) => c.fmt(f),
            ClientAuth::AssertionFile(t) => t.fmt(f),
        }
    }
}

impl ClientAuth {
    fn reference(&self) -> &str {
        match self {
            ClientAuth::Secret { reference, .. } => reference,
            ClientAuth::Certificate(c) => c.reference(),
            ClientAuth::AssertionFile(t) => t.reference(),
        }
    }
}

/// What a client-credentials provider needs.
#[derive(Debug)]
pub struct ClientCredentialsConfig {
    /// `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`.
    pub token_url: Url,
    pub client_id: String,
    pub client_auth: ClientAuth,
    /// Space-separated scopes (`https://graph.microsoft.com/.default`); empty for none.
    pub scope: String,
    pub endpoint: EndpointOptions,
}

/// Bearer tokens from the client-credentials grant, cached and refreshed before expiry.
pub struct ClientCredentials {
    client_id: String,
    client_auth: ClientAuth,
    scope: String,
    endpoint: TokenEndpoint,
    cache: TokenCache,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ClientCredentials({} at {}, {:?})",
            self.client_id,
            crate::http::redact::url(self.endpoint.url()),
            self.client_auth
        )
    }
}

impl ClientCredentials {
    pub fn new(config: ClientCredentialsConfig) -> Result<Self, AuthError> {
        let endpoint = TokenEndpoint::new(
            &config.token_url,
            config.endpoint,
            config.client_auth.reference(),
        )?;
        Ok(ClientCredentials {
            client_id: config.client_id,
            client_auth: config.client_auth,
            scope: config.scope,
            endpoint,
            cache: TokenCache::default(),
        })
    }

    async fn fetch(&self) -> Result<Token, AuthError> {
        let reference = self.client_auth.reference();
        let assertion: SecretString;
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "client_credentials"),
            ("client_id", &self.client_id),
        ];
        if !self.scope.trim().is_empty() {
            form.push(("scope", self.scope.trim()));
        }
        match &self.client_auth {
            ClientAuth::Secret { secret, .. } => {
                form.push(("client_secret", secret.expose_secret()));
            }
            ClientAuth::Certificate(cert) => {
                // The audience is the token endpoint itself (Entra's requirement).
                assertion = cert.assertion(&self.client_id, self.endpoint.url().as_str())?;
                form.push(("client_assertion_type", JWT_BEARER_ASSERTION));
                form.push(("client_assertion", assertion.expose_secret()));
            }
            ClientAuth::AssertionFile(file) => {
                // Tokens are fetched about once an hour: always read the current assertion.
                assertion = file.read(true).await?.0;
                form.push(("client_assertion_type", JWT_BEARER_ASSERTION));
                form.push(("client_assertion", assertion.expose_secret()));
            }
        }
        self.endpoint.fetch(&form, reference).await
    }
}

#[async_trait]
impl AuthProvider for ClientCredentials {
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
