//! Zendesk's refusals as connector errors that say what failed and what to do next: a failed
//! item of a job, and a job that gave no per-item results.

use super::bulk::{Item, JobError};
use crate::connectors::ConnectorError;

/// A failed job item as a connector error, in Zendesk's words.
pub(super) fn item_error(item: &Item, doing: &str) -> ConnectorError {
    let (code, details) = match item {
        Item::Failed { code, details } => (code.as_str(), details.as_str()),
        _ => ("Failed", ""),
    };
    let vendor = if details.is_empty() {
        code.to_string()
    } else {
        format!("{code}: {details}")
    };
    let hint = match code {
        "RecordNotFound" => "; the user no longer exists in Zendesk: run plan again",
        "PermissionDenied" | "Forbidden" => {
            "; the API token's agent cannot change this user (shared users and the account owner cannot be changed through the API)"
        }
        _ => "; fix the value in the source or the sync's mapping",
    };
    ConnectorError::Rejected {
        status: None,
        vendor: Some(vendor.clone()),
        message: format!("{doing} failed in its Zendesk job: {vendor}{hint}"),
    }
}

/// A job that gave no per-item results, as every item's error: unknown (ambiguous) once the
/// job may have been queued.
pub(super) fn job_error(e: &JobError, endpoint: &str) -> ConnectorError {
    match e {
        JobError::Forbidden(e) | JobError::Ambiguous(e) => e.clone().into(),
        JobError::Refused(e) => e.clone(),
        JobError::Unknown { id, cause } => {
            let (what, check) = match id {
                Some(id) => (
                    format!("the {endpoint} job {id}"),
                    format!("GET /api/v2/job_statuses/{id}"),
                ),
                None => (
                    format!("the {endpoint} job"),
                    "GET /api/v2/job_statuses".to_string(),
                ),
            };
            ConnectorError::Ambiguous {
                what,
                cause: format!(
                    "{cause}; it may yet run: check {check} in Zendesk and run plan again"
                ),
            }
        }
    }
}

/// What a `401` or `403` from Zendesk means for the admin, added to the error (its kind is
/// kept): where the token is managed, and which role the token's agent needs.
pub(super) fn explain(e: ConnectorError) -> ConnectorError {
    match e {
        ConnectorError::Auth { message } => ConnectorError::Auth {
            message: format!(
                "{message}. Zendesk: `email` must be the agent the API token belongs to and `api_token` an active token, with token access turned on (Admin Center > Apps and integrations > Zendesk API)"
            ),
        },
        ConnectorError::Permission { message } => ConnectorError::Permission {
            message: format!(
                "{message}. Zendesk: the token's agent lacks the role for this; creating, changing and deleting users needs an admin (shared users and the account owner cannot be changed through the API)"
            ),
        },
        other => other,
    }
}
