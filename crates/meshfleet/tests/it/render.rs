//! `render`: deterministic bytes, `--check`, atomic replacement, refusal to overwrite a
//! foreign folder or to write secrets.

use meshfleet_core::{plan, render as core_render, validate};
use proptest::prelude::*;

use crate::support::{
    BASE_FLEET, HOMELAB_VAULT, TempFleet, example_copy, meshfleet, read_tree, render_files, texts,
};

#[test]
fn rendering_twice_gives_identical_bytes() {
    for (example, engine) in [
        ("homelab", "flux"),
        ("hub-spoke", "argocd"),
        (HOMELAB_VAULT, "flux"),
        (HOMELAB_VAULT, "argocd"),
        ("hub-spoke", "flux"),
    ] {
        let dir = example_copy(example, engine);
        let first = render_files(dir.path());
        std::fs::rename(dir.path().join("rendered"), dir.path().join("first")).expect("move");
        let second = render_files(dir.path());
        assert_eq!(first, second, "{example}/{engine}");
    }
}

#[test]
fn check_passes_on_a_fresh_render_and_fails_with_a_summary_after_a_change() {
    let fleet = TempFleet::new(BASE_FLEET);
    assert!(fleet.render().status.success());
    let out = meshfleet(fleet.path())
        .args(["render", ".", "--any-dir", "--out", "out", "--check"])
        .output()
        .expect("check");
    assert_eq!(out.status.code(), Some(0), "{}", texts(&out).1);
    fleet.write_fleet(&BASE_FLEET.replace("version: 2025.4.4", "version: 2025.10.7"));
    let before = read_tree(&fleet.path().join("out"));
    let out = meshfleet(fleet.path())
        .args(["render", ".", "--any-dir", "--out", "out", "--check"])
        .output()
        .expect("check");
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("`out` differs from the fleet: 0 to add, "),
        "{stdout}"
    );
    assert!(
        stdout.contains("~ east/linkerd-control-plane/helm-release.yaml"),
        "{stdout}"
    );
    assert!(
        stdout.contains("-      version: \"2025.4.4\"\n+      version: \"2025.10.7\""),
        "{stdout}"
    );
    assert!(stderr.contains("hint: run `meshfleet render"), "{stderr}");
    assert_eq!(
        before,
        read_tree(&fleet.path().join("out")),
        "--check wrote something"
    );
    // Removing a cluster shows removed files.
    let out = meshfleet(fleet.path())
        .args(["render", ".", "--any-dir", "--out", "missing", "--check"])
        .output()
        .expect("check");
    assert_eq!(out.status.code(), Some(1));
    assert!(texts(&out).0.contains("to add"), "{}", texts(&out).0);
}

#[test]
fn render_replaces_its_own_tree_and_removes_stale_files() {
    let fleet = TempFleet::new(BASE_FLEET);
    assert!(fleet.render().status.success());
    std::fs::write(fleet.path().join("out/east/stale.yaml"), "old").expect("stale");
    assert!(fleet.render().status.success());
    assert!(!fleet.path().join("out/east/stale.yaml").exists());
    // No staging folders are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(fleet.path())
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".meshfleet-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn render_refuses_to_replace_a_folder_it_did_not_render() {
    let fleet = TempFleet::new(BASE_FLEET);
    std::fs::create_dir(fleet.path().join("out")).expect("mkdir");
    std::fs::write(fleet.path().join("out/precious.txt"), "keep me").expect("write");
    let out = fleet.render();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("was not rendered by meshfleet") && stderr.contains("hint: "),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(fleet.path().join("out/precious.txt")).expect("kept"),
        "keep me"
    );
}

#[test]
fn render_refuses_output_that_would_hold_a_token() {
    // A JWT pasted into the Vault address would end up in the ClusterSecretStore.
    let jwt = "eyJhbGciOiJSUzI1NiIsImtpZCI6IiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2ln";
    let fleet = TempFleet::new(&BASE_FLEET.replace(
        "https://vault.example:8200",
        &format!("https://vault.example:8200/{jwt}"),
    ));
    let out = fleet.render();
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refusing to render") && stderr.contains("JSON Web Token"),
        "{stderr}"
    );
    assert!(!stderr.contains(jwt), "the token was echoed");
    assert!(!fleet.path().join("out").exists());
}

#[test]
fn no_rendered_file_holds_a_private_key_or_token() {
    for (example, engine) in [
        ("homelab", "flux"),
        (HOMELAB_VAULT, "flux"),
        ("hub-spoke", "argocd"),
    ] {
        let dir = example_copy(example, engine);
        // Keys exist next to the fleet, as after `certs init`.
        let out = meshfleet(dir.path())
            .args(["certs", "init", "."])
            .output()
            .expect("init");
        assert_eq!(out.status.code(), Some(1), "anchor exists: refuses");
        for (path, text) in render_files(dir.path()) {
            for marker in ["PRIVATE KEY", "eyJhbGci", "hvs.", "client-key-data", "token:"] {
                assert!(!text.contains(marker), "{example}: {path} contains `{marker}`");
            }
        }
    }
}

/// A random fleet: 1-6 clusters, gateways of every type, random links and engine.
fn fleet_text(clusters: &[(u8, bool)], links: &[(usize, usize, bool)], argocd: bool) -> String {
    let mut text = format!(
        "apiVersion: meshfleet.io/v1alpha1\nkind: Fleet\nmetadata: {{name: prop}}\nspec:\n  linkerd: {{version: 2026.6.3}}\n  gitops: {{engine: {}, repository: {{url: https://git.example/x.git}}}}\n  identity: {{trustAnchor: anchor.crt}}\n  secrets: {{vault: {{server: https://v.example, mount: kv, path: p}}}}\n  clusters:\n",
        if argocd { "argocd" } else { "flux" }
    );
    for (i, (kind, _)) in clusters.iter().enumerate() {
        let gateway = match kind % 4 {
            0 => String::new(),
            1 => format!(", gateway: {{addresses: [c{i}.example]}}"),
            2 => format!(
                ", gateway: {{serviceType: NodePort, addresses: [192.0.2.{i}], nodePort: {}, probe: {{nodePort: {}}}}}",
                30100 + i,
                30200 + i
            ),
            _ => format!(
                ", gateway: {{serviceType: ClusterIP, addresses: [c{i}.example], port: {}}}",
                5000 + i
            ),
        };
        text.push_str(&format!(
            "    - {{name: c{i}, vaultAuthMountPath: kubernetes-c{i}, network: {{pods: [10.{i}.0.0/16]}}{gateway}}}\n"
        ));
    }
    text.push_str("  links:\n");
    let mut seen = std::collections::HashSet::new();
    for (s, t, rd) in links {
        let (s, t) = (s % clusters.len(), t % clusters.len());
        if s == t || !seen.insert((s, t)) {
            continue;
        }
        let has_gateway = !clusters[t].0.is_multiple_of(4);
        let mode = if *rd || !has_gateway {
            "remote-discovery"
        } else {
            "gateway"
        };
        text.push_str(&format!("    - {{source: c{s}, target: c{t}, mode: {mode}}}\n"));
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn any_valid_fleet_renders_to_the_same_bytes_twice(
        clusters in prop::collection::vec((any::<u8>(), any::<bool>()), 1..6),
        links in prop::collection::vec((0usize..6, 0usize..6, any::<bool>()), 0..12),
        argocd in any::<bool>(),
    ) {
        let text = fleet_text(&clusters, &links, argocd);
        let anchor = meshfleet_core::identity::generate_anchor(time::OffsetDateTime::now_utc()).expect("anchor");
        let checked = || {
            let source = meshfleet_core::fleet::FleetSource { path: "fleet.yaml".into(), text: text.clone() };
            let fleet = meshfleet_core::fleet::parse(&text).expect("parses");
            validate::check(source, fleet, validate::AnchorFile::Text(anchor.cert_pem.clone()), time::OffsetDateTime::now_utc())
        };
        let (a, b) = (checked(), checked());
        prop_assert!(a.is_valid(), "{text}\n{:#?}", a.findings);
        let plan_a = plan::from_checked(&a).expect("plans");
        let plan_b = plan::from_checked(&b).expect("plans");
        let a = core_render::render(&plan_a).expect("render");
        let b = core_render::render(&plan_b).expect("render");
        prop_assert_eq!(a, b);
    }
}

/// Issue 23: a tree rendered where the GitOps engine does not read it is refused, with
/// the folder it belongs in; `--any-dir` writes it there on purpose.
#[test]
fn render_refuses_an_out_dir_that_is_not_the_repository_path() {
    let fleet = TempFleet::new(BASE_FLEET);
    let out = meshfleet(fleet.path())
        .args(["render", ".", "--out", "elsewhere"])
        .output()
        .expect("render");
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(
        stderr,
        "error: `--out elsewhere` is not `gitops` beside the fleet file, where the fleet's `spec.gitops.repository.path` sends the GitOps engine; nothing was written\n\
         hint: render into `gitops`, or set `spec.gitops.repository.path` to where `elsewhere` is inside the repository, or pass `--any-dir` to write a copy elsewhere on purpose\n"
    );
    assert!(!fleet.path().join("elsewhere").exists());
    let out = meshfleet(fleet.path())
        .args(["render", ".", "--out", "gitops"])
        .output()
        .expect("render");
    assert_eq!(out.status.code(), Some(0), "{}", texts(&out).1);
    let out = meshfleet(fleet.path())
        .args(["render", ".", "--out", "elsewhere", "--any-dir"])
        .output()
        .expect("render");
    assert_eq!(out.status.code(), Some(0), "{}", texts(&out).1);
    assert!(fleet.path().join("elsewhere/east").is_dir());
}
