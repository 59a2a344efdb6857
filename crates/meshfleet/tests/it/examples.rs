//! The bundled examples: valid, rendered with both engines, every file generated-by
//! headed, every object labelled, stages ordered.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::{
    HOMELAB_VAULT, example_copy, example_fleet_text, meshfleet, render_files, rendered_objects, repo_root,
    texts,
};

#[test]
fn examples_are_valid_without_findings() {
    for example in ["homelab", "hub-spoke"] {
        let out = meshfleet(&repo_root())
            .args(["validate", &format!("examples/{example}"), "-o", "json"])
            .output()
            .expect("validate");
        let json: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(out.status.code(), Some(0), "{json:#}");
        assert_eq!(json["findings"].as_array().map(Vec::len), Some(0), "{json:#}");
    }
    // The homelab's Vault variant, with both engines (the tests of the Vault path use it).
    for engine in ["flux", "argocd"] {
        let dir = example_copy(HOMELAB_VAULT, engine);
        let out = meshfleet(dir.path())
            .args(["validate", ".", "-o", "json"])
            .output()
            .expect("validate");
        let json: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(out.status.code(), Some(0), "{engine}: {json:#}");
        assert_eq!(
            json["findings"].as_array().map(Vec::len),
            Some(0),
            "{engine}: {json:#}"
        );
    }
}

/// The homelab keeps its secrets with SOPS: public age recipients only, one per cluster
/// and the operator's; under Argo CD (no native SOPS) `validate` refuses it, located,
/// with a hint, and `render` writes nothing.
#[test]
fn the_homelab_uses_sops_which_argo_cd_refuses() {
    let text = example_fleet_text("homelab");
    let fleet: Value = serde_saphyr::from_str(&text).expect("YAML");
    let secrets = &fleet["spec"]["secrets"];
    assert!(secrets["vault"].is_null(), "{secrets}");
    let age = &secrets["sops"]["age"];
    let mut recipients: Vec<&str> = age["operators"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(["studio", "pro"].iter().map(|c| &age["clusters"][c]))
        .map(|r| r.as_str().expect("a recipient"))
        .collect();
    assert_eq!(recipients.len(), 3, "{age}");
    assert!(recipients.iter().all(|r| r.starts_with("age1")), "{recipients:?}");
    recipients.dedup();
    assert_eq!(recipients.len(), 3, "one key each: {recipients:?}");
    assert!(
        !text.to_uppercase().contains("AGE-SECRET-KEY"),
        "no private key in the example"
    );

    let dir = example_copy("homelab", "argocd");
    let out = meshfleet(dir.path())
        .args(["validate", ".", "-o", "json"])
        .output()
        .expect("validate");
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(out.status.code(), Some(1), "{json:#}");
    let findings = json["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{json:#}");
    assert_eq!(findings[0]["rule"], "sops-engine");
    assert!(
        findings[0]["line"].as_u64().is_some_and(|l| l > 0),
        "located: {json:#}"
    );
    assert!(
        findings[0]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("engine: flux")),
        "{json:#}"
    );
    let out = meshfleet(dir.path())
        .args(["render", ".", "--out", "gitops"])
        .output()
        .expect("render");
    assert_eq!(out.status.code(), Some(1), "{}", texts(&out).1);
    assert!(!dir.path().join("gitops").exists(), "nothing written");
}

/// The Vault variant the tests use (tests/fixtures/homelab-vault) is the example with
/// another secrets backend and nothing else: Vault's block and per-cluster auth mounts.
#[test]
fn the_homelab_vault_variant_differs_from_the_example_only_in_its_backend() {
    let parse = |name: &str| -> Value { serde_saphyr::from_str(&example_fleet_text(name)).expect("YAML") };
    let (mut example, mut variant) = (parse("homelab"), parse(HOMELAB_VAULT));
    assert!(example["spec"]["secrets"]["sops"].is_object());
    assert!(variant["spec"]["secrets"]["vault"].is_object());
    for fleet in [&mut example, &mut variant] {
        fleet["spec"]
            .as_object_mut()
            .expect("spec")
            .remove("secrets")
            .expect("secrets");
        for cluster in fleet["spec"]["clusters"].as_array_mut().expect("clusters") {
            cluster
                .as_object_mut()
                .expect("cluster")
                .remove("vaultAuthMountPath");
        }
    }
    assert_eq!(
        example, variant,
        "update tests/fixtures/homelab-vault/fleet.yaml with the example"
    );
}

#[test]
fn example_files_start_with_the_schema_line() {
    for example in ["homelab", "hub-spoke"] {
        let text = std::fs::read_to_string(repo_root().join(format!("examples/{example}/fleet.yaml")))
            .expect("read");
        assert!(text.starts_with("# yaml-language-server: $schema=../../schema/fleet.schema.json\n"));
    }
}

#[test]
fn committed_schema_is_current() {
    let out = meshfleet(&repo_root()).arg("schema").output().expect("schema");
    let committed =
        std::fs::read_to_string(repo_root().join("schema/fleet.schema.json")).expect("schema file");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        committed,
        "run `meshfleet schema > schema/fleet.schema.json`"
    );
    let schema: Value = serde_json::from_str(&committed).expect("json");
    assert!(schema["$defs"]["ClusterSpec"]["properties"]["linkName"].is_object());
}

fn labels_and_headers(files: &BTreeMap<String, String>, fleet: &str) {
    for (path, text) in files {
        if path == ".meshfleet-tree" {
            continue;
        }
        assert!(
            text.starts_with(&format!(
                "# Generated by meshfleet from fleet `{fleet}` (fleet.yaml). Do not edit by hand"
            )),
            "{path}"
        );
        assert!(
            text.ends_with('\n') && !text.ends_with("\n\n"),
            "{path}: one trailing newline"
        );
    }
    for (path, object) in rendered_objects(files) {
        let labels = &object["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/managed-by"], "meshfleet", "{path}");
        assert_eq!(labels["meshfleet.io/fleet"], fleet, "{path}");
    }
}

#[test]
fn flux_stages_are_chained_with_depends_on_and_wait() {
    for example in ["homelab", HOMELAB_VAULT] {
        flux_stages_are_chained(example);
    }
}

fn flux_stages_are_chained(example: &str) {
    let dir = example_copy(example, "flux");
    let files = render_files(dir.path());
    labels_and_headers(&files, "homelab");
    for cluster in ["studio", "pro"] {
        let kustomizations: BTreeMap<String, Value> = rendered_objects(&files)
            .into_iter()
            .filter(|(p, o)| p.starts_with(&format!("{cluster}/flux/")) && o["kind"] == "Kustomization")
            .map(|(_, o)| (o["metadata"]["name"].as_str().expect("name").to_string(), o))
            .collect();
        let names: Vec<&str> = kustomizations.keys().map(String::as_str).collect();
        assert_eq!(names.len(), 8, "{names:?}");
        for (name, k) in &kustomizations {
            assert_eq!(k["spec"]["wait"], true, "{name}");
            assert_eq!(k["spec"]["prune"], true, "{name}");
            for dep in k["spec"]["dependsOn"].as_array().into_iter().flatten() {
                assert!(
                    kustomizations.contains_key(dep["name"].as_str().expect("dep")),
                    "{name} depends on a missing stage"
                );
            }
        }
        let deps = |n: &str| -> Vec<String> {
            kustomizations[n]["spec"]["dependsOn"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| d["name"].as_str().unwrap_or_default().to_string())
                .collect()
        };
        assert_eq!(
            deps("homelab-linkerd-control-plane"),
            ["homelab-linkerd-crds", "homelab-identity"]
        );
        assert_eq!(
            deps("homelab-linkerd-crds"),
            ["homelab-namespaces", "homelab-gateway-api"]
        );
        assert_eq!(deps("homelab-links"), ["homelab-linkerd-multicluster"]);
        // With SOPS (the example) the stages that apply Secrets decrypt them with the
        // cluster's `sops-age`; with Vault nothing decrypts.
        for (name, k) in &kustomizations {
            let decrypts =
                example == "homelab" && ["homelab-identity", "homelab-links"].contains(&name.as_str());
            if decrypts {
                assert_eq!(
                    k["spec"]["decryption"],
                    serde_json::json!({"provider": "sops", "secretRef": {"name": "sops-age"}}),
                    "{example}: {name}"
                );
            } else {
                assert!(k["spec"]["decryption"].is_null(), "{example}: {name}");
            }
        }
        // The entry point lists every Flux object of the cluster.
        let entry = &files[&format!("{cluster}/kustomization.yaml")];
        for file in files
            .keys()
            .filter(|f| f.starts_with(&format!("{cluster}/flux/")))
        {
            assert!(
                entry.contains(file.trim_start_matches(&format!("{cluster}/"))),
                "{file} not in entry point"
            );
        }
    }
}

#[test]
fn argocd_has_one_app_of_apps_per_cluster_and_increasing_waves() {
    let dir = example_copy("hub-spoke", "argocd");
    let files = render_files(dir.path());
    labels_and_headers(&files, "hub-spoke");
    for cluster in ["in-cluster-local", "production", "nonproduction"] {
        assert!(
            files.contains_key(&format!("{cluster}/app-of-apps.yaml")),
            "{cluster}"
        );
        let wave = |stage: &str| -> i64 {
            let (_, app) = rendered_objects(&files)
                .into_iter()
                .find(|(p, _)| p == &format!("{cluster}/apps/{stage}.yaml"))
                .unwrap_or_else(|| panic!("{cluster}/apps/{stage}.yaml"));
            app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
                .as_str()
                .expect("wave")
                .parse()
                .expect("int")
        };
        assert!(wave("namespaces") < wave("identity"));
        assert!(wave("linkerd-crds") < wave("linkerd-control-plane"));
        assert!(wave("identity") < wave("linkerd-control-plane"));
        assert!(wave("linkerd-control-plane") < wave("linkerd-multicluster"));
        if cluster != "in-cluster-local" {
            assert!(wave("linkerd-multicluster") < wave("links"));
        }
    }
}

#[test]
fn hub_spoke_matches_seed_003_without_its_mistakes() {
    let dir = example_copy("hub-spoke", "argocd");
    let files = render_files(dir.path());
    let objects = rendered_objects(&files);
    let find = |path: &str| {
        objects
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, o)| o.clone())
            .collect::<Vec<_>>()
    };
    // The spoke's Link is named after the hub's linkName and dials the NodePorts.
    let link = &find("production/links/link-internal.yaml")[0];
    assert_eq!(link["metadata"]["name"], "internal");
    assert_eq!(link["spec"]["targetClusterName"], "internal");
    assert_eq!(link["spec"]["gatewayAddress"], "tfx-internal.gerega.net");
    assert_eq!(link["spec"]["gatewayPort"], "30143");
    assert_eq!(link["spec"]["probeSpec"]["port"], "30191");
    // The spoke's controller references that Link and probes the same port.
    let app = &find("production/apps/linkerd-multicluster.yaml")[0];
    let values = &app["spec"]["source"]["helm"]["valuesObject"];
    assert_eq!(values["controllers"][0]["link"]["ref"]["name"], "internal");
    assert_eq!(values["controllers"][0]["gateway"]["probe"]["port"], 30191);
    assert_eq!(values["gateway"]["enabled"], false);
    // Nothing links to a spoke, so it grants no remote access.
    assert_eq!(values["remoteMirrorServiceAccount"], false);
    // The hub grants access to exactly its two spokes.
    let hub = &find("in-cluster-local/apps/linkerd-multicluster.yaml")[0];
    let hub_values = &hub["spec"]["source"]["helm"]["valuesObject"];
    assert_eq!(
        hub_values["remoteMirrorServiceAccountName"],
        serde_json::json!([
            "linkerd-service-mirror-remote-access-nonproduction",
            "linkerd-service-mirror-remote-access-production"
        ])
    );
    assert_eq!(hub_values["gateway"]["nodePort"], 30143);
    assert_eq!(hub_values["gateway"]["probe"]["nodePort"], 30191);
    // Credentials come from Vault mount secrets-k8, path linkerd-multicluster.
    let creds = &find("production/links/link-internal.yaml")[1];
    assert_eq!(
        creds["spec"]["data"][0]["remoteRef"]["key"],
        "linkerd-multicluster/credentials/production-to-in-cluster-local"
    );
    let store = &find("production/namespaces/cluster-secret-store.yaml")[0];
    assert_eq!(store["spec"]["provider"]["vault"]["path"], "secrets-k8");
    // `issuer: vault`: the issuer Secret comes from Vault per cluster.
    let issuer = &find("production/identity/issuer.yaml")[0];
    assert_eq!(
        issuer["spec"]["data"][0]["remoteRef"]["key"],
        "linkerd-multicluster/issuer/production"
    );
    assert_eq!(issuer["spec"]["target"]["template"]["type"], "kubernetes.io/tls");
}

#[test]
fn render_reports_what_it_wrote() {
    // SOPS: no ClusterSecretStore per cluster (the sealed files come from `secrets sync`).
    for (example, files) in [("homelab", 53), (HOMELAB_VAULT, 55)] {
        let dir = example_copy(example, "flux");
        let out = meshfleet(dir.path())
            .args(["render", ".", "--out", "gitops"])
            .output()
            .expect("render");
        let (_, stderr) = texts(&out);
        assert!(out.status.success(), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "rendered {files} files for 2 cluster(s) (flux, helm) into `gitops`"
            )),
            "{example}: {stderr}"
        );
    }
}

/// The rendered trees committed next to the examples are what `render` writes today:
/// a snapshot a reviewer can read, and a test that any change to the output is seen.
#[test]
fn committed_example_trees_are_current() {
    for example in ["homelab", "hub-spoke"] {
        let out = meshfleet(&repo_root())
            .args([
                "render",
                &format!("examples/{example}"),
                "--out",
                &format!("examples/{example}/gitops"),
                "--check",
            ])
            .output()
            .expect("render --check");
        let (stdout, stderr) = texts(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "examples/{example}/gitops is stale; run `meshfleet render examples/{example} --out examples/{example}/gitops`\n{stdout}{stderr}"
        );
    }
}
