//! Certificates: the fleet's trust anchor and per-cluster issuers, made with rcgen and
//! read back with x509-parser.
//!
//! Linkerd's rules (reference section 6.3): the issuer must be an ECDSA P-256 CA that
//! chains to an anchor; anchors are CAs (ECDSA P-256 or RSA 2048/4096) whose path
//! length allows one intermediate. ECDSA signatures are randomised, so certificates are
//! made once by `certs init` and only read by `render`, which stays deterministic.

pub mod keys;
pub mod sops;

use std::fmt::Write as _;

use ::time::{Duration, OffsetDateTime};
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber,
};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, Pem, X509Certificate};

use meshfleet_fleet::sensitive::PemMistake;

/// Common name of the fleet's trust anchor (Linkerd's convention).
pub const ANCHOR_COMMON_NAME: &str = "root.linkerd.cluster.local";
/// Lifetime of a trust anchor made by `certs init`.
pub const ANCHOR_LIFETIME_DAYS: i64 = 3650;
/// Lifetime of a static issuer made by `certs init`.
pub const ISSUER_LIFETIME_DAYS: i64 = 365;
/// Below this many days left, anchors and issuers get a warning (as `linkerd check`).
pub const EXPIRY_WARNING_DAYS: i64 = 60;

/// Errors of certificate generation and parsing. None holds the text of the input:
/// a PEM problem is a block number and a [`PemMistake`]. Reports that hold an error as
/// one line use [`meshfleet_fleet::diagnostic::error_chain`].
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// rcgen refused to build or sign a certificate.
    #[error("cannot create the certificate")]
    Generate(#[from] rcgen::Error),
    /// A private key that cannot be used.
    #[error("{what} cannot be used")]
    Key {
        /// Which key, e.g. "the trust anchor's private key".
        what: &'static str,
        /// What is wrong with it.
        #[source]
        mistake: PemMistake,
    },
    /// A block of a PEM bundle that does not decode.
    #[error("block {block} is not valid PEM")]
    Pem {
        /// 1-based block number.
        block: usize,
        /// What is wrong with it.
        #[source]
        mistake: PemMistake,
    },
    /// A PEM block that is not a certificate (a key pasted into a bundle, ...).
    #[error("block {block} is {kind}, not a CERTIFICATE")]
    NotACertificate {
        /// 1-based block number.
        block: usize,
        /// What it is instead, when it is a well-known kind.
        kind: String,
    },
    /// A certificate block whose DER does not parse.
    #[error("certificate {index} cannot be parsed: {problem}")]
    Certificate {
        /// 1-based block number.
        index: usize,
        /// x509-parser's description of the DER problem (structure, never bytes).
        #[source]
        problem: DerError,
    },
    /// No certificate at all.
    #[error("no PEM certificate found")]
    Empty,
    /// The anchor cannot be loaded to sign an issuer.
    #[error("the trust anchor cannot sign")]
    Anchor(#[source] PemMistake),
    /// The anchor's end of validity is outside what can be represented.
    #[error("the trust anchor's validity cannot be read")]
    Validity(#[from] ::time::error::ComponentRange),
}

/// A freshly made certificate and its private key.
pub struct KeyedCertificate {
    /// The public certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8); never printed, written 0600.
    pub key_pem: SecretString,
}

impl std::fmt::Debug for KeyedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedCertificate")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // A positive INTEGER that keeps its length: clear the top bit, set the next one.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn ca_params(
    common_name: &str,
    path_len: u8,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial());
    params
}

/// Make the fleet's trust anchor: ECDSA P-256, CA, path length 1, 10 years.
pub fn generate_anchor(now: OffsetDateTime) -> Result<KeyedCertificate, IdentityError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    // Backdate a little so clocks that lag behind still accept it.
    let params = ca_params(
        ANCHOR_COMMON_NAME,
        1,
        now - Duration::minutes(5),
        now + Duration::days(ANCHOR_LIFETIME_DAYS),
    );
    let cert = params.self_signed(&key)?;
    Ok(KeyedCertificate {
        cert_pem: cert.pem(),
        key_pem: SecretString::from(key.serialize_pem()),
    })
}

/// Make a static identity issuer signed by the anchor: ECDSA P-256, CA, path length 0,
/// one year (never past the anchor's own end).
pub fn generate_issuer(
    anchor_cert_pem: &str,
    anchor_key_pem: &SecretString,
    issuer_common_name: &str,
    now: OffsetDateTime,
) -> Result<KeyedCertificate, IdentityError> {
    let anchor_key = KeyPair::from_pem(anchor_key_pem.expose_secret()).map_err(|e| IdentityError::Key {
        what: "the trust anchor's private key",
        mistake: PemMistake::from_rcgen(&e),
    })?;
    let anchor_info = parse_pem_bundle(anchor_cert_pem)?
        .into_iter()
        .next()
        .ok_or(IdentityError::Empty)?;
    let anchor_end = OffsetDateTime::from_unix_timestamp(anchor_info.not_after)?;
    let issuer = Issuer::from_ca_cert_pem(anchor_cert_pem, anchor_key)
        .map_err(|e| IdentityError::Anchor(PemMistake::from_rcgen(&e)))?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = ca_params(
        issuer_common_name,
        0,
        now - Duration::minutes(5),
        (now + Duration::days(ISSUER_LIFETIME_DAYS)).min(anchor_end),
    );
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(KeyedCertificate {
        cert_pem: cert.pem(),
        key_pem: SecretString::from(key.serialize_pem()),
    })
}

/// The public key of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA on P-256 (what Linkerd requires of issuers).
    EcdsaP256,
    /// ECDSA on another curve.
    Ecdsa(String),
    /// RSA with this many bits.
    Rsa(usize),
    /// Anything else.
    Other(String),
}

impl std::fmt::Display for KeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EcdsaP256 => f.write_str("ECDSA P-256"),
            Self::Ecdsa(curve) => write!(f, "ECDSA ({curve})"),
            Self::Rsa(bits) => write!(f, "RSA {bits}"),
            Self::Other(oid) => write!(f, "unknown ({oid})"),
        }
    }
}

/// What meshfleet reads from one certificate.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// Subject, RFC 4514 style.
    pub subject: String,
    /// Issuer, RFC 4514 style.
    pub issuer: String,
    /// Public key type.
    pub key_type: KeyType,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// BasicConstraints CA flag.
    pub is_ca: bool,
    /// BasicConstraints path length, when set.
    pub path_len: Option<u32>,
    /// Whether a KeyUsage extension is present and allows certificate signing.
    pub key_cert_sign: Option<bool>,
    /// Whether an ExtendedKeyUsage extension is present and allows serverAuth (or any).
    pub eku_server_auth: Option<bool>,
    /// Lowercase hex SHA-256 of the DER, colon separated.
    pub sha256: String,
    /// The DER bytes.
    pub der: Vec<u8>,
}

impl CertInfo {
    /// Whole days from `now` until the end of validity (negative when expired).
    pub fn days_left(&self, now: OffsetDateTime) -> i64 {
        (self.not_after - now.unix_timestamp()).div_euclid(86_400)
    }

    /// Whether `now` is inside the validity period.
    pub fn valid_at(&self, now: OffsetDateTime) -> bool {
        let t = now.unix_timestamp();
        self.not_before <= t && t <= self.not_after
    }

    /// Whether the certificate is self-signed (subject equals issuer and it verifies
    /// with its own key).
    pub fn is_self_signed(&self) -> bool {
        self.subject == self.issuer && signed_by(&self.der, &self.der)
    }
}

/// Format seconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn format_time(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix).map_or_else(
        |_| unix.to_string(),
        |t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        },
    )
}

impl meshfleet_fleet::diagnostic::Hint for IdentityError {
    fn hint(&self) -> Option<String> {
        // Which file or Secret the certificate or key came from, and so its fix, is known
        // to the caller (`KeysError`, `SyncError`, the `issuer-valid` check).
        None
    }
}

/// Why DER bytes are not a certificate meshfleet can read: x509-parser's description
/// of the structure, never the bytes.
#[derive(Debug, thiserror::Error)]
pub enum DerError {
    /// The certificate itself does not parse.
    #[error("{0}")]
    Structure(#[source] x509_parser::nom::Err<x509_parser::error::X509Error>),
    /// An extension meshfleet reads (basic constraints, key usage, extended key usage)
    /// does not parse.
    #[error("{0}")]
    Extension(#[source] x509_parser::error::X509Error),
}

impl meshfleet_fleet::diagnostic::Hint for DerError {
    fn hint(&self) -> Option<String> {
        // See `IdentityError`: the caller knows where the certificate came from.
        None
    }
}

/// Parse a PEM bundle of certificates. Anything that is not a CERTIFICATE block (a
/// private key, junk) is an error, because Linkerd's parser stops or fails on it.
pub fn parse_pem_bundle(text: &str) -> Result<Vec<CertInfo>, IdentityError> {
    let mut certs = Vec::new();
    for (index, pem) in Pem::iter_from_buffer(text.as_bytes()).enumerate() {
        let block = index + 1;
        let pem = pem.map_err(|e| IdentityError::Pem {
            block,
            mistake: PemMistake::from_x509(&e),
        })?;
        if pem.label != "CERTIFICATE" {
            return Err(IdentityError::NotACertificate {
                block,
                kind: block_kind(&pem.label),
            });
        }
        certs.push(
            cert_info(&pem.contents).map_err(|problem| IdentityError::Certificate {
                index: block,
                problem,
            })?,
        );
    }
    if certs.is_empty() {
        return Err(IdentityError::Empty);
    }
    Ok(certs)
}

/// A PEM label in words: the well-known ones by name (`PRIVATE KEY` tells the user a
/// key was pasted), anything else without repeating it, since it is the file's text.
fn block_kind(label: &str) -> String {
    const KNOWN: [&str; 8] = [
        "PRIVATE KEY",
        "EC PRIVATE KEY",
        "RSA PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "PUBLIC KEY",
        "CERTIFICATE REQUEST",
        "X509 CRL",
        "EC PARAMETERS",
    ];
    if KNOWN.contains(&label) {
        format!("a `{label}`")
    } else {
        "another kind of PEM block".to_string()
    }
}

/// Read one DER certificate.
pub fn cert_info(der: &[u8]) -> Result<CertInfo, DerError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(DerError::Structure)?;
    let bc = cert.basic_constraints().map_err(DerError::Extension)?;
    let ku = cert.key_usage().map_err(DerError::Extension)?;
    let eku = cert.extended_key_usage().map_err(DerError::Extension)?;
    let spki = cert.public_key();
    let key_type = match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => KeyType::Rsa(rsa.key_size()),
        Ok(x509_parser::public_key::PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string())
                .unwrap_or_default();
            if curve == "1.2.840.10045.3.1.7" {
                KeyType::EcdsaP256
            } else {
                KeyType::Ecdsa(curve)
            }
        }
        _ => KeyType::Other(spki.algorithm.algorithm.to_id_string()),
    };
    let digest = Sha256::digest(der);
    let mut sha256 = String::with_capacity(95);
    for (i, b) in digest.iter().enumerate() {
        if i > 0 {
            sha256.push(':');
        }
        let _ = write!(sha256, "{b:02x}");
    }
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        key_type,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        is_ca: bc.as_ref().is_some_and(|b| b.value.ca),
        path_len: bc.and_then(|b| b.value.path_len_constraint),
        key_cert_sign: ku.map(|k| k.value.key_cert_sign()),
        eku_server_auth: eku.map(|e| e.value.server_auth || e.value.any),
        sha256,
        der: der.to_vec(),
    })
}

/// Whether `cert_der` carries a valid signature by the key of `issuer_der`, and names it
/// as its issuer.
pub fn signed_by(cert_der: &[u8], issuer_der: &[u8]) -> bool {
    let (Ok((_, cert)), Ok((_, issuer))) = (
        X509Certificate::from_der(cert_der),
        X509Certificate::from_der(issuer_der),
    ) else {
        return false;
    };
    cert.issuer() == issuer.subject() && cert.verify_signature(Some(issuer.public_key())).is_ok()
}

/// The anchor (from `anchors`) that `chain` leads to: the first certificate is the leaf
/// or issuer, the rest intermediates. `None` when it does not chain to any of them.
pub fn chains_to<'a>(chain: &[CertInfo], anchors: &'a [CertInfo]) -> Option<&'a CertInfo> {
    let mut current = chain.first()?;
    for _ in 0..=chain.len() {
        if let Some(anchor) = anchors.iter().find(|a| signed_by(&current.der, &a.der)) {
            return Some(anchor);
        }
        if anchors.iter().any(|a| a.der == current.der) {
            return anchors.iter().find(|a| a.der == current.der);
        }
        current = chain
            .iter()
            .find(|c| c.der != current.der && signed_by(&current.der, &c.der))?;
    }
    None
}

/// Whether `key_pem` is a private key meshfleet can use; what is wrong with it if not,
/// without any of its text.
pub fn check_private_key(key_pem: &SecretString) -> Result<(), PemMistake> {
    KeyPair::from_pem(key_pem.expose_secret())
        .map(drop)
        .map_err(|e| PemMistake::from_rcgen(&e))
}

/// Whether a private key PEM belongs to a certificate.
pub fn key_matches(cert: &CertInfo, key_pem: &SecretString) -> bool {
    let Ok(key) = KeyPair::from_pem(key_pem.expose_secret()) else {
        return false;
    };
    let Ok((_, parsed)) = X509Certificate::from_der(&cert.der) else {
        return false;
    };
    let spki_raw = parsed.public_key().subject_public_key.data.as_ref();
    spki_raw == key.public_key_raw()
}

/// A bundle as PEM, re-encoded from the DER, so that whatever surrounded the blocks in
/// the ConfigMap (comments, blank lines Linkerd's parser trips over) is gone.
pub fn pem_bundle(certs: &[CertInfo]) -> String {
    let mut out = String::new();
    for cert in certs {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let encoded = base64::engine::general_purpose::STANDARD.encode(&cert.der);
        let mut rest = encoded.as_str();
        while !rest.is_empty() {
            let (line, tail) = rest.split_at(rest.len().min(64));
            out.push_str(line);
            out.push('\n');
            rest = tail;
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// A SHA-256 fingerprint in the form [`CertInfo::sha256`] has (lowercase hex, `:` between
/// bytes), from any case, with or without colons; `None` when it is not 32 bytes of hex.
pub fn normalise_fingerprint(text: &str) -> Option<String> {
    let hex: String = text.trim().chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let hex = hex.to_ascii_lowercase();
    let bytes: Vec<&str> = (0..32).map(|i| &hex[i * 2..i * 2 + 2]).collect();
    Some(bytes.join(":"))
}

/// The first 8 bytes of a fingerprint, for messages and file names.
pub fn short(fingerprint: &str) -> String {
    fingerprint.chars().take(23).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_and_issuer_chain() {
        let now = OffsetDateTime::now_utc();
        let anchor = generate_anchor(now).unwrap();
        let issuer = generate_issuer(
            &anchor.cert_pem,
            &anchor.key_pem,
            "identity.linkerd.cluster.local",
            now,
        )
        .unwrap();
        let anchors = parse_pem_bundle(&anchor.cert_pem).unwrap();
        let issuers = parse_pem_bundle(&issuer.cert_pem).unwrap();
        assert_eq!(anchors[0].key_type, KeyType::EcdsaP256);
        assert!(anchors[0].is_ca);
        assert_eq!(anchors[0].path_len, Some(1));
        assert_eq!(issuers[0].path_len, Some(0));
        assert!(anchors[0].is_self_signed());
        assert!(chains_to(&issuers, &anchors).is_some());
        assert!(key_matches(&issuers[0], &issuer.key_pem));
        assert!(!key_matches(&anchors[0], &issuer.key_pem));
        let other = generate_anchor(now).unwrap();
        assert!(chains_to(&issuers, &parse_pem_bundle(&other.cert_pem).unwrap()).is_none());
        assert!(anchors[0].days_left(now) >= 3649);
    }

    #[test]
    fn bundle_rejects_keys() {
        let anchor = generate_anchor(OffsetDateTime::now_utc()).unwrap();
        let text = format!("{}{}", anchor.cert_pem, anchor.key_pem.expose_secret());
        assert!(parse_pem_bundle(&text).is_err());
    }
}
