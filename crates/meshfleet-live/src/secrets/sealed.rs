//! `secrets sync --out DIR` for a fleet with `spec.secrets.sops`: the same values as the
//! Vault sync (the anchor key pair or static issuers from the key folder, each link's
//! kubeconfig from its target's remote-access token), written as SOPS-encrypted Secrets
//! into the rendered tree, each for its cluster's age recipient and the operators'.
//!
//! All or nothing: every file is computed first; when any entry fails (an unreachable
//! cluster, a missing key, a file in DIR that the operator's key cannot open) nothing is
//! written, so a tree never holds a mix. A file whose plaintext and recipients are
//! unchanged is kept byte for byte ([`meshfleet_identity::sops::seal`]), so a second run
//! changes nothing in git. The tree is then rendered with the new files
//! ([`meshfleet_render::render_with`]) and swapped in atomically, as `render` does.

use std::collections::BTreeMap;
use std::path::Path;

use secrecy::ExposeSecret as _;

use super::remote_access::link_entries;
use super::{Action, SyncError, SyncOptions, identity_entries};
use crate::cluster::Kubeconfigs;
use meshfleet_identity::keys::KeyFolder;
use meshfleet_identity::sops::{self, AgeIdentities, AgeRecipient, SopsError};
use meshfleet_plan::FleetPlan;
use meshfleet_render::sealed::{SealedSecret, SealedSource, sealed_secrets};
use meshfleet_render::{RenderError, SealedFiles, TreeError};

/// Why one sealed file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Its values could not be computed (as in the Vault sync).
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// Its previous file or a recipient is unusable.
    #[error("`{path}`: {source}")]
    Sops {
        /// The file, relative to the tree.
        path: String,
        /// What is wrong.
        #[source]
        source: SopsError,
    },
}

impl meshfleet_fleet::diagnostic::Hint for SealError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::Sync(e) => e.hint(),
            Self::Sops { source, .. } => source.hint(),
        }
    }
}

/// Errors that stop the whole run.
#[derive(Debug, thiserror::Error)]
pub enum SealRunError {
    /// The operator's key opens none of the fleet's operator recipients.
    #[error("the age key file holds none of the recipients in `spec.secrets.sops.age.operators` ({have})")]
    NotAnOperator {
        /// The key file's recipients (public).
        have: String,
    },
    /// The fleet has no `spec.secrets.sops`.
    #[error("the fleet has no `spec.secrets.sops`")]
    NotSops,
    /// Reading the output folder failed.
    #[error("cannot read the encrypted files in the output folder: {0}")]
    Read(#[source] std::io::Error),
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Writing the tree failed.
    #[error(transparent)]
    Tree(#[from] TreeError),
}

impl meshfleet_fleet::diagnostic::Hint for SealRunError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::NotAnOperator { .. } => Some(
                "point `SOPS_AGE_KEY_FILE` (or `--age-key`) at an operator's key, or add its recipient under `sops.age.operators`".into(),
            ),
            Self::NotSops => Some("without `--out`, `secrets sync` writes to Vault".into()),
            Self::Read(_) => None,
            Self::Render(e) => e.hint(),
            Self::Tree(e) => e.hint(),
        }
    }
}

/// How one sealed file ended.
#[derive(Debug)]
pub enum SealOutcome {
    /// Written (or, in a dry run, would be).
    Changed(Action),
    /// Its plaintext and recipients are unchanged: the file is kept as it is.
    Unchanged,
    /// Left alone: a rotation of this link is moving its credentials.
    Rotating,
    /// Not computed; nothing was written at all.
    Failed(SealError),
}

/// One sealed file and what happened to it.
#[derive(Debug)]
pub struct SealEntry {
    /// Where its values come from: `trust-anchor`, `issuer/<cluster>`,
    /// `credentials/<source>-to-<target>`.
    pub id: String,
    /// The file, relative to the tree.
    pub path: String,
    /// How it ended.
    pub outcome: SealOutcome,
}

/// Everything one run did.
#[derive(Debug)]
pub struct SealReport {
    /// Entries in tree order (by cluster, identity first).
    pub entries: Vec<SealEntry>,
    /// Whether the tree was written (false in a dry run, after a failure, or when
    /// nothing changed).
    pub written: bool,
}

impl SealReport {
    /// Entries that failed.
    pub fn failed(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e.outcome, SealOutcome::Failed(_)))
            .count()
    }
}

fn source_id(secret: &SealedSecret) -> String {
    match &secret.source {
        SealedSource::TrustAnchor => "trust-anchor".into(),
        SealedSource::Issuer => format!("issuer/{}", secret.cluster),
        SealedSource::Credentials { source, target } => format!("credentials/{source}-to-{target}"),
    }
}

/// Compute every sealed file, then (unless a dry run or a failure) render the tree with
/// them into `out`.
pub async fn sync(
    plan: &FleetPlan,
    keys: &KeyFolder,
    kubeconfigs: Option<&Kubeconfigs>,
    identities: &AgeIdentities,
    out: &Path,
    options: &SyncOptions,
) -> Result<SealReport, SealRunError> {
    let sops_plan = plan.sops.as_ref().ok_or(SealRunError::NotSops)?;
    let mine: Vec<String> = identities.recipients().iter().map(ToString::to_string).collect();
    if !mine.iter().any(|r| sops_plan.operators.contains(r)) {
        return Err(SealRunError::NotAnOperator {
            have: mine.join(", "),
        });
    }
    let previous = SealedFiles::read(plan, out).map_err(SealRunError::Read)?;
    let mut pending: BTreeMap<String, (Result<super::Values, SyncError>, bool)> =
        identity_entries(plan, keys)
            .into_iter()
            .map(|p| (p.id, (p.desired, p.rotating)))
            .collect();
    for p in link_entries(plan, kubeconfigs).await {
        pending.insert(p.id, (p.desired, p.rotating));
    }
    let lastmodified = sops::now_rfc3339();
    let mut next = SealedFiles::default();
    let mut entries = Vec::new();
    for secret in sealed_secrets(plan) {
        let (id, path) = (source_id(&secret), secret.path());
        let old = previous.0.get(&path);
        let outcome = match pending.get(&id) {
            Some((_, true)) => SealOutcome::Rotating,
            Some((Err(e), _)) => SealOutcome::Failed(e.clone().into()),
            None => {
                SealOutcome::Failed(SyncError::Kubeconfig(format!("no value was computed for `{id}`")).into())
            }
            Some((Ok(values), false)) => {
                match seal_one(&secret, values, sops_plan, old, identities, &lastmodified) {
                    Ok(text) => {
                        let outcome = match old {
                            Some(o) if *o == text => SealOutcome::Unchanged,
                            Some(_) => SealOutcome::Changed(Action::Update),
                            None => SealOutcome::Changed(Action::Create),
                        };
                        next.0.insert(path.clone(), text);
                        outcome
                    }
                    Err(source) => SealOutcome::Failed(SealError::Sops {
                        path: path.clone(),
                        source,
                    }),
                }
            }
        };
        if let (SealOutcome::Rotating, Some(old)) = (&outcome, old) {
            next.0.insert(path.clone(), old.clone());
        }
        if let SealOutcome::Failed(e) = &outcome {
            tracing::info!(entry = %id, error = %meshfleet_fleet::diagnostic::error_chain(e), "not sealed");
        }
        entries.push(SealEntry { id, path, outcome });
    }
    let mut report = SealReport {
        entries,
        written: false,
    };
    let changed = report
        .entries
        .iter()
        .any(|e| matches!(e.outcome, SealOutcome::Changed(_)));
    if report.failed() > 0 || options.dry_run || !changed {
        return Ok(report);
    }
    let tree = meshfleet_render::render_with(plan, &next)?;
    tree.write_atomically(out)?;
    tracing::info!(out = %out.display(), files = next.0.len(), "sealed secrets written");
    report.written = true;
    Ok(report)
}

/// The SOPS file of one Secret: the previous one when unchanged, else a new encryption.
/// A previous file the operator cannot open is an error, never silently replaced.
fn seal_one(
    secret: &SealedSecret,
    values: &super::Values,
    sops_plan: &meshfleet_plan::SopsPlan,
    previous: Option<&String>,
    identities: &AgeIdentities,
    lastmodified: &str,
) -> Result<String, SopsError> {
    if let Some(previous) = previous {
        sops::decrypt(previous, identities)?;
    }
    let recipients = sops_plan
        .recipients_of(&secret.cluster)
        .iter()
        .map(|r| r.parse::<AgeRecipient>())
        .collect::<Result<Vec<_>, _>>()?;
    let document = secret.document(values.0.iter().map(|(k, v)| (k.as_str(), v.expose_secret())));
    sops::seal(
        &document,
        &recipients,
        previous.map(String::as_str),
        identities,
        lastmodified,
    )
}
