//! What the lifecycle commands record in the fleet file, as typed values: the link
//! credential state (`spec.secrets.linkCredentials`, written by `secrets sync --rotate`)
//! and the trust anchor rotation (`spec.identity.rotation`, written by `trust rotate`).
//!
//! They live on the ground floor because two floors meet in them: validation parses the
//! written values into them once (`meshfleet_validate::Parsed`), and the fleet-file
//! editor ([`crate::edit::FleetFileMut`]) writes them back as text. Neither reads the
//! other's side: the editor never parses a state out of the file for anyone to use.

use std::collections::BTreeMap;

use crate::model::{AnchorRotationPhase, RotationPhase};

/// What `spec.secrets.linkCredentials` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkCredentialsState {
    /// Generation per link id (`<source>-to-<target>`); 0 is left out.
    pub generations: BTreeMap<String, u32>,
    /// The rotation in progress: its links and phase.
    pub rotation: Option<(Vec<String>, RotationPhase)>,
}

impl LinkCredentialsState {
    /// Whether there is nothing to record (the block is left out of the file).
    pub fn is_empty(&self) -> bool {
        self.generations.is_empty() && self.rotation.is_none()
    }
}

/// A trust anchor rotation in progress, as validation checked it against the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorRotation {
    /// Where it is.
    pub phase: AnchorRotationPhase,
    /// Fingerprint (lowercase, `:`-separated) of the anchor being retired.
    pub from: String,
    /// Fingerprint of the anchor being rolled out.
    pub to: String,
}

impl AnchorRotation {
    /// The anchor the issuers should be signed by in this phase.
    pub fn signing(&self) -> &str {
        if self.phase.issuers_on_new() {
            &self.to
        } else {
            &self.from
        }
    }
}
