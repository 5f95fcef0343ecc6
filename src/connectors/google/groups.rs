//! `user.groups`: which configured groups each user is in, nested groups included. Each
//! group's members are listed once per read (a group nested under two configured groups is
//! not listed twice), and a cycle (A in B in A) ends where it started.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;

use super::auth::Account;
use super::errors::explain;
use super::source::{MEMBERS_MAX_RESULTS, list_page};
use crate::connectors::ConnectorError;
use crate::http::{HttpClient, HttpError, Request};

/// Who is in one configured group, all nesting flattened.
#[derive(Debug, Default)]
struct Closure {
    /// The group's email as configured (what `user.groups` holds).
    email: String,
    ids: HashSet<String>,
    emails: HashSet<String>,
    /// A `CUSTOMER` member: everyone in the account is in.
    everyone: bool,
}

/// The configured groups' flattened memberships.
#[derive(Debug, Default)]
pub(super) struct Membership {
    groups: Vec<Closure>,
}

impl Membership {
    /// The configured groups `user` is in, in configured order.
    pub(super) fn groups_of(&self, user: &Value) -> Vec<String> {
        let id = user.get("id").and_then(Value::as_str);
        let mut emails: Vec<String> = Vec::new();
        if let Some(e) = user.get("primaryEmail").and_then(Value::as_str) {
            emails.push(e.trim().to_lowercase());
        }
        if let Some(aliases) = user.get("aliases").and_then(Value::as_array) {
            emails.extend(
                aliases
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|a| a.trim().to_lowercase()),
            );
        }
        self.groups
            .iter()
            .filter(|g| {
                g.everyone
                    || id.is_some_and(|id| g.ids.contains(id))
                    || emails.iter().any(|e| g.emails.contains(e))
            })
            .map(|g| g.email.clone())
            .collect()
    }
}

/// A failure while listing members: which group, and the HTTP error.
pub(super) struct GroupError {
    group: String,
    nested_in: Option<String>,
    error: HttpError,
}

impl GroupError {
    pub(super) fn explained(self, account: &Account) -> ConnectorError {
        let where_ = match &self.nested_in {
            Some(parent) => format!("group {} (nested in {parent})", self.group),
            None => format!("group {} (in `groups`)", self.group),
        };
        if self.error.status() == Some(404) {
            return ConnectorError::NotFound {
                message: format!(
                    "{where_} does not exist, or {} cannot see it: check the group's email \
                     ({})",
                    account.subject, self.error
                ),
            };
        }
        match explain(self.error, account) {
            ConnectorError::Permission { message } => ConnectorError::Permission {
                message: format!("listing the members of {where_}: {message}"),
            },
            ConnectorError::Auth { message } => ConnectorError::Auth {
                message: format!("listing the members of {where_}: {message}"),
            },
            other => other,
        }
    }
}

/// One member as `members.list` gives it.
#[derive(Debug, Clone)]
struct Member {
    kind: String,
    email: Option<String>,
    id: Option<String>,
}

fn member(v: &Value) -> Member {
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(|t| t.trim().to_string())
    };
    Member {
        kind: s("type").unwrap_or_default().to_ascii_uppercase(),
        email: s("email").map(|e| e.to_lowercase()),
        id: s("id"),
    }
}

/// A group key in a URL path: emails are safe as they are; anything else is percent-encoded.
fn path_segment(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'-' | b'@' | b'+' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn members(
    client: &HttpClient,
    group: &str,
    first_page_only: bool,
) -> Result<Vec<Member>, HttpError> {
    let first = Request::get(format!(
        "admin/directory/v1/groups/{}/members",
        path_segment(group)
    ))
    .query("maxResults", MEMBERS_MAX_RESULTS);
    let page = |req: &Request, resp| list_page(req, resp, "admin#directory#members", "members");
    let items = if first_page_only {
        let resp = client.send(first.clone()).await?;
        page(&first, resp)?.items
    } else {
        client.collect_pages(first, page).await?
    };
    Ok(items.iter().map(member).collect())
}

/// Lists the members of `roots` and every group nested in them, each group once.
/// `first_page_only` (probe): the first page of each configured group, no nesting.
pub(super) async fn resolve(
    client: &HttpClient,
    roots: &[String],
    first_page_only: bool,
) -> Result<Membership, GroupError> {
    let mut listed: HashMap<String, Vec<Member>> = HashMap::new();
    let mut out = Membership::default();
    for root in roots {
        let root_key = root.trim().to_lowercase();
        let mut closure = Closure {
            email: root.trim().to_string(),
            ..Closure::default()
        };
        let mut seen: BTreeSet<String> = BTreeSet::from([root_key.clone()]);
        let mut stack: Vec<(String, Option<String>)> = vec![(root_key, None)];
        while let Some((group, parent)) = stack.pop() {
            if !listed.contains_key(&group) {
                let found = members(client, &group, first_page_only)
                    .await
                    .map_err(|error| GroupError {
                        group: group.clone(),
                        nested_in: parent.clone(),
                        error,
                    })?;
                listed.insert(group.clone(), found);
            }
            for m in listed.get(&group).into_iter().flatten() {
                match m.kind.as_str() {
                    "GROUP" => {
                        if let Some(e) = &m.email
                            && !first_page_only
                            && seen.insert(e.clone())
                        {
                            stack.push((e.clone(), Some(group.clone())));
                        }
                    }
                    "CUSTOMER" => closure.everyone = true,
                    _ => {
                        if let Some(id) = &m.id {
                            closure.ids.insert(id.clone());
                        }
                        if let Some(e) = &m.email {
                            closure.emails.insert(e.clone());
                        }
                    }
                }
            }
        }
        out.groups.push(closure);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_keys_are_safe_in_a_path() {
        assert_eq!(path_segment("support+eu@x.io"), "support+eu@x.io");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
