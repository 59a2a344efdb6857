//! `installMethod: jobs`: the Jobs' TTL, prune annotation, RBAC, order, image and names,
//! and version bumps that render new Jobs.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::{JOBS_IMAGE, example_copy_with, meshfleet, render_files, rendered_objects, texts};

const COMPONENTS: [&str; 4] = [
    "linkerd-crds",
    "linkerd-control-plane",
    "linkerd-viz",
    "linkerd-multicluster",
];

fn by_kind<'a>(objects: &'a [(String, Value)], prefix: &str, kind: &str) -> Vec<&'a Value> {
    objects
        .iter()
        .filter(|(p, o)| p.starts_with(prefix) && o["kind"] == kind)
        .map(|(_, o)| o)
        .collect()
}

#[test]
fn every_job_is_bounded_labelled_and_uses_the_fleet_image() {
    for engine in ["flux", "argocd"] {
        let dir = example_copy_with("homelab", engine, "jobs");
        let files = render_files(dir.path());
        let objects = rendered_objects(&files);
        for component in COMPONENTS {
            let prefix = format!("studio/{component}/");
            let jobs = by_kind(&objects, &prefix, "Job");
            assert_eq!(jobs.len(), 1, "{engine}: one Job in {prefix}");
            let job = jobs[0];
            let name = job["metadata"]["name"].as_str().expect("name");
            assert!(name.starts_with(&format!("{component}-2025-4-4-")), "{name}");
            assert!(
                job["metadata"]["namespace"].is_string(),
                "{name}: explicit namespace"
            );
            assert_eq!(job["spec"]["ttlSecondsAfterFinished"], 300, "{name}");
            assert!(
                job["spec"]["backoffLimit"]
                    .as_i64()
                    .is_some_and(|b| (1..=6).contains(&b)),
                "{name}"
            );
            let pod = &job["spec"]["template"]["spec"];
            let container = &pod["containers"][0];
            assert_eq!(container["image"], JOBS_IMAGE, "{name}");
            assert!(
                container["resources"]["requests"]["cpu"].is_string(),
                "{name}: requests"
            );
            assert!(
                container["resources"]["requests"]["memory"].is_string(),
                "{name}: requests"
            );
            let script = container["command"][2].as_str().expect("script");
            assert!(script.contains("kubectl apply --server-side"), "{script}");
            assert!(
                script.contains("want=edge-25.4.4"),
                "the Job refuses a CLI of another version"
            );
            let annotations = &job["metadata"]["annotations"];
            if engine == "flux" {
                assert_eq!(
                    annotations["kustomize.toolkit.fluxcd.io/prune"], "disabled",
                    "{name}"
                );
            } else {
                assert_eq!(annotations["argocd.argoproj.io/hook"], "Sync", "{name}");
            }
            // Its ServiceAccount exists in its namespace and is bound.
            let account = pod["serviceAccountName"].as_str().expect("account");
            let namespace = job["metadata"]["namespace"].as_str().expect("namespace");
            assert!(
                by_kind(&objects, &prefix, "ServiceAccount")
                    .iter()
                    .any(|sa| sa["metadata"]["name"] == account && sa["metadata"]["namespace"] == namespace),
                "{name}: ServiceAccount {account}"
            );
            let bindings: Vec<&Value> = by_kind(&objects, &prefix, "ClusterRoleBinding")
                .into_iter()
                .chain(by_kind(&objects, &prefix, "RoleBinding"))
                .collect();
            assert!(!bindings.is_empty());
            for binding in bindings {
                assert_eq!(binding["subjects"][0]["name"], account);
                assert_eq!(binding["subjects"][0]["namespace"], namespace);
            }
        }
        // The control-plane Job mounts the anchor bundle and the issuer Secret the Helm
        // method uses.
        let job = by_kind(&objects, "studio/linkerd-control-plane/", "Job")[0];
        let volumes = job["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .expect("volumes");
        assert!(
            volumes
                .iter()
                .any(|v| v["secret"]["secretName"] == "linkerd-identity-issuer")
        );
        assert!(
            volumes
                .iter()
                .any(|v| v["configMap"]["name"] == "meshfleet-trust-anchors")
        );
        let anchors = by_kind(&objects, "studio/identity/", "ConfigMap");
        let anchor = std::fs::read_to_string(dir.path().join("certs/trust-anchor.crt")).expect("anchor");
        assert_eq!(
            anchors[0]["data"]["ca-bundle.crt"].as_str().map(str::trim),
            Some(anchor.trim())
        );
    }
}

#[test]
fn rbac_is_least_privilege_and_every_rule_says_why() {
    let dir = example_copy_with("hub-spoke", "flux", "jobs");
    let files = render_files(dir.path());
    let objects = rendered_objects(&files);
    for cluster in ["in-cluster-local", "production"] {
        for component in COMPONENTS {
            let path = format!("{cluster}/{component}/rbac.yaml");
            let text = &files[&path];
            let lines: Vec<&str> = text.lines().collect();
            let mut rules = 0;
            for (i, line) in lines.iter().enumerate() {
                if *line == "- apiGroups:" {
                    rules += 1;
                    assert!(
                        lines[i - 1].starts_with("# ") && lines[i - 1].len() > 10,
                        "{path}: rule without a reason at line {}",
                        i + 1
                    );
                }
            }
            assert!(rules > 0, "{path}: no rules");
            for role in by_kind(&objects, &format!("{cluster}/{component}/"), "ClusterRole")
                .into_iter()
                .chain(by_kind(&objects, &format!("{cluster}/{component}/"), "Role"))
            {
                for rule in role["rules"].as_array().expect("rules") {
                    for field in ["apiGroups", "resources", "verbs"] {
                        assert!(
                            !rule[field].as_array().expect("list").iter().any(|v| v == "*"),
                            "{path}: wildcard in {field}"
                        );
                    }
                    assert!(
                        !rule["verbs"]
                            .as_array()
                            .expect("verbs")
                            .iter()
                            .any(|v| v == "delete"),
                        "{path}: installs never delete"
                    );
                }
            }
        }
        // Only the extensions read `linkerd-config`, and only that ConfigMap.
        let viz_roles = by_kind(&objects, &format!("{cluster}/linkerd-viz/"), "Role");
        let linkerd_role = viz_roles
            .iter()
            .find(|r| r["metadata"]["namespace"] == "linkerd")
            .expect("role in linkerd ns");
        assert_eq!(
            linkerd_role["rules"][0]["resourceNames"],
            serde_json::json!(["linkerd-config"])
        );
    }
}

#[test]
fn jobs_run_in_order() {
    let dir = example_copy_with("homelab", "flux", "jobs");
    let files = render_files(dir.path());
    let objects = rendered_objects(&files);
    let deps: BTreeMap<String, Vec<String>> = by_kind(&objects, "pro/flux/", "Kustomization")
        .into_iter()
        .map(|k| {
            let name = k["metadata"]["name"].as_str().expect("name").to_string();
            let deps = k["spec"]["dependsOn"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| d["name"].as_str().expect("dep").to_string())
                .collect();
            (name, deps)
        })
        .collect();
    assert!(deps["homelab-linkerd-crds"].contains(&"homelab-gateway-api".to_string()));
    assert_eq!(
        deps["homelab-linkerd-control-plane"],
        ["homelab-linkerd-crds", "homelab-identity"]
    );
    assert_eq!(deps["homelab-linkerd-viz"], ["homelab-linkerd-control-plane"]);
    assert_eq!(
        deps["homelab-linkerd-multicluster"],
        ["homelab-linkerd-control-plane"]
    );
    for k in by_kind(&objects, "pro/flux/", "Kustomization") {
        assert_eq!(k["spec"]["wait"], true, "Flux waits for each Job to complete");
    }
    // Argo CD: waves in the same order.
    let dir = example_copy_with("homelab", "argocd", "jobs");
    let objects = rendered_objects(&render_files(dir.path()));
    let wave = |stage: &str| -> i64 {
        objects
            .iter()
            .find(|(p, _)| p == &format!("pro/apps/{stage}.yaml"))
            .and_then(|(_, a)| a["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"].as_str())
            .and_then(|w| w.parse().ok())
            .expect("wave")
    };
    assert!(wave("linkerd-crds") < wave("linkerd-control-plane"));
    assert!(wave("linkerd-control-plane") < wave("linkerd-viz"));
    assert!(wave("linkerd-control-plane") < wave("linkerd-multicluster"));
}

fn job_names(objects: &[(String, Value)]) -> Vec<String> {
    objects
        .iter()
        .filter(|(_, o)| o["kind"] == "Job")
        .map(|(_, o)| o["metadata"]["name"].as_str().expect("name").to_string())
        .collect()
}

#[test]
fn a_version_bump_renders_new_jobs_and_check_shows_it() {
    let dir = example_copy_with("homelab", "flux", "jobs");
    let before = job_names(&rendered_objects(&render_files(dir.path())));
    assert_eq!(before.len(), 8);
    let path = dir.path().join("fleet.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        text.replace("version: 2025.4.4", "version: 2025.10.7")
            .replace("edge-25.4.4", "edge-25.10.7"),
    )
    .expect("write");
    let out = meshfleet(dir.path())
        .args(["render", ".", "--out", "rendered", "--check"])
        .output()
        .expect("check");
    let (stdout, _) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("~ studio/linkerd-control-plane/job.yaml"),
        "{stdout}"
    );
    assert!(
        stdout.contains("-  name: linkerd-control-plane-2025-4-4-")
            && stdout.contains("+  name: linkerd-control-plane-2025-10-7-"),
        "{stdout}"
    );
    std::fs::remove_dir_all(dir.path().join("rendered")).expect("rm");
    let after = job_names(&rendered_objects(&render_files(dir.path())));
    for name in &after {
        assert!(name.contains("-2025-10-7-"), "{name}");
        assert!(!before.contains(name));
    }
    // The same fleet renders the same Job names (the hash is of the spec, not of time).
    std::fs::remove_dir_all(dir.path().join("rendered")).expect("rm");
    assert_eq!(after, job_names(&rendered_objects(&render_files(dir.path()))));
}

#[test]
fn a_helm_version_bump_changes_every_chart_version() {
    let dir = example_copy_with("hub-spoke", "argocd", "helm");
    let path = dir.path().join("fleet.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, text.replace("version: 2025.4.4", "version: 2026.6.3")).expect("write");
    let objects = rendered_objects(&render_files(dir.path()));
    let charts: Vec<&Value> = objects
        .iter()
        .filter(|(_, o)| o["kind"] == "Application" && o["spec"]["source"]["chart"].is_string())
        .map(|(_, o)| &o["spec"]["source"])
        .collect();
    assert_eq!(charts.len(), 12);
    assert!(charts.iter().all(|s| s["targetRevision"] == "2026.6.3"));
}
