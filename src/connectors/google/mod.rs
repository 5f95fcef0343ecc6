//! Google Workspace: the `google_workspace` source (Admin SDK Directory API).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::spec::{BuildContext, SourceSpec, SourceStarter};
use super::{ConnectorError, Source};
use crate::model::SecretRef;
use crate::model::checks::{self, Checks, PathSeg};

/// Google Workspace users via the Admin SDK Directory API.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GoogleWorkspaceConfig {
    /// Customer id (`my_customer` for the key's own account). Either this or `domain`.
    #[serde(default)]
    pub customer: Option<String>,
    /// Domain to list instead of a customer.
    #[serde(default)]
    pub domain: Option<String>,
    /// Optional Directory API query, e.g. `isSuspended=false orgUnitPath='/Support'`.
    #[serde(default)]
    pub query: Option<String>,
    /// Service account with domain-wide delegation.
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
}

/// Google service-account credentials with domain-wide delegation.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GoogleCredentials {
    /// The service account's JSON key.
    pub service_account_key: SecretRef,
    /// The admin to impersonate.
    pub subject: String,
}

impl SourceSpec for GoogleWorkspaceConfig {
    fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        vec![(
            "credentials.service_account_key",
            &self.credentials.service_account_key,
        )]
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
        if !self.credentials.subject.contains('@') {
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
    }

    fn build(
        &self,
        _name: &str,
        _cx: &BuildContext<'_>,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        Err(ConnectorError::Unsupported {
            kind: "google_workspace".to_string(),
        })
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
