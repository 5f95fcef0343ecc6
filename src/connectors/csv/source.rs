//! The `csv` source: one record per data row of a UTF-8 file with a header row.
//!
//! The file is read whole and parsed as byte records so that a file which is not UTF-8 can be
//! reported with the row and the byte offset of the first bad byte (SPEC section 13): HR
//! exports saved as Latin-1 or UTF-16 are the most common way this source goes wrong.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::connectors::{ConnectorError, Source, SourceRecord};

/// The largest CSV file read unless the source sets `max_bytes`: 1 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024 * 1024;

/// Reads people from a CSV file with a header row.
#[derive(Debug, Clone)]
pub struct CsvSource {
    path: PathBuf,
    delimiter: u8,
    max_bytes: u64,
}

impl CsvSource {
    /// `path` should already be resolved against the config file's folder.
    pub fn new(path: PathBuf, delimiter: u8) -> Self {
        CsvSource {
            path,
            delimiter,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    /// Caps the size of the file read (the source's `max_bytes`).
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The file this source reads.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl Source for CsvSource {
    async fn read(&self) -> Result<Vec<SourceRecord>, ConnectorError> {
        let path = self.path.clone();
        let delimiter = self.delimiter;
        let max_bytes = self.max_bytes;
        // Reading and parsing are blocking work; keep them off the async workers.
        tokio::task::spawn_blocking(move || read_file(&path, delimiter, max_bytes))
            .await
            .map_err(|e| {
                ConnectorError::Io(format!(
                    "{}: reading the CSV file stopped unexpectedly: {e}",
                    self.path.display()
                ))
            })?
    }
}

fn read_file(
    path: &Path,
    delimiter: u8,
    max_bytes: u64,
) -> Result<Vec<SourceRecord>, ConnectorError> {
    let bytes = read_bounded(path, max_bytes)?;
    parse(&bytes, delimiter, &path.display().to_string())
}

/// Reads the whole file, refusing anything but a regular file (checked before opening, so a
/// FIFO cannot block the run and a device cannot fill memory) and anything over `max_bytes`
/// (checked on the size first, then enforced by a bounded reader since a file can grow).
fn read_bounded(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ConnectorError> {
    let failed = |e: std::io::Error| {
        let what = if e.kind() == std::io::ErrorKind::NotFound {
            "the CSV file does not exist".to_string()
        } else {
            format!("the CSV file cannot be read ({e})")
        };
        ConnectorError::BadData(format!(
            "{}: {what}: check the source's `path` (a relative path is read from the config file's folder) and the file's permissions",
            path.display()
        ))
    };
    let too_large = || {
        ConnectorError::BadData(format!(
            "{}: the CSV file is larger than {max_bytes} bytes (the source's `max_bytes`): check that `path` names the HR export, or raise `max_bytes` on the source",
            path.display()
        ))
    };
    crate::util::read_bounded(path, max_bytes).map_err(|e| match e {
        crate::util::BoundedRead::NotAFile => ConnectorError::BadData(format!(
            "{}: not a regular file (a folder, device or pipe): point the source's `path` at the CSV file",
            path.display()
        )),
        crate::util::BoundedRead::TooLarge => too_large(),
        crate::util::BoundedRead::Io(e) => failed(e),
    })
}

/// Parses a whole CSV file. `name` is how messages refer to the file.
pub(crate) fn parse(
    bytes: &[u8],
    delimiter: u8,
    name: &str,
) -> Result<Vec<SourceRecord>, ConnectorError> {
    // Offset of the first byte that is not UTF-8, if any; checked per record below so the
    // message can name the row it sits in.
    let first_invalid = std::str::from_utf8(bytes)
        .err()
        .map(|e| e.valid_up_to() as u64);
    // The reader takes an unclosed quote as a value running to the end of the file, which then
    // shows up as a wrong field count or a missing column far from the cause.
    if let Some(row) = unclosed_quote(bytes, delimiter) {
        return Err(ConnectorError::BadData(format!(
            "{name}: unclosed quote: the quoted value that opens on row {row} never closes, so the rest of the file would be read into it: add the closing `\"` (a quote inside a quoted value is written `\"\"`)"
        )));
    }

    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut record = csv::ByteRecord::new();
    let mut header: Option<Vec<String>> = None;
    let mut out = Vec::new();

    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                return Err(ConnectorError::BadData(format!(
                    "{name}: cannot be read as CSV: {e}"
                )));
            }
        }
        let row = record
            .position()
            .map(|p| row_number(bytes, p.byte(), p.line()))
            .unwrap_or(1);
        let end = reader.position().byte();
        if let Some(bad) = first_invalid
            && bad < end
        {
            return Err(not_utf8(name, row, bad));
        }
        let mut fields = Vec::with_capacity(record.len());
        for field in record.iter() {
            match std::str::from_utf8(field) {
                Ok(s) => fields.push(s),
                Err(_) => return Err(not_utf8(name, row, first_invalid.unwrap_or(0))),
            }
        }

        let Some(names) = &header else {
            header = Some(check_header(name, &fields)?);
            continue;
        };
        if fields.len() != names.len() {
            return Err(ConnectorError::BadData(format!(
                "{name}: row {row} has {} field{} but the header has {}: check for a missing or extra {} on that row, and quote values that contain it",
                fields.len(),
                if fields.len() == 1 { "" } else { "s" },
                names.len(),
                show_delimiter(delimiter),
            )));
        }
        let mut data = Map::with_capacity(names.len());
        for (key, value) in names.iter().zip(fields) {
            data.insert(key.clone(), Value::String(value.to_string()));
        }
        out.push(SourceRecord {
            label: format!("row {row}"),
            data: Value::Object(data),
        });
    }

    if header.is_none() {
        return Err(ConnectorError::BadData(format!(
            "{name}: the file is empty: it needs a header row naming the columns (e.g. `email,first_name,last_name`)"
        )));
    }
    Ok(out)
}

/// The line (1-based) of a quote that opens a field and is never closed, read as the CSV reader
/// does: a quote opens a value only at the start of a field, and `""` inside one is a quote.
fn unclosed_quote(bytes: &[u8], delimiter: u8) -> Option<u64> {
    let mut line = 1u64;
    let mut quoted = false;
    let mut field_start = true;
    let mut opened_on = 0u64;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if quoted {
            if b == b'"' {
                if bytes.get(i + 1) == Some(&b'"') {
                    i += 2;
                    continue;
                }
                quoted = false;
            } else if b == b'\n' {
                line += 1;
            }
        } else {
            if b == b'"' && field_start {
                quoted = true;
                opened_on = line;
            }
            field_start = b == delimiter || b == b'\n' || b == b'\r';
            if b == b'\n' {
                line += 1;
            }
        }
        i += 1;
    }
    quoted.then_some(opened_on)
}

/// The 1-based line where a record starts. The reader's position points just after the
/// previous record's terminator (only its `\r` for CRLF) and before skipped blank lines, so
/// line breaks are stepped over here.
pub(crate) fn row_number(bytes: &[u8], start: u64, line: u64) -> u64 {
    let mut line = line;
    let from = usize::try_from(start).unwrap_or(usize::MAX);
    for &b in bytes.get(from..).unwrap_or_default() {
        match b {
            b'\n' => line += 1,
            b'\r' => {}
            _ => break,
        }
    }
    line
}

fn not_utf8(name: &str, row: u64, offset: u64) -> ConnectorError {
    ConnectorError::BadData(format!(
        "{name}: row {row} (byte offset {offset}) is not valid UTF-8: re-save the file as UTF-8 (in Excel: \"CSV UTF-8\")"
    ))
}

/// Header names, checked: each must be non-empty and unique, since they become record keys.
fn check_header(name: &str, fields: &[&str]) -> Result<Vec<String>, ConnectorError> {
    let mut names: Vec<String> = Vec::with_capacity(fields.len());
    for (i, raw) in fields.iter().enumerate() {
        let column = if i == 0 {
            raw.strip_prefix('\u{feff}').unwrap_or(raw)
        } else {
            raw
        };
        if column.trim().is_empty() {
            return Err(ConnectorError::BadData(format!(
                "{name}: column {} of the header row is empty: give every column a name (a trailing delimiter on the header row also makes an empty column)",
                i + 1
            )));
        }
        if let Some(first) = names.iter().position(|n| n == column) {
            return Err(ConnectorError::BadData(format!(
                "{name}: the header row names `{column}` twice (columns {} and {}): rename one of them",
                first + 1,
                i + 1
            )));
        }
        names.push(column.to_string());
    }
    Ok(names)
}

fn show_delimiter(delimiter: u8) -> String {
    match delimiter {
        b'\t' => "tab".to_string(),
        b' ' => "space".to_string(),
        d => format!("`{}`", char::from(d)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_ok(text: &[u8], delimiter: u8) -> Vec<SourceRecord> {
        parse(text, delimiter, "people.csv").unwrap()
    }

    fn parse_err(text: &[u8], delimiter: u8) -> String {
        parse(text, delimiter, "people.csv")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn reads_rows_as_objects_in_header_order() {
        let recs = parse_ok(b"email,first_name,dept\na@x.io,Ann,\nb@x.io,Bob,IT\n", b',');
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].label, "row 2");
        assert_eq!(
            recs[0].data,
            json!({"email": "a@x.io", "first_name": "Ann", "dept": ""})
        );
        let keys: Vec<_> = recs[1].data.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["email", "first_name", "dept"]);
        assert_eq!(recs[1].label, "row 3");
    }

    #[test]
    fn strips_bom_from_first_header() {
        let recs = parse_ok(b"\xef\xbb\xbfemail,name\na@x.io,Ann\n", b',');
        assert_eq!(recs[0].data, json!({"email": "a@x.io", "name": "Ann"}));
    }

    #[test]
    fn quoted_fields_with_delimiters_quotes_and_newlines() {
        let text = "email,notes,name\n\"a@x.io\",\"line 1\nline 2, still\",\"Ann \"\"Nan\"\" O'Neil\"\nb@x.io,plain,Bob\n";
        let recs = parse_ok(text.as_bytes(), b',');
        assert_eq!(recs[0].data["notes"], "line 1\nline 2, still");
        assert_eq!(recs[0].data["name"], "Ann \"Nan\" O'Neil");
        // The second record starts on line 4 because the first spans two lines.
        assert_eq!(recs[1].label, "row 4");
    }

    #[test]
    fn crlf_line_endings() {
        let recs = parse_ok(b"email,name\r\na@x.io,Ann\r\nb@x.io,Bob\r\n", b',');
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].data, json!({"email": "b@x.io", "name": "Bob"}));
        assert_eq!(recs[1].label, "row 3");
    }

    #[test]
    fn semicolon_delimiter() {
        let recs = parse_ok(b"email;name\na@x.io;Doe, Ann\n", b';');
        assert_eq!(recs[0].data, json!({"email": "a@x.io", "name": "Doe, Ann"}));
    }

    #[test]
    fn blank_lines_are_skipped_and_rows_keep_file_line_numbers() {
        let recs = parse_ok(b"email\n\na@x.io\n\r\n\nb@x.io", b',');
        let labels: Vec<_> = recs.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["row 3", "row 6"]);
    }

    #[test]
    fn invalid_utf8_names_row_and_byte_offset() {
        // "Jos\xe9" is Latin-1: the bad byte is on line 3, 11 + 11 + 10 bytes into the file.
        let text = b"email,name\na@x.io,Ann\nb@x.io,Jos\xe9\n";
        let msg = parse_err(text, b',');
        assert_eq!(
            msg,
            "people.csv: row 3 (byte offset 32) is not valid UTF-8: re-save the file as UTF-8 (in Excel: \"CSV UTF-8\")"
        );
        assert_eq!(text[32], 0xe9);
    }

    #[test]
    fn invalid_utf8_offset_counts_bom_and_multiline_rows() {
        let text = b"\xef\xbb\xbfemail,notes\na@x.io,\"one\ntwo\"\nb@x.io,\"x\n\xff\"\n";
        let msg = parse_err(text, b',');
        let offset = text.iter().position(|&b| b == 0xff).unwrap();
        assert!(
            msg.contains(&format!("row 4 (byte offset {offset})")),
            "{msg}"
        );
    }

    #[test]
    fn invalid_utf8_in_header() {
        let msg = parse_err(b"em\xc3il,name\na,b\n", b',');
        assert!(msg.contains("row 1 (byte offset 2)"), "{msg}");
    }

    #[test]
    fn ragged_row_names_row_and_counts() {
        let msg = parse_err(b"email,first,last\na@x.io,A,B\nb@x.io,Doe, Bob,C\n", b',');
        assert_eq!(
            msg,
            "people.csv: row 3 has 4 fields but the header has 3: check for a missing or extra `,` on that row, and quote values that contain it"
        );
        let msg = parse_err(b"email;first\na@x.io\n", b';');
        assert!(
            msg.contains("row 2 has 1 field but the header has 2"),
            "{msg}"
        );
        assert!(msg.contains("`;`"), "{msg}");
    }

    /// Issue 7 point 10: an unclosed quote is named as such, at its row, not as a field count.
    #[test]
    fn unclosed_quote_names_its_row() {
        let msg = parse_err(
            b"email,first,last\na@x.io,\"Ann,Archer\nb@x.io,Bob,Baker\n",
            b',',
        );
        assert!(msg.contains("unclosed quote"), "{msg}");
        assert!(msg.contains("opens on row 2"), "{msg}");
        assert!(!msg.contains("fields"), "{msg}");
        // Quotes that close, doubled quotes and quotes inside unquoted values are fine.
        parse_ok(b"a,b\n\"x \"\"y\"\"\",\"1\n2\"\nO\"Neil,z\n", b',');
    }

    #[test]
    fn duplicate_and_empty_header_names() {
        let msg = parse_err(b"email,name,Email,name\n", b',');
        assert!(
            msg.contains("names `name` twice (columns 2 and 4)"),
            "{msg}"
        );
        let msg = parse_err(b"email,,name\n", b',');
        assert!(msg.contains("column 2 of the header row is empty"), "{msg}");
        let msg = parse_err(b"email,name,\na,b,\n", b',');
        assert!(msg.contains("column 3 of the header row is empty"), "{msg}");
    }

    #[test]
    fn empty_file_is_an_error() {
        for text in [&b""[..], b"\xef\xbb\xbf", b"\n\r\n"] {
            let msg = parse_err(text, b',');
            assert!(msg.contains("the file is empty"), "{msg}");
        }
    }

    #[test]
    fn header_only_gives_no_records() {
        assert!(parse_ok(b"email,name\n", b',').is_empty());
        assert!(parse_ok(b"email,name", b',').is_empty());
    }

    #[test]
    fn unicode_values_survive() {
        let recs = parse_ok(
            "email,name\nzoë@x.io,Zoë Ærøskøbing 山田\n".as_bytes(),
            b',',
        );
        assert_eq!(recs[0].data["name"], "Zoë Ærøskøbing 山田");
    }

    #[tokio::test]
    async fn reads_a_file_and_names_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("people.csv");
        std::fs::write(&path, "email\na@x.io\n").unwrap();
        let recs = CsvSource::new(path, b',').read().await.unwrap();
        assert_eq!(recs[0].data, json!({"email": "a@x.io"}));

        let missing = dir.path().join("nope.csv");
        let err = CsvSource::new(missing.clone(), b',')
            .read()
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectorError::BadData(_)));
        let msg = err.to_string();
        assert!(msg.contains(&missing.display().to_string()), "{msg}");
        assert!(msg.contains("does not exist"), "{msg}");
    }

    #[tokio::test]
    async fn the_file_is_bounded_and_regular() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("people.csv");
        std::fs::write(&path, "email\na@x.io\nb@x.io\n").unwrap();
        let err = CsvSource::new(path.clone(), b',')
            .with_max_bytes(10)
            .read()
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("larger than 10 bytes"), "{err}");
        assert!(err.contains("max_bytes"), "{err}");
        assert!(
            CsvSource::new(path, b',')
                .with_max_bytes(1000)
                .read()
                .await
                .is_ok()
        );

        let started = std::time::Instant::now();
        for special in ["/dev/zero", "/tmp"] {
            let err = CsvSource::new(PathBuf::from(special), b',')
                .read()
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains("not a regular file"), "{err}");
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
