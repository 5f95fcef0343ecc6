//! The audit log (`.headcount/audit.jsonl`, SPEC section 11): one JSON line per applied
//! operation, success or failure, with sensitive values redacted. Append-only, mode 0600.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use crate::apply::OpEvent;
use crate::model::Scrubber;
use crate::util;

/// Why the audit log could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the audit log {path}: {source}; check the folder's permissions")]
pub struct AuditError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// An open audit log.
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
    /// Last line of defence: a vendor's words in an error are scrubbed of the run's secrets
    /// before they are written (the log outlives the run and is shared).
    scrubber: Scrubber,
}

/// One line of the log.
#[derive(Debug, Serialize)]
pub struct AuditRecord<'a> {
    pub time: String,
    #[serde(flatten)]
    pub event: &'a OpEvent,
    pub result: &'static str,
    /// The git commit of the config, when it lives in a repository.
    pub config_commit: Option<&'a str>,
}

impl AuditLog {
    /// Opens (creating) the log for appending.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let err = |source| AuditError {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            util::create_private_dir_all(dir).map_err(err)?;
        }
        // The log names people: owner-only, and narrowed if an older build left it wider.
        let mut options = util::private_file_options();
        options.create(true).append(true);
        let file = util::open_private(&options, path).map_err(err)?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            scrubber: Scrubber::default(),
        })
    }

    /// Scrubs every line with the run's scrubber.
    pub fn scrubbing(mut self, scrubber: Scrubber) -> AuditLog {
        self.scrubber = scrubber;
        self
    }

    /// Appends one event as one line (a single write, so concurrent runs never interleave
    /// within a line).
    pub fn append(&self, event: &OpEvent, config_commit: Option<&str>) -> Result<(), AuditError> {
        let record = AuditRecord {
            time: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            event,
            result: event.outcome.as_str(),
            config_commit,
        };
        let mut value = serde_json::to_value(&record).map_err(|e| AuditError {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        if !self.scrubber.is_empty() {
            scrub_strings(&mut value, &self.scrubber);
        }
        let mut line = serde_json::to_vec(&value).map_err(|e| AuditError {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        let mut file = self.file.lock().map_err(|_| AuditError {
            path: self.path.clone(),
            source: std::io::Error::other("audit log lock poisoned"),
        })?;
        file.write_all(&line).map_err(|source| AuditError {
            path: self.path.clone(),
            source,
        })
    }
}

/// Every string of `value` (keys included), scrubbed.
fn scrub_strings(value: &mut serde_json::Value, s: &Scrubber) {
    use serde_json::Value;
    match value {
        Value::String(t) => s.scrub_in_place(t),
        Value::Array(items) => items.iter_mut().for_each(|v| scrub_strings(v, s)),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (k, mut v) in entries {
                scrub_strings(&mut v, s);
                map.insert(s.scrub(&k), v);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{Outcome, RedactedDiff};
    use crate::plan::Action;
    use std::collections::BTreeMap;

    #[test]
    fn appends_one_redacted_line_per_event_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".headcount/audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        let event = OpEvent {
            sync: "staff".into(),
            target: "app".into(),
            action: Action::Create,
            target_id: Some("42".into()),
            identity: BTreeMap::from([("email".into(), "a@x.com".into())]),
            fields: BTreeMap::from([(
                "password".into(),
                RedactedDiff {
                    before: serde_json::Value::Null,
                    after: "(sensitive)".into(),
                },
            )]),
            outcome: Outcome::Ok,
            error: None,
            not_started: false,
        };
        let scrubber = Scrubber::new();
        scrubber.register("tok-123456");
        let log = log.scrubbing(scrubber);
        log.append(&event, Some("abc123")).unwrap();
        log.append(
            &OpEvent {
                outcome: Outcome::Error,
                error: Some("boom: Bearer tok-123456".into()),
                ..event.clone()
            },
            None,
        )
        .unwrap();
        log.append(
            &OpEvent {
                outcome: Outcome::Unknown,
                error: Some("POST /Users: no usable answer".into()),
                ..event
            },
            None,
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["result"], "ok");
        assert_eq!(lines[0]["config_commit"], "abc123");
        assert_eq!(lines[0]["fields"]["password"]["after"], "(sensitive)");
        assert_eq!(lines[1]["result"], "error");
        assert_eq!(lines[1]["error"], "boom: Bearer [redacted]");
        assert!(!text.contains("tok-123456"));
        // A write whose answer was lost is neither: the next plan finds out.
        assert_eq!(lines[2]["result"], "unknown");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
