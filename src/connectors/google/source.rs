//! `users.list`: every page of the customer's (or domain's) users, one record per user as the
//! Directory API returns it, plus `groups`. Suspended and archived users are records too: the
//! sync decides what they mean (`active: '!user.suspended'`). A read that fails part-way fails
//! whole, never a partial list.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::auth::Account;
use super::errors::explain;
use super::groups::{self, Membership};
use crate::connectors::{ConnectorError, Source, SourceRecord};
use crate::http::{HttpClient, HttpError, Page, Request, Response, paging};

/// Users asked per page: the API's maximum.
pub const MAX_RESULTS: u32 = 500;
/// Members asked per page: the API's maximum.
pub const MEMBERS_MAX_RESULTS: u32 = 200;
pub(super) const USERS_PATH: &str = "admin/directory/v1/users";

/// What the source lists.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub customer: Option<String>,
    pub domain: Option<String>,
    pub query: Option<String>,
    pub custom_field_mask: Option<String>,
    pub groups: Vec<String>,
}

/// The `google_workspace` source.
pub struct GoogleSource {
    client: HttpClient,
    listing: Listing,
    account: Account,
}

impl GoogleSource {
    pub fn new(client: HttpClient, listing: Listing, account: Account) -> Self {
        GoogleSource {
            client,
            listing,
            account,
        }
    }

    pub fn client(&self) -> &HttpClient {
        &self.client
    }

    /// The first `users.list` request: `customer` (default `my_customer`) or `domain`, the
    /// query, 500 a page, `projection=full` (or `custom` with the mask).
    fn first_request(&self) -> Request {
        let l = &self.listing;
        let mut req = Request::get(USERS_PATH);
        req = match (&l.customer, &l.domain) {
            (None, Some(domain)) => req.query("domain", domain.trim()),
            (Some(customer), _) => req.query("customer", customer.trim()),
            (None, None) => req.query("customer", "my_customer"),
        };
        if let Some(q) = &l.query {
            req = req.query("query", q);
        }
        req = req.query("maxResults", MAX_RESULTS);
        match &l.custom_field_mask {
            Some(mask) => req
                .query("projection", "custom")
                .query("customFieldMask", mask.trim()),
            None => req.query("projection", "full"),
        }
    }

    async fn users(&self, first_page_only: bool) -> Result<Vec<Value>, ConnectorError> {
        let first = self.first_request();
        let result = if first_page_only {
            match self.client.send(first.clone()).await {
                Ok(resp) => users_page(&first, resp).map(|p| p.items),
                Err(e) => Err(e),
            }
        } else {
            self.client.collect_pages(first, users_page).await
        };
        result.map_err(|e| explain(e, &self.account))
    }

    async fn records(&self, first_page_only: bool) -> Result<Vec<SourceRecord>, ConnectorError> {
        let users = self.users(first_page_only).await?;
        let membership = if self.listing.groups.is_empty() {
            Membership::default()
        } else {
            groups::resolve(&self.client, &self.listing.groups, first_page_only)
                .await
                .map_err(|e| e.explained(&self.account))?
        };
        Ok(users
            .into_iter()
            .map(|mut user| {
                let groups = membership.groups_of(&user);
                if let Some(obj) = user.as_object_mut() {
                    obj.insert("groups".to_string(), json!(groups));
                }
                let label = user
                    .get("primaryEmail")
                    .and_then(Value::as_str)
                    .or_else(|| user.get("id").and_then(Value::as_str))
                    .unwrap_or("(no primaryEmail)")
                    .to_string();
                SourceRecord { label, data: user }
            })
            .collect())
    }
}

/// A list answer of kind `kind` holding `field`: the items (an absent `field` is an empty
/// list, as Google leaves it out when there is nothing) and `nextPageToken`.
pub(super) fn list_page(
    req: &Request,
    resp: Response,
    kind: &str,
    field: &str,
) -> Result<Page<Value>, HttpError> {
    let bad = |cause: String| HttpError::Decode {
        what: resp.what.clone(),
        cause,
    };
    let expected =
        format!("expected a Directory API list {{\"kind\": \"{kind}\", \"{field}\": [...]}}");
    let v: Value = serde_json::from_slice(&resp.body)
        .map_err(|e| bad(format!("{expected}, got something that is not JSON ({e})")))?;
    let Some(obj) = v.as_object() else {
        return Err(bad(format!("{expected}, got a JSON {}", kind_of(&v))));
    };
    let items = match obj.get(field) {
        Some(Value::Array(items)) => items.clone(),
        None if obj.get("kind").and_then(Value::as_str) == Some(kind) => Vec::new(),
        None => {
            return Err(bad(format!(
                "{expected}, got neither `{field}` nor that `kind`"
            )));
        }
        Some(other) => {
            return Err(bad(format!(
                "{expected}, but `{field}` is a {}",
                kind_of(other)
            )));
        }
    };
    if let Some(i) = items.iter().position(|u| !u.is_object()) {
        return Err(bad(format!(
            "{expected}, but item {i} of `{field}` is not an object"
        )));
    }
    let token = match obj.get("nextPageToken") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.as_str()),
        Some(other) => {
            return Err(bad(format!(
                "`nextPageToken` is a {}, expected a string",
                kind_of(other)
            )));
        }
    };
    Ok(Page {
        next: paging::next_by_cursor(req, "pageToken", token),
        items,
    })
}

fn users_page(req: &Request, resp: Response) -> Result<Page<Value>, HttpError> {
    list_page(req, resp, "admin#directory#users", "users")
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

#[async_trait]
impl Source for GoogleSource {
    async fn read(&self) -> Result<Vec<SourceRecord>, ConnectorError> {
        self.records(false).await
    }

    /// The first page of users and the first page of each configured group.
    async fn probe(&self) -> Result<Vec<SourceRecord>, ConnectorError> {
        self.records(true).await
    }
}
