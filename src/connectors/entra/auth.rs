//! The app registration a Graph client signs in as: tenant, client id and exactly one client
//! credential (a secret, a certificate PEM, or a federated token file for keyless CI), checked
//! offline and turned into one shared HTTP client per tenant and app.

use std::sync::Arc;

use url::Url;

use super::graph::{self, GraphClient};
use crate::connectors::ConnectorError;
use crate::connectors::spec::BuildContext;
use crate::http::auth::{
    Certificate, ClientAuth, ClientCredentials, ClientCredentialsConfig, EndpointOptions, TokenFile,
};
use crate::http::{HttpClient, HttpError};
use crate::model::checks::{self, Checks, PathSeg};
use crate::model::{HttpSettings, RateLimit, SecretRef};

/// Graph's root outside sovereign clouds.
pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com";
/// The Microsoft identity platform outside sovereign clouds.
pub const DEFAULT_LOGIN_URL: &str = "https://login.microsoftonline.com";

/// One config entry's sign-in settings, borrowed from the source or target entry.
pub struct Account<'a> {
    pub tenant_id: &'a str,
    pub client_id: &'a str,
    pub client_secret: Option<&'a SecretRef>,
    pub client_assertion_file: Option<&'a str>,
    pub client_certificate: Option<&'a SecretRef>,
    pub graph_url: Option<&'a str>,
    pub login_url: Option<&'a str>,
}

const CREDENTIAL_KEYS: &str = "`client_secret`, `client_assertion_file` or `client_certificate`";

impl<'a> Account<'a> {
    pub fn graph_url(&self) -> &str {
        self.graph_url
            .unwrap_or(DEFAULT_GRAPH_URL)
            .trim()
            .trim_end_matches('/')
    }

    pub fn login_url(&self) -> &str {
        self.login_url
            .unwrap_or(DEFAULT_LOGIN_URL)
            .trim()
            .trim_end_matches('/')
    }

    /// `{login_url}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.login_url(),
            self.tenant_id.trim()
        )
    }

    /// The secret references the entry holds.
    pub fn secrets(&self) -> Vec<(&'static str, &'a SecretRef)> {
        let mut out = Vec::new();
        if let Some(s) = self.client_secret {
            out.push(("client_secret", s));
        }
        if let Some(c) = self.client_certificate {
            out.push(("client_certificate", c));
        }
        out
    }

    /// Offline checks: ids present, URLs well formed, exactly one credential.
    pub fn check(&self, c: &mut dyn Checks) {
        checks::non_empty(c, "tenant_id", self.tenant_id);
        checks::non_empty(c, "client_id", self.client_id);
        checks::base_url(c, "graph_url", self.graph_url);
        checks::base_url(c, "login_url", self.login_url);
        if let Some(f) = self.client_assertion_file {
            checks::non_empty(c, "client_assertion_file", f);
        }
        let given: Vec<&str> = [
            self.client_secret.map(|_| "client_secret"),
            self.client_assertion_file.map(|_| "client_assertion_file"),
            self.client_certificate.map(|_| "client_certificate"),
        ]
        .into_iter()
        .flatten()
        .collect();
        match given.len() {
            0 => {
                let msg = format!("{} has no client credential", c.owner());
                c.error(
                    &[PathSeg::Key("client_id")],
                    msg,
                    Some(format!(
                        "add {CREDENTIAL_KEYS}: `client_secret: {{ env: ENTRA_CLIENT_SECRET }}`, or keyless `client_assertion_file: /var/run/secrets/azure/tokens/azure-identity-token`"
                    )),
                );
            }
            1 => {}
            _ => {
                let msg = format!(
                    "{} has {} client credentials: give exactly one of {CREDENTIAL_KEYS}",
                    c.owner(),
                    given.join(" and ")
                );
                c.error_at_key(&[PathSeg::Key(given[1])], msg, None);
            }
        }
    }

    /// The credential the token endpoint gets, resolved from the entry.
    fn client_auth(&self, cx: &BuildContext<'_>) -> Result<ClientAuth, ConnectorError> {
        match (
            self.client_secret,
            self.client_assertion_file,
            self.client_certificate,
        ) {
            (Some(secret), None, None) => Ok(ClientAuth::Secret {
                secret: cx.secret("client_secret", secret)?,
                reference: format!("`client_secret` ({})", secret.describe()),
            }),
            (None, Some(file), None) => {
                let path = cx.path(file);
                Ok(ClientAuth::AssertionFile(TokenFile::new(
                    path.clone(),
                    format!("`client_assertion_file` ({})", path.display()),
                )))
            }
            (None, None, Some(cert)) => {
                let pem = cx.secret("client_certificate", cert)?;
                let reference = format!("`client_certificate` ({})", cert.describe());
                Certificate::from_pem(&pem, reference)
                    .map(ClientAuth::Certificate)
                    .map_err(|e| ConnectorError::Config(e.to_string()))
            }
            _ => Err(ConnectorError::Config(format!(
                "give exactly one of {CREDENTIAL_KEYS}"
            ))),
        }
    }

    /// The Graph client of this tenant and app, shared by every source and target signed in
    /// as it (one token cache, one rate limiter). `who` names the connector in messages.
    pub fn client(
        &self,
        cx: &BuildContext<'_>,
        who: &str,
        settings: HttpSettings,
    ) -> Result<GraphClient, ConnectorError> {
        let graph_url = self.graph_url().to_string();
        let key = format!(
            "entra {graph_url} {} {} {}",
            self.login_url(),
            self.tenant_id.trim(),
            self.client_id.trim()
        );
        let make = || -> Result<HttpClient, HttpError> {
            let client_auth = self
                .client_auth(cx)
                .map_err(|e| HttpError::Config(e.to_string()))?;
            let token_url = Url::parse(&self.token_url()).map_err(|e| {
                HttpError::Config(format!(
                    "`login_url`/`tenant_id` make no valid token URL ({}): {e}",
                    self.token_url()
                ))
            })?;
            let mut endpoint = EndpointOptions::default();
            if let Some(t) = settings.timeout {
                endpoint.timeout = t;
            }
            let provider = ClientCredentials::new(ClientCredentialsConfig {
                token_url,
                client_id: self.client_id.trim().to_string(),
                client_auth,
                scope: format!("{graph_url}/.default"),
                endpoint,
            })?;
            graph::builder(who, &graph_url, settings)
                .auth_provider(Arc::new(provider))
                .scrubber(cx.scrubber().clone())
                .build()
        };
        let http = cx.clients.get_or_build(key, make)?;
        Ok(GraphClient::new(http, self.client_id.trim().to_string()))
    }
}

/// Graph's per-app limit is far above what a sync sends; this keeps a run polite. 429 and
/// `Retry-After` are honoured by the HTTP layer anyway.
pub(super) const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    count: 600,
    per: std::time::Duration::from_secs(60),
};
