//! `meshfleet check`: the live clusters against the plan (PRODUCT.md section 7).
//!
//! Every expectation comes from what meshfleet renders, never from a second copy of
//! the rules: the Link a cluster should hold is [`meshfleet_render::stages::link_object`],
//! the credentials Secrets are what the ExternalSecret templates of
//! [`meshfleet_render::stages::credentials`] make, names and ports come from the plan. So a
//! change to rendering changes what `check` expects, and the two cannot drift apart.
//!
//! The work has three phases, so that N clusters take about the time of the slowest one
//! rather than the sum:
//!
//! 1. [`snapshot`]: every cluster is read at once, each under its own deadline; a
//!    cluster that does not answer becomes an "unreachable" snapshot, and the others go on.
//! 2. [`access`]: every link's credentials are tried against their target at once, with
//!    the token and CA of the link's kubeconfig (the way the service mirror will use them).
//! 3. The checks themselves ([`control_plane`], [`links`], [`services`]) are pure
//!    functions of the plan and the snapshots: no I/O, unit-tested without a cluster.
//!
//! The library never prints. The result is a [`CheckReport`] of [`CheckResult`]s with a
//! stable [`CheckId`], a status, a message, details, a hint and, when the fix belongs in
//! git, the rendered file to change (relative to the root of the rendered tree).
//!
//! # Check ids
//!
//! Stable: scripts match on them (`-o json`), and they never change meaning.
//!
//! | id | category | what it verifies |
//! | --- | --- | --- |
//! | `cluster-reachable` | kubernetes-api | the API server of the cluster's context answers; its version |
//! | `sops-decryption` | gitops | with `spec.secrets.sops` under Flux: the Kustomizations that decrypt (`identity`, `links`) report no decryption error in their Ready condition (a missing or wrong `flux-system/sops-age` key) |
//! | `linkerd-installed` | linkerd-control-plane | `linkerd-config` exists, its `values` parse, version and trust/cluster domain are the fleet's |
//! | `trust-anchors-match` | linkerd-control-plane | the anchors in `linkerd-config` (`identityTrustAnchorsPEM`) AND in `linkerd-identity-trust-roots` (`ca-bundle.crt`) are the fleet's, as sets of SHA-256 fingerprints |
//! | `issuer-valid` | linkerd-control-plane | `linkerd-identity-issuer` is a `kubernetes.io/tls` Secret whose ECDSA P-256 CA certificate is valid now, chains to the fleet's anchor and is not close to its end |
//! | `multicluster-namespace` | linkerd-multicluster | the multicluster namespace exists, labelled `linkerd.io/extension=multicluster` |
//! | `unknown-link` | linkerd-multicluster | no Link exists that the fleet does not declare |
//! | `link-present` | link | the Link of an expected link exists |
//! | `link-drift` | link | the Link equals the rendered one, field by field |
//! | `credentials-secret` | link | both `cluster-credentials-<target>` Secrets exist with the right type, key, label and annotations |
//! | `credentials-kubeconfig` | link | the kubeconfig parses: one cluster/user/context, inline CA, token user, the fleet's non-loopback `apiServer` |
//! | `credentials-access` | link | the target accepts the token and CA, and allows get/list/watch on services in all namespaces |
//! | `credentials-loaded` | link | `controller-<link>` and `linkerd-destination` pods started after their credentials Secrets last changed (managed-fields time); warning otherwise: they run with the old credentials |
//! | `credentials-rotation` | link | only during a credentials rotation: a warning naming its phase |
//! | `controller-available` | link | Deployment `controller-<target>` has an available replica |
//! | `legacy-controller` | link (or linkerd-multicluster) | no Deployment of the deprecated `linkerd multicluster link` (`component=service-mirror`) serves the link |
//! | `gateway-service` | link | the target's `linkerd-gateway` Service has the fleet's type, ports, NodePorts and annotations |
//! | `probe-endpoints` | link | `probe-<target>` exists on the Link's probe port and its Endpoints are populated |
//! | `mirror-present` | link | every service the target exports to this link has its mirror `<svc>-<target>` |
//! | `export-annotation` | services | no Service tries to export with an annotation (a no-op in Linkerd) |
//! | `unknown-mirror` | services | every mirror Service belongs to a link of the fleet and to a service still exported |

pub(crate) mod access;
mod control_plane;
mod credentials;
mod decryption;
mod files;
mod gateway;
mod links;
mod services;
mod snapshot;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::cluster::Kubeconfigs;
use meshfleet_plan::{ClusterPlan, FleetPlan};

pub use snapshot::ReadFailure;

/// Errors that stop `check` before any cluster is read.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// `--cluster` named a cluster the fleet does not have.
    #[error("the fleet has no cluster `{name}`")]
    UnknownCluster {
        /// The name given.
        name: String,
        /// The fleet's clusters.
        known: Vec<String>,
    },
}

impl meshfleet_fleet::diagnostic::Hint for CheckError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::UnknownCluster { .. } => Some("pass a cluster name of the fleet to `--cluster`".into()),
        }
    }
}

/// What to check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Only these clusters (all when empty). Their link targets are read too, for the
    /// checks that need both ends of a link, but reported only when selected.
    pub clusters: Vec<String>,
    /// Now, for certificate validity.
    pub now: OffsetDateTime,
}

/// Told about progress while the clusters are read (the binary draws a progress bar).
pub trait Progress: Sync {
    /// One cluster has been read (or found unreachable).
    fn cluster_read(&self, _cluster: &str) {}
}

/// A [`Progress`] that ignores everything.
impl Progress for () {}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// As the fleet says.
    Ok,
    /// Works, but needs attention soon; does not fail the run.
    Warning,
    /// Broken or drifted; fails the run.
    Error,
}

/// Stable identifier of a check (see the table in the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckId {
    /// `cluster-reachable`.
    ClusterReachable,
    /// `sops-decryption`.
    SopsDecryption,
    /// `linkerd-installed`.
    LinkerdInstalled,
    /// `trust-anchors-match`.
    TrustAnchorsMatch,
    /// `issuer-valid`.
    IssuerValid,
    /// `multicluster-namespace`.
    MulticlusterNamespace,
    /// `unknown-link`.
    UnknownLink,
    /// `link-present`.
    LinkPresent,
    /// `link-drift`.
    LinkDrift,
    /// `credentials-secret`.
    CredentialsSecret,
    /// `credentials-kubeconfig`.
    CredentialsKubeconfig,
    /// `credentials-access`.
    CredentialsAccess,
    /// `credentials-loaded`.
    CredentialsLoaded,
    /// `credentials-rotation`.
    CredentialsRotation,
    /// `controller-available`.
    ControllerAvailable,
    /// `legacy-controller`.
    LegacyController,
    /// `gateway-service`.
    GatewayService,
    /// `probe-endpoints`.
    ProbeEndpoints,
    /// `mirror-present`.
    MirrorPresent,
    /// `export-annotation`.
    ExportAnnotation,
    /// `unknown-mirror`.
    UnknownMirror,
}

impl CheckId {
    /// Every check id, in report order.
    pub const ALL: [Self; 21] = [
        Self::ClusterReachable,
        Self::SopsDecryption,
        Self::LinkerdInstalled,
        Self::TrustAnchorsMatch,
        Self::IssuerValid,
        Self::MulticlusterNamespace,
        Self::UnknownLink,
        Self::LinkPresent,
        Self::LinkDrift,
        Self::CredentialsSecret,
        Self::CredentialsKubeconfig,
        Self::CredentialsAccess,
        Self::CredentialsLoaded,
        Self::CredentialsRotation,
        Self::ControllerAvailable,
        Self::LegacyController,
        Self::GatewayService,
        Self::ProbeEndpoints,
        Self::MirrorPresent,
        Self::ExportAnnotation,
        Self::UnknownMirror,
    ];

    /// The id as written in JSON and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterReachable => "cluster-reachable",
            Self::SopsDecryption => "sops-decryption",
            Self::LinkerdInstalled => "linkerd-installed",
            Self::TrustAnchorsMatch => "trust-anchors-match",
            Self::IssuerValid => "issuer-valid",
            Self::MulticlusterNamespace => "multicluster-namespace",
            Self::UnknownLink => "unknown-link",
            Self::LinkPresent => "link-present",
            Self::LinkDrift => "link-drift",
            Self::CredentialsSecret => "credentials-secret",
            Self::CredentialsKubeconfig => "credentials-kubeconfig",
            Self::CredentialsAccess => "credentials-access",
            Self::CredentialsLoaded => "credentials-loaded",
            Self::CredentialsRotation => "credentials-rotation",
            Self::ControllerAvailable => "controller-available",
            Self::LegacyController => "legacy-controller",
            Self::GatewayService => "gateway-service",
            Self::ProbeEndpoints => "probe-endpoints",
            Self::MirrorPresent => "mirror-present",
            Self::ExportAnnotation => "export-annotation",
            Self::UnknownMirror => "unknown-mirror",
        }
    }

    /// The category a check of this id is reported under, unless it concerns one link.
    pub fn category(self) -> Category {
        match self {
            Self::ClusterReachable => Category::KubernetesApi,
            Self::SopsDecryption => Category::Gitops,
            Self::LinkerdInstalled | Self::TrustAnchorsMatch | Self::IssuerValid => {
                Category::LinkerdControlPlane
            }
            Self::MulticlusterNamespace | Self::UnknownLink => Category::LinkerdMulticluster,
            Self::ExportAnnotation | Self::UnknownMirror => Category::Services,
            Self::LinkPresent
            | Self::LinkDrift
            | Self::CredentialsSecret
            | Self::CredentialsKubeconfig
            | Self::CredentialsAccess
            | Self::CredentialsLoaded
            | Self::CredentialsRotation
            | Self::ControllerAvailable
            | Self::LegacyController
            | Self::GatewayService
            | Self::ProbeEndpoints
            | Self::MirrorPresent => Category::Link,
        }
    }
}

impl std::fmt::Display for CheckId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Groups of checks, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// The cluster's API server.
    KubernetesApi,
    /// What the GitOps engine reports (Flux decrypting the SOPS files).
    Gitops,
    /// Linkerd's control plane and identity.
    LinkerdControlPlane,
    /// The multicluster extension as a whole.
    LinkerdMulticluster,
    /// One outgoing link (see [`CheckResult::link`]).
    Link,
    /// Exported and mirrored Services.
    Services,
}

impl Category {
    /// The category as written in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KubernetesApi => "kubernetes-api",
            Self::Gitops => "gitops",
            Self::LinkerdControlPlane => "linkerd-control-plane",
            Self::LinkerdMulticluster => "linkerd-multicluster",
            Self::Link => "link",
            Self::Services => "services",
        }
    }
}

/// One check of one cluster.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// Stable id.
    pub id: CheckId,
    /// Where it is reported.
    pub category: Category,
    /// The target link name, for checks of one link.
    pub link: Option<String>,
    /// Outcome.
    pub status: Status,
    /// One line: what was found.
    pub message: String,
    /// More lines: each difference or problem.
    pub details: Vec<String>,
    /// How to fix it (problems only).
    pub hint: Option<String>,
    /// The rendered file that holds the fix, relative to the root of the rendered tree.
    pub file: Option<String>,
}

impl CheckResult {
    fn new(id: CheckId, status: Status, message: impl Into<String>) -> Self {
        Self {
            id,
            category: id.category(),
            link: None,
            status,
            message: message.into(),
            details: Vec::new(),
            hint: None,
            file: None,
        }
    }

    /// A passed check.
    pub fn ok(id: CheckId, message: impl Into<String>) -> Self {
        Self::new(id, Status::Ok, message)
    }

    /// A check that needs attention.
    pub fn warning(id: CheckId, message: impl Into<String>) -> Self {
        Self::new(id, Status::Warning, message)
    }

    /// A failed check.
    pub fn error(id: CheckId, message: impl Into<String>) -> Self {
        Self::new(id, Status::Error, message)
    }

    /// About the link to `target` (category [`Category::Link`]).
    #[must_use]
    pub fn for_link(mut self, target: &str) -> Self {
        self.category = Category::Link;
        self.link = Some(target.to_string());
        self
    }

    pub(crate) fn in_category(mut self, category: Category) -> Self {
        self.category = category;
        self
    }

    pub(crate) fn details(mut self, details: impl IntoIterator<Item = String>) -> Self {
        self.details.extend(details);
        self
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub(crate) fn file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }

    /// Downgrade or upgrade: the worse of the current status and `status`.
    pub(crate) fn at_least(mut self, status: Status) -> Self {
        self.status = self.status.max(status);
        self
    }
}

/// Every check of one cluster.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    /// Fleet cluster name.
    pub name: String,
    /// The kubeconfig context used.
    pub context: String,
    /// The API server URL of that context, when the kubeconfig says.
    pub server: Option<String>,
    /// Whether the API server answered.
    pub reachable: bool,
    /// Kubernetes version, when reachable.
    pub version: Option<String>,
    /// The checks, in report order.
    pub checks: Vec<CheckResult>,
}

impl ClusterReport {
    /// The number of checks with `status`.
    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The fleet's name.
    pub fleet: String,
    /// One report per checked cluster, in fleet order.
    pub clusters: Vec<ClusterReport>,
}

impl CheckReport {
    /// The number of checks with `status`, over all clusters.
    pub fn count(&self, status: Status) -> usize {
        self.clusters.iter().map(|c| c.count(status)).sum()
    }

    /// No check failed (warnings allowed).
    pub fn success(&self) -> bool {
        self.count(Status::Error) == 0
    }

    /// Every check of every cluster.
    pub fn checks(&self) -> impl Iterator<Item = (&ClusterReport, &CheckResult)> {
        self.clusters
            .iter()
            .flat_map(|c| c.checks.iter().map(move |r| (c, r)))
    }
}

/// Check the live clusters against the plan. The timeout of `kubeconfigs` is the
/// deadline of each cluster (and of each link's credentials probe).
pub async fn run(
    plan: &FleetPlan,
    kubeconfigs: &Kubeconfigs,
    options: &CheckOptions,
    progress: &dyn Progress,
) -> Result<CheckReport, CheckError> {
    let selected = select(plan, &options.clusters)?;
    // Targets of selected clusters are read too: mirrors and gateways need both ends.
    let mut to_read: Vec<&ClusterPlan> = Vec::new();
    for cluster in &plan.clusters {
        let needed = selected.contains(&cluster.name.as_str())
            || plan
                .clusters
                .iter()
                .filter(|c| selected.contains(&c.name.as_str()))
                .any(|c| c.outgoing.iter().any(|l| l.target == cluster.name));
        if needed {
            to_read.push(cluster);
        }
    }
    let timeout = kubeconfigs.timeout();
    let snapshots = futures::future::join_all(to_read.iter().map(|cluster| async move {
        let snap = snapshot::read(plan, cluster, kubeconfigs, timeout).await;
        progress.cluster_read(&cluster.name);
        (cluster.name.clone(), snap)
    }))
    .await
    .into_iter()
    .collect::<BTreeMap<_, _>>();
    let probes = access::probe_all(plan, &selected, &snapshots, kubeconfigs, timeout).await;
    let clusters = plan
        .clusters
        .iter()
        .filter(|c| selected.contains(&c.name.as_str()))
        .filter_map(|cluster| {
            let snap = snapshots.get(&cluster.name)?;
            Some(evaluate(plan, cluster, snap, &snapshots, &probes, options.now))
        })
        .collect();
    Ok(CheckReport {
        fleet: plan.name.clone(),
        clusters,
    })
}

/// The clusters to report: `names`, or all.
fn select<'a>(plan: &'a FleetPlan, names: &[String]) -> Result<Vec<&'a str>, CheckError> {
    if names.is_empty() {
        return Ok(plan.clusters.iter().map(|c| c.name.as_str()).collect());
    }
    let mut selected = Vec::new();
    for name in names {
        let Some(cluster) = plan.clusters.iter().find(|c| &c.name == name) else {
            return Err(CheckError::UnknownCluster {
                name: name.clone(),
                known: plan.clusters.iter().map(|c| c.name.clone()).collect(),
            });
        };
        if !selected.contains(&cluster.name.as_str()) {
            selected.push(cluster.name.as_str());
        }
    }
    Ok(selected)
}

/// All checks of one cluster, from the snapshots (pure).
fn evaluate(
    plan: &FleetPlan,
    cluster: &ClusterPlan,
    snap: &snapshot::Snapshot,
    all: &BTreeMap<String, snapshot::Snapshot>,
    probes: &access::Probes,
    now: OffsetDateTime,
) -> ClusterReport {
    let files = files::TreeFiles::new(plan);
    let mut checks = Vec::new();
    let state = match &snap.state {
        snapshot::Reach::Unreachable(why) => {
            checks.push(why.to_result(cluster, snap.server.as_deref()));
            None
        }
        snapshot::Reach::Reachable(state) => {
            checks.push(CheckResult::ok(
                CheckId::ClusterReachable,
                format!(
                    "API server{} answers: Kubernetes {}",
                    snap.server
                        .as_deref()
                        .map(|s| format!(" `{s}`"))
                        .unwrap_or_default(),
                    state.version
                ),
            ));
            Some(state.as_ref())
        }
    };
    if let Some(state) = state {
        decryption::check(plan, cluster, state, &mut checks);
        control_plane::check(plan, cluster, state, &files, now, &mut checks);
        links::check_extension(cluster, state, &files, &mut checks);
        for link in &cluster.outgoing {
            let target = all.get(&link.target).and_then(snapshot::Snapshot::reachable);
            let probe = probes.get(&(cluster.name.clone(), link.target.clone()));
            links::check_link(plan, cluster, link, state, target, probe, &files, &mut checks);
            services::check_mirrors(cluster, link, state, target, &mut checks);
        }
        services::check_cluster(cluster, state, all, &mut checks);
    }
    ClusterReport {
        name: cluster.name.clone(),
        context: cluster.context.clone(),
        server: snap.server.clone(),
        reachable: state.is_some(),
        version: state.map(|s| s.version.clone()),
        checks,
    }
}

/// `n` followed by `word`, pluralised with an `s` unless `n` is one.
fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A short form of a `aa:bb:...` SHA-256 fingerprint: its first 8 bytes.
fn short_fingerprint(sha256: &str) -> String {
    let short: String = sha256.chars().take(23).collect();
    format!("{short}…")
}

/// The deadline of one cluster, for messages.
fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_kebab_case() {
        let mut seen = std::collections::BTreeSet::new();
        for id in CheckId::ALL {
            assert!(seen.insert(id.as_str()), "{id} twice");
            assert!(id.as_str().chars().all(|c| c.is_ascii_lowercase() || c == '-'));
            let json = serde_json::to_value(id).unwrap();
            assert_eq!(json, serde_json::Value::String(id.as_str().to_string()));
        }
    }

    #[test]
    fn worse_status_wins() {
        let r = CheckResult::warning(CheckId::IssuerValid, "x").at_least(Status::Ok);
        assert_eq!(r.status, Status::Warning);
        let r = r.at_least(Status::Error);
        assert_eq!(r.status, Status::Error);
    }
}
