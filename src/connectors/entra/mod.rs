//! Microsoft Entra ID through Microsoft Graph: the `entra_id` source and the `entra_guests`
//! target (B2B invitations). Both share one Graph client per tenant and app (`auth.rs`), one
//! error mapping (`graph.rs`); the source reads in full or through delta queries (`delta.rs`).

mod auth;
mod delta;
mod graph;
mod guests;
mod source;

pub use auth::{Account, DEFAULT_GRAPH_URL, DEFAULT_LOGIN_URL};
pub use delta::{CACHE_FILE, DeltaCache};
pub use graph::{GraphClient, Need, graph_error, graph_message};
pub use guests::{DEFAULT_REDIRECT_URL, EntraGuestsTarget, guest_email};
pub use source::{DEFAULT_SELECT, EntraIdSource, PAGE_SIZE, select_list};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::spec::{
    BuildContext, SourceSpec, SourceStarter, TargetSpec, TargetStarter, starter_field as f,
};
use super::{ConnectorError, Source, Target};
use crate::model::checks::{self, Checks, PathSeg};
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
    /// Client secret of the app registration: `{ env: NAME }` or `{ file: PATH }`. Give exactly
    /// one of `client_secret`, `client_assertion_file` and `client_certificate`.
    #[serde(default)]
    pub client_secret: Option<SecretRef>,
    /// Keyless: a file holding a federated OIDC token (Azure workload identity, a CI runner's
    /// token), sent as the client assertion and re-read when it changes.
    #[serde(default)]
    pub client_assertion_file: Option<String>,
    /// A PEM holding the private key and the certificate registered on the app:
    /// `{ env: NAME }` or `{ file: PATH }`. headcount signs its own client assertions with it.
    #[serde(default)]
    pub client_certificate: Option<SecretRef>,
    /// `$select` fields to read (`id` is always read). Default: `id`, `userPrincipalName`,
    /// `mail`, `givenName`, `surname`, `displayName`, `accountEnabled`, `userType`,
    /// `employeeId`, `department`, `jobTitle`.
    #[serde(default)]
    pub select: Vec<String>,
    /// Groups or Teams (ids, or display names resolved once per run) whose transitive members
    /// get the group's display name in `user.groups`.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Read only the changes since the last run (Graph delta query), kept beside the state.
    #[serde(default)]
    pub delta: bool,
    /// Graph root, for sovereign clouds and tests. Default `https://graph.microsoft.com`.
    #[serde(default, alias = "base_url")]
    pub graph_url: Option<String>,
    /// Token endpoint root. Default `https://login.microsoftonline.com`.
    #[serde(default)]
    pub login_url: Option<String>,
    /// Per-request timeout, e.g. `30s`, `2m`, `500ms`.
    #[serde(default)]
    #[schemars(pattern(r"^\s*([0-9]+(\.[0-9]+)?\s*(ms|s|sec|m|min|h|d)\s*)+$"))]
    pub timeout: Option<String>,
}

/// Microsoft Entra ID B2B guest accounts (Graph invitations).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntraGuestsConfig {
    /// Directory (tenant) id guests are invited into.
    pub tenant_id: String,
    /// Application (client) id of the app registration.
    pub client_id: String,
    /// Client secret of the app registration: `{ env: NAME }` or `{ file: PATH }`. Give exactly
    /// one of `client_secret`, `client_assertion_file` and `client_certificate`.
    #[serde(default)]
    pub client_secret: Option<SecretRef>,
    /// Keyless: a file holding a federated OIDC token, sent as the client assertion and re-read
    /// when it changes.
    #[serde(default)]
    pub client_assertion_file: Option<String>,
    /// A PEM holding the private key and the certificate registered on the app.
    #[serde(default)]
    pub client_certificate: Option<SecretRef>,
    /// Where an invited guest lands after redeeming the invitation. Default
    /// `https://myapplications.microsoft.com`.
    #[serde(default)]
    pub redirect_url: Option<String>,
    /// Graph root, for sovereign clouds and tests. Default `https://graph.microsoft.com`.
    #[serde(default, alias = "base_url")]
    pub graph_url: Option<String>,
    /// Token endpoint root. Default `https://login.microsoftonline.com`.
    #[serde(default)]
    pub login_url: Option<String>,
    /// Requests allowed, as `N/min` or `N/s`. Default: Graph's documented limit.
    #[serde(default)]
    #[schemars(pattern(r"^\s*[1-9][0-9]*\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$"))]
    pub rate_limit: Option<String>,
    /// Per-request timeout, e.g. `30s`, `2m`, `500ms`.
    #[serde(default)]
    #[schemars(pattern(r"^\s*([0-9]+(\.[0-9]+)?\s*(ms|s|sec|m|min|h|d)\s*)+$"))]
    pub timeout: Option<String>,
}

impl EntraIdConfig {
    /// The sign-in settings of this entry.
    pub fn account(&self) -> Account<'_> {
        Account {
            tenant_id: &self.tenant_id,
            client_id: &self.client_id,
            client_secret: self.client_secret.as_ref(),
            client_assertion_file: self.client_assertion_file.as_deref(),
            client_certificate: self.client_certificate.as_ref(),
            graph_url: self.graph_url.as_deref(),
            login_url: self.login_url.as_deref(),
        }
    }
}

impl SourceSpec for EntraIdConfig {
    fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        self.account().secrets()
    }

    fn check(&self, c: &mut dyn Checks) {
        self.account().check(c);
        checks::http_settings(c, None, self.timeout.as_deref());
        for (i, g) in self.groups.iter().enumerate() {
            if g.trim().is_empty() {
                let msg = format!("`groups` of {} holds an empty name", c.owner());
                c.error(&[PathSeg::Key("groups"), PathSeg::Index(i)], msg, None);
            }
        }
    }

    fn build(&self, name: &str, cx: &BuildContext<'_>) -> Result<Box<dyn Source>, ConnectorError> {
        let settings = cx.http_settings(None, self.timeout.as_deref())?;
        let graph = self
            .account()
            .client(cx, &format!("entra_id source `{name}`"), settings)?;
        let delta = if self.delta {
            let dir = cx.source_cache(name);
            if dir.is_none() {
                tracing::debug!("source `{name}`: no cache folder, so every read is a full read");
            }
            dir.map(DeltaCache::new)
        } else {
            None
        };
        Ok(Box::new(EntraIdSource::new(
            graph,
            &self.select,
            self.groups.clone(),
            delta,
            cx.full_read,
        )))
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
    # client_assertion_file: /var/run/secrets/azure/tokens/azure-identity-token   # keyless
    # client_certificate: { file: entra-app.pem }   # private key + certificate
    select: [userPrincipalName, mail, givenName, surname, displayName, accountEnabled, userType]
    # groups: [00000000-0000-0000-0000-000000000000]   # ids or names; adds `user.groups`
    # delta: true                        # read only the changes since the last run
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

impl EntraGuestsConfig {
    /// The sign-in settings of this entry.
    pub fn account(&self) -> Account<'_> {
        Account {
            tenant_id: &self.tenant_id,
            client_id: &self.client_id,
            client_secret: self.client_secret.as_ref(),
            client_assertion_file: self.client_assertion_file.as_deref(),
            client_certificate: self.client_certificate.as_ref(),
            graph_url: self.graph_url.as_deref(),
            login_url: self.login_url.as_deref(),
        }
    }
}

impl TargetSpec for EntraGuestsConfig {
    const FIELDS: &'static [FieldSpec] = ENTRA_GUESTS;

    fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        self.account().secrets()
    }

    fn check(&self, c: &mut dyn Checks) {
        self.account().check(c);
        checks::url(c, "redirect_url", self.redirect_url.as_deref());
        checks::http_settings(c, self.rate_limit.as_deref(), self.timeout.as_deref());
    }

    fn build(&self, name: &str, cx: &BuildContext<'_>) -> Result<Box<dyn Target>, ConnectorError> {
        let settings = cx.http_settings(self.rate_limit.as_deref(), self.timeout.as_deref())?;
        let graph =
            self.account()
                .client(cx, &format!("entra_guests target `{name}`"), settings)?;
        Ok(Box::new(EntraGuestsTarget::new(
            graph,
            self.redirect_url.clone(),
        )))
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
    redirect_url: https://myapplications.microsoft.com
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
