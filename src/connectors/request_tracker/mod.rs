//! Request Tracker 5: the `request_tracker` target (REST 2.0). `api.rs` holds the REST
//! calls (client, paged collections, searches), `user.rs` the user record ↔ fields mapping,
//! `target.rs` the target itself.

mod api;
mod target;
mod user;

pub use api::{DEFAULT_RATE_LIMIT, PER_PAGE, client, rest_root};
pub use target::{NO_DELETE, RequestTrackerTarget};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::spec::{BuildContext, SourceStarter, TargetSpec, TargetStarter, starter_field as f};
use super::{ConnectorError, Target};
use crate::model::checks::{self, Checks};
use crate::model::fields::{field, ident};
use crate::model::{FieldSpec, FieldType, IdentityNorm, SecretRef};

/// Request Tracker 5 (REST 2.0).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestTrackerConfig {
    /// RT root, e.g. `https://rt.example.com` (REST 2.0 lives under `/REST/2.0`).
    pub base_url: String,
    /// Auth token of an RT user allowed to admin users: `{ env: NAME }` or `{ file: PATH }`.
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

impl TargetSpec for RequestTrackerConfig {
    const FIELDS: &'static [FieldSpec] = REQUEST_TRACKER;
    const NO_DELETE: Option<&'static str> = Some(NO_DELETE);

    fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        vec![("token", &self.token)]
    }

    fn check(&self, c: &mut dyn Checks) {
        checks::base_url(c, "base_url", Some(&self.base_url));
        checks::http_settings(c, self.rate_limit.as_deref(), self.timeout.as_deref());
    }

    fn build(&self, name: &str, cx: &BuildContext<'_>) -> Result<Box<dyn Target>, ConnectorError> {
        let settings = cx.http_settings(self.rate_limit.as_deref(), self.timeout.as_deref())?;
        let base_url = self.base_url.as_str();
        let client = cx.account_client(
            "request_tracker",
            base_url,
            ("token", &self.token),
            |token| {
                Ok(client(
                    &format!("request_tracker target `{name}`"),
                    base_url,
                    token,
                    settings,
                ))
            },
        )?;
        Ok(Box::new(RequestTrackerTarget::new(client)))
    }

    fn starter(s: &SourceStarter) -> TargetStarter {
        TargetStarter {
            name: "rt",
            block: r#"  # Request Tracker 5 (REST 2.0), with the auth token of a user who may admin users.
  rt:
    kind: request_tracker
    base_url: https://rt.example.com
    token: { env: RT_TOKEN }
"#,
            identity: "[EmailAddress, Name]",
            fields: vec![
                f("Name", s.login),
                f("EmailAddress", s.email),
                f("RealName", s.full),
                f("Privileged", "true"),
            ],
            extra: "",
            removed: "deactivate",
        }
    }
}

const REQUEST_TRACKER: &[FieldSpec] = &[
    ident(
        field("Name", FieldType::String, "login name"),
        IdentityNorm::CaseInsensitive,
    ),
    ident(
        field("EmailAddress", FieldType::Email, ""),
        IdentityNorm::Email,
    ),
    field("RealName", FieldType::String, ""),
    field("Organization", FieldType::String, ""),
    field("WorkPhone", FieldType::String, ""),
    field("MobilePhone", FieldType::String, ""),
    field("HomePhone", FieldType::String, ""),
    field("Privileged", FieldType::Bool, "privileged (staff) user"),
    field("Comments", FieldType::String, "multi-line text"),
];
