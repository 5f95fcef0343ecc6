//! The PostgreSQL state backend (SPEC section 10), for teams whose CI runners share no disk.
//!
//! Same semantics as the local files: one row per state (lineage, serial, document), the
//! serial checked and incremented by every write (a write whose serial moved is refused, never
//! lost), the journal of an apply in progress as rows appended one committed INSERT at a time
//! (durable as it happens, replayed by the next run), and the lock a `pg_try_advisory_lock` held
//! on a dedicated session for the lock's life: the server drops it when that session ends, so a
//! killed run never leaves a lock behind. A holder row says who holds it, for the refusal.

mod connect;
mod schema;

use std::path::PathBuf;

use async_trait::async_trait;
use secrecy::SecretString;

use super::backend::{LockedState, StateBackend};
use super::error::StateError;
use super::lock::{LockInfo, Unlocked};
use super::model::{FORMAT_VERSION, State, StateOp};
use super::store::{JournalStatus, Loaded};
use connect::Target;
pub use schema::check_sql_identifier;
use schema::{MigrateError, Tables};

/// The secrets a state URL holds (the URL and its password, decoded and as written), for the
/// run's scrubber. Empty when the URL does not parse (nothing then connects with it).
pub fn url_secrets(url: &SecretString) -> Vec<String> {
    Target::parse(url, "state")
        .map(|t| t.secrets().to_vec())
        .unwrap_or_else(|_| vec![secrecy::ExposeSecret::expose_secret(url).to_string()])
}

/// The row name of the one state a config manages.
const STATE_NAME: &str = "default";

/// Where the URL comes from: resolved on first use, so that `state` commands and a config
/// check work without it, and a missing variable is reported by the command that needs it.
pub type UrlSource = Box<dyn Fn() -> Result<SecretString, String> + Send + Sync>;

/// A state kept in a PostgreSQL table.
pub struct PostgresBackend {
    url: UrlSource,
    tables: Tables,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

impl PostgresBackend {
    /// The state in `schema.table` of the database at `url` (default `public.headcount_state`).
    pub fn new(url: UrlSource, schema: Option<&str>, table: Option<&str>) -> Self {
        PostgresBackend {
            url,
            tables: Tables::new(
                schema.unwrap_or("public"),
                table.unwrap_or("headcount_state"),
            ),
        }
    }

    fn what(&self) -> String {
        format!("table {}.{}", self.tables.schema, self.tables.table)
    }

    async fn open(&self) -> Result<Session, StateError> {
        for (key, v) in [
            ("schema", &self.tables.schema),
            ("table", &self.tables.table),
        ] {
            check_sql_identifier(v).map_err(|why| StateError::DatabaseConfig {
                location: self.what(),
                detail: format!("`state.{key}` {v:?}: {why}"),
            })?;
        }
        let url = (self.url)().map_err(|detail| StateError::DatabaseConfig {
            location: self.what(),
            detail: format!("`state.url`: {detail}"),
        })?;
        let target = Target::parse(&url, &self.what())?;
        let location = format!("{} ({})", target.server, self.what());
        let client = target.connect(&location).await?;
        Ok(Session {
            client,
            target,
            location,
            tables: self.tables.clone(),
        })
    }
}

/// One connection to the state's database.
struct Session {
    client: tokio_postgres::Client,
    target: Target,
    location: String,
    tables: Tables,
}

impl Session {
    /// A driver error as a state error, scrubbed.
    fn err(&self, action: &'static str) -> impl Fn(tokio_postgres::Error) -> StateError + '_ {
        db_err(&self.location, &self.target, action)
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(&self.location)
    }

    async fn migrate(&mut self) -> Result<(), StateError> {
        match schema::migrate(&mut self.client, &self.tables, STATE_NAME).await {
            Ok(()) => Ok(()),
            Err(MigrateError::Newer(v)) => Err(schema::newer(&self.location, v)),
            Err(MigrateError::Db(e)) => Err(self.err("create or migrate the state tables")(e)),
        }
    }

    /// Committed state and journal, read in one snapshot, folded as the local backend does.
    async fn load(&mut self) -> Result<Loaded, StateError> {
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

    fn decode_state(&self, row: &tokio_postgres::Row) -> Result<State, StateError> {
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

    fn decode_journal(
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
    async fn commit(&mut self, state: &mut State) -> Result<(), StateError> {
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
    async fn holder(&self, key: i64) -> Result<Option<(i32, Option<LockInfo>)>, StateError> {
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
    async fn holder_row(&self, pid: Option<i32>) -> Result<Option<LockInfo>, StateError> {
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
fn db_err<'a>(
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
fn committed_matches(
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

/// The journal rows of one apply.
struct JournalRows {
    lineage: String,
    base_serial: u64,
    ops: Vec<StateOp>,
}

/// The committed state with the journal folded in, with the local backend's rules (see
/// `store.rs`): a journal on top of this serial is replayed, an older one was committed
/// already, a newer one or another lineage is an error.
fn fold(
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

#[async_trait]
impl StateBackend for PostgresBackend {
    fn location(&self) -> String {
        format!("PostgreSQL {}", self.what())
    }

    async fn load(&self) -> Result<Loaded, StateError> {
        self.open().await?.load().await
    }

    async fn lock(&self, operation: &str) -> Result<Box<dyn LockedState>, StateError> {
        let mut session = self.open().await?;
        session.migrate().await?;
        let key = self.tables.lock_key(STATE_NAME, "state");
        let got: bool = session
            .client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(session.err("take the state lock"))?;
        if !got {
            let (backend_pid, info) = session.holder(key).await?.unwrap_or((0, None));
            return Err(StateError::DatabaseLocked {
                location: session.location.clone(),
                info: info.map(Box::new),
                backend_pid,
            });
        }
        if let Some(left) = session.holder_row(None).await? {
            tracing::warn!(
                "took over the state lock record left by {left}: that run ended without releasing \
                 it (killed or crashed; its session, and so its lock, ended with it); the journal \
                 keeps what it did"
            );
        }
        let info = LockInfo::for_this_process(operation);
        let holder = serde_json::to_string(&info).map_err(|source| StateError::Encode {
            path: session.path(),
            source,
        })?;
        session
            .client
            .execute(
                &format!(
                    "INSERT INTO {} (name, holder, backend_pid) \
                     VALUES ($1, $2::text::jsonb, pg_backend_pid()) \
                     ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, \
                     backend_pid = EXCLUDED.backend_pid, locked_at = now()",
                    self.tables.lock
                ),
                &[&STATE_NAME, &holder],
            )
            .await
            .map_err(session.err("record the lock holder"))?;
        Ok(Box::new(PgLock {
            session,
            info,
            key,
            journal: None,
        }))
    }

    /// The trait's forget, releasing the lock explicitly: a dropped lock is freed by the server
    /// with its session, but its holder row would stay and the next run would warn about it.
    async fn forget(&self, id: &str) -> Result<Option<State>, StateError> {
        let mut lock = self.lock("state forget").await?;
        let Some(mut state) = lock.recover().await? else {
            lock.release().await?;
            return Ok(None);
        };
        let op = state.forget_account(id)?;
        state.apply_op(&op);
        lock.commit(&mut state).await?;
        if let Err(e) = lock.release().await {
            tracing::warn!("{e}");
        }
        Ok(Some(state))
    }

    async fn lock_info(&self) -> Result<Option<LockInfo>, StateError> {
        let session = self.open().await?;
        let key = self.tables.lock_key(STATE_NAME, "state");
        Ok(match session.holder(key).await? {
            None => None,
            Some((_, Some(info))) => Some(info),
            Some((pid, None)) => Some(unknown_holder(pid)),
        })
    }

    /// An advisory lock cannot be removed from another session: it lives as long as its
    /// holder's session. So `state unlock` ends that session (`pg_terminate_backend`): the
    /// holder's next state write fails, and what it did is in the journal, folded in by the next
    /// apply. A holder row without a held lock (a run that was killed) is simply removed.
    async fn unlock(&self) -> Result<Unlocked, StateError> {
        let session = self.open().await?;
        let key = self.tables.lock_key(STATE_NAME, "state");
        let held = session.holder(key).await?;
        let exists = schema::exists(&session.client, &self.tables)
            .await
            .map_err(session.err("look for the state tables"))?;
        let Some((pid, info)) = held else {
            if exists {
                session
                    .client
                    .execute(
                        &format!("DELETE FROM {} WHERE name = $1", self.tables.lock),
                        &[&STATE_NAME],
                    )
                    .await
                    .map_err(session.err("remove the lock holder"))?;
            }
            return Ok(Unlocked::Nothing);
        };
        let ended: bool = session
            .client
            .query_one("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(session.err("end the lock holder's session"))?;
        if !ended {
            return Err(StateError::Database {
                location: session.location.clone(),
                action: "end the lock holder's session",
                detail: format!(
                    "PostgreSQL did not end session {pid}; the user of `state.url` needs to be \
                     the same role as the holder's, a member of pg_signal_backend, or a superuser"
                ),
            });
        }
        if exists {
            session
                .client
                .execute(
                    &format!(
                        "DELETE FROM {} WHERE name = $1 AND backend_pid = $2",
                        self.tables.lock
                    ),
                    &[&STATE_NAME, &pid],
                )
                .await
                .map_err(session.err("remove the lock holder"))?;
        }
        Ok(Unlocked::SessionEnded {
            info: info.unwrap_or_else(|| unknown_holder(pid)),
            backend_pid: pid,
        })
    }
}

/// A holder that left no row (it died between taking the lock and writing its row).
fn unknown_holder(pid: i32) -> LockInfo {
    LockInfo {
        holder: "unknown".to_string(),
        pid: 0,
        host: "unknown".to_string(),
        created_at: "unknown".to_string(),
        operation: format!("(PostgreSQL session {pid})"),
        headcount_version: "unknown".to_string(),
    }
}

/// A held advisory lock: its session, which carries every write, and the open journal.
struct PgLock {
    session: Session,
    info: LockInfo,
    key: i64,
    /// How many ops the open journal holds, once begun.
    journal: Option<usize>,
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

    /// The run's scrubber learns the URL and its password in both spellings.
    #[test]
    fn url_secrets_hold_the_password_in_both_spellings() {
        let s = url_secrets(&SecretString::from(
            "postgres://u:p%40ss-word@h/db".to_string(),
        ));
        assert!(s.contains(&"p@ss-word".to_string()), "{s:?}");
        assert!(s.contains(&"p%40ss-word".to_string()), "{s:?}");
    }
}
