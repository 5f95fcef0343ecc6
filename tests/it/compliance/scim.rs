//! `scim` target and source against the testkit's SCIM emulator (the real scim2-server tests
//! are `scim_real`, `scim_apply`, `scim_faults`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use headcount::connectors::scim::{ScimSource, ScimTarget};
use headcount::connectors::{Source, Target, TargetOp};
use headcount::testkit::compliance::{Inject, NotApplicable, Paging, SourceHarness, TargetHarness};
use headcount::testkit::scim::ScimEmulator;
use headcount::testkit::{Fault, Match, RequestLog};
use serde_json::{Value, json};

/// The bearer token: distinctive, so a leak is found by a plain substring search.
const SECRET: &str = "hc-SECRET-4f2d8b-scim-token";
const WORK_EMAIL: &str = "emails[type eq \"work\"].value";

fn user(n: usize) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": format!("user{n}"), "active": true,
        "name": {"givenName": format!("Given{n}"), "familyName": "Family"},
        "emails": [{"type": "work", "value": format!("user{n}@example.com"), "primary": true}]})
}

/// Small pages (3) over 7 users: three list requests.
fn paging(emu: &ScimEmulator) -> Paging {
    emu.set_max_count(Some(3));
    Paging {
        seed: 7,
        requests: vec![
            "GET /t/v2/Users?startIndex=1&count=500".into(),
            "GET /t/v2/Users?count=500&startIndex=4".into(),
            "GET /t/v2/Users?count=500&startIndex=7".into(),
        ],
    }
}

fn inject(emu: &ScimEmulator, fault: Inject) -> Result<(), NotApplicable> {
    let faults = emu.faults();
    match fault {
        Inject::LostCreateAnswer => faults.on(Match::post("/Users")).inject(Fault::LoseResponse),
        Inject::Throttle { retry_after_secs } => faults
            .on(Match::get("/Users"))
            .inject(Fault::too_many_requests(retry_after_secs)),
        Inject::HtmlErrorPage => faults
            .on(Match::get("/Users"))
            .always()
            .inject(Fault::html_error_page()),
        Inject::UnexpectedJson => faults
            .on(Match::get("/Users"))
            .always()
            .inject(Fault::unexpected_json()),
        Inject::Unauthorized => emu.set_unauthorized(true),
        Inject::ShortList => emu.set_claimed_total(Some(1_000_000_000_000)),
    }
    Ok(())
}

pub struct ScimTargetHarness {
    emu: ScimEmulator,
    target: ScimTarget,
}

#[async_trait]
impl TargetHarness for ScimTargetHarness {
    const KIND: &'static str = "scim";

    async fn start() -> Self {
        let emu = ScimEmulator::with_token(SECRET).await;
        let target = ScimTarget::new(emu.client_builder().build().unwrap());
        ScimTargetHarness { emu, target }
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
        let fields = BTreeMap::from([
            ("userName".to_string(), json!(format!("user{n}"))),
            ("name.givenName".to_string(), json!(format!("Given{n}"))),
            ("name.familyName".to_string(), json!("Family")),
            (
                WORK_EMAIL.to_string(),
                json!(format!("user{n}@example.com")),
            ),
        ]);
        TargetOp::Create {
            fields,
            active: true,
            notify: false,
        }
    }

    fn update_fields(&self, n: usize) -> BTreeMap<String, Value> {
        BTreeMap::from([
            ("name.givenName".to_string(), json!(format!("Renamed{n}"))),
            ("title".to_string(), json!("Lead")),
        ])
    }

    async fn writes(&self) -> usize {
        self.emu.log().writes().len()
    }

    fn log(&self) -> Option<&RequestLog> {
        Some(self.emu.log())
    }

    fn paging(&self) -> Result<Paging, NotApplicable> {
        Ok(paging(&self.emu))
    }

    fn inject(&self, fault: Inject) -> Result<(), NotApplicable> {
        inject(&self.emu, fault)
    }

    fn secret(&self) -> Result<String, NotApplicable> {
        Ok(SECRET.to_string())
    }
}

pub struct ScimSourceHarness {
    emu: ScimEmulator,
    source: ScimSource,
}

#[async_trait]
impl SourceHarness for ScimSourceHarness {
    const KIND: &'static str = "scim";

    async fn start() -> Self {
        let emu = ScimEmulator::with_token(SECRET).await;
        let source = ScimSource::new(emu.client_builder().build().unwrap(), None);
        ScimSourceHarness { emu, source }
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

    fn paging(&self) -> Result<Paging, NotApplicable> {
        Ok(paging(&self.emu))
    }

    fn inject(&self, fault: Inject) -> Result<(), NotApplicable> {
        inject(&self.emu, fault)
    }

    fn secret(&self) -> Result<String, NotApplicable> {
        Ok(SECRET.to_string())
    }
}

mod target {
    use super::ScimTargetHarness;
    headcount::target_compliance_suite!(ScimTargetHarness);
}

mod source {
    use super::ScimSourceHarness;
    headcount::source_compliance_suite!(ScimSourceHarness);
}
