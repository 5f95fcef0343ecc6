//! Google Workspace: the `google_workspace` source (Admin SDK Directory API).
//!
//! * `source.rs`: `users.list`, every page, one record per user (suspended and archived kept).
//! * `groups.rs`: `members.list` of the configured groups, nested groups flattened, each group
//!   listed once per read, into `user.groups`.
//! * `errors.rs`: Google's error bodies and token refusals as messages an admin can act on.
//! * `auth.rs`: the scopes and the credential (service-account key, or keyless through
//!   workload identity federation).

mod auth;
mod errors;
mod groups;
mod source;

pub use auth::{Account, DEFAULT_RATE_LIMIT, scopes};
pub use errors::{DWD_CONSOLE_PATH, google_message, google_reason, google_throttled};
pub use source::{GoogleSource, Listing, MAX_RESULTS, MEMBERS_MAX_RESULTS};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::spec::{BuildContext, SourceSpec, SourceStarter};
use super::{ConnectorError, Source};
use crate::model::SecretRef;
use crate::model::checks::{self, Checks, PathSeg};

/// The Directory API's host.
pub const DEFAULT_BASE_URL: &str = "https://admin.googleapis.com";

/// Google Workspace users via the Admin SDK Directory API.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GoogleWorkspaceConfig {
    /// Customer id (`my_customer` for the key's own account). Either this or `domain`;
    /// neither means `my_customer`.
    #[serde(default)]
    pub customer: Option<String>,
    /// Domain to list instead of a customer.
    #[serde(default)]
    pub domain: Option<String>,
    /// Optional Directory API query, e.g. `isSuspended=false orgUnitPath='/Support'`.
    #[serde(default)]
    pub query: Option<String>,
    /// Service account with domain-wide delegation (a key, or keyless workload identity).
    pub credentials: GoogleCredentials,
    /// Group emails whose (nested) membership is added to each record as `groups`.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Custom schema names to fetch (`customFieldMask`).
    #[serde(default)]
    pub custom_field_mask: Option<String>,
    /// API root, overridable for tests. Default `https://admin.googleapis.com`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Token endpoint. Default: the key's `token_uri` (keyless: `https://oauth2.googleapis.com/token`).
    #[serde(default)]
    pub token_url: Option<String>,
    /// Requests allowed, as `N/min` or `N/s`. Default 2400/min (Google's per-user quota).
    #[serde(default)]
    #[schemars(pattern(r"^\s*[1-9][0-9]*\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$"))]
    pub rate_limit: Option<String>,
    /// Per-request timeout, e.g. `30s`, `2m`, `500ms`.
    #[serde(default)]
    #[schemars(pattern(r"^\s*([0-9]+(\.[0-9]+)?\s*(ms|s|sec|m|min|h|d)\s*)+$"))]
    pub timeout: Option<String>,
}

/// Google service-account credentials with domain-wide delegation: `service_account_key`, or
/// `workload_identity` (no key at all).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GoogleCredentials {
    /// The service account's JSON key.
    #[serde(default)]
    pub service_account_key: Option<SecretRef>,
    /// Keyless: a CI's OIDC token exchanged through workload identity federation.
    #[serde(default)]
    pub workload_identity: Option<WorkloadIdentity>,
    /// The admin to impersonate.
    pub subject: String,
}

/// Workload identity federation: STS exchange of an OIDC token file, then IAM `signJwt`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkloadIdentity {
    /// The provider: `//iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER`.
    pub audience: String,
    /// The service account to act as (`name@project.iam.gserviceaccount.com`); it needs
    /// domain-wide delegation, and the pool's principal `roles/iam.serviceAccountTokenCreator` on it.
    pub service_account: String,
    /// The OIDC token file (google-github-actions/auth writes one), relative to the config.
    pub subject_token_file: String,
    /// STS endpoint, overridable for tests. Default `https://sts.googleapis.com/v1/token`.
    #[serde(default)]
    pub sts_url: Option<String>,
    /// IAM Credentials root, overridable for tests. Default `https://iamcredentials.googleapis.com`.
    #[serde(default)]
    pub iam_url: Option<String>,
}

impl SourceSpec for GoogleWorkspaceConfig {
    fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        self.credentials
            .service_account_key
            .iter()
            .map(|k| ("credentials.service_account_key", k))
            .collect()
    }

    fn check(&self, c: &mut dyn Checks) {
        if self.customer.is_some() && self.domain.is_some() {
            let msg = format!("{} sets both `customer` and `domain`", c.owner());
            c.error_at_key(
                &[PathSeg::Key("domain")],
                msg,
                Some("keep one: `customer: my_customer` lists the whole account, `domain` one domain".to_string()),
            );
        }
        let creds = &self.credentials;
        match (&creds.service_account_key, &creds.workload_identity) {
            (Some(_), Some(_)) => {
                let msg = format!(
                    "`credentials` of {} sets both `service_account_key` and `workload_identity`",
                    c.owner()
                );
                c.error_at_key(
                    &[
                        PathSeg::Key("credentials"),
                        PathSeg::Key("workload_identity"),
                    ],
                    msg,
                    Some("keep one: a JSON key, or keyless workload identity federation".into()),
                );
            }
            (None, None) => {
                let msg = format!(
                    "`credentials` of {} needs `service_account_key` or `workload_identity`",
                    c.owner()
                );
                c.error(
                    &[PathSeg::Key("credentials")],
                    msg,
                    Some("`service_account_key: { file: secrets/sa.json }`, or `workload_identity: {audience, service_account, subject_token_file}`".into()),
                );
            }
            _ => {}
        }
        if let Some(w) = &creds.workload_identity {
            let at = |k| {
                [
                    PathSeg::Key("credentials"),
                    PathSeg::Key("workload_identity"),
                    PathSeg::Key(k),
                ]
            };
            if !w.service_account.contains('@') {
                let msg = format!(
                    "`workload_identity.service_account` of {} must be the service account's email",
                    c.owner()
                );
                c.error(&at("service_account"), msg, None);
            }
            if !w.audience.trim().starts_with("//iam.googleapis.com/") {
                let msg = format!(
                    "`workload_identity.audience` of {} must name the provider as //iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER",
                    c.owner()
                );
                c.error(&at("audience"), msg, None);
            }
            if w.subject_token_file.trim().is_empty() {
                let msg = format!(
                    "`workload_identity.subject_token_file` of {} is empty: name the CI's OIDC token file",
                    c.owner()
                );
                c.error(&at("subject_token_file"), msg, None);
            }
            for (key, value) in [("sts_url", &w.sts_url), ("iam_url", &w.iam_url)] {
                let Some(text) = value else { continue };
                let ok = url::Url::parse(text.trim()).is_ok_and(|u| {
                    matches!(u.scheme(), "https" | "http") && u.username().is_empty()
                });
                if !ok {
                    let msg = format!(
                        "`workload_identity.{key}` of {} must be an http(s) URL without credentials",
                        c.owner()
                    );
                    c.error(&at(key), msg, None);
                }
            }
        }
        if !creds.subject.contains('@') {
            let msg = format!(
                "`credentials.subject` of {} must be the email of the admin to impersonate",
                c.owner()
            );
            c.error(
                &[PathSeg::Key("credentials"), PathSeg::Key("subject")],
                msg,
                None,
            );
        }
        checks::base_url(c, "base_url", self.base_url.as_deref());
        checks::url(c, "token_url", self.token_url.as_deref());
        checks::http_settings(c, self.rate_limit.as_deref(), self.timeout.as_deref());
    }

    fn build(&self, name: &str, cx: &BuildContext<'_>) -> Result<Box<dyn Source>, ConnectorError> {
        let settings = cx.http_settings(self.rate_limit.as_deref(), self.timeout.as_deref())?;
        let (client, account) = auth::client(self, name, cx, settings)?;
        Ok(Box::new(GoogleSource::new(client, self.listing(), account)))
    }

    fn starter() -> SourceStarter {
        SourceStarter {
            name: "workspace",
            block: r#"  # Google Workspace users (Admin SDK Directory API) through a service account with
  # domain-wide delegation for https://www.googleapis.com/auth/admin.directory.user.readonly.
  workspace:
    kind: google_workspace
    customer: my_customer                # or `domain: example.com`
    # query: "orgUnitPath='/Support'"    # optional Directory API query
    credentials:
      service_account_key: { env: GOOGLE_SA_KEY }   # the JSON key; or { file: secrets/sa.json }
      subject: admin@example.com                    # an admin to impersonate
      # Keyless in CI instead of the key (workload identity federation):
      # workload_identity:
      #   audience: //iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER
      #   service_account: headcount@PROJECT.iam.gserviceaccount.com
      #   subject_token_file: /path/to/oidc-token   # e.g. google-github-actions/auth's token file
    # groups: [support@example.com]      # adds `user.groups` (nested membership)
"#,
            email: "user.primaryEmail",
            given: "user.name.givenName",
            family: "user.name.familyName",
            full: "user.name.fullName",
            login: "user.primaryEmail",
            where_: Some("!user.archived"),
            active: Some("!user.suspended"),
            pending: false,
        }
    }
}

impl GoogleWorkspaceConfig {
    /// What `users.list` and `members.list` are asked.
    pub fn listing(&self) -> Listing {
        Listing {
            customer: self.customer.clone(),
            domain: self.domain.clone(),
            query: self.query.clone().filter(|q| !q.trim().is_empty()),
            custom_field_mask: self
                .custom_field_mask
                .clone()
                .filter(|m| !m.trim().is_empty()),
            groups: self.groups.clone(),
        }
    }
}
