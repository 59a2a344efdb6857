//! The text formats: Graphviz DOT and Mermaid. Graphviz and Mermaid lay them out; these
//! only say what is linked, how, and (with live health) how each part is doing.

use std::fmt::Write as _;

use super::{FleetGraph, FleetHealth, Health, cluster_caption};
use meshfleet_fleet::model::LinkMode;
use meshfleet_live::check::Status;

/// Fill and line colours of a health status (the symbol carries the same meaning).
pub(super) fn health_colours(health: &Health) -> (&'static str, &'static str) {
    match health.status {
        Some(Status::Ok) => ("#dcfce7", "#15803d"),
        Some(Status::Warning) => ("#fef3c7", "#b45309"),
        Some(Status::Error) => ("#fee2e2", "#b91c1c"),
        None => ("#f1f5f9", "#64748b"),
    }
}

fn dot_string(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz DOT.
pub(super) fn dot(graph: &FleetGraph<'_>, health: Option<&FleetHealth>) -> String {
    let mut out = format!(
        "// fleet `{}`: an arrow is a link `source -> target`: the source mirrors the services of the target, whose gateway it dials\ndigraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"DejaVu Sans,Verdana,sans-serif\"];\n",
        graph.name, graph.name
    );
    for (i, c) in graph.nodes.iter().enumerate() {
        let mut label = format!("{}\\n{}", dot_string(&c.name), dot_string(&cluster_caption(c)));
        let mut attrs = Vec::new();
        if c.gateway.is_some() {
            attrs.push("peripheries=2".to_string());
        }
        let mut style = "rounded".to_string();
        if graph.is_hub(i) {
            style.push_str(",filled,bold");
            attrs.push("penwidth=3".into());
            attrs.push("fillcolor=\"#fde68a\"".into());
            label.push_str("\\nhub");
        }
        if let Some(health) = health {
            let h = health.cluster(&c.name);
            let (fill, line) = health_colours(&h);
            if !style.contains("filled") {
                style.push_str(",filled");
            }
            attrs.retain(|a| !a.starts_with("fillcolor"));
            attrs.push(format!("fillcolor=\"{fill}\", color=\"{line}\""));
            label = format!("{} {label}\\n{}", h.symbol(), h.headline());
            attrs.push(format!(
                "tooltip=\"{}\"",
                dot_string(&h.problem_lines().join("\n"))
            ));
        }
        attrs.insert(0, format!("label=\"{label}\""));
        attrs.push(format!("style=\"{style}\""));
        let _ = writeln!(out, "  \"{}\" [{}];", c.name, attrs.join(", "));
    }
    for e in &graph.edges {
        let (from, to) = (&graph.nodes[e.source].name, &graph.nodes[e.target].name);
        let style = if e.mode() == LinkMode::Gateway {
            "solid"
        } else {
            "dashed"
        };
        let mut attrs = format!(
            "label=\"{}\", style={style}, tooltip=\"{}\"",
            e.mode().as_str(),
            dot_string(&e.link.label())
        );
        if let Some(health) = health {
            let h = health.link(&e.link.source, &e.link.target);
            let (_, line) = health_colours(&h);
            let width = if h.problems.is_empty() { 1.0 } else { 2.5 };
            attrs = format!(
                "label=\"{} {}\", style={style}, color=\"{line}\", penwidth={width}, tooltip=\"{}\"",
                h.symbol(),
                e.mode().as_str(),
                dot_string(
                    &std::iter::once(e.link.label())
                        .chain(h.problem_lines())
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            );
        }
        let _ = writeln!(out, "  \"{from}\" -> \"{to}\" [{attrs}];");
    }
    out.push_str("}\n");
    out
}

/// Mermaid flowchart.
pub(super) fn mermaid(graph: &FleetGraph<'_>, health: Option<&FleetHealth>) -> String {
    let id = |i: usize| graph.nodes[i].name.replace('-', "_");
    let mut out = format!(
        "%% fleet `{}`: an arrow is a link `source -> target`: the source mirrors the target's services\nflowchart LR\n",
        graph.name
    );
    for (i, c) in graph.nodes.iter().enumerate() {
        let mut label = format!("{}<br/>{}", c.name, cluster_caption(c));
        if graph.is_hub(i) {
            label.push_str("<br/>hub");
        }
        if let Some(health) = health {
            let h = health.cluster(&c.name);
            label = format!("{} {label}<br/>{}", h.symbol(), h.headline());
        }
        let _ = writeln!(out, "  {}[\"{label}\"]", id(i));
    }
    for e in &graph.edges {
        let arrow = if e.mode() == LinkMode::Gateway {
            "-->"
        } else {
            "-.->"
        };
        let mut label = e.mode().as_str().to_string();
        if let Some(health) = health {
            label = format!("{} {label}", health.link(&e.link.source, &e.link.target).symbol());
        }
        let _ = writeln!(out, "  {} {arrow}|{label}| {}", id(e.source), id(e.target));
    }
    if let Some(h) = graph.hub {
        let _ = writeln!(
            out,
            "  classDef hub fill:#fde68a,stroke:#b45309,stroke-width:3px\n  class {} hub",
            id(h)
        );
    }
    if let Some(health) = health {
        for (class, status) in [
            ("ok", Some(Status::Ok)),
            ("warning", Some(Status::Warning)),
            ("failed", Some(Status::Error)),
            ("unchecked", None),
        ] {
            let members: Vec<String> = (0..graph.nodes.len())
                .filter(|&i| health.cluster(&graph.nodes[i].name).status == status)
                .map(id)
                .collect();
            if members.is_empty() {
                continue;
            }
            let (fill, line) = health_colours(&Health {
                status,
                ..Health::default()
            });
            let _ = writeln!(
                out,
                "  classDef {class} fill:{fill},stroke:{line}\n  class {} {class}",
                members.join(",")
            );
        }
        for (n, e) in graph.edges.iter().enumerate() {
            let h = health.link(&e.link.source, &e.link.target);
            if h.status.is_some_and(|s| s != Status::Ok) {
                let (_, line) = health_colours(&h);
                let _ = writeln!(out, "  linkStyle {n} stroke:{line},stroke-width:3px");
            }
        }
    }
    out
}
