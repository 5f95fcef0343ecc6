//! The `ldap` source: bind, resolve `groups`, one paged search, records. Every read opens its
//! own session and either returns every entry or fails: never a partial list.

use std::collections::HashSet;

use async_trait::async_trait;
use ldap3::Scope;
use serde_json::Value;

use super::groups::{Groups, default_group_base, normalise_dn};
use super::record::{Notes, Shape};
use super::session::{Endpoint, Search};
use super::{DEFAULT_PAGE_SIZE, GroupMembership, LdapConfig, LdapScope, tls};
use crate::connectors::spec::BuildContext;
use crate::connectors::{ConnectorError, Source, SourceRecord};

/// The filter when none is configured.
const DEFAULT_FILTER: &str = "(objectClass=person)";

pub(super) struct LdapSource {
    name: String,
    endpoint: Endpoint,
    base_dn: String,
    scope: Scope,
    filter: String,
    /// What the search asks for: the configured attributes (or all user attributes), plus
    /// `entryUUID`, `objectGUID` and, for groups, `memberOf`.
    request: Vec<String>,
    shape: Shape,
    page_size: u32,
    groups: Vec<String>,
    membership: GroupMembership,
    group_base: String,
}

impl LdapSource {
    pub(super) fn new(
        name: &str,
        cfg: &LdapConfig,
        cx: &BuildContext<'_>,
    ) -> Result<LdapSource, ConnectorError> {
        let bind = match (&cfg.bind_dn, &cfg.bind_password) {
            (Some(dn), Some(pw)) => Some((dn.clone(), cx.secret("bind_password", pw)?)),
            (None, None) => None,
            _ => {
                return Err(ConnectorError::Config(format!(
                    "source `{name}`: set both `bind_dn` and `bind_password`, or neither for an anonymous bind"
                )));
            }
        };
        let url = cfg.url.trim();
        // ldap3 assumes a host once the URL parses; validation said so already, this keeps
        // a build without validation from reaching that assumption.
        if !url::Url::parse(url).is_ok_and(|u| u.host_str().is_some_and(|h| !h.is_empty())) {
            return Err(ConnectorError::Config(format!(
                "source `{name}`: `url` `{url}` names no LDAP server; write e.g. ldaps://ldap.example.com:636"
            )));
        }
        let ca_file = cfg.ca_file.as_deref().map(|f| cx.path(f));
        let timeout = cfg
            .timeout()
            .map_err(|e| ConnectorError::Config(format!("source `{name}`: `timeout`: {e}")))?;
        let membership = cfg.group_membership.unwrap_or(GroupMembership::MemberOf);
        let mut request: Vec<String> = if cfg.attributes.is_empty() {
            vec!["*".to_string()]
        } else {
            cfg.attributes.clone()
        };
        request.extend(["entryUUID".to_string(), "objectGUID".to_string()]);
        if !cfg.groups.is_empty() && membership == GroupMembership::MemberOf {
            request.push("memberOf".to_string());
        }
        Ok(LdapSource {
            name: name.to_string(),
            endpoint: Endpoint {
                source: name.to_string(),
                url: url.to_string(),
                starttls: cfg.starttls && !url.starts_with("ldaps://"),
                tls: tls::client_config(name, ca_file.as_deref())?,
                timeout,
                bind,
            },
            base_dn: cfg.base_dn.clone(),
            scope: match cfg.scope.unwrap_or(LdapScope::Sub) {
                LdapScope::Base => Scope::Base,
                LdapScope::One => Scope::OneLevel,
                LdapScope::Sub => Scope::Subtree,
            },
            filter: cfg
                .filter
                .clone()
                .unwrap_or_else(|| DEFAULT_FILTER.to_string()),
            request,
            shape: Shape::new(&cfg.attributes, &cfg.multi_valued),
            page_size: cfg.page_size.unwrap_or(DEFAULT_PAGE_SIZE).max(1),
            groups: cfg.groups.clone(),
            membership,
            group_base: cfg
                .group_base_dn
                .clone()
                .unwrap_or_else(|| default_group_base(&cfg.base_dn)),
        })
    }

    async fn read_pages(&self, first_page_only: bool) -> Result<Vec<SourceRecord>, ConnectorError> {
        let mut session = self.endpoint.open().await?;
        let groups = if self.groups.is_empty() {
            Groups::none()
        } else {
            Groups::resolve(
                &mut session,
                &self.groups,
                self.membership,
                &self.group_base,
                self.page_size,
            )
            .await?
        };
        let search = Search {
            base: &self.base_dn,
            scope: self.scope,
            filter: &self.filter,
            attrs: &self.request,
        };
        let entries = session
            .search(&search, self.page_size, first_page_only)
            .await?;
        session.close().await;

        let mut notes = Notes::default();
        let mut read = HashSet::new();
        let mut records = Vec::with_capacity(entries.len());
        for entry in &entries {
            let mut data = self.shape.record(entry, &mut notes);
            data.insert("groups".to_string(), groups.of(entry)?);
            read.insert(normalise_dn(&entry.dn));
            records.push(SourceRecord {
                label: entry.dn.clone(),
                data: Value::Object(data),
            });
        }
        for w in notes.warnings(&self.name) {
            tracing::warn!("{w}");
        }
        if !first_page_only {
            for w in groups.unmatched(&read) {
                tracing::warn!("LDAP source `{}`: {w}", self.name);
            }
        }
        Ok(records)
    }
}

#[async_trait]
impl Source for LdapSource {
    async fn read(&self) -> Result<Vec<SourceRecord>, ConnectorError> {
        self.read_pages(false).await
    }

    /// Bind, the groups, and the first page.
    async fn probe(&self) -> Result<Vec<SourceRecord>, ConnectorError> {
        self.read_pages(true).await
    }
}
