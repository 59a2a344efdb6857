//! Rules for networks: pod and service CIDRs parse, are canonical, and do not overlap
//! within a cluster or across linked clusters; remote-discovery targets have pod CIDRs
//! inside `linkerd.clusterNetworks`, or their pods would not be treated as in-mesh.

use std::collections::HashSet;

use ipnet::IpNet;

use meshfleet_fleet::defaults;
use meshfleet_fleet::diagnostic::Finding;
use meshfleet_fleet::located::{Located, SourceLocation};
use meshfleet_fleet::model::{ClusterSpec, LinkMode};

use super::{ClusterNetworks, Ctx, Parsed, Rule};

/// A parsed CIDR of a cluster, with what it is for and where it was written.
struct Cidr<'a> {
    net: IpNet,
    kind: &'static str,
    cluster: &'a str,
    at: SourceLocation,
}

pub(super) fn check(ctx: &Ctx<'_>, parsed: &mut Parsed, out: &mut Vec<Finding>) {
    let cluster_networks: Vec<IpNet> = match &ctx.fleet.spec.linkerd.cluster_networks {
        Some(list) => list
            .iter()
            .filter_map(|n| parse("clusterNetworks entry", n, out))
            .collect(),
        None => defaults::CLUSTER_NETWORKS
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect(),
    };
    let mut per_cluster = std::collections::HashMap::new();
    for cluster in &ctx.fleet.spec.clusters {
        let cidrs = cluster_cidrs(&cluster.value, out);
        let written = cluster
            .network
            .as_ref()
            .map_or(0, |n| n.pods.len() + n.services.len());
        if cidrs.len() == written {
            let of = |kind: &str| cidrs.iter().filter(|c| c.kind == kind).map(|c| c.net).collect();
            parsed.networks.insert(
                cluster.name.value.clone(),
                ClusterNetworks {
                    pods: of("pod"),
                    services: of("service"),
                },
            );
        }
        for (i, a) in cidrs.iter().enumerate() {
            for b in &cidrs[i + 1..] {
                if overlaps(a.net, b.net) {
                    out.push(overlap_finding(b, a));
                }
            }
        }
        per_cluster.entry(cluster.name.value.as_str()).or_insert(cidrs);
    }
    let mut pairs_checked = HashSet::new();
    for link in ctx.valid_links() {
        let (s, t) = (link.source.value.as_str(), link.target.value.as_str());
        let pair = if s < t { (s, t) } else { (t, s) };
        if pairs_checked.insert(pair) {
            let (Some(a), Some(b)) = (per_cluster.get(pair.0), per_cluster.get(pair.1)) else {
                continue;
            };
            for x in a {
                for y in b {
                    if overlaps(x.net, y.net) {
                        let (first, second) = if x.at.offset <= y.at.offset {
                            (x, y)
                        } else {
                            (y, x)
                        };
                        out.push(overlap_finding(second, first));
                    }
                }
            }
        }
        if link.mode.value == LinkMode::RemoteDiscovery
            && let Some(target) = ctx.cluster(t)
        {
            remote_discovery_target(target, &link.label(), link.mode.at, &cluster_networks, out);
        }
    }
}

fn remote_discovery_target(
    target: &ClusterSpec,
    link: &str,
    link_at: SourceLocation,
    cluster_networks: &[IpNet],
    out: &mut Vec<Finding>,
) {
    let pods = target
        .network
        .as_ref()
        .map(|n| n.pods.as_slice())
        .unwrap_or_default();
    if pods.is_empty() {
        out.push(Finding::error(
            Rule::NetworkMissing,
            link_at,
            format!(
                "link `{link}` uses remote discovery, but cluster `{}` declares no `network.pods`",
                target.name.value
            ),
            "remote discovery routes to pod IPs; add the target's pod CIDRs so meshfleet can check them",
        ));
        return;
    }
    for pod in pods {
        let Ok(net) = pod.value.parse::<IpNet>() else {
            continue;
        };
        if !cluster_networks.iter().any(|n| n.contains(&net)) {
            out.push(Finding::error(Rule::ClusterNetworks,
                pod.at,
                format!(
                    "pod CIDR `{}` of cluster `{}` lies outside `linkerd.clusterNetworks`, so link `{link}` would not treat its pods as in-mesh",
                    pod.value, target.name.value
                ),
                format!("add `{}` (or a network containing it) to `spec.linkerd.clusterNetworks`", net.trunc()),
            ));
        }
    }
}

fn cluster_cidrs<'a>(cluster: &'a ClusterSpec, out: &mut Vec<Finding>) -> Vec<Cidr<'a>> {
    let Some(network) = &cluster.network else {
        return Vec::new();
    };
    let mut cidrs = Vec::new();
    for (kind, list) in [("pod", &network.pods), ("service", &network.services)] {
        for value in list {
            if let Some(net) = parse(
                &format!("{kind} CIDR of cluster `{}`", cluster.name.value),
                value,
                out,
            ) {
                cidrs.push(Cidr {
                    net,
                    kind,
                    cluster: &cluster.name.value,
                    at: value.at,
                });
            }
        }
    }
    cidrs
}

fn parse(what: &str, value: &Located<String>, out: &mut Vec<Finding>) -> Option<IpNet> {
    match value.value.parse::<IpNet>() {
        Err(_) => {
            out.push(Finding::error(
                Rule::CidrInvalid,
                value.at,
                format!("{what} `{}` is not a CIDR", value.value),
                "write an address and prefix length, e.g. `10.246.0.0/16` or `fd00:10::/56`",
            ));
            None
        }
        Ok(net) if net.trunc() != net => {
            out.push(Finding::error(
                Rule::CidrInvalid,
                value.at,
                format!("{what} `{}` has host bits set", value.value),
                format!("write the network address: `{}`", net.trunc()),
            ));
            None
        }
        Ok(net) => Some(net),
    }
}

fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn overlap_finding(later: &Cidr<'_>, earlier: &Cidr<'_>) -> Finding {
    let same = later.cluster == earlier.cluster;
    Finding::error(
        Rule::CidrOverlap,
        later.at,
        format!(
            "{} CIDR `{}` of cluster `{}` overlaps {} CIDR `{}` of {} (line {})",
            later.kind,
            later.net,
            later.cluster,
            earlier.kind,
            earlier.net,
            if same {
                "the same cluster".to_string()
            } else {
                format!("cluster `{}`", earlier.cluster)
            },
            earlier.at.line
        ),
        if same {
            "pod and service ranges of one cluster must be disjoint".to_string()
        } else {
            "linked clusters need disjoint pod and service ranges; give each cluster its own (e.g. 10.246.0.0/16 and 10.247.0.0/16)".to_string()
        },
    )
}

#[cfg(test)]
mod tests {
    use crate::fixtures::{base_with, findings, rules};

    #[test]
    fn cidrs_parse_and_are_canonical() {
        assert_eq!(
            rules(&base_with("[10.2.0.0/16]", "[10.2.0.0/33]")),
            ["cidr-invalid"]
        );
        assert_eq!(
            rules(&base_with("[10.2.0.0/16]", "[10.2.0.1/16]")),
            ["cidr-invalid"]
        );
    }

    #[test]
    fn linked_clusters_have_disjoint_ranges() {
        let overlap = findings(&base_with("pods: [10.2.0.0/16]", "pods: [10.1.128.0/17]"));
        assert_eq!(overlap.len(), 1, "{overlap:#?}");
        assert_eq!(overlap[0].rule, "cidr-overlap");
        assert!(overlap[0].message.contains("`studio`"), "{}", overlap[0].message);
        assert_eq!(
            rules(&base_with("services: [10.102.0.0/16]", "services: [10.2.0.0/24]")),
            ["cidr-overlap"]
        );
    }

    #[test]
    fn remote_discovery_targets_lie_in_cluster_networks() {
        let text = base_with(
            "    version: 2025.4.4\n",
            "    version: 2025.4.4\n    clusterNetworks: [10.1.0.0/16]\n",
        )
        .replace(
            "{source: studio, target: pro}",
            "{source: studio, target: pro, mode: remote-discovery}",
        );
        assert_eq!(rules(&text), ["cluster-networks"]);
    }
}
