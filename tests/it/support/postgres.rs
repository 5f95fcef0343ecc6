//! The real PostgreSQL the `postgres` state backend is tested against: our own throwaway
//! cluster (`scripts/start-postgres.sh start`, which reuses one that is running) on
//! 127.0.0.1:18543, trust authentication. Each test gets its own table name ([`Postgres::table`])
//! in the `postgres` database, so tests never see each other's state or lock. A missing server
//! goes through [`super::missing_prerequisite`]: a visible `SKIPPED:` line, or a failure under
//! `CI=true`.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use headcount::state::PostgresBackend;
use secrecy::SecretString;

pub struct Postgres {
    pub port: u16,
}

impl Postgres {
    /// The connection URL (superuser `headcount`, no password: trust auth on loopback).
    pub fn url(&self) -> String {
        format!(
            "postgres://headcount@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// The CA that signed the server's certificate (for 127.0.0.1).
    pub fn ca_file(&self) -> String {
        let dir =
            std::env::var("HEADCOUNT_PG_DIR").unwrap_or_else(|_| "/tmp/headcount-it/pg".into());
        format!("{dir}/tls/ca.pem")
    }

    /// A backend on `table` reached with `url`.
    pub fn backend_at(&self, url: String, table: &str) -> PostgresBackend {
        PostgresBackend::new(
            Box::new(move || Ok(SecretString::from(url.clone()))),
            None,
            Some(table),
        )
    }

    /// A table name no other test (or earlier run) uses.
    pub fn table(&self, label: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!(
            "it_{label}_{}_{n}_{}",
            std::process::id(),
            nanos % 1_000_000_000
        )
    }

    /// A backend on `table` of this server.
    pub fn backend(&self, table: &str) -> PostgresBackend {
        let url = self.url();
        PostgresBackend::new(
            Box::new(move || Ok(SecretString::from(url.clone()))),
            None,
            Some(table),
        )
    }

    /// Runs `sql` through psql, for checks the backend does not expose.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-tA",
                "-h",
                "127.0.0.1",
                "-U",
                "headcount",
                "-d",
                "postgres",
            ])
            .args(["-p", &self.port.to_string(), "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// The shared server, started on first use; `None` when PostgreSQL is missing outside CI.
pub fn server() -> Option<&'static Postgres> {
    static SERVER: OnceLock<Result<Postgres, Start>> = OnceLock::new();
    match SERVER.get_or_init(start) {
        Ok(s) => Some(s),
        Err(Start::Missing(why)) => {
            super::missing_prerequisite(why);
            None
        }
        Err(Start::Failed(e)) => panic!("{e}"),
    }
}

enum Start {
    Missing(String),
    Failed(String),
}

fn installed() -> bool {
    let Ok(dir) = std::fs::read_dir("/usr/lib/postgresql") else {
        return false;
    };
    dir.flatten().any(|v| v.path().join("bin/initdb").exists())
}

fn start() -> Result<Postgres, Start> {
    if !installed() {
        return Err(Start::Missing(
            "PostgreSQL is not installed: run ./scripts/start-postgres.sh install (as root)"
                .to_string(),
        ));
    }
    let port: u16 = std::env::var("HEADCOUNT_PG_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(18543);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/start-postgres.sh");
    let out = Command::new(&script)
        .arg("start")
        .env("HEADCOUNT_PG_PORT", port.to_string())
        .output()
        .map_err(|e| Start::Failed(format!("run {}: {e}", script.display())))?;
    if !out.status.success() {
        return Err(Start::Failed(format!(
            "{} start failed: {}{}",
            script.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(Postgres { port })
}
