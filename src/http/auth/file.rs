//! Tokens read from a file that another process rotates (federated CI tokens, Kubernetes
//! projected service-account tokens, Azure workload identity). The file is re-read when its
//! modification time or length changes, at least every [`REREAD_EVERY`] (a rewrite within the
//! same second and of the same length keeps both), and when the API refuses its token.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use super::{AuthError, AuthProvider, Credential, Issued};

/// Longest time a file's content is trusted without reading it again.
pub(crate) const REREAD_EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
struct State {
    /// Modification time and length at the last read.
    stamp: Option<(Option<SystemTime>, u64)>,
    content: Option<SecretString>,
    read_at: Option<Instant>,
    /// Grows when the content changes.
    generation: u64,
}

/// A file whose trimmed content is a token, re-read when it changes.
pub struct TokenFile {
    path: PathBuf,
    reference: String,
    state: tokio::sync::Mutex<State>,
}

impl fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenFile({})", self.path.display())
    }
}

impl TokenFile {
    /// `reference` names the file in errors (``client_assertion_file` (/var/run/token)`); the
    /// path is shown too.
    pub fn new(path: impl Into<PathBuf>, reference: impl Into<String>) -> Self {
        TokenFile {
            path: path.into(),
            reference: reference.into(),
            state: Default::default(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn reference(&self) -> &str {
        &self.reference
    }

    fn error(&self, cause: impl Into<String>) -> AuthError {
        AuthError::File {
            reference: self.reference.clone(),
            path: self.path.clone(),
            cause: cause.into(),
        }
    }

    /// The current token and its generation; `force` reads the file even if it looks unchanged.
    pub async fn read(&self, force: bool) -> Result<(SecretString, u64), AuthError> {
        let mut state = self.state.lock().await;
        let meta = tokio::fs::metadata(&self.path)
            .await
            .map_err(|e| self.error(e.to_string()))?;
        let stamp = (meta.modified().ok(), meta.len());
        let fresh = state.read_at.is_some_and(|t| t.elapsed() < REREAD_EVERY);
        if !force
            && fresh
            && state.stamp == Some(stamp)
            && let Some(c) = &state.content
        {
            return Ok((c.clone(), state.generation));
        }
        // Bounded like a secret file: a regular file of at most 64 KiB (a token is a few KiB),
        // so a wrong path (a device, a FIFO, a log) neither blocks nor fills memory.
        let text = crate::model::secret::read_secret_file(&self.path)
            .map_err(|e| self.error(e.to_string()))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(self.error("the file is empty"));
        }
        let changed = state
            .content
            .as_ref()
            .is_none_or(|c| c.expose_secret() != token);
        if changed {
            state.generation += 1;
            state.content = Some(SecretString::from(token));
        }
        state.stamp = Some(stamp);
        state.read_at = Some(Instant::now());
        let content = state
            .content
            .clone()
            .unwrap_or_else(|| SecretString::from(token));
        Ok((content, state.generation))
    }
}

/// `Authorization: Bearer` with the token in a file (a federated CI token the API accepts as
/// is).
#[derive(Debug)]
pub struct FileBearer {
    file: TokenFile,
}

impl FileBearer {
    pub fn new(file: TokenFile) -> Self {
        FileBearer { file }
    }
}

#[async_trait]
impl AuthProvider for FileBearer {
    async fn credential(&self) -> Result<Issued, AuthError> {
        let (token, generation) = self.file.read(false).await?;
        Ok(Issued {
            credential: Credential::Bearer(token),
            generation,
        })
    }

    /// Reads the file again: a retry helps only when the token in it has changed.
    async fn rejected(&self, generation: u64) -> bool {
        match self.file.read(true).await {
            Ok((_, now)) => now > generation,
            Err(_) => false,
        }
    }
}
