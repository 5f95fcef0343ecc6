//! From source records to desired accounts (SPEC section 6): filter with `where`, evaluate
//! `fields` and `active`, coerce values to what the target holds, normalise identities, and set
//! aside invalid records and identity conflicts.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::SyncSpec;
use super::values;
use crate::model::SourceRecord;
use crate::model::{FieldSpec, IdentityNorm};
use crate::plan::{Conflict, Invalid, SyncPlan};

/// What one in-scope record asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Desired {
    /// The record's label (`row 7`).
    pub label: String,
    /// Identity field → normalised value, only for keys the record has a value for. The first
    /// identity key is always present.
    pub identity: BTreeMap<String, String>,
    /// Every mapped field, coerced (sensitive values in clear: they never leave memory).
    pub fields: BTreeMap<String, Value>,
    pub active: bool,
}

impl Desired {
    /// The value of the first identity key: how the account is named in plans.
    pub(crate) fn primary(&self, spec: &SyncSpec) -> &str {
        spec.identity
            .first()
            .and_then(|k| self.identity.get(k))
            .map(String::as_str)
            .unwrap_or_default()
    }
}

/// The outcome of evaluating all records of a sync.
#[derive(Debug, Default)]
pub(crate) struct DesiredSet {
    pub accounts: Vec<Desired>,
    pub invalid: Vec<Invalid>,
    pub conflicts: Vec<Conflict>,
    /// Identity values (key, normalised value) of records that were skipped: accounts they may
    /// refer to are never removed because of them.
    pub held_back: Vec<(String, String)>,
}

/// Field specs of the sync's mapped fields, looked up once.
pub(crate) fn field_specs(spec: &SyncSpec) -> BTreeMap<String, FieldSpec> {
    spec.fields
        .iter()
        .filter_map(|(name, _)| {
            spec.target_fields
                .lookup(name)
                .ok()
                .map(|f| (name.clone(), f))
        })
        .collect()
}

/// Evaluates every record.
pub(crate) fn evaluate(spec: &SyncSpec, records: &[SourceRecord]) -> DesiredSet {
    let specs = field_specs(spec);
    let mut out = DesiredSet::default();
    let mut candidates = Vec::new();
    for record in records {
        match evaluate_one(spec, &specs, record) {
            Ok(Some(d)) => candidates.push(d),
            Ok(None) => {}
            Err((reason, identity)) => {
                out.held_back.extend(identity);
                out.invalid.push(Invalid {
                    record: record.label.clone(),
                    reason,
                });
            }
        }
    }

    // Two records with the same value for any identity key: all of them are skipped.
    let mut conflicted = vec![false; candidates.len()];
    for key in &spec.identity {
        let mut by_value: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, d) in candidates.iter().enumerate() {
            if let Some(v) = d.identity.get(key) {
                by_value.entry(v.as_str()).or_default().push(i);
            }
        }
        let mut groups: Vec<(&str, Vec<usize>)> = by_value
            .into_iter()
            .filter(|(_, ix)| ix.len() > 1)
            .collect();
        groups.sort();
        for (value, indexes) in groups {
            for &i in &indexes {
                conflicted[i] = true;
            }
            out.conflicts.push(Conflict {
                identity: format!("{key}={value}"),
                records: indexes.iter().map(|&i| candidates[i].label.clone()).collect(),
                reason: format!(
                    "{} records have the same {key}; fix the source so that each person has their own",
                    indexes.len()
                ),
            });
        }
    }
    for (d, bad) in candidates.into_iter().zip(conflicted) {
        if bad {
            out.held_back
                .extend(d.identity.iter().map(|(k, v)| (k.clone(), v.clone())));
        } else {
            out.accounts.push(d);
        }
    }
    out
}

/// The error for a sync whose every in-scope record is invalid (at least one): it names the
/// commonest reason, because one config mistake (a typo, a missing column) usually explains
/// them all. Records filtered out by `where` do not count; identity conflicts are valid records.
pub(crate) fn nobody_matches(accounts: &[Desired], plan: &SyncPlan) -> Option<String> {
    if !accounts.is_empty() || !plan.conflicts.is_empty() || plan.invalid.is_empty() {
        return None;
    }
    // Reasons quote the record's values ("`+` cannot be applied to \"Ann\" and 1"): records
    // are grouped by the reason with quoted values blanked, and the first one's words shown.
    let mut counts: Vec<(String, &str, usize)> = Vec::new();
    for invalid in &plan.invalid {
        let shape = reason_shape(&invalid.reason);
        match counts.iter_mut().find(|(s, _, _)| *s == shape) {
            Some((_, _, n)) => *n += 1,
            None => counts.push((shape, &invalid.reason, 1)),
        }
    }
    // The commonest; on a tie, the first seen (records keep the source's order).
    let (reason, n) = counts
        .iter()
        .fold(None::<(&str, usize)>, |best, (_, r, n)| match best {
            Some((_, m)) if m >= *n => best,
            _ => Some((r, *n)),
        })?;
    let total = plan.invalid.len();
    let share = if n == total {
        format!("all {total}")
    } else {
        format!("{n} of {total}")
    };
    Some(format!(
        "every record of source `{}` in this sync is invalid ({total}), so it matches nobody: this is a mistake in the config or the source, not \"no changes\". Most common reason ({share} records): {reason}",
        plan.source
    ))
}

/// A reason with its double-quoted values blanked, so that reasons differing only in the
/// record's data count as one.
fn reason_shape(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    let mut quoted = false;
    let mut escaped = false;
    for c in reason.chars() {
        if quoted {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => {
                    quoted = false;
                    out.push('"');
                }
                _ => escaped = false,
            }
        } else {
            out.push(c);
            quoted = c == '"';
        }
    }
    out
}

type Skip = (String, Vec<(String, String)>);

fn evaluate_one(
    spec: &SyncSpec,
    specs: &BTreeMap<String, FieldSpec>,
    record: &SourceRecord,
) -> Result<Option<Desired>, Skip> {
    if let Some(filter) = &spec.where_ {
        match filter.eval_bool(&record.data, &spec.source) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => return Err((format!("where: {e}"), Vec::new())),
        }
    }

    let mut raw = BTreeMap::new();
    let mut errors = Vec::new();
    for (name, expr) in &spec.fields {
        let value = match expr {
            None => Value::Null,
            Some(expr) => match expr.eval(&record.data, &spec.source) {
                Ok(v) => v,
                Err(e) => {
                    errors.push(format!("field `{name}`: {e}"));
                    continue;
                }
            },
        };
        raw.insert(name.clone(), value);
    }

    let mut fields = BTreeMap::new();
    for (name, value) in raw {
        let Some(fspec) = specs.get(&name) else {
            errors.push(format!(
                "field `{name}` is not a field of {}",
                spec.target_fields.kind
            ));
            continue;
        };
        // A control character (NUL, ESC, other C0/C1) in an identity value is never a person's
        // name or address: it is a broken export, or text meant to rewrite a reviewer's
        // terminal. Checked before coercion, which trims some of them away.
        if (spec.identity.contains(&name) || fspec.identity.is_some())
            && let Value::String(v) = &value
            && let Some((at, c)) = v.chars().enumerate().find(|(_, c)| c.is_control())
        {
            errors.push(format!(
                "identity field `{name}` holds a control character (U+{:04X}) at character {}: identity values must be printable text; fix the source",
                u32::from(c),
                at + 1
            ));
            continue;
        }
        match values::desired_value(fspec, &name, &value) {
            Ok(v) => {
                fields.insert(name, v);
            }
            Err(e) => errors.push(e),
        }
    }

    // Identity values that could be computed, so that a skipped record still protects the
    // account it refers to.
    let mut identity = BTreeMap::new();
    for key in &spec.identity {
        if let (Some(Value::String(v)), Some(fspec)) = (fields.get(key), specs.get(key)) {
            let norm = fspec.identity.unwrap_or(IdentityNorm::Exact);
            let n = norm.normalise(v);
            if !n.is_empty() {
                identity.insert(key.clone(), n);
            }
        }
    }
    let known: Vec<(String, String)> = identity
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();

    if let Some(first) = spec.identity.first()
        && !identity.contains_key(first)
        && errors.is_empty()
    {
        errors.push(format!(
            "identity field `{first}` is empty: every account needs one, so the record is skipped rather than guessed"
        ));
    }

    let active = match &spec.active {
        None => true,
        Some(expr) => match expr.eval_bool(&record.data, &spec.source) {
            Ok(b) => b,
            Err(e) => {
                errors.push(format!("active: {e}"));
                true
            }
        },
    };

    if !errors.is_empty() {
        return Err((errors.join("; "), known));
    }
    Ok(Some(Desired {
        label: record.label.clone(),
        identity,
        fields,
        active,
    }))
}
