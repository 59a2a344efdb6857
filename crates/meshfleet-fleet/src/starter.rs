//! The starter fleet of `meshfleet init`: a commented fleet file for a new mesh, built
//! from a few choices (engine, clusters, topology), which `validate` accepts as written
//! once its trust anchor exists (`init` creates it as `certs init` does).
//!
//! Every value a user must change (addresses, the repository, Vault) is written as a
//! working example with a `change:` note, so the file validates and every guess is
//! visible; everything with a default is left out, with a comment that says the default.

use crate::defaults;
use crate::draft::{Entry, FleetDraft, Value, str};
use crate::model::Engine;
use crate::version::NEWEST_KNOWN;

/// Where the starter's trust anchor is, relative to the fleet file.
pub const TRUST_ANCHOR: &str = "certs/trust-anchor.crt";

/// How the starter's clusters are linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StarterTopology {
    /// Two clusters, linked both ways, written as two explicit links.
    Pair,
    /// `topology.hubAndSpoke` with this hub.
    Hub(String),
    /// `topology.fullMesh`.
    Mesh,
}

/// One cluster of the starter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StarterCluster {
    /// Fleet name.
    pub name: String,
    /// kubeconfig context, when it is not the name.
    pub context: Option<String>,
}

/// The choices `init` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StarterChoices {
    /// `metadata.name`.
    pub name: String,
    /// Flux or Argo CD.
    pub engine: Engine,
    /// At least one cluster.
    pub clusters: Vec<StarterCluster>,
    /// How they are linked.
    pub topology: StarterTopology,
}

/// Why the choices do not make a fleet (a bad flag).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StarterError {
    /// `pair` needs exactly two clusters.
    #[error("topology `pair` links exactly two clusters, and {0} were given")]
    PairNeedsTwo(usize),
    /// The hub is not among the clusters.
    #[error("the hub `{0}` is not one of the clusters")]
    UnknownHub(String),
    /// A name is not a DNS-1123 label, or is given twice.
    #[error(
        "cluster name `{0}` is not a DNS-1123 label (lowercase letters, digits and `-`, at most 63), or is given twice"
    )]
    BadName(String),
}

impl crate::diagnostic::Hint for StarterError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            Self::PairNeedsTwo(_) => {
                "pass two `--cluster NAME[=CONTEXT]`, or `--topology mesh` or `--topology hub:NAME`".into()
            }
            Self::UnknownHub(hub) => format!("add `--cluster {hub}`, or name one of the clusters with `--topology hub:NAME`"),
            Self::BadName(_) => "write names such as `east` or `in-cluster-local`, each once; the context may be anything (`--cluster east=kind-east`)".into(),
        })
    }
}

impl StarterChoices {
    /// The clusters of the starter when none are named.
    pub fn default_clusters() -> Vec<StarterCluster> {
        ["east", "west"]
            .into_iter()
            .map(|n| StarterCluster {
                name: n.into(),
                context: None,
            })
            .collect()
    }

    fn check(&self) -> Result<(), StarterError> {
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.clusters {
            if crate::names::dns1123_label(&c.name).is_err() || !seen.insert(c.name.as_str()) {
                return Err(StarterError::BadName(c.name.clone()));
            }
        }
        match &self.topology {
            StarterTopology::Pair if self.clusters.len() != 2 => {
                Err(StarterError::PairNeedsTwo(self.clusters.len()))
            }
            StarterTopology::Hub(hub) if !seen.contains(hub.as_str()) => {
                Err(StarterError::UnknownHub(hub.clone()))
            }
            _ => Ok(()),
        }
    }

    /// Whether cluster `name` is a link target (and so needs a gateway and `apiServer`).
    fn is_target(&self, name: &str) -> bool {
        match &self.topology {
            StarterTopology::Hub(hub) => hub == name,
            StarterTopology::Pair | StarterTopology::Mesh => self.clusters.len() > 1,
        }
    }
}

/// The starter fleet for `choices`.
pub fn starter(choices: &StarterChoices) -> Result<FleetDraft, StarterError> {
    choices.check()?;
    let engine = match choices.engine {
        Engine::Flux => "flux",
        Engine::Argocd => "argocd",
    };
    let linkerd = Value::Map(vec![
        Entry::noted(
            "version",
            str(NEWEST_KNOWN.to_string()),
            "Linkerd edge Helm chart version (YYYY.M.N); declarative links need 2025.4.4 or newer",
        ),
        Entry::noted(
            "gatewayAPI",
            str("v1.2.1"),
            "Gateway API CRDs installed before Linkerd, or `external`",
        ),
        Entry::Comment(format!(
            "namespace: {}, trustDomain and clusterDomain: {}, viz: true, clusterNetworks: Linkerd's (defaults)",
            defaults::LINKERD_NAMESPACE,
            defaults::CLUSTER_DOMAIN
        )),
    ]);
    let gitops = Value::Map(vec![
        Entry::field("engine", str(engine)),
        Entry::noted("installMethod", str("helm"), "helm | jobs"),
        Entry::field(
            "repository",
            Value::Map(vec![
                Entry::noted(
                    "url",
                    str("https://github.com/example/fleet.git"),
                    "change: the repository the rendered tree is committed to",
                ),
                Entry::field("branch", str(defaults::BRANCH)),
                Entry::noted(
                    "path",
                    str(defaults::REPOSITORY_PATH),
                    "the folder `meshfleet render --out` writes",
                ),
            ]),
        ),
    ]);
    let identity = Value::Map(vec![
        Entry::noted(
            "trustAnchor",
            str(TRUST_ANCHOR),
            "public PEM, made by `meshfleet init` (or `meshfleet certs init`); commit it",
        ),
        Entry::noted("issuer", str("cert-manager"), "cert-manager | vault"),
    ]);
    let secrets = Value::Map(vec![Entry::field(
        "vault",
        Value::Map(vec![
            Entry::noted(
                "server",
                str("https://vault.example.com:8200"),
                "change: the Vault External Secrets and meshfleet use",
            ),
            Entry::noted("mount", str("secret"), "change: a KV v2 mount"),
            Entry::field("path", str("linkerd-multicluster")),
        ]),
    )]);
    let clusters = choices.clusters.iter().map(|c| cluster(choices, c)).collect();
    let mut spec = vec![
        Entry::field("linkerd", linkerd),
        Entry::field("gitops", gitops),
        Entry::field("identity", identity),
        Entry::field("secrets", secrets),
        Entry::field("clusters", Value::Maps(clusters)),
    ];
    match &choices.topology {
        StarterTopology::Pair => {
            let (a, b) = (&choices.clusters[0].name, &choices.clusters[1].name);
            let link =
                |s: &str, t: &str| vec![Entry::field("source", str(s)), Entry::field("target", str(t))];
            spec.push(Entry::noted(
                "links",
                Value::Maps(vec![link(a, b), link(b, a)]),
                "a link mirrors services FROM target INTO source; mode: gateway (default) | remote-discovery",
            ));
        }
        StarterTopology::Hub(hub) => spec.push(Entry::noted(
            "topology",
            Value::Map(vec![Entry::field(
                "hubAndSpoke",
                Value::Flow(vec![Entry::field("hub", str(hub))]),
            )]),
            "every other cluster links to the hub and mirrors its services",
        )),
        StarterTopology::Mesh => spec.push(Entry::noted(
            "topology",
            Value::Map(vec![Entry::field("fullMesh", Value::Bool(true))]),
            "every pair of clusters, both ways",
        )),
    }
    Ok(FleetDraft {
        header: vec![
            "Written by `meshfleet init`. Lines marked `change:` hold examples to replace.".into(),
            "Next: `meshfleet validate`, then `meshfleet render --out gitops` and commit the tree;".into(),
            "`meshfleet schema` prints the JSON Schema for editors.".into(),
        ],
        name: choices.name.clone(),
        spec,
    })
}

fn cluster(choices: &StarterChoices, c: &StarterCluster) -> Vec<Entry> {
    let mut entries = vec![Entry::field("name", str(&c.name))];
    if let Some(context) = &c.context {
        entries.push(Entry::noted("context", str(context), "kubeconfig context [name]"));
    }
    entries.push(Entry::noted(
        "vaultAuthMountPath",
        str(format!("kubernetes-{}", c.name)),
        "Vault's Kubernetes auth mount for this cluster (one per cluster: a mount trusts one API server)",
    ));
    if choices.is_target(&c.name) {
        let host = format!("{}.example.com", c.name);
        entries.push(Entry::noted(
            "apiServer",
            str(format!("https://{host}:6443")),
            "change: the API server address OTHER clusters dial",
        ));
        entries.push(Entry::field(
            "gateway",
            Value::Map(vec![
                Entry::noted("serviceType", str("LoadBalancer"), "LoadBalancer | NodePort | ClusterIP"),
                Entry::noted(
                    "addresses",
                    Value::Strs(vec![host]),
                    "change: IPs or DNS names other clusters dial",
                ),
                Entry::Comment(format!(
                    "port: {}, probe: {{path: {}, port: {}, period: {}}} (defaults); nodePort: 30000-32767 with NodePort",
                    defaults::GATEWAY_PORT,
                    defaults::PROBE_PATH,
                    defaults::PROBE_PORT,
                    defaults::PROBE_PERIOD
                )),
            ]),
        ));
    }
    entries.push(Entry::Comment(
        "network: {pods: [10.1.0.0/16], services: [10.101.0.0/16]}   # checked for overlaps when written"
            .into(),
    ));
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choices(topology: StarterTopology, names: &[&str]) -> StarterChoices {
        StarterChoices {
            name: "demo".into(),
            engine: Engine::Argocd,
            clusters: names
                .iter()
                .map(|n| StarterCluster {
                    name: (*n).into(),
                    context: Some(format!("kind-{n}")),
                })
                .collect(),
            topology,
        }
    }

    #[test]
    fn every_topology_gives_a_fleet_that_parses() {
        for (topology, names) in [
            (StarterTopology::Pair, vec!["a", "b"]),
            (StarterTopology::Hub("hub".into()), vec!["hub", "x", "y"]),
            (StarterTopology::Mesh, vec!["a", "b", "c"]),
            (StarterTopology::Mesh, vec!["solo"]),
        ] {
            let text = starter(&choices(topology, &names)).unwrap().text().unwrap();
            let fleet = crate::parse(&text).unwrap();
            assert_eq!(fleet.spec.clusters.len(), names.len());
        }
    }

    #[test]
    fn only_link_targets_get_a_gateway() {
        let text = starter(&choices(StarterTopology::Hub("hub".into()), &["hub", "spoke"]))
            .unwrap()
            .text()
            .unwrap();
        let fleet = crate::parse(&text).unwrap();
        let gateways: Vec<bool> = fleet.spec.clusters.iter().map(|c| c.gateway.is_some()).collect();
        assert_eq!(gateways, [true, false]);
    }

    #[test]
    fn choices_that_make_no_fleet_are_refused() {
        assert_eq!(
            starter(&choices(StarterTopology::Pair, &["a"])).unwrap_err(),
            StarterError::PairNeedsTwo(1)
        );
        assert_eq!(
            starter(&choices(StarterTopology::Hub("z".into()), &["a", "b"])).unwrap_err(),
            StarterError::UnknownHub("z".into())
        );
        assert_eq!(
            starter(&choices(StarterTopology::Mesh, &["a", "a"])).unwrap_err(),
            StarterError::BadName("a".into())
        );
        assert_eq!(
            starter(&choices(StarterTopology::Mesh, &["Big"])).unwrap_err(),
            StarterError::BadName("Big".into())
        );
    }
}
