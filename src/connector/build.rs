//! Turns configured sources and targets into connectors. Only this module knows which config
//! kind maps to which connector type, so callers hold trait objects and nothing else.

use std::path::{Path, PathBuf};

use super::csv_export::{CsvExportTarget, MAX_ROWS_LIMIT};
use super::csv_source::CsvSource;
use super::{ConnectorError, Source, Target};
use crate::config::model::{SourceConfig, TargetConfig};

/// Builds a source. Relative paths resolve against `base_dir`, the config file's folder, so a
/// config works the same from any working directory. Error messages do not repeat the name:
/// the caller prefixes it (`source `hr`: ...`).
pub fn build_source(
    name: &str,
    cfg: &SourceConfig,
    base_dir: &Path,
) -> Result<Box<dyn Source>, ConnectorError> {
    match cfg {
        SourceConfig::Csv { path, delimiter } => {
            if path.trim().is_empty() {
                return Err(ConnectorError::Config(
                    "`path` is empty: give the CSV file's path".to_string(),
                ));
            }
            let delimiter = parse_delimiter(delimiter.as_deref())?;
            Ok(Box::new(CsvSource::new(resolve(base_dir, path), delimiter)))
        }
        SourceConfig::Scim {
            base_url,
            token,
            filter,
        } => {
            let token = secret(token, "token", base_dir)?;
            let client = super::scim::client(
                &format!("scim source `{name}`"),
                base_url,
                token,
                None,
                None,
            )
            .map_err(ConnectorError::from)?;
            Ok(Box::new(super::scim::ScimSource::new(
                client,
                filter.clone(),
            )))
        }
        other => Err(ConnectorError::Unsupported {
            kind: other.kind().to_string(),
        }),
    }
}

/// Reads a secret reference, saying which setting it is when it cannot be read.
fn secret(
    reference: &crate::config::secret::SecretRef,
    key: &str,
    base_dir: &Path,
) -> Result<secrecy::SecretString, ConnectorError> {
    reference
        .resolve(base_dir)
        .map_err(|e| ConnectorError::Config(format!("`{key}`: {e}")))
}

/// Builds a target. Relative paths resolve against `base_dir`; as with sources, the caller
/// prefixes error messages with the name.
pub fn build_target(
    name: &str,
    cfg: &TargetConfig,
    base_dir: &Path,
) -> Result<Box<dyn Target>, ConnectorError> {
    match cfg {
        TargetConfig::CsvExport {
            dir,
            max_rows_per_file,
            custom_fields,
        } => {
            if dir.trim().is_empty() {
                return Err(ConnectorError::Config(
                    "`dir` is empty: give the folder the export files go to".to_string(),
                ));
            }
            if !(1..=MAX_ROWS_LIMIT).contains(max_rows_per_file) {
                return Err(ConnectorError::Config(format!(
                    "`max_rows_per_file` is {max_rows_per_file}: use a number from 1 to {MAX_ROWS_LIMIT} (Mojo imports at most {MAX_ROWS_LIMIT} rows per file)"
                )));
            }
            Ok(Box::new(CsvExportTarget::new(
                resolve(base_dir, dir),
                *max_rows_per_file,
                custom_fields.clone(),
            )))
        }
        TargetConfig::Scim {
            base_url,
            token,
            rate_limit,
            timeout,
        } => {
            let token = secret(token, "token", base_dir)?;
            let client = super::scim::client(
                &format!("scim target `{name}`"),
                base_url,
                token,
                rate_limit.as_deref(),
                timeout.as_deref(),
            )
            .map_err(ConnectorError::from)?;
            Ok(Box::new(super::scim::ScimTarget::new(client)))
        }
        other => Err(ConnectorError::Unsupported {
            kind: other.kind().to_string(),
        }),
    }
}

fn resolve(base_dir: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}

/// The config gives the delimiter as text; the reader needs one byte, and a quote or line
/// break would make the file unparseable.
fn parse_delimiter(delimiter: Option<&str>) -> Result<u8, ConnectorError> {
    let Some(text) = delimiter else {
        return Ok(b',');
    };
    match text.as_bytes() {
        [b] if b.is_ascii() && !matches!(b, b'"' | b'\n' | b'\r') => Ok(*b),
        _ => Err(ConnectorError::Config(format!(
            "`delimiter` is {text:?}: use one ASCII character such as \",\", \";\" or \"\\t\" (not a quote or a line break)"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn csv_source(path: &str, delimiter: Option<&str>) -> SourceConfig {
        SourceConfig::Csv {
            path: path.to_string(),
            delimiter: delimiter.map(str::to_string),
        }
    }

    #[test]
    fn delimiter_must_be_one_ascii_character() {
        assert_eq!(parse_delimiter(None).unwrap(), b',');
        assert_eq!(parse_delimiter(Some(";")).unwrap(), b';');
        assert_eq!(parse_delimiter(Some("\t")).unwrap(), b'\t');
        for bad in ["", ";;", "é", "\"", "\n"] {
            let msg = parse_delimiter(Some(bad)).unwrap_err().to_string();
            assert!(msg.starts_with("`delimiter` is"), "{msg}");
        }
    }

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let base = Path::new("/etc/headcount");
        assert_eq!(resolve(base, "hr/people.csv"), base.join("hr/people.csv"));
        assert_eq!(
            resolve(base, "/data/people.csv"),
            Path::new("/data/people.csv")
        );
    }

    #[tokio::test]
    async fn builds_a_csv_source_reading_from_the_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("people.csv"), "email;name\na@x.io;Ann\n").unwrap();
        let source = build_source("hr", &csv_source("people.csv", Some(";")), dir.path()).unwrap();
        let records = source.read().await.unwrap();
        assert_eq!(records[0].data["name"], "Ann");
        assert!(build_source("hr", &csv_source("x.csv", Some("ab")), dir.path()).is_err());
    }

    #[tokio::test]
    async fn builds_a_csv_export_target_and_checks_rows_per_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = |max| TargetConfig::CsvExport {
            dir: "out".to_string(),
            max_rows_per_file: max,
            custom_fields: vec![],
        };
        let target = build_target("mojo_files", &cfg(3000), dir.path()).unwrap();
        assert!(target.list().await.unwrap().is_empty());
        for bad in [0, 3001] {
            let msg = build_target("mojo_files", &cfg(bad), dir.path())
                .err()
                .unwrap()
                .to_string();
            assert!(msg.contains("`max_rows_per_file` is"), "{msg}");
        }
    }

    #[test]
    fn scim_connectors_need_a_readable_token() {
        let cfg = TargetConfig::Scim {
            base_url: "http://localhost".to_string(),
            token: crate::config::secret::SecretRef::Env("HEADCOUNT_TEST_UNSET_TOKEN".to_string()),
            rate_limit: None,
            timeout: None,
        };
        let err = build_target("scim", &cfg, Path::new(".")).err().unwrap();
        assert!(
            err.to_string().starts_with("`token`: environment variable"),
            "{err}"
        );
        let cfg = SourceConfig::Scim {
            base_url: "http://localhost".to_string(),
            token: crate::config::secret::SecretRef::Env("HEADCOUNT_TEST_UNSET_TOKEN".to_string()),
            filter: None,
        };
        let err = build_source("scim", &cfg, Path::new(".")).err().unwrap();
        assert!(matches!(err, ConnectorError::Config(_)), "{err}");
    }

    #[test]
    fn scim_targets_build_from_a_token_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "t\n").unwrap();
        let cfg = |rate: Option<&str>| TargetConfig::Scim {
            base_url: "http://127.0.0.1:9/v2".to_string(),
            token: crate::config::secret::SecretRef::File("tok".to_string()),
            rate_limit: rate.map(str::to_string),
            timeout: Some("5s".to_string()),
        };
        assert!(build_target("scim", &cfg(Some("10/s")), dir.path()).is_ok());
        let err = build_target("scim", &cfg(Some("ten/s")), dir.path())
            .err()
            .unwrap();
        assert!(err.to_string().contains("rate limit `ten/s`"), "{err}");
    }
}
