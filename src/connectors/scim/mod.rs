//! SCIM 2.0: the `scim` source and target (any SCIM service provider: Happeo, Okta apps, ...).
//! A source and a target on the same account (base URL and token) share one HTTP client, so
//! they share its rate limit.

mod users;

pub use users::{
    CORE_USER, DEFAULT_RATE_LIMIT, ENTERPRISE_USER, PAGE_SIZE, ScimSource, ScimTarget, client,
    filter_literal, to_live,
};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::spec::{
    BuildContext, SourceSpec, SourceStarter, TargetSpec, TargetStarter, starter_field as f,
};
use super::{ConnectorError, Source, Target};
use crate::model::checks::{self, Checks};
use crate::model::fields::{field, ident};
use crate::model::{FieldSpec, FieldType, HttpSettings, IdentityNorm, SecretRef};

/// Users of any SCIM 2.0 service provider (read only).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScimSourceConfig {
    /// SCIM base URL (the one `/Users` hangs off).
    pub base_url: String,
    /// Bearer token: `{ env: NAME }` or `{ file: PATH }`.
    pub token: SecretRef,
    /// SCIM filter, e.g. `active eq true`.
    #[serde(default)]
    pub filter: Option<String>,
}

/// Any SCIM 2.0 service provider.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScimTargetConfig {
    /// SCIM base URL (the one `/Users` hangs off).
    pub base_url: String,
    /// Bearer token: `{ env: NAME }` or `{ file: PATH }`.
    pub token: SecretRef,
    /// Requests allowed, as `N/min` or `N/s`.
    #[serde(default)]
    #[schemars(pattern(r"^\s*[1-9][0-9]*\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$"))]
    pub rate_limit: Option<String>,
    /// Per-request timeout, e.g. `30s`, `2m`, `500ms`.
    #[serde(default)]
    #[schemars(pattern(r"^\s*([0-9]+(\.[0-9]+)?\s*(ms|s|sec|m|min|h|d)\s*)+$"))]
    pub timeout: Option<String>,
}

impl SourceSpec for ScimSourceConfig {
    fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        vec![("token", &self.token)]
    }

    fn check(&self, c: &mut dyn Checks) {
        checks::base_url(c, "base_url", Some(&self.base_url));
    }

    fn build(&self, name: &str, cx: &BuildContext<'_>) -> Result<Box<dyn Source>, ConnectorError> {
        // One client per account: the engine builds targets first, so a target on the same
        // account has made it already, with its `rate_limit` and `timeout`.
        let client =
            cx.account_client("scim", &self.base_url, ("token", &self.token), |token| {
                client(
                    &format!("scim source `{name}`"),
                    &self.base_url,
                    token,
                    HttpSettings::default(),
                )
            })?;
        Ok(Box::new(ScimSource::new(client, self.filter.clone())))
    }

    fn starter() -> SourceStarter {
        SourceStarter {
            name: "idp",
            block: r#"  # Users of a SCIM 2.0 service provider (read only).
  idp:
    kind: scim
    base_url: https://idp.example.com/scim/v2
    token: { env: SOURCE_SCIM_TOKEN }
    # filter: active eq true
"#,
            email: "user.emails[0].value",
            given: "user.name.givenName",
            family: "user.name.familyName",
            full: "user.displayName",
            login: "user.userName",
            where_: None,
            active: Some("user.active"),
            pending: false,
        }
    }
}

impl TargetSpec for ScimTargetConfig {
    const FIELDS: &'static [FieldSpec] = FIELDS;

    fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        vec![("token", &self.token)]
    }

    fn check(&self, c: &mut dyn Checks) {
        checks::base_url(c, "base_url", Some(&self.base_url));
        checks::http_settings(c, self.rate_limit.as_deref(), self.timeout.as_deref());
    }

    fn build(&self, name: &str, cx: &BuildContext<'_>) -> Result<Box<dyn Target>, ConnectorError> {
        let settings = cx.http_settings(self.rate_limit.as_deref(), self.timeout.as_deref())?;
        let client =
            cx.account_client("scim", &self.base_url, ("token", &self.token), |token| {
                client(
                    &format!("scim target `{name}`"),
                    &self.base_url,
                    token,
                    settings,
                )
            })?;
        Ok(Box::new(ScimTarget::new(client)))
    }

    fn starter(s: &SourceStarter) -> TargetStarter {
        TargetStarter {
            name: "app",
            block: r#"  # Any SCIM 2.0 service provider, with a bearer token.
  app:
    kind: scim
    base_url: https://app.example.com/scim/v2
    token: { env: SCIM_TOKEN }
    # rate_limit: 10/s
"#,
            identity: "[userName]",
            fields: vec![
                f("userName", s.login),
                f(r#"emails[type eq "work"].value"#, s.email),
                f("name.givenName", s.given),
                f("name.familyName", s.family),
                f("displayName", s.full),
            ],
            extra: "",
            removed: "deactivate",
        }
    }
}

const FIELDS: &[FieldSpec] = &[
    ident(
        field("userName", FieldType::String, "unique; case-insensitive"),
        IdentityNorm::CaseInsensitive,
    ),
    ident(
        field(
            "externalId",
            FieldType::String,
            "set by the provisioning client",
        ),
        IdentityNorm::Exact,
    ),
    field("displayName", FieldType::String, ""),
    field("name.givenName", FieldType::String, ""),
    field("name.familyName", FieldType::String, ""),
    field("name.formatted", FieldType::String, ""),
    field("title", FieldType::String, ""),
    ident(
        field(
            "emails[type eq \"work\"].value",
            FieldType::Email,
            "work email",
        ),
        IdentityNorm::Email,
    ),
    field(
        "phoneNumbers[type eq \"work\"].value",
        FieldType::String,
        "work phone",
    ),
    field(
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
        FieldType::String,
        "enterprise extension",
    ),
    field(
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        FieldType::String,
        "enterprise extension",
    ),
];

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::connectors::ClientPool;

    fn target(token: SecretRef, rate: Option<&str>) -> ScimTargetConfig {
        ScimTargetConfig {
            base_url: "http://127.0.0.1:9/v2".to_string(),
            token,
            rate_limit: rate.map(str::to_string),
            timeout: Some("5s".to_string()),
        }
    }

    #[test]
    fn scim_connectors_need_a_readable_token() {
        let pool = ClientPool::default();
        let cx = BuildContext::new(std::path::Path::new("."), &pool);
        let unset = SecretRef::Env("HEADCOUNT_TEST_UNSET_TOKEN".to_string());
        let err = target(unset.clone(), None)
            .build("scim", &cx)
            .err()
            .unwrap();
        assert!(matches!(err, ConnectorError::Config(_)), "{err}");
        assert!(
            err.to_string().contains("`token`: environment variable"),
            "{err}"
        );
        let source = ScimSourceConfig {
            base_url: "http://localhost".to_string(),
            token: unset,
            filter: None,
        };
        let err = source.build("scim", &cx).err().unwrap();
        assert!(matches!(err, ConnectorError::Config(_)), "{err}");
    }

    #[test]
    fn scim_targets_build_from_a_token_file_and_check_the_rate_limit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "t\n").unwrap();
        let pool = ClientPool::default();
        let cx = BuildContext::new(dir.path(), &pool);
        let tok = SecretRef::File("tok".to_string());
        assert!(target(tok.clone(), Some("10/s")).build("scim", &cx).is_ok());
        let err = target(tok, Some("ten/s")).build("scim", &cx).err().unwrap();
        assert!(err.to_string().contains("rate limit `ten/s`"), "{err}");
    }

    #[test]
    fn a_source_and_a_target_on_one_account_share_one_client() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "t\n").unwrap();
        std::fs::write(dir.path().join("other"), "u\n").unwrap();
        let pool = ClientPool::default();
        let cx = BuildContext::new(dir.path(), &pool);
        let tok = SecretRef::File("tok".to_string());
        target(tok.clone(), Some("10/s")).build("app", &cx).unwrap();
        let source = ScimSourceConfig {
            base_url: "http://127.0.0.1:9/v2".to_string(),
            token: tok,
            filter: None,
        };
        source.build("app", &cx).unwrap();
        assert_eq!(pool.len(), 1, "same base URL and token: one client");
        let other = ScimSourceConfig {
            token: SecretRef::File("other".to_string()),
            ..source
        };
        other.build("app2", &cx).unwrap();
        assert_eq!(pool.len(), 2, "another token is another account");
    }
}
