//! `installMethod: jobs`: seed 000's way of installing Linkerd, done right.
//!
//! Each component (CRDs, control plane, viz, multicluster) is a Job that runs the
//! `linkerd` CLI piped into `kubectl apply --server-side`, with its own ServiceAccount
//! and the least RBAC its install needs (each rule carries a comment saying why). Jobs
//! are named after the Linkerd version plus a short hash of their spec, so a version bump
//! (or any change to what a Job does) renders a new Job instead of needing
//! `kubectl delete job`. The image comes from `gitops.jobs.image`: Linkerd's own CLI
//! image is built FROM scratch and has no shell or kubectl. The trust anchor bundle and
//! the issuer reach `linkerd install` as mounted files, from the same issuer Secret the
//! Helm method uses.

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

use crate::defaults;
use crate::fleet::model::Engine;
use crate::plan::{ClusterPlan, FleetPlan};

use super::stages::{ISSUER_SECRET, ManifestFile, StageKind};
use super::{meta, values};

/// ConfigMap with the fleet's anchor bundle, mounted into the control-plane Job.
pub const TRUST_ANCHORS_CONFIGMAP: &str = "meshfleet-trust-anchors";
/// ConfigMap with the multicluster values, mounted into the multicluster Job.
pub const MULTICLUSTER_VALUES_CONFIGMAP: &str = "meshfleet-multicluster-values";
/// Seconds a finished Job is kept before Kubernetes deletes it.
pub const TTL_SECONDS: i32 = 300;
/// Retries of a failing install.
pub const BACKOFF_LIMIT: i32 = 3;

const MOUNT: &str = "/var/run/meshfleet";

/// One RBAC rule and why the install needs it.
struct Rule {
    groups: &'static [&'static str],
    resources: &'static [&'static str],
    verbs: &'static [&'static str],
    names: &'static [&'static str],
    why: &'static str,
}

/// Verbs server-side apply needs to create or update an object.
const APPLY: &[&str] = &["get", "list", "create", "patch", "update"];
/// Apply, plus granting permissions the Job itself does not hold.
const APPLY_RBAC: &[&str] = &["get", "list", "create", "patch", "update", "escalate", "bind"];

fn rule(
    groups: &'static [&'static str],
    resources: &'static [&'static str],
    verbs: &'static [&'static str],
    why: &'static str,
) -> Rule {
    Rule {
        groups,
        resources,
        verbs,
        names: &[],
        why,
    }
}

/// What a component's Job runs and may touch.
struct Component {
    /// Short name: `crds`, `control-plane`, `viz`, `multicluster`.
    short: &'static str,
    namespace: String,
    cluster_rules: Vec<Rule>,
    namespace_rules: Vec<Rule>,
    /// Rules in the control-plane namespace (reading `linkerd-config`).
    linkerd_rules: Vec<Rule>,
    script: String,
    config_volume: Option<(&'static str, &'static str)>,
    issuer_volume: bool,
}

/// The manifests of a Jobs stage, or `None` for stages the Jobs method does not replace.
pub fn stage_files(plan: &FleetPlan, cluster: &ClusterPlan, stage: StageKind) -> Option<Vec<ManifestFile>> {
    let component = component(plan, stage)?;
    let mut files = Vec::new();
    if stage == StageKind::LinkerdMulticluster {
        let values = values::multicluster(plan, cluster);
        let mut cm = ConfigMap {
            metadata: meta(plan, MULTICLUSTER_VALUES_CONFIGMAP, Some(&component.namespace)),
            ..ConfigMap::default()
        };
        cm.data = Some(BTreeMap::from([(
            "values.yaml".to_string(),
            super::to_yaml("values.yaml", &values).unwrap_or_default(),
        )]));
        files.push(ManifestFile {
            name: "values.yaml".into(),
            objects: vec![json(&cm)],
            rule_reasons: Vec::new(),
        });
    }
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

/// The shell preamble of every Job: fail fast, and refuse an image whose `linkerd` CLI is
/// not the fleet's version (a wrong image would install another release).
fn preamble(plan: &FleetPlan) -> String {
    let edge = plan.linkerd.version.edge_tag();
    format!(
        "set -eu\nwant={edge}\nhave=\"$(linkerd version --client --short 2>/dev/null || true)\"\ncase \"$have\" in\n  *\"$want\"*) ;;\n  *) echo \"gitops.jobs.image has linkerd '$have', the fleet wants $want\" >&2; exit 1 ;;\nesac\n"
    )
}

const APPLY_CMD: &str = "kubectl apply --server-side --force-conflicts --field-manager=meshfleet-jobs -f -";

fn component(plan: &FleetPlan, stage: StageKind) -> Option<Component> {
    let ns = plan.linkerd.namespace.clone();
    let l = &plan.linkerd;
    let read_config = || {
        vec![Rule {
            groups: &[""],
            resources: &["configmaps"],
            verbs: &["get"],
            names: &["linkerd-config"],
            why: "the extension install reads the control plane's settings from `linkerd-config`",
        }]
    };
    let crd_read = || {
        rule(
            &["apiextensions.k8s.io"],
            &["customresourcedefinitions"],
            &["get", "list"],
            "the CLI checks that Linkerd's and the Gateway API CRDs exist",
        )
    };
    let namespace_rule = || {
        rule(
            &[""],
            &["namespaces"],
            APPLY,
            "the install output contains its Namespace (labels and annotations)",
        )
    };
    let cluster_rbac = || {
        rule(
            &["rbac.authorization.k8s.io"],
            &["clusterroles", "clusterrolebindings"],
            APPLY_RBAC,
            "the component's ClusterRoles; escalate and bind grant rights this Job does not hold itself",
        )
    };
    let ns_rbac = || {
        rule(
            &["rbac.authorization.k8s.io"],
            &["roles", "rolebindings"],
            APPLY_RBAC,
            "the component's Roles; escalate and bind grant rights this Job does not hold itself",
        )
    };
    let core = || {
        rule(
            &[""],
            &["configmaps", "secrets", "serviceaccounts", "services"],
            APPLY,
            "configuration, webhook certificates, accounts and Services of the component",
        )
    };
    let workloads = || rule(&["apps"], &["deployments"], APPLY, "the component's Deployments");
    let policy = || {
        rule(
            &["policy.linkerd.io"],
            &[
                "servers",
                "serverauthorizations",
                "authorizationpolicies",
                "meshtlsauthentications",
                "networkauthentications",
                "httproutes",
            ],
            APPLY,
            "the component's own Linkerd policy objects",
        )
    };
    let pdb = || {
        rule(
            &["policy"],
            &["poddisruptionbudgets"],
            APPLY,
            "disruption budgets (HA settings)",
        )
    };
    let mut flags = String::new();
    if l.namespace != defaults::LINKERD_NAMESPACE {
        flags.push_str(&format!(" --linkerd-namespace {}", l.namespace));
    }
    let component = match stage {
        StageKind::LinkerdCrds => Component {
            short: "crds",
            namespace: ns,
            cluster_rules: vec![rule(
                &["apiextensions.k8s.io"],
                &["customresourcedefinitions"],
                APPLY,
                "`linkerd install --crds` outputs Linkerd's CRDs, applied server-side",
            )],
            namespace_rules: Vec::new(),
            linkerd_rules: Vec::new(),
            script: format!("{}linkerd install --crds{flags} | {APPLY_CMD}\n", preamble(plan)),
            config_volume: None,
            issuer_volume: false,
        },
        StageKind::LinkerdControlPlane => {
            let mut settings = format!(
                "{flags} --identity-trust-anchors-file {MOUNT}/trust-anchors/ca-bundle.crt --identity-trust-domain {} --cluster-domain {}",
                l.trust_domain, l.cluster_domain
            );
            if l.cluster_networks_set {
                settings.push_str(&format!(
                    " --set clusterNetworks={}",
                    l.cluster_networks.join("\\,")
                ));
            }
            Component {
                short: "control-plane",
                namespace: ns.clone(),
                cluster_rules: vec![
                    crd_read(),
                    namespace_rule(),
                    cluster_rbac(),
                    rule(
                        &["admissionregistration.k8s.io"],
                        &["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
                        APPLY,
                        "the proxy injector and the policy and profile validators",
                    ),
                ],
                namespace_rules: vec![
                    core(),
                    workloads(),
                    rule(&["batch"], &["cronjobs"], APPLY, "the heartbeat CronJob"),
                    pdb(),
                    ns_rbac(),
                    policy(),
                ],
                linkerd_rules: Vec::new(),
                // Upgrade keeps the existing webhook certificates; install only the first time.
                script: format!(
                    "{}if kubectl -n {ns} get configmap linkerd-config >/dev/null 2>&1; then\n  linkerd upgrade{settings} | {APPLY_CMD}\nelse\n  linkerd install --identity-external-issuer{settings} | {APPLY_CMD}\nfi\n",
                    preamble(plan)
                ),
                config_volume: Some((TRUST_ANCHORS_CONFIGMAP, "trust-anchors")),
                issuer_volume: true,
            }
        }
        StageKind::LinkerdViz => Component {
            short: "viz",
            namespace: defaults::VIZ_NAMESPACE.to_string(),
            cluster_rules: vec![
                crd_read(),
                namespace_rule(),
                cluster_rbac(),
                rule(
                    &["admissionregistration.k8s.io"],
                    &["mutatingwebhookconfigurations"],
                    APPLY,
                    "the tap injector webhook",
                ),
                rule(
                    &["apiregistration.k8s.io"],
                    &["apiservices"],
                    APPLY,
                    "the tap APIService `v1alpha1.tap.linkerd.io`",
                ),
            ],
            namespace_rules: vec![core(), workloads(), ns_rbac(), policy()],
            linkerd_rules: read_config(),
            script: format!(
                "{}linkerd viz install{flags} --set linkerdNamespace={},identityTrustDomain={},clusterDomain={} | {APPLY_CMD}\n",
                preamble(plan),
                l.namespace,
                l.trust_domain,
                l.cluster_domain
            ),
            config_volume: None,
            issuer_volume: false,
        },
        StageKind::LinkerdMulticluster => Component {
            short: "multicluster",
            namespace: defaults::MULTICLUSTER_NAMESPACE.to_string(),
            cluster_rules: vec![
                rule(
                    &["apiextensions.k8s.io"],
                    &["customresourcedefinitions"],
                    APPLY,
                    "the install output contains the Link CRD",
                ),
                namespace_rule(),
                cluster_rbac(),
            ],
            namespace_rules: vec![core(), workloads(), ns_rbac(), policy(), pdb()],
            linkerd_rules: read_config(),
            script: format!(
                "{}linkerd multicluster install{flags} --values {MOUNT}/values/values.yaml | {APPLY_CMD}\n",
                preamble(plan)
            ),
            config_volume: Some((MULTICLUSTER_VALUES_CONFIGMAP, "values")),
            issuer_volume: false,
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
            resource_names: (!r.names.is_empty()).then(|| r.names.iter().map(ToString::to_string).collect()),
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
    if !c.cluster_rules.is_empty() {
        objects.push(json(&ClusterRole {
            metadata: meta(plan, &name, None),
            rules: Some(policy_rules(&c.cluster_rules)),
            aggregation_rule: None,
        }));
        reasons.extend(c.cluster_rules.iter().map(|r| r.why.to_string()));
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
    for (namespace, rules) in [
        (&c.namespace, &c.namespace_rules),
        (&plan.linkerd.namespace, &c.linkerd_rules),
    ] {
        if rules.is_empty() {
            continue;
        }
        objects.push(json(&Role {
            metadata: meta(plan, &name, Some(namespace)),
            rules: Some(policy_rules(rules)),
        }));
        reasons.extend(rules.iter().map(|r| r.why.to_string()));
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
    (objects, reasons)
}

fn job(plan: &FleetPlan, c: &Component) -> Job {
    let mut volumes = vec![Volume {
        name: "tmp".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
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
    let template = PodTemplateSpec {
        metadata: Some(meta(plan, &account_name(c), None)).map(|mut m| {
            m.name = None;
            m
        }),
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
        active_deadline_seconds: Some(1200),
        ttl_seconds_after_finished: Some(TTL_SECONDS),
        template,
        ..JobSpec::default()
    };
    let digest = hex::encode(Sha256::digest(serde_json::to_vec(&spec).unwrap_or_default()));
    let mut metadata = meta(plan, &job_name(plan, c.short, &digest), Some(&c.namespace));
    let annotations = match plan.gitops.engine {
        // Finished Jobs are removed by their TTL; Flux must not prune one that is still
        // running, and must recreate (not patch) a Job whose immutable template changed.
        Engine::Flux => [
            ("kustomize.toolkit.fluxcd.io/prune", "disabled"),
            ("kustomize.toolkit.fluxcd.io/force", "enabled"),
        ],
        // A Sync hook runs on every sync and is not reported missing after its TTL.
        Engine::Argocd => [
            ("argocd.argoproj.io/hook", "Sync"),
            ("argocd.argoproj.io/hook-delete-policy", "BeforeHookCreation"),
        ],
    };
    metadata.annotations = Some(
        annotations
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    Job {
        metadata,
        spec: Some(spec),
        status: None,
    }
}
