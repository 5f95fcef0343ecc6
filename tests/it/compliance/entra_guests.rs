//! `entra_guests` target against the testkit's Graph emulator.

use std::collections::BTreeMap;

use async_trait::async_trait;
use headcount::connectors::entra::EntraGuestsTarget;
use headcount::connectors::{Target, TargetOp};
use headcount::testkit::compliance::{Inject, NotApplicable, Paging, TargetHarness};
use headcount::testkit::graph::GraphEmulator;
use headcount::testkit::{Fault, Match, RequestLog};
use serde_json::{Value, json};

use super::entra_id::{SECRET, secret_auth};

pub struct EntraGuestsHarness {
    emu: GraphEmulator,
    target: EntraGuestsTarget,
}

fn email(n: usize) -> String {
    format!("guest{n}@partner.example")
}

/// What `list` asks for.
pub const GUEST_LIST: &str = "GET /v1.0/users?$filter=userType eq 'Guest'&$select=id,mail,otherMails,userPrincipalName,displayName,accountEnabled,userType&$top=999";

#[async_trait]
impl TargetHarness for EntraGuestsHarness {
    const KIND: &'static str = "entra_guests";

    async fn start() -> Self {
        let emu = GraphEmulator::start(SECRET).await;
        let target = EntraGuestsTarget::new(
            emu.client(secret_auth(SECRET)),
            Some("https://apps.example/welcome".to_string()),
        );
        EntraGuestsHarness { emu, target }
    }

    fn target(&self) -> &dyn Target {
        &self.target
    }

    async fn seed(&self, n: usize) {
        for i in 0..n {
            self.emu.add_user(json!({
                "mail": email(i),
                "otherMails": [email(i)],
                "userPrincipalName": format!("guest{i}_partner.example#EXT#@emulated.onmicrosoft.com"),
                "displayName": format!("Guest {i}"),
                "accountEnabled": true,
                "userType": "Guest",
            }));
        }
    }

    fn create_op(&self, n: usize) -> TargetOp {
        TargetOp::Create {
            fields: BTreeMap::from([
                ("email".to_string(), json!(email(n))),
                ("display_name".to_string(), json!(format!("Guest {n}"))),
            ]),
            active: true,
            notify: false,
        }
    }

    fn update_fields(&self, n: usize) -> BTreeMap<String, Value> {
        BTreeMap::from([("display_name".to_string(), json!(format!("Renamed {n}")))])
    }

    async fn writes(&self) -> usize {
        self.emu.log().writes().len()
    }

    fn log(&self) -> Option<&RequestLog> {
        Some(self.emu.log())
    }

    /// 5 guests on a server that pages by 2.
    fn paging(&self) -> Result<Paging, NotApplicable> {
        self.emu.set_page_cap(2);
        Ok(Paging {
            seed: 5,
            requests: vec![
                GUEST_LIST.to_string(),
                format!("{GUEST_LIST}&$skiptoken=2"),
                format!("{GUEST_LIST}&$skiptoken=4"),
            ],
        })
    }

    fn inject(&self, fault: Inject) -> Result<(), NotApplicable> {
        let faults = self.emu.faults();
        let users = || Match::get("/v1.0/users");
        match fault {
            Inject::LostCreateAnswer => faults
                .on(Match::post("/v1.0/invitations"))
                .inject(Fault::LoseResponse),
            Inject::Throttle { retry_after_secs } => faults
                .on(users())
                .inject(Fault::too_many_requests(retry_after_secs)),
            Inject::HtmlErrorPage => faults.on(users()).always().inject(Fault::html_error_page()),
            Inject::UnexpectedJson => faults.on(users()).always().inject(Fault::unexpected_json()),
            Inject::Unauthorized => faults.on(Match::any()).always().inject(Fault::status(401)),
            Inject::ShortList => {
                return Err(NotApplicable(
                    "Graph user lists announce no total: `@odata.nextLink` alone ends them",
                ));
            }
        }
        Ok(())
    }

    fn secret(&self) -> Result<String, NotApplicable> {
        Ok(SECRET.to_string())
    }
}

headcount::target_compliance_suite!(EntraGuestsHarness);
