//! `secrets sync --out DIR` for a fleet with `spec.secrets.sops`: the same values as the
//! Vault sync (the anchor key pair or static issuers from the key folder, each link's
//! kubeconfig from its target's remote-access token), written as SOPS-encrypted Secrets
//! into the rendered tree, each for its cluster's age recipient and the operators'.
//!
//! Every file is computed first. A file in DIR that the operator's key cannot open, or a
//! recipient that is not an age key, stops the run: nothing is written (the tree belongs
//! to someone else, or the fleet file is wrong). A value that cannot be computed now (an
//! unreachable cluster, a target whose multicluster chart has not yet created the link's
//! remote-access account, a missing key) leaves that one file as it is, absent on a first
//! run, and the others are written: a new fleet's first sync must put the anchor in git
//! before Flux can install the chart that creates the accounts. A file whose plaintext and
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
    /// A file of the tree cannot be opened, or a recipient is unusable.
    #[error("`{path}`: {source}")]
    Sops {
        /// The file, relative to the tree.
        path: String,
        /// What is wrong.
        #[source]
        source: SopsError,
    },
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
            Self::Sops { source, .. } => source.hint(),
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
    /// Whether the tree was written (false in a dry run, when a file could not be
    /// opened or a recipient is unusable, or when nothing changed).
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
        // A file left alone (a rotation moves it, or its value cannot be computed now)
        // stays as the tree holds it.
        if let (SealOutcome::Rotating | SealOutcome::Failed(SealError::Sync(_)), Some(old)) = (&outcome, old)
        {
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
    let unusable = report
        .entries
        .iter()
        .any(|e| matches!(e.outcome, SealOutcome::Failed(SealError::Sops { .. })));
    if unusable || options.dry_run || !changed {
        return Ok(report);
    }
    let tree = meshfleet_render::render_with(plan, &next)?;
    tree.write_atomically(out)?;
    tracing::info!(out = %out.display(), files = next.0.len(), "sealed secrets written");
    report.written = true;
    Ok(report)
}

/// The sealed files of one link's credentials (both Secrets) in the tree at `out`, made
/// to hold `kubeconfig` (a credential rotation's next one): the tree is rendered again
/// with them and written atomically, unless it already holds them or `dry_run`.
/// Returns whether they changed (or would), and their paths.
pub fn seal_link_credentials(
    plan: &FleetPlan,
    out: &Path,
    identities: &AgeIdentities,
    link: &meshfleet_plan::LinkPlan,
    kubeconfig: &secrecy::SecretString,
    dry_run: bool,
) -> Result<(bool, Vec<String>), SealRunError> {
    let sops_plan = plan.sops.as_ref().ok_or(SealRunError::NotSops)?;
    let mut files = SealedFiles::read(plan, out).map_err(SealRunError::Read)?;
    let values = super::Values::new([("kubeconfig", kubeconfig.clone())]);
    let lastmodified = sops::now_rfc3339();
    let (mut changed, mut paths) = (false, Vec::new());
    for secret in sealed_secrets(plan).iter().filter(|s| {
        matches!(&s.source, SealedSource::Credentials { source, target }
            if *source == link.source && *target == link.target)
    }) {
        let path = secret.path();
        let old = files.0.get(&path);
        let text =
            seal_one(secret, &values, sops_plan, old, identities, &lastmodified).map_err(|source| {
                SealRunError::Sops {
                    path: path.clone(),
                    source,
                }
            })?;
        if old != Some(&text) {
            changed = true;
            files.0.insert(path.clone(), text);
        }
        paths.push(path);
    }
    if changed && !dry_run {
        meshfleet_render::render_with(plan, &files)?.write_atomically(out)?;
        tracing::info!(link = %link.credentials_id(), out = %out.display(), "sealed the next credentials");
    }
    Ok((changed, paths))
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
