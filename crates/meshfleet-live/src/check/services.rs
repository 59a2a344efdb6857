//! Exported and mirrored Services: `mirror-present`, `export-annotation`, `unknown-mirror`.
//!
//! Linkerd exports a Service only through LABELS matched by the Link's selectors
//! (reference section 4.1); `multicluster.linkerd.io/export` does nothing, and neither
//! does `mirror.linkerd.io/exported` written as an annotation. A Service exported that way
//! looks exported to its author and is silently never mirrored, so it is an error.
//!
//! Mirrors are `<svc>-<target>` in the same namespace, labelled
//! `mirror.linkerd.io/mirrored-service=true` and `mirror.linkerd.io/cluster-name=<target>`.
//! Which remote Services a link exports is decided here exactly as the controller does:
//! the link's gateway selector (gateway mode only) or its remote-discovery selector, where
//! an empty selector matches nothing (unlike Kubernetes).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::snapshot::{ClusterState, Snapshot};
use super::{CheckId, CheckResult, plural};
use meshfleet_plan::{ClusterPlan, LinkPlan};

/// Label of mirror Services.
const MIRRORED: &str = "mirror.linkerd.io/mirrored-service";
/// Label naming the link a mirror belongs to.
const CLUSTER_NAME: &str = "mirror.linkerd.io/cluster-name";
/// Labels of mirrors that are not per-service mirrors (probe gateways, headless endpoints).
const NOT_SERVICE_MIRRORS: [&str; 2] = [
    "mirror.linkerd.io/mirrored-gateway",
    "mirror.linkerd.io/headless-mirror-svc-name",
];
/// The annotation some guides use to export, which Linkerd ignores.
const EXPORT_ANNOTATIONS: [&str; 2] = ["multicluster.linkerd.io/export", "mirror.linkerd.io/exported"];

fn labels(service: &Service) -> BTreeMap<String, String> {
    service.metadata.labels.clone().unwrap_or_default()
}

fn id(service: &Service) -> (&str, &str) {
    (
        service.metadata.namespace.as_deref().unwrap_or_default(),
        service.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// Whether `selector` selects `labels`, with Linkerd's rule that an empty selector
/// matches nothing.
pub(super) fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if meshfleet_fleet::selector::is_empty(selector) {
        return false;
    }
    let exact = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    exact && expressions
}

/// Whether the target's `service` is exported to `link`.
fn exported_to(link: &LinkPlan, service: &Service) -> bool {
    let labels = labels(service);
    (link.gateway.is_some() && selects(&link.selector, &labels))
        || selects(&link.remote_discovery_selector, &labels)
}

/// `mirror-present` for one link.
pub(super) fn check_mirrors(
    cluster: &ClusterPlan,
    link: &LinkPlan,
    state: &ClusterState,
    target: Option<&ClusterState>,
    out: &mut Vec<CheckResult>,
) {
    let t = link.link_name();
    let result = match (target, &state.services) {
        (None, _) => CheckResult::warning(
            CheckId::MirrorPresent,
            format!("not checked: `{}` is unreachable", link.target),
        ),
        (_, Err(failure)) => failure.to_result(CheckId::MirrorPresent, &state.context),
        (Some(target), Ok(_)) => match &target.services {
            Err(failure) => failure.to_result(CheckId::MirrorPresent, &target.context),
            Ok(remote) => {
                let exported: Vec<&Service> = remote.iter().filter(|s| exported_to(link, s)).collect();
                let mut missing = Vec::new();
                for service in &exported {
                    let (ns, name) = id(service);
                    let mirror = format!("{name}-{t}");
                    match state.service(ns, &mirror) {
                        Some(m) if labels(m).get(MIRRORED).map(String::as_str) == Some("true") => {}
                        Some(_) => missing.push(format!(
                            "`{ns}/{mirror}` exists but is not a mirror (no label `{MIRRORED}=true`)"
                        )),
                        None if state.has_namespace(ns) == Some(false) => missing.push(format!(
                            "`{ns}/{mirror}`: namespace `{ns}` does not exist on `{}`, so Linkerd skips `{ns}/{name}` (MissingNamespace)",
                            cluster.name
                        )),
                        None => missing.push(format!("`{ns}/{mirror}` (mirror of `{ns}/{name}`) is missing")),
                    }
                }
                if missing.is_empty() {
                    CheckResult::ok(
                        CheckId::MirrorPresent,
                        if exported.is_empty() {
                            format!("`{}` exports no service to this link", link.target)
                        } else {
                            format!(
                                "every service `{}` exports is mirrored ({})",
                                link.target,
                                plural(exported.len(), "service")
                            )
                        },
                    )
                } else {
                    CheckResult::error(
                        CheckId::MirrorPresent,
                        format!(
                            "{} of {} exported by `{}` not mirrored",
                            missing.len(),
                            plural(exported.len(), "service"),
                            link.target
                        ),
                    )
                    .details(missing)
                    .hint(format!(
                        "`{}` creates the mirrors; see `kubectl -n linkerd-multicluster logs deploy/{}`, and the Link's \
                         `status.mirrorServices` for the reason of each service",
                        link.controller_name(),
                        link.controller_name()
                    ))
                }
            }
        },
    };
    out.push(result.for_link(t));
}

/// `export-annotation` and `unknown-mirror` of one cluster.
pub(super) fn check_cluster(
    cluster: &ClusterPlan,
    state: &ClusterState,
    all: &BTreeMap<String, Snapshot>,
    out: &mut Vec<CheckResult>,
) {
    let services = match &state.services {
        Err(failure) => {
            out.push(failure.to_result(CheckId::ExportAnnotation, &state.context));
            return;
        }
        Ok(services) => services,
    };
    out.push(export_annotation(services));
    out.push(unknown_mirrors(cluster, services, all));
}

fn export_annotation(services: &[Service]) -> CheckResult {
    let mut wrong = Vec::new();
    for service in services {
        let annotations = service.metadata.annotations.clone().unwrap_or_default();
        let labels = labels(service);
        for key in EXPORT_ANNOTATIONS {
            // `mirror.linkerd.io/exported` as an annotation is harmless beside the label.
            if annotations.contains_key(key) && !labels.contains_key("mirror.linkerd.io/exported") {
                let (ns, name) = id(service);
                wrong.push(format!(
                    "`{ns}/{name}` has the annotation `{key}`, which Linkerd ignores"
                ));
            }
        }
    }
    if wrong.is_empty() {
        return CheckResult::ok(
            CheckId::ExportAnnotation,
            "no service tries to export with an annotation",
        );
    }
    CheckResult::error(
        CheckId::ExportAnnotation,
        format!(
            "{} tried to be exported with an annotation and never will be",
            plural(wrong.len(), "service")
        ),
    )
    .details(wrong)
    .hint(
        "Linkerd exports by LABEL: `kubectl -n NS label service NAME mirror.linkerd.io/exported=true` \
         (or `=remote-discovery`), in the manifests where the service is defined",
    )
}

fn unknown_mirrors(
    cluster: &ClusterPlan,
    services: &[Service],
    all: &BTreeMap<String, Snapshot>,
) -> CheckResult {
    let mut unknown = Vec::new();
    let mut stale = Vec::new();
    let mut count = 0;
    for service in services {
        let labels = labels(service);
        if labels.get(MIRRORED).map(String::as_str) != Some("true")
            || NOT_SERVICE_MIRRORS.iter().any(|l| labels.contains_key(*l))
        {
            continue;
        }
        // Federated services carry no cluster name: they belong to no single link.
        let Some(from) = labels.get(CLUSTER_NAME) else {
            continue;
        };
        count += 1;
        let (ns, name) = id(service);
        let Some(link) = cluster.outgoing.iter().find(|l| l.link_name() == from) else {
            unknown.push(format!(
                "`{ns}/{name}` mirrors from `{from}`, which no link of `{}` targets",
                cluster.name
            ));
            continue;
        };
        let Some(target) = all.get(&link.target).and_then(Snapshot::reachable) else {
            continue;
        };
        let Some(remote) = name.strip_suffix(&format!("-{from}")) else {
            continue;
        };
        if !target.service(ns, remote).is_some_and(|s| exported_to(link, s)) {
            stale.push(format!(
                "`{ns}/{name}`: `{ns}/{remote}` is no longer exported by `{}`",
                link.target
            ));
        }
    }
    if !unknown.is_empty() {
        return CheckResult::error(
            CheckId::UnknownMirror,
            format!("{} of links the fleet does not know", plural(unknown.len(), "mirror Service")),
        )
        .details(unknown.into_iter().chain(stale))
        .hint("they are left over from a removed link (Linkerd does not clean up when a Link is deleted): delete them, or add the link to the fleet");
    }
    if !stale.is_empty() {
        return CheckResult::warning(
            CheckId::UnknownMirror,
            format!(
                "{} of services no longer exported",
                plural(stale.len(), "mirror Service")
            ),
        )
        .details(stale)
        .hint("the controller removes them when it restarts; or delete them");
    }
    CheckResult::ok(
        CheckId::UnknownMirror,
        if count == 0 {
            "no mirror Service on this cluster".to_string()
        } else {
            format!("{}, all from links of the fleet", plural(count, "mirror Service"))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshfleet_fleet::selector::parse_label_query;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn selectors_follow_linkerd() {
        let sel = parse_label_query("mirror.linkerd.io/exported=true").unwrap();
        assert!(selects(&sel, &map(&[("mirror.linkerd.io/exported", "true")])));
        assert!(!selects(
            &sel,
            &map(&[("mirror.linkerd.io/exported", "remote-discovery")])
        ));
        // Empty matches nothing, unlike Kubernetes.
        assert!(!selects(&LabelSelector::default(), &map(&[("a", "b")])));
        let sel = parse_label_query("tier in (web,api),!legacy").unwrap();
        assert!(selects(&sel, &map(&[("tier", "api")])));
        assert!(!selects(&sel, &map(&[("tier", "api"), ("legacy", "")])));
        assert!(!selects(&sel, &map(&[("tier", "db")])));
    }

    #[test]
    fn export_by_annotation_is_flagged_but_not_beside_the_label() {
        let mut bad = Service::default();
        bad.metadata.name = Some("web".into());
        bad.metadata.namespace = Some("apps".into());
        bad.metadata.annotations = Some(map(&[("multicluster.linkerd.io/export", "true")]));
        let mut fine = bad.clone();
        fine.metadata.annotations = Some(map(&[("mirror.linkerd.io/exported", "true")]));
        fine.metadata.labels = Some(map(&[("mirror.linkerd.io/exported", "true")]));
        assert_eq!(
            export_annotation(std::slice::from_ref(&fine)).status,
            super::super::Status::Ok
        );
        let r = export_annotation(&[bad, fine]);
        assert_eq!(r.status, super::super::Status::Error);
        assert_eq!(r.details.len(), 1);
    }
}
