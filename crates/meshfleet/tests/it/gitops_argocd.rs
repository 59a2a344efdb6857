//! The rendered Argo CD tree reconciled end to end by a real Argo CD (its
//! application-controller and repo-server, `testenv/run gitops --engine argocd`, see
//! testenv/README.md and testenv/lib/argocd.py), the real External Secrets Operator and
//! cert-manager, on three test clusters with KWOK and Linkerd's real controllers.
//!
//! Seed 003's setup, the hub-spoke example, as its user runs it: one Argo CD on the hub
//! `in-cluster-local` managing the hub and the spokes `production` and `nonproduction`,
//! each registered as `argocd cluster add` registers it (a cluster Secret named after
//! it); `certs init`, `render`, `secrets sync`, commit, `kubectl apply` of each cluster's
//! app-of-apps on the hub. Argo CD brings the Applications up wave by wave; ESO builds
//! the issuers and link credentials from OpenBao; the spokes' service mirrors mirror a
//! Service exported on the hub; `meshfleet check` is green; a minute later nothing is
//! OutOfSync and nothing was synced again. Then a version bump 2025.4.4 -> 2026.8.3 (green
//! and stable again), and a bad commit that `check` and Argo CD both report and that a
//! revert heals.
//!
//! Test-time substitutions, and why. In the fleet file: the hub's `apiServer` is
//! `https://kubernetes.default.svc:<port>` (a name the test API servers' certificates
//! carry, reached through the environment's cluster network), its gateway address a
//! TEST-NET IP, the Vault server the environment's OpenBao, the repository URL the
//! environment's `fleet.git` (the fleet file names the repository Argo CD clones), and
//! the anchor the one `certs init` makes. In the committed tree (`testenv/run commit`,
//! the only ones, the same two as for Flux): the chart Applications' `repoURL` is the
//! environment's chart repository and the Gateway API Application's its local copy.
//! OpenBao gets the KV v2 mount `secrets-k8` the fleet names, as the user's Vault has.
//! The fleet leaves viz out (`viz: false`): its tap APIService cannot become Available
//! here, and Argo CD (rightly) holds every later wave until it is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::gitops_flux::{copy_dir, edit};
use crate::real_linkerd::scenario::kubeconfig_identity;
use crate::support::{meshfleet, repo_root, texts};
use crate::testenv::{self, PrivateEnv};

/// The clusters of the hub-spoke example; Argo CD runs on the hub.
const CLUSTERS: [&str; 3] = ["in-cluster-local", "production", "nonproduction"];
const HUB: &str = "in-cluster-local";
const SPOKES: [&str; 2] = ["production", "nonproduction"];
const NS: &str = "argocd";

/// How long Argo CD may take to make a commit green (cold caches on 2 shared cores,
/// three clusters, sync retries backing off from 30 s).
const CONVERGE: Duration = Duration::from_secs(1500);

/// The hub-spoke example's fleet file with the environment's addresses.
fn hub_spoke_fleet(env: &PrivateEnv, version: &str) -> String {
    let text = std::fs::read_to_string(repo_root().join("examples/hub-spoke/fleet.yaml")).expect("example");
    let port = env.server(HUB).rsplit(':').next().expect("port").to_owned();
    let replace = |text: String, from: &str, to: &str| {
        assert!(text.contains(from), "the example has `{from}`");
        text.replace(from, to)
    };
    let mut text = replace(
        text,
        "https://tfx-internal.gerega.net:6443",
        &format!("https://kubernetes.default.svc:{port}"),
    );
    text = replace(
        text,
        "addresses: [tfx-internal.gerega.net]",
        "addresses: [192.0.2.11]",
    );
    text = replace(text, "https://vault.gerega.net:8200", env.vault_addr());
    text = replace(
        text,
        "https://github.com/example/cluster-tools.git",
        &format!("{}/git/fleet.git", env.gitops_url()),
    );
    text = replace(text, "version: 2025.4.4", &format!("version: {version}"));
    // viz's tap API cannot be served here (no tap binary; the API server cannot reach
    // pods), so its APIService never becomes Available: Argo CD rightly keeps the viz
    // Application Progressing, and with it every later wave. The test leaves viz out.
    text = replace(
        text,
        "    gatewayAPI: v1.2.1\n",
        "    gatewayAPI: v1.2.1\n    viz: false\n",
    );
    // The example's anchor is replaced by `certs init` (its key is not in git).
    replace(
        text,
        "trustAnchor: certs/trust-anchor.crt",
        "trustAnchor: certs/anchor.crt",
    )
}

/// One environment running Argo CD, and the fleet a user keeps in git.
struct ArgoCd {
    env: PrivateEnv,
    fleet: tempfile::TempDir,
}

impl ArgoCd {
    fn start() -> Self {
        let env = testenv::private(&CLUSTERS);
        let took = env.gitops_argocd(HUB);
        eprintln!(
            "testenv gitops --engine argocd: start-up {:.1}s",
            took.as_secs_f64()
        );
        let fleet = tempfile::tempdir().expect("tempdir");
        let s = Self { env, fleet };
        s.vault(
            "POST",
            "sys/mounts/secrets-k8",
            &json!({"type": "kv", "options": {"version": "2"}}),
        );
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
        std::fs::write(self.dir().join("fleet.yaml"), hub_spoke_fleet(&self.env, version)).expect("fleet");
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
        let output = std::process::Command::new(repo_root().join("testenv/bin/kubectl"))
            .arg("--kubeconfig")
            .arg(self.env.kubeconfig())
            .args(["--context", cluster])
            .args(args)
            .output()
            .expect("run kubectl");
        assert!(
            output.status.success(),
            "kubectl {args:?} on {cluster}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn get(&self, cluster: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let output = std::process::Command::new(repo_root().join("testenv/bin/kubectl"))
            .arg("--kubeconfig")
            .arg(self.env.kubeconfig())
            .args([
                "--context",
                cluster,
                "get",
                kind,
                "-n",
                namespace,
                name,
                "-o",
                "json",
            ])
            .output()
            .expect("run kubectl");
        output
            .status
            .success()
            .then(|| serde_json::from_slice(&output.stdout).expect("json"))
    }

    /// Argo CD's Applications on the hub, by name.
    fn applications(&self) -> BTreeMap<String, Value> {
        let out = self.kubectl(HUB, &["get", "applications.argoproj.io", "-n", NS, "-o", "json"]);
        let list: Value = serde_json::from_str(&out).expect("kubectl json");
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                (
                    a["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
                    a.clone(),
                )
            })
            .collect()
    }

    /// A call to the environment's OpenBao; its answer (never printed).
    fn vault(&self, method: &str, path: &str, body: &Value) -> Value {
        let url = format!("{}/v1/{path}", self.env.vault_addr());
        let token = secrecy::ExposeSecret::expose_secret(self.env.vault_token()).to_owned();
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let body = body.clone();
        testenv::block_on(async move {
            let mut req = reqwest::Client::new()
                .request(method.clone(), url)
                .header("X-Vault-Token", token);
            if method != reqwest::Method::GET {
                req = req.json(&body);
            }
            let resp = req.send().await.expect("OpenBao answers");
            let status = resp.status();
            let text = resp.text().await.expect("body");
            assert!(status.is_success(), "OpenBao {path}: {status}");
            serde_json::from_str(&text).unwrap_or(Value::Null)
        })
    }

    /// `secrets sync` until it succeeds: link credentials need the hub's remote-access
    /// accounts, which exist once Argo CD installed the hub's multicluster chart.
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

    /// `secrets sync`, then ESO's `force-sync` of every ExternalSecret on every cluster
    /// (the annotation's value `tag` makes each round a change).
    fn sync_and_force(&self, deadline: Instant, tag: &str) {
        self.secrets_sync(deadline);
        for c in CLUSTERS {
            self.kubectl(
                c,
                &[
                    "annotate",
                    "externalsecrets",
                    "-A",
                    "--all",
                    "--overwrite",
                    &format!("force-sync={tag}"),
                ],
            );
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

/// The Applications a commit of `tree` makes: the root of each cluster folder and the
/// children in its `apps/`, with the folder they belong to.
fn expected_applications(tree: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for cluster in CLUSTERS {
        let dir = tree.join(cluster);
        let mut files = vec![dir.join("app-of-apps.yaml")];
        for entry in std::fs::read_dir(dir.join("apps")).expect("apps/") {
            files.push(entry.expect("entry").path());
        }
        for f in files {
            let text = std::fs::read_to_string(&f).expect("read");
            for doc in serde_saphyr::from_multiple::<Value>(&text).expect("yaml") {
                if doc["kind"] == "Application" {
                    let name = doc["metadata"]["name"].as_str().expect("name").to_owned();
                    out.insert(name, cluster.to_owned());
                }
            }
        }
    }
    out
}

fn wave(app: &Value) -> i64 {
    app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
        .as_str()
        .map_or(0, |w| w.parse().expect("wave"))
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// What stops the Applications from being green at `commit`: missing, not Synced to the
/// commit (or, for a chart, to `version`), not Healthy. Empty when green.
fn not_converged(
    apps: &BTreeMap<String, Value>,
    expected: &BTreeMap<String, String>,
    fleet_repo: &str,
    commit: &str,
    version: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for name in expected.keys() {
        let Some(app) = apps.get(name) else {
            out.push(format!("{name}: not created yet"));
            continue;
        };
        let source = &app["spec"]["source"];
        let sync = &app["status"]["sync"];
        let health = text(&app["status"]["health"]["status"]);
        let revision = text(&sync["revision"]);
        let want = if source["chart"].is_string() {
            Some(version)
        } else if source["repoURL"] == fleet_repo {
            Some(commit)
        } else {
            None
        };
        let operation = &app["status"]["operationState"];
        let running = operation["phase"] == "Running";
        // A chart's revision is its version, the same before and after a commit that
        // changed its values: only a comparison with the Application's current source
        // (which the root may just have updated) counts.
        let stale = source["chart"].is_string() && sync["comparedTo"]["source"] != *source;
        if running
            || stale
            || sync["status"] != "Synced"
            || health != "Healthy"
            || want.is_some_and(|w| revision != w)
        {
            out.push(format!(
                "{name}: {} {health} at {revision}; last operation {} {}",
                text(&sync["status"]),
                text(&operation["phase"]),
                text(&operation["message"]),
            ));
        }
    }
    out
}

/// Wait until every Application is Synced and Healthy at `commit`, running `secrets
/// sync` as a user does once the hub runs the multicluster chart, and nudging ESO
/// (`force-sync`) after it.
/// Per Application, the poll at which it was first seen to exist and first seen Healthy.
type Seen = BTreeMap<String, (Option<u32>, Option<u32>)>;

fn converge(g: &ArgoCd, commit: &str, version: &str) -> (Duration, Seen) {
    let started = Instant::now();
    let deadline = started + CONVERGE;
    let expected = expected_applications(&g.tree());
    let fleet_repo = format!("{}/git/fleet.git", g.env.gitops_url());
    let hub_multicluster = "hub-spoke-in-cluster-local-linkerd-multicluster";
    let mut synced = false;
    let mut last_report = Instant::now();
    let mut seen = Seen::new();
    for poll in 0.. {
        let apps = g.applications();
        for (name, app) in &apps {
            let entry = seen.entry(name.clone()).or_default();
            entry.0.get_or_insert(poll);
            if app["status"]["health"]["status"] == "Healthy" {
                entry.1.get_or_insert(poll);
            }
        }
        let pending = not_converged(&apps, &expected, &fleet_repo, commit, version);
        if pending.is_empty() {
            return (started.elapsed(), seen);
        }
        if !synced
            && apps
                .get(hub_multicluster)
                .is_some_and(|a| a["status"]["sync"]["status"] == "Synced")
        {
            g.sync_and_force(deadline, &started.elapsed().as_millis().to_string());
            synced = true;
        }
        if last_report.elapsed() > Duration::from_secs(60) {
            eprintln!(
                "{:.0}s, waiting for:\n  {}",
                started.elapsed().as_secs_f64(),
                pending.join("\n  ")
            );
            last_report = Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "Argo CD did not converge on {commit} within {CONVERGE:?}:\n{}",
            pending.join("\n")
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    unreachable!("the loop above returns or panics")
}

/// Argo CD brought the waves up in order: no Application was seen before every
/// Application of the earlier waves of its cluster had been seen Healthy (`seen` from
/// [`converge`], polled every 2 s; seen in the same poll counts as in order), and each
/// one's operation history ends with a sync to what it was compared with.
fn assert_wave_order(apps: &BTreeMap<String, Value>, expected: &BTreeMap<String, String>, seen: &Seen) {
    for cluster in CLUSTERS {
        let mut waves: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
        for (name, folder) in expected {
            if folder != cluster || name == &format!("hub-spoke-{cluster}") {
                continue;
            }
            let app = &apps[name];
            let history = app["status"]["history"].as_array().expect("operation history");
            let last = history.last().expect("a sync in the operation history");
            assert_eq!(
                last["revision"], app["status"]["sync"]["revision"],
                "{name}: the last sync Argo CD recorded is of the revision it compares with"
            );
            waves.entry(wave(app)).or_default().push(name);
        }
        assert!(waves.len() >= 4, "{cluster}: only the waves {:?}", waves.keys());
        let at = |n: &str| seen.get(n).copied().unwrap_or_default();
        for (w, members) in &waves {
            for (earlier, before) in waves.range(..w) {
                for x in members {
                    for y in before {
                        let created = at(x).0.expect("seen");
                        let healthy = at(y).1.unwrap_or_else(|| panic!("{y} was never seen Healthy"));
                        assert!(
                            healthy <= created,
                            "{cluster}: {x} (wave {w}) existed at poll {created}, before {y} (wave {earlier}) \
                             was Healthy (poll {healthy})"
                        );
                    }
                }
            }
        }
        let order: Vec<_> = waves
            .iter()
            .map(|(w, m)| (*w, m.iter().map(|n| (*n, at(n))).collect::<Vec<_>>()))
            .collect();
        eprintln!(
            "{cluster}: waves (wave, [(Application, (poll first seen, poll first Healthy))]) {order:?}"
        );
    }
}

/// Argo CD compared each chart Application against the chart at the fleet's version and
/// meshfleet's values, exactly as rendered (its own `status.sync.comparedTo`), and the
/// objects on the clusters are that chart's.
fn assert_charts(g: &ArgoCd, apps: &BTreeMap<String, Value>, version: &str) {
    let committed = g.env.dir().join("fleet-worktree/gitops");
    let expected = expected_applications(&committed);
    let mut charts = 0;
    for (name, folder) in &expected {
        let path = committed.join(folder).join("apps");
        let rendered = std::fs::read_dir(&path)
            .expect("apps/")
            .flat_map(|e| {
                let text = std::fs::read_to_string(e.expect("entry").path()).expect("read");
                serde_saphyr::from_multiple::<Value>(&text).expect("yaml")
            })
            .find(|d| d["metadata"]["name"] == name.as_str());
        let Some(rendered) = rendered else { continue };
        let source = &rendered["spec"]["source"];
        if !source["chart"].is_string() {
            continue;
        }
        charts += 1;
        let compared = &apps[name]["status"]["sync"]["comparedTo"]["source"];
        assert_eq!(
            compared, source,
            "{name}: Argo CD compared against the rendered source"
        );
        assert_eq!(source["targetRevision"], version, "{name}");
    }
    assert_eq!(charts, 3 * 3, "three charts per cluster (viz left out)");
    let anchor = std::fs::read_to_string(g.dir().join("certs/anchor.crt")).expect("anchor");
    for cluster in CLUSTERS {
        let destination = g
            .get(cluster, "deployment", "linkerd", "linkerd-destination")
            .expect("linkerd-destination");
        // The chart of `version` runs Linkerd's images of that release (edge-YY.M.N).
        let tag = format!(":edge-{}", version.strip_prefix("20").expect("20YY.M.N"));
        let images: Vec<&str> = destination["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["image"].as_str())
            .collect();
        assert!(
            images.iter().any(|i| i.ends_with(&tag)),
            "{cluster}: linkerd-destination runs {images:?}, not the chart of {version}"
        );
        let roots = g
            .get(cluster, "configmap", "linkerd", "linkerd-identity-trust-roots")
            .expect("trust roots");
        assert_eq!(
            text(&roots["data"]["ca-bundle.crt"]).trim(),
            anchor.trim(),
            "{cluster}: the control plane trusts the fleet's anchor"
        );
    }
    let gateway = g
        .get(HUB, "service", "linkerd-multicluster", "linkerd-gateway")
        .expect("the hub's gateway");
    assert_eq!(gateway["spec"]["type"], "NodePort");
    let node_ports: BTreeSet<i64> = gateway["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["nodePort"].as_i64())
        .collect();
    assert_eq!(
        node_ports,
        BTreeSet::from([30143, 30191]),
        "the hub gateway's NodePorts"
    );
}

/// Both credentials Secrets of each spoke's link to the hub: built by the real ESO from
/// what `secrets sync` wrote to Vault.
fn assert_credentials(g: &ArgoCd) {
    use base64::Engine as _;
    for source in SPOKES {
        let mut identities = Vec::new();
        for ns in ["linkerd-multicluster", "linkerd"] {
            let name = "cluster-credentials-internal";
            let secret = g
                .get(source, "secret", ns, name)
                .unwrap_or_else(|| panic!("{source}: no Secret {ns}/{name}"));
            assert_eq!(
                secret["type"], "mirror.linkerd.io/remote-kubeconfig",
                "{source} {ns}/{name}"
            );
            let owner = &secret["metadata"]["ownerReferences"][0];
            assert_eq!(owner["kind"], "ExternalSecret", "{source} {ns}/{name} is ESO's");
            identities.push(kubeconfig_identity(&secret));
        }
        assert_eq!(
            identities[0], identities[1],
            "{source}: both Secrets hold one kubeconfig"
        );
        let stored = g.vault(
            "GET",
            &format!("secrets-k8/data/linkerd-multicluster/credentials/{source}-to-{HUB}"),
            &Value::Null,
        );
        let kubeconfig = stored["data"]["data"]["kubeconfig"]
            .as_str()
            .expect("kubeconfig in Vault");
        let from_vault =
            json!({"data": {"kubeconfig": base64::engine::general_purpose::STANDARD.encode(kubeconfig)}});
        assert_eq!(
            identities[0],
            kubeconfig_identity(&from_vault),
            "{source}: ESO copied Vault's kubeconfig"
        );
        let (server, _, _) = &identities[0];
        assert!(
            server.ends_with(g.env.server(HUB).rsplit(':').next().expect("port")),
            "{source}'s credentials reach the hub: {server}"
        );
    }
}

/// A Service exported on the hub is mirrored on both spokes by the real service mirror.
fn assert_mirrored(g: &ArgoCd) {
    for c in CLUSTERS {
        g.kubectl(c, &["create", "namespace", "apps"]);
    }
    g.kubectl(
        HUB,
        &[
            "create",
            "deployment",
            "web",
            "-n",
            "apps",
            "--image=registry.example/web:1",
        ],
    );
    g.kubectl(HUB, &["expose", "deployment", "web", "-n", "apps", "--port=8080"]);
    g.kubectl(
        HUB,
        &[
            "label",
            "service",
            "web",
            "-n",
            "apps",
            "mirror.linkerd.io/exported=true",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(180);
    for spoke in SPOKES {
        while g.get(spoke, "service", "apps", "web-internal").is_none() {
            assert!(
                Instant::now() < deadline,
                "{spoke} never mirrored apps/web from the hub"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// The generation of each Deployment whose pod template carries a checksum the chart
/// computes over generated certificates, per cluster: a new generation is a rollout.
fn controller_generations(g: &ArgoCd) -> BTreeMap<String, i64> {
    let mut generations = BTreeMap::new();
    for cluster in CLUSTERS {
        for name in ["linkerd-destination", "linkerd-proxy-injector"] {
            let deployment = g
                .get(cluster, "deployment", "linkerd", name)
                .unwrap_or_else(|| panic!("{cluster}: no Deployment linkerd/{name}"));
            let generation = deployment["metadata"]["generation"].as_i64().expect("generation");
            generations.insert(format!("{cluster}/{name}"), generation);
        }
    }
    generations
}

/// For a minute, every Application stays Synced and Healthy and none is synced again:
/// no diff loop between what Argo CD renders and what the clusters' controllers write.
fn assert_stable(g: &ArgoCd, expected: &BTreeMap<String, String>) {
    // A sync is told by when its operation started (the history grows only when one ends).
    let snapshot = |apps: &BTreeMap<String, Value>| -> BTreeMap<String, String> {
        expected
            .keys()
            .map(|n| {
                let started = text(&apps[n]["status"]["operationState"]["startedAt"]).to_owned();
                (n.clone(), started)
            })
            .collect()
    };
    let before = snapshot(&g.applications());
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let apps = g.applications();
        for name in expected.keys() {
            let a = &apps[name];
            assert_eq!(
                (
                    text(&a["status"]["sync"]["status"]),
                    text(&a["status"]["health"]["status"])
                ),
                ("Synced", "Healthy"),
                "{name} after {:.0}s: {}",
                started.elapsed().as_secs_f64(),
                serde_json::to_string(&a["status"]["resources"]).unwrap_or_default()
            );
        }
        assert_eq!(snapshot(&apps), before, "an Application was synced again");
        std::thread::sleep(Duration::from_secs(5));
    }
}

#[test]
fn hub_spoke_reconciled_by_real_argocd_eso_and_cert_manager() {
    let g = ArgoCd::start();
    g.render();
    // The anchor and issuers reach Vault now; link credentials once the hub runs the chart.
    let (code, out, err) = g.meshfleet(&["secrets", "sync", "."]);
    assert!(code == 0 || code == 2, "secrets sync: {code}\n{out}\n{err}");

    let commit = g.env.commit(&g.tree(), "hub-spoke at 2025.4.4");
    let (took, seen) = converge(&g, &commit, "2025.4.4");
    eprintln!("commit to green (install): {:.1}s", took.as_secs_f64());
    let apps = g.applications();
    let expected = expected_applications(&g.tree());
    assert_eq!(expected.len(), 3 + 6 + 7 + 7, "roots and children (viz left out)");
    assert_wave_order(&apps, &expected, &seen);
    assert_charts(&g, &apps, "2025.4.4");
    assert_credentials(&g);
    assert_mirrored(&g);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(180);
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
    // Argo CD renders every chart again when its repo-server's cache misses (a hard
    // refresh here; for a user at the latest when the cache expires, daily): what the
    // charts generate at render time (webhook certificates, the `checksum/config` of the
    // controllers' pod templates, the heartbeat's schedule) must neither make an
    // Application OutOfSync nor roll a controller.
    let rollouts = controller_generations(&g);
    g.kubectl(
        HUB,
        &[
            "annotate",
            "--overwrite",
            "-n",
            NS,
            "applications.argoproj.io",
            "--all",
            "argocd.argoproj.io/refresh=hard",
        ],
    );
    assert_stable(&g, &expected);
    assert_eq!(
        controller_generations(&g),
        rollouts,
        "a controller was rolled after Argo CD rendered the charts again"
    );
    let (code, out, err) = g.meshfleet(&["render", ".", "--out", "gitops", "--check"]);
    assert_eq!(code, 0, "render --check after the install: {out}\n{err}");

    // A version bump: every chart Application moves to 2026.8.3 (native sidecars, the
    // controllers' renamed admin port), `check` is green and nothing is OutOfSync after.
    g.write_fleet("2026.8.3");
    let (code, _, _) = g.meshfleet(&["render", ".", "--out", "gitops", "--check"]);
    assert_eq!(code, 1, "render --check sees the bump before it is rendered");
    g.render();
    let commit = g.env.commit(&g.tree(), "hub-spoke at 2026.8.3");
    let (took, _) = converge(&g, &commit, "2026.8.3");
    eprintln!(
        "commit to green (upgrade to 2026.8.3): {:.1}s",
        took.as_secs_f64()
    );
    assert_charts(&g, &g.applications(), "2026.8.3");
    wait_green(&g, "after the upgrade");
    assert_stable(&g, &expected);

    // A bad commit by hand: production's Link dials a wrong gateway, and its
    // multicluster Application names a chart version that does not exist. `check` and
    // Argo CD both say so; the revert heals.
    let good = g.tree();
    let bad = tempfile::tempdir().expect("tempdir");
    copy_dir(&good, bad.path());
    edit(
        &bad.path().join("production/links/link-internal.yaml"),
        "192.0.2.11",
        "192.0.2.99",
    );
    edit(
        &bad.path().join("production/apps/linkerd-multicluster.yaml"),
        "targetRevision: \"2026.8.3\"",
        "targetRevision: \"2099.1.1\"",
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
    let multicluster = "hub-spoke-production-linkerd-multicluster";
    loop {
        let link = g
            .get("production", "link", "linkerd-multicluster", "internal")
            .expect("Link");
        let apps = g.applications();
        let app = &apps[multicluster];
        let argocd_says: Vec<String> = app["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| text(&c["message"]).contains("2099.1.1"))
            .map(|c| format!("{}: {}", text(&c["type"]), text(&c["message"])))
            .collect();
        let failing = g.failing_checks();
        let applied = link["spec"]["gatewayAddress"] == "192.0.2.99";
        if applied && !argocd_says.is_empty() && failing["production"].iter().any(|id| id == "link-drift") {
            eprintln!("bad commit {bad_commit}: check fails {failing:?}; Argo CD: {argocd_says:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bad value was not reported: applied={applied} argocd={argocd_says:?} {} check={failing:?}",
            serde_json::to_string(&app["status"]["sync"]).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_secs(3));
    }
    let commit = g.env.commit(&good, "revert the bad value");
    let (took, _) = converge(&g, &commit, "2026.8.3");
    eprintln!("commit to green (revert): {:.1}s", took.as_secs_f64());
    wait_green(&g, "after the revert");
    let (code, out, err) = g.meshfleet(&["render", ".", "--out", "gitops", "--check"]);
    assert_eq!(code, 0, "render --check after the revert: {out}\n{err}");

    rotate_link_credentials(&g, &expected);
    rotate_trust_anchor(&g, &expected);
}

/// A trust-anchor rotation through Argo CD, as its user runs it: after each step, render
/// and commit, `secrets sync` (the issuers and anchor in Vault), then run the `kubectl
/// rollout restart` commands `trust rotate status` prints until nothing blocks, then
/// `trust rotate next`. Every bundle ends with only the new anchor; `check` is green.
fn rotate_trust_anchor(g: &ArgoCd, expected: &BTreeMap<String, String>) {
    let started = Instant::now();
    let (code, out, err) = g.meshfleet(&["trust", "rotate", "start", "."]);
    assert_eq!(code, 0, "trust rotate start: {out}\n{err}");
    let mut phases = Vec::new();
    for round in 0.. {
        assert!(round < 8, "the rotation did not end: phases {phases:?}");
        g.render();
        let commit = g.env.commit(&g.tree(), "trust anchor rotation");
        converge(g, &commit, "2026.8.3");
        g.sync_and_force(
            Instant::now() + Duration::from_secs(120),
            &format!("anchor-{round}"),
        );
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut restarted = BTreeSet::new();
        loop {
            let (code, stdout, stderr) = g.meshfleet(&["-o", "json", "trust", "rotate", "status", "."]);
            let report: Value =
                serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
            if code == 0 {
                phases.push(text(&report["phase"]).to_owned());
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
            // What the user is told to run, each command once per round.
            for command in blocking
                .iter()
                .flat_map(|b| b["restarts"].as_array().into_iter().flatten())
            {
                let command = text(command);
                if !restarted.insert(command.to_owned()) {
                    continue;
                }
                let args: Vec<&str> = command.split_whitespace().collect();
                assert_eq!(&args[..2], ["kubectl", "--context"], "{command}");
                g.kubectl(args[2], &args[3..]);
                eprintln!("$ {command}");
            }
            std::thread::sleep(Duration::from_secs(3));
        }
        let (code, out, err) = g.meshfleet(&["trust", "rotate", "next", "."]);
        assert_eq!(code, 0, "trust rotate next: {out}\n{err}");
        if err.contains("the rotation is over") {
            break;
        }
    }
    g.render();
    let commit = g.env.commit(&g.tree(), "trust anchor rotation: done");
    converge(g, &commit, "2026.8.3");
    eprintln!(
        "trust anchor rotation through Argo CD ({}): {:.1}s",
        phases.join(" -> "),
        started.elapsed().as_secs_f64()
    );
    let (code, out, err) = g.meshfleet(&["trust", "verify", "."]);
    assert_eq!(code, 0, "trust verify after the rotation: {out}\n{err}");
    let anchor = std::fs::read_to_string(g.dir().join("certs/anchor.crt")).expect("anchor");
    assert_eq!(
        anchor.matches("BEGIN CERTIFICATE").count(),
        1,
        "only the new anchor is left"
    );
    for cluster in CLUSTERS {
        let roots = g
            .get(cluster, "configmap", "linkerd", "linkerd-identity-trust-roots")
            .expect("trust roots");
        assert_eq!(
            text(&roots["data"]["ca-bundle.crt"]).trim(),
            anchor.trim(),
            "{cluster} trusts the new anchor only"
        );
    }
    wait_green(g, "after the anchor rotation");
    assert_stable(g, expected);
}

/// A link credential rotation driven through Argo CD: each `secrets sync --rotate` records
/// its phase in the fleet file, and the commit of the new render is what grants (and
/// later removes) the remote-access accounts on the hub. The mirrors stay (same UIDs),
/// `check` is green, and the rotation's own writes (ESO `force-sync`, restarted
/// Deployments) are not undone by self-heal nor shown OutOfSync.
fn rotate_link_credentials(g: &ArgoCd, expected: &BTreeMap<String, String>) {
    let mirrors = |g: &ArgoCd| -> Vec<String> {
        SPOKES
            .iter()
            .map(|s| {
                let svc = g.get(s, "service", "apps", "web-internal").expect("mirror");
                text(&svc["metadata"]["uid"]).to_owned()
            })
            .collect()
    };
    let before = mirrors(g);
    let tokens = |g: &ArgoCd| -> Vec<String> {
        SPOKES
            .iter()
            .map(|s| {
                let secret = g
                    .get(
                        s,
                        "secret",
                        "linkerd-multicluster",
                        "cluster-credentials-internal",
                    )
                    .expect("credentials");
                kubeconfig_identity(&secret).2
            })
            .collect()
    };
    let old_tokens = tokens(g);
    let rotate = |g: &ArgoCd| -> (i32, Value) {
        let (code, stdout, stderr) = g.meshfleet(&["secrets", "sync", ".", "--rotate", "-o", "json"]);
        let report: Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
        eprintln!(
            "--rotate: exit {code}, stage {}, now {}",
            report["stage"], report["now"]
        );
        (code, report)
    };
    let commit = |g: &ArgoCd, message: &str| {
        g.render();
        let commit = g.env.commit(&g.tree(), message);
        let (took, _) = converge(g, &commit, "2026.8.3");
        eprintln!("commit to green ({message}): {:.1}s", took.as_secs_f64());
    };
    let started = Instant::now();
    let (code, report) = rotate(g);
    assert_eq!(
        (code, report["now"].as_str()),
        (0, Some("granting")),
        "{report:#}"
    );
    commit(g, "rotation: grant the next accounts");
    let (code, report) = rotate(g);
    assert_eq!(
        (code, report["now"].as_str()),
        (0, Some("retiring")),
        "{report:#}"
    );
    commit(g, "rotation: retire the old accounts");
    let (code, report) = rotate(g);
    assert_eq!(code, 0, "{report:#}");
    assert!(report["now"].is_null(), "the rotation is done: {report:#}");
    let revoked = report["links"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["steps"].as_array().into_iter().flatten())
        .filter(|s| s["id"] == "old-token-revoked" && s["state"] == "done")
        .count();
    assert_eq!(
        revoked,
        SPOKES.len(),
        "the hub refuses each old token: {report:#}"
    );
    commit(g, "rotation: done");
    eprintln!(
        "link credential rotation through Argo CD: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    wait_green(g, "after the rotation");
    assert_eq!(mirrors(g), before, "the mirror Services were never re-created");
    let new_tokens = tokens(g);
    for (i, spoke) in SPOKES.iter().enumerate() {
        assert_ne!(
            new_tokens[i], old_tokens[i],
            "{spoke}: ESO delivered the next credentials"
        );
    }
    assert_stable(g, expected);
}

/// `meshfleet check` green on every cluster within 3 minutes.
fn wait_green(g: &ArgoCd, when: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let failing = g.failing_checks();
        if failing.values().all(Vec::is_empty) {
            return;
        }
        assert!(Instant::now() < deadline, "meshfleet check {when}: {failing:?}");
        std::thread::sleep(Duration::from_secs(2));
    }
}
