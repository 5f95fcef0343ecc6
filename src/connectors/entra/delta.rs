//! Delta queries between runs (`delta: true`): the first run reads `/users/delta` to its
//! `@odata.deltaLink` and keeps the link and the whole snapshot in the source's cache folder
//! (owner-only, written atomically); later runs read only the changes from the link and merge
//! them (`@removed` → the user is gone; a partial object → its properties replace the cached
//! ones). `plan --full` ignores the link and renews it; an expired link (410 Gone,
//! `syncStateNotFound`, `resyncRequired`) falls back to a full delta round by itself. A read
//! that fails part-way fails the whole read and leaves the cache as it was.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::graph::{self, GraphClient, Need};
use crate::connectors::ConnectorError;
use crate::http::{HttpError, Request};

/// The cache file, inside the source's cache folder.
pub const CACHE_FILE: &str = "entra-delta.json";
const FORMAT: u32 = 1;

/// Where one source keeps its delta link and snapshot.
#[derive(Debug, Clone)]
pub struct DeltaCache {
    dir: PathBuf,
}

/// What is kept between runs.
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    format: u32,
    /// The `$select` the link was made with: another select needs a full round.
    select: Vec<String>,
    delta_link: String,
    /// Users by id, as merged so far.
    users: BTreeMap<String, Value>,
}

/// The largest delta cache read back (a snapshot of about a million users with the default
/// `select`); anything larger is not a cache this build wrote, and a full read replaces it.
const MAX_CACHE_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Reads the cache file: a regular file of at most [`MAX_CACHE_BYTES`] (a FIFO or a device
/// put in its place neither blocks nor fills memory).
fn read_bounded(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use crate::util::BoundedRead;
    crate::util::read_bounded(path, MAX_CACHE_BYTES).map_err(|e| match e {
        BoundedRead::Io(e) => e,
        BoundedRead::NotAFile | BoundedRead::TooLarge => std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a regular file of at most {MAX_CACHE_BYTES} bytes"),
        ),
    })
}

impl DeltaCache {
    pub fn new(dir: PathBuf) -> DeltaCache {
        DeltaCache { dir }
    }

    pub fn file(&self) -> PathBuf {
        self.dir.join(CACHE_FILE)
    }

    /// The stored snapshot, or `None` when there is none or it cannot be used (said why).
    fn load(&self, select: &[String]) -> Option<Snapshot> {
        let path = self.file();
        let text = match read_bounded(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(
                    "cannot read the Entra delta cache {}: {e}; reading every user",
                    path.display()
                );
                return None;
            }
        };
        match serde_json::from_slice::<Snapshot>(&text) {
            Ok(s) if s.format == FORMAT && s.select == select => Some(s),
            Ok(_) => {
                tracing::info!(
                    "the Entra delta cache {} was made with another `select`: reading every user",
                    path.display()
                );
                None
            }
            Err(e) => {
                tracing::warn!(
                    "the Entra delta cache {} is damaged ({e}): reading every user",
                    path.display()
                );
                None
            }
        }
    }

    /// Writes the snapshot atomically (temp file, fsync, rename), owner-only.
    fn save(&self, snap: &Snapshot) -> Result<(), ConnectorError> {
        let io = |what: &str, p: &Path, e: std::io::Error| {
            ConnectorError::Io(format!(
                "cannot {what} the Entra delta cache {}: {e}; check the folder's permissions",
                p.display()
            ))
        };
        crate::util::create_private_dir_all(&self.dir).map_err(|e| io("create", &self.dir, e))?;
        let path = self.file();
        let tmp = self.dir.join(format!("{CACHE_FILE}.tmp"));
        let bytes = serde_json::to_vec(snap)
            .map_err(|e| ConnectorError::Io(format!("cannot encode the delta cache: {e}")))?;
        let mut options = crate::util::private_file_options();
        options.write(true).create(true).truncate(true);
        let mut f = crate::util::open_private(&options, &tmp).map_err(|e| io("write", &tmp, e))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| io("write", &tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(|e| io("replace", &path, e))?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// True when Graph says the delta link can no longer be used.
fn expired(e: &HttpError) -> bool {
    match e {
        HttpError::Status { status, body, .. } => {
            *status == 410
                || graph::graph_code(body).is_some_and(|c| {
                    c.eq_ignore_ascii_case("syncStateNotFound")
                        || c.eq_ignore_ascii_case("resyncRequired")
                        || c.eq_ignore_ascii_case("syncStateInvalid")
                })
        }
        _ => false,
    }
}

/// Applies one delta item to the snapshot: `@removed` deletes, anything else is merged.
fn merge(users: &mut BTreeMap<String, Value>, item: Value) -> Result<(), ConnectorError> {
    let Value::Object(mut obj) = item else {
        return Err(ConnectorError::BadData(
            "GET /users/delta returned an item that is not an object".to_string(),
        ));
    };
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            ConnectorError::BadData(
                "GET /users/delta returned an item without an `id`: not a user change".to_string(),
            )
        })?;
    if obj.contains_key("@removed") {
        users.remove(&id);
        return Ok(());
    }
    obj.retain(|k, _| !k.starts_with('@'));
    match users.get_mut(&id) {
        Some(Value::Object(old)) => {
            for (k, v) in obj {
                old.insert(k, v);
            }
        }
        _ => {
            users.insert(id, Value::Object(obj));
        }
    }
    Ok(())
}

/// Every user, read through the delta link when there is a usable one.
pub(super) async fn read(
    graph: &GraphClient,
    cache: &DeltaCache,
    select: &[String],
    full: bool,
) -> Result<Vec<Value>, ConnectorError> {
    let stored = if full {
        tracing::info!("--full: reading every Entra user and renewing the delta link");
        None
    } else {
        cache.load(select)
    };
    if let Some(mut snap) = stored {
        match graph.pages_raw(Request::get(snap.delta_link.clone())).await {
            Ok((items, link)) => {
                let changes = items.len();
                for item in items {
                    merge(&mut snap.users, item)?;
                }
                snap.delta_link = link.ok_or_else(no_delta_link)?;
                cache.save(&snap)?;
                tracing::info!("Entra delta: {changes} change(s) since the last run");
                return Ok(snap.users.into_values().collect());
            }
            Err(e) if expired(&e) => {
                tracing::info!(
                    "the Entra delta link has expired ({e}): reading every user and starting a new one"
                );
            }
            Err(e) => return Err(graph.error(e, Need::ReadUsers)),
        }
    }
    let first = Request::get("users/delta").query("$select", select.join(","));
    let (items, link) = graph.pages(first, Need::ReadUsers).await?;
    let mut users = BTreeMap::new();
    for item in items {
        merge(&mut users, item)?;
    }
    let snap = Snapshot {
        format: FORMAT,
        select: select.to_vec(),
        delta_link: link.ok_or_else(no_delta_link)?,
        users,
    };
    cache.save(&snap)?;
    Ok(snap.users.into_values().collect())
}

fn no_delta_link() -> ConnectorError {
    ConnectorError::BadData(
        "GET /users/delta: the last page has neither `@odata.nextLink` nor `@odata.deltaLink`, so the read cannot be resumed; set `delta: false` if this persists".to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[cfg(unix)]
    #[test]
    fn a_cache_that_is_not_a_regular_file_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo failed");
        assert!(read_bounded(&fifo).is_err(), "a FIFO would block the read");
        assert!(read_bounded(std::path::Path::new("/dev/zero")).is_err());
        std::fs::write(dir.path().join("ok"), b"{}").unwrap();
        assert_eq!(read_bounded(&dir.path().join("ok")).unwrap(), b"{}");
    }

    #[test]
    fn removals_delete_and_partial_objects_merge() {
        let mut users = BTreeMap::new();
        merge(
            &mut users,
            json!({"id": "1", "displayName": "Ann", "mail": "a@x"}),
        )
        .unwrap();
        merge(&mut users, json!({"id": "2", "displayName": "Bob"})).unwrap();
        merge(
            &mut users,
            json!({"id": "1", "displayName": "Anna", "@odata.type": "x"}),
        )
        .unwrap();
        merge(
            &mut users,
            json!({"id": "2", "@removed": {"reason": "deleted"}}),
        )
        .unwrap();
        assert_eq!(
            users.into_values().collect::<Vec<_>>(),
            [json!({"id": "1", "displayName": "Anna", "mail": "a@x"})]
        );
        assert!(merge(&mut BTreeMap::new(), json!({"displayName": "x"})).is_err());
        assert!(merge(&mut BTreeMap::new(), json!([1])).is_err());
    }

    #[test]
    fn an_expired_link_is_recognised_by_status_or_code() {
        let status = |status, body: &str| HttpError::Status {
            what: "GET /users/delta".into(),
            status,
            message: None,
            body: body.into(),
            attempts: 1,
        };
        assert!(expired(&status(410, "")));
        assert!(expired(&status(
            400,
            r#"{"error":{"code":"resyncRequired"}}"#
        )));
        assert!(!expired(&status(400, r#"{"error":{"code":"BadRequest"}}"#)));
    }
}
