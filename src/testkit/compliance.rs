//! The connector compliance suite: checks every source and target must pass, whatever the
//! vendor. A connector joins by implementing [`TargetHarness`] and/or [`SourceHarness`] in its
//! test and invoking [`crate::target_compliance_suite!`] / [`crate::source_compliance_suite!`]
//! once; each check becomes one `#[tokio::test]` named after it.
//!
//! A check that cannot apply to a kind (paging for a file, Retry-After for files) is declared
//! by the harness returning [`NotApplicable`] with a reason, printed as `N/A: ...` on stderr:
//! never silently skipped.
//!
//! Checks depend on behaviour (ok or error, message text, the emulator's request log), and on
//! [`is_cancelled`], the one place that knows a `ConnectorError` variant.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use serde_json::Value;

use super::RequestLog;
use crate::connectors::{
    ApplyOptions, ConnectorError, LiveAccount, OpResult, Source, SourceRecord, Target, TargetOp,
};

/// True when an operation was reported as never started. The only variant the suite matches:
/// adapt here when `ConnectorError` changes shape.
pub fn is_cancelled(e: &ConnectorError) -> bool {
    matches!(e, ConnectorError::Cancelled)
}

/// Why a check does not apply to a connector kind (printed, never silent).
#[derive(Debug, Clone, Copy)]
pub struct NotApplicable(pub &'static str);

/// How a check is declared N/A: one visible line on stderr.
fn not_applicable(kind: &str, check: &str, why: NotApplicable) {
    super::say(&format!(
        "N/A: {kind} compliance check `{check}`: {}",
        why.0
    ));
}

/// How the backing pages a list that [`TargetHarness::seed`] / [`SourceHarness::seed`] made
/// large enough to span pages.
#[derive(Debug, Clone)]
pub struct Paging {
    /// Accounts (records) to seed: more than one page.
    pub seed: usize,
    /// The exact `METHOD /path?query` lines of the list, in order ([`super::Logged::line`]).
    pub requests: Vec<String>,
}

/// A fault the harness makes its backing produce, on the list/read path unless said otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inject {
    /// The next create is applied and its answer lost (timeout or dropped connection).
    LostCreateAnswer,
    /// The next list/read request gets `429` with `Retry-After: secs`.
    Throttle { retry_after_secs: u64 },
    /// Every list/read request gets a proxy's HTML error page (`502`, `text/html`).
    HtmlErrorPage,
    /// Every list/read request gets `200` with JSON of the wrong shape.
    UnexpectedJson,
    /// Every request is refused as unauthorised (a revoked credential).
    Unauthorized,
    /// Every list/read answer announces far more items than it pages through (SCIM
    /// `totalResults: 1000000000000`): a list that contradicts itself.
    ShortList,
}

/// What the suite needs from a target's test: a fresh target on an empty backing (emulator or
/// temp dir), direct access to that backing, and faults.
#[async_trait]
pub trait TargetHarness: Send + Sync + Sized {
    /// The connector kind, for messages (`scim`, `csv_export`).
    const KIND: &'static str;
    /// A target over a fresh, empty backing.
    async fn start() -> Self;
    fn target(&self) -> &dyn Target;
    /// Puts accounts `0..n` into the backing directly (not through the target).
    async fn seed(&self, n: usize);
    /// The operation that creates account `n` (active, no notification).
    fn create_op(&self, n: usize) -> TargetOp;
    /// New values for some fields of account `n`, for an update.
    fn update_fields(&self, n: usize) -> BTreeMap<String, Value>;
    /// Fields a create writes but `list` never reports (write-only, e.g. a password).
    fn write_only(&self, _field: &str) -> bool {
        false
    }
    /// Whether the kind deletes accounts; a kind that cannot (Request Tracker only disables)
    /// says why, and the delete checks are N/A for it.
    fn deletes(&self) -> Result<(), NotApplicable> {
        Ok(())
    }
    /// How many writes reached the backing so far (write requests, export sets).
    async fn writes(&self) -> usize;
    /// The emulator's request log; `None` for file targets.
    fn log(&self) -> Option<&RequestLog>;
    /// How a large list is paged, with small pages set up on the backing.
    fn paging(&self) -> Result<Paging, NotApplicable>;
    /// Makes the backing produce `fault`.
    fn inject(&self, fault: Inject) -> Result<(), NotApplicable>;
    /// A distinctive secret the target was given (credential, or a sensitive field value its
    /// operations carry) that must never appear in an error, a log line or an audit entry.
    fn secret(&self) -> Result<String, NotApplicable>;
}

/// What the suite needs from a source's test.
#[async_trait]
pub trait SourceHarness: Send + Sync + Sized {
    const KIND: &'static str;
    async fn start() -> Self;
    fn source(&self) -> &dyn Source;
    /// Puts records `0..n` into the backing.
    async fn seed(&self, n: usize);
    fn log(&self) -> Option<&RequestLog>;
    fn paging(&self) -> Result<Paging, NotApplicable>;
    fn inject(&self, fault: Inject) -> Result<(), NotApplicable>;
    fn secret(&self) -> Result<String, NotApplicable>;
}

/// Applies `ops`, checking that each is reported exactly once; outcomes in op order.
pub async fn apply_all(t: &dyn Target, ops: &[TargetOp], opts: &ApplyOptions) -> Vec<OpResult> {
    let seen: Mutex<Vec<Vec<OpResult>>> = Mutex::new(vec![Vec::new(); ops.len()]);
    t.apply(ops, opts, &|i, r| {
        if let Ok(mut s) = seen.lock()
            && let Some(slot) = s.get_mut(i)
        {
            slot.push(r);
        }
    })
    .await
    .unwrap_or_else(|e| panic!("apply failed as a whole: {e}"));
    seen.into_inner()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            assert_eq!(r.len(), 1, "op {i} was reported {} times: {r:?}", r.len());
            r.remove(0)
        })
        .collect()
}

async fn apply_ok(t: &dyn Target, ops: &[TargetOp]) -> Vec<String> {
    apply_all(t, ops, &ApplyOptions::default())
        .await
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|e| panic!("op {i} failed: {e}\n{:?}", ops[i])))
        .collect()
}

async fn list_ok(t: &dyn Target) -> Vec<LiveAccount> {
    t.list()
        .await
        .unwrap_or_else(|e| panic!("list failed: {e}"))
}

fn find<'a>(accounts: &'a [LiveAccount], id: &str) -> &'a LiveAccount {
    accounts
        .iter()
        .find(|a| a.id == id)
        .unwrap_or_else(|| panic!("account {id} is not listed: {accounts:?}"))
}

/// Every field of `fields` (those `list` reports) has that value in `acc`.
fn assert_fields<H: TargetHarness>(h: &H, acc: &LiveAccount, fields: &BTreeMap<String, Value>) {
    for (k, v) in fields {
        if v.is_null() || h.write_only(k) {
            continue;
        }
        assert_eq!(
            acc.fields.get(k),
            Some(v),
            "{}: field {k} of account {} after apply: {acc:?}",
            H::KIND,
            acc.id
        );
    }
}

/// The GET requests of a list, for paging assertions.
fn list_lines(log: &RequestLog) -> Vec<String> {
    log.method("GET").iter().map(super::Logged::line).collect()
}

/// Runs `fut`, turning a panic into a failure that says a panic is never an answer.
async fn no_panic<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(v) => v,
        Err(_) => panic!("{what} panicked: a bad answer must be an error, never a panic"),
    }
}

/// Every page is read: more than a page of accounts, all listed, by exactly the paging requests.
pub async fn target_every_page_is_read<H: TargetHarness>() {
    let h = H::start().await;
    let paging = match h.paging() {
        Ok(p) => p,
        Err(na) => {
            not_applicable(H::KIND, "every page is read (paging requests)", na);
            Paging {
                seed: 5,
                requests: Vec::new(),
            }
        }
    };
    h.seed(paging.seed).await;
    let accounts = list_ok(h.target()).await;
    assert_eq!(accounts.len(), paging.seed, "{}: accounts listed", H::KIND);
    let ids: std::collections::BTreeSet<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids.len(), paging.seed, "{}: distinct ids", H::KIND);
    // N/A paging (no requests to expect) still checks that every account was listed.
    if let Some(log) = h.log().filter(|_| !paging.requests.is_empty()) {
        assert_eq!(
            list_lines(log),
            paging.requests,
            "{}: paging requests",
            H::KIND
        );
    }
}

/// `list` reflects what `apply` did: create, update, deactivate, reactivate, delete.
pub async fn target_list_reflects_apply<H: TargetHarness>() {
    let h = H::start().await;
    let t = h.target();
    let (c0, c1) = (h.create_op(0), h.create_op(1));
    let ids = apply_ok(t, &[c0.clone(), c1.clone()]).await;
    let listed = list_ok(t).await;
    assert_eq!(
        listed.len(),
        2,
        "{}: after two creates: {listed:?}",
        H::KIND
    );
    for (id, op) in ids.iter().zip([&c0, &c1]) {
        let acc = find(&listed, id);
        assert!(acc.active, "{}: created active: {acc:?}", H::KIND);
        if let TargetOp::Create { fields, .. } = op {
            assert_fields(&h, acc, fields);
        }
    }

    let before = find(&listed, &ids[0]).clone();
    let update = h.update_fields(0);
    let expected = update
        .keys()
        .map(|k| {
            (
                k.clone(),
                before.fields.get(k).cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    let modify = |fields, expected, active, removal| TargetOp::Modify {
        id: ids[0].clone(),
        fields,
        expected,
        active,
        removal,
    };
    apply_ok(t, &[modify(update.clone(), expected, None, false)]).await;
    assert_fields(&h, find(&list_ok(t).await, &ids[0]), &update);

    apply_ok(
        t,
        &[modify(BTreeMap::new(), BTreeMap::new(), Some(false), true)],
    )
    .await;
    let acc = find(&list_ok(t).await, &ids[0]).clone();
    assert!(!acc.active, "{}: deactivated: {acc:?}", H::KIND);
    assert_fields(&h, &acc, &update);

    apply_ok(
        t,
        &[modify(BTreeMap::new(), BTreeMap::new(), Some(true), false)],
    )
    .await;
    assert!(
        find(&list_ok(t).await, &ids[0]).active,
        "{}: reactivated",
        H::KIND
    );

    if let Err(na) = h.deletes() {
        return not_applicable(H::KIND, "list reflects a delete", na);
    }
    apply_ok(t, &[TargetOp::Delete { id: ids[1].clone() }]).await;
    let listed = list_ok(t).await;
    assert_eq!(listed.len(), 1, "{}: after the delete: {listed:?}", H::KIND);
    assert_eq!(listed[0].id, ids[0]);
}

/// A create whose answer was lost never makes a duplicate, and neither does creating again.
pub async fn target_ambiguous_create_makes_no_duplicate<H: TargetHarness>() {
    let h = H::start().await;
    if let Err(na) = h.inject(Inject::LostCreateAnswer) {
        return not_applicable(H::KIND, "an ambiguous create never makes a duplicate", na);
    }
    let t = h.target();
    let op = h.create_op(0);
    let first = apply_all(t, std::slice::from_ref(&op), &ApplyOptions::default()).await;
    let listed = list_ok(t).await;
    assert_eq!(
        listed.len(),
        1,
        "{}: one account after a lost answer: {listed:?}",
        H::KIND
    );
    if let Ok(id) = &first[0] {
        assert_eq!(&listed[0].id, id, "{}: the id reported", H::KIND);
    }
    // The next run's create of the same person (its answer came back this time).
    let again = apply_all(t, std::slice::from_ref(&op), &ApplyOptions::default()).await;
    let listed = list_ok(t).await;
    assert_eq!(
        listed.len(),
        1,
        "{}: after creating again ({again:?}): {listed:?}",
        H::KIND
    );
}

/// Once cancelled, no operation starts: each is reported cancelled and nothing is written.
pub async fn target_cancelled_ops_never_start<H: TargetHarness>() {
    let h = H::start().await;
    h.seed(1).await;
    let t = h.target();
    let id = list_ok(t).await.remove(0).id;
    let writes = h.writes().await;
    let ops = [
        h.create_op(5),
        TargetOp::Modify {
            id: id.clone(),
            fields: h.update_fields(0),
            expected: BTreeMap::new(),
            active: Some(false),
            removal: false,
        },
        TargetOp::Delete { id },
    ];
    let opts = ApplyOptions::default();
    opts.cancel.store(true, std::sync::atomic::Ordering::SeqCst);
    for (i, r) in apply_all(t, &ops, &opts).await.iter().enumerate() {
        assert!(
            r.as_ref().is_err_and(is_cancelled),
            "{}: op {i} with the cancel flag set: {r:?}",
            H::KIND
        );
    }
    assert_eq!(h.writes().await, writes, "{}: writes after cancel", H::KIND);
    if let Some(log) = h.log() {
        assert!(log.writes().is_empty(), "{}: {:?}", H::KIND, log.lines());
    }
}

/// Deleting an account that is already gone succeeds (a retried or concurrent delete).
pub async fn target_delete_of_a_gone_account_succeeds<H: TargetHarness>() {
    let h = H::start().await;
    if let Err(na) = h.deletes() {
        return not_applicable(H::KIND, "deleting a gone account succeeds", na);
    }
    let t = h.target();
    let id = apply_ok(t, &[h.create_op(0)]).await.remove(0);
    let delete = TargetOp::Delete { id };
    apply_ok(t, std::slice::from_ref(&delete)).await;
    apply_ok(t, std::slice::from_ref(&delete)).await;
    assert!(list_ok(t).await.is_empty(), "{}: deleted", H::KIND);
}

/// Asserts that no request was sent again before the Retry-After of the 429 it got.
fn assert_retry_after_honoured(kind: &str, log: &RequestLog, secs: u64) {
    let all = log.all();
    let throttled: Vec<_> = all.iter().filter(|l| l.fault == Some("429")).collect();
    assert!(
        !throttled.is_empty(),
        "{kind}: no 429 was served: {:?}",
        log.lines()
    );
    for t in throttled {
        let next = all
            .iter()
            .find(|l| l.seq > t.seq && l.line() == t.line())
            .unwrap_or_else(|| panic!("{kind}: {} was never sent again", t.line()));
        let waited = next.at - t.at;
        assert!(
            waited >= Duration::from_secs(secs),
            "{kind}: {} was re-sent after {waited:?}, before its Retry-After of {secs}s",
            t.line()
        );
    }
}

/// No request is re-sent before the Retry-After of its 429 has passed.
pub async fn target_retry_after_is_honoured<H: TargetHarness>() {
    let h = H::start().await;
    if let Err(na) = h.inject(Inject::Throttle {
        retry_after_secs: 1,
    }) {
        return not_applicable(H::KIND, "no request is re-sent before Retry-After", na);
    }
    h.seed(2).await;
    assert_eq!(list_ok(h.target()).await.len(), 2);
    if let Some(log) = h.log() {
        assert_retry_after_honoured(H::KIND, log, 1);
    }
}

/// The text a bad answer's error must hold: the faulted request, `METHOD /path`.
fn faulted_request(kind: &str, log: Option<&RequestLog>) -> Option<String> {
    let log = log?;
    let hit = log.all().into_iter().find(|l| l.fault.is_some());
    let hit = hit.unwrap_or_else(|| panic!("{kind}: no fault was served: {:?}", log.lines()));
    Some(format!("{} {}", hit.method, hit.path))
}

fn assert_clear_error(kind: &str, what: &str, msg: &str, request: Option<&str>) {
    if let Some(req) = request {
        assert!(
            msg.contains(req),
            "{kind}: {what}: the error does not name {req}: {msg}"
        );
    }
    assert!(
        !msg.to_ascii_lowercase().contains("<html"),
        "{kind}: {what}: the error dumps the HTML page: {msg}"
    );
    assert!(!msg.trim().is_empty(), "{kind}: {what}: empty error");
}

/// An HTML error page or unexpected JSON is a clear error naming the request, never a panic.
/// The connector names the request; the engine prefixes the target's name ("target `x` could
/// not be listed: ..."), so the check asks the connector for the request only.
pub async fn target_bad_answers_are_clear_errors<H: TargetHarness>() {
    for (fault, what) in [
        (Inject::HtmlErrorPage, "an HTML error page"),
        (Inject::UnexpectedJson, "unexpected JSON"),
    ] {
        let h = H::start().await;
        if let Err(na) = h.inject(fault) {
            not_applicable(H::KIND, what, na);
            continue;
        }
        h.seed(1).await;
        let result = no_panic("list", h.target().list()).await;
        let err = match result {
            Ok(accounts) => panic!("{}: {what} was taken as {accounts:?}", H::KIND),
            Err(e) => e.to_string(),
        };
        let request = faulted_request(H::KIND, h.log());
        assert_clear_error(H::KIND, what, &err, request.as_deref());
    }
}

/// A list that ends before its own announced total is an error, never a short list: read as
/// complete, it would plan creates for every account it did not show.
pub async fn target_list_that_contradicts_itself_is_an_error<H: TargetHarness>() {
    let h = H::start().await;
    if let Err(na) = h.inject(Inject::ShortList) {
        return not_applicable(H::KIND, "a list that contradicts itself", na);
    }
    h.seed(2).await;
    match no_panic("list", h.target().list()).await {
        Ok(accounts) => panic!(
            "{}: a list short of its own total was taken as {} account(s)",
            H::KIND,
            accounts.len()
        ),
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains("contradicts itself"), "{}: {text}", H::KIND);
        }
    }
}

/// The source side of [`target_list_that_contradicts_itself_is_an_error`].
pub async fn source_list_that_contradicts_itself_is_an_error<H: SourceHarness>() {
    let h = H::start().await;
    if let Err(na) = h.inject(Inject::ShortList) {
        return not_applicable(H::KIND, "a list that contradicts itself", na);
    }
    h.seed(2).await;
    match no_panic("read", h.source().read()).await {
        Ok(records) => panic!(
            "{}: a list short of its own total was taken as {} record(s)",
            H::KIND,
            records.len()
        ),
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains("contradicts itself"), "{}: {text}", H::KIND);
        }
    }
}

/// Every message a run can produce: errors, captured logs (trace level) and audit lines.
struct Exposure {
    texts: Vec<String>,
}

impl Exposure {
    fn results(&mut self, results: &[OpResult]) {
        for r in results {
            match r {
                Ok(id) => self.texts.push(id.clone()),
                Err(e) => self.texts.push(format!("{e} {e:?}")),
            }
        }
        self.audit(results);
    }

    /// The audit lines these outcomes would make: the connector contributes the target id
    /// and the error text.
    fn audit(&mut self, results: &[OpResult]) {
        let Ok(dir) = tempfile::tempdir() else { return };
        let path = dir.path().join("audit.jsonl");
        let Ok(log) = crate::audit::AuditLog::open(&path) else {
            return;
        };
        for r in results {
            let event = crate::apply::OpEvent {
                sync: "compliance".into(),
                target: "t".into(),
                action: crate::plan::Action::Create,
                target_id: r.as_ref().ok().cloned(),
                identity: BTreeMap::new(),
                fields: BTreeMap::new(),
                outcome: match r {
                    Ok(_) => crate::apply::Outcome::Ok,
                    Err(e) => crate::apply::Outcome::of(e),
                },
                error: r.as_ref().err().map(ToString::to_string),
                not_started: false,
            };
            let _ = log.append(&event, None);
        }
        self.texts
            .push(std::fs::read_to_string(&path).unwrap_or_default());
    }

    fn assert_clean(&self, kind: &str, secret: &str) {
        for t in &self.texts {
            assert!(!t.contains(secret), "{kind}: the secret leaked into: {t}");
        }
    }
}

/// No error, log line (trace level, more than `-vv`) or audit entry holds the secret.
pub async fn target_secret_never_leaks<H: TargetHarness>() {
    let h = H::start().await;
    let secret = match h.secret() {
        Ok(s) => s,
        Err(na) => return not_applicable(H::KIND, "the secret never leaks", na),
    };
    let (logs, guard) = super::capture::logs();
    let mut seen = Exposure { texts: Vec::new() };
    let t = h.target();
    let ids = apply_ok(t, &[h.create_op(0), h.create_op(1)]).await;
    seen.results(&ids.iter().cloned().map(Ok).collect::<Vec<_>>());
    let listed = list_ok(t).await;
    seen.texts.push(format!("{listed:?}"));
    let ops = [
        TargetOp::Modify {
            id: ids[0].clone(),
            fields: h.update_fields(0),
            expected: BTreeMap::new(),
            active: None,
            removal: false,
        },
        TargetOp::Modify {
            id: "no-such-account".into(),
            fields: h.update_fields(3),
            expected: BTreeMap::new(),
            active: None,
            removal: false,
        },
        TargetOp::Delete { id: ids[1].clone() },
    ];
    seen.results(&apply_all(t, &ops, &ApplyOptions::default()).await);
    for fault in [Inject::HtmlErrorPage, Inject::Unauthorized] {
        if h.inject(fault).is_ok() {
            if let Err(e) = t.list().await {
                seen.texts.push(format!("{e} {e:?}"));
            }
            seen.results(&apply_all(t, &[h.create_op(2)], &ApplyOptions::default()).await);
        }
    }
    drop(guard);
    seen.texts.push(logs.text());
    seen.assert_clean(H::KIND, &secret);
}

/// Every record is read, by exactly the paging requests.
pub async fn source_every_page_is_read<H: SourceHarness>() {
    let h = H::start().await;
    let paging = match h.paging() {
        Ok(p) => p,
        Err(na) => {
            not_applicable(H::KIND, "every page is read (paging requests)", na);
            Paging {
                seed: 5,
                requests: Vec::new(),
            }
        }
    };
    h.seed(paging.seed).await;
    let records = read_ok(h.source()).await;
    assert_eq!(records.len(), paging.seed, "{}: records read", H::KIND);
    if let Some(log) = h.log() {
        assert_eq!(
            list_lines(log),
            paging.requests,
            "{}: paging requests",
            H::KIND
        );
    }
}

async fn read_ok(s: &dyn Source) -> Vec<SourceRecord> {
    s.read()
        .await
        .unwrap_or_else(|e| panic!("read failed: {e}"))
}

/// No request is re-sent before the Retry-After of its 429 has passed.
pub async fn source_retry_after_is_honoured<H: SourceHarness>() {
    let h = H::start().await;
    if let Err(na) = h.inject(Inject::Throttle {
        retry_after_secs: 1,
    }) {
        return not_applicable(H::KIND, "no request is re-sent before Retry-After", na);
    }
    h.seed(2).await;
    assert_eq!(read_ok(h.source()).await.len(), 2);
    if let Some(log) = h.log() {
        assert_retry_after_honoured(H::KIND, log, 1);
    }
}

/// An HTML error page or unexpected JSON is a clear error naming the request, never a panic.
pub async fn source_bad_answers_are_clear_errors<H: SourceHarness>() {
    for (fault, what) in [
        (Inject::HtmlErrorPage, "an HTML error page"),
        (Inject::UnexpectedJson, "unexpected JSON"),
    ] {
        let h = H::start().await;
        if let Err(na) = h.inject(fault) {
            not_applicable(H::KIND, what, na);
            continue;
        }
        h.seed(1).await;
        let err = match no_panic("read", h.source().read()).await {
            Ok(records) => panic!("{}: {what} was taken as {records:?}", H::KIND),
            Err(e) => e.to_string(),
        };
        let request = faulted_request(H::KIND, h.log());
        assert_clear_error(H::KIND, what, &err, request.as_deref());
    }
}

/// No error or log line holds the secret.
pub async fn source_secret_never_leaks<H: SourceHarness>() {
    let h = H::start().await;
    let secret = match h.secret() {
        Ok(s) => s,
        Err(na) => return not_applicable(H::KIND, "the secret never leaks", na),
    };
    let (logs, guard) = super::capture::logs();
    let mut texts = Vec::new();
    h.seed(2).await;
    texts.push(format!("{:?}", read_ok(h.source()).await));
    for fault in [Inject::HtmlErrorPage, Inject::Unauthorized] {
        if h.inject(fault).is_ok()
            && let Err(e) = h.source().read().await
        {
            texts.push(format!("{e} {e:?}"));
        }
    }
    drop(guard);
    texts.push(logs.text());
    for t in &texts {
        assert!(
            !t.contains(&secret),
            "{}: the secret leaked into: {t}",
            H::KIND
        );
    }
}

/// Every target check as one `#[tokio::test]` each, in a module `target_compliance`:
/// `headcount::target_compliance_suite!(MyHarness);` (the calling crate needs tokio with
/// `test-util` among its dev-dependencies: the Retry-After check runs on a paused clock).
#[macro_export]
macro_rules! target_compliance_suite {
    ($harness:ty) => {
        mod target_compliance {
            #[allow(unused_imports)]
            use super::*;
            use $crate::testkit::compliance as c;

            #[tokio::test]
            async fn every_page_is_read() {
                c::target_every_page_is_read::<$harness>().await
            }
            #[tokio::test]
            async fn list_reflects_apply() {
                c::target_list_reflects_apply::<$harness>().await
            }
            #[tokio::test]
            async fn ambiguous_create_makes_no_duplicate() {
                c::target_ambiguous_create_makes_no_duplicate::<$harness>().await
            }
            #[tokio::test]
            async fn cancelled_ops_never_start() {
                c::target_cancelled_ops_never_start::<$harness>().await
            }
            #[tokio::test]
            async fn delete_of_a_gone_account_succeeds() {
                c::target_delete_of_a_gone_account_succeeds::<$harness>().await
            }
            // Paused clock: the Retry-After passes in virtual time.
            #[tokio::test(start_paused = true)]
            async fn retry_after_is_honoured() {
                c::target_retry_after_is_honoured::<$harness>().await
            }
            #[tokio::test]
            async fn bad_answers_are_clear_errors() {
                c::target_bad_answers_are_clear_errors::<$harness>().await
            }
            #[tokio::test]
            async fn secret_never_leaks() {
                c::target_secret_never_leaks::<$harness>().await
            }
            #[tokio::test]
            async fn list_that_contradicts_itself_is_an_error() {
                c::target_list_that_contradicts_itself_is_an_error::<$harness>().await
            }
        }
    };
}

/// Every source check as one `#[tokio::test]` each, in a module `source_compliance`:
/// `headcount::source_compliance_suite!(MyHarness);` (the calling crate needs tokio with
/// `test-util` among its dev-dependencies: the Retry-After check runs on a paused clock).
/// A harness over a real server that may be missing adds a guard evaluated first in each test:
/// `source_compliance_suite!(MyHarness, if server_is_there())`; the guard itself reports a
/// missing server (a `SKIPPED:` line, a failure under CI), never silently.
#[macro_export]
macro_rules! source_compliance_suite {
    ($harness:ty) => {
        $crate::source_compliance_suite!($harness, if true);
    };
    ($harness:ty, if $ready:expr) => {
        mod source_compliance {
            #[allow(unused_imports)]
            use super::*;
            use $crate::testkit::compliance as c;

            #[tokio::test]
            async fn every_page_is_read() {
                if $ready {
                    c::source_every_page_is_read::<$harness>().await
                }
            }
            // Paused clock: the Retry-After passes in virtual time.
            #[tokio::test(start_paused = true)]
            async fn retry_after_is_honoured() {
                if $ready {
                    c::source_retry_after_is_honoured::<$harness>().await
                }
            }
            #[tokio::test]
            async fn bad_answers_are_clear_errors() {
                if $ready {
                    c::source_bad_answers_are_clear_errors::<$harness>().await
                }
            }
            #[tokio::test]
            async fn secret_never_leaks() {
                if $ready {
                    c::source_secret_never_leaks::<$harness>().await
                }
            }
            #[tokio::test]
            async fn list_that_contradicts_itself_is_an_error() {
                if $ready {
                    c::source_list_that_contradicts_itself_is_an_error::<$harness>().await
                }
            }
        }
    };
}
