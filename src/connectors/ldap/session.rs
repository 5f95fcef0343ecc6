//! One LDAP session: connect (plain, StartTLS or LDAPS), simple bind, paged searches, unbind.
//! Every failure becomes a typed `ConnectorError` that names the server, the bind DN or the
//! base DN (never the password) and says what the admin can do.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use ldap3::controls::{ControlParser, PagedResults, RawControl};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult, Scope, SearchEntry};
use secrecy::{ExposeSecret, SecretString};

use crate::model::ConnectorError;

/// The OID of the paged-results control (RFC 2696).
const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";
/// A read stops with an error past this many pages (a server that never ends its cookie).
const MAX_PAGES: usize = 1_000_000;

/// Where and how to connect.
pub(super) struct Endpoint {
    /// The source's name in the config, for messages.
    pub source: String,
    pub url: String,
    pub starttls: bool,
    pub tls: Arc<rustls::ClientConfig>,
    pub timeout: Duration,
    pub bind: Option<(String, SecretString)>,
}

/// A search request.
pub(super) struct Search<'a> {
    pub base: &'a str,
    pub scope: Scope,
    pub filter: &'a str,
    pub attrs: &'a [String],
}

/// A bound connection.
pub(super) struct Session<'e> {
    ep: &'e Endpoint,
    ldap: Ldap,
    /// The task reading the connection: when an operation finds the connection gone, its
    /// result says why (e.g. an answer that is not LDAP).
    driver: Option<tokio::task::JoinHandle<ldap3::result::Result<()>>>,
}

impl Endpoint {
    fn what(&self) -> String {
        format!("LDAP source `{}` ({})", self.source, self.url)
    }

    /// Connects (with StartTLS when asked) and binds.
    pub(super) async fn open(&self) -> Result<Session<'_>, ConnectorError> {
        let settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout)
            .set_starttls(self.starttls)
            .set_config(self.tls.clone());
        let connect = LdapConnAsync::with_settings(settings, &self.url);
        let (conn, ldap) = match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(self.connect_error(e)),
            Err(_) => return Err(self.timed_out("connecting")),
        };
        let driver = tokio::spawn(async move {
            let ended = conn.drive().await;
            if let Err(e) = &ended {
                tracing::debug!("LDAP connection ended: {e}");
            }
            ended
        });
        let mut session = Session {
            ep: self,
            ldap,
            driver: Some(driver),
        };
        if let Some((dn, password)) = &self.bind {
            let bound = session
                .ldap
                .with_timeout(self.timeout)
                .simple_bind(dn, password.expose_secret())
                .await;
            let result = match bound {
                Ok(result) => result,
                Err(LdapError::LdapResult { result }) => result,
                Err(e) => return Err(session.broken(&format!("binding as `{dn}`"), e).await),
            };
            if result.rc != 0 {
                return Err(self.bind_refused(dn, &result));
            }
        }
        Ok(session)
    }

    fn timed_out(&self, doing: &str) -> ConnectorError {
        ConnectorError::Unavailable(format!(
            "{}: no answer within {:?} while {doing}; check that the server is up and reachable from here, or raise `timeout`",
            self.what(),
            self.timeout
        ))
    }

    /// A failure before any LDAP operation: refused, unreachable, TLS.
    fn connect_error(&self, e: LdapError) -> ConnectorError {
        let what = self.what();
        if let Some(tls) = tls_failure(&e) {
            let hint = if self.url.starts_with("ldaps://") || self.starttls {
                "check that the server's certificate is valid for this host name and signed by a CA in `ca_file` (or the system's roots when `ca_file` is not set)"
            } else {
                "check the server's TLS setup"
            };
            return ConnectorError::Unavailable(format!("{what}: TLS failed: {tls}; {hint}"));
        }
        match &e {
            LdapError::Io { source } if source.kind() == std::io::ErrorKind::ConnectionRefused => {
                ConnectorError::Unavailable(format!(
                    "{what}: connection refused; check that the LDAP server is running and that the host and port in `url` are right"
                ))
            }
            LdapError::Timeout { .. } => self.timed_out("connecting"),
            LdapError::LdapResult { result } if self.starttls => {
                ConnectorError::Unavailable(format!(
                    "{what}: the server refused StartTLS ({}, code {}); enable TLS on the server or use an ldaps:// URL",
                    result_text(result),
                    result.rc
                ))
            }
            LdapError::UrlParsing { .. } | LdapError::UnknownScheme(_) => {
                ConnectorError::Config(format!(
                    "{what}: `url` is not an LDAP URL ({e}); write e.g. ldaps://ldap.example.com:636"
                ))
            }
            _ => ConnectorError::Unavailable(format!(
                "{what}: cannot connect: {e}; check `url` and that the server is reachable"
            )),
        }
    }

    fn bind_refused(&self, dn: &str, r: &LdapResult) -> ConnectorError {
        let what = self.what();
        match r.rc {
            49 => ConnectorError::Auth {
                message: format!(
                    "{what}: the bind as `{dn}` was refused: invalid credentials (49); check `bind_dn` and the password that `bind_password` points at"
                ),
            },
            50 | 53 => ConnectorError::Permission {
                message: format!(
                    "{what}: the server refused the bind as `{dn}` ({}, code {}); the account may be locked or not allowed to bind",
                    result_text(r),
                    r.rc
                ),
            },
            _ => ConnectorError::Rejected {
                status: None,
                vendor: Some(r.text.clone()),
                message: format!(
                    "{what}: the bind as `{dn}` failed ({}, code {}); check `bind_dn` and `bind_password`",
                    result_text(r),
                    r.rc
                ),
            },
        }
    }

    /// The connection broke mid-session.
    fn broken(&self, doing: &str, e: LdapError) -> ConnectorError {
        if let LdapError::Timeout { .. } = e {
            return self.timed_out(doing);
        }
        ConnectorError::Unavailable(format!(
            "{}: the connection failed while {doing}: {e}; check that the server is up, then run again",
            self.what()
        ))
    }
}

impl Session<'_> {
    /// An operation failed on the connection itself: asks the connection's task why it ended.
    async fn broken(&mut self, doing: &str, e: LdapError) -> ConnectorError {
        let gone = matches!(
            e,
            LdapError::OpSend { .. } | LdapError::ResultRecv { .. } | LdapError::IdScrubSend { .. }
        );
        if gone
            && let Some(driver) = self.driver.take()
            && let Ok(Ok(Err(cause))) = tokio::time::timeout(Duration::from_secs(1), driver).await
        {
            return ConnectorError::Unavailable(format!(
                "{}: the connection ended while {doing}: {cause}; check that `url` points at an LDAP server (ldap:// usually on port 389, ldaps:// on 636), not at an HTTP service or proxy, and that it is up",
                self.ep.what()
            ));
        }
        self.ep.broken(doing, e)
    }

    /// Every entry of a paged search, page by page; `first_page_only` stops after the first
    /// page (`validate --online`). A failure on any page fails the whole search.
    pub(super) async fn search(
        &mut self,
        s: &Search<'_>,
        page_size: u32,
        first_page_only: bool,
    ) -> Result<Vec<SearchEntry>, ConnectorError> {
        let mut entries = Vec::new();
        let mut cookie: Vec<u8> = Vec::new();
        let size = i32::try_from(page_size).unwrap_or(i32::MAX);
        for page in 1..=MAX_PAGES {
            let control = RawControl::from(PagedResults {
                size,
                cookie: cookie.clone(),
            });
            let doing = format!("searching `{}` (page {page})", s.base);
            let result = match self
                .ldap
                .with_timeout(self.ep.timeout)
                .with_controls(vec![control])
                .search(s.base, s.scope, s.filter, s.attrs.to_vec())
                .await
            {
                Ok(result) => result,
                Err(e) => return Err(self.broken(&doing, e).await),
            };
            let ldap3::SearchResult(raw, status) = result;
            if status.rc != 0 {
                return Err(self.search_failed(s, &status, page_size));
            }
            let (page_entries, next) = decode_page(raw, &status).map_err(|why| {
                ConnectorError::BadData(format!(
                    "{}: page {page} of the search of `{}` could not be decoded ({why}); expected search entries and a paged-results cookie",
                    self.ep.what(),
                    s.base
                ))
            })?;
            entries.extend(page_entries);
            match next {
                // A server that ignores the (non-critical) control answers everything at once.
                None => return Ok(entries),
                Some(next) if next.is_empty() || first_page_only => return Ok(entries),
                Some(next) if next == cookie => {
                    return Err(ConnectorError::BadData(format!(
                        "{}: the paged search of `{}` contradicts itself: page {page} handed back the cookie it was asked with, so it would never end",
                        self.ep.what(),
                        s.base
                    )));
                }
                Some(next) => cookie = next,
            }
        }
        Err(ConnectorError::BadData(format!(
            "{}: the paged search of `{}` did not end after {MAX_PAGES} pages",
            self.ep.what(),
            s.base
        )))
    }

    /// An entry by DN (a base search), or `None` when it does not exist.
    pub(super) async fn lookup(
        &mut self,
        dn: &str,
        attrs: &[String],
    ) -> Result<Option<SearchEntry>, ConnectorError> {
        let doing = format!("reading `{dn}`");
        let result = match self
            .ldap
            .with_timeout(self.ep.timeout)
            .search(dn, Scope::Base, "(objectClass=*)", attrs.to_vec())
            .await
        {
            Ok(result) => result,
            Err(e) => return Err(self.broken(&doing, e).await),
        };
        let ldap3::SearchResult(raw, status) = result;
        if status.rc == 32 {
            return Ok(None);
        }
        if status.rc != 0 {
            let s = Search {
                base: dn,
                scope: Scope::Base,
                filter: "(objectClass=*)",
                attrs,
            };
            return Err(self.search_failed(&s, &status, 1));
        }
        let (mut entries, _) = decode_page(raw, &status).map_err(|why| {
            ConnectorError::BadData(format!(
                "{}: the entry `{dn}` could not be decoded ({why})",
                self.ep.what()
            ))
        })?;
        Ok(entries.pop())
    }

    fn search_failed(&self, s: &Search<'_>, r: &LdapResult, page_size: u32) -> ConnectorError {
        let what = self.ep.what();
        let base = s.base;
        let words = result_text(r);
        let rc = r.rc;
        match rc {
            32 => ConnectorError::NotFound {
                message: format!(
                    "{what}: the search base `{base}` does not exist (no such object, 32{}); check `base_dn` (and `group_base_dn`/`groups`)",
                    matched(r)
                ),
            },
            4 => ConnectorError::Rejected {
                status: None,
                vendor: Some(r.text.clone()),
                message: format!(
                    "{what}: the search of `{base}` hit the server's size limit (size limit exceeded, 4) with pages of {page_size}; set `page_size` below the server's limit, or the server refuses paging past its limit for this bind DN: ask its admin to lift the paged-results limit (OpenLDAP `olcLimits ... size.prtotal=unlimited`, Active Directory MaxPageSize) for it. Nothing was read, so nothing is planned from a partial list"
                ),
            },
            50 => ConnectorError::Permission {
                message: format!(
                    "{what}: insufficient access (50) to search `{base}`{}; grant the bind DN read (search) access to it, or bind as an account that has it",
                    self.ep
                        .bind
                        .as_ref()
                        .map(|(dn, _)| format!(" as `{dn}`"))
                        .unwrap_or_else(|| " anonymously".to_string())
                ),
            },
            12 => ConnectorError::Rejected {
                status: None,
                vendor: Some(r.text.clone()),
                message: format!(
                    "{what}: the server does not support the paged-results control needed to read `{base}` ({words}, 12); enable it on the server"
                ),
            },
            3 | 11 => ConnectorError::Unavailable(format!(
                "{what}: the search of `{base}` hit the server's time or admin limit ({words}, {rc}); narrow `filter`, lower `page_size` or ask the server's admin to raise the limit"
            )),
            87 => ConnectorError::Config(format!(
                "{what}: the server refused `filter` `{}` ({words}, 87); fix the filter",
                s.filter
            )),
            _ => ConnectorError::Rejected {
                status: None,
                vendor: Some(r.text.clone()),
                message: format!(
                    "{what}: the search of `{base}` failed ({words}, code {rc}); check `base_dn`, `filter` and the bind DN's rights"
                ),
            },
        }
    }

    /// Ends the session politely; a failure here changes nothing already read.
    pub(super) async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }
}

/// The entries of one answer and its paged-results cookie (`None`: no paged-results control).
/// ldap3 panics on malformed BER in these two places; a malformed answer is bad data, never a
/// crash, so both run under `catch_unwind`.
fn decode_page(
    raw: Vec<ldap3::ResultEntry>,
    status: &LdapResult,
) -> Result<(Vec<SearchEntry>, Option<Vec<u8>>), String> {
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        let entries: Vec<SearchEntry> = raw
            .into_iter()
            .filter(|e| !e.is_ref() && !e.is_intermediate())
            .map(SearchEntry::construct)
            .collect();
        let cookie = status
            .ctrls
            .iter()
            .find(|c| c.1.ctype == PAGED_RESULTS_OID)
            .and_then(|c| c.1.val.as_deref())
            .map(|v| PagedResults::parse(v).cookie);
        (entries, cookie)
    }))
    .map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "malformed BER".to_string())
    })
}

/// The server's words for a result code, or a generic phrase.
fn result_text(r: &LdapResult) -> String {
    let text = r.text.trim();
    if text.is_empty() {
        ldap3::LdapError::from(r.clone()).to_string()
    } else {
        text.chars().take(300).collect()
    }
}

fn matched(r: &LdapResult) -> String {
    if r.matched.is_empty() {
        String::new()
    } else {
        format!("; the deepest existing entry is `{}`", r.matched)
    }
}

/// The TLS error inside a connect failure, if that is what it was.
fn tls_failure(e: &LdapError) -> Option<String> {
    match e {
        LdapError::Rustls { source } => Some(source.to_string()),
        LdapError::DNSName { source } => Some(source.to_string()),
        LdapError::Io { source } => source
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .map(|t| t.to_string())
            .or_else(|| {
                (source.kind() == std::io::ErrorKind::InvalidData).then(|| source.to_string())
            }),
        _ => None,
    }
}
