//! The PostgreSQL state backend (SPEC section 10), for teams whose CI runners share no disk.
//!
//! Same semantics as the local files: one row per state (lineage, serial, document), the
//! serial checked and incremented by every write (a write whose serial moved is refused, never
//! lost), the journal of an apply in progress as rows appended one committed INSERT at a time
//! (durable as it happens, replayed by the next run), and the lock a `pg_try_advisory_lock` held
//! on a dedicated session for the lock's life: the server drops it when that session ends, so a
//! killed run never leaves a lock behind. A holder row says who holds it, for the refusal.

mod connect;
mod fold;
mod locked;
mod schema;
mod session;

use async_trait::async_trait;
use secrecy::SecretString;

use super::backend::{LockedState, StateBackend};
use super::error::StateError;
use super::lock::{LockInfo, Unlocked};
use super::model::State;
use super::store::Loaded;
use connect::Target;
use locked::PgLock;
use schema::Tables;
pub use schema::check_sql_identifier;
use session::Session;

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
