//! What every connector kind provides to the rest of headcount: its config entry (the struct
//! the config parses into), its checks, its field table, its builder and its `init` starter.
//! The registry (`registry.rs`) lists the kinds; each kind's folder implements these traits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use secrecy::{ExposeSecret, SecretString};

use super::{Source, Target};
use crate::http::{HttpClient, HttpClientBuilder, HttpError};
use crate::model::checks::Checks;
use crate::model::{ConnectorError, FieldSpec, HttpSettings, Scrubber, SecretRef};

/// What a builder needs besides its config entry.
pub struct BuildContext<'a> {
    /// The config file's folder: relative paths and `{ file: }` secrets resolve against it.
    pub base_dir: &'a Path,
    /// HTTP clients shared by every source and target of one vendor account.
    pub clients: &'a ClientPool,
    /// Where sources keep what incremental reads need between runs (Entra's delta link and
    /// last snapshot), beside the state, owner-only. `None`: every read is a full read.
    pub cache_dir: Option<PathBuf>,
    /// `plan --full`: ignore incremental cursors and read everything (the cursor is renewed).
    pub full_read: bool,
}

impl<'a> BuildContext<'a> {
    /// A context with no incremental-read cache (every read is full).
    pub fn new(base_dir: &'a Path, clients: &'a ClientPool) -> BuildContext<'a> {
        BuildContext {
            base_dir,
            clients,
            cache_dir: None,
            full_read: false,
        }
    }

    /// The folder a source named `name` keeps its incremental-read cursor in, if any.
    pub fn source_cache(&self, name: &str) -> Option<PathBuf> {
        self.cache_dir
            .as_ref()
            .map(|d| d.join(crate::util::file_safe(name)))
    }
    /// A path from the config, relative to the config file's folder.
    pub fn path(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// An entry's `rate_limit` and `timeout`, parsed (validation has reported them already).
    pub fn http_settings(
        &self,
        rate_limit: Option<&str>,
        timeout: Option<&str>,
    ) -> Result<HttpSettings, ConnectorError> {
        HttpSettings::parse(rate_limit, timeout)
            .map_err(|e| ConnectorError::Config(format!("`{}`: {e}", e.key())))
    }

    /// The HTTP client of one vendor account, named by its kind, base URL and credential
    /// reference: built from `make`'s builder (with the run's scrubber) from the resolved
    /// secret the first time, shared after.
    pub fn account_client(
        &self,
        kind: &str,
        base_url: &str,
        (key, credential): (&str, &SecretRef),
        make: impl FnOnce(SecretString) -> Result<HttpClientBuilder, HttpError>,
    ) -> Result<HttpClient, ConnectorError> {
        let account = format!("{kind} {} {}", base_url.trim(), credential.describe());
        self.clients
            .get_or_build(account, || {
                let secret = self
                    .secret(key, credential)
                    .map_err(|e| HttpError::Config(e.to_string()))?;
                make(secret)?.scrubber(self.scrubber().clone()).build()
            })
            .map_err(ConnectorError::from)
    }

    /// Reads a secret reference, saying which setting it is when it cannot be read.
    /// Every secret resolved here is registered in the run's scrubber, so that a vendor that
    /// echoes it back never puts it on a log, an error or the audit log.
    pub fn secret(&self, key: &str, reference: &SecretRef) -> Result<SecretString, ConnectorError> {
        let secret = reference
            .resolve(self.base_dir)
            .map_err(|e| ConnectorError::Config(format!("`{key}`: {e}")))?;
        self.clients.scrubber.register(secret.expose_secret());
        Ok(secret)
    }

    /// The run's scrubber, for the HTTP clients a connector builds.
    pub fn scrubber(&self) -> &Scrubber {
        &self.clients.scrubber
    }
}

/// One HTTP client (connection pool, auth, rate limiter, throttle pause, counters) per vendor
/// account, shared by the source and the target that use it: a vendor's rate limit is per
/// account, so two clients would each think they had all of it.
#[derive(Default)]
pub struct ClientPool {
    clients: Mutex<HashMap<String, HttpClient>>,
    /// The run's scrubber: the secrets connectors resolve and their clients send.
    scrubber: Scrubber,
}

impl ClientPool {
    /// A pool whose clients scrub with `scrubber` (the CLI's, so that its output and logs
    /// know the same secrets).
    pub fn with_scrubber(scrubber: Scrubber) -> ClientPool {
        ClientPool {
            clients: Mutex::default(),
            scrubber,
        }
    }

    pub fn scrubber(&self) -> &Scrubber {
        &self.scrubber
    }

    /// The client of the account `key` (kind, base URL and credential reference), built by
    /// `make` the first time it is asked for.
    pub fn get_or_build(
        &self,
        key: String,
        make: impl FnOnce() -> Result<HttpClient, HttpError>,
    ) -> Result<HttpClient, HttpError> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let client = make()?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// The request counters of every client built so far, by client name, summed when two
    /// clients share a name (the reconcile loop's `/metrics`; clients live as long as the pool,
    /// so these only grow).
    pub fn stats(&self) -> Vec<(String, crate::http::HttpStats)> {
        let clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut by_name: std::collections::BTreeMap<String, crate::http::HttpStats> =
            std::collections::BTreeMap::new();
        for c in clients.values() {
            let s = c.stats();
            let e = by_name.entry(c.name().to_string()).or_default();
            e.requests += s.requests;
            e.retries += s.retries;
            e.throttled += s.throttled;
            e.waited_ms += s.waited_ms;
            e.ambiguous += s.ambiguous;
        }
        by_name.into_iter().collect()
    }

    /// How many distinct clients were built (tests).
    pub fn len(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A source kind's config entry.
pub trait SourceSpec {
    /// The secret references the entry holds, by key (checked by `validate --online`).
    fn secrets(&self) -> Vec<(&'static str, &SecretRef)>;
    /// Offline checks of the entry (`headcount validate`).
    fn check(&self, c: &mut dyn Checks);
    /// The connector. `name` is the entry's name, for messages and logs.
    fn build(&self, name: &str, cx: &BuildContext<'_>) -> Result<Box<dyn Source>, ConnectorError>;
    /// The kind's block in `headcount init`.
    fn starter() -> SourceStarter;
}

/// A target kind's config entry.
pub trait TargetSpec {
    /// The kind's fixed fields (`headcount fields KIND`).
    const FIELDS: &'static [FieldSpec];
    /// The prefix of custom fields, for kinds that have them.
    const CUSTOM_PREFIX: Option<&'static str> = None;
    /// The config key that lists the custom field keys.
    const CUSTOM_FIELDS_KEY: &'static str = "custom_fields";
    /// Why the kind cannot delete accounts (Request Tracker only disables users), for kinds
    /// that cannot: `removed: delete` on such a target is a validation error saying this.
    const NO_DELETE: Option<&'static str> = None;
    /// Custom field keys the entry declares.
    fn custom_fields(&self) -> &[String] {
        &[]
    }
    /// The secret references the entry holds, by key.
    fn secrets(&self) -> Vec<(&'static str, &SecretRef)>;
    /// Offline checks of the entry.
    fn check(&self, c: &mut dyn Checks);
    /// The connector.
    fn build(&self, name: &str, cx: &BuildContext<'_>) -> Result<Box<dyn Target>, ConnectorError>;
    /// The kind's block in `headcount init`, mapping the source starter's expressions.
    fn starter(source: &SourceStarter) -> TargetStarter;
}

/// What a source kind contributes to `headcount init`: its YAML block and the expressions of
/// the common fields, which target starters map.
pub struct SourceStarter {
    pub name: &'static str,
    pub block: &'static str,
    pub email: &'static str,
    pub given: &'static str,
    pub family: &'static str,
    pub full: &'static str,
    pub login: &'static str,
    pub where_: Option<&'static str>,
    pub active: Option<&'static str>,
    /// Accounts created from this source start inactive (SPEC scenario S4).
    pub pending: bool,
}

/// What a target kind contributes to `headcount init`.
pub struct TargetStarter {
    pub name: &'static str,
    pub block: &'static str,
    pub identity: &'static str,
    pub fields: Vec<(String, String)>,
    /// Commented lines after `fields`.
    pub extra: &'static str,
    /// The `removed:` policy the starter suggests.
    pub removed: &'static str,
}

/// `(field, expression)` for a starter's `fields` list.
pub fn starter_field(field: &str, expr: &str) -> (String, String) {
    (field.to_string(), expr.to_string())
}
