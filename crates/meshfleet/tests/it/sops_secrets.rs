//! `spec.secrets.sops` through the CLI, as a user runs it (no cluster, no Vault): make
//! age keys, `certs init`, `render`, `secrets sync --out`, `render --check`; the real
//! `sops` decrypts each cluster's file with that cluster's key only; a second sync and a
//! render keep every file byte for byte; a key that is not an operator's, or a tree
//! encrypted for another operator, writes nothing. The anchor's private key (the sentinel)
//! never appears in the tree, stdout or stderr.

use std::path::Path;
use std::process::Command;

use crate::support::{self, meshfleet, texts};

fn recipient_of(dir: &Path, key: &str) -> String {
    let out = meshfleet(dir)
        .args(["secrets", "age-key", "--out", key])
        .output()
        .expect("runs");
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stdout.contains("AGE-SECRET-KEY") && !stderr.contains("AGE-SECRET-KEY"),
        "a key is never printed"
    );
    stdout.trim().to_string()
}

fn fleet(operator: &str, studio: &str, pro: &str) -> String {
    format!(
        "apiVersion: meshfleet.io/v1alpha1
kind: Fleet
metadata:
  name: lab
spec:
  linkerd:
    version: 2025.4.4
  gitops:
    engine: flux
    repository:
      url: https://github.com/example/fleet.git
  identity:
    trustAnchor: anchor.crt
  secrets:
    sops:
      age:
        operators: [{operator}]
        clusters:
          studio: {studio}
          pro: {pro}
  clusters:
    - name: studio
      apiServer: https://studio.example:6443
      network: {{pods: [10.1.0.0/16], services: [10.101.0.0/16]}}
    - name: pro
      apiServer: https://pro.example:6443
      network: {{pods: [10.2.0.0/16], services: [10.102.0.0/16]}}
"
    )
}

fn tree_text(root: &Path) -> String {
    let mut all = String::new();
    for entry in walk(root) {
        all.push_str(&std::fs::read_to_string(entry).unwrap_or_default());
    }
    all
}

fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).expect("dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn sops_decrypt(dir: &Path, key: &str, file: &Path) -> std::process::Output {
    Command::new(support::repo_root().join("testenv/bin/sops/sops"))
        .arg("--decrypt")
        .arg(file)
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir)
        .env("SOPS_AGE_KEY_FILE", dir.join(key))
        .output()
        .expect("sops runs (built by `testenv/run build`)")
}

#[test]
fn secrets_sync_seals_the_anchor_per_cluster_into_the_tree_and_stays_quiet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (op, studio, pro) = (
        recipient_of(d, "keys/op.key"),
        recipient_of(d, "keys/studio.key"),
        recipient_of(d, "keys/pro.key"),
    );
    std::fs::write(d.join("fleet.yaml"), fleet(&op, &studio, &pro)).expect("fleet");
    let out = meshfleet(d).args(["certs", "init", "."]).output().expect("runs");
    let (_, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    // The next step it names is the SOPS one, not Vault's.
    assert!(
        stderr
            .contains("run `meshfleet secrets sync --out gitops` to seal them into the rendered tree (SOPS)")
            && !stderr.contains("Vault"),
        "{stderr}"
    );
    let sentinel = std::fs::read_to_string(d.join(".meshfleet/keys/trust-anchor.key")).expect("anchor key");
    let body = sentinel.lines().nth(1).expect("a PEM body line").to_string();
    assert!(
        meshfleet(d)
            .args(["render", ".", "--out", "tree", "--any-dir"])
            .output()
            .expect("runs")
            .status
            .success()
    );

    let sync = meshfleet(d)
        .args([
            "secrets",
            "sync",
            ".",
            "--out",
            "tree",
            "--age-key",
            "keys/op.key",
            "-vv",
        ])
        .output()
        .expect("runs");
    let (stdout, stderr) = texts(&sync);
    assert!(sync.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("studio/identity/trust-anchor.sops.yaml (trust-anchor): created"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&body) && !stderr.contains(&body),
        "the anchor key is never printed"
    );
    let tree = d.join("tree");
    assert!(
        !tree_text(&tree).contains(&body),
        "the anchor key is only in the tree encrypted"
    );
    assert!(
        std::fs::read_to_string(tree.join("studio/identity/kustomization.yaml"))
            .expect("k")
            .contains("- trust-anchor.sops.yaml\n")
    );
    assert!(
        std::fs::read_to_string(tree.join("studio/flux/identity.yaml"))
            .expect("k")
            .contains("provider: sops")
    );

    // Each cluster's file opens with its own key (and the operator's), not the other's.
    let studio_file = tree.join("studio/identity/trust-anchor.sops.yaml");
    for key in ["keys/studio.key", "keys/op.key"] {
        let out = sops_decrypt(d, key, &studio_file);
        assert!(
            out.status.success(),
            "{key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value =
            serde_saphyr::from_str(&String::from_utf8_lossy(&out.stdout)).expect("YAML");
        let key_b64 = doc["data"]["tls.key"].as_str().expect("tls.key");
        let decoded =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, key_b64).expect("base64");
        assert_eq!(
            String::from_utf8(decoded).expect("utf-8").trim(),
            sentinel.trim(),
            "the Secret holds the anchor key"
        );
        assert_eq!(doc["metadata"]["name"], "linkerd-trust-anchor");
    }
    assert!(
        !sops_decrypt(d, "keys/pro.key", &studio_file).status.success(),
        "pro cannot read studio's file"
    );

    // Nothing changed: render --check is green, a second sync and a render keep the bytes.
    let before: Vec<(std::path::PathBuf, Vec<u8>)> = walk(&tree)
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).expect("read")))
        .collect();
    assert!(
        meshfleet(d)
            .args(["render", ".", "--out", "tree", "--check", "--any-dir"])
            .output()
            .expect("runs")
            .status
            .success()
    );
    let again = meshfleet(d)
        .args([
            "secrets",
            "sync",
            ".",
            "--out",
            "tree",
            "--age-key",
            "keys/op.key",
        ])
        .output()
        .expect("runs");
    assert!(again.status.success());
    assert!(
        texts(&again).0.contains("0 written, 2 unchanged"),
        "{}",
        texts(&again).0
    );
    assert!(
        meshfleet(d)
            .args(["render", ".", "--out", "tree", "--any-dir"])
            .output()
            .expect("runs")
            .status
            .success()
    );
    let after: Vec<(std::path::PathBuf, Vec<u8>)> = walk(&tree)
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).expect("read")))
        .collect();
    assert_eq!(before, after, "git stays quiet");

    // A key that is not an operator's is refused with a hint; nothing is written.
    let stranger = meshfleet(d)
        .args([
            "secrets",
            "sync",
            ".",
            "--out",
            "tree",
            "--age-key",
            "keys/pro.key",
        ])
        .output()
        .expect("runs");
    let (_, stderr) = texts(&stranger);
    assert_eq!(stranger.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("none of the recipients in `spec.secrets.sops.age.operators`")
            && stderr.contains("hint:"),
        "{stderr}"
    );

    // A tree encrypted for another operator: the files cannot be opened, nothing is written.
    let other = recipient_of(d, "keys/other.key");
    std::fs::write(
        d.join("fleet.yaml"),
        fleet(&format!("{op}, {other}"), &studio, &pro),
    )
    .expect("fleet");
    let wrong = meshfleet(d)
        .args([
            "secrets",
            "sync",
            ".",
            "--out",
            "tree",
            "--age-key",
            "keys/other.key",
        ])
        .output()
        .expect("runs");
    let (stdout, stderr) = texts(&wrong);
    assert_eq!(wrong.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stdout.contains("none of the given age keys can decrypt the file") && stdout.contains("hint:"),
        "{stdout}"
    );
    let unchanged: Vec<(std::path::PathBuf, Vec<u8>)> = walk(&tree)
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).expect("read")))
        .collect();
    assert_eq!(before, unchanged, "nothing written");
}

#[test]
fn age_key_never_overwrites_and_a_malformed_key_file_is_located() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    recipient_of(d, "op.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(d.join("op.key")).expect("meta").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let again = meshfleet(d)
        .args(["secrets", "age-key", "--out", "op.key"])
        .output()
        .expect("runs");
    assert_eq!(again.status.code(), Some(2));
    assert!(texts(&again).1.contains("refusing to overwrite"));
    std::fs::write(d.join("bad.key"), "# a comment\nAGE-SECRET-KEY-1NOTAKEY\n").expect("write");
    std::fs::write(
        d.join("fleet.yaml"),
        fleet(
            &recipient_of(d, "o2.key"),
            &recipient_of(d, "s.key"),
            &recipient_of(d, "p.key"),
        ),
    )
    .expect("fleet");
    assert!(
        meshfleet(d)
            .args(["certs", "init", "."])
            .output()
            .expect("runs")
            .status
            .success()
    );
    let out = meshfleet(d)
        .args(["secrets", "sync", ".", "--out", "tree", "--age-key", "bad.key"])
        .output()
        .expect("runs");
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("line 2 of the age key file is not an age identity") && stderr.contains("hint:"),
        "{stderr}"
    );
    assert!(!stderr.contains("NOTAKEY"), "the key text is never repeated");
    assert!(!d.join("tree").exists(), "nothing written");
}

/// A new fleet's first sync: the link credentials cannot be computed (here the target is
/// not in the kubeconfig; in real life its multicluster chart has not created the
/// remote-access account yet), yet the anchors must reach git first, or Flux never
/// installs the chart that creates the accounts. So those files are reported (exit 2,
/// hint) and left absent, and the others are written; a second run writes nothing new.
#[test]
fn a_first_sync_seals_the_anchors_while_the_links_cannot_be_computed_yet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (op, studio, pro) = (
        recipient_of(d, "keys/op.key"),
        recipient_of(d, "keys/studio.key"),
        recipient_of(d, "keys/pro.key"),
    );
    let text = fleet(&op, &studio, &pro)
        .replace(
            "      network: {pods: [10.1.0.0/16], services: [10.101.0.0/16]}\n",
            "      network: {pods: [10.1.0.0/16], services: [10.101.0.0/16]}\n      gateway: {addresses: [192.0.2.1]}\n",
        )
        .replace(
            "      network: {pods: [10.2.0.0/16], services: [10.102.0.0/16]}\n",
            "      network: {pods: [10.2.0.0/16], services: [10.102.0.0/16]}\n      gateway: {addresses: [192.0.2.2]}\n  links:\n    - {source: studio, target: pro}\n",
        );
    assert!(text.contains("links:"), "{text}");
    std::fs::write(d.join("fleet.yaml"), text).expect("fleet");
    std::fs::write(
        d.join("kubeconfig"),
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n",
    )
    .expect("kubeconfig");
    for args in [
        &["certs", "init", "."][..],
        &["render", ".", "--out", "tree", "--any-dir"][..],
    ] {
        let out = meshfleet(d).args(args).output().expect("runs");
        assert!(out.status.success(), "{args:?}: {}", texts(&out).1);
    }
    let sync = || {
        meshfleet(d)
            .args([
                "secrets",
                "sync",
                ".",
                "--out",
                "tree",
                "--age-key",
                "keys/op.key",
                "--kubeconfig",
                "kubeconfig",
            ])
            .output()
            .expect("runs")
    };
    let first = sync();
    let (stdout, stderr) = texts(&first);
    assert_eq!(first.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stdout.contains("4 files: 2 written, 0 unchanged, 0 rotating, 2 failed; written into `tree`"),
        "{stdout}"
    );
    assert!(stdout.contains("(credentials/studio-to-pro): the kubeconfig has no context `pro`"));
    assert!(stdout.contains("hint:"), "{stdout}");
    assert!(
        stderr.contains(
            "2 of 4 files could not be sealed; they were left as they were; the others were written"
        ),
        "{stderr}"
    );
    let tree = d.join("tree");
    for cluster in ["studio", "pro"] {
        let anchor = tree.join(format!("{cluster}/identity/trust-anchor.sops.yaml"));
        let out = sops_decrypt(d, &format!("keys/{cluster}.key"), &anchor);
        assert!(
            out.status.success(),
            "{cluster}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        !tree
            .join("studio/links/cluster-credentials-pro.linkerd.sops.yaml")
            .exists()
    );
    assert!(
        !std::fs::read_to_string(tree.join("studio/links/kustomization.yaml"))
            .expect("links kustomization")
            .contains(".sops.yaml"),
        "the links stage lists no file it does not hold"
    );
    let again = sync();
    assert_eq!(again.status.code(), Some(2));
    assert!(
        texts(&again)
            .0
            .contains("0 written, 2 unchanged, 0 rotating, 2 failed; nothing was written"),
        "{}",
        texts(&again).0
    );
}
