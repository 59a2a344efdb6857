//! Pictures of the fleet: Graphviz DOT, Mermaid, and a self-contained SVG.
//!
//! An arrow points the way services flow: from the target (exporting) to the source
//! (mirroring), which is how people read "pro's services appear in studio". Gateway
//! links are solid, remote-discovery links dashed; clusters with a gateway are drawn
//! with a double border, and the hub (the cluster most links point at) is highlighted.

use std::fmt::Write as _;

use crate::fleet::model::LinkMode;
use crate::plan::{ClusterPlan, FleetPlan};

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

fn edges(plan: &FleetPlan) -> Vec<(&str, &str, LinkMode)> {
    plan.clusters
        .iter()
        .flat_map(|c| {
            c.outgoing
                .iter()
                .map(move |l| (l.target.as_str(), c.name.as_str(), l.mode))
        })
        .collect()
}

/// Graphviz DOT.
pub fn dot(plan: &FleetPlan) -> String {
    let hub = hub(plan).map(|h| h.name.as_str());
    let mut out = format!(
        "// fleet `{}`: arrows point from the exporting cluster to the one that mirrors its services\ndigraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n",
        plan.name, plan.name
    );
    for c in &plan.clusters {
        let mut attrs = vec![format!("label=\"{}\\n{}\"", c.name, cluster_caption(c))];
        if c.gateway.is_some() {
            attrs.push("peripheries=2".into());
        }
        if hub == Some(c.name.as_str()) {
            attrs.push("style=\"rounded,filled,bold\"".into());
            attrs.push("fillcolor=\"#fde68a\"".into());
        }
        let _ = writeln!(out, "  \"{}\" [{}];", c.name, attrs.join(", "));
    }
    for (from, to, mode) in edges(plan) {
        let style = if mode == LinkMode::Gateway {
            "solid"
        } else {
            "dashed"
        };
        let _ = writeln!(
            out,
            "  \"{from}\" -> \"{to}\" [label=\"{}\", style={style}];",
            mode.as_str()
        );
    }
    out.push_str("}\n");
    out
}

fn cluster_caption(c: &ClusterPlan) -> String {
    match &c.gateway {
        Some(gw) => format!(
            "gateway {}:{}",
            gw.addresses.first().map_or("?", String::as_str),
            gw.dialled_port()
        ),
        None => "no gateway".to_string(),
    }
}

/// Mermaid flowchart.
pub fn mermaid(plan: &FleetPlan) -> String {
    let hub = hub(plan).map(|h| h.name.as_str());
    let id = |name: &str| name.replace('-', "_");
    let mut out = format!(
        "%% fleet `{}`: arrows point from the exporting cluster to the mirroring one\nflowchart LR\n",
        plan.name
    );
    for c in &plan.clusters {
        let _ = writeln!(
            out,
            "  {}[\"{}<br/>{}\"]",
            id(&c.name),
            c.name,
            cluster_caption(c)
        );
    }
    for (from, to, mode) in edges(plan) {
        let arrow = if mode == LinkMode::Gateway { "-->" } else { "-.->" };
        let _ = writeln!(out, "  {} {arrow}|{}| {}", id(from), mode.as_str(), id(to));
    }
    if let Some(h) = hub {
        let _ = writeln!(
            out,
            "  classDef hub fill:#fde68a,stroke:#b45309,stroke-width:3px\n  class {} hub",
            id(h)
        );
    }
    out
}

/// A standalone SVG: clusters on a circle (the hub in the middle), arrows for links.
pub fn svg(plan: &FleetPlan) -> String {
    let hub = hub(plan).map(|h| h.name.as_str());
    let ring: Vec<&ClusterPlan> = plan
        .clusters
        .iter()
        .filter(|c| Some(c.name.as_str()) != hub)
        .collect();
    let n = ring.len().max(1);
    #[allow(clippy::cast_precision_loss)]
    let radius = (120.0_f64).max(n as f64 * 140.0 / std::f64::consts::TAU);
    let (box_w, box_h) = (150.0, 46.0);
    let size = 2.0 * radius + 2.0 * box_w;
    let center = size / 2.0;
    let mut pos = std::collections::HashMap::new();
    if let Some(h) = hub {
        pos.insert(h, (center, center));
    }
    for (i, c) in ring.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let angle = std::f64::consts::TAU * i as f64 / n as f64 - std::f64::consts::FRAC_PI_2;
        pos.insert(
            c.name.as_str(),
            (center + radius * angle.cos(), center + radius * angle.sin()),
        );
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size:.0}\" height=\"{:.0}\" viewBox=\"0 0 {size:.0} {:.0}\" font-family=\"Helvetica, Arial, sans-serif\">",
        size + 40.0,
        size + 40.0
    );
    let _ = writeln!(out, "  <title>fleet {}</title>", xml(&plan.name));
    out.push_str("  <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#334155\"/></marker></defs>\n");
    let _ = writeln!(out, "  <rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>");
    for (from, to, mode) in edges(plan) {
        let (Some(&(x1, y1)), Some(&(x2, y2))) = (pos.get(from), pos.get(to)) else {
            continue;
        };
        let (sx, sy) = clip(x1, y1, x2, y2, box_w / 2.0, box_h / 2.0);
        let (ex, ey) = clip(x2, y2, x1, y1, box_w / 2.0, box_h / 2.0);
        // Offset both directions of a pair so they do not overlap.
        let (dx, dy) = (ey - sy, sx - ex);
        let len = dx.hypot(dy).max(1.0);
        let (ox, oy) = (dx / len * 4.0, dy / len * 4.0);
        let dash = if mode == LinkMode::Gateway {
            ""
        } else {
            " stroke-dasharray=\"6 4\""
        };
        let _ = writeln!(
            out,
            "  <line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#334155\" stroke-width=\"1.6\"{dash} marker-end=\"url(#arrow)\"><title>{from} → {to} ({})</title></line>",
            sx + ox,
            sy + oy,
            ex + ox,
            ey + oy,
            mode.as_str()
        );
    }
    for c in &plan.clusters {
        let Some(&(x, y)) = pos.get(c.name.as_str()) else {
            continue;
        };
        let is_hub = hub == Some(c.name.as_str());
        let (fill, stroke, width) = if is_hub {
            ("#fde68a", "#b45309", 3)
        } else {
            ("#e0f2fe", "#0369a1", 1)
        };
        let _ = writeln!(
            out,
            "  <rect x=\"{:.1}\" y=\"{:.1}\" width=\"{box_w}\" height=\"{box_h}\" rx=\"8\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{width}\"/>",
            x - box_w / 2.0,
            y - box_h / 2.0
        );
        if c.gateway.is_some() {
            let _ = writeln!(
                out,
                "  <rect x=\"{:.1}\" y=\"{:.1}\" width=\"{}\" height=\"{}\" rx=\"10\" fill=\"none\" stroke=\"{stroke}\" stroke-width=\"1\"/>",
                x - box_w / 2.0 - 3.0,
                y - box_h / 2.0 - 3.0,
                box_w + 6.0,
                box_h + 6.0
            );
        }
        let _ = writeln!(
            out,
            "  <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">{}</text>",
            y - 3.0,
            xml(&c.name)
        );
        let _ = writeln!(
            out,
            "  <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\" fill=\"#475569\">{}</text>",
            y + 13.0,
            xml(&cluster_caption(c))
        );
    }
    let _ = writeln!(
        out,
        "  <text x=\"10\" y=\"{:.0}\" font-size=\"11\" fill=\"#475569\">arrows: services flow from the exporting cluster to the mirroring one; solid = gateway, dashed = remote-discovery; double border = has a gateway{}</text>",
        size + 28.0,
        if hub.is_some() { "; yellow = hub" } else { "" }
    );
    out.push_str("</svg>\n");
    out
}

/// Move the point (x1, y1) toward (x2, y2) to the edge of a box of half-size (hw, hh).
fn clip(x1: f64, y1: f64, x2: f64, y2: f64, hw: f64, hh: f64) -> (f64, f64) {
    let (dx, dy) = (x2 - x1, y2 - y1);
    if dx.abs() < f64::EPSILON && dy.abs() < f64::EPSILON {
        return (x1, y1);
    }
    let t = (hw / dx.abs().max(f64::EPSILON)).min(hh / dy.abs().max(f64::EPSILON));
    (x1 + dx * t, y1 + dy * t)
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
