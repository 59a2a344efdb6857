//! The rendered Flux tree reconciled end to end by real Flux, the real External Secrets
//! Operator and real cert-manager (`testenv/run gitops`, see testenv/README.md), on two
//! test clusters with KWOK and Linkerd's real controllers.
//!
//! The homelab example with Vault as its secrets backend (its Vault variant,
//! tests/fixtures/homelab-vault; the example itself moved to SOPS, proven in
//! gitops_flux_sops.rs) as a user runs it: `certs init`, `render`, `secrets sync`, commit
//! to git; Flux installs it in `dependsOn` order; ESO builds the identity and link
//! credentials Secrets from OpenBao, logging in with Vault's Kubernetes auth; cert-manager
//! issues `linkerd-identity-issuer` from the anchor; the service mirror mirrors an exported
//! service; `meshfleet check` is green. Then a version bump, and a bad commit that
//! `check` and Flux both report and that a revert heals.
//!
//! Test-time substitutions, and why. In the fleet file (as in real_linkerd.rs):
//! `apiServer` is `https://kubernetes.default.svc:<port>` (a name the test API servers'
//! certificates carry, reached through the environment's cluster network), gateway
//! addresses are TEST-NET IPs, the Vault server is the environment's OpenBao, the
//! kubeconfig contexts are the environment's (`studio`, not `kind-studio`). In the
//! committed tree (`testenv/run commit`, the only ones): the HelmRepository URL is the
//! environment's chart repository and the Gateway API GitRepository URL its local copy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::kubectl::{self, Kubectl, name, ready};
use crate::real_linkerd::scenario::kubeconfig_identity;
use crate::support::{HOMELAB_VAULT, example_fleet_text, meshfleet, texts};
use crate::testenv::{self, PrivateEnv};

/// The clusters of the homelab example.
const CLUSTERS: [&str; 2] = ["studio", "pro"];

/// How long Flux may take to make a commit green (cold caches on 2 shared cores).
const CONVERGE: Duration = Duration::from_secs(900);

/// The homelab example's fleet file with Vault (its Vault variant,
/// tests/fixtures/homelab-vault) and the environment's addresses.
fn homelab_fleet(env: &PrivateEnv, version: &str) -> String {
    let text = example_fleet_text(HOMELAB_VAULT);
    let port = |n: &str| env.server(n).rsplit(':').next().expect("port").to_owned();
    let mut text = text
        .replace(
            "https://studio.vpn.example:6443",
            &format!("https://kubernetes.default.svc:{}", port("studio")),
        )
        .replace(
            "https://pro.vpn.example:6443",
            &format!("https://kubernetes.default.svc:{}", port("pro")),
        )
        .replace("addresses: [studio.vpn.example]", "addresses: [192.0.2.11]")
        .replace("addresses: [pro.vpn.example]", "addresses: [192.0.2.12]")
        .replace("https://vault.homelab.example:8200", env.vault_addr())
        .replace("context: kind-studio", "context: studio")
        .replace("context: kind-pro", "context: pro");
    assert!(text.contains("version: 2025.4.4"), "the example pins 2025.4.4");
    text = text.replace("version: 2025.4.4", &format!("version: {version}"));
    // The example's anchor is replaced by `certs init` (its key is not in git).
    text.replace(
        "trustAnchor: certs/trust-anchor.crt",
        "trustAnchor: certs/anchor.crt",
    )
}

/// One environment running the GitOps engine, and the fleet a user keeps in git.
struct GitOps {
    env: PrivateEnv,
    fleet: tempfile::TempDir,
}

impl GitOps {
    fn start() -> Self {
        let env = testenv::private(&CLUSTERS);
        let took = env.gitops();
        eprintln!("testenv gitops: start-up {:.1}s", took.as_secs_f64());
        let fleet = tempfile::tempdir().expect("tempdir");
        let s = Self { env, fleet };
        s.write_fleet("2025.4.4");
        let (code, out, err) = s.meshfleet(&["certs", "init", "."]);
        assert_eq!(code, 0, "certs init: {out}\n{err}");
        s
    }

    fn dir(&self) -> &Path {
        self.fleet.path()
    }

    fn tree(&self) -> PathBuf {
        self.dir().join("gitops")
    }

    fn write_fleet(&self, version: &str) {
        std::fs::write(self.dir().join("fleet.yaml"), homelab_fleet(&self.env, version)).expect("fleet");
    }

    fn meshfleet(&self, args: &[&str]) -> (i32, String, String) {
        let output = meshfleet(self.dir())
            .args(args)
            .arg("--kubeconfig")
            .arg(self.env.kubeconfig())
            .env("VAULT_ADDR", self.env.vault_addr())
            .env(
                "VAULT_TOKEN",
                secrecy::ExposeSecret::expose_secret(self.env.vault_token()),
            )
            .output()
            .expect("run meshfleet");
        let (stdout, stderr) = texts(&output);
        (output.status.code().unwrap_or(-1), stdout, stderr)
    }

    fn render(&self) {
        let (code, out, err) = self.meshfleet(&["render", ".", "--out", "gitops"]);
        assert_eq!(code, 0, "render: {out}\n{err}");
        let (code, out, err) = self.meshfleet(&["render", ".", "--out", "gitops", "--check"]);
        assert_eq!(code, 0, "render --check right after render: {out}\n{err}");
    }

    fn kubectl(&self, cluster: &str, args: &[&str]) -> String {
        Kubectl::new(&self.env).run(cluster, args)
    }

    fn items(&self, cluster: &str, kind: &str) -> Vec<Value> {
        Kubectl::new(&self.env).items(cluster, kind)
    }

    fn get(&self, cluster: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        Kubectl::new(&self.env).get(cluster, kind, namespace, name)
    }

    /// The data of a KV v2 entry in the environment's OpenBao (mount `secret`); compared,
    /// never printed.
    fn vault_kv(&self, key: &str) -> Value {
        let url = format!("{}/v1/secret/data/{key}", self.env.vault_addr());
        let token = secrecy::ExposeSecret::expose_secret(self.env.vault_token()).to_owned();
        let body: Value = testenv::block_on(async move {
            reqwest::Client::new()
                .get(url)
                .header("X-Vault-Token", token)
                .send()
                .await
                .expect("OpenBao answers")
                .json()
                .await
                .expect("json")
        });
        body["data"]["data"].clone()
    }

    /// `secrets sync` until it succeeds: link credentials need the targets' remote-access
    /// accounts, which exist once Flux installed the multicluster chart.
    fn secrets_sync(&self, deadline: Instant) {
        loop {
            let (code, out, err) = self.meshfleet(&["secrets", "sync", "."]);
            if code == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "secrets sync: {code}\n{out}\n{err}");
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    /// The ids of the checks that are not ok, per cluster.
    fn failing_checks(&self) -> BTreeMap<String, Vec<String>> {
        let (_, stdout, stderr) = self.meshfleet(&["check", ".", "-o", "json"]);
        let report: Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
        report["clusters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let ids = c["checks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|k| k["status"] != "ok")
                    .filter_map(|k| k["id"].as_str().map(str::to_owned))
                    .collect::<BTreeSet<_>>();
                (
                    c["name"].as_str().unwrap_or_default().to_owned(),
                    ids.into_iter().collect(),
                )
            })
            .collect()
    }
}

/// What stops a cluster from being green at `commit`: Kustomizations not Ready at that
/// revision, HelmReleases not Ready at `version`. Empty when green.
fn not_converged(
    g: &GitOps,
    cluster: &str,
    commit: &str,
    version: &str,
    ready_now: &mut Vec<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    let kustomizations = g.items(cluster, "kustomizations.kustomize.toolkit.fluxcd.io");
    if kustomizations.len() < 2 {
        out.push("no Kustomizations yet".to_owned());
    }
    for k in &kustomizations {
        let (status, reason, message) = ready(k);
        let revision = k["status"]["lastAppliedRevision"].as_str().unwrap_or_default();
        let ours = k["spec"]["sourceRef"]["name"] == "flux-system";
        if status != "True" || (ours && !revision.ends_with(commit)) {
            out.push(format!(
                "Kustomization {} {status} {reason} at {revision}: {message}",
                name(k)
            ));
        } else {
            ready_now.push(format!(
                "{cluster}/{}",
                k["metadata"]["name"].as_str().unwrap_or_default()
            ));
        }
    }
    let releases = g.items(cluster, "helmreleases.helm.toolkit.fluxcd.io");
    if releases.is_empty() {
        out.push("no HelmReleases yet".to_owned());
    }
    for r in &releases {
        let (status, reason, message) = ready(r);
        let installed = r["status"]["history"][0]["chartVersion"]
            .as_str()
            .unwrap_or_default();
        if status != "True" || installed != version {
            out.push(format!(
                "HelmRelease {} {status} {reason} at {installed}: {message}",
                name(r)
            ));
        }
    }
    out
}

/// Wait until both clusters are green at `commit`, running `secrets sync` as a user does
/// once the multicluster charts are installed, and nudging ESO (`force-sync`) after it.
///
/// Also returns, per `cluster/kustomization`, the poll at which it was first seen Ready at
/// the commit: the order Flux brought them up in. (A Ready condition's transition time is
/// not that: every later reconcile passes through Unknown and moves it.)
fn converge(g: &GitOps, commit: &str, version: &str) -> (Duration, BTreeMap<String, u32>) {
    let started = Instant::now();
    let deadline = started + CONVERGE;
    let mut synced = false;
    let mut first_ready = BTreeMap::new();
    for poll in 0.. {
        let mut ready_now = Vec::new();
        let pending: Vec<String> = CLUSTERS
            .iter()
            .flat_map(|c| {
                not_converged(g, c, commit, version, &mut ready_now)
                    .into_iter()
                    .map(move |p| format!("{c}: {p}"))
            })
            .collect();
        for k in ready_now {
            first_ready.entry(k).or_insert(poll);
        }
        if pending.is_empty() {
            return (started.elapsed(), first_ready);
        }
        publish_gateway_addresses(g);
        let multicluster_installed = CLUSTERS.iter().all(|c| {
            g.get(c, "helmrelease", "flux-system", "homelab-linkerd-multicluster")
                .is_some_and(|r| ready(&r).0 == "True")
        });
        if multicluster_installed && !synced {
            g.secrets_sync(deadline);
            for c in CLUSTERS {
                g.kubectl(
                    c,
                    &[
                        "annotate",
                        "externalsecrets",
                        "-A",
                        "--all",
                        "--overwrite",
                        &format!("force-sync={}", started.elapsed().as_millis()),
                    ],
                );
            }
            synced = true;
        }
        assert!(
            Instant::now() < deadline,
            "Flux did not converge on {commit} within {CONVERGE:?}:\n{}",
            pending.join("\n")
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    unreachable!("the loop above returns or panics")
}

/// The homelab's gateway addresses (TEST-NET), as a cloud would publish them.
fn publish_gateway_addresses(g: &GitOps) {
    kubectl::publish_gateway_addresses(
        &Kubectl::new(&g.env),
        &[("studio", "192.0.2.11"), ("pro", "192.0.2.12")],
    );
}

/// Every Kustomization became Ready after the ones it depends on (`first_ready` from
/// [`converge`]; two seen in the same poll count as in order).
fn assert_dependency_order(g: &GitOps, cluster: &str, first_ready: &BTreeMap<String, u32>) {
    let kustomizations = g.items(cluster, "kustomizations.kustomize.toolkit.fluxcd.io");
    let at = |name: &str| {
        *first_ready
            .get(&format!("{cluster}/{name}"))
            .unwrap_or_else(|| panic!("{cluster}: {name} was never seen Ready"))
    };
    let mut edges = 0;
    for k in &kustomizations {
        let me = k["metadata"]["name"].as_str().unwrap_or_default();
        for dep in k["spec"]["dependsOn"].as_array().into_iter().flatten() {
            let dep = dep["name"].as_str().unwrap_or_default();
            assert!(
                at(dep) <= at(me),
                "{cluster}: {me} was Ready at poll {} before its dependency {dep} (poll {})",
                at(me),
                at(dep)
            );
            edges += 1;
        }
    }
    assert!(
        edges >= 8,
        "{cluster}: only {edges} dependsOn edges were rendered"
    );
    let mut order: Vec<(u32, &str)> = first_ready
        .iter()
        .filter_map(|(k, poll)| k.strip_prefix(&format!("{cluster}/")).map(|n| (*poll, n)))
        .collect();
    order.sort_unstable();
    eprintln!("{cluster}: Kustomizations Ready in the order (poll, name) {order:?}");
}

/// The credentials Secrets of each link and the identity issuer: built by the real
/// operators from what `secrets sync` and `certs init` wrote.
fn assert_secrets_from_the_operators(g: &GitOps) {
    use base64::Engine as _;
    let anchor = std::fs::read_to_string(g.dir().join("certs/anchor.crt")).expect("anchor");
    for (source, target) in [("studio", "pro"), ("pro", "studio")] {
        let mut identities = Vec::new();
        for ns in ["linkerd-multicluster", "linkerd"] {
            let name = format!("cluster-credentials-{target}");
            let secret = g
                .get(source, "secret", ns, &name)
                .unwrap_or_else(|| panic!("{source}: no Secret {ns}/{name}"));
            assert_eq!(
                secret["type"], "mirror.linkerd.io/remote-kubeconfig",
                "{source} {ns}/{name}"
            );
            let owner = &secret["metadata"]["ownerReferences"][0];
            assert_eq!(owner["kind"], "ExternalSecret", "{source} {ns}/{name} is ESO's");
            let es = g
                .get(source, "externalsecret", ns, &name)
                .expect("ExternalSecret");
            assert_eq!(
                ready(&es).0,
                "True",
                "{source} ExternalSecret {ns}/{name}: {:?}",
                ready(&es)
            );
            identities.push(kubeconfig_identity(&secret));
        }
        assert_eq!(
            identities[0], identities[1],
            "{source}: both credentials Secrets hold one kubeconfig"
        );
        // ... the one `secrets sync` wrote to Vault for this link.
        let stored = g.vault_kv(&format!("linkerd-multicluster/credentials/{source}-to-{target}"));
        let from_vault = json!({"data": {"kubeconfig": base64::engine::general_purpose::STANDARD
            .encode(stored["kubeconfig"].as_str().expect("kubeconfig in Vault"))}});
        assert_eq!(
            identities[0],
            kubeconfig_identity(&from_vault),
            "{source}: ESO copied Vault's kubeconfig"
        );
        let (server, _, _) = &identities[0];
        assert!(
            server.ends_with(g.env.server(target).rsplit(':').next().expect("port")),
            "{source}'s credentials reach {target}: {server}"
        );
    }
    for cluster in CLUSTERS {
        let cert = g
            .get(cluster, "certificate", "linkerd", "linkerd-identity-issuer")
            .expect("Certificate");
        assert_eq!(
            ready(&cert).0,
            "True",
            "{cluster}: issuer Certificate {:?}",
            ready(&cert)
        );
        let secret = g
            .get(cluster, "secret", "linkerd", "linkerd-identity-issuer")
            .expect("issuer Secret");
        assert_eq!(
            secret["metadata"]["annotations"]["cert-manager.io/issuer-name"], "linkerd-trust-anchor",
            "{cluster}: issued by cert-manager's CA issuer"
        );
        let ca = base64::engine::general_purpose::STANDARD
            .decode(secret["data"]["ca.crt"].as_str().expect("ca.crt"))
            .expect("base64");
        assert_eq!(
            String::from_utf8_lossy(&ca).trim(),
            anchor.trim(),
            "{cluster}: the issuer chains to the fleet's anchor"
        );
    }
}

/// A Service exported on pro is mirrored on studio by the real service mirror.
fn assert_mirrored(g: &GitOps) {
    kubectl::assert_mirrored(&Kubectl::new(&g.env), "studio", "pro");
}

#[test]
fn homelab_reconciled_by_real_flux_eso_and_cert_manager() {
    let g = GitOps::start();
    g.render();
    // The anchor reaches Vault now; link credentials once the targets run the chart.
    let (code, out, err) = g.meshfleet(&["secrets", "sync", "."]);
    assert!(code == 0 || code == 2, "secrets sync: {code}\n{out}\n{err}");

    let commit = g.env.commit(&g.tree(), "homelab at 2025.4.4");
    let (took, first_ready) = converge(&g, &commit, "2025.4.4");
    eprintln!("commit to green (install): {:.1}s", took.as_secs_f64());
    for c in CLUSTERS {
        assert_dependency_order(&g, c, &first_ready);
    }
    assert_secrets_from_the_operators(&g);
    assert_mirrored(&g);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    loop {
        let failing = g.failing_checks();
        if failing.values().all(Vec::is_empty) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "meshfleet check is not green: {failing:?}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    eprintln!(
        "commit to green `check`: {:.1}s",
        (took + started.elapsed()).as_secs_f64()
    );
    import_reads_flux(&g);

    // A version bump reconciles to the new version; `render --check` is clean after it.
    g.write_fleet("2026.8.3");
    let (code, _, _) = g.meshfleet(&["render", ".", "--out", "gitops", "--check"]);
    assert_eq!(code, 1, "render --check sees the bump before it is rendered");
    g.render();
    let commit = g.env.commit(&g.tree(), "homelab at 2026.8.3");
    let (took, _) = converge(&g, &commit, "2026.8.3");
    eprintln!(
        "commit to green (upgrade to 2026.8.3): {:.1}s",
        took.as_secs_f64()
    );
    let failing = g.failing_checks();
    assert!(
        failing.values().all(Vec::is_empty),
        "check after the upgrade: {failing:?}"
    );

    // A bad value committed by hand: studio's Link dials a wrong gateway, and a chart
    // version that does not exist. `check` and Flux both say so; the revert heals.
    let good = g.tree();
    let bad = tempfile::tempdir().expect("tempdir");
    copy_dir(&good, bad.path());
    edit(
        &bad.path().join("studio/links/link-pro.yaml"),
        "gatewayAddress: \"192.0.2.12\"",
        "gatewayAddress: \"192.0.2.99\"",
    );
    edit(
        &bad.path().join("studio/linkerd-viz/helm-release.yaml"),
        "version: \"2026.8.3\"",
        "version: \"2099.1.1\"",
    );
    let (code, _, _) = g.meshfleet(&[
        "render",
        ".",
        "--any-dir",
        "--out",
        bad.path().to_str().expect("utf-8"),
        "--check",
    ]);
    assert_eq!(code, 1, "render --check reports the hand edit");
    let bad_commit = g.env.commit(bad.path(), "a bad value");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let link = g
            .get("studio", "link", "linkerd-multicluster", "pro")
            .expect("Link");
        let viz = g
            .get("studio", "helmrelease", "flux-system", "homelab-linkerd-viz")
            .expect("viz");
        let failing = g.failing_checks();
        let applied = link["spec"]["gatewayAddress"] == "192.0.2.99";
        let flux_says = ready(&viz).0 == "False";
        if applied && flux_says && failing["studio"].iter().any(|id| id == "link-drift") {
            eprintln!(
                "bad commit {bad_commit}: check fails {failing:?}; Flux: {:?}",
                ready(&viz)
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bad value was not reported: applied={applied} flux={:?} check={failing:?}",
            ready(&viz)
        );
        std::thread::sleep(Duration::from_secs(3));
    }
    let commit = g.env.commit(&good, "revert the bad value");
    let (took, _) = converge(&g, &commit, "2026.8.3");
    eprintln!("commit to green (revert): {:.1}s", took.as_secs_f64());
    let failing = g.failing_checks();
    assert!(
        failing.values().all(Vec::is_empty),
        "check after the revert: {failing:?}"
    );
    let (code, out, err) = g.meshfleet(&["render", ".", "--out", "gitops", "--check"]);
    assert_eq!(code, 0, "render --check after the revert: {out}\n{err}");
}

/// `meshfleet import` of the clusters Flux reconciles reads the engine from Flux's own
/// objects (its controllers run as processes here, see testenv/lib/gitops.py): no guess.
fn import_reads_flux(g: &GitOps) {
    let out = tempfile::tempdir().expect("tempdir");
    let fleet = out.path().join("fleet.yaml");
    let mut args = vec!["import", "--out", fleet.to_str().expect("utf-8"), "-o", "json"];
    for c in CLUSTERS {
        args.extend(["--context", c]);
    }
    let (code, stdout, stderr) = g.meshfleet(&args);
    assert!(code == 0 || code == 1, "import: {code}\n{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("import -o json");
    let text = std::fs::read_to_string(&fleet).expect("imported fleet");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("engine: flux  # read: ")),
        "{text}"
    );
    assert!(
        !report["findings"].as_array().expect("findings").iter().any(|f| {
            let m = f["message"].as_str().unwrap_or_default();
            m.contains("Flux") || m.contains("Argo CD")
        }),
        "{report:#}"
    );
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            std::fs::create_dir_all(&dest).expect("mkdir");
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).expect("copy");
        }
    }
}

pub(crate) fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{} has no `{from}`", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).expect("write");
}
