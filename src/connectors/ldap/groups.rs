//! The `groups` option: which of the configured groups each entry is a direct member of,
//! read from the user's `memberOf` (default) or from the groups' `member` / `uniqueMember`
//! lists. A configured group that does not exist is an error (a typo would otherwise look like
//! "everyone left the group"); a member DN that points at no entry read is ignored with a
//! warning. Nested groups are not expanded here: on Active Directory, put the in-chain rule in
//! `filter` (`(memberOf:1.2.840.113556.1.4.1941:=<group DN>)`).

use std::collections::HashSet;

use ldap3::{Scope, SearchEntry};
use serde_json::Value;

use super::GroupMembership;
use super::session::{Search, Session};
use crate::model::ConnectorError;

/// One configured group, resolved.
struct Group {
    /// As written in `groups`: what records carry.
    name: String,
    dn: String,
    /// Normalised member DNs (`member`/`unique_member` modes).
    members: HashSet<String>,
}

/// The configured groups, resolved against the directory.
pub(super) struct Groups {
    mode: GroupMembership,
    groups: Vec<Group>,
}

/// The attribute a group lists its members in, for the list modes.
fn member_attr(mode: GroupMembership) -> Option<&'static str> {
    match mode {
        GroupMembership::MemberOf => None,
        GroupMembership::Member => Some("member"),
        GroupMembership::UniqueMember => Some("uniqueMember"),
    }
}

/// A DN compared case-insensitively and without the spaces some servers put after commas.
pub(super) fn normalise_dn(dn: &str) -> String {
    let lower = dn.trim().to_lowercase();
    let mut out = String::with_capacity(lower.len());
    let mut skip_space = false;
    for c in lower.chars() {
        if skip_space && c == ' ' {
            continue;
        }
        skip_space = c == ',' || c == '=';
        if c == '=' || c == ',' {
            while out.ends_with(' ') {
                out.pop();
            }
        }
        out.push(c);
    }
    out
}

/// A `uniqueMember` value may end with an optional UID (`dn#'0101'B`): the DN part.
fn strip_uid(value: &str) -> &str {
    match value.rfind("#'") {
        Some(i) if value.ends_with("'B") => &value[..i],
        _ => value,
    }
}

/// Where groups named by CN are looked up when `group_base_dn` is not set: the parent of
/// `base_dn` (`ou=people,dc=example,dc=com` → `dc=example,dc=com`).
pub(super) fn default_group_base(base_dn: &str) -> String {
    let mut escaped = false;
    for (i, c) in base_dn.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            ',' if !escaped => return base_dn[i + 1..].trim().to_string(),
            _ => escaped = false,
        }
    }
    base_dn.to_string()
}

impl Groups {
    /// No groups configured: every record gets `groups: []`.
    pub(super) fn none() -> Groups {
        Groups {
            mode: GroupMembership::MemberOf,
            groups: Vec::new(),
        }
    }

    /// Looks up every configured group (and, in the list modes, its members).
    pub(super) async fn resolve(
        session: &mut Session<'_>,
        names: &[String],
        mode: GroupMembership,
        group_base: &str,
        page_size: u32,
    ) -> Result<Groups, ConnectorError> {
        let attr = member_attr(mode);
        let attrs: Vec<String> = vec![attr.unwrap_or("1.1").to_string()];
        let mut groups = Vec::new();
        for name in names {
            let entry = if name.contains('=') {
                session.lookup(name, &attrs).await?.ok_or_else(|| {
                    ConnectorError::NotFound {
                        message: format!(
                            "the group `{name}` in `groups` does not exist in the directory; check its DN (nothing is planned, so nobody is removed because of it)"
                        ),
                    }
                })?
            } else {
                let filter = format!(
                    "(&(cn={})(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=group)))",
                    ldap3::ldap_escape(name)
                );
                let search = Search {
                    base: group_base,
                    scope: Scope::Subtree,
                    filter: &filter,
                    attrs: &attrs,
                };
                let mut found = session.search(&search, page_size, false).await?;
                match found.len() {
                    1 => found.remove(0),
                    0 => {
                        return Err(ConnectorError::NotFound {
                            message: format!(
                                "the group `{name}` in `groups` was not found below `{group_base}`; check the name, write its DN, or set `group_base_dn`"
                            ),
                        });
                    }
                    n => {
                        let dns: Vec<&str> = found.iter().take(3).map(|e| e.dn.as_str()).collect();
                        return Err(ConnectorError::Config(format!(
                            "the group `{name}` in `groups` names {n} groups below `{group_base}` ({}); write the DN of the one you mean",
                            dns.join("; ")
                        )));
                    }
                }
            };
            groups.push(Group {
                name: name.clone(),
                dn: normalise_dn(&entry.dn),
                members: members(&entry, attr)?,
            });
        }
        Ok(Groups { mode, groups })
    }

    /// The configured groups (as written) `entry` is a member of. Active Directory hands the
    /// `memberOf` of a user in very many groups out in ranges (`memberOf;range=0-1499`), which
    /// is not followed: an error, never a partial (or empty) membership that would remove
    /// access.
    pub(super) fn of(&self, entry: &SearchEntry) -> Result<Value, ConnectorError> {
        let names: Vec<Value> = match self.mode {
            GroupMembership::MemberOf => {
                if entry
                    .attrs
                    .keys()
                    .any(|k| k.to_ascii_lowercase().starts_with("memberof;range="))
                {
                    return Err(ConnectorError::Rejected {
                        status: None,
                        vendor: None,
                        message: format!(
                            "`{}` is in too many groups for the server to list its `memberOf` at once (ranged retrieval); use `group_membership: member` for these groups",
                            entry.dn
                        ),
                    });
                }
                let member_of: HashSet<String> = entry
                    .attrs
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case("memberOf"))
                    .flat_map(|(_, v)| v.iter().map(|dn| normalise_dn(dn)))
                    .collect();
                self.groups
                    .iter()
                    .filter(|g| member_of.contains(&g.dn))
                    .map(|g| Value::String(g.name.clone()))
                    .collect()
            }
            _ => {
                let dn = normalise_dn(&entry.dn);
                self.groups
                    .iter()
                    .filter(|g| g.members.contains(&dn))
                    .map(|g| Value::String(g.name.clone()))
                    .collect()
            }
        };
        Ok(Value::Array(names))
    }

    /// One warning per group listing members that are not among the entries read: a DN that
    /// points at nothing, or an entry outside `base_dn`/`filter`. They are ignored.
    pub(super) fn unmatched(&self, read: &HashSet<String>) -> Vec<String> {
        let mut out = Vec::new();
        for g in &self.groups {
            let mut missing: Vec<&str> = g
                .members
                .iter()
                .filter(|m| !read.contains(*m))
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                continue;
            }
            missing.sort_unstable();
            let shown: Vec<&str> = missing.iter().take(5).copied().collect();
            out.push(format!(
                "group `{}` lists {} member(s) that are not among the entries read (a DN that points at nothing, or an entry outside `base_dn`/`filter`); ignored: {}{}",
                g.name,
                missing.len(),
                shown.join("; "),
                if missing.len() > shown.len() { "; ..." } else { "" }
            ));
        }
        out
    }
}

/// A group's normalised member DNs. Active Directory hands large groups out in ranges
/// (`member;range=0-1499`), which this mode does not follow: an error rather than a partial
/// membership.
fn members(entry: &SearchEntry, attr: Option<&str>) -> Result<HashSet<String>, ConnectorError> {
    let Some(attr) = attr else {
        return Ok(HashSet::new());
    };
    let prefix = format!("{};range=", attr.to_ascii_lowercase());
    if entry
        .attrs
        .keys()
        .any(|k| k.to_ascii_lowercase().starts_with(&prefix))
    {
        return Err(ConnectorError::Rejected {
            status: None,
            vendor: None,
            message: format!(
                "the group `{}` is too large for the server to list its `{attr}` values at once (ranged retrieval); use `group_membership: member_of` for it",
                entry.dn
            ),
        });
    }
    Ok(entry
        .attrs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(attr))
        .flat_map(|(_, v)| v.iter().map(|m| normalise_dn(strip_uid(m))))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_compare_without_case_or_spaces_after_commas() {
        assert_eq!(
            normalise_dn("UID=Alice, OU=People ,DC=Example,DC=com"),
            "uid=alice,ou=people,dc=example,dc=com"
        );
        assert_eq!(strip_uid("uid=a,dc=x#'0101'B"), "uid=a,dc=x");
        assert_eq!(strip_uid("uid=a#b,dc=x"), "uid=a#b,dc=x");
    }

    #[test]
    fn the_default_group_base_is_the_parent_of_base_dn() {
        assert_eq!(
            default_group_base("ou=people,dc=example,dc=com"),
            "dc=example,dc=com"
        );
        assert_eq!(default_group_base("ou=a\\,b,dc=x"), "dc=x");
        assert_eq!(default_group_base("dc=com"), "dc=com");
    }

    #[test]
    fn ranged_member_lists_are_refused() {
        let entry = SearchEntry {
            dn: "cn=big,dc=x".to_string(),
            attrs: [("member;range=0-1499".to_string(), vec!["cn=a".to_string()])]
                .into_iter()
                .collect(),
            bin_attrs: Default::default(),
        };
        let err = members(&entry, Some("member")).unwrap_err().to_string();
        assert!(err.contains("member_of"), "{err}");
    }

    /// A user whose `memberOf` comes in ranges is an error, never "in no group" (which would
    /// remove their access).
    #[test]
    fn a_ranged_member_of_is_refused_not_read_as_no_groups() {
        let groups = Groups {
            mode: GroupMembership::MemberOf,
            groups: vec![Group {
                name: "staff".to_string(),
                dn: "cn=staff,dc=x".to_string(),
                members: HashSet::new(),
            }],
        };
        let entry = SearchEntry {
            dn: "uid=busy,dc=x".to_string(),
            attrs: [(
                "memberOf;range=0-1499".to_string(),
                vec!["cn=staff,dc=x".to_string()],
            )]
            .into_iter()
            .collect(),
            bin_attrs: Default::default(),
        };
        let err = groups.of(&entry).unwrap_err().to_string();
        assert!(
            err.contains("uid=busy") && err.contains("memberOf"),
            "{err}"
        );
        let plain = SearchEntry {
            dn: "uid=a,dc=x".to_string(),
            attrs: [("memberOf".to_string(), vec!["CN=Staff, DC=x".to_string()])]
                .into_iter()
                .collect(),
            bin_attrs: Default::default(),
        };
        assert_eq!(groups.of(&plain).unwrap(), serde_json::json!(["staff"]));
    }
}
