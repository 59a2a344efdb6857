//! The Argo CD layout of a cluster's folder.
//!
//! ```text
//! <cluster>/app-of-apps.yaml   the one Application to apply by hand (or from a parent app)
//! <cluster>/apps/*.yaml        one Application per stage, ordered by sync waves
//! <cluster>/<stage>/...        manifests of the manifest stages
//! ```
//!
//! Helm stages are Applications with a Helm source and `valuesObject`. Argo CD renders
//! charts with `helm template`, so the control-plane and viz charts' generated webhook
//! certificates would differ on every render; those fields are ignored (linkerd2#8440).
//! Waves order child Applications only when Argo CD assesses Application health (see
//! docs/argocd.md), which is why each wave also depends on the objects of the previous one
//! being applied.

use std::collections::BTreeMap;

use meshfleet_plan::{ClusterPlan, FleetPlan};

use super::resources::{
    Application, ApplicationDestination, ApplicationHelm, ApplicationSource, ApplicationSpec, AutomatedSync,
    ResourceIgnoreDifferences, SyncBackoff, SyncPolicy, SyncRetry,
};
use super::stages::{Stage, StageContent, StageKind, write_manifest_folder};
use super::{RenderError, meta, yaml_file};

/// The annotation that orders resources within a sync.
pub const SYNC_WAVE: &str = "argocd.argoproj.io/sync-wave";

/// The annotation that chooses how Argo CD compares an Application's objects.
pub const COMPARE_OPTIONS: &str = "argocd.argoproj.io/compare-options";

/// Name of a stage's Application.
pub fn application_name(plan: &FleetPlan, cluster: &ClusterPlan, stage: StageKind) -> String {
    format!("{}-{}-{}", plan.name, cluster.name, stage.name())
}

/// Sync wave of each stage: one more than the latest stage it depends on.
fn waves(stages: &[Stage]) -> BTreeMap<StageKind, i32> {
    let mut waves: BTreeMap<StageKind, i32> = BTreeMap::new();
    for stage in stages {
        let wave = stage
            .depends_on
            .iter()
            .filter_map(|d| waves.get(d))
            .max()
            .map_or(0, |w: &i32| w + 1);
        waves.insert(stage.kind, wave);
    }
    waves
}

/// Write one cluster's Argo CD tree into `files`.
pub fn write_cluster(
    plan: &FleetPlan,
    cluster: &ClusterPlan,
    stages: &[Stage],
    files: &mut BTreeMap<String, String>,
) -> Result<(), RenderError> {
    let root = &cluster.name;
    let waves = waves(stages);
    for stage in stages {
        let stage_dir = format!("{root}/{}", stage.kind.name());
        let (source, namespace, ignore) = match &stage.content {
            StageContent::Manifests(manifests) => {
                write_manifest_folder(plan, &stage_dir, manifests, files)?;
                let source = ApplicationSource {
                    repo_url: plan.gitops.repository_url.clone(),
                    target_revision: plan.gitops.branch.clone(),
                    path: Some(format!("{}/{stage_dir}", plan.gitops.path)),
                    chart: None,
                    helm: None,
                };
                (source, plan.linkerd.namespace.clone(), Vec::new())
            }
            StageContent::HelmChart(chart) => {
                let source = ApplicationSource {
                    repo_url: plan.linkerd.chart_repository.clone(),
                    target_revision: plan.linkerd.version.to_string(),
                    path: None,
                    chart: Some(chart.chart.to_string()),
                    helm: Some(ApplicationHelm {
                        release_name: chart.chart.to_string(),
                        values_object: chart.values.clone(),
                    }),
                };
                (
                    source,
                    chart.namespace.clone(),
                    generated_at_render(stage.kind, &chart.namespace),
                )
            }
            StageContent::GitKustomize { url, tag, path } => {
                let source = ApplicationSource {
                    repo_url: url.clone(),
                    target_revision: tag.clone(),
                    path: Some(path.clone()),
                    chart: None,
                    helm: None,
                };
                (source, "default".to_string(), Vec::new())
            }
        };
        let mut metadata = meta(
            plan,
            &application_name(plan, cluster, stage.kind),
            Some(&plan.gitops.argocd_namespace),
        );
        // The stages are applied server-side, so they are compared server-side too (the
        // API server's dry run of the apply): with Argo CD's default client-side diff, a
        // real Argo CD kept the identity (ExternalSecret), control-plane and Gateway API
        // Applications OutOfSync after every successful sync (docs/argocd.md).
        metadata.annotations = Some(BTreeMap::from([
            (
                SYNC_WAVE.to_string(),
                waves.get(&stage.kind).copied().unwrap_or_default().to_string(),
            ),
            (COMPARE_OPTIONS.to_string(), "ServerSideDiff=true".to_string()),
        ]));
        let mut sync_options = vec!["ServerSideApply=true".to_string()];
        if !ignore.is_empty() {
            sync_options.push("RespectIgnoreDifferences=true".to_string());
        }
        let app = Application {
            metadata,
            spec: ApplicationSpec {
                project: plan.gitops.argocd_project.clone(),
                source,
                destination: ApplicationDestination {
                    name: Some(cluster.name.clone()),
                    server: None,
                    namespace,
                },
                sync_policy: sync_policy(sync_options),
                ignore_differences: ignore,
            },
        };
        let file = format!("apps/{}.yaml", stage.kind.name());
        files.insert(format!("{root}/{file}"), yaml_file(plan, &file, &[app])?);
    }
    let root_app = Application {
        metadata: meta(
            plan,
            &format!("{}-{}", plan.name, cluster.name),
            Some(&plan.gitops.argocd_namespace),
        ),
        spec: ApplicationSpec {
            project: plan.gitops.argocd_project.clone(),
            source: ApplicationSource {
                repo_url: plan.gitops.repository_url.clone(),
                target_revision: plan.gitops.branch.clone(),
                path: Some(format!("{}/{root}/apps", plan.gitops.path)),
                chart: None,
                helm: None,
            },
            destination: ApplicationDestination {
                name: None,
                server: Some("https://kubernetes.default.svc".into()),
                namespace: plan.gitops.argocd_namespace.clone(),
            },
            sync_policy: SyncPolicy {
                // A child that reads Degraded for a moment (a CRD not yet `Established`)
                // fails the root's sync; a root out of retries would wait for the next
                // commit. Unlimited (Argo CD: a negative limit), still backing off to 3m.
                retry: sync_policy(vec![]).retry.map(|r| SyncRetry { limit: -1, ..r }),
                ..sync_policy(vec![])
            },
            ignore_differences: Vec::new(),
        },
    };
    files.insert(
        format!("{root}/app-of-apps.yaml"),
        yaml_file(plan, "app-of-apps.yaml", &[root_app])?,
    );
    Ok(())
}

/// Automated sync with pruning and self-heal, and Argo CD's own documented backoff
/// (`docs/operator-manual/application.yaml`: 5s, factor 2, at most 3m). A bootstrap
/// meets transient failures (a CRD not `Established` yet, a webhook not serving yet)
/// that clear within seconds; a first retry after 30 s, as meshfleet rendered before,
/// cost an install minutes (docs/argocd.md). Ten retries span about 17 minutes, longer
/// than the five from 30 s to 5m did, before an Application waits for the next commit.
fn sync_policy(sync_options: Vec<String>) -> SyncPolicy {
    SyncPolicy {
        automated: AutomatedSync {
            prune: true,
            self_heal: true,
        },
        sync_options,
        retry: Some(SyncRetry {
            limit: 10,
            backoff: SyncBackoff {
                duration: "5s".into(),
                factor: 2,
                max_duration: "3m".into(),
            },
        }),
    }
}

/// Fields the Linkerd charts fill with values generated at render time, which Argo CD
/// would otherwise see change at every render of the chart (each cache miss of its
/// repo-server, at the latest when its manifest cache expires, 24 h by default), and
/// self-heal would apply:
/// - certificates: the webhooks' TLS Secrets and `caBundle`s (`genSelfSignedCert`,
///   linkerd2#8440);
/// - `checksum/config` on the pod template of each Deployment whose RBAC template holds
///   such a certificate (`linkerd-destination`, `linkerd-proxy-injector`; viz's `tap`,
///   `tap-injector`): a new checksum is a rollout of the controller, so without this
///   Argo CD restarts them again and again (linkerd2#11440);
/// - the heartbeat CronJob's `schedule`, which the chart draws from the render's clock
///   unless `heartbeatSchedule` is set.
fn generated_at_render(stage: StageKind, namespace: &str) -> Vec<ResourceIgnoreDifferences> {
    let secret = |name: &str| ResourceIgnoreDifferences {
        group: None,
        kind: "Secret".into(),
        name: name.into(),
        namespace: Some(namespace.to_string()),
        json_pointers: vec!["/data".into()],
    };
    let webhook = |kind: &str, name: &str| ResourceIgnoreDifferences {
        group: Some("admissionregistration.k8s.io".into()),
        kind: kind.into(),
        name: name.into(),
        namespace: None,
        json_pointers: vec!["/webhooks/0/clientConfig/caBundle".into()],
    };
    let checksum = |name: &str| ResourceIgnoreDifferences {
        group: Some("apps".into()),
        kind: "Deployment".into(),
        name: name.into(),
        namespace: Some(namespace.to_string()),
        json_pointers: vec!["/spec/template/metadata/annotations/checksum~1config".into()],
    };
    match stage {
        StageKind::LinkerdControlPlane => vec![
            secret("linkerd-proxy-injector-k8s-tls"),
            secret("linkerd-sp-validator-k8s-tls"),
            secret("linkerd-policy-validator-k8s-tls"),
            webhook(
                "MutatingWebhookConfiguration",
                "linkerd-proxy-injector-webhook-config",
            ),
            webhook(
                "ValidatingWebhookConfiguration",
                "linkerd-sp-validator-webhook-config",
            ),
            webhook(
                "ValidatingWebhookConfiguration",
                "linkerd-policy-validator-webhook-config",
            ),
            checksum("linkerd-destination"),
            checksum("linkerd-proxy-injector"),
            ResourceIgnoreDifferences {
                group: Some("batch".into()),
                kind: "CronJob".into(),
                name: "linkerd-heartbeat".into(),
                namespace: Some(namespace.to_string()),
                json_pointers: vec!["/spec/schedule".into()],
            },
        ],
        StageKind::LinkerdViz => vec![
            secret("tap-k8s-tls"),
            secret("tap-injector-k8s-tls"),
            webhook(
                "MutatingWebhookConfiguration",
                "linkerd-tap-injector-webhook-config",
            ),
            checksum("tap"),
            checksum("tap-injector"),
            ResourceIgnoreDifferences {
                group: Some("apiregistration.k8s.io".into()),
                kind: "APIService".into(),
                name: "v1alpha1.tap.linkerd.io".into(),
                namespace: None,
                json_pointers: vec!["/spec/caBundle".into()],
            },
        ],
        _ => Vec::new(),
    }
}
