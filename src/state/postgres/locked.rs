//! A held advisory lock and the writes made under it, all on the lock's own session.

use std::path::PathBuf;

use async_trait::async_trait;

use super::STATE_NAME;
use super::connect;
use super::session::{Session, committed_matches};
use crate::state::backend::LockedState;
use crate::state::error::StateError;
use crate::state::lock::LockInfo;
use crate::state::model::{State, StateOp};
use crate::state::store::JournalStatus;

/// A held advisory lock: its session, which carries every write, and the open journal.
pub(super) struct PgLock {
    pub(super) session: Session,
    pub(super) info: LockInfo,
    pub(super) key: i64,
    /// How many ops the open journal holds, once begun.
    pub(super) journal: Option<usize>,
}

#[async_trait]
impl LockedState for PgLock {
    fn info(&self) -> &LockInfo {
        &self.info
    }

    async fn recover(&mut self) -> Result<Option<State>, StateError> {
        let loaded = self.session.load().await?;
        match (loaded.journal, loaded.state) {
            (JournalStatus::Replayed { ops }, Some(mut state)) => {
                self.session.commit(&mut state).await?;
                tracing::info!(
                    "recovered {ops} operation(s) of an interrupted apply into {} (serial {})",
                    self.session.location,
                    state.serial
                );
                Ok(Some(state))
            }
            (JournalStatus::Absent, state) => Ok(state),
            (_, state) => {
                self.session
                    .client
                    .execute(
                        &format!(
                            "DELETE FROM {} WHERE name = $1",
                            self.session.tables.journal
                        ),
                        &[&STATE_NAME],
                    )
                    .await
                    .map_err(self.session.err("remove the journal"))?;
                Ok(state)
            }
        }
    }

    async fn begin_journal(&mut self, base: &State) -> Result<(), StateError> {
        self.journal = None;
        let s = &mut self.session;
        let location = s.location.clone();
        let tables = s.tables.clone();
        let target_err = |e: tokio_postgres::Error, action: &'static str| StateError::Database {
            location: location.clone(),
            action,
            detail: s.target.scrub(&connect::error_text(&e)),
        };
        let tx = s
            .client
            .transaction()
            .await
            .map_err(|e| target_err(e, "start the journal"))?;
        let rows = tx
            .query(
                &format!(
                    "SELECT lineage, serial FROM {} WHERE name = $1 FOR UPDATE",
                    tables.state
                ),
                &[&STATE_NAME],
            )
            .await
            .map_err(|e| target_err(e, "start the journal"))?;
        committed_matches(&location, rows.first(), base)?;
        // A journal with ops not folded in yet must not be replaced (recover first).
        let pending: i64 = tx
            .query_one(
                &format!(
                    "SELECT count(*) FROM {} WHERE name = $1 AND op IS NOT NULL AND base_serial >= $2",
                    tables.journal
                ),
                &[&STATE_NAME, &i64::try_from(base.serial).unwrap_or(i64::MAX)],
            )
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| target_err(e, "start the journal"))?;
        if pending > 0 {
            return Err(StateError::JournalPending {
                path: PathBuf::from(&location),
            });
        }
        tx.execute(
            &format!("DELETE FROM {} WHERE name = $1", tables.journal),
            &[&STATE_NAME],
        )
        .await
        .map_err(|e| target_err(e, "start the journal"))?;
        tx.execute(
            &format!(
                "INSERT INTO {} (name, lineage, base_serial, op) VALUES ($1, $2, $3, NULL)",
                tables.journal
            ),
            &[
                &STATE_NAME,
                &base.lineage,
                &i64::try_from(base.serial).unwrap_or(i64::MAX),
            ],
        )
        .await
        .map_err(|e| target_err(e, "start the journal"))?;
        tx.commit()
            .await
            .map_err(|e| target_err(e, "start the journal"))?;
        self.journal = Some(0);
        Ok(())
    }

    async fn append(&mut self, op: &StateOp) -> Result<(), StateError> {
        let Some(count) = self.journal else {
            return Err(StateError::NoJournal {
                location: self.session.location.clone(),
            });
        };
        let encoded = serde_json::to_string(op).map_err(|source| StateError::Encode {
            path: self.session.path(),
            source,
        })?;
        // One committed INSERT (autocommit, synchronous_commit): durable when it returns. The
        // header row gives the lineage and base serial.
        self.session
            .client
            .execute(
                &format!(
                    "INSERT INTO {j} (name, lineage, base_serial, op) \
                     SELECT name, lineage, base_serial, $2::text::jsonb FROM {j} \
                     WHERE name = $1 AND op IS NULL",
                    j = self.session.tables.journal
                ),
                &[&STATE_NAME, &encoded],
            )
            .await
            .map_err(self.session.err("append to the journal"))
            .and_then(|n| {
                if n == 1 {
                    Ok(())
                } else {
                    Err(StateError::NoJournal {
                        location: self.session.location.clone(),
                    })
                }
            })?;
        self.journal = Some(count + 1);
        Ok(())
    }

    async fn commit(&mut self, state: &mut State) -> Result<(), StateError> {
        self.journal = None;
        self.session.commit(state).await
    }

    async fn release(self: Box<Self>) -> Result<(), StateError> {
        let s = &self.session;
        if self.journal == Some(0) {
            // A journal that recorded nothing holds nothing to recover.
            s.client
                .execute(
                    &format!("DELETE FROM {} WHERE name = $1", s.tables.journal),
                    &[&STATE_NAME],
                )
                .await
                .map_err(s.err("remove the empty journal"))?;
        }
        s.client
            .execute(
                &format!(
                    "DELETE FROM {} WHERE name = $1 AND backend_pid = pg_backend_pid()",
                    s.tables.lock
                ),
                &[&STATE_NAME],
            )
            .await
            .map_err(s.err("remove the lock holder"))?;
        s.client
            .query_one("SELECT pg_advisory_unlock($1)", &[&self.key])
            .await
            .map_err(s.err("release the state lock"))?;
        // Dropping the client ends the session, which would release the lock anyway.
        Ok(())
    }
}
