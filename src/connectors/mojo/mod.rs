//! Mojo Helpdesk: the `mojo_helpdesk` target (REST API v2) and the `csv_export` target, which
//! writes Mojo's CSV import files. Both share Mojo's field table.

mod export;
mod helpdesk;

pub use export::{CsvExportTarget, MAX_ROWS_LIMIT};
pub use helpdesk::{
    DEFAULT_RATE_LIMIT, INDIVIDUALS, MojoHelpdeskTarget, PER_PAGE, ROLES, client, mojo_message,
};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::spec::{BuildContext, SourceStarter, TargetSpec, TargetStarter, starter_field as f};
use super::{ConnectorError, Target};
use crate::model::checks::{self, Checks, PathSeg};
use crate::model::fields::{create_only, field, ident};
use crate::model::{FieldSpec, FieldType, IdentityNorm, SecretRef, Writable};

/// Mojo's one multi-tenant API host.
const DEFAULT_BASE_URL: &str = "https://app.mojohelpdesk.com";

/// Mojo Helpdesk (REST API v2).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MojoHelpdeskConfig {
    /// API root, overridable for tests. Default `https://app.mojohelpdesk.com`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Access key of an admin user: `{ env: NAME }` or `{ file: PATH }`.
    pub access_key: SecretRef,
    /// Custom field keys that exist in the helpdesk (usable as `custom_field_<key>`).
    #[serde(default)]
    pub custom_fields: Vec<String>,
    /// Requests allowed, as `N/min` or `N/s`. Default: the vendor's documented limit.
    #[serde(default)]
    #[schemars(pattern(r"^\s*[1-9][0-9]*\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$"))]
    pub rate_limit: Option<String>,
    /// Per-request timeout, e.g. `30s`, `2m`, `500ms`.
    #[serde(default)]
    #[schemars(pattern(r"^\s*([0-9]+(\.[0-9]+)?\s*(ms|s|sec|m|min|h|d)\s*)+$"))]
    pub timeout: Option<String>,
}

impl TargetSpec for MojoHelpdeskConfig {
    const FIELDS: &'static [FieldSpec] = MOJO;
    const CUSTOM_PREFIX: Option<&'static str> = Some(CUSTOM_PREFIX);

    fn custom_fields(&self) -> &[String] {
        &self.custom_fields
    }

    fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        vec![("access_key", &self.access_key)]
    }

    fn check(&self, c: &mut dyn Checks) {
        checks::base_url(c, "base_url", self.base_url.as_deref());
        checks::http_settings(c, self.rate_limit.as_deref(), self.timeout.as_deref());
        checks::custom_field_list(c, Self::CUSTOM_FIELDS_KEY, &self.custom_fields);
    }

    fn build(&self, name: &str, cx: &BuildContext<'_>) -> Result<Box<dyn Target>, ConnectorError> {
        let settings = cx.http_settings(self.rate_limit.as_deref(), self.timeout.as_deref())?;
        let base_url = self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let access = ("access_key", &self.access_key);
        let client = cx.account_client("mojo_helpdesk", base_url, access, |key| {
            client(
                &format!("mojo_helpdesk target `{name}`"),
                base_url,
                key,
                settings,
            )
        })?;
        Ok(Box::new(MojoHelpdeskTarget::new(
            client,
            self.custom_fields.clone(),
        )))
    }

    fn starter(s: &SourceStarter) -> TargetStarter {
        TargetStarter {
            name: "helpdesk",
            block: r#"  # Mojo Helpdesk (REST API v2) with an admin's access key.
  helpdesk:
    kind: mojo_helpdesk
    base_url: https://app.mojohelpdesk.com
    access_key: { env: MOJO_ACCESS_KEY }
    # custom_fields: [department]        # map them as custom_field_<key>
    rate_limit: 120/min
    # timeout: 30s
"#,
            identity: "[email]",
            fields: vec![
                f("email", s.email),
                f("first_name", s.given),
                f("last_name", s.family),
                f("role", r#""user""#),
            ],
            extra: "      # group: user.department             # company; created when missing\n",
            removed: "deactivate",
        }
    }
}

/// Mojo Helpdesk CSV import files written to a folder.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvExportConfig {
    /// Output folder, relative to the config file.
    pub dir: String,
    /// Rows per file, 1 to 3000 (Mojo imports at most 3000 at a time). Default 3000.
    #[serde(default = "default_max_rows")]
    pub max_rows_per_file: usize,
    /// Custom field keys (columns after the standard ones).
    #[serde(default)]
    pub custom_fields: Vec<String>,
}

fn default_max_rows() -> usize {
    MAX_ROWS_LIMIT
}

impl TargetSpec for CsvExportConfig {
    const FIELDS: &'static [FieldSpec] = CSV_EXPORT;
    const CUSTOM_PREFIX: Option<&'static str> = Some(CUSTOM_PREFIX);

    fn custom_fields(&self) -> &[String] {
        &self.custom_fields
    }

    fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        vec![]
    }

    fn check(&self, c: &mut dyn Checks) {
        checks::non_empty(c, "dir", &self.dir);
        if let Err(msg) = self.max_rows() {
            let msg = format!("`max_rows_per_file` of {} {msg}", c.owner());
            c.error(
                &[PathSeg::Key("max_rows_per_file")],
                msg,
                Some(format!(
                    "Mojo imports at most {MAX_ROWS_LIMIT} rows at a time"
                )),
            );
        }
        checks::custom_field_list(c, Self::CUSTOM_FIELDS_KEY, &self.custom_fields);
    }

    fn build(&self, _name: &str, cx: &BuildContext<'_>) -> Result<Box<dyn Target>, ConnectorError> {
        if self.dir.trim().is_empty() {
            return Err(ConnectorError::Config(
                "`dir` is empty: give the folder the export files go to".to_string(),
            ));
        }
        let max_rows = self.max_rows().map_err(|msg| {
            ConnectorError::Config(format!(
                "`max_rows_per_file` {msg} (Mojo imports at most {MAX_ROWS_LIMIT} rows per file)"
            ))
        })?;
        Ok(Box::new(CsvExportTarget::new(
            cx.path(&self.dir),
            max_rows,
            self.custom_fields.clone(),
        )))
    }

    fn starter(s: &SourceStarter) -> TargetStarter {
        TargetStarter {
            name: "mojo_files",
            block: r#"  # Mojo Helpdesk import files: each apply writes a new set holding only the rows that
  # changed; removals go to a separate file for an admin.
  mojo_files:
    kind: csv_export
    dir: exports                         # relative to this file
    max_rows_per_file: 3000              # Mojo imports at most 3000 rows at a time
    # custom_fields: [department]        # extra columns, mapped as custom_field_<key>
"#,
            identity: "[email]",
            fields: vec![
                f("email", s.email),
                f("first_name", s.given),
                f("last_name", s.family),
            ],
            extra: "      # group: user.department             # company; empty means `Individuals`\n",
            removed: "deactivate",
        }
    }
}

impl CsvExportConfig {
    fn max_rows(&self) -> Result<usize, String> {
        let n = self.max_rows_per_file;
        if (1..=MAX_ROWS_LIMIT).contains(&n) {
            Ok(n)
        } else {
            Err(format!("is {n}: use 1 to {MAX_ROWS_LIMIT}"))
        }
    }
}

const CUSTOM_PREFIX: &str = "custom_field_";

const MOJO_ROLES: &[&str] = &[
    "user",
    "restricted_technician",
    "technician",
    "manager",
    "admin",
    "owner",
];

const PASSWORD: FieldSpec = FieldSpec {
    name: "password",
    ty: FieldType::String,
    writable: Writable::CreateOnly,
    identity: None,
    sensitive: true,
    min_len: Some(6),
    empty_means: None,
    notes: "create only; at least 6 characters; blank lets the target generate one",
};

const GROUP: FieldSpec = FieldSpec {
    name: "group",
    ty: FieldType::String,
    writable: Writable::Always,
    identity: None,
    sensitive: false,
    min_len: None,
    empty_means: Some("Individuals"),
    notes: "group (company) name; created when missing; empty means `Individuals`",
};

const MOJO: &[FieldSpec] = &[
    create_only(ident(
        field(
            "email",
            FieldType::Email,
            "unique; not updatable after create",
        ),
        IdentityNorm::Email,
    )),
    field("first_name", FieldType::String, "at most 45 characters"),
    field("middle_name", FieldType::String, ""),
    field("last_name", FieldType::String, "at most 45 characters"),
    field("work_phone", FieldType::String, "at most 30 characters"),
    field("cell_phone", FieldType::String, "at most 30 characters"),
    field("home_phone", FieldType::String, "at most 30 characters"),
    field("user_notes", FieldType::String, "multi-line text"),
    PASSWORD,
    field("role", FieldType::Enum(MOJO_ROLES), "maps to role_id"),
    GROUP,
];

const CSV_EXPORT: &[FieldSpec] = &[
    ident(
        field(
            "email",
            FieldType::Email,
            "column `Email`; the unique key of Mojo's import",
        ),
        IdentityNorm::Email,
    ),
    field("first_name", FieldType::String, "column `First Name`"),
    field("middle_name", FieldType::String, "column `Middle Name`"),
    field("last_name", FieldType::String, "column `Last Name`"),
    field("work_phone", FieldType::String, "column `Work Phone`"),
    field("cell_phone", FieldType::String, "column `Cell Phone`"),
    field("home_phone", FieldType::String, "column `Home Phone`"),
    field("user_notes", FieldType::String, "column `Notes`"),
    PASSWORD,
    GROUP,
];

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::connectors::ClientPool;

    #[tokio::test]
    async fn builds_a_csv_export_target_and_checks_rows_per_file() {
        let dir = tempfile::tempdir().unwrap();
        let pool = ClientPool::default();
        let cx = BuildContext::new(dir.path(), &pool);
        let cfg = |max| CsvExportConfig {
            dir: "out".to_string(),
            max_rows_per_file: max,
            custom_fields: vec![],
        };
        let target = cfg(3000).build("mojo_files", &cx).unwrap();
        assert!(target.list().await.unwrap().is_empty());
        for bad in [0, 3001] {
            let msg = cfg(bad).build("mojo_files", &cx).err().unwrap().to_string();
            assert!(msg.contains("`max_rows_per_file` is"), "{msg}");
        }
    }
}
