//! The `zendesk` source (SPEC S4): Zendesk users of the chosen roles and custom roles, as
//! Zendesk returns them (`id`, `email`, `name`, `role`, `custom_role_id`, `active`,
//! `suspended`, `external_id`, `organization_id`, `user_fields`, ...). It only reads: there is
//! no write path to the source at all.
//!
//! One request series per filter: `role[]=...` (all configured roles in one series), then one
//! `permission_set=ID` series per custom role id (Zendesk takes one per request). A user found
//! by two series is read once. With no filter, every user.

use std::collections::HashSet;

use async_trait::async_trait;
use serde_json::Value;

use super::client::{first_page, list_all};
use super::errors::explain;
use crate::connectors::{ConnectorError, Source, SourceRecord};
use crate::http::{HttpClient, HttpError, Request};

/// Reads Zendesk users (never writes).
pub struct ZendeskSource {
    client: HttpClient,
    roles: Vec<String>,
    custom_role_ids: Vec<u64>,
}

impl ZendeskSource {
    pub fn new(client: HttpClient, roles: Vec<String>, custom_role_ids: Vec<u64>) -> Self {
        ZendeskSource {
            client,
            roles,
            custom_role_ids,
        }
    }

    /// The first request of each series.
    fn series(&self) -> Vec<Request> {
        let mut out = Vec::new();
        if !self.roles.is_empty() {
            let mut req = Request::get("api/v2/users");
            for role in &self.roles {
                req.query.push(("role[]".to_string(), role.clone()));
            }
            out.push(req);
        }
        for id in &self.custom_role_ids {
            out.push(Request::get("api/v2/users").query("permission_set", id));
        }
        if out.is_empty() {
            out.push(Request::get("api/v2/users"));
        }
        out
    }

    async fn records(&self, first_only: bool) -> Result<Vec<SourceRecord>, ConnectorError> {
        let mut seen = HashSet::new();
        let mut records = Vec::new();
        for req in self.series() {
            let users = if first_only {
                first_page(&self.client, req, "users").await
            } else {
                list_all(&self.client, req, "users").await
            }
            .map_err(|e| explain(e.into()))?;
            for user in users {
                let id = user_id(&user).map_err(|cause| {
                    ConnectorError::from(HttpError::Decode {
                        what: "GET /api/v2/users".to_string(),
                        cause,
                    })
                })?;
                if seen.insert(id.clone()) {
                    let label = user
                        .get("email")
                        .and_then(Value::as_str)
                        .filter(|e| !e.is_empty())
                        .map_or_else(|| format!("user {id}"), str::to_string);
                    records.push(SourceRecord { label, data: user });
                }
            }
        }
        Ok(records)
    }
}

/// A user's `id` as text; a user without one is bad data.
pub(super) fn user_id(user: &Value) -> Result<String, String> {
    match user.get("id") {
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err("a user without an `id`".to_string()),
    }
}

#[async_trait]
impl Source for ZendeskSource {
    async fn read(&self) -> Result<Vec<SourceRecord>, ConnectorError> {
        self.records(false).await
    }

    /// The first page of each series: endpoint, credentials and role filters proven.
    async fn probe(&self) -> Result<Vec<SourceRecord>, ConnectorError> {
        self.records(true).await
    }
}
