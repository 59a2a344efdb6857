//! `meshfleet import` of a mesh linked the way seed 003's runbook links it: Linkerd's
//! real CLI `linkerd multicluster link-gen --cluster-name internal` piped to
//! `kubectl apply` on each spoke, a NodePort gateway on the hub, the real service mirror
//! controllers running. The imported fleet validates; its render keeps every Link's name,
//! spec and credentials Secret; applying that render (`testenv/run mesh`) replaces no
//! mirror Service and mirroring goes on. Clusters that disagree are reported by cluster
//! and object, exit 1, and the file is still written, marked. A link also served by the
//! deprecated `linkerd multicluster link` controller is imported as legacy, and `migrate`
//! with the imported fleet removes that controller without losing a mirror.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::scenario::{APPS, MULTICLUSTER, Scenario};
use super::{example_fleet, ports_of};
use meshfleet_core::render::resources::Link;

const HUB: &str = "in-cluster-local";
const SPOKES: [&str; 2] = ["production", "nonproduction"];

/// `kubectl apply -f -` of `docs` on `cluster`, as the runbook pipes link-gen's output.
pub(super) fn kubectl_apply(s: &Scenario, cluster: &str, docs: &[Value]) {
    let yaml = docs.iter().fold(String::new(), |mut yaml, d| {
        let _ = writeln!(
            yaml,
            "---
{}",
            serde_json::to_string(d).expect("json")
        );
        yaml
    });
    let mut child = std::process::Command::new(crate::support::repo_root().join("testenv/bin/kubectl"))
        .args(["apply", "-f", "-", "--kubeconfig"])
        .arg(s.env.kubeconfig())
        .args(["--context", cluster])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), yaml.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("kubectl apply");
    assert!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The live Links of a cluster, by name, as JSON (name and spec).
pub(super) fn live_links(s: &Scenario, cluster: &str) -> BTreeMap<String, Value> {
    let api = Api::<Link>::namespaced(s.client(cluster), MULTICLUSTER);
    s.block_on(api.list(&ListParams::default()))
        .expect("list Links")
        .items
        .into_iter()
        .map(|l| {
            (
                l.metadata.name.clone().unwrap_or_default(),
                serde_json::to_value(&l.spec).expect("json"),
            )
        })
        .collect()
}

/// The Links of a rendered tree's cluster folder, by name, each with its spec as the
/// cluster's API server stores it (a dry-run create under another name: the CRD's
/// defaults, such as `probeSpec.timeout`, applied, nothing merged with the live Link).
pub(super) fn rendered_links(s: &Scenario, tree: &Path, cluster: &str) -> BTreeMap<String, Value> {
    let files = crate::support::read_tree(&tree.join(cluster));
    let api = Api::<Link>::namespaced(s.client(cluster), MULTICLUSTER);
    crate::support::rendered_objects(&files)
        .into_iter()
        .filter(|(_, o)| o["kind"] == "Link")
        .map(|(_, mut o)| {
            let name = o["metadata"]["name"].as_str().expect("name").to_owned();
            o["metadata"]["name"] = json!(format!("{name}-dry-run"));
            let link: Link = serde_json::from_value(o).expect("a rendered Link");
            let stored = s
                .block_on(api.create(
                    &PostParams {
                        dry_run: true,
                        ..PostParams::default()
                    },
                    &link,
                ))
                .unwrap_or_else(|e| panic!("dry-run create of Link {name} on {cluster}: {e}"));
            (name, serde_json::to_value(&stored.spec).expect("json"))
        })
        .collect()
}

/// UID of every mirror Service (`mirror.linkerd.io/mirrored-service=true`) on a cluster.
pub(super) fn mirror_uids(s: &Scenario, cluster: &str) -> BTreeMap<String, String> {
    let api = Api::<k8s_openapi::api::core::v1::Service>::namespaced(s.client(cluster), APPS);
    s.block_on(api.list(&ListParams::default().labels("mirror.linkerd.io/mirrored-service=true")))
        .expect("list mirrors")
        .items
        .into_iter()
        .map(|m| {
            (
                m.metadata.name.unwrap_or_default(),
                m.metadata.uid.unwrap_or_default(),
            )
        })
        .collect()
}

pub(super) fn import(s: &Scenario, out: &Path, contexts: &[&str]) -> (i32, String, String) {
    let mut args = vec!["import", "--out", out.to_str().expect("utf-8"), "-o", "json"];
    for c in contexts {
        args.extend(["--context", c]);
    }
    s.meshfleet(&args)
}

#[test]
fn import_adopts_a_mesh_linked_with_link_gen_and_its_render_keeps_every_link_and_mirror() {
    let s = Scenario::start(&[HUB, SPOKES[0], SPOKES[1]], |ports| {
        example_fleet("hub-spoke", ports)
    });
    // Seed 003's runbook: link-gen against the hub with `--cluster-name internal`, the
    // NodePort gateway's address, applied to each spoke with kubectl.
    let links = s.links();
    for link in &links {
        kubectl_apply(&s, &link.source, &s.link_gen(link));
    }
    s.export(HUB, "loki-gateway", Some("true"), &[(3100, "http")]);
    for link in &links {
        s.wait_mirror(link, "loki-gateway", |m| ports_of(m) == [3100]);
    }
    let before: BTreeMap<&str, BTreeMap<String, String>> =
        SPOKES.iter().map(|c| (*c, mirror_uids(&s, c))).collect();
    let links_before: BTreeMap<&str, BTreeMap<String, Value>> =
        SPOKES.iter().map(|c| (*c, live_links(&s, c))).collect();
    assert!(
        before.values().all(|m| m.contains_key("loki-gateway-internal")),
        "{before:?}"
    );

    let adopted = tempfile::tempdir().expect("tempdir");
    let fleet = adopted.path().join("fleet.yaml");
    let (code, stdout, stderr) = import(&s, &fleet, &[HUB, SPOKES[0], SPOKES[1]]);
    assert_eq!(code, 0, "import:\n{stdout}\n{stderr}");
    let text = std::fs::read_to_string(&fleet).expect("imported fleet");
    eprintln!("{text}");
    let report: Value = serde_json::from_str(&stdout).expect("import -o json");
    assert_eq!(report["ready"], true, "{report:#}");
    let mut found: Vec<String> = report["links"]
        .as_array()
        .expect("links")
        .iter()
        .map(|l| format!("{} -> {} as {}", l["source"], l["target"], l["name"]))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "\"nonproduction\" -> \"in-cluster-local\" as \"internal\"",
            "\"production\" -> \"in-cluster-local\" as \"internal\""
        ],
        "{report:#}"
    );
    assert!(text.contains("linkName: internal"), "{text}");
    assert!(text.contains("nodePort: 30143"), "{text}");
    assert!(!text.contains("PRIVATE KEY") && !text.contains("token"), "{text}");
    assert!(
        !stdout.contains("eyJ") && !stderr.contains("eyJ"),
        "a token was printed"
    );
    // The anchor is the bundle the proxies use.
    let anchor = std::fs::read_to_string(adopted.path().join("certs/trust-anchor.crt")).expect("anchor");
    let anchor_file = std::fs::read_to_string(s.dir().join("certs/trust-anchor.crt")).expect("fleet anchor");
    assert_eq!(
        meshfleet_core::identity::parse_pem_bundle(&anchor).expect("pem")[0].sha256,
        meshfleet_core::identity::parse_pem_bundle(&anchor_file).expect("pem")[0].sha256
    );

    let (code, stdout, stderr) = s.meshfleet(&["validate", fleet.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "the imported fleet is invalid:\n{stdout}\n{stderr}");
    let tree = adopted.path().join("gitops");
    let (code, stdout, stderr) = s.meshfleet(&[
        "render",
        fleet.to_str().expect("utf-8"),
        "--out",
        tree.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "render:\n{stdout}\n{stderr}");
    for spoke in SPOKES {
        let rendered = rendered_links(&s, &tree, spoke);
        assert_eq!(
            rendered.keys().collect::<Vec<_>>(),
            links_before[spoke].keys().collect::<Vec<_>>(),
            "{spoke}: Link names"
        );
        for (name, spec) in &rendered {
            assert_eq!(
                spec, &links_before[spoke][name],
                "{spoke}: Link {name} would change"
            );
        }
    }

    // Applying the imported render replaces no mirror, and mirroring goes on.
    s.env.mesh(&tree);
    s.export(HUB, "after-import", Some("true"), &[(80, "http")]);
    for link in &links {
        s.wait_mirror(link, "after-import", |m| ports_of(m) == [80]);
    }
    for spoke in SPOKES {
        let after = mirror_uids(&s, spoke);
        for (mirror, uid) in &before[spoke] {
            assert_eq!(
                after.get(mirror),
                Some(uid),
                "{spoke}: mirror {mirror} was replaced or deleted"
            );
        }
        assert_eq!(
            live_links(&s, spoke),
            links_before[spoke],
            "{spoke}: a Link changed"
        );
    }

    // `check` with the imported fleet: the clusters are what the fleet says.
    let (code, stdout, stderr) = s.meshfleet(&["check", fleet.to_str().expect("utf-8"), "-o", "json"]);
    let checked: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    let failing: Vec<String> = checked["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| {
            c["checks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|k| k["status"] == "error")
                .map(move |k| format!("{}: {} {}", c["name"], k["id"], k["message"]))
        })
        .collect();
    assert_eq!(
        (code, failing.clone()),
        (0, Vec::new()),
        "check with the imported fleet: {failing:#?}"
    );

    // Seed 000's way for one link: the deprecated `linkerd multicluster link` controller
    // beside the declarative one. `import` reports it as legacy; `migrate --apply` with
    // the imported fleet removes it, and no mirror is lost.
    let legacy = &links[0];
    s.install_legacy_link(legacy);
    let legacy_fleet = adopted.path().join("legacy/fleet.yaml");
    let (code, stdout, stderr) = import(&s, &legacy_fleet, &[HUB, SPOKES[0], SPOKES[1]]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("json");
    let flagged: Vec<&Value> = report["links"]
        .as_array()
        .expect("links")
        .iter()
        .filter(|l| l["legacy"] == true)
        .collect();
    assert_eq!(flagged.len(), 1, "{report:#}");
    assert_eq!(flagged[0]["source"], legacy.source.as_str(), "{report:#}");
    let legacy_fleet_arg = legacy_fleet.to_str().expect("utf-8");
    let (code, stdout, stderr) = s.meshfleet(&["migrate", legacy_fleet_arg, "--apply"]);
    assert!(code == 0 || code == 1, "{stdout}\n{stderr}");
    let old_controller = format!("linkerd-service-mirror-{}", legacy.link_name());
    assert!(
        s.deployment(&legacy.source, MULTICLUSTER, &old_controller)
            .is_none(),
        "the legacy controller is still there:\n{stdout}\n{stderr}"
    );
    s.export(HUB, "after-migrate", Some("true"), &[(81, "http")]);
    s.wait_mirror(legacy, "after-migrate", |m| ports_of(m) == [81]);
    for (mirror, uid) in &before[legacy.source.as_str()] {
        assert_eq!(
            mirror_uids(&s, &legacy.source).get(mirror),
            Some(uid),
            "{}: mirror {mirror} was replaced or deleted by the migration",
            legacy.source
        );
    }

    // A Link whose target is not among the contexts: reported with cluster and object,
    // exit 1, the file still written and marked.
    let partial = adopted.path().join("partial/fleet.yaml");
    let (code, stdout, stderr) = import(&s, &partial, &SPOKES);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("json");
    let problem = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["severity"] == "problem" && f["context"] == "production")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(
        problem["object"], "Link linkerd-multicluster/internal",
        "{problem:#}"
    );
    assert!(
        problem["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not among the contexts"),
        "{problem:#}"
    );
    let marked = std::fs::read_to_string(&partial).expect("written anyway");
    assert!(marked.contains("# NOT READY"), "{marked}");

    // Different anchors: one spoke's proxies trust another anchor.
    let other = meshfleet_core::identity::generate_anchor(time::OffsetDateTime::now_utc()).expect("anchor");
    let roots = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(s.client(SPOKES[1]), "linkerd");
    s.block_on(roots.patch(
        "linkerd-identity-trust-roots",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"ca-bundle.crt": other.cert_pem}})),
    ))
    .expect("patch trust roots");
    let split = adopted.path().join("split/fleet.yaml");
    let (code, stdout, stderr) = import(&s, &split, &[HUB, SPOKES[0], SPOKES[1]]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("json");
    assert!(
        report["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .any(|f| f["severity"] == "problem"
                && f["context"] == SPOKES[1]
                && f["object"] == "ConfigMap linkerd/linkerd-identity-trust-roots"
                && f["message"].as_str().unwrap_or_default().contains("differ")),
        "{report:#}"
    );
    assert!(
        std::fs::read_to_string(&split)
            .expect("written")
            .contains("# NOT READY")
    );
}
