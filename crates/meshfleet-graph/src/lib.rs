//! Pictures of the fleet: a self-contained SVG, Graphviz DOT and Mermaid, optionally
//! coloured by what `check` found on the live clusters.
//!
//! An arrow points the way Linkerd names a link, `source -> target`: from the cluster
//! that holds the Link and mirrors services to the cluster whose gateway it dials and
//! whose services it mirrors (the way requests to a mirror travel). Nothing is
//! told by colour alone: gateway links are solid and remote-discovery links dashed;
//! clusters with a gateway have a double border and say where it is; the hub (the
//! cluster most links point at) has a thick border and a `hub` line; with live health,
//! every cluster carries ✓ / ‼ / × and a one-line summary, and links whose checks failed
//! are drawn thicker, with the failing check ids in their tooltip.
//!
//! The SVG is built in three steps, each its own module: [`FleetGraph`] (who links to
//! whom, from the plan) → [`layout`] (where each box and line goes, boxes sized to their
//! text by [`metrics`]) → [`svg`] (drawing, tooltips, legend, a canvas fitted to the
//! drawing). [`health`] turns a [`meshfleet_live::check::CheckReport`] into a status per
//! cluster and per link; it reuses the checks' results and runs no check of its own.

mod dot;
pub mod health;
pub mod layout;
pub mod metrics;
mod svg;

pub use health::{FleetHealth, Health};

use meshfleet_fleet::model::LinkMode;
use meshfleet_plan::{ClusterPlan, FleetPlan, LinkPlan};

/// The hub: the cluster with the most incoming links, if it has more than one.
pub fn hub(plan: &FleetPlan) -> Option<&ClusterPlan> {
    let max = plan.clusters.iter().map(|c| c.incoming_sources.len()).max()?;
    if max < 2 {
        return None;
    }
    let mut hubs = plan.clusters.iter().filter(|c| c.incoming_sources.len() == max);
    let first = hubs.next()?;
    hubs.next().is_none().then_some(first)
}

/// The fleet as a directed graph: clusters, and links drawn from their source (the
/// mirroring cluster) to their target (the exporting one).
#[derive(Debug)]
pub struct FleetGraph<'a> {
    /// The fleet's name.
    pub name: &'a str,
    /// Clusters, in fleet order.
    pub nodes: Vec<&'a ClusterPlan>,
    /// Links, in fleet order (by source, then the source's links).
    pub edges: Vec<Edge<'a>>,
    /// Index of the hub in `nodes`.
    pub hub: Option<usize>,
}

/// One link as an arrow, from its source to its target.
#[derive(Debug, Clone, Copy)]
pub struct Edge<'a> {
    /// Index of the link's source: where the Link lives, the mirroring cluster.
    pub source: usize,
    /// Index of the link's target: the cluster it dials, whose services it mirrors.
    pub target: usize,
    /// The link.
    pub link: &'a LinkPlan,
}

impl Edge<'_> {
    /// Gateway or remote discovery.
    pub fn mode(&self) -> LinkMode {
        self.link.mode
    }
}

impl<'a> FleetGraph<'a> {
    /// The graph of a plan.
    pub fn new(plan: &'a FleetPlan) -> Self {
        let index = |name: &str| plan.clusters.iter().position(|c| c.name == name);
        let edges = plan
            .clusters
            .iter()
            .enumerate()
            .flat_map(|(source, c)| {
                c.outgoing.iter().filter_map(move |link| {
                    Some(Edge {
                        source,
                        target: index(&link.target)?,
                        link,
                    })
                })
            })
            .collect();
        let hub = hub(plan).and_then(|h| index(&h.name));
        Self {
            name: &plan.name,
            nodes: plan.clusters.iter().collect(),
            edges,
            hub,
        }
    }

    /// Whether the cluster at `index` is the hub.
    pub fn is_hub(&self, index: usize) -> bool {
        self.hub == Some(index)
    }

    /// How many clusters mirror the services of the cluster at `index`.
    pub fn exports_to(&self, index: usize) -> usize {
        self.edges.iter().filter(|e| e.target == index).count()
    }

    /// How many clusters the cluster at `index` mirrors.
    pub fn mirrors(&self, index: usize) -> usize {
        self.edges.iter().filter(|e| e.source == index).count()
    }
}

/// "gateway host:port", or "no gateway": the line under a cluster's name.
pub fn cluster_caption(c: &ClusterPlan) -> String {
    match &c.gateway {
        Some(gw) => format!(
            "gateway {}:{}",
            gw.addresses.first().map_or("?", String::as_str),
            gw.dialled_port()
        ),
        None => "no gateway".to_string(),
    }
}

/// A standalone SVG picture; with `health`, coloured by what `check` found.
pub fn svg(plan: &FleetPlan, health: Option<&FleetHealth>) -> String {
    svg::draw(&FleetGraph::new(plan), health)
}

/// Graphviz DOT; with `health`, coloured by what `check` found.
pub fn dot(plan: &FleetPlan, health: Option<&FleetHealth>) -> String {
    dot::dot(&FleetGraph::new(plan), health)
}

/// A Mermaid flowchart; with `health`, coloured by what `check` found.
pub fn mermaid(plan: &FleetPlan, health: Option<&FleetHealth>) -> String {
    dot::mermaid(&FleetGraph::new(plan), health)
}

/// Text escaped for XML content and attribute values.
pub(crate) fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
