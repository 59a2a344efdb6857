//! What a link credential rotation leaves behind, for `secrets status`: when the source
//! controllers were last restarted (and by whom), and the earlier Vault versions of
//! each link's credentials.
//!
//! Restarts are read from the live clusters, not remembered: the rotation restarts
//! `controller-<link>` and `linkerd-destination` with the pod-template annotation
//! `kubectl.kubernetes.io/restartedAt` under the field manager `meshfleet`, so the
//! Deployment's `managedFields` say whether meshfleet or someone else (`kubectl rollout
//! restart` is `kubectl-rollout`) set it, and its pods' creation times say when the
//! running pods came. A user who sees a mirror Service recreated right after a rotation
//! matches its creation time with these (see docs/rotating-link-credentials.md).
//!
//! Earlier versions of `credentials/<source>-to-<target>` are KV v2 history and are kept:
//! each holds the token of an earlier remote-access account, and a token is revoked for
//! good with its account, which the rotation's last step removes and proves refused
//! (`old-token-revoked`). Destroying them would protect nothing and lose the record of
//! what a link used. Only names, versions and times reach this report, never a value.

use futures::future::join_all;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use serde::Serialize;

use super::rotation::{FIELD_MANAGER, RESTARTED_AT_ANNOTATION, deployment_pods};
use crate::cluster::Kubeconfigs;
use crate::vault::{KvClient, VaultError};
use meshfleet_fleet::defaults::MULTICLUSTER_NAMESPACE;
use meshfleet_plan::FleetPlan;

/// One Deployment the rotation restarts, as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartSeen {
    /// The source cluster.
    pub cluster: String,
    /// `<namespace>/<name>`.
    pub deployment: String,
    /// The pod template's `kubectl.kubernetes.io/restartedAt` (RFC 3339), if any.
    pub restarted_at: Option<String>,
    /// The field manager that set it (`meshfleet` for the rotation).
    pub restarted_by: Option<String>,
    /// Creation times (RFC 3339) of its running pods, oldest first.
    pub pods_created: Vec<String>,
    /// Why it could not be read.
    pub error: Option<String>,
}

impl RestartSeen {
    /// Whether the rotation (field manager `meshfleet`) set the restart annotation.
    pub fn by_rotation(&self) -> bool {
        self.restarted_by.as_deref() == Some(FIELD_MANAGER)
    }
}

/// Every Deployment the rotation restarts on each source of a link: `controller-<link>`
/// per link and `linkerd-destination`, in cluster order.
pub async fn restarts_seen(plan: &FleetPlan, kubeconfigs: &Kubeconfigs) -> Vec<RestartSeen> {
    let sources = plan.clusters.iter().filter(|c| !c.outgoing.is_empty());
    let jobs = sources.map(|cluster| async move {
        let mut wanted: Vec<(String, String)> = cluster
            .outgoing
            .iter()
            .map(|l| (MULTICLUSTER_NAMESPACE.to_string(), l.controller_name()))
            .collect();
        wanted.push((plan.linkerd.namespace.clone(), "linkerd-destination".into()));
        let empty = |ns: &str, name: &str, error: Option<String>| RestartSeen {
            cluster: cluster.name.clone(),
            deployment: format!("{ns}/{name}"),
            restarted_at: None,
            restarted_by: None,
            pods_created: Vec::new(),
            error,
        };
        let client = match kubeconfigs.client(&cluster.name, &cluster.context).await {
            Ok(c) => c,
            Err(e) => {
                let reason = meshfleet_fleet::diagnostic::error_chain(&e);
                return wanted
                    .iter()
                    .map(|(ns, name)| empty(ns, name, Some(reason.clone())))
                    .collect::<Vec<_>>();
            }
        };
        let mut out = Vec::new();
        for (ns, name) in &wanted {
            out.push(match read_one(&client, ns, name).await {
                Ok(Some(mut seen)) => {
                    seen.cluster.clone_from(&cluster.name);
                    seen
                }
                Ok(None) => empty(ns, name, Some("the Deployment does not exist".into())),
                Err(e) => empty(ns, name, Some(e.to_string())),
            });
        }
        out
    });
    join_all(jobs).await.into_iter().flatten().collect()
}

async fn read_one(client: &kube::Client, ns: &str, name: &str) -> Result<Option<RestartSeen>, kube::Error> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let Some(deployment) = deployments.get_opt(name).await? else {
        return Ok(None);
    };
    let template = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref());
    let restarted_at = template
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(RESTARTED_AT_ANNOTATION))
        .cloned();
    let field = format!(
        "/f:spec/f:template/f:metadata/f:annotations/f:{}",
        RESTARTED_AT_ANNOTATION.replace('~', "~0").replace('/', "~1")
    );
    let restarted_by = deployment
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|f| {
            f.fields_v1
                .as_ref()
                .is_some_and(|v| v.0.pointer(&field).is_some())
        })
        .and_then(|f| f.manager.clone());
    let mut created: Vec<_> = deployment_pods(client, ns, &deployment)
        .await?
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.creation_timestamp.map(|t| t.0))
        .collect();
    created.sort();
    Ok(Some(RestartSeen {
        cluster: String::new(),
        deployment: format!("{ns}/{name}"),
        restarted_at,
        restarted_by,
        pods_created: created.into_iter().map(|t| t.to_string()).collect(),
        error: None,
    }))
}

/// The KV v2 history of one link's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsHistory {
    /// `<source>-to-<target>`.
    pub id: String,
    /// The path as `vault kv get` takes it.
    pub path: String,
    /// The version the ExternalSecrets read.
    pub current_version: u64,
    /// Earlier versions still readable (kept on purpose, see the module header).
    pub kept_versions: Vec<u64>,
}

/// The history of every link's credentials that exists in Vault.
pub async fn credentials_history(
    plan: &FleetPlan,
    kv: &KvClient,
) -> Result<Vec<CredentialsHistory>, VaultError> {
    let mut out = Vec::new();
    let Some(vault) = plan.vault.as_ref() else {
        return Ok(out);
    };
    for link in plan.clusters.iter().flat_map(|c| &c.outgoing) {
        let key = vault.credentials_key(&link.source, &link.target);
        let Some((current, versions)) = kv.versions(&key).await? else {
            continue;
        };
        out.push(CredentialsHistory {
            id: link.credentials_id(),
            path: format!("{}/{key}", kv.mount()),
            current_version: current,
            kept_versions: versions
                .iter()
                .filter(|v| v.version != current && !v.destroyed && !v.deleted)
                .map(|v| v.version)
                .collect(),
        });
    }
    Ok(out)
}
