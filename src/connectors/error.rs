//! HTTP failures as connector errors: the status decides the kind, never the text.

use crate::http::HttpError;
use crate::model::ConnectorError;

impl From<HttpError> for ConnectorError {
    fn from(e: HttpError) -> Self {
        let message = e.to_string();
        match e {
            HttpError::Config(m) => ConnectorError::Config(m),
            HttpError::Status {
                status,
                message: vendor,
                ..
            } => match status {
                401 => ConnectorError::Auth { message },
                403 => ConnectorError::Permission { message },
                404 => ConnectorError::NotFound { message },
                429 => ConnectorError::Throttled {
                    wait: std::time::Duration::ZERO,
                    message,
                },
                400..=499 => ConnectorError::Rejected {
                    status: Some(status),
                    vendor,
                    message,
                },
                _ => ConnectorError::Unavailable(message),
            },
            HttpError::Ambiguous { what, cause } => ConnectorError::Ambiguous { what, cause },
            HttpError::Transport { .. } => ConnectorError::Unavailable(message),
            HttpError::Throttled { wait_secs, .. } => ConnectorError::Throttled {
                wait: std::time::Duration::from_secs(wait_secs),
                message,
            },
            HttpError::Decode { .. } | HttpError::Inconsistent { .. } => {
                ConnectorError::BadData(message)
            }
            // Credentials that cannot be had (a token endpoint's refusal, an unreadable key).
            HttpError::Auth(_) => ConnectorError::Auth { message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> ConnectorError {
        HttpError::Status {
            what: "GET /Users".to_string(),
            status,
            message: Some("vendor says no".to_string()),
            body: String::new(),
            attempts: 1,
        }
        .into()
    }

    #[test]
    fn the_status_decides_the_kind() {
        assert!(matches!(status(401), ConnectorError::Auth { .. }));
        assert!(matches!(status(403), ConnectorError::Permission { .. }));
        assert!(matches!(status(404), ConnectorError::NotFound { .. }));
        assert!(matches!(status(429), ConnectorError::Throttled { .. }));
        assert!(matches!(status(503), ConnectorError::Unavailable(_)));
        match status(422) {
            ConnectorError::Rejected {
                status,
                vendor,
                message,
            } => {
                assert_eq!(status, Some(422));
                assert_eq!(vendor.as_deref(), Some("vendor says no"));
                assert!(message.contains("GET /Users"), "{message}");
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
    }

    #[test]
    fn ambiguous_and_throttled_keep_their_structure() {
        let e: ConnectorError = HttpError::Ambiguous {
            what: "POST /Users".to_string(),
            cause: "timed out".to_string(),
        }
        .into();
        assert!(e.is_ambiguous());
        let e: ConnectorError = HttpError::Throttled {
            what: "GET /Users".to_string(),
            wait_secs: 600,
            why: "Retry-After".to_string(),
        }
        .into();
        assert!(
            matches!(e, ConnectorError::Throttled { wait, .. } if wait == std::time::Duration::from_secs(600))
        );
    }
}
