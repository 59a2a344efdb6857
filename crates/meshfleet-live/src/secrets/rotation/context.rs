//! What every live step of a rotation works with: the plan, the clusters, where the
//! credentials are kept (Vault, or SOPS files in the rendered tree) and the options, and the checks the phases share (is a link's Secret accepted by its
//! target).

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PatchParams};
use secrecy::SecretString;

use super::report::{Step, StepId};
use super::{FIELD_MANAGER, RotateOptions};
use crate::check::access::{self, Access, FailureKind};
use crate::cluster::Kubeconfigs;
use crate::secrets::SyncError;
use crate::vault::KvClient;
use meshfleet_fleet::defaults::MULTICLUSTER_NAMESPACE;
use meshfleet_plan::{FleetPlan, LinkPlan};

/// Where a link's credentials are kept.
pub(super) enum Store<'a> {
    /// Vault KV v2, copied into the Secrets by External Secrets.
    Vault {
        kv: &'a KvClient,
        vault: &'a meshfleet_plan::VaultPlan,
    },
    /// SOPS files in the rendered tree, applied by Flux once committed. The lock keeps
    /// the links' concurrent steps from writing the tree at once.
    Sops {
        tree: &'a std::path::Path,
        identities: &'a meshfleet_identity::sops::AgeIdentities,
        lock: tokio::sync::Mutex<()>,
    },
}

pub(super) struct Ctx<'a> {
    pub(super) plan: &'a FleetPlan,
    pub(super) kubeconfigs: &'a Kubeconfigs,
    pub(super) store: Store<'a>,
    pub(super) options: &'a RotateOptions,
}

impl Ctx<'_> {
    pub(super) async fn client(&self, cluster: &str) -> Result<kube::Client, SyncError> {
        let context = self.context(cluster);
        self.kubeconfigs
            .client(cluster, &context)
            .await
            .map_err(|e| SyncError::from_cluster(&e, cluster, &context))
    }

    pub(super) fn context(&self, cluster: &str) -> String {
        self.plan
            .clusters
            .iter()
            .find(|c| c.name == cluster)
            .map_or_else(|| cluster.to_string(), |c| c.context.clone())
    }

    /// Try `kubeconfig` against the target of `link`, through the operator's route to it.
    pub(super) async fn try_credentials(&self, link: &LinkPlan, kubeconfig: &SecretString) -> Access {
        let target = self.plan.clusters.iter().find(|c| c.name == link.target);
        let expected = target.and_then(|t| t.api_server.as_deref());
        let report = access::inspect(kubeconfig, expected);
        let Some(credentials) = report.credentials else {
            return Access::Failed {
                route: String::new(),
                reason: report.problems.join("; "),
                kind: FailureKind::Other,
            };
        };
        let route = self
            .kubeconfigs
            .server(&self.context(&link.target))
            .unwrap_or_else(|| credentials.server().to_string());
        let timeout = self.kubeconfigs.timeout();
        tokio::time::timeout(timeout, access::probe(&credentials, &route, timeout))
            .await
            .unwrap_or_else(|_| Access::Failed {
                route,
                reason: "no answer".into(),
                kind: FailureKind::Other,
            })
    }

    /// The credentials Secrets of `link` on its source: (namespace, name).
    pub(super) fn source_secrets(&self, link: &LinkPlan) -> [(String, String); 2] {
        [
            (MULTICLUSTER_NAMESPACE.to_string(), link.credentials_secret()),
            (self.plan.linkerd.namespace.clone(), link.credentials_secret()),
        ]
    }
}

pub(super) fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

/// The Secret the service mirror reads is accepted by the target.
pub(super) async fn in_use(ctx: &Ctx<'_>, link: &LinkPlan) -> Step {
    let client = match ctx.client(&link.source).await {
        Ok(c) => c,
        Err(e) => return Step::from_error(StepId::CredentialsAccepted, &e),
    };
    let name = link.credentials_secret();
    let api: Api<Secret> = Api::namespaced(client, MULTICLUSTER_NAMESPACE);
    let kubeconfig = match api.get_opt(&name).await {
        Ok(Some(mut s)) => {
            let k = s
                .data
                .as_ref()
                .and_then(|d| d.get("kubeconfig"))
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
                .map(SecretString::from);
            crate::secrets::remote_access::scrub(&mut s);
            k
        }
        Ok(None) => None,
        Err(e) => {
            return Step::from_error(
                StepId::CredentialsAccepted,
                &SyncError::from_kube(&e, &link.source, &ctx.context(&link.source), "get secrets"),
            );
        }
    };
    let Some(kubeconfig) = kubeconfig else {
        return Step::blocked(
            StepId::CredentialsAccepted,
            format!(
                "`{MULTICLUSTER_NAMESPACE}/{name}` on `{}` has no kubeconfig",
                link.source
            ),
            "run `meshfleet check` for the link's credentials",
        );
    };
    match ctx.try_credentials(link, &kubeconfig).await {
        Access::Verified { .. } => Step::done(
            StepId::CredentialsAccepted,
            format!(
                "`{}` accepts what `{MULTICLUSTER_NAMESPACE}/{name}` on `{}` holds",
                link.target, link.source
            ),
        ),
        access @ Access::Failed { .. } => Step::blocked(
            StepId::CredentialsAccepted,
            format!(
                "`{}` refuses what `{MULTICLUSTER_NAMESPACE}/{name}` holds: {}",
                link.target,
                describe(&access)
            ),
            "run `meshfleet check`; nothing will be retired while a link's credentials are refused",
        ),
    }
}

pub(super) fn describe(access: &Access) -> String {
    match access {
        Access::Verified { denied, .. } => format!("it may not {} services", denied.join("/")),
        Access::Failed { reason, .. } => reason.clone(),
    }
}
