//! `plan --base GITREF`: separate what a config change causes from what is pending anyway
//! (SPEC section 8). Pure: two plans over the same data in, a comparison out.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::plan::{Action, BaseComparison, CausedChanges, Change, SyncPlan};

fn key(sync: &str, c: &Change) -> (String, Action, String) {
    let who = c
        .target_id
        .clone()
        .or_else(|| c.identity.values().next().cloned())
        .unwrap_or_default();
    (sync.to_string(), c.action, who)
}

/// Compares the plan of the current config (`head`) with the plan of the config at `gitref`
/// (`base`), both made from the same snapshot.
pub fn compare(gitref: &str, commit: &str, head: &[SyncPlan], base: &[SyncPlan]) -> BaseComparison {
    let base_changes: HashMap<(String, Action, String), &Change> = base
        .iter()
        .flat_map(|s| s.changes.iter().map(move |c| (key(&s.name, c), c)))
        .collect();
    let head_keys: std::collections::HashSet<(String, Action, String)> = head
        .iter()
        .flat_map(|s| s.changes.iter().map(move |c| key(&s.name, c)))
        .collect();
    let mut caused = Vec::new();
    let mut pending = 0;
    // For effects: only the fields that differ from what the base config would write.
    let mut caused_fields: Vec<Change> = Vec::new();
    for sync in head {
        let mut changes = Vec::new();
        for c in &sync.changes {
            match base_changes.get(&key(&sync.name, c)) {
                Some(b) if b.fields == c.fields && b.active == c.active => pending += 1,
                Some(b) => {
                    let mut own = c.clone();
                    own.fields.retain(|name, d| b.fields.get(name) != Some(d));
                    if own.fields.is_empty() && b.active != c.active {
                        own.action = Action::Update;
                    }
                    caused_fields.push(own);
                    changes.push(c.clone());
                }
                None => {
                    caused_fields.push(c.clone());
                    changes.push(c.clone());
                }
            }
        }
        if !changes.is_empty() {
            caused.push(CausedChanges {
                sync: sync.name.clone(),
                changes,
            });
        }
    }
    let mut prevented = Vec::new();
    for sync in base {
        let changes: Vec<Change> = sync
            .changes
            .iter()
            .filter(|c| !head_keys.contains(&key(&sync.name, c)))
            .cloned()
            .collect();
        if !changes.is_empty() {
            prevented.push(CausedChanges {
                sync: sync.name.clone(),
                changes,
            });
        }
    }
    BaseComparison {
        gitref: gitref.to_string(),
        commit: commit.to_string(),
        effects: effects(&caused_fields, &prevented),
        caused,
        prevented,
        pending,
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "account" } else { "accounts" }
}

fn short(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "(unset)".to_string(),
        other => other.to_string(),
    }
}

/// Sentences such as "moves 12 accounts from user to technician (role)".
fn effects(caused: &[Change], prevented: &[CausedChanges]) -> Vec<String> {
    let mut by_action: BTreeMap<Action, usize> = BTreeMap::new();
    let mut moves: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for c in caused {
        if c.action == Action::Update || c.action == Action::Adopt {
            for (field, d) in &c.fields {
                if d.sensitive {
                    continue;
                }
                *moves
                    .entry((field.clone(), short(&d.before), short(&d.after)))
                    .or_default() += 1;
            }
            if c.fields.is_empty() {
                *by_action.entry(c.action).or_default() += 1;
            }
        } else {
            *by_action.entry(c.action).or_default() += 1;
        }
    }
    let mut out: Vec<String> = by_action
        .into_iter()
        .map(|(a, n)| {
            let verb = match a {
                Action::Create => "creates",
                Action::Update => "updates",
                Action::Deactivate => "deactivates",
                Action::Reactivate => "reactivates",
                Action::Delete => "deletes",
                Action::Adopt => "adopts",
                Action::Forget => "stops managing",
            };
            format!("{verb} {n} {}", plural(n))
        })
        .collect();
    let mut moves: Vec<_> = moves.into_iter().collect();
    moves.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    for ((field, before, after), n) in moves {
        out.push(format!(
            "moves {n} {} from {before} to {after} ({field})",
            plural(n)
        ));
    }
    let prevented_n: usize = prevented.iter().map(|s| s.changes.len()).sum();
    if prevented_n > 0 {
        out.push(format!(
            "avoids {prevented_n} change{} the base config would make",
            if prevented_n == 1 { "" } else { "s" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{FieldDiff, Summary};
    use serde_json::json;

    fn change(action: Action, id: &str, field: Option<(&str, &str, &str)>) -> Change {
        Change {
            action,
            identity: BTreeMap::from([("email".to_string(), format!("{id}@x.com"))]),
            target_id: Some(id.to_string()),
            fields: field
                .map(|(f, b, a)| {
                    BTreeMap::from([(
                        f.to_string(),
                        FieldDiff {
                            before: json!(b),
                            after: json!(a),
                            sensitive: false,
                        },
                    )])
                })
                .unwrap_or_default(),
            active: None,
            live_fingerprint: None,
            removal: false,
            notes: vec![],
        }
    }

    fn sync(changes: Vec<Change>) -> SyncPlan {
        SyncPlan {
            name: "staff".into(),
            source: "hr".into(),
            target: "hd".into(),
            summary: Summary::default(),
            changes,
            invalid: vec![],
            conflicts: vec![],
            errors: vec![],
            guard_blocked: false,
        }
    }

    #[test]
    fn separates_config_effects_from_pending_source_changes() {
        // Pending in both: a rename from the source. Caused by the config: 2 role moves and a
        // deactivation. Prevented: a delete the old config would do.
        let head = vec![sync(vec![
            change(Action::Update, "1", Some(("first_name", "Ann", "Anne"))),
            change(Action::Update, "2", Some(("role", "user", "technician"))),
            change(Action::Update, "3", Some(("role", "user", "technician"))),
            change(Action::Deactivate, "4", None),
        ])];
        let base = vec![sync(vec![
            change(Action::Update, "1", Some(("first_name", "Ann", "Anne"))),
            change(Action::Delete, "5", None),
        ])];
        let cmp = compare("origin/main", "abc", &head, &base);
        assert_eq!(cmp.pending, 1);
        assert_eq!(cmp.caused[0].changes.len(), 3);
        assert_eq!(cmp.prevented[0].changes.len(), 1);
        assert_eq!(
            cmp.effects,
            vec![
                "deactivates 1 account",
                "moves 2 accounts from user to technician (role)",
                "avoids 1 change the base config would make"
            ]
        );
    }

    #[test]
    fn same_config_causes_nothing() {
        let plan = vec![sync(vec![change(
            Action::Update,
            "1",
            Some(("role", "user", "admin")),
        )])];
        let cmp = compare("HEAD", "abc", &plan, &plan);
        assert!(cmp.caused.is_empty() && cmp.prevented.is_empty() && cmp.effects.is_empty());
        assert_eq!(cmp.pending, 1);
    }
}
