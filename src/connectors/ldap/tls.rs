//! The TLS configuration of `ldaps://` and StartTLS: the system's roots, or the CAs of
//! `ca_file` when set. Certificate and name verification are never turned off: there is no
//! option for it, so a test server needs its CA in `ca_file`.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;

use crate::model::ConnectorError;

/// At most this much of a CA file is read (a bundle of a few hundred certificates).
const MAX_CA_FILE: u64 = 4 * 1024 * 1024;

/// A client configuration trusting `ca_file`'s certificates, or the system's roots.
pub(super) fn client_config(
    source: &str,
    ca_file: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, ConnectorError> {
    let roots = match ca_file {
        Some(path) => file_roots(source, path)?,
        None => system_roots(source)?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectorError::Config(format!("source `{source}`: TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn file_roots(source: &str, path: &Path) -> Result<RootCertStore, ConnectorError> {
    let shown = path.display();
    let bad = |why: String| {
        ConnectorError::Config(format!(
            "source `{source}`: `ca_file` {shown}: {why}; it must be a PEM file holding the CA certificate(s) that signed the LDAP server's certificate"
        ))
    };
    let text = crate::util::read_bounded(path, MAX_CA_FILE).map_err(|e| match e {
        crate::util::BoundedRead::NotAFile => bad("not a regular file".to_string()),
        crate::util::BoundedRead::TooLarge => bad(format!("larger than {MAX_CA_FILE} bytes")),
        crate::util::BoundedRead::Io(e) => bad(e.to_string()),
    })?;
    let blocks = pem::parse_many(&text).map_err(|e| bad(format!("not PEM ({e})")))?;
    let mut roots = RootCertStore::empty();
    for block in blocks.iter().filter(|b| b.tag() == "CERTIFICATE") {
        roots
            .add(CertificateDer::from(block.contents().to_vec()))
            .map_err(|e| bad(format!("a certificate was refused ({e})")))?;
    }
    if roots.is_empty() {
        return Err(bad("no CERTIFICATE block found".to_string()));
    }
    Ok(roots)
}

fn system_roots(source: &str) -> Result<RootCertStore, ConnectorError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(ConnectorError::Config(format!(
            "source `{source}`: no system CA certificates could be loaded{why}; install the system's CA bundle (ca-certificates) or set `ca_file` to the CA that signed the LDAP server's certificate"
        )));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let err = client_config("dir", Some(&path)).unwrap_err().to_string();
        assert!(err.contains("`ca_file`"), "{err}");
        assert!(err.contains("no CERTIFICATE block"), "{err}");
        let missing = client_config("dir", Some(&dir.path().join("nope.pem")))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("nope.pem"), "{missing}");
    }
}
