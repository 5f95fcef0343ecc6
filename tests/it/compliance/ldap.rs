//! The compliance suite against the real OpenLDAP (`scripts/start-slapd.sh`), one fresh OU per
//! harness. LDAP is not HTTP, so the HTTP-shaped faults do not apply and are declared N/A:
//! there is no request log (paging is checked by count here and past the server's 500-entry
//! limit in `ldap_source.rs`), no 429/Retry-After in the protocol, and no HTML page or JSON
//! body; their LDAP counterparts (a non-LDAP answer on the port, refused connections, TLS
//! failures, size limits) are tested in `ldap_source.rs`, and a paged search that never ends
//! (its cookie does not advance), a malformed control and the exact number of page requests
//! against a scripted server in `ldap_wire.rs`. A revoked credential is real: the
//! bind account's password is changed on the server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use headcount::connectors::Source;
use headcount::testkit::RequestLog;
use headcount::testkit::compliance::{Inject, NotApplicable, Paging, SourceHarness};
use serde_json::json;

use crate::support::slapd::{self, SUFFIX};

/// The bind password: distinctive, so a leak is found by a plain substring search.
const SECRET: &str = "hc-SECRET-7c1e9a-ldap-bind";

pub struct LdapSourceHarness {
    _dir: tempfile::TempDir,
    ou: String,
    ready: tokio::sync::Mutex<bool>,
    source: Box<dyn Source>,
}

impl LdapSourceHarness {
    fn bind_dn(&self) -> String {
        format!("uid=bind,{}", self.ou)
    }

    /// The OU and its bind account, made on first use (no I/O in `start`, which also runs on
    /// the paused clock of the Retry-After check).
    async fn ensure_ou(&self) {
        let mut ready = self.ready.lock().await;
        if *ready {
            return;
        }
        let server = slapd::server().expect("slapd");
        let mut ldap = server.admin().await;
        let name = self
            .ou
            .trim_start_matches("ou=")
            .split(',')
            .next()
            .unwrap_or_default()
            .to_string();
        slapd::add(
            &mut ldap,
            &self.ou,
            &[("objectClass", &["organizationalUnit"]), ("ou", &[&name])],
        )
        .await;
        slapd::add(
            &mut ldap,
            &format!("ou=people,{}", self.ou),
            &[
                ("objectClass", &["organizationalUnit"]),
                ("ou", &["people"]),
            ],
        )
        .await;
        slapd::add(
            &mut ldap,
            &self.bind_dn(),
            &[
                ("objectClass", &["account", "simpleSecurityObject"]),
                ("uid", &["bind"]),
                ("userPassword", &[SECRET]),
            ],
        )
        .await;
        let _ = ldap.unbind().await;
        *ready = true;
    }
}

#[async_trait]
impl SourceHarness for LdapSourceHarness {
    const KIND: &'static str = "ldap";

    async fn start() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let server = slapd::server().expect("slapd");
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let ou = format!("ou=compliance-{}-{n}-{nanos},{SUFFIX}", std::process::id());
        let dir = tempfile::tempdir().expect("tempdir");
        let source = slapd::build(
            json!({
                "url": server.url(),
                "bind_dn": format!("uid=bind,{ou}"),
                "bind_password": slapd::password_file(dir.path(), "pw", SECRET),
                "base_dn": format!("ou=people,{ou}"),
                "filter": "(objectClass=inetOrgPerson)",
                "attributes": ["uid", "mail", "cn"],
                "page_size": 3,
            }),
            dir.path(),
        )
        .expect("build the ldap source");
        LdapSourceHarness {
            _dir: dir,
            ou,
            ready: tokio::sync::Mutex::new(false),
            source,
        }
    }

    fn source(&self) -> &dyn Source {
        self.source.as_ref()
    }

    async fn seed(&self, n: usize) {
        self.ensure_ou().await;
        let server = slapd::server().expect("slapd");
        let mut ldap = server.admin().await;
        let people = format!("ou=people,{}", self.ou);
        for i in 0..n {
            let uid = format!("user{i}");
            let mail = format!("user{i}@example.com");
            slapd::add_person(
                &mut ldap,
                &people,
                &uid,
                "Given",
                &format!("Family{i}"),
                Some(&mail),
            )
            .await;
        }
        let _ = ldap.unbind().await;
    }

    fn log(&self) -> Option<&RequestLog> {
        None
    }

    /// Pages of 3 over 7 entries; no request log to compare (LDAP, not HTTP).
    fn paging(&self) -> Result<Paging, NotApplicable> {
        Ok(Paging {
            seed: 7,
            requests: Vec::new(),
        })
    }

    fn inject(&self, fault: Inject) -> Result<(), NotApplicable> {
        match fault {
            Inject::Unauthorized => {
                // A revoked credential: the bind account's password changes on the server.
                // `inject` is synchronous, so the change runs on its own thread and runtime.
                let bind_dn = self.bind_dn();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    rt.block_on(async {
                        let server = slapd::server().expect("slapd");
                        let mut ldap = server.admin().await;
                        slapd::replace(&mut ldap, &bind_dn, "userPassword", &["revoked-elsewhere"])
                            .await;
                        let _ = ldap.unbind().await;
                    });
                })
                .join()
                .expect("revoke the bind password");
                Ok(())
            }
            Inject::Throttle { .. } => Err(NotApplicable(
                "LDAP has no 429/Retry-After; server limits are result codes (tested in ldap_source.rs)",
            )),
            Inject::HtmlErrorPage | Inject::UnexpectedJson => Err(NotApplicable(
                "LDAP answers are BER, not HTTP bodies; a non-LDAP answer on the port is tested in ldap_source.rs",
            )),
            Inject::ShortList => Err(NotApplicable(
                "the paged-results control announces no total; a cookie that never advances is an error (ldap_wire.rs)",
            )),
            Inject::LostCreateAnswer => Err(NotApplicable("a source never writes")),
        }
    }

    fn secret(&self) -> Result<String, NotApplicable> {
        Ok(SECRET.to_string())
    }
}

headcount::source_compliance_suite!(LdapSourceHarness, if slapd::server().is_some());
