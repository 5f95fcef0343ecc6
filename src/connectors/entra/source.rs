//! The `entra_id` source: Graph users with the configured `$select` fields, plus `groups`
//! (display names of the configured groups or Teams each user is a transitive member of;
//! always present). Users come from `GET /users` (every `@odata.nextLink`), or from a delta
//! query between runs ([`super::delta`]). Group memberships are read in full every run (one
//! `transitiveMembers` list per configured group), since a delta of users does not carry them.
//! Nothing is ever written to the directory.

use std::collections::HashMap;

use async_trait::async_trait;
use reqwest::header::HeaderName;
use serde_json::{Value, json};

use super::delta::DeltaCache;
use super::graph::{GraphClient, Need};
use crate::connectors::{ConnectorError, Source, SourceRecord};
use crate::http::Request;

/// Users asked for per page (Graph's maximum).
pub const PAGE_SIZE: usize = 999;

/// The `$select` read when the config names none: SPEC section 5's fields.
pub const DEFAULT_SELECT: [&str; 11] = [
    "id",
    "userPrincipalName",
    "mail",
    "givenName",
    "surname",
    "displayName",
    "accountEnabled",
    "userType",
    "employeeId",
    "department",
    "jobTitle",
];

/// The `$select` list: the configured fields (or the default), with `id` always first.
pub fn select_list(configured: &[String]) -> Vec<String> {
    let mut out = vec!["id".to_string()];
    let chosen: Vec<String> = if configured.is_empty() {
        DEFAULT_SELECT.iter().map(|s| s.to_string()).collect()
    } else {
        configured.iter().map(|s| s.trim().to_string()).collect()
    };
    for f in chosen {
        if !f.is_empty() && !out.contains(&f) {
            out.push(f);
        }
    }
    out
}

/// The `ConsistencyLevel: eventual` header Graph's advanced queries (OData casts, `$count`)
/// require.
pub(super) fn eventual() -> (HeaderName, &'static str) {
    (HeaderName::from_static("consistencylevel"), "eventual")
}

/// True for a group reference that is an object id rather than a display name.
fn is_object_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && [8, 4, 4, 4, 12]
            .iter()
            .zip(&parts)
            .all(|(n, p)| p.len() == *n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// An OData string literal: quotes doubled.
pub(super) fn odata_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The `entra_id` source.
pub struct EntraIdSource {
    graph: GraphClient,
    select: Vec<String>,
    groups: Vec<String>,
    /// The delta cursor and snapshot, when `delta: true` and the run has a cache folder.
    delta: Option<DeltaCache>,
    /// `plan --full`: ignore the delta link (and renew it).
    full_read: bool,
}

impl EntraIdSource {
    pub fn new(
        graph: GraphClient,
        select: &[String],
        groups: Vec<String>,
        delta: Option<DeltaCache>,
        full_read: bool,
    ) -> EntraIdSource {
        EntraIdSource {
            graph,
            select: select_list(select),
            groups,
            delta,
            full_read,
        }
    }

    pub fn graph(&self) -> &GraphClient {
        &self.graph
    }

    fn users_request(&self) -> Request {
        Request::get("users")
            .query("$select", self.select.join(","))
            .query("$top", PAGE_SIZE)
    }

    /// A configured group's id and display name: an id is looked up, a name is found with
    /// `$filter=displayName eq '...'` and must name exactly one group.
    async fn resolve_group(&self, group: &str) -> Result<(String, String), ConnectorError> {
        let group = group.trim();
        if is_object_id(group) {
            let req = Request::get(format!("groups/{group}")).query("$select", "id,displayName");
            let resp = match self.graph.send(req, Need::ReadGroups).await {
                Ok(r) => r,
                Err(ConnectorError::NotFound { message }) => {
                    return Err(ConnectorError::NotFound {
                        message: format!(
                            "{message}. The group {group} in `groups` does not exist in this tenant: check the id (Entra admin center > Groups)"
                        ),
                    });
                }
                Err(e) => return Err(e),
            };
            let v: Value = resp
                .json()
                .map_err(|e| self.graph.error(e, Need::ReadGroups))?;
            let name = v
                .get("displayName")
                .and_then(Value::as_str)
                .unwrap_or(group)
                .to_string();
            return Ok((group.to_string(), name));
        }
        let req = Request::get("groups")
            .query("$filter", format!("displayName eq {}", odata_string(group)))
            .query("$select", "id,displayName");
        let (found, _) = self.graph.pages(req, Need::ReadGroups).await?;
        let ids: Vec<&str> = found
            .iter()
            .filter_map(|g| g.get("id").and_then(Value::as_str))
            .collect();
        match ids.as_slice() {
            [id] => Ok((id.to_string(), group.to_string())),
            [] => Err(ConnectorError::Config(format!(
                "no group or Team is named {group:?} in this tenant: check the name in `groups` (display names match exactly), or give the group's object id"
            ))),
            many => Err(ConnectorError::Config(format!(
                "{} groups are named {group:?} ({}): a display name must name one group; put the object id of the one you mean in `groups`",
                many.len(),
                many.join(", ")
            ))),
        }
    }

    /// User id → display names of the configured groups they are transitive members of (in
    /// the order of `groups`). `first_page_only` for `probe`.
    async fn memberships(
        &self,
        first_page_only: bool,
    ) -> Result<HashMap<String, Vec<String>>, ConnectorError> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for group in &self.groups {
            let (id, name) = self.resolve_group(group).await?;
            let (header, value) = eventual();
            let req = Request::get(format!(
                "groups/{id}/transitiveMembers/microsoft.graph.user"
            ))
            .query("$select", "id")
            .query("$top", PAGE_SIZE)
            .query("$count", "true")
            .header(header, value);
            let members = if first_page_only {
                self.graph.first_page(req, Need::ReadGroups).await?
            } else {
                self.graph.pages(req, Need::ReadGroups).await?.0
            };
            for m in members {
                if let Some(uid) = m.get("id").and_then(Value::as_str) {
                    let names = out.entry(uid.to_string()).or_default();
                    if !names.contains(&name) {
                        names.push(name.clone());
                    }
                }
            }
        }
        Ok(out)
    }

    /// Users as records, each with its `groups`.
    fn records(
        &self,
        users: Vec<Value>,
        groups: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<SourceRecord>, ConnectorError> {
        users
            .into_iter()
            .map(|mut u| {
                let id = u
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| {
                        ConnectorError::BadData(format!(
                            "Graph returned a user without an `id` ({}): not a user object",
                            crate::http::redact::truncate(&u.to_string(), 200)
                        ))
                    })?;
                let label = u
                    .get("userPrincipalName")
                    .and_then(Value::as_str)
                    .map_or_else(|| id.clone(), str::to_string);
                let names = groups.get(&id).cloned().unwrap_or_default();
                if let Value::Object(m) = &mut u {
                    m.retain(|k, _| !k.starts_with('@'));
                    m.insert("groups".to_string(), json!(names));
                }
                Ok(SourceRecord { label, data: u })
            })
            .collect()
    }
}

#[async_trait]
impl Source for EntraIdSource {
    async fn read(&self) -> Result<Vec<SourceRecord>, ConnectorError> {
        let users = match &self.delta {
            Some(cache) => {
                super::delta::read(&self.graph, cache, &self.select, self.full_read).await?
            }
            None => {
                self.graph
                    .pages(self.users_request(), Need::ReadUsers)
                    .await?
                    .0
            }
        };
        let groups = self.memberships(false).await?;
        self.records(users, &groups)
    }

    /// The first page of users and of each group's members; the delta cursor is not touched.
    async fn probe(&self) -> Result<Vec<SourceRecord>, ConnectorError> {
        let users = self
            .graph
            .first_page(self.users_request(), Need::ReadUsers)
            .await?;
        let groups = self.memberships(true).await?;
        self.records(users, &groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_always_starts_with_id_and_defaults_to_the_spec_fields() {
        assert_eq!(select_list(&[])[0], "id");
        assert!(select_list(&[]).contains(&"accountEnabled".to_string()));
        assert_eq!(
            select_list(&["mail".into(), "id".into(), " mail ".into()]),
            ["id", "mail"]
        );
    }

    #[test]
    fn object_ids_and_odata_strings() {
        assert!(is_object_id("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"));
        assert!(!is_object_id("Support Team"));
        assert_eq!(odata_string("O'Brien's"), "'O''Brien''s'");
    }
}
