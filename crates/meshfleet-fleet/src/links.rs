//! The fleet's links after the `topology` shorthands are expanded.
//!
//! `hubAndSpoke` adds `spoke -> hub` for every other cluster; `fullMesh` adds every
//! ordered pair. An explicit link for the same pair replaces the generated one, so a
//! single link of a mesh can change its mode or selectors. Generated links point at the
//! topology line, so findings about them still have a place in the file.

use std::collections::HashSet;

use super::located::{Located, SourceLocation};
use super::model::{Fleet, LinkMode};

/// A link as declared (explicitly or by a shorthand), before validation.
#[derive(Debug, Clone)]
pub struct DeclaredLink {
    /// Source cluster name (mirrors INTO it).
    pub source: Located<String>,
    /// Target cluster name (mirrors FROM it).
    pub target: Located<String>,
    /// Link mode.
    pub mode: Located<LinkMode>,
    /// Gateway-mode selector query, when written.
    pub selector: Option<Located<String>>,
    /// Remote-discovery selector query, when written.
    pub remote_discovery_selector: Option<Located<String>>,
    /// Federated selector query, when written.
    pub federated_service_selector: Option<Located<String>>,
    /// Where the link was declared (the list entry, or the topology line).
    pub at: SourceLocation,
    /// Whether it came from `spec.links` (not from `spec.topology`).
    pub explicit: bool,
}

impl DeclaredLink {
    /// `source -> target`, for messages.
    pub fn label(&self) -> String {
        format!("{} -> {}", self.source.value, self.target.value)
    }
}

/// Expand `spec.topology` and merge it with `spec.links`. Duplicates among explicit
/// links are kept (validation reports them).
pub fn declared_links(fleet: &Fleet) -> Vec<DeclaredLink> {
    let explicit: Vec<DeclaredLink> = fleet
        .spec
        .links
        .iter()
        .map(|l| DeclaredLink {
            source: l.source.clone(),
            target: l.target.clone(),
            mode: l
                .mode
                .clone()
                .unwrap_or_else(|| Located::synthetic(LinkMode::Gateway, l.at)),
            selector: l.selector.clone(),
            remote_discovery_selector: l.remote_discovery_selector.clone(),
            federated_service_selector: l.federated_service_selector.clone(),
            at: l.at,
            explicit: true,
        })
        .collect();
    let mut pairs: HashSet<(String, String)> = explicit
        .iter()
        .map(|l| (l.source.value.clone(), l.target.value.clone()))
        .collect();
    let mut generated = Vec::new();
    if let Some(topology) = &fleet.spec.topology {
        let names: Vec<&Located<String>> = fleet.spec.clusters.iter().map(|c| &c.name).collect();
        let mut push =
            |source: &Located<String>, target: &str, target_at: SourceLocation, mode: Located<LinkMode>| {
                if !pairs.insert((source.value.clone(), target.to_string())) {
                    return;
                }
                generated.push(DeclaredLink {
                    source: Located::synthetic(source.value.clone(), topology.at),
                    target: Located::synthetic(target.to_string(), target_at),
                    mode,
                    selector: None,
                    remote_discovery_selector: None,
                    federated_service_selector: None,
                    at: topology.at,
                    explicit: false,
                });
            };
        if let Some(hs) = &topology.hub_and_spoke {
            let mode = hs
                .mode
                .clone()
                .unwrap_or_else(|| Located::synthetic(LinkMode::Gateway, hs.hub.at));
            for name in &names {
                if name.value != hs.hub.value {
                    push(name, &hs.hub.value, hs.hub.at, mode.clone());
                }
            }
        }
        if topology.full_mesh.as_ref().is_some_and(|m| m.value) {
            let at = topology.full_mesh.as_ref().map_or(topology.at, |m| m.at);
            for source in &names {
                for target in &names {
                    if source.value != target.value {
                        push(
                            source,
                            &target.value,
                            at,
                            Located::synthetic(LinkMode::Gateway, at),
                        );
                    }
                }
            }
        }
    }
    let mut all = explicit;
    all.extend(generated);
    all
}
