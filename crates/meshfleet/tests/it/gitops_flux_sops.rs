//! The homelab example (`spec.secrets.sops`) reconciled end to end by real Flux on two test
//! clusters with NO OpenBao and no External Secrets (`testenv/run up --no-vault`, then
//! `gitops`: Flux and cert-manager only): the real kustomize-controller decrypts the
//! files `secrets sync --out` wrote with each cluster's `flux-system/sops-age` Secret
//! (created by the documented `kubectl create secret` command), cert-manager issues from
//! the decrypted anchor, the real service mirror mirrors with the decrypted credentials,
//! and `meshfleet check` is green. Then pro's `sops-age` is replaced by a key the fleet
//! does not know: Flux's Kustomizations fail to decrypt and `check` says so (cluster,
//! Kustomization, hint); the right key heals it. Then both rotations through commits
//! only: a link credential rotation (`secrets sync --rotate --out`: the next credentials
//! sealed, committed, verified on the cluster once Flux applied them) and a trust anchor
//! rotation (`trust rotate`, the signing anchor sealed by `secrets sync --out`).
//! Between the link rotation's steps, `secrets status` says where it stands.
//!
//! Test-time substitutions: those of gitops_flux.rs (addresses, contexts, the
//! committed HelmRepository and Gateway API URLs), and the example's age recipients
//! replaced by those of the keys made here (the example commits only public keys).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::kubectl::{self, Kubectl, name, ready};
use crate::real_linkerd::scenario::kubeconfig_identity;
use crate::support::{example_fleet_text, meshfleet, repo_root, texts};
use crate::testenv::{self, PrivateEnv};

const CLUSTERS: [&str; 2] = ["studio", "pro"];
const CONVERGE: Duration = Duration::from_secs(900);

/// Where the age keys live: the fleet's git-ignored key folder, as docs/secrets-sops.md
/// writes them.
const KEYS: &str = ".meshfleet/keys/age";

struct Lab {
    env: PrivateEnv,
    k: Kubectl,
    fleet: tempfile::TempDir,
}

impl Lab {
    fn dir(&self) -> &Path {
        self.fleet.path()
    }

    fn key(&self, who: &str) -> PathBuf {
        self.dir().join(KEYS).join(format!("{who}.agekey"))
    }

    fn meshfleet(&self, args: &[&str]) -> (i32, String, String) {
        let output = meshfleet(self.dir())
            .args(args)
            .arg("--kubeconfig")
            .arg(self.env.kubeconfig())
            .env("SOPS_AGE_KEY_FILE", self.key("operator"))
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .output()
            .expect("run meshfleet");
        let (stdout, stderr) = texts(&output);
        (output.status.code().unwrap_or(-1), stdout, stderr)
    }

    /// `secrets age-key --out`: the recipient (the key file is 0600, never printed).
    fn age_key(&self, who: &str) -> String {
        let out = self.key(who);
        let output = meshfleet(self.dir())
            .args(["secrets", "age-key", "--out"])
            .arg(&out)
            .output()
            .expect("run meshfleet");
        let (stdout, stderr) = texts(&output);
        assert!(output.status.success(), "age-key: {stderr}");
        assert!(!stdout.contains("AGE-SECRET-KEY") && !stderr.contains("AGE-SECRET-KEY"));
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&out).expect("key").permissions());
        assert_eq!(mode & 0o777, 0o600, "{who}'s key file is 0600");
        stdout.trim().to_owned()
    }

    /// Step 2 of docs/secrets-sops.md: the cluster's key becomes `flux-system/sops-age`.
    fn bootstrap_sops_age(&self, cluster: &str, key: &Path) {
        let from = format!("--from-file=age.agekey={}", key.display());
        let _ = self.k.get(cluster, "secret", "flux-system", "sops-age").map(|_| {
            self.k
                .run(cluster, &["-n", "flux-system", "delete", "secret", "sops-age"])
        });
        self.k.run(
            cluster,
            &[
                "-n",
                "flux-system",
                "create",
                "secret",
                "generic",
                "sops-age",
                &from,
            ],
        );
    }

    /// `secrets sync . --out gitops`: (exit code, stdout).
    fn sync(&self) -> (i32, String) {
        let (code, out, err) = self.meshfleet(&["secrets", "sync", ".", "--out", "gitops"]);
        assert!(code == 0 || code == 2, "secrets sync: {code}\n{out}\n{err}");
        (code, out)
    }

    /// The check ids that are not ok, per cluster, and the whole JSON report.
    fn check(&self) -> (Vec<(String, String)>, Value) {
        let (_, stdout, stderr) = self.meshfleet(&["check", ".", "-o", "json"]);
        let report: Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
        let failing = report["clusters"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| {
                c["checks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|k| k["status"] != "ok")
                    .map(|k| {
                        (
                            c["name"].as_str().unwrap_or_default().to_owned(),
                            k["id"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
            })
            .collect();
        (failing, report)
    }

    fn wait_check_green(&self, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let (failing, _) = self.check();
            if failing.is_empty() {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "meshfleet check is not green: {failing:?}"
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }
}

/// The homelab example with the environment's addresses and the recipients of the keys
/// made here in place of the example's.
fn homelab_sops_fleet(env: &PrivateEnv, operator: &str, studio: &str, pro: &str) -> String {
    let text = example_fleet_text("homelab");
    let example: Value = serde_saphyr::from_str(&text).expect("the example parses");
    let age = &example["spec"]["secrets"]["sops"]["age"];
    let recipient = |v: &Value| v.as_str().expect("an age recipient").to_owned();
    let port = |n: &str| env.server(n).rsplit(':').next().expect("port").to_owned();
    let mut out = text.clone();
    for (theirs, ours) in [
        (recipient(&age["operators"][0]), operator),
        (recipient(&age["clusters"]["studio"]), studio),
        (recipient(&age["clusters"]["pro"]), pro),
    ] {
        assert_eq!(out.matches(&theirs).count(), 1, "{theirs} once in the example");
        out = out.replace(&theirs, ours);
    }
    assert!(!out.contains("vault"), "no Vault in the example:\n{out}");
    out.replace(
        "https://studio.vpn.example:6443",
        &format!("https://kubernetes.default.svc:{}", port("studio")),
    )
    .replace(
        "https://pro.vpn.example:6443",
        &format!("https://kubernetes.default.svc:{}", port("pro")),
    )
    .replace("addresses: [studio.vpn.example]", "addresses: [192.0.2.11]")
    .replace("addresses: [pro.vpn.example]", "addresses: [192.0.2.12]")
    .replace("context: kind-studio", "context: studio")
    .replace("context: kind-pro", "context: pro")
}

/// What keeps a cluster from green at `commit` (gitops_flux.rs's rule: every
/// Kustomization Ready at the commit, every HelmRelease Ready).
fn not_converged(k: &Kubectl, cluster: &str, commit: &str) -> Vec<String> {
    let mut out = Vec::new();
    let kustomizations = k.items(cluster, "kustomizations.kustomize.toolkit.fluxcd.io");
    if kustomizations.len() < 2 {
        out.push("no Kustomizations yet".to_owned());
    }
    for obj in &kustomizations {
        let (status, reason, message) = ready(obj);
        let revision = obj["status"]["lastAppliedRevision"].as_str().unwrap_or_default();
        let ours = obj["spec"]["sourceRef"]["name"] == "flux-system";
        if status != "True" || (ours && !revision.ends_with(commit)) {
            out.push(format!(
                "Kustomization {} {status} {reason} at {revision}: {message}",
                name(obj)
            ));
        }
    }
    let releases = k.items(cluster, "helmreleases.helm.toolkit.fluxcd.io");
    if releases.is_empty() {
        out.push("no HelmReleases yet".to_owned());
    }
    for r in &releases {
        let (status, reason, message) = ready(r);
        if status != "True" {
            out.push(format!("HelmRelease {} {status} {reason}: {message}", name(r)));
        }
    }
    out
}

/// Wait until both clusters are green at `commit`. Once both run the multicluster chart
/// (so the remote-access accounts exist), `on_multicluster` runs once and may return a
/// newer commit to wait for instead (the second `secrets sync`, committed).
fn converge(
    lab: &Lab,
    mut commit: String,
    mut on_multicluster: impl FnMut() -> Option<String>,
) -> (Duration, String) {
    let started = Instant::now();
    let mut done = false;
    loop {
        let pending: Vec<String> = CLUSTERS
            .iter()
            .flat_map(|c| {
                not_converged(&lab.k, c, &commit)
                    .into_iter()
                    .map(move |p| format!("{c}: {p}"))
            })
            .collect();
        if pending.is_empty() && done {
            return (started.elapsed(), commit);
        }
        kubectl::publish_gateway_addresses(&lab.k, &[("studio", "192.0.2.11"), ("pro", "192.0.2.12")]);
        let multicluster = CLUSTERS.iter().all(|c| {
            lab.k
                .get(c, "helmrelease", "flux-system", "homelab-linkerd-multicluster")
                .is_some_and(|r| ready(&r).0 == "True")
        });
        if multicluster && !done {
            if let Some(next) = on_multicluster() {
                commit = next;
            }
            done = true;
        }
        assert!(
            started.elapsed() < CONVERGE,
            "Flux did not converge on {commit} within {CONVERGE:?}:\n{}",
            pending.join("\n")
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The real `sops` opens a file of the tree with `key`: the decrypted document.
fn sops_decrypt(key: &Path, file: &Path) -> Value {
    let out = std::process::Command::new(repo_root().join("testenv/bin/sops/sops"))
        .arg("--decrypt")
        .arg(file)
        .env_clear()
        .env("HOME", key.parent().expect("dir"))
        .env("SOPS_AGE_KEY_FILE", key)
        .output()
        .expect("sops runs (built by `testenv/run build`)");
    assert!(
        out.status.success(),
        "sops --decrypt {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_saphyr::from_str(&String::from_utf8_lossy(&out.stdout)).expect("YAML")
}

/// Every file of a folder, recursively.
fn all_text(root: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(root).expect("read_dir").flatten() {
        let p = entry.path();
        if p.is_dir() {
            text.push_str(&all_text(&p));
        } else {
            text.push_str(&String::from_utf8_lossy(&std::fs::read(&p).expect("read")));
        }
    }
    text
}

#[test]
fn homelab_with_sops_reconciled_by_real_flux_without_any_vault() {
    let t0 = Instant::now();
    let env = testenv::private_without_vault(&CLUSTERS);
    assert!(
        !env.dir().join("vault.env").exists(),
        "no OpenBao in this environment"
    );
    let took = env.gitops();
    eprintln!(
        "testenv up + gitops (no OpenBao, no ESO): {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    eprintln!("testenv gitops: start-up {:.1}s", took.as_secs_f64());
    let lab = Lab {
        k: Kubectl::new(&env),
        env,
        fleet: tempfile::tempdir().expect("tempdir"),
    };
    assert!(
        lab.k
            .items("studio", "customresourcedefinitions")
            .iter()
            .all(|crd| !name(crd).contains("external-secrets")),
        "External Secrets is not installed"
    );

    // 1. Keys, and each cluster's key as the Secret its Flux decrypts with.
    let (operator, studio, pro) = (lab.age_key("operator"), lab.age_key("studio"), lab.age_key("pro"));
    for c in CLUSTERS {
        lab.bootstrap_sops_age(c, &lab.key(c));
    }
    std::fs::write(
        lab.dir().join("fleet.yaml"),
        homelab_sops_fleet(&lab.env, &operator, &studio, &pro),
    )
    .expect("fleet");

    // 2. Anchor, tree, the Secrets that can be computed now (the anchors: the link
    //    credentials need the targets' multicluster chart), commit.
    let (code, out, err) = lab.meshfleet(&["certs", "init", "."]);
    assert_eq!(code, 0, "certs init: {out}\n{err}");
    assert!(
        err.contains("`meshfleet secrets sync --out gitops` to seal them into the rendered tree (SOPS)"),
        "certs init names the SOPS step: {err}"
    );
    let (code, out, err) = lab.meshfleet(&["render", ".", "--out", "gitops"]);
    assert_eq!(code, 0, "render: {out}\n{err}");
    let (code, out) = lab.sync();
    assert_eq!(code, 2, "the link credentials cannot be computed yet:\n{out}");
    assert!(
        out.contains("studio/identity/trust-anchor.sops.yaml (trust-anchor): created")
            && out.contains("pro/identity/trust-anchor.sops.yaml (trust-anchor): created"),
        "the anchors are written although the links are not ready:\n{out}"
    );
    let tree = lab.dir().join("gitops");
    assert!(
        !tree
            .join("studio/links/cluster-credentials-pro.linkerd.sops.yaml")
            .exists()
    );
    let (code, out, err) = lab.meshfleet(&["render", ".", "--out", "gitops", "--check"]);
    assert_eq!(code, 0, "render --check after the sync: {out}\n{err}");
    let first = lab.env.commit(&tree, "homelab: tree and anchors (SOPS)");

    // 3. Flux installs up to the multicluster chart; then the second sync seals the link
    //    credentials, committed; Flux decrypts and applies them.
    let mut second_sync = Duration::ZERO;
    let (took, last) = converge(&lab, first, || {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(120);
        loop {
            let (code, out) = lab.sync();
            if code == 0 {
                assert!(
                    out.contains(
                        "cluster-credentials-pro.linkerd.sops.yaml (credentials/studio-to-pro): created"
                    ),
                    "{out}"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "secrets sync never sealed the links:\n{out}"
            );
            std::thread::sleep(Duration::from_secs(2));
        }
        let commit = lab.env.commit(&tree, "homelab: link credentials (SOPS)");
        second_sync = started.elapsed();
        Some(commit)
    });
    eprintln!(
        "first commit to green at the credentials commit: {:.1}s (second sync + commit {:.1}s)",
        took.as_secs_f64(),
        second_sync.as_secs_f64()
    );
    eprintln!("green at {last}");

    // What Flux applied is what meshfleet sealed: each credentials Secret on the cluster
    // (applied by the links Kustomization) holds the kubeconfig the real `sops` decrypts
    // from the tree, reaching the target.
    let anchor = std::fs::read_to_string(lab.dir().join("certs/trust-anchor.crt")).expect("anchor");
    for (source, target) in [("studio", "pro"), ("pro", "studio")] {
        for ns in ["linkerd-multicluster", "linkerd"] {
            let secret_name = format!("cluster-credentials-{target}");
            let live = lab
                .k
                .get(source, "secret", ns, &secret_name)
                .unwrap_or_else(|| panic!("{source}: no Secret {ns}/{secret_name}"));
            assert_eq!(live["type"], "mirror.linkerd.io/remote-kubeconfig");
            assert_eq!(
                live["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"], "homelab-links",
                "{source} {ns}/{secret_name} was applied by Flux"
            );
            let file = tree.join(format!("{source}/links/{secret_name}.{ns}.sops.yaml"));
            let sealed = sops_decrypt(&lab.key(source), &file);
            let identity = kubeconfig_identity(&live);
            assert_eq!(
                identity,
                kubeconfig_identity(&sealed),
                "{source} {ns}: Flux applied the sealed kubeconfig"
            );
            assert!(
                identity
                    .0
                    .ends_with(lab.env.server(target).rsplit(':').next().expect("port")),
                "{source}'s credentials reach {target}"
            );
        }
        let cert = lab
            .k
            .get(source, "certificate", "linkerd", "linkerd-identity-issuer")
            .expect("Certificate");
        assert_eq!(ready(&cert).0, "True", "{source}: issuer {:?}", ready(&cert));
        let issuer = lab
            .k
            .get(source, "secret", "linkerd", "linkerd-identity-issuer")
            .expect("issuer");
        let ca = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            issuer["data"]["ca.crt"].as_str().expect("ca.crt"),
        )
        .expect("base64");
        assert_eq!(
            String::from_utf8_lossy(&ca).trim(),
            anchor.trim(),
            "{source}: issued from the decrypted anchor"
        );
    }
    kubectl::assert_mirrored(&lab.k, "studio", "pro");
    let took = lab.wait_check_green(Duration::from_secs(120));
    eprintln!("then `check` green in {:.1}s", took.as_secs_f64());

    // The sentinels (the anchor's private key, the link tokens) are nowhere in git.
    let anchor_key =
        std::fs::read_to_string(lab.dir().join(".meshfleet/keys/trust-anchor.key")).expect("key");
    let key_line = anchor_key.lines().nth(1).expect("a PEM body line").to_owned();
    let token = kubeconfig_identity(
        &lab.k
            .get(
                "studio",
                "secret",
                "linkerd-multicluster",
                "cluster-credentials-pro",
            )
            .expect("Secret"),
    )
    .2;
    assert!(token.len() > 20);
    let history = std::process::Command::new("git")
        .args(["log", "-p", "--all"])
        .current_dir(lab.env.dir().join("fleet-worktree"))
        .output()
        .expect("git log");
    let history = String::from_utf8_lossy(&history.stdout);
    assert!(
        history.contains("trust-anchor.sops.yaml"),
        "the history holds the sealed files"
    );
    for (what, sentinel) in [
        ("the anchor key", key_line.as_str()),
        ("a link token", token.as_str()),
    ] {
        assert!(!history.contains(sentinel), "{what} is in git history in clear");
        assert!(
            !all_text(&tree).contains(sentinel),
            "{what} is in the tree in clear"
        );
    }

    // 4. pro's `sops-age` holds a key the fleet does not know: Flux cannot decrypt, and
    //    `check` names the cluster, the Kustomizations and the fix; studio stays green.
    let started = Instant::now();
    let stranger = lab.key("stranger");
    lab.age_key("stranger");
    lab.bootstrap_sops_age("pro", &stranger);
    let deadline = Instant::now() + Duration::from_secs(180);
    let report = loop {
        for stage in ["homelab-identity", "homelab-links"] {
            lab.k.request_reconcile("pro", "kustomization", stage);
        }
        std::thread::sleep(Duration::from_secs(3));
        let (failing, report) = lab.check();
        let pro_failing: Vec<&str> = failing
            .iter()
            .filter(|(c, _)| c == "pro")
            .map(|(_, id)| id.as_str())
            .collect();
        let links = lab
            .k
            .get("pro", "kustomization", "flux-system", "homelab-links")
            .expect("links");
        if pro_failing.contains(&"sops-decryption") && ready(&links).0 == "False" {
            assert!(
                failing
                    .iter()
                    .all(|(c, id)| c == "pro" && id == "sops-decryption"),
                "only pro's decryption fails: {failing:?}"
            );
            break report;
        }
        assert!(
            Instant::now() < deadline,
            "the wrong key was not reported: check {failing:?}; Flux {:?}",
            ready(&links)
        );
    };
    let pro_report = report["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .find(|c| c["name"] == "pro")
        .expect("pro");
    let failed: Vec<&Value> = pro_report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|k| k["id"] == "sops-decryption" && k["status"] == "error")
        .collect();
    let messages: Vec<&str> = failed.iter().filter_map(|k| k["message"].as_str()).collect();
    for stage in ["homelab-identity", "homelab-links"] {
        assert!(
            messages
                .iter()
                .any(|m| m.contains(&format!("`flux-system/{stage}`"))),
            "{stage} is named: {messages:?}"
        );
    }
    for k in &failed {
        let hint = k["hint"].as_str().expect("hint");
        assert!(
            hint.contains(&pro)
                && hint.contains("create secret generic sops-age")
                && hint.contains("--context pro"),
            "{hint}"
        );
        assert_eq!(k["category"], "gitops");
    }
    let (code, text, _) = lab.meshfleet(&["check", "."]);
    assert_eq!(code, 1, "check fails:\n{text}");
    assert!(!text.contains("AGE-SECRET-KEY"), "no key in the report");
    eprintln!(
        "wrong key on pro reported by check in {:.1}s: {messages:?}; details {:?}",
        started.elapsed().as_secs_f64(),
        failed[0]["details"]
    );

    // The right key heals it: both Kustomizations handle a new request and are Ready.
    let started = Instant::now();
    lab.bootstrap_sops_age("pro", &lab.key("pro"));
    for stage in ["homelab-identity", "homelab-links"] {
        let at = lab.k.request_reconcile("pro", "kustomization", stage);
        lab.k
            .wait_reconciled_ready("pro", "kustomization", stage, &at, Duration::from_secs(180));
    }
    lab.wait_check_green(Duration::from_secs(60));
    eprintln!(
        "the right key back: Flux Ready and check green in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // 5. A link credential rotation through commits only: where the Vault flow
    //    force-syncs External Secrets, the next credentials are sealed into the tree,
    //    committed, and Flux applies them; `--rotate` verifies that on the cluster.
    rotate_link_credentials(&lab, &tree);
    lab.wait_check_green(Duration::from_secs(180));

    // 6. A trust anchor rotation through commits only: after each step, render, seal
    //    (`secrets sync --out`: the signing anchor's key pair), commit; run the restarts
    //    `trust rotate status` prints until nothing blocks; `trust rotate next`.
    rotate_trust_anchor(&lab, &tree);
    lab.wait_check_green(Duration::from_secs(180));
    eprintln!("whole test: {:.1}s", t0.elapsed().as_secs_f64());
}

/// The credentials Secret `linkerd-multicluster/cluster-credentials-<target>` on `source`.
fn live_credentials(lab: &Lab, source: &str, target: &str) -> Value {
    lab.k
        .get(
            source,
            "secret",
            "linkerd-multicluster",
            &format!("cluster-credentials-{target}"),
        )
        .expect("credentials Secret")
}

/// `secrets sync --rotate --out gitops -o json`: (exit code, report).
fn rotate(lab: &Lab) -> (i32, Value) {
    let (code, stdout, stderr) = lab.meshfleet(&[
        "secrets", "sync", ".", "--rotate", "--out", "gitops", "-o", "json",
    ]);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    eprintln!(
        "--rotate: exit {code}, stage {}, now {}",
        report["stage"], report["now"]
    );
    (code, report)
}

/// `secrets status` mid-rotation, as text and `-o json`: (exit code, JSON report, text).
/// Neither output nor its stderr holds a token of `tokens` or a private key.
fn status(lab: &Lab, tokens: &[String]) -> (i32, Value, String) {
    let started = Instant::now();
    let (code, stdout, stderr) = lab.meshfleet(&["-o", "json", "secrets", "status", "."]);
    // It looks and reports: it does not wait for Flux (`--rotate` waits up to `--wait`,
    // 120 s by default).
    let took = started.elapsed();
    assert!(took < Duration::from_secs(60), "secrets status took {took:?}");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    let (text_code, text, text_err) = lab.meshfleet(&["secrets", "status", "."]);
    assert_eq!(code, text_code, "text and JSON agree:\n{text}\n{text_err}");
    for output in [&stdout, &stderr, &text, &text_err] {
        assert!(
            !output.contains("AGE-SECRET-KEY"),
            "a private key in `secrets status`"
        );
        for token in tokens {
            assert!(!output.contains(token.as_str()), "a token in `secrets status`");
        }
    }
    assert_eq!(report["dryRun"], true, "status changes nothing: {report:#}");
    assert!(
        step_states(&report, "vault").is_empty(),
        "no Vault step with SOPS: {report:#}"
    );
    assert!(
        !text.contains("in Vault") && !text.contains("cannot read Vault"),
        "no Vault with SOPS:\n{text}"
    );
    // Where the earlier credentials are; mid-rotation, that they still work.
    let still_work = if report["now"].is_null() {
        "a token dies with its account"
    } else {
        "until the rotation removes the old account"
    };
    assert!(
        text.contains("history of the link credentials (SOPS, no Vault)") && text.contains(still_work),
        "{text}"
    );
    eprintln!(
        "$ meshfleet secrets status (exit {code}, -o json in {:.1}s)\n{text}",
        took.as_secs_f64()
    );
    (code, report, text)
}

/// The hints of step `id` over every link of a rotation report.
fn step_hints<'a>(report: &'a Value, id: &str) -> Vec<&'a str> {
    report["links"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["steps"].as_array().into_iter().flatten())
        .filter(|s| s["id"] == id)
        .filter_map(|s| s["hint"].as_str())
        .collect()
}

/// The states of step `id` over every link of a rotation report.
fn step_states(report: &Value, id: &str) -> Vec<String> {
    report["links"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["steps"].as_array().into_iter().flatten())
        .filter(|s| s["id"] == id)
        .map(|s| s["state"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn rotate_link_credentials(lab: &Lab, tree: &Path) {
    let started = Instant::now();
    let mirror_uid =
        || lab.k.get("studio", "service", "apps", "web-pro").expect("mirror")["metadata"]["uid"].clone();
    let before = mirror_uid();
    let old_tokens: Vec<String> = [("studio", "pro"), ("pro", "studio")]
        .iter()
        .map(|(s, t)| kubeconfig_identity(&live_credentials(lab, s, t)).2)
        .collect();
    let commit = |message: &str| {
        let (code, out, err) = lab.meshfleet(&["render", ".", "--out", "gitops"]);
        assert_eq!(code, 0, "render: {out}\n{err}");
        let commit = lab.env.commit(tree, message);
        let (took, _) = converge(lab, commit, || None);
        eprintln!("commit to green ({message}): {:.1}s", took.as_secs_f64());
    };

    let (code, report) = rotate(lab);
    assert_eq!(
        (code, report["now"].as_str()),
        (0, Some("granting")),
        "{report:#}"
    );
    commit("rotation: grant the next accounts");

    // `secrets status` once the targets grant the next accounts: granting, the next
    // accounts and their tokens there, nothing sealed yet, nothing blocked.
    let (code, report, text) = status(lab, &old_tokens);
    assert_eq!(
        (code, report["now"].as_str()),
        (0, Some("granting")),
        "{report:#}"
    );
    assert_eq!(
        step_states(&report, "next-account"),
        ["done", "done"],
        "{report:#}"
    );
    assert_eq!(
        step_states(&report, "next-token-accepted"),
        ["done", "done"],
        "{report:#}"
    );
    assert_eq!(step_states(&report, "sealed"), ["would", "would"], "{report:#}");
    assert!(text.contains("phase `granting`"), "{text}");

    // The next credentials are sealed into the tree; the run stops: commit them.
    let (code, report) = rotate(lab);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(step_states(&report, "sealed"), ["done", "done"], "{report:#}");
    assert_eq!(
        step_states(&report, "source-secrets"),
        ["blocked", "blocked"],
        "{report:#}"
    );
    assert!(
        step_states(&report, "vault").is_empty(),
        "no Vault step with SOPS"
    );
    let hints: Vec<&str> = report["links"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["steps"].as_array().into_iter().flatten())
        .filter(|s| s["id"] == "source-secrets")
        .filter_map(|s| s["hint"].as_str())
        .collect();
    assert!(
        hints.iter().all(|h| h.contains("commit the rendered tree")),
        "{hints:?}"
    );
    let (code, out, err) = lab.meshfleet(&["render", ".", "--out", "gitops", "--check"]);
    assert_eq!(
        code, 0,
        "render --check after --rotate sealed the tree: {out}\n{err}"
    );
    // The next tokens, as the real `sops` opens them from the tree.
    let next_tokens: Vec<String> = [("studio", "pro"), ("pro", "studio")]
        .iter()
        .map(|(s, t)| {
            let file = tree.join(format!(
                "{s}/links/cluster-credentials-{t}.linkerd-multicluster.sops.yaml"
            ));
            kubeconfig_identity(&sops_decrypt(&lab.key(s), &file)).2
        })
        .collect();
    let tokens: Vec<String> = old_tokens.iter().chain(&next_tokens).cloned().collect();

    // `secrets status` before the commit: sealed, and what blocks is the commit (the
    // clusters still hold the current credentials), with that hint.
    let (code, report, text) = status(lab, &tokens);
    assert_eq!(
        (code, report["now"].as_str()),
        (1, Some("granting")),
        "{report:#}"
    );
    assert_eq!(report["blocked"], true, "{report:#}");
    assert_eq!(step_states(&report, "sealed"), ["done", "done"], "{report:#}");
    assert_eq!(
        step_states(&report, "source-secrets"),
        ["blocked", "blocked"],
        "{report:#}"
    );
    let hints = step_hints(&report, "source-secrets");
    assert!(
        hints.len() == 2 && hints.iter().all(|h| h.contains("commit the rendered tree")),
        "{hints:?}"
    );
    assert!(
        text.contains("× source-secrets") && text.contains("blocked"),
        "{text}"
    );

    let commit_sha = lab.env.commit(tree, "rotation: the next credentials (SOPS)");
    let (took, _) = converge(lab, commit_sha, || None);
    eprintln!(
        "commit to green (the next credentials): {:.1}s",
        took.as_secs_f64()
    );

    // `secrets status` once Flux applied them: the Secrets hold them, the controllers
    // are to be restarted (what the next `--rotate` does), nothing blocks.
    let (code, report, text) = status(lab, &tokens);
    assert_eq!(
        (code, report["now"].as_str()),
        (0, Some("granting")),
        "{report:#}"
    );
    assert_eq!(
        step_states(&report, "source-secrets"),
        ["done", "done"],
        "{report:#}"
    );
    assert!(
        report["restarts"]
            .as_array()
            .is_some_and(|r| !r.is_empty() && r.iter().all(|r| r["state"] == "would")),
        "the controllers are restarted next: {report:#}"
    );
    assert!(text.contains("dry run: nothing was changed"), "{text}");

    // Flux applied them: verified on the cluster, the controllers restarted, retiring.
    let (code, report) = rotate(lab);
    assert_eq!(
        (code, report["now"].as_str()),
        (0, Some("retiring")),
        "{report:#}"
    );
    assert_eq!(
        step_states(&report, "source-secrets"),
        ["done", "done"],
        "{report:#}"
    );
    for (source, target) in [("studio", "pro"), ("pro", "studio")] {
        let live = live_credentials(lab, source, target);
        let file = tree.join(format!(
            "{source}/links/cluster-credentials-{target}.linkerd-multicluster.sops.yaml"
        ));
        assert_eq!(
            kubeconfig_identity(&live),
            kubeconfig_identity(&sops_decrypt(&lab.key(source), &file)),
            "{source}: Flux applied the sealed next credentials"
        );
    }
    // `secrets status` in `retiring` before the commit that drops the old accounts:
    // what blocks is that commit.
    let (code, report, text) = status(lab, &tokens);
    assert_eq!(
        (code, report["now"].as_str()),
        (1, Some("retiring")),
        "{report:#}"
    );
    assert_eq!(
        step_states(&report, "old-account-removed"),
        ["blocked", "blocked"],
        "{report:#}"
    );
    assert!(
        step_hints(&report, "old-account-removed")
            .iter()
            .all(|h| h.contains("commit the tree")),
        "{report:#}"
    );
    assert!(text.contains("phase `retiring`"), "{text}");
    commit("rotation: retire the old accounts");
    let (code, report) = rotate(lab);
    assert_eq!(code, 0, "{report:#}");
    assert!(report["now"].is_null(), "the rotation is done: {report:#}");
    assert_eq!(
        step_states(&report, "old-account-removed"),
        ["done", "done"],
        "{report:#}"
    );
    commit("rotation: done");
    let new_tokens: Vec<String> = [("studio", "pro"), ("pro", "studio")]
        .iter()
        .map(|(s, t)| kubeconfig_identity(&live_credentials(lab, s, t)).2)
        .collect();
    assert_eq!(
        new_tokens, next_tokens,
        "the links use the sealed next credentials"
    );

    // `secrets status` after the rotation: none in progress, each link on its next account.
    let (code, report, text) = status(lab, &tokens);
    assert_eq!((code, report["now"].as_str()), (0, None), "{report:#}");
    assert!(text.contains("no rotation in progress"), "{text}");
    assert!(
        text.contains("studio-to-pro: uses `linkerd-service-mirror-remote-access-studio-g1`"),
        "{text}"
    );
    for (old, new) in old_tokens.iter().zip(&new_tokens) {
        assert_ne!(old, new, "the link moved to the next account's token");
    }
    assert_eq!(mirror_uid(), before, "the mirror Service was never re-created");
    eprintln!(
        "link credential rotation through commits (SOPS, Flux): {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

fn rotate_trust_anchor(lab: &Lab, tree: &Path) {
    let started = Instant::now();
    let old_anchor = std::fs::read_to_string(lab.dir().join("certs/trust-anchor.crt")).expect("anchor");
    let (code, out, err) = lab.meshfleet(&["trust", "rotate", "start", "."]);
    assert_eq!(code, 0, "trust rotate start: {out}\n{err}");
    let mut phases = Vec::new();
    let render_seal_commit = |message: &str| {
        let (code, out, err) = lab.meshfleet(&["render", ".", "--out", "gitops"]);
        assert_eq!(code, 0, "render: {out}\n{err}");
        let (code, out) = lab.sync();
        assert_eq!(code, 0, "secrets sync --out: {out}");
        let commit = lab.env.commit(tree, message);
        let (took, _) = converge(lab, commit, || None);
        eprintln!("commit to green ({message}): {:.1}s", took.as_secs_f64());
    };
    for round in 0.. {
        assert!(round < 8, "the rotation did not end: phases {phases:?}");
        render_seal_commit(&format!("trust anchor rotation, step {round}"));
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut restarted = std::collections::BTreeSet::new();
        loop {
            let (code, stdout, stderr) = lab.meshfleet(&["-o", "json", "trust", "rotate", "status", "."]);
            let report: Value =
                serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
            if code == 0 {
                phases.push(report["phase"].as_str().unwrap_or_default().to_owned());
                break;
            }
            let blocking: Vec<&Value> = report["clusters"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| c["blocking"].as_array().into_iter().flatten())
                .collect();
            assert!(
                Instant::now() < deadline,
                "trust rotate status still blocks: {blocking:#?}"
            );
            // What `next` printed for `issuers` with cert-manager: make it re-issue the
            // issuer from the new anchor Flux applied (`cmctl renew`, or delete the Secret).
            for cluster in report["clusters"].as_array().into_iter().flatten() {
                let name = cluster["cluster"].as_str().unwrap_or_default();
                let reissue = cluster["blocking"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|b| b["id"] == "issuer-signed-by-new");
                if reissue && restarted.insert(format!("reissue {name}")) {
                    lab.k.run(
                        name,
                        &["-n", "linkerd", "delete", "secret", "linkerd-identity-issuer"],
                    );
                    eprintln!("$ kubectl --context {name} -n linkerd delete secret linkerd-identity-issuer");
                }
            }
            for command in blocking
                .iter()
                .flat_map(|b| b["restarts"].as_array().into_iter().flatten())
            {
                let command = command.as_str().unwrap_or_default();
                if !restarted.insert(command.to_owned()) {
                    continue;
                }
                let args: Vec<&str> = command.split_whitespace().collect();
                assert_eq!(&args[..2], ["kubectl", "--context"], "{command}");
                lab.k.run(args[2], &args[3..]);
                eprintln!("$ {command}");
            }
            std::thread::sleep(Duration::from_secs(3));
        }
        let (code, out, err) = lab.meshfleet(&["trust", "rotate", "next", "."]);
        assert_eq!(code, 0, "trust rotate next: {out}\n{err}");
        assert!(
            !err.contains("to Vault") && !err.contains("force-sync"),
            "no Vault or External Secrets step is asked for: {err}"
        );
        if err.contains("the rotation is over") {
            break;
        }
    }
    render_seal_commit("trust anchor rotation: done");
    eprintln!(
        "trust anchor rotation through commits (SOPS, Flux; {}): {:.1}s",
        phases.join(" -> "),
        started.elapsed().as_secs_f64()
    );
    let (code, out, err) = lab.meshfleet(&["trust", "verify", "."]);
    assert_eq!(code, 0, "trust verify after the rotation: {out}\n{err}");
    let anchor = std::fs::read_to_string(lab.dir().join("certs/trust-anchor.crt")).expect("anchor");
    assert_eq!(
        anchor.matches("BEGIN CERTIFICATE").count(),
        1,
        "only the new anchor is left"
    );
    assert_ne!(anchor.trim(), old_anchor.trim(), "a new anchor");
    for cluster in CLUSTERS {
        let roots = lab
            .k
            .get(cluster, "configmap", "linkerd", "linkerd-identity-trust-roots")
            .expect("trust roots");
        assert_eq!(
            roots["data"]["ca-bundle.crt"].as_str().unwrap_or_default().trim(),
            anchor.trim(),
            "{cluster} trusts the new anchor only"
        );
        let sealed = sops_decrypt(
            &lab.key(cluster),
            &tree.join(format!("{cluster}/identity/trust-anchor.sops.yaml")),
        );
        let crt = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            sealed["data"]["tls.crt"].as_str().expect("tls.crt"),
        )
        .expect("base64");
        assert_eq!(
            String::from_utf8_lossy(&crt).trim(),
            anchor.trim(),
            "{cluster}: the tree seals the new anchor"
        );
    }
}
