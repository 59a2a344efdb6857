//! The multicluster extension and each outgoing link: the Link against the rendered one
//! field by field, both credentials Secrets against their ExternalSecret templates, the
//! kubeconfig, the target's answer to it, the controller, the gateway and the probe.
//!
//! Linkerd's controller serves a Link by NAME, reads its credentials by the name the chart's
//! RBAC allows, and probes `probe-<name>` on the Link's probe port (reference section 3.2):
//! a difference in any of them breaks the link silently. So the Link is compared with
//! the rendered one leaf by leaf, on the JSON the server returns (fields meshfleet does
//! not render are drift too), with the CRD's server-side defaults (`probeSpec.timeout`
//! `30s`, `failureThreshold` `3`) counted as equal to their absence.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::Value;

use super::access::Access;
use super::files::{self, TreeFiles, in_tree};
use super::snapshot::ClusterState;
use super::{Category, CheckId, CheckResult, credentials, gateway, plural};
use meshfleet_fleet::defaults;
use meshfleet_plan::{ClusterPlan, FleetPlan, LinkPlan};
use meshfleet_render::stages::{self, StageKind};

/// Server-side defaults of the Link CRD: a live value equal to these, where the rendered
/// Link has none, is not drift.
const CRD_DEFAULTS: [(&str, &str); 2] = [
    ("spec.probeSpec.timeout", "30s"),
    ("spec.probeSpec.failureThreshold", "3"),
];

/// The multicluster namespace, Links the fleet does not know, and legacy controllers of
/// links the fleet does not know.
pub(super) fn check_extension(
    cluster: &ClusterPlan,
    state: &ClusterState,
    files: &TreeFiles<'_>,
    out: &mut Vec<CheckResult>,
) {
    let mc_ns = defaults::MULTICLUSTER_NAMESPACE;
    out.push(match &state.namespaces {
        Err(failure) => failure.to_result(CheckId::MulticlusterNamespace, &state.context),
        Ok(namespaces) => match namespaces.iter().find(|n| n.metadata.name.as_deref() == Some(mc_ns)) {
            None => CheckResult::error(CheckId::MulticlusterNamespace, format!("there is no namespace `{mc_ns}`"))
                .hint(format!(
                    "it is created from {}; {}",
                    in_tree(&files::namespaces(cluster)),
                    files.applied(cluster, StageKind::Namespaces)
                ))
                .file(files::namespaces(cluster)),
            Some(ns) => {
                let label = ns
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("linkerd.io/extension"))
                    .map(String::as_str);
                if label == Some("multicluster") {
                    CheckResult::ok(
                        CheckId::MulticlusterNamespace,
                        format!("namespace `{mc_ns}` is labelled `linkerd.io/extension=multicluster`"),
                    )
                } else {
                    CheckResult::error(
                        CheckId::MulticlusterNamespace,
                        format!("namespace `{mc_ns}` lacks the label `linkerd.io/extension=multicluster`"),
                    )
                    .details(["`linkerd check` and `linkerd multicluster check` find the extension by this label".to_string()])
                    .hint(format!(
                        "the label is rendered in {}; {}",
                        in_tree(&files::namespaces(cluster)),
                        files.applied(cluster, StageKind::Namespaces)
                    ))
                    .file(files::namespaces(cluster))
                }
            }
        },
    });
    let expected: Vec<&str> = cluster.outgoing.iter().map(LinkPlan::link_name).collect();
    match &state.links {
        Err(failure) => out.push(failure.to_result(CheckId::UnknownLink, &state.context)),
        // No Link CRD: reported by `link-present` (or nothing to say without links).
        Ok(None) => {}
        Ok(Some(links)) => {
            let unknown: Vec<String> = links
                .iter()
                .filter(|l| l.namespace != mc_ns || !expected.contains(&l.name.as_str()))
                .map(|l| {
                    let target = l
                        .typed
                        .as_ref()
                        .map_or("?", |t| t.spec.target_cluster_name.as_str());
                    format!("Link `{}/{}` (targetClusterName `{target}`)", l.namespace, l.name)
                })
                .collect();
            out.push(if unknown.is_empty() {
                CheckResult::ok(
                    CheckId::UnknownLink,
                    format!("every Link is one of the fleet's ({})", plural(links.len(), "Link")),
                )
            } else {
                CheckResult::error(
                    CheckId::UnknownLink,
                    format!("{} the fleet does not declare", plural(unknown.len(), "Link")),
                )
                .details(unknown)
                .hint(format!(
                    "add the link to `spec.links` of the fleet file, or delete the Link (`kubectl -n {mc_ns} delete link NAME`) \
                     and its controller"
                ))
            });
        }
    }
    if let Ok(deployments) = &state.controllers {
        let strays: Vec<String> = deployments
            .iter()
            .filter(|d| label(d, "component") == Some("service-mirror"))
            .filter(|d| !label(d, "mirror.linkerd.io/cluster-name").is_some_and(|t| expected.contains(&t)))
            .map(deployment_name)
            .collect();
        if !strays.is_empty() {
            out.push(
                CheckResult::error(
                    CheckId::LegacyController,
                    format!("{} of links the fleet does not declare", plural(strays.len(), "legacy controller")),
                )
                .in_category(Category::LinkerdMulticluster)
                .details(strays)
                .hint("they were made by the deprecated `linkerd multicluster link`; `meshfleet migrate` lists them and the way out"),
            );
        }
    }
}

/// Every check of one outgoing link.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_link(
    plan: &FleetPlan,
    cluster: &ClusterPlan,
    link: &LinkPlan,
    state: &ClusterState,
    target: Option<&ClusterState>,
    probe: Option<&Access>,
    files: &TreeFiles<'_>,
    out: &mut Vec<CheckResult>,
) {
    let t = link.link_name();
    let file = files::link(cluster, link);
    let push = |out: &mut Vec<CheckResult>, r: CheckResult| out.push(r.for_link(t));
    // The Link.
    let live = match &state.links {
        Err(failure) => {
            push(out, failure.to_result(CheckId::LinkPresent, &state.context));
            None
        }
        Ok(None) => {
            push(
                out,
                CheckResult::error(
                    CheckId::LinkPresent,
                    "the Link CRD (`links.multicluster.linkerd.io`) is not installed",
                )
                .hint(format!(
                    "the `linkerd-multicluster` chart installs it ({}); {}",
                    in_tree(&files.multicluster(cluster)),
                    files.applied(cluster, StageKind::LinkerdMulticluster)
                ))
                .file(files.multicluster(cluster)),
            );
            None
        }
        Ok(Some(links)) => {
            let found = links
                .iter()
                .find(|l| l.namespace == defaults::MULTICLUSTER_NAMESPACE && l.name == t);
            push(
                out,
                match found {
                    Some(_) => CheckResult::ok(CheckId::LinkPresent, format!("Link `{t}` is present")),
                    None => CheckResult::error(
                        CheckId::LinkPresent,
                        format!("there is no Link `{}/{t}`", defaults::MULTICLUSTER_NAMESPACE),
                    )
                    .hint(format!(
                        "it is rendered in {}; {}",
                        in_tree(&file),
                        files.applied(cluster, StageKind::Links)
                    ))
                    .file(&file),
                },
            );
            found
        }
    };
    if let Some(live) = live {
        let rendered = serde_json::to_value(stages::link_object(plan, link).spec).unwrap_or(Value::Null);
        let differences = diff("spec", &rendered, &live.spec);
        push(
            out,
            if differences.is_empty() {
                CheckResult::ok(CheckId::LinkDrift, format!("Link `{t}` equals the rendered one"))
            } else {
                CheckResult::error(
                    CheckId::LinkDrift,
                    format!("Link `{t}` differs from the rendered one in {}", plural(differences.len(), "field")),
                )
                .details(differences)
                .hint(format!(
                    "the Link was edited in the cluster, or an old rendering is applied: {} holds the fleet's; {} \
                     (Flux and Argo CD put it back on their next sync)",
                    in_tree(&file),
                    files.applied(cluster, StageKind::Links)
                ))
                .file(&file)
            },
        );
    }
    // Credentials.
    for (ns, for_destination) in [
        (defaults::MULTICLUSTER_NAMESPACE, false),
        (plan.linkerd.namespace.as_str(), true),
    ] {
        let key = (ns.to_string(), link.credentials_secret());
        let read = state.credentials.get(&key);
        push(
            out,
            credentials::credentials_secret(plan, cluster, link, ns, for_destination, read, state),
        );
    }
    credentials::credentials_kubeconfig(plan, link, state, target, probe, files, out);
    push(out, credentials::credentials_loaded(plan, link, state));
    if let Some(result) = credentials::credentials_rotation(link) {
        push(out, result);
    }
    // The controller.
    push(out, controller(cluster, link, state, files));
    push(out, legacy(link, state));
    // The gateway and the probe.
    if let Some(gateway) = &link.gateway {
        let target_plan = plan.clusters.iter().find(|c| c.name == link.target);
        if let Some(gw) = target_plan.and_then(|c| c.gateway.as_ref().map(|g| (c, g))) {
            push(out, gateway::gateway_service(link, gw.0, gw.1, target, files));
        }
        push(
            out,
            gateway::probe_endpoints(cluster, link, gateway.probe_port, state, files),
        );
    }
}

fn label<'d>(deployment: &'d Deployment, key: &str) -> Option<&'d str> {
    deployment.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

fn deployment_name(deployment: &Deployment) -> String {
    format!(
        "Deployment `{}/{}`",
        deployment.metadata.namespace.as_deref().unwrap_or_default(),
        deployment.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Leaf-by-leaf differences between the rendered and the live value.
pub(super) fn diff(root: &str, rendered: &Value, live: &Value) -> Vec<String> {
    let mut want = BTreeMap::new();
    let mut have = BTreeMap::new();
    flatten(root.to_string(), rendered, &mut want);
    flatten(root.to_string(), live, &mut have);
    let mut out = Vec::new();
    for (path, value) in &want {
        match have.get(path) {
            Some(live) if live == value => {}
            Some(live) => out.push(format!("`{path}`: rendered {}, live {}", show(value), show(live))),
            None => out.push(format!("`{path}`: rendered {}, absent live", show(value))),
        }
    }
    for (path, value) in &have {
        if want.contains_key(path) {
            continue;
        }
        if CRD_DEFAULTS
            .iter()
            .any(|(p, d)| p == path && value.as_str() == Some(d))
        {
            continue;
        }
        out.push(format!("`{path}`: not rendered, live {}", show(value)));
    }
    out
}

fn flatten(path: String, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Null => {}
        Value::Object(map) if !map.is_empty() => {
            for (key, v) in map {
                let simple = key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                let next = if simple {
                    format!("{path}.{key}")
                } else {
                    format!("{path}[\"{key}\"]")
                };
                flatten(next, v, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                flatten(format!("{path}[{i}]"), v, out);
            }
        }
        other => {
            out.insert(path, other.clone());
        }
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

fn controller(
    cluster: &ClusterPlan,
    link: &LinkPlan,
    state: &ClusterState,
    files: &TreeFiles<'_>,
) -> CheckResult {
    let name = link.controller_name();
    let mc_ns = defaults::MULTICLUSTER_NAMESPACE;
    let deployments = match &state.controllers {
        Err(failure) => return failure.to_result(CheckId::ControllerAvailable, &state.context),
        Ok(d) => d,
    };
    let found = deployments.iter().find(|d| {
        d.metadata.namespace.as_deref() == Some(mc_ns) && d.metadata.name.as_deref() == Some(name.as_str())
    });
    let Some(deployment) = found else {
        return CheckResult::error(
            CheckId::ControllerAvailable,
            format!("there is no Deployment `{mc_ns}/{name}`"),
        )
        .hint(format!(
            "the multicluster chart renders it from the `controllers` entry of `{}` in {}; {}",
            link.link_name(),
            in_tree(&files.multicluster(cluster)),
            files.applied(cluster, StageKind::LinkerdMulticluster)
        ))
        .file(files.multicluster(cluster));
    };
    let status = deployment.status.as_ref();
    let available = status.and_then(|s| s.available_replicas).unwrap_or(0);
    let wanted = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    if available >= 1 {
        CheckResult::ok(
            CheckId::ControllerAvailable,
            format!("`{name}` has {available} of {wanted} replica(s) available"),
        )
    } else {
        CheckResult::error(
            CheckId::ControllerAvailable,
            format!("`{name}` has no available replica (of {wanted})"),
        )
        .hint(format!(
            "see `kubectl -n {mc_ns} describe deployment {name}` and its pods' events"
        ))
    }
}

fn legacy(link: &LinkPlan, state: &ClusterState) -> CheckResult {
    let t = link.link_name();
    let Ok(deployments) = &state.controllers else {
        // Already reported by `controller-available`.
        return CheckResult::warning(
            CheckId::LegacyController,
            "not checked: the Deployments could not be read",
        );
    };
    let legacy: Vec<String> = deployments
        .iter()
        .filter(|d| {
            label(d, "component") == Some("service-mirror")
                && label(d, "mirror.linkerd.io/cluster-name") == Some(t)
        })
        .map(deployment_name)
        .collect();
    if legacy.is_empty() {
        return CheckResult::ok(
            CheckId::LegacyController,
            format!("no legacy service-mirror controller serves `{t}`"),
        );
    }
    CheckResult::error(
        CheckId::LegacyController,
        format!(
            "a legacy controller of the deprecated `linkerd multicluster link` competes with `{}` for Link `{t}`",
            link.controller_name()
        ),
    )
    .details(legacy)
    .hint(format!(
        "both take the Lease `service-mirror-write-{t}`; `meshfleet migrate` moves the link to the declarative \
         controller and removes the legacy one"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_lists_changed_missing_and_extra_fields() {
        let rendered = json!({"gatewayPort": "4143", "probeSpec": {"path": "/ready"}, "selector": {"matchLabels": {"mirror.linkerd.io/exported": "true"}}});
        let live = json!({"gatewayPort": "4999", "probeSpec": {"path": "/ready", "timeout": "30s", "failureThreshold": "3"}, "excludedLabels": ["a"]});
        let d = diff("spec", &rendered, &live);
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(
            d[0].starts_with("`spec.gatewayPort`: rendered `4143`, live `4999`"),
            "{d:?}"
        );
        assert!(d.iter().any(|l| l.contains(
            "`spec.selector.matchLabels[\"mirror.linkerd.io/exported\"]`: rendered `true`, absent live"
        )));
        assert!(
            d.iter()
                .any(|l| l.contains("`spec.excludedLabels[0]`: not rendered, live `a`"))
        );
    }

    #[test]
    fn non_default_timeout_is_drift() {
        let d = diff(
            "spec",
            &json!({"probeSpec": {"path": "/ready"}}),
            &json!({"probeSpec": {"path": "/ready", "timeout": "5s"}}),
        );
        assert_eq!(
            d,
            vec!["`spec.probeSpec.timeout`: not rendered, live `5s`".to_string()]
        );
    }
}
