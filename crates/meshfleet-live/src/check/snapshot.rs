//! Phase 1: read what one cluster holds, once, concurrently, under one deadline.
//!
//! A snapshot is everything the checks need from one cluster, in a FIXED number of
//! requests whatever the number of links or the size of the cluster's objects: one list
//! each of ConfigMaps of the control plane, credentials Secrets (by type) of the two
//! namespaces that hold them, Endpoints of the multicluster namespace, Namespaces,
//! Links, controller Deployments (current and legacy) and Services, plus the version
//! and the issuer. Each read keeps its own outcome, so a forbidden read fails the checks
//! that need it and nothing else.
//!
//! Secrets are reduced on arrival to what the checks need: the issuer's private key and
//! every other data value are zeroized and dropped, and a link's kubeconfig (it holds a
//! token) is kept as a [`SecretString`].

use crate::kube_failure::KubeFailure;
use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Namespace, Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use secrecy::SecretString;
use zeroize::Zeroize as _;

use super::{CheckId, CheckResult};
use crate::cluster::{ClusterError, Kubeconfigs};
use meshfleet_fleet::defaults;
use meshfleet_plan::{ClusterPlan, FleetPlan};
use meshfleet_render::resources::Link;
use meshfleet_render::stages::{self, ISSUER_SECRET};

// The control plane's ConfigMaps, named where `trust` reads the same anchors.
pub(super) use crate::trust::{LINKERD_CONFIG, TRUST_ROOTS};

/// The label of the destination controller's pods.
pub(super) const DESTINATION_SELECTOR: &str = "linkerd.io/control-plane-component=destination";

/// Labels of the controllers `linkerd-multicluster` renders (`controller`) and of those
/// the deprecated `linkerd multicluster link` made (`service-mirror`).
const CONTROLLER_SELECTOR: &str = "component in (controller,service-mirror)";
/// Page size of lists.
const PAGE: u32 = 500;

/// A read that failed (anything but "not found", which is an absent object).
#[derive(Debug, Clone)]
pub struct ReadFailure {
    /// What was asked for, e.g. "read Secret `linkerd/linkerd-identity-issuer`".
    pub action: String,
    /// HTTP status of the server's refusal, if it answered.
    pub code: Option<u16>,
    /// The server's or the client's message.
    pub message: String,
}

impl std::fmt::Display for ReadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(code) => write!(f, "cannot {}: {} (HTTP {code})", self.action, self.message),
            None => write!(f, "cannot {}: {}", self.action, self.message),
        }
    }
}

impl ReadFailure {
    fn new(action: impl Into<String>, error: &kube::Error) -> Self {
        let (code, message) = match KubeFailure::from_kube(error) {
            KubeFailure::Refused { code, message, .. } => (Some(code), message),
            other => (other.status(), other.to_string()),
        };
        Self {
            action: action.into(),
            code,
            message,
        }
    }

    /// A check result for a read that failed.
    pub(super) fn to_result(&self, id: CheckId, context: &str) -> CheckResult {
        let hint = if self.code == Some(403) {
            format!(
                "the user of context `{context}` may not do this; use a context with read access to the cluster"
            )
        } else {
            "run `meshfleet check` again; if it persists, raise `--timeout`".to_string()
        };
        CheckResult::error(id, self.to_string()).hint(hint)
    }
}

/// One read's outcome.
pub(super) type Read<T> = Result<T, ReadFailure>;

/// A link's credentials Secret, reduced to what the checks read.
#[derive(Debug)]
pub(super) struct CredentialsSecret {
    /// `type`.
    pub secret_type: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// The `kubeconfig` data key (it holds a token).
    pub kubeconfig: Option<SecretString>,
    /// When it last changed: the newest time of its managed fields, else its creation.
    pub changed: Option<Time>,
    /// When it was created.
    pub created: Option<Time>,
}

/// The identity issuer Secret, without its private key.
#[derive(Debug)]
pub(super) struct IssuerSecret {
    /// `type`.
    pub secret_type: Option<String>,
    /// `tls.crt`: the issuer certificate (and intermediates).
    pub tls_crt: Option<String>,
    /// `ca.crt`: the anchor, as `linkerd check` reads it.
    pub ca_crt: Option<String>,
    /// Whether `tls.key` is there (its value is dropped on arrival).
    pub has_key: bool,
}

/// A Link as the cluster holds it: raw (for the field-by-field comparison, which must
/// also see fields meshfleet's type does not know) and typed.
#[derive(Debug)]
pub(super) struct LiveLink {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec` exactly as served.
    pub spec: serde_json::Value,
    /// The typed Link, when it decodes.
    pub typed: Option<Link>,
}

/// A Flux Kustomization of the fleet that decrypts SOPS files, reduced to its Ready
/// condition.
#[derive(Debug)]
pub(super) struct FluxKustomization {
    /// `status` of the Ready condition (`True`, `False`, `Unknown`), if any.
    pub ready: Option<String>,
    /// Its `reason`.
    pub reason: String,
    /// Its `message`: Flux's error (it names files and keys, never a value).
    pub message: String,
}

/// Everything read from a reachable cluster.
#[derive(Debug)]
pub(super) struct ClusterState {
    /// `gitVersion` of the API server.
    pub version: String,
    /// The kubeconfig context it was read through.
    pub context: String,
    /// `linkerd-config` in the control-plane namespace.
    pub linkerd_config: Read<Option<ConfigMap>>,
    /// `linkerd-identity-trust-roots`.
    pub trust_roots: Read<Option<ConfigMap>>,
    /// `linkerd-identity-issuer`.
    pub issuer: Read<Option<IssuerSecret>>,
    /// Every namespace.
    pub namespaces: Read<Vec<Namespace>>,
    /// Every Link, in all namespaces; `None` when the Link CRD is not served.
    pub links: Read<Option<Vec<LiveLink>>>,
    /// `cluster-credentials-<target>` by (namespace, name), for every outgoing link.
    pub credentials: BTreeMap<(String, String), Read<Option<CredentialsSecret>>>,
    /// Deployments labelled `component` `controller` or `service-mirror`, all namespaces.
    pub controllers: Read<Vec<Deployment>>,
    /// Endpoints `probe-<target>` by name, for every outgoing gateway-mode link.
    pub probe_endpoints: BTreeMap<String, Read<Option<Endpoints>>>,
    /// Every Service, all namespaces.
    pub services: Read<Vec<Service>>,
    /// The pods of the multicluster namespace and the destination controller's pods:
    /// when they started tells which credentials they run with.
    pub pods: Read<Vec<Pod>>,
    /// With SOPS under Flux: the Kustomizations that decrypt, by name (`None`: absent).
    /// Empty for other fleets.
    pub decrypting: BTreeMap<String, Read<Option<FluxKustomization>>>,
}

impl ClusterState {
    /// The Service `namespace/name`, if the Services could be read and it exists.
    pub(super) fn service(&self, namespace: &str, name: &str) -> Option<&Service> {
        self.services.as_ref().ok()?.iter().find(|s| {
            s.metadata.namespace.as_deref() == Some(namespace) && s.metadata.name.as_deref() == Some(name)
        })
    }

    /// Whether the namespace exists (`None` when namespaces could not be read).
    pub(super) fn has_namespace(&self, name: &str) -> Option<bool> {
        let namespaces = self.namespaces.as_ref().ok()?;
        Some(
            namespaces
                .iter()
                .any(|n| n.metadata.name.as_deref() == Some(name)),
        )
    }
}

/// Why a cluster could not be read at all.
#[derive(Debug)]
pub(super) enum Unreachable {
    /// The kubeconfig has no such context.
    UnknownContext {
        /// The context the fleet names.
        context: String,
        /// Those the kubeconfig has.
        available: Vec<String>,
    },
    /// No client could be built for the context.
    Client(String),
    /// The API server did not answer, or refused `/version`.
    NoAnswer(KubeFailure),
    /// The deadline passed.
    TimedOut(Duration),
}

impl Unreachable {
    /// The `cluster-reachable` failure.
    pub(super) fn to_result(&self, cluster: &ClusterPlan, server: Option<&str>) -> CheckResult {
        let at = server.map(|s| format!(" `{s}`")).unwrap_or_default();
        match self {
            Self::UnknownContext { context, available } => CheckResult::error(
                CheckId::ClusterReachable,
                format!("the kubeconfig has no context `{context}`"),
            )
            .hint(format!(
                "set `context:` of cluster `{}` in the fleet file to one of {}, or pass `--kubeconfig`",
                cluster.name,
                if available.is_empty() {
                    "your contexts (the kubeconfig has none)".to_string()
                } else {
                    available
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )),
            Self::Client(reason) => CheckResult::error(
                CheckId::ClusterReachable,
                format!("no client for context `{}`", cluster.context),
            )
            .details([reason.clone()])
            .hint(format!(
                "fix the credentials of context `{}` in your kubeconfig",
                cluster.context
            )),
            Self::NoAnswer(failure) => CheckResult::error(
                CheckId::ClusterReachable,
                format!(
                    "the API server{at} of context `{}` does not answer",
                    cluster.context
                ),
            )
            .details([failure.to_string()])
            .hint("is the cluster running, and reachable from this machine (VPN, firewall)?"),
            Self::TimedOut(timeout) => CheckResult::error(
                CheckId::ClusterReachable,
                format!(
                    "the API server{at} of context `{}` did not answer within {}",
                    cluster.context,
                    super::seconds(*timeout)
                ),
            )
            .hint("is the cluster running and reachable? on a slow link raise `--timeout`"),
        }
    }
}

/// A cluster reached, or why not.
#[derive(Debug)]
pub(super) enum Reach {
    /// Read.
    Reachable(Box<ClusterState>),
    /// Not read.
    Unreachable(Unreachable),
}

/// One cluster's snapshot.
#[derive(Debug)]
pub(super) struct Snapshot {
    /// The API server URL of the context, when the kubeconfig says.
    pub server: Option<String>,
    /// What was read.
    pub state: Reach,
}

impl Snapshot {
    /// The state, when the cluster was reached.
    pub(super) fn reachable(&self) -> Option<&ClusterState> {
        match &self.state {
            Reach::Reachable(state) => Some(state),
            Reach::Unreachable(_) => None,
        }
    }
}

/// Read one cluster under `timeout`.
pub(super) async fn read(
    plan: &FleetPlan,
    cluster: &ClusterPlan,
    kubeconfigs: &Kubeconfigs,
    timeout: Duration,
) -> Snapshot {
    // Shown in the report: without any credentials a URL may carry.
    let server = kubeconfigs
        .server(&cluster.context)
        .as_deref()
        .map(meshfleet_fleet::sensitive::url_without_credentials);
    let work = async {
        let client = kubeconfigs
            .client(&cluster.name, &cluster.context)
            .await
            .map_err(|e| match e {
                ClusterError::UnknownContext {
                    context, available, ..
                } => Unreachable::UnknownContext { context, available },
                other => Unreachable::Client(meshfleet_fleet::diagnostic::error_chain(&other)),
            })?;
        read_state(plan, cluster, &client)
            .await
            .map_err(Unreachable::NoAnswer)
    };
    let state = match tokio::time::timeout(timeout, work).await {
        Err(_) => Reach::Unreachable(Unreachable::TimedOut(timeout)),
        Ok(Err(why)) => Reach::Unreachable(why),
        Ok(Ok(state)) => Reach::Reachable(Box::new(state)),
    };
    Snapshot { server, state }
}

async fn read_state(
    plan: &FleetPlan,
    cluster: &ClusterPlan,
    client: &kube::Client,
) -> Result<ClusterState, KubeFailure> {
    let linkerd_ns = plan.linkerd.namespace.as_str();
    let mc_ns = defaults::MULTICLUSTER_NAMESPACE;
    let credentials_type = format!("type={}", stages::CREDENTIALS_SECRET_TYPE);
    let all = ListParams::default();
    // A fixed set of reads, whatever the number of links, on two lanes of sequential
    // requests: kube's client speaks HTTP/1.1, so every concurrent request would cost a
    // TLS handshake of its own, and handshakes, not reads, dominate the CPU of client and
    // server. Two keep-alive connections keep that low and the round trips few (about
    // seven on each lane); the clusters themselves are all read at once.
    let lane_a = async {
        // The version first: a server that does not answer fails here, at once.
        let version = client
            .apiserver_version()
            .await
            .map_err(|e| KubeFailure::from_kube(&e))?
            .git_version;
        let config_maps = list_all(
            &Api::<ConfigMap>::namespaced(client.clone(), linkerd_ns),
            all.clone(),
            &format!("list ConfigMaps in `{linkerd_ns}`"),
        )
        .await;
        let issuer = Api::<Secret>::namespaced(client.clone(), linkerd_ns)
            .get_opt(ISSUER_SECRET)
            .await
            .map(|s| s.map(issuer_from))
            .map_err(|e| ReadFailure::new(format!("read Secret `{linkerd_ns}/{ISSUER_SECRET}`"), &e));
        let mut credentials = Vec::new();
        for ns in [mc_ns, linkerd_ns] {
            let listed = list_all(
                &Api::<Secret>::namespaced(client.clone(), ns),
                all.clone().fields(&credentials_type),
                &format!("list link credentials Secrets in `{ns}`"),
            )
            .await;
            credentials.push((ns, listed));
        }
        Ok::<_, KubeFailure>((version, config_maps, issuer, credentials))
    };
    let lane_b = async {
        let namespaces = list_all(
            &Api::<Namespace>::all(client.clone()),
            all.clone(),
            "list Namespaces",
        )
        .await;
        let links = read_links(client).await;
        let controllers = list_all(
            &Api::<Deployment>::all(client.clone()),
            all.clone().labels(CONTROLLER_SELECTOR),
            "list controller Deployments",
        )
        .await;
        let services = list_all(&Api::<Service>::all(client.clone()), all.clone(), "list Services").await;
        let endpoints = list_all(
            &Api::<Endpoints>::namespaced(client.clone(), mc_ns),
            all.clone(),
            &format!("list Endpoints in `{mc_ns}`"),
        )
        .await;
        let mut pods = list_all(
            &Api::<Pod>::namespaced(client.clone(), mc_ns),
            all.clone(),
            &format!("list Pods in `{mc_ns}`"),
        )
        .await;
        let destination = list_all(
            &Api::<Pod>::namespaced(client.clone(), linkerd_ns),
            all.clone().labels(DESTINATION_SELECTOR),
            &format!("list destination Pods in `{linkerd_ns}`"),
        )
        .await;
        if let (Ok(pods), Ok(more)) = (&mut pods, destination) {
            pods.extend(more);
        }
        let decrypting = read_decrypting(plan, cluster, client).await;
        (
            namespaces,
            links,
            controllers,
            services,
            endpoints,
            pods,
            decrypting,
        )
    };
    let (lane_a, (namespaces, links, controllers, services, endpoints, pods, decrypting)) =
        tokio::join!(lane_a, lane_b);
    let (version, config_maps, issuer, listed_credentials) = lane_a?;

    let named = |list: &Read<Vec<ConfigMap>>, name: &str| -> Read<Option<ConfigMap>> {
        list.as_ref()
            .map(|items| {
                items
                    .iter()
                    .find(|c| c.metadata.name.as_deref() == Some(name))
                    .cloned()
            })
            .map_err(Clone::clone)
    };
    let mut credentials = BTreeMap::new();
    for (ns, listed) in listed_credentials {
        let mut listed = listed.map(|items| {
            items
                .into_iter()
                .filter_map(|s| Some((s.metadata.name.clone()?, s)))
                .collect::<BTreeMap<_, _>>()
        });
        for link in &cluster.outgoing {
            let name = link.credentials_secret();
            let read = match &mut listed {
                Err(failure) => Err(failure.clone()),
                Ok(by_name) => match by_name.remove(&name) {
                    Some(secret) => Ok(Some(credentials_from(secret))),
                    // Not of the credentials type, or absent: a read by name tells which.
                    None => Api::<Secret>::namespaced(client.clone(), ns)
                        .get_opt(&name)
                        .await
                        .map(|s| s.map(credentials_from))
                        .map_err(|e| ReadFailure::new(format!("read Secret `{ns}/{name}`"), &e)),
                },
            };
            credentials.insert((ns.to_string(), name), read);
        }
        // Credentials of links the fleet does not know are not kept: no token lingers.
        if let Ok(rest) = listed {
            for secret in rest.into_values() {
                drop(credentials_from(secret));
            }
        }
    }
    let probe_endpoints = cluster
        .outgoing
        .iter()
        .filter(|l| l.gateway.is_some())
        .map(|link| {
            let name = link.probe_service();
            let read = endpoints
                .as_ref()
                .map(|items| {
                    items
                        .iter()
                        .find(|e| e.metadata.name.as_deref() == Some(name.as_str()))
                        .cloned()
                })
                .map_err(Clone::clone);
            (name, read)
        })
        .collect();
    Ok(ClusterState {
        version,
        context: cluster.context.clone(),
        linkerd_config: named(&config_maps, LINKERD_CONFIG),
        trust_roots: named(&config_maps, TRUST_ROOTS),
        issuer,
        namespaces,
        links,
        credentials,
        controllers,
        probe_endpoints,
        services,
        pods,
        decrypting,
    })
}

/// The fleet's Flux Kustomizations that decrypt SOPS files (one list request; none for
/// a fleet without SOPS or not under Flux).
async fn read_decrypting(
    plan: &FleetPlan,
    cluster: &ClusterPlan,
    client: &kube::Client,
) -> BTreeMap<String, Read<Option<FluxKustomization>>> {
    let names = if plan.gitops.engine == meshfleet_fleet::model::Engine::Flux {
        meshfleet_render::flux::decrypting_kustomizations(plan, cluster)
    } else {
        Vec::new()
    };
    if names.is_empty() {
        return BTreeMap::new();
    }
    let resource = ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        "kustomize.toolkit.fluxcd.io",
        "v1",
        "Kustomization",
    ));
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), meshfleet_render::flux::FLUX_NAMESPACE, &resource);
    let listed = match list_all(
        &api,
        ListParams::default(),
        "list Flux Kustomizations in `flux-system`",
    )
    .await
    {
        // Flux is not installed: no Kustomization, reported as absent.
        Err(ReadFailure { code: Some(404), .. }) => Ok(Vec::new()),
        other => other,
    };
    names
        .into_iter()
        .map(|name| {
            let read = listed
                .as_ref()
                .map(|items| {
                    items
                        .iter()
                        .find(|k| k.metadata.name.as_deref() == Some(name.as_str()))
                        .map(flux_kustomization)
                })
                .map_err(Clone::clone);
            (name, read)
        })
        .collect()
}

fn flux_kustomization(object: &DynamicObject) -> FluxKustomization {
    let ready = object.data["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready");
    let text = |key: &str| {
        ready
            .and_then(|c| c[key].as_str())
            .unwrap_or_default()
            .to_string()
    };
    FluxKustomization {
        ready: ready.and_then(|c| c["status"].as_str()).map(str::to_string),
        reason: text("reason"),
        message: text("message"),
    }
}

/// Every object of a list, page by page.
async fn list_all<K>(api: &Api<K>, base: ListParams, action: &str) -> Read<Vec<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params = base.clone().limit(PAGE);
        if let Some(token) = &token {
            params = params.continue_token(token);
        }
        let page = api
            .list(&params)
            .await
            .map_err(|e| ReadFailure::new(action, &e))?;
        items.extend(page.items);
        match page.metadata.continue_ {
            Some(next) if !next.is_empty() => token = Some(next),
            _ => return Ok(items),
        }
    }
}

async fn read_links(client: &kube::Client) -> Read<Option<Vec<LiveLink>>> {
    let resource = ApiResource::erase::<Link>(&());
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    match list_all(&api, ListParams::default(), "list Links").await {
        Ok(objects) => Ok(Some(objects.into_iter().map(live_link).collect())),
        // The Link CRD is not installed: no Links, reported by `link-present`.
        Err(ReadFailure { code: Some(404), .. }) => Ok(None),
        Err(other) => Err(other),
    }
}

fn live_link(object: DynamicObject) -> LiveLink {
    let typed = serde_json::to_value(&object)
        .ok()
        .and_then(|v| serde_json::from_value::<Link>(v).ok());
    let DynamicObject {
        metadata, mut data, ..
    } = object;
    LiveLink {
        namespace: metadata.namespace.unwrap_or_default(),
        name: metadata.name.unwrap_or_default(),
        spec: data
            .get_mut("spec")
            .map(serde_json::Value::take)
            .unwrap_or_default(),
        typed,
    }
}

fn credentials_from(mut secret: Secret) -> CredentialsSecret {
    let mut data = secret.data.take().unwrap_or_default();
    let kubeconfig = data.remove("kubeconfig").map(|mut bytes| {
        let text = SecretString::from(String::from_utf8_lossy(&bytes.0).into_owned());
        bytes.0.zeroize();
        text
    });
    for (_, mut value) in data {
        value.0.zeroize();
    }
    let changed = crate::cluster::last_change(&secret.metadata);
    CredentialsSecret {
        changed,
        created: secret.metadata.creation_timestamp.clone(),
        secret_type: secret.type_,
        labels: secret.metadata.labels.unwrap_or_default(),
        annotations: secret.metadata.annotations.unwrap_or_default(),
        kubeconfig,
    }
}

fn issuer_from(mut secret: Secret) -> IssuerSecret {
    let mut data = secret.data.take().unwrap_or_default();
    let text = |data: &mut BTreeMap<String, k8s_openapi::ByteString>, key: &str| {
        data.remove(key)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
    };
    let tls_crt = text(&mut data, "tls.crt");
    let ca_crt = text(&mut data, "ca.crt");
    let has_key = data.contains_key("tls.key");
    for (_, mut value) in data {
        value.0.zeroize();
    }
    IssuerSecret {
        secret_type: secret.type_,
        tls_crt,
        ca_crt,
        has_key,
    }
}
