//! `installMethod: jobs`: seed 000's way of installing Linkerd, done right.
//!
//! Each component (CRDs, control plane, viz, multicluster) is a Job that runs the real
//! `linkerd` CLI of the fleet's version and applies its output with
//! `kubectl apply --server-side` ([`script`]), with its own ServiceAccount and the least
//! RBAC that is sufficient for it, every rule with a comment naming the step that needs
//! it ([`rbac`]). The same Job installs, re-runs without changing anything (Flux
//! re-creates it once its TTL removed it) and upgrades after a version bump; the tests
//! run every script with the real CLI as its ServiceAccount against a real API server.
//!
//! Jobs are named after the Linkerd version plus a short hash of their spec (which holds
//! a digest of the files they mount), so a version bump, or a new anchor bundle or new
//! values, renders a new Job instead of needing `kubectl delete job`. The image comes
//! from `gitops.jobs.image`: Linkerd's own CLI image is built FROM scratch and has no
//! shell or kubectl. The trust-anchor bundle reaches the control plane as a mounted
//! ConfigMap; the issuer Secret is mounted too, so the pod starts only once it exists.

mod rbac;
mod script;

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, PodSpec, PodTemplateSpec,
    ResourceRequirements, SecretVolumeSource, SecurityContext, ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::Value;
use sha2::{Digest, Sha256};

use meshfleet_fleet::defaults;
use meshfleet_fleet::model::Engine;
use meshfleet_plan::{ClusterPlan, FleetPlan};

pub use self::rbac::LINKERD_CRDS;
use self::rbac::{Rule, Rules, Scope};
pub use self::script::{
    CONTROL_PLANE_DEPLOYMENTS, CONTROL_PLANE_WEBHOOKS, MOUNT, ROLLOUT_TIMEOUT, VIZ_WEBHOOKS,
};
use super::stage::{ISSUER_SECRET, ManifestFile, StageKind};
use super::{meta, values};

/// ConfigMap with the fleet's anchor bundle, mounted into the control-plane Job.
pub const TRUST_ANCHORS_CONFIGMAP: &str = "meshfleet-trust-anchors";
/// ConfigMap with the multicluster values, mounted into the multicluster Job.
pub const MULTICLUSTER_VALUES_CONFIGMAP: &str = "meshfleet-multicluster-values";
/// Seconds a finished Job is kept before Kubernetes deletes it (Flux only: under Argo CD
/// a Job that vanished is OutOfSync, and self-heal would run it again).
pub const TTL_SECONDS: i32 = 300;
/// Retries of a failing install.
pub const BACKOFF_LIMIT: i32 = 3;
/// Seconds a Job may run, all retries included.
pub const ACTIVE_DEADLINE_SECONDS: i64 = 1200;
/// Pod-template annotation with the SHA-256 of the files a Job mounts: a new bundle or
/// new values change the Job's spec, so its name.
pub const INPUTS_ANNOTATION: &str = "meshfleet.io/inputs-sha256";

/// What a component's Job runs and may touch.
struct Component {
    /// Short name: `crds`, `control-plane`, `viz`, `multicluster`.
    short: &'static str,
    namespace: String,
    rules: Rules,
    script: String,
    config_volume: Option<(&'static str, &'static str)>,
    issuer_volume: bool,
    /// The content of the files it mounts (digested into the pod template).
    inputs: String,
}

/// The manifests of a Jobs stage, or `None` for stages the Jobs method does not replace.
pub fn stage_files(plan: &FleetPlan, cluster: &ClusterPlan, stage: StageKind) -> Option<Vec<ManifestFile>> {
    let mut files = Vec::new();
    let mut inputs = String::new();
    if stage == StageKind::LinkerdMulticluster {
        let values = super::to_yaml("values.yaml", &values::multicluster(plan, cluster)).unwrap_or_default();
        let mut cm = ConfigMap {
            metadata: meta(
                plan,
                MULTICLUSTER_VALUES_CONFIGMAP,
                Some(defaults::MULTICLUSTER_NAMESPACE),
            ),
            ..ConfigMap::default()
        };
        cm.data = Some(BTreeMap::from([("values.yaml".to_string(), values.clone())]));
        inputs = values;
        files.push(ManifestFile {
            name: "values.yaml".into(),
            objects: vec![json(&cm)],
            rule_reasons: Vec::new(),
        });
    }
    let component = component(plan, cluster, stage, inputs)?;
    let (rbac, reasons) = rbac(plan, &component);
    files.push(ManifestFile {
        name: "rbac.yaml".into(),
        objects: rbac,
        rule_reasons: reasons,
    });
    files.push(ManifestFile {
        name: "job.yaml".into(),
        objects: vec![json(&job(plan, &component))],
        rule_reasons: Vec::new(),
    });
    Some(files)
}

/// The trust-anchor ConfigMap the control-plane Job mounts (identity stage, Jobs only).
pub fn trust_anchors_configmap(plan: &FleetPlan) -> Value {
    let mut cm = ConfigMap {
        metadata: meta(plan, TRUST_ANCHORS_CONFIGMAP, Some(&plan.linkerd.namespace)),
        ..ConfigMap::default()
    };
    cm.data = Some(BTreeMap::from([(
        "ca-bundle.crt".to_string(),
        plan.identity.trust_anchor_pem.clone(),
    )]));
    json(&cm)
}

/// The name of a component's Job: `linkerd-<component>-<version>-<hash of its spec>`.
pub fn job_name(plan: &FleetPlan, short: &str, spec_digest: &str) -> String {
    format!(
        "linkerd-{short}-{}-{}",
        plan.linkerd.version.to_string().replace('.', "-"),
        &spec_digest[..8]
    )
}

fn json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn component(plan: &FleetPlan, cluster: &ClusterPlan, stage: StageKind, inputs: String) -> Option<Component> {
    let ns = plan.linkerd.namespace.clone();
    let component = match stage {
        StageKind::LinkerdCrds => Component {
            short: "crds",
            namespace: ns,
            rules: rbac::crds(),
            script: script::crds(plan),
            config_volume: None,
            issuer_volume: false,
            inputs,
        },
        StageKind::LinkerdControlPlane => Component {
            short: "control-plane",
            namespace: ns,
            rules: rbac::control_plane(plan),
            script: script::control_plane(plan),
            config_volume: Some((TRUST_ANCHORS_CONFIGMAP, "trust-anchors")),
            issuer_volume: true,
            inputs: plan.identity.trust_anchor_pem.clone(),
        },
        StageKind::LinkerdViz => Component {
            short: "viz",
            namespace: defaults::VIZ_NAMESPACE.to_string(),
            rules: rbac::viz(plan),
            script: script::viz(plan),
            config_volume: None,
            issuer_volume: false,
            inputs,
        },
        StageKind::LinkerdMulticluster => Component {
            short: "multicluster",
            namespace: defaults::MULTICLUSTER_NAMESPACE.to_string(),
            rules: rbac::multicluster(cluster),
            script: script::multicluster(plan),
            config_volume: Some((MULTICLUSTER_VALUES_CONFIGMAP, "values")),
            issuer_volume: false,
            inputs,
        },
        _ => return None,
    };
    Some(component)
}

fn account_name(c: &Component) -> String {
    format!("meshfleet-install-{}", c.short)
}

fn policy_rules(rules: &[Rule]) -> Vec<PolicyRule> {
    rules
        .iter()
        .map(|r| PolicyRule {
            api_groups: Some(r.groups.iter().map(ToString::to_string).collect()),
            resources: Some(r.resources.iter().map(ToString::to_string).collect()),
            verbs: r.verbs.iter().map(ToString::to_string).collect(),
            resource_names: (!r.names.is_empty()).then(|| r.names.clone()),
            non_resource_urls: None,
        })
        .collect()
}

/// ServiceAccount, roles and bindings, and the reason of every rule in file order.
fn rbac(plan: &FleetPlan, c: &Component) -> (Vec<Value>, Vec<String>) {
    let name = account_name(c);
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: name.clone(),
        namespace: Some(c.namespace.clone()),
        api_group: None,
    };
    let mut objects = vec![json(&ServiceAccount {
        metadata: meta(plan, &name, Some(&c.namespace)),
        ..ServiceAccount::default()
    })];
    let mut reasons = Vec::new();
    for (scope, rules) in &c.rules {
        if rules.is_empty() {
            continue;
        }
        reasons.extend(rules.iter().map(|r| r.why.clone()));
        match scope {
            Scope::Cluster => {
                objects.push(json(&ClusterRole {
                    metadata: meta(plan, &name, None),
                    rules: Some(policy_rules(rules)),
                    aggregation_rule: None,
                }));
                objects.push(json(&ClusterRoleBinding {
                    metadata: meta(plan, &name, None),
                    role_ref: RoleRef {
                        api_group: "rbac.authorization.k8s.io".into(),
                        kind: "ClusterRole".into(),
                        name: name.clone(),
                    },
                    subjects: Some(vec![subject.clone()]),
                }));
            }
            Scope::Namespace(namespace) => {
                objects.push(json(&Role {
                    metadata: meta(plan, &name, Some(namespace)),
                    rules: Some(policy_rules(rules)),
                }));
                objects.push(json(&RoleBinding {
                    metadata: meta(plan, &name, Some(namespace)),
                    role_ref: RoleRef {
                        api_group: "rbac.authorization.k8s.io".into(),
                        kind: "Role".into(),
                        name: name.clone(),
                    },
                    subjects: Some(vec![subject.clone()]),
                }));
            }
        }
    }
    (objects, reasons)
}

fn job(plan: &FleetPlan, c: &Component) -> Job {
    // The scratch folder holds the rendered manifests and the webhook key pairs passed
    // back to the CLI: in memory, gone with the pod.
    let mut volumes = vec![Volume {
        name: "tmp".into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity("64Mi".into())),
        }),
        ..Volume::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: "tmp".into(),
        mount_path: "/tmp".into(),
        ..VolumeMount::default()
    }];
    if let Some((configmap, dir)) = c.config_volume {
        volumes.push(Volume {
            name: dir.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: configmap.into(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: dir.into(),
            mount_path: format!("{MOUNT}/{dir}"),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    if c.issuer_volume {
        // The issuer Secret cert-manager or External Secrets writes: the pod starts only
        // once it exists, so the install never runs without its issuer.
        volumes.push(Volume {
            name: "issuer".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(ISSUER_SECRET.into()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: "issuer".into(),
            mount_path: format!("{MOUNT}/issuer"),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    let quantity = |q: &str| Quantity(q.to_string());
    let container = Container {
        name: "install".into(),
        image: plan.gitops.jobs_image.clone(),
        command: Some(vec!["/bin/sh".into(), "-c".into(), c.script.clone()]),
        env: Some(vec![EnvVar {
            name: "HOME".into(),
            value: Some("/tmp".into()),
            value_from: None,
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), quantity("100m")),
                ("memory".to_string(), quantity("128Mi")),
            ])),
            limits: Some(BTreeMap::from([("memory".to_string(), quantity("512Mi"))])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    let mut pod_meta = meta(plan, &account_name(c), None);
    pod_meta.name = None;
    if !c.inputs.is_empty() {
        pod_meta.annotations = Some(BTreeMap::from([(
            INPUTS_ANNOTATION.to_string(),
            hex::encode(Sha256::digest(c.inputs.as_bytes())),
        )]));
    }
    let template = PodTemplateSpec {
        metadata: Some(pod_meta),
        spec: Some(PodSpec {
            service_account_name: Some(account_name(c)),
            restart_policy: Some("Never".into()),
            containers: vec![container],
            volumes: Some(volumes),
            ..PodSpec::default()
        }),
    };
    let spec = JobSpec {
        backoff_limit: Some(BACKOFF_LIMIT),
        active_deadline_seconds: Some(ACTIVE_DEADLINE_SECONDS),
        ttl_seconds_after_finished: match plan.gitops.engine {
            Engine::Flux => Some(TTL_SECONDS),
            Engine::Argocd => None,
        },
        template,
        ..JobSpec::default()
    };
    let digest = hex::encode(Sha256::digest(serde_json::to_vec(&spec).unwrap_or_default()));
    let mut metadata = meta(plan, &job_name(plan, c.short, &digest), Some(&c.namespace));
    // Finished Jobs are removed by their TTL; Flux must not prune one that is still
    // running, and must recreate (not patch) a Job whose immutable template changed.
    // Under Argo CD a Job is an ordinary resource of its Application: created once per
    // name (version and spec), waited for through Argo CD's Job health before the next
    // wave, kept while its name is rendered and pruned when a new version renames it. A
    // `Sync` hook instead would run again at every sync of the Application.
    if plan.gitops.engine == Engine::Flux {
        metadata.annotations = Some(
            [
                ("kustomize.toolkit.fluxcd.io/prune", "disabled"),
                ("kustomize.toolkit.fluxcd.io/force", "enabled"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
    }
    Job {
        metadata,
        spec: Some(spec),
        status: None,
    }
}
