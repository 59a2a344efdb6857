//! Where a fix belongs in git: the rendered file that holds an object or value, and how
//! to see whether the GitOps engine applied it.
//!
//! `check` does not know where the user rendered the tree (`render --out`), so paths are
//! relative to the root of the rendered tree (`studio/links/link-pro.yaml`). A unit test
//! renders fleets with both engines and both install methods and proves that every
//! path given here exists in the rendered tree, so the two cannot drift apart.

use meshfleet_fleet::model::{Engine, InstallMethod, IssuerKind};
use meshfleet_plan::{ClusterPlan, FleetPlan, LinkPlan};
use meshfleet_render::stages::StageKind;
use meshfleet_render::{argocd, flux};

/// Rendered-file paths and engine hints of one fleet.
pub(super) struct TreeFiles<'a> {
    plan: &'a FleetPlan,
}

impl<'a> TreeFiles<'a> {
    pub(super) fn new(plan: &'a FleetPlan) -> Self {
        Self { plan }
    }

    /// Where the anchor bundle the control plane gets is written.
    pub(super) fn anchors(&self, cluster: &ClusterPlan) -> String {
        match self.plan.gitops.install_method {
            // The install Job mounts the bundle from a ConfigMap of the identity stage.
            InstallMethod::Jobs => format!(
                "{}/{}/trust-anchors.yaml",
                cluster.name,
                StageKind::Identity.name()
            ),
            InstallMethod::Helm => self.chart_values(cluster, StageKind::LinkerdControlPlane),
        }
    }

    /// The control plane's values (version, domains).
    pub(super) fn control_plane(&self, cluster: &ClusterPlan) -> String {
        self.chart_values(cluster, StageKind::LinkerdControlPlane)
    }

    /// The multicluster extension's values (gateway, controllers, remote access).
    pub(super) fn multicluster(&self, cluster: &ClusterPlan) -> String {
        match self.plan.gitops.install_method {
            InstallMethod::Jobs => format!(
                "{}/{}/values.yaml",
                cluster.name,
                StageKind::LinkerdMulticluster.name()
            ),
            InstallMethod::Helm => self.chart_values(cluster, StageKind::LinkerdMulticluster),
        }
    }

    fn chart_values(&self, cluster: &ClusterPlan, stage: StageKind) -> String {
        match (self.plan.gitops.install_method, self.plan.gitops.engine) {
            (InstallMethod::Jobs, _) => format!("{}/{}/job.yaml", cluster.name, stage.name()),
            (InstallMethod::Helm, Engine::Flux) => {
                format!("{}/{}/helm-release.yaml", cluster.name, stage.name())
            }
            (InstallMethod::Helm, Engine::Argocd) => format!("{}/apps/{}.yaml", cluster.name, stage.name()),
        }
    }

    /// How to see whether the engine applied a stage of a cluster.
    pub(super) fn applied(&self, cluster: &ClusterPlan, stage: StageKind) -> String {
        match self.plan.gitops.engine {
            Engine::Flux => format!(
                "`flux get kustomizations {} -n {}` on `{}` shows whether Flux applied it",
                flux::kustomization_name(self.plan, stage),
                flux::FLUX_NAMESPACE,
                cluster.name
            ),
            Engine::Argocd => format!(
                "`argocd app get {}` shows whether Argo CD synced it",
                argocd::application_name(self.plan, cluster, stage)
            ),
        }
    }

    /// Who writes the issuer Secret, for hints.
    pub(super) fn issuer_source(&self) -> &'static str {
        match self.plan.identity.issuer {
            IssuerKind::CertManager => "cert-manager's Certificate `linkerd-identity-issuer`",
            IssuerKind::Vault => {
                "the ExternalSecret `linkerd-identity-issuer` (from Vault, written by `meshfleet secrets sync`)"
            }
        }
    }
}

/// The Link and both credentials ExternalSecrets of a link.
pub(super) fn link(cluster: &ClusterPlan, link: &LinkPlan) -> String {
    format!(
        "{}/{}/link-{}.yaml",
        cluster.name,
        StageKind::Links.name(),
        link.link_name()
    )
}

/// Namespaces with their labels.
pub(super) fn namespaces(cluster: &ClusterPlan) -> String {
    format!(
        "{}/{}/namespaces.yaml",
        cluster.name,
        StageKind::Namespaces.name()
    )
}

/// What makes the issuer Secret: a cert-manager Certificate or an ExternalSecret.
pub(super) fn issuer(cluster: &ClusterPlan) -> String {
    format!("{}/{}/issuer.yaml", cluster.name, StageKind::Identity.name())
}

/// "`path` in the rendered tree", for hints.
pub(super) fn in_tree(path: &str) -> String {
    format!("`{path}` in the rendered tree")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLEET: &str = "\
apiVersion: meshfleet.io/v1alpha1
kind: Fleet
metadata: {name: files}
spec:
  linkerd: {version: 2025.4.4}
  gitops:
    engine: ENGINE
    installMethod: METHOD
    jobs: {image: registry.example/linkerd-kubectl:edge-25.4.4}
    repository: {url: https://github.com/example/fleet.git}
  identity: {trustAnchor: anchor.crt}
  secrets: {vault: {server: https://vault.example:8200, mount: secret, path: linkerd}}
  clusters:
    - name: east
      vaultAuthMountPath: kubernetes-east
      apiServer: https://east.example:6443
      network: {pods: [10.1.0.0/16], services: [10.101.0.0/16]}
      gateway: {addresses: [east.example]}
    - name: west
      vaultAuthMountPath: kubernetes-west
      apiServer: https://west.example:6443
      network: {pods: [10.2.0.0/16], services: [10.102.0.0/16]}
      gateway: {addresses: [west.example]}
  links:
    - {source: east, target: west}
";

    #[test]
    fn every_path_exists_in_the_rendered_tree() {
        for engine in ["flux", "argocd"] {
            for method in ["helm", "jobs"] {
                let text = FLEET.replace("ENGINE", engine).replace("METHOD", method);
                let plan = meshfleet_plan::fixtures::plan(&text);
                let tree = meshfleet_render::render(&plan).expect("renders");
                let files = TreeFiles::new(&plan);
                for cluster in &plan.clusters {
                    let mut paths = vec![
                        namespaces(cluster),
                        issuer(cluster),
                        files.anchors(cluster),
                        files.control_plane(cluster),
                        files.multicluster(cluster),
                    ];
                    paths.extend(cluster.outgoing.iter().map(|l| link(cluster, l)));
                    for path in paths {
                        assert!(
                            tree.files.contains_key(&path),
                            "{engine}/{method}: `{path}` is not rendered; have {:?}",
                            tree.files
                                .keys()
                                .filter(|k| k.starts_with(&cluster.name))
                                .collect::<Vec<_>>()
                        );
                    }
                }
            }
        }
    }
}
