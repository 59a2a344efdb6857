//! `meshfleet import` of a mesh linked the way seed 000's runbook links it: two clusters,
//! `studio` and `pro`, whose multicluster extension came from `linkerd multicluster
//! install | kubectl apply` and whose links were made ONLY with the deprecated
//! `linkerd multicluster link`, both ways, by the release's real CLI. The runbook's
//! `linkerd multicluster link --context kind-studio --cluster-name pro --target-context
//! kind-pro` does not run: there is no `--target-context`; the command reads the TARGET
//! named by `--context` and its output is applied to the source
//! (`multicluster/cmd/link.go`), which is what this test does.
//!
//! `import` finds both legacy links; the imported fleet validates and renders
//! declarative Links equal to the live ones; applying that render and `migrate --apply`
//! with the imported fleet removes both legacy controllers, no mirror Service is
//! replaced (same UIDs) and the real service mirror keeps mirroring. On the way, the
//! networks the clusters tell (ServiceCIDRs, the nodes' podCIDRs) are read into the fleet,
//! an overlap between the two clusters is a problem with its cluster and object, and the
//! GitOps engine, which runs on neither, is a guess.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use serde_json::{Value, json};

use super::import::{import, kubectl_apply, live_links, mirror_uids, rendered_links};
use super::scenario::{APPS, MULTICLUSTER, Scenario, wait_for};
use super::{example_fleet, ports_of};
use crate::support::HOMELAB_VAULT;
use crate::testenv;

const STUDIO: &str = "studio";
const PRO: &str = "pro";

/// The homelab example without its links: the environment installs Linkerd, viz and the
/// multicluster extension with its gateways; linking is left to the legacy CLI (its
/// Vault variant, as `homelab_example`).
fn homelab_unlinked(ports: &BTreeMap<&str, String>) -> String {
    let text = example_fleet(HOMELAB_VAULT, ports);
    let (clusters, _links) = text.split_once("\n  links:\n").expect("homelab has links");
    format!("{clusters}\n")
}

/// The documents a `linkerd` subcommand of the fleet's release prints for `context`.
fn linkerd(s: &Scenario, context: &str, args: &[&str]) -> Vec<Value> {
    let output =
        std::process::Command::new(testenv::TestEnv::linkerd_cli(&s.plan.linkerd.version.to_string()))
            .args(args)
            .arg("--kubeconfig")
            .arg(s.env.kubeconfig())
            .args(["--context", context])
            .output()
            .expect("run linkerd");
    assert!(
        output.status.success(),
        "linkerd {args:?} on {context}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_saphyr::from_multiple::<Value>(&String::from_utf8_lossy(&output.stdout))
        .expect("linkerd's YAML")
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

/// The mirror `<service>-<link>` on `source`, once its ports are `ports`.
fn wait_mirror(s: &Scenario, source: &str, mirror: &str, ports: &[i64]) {
    wait_for(&format!("{source}: mirror {mirror}"), || {
        s.service(source, APPS, mirror).filter(|m| ports_of(m) == ports)
    });
}

fn findings<'a>(report: &'a Value, severity: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["severity"] == severity)
        .collect()
}

#[test]
fn import_adopts_a_mesh_linked_only_with_the_legacy_link_command_and_migrate_keeps_every_mirror() {
    let s = Scenario::start(&[STUDIO, PRO], homelab_unlinked);
    let pair = [(STUDIO, PRO), (PRO, STUDIO)];
    // Seed 000: the multicluster extension as `linkerd multicluster install` writes it
    // (its remote-access account `linkerd-service-mirror-remote-access-default`), then
    // `linkerd --context <target> multicluster link --cluster-name <target> | kubectl
    // --context <source> apply -f -`, both ways. `--api-server-address`: the address the
    // other cluster dials (the environment's, see the module header of real_linkerd).
    for cluster in [STUDIO, PRO] {
        kubectl_apply(&s, cluster, &linkerd(&s, cluster, &["multicluster", "install"]));
    }
    for (source, target) in pair {
        let api_server = s
            .plan
            .clusters
            .iter()
            .find(|c| c.name == target)
            .and_then(|c| c.api_server.clone())
            .expect("apiServer");
        let docs = linkerd(
            &s,
            target,
            &[
                "multicluster",
                "link",
                "--cluster-name",
                target,
                "--api-server-address",
                &api_server,
            ],
        );
        assert!(
            docs.iter().any(|d| d["kind"] == "Deployment"
                && d["metadata"]["name"] == format!("linkerd-service-mirror-{target}")),
            "`linkerd multicluster link` wrote no legacy controller"
        );
        kubectl_apply(&s, source, &docs);
    }
    for (source, target) in pair {
        assert!(
            s.deployment(source, MULTICLUSTER, &format!("controller-{target}"))
                .is_none(),
            "{source}: a chart controller runs; this mesh must be legacy only"
        );
        s.export(target, &format!("from-{target}"), Some("true"), &[(8080, "http")]);
    }
    for (source, target) in pair {
        wait_mirror(&s, source, &format!("from-{target}-{target}"), &[8080]);
    }
    let before: BTreeMap<&str, BTreeMap<String, String>> =
        [STUDIO, PRO].iter().map(|c| (*c, mirror_uids(&s, c))).collect();
    let links_before: BTreeMap<&str, BTreeMap<String, Value>> =
        [STUDIO, PRO].iter().map(|c| (*c, live_links(&s, c))).collect();

    // import finds both legacy links.
    let adopted = tempfile::tempdir().expect("tempdir");
    let fleet = adopted.path().join("fleet.yaml");
    let fleet_arg = fleet.to_str().expect("utf-8");
    let (code, stdout, stderr) = import(&s, &fleet, &[STUDIO, PRO]);
    let text = std::fs::read_to_string(&fleet).unwrap_or_default();
    eprintln!("{text}");
    assert_eq!(code, 0, "import:\n{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("import -o json");
    let mut found: Vec<String> = report["links"]
        .as_array()
        .expect("links")
        .iter()
        .map(|l| {
            format!(
                "{} -> {} as {} legacy {}",
                l["source"], l["target"], l["name"], l["legacy"]
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            r#""pro" -> "studio" as "studio" legacy true"#,
            r#""studio" -> "pro" as "pro" legacy true"#
        ],
        "{report:#}"
    );
    // The networks the clusters tell: each API server's ServiceCIDR, the nodes' podCIDRs.
    let fleet_model = meshfleet_core::fleet::parse(&text).expect("the imported fleet parses");
    for cluster in &fleet_model.spec.clusters {
        let network = cluster
            .network
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no network read\n{text}", cluster.name.value));
        let cidrs = |list: &[meshfleet_core::fleet::located::Located<String>]| {
            list.iter().map(|c| c.value.clone()).collect::<Vec<_>>()
        };
        assert_eq!(
            cidrs(&network.services),
            [service_cidr(&s, &cluster.name.value)],
            "{}: services\n{text}",
            cluster.name.value
        );
        assert!(!network.pods.is_empty(), "{}: pods\n{text}", cluster.name.value);
    }
    // No engine runs here: a guess, in the file and the report.
    assert!(
        findings(&report, "guess").iter().any(|f| f["message"]
            .as_str()
            .unwrap_or_default()
            .contains("neither Flux nor Argo CD")),
        "{report:#}"
    );
    assert!(text.contains("engine: flux  # GUESSED"), "{text}");

    // The imported fleet renders declarative Links equal to the live ones.
    let (code, stdout, stderr) = s.meshfleet(&["validate", fleet_arg]);
    assert_eq!(code, 0, "the imported fleet is invalid:\n{stdout}\n{stderr}");
    let tree = adopted.path().join("gitops");
    let (code, stdout, stderr) = s.meshfleet(&["render", fleet_arg, "--out", tree.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "render:\n{stdout}\n{stderr}");
    for cluster in [STUDIO, PRO] {
        assert_eq!(
            rendered_links(&s, &tree, cluster),
            links_before[cluster],
            "{cluster}: the rendered Links differ from the legacy ones"
        );
    }

    // Apply the render (chart controllers beside the legacy ones), sync the credentials
    // into Vault for its ExternalSecrets (with the key folder that holds the anchor's
    // key: import reads no key), then migrate with the imported fleet.
    s.env.mesh(&tree);
    let keys = s.dir().join(".meshfleet/keys");
    let keys = keys.to_str().expect("utf-8");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (code, stdout, stderr) = s.meshfleet(&["secrets", "sync", fleet_arg, "--keys", keys]);
        if code == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "secrets sync with the imported fleet: {code}\n{stdout}\n{stderr}"
        );
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    s.migrate_apply(fleet_arg);
    for (source, target) in pair {
        wait_for(&format!("{source}: legacy controller removed"), || {
            s.deployment(source, MULTICLUSTER, &format!("linkerd-service-mirror-{target}"))
                .is_none()
                .then_some(())
        });
        assert!(
            s.deployment(source, MULTICLUSTER, &format!("controller-{target}"))
                .is_some(),
            "{source}: no chart controller for {target}"
        );
        s.export(target, &format!("after-{target}"), Some("true"), &[(81, "http")]);
    }
    for (source, target) in pair {
        wait_mirror(&s, source, &format!("after-{target}-{target}"), &[81]);
        let after = mirror_uids(&s, source);
        for (mirror, uid) in &before[source] {
            // The evidence, should it fail: what each controller of the link logged of
            // the mirror's service and of the Lease.
            let service = mirror.strip_suffix(&format!("-{target}")).unwrap_or(mirror);
            let evidence = || {
                [
                    format!("linkerd-service-mirror-{target}"),
                    format!("controller-{target}"),
                ]
                .iter()
                .flat_map(|d| {
                    let log = s.env.log(&format!("{source}-{MULTICLUSTER}-{d}"));
                    log.lines()
                        .filter(|l| {
                            l.contains(&format!("/{service}")) || l.contains("lease") || l.contains("==== ")
                        })
                        .map(|l| format!("{d}: {l}"))
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
                .join("\n")
            };
            assert!(
                after.get(mirror) == Some(uid),
                "{source}: mirror {mirror} was replaced or deleted (UID {uid} -> {:?}); the controllers' logs:\n{}",
                after.get(mirror),
                evidence()
            );
        }
        assert_eq!(
            live_links(&s, source),
            links_before[source],
            "{source}: a Link changed"
        );
    }

    // Overlapping networks: `pro` also serves `studio`'s service range (a second
    // ServiceCIDR, as multi-CIDR clusters grow theirs). Reported with cluster and object.
    let studio_services = service_cidr(&s, STUDIO);
    let cidrs = service_cidrs_api(&s, PRO);
    let extra: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
        "metadata": {"name": "borrowed"},
        "spec": {"cidrs": [studio_services]}
    }))
    .expect("ServiceCIDR");
    s.block_on(cidrs.create(&PostParams::default(), &extra))
        .expect("create ServiceCIDR");
    let overlapping = adopted.path().join("overlap/fleet.yaml");
    let (code, stdout, stderr) = import(&s, &overlapping, &[STUDIO, PRO]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("json");
    assert!(
        findings(&report, "problem").iter().any(|f| f["context"] == PRO
            && f["object"] == "ServiceCIDR borrowed"
            && f["message"].as_str().unwrap_or_default().contains("overlaps")),
        "{report:#}"
    );
    assert!(
        std::fs::read_to_string(&overlapping)
            .expect("written")
            .contains("# NOT READY")
    );
    s.block_on(cidrs.delete("borrowed", &DeleteParams::default()))
        .expect("delete ServiceCIDR");

    // Engines: installed CRDs alone are no engine; `studio` with Flux's bootstrap
    // Kustomization and `pro` with an Argo CD Application (the upstream CRDs, objects as
    // `flux bootstrap` and an app-of-apps make them) run different engines: a problem.
    let crds = crate::support::repo_root().join("../shared/crds");
    let install_crd = |cluster: &str, file: &str, name: &str| {
        let path = crds.join(file);
        s.kubectl(
            cluster,
            &["apply", "--server-side", "-f", path.to_str().expect("utf-8")],
        );
        let api = Api::<CustomResourceDefinition>::all(s.client(cluster));
        wait_for(&format!("{cluster}: CRD {name} established"), || {
            let crd = s.block_on(api.get_opt(name)).expect("read CRD")?;
            let established = crd
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            established.then_some(())
        });
    };
    install_crd(
        STUDIO,
        "kustomize.toolkit.fluxcd.io_kustomizations.yaml",
        "kustomizations.kustomize.toolkit.fluxcd.io",
    );
    install_crd(PRO, "argoproj.io_application.yaml", "applications.argoproj.io");
    let (code, stdout, stderr) = import(&s, &adopted.path().join("crds/fleet.yaml"), &[STUDIO, PRO]);
    assert_eq!(
        code, 0,
        "CRDs alone:
{stdout}
{stderr}"
    );
    let report: Value = serde_json::from_str(&stdout).expect("json");
    assert!(
        findings(&report, "guess").iter().any(|f| f["message"]
            .as_str()
            .unwrap_or_default()
            .contains("neither Flux nor Argo CD")),
        "{report:#}"
    );
    let namespace = |name: &str| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    kubectl_apply(
        &s,
        STUDIO,
        &[
            namespace("flux-system"),
            json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                   "metadata": {"name": "flux-system", "namespace": "flux-system"},
                   "spec": {"interval": "10m0s", "path": "./gitops/studio", "prune": true,
                            "sourceRef": {"kind": "GitRepository", "name": "flux-system"}}}),
        ],
    );
    kubectl_apply(
        &s,
        PRO,
        &[
            namespace("argocd"),
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                   "metadata": {"name": "pro-app-of-apps", "namespace": "argocd"},
                   "spec": {"project": "default",
                            "source": {"repoURL": "https://github.com/example/fleet.git",
                                       "path": "gitops/pro", "targetRevision": "main"},
                            "destination": {"name": "pro", "namespace": "argocd"}}}),
        ],
    );
    let engines = adopted.path().join("engines/fleet.yaml");
    let (code, stdout, stderr) = import(&s, &engines, &[STUDIO, PRO]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("json");
    assert!(
        findings(&report, "problem").iter().any(|f| f["context"] == PRO
            && f["object"] == "Application argocd/pro-app-of-apps"
            && f["message"]
                .as_str()
                .unwrap_or_default()
                .contains("runs Argo CD, while `studio` runs Flux")),
        "{report:#}"
    );
    let text = std::fs::read_to_string(&engines).expect("written");
    assert!(text.contains("# NOT READY"), "{text}");
}

fn service_cidrs_api(s: &Scenario, cluster: &str) -> Api<DynamicObject> {
    let resource = kube::api::ApiResource {
        group: "networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "networking.k8s.io/v1".into(),
        kind: "ServiceCIDR".into(),
        plural: "servicecidrs".into(),
    };
    Api::all_with(s.client(cluster), &resource)
}

/// The range of the ServiceCIDR `kubernetes` the API server made from its
/// `--service-cluster-ip-range`.
fn service_cidr(s: &Scenario, cluster: &str) -> String {
    let cidr = s
        .block_on(service_cidrs_api(s, cluster).get("kubernetes"))
        .expect("ServiceCIDR kubernetes");
    cidr.data["spec"]["cidrs"][0].as_str().expect("a CIDR").to_owned()
}
