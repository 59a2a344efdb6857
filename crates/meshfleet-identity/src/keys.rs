//! The key folder: where `certs init` keeps private keys, outside the rendered tree.
//!
//! Layout (default `<fleet folder>/.meshfleet/keys/`):
//!
//! ```text
//! .gitignore              `*`: nothing in here is ever committed
//! trust-anchor.key        the anchor's private key (the certificate is the fleet's
//!                         `identity.trustAnchor`)
//! issuer/<cluster>.crt    static issuers (`identity.issuer: vault`)
//! issuer/<cluster>.key
//! ```
//!
//! Keys are written with mode 0600 into a folder of mode 0700, with `create_new`, so an
//! existing file is never overwritten; everything is generated in memory first and
//! written only when no target exists.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

use crate::IdentityError;
use meshfleet_fleet::Fleet;
use meshfleet_fleet::atomic;
use meshfleet_fleet::model::IssuerKind;

/// Errors of `certs init` and of reading the key folder.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// A file that would be written exists already.
    #[error("`{0}` exists; refusing to overwrite it")]
    Exists(PathBuf),
    /// The anchor exists but its key is not in the key folder.
    #[error("the trust anchor `{anchor}` exists but its key `{key}` does not")]
    AnchorKeyMissing {
        /// The anchor certificate.
        anchor: PathBuf,
        /// Where its key was looked for.
        key: PathBuf,
    },
    /// Certificate generation failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// An I/O error, naming the path.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl meshfleet_fleet::diagnostic::Hint for KeysError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::Exists(_) => Some(
                "certificates are created once; to replace one, move the old files away first (a rotation keeps the old anchor in the bundle)".into(),
            ),
            Self::AnchorKeyMissing { .. } => Some("pass the folder that holds `trust-anchor.key` with `--keys`".into()),
            Self::Identity(IdentityError::Key { .. }) => Some(
                "the key folder must hold the PEM key `meshfleet certs init` wrote; pass the right one with `--keys`".into(),
            ),
            Self::Identity(_) | Self::Io(_) => None,
        }
    }
}

/// Paths inside a key folder.
#[derive(Debug, Clone)]
pub struct KeyFolder {
    /// The folder.
    pub dir: PathBuf,
}

impl KeyFolder {
    /// The key folder at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
    /// The default key folder of a fleet folder.
    pub fn default_for(fleet_dir: &Path) -> Self {
        Self::new(fleet_dir.join(meshfleet_fleet::defaults::KEY_DIR))
    }
    /// The anchor's private key.
    pub fn anchor_key(&self) -> PathBuf {
        self.dir.join("trust-anchor.key")
    }
    /// A static issuer's certificate.
    pub fn issuer_cert(&self, cluster: &str) -> PathBuf {
        self.dir.join("issuer").join(format!("{cluster}.crt"))
    }
    /// A static issuer's private key.
    pub fn issuer_key(&self, cluster: &str) -> PathBuf {
        self.dir.join("issuer").join(format!("{cluster}.key"))
    }
    /// Read a private key file.
    pub fn read_secret(path: &Path) -> Result<SecretString, std::io::Error> {
        fs_err::read_to_string(path).map(SecretString::from)
    }
}

/// What `certs init` wrote.
#[derive(Debug, Default)]
pub struct InitReport {
    /// Public files written (the anchor, issuer certificates).
    pub public: Vec<PathBuf>,
    /// Private key files written (mode 0600).
    pub private: Vec<PathBuf>,
    /// Whether an existing anchor was reused to sign new issuers.
    pub reused_anchor: bool,
}

/// Create the anchor (when missing) and, with `issuer: vault`, every missing issuer.
pub fn init(
    fleet: &Fleet,
    fleet_dir: &Path,
    keys: &KeyFolder,
    now: OffsetDateTime,
) -> Result<InitReport, KeysError> {
    let anchor_path = meshfleet_fleet::anchor_path(fleet_dir, fleet);
    let anchor_key_path = keys.anchor_key();
    let issuers_wanted = fleet
        .spec
        .identity
        .issuer
        .as_ref()
        .is_some_and(|i| i.value == IssuerKind::Vault);
    let mut report = InitReport::default();
    let mut writes: Vec<(PathBuf, String, bool)> = Vec::new();
    let (anchor_pem, anchor_key) = if anchor_path.exists() {
        if anchor_key_path.exists() && issuers_wanted {
            report.reused_anchor = true;
            (
                fs_err::read_to_string(&anchor_path)?,
                KeyFolder::read_secret(&anchor_key_path)?,
            )
        } else if issuers_wanted {
            return Err(KeysError::AnchorKeyMissing {
                anchor: anchor_path,
                key: anchor_key_path,
            });
        } else {
            return Err(KeysError::Exists(anchor_path));
        }
    } else {
        if anchor_key_path.exists() {
            return Err(KeysError::Exists(anchor_key_path));
        }
        let anchor = crate::generate_anchor(now)?;
        writes.push((anchor_path.clone(), anchor.cert_pem.clone(), false));
        writes.push((
            anchor_key_path.clone(),
            anchor.key_pem.expose_secret().to_string(),
            true,
        ));
        (anchor.cert_pem, anchor.key_pem)
    };
    if issuers_wanted {
        let ns = fleet
            .spec
            .linkerd
            .namespace
            .as_ref()
            .map_or(meshfleet_fleet::defaults::LINKERD_NAMESPACE, |n| &n.value);
        let domain = fleet
            .spec
            .linkerd
            .trust_domain
            .as_ref()
            .map_or(meshfleet_fleet::defaults::CLUSTER_DOMAIN, |d| &d.value);
        for cluster in &fleet.spec.clusters {
            let name = &cluster.name.value;
            let (crt, key) = (keys.issuer_cert(name), keys.issuer_key(name));
            if crt.exists() && key.exists() {
                continue;
            }
            if crt.exists() || key.exists() {
                return Err(KeysError::Exists(if crt.exists() { crt } else { key }));
            }
            let issuer =
                crate::generate_issuer(&anchor_pem, &anchor_key, &format!("identity.{ns}.{domain}"), now)?;
            writes.push((crt, issuer.cert_pem.clone(), false));
            writes.push((key, issuer.key_pem.expose_secret().to_string(), true));
        }
    }
    if writes.is_empty() {
        return Err(KeysError::Exists(anchor_path));
    }
    create_key_dir(&keys.dir)?;
    let mut written: Vec<PathBuf> = Vec::new();
    for (path, text, private) in &writes {
        if let Err(e) = write_new(path, text, *private) {
            for w in &written {
                let _ = fs_err::remove_file(w);
            }
            return Err(e);
        }
        written.push(path.clone());
        if *private {
            report.private.push(path.clone());
        } else {
            report.public.push(path.clone());
        }
    }
    Ok(report)
}

/// Make the key folder (0700) with a `.gitignore` that ignores everything in it.
fn create_key_dir(dir: &Path) -> Result<(), KeysError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir.join("issuer"))
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot create `{}`: {e}", dir.display())))?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        fs_err::write(
            &ignore,
            "# Written by meshfleet: private keys never go to git.\n*\n",
        )?;
    }
    Ok(())
}

/// The key folder's files for a trust anchor rotation.
impl KeyFolder {
    /// During a rotation, the key of the bundle's other anchor: `to` in `distribute`,
    /// `from` later (`trust-anchor.key` is always the anchor that signs the issuers).
    pub fn rotation_anchor_key(&self) -> PathBuf {
        self.dir.join("trust-anchor.rotation.key")
    }
    /// Where an anchor's key goes once the rotation is over (kept, never deleted).
    pub fn retired_anchor_key(&self, fingerprint: &str) -> PathBuf {
        self.dir.join(format!(
            "trust-anchor.retired-{}.key",
            crate::short(fingerprint).replace(':', "")
        ))
    }
    /// Where an issuer's files go when a new one replaces it: named after the replaced
    /// certificate's fingerprint, so an aborted rotation (which replaces issuers twice)
    /// keeps both.
    pub fn replaced_issuer(&self, cluster: &str, fingerprint: &str) -> (PathBuf, PathBuf) {
        let dir = self.dir.join("issuer");
        let id = crate::short(fingerprint).replace(':', "");
        (
            dir.join(format!("{cluster}.replaced-{id}.crt")),
            dir.join(format!("{cluster}.replaced-{id}.key")),
        )
    }
}

/// Write a new file (never overwriting); private files get mode 0600.
fn write_new(path: &Path, text: &str, private: bool) -> Result<(), KeysError> {
    let mode = if private {
        atomic::PRIVATE_MODE
    } else {
        atomic::PUBLIC_MODE
    };
    atomic::create_new(path, text.as_bytes(), mode).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeysError::Exists(path.to_path_buf())
        } else {
            KeysError::Io(std::io::Error::new(
                e.kind(),
                format!("cannot write `{}`: {e}", path.display()),
            ))
        }
    })
}
