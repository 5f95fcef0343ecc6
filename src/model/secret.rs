//! Secret references: `{ env: NAME }` or `{ file: PATH }`. A literal secret in the config is
//! refused, because the config lives in git.

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Where a secret comes from. Never holds the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretRef {
    /// Name of an environment variable holding the secret.
    Env(String),
    /// Path of a file holding the secret (relative to the config file); trailing newlines are
    /// trimmed.
    File(String),
}

/// The message for a secret written into the config itself. The loader recognises it to mask
/// the value in the error's snippet.
pub(crate) const LITERAL_SECRET: &str = "a literal secret is not allowed in the config (it lives in git): write { env: VARIABLE } or { file: PATH }";

// Hand-written rather than `untagged` so that errors keep their position and name the key
// (`untagged` buffers the value and only says "did not match any variant").
impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretVisitor)
    }
}

struct SecretVisitor;

impl SecretVisitor {
    fn literal<E: serde::de::Error>() -> Result<SecretRef, E> {
        Err(E::custom(LITERAL_SECRET))
    }
}

impl<'de> serde::de::Visitor<'de> for SecretVisitor {
    type Value = SecretRef;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a secret reference: { env: VARIABLE } or { file: PATH }")
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<SecretRef, E> {
        Self::literal()
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<SecretRef, E> {
        Self::literal()
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<SecretRef, E> {
        Self::literal()
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<SecretRef, E> {
        Self::literal()
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<SecretRef, E> {
        Self::literal()
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<SecretRef, E> {
        Err(E::custom(
            "the secret reference is empty: write { env: VARIABLE } or { file: PATH }",
        ))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
        use serde::de::Error;
        let mut found: Option<SecretRef> = None;
        while let Some(key) = map.next_key::<String>()? {
            let make = match key.as_str() {
                "env" => SecretRef::Env,
                "file" => SecretRef::File,
                other => return Err(A::Error::unknown_field(other, &["env", "file"])),
            };
            let value: String = map.next_value()?;
            if value.trim().is_empty() {
                return Err(A::Error::custom(format!(
                    "`{key}` of the secret reference is empty: name the {}",
                    if key == "env" {
                        "environment variable"
                    } else {
                        "file"
                    }
                )));
            }
            if found.is_some() {
                return Err(A::Error::custom(
                    "a secret reference takes exactly one of `env` or `file`",
                ));
            }
            found = Some(make(value));
        }
        found.ok_or_else(|| {
            A::Error::custom("a secret reference takes exactly one of `env` or `file`")
        })
    }
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable `{0}` is not set: export it before running headcount")]
    MissingEnv(String),
    #[error("secret file `{path}` cannot be read: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("secret {0} is empty")]
    Empty(String),
    #[error(
        "secret file `{0}` is not a regular file (a device, pipe or folder): point `file:` at a file holding only the secret"
    )]
    NotAFile(String),
    #[error(
        "secret file `{path}` is larger than {limit} bytes: a secret file holds only the secret (a token or a key), check that `file:` names the right file"
    )]
    TooLarge { path: String, limit: u64 },
}

/// The largest secret file read. Keys and tokens are a few KiB; the cap keeps a path such as
/// `/dev/zero` or a log file from being read into memory.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Reads a secret file: a regular file (checked before opening, so a FIFO cannot block the
/// run) of at most [`MAX_SECRET_FILE_BYTES`] (read through a bounded reader, since a file can
/// grow between the check and the read). Token files (federated OIDC tokens) are read with it
/// too.
pub fn read_secret_file(full: &std::path::Path) -> Result<String, SecretError> {
    use crate::util::BoundedRead;
    let shown = || full.display().to_string();
    let io = |source| SecretError::File {
        path: shown(),
        source,
    };
    let bytes = crate::util::read_bounded(full, MAX_SECRET_FILE_BYTES).map_err(|e| match e {
        BoundedRead::NotAFile => SecretError::NotAFile(shown()),
        BoundedRead::TooLarge => SecretError::TooLarge {
            path: shown(),
            limit: MAX_SECRET_FILE_BYTES,
        },
        BoundedRead::Io(e) => io(e),
    })?;
    String::from_utf8(bytes).map_err(|_| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file is not UTF-8 text",
        ))
    })
}

impl SecretRef {
    /// Reads the secret. `base_dir` is the config file's folder.
    pub fn resolve(&self, base_dir: &std::path::Path) -> Result<SecretString, SecretError> {
        let value = match self {
            SecretRef::Env(name) => {
                std::env::var(name).map_err(|_| SecretError::MissingEnv(name.clone()))?
            }
            SecretRef::File(path) => {
                let full = base_dir.join(path);
                read_secret_file(&full)?
                    .trim_end_matches(['\n', '\r'])
                    .to_string()
            }
        };
        if value.is_empty() {
            return Err(SecretError::Empty(self.describe()));
        }
        Ok(SecretString::from(value))
    }

    /// `env NAME` or `file PATH`, for messages (never the value).
    pub fn describe(&self) -> String {
        match self {
            SecretRef::Env(n) => format!("env {n}"),
            SecretRef::File(p) => format!("file {p}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_is_small_and_regular() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ok"), "token\n").unwrap();
        let ok = SecretRef::File("ok".into()).resolve(dir.path()).unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&ok), "token");

        let big = vec![b'a'; (MAX_SECRET_FILE_BYTES + 1) as usize];
        std::fs::write(dir.path().join("big"), big).unwrap();
        let err = SecretRef::File("big".into())
            .resolve(dir.path())
            .unwrap_err();
        assert!(matches!(err, SecretError::TooLarge { .. }), "{err}");

        // A device that never ends, and a folder: refused before any read.
        let started = std::time::Instant::now();
        let err = SecretRef::File("/dev/zero".into())
            .resolve(dir.path())
            .unwrap_err();
        assert!(matches!(err, SecretError::NotAFile(_)), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let err = SecretRef::File(".".into()).resolve(dir.path()).unwrap_err();
        assert!(matches!(err, SecretError::NotAFile(_)), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_does_not_hang() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo failed");
        let err = SecretRef::File("fifo".into())
            .resolve(dir.path())
            .unwrap_err();
        assert!(matches!(err, SecretError::NotAFile(_)), "{err}");
    }
}
