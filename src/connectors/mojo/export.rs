//! The `csv_export` target: Mojo Helpdesk CSV import files written to a folder.
//!
//! There is no remote system to ask what exists, so the exports themselves are the live state:
//! every `apply` adds a new numbered export set (never touching an earlier one) holding only the
//! rows of that batch, and `list` replays all sets in order. A set is written to a hidden
//! temporary folder and renamed into place, so a crash never leaves half an export that `list`
//! would read.
//!
//! Layout of `<dir>/export-000042/`:
//! - `users-001.csv`, `users-002.csv`, ...: Mojo's import columns, at most `max_rows_per_file`
//!   data rows each (Mojo imports at most 3000 at a time), header row in every file;
//! - `removals.csv`: `Email, Action, Note` rows (`deactivate`, `delete`, `reactivate`) for the
//!   admin, because Mojo's import cannot express status changes;
//! - `manifest.json`: what the set holds.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::connectors::{ApplyOptions, ConnectorError, LiveAccount, OpResult, Target, TargetOp};
use crate::model::IdentityNorm;

/// Mojo's hard limit on rows per import file.
pub const MAX_ROWS_LIMIT: usize = 3000;

/// Mojo's import columns, in order, with the headcount field each holds.
const COLUMNS: [(&str, &str); 10] = [
    ("First Name", "first_name"),
    ("Middle Name", "middle_name"),
    ("Last Name", "last_name"),
    ("Email", "email"),
    ("Password", "password"),
    ("Company", "group"),
    ("Work Phone", "work_phone"),
    ("Cell Phone", "cell_phone"),
    ("Home Phone", "home_phone"),
    ("Notes", "user_notes"),
];

/// Fields `list` reports for every account (password is write-only).
const LISTED: [&str; 9] = [
    "email",
    "first_name",
    "middle_name",
    "last_name",
    "work_phone",
    "cell_phone",
    "home_phone",
    "user_notes",
    "group",
];

const CUSTOM_PREFIX: &str = "custom_field_";
const REMOVALS_FILE: &str = "removals.csv";
const REMOVALS_HEADER: [&str; 3] = ["Email", "Action", "Note"];

/// Writes Mojo Helpdesk CSV import files; the accumulated exports are its accounts.
#[derive(Debug, Clone)]
pub struct CsvExportTarget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    max_rows: usize,
    custom_fields: Vec<String>,
    /// Test hook: fail the write after this many files are written.
    #[cfg(test)]
    fail_after_files: Option<usize>,
}

impl CsvExportTarget {
    /// `dir` should already be resolved against the config file's folder. `max_rows_per_file`
    /// is kept within 1..=3000 (config validation rejects other values; this is a guard).
    /// Repeated custom field keys are kept once.
    pub fn new(dir: PathBuf, max_rows_per_file: usize, custom_fields: Vec<String>) -> Self {
        let mut seen = HashSet::new();
        let custom_fields = custom_fields
            .into_iter()
            .filter(|k| seen.insert(k.clone()))
            .collect();
        CsvExportTarget {
            inner: Arc::new(Inner {
                dir,
                max_rows: max_rows_per_file.clamp(1, MAX_ROWS_LIMIT),
                custom_fields,
                #[cfg(test)]
                fail_after_files: None,
            }),
        }
    }

    /// The output folder.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    #[cfg(test)]
    fn failing_after(mut self, files: usize) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.fail_after_files = Some(files);
        }
        self
    }
}

#[async_trait]
impl Target for CsvExportTarget {
    async fn list(&self) -> Result<Vec<LiveAccount>, ConnectorError> {
        let inner = Arc::clone(&self.inner);
        let (accounts, _) = blocking(move || inner.load()).await?;
        Ok(self.inner.live_accounts(accounts))
    }

    async fn apply(
        &self,
        ops: &[TargetOp],
        opts: &ApplyOptions,
        done: &(dyn Fn(usize, OpResult) + Send + Sync),
    ) -> Result<(), ConnectorError> {
        if ops.is_empty() {
            return Ok(());
        }
        // The batch is one export set: once cancelled, none of it starts.
        if opts.cancelled() {
            for i in 0..ops.len() {
                done(i, Err(ConnectorError::Cancelled));
            }
            return Ok(());
        }
        let inner = Arc::clone(&self.inner);
        let ops = ops.to_vec();
        let results = blocking(move || inner.apply(&ops)).await?;
        // Only now is every op's outcome final: the export set is in place (or nothing was
        // written because no op produced a row).
        for (i, result) in results.into_iter().enumerate() {
            done(i, result);
        }
        Ok(())
    }
}

/// Runs file work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ConnectorError> + Send + 'static,
) -> Result<T, ConnectorError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ConnectorError::Io(format!("csv_export: file work stopped unexpectedly: {e}"))
    })?
}

/// An account as the exports describe it: field name → cell (`None` for an empty cell).
#[derive(Debug, Clone)]
struct Account {
    active: bool,
    values: BTreeMap<String, Option<String>>,
}

impl Account {
    /// The email as exported (original case), or the normalised id when the row has none.
    fn email_or(&self, id: &str) -> String {
        self.values
            .get("email")
            .cloned()
            .flatten()
            .unwrap_or_else(|| id.to_string())
    }
}

type Accounts = BTreeMap<String, Account>;

fn norm(email: &str) -> String {
    IdentityNorm::Email.normalise(email)
}

/// Status changes, as written in `removals.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Deactivate,
    Delete,
    Reactivate,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Deactivate => "deactivate",
            Action::Delete => "delete",
            Action::Reactivate => "reactivate",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        match s {
            "deactivate" => Some(Action::Deactivate),
            "delete" => Some(Action::Delete),
            "reactivate" => Some(Action::Reactivate),
            _ => None,
        }
    }
}

/// Folds one users row into the accounts. Shared by `list` and `apply` so that what `apply`
/// simulates is exactly what `list` will read back.
fn merge_user_row(accounts: &mut Accounts, fields: &[String], cells: &[String]) -> Option<String> {
    let email_at = fields.iter().position(|f| f == "email")?;
    let email = cells.get(email_at)?;
    let id = norm(email);
    if id.is_empty() {
        return None;
    }
    let account = accounts.entry(id.clone()).or_insert_with(|| Account {
        active: true,
        values: BTreeMap::new(),
    });
    for (field, cell) in fields.iter().zip(cells) {
        if field == "password" {
            continue;
        }
        let value = (!cell.is_empty()).then(|| cell.clone());
        account.values.insert(field.clone(), value);
    }
    Some(id)
}

fn merge_removal(accounts: &mut Accounts, email: &str, action: Action) {
    let id = norm(email);
    match action {
        Action::Delete => {
            accounts.remove(&id);
        }
        Action::Deactivate | Action::Reactivate => {
            if let Some(account) = accounts.get_mut(&id) {
                account.active = action == Action::Reactivate;
            }
        }
    }
}

/// The rows one batch adds.
#[derive(Default)]
struct Batch {
    users: Vec<Vec<String>>,
    removals: Vec<[String; 3]>,
    /// Accounts deleted in this batch: `list` applies a set's users rows before its removals,
    /// so a later row for the same account in the same set would be lost.
    deleted: HashSet<String>,
}

impl Inner {
    /// Column headers of a users file.
    fn header(&self) -> Vec<String> {
        COLUMNS
            .iter()
            .map(|(c, _)| c.to_string())
            .chain(self.custom_fields.iter().cloned())
            .collect()
    }

    /// Field names of the columns of a users file, in order.
    fn column_fields(&self) -> Vec<String> {
        COLUMNS
            .iter()
            .map(|(_, f)| f.to_string())
            .chain(
                self.custom_fields
                    .iter()
                    .map(|k| format!("{CUSTOM_PREFIX}{k}")),
            )
            .collect()
    }

    fn live_accounts(&self, accounts: Accounts) -> Vec<LiveAccount> {
        accounts
            .into_iter()
            .map(|(id, account)| {
                let mut fields: BTreeMap<String, Value> = LISTED
                    .iter()
                    .map(|f| f.to_string())
                    .chain(
                        self.custom_fields
                            .iter()
                            .map(|k| format!("{CUSTOM_PREFIX}{k}")),
                    )
                    .map(|f| (f, Value::Null))
                    .collect();
                for (field, value) in account.values {
                    fields.insert(field, value.map_or(Value::Null, Value::String));
                }
                LiveAccount {
                    id,
                    active: account.active,
                    fields,
                }
            })
            .collect()
    }

    /// Replays every export set; also returns the number the next set gets.
    fn load(&self) -> Result<(Accounts, u64), ConnectorError> {
        let mut accounts = Accounts::new();
        let sets = match numbered_entries(&self.dir, "export-", "") {
            Ok(sets) => sets,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((accounts, 1)),
            Err(e) => return Err(io_error(&self.dir, "cannot be listed", &e)),
        };
        let next = sets.last().map_or(1, |(n, _)| n + 1);
        for (_, set) in sets.iter().filter(|(_, p)| p.is_dir()) {
            let users = numbered_entries(set, "users-", ".csv")
                .map_err(|e| io_error(set, "cannot be listed", &e))?;
            for (_, file) in users {
                read_users_file(&file, &mut accounts)?;
            }
            let removals = set.join(REMOVALS_FILE);
            if removals.exists() {
                read_removals_file(&removals, &mut accounts)?;
            }
        }
        Ok((accounts, next))
    }

    fn apply(&self, ops: &[TargetOp]) -> Result<Vec<OpResult>, ConnectorError> {
        crate::util::create_private_dir_all(&self.dir)
            .map_err(|e| io_error(&self.dir, "cannot be created", &e))?;
        self.clean_leftovers();
        let (mut accounts, number) = self.load()?;

        let mut batch = Batch::default();
        let results: Vec<OpResult> = ops
            .iter()
            .map(|op| self.add_op(op, &mut accounts, &mut batch))
            .collect();
        if batch.users.is_empty() && batch.removals.is_empty() {
            return Ok(results);
        }
        self.write_set(number, &batch)?;
        Ok(results)
    }

    /// Removes temporary folders a crashed apply left behind; they were never part of the
    /// state, so this is only tidying and a failure is not fatal.
    fn clean_leftovers(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(".export-")
                && name.contains(".tmp-")
                && let Err(e) = std::fs::remove_dir_all(entry.path())
            {
                tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove a leftover temporary export folder");
            }
        }
    }

    /// Turns one op into rows, updating `accounts` as `list` will see them.
    fn add_op(&self, op: &TargetOp, accounts: &mut Accounts, batch: &mut Batch) -> OpResult {
        let fields = self.column_fields();
        match op {
            TargetOp::Create {
                fields: values,
                active,
                notify: _,
            } => {
                let mut cells = vec![String::new(); fields.len()];
                for (name, value) in values {
                    let at = self.column_of(&fields, name)?;
                    cells[at] = cell(name, value)?;
                }
                let email = self.email_cell(&fields, &cells);
                let id = norm(&email);
                if id.is_empty() {
                    return Err(ConnectorError::Rejected {
                        status: None,
                        vendor: None,
                        message: "csv_export: cannot create an account without an email: Mojo's import matches users by email; map `email` to a non-empty value".to_string(),
                    });
                }
                conflict_check(batch, &id)?;
                // Mojo's import updates a user whose email exists, so a create of a known
                // account (e.g. a retried create) is an update, not a duplicate.
                let was_inactive = accounts.get(&id).is_some_and(|a| !a.active);
                merge_user_row(accounts, &fields, &cells);
                batch.users.push(cells);
                if !active {
                    self.add_removal(
                        accounts,
                        batch,
                        &email,
                        Action::Deactivate,
                        "created inactive",
                    );
                } else if was_inactive {
                    self.add_removal(
                        accounts,
                        batch,
                        &email,
                        Action::Reactivate,
                        "active in source",
                    );
                }
                Ok(id)
            }
            TargetOp::Modify {
                id,
                fields: values,
                active,
                removal,
                ..
            } => {
                let id = norm(id);
                let Some(account) = accounts.get(&id) else {
                    return Err(self.unknown(&id));
                };
                let current_email = account.email_or(&id);
                let updates: Vec<_> = values.iter().filter(|(k, _)| *k != "password").collect();
                let mut email = current_email;
                if !updates.is_empty() {
                    conflict_check(batch, &id)?;
                    // The full current values, with the changes on top: Mojo's import sets
                    // every column, so a partial row would blank the others.
                    let mut cells: Vec<String> = fields
                        .iter()
                        .map(|f| account.values.get(f).cloned().flatten().unwrap_or_default())
                        .collect();
                    for (name, value) in updates {
                        let at = self.column_of(&fields, name)?;
                        cells[at] = cell(name, value)?;
                    }
                    if let Some(at) = fields.iter().position(|f| f == "password") {
                        cells[at].clear();
                    }
                    let new_email = self.email_cell(&fields, &cells);
                    if norm(&new_email) != id {
                        return Err(ConnectorError::Rejected {
                            status: None,
                            vendor: None,
                            message: format!(
                                "csv_export: cannot change the email of `{id}` to `{new_email}`: Mojo's import matches users by email, so this would make a second account; delete the account and create a new one instead"
                            ),
                        });
                    }
                    email = new_email;
                    merge_user_row(accounts, &fields, &cells);
                    batch.users.push(cells);
                }
                match active {
                    Some(false) => {
                        let note = if *removal {
                            "no longer in source"
                        } else {
                            "inactive in source"
                        };
                        self.add_removal(accounts, batch, &email, Action::Deactivate, note);
                    }
                    Some(true) => {
                        self.add_removal(
                            accounts,
                            batch,
                            &email,
                            Action::Reactivate,
                            "active in source",
                        );
                    }
                    None => {}
                }
                Ok(id)
            }
            TargetOp::Delete { id } => {
                let id = norm(id);
                // Already gone (deleted by an earlier export): nothing to write.
                let Some(account) = accounts.get(&id) else {
                    return Ok(id);
                };
                let email = account.email_or(&id);
                self.add_removal(
                    accounts,
                    batch,
                    &email,
                    Action::Delete,
                    "no longer in source",
                );
                batch.deleted.insert(id.clone());
                Ok(id)
            }
        }
    }

    fn add_removal(
        &self,
        accounts: &mut Accounts,
        batch: &mut Batch,
        email: &str,
        action: Action,
        note: &str,
    ) {
        merge_removal(accounts, email, action);
        batch.removals.push([
            email.to_string(),
            action.as_str().to_string(),
            note.to_string(),
        ]);
    }

    fn email_cell(&self, fields: &[String], cells: &[String]) -> String {
        fields
            .iter()
            .position(|f| f == "email")
            .and_then(|at| cells.get(at))
            .cloned()
            .unwrap_or_default()
    }

    fn column_of(&self, fields: &[String], name: &str) -> Result<usize, ConnectorError> {
        fields.iter().position(|f| f == name).ok_or_else(|| {
            let hint = match name.strip_prefix(CUSTOM_PREFIX) {
                Some(key) => format!("add `{key}` to the target's `custom_fields`"),
                None => "see `headcount fields csv_export`".to_string(),
            };
            ConnectorError::Rejected {
                status: None,
                vendor: None,
                message: format!(
                    "csv_export: field `{name}` has no column in Mojo's import file: {hint}"
                ),
            }
        })
    }

    fn unknown(&self, id: &str) -> ConnectorError {
        ConnectorError::Rejected {
            status: None,
            vendor: None,
            message: format!(
                "csv_export: no account `{id}` in the exports under {}: it was deleted or never exported; run `headcount plan` again to see the current state",
                self.dir.display()
            ),
        }
    }

    /// Writes one export set atomically: temporary folder, fsync, rename, fsync of `dir`.
    fn write_set(&self, number: u64, batch: &Batch) -> Result<(), ConnectorError> {
        let final_path = self.dir.join(format!("export-{number:06}"));
        let temp = self
            .dir
            .join(format!(".export-{number:06}.tmp-{}", std::process::id()));
        if temp.exists() {
            std::fs::remove_dir_all(&temp).map_err(|e| io_error(&temp, "cannot be removed", &e))?;
        }
        crate::util::create_private_dir(&temp)
            .map_err(|e| io_error(&temp, "cannot be created", &e))?;
        let written = self.fill_set(&temp, number, batch).and_then(|()| {
            sync_dir(&temp)?;
            std::fs::rename(&temp, &final_path).map_err(|e| {
                io_error(
                    &final_path,
                    "cannot be put in place (does it exist already?)",
                    &e,
                )
            })
        });
        if let Err(e) = written {
            if let Err(cleanup) = std::fs::remove_dir_all(&temp) {
                tracing::warn!(path = %temp.display(), error = %cleanup, "cannot remove the temporary export folder");
            }
            return Err(e);
        }
        // The export is in place; if this fsync fails only its durability across a power
        // loss is in doubt, not that the ops took effect, so it must not turn into an error.
        if let Err(e) = sync_dir(&self.dir) {
            tracing::warn!(path = %self.dir.display(), error = %e, "cannot fsync the export folder");
        }
        Ok(())
    }

    fn fill_set(&self, temp: &Path, number: u64, batch: &Batch) -> Result<(), ConnectorError> {
        let mut files_written = 0usize;
        let header = self.header();
        let mut users_files = Vec::new();
        for (i, chunk) in batch.users.chunks(self.max_rows).enumerate() {
            let name = format!("users-{:03}.csv", i + 1);
            write_csv(
                &temp.join(&name),
                &header,
                chunk.iter().map(|r| r.as_slice()),
            )?;
            users_files.push(name);
            self.wrote_file(&mut files_written)?;
        }
        if !batch.removals.is_empty() {
            write_csv(
                &temp.join(REMOVALS_FILE),
                &REMOVALS_HEADER,
                batch.removals.iter().map(|r| r.as_slice()),
            )?;
            self.wrote_file(&mut files_written)?;
        }
        let manifest = serde_json::json!({
            "export": number,
            "users_files": users_files,
            "user_rows": batch.users.len(),
            "removals": batch.removals.len(),
        });
        let mut text = serde_json::to_string_pretty(&manifest).map_err(|e| {
            ConnectorError::Io(format!("csv_export: cannot encode the manifest: {e}"))
        })?;
        text.push('\n');
        let path = temp.join("manifest.json");
        write_synced(&path, |w| w.write_all(text.as_bytes()))?;
        self.wrote_file(&mut files_written)?;
        Ok(())
    }
}

impl Inner {
    /// Counts written files; under test, fails where `failing_after` asked.
    fn wrote_file(&self, files_written: &mut usize) -> Result<(), ConnectorError> {
        *files_written += 1;
        #[cfg(test)]
        if self.fail_after_files == Some(*files_written) {
            return Err(ConnectorError::Io("injected write failure".to_string()));
        }
        Ok(())
    }
}

fn conflict_check(batch: &Batch, id: &str) -> Result<(), ConnectorError> {
    if batch.deleted.contains(id) {
        return Err(ConnectorError::Rejected {
            status: None,
            vendor: None,
            message: format!(
                "csv_export: `{id}` is deleted earlier in this same batch; run apply again to write this change in a new export"
            ),
        });
    }
    Ok(())
}

/// A field value as a cell. Scalars are written as text; lists and objects have no place in
/// a Mojo import column.
fn cell(name: &str, value: &Value) -> Result<String, ConnectorError> {
    match value {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Array(_) | Value::Object(_) => Err(ConnectorError::Rejected {
            status: None,
            vendor: None,
            message: format!(
                "csv_export: field `{name}` must be text, not a list or an object: change its mapping to produce a string"
            ),
        }),
    }
}

/// Entries of `dir` named `<prefix><digits><suffix>`, sorted by number.
fn numbered_entries(
    dir: &Path,
    prefix: &str,
    suffix: &str,
) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(digits) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
        else {
            continue;
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(n) = digits.parse::<u64>() {
            out.push((n, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn io_error(path: &Path, what: &str, e: &std::io::Error) -> ConnectorError {
    ConnectorError::Io(format!(
        "csv_export: {} {what}: {e}: check that the target's `dir` is a writable folder",
        path.display()
    ))
}

fn malformed(path: &Path, what: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::BadData(format!(
        "csv_export: {} is not a valid export file: {what}; restore it from the original export or move its export folder out of the target's `dir`",
        path.display()
    ))
}

/// An export CSV read whole: its header, and each row with the line it starts on.
struct CsvFile {
    header: Vec<String>,
    rows: Vec<(u64, Vec<String>)>,
}

/// Reads a whole export CSV.
fn read_csv(path: &Path) -> Result<CsvFile, ConnectorError> {
    let bytes = std::fs::read(path).map_err(|e| io_error(path, "cannot be read", &e))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes.as_slice());
    let mut rows = Vec::new();
    let mut header = None;
    for record in reader.records() {
        let record = record.map_err(|e| malformed(path, e))?;
        let line = record.position().map_or(0, |p| {
            crate::connectors::csv::row_number(&bytes, p.byte(), p.line())
        });
        let cells: Vec<String> = record.iter().map(str::to_string).collect();
        if header.is_none() {
            header = Some(cells);
        } else {
            rows.push((line, cells));
        }
    }
    let header = header.ok_or_else(|| malformed(path, "it is empty (no header row)"))?;
    Ok(CsvFile { header, rows })
}

fn read_users_file(path: &Path, accounts: &mut Accounts) -> Result<(), ConnectorError> {
    let CsvFile { header, rows } = read_csv(path)?;
    let standard =
        header.len() >= COLUMNS.len() && COLUMNS.iter().zip(&header).all(|((c, _), h)| c == h);
    if !standard {
        let expected: Vec<&str> = COLUMNS.iter().map(|(c, _)| *c).collect();
        return Err(malformed(
            path,
            format!("its header must start with `{}`", expected.join(", ")),
        ));
    }
    let fields: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(i, h)| match COLUMNS.get(i) {
            Some((_, f)) => f.to_string(),
            None => format!("{CUSTOM_PREFIX}{h}"),
        })
        .collect();
    for (line, cells) in rows {
        if merge_user_row(accounts, &fields, &cells).is_none() {
            return Err(malformed(path, format!("line {line} has no email")));
        }
    }
    Ok(())
}

fn read_removals_file(path: &Path, accounts: &mut Accounts) -> Result<(), ConnectorError> {
    let CsvFile { header, rows } = read_csv(path)?;
    if header != REMOVALS_HEADER {
        return Err(malformed(
            path,
            format!("its header must be `{}`", REMOVALS_HEADER.join(", ")),
        ));
    }
    for (line, cells) in rows {
        let (Some(email), Some(action)) = (cells.first(), cells.get(1)) else {
            return Err(malformed(path, format!("line {line} has too few columns")));
        };
        let action = Action::parse(action).ok_or_else(|| {
            malformed(
                path,
                format!(
                    "line {line} has action `{action}` (expected deactivate, delete or reactivate)"
                ),
            )
        })?;
        merge_removal(accounts, email, action);
    }
    Ok(())
}

fn write_csv<'a>(
    path: &Path,
    header: &[impl AsRef<str>],
    rows: impl Iterator<Item = &'a [String]>,
) -> Result<(), ConnectorError> {
    write_synced(path, |w| {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(w);
        writer.write_record(header.iter().map(|h| h.as_ref()))?;
        for row in rows {
            writer.write_record(row)?;
        }
        writer.flush()?;
        Ok(())
    })
}

/// Creates `path`, lets `fill` write it, and fsyncs it before the rename makes it visible.
fn write_synced(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), ConnectorError> {
    let result = (|| {
        let mut options = crate::util::private_file_options();
        options.write(true).create_new(true);
        let mut writer = BufWriter::new(crate::util::open_private(&options, path)?);
        fill(&mut writer)?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    })();
    result.map_err(|e| io_error(path, "cannot be written", &e))
}

fn sync_dir(path: &Path) -> Result<(), ConnectorError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(path, "cannot be synced to disk", &e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Mutex;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect()
    }

    fn create(email: &str, first: &str, last: &str) -> TargetOp {
        TargetOp::Create {
            fields: fields(&[("email", email), ("first_name", first), ("last_name", last)]),
            active: true,
            notify: false,
        }
    }

    fn modify(id: &str, pairs: &[(&str, &str)], active: Option<bool>, removal: bool) -> TargetOp {
        TargetOp::Modify {
            id: id.to_string(),
            fields: fields(pairs),
            expected: BTreeMap::new(),
            active,
            removal,
        }
    }

    /// Applies `ops`, returning the apply result and each op's outcome in order.
    async fn run(
        target: &CsvExportTarget,
        ops: &[TargetOp],
    ) -> (Result<(), ConnectorError>, Vec<(usize, OpResult)>) {
        let seen = Mutex::new(Vec::new());
        let result = target
            .apply(ops, &ApplyOptions::default(), &|i, r| {
                seen.lock().unwrap().push((i, r))
            })
            .await;
        (result, seen.into_inner().unwrap())
    }

    async fn run_ok(target: &CsvExportTarget, ops: &[TargetOp]) -> Vec<OpResult> {
        let (result, seen) = run(target, ops).await;
        result.unwrap();
        assert_eq!(seen.len(), ops.len());
        seen.into_iter().map(|(_, r)| r).collect()
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    /// Every file of an export set, for snapshots (CRLF shown as LF).
    fn dump(set: &Path) -> String {
        let mut names: Vec<_> = std::fs::read_dir(set)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut out = String::new();
        for name in names {
            let text = read(&set.join(&name));
            out.push_str(&format!("== {name}\n{}", text.replace("\r\n", "\n")));
        }
        out
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn account<'a>(accounts: &'a [LiveAccount], id: &str) -> &'a LiveAccount {
        accounts.iter().find(|a| a.id == id).unwrap()
    }

    #[tokio::test]
    async fn small_export_has_exact_files() {
        let tmp = tempfile::tempdir().unwrap();
        let target = CsvExportTarget::new(
            tmp.path().join("out"),
            3000,
            vec!["team".into(), "site".into()],
        );
        let mut ann = fields(&[
            ("email", "Ann@Example.com"),
            ("first_name", "Ann"),
            ("middle_name", "B."),
            ("last_name", "O'Neil, Jr."),
            ("password", "s3cret!"),
            ("group", "Sales"),
            ("work_phone", "+1 555 0100"),
            ("user_notes", "line 1\nline \"2\""),
            ("custom_field_team", "EMEA"),
        ]);
        ann.insert("cell_phone".into(), Value::Null);
        let ops = [
            TargetOp::Create {
                fields: ann,
                active: true,
                notify: true,
            },
            TargetOp::Create {
                fields: fields(&[("email", "bob@example.com"), ("first_name", "Bob")]),
                active: false,
                notify: false,
            },
        ];
        let results = run_ok(&target, &ops).await;
        assert_eq!(results[0].as_ref().unwrap(), "ann@example.com");
        assert_eq!(results[1].as_ref().unwrap(), "bob@example.com");
        let set = tmp.path().join("out/export-000001");
        insta::assert_snapshot!("first_export", dump(&set));
        // RFC 4180 line endings, no BOM.
        let users = std::fs::read(set.join("users-001.csv")).unwrap();
        assert!(users.starts_with(b"First Name,"));
        assert!(users.ends_with(b"\r\n"));

        let ops = [
            modify("ann@example.com", &[("last_name", "Smith")], None, false),
            modify("bob@example.com", &[], Some(true), false),
            modify("ann@example.com", &[], Some(false), true),
            TargetOp::Delete {
                id: "bob@example.com".into(),
            },
        ];
        run_ok(&target, &ops).await;
        insta::assert_snapshot!("second_export", dump(&tmp.path().join("out/export-000002")));
    }

    #[tokio::test]
    async fn list_reflects_creates_updates_and_status_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let target = CsvExportTarget::new(tmp.path().join("out"), 3000, vec!["team".into()]);
        assert!(target.list().await.unwrap().is_empty());

        let mut ops = vec![
            create("ann@x.io", "Ann", "Lee"),
            create("bob@x.io", "Bob", "Ray"),
            create("cy@x.io", "Cy", "Ode"),
        ];
        ops.push(TargetOp::Create {
            fields: fields(&[("email", "dee@x.io"), ("custom_field_team", "Ops")]),
            active: false,
            notify: false,
        });
        run_ok(&target, &ops).await;
        let live = target.list().await.unwrap();
        assert_eq!(live.len(), 4);
        let ann = account(&live, "ann@x.io");
        assert!(ann.active);
        assert_eq!(ann.fields["first_name"], "Ann");
        assert_eq!(ann.fields["group"], Value::Null);
        assert_eq!(ann.fields["custom_field_team"], Value::Null);
        assert!(!ann.fields.contains_key("password"));
        let keys: Vec<_> = ann.fields.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "cell_phone",
                "custom_field_team",
                "email",
                "first_name",
                "group",
                "home_phone",
                "last_name",
                "middle_name",
                "user_notes",
                "work_phone"
            ]
        );
        let dee = account(&live, "dee@x.io");
        assert!(!dee.active);
        assert_eq!(dee.fields["custom_field_team"], "Ops");

        let ops = [
            modify("ann@x.io", &[("group", "Sales")], None, false),
            modify("bob@x.io", &[], Some(false), false),
            TargetOp::Delete {
                id: "cy@x.io".into(),
            },
            modify("dee@x.io", &[], Some(true), false),
        ];
        run_ok(&target, &ops).await;
        let live = target.list().await.unwrap();
        let ids: Vec<_> = live.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["ann@x.io", "bob@x.io", "dee@x.io"]);
        assert_eq!(account(&live, "ann@x.io").fields["group"], "Sales");
        assert!(!account(&live, "bob@x.io").active);
        assert!(account(&live, "dee@x.io").active);
        assert_eq!(
            entries(&tmp.path().join("out")),
            ["export-000001", "export-000002"]
        );
        assert_eq!(
            entries(&tmp.path().join("out/export-000002")),
            ["manifest.json", "removals.csv", "users-001.csv"]
        );

        // Status-only changes write no users file.
        run_ok(&target, &[modify("bob@x.io", &[], Some(true), false)]).await;
        assert_eq!(
            entries(&tmp.path().join("out/export-000003")),
            ["manifest.json", "removals.csv"]
        );
        assert!(account(&target.list().await.unwrap(), "bob@x.io").active);
    }

    #[tokio::test]
    async fn update_row_carries_full_current_values_without_password() {
        let tmp = tempfile::tempdir().unwrap();
        let target = CsvExportTarget::new(tmp.path().join("out"), 3000, vec!["team".into()]);
        let ops = [TargetOp::Create {
            fields: fields(&[
                ("email", "ann@x.io"),
                ("first_name", "Ann"),
                ("last_name", "Lee"),
                ("password", "hunter22"),
                ("group", "Sales"),
                ("home_phone", "123"),
                ("custom_field_team", "EMEA"),
            ]),
            active: true,
            notify: false,
        }];
        run_ok(&target, &ops).await;
        let ops = [modify(
            "ANN@x.io",
            &[("last_name", "Smith"), ("password", "newpass1")],
            None,
            false,
        )];
        let results = run_ok(&target, &ops).await;
        assert_eq!(results[0].as_ref().unwrap(), "ann@x.io");
        let text = read(&tmp.path().join("out/export-000002/users-001.csv"));
        assert_eq!(
            text,
            "First Name,Middle Name,Last Name,Email,Password,Company,Work Phone,Cell Phone,Home Phone,Notes,team\r\n\
             Ann,,Smith,ann@x.io,,Sales,,,123,,EMEA\r\n"
        );
        let live = target.list().await.unwrap();
        assert_eq!(live[0].fields["last_name"], "Smith");
        assert_eq!(live[0].fields["home_phone"], "123");

        // A modify holding only a password (create-only) changes nothing.
        let (result, seen) = run(
            &target,
            &[modify("ann@x.io", &[("password", "x")], None, false)],
        )
        .await;
        result.unwrap();
        assert!(seen[0].1.is_ok());
        assert!(!tmp.path().join("out/export-000003").exists());
    }

    #[tokio::test]
    async fn splits_users_files_at_max_rows_with_a_header_in_each() {
        let tmp = tempfile::tempdir().unwrap();
        let target = CsvExportTarget::new(tmp.path().join("out"), 1000, vec![]);
        let ops: Vec<_> = (0..2500)
            .map(|i| create(&format!("u{i:04}@x.io"), "U", &i.to_string()))
            .collect();
        run_ok(&target, &ops).await;
        let set = tmp.path().join("out/export-000001");
        assert_eq!(
            entries(&set),
            [
                "manifest.json",
                "users-001.csv",
                "users-002.csv",
                "users-003.csv"
            ]
        );
        for (file, rows) in [
            ("users-001.csv", 1000),
            ("users-002.csv", 1000),
            ("users-003.csv", 500),
        ] {
            let text = read(&set.join(file));
            let lines: Vec<_> = text.lines().collect();
            assert!(lines[0].starts_with("First Name,Middle Name,"), "{file}");
            assert_eq!(lines.len(), rows + 1, "{file}");
        }
        assert!(read(&set.join("users-002.csv")).contains("u1000@x.io"));
        let manifest: Value = serde_json::from_str(&read(&set.join("manifest.json"))).unwrap();
        assert_eq!(
            manifest,
            json!({
                "export": 1,
                "users_files": ["users-001.csv", "users-002.csv", "users-003.csv"],
                "user_rows": 2500,
                "removals": 0
            })
        );
        assert_eq!(target.list().await.unwrap().len(), 2500);
    }

    #[tokio::test]
    async fn max_rows_is_guarded() {
        let tmp = tempfile::tempdir().unwrap();
        let target = CsvExportTarget::new(tmp.path().join("out"), 0, vec![]);
        run_ok(
            &target,
            &[create("a@x.io", "A", "A"), create("b@x.io", "B", "B")],
        )
        .await;
        assert_eq!(
            entries(&tmp.path().join("out/export-000001")),
            ["manifest.json", "users-001.csv", "users-002.csv"]
        );
        assert_eq!(
            CsvExportTarget::new(tmp.path().into(), 5000, vec![])
                .inner
                .max_rows,
            3000
        );
    }

    #[tokio::test]
    async fn each_apply_writes_the_next_export_and_never_overwrites() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let target = CsvExportTarget::new(out.clone(), 3000, vec![]);
        run_ok(&target, &[create("a@x.io", "A", "A")]).await;
        let first = dump(&out.join("export-000001"));
        // A gap in the numbering: the next is the highest + 1.
        std::fs::rename(out.join("export-000001"), out.join("export-000007")).unwrap();
        run_ok(&target, &[create("b@x.io", "B", "B")]).await;
        assert_eq!(entries(&out), ["export-000007", "export-000008"]);
        assert_eq!(dump(&out.join("export-000007")), first);
        let manifest = read(&out.join("export-000008/manifest.json"));
        assert!(manifest.contains("\"export\": 8"), "{manifest}");
        assert_eq!(target.list().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn empty_ops_and_all_failed_ops_write_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let target = CsvExportTarget::new(out.clone(), 3000, vec![]);
        run_ok(&target, &[]).await;
        assert!(!out.exists());
        let (result, seen) = run(
            &target,
            &[
                modify("x@x.io", &[("first_name", "X")], None, false),
                // Gone already: done, and nothing to write.
                TargetOp::Delete {
                    id: "y@x.io".into(),
                },
            ],
        )
        .await;
        result.unwrap();
        assert!(seen[0].1.is_err());
        assert!(seen[1].1.is_ok());
        assert!(entries(&out).is_empty());
    }

    #[tokio::test]
    async fn unknown_id_fails_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let target = CsvExportTarget::new(tmp.path().join("out"), 3000, vec![]);
        run_ok(&target, &[create("a@x.io", "A", "A")]).await;
        let ops = [
            modify("ghost@x.io", &[("first_name", "G")], None, false),
            modify("a@x.io", &[("first_name", "Al")], None, false),
            TargetOp::Delete {
                id: "ghost2@x.io".into(),
            },
        ];
        let (result, seen) = run(&target, &ops).await;
        result.unwrap();
        let indexes: Vec<_> = seen.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, [0, 1, 2]);
        let msg = seen[0].1.as_ref().unwrap_err().to_string();
        assert!(
            msg.contains("no account `ghost@x.io` in the exports"),
            "{msg}"
        );
        assert_eq!(seen[1].1.as_ref().unwrap(), "a@x.io");
        // A delete of an account that is not there is done already.
        assert_eq!(seen[2].1.as_ref().unwrap(), "ghost2@x.io");
        assert_eq!(target.list().await.unwrap()[0].fields["first_name"], "Al");
    }

    #[tokio::test]
    async fn bad_ops_fail_alone_with_clear_messages() {
        let tmp = tempfile::tempdir().unwrap();
        let target = CsvExportTarget::new(tmp.path().join("out"), 3000, vec!["team".into()]);
        run_ok(&target, &[create("a@x.io", "A", "A")]).await;
        let ops = [
            TargetOp::Create {
                fields: fields(&[("first_name", "No email")]),
                active: true,
                notify: false,
            },
            TargetOp::Create {
                fields: fields(&[("email", "b@x.io"), ("custom_field_dept", "IT")]),
                active: true,
                notify: false,
            },
            modify("a@x.io", &[("email", "z@x.io")], None, false),
            TargetOp::Create {
                fields: [
                    ("email".to_string(), json!("c@x.io")),
                    ("first_name".to_string(), json!(["x"])),
                ]
                .into_iter()
                .collect(),
                active: true,
                notify: false,
            },
            modify("a@x.io", &[("email", "A@X.io")], None, false),
        ];
        let (result, seen) = run(&target, &ops).await;
        result.unwrap();
        let msgs: Vec<String> = seen
            .iter()
            .map(|(_, r)| match r {
                Ok(id) => format!("ok {id}"),
                Err(e) => e.to_string(),
            })
            .collect();
        assert!(msgs[0].contains("without an email"), "{}", msgs[0]);
        assert!(
            msgs[1].contains("add `dept` to the target's `custom_fields`"),
            "{}",
            msgs[1]
        );
        assert!(msgs[2].contains("cannot change the email"), "{}", msgs[2]);
        assert!(msgs[3].contains("must be text"), "{}", msgs[3]);
        assert_eq!(msgs[4], "ok a@x.io");
        let live = target.list().await.unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].fields["email"], "A@X.io");
    }

    #[tokio::test]
    async fn failure_mid_write_leaves_no_export() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        run_ok(
            &CsvExportTarget::new(out.clone(), 3000, vec![]),
            &[create("a@x.io", "A", "A")],
        )
        .await;
        for fail_after in 1..=3 {
            let target = CsvExportTarget::new(out.clone(), 1, vec![]).failing_after(fail_after);
            let ops = [
                create("b@x.io", "B", "B"),
                create("c@x.io", "C", "C"),
                modify("a@x.io", &[], Some(false), false),
            ];
            let (result, seen) = run(&target, &ops).await;
            assert!(result.is_err(), "fail after {fail_after}");
            assert!(seen.is_empty(), "no op may be reported done");
            assert_eq!(entries(&out), ["export-000001"]);
        }
        let live = CsvExportTarget::new(out, 3000, vec![])
            .list()
            .await
            .unwrap();
        assert_eq!(live.len(), 1);
        assert!(live[0].active);
    }

    #[tokio::test]
    async fn leftover_temp_dirs_are_ignored_then_cleaned() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let target = CsvExportTarget::new(out.clone(), 3000, vec![]);
        let leftover = out.join(".export-000001.tmp-99999");
        std::fs::create_dir_all(&leftover).unwrap();
        std::fs::write(leftover.join("users-001.csv"), "garbage").unwrap();
        assert!(target.list().await.unwrap().is_empty());
        run_ok(&target, &[create("a@x.io", "A", "A")]).await;
        assert_eq!(entries(&out), ["export-000001"]);
    }

    #[tokio::test]
    async fn applying_the_same_ops_twice_gives_the_same_state() {
        let tmp = tempfile::tempdir().unwrap();
        let target = CsvExportTarget::new(tmp.path().join("out"), 3000, vec![]);
        run_ok(
            &target,
            &[create("a@x.io", "A", "A"), create("b@x.io", "B", "B")],
        )
        .await;
        let ops = [
            create("c@x.io", "C", "C"),
            modify("a@x.io", &[("first_name", "Al")], Some(false), true),
            TargetOp::Delete {
                id: "b@x.io".into(),
            },
        ];
        run_ok(&target, &ops).await;
        let once = target.list().await.unwrap();
        run_ok(&target, &ops).await;
        assert_eq!(target.list().await.unwrap(), once);
    }

    #[tokio::test]
    async fn create_of_a_known_inactive_account_reactivates_it() {
        let tmp = tempfile::tempdir().unwrap();
        let target = CsvExportTarget::new(tmp.path().join("out"), 3000, vec![]);
        run_ok(&target, &[create("a@x.io", "A", "A")]).await;
        run_ok(&target, &[modify("a@x.io", &[], Some(false), true)]).await;
        run_ok(&target, &[create("a@x.io", "A", "B")]).await;
        let live = target.list().await.unwrap();
        assert_eq!(live.len(), 1);
        assert!(live[0].active);
        assert_eq!(live[0].fields["last_name"], "B");
    }

    #[tokio::test]
    async fn a_change_after_a_delete_in_the_same_batch_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let target = CsvExportTarget::new(tmp.path().join("out"), 3000, vec![]);
        run_ok(&target, &[create("a@x.io", "A", "A")]).await;
        let ops = [
            TargetOp::Delete {
                id: "a@x.io".into(),
            },
            create("a@x.io", "A", "A"),
        ];
        let results = run_ok(&target, &ops).await;
        assert!(results[0].is_ok());
        assert!(
            results[1]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("run apply again")
        );
        assert!(target.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn unicode_names_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let target = CsvExportTarget::new(tmp.path().join("out"), 3000, vec!["équipe".into()]);
        let ops = [TargetOp::Create {
            fields: fields(&[
                // Decomposed "é" in the email: the id is NFC and lower case.
                ("email", "Zoe\u{301}@Exämple.com"),
                ("first_name", "Zoë"),
                ("last_name", "Ærøskøbing-山田"),
                ("custom_field_équipe", "Ünïcode ✓"),
            ]),
            active: true,
            notify: false,
        }];
        let results = run_ok(&target, &ops).await;
        assert_eq!(results[0].as_ref().unwrap(), "zo\u{e9}@exämple.com");
        let live = target.list().await.unwrap();
        assert_eq!(live[0].id, "zo\u{e9}@exämple.com");
        assert_eq!(live[0].fields["first_name"], "Zoë");
        assert_eq!(live[0].fields["last_name"], "Ærøskøbing-山田");
        assert_eq!(live[0].fields["custom_field_équipe"], "Ünïcode ✓");
        assert_eq!(live[0].fields["email"], "Zoe\u{301}@Exämple.com");
        let text = read(&tmp.path().join("out/export-000001/users-001.csv"));
        assert!(text.lines().next().unwrap().ends_with(",Notes,équipe"));
    }

    #[tokio::test]
    async fn malformed_earlier_export_is_an_error_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let target = CsvExportTarget::new(out.clone(), 3000, vec![]);
        run_ok(&target, &[create("a@x.io", "A", "A")]).await;
        let file = out.join("export-000001/users-001.csv");
        std::fs::write(&file, "Name,Email\r\nA,a@x.io\r\n").unwrap();
        let msg = target.list().await.unwrap_err().to_string();
        assert!(msg.contains(&file.display().to_string()), "{msg}");
        assert!(
            msg.contains("header must start with `First Name, Middle Name"),
            "{msg}"
        );
        // Apply refuses too, rather than exporting from an unknown state.
        let (result, seen) = run(&target, &[create("b@x.io", "B", "B")]).await;
        assert!(result.is_err());
        assert!(seen.is_empty());

        std::fs::write(
            &file,
            "First Name,Middle Name,Last Name,Email,Password,Company,Work Phone,Cell Phone,Home Phone,Notes\r\nA,,,a@x.io,,,,,,\r\n",
        )
        .unwrap();
        let removals = out.join("export-000001/removals.csv");
        std::fs::write(&removals, "Email,Action,Note\r\na@x.io,suspend,\r\n").unwrap();
        let msg = target.list().await.unwrap_err().to_string();
        assert!(msg.contains(&removals.display().to_string()), "{msg}");
        assert!(msg.contains("line 2 has action `suspend`"), "{msg}");
    }

    #[tokio::test]
    async fn older_exports_with_other_custom_columns_still_read() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let old = CsvExportTarget::new(out.clone(), 3000, vec!["team".into()]);
        let ops = [TargetOp::Create {
            fields: fields(&[("email", "a@x.io"), ("custom_field_team", "Ops")]),
            active: true,
            notify: false,
        }];
        run_ok(&old, &ops).await;
        let new = CsvExportTarget::new(out, 3000, vec!["site".into()]);
        run_ok(
            &new,
            &[modify(
                "a@x.io",
                &[("custom_field_site", "HQ")],
                None,
                false,
            )],
        )
        .await;
        let live = new.list().await.unwrap();
        assert_eq!(live[0].fields["custom_field_site"], "HQ");
        assert_eq!(live[0].fields["custom_field_team"], "Ops");
    }
}
