//! The pod and service networks of a cluster, as far as its API tells them, and the
//! fleet's `network` fields composed from them.
//!
//! Kubernetes has no one object that names a cluster's pod range, and the service range
//! is an object only since 1.31 (`ServiceCIDR`, GA in 1.33). So each range is read from
//! the most direct source that answers, and every value says where it came from:
//!
//! - services: the API server's `ServiceCIDR` objects (`kubernetes` is the one it makes
//!   from `--service-cluster-ip-range`), else kubeadm's `ClusterConfiguration`
//!   (`kube-system/kubeadm-config`, which kind and kubeadm clusters keep);
//! - pods: kubeadm's `podSubnet` (the cluster's whole range), else the nodes'
//!   `spec.podCIDRs` (the slices the node IPAM controller gave them, merged: the cluster's
//!   range may be wider).
//!
//! What no source tells is a guess (a comment in the file and a report line), never a
//! made-up range. Overlaps between linked clusters are what `validate` refuses
//! (`cidr-overlap`), so `import` reports them as problems, with the cluster and the
//! object that told each range.

use std::collections::BTreeSet;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};

use super::ClusterReading;
use super::report::{Report, Severity};
use crate::cluster::ReadError;
use meshfleet_fleet::draft::{Entry, Value};

/// One range and the object that told it (`ServiceCIDR kubernetes`, `Node n-1`,
/// `ConfigMap kube-system/kubeadm-config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrReading {
    /// The range, as written by its object.
    pub cidr: String,
    /// The object.
    pub object: String,
}

/// A cluster's networks as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkReading {
    /// The pods' ranges (empty: not told).
    pub pods: Vec<CidrReading>,
    /// Whether [`NetworkReading::pods`] are the nodes' slices rather than the cluster's range.
    pub pods_from_nodes: bool,
    /// The services' ranges (empty: not told).
    pub services: Vec<CidrReading>,
    /// The `default/kubernetes` Service's address (the first of the service range), for
    /// the guess when the range itself is not told.
    pub api_service_ip: Option<String>,
}

const KUBEADM_CONFIG: &str = "kubeadm-config";

/// Read what the cluster tells of its networks. An object that is missing or may not be
/// read is a source that did not answer, not an error.
pub(super) async fn read(client: &kube::Client) -> Result<NetworkReading, ReadError> {
    let kubeadm = optional(
        Api::<ConfigMap>::namespaced(client.clone(), "kube-system")
            .get_opt(KUBEADM_CONFIG)
            .await,
    )?
    .flatten()
    .and_then(|cm| cm.data?.get("ClusterConfiguration").cloned())
    .map(|text| kubeadm_subnets(&text))
    .unwrap_or_default();
    let kubeadm_object = format!("ConfigMap kube-system/{KUBEADM_CONFIG}");
    let from_kubeadm = |list: Vec<String>| {
        list.into_iter()
            .map(|cidr| CidrReading {
                cidr,
                object: kubeadm_object.clone(),
            })
            .collect::<Vec<_>>()
    };
    let mut services = service_cidrs(client).await?;
    if services.is_empty() {
        services = from_kubeadm(kubeadm.1);
    }
    let mut pods = from_kubeadm(kubeadm.0);
    let pods_from_nodes = pods.is_empty();
    if pods_from_nodes {
        let nodes = optional(
            Api::<Node>::all(client.clone())
                .list(&ListParams::default())
                .await,
        )?;
        for node in nodes.map(|l| l.items).unwrap_or_default() {
            let name = node.metadata.name.unwrap_or_default();
            let spec = node.spec.unwrap_or_default();
            let cidrs = spec
                .pod_cidrs
                .filter(|c| !c.is_empty())
                .or_else(|| spec.pod_cidr.map(|c| vec![c]))
                .unwrap_or_default();
            pods.extend(cidrs.into_iter().map(|cidr| CidrReading {
                cidr,
                object: format!("Node {name}"),
            }));
        }
    }
    let api_service_ip = optional(
        Api::<Service>::namespaced(client.clone(), "default")
            .get_opt("kubernetes")
            .await,
    )?
    .flatten()
    .and_then(|s| s.spec?.cluster_ip);
    Ok(NetworkReading {
        pods,
        pods_from_nodes,
        services,
        api_service_ip,
    })
}

/// `Ok(None)` for a refused or missing read (403, 404), the error for the rest.
fn optional<T>(result: Result<T, kube::Error>) -> Result<Option<T>, ReadError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(kube::Error::Api(e)) if matches!(e.code, 403 | 404) => Ok(None),
        Err(e) => Err(ReadError::from_kube("read the cluster's networks", &e)),
    }
}

/// Every `ServiceCIDR` (`networking.k8s.io/v1`, else `v1beta1` of 1.31 and 1.32).
async fn service_cidrs(client: &kube::Client) -> Result<Vec<CidrReading>, ReadError> {
    for version in ["v1", "v1beta1"] {
        let resource = ApiResource {
            group: "networking.k8s.io".into(),
            version: version.into(),
            api_version: format!("networking.k8s.io/{version}"),
            kind: "ServiceCIDR".into(),
            plural: "servicecidrs".into(),
        };
        let Some(list) = optional(
            Api::<DynamicObject>::all_with(client.clone(), &resource)
                .list(&ListParams::default())
                .await,
        )?
        else {
            continue;
        };
        let mut out = Vec::new();
        for item in list.items {
            let name = item.metadata.name.clone().unwrap_or_default();
            let cidrs = item.data.pointer("/spec/cidrs").and_then(|c| c.as_array());
            out.extend(cidrs.into_iter().flatten().filter_map(|c| {
                Some(CidrReading {
                    cidr: c.as_str()?.to_string(),
                    object: format!("ServiceCIDR {name}"),
                })
            }));
        }
        return Ok(out);
    }
    Ok(Vec::new())
}

/// `networking.podSubnet` and `networking.serviceSubnet` of a kubeadm
/// `ClusterConfiguration` (each a comma list on dual-stack clusters).
pub fn kubeadm_subnets(text: &str) -> (Vec<String>, Vec<String>) {
    let config: serde_json::Value = serde_saphyr::from_str(text).unwrap_or_default();
    let list = |key: &str| -> Vec<String> {
        config
            .pointer(&format!("/networking/{key}"))
            .and_then(|v| v.as_str())
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    (list("podSubnet"), list("serviceSubnet"))
}

/// The ranges as the fleet writes them: parsed, without host bits, adjacent and nested
/// ones merged (two nodes' `/24`s become one `/23`). Unparsable ranges are left out.
pub fn merged(readings: &[CidrReading]) -> Vec<String> {
    let nets: Vec<IpNet> = readings
        .iter()
        .filter_map(|r| r.cidr.parse::<IpNet>().ok())
        .map(|n| n.trunc())
        .collect();
    IpNet::aggregate(&nets).iter().map(ToString::to_string).collect()
}

/// The cluster's `network` entry, or a comment when nothing was told; each part not
/// told is a guess in the report.
pub(super) fn entry(r: &ClusterReading, report: &mut Report) -> Entry {
    let n = &r.network;
    let mut fields = Vec::new();
    if n.pods.is_empty() {
        report.add(
            Severity::Guess,
            Some(&r.context),
            None,
            "its pod network is not told: no kubeadm `ClusterConfiguration`, no node with a `podCIDR`".into(),
            "add `network.pods` (the cluster's pod range, e.g. the CNI's or `--cluster-cidr`) so `validate` can check overlaps",
        );
        fields.push(Entry::Comment(
            "pods: [...]   unknown: no kubeadm configuration and no node podCIDR".into(),
        ));
    } else {
        let note = if n.pods_from_nodes {
            let nodes: BTreeSet<&str> = n.pods.iter().map(|p| p.object.as_str()).collect();
            format!(
                "read from {} node(s)' podCIDRs; the cluster's range may be wider",
                nodes.len()
            )
        } else {
            format!("read from {}", n.pods[0].object)
        };
        fields.push(Entry::noted("pods", Value::Strs(merged(&n.pods)), note));
    }
    if n.services.is_empty() {
        let seen = n
            .api_service_ip
            .as_ref()
            .map(|ip| format!(" (the `kubernetes` Service is {ip}, so the range holds it)"))
            .unwrap_or_default();
        report.add(
            Severity::Guess,
            Some(&r.context),
            None,
            format!("its service network is not told: no ServiceCIDR, no kubeadm `ClusterConfiguration`{seen}"),
            "add `network.services` (the API server's `--service-cluster-ip-range`) so `validate` can check overlaps",
        );
        fields.push(Entry::Comment(format!("services: [...]   unknown{seen}")));
    } else {
        let objects: BTreeSet<&str> = n.services.iter().map(|p| p.object.as_str()).collect();
        fields.push(Entry::noted(
            "services",
            Value::Strs(merged(&n.services)),
            format!("read from {}", objects.into_iter().collect::<Vec<_>>().join(", ")),
        ));
    }
    if n.pods.is_empty() && n.services.is_empty() {
        return Entry::Comment(
            "network: {pods: [...], services: [...]}   unknown: the cluster does not tell them".into(),
        );
    }
    Entry::field("network", Value::Map(fields))
}

/// Report every overlap between two clusters' ranges, or within one: a problem when the
/// clusters are linked (or the same), as `validate` would refuse it; a guess otherwise
/// (allowed until they are linked). `linked` holds pairs of contexts.
pub(super) fn overlaps(read: &[&ClusterReading], linked: &BTreeSet<(String, String)>, report: &mut Report) {
    let ranges: Vec<(&str, &str, IpNet, &CidrReading)> = read
        .iter()
        .flat_map(|r| {
            let pods = r.network.pods.iter().map(|p| ("pod", p));
            let services = r.network.services.iter().map(|s| ("service", s));
            pods.chain(services)
                .filter_map(|(kind, c)| Some((r.context.as_str(), kind, c.cidr.parse::<IpNet>().ok()?, c)))
        })
        .collect();
    let mut seen = BTreeSet::new();
    for (i, (ctx_a, kind_a, net_a, a)) in ranges.iter().enumerate() {
        for (ctx_b, kind_b, net_b, b) in &ranges[i + 1..] {
            let overlap = net_a.contains(&net_b.network()) || net_b.contains(&net_a.network());
            // Two nodes' slices of one pod range never overlap; the same object twice is
            // one reading.
            if !overlap || (ctx_a == ctx_b && (a.object == b.object || kind_a == kind_b)) {
                continue;
            }
            let same = ctx_a == ctx_b;
            let pair = ((*ctx_a).to_string(), (*ctx_b).to_string());
            let is_linked =
                same || linked.contains(&pair) || linked.contains(&(pair.1.clone(), pair.0.clone()));
            if !seen.insert((pair.clone(), a.object.clone(), b.object.clone())) {
                continue;
            }
            let (severity, hint) = if is_linked {
                (
                    Severity::Problem,
                    "linked clusters need disjoint pod and service ranges (`validate`: cidr-overlap); renumber one, or import them as separate fleets",
                )
            } else {
                (
                    Severity::Guess,
                    "these clusters are not linked, so the fleet is valid; a link between them would need disjoint ranges",
                )
            };
            report.add(
                severity,
                Some(ctx_b),
                Some(b.object.clone()),
                format!(
                    "its {kind_b} CIDR `{}` overlaps the {kind_a} CIDR `{}` of `{ctx_a}` ({})",
                    b.cidr, a.cidr, a.object
                ),
                hint,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(cidr: &str, object: &str) -> CidrReading {
        CidrReading {
            cidr: cidr.into(),
            object: object.into(),
        }
    }

    #[test]
    fn kubeadm_configuration_names_both_ranges() {
        let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16,fd00:10:244::/56\n  serviceSubnet: 10.96.0.0/16\n";
        assert_eq!(
            kubeadm_subnets(text),
            (
                vec!["10.244.0.0/16".to_string(), "fd00:10:244::/56".to_string()],
                vec!["10.96.0.0/16".to_string()]
            )
        );
        assert_eq!(kubeadm_subnets("kind: ClusterConfiguration\n"), (vec![], vec![]));
        assert_eq!(kubeadm_subnets(": not yaml ["), (vec![], vec![]));
    }

    #[test]
    fn node_slices_are_merged() {
        let nodes = [
            reading("10.200.0.0/24", "Node a"),
            reading("10.200.1.0/24", "Node b"),
            reading("10.200.3.0/24", "Node c"),
            reading("nonsense", "Node d"),
        ];
        assert_eq!(merged(&nodes), ["10.200.0.0/23", "10.200.3.0/24"]);
    }
}
