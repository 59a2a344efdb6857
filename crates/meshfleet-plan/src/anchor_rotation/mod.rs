//! Fleet-wide trust anchor rotation: the state kept in the fleet file
//! (`spec.identity.rotation`), and what each step of `meshfleet trust rotate` writes.
//!
//! A source proxy verifies the target gateway's certificate against its OWN bundle, so
//! the order is fleet-wide, not per cluster (linkerd2#4287 is what happens otherwise):
//!
//! | phase | bundle | issuers signed by | ready for `next` when, on every cluster |
//! | --- | --- | --- | --- |
//! | `distribute` | from + to | from | trust roots hold both; control-plane and meshed pods started after that |
//! | `issuers` | from + to | to | the issuer in use is signed by `to` |
//! | `recertify` | from + to | to | every meshed pod started after the issuer moved |
//! | `retire` | to | to | trust roots hold only `to` |
//!
//! Each step only changes files: the bundle (`identity.trustAnchor`), the fleet file
//! and the key folder. `render` then ships the bundle to every cluster, `secrets sync`
//! the keys to Vault; the steps are reviewed commits. Whether a cluster is ready is
//! `meshfleet_live::anchor_rotation`'s business.
//!
//! `abort` before `retire` never drops an anchor that signed something in use: in
//! `distribute` nothing was signed by `to`, so the bundle goes back to `from` alone; later,
//! the rotation turns round (`from` and `to` swap, phase `issuers`), so the issuers move
//! back first and the anchor that was new leaves last.

mod files;

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use time::OffsetDateTime;

pub use files::{ApplyError, FileChange, FileChanges};
pub use meshfleet_identity::{normalise_fingerprint, short};
pub use meshfleet_validate::AnchorRotation;

use crate::FleetPlan;
use meshfleet_fleet::edit::{EditError, FleetFileMut};
use meshfleet_fleet::model::{AnchorRotationPhase, IssuerKind};
use meshfleet_identity::keys::KeyFolder;
use meshfleet_identity::{CertInfo, IdentityError};

/// Why a step cannot be taken; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// `start` while a rotation is in progress.
    #[error("a trust anchor rotation is already in progress (phase `{0}`)")]
    InProgress(&'static str),
    /// `next`/`abort` without a rotation.
    #[error("no trust anchor rotation is in progress")]
    NotInProgress,
    /// `start` with a bundle of more than one anchor.
    #[error("the trust anchor bundle holds {0} anchors; a rotation starts from exactly one")]
    BundleNotSingle(usize),
    /// `abort` after the old anchor left the bundle.
    #[error("the old anchor has already left the bundle (phase `retire`); the rotation can only finish")]
    TooLateToAbort,
    /// A key file the step needs is missing.
    #[error("`{0}` does not exist")]
    KeyMissing(PathBuf),
    /// A key file the step would create exists.
    #[error("`{0}` exists; refusing to overwrite it")]
    KeyExists(PathBuf),
    /// A key file that does not belong to the anchor it should.
    #[error("`{path}` is not the private key of anchor {anchor}")]
    WrongKey {
        /// The key file.
        path: PathBuf,
        /// Short fingerprint of the anchor it should belong to.
        anchor: String,
    },
    /// Certificate generation failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The fleet file could not be updated.
    #[error(transparent)]
    Edit(#[from] EditError),
    /// Reading a file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl meshfleet_fleet::diagnostic::Hint for StepError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            Self::InProgress(_) => "see where it is with `meshfleet trust rotate status`; continue with `next`, or `abort`".into(),
            Self::NotInProgress => "start one with `meshfleet trust rotate start`".into(),
            Self::BundleNotSingle(_) => "finish or abort the rotation that left two anchors, or keep only the anchor in use in the bundle".into(),
            Self::TooLateToAbort => "no proxy uses the old anchor any more; finish with `meshfleet trust rotate next`".into(),
            Self::KeyMissing(_) => "pass the key folder that `meshfleet certs init` and `trust rotate start` wrote with `--keys`".into(),
            Self::KeyExists(_) => "a previous rotation left its key; move it away once you are sure nothing uses it".into(),
            Self::WrongKey { .. } => "the key folder does not belong to this fleet's bundle; pass the right one with `--keys`".into(),
            Self::Identity(_) | Self::Io(_) => return None,
            Self::Edit(e) => return meshfleet_fleet::diagnostic::Hint::hint(e),
        })
    }
}

/// The inputs of a step: the fleet as validated, its text, where its files are.
pub struct StepInput<'a> {
    /// The fleet file's path.
    pub fleet_path: &'a Path,
    /// Its text, as validated.
    pub fleet_text: &'a str,
    /// The plan validation built.
    pub plan: &'a FleetPlan,
    /// The anchor bundle file (`identity.trustAnchor`).
    pub anchor_path: &'a Path,
    /// The key folder.
    pub keys: &'a KeyFolder,
    /// Now.
    pub now: OffsetDateTime,
}

/// What a step will write, and the rotation it leaves.
#[derive(Debug)]
pub struct Step {
    /// The files, in the order they are written (the fleet file last).
    pub changes: FileChanges,
    /// The state after the step (`None` = no rotation).
    pub after: Option<AnchorRotation>,
    /// The new anchor (`start` only), for the report.
    pub new_anchor: Option<CertInfo>,
}

fn anchor(plan: &FleetPlan, fingerprint: &str) -> Option<CertInfo> {
    plan.identity
        .anchors
        .iter()
        .find(|c| c.sha256 == fingerprint)
        .cloned()
}

fn read_key(path: &Path) -> Result<SecretString, StepError> {
    if !path.exists() {
        return Err(StepError::KeyMissing(path.to_path_buf()));
    }
    Ok(KeyFolder::read_secret(path)?)
}

fn expect_key(path: &Path, cert: &CertInfo) -> Result<SecretString, StepError> {
    let key = read_key(path)?;
    if meshfleet_identity::key_matches(cert, &key) {
        Ok(key)
    } else {
        Err(StepError::WrongKey {
            path: path.to_path_buf(),
            anchor: short(&cert.sha256),
        })
    }
}

/// `start`: a new anchor, the bundle [current, new], phase `distribute`.
pub fn start(input: &StepInput<'_>) -> Result<Step, StepError> {
    if let Some(r) = &input.plan.identity.rotation {
        return Err(StepError::InProgress(r.phase.as_str()));
    }
    let current = match input.plan.identity.anchors.as_slice() {
        [one] => one.clone(),
        more => return Err(StepError::BundleNotSingle(more.len())),
    };
    let rotation_key = input.keys.rotation_anchor_key();
    if rotation_key.exists() {
        return Err(StepError::KeyExists(rotation_key));
    }
    let new = meshfleet_identity::generate_anchor(input.now)?;
    let new_info = meshfleet_identity::parse_pem_bundle(&new.cert_pem)?
        .into_iter()
        .next()
        .ok_or(IdentityError::Empty)?;
    let after = AnchorRotation {
        phase: AnchorRotationPhase::Distribute,
        from: current.sha256.clone(),
        to: new_info.sha256.clone(),
    };
    let bundle = meshfleet_identity::pem_bundle(&[current, new_info.clone()]);
    let mut changes = FileChanges::default();
    changes.push(FileChange::create_private(
        rotation_key,
        new.key_pem,
        "the new anchor's private key",
    ));
    changes.push(FileChange::write(
        input.anchor_path,
        bundle,
        "the anchor bundle: the current anchor and the new one",
    ));
    changes.push(fleet_change(input, Some(&after))?);
    Ok(Step {
        changes,
        after: Some(after),
        new_anchor: Some(new_info),
    })
}

/// `next`: the files of the step after the current phase (readiness is the caller's).
pub fn next(input: &StepInput<'_>) -> Result<Step, StepError> {
    let rotation = input
        .plan
        .identity
        .rotation
        .clone()
        .ok_or(StepError::NotInProgress)?;
    let mut changes = FileChanges::default();
    let after = match rotation.phase {
        AnchorRotationPhase::Distribute => {
            move_issuers(input, &rotation, &rotation.to, &mut changes)?;
            Some(AnchorRotation {
                phase: AnchorRotationPhase::Issuers,
                ..rotation
            })
        }
        AnchorRotationPhase::Issuers => Some(AnchorRotation {
            phase: AnchorRotationPhase::Recertify,
            ..rotation
        }),
        AnchorRotationPhase::Recertify => {
            let to = anchor(input.plan, &rotation.to).ok_or(IdentityError::Empty)?;
            changes.push(FileChange::write(
                input.anchor_path,
                meshfleet_identity::pem_bundle(&[to]),
                "the anchor bundle: only the new anchor",
            ));
            Some(AnchorRotation {
                phase: AnchorRotationPhase::Retire,
                ..rotation
            })
        }
        AnchorRotationPhase::Retire => {
            let old_key = input.keys.rotation_anchor_key();
            if old_key.exists() {
                changes.push(FileChange::rename(
                    old_key,
                    input.keys.retired_anchor_key(&rotation.from),
                    "the retired anchor's private key (kept; delete it when you no longer need it)",
                ));
            }
            None
        }
    };
    changes.push(fleet_change(input, after.as_ref())?);
    Ok(Step {
        changes,
        after,
        new_anchor: None,
    })
}

/// `abort`: back to `from` (see the module header for why it turns round after `distribute`).
pub fn abort(input: &StepInput<'_>) -> Result<Step, StepError> {
    let rotation = input
        .plan
        .identity
        .rotation
        .clone()
        .ok_or(StepError::NotInProgress)?;
    let mut changes = FileChanges::default();
    let after = match rotation.phase {
        AnchorRotationPhase::Distribute => {
            let from = anchor(input.plan, &rotation.from).ok_or(IdentityError::Empty)?;
            changes.push(FileChange::write(
                input.anchor_path,
                meshfleet_identity::pem_bundle(&[from]),
                "the anchor bundle: only the old anchor again",
            ));
            let new_key = input.keys.rotation_anchor_key();
            if new_key.exists() {
                changes.push(FileChange::rename(
                    new_key,
                    input.keys.retired_anchor_key(&rotation.to),
                    "the unused new anchor's private key (kept; nothing was signed with it)",
                ));
            }
            None
        }
        AnchorRotationPhase::Issuers | AnchorRotationPhase::Recertify => {
            let reversed = AnchorRotation {
                phase: AnchorRotationPhase::Issuers,
                from: rotation.to.clone(),
                to: rotation.from.clone(),
            };
            move_issuers(input, &reversed, &reversed.to, &mut changes)?;
            Some(reversed)
        }
        AnchorRotationPhase::Retire => return Err(StepError::TooLateToAbort),
    };
    changes.push(fleet_change(input, after.as_ref())?);
    Ok(Step {
        changes,
        after,
        new_anchor: None,
    })
}

/// Make `target` the signing anchor: swap the two anchor keys, and with `issuer: vault`
/// sign a new issuer per cluster with it (the replaced issuer files kept beside it).
fn move_issuers(
    input: &StepInput<'_>,
    rotation: &AnchorRotation,
    target: &str,
    changes: &mut FileChanges,
) -> Result<(), StepError> {
    let (signing, other) = (input.keys.anchor_key(), input.keys.rotation_anchor_key());
    let target_cert = anchor(input.plan, target).ok_or(IdentityError::Empty)?;
    let leaving = if target == rotation.to {
        &rotation.from
    } else {
        &rotation.to
    };
    let leaving_cert = anchor(input.plan, leaving).ok_or(IdentityError::Empty)?;
    let target_key = expect_key(&other, &target_cert)?;
    // The leaving anchor's key is checked too: `abort` needs it to sign issuers again.
    expect_key(&signing, &leaving_cert)?;
    changes.push(FileChange::swap(
        signing,
        other,
        "the anchor keys: `trust-anchor.key` is now the new signing anchor's",
    ));
    if input.plan.identity.issuer == IssuerKind::Vault {
        let target_pem = meshfleet_identity::pem_bundle(&[target_cert]);
        let name = format!(
            "identity.{}.{}",
            input.plan.linkerd.namespace, input.plan.linkerd.trust_domain
        );
        for cluster in &input.plan.clusters {
            let issuer = meshfleet_identity::generate_issuer(&target_pem, &target_key, &name, input.now)?;
            let (crt, key) = (
                input.keys.issuer_cert(&cluster.name),
                input.keys.issuer_key(&cluster.name),
            );
            let replaced = fs_err::read_to_string(&crt)
                .ok()
                .and_then(|pem| meshfleet_identity::parse_pem_bundle(&pem).ok())
                .and_then(|certs| certs.into_iter().next())
                .map_or_else(|| "unreadable".to_string(), |c| c.sha256);
            let (prev_crt, prev_key) = input.keys.replaced_issuer(&cluster.name, &replaced);
            if crt.exists() {
                changes.push(FileChange::rename(
                    crt.clone(),
                    prev_crt,
                    "the replaced issuer certificate (kept)",
                ));
            }
            if key.exists() {
                changes.push(FileChange::rename(
                    key.clone(),
                    prev_key,
                    "the replaced issuer key (kept)",
                ));
            }
            changes.push(FileChange::write(
                &crt,
                issuer.cert_pem,
                "a new issuer, signed by the new signing anchor",
            ));
            changes.push(FileChange::create_private(key, issuer.key_pem, "its private key"));
        }
    }
    Ok(())
}

fn fleet_change(input: &StepInput<'_>, after: Option<&AnchorRotation>) -> Result<FileChange, StepError> {
    let mut fleet = FleetFileMut::new(input.fleet_text)?;
    fleet.set_anchor_rotation(after)?;
    Ok(FileChange::write(
        input.fleet_path,
        fleet.into_text(),
        match after {
            Some(r) => format!(
                "the fleet file: `spec.identity.rotation.phase: {}`",
                r.phase.as_str()
            ),
            None => "the fleet file: `spec.identity.rotation` removed".to_string(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_normalise() {
        let upper = "AB".repeat(32);
        let want: Vec<&str> = std::iter::repeat_n("ab", 32).collect();
        assert_eq!(
            normalise_fingerprint(&upper).as_deref(),
            Some(want.join(":").as_str())
        );
        assert_eq!(
            normalise_fingerprint(&want.join(":")).as_deref(),
            Some(want.join(":").as_str())
        );
        assert_eq!(normalise_fingerprint("abc"), None);
        assert_eq!(normalise_fingerprint(&"zz".repeat(32)), None);
    }
}
