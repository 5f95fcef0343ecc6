//! The config file format, version 1 (SPEC section 4). These types are the single source of the
//! JSON Schema (`headcount schema`, `schemas/headcount.schema.json`).

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::located::Located;
use super::secret::SecretRef;

/// A CEL expression as written in the config.
pub type ExprText = Located<String>;

/// A headcount configuration file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Format version of this file. This build reads version 1.
    pub version: u32,
    /// Where headcount keeps which accounts each sync manages.
    #[serde(default)]
    pub state: StateConfig,
    /// Where headcount appends one line per applied operation.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Where people come from, by name.
    #[serde(default)]
    pub sources: IndexMap<String, SourceConfig>,
    /// Where accounts are kept, by name.
    #[serde(default)]
    pub targets: IndexMap<String, TargetConfig>,
    /// Which source feeds which target, with filters, identity keys and field mappings.
    #[serde(default)]
    pub syncs: Vec<SyncConfig>,
}

/// The state backend.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Path of the state file, relative to the config file. The lock and the journal sit next
    /// to it.
    #[serde(default = "default_state_path")]
    pub path: String,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            path: default_state_path(),
        }
    }
}

fn default_state_path() -> String {
    ".headcount/state.json".to_string()
}

/// The audit log: one JSON line per applied operation. Its own setting, not derived from where
/// the state is, because a state kept in a database has no folder to put it next to.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Path of the audit log (JSON lines, appended, mode 0600), relative to the config file.
    #[serde(default = "default_audit_path")]
    pub path: String,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            path: default_audit_path(),
        }
    }
}

fn default_audit_path() -> String {
    ".headcount/audit.jsonl".to_string()
}

/// A source of people. `kind` picks the connector.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// A CSV file with a header row (UTF-8, with or without BOM).
    Csv {
        /// Path of the CSV file, relative to the config file.
        path: String,
        /// Field delimiter, one ASCII character. Default `,`.
        #[serde(default)]
        delimiter: Option<String>,
    },
    /// Google Workspace users via the Admin SDK Directory API.
    GoogleWorkspace {
        /// Customer id (`my_customer` for the key's own account). Either this or `domain`.
        #[serde(default)]
        customer: Option<String>,
        /// Domain to list instead of a customer.
        #[serde(default)]
        domain: Option<String>,
        /// Optional Directory API query, e.g. `isSuspended=false orgUnitPath='/Support'`.
        #[serde(default)]
        query: Option<String>,
        /// Service account with domain-wide delegation.
        credentials: GoogleCredentials,
        /// Group emails whose (nested) membership is added to each record as `groups`.
        #[serde(default)]
        groups: Vec<String>,
        /// Custom schema names to fetch (`customFieldMask`).
        #[serde(default)]
        custom_field_mask: Option<String>,
        /// API root, overridable for tests. Default `https://admin.googleapis.com`.
        #[serde(default)]
        base_url: Option<String>,
    },
    /// Microsoft Entra ID users via Microsoft Graph.
    EntraId {
        /// Directory (tenant) id.
        tenant_id: String,
        /// Application (client) id of the app registration.
        client_id: String,
        /// Client secret of the app registration: `{ env: NAME }` or `{ file: PATH }`.
        client_secret: SecretRef,
        /// `$select` fields to read.
        #[serde(default)]
        select: Vec<String>,
        /// Group or Team ids whose transitive members get the group's display name in `groups`.
        #[serde(default)]
        groups: Vec<String>,
        /// Use delta queries between runs.
        #[serde(default)]
        delta: bool,
        /// Graph root, overridable for tests. Default `https://graph.microsoft.com`.
        #[serde(default)]
        base_url: Option<String>,
    },
    /// Zendesk Support users (read only: nothing is ever written to the source).
    Zendesk {
        /// The `example` of `example.zendesk.com`.
        subdomain: String,
        /// Email of the agent the API token belongs to.
        email: String,
        /// API token: `{ env: NAME }` or `{ file: PATH }`.
        api_token: SecretRef,
        /// Roles to read (`end-user`, `agent`, `admin`).
        #[serde(default)]
        roles: Vec<String>,
        /// Custom role ids to read.
        #[serde(default)]
        custom_role_ids: Vec<u64>,
        /// API root, overridable for tests. Default `https://SUBDOMAIN.zendesk.com`.
        #[serde(default)]
        base_url: Option<String>,
    },
    /// An LDAP directory (paged search).
    Ldap {
        /// Server URL, `ldap://host:389` or `ldaps://host:636`.
        url: String,
        /// DN to bind as; anonymous bind when absent.
        #[serde(default)]
        bind_dn: Option<String>,
        /// Password of `bind_dn`: `{ env: NAME }` or `{ file: PATH }`.
        #[serde(default)]
        bind_password: Option<SecretRef>,
        /// Search base, e.g. `ou=people,dc=example,dc=com`.
        base_dn: String,
        /// Search filter. Default `(objectClass=person)`.
        #[serde(default)]
        filter: Option<String>,
        /// Attributes to read. Default: all user attributes.
        #[serde(default)]
        attributes: Vec<String>,
        /// Attributes read as lists; all others are single strings.
        #[serde(default)]
        multi_valued: Vec<String>,
        /// Entries per page of the paged-results control.
        #[serde(default)]
        page_size: Option<u32>,
        /// Upgrade an `ldap://` connection with StartTLS.
        #[serde(default)]
        starttls: bool,
    },
    /// Users of any SCIM 2.0 service provider (read only).
    Scim {
        /// SCIM base URL (the one `/Users` hangs off).
        base_url: String,
        /// Bearer token: `{ env: NAME }` or `{ file: PATH }`.
        token: SecretRef,
        /// SCIM filter, e.g. `active eq true`.
        #[serde(default)]
        filter: Option<String>,
    },
}

impl SourceConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Csv { .. } => "csv",
            SourceConfig::GoogleWorkspace { .. } => "google_workspace",
            SourceConfig::EntraId { .. } => "entra_id",
            SourceConfig::Zendesk { .. } => "zendesk",
            SourceConfig::Ldap { .. } => "ldap",
            SourceConfig::Scim { .. } => "scim",
        }
    }
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

/// Options every HTTP target shares.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpOptions {
    /// Requests allowed, as `N/min` or `N/s`. Defaults to the vendor's documented limit.
    #[serde(default)]
    pub rate_limit: Option<String>,
    /// Per-request timeout, e.g. `30s`.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// A target where accounts are kept. `kind` picks the connector.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetConfig {
    /// Mojo Helpdesk (REST API v2).
    MojoHelpdesk {
        /// API root, overridable for tests. Default `https://app.mojohelpdesk.com`.
        #[serde(default)]
        base_url: Option<String>,
        /// Access key of an admin user: `{ env: NAME }` or `{ file: PATH }`.
        access_key: SecretRef,
        /// Custom field keys that exist in the helpdesk (usable as `custom_field_<key>`).
        #[serde(default)]
        custom_fields: Vec<String>,
        /// Requests allowed, as `N/min` or `N/s`. Default: the vendor's documented limit.
        #[serde(default)]
        #[schemars(pattern(r"^\s*[1-9][0-9]*\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$"))]
        rate_limit: Option<String>,
        /// Per-request timeout, e.g. `30s`, `2m`, `500ms`.
        #[serde(default)]
        #[schemars(pattern(r"^\s*([0-9]+(\.[0-9]+)?\s*(ms|s|sec|m|min|h|d)\s*)+$"))]
        timeout: Option<String>,
    },
    /// Zendesk Support.
    Zendesk {
        /// The `example` of `example.zendesk.com`.
        subdomain: String,
        /// Email of the admin the API token belongs to.
        email: String,
        /// API token: `{ env: NAME }` or `{ file: PATH }`.
        api_token: SecretRef,
        /// User field keys usable as `user_fields.<key>`.
        #[serde(default)]
        user_fields: Vec<String>,
        /// API root, overridable for tests. Default `https://SUBDOMAIN.zendesk.com`.
        #[serde(default)]
        base_url: Option<String>,
        /// Requests allowed, as `N/min` or `N/s`. Default: the vendor's documented limit.
        #[serde(default)]
        #[schemars(pattern(r"^\s*[1-9][0-9]*\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$"))]
        rate_limit: Option<String>,
        /// Per-request timeout, e.g. `30s`, `2m`, `500ms`.
        #[serde(default)]
        #[schemars(pattern(r"^\s*([0-9]+(\.[0-9]+)?\s*(ms|s|sec|m|min|h|d)\s*)+$"))]
        timeout: Option<String>,
    },
    /// Any SCIM 2.0 service provider.
    Scim {
        /// SCIM base URL (the one `/Users` hangs off).
        base_url: String,
        /// Bearer token: `{ env: NAME }` or `{ file: PATH }`.
        token: SecretRef,
        /// Requests allowed, as `N/min` or `N/s`.
        #[serde(default)]
        #[schemars(pattern(r"^\s*[1-9][0-9]*\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$"))]
        rate_limit: Option<String>,
        /// Per-request timeout, e.g. `30s`, `2m`, `500ms`.
        #[serde(default)]
        #[schemars(pattern(r"^\s*([0-9]+(\.[0-9]+)?\s*(ms|s|sec|m|min|h|d)\s*)+$"))]
        timeout: Option<String>,
    },
    /// Request Tracker 5 (REST 2.0).
    RequestTracker {
        /// RT root, e.g. `https://rt.example.com` (REST 2.0 lives under `/REST/2.0`).
        base_url: String,
        /// Auth token of an RT user allowed to admin users: `{ env: NAME }` or `{ file: PATH }`.
        token: SecretRef,
        /// Requests allowed, as `N/min` or `N/s`.
        #[serde(default)]
        #[schemars(pattern(r"^\s*[1-9][0-9]*\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$"))]
        rate_limit: Option<String>,
        /// Per-request timeout, e.g. `30s`, `2m`, `500ms`.
        #[serde(default)]
        #[schemars(pattern(r"^\s*([0-9]+(\.[0-9]+)?\s*(ms|s|sec|m|min|h|d)\s*)+$"))]
        timeout: Option<String>,
    },
    /// Mojo Helpdesk CSV import files written to a folder.
    CsvExport {
        /// Output folder, relative to the config file.
        dir: String,
        /// Rows per file, 1 to 3000 (Mojo imports at most 3000 at a time). Default 3000.
        #[serde(default = "default_max_rows")]
        max_rows_per_file: usize,
        /// Custom field keys (columns after the standard ones).
        #[serde(default)]
        custom_fields: Vec<String>,
    },
    /// Microsoft Entra ID B2B guest accounts (Graph invitations).
    EntraGuests {
        /// Directory (tenant) id guests are invited into.
        tenant_id: String,
        /// Application (client) id of the app registration.
        client_id: String,
        /// Client secret of the app registration: `{ env: NAME }` or `{ file: PATH }`.
        client_secret: SecretRef,
        /// Where an invited guest lands after redeeming the invitation.
        #[serde(default)]
        redirect_url: Option<String>,
        /// Graph root, overridable for tests. Default `https://graph.microsoft.com`.
        #[serde(default)]
        base_url: Option<String>,
        /// Requests allowed, as `N/min` or `N/s`. Default: Graph's documented limit.
        #[serde(default)]
        #[schemars(pattern(r"^\s*[1-9][0-9]*\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$"))]
        rate_limit: Option<String>,
        /// Per-request timeout, e.g. `30s`, `2m`, `500ms`.
        #[serde(default)]
        #[schemars(pattern(r"^\s*([0-9]+(\.[0-9]+)?\s*(ms|s|sec|m|min|h|d)\s*)+$"))]
        timeout: Option<String>,
    },
}

fn default_max_rows() -> usize {
    3000
}

impl TargetConfig {
    pub fn kind(&self) -> crate::catalog::TargetKind {
        use crate::catalog::TargetKind as K;
        match self {
            TargetConfig::MojoHelpdesk { .. } => K::MojoHelpdesk,
            TargetConfig::Zendesk { .. } => K::Zendesk,
            TargetConfig::Scim { .. } => K::Scim,
            TargetConfig::RequestTracker { .. } => K::RequestTracker,
            TargetConfig::CsvExport { .. } => K::CsvExport,
            TargetConfig::EntraGuests { .. } => K::EntraGuests,
        }
    }

    /// Custom field keys declared for this target.
    pub fn custom_fields(&self) -> &[String] {
        match self {
            TargetConfig::MojoHelpdesk { custom_fields, .. }
            | TargetConfig::CsvExport { custom_fields, .. } => custom_fields,
            TargetConfig::Zendesk { user_fields, .. } => user_fields,
            _ => &[],
        }
    }
}

/// One sync: a source, a target, and the rules between them.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Unique name; the state keys managed accounts by it.
    pub name: Located<String>,
    /// Name of a source under `sources`.
    pub from: Located<String>,
    /// Name of a target under `targets`.
    pub to: Located<String>,
    /// CEL bool expression: which records are in scope. Default: all.
    #[serde(default, rename = "where")]
    pub where_: Option<ExprText>,
    /// Target fields that identify an account, in precedence order.
    pub identity: Vec<Located<String>>,
    /// Target field → CEL expression over `user` and `source`. `null` leaves or makes it unset.
    pub fields: IndexMap<String, Option<ExprText>>,
    /// CEL bool expression: should the account be active. Default: true.
    #[serde(default)]
    pub active: Option<ExprText>,
    /// What happens when an account is created.
    #[serde(default)]
    pub on_create: OnCreate,
    /// What happens to a managed account that is no longer desired.
    #[serde(default)]
    pub removed: RemovedPolicy,
    /// Which target accounts this sync manages.
    #[serde(default)]
    pub manage: ManagePolicy,
    /// Identity values of accounts never touched (with `manage: all`).
    #[serde(default)]
    pub protect: Vec<String>,
    /// Safety limits.
    #[serde(default)]
    pub limits: Limits,
}

/// Options for newly created accounts.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OnCreate {
    /// Create accounts active. `false` creates them pending: headcount never activates an
    /// account it created inactive; a person does that in the target.
    #[serde(default = "yes")]
    pub active: bool,
    /// Send the target's welcome email.
    #[serde(default)]
    pub notify: bool,
}

impl Default for OnCreate {
    fn default() -> Self {
        OnCreate {
            active: true,
            notify: false,
        }
    }
}

fn yes() -> bool {
    true
}

/// What to do with a managed account that is no longer desired.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RemovedPolicy {
    /// Deactivate (suspend) the account; it can be reactivated later.
    #[default]
    Deactivate,
    /// Delete the account in the target.
    Delete,
    /// Leave the account as it is.
    Keep,
}

/// Which accounts a sync manages.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ManagePolicy {
    /// Only accounts it created or adopted.
    #[default]
    Owned,
    /// Every account in the target, except those listed in `protect`.
    All,
}

/// Safety limits of a sync.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most deactivations + deletions one plan may hold: a count (`5`) or a percentage of the
    /// managed accounts (`"10%"`). Default `"10%"`.
    #[serde(default = "default_max_removals")]
    pub max_removals: MaxRemovals,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_removals: default_max_removals(),
        }
    }
}

fn default_max_removals() -> MaxRemovals {
    MaxRemovals::Text("10%".to_string())
}

/// A count or a percentage.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(untagged)]
pub enum MaxRemovals {
    /// Most removals per plan.
    Count(u64),
    /// `"N%"` of the managed accounts, or `"N"`.
    Text(#[schemars(pattern(r"^\s*[0-9]+(\.[0-9]+)?\s*%?\s*$"))] String),
}

// Hand-written so that anything scalar is kept as written and judged by validation, which says
// what is wrong (`-3`, `150%`) instead of serde's "did not match any variant".
impl<'de> Deserialize<'de> for MaxRemovals {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = MaxRemovals;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a count like 5 or a percentage like \"10%\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<MaxRemovals, E> {
                Ok(MaxRemovals::Count(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<MaxRemovals, E> {
                Ok(u64::try_from(v)
                    .map_or_else(|_| MaxRemovals::Text(v.to_string()), MaxRemovals::Count))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<MaxRemovals, E> {
                Ok(MaxRemovals::Text(v.to_string()))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MaxRemovals, E> {
                Ok(MaxRemovals::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}
