//! The journal rows folded onto the committed state, with the local backend's rules.

use crate::state::error::StateError;
use crate::state::model::{State, StateOp};
use crate::state::store::{JournalStatus, Loaded};

/// The journal rows of one apply.
pub(super) struct JournalRows {
    pub(super) lineage: String,
    pub(super) base_serial: u64,
    pub(super) ops: Vec<StateOp>,
}

/// The committed state with the journal folded in, with the local backend's rules (see
/// `store.rs`): a journal on top of this serial is replayed, an older one was committed
/// already, a newer one or another lineage is an error.
pub(super) fn fold(
    path: &std::path::Path,
    state: Option<State>,
    journal: Option<JournalRows>,
) -> Result<Loaded, StateError> {
    let Some(journal) = journal else {
        return Ok(Loaded {
            state,
            journal: JournalStatus::Absent,
        });
    };
    let ops = journal.ops.len();
    let mut state = match state {
        None if journal.base_serial != 0 => {
            return Err(StateError::JournalWithoutState {
                path: path.to_path_buf(),
                base_serial: journal.base_serial,
                state_path: path.to_path_buf(),
            });
        }
        None if ops == 0 => {
            return Ok(Loaded {
                state: None,
                journal: JournalStatus::Empty,
            });
        }
        None => State::new(journal.lineage),
        Some(s) if s.lineage != journal.lineage => {
            return Err(StateError::JournalLineage {
                path: path.to_path_buf(),
                journal_lineage: journal.lineage,
                state_path: path.to_path_buf(),
                state_lineage: s.lineage,
            });
        }
        Some(s) if journal.base_serial > s.serial => {
            return Err(StateError::JournalAhead {
                path: path.to_path_buf(),
                base_serial: journal.base_serial,
                state_path: path.to_path_buf(),
                state_serial: s.serial,
            });
        }
        Some(s) if journal.base_serial < s.serial => {
            return Ok(Loaded {
                state: Some(s),
                journal: JournalStatus::AlreadyCommitted {
                    base_serial: journal.base_serial,
                },
            });
        }
        Some(s) => s,
    };
    for op in &journal.ops {
        state.apply_op(op);
    }
    Ok(Loaded {
        state: Some(state),
        journal: if ops == 0 {
            JournalStatus::Empty
        } else {
            JournalStatus::Replayed { ops }
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn journal(lineage: &str, base_serial: u64, ops: usize) -> Option<JournalRows> {
        let op = StateOp::Remove {
            sync: "s".into(),
            target_id: "x".into(),
        };
        Some(JournalRows {
            lineage: lineage.into(),
            base_serial,
            ops: vec![op; ops],
        })
    }

    fn at(serial: u64) -> Option<State> {
        let mut s = State::new("l".into());
        s.serial = serial;
        Some(s)
    }

    /// The journal rules of the local backend, on rows: replayed on top of its serial, ignored
    /// when older, refused when newer, of another lineage or with no state under it.
    #[test]
    fn the_journal_folds_like_the_local_one() {
        let p = std::path::Path::new("db");
        let f = |s, j| fold(p, s, j);
        assert_eq!(f(at(2), None).unwrap().journal, JournalStatus::Absent);
        assert_eq!(
            f(at(2), journal("l", 2, 3)).unwrap().journal,
            JournalStatus::Replayed { ops: 3 }
        );
        assert_eq!(
            f(at(2), journal("l", 1, 3)).unwrap().journal,
            JournalStatus::AlreadyCommitted { base_serial: 1 }
        );
        assert_eq!(
            f(at(2), journal("l", 2, 0)).unwrap().journal,
            JournalStatus::Empty
        );
        assert!(matches!(
            f(at(2), journal("l", 3, 1)),
            Err(StateError::JournalAhead { .. })
        ));
        assert!(matches!(
            f(at(2), journal("m", 2, 1)),
            Err(StateError::JournalLineage { .. })
        ));
        assert!(matches!(
            f(None, journal("l", 1, 1)),
            Err(StateError::JournalWithoutState { .. })
        ));
        let first = f(None, journal("l", 0, 1)).unwrap();
        assert_eq!(first.state.unwrap().lineage, "l");
        assert_eq!(f(None, journal("l", 0, 0)).unwrap().state, None);
    }
}
