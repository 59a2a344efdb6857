//! The fleet file as written: the contract of PRODUCT.md section 2.
//!
//! Every field a rule may complain about is [`Located`], so a finding can point at the
//! exact line and column. Optional fields stay `Option` here; defaults are applied when
//! the validated fleet becomes a plan (`meshfleet_plan`), so this model can still tell
//! "left out" from "written with the default value".

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::located::Located;

/// The `apiVersion` every fleet file carries.
pub const API_VERSION: &str = "meshfleet.io/v1alpha1";
/// The `kind` every fleet file carries.
pub const KIND: &str = "Fleet";

/// A whole fleet file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(
    title = "meshfleet Fleet",
    description = "One description of a Linkerd multicluster fleet"
)]
pub struct Fleet {
    /// Always `meshfleet.io/v1alpha1`.
    pub api_version: Located<String>,
    /// Always `Fleet`.
    pub kind: Located<String>,
    /// Name of the fleet.
    pub metadata: Metadata,
    /// What the fleet is made of.
    pub spec: Spec,
}

/// `metadata`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// DNS-1123 label naming the fleet; stamped on every rendered object as `meshfleet.io/fleet`.
    pub name: Located<String>,
}

/// `spec`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    /// Linkerd version and install settings shared by every cluster.
    pub linkerd: LinkerdSpec,
    /// The GitOps engine and where the rendered tree is committed.
    pub gitops: GitopsSpec,
    /// The shared trust anchor and how each cluster gets its issuer.
    pub identity: IdentitySpec,
    /// Where private material lives (Vault KV v2).
    #[serde(default)]
    pub secrets: Option<SecretsSpec>,
    /// The clusters of the fleet.
    pub clusters: Vec<Located<ClusterSpec>>,
    /// Links; each mirrors services FROM `target` INTO `source`.
    #[serde(default)]
    pub links: Vec<Located<LinkSpec>>,
    /// Shorthands that expand to links (explicit links may be added beside them).
    #[serde(default)]
    pub topology: Option<Located<TopologySpec>>,
}

/// `spec.linkerd`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LinkerdSpec {
    /// Linkerd edge Helm chart version `YYYY.M.N`; declarative links need 2025.4.4 (Linkerd 2.18) or newer.
    pub version: Located<String>,
    /// Helm repository of the Linkerd charts [https://helm.linkerd.io/edge].
    #[serde(default)]
    pub chart_repository: Option<Located<String>>,
    /// Control-plane namespace [linkerd].
    #[serde(default)]
    pub namespace: Option<Located<String>>,
    /// Identity trust domain [cluster.local].
    #[serde(default)]
    pub trust_domain: Option<Located<String>>,
    /// Kubernetes cluster DNS domain [cluster.local].
    #[serde(default)]
    pub cluster_domain: Option<Located<String>>,
    /// Install linkerd-viz [true].
    #[serde(default)]
    pub viz: Option<Located<bool>>,
    /// Gateway API CRD version installed before Linkerd, or `external` when you manage them [external].
    #[serde(default, rename = "gatewayAPI")]
    pub gateway_api: Option<Located<String>>,
    /// Networks whose pods are treated as in-mesh [Linkerd's default].
    #[serde(default)]
    pub cluster_networks: Option<Vec<Located<String>>>,
}

/// GitOps engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Flux: Kustomizations chained with `dependsOn` and `wait`.
    Flux,
    /// Argo CD: one app-of-apps per cluster with sync waves.
    Argocd,
}

/// How Linkerd itself is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InstallMethod {
    /// Helm charts (HelmRelease or Argo CD Helm sources).
    Helm,
    /// Kubernetes Jobs that run the `linkerd` CLI (seed 000).
    Jobs,
}

/// `spec.gitops`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GitopsSpec {
    /// `flux` or `argocd`.
    pub engine: Located<Engine>,
    /// `helm` or `jobs` [helm].
    #[serde(default)]
    pub install_method: Option<Located<InstallMethod>>,
    /// Settings of the `jobs` install method.
    #[serde(default)]
    pub jobs: Option<Located<JobsSpec>>,
    /// Where the rendered tree is committed.
    pub repository: RepositorySpec,
    /// Argo CD settings (engine `argocd` only).
    #[serde(default)]
    pub argocd: Option<ArgocdSpec>,
}

/// `spec.gitops.jobs`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobsSpec {
    /// An image that holds the `linkerd` CLI and `kubectl` (Linkerd's own CLI image has no shell).
    #[serde(default)]
    pub image: Option<Located<String>>,
}

/// `spec.gitops.repository`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RepositorySpec {
    /// Git URL of the repository the rendered tree is committed to.
    pub url: Located<String>,
    /// Branch [main].
    #[serde(default)]
    pub branch: Option<Located<String>>,
    /// Folder of the rendered tree inside the repository [gitops].
    #[serde(default)]
    pub path: Option<Located<String>>,
}

/// `spec.gitops.argocd`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArgocdSpec {
    /// Namespace Argo CD runs in [argocd].
    #[serde(default)]
    pub namespace: Option<Located<String>>,
    /// Argo CD project of the Applications [default].
    #[serde(default)]
    pub project: Option<Located<String>>,
}

/// Who issues each cluster's identity issuer certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum IssuerKind {
    /// cert-manager signs a short-lived issuer from the anchor (rotated automatically).
    #[serde(rename = "cert-manager")]
    CertManager,
    /// A static issuer per cluster, made by `meshfleet certs init` and kept in Vault.
    #[serde(rename = "vault")]
    Vault,
}

/// `spec.identity`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IdentitySpec {
    /// PEM bundle of the trust anchor(s), relative to the fleet file (public; two during a rotation).
    pub trust_anchor: Located<String>,
    /// `cert-manager` or `vault` [cert-manager].
    #[serde(default)]
    pub issuer: Option<Located<IssuerKind>>,
    /// A trust anchor rotation in progress. Written by `meshfleet trust rotate`; review
    /// it like any change.
    #[serde(default)]
    pub rotation: Option<Located<AnchorRotationSpec>>,
}

/// `spec.identity.rotation`: which anchor the fleet moves from and to, and how far it is.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnchorRotationSpec {
    /// Where the rotation is.
    pub phase: Located<AnchorRotationPhase>,
    /// SHA-256 fingerprint (as `certs inspect` prints it) of the anchor being retired.
    pub from: Located<String>,
    /// SHA-256 fingerprint of the anchor being rolled out.
    pub to: Located<String>,
}

/// The phases of a trust anchor rotation, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema)]
pub enum AnchorRotationPhase {
    /// The bundle of both anchors reaches every cluster; issuers still use `from`.
    #[serde(rename = "distribute")]
    Distribute,
    /// The issuers move to `to`; every cluster trusts both.
    #[serde(rename = "issuers")]
    Issuers,
    /// Every proxy gets a certificate from a new issuer (restarts).
    #[serde(rename = "recertify")]
    Recertify,
    /// `from` leaves every bundle.
    #[serde(rename = "retire")]
    Retire,
}

impl AnchorRotationPhase {
    /// Every phase, in order.
    pub const ALL: [Self; 4] = [Self::Distribute, Self::Issuers, Self::Recertify, Self::Retire];

    /// The fleet-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Distribute => "distribute",
            Self::Issuers => "issuers",
            Self::Recertify => "recertify",
            Self::Retire => "retire",
        }
    }

    /// Whether the bundle holds both anchors in this phase (only `to` in `retire`).
    pub fn bundle_holds_both(self) -> bool {
        self != Self::Retire
    }

    /// Whether the issuers are signed by `to` in this phase (else by `from`).
    pub fn issuers_on_new(self) -> bool {
        self != Self::Distribute
    }
}

/// `spec.secrets`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretsSpec {
    /// Vault (KV v2) that holds link credentials and identity keys.
    #[serde(default)]
    pub vault: Option<Located<VaultSpec>>,
    /// SOPS + age instead of Vault: the same Secrets as SOPS-encrypted manifests in the
    /// rendered tree, decrypted by Flux's kustomize-controller (`sops-age` Secret).
    #[serde(default)]
    pub sops: Option<Located<SopsSpec>>,
    /// Which remote-access account each link uses, and a credential rotation in
    /// progress. Written by `meshfleet secrets sync --rotate`; review it like any change.
    #[serde(default)]
    pub link_credentials: Option<Located<LinkCredentialsSpec>>,
}

/// `spec.secrets.linkCredentials`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LinkCredentialsSpec {
    /// Per link, keyed `<source>-to-<target>`: the generation of the remote-access account
    /// the link uses on its target [0]. Generation 0 is
    /// `linkerd-service-mirror-remote-access-<source>`, generation N
    /// `linkerd-service-mirror-remote-access-<source>-gN`.
    #[serde(default)]
    pub generations: std::collections::BTreeMap<String, Located<i64>>,
    /// A rotation in progress.
    #[serde(default)]
    pub rotation: Option<Located<RotationSpec>>,
}

/// `spec.secrets.linkCredentials.rotation`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RotationSpec {
    /// The links being rotated, `<source>-to-<target>`.
    pub links: Vec<Located<String>>,
    /// Where the rotation is.
    pub phase: Located<RotationPhase>,
}

/// The phases of a link credential rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum RotationPhase {
    /// The targets grant the next account beside the current one; the links still use the
    /// current one.
    #[serde(rename = "granting")]
    Granting,
    /// The links use the new account; the old one leaves the targets.
    #[serde(rename = "retiring")]
    Retiring,
}

impl RotationPhase {
    /// The fleet-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Granting => "granting",
            Self::Retiring => "retiring",
        }
    }
}

/// `spec.secrets.vault`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VaultSpec {
    /// Vault address as the clusters' External Secrets Operator reaches it.
    pub server: Located<String>,
    /// KV v2 mount.
    pub mount: Located<String>,
    /// Prefix inside the mount.
    pub path: Located<String>,
    /// How External Secrets authenticates to Vault.
    #[serde(default)]
    pub auth: Option<VaultAuthSpec>,
}

/// `spec.secrets.sops`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SopsSpec {
    /// The age recipients (public keys) files are encrypted for.
    pub age: Located<SopsAgeSpec>,
}

/// `spec.secrets.sops.age`: like the `age:` of a `.sops.yaml` creation rule, split by
/// who may read.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SopsAgeSpec {
    /// Recipients (`age1…`) of the operators: every file is encrypted for them too, so
    /// that `meshfleet secrets sync` can read and update it (with `SOPS_AGE_KEY_FILE`).
    pub operators: Vec<Located<String>>,
    /// Per cluster name, that cluster's recipient: the public half of the key in its
    /// `flux-system/sops-age` Secret. A cluster's files are encrypted for it alone
    /// (and the operators).
    #[serde(default)]
    pub clusters: std::collections::BTreeMap<String, Located<String>>,
}

/// `spec.secrets.vault.auth`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VaultAuthSpec {
    /// Vault's Kubernetes auth method.
    #[serde(default)]
    pub kubernetes: Option<VaultKubernetesAuth>,
}

/// `spec.secrets.vault.auth.kubernetes`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VaultKubernetesAuth {
    /// Mount path of the auth method [kubernetes].
    #[serde(default)]
    pub mount_path: Option<Located<String>>,
    /// Vault role [external-secrets].
    #[serde(default)]
    pub role: Option<Located<String>>,
}

/// One entry of `spec.clusters`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterSpec {
    /// DNS-1123 label; names the cluster's folder in the rendered tree.
    pub name: Located<String>,
    /// Name other clusters' Links use for it, and so the suffix of its mirrored services [name].
    #[serde(default)]
    pub link_name: Option<Located<String>>,
    /// kubeconfig context for live commands [name].
    #[serde(default)]
    pub context: Option<Located<String>>,
    /// Address OTHER clusters use to reach this API server.
    #[serde(default)]
    pub api_server: Option<Located<String>>,
    /// Pod and service CIDRs.
    #[serde(default)]
    pub network: Option<NetworkSpec>,
    /// The multicluster gateway; absent or disabled means never a gateway-mode link target.
    #[serde(default)]
    pub gateway: Option<Located<GatewaySpec>>,
    /// Mount path of the Vault Kubernetes auth method that trusts THIS cluster's API
    /// server [spec.secrets.vault.auth.kubernetes.mountPath]. A mount checks tokens with
    /// one API server, so clusters sharing one Vault each need their own.
    #[serde(default)]
    pub vault_auth_mount_path: Option<Located<String>>,
}

/// `spec.clusters[].network`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkSpec {
    /// Pod CIDRs.
    #[serde(default)]
    pub pods: Vec<Located<String>>,
    /// Service CIDRs.
    #[serde(default)]
    pub services: Vec<Located<String>>,
}

/// Kubernetes Service type of the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum ServiceType {
    /// A cloud or MetalLB load balancer.
    LoadBalancer,
    /// A port on every node (30000-32767).
    NodePort,
    /// Reachable inside a routed network only.
    #[serde(rename = "ClusterIP")]
    ClusterIp,
}

impl ServiceType {
    /// The name Kubernetes uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoadBalancer => "LoadBalancer",
            Self::NodePort => "NodePort",
            Self::ClusterIp => "ClusterIP",
        }
    }
}

/// `spec.clusters[].gateway`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewaySpec {
    /// [true] when the block is present.
    #[serde(default)]
    pub enabled: Option<Located<bool>>,
    /// `LoadBalancer`, `NodePort` or `ClusterIP` [LoadBalancer].
    #[serde(default)]
    pub service_type: Option<Located<ServiceType>>,
    /// IPs or DNS names other clusters dial.
    #[serde(default)]
    pub addresses: Vec<Located<String>>,
    /// Gateway port [4143].
    #[serde(default)]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<Located<i64>>,
    /// NodePort of the gateway port (NodePort only, 30000-32767).
    #[serde(default)]
    #[schemars(range(min = 30000, max = 32767))]
    pub node_port: Option<Located<i64>>,
    /// The liveness probe the linking clusters run against this gateway.
    #[serde(default)]
    pub probe: Option<Located<ProbeSpec>>,
}

/// `spec.clusters[].gateway.probe`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProbeSpec {
    /// HTTP path [/ready].
    #[serde(default)]
    pub path: Option<Located<String>>,
    /// Probe port, the gateway proxy's admin port [4191].
    #[serde(default)]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<Located<i64>>,
    /// NodePort of the probe port (NodePort only).
    #[serde(default)]
    #[schemars(range(min = 30000, max = 32767))]
    pub node_port: Option<Located<i64>>,
    /// Probe interval, a Go duration in whole seconds [3s].
    #[serde(default)]
    pub period: Option<Located<String>>,
}

/// How a link reaches the target's services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum LinkMode {
    /// Through the target's multicluster gateway (hierarchical).
    #[serde(rename = "gateway")]
    Gateway,
    /// Pod to pod over a flat network.
    #[serde(rename = "remote-discovery")]
    RemoteDiscovery,
}

impl LinkMode {
    /// The fleet-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::RemoteDiscovery => "remote-discovery",
        }
    }
}

/// One entry of `spec.links`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LinkSpec {
    /// The cluster that mirrors services (it runs the link's controller).
    pub source: Located<String>,
    /// The cluster whose services are mirrored.
    pub target: Located<String>,
    /// `gateway` or `remote-discovery` [gateway].
    #[serde(default)]
    pub mode: Option<Located<LinkMode>>,
    /// Label query of services mirrored through the gateway [mirror.linkerd.io/exported=true].
    #[serde(default)]
    pub selector: Option<Located<String>>,
    /// Label query of services mirrored pod to pod [mirror.linkerd.io/exported=remote-discovery].
    #[serde(default)]
    pub remote_discovery_selector: Option<Located<String>>,
    /// Label query of federated members [mirror.linkerd.io/federated=member].
    #[serde(default)]
    pub federated_service_selector: Option<Located<String>>,
}

/// `spec.topology`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TopologySpec {
    /// Every other cluster links to the hub.
    #[serde(default)]
    pub hub_and_spoke: Option<HubAndSpokeSpec>,
    /// Every pair of clusters, both ways.
    #[serde(default)]
    pub full_mesh: Option<Located<bool>>,
}

/// `spec.topology.hubAndSpoke`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HubAndSpokeSpec {
    /// Name of the hub cluster.
    pub hub: Located<String>,
    /// Mode of the generated links [gateway].
    #[serde(default)]
    pub mode: Option<Located<LinkMode>>,
}
