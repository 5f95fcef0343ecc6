//! The `entra_guests` target: B2B guest users of a tenant, invited through Graph.
//!
//! * `list` reads `GET /users?$filter=userType eq 'Guest'` (every `@odata.nextLink`).
//! * A guest's `email` is, in order: its `mail`; else the first of its `otherMails`; else the
//!   address in its `#EXT#` user principal name (`jane_partner.example#EXT#@tenant...` →
//!   `jane@partner.example`: the last `_` before `#EXT#` was the `@`).
//! * create = `POST /invitations` (`invitedUserEmailAddress`, `invitedUserDisplayName`,
//!   `inviteRedirectUrl`, `sendInvitationMessage` = `on_create.notify`); the guest's id is the
//!   answer's `invitedUser.id`. An invitation whose answer was lost is looked up by email
//!   (`$filter=mail eq '...'`) before it is ever sent again, so no second guest is made.
//!   Before the first invitation the email is looked up too: Graph answers an invitation of an
//!   existing guest with that guest, which would take over an account made after the plan;
//!   found, the create fails naming it (one more request per create, for ownership).
//! * `display_name` updates and deactivate/reactivate are `PATCH /users/{id}`
//!   (`displayName`, `accountEnabled`); `removed: delete` is `DELETE /users/{id}` (a guest
//!   already gone counts as deleted).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::graph::{GraphClient, Need};
use super::source::odata_string;
use crate::connectors::{ApplyOptions, ConnectorError, LiveAccount, OpResult, Target, TargetOp};
use crate::http::Request;

/// Where a guest lands after redeeming an invitation when `redirect_url` is not set.
pub const DEFAULT_REDIRECT_URL: &str = "https://myapplications.microsoft.com";
/// The guest properties read.
pub(super) const GUEST_SELECT: &str =
    "id,mail,otherMails,userPrincipalName,displayName,accountEnabled,userType";
/// Invitations resent after a lost answer and a lookup that found nothing.
const CREATE_ATTEMPTS: u32 = 3;

/// A guest's email, by the rule in the module documentation.
pub fn guest_email(user: &Value) -> Option<String> {
    let non_empty = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    if let Some(mail) = non_empty(user.get("mail")) {
        return Some(mail);
    }
    if let Some(other) = user
        .get("otherMails")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find_map(|v| non_empty(Some(v))))
    {
        return Some(other);
    }
    let upn = non_empty(user.get("userPrincipalName"))?;
    let (local, _) = upn.split_once("#EXT#")?;
    let (name, domain) = local.rsplit_once('_')?;
    (!name.is_empty() && !domain.is_empty()).then(|| format!("{name}@{domain}"))
}

/// The `entra_guests` target.
pub struct EntraGuestsTarget {
    graph: GraphClient,
    redirect_url: String,
}

impl EntraGuestsTarget {
    pub fn new(graph: GraphClient, redirect_url: Option<String>) -> EntraGuestsTarget {
        EntraGuestsTarget {
            graph,
            redirect_url: redirect_url.unwrap_or_else(|| DEFAULT_REDIRECT_URL.to_string()),
        }
    }

    pub fn graph(&self) -> &GraphClient {
        &self.graph
    }

    fn to_live(user: &Value) -> Result<LiveAccount, ConnectorError> {
        let id = user
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ConnectorError::BadData(
                    "GET /users returned a guest without an `id`: not a user object".to_string(),
                )
            })?;
        let text = |k: &str| {
            user.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map_or(Value::Null, |s| json!(s))
        };
        Ok(LiveAccount {
            id: id.to_string(),
            active: user
                .get("accountEnabled")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            fields: BTreeMap::from([
                (
                    "email".to_string(),
                    guest_email(user).map_or(Value::Null, Value::String),
                ),
                ("display_name".to_string(), text("displayName")),
            ]),
        })
    }

    async fn guests(&self, filter: String) -> Result<Vec<LiveAccount>, ConnectorError> {
        let req = Request::get("users")
            .query("$filter", filter)
            .query("$select", GUEST_SELECT)
            .query("$top", super::source::PAGE_SIZE);
        let (users, _) = self.graph.pages(req, Need::WriteGuests).await?;
        users.iter().map(Self::to_live).collect()
    }

    /// The guest invited with `email`, if there is one (after a lost invitation answer).
    async fn find_by_email(&self, email: &str) -> Result<Option<String>, ConnectorError> {
        let found = self
            .guests(format!("mail eq {}", odata_string(email)))
            .await?;
        Ok(found.into_iter().next().map(|a| a.id))
    }

    async fn create(
        &self,
        fields: &BTreeMap<String, Value>,
        active: bool,
        notify: bool,
    ) -> OpResult {
        let email = fields
            .get("email")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .ok_or_else(|| {
                ConnectorError::rejected(
                    "a guest invitation needs `email`: map it in the sync's fields",
                )
            })?
            .to_string();
        let mut body = json!({
            "invitedUserEmailAddress": email,
            "inviteRedirectUrl": self.redirect_url,
            "sendInvitationMessage": notify,
            "invitedUserType": "Guest",
        });
        if let Some(name) = fields.get("display_name").and_then(Value::as_str) {
            body["invitedUserDisplayName"] = json!(name);
        }
        // Graph answers an invitation of someone who is already a guest with that guest, so
        // inviting would silently take over an account made after the plan (the plan would
        // have shown it as an adoption, for review). Asked first; found, the create fails.
        // Nothing is sent when the question cannot be answered; the refusal says so (and
        // settles the create's intent: no guest was invited by this create).
        let existing = self.find_by_email(&email).await.map_err(|e| {
            ConnectorError::rejected(format!(
                "not invited: looking {email} up among the guests first failed ({e}); nothing was sent"
            ))
        })?;
        if let Some(existing) = existing {
            return Err(ConnectorError::rejected(format!(
                "{email} is already a guest in the tenant (id {existing}), invited after the plan was made. It is not taken over silently; run plan again, which shows it as an adoption to review"
            )));
        }
        let mut last = None;
        let mut id = None;
        for _ in 0..CREATE_ATTEMPTS {
            match self
                .graph
                .http()
                .send(Request::post("invitations").json(body.clone()))
                .await
            {
                Ok(resp) => {
                    let v: Value = serde_json::from_slice(&resp.body).unwrap_or_default();
                    match v.pointer("/invitedUser/id").and_then(Value::as_str) {
                        Some(found) => id = Some(found.to_string()),
                        None => {
                            id = Some(self.find_by_email(&email).await?.ok_or_else(|| {
                                ConnectorError::BadData(format!(
                                    "POST /invitations answered {} without `invitedUser.id`, and no guest {email} is found",
                                    resp.status
                                ))
                            })?);
                        }
                    }
                    break;
                }
                Err(e) if e.is_ambiguous() => {
                    tracing::info!("invitation of {email}: {e}; looking the guest up by email");
                    match self.find_by_email(&email).await {
                        Ok(Some(found)) => {
                            id = Some(found);
                            break;
                        }
                        Ok(None) => last = Some(e),
                        Err(lookup) => {
                            return Err(ConnectorError::Ambiguous {
                                what: format!("POST /invitations ({email})"),
                                cause: format!(
                                    "looking the guest up failed: {lookup}; run plan again before retrying"
                                ),
                            });
                        }
                    }
                }
                Err(e) => {
                    return Err(self.graph.error(e, Need::WriteGuests));
                }
            }
        }
        let Some(id) = id else {
            return Err(last.map(ConnectorError::from).unwrap_or_else(|| {
                ConnectorError::Unavailable(format!(
                    "invitation of {email} failed {CREATE_ATTEMPTS} times"
                ))
            }));
        };
        if !active {
            // The guest exists now: whatever happens to the disable, this create must not be
            // reported as never made. Unknown outcome keeps its intent, and the next run finds
            // the guest by email and plans the deactivation.
            self.patch(
                &id,
                Map::from_iter([("accountEnabled".to_string(), json!(false))]),
            )
            .await
            .map_err(|e| ConnectorError::Ambiguous {
                what: format!("inviting {email} (created inactive)"),
                cause: format!(
                    "the guest {id} was invited, but disabling it failed: {e}; the next plan deactivates it"
                ),
            })?;
        }
        Ok(id)
    }

    async fn patch(&self, id: &str, body: Map<String, Value>) -> OpResult {
        if body.is_empty() {
            return Ok(id.to_string());
        }
        // Setting values is safe to resend.
        let req = Request::patch(format!("users/{}", crate::http::path_segment(id)))
            .json(Value::Object(body))
            .idempotent(true);
        self.graph.send(req, Need::WriteGuests).await?;
        Ok(id.to_string())
    }

    async fn modify(
        &self,
        id: &str,
        fields: &BTreeMap<String, Value>,
        active: Option<bool>,
    ) -> OpResult {
        let mut body = Map::new();
        if let Some(name) = fields.get("display_name") {
            body.insert("displayName".to_string(), name.clone());
        }
        if let Some(a) = active {
            body.insert("accountEnabled".to_string(), json!(a));
        }
        self.patch(id, body).await
    }

    async fn delete(&self, id: &str) -> OpResult {
        match self
            .graph
            .send(
                Request::delete(format!("users/{}", crate::http::path_segment(id))),
                Need::WriteGuests,
            )
            .await
        {
            Ok(_) | Err(ConnectorError::NotFound { .. }) => Ok(id.to_string()),
            Err(e) => Err(e),
        }
    }

    async fn run(&self, op: &TargetOp) -> OpResult {
        match op {
            TargetOp::Create {
                fields,
                active,
                notify,
            } => self.create(fields, *active, *notify).await,
            TargetOp::Modify {
                id, fields, active, ..
            } => self.modify(id, fields, *active).await,
            TargetOp::Delete { id } => self.delete(id).await,
        }
    }
}

#[async_trait]
impl Target for EntraGuestsTarget {
    async fn list(&self) -> Result<Vec<LiveAccount>, ConnectorError> {
        self.guests("userType eq 'Guest'".to_string()).await
    }

    /// By `mail` when the identity has an email; when no guest has that `mail` (the email may
    /// be in `otherMails` or the `#EXT#` name only), every guest, for the caller to narrow.
    async fn find(
        &self,
        identity: &BTreeMap<String, String>,
    ) -> Result<Vec<LiveAccount>, ConnectorError> {
        if let Some(email) = identity.get("email") {
            let found = self
                .guests(format!("mail eq {}", odata_string(email)))
                .await?;
            if !found.is_empty() {
                return Ok(found);
            }
        }
        self.list().await
    }

    fn write_window(&self) -> crate::connectors::WriteWindow {
        self.graph.http().write_window()
    }

    async fn apply(
        &self,
        ops: &[TargetOp],
        opts: &ApplyOptions,
        done: &(dyn Fn(usize, OpResult) + Send + Sync),
    ) -> Result<(), ConnectorError> {
        crate::connectors::for_each_op(ops, opts, |_, op| self.run(op), done).await;
        Ok(())
    }

    fn http_stats(&self) -> Option<crate::http::HttpStats> {
        Some(self.graph.http().stats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_email_is_mail_then_other_mails_then_the_ext_upn() {
        assert_eq!(
            guest_email(&json!({"mail": "a@x.io", "otherMails": ["b@y.io"]})).as_deref(),
            Some("a@x.io")
        );
        assert_eq!(
            guest_email(&json!({"mail": null, "otherMails": ["", "b@y.io"]})).as_deref(),
            Some("b@y.io")
        );
        assert_eq!(
            guest_email(
                &json!({"userPrincipalName": "jane_doe_partner.example#EXT#@t.onmicrosoft.com"})
            )
            .as_deref(),
            Some("jane_doe@partner.example")
        );
        assert_eq!(
            guest_email(&json!({"userPrincipalName": "member@t.onmicrosoft.com"})),
            None
        );
    }
}
