//! Restarting what reads a link's credentials on each source (the link's controller
//! and `linkerd-destination`), and checking that its pods started after the Secrets
//! changed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch};

use super::RESTARTED_AT_ANNOTATION;
use super::context::{Ctx, patch_params};
use super::report::{Restart, StepState};
use crate::secrets::SyncError;
use meshfleet_fleet::defaults::MULTICLUSTER_NAMESPACE;
use meshfleet_plan::LinkPlan;

/// A Deployment (namespace, name) and the Secrets (namespace, name) it reads.
type Reloads = (String, String, Vec<(String, String)>);

/// Restart what must read new credentials on each source, and verify it did.
pub(super) async fn reload(ctx: &Ctx<'_>, links: &[&LinkPlan]) -> Vec<Restart> {
    let mut by_source: BTreeMap<&str, Vec<&LinkPlan>> = BTreeMap::new();
    for link in links {
        by_source.entry(link.source.as_str()).or_default().push(link);
    }
    let jobs = by_source.into_iter().map(|(source, links)| async move {
        let mut out = Vec::new();
        let client = match ctx.client(source).await {
            Ok(c) => c,
            Err(e) => {
                out.push(Restart {
                    cluster: source.to_string(),
                    deployment: "*".into(),
                    state: StepState::Blocked,
                    detail: e.to_string(),
                });
                return out;
            }
        };
        // Each Deployment and the Secrets it reads.
        let mut deployments: Vec<Reloads> = links
            .iter()
            .map(|l| {
                (
                    MULTICLUSTER_NAMESPACE.to_string(),
                    l.controller_name(),
                    vec![(MULTICLUSTER_NAMESPACE.to_string(), l.credentials_secret())],
                )
            })
            .collect();
        deployments.push((
            ctx.plan.linkerd.namespace.clone(),
            "linkerd-destination".into(),
            links
                .iter()
                .map(|l| (ctx.plan.linkerd.namespace.clone(), l.credentials_secret()))
                .collect(),
        ));
        for (ns, name, secrets) in deployments {
            out.push(restart(ctx, &client, source, &ns, &name, &secrets).await);
        }
        out
    });
    futures::future::join_all(jobs)
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn restart(
    ctx: &Ctx<'_>,
    client: &kube::Client,
    cluster: &str,
    ns: &str,
    name: &str,
    secrets: &[(String, String)],
) -> Restart {
    let context = ctx.context(cluster);
    let result = |state, detail: String| Restart {
        cluster: cluster.to_string(),
        deployment: format!("{ns}/{name}"),
        state,
        detail,
    };
    let kube = |action: &str| {
        let action = action.to_string();
        let context = context.clone();
        move |e: kube::Error| SyncError::from_kube(&e, cluster, &context, &action).to_string()
    };
    let mut changed: Option<Time> = None;
    for (sns, sname) in secrets {
        let api: Api<Secret> = Api::namespaced(client.clone(), sns);
        match api.get_opt(sname).await {
            Ok(Some(mut s)) => {
                changed = changed.max(crate::cluster::last_change(&s.metadata));
                crate::secrets::remote_access::scrub(&mut s);
            }
            Ok(None) => return result(StepState::Blocked, format!("there is no Secret `{sns}/{sname}`")),
            Err(e) => return result(StepState::Blocked, kube("get secrets")(e)),
        }
    }
    let Some(changed) = changed else {
        return result(StepState::Blocked, "its Secrets carry no time of change".into());
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    match fresh(client, &deployments, ns, name, &changed).await {
        Err(e) => return result(StepState::Blocked, kube("get deployments")(e)),
        Ok(Freshness::Missing) => {
            return result(StepState::Blocked, "the Deployment does not exist".into());
        }
        Ok(Freshness::Fresh) => {
            return result(
                StepState::Done,
                "its pods started after the Secrets changed".into(),
            );
        }
        Ok(Freshness::Stale | Freshness::RollingOut(_)) if ctx.options.dry_run => {
            return result(
                StepState::Would,
                "restart it: its pods predate the Secrets".into(),
            );
        }
        Ok(Freshness::RollingOut(_)) => {}
        Ok(Freshness::Stale) => {
            if let Err(e) = restart_now(&deployments, name).await {
                return result(StepState::Blocked, kube("patch deployments")(e));
            }
            tracing::info!(cluster, namespace = ns, name, "restarted the Deployment");
        }
    }
    let deadline = Instant::now() + ctx.options.wait;
    loop {
        let freshness = match fresh(client, &deployments, ns, name, &changed).await {
            Ok(f) => f,
            Err(e) => return result(StepState::Blocked, kube("get deployments")(e)),
        };
        match freshness {
            Freshness::Fresh => {
                return result(
                    StepState::Done,
                    "restarted; its pods started after the Secrets changed".into(),
                );
            }
            Freshness::Missing => {
                return result(StepState::Blocked, "the Deployment does not exist".into());
            }
            _ if Instant::now() >= deadline => {
                let why = match freshness {
                    Freshness::RollingOut(progress) => format!("its rollout did not finish ({progress})"),
                    _ => "its rollout finished, but its pods are older than the Secrets' last change".into(),
                };
                return result(
                    StepState::Blocked,
                    format!("restarted, but within {}s {why}", ctx.options.wait.as_secs()),
                );
            }
            // The rollout finished, yet a pod is not newer than the Secrets: they changed
            // again after the restart (or in the same second, which timestamps cannot tell
            // apart). Restart once more so the pods read what the Secrets hold now.
            Freshness::Stale => {
                if let Err(e) = restart_now(&deployments, name).await {
                    return result(StepState::Blocked, kube("patch deployments")(e));
                }
                tracing::info!(
                    cluster,
                    namespace = ns,
                    name,
                    "restarted the Deployment again: its Secrets changed after the last restart"
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Freshness::RollingOut(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Ask the Deployment for new pods, as `kubectl rollout restart` does.
async fn restart_now(deployments: &Api<Deployment>, name: &str) -> Result<(), kube::Error> {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let patch = serde_json::json!({
        "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: now}}}}
    });
    deployments
        .patch(name, &patch_params(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

enum Freshness {
    Missing,
    /// Every replica is available and every pod started after the Secrets changed.
    Fresh,
    /// A rollout is under way (how far it is, in words).
    RollingOut(String),
    /// The pods predate the Secrets and no rollout is under way.
    Stale,
}

/// The pods of `deployment` (its selector's `matchLabels`), terminating ones included.
pub(crate) async fn deployment_pods(
    client: &kube::Client,
    ns: &str,
    deployment: &Deployment,
) -> Result<Vec<Pod>, kube::Error> {
    let selector = deployment
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    Ok(pods.list(&ListParams::default().labels(&selector)).await?.items)
}

async fn fresh(
    client: &kube::Client,
    deployments: &Api<Deployment>,
    ns: &str,
    name: &str,
    changed: &Time,
) -> Result<Freshness, kube::Error> {
    let Some(deployment) = deployments.get_opt(name).await? else {
        return Ok(Freshness::Missing);
    };
    let pods = deployment_pods(client, ns, &deployment).await?;
    Ok(freshness(&deployment, &pods, changed))
}

/// Whether `deployment`'s rollout finished with only pods that started after `changed`
/// (timestamps have whole seconds, so a pod of the same second is not counted as newer).
fn freshness(deployment: &Deployment, pods: &[Pod], changed: &Time) -> Freshness {
    let want = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = deployment.status.clone().unwrap_or_default();
    let rolled_out = status.observed_generation >= deployment.metadata.generation
        && status.updated_replicas.unwrap_or(0) == want
        && status.replicas.unwrap_or(0) == want
        && status.available_replicas.unwrap_or(0) == want;
    let live: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let newer = |p: &&Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.start_time.clone())
            .or_else(|| p.metadata.creation_timestamp.clone())
            .is_some_and(|t| t.0 > changed.0)
    };
    let terminating = pods.len() - live.len();
    if !rolled_out || live.is_empty() {
        Freshness::RollingOut(format!(
            "{} of {want} replica(s) updated, {} available, {terminating} pod(s) terminating",
            status.updated_replicas.unwrap_or(0),
            status.available_replicas.unwrap_or(0),
        ))
    } else if !live.iter().all(newer) {
        Freshness::Stale
    } else if terminating > 0 {
        Freshness::RollingOut(format!("{terminating} old pod(s) still terminating"))
    } else {
        Freshness::Fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A one-replica Deployment as the deployment controller leaves it after a rollout.
    fn rolled_out() -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "controller-east", "namespace": "linkerd-multicluster", "generation": 3},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"component": "controller"}},
                     "template": {"metadata": {}, "spec": {"containers": []}}},
            "status": {"observedGeneration": 3, "replicas": 1, "updatedReplicas": 1,
                       "readyReplicas": 1, "availableReplicas": 1}
        }))
        .unwrap()
    }

    fn pod(started: &str, terminating: bool) -> Pod {
        let mut meta = json!({"name": "p", "creationTimestamp": started});
        if terminating {
            meta["deletionTimestamp"] = json!("2026-12-07T10:00:30Z");
        }
        serde_json::from_value(json!({"metadata": meta, "status": {"startTime": started}})).unwrap()
    }

    fn at(t: &str) -> Time {
        serde_json::from_value(json!(t)).unwrap()
    }

    #[test]
    fn a_pod_of_the_same_second_as_the_change_is_stale_and_restarted_again() {
        let changed = at("2026-12-07T10:00:00Z");
        let d = rolled_out();
        assert!(matches!(
            freshness(&d, &[pod("2026-12-07T10:00:00Z", false)], &changed),
            Freshness::Stale
        ));
        assert!(matches!(
            freshness(&d, &[pod("2026-12-07T10:00:01Z", false)], &changed),
            Freshness::Fresh
        ));
    }

    #[test]
    fn old_pods_still_terminating_are_waited_for_not_restarted() {
        let changed = at("2026-12-07T10:00:00Z");
        let pods = [
            pod("2026-12-07T10:00:05Z", false),
            pod("2026-12-07T09:00:00Z", true),
        ];
        let Freshness::RollingOut(why) = freshness(&rolled_out(), &pods, &changed) else {
            panic!("a terminating pod must be waited for");
        };
        assert_eq!(why, "1 old pod(s) still terminating");
    }

    #[test]
    fn an_unfinished_rollout_says_how_far_it_is() {
        let mut d = rolled_out();
        d.metadata.generation = Some(4);
        let pods = [pod("2026-12-07T09:00:00Z", false)];
        let Freshness::RollingOut(why) = freshness(&d, &pods, &at("2026-12-07T10:00:00Z")) else {
            panic!("a rollout not yet observed is under way");
        };
        assert_eq!(
            why,
            "1 of 1 replica(s) updated, 1 available, 0 pod(s) terminating"
        );
    }
}
