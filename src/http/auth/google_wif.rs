//! Keyless Google credentials (workload identity federation), for CI runners with an OIDC
//! token: the token file is exchanged at STS for a federated token (RFC 8693), which
//! authorises IAM Credentials' `signJwt` to sign the domain-wide-delegation JWT as the service
//! account. No long-lived key exists anywhere.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use url::Url;

use super::cache::{Token, TokenCache};
use super::file::TokenFile;
use super::token::{EndpointOptions, TokenEndpoint};
use super::{AuthError, AuthProvider, Credential, Issued};
use crate::http::{HttpClient, HttpError, Request, redact};

/// Google's Security Token Service exchange endpoint.
pub const DEFAULT_STS_URL: &str = "https://sts.googleapis.com/v1/token";
/// The IAM Service Account Credentials API root.
pub const DEFAULT_IAM_URL: &str = "https://iamcredentials.googleapis.com";

const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// The scope of the federated token: what `signJwt` accepts.
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// What a keyless Google service account needs.
#[derive(Debug, Clone)]
pub struct WorkloadIdentityConfig {
    /// The workload identity provider, as STS wants it:
    /// `//iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER`.
    pub audience: String,
    /// The service account whose identity is borrowed (`name@project.iam.gserviceaccount.com`).
    pub service_account: String,
    /// The OIDC token of the CI run, re-read for every exchange (runners rotate it).
    pub subject_token_file: PathBuf,
    /// Names the credential in errors.
    pub reference: String,
    /// Scopes of the final token.
    pub scopes: Vec<String>,
    /// The Workspace admin to impersonate (the JWT's `sub`).
    pub subject: Option<String>,
    /// Overrides [`DEFAULT_STS_URL`].
    pub sts_url: Option<Url>,
    /// Overrides [`DEFAULT_IAM_URL`].
    pub iam_url: Option<Url>,
    /// Overrides Google's token URL (also the JWT's `aud`).
    pub token_url: Option<Url>,
    pub endpoint: EndpointOptions,
    /// The run's scrubber: the federated token the IAM calls carry is registered in it, so a
    /// vendor echoing it back never puts it in an error or a log.
    pub scrubber: crate::model::Scrubber,
}

fn unusable(reference: &str, reason: String) -> AuthError {
    AuthError::Unusable {
        reference: reference.to_string(),
        reason,
    }
}

fn parse_url(text: &str, what: &str, reference: &str) -> Result<Url, AuthError> {
    Url::parse(text).map_err(|e| unusable(reference, format!("{what} {text:?} is not a URL: {e}")))
}

/// The federated token: the OIDC token file exchanged at STS, cached until shortly before it
/// expires. It authenticates the `signJwt` calls.
struct StsExchange {
    file: TokenFile,
    audience: String,
    endpoint: TokenEndpoint,
    reference: String,
    cache: TokenCache,
}

impl std::fmt::Debug for StsExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StsExchange({}, {})", self.reference, self.audience)
    }
}

impl StsExchange {
    async fn exchange(&self) -> Result<Token, AuthError> {
        // Re-read every time: the runner's token is short-lived and rotated.
        let (subject_token, _) = self.file.read(true).await?;
        let form = [
            ("grant_type", TOKEN_EXCHANGE_GRANT),
            ("audience", self.audience.as_str()),
            ("scope", CLOUD_PLATFORM),
            ("requested_token_type", ACCESS_TOKEN_TYPE),
            ("subject_token_type", JWT_TOKEN_TYPE),
            ("subject_token", subject_token.expose_secret()),
        ];
        self.endpoint
            .fetch(&form, &self.reference)
            .await
            .map_err(|e| match e {
                // Told apart from the final token endpoint's refusals, which concern delegation.
                AuthError::Refused {
                    reference,
                    endpoint,
                    status,
                    error,
                    description,
                } => AuthError::Endpoint {
                    reference,
                    endpoint,
                    cause: format!(
                        "STS refused the OIDC token of {} ({status} {error}{}): check that \
                         `audience` names the workload identity provider, that the provider's \
                         attribute condition admits this CI run, and that the token file is fresh",
                        self.file.path().display(),
                        description.map(|d| format!(": {d}")).unwrap_or_default()
                    ),
                },
                other => other,
            })
    }
}

#[async_trait]
impl AuthProvider for StsExchange {
    async fn credential(&self) -> Result<Issued, AuthError> {
        let (token, generation) = self.cache.get(|| self.exchange()).await?;
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

/// Signs JWT claims as the service account through IAM Credentials `signJwt`.
pub(crate) struct IamSigner {
    http: HttpClient,
    /// `v1/projects/-/serviceAccounts/{sa}:signJwt`.
    path: String,
    service_account: String,
    reference: String,
}

impl IamSigner {
    pub(crate) fn new(config: WorkloadIdentityConfig) -> Result<Self, AuthError> {
        let reference = config.reference;
        let sa = config.service_account.trim().to_string();
        if !sa.contains('@') {
            return Err(unusable(
                &reference,
                format!(
                    "`service_account` {sa:?} is not a service account email (name@project.iam.gserviceaccount.com)"
                ),
            ));
        }
        let sts_url = match config.sts_url {
            Some(u) => u,
            None => parse_url(DEFAULT_STS_URL, "the STS URL", &reference)?,
        };
        let iam_url = match config.iam_url {
            Some(u) => u,
            None => parse_url(DEFAULT_IAM_URL, "the IAM URL", &reference)?,
        };
        let sts = StsExchange {
            file: TokenFile::new(
                config.subject_token_file,
                format!("{reference} `subject_token_file`"),
            ),
            audience: config.audience.trim().to_string(),
            endpoint: TokenEndpoint::new(&sts_url, config.endpoint, &reference)?,
            reference: reference.clone(),
            cache: TokenCache::default(),
        };
        let http = HttpClient::builder(
            format!("IAM Credentials {}", redact::url(&iam_url)),
            iam_url.as_str(),
        )
        .auth_provider(Arc::new(sts))
        .scrubber(config.scrubber.clone())
        .unlimited()
        .retry_policy(config.endpoint.retry)
        .timeout_duration(config.endpoint.timeout)
        .build()
        .map_err(|e| AuthError::Endpoint {
            reference: reference.clone(),
            endpoint: redact::url(&iam_url),
            cause: e.to_string(),
        })?;
        Ok(IamSigner {
            http,
            path: format!("v1/projects/-/serviceAccounts/{sa}:signJwt"),
            service_account: sa,
            reference,
        })
    }

    /// `POST .../serviceAccounts/{sa}:signJwt` with `{"payload": "<claims JSON>"}`: the answer's
    /// `signedJwt` is the assertion.
    pub(crate) async fn sign(&self, claims: &Value) -> Result<SecretString, AuthError> {
        let req = Request::post(self.path.as_str())
            .json(json!({ "payload": claims.to_string() }))
            // Signing twice is harmless.
            .idempotent(true);
        let endpoint = || format!("{}{}", self.http.base_url(), self.path);
        let resp = self.http.send(req).await.map_err(|e| match e {
            HttpError::Auth(a) => a,
            HttpError::Status {
                status, message, ..
            } if status == 403 || status == 404 => AuthError::Endpoint {
                reference: self.reference.clone(),
                endpoint: endpoint(),
                cause: format!(
                    "IAM refused to sign as {} ({status}{}): grant the workload identity \
                         principal `roles/iam.serviceAccountTokenCreator` on that service account, \
                         and check that the IAM Service Account Credentials API is enabled",
                    self.service_account,
                    message.map(|m| format!(": {m}")).unwrap_or_default()
                ),
            },
            other => AuthError::Endpoint {
                reference: self.reference.clone(),
                endpoint: endpoint(),
                cause: other.to_string(),
            },
        })?;
        let v: Value = serde_json::from_slice(&resp.body).map_err(|e| AuthError::Endpoint {
            reference: self.reference.clone(),
            endpoint: endpoint(),
            cause: format!("the signJwt answer is not JSON: {e}"),
        })?;
        let jwt = v
            .get("signedJwt")
            .and_then(Value::as_str)
            .filter(|j| j.split('.').count() == 3)
            .ok_or_else(|| AuthError::Endpoint {
                reference: self.reference.clone(),
                endpoint: endpoint(),
                cause: "the signJwt answer has no `signedJwt`".to_string(),
            })?;
        Ok(SecretString::from(jwt))
    }
}
