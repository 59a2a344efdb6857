//! Rules for each cluster: names, link names, contexts, API server addresses and the
//! multicluster gateway (ports, NodePorts, probe).

use std::collections::HashMap;
use std::net::IpAddr;

use meshfleet_fleet::defaults;
use meshfleet_fleet::diagnostic::Finding;
use meshfleet_fleet::duration::{ProbePeriod, ProbePeriodError};
use meshfleet_fleet::located::{Located, SourceLocation};
use meshfleet_fleet::model::{ClusterSpec, GatewaySpec, ServiceType};
use meshfleet_fleet::names::{self, NameError};

use super::settings::label;
use super::{Ctx, GatewayPorts, Parsed, Rule};

pub(super) fn check(ctx: &Ctx<'_>, parsed: &mut Parsed, out: &mut Vec<Finding>) {
    let mut names_seen: HashMap<&str, SourceLocation> = HashMap::new();
    let mut link_names: HashMap<&str, (&str, SourceLocation)> = HashMap::new();
    let mut contexts: HashMap<&str, (&str, SourceLocation)> = HashMap::new();
    let targets: std::collections::HashSet<&str> =
        ctx.links.iter().map(|l| l.target.value.as_str()).collect();
    if ctx.fleet.spec.clusters.is_empty() {
        out.push(Finding::error(
            Rule::MissingField,
            ctx.fleet.metadata.name.at,
            "the fleet has no clusters",
            "add at least one entry under `spec.clusters`",
        ));
    }
    for cluster in &ctx.fleet.spec.clusters {
        let c = &cluster.value;
        label("cluster name", &c.name, out);
        if let Some(first) = names_seen.insert(&c.name.value, c.name.at) {
            names_seen.insert(&c.name.value, first);
            out.push(Finding::error(
                Rule::DuplicateCluster,
                c.name.at,
                format!(
                    "cluster `{}` is declared twice (first at line {})",
                    c.name.value, first.line
                ),
                "give every cluster its own name, or remove the second entry",
            ));
        }
        let link_name = c.link_name.as_ref().unwrap_or(&c.name);
        if let Some(ln) = &c.link_name {
            label("link name", ln, out);
        }
        if let Some((other, first)) = link_names.get(link_name.value.as_str()) {
            if *other != c.name.value {
                out.push(Finding::error(Rule::DuplicateLinkName,
                    link_name.at,
                    format!(
                        "cluster `{}` uses link name `{}`, which cluster `{other}` (line {}) uses already",
                        c.name.value, link_name.value, first.line
                    ),
                    "link names name the Links, credentials and mirrored services; give each cluster its own `linkName`",
                ));
            }
        } else {
            link_names.insert(&link_name.value, (&c.name.value, link_name.at));
        }
        let context = c.context.as_ref().unwrap_or(&c.name);
        if let Some((other, first)) = contexts.get(context.value.as_str()) {
            if *other != c.name.value {
                out.push(Finding::error(Rule::DuplicateContext,
                    context.at,
                    format!(
                        "cluster `{}` uses kubeconfig context `{}`, as does cluster `{other}` (line {})",
                        c.name.value, context.value, first.line
                    ),
                    "live commands would treat two clusters as one; set `context` to each cluster's own context",
                ));
            }
        } else {
            contexts.insert(&context.value, (&c.name.value, context.at));
        }
        api_server(c, targets.contains(c.name.value.as_str()), cluster.at, out);
        if let Some(gateway) = &c.gateway {
            check_gateway(c, gateway, parsed, out);
        }
    }
}

fn api_server(c: &ClusterSpec, is_target: bool, cluster_at: SourceLocation, out: &mut Vec<Finding>) {
    let Some(server) = &c.api_server else {
        if is_target {
            out.push(Finding::warning(Rule::ApiServer,
                c.name.at.or(cluster_at),
                format!("cluster `{}` is a link target but has no `apiServer`", c.name.value),
                "add the address other clusters use to reach its API server (`secrets sync` writes it into their kubeconfigs)",
            ));
        }
        return;
    };
    let Some(rest) = server.value.strip_prefix("https://") else {
        out.push(Finding::error(
            Rule::ApiServer,
            server.at,
            format!("`apiServer: {}` is not an https:// URL", server.value),
            "write the URL other clusters use, e.g. `https://studio.vpn.example:6443`",
        ));
        return;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = host_of(authority);
    let loopback = host == "localhost"
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
    if host.is_empty() {
        out.push(Finding::error(
            Rule::ApiServer,
            server.at,
            format!("`apiServer: {}` has no host", server.value),
            "write the URL other clusters use, e.g. `https://studio.vpn.example:6443`",
        ));
    } else if loopback {
        out.push(Finding::error(Rule::ApiServer,
            server.at,
            format!("`apiServer: {}` is a loopback address, which other clusters cannot reach", server.value),
            "use an address reachable from the linking clusters (a VPN name, LB or node IP), not 127.0.0.1 or localhost",
        ));
    }
}

/// The host part of `host[:port]` or `[v6]:port`.
fn host_of(authority: &str) -> &str {
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or_default();
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    }
}

fn check_gateway(
    c: &ClusterSpec,
    gateway: &Located<GatewaySpec>,
    parsed: &mut Parsed,
    out: &mut Vec<Finding>,
) {
    let g = &gateway.value;
    let service_type = g
        .service_type
        .as_ref()
        .map_or(ServiceType::LoadBalancer, |t| t.value);
    let type_at = g.service_type.as_ref().map_or(gateway.at, |t| t.at);
    let probe = g.probe.as_ref().map(|p| &p.value);
    for address in &g.addresses {
        if let Err(why) = gateway_address(&address.value) {
            out.push(Finding::error(
                Rule::GatewayAddress,
                address.at,
                format!(
                    "gateway address `{}` of cluster `{}` {why}",
                    address.value, c.name.value
                ),
                "write a bare IP address or DNS name; the port comes from `port`/`nodePort`",
            ));
        }
    }
    let gateway_port = port("gateway port", g.port.as_ref(), defaults::GATEWAY_PORT, out);
    let probe_port = port(
        "probe port",
        probe.and_then(|p| p.port.as_ref()),
        defaults::PROBE_PORT,
        out,
    );
    node_ports(c, g, service_type, type_at, out);
    probe_rules(c, g, out);
    if let (Some(port), Some(probe_port), Ok(node_port), Ok(probe_node_port)) = (
        gateway_port,
        probe_port,
        node_port(g.node_port.as_ref()),
        node_port(probe.and_then(|p| p.node_port.as_ref())),
    ) {
        let ports = GatewayPorts {
            port,
            node_port,
            probe_port,
            probe_node_port,
        };
        parsed.gateway_ports.insert(c.name.value.clone(), ports);
    }
    probe_period(c, gateway, parsed, out);
}

/// NodePorts: set exactly on NodePort gateways, in Kubernetes' default range.
fn node_ports(
    c: &ClusterSpec,
    g: &GatewaySpec,
    service_type: ServiceType,
    type_at: SourceLocation,
    out: &mut Vec<Finding>,
) {
    let probe = g.probe.as_ref().map(|p| &p.value);
    let node_ports = [
        ("nodePort", g.node_port.as_ref()),
        ("probe nodePort", probe.and_then(|p| p.node_port.as_ref())),
    ];
    for (what, value) in node_ports {
        let Some(value) = value else {
            if service_type == ServiceType::NodePort {
                out.push(Finding::error(Rule::NodePortMissing,
                    type_at,
                    format!("the NodePort gateway of cluster `{}` has no {what}", c.name.value),
                    format!(
                        "set `{}`: Links are rendered offline and must know the port other clusters dial (30000-32767)",
                        if what == "nodePort" { "gateway.nodePort" } else { "gateway.probe.nodePort" }
                    ),
                ));
            }
            continue;
        };
        if service_type != ServiceType::NodePort {
            out.push(Finding::error(
                Rule::NodePortType,
                value.at,
                format!(
                    "{what} `{}` is set on a `{}` gateway",
                    value.value,
                    service_type.as_str()
                ),
                "NodePorts apply to `serviceType: NodePort` only; remove it or change the service type",
            ));
        } else if !(30_000..=32_767).contains(&value.value) {
            out.push(Finding::error(
                Rule::NodePortRange,
                value.at,
                format!(
                    "{what} `{}` is outside the NodePort range 30000-32767",
                    value.value
                ),
                "pick a port between 30000 and 32767 (Kubernetes' default `--service-node-port-range`)",
            ));
        }
    }
}

/// The probe's port (the gateway proxy's admin port), distinct ports, and its path.
fn probe_rules(c: &ClusterSpec, g: &GatewaySpec, out: &mut Vec<Finding>) {
    let probe = g.probe.as_ref().map(|p| &p.value);
    // The chart's gateway Service port `mc-probe` has no targetPort, so the pod is probed
    // on `probe.port` itself, and only the gateway proxy's admin server (the default probe
    // port, 4191) answers.
    if let Some(pp) = probe.and_then(|p| p.port.as_ref())
        && pp.value != i64::from(defaults::PROBE_PORT)
    {
        out.push(Finding::error(Rule::ProbePort,
            pp.at,
            format!(
                "probe port `{}` of cluster `{}`: nothing on the gateway pod listens there",
                pp.value, c.name.value
            ),
            format!(
                "remove `probe.port` or set it to {}, the gateway proxy's admin port that the chart's `mc-probe` Service port targets; to expose the probe on another port use `serviceType: NodePort` with `probe.nodePort`",
                defaults::PROBE_PORT
            ),
        ));
    }
    let gw_port = g
        .port
        .as_ref()
        .map_or(i64::from(defaults::GATEWAY_PORT), |p| p.value);
    let probe_port = probe.and_then(|p| p.port.as_ref());
    if let Some(pp) = probe_port
        && pp.value == gw_port
    {
        out.push(Finding::error(Rule::PortConflict,
            pp.at,
            format!("probe port `{}` equals the gateway port", pp.value),
            format!(
                "the probe port is the gateway proxy's admin port ({}); the gateway port its inbound port ({})",
                defaults::PROBE_PORT,
                defaults::GATEWAY_PORT
            ),
        ));
    } else if probe_port.is_none()
        && let Some(port) = g.port.as_ref()
        && port.value == i64::from(defaults::PROBE_PORT)
    {
        // The probe port left out is 4191: the chart would give the gateway Service
        // that port twice, once for traffic and once for the probe.
        out.push(Finding::error(
            Rule::PortConflict,
            port.at,
            format!(
                "gateway port `{}` of cluster `{}` equals the probe port (the gateway proxy's admin port {})",
                port.value,
                c.name.value,
                defaults::PROBE_PORT
            ),
            format!(
                "remove `port` to use the gateway's inbound port {}, or pick a port other than {}",
                defaults::GATEWAY_PORT,
                defaults::PROBE_PORT
            ),
        ));
    }
    if let (Some(a), Some(b)) = (g.node_port.as_ref(), probe.and_then(|p| p.node_port.as_ref()))
        && a.value == b.value
    {
        out.push(Finding::error(
            Rule::PortConflict,
            b.at,
            format!("probe nodePort `{}` equals the gateway nodePort", b.value),
            "give the probe its own NodePort, e.g. 30191 next to 30143",
        ));
    }
    if let Some(path) = probe.and_then(|p| p.path.as_ref())
        && !path.value.starts_with('/')
    {
        out.push(Finding::error(
            Rule::ProbePath,
            path.at,
            format!("probe path `{}` does not start with `/`", path.value),
            "use `/ready`, the gateway proxy's readiness endpoint",
        ));
    }
}

/// The probe period: a Go duration of whole seconds, parsed into [`Parsed::probe_periods`].
fn probe_period(
    c: &ClusterSpec,
    gateway: &Located<GatewaySpec>,
    parsed: &mut Parsed,
    out: &mut Vec<Finding>,
) {
    let probe = gateway.value.probe.as_ref().map(|p| &p.value);
    let written = probe.and_then(|p| p.period.as_ref());
    let text = written.map_or(defaults::PROBE_PERIOD, |p| p.value.as_str());
    match ProbePeriod::parse(text) {
        Ok(period) => {
            parsed.probe_periods.insert(c.name.value.clone(), period);
        }
        Err(ProbePeriodError::NotADuration(why)) => out.push(Finding::error(Rule::ProbePeriod,
            written.map_or(gateway.at, |p| p.at),
            format!("probe period {why}"),
            "write a Go duration such as `3s`; the Link CRD rejects bare numbers and the probe worker stops on them",
        )),
        Err(why @ ProbePeriodError::NotWholeSeconds { .. }) => out.push(Finding::error(Rule::ProbePeriod,
            written.map_or(gateway.at, |p| p.at),
            format!("probe period {why}"),
            "the multicluster chart takes the period in whole seconds (`gateway.probe.seconds`); use e.g. `3s`",
        )),
    }
}

/// The port written (or `default`); `None` with a finding when it is outside 1-65535.
fn port(what: &str, value: Option<&Located<i64>>, default: u16, out: &mut Vec<Finding>) -> Option<u16> {
    let Some(v) = value else {
        return Some(default);
    };
    let port = u16::try_from(v.value).ok().filter(|p| *p > 0);
    if port.is_none() {
        out.push(Finding::error(
            Rule::PortRange,
            v.at,
            format!("{what} `{}` is outside 1-65535", v.value),
            "use a TCP port between 1 and 65535",
        ));
    }
    port
}

/// A NodePort as written (`None` when it is not); `Err` when it is no port at all, which
/// the NodePort rules above report.
fn node_port(value: Option<&Located<i64>>) -> Result<Option<u16>, std::num::TryFromIntError> {
    value.map(|v| u16::try_from(v.value)).transpose()
}

/// Why a gateway address is not a bare IP address or DNS name. The message is a
/// predicate: the finding puts the address and its cluster before it.
#[derive(Debug, thiserror::Error)]
enum AddressError {
    /// `https://...`.
    #[error("has a URL scheme")]
    Scheme,
    /// `host:port`, or something else with a colon that is not an IPv6 address.
    #[error("has a port or is not an address")]
    Port,
    /// `a,b` or `a b`.
    #[error("holds a list or spaces; give each address its own entry")]
    List,
    /// Not a DNS-1123 subdomain.
    #[error("is not a DNS name: it {0}")]
    NotDns(#[source] NameError),
}

impl meshfleet_fleet::diagnostic::Hint for AddressError {
    fn hint(&self) -> Option<String> {
        // The `gateway-address` finding that quotes it says how to write an address.
        None
    }
}

fn gateway_address(address: &str) -> Result<(), AddressError> {
    if address.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if address.contains("://") {
        return Err(AddressError::Scheme);
    }
    if address.contains(':') {
        return Err(AddressError::Port);
    }
    if address.contains(',') || address.contains(char::is_whitespace) {
        return Err(AddressError::List);
    }
    names::dns1123_subdomain(&address.to_ascii_lowercase()).map_err(AddressError::NotDns)
}

#[cfg(test)]
mod tests {
    use crate::fixtures::{base_with, findings, rules};

    #[test]
    fn names_link_names_and_contexts_are_unique() {
        assert!(rules(&base_with("- name: pro\n", "- name: studio\n")).contains(&"duplicate-cluster"));
        assert_eq!(
            rules(&base_with(
                "    - name: pro\n",
                "    - name: pro\n      linkName: studio\n      context: studio\n"
            )),
            ["duplicate-link-name", "duplicate-context"]
        );
    }

    #[test]
    fn an_api_server_other_clusters_cannot_dial_is_refused() {
        let loopback = findings(&base_with("https://pro.example:6443", "https://127.0.0.1:6443"));
        assert_eq!(loopback.len(), 1, "{loopback:#?}");
        assert_eq!(loopback[0].rule, "api-server");
        assert!(
            loopback[0].message.contains("127.0.0.1"),
            "{}",
            loopback[0].message
        );
        assert_eq!(
            rules(&base_with("https://pro.example:6443", "http://pro.example:6443")),
            ["api-server"]
        );
    }

    #[test]
    fn a_gateway_port_on_the_probe_port_is_a_conflict() {
        let text = base_with(
            "        addresses: [studio.example]\n",
            "        addresses: [studio.example]\n        port: 4191\n",
        );
        let found = crate::fixtures::findings(&text);
        assert_eq!(found.len(), 1, "{found:#?}");
        let f = &found[0];
        assert_eq!(f.rule, "port-conflict");
        assert_eq!(f.location.map(|l| (l.line, l.column)), Some((28, 15)));
        assert_eq!(
            f.message,
            "gateway port `4191` of cluster `studio` equals the probe port (the gateway proxy's admin port 4191)"
        );
        assert_eq!(
            f.hint,
            "remove `port` to use the gateway's inbound port 4143, or pick a port other than 4191"
        );
    }

    #[test]
    fn node_ports_belong_to_node_port_gateways_and_their_range() {
        assert_eq!(
            rules(&base_with("nodePort: 30143", "nodePort: 8443")),
            ["node-port-range"]
        );
        assert_eq!(
            rules(&base_with(
                "        addresses: [studio.example]\n",
                "        addresses: [studio.example]\n        nodePort: 30144\n"
            )),
            ["node-port-type"]
        );
        assert_eq!(
            rules(&base_with(
                "probe: {nodePort: 30191, period: 5s}",
                "probe: {period: 5s}"
            )),
            ["node-port-missing"]
        );
    }

    #[test]
    fn probe_periods_are_go_durations_in_whole_seconds() {
        for period in ["5", "1.5s", "five"] {
            assert_eq!(
                rules(&base_with("period: 5s", &format!("period: {period}"))),
                ["probe-period"],
                "{period}"
            );
        }
        assert!(rules(&base_with("period: 5s", "period: 1m")).is_empty());
    }
}
