//! RS256 JWTs, signed with ring (the crypto backend rustls already builds), and certificate
//! credentials for Entra ID. A JWT is three base64url segments; we only sign our own
//! assertions, never verify foreign tokens, so no JWT crate is needed for it.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::AuthError;

/// Lifetime of a client assertion: long enough for clock skew, short since it is a bearer
/// credential while it lives.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(600);

/// An RSA private key that signs RS256 JWTs.
pub(crate) struct RsaSigner {
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RsaSigner([redacted])")
    }
}

fn unusable(reference: &str, reason: impl Into<String>) -> AuthError {
    AuthError::Unusable {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

/// The PEM blocks of `text`. Parse errors are not passed on: they may quote key bytes.
fn pem_blocks(text: &str, reference: &str) -> Result<Vec<pem::Pem>, AuthError> {
    let blocks = pem::parse_many(text).map_err(|_| {
        unusable(
            reference,
            "is not valid PEM (expected -----BEGIN ...----- blocks)",
        )
    })?;
    if blocks.is_empty() {
        return Err(unusable(
            reference,
            "holds no PEM block (expected -----BEGIN PRIVATE KEY-----)",
        ));
    }
    Ok(blocks)
}

impl RsaSigner {
    /// The first private key in `pem_text`: PKCS#8 (`PRIVATE KEY`, as Google's keys are) or
    /// PKCS#1 (`RSA PRIVATE KEY`).
    pub(crate) fn from_pem(pem_text: &str, reference: &str) -> Result<Self, AuthError> {
        let blocks = pem_blocks(pem_text, reference)?;
        let rejected = |e: ring::error::KeyRejected| {
            unusable(
                reference,
                format!("the private key is not a usable RSA key ({e})"),
            )
        };
        for block in &blocks {
            let key = match block.tag() {
                "PRIVATE KEY" => RsaKeyPair::from_pkcs8(block.contents()).map_err(rejected)?,
                "RSA PRIVATE KEY" => RsaKeyPair::from_der(block.contents()).map_err(rejected)?,
                "ENCRYPTED PRIVATE KEY" => {
                    return Err(unusable(
                        reference,
                        "the private key is encrypted: give it without a passphrase",
                    ));
                }
                "EC PRIVATE KEY" => {
                    return Err(unusable(
                        reference,
                        "the private key is an EC key: only RSA keys (RS256) are supported",
                    ));
                }
                _ => continue,
            };
            return Ok(RsaSigner {
                key,
                rng: SystemRandom::new(),
            });
        }
        Err(unusable(
            reference,
            "holds no private key (expected -----BEGIN PRIVATE KEY-----)",
        ))
    }

    /// `header.claims.signature`, each base64url without padding.
    pub(crate) fn sign(
        &self,
        header: &Value,
        claims: &Value,
        reference: &str,
    ) -> Result<SecretString, AuthError> {
        let mut jwt = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, jwt.as_bytes(), &mut sig)
            .map_err(|_| unusable(reference, "signing the JWT with the private key failed"))?;
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(sig));
        Ok(SecretString::from(jwt))
    }

    /// The public key (DER `RSAPublicKey`), for tests that verify signatures.
    #[cfg(test)]
    pub(crate) fn public_key_der(&self) -> Vec<u8> {
        use ring::signature::KeyPair as _;
        self.key.public_key().as_ref().to_vec()
    }
}

/// Seconds since the Unix epoch, for `iat`/`exp`. Wall-clock time: the token endpoint checks
/// it against its own clock.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A certificate credential (Entra ID app registration): the private key signs a client
/// assertion whose header names the certificate by its thumbprints.
pub struct Certificate {
    signer: RsaSigner,
    x5t: String,
    x5t_s256: String,
    reference: String,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Certificate({}, x5t#S256={})",
            self.reference, self.x5t_s256
        )
    }
}

impl Certificate {
    /// From one PEM text holding both the private key and the certificate (as Azure exports
    /// them). `reference` names it in errors (a path, or ``client_certificate` ({ env: X })``).
    pub fn from_pem(pem: &SecretString, reference: impl Into<String>) -> Result<Self, AuthError> {
        Self::from_pem_parts(pem, pem.expose_secret(), reference)
    }

    /// From the private key and the certificate in separate PEM texts. The thumbprints are of
    /// the first `CERTIFICATE` block (the leaf).
    pub fn from_pem_parts(
        key_pem: &SecretString,
        cert_pem: &str,
        reference: impl Into<String>,
    ) -> Result<Self, AuthError> {
        let reference = reference.into();
        let signer = RsaSigner::from_pem(key_pem.expose_secret(), &reference)?;
        let cert = pem_blocks(cert_pem, &reference)?
            .into_iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .ok_or_else(|| {
                unusable(
                    &reference,
                    "holds no certificate (expected -----BEGIN CERTIFICATE-----)",
                )
            })?;
        Ok(Certificate {
            signer,
            x5t: URL_SAFE_NO_PAD.encode(Sha1::digest(cert.contents())),
            x5t_s256: URL_SAFE_NO_PAD.encode(Sha256::digest(cert.contents())),
            reference,
        })
    }

    /// base64url SHA-1 thumbprint of the certificate's DER (the `x5t` header).
    pub fn x5t(&self) -> &str {
        &self.x5t
    }

    /// base64url SHA-256 thumbprint of the certificate's DER (the `x5t#S256` header).
    pub fn x5t_s256(&self) -> &str {
        &self.x5t_s256
    }

    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// A client assertion for `client_id` at the token endpoint `audience` (RFC 7523 §3):
    /// `iss` = `sub` = client id, a fresh `jti`, valid for ten minutes.
    pub(crate) fn assertion(
        &self,
        client_id: &str,
        audience: &str,
    ) -> Result<SecretString, AuthError> {
        let now = unix_now();
        let header = json!({
            "alg": "RS256",
            "typ": "JWT",
            "x5t": self.x5t,
            "x5t#S256": self.x5t_s256,
        });
        let claims = json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME.as_secs(),
        });
        self.signer.sign(&header, &claims, &self.reference)
    }
}
