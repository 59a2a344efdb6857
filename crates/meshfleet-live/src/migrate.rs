//! Moving links made by the deprecated `linkerd multicluster link` to declarative ones.
//!
//! The old command installed one service-mirror controller per link, outside any chart
//! (reference section 2.5): Deployment `linkerd-service-mirror-<n>` labelled
//! `component=service-mirror` and `mirror.linkerd.io/cluster-name=<n>`, Service
//! `probe-gateway-<n>`, ServiceAccount `linkerd-service-mirror-<n>`, Role and RoleBinding
//! `linkerd-service-mirror-read-remote-creds-<n>`, ClusterRole and ClusterRoleBinding
//! `linkerd-service-mirror-access-local-resources-<n>`, sometimes a PodDisruptionBudget.
//! The chart's declarative controller `controller-<n>` serves the same Link and takes
//! the same Lease, so the two compete until the old one is gone (section 3.5).
//!
//! The Link, its `cluster-credentials-<n>` Secrets and the Lease keep their names in the
//! declarative setup, so they are never deleted here: syncing the rendered tree takes
//! them over. Only the legacy controller's objects go, and only once `controller-<n>`
//! for a link the fleet declares is available, so the link is never left without a
//! controller (PRODUCT.md principle 5). Links that no one manages and the fleet does not
//! declare are reported, never deleted.
//!
//! The legacy controller goes in two steps with a check between them. Its Deployment
//! first; then meshfleet waits until the Lease `service-mirror-write-<n>` is held by a
//! pod of `controller-<n>` (Linkerd names the holder after the pod) before it deletes the
//! old controller's permissions. Deleting them while the old process still runs makes
//! its release of the Lease fail (`Failed to release lock: ... forbidden` in its log),
//! and the link then has no controller until the Lease expires, 30 s in Linkerd's
//! service mirror. If the handover is not seen in time, the permissions stay and a rerun
//! continues from there.
//!
//! [`survey`] reads; [`remove_ready`] deletes what may go, each object with a UID
//! precondition (a recreated object of the same name is not the one that was planned).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Preconditions, PropagationPolicy,
};

use super::cluster::Kubeconfigs;
use super::cluster::{ReadError, for_each_cluster};
use meshfleet_fleet::defaults::MULTICLUSTER_NAMESPACE;
use meshfleet_plan::{ClusterPlan, FleetPlan};
use meshfleet_render::resources::Link;
use meshfleet_render::{MANAGED_BY, MANAGED_BY_LABEL};

/// Label of Linkerd's multicluster controllers; `service-mirror` marks the legacy one.
pub const COMPONENT_LABEL: &str = "component";
/// [`COMPONENT_LABEL`] value of a legacy controller.
pub const LEGACY_COMPONENT: &str = "service-mirror";
/// The link a controller or probe Service belongs to.
pub const CLUSTER_NAME_LABEL: &str = "mirror.linkerd.io/cluster-name";

/// Deployment, ServiceAccount and PodDisruptionBudget of a legacy controller.
pub fn legacy_controller(link: &str) -> String {
    format!("{CONTROLLER}{link}")
}

/// Name prefixes of the legacy objects of link `<n>` (`<prefix><n>`).
const CONTROLLER: &str = "linkerd-service-mirror-";
const PROBE: &str = "probe-gateway-";
const REMOTE_CREDS: &str = "linkerd-service-mirror-read-remote-creds-";
const LOCAL_ACCESS: &str = "linkerd-service-mirror-access-local-resources-";

/// A kind of object (named by its typed resource) and the prefix of its name.
type LegacyPart = (fn(&()) -> ApiResource, &'static str);

/// What a legacy controller is made of, in the order it is deleted: the Deployment
/// first, so the old controller stops before its permissions go. Only metadata is read
/// and only deletes are sent, so the typed kinds just name the resources.
const PARTS: [LegacyPart; 8] = [
    (ApiResource::erase::<Deployment>, CONTROLLER),
    (ApiResource::erase::<Service>, PROBE),
    (ApiResource::erase::<PodDisruptionBudget>, CONTROLLER), // with `--ha`
    (ApiResource::erase::<RoleBinding>, REMOTE_CREDS),
    (ApiResource::erase::<Role>, REMOTE_CREDS),
    (ApiResource::erase::<ClusterRoleBinding>, LOCAL_ACCESS),
    (ApiResource::erase::<ClusterRole>, LOCAL_ACCESS),
    (ApiResource::erase::<ServiceAccount>, CONTROLLER),
];

/// Lease of the service mirror of link `<n>` (Linkerd's `service-mirror-write-<n>`).
fn mirror_lease(link: &str) -> String {
    format!("service-mirror-write-{link}")
}

/// How long `--apply` waits for `controller-<n>` to hold the Lease once the old
/// Deployment is gone: Linkerd's service mirror lets a Lease expire after 30 s (when its
/// holder could not release it) and retries every 2 s.
pub const HANDOVER_WAIT: Duration = Duration::from_secs(60);

/// One object a legacy controller left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyObject {
    /// Its kind.
    pub resource: ApiResource,
    /// Namespace (`None` for cluster-scoped kinds).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// UID as read, the deletion precondition.
    pub uid: Option<String>,
}

impl LegacyObject {
    /// Whether this is the controller's Deployment, deleted before the Lease handover;
    /// everything after it is the permissions and parts it runs with.
    pub fn is_controller(&self) -> bool {
        self.resource.kind == "Deployment"
    }
}

impl fmt::Display for LegacyObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.resource.kind, self.name),
            None => write!(f, "{} {}", self.resource.kind, self.name),
        }
    }
}

/// The declarative controller `controller-<n>`, as found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControllerState {
    /// No such Deployment.
    Missing,
    /// Present with no available replica yet.
    Unavailable {
        /// `status.availableReplicas`.
        available: i32,
        /// `spec.replicas`.
        desired: i32,
    },
    /// `status.availableReplicas >= 1`.
    Available {
        /// `status.availableReplicas`.
        available: i32,
    },
}

impl fmt::Display for ControllerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("not there yet"),
            Self::Unavailable { available, desired } => {
                write!(f, "not available yet ({available} of {desired} replicas)")
            }
            Self::Available { available } => write!(f, "available ({available} replica(s))"),
        }
    }
}

/// Why a legacy controller may not be removed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    /// The fleet declares no link from this cluster with this target link name.
    NotInFleet,
    /// The declarative controller (named here) is missing or not available.
    ControllerNotReady(String, ControllerState),
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotInFleet => {
                f.write_str("the fleet declares no such link, so nothing replaces this controller")
            }
            Self::ControllerNotReady(name, state) => {
                write!(f, "the declarative controller `{name}` is {state}")
            }
        }
    }
}

/// What became of one object under `--apply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeletionOutcome {
    /// Deleted now.
    Deleted,
    /// Already gone when meshfleet got to it.
    AlreadyGone,
    /// The server refused (or the object changed); the object is still there.
    Failed(String),
}

/// Who held the link's Lease when `--apply` was about to delete the old controller's
/// permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handover {
    /// A pod of the declarative controller holds it (its name), after this long.
    Served { holder: String, waited: Duration },
    /// Still not the declarative controller after this long: `None` when the Lease has
    /// no holder or does not exist.
    NotYet {
        holder: Option<String>,
        waited: Duration,
    },
    /// The Lease could not be read.
    Unreadable(String),
}

/// What `migrate` did about one legacy controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Only planned (no `--apply`).
    Planned,
    /// `--apply` left it alone, for this reason.
    Skipped(Blocker),
    /// `--apply` deleted (or tried to delete) these, in order; it stops at a failure,
    /// and before the permissions when the handover was not seen.
    Attempted {
        deletions: Vec<(LegacyObject, DeletionOutcome)>,
        /// The Lease, read before the first permission was deleted (`None` when the
        /// run stopped before that).
        handover: Option<Handover>,
    },
}

/// One link served by a legacy controller.
#[derive(Debug, Clone)]
pub struct LegacyLink {
    /// `<n>`: the Link name the controller serves (the target's link name).
    pub name: String,
    /// Namespace of the legacy controller.
    pub namespace: String,
    /// The fleet cluster the fleet's link from this cluster to `<n>` targets, if any.
    pub fleet_target: Option<String>,
    /// `controller-<n>`.
    pub controller_name: String,
    /// Its state.
    pub controller: ControllerState,
    /// Everything the legacy controller is made of, in deletion order.
    pub objects: Vec<LegacyObject>,
    /// What `migrate` did.
    pub removal: Removal,
}

impl LegacyLink {
    /// Why the legacy objects may not be deleted yet; `None` when they may.
    pub fn blocker(&self) -> Option<Blocker> {
        if self.fleet_target.is_none() {
            return Some(Blocker::NotInFleet);
        }
        match self.controller {
            ControllerState::Available { .. } => None,
            state => Some(Blocker::ControllerNotReady(self.controller_name.clone(), state)),
        }
    }

    /// `<namespace>/service-mirror-write-<n>`: the Lease the old and the new controller
    /// of this link compete for.
    pub fn lease(&self) -> String {
        format!("{}/{}", self.namespace, mirror_lease(&self.name))
    }

    /// Whether legacy objects are still there after this run.
    pub fn remains(&self) -> bool {
        match &self.removal {
            Removal::Planned | Removal::Skipped(_) => true,
            Removal::Attempted { deletions, .. } => {
                deletions.len() < self.objects.len()
                    || deletions
                        .iter()
                        .any(|(_, o)| matches!(o, DeletionOutcome::Failed(_)))
            }
        }
    }
}

/// A Link without `app.kubernetes.io/managed-by: meshfleet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmanagedLink {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Whether the fleet declares a link from this cluster with this name (then the
    /// rendered Link of the same name takes it over when synced).
    pub declared: bool,
}

/// What one cluster holds of the old way.
#[derive(Debug, Clone, Default)]
pub struct ClusterSurvey {
    /// Legacy controllers, by link name.
    pub legacy: Vec<LegacyLink>,
    /// Links no one marked as meshfleet's.
    pub unmanaged_links: Vec<UnmanagedLink>,
}

/// One fleet cluster in `migrate`.
#[derive(Debug)]
pub struct ClusterMigration {
    /// Fleet cluster name.
    pub cluster: String,
    /// kubeconfig context.
    pub context: String,
    /// What was found and done, or why the cluster could not be read.
    pub survey: Result<ClusterSurvey, ReadError>,
}

/// `migrate` over the whole fleet.
#[derive(Debug)]
pub struct MigrationReport {
    /// Whether `--apply` was given.
    pub apply: bool,
    /// Per cluster, in fleet order.
    pub clusters: Vec<ClusterMigration>,
}

impl MigrationReport {
    /// Legacy controllers still there after this run.
    pub fn legacy_remaining(&self) -> usize {
        self.clusters
            .iter()
            .filter_map(|c| c.survey.as_ref().ok())
            .flat_map(|s| &s.legacy)
            .filter(|l| l.remains())
            .count()
    }

    /// Whether some cluster could not be read.
    pub fn any_unreachable(&self) -> bool {
        self.clusters.iter().any(|c| c.survey.is_err())
    }

    /// Whether no cluster at all could be read.
    pub fn none_reachable(&self) -> bool {
        !self.clusters.is_empty() && self.clusters.iter().all(|c| c.survey.is_err())
    }
}

fn api(client: &kube::Client, resource: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

fn not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

fn meshfleet_managed(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .is_some_and(|v| v == MANAGED_BY)
}

fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(key).map(String::as_str)
}

/// Names and namespaces of the Links in the cluster; none when the Link CRD is absent.
async fn links(client: &kube::Client) -> Result<Vec<ObjectMeta>, ReadError> {
    match Api::<Link>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await
    {
        Ok(list) => Ok(list.items.into_iter().map(|o| o.metadata).collect()),
        Err(e) if not_found(&e) => Ok(Vec::new()),
        Err(e) => Err(ReadError::from_kube("list Links", &e)),
    }
}

/// Every legacy link name, with the namespace of its controller: from legacy
/// Deployments (any namespace), and from the ClusterRoles of those whose Deployment is
/// already gone.
pub(crate) async fn legacy_names(client: &kube::Client) -> Result<BTreeMap<String, String>, ReadError> {
    let mut names = BTreeMap::new();
    let deployments = Api::<Deployment>::all(client.clone())
        .list_metadata(&ListParams::default().labels(&format!("{COMPONENT_LABEL}={LEGACY_COMPONENT}")))
        .await
        .map_err(|e| ReadError::from_kube("list Deployments", &e))?;
    for d in deployments.items {
        if let (Some(link), Some(ns)) = (
            label(&d.metadata, CLUSTER_NAME_LABEL),
            d.metadata.namespace.as_deref(),
        ) {
            names.insert(link.to_string(), ns.to_string());
        }
    }
    let roles = Api::<ClusterRole>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await
        .map_err(|e| ReadError::from_kube("list ClusterRoles", &e))?;
    for r in roles.items {
        if let Some(link) = r
            .metadata
            .name
            .as_deref()
            .and_then(|n| n.strip_prefix(LOCAL_ACCESS))
        {
            names
                .entry(link.to_string())
                .or_insert_with(|| MULTICLUSTER_NAMESPACE.to_string());
        }
    }
    Ok(names)
}

async fn controller_state(client: &kube::Client, name: &str) -> Result<ControllerState, ReadError> {
    let deployment = Api::<Deployment>::namespaced(client.clone(), MULTICLUSTER_NAMESPACE)
        .get_opt(name)
        .await
        .map_err(|e| {
            ReadError::from_kube(&format!("read Deployment `{MULTICLUSTER_NAMESPACE}/{name}`"), &e)
        })?;
    Ok(match deployment {
        None => ControllerState::Missing,
        Some(d) => {
            let available = d.status.and_then(|s| s.available_replicas).unwrap_or(0);
            let desired = d.spec.and_then(|s| s.replicas).unwrap_or(1);
            if available >= 1 {
                ControllerState::Available { available }
            } else {
                ControllerState::Unavailable { available, desired }
            }
        }
    })
}

/// What the old `link` command left in one cluster, and how the fleet replaces it.
pub async fn survey(client: &kube::Client, cluster: &ClusterPlan) -> Result<ClusterSurvey, ReadError> {
    // Names the chart gives the target side (`linkerd-service-mirror-remote-access-<source>`)
    // share the legacy prefix; never mistake them for a legacy controller's.
    let protected: BTreeSet<String> = cluster.remote_access_service_accounts().into_iter().collect();
    let mut legacy = Vec::new();
    for (name, namespace) in legacy_names(client).await? {
        let mut objects = Vec::new();
        for (resource, prefix) in PARTS {
            let (resource, object_name) = (resource(&()), format!("{prefix}{name}"));
            if protected.contains(&object_name) {
                continue;
            }
            let cluster_scoped = prefix == LOCAL_ACCESS;
            let found = api(client, &resource, (!cluster_scoped).then_some(namespace.as_str()))
                .get_metadata_opt(&object_name)
                .await
                .map_err(|e| ReadError::from_kube(&format!("read {} `{object_name}`", resource.kind), &e))?;
            // The chart's objects of a link named `gateway-x` include `probe-gateway-x`;
            // their cluster-name label (`gateway-x`) tells them from legacy ones.
            let found = found.filter(|o| {
                !meshfleet_managed(&o.metadata)
                    && label(&o.metadata, CLUSTER_NAME_LABEL).is_none_or(|l| l == name)
            });
            let Some(found) = found else {
                continue;
            };
            objects.push(LegacyObject {
                resource,
                namespace: (!cluster_scoped).then(|| namespace.clone()),
                name: object_name,
                uid: found.metadata.uid,
            });
        }
        if objects.is_empty() {
            continue;
        }
        let fleet_link = cluster.outgoing.iter().find(|l| l.link_name() == name);
        let controller_name = fleet_link.map_or_else(
            || format!("controller-{name}"),
            meshfleet_plan::LinkPlan::controller_name,
        );
        legacy.push(LegacyLink {
            controller: controller_state(client, &controller_name).await?,
            fleet_target: fleet_link.map(|l| l.target.clone()),
            controller_name,
            name,
            namespace,
            objects,
            removal: Removal::Planned,
        });
    }
    let mut unmanaged_links: Vec<UnmanagedLink> = links(client)
        .await?
        .into_iter()
        .filter(|m| !meshfleet_managed(m))
        .filter_map(|m| {
            let name = m.name?;
            Some(UnmanagedLink {
                declared: cluster.outgoing.iter().any(|l| l.link_name() == name),
                namespace: m.namespace.unwrap_or_default(),
                name,
            })
        })
        .collect();
    unmanaged_links.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(ClusterSurvey {
        legacy,
        unmanaged_links,
    })
}

async fn delete(client: &kube::Client, object: &LegacyObject) -> DeletionOutcome {
    let params = DeleteParams {
        // The UID, not the resourceVersion: a live controller's status changes all the
        // time, but a different UID means someone recreated the object since the survey.
        preconditions: object.uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        // The Deployment's ReplicaSets and Pods go in the background.
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    let result = api(client, &object.resource, object.namespace.as_deref())
        .delete(&object.name, &params)
        .await;
    match result {
        Ok(_) => DeletionOutcome::Deleted,
        Err(e) if not_found(&e) => DeletionOutcome::AlreadyGone,
        Err(kube::Error::Api(status)) if status.code == 409 => DeletionOutcome::Failed(format!(
            "it was replaced since meshfleet read it ({}); run `meshfleet migrate` again",
            status.message
        )),
        Err(e) => DeletionOutcome::Failed(meshfleet_fleet::diagnostic::error_chain(&ReadError::from_kube(
            "delete it",
            &e,
        ))),
    }
}

/// Who holds the Lease of link `name` in `namespace`; `None` when it has no holder or
/// does not exist.
async fn lease_holder(client: &kube::Client, namespace: &str, name: &str) -> Result<Option<String>, String> {
    let lease = mirror_lease(name);
    Api::<Lease>::namespaced(client.clone(), namespace)
        .get_opt(&lease)
        .await
        .map(|l| l.and_then(|l| l.spec?.holder_identity).filter(|h| !h.is_empty()))
        .map_err(|e| {
            meshfleet_fleet::diagnostic::error_chain(&ReadError::from_kube(
                &format!("read Lease `{namespace}/{lease}`"),
                &e,
            ))
        })
}

/// Wait until a pod of `link.controller_name` holds the link's Lease (its name begins
/// with `<controller>-`, as a ReplicaSet's pods do), at most `wait`.
async fn wait_for_handover(client: &kube::Client, link: &LegacyLink, wait: Duration) -> Handover {
    let started = tokio::time::Instant::now();
    let prefix = format!("{}-", link.controller_name);
    loop {
        let holder = match lease_holder(client, &link.namespace, &link.name).await {
            Ok(holder) => holder,
            Err(e) => return Handover::Unreadable(e),
        };
        let waited = started.elapsed();
        match holder {
            Some(holder) if holder.starts_with(&prefix) => return Handover::Served { holder, waited },
            holder if waited >= wait => return Handover::NotYet { holder, waited },
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// Delete the objects of every legacy controller whose declarative replacement is
/// available; record why the others were skipped. Stops a link at its first failure,
/// so a Deployment that could not be deleted keeps its permissions, and keeps the
/// permissions until `controller-<n>` holds the link's Lease (at most `handover_wait`).
pub async fn remove_ready(client: &kube::Client, survey: &mut ClusterSurvey, handover_wait: Duration) {
    for link in &mut survey.legacy {
        if let Some(blocker) = link.blocker() {
            link.removal = Removal::Skipped(blocker);
            continue;
        }
        let mut deletions = Vec::new();
        let mut handover = None;
        for object in &link.objects {
            if !object.is_controller() && handover.is_none() {
                let seen = wait_for_handover(client, link, handover_wait).await;
                let served = matches!(seen, Handover::Served { .. });
                handover = Some(seen);
                if !served {
                    break;
                }
            }
            let outcome = delete(client, object).await;
            let failed = matches!(outcome, DeletionOutcome::Failed(_));
            deletions.push((object.clone(), outcome));
            if failed {
                break;
            }
        }
        link.removal = Removal::Attempted { deletions, handover };
    }
}

/// Survey every fleet cluster at once and, with `apply`, remove what may go.
pub async fn migrate_fleet(kubeconfigs: &Kubeconfigs, plan: &FleetPlan, apply: bool) -> MigrationReport {
    // A survey is a handful of small reads per legacy link; deletions are not timed
    // out as a whole, so that what was deleted is always reported.
    let timeout = kubeconfigs.timeout() * 3;
    let results = for_each_cluster(kubeconfigs, &plan.clusters, move |client, cluster| async move {
        let mut found = tokio::time::timeout(timeout, survey(&client, &cluster))
            .await
            .map_err(|_| ReadError::TimedOut(timeout))??;
        if apply {
            remove_ready(&client, &mut found, HANDOVER_WAIT).await;
        }
        Ok(found)
    })
    .await;
    let clusters = plan
        .clusters
        .iter()
        .zip(results)
        .map(|(cluster, survey)| ClusterMigration {
            cluster: cluster.name.clone(),
            context: cluster.context.clone(),
            survey,
        })
        .collect();
    MigrationReport { apply, clusters }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy(fleet_target: Option<&str>, controller: ControllerState) -> LegacyLink {
        LegacyLink {
            name: "west".into(),
            namespace: MULTICLUSTER_NAMESPACE.into(),
            fleet_target: fleet_target.map(Into::into),
            controller_name: "controller-west".into(),
            controller,
            objects: vec![LegacyObject {
                resource: ApiResource::erase::<Deployment>(&()),
                namespace: Some(MULTICLUSTER_NAMESPACE.into()),
                name: legacy_controller("west"),
                uid: None,
            }],
            removal: Removal::Planned,
        }
    }

    #[test]
    fn removal_waits_for_an_available_declared_controller() {
        let available = ControllerState::Available { available: 1 };
        assert_eq!(legacy(None, available).blocker(), Some(Blocker::NotInFleet));
        let unavailable = ControllerState::Unavailable {
            available: 0,
            desired: 1,
        };
        for state in [ControllerState::Missing, unavailable] {
            let blocker = legacy(Some("west"), state).blocker();
            assert_eq!(
                blocker,
                Some(Blocker::ControllerNotReady("controller-west".into(), state))
            );
        }
        assert_eq!(
            Blocker::ControllerNotReady("controller-west".into(), unavailable).to_string(),
            "the declarative controller `controller-west` is not available yet (0 of 1 replicas)"
        );
        assert_eq!(legacy(Some("west"), available).blocker(), None);
    }

    #[test]
    fn a_link_remains_until_every_object_is_gone() {
        let mut link = legacy(Some("west"), ControllerState::Available { available: 1 });
        assert!(link.remains());
        let object = link.objects[0].clone();
        link.removal = Removal::Attempted {
            deletions: vec![(object.clone(), DeletionOutcome::Failed("forbidden".into()))],
            handover: None,
        };
        assert!(link.remains());
        link.removal = Removal::Attempted {
            deletions: vec![(object, DeletionOutcome::AlreadyGone)],
            handover: None,
        };
        assert!(!link.remains());
    }

    #[test]
    fn legacy_parts_follow_the_old_chart() {
        let names: Vec<String> = PARTS
            .iter()
            .map(|(r, p)| format!("{} {p}west", r(&()).kind))
            .collect();
        assert_eq!(names[0], "Deployment linkerd-service-mirror-west");
        assert_eq!(names[1], "Service probe-gateway-west");
        assert_eq!(names[4], "Role linkerd-service-mirror-read-remote-creds-west");
        assert_eq!(
            names[6],
            "ClusterRole linkerd-service-mirror-access-local-resources-west"
        );
    }
}
