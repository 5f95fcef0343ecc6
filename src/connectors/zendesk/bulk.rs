//! Zendesk's bulk jobs: `POST /api/v2/users/create_many` and the batch form of
//! `PUT /api/v2/users/update_many` queue a background job of at most [`BATCH`] users; its
//! `GET /api/v2/job_statuses/{id}` is polled (with backoff, bounded) until it is `completed`,
//! `failed` or `killed`, and its per-item results are mapped back to the batch's items: create
//! results carry `index`, update results `id`; failures carry `error`/`details`/`status:
//! Failed`.

use std::time::Duration;

use serde_json::Value;

use super::client::details_text;
use crate::connectors::ConnectorError;
use crate::http::{HttpClient, HttpError, Request};

/// Users per job: Zendesk's limit for `create_many` and `update_many`.
pub const BATCH: usize = 100;
/// First wait between two polls of a job; doubled up to [`POLL_CAP`].
const POLL_FIRST: Duration = Duration::from_secs(1);
const POLL_CAP: Duration = Duration::from_secs(10);
/// How long a job is polled before its items are reported as of unknown outcome.
pub const POLL_LIMIT: Duration = Duration::from_secs(15 * 60);

/// How a job ended for one item of its batch.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Item {
    /// Done: the user's id.
    Done(String),
    /// Refused: Zendesk's error code (`DuplicateValue`, `RecordInvalid`, ...) and details.
    Failed { code: String, details: String },
    /// The job ended without a result for this item.
    Missing,
}

impl Item {
    /// True when Zendesk refused a create because the user exists already (the email or
    /// external id is taken): the holder is then looked up, to be named (never taken over).
    pub(super) fn already_exists(&self) -> bool {
        match self {
            Item::Failed { code, details } => {
                let d = details.to_lowercase();
                code.starts_with("Duplicate")
                    || d.contains("already")
                    || d.contains("taken")
                    || d.contains("in use")
            }
            _ => false,
        }
    }
}

/// Why a job gave no per-item results.
#[derive(Debug)]
pub(super) enum JobError {
    /// `403` to the bulk endpoint: bulk user import is not enabled on the account.
    Forbidden(HttpError),
    /// The request was sent and its answer lost: the job may have been queued.
    Ambiguous(HttpError),
    /// The job was accepted but its end is unknown: polled for [`POLL_LIMIT`] and still not
    /// finished, or its status could not be read. It may yet run.
    Unknown { id: Option<String>, cause: String },
    /// Refused before anything was queued.
    Refused(ConnectorError),
}

/// The job's end: its status (`completed`, `failed`, `killed`), message and per-item
/// outcomes, in batch order.
#[derive(Debug)]
pub(super) struct JobEnd {
    pub(super) status: String,
    pub(super) message: Option<String>,
    pub(super) items: Vec<Item>,
}

/// Submits `req` (a bulk request of `ids.len()` items) and waits for its job.
/// `ids` are the users' ids for an update (results are matched by `id`); `None` for a create
/// (results are matched by `index`).
pub(super) async fn run(
    client: &HttpClient,
    req: Request,
    n: usize,
    ids: Option<&[String]>,
) -> Result<JobEnd, JobError> {
    let queued: Value = match client.send_json(req).await {
        Ok(v) => v,
        Err(e) if e.status() == Some(403) => return Err(JobError::Forbidden(e)),
        Err(e) if e.is_ambiguous() => return Err(JobError::Ambiguous(e)),
        Err(e) => return Err(JobError::Refused(e.into())),
    };
    let mut status = queued.get("job_status").cloned().unwrap_or(Value::Null);
    let id = job_id(&status).ok_or_else(|| JobError::Unknown {
        id: None,
        cause: "the bulk request was accepted but its answer has no `job_status.id`".to_string(),
    })?;
    let started = tokio::time::Instant::now();
    let mut wait = POLL_FIRST;
    while !finished(&status) {
        if started.elapsed() + wait > POLL_LIMIT {
            return Err(JobError::Unknown {
                cause: format!(
                    "still `{}` after {} minutes",
                    state(&status),
                    POLL_LIMIT.as_secs() / 60
                ),
                id: Some(id),
            });
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(POLL_CAP);
        let req = Request::get(format!(
            "api/v2/job_statuses/{}",
            crate::http::path_segment(&id)
        ));
        let polled: Value = client.send_json(req).await.map_err(|e| JobError::Unknown {
            id: Some(id.clone()),
            cause: format!("its status could not be read: {e}"),
        })?;
        status = polled.get("job_status").cloned().unwrap_or(Value::Null);
        if status.is_null() {
            return Err(JobError::Unknown {
                cause: format!("GET /api/v2/job_statuses/{id} answered without `job_status`"),
                id: Some(id),
            });
        }
    }
    let results = status
        .get("results")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Ok(JobEnd {
        status: state(&status).to_string(),
        message: status
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string),
        items: map_results(&results, n, ids),
    })
}

fn job_id(status: &Value) -> Option<String> {
    match status.get("id")? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn state(status: &Value) -> &str {
    status
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
}

fn finished(status: &Value) -> bool {
    matches!(state(status), "completed" | "failed" | "killed")
}

/// Per-item outcomes in batch order: a result goes to the item its `index` names, else to
/// the update whose `id` it carries, else (results as many as items) to its position.
pub(super) fn map_results(results: &[Value], n: usize, ids: Option<&[String]>) -> Vec<Item> {
    let mut items = vec![Item::Missing; n];
    for (pos, r) in results.iter().enumerate() {
        let rid = r.get("id").and_then(|v| match v {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        });
        let slot = r
            .get("index")
            .and_then(Value::as_u64)
            .and_then(|i| usize::try_from(i).ok())
            .filter(|i| *i < n)
            .or_else(|| {
                let (ids, rid) = (ids?, rid.as_deref()?);
                ids.iter().position(|id| id == rid)
            })
            .or_else(|| (results.len() == n).then_some(pos));
        let Some(slot) = slot else { continue };
        let failed = r.get("error").is_some_and(|e| !e.is_null())
            || r.get("success") == Some(&Value::Bool(false))
            || r.get("status").and_then(Value::as_str) == Some("Failed");
        items[slot] = if failed {
            Item::Failed {
                code: r
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("Failed")
                    .to_string(),
                details: details_text(r.get("details"))
                    .or_else(|| {
                        r.get("description")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .unwrap_or_default(),
            }
        } else if ids.is_none()
            && (r.get("action").and_then(Value::as_str) == Some("update")
                || r.get("status").and_then(Value::as_str) == Some("Updated"))
        {
            // A create that Zendesk turned into an update of an existing user: that user is
            // not one headcount made, so it is handled as "already exists" (named, never
            // recorded as created).
            Item::Failed {
                code: "DuplicateMerged".to_string(),
                details: format!(
                    "Zendesk merged this create into the existing user {} instead of creating one",
                    rid.as_deref().unwrap_or("(no id)")
                ),
            }
        } else {
            match rid {
                Some(id) => Item::Done(id),
                None => Item::Missing,
            }
        };
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn create_results_go_by_index_and_failures_keep_their_words() {
        let results = [
            json!({"id": 245, "index": 1}),
            json!({"index": 0, "error": "DuplicateValue", "details": "Email: a@x.io is already being used by another user", "status": "Failed"}),
        ];
        let items = map_results(&results, 3, None);
        assert_eq!(items[1], Item::Done("245".into()));
        assert!(items[0].already_exists(), "{:?}", items[0]);
        assert_eq!(items[2], Item::Missing);
    }

    #[test]
    fn update_results_go_by_id() {
        let ids = ["10".to_string(), "11".to_string()];
        let results = [
            json!({"action": "update", "id": 11, "status": "Updated", "success": true}),
            json!({"id": 10, "error": "UserUpdateError", "details": "Role is invalid", "status": "Failed"}),
        ];
        let items = map_results(&results, 2, Some(&ids));
        assert_eq!(items[1], Item::Done("11".into()));
        assert_eq!(
            items[0],
            Item::Failed {
                code: "UserUpdateError".into(),
                details: "Role is invalid".into()
            }
        );
        assert!(!items[0].already_exists());
    }

    #[test]
    fn results_without_a_key_go_by_position_only_when_they_match_the_batch() {
        let results = [json!({"id": 1}), json!({"id": 2})];
        assert_eq!(map_results(&results, 2, None)[1], Item::Done("2".into()));
        // A create Zendesk answered as an update of an existing user is never a create.
        let merged = [
            json!({"id": 9, "index": 0, "action": "update", "status": "Updated", "success": true}),
        ];
        let item = &map_results(&merged, 1, None)[0];
        assert!(item.already_exists(), "{item:?}");
        // The same result for an update job is a plain success.
        let ids = ["9".to_string()];
        assert_eq!(
            map_results(&merged, 1, Some(&ids))[0],
            Item::Done("9".into())
        );
        assert_eq!(map_results(&results, 3, None)[0], Item::Missing);
    }
}
