//! The Flux layout of a cluster's folder.
//!
//! ```text
//! <cluster>/kustomization.yaml        entry point: point a Flux Kustomization here
//! <cluster>/flux/*.yaml               sources and one Flux Kustomization per stage,
//!                                     chained with dependsOn and wait
//! <cluster>/<stage>/...               what each stage applies (manifests or a HelmRelease)
//! ```
//!
//! Stages read the Git repository Flux was bootstrapped with (`GitRepository/flux-system`),
//! so private repositories work without more credentials.

use std::collections::BTreeMap;

use meshfleet_plan::{ClusterPlan, FleetPlan};

use super::resources::{
    Decryption, GitRepository, GitRepositoryRef, GitRepositorySpec, HelmChartTemplateSpec, HelmRelease,
    HelmReleaseAction, HelmReleaseChart, HelmReleaseSpec, HelmRepository, HelmRepositorySpec, Kustomization,
    KustomizationSpec, NamedRef, Remediation,
};
use super::stages::{Stage, StageContent, StageKind, write_manifest_folder};
use super::{RenderError, meta, yaml_file};

/// Namespace of Flux's own objects.
pub const FLUX_NAMESPACE: &str = "flux-system";
/// The GitRepository `flux bootstrap` creates.
pub const FLUX_SOURCE: &str = "flux-system";

/// The Flux Kustomization name of a stage.
pub fn kustomization_name(plan: &FleetPlan, stage: StageKind) -> String {
    format!("{}-{}", plan.name, stage.name())
}

/// Whether Flux decrypts a stage's SOPS files: the `identity` and `links` stages of a
/// fleet with `spec.secrets.sops`.
pub fn decrypts(plan: &FleetPlan, stage: StageKind) -> bool {
    plan.sops.is_some() && matches!(stage, StageKind::Identity | StageKind::Links)
}

/// The Flux Kustomizations of a cluster that decrypt SOPS files (see [`decrypts`]).
pub fn decrypting_kustomizations(plan: &FleetPlan, cluster: &ClusterPlan) -> Vec<String> {
    super::stages::cluster_stages(plan, cluster)
        .iter()
        .filter(|s| decrypts(plan, s.kind))
        .map(|s| kustomization_name(plan, s.kind))
        .collect()
}

fn helm_repository_name(plan: &FleetPlan) -> String {
    format!("{}-linkerd", plan.name)
}

fn gateway_api_source_name(plan: &FleetPlan) -> String {
    format!("{}-gateway-api", plan.name)
}

/// Write one cluster's Flux tree into `files`.
pub fn write_cluster(
    plan: &FleetPlan,
    cluster: &ClusterPlan,
    stages: &[Stage],
    files: &mut BTreeMap<String, String>,
) -> Result<(), RenderError> {
    let root = &cluster.name;
    let mut entry = Vec::new();
    if stages
        .iter()
        .any(|s| matches!(s.content, StageContent::HelmChart(_)))
    {
        let helm_repo = HelmRepository {
            metadata: meta(plan, &helm_repository_name(plan), Some(FLUX_NAMESPACE)),
            spec: HelmRepositorySpec {
                interval: "1h".into(),
                url: plan.linkerd.chart_repository.clone(),
                repo_type: plan
                    .linkerd
                    .chart_repository
                    .starts_with("oci://")
                    .then(|| "oci".to_string()),
            },
        };
        put(
            files,
            format!("{root}/flux/helm-repository.yaml"),
            yaml_file(plan, "helm-repository.yaml", &[helm_repo])?,
        );
        entry.push("flux/helm-repository.yaml".to_string());
    }
    for stage in stages {
        let stage_dir = format!("{root}/{}", stage.kind.name());
        let mut source = NamedRef {
            kind: Some("GitRepository".into()),
            name: FLUX_SOURCE.into(),
            namespace: None,
        };
        let mut path = format!("./{}/{stage_dir}", plan.gitops.path);
        match &stage.content {
            StageContent::Manifests(manifests) => write_manifest_folder(plan, &stage_dir, manifests, files)?,
            StageContent::HelmChart(chart) => {
                let release = HelmRelease {
                    metadata: meta(
                        plan,
                        &format!("{}-{}", plan.name, chart.chart),
                        Some(FLUX_NAMESPACE),
                    ),
                    spec: HelmReleaseSpec {
                        interval: "1h".into(),
                        release_name: Some(chart.chart.to_string()),
                        target_namespace: Some(chart.namespace.clone()),
                        chart: HelmReleaseChart {
                            spec: HelmChartTemplateSpec {
                                chart: chart.chart.to_string(),
                                version: plan.linkerd.version.to_string(),
                                source_ref: NamedRef {
                                    kind: Some("HelmRepository".into()),
                                    name: helm_repository_name(plan),
                                    namespace: None,
                                },
                                interval: Some("1h".into()),
                            },
                        },
                        install: Some(HelmReleaseAction {
                            crds: None,
                            create_namespace: None,
                            remediation: Some(Remediation { retries: 3 }),
                        }),
                        upgrade: Some(HelmReleaseAction {
                            crds: None,
                            create_namespace: None,
                            remediation: Some(Remediation { retries: 3 }),
                        }),
                        values: Some(chart.values.clone()),
                    },
                };
                put(
                    files,
                    format!("{stage_dir}/helm-release.yaml"),
                    yaml_file(plan, "helm-release.yaml", &[release])?,
                );
                put(
                    files,
                    format!("{stage_dir}/kustomization.yaml"),
                    super::kustomize_file(plan, vec!["helm-release.yaml".into()])?,
                );
            }
            StageContent::GitKustomize {
                url,
                tag,
                path: repo_path,
            } => {
                let git = GitRepository {
                    metadata: meta(plan, &gateway_api_source_name(plan), Some(FLUX_NAMESPACE)),
                    spec: GitRepositorySpec {
                        interval: "24h".into(),
                        url: url.clone(),
                        reference: Some(GitRepositoryRef {
                            branch: None,
                            tag: Some(tag.clone()),
                        }),
                    },
                };
                put(
                    files,
                    format!("{root}/flux/gateway-api-source.yaml"),
                    yaml_file(plan, "gateway-api-source.yaml", &[git])?,
                );
                entry.push("flux/gateway-api-source.yaml".to_string());
                source.name = gateway_api_source_name(plan);
                path = format!("./{repo_path}");
            }
        }
        let kustomization = Kustomization {
            metadata: meta(plan, &kustomization_name(plan, stage.kind), Some(FLUX_NAMESPACE)),
            spec: KustomizationSpec {
                interval: "10m".into(),
                retry_interval: Some("1m".into()),
                timeout: Some("10m".into()),
                path,
                prune: true,
                wait: Some(true),
                source_ref: source,
                depends_on: stage
                    .depends_on
                    .iter()
                    .map(|d| NamedRef {
                        kind: None,
                        name: kustomization_name(plan, *d),
                        namespace: None,
                    })
                    .collect(),
                // Flux's kustomize-controller decrypts the stage's SOPS files with the
                // cluster's age key (`flux-system/sops-age`).
                decryption: decrypts(plan, stage.kind).then(|| Decryption {
                    provider: "sops".into(),
                    secret_ref: NamedRef {
                        kind: None,
                        name: meshfleet_plan::SopsPlan::DECRYPTION_SECRET.into(),
                        namespace: None,
                    },
                }),
            },
        };
        let file = format!("flux/{}.yaml", stage.kind.name());
        put(
            files,
            format!("{root}/{file}"),
            yaml_file(plan, &file, &[kustomization])?,
        );
        entry.push(file);
    }
    entry.sort();
    put(
        files,
        format!("{root}/kustomization.yaml"),
        super::kustomize_file(plan, entry)?,
    );
    Ok(())
}

fn put(files: &mut BTreeMap<String, String>, path: String, text: String) {
    files.insert(path, text);
}
