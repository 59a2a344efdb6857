//! Why one `secrets sync` entry failed, and how to fix it: every failure names what is
//! wrong (the cluster and object, the Vault path, the key file) and carries a hint, so
//! the binary can print `× <entry>: <error>` and `hint: ...` without knowing the cases.

use std::path::PathBuf;
use std::time::Duration;

use super::remote_access::{SERVICE_ACCOUNT_ANNOTATION, TOKEN_SECRET_TYPE};
use crate::cluster::ClusterError;
use crate::kube_failure::KubeFailure;
use crate::vault::VaultError;
use meshfleet_fleet::defaults::MULTICLUSTER_NAMESPACE as NS;

/// Why one entry could not be synced. Its [`Hint`](meshfleet_fleet::diagnostic::Hint) says how to
/// fix it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SyncError {
    /// Vault refused or could not be reached.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The target has no `apiServer`, so there is no server to write.
    #[error("cluster `{cluster}` has no `apiServer`, so a kubeconfig for it has no server")]
    ApiServerMissing {
        /// The target cluster.
        cluster: String,
    },
    /// Links exist but no kubeconfig was loaded.
    #[error("no kubeconfig was loaded, so cluster `{cluster}` cannot be read")]
    NoKubeconfig {
        /// The target cluster.
        cluster: String,
    },
    /// The kubeconfig has no such context, or no client can be built from it.
    #[error("{reason}")]
    Context {
        /// The target cluster.
        cluster: String,
        /// Its context.
        context: String,
        /// What the kubeconfig lacks.
        reason: String,
        /// The contexts it has, when the context is not among them.
        available: Option<Vec<String>>,
    },
    /// The cluster did not answer (refused, timed out, TLS).
    #[error("cannot reach cluster `{cluster}` (context `{context}`): {reason}")]
    ClusterUnreachable {
        /// The cluster.
        cluster: String,
        /// Its context.
        context: String,
        /// What failed.
        reason: String,
    },
    /// The cluster answered with an error (e.g. 403 for the kubeconfig's own user).
    #[error("cluster `{cluster}` refused to {action}: {message} ({code})")]
    ClusterApi {
        /// The cluster.
        cluster: String,
        /// Its context.
        context: String,
        /// What meshfleet tried.
        action: String,
        /// HTTP status.
        code: u16,
        /// The API server's message.
        message: String,
    },
    /// The remote-access ServiceAccount does not exist on the target.
    #[error("cluster `{cluster}` has no ServiceAccount `{NS}/{account}`")]
    ServiceAccountMissing {
        /// The target cluster.
        cluster: String,
        /// The account.
        account: String,
    },
    /// No token Secret for the account exists.
    #[error(
        "cluster `{cluster}` has no token Secret for ServiceAccount `{NS}/{account}` (expected `{secret}`)"
    )]
    TokenSecretMissing {
        /// The target cluster.
        cluster: String,
        /// The account.
        account: String,
        /// The Secret the chart creates.
        secret: String,
    },
    /// A Secret of the expected name exists but is not a token Secret for the account.
    #[error(
        "`{NS}/{secret}` on `{cluster}` is not a `{TOKEN_SECRET_TYPE}` Secret of `{account}` (type `{found}`)"
    )]
    TokenSecretWrongType {
        /// The target cluster.
        cluster: String,
        /// The account.
        account: String,
        /// The Secret.
        secret: String,
        /// Its type.
        found: String,
    },
    /// The token Secret has no token (or CA) yet.
    #[error("the token Secret `{NS}/{secret}` on `{cluster}` is not filled yet (no `token` or `ca.crt`){}", .waited.map(|w| format!(" after {}s", w.as_secs())).unwrap_or_default())]
    TokenNotFilled {
        /// The target cluster.
        cluster: String,
        /// The Secret.
        secret: String,
        /// How long meshfleet waited (after a rotation).
        waited: Option<Duration>,
    },
    /// A key-folder file is missing.
    #[error("{what} `{}` does not exist", .path.display())]
    KeyMissing {
        /// What it is.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A key-folder file cannot be read or parsed.
    #[error("cannot use `{}`: {reason}", .path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A private key does not belong to its certificate.
    #[error("the private key `{}` does not match {cert}", .key.display())]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate it should match.
        cert: String,
    },
    /// A static issuer is not signed by the fleet's anchor.
    #[error("the issuer `{}` does not chain to the fleet's trust anchor", .cert.display())]
    NotChained {
        /// The issuer certificate.
        cert: PathBuf,
    },
    /// The kubeconfig could not be serialised.
    #[error("cannot write the kubeconfig: {0}")]
    Kubeconfig(String),
}

impl SyncError {
    /// A stable id for `-o json`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Vault(e) => e.code(),
            Self::ApiServerMissing { .. } => "api-server-missing",
            Self::NoKubeconfig { .. } => "kubeconfig-missing",
            Self::Context { .. } => "cluster-context",
            Self::ClusterUnreachable { .. } => "cluster-unreachable",
            Self::ClusterApi { .. } => "cluster-api",
            Self::ServiceAccountMissing { .. } => "service-account-missing",
            Self::TokenSecretMissing { .. } => "token-secret-missing",
            Self::TokenSecretWrongType { .. } => "token-secret-wrong-type",
            Self::TokenNotFilled { .. } => "token-not-filled",
            Self::KeyMissing { .. } => "key-missing",
            Self::Unreadable { .. } => "key-unreadable",
            Self::KeyMismatch { .. } => "key-mismatch",
            Self::NotChained { .. } => "issuer-not-chained",
            Self::Kubeconfig(_) => "kubeconfig-serialize",
        }
    }

    fn fix(&self) -> String {
        let stage = |cluster: &str| {
            format!(
                "the `linkerd-multicluster` stage of `{cluster}` creates it (one remote-access ServiceAccount and token Secret per incoming link); let Flux or Argo CD apply the tree from `meshfleet render`, then run again"
            )
        };
        match self {
            Self::Vault(e) => e.fix(),
            Self::ApiServerMissing { cluster } => format!(
                "set `apiServer` of cluster `{cluster}` in the fleet to the https:// address other clusters use to reach its API server"
            ),
            Self::NoKubeconfig { .. } => "pass `--kubeconfig FILE` or set `KUBECONFIG`".into(),
            Self::Context { cluster, context, available: Some(available), .. } => format!(
                "add context `{context}` to the kubeconfig, or set `context:` of cluster `{cluster}` to one of: {}",
                if available.is_empty() { "(none)".into() } else { available.join(", ") }
            ),
            Self::Context { context, available: None, .. } => format!(
                "fix the credentials of context `{context}` in the kubeconfig; `kubectl --context {context} get --raw /readyz` should work"
            ),
            Self::ClusterUnreachable { context, .. } => format!(
                "check that the cluster runs and that context `{context}` reaches it: `kubectl --context {context} get --raw /readyz`"
            ),
            Self::ClusterApi { context, .. } => format!(
                "the user of context `{context}` needs get and list on serviceaccounts and secrets in `{NS}` (and delete and create on both for `--rotate`)"
            ),
            Self::ServiceAccountMissing { cluster, .. } | Self::TokenSecretMissing { cluster, .. } => stage(cluster),
            Self::TokenSecretWrongType { cluster, account, secret, .. } => format!(
                "delete `{NS}/{secret}` on `{cluster}` and re-apply its `linkerd-multicluster` stage, which creates it of type `{TOKEN_SECRET_TYPE}` annotated `{SERVICE_ACCOUNT_ANNOTATION}: {account}`"
            ),
            Self::TokenNotFilled { cluster, .. } => format!(
                "Kubernetes' token controller (in kube-controller-manager) fills it within seconds; check that the controller manager of `{cluster}` runs, then run again"
            ),
            Self::KeyMissing { .. } => {
                "create it with `meshfleet certs init`, or pass the key folder that holds it with `--keys DIR`".into()
            }
            Self::Unreadable { .. } => "it must be the PEM file `meshfleet certs init` wrote".into(),
            Self::KeyMismatch { .. } => {
                "the key folder belongs to another certificate: pass the right one with `--keys DIR`, or restore the matching key".into()
            }
            Self::NotChained { .. } => {
                "issue it from the fleet's anchor: move the old issuer files away and run `meshfleet certs init`".into()
            }
            Self::Kubeconfig(_) => "this is a bug in meshfleet; run with `-vv` and report it".into(),
        }
    }
}

impl meshfleet_fleet::diagnostic::Hint for SyncError {
    fn hint(&self) -> Option<String> {
        Some(self.fix())
    }
}

impl SyncError {
    pub(super) fn from_cluster(error: &ClusterError, cluster: &str, context: &str) -> Self {
        let available = match error {
            ClusterError::UnknownContext { available, .. } => Some(available.clone()),
            _ => None,
        };
        Self::Context {
            cluster: cluster.into(),
            context: context.into(),
            reason: meshfleet_fleet::diagnostic::error_chain(error),
            available,
        }
    }

    pub(super) fn from_kube(error: &kube::Error, cluster: &str, context: &str, action: &str) -> Self {
        match KubeFailure::from_kube(error) {
            KubeFailure::Refused { code, message, .. } => Self::ClusterApi {
                cluster: cluster.into(),
                context: context.into(),
                action: action.into(),
                code,
                message,
            },
            KubeFailure::Unauthorized => Self::ClusterApi {
                cluster: cluster.into(),
                context: context.into(),
                action: action.into(),
                code: 401,
                message: "the credentials of the context are not accepted".into(),
            },
            other => Self::ClusterUnreachable {
                cluster: cluster.into(),
                context: context.into(),
                reason: other.to_string(),
            },
        }
    }
}
