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

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Literal(#[allow(dead_code)] String),
            Ref(RefMap),
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RefMap {
            env: Option<String>,
            file: Option<String>,
        }
        match Raw::deserialize(d)? {
            Raw::Literal(_) => Err(serde::de::Error::custom(
                "a literal secret is not allowed in the config (it lives in git): write { env: VARIABLE } or { file: PATH }",
            )),
            Raw::Ref(RefMap { env: Some(e), file: None }) => Ok(SecretRef::Env(e)),
            Raw::Ref(RefMap { env: None, file: Some(f) }) => Ok(SecretRef::File(f)),
            Raw::Ref(_) => Err(serde::de::Error::custom(
                "a secret reference takes exactly one of `env` or `file`",
            )),
        }
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
                std::fs::read_to_string(&full)
                    .map_err(|source| SecretError::File {
                        path: full.display().to_string(),
                        source,
                    })?
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
