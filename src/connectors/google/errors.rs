//! Google's answers as errors an admin can act on (SPEC §13): the token endpoint's refusals
//! (domain-wide delegation not granted, a scope missing, an admin policy, a subject that does
//! not exist) and the Directory API's `reason`s (Admin SDK API not enabled, API access disabled,
//! a subject that is not an admin, quotas). Decided by the OAuth `error` and the `reason` code,
//! never by the human text.

use std::time::Duration;

use serde_json::Value;

use super::auth::Account;
use crate::http::{AuthError, HttpError};
use crate::model::ConnectorError;

/// Where domain-wide delegation is granted.
pub const DWD_CONSOLE_PATH: &str =
    "Security → Access and data control → API controls → Manage Domain Wide Delegation";

/// The `reason` of the first entry of `error.errors` in Google's error body
/// `{"error": {"code", "message", "errors": [{"domain", "reason", "message"}]}}`.
pub fn google_reason(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("error")?
        .get("errors")?
        .as_array()?
        .iter()
        .find_map(|e| e.get("reason").and_then(Value::as_str))
        .map(str::to_string)
}

/// The human message of Google's error body, with its reason: `message (reason)`.
pub fn google_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let message = v.get("error")?.get("message")?.as_str()?.trim().to_string();
    if message.is_empty() {
        return None;
    }
    Some(match google_reason(body) {
        Some(r) => format!("{message} ({r})"),
        None => message,
    })
}

/// Throttle answers the HTTP layer waits on and retries: `403 userRateLimitExceeded` /
/// `quotaExceeded` and `429 rateLimitExceeded` (429 is retried anyway). `dailyLimitExceeded`
/// is not one: the daily quota does not come back within a run.
pub fn google_throttled(status: u16, body: &[u8]) -> bool {
    matches!(status, 403 | 429)
        && google_reason(body).is_some_and(|r| {
            matches!(
                r.as_str(),
                "userRateLimitExceeded" | "quotaExceeded" | "rateLimitExceeded"
            )
        })
}

/// The scopes as the Admin console's "OAuth scopes (comma-delimited)" box wants them.
fn console_scopes(account: &Account) -> String {
    account.scopes.join(",")
}

fn client_id_text(account: &Account) -> String {
    match &account.client_id {
        Some(id) => format!("client ID {id} (the key's numeric `client_id`, not its email)"),
        None => format!(
            "the numeric Unique ID of {} (Cloud console → IAM & Admin → Service Accounts → its details page)",
            account.client_email
        ),
    }
}

/// A token refusal explained, or `None` when it is not one of Google's known codes.
fn refused(error: &str, description: Option<&str>, account: &Account) -> Option<ConnectorError> {
    let who = format!(
        "Google refused a token for {} acting as {}",
        account.client_email, account.subject
    );
    let said = description.map(|d| format!(": {d}")).unwrap_or_default();
    let id = client_id_text(account);
    let scopes = console_scopes(account);
    let message = match error {
        "unauthorized_client" => format!(
            "{who} ({error}{said}). Domain-wide delegation is not granted for this client id and \
             scope: in the Admin console (admin.google.com), {DWD_CONSOLE_PATH}, add {id} with \
             the OAuth scopes {scopes}. A new grant can take a few minutes (up to 24 hours) to apply."
        ),
        "access_denied" => format!(
            "{who} ({error}{said}). Some requested scopes are not authorised for domain-wide \
             delegation: in the Admin console, {DWD_CONSOLE_PATH}, edit {id} so that its scopes \
             include {scopes}."
        ),
        "admin_policy_enforced" => format!(
            "{who} ({error}{said}). A Workspace admin policy blocks this app or its scopes for \
             {}: in the Admin console, Security → Access and data control → API controls → \
             Manage Third-Party App Access, mark the app of {id} as Trusted (or allow the \
             scopes {scopes}).",
            account.subject
        ),
        "invalid_grant" => {
            let d = description.unwrap_or_default().to_ascii_lowercase();
            let hint = if d.contains("email") || d.contains("user id") {
                format!(
                    "The subject {} does not exist in Workspace: set `credentials.subject` to the \
                     primary email of an existing admin.",
                    account.subject
                )
            } else if d.contains("signature") {
                "The key's signature was refused: the key was deleted or is not this service \
                 account's. Create a new JSON key (Cloud console → IAM & Admin → Service Accounts \
                 → Keys) and point `credentials.service_account_key` at it."
                    .to_string()
            } else if d.contains("short-lived")
                || d.contains("iat")
                || d.contains("exp")
                || d.contains("time")
            {
                "The JWT's times were refused: this machine's clock is off. Sync it (NTP) and run again."
                    .to_string()
            } else {
                format!(
                    "Check that the subject {} exists, that the key is current and that this \
                     machine's clock is right.",
                    account.subject
                )
            };
            format!("{who} ({error}{said}). {hint}")
        }
        "invalid_client" | "disabled_client" | "deleted_client" | "org_internal"
        | "invalid_scope" => format!(
            "{who} ({error}{said}). Check that the service account {} and its key still exist \
             and are enabled, and that the scopes {scopes} are valid.",
            account.client_email
        ),
        _ => return None,
    };
    Some(match error {
        "access_denied" | "admin_policy_enforced" => ConnectorError::Permission { message },
        _ => ConnectorError::Auth { message },
    })
}

/// The project number Google names in an `accessNotConfigured` message ("... used in project
/// 123456 before or it is disabled ...").
fn project_in(message: &str) -> Option<String> {
    let rest = &message[message.find("project ")? + "project ".len()..];
    let id: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    (!id.is_empty()).then_some(id)
}

/// `e` as the connector reports it: Google's known refusals explained, anything else as the
/// HTTP layer's error.
pub(super) fn explain(e: HttpError, account: &Account) -> ConnectorError {
    match &e {
        HttpError::Auth(AuthError::Refused {
            error, description, ..
        }) => {
            if let Some(c) = refused(error, description.as_deref(), account) {
                return c;
            }
        }
        HttpError::Status {
            what,
            status,
            body,
            message,
            ..
        } => {
            let reason = google_reason(body.as_bytes()).unwrap_or_default();
            let said = message.clone().unwrap_or_default();
            let subject = &account.subject;
            let text = match (*status, reason.as_str()) {
                (403, "accessNotConfigured") => {
                    let project = project_in(&said)
                        .or_else(|| account.project.clone())
                        .unwrap_or_else(|| "of the service account".to_string());
                    Some(format!(
                        "{what}: the Admin SDK API is not enabled in the Google Cloud project \
                         {project} ({said}): enable \"Admin SDK API\" (admin.googleapis.com) in \
                         the Cloud console → APIs & Services → Library for that project, wait a \
                         few minutes, and run again"
                    ))
                }
                (403, "domainCannotUseApis") => Some(format!(
                    "{what}: API access is disabled for this Workspace account ({said}): a super \
                     admin must allow API access in the Admin console (Security → Access and data \
                     control → API controls) and trust the app of {}",
                    client_id_text(account)
                )),
                (403, "forbidden") | (403, "insufficientPermissions") => Some(format!(
                    "{what}: the impersonated admin {subject} cannot read the directory ({said}): \
                     give {subject} an admin role with the Users → Read privilege (and Groups → \
                     Read for `groups:`) in the Admin console → Account → Admin roles, or set \
                     `credentials.subject` to such an admin"
                )),
                (403, "dailyLimitExceeded") => {
                    return ConnectorError::Throttled {
                        wait: Duration::ZERO,
                        message: format!(
                            "{what}: the project's daily Directory API quota is used up ({said}): \
                             it resets at midnight Pacific time; run again then, or ask for a \
                             higher quota in the Cloud console → APIs & Services → Admin SDK API → Quotas"
                        ),
                    };
                }
                (401, _) => Some(format!(
                    "{what}: Google refused the access token ({said}): the token of {} acting as \
                     {subject} was not accepted; check that domain-wide delegation is still \
                     granted ({DWD_CONSOLE_PATH}) and that the app was not removed",
                    account.client_email
                )),
                _ => None,
            };
            if let Some(message) = text {
                return match status {
                    401 => ConnectorError::Auth { message },
                    _ => ConnectorError::Permission { message },
                };
            }
        }
        _ => {}
    }
    ConnectorError::from(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: u16, reason: &str, message: &str) -> Vec<u8> {
        serde_json::json!({"error": {"code": code, "message": message,
            "errors": [{"domain": "global", "reason": reason, "message": message}]}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn throttle_answers_are_told_by_their_reason() {
        assert!(google_throttled(
            403,
            &body(403, "userRateLimitExceeded", "x")
        ));
        assert!(google_throttled(403, &body(403, "quotaExceeded", "x")));
        assert!(google_throttled(429, &body(429, "rateLimitExceeded", "x")));
        assert!(!google_throttled(
            403,
            &body(403, "dailyLimitExceeded", "x")
        ));
        assert!(!google_throttled(403, &body(403, "forbidden", "x")));
        assert!(!google_throttled(403, b"<html>quota</html>"));
    }

    #[test]
    fn the_message_carries_the_reason_and_the_project_is_found() {
        assert_eq!(
            google_message(&body(
                403,
                "forbidden",
                "Not Authorized to access this resource/api"
            ))
            .as_deref(),
            Some("Not Authorized to access this resource/api (forbidden)")
        );
        assert_eq!(google_message(b"not json"), None);
        assert_eq!(
            project_in(
                "Admin SDK API has not been used in project 123456 before or it is disabled"
            )
            .as_deref(),
            Some("123456")
        );
    }
}
