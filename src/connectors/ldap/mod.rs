//! LDAP and Active Directory: the `ldap` source (paged search).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::spec::{BuildContext, SourceSpec, SourceStarter};
use super::{ConnectorError, Source};
use crate::model::SecretRef;
use crate::model::checks::{self, Checks, PathSeg};

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
    /// Search filter. Default `(objectClass=person)`.
    #[serde(default)]
    pub filter: Option<String>,
    /// Attributes to read. Default: all user attributes.
    #[serde(default)]
    pub attributes: Vec<String>,
    /// Attributes read as lists; all others are single strings.
    #[serde(default)]
    pub multi_valued: Vec<String>,
    /// Entries per page of the paged-results control.
    #[serde(default)]
    pub page_size: Option<u32>,
    /// Upgrade an `ldap://` connection with StartTLS.
    #[serde(default)]
    pub starttls: bool,
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
        }
        checks::non_empty(c, "base_dn", &self.base_dn);
        if self.page_size == Some(0) {
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
    }

    fn build(
        &self,
        _name: &str,
        _cx: &BuildContext<'_>,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        Err(ConnectorError::Unsupported {
            kind: "ldap".to_string(),
        })
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
