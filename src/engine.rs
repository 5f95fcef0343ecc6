//! Orchestration around the pure planner: load and validate the config, build connectors, read
//! sources and targets, plan, and assemble the plan document. The CLI and (later) the reconcile
//! loop both drive this; it holds no policy of its own.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::apply::Secrets;
use crate::config::{self, LoadedConfig};
use crate::connectors::{BuildContext, ClientPool, LiveAccount, Source, SourceRecord, Target};
use crate::drift::DriftDocument;
use crate::model::Scrubber;
use crate::plan::{self, Action, ConfigInfo, GitInfo, PlanDocument, StateRef};
use crate::planner::{self, PlannedSync, SyncInput, SyncSpec};
use crate::state::{LocalBackend, State, StateBackend, StateStore};

/// Why the engine could not go on. The message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Connector(String),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error("{0}")]
    Usage(String),
}

/// A loaded, validated config, its state backend and where its audit log goes.
pub struct Engine {
    pub loaded: LoadedConfig,
    pub specs: Vec<SyncSpec>,
    pub warnings: Vec<String>,
    pub state: Arc<dyn StateBackend>,
    /// The audit log, resolved against the config's folder.
    pub audit_path: PathBuf,
    /// HTTP clients per vendor account, kept for the engine's life so that every connect (and
    /// every run of a reconcile loop) shares one rate limiter per account.
    pub clients: ClientPool,
    /// `plan --full`: sources ignore incremental cursors (delta links) and read everything.
    pub full_read: bool,
}

/// What was read from sources and targets; read errors are kept per connector so that the
/// planner stops only the syncs they concern.
#[derive(Default)]
pub struct Snapshot {
    pub records: HashMap<String, Result<Vec<SourceRecord>, String>>,
    pub live: HashMap<String, Result<Vec<LiveAccount>, String>>,
}

impl Snapshot {
    /// The live accounts of every target that could be listed.
    pub fn live_ok(&self) -> HashMap<String, Vec<LiveAccount>> {
        self.live
            .iter()
            .filter_map(|(k, v)| v.as_ref().ok().map(|l| (k.clone(), l.clone())))
            .collect()
    }
}

/// A plan of the syncs named on the command line, with what it was made from (apply needs the
/// connectors and the live accounts again).
pub struct Planned {
    pub conns: Connections,
    pub snapshot: Snapshot,
    pub planned: Vec<PlannedSync>,
}

/// Connectors for the selected syncs, built once per source and target name.
pub struct Connections {
    pub sources: HashMap<String, Box<dyn Source>>,
    pub targets: HashMap<String, Box<dyn Target>>,
}

impl Engine {
    /// Loads and validates `path`. Diagnostics are rendered into the error (with colour when
    /// `color`).
    pub fn open(path: &Path, color: bool) -> Result<Engine, EngineError> {
        Engine::open_with(path, color, Scrubber::default())
    }

    /// [`Engine::open`] with the run's scrubber: every secret the connectors resolve is
    /// registered in it, so the caller can scrub its own output and logs with the same one.
    pub fn open_with(path: &Path, color: bool, scrubber: Scrubber) -> Result<Engine, EngineError> {
        let loaded = config::load(path).map_err(|e| EngineError::Config(e.render(color)))?;
        let validated =
            config::validate(&loaded).map_err(|e| EngineError::Config(e.render(color)))?;
        register_state_url(&loaded, &scrubber);
        Ok(Engine {
            state: state_backend(&loaded),
            audit_path: audit_path(&loaded),
            loaded,
            specs: validated.syncs,
            warnings: validated.warnings,
            clients: ClientPool::with_scrubber(scrubber),
            full_read: false,
        })
    }

    /// Where sources keep incremental-read cursors: `cache/` beside the state file.
    pub fn cache_dir(&self) -> PathBuf {
        let state = self.loaded.base_dir.join(&self.loaded.config.state.path);
        state
            .parent()
            .map(|p| p.join("cache"))
            .unwrap_or_else(|| PathBuf::from("cache"))
    }

    /// The run's scrubber (secrets resolved so far and the credentials clients sent).
    pub fn scrubber(&self) -> &Scrubber {
        self.clients.scrubber()
    }

    /// The syncs named on the command line (all when none), in config order.
    pub fn select(&self, names: &[String]) -> Result<Vec<SyncSpec>, EngineError> {
        for n in names {
            if !self.specs.iter().any(|s| &s.name == n) {
                let hint = crate::util::nearest(n, self.specs.iter().map(|s| s.name.as_str()))
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                return Err(EngineError::Usage(format!(
                    "there is no sync named `{n}` in {}{hint}",
                    self.loaded.path.display()
                )));
            }
        }
        Ok(self
            .specs
            .iter()
            .filter(|s| names.is_empty() || names.contains(&s.name))
            .cloned()
            .collect())
    }

    /// Builds the connectors the selected syncs need.
    pub fn connect(
        &self,
        specs: &[SyncSpec],
        need_sources: bool,
    ) -> Result<Connections, EngineError> {
        let mut sources = HashMap::new();
        let mut targets = HashMap::new();
        let cfg = &self.loaded.config;
        let cx = BuildContext {
            cache_dir: Some(self.cache_dir()),
            full_read: self.full_read,
            ..BuildContext::new(&self.loaded.base_dir, &self.clients)
        };
        // Targets first: a source on the same vendor account then shares the target's client,
        // whose `rate_limit` and `timeout` the config sets.
        for spec in specs {
            if !targets.contains_key(&spec.target) {
                let tc = cfg.targets.get(&spec.target).ok_or_else(|| {
                    EngineError::Config(format!("target `{}` is not configured", spec.target))
                })?;
                let built = tc.build(&spec.target, &cx).map_err(|e| {
                    EngineError::Connector(
                        self.scrubber()
                            .scrub(&format!("target `{}`: {e}", spec.target)),
                    )
                })?;
                targets.insert(spec.target.clone(), built);
            }
        }
        for spec in specs.iter().filter(|_| need_sources) {
            if !sources.contains_key(&spec.source) {
                let sc = cfg.sources.get(&spec.source).ok_or_else(|| {
                    EngineError::Config(format!("source `{}` is not configured", spec.source))
                })?;
                let built = sc.build(&spec.source, &cx).map_err(|e| {
                    EngineError::Connector(
                        self.scrubber()
                            .scrub(&format!("source `{}`: {e}", spec.source)),
                    )
                })?;
                sources.insert(spec.source.clone(), built);
            }
        }
        Ok(Connections { sources, targets })
    }

    /// What `validate --online` does: one page of each source ([`Source::probe`]) and a
    /// listing of each target, errors kept per connector.
    pub async fn probe(&self, conns: &Connections) -> Snapshot {
        let mut snap = Snapshot::default();
        for (name, source) in &conns.sources {
            let r = source
                .probe()
                .await
                .map_err(|e| self.scrubber().scrub(&e.to_string()));
            snap.records.insert(name.clone(), r);
        }
        snap.live = list_targets(conns)
            .await
            .into_iter()
            .map(|(k, v)| (k, v.map_err(|e| self.scrubber().scrub(&e))))
            .collect();
        snap
    }

    /// Reads every source and lists every target once.
    pub async fn read(&self, conns: &Connections) -> Snapshot {
        let mut snap = Snapshot::default();
        for (name, source) in &conns.sources {
            let r = source
                .read()
                .await
                .map_err(|e| self.scrubber().scrub(&e.to_string()));
            snap.records.insert(name.clone(), r);
        }
        // Last line of defence: whatever a connector put into its error, scrubbed before it
        // reaches a plan, the output or the audit log.
        snap.live = list_targets(conns)
            .await
            .into_iter()
            .map(|(k, v)| (k, v.map_err(|e| self.scrubber().scrub(&e))))
            .collect();
        snap
    }

    /// Selects the named syncs (all when none), reads their sources and targets, and plans
    /// them. Syncs gone from the config are forgotten only when all syncs are planned.
    pub async fn read_and_plan(
        &self,
        names: &[String],
        state: Option<&State>,
        allow_mass_removal: bool,
    ) -> Result<Planned, EngineError> {
        let specs = self.select(names)?;
        let conns = self.connect(&specs, true)?;
        let snapshot = self.read(&conns).await;
        let planned = self.plan(
            &specs,
            &snapshot,
            state,
            allow_mass_removal,
            names.is_empty(),
        );
        Ok(Planned {
            conns,
            snapshot,
            planned,
        })
    }

    /// Plans the selected syncs against a snapshot. Pure once the snapshot is read.
    pub fn plan(
        &self,
        specs: &[SyncSpec],
        snap: &Snapshot,
        state: Option<&State>,
        allow_mass_removal: bool,
        all_syncs: bool,
    ) -> Vec<PlannedSync> {
        let missing: Result<Vec<SourceRecord>, String> = Err("not read".to_string());
        let missing_live: Result<Vec<LiveAccount>, String> = Err("not listed".to_string());
        let inputs: Vec<SyncInput<'_>> = specs
            .iter()
            .map(|spec| {
                let records = snap.records.get(&spec.source).unwrap_or(&missing);
                let live = snap.live.get(&spec.target).unwrap_or(&missing_live);
                SyncInput {
                    spec,
                    records: records.as_deref().map_err(String::as_str),
                    live: live.as_deref().map_err(String::as_str),
                    state,
                    allow_mass_removal,
                }
            })
            .collect();
        let mut planned = planner::plan_all(&inputs, state, all_syncs);
        if let Some(state) = state {
            hold_unsettled_creates(&mut planned, state, unix_now());
        }
        planned
    }

    /// The plan document for planned syncs (the only place that reads the clock and git).
    pub fn document(&self, planned: &[PlannedSync], state: Option<&State>) -> PlanDocument {
        let created_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut doc = PlanDocument {
            format_version: plan::FORMAT_VERSION.to_string(),
            headcount_version: env!("CARGO_PKG_VERSION").to_string(),
            created_at,
            config: ConfigInfo {
                path: self.loaded.path.display().to_string(),
                sha256: self.loaded.sha256.clone(),
                git: git_info(&self.loaded.path),
            },
            state: StateRef {
                lineage: state.map(|s| s.lineage.clone()),
                serial: state.map(|s| s.serial).unwrap_or(0),
            },
            syncs: planned.iter().map(|p| p.plan.clone()).collect(),
            base: None,
        };
        self.sensitive().scrub_document(&mut doc);
        doc
    }

    /// The drift document (SPEC section 9) of planned syncs: each difference labelled by cause
    /// against the last-applied values in `state` (the classification is
    /// `planner::drift::classify`, pure). `planned` is planned with the mass-removal guard
    /// lifted; an empty source read is an error here instead.
    pub fn drift_document(&self, planned: &Planned, state: Option<&State>) -> DriftDocument {
        let doc = self.document(&planned.planned, state);
        let syncs = planned
            .planned
            .iter()
            .map(|p| {
                let live = planned
                    .snapshot
                    .live
                    .get(&p.plan.target)
                    .and_then(|l| l.as_deref().ok())
                    .unwrap_or(&[]);
                let mut drift = planner::drift::classify(planner::drift::DriftInput {
                    spec: self.specs.iter().find(|s| s.name == p.plan.name),
                    planned: p,
                    live,
                    state,
                });
                // Planned with the mass-removal guard lifted (drift shows large removals rather
                // than hide them), but an empty source is a broken read, never "everyone left".
                let managed = state
                    .and_then(|s| s.syncs.get(&p.plan.name))
                    .map_or(0, |s| s.accounts.len());
                let empty = planned
                    .snapshot
                    .records
                    .get(&p.plan.source)
                    .is_some_and(|r| r.as_ref().is_ok_and(Vec::is_empty));
                if empty && managed > 0 && drift.errors.is_empty() {
                    drift.differences.clear();
                    drift.summary = Default::default();
                    drift.errors.push(format!(
                        "source `{}` returned no records while this sync manages {managed} accounts: drift is not computed from an empty read. Check the source",
                        p.plan.source
                    ));
                }
                // The last guard, as for plans: whatever a bug put there, a sensitive field
                // shows the marker only.
                let sensitive = self.sensitive();
                for d in &mut drift.differences {
                    for (name, f) in &mut d.fields {
                        if sensitive.is_sensitive(&drift.name, Some(&drift.target), name) {
                            f.sensitive = true;
                            for v in [&mut f.last_applied, &mut f.live, &mut f.desired] {
                                if !v.is_null() {
                                    *v = plan::sensitive_marker();
                                }
                            }
                        }
                    }
                }
                drift
            })
            .collect();
        DriftDocument {
            format_version: crate::drift::FORMAT_VERSION.to_string(),
            headcount_version: doc.headcount_version,
            created_at: doc.created_at,
            config: doc.config,
            state: doc.state,
            syncs,
        }
    }

    /// The sensitive fields of the configured syncs: the guard every writer of plans, state,
    /// journal and audit log runs (see [`crate::sensitive`]).
    pub fn sensitive(&self) -> crate::sensitive::SensitiveFields {
        crate::sensitive::SensitiveFields::of(&self.specs)
    }

    /// The syncs of the config as it was at `gitref` (for `plan --base`), and the commit it
    /// resolved to. The file is read from git, at the same path relative to the repository.
    pub fn base_specs(&self, gitref: &str) -> Result<(Vec<SyncSpec>, String), EngineError> {
        let usage = |msg: String| EngineError::Usage(msg);
        let path = std::fs::canonicalize(&self.loaded.path).map_err(|e| {
            usage(format!(
                "cannot resolve {}: {e}",
                self.loaded.path.display()
            ))
        })?;
        let dir = path.parent().unwrap_or(Path::new("/"));
        let repo = git2::Repository::discover(dir).map_err(|_| {
            usage(format!(
                "--base needs the config to be in a git repository, and {} is not",
                dir.display()
            ))
        })?;
        let workdir = repo
            .workdir()
            .and_then(|w| std::fs::canonicalize(w).ok())
            .ok_or_else(|| usage("--base needs a repository with a work tree".to_string()))?;
        let rel = path.strip_prefix(&workdir).map_err(|_| {
            usage(format!(
                "{} is outside the repository {}",
                path.display(),
                workdir.display()
            ))
        })?;
        let rel_text = rel.to_string_lossy().replace('\\', "/");
        let commit = repo
            .revparse_single(gitref)
            .and_then(|o| o.peel_to_commit())
            .map_err(|e| {
                usage(format!(
                    "--base {gitref}: no such commit ({}); fetch it first, e.g. `git fetch origin main`",
                    e.message()
                ))
            })?;
        let blob = commit
            .tree()
            .and_then(|t| t.get_path(rel))
            .and_then(|entry| entry.to_object(&repo))
            .and_then(|o| o.peel_to_blob())
            .map_err(|_| {
                usage(format!(
                    "--base {gitref}: {rel_text} does not exist at that commit"
                ))
            })?;
        let text = String::from_utf8_lossy(blob.content()).into_owned();
        let shown = PathBuf::from(format!("{gitref}:{rel_text}"));
        let config =
            config::parse(&text, &shown).map_err(|e| EngineError::Config(e.render(false)))?;
        let loaded = LoadedConfig {
            path: shown,
            base_dir: self.loaded.base_dir.clone(),
            sha256: crate::util::sha256_hex(text.as_bytes()),
            text,
            config,
        };
        let validated =
            config::validate(&loaded).map_err(|e| EngineError::Config(e.render(false)))?;
        Ok((validated.syncs, commit.id().to_string()))
    }

    /// Sensitive values of planned creates, by sync.
    pub fn secrets(planned: &[PlannedSync]) -> Secrets {
        planned
            .iter()
            .filter(|p| !p.secrets.is_empty())
            .map(|p| (p.plan.name.clone(), p.secrets.clone()))
            .collect()
    }

    /// Why a saved plan cannot be applied now, if it cannot: another config, another state, or
    /// an account that changed in the target since the plan.
    pub fn check_stale(
        &self,
        doc: &PlanDocument,
        state: Option<&State>,
        live: &HashMap<String, Result<Vec<LiveAccount>, String>>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let current = self.loaded.path.display().to_string();
        // The same file named two ways (`./headcount.yaml`, an absolute path) is still the same.
        let same_file = doc.config.path == current
            || matches!(
                (
                    std::fs::canonicalize(&doc.config.path),
                    std::fs::canonicalize(&self.loaded.path),
                ),
                (Ok(a), Ok(b)) if a == b
            );
        if doc.config.sha256 != self.loaded.sha256 && !same_file {
            problems.push(format!(
                "the plan was made with another config file, {}, not {current}: apply it with `headcount --config {} apply PLANFILE`, or make a new plan with this config",
                doc.config.path, doc.config.path
            ));
        } else if doc.config.sha256 != self.loaded.sha256 {
            problems.push(format!(
                "the config {} changed since the plan was made (sha256 {} then, {} now)",
                self.loaded.path.display(),
                short_hash(&doc.config.sha256),
                short_hash(&self.loaded.sha256)
            ));
        }
        let now = StateRef {
            lineage: state.map(|s| s.lineage.clone()),
            serial: state.map(|s| s.serial).unwrap_or(0),
        };
        if now != doc.state {
            problems.push(format!(
                "the state changed since the plan was made (lineage {} serial {} then, lineage {} serial {} now): an apply ran in between",
                doc.state.lineage.as_deref().unwrap_or("none"),
                doc.state.serial,
                now.lineage.as_deref().unwrap_or("none"),
                now.serial
            ));
        }
        for sync in &doc.syncs {
            let spec = self.specs.iter().find(|s| s.name == sync.name);
            let accounts = match live.get(&sync.target) {
                Some(Ok(l)) => l,
                Some(Err(e)) => {
                    if sync.changes.iter().any(|c| c.action != Action::Forget) {
                        problems.push(format!("target `{}` could not be listed: {e}", sync.target));
                    }
                    continue;
                }
                None => continue,
            };
            let by_id: HashMap<&str, &LiveAccount> =
                accounts.iter().map(|a| (a.id.as_str(), a)).collect();
            let by_identity = spec
                .map(|s| identity_index(s, accounts))
                .unwrap_or_default();
            for change in &sync.changes {
                match (&change.target_id, &change.live_fingerprint) {
                    (Some(id), Some(fp)) => match by_id.get(id.as_str()) {
                        Some(acc) if planner::fingerprint(acc) == *fp => {}
                        Some(_) => problems.push(format!(
                            "sync `{}`: account {id} ({}) changed in the target since the plan",
                            sync.name,
                            first_identity(change)
                        )),
                        None => problems.push(format!(
                            "sync `{}`: account {id} ({}) no longer exists in the target",
                            sync.name,
                            first_identity(change)
                        )),
                    },
                    (None, _)
                        if change.action == Action::Create
                            && state.is_some_and(|s| {
                                unsettled(s, &sync.name, &change.identity, unix_now()).is_some()
                            }) =>
                    {
                        problems.push(format!(
                            "sync `{}`: {} was to be created, but an earlier create of it has no known outcome (a run was stopped); plan again",
                            sync.name,
                            first_identity(change)
                        ));
                    }
                    (None, _) if change.action == Action::Create => {
                        if let Some(acc) = change
                            .identity
                            .iter()
                            .find_map(|(k, v)| by_identity.get(&(k.clone(), v.clone())))
                        {
                            problems.push(format!(
                                "sync `{}`: {} was to be created but account {} with that identity now exists in the target",
                                sync.name,
                                first_identity(change),
                                acc.id
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
        problems
    }
}

/// Refuses the creates of identities whose earlier create has no known outcome (a run was
/// killed while it was in flight, and the lookup could not find the account yet): creating
/// again could make a second account once the first request lands. The sync's plan carries an
/// error saying so and until when.
/// An intent past its window holds nothing: `plan` (which resolves nothing, it takes no lock)
/// then plans the create again, and the apply records a new intent for it.
fn hold_unsettled_creates(planned: &mut [PlannedSync], state: &State, now: i64) {
    for p in planned.iter_mut() {
        let plan = &mut p.plan;
        let mut held = Vec::new();
        plan.changes.retain(|c| {
            match (c.action == Action::Create)
                .then(|| unsettled(state, &plan.name, &c.identity, now))
                .flatten()
            {
                Some(intent) => {
                    held.push(intent.clone());
                    false
                }
                None => true,
            }
        });
        for intent in held {
            plan.summary.create = plan.summary.create.saturating_sub(1);
            plan.errors.push(format!(
                "a create of {} sent at {} by a run that was stopped has no known outcome, and the target does not show the account (yet); it is not created again, since that could make a second account. The request may still take effect until {}: run again after that, or once the account appears (it is then recorded as created)",
                identity_text(&intent.identity),
                unix_text(intent.recorded_at),
                unix_text(intent.settles_by)
            ));
        }
    }
}

/// The intent of `sync` for `identity` that may still take effect at `now`.
fn unsettled<'s>(
    state: &'s State,
    sync: &str,
    identity: &std::collections::BTreeMap<String, String>,
    now: i64,
) -> Option<&'s crate::state::Intent> {
    state.intent(sync, identity).filter(|i| now <= i.settles_by)
}

/// Unix time now (the engine reads the clock; the planner does not).
fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `userName=ann` (all identity fields), for messages.
pub fn identity_text(identity: &std::collections::BTreeMap<String, String>) -> String {
    identity
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unix_text(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// Whether `account` carries one of `identity`'s values (normalised as the sync's identity
/// fields are), as the planner matches accounts.
pub fn identity_matches(
    spec: &SyncSpec,
    account: &LiveAccount,
    identity: &std::collections::BTreeMap<String, String>,
) -> bool {
    let specs = planner::desired::field_specs(spec);
    identity.iter().any(|(key, want)| {
        let norm = specs
            .get(key)
            .and_then(|f| f.identity)
            .unwrap_or(crate::model::IdentityNorm::Exact);
        matches!(account.fields.get(key), Some(Value::String(s)) if norm.normalise(s) == *want)
    })
}

/// The state backend the config names (the local file backend, for now). Used without
/// validating the syncs too, so `state` commands work while the config is mid-edit.
pub fn state_backend(loaded: &LoadedConfig) -> Arc<dyn StateBackend> {
    let state = &loaded.config.state;
    match state.backend {
        config::StateBackendKind::Local => Arc::new(LocalBackend::new(StateStore::new(
            loaded.base_dir.join(&state.path),
        ))),
        config::StateBackendKind::Postgres => {
            // Resolved when first connecting, so that `state` commands report a missing
            // variable where it matters, and the URL (with its password) is held no longer.
            let url = state.url.clone();
            let base_dir = loaded.base_dir.clone();
            let source: crate::state::UrlSource = Box::new(move || match &url {
                Some(r) => r.resolve(&base_dir).map_err(|e| e.to_string()),
                None => Err("`backend: postgres` needs `url: { env: VARIABLE }`".to_string()),
            });
            Arc::new(crate::state::PostgresBackend::new(
                source,
                state.schema.as_deref(),
                state.table.as_deref(),
            ))
        }
    }
}

/// Registers the PostgreSQL state URL and its password with the run's scrubber, so that no
/// output or log line of the run can show them (the backend scrubs its own errors too).
fn register_state_url(loaded: &LoadedConfig, scrubber: &Scrubber) {
    if let Some(r) = &loaded.config.state.url
        && let Ok(url) = r.resolve(&loaded.base_dir)
    {
        for secret in crate::state::postgres_url_secrets(&url) {
            scrubber.register(&secret);
        }
    }
}

/// The audit log's path: `audit.path`, relative to the config file.
pub fn audit_path(loaded: &LoadedConfig) -> PathBuf {
    loaded.base_dir.join(&loaded.config.audit.path)
}

/// Lists each target once.
pub async fn list_targets(
    conns: &Connections,
) -> HashMap<String, Result<Vec<LiveAccount>, String>> {
    let mut out = HashMap::new();
    for (name, target) in &conns.targets {
        let r = target.list().await.map_err(|e| e.to_string());
        out.insert(name.clone(), r);
    }
    out
}

fn short_hash(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

fn first_identity(change: &plan::Change) -> String {
    change.identity.values().next().cloned().unwrap_or_default()
}

/// Live accounts by (identity key, normalised value), to check creates in one pass.
fn identity_index<'a>(
    spec: &SyncSpec,
    accounts: &'a [LiveAccount],
) -> HashMap<(String, String), &'a LiveAccount> {
    let specs = planner::desired::field_specs(spec);
    let mut index = HashMap::new();
    for key in &spec.identity {
        let norm = specs
            .get(key)
            .and_then(|f| f.identity)
            .unwrap_or(crate::model::IdentityNorm::Exact);
        for acc in accounts {
            if let Some(Value::String(s)) = acc.fields.get(key) {
                index.insert((key.clone(), norm.normalise(s)), acc);
            }
        }
    }
    index
}

/// The git commit of the repository holding the config, and whether the work tree is dirty.
pub fn git_info(config_path: &Path) -> Option<GitInfo> {
    let dir = config_path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let repo = git2::Repository::discover(dir).ok()?;
    let commit = repo.head().ok()?.peel_to_commit().ok()?.id().to_string();
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(false).include_ignored(false);
    let dirty = repo
        .statuses(Some(&mut opts))
        .map(|s| !s.is_empty())
        .unwrap_or(false);
    Some(GitInfo { commit, dirty })
}

/// Names of the sensitive fields of a plan, to know whether sources must be re-read on apply.
pub fn needs_secrets(doc: &PlanDocument) -> HashSet<String> {
    doc.syncs
        .iter()
        .filter(|s| {
            s.changes
                .iter()
                .any(|c| c.fields.values().any(|f| f.sensitive))
        })
        .map(|s| s.name.clone())
        .collect()
}
