//! `entra_id` source against the testkit's Graph emulator.

use async_trait::async_trait;
use headcount::connectors::Source;
use headcount::connectors::entra::{EntraIdSource, select_list};
use headcount::http::auth::ClientAuth;
use headcount::testkit::compliance::{Inject, NotApplicable, Paging, SourceHarness};
use headcount::testkit::graph::GraphEmulator;
use headcount::testkit::{Fault, Match, RequestLog};
use secrecy::SecretString;

/// The client secret: distinctive, so a leak is found by a plain substring search.
pub const SECRET: &str = "hc-SECRET-51d2e0-entra-client-secret";

pub fn secret_auth(secret: &str) -> ClientAuth {
    ClientAuth::Secret {
        secret: SecretString::from(secret.to_string()),
        reference: "`client_secret` (env ENTRA_TEST_SECRET)".to_string(),
    }
}

pub struct EntraIdHarness {
    emu: GraphEmulator,
    source: EntraIdSource,
}

#[async_trait]
impl SourceHarness for EntraIdHarness {
    const KIND: &'static str = "entra_id";

    async fn start() -> Self {
        let emu = GraphEmulator::start(SECRET).await;
        let source = EntraIdSource::new(emu.client(secret_auth(SECRET)), &[], vec![], None, false);
        EntraIdHarness { emu, source }
    }

    fn source(&self) -> &dyn Source {
        &self.source
    }

    async fn seed(&self, n: usize) {
        for i in 0..n {
            self.emu.add_member(i, &format!("User {i}"));
        }
    }

    fn log(&self) -> Option<&RequestLog> {
        Some(self.emu.log())
    }

    /// 5 users on a server that pages by 2: the first request, then two `@odata.nextLink`s.
    fn paging(&self) -> Result<Paging, NotApplicable> {
        self.emu.set_page_cap(2);
        let first = format!(
            "GET /v1.0/users?$select={}&$top=999",
            select_list(&[]).join(",")
        );
        Ok(Paging {
            seed: 5,
            requests: vec![
                first.clone(),
                format!("{first}&$skiptoken=2"),
                format!("{first}&$skiptoken=4"),
            ],
        })
    }

    fn inject(&self, fault: Inject) -> Result<(), NotApplicable> {
        let faults = self.emu.faults();
        let users = || Match::get("/v1.0/users");
        match fault {
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
            Inject::LostCreateAnswer => return Err(NotApplicable("a source never writes")),
        }
        Ok(())
    }

    fn secret(&self) -> Result<String, NotApplicable> {
        Ok(SECRET.to_string())
    }
}

headcount::source_compliance_suite!(EntraIdHarness);
