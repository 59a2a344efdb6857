//! What a healthy fleet's clusters hold, built in real API servers: the objects Linkerd's
//! charts and meshfleet's rendered tree would create, without running any of them.
//!
//! Two layers, so that other tests can reuse the pieces:
//!
//! - builders (plain functions) that return typed objects: the `linkerd-config` and
//!   trust-roots ConfigMaps, the issuer Secret, the gateway Service, the remote-access
//!   account of a link with its token Secret and the chart's RBAC (reference section 3.3),
//!   the credentials Secrets exactly as the rendered ExternalSecret templates make them
//!   (around the kubeconfig `secrets sync` writes, made by its own builder),
//!   controller Deployments, probe Services and Endpoints, exported and mirror Services;
//! - [`FleetFixture::install`], which applies all of them to every cluster of a fleet.
//!
//! Everything is applied with server-side apply under [`FIELD_MANAGER`], so installing
//! twice changes nothing, several fleet clusters may share one API server, and a test
//! that applies a changed copy of an object takes it back by applying the original.
//! Objects that only a controller would change (Deployment status, probe Endpoints,
//! mirrors) are written the way that controller would write them.

// A library for the live-command tests: not every builder is used by every test.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

// An explicit path, so that a bench can include this file with `#[path]` too.
#[path = "fixtures/objects.rs"]
pub mod objects;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use meshfleet_core::defaults;
use meshfleet_core::identity::{self, KeyedCertificate};
use meshfleet_core::plan::{self, ClusterPlan, FleetPlan, LinkPlan};
use meshfleet_core::render::resources::Link;
use secrecy::SecretString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use time::OffsetDateTime;

pub use self::objects::*;
use crate::support::shared_dir;

/// The field manager of every object the fixtures apply.
pub const FIELD_MANAGER: &str = "meshfleet-fixtures";
/// The namespace of the fixtures' exported services and their mirrors.
pub const APPS_NAMESPACE: &str = "apps";
/// The service every cluster exports.
pub const EXPORTED_SERVICE: &str = "web";
/// Stand-in address of a gateway whose fleet address is a DNS name (TEST-NET-1: data
/// only, nothing is ever sent to it).
pub const STAND_IN_GATEWAY_IP: &str = "192.0.2.1";

/// A fleet's plan, its rendered tree and its anchor key: all that is needed to build the
/// fleet's objects.
pub struct FleetFixture {
    /// The plan of the fleet.
    pub plan: FleetPlan,
    /// The rendered tree, path → text.
    pub tree: BTreeMap<String, String>,
    anchor_key: SecretString,
}

impl FleetFixture {
    /// Load a valid fleet folder whose anchor key is in its key folder (`certs init`).
    pub fn load(fleet_dir: &Path) -> Self {
        let checked =
            meshfleet_core::validate::check_file(fleet_dir, OffsetDateTime::now_utc()).expect("fleet loads");
        let plan = plan::from_checked(&checked).expect("the fixture fleet is valid");
        let tree = meshfleet_core::render::render(&plan)
            .expect("fleet renders")
            .files;
        let key_path = meshfleet_core::keys::KeyFolder::default_for(fleet_dir).anchor_key();
        let anchor_key =
            meshfleet_core::keys::KeyFolder::read_secret(&key_path).expect("anchor key (run `certs init`)");
        Self {
            plan,
            tree,
            anchor_key,
        }
    }

    /// A cluster of the plan.
    pub fn cluster(&self, name: &str) -> &ClusterPlan {
        self.plan
            .clusters
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no cluster {name} in the fixture fleet"))
    }

    /// The link from `source` to `target`.
    pub fn link(&self, source: &str, target: &str) -> &LinkPlan {
        self.cluster(source)
            .outgoing
            .iter()
            .find(|l| l.target == target)
            .unwrap_or_else(|| panic!("no link {source} -> {target} in the fixture fleet"))
    }

    /// A fresh issuer signed by the fleet's anchor.
    pub fn issuer(&self) -> KeyedCertificate {
        let cn = format!(
            "identity.{}.{}",
            self.plan.linkerd.namespace, self.plan.linkerd.trust_domain
        );
        identity::generate_issuer(
            &self.plan.identity.trust_anchor_pem,
            &self.anchor_key,
            &cn,
            OffsetDateTime::now_utc(),
        )
        .expect("issuer")
    }

    /// The rendered objects of one file of the tree.
    pub fn rendered(&self, path: &str) -> Vec<serde_json::Value> {
        let text = self
            .tree
            .get(path)
            .unwrap_or_else(|| panic!("`{path}` is not rendered"));
        serde_saphyr::from_multiple::<serde_json::Value>(text)
            .expect("rendered YAML parses")
            .into_iter()
            .filter(|v| !v.is_null())
            .collect()
    }

    /// The Link of a link, as rendered in `<source>/links/link-<target>.yaml`.
    pub fn rendered_link(&self, link: &LinkPlan) -> Link {
        let path = format!("{}/links/link-{}.yaml", link.source, link.link_name());
        let value = self
            .rendered(&path)
            .into_iter()
            .find(|o| o["kind"] == "Link")
            .unwrap_or_else(|| panic!("no Link in `{path}`"));
        serde_json::from_value(value).expect("the rendered Link is a Link")
    }

    /// The rendered Namespaces of a cluster.
    pub fn rendered_namespaces(&self, cluster: &str) -> Vec<Namespace> {
        self.rendered(&format!("{cluster}/namespaces/namespaces.yaml"))
            .into_iter()
            .map(|v| serde_json::from_value(v).expect("a Namespace"))
            .collect()
    }

    /// Everything of every cluster: `clients` has a client for each fleet cluster (several
    /// may point at one API server).
    pub async fn install(&self, clients: &BTreeMap<String, kube::Client>) {
        let client = |name: &str| {
            clients
                .get(name)
                .unwrap_or_else(|| panic!("no client for {name}"))
                .clone()
        };
        for cluster in &self.plan.clusters {
            self.install_control_plane(&client(&cluster.name), cluster).await;
        }
        for cluster in &self.plan.clusters {
            for link in &cluster.outgoing {
                self.install_link(&client(&cluster.name), &client(&link.target), link)
                    .await;
            }
        }
    }

    /// What one cluster holds before any link: the Link CRD, the rendered namespaces,
    /// Linkerd's ConfigMaps and issuer, the gateway, remote access for each incoming link,
    /// and an exported service.
    pub async fn install_control_plane(&self, client: &kube::Client, cluster: &ClusterPlan) {
        install_link_crd(client).await;
        for namespace in self.rendered_namespaces(&cluster.name) {
            apply_cluster(client, &namespace).await;
        }
        apply_cluster(client, &namespace(APPS_NAMESPACE)).await;
        let anchors = &self.plan.identity.trust_anchor_pem;
        apply(client, &linkerd_config(&self.plan, anchors)).await;
        apply(client, &trust_roots(&self.plan, anchors)).await;
        apply(client, &issuer_secret(&self.plan, &self.issuer(), anchors)).await;
        if cluster.gateway.is_some() {
            apply(client, &gateway_service(&self.plan, cluster)).await;
        }
        for source in &cluster.incoming_sources {
            let access = RemoteAccess::new(source);
            apply(client, &access.service_account).await;
            apply(client, &access.token_secret).await;
            apply_cluster(client, &access.cluster_role).await;
            apply_cluster(client, &access.binding).await;
        }
        apply(client, &exported_service(APPS_NAMESPACE, EXPORTED_SERVICE)).await;
    }

    /// What a source holds for one link: the rendered Link, both credentials Secrets
    /// (built like `secrets sync` and External Secrets would, from the target's token),
    /// the available controller, the probe Service and its Endpoints, and the mirror of
    /// the target's exported service.
    pub async fn install_link(&self, source: &kube::Client, target: &kube::Client, link: &LinkPlan) {
        apply(source, &self.rendered_link(link)).await;
        let kubeconfig = self.credentials_kubeconfig(target, link).await;
        for (ns, for_destination) in [
            (defaults::MULTICLUSTER_NAMESPACE, false),
            (self.plan.linkerd.namespace.as_str(), true),
        ] {
            apply(
                source,
                &credentials_secret(&self.plan, link, ns, for_destination, &kubeconfig),
            )
            .await;
        }
        apply(source, &controller_deployment(link)).await;
        restart_controller(source, link).await;
        set_available(
            source,
            defaults::MULTICLUSTER_NAMESPACE,
            &link.controller_name(),
            1,
        )
        .await;
        if let Some(gateway) = &link.gateway {
            apply(source, &probe_service(link, gateway.probe_port)).await;
            apply(
                source,
                &probe_endpoints(link, &gateway_ips(&gateway.address), gateway.probe_port),
            )
            .await;
        }
        apply(
            source,
            &mirror_service(APPS_NAMESPACE, EXPORTED_SERVICE, link.link_name()),
        )
        .await;
    }

    /// The kubeconfig `secrets sync` writes for a link (its own builder): the fleet's
    /// `apiServer` of the target, the CA and token of the target's remote-access token Secret.
    pub async fn credentials_kubeconfig(&self, target: &kube::Client, link: &LinkPlan) -> SecretString {
        let (token, ca) = wait_for_token(target, &plan::remote_access_token_secret(&link.source)).await;
        let server = self
            .cluster(&link.target)
            .api_server
            .clone()
            .expect("link targets have an apiServer");
        meshfleet_core::live::secrets::link_kubeconfig(
            &link.account(),
            &link.target,
            &server,
            ca.as_bytes(),
            &token,
        )
        .expect("link kubeconfig")
    }
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

fn name_of<K: kube::Resource>(object: &K) -> String {
    object.meta().name.clone().expect("objects have a name")
}

/// Restart `controller-<link>` (delete its pods; the ReplicaSet makes new ones), as
/// after any change of its credentials: a pod older than its Secret's last change is
/// what `credentials-loaded` warns about.
pub async fn restart_controller(source: &kube::Client, link: &LinkPlan) {
    let selector = controller_deployment(link)
        .spec
        .and_then(|s| s.selector.match_labels)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    Api::<Pod>::namespaced(source.clone(), defaults::MULTICLUSTER_NAMESPACE)
        .delete_collection(
            &DeleteParams::default().grace_period(0),
            &ListParams::default().labels(&selector),
        )
        .await
        .expect("restart the controller's pods");
}

/// Server-side apply of a namespaced object.
pub async fn apply<K>(client: &kube::Client, object: &K) -> K
where
    K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let ns = object
        .meta()
        .namespace
        .clone()
        .expect("namespaced objects have a namespace");
    let name = name_of(object);
    Api::<K>::namespaced(client.clone(), &ns)
        .patch(&name, &apply_params(), &Patch::Apply(object))
        .await
        .unwrap_or_else(|e| panic!("apply {} {ns}/{name}: {e}", K::kind(&())))
}

/// Server-side apply of a cluster-scoped object.
pub async fn apply_cluster<K>(client: &kube::Client, object: &K) -> K
where
    K: kube::Resource<Scope = ClusterResourceScope, DynamicType = ()>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let name = name_of(object);
    Api::<K>::all(client.clone())
        .patch(&name, &apply_params(), &Patch::Apply(object))
        .await
        .unwrap_or_else(|e| panic!("apply {} {name}: {e}", K::kind(&())))
}

/// Delete a namespaced object; an absent one is fine.
pub async fn delete<K>(client: &kube::Client, namespace: &str, name: &str)
where
    K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    match Api::<K>::namespaced(client.clone(), namespace)
        .delete(name, &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => panic!("delete {} {namespace}/{name}: {e}", K::kind(&())),
    }
}

/// Write a Deployment's status as the Deployment controller would once `replicas` pods
/// are available (the test clusters run no such controller).
pub async fn set_available(client: &kube::Client, namespace: &str, name: &str, replicas: i32) {
    let status = json!({"status": {
        "observedGeneration": 1,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
    }});
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap_or_else(|e| panic!("status of {namespace}/{name}: {e}"));
}

/// Install the real Link CRD (`../shared/crds`) and wait until it is served.
pub async fn install_link_crd(client: &kube::Client) {
    let path = shared_dir().join("crds/multicluster.linkerd.io_links.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let crd: CustomResourceDefinition = serde_saphyr::from_str(&text).expect("the Link CRD parses");
    apply_cluster(client, &crd).await;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let established = api
            .get(&name_of(&crd))
            .await
            .ok()
            .and_then(|c| c.status)
            .and_then(|s| s.conditions)
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Established" && c.status == "True"));
        if established {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the Link CRD was not established in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The token and CA the token controller writes into a remote-access token Secret.
pub async fn wait_for_token(client: &kube::Client, secret: &str) -> (SecretString, String) {
    let api: Api<Secret> = Api::namespaced(client.clone(), defaults::MULTICLUSTER_NAMESPACE);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(data) = api.get_opt(secret).await.ok().flatten().and_then(|s| s.data)
            && let (Some(token), Some(ca)) = (data.get("token"), data.get("ca.crt"))
        {
            return (
                SecretString::from(String::from_utf8_lossy(&token.0).into_owned()),
                String::from_utf8_lossy(&ca.0).into_owned(),
            );
        }
        assert!(
            Instant::now() < deadline,
            "the token controller did not fill `{secret}` in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
