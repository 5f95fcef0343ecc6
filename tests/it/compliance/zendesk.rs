//! `zendesk` target and source against the testkit's Zendesk emulator.

use std::collections::BTreeMap;

use async_trait::async_trait;
use headcount::connectors::zendesk::{ZendeskSource, ZendeskTarget};
use headcount::connectors::{Source, Target, TargetOp};
use headcount::testkit::compliance::{Inject, NotApplicable, Paging, SourceHarness, TargetHarness};
use headcount::testkit::zendesk::ZendeskEmulator;
use headcount::testkit::{Fault, Match, RequestLog};
use serde_json::{Value, json};

/// The API token: distinctive, so a leak is found by a plain substring search.
const SECRET: &str = "hc-SECRET-5e1b77-zendesk-token";
const AGENT: &str = "admin@example.com";

fn email(n: usize) -> String {
    format!("user{n}@example.com")
}

fn user(n: usize) -> Value {
    json!({"name": format!("User {n}"), "email": email(n), "role": "agent"})
}

async fn emulator() -> ZendeskEmulator {
    ZendeskEmulator::start(AGENT, SECRET).await
}

fn inject(emu: &ZendeskEmulator, fault: Inject) -> Result<(), NotApplicable> {
    let faults = emu.faults();
    let users = || Match::get("/api/v2/users");
    match fault {
        Inject::LostCreateAnswer => faults
            .on(Match::post("/api/v2/users/create_many"))
            .inject(Fault::LoseResponse),
        Inject::Throttle { retry_after_secs } => faults
            .on(users())
            .inject(Fault::too_many_requests(retry_after_secs)),
        Inject::HtmlErrorPage => faults.on(users()).always().inject(Fault::html_error_page()),
        Inject::UnexpectedJson => faults.on(users()).always().inject(Fault::unexpected_json()),
        Inject::Unauthorized => faults.on(Match::any()).always().inject(Fault::status(401)),
        Inject::ShortList => emu.set_claim_more(true),
    }
    Ok(())
}

pub struct ZendeskTargetHarness {
    emu: ZendeskEmulator,
    target: ZendeskTarget,
}

#[async_trait]
impl TargetHarness for ZendeskTargetHarness {
    const KIND: &'static str = "zendesk";

    async fn start() -> Self {
        let emu = emulator().await;
        let client = emu.client_builder(AGENT, SECRET).build().unwrap();
        let target = ZendeskTarget::new(client, vec!["department".to_string()]);
        ZendeskTargetHarness { emu, target }
    }

    fn target(&self) -> &dyn Target {
        &self.target
    }

    async fn seed(&self, n: usize) {
        for i in 0..n {
            self.emu.insert(user(i));
        }
    }

    fn create_op(&self, n: usize) -> TargetOp {
        TargetOp::Create {
            fields: BTreeMap::from([
                ("email".to_string(), json!(email(n))),
                ("name".to_string(), json!(format!("User {n}"))),
                ("external_id".to_string(), json!(format!("hr-{n}"))),
                ("role".to_string(), json!("agent")),
                ("organization".to_string(), json!("Support")),
                ("user_fields.department".to_string(), json!("Ops")),
            ]),
            active: true,
            notify: false,
        }
    }

    fn update_fields(&self, n: usize) -> BTreeMap<String, Value> {
        BTreeMap::from([
            ("name".to_string(), json!(format!("Renamed {n}"))),
            ("role".to_string(), json!("admin")),
            ("organization".to_string(), json!("Sales")),
            ("user_fields.department".to_string(), json!("Finance")),
        ])
    }

    async fn writes(&self) -> usize {
        self.emu.log().writes().len()
    }

    fn log(&self) -> Option<&RequestLog> {
        Some(self.emu.log())
    }

    /// 205 users: cursor pages of 100, 100 and 5 (`meta.has_more` false ends the list), then
    /// the organizations once.
    fn paging(&self) -> Result<Paging, NotApplicable> {
        Ok(Paging {
            seed: 205,
            requests: vec![
                "GET /api/v2/users?page[size]=100".into(),
                "GET /api/v2/users?page[size]=100&page[after]=zd1099".into(),
                "GET /api/v2/users?page[size]=100&page[after]=zd1199".into(),
                "GET /api/v2/organizations?page[size]=100".into(),
            ],
        })
    }

    fn inject(&self, fault: Inject) -> Result<(), NotApplicable> {
        inject(&self.emu, fault)
    }

    fn secret(&self) -> Result<String, NotApplicable> {
        Ok(SECRET.to_string())
    }
}

pub struct ZendeskSourceHarness {
    emu: ZendeskEmulator,
    source: ZendeskSource,
}

#[async_trait]
impl SourceHarness for ZendeskSourceHarness {
    const KIND: &'static str = "zendesk";

    async fn start() -> Self {
        let emu = emulator().await;
        let client = emu.client_builder(AGENT, SECRET).build().unwrap();
        let source = ZendeskSource::new(client, vec!["agent".into(), "admin".into()], vec![7]);
        ZendeskSourceHarness { emu, source }
    }

    fn source(&self) -> &dyn Source {
        &self.source
    }

    async fn seed(&self, n: usize) {
        for i in 0..n {
            self.emu.insert(user(i));
        }
    }

    fn log(&self) -> Option<&RequestLog> {
        Some(self.emu.log())
    }

    /// 150 agents: the role series in pages of 100 and 50, then the custom role's series
    /// (one empty page).
    fn paging(&self) -> Result<Paging, NotApplicable> {
        Ok(Paging {
            seed: 150,
            requests: vec![
                "GET /api/v2/users?role[]=agent&role[]=admin&page[size]=100".into(),
                "GET /api/v2/users?role[]=agent&role[]=admin&page[size]=100&page[after]=zd1099"
                    .into(),
                "GET /api/v2/users?permission_set=7&page[size]=100".into(),
            ],
        })
    }

    fn inject(&self, fault: Inject) -> Result<(), NotApplicable> {
        inject(&self.emu, fault)
    }

    fn secret(&self) -> Result<String, NotApplicable> {
        Ok(SECRET.to_string())
    }
}

mod target {
    use super::ZendeskTargetHarness;
    headcount::target_compliance_suite!(ZendeskTargetHarness);
}

mod source {
    use super::ZendeskSourceHarness;
    headcount::source_compliance_suite!(ZendeskSourceHarness);
}
