//! The vocabulary of a cluster's install: the [`Stage`]s a tree is made of, what each
//! applies, and the names of the objects other layers look up (the issuer Secret).
//!
//! Apart from [`crate::stages`], which decides what each cluster needs, so that the
//! Jobs install method ([`crate::jobs`]), which builds some of those stages, depends on
//! these types and not on the module that calls it.

use serde_json::Value;

/// The steps of a cluster's install, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StageKind {
    /// Namespaces and the ClusterSecretStore for Vault.
    Namespaces,
    /// Gateway API CRDs (unless managed externally).
    GatewayApi,
    /// The identity issuer Secret (cert-manager or External Secrets).
    Identity,
    /// `linkerd-crds`.
    LinkerdCrds,
    /// `linkerd-control-plane`.
    LinkerdControlPlane,
    /// `linkerd-viz`.
    LinkerdViz,
    /// `linkerd-multicluster`.
    LinkerdMulticluster,
    /// Links and their credentials.
    Links,
}

impl StageKind {
    /// Folder and object-name suffix of the stage.
    pub fn name(self) -> &'static str {
        match self {
            Self::Namespaces => "namespaces",
            Self::GatewayApi => "gateway-api",
            Self::Identity => "identity",
            Self::LinkerdCrds => "linkerd-crds",
            Self::LinkerdControlPlane => "linkerd-control-plane",
            Self::LinkerdViz => "linkerd-viz",
            Self::LinkerdMulticluster => "linkerd-multicluster",
            Self::Links => "links",
        }
    }
}

/// One stage of a cluster.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Which step.
    pub kind: StageKind,
    /// Stages that must be ready first.
    pub depends_on: Vec<StageKind>,
    /// What the stage applies.
    pub content: StageContent,
}

/// What a stage applies.
#[derive(Debug, Clone)]
pub enum StageContent {
    /// Plain manifests, grouped in files.
    Manifests(Vec<ManifestFile>),
    /// A Helm chart from the Linkerd repository.
    HelmChart(HelmChart),
    /// A kustomize folder of a Git repository at a tag (the Gateway API CRDs).
    GitKustomize {
        /// Repository URL.
        url: String,
        /// Tag.
        tag: String,
        /// Folder inside the repository.
        path: String,
    },
}

/// One rendered file of a manifests stage.
#[derive(Debug, Clone)]
pub struct ManifestFile {
    /// File name inside the stage folder.
    pub name: String,
    /// The objects, already typed and converted to JSON values.
    pub objects: Vec<Value>,
    /// Why each RBAC rule of the file is there, in order; written as a comment above
    /// each rule.
    pub rule_reasons: Vec<String>,
}

impl ManifestFile {
    /// A file of objects without RBAC comments.
    pub fn new(name: impl Into<String>, objects: Vec<Value>) -> Self {
        Self {
            name: name.into(),
            objects,
            rule_reasons: Vec::new(),
        }
    }
}

/// A Helm chart install.
#[derive(Debug, Clone)]
pub struct HelmChart {
    /// Chart name (also the release name).
    pub chart: &'static str,
    /// Target namespace.
    pub namespace: String,
    /// Values.
    pub values: Value,
}

/// The Gateway API repository.
pub const GATEWAY_API_REPOSITORY: &str = "https://github.com/kubernetes-sigs/gateway-api";

/// Name of the issuer Secret Linkerd's identity controller reads.
pub const ISSUER_SECRET: &str = "linkerd-identity-issuer";
/// Name of the anchor key pair Secret (cert-manager issuer only).
pub const TRUST_ANCHOR_SECRET: &str = "linkerd-trust-anchor";
