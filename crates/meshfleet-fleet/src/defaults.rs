//! The defaults of the fleet file (the bracketed values of PRODUCT.md section 2), in one
//! place so that validation, planning and the JSON Schema agree.

/// `spec.linkerd.chartRepository`.
pub const CHART_REPOSITORY: &str = "https://helm.linkerd.io/edge";
/// `spec.linkerd.namespace`.
pub const LINKERD_NAMESPACE: &str = "linkerd";
/// `spec.linkerd.trustDomain` and `clusterDomain`.
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// Linkerd's default `clusterNetworks`.
pub const CLUSTER_NETWORKS: [&str; 5] = [
    "10.0.0.0/8",
    "100.64.0.0/10",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fd00::/8",
];
/// Namespace of the multicluster extension (fixed: `link-gen` and the CLI assume it).
pub const MULTICLUSTER_NAMESPACE: &str = "linkerd-multicluster";
/// Namespace of linkerd-viz.
pub const VIZ_NAMESPACE: &str = "linkerd-viz";
/// `gitops.repository.branch`.
pub const BRANCH: &str = "main";
/// `gitops.repository.path`.
pub const REPOSITORY_PATH: &str = "gitops";
/// `gitops.argocd.namespace`.
pub const ARGOCD_NAMESPACE: &str = "argocd";
/// `gitops.argocd.project`.
pub const ARGOCD_PROJECT: &str = "default";
/// `secrets.vault.auth.kubernetes.mountPath`.
pub const VAULT_AUTH_MOUNT: &str = "kubernetes";
/// `secrets.vault.auth.kubernetes.role`.
pub const VAULT_AUTH_ROLE: &str = "external-secrets";
/// Gateway Service name and ServiceAccount (chart default `gateway.name`).
pub const GATEWAY_NAME: &str = "linkerd-gateway";
/// `gateway.port`.
pub const GATEWAY_PORT: u16 = 4143;
/// `gateway.probe.path`.
pub const PROBE_PATH: &str = "/ready";
/// `gateway.probe.port`.
pub const PROBE_PORT: u16 = 4191;
/// `gateway.probe.period`.
pub const PROBE_PERIOD: &str = "3s";
/// `links[].selector`.
pub const SELECTOR: &str = "mirror.linkerd.io/exported=true";
/// `links[].remoteDiscoverySelector`.
pub const REMOTE_DISCOVERY_SELECTOR: &str = "mirror.linkerd.io/exported=remote-discovery";
/// `links[].federatedServiceSelector`.
pub const FEDERATED_SERVICE_SELECTOR: &str = "mirror.linkerd.io/federated=member";
/// Where `certs init` keeps private keys, relative to the fleet folder.
pub const KEY_DIR: &str = ".meshfleet/keys";
