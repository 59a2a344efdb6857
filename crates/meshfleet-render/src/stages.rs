//! What each cluster needs, in dependency order, independent of the GitOps engine
//! (PRODUCT.md section 4): namespaces and the Vault store, Gateway API CRDs, identity,
//! the Linkerd charts, and the links.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use serde::Serialize;
use serde_json::Value;

use meshfleet_fleet::defaults;
use meshfleet_fleet::model::{Engine, InstallMethod, IssuerKind};
use meshfleet_plan::{ClusterPlan, FleetPlan, LinkPlan};

use super::resources::{
    CaIssuer, CertificatePrivateKey, CertificateSpec, ClusterSecretStore, ClusterSecretStoreSpec,
    ExternalSecret, ExternalSecretData, ExternalSecretSpec, ExternalSecretTarget, ExternalSecretTemplate,
    Issuer, IssuerSpec, Link, LinkSpec, NamedRef, ProbeSpec, RemoteRef, SecretStoreProvider,
    TemplateMetadata, VaultKubernetesAuth, VaultProvider, VaultProviderAuth,
};
use super::{RenderError, fleet_labels, jobs, meta, values};

pub use crate::stage::{
    GATEWAY_API_REPOSITORY, HelmChart, ISSUER_SECRET, ManifestFile, Stage, StageContent, StageKind,
    TRUST_ANCHOR_SECRET,
};

/// The stages of one cluster, in order.
pub fn cluster_stages(plan: &FleetPlan, cluster: &ClusterPlan) -> Vec<Stage> {
    use StageKind::{
        GatewayApi, Identity, LinkerdControlPlane, LinkerdCrds, LinkerdMulticluster, LinkerdViz, Links,
        Namespaces,
    };
    let ns = plan.linkerd.namespace.clone();
    let mut stages = vec![Stage {
        kind: Namespaces,
        depends_on: vec![],
        content: StageContent::Manifests(namespaces(plan, cluster)),
    }];
    let mut crds_after = vec![Namespaces];
    if let Some(tag) = &plan.linkerd.gateway_api {
        stages.push(Stage {
            kind: GatewayApi,
            depends_on: vec![],
            content: StageContent::GitKustomize {
                url: GATEWAY_API_REPOSITORY.to_string(),
                tag: tag.clone(),
                path: "config/crd".to_string(),
            },
        });
        crds_after.push(GatewayApi);
    }
    stages.push(Stage {
        kind: Identity,
        depends_on: vec![Namespaces],
        content: StageContent::Manifests(identity(plan, cluster)),
    });
    stages.push(Stage {
        kind: LinkerdCrds,
        depends_on: crds_after,
        content: linkerd_component(
            plan,
            cluster,
            LinkerdCrds,
            "linkerd-crds",
            ns.clone(),
            values::crds(plan),
        ),
    });
    stages.push(Stage {
        kind: LinkerdControlPlane,
        depends_on: vec![LinkerdCrds, Identity],
        content: linkerd_component(
            plan,
            cluster,
            LinkerdControlPlane,
            "linkerd-control-plane",
            ns,
            values::control_plane(plan),
        ),
    });
    if plan.linkerd.viz {
        stages.push(Stage {
            kind: LinkerdViz,
            depends_on: vec![LinkerdControlPlane],
            content: linkerd_component(
                plan,
                cluster,
                LinkerdViz,
                "linkerd-viz",
                defaults::VIZ_NAMESPACE.to_string(),
                values::viz(plan),
            ),
        });
    }
    stages.push(Stage {
        kind: LinkerdMulticluster,
        depends_on: vec![LinkerdControlPlane],
        content: linkerd_component(
            plan,
            cluster,
            LinkerdMulticluster,
            "linkerd-multicluster",
            defaults::MULTICLUSTER_NAMESPACE.to_string(),
            values::multicluster(plan, cluster),
        ),
    });
    if !cluster.outgoing.is_empty() {
        stages.push(Stage {
            kind: Links,
            depends_on: vec![LinkerdMulticluster],
            content: StageContent::Manifests(links(plan, cluster)),
        });
    }
    stages
}

/// A Linkerd component: a Helm chart, or with `installMethod: jobs` the Job that runs
/// the CLI.
fn linkerd_component(
    plan: &FleetPlan,
    cluster: &ClusterPlan,
    kind: StageKind,
    chart: &'static str,
    namespace: String,
    values: Value,
) -> StageContent {
    match plan.gitops.install_method {
        InstallMethod::Helm => StageContent::HelmChart(HelmChart {
            chart,
            namespace,
            values,
        }),
        InstallMethod::Jobs => {
            StageContent::Manifests(jobs::stage_files(plan, cluster, kind).unwrap_or_default())
        }
    }
}

fn json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The name of the fleet's ClusterSecretStore.
pub fn secret_store_name(plan: &FleetPlan) -> String {
    format!("{}-vault", plan.name)
}

/// Labels or annotations as written.
type Pairs<'a> = Vec<(&'a str, &'a str)>;

fn namespaces(plan: &FleetPlan, cluster: &ClusterPlan) -> Vec<ManifestFile> {
    let privileged = ("pod-security.kubernetes.io/enforce", "privileged");
    let list: [(&str, Pairs<'_>, Pairs<'_>); 3] = [
        (
            &plan.linkerd.namespace,
            vec![
                ("config.linkerd.io/admission-webhooks", "disabled"),
                ("linkerd.io/control-plane-ns", &plan.linkerd.namespace),
                ("linkerd.io/is-control-plane", "true"),
                privileged,
            ],
            vec![],
        ),
        (
            defaults::VIZ_NAMESPACE,
            vec![("linkerd.io/extension", "viz"), privileged],
            vec![("linkerd.io/inject", "enabled")],
        ),
        (
            defaults::MULTICLUSTER_NAMESPACE,
            vec![("linkerd.io/extension", "multicluster"), privileged],
            vec![],
        ),
    ];
    let mut objects = Vec::new();
    for (name, labels, annotations) in list {
        if name == defaults::VIZ_NAMESPACE && !plan.linkerd.viz {
            continue;
        }
        let mut m = meta(plan, name, None);
        m.labels
            .get_or_insert_with(BTreeMap::new)
            .extend(labels.into_iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut annotations: BTreeMap<String, String> = annotations
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // Removing the stage from Git must never delete a namespace full of workloads.
        match plan.gitops.engine {
            Engine::Flux => annotations.insert("kustomize.toolkit.fluxcd.io/prune".into(), "disabled".into()),
            Engine::Argocd => {
                annotations.insert("argocd.argoproj.io/sync-options".into(), "Prune=false".into())
            }
        };
        m.annotations = Some(annotations);
        objects.push(json(&Namespace {
            metadata: m,
            ..Namespace::default()
        }));
    }
    let mut files = vec![ManifestFile::new("namespaces.yaml", objects)];
    // With SOPS the Secrets come from git, decrypted by Flux: no store.
    if let Some(vault) = &plan.vault {
        let store = ClusterSecretStore {
            metadata: meta(plan, &secret_store_name(plan), None),
            spec: ClusterSecretStoreSpec {
                provider: SecretStoreProvider {
                    vault: VaultProvider {
                        server: vault.server.clone(),
                        path: vault.mount.clone(),
                        version: "v2".into(),
                        auth: VaultProviderAuth {
                            kubernetes: VaultKubernetesAuth {
                                mount_path: cluster.vault_auth_mount.clone(),
                                role: vault.auth_role.clone(),
                            },
                        },
                    },
                },
            },
        };
        files.push(ManifestFile::new("cluster-secret-store.yaml", vec![json(&store)]));
    }
    files
}

/// An ExternalSecret that writes `target` from Vault `key` (one property per data key).
fn external_secret(
    plan: &FleetPlan,
    name: &str,
    namespace: &str,
    secret_type: &str,
    key: &str,
    properties: &[&str],
    secret_metadata: TemplateMetadata,
) -> ExternalSecret {
    ExternalSecret {
        metadata: meta(plan, name, Some(namespace)),
        spec: ExternalSecretSpec {
            refresh_interval: "1h".into(),
            secret_store_ref: NamedRef {
                kind: Some("ClusterSecretStore".into()),
                name: secret_store_name(plan),
                namespace: None,
            },
            target: ExternalSecretTarget {
                name: name.to_string(),
                creation_policy: "Owner".into(),
                deletion_policy: "Retain".into(),
                template: ExternalSecretTemplate {
                    secret_type: secret_type.to_string(),
                    engine_version: "v2".into(),
                    metadata: Some(secret_metadata),
                    data: properties
                        .iter()
                        .map(|p| ((*p).to_string(), format!("{{{{ index . \"{p}\" }}}}")))
                        .collect(),
                },
            },
            data: properties
                .iter()
                .map(|p| ExternalSecretData {
                    secret_key: (*p).to_string(),
                    remote_ref: RemoteRef {
                        key: key.to_string(),
                        property: (*p).to_string(),
                    },
                })
                .collect(),
        },
    }
}

fn identity(plan: &FleetPlan, cluster: &ClusterPlan) -> Vec<ManifestFile> {
    let mut files = issuer(plan, cluster);
    if plan.gitops.install_method == InstallMethod::Jobs {
        files.push(ManifestFile::new(
            "trust-anchors.yaml",
            vec![jobs::trust_anchors_configmap(plan)],
        ));
    }
    files
}

fn issuer(plan: &FleetPlan, cluster: &ClusterPlan) -> Vec<ManifestFile> {
    let ns = plan.linkerd.namespace.as_str();
    let labels = TemplateMetadata {
        labels: fleet_labels(plan),
        annotations: BTreeMap::new(),
    };
    // With SOPS the Secret itself is a sealed file of this stage (`sealed`).
    let vault = plan.vault.as_ref();
    match plan.identity.issuer {
        IssuerKind::Vault => vault
            .map(|vault| {
                let secret = external_secret(
                    plan,
                    ISSUER_SECRET,
                    ns,
                    "kubernetes.io/tls",
                    &vault.issuer_key(&cluster.name),
                    &["tls.crt", "tls.key", "ca.crt"],
                    labels,
                );
                ManifestFile::new("issuer.yaml", vec![json(&secret)])
            })
            .into_iter()
            .collect(),
        IssuerKind::CertManager => {
            let anchor = vault.map(|vault| {
                json(&external_secret(
                    plan,
                    TRUST_ANCHOR_SECRET,
                    ns,
                    "kubernetes.io/tls",
                    &vault.trust_anchor_key(),
                    &["tls.crt", "tls.key"],
                    labels,
                ))
            });
            let issuer = Issuer {
                metadata: meta(plan, TRUST_ANCHOR_SECRET, Some(ns)),
                spec: IssuerSpec {
                    ca: CaIssuer {
                        secret_name: TRUST_ANCHOR_SECRET.into(),
                    },
                },
            };
            let certificate = super::resources::Certificate {
                metadata: meta(plan, ISSUER_SECRET, Some(ns)),
                spec: CertificateSpec {
                    secret_name: ISSUER_SECRET.into(),
                    common_name: format!("identity.{ns}.{}", plan.linkerd.trust_domain),
                    is_ca: true,
                    // Linkerd's documented lifetimes: a short-lived issuer renewed daily.
                    duration: "48h0m0s".into(),
                    renew_before: "25h0m0s".into(),
                    private_key: CertificatePrivateKey {
                        algorithm: "ECDSA".into(),
                        size: 256,
                        rotation_policy: "Always".into(),
                    },
                    usages: vec![
                        "cert sign".into(),
                        "crl sign".into(),
                        "server auth".into(),
                        "client auth".into(),
                    ],
                    issuer_ref: NamedRef {
                        kind: Some("Issuer".into()),
                        name: TRUST_ANCHOR_SECRET.into(),
                        namespace: None,
                    },
                },
            };
            vec![
                ManifestFile::new(
                    "trust-anchor.yaml",
                    anchor.into_iter().chain([json(&issuer)]).collect(),
                ),
                ManifestFile::new("issuer.yaml", vec![json(&certificate)]),
            ]
        }
    }
}

fn links(plan: &FleetPlan, cluster: &ClusterPlan) -> Vec<ManifestFile> {
    cluster
        .outgoing
        .iter()
        .map(|link| {
            let mut objects = vec![json(&link_object(plan, link))];
            // With SOPS both credentials Secrets are sealed files of this stage.
            if plan.vault.is_some() {
                objects.push(json(&credentials(
                    plan,
                    link,
                    defaults::MULTICLUSTER_NAMESPACE,
                    false,
                )));
                objects.push(json(&credentials(plan, link, &plan.linkerd.namespace, true)));
            }
            ManifestFile::new(format!("link-{}.yaml", link.link_name()), objects)
        })
        .collect()
}

/// The Link of `link`, as `link-gen` would write it, computed offline.
pub fn link_object(plan: &FleetPlan, link: &LinkPlan) -> Link {
    let mut metadata = meta(plan, link.link_name(), Some(defaults::MULTICLUSTER_NAMESPACE));
    // `linkerd multicluster check` warns unless this matches its own CLI version.
    metadata.annotations = Some(BTreeMap::from([(
        "linkerd.io/created-by".to_string(),
        format!("linkerd/cli {}", plan.linkerd.version.edge_tag()),
    )]));
    let gateway = link.gateway.as_ref();
    Link {
        metadata,
        spec: LinkSpec {
            target_cluster_name: link.link_name().to_string(),
            target_cluster_domain: link.target_cluster_domain.clone(),
            target_cluster_linkerd_namespace: link.target_linkerd_namespace.clone(),
            cluster_credentials_secret: link.credentials_secret(),
            gateway_address: gateway.map(|g| g.address.clone()),
            gateway_port: gateway.map(|g| g.port.to_string()),
            gateway_identity: gateway.map(|_| link.gateway_identity()),
            probe_spec: gateway.map(|g| ProbeSpec {
                path: g.probe_path.clone(),
                port: g.probe_port.to_string(),
                period: g.probe_period.as_str().to_string(),
                timeout: None,
                failure_threshold: None,
            }),
            selector: gateway.map(|_| link.selector.clone()),
            remote_discovery_selector: Some(link.remote_discovery_selector.clone()),
            federated_service_selector: Some(link.federated_service_selector.clone()),
        },
    }
}

/// The Secret type Linkerd's destination controller requires of link credentials.
pub const CREDENTIALS_SECRET_TYPE: &str = "mirror.linkerd.io/remote-kubeconfig";

/// An ExternalSecret that builds one of the two `cluster-credentials-<target>` Secrets.
/// The copy in the control-plane namespace carries the label and annotations the
/// destination controller needs for remote discovery (linkerd2#11542).
pub fn credentials(
    plan: &FleetPlan,
    link: &LinkPlan,
    namespace: &str,
    for_destination: bool,
) -> ExternalSecret {
    let mut metadata = TemplateMetadata {
        labels: fleet_labels(plan),
        annotations: BTreeMap::new(),
    };
    if for_destination {
        metadata.labels.insert(
            "multicluster.linkerd.io/cluster-name".into(),
            link.link_name().to_string(),
        );
        metadata.annotations.insert(
            "multicluster.linkerd.io/trust-domain".into(),
            link.target_trust_domain.clone(),
        );
        metadata.annotations.insert(
            "multicluster.linkerd.io/cluster-domain".into(),
            link.target_cluster_domain.clone(),
        );
    }
    let key = plan
        .vault
        .as_ref()
        .map(|v| v.credentials_key(&link.source, &link.target))
        .unwrap_or_default();
    external_secret(
        plan,
        &link.credentials_secret(),
        namespace,
        CREDENTIALS_SECRET_TYPE,
        &key,
        &["kubeconfig"],
        metadata,
    )
}

/// Write a manifests stage into `folder`: its files and a `kustomization.yaml` listing them.
pub(crate) fn write_manifest_folder(
    plan: &FleetPlan,
    folder: &str,
    manifests: &[ManifestFile],
    files: &mut BTreeMap<String, String>,
) -> Result<(), RenderError> {
    let mut names = Vec::with_capacity(manifests.len());
    for f in manifests {
        let text = super::yaml_file(plan, &f.name, &f.objects)?;
        files.insert(
            format!("{folder}/{}", f.name),
            annotate_rules(&text, &f.rule_reasons),
        );
        names.push(f.name.clone());
    }
    files.insert(
        format!("{folder}/kustomization.yaml"),
        super::kustomize_file(plan, names)?,
    );
    Ok(())
}

/// Put `# why` above each RBAC rule (`- apiGroups:` items of a `rules:` list), in order.
fn annotate_rules(text: &str, reasons: &[String]) -> String {
    if reasons.is_empty() {
        return text.to_string();
    }
    let mut reasons = reasons.iter();
    let mut out = String::with_capacity(text.len() + reasons.len() * 80);
    let mut in_rules = false;
    for line in text.lines() {
        if line == "rules:" {
            in_rules = true;
        } else if !line.starts_with('-') && !line.starts_with(' ') {
            in_rules = false;
        }
        if in_rules
            && line == "- apiGroups:"
            && let Some(why) = reasons.next()
        {
            out.push_str("# ");
            out.push_str(why);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshfleet_plan::fixtures::{BASE, plan};

    #[test]
    fn a_link_to_a_node_port_gateway_is_computed_offline() {
        let plan = plan(BASE);
        let link = &plan.clusters[0].outgoing[0];
        let object = link_object(&plan, link);
        let spec = &object.spec;
        assert_eq!(object.metadata.name.as_deref(), Some("pro"));
        assert_eq!(spec.target_cluster_name, "pro");
        assert_eq!(spec.cluster_credentials_secret, "cluster-credentials-pro");
        // Ports are strings in the Link CRD.
        assert_eq!(spec.gateway_port.as_deref(), Some("30143"));
        let probe = spec.probe_spec.as_ref().expect("gateway mode has a probe");
        assert_eq!((probe.port.as_str(), probe.period.as_str()), ("30191", "5s"));
        assert_eq!(
            spec.gateway_identity.as_deref(),
            Some("linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local")
        );
    }

    #[test]
    fn only_the_destination_copy_of_the_credentials_has_linkerds_label_and_annotations() {
        let plan = plan(BASE);
        let link = &plan.clusters[0].outgoing[0];
        let mirror = credentials(&plan, link, defaults::MULTICLUSTER_NAMESPACE, false);
        let destination = credentials(&plan, link, "linkerd", true);
        let meta = |e: &ExternalSecret| e.spec.target.template.metadata.clone().unwrap_or_default();
        assert!(meta(&mirror).annotations.is_empty());
        assert_eq!(
            meta(&destination)
                .labels
                .get("multicluster.linkerd.io/cluster-name")
                .map(String::as_str),
            Some("pro")
        );
        assert_eq!(meta(&destination).annotations.len(), 2);
        assert_eq!(
            destination.spec.target.template.secret_type,
            CREDENTIALS_SECRET_TYPE
        );
    }
}
