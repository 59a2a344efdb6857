//! `graph --live`: the fleet's picture coloured by what `check` found on the real API
//! servers of [`super::live`], and checked by the picture test like every other picture.

use meshfleet_core::identity;
use time::OffsetDateTime;

use super::{live, lock};
use crate::fixtures;
use crate::picture::problems;
use crate::support::{meshfleet, texts};
use crate::testenv;

/// `graph . --live` on the shared environment: exit code and SVG.
fn graph_live() -> (i32, String, String) {
    let live = live();
    let output = meshfleet(live.fleet.path())
        .args(["graph", ".", "--live", "--kubeconfig"])
        .arg(live.env.kubeconfig())
        .output()
        .expect("graph --live");
    let (svg, stderr) = texts(&output);
    (output.status.code().unwrap_or(-1), svg, stderr)
}

/// The `<g>` of the cluster or link whose tooltip starts with `title`.
fn element<'s>(svg: &'s str, title: &str) -> &'s str {
    let at = svg
        .find(&format!("<title>{title}"))
        .unwrap_or_else(|| panic!("no element titled `{title}` in:\n{svg}"));
    let end = svg[at..].find("</g>").map_or(svg.len(), |e| at + e);
    &svg[at..end]
}

#[test]
fn a_healthy_fleet_is_green_everywhere() {
    let _lock = lock();
    let (code, svg, stderr) = graph_live();
    assert_eq!(code, 0, "{stderr}");
    assert!(svg.contains("live: 0 failing, 0 with warnings"), "{svg}");
    for cluster in ["studio", "pro"] {
        let g = element(&svg, &format!("{cluster}\n"));
        assert!(g.contains("fill=\"#dcfce7\""), "{cluster} is green: {g}");
        assert!(g.contains(&format!(">✓ {cluster}<")), "{cluster} carries ✓: {g}");
        assert!(g.contains(">8 checks pass<"), "{g}");
    }
    let link = element(&svg, "studio -&gt; pro: gateway link");
    assert!(
        link.contains("stroke=\"#15803d\"") && link.contains("✓ 12 checks pass"),
        "{link}"
    );
    let found = problems(&svg);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn failed_checks_colour_their_cluster_and_link_and_name_the_check_ids() {
    let live = live();
    let _lock = lock();
    let plan = &live.fixture.plan;
    let link = live.fixture.link("studio", "pro");
    let other = identity::generate_anchor(OffsetDateTime::now_utc()).expect("anchor");
    let (code, svg, stderr) = testenv::block_on(async {
        let studio = live.client("studio").await;
        let pro = live.client("pro").await;
        let kubeconfig = live.fixture.credentials_kubeconfig(&pro, link).await;
        let good = fixtures::credentials_secret(plan, link, &plan.linkerd.namespace, true, &kubeconfig);
        let mut bare = good.clone();
        bare.metadata.annotations = None;
        fixtures::apply(&studio, &fixtures::linkerd_config(plan, &other.cert_pem)).await;
        fixtures::apply(&studio, &bare).await;
        let result = graph_live();
        fixtures::apply(&studio, &good).await;
        fixtures::apply(
            &studio,
            &fixtures::linkerd_config(plan, &plan.identity.trust_anchor_pem),
        )
        .await;
        result
    });
    assert_eq!(code, 1, "a failed check exits 1, as `check` does: {stderr}");
    assert!(stderr.contains("meshfleet check"), "{stderr}");
    assert!(svg.contains("live: 2 failing, 0 with warnings"), "{svg}");
    // The cluster: red, ×, and the failing check id in its tooltip.
    let studio = element(&svg, "studio\n");
    assert!(studio.contains("fill=\"#fee2e2\""), "{studio}");
    assert!(
        studio.contains(">× studio<") && studio.contains(">failed: trust-anchors-match<"),
        "{studio}"
    );
    assert!(studio.contains("× trust-anchors-match: "), "{studio}");
    // The link `studio -> pro` (studio mirrors pro): red, thick, its check id in the tooltip.
    let failing = element(&svg, "studio -&gt; pro: gateway link");
    assert!(failing.contains("× credentials-secret: "), "{failing}");
    assert!(
        failing.contains("stroke=\"#b91c1c\" stroke-width=\"3.2\""),
        "{failing}"
    );
    // The rest stays green.
    assert!(element(&svg, "pro\n").contains("fill=\"#dcfce7\""));
    assert!(element(&svg, "pro -&gt; studio: gateway link").contains("stroke=\"#15803d\""));
    let found = problems(&svg);
    assert!(found.is_empty(), "{}", found.join("\n"));
    let png = crate::picture::png(&svg);
    let out = std::env::temp_dir().join("meshfleet-graph-live-failing.png");
    std::fs::write(&out, png).expect("write png");
    eprintln!("graph --live picture with failures: {}", out.display());
}
