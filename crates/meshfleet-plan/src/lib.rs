//! The plan: the desired state of every cluster, resolved from a valid fleet.
//!
//! [`from_checked`] builds it from the typed values validation's rules
//! parsed (the Linkerd version, each probe period, each link's selectors, each
//! cluster's CIDRs, the anchor bundle's certificates), so no fleet value is parsed
//! twice and a fleet with errors has no plan. Nothing here falls back to a default for
//! a value that did not parse: a value validation should have parsed and did not is a
//! [`PlanError::Unparsed`] (a bug), never a guess.
//!
//! Everything derived lives here, computed once: defaults applied, topology expanded,
//! and every name and port a Link, a Helm value, an ExternalSecret or a live check needs.
//! Renderers and live commands read the plan and never the raw fleet file, so a name
//! such as `cluster-credentials-<target>` or a Link's `gatewayIdentity` has exactly one
//! place where it is computed ([`LinkPlan::gateway_identity`] and friends).

pub mod anchor_rotation;
#[doc(hidden)]
pub mod fixtures;
pub mod verify;

use std::collections::BTreeMap;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use meshfleet_fleet::Fleet;
use meshfleet_fleet::defaults;
use meshfleet_fleet::diagnostic::Finding;
use meshfleet_fleet::duration::ProbePeriod;
use meshfleet_fleet::links::declared_links;
use meshfleet_fleet::model::{
    ClusterSpec, Engine, InstallMethod, IssuerKind, LinkMode, RotationPhase, ServiceType,
};
use meshfleet_fleet::version::LinkerdVersion;
use meshfleet_identity::CertInfo;
pub use meshfleet_validate::TrustAnchors;
use meshfleet_validate::{CheckedFleet, ClusterNetworks, LinkCredentialsState, Parsed};

/// Errors of planning: only a fleet that did not pass validation can cause them.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PlanError {
    /// The fleet has validation errors; plan only valid fleets.
    #[error("the fleet has {} validation error(s)", .0.len())]
    Invalid(Vec<Finding>),
    /// A value validation parses (or a setting it requires) is missing: a bug in
    /// meshfleet's rules, reported instead of planning with a made-up value.
    #[error("validation did not parse {0}; this is a bug in meshfleet, please report it")]
    Unparsed(String),
}

impl meshfleet_fleet::diagnostic::Hint for PlanError {
    fn hint(&self) -> Option<String> {
        // `Invalid`: the findings were printed with their hints; `Unparsed`: the message
        // says it is a bug to report.
        None
    }
}

/// The whole fleet, resolved.
#[derive(Debug, Clone)]
pub struct FleetPlan {
    /// `metadata.name`.
    pub name: String,
    /// The fleet file's name, for generated-file headers.
    pub source_file: String,
    /// Linkerd settings shared by all clusters.
    pub linkerd: LinkerdPlan,
    /// GitOps settings.
    pub gitops: GitopsPlan,
    /// Identity settings.
    pub identity: IdentityPlan,
    /// Vault settings, when the fleet keeps its secrets in Vault (else [`Self::sops`]).
    pub vault: Option<VaultPlan>,
    /// SOPS + age settings, when the fleet keeps its secrets in git.
    pub sops: Option<SopsPlan>,
    /// Clusters in fleet-file order.
    pub clusters: Vec<ClusterPlan>,
    /// `spec.secrets.linkCredentials` as recorded: the generations and the rotation in
    /// progress (what `secrets sync --rotate` continues from).
    pub link_credentials: LinkCredentialsState,
}

/// `spec.linkerd` with defaults applied.
#[derive(Debug, Clone)]
pub struct LinkerdPlan {
    /// Chart version.
    pub version: LinkerdVersion,
    /// Helm repository URL.
    pub chart_repository: String,
    /// Control-plane namespace.
    pub namespace: String,
    /// Identity trust domain.
    pub trust_domain: String,
    /// Cluster DNS domain.
    pub cluster_domain: String,
    /// Whether linkerd-viz is installed.
    pub viz: bool,
    /// Gateway API release to install first, or `None` when managed externally.
    pub gateway_api: Option<String>,
    /// `clusterNetworks`, as written (or Linkerd's default).
    pub cluster_networks: Vec<String>,
    /// Whether `clusterNetworks` was written (and so must be passed to the chart).
    pub cluster_networks_set: bool,
}

/// `spec.gitops` with defaults applied.
#[derive(Debug, Clone)]
pub struct GitopsPlan {
    /// Flux or Argo CD.
    pub engine: Engine,
    /// Helm or Jobs.
    pub install_method: InstallMethod,
    /// Image of the install Jobs.
    pub jobs_image: Option<String>,
    /// Git URL.
    pub repository_url: String,
    /// Branch.
    pub branch: String,
    /// Folder of the rendered tree inside the repository (no trailing `/`).
    pub path: String,
    /// Argo CD namespace.
    pub argocd_namespace: String,
    /// Argo CD project.
    pub argocd_project: String,
}

/// `spec.identity` with the anchor bundle read.
#[derive(Debug, Clone)]
pub struct IdentityPlan {
    /// The anchor bundle, PEM, normalised to end with exactly one newline (what the
    /// rendered values carry).
    pub trust_anchor_pem: String,
    /// The anchors of that bundle, parsed once by validation: live commands compare
    /// with these instead of parsing the PEM again.
    pub anchors: Vec<CertInfo>,
    /// Who issues the per-cluster issuer.
    pub issuer: IssuerKind,
    /// The anchor rotation in progress, if any.
    pub rotation: Option<crate::anchor_rotation::AnchorRotation>,
}

/// `spec.secrets.sops`: who can decrypt what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SopsPlan {
    /// The operators' age recipients: every file is encrypted for them.
    pub operators: Vec<String>,
    /// Per cluster name, its age recipient: its files are encrypted for it alone.
    pub clusters: BTreeMap<String, String>,
}

impl SopsPlan {
    /// Name of the Secret in `flux-system` that holds a cluster's age key (Flux's guide).
    pub const DECRYPTION_SECRET: &'static str = "sops-age";

    /// The recipients of a cluster's files: its own, then the operators'.
    pub fn recipients_of(&self, cluster: &str) -> Vec<String> {
        self.clusters
            .get(cluster)
            .into_iter()
            .cloned()
            .chain(self.operators.iter().cloned())
            .collect()
    }
}

/// This fleet keeps its secrets with SOPS in git, and the operation needs Vault.
#[derive(Debug, thiserror::Error)]
#[error("this fleet keeps its secrets in git with SOPS (`spec.secrets.sops`); {0} works with Vault only")]
pub struct NeedsVault(pub &'static str);

impl meshfleet_fleet::diagnostic::Hint for NeedsVault {
    fn hint(&self) -> Option<String> {
        Some("with SOPS, `meshfleet secrets sync --out DIR` writes the encrypted Secrets into the rendered tree; commit it (see docs/secrets-sops.md for what works so far)".into())
    }
}

impl FleetPlan {
    /// The Vault settings, or [`NeedsVault`] naming the operation that needs them.
    pub fn vault(&self, operation: &'static str) -> Result<&VaultPlan, NeedsVault> {
        self.vault.as_ref().ok_or(NeedsVault(operation))
    }
}

/// `spec.secrets.vault` with defaults applied.
#[derive(Debug, Clone)]
pub struct VaultPlan {
    /// Vault address External Secrets uses.
    pub server: String,
    /// KV v2 mount.
    pub mount: String,
    /// Prefix inside the mount.
    pub path: String,
    /// Kubernetes auth mount path of the clusters that name none
    /// ([`ClusterPlan::vault_auth_mount`] is the one each cluster uses).
    pub auth_mount: String,
    /// Kubernetes auth role.
    pub auth_role: String,
}

impl VaultPlan {
    /// KV path (inside the mount) of the anchor key pair: `{tls.crt, tls.key}`.
    pub fn trust_anchor_key(&self) -> String {
        format!("{}/trust-anchor", self.path)
    }
    /// KV path of a cluster's static issuer: `{tls.crt, tls.key, ca.crt}`.
    pub fn issuer_key(&self, cluster: &str) -> String {
        format!("{}/issuer/{cluster}", self.path)
    }
    /// KV path of a link's kubeconfig: `{kubeconfig}`.
    pub fn credentials_key(&self, source: &str, target: &str) -> String {
        format!("{}/credentials/{source}-to-{target}", self.path)
    }
}

/// One cluster, resolved.
#[derive(Debug, Clone)]
pub struct ClusterPlan {
    /// Cluster name (folder of the rendered tree).
    pub name: String,
    /// The name other clusters' Links use for it.
    pub link_name: String,
    /// kubeconfig context.
    pub context: String,
    /// API server address other clusters use, when known.
    pub api_server: Option<String>,
    /// Pod CIDRs.
    pub pod_cidrs: Vec<IpNet>,
    /// Service CIDRs.
    pub service_cidrs: Vec<IpNet>,
    /// Gateway, when enabled.
    pub gateway: Option<GatewayPlan>,
    /// Links this cluster makes (it mirrors from their targets).
    pub outgoing: Vec<LinkPlan>,
    /// Source clusters that link to this one (each gets a remote-access account here).
    pub incoming_sources: Vec<String>,
    /// The remote-access accounts this cluster grants (see
    /// [`ClusterPlan::remote_access_service_accounts`]), sorted.
    pub remote_access_accounts: Vec<String>,
    /// The Vault Kubernetes auth mount this cluster's External Secrets logs in with.
    pub vault_auth_mount: String,
}

impl ClusterPlan {
    /// The remote-access ServiceAccounts this cluster must have: per incoming link the
    /// account it uses, and during the `granting` phase of a rotation the next one too.
    pub fn remote_access_service_accounts(&self) -> Vec<String> {
        self.remote_access_accounts.clone()
    }
}

/// The ServiceAccount on a target that a source's link uses:
/// `linkerd-service-mirror-remote-access-<source>`.
pub fn remote_access_service_account(source: &str) -> String {
    format!("linkerd-service-mirror-remote-access-{source}")
}

/// The remote-access account of a given generation: generation 0 is
/// [`remote_access_service_account`], generation N appends `-gN`. A new generation is a new
/// account, so a new UID: only that revokes a legacy token for good.
pub fn remote_access_account(source: &str, generation: u32) -> String {
    if generation == 0 {
        remote_access_service_account(source)
    } else {
        format!("{}-g{generation}", remote_access_service_account(source))
    }
}

/// A link's credentials rotation, as the fleet file records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkRotation {
    /// The phase.
    pub phase: RotationPhase,
    /// The generation the link moves to (`granting`) or moved from (`retiring`).
    pub other_generation: u32,
}

/// The token Secret the multicluster chart creates for a remote-access account.
pub fn remote_access_token_secret(source: &str) -> String {
    format!("{}-token", remote_access_service_account(source))
}

/// A cluster's multicluster gateway, resolved.
#[derive(Debug, Clone)]
pub struct GatewayPlan {
    /// Service type.
    pub service_type: ServiceType,
    /// Addresses other clusters dial.
    pub addresses: Vec<String>,
    /// Service port.
    pub port: u16,
    /// NodePort of the gateway port.
    pub node_port: Option<u16>,
    /// Probe path.
    pub probe_path: String,
    /// Probe Service port.
    pub probe_port: u16,
    /// NodePort of the probe port.
    pub probe_node_port: Option<u16>,
    /// Probe period: a Go duration of whole seconds (the Link's `probeSpec.period` as
    /// written, the chart's `gateway.probe.seconds`).
    pub probe_period: ProbePeriod,
}

impl GatewayPlan {
    /// The port other clusters dial: the NodePort for NodePort gateways.
    pub fn dialled_port(&self) -> u16 {
        match self.service_type {
            ServiceType::NodePort => self.node_port.unwrap_or(self.port),
            _ => self.port,
        }
    }
    /// The probe port other clusters dial: the probe NodePort for NodePort gateways.
    pub fn dialled_probe_port(&self) -> u16 {
        match self.service_type {
            ServiceType::NodePort => self.probe_node_port.unwrap_or(self.probe_port),
            _ => self.probe_port,
        }
    }
}

/// One link, resolved: everything its Link, controller entry and credentials need.
#[derive(Debug, Clone)]
pub struct LinkPlan {
    /// Source cluster name.
    pub source: String,
    /// Target cluster name.
    pub target: String,
    /// The target's link name: Link name, `targetClusterName`, controller ref, mirror suffix.
    pub target_link_name: String,
    /// Gateway or remote discovery.
    pub mode: LinkMode,
    /// The target's gateway as dialled, in gateway mode.
    pub gateway: Option<LinkGateway>,
    /// Gateway-mode selector.
    pub selector: LabelSelector,
    /// Remote-discovery selector.
    pub remote_discovery_selector: LabelSelector,
    /// Federated-member selector.
    pub federated_service_selector: LabelSelector,
    /// Target cluster domain.
    pub target_cluster_domain: String,
    /// Target control-plane namespace.
    pub target_linkerd_namespace: String,
    /// Target trust domain.
    pub target_trust_domain: String,
    /// The generation of the remote-access account the link's credentials use.
    pub generation: u32,
    /// The generation a rotation moves it to (see [`LinkPlan::following_account`]).
    pub next_generation: u32,
    /// A credentials rotation of this link, if one is in progress.
    pub rotation: Option<LinkRotation>,
}

/// The target's gateway as a link dials it.
#[derive(Debug, Clone)]
pub struct LinkGateway {
    /// `gatewayAddress`: the addresses, comma separated.
    pub address: String,
    /// `gatewayPort`.
    pub port: u16,
    /// `probeSpec.path`.
    pub probe_path: String,
    /// `probeSpec.port`, and so `controllers[].gateway.probe.port`.
    pub probe_port: u16,
    /// `probeSpec.period`.
    pub probe_period: ProbePeriod,
}

/// A link's current account generation and rotation, from the state validation parsed
/// out of `spec.secrets.linkCredentials`. During `retiring` the generation has already
/// moved: the other one is the previous.
fn link_credentials(state: &LinkCredentialsState, id: &str) -> (u32, Option<LinkRotation>) {
    // An unlisted link uses generation 0.
    let generation = state.generations.get(id).copied().unwrap_or(0);
    let rotation = state
        .rotation
        .as_ref()
        .filter(|(links, _)| links.iter().any(|l| l == id))
        .map(|&(_, phase)| LinkRotation {
            phase,
            other_generation: match phase {
                RotationPhase::Granting => next_generation(generation),
                RotationPhase::Retiring => generation.saturating_sub(1),
            },
        });
    (generation, rotation)
}

/// The generation a rotation moves a link at `generation` to: the one place it is
/// computed (validation keeps a written generation below `u32::MAX`).
fn next_generation(generation: u32) -> u32 {
    generation.saturating_add(1)
}

impl LinkPlan {
    /// The remote-access account this link's credentials use on the target.
    pub fn account(&self) -> String {
        remote_access_account(&self.source, self.generation)
    }

    /// The account a rotation moves this link to, while the targets grant both.
    pub fn next_account(&self) -> Option<String> {
        self.rotation
            .filter(|r| r.phase == RotationPhase::Granting)
            .map(|r| remote_access_account(&self.source, r.other_generation))
    }

    /// The account a rotation started now (or granting now) moves this link to.
    pub fn following_account(&self) -> String {
        remote_access_account(&self.source, self.next_generation)
    }

    /// The account this link used before its last rotation (what `retiring` removes).
    pub fn previous_account(&self) -> String {
        remote_access_account(&self.source, self.generation.saturating_sub(1))
    }

    /// The Link's name: the target's link name.
    pub fn link_name(&self) -> &str {
        &self.target_link_name
    }
    /// `cluster-credentials-<target link name>`: the only name the controller's RBAC
    /// allows it to read.
    pub fn credentials_secret(&self) -> String {
        format!("cluster-credentials-{}", self.target_link_name)
    }
    /// The identity of the target's gateway:
    /// `<gateway>.<multicluster ns>.serviceaccount.identity.<linkerd ns>.<trust domain>`.
    pub fn gateway_identity(&self) -> String {
        format!(
            "{}.{}.serviceaccount.identity.{}.{}",
            defaults::GATEWAY_NAME,
            defaults::MULTICLUSTER_NAMESPACE,
            self.target_linkerd_namespace,
            self.target_trust_domain
        )
    }
    /// The controller Deployment the chart renders for this link.
    pub fn controller_name(&self) -> String {
        format!("controller-{}", self.target_link_name)
    }
    /// The probe Service the chart renders for this link (gateway mode).
    pub fn probe_service(&self) -> String {
        format!("probe-{}", self.target_link_name)
    }
    /// `<source>-to-<target>`, the key of this link's credentials in Vault.
    pub fn credentials_id(&self) -> String {
        format!("{}-to-{}", self.source, self.target)
    }
    /// `<source> -> <target>`: how every message, picture and JSON document names the
    /// link, in Linkerd's direction (the Link lives on the source and dials the
    /// target's gateway; the source mirrors the target's services). The same text as
    /// [`meshfleet_fleet::links::DeclaredLink::label`] gives for the declared link.
    pub fn label(&self) -> String {
        format!("{} -> {}", self.source, self.target)
    }
}

/// The plan of a checked fleet, built from the values its rules parsed; refuses one with
/// validation errors: the one way from a fleet to a [`FleetPlan`].
pub fn from_checked(checked: &CheckedFleet) -> Result<FleetPlan, PlanError> {
    if checked.is_valid() {
        build(
            &checked.fleet,
            checked.parsed.clone(),
            &checked.source.file_name(),
        )
    } else {
        Err(PlanError::Invalid(
            checked
                .findings
                .iter()
                .filter(|f| f.is_error())
                .cloned()
                .collect(),
        ))
    }
}

/// A value validation should have parsed, or a setting it should have required, is not
/// there: the fleet is refused instead of planned with a made-up value.
fn unparsed(what: impl Into<String>) -> PlanError {
    PlanError::Unparsed(what.into())
}

/// Build the plan of a fleet that passed validation, from the values its rules parsed.
/// Only [`from_checked`] calls it, and only without errors; anything missing is
/// refused ([`PlanError::Unparsed`]), never replaced by a default.
fn build(fleet: &Fleet, mut parsed: Parsed, source_file: &str) -> Result<FleetPlan, PlanError> {
    let spec = &fleet.spec;
    let linkerd = linkerd_plan(&spec.linkerd, &mut parsed)?;
    let gitops = gitops_plan(&spec.gitops);
    let anchors = parsed
        .anchors
        .take()
        .ok_or_else(|| unparsed("the trust anchor bundle"))?;
    let identity = IdentityPlan {
        trust_anchor_pem: anchors.pem,
        anchors: anchors.certs,
        rotation: anchors.rotation,
        issuer: spec
            .identity
            .issuer
            .as_ref()
            .map_or(IssuerKind::CertManager, |i| i.value),
    };
    let sops = sops_plan(spec);
    let vault = if sops.is_some() {
        None
    } else {
        Some(vault_plan(spec)?)
    };
    let fleet_auth_mount = vault
        .as_ref()
        .map_or(defaults::VAULT_AUTH_MOUNT, |v| v.auth_mount.as_str())
        .to_string();
    let mut clusters: Vec<ClusterPlan> = spec
        .clusters
        .iter()
        .map(|c| cluster_plan(&c.value, &fleet_auth_mount, &mut parsed))
        .collect::<Result<_, _>>()?;
    add_links(fleet, &linkerd, &mut parsed, &mut clusters)?;
    Ok(FleetPlan {
        name: fleet.metadata.name.value.clone(),
        source_file: source_file.to_string(),
        linkerd,
        gitops,
        identity,
        vault,
        sops,
        clusters,
        link_credentials: parsed.link_credentials,
    })
}

fn linkerd_plan(
    l: &meshfleet_fleet::model::LinkerdSpec,
    parsed: &mut Parsed,
) -> Result<LinkerdPlan, PlanError> {
    Ok(LinkerdPlan {
        version: parsed
            .version
            .take()
            .ok_or_else(|| unparsed("`spec.linkerd.version`"))?,
        chart_repository: value_or(l.chart_repository.as_ref(), defaults::CHART_REPOSITORY)
            .trim_end_matches('/')
            .to_string(),
        namespace: value_or(l.namespace.as_ref(), defaults::LINKERD_NAMESPACE),
        trust_domain: value_or(l.trust_domain.as_ref(), defaults::CLUSTER_DOMAIN),
        cluster_domain: value_or(l.cluster_domain.as_ref(), defaults::CLUSTER_DOMAIN),
        viz: l.viz.as_ref().is_none_or(|v| v.value),
        gateway_api: l
            .gateway_api
            .as_ref()
            .map(|g| g.value.clone())
            .filter(|g| g != "external"),
        cluster_networks: l.cluster_networks.as_ref().map_or_else(
            || {
                defaults::CLUSTER_NETWORKS
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            },
            |n| n.iter().map(|c| c.value.clone()).collect(),
        ),
        cluster_networks_set: l.cluster_networks.is_some(),
    })
}

fn gitops_plan(g: &meshfleet_fleet::model::GitopsSpec) -> GitopsPlan {
    let argocd = g.argocd.as_ref();
    GitopsPlan {
        engine: g.engine.value,
        install_method: g.install_method.as_ref().map_or(InstallMethod::Helm, |m| m.value),
        jobs_image: g
            .jobs
            .as_ref()
            .and_then(|j| j.image.as_ref())
            .map(|i| i.value.clone()),
        repository_url: g.repository.url.value.clone(),
        branch: value_or(g.repository.branch.as_ref(), defaults::BRANCH),
        path: value_or(g.repository.path.as_ref(), defaults::REPOSITORY_PATH)
            .trim_matches('/')
            .to_string(),
        argocd_namespace: value_or(
            argocd.and_then(|a| a.namespace.as_ref()),
            defaults::ARGOCD_NAMESPACE,
        ),
        argocd_project: value_or(argocd.and_then(|a| a.project.as_ref()), defaults::ARGOCD_PROJECT),
    }
}

fn sops_plan(spec: &meshfleet_fleet::model::Spec) -> Option<SopsPlan> {
    let age = &spec.secrets.as_ref()?.sops.as_ref()?.age;
    Some(SopsPlan {
        operators: age.operators.iter().map(|o| o.value.trim().to_string()).collect(),
        clusters: age
            .clusters
            .iter()
            .map(|(k, v)| (k.clone(), v.value.trim().to_string()))
            .collect(),
    })
}

fn vault_plan(spec: &meshfleet_fleet::model::Spec) -> Result<VaultPlan, PlanError> {
    let vault_spec = spec
        .secrets
        .as_ref()
        .and_then(|s| s.vault.as_ref())
        .ok_or_else(|| unparsed("`spec.secrets.vault`"))?;
    let k8s_auth = vault_spec.auth.as_ref().and_then(|a| a.kubernetes.as_ref());
    Ok(VaultPlan {
        server: vault_spec.server.value.clone(),
        mount: vault_spec.mount.value.clone(),
        path: vault_spec.path.value.trim_matches('/').to_string(),
        auth_mount: value_or(
            k8s_auth.and_then(|k| k.mount_path.as_ref()),
            defaults::VAULT_AUTH_MOUNT,
        ),
        auth_role: value_or(k8s_auth.and_then(|k| k.role.as_ref()), defaults::VAULT_AUTH_ROLE),
    })
}

/// Every declared link, planned onto its source's `outgoing` and its target's incoming
/// sources and remote-access accounts.
fn add_links(
    fleet: &Fleet,
    linkerd: &LinkerdPlan,
    parsed: &mut Parsed,
    clusters: &mut [ClusterPlan],
) -> Result<(), PlanError> {
    let index: std::collections::HashMap<String, usize> = clusters
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.clone(), i))
        .collect();
    for link in declared_links(fleet) {
        let label = link.label();
        let (Some(&si), Some(&ti)) = (index.get(&link.source.value), index.get(&link.target.value)) else {
            return Err(unparsed(format!("the clusters of link `{label}`")));
        };
        let plan = link_plan(&link, &clusters[ti], linkerd, parsed)?;
        let source = clusters[si].name.clone();
        let target = &mut clusters[ti];
        target.remote_access_accounts.push(plan.account());
        if let Some(next) = plan.next_account() {
            target.remote_access_accounts.push(next);
        }
        target.incoming_sources.push(source);
        clusters[si].outgoing.push(plan);
    }
    for c in clusters {
        c.outgoing
            .sort_by(|a, b| a.target_link_name.cmp(&b.target_link_name));
        c.incoming_sources.sort();
        c.incoming_sources.dedup();
        c.remote_access_accounts.sort();
        c.remote_access_accounts.dedup();
    }
    Ok(())
}

fn link_plan(
    link: &meshfleet_fleet::links::DeclaredLink,
    target: &ClusterPlan,
    linkerd: &LinkerdPlan,
    parsed: &mut Parsed,
) -> Result<LinkPlan, PlanError> {
    let label = link.label();
    let gateway = match link.mode.value {
        LinkMode::Gateway => {
            let gw = target.gateway.as_ref().ok_or_else(|| {
                unparsed(format!(
                    "the gateway of `{}`, the target of `{label}`",
                    target.name
                ))
            })?;
            Some(LinkGateway {
                address: gw.addresses.join(","),
                port: gw.dialled_port(),
                probe_path: gw.probe_path.clone(),
                probe_port: gw.dialled_probe_port(),
                probe_period: gw.probe_period.clone(),
            })
        }
        LinkMode::RemoteDiscovery => None,
    };
    let selectors = parsed
        .selectors
        .remove(&(link.source.value.clone(), link.target.value.clone()))
        .ok_or_else(|| unparsed(format!("the selectors of link `{label}`")))?;
    let id = format!("{}-to-{}", link.source.value, target.name);
    let (generation, rotation) = link_credentials(&parsed.link_credentials, &id);
    Ok(LinkPlan {
        source: link.source.value.clone(),
        target: target.name.clone(),
        target_link_name: target.link_name.clone(),
        mode: link.mode.value,
        gateway,
        selector: selectors.gateway,
        remote_discovery_selector: selectors.remote_discovery,
        federated_service_selector: selectors.federated,
        target_cluster_domain: linkerd.cluster_domain.clone(),
        target_linkerd_namespace: linkerd.namespace.clone(),
        target_trust_domain: linkerd.trust_domain.clone(),
        generation,
        next_generation: next_generation(generation),
        rotation,
    })
}

fn value_or(value: Option<&meshfleet_fleet::located::Located<String>>, default: &str) -> String {
    value.map_or_else(|| default.to_string(), |v| v.value.clone())
}

fn cluster_plan(
    c: &ClusterSpec,
    fleet_auth_mount: &str,
    parsed: &mut Parsed,
) -> Result<ClusterPlan, PlanError> {
    let name = &c.name.value;
    let gateway = match c
        .gateway
        .as_ref()
        .filter(|g| g.enabled.as_ref().is_none_or(|e| e.value))
    {
        None => None,
        Some(g) => {
            let probe = g.probe.as_ref().map(|p| &p.value);
            let ports = parsed
                .gateway_ports
                .remove(name)
                .ok_or_else(|| unparsed(format!("the gateway ports of `{name}`")))?;
            Some(GatewayPlan {
                service_type: g
                    .service_type
                    .as_ref()
                    .map_or(ServiceType::LoadBalancer, |t| t.value),
                addresses: g.addresses.iter().map(|a| a.value.clone()).collect(),
                port: ports.port,
                node_port: ports.node_port,
                probe_path: probe
                    .and_then(|p| p.path.as_ref())
                    .map_or_else(|| defaults::PROBE_PATH.to_string(), |p| p.value.clone()),
                probe_port: ports.probe_port,
                probe_node_port: ports.probe_node_port,
                probe_period: parsed
                    .probe_periods
                    .remove(name)
                    .ok_or_else(|| unparsed(format!("the probe period of `{name}`")))?,
            })
        }
    };
    let networks = match &c.network {
        None => ClusterNetworks::default(),
        Some(_) => parsed
            .networks
            .remove(name)
            .ok_or_else(|| unparsed(format!("the network of `{name}`")))?,
    };
    Ok(ClusterPlan {
        name: name.clone(),
        link_name: c.link_name.as_ref().unwrap_or(&c.name).value.clone(),
        context: c.context.as_ref().unwrap_or(&c.name).value.clone(),
        api_server: c.api_server.as_ref().map(|a| a.value.clone()),
        pod_cidrs: networks.pods,
        service_cidrs: networks.services,
        gateway,
        outgoing: Vec::new(),
        incoming_sources: Vec::new(),
        remote_access_accounts: Vec::new(),
        vault_auth_mount: value_or(c.vault_auth_mount_path.as_ref(), fleet_auth_mount),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{BASE, base_with, check, plan, rules};

    #[test]
    fn a_cluster_logs_in_to_vault_through_its_own_auth_mount_when_it_names_one() {
        let plan = plan(&base_with("      vaultAuthMountPath: kubernetes-studio\n", ""));
        let mounts: Vec<(&str, &str)> = plan
            .clusters
            .iter()
            .map(|c| (c.name.as_str(), c.vault_auth_mount.as_str()))
            .collect();
        assert_eq!(mounts, [("studio", "kubernetes"), ("pro", "kubernetes-pro")]);
        assert!(
            rules(&base_with(
                "vaultAuthMountPath: kubernetes-pro",
                "vaultAuthMountPath: \"\""
            ))
            .contains(&"vault-settings")
        );
    }

    #[test]
    fn defaults_are_applied_once_here() {
        let plan = plan(BASE);
        assert_eq!(plan.linkerd.namespace, "linkerd");
        assert_eq!(plan.linkerd.trust_domain, "cluster.local");
        assert_eq!(plan.linkerd.chart_repository, "https://helm.linkerd.io/edge");
        assert!(plan.linkerd.viz);
        assert!(!plan.linkerd.cluster_networks_set);
        assert_eq!(
            (plan.gitops.branch.as_str(), plan.gitops.path.as_str()),
            ("main", "gitops")
        );
        assert_eq!(plan.identity.issuer, IssuerKind::CertManager);
        assert!(plan.identity.trust_anchor_pem.ends_with("-----\n"));
        let studio = &plan.clusters[0];
        assert_eq!(
            (studio.link_name.as_str(), studio.context.as_str()),
            ("studio", "studio")
        );
        let gateway = studio.gateway.as_ref().expect("gateway");
        assert_eq!(gateway.service_type, ServiceType::LoadBalancer);
        assert_eq!((gateway.port, gateway.probe_port), (4143, 4191));
        assert_eq!(
            (gateway.probe_period.as_str(), gateway.probe_period.seconds()),
            ("3s", 3)
        );
    }

    #[test]
    fn links_dial_node_ports_and_carry_the_target_identity() {
        let plan = plan(&base_with(
            "    - name: pro\n",
            "    - name: pro\n      linkName: production\n",
        ));
        let studio = &plan.clusters[0];
        let link = &studio.outgoing[0];
        assert_eq!((link.source.as_str(), link.target.as_str()), ("studio", "pro"));
        assert_eq!(link.link_name(), "production");
        assert_eq!(link.credentials_secret(), "cluster-credentials-production");
        assert_eq!(link.controller_name(), "controller-production");
        assert_eq!(
            link.gateway_identity(),
            "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local"
        );
        let gateway = link.gateway.as_ref().expect("gateway mode");
        assert_eq!((gateway.address.as_str(), gateway.port), ("192.0.2.20", 30143));
        assert_eq!((gateway.probe_port, gateway.probe_period.as_str()), (30191, "5s"));
        assert_eq!(plan.clusters[1].incoming_sources, ["studio"]);
        assert_eq!(
            plan.clusters[1].remote_access_service_accounts(),
            ["linkerd-service-mirror-remote-access-studio"]
        );
        assert_eq!(
            plan.vault
                .as_ref()
                .expect("a Vault fleet")
                .credentials_key("studio", "pro"),
            "linkerd/credentials/studio-to-pro"
        );
    }

    #[test]
    fn selectors_default_to_linkerds_and_parse_into_label_selectors() {
        let plan = plan(&base_with(
            "{source: pro, target: studio}",
            "{source: pro, target: studio, selector: 'tier in (web,api)'}",
        ));
        let default = &plan.clusters[0].outgoing[0].selector;
        assert_eq!(
            default
                .match_labels
                .as_ref()
                .and_then(|m| m.get("mirror.linkerd.io/exported")),
            Some(&"true".to_string())
        );
        let custom = &plan.clusters[1].outgoing[0].selector;
        let expression = &custom.match_expressions.as_ref().expect("an expression")[0];
        assert_eq!(
            (expression.key.as_str(), expression.operator.as_str()),
            ("tier", "In")
        );
    }

    #[test]
    fn a_hub_and_spoke_topology_expands_to_links_into_the_hub() {
        let text = base_with(
            "  links:\n    - {source: studio, target: pro}\n    - {source: pro, target: studio}\n",
            "    - name: lab\n      network: {pods: [10.3.0.0/16], services: [10.103.0.0/16]}\n  topology: {hubAndSpoke: {hub: pro}}\n",
        );
        let plan = plan(&text);
        let targets: Vec<(&str, Vec<&str>)> = plan
            .clusters
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.outgoing.iter().map(|l| l.target.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            targets,
            [("studio", vec!["pro"]), ("pro", vec![]), ("lab", vec!["pro"])]
        );
        assert_eq!(plan.clusters[1].incoming_sources, ["lab", "studio"]);
    }

    #[test]
    fn an_invalid_fleet_is_not_planned() {
        let checked = check(&base_with(
            "{source: pro, target: studio}",
            "{source: pro, target: pro}",
        ));
        match from_checked(&checked) {
            Err(PlanError::Invalid(errors)) => assert_eq!(errors[0].rule, "self-link"),
            other => panic!("a self-link was planned: {other:?}"),
        }
    }

    #[test]
    fn link_credential_generations_are_counted_from_zero_for_declared_links() {
        let with = |generations: &str| {
            base_with(
                "      path: linkerd\n",
                &format!("      path: linkerd\n    linkCredentials:\n      generations: {{{generations}}}\n"),
            )
        };
        assert!(rules(&with("studio-to-pro: 2")).is_empty());
        assert_eq!(rules(&with("studio-to-pro: -1")), ["link-credentials"]);
        assert_eq!(rules(&with("studio-to-lab: 1")), ["link-credentials"]);
        let plan = plan(&with("studio-to-pro: 2"));
        assert_eq!(
            plan.clusters[0].outgoing[0].account(),
            "linkerd-service-mirror-remote-access-studio-g2"
        );
    }

    #[test]
    fn a_rotation_names_declared_links_and_retires_only_a_raised_generation() {
        let with = |block: &str| {
            base_with(
                "      path: linkerd\n",
                &format!("      path: linkerd\n    linkCredentials:\n{block}"),
            )
        };
        let granting = with("      rotation: {phase: granting, links: [studio-to-pro]}\n");
        assert!(rules(&granting).is_empty());
        let granted = plan(&granting);
        let link = &granted.clusters[0].outgoing[0];
        assert_eq!(
            (link.account(), link.next_account().as_deref()),
            (
                "linkerd-service-mirror-remote-access-studio".to_string(),
                Some("linkerd-service-mirror-remote-access-studio-g1")
            )
        );
        // Both accounts are granted on the target while the rotation grants.
        let target = granted.clusters.iter().find(|c| c.name == "pro").unwrap();
        assert_eq!(target.remote_access_service_accounts().len(), 2);
        assert_eq!(
            rules(&with(
                "      rotation: {phase: granting, links: [studio-to-lab]}\n"
            )),
            ["link-credentials"]
        );
        assert_eq!(
            rules(&with(
                "      rotation: {phase: retiring, links: [studio-to-pro]}\n"
            )),
            ["link-credentials"]
        );
        let retiring = with(
            "      generations: {studio-to-pro: 1}\n      rotation: {phase: retiring, links: [studio-to-pro]}\n",
        );
        assert!(rules(&retiring).is_empty());
        let retired = plan(&retiring);
        let target = retired.clusters.iter().find(|c| c.name == "pro").unwrap();
        assert_eq!(
            target.remote_access_service_accounts(),
            ["linkerd-service-mirror-remote-access-studio-g1"]
        );
    }
}
