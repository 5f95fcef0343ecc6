//! Small helpers shared by several modules.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Mode of every file headcount writes that holds personal data (state, journal, lock, audit
/// log, saved plans, export sets): owner read/write only.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode of the folders headcount creates for those files (`.headcount/`, the export folder).
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Options that create a file with [`PRIVATE_FILE_MODE`] (on Unix), so that the file is never
/// readable by others, not even between its creation and a later `chmod`. The caller adds
/// the access mode (`write`, `append`, `create_new`, ...).
#[allow(clippy::disallowed_methods)] // the one place modes are set
pub fn private_file_options() -> OpenOptions {
    #[allow(unused_mut)] // the mode is Unix-only
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, PRIVATE_FILE_MODE);
    options
}

/// Opens `path` with `options` (from [`private_file_options`]) and narrows the mode of a file
/// that already existed with a wider one (the mode of `open` applies only on creation).
pub fn open_private(options: &OpenOptions, path: &Path) -> io::Result<File> {
    let file = options.open(path)?;
    restrict(&file)?;
    Ok(file)
}

/// Narrows `file` to [`PRIVATE_FILE_MODE`] when group or others have any access.
#[allow(clippy::disallowed_methods)] // the one place modes are set
pub fn restrict(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if file.metadata()?.permissions().mode() & 0o077 != 0 {
            file.set_permissions(fs::Permissions::from_mode(PRIVATE_FILE_MODE))?;
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

/// Creates `dir` and any missing parents with [`PRIVATE_DIR_MODE`]. Folders that exist already
/// are left as they are: they belong to the user, who chose their mode.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    private_dir_builder().recursive(true).create(dir)
}

/// Creates the one folder `dir` with [`PRIVATE_DIR_MODE`]; fails when it exists.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    private_dir_builder().create(dir)
}

#[allow(clippy::disallowed_methods)] // the one place modes are set
fn private_dir_builder() -> DirBuilder {
    #[allow(unused_mut)] // the mode is Unix-only
    let mut builder = DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, PRIVATE_DIR_MODE);
    builder
}

/// Hex-encoded SHA-256 of some bytes.
/// Why [`read_bounded`] refused a file; callers word it for their setting.
#[derive(Debug)]
pub enum BoundedRead {
    /// A folder, device or pipe: refused before opening (a FIFO would block, a device never
    /// ends).
    NotAFile,
    /// Larger than the limit (checked before the read, and again after it, since a file can
    /// grow in between).
    TooLarge,
    Io(io::Error),
}

/// Reads a regular file of at most `limit` bytes through a bounded reader: the one way an
/// input file is read (secret and token files, CSV sources, CA files, caches).
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, BoundedRead> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(BoundedRead::Io)?;
    if !meta.is_file() {
        return Err(BoundedRead::NotAFile);
    }
    if meta.len() > limit {
        return Err(BoundedRead::TooLarge);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    File::open(path)
        .and_then(|f| f.take(limit.saturating_add(1)).read_to_end(&mut bytes))
        .map_err(BoundedRead::Io)?;
    if bytes.len() as u64 > limit {
        return Err(BoundedRead::TooLarge);
    }
    Ok(bytes)
}

/// `name` as one path component: ASCII letters, digits, `-`, `_` and `.` kept, anything else
/// replaced, with a hash of the original appended when something was, so two names never share
/// a file.
pub fn file_safe(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe == name && !name.is_empty() && !name.starts_with('.') {
        safe
    } else {
        format!("{safe}-{}", &sha256_hex(name.as_bytes())[..12])
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Levenshtein distance, used to suggest the nearest valid key or name.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub fn nearest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.chars().count().max(word.chars().count()) / 2).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // the tests widen modes on purpose
mod tests {
    #[test]
    fn file_safe_keeps_plain_names_and_never_merges_two() {
        assert_eq!(super::file_safe("entra-staff_1.x"), "entra-staff_1.x");
        let a = super::file_safe("a/b");
        let b = super::file_safe("a_b");
        assert!(a.starts_with("a_b-") && !a.contains('/'));
        assert_ne!(a, b);
        assert_ne!(super::file_safe(".."), "..");
        assert!(!super::file_safe("").is_empty());
    }

    use super::*;

    #[test]
    fn nearest_finds_typos() {
        assert_eq!(nearest("frm", ["from", "to", "where"]), Some("from"));
        assert_eq!(nearest("identiy", ["identity", "fields"]), Some("identity"));
        assert_eq!(nearest("zzzzzzzz", ["from", "to"]), None);
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_created_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        let mut options = private_file_options();
        options.write(true).create_new(true);
        open_private(&options, &path).unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn an_existing_file_with_a_wider_mode_is_narrowed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        fs::write(&path, "old line\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let mut options = private_file_options();
        options.create(true).append(true);
        open_private(&options, &path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::read_to_string(&path).unwrap(), "old line\n");
    }

    #[cfg(unix)]
    #[test]
    fn private_dirs_are_owner_only_and_existing_ones_are_left_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b/c");
        create_private_dir_all(&nested).unwrap();
        for d in ["a", "a/b", "a/b/c"] {
            assert_eq!(mode(&dir.path().join(d)), 0o700, "{d}");
        }
        // Idempotent, and a folder the user made keeps the mode the user gave it.
        create_private_dir_all(&nested).unwrap();
        let mine = dir.path().join("mine");
        fs::create_dir(&mine).unwrap();
        fs::set_permissions(&mine, fs::Permissions::from_mode(0o750)).unwrap();
        create_private_dir_all(&mine).unwrap();
        assert_eq!(mode(&mine), 0o750);

        let one = dir.path().join("one");
        create_private_dir(&one).unwrap();
        assert_eq!(mode(&one), 0o700);
        assert!(create_private_dir(&one).is_err(), "exists already");
    }

    #[test]
    fn sha256_is_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

/// `s` made safe for a terminal: control characters (C0 including tab and newline, DEL, C1)
/// and bidi overrides escaped (`\u{1b}`), so that a value from a source or a vendor can
/// neither move the cursor, recolour the terminal, retitle the window nor split one line
/// into several. For one-line human output (`state list`, messages quoting values).
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(unprintable) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else if unprintable(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// JSON text for a person to read (`state show`): serde_json escapes C0 characters but
/// writes DEL, C1 and bidi overrides raw, so those are escaped as `\uXXXX` too (they can only
/// occur inside strings, where the escape means the same character).
pub fn json_printable(json: &str) -> std::borrow::Cow<'_, str> {
    if !json.chars().any(unprintable) {
        return std::borrow::Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if unprintable(c) && c != '\n' {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod printable_tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        assert_eq!(printable("plain é"), "plain é");
        assert_eq!(
            printable("a\u{1b}[31m\tb\nc\u{0}\u{7f}\u{9b}d\u{202e}"),
            "a\\u{1b}[31m\\tb\\nc\\0\\u{7f}\\u{9b}d\\u{202e}"
        );
        let json = "{\n  \"a\": \"x\u{9b}y\u{202e}\\u001b\"\n}";
        assert_eq!(
            json_printable(json),
            "{\n  \"a\": \"x\\u009by\\u202e\\u001b\"\n}"
        );
        let v: serde_json::Value = serde_json::from_str(&json_printable(json)).unwrap_or_default();
        assert_eq!(v["a"], "x\u{9b}y\u{202e}\u{1b}");
    }
}
