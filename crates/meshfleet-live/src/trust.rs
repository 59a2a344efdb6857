//! The trust anchors a cluster really uses, and whether they are the fleet's.
//!
//! Linkerd keeps the anchor bundle in two places (reference section 6.1), and they can
//! drift apart (`identity.externalCA`, a hand edit, a half-finished upgrade):
//!
//! - ConfigMap `linkerd-identity-trust-roots`, key `ca-bundle.crt`: what the proxies use.
//!   Control-plane proxies read it directly; the injector copies it into every injected
//!   workload. This is the bundle that decides whether mTLS across clusters works.
//! - ConfigMap `linkerd-config`, key `values` (the chart values as YAML), field
//!   `identityTrustAnchorsPEM`: what `linkerd check`, `linkerd multicluster check` and
//!   `link-gen` read. A stale copy here makes those tools compare the wrong anchors.
//!
//! So both are read and judged separately. Bundles are compared as SETS of SHA-256
//! fingerprints: during a rotation the fleet's bundle holds the old and the new anchor,
//! and the order of the certificates does not matter to a proxy.
//!
//! Clusters are read with [`crate::cluster::for_each_cluster`]: one client per
//! fleet cluster, all at once, an unreachable cluster reported beside the others.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use crate::cluster::{Kubeconfigs, ReadError, for_each_cluster};
use meshfleet_identity::CertInfo;
pub use meshfleet_identity::pem_bundle;
use meshfleet_plan::FleetPlan;

/// The ConfigMap whose `values` hold the chart values, `identityTrustAnchorsPEM` among them.
pub const LINKERD_CONFIG: &str = "linkerd-config";
/// The data key of [`LINKERD_CONFIG`] that holds the values YAML.
pub const LINKERD_CONFIG_KEY: &str = "values";
/// The values field of the anchor bundle.
pub const ANCHORS_FIELD: &str = "identityTrustAnchorsPEM";
/// The ConfigMap the proxies read their trust anchors from.
pub const TRUST_ROOTS: &str = "linkerd-identity-trust-roots";
/// The data key of [`TRUST_ROOTS`].
pub const TRUST_ROOTS_KEY: &str = "ca-bundle.crt";

/// Where an anchor bundle was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AnchorSource {
    /// `linkerd-identity-trust-roots` / `ca-bundle.crt` (what proxies use).
    TrustRoots,
    /// `linkerd-config` / `values` / `identityTrustAnchorsPEM` (what Linkerd's CLI reads).
    LinkerdConfig,
}

impl AnchorSource {
    /// Both, in the order reports show them: the one in use first.
    pub const ALL: [Self; 2] = [Self::TrustRoots, Self::LinkerdConfig];

    /// Stable short name (`-o json`, tables).
    pub fn name(self) -> &'static str {
        match self {
            Self::TrustRoots => "trust-roots",
            Self::LinkerdConfig => "linkerd-config",
        }
    }

    /// The ConfigMap.
    pub fn config_map(self) -> &'static str {
        match self {
            Self::TrustRoots => TRUST_ROOTS,
            Self::LinkerdConfig => LINKERD_CONFIG,
        }
    }

    /// Where in the ConfigMap the bundle is.
    pub fn location(self) -> String {
        match self {
            Self::TrustRoots => format!("`{TRUST_ROOTS_KEY}`"),
            Self::LinkerdConfig => format!("`{ANCHORS_FIELD}` in `{LINKERD_CONFIG_KEY}`"),
        }
    }
}

/// What is missing when a source holds no bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absence {
    /// The ConfigMap does not exist.
    ConfigMap,
    /// The ConfigMap has no such data key (or it is empty).
    Key,
    /// `values` has no `identityTrustAnchorsPEM`, or it is empty (as with
    /// `identity.externalCA: true`).
    Field,
}

/// One source's anchor bundle, as read.
#[derive(Debug, Clone)]
pub enum SourceBundle {
    /// Certificates, in the order the ConfigMap holds them.
    Found(Vec<CertInfo>),
    /// Nothing there.
    Missing(Absence),
    /// Something there that is not a PEM bundle of certificates.
    Invalid(String),
}

impl SourceBundle {
    /// The certificates, when found.
    pub fn certs(&self) -> Option<&[CertInfo]> {
        match self {
            Self::Found(certs) => Some(certs),
            _ => None,
        }
    }

    /// Why there is no bundle, in words, naming the object in `namespace`.
    pub fn problem(&self, source: AnchorSource, namespace: &str) -> Option<String> {
        let object = format!("ConfigMap `{namespace}/{}`", source.config_map());
        match self {
            Self::Found(_) => None,
            Self::Missing(Absence::ConfigMap) => Some(format!("{object} not found")),
            Self::Missing(Absence::Key) => Some(format!(
                "{object} has no data key `{}`",
                match source {
                    AnchorSource::TrustRoots => TRUST_ROOTS_KEY,
                    AnchorSource::LinkerdConfig => LINKERD_CONFIG_KEY,
                }
            )),
            Self::Missing(Absence::Field) => Some(format!(
                "{object} has no `{ANCHORS_FIELD}` in `{LINKERD_CONFIG_KEY}` (empty, as with `identity.externalCA`)"
            )),
            Self::Invalid(reason) => Some(format!("{object}, {}: {reason}", source.location())),
        }
    }
}

/// Both anchor bundles of one cluster.
#[derive(Debug, Clone)]
pub struct ClusterAnchors {
    /// The control-plane namespace they were read from.
    pub namespace: String,
    /// From `linkerd-identity-trust-roots`.
    pub trust_roots: SourceBundle,
    /// From `linkerd-config`.
    pub linkerd_config: SourceBundle,
}

impl ClusterAnchors {
    /// One source's bundle.
    pub fn source(&self, source: AnchorSource) -> &SourceBundle {
        match source {
            AnchorSource::TrustRoots => &self.trust_roots,
            AnchorSource::LinkerdConfig => &self.linkerd_config,
        }
    }

    /// The bundle proxies use: trust-roots, else (a broken install) linkerd-config.
    pub fn in_use(&self) -> Option<(AnchorSource, &[CertInfo])> {
        AnchorSource::ALL
            .into_iter()
            .find_map(|s| self.source(s).certs().map(|c| (s, c)))
    }

    /// Whether both sources hold the same set of anchors; `None` unless both were found.
    pub fn sources_agree(&self) -> Option<bool> {
        Some(same_anchors(
            self.trust_roots.certs()?,
            self.linkerd_config.certs()?,
        ))
    }
}

/// The SHA-256 fingerprints of a bundle, as a set.
pub fn fingerprints(certs: &[CertInfo]) -> BTreeSet<&str> {
    certs.iter().map(|c| c.sha256.as_str()).collect()
}

/// Whether two bundles hold the same anchors, in any order.
pub fn same_anchors(a: &[CertInfo], b: &[CertInfo]) -> bool {
    fingerprints(a) == fingerprints(b)
}

/// The only field meshfleet reads from `linkerd-config`'s values.
#[derive(serde::Deserialize)]
struct ControlPlaneValues {
    #[serde(rename = "identityTrustAnchorsPEM", default)]
    identity_trust_anchors_pem: Option<String>,
}

fn parse_bundle(text: &str) -> SourceBundle {
    match meshfleet_identity::parse_pem_bundle(text) {
        Ok(certs) => SourceBundle::Found(certs),
        Err(e) => SourceBundle::Invalid(meshfleet_fleet::diagnostic::error_chain(&e)),
    }
}

/// The two bundles, from the two ConfigMaps as read (`None` = not found).
pub fn anchors_from_config_maps(
    namespace: &str,
    linkerd_config: Option<&ConfigMap>,
    trust_roots: Option<&ConfigMap>,
) -> ClusterAnchors {
    let data = |cm: &ConfigMap, key: &str| {
        cm.data
            .as_ref()
            .and_then(|d| d.get(key))
            .filter(|v| !v.trim().is_empty())
            .cloned()
    };
    let trust_roots = match trust_roots {
        None => SourceBundle::Missing(Absence::ConfigMap),
        Some(cm) => {
            data(cm, TRUST_ROOTS_KEY).map_or(SourceBundle::Missing(Absence::Key), |t| parse_bundle(&t))
        }
    };
    let linkerd_config = match linkerd_config {
        None => SourceBundle::Missing(Absence::ConfigMap),
        Some(cm) => match data(cm, LINKERD_CONFIG_KEY) {
            None => SourceBundle::Missing(Absence::Key),
            Some(values) => match serde_saphyr::from_str::<ControlPlaneValues>(&values) {
                Err(e) => SourceBundle::Invalid(format!(
                    "`{LINKERD_CONFIG_KEY}` is not valid: {}",
                    meshfleet_fleet::sensitive::YamlError::from_saphyr(&e)
                )),
                Ok(v) => v
                    .identity_trust_anchors_pem
                    .filter(|p| !p.trim().is_empty())
                    .map_or(SourceBundle::Missing(Absence::Field), |p| parse_bundle(&p)),
            },
        },
    };
    ClusterAnchors {
        namespace: namespace.to_string(),
        trust_roots,
        linkerd_config,
    }
}

/// Read both bundles from a cluster's control-plane namespace, within `timeout`.
pub async fn read_anchors(
    client: &kube::Client,
    namespace: &str,
    timeout: Duration,
) -> Result<ClusterAnchors, ReadError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let read = async {
        let (config, roots) = tokio::join!(api.get_opt(LINKERD_CONFIG), api.get_opt(TRUST_ROOTS));
        let config = config.map_err(|e| {
            ReadError::from_kube(&format!("read ConfigMap `{namespace}/{LINKERD_CONFIG}`"), &e)
        })?;
        let roots = roots
            .map_err(|e| ReadError::from_kube(&format!("read ConfigMap `{namespace}/{TRUST_ROOTS}`"), &e))?;
        Ok(anchors_from_config_maps(
            namespace,
            config.as_ref(),
            roots.as_ref(),
        ))
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ReadError::TimedOut(timeout))?
}

/// `trust extract`: both bundles of the cluster behind kubeconfig context `context`.
pub async fn extract(
    kubeconfigs: &Kubeconfigs,
    context: &str,
    namespace: &str,
) -> Result<ClusterAnchors, ReadError> {
    let client = kubeconfigs.client(context, context).await?;
    // Connecting and reading each have the client's timeout.
    read_anchors(&client, namespace, kubeconfigs.timeout() * 2).await
}

/// How one source compares with the fleet's bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Same set of anchors as the fleet.
    Match,
    /// The bundle of the previous step of the anchor rotation in progress: expected
    /// until the GitOps engine applies the fleet's (`trust rotate status` gates on it).
    Pending,
    /// Other anchors than the fleet's.
    Mismatch,
    /// No bundle in this source.
    Missing,
    /// A bundle that does not parse.
    Invalid,
    /// The cluster could not be read.
    Unreachable,
}

impl Verdict {
    /// Stable lowercase name (`-o json`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Match => "match",
            Self::Pending => "rotation-pending",
            Self::Mismatch => "mismatch",
            Self::Missing => "missing",
            Self::Invalid => "invalid",
            Self::Unreachable => "unreachable",
        }
    }

    /// Whether this verdict fails `trust verify`.
    pub fn is_problem(self) -> bool {
        !matches!(self, Self::Match | Self::Pending)
    }
}

/// Compare one source with the fleet's bundle.
pub fn judge(bundle: &SourceBundle, fleet: &[CertInfo]) -> Verdict {
    match bundle {
        SourceBundle::Found(certs) if same_anchors(certs, fleet) => Verdict::Match,
        SourceBundle::Found(_) => Verdict::Mismatch,
        SourceBundle::Missing(_) => Verdict::Missing,
        SourceBundle::Invalid(_) => Verdict::Invalid,
    }
}

/// Compare one source with the fleet's bundle during an anchor rotation: the bundle the
/// previous step left (only `from` in `distribute`, both in `retire`) is [`Verdict::Pending`].
/// In `issuers` and `recertify` there is none: a cluster without both anchors would
/// reject the certificates of the clusters whose issuer moved.
pub fn judge_in_rotation(
    bundle: &SourceBundle,
    fleet: &[CertInfo],
    rotation: Option<&meshfleet_plan::anchor_rotation::AnchorRotation>,
) -> Verdict {
    use meshfleet_fleet::model::AnchorRotationPhase as Phase;
    let verdict = judge(bundle, fleet);
    let (Verdict::Mismatch, Some(r), Some(certs)) = (verdict, rotation, bundle.certs()) else {
        return verdict;
    };
    let previous: BTreeSet<&str> = match r.phase {
        Phase::Distribute => [r.from.as_str()].into(),
        Phase::Retire => [r.from.as_str(), r.to.as_str()].into(),
        Phase::Issuers | Phase::Recertify => return verdict,
    };
    if fingerprints(certs) == previous {
        Verdict::Pending
    } else {
        verdict
    }
}

/// One fleet cluster in `trust verify`.
#[derive(Debug)]
pub struct ClusterTrust {
    /// Fleet cluster name.
    pub cluster: String,
    /// kubeconfig context.
    pub context: String,
    /// Both bundles, or why the cluster could not be read.
    pub anchors: Result<ClusterAnchors, ReadError>,
    /// The fleet's anchor rotation in progress, if any.
    pub rotation: Option<meshfleet_plan::anchor_rotation::AnchorRotation>,
}

impl ClusterTrust {
    /// The verdict of one source (unreachable when the cluster was not read).
    pub fn verdict(&self, source: AnchorSource, fleet: &[CertInfo]) -> Verdict {
        self.anchors.as_ref().map_or(Verdict::Unreachable, |a| {
            judge_in_rotation(a.source(source), fleet, self.rotation.as_ref())
        })
    }

    /// The worst verdict of both sources.
    pub fn overall(&self, fleet: &[CertInfo]) -> Verdict {
        AnchorSource::ALL
            .into_iter()
            .map(|s| self.verdict(s, fleet))
            .max()
            .unwrap_or(Verdict::Match)
    }
}

/// `trust verify`: every cluster's bundles against the fleet's.
#[derive(Debug)]
pub struct TrustReport {
    /// The fleet's anchor bundle.
    pub fleet: Vec<CertInfo>,
    /// Per cluster, in fleet order.
    pub clusters: Vec<ClusterTrust>,
}

impl TrustReport {
    /// Whether every source of every cluster matches.
    pub fn all_match(&self) -> bool {
        self.clusters.iter().all(|c| !c.overall(&self.fleet).is_problem())
    }

    /// Whether no cluster at all could be read.
    pub fn none_reachable(&self) -> bool {
        !self.clusters.is_empty() && self.clusters.iter().all(|c| c.anchors.is_err())
    }
}

/// Read every fleet cluster's bundles, all at once, and compare them with the fleet's.
pub async fn verify_fleet(kubeconfigs: &Kubeconfigs, plan: &FleetPlan) -> TrustReport {
    let fleet = plan.identity.anchors.clone();
    let namespace = plan.linkerd.namespace.clone();
    let timeout = kubeconfigs.timeout() * 2;
    let results = for_each_cluster(kubeconfigs, &plan.clusters, move |client, _cluster| {
        let namespace = namespace.clone();
        async move { read_anchors(&client, &namespace, timeout).await }
    })
    .await;
    let clusters = plan
        .clusters
        .iter()
        .zip(results)
        .map(|(cluster, anchors)| ClusterTrust {
            cluster: cluster.name.clone(),
            context: cluster.context.clone(),
            anchors,
            rotation: plan.identity.rotation.clone(),
        })
        .collect();
    TrustReport { fleet, clusters }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn config_map(key: &str, value: &str) -> ConfigMap {
        ConfigMap {
            data: Some(BTreeMap::from([(key.to_string(), value.to_string())])),
            ..ConfigMap::default()
        }
    }

    fn anchor() -> String {
        meshfleet_identity::generate_anchor(time::OffsetDateTime::now_utc())
            .unwrap()
            .cert_pem
    }

    fn values(pem: &str) -> String {
        let mut text = format!("controllerImage: cr.l5d.io/linkerd/controller\n{ANCHORS_FIELD}: |\n");
        for line in pem.lines() {
            text.push_str("  ");
            text.push_str(line);
            text.push('\n');
        }
        text.push_str("identityTrustDomain: cluster.local\n");
        text
    }

    #[test]
    fn rotation_bundles_match_in_any_order() {
        let (old, new) = (anchor(), anchor());
        let fleet = meshfleet_identity::parse_pem_bundle(&format!("{old}{new}")).unwrap();
        let cluster = anchors_from_config_maps(
            "linkerd",
            Some(&config_map(LINKERD_CONFIG_KEY, &values(&format!("{new}{old}")))),
            Some(&config_map(TRUST_ROOTS_KEY, &format!("{new}\n\n{old}\n"))),
        );
        assert_eq!(judge(&cluster.trust_roots, &fleet), Verdict::Match);
        assert_eq!(judge(&cluster.linkerd_config, &fleet), Verdict::Match);
        assert_eq!(cluster.sources_agree(), Some(true));
        let only_new = meshfleet_identity::parse_pem_bundle(&new).unwrap();
        assert_eq!(judge(&cluster.trust_roots, &only_new), Verdict::Mismatch);
    }

    #[test]
    fn missing_and_invalid_sources_are_told_apart() {
        let pem = anchor();
        let cluster = anchors_from_config_maps(
            "linkerd",
            Some(&config_map(
                LINKERD_CONFIG_KEY,
                "identityTrustDomain: cluster.local\n",
            )),
            Some(&config_map("other", &pem)),
        );
        assert!(matches!(
            cluster.linkerd_config,
            SourceBundle::Missing(Absence::Field)
        ));
        assert!(matches!(cluster.trust_roots, SourceBundle::Missing(Absence::Key)));
        assert!(cluster.in_use().is_none());
        let broken =
            anchors_from_config_maps("linkerd", None, Some(&config_map(TRUST_ROOTS_KEY, "not a pem")));
        assert!(matches!(
            broken.linkerd_config,
            SourceBundle::Missing(Absence::ConfigMap)
        ));
        assert!(matches!(broken.trust_roots, SourceBundle::Invalid(_)));
        assert!(
            broken
                .linkerd_config
                .problem(AnchorSource::LinkerdConfig, "linkerd")
                .unwrap()
                .contains("`linkerd/linkerd-config` not found")
        );
    }

    #[test]
    fn in_use_prefers_trust_roots_and_pem_round_trips() {
        let (a, b) = (anchor(), anchor());
        let cluster = anchors_from_config_maps(
            "linkerd",
            Some(&config_map(LINKERD_CONFIG_KEY, &values(&a))),
            Some(&config_map(TRUST_ROOTS_KEY, &b)),
        );
        let (source, certs) = cluster.in_use().unwrap();
        assert_eq!(source, AnchorSource::TrustRoots);
        assert_eq!(cluster.sources_agree(), Some(false));
        let again = meshfleet_identity::parse_pem_bundle(&pem_bundle(certs)).unwrap();
        assert_eq!(again[0].sha256, certs[0].sha256);
        assert_eq!(pem_bundle(certs).trim(), b.trim());
    }
}
