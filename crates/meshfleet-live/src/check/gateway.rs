//! The gateway a link dials and its probe: `gateway-service` and `probe-endpoints`.
//!
//! The Link's `gatewayPort` and `probeSpec.port` are the target gateway's ports as
//! dialled (the NodePorts of a NodePort gateway), and the source's `probe-<target>`
//! Service must listen on that same probe port, or the controller's probe has no route
//! (linkerd2#14451, seed 003's "expected" probe errors). The gateway's annotations are
//! what `link-gen` would read into a Link, so they must agree with the fleet too.

use k8s_openapi::api::core::v1::{Service, ServicePort};

use super::credentials::compare;
use super::files::{TreeFiles, in_tree};
use super::snapshot::ClusterState;
use super::{CheckId, CheckResult, plural};
use meshfleet_fleet::defaults;
use meshfleet_fleet::duration::parse_go_duration;
use meshfleet_fleet::model::ServiceType;
use meshfleet_plan::{ClusterPlan, GatewayPlan, LinkPlan};
use meshfleet_render::stages::StageKind;

fn port_of<'s>(service: &'s Service, name: &str) -> Option<&'s ServicePort> {
    service
        .spec
        .as_ref()?
        .ports
        .as_ref()?
        .iter()
        .find(|p| p.name.as_deref() == Some(name))
}

pub(super) fn gateway_service(
    link: &LinkPlan,
    target_plan: &ClusterPlan,
    gw: &GatewayPlan,
    target: Option<&ClusterState>,
    files: &TreeFiles<'_>,
) -> CheckResult {
    let mc_ns = defaults::MULTICLUSTER_NAMESPACE;
    let name = defaults::GATEWAY_NAME;
    let file = files.multicluster(target_plan);
    let Some(target) = target else {
        return CheckResult::warning(
            CheckId::GatewayService,
            format!("not checked: `{}` is unreachable", link.target),
        );
    };
    if let Err(failure) = &target.services {
        return failure.to_result(CheckId::GatewayService, &target.context);
    }
    let Some(service) = target.service(mc_ns, name) else {
        return CheckResult::error(
            CheckId::GatewayService,
            format!("`{}` has no gateway Service `{mc_ns}/{name}`", link.target),
        )
        .hint(format!(
            "the gateway is rendered in {} (`gateway.enabled`); {}",
            in_tree(&file),
            files.applied(target_plan, StageKind::LinkerdMulticluster)
        ))
        .file(file);
    };
    let mut problems = Vec::new();
    let spec = service.spec.as_ref();
    let service_type = spec.and_then(|s| s.type_.as_deref()).unwrap_or("ClusterIP");
    if service_type != gw.service_type.as_str() {
        problems.push(format!(
            "type `{service_type}`, the fleet says `{}`",
            gw.service_type.as_str()
        ));
    }
    let node_ports = gw.service_type == ServiceType::NodePort;
    for (port_name, port, node_port) in [
        ("mc-gateway", gw.port, gw.node_port),
        ("mc-probe", gw.probe_port, gw.probe_node_port),
    ] {
        match port_of(service, port_name) {
            None => problems.push(format!("no port `{port_name}`")),
            Some(p) => {
                if p.port != i32::from(port) {
                    problems.push(format!("port `{port_name}` is {}, the fleet says {port}", p.port));
                }
                if node_ports
                    && let Some(want) = node_port
                    && p.node_port != Some(i32::from(want))
                {
                    problems.push(format!(
                        "port `{port_name}` has NodePort {}, the fleet (and so the Link) says {want}",
                        p.node_port.map_or_else(|| "none".to_string(), |n| n.to_string())
                    ));
                }
            }
        }
    }
    let annotations = service.metadata.annotations.clone().unwrap_or_default();
    let identity = link.gateway_identity();
    for (key, want) in [
        ("mirror.linkerd.io/gateway-identity", identity.as_str()),
        ("mirror.linkerd.io/probe-path", gw.probe_path.as_str()),
    ] {
        compare(&mut problems, "annotation", key, want, annotations.get(key));
    }
    let period_key = "mirror.linkerd.io/probe-period";
    match annotations.get(period_key) {
        None => problems.push(format!("no annotation `{period_key}`")),
        Some(have) if period_seconds(have) != Some(u64::from(gw.probe_period.seconds())) => {
            problems.push(format!(
                "annotation `{period_key}` is `{have}`, the fleet's probe period is `{}`",
                gw.probe_period
            ));
        }
        Some(_) => {}
    }
    if problems.is_empty() {
        CheckResult::ok(
            CheckId::GatewayService,
            format!(
                "gateway `{name}` on `{}` is a {} Service with the fleet's ports and annotations",
                link.target,
                gw.service_type.as_str()
            ),
        )
    } else {
        CheckResult::error(
            CheckId::GatewayService,
            format!(
                "the gateway Service on `{}` is not what the Link dials",
                link.target
            ),
        )
        .details(problems)
        .hint(format!(
            "the gateway is rendered in {}; {}",
            in_tree(&file),
            files.applied(target_plan, StageKind::LinkerdMulticluster)
        ))
        .file(file)
    }
}

/// `3` (the chart writes whole seconds) or a Go duration (`3s`), in seconds.
fn period_seconds(text: &str) -> Option<u64> {
    if let Ok(n) = text.parse::<u64>() {
        return Some(n);
    }
    let nanos = parse_go_duration(text).ok()?;
    u64::try_from(nanos / 1_000_000_000).ok()
}

pub(super) fn probe_endpoints(
    cluster: &ClusterPlan,
    link: &LinkPlan,
    probe_port: u16,
    state: &ClusterState,
    files: &TreeFiles<'_>,
) -> CheckResult {
    let mc_ns = defaults::MULTICLUSTER_NAMESPACE;
    let name = link.probe_service();
    let file = files.multicluster(cluster);
    if let Err(failure) = &state.services {
        return failure.to_result(CheckId::ProbeEndpoints, &state.context);
    }
    let Some(service) = state.service(mc_ns, &name) else {
        return CheckResult::error(
            CheckId::ProbeEndpoints,
            format!("there is no probe Service `{mc_ns}/{name}`"),
        )
        .hint(format!(
            "the chart renders it for a controller whose `gateway.enabled` is true ({}); {}",
            in_tree(&file),
            files.applied(cluster, StageKind::LinkerdMulticluster)
        ))
        .file(file);
    };
    let service_port = port_of(service, "mc-probe").map(|p| p.port);
    if service_port != Some(i32::from(probe_port)) {
        return CheckResult::error(
            CheckId::ProbeEndpoints,
            format!(
                "probe Service `{name}` listens on {}, but the Link probes port {probe_port}: the probe has no route",
                service_port.map_or_else(|| "no `mc-probe` port".to_string(), |p| format!("port {p}"))
            ),
        )
        .details(["the controller's `gateway.probe.port` and the Link's `probeSpec.port` must agree (linkerd2#14451)".to_string()])
        .hint(format!("both are rendered from the fleet in {}", in_tree(&file)))
        .file(file);
    }
    let endpoints = match state.probe_endpoints.get(&name) {
        None => {
            return CheckResult::error(
                CheckId::ProbeEndpoints,
                format!("Endpoints `{mc_ns}/{name}` were not read"),
            );
        }
        Some(Err(failure)) => return failure.to_result(CheckId::ProbeEndpoints, &state.context),
        Some(Ok(endpoints)) => endpoints.as_ref(),
    };
    let addresses: Vec<String> = endpoints
        .and_then(|e| e.subsets.as_ref())
        .into_iter()
        .flatten()
        .filter(|s| {
            s.ports
                .as_ref()
                .is_some_and(|ports| ports.iter().any(|p| p.port == i32::from(probe_port)))
        })
        .flat_map(|s| s.addresses.iter().flatten().map(|a| a.ip.clone()))
        .collect();
    if addresses.is_empty() {
        return CheckResult::error(
            CheckId::ProbeEndpoints,
            format!("the probe Endpoints `{mc_ns}/{name}` have no address on port {probe_port}"),
        )
        .hint(format!(
            "`{}` writes them from the Link's `gatewayAddress`; see `kubectl -n {mc_ns} logs deploy/{}`",
            link.controller_name(),
            link.controller_name()
        ));
    }
    CheckResult::ok(
        CheckId::ProbeEndpoints,
        format!(
            "probe `{name}` has {} on port {probe_port}",
            plural(addresses.len(), "address")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_periods_compare_in_seconds() {
        assert_eq!(period_seconds("3"), Some(3));
        assert_eq!(period_seconds("3s"), Some(3));
        assert_eq!(period_seconds("1m"), Some(60));
        assert_eq!(period_seconds("soon"), None);
    }
}
