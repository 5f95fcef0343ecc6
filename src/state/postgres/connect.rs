//! Connecting to the PostgreSQL state: the URL (a secret: it holds the password) parsed into a
//! driver config, `sslmode` honoured with rustls, and every driver message scrubbed of the
//! password before it reaches an error or a log line.
//!
//! `sslmode`: `disable` (plain TCP), `prefer` (the default: TLS when the server offers it),
//! `require`, `verify-ca` and `verify-full` (TLS or nothing). With rustls a TLS connection always
//! verifies the server's certificate chain and name, so `require` is as strict as
//! `verify-full`; `sslrootcert=PATH` names the CA file (the system's roots otherwise).

use std::str::FromStr;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::config::{Host, SslMode};

use crate::state::error::StateError;

/// A parsed connection URL and what is needed to connect and to scrub messages.
pub(super) struct Target {
    config: tokio_postgres::Config,
    /// The CA file of `sslrootcert`, if any.
    root_cert: Option<String>,
    /// The secrets to remove from any driver message: the password and the whole URL.
    secrets: Vec<String>,
    /// `postgres://host:port/db`, without user or password, for messages.
    pub(super) server: String,
}

impl Target {
    /// Parses `url`. A parse error never quotes the URL (it holds the password).
    pub(super) fn parse(url: &SecretString, what: &str) -> Result<Target, StateError> {
        let url = url.expose_secret().trim();
        let config_err = |detail: String| StateError::DatabaseConfig {
            location: what.to_string(),
            detail,
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(config_err(
                "`state.url` must be a URL starting with postgres:// or postgresql:// \
                 (postgres://user:password@host:port/database?sslmode=require)"
                    .to_string(),
            ));
        }
        // The driver knows neither `verify-*` (rustls always verifies) nor `sslrootcert`.
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let mut root_cert = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", "verify-ca" | "verify-full")) => kept.push("sslmode=require"),
                Some(("sslrootcert", path)) => root_cert = Some(percent_decode(path)),
                _ => kept.push(pair),
            }
        }
        let rewritten = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let config = tokio_postgres::Config::from_str(&rewritten).map_err(|e| {
            config_err(format!(
                "`state.url` is not a valid PostgreSQL URL ({}); it must look like \
                 postgres://user:password@host:port/database?sslmode=require",
                scrub_all(&e.to_string(), &[url.to_string()])
            ))
        })?;
        let mut secrets = vec![url.to_string(), rewritten];
        if let Some(p) = config.get_password() {
            let p = String::from_utf8_lossy(p).into_owned();
            if !p.is_empty() {
                secrets.push(p);
            }
        }
        if let Some((_, after_scheme)) = base.split_once("://")
            && let Some((userinfo, _)) = after_scheme.rsplit_once('@')
            && let Some((_, raw)) = userinfo.split_once(':')
            && !raw.is_empty()
        {
            // The password as written in the URL (percent-encoded), too.
            secrets.push(raw.to_string());
        }
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let host = config
            .get_hosts()
            .first()
            .map(|h| match h {
                Host::Tcp(h) => h.clone(),
                #[cfg(unix)]
                Host::Unix(p) => p.display().to_string(),
            })
            .unwrap_or_else(|| "localhost".to_string());
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let db = config
            .get_dbname()
            .map(str::to_string)
            .or_else(|| config.get_user().map(str::to_string))
            .unwrap_or_else(|| "postgres".to_string());
        Ok(Target {
            server: format!("postgres://{host}:{port}/{db}"),
            config,
            root_cert,
            secrets,
        })
    }

    /// The URL and its password (decoded and as written), longest first.
    pub(super) fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// Removes the URL and its password from `text`.
    pub(super) fn scrub(&self, text: &str) -> String {
        scrub_all(text, &self.secrets)
    }

    /// Opens one session; its connection task runs until the client is dropped.
    pub(super) async fn connect(
        &self,
        location: &str,
    ) -> Result<tokio_postgres::Client, StateError> {
        let failed = |e: tokio_postgres::Error| StateError::Database {
            location: location.to_string(),
            action: "connect",
            detail: self.scrub(&error_text(&e)),
        };
        let client = match self.config.get_ssl_mode() {
            SslMode::Disable => {
                let (client, connection) = self
                    .config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(failed)?;
                spawn(connection, self.secrets.clone());
                client
            }
            _ => {
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.tls_config(location)?);
                let (client, connection) = self.config.connect(tls).await.map_err(failed)?;
                spawn(connection, self.secrets.clone());
                client
            }
        };
        Ok(client)
    }

    fn tls_config(&self, location: &str) -> Result<rustls::ClientConfig, StateError> {
        let bad = |detail: String| StateError::DatabaseConfig {
            location: location.to_string(),
            detail,
        };
        let mut roots = RootCertStore::empty();
        match &self.root_cert {
            Some(path) => {
                let text = std::fs::read(path)
                    .map_err(|e| bad(format!("`sslrootcert` {path} cannot be read: {e}")))?;
                let blocks = pem::parse_many(&text)
                    .map_err(|e| bad(format!("`sslrootcert` {path} is not PEM ({e})")))?;
                for block in blocks.iter().filter(|b| b.tag() == "CERTIFICATE") {
                    roots
                        .add(CertificateDer::from(block.contents().to_vec()))
                        .map_err(|e| bad(format!("`sslrootcert` {path}: {e}")))?;
                }
                if roots.is_empty() {
                    return Err(bad(format!("`sslrootcert` {path} holds no CERTIFICATE")));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }
}

/// Drives a connection in the background; its end (the client dropped, the server gone) is
/// logged at debug level, scrubbed.
fn spawn<S, T>(connection: tokio_postgres::Connection<S, T>, secrets: Vec<String>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(
                "PostgreSQL state connection ended: {}",
                scrub_all(&error_text(&e), &secrets)
            );
        }
    });
}

/// The driver's message with its cause (the server's own message for a database error).
pub(super) fn error_text(e: &tokio_postgres::Error) -> String {
    // 57P01: the session was terminated (`headcount state unlock` from another run, or an admin).
    let terminated = e
        .as_db_error()
        .is_some_and(|db| db.code().code() == "57P01");
    if e.is_closed() || terminated {
        return format!(
            "{e}: the database session was ended (by `headcount state unlock`, an administrator \
             or a server restart), and the state lock with it; nothing more was written, and \
             what was journalled before is folded in by the next apply"
        );
    }
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

fn scrub_all(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s.as_str(), crate::model::scrub::REDACTED);
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Target, StateError> {
        Target::parse(&SecretString::from(url.to_string()), "state")
    }

    /// The password never shows in the server name, and scrubbing removes it in both forms.
    #[test]
    fn the_password_is_scrubbed_and_never_in_the_location() {
        let t =
            parse("postgres://hc:s3cr%40t-pw@db.example:6543/hcstate?sslmode=verify-full").unwrap();
        assert_eq!(t.server, "postgres://db.example:6543/hcstate");
        assert_eq!(t.config.get_ssl_mode(), SslMode::Require);
        let text = t.scrub("auth failed for s3cr@t-pw and s3cr%40t-pw");
        assert!(!text.contains("s3cr"), "{text}");
    }

    /// A bad URL is refused without quoting it.
    #[test]
    fn a_bad_url_is_refused_without_quoting_it() {
        let e = parse("mysql://u:hunter22@h/db").err().unwrap().to_string();
        assert!(!e.contains("hunter22") && e.contains("postgres://"), "{e}");
        let e = parse("postgres://u:hunter22@h/db?sslmode=sometimes")
            .err()
            .unwrap()
            .to_string();
        assert!(!e.contains("hunter22") && e.contains("sslmode"), "{e}");
    }

    /// `sslmode` is honoured: disable stays plain, `sslrootcert` is taken out for rustls.
    #[test]
    fn sslmode_and_sslrootcert_are_understood() {
        let t = parse("postgres://u@h/db?sslmode=disable").unwrap();
        assert_eq!(t.config.get_ssl_mode(), SslMode::Disable);
        let t = parse("postgres://u@h/db?sslrootcert=%2Ftmp%2Fca.pem&sslmode=require").unwrap();
        assert_eq!(t.root_cert.as_deref(), Some("/tmp/ca.pem"));
        assert_eq!(t.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(
            parse("postgres://u@h/db").unwrap().config.get_ssl_mode(),
            SslMode::Prefer
        );
    }

    /// The run's scrubber learns the URL and its password in both spellings.
    #[test]
    fn url_secrets_hold_the_password_in_both_spellings() {
        let s = super::super::url_secrets(&SecretString::from(
            "postgres://u:p%40ss-word@h/db".to_string(),
        ));
        assert!(s.contains(&"p@ss-word".to_string()), "{s:?}");
        assert!(s.contains(&"p%40ss-word".to_string()), "{s:?}");
    }
}
