//! The SOPS-encrypted Secrets of a fleet with `spec.secrets.sops`: which Secret lives in
//! which file of which cluster's tree, what it holds, and how `render` carries the
//! encrypted files that `secrets sync` wrote.
//!
//! Everything Vault + External Secrets would place is here instead (PRODUCT.md section
//! 11): the anchor key pair for cert-manager's CA Issuer (or a static issuer) in the
//! `identity` stage, and both `cluster-credentials-<target>` Secrets of each outgoing link
//! in the `links` stage, with the labels and annotations the ExternalSecrets' templates
//! give them. Rendering stays a pure function of the plan and the encrypted files found
//! in the output folder: `render` never encrypts (that needs the keys and the clusters),
//! it keeps each expected file byte for byte and lists it in its stage's
//! `kustomization.yaml`, so a render after a sync changes nothing and `render --check`
//! stays quiet. A file the plan no longer expects (a removed link) is dropped.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use meshfleet_fleet::defaults;
use meshfleet_fleet::model::IssuerKind;
use meshfleet_plan::FleetPlan;

use crate::fleet_labels;
use crate::stage::{ISSUER_SECRET, StageKind, TRUST_ANCHOR_SECRET};
use crate::stages::CREDENTIALS_SECRET_TYPE;

/// Where a sealed Secret's values come from (the id `secrets sync` reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealedSource {
    /// The anchor key pair (`trust-anchor`), for cert-manager's CA Issuer.
    TrustAnchor,
    /// A cluster's static issuer (`issuer/<cluster>`).
    Issuer,
    /// A link's kubeconfig (`credentials/<source>-to-<target>`).
    Credentials {
        /// The source cluster (whose tree holds the Secret).
        source: String,
        /// The target cluster.
        target: String,
    },
}

/// One SOPS-encrypted Secret of the tree.
#[derive(Debug, Clone)]
pub struct SealedSecret {
    /// The cluster whose tree holds it (and whose age recipient can read it).
    pub cluster: String,
    /// The stage that applies it.
    pub stage: StageKind,
    /// File name inside the stage folder.
    pub file: String,
    /// Secret name.
    pub name: String,
    /// Secret namespace.
    pub namespace: String,
    /// Secret type.
    pub secret_type: String,
    /// Labels (the fleet's, and Linkerd's where the destination controller needs them).
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Where its values come from.
    pub source: SealedSource,
}

impl SealedSecret {
    /// Path relative to the output folder.
    pub fn path(&self) -> String {
        format!("{}/{}/{}", self.cluster, self.stage.name(), self.file)
    }

    /// The plaintext Secret with `values` base64-encoded under `data`. Holds secrets:
    /// only ever handed to the SOPS encryption.
    pub fn document<'a>(&self, values: impl IntoIterator<Item = (&'a str, &'a str)>) -> Map<String, Value> {
        let data: Map<String, Value> = values
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Value::String(base64::engine::general_purpose::STANDARD.encode(v)),
                )
            })
            .collect();
        let mut metadata = json!({"name": self.name, "namespace": self.namespace, "labels": self.labels});
        if !self.annotations.is_empty() {
            metadata["annotations"] = json!(self.annotations);
        }
        let doc = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata,
            "type": self.secret_type,
            "data": data,
        });
        doc.as_object().cloned().unwrap_or_default()
    }
}

/// Every sealed Secret the plan expects (none unless `spec.secrets.sops`), by cluster,
/// identity first.
pub fn sealed_secrets(plan: &FleetPlan) -> Vec<SealedSecret> {
    if plan.sops.is_none() {
        return Vec::new();
    }
    let ns = plan.linkerd.namespace.clone();
    let mut out = Vec::new();
    for cluster in &plan.clusters {
        let (name, file, secret_type, source) = match plan.identity.issuer {
            IssuerKind::CertManager => (
                TRUST_ANCHOR_SECRET,
                "trust-anchor.sops.yaml",
                "kubernetes.io/tls",
                SealedSource::TrustAnchor,
            ),
            IssuerKind::Vault => (
                ISSUER_SECRET,
                "issuer.sops.yaml",
                "kubernetes.io/tls",
                SealedSource::Issuer,
            ),
        };
        out.push(SealedSecret {
            cluster: cluster.name.clone(),
            stage: StageKind::Identity,
            file: file.into(),
            name: name.into(),
            namespace: ns.clone(),
            secret_type: secret_type.into(),
            labels: fleet_labels(plan),
            annotations: BTreeMap::new(),
            source,
        });
        for link in &cluster.outgoing {
            let source = SealedSource::Credentials {
                source: link.source.clone(),
                target: link.target.clone(),
            };
            for (namespace, for_destination) in [
                (defaults::MULTICLUSTER_NAMESPACE.to_string(), false),
                (ns.clone(), true),
            ] {
                let mut labels = fleet_labels(plan);
                let mut annotations = BTreeMap::new();
                // The copy in the control-plane namespace carries what the destination
                // controller needs for remote discovery (linkerd2#11542), as the
                // ExternalSecret's template does.
                if for_destination {
                    labels.insert(
                        "multicluster.linkerd.io/cluster-name".into(),
                        link.link_name().to_string(),
                    );
                    annotations.insert(
                        "multicluster.linkerd.io/trust-domain".into(),
                        link.target_trust_domain.clone(),
                    );
                    annotations.insert(
                        "multicluster.linkerd.io/cluster-domain".into(),
                        link.target_cluster_domain.clone(),
                    );
                }
                out.push(SealedSecret {
                    cluster: cluster.name.clone(),
                    stage: StageKind::Links,
                    file: format!("{}.{namespace}.sops.yaml", link.credentials_secret()),
                    name: link.credentials_secret(),
                    namespace,
                    secret_type: CREDENTIALS_SECRET_TYPE.into(),
                    labels,
                    annotations,
                    source: source.clone(),
                });
            }
        }
    }
    out
}

/// Encrypted files by path relative to the output folder (what `secrets sync` wrote).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealedFiles(pub BTreeMap<String, String>);

impl SealedFiles {
    /// The expected files that `out` holds (a missing folder or file is simply absent).
    pub fn read(plan: &FleetPlan, out: &Path) -> std::io::Result<Self> {
        let mut files = BTreeMap::new();
        for secret in sealed_secrets(plan) {
            let path = secret.path();
            match std::fs::read_to_string(out.join(&path)) {
                Ok(text) => {
                    files.insert(path, text);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Self(files))
    }

    /// The files of one stage folder (`<cluster>/<stage>`), by file name.
    pub(crate) fn in_folder(&self, folder: &str) -> Vec<(String, String)> {
        let prefix = format!("{folder}/");
        self.0
            .iter()
            .filter_map(|(path, text)| {
                path.strip_prefix(&prefix)
                    .filter(|name| !name.contains('/'))
                    .map(|name| (name.to_string(), text.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshfleet_plan::fixtures::plan;

    #[test]
    fn a_sops_fleet_seals_the_anchor_and_both_credentials_per_link_in_the_source_tree() {
        let plan = plan(&meshfleet_fleet::fixtures::sops_base());
        let paths: Vec<String> = sealed_secrets(&plan).iter().map(SealedSecret::path).collect();
        assert_eq!(
            paths,
            [
                "studio/identity/trust-anchor.sops.yaml",
                "studio/links/cluster-credentials-pro.linkerd-multicluster.sops.yaml",
                "studio/links/cluster-credentials-pro.linkerd.sops.yaml",
                "pro/identity/trust-anchor.sops.yaml",
                "pro/links/cluster-credentials-studio.linkerd-multicluster.sops.yaml",
                "pro/links/cluster-credentials-studio.linkerd.sops.yaml",
            ]
        );
        let secrets = sealed_secrets(&plan);
        let destination = &secrets[2];
        let doc = destination.document([("kubeconfig", "k")]);
        assert_eq!(
            doc["metadata"]["labels"]["multicluster.linkerd.io/cluster-name"],
            "pro"
        );
        assert_eq!(
            doc["metadata"]["annotations"]["multicluster.linkerd.io/trust-domain"],
            "cluster.local"
        );
        assert_eq!(doc["type"], CREDENTIALS_SECRET_TYPE);
        assert_eq!(doc["data"]["kubeconfig"], "aw==");
        assert!(sealed_secrets(&meshfleet_plan::fixtures::plan(meshfleet_plan::fixtures::BASE)).is_empty());
    }

    #[test]
    fn a_sops_tree_has_no_vault_objects_decrypts_two_stages_and_keeps_the_sealed_files() {
        let plan = plan(&meshfleet_fleet::fixtures::sops_base());
        let bare = crate::render(&plan).expect("renders");
        let all: String = bare.files.values().cloned().collect();
        assert!(!all.contains("ExternalSecret") && !all.contains("ClusterSecretStore"));
        for stage in ["identity", "links"] {
            let k = &bare.files[&format!("studio/flux/{stage}.yaml")];
            assert!(
                k.contains("decryption:\n    provider: sops\n    secretRef:\n      name: sops-age\n"),
                "{k}"
            );
        }
        assert!(!bare.files["studio/flux/namespaces.yaml"].contains("decryption"));
        let sealed_path = "studio/links/cluster-credentials-pro.linkerd.sops.yaml";
        let sealed = SealedFiles(BTreeMap::from([
            (sealed_path.to_string(), "kind: Secret\nsops: {}\n".to_string()),
            ("studio/links/stray.sops.yaml".to_string(), "x".to_string()),
        ]));
        let tree = crate::render_with(&plan, &sealed).expect("renders");
        assert_eq!(tree.files[sealed_path], "kind: Secret\nsops: {}\n");
        assert!(
            tree.files["studio/links/kustomization.yaml"]
                .contains("- cluster-credentials-pro.linkerd.sops.yaml\n")
        );
        assert!(
            !tree.files.contains_key("studio/links/stray.sops.yaml"),
            "a file the plan does not expect is dropped"
        );
        assert_eq!(
            crate::render_with(&plan, &sealed).expect("renders"),
            tree,
            "deterministic"
        );
    }
}
