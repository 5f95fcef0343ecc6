//! What `headcount state list|show|forget` need from a state, as pure functions: the CLI prints
//! and commits, these only look things up.

use std::collections::BTreeMap;

use serde::Serialize;

use super::error::StateError;
use super::model::{ManagedAccount, Origin, State, StateOp};

/// One managed account, flattened for a table or JSON listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateRow {
    pub sync: String,
    pub target: String,
    pub target_id: String,
    pub identity: BTreeMap<String, String>,
    pub origin: Origin,
}

/// One line of `headcount state list`: `SYNC  TARGET  TARGET_ID  IDENTITY  ORIGIN`, tab-separated
/// so it pipes into `cut` and `column -t`.
/// One tab-separated line per account. Ids and identities come from sources and vendors, so
/// each is escaped ([`crate::util::printable`]): a tab, newline or ESC in one cannot break the
/// columns or reach the terminal.
impl std::fmt::Display for StateRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::util::printable as p;
        let identity: Vec<String> = self
            .identity
            .iter()
            .map(|(k, v)| format!("{}={}", p(k), p(v)))
            .collect();
        let origin = match self.origin {
            Origin::Created => "created",
            Origin::Adopted => "adopted",
        };
        write!(
            f,
            "{}\t{}\t{}\t{}\t{origin}",
            p(&self.sync),
            p(&self.target),
            p(&self.target_id),
            identity.join(",")
        )
    }
}

/// A managed account found by id, with where it lives.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AccountRef<'a> {
    pub sync: &'a str,
    pub target: &'a str,
    pub target_id: &'a str,
    pub account: &'a ManagedAccount,
}

impl State {
    /// Every managed account, ordered by sync then target id.
    pub fn list_rows(&self) -> Vec<StateRow> {
        self.accounts()
            .map(|a| StateRow {
                sync: a.sync.to_string(),
                target: a.target.to_string(),
                target_id: a.target_id.to_string(),
                identity: a.account.identity.clone(),
                origin: a.account.origin,
            })
            .collect()
    }

    /// The account with target id `id` in any sync, or `SYNC/ID` when the same id is managed by
    /// several syncs (for different targets).
    pub fn show_account(&self, id: &str) -> Result<AccountRef<'_>, StateError> {
        let qualified = id.split_once('/');
        let matches: Vec<AccountRef<'_>> = self
            .accounts()
            .filter(|a| a.target_id == id || qualified == Some((a.sync, a.target_id)))
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => {
                let candidates: Vec<String> = self
                    .accounts()
                    .flat_map(|a| {
                        [
                            a.target_id.to_string(),
                            format!("{}/{}", a.sync, a.target_id),
                        ]
                    })
                    .collect();
                let suggestion = crate::util::nearest(id, candidates.iter().map(String::as_str))
                    .map(str::to_string);
                Err(StateError::AccountNotFound {
                    id: id.to_string(),
                    suggestion,
                })
            }
            many => Err(StateError::AmbiguousId {
                id: id.to_string(),
                candidates: many
                    .iter()
                    .map(|a| format!("{}/{}", a.sync, a.target_id))
                    .collect(),
            }),
        }
    }

    /// The op that makes headcount stop managing an account (the account itself is untouched).
    pub fn forget_account(&self, id: &str) -> Result<StateOp, StateError> {
        let a = self.show_account(id)?;
        Ok(StateOp::Remove {
            sync: a.sync.to_string(),
            target_id: a.target_id.to_string(),
        })
    }

    fn accounts(&self) -> impl Iterator<Item = AccountRef<'_>> {
        self.syncs.iter().flat_map(|(sync, s)| {
            s.accounts
                .iter()
                .map(move |(target_id, account)| AccountRef {
                    sync,
                    target: &s.target,
                    target_id,
                    account,
                })
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn account(email: &str) -> ManagedAccount {
        ManagedAccount {
            identity: BTreeMap::from([("email".to_string(), email.to_string())]),
            fields: BTreeMap::new(),
            active: Some(true),
            origin: Origin::Created,
            deactivated_by_headcount: false,
        }
    }

    fn state() -> State {
        let mut s = State::new("L".into());
        for (sync, target, id, email) in [
            ("staff", "mojo", "1001", "a@x"),
            ("staff", "mojo", "1002", "b@x"),
            ("agents", "zendesk", "1001", "c@x"),
            ("agents", "zendesk", "77", "d@x"),
        ] {
            s.apply_op(&StateOp::Upsert {
                sync: sync.into(),
                target: target.into(),
                target_id: id.into(),
                account: account(email),
            });
        }
        s
    }

    #[test]
    fn list_is_sorted_by_sync_then_id() {
        let rows = state().list_rows();
        let keys: Vec<_> = rows
            .iter()
            .map(|r| format!("{}/{}", r.sync, r.target_id))
            .collect();
        assert_eq!(
            keys,
            ["agents/1001", "agents/77", "staff/1001", "staff/1002"]
        );
        assert_eq!(rows[1].identity["email"], "d@x");
        assert_eq!(rows[1].target, "zendesk");
        assert_eq!(
            rows[1].to_string(),
            "agents\tzendesk\t77\temail=d@x\tcreated"
        );
    }

    #[test]
    fn show_by_id_and_by_sync_slash_id() {
        let s = state();
        assert_eq!(
            s.show_account("77").unwrap().account.identity["email"],
            "d@x"
        );
        assert_eq!(s.show_account("staff/1001").unwrap().target, "mojo");
        let e = s.show_account("1001").unwrap_err();
        assert!(matches!(e, StateError::AmbiguousId { .. }), "{e}");
        assert!(e.to_string().contains("agents/1001"), "{e}");
    }

    #[test]
    fn forget_returns_the_remove_op_or_suggests() {
        let s = state();
        assert_eq!(
            s.forget_account("staff/1002").unwrap(),
            StateOp::Remove {
                sync: "staff".into(),
                target_id: "1002".into()
            }
        );
        let e = s.forget_account("1003").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("did you mean `100"), "{text}");
        assert!(text.contains("headcount state list"), "{text}");
    }
}
