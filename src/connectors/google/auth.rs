//! The scopes a read needs and the credential that asks for them: a service-account key, or
//! keyless workload identity federation. Only read-only scopes, and only those the config uses.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::GoogleWorkspaceConfig;
use super::errors::{google_message, google_throttled};
use crate::connectors::spec::BuildContext;
use crate::http::HttpClient;
use crate::http::auth::{
    EndpointOptions, GoogleServiceAccount, GoogleServiceAccountConfig, WorkloadIdentityConfig,
};
use crate::model::{ConnectorError, HttpSettings, RateLimit};

/// Google's default Directory API quota: 2,400 queries per minute per user per project.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    count: 2400,
    per: Duration::from_secs(60),
};

const SCOPE_PREFIX: &str = "https://www.googleapis.com/auth/";

/// The read-only scopes of a read: users always, group members with `groups:`, user schemas
/// with a custom field mask.
pub fn scopes(groups: bool, custom_schemas: bool) -> Vec<String> {
    let mut s = vec![format!("{SCOPE_PREFIX}admin.directory.user.readonly")];
    if groups {
        s.push(format!(
            "{SCOPE_PREFIX}admin.directory.group.member.readonly"
        ));
    }
    if custom_schemas {
        s.push(format!("{SCOPE_PREFIX}admin.directory.userschema.readonly"));
    }
    s
}

/// Who the source reads as, for messages that tell an admin what to grant.
#[derive(Debug, Clone, Default)]
pub struct Account {
    /// The key's numeric client id (`None` when keyless: the service account's unique id).
    pub client_id: Option<String>,
    pub client_email: String,
    /// The admin impersonated.
    pub subject: String,
    pub scopes: Vec<String>,
    /// The Cloud project of the service account, from the key (`project_id`) or its email.
    pub project: Option<String>,
}

fn config_error(e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Config(e.to_string())
}

fn parse_url(key: &str, text: &str) -> Result<Url, ConnectorError> {
    Url::parse(text.trim())
        .map_err(|e| ConnectorError::Config(format!("`{key}` {text:?} is not a URL: {e}")))
}

/// The project of `name@project.iam.gserviceaccount.com`.
fn project_of(email: &str) -> Option<String> {
    let domain = email.split_once('@')?.1;
    domain
        .strip_suffix(".iam.gserviceaccount.com")
        .map(str::to_string)
}

/// The source's HTTP client (auth, throttle and message hooks, rate limit) and its account.
pub(super) fn client(
    cfg: &GoogleWorkspaceConfig,
    name: &str,
    cx: &BuildContext<'_>,
    settings: HttpSettings,
) -> Result<(HttpClient, Account), ConnectorError> {
    let scopes = scopes(
        !cfg.groups.is_empty(),
        cfg.listing().custom_field_mask.is_some(),
    );
    let subject = cfg.credentials.subject.trim().to_string();
    let token_url = cfg
        .token_url
        .as_deref()
        .map(|u| parse_url("token_url", u))
        .transpose()?;
    let endpoint = EndpointOptions {
        timeout: settings.timeout.unwrap_or(crate::http::DEFAULT_TIMEOUT),
        ..EndpointOptions::default()
    };
    let (provider, account) = match (
        &cfg.credentials.service_account_key,
        &cfg.credentials.workload_identity,
    ) {
        (Some(key), _) => {
            let key_json = cx.secret("credentials.service_account_key", key)?;
            let project = {
                use secrecy::ExposeSecret;
                serde_json::from_str::<serde_json::Value>(key_json.expose_secret())
                    .ok()
                    .and_then(|v| {
                        v.get("project_id")
                            .and_then(|p| p.as_str())
                            .map(str::to_string)
                    })
            };
            let sa = GoogleServiceAccount::new(GoogleServiceAccountConfig {
                key_json,
                reference: format!("`credentials.service_account_key` ({})", key.describe()),
                scopes: scopes.clone(),
                subject: Some(subject.clone()),
                token_url,
                endpoint,
            })
            .map_err(config_error)?;
            let account = Account {
                client_id: sa.client_id().map(str::to_string),
                client_email: sa.client_email().to_string(),
                project: project.or_else(|| project_of(sa.client_email())),
                subject: subject.clone(),
                scopes: scopes.clone(),
            };
            (sa, account)
        }
        (None, Some(w)) => {
            let sts_url = w
                .sts_url
                .as_deref()
                .map(|u| parse_url("sts_url", u))
                .transpose()?;
            let iam_url = w
                .iam_url
                .as_deref()
                .map(|u| parse_url("iam_url", u))
                .transpose()?;
            let sa = GoogleServiceAccount::workload_identity(WorkloadIdentityConfig {
                audience: w.audience.clone(),
                service_account: w.service_account.clone(),
                subject_token_file: cx.path(&w.subject_token_file),
                reference: format!(
                    "`credentials.workload_identity` ({})",
                    w.service_account.trim()
                ),
                scopes: scopes.clone(),
                subject: Some(subject.clone()),
                sts_url,
                iam_url,
                token_url,
                endpoint,
                scrubber: cx.scrubber().clone(),
            })
            .map_err(config_error)?;
            let account = Account {
                client_id: None,
                client_email: sa.client_email().to_string(),
                project: project_of(sa.client_email()),
                subject: subject.clone(),
                scopes: scopes.clone(),
            };
            (sa, account)
        }
        (None, None) => {
            return Err(ConnectorError::Config(
                "`credentials` needs `service_account_key` or `workload_identity`".to_string(),
            ));
        }
    };
    let base_url = cfg.base_url.as_deref().unwrap_or(super::DEFAULT_BASE_URL);
    let client = HttpClient::builder(format!("google_workspace source `{name}`"), base_url)
        .auth_provider(Arc::new(provider))
        .throttle_hook(Arc::new(|status, _headers, body: &[u8]| {
            google_throttled(status.as_u16(), body)
        }))
        .message_hook(Arc::new(|body: &[u8]| google_message(body)))
        .rate_limit(settings.rate_limit.unwrap_or(DEFAULT_RATE_LIMIT))
        .timeout(settings.timeout)
        .scrubber(cx.scrubber().clone())
        .build()?;
    Ok((client, account))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_read_only_scopes_the_config_needs() {
        assert_eq!(
            scopes(false, false),
            ["https://www.googleapis.com/auth/admin.directory.user.readonly"]
        );
        assert_eq!(scopes(true, true).len(), 3);
        assert!(scopes(true, false)[1].ends_with("admin.directory.group.member.readonly"));
        assert!(scopes(false, true)[1].ends_with("admin.directory.userschema.readonly"));
        assert_eq!(
            project_of("sync@acme-prod.iam.gserviceaccount.com").as_deref(),
            Some("acme-prod")
        );
    }
}
