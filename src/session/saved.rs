//! `apply PLANFILE`: a saved plan is applied exactly or not at all. The config, the state and
//! every touched account must be as they were when it was made, and every sensitive value it
//! needs must still come from the source (plans never hold them).

use crate::apply::Secrets;
use crate::engine::{self, Engine, Snapshot};
use crate::plan::PlanDocument;
use crate::state::State;

use super::{PlannedApply, SessionError};

/// Checks `doc` against what is there now and gathers what applying it needs.
pub(super) async fn load(
    engine: &Engine,
    state: Option<&State>,
    doc: PlanDocument,
    shown: &str,
) -> Result<PlannedApply, SessionError> {
    let specs: Vec<_> = engine
        .specs
        .iter()
        .filter(|s| doc.syncs.iter().any(|p| p.name == s.name))
        .cloned()
        .collect();
    let need = engine::needs_secrets(&doc);
    let with_secrets: Vec<_> = specs
        .iter()
        .filter(|s| need.contains(&s.name))
        .cloned()
        .collect();
    let conns = engine.connect(&specs, false)?;
    let live = engine::list_targets(&conns).await;
    let problems = engine.check_stale(&doc, state, &live);
    if !problems.is_empty() {
        return Err(SessionError::Stale {
            plan: shown.to_string(),
            problems,
        });
    }
    if doc.has_errors() {
        return Err(SessionError::PlanHasErrors {
            plan: shown.to_string(),
        });
    }
    let mut snap = Snapshot {
        live,
        ..Snapshot::default()
    };
    let mut secrets = Secrets::default();
    if !with_secrets.is_empty() {
        // Sensitive values are never stored in a plan: read them again from the source.
        let conns = engine.connect(&with_secrets, true)?;
        for (name, source) in &conns.sources {
            snap.records
                .insert(name.clone(), source.read().await.map_err(|e| e.to_string()));
        }
        let planned = engine.plan(&with_secrets, &snap, state, true, false);
        secrets = Engine::secrets(&planned);
        check_secrets_present(&doc, &secrets)?;
    }
    Ok(PlannedApply {
        doc,
        live: snap.live_ok(),
        secrets,
        conns,
    })
}

/// Every sensitive value the plan needs must still come from the source.
fn check_secrets_present(doc: &PlanDocument, secrets: &Secrets) -> Result<(), SessionError> {
    for sync in &doc.syncs {
        for change in &sync.changes {
            for name in change
                .fields
                .iter()
                .filter(|(_, d)| d.sensitive)
                .map(|(n, _)| n)
            {
                let present = change.identity.values().any(|p| {
                    secrets
                        .get(&sync.name)
                        .and_then(|m| m.get(p))
                        .is_some_and(|m| m.contains_key(name))
                });
                if !present {
                    return Err(SessionError::SecretGone {
                        field: name.clone(),
                        identity: change.identity.values().next().cloned().unwrap_or_default(),
                    });
                }
            }
        }
    }
    Ok(())
}
