//! Why a connector call failed, as structure: the apply engine journals and audits an
//! ambiguous write as unknown, the HTTP layer's throttle wait survives, and `validate --online`
//! tells an auth problem from a permission problem, without ever reading an error's text.

use std::time::Duration;

/// Why a connector call failed. Every message says what failed and what to do next; the
/// variant says what kind of failure it is.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    /// The connector's configuration is unusable (a bad path, an unreadable secret, a URL).
    #[error("{0}")]
    Config(String),
    /// A local file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// A write may or may not have happened: it was sent and the answer was lost. It is
    /// journalled and audited as unknown, and the account is looked up before any retry.
    #[error(
        "{what}: no usable answer ({cause}); the server may have applied it, so it was not retried blindly"
    )]
    Ambiguous { what: String, cause: String },
    /// The vendor throttled and asked to wait `wait`, longer than headcount waits, or kept
    /// throttling.
    #[error("{message}")]
    Throttled { wait: Duration, message: String },
    /// The credentials were refused (401, a token endpoint's `invalid_client`).
    #[error("{message}")]
    Auth { message: String },
    /// The credentials are valid but lack a permission (403).
    #[error("{message}")]
    Permission { message: String },
    /// The account or resource does not exist (404).
    #[error("{message}")]
    NotFound { message: String },
    /// The vendor (or the target's own rules) refused this operation: `status` is the HTTP
    /// status when there was one, `vendor` the vendor's own words.
    #[error("{message}")]
    Rejected {
        status: Option<u16>,
        vendor: Option<String>,
        message: String,
    },
    /// What came back (an answer, a file) is not what was expected.
    #[error("{0}")]
    BadData(String),
    /// The server could not be reached or kept failing (timeouts, 5xx after retries).
    #[error("{0}")]
    Unavailable(String),
    /// The kind is known to the config but this build has no connector for it yet.
    #[error("the {kind} connector is not available in this build yet")]
    Unsupported { kind: String },
    /// Never started: the apply was interrupted first.
    #[error("not started: the apply was interrupted")]
    Cancelled,
}

impl ConnectorError {
    /// A refusal by the target's own rules, without an HTTP status (files, local checks).
    pub fn rejected(message: impl Into<String>) -> Self {
        ConnectorError::Rejected {
            status: None,
            vendor: None,
            message: message.into(),
        }
    }

    /// True when the write may have happened (the outcome is unknown).
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, ConnectorError::Ambiguous { .. })
    }

    /// A short name of the kind of failure, for the audit log and `--json` events.
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectorError::Config(_) => "config",
            ConnectorError::Io(_) => "io",
            ConnectorError::Ambiguous { .. } => "ambiguous",
            ConnectorError::Throttled { .. } => "throttled",
            ConnectorError::Auth { .. } => "auth",
            ConnectorError::Permission { .. } => "permission",
            ConnectorError::NotFound { .. } => "not_found",
            ConnectorError::Rejected { .. } => "rejected",
            ConnectorError::BadData(_) => "bad_data",
            ConnectorError::Unavailable(_) => "unavailable",
            ConnectorError::Unsupported { .. } => "unsupported",
            ConnectorError::Cancelled => "cancelled",
        }
    }
}
