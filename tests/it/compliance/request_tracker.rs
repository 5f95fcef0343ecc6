//! `request_tracker` target against the real RT 5 (`scripts/start-rt.sh`), behind the
//! testkit's fault layer (request log, scripted faults). RT has no tenants: each check gets a
//! fresh user-name prefix and sees only its own users ([`Scoped`]).

use std::collections::BTreeMap;

use async_trait::async_trait;
use headcount::connectors::request_tracker::RequestTrackerTarget;
use headcount::connectors::{Target, TargetOp};
use headcount::testkit::compliance::{Inject, NotApplicable, Paging, TargetHarness};
use headcount::testkit::{Fault, Match, RequestLog, Served};
use serde_json::{Value, json};

use crate::support::rt_server::{self, Admin, Scoped, user_body};

pub struct RtHarness {
    served: Served,
    target: Scoped,
    admin: Admin,
    token: String,
    _one: tokio::sync::OwnedMutexGuard<()>,
}

/// `TargetHarness::start` cannot skip: without RT the compliance checks fail, in CI or not
/// (`server()` has printed why).
fn unavailable() -> ! {
    panic!("Request Tracker 5 is not available: run ./scripts/start-rt.sh (as root it installs it)")
}

#[async_trait]
impl TargetHarness for RtHarness {
    const KIND: &'static str = "request_tracker";

    async fn start() -> Self {
        let Some(server) = rt_server::server() else {
            unavailable()
        };
        // One check at a time: they share RT's two workers and its user table.
        let one = rt_server::exclusive().lock_owned().await;
        let served = rt_server::proxy(server).await;
        let inner = RequestTrackerTarget::new(rt_server::client(&served.origin, &server.token));
        RtHarness {
            target: Scoped {
                inner,
                prefix: rt_server::prefix("c"),
            },
            admin: Admin::new(server),
            token: server.token.clone(),
            served,
            _one: one,
        }
    }

    fn target(&self) -> &dyn Target {
        &self.target
    }

    async fn seed(&self, n: usize) {
        for i in 0..n {
            self.admin.create(user_body(&self.target.prefix, i)).await;
        }
    }

    fn create_op(&self, n: usize) -> TargetOp {
        let p = &self.target.prefix;
        TargetOp::Create {
            fields: BTreeMap::from([
                ("Name".to_string(), json!(format!("{p}{n}"))),
                (
                    "EmailAddress".to_string(),
                    json!(format!("{p}{n}@example.com")),
                ),
                ("RealName".to_string(), json!(format!("User {n}"))),
                ("Privileged".to_string(), json!(false)),
            ]),
            active: true,
            notify: false,
        }
    }

    fn update_fields(&self, n: usize) -> BTreeMap<String, Value> {
        BTreeMap::from([
            ("RealName".to_string(), json!(format!("Renamed {n}"))),
            ("Organization".to_string(), json!("Support")),
            ("WorkPhone".to_string(), json!("+1 555 0100")),
            ("Privileged".to_string(), json!(true)),
            ("Comments".to_string(), json!("line one\nline two")),
        ])
    }

    fn deletes(&self) -> Result<(), NotApplicable> {
        Err(NotApplicable(
            "Request Tracker never deletes users; `removed: delete` is refused at validate time (tests: request_tracker_real)",
        ))
    }

    async fn writes(&self) -> usize {
        self.served.log.writes().len()
    }

    fn log(&self) -> Option<&RequestLog> {
        Some(&self.served.log)
    }

    fn paging(&self) -> Result<Paging, NotApplicable> {
        Err(NotApplicable(
            "RT's user table is shared by every test, so the exact requests depend on it: request_tracker_real::list_reads_every_page_and_each_user_once counts them",
        ))
    }

    fn inject(&self, fault: Inject) -> Result<(), NotApplicable> {
        let faults = &self.served.faults;
        let list = || Match::get("/REST/2.0/users");
        match fault {
            Inject::LostCreateAnswer => faults
                .on(Match::post("/REST/2.0/user"))
                .inject(Fault::LoseResponse),
            Inject::Throttle { .. } => {
                return Err(NotApplicable(
                    "a real server cannot run under the paused clock; request_tracker_real::retry_after_is_honoured checks it in real time",
                ));
            }
            Inject::HtmlErrorPage => faults.on(list()).always().inject(Fault::html_error_page()),
            Inject::UnexpectedJson => faults.on(list()).always().inject(Fault::unexpected_json()),
            Inject::Unauthorized => faults.on(Match::any()).always().inject(Fault::Answer {
                status: 401,
                headers: vec![("content-type".into(), "application/json".into())],
                body: r#"{"message":"Unauthorized"}"#.into(),
            }),
            Inject::ShortList => faults.on(list()).always().inject(Fault::Answer {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: json!({"page": 1, "per_page": 100, "count": 1, "total": 1_000_000_000_000u64,
                    "pages": null, "next_page": null,
                    "items": [{"type": "user", "id": 14, "Name": "root"}]})
                .to_string(),
            }),
        }
        Ok(())
    }

    fn secret(&self) -> Result<String, NotApplicable> {
        Ok(self.token.clone())
    }
}

headcount::target_compliance_suite!(RtHarness);
