//! What a rotation run reports: per link, its steps in order and how each stands;
//! the restarts of the sources; the state to record. No value reaches it, only names
//! and versions.

use super::Stage;
use crate::secrets::SyncError;
use meshfleet_fleet::lifecycle::LinkCredentialsState;

/// The steps of a link's rotation, in order. Their spelling is stable (`-o json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StepId {
    /// The target has the next account and a filled token Secret for it.
    NextAccount,
    /// The target accepts the next token.
    NextTokenAccepted,
    /// Vault holds the kubeconfig with the next token.
    Vault,
    /// Both source Secrets hold it.
    SourceSecrets,
    /// With SOPS: the link's files in the rendered tree hold it.
    Sealed,
    /// The source's controller and destination started after their Secrets changed.
    Reloaded,
    /// The source's Secret is accepted by the target.
    CredentialsAccepted,
    /// The old account is gone from the target.
    OldAccountRemoved,
    /// The previous kubeconfig gets 401 from the target.
    OldTokenRevoked,
}

impl StepId {
    /// The stable spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NextAccount => "next-account",
            Self::NextTokenAccepted => "next-token-accepted",
            Self::Vault => "vault",
            Self::SourceSecrets => "source-secrets",
            Self::Sealed => "sealed",
            Self::Reloaded => "reloaded",
            Self::CredentialsAccepted => "credentials-accepted",
            Self::OldAccountRemoved => "old-account-removed",
            Self::OldTokenRevoked => "old-token-revoked",
        }
    }
}

/// How a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// True on the clusters (found so, or made so by this run).
    Done,
    /// A dry run: this is what a real run would do.
    Would,
    /// Cannot be done (safely) now; the reason and the hint say what to do.
    Blocked,
}

/// One step of one link.
#[derive(Debug, Clone)]
pub struct Step {
    /// Which.
    pub id: StepId,
    /// How it stands.
    pub state: StepState,
    /// What was found or done (names and versions, never values).
    pub detail: String,
    /// For a blocked step, the fix.
    pub hint: Option<String>,
}

impl Step {
    pub(super) fn done(id: StepId, detail: impl Into<String>) -> Self {
        Self {
            id,
            state: StepState::Done,
            detail: detail.into(),
            hint: None,
        }
    }

    pub(super) fn would(id: StepId, detail: impl Into<String>) -> Self {
        Self {
            id,
            state: StepState::Would,
            detail: detail.into(),
            hint: None,
        }
    }

    pub(super) fn blocked(id: StepId, detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            id,
            state: StepState::Blocked,
            detail: detail.into(),
            hint: Some(hint.into()),
        }
    }

    pub(super) fn from_error(id: StepId, error: &SyncError) -> Self {
        use meshfleet_fleet::diagnostic::Hint as _;
        Self {
            id,
            state: StepState::Blocked,
            detail: error.to_string(),
            hint: error.hint(),
        }
    }
}

/// One link's rotation.
#[derive(Debug, Clone)]
pub struct LinkProgress {
    /// `<source>-to-<target>`.
    pub id: String,
    /// The account the link moves from.
    pub from: String,
    /// The account it moves to.
    pub to: String,
    /// Its steps so far, in order; the last one may be blocked.
    pub steps: Vec<Step>,
}

impl LinkProgress {
    pub(super) fn ok(&self) -> bool {
        self.steps.iter().all(|s| s.state == StepState::Done)
    }

    pub(super) fn push(&mut self, step: Step) -> bool {
        let ok = step.state != StepState::Blocked;
        self.steps.push(step);
        ok
    }
}

/// A Deployment restarted (or to restart) so that it reads its new credentials.
#[derive(Debug, Clone)]
pub struct Restart {
    /// The source cluster.
    pub cluster: String,
    /// `<namespace>/<name>`.
    pub deployment: String,
    /// What happened.
    pub state: StepState,
    /// Found fresh, restarted, or why not.
    pub detail: String,
}

/// What one run found and did.
#[derive(Debug, Clone)]
pub struct RotationReport {
    /// Where the rotation was when the run began.
    pub stage: Stage,
    /// Every link of the rotation.
    pub links: Vec<LinkProgress>,
    /// The Deployments of the sources.
    pub restarts: Vec<Restart>,
    /// The fleet-file state this run recorded (or, dry, would record).
    pub recorded: Option<LinkCredentialsState>,
    /// Where the rotation is now.
    pub now: Option<Stage>,
}

impl RotationReport {
    /// Whether a step is blocked.
    pub fn blocked(&self) -> bool {
        self.links
            .iter()
            .flat_map(|l| &l.steps)
            .any(|s| s.state == StepState::Blocked)
            || self.restarts.iter().any(|r| r.state == StepState::Blocked)
    }
}
