//! `trust rotate status`: where every cluster stands in a trust anchor rotation, and
//! what blocks the next step (`trust rotate next` refuses until nothing does).
//!
//! Per cluster, all at once, four things are read:
//!
//! - the bundle in `linkerd-identity-trust-roots` (what proxies use) and when it last
//!   changed (the newest `managedFields` time of the ConfigMap: Kubernetes keeps no
//!   other modification time);
//! - the issuer Secret `linkerd-identity-issuer`: which anchor of the rotation signed
//!   its `tls.crt`, and when it last changed;
//! - every meshed pod, and every pod of the control plane's namespace, with its creation
//!   time. A pod is meshed when its spec holds Linkerd's proxy in either place the
//!   injector puts it: a `linkerd-proxy` container, or a `linkerd-proxy` init container
//!   with `restartPolicy: Always` (a native sidecar: the default from edge-26 / 2.20
//!   with `proxy.nativeSidecar: true`, opt-in at 2.18 with the annotation
//!   `config.alpha.linkerd.io/proxy-enable-native-sidecar`);
//! - when the identity controller loaded the issuer in that Secret: it re-reads its
//!   mounted issuer folder when the kubelet updates it (a sync period plus a cache TTL
//!   after the Secret changed: a minute or more on a real node) and then records an
//!   `IssuerUpdated` Event on the Deployment `linkerd-identity` (linkerd2
//!   `pkg/identity/service.go`, `controller/cmd/identity/main.go`, the same at 2.18 and
//!   edge-26.8.3); a controller whose `identity` container started after the change
//!   read the new issuer at start and records nothing.
//!
//! The proxy injector copies the bundle into a pod's spec when the pod is created
//! (`LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS`), and a proxy asks for its certificate when
//! it starts and keeps it until it renews it (after about 70 % of its 24 h lifetime): so
//! "created after the bundle changed" is what proves a pod trusts the new anchor, and
//! "created after the identity controller loaded the new issuer" that it presents the
//! new chain. After the Secret changed is not enough: a pod created before the reload
//! got a certificate of the old chain. Creation, not `status.startTime`: a pod cannot
//! start before it is created, so this never calls a stale pod ready, and it does not
//! depend on when a kubelet got round to reporting. Times have one-second precision; a
//! pod created within the same second as the change counts as after it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, PodSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};
use serde::Serialize;

use crate::cluster::{Kubeconfigs, ReadError, for_each_cluster};
use crate::trust::{TRUST_ROOTS, TRUST_ROOTS_KEY};
use meshfleet_fleet::model::AnchorRotationPhase;
use meshfleet_plan::FleetPlan;
use meshfleet_plan::anchor_rotation::{AnchorRotation, short};
use meshfleet_render::stages::ISSUER_SECRET;

/// The container Linkerd's injector adds to a meshed pod (in `containers`, or in
/// `initContainers` with `restartPolicy: Always` as a native sidecar).
pub const PROXY_CONTAINER: &str = "linkerd-proxy";

/// The identity controller's Deployment: its `IssuerUpdated` Events name it.
pub const IDENTITY_DEPLOYMENT: &str = "linkerd-identity";

/// The identity controller's container in that Deployment's pods.
const IDENTITY_CONTAINER: &str = "identity";

/// The label Linkerd's chart gives each control-plane pod, and its value on the identity
/// controller's pods.
const COMPONENT_LABEL: (&str, &str) = ("linkerd.io/control-plane-component", "identity");

/// The reason of the Event the identity controller records after it reloaded its issuer.
pub const ISSUER_UPDATED: &str = "IssuerUpdated";

/// Where a pod's spec holds Linkerd's proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyPlacement {
    /// A `linkerd-proxy` container (the injector's layout before native sidecars).
    Container,
    /// A `linkerd-proxy` init container (a native sidecar, `restartPolicy: Always`).
    NativeSidecar,
}

/// Where `spec` holds Linkerd's proxy; `None` for a pod that is not meshed.
///
/// Every question "is this pod meshed" goes through here. An init container of that name
/// counts even without `restartPolicy: Always` (the injector always sets it): counting
/// one too many costs a restart, missing one costs an outage.
pub fn proxy_placement(spec: &PodSpec) -> Option<ProxyPlacement> {
    if spec.containers.iter().any(|c| c.name == PROXY_CONTAINER) {
        Some(ProxyPlacement::Container)
    } else if spec
        .init_containers
        .iter()
        .flatten()
        .any(|c| c.name == PROXY_CONTAINER)
    {
        Some(ProxyPlacement::NativeSidecar)
    } else {
        None
    }
}

/// Which anchor signed a cluster's issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignedBy {
    /// The rotation's `from`.
    From,
    /// The rotation's `to`.
    To,
    /// Another anchor.
    Other,
    /// No issuer Secret, or a `tls.crt` that does not parse.
    Unknown,
}

/// A pod that matters to the rotation.
#[derive(Debug, Clone, Serialize)]
pub struct PodState {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// What to restart: `deploy/NAME`, `statefulset/NAME`, `daemonset/NAME` or `pod/NAME`.
    pub workload: String,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// In the control plane's namespace.
    pub control_plane: bool,
    /// Holds Linkerd's proxy (a container or a native sidecar).
    pub meshed: bool,
    /// Where the proxy is (absent when not meshed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyPlacement>,
    /// Fingerprints of the bundle the injector wrote into the proxy's
    /// `LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS` (absent when it holds no literal bundle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_anchors: Option<BTreeSet<String>>,
    /// Injected by the CLI (`linkerd inject`, annotation `linkerd.io/created-by:
    /// linkerd/cli ...`): the bundle is in the workload's own pod template, so a restart
    /// brings the same bundle back.
    pub injected_by_cli: bool,
}

/// The proxy's trust-anchor variable in an injected pod spec.
const TRUST_ANCHORS_ENV: &str = "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS";

/// The annotation the injector (webhook or CLI) sets on every pod it injects.
const CREATED_BY: &str = "linkerd.io/created-by";

/// The fingerprints of the bundle in the proxy's `LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS`
/// (a literal value, as the injector writes it), or `None`.
fn proxy_anchors(spec: &PodSpec) -> Option<BTreeSet<String>> {
    let proxy = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == PROXY_CONTAINER)?;
    let pem = proxy
        .env
        .iter()
        .flatten()
        .find(|e| e.name == TRUST_ANCHORS_ENV)?
        .value
        .as_deref()?;
    let certs = meshfleet_identity::parse_pem_bundle(pem).ok()?;
    Some(certs.into_iter().map(|c| c.sha256).collect())
}

/// What was read from one cluster.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterRotationState {
    /// The control plane's namespace.
    pub namespace: String,
    /// Fingerprints in `linkerd-identity-trust-roots` (`None`: no bundle there).
    pub trust_roots: Option<BTreeSet<String>>,
    /// When the trust roots last changed, Unix seconds.
    pub trust_roots_changed: Option<i64>,
    /// Which anchor signed the issuer in use.
    pub issuer_signed_by: SignedBy,
    /// When the issuer Secret last changed, Unix seconds.
    pub issuer_changed: Option<i64>,
    /// When each running identity controller pod started its `identity` container, Unix
    /// seconds, oldest first.
    pub identity_started: Vec<i64>,
    /// When the identity controller reloaded its issuer: the latest occurrence of each
    /// `IssuerUpdated` Event on `linkerd-identity`, Unix seconds, oldest first.
    pub issuer_reloads: Vec<i64>,
    /// Control-plane and meshed pods.
    pub pods: Vec<PodState>,
}

/// One thing that is done or that blocks, with a stable id.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Stable id: `trust-roots`, `control-plane-restarted`, `meshed-pods-restarted`,
    /// `issuer-signed-by-new`, `issuer-loaded`, `proxies-recertified`, `cluster-reachable`.
    pub id: &'static str,
    /// What was found, in words.
    pub message: String,
    /// Restarts that would clear it (`kubectl` commands).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restarts: Vec<String>,
}

/// One cluster's standing.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    /// Fleet cluster name.
    pub cluster: String,
    /// kubeconfig context.
    pub context: String,
    /// What is done for this phase.
    pub done: Vec<Item>,
    /// What blocks the next step.
    pub blocking: Vec<Item>,
    /// What was read (absent when the cluster could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<ClusterRotationState>,
}

/// The whole fleet's standing in the rotation.
#[derive(Debug, Clone, Serialize)]
pub struct RotationStatus {
    /// The phase.
    pub phase: &'static str,
    /// The anchor being retired.
    pub from: String,
    /// The anchor being rolled out.
    pub to: String,
    /// Per cluster, in fleet order.
    pub clusters: Vec<ClusterStatus>,
}

impl RotationStatus {
    /// Whether nothing blocks the next step.
    pub fn ready(&self) -> bool {
        self.clusters.iter().all(|c| c.blocking.is_empty())
    }
}

fn newest_change(meta: &ObjectMeta) -> Option<i64> {
    let managed = meta
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.time.as_ref().map(|t| t.0.as_second()));
    managed
        .chain(meta.creation_timestamp.as_ref().map(|t| t.0.as_second()))
        .max()
}

fn workload(pod: &Pod) -> String {
    let meta = &pod.metadata;
    let name = meta.name.clone().unwrap_or_default();
    let Some(owner) = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
    else {
        return format!("pod/{name}");
    };
    match owner.kind.as_str() {
        "ReplicaSet" => {
            let hash = meta.labels.as_ref().and_then(|l| l.get("pod-template-hash"));
            match hash.and_then(|h| owner.name.strip_suffix(&format!("-{h}"))) {
                Some(deployment) => format!("deploy/{deployment}"),
                None => format!("replicaset/{}", owner.name),
            }
        }
        "StatefulSet" => format!("statefulset/{}", owner.name),
        "DaemonSet" => format!("daemonset/{}", owner.name),
        _ => format!("pod/{name}"),
    }
}

/// Read one cluster.
pub async fn read_cluster(
    client: &kube::Client,
    namespace: &str,
    rotation: &AnchorRotation,
    anchors: &[meshfleet_identity::CertInfo],
    timeout: Duration,
) -> Result<ClusterRotationState, ReadError> {
    let read = async {
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let pods: Api<Pod> = Api::all(client.clone());
        let events: Api<Event> = Api::namespaced(client.clone(), namespace);
        let all = ListParams::default();
        let reloads = ListParams::default().fields(&format!(
            "reason={ISSUER_UPDATED},involvedObject.kind=Deployment,involvedObject.name={IDENTITY_DEPLOYMENT}"
        ));
        let (roots, issuer, pods, events) = tokio::join!(
            config_maps.get_opt(TRUST_ROOTS),
            secrets.get_opt(ISSUER_SECRET),
            pods.list(&all),
            events.list(&reloads)
        );
        let roots = roots
            .map_err(|e| ReadError::from_kube(&format!("read ConfigMap `{namespace}/{TRUST_ROOTS}`"), &e))?;
        let issuer = issuer
            .map_err(|e| ReadError::from_kube(&format!("read Secret `{namespace}/{ISSUER_SECRET}`"), &e))?;
        let pods = pods.map_err(|e| ReadError::from_kube("list pods in every namespace", &e))?;
        let events =
            events.map_err(|e| ReadError::from_kube(&format!("list events in `{namespace}`"), &e))?;
        Ok(state_from_objects(
            namespace,
            rotation,
            anchors,
            &LiveObjects {
                roots: roots.as_ref(),
                issuer: issuer.as_ref(),
                pods: &pods.items,
                events: &events.items,
            },
        ))
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ReadError::TimedOut(timeout))?
}

/// The objects of one cluster that the rotation reads.
#[derive(Debug, Clone, Copy)]
pub struct LiveObjects<'a> {
    /// `linkerd-identity-trust-roots`.
    pub roots: Option<&'a ConfigMap>,
    /// `linkerd-identity-issuer`.
    pub issuer: Option<&'a Secret>,
    /// Every pod of the cluster.
    pub pods: &'a [Pod],
    /// Events of the control plane's namespace (only `IssuerUpdated` on
    /// `linkerd-identity` count).
    pub events: &'a [Event],
}

/// When the identity controller's container of `pod` started (the pod's start, or its
/// creation, when the kubelet has not reported it).
fn identity_started(pod: &Pod) -> i64 {
    let status = pod.status.as_ref();
    let container = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == IDENTITY_CONTAINER))
        .and_then(|c| c.state.as_ref()?.running.as_ref()?.started_at.as_ref());
    container
        .or_else(|| status.and_then(|s| s.start_time.as_ref()))
        .or(pod.metadata.creation_timestamp.as_ref())
        .map_or(0, |t| t.0.as_second())
}

/// The latest time an Event says it happened.
fn event_time(event: &Event) -> Option<i64> {
    [
        event.last_timestamp.as_ref().map(|t| t.0.as_second()),
        event.event_time.as_ref().map(|t| t.0.as_second()),
        event
            .series
            .as_ref()
            .and_then(|s| s.last_observed_time.as_ref())
            .map(|t| t.0.as_second()),
        event.first_timestamp.as_ref().map(|t| t.0.as_second()),
        event
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second()),
    ]
    .into_iter()
    .flatten()
    .max()
}

/// What the objects as read say (pure, for tests).
pub fn state_from_objects(
    namespace: &str,
    rotation: &AnchorRotation,
    anchors: &[meshfleet_identity::CertInfo],
    objects: &LiveObjects<'_>,
) -> ClusterRotationState {
    let LiveObjects {
        roots,
        issuer,
        pods,
        events,
    } = *objects;
    let trust_roots = roots
        .and_then(|cm| cm.data.as_ref()?.get(TRUST_ROOTS_KEY).cloned())
        .and_then(|pem| meshfleet_identity::parse_pem_bundle(&pem).ok())
        .map(|certs| certs.into_iter().map(|c| c.sha256).collect());
    let issuer_signed_by = issuer
        .and_then(|s| {
            s.data
                .as_ref()?
                .get("tls.crt")
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        })
        .and_then(|pem| meshfleet_identity::parse_pem_bundle(&pem).ok())
        .and_then(|chain| chain.first().cloned())
        .map_or(SignedBy::Unknown, |cert| signed_by(&cert, rotation, anchors));
    let pods = pods
        .iter()
        .filter_map(|pod| {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let proxy = pod.spec.as_ref().and_then(proxy_placement);
            let meshed = proxy.is_some();
            let control_plane = ns == namespace;
            if !meshed && !control_plane {
                return None;
            }
            let created = pod
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(0, |t| t.0.as_second());
            let injected_by_cli = pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CREATED_BY))
                .is_some_and(|v| v.starts_with("linkerd/cli"));
            Some(PodState {
                namespace: ns,
                name: pod.metadata.name.clone().unwrap_or_default(),
                workload: workload(pod),
                created,
                control_plane,
                meshed,
                proxy,
                proxy_anchors: pod.spec.as_ref().and_then(proxy_anchors),
                injected_by_cli,
            })
        })
        .collect();
    let mut identity_started: Vec<i64> = pods_of_identity(namespace, objects.pods)
        .map(identity_started)
        .collect();
    identity_started.sort_unstable();
    let mut issuer_reloads: Vec<i64> = events
        .iter()
        .filter(|e| {
            e.reason.as_deref() == Some(ISSUER_UPDATED)
                && e.involved_object.kind.as_deref() == Some("Deployment")
                && e.involved_object.name.as_deref() == Some(IDENTITY_DEPLOYMENT)
        })
        .filter_map(event_time)
        .collect();
    issuer_reloads.sort_unstable();
    ClusterRotationState {
        namespace: namespace.to_string(),
        trust_roots,
        trust_roots_changed: roots.and_then(|cm| newest_change(&cm.metadata)),
        issuer_signed_by,
        issuer_changed: issuer.and_then(|s| newest_change(&s.metadata)),
        identity_started,
        issuer_reloads,
        pods,
    }
}

/// The running identity controller pods: the control plane's pods labelled as the
/// identity component, not being deleted.
fn pods_of_identity<'a>(namespace: &'a str, pods: &'a [Pod]) -> impl Iterator<Item = &'a Pod> {
    pods.iter().filter(move |p| {
        p.metadata.namespace.as_deref() == Some(namespace)
            && p.metadata.deletion_timestamp.is_none()
            && p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(COMPONENT_LABEL.0))
                .is_some_and(|v| v == COMPONENT_LABEL.1)
    })
}

/// Why the identity controller is not known to serve the new issuer yet.
#[derive(Debug, thiserror::Error)]
enum IssuerNotLoaded {
    /// The issuer Secret carries no time of its last change.
    #[error("the issuer Secret `{ISSUER_SECRET}` has no change time")]
    NoChangeTime,
    /// No controller runs, and none reloaded before it stopped.
    #[error(
        "no identity controller is running (no pod labelled `{}={}`) and none recorded an `{ISSUER_UPDATED}` event since the issuer Secret changed ({})",
        COMPONENT_LABEL.0,
        COMPONENT_LABEL.1,
        when(*.changed)
    )]
    NoController {
        /// When the Secret changed, Unix seconds.
        changed: i64,
    },
    /// Controllers started before the change, and fewer reloads than they are.
    #[error(
        "the identity controller has not loaded the new issuer yet: {older} of its {running} pods started before the issuer Secret changed ({}) and {reloads} `{ISSUER_UPDATED}` event(s) were recorded since; the kubelet updates the mounted Secret a minute or two after the change, or restart it",
        when(*.changed)
    )]
    NotYet {
        /// Running controllers started before the change.
        older: usize,
        /// Running controllers.
        running: usize,
        /// When the Secret changed, Unix seconds.
        changed: i64,
        /// `IssuerUpdated` Events since the change.
        reloads: usize,
    },
}

impl meshfleet_fleet::diagnostic::Hint for IssuerNotLoaded {
    fn hint(&self) -> Option<String> {
        // The blocking item that quotes it lists the restart command for its context.
        None
    }
}

/// From when every identity controller that could answer a proxy had the issuer of the
/// Secret's last change, and how that is known; `Err` with what is missing.
///
/// A controller started before the change serves the old issuer until it reloads, which
/// only its `IssuerUpdated` Event shows. Events do not name the replica that recorded
/// them, but each replica records its own Event object (a replica's repeats only raise
/// that object's count and time), so as many Events since the change as running replicas
/// started before it are needed, and the latest is the load. When no controller reloaded
/// (they were all restarted instead), the old ones served the old issuer until the new
/// ones started (a rolling restart keeps the old pods until the new are ready): the load
/// is the latest start of a running controller.
fn issuer_loaded(state: &ClusterRotationState) -> Result<(i64, &'static str), IssuerNotLoaded> {
    let changed = state.issuer_changed.ok_or(IssuerNotLoaded::NoChangeTime)?;
    let (fresh, old): (Vec<i64>, Vec<i64>) = state.identity_started.iter().partition(|t| **t >= changed);
    let reloads: Vec<i64> = state
        .issuer_reloads
        .iter()
        .copied()
        .filter(|t| *t >= changed)
        .collect();
    if let Some(last) = reloads.iter().max()
        && reloads.len() >= old.len()
    {
        return Ok((*last, "its `IssuerUpdated` event"));
    }
    if let Some(last) = fresh.iter().max()
        && old.is_empty()
    {
        return Ok((*last, "the start of its pods"));
    }
    if state.identity_started.is_empty() {
        return Err(IssuerNotLoaded::NoController { changed });
    }
    Err(IssuerNotLoaded::NotYet {
        older: old.len(),
        running: state.identity_started.len(),
        changed,
        reloads: reloads.len(),
    })
}

/// Which of the rotation's anchors signed `cert` (an issuer certificate), by signature:
/// two anchors made by `certs init` share their subject.
fn signed_by(
    cert: &meshfleet_identity::CertInfo,
    rotation: &AnchorRotation,
    anchors: &[meshfleet_identity::CertInfo],
) -> SignedBy {
    let Some(signer) = anchors
        .iter()
        .find(|a| meshfleet_identity::signed_by(&cert.der, &a.der))
    else {
        return SignedBy::Other;
    };
    if signer.sha256 == rotation.to {
        SignedBy::To
    } else if signer.sha256 == rotation.from {
        SignedBy::From
    } else {
        SignedBy::Other
    }
}

fn when(unix: i64) -> String {
    meshfleet_identity::format_time(unix)
}

fn restarts(context: &str, pods: &[&PodState]) -> Vec<String> {
    let mut by_namespace: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for pod in pods {
        by_namespace
            .entry(&pod.namespace)
            .or_default()
            .insert(&pod.workload);
    }
    by_namespace
        .into_iter()
        .map(|(ns, workloads)| {
            let (rollouts, bare): (Vec<&str>, Vec<&str>) =
                workloads.into_iter().partition(|w| !w.starts_with("pod/"));
            let mut lines = Vec::new();
            if !rollouts.is_empty() {
                lines.push(format!(
                    "kubectl --context {context} -n {ns} rollout restart {}",
                    rollouts.join(" ")
                ));
            }
            if !bare.is_empty() {
                lines.push(format!(
                    "kubectl --context {context} -n {ns} delete {}",
                    bare.join(" ")
                ));
            }
            lines.join("\n")
        })
        .collect()
}

fn item(id: &'static str, message: String) -> Item {
    Item {
        id,
        message,
        restarts: Vec::new(),
    }
}

fn proxies_recertified(
    context: &str,
    state: &ClusterRotationState,
    since: i64,
    done: &mut Vec<Item>,
    blocking: &mut Vec<Item>,
) {
    let meshed: Vec<&PodState> = state.pods.iter().filter(|p| p.meshed).collect();
    let stale: Vec<&PodState> = meshed.iter().copied().filter(|p| p.created < since).collect();
    if stale.is_empty() {
        done.push(item(
            "proxies-recertified",
            format!(
                "all {} meshed pods were created after the identity controller loaded the new issuer ({})",
                meshed.len(),
                when(since)
            ),
        ));
    } else {
        blocking.push(Item {
            id: "proxies-recertified",
            message: format!(
                "{} of {} meshed pods were created before the identity controller loaded the new issuer ({}), so they may still present a certificate of the old chain",
                stale.len(),
                meshed.len(),
                when(since)
            ),
            restarts: restarts(context, &stale),
        });
    }
}

/// Judge one cluster for `rotation`'s phase: what is done and what blocks `next`.
pub fn judge(
    rotation: &AnchorRotation,
    context: &str,
    state: &ClusterRotationState,
) -> (Vec<Item>, Vec<Item>) {
    let (mut done, mut blocking) = (Vec::new(), Vec::new());
    let phase = rotation.phase;
    let both: BTreeSet<String> = [rotation.from.clone(), rotation.to.clone()].into();
    let only_new: BTreeSet<String> = [rotation.to.clone()].into();
    let wanted = if phase.bundle_holds_both() {
        &both
    } else {
        &only_new
    };
    // Old first, then new, then any other: the order a reader expects.
    let describe = |set: &BTreeSet<String>| {
        let rank = |fp: &String| {
            if *fp == rotation.from {
                0
            } else if *fp == rotation.to {
                1
            } else {
                2
            }
        };
        let mut list: Vec<&String> = set.iter().collect();
        list.sort_by_key(|fp| rank(fp));
        list.into_iter()
            .map(|fp| {
                let role = ["old", "new", "other"][rank(fp)];
                format!("{role} {}", short(fp))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    // 1. The bundle in use.
    match &state.trust_roots {
        Some(live) if live == wanted => done.push(item(
            "trust-roots",
            format!("`{TRUST_ROOTS}` holds {}", describe(live)),
        )),
        Some(live) => blocking.push(item(
            "trust-roots",
            format!(
                "`{TRUST_ROOTS}` holds {}; the fleet's bundle holds {} (render, commit, and let the GitOps engine apply it)",
                describe(live),
                describe(wanted)
            ),
        )),
        None => blocking.push(item("trust-roots", format!("`{TRUST_ROOTS}` holds no bundle"))),
    }
    let bundle_ok = state.trust_roots.as_ref() == Some(wanted);
    // 2. Pods that read the bundle before it changed (distribute and retire).
    if matches!(phase, AnchorRotationPhase::Distribute) && bundle_ok {
        let since = state.trust_roots_changed.unwrap_or(i64::MAX);
        for (id, what, pick) in [
            ("control-plane-restarted", "control-plane pods", true),
            ("meshed-pods-restarted", "meshed pods", false),
        ] {
            let group: Vec<&PodState> = state
                .pods
                .iter()
                .filter(|p| {
                    if pick {
                        p.control_plane
                    } else {
                        p.meshed && !p.control_plane
                    }
                })
                .collect();
            // A proxy trusts what the injector wrote into its pod: created after the
            // change is not enough when that bundle lacks the new anchor (an injector
            // that had not reloaded, or a template injected by `linkerd inject`).
            let lacks_new = |p: &PodState| {
                p.proxy_anchors
                    .as_ref()
                    .is_some_and(|a| !a.contains(&rotation.to))
            };
            let stale: Vec<&PodState> = group
                .iter()
                .copied()
                .filter(|p| p.created < since || lacks_new(p))
                .collect();
            // Restarting a workload injected by the CLI recreates its pods from the same
            // template, with the same bundle: it must be injected again.
            let (reinject, restart): (Vec<&PodState>, Vec<&PodState>) = stale
                .iter()
                .copied()
                .partition(|p| p.injected_by_cli && lacks_new(p));
            if stale.is_empty() {
                done.push(item(
                    id,
                    format!(
                        "all {} {what} were created after the bundle changed ({})",
                        group.len(),
                        when(since)
                    ),
                ));
            } else {
                let lacking = stale.iter().filter(|p| lacks_new(p)).count();
                let mut message = format!(
                    "{} of {} {what} were created before the bundle changed ({}){}, so they do not trust the new anchor yet",
                    stale.len(),
                    group.len(),
                    when(since),
                    if lacking > 0 {
                        format!(" or hold a bundle without the new anchor ({lacking} of them)")
                    } else {
                        String::new()
                    }
                );
                if !reinject.is_empty() {
                    let workloads: BTreeSet<String> = reinject
                        .iter()
                        .map(|p| format!("{}/{}", p.namespace, p.workload))
                        .collect();
                    message.push_str(&format!(
                        "; injected with `linkerd inject`, their pod templates carry the old bundle, so a restart would bring it back: inject {} again against the cluster (`linkerd inject --manual`, which reads the new bundle from `linkerd-config`) and apply",
                        workloads.into_iter().collect::<Vec<_>>().join(", ")
                    ));
                }
                blocking.push(Item {
                    id,
                    message,
                    restarts: restarts(context, &restart),
                });
            }
        }
    }
    // 3. The issuer.
    if phase.issuers_on_new() {
        match state.issuer_signed_by {
            SignedBy::To => done.push(item(
                "issuer-signed-by-new",
                format!("the issuer is signed by the new anchor {}", short(&rotation.to)),
            )),
            other => blocking.push(item(
                "issuer-signed-by-new",
                format!(
                    "the issuer `{ISSUER_SECRET}` is {}",
                    match other {
                        SignedBy::From => format!("still signed by the old anchor {}", short(&rotation.from)),
                        SignedBy::Other => "signed by neither anchor of the rotation".to_string(),
                        SignedBy::Unknown | SignedBy::To => "missing or unreadable".to_string(),
                    }
                ),
            )),
        }
    }
    // 4. The identity controller's reload, then the proxies still presenting a
    //    certificate of the old issuer: a pod must be newer than the reload.
    if matches!(phase, AnchorRotationPhase::Recertify) && state.issuer_signed_by == SignedBy::To {
        match issuer_loaded(state) {
            Err(why) => blocking.push(Item {
                id: "issuer-loaded",
                message: why.to_string(),
                restarts: vec![format!(
                    "kubectl --context {context} -n {} rollout restart deploy/{IDENTITY_DEPLOYMENT}",
                    state.namespace
                )],
            }),
            Ok((since, how)) => {
                done.push(item(
                    "issuer-loaded",
                    format!(
                        "the identity controller loaded the new issuer at {} ({how})",
                        when(since)
                    ),
                ));
                proxies_recertified(context, state, since, &mut done, &mut blocking);
            }
        }
    }
    (done, blocking)
}

/// Read every cluster at once and judge it; `None` when no rotation is in progress.
pub async fn status(kubeconfigs: &Kubeconfigs, plan: &FleetPlan) -> Option<RotationStatus> {
    let rotation = plan.identity.rotation.clone()?;
    let namespace = plan.linkerd.namespace.clone();
    let anchors = plan.identity.anchors.clone();
    let timeout = kubeconfigs.timeout() * 2;
    let for_read = rotation.clone();
    let results = for_each_cluster(kubeconfigs, &plan.clusters, move |client, _cluster| {
        let (namespace, rotation, anchors) = (namespace.clone(), for_read.clone(), anchors.clone());
        async move { read_cluster(&client, &namespace, &rotation, &anchors, timeout).await }
    })
    .await;
    let clusters = plan
        .clusters
        .iter()
        .zip(results)
        .map(|(cluster, result)| match result {
            Ok(state) => {
                let (done, blocking) = judge(&rotation, &cluster.context, &state);
                ClusterStatus {
                    cluster: cluster.name.clone(),
                    context: cluster.context.clone(),
                    done,
                    blocking,
                    state: Some(state),
                }
            }
            Err(e) => ClusterStatus {
                cluster: cluster.name.clone(),
                context: cluster.context.clone(),
                done: Vec::new(),
                blocking: vec![item(
                    "cluster-reachable",
                    meshfleet_fleet::diagnostic::error_chain(&e),
                )],
                state: None,
            },
        })
        .collect();
    Some(RotationStatus {
        phase: rotation.phase.as_str(),
        from: rotation.from,
        to: rotation.to,
        clusters,
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;

    fn rotation(phase: AnchorRotationPhase) -> AnchorRotation {
        AnchorRotation {
            phase,
            from: "aa".into(),
            to: "bb".into(),
        }
    }

    fn pod_state(ns: &str, name: &str, created: i64, meshed: bool) -> PodState {
        PodState {
            namespace: ns.into(),
            name: name.into(),
            workload: format!("deploy/{name}"),
            created,
            control_plane: ns == "linkerd",
            meshed,
            proxy: meshed.then_some(ProxyPlacement::Container),
            proxy_anchors: None,
            injected_by_cli: false,
        }
    }

    #[test]
    fn distribute_wants_the_new_anchor_in_each_proxys_bundle_and_reinjection_for_the_cli() {
        let r = rotation(AnchorRotationPhase::Distribute);
        let old_only = Some(BTreeSet::from(["aa".to_string()]));
        let both = Some(BTreeSet::from(["aa".to_string(), "bb".to_string()]));
        // Created after the change, but by an injector that had not reloaded.
        let mut webhook = pod_state("apps", "web", 150, true);
        webhook.proxy_anchors.clone_from(&old_only);
        // Created after the change from a template `linkerd inject` wrote before it.
        let mut cli = pod_state("apps", "client", 150, true);
        cli.proxy_anchors.clone_from(&old_only);
        cli.injected_by_cli = true;
        let mut fresh = pod_state("apps", "fresh", 150, true);
        fresh.proxy_anchors.clone_from(&both);
        fresh.injected_by_cli = true;
        let (_, blocking) = judge(
            &r,
            "c",
            &state(&["aa", "bb"], SignedBy::From, vec![webhook, cli, fresh]),
        );
        assert_eq!(ids(&blocking), ["meshed-pods-restarted"]);
        assert_eq!(
            blocking[0].restarts,
            ["kubectl --context c -n apps rollout restart deploy/web"]
        );
        assert!(
            blocking[0].message.contains("2 of 3 meshed pods")
                && blocking[0].message.contains("inject apps/deploy/client again"),
            "{}",
            blocking[0].message
        );
    }

    /// The bundle changed at 100, the issuer Secret at 200; one identity controller
    /// (started at 50) reloaded it at 200.
    fn state(roots: &[&str], signed: SignedBy, pods: Vec<PodState>) -> ClusterRotationState {
        ClusterRotationState {
            namespace: "linkerd".into(),
            trust_roots: Some(roots.iter().map(|s| (*s).to_string()).collect()),
            trust_roots_changed: Some(100),
            issuer_signed_by: signed,
            issuer_changed: Some(200),
            identity_started: vec![50],
            issuer_reloads: vec![200],
            pods,
        }
    }

    fn ids(items: &[Item]) -> Vec<&'static str> {
        items.iter().map(|i| i.id).collect()
    }

    #[test]
    fn distribute_waits_for_the_bundle_then_for_pods_created_after_it() {
        let r = rotation(AnchorRotationPhase::Distribute);
        let (_, blocking) = judge(&r, "c", &state(&["aa"], SignedBy::From, vec![]));
        assert_eq!(ids(&blocking), ["trust-roots"]);
        let pods = vec![
            pod_state("linkerd", "linkerd-identity", 101, true),
            pod_state("apps", "web", 99, true),
        ];
        let (done, blocking) = judge(&r, "c", &state(&["aa", "bb"], SignedBy::From, pods));
        assert_eq!(ids(&done), ["trust-roots", "control-plane-restarted"]);
        assert_eq!(ids(&blocking), ["meshed-pods-restarted"]);
        assert_eq!(
            blocking[0].restarts,
            ["kubectl --context c -n apps rollout restart deploy/web"]
        );
    }

    #[test]
    fn recertify_waits_for_every_meshed_pod_created_after_the_issuer_moved() {
        let r = rotation(AnchorRotationPhase::Recertify);
        let (_, blocking) = judge(&r, "c", &state(&["aa", "bb"], SignedBy::From, vec![]));
        assert_eq!(ids(&blocking), ["issuer-signed-by-new"]);
        let pods = vec![
            pod_state("apps", "web", 200, true),
            pod_state("apps", "batch", 10, false),
        ];
        let (_, blocking) = judge(&r, "c", &state(&["aa", "bb"], SignedBy::To, pods));
        assert!(blocking.is_empty(), "{blocking:?}");
        let (_, blocking) = judge(
            &r,
            "c",
            &state(
                &["aa", "bb"],
                SignedBy::To,
                vec![pod_state("apps", "web", 199, true)],
            ),
        );
        assert_eq!(ids(&blocking), ["proxies-recertified"]);
    }

    /// Issue 18: the Secret changed at 200, the controller reloaded it only at 230; a pod
    /// created in between got a certificate of the old chain.
    #[test]
    fn recertify_judges_by_the_identity_controllers_reload_not_the_secrets_change() {
        let r = rotation(AnchorRotationPhase::Recertify);
        let web = |created| vec![pod_state("apps", "web", created, true)];
        let mut s = state(&["aa", "bb"], SignedBy::To, web(210));
        s.issuer_reloads = vec![120];
        let (_, blocking) = judge(&r, "c", &s);
        assert_eq!(ids(&blocking), ["issuer-loaded"], "no reload yet: {blocking:?}");
        assert_eq!(
            blocking[0].restarts,
            ["kubectl --context c -n linkerd rollout restart deploy/linkerd-identity"]
        );
        s.issuer_reloads = vec![120, 230];
        let (done, blocking) = judge(&r, "c", &s);
        assert_eq!(
            ids(&done),
            ["trust-roots", "issuer-signed-by-new", "issuer-loaded"]
        );
        assert_eq!(ids(&blocking), ["proxies-recertified"]);
        assert_eq!(
            blocking[0].restarts,
            ["kubectl --context c -n apps rollout restart deploy/web"]
        );
        s.pods = web(230);
        assert!(judge(&r, "c", &s).1.is_empty());
        // A controller started after the change read the new issuer at start.
        let mut s = state(&["aa", "bb"], SignedBy::To, web(215));
        (s.identity_started, s.issuer_reloads) = (vec![215], vec![]);
        assert!(judge(&r, "c", &s).1.is_empty());
        s.pods = web(214);
        assert_eq!(ids(&judge(&r, "c", &s).1), ["proxies-recertified"]);
        // ... unless the controller it replaced had reloaded it before.
        s.issuer_reloads = vec![205];
        assert!(judge(&r, "c", &s).1.is_empty());
        // Two replicas started before the change: each must have reloaded.
        (s.identity_started, s.issuer_reloads) = (vec![50, 60], vec![201]);
        assert_eq!(ids(&judge(&r, "c", &s).1), ["issuer-loaded"]);
        s.issuer_reloads = vec![201, 203];
        assert!(judge(&r, "c", &s).1.is_empty());
        // No controller and no event: nothing can be said.
        (s.identity_started, s.issuer_reloads) = (vec![], vec![]);
        assert_eq!(ids(&judge(&r, "c", &s).1), ["issuer-loaded"]);
    }

    fn container(name: &str, restart_policy: Option<&str>) -> k8s_openapi::api::core::v1::Container {
        k8s_openapi::api::core::v1::Container {
            name: name.into(),
            restart_policy: restart_policy.map(str::to_string),
            ..Default::default()
        }
    }

    /// Issue 18: with native sidecars the proxy is an init container.
    #[test]
    fn a_proxy_in_either_place_meshes_a_pod() {
        let classic = PodSpec {
            containers: vec![container("app", None), container(PROXY_CONTAINER, None)],
            ..PodSpec::default()
        };
        let native = PodSpec {
            init_containers: Some(vec![
                container("linkerd-init", None),
                container(PROXY_CONTAINER, Some("Always")),
            ]),
            containers: vec![container("app", None)],
            ..PodSpec::default()
        };
        let plain = PodSpec {
            containers: vec![container("app", None)],
            ..PodSpec::default()
        };
        assert_eq!(proxy_placement(&classic), Some(ProxyPlacement::Container));
        assert_eq!(proxy_placement(&native), Some(ProxyPlacement::NativeSidecar));
        assert_eq!(proxy_placement(&plain), None);
    }

    #[test]
    fn only_issuer_updated_events_of_the_identity_deployment_count() {
        use k8s_openapi::api::core::v1::ObjectReference;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let at = |s: i64| Some(Time(k8s_openapi::jiff::Timestamp::from_second(s).expect("time")));
        let event = |reason: &str, name: &str, last: i64| Event {
            reason: Some(reason.into()),
            involved_object: ObjectReference {
                kind: Some("Deployment".into()),
                name: Some(name.into()),
                ..ObjectReference::default()
            },
            first_timestamp: at(last - 100),
            last_timestamp: at(last),
            ..Event::default()
        };
        let events = [
            event(ISSUER_UPDATED, IDENTITY_DEPLOYMENT, 300),
            event("IssuerUpdateSkipped", IDENTITY_DEPLOYMENT, 310),
            event(ISSUER_UPDATED, "linkerd-destination", 320),
        ];
        let objects = LiveObjects {
            roots: None,
            issuer: None,
            pods: &[],
            events: &events,
        };
        let state = state_from_objects(
            "linkerd",
            &rotation(AnchorRotationPhase::Recertify),
            &[],
            &objects,
        );
        assert_eq!(state.issuer_reloads, [300]);
    }

    #[test]
    fn retire_wants_only_the_new_anchor() {
        let r = rotation(AnchorRotationPhase::Retire);
        let (_, blocking) = judge(&r, "c", &state(&["aa", "bb"], SignedBy::To, vec![]));
        assert_eq!(ids(&blocking), ["trust-roots"]);
        let (done, blocking) = judge(&r, "c", &state(&["bb"], SignedBy::To, vec![]));
        assert!(blocking.is_empty());
        assert_eq!(ids(&done), ["trust-roots", "issuer-signed-by-new"]);
    }

    #[test]
    fn a_pod_of_a_deployment_restarts_its_deployment() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web-5d9f-abcde".into());
        pod.metadata.labels = Some([("pod-template-hash".to_string(), "5d9f".to_string())].into());
        pod.metadata.owner_references = Some(vec![OwnerReference {
            kind: "ReplicaSet".into(),
            name: "web-5d9f".into(),
            controller: Some(true),
            ..OwnerReference::default()
        }]);
        assert_eq!(workload(&pod), "deploy/web");
        pod.metadata.owner_references = None;
        assert_eq!(workload(&pod), "pod/web-5d9f-abcde");
    }
}
