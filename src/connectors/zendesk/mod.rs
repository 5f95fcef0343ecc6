//! Zendesk Support: the `zendesk` source (agents and admins feeding another system, read only)
//! and the `zendesk` target. One client per account (subdomain, email and token) serves both.

mod bulk;
mod client;
mod errors;
mod lookup;
mod orgs;
mod source;
mod target;
mod users;

pub use bulk::{BATCH, POLL_LIMIT};
pub use client::{DEFAULT_RATE_LIMIT, PAGE_SIZE, client, zendesk_message};
pub use source::ZendeskSource;
pub use target::ZendeskTarget;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::spec::{
    BuildContext, SourceSpec, SourceStarter, TargetSpec, TargetStarter, starter_field as f,
};
use super::{ConnectorError, Source, Target};
use crate::model::checks::{self, Checks, PathSeg};
use crate::model::fields::{field, ident};
use crate::model::{FieldSpec, FieldType, HttpSettings, IdentityNorm, SecretRef};

/// Zendesk Support users (read only: nothing is ever written to the source).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZendeskSourceConfig {
    /// The `example` of `example.zendesk.com`.
    pub subdomain: String,
    /// Email of the agent the API token belongs to.
    pub email: String,
    /// API token: `{ env: NAME }` or `{ file: PATH }`.
    pub api_token: SecretRef,
    /// Roles to read (`end-user`, `agent`, `admin`).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Custom role ids to read.
    #[serde(default)]
    pub custom_role_ids: Vec<u64>,
    /// API root, overridable for tests. Default `https://SUBDOMAIN.zendesk.com`.
    #[serde(default)]
    pub base_url: Option<String>,
}

/// Zendesk Support.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZendeskTargetConfig {
    /// The `example` of `example.zendesk.com`.
    pub subdomain: String,
    /// Email of the admin the API token belongs to.
    pub email: String,
    /// API token: `{ env: NAME }` or `{ file: PATH }`.
    pub api_token: SecretRef,
    /// User field keys usable as `user_fields.<key>`.
    #[serde(default)]
    pub user_fields: Vec<String>,
    /// API root, overridable for tests. Default `https://SUBDOMAIN.zendesk.com`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Requests allowed, as `N/min` or `N/s`. Default: the vendor's documented limit.
    #[serde(default)]
    #[schemars(pattern(r"^\s*[1-9][0-9]*\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$"))]
    pub rate_limit: Option<String>,
    /// Per-request timeout, e.g. `30s`, `2m`, `500ms`.
    #[serde(default)]
    #[schemars(pattern(r"^\s*([0-9]+(\.[0-9]+)?\s*(ms|s|sec|m|min|h|d)\s*)+$"))]
    pub timeout: Option<String>,
}

/// The client of the account (base URL, agent email and token reference), shared by the
/// source and the target that name it.
fn account_client(
    cx: &BuildContext<'_>,
    name: &str,
    base_url: &str,
    email: &str,
    api_token: &SecretRef,
    settings: HttpSettings,
) -> Result<crate::http::HttpClient, ConnectorError> {
    let kind = format!("zendesk {}", email.trim().to_lowercase());
    cx.account_client(&kind, base_url, ("api_token", api_token), |token| {
        client(name, base_url, email, token, settings)
    })
}

/// The account part both entries share.
fn check_account(c: &mut dyn Checks, subdomain: &str, email: &str, base_url: Option<&str>) {
    let ok = !subdomain.is_empty()
        && subdomain
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-');
    if !ok {
        let msg = format!(
            "`subdomain` of {} must be the `example` of example.zendesk.com, not `{subdomain}`",
            c.owner()
        );
        c.error(&[PathSeg::Key("subdomain")], msg, None);
    }
    checks::email(c, "email", email);
    checks::base_url(c, "base_url", base_url);
}

impl SourceSpec for ZendeskSourceConfig {
    fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        vec![("api_token", &self.api_token)]
    }

    fn check(&self, c: &mut dyn Checks) {
        check_account(c, &self.subdomain, &self.email, self.base_url.as_deref());
        for (i, role) in self.roles.iter().enumerate() {
            if !ROLES.contains(&role.as_str()) {
                let hint = crate::util::nearest(role, ROLES.iter().copied())
                    .map(|n| format!("; did you mean `{n}`?"))
                    .unwrap_or_default();
                let msg = format!(
                    "`roles` of {}: `{role}` is not a Zendesk role{hint}",
                    c.owner()
                );
                c.error(
                    &[PathSeg::Key("roles"), PathSeg::Index(i)],
                    msg,
                    Some(
                        "roles are end-user, agent and admin; custom roles go in `custom_role_ids`"
                            .to_string(),
                    ),
                );
            }
        }
    }

    fn build(&self, name: &str, cx: &BuildContext<'_>) -> Result<Box<dyn Source>, ConnectorError> {
        // One client per account: the engine builds targets first, so a target on the same
        // account has made it already, with its `rate_limit` and `timeout`.
        let base_url = client::base_url(&self.subdomain, self.base_url.as_deref());
        let client = account_client(
            cx,
            &format!("zendesk source `{name}`"),
            &base_url,
            &self.email,
            &self.api_token,
            HttpSettings::default(),
        )?;
        Ok(Box::new(ZendeskSource::new(
            client,
            self.roles.clone(),
            self.custom_role_ids.clone(),
        )))
    }

    fn starter() -> SourceStarter {
        SourceStarter {
            name: "zendesk_agents",
            block: r#"  # Zendesk Support users of the chosen roles. Nothing is ever written to the source.
  zendesk_agents:
    kind: zendesk
    subdomain: example                   # example.zendesk.com
    email: admin@example.com             # the agent the API token belongs to
    api_token: { env: SOURCE_ZENDESK_API_TOKEN }
    roles: [agent, admin]
    # custom_role_ids: [360000000000]
"#,
            email: "user.email",
            given: r#"user.name.split(" ")[0]"#,
            family: r#"user.name.split(" ").size() > 1 ? user.name.split(" ")[1] : """#,
            full: "user.name",
            login: "user.email",
            where_: None,
            active: Some("user.active && !user.suspended"),
            pending: true,
        }
    }
}

impl TargetSpec for ZendeskTargetConfig {
    const FIELDS: &'static [FieldSpec] = ZENDESK;
    const CUSTOM_PREFIX: Option<&'static str> = Some("user_fields.");
    const CUSTOM_FIELDS_KEY: &'static str = "user_fields";

    fn custom_fields(&self) -> &[String] {
        &self.user_fields
    }

    fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        vec![("api_token", &self.api_token)]
    }

    fn check(&self, c: &mut dyn Checks) {
        check_account(c, &self.subdomain, &self.email, self.base_url.as_deref());
        checks::http_settings(c, self.rate_limit.as_deref(), self.timeout.as_deref());
        checks::custom_field_list(c, Self::CUSTOM_FIELDS_KEY, &self.user_fields);
    }

    fn build(&self, name: &str, cx: &BuildContext<'_>) -> Result<Box<dyn Target>, ConnectorError> {
        let settings = cx.http_settings(self.rate_limit.as_deref(), self.timeout.as_deref())?;
        let base_url = client::base_url(&self.subdomain, self.base_url.as_deref());
        let client = account_client(
            cx,
            &format!("zendesk target `{name}`"),
            &base_url,
            &self.email,
            &self.api_token,
            settings,
        )?;
        Ok(Box::new(ZendeskTarget::new(
            client,
            self.user_fields.clone(),
        )))
    }

    fn starter(s: &SourceStarter) -> TargetStarter {
        TargetStarter {
            name: "zendesk",
            block: r#"  # Zendesk Support, with an admin's API token.
  zendesk:
    kind: zendesk
    subdomain: example                   # example.zendesk.com
    email: admin@example.com
    api_token: { env: ZENDESK_API_TOKEN }
    # user_fields: [department]          # map them as user_fields.<key>
    # rate_limit: 700/min
"#,
            identity: "[email]",
            fields: vec![
                f("email", s.email),
                f("name", s.full),
                f("role", r#""end-user""#),
            ],
            extra: "      # organization: user.department\n",
            removed: "deactivate",
        }
    }
}

const ROLES: &[&str] = &["end-user", "agent", "admin"];

const ZENDESK: &[FieldSpec] = &[
    // Not create-only for the planner: a changed email (matched through `external_id`) is
    // planned, and the target refuses it with the reason, since Zendesk's API would add a
    // secondary email instead of replacing the primary one.
    ident(
        field(
            "email",
            FieldType::Email,
            "primary email; a change is refused at apply (Zendesk would add a secondary email)",
        ),
        IdentityNorm::Email,
    ),
    ident(
        field("external_id", FieldType::String, "case-insensitive"),
        IdentityNorm::CaseInsensitive,
    ),
    field("name", FieldType::String, "required on create"),
    field("phone", FieldType::String, ""),
    field("role", FieldType::Enum(ROLES), ""),
    field("custom_role_id", FieldType::Integer, "agents only"),
    field(
        "organization",
        FieldType::String,
        "organization name; created when missing; empty clears the default organization",
    ),
];

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::connectors::ClientPool;

    /// A source and a target on one account (subdomain, email, token) share one client.
    #[tokio::test]
    async fn source_and_target_of_one_account_share_a_client() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "t0k3n").unwrap();
        let pool = ClientPool::default();
        let cx = BuildContext::new(dir.path(), &pool);
        let token = SecretRef::File("token".to_string());
        let target = ZendeskTargetConfig {
            subdomain: "acme".into(),
            email: "admin@acme.io".into(),
            api_token: token.clone(),
            user_fields: vec![],
            base_url: None,
            rate_limit: Some("700/min".into()),
            timeout: None,
        };
        let source = ZendeskSourceConfig {
            subdomain: "acme".into(),
            email: "admin@acme.io".into(),
            api_token: token.clone(),
            roles: vec!["agent".into()],
            custom_role_ids: vec![],
            base_url: None,
        };
        target.build("zd", &cx).unwrap();
        source.build("zd_agents", &cx).unwrap();
        assert_eq!(pool.len(), 1);
        let other = ZendeskSourceConfig {
            subdomain: "other".into(),
            ..source
        };
        other.build("other", &cx).unwrap();
        assert_eq!(pool.len(), 2, "another subdomain is another account");
    }
}
