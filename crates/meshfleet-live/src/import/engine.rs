//! Which GitOps engine runs on a cluster, and the fleet's `gitops.engine` from all of them.
//!
//! Installed CRDs alone do not mean an engine runs (a cluster may keep Flux's CRDs after
//! Flux left, or get Argo CD's from a chart that needs them), so an engine counts as
//! running when its controllers are there or its objects are:
//!
//! - Flux: a `kustomize-controller` or `source-controller` Deployment (any namespace),
//!   or a `Kustomization` (`kustomize.toolkit.fluxcd.io`) or `GitRepository`
//!   (`source.toolkit.fluxcd.io`) object;
//! - Argo CD: an `argocd-application-controller` StatefulSet or Deployment, or an
//!   `Application` (`argoproj.io`) object.
//!
//! With Argo CD one cluster often runs it for all (seed 003's hub), so a cluster without
//! an engine is not a disagreement; two clusters with different engines are, and the
//! engine is a guess only when none runs anywhere.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};

use super::ClusterReading;
use super::report::{Report, Severity};
use crate::cluster::ReadError;
use meshfleet_fleet::draft::{Entry, str};

/// `flux` or `argocd`, as the fleet names them.
pub const FLUX: &str = "flux";
/// See [`FLUX`].
pub const ARGOCD: &str = "argocd";

/// An engine found on a cluster and the object that shows it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineReading {
    /// [`FLUX`] or [`ARGOCD`].
    pub engine: &'static str,
    /// `Deployment flux-system/kustomize-controller`, `Application argocd/x`, ...
    pub evidence: String,
}

fn by_name(name: &str) -> ListParams {
    ListParams::default()
        .fields(&format!("metadata.name={name}"))
        .limit(1)
}

/// The first object of a list, as `Kind namespace/name`; a refused or missing list (no
/// CRD, no right to list) is none.
fn first(kind: &str, result: Result<Vec<NamespacedName>, kube::Error>) -> Result<Option<String>, ReadError> {
    match result {
        Ok(items) => Ok(items.into_iter().next().map(|(ns, name)| {
            format!(
                "{kind} {}{}",
                ns.map(|n| format!("{n}/")).unwrap_or_default(),
                name.unwrap_or_default()
            )
        })),
        Err(kube::Error::Api(e)) if matches!(e.code, 403 | 404) => Ok(None),
        Err(e) => Err(ReadError::from_kube(&format!("list {kind}s"), &e)),
    }
}

/// An object's namespace (none when cluster-scoped) and name.
type NamespacedName = (Option<String>, Option<String>);

fn names<K: kube::Resource + Clone>(list: kube::core::ObjectList<K>) -> Vec<NamespacedName> {
    list.items
        .into_iter()
        .map(|o| (o.meta().namespace.clone(), o.meta().name.clone()))
        .collect()
}

async fn objects(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Result<Option<String>, ReadError> {
    let resource = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    };
    let list = Api::<DynamicObject>::all_with(client.clone(), &resource)
        .list(&ListParams::default().limit(1))
        .await
        .map(names);
    first(kind, list)
}

/// The engines that run on a cluster, each with its first evidence.
pub(super) async fn read(client: &kube::Client) -> Result<Vec<EngineReading>, ReadError> {
    let deployments = Api::<Deployment>::all(client.clone());
    let mut flux = None;
    for controller in ["kustomize-controller", "source-controller"] {
        flux = first(
            "Deployment",
            deployments.list(&by_name(controller)).await.map(names),
        )?;
        if flux.is_some() {
            break;
        }
    }
    if flux.is_none() {
        flux = objects(
            client,
            "kustomize.toolkit.fluxcd.io",
            "v1",
            "Kustomization",
            "kustomizations",
        )
        .await?;
    }
    if flux.is_none() {
        flux = objects(
            client,
            "source.toolkit.fluxcd.io",
            "v1",
            "GitRepository",
            "gitrepositories",
        )
        .await?;
    }
    let controller = "argocd-application-controller";
    let mut argocd = first(
        "StatefulSet",
        Api::<StatefulSet>::all(client.clone())
            .list(&by_name(controller))
            .await
            .map(names),
    )?;
    if argocd.is_none() {
        argocd = first(
            "Deployment",
            deployments.list(&by_name(controller)).await.map(names),
        )?;
    }
    if argocd.is_none() {
        argocd = objects(client, "argoproj.io", "v1alpha1", "Application", "applications").await?;
    }
    Ok([(FLUX, flux), (ARGOCD, argocd)]
        .into_iter()
        .filter_map(|(engine, evidence)| {
            Some(EngineReading {
                engine,
                evidence: evidence?,
            })
        })
        .collect())
}

/// `gitops.engine`: the engine that runs; a guess when none runs anywhere or a cluster
/// runs both; clusters that run different engines are a problem each.
pub(super) fn entry(read: &[&ClusterReading], report: &mut Report) -> Entry {
    let mut single: BTreeMap<&str, (&str, &EngineReading)> = BTreeMap::new();
    let mut both = Vec::new();
    for r in read {
        match r.engines.as_slice() {
            [] => {}
            [one] => {
                single.entry(one.engine).or_insert((r.context.as_str(), one));
            }
            [first, ..] => both.push((r.context.as_str(), first)),
        }
    }
    if single.len() > 1 {
        let mut clusters = read.iter().filter(|r| r.engines.len() == 1);
        if let Some(first) = clusters.next() {
            for r in clusters.filter(|r| r.engines[0].engine != first.engines[0].engine) {
                report.add(
                    Severity::Problem,
                    Some(&r.context),
                    Some(r.engines[0].evidence.clone()),
                    format!(
                        "it runs {}, while `{}` runs {} ({})",
                        label(r.engines[0].engine),
                        first.context,
                        label(first.engines[0].engine),
                        first.engines[0].evidence
                    ),
                    "one fleet is applied by one engine (`gitops.engine`): choose it, or import the clusters as separate fleets",
                );
            }
        }
    }
    for (context, first) in &both {
        report.add(
            Severity::Guess,
            Some(context),
            None,
            format!(
                "both Flux and Argo CD run there; `gitops.engine` is `{}` ({})",
                single.keys().next().copied().unwrap_or(first.engine),
                first.evidence
            ),
            "set `spec.gitops.engine` to the engine that applies Linkerd",
        );
    }
    if let Some((engine, (context, evidence))) = single.iter().next() {
        let note = if single.len() > 1 {
            format!("GUESSED: the clusters run different engines; `{context}` runs this one")
        } else {
            format!("read: {} on `{context}`", evidence.evidence)
        };
        return Entry::noted("engine", str(*engine), note);
    }
    if let Some((context, first)) = both.first() {
        return Entry::noted(
            "engine",
            str(first.engine),
            format!("GUESSED: both run on `{context}`"),
        );
    }
    report.add(
        Severity::Guess,
        None,
        None,
        "neither Flux nor Argo CD runs on the clusters (no controller, no Kustomization, GitRepository or Application); `gitops.engine` is `flux`, a guess".into(),
        "set `spec.gitops.engine` to the engine that will apply the rendered tree",
    );
    Entry::noted(
        "engine",
        str(FLUX),
        "GUESSED: neither Flux nor Argo CD runs there",
    )
}

fn label(engine: &str) -> &'static str {
    if engine == ARGOCD { "Argo CD" } else { "Flux" }
}
