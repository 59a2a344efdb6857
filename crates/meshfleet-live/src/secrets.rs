//! `secrets sync`: what meshfleet keeps in Vault for the rendered ExternalSecrets, where
//! each value comes from, and how it is written without ever half-writing one.
//!
//! Entries (KV v2 keys under `<mount>/<path>/`, PRODUCT.md section 3):
//! - `trust-anchor` {tls.crt, tls.key} with `identity.issuer: cert-manager`: the anchor
//!   certificate and its key from the key folder (cert-manager's CA Issuer signs with it);
//! - `issuer/<cluster>` {tls.crt, tls.key, ca.crt} with `identity.issuer: vault`: the
//!   static issuer from the key folder and the anchor bundle;
//! - `credentials/<source>-to-<target>` {kubeconfig}: a kubeconfig for the source's
//!   service mirror, built from the token of the remote-access ServiceAccount that the
//!   target's `linkerd-multicluster` stage creates per incoming link. Unlike `link-gen`
//!   (reference §2.3), the server is the fleet's `apiServer` and the CA is the one the
//!   token Secret carries, inline, not whatever the operator's own kubeconfig holds.
//!
//! Every value is complete before Vault is touched, and each entry is one KV write
//! (atomic in Vault) with check-and-set against the version just read: an entry is
//! written whole or not at all, and a concurrent writer is never overwritten. Values
//! equal to what Vault holds are not written again, so a second run adds no version.
//! Link credentials are rotated by [`rotation`] (`--rotate`), never in place: while a
//! rotation grants the next account, this sync leaves the rotating links' keys alone.
//! Problems are per entry: one unreachable cluster or bad key does not stop the others.
//!
//! Values live in [`SecretString`]s and are never in an error, a log line or `Debug`.
//! This module reads and writes but never prints; the binary reports.

mod error;
mod remote_access;
pub mod rotation;
pub mod rotation_traces;
pub mod sealed;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use secrecy::SecretString;

pub use self::error::SyncError;
use self::remote_access::link_entries;
pub use self::remote_access::{SERVICE_ACCOUNT_ANNOTATION, TOKEN_SECRET_TYPE, link_kubeconfig};
use super::cluster::Kubeconfigs;
use super::vault::{Capability, KvClient, VaultSettings};
use meshfleet_fleet::diagnostic::error_chain;
use meshfleet_fleet::model::IssuerKind;
use meshfleet_identity::keys::KeyFolder;
use meshfleet_plan::{FleetPlan, IdentityPlan};

/// What kind of value an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// The anchor key pair (cert-manager issuers).
    TrustAnchor,
    /// A cluster's static issuer (Vault issuers).
    Issuer,
    /// A link's kubeconfig.
    Credentials,
}

impl EntryKind {
    /// The value names of the entry, as the ExternalSecrets read them.
    pub fn value_names(self) -> &'static [&'static str] {
        match self {
            Self::TrustAnchor => &["tls.crt", "tls.key"],
            Self::Issuer => &["ca.crt", "tls.crt", "tls.key"],
            Self::Credentials => &["kubeconfig"],
        }
    }
}

/// Whether a write creates the key or adds a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The key is new.
    Create,
    /// The key has another value.
    Update,
}

impl Action {
    /// `create` or `update`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
        }
    }
}

/// How one entry ended.
#[derive(Debug)]
pub enum Outcome {
    /// Written as `version`.
    Written {
        /// Create or update.
        action: Action,
        /// The new KV version.
        version: u64,
    },
    /// Left alone: a rotation of this link is moving its credentials.
    Rotating,
    /// Vault already holds the value.
    Unchanged {
        /// The current KV version.
        version: u64,
    },
    /// Dry run: what a real run would do.
    Planned {
        /// Create or update.
        action: Action,
        /// The value names that would change.
        changed: Vec<String>,
    },
    /// Nothing was written for it.
    Failed(SyncError),
}

/// One Vault key and what happened to it.
#[derive(Debug)]
pub struct SyncEntry {
    /// The key relative to the fleet's prefix, e.g. `credentials/studio-to-pro`.
    pub id: String,
    /// What it holds.
    pub kind: EntryKind,
    /// The path as `vault kv get` takes it: `<mount>/<path>/<id>`.
    pub path: String,
    /// How it ended.
    pub outcome: Outcome,
}

/// Everything one run did.
#[derive(Debug)]
pub struct SyncReport {
    /// The Vault address used.
    pub address: String,
    /// The KV mount.
    pub mount: String,
    /// Entries, identity first, then links by id.
    pub entries: Vec<SyncEntry>,
}

impl SyncReport {
    /// Entries that failed.
    pub fn failed(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e.outcome, Outcome::Failed(_)))
            .count()
    }
}

/// What to do.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Compute and report; write nothing.
    pub dry_run: bool,
}

/// The values of one entry, by name.
struct Values(BTreeMap<String, SecretString>);

impl Values {
    fn new<const N: usize>(pairs: [(&str, SecretString); N]) -> Self {
        Self(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    /// Names whose value differs from `current` (added, changed or to be removed).
    fn changed(&self, current: &BTreeMap<String, SecretString>) -> Vec<String> {
        let names: BTreeSet<&String> = self.0.keys().chain(current.keys()).collect();
        names
            .into_iter()
            .filter(|n| {
                self.0.get(*n).map(secrecy::ExposeSecret::expose_secret)
                    != current.get(*n).map(secrecy::ExposeSecret::expose_secret)
            })
            .cloned()
            .collect()
    }
}

/// An entry whose value is computed (or failed), before Vault.
struct Pending {
    id: String,
    kind: EntryKind,
    desired: Result<Values, SyncError>,
    /// A rotation is moving this link's credentials (`granting`).
    rotating: bool,
}

/// Compute every entry, then write those that changed (or, in a dry run, say what
/// would change).
pub async fn sync(
    plan: &FleetPlan,
    keys: &KeyFolder,
    kubeconfigs: Option<&Kubeconfigs>,
    vault: &VaultSettings,
    options: &SyncOptions,
) -> SyncReport {
    let mut pending = identity_entries(plan, keys);
    pending.extend(link_entries(plan, kubeconfigs).await);
    // The KV key of an entry is `<path>/<id>` (`VaultPlan::trust_anchor_key`, ...).
    let (mount, prefix) = plan
        .vault
        .as_ref()
        .map(|v| (v.mount.clone(), v.path.clone()))
        .unwrap_or_default();
    let key_of = |id: &str| format!("{prefix}/{id}");
    let client = KvClient::new(vault, &mount);
    let ready = match (&client, pending.first()) {
        (Ok(client), Some(first)) => client.check_ready(&key_of(&first.id)).await,
        (Ok(_), None) => Ok(()),
        (Err(e), _) => Err(e.clone()),
    };
    let mut entries = Vec::with_capacity(pending.len());
    for entry in pending {
        let key = key_of(&entry.id);
        let path = format!("{}/{}", mount.trim_matches('/'), key.trim_matches('/'));
        let (id, kind) = (entry.id.clone(), entry.kind);
        let outcome = match (&client, &ready) {
            _ if entry.rotating => Outcome::Rotating,
            (Ok(client), Ok(())) => apply(client, &key, entry, options).await,
            (Err(e), _) | (_, Err(e)) => {
                Outcome::Failed(entry.desired.err().unwrap_or_else(|| e.clone().into()))
            }
        };
        if let Outcome::Failed(e) = &outcome {
            tracing::info!(entry = %id, code = e.code(), "not synced");
        }
        entries.push(SyncEntry {
            id,
            kind,
            path,
            outcome,
        });
    }
    let address = client
        .as_ref()
        .map_or_else(|_| vault.address.clone(), |c| c.address().to_string());
    SyncReport {
        address,
        mount,
        entries,
    }
}

/// Read, compare, check, write one entry.
async fn apply(client: &KvClient, key: &str, entry: Pending, options: &SyncOptions) -> Outcome {
    let values = match entry.desired {
        Ok(values) => values,
        Err(e) => return Outcome::Failed(e),
    };
    let state = match client.read(key).await {
        Ok(state) => state,
        Err(e) => return Outcome::Failed(e.into()),
    };
    let changed = state
        .current
        .as_ref()
        .map_or_else(|| values.0.keys().cloned().collect(), |c| values.changed(&c.data));
    if let Some(current) = &state.current
        && changed.is_empty()
    {
        return Outcome::Unchanged {
            version: current.version,
        };
    }
    let action = if state.current.is_some() {
        Action::Update
    } else {
        Action::Create
    };
    let capability = if action == Action::Create {
        Capability::Create
    } else {
        Capability::Update
    };
    if let Err(e) = client.check_write(key, capability).await {
        return Outcome::Failed(e.into());
    }
    if options.dry_run {
        return Outcome::Planned { action, changed };
    }
    match client.write(key, &values.0, state.cas).await {
        Ok(version) => {
            tracing::info!(entry = %entry.id, version, "written");
            Outcome::Written { action, version }
        }
        Err(e) => Outcome::Failed(e.into()),
    }
}

/// The anchor entry (cert-manager) or one issuer entry per cluster (Vault issuers).
fn identity_entries(plan: &FleetPlan, keys: &KeyFolder) -> Vec<Pending> {
    let anchor = &plan.identity;
    match plan.identity.issuer {
        IssuerKind::CertManager => vec![Pending {
            id: "trust-anchor".into(),
            kind: EntryKind::TrustAnchor,
            desired: anchor_values(anchor, keys),
            rotating: false,
        }],
        IssuerKind::Vault => plan
            .clusters
            .iter()
            .map(|c| Pending {
                id: format!("issuer/{}", c.name),
                kind: EntryKind::Issuer,
                desired: issuer_values(anchor, keys, &c.name),
                rotating: false,
            })
            .collect(),
    }
}

/// {tls.crt, tls.key} of the anchor: the certificate of the bundle that the key
/// matches (during an anchor rotation the bundle holds two, and cert-manager's CA
/// Issuer needs the one it signs with).
fn anchor_values(fleet_identity: &IdentityPlan, keys: &KeyFolder) -> Result<Values, SyncError> {
    let key_path = keys.anchor_key();
    let key = read_private(&key_path, "the trust anchor's private key")?;
    let (anchor_pem, anchors) = (&fleet_identity.trust_anchor_pem, &fleet_identity.anchors);
    let blocks = pem_blocks(anchor_pem);
    let index = anchors
        .iter()
        .position(|a| meshfleet_identity::key_matches(a, &key))
        .ok_or_else(|| SyncError::KeyMismatch {
            key: key_path,
            cert: "the fleet's trust anchor".into(),
        })?;
    let cert = if anchors.len() == 1 {
        anchor_pem.clone()
    } else {
        blocks.get(index).cloned().unwrap_or_default()
    };
    Ok(Values::new([
        ("tls.crt", SecretString::from(cert)),
        ("tls.key", key),
    ]))
}

/// {tls.crt, tls.key, ca.crt} of a cluster's static issuer.
fn issuer_values(
    fleet_identity: &IdentityPlan,
    keys: &KeyFolder,
    cluster: &str,
) -> Result<Values, SyncError> {
    let cert_path = keys.issuer_cert(cluster);
    if !cert_path.exists() {
        return Err(SyncError::KeyMissing {
            what: "the issuer certificate",
            path: cert_path,
        });
    }
    let unreadable = |path: &Path, reason: String| SyncError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    let cert = fs_err::read_to_string(&cert_path).map_err(|e| unreadable(&cert_path, e.to_string()))?;
    let chain =
        meshfleet_identity::parse_pem_bundle(&cert).map_err(|e| unreadable(&cert_path, error_chain(&e)))?;
    let key_path = keys.issuer_key(cluster);
    let key = read_private(&key_path, "the issuer's private key")?;
    if !meshfleet_identity::key_matches(&chain[0], &key) {
        return Err(SyncError::KeyMismatch {
            key: key_path,
            cert: format!("the issuer `{}`", cert_path.display()),
        });
    }
    if meshfleet_identity::chains_to(&chain, &fleet_identity.anchors).is_none() {
        return Err(SyncError::NotChained { cert: cert_path });
    }
    Ok(Values::new([
        (
            "ca.crt",
            SecretString::from(fleet_identity.trust_anchor_pem.clone()),
        ),
        ("tls.crt", SecretString::from(format!("{}\n", cert.trim_end()))),
        ("tls.key", key),
    ]))
}

fn read_private(path: &Path, what: &'static str) -> Result<SecretString, SyncError> {
    if !path.exists() {
        return Err(SyncError::KeyMissing {
            what,
            path: path.to_path_buf(),
        });
    }
    let key = KeyFolder::read_secret(path).map_err(|e| SyncError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    // A key that does not parse would otherwise show up as "does not match".
    meshfleet_identity::check_private_key(&key).map_err(|mistake| SyncError::Unreadable {
        path: path.to_path_buf(),
        reason: mistake.to_string(),
    })?;
    Ok(key)
}

/// Each `CERTIFICATE` block of a PEM bundle, with a trailing newline.
fn pem_blocks(text: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    text.split_inclusive(END)
        .filter_map(|chunk| {
            chunk
                .find("-----BEGIN CERTIFICATE-----")
                .map(|at| format!("{}\n", &chunk[at..]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;
    use time::OffsetDateTime;

    fn plan_identity(pem: &str) -> IdentityPlan {
        IdentityPlan {
            trust_anchor_pem: pem.to_string(),
            anchors: meshfleet_identity::parse_pem_bundle(pem).unwrap(),
            issuer: IssuerKind::CertManager,
            rotation: None,
        }
    }

    fn key_folder_with_issuer(
        anchor: &meshfleet_identity::KeyedCertificate,
        cluster: &str,
    ) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyFolder::new(dir.path());
        std::fs::create_dir_all(dir.path().join("issuer")).unwrap();
        std::fs::write(keys.anchor_key(), anchor.key_pem.expose_secret()).unwrap();
        let now = OffsetDateTime::now_utc();
        let issuer = meshfleet_identity::generate_issuer(
            &anchor.cert_pem,
            &anchor.key_pem,
            "identity.linkerd.cluster.local",
            now,
        )
        .unwrap();
        std::fs::write(keys.issuer_cert(cluster), &issuer.cert_pem).unwrap();
        std::fs::write(keys.issuer_key(cluster), issuer.key_pem.expose_secret()).unwrap();
        dir
    }

    #[test]
    fn identity_material_is_checked_before_it_is_used() {
        let now = OffsetDateTime::now_utc();
        let anchor = meshfleet_identity::generate_anchor(now).unwrap();
        let other = meshfleet_identity::generate_anchor(now).unwrap();
        let dir = key_folder_with_issuer(&anchor, "pro");
        let keys = KeyFolder::new(dir.path());

        let values = anchor_values(&plan_identity(&anchor.cert_pem), &keys).unwrap();
        assert_eq!(values.0["tls.crt"].expose_secret(), anchor.cert_pem);
        let issuer = issuer_values(&plan_identity(&anchor.cert_pem), &keys, "pro").unwrap();
        assert_eq!(
            issuer.0.keys().collect::<Vec<_>>(),
            EntryKind::Issuer.value_names()
        );
        assert_eq!(issuer.0["ca.crt"].expose_secret(), anchor.cert_pem);

        // During an anchor rotation the bundle holds two; tls.crt is the one the key signs with.
        let bundle = format!("{}{}", other.cert_pem, anchor.cert_pem);
        let values = anchor_values(&plan_identity(&bundle), &keys).unwrap();
        assert_eq!(values.0["tls.crt"].expose_secret().trim(), anchor.cert_pem.trim());

        assert!(matches!(
            anchor_values(&plan_identity(&other.cert_pem), &keys),
            Err(SyncError::KeyMismatch { .. })
        ));
        assert!(matches!(
            issuer_values(&plan_identity(&other.cert_pem), &keys, "pro"),
            Err(SyncError::NotChained { .. })
        ));
        std::fs::write(keys.issuer_key("pro"), anchor.key_pem.expose_secret()).unwrap();
        let mismatch = issuer_values(&plan_identity(&anchor.cert_pem), &keys, "pro")
            .err()
            .unwrap();
        assert_eq!(mismatch.code(), "key-mismatch");
        assert!(!mismatch.to_string().contains("PRIVATE KEY"));
        assert!(matches!(
            issuer_values(&plan_identity(&anchor.cert_pem), &keys, "studio"),
            Err(SyncError::KeyMissing { .. })
        ));
    }

    #[test]
    fn changed_names_cover_added_changed_and_removed_values() {
        let desired = Values::new([("a", SecretString::from("1")), ("b", SecretString::from("2"))]);
        let current: BTreeMap<String, SecretString> = [("b", "3"), ("c", "4")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), SecretString::from(v)))
            .collect();
        assert_eq!(desired.changed(&current), ["a", "b", "c"]);
        assert!(desired.changed(&desired.0.clone()).is_empty());
    }
}
