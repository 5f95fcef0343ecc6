//! The PostgreSQL state's tables and their versioned migrations. Created on first use, under a
//! transaction-scoped advisory lock so that two first runs do not race; a database written by a
//! newer headcount (a higher version) is refused rather than misread.
//!
//! Tables, all named after `state.table` (default `headcount_state`):
//! - `T`: one row per state: `name`, `lineage`, `serial`, `document` (the state JSON);
//! - `T_journal`: the journal of the apply in progress, one row per operation (`seq` orders
//!   them); the row with a NULL `op` is the header (lineage and base serial);
//! - `T_lock`: who holds the advisory lock (the lock itself lives in the server's session);
//! - `T_migrations`: the schema versions applied.

use sha2::{Digest, Sha256};

use crate::state::error::StateError;

/// The newest schema version this headcount knows.
pub(super) const SCHEMA_VERSION: i32 = 1;

/// Why `name` cannot be a schema or table name, if it cannot. Names are put into SQL (quoted),
/// so only plain lower-case identifiers are allowed, short enough for the `_migrations` suffix.
pub fn check_sql_identifier(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("it is empty".to_string()),
        Some(c) if c.is_ascii_lowercase() || c == '_' => {}
        Some(_) => return Err("it must start with a lower-case letter or `_`".to_string()),
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err("only lower-case letters, digits and `_` are allowed".to_string());
    }
    if name.len() > 48 {
        return Err("it is longer than 48 characters".to_string());
    }
    Ok(())
}

/// The quoted, schema-qualified names of the state's tables.
#[derive(Debug, Clone)]
pub(super) struct Tables {
    pub schema: String,
    pub table: String,
    pub state: String,
    pub journal: String,
    pub lock: String,
    pub migrations: String,
}

impl Tables {
    pub(super) fn new(schema: &str, table: &str) -> Tables {
        let q = |t: &str| format!("\"{schema}\".\"{t}\"");
        Tables {
            schema: schema.to_string(),
            table: table.to_string(),
            state: q(table),
            journal: q(&format!("{table}_journal")),
            lock: q(&format!("{table}_lock")),
            migrations: q(&format!("{table}_migrations")),
        }
    }

    /// The advisory lock key of the state `name` in these tables: 64 bits of a SHA-256, so two
    /// states (other tables, other schemas) never share a lock in practice.
    pub(super) fn lock_key(&self, name: &str, purpose: &str) -> i64 {
        let digest = Sha256::digest(
            format!("headcount {purpose} {}.{}/{name}", self.schema, self.table).as_bytes(),
        );
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(bytes)
    }

    /// The statements of each migration, in order: index `i` brings the schema to version
    /// `i + 1`.
    fn migrations(&self) -> Vec<String> {
        vec![format!(
            "CREATE TABLE IF NOT EXISTS {state} (
                 name text PRIMARY KEY,
                 lineage text NOT NULL,
                 serial bigint NOT NULL CHECK (serial > 0),
                 document jsonb NOT NULL,
                 updated_at timestamptz NOT NULL DEFAULT now());
             CREATE TABLE IF NOT EXISTS {journal} (
                 name text NOT NULL,
                 seq bigserial,
                 lineage text NOT NULL,
                 base_serial bigint NOT NULL,
                 op jsonb,
                 written_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (name, seq));
             CREATE TABLE IF NOT EXISTS {lock} (
                 name text PRIMARY KEY,
                 holder jsonb NOT NULL,
                 backend_pid integer NOT NULL,
                 locked_at timestamptz NOT NULL DEFAULT now());",
            state = self.state,
            journal = self.journal,
            lock = self.lock,
        )]
    }
}

/// Whether the state table exists yet (a reader that finds none sees no state, and creates
/// nothing).
pub(super) async fn exists(
    client: &tokio_postgres::Client,
    tables: &Tables,
) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL",
            &[&tables.state, &tables.migrations],
        )
        .await?;
    row.try_get(0)
}

/// The schema version the database is at (0: never migrated).
pub(super) async fn version(
    client: &tokio_postgres::Client,
    tables: &Tables,
) -> Result<i32, tokio_postgres::Error> {
    let row = client
        .query_one(
            &format!(
                "SELECT coalesce(max(version), 0) FROM {}",
                tables.migrations
            ),
            &[],
        )
        .await?;
    row.try_get(0)
}

/// What [`migrate`] may fail with.
pub(super) enum MigrateError {
    Db(tokio_postgres::Error),
    Newer(i32),
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(e: tokio_postgres::Error) -> Self {
        MigrateError::Db(e)
    }
}

/// Creates the schema and tables, or brings them to [`SCHEMA_VERSION`], in one transaction.
pub(super) async fn migrate(
    client: &mut tokio_postgres::Client,
    tables: &Tables,
    name: &str,
) -> Result<(), MigrateError> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&tables.lock_key(name, "migrate")],
    )
    .await?;
    let has_schema: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&tables.schema],
        )
        .await?
        .try_get(0)?;
    if !has_schema {
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{}\"",
            tables.schema
        ))
        .await?;
    }
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {} (version integer PRIMARY KEY, \
         applied_at timestamptz NOT NULL DEFAULT now())",
        tables.migrations
    ))
    .await?;
    let current: i32 = tx
        .query_one(
            &format!(
                "SELECT coalesce(max(version), 0) FROM {}",
                tables.migrations
            ),
            &[],
        )
        .await?
        .try_get(0)?;
    if current > SCHEMA_VERSION {
        return Err(MigrateError::Newer(current));
    }
    for (i, sql) in tables.migrations().iter().enumerate() {
        let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
        if version <= current {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            &format!("INSERT INTO {} (version) VALUES ($1)", tables.migrations),
            &[&version],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The error for a database at a newer schema version.
pub(super) fn newer(location: &str, found: i32) -> StateError {
    StateError::DatabaseNewer {
        location: location.to_string(),
        found,
        supported: SCHEMA_VERSION,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_plain_lower_case_names() {
        assert!(check_sql_identifier("headcount_state").is_ok());
        assert!(check_sql_identifier("_s2").is_ok());
        for bad in ["", "State", "2x", "a-b", "a\"b", "a;drop", &"x".repeat(49)] {
            assert!(check_sql_identifier(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lock_keys_differ_between_tables_and_purposes() {
        let a = Tables::new("public", "a");
        let b = Tables::new("public", "b");
        assert_ne!(
            a.lock_key("default", "state"),
            b.lock_key("default", "state")
        );
        assert_ne!(
            a.lock_key("default", "state"),
            a.lock_key("default", "migrate")
        );
        assert_eq!(
            a.lock_key("default", "state"),
            a.lock_key("default", "state")
        );
        assert_eq!(a.journal, "\"public\".\"a_journal\"");
    }
}
