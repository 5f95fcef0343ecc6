//! Organizations by name ↔ `organization_id`: listed once per run (on first use), created on
//! demand when a target field `organization` names a new one. An empty `organization` clears
//! the user's default organization (`organization_id: null`).

use std::collections::HashMap;

use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::client::list_all;
use crate::connectors::ConnectorError;
use crate::http::{HttpClient, Request};

/// Organization names and ids, grown as organizations are created.
#[derive(Default)]
pub(super) struct Orgs {
    by_id: HashMap<i64, String>,
    /// Lower-cased name → id (Zendesk organization names are unique without regard to case).
    by_name: HashMap<String, i64>,
}

impl Orgs {
    fn add(&mut self, id: i64, name: &str) {
        self.by_id.insert(id, name.to_string());
        self.by_name.entry(name.to_lowercase()).or_insert(id);
    }

    /// The name of organization `id` (`organization 42` when it is not listed).
    pub(super) fn name(&self, id: i64) -> String {
        self.by_id
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("organization {id}"))
    }

    fn read(items: Vec<Value>) -> Orgs {
        let mut orgs = Orgs::default();
        for o in items {
            if let (Some(id), Some(name)) = (
                o.get("id").and_then(Value::as_i64),
                o.get("name").and_then(Value::as_str),
            ) {
                orgs.add(id, name);
            }
        }
        orgs
    }
}

/// The account's organizations, read on first use and shared by every operation of the run.
#[derive(Default)]
pub(super) struct OrgCache {
    orgs: Mutex<Option<Orgs>>,
}

impl OrgCache {
    /// The organizations, listed once.
    pub(super) async fn get(
        &self,
        client: &HttpClient,
    ) -> Result<tokio::sync::MutexGuard<'_, Option<Orgs>>, ConnectorError> {
        let mut guard = self.orgs.lock().await;
        if guard.is_none() {
            let items = list_all(
                client,
                Request::get("api/v2/organizations"),
                "organizations",
            )
            .await
            .map_err(ConnectorError::from)?;
            *guard = Some(Orgs::read(items));
        }
        Ok(guard)
    }

    /// The `organization_id` to write for `name`: null when empty, the organization's id when
    /// it exists, else the id of a new organization of that name.
    pub(super) async fn id_for(
        &self,
        client: &HttpClient,
        name: &str,
    ) -> Result<Value, ConnectorError> {
        let name = name.trim();
        if name.is_empty() {
            return Ok(Value::Null);
        }
        let mut guard = self.get(client).await?;
        let orgs = guard.get_or_insert_with(Orgs::default);
        if let Some(id) = orgs.by_name.get(&name.to_lowercase()) {
            return Ok(json!(id));
        }
        // Holding the lock while creating: two creates of one new organization never race.
        let req =
            Request::post("api/v2/organizations").json(json!({"organization": {"name": name}}));
        let created = match client.send_json::<Value>(req).await {
            Ok(v) => v,
            Err(e) if e.is_ambiguous() => {
                // The create may have landed: list again rather than create twice.
                tracing::info!("creating the Zendesk organization {name:?}: {e}; listing again");
                let items = list_all(
                    client,
                    Request::get("api/v2/organizations"),
                    "organizations",
                )
                .await?;
                *orgs = Orgs::read(items);
                return match orgs.by_name.get(&name.to_lowercase()) {
                    Some(id) => Ok(json!(id)),
                    None => Err(e.into()),
                };
            }
            Err(e) => return Err(e.into()),
        };
        let id = created
            .pointer("/organization/id")
            .and_then(Value::as_i64)
            .ok_or_else(|| {
                ConnectorError::BadData(format!(
                    "POST /api/v2/organizations answered without `organization.id` for {name:?}"
                ))
            })?;
        tracing::info!("created the Zendesk organization {name:?} (id {id})");
        orgs.add(id, name);
        Ok(json!(id))
    }
}
