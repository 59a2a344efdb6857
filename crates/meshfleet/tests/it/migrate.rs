//! `migrate` against real API servers (`testenv::private`): the objects the deprecated
//! `linkerd multicluster link` made are created as its chart makes them (reference
//! section 2.5), next to objects that must survive, and `--apply` is run before and
//! after the declarative controller becomes available.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, Namespace, PodSpec, PodTemplateSpec, Secret, Service, ServiceAccount, ServicePort, ServiceSpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::serde::Serialize;
use k8s_openapi::serde::de::DeserializeOwned;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use meshfleet_core::render::resources::{Link, LinkSpec};
use serde_json::{Value, json};

use crate::support::{BASE_FLEET, TempFleet, meshfleet, shared_dir, texts};
use crate::testenv;

const NS: &str = "linkerd-multicluster";

fn meta(name: &str, namespace: Option<&str>, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        labels: (!labels.is_empty()).then(|| {
            labels
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect()
        }),
        ..ObjectMeta::default()
    }
}

/// A node selector no node of the test clusters matches.
const UNSCHEDULABLE: (&str, &str) = ("meshfleet.test/no-such-node", "true");

fn deployment(name: &str, labels: &[(&str, &str)], pod_component: &str) -> Deployment {
    let pod_labels = BTreeMap::from([("component".to_string(), pod_component.to_string())]);
    Deployment {
        metadata: meta(name, Some(NS), labels),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(pod_labels.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "controller".into(),
                        image: Some("cr.l5d.io/linkerd/controller:edge-25.4.4".into()),
                        args: Some(vec!["service-mirror".into(), "west".into()]),
                        ..Container::default()
                    }],
                    // No node matches, so the pods stay Pending until a test lifts it:
                    // the test clusters' scheduler and KWOK would otherwise make the
                    // Deployment available at once.
                    node_selector: Some(BTreeMap::from([(
                        UNSCHEDULABLE.0.to_string(),
                        UNSCHEDULABLE.1.to_string(),
                    )])),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The one rule a legacy RBAC fixture needs (content does not matter to `migrate`).
fn rule(resources: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(resources.iter().map(ToString::to_string).collect()),
        verbs: vec!["get".into(), "list".into(), "watch".into()],
        ..PolicyRule::default()
    }
}

/// The legacy controller's ServiceAccount as a binding subject.
fn subject() -> Subject {
    Subject {
        kind: "ServiceAccount".into(),
        name: "linkerd-service-mirror-west".into(),
        namespace: Some(NS.into()),
        ..Subject::default()
    }
}

fn link(name: &str) -> Link {
    let mut link = Link::new(
        name,
        LinkSpec {
            target_cluster_name: name.into(),
            target_cluster_domain: "cluster.local".into(),
            target_cluster_linkerd_namespace: "linkerd".into(),
            cluster_credentials_secret: format!("cluster-credentials-{name}"),
            ..LinkSpec::default()
        },
    );
    link.metadata.namespace = Some(NS.into());
    link.metadata.annotations = Some(BTreeMap::from([(
        "linkerd.io/created-by".to_string(),
        "linkerd/cli edge-25.2.1".to_string(),
    )]));
    link
}

/// Create a namespaced object in its namespace.
async fn create<K>(client: &kube::Client, object: &K)
where
    K: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug,
{
    let ns = object.meta().namespace.clone().expect("namespaced fixture");
    Api::<K>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), object)
        .await
        .unwrap_or_else(|e| panic!("create {:?}: {e}", object.meta().name));
}

/// Create a cluster-scoped object.
async fn create_cluster<K>(client: &kube::Client, object: &K)
where
    K: kube::Resource<DynamicType = (), Scope = ClusterResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug,
{
    Api::<K>::all(client.clone())
        .create(&PostParams::default(), object)
        .await
        .unwrap_or_else(|e| panic!("create {:?}: {e}", object.meta().name));
}

async fn exists<K>(api: Api<K>, name: &str) -> bool
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
{
    api.get_opt(name).await.expect("get").is_some()
}

/// The Link CRD from `../shared/crds`, established.
async fn install_link_crd(client: &kube::Client) {
    let text = std::fs::read_to_string(shared_dir().join("crds/multicluster.linkerd.io_links.yaml"))
        .expect("read CRD");
    let crd: CustomResourceDefinition = serde_saphyr::from_str(&text).expect("CRD parses");
    create_cluster(client, &crd).await;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(
            api,
            "links.multicluster.linkerd.io",
            conditions::is_crd_established(),
        ),
    )
    .await
    .expect("Link CRD established in time")
    .expect("watch CRD");
}

/// What `linkerd multicluster link --cluster-name west --ha` leaves on east, and things
/// that must survive the migration.
async fn legacy_link(client: &kube::Client) {
    install_link_crd(client).await;
    create_cluster(
        client,
        &Namespace {
            metadata: meta(NS, None, &[]),
            ..Namespace::default()
        },
    )
    .await;
    let legacy = [
        ("component", "service-mirror"),
        ("mirror.linkerd.io/cluster-name", "west"),
    ];
    create(
        client,
        &deployment("linkerd-service-mirror-west", &legacy, "linkerd-service-mirror"),
    )
    .await;
    let probe = ServiceSpec {
        ports: Some(vec![ServicePort {
            name: Some("mc-probe".into()),
            port: 4191,
            ..ServicePort::default()
        }]),
        ..ServiceSpec::default()
    };
    let probe_labels = [
        ("mirror.linkerd.io/mirrored-gateway", "true"),
        ("mirror.linkerd.io/cluster-name", "west"),
    ];
    create(
        client,
        &Service {
            metadata: meta("probe-gateway-west", Some(NS), &probe_labels),
            spec: Some(probe.clone()),
            ..Service::default()
        },
    )
    .await;
    let pdb = PodDisruptionBudgetSpec {
        max_unavailable: None,
        ..PodDisruptionBudgetSpec::default()
    };
    create(
        client,
        &PodDisruptionBudget {
            metadata: meta("linkerd-service-mirror-west", Some(NS), &legacy),
            spec: Some(pdb),
            ..PodDisruptionBudget::default()
        },
    )
    .await;
    create(
        client,
        &ServiceAccount {
            metadata: meta("linkerd-service-mirror-west", Some(NS), &legacy),
            ..ServiceAccount::default()
        },
    )
    .await;
    let creds = "linkerd-service-mirror-read-remote-creds-west";
    create(
        client,
        &Role {
            metadata: meta(creds, Some(NS), &legacy),
            rules: Some(vec![rule(&["secrets"])]),
        },
    )
    .await;
    let role_ref = |kind: &str, name: &str| RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: name.into(),
    };
    create(
        client,
        &RoleBinding {
            metadata: meta(creds, Some(NS), &legacy),
            role_ref: role_ref("Role", creds),
            subjects: Some(vec![subject()]),
        },
    )
    .await;
    let local = "linkerd-service-mirror-access-local-resources-west";
    create_cluster(
        client,
        &ClusterRole {
            metadata: meta(local, None, &legacy),
            rules: Some(vec![rule(&["services", "endpoints"])]),
            ..ClusterRole::default()
        },
    )
    .await;
    create_cluster(
        client,
        &ClusterRoleBinding {
            metadata: meta(local, None, &legacy),
            role_ref: role_ref("ClusterRole", local),
            subjects: Some(vec![subject()]),
        },
    )
    .await;
    // The legacy Link (the fleet declares it) and one the fleet does not know.
    create(client, &link("west")).await;
    create(client, &link("old-hub")).await;
    // Survivors: the credentials, the chart's probe, the target-side account.
    create(
        client,
        &Secret {
            metadata: meta("cluster-credentials-west", Some(NS), &[]),
            ..Secret::default()
        },
    )
    .await;
    create(
        client,
        &Service {
            metadata: meta(
                "probe-west",
                Some(NS),
                &[
                    ("mirror.linkerd.io/mirrored-gateway", "true"),
                    ("mirror.linkerd.io/cluster-name", "west"),
                ],
            ),
            spec: Some(probe),
            ..Service::default()
        },
    )
    .await;
    create(
        client,
        &ServiceAccount {
            metadata: meta("linkerd-service-mirror-remote-access-west", Some(NS), &[]),
            ..ServiceAccount::default()
        },
    )
    .await;
}

/// Which legacy objects still exist, as `Kind name`.
async fn legacy_left(client: &kube::Client) -> Vec<String> {
    let c = || client.clone();
    let controller = "linkerd-service-mirror-west";
    let creds = "linkerd-service-mirror-read-remote-creds-west";
    let local = "linkerd-service-mirror-access-local-resources-west";
    let found = [
        (
            "Deployment",
            controller,
            exists(Api::<Deployment>::namespaced(c(), NS), controller).await,
        ),
        (
            "Service",
            "probe-gateway-west",
            exists(Api::<Service>::namespaced(c(), NS), "probe-gateway-west").await,
        ),
        (
            "PodDisruptionBudget",
            controller,
            exists(Api::<PodDisruptionBudget>::namespaced(c(), NS), controller).await,
        ),
        (
            "ServiceAccount",
            controller,
            exists(Api::<ServiceAccount>::namespaced(c(), NS), controller).await,
        ),
        (
            "Role",
            creds,
            exists(Api::<Role>::namespaced(c(), NS), creds).await,
        ),
        (
            "RoleBinding",
            creds,
            exists(Api::<RoleBinding>::namespaced(c(), NS), creds).await,
        ),
        (
            "ClusterRole",
            local,
            exists(Api::<ClusterRole>::all(c()), local).await,
        ),
        (
            "ClusterRoleBinding",
            local,
            exists(Api::<ClusterRoleBinding>::all(c()), local).await,
        ),
    ];
    found
        .iter()
        .filter(|f| f.2)
        .map(|(kind, name, _)| format!("{kind} {name}"))
        .collect()
}

/// The Lease `service-mirror-write-<link>` as Linkerd's service mirror writes it when
/// the pod selected by `pods` leads (leaderelection's LeaseLock, 30 s).
async fn hold_lease(client: &kube::Client, link: &str, pods: &str) {
    use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    let listed = Api::<Pod>::namespaced(client.clone(), NS)
        .list(&kube::api::ListParams::default().labels(pods))
        .await
        .expect("list pods");
    let holder = listed
        .items
        .first()
        .and_then(|p| p.metadata.name.clone())
        .unwrap_or_else(|| panic!("no pod {pods}"));
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    let lease = Lease {
        metadata: meta(&format!("service-mirror-write-{link}"), Some(NS), &[]),
        spec: Some(LeaseSpec {
            holder_identity: Some(holder),
            lease_duration_seconds: Some(30),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        }),
    };
    create(client, &lease).await;
}

fn migrate(dir: &Path, kubeconfig: &Path, args: &[&str]) -> (i32, String, String) {
    let output = meshfleet(dir)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("migrate")
        .arg(".")
        .args(args)
        .output()
        .expect("run migrate");
    let (stdout, stderr) = texts(&output);
    (output.status.code().unwrap_or(-1), stdout, stderr)
}

#[test]
fn apply_removes_a_legacy_controller_only_once_its_replacement_is_available() {
    let env = testenv::private(&["east", "west"]);
    // One runtime for the whole test: a client dies with the runtime it was made on.
    let rt = testenv::runtime();
    let fleet = TempFleet::new(BASE_FLEET);
    let (dir, kubeconfig) = (fleet.path(), env.kubeconfig());
    let east = rt.block_on(env.client("east"));
    rt.block_on(legacy_link(&east));
    let all_legacy = rt.block_on(legacy_left(&east));
    assert_eq!(all_legacy.len(), 8, "{all_legacy:?}");

    // The plan, in order, names every legacy object and the Link nobody declares.
    let (code, stdout, stderr) = migrate(dir, &kubeconfig, &[]);
    crate::snapshot_parts!("migrate_plan", code, &stdout, &stderr);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let steps: Vec<usize> = [
        "1. commit and sync",
        "2. wait until Deployment `linkerd-multicluster/controller-west`",
        "3. delete",
        "4. Links not managed",
    ]
    .iter()
    .map(|s| stdout.find(s).unwrap_or_else(|| panic!("no `{s}` in\n{stdout}")))
    .collect();
    assert!(
        steps.windows(2).all(|w| w[0] < w[1]),
        "steps out of order:\n{stdout}"
    );
    for object in &all_legacy {
        let (kind, name) = object.split_once(' ').expect("kind name");
        assert!(
            stdout.contains(kind) && stdout.contains(name),
            "{object} not listed:\n{stdout}"
        );
    }
    assert!(stdout.contains("Link `linkerd-multicluster/old-hub`"), "{stdout}");
    assert!(
        stdout.contains("cluster `west` (context `west`): nothing left"),
        "{stdout}"
    );

    // No declarative controller: --apply deletes nothing.
    let (code, stdout, stderr) = migrate(dir, &kubeconfig, &["--apply"]);
    crate::snapshot_parts!("migrate_apply_skipped", code, &stdout, &stderr);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("SKIPPED, the declarative controller `controller-west` is not there yet"),
        "{stdout}"
    );
    assert!(stderr.contains("nothing was deleted"), "{stderr}");
    assert_eq!(rt.block_on(legacy_left(&east)), all_legacy);

    // Present but not available: still nothing.
    let chart_labels = [
        ("component", "controller"),
        ("mirror.linkerd.io/cluster-name", "west"),
        ("linkerd.io/extension", "multicluster"),
    ];
    rt.block_on(create(
        &east,
        &deployment("controller-west", &chart_labels, "controller"),
    ));
    let (code, stdout, _) = migrate(dir, &kubeconfig, &["--apply"]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("is not available yet (0 of 1 replicas)"),
        "{stdout}"
    );
    assert_eq!(rt.block_on(legacy_left(&east)), all_legacy);

    // Available (schedulable: the deployment controller, the scheduler and KWOK make it
    // so): exactly the legacy objects go.
    rt.block_on(async {
        let api = Api::<Deployment>::namespaced(east.clone(), NS);
        api.patch(
            "controller-west",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"nodeSelector": null}}}})),
        )
        .await
        .expect("patch the node selector away");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let d = api.get("controller-west").await.expect("get controller-west");
            if d.status.and_then(|s| s.available_replicas) == Some(1) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "controller-west never became available"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
    // Its pod takes the link's Lease as Linkerd's service mirror does (holder: the pod's
    // name, its HOSTNAME); migrate deletes the old permissions only once it has.
    rt.block_on(hold_lease(&east, "west", "component=controller"));
    let (code, stdout, stderr) = migrate(dir, &kubeconfig, &["-o", "json", "--apply"]);
    crate::snapshot::settings(&[
        (
            r#""holder": "controller-west-[a-z0-9-]+""#,
            r#""holder": "controller-west-[POD]""#,
        ),
        (r#""waitedSeconds": [0-9.]+"#, r#""waitedSeconds": [N]"#),
    ])
    .bind(|| {
        insta::assert_snapshot!(
            "migrate_apply_json",
            crate::snapshot::parts_text(code, &stdout, &stderr)
        );
    });
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("json");
    let legacy = &report["clusters"][0]["legacyLinks"][0];
    assert_eq!(
        (legacy["link"].clone(), legacy["action"].clone()),
        (json!("west"), json!("removed")),
        "{report}"
    );
    let deletions = legacy["deletions"].as_array().expect("deletions");
    assert_eq!(deletions.len(), 8, "{report}");
    assert!(deletions.iter().all(|d| d["outcome"] == "deleted"), "{report}");
    assert_eq!(
        deletions[0]["kind"],
        json!("Deployment"),
        "the controller goes first"
    );
    assert_eq!(report["legacyRemaining"], json!(0));
    assert!(rt.block_on(legacy_left(&east)).is_empty());
    rt.block_on(async {
        let c = || east.clone();
        assert!(exists(Api::<Link>::namespaced(c(), NS), "west").await);
        assert!(exists(Api::<Link>::namespaced(c(), NS), "old-hub").await);
        assert!(exists(Api::<Secret>::namespaced(c(), NS), "cluster-credentials-west").await);
        assert!(exists(Api::<Service>::namespaced(c(), NS), "probe-west").await);
        assert!(exists(Api::<Deployment>::namespaced(c(), NS), "controller-west").await);
        let remote = "linkerd-service-mirror-remote-access-west";
        assert!(exists(Api::<ServiceAccount>::namespaced(c(), NS), remote).await);
    });

    // Idempotent: a second run finds nothing and deletes nothing.
    for args in [&[][..], &["--apply"][..]] {
        let (code, stdout, stderr) = migrate(dir, &kubeconfig, args);
        assert_eq!(code, 0, "{args:?}\n{stdout}\n{stderr}");
        assert!(
            !stdout.contains("deleted") && !stdout.contains("legacy controller"),
            "{stdout}"
        );
        assert!(
            stderr.contains("no legacy `linkerd multicluster link` controllers found"),
            "{stderr}"
        );
    }
}
