//! `mojo_helpdesk` target against the testkit's Mojo emulator.

use std::collections::BTreeMap;

use async_trait::async_trait;
use headcount::connectors::mojo::MojoHelpdeskTarget;
use headcount::connectors::{Target, TargetOp};
use headcount::testkit::compliance::{Inject, NotApplicable, Paging, TargetHarness};
use headcount::testkit::mojo::MojoEmulator;
use headcount::testkit::{Fault, Match, RequestLog};
use serde_json::{Value, json};

/// The access key: distinctive, so a leak is found by a plain substring search.
const SECRET: &str = "hc-SECRET-9a7c31-mojo-key";

pub struct MojoHarness {
    emu: MojoEmulator,
    target: MojoHelpdeskTarget,
}

fn email(n: usize) -> String {
    format!("user{n}@example.com")
}

#[async_trait]
impl TargetHarness for MojoHarness {
    const KIND: &'static str = "mojo_helpdesk";

    async fn start() -> Self {
        let emu = MojoEmulator::start(SECRET).await;
        let target = MojoHelpdeskTarget::new(emu.client_builder(SECRET).build().unwrap(), vec![]);
        MojoHarness { emu, target }
    }

    fn target(&self) -> &dyn Target {
        &self.target
    }

    async fn seed(&self, n: usize) {
        for i in 0..n {
            self.emu
                .insert(json!({"email": email(i), "first_name": format!("First{i}")}));
        }
    }

    fn create_op(&self, n: usize) -> TargetOp {
        TargetOp::Create {
            fields: BTreeMap::from([
                ("email".to_string(), json!(email(n))),
                ("first_name".to_string(), json!(format!("First{n}"))),
                ("last_name".to_string(), json!("Family")),
                ("role".to_string(), json!("technician")),
                ("group".to_string(), json!("Support")),
                ("password".to_string(), json!(format!("{SECRET}-pw"))),
            ]),
            active: true,
            notify: false,
        }
    }

    fn update_fields(&self, n: usize) -> BTreeMap<String, Value> {
        BTreeMap::from([
            ("first_name".to_string(), json!(format!("Renamed{n}"))),
            ("role".to_string(), json!("manager")),
            ("group".to_string(), json!("Individuals")),
        ])
    }

    fn write_only(&self, field: &str) -> bool {
        field == "password"
    }

    async fn writes(&self) -> usize {
        self.emu.log().writes().len()
    }

    fn log(&self) -> Option<&RequestLog> {
        Some(self.emu.log())
    }

    /// 205 users: pages of 100, 100 and 5 (the short page ends the list), then the groups
    /// once (one short page). The key travels as Mojo wants it, in the query.
    fn paging(&self) -> Result<Paging, NotApplicable> {
        let key = format!("access_key={SECRET}");
        Ok(Paging {
            seed: 205,
            requests: vec![
                format!("GET /api/v2/users?page=1&per_page=100&{key}"),
                format!("GET /api/v2/users?per_page=100&page=2&{key}"),
                format!("GET /api/v2/users?per_page=100&page=3&{key}"),
                format!("GET /api/v2/groups?page=1&per_page=100&{key}"),
            ],
        })
    }

    fn inject(&self, fault: Inject) -> Result<(), NotApplicable> {
        let faults = self.emu.faults();
        let users = || Match::get("/api/v2/users");
        match fault {
            Inject::LostCreateAnswer => faults
                .on(Match::post("/api/v2/users"))
                .inject(Fault::LoseResponse),
            Inject::Throttle { retry_after_secs } => faults
                .on(users())
                .inject(Fault::too_many_requests(retry_after_secs)),
            Inject::HtmlErrorPage => faults.on(users()).always().inject(Fault::html_error_page()),
            Inject::UnexpectedJson => faults.on(users()).always().inject(Fault::unexpected_json()),
            Inject::Unauthorized => faults.on(Match::any()).always().inject(Fault::status(401)),
            Inject::ShortList => {
                return Err(NotApplicable(
                    "Mojo lists are bare arrays with no total to contradict",
                ));
            }
        }
        Ok(())
    }

    fn secret(&self) -> Result<String, NotApplicable> {
        Ok(SECRET.to_string())
    }
}

headcount::target_compliance_suite!(MojoHarness);
