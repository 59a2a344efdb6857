//! Private keys that a trust anchor rotation retires, still kept in Vault's KV v2
//! history: found, reported and destroyed.
//!
//! `secrets sync` writes each new signing anchor (`trust-anchor`, cert-manager issuers)
//! or each new static issuer (`issuer/<cluster>`, Vault issuers) as a new KV v2 version;
//! the earlier versions stay readable (`vault kv get -version=N`). An anchor rotated out
//! because it may be compromised must not stay one command away, so the end of a
//! rotation destroys them (`trust rotate next` in `retire`, unless `--keep-retired-key`)
//! and `trust rotate status` says whether any remain.
//!
//! A version is *retired* when it is not the key's current version, still readable, holds
//! a `tls.key`, and its `tls.crt` is neither an anchor of the fleet's bundle nor signed
//! by one. During a rotation the bundle holds both anchors, so nothing of either is
//! retired; once `retire` has left only the new anchor in the bundle, exactly the
//! versions of the old anchor and of the issuers it signed are. A version whose
//! certificate does not parse is kept: meshfleet destroys only what it recognised.
//! Deleted (not destroyed) versions cannot be read, so what they hold is unknown; they
//! are reported, never destroyed.
//!
//! Destroying is idempotent (already destroyed versions are left out, and Vault accepts
//! them anyway), so an interrupted run is finished by running it again. Values are read
//! into [`SecretString`]s only to be classified; no value reaches a report.

use serde::Serialize;

use crate::vault::{KvClient, VaultError};
use meshfleet_identity::CertInfo;
use meshfleet_plan::FleetPlan;

/// One key that may hold retired private keys, and what its versions hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetiredKeyEntry {
    /// The key relative to the fleet's prefix: `trust-anchor` or `issuer/<cluster>`.
    pub id: String,
    /// The path as `vault kv get` takes it: `<mount>/<path>/<id>`.
    pub path: String,
    /// The key's current version (never retired).
    pub current_version: u64,
    /// Readable versions holding a retired private key.
    pub retired_versions: Vec<u64>,
    /// Versions already destroyed.
    pub destroyed_versions: Vec<u64>,
    /// Versions deleted but not destroyed: unreadable, so what they hold is unknown.
    pub deleted_versions: Vec<u64>,
}

/// Every identity key of the fleet that exists in Vault.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetiredKeys {
    /// Per key, `trust-anchor` first, then issuers by cluster.
    pub entries: Vec<RetiredKeyEntry>,
}

impl RetiredKeys {
    /// Whether a readable version still holds a retired private key.
    pub fn remain(&self) -> bool {
        self.entries.iter().any(|e| !e.retired_versions.is_empty())
    }

    /// The number of versions holding a retired key.
    pub fn count(&self) -> usize {
        self.entries.iter().map(|e| e.retired_versions.len()).sum()
    }
}

/// Whether a version's values are retired material: a private key whose certificate
/// is no anchor of `anchors` and signed by none. `None` when the certificate does not
/// parse (unknown, kept).
pub fn is_retired(
    data: &std::collections::BTreeMap<String, secrecy::SecretString>,
    anchors: &[CertInfo],
) -> Option<bool> {
    use secrecy::ExposeSecret as _;
    if !data.contains_key("tls.key") {
        return Some(false);
    }
    let cert = meshfleet_identity::parse_pem_bundle(data.get("tls.crt")?.expose_secret())
        .ok()?
        .into_iter()
        .next()?;
    let trusted = anchors
        .iter()
        .any(|a| a.sha256 == cert.sha256 || meshfleet_identity::signed_by(&cert.der, &a.der));
    Some(!trusted)
}

/// Read the versions of `trust-anchor` and of every `issuer/<cluster>` and classify them
/// against the fleet's bundle.
pub async fn find(kv: &KvClient, plan: &FleetPlan) -> Result<RetiredKeys, VaultError> {
    // A fleet without Vault keeps no key versions there.
    let Some(vault) = plan.vault.as_ref() else {
        return Ok(RetiredKeys::default());
    };
    let mut keys = vec![("trust-anchor".to_string(), vault.trust_anchor_key())];
    keys.extend(
        plan.clusters
            .iter()
            .map(|c| (format!("issuer/{}", c.name), vault.issuer_key(&c.name))),
    );
    let mut entries = Vec::new();
    for (id, key) in keys {
        let Some((current, versions)) = kv.versions(&key).await? else {
            continue;
        };
        let mut entry = RetiredKeyEntry {
            id,
            path: format!("{}/{key}", kv.mount()),
            current_version: current,
            retired_versions: Vec::new(),
            destroyed_versions: Vec::new(),
            deleted_versions: Vec::new(),
        };
        for v in versions {
            if v.version == current {
                continue;
            }
            if v.destroyed {
                entry.destroyed_versions.push(v.version);
                continue;
            }
            if v.deleted {
                entry.deleted_versions.push(v.version);
                continue;
            }
            match kv.read_version(&key, v.version).await? {
                Some(secret) if is_retired(&secret.data, &plan.identity.anchors) == Some(true) => {
                    entry.retired_versions.push(v.version);
                }
                Some(_) => {}
                // Deleted or destroyed between the two reads.
                None => entry.deleted_versions.push(v.version),
            }
        }
        entries.push(entry);
    }
    Ok(RetiredKeys { entries })
}

/// Destroy every retired version `found` lists; returns what is left (nothing retired,
/// the destroyed versions moved to `destroyed_versions`).
pub async fn destroy(
    kv: &KvClient,
    plan: &FleetPlan,
    found: &RetiredKeys,
) -> Result<RetiredKeys, VaultError> {
    for entry in &found.entries {
        if entry.retired_versions.is_empty() {
            continue;
        }
        let Some(vault) = plan.vault.as_ref() else {
            continue;
        };
        let key = format!("{}/{}", vault.path, entry.id);
        kv.destroy(&key, &entry.retired_versions).await?;
        tracing::info!(path = %entry.path, versions = ?entry.retired_versions, "destroyed retired key versions");
    }
    let mut after = found.clone();
    for entry in &mut after.entries {
        entry.destroyed_versions.append(&mut entry.retired_versions);
        entry.destroyed_versions.sort_unstable();
    }
    Ok(after)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use secrecy::SecretString;
    use time::OffsetDateTime;

    use super::*;

    fn anchor() -> (CertInfo, String, SecretString) {
        let made = meshfleet_identity::generate_anchor(OffsetDateTime::now_utc()).unwrap();
        let info = meshfleet_identity::parse_pem_bundle(&made.cert_pem)
            .unwrap()
            .remove(0);
        (info, made.cert_pem, made.key_pem)
    }

    fn values(crt: &str, key: &SecretString) -> BTreeMap<String, SecretString> {
        [
            ("tls.crt".to_string(), SecretString::from(crt.to_string())),
            ("tls.key".to_string(), key.clone()),
        ]
        .into()
    }

    #[test]
    fn an_anchor_or_issuer_outside_the_bundle_is_retired() {
        let (old, old_pem, old_key) = anchor();
        let (new, new_pem, new_key) = anchor();
        let issuer = meshfleet_identity::generate_issuer(
            &old_pem,
            &old_key,
            "identity.linkerd.cluster.local",
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        let old_issuer = values(&issuer.cert_pem, &issuer.key_pem);
        // During the rotation both anchors are trusted: nothing is retired.
        let both = [old, new.clone()];
        assert_eq!(is_retired(&values(&old_pem, &old_key), &both), Some(false));
        assert_eq!(is_retired(&old_issuer, &both), Some(false));
        // After it, the old anchor and what it signed are.
        let only_new = [new];
        assert_eq!(is_retired(&values(&old_pem, &old_key), &only_new), Some(true));
        assert_eq!(is_retired(&old_issuer, &only_new), Some(true));
        assert_eq!(is_retired(&values(&new_pem, &new_key), &only_new), Some(false));
        // Unparsable: unknown, kept; no key: nothing secret.
        assert_eq!(is_retired(&values("junk", &old_key), &only_new), None);
        let mut no_key = values(&old_pem, &old_key);
        no_key.remove("tls.key");
        assert_eq!(is_retired(&no_key, &only_new), Some(false));
    }
}
