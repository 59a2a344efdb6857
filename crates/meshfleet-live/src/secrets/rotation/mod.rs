//! `secrets sync --rotate`: link credential rotation, make-before-break.
//!
//! A link's credentials are the token of a remote-access ServiceAccount on its target.
//! A token is revoked for good only with its account, and Linkerd's controllers read
//! their credentials only when they start (the service mirror also when its Link's spec
//! changes; the destination controller never on an update), so a rotation is a new
//! account, used by restarted controllers, before the old account goes. The state lives
//! in the fleet file (`spec.secrets.linkCredentials`) and every change to what a target
//! grants is a rendered, reviewed commit; this module does only the live steps, each
//! verified before the next, and says what blocks:
//!
//! 1. start: record `rotation: {links, phase: granting}`. Rendered, every target grants
//!    the next account (`...-g<N+1>`) beside the current one.
//! 2. granting, per link: the next account's token is on the target and accepted; Vault
//!    gets the kubeconfig with it; both source Secrets are force-synced from Vault
//!    (ExternalSecret `force-sync` annotation) and hold it; then `controller-<link>` and
//!    `linkerd-destination` on each source are restarted (a rollout restart, not a Link
//!    spec change: the Link is GitOps-owned, a spec edit would be drift, and the
//!    destination has no Link to edit) and their pods are newer than the Secrets; the
//!    Secret's token is accepted. Then record `generations: +1, phase: retiring`.
//!    Rendered, the targets drop the old account.
//! 3. retiring, per link: the old account is gone from the target, and the previous
//!    kubeconfig (KV v2 keeps it) gets 401 there. Then the rotation block is removed.
//!
//! With `spec.secrets.sops` ([`Secrets::Sops`]) step 2 keeps the credentials in the
//! rendered tree instead: the next kubeconfig is sealed into the link's two SOPS files
//! (the run stops there: commit them), and "the source Secrets hold it" is Flux having
//! applied that commit, verified on the cluster, never a force-sync. In step 3 nothing
//! keeps the previous kubeconfig, so the old token is known revoked by its account being
//! gone (a token dies with its account).
//!
//! Every step checks before it acts, so an interrupted run is continued by running it
//! again; a run changes nothing it has not verified it may change. No value reaches a
//! report: steps say what happened, never with what.
//!
//! Where to look: this file is the state machine (start, continue `granting` or
//! `retiring`, what the run records); [`report`] what a run says; the live steps are in
//! `granting`, `reload` and `retiring`, over the shared `context`.

mod context;
mod granting;
mod reload;
mod report;
mod retiring;

use std::collections::BTreeSet;
use std::time::Duration;

use crate::cluster::Kubeconfigs;
use crate::vault::{KvClient, VaultSettings};
use meshfleet_fleet::lifecycle::LinkCredentialsState;
use meshfleet_fleet::model::RotationPhase;
use meshfleet_identity::sops::AgeIdentities;
use meshfleet_plan::{FleetPlan, LinkPlan};

use context::{Ctx, Store};
use granting::grant;
pub(crate) use reload::deployment_pods;
pub use report::{LinkProgress, Restart, RotationReport, Step, StepId, StepState};
use retiring::retire;

/// The annotation External Secrets watches to refresh an ExternalSecret now.
pub const FORCE_SYNC_ANNOTATION: &str = "force-sync";
/// The pod-template annotation `kubectl rollout restart` sets.
pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";
/// The field manager of every patch the rotation makes (its restarts are found by it).
pub const FIELD_MANAGER: &str = "meshfleet";

/// What to do.
#[derive(Debug, Clone)]
pub struct RotateOptions {
    /// Look and report; change nothing (no Vault write, no annotation, no restart, no
    /// fleet-file edit). This is the rotation's status.
    pub dry_run: bool,
    /// The links to rotate when starting (`<source>-to-<target>`); empty = every link.
    pub links: Vec<String>,
    /// How long to wait for External Secrets and for a rollout.
    pub wait: Duration,
}

impl Default for RotateOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            links: Vec::new(),
            wait: Duration::from_secs(120),
        }
    }
}

/// Where the credentials of the links are kept, and what meshfleet needs to write them.
#[derive(Debug, Clone, Copy)]
pub enum Secrets<'a> {
    /// Vault (`spec.secrets.vault`), with meshfleet's settings (`None`: not given).
    Vault(Option<&'a VaultSettings>),
    /// SOPS files in the rendered tree (`spec.secrets.sops`): the tree and an operator's
    /// age identities.
    Sops {
        /// The rendered tree (`--out`).
        tree: &'a std::path::Path,
        /// An operator's key.
        identities: &'a AgeIdentities,
    },
}

/// Where the rotation was when the run began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// No rotation: this run starts one.
    Start,
    /// The targets grant both accounts; links move to the next one.
    Granting,
    /// The links use the next account; the old one leaves the targets.
    Retiring,
}

impl Stage {
    /// The stable spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Granting => "granting",
            Self::Retiring => "retiring",
        }
    }
}

/// Why a rotation could not be run at all (before any cluster was touched).
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// `--link` names no link of the fleet.
    #[error("`{0}` is not a link of the fleet")]
    UnknownLink(String, Vec<String>),
    /// `--link` differs from the rotation in progress.
    #[error("a rotation of {} is in progress; `--link` cannot change it", .0.join(", "))]
    OtherRotation(Vec<String>),
    /// The fleet has no links.
    #[error("the fleet has no links, so there are no link credentials to rotate")]
    NoLinks,
    /// No kubeconfig to reach the clusters.
    #[error("no kubeconfig was loaded, so the clusters cannot be read")]
    NoKubeconfig,
    /// No Vault settings, so the credentials cannot be written.
    #[error("no Vault settings were given, so the link credentials cannot be read or written")]
    NoVault,
    /// Vault could not be used.
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
    /// With SOPS: the key given is not an operator's.
    #[error("the age key file holds none of the recipients in `spec.secrets.sops.age.operators`")]
    NotAnOperator,
}

impl meshfleet_fleet::diagnostic::Hint for RotateError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::UnknownLink(_, known) => Some(format!("the fleet's links are {}", known.join(", "))),
            Self::OtherRotation(_) => {
                Some("run `meshfleet secrets sync --rotate` without `--link` to continue it".into())
            }
            Self::NoLinks => None,
            Self::NoKubeconfig => Some("set `KUBECONFIG` or pass `--kubeconfig`".into()),
            Self::NoVault => Some("set `VAULT_ADDR` and `VAULT_TOKEN` (or `vault login`)".into()),
            Self::Vault(e) => e.hint(),
            Self::NotAnOperator => Some(
                "point `SOPS_AGE_KEY_FILE` (or `--age-key`) at an operator's key, or add its recipient under `sops.age.operators`".into(),
            ),
        }
    }
}

/// Start or continue the rotation the plan records (`plan.link_credentials`).
pub async fn rotate(
    plan: &FleetPlan,
    kubeconfigs: Option<&Kubeconfigs>,
    secrets: Secrets<'_>,
    options: &RotateOptions,
) -> Result<RotationReport, RotateError> {
    let recorded = &plan.link_credentials;
    let links: Vec<&LinkPlan> = plan.clusters.iter().flat_map(|c| &c.outgoing).collect();
    if links.is_empty() {
        return Err(RotateError::NoLinks);
    }
    let Some((rotating, phase)) = &recorded.rotation else {
        return start(&links, recorded, options);
    };
    if !options.links.is_empty() && options.links.iter().collect::<BTreeSet<_>>() != rotating.iter().collect()
    {
        return Err(RotateError::OtherRotation(rotating.clone()));
    }
    let kubeconfigs = kubeconfigs.ok_or(RotateError::NoKubeconfig)?;
    let kv;
    let store = match secrets {
        Secrets::Vault(vault) => {
            let vault_plan = plan.vault.as_ref().ok_or(RotateError::NoVault)?;
            kv = KvClient::new(vault.ok_or(RotateError::NoVault)?, &vault_plan.mount)?;
            Store::Vault {
                kv: &kv,
                vault: vault_plan,
            }
        }
        Secrets::Sops { tree, identities } => {
            let operators = plan
                .sops
                .as_ref()
                .map(|s| s.operators.clone())
                .unwrap_or_default();
            if !identities
                .recipients()
                .iter()
                .any(|r| operators.contains(&r.to_string()))
            {
                return Err(RotateError::NotAnOperator);
            }
            Store::Sops {
                tree,
                identities,
                lock: tokio::sync::Mutex::new(()),
            }
        }
    };
    let ctx = Ctx {
        plan,
        kubeconfigs,
        store,
        options,
    };
    let selected: Vec<&LinkPlan> = links
        .into_iter()
        .filter(|l| rotating.contains(&l.credentials_id()))
        .collect();
    Ok(match phase {
        RotationPhase::Granting => grant(&ctx, &selected, recorded).await,
        RotationPhase::Retiring => retire(&ctx, &selected, recorded).await,
    })
}

fn start(
    links: &[&LinkPlan],
    recorded: &LinkCredentialsState,
    options: &RotateOptions,
) -> Result<RotationReport, RotateError> {
    let known: Vec<String> = links.iter().map(|l| l.credentials_id()).collect();
    let mut chosen: Vec<String> = if options.links.is_empty() {
        known.clone()
    } else {
        for id in &options.links {
            if !known.contains(id) {
                let mut known = known;
                known.sort();
                return Err(RotateError::UnknownLink(id.clone(), known));
            }
        }
        options.links.clone()
    };
    chosen.sort();
    chosen.dedup();
    let progress = links
        .iter()
        .filter(|l| chosen.contains(&l.credentials_id()))
        .map(|l| LinkProgress {
            id: l.credentials_id(),
            from: l.account(),
            to: l.following_account(),
            steps: Vec::new(),
        })
        .collect();
    Ok(RotationReport {
        stage: Stage::Start,
        links: progress,
        restarts: Vec::new(),
        recorded: Some(LinkCredentialsState {
            generations: recorded.generations.clone(),
            rotation: Some((chosen, RotationPhase::Granting)),
        }),
        now: Some(Stage::Granting),
    })
}
