//! `meshfleet import`: what a running Linkerd mesh is, read from its clusters.
//!
//! Every named context is read at once, read-only ([`read_all`]): the control plane
//! (namespace, version, domains, networks, the anchors in use, the issuer), the
//! multicluster gateway, every Link with what its credentials say about its target,
//! whether it is served by a legacy controller, the GitOps engine ([`engine`]) and Vault
//! store that run there, and the pod and service networks ([`networks`]). [`compose`] then turns the readings into a fleet file
//! ([`meshfleet_fleet::draft::FleetDraft`]) and a report of what it guessed and where the
//! clusters disagree; it is a pure function, so its rules are tested without clusters.
//!
//! Secrets: a Link's credentials Secret is read only to learn which cluster it points at
//! (the kubeconfig's `server` and the UID of the ServiceAccount its token was issued
//! for, from the token's claims; the token is not verified, only read). The token never
//! leaves this module, and no Secret value reaches the fleet file or a message.

pub mod compose;
pub mod engine;
pub mod networks;
mod report;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use secrecy::{ExposeSecret as _, SecretString};

use crate::cluster::{Kubeconfigs, ReadError};
use crate::trust::{self, ClusterAnchors};
use meshfleet_fleet::defaults::{GATEWAY_NAME, MULTICLUSTER_NAMESPACE};
use meshfleet_render::resources::{Link, LinkSpec};

pub use compose::{Adoption, ImportFinding, Severity, compose};

/// Label of the control-plane namespace.
const CONTROL_PLANE_LABEL: &str = "linkerd.io/is-control-plane=true";
/// The control-plane Deployment whose labels carry the version.
const DESTINATION: &str = "linkerd-destination";
/// The issuer Secret and cert-manager Certificate.
const ISSUER: &str = "linkerd-identity-issuer";

/// One cluster as read.
#[derive(Debug, Clone, Default)]
pub struct ClusterReading {
    /// The kubeconfig context.
    pub context: String,
    /// The API server address of the context in the user's kubeconfig.
    pub server: Option<String>,
    /// The control plane; `None` when no namespace is labelled as one.
    pub control_plane: Option<ControlPlane>,
    /// The multicluster gateway Service, when there is one.
    pub gateway: Option<GatewayReading>,
    /// Every Link in the multicluster namespace.
    pub links: Vec<LinkReading>,
    /// UID to name of the ServiceAccounts in the multicluster namespace (remote-access
    /// accounts other clusters' Links use).
    pub accounts: BTreeMap<String, String>,
    /// The GitOps engines that run there ([`engine`]).
    pub engines: Vec<engine::EngineReading>,
    /// The pod and service networks, as far as the cluster tells them ([`networks`]).
    pub network: networks::NetworkReading,
    /// The Vault store External Secrets uses, when there is one.
    pub vault: Option<VaultReading>,
    /// `meshfleet.io/fleet` found on a Link, when meshfleet rendered it.
    pub fleet_label: Option<String>,
    /// The bundle version of the installed Gateway API CRDs.
    pub gateway_api: Option<String>,
}

/// The control plane as read.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    /// Its namespace.
    pub namespace: String,
    /// The chart version (`2025.4.4`), or why it is not known.
    pub version: Result<String, String>,
    /// `identityTrustDomain` of `linkerd-config`.
    pub trust_domain: Option<String>,
    /// `clusterDomain`.
    pub cluster_domain: Option<String>,
    /// `clusterNetworks`, split.
    pub cluster_networks: Option<Vec<String>>,
    /// Both anchor bundles.
    pub anchors: ClusterAnchors,
    /// The text of the bundle the proxies use (public certificates).
    pub anchors_pem: Option<String>,
    /// How the issuer is made.
    pub issuer: IssuerReading,
    /// Whether `linkerd-viz` runs.
    pub viz: bool,
}

/// How the identity issuer is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuerReading {
    /// A cert-manager Certificate `linkerd-identity-issuer`.
    CertManager,
    /// A Secret `linkerd-identity-issuer` that nothing renews.
    StaticSecret,
    /// Neither.
    Missing,
}

/// The gateway Service `linkerd-gateway`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayReading {
    /// `spec.type`.
    pub service_type: String,
    /// Port `mc-gateway` and its NodePort.
    pub port: Option<i32>,
    /// NodePort of `mc-gateway`.
    pub node_port: Option<i32>,
    /// Port `mc-probe`.
    pub probe_port: Option<i32>,
    /// NodePort of `mc-probe`.
    pub probe_node_port: Option<i32>,
    /// `mirror.linkerd.io/probe-path`.
    pub probe_path: Option<String>,
    /// `mirror.linkerd.io/probe-period` (seconds, as the chart writes it).
    pub probe_period: Option<String>,
    /// Load-balancer ingress addresses.
    pub ingress: Vec<String>,
}

/// One Link as read.
#[derive(Debug, Clone)]
pub struct LinkReading {
    /// Its name.
    pub name: String,
    /// Its spec.
    pub spec: LinkSpec,
    /// Whether a legacy controller (`linkerd multicluster link`) serves it.
    pub legacy: bool,
    /// The kubeconfig's `server` in its credentials Secret.
    pub target_server: Option<String>,
    /// The UID of the ServiceAccount its token was issued for.
    pub target_account: Option<String>,
    /// Why the credentials could not be read, when they could not.
    pub credentials_problem: Option<String>,
}

/// A Vault `ClusterSecretStore`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultReading {
    /// The store's name.
    pub store: String,
    /// `server`.
    pub server: String,
    /// `path` (the KV mount).
    pub mount: String,
    /// `auth.kubernetes.mountPath`.
    pub auth_mount: Option<String>,
    /// `auth.kubernetes.role`.
    pub role: Option<String>,
    /// The prefix of the credentials' keys (`<path>/credentials/...`), when an
    /// ExternalSecret for a Link's credentials was found.
    pub prefix: Option<String>,
}

/// Read every context at once; each result is in the order given.
pub async fn read_all(
    kubeconfigs: &Kubeconfigs,
    contexts: &[String],
    timeout: Duration,
) -> Vec<Result<ClusterReading, ReadError>> {
    let handles: Vec<_> = contexts
        .iter()
        .map(|context| {
            let kubeconfigs = kubeconfigs.clone();
            let context = context.clone();
            tokio::spawn(async move {
                let client = kubeconfigs.client(&context, &context).await?;
                let server = kubeconfigs.server(&context);
                tokio::time::timeout(timeout, read_cluster(client, context, server))
                    .await
                    .map_err(|_| ReadError::TimedOut(timeout))?
            })
        })
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(
            handle
                .await
                .unwrap_or_else(|e| Err(ReadError::Internal(e.to_string()))),
        );
    }
    out
}

fn refused(action: &str) -> impl Fn(kube::Error) -> ReadError + '_ {
    move |e| ReadError::from_kube(action, &e)
}

async fn read_cluster(
    client: kube::Client,
    context: String,
    server: Option<String>,
) -> Result<ClusterReading, ReadError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let control = namespaces
        .list(&ListParams::default().labels(CONTROL_PLANE_LABEL))
        .await
        .map_err(refused("list Namespaces"))?;
    let control_ns = control.items.first().and_then(|n| n.metadata.name.clone());
    let viz = namespaces
        .get_opt(meshfleet_fleet::defaults::VIZ_NAMESPACE)
        .await
        .map_err(refused("read Namespace `linkerd-viz`"))?
        .is_some();
    let control_plane = match control_ns {
        Some(ns) => Some(read_control_plane(&client, ns, viz).await?),
        None => None,
    };
    let crds = read_crds(&client).await?;
    let engines = engine::read(&client).await?;
    let network = networks::read(&client).await?;
    let (links, fleet_label) = read_links(&client).await?;
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), MULTICLUSTER_NAMESPACE)
        .list(&ListParams::default())
        .await
        .map_err(refused("list ServiceAccounts in `linkerd-multicluster`"))?
        .items
        .into_iter()
        .filter_map(|sa| Some((sa.metadata.uid?, sa.metadata.name?)))
        .collect();
    let gateway = Api::<Service>::namespaced(client.clone(), MULTICLUSTER_NAMESPACE)
        .get_opt(GATEWAY_NAME)
        .await
        .map_err(refused("read Service `linkerd-multicluster/linkerd-gateway`"))?
        .map(|s| gateway_reading(&s));
    let vault = if crds.external_secrets {
        read_vault(&client, &links).await?
    } else {
        None
    };
    Ok(ClusterReading {
        context,
        server,
        control_plane,
        gateway,
        links,
        accounts,
        engines,
        network,
        vault,
        fleet_label,
        gateway_api: crds.gateway_api,
    })
}

async fn read_control_plane(
    client: &kube::Client,
    namespace: String,
    viz: bool,
) -> Result<ControlPlane, ReadError> {
    let anchors = trust::read_anchors(client, &namespace, Duration::from_secs(3600)).await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let values: serde_json::Value = config_maps
        .get_opt(trust::LINKERD_CONFIG)
        .await
        .map_err(refused("read ConfigMap `linkerd-config`"))?
        .and_then(|cm| cm.data?.get(trust::LINKERD_CONFIG_KEY).cloned())
        .and_then(|v| serde_saphyr::from_str(&v).ok())
        .unwrap_or_default();
    let text = |key: &str| {
        values
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .filter(|s| !s.is_empty())
    };
    let anchors_pem = config_maps
        .get_opt(trust::TRUST_ROOTS)
        .await
        .map_err(refused("read ConfigMap `linkerd-identity-trust-roots`"))?
        .and_then(|cm| cm.data?.get(trust::TRUST_ROOTS_KEY).cloned());
    let destination = Api::<Deployment>::namespaced(client.clone(), &namespace)
        .get_opt(DESTINATION)
        .await
        .map_err(refused("read Deployment `linkerd-destination`"))?;
    let labels = destination.and_then(|d| d.metadata.labels).unwrap_or_default();
    let version = chart_version(
        labels.get("helm.sh/chart").map(String::as_str),
        labels
            .get("app.kubernetes.io/version")
            .map(String::as_str)
            .or(text("linkerdVersion").as_deref()),
    );
    let certificates = ApiResource {
        group: "cert-manager.io".into(),
        version: "v1".into(),
        api_version: "cert-manager.io/v1".into(),
        kind: "Certificate".into(),
        plural: "certificates".into(),
    };
    let certificate = Api::<DynamicObject>::namespaced_with(client.clone(), &namespace, &certificates)
        .get_opt(ISSUER)
        .await
        .ok()
        .flatten();
    let secret = Api::<Secret>::namespaced(client.clone(), &namespace)
        .get_metadata_opt(ISSUER)
        .await
        .map_err(refused(
            "read Secret `linkerd-identity-issuer` (its metadata only)",
        ))?;
    let issuer = match (certificate, secret) {
        (Some(_), _) => IssuerReading::CertManager,
        (None, Some(_)) => IssuerReading::StaticSecret,
        (None, None) => IssuerReading::Missing,
    };
    Ok(ControlPlane {
        namespace,
        version,
        trust_domain: text("identityTrustDomain"),
        cluster_domain: text("clusterDomain"),
        cluster_networks: text("clusterNetworks").map(|n| {
            n.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        }),
        anchors,
        anchors_pem,
        issuer,
        viz,
    })
}

/// The chart version from a `helm.sh/chart` label (`linkerd-control-plane-2025.4.4`),
/// else from an edge tag (`edge-25.4.4` is chart `2025.4.4`).
pub fn chart_version(chart_label: Option<&str>, tag: Option<&str>) -> Result<String, String> {
    if let Some(version) = chart_label.and_then(|c| c.strip_prefix("linkerd-control-plane-")) {
        return Ok(version.to_string());
    }
    match tag {
        Some(tag) => match tag
            .strip_prefix("edge-")
            .map(|v| v.splitn(3, '.').collect::<Vec<_>>())
        {
            Some(parts)
                if parts.len() == 3
                    && parts[0].len() == 2
                    && parts.iter().all(|p| p.parse::<u32>().is_ok()) =>
            {
                Ok(format!("20{}.{}.{}", parts[0], parts[1], parts[2]))
            }
            _ => Err(format!(
                "the control plane runs `{tag}`, which is not an edge release"
            )),
        },
        None => Err("Deployment `linkerd-destination` carries no version label".into()),
    }
}

struct Crds {
    external_secrets: bool,
    gateway_api: Option<String>,
}

async fn read_crds(client: &kube::Client) -> Result<Crds, ReadError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let exists = |name: &'static str| {
        let api = api.clone();
        async move {
            api.get_metadata_opt(name)
                .await
                .map_err(|e| ReadError::from_kube("read CustomResourceDefinitions", &e))
        }
    };
    let external_secrets = exists("clustersecretstores.external-secrets.io").await?.is_some();
    let gateway_api = exists("httproutes.gateway.networking.k8s.io")
        .await?
        .and_then(|crd| {
            crd.metadata
                .annotations?
                .get("gateway.networking.k8s.io/bundle-version")
                .cloned()
        });
    Ok(Crds {
        external_secrets,
        gateway_api,
    })
}

async fn read_links(client: &kube::Client) -> Result<(Vec<LinkReading>, Option<String>), ReadError> {
    let links = match Api::<Link>::namespaced(client.clone(), MULTICLUSTER_NAMESPACE)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => list.items,
        // No Link CRD: no multicluster extension, so no links.
        Err(kube::Error::Api(e)) if e.code == 404 => Vec::new(),
        Err(e) => return Err(ReadError::from_kube("list Links in `linkerd-multicluster`", &e)),
    };
    // The same reading of what `linkerd multicluster link` left as `migrate` makes.
    let legacy = crate::migrate::legacy_names(client).await?;
    let secrets = Api::<Secret>::namespaced(client.clone(), MULTICLUSTER_NAMESPACE);
    let mut fleet_label = None;
    let mut out = Vec::new();
    for link in links {
        let name = link.metadata.name.clone().unwrap_or_default();
        if fleet_label.is_none() {
            fleet_label = link
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(meshfleet_render::FLEET_LABEL).cloned());
        }
        let legacy = legacy.contains_key(&name);
        let (target_server, target_account, credentials_problem) =
            match secrets.get_opt(&link.spec.cluster_credentials_secret).await {
                Ok(Some(secret)) => credentials_target(&secret),
                Ok(None) => (
                    None,
                    None,
                    Some(format!(
                        "Secret `{}` not found",
                        link.spec.cluster_credentials_secret
                    )),
                ),
                Err(e) => (
                    None,
                    None,
                    Some(ReadError::from_kube("read the credentials Secret", &e).to_string()),
                ),
            };
        out.push(LinkReading {
            name,
            spec: link.spec,
            legacy,
            target_server,
            target_account,
            credentials_problem,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((out, fleet_label))
}

/// The target a credentials Secret points at: its kubeconfig's `server` and the
/// ServiceAccount UID in its token's claims. Nothing of the token is kept.
fn credentials_target(secret: &Secret) -> (Option<String>, Option<String>, Option<String>) {
    let Some(bytes) = secret.data.as_ref().and_then(|d| d.get("kubeconfig")) else {
        return (None, None, Some("its Secret has no `kubeconfig` key".into()));
    };
    let text = SecretString::from(String::from_utf8_lossy(&bytes.0).into_owned());
    let report = crate::check::access::inspect(&text, None);
    let account = report.credentials.as_ref().and_then(|c| account_uid(c.token()));
    let problem = report.credentials.is_none().then(|| report.problems.join("; "));
    (report.server, account, problem)
}

/// The ServiceAccount UID a Kubernetes token was issued for (bound tokens:
/// `kubernetes.io.serviceaccount.uid`; legacy Secret tokens:
/// `kubernetes.io/serviceaccount/service-account.uid`).
fn account_uid(token: &SecretString) -> Option<String> {
    let payload = token.expose_secret().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims
        .pointer("/kubernetes.io/serviceaccount/uid")
        .or_else(|| claims.get("kubernetes.io/serviceaccount/service-account.uid"))
        .and_then(|u| u.as_str())
        .map(str::to_string)
}

fn gateway_reading(service: &Service) -> GatewayReading {
    let spec = service.spec.clone().unwrap_or_default();
    let ports = spec.ports.unwrap_or_default();
    let port = |name: &str| ports.iter().find(|p| p.name.as_deref() == Some(name));
    let annotations = service.metadata.annotations.clone().unwrap_or_default();
    GatewayReading {
        service_type: spec.type_.unwrap_or_else(|| "ClusterIP".into()),
        port: port("mc-gateway").map(|p| p.port),
        node_port: port("mc-gateway").and_then(|p| p.node_port),
        probe_port: port("mc-probe").map(|p| p.port),
        probe_node_port: port("mc-probe").and_then(|p| p.node_port),
        probe_path: annotations.get("mirror.linkerd.io/probe-path").cloned(),
        probe_period: annotations.get("mirror.linkerd.io/probe-period").cloned(),
        ingress: service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
            .collect(),
    }
}

async fn read_vault(client: &kube::Client, links: &[LinkReading]) -> Result<Option<VaultReading>, ReadError> {
    let resource = |kind: &str, plural: &str| ApiResource {
        group: "external-secrets.io".into(),
        version: "v1".into(),
        api_version: "external-secrets.io/v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let stores = Api::<DynamicObject>::all_with(
        client.clone(),
        &resource("ClusterSecretStore", "clustersecretstores"),
    )
    .list(&ListParams::default())
    .await
    .map_err(refused("list ClusterSecretStores"))?;
    let Some((store, vault)) = stores.items.iter().find_map(|s| {
        Some((
            s.metadata.name.clone()?,
            s.data.pointer("/spec/provider/vault")?.clone(),
        ))
    }) else {
        return Ok(None);
    };
    let field = |pointer: &str| {
        vault
            .pointer(pointer)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let external_secrets = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        MULTICLUSTER_NAMESPACE,
        &resource("ExternalSecret", "externalsecrets"),
    );
    let mut prefix = None;
    for link in links {
        if let Ok(Some(es)) = external_secrets
            .get_opt(&link.spec.cluster_credentials_secret)
            .await
        {
            prefix = es
                .data
                .pointer("/spec/data/0/remoteRef/key")
                .and_then(|k| k.as_str())
                .and_then(|k| k.split_once("/credentials/"))
                .map(|(p, _)| p.to_string());
            if prefix.is_some() {
                break;
            }
        }
    }
    Ok(Some(VaultReading {
        store,
        server: field("/server").unwrap_or_default(),
        mount: field("/path").unwrap_or_default(),
        auth_mount: field("/auth/kubernetes/mountPath"),
        role: field("/auth/kubernetes/role"),
        prefix,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_versions_come_from_the_chart_label_or_the_edge_tag() {
        assert_eq!(
            chart_version(Some("linkerd-control-plane-2025.4.4"), None),
            Ok("2025.4.4".into())
        );
        assert_eq!(chart_version(None, Some("edge-26.8.3")), Ok("2026.8.3".into()));
        assert!(chart_version(None, Some("stable-2.14.10")).is_err());
        assert!(chart_version(None, None).is_err());
    }

    #[test]
    fn the_account_of_a_token_is_read_from_its_claims() {
        let claims = br#"{"kubernetes.io":{"namespace":"linkerd-multicluster","serviceaccount":{"name":"x","uid":"u-1"}}}"#;
        let token = format!(
            "e30.{}.sig",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims)
        );
        assert_eq!(account_uid(&SecretString::from(token)), Some("u-1".into()));
        let legacy = br#"{"kubernetes.io/serviceaccount/service-account.uid":"u-2"}"#;
        let token = format!(
            "e30.{}.sig",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(legacy)
        );
        assert_eq!(account_uid(&SecretString::from(token)), Some("u-2".into()));
        assert_eq!(account_uid(&SecretString::from("not-a-jwt".to_string())), None);
    }
}
