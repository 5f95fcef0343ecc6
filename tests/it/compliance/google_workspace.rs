//! `google_workspace` source against the Google emulator (token endpoint + Directory API).

use async_trait::async_trait;
use headcount::connectors::Source;
use headcount::connectors::google::{GoogleSource, Listing};
use headcount::testkit::compliance::{Inject, NotApplicable, Paging, SourceHarness};
use headcount::testkit::google::{CLIENT_ID, GoogleEmulator, TEST_KEY_PEM};
use headcount::testkit::{Fault, Match, RequestLog};
use serde_json::json;

pub struct GoogleHarness {
    emu: GoogleEmulator,
    source: GoogleSource,
}

const USERS: &str =
    "GET /admin/directory/v1/users?customer=my_customer&maxResults=500&projection=full";

#[async_trait]
impl SourceHarness for GoogleHarness {
    const KIND: &'static str = "google_workspace";

    async fn start() -> Self {
        let emu = GoogleEmulator::start().await;
        let source = emu.source(Listing::default());
        GoogleHarness { emu, source }
    }

    fn source(&self) -> &dyn Source {
        &self.source
    }

    async fn seed(&self, n: usize) {
        for i in 0..n {
            self.emu
                .insert_user(json!({"primaryEmail": format!("user{i}@example.com"),
                "name": {"givenName": format!("Given{i}"), "familyName": "Family"}}));
        }
    }

    fn log(&self) -> Option<&RequestLog> {
        Some(self.emu.log())
    }

    /// Pages of 3 over 7 users: three requests, the cursor appended.
    fn paging(&self) -> Result<Paging, NotApplicable> {
        self.emu.set_page_cap(Some(3));
        Ok(Paging {
            seed: 7,
            requests: vec![
                USERS.to_string(),
                format!("{USERS}&pageToken=emu-page-3"),
                format!("{USERS}&pageToken=emu-page-6"),
            ],
        })
    }

    fn inject(&self, fault: Inject) -> Result<(), NotApplicable> {
        let faults = self.emu.faults();
        match fault {
            Inject::LostCreateAnswer => {
                return Err(NotApplicable("a source never creates"));
            }
            Inject::Throttle { retry_after_secs } => faults
                .on(Match::get("/users"))
                .inject(Fault::too_many_requests(retry_after_secs)),
            Inject::HtmlErrorPage => faults
                .on(Match::get("/users"))
                .always()
                .inject(Fault::html_error_page()),
            Inject::UnexpectedJson => faults
                .on(Match::get("/users"))
                .always()
                .inject(Fault::unexpected_json()),
            // Delegation revoked: the token endpoint refuses.
            Inject::Unauthorized => self.emu.set_grant(CLIENT_ID, None),
            // A server that ignores `pageToken` and hands out the first token again.
            Inject::ShortList => {
                self.emu.set_page_cap(Some(1));
                self.emu.set_stuck_paging(true);
            }
        }
        Ok(())
    }

    /// A piece of the service account's private key.
    fn secret(&self) -> Result<String, NotApplicable> {
        Ok(TEST_KEY_PEM.lines().nth(3).unwrap().to_string())
    }
}

headcount::source_compliance_suite!(GoogleHarness);
