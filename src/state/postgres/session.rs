//! One connection to the PostgreSQL state's database and what is done through it: migrate,
//! load in one snapshot, commit with the optimistic serial check, look up the lock's holder.

use std::path::PathBuf;

use super::STATE_NAME;
use super::connect::{self, Target};
use super::fold::{JournalRows, fold};
use super::schema::{self, MigrateError, Tables};
use crate::state::error::StateError;
use crate::state::lock::LockInfo;
use crate::state::model::{FORMAT_VERSION, State};
use crate::state::store::{JournalStatus, Loaded};

/// One connection to the state's database.
pub(super) struct Session {
    pub(super) client: tokio_postgres::Client,
    pub(super) target: Target,
    pub(super) location: String,
    pub(super) tables: Tables,
}

impl Session {
    /// A driver error as a state error, scrubbed.
    pub(super) fn err(
        &self,
        action: &'static str,
    ) -> impl Fn(tokio_postgres::Error) -> StateError + '_ {
        db_err(&self.location, &self.target, action)
    }

    pub(super) fn path(&self) -> PathBuf {
        PathBuf::from(&self.location)
    }

    pub(super) async fn migrate(&mut self) -> Result<(), StateError> {
        match schema::migrate(&mut self.client, &self.tables, STATE_NAME).await {
            Ok(()) => Ok(()),
            Err(MigrateError::Newer(v)) => Err(schema::newer(&self.location, v)),
            Err(MigrateError::Db(e)) => Err(self.err("create or migrate the state tables")(e)),
        }
    }

    /// Committed state and journal, read in one snapshot, folded as the local backend does.
    pub(super) async fn load(&mut self) -> Result<Loaded, StateError> {
        let absent = Loaded {
            state: None,
            journal: JournalStatus::Absent,
        };
        if !schema::exists(&self.client, &self.tables)
            .await
            .map_err(self.err("look for the state tables"))?
        {
            return Ok(absent);
        }
        let version = schema::version(&self.client, &self.tables)
            .await
            .map_err(self.err("read the schema version"))?;
        if version > schema::SCHEMA_VERSION {
            return Err(schema::newer(&self.location, version));
        }
        if version == 0 {
            return Ok(absent);
        }
        let (state_rows, journal_rows) = {
            let read = db_err(&self.location, &self.target, "read the state");
            let tx = self
                .client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(&read)?;
            let s = tx
                .query(
                    &format!(
                        "SELECT lineage, serial, document::text FROM {} WHERE name = $1",
                        self.tables.state
                    ),
                    &[&STATE_NAME],
                )
                .await
                .map_err(&read)?;
            let j = tx
                .query(
                    &format!(
                        "SELECT lineage, base_serial, op::text FROM {} WHERE name = $1 ORDER BY seq",
                        self.tables.journal
                    ),
                    &[&STATE_NAME],
                )
                .await
                .map_err(&read)?;
            tx.commit().await.map_err(&read)?;
            (s, j)
        };
        let state = match state_rows.first() {
            None => None,
            Some(row) => Some(self.decode_state(row)?),
        };
        let journal = self.decode_journal(&journal_rows)?;
        fold(&self.path(), state, journal)
    }

    pub(super) fn decode_state(&self, row: &tokio_postgres::Row) -> Result<State, StateError> {
        let corrupt = |detail: String| StateError::Corrupt {
            path: self.path(),
            detail,
        };
        let lineage: String = row.try_get(0).map_err(|e| corrupt(e.to_string()))?;
        let serial: i64 = row.try_get(1).map_err(|e| corrupt(e.to_string()))?;
        let text: String = row.try_get(2).map_err(|e| corrupt(e.to_string()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| corrupt(format!("invalid JSON: {e}")))?;
        match value.get("format_version") {
            Some(serde_json::Value::String(v)) if v == FORMAT_VERSION => {}
            Some(other) => {
                return Err(StateError::UnsupportedFormat {
                    path: self.path(),
                    found: other
                        .as_str()
                        .map_or_else(|| other.to_string(), str::to_string),
                    supported: FORMAT_VERSION,
                });
            }
            None => return Err(corrupt("it has no format_version".to_string())),
        }
        let state: State = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
        if state.lineage != lineage || i64::try_from(state.serial).ok() != Some(serial) {
            return Err(corrupt(format!(
                "the row says lineage {lineage} serial {serial} but its document says lineage \
                 {} serial {}",
                state.lineage, state.serial
            )));
        }
        Ok(state)
    }

    pub(super) fn decode_journal(
        &self,
        rows: &[tokio_postgres::Row],
    ) -> Result<Option<JournalRows>, StateError> {
        let corrupt = |line: usize, detail: String| StateError::JournalCorrupt {
            path: self.path(),
            line,
            detail,
        };
        let mut journal: Option<JournalRows> = None;
        for (i, row) in rows.iter().enumerate() {
            let line = i + 1;
            let lineage: String = row.try_get(0).map_err(|e| corrupt(line, e.to_string()))?;
            let base: i64 = row.try_get(1).map_err(|e| corrupt(line, e.to_string()))?;
            let base = u64::try_from(base).map_err(|e| corrupt(line, e.to_string()))?;
            let op: Option<String> = row.try_get(2).map_err(|e| corrupt(line, e.to_string()))?;
            let j = journal.get_or_insert_with(|| JournalRows {
                lineage: lineage.clone(),
                base_serial: base,
                ops: Vec::new(),
            });
            if j.lineage != lineage || j.base_serial != base {
                return Err(corrupt(
                    line,
                    "it belongs to another apply than the rows before it".to_string(),
                ));
            }
            if let Some(op) = op {
                j.ops
                    .push(serde_json::from_str(&op).map_err(|e| corrupt(line, e.to_string()))?);
            }
        }
        Ok(journal)
    }

    /// Writes `state` at the next serial and clears the journal, in one transaction.
    pub(super) async fn commit(&mut self, state: &mut State) -> Result<(), StateError> {
        let serial = state
            .serial
            .checked_add(1)
            .filter(|s| i64::try_from(*s).is_ok())
            .ok_or_else(|| StateError::SerialExhausted {
                path: self.path(),
                serial: state.serial,
            })?;
        state.serial = serial;
        let encoded = serde_json::to_string(&*state);
        state.serial = serial - 1;
        let document = encoded.map_err(|source| StateError::Encode {
            path: self.path(),
            source,
        })?;
        let serial_db = i64::try_from(serial).unwrap_or(i64::MAX);
        let write = db_err(&self.location, &self.target, "write the state");
        let tables = self.tables.clone();
        let tx = self.client.transaction().await.map_err(&write)?;
        let exists = {
            // Borrow-friendly: the checks only need `tables`, `location` and `target`.
            let rows = tx
                .query(
                    &format!(
                        "SELECT lineage, serial FROM {} WHERE name = $1 FOR UPDATE",
                        tables.state
                    ),
                    &[&STATE_NAME],
                )
                .await
                .map_err(&write)?;
            committed_matches(&self.location, rows.first(), state)?
        };
        let sql = if exists {
            format!(
                "UPDATE {} SET lineage = $2, serial = $3, document = $4::text::jsonb, \
                 updated_at = now() WHERE name = $1",
                tables.state
            )
        } else {
            format!(
                "INSERT INTO {} (name, lineage, serial, document) VALUES ($1, $2, $3, $4::text::jsonb)",
                tables.state
            )
        };
        tx.execute(&sql, &[&STATE_NAME, &state.lineage, &serial_db, &document])
            .await
            .map_err(&write)?;
        tx.execute(
            &format!("DELETE FROM {} WHERE name = $1", tables.journal),
            &[&STATE_NAME],
        )
        .await
        .map_err(&write)?;
        tx.commit().await.map_err(&write)?;
        state.serial = serial;
        Ok(())
    }

    /// The advisory lock's holder: its server pid and its holder row, if the lock is held.
    pub(super) async fn holder(
        &self,
        key: i64,
    ) -> Result<Option<(i32, Option<LockInfo>)>, StateError> {
        let rows = self
            .client
            .query(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1",
                &[&((key >> 32) & 0xffff_ffff), &(key & 0xffff_ffff)],
            )
            .await
            .map_err(self.err("look up the state lock"))?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let pid: i32 = row.try_get(0).map_err(self.err("look up the state lock"))?;
        Ok(Some((pid, self.holder_row(Some(pid)).await?)))
    }

    /// The holder row (of the session `pid`, when given).
    pub(super) async fn holder_row(
        &self,
        pid: Option<i32>,
    ) -> Result<Option<LockInfo>, StateError> {
        if !schema::exists(&self.client, &self.tables)
            .await
            .map_err(self.err("look for the state tables"))?
        {
            return Ok(None);
        }
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT holder::text, backend_pid FROM {} WHERE name = $1",
                    self.tables.lock
                ),
                &[&STATE_NAME],
            )
            .await
            .map_err(self.err("read the lock holder"))?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let text: String = row.try_get(0).map_err(self.err("read the lock holder"))?;
        let owner: i32 = row.try_get(1).map_err(self.err("read the lock holder"))?;
        if pid.is_some_and(|p| p != owner) {
            return Ok(None);
        }
        Ok(serde_json::from_str(&text).ok())
    }
}

/// A driver error as a state error, scrubbed of the URL's password.
pub(super) fn db_err<'a>(
    location: &'a str,
    target: &'a Target,
    action: &'static str,
) -> impl Fn(tokio_postgres::Error) -> StateError + 'a {
    move |e| StateError::Database {
        location: location.to_string(),
        action,
        detail: target.scrub(&connect::error_text(&e)),
    }
}

/// Whether the committed row is the one `expected` was read from (`false`: no row, as
/// expected for a first write); a row that moved is [`StateError::StateChanged`].
pub(super) fn committed_matches(
    location: &str,
    row: Option<&tokio_postgres::Row>,
    expected: &State,
) -> Result<bool, StateError> {
    let found = match row {
        None if expected.serial == 0 => return Ok(false),
        None => "no state".to_string(),
        Some(r) => {
            let unreadable = |e: tokio_postgres::Error| StateError::Corrupt {
                path: PathBuf::from(location),
                detail: format!("its lineage or serial cannot be read ({e})"),
            };
            let lineage: String = r.try_get(0).map_err(unreadable)?;
            let serial: i64 = r.try_get(1).map_err(unreadable)?;
            if lineage == expected.lineage && i64::try_from(expected.serial).ok() == Some(serial) {
                return Ok(true);
            }
            format!("lineage {lineage} serial {serial}")
        }
    };
    Err(StateError::StateChanged {
        path: PathBuf::from(location),
        expected: format!("lineage {} serial {}", expected.lineage, expected.serial),
        found,
    })
}
