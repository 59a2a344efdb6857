//! `installMethod: jobs`: the Jobs' TTL, prune annotation, RBAC, order, image and names,
//! and version bumps that render new Jobs.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::{
    HOMELAB_VAULT, JOBS_IMAGE, example_copy_with, meshfleet, render_files, rendered_objects, texts,
};

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
        // Argo CD refuses the example's SOPS: its Vault variant.
        let example = if engine == "argocd" {
            HOMELAB_VAULT
        } else {
            "homelab"
        };
        let dir = example_copy_with(example, engine, "jobs");
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
            if engine == "flux" {
                // Argo CD: no TTL, asserted below.
                assert_eq!(job["spec"]["ttlSecondsAfterFinished"], 300, "{name}");
            }
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
            let scratch = pod["volumes"]
                .as_array()
                .expect("volumes")
                .iter()
                .find(|v| v["name"] == "tmp")
                .expect("scratch volume");
            assert_eq!(
                scratch["emptyDir"]["medium"], "Memory",
                "{name}: scratch in memory"
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
                // An ordinary resource of its Application, run once per name: no hook
                // (which would run at every sync), no TTL (a vanished Job is OutOfSync).
                assert!(annotations.get("argocd.argoproj.io/hook").is_none(), "{name}");
                assert!(job["spec"]["ttlSecondsAfterFinished"].is_null(), "{name}");
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

/// The steps the scripts announce; every RBAC comment starts with the ones that need the
/// rule (jobs_cli.rs checks, on a cluster, that removing the rule fails one of them).
const STEPS: [&str; 5] = ["check", "keep", "render", "apply", "wait"];

#[test]
fn rbac_is_least_privilege_and_every_rule_says_why() {
    for example in ["hub-spoke", "homelab"] {
        let dir = example_copy_with(example, "flux", "jobs");
        let files = render_files(dir.path());
        let objects = rendered_objects(&files);
        let clusters: Vec<&str> = files
            .keys()
            .filter_map(|p| p.strip_suffix("/linkerd-crds/rbac.yaml"))
            .collect();
        assert!(!clusters.is_empty());
        for cluster in clusters {
            for component in COMPONENTS {
                let path = format!("{cluster}/{component}/rbac.yaml");
                let text = &files[&path];
                let lines: Vec<&str> = text.lines().collect();
                let mut reasons = Vec::new();
                for (i, line) in lines.iter().enumerate() {
                    if *line == "- apiGroups:" {
                        let why = lines[i - 1]
                            .strip_prefix("# ")
                            .unwrap_or_else(|| panic!("{path}: rule without a reason at line {}", i + 1));
                        let (steps, reason) = why.split_once(": ").expect("`<steps>: <reason>`");
                        assert!(
                            steps.split(", ").all(|s| STEPS.contains(&s)) && reason.len() > 10,
                            "{path}:{i}: `{why}` names no step of {STEPS:?}"
                        );
                        reasons.push(why.to_string());
                    }
                }
                assert!(!reasons.is_empty(), "{path}: no rules");
                let prefix = format!("{cluster}/{component}/");
                let roles: Vec<&Value> = by_kind(&objects, &prefix, "ClusterRole")
                    .into_iter()
                    .chain(by_kind(&objects, &prefix, "Role"))
                    .collect();
                let rules: Vec<(&Value, &Value)> = roles
                    .iter()
                    .flat_map(|role| {
                        role["rules"]
                            .as_array()
                            .expect("rules")
                            .iter()
                            .map(move |r| (*role, r))
                    })
                    .collect();
                assert_eq!(rules.len(), reasons.len(), "{path}");
                for ((role, rule), why) in rules.into_iter().zip(&reasons) {
                    let list = |field: &str| -> Vec<&str> {
                        rule[field]
                            .as_array()
                            .map(|l| l.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default()
                    };
                    for verb in ["escalate", "bind", "impersonate", "*"] {
                        assert!(!list("verbs").contains(&verb), "{path}: `{verb}` in {rule}");
                    }
                    assert!(
                        !list("apiGroups").contains(&"*"),
                        "{path}: wildcard group in {rule}"
                    );
                    // The one wildcard: only a holder of it may create viz's tap-admin role.
                    if list("resources").contains(&"*") {
                        assert_eq!(
                            (list("apiGroups"), list("verbs")),
                            (vec!["tap.linkerd.io"], vec!["watch"]),
                            "{path}: {rule}"
                        );
                        assert!(why.contains("tap-admin"), "{path}: {why}");
                    }
                    // Installs delete nothing of their own; `delete` is held only where a
                    // Linkerd role grants it.
                    if list("verbs").contains(&"delete") {
                        assert!(
                            why.contains("grant"),
                            "{path}: delete without a granting role: {why}"
                        );
                    }
                    // No cluster-wide Secret access; Secrets by name, except the read the
                    // control plane's Role `remote-discovery` grants in its namespace.
                    if list("resources").contains(&"secrets") {
                        assert_eq!(role["kind"], "Role", "{path}: cluster-wide Secret rule {rule}");
                        assert!(
                            rule["resourceNames"].is_array() || why.contains("remote-discovery"),
                            "{path}: Secrets without names: {why}"
                        );
                    }
                    // Writes are server-side applies: create and patch, nothing else, on
                    // cluster-scoped objects by name.
                    if role["kind"] == "ClusterRole"
                        && why.starts_with("apply: the")
                        && !why.contains("grant")
                    {
                        assert!(
                            rule["resourceNames"].is_array(),
                            "{path}: cluster-scoped write without names: {why}"
                        );
                    }
                }
            }
        }
    }
}

/// The scripts avoid what made the seed's Jobs fail (issue 10): `install --crds` (refuses
/// after a version bump), the extensions' health checks (`--ignore-cluster` instead), the
/// install-only flags on `upgrade`, and `--identity-trust-anchors-file` (ignored with an
/// external issuer).
#[test]
fn job_scripts_use_only_flags_that_work_for_install_and_upgrade() {
    let dir = example_copy_with(HOMELAB_VAULT, "argocd", "jobs");
    let objects = rendered_objects(&render_files(dir.path()));
    let script = |component: &str| -> String {
        by_kind(&objects, &format!("studio/{component}/"), "Job")[0]["spec"]["template"]["spec"]["containers"]
            [0]["command"][2]
            .as_str()
            .expect("script")
            .to_string()
    };
    for component in ["linkerd-crds", "linkerd-viz", "linkerd-multicluster"] {
        assert!(script(component).contains(" --ignore-cluster "), "{component}");
    }
    let control_plane = script("linkerd-control-plane");
    for flag in [
        "--identity-trust-domain",
        "--cluster-domain",
        "--identity-trust-anchors-file",
    ] {
        assert!(!control_plane.contains(flag), "{flag} in\n{control_plane}");
    }
    assert!(control_plane.contains("--set-file \"identityTrustAnchorsPEM="));
    assert!(
        control_plane.contains("rollout status"),
        "the control plane waits for its rollout"
    );
    assert!(control_plane.contains("--timeout=300s"), "bounded");
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
    let dir = example_copy_with(HOMELAB_VAULT, "argocd", "jobs");
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
        .args(["render", ".", "--out", "rendered", "--check", "--any-dir"])
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

/// A new anchor bundle (a rotation) changes the control-plane Job's spec, so its name:
/// the GitOps engine runs it anew with the new bundle. Other Jobs stay as they are.
#[test]
fn a_new_anchor_bundle_renders_a_new_control_plane_job() {
    let dir = example_copy_with("homelab", "flux", "jobs");
    let before = job_names(&rendered_objects(&render_files(dir.path())));
    let anchor_path = dir.path().join("certs/trust-anchor.crt");
    let mut bundle = std::fs::read_to_string(&anchor_path).expect("anchor");
    let second = meshfleet_core::identity::generate_anchor(time::OffsetDateTime::now_utc()).expect("anchor");
    bundle.push_str(&second.cert_pem);
    std::fs::write(&anchor_path, bundle).expect("bundle");
    std::fs::remove_dir_all(dir.path().join("rendered")).expect("rm");
    let after = job_names(&rendered_objects(&render_files(dir.path())));
    let changed: Vec<&String> = after.iter().filter(|n| !before.contains(n)).collect();
    assert_eq!(changed.len(), 2, "one control-plane Job per cluster: {changed:?}");
    assert!(
        changed.iter().all(|n| n.starts_with("linkerd-control-plane-")),
        "{changed:?}"
    );
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

/// Issue 23: nothing said which image the Jobs need. The Job refuses an image whose
/// `linkerd` is another release, and says how to build the right one from the
/// repository's Dockerfile; run here with the real CLI of the other release.
#[test]
fn a_job_refuses_another_release_and_names_the_dockerfile() {
    let dir = example_copy_with("homelab", "flux", "jobs");
    let objects = rendered_objects(&render_files(dir.path()));
    let script = by_kind(&objects, "studio/linkerd-crds/", "Job")[0]["spec"]["template"]["spec"]["containers"][0]
        ["command"][2]
        .as_str()
        .expect("script")
        .to_string();
    // The fleet is at 2025.4.4; the image holds the CLI of edge-26.8.3.
    let bin = tempfile::tempdir().expect("tempdir");
    let cli = crate::testenv::TestEnv::linkerd_cli("2026.8.3");
    std::os::unix::fs::symlink(&cli, bin.path().join("linkerd")).expect("symlink");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.path().display()))
        .env("TMPDIR", bin.path())
        .output()
        .expect("run sh");
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "gitops.jobs.image has linkerd 'edge-26.8.3', the fleet wants edge-25.4.4; build the image of edge-25.4.4 from images/linkerd-jobs/Dockerfile in meshfleet's repository (--build-arg LINKERD_VERSION=edge-25.4.4) and set gitops.jobs.image to it"
    );
    let dockerfile = crate::support::repo_root().join("images/linkerd-jobs/Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).expect("the Dockerfile the message names");
    assert!(text.contains("ARG LINKERD_VERSION\n"), "{text}");
}
