//! Microsoft Entra ID through Microsoft Graph: the `entra_id` source and the `entra_guests`
//! target (B2B invitations). Both will share one Graph client per tenant and app.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::spec::{
    BuildContext, SourceSpec, SourceStarter, TargetSpec, TargetStarter, starter_field as f,
};
use super::{ConnectorError, Source, Target};
use crate::model::checks::{self, Checks};
use crate::model::fields::{create_only, field, ident};
use crate::model::{FieldSpec, FieldType, IdentityNorm, SecretRef};

/// Microsoft Entra ID users via Microsoft Graph.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntraIdConfig {
    /// Directory (tenant) id.
    pub tenant_id: String,
    /// Application (client) id of the app registration.
    pub client_id: String,
    /// Client secret of the app registration: `{ env: NAME }` or `{ file: PATH }`.
    pub client_secret: SecretRef,
    /// `$select` fields to read.
    #[serde(default)]
    pub select: Vec<String>,
    /// Group or Team ids whose transitive members get the group's display name in `groups`.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Use delta queries between runs.
    #[serde(default)]
    pub delta: bool,
    /// Graph root, overridable for tests. Default `https://graph.microsoft.com`.
    #[serde(default)]
    pub base_url: Option<String>,
}

/// Microsoft Entra ID B2B guest accounts (Graph invitations).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntraGuestsConfig {
    /// Directory (tenant) id guests are invited into.
    pub tenant_id: String,
    /// Application (client) id of the app registration.
    pub client_id: String,
    /// Client secret of the app registration: `{ env: NAME }` or `{ file: PATH }`.
    pub client_secret: SecretRef,
    /// Where an invited guest lands after redeeming the invitation.
    #[serde(default)]
    pub redirect_url: Option<String>,
    /// Graph root, overridable for tests. Default `https://graph.microsoft.com`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Requests allowed, as `N/min` or `N/s`. Default: Graph's documented limit.
    #[serde(default)]
    #[schemars(pattern(r"^\s*[1-9][0-9]*\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$"))]
    pub rate_limit: Option<String>,
    /// Per-request timeout, e.g. `30s`, `2m`, `500ms`.
    #[serde(default)]
    #[schemars(pattern(r"^\s*([0-9]+(\.[0-9]+)?\s*(ms|s|sec|m|min|h|d)\s*)+$"))]
    pub timeout: Option<String>,
}

impl SourceSpec for EntraIdConfig {
    fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        vec![("client_secret", &self.client_secret)]
    }

    fn check(&self, c: &mut dyn Checks) {
        checks::non_empty(c, "tenant_id", &self.tenant_id);
        checks::non_empty(c, "client_id", &self.client_id);
        checks::base_url(c, "base_url", self.base_url.as_deref());
    }

    fn build(
        &self,
        _name: &str,
        _cx: &BuildContext<'_>,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        Err(ConnectorError::Unsupported {
            kind: "entra_id".to_string(),
        })
    }

    fn starter() -> SourceStarter {
        SourceStarter {
            name: "entra",
            block: r#"  # Microsoft Entra ID users via Microsoft Graph (application permission User.Read.All).
  entra:
    kind: entra_id
    tenant_id: 00000000-0000-0000-0000-000000000000
    client_id: 00000000-0000-0000-0000-000000000000
    client_secret: { env: ENTRA_CLIENT_SECRET }
    select: [userPrincipalName, mail, givenName, surname, displayName, accountEnabled, userType]
    # groups: [00000000-0000-0000-0000-000000000000]   # adds `user.groups` (display names)
    # delta: true                        # delta queries between runs
"#,
            email: "user.mail",
            given: "user.givenName",
            family: "user.surname",
            full: "user.displayName",
            login: "user.userPrincipalName",
            where_: Some(r#"user.userType == "Member""#),
            active: Some("user.accountEnabled"),
            pending: false,
        }
    }
}

impl TargetSpec for EntraGuestsConfig {
    const FIELDS: &'static [FieldSpec] = ENTRA_GUESTS;

    fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        vec![("client_secret", &self.client_secret)]
    }

    fn check(&self, c: &mut dyn Checks) {
        checks::non_empty(c, "tenant_id", &self.tenant_id);
        checks::non_empty(c, "client_id", &self.client_id);
        checks::url(c, "redirect_url", self.redirect_url.as_deref());
        checks::base_url(c, "base_url", self.base_url.as_deref());
        checks::http_settings(c, self.rate_limit.as_deref(), self.timeout.as_deref());
    }

    fn build(
        &self,
        _name: &str,
        _cx: &BuildContext<'_>,
    ) -> Result<Box<dyn Target>, ConnectorError> {
        Err(ConnectorError::Unsupported {
            kind: "entra_guests".to_string(),
        })
    }

    fn starter(s: &SourceStarter) -> TargetStarter {
        TargetStarter {
            name: "guests",
            block: r#"  # Microsoft Entra ID B2B guests, invited through Graph (permission User.Invite.All).
  guests:
    kind: entra_guests
    tenant_id: 00000000-0000-0000-0000-000000000000
    client_id: 00000000-0000-0000-0000-000000000000
    client_secret: { env: ENTRA_GUESTS_CLIENT_SECRET }
    redirect_url: https://myapps.microsoft.com
"#,
            identity: "[email]",
            fields: vec![f("email", s.email), f("display_name", s.full)],
            extra: "",
            removed: "delete",
        }
    }
}

const ENTRA_GUESTS: &[FieldSpec] = &[
    create_only(ident(
        field("email", FieldType::Email, "invited email address"),
        IdentityNorm::Email,
    )),
    field("display_name", FieldType::String, ""),
];
