//! Kubernetes clients for the fleet's clusters, from the user's kubeconfig.
//!
//! The kubeconfig is `--kubeconfig`, else `KUBECONFIG` (a `:`-separated list, merged as
//! kubectl does), else `~/.kube/config`. Each fleet cluster is reached through its
//! `context` (its name by default). Clients get connect and read timeouts, so a stopped
//! cluster is reported instead of hanging a command.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::kube_failure::{self, KubeFailure, KubeconfigProblem};
use meshfleet_fleet::diagnostic::Hint;
use meshfleet_plan::ClusterPlan;

/// Default time to wait for a cluster to answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of reaching a cluster. None quotes the kubeconfig: a parse error says where
/// and what kind of mistake (see [`meshfleet_fleet::sensitive`]).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No kubeconfig was named and none is at the default place.
    #[error(
        "no kubeconfig: `--kubeconfig` is not given, `KUBECONFIG` is not set and `~/.kube/config` does not exist"
    )]
    NoKubeconfig,
    /// A kubeconfig file could not be read or parsed, or the files of `KUBECONFIG` do
    /// not merge.
    #[error("cannot read the kubeconfig `{}`", path.display())]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What is wrong, without its text.
        #[source]
        problem: KubeconfigProblem,
    },
    /// The fleet names a context the kubeconfig does not have.
    #[error("the kubeconfig has no context `{context}` (cluster `{cluster}`)")]
    UnknownContext {
        /// The fleet cluster.
        cluster: String,
        /// The context it names.
        context: String,
        /// Contexts the kubeconfig has.
        available: Vec<String>,
    },
    /// A client could not be built for the context (bad credentials, bad URL).
    #[error("cannot build a client for context `{context}`")]
    Client {
        /// The context.
        context: String,
        /// Why, without any value of the kubeconfig.
        #[source]
        problem: KubeconfigProblem,
    },
}

impl Hint for ClusterError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            Self::NoKubeconfig | Self::Kubeconfig { .. } => {
                "pass `--kubeconfig FILE` or set `KUBECONFIG` to a kubeconfig with the fleet's contexts"
                    .into()
            }
            Self::UnknownContext { available, .. } => format!(
                "the kubeconfig has these contexts: {}; set the cluster's `context` in the fleet file (or pass `--context`), or use another kubeconfig with `--kubeconfig`",
                available
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Self::Client { context, .. } => {
                format!("fix the credentials of context `{context}` in your kubeconfig")
            }
        })
    }
}

/// The user's kubeconfig, loaded once.
#[derive(Clone)]
pub struct Kubeconfigs {
    config: Kubeconfig,
    timeout: Duration,
}

impl std::fmt::Debug for Kubeconfigs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print credentials.
        f.debug_struct("Kubeconfigs")
            .field("contexts", &self.contexts())
            .finish()
    }
}

impl Kubeconfigs {
    /// Load from `path`, else the files of `KUBECONFIG` (merged as kubectl merges
    /// them), else `~/.kube/config`. Each file is read on its own, so an error names
    /// the file it is in.
    pub fn load(path: Option<&Path>) -> Result<Self, ClusterError> {
        let paths: Vec<PathBuf> = match path {
            Some(p) => vec![p.to_path_buf()],
            None => match std::env::var_os("KUBECONFIG") {
                Some(list) if !list.is_empty() => std::env::split_paths(&list)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect(),
                _ => {
                    let home = std::env::var_os("HOME").ok_or(ClusterError::NoKubeconfig)?;
                    let default = PathBuf::from(home).join(".kube").join("config");
                    if !default.exists() {
                        return Err(ClusterError::NoKubeconfig);
                    }
                    vec![default]
                }
            },
        };
        let mut config = Kubeconfig::default();
        for path in paths {
            let problem = |e: &kube::config::KubeconfigError| ClusterError::Kubeconfig {
                path: path.clone(),
                problem: kube_failure::kubeconfig_problem(e),
            };
            let file = Kubeconfig::read_from(&path).map_err(|e| problem(&e))?;
            config = config.merge(file).map_err(|e| problem(&e))?;
        }
        Ok(Self {
            config,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Use another timeout for new clients.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The timeout new clients get.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Context names, sorted.
    pub fn contexts(&self) -> Vec<String> {
        let mut names: Vec<String> = self.config.contexts.iter().map(|c| c.name.clone()).collect();
        names.sort();
        names
    }

    /// The API server URL of a context, when the kubeconfig says.
    pub fn server(&self, context: &str) -> Option<String> {
        let ctx = self.config.contexts.iter().find(|c| c.name == context)?;
        let cluster = ctx.context.as_ref()?.cluster.clone();
        self.config
            .clusters
            .iter()
            .find(|c| c.name == cluster)
            .and_then(|c| c.cluster.as_ref())
            .and_then(|c| c.server.clone())
    }

    /// A client for fleet cluster `cluster` through kubeconfig context `context`.
    pub async fn client(&self, cluster: &str, context: &str) -> Result<kube::Client, ClusterError> {
        if !self.config.contexts.iter().any(|c| c.name == context) {
            return Err(ClusterError::UnknownContext {
                cluster: cluster.to_string(),
                context: context.to_string(),
                available: self.contexts(),
            });
        }
        let options = KubeConfigOptions {
            context: Some(context.to_string()),
            ..KubeConfigOptions::default()
        };
        let mut config = kube::Config::from_custom_kubeconfig(self.config.clone(), &options)
            .await
            .map_err(|e| ClusterError::Client {
                context: context.to_string(),
                problem: kube_failure::kubeconfig_problem(&e),
            })?;
        config.connect_timeout = Some(self.timeout);
        config.read_timeout = Some(self.timeout);
        config.write_timeout = Some(self.timeout);
        kube::Client::try_from(config).map_err(|e| ClusterError::Client {
            context: context.to_string(),
            problem: KubeconfigProblem::Field(KubeFailure::from_kube(&e).to_string()),
        })
    }
}

/// Why a cluster could not be read. Shared by the live commands that read many clusters.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No client for the cluster (unknown context, unusable credentials).
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The API server did not answer (stopped, wrong address, TLS failure).
    #[error("cannot reach the API server")]
    Unreachable(#[source] KubeFailure),
    /// The API server answered too slowly.
    #[error("no answer within {} s", .0.as_secs())]
    TimedOut(Duration),
    /// The API server answered with an error other than "not found".
    #[error("the API server refused to {action}: {message} (HTTP {code})")]
    Refused {
        /// What meshfleet asked for.
        action: String,
        /// HTTP status code.
        code: u16,
        /// The server's message.
        message: String,
    },
    /// A task of the parallel run died (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Hint for ReadError {
    /// The kubeconfig's fix; the others depend on the context and on what was asked,
    /// which [`ReadError::hint_for`] is told.
    fn hint(&self) -> Option<String> {
        match self {
            Self::Cluster(cluster) => cluster.hint(),
            Self::Unreachable(_) | Self::TimedOut(_) | Self::Refused { .. } | Self::Internal(_) => None,
        }
    }
}

impl ReadError {
    /// How to fix it, for a cluster reached through `context` whose credentials must
    /// allow `needs` (e.g. "read ConfigMaps in the Linkerd namespace").
    pub fn hint_for(&self, context: &str, needs: &str) -> String {
        match self {
            Self::Cluster(cluster) => cluster.hint().unwrap_or_default(),
            Self::Refused { .. } => format!("the credentials of context `{context}` must allow to {needs}"),
            _ => format!(
                "check that context `{context}` points at a running cluster (`kubectl --context {context} get --raw /readyz`)"
            ),
        }
    }

    /// Classify a client error: an API answer is a refusal, anything else means the
    /// server could not be talked to.
    pub fn from_kube(action: &str, error: &kube::Error) -> Self {
        match KubeFailure::from_kube(error) {
            KubeFailure::Refused { code, message, .. } => Self::Refused {
                action: action.to_string(),
                code,
                message,
            },
            KubeFailure::Unauthorized => Self::Refused {
                action: action.to_string(),
                code: 401,
                message: "the credentials are not accepted".into(),
            },
            other => Self::Unreachable(other),
        }
    }
}

/// Run `work` against every cluster at once, each with its own client from its
/// context; the results come back in fleet order. Timeouts are up to `work` (the
/// clients already have connect and read timeouts).
pub async fn for_each_cluster<T, F, Fut>(
    kubeconfigs: &Kubeconfigs,
    clusters: &[ClusterPlan],
    work: F,
) -> Vec<Result<T, ReadError>>
where
    F: Fn(kube::Client, ClusterPlan) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<T, ReadError>> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = clusters
        .iter()
        .map(|cluster| {
            let kubeconfigs = kubeconfigs.clone();
            let cluster = cluster.clone();
            let work = work.clone();
            tokio::spawn(async move {
                let client = kubeconfigs.client(&cluster.name, &cluster.context).await?;
                work(client, cluster).await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(
            handle
                .await
                .unwrap_or_else(|e| Err(ReadError::Internal(e.to_string()))),
        );
    }
    results
}
/// When an object last changed: the newest time among its managed fields (every create,
/// update and apply records one), else its creation. Linkerd's controllers read their
/// credentials Secrets only at certain moments; this is what they are compared with.
pub fn last_change(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter_map(|f| f.time.clone())
        .chain(meta.creation_timestamp.clone())
        .max_by_key(|t| t.0)
}
