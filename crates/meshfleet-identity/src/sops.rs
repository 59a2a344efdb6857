//! SOPS files encrypted for age recipients: what `sops --encrypt --age` writes and what
//! Flux's kustomize-controller decrypts (`spec.decryption.provider: sops`).
//!
//! No maintained Rust crate writes files the real `sops` reads, so the format is written
//! here, as `sops` v3 (github.com/getsops/sops, `sops.go`, `aes/cipher.go`,
//! `age/keysource.go`) reads it; the tests in `tests/it/sops_compat.rs` let the real
//! `sops` decide:
//!
//! - a random 32-byte data key, wrapped for each age recipient as an ASCII-armored age
//!   file (`sops.age[].enc`);
//! - every leaf value whose path a key matches `sops.encrypted_regex` (or, in files that
//!   use them, the suffix and regex settings) becomes
//!   `ENC[AES256_GCM,data:…,iv:…,tag:…,type:str]`: AES-256-GCM with a 32-byte nonce and
//!   the path of keys joined by `:` plus a trailing `:` as additional data;
//! - the MAC: SHA-512 over every leaf in document order (strings as they are, booleans
//!   `True`/`False`), upper-case hex, encrypted like a value with `sops.lastmodified` as
//!   additional data.
//!
//! Determinism where SOPS allows it: [`seal`] keeps a file byte for byte when its
//! plaintext and its recipients are unchanged, so a `secrets sync` that changes nothing
//! leaves git quiet.

// Classic X25519 age keys (`age1…`) are what SOPS and Flux read; age 0.13 marks them
// deprecated in favour of post-quantum ones that neither reads yet.
#![allow(deprecated)]

use std::fmt;
use std::io::{Read as _, Write as _};
use std::str::FromStr;

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha512};
use zeroize::Zeroizing;

/// AES-256-GCM with SOPS's 32-byte nonces.
type ValueCipher = AesGcm<Aes256, U32>;

/// What meshfleet encrypts in a Kubernetes Secret: its `data` and `stringData`, as Flux's
/// guide writes `.sops.yaml` (`encrypted_regex: ^(data|stringData)$`); names, labels and
/// annotations stay readable in git and in review.
pub const SECRET_ENCRYPTED_REGEX: &str = "^(data|stringData)$";

/// The `sops` release whose format meshfleet writes (`sops.version`), the one its
/// compatibility tests run.
pub const SOPS_FORMAT_VERSION: &str = "3.13.3";

/// Errors of reading age keys and SOPS files. None holds a key, a value or a data key.
#[derive(Debug, thiserror::Error)]
pub enum SopsError {
    /// A recipient that is not an age X25519 recipient (`age1…`).
    #[error("`{0}` is not an age recipient")]
    NotARecipient(String),
    /// A private key where a recipient belongs (its text is never repeated).
    #[error("an age private key (`AGE-SECRET-KEY-1…`) where a public recipient belongs")]
    PrivateKeyAsRecipient,
    /// A key file line that is not an age identity (by line number only).
    #[error("line {line} of the age key file is not an age identity")]
    MalformedIdentity {
        /// 1-based line number.
        line: usize,
    },
    /// A key file without any identity.
    #[error("the age key file holds no `AGE-SECRET-KEY-1…` line")]
    NoIdentity,
    /// The text is not YAML (the parser's message, about an encrypted file).
    #[error("not a YAML document: {0}")]
    Yaml(String),
    /// The document has no `sops` metadata.
    #[error("no `sops` metadata: the file is not SOPS-encrypted")]
    NotEncrypted,
    /// A metadata field is missing or malformed.
    #[error("the `sops.{0}` metadata is missing or malformed")]
    Metadata(&'static str),
    /// No identity opens the data key.
    #[error("none of the given age keys can decrypt the file (it is encrypted for {recipients})")]
    NoMatchingKey {
        /// The file's recipients, comma separated (public).
        recipients: String,
    },
    /// A value does not decrypt (wrong key or tampered), by its path.
    #[error("the value at `{0}` does not decrypt")]
    Value(String),
    /// The MAC does not match the values: the file was edited without `sops`.
    #[error("the file's MAC does not match its values (edited without sops, or tampered)")]
    Mac,
    /// age refused to encrypt.
    #[error("age encryption failed: {0}")]
    Age(String),
}

impl meshfleet_fleet::diagnostic::Hint for SopsError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            Self::NotARecipient(_) => {
                "write the public key an age key file prints on its `# public key: age1…` line (`age-keygen -y KEYFILE`)".into()
            }
            Self::PrivateKeyAsRecipient => "write only the public recipient (`age-keygen -y KEYFILE` prints it) and keep the private key out of git; if this key was committed, make a new one".into(),
            Self::MalformedIdentity { .. } | Self::NoIdentity => {
                "point `SOPS_AGE_KEY_FILE` (or `--age-key`) at a file written by `age-keygen` or `meshfleet secrets age-key`".into()
            }
            Self::NoMatchingKey { .. } => {
                "use the operator key whose recipient is in `spec.secrets.sops.age.operators`, or run `secrets sync` again after adding it".into()
            }
            Self::Mac | Self::Value(_) => "restore the file from git, or run `meshfleet secrets sync` to write it anew".into(),
            Self::Yaml(_) | Self::NotEncrypted | Self::Metadata(_) => {
                "write the file with `meshfleet secrets sync` or `sops --encrypt`".into()
            }
            Self::Age(_) => return None,
        })
    }
}

/// An age key file could not be found, read or written.
#[derive(Debug, thiserror::Error)]
pub enum AgeKeyError {
    /// No key file where one was looked for.
    #[error("no age key: `--age-key` not given, `SOPS_AGE_KEY_FILE` not set and `{0}` does not exist")]
    Missing(std::path::PathBuf),
    /// The file could not be read or written.
    #[error("cannot read or write the age key file `{path}`: {reason}")]
    Unreadable {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// The file is not an age key file.
    #[error("`{path}`: {source}")]
    Malformed {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong (never the key).
        #[source]
        source: SopsError,
    },
    /// The file to write exists.
    #[error("`{0}` exists; refusing to overwrite a key")]
    Exists(std::path::PathBuf),
}

impl meshfleet_fleet::diagnostic::Hint for AgeKeyError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            Self::Missing(_) => "make one with `meshfleet secrets age-key --out ~/.config/sops/age/keys.txt` and add the recipient it prints under `spec.secrets.sops.age.operators`".into(),
            Self::Unreadable { .. } => "check the path and its permissions (keys are best kept 0600)".into(),
            Self::Malformed { source, .. } => return source.hint(),
            Self::Exists(_) => "choose another `--out`; to replace a key, move the old file away first (files encrypted for it need a `secrets sync` with the new recipient)".into(),
        })
    }
}

/// A public age X25519 recipient (`age1…`), what SOPS calls an age key.
#[derive(Clone)]
pub struct AgeRecipient(age::x25519::Recipient);

impl FromStr for AgeRecipient {
    type Err = SopsError;

    fn from_str(s: &str) -> Result<Self, SopsError> {
        let s = s.trim();
        if s.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
            return Err(SopsError::PrivateKeyAsRecipient);
        }
        s.parse::<age::x25519::Recipient>()
            .map(Self)
            .map_err(|_| SopsError::NotARecipient(s.chars().take(80).collect()))
    }
}

impl fmt::Display for AgeRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for AgeRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgeRecipient({})", self.0)
    }
}

impl PartialEq for AgeRecipient {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for AgeRecipient {}

/// Private age identities, as an age key file holds them (`SOPS_AGE_KEY_FILE`). Never
/// printed: `Debug` shows only their recipients.
pub struct AgeIdentities(Vec<age::x25519::Identity>);

impl AgeIdentities {
    /// Parses a key file's text: `#` comments and blank lines, one `AGE-SECRET-KEY-1…` per
    /// other line (what `age-keygen` writes).
    pub fn parse(text: &str) -> Result<Self, SopsError> {
        let mut ids = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let id = line
                .parse::<age::x25519::Identity>()
                .map_err(|_| SopsError::MalformedIdentity { line: n + 1 })?;
            ids.push(id);
        }
        if ids.is_empty() {
            return Err(SopsError::NoIdentity);
        }
        Ok(Self(ids))
    }

    /// Reads a key file (`SOPS_AGE_KEY_FILE`'s format).
    pub fn read_key_file(path: &std::path::Path) -> Result<Self, AgeKeyError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => SecretString::from(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AgeKeyError::Missing(path.to_path_buf()));
            }
            Err(e) => {
                return Err(AgeKeyError::Unreadable {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                });
            }
        };
        Self::parse(text.expose_secret()).map_err(|source| AgeKeyError::Malformed {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes these keys to a new file, mode 0600 (its folder made if missing); an
    /// existing file is never overwritten.
    pub fn write_new_key_file(&self, path: &std::path::Path) -> Result<(), AgeKeyError> {
        if path.exists() {
            return Err(AgeKeyError::Exists(path.to_path_buf()));
        }
        let failed = |e: std::io::Error| AgeKeyError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(failed)?;
        }
        meshfleet_fleet::atomic::create_new(path, self.to_key_file().expose_secret().as_bytes(), 0o600)
            .map_err(failed)
    }

    /// A new identity (one key).
    pub fn generate() -> Self {
        Self(vec![age::x25519::Identity::generate()])
    }

    /// The public recipients of these identities.
    pub fn recipients(&self) -> Vec<AgeRecipient> {
        self.0.iter().map(|id| AgeRecipient(id.to_public())).collect()
    }

    /// The key file text (`age-keygen`'s layout: a comment with the public key, then the
    /// private key), to be written 0600 and never printed.
    pub fn to_key_file(&self) -> SecretString {
        let mut out = String::new();
        for id in &self.0 {
            out.push_str(&format!("# public key: {}\n", id.to_public()));
            out.push_str(id.to_string().expose_secret());
            out.push('\n');
        }
        SecretString::from(out)
    }
}

impl fmt::Debug for AgeIdentities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.recipients()).finish()
    }
}

/// Encrypts `document` (a YAML mapping) for `recipients`, encrypting the values under a
/// key that matches [`SECRET_ENCRYPTED_REGEX`]; `lastmodified` is RFC 3339 in whole
/// seconds, UTC (`2026-12-07T11:00:00Z`). Returns the YAML text of the SOPS file.
pub fn encrypt(
    document: &Map<String, Value>,
    recipients: &[AgeRecipient],
    lastmodified: &str,
) -> Result<String, SopsError> {
    let mut data_key = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(data_key.as_mut());
    let rules = Rules {
        encrypted_regex: Some(regex_of(SECRET_ENCRYPTED_REGEX)?),
        ..Rules::default()
    };
    let mut mac = Sha512::new();
    let mut path = Vec::new();
    let mut encrypt_leaf = |leaf: &Value, path: &[String]| -> Result<Value, SopsError> {
        if let Some(bytes) = mac_bytes(leaf) {
            mac.update(&bytes);
        }
        if !rules.encrypts(path) {
            return Ok(leaf.clone());
        }
        encrypt_value(leaf, &data_key, &additional_data(path)).map_err(|()| SopsError::Value(path.join(".")))
    };
    let mut out = Map::new();
    for (key, value) in document {
        if key == "sops" {
            continue;
        }
        path.push(key.clone());
        out.insert(key.clone(), walk(value, &mut path, &mut encrypt_leaf)?);
        path.pop();
    }
    let mac_hex = Zeroizing::new(hex::encode_upper(mac.finalize()));
    let mac_value = encrypt_value(&Value::String(mac_hex.to_string()), &data_key, lastmodified)
        .map_err(|()| SopsError::Metadata("mac"))?;
    let mut age_keys = Vec::new();
    for recipient in recipients {
        let mut entry = Map::new();
        entry.insert("recipient".into(), Value::String(recipient.to_string()));
        entry.insert("enc".into(), Value::String(wrap_data_key(&data_key, recipient)?));
        age_keys.push(Value::Object(entry));
    }
    let mut sops = Map::new();
    sops.insert("age".into(), Value::Array(age_keys));
    sops.insert("lastmodified".into(), Value::String(lastmodified.into()));
    sops.insert("mac".into(), mac_value);
    sops.insert(
        "encrypted_regex".into(),
        Value::String(SECRET_ENCRYPTED_REGEX.into()),
    );
    sops.insert("version".into(), Value::String(SOPS_FORMAT_VERSION.into()));
    out.insert("sops".into(), Value::Object(sops));
    // Long values (`ENC[…]`) on one line, as `sops` writes them.
    let mut options = serde_saphyr::SerializerOptions::default();
    options.folded_wrap_chars = 100_000;
    options.min_fold_chars = 100_000;
    serde_saphyr::to_string_with_options(&Value::Object(out), options)
        .map_err(|e| SopsError::Yaml(e.to_string()))
}

/// A SOPS file read back: its plaintext document and its age recipients.
pub struct Decrypted {
    /// The document without its `sops` metadata. Holds secrets: never print it.
    pub document: Map<String, Value>,
    /// The recipients the data key is wrapped for.
    pub recipients: Vec<String>,
}

impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decrypted")
            .field("recipients", &self.recipients)
            .finish_non_exhaustive()
    }
}

/// Decrypts a SOPS YAML file (one document) with `identities`, checking its MAC as
/// `sops --decrypt` does.
pub fn decrypt(text: &str, identities: &AgeIdentities) -> Result<Decrypted, SopsError> {
    let value: Value =
        serde_saphyr::from_str(text).map_err(|e| SopsError::Yaml(first_line(&e.to_string())))?;
    let Value::Object(mut document) = value else {
        return Err(SopsError::NotEncrypted);
    };
    let Some(Value::Object(sops)) = document.remove("sops") else {
        return Err(SopsError::NotEncrypted);
    };
    let recipients: Vec<(String, String)> = match sops.get("age") {
        Some(Value::Array(keys)) => keys
            .iter()
            .map(|k| match (k.get("recipient"), k.get("enc")) {
                (Some(Value::String(r)), Some(Value::String(e))) => Ok((r.clone(), e.clone())),
                _ => Err(SopsError::Metadata("age")),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(SopsError::Metadata("age")),
    };
    let data_key = recipients
        .iter()
        .find_map(|(_, enc)| unwrap_data_key(enc, identities))
        .ok_or_else(|| SopsError::NoMatchingKey {
            recipients: recipients
                .iter()
                .map(|(r, _)| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let rules = Rules::from_metadata(&sops)?;
    let mut mac = Sha512::new();
    if rules.mac_only_encrypted {
        mac.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    let mut decrypt_leaf = |leaf: &Value, path: &[String]| -> Result<Value, SopsError> {
        let encrypted = rules.encrypts(path);
        let plain = if encrypted {
            match leaf {
                Value::String(s) => decrypt_value(s, &data_key, &additional_data(path))
                    .map_err(|()| SopsError::Value(path.join(".")))?,
                _ => return Err(SopsError::Value(path.join("."))),
            }
        } else {
            leaf.clone()
        };
        if (!rules.mac_only_encrypted || encrypted)
            && let Some(bytes) = mac_bytes(&plain)
        {
            mac.update(&bytes);
        }
        Ok(plain)
    };
    let mut out = Map::new();
    let mut path = Vec::new();
    for (key, value) in &document {
        path.push(key.clone());
        out.insert(key.clone(), walk(value, &mut path, &mut decrypt_leaf)?);
        path.pop();
    }
    let Some(Value::String(lastmodified)) = sops.get("lastmodified") else {
        return Err(SopsError::Metadata("lastmodified"));
    };
    let Some(Value::String(stored_mac)) = sops.get("mac") else {
        return Err(SopsError::Metadata("mac"));
    };
    let stored = decrypt_value(stored_mac, &data_key, lastmodified).map_err(|()| SopsError::Mac)?;
    if stored.as_str() != Some(hex::encode_upper(mac.finalize()).as_str()) {
        return Err(SopsError::Mac);
    }
    Ok(Decrypted {
        document: out,
        recipients: recipients.into_iter().map(|(r, _)| r).collect(),
    })
}

/// The SOPS file for `document`: `previous` unchanged when it decrypts (with
/// `identities`) to the same document for the same recipients, else a new encryption.
/// A previous file that does not decrypt is replaced, never an error: the new file is
/// what the fleet says.
pub fn seal(
    document: &Map<String, Value>,
    recipients: &[AgeRecipient],
    previous: Option<&str>,
    identities: &AgeIdentities,
    lastmodified: &str,
) -> Result<String, SopsError> {
    if let Some(previous) = previous
        && let Ok(old) = decrypt(previous, identities)
    {
        let mut want: Vec<String> = recipients.iter().map(ToString::to_string).collect();
        let mut have = old.recipients.clone();
        want.sort();
        have.sort();
        if want == have && old.document == *document {
            return Ok(previous.to_string());
        }
    }
    encrypt(document, recipients, lastmodified)
}

/// `lastmodified` for now: RFC 3339 in whole seconds, UTC.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// `sops.go`'s `MACOnlyEncryptedInitialization`: hashed first when `mac_only_encrypted`.
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b, 0x0b,
    0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// Which values a file encrypts (`shouldBeEncrypted` in `sops.go`, without comments:
/// meshfleet's files hold none under encrypted keys, and comments are not in the MAC).
#[derive(Default)]
struct Rules {
    unencrypted_suffix: Option<String>,
    encrypted_suffix: Option<String>,
    unencrypted_regex: Option<regex::Regex>,
    encrypted_regex: Option<regex::Regex>,
    mac_only_encrypted: bool,
}

impl Rules {
    fn from_metadata(sops: &Map<String, Value>) -> Result<Self, SopsError> {
        let text = |k: &str| {
            sops.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(String::from)
        };
        let regex = |k: &'static str| {
            text(k)
                .map(|r| regex::Regex::new(&r).map_err(|_| SopsError::Metadata(k)))
                .transpose()
        };
        Ok(Self {
            unencrypted_suffix: text("unencrypted_suffix"),
            encrypted_suffix: text("encrypted_suffix"),
            unencrypted_regex: regex("unencrypted_regex")?,
            encrypted_regex: regex("encrypted_regex")?,
            mac_only_encrypted: sops
                .get("mac_only_encrypted")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    fn encrypts(&self, path: &[String]) -> bool {
        let mut encrypted = true;
        if let Some(suffix) = &self.unencrypted_suffix
            && path.iter().any(|p| p.ends_with(suffix.as_str()))
        {
            encrypted = false;
        }
        if let Some(suffix) = &self.encrypted_suffix {
            encrypted = path.iter().any(|p| p.ends_with(suffix.as_str()));
        }
        if let Some(re) = &self.unencrypted_regex
            && path.iter().any(|p| re.is_match(p))
        {
            encrypted = false;
        }
        if let Some(re) = &self.encrypted_regex {
            encrypted = path.iter().any(|p| re.is_match(p));
        }
        encrypted
    }
}

fn regex_of(pattern: &str) -> Result<regex::Regex, SopsError> {
    regex::Regex::new(pattern).map_err(|_| SopsError::Metadata("encrypted_regex"))
}

/// Walks a value in document order, replacing each leaf by `leaf(value, path)`; list
/// items keep their list's path, as in `sops.go`.
fn walk(
    value: &Value,
    path: &mut Vec<String>,
    leaf: &mut impl FnMut(&Value, &[String]) -> Result<Value, SopsError>,
) -> Result<Value, SopsError> {
    Ok(match value {
        Value::Null => Value::Null,
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                path.push(k.clone());
                out.insert(k.clone(), walk(v, path, leaf)?);
                path.pop();
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| walk(v, path, leaf))
                .collect::<Result<_, _>>()?,
        ),
        other => leaf(other, path)?,
    })
}

/// The bytes a leaf adds to the MAC (`ToBytes` in `sops.go`).
fn mac_bytes(leaf: &Value) -> Option<Vec<u8>> {
    match leaf {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Bool(b) => Some(if *b { b"True".to_vec() } else { b"False".to_vec() }),
        Value::Number(n) => Some(n.to_string().into_bytes()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

fn additional_data(path: &[String]) -> String {
    format!("{}:", path.join(":"))
}

/// `ENC[AES256_GCM,…]` of one leaf; the empty string stays empty, as in `sops`.
fn encrypt_value(leaf: &Value, key: &[u8; 32], additional_data: &str) -> Result<Value, ()> {
    let (plain, kind) = match leaf {
        Value::String(s) if s.is_empty() => return Ok(Value::String(String::new())),
        Value::String(s) => (s.clone(), "str"),
        Value::Bool(b) => ((if *b { "True" } else { "False" }).to_string(), "bool"),
        Value::Number(n) if n.is_f64() => (n.to_string(), "float"),
        Value::Number(n) => (n.to_string(), "int"),
        Value::Null | Value::Array(_) | Value::Object(_) => return Err(()),
    };
    let plain = Zeroizing::new(plain);
    let mut iv = [0u8; 32];
    rand::rng().fill_bytes(&mut iv);
    let cipher = ValueCipher::new_from_slice(key).map_err(|_| ())?;
    let sealed = cipher
        .encrypt(
            Nonce::<U32>::from_slice(&iv),
            Payload {
                msg: plain.as_bytes(),
                aad: additional_data.as_bytes(),
            },
        )
        .map_err(|_| ())?;
    let (data, tag) = sealed.split_at(sealed.len() - 16);
    Ok(Value::String(format!(
        "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{kind}]",
        B64.encode(data),
        B64.encode(iv),
        B64.encode(tag)
    )))
}

/// The plaintext leaf of `ENC[AES256_GCM,…]`; the empty string decrypts to itself.
fn decrypt_value(text: &str, key: &[u8; 32], additional_data: &str) -> Result<Value, ()> {
    if text.is_empty() {
        return Ok(Value::String(String::new()));
    }
    let body = text
        .strip_prefix("ENC[AES256_GCM,data:")
        .and_then(|s| s.strip_suffix(']'))
        .ok_or(())?;
    let (data, rest) = body.split_once(",iv:").ok_or(())?;
    let (iv, rest) = rest.split_once(",tag:").ok_or(())?;
    let (tag, kind) = rest.split_once(",type:").ok_or(())?;
    let (data, iv, tag) = (
        B64.decode(data).map_err(|_| ())?,
        B64.decode(iv).map_err(|_| ())?,
        B64.decode(tag).map_err(|_| ())?,
    );
    if iv.len() != 32 || tag.len() != 16 {
        return Err(());
    }
    let mut sealed = data;
    sealed.extend_from_slice(&tag);
    let cipher = ValueCipher::new_from_slice(key).map_err(|_| ())?;
    let plain = Zeroizing::new(
        cipher
            .decrypt(
                Nonce::<U32>::from_slice(&iv),
                Payload {
                    msg: &sealed,
                    aad: additional_data.as_bytes(),
                },
            )
            .map_err(|_| ())?,
    );
    let plain = std::str::from_utf8(&plain).map_err(|_| ())?;
    Ok(match kind {
        "str" => Value::String(plain.to_string()),
        "int" => Value::Number(plain.parse::<i64>().map_err(|_| ())?.into()),
        "float" => serde_json::Number::from_f64(plain.parse::<f64>().map_err(|_| ())?)
            .map_or(Value::Null, Value::Number),
        "bool" => Value::Bool(matches!(plain, "True" | "true" | "1" | "t" | "T" | "TRUE")),
        _ => return Err(()),
    })
}

/// The data key wrapped for one recipient: an ASCII-armored age file.
fn wrap_data_key(key: &[u8; 32], recipient: &AgeRecipient) -> Result<String, SopsError> {
    let age_err = |e: &dyn fmt::Display| SopsError::Age(e.to_string());
    let encryptor = age::Encryptor::with_recipients(std::iter::once(&recipient.0 as &dyn age::Recipient))
        .map_err(|e| age_err(&e))?;
    let mut armored = Vec::new();
    let armor = age::armor::ArmoredWriter::wrap_output(&mut armored, age::armor::Format::AsciiArmor)
        .map_err(|e| age_err(&e))?;
    let mut writer = encryptor.wrap_output(armor).map_err(|e| age_err(&e))?;
    writer.write_all(key).map_err(|e| age_err(&e))?;
    writer
        .finish()
        .and_then(age::armor::ArmoredWriter::finish)
        .map_err(|e| age_err(&e))?;
    String::from_utf8(armored).map_err(|e| age_err(&e))
}

/// The data key, if one of `identities` opens this armored age file.
fn unwrap_data_key(armored: &str, identities: &AgeIdentities) -> Option<Zeroizing<[u8; 32]>> {
    let reader = age::armor::ArmoredReader::new(armored.as_bytes());
    let decryptor = age::Decryptor::new(reader).ok()?;
    let mut plain = decryptor
        .decrypt(identities.0.iter().map(|i| i as &dyn age::Identity))
        .ok()?;
    let mut key = Zeroizing::new(Vec::new());
    plain.read_to_end(&mut key).ok()?;
    let mut out = Zeroizing::new([0u8; 32]);
    if key.len() != 32 {
        return None;
    }
    out.copy_from_slice(&key);
    Some(out)
}

fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Map<String, Value> {
        let v: Value = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "cluster-credentials-pro", "namespace": "linkerd",
                         "labels": {"multicluster.linkerd.io/cluster-name": "pro"}},
            "type": "mirror.linkerd.io/remote-kubeconfig",
            "stringData": {"kubeconfig": "token: SENTINEL-TOKEN\n"},
        });
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_file_round_trips_and_hides_its_values_but_not_its_names() {
        let ids = AgeIdentities::generate();
        let text = encrypt(&secret(), &ids.recipients(), "2026-12-07T11:00:00Z").expect("encrypts");
        assert!(!text.contains("SENTINEL"), "the value is encrypted");
        assert!(text.contains("cluster-credentials-pro") && text.contains("ENC[AES256_GCM,data:"));
        let back = decrypt(&text, &ids).expect("decrypts");
        assert_eq!(back.document, secret());
        assert_eq!(back.recipients, vec![ids.recipients()[0].to_string()]);
    }

    #[test]
    fn another_key_cannot_decrypt_and_an_edit_breaks_the_mac() {
        let ids = AgeIdentities::generate();
        let text = encrypt(&secret(), &ids.recipients(), "2026-12-07T11:00:00Z").expect("encrypts");
        let other = AgeIdentities::generate();
        assert!(matches!(
            decrypt(&text, &other),
            Err(SopsError::NoMatchingKey { .. })
        ));
        let edited = text.replace("name: cluster-credentials-pro", "name: cluster-credentials-dev");
        assert!(matches!(decrypt(&edited, &ids), Err(SopsError::Mac)));
    }

    #[test]
    fn sealing_an_unchanged_document_keeps_the_file() {
        let ids = AgeIdentities::generate();
        let first = seal(&secret(), &ids.recipients(), None, &ids, "2026-12-07T11:00:00Z").expect("seals");
        let again = seal(
            &secret(),
            &ids.recipients(),
            Some(&first),
            &ids,
            "2026-12-08T11:00:00Z",
        )
        .expect("seals");
        assert_eq!(first, again);
        let mut changed = secret();
        changed.insert(
            "stringData".into(),
            serde_json::json!({"kubeconfig": "token: OTHER\n"}),
        );
        let third = seal(
            &changed,
            &ids.recipients(),
            Some(&first),
            &ids,
            "2026-12-08T11:00:00Z",
        )
        .expect("seals");
        assert_ne!(first, third);
        assert_eq!(decrypt(&third, &ids).expect("decrypts").document, changed);
    }

    #[test]
    fn recipients_and_key_files_are_checked_without_echoing_keys() {
        let ids = AgeIdentities::generate();
        let key_file = ids.to_key_file();
        let private = key_file
            .expose_secret()
            .lines()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let err = private
            .parse::<AgeRecipient>()
            .expect_err("a private key is refused");
        assert!(matches!(err, SopsError::PrivateKeyAsRecipient));
        assert!(!err.to_string().contains(&private[16..]));
        assert!(matches!(
            "ssh-ed25519 AAAA".parse::<AgeRecipient>(),
            Err(SopsError::NotARecipient(_))
        ));
        assert!(matches!(
            AgeIdentities::parse("# only a comment\n"),
            Err(SopsError::NoIdentity)
        ));
        assert!(matches!(
            AgeIdentities::parse("# c\nAGE-SECRET-KEY-1XYZ\n"),
            Err(SopsError::MalformedIdentity { line: 2 })
        ));
        let again = AgeIdentities::parse(key_file.expose_secret()).expect("the written file parses");
        assert_eq!(again.recipients(), ids.recipients());
        assert!(!format!("{again:?}").contains("AGE-SECRET"));
    }
}
