//! The apply journal (SPEC section 10): one JSON line per successful target operation, fsynced
//! before the apply goes on, so a crash or SIGKILL mid-apply loses nothing.
//!
//! Format: the first line is a [`JournalHeader`] naming the state it was written on top of
//! (lineage and serial); each later line is one [`StateOp`]. The file is created complete with its
//! header (temp file + rename), so a journal on disk always has a header. A kill in the middle of
//! an append can leave a trailing line without its newline: if it is a whole op it is kept (the
//! target operation did happen), otherwise it is ignored (that op was never confirmed).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::StateError;
use super::model::{State, StateOp};
use super::store::{create_parent_dir, parent_dir, sync_dir, temp_path};

/// First line of the journal: which state its operations apply to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalHeader {
    pub lineage: String,
    /// Serial of the state the ops go on top of; 0 when there was no state file yet.
    pub base_serial: u64,
}

/// An open journal. Each [`Journal::append`] is durable when it returns. It also keeps the base
/// state with every appended op applied, so the caller can commit exactly what was journalled.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    state: State,
    poisoned: bool,
}

impl Journal {
    /// Writes the op as one line and fsyncs it. After a failed write the journal refuses further
    /// ops, so that a half-written line is never followed by more lines.
    pub fn append(&mut self, op: &StateOp) -> Result<(), StateError> {
        if self.poisoned {
            return Err(StateError::JournalPoisoned {
                path: self.path.clone(),
            });
        }
        let mut line = serde_json::to_vec(op).map_err(|source| StateError::Encode {
            path: self.path.clone(),
            source,
        })?;
        line.push(b'\n');
        // One write call per line keeps a kill from interleaving two partial lines.
        if let Err(e) = self
            .file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
        {
            self.poisoned = true;
            return Err(StateError::io("append to the journal", &self.path)(e));
        }
        self.state.apply_op(op);
        Ok(())
    }

    /// The base state with every appended op applied (serial unchanged until commit).
    pub fn into_state(self) -> State {
        self.state
    }
}

/// Creates a journal with its header, atomically replacing any (already checked) previous one.
pub(crate) fn create(path: &Path, base: &State) -> Result<Journal, StateError> {
    create_parent_dir(path)?;
    let header = JournalHeader {
        lineage: base.lineage.clone(),
        base_serial: base.serial,
    };
    let mut line = serde_json::to_vec(&header).map_err(|source| StateError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    line.push(b'\n');

    let tmp = temp_path(path);
    let result = (|| {
        let mut options = crate::util::private_file_options();
        options.append(true).create_new(true);
        let mut file = crate::util::open_private(&options, &tmp)
            .map_err(StateError::io("create the journal", &tmp))?;
        file.write_all(&line)
            .and_then(|()| file.sync_all())
            .map_err(StateError::io("write the journal", &tmp))?;
        // The open handle follows the file through the rename and keeps appending to it.
        fs::rename(&tmp, path).map_err(StateError::io("create the journal", path))?;
        sync_dir(parent_dir(path))?;
        Ok(file)
    })();
    match result {
        Ok(file) => Ok(Journal {
            path: path.to_path_buf(),
            file,
            state: base.clone(),
            poisoned: false,
        }),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// A journal as read back from disk.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JournalContents {
    /// `None` only for a file that lost its header (never written by [`create`]); it holds no op.
    pub header: Option<JournalHeader>,
    pub ops: Vec<StateOp>,
    /// A trailing partial line was dropped.
    pub dropped_partial_line: bool,
}

/// Reads the journal; `None` when there is none.
pub(crate) fn read(path: &Path) -> Result<Option<JournalContents>, StateError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io("read the journal", path)(e)),
    };
    parse(path, &bytes).map(Some)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<JournalContents, StateError> {
    let corrupt = |line: usize, detail: String| StateError::JournalCorrupt {
        path: path.to_path_buf(),
        line,
        detail,
    };
    let mut segments: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    // The last segment is whatever follows the last newline: empty, or an unfinished line.
    let tail = segments.pop().unwrap_or_default();
    let mut contents = JournalContents {
        header: None,
        ops: Vec::new(),
        dropped_partial_line: false,
    };
    let mut lines = segments.into_iter().enumerate();
    match lines.next() {
        Some((_, first)) => {
            contents.header = Some(
                serde_json::from_slice(first)
                    .map_err(|e| corrupt(1, format!("bad header: {e}")))?,
            );
        }
        None => {
            // Not even a whole header: no op can have been appended.
            contents.dropped_partial_line = !tail.is_empty();
            return Ok(contents);
        }
    }
    for (i, line) in lines {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let op = serde_json::from_slice(line).map_err(|e| corrupt(i + 1, e.to_string()))?;
        contents.ops.push(op);
    }
    if !tail.iter().all(u8::is_ascii_whitespace) {
        match serde_json::from_slice(tail) {
            Ok(op) => contents.ops.push(op),
            Err(_) => contents.dropped_partial_line = true,
        }
    }
    Ok(contents)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn op(id: &str) -> StateOp {
        StateOp::Remove {
            sync: "s".into(),
            target_id: id.into(),
        }
    }

    fn line(op: &StateOp) -> String {
        format!("{}\n", serde_json::to_string(op).unwrap())
    }

    const HEADER: &str = "{\"lineage\":\"L\",\"base_serial\":3}\n";

    #[test]
    fn partial_trailing_line_is_dropped() {
        let text = format!("{HEADER}{}{{\"op\":\"remo", line(&op("1")));
        let c = parse(Path::new("j"), text.as_bytes()).unwrap();
        assert_eq!(c.ops, vec![op("1")]);
        assert!(c.dropped_partial_line);
        assert_eq!(c.header.unwrap().base_serial, 3);
    }

    #[test]
    fn whole_op_without_newline_is_kept() {
        let whole = line(&op("2"));
        let text = format!("{HEADER}{}{}", line(&op("1")), whole.trim_end());
        let c = parse(Path::new("j"), text.as_bytes()).unwrap();
        assert_eq!(c.ops, vec![op("1"), op("2")]);
        assert!(!c.dropped_partial_line);
    }

    #[test]
    fn damaged_middle_line_is_an_error() {
        let text = format!("{HEADER}garbage\n{}", line(&op("1")));
        let e = parse(Path::new("j"), text.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn headerless_journal_holds_nothing() {
        let c = parse(Path::new("j"), b"{\"lineage\":").unwrap();
        assert!(c.header.is_none() && c.ops.is_empty());
        let c = parse(Path::new("j"), b"").unwrap();
        assert!(c.header.is_none() && !c.dropped_partial_line);
    }
}
