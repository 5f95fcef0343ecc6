//! The last guard for sensitive values (issue 7, point 1): whatever a plan file, a connector or a
//! bug puts into a change, a sensitive field's value never reaches the state, the journal, the
//! audit log or a plan. The planner already writes markers; these functions run again at every
//! write point, keyed on the config's field catalog (not on the `sensitive` flag a plan file
//! carries, which an edited file can drop).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use crate::apply::OpEvent;
use crate::plan::{FieldDiff, PlanDocument, sensitive_marker};
use crate::planner::SyncSpec;
use crate::state::{State, StateOp};

/// What the audit log and event stream show instead of a sensitive value.
pub const REDACTED: &str = "(sensitive)";

/// The names of the sensitive fields, per sync and per target, from the config.
#[derive(Debug, Clone, Default)]
pub struct SensitiveFields {
    by_sync: HashMap<String, BTreeSet<String>>,
    by_target: HashMap<String, BTreeSet<String>>,
}

impl SensitiveFields {
    /// The sensitive fields of every sync's target kind, mapped by the sync or not (an edited
    /// plan may name a field the config does not map).
    pub fn of(specs: &[SyncSpec]) -> SensitiveFields {
        let mut out = SensitiveFields::default();
        for spec in specs {
            let names: BTreeSet<String> = spec
                .target_fields
                .fixed
                .iter()
                .filter(|f| f.sensitive)
                .map(|f| f.name.to_string())
                .collect();
            out.by_target
                .entry(spec.target.clone())
                .or_default()
                .extend(names.iter().cloned());
            out.by_sync.insert(spec.name.clone(), names);
        }
        out
    }

    /// Whether `field` is sensitive for `sync` (or, for a sync gone from the config, for the
    /// target it wrote to).
    pub fn is_sensitive(&self, sync: &str, target: Option<&str>, field: &str) -> bool {
        self.by_sync.get(sync).is_some_and(|s| s.contains(field))
            || target
                .and_then(|t| self.by_target.get(t))
                .is_some_and(|s| s.contains(field))
    }

    /// Replaces sensitive values in a state operation by the marker; returns how many.
    pub fn scrub_op(&self, op: &mut StateOp) -> usize {
        match op {
            StateOp::Upsert {
                sync,
                target,
                account,
                ..
            } => scrub_values(&mut account.fields, |name| {
                self.is_sensitive(sync, Some(target), name)
            }),
            StateOp::Intend { intent } => scrub_values(&mut intent.fields, |name| {
                self.is_sensitive(&intent.sync, Some(&intent.target), name)
            }),
            StateOp::Remove { .. } | StateOp::Settle { .. } => 0,
        }
    }

    /// Replaces sensitive values in the whole state by the marker; returns how many.
    pub fn scrub_state(&self, state: &mut State) -> usize {
        let mut n = 0;
        for (sync, s) in &mut state.syncs {
            for account in s.accounts.values_mut() {
                n += scrub_values(&mut account.fields, |name| {
                    self.is_sensitive(sync, Some(&s.target), name)
                });
            }
        }
        for intent in &mut state.intents {
            n += scrub_values(&mut intent.fields, |name| {
                self.is_sensitive(&intent.sync, Some(&intent.target), name)
            });
        }
        n
    }

    /// Redacts sensitive values in an operation event (audit log, `--json`).
    pub fn scrub_event(&self, event: &mut OpEvent) {
        for (name, diff) in &mut event.fields {
            if self.is_sensitive(&event.sync, Some(&event.target), name) {
                for v in [&mut diff.before, &mut diff.after] {
                    if !v.is_null() {
                        *v = Value::String(REDACTED.to_string());
                    }
                }
            }
        }
    }

    /// Replaces sensitive values in a plan document by the marker and flags them sensitive;
    /// returns how many values were replaced.
    pub fn scrub_document(&self, doc: &mut PlanDocument) -> usize {
        let mut n = 0;
        for sync in &mut doc.syncs {
            for change in &mut sync.changes {
                n += self.scrub_diffs(&sync.name, &sync.target, &mut change.fields);
            }
        }
        if let Some(base) = &mut doc.base {
            for group in base.caused.iter_mut().chain(base.prevented.iter_mut()) {
                let target = doc
                    .syncs
                    .iter()
                    .find(|s| s.name == group.sync)
                    .map(|s| s.target.clone())
                    .unwrap_or_default();
                for change in &mut group.changes {
                    n += self.scrub_diffs(&group.sync, &target, &mut change.fields);
                }
            }
        }
        n
    }

    fn scrub_diffs(
        &self,
        sync: &str,
        target: &str,
        fields: &mut BTreeMap<String, FieldDiff>,
    ) -> usize {
        let mut n = 0;
        for (name, diff) in fields.iter_mut() {
            if diff.sensitive || self.is_sensitive(sync, Some(target), name) {
                diff.sensitive = true;
                for v in [&mut diff.before, &mut diff.after] {
                    if !is_safe(v) {
                        *v = sensitive_marker();
                        n += 1;
                    }
                }
            }
        }
        n
    }
}

/// A value that may stand where a sensitive one is: nothing, or the marker.
pub fn is_safe(v: &Value) -> bool {
    v.is_null() || *v == sensitive_marker()
}

fn scrub_values(fields: &mut BTreeMap<String, Value>, sensitive: impl Fn(&str) -> bool) -> usize {
    let mut n = 0;
    for (name, v) in fields.iter_mut() {
        if sensitive(name) && !is_safe(v) {
            *v = sensitive_marker();
            n += 1;
        }
    }
    n
}
