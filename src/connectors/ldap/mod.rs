//! LDAP and Active Directory: the `ldap` source (simple bind, paged search, group membership).
//! Read-only by construction: the connector has no write path at all.
//!
//! - `tls.rs`: the rustls configuration (system roots or `ca_file`; verification never off).
//! - `session.rs`: connect, StartTLS, bind, paged search, and LDAP failures as typed errors.
//! - `record.rs`: an entry as a record (attributes, `multi_valued`, `dn`, `entryUUID`,
//!   `objectGUID`, binary values).
//! - `groups.rs`: the `groups` option (memberOf, member or uniqueMember).
//! - `source.rs`: the `Source` itself.

mod groups;
mod record;
mod session;
mod source;
mod tls;

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::spec::{BuildContext, SourceSpec, SourceStarter};
use super::{ConnectorError, Source};
use crate::model::SecretRef;
use crate::model::checks::{self, Checks, PathSeg};

/// Entries per page when `page_size` is not set.
const DEFAULT_PAGE_SIZE: u32 = 500;
/// Connect, bind and per-page timeout when `timeout` is not set.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// An LDAP directory (paged search).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// Server URL, `ldap://host:389` or `ldaps://host:636`.
    pub url: String,
    /// DN to bind as; anonymous bind when absent.
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// Password of `bind_dn`: `{ env: NAME }` or `{ file: PATH }`.
    #[serde(default)]
    pub bind_password: Option<SecretRef>,
    /// Search base, e.g. `ou=people,dc=example,dc=com`.
    pub base_dn: String,
    /// Search filter. Default `(objectClass=person)`. Nested Active Directory groups:
    /// `(memberOf:1.2.840.113556.1.4.1941:=cn=support,ou=groups,dc=example,dc=com)`.
    #[serde(default)]
    pub filter: Option<String>,
    /// Search scope: `sub` (default: the base and everything below), `one` (direct children)
    /// or `base` (the base entry only).
    #[serde(default)]
    pub scope: Option<LdapScope>,
    /// Attributes to read. Default: all user attributes.
    #[serde(default)]
    pub attributes: Vec<String>,
    /// Attributes read as lists; all others are single strings (the first value, with a
    /// warning, when an entry has several).
    #[serde(default)]
    pub multi_valued: Vec<String>,
    /// Entries per page of the paged-results control (default 500). Keep it at or below the
    /// server's size limit.
    #[serde(default)]
    pub page_size: Option<u32>,
    /// Upgrade an `ldap://` connection with StartTLS.
    #[serde(default)]
    pub starttls: bool,
    /// PEM file of the CA(s) that signed the server's certificate, instead of the system's
    /// roots (relative to the config file). TLS is always verified.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Connect, bind and per-page timeout, e.g. `30s` (default).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Groups whose membership records carry in `groups`: DNs
    /// (`cn=support,ou=groups,dc=example,dc=com`) or CNs (`support`, looked up below
    /// `group_base_dn`). Every record gets `groups`: the entries of this list (as written)
    /// the user is a direct member of.
    #[serde(default)]
    pub groups: Vec<String>,
    /// How membership is read: `member_of` (default: the user's `memberOf`, as Active
    /// Directory and OpenLDAP's memberof overlay keep it), `member` (the group's `member`
    /// list) or `unique_member` (the group's `uniqueMember` list).
    #[serde(default)]
    pub group_membership: Option<GroupMembership>,
    /// Where groups named by CN are looked up. Default: the parent of `base_dn`.
    #[serde(default)]
    pub group_base_dn: Option<String>,
}

/// The search scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LdapScope {
    Base,
    One,
    Sub,
}

/// Where group membership comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupMembership {
    MemberOf,
    Member,
    UniqueMember,
}

impl LdapConfig {
    fn timeout(&self) -> Result<Duration, String> {
        match &self.timeout {
            None => Ok(DEFAULT_TIMEOUT),
            Some(t) => crate::model::units::parse_duration(t),
        }
    }
}

impl SourceSpec for LdapConfig {
    fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        self.bind_password
            .iter()
            .map(|p| ("bind_password", p))
            .collect()
    }

    fn check(&self, c: &mut dyn Checks) {
        let url = &self.url;
        if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
            let msg = format!(
                "`url` of {} must start with ldap:// or ldaps://, not `{url}`",
                c.owner()
            );
            c.error(&[PathSeg::Key("url")], msg, None);
        } else if !url::Url::parse(url).is_ok_and(|u| u.host_str().is_some_and(|h| !h.is_empty())) {
            let msg = format!("`url` of {} names no server: `{url}`", c.owner());
            c.error(
                &[PathSeg::Key("url")],
                msg,
                Some("e.g. `ldaps://ldap.example.com:636`".to_string()),
            );
        }
        checks::non_empty(c, "base_dn", &self.base_dn);
        if self.page_size == Some(0) || self.page_size.is_some_and(|p| p > i32::MAX as u32) {
            let msg = format!("`page_size` of {} must be above 0", c.owner());
            c.error(
                &[PathSeg::Key("page_size")],
                msg,
                Some("omit it for the default, or use e.g. 500".to_string()),
            );
        }
        if self.starttls && url.starts_with("ldaps://") {
            let msg = format!(
                "{}: `starttls` has no effect on an ldaps:// URL, which is TLS already",
                c.owner()
            );
            c.warn_at_key(&[PathSeg::Key("starttls")], msg);
        }
        let loopback = url::Url::parse(url).is_ok_and(|u| {
            matches!(
                u.host_str(),
                Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
            )
        });
        if url.starts_with("ldap://") && !self.starttls && self.bind_password.is_some() && !loopback
        {
            let msg = format!(
                "{}: the bind password goes to the server in clear text (ldap:// without `starttls: true`); use ldaps:// or set `starttls: true`",
                c.owner()
            );
            c.warn_at_key(&[PathSeg::Key("url")], msg);
        }
        if self.bind_dn.is_some() != self.bind_password.is_some() {
            let (key, msg) = if self.bind_dn.is_some() {
                ("bind_dn", "`bind_dn` needs `bind_password`")
            } else {
                ("bind_password", "`bind_password` needs `bind_dn`")
            };
            let msg = format!("{} of {}", msg, c.owner());
            c.error(
                &[PathSeg::Key(key)],
                msg,
                Some("set both, or neither for an anonymous bind".to_string()),
            );
        }
        if let Err(e) = self.timeout() {
            let msg = format!("`timeout` of {}: {e}", c.owner());
            c.error(
                &[PathSeg::Key("timeout")],
                msg,
                Some("e.g. `timeout: 30s`".to_string()),
            );
        }
        if let Some(f) = &self.filter
            && ldap3::parse_filter(f).is_err()
        {
            let msg = format!(
                "`filter` of {} is not a valid LDAP filter: `{f}`",
                c.owner()
            );
            c.error(
                &[PathSeg::Key("filter")],
                msg,
                Some("e.g. `(&(objectClass=person)(mail=*))`".to_string()),
            );
        }
        for (i, g) in self.groups.iter().enumerate() {
            if g.trim().is_empty() {
                let msg = format!("`groups` of {} holds an empty name", c.owner());
                c.error(&[PathSeg::Key("groups"), PathSeg::Index(i)], msg, None);
            }
        }
    }

    fn build(&self, name: &str, cx: &BuildContext<'_>) -> Result<Box<dyn Source>, ConnectorError> {
        Ok(Box::new(source::LdapSource::new(name, self, cx)?))
    }

    fn starter() -> SourceStarter {
        SourceStarter {
            name: "directory",
            block: r#"  # An LDAP directory, read with paged searches.
  directory:
    kind: ldap
    url: ldaps://ldap.example.com:636
    bind_dn: cn=headcount,ou=services,dc=example,dc=com
    bind_password: { env: LDAP_BIND_PASSWORD }
    base_dn: ou=people,dc=example,dc=com
    filter: "(memberOf=cn=support,ou=groups,dc=example,dc=com)"
    attributes: [uid, mail, givenName, sn, cn]
    # multi_valued: [memberOf]           # read as lists; others are single strings
    # page_size: 500
    # ca_file: ldap-ca.pem               # the CA of the server's certificate, if not a system root
"#,
            email: "user.mail",
            given: "user.givenName",
            family: "user.sn",
            full: "user.cn",
            login: "user.uid",
            where_: Some(r#"user.mail != """#),
            active: None,
            pending: false,
        }
    }
}
