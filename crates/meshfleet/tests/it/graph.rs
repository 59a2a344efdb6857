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
        dot.contains(
            "\"production\" -> \"in-cluster-local\" [label=\"gateway\", style=solid, tooltip=\"production -> in-cluster-local\"]"
        ),
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
        mermaid.contains("nonproduction -->|gateway| in_cluster_local"),
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
        svg.contains("<title>studio -&gt; pro: gateway link; studio mirrors the services pro exports"),
        "{svg}"
    );
    assert!(
        svg.contains("<title>pro -&gt; studio: gateway link; pro mirrors the services studio exports"),
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

/// Issue 23: `validate` named a link `production -> in-cluster-local` while the
/// picture's tooltip said `in-cluster-local -> production`. Every command names a link
/// as Linkerd does, `source -> target` (the Link lives on the source and dials the
/// target's gateway): validate's findings, `graph -o json`, the SVG's tooltip and arrow,
/// and DOT.
#[test]
fn a_link_is_named_source_to_target_by_validate_graph_json_and_the_picture() {
    let dir = crate::support::example_copy("hub-spoke", "argocd");
    let name = "production -> in-cluster-local";
    let fleet = dir.path().join("fleet.yaml");
    let text = std::fs::read_to_string(&fleet).expect("read fleet");
    // An explicit link replaces the one the topology made; its empty selector is a warning.
    let with_warning =
        format!("{text}  links:\n    - {{source: production, target: in-cluster-local, selector: \"\"}}\n");
    std::fs::write(&fleet, &with_warning).expect("write fleet");
    let run = |args: &[&str]| {
        let out = meshfleet(dir.path()).args(args).output().expect("run meshfleet");
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "{args:?}\n{stdout}\n{stderr}");
        stdout
    };

    let validate = run(&["validate", "."]);
    assert!(
        validate.contains(&format!("`selector` of link `{name}` is empty")),
        "{validate}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&run(&["-o", "json", "graph", "."])).expect("graph -o json");
    let link = json["links"]
        .as_array()
        .expect("links")
        .iter()
        .find(|l| l["source"] == "production")
        .expect("the link of production");
    assert_eq!(link["name"], name);
    assert_eq!(link["target"], "in-cluster-local");
    assert_eq!(link["id"], "production-to-in-cluster-local");
    assert_eq!(link["linkName"], "internal");

    let svg = run(&["graph", "."]);
    let index: usize = 0; // production's link comes first (fleet order of sources)
    assert!(
        svg.contains(&format!(
            "<g id=\"link-{index}\"><title>production -&gt; in-cluster-local: gateway link; production mirrors the services in-cluster-local exports"
        )),
        "{svg}"
    );
    // The path runs from the source (cluster 1) to the target (cluster 0).
    assert!(svg.contains(&format!("<path id=\"edge-{index}-1-0\"")), "{svg}");
    let dot = run(&["graph", ".", "--format", "dot"]);
    assert!(
        dot.contains(&format!(
            "\"production\" -> \"in-cluster-local\" [label=\"gateway\", style=solid, tooltip=\"{name}\"]"
        )),
        "{dot}"
    );

    // The error the issue quoted names it the same way.
    std::fs::write(
        &fleet,
        with_warning.replace("        addresses: [tfx-internal.gerega.net]\n", ""),
    )
    .expect("write fleet");
    let out = meshfleet(dir.path())
        .args(["validate", "."])
        .output()
        .expect("validate");
    let (stdout, _) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "the gateway of cluster `in-cluster-local` has no `addresses`, but link `{name}` dials it"
        )),
        "{stdout}"
    );
}
