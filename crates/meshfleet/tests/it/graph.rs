//! `graph`, `completions` and `man`: pictures and generated docs a person would use.

use crate::support::{meshfleet, repo_root, texts};

#[test]
fn graph_draws_clusters_links_modes_and_the_hub() {
    let root = repo_root();
    let out = meshfleet(&root)
        .args(["graph", "examples/hub-spoke", "--format", "dot"])
        .output()
        .expect("dot");
    let (dot, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        dot.contains("\"in-cluster-local\" -> \"production\" [label=\"gateway\", style=solid]"),
        "{dot}"
    );
    assert!(
        dot.contains("fillcolor=\"#fde68a\""),
        "the hub is highlighted: {dot}"
    );
    assert!(dot.contains("gateway tfx-internal.gerega.net:30143"), "{dot}");
    let out = meshfleet(&root)
        .args(["graph", "examples/hub-spoke", "--format", "mermaid"])
        .output()
        .expect("mermaid");
    let (mermaid, _) = texts(&out);
    assert!(
        mermaid.starts_with("%% fleet `hub-spoke`") && mermaid.contains("flowchart LR"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("in_cluster_local -->|gateway| nonproduction"),
        "{mermaid}"
    );
    assert!(mermaid.contains("class in_cluster_local hub"), "{mermaid}");
    let out = meshfleet(&root)
        .args(["graph", "examples/homelab"])
        .output()
        .expect("svg");
    let (svg, _) = texts(&out);
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\"") && svg.trim_end().ends_with("</svg>")
    );
    assert_eq!(svg.matches("<path id=\"edge-").count(), 2, "two links: {svg}");
    assert!(svg.contains(">studio<") && svg.contains(">pro<"));
    // The two links between studio and pro are two lines, each with its own tooltip.
    assert!(
        svg.contains("<title>studio → pro: gateway link; pro mirrors the services studio exports"),
        "{svg}"
    );
    assert!(
        svg.contains("<title>pro → studio: gateway link; studio mirrors the services pro exports"),
        "{svg}"
    );
}

#[test]
fn completions_and_man_page_are_generated() {
    let root = repo_root();
    for shell in ["bash", "zsh", "fish"] {
        let out = meshfleet(&root)
            .args(["completions", shell])
            .output()
            .expect("completions");
        assert!(out.status.success());
        assert!(texts(&out).0.contains("render"), "{shell}");
    }
    let out = meshfleet(&root).arg("man").output().expect("man");
    assert!(texts(&out).0.starts_with(".ie \\n(.g .ds Aq"), "roff output");
}
