//! The real OpenLDAP `slapd` the `ldap` source is tested against, started once per test binary
//! through `scripts/start-slapd.sh start` (which reuses an instance that is already running).
//! The seed data is read-only for tests; a test that writes creates its own OU with a unique
//! name ([`Slapd::new_ou`]). Missing slapd goes through [`super::missing_prerequisite`]:
//! a visible `SKIPPED:` line, or a failure under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use headcount::connectors::ldap::LdapConfig;
use headcount::connectors::spec::{BuildContext, SourceSpec};
use headcount::connectors::{ClientPool, ConnectorError, Source};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Mod};
use serde_json::Value;

pub const SUFFIX: &str = "dc=example,dc=com";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=com";
pub const ADMIN_PW: &str = "secret";
pub const PEOPLE: &str = "ou=people,dc=example,dc=com";
pub const AGENTS: &str = "cn=helpdesk-agents,ou=groups,dc=example,dc=com";
pub const READER_DN: &str = "uid=reader,ou=services,dc=example,dc=com";
pub const READER_PW: &str = "reader-secret";
pub const LIMITED_DN: &str = "uid=limited,ou=services,dc=example,dc=com";
pub const LIMITED_PW: &str = "limited-secret";
/// People in the seed's `ou=people`: 600 generated users plus alice..erin and frank.
pub const SEED_PEOPLE: usize = 606;

pub struct Slapd {
    pub port: u16,
    pub tls_port: u16,
    pub dir: PathBuf,
}

impl Slapd {
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.tls_port)
    }

    /// The CA that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }

    /// A connection bound as the admin (rootDN), for setting up a test's own OU.
    pub async fn admin(&self) -> Ldap {
        let (conn, mut ldap) = LdapConnAsync::with_settings(LdapConnSettings::new(), &self.url())
            .await
            .expect("connect to slapd");
        tokio::spawn(async move {
            let _ = conn.drive().await;
        });
        ldap.simple_bind(ADMIN_DN, ADMIN_PW)
            .await
            .expect("bind")
            .success()
            .expect("admin bind");
        ldap
    }

    /// Creates `ou=<label>-<unique>,dc=example,dc=com` with `ou=people` and `ou=groups` below
    /// it; returns its DN.
    pub async fn new_ou(&self, label: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let ou = format!("{label}-{}-{n}-{nanos}", std::process::id());
        let dn = format!("ou={ou},{SUFFIX}");
        let mut ldap = self.admin().await;
        add(
            &mut ldap,
            &dn,
            &[("objectClass", &["organizationalUnit"]), ("ou", &[&ou])],
        )
        .await;
        for sub in ["people", "groups"] {
            add(
                &mut ldap,
                &format!("ou={sub},{dn}"),
                &[("objectClass", &["organizationalUnit"]), ("ou", &[sub])],
            )
            .await;
        }
        let _ = ldap.unbind().await;
        dn
    }
}

/// Adds an entry; panics when the server refuses.
pub async fn add(ldap: &mut Ldap, dn: &str, attrs: &[(&str, &[&str])]) {
    let attrs: Vec<(&str, std::collections::HashSet<&str>)> = attrs
        .iter()
        .map(|(k, v)| (*k, v.iter().copied().collect()))
        .collect();
    ldap.add(dn, attrs)
        .await
        .unwrap_or_else(|e| panic!("add {dn}: {e}"))
        .success()
        .unwrap_or_else(|e| panic!("add {dn}: {e}"));
}

/// Adds a person `uid=<uid>` below `people` (mail left out when `None`).
pub async fn add_person(
    ldap: &mut Ldap,
    people: &str,
    uid: &str,
    given: &str,
    sn: &str,
    mail: Option<&str>,
) {
    let cn = format!("{given} {sn}");
    let cn = cn.as_str();
    let mut attrs: Vec<(&str, &[&str])> = vec![
        ("objectClass", &["inetOrgPerson"]),
        ("uid", std::slice::from_ref(&uid)),
        ("cn", std::slice::from_ref(&cn)),
        ("givenName", std::slice::from_ref(&given)),
        ("sn", std::slice::from_ref(&sn)),
    ];
    let mail_value;
    if let Some(m) = mail {
        mail_value = [m];
        attrs.push(("mail", &mail_value));
    }
    add(ldap, &format!("uid={uid},{people}"), &attrs).await;
}

/// Replaces `attr` of `dn` with `values`.
pub async fn replace(ldap: &mut Ldap, dn: &str, attr: &str, values: &[&str]) {
    let set: std::collections::HashSet<&str> = values.iter().copied().collect();
    ldap.modify(dn, vec![Mod::Replace(attr, set)])
        .await
        .unwrap_or_else(|e| panic!("modify {dn}: {e}"))
        .success()
        .unwrap_or_else(|e| panic!("modify {dn}: {e}"));
}

/// Removes `value` from `attr` of `dn`.
pub async fn remove_value(ldap: &mut Ldap, dn: &str, attr: &str, value: &str) {
    let set: std::collections::HashSet<&str> = [value].into_iter().collect();
    ldap.modify(dn, vec![Mod::Delete(attr, set)])
        .await
        .unwrap_or_else(|e| panic!("modify {dn}: {e}"))
        .success()
        .unwrap_or_else(|e| panic!("modify {dn}: {e}"));
}

/// An `ldap` source built from a JSON config (as the YAML would hold it) in `dir`.
pub fn build(config: Value, dir: &Path) -> Result<Box<dyn Source>, ConnectorError> {
    let cfg: LdapConfig = serde_json::from_value(config).expect("ldap config");
    let pool = ClientPool::default();
    let cx = BuildContext::new(dir, &pool);
    cfg.build("directory", &cx)
}

/// Writes `password` to `dir/name` and returns the `{ file: }` reference to it.
pub fn password_file(dir: &Path, name: &str, password: &str) -> Value {
    std::fs::write(dir.join(name), password).expect("write password file");
    serde_json::json!({ "file": name })
}

/// The shared server, started on first use; `None` when slapd is missing outside CI.
pub fn server() -> Option<&'static Slapd> {
    static SERVER: OnceLock<Result<Slapd, Start>> = OnceLock::new();
    match SERVER.get_or_init(start) {
        Ok(s) => Some(s),
        Err(Start::Missing(why)) => {
            super::missing_prerequisite(why);
            None
        }
        Err(Start::Failed(e)) => panic!("{e}"),
    }
}

enum Start {
    Missing(String),
    Failed(String),
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn start() -> Result<Slapd, Start> {
    let installed = ["/usr/sbin/slapd", "/usr/bin/ldapadd"]
        .iter()
        .all(|p| Path::new(p).exists());
    if !installed {
        return Err(Start::Missing(
            "OpenLDAP slapd is not installed: run ./scripts/start-slapd.sh install (as root)"
                .to_string(),
        ));
    }
    let port: u16 = env_or("HEADCOUNT_SLAPD_PORT", "18389")
        .parse()
        .unwrap_or(18389);
    let tls_port: u16 = env_or("HEADCOUNT_SLAPDS_PORT", "18636")
        .parse()
        .unwrap_or(18636);
    let dir = PathBuf::from(env_or("HEADCOUNT_SLAPD_DIR", "/tmp/headcount-it/slapd"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/start-slapd.sh");
    let out = Command::new(&script)
        .arg("start")
        .env("HEADCOUNT_SLAPD_PORT", port.to_string())
        .env("HEADCOUNT_SLAPDS_PORT", tls_port.to_string())
        .env("HEADCOUNT_SLAPD_DIR", &dir)
        .output()
        .map_err(|e| Start::Failed(format!("run {}: {e}", script.display())))?;
    if !out.status.success() {
        return Err(Start::Failed(format!(
            "{} start failed ({}):\n{}\n{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(Slapd {
        port,
        tls_port,
        dir,
    })
}
