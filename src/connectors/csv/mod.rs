//! The `csv` source: an HR export, one record per row.

mod source;

pub(crate) use source::row_number;
pub use source::{CsvSource, DEFAULT_MAX_BYTES};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::spec::{BuildContext, SourceSpec, SourceStarter};
use super::{ConnectorError, Source};
use crate::model::SecretRef;
use crate::model::checks::{self, Checks, PathSeg};

/// A CSV file with a header row (UTF-8, with or without BOM).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvSourceConfig {
    /// Path of the CSV file, relative to the config file.
    pub path: String,
    /// Field delimiter, one ASCII character. Default `,`.
    #[serde(default)]
    pub delimiter: Option<String>,
    /// The largest file read, in bytes. Default 1 GiB (`1073741824`): far above any HR export,
    /// and it stops a wrong path (a device, a log) from filling memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_bytes: Option<u64>,
}

impl SourceSpec for CsvSourceConfig {
    fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        vec![]
    }

    fn check(&self, c: &mut dyn Checks) {
        checks::non_empty(c, "path", &self.path);
        if let Some(d) = &self.delimiter
            && parse_delimiter(Some(d)).is_err()
        {
            let msg = format!(
                "`delimiter` of {} must be exactly one ASCII character (not a quote or a line break), not {d:?}",
                c.owner()
            );
            c.error(
                &[PathSeg::Key("delimiter")],
                msg,
                Some("e.g. `delimiter: \";\"` or `delimiter: \"\\t\"`".to_string()),
            );
        }
    }

    fn build(&self, _name: &str, cx: &BuildContext<'_>) -> Result<Box<dyn Source>, ConnectorError> {
        if self.path.trim().is_empty() {
            return Err(ConnectorError::Config(
                "`path` is empty: give the CSV file's path".to_string(),
            ));
        }
        let delimiter = parse_delimiter(self.delimiter.as_deref())?;
        let mut source = CsvSource::new(cx.path(&self.path), delimiter);
        if let Some(max) = self.max_bytes {
            if max == 0 {
                return Err(ConnectorError::Config(
                    "`max_bytes` is 0: give the largest file size to read, in bytes".to_string(),
                ));
            }
            source = source.with_max_bytes(max);
        }
        Ok(Box::new(source))
    }

    fn starter() -> SourceStarter {
        SourceStarter {
            name: "hr",
            block: r#"  # An HR export: UTF-8, one header row; each row is a record whose keys are the headers.
  hr:
    kind: csv
    path: hr/people.csv                  # relative to this file
    # delimiter: ";"                     # one ASCII character; default ","
"#,
            email: "user.email",
            given: "user.first_name",
            family: "user.last_name",
            full: r#"user.first_name + " " + user.last_name"#,
            login: "user.email",
            where_: Some(r#"user.email != """#),
            active: None,
            pending: false,
        }
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
    use crate::connectors::ClientPool;

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

    #[tokio::test]
    async fn builds_a_csv_source_reading_from_the_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("people.csv"), "email;name\na@x.io;Ann\n").unwrap();
        let pool = ClientPool::default();
        let cx = BuildContext::new(dir.path(), &pool);
        let cfg = |d: &str| CsvSourceConfig {
            path: "people.csv".to_string(),
            delimiter: Some(d.to_string()),
            max_bytes: None,
        };
        let source = cfg(";").build("hr", &cx).unwrap();
        let records = source.read().await.unwrap();
        assert_eq!(records[0].data["name"], "Ann");
        assert!(cfg("ab").build("hr", &cx).is_err());
    }
}
