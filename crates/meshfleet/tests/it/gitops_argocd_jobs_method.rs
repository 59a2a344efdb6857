//! `installMethod: jobs` under a real Argo CD (issue 20): the Jobs run once per version,
//! not on every sync, and a version bump 2025.4.4 -> 2026.8.3 upgrades. (The module name
//! does not end in `jobs`: `scripts/test --quick` runs every test matching `jobs::`.)
//!
//! `testenv/run gitops --engine argocd` (see testenv/README.md) with the environment's
//! Jobs kubelet (testenv/lib/jobs.py): every pod of a meshfleet Job is run for real, its
//! script under `sh` with only Linkerd's real CLI and kubectl, as its ServiceAccount,
//! exactly as jobs_cli/pod.rs does, and its status written as a kubelet writes it, so the
//! real job-controller completes the Job and Argo CD sees it through its Job health.
//!
//! The fleet is the hub-spoke example cut to two clusters (the hub `in-cluster-local` and
//! the spoke `production`) with `installMethod: jobs`, and the same test-time
//! substitutions as gitops_argocd.rs (addresses, Vault, the repository URL, the anchor
//! from `certs init`, viz left out). The Jobs' image is named (the fleet requires it)
//! but never pulled: the environment's Jobs kubelet gives each pod the real CLI its
//! script asks for.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::gitops_flux::{copy_dir, edit};
use crate::support::{meshfleet, repo_root, texts};
use crate::testenv::{self, PrivateEnv};

const CLUSTERS: [&str; 2] = ["in-cluster-local", "production"];
const HUB: &str = "in-cluster-local";
const NS: &str = "argocd";
const FROM: &str = "2025.4.4";
const TO: &str = "2026.8.3";
/// The Jobs of a cluster (viz left out).
const COMPONENTS: [&str; 3] = ["crds", "control-plane", "multicluster"];
/// How long Argo CD may take to make a commit green (the Jobs run Linkerd's CLI for
/// real, one wave after another, on 2 shared cores).
const CONVERGE: Duration = Duration::from_secs(1500);
const MANAGED: &str = "app.kubernetes.io/managed-by=meshfleet";

/// `2025.4.4` -> `edge-25.4.4`.
fn edge(version: &str) -> String {
    format!("edge-{}", version.strip_prefix("20").expect("20YY.M.N"))
}

fn fleet_text(env: &PrivateEnv, version: &str) -> String {
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
    // The Jobs method, with the image a user builds for the version (not pulled here).
    text = replace(
        text,
        "    installMethod: helm\n",
        &format!(
            "    installMethod: jobs\n    jobs: {{image: registry.example/linkerd-kubectl:{}}}\n",
            edge(version)
        ),
    );
    // Two clusters are enough: the hub and one spoke.
    text = replace(
        text,
        "    - name: nonproduction\n      vaultAuthMountPath: kubernetes-nonproduction\n",
        "",
    );
    // viz's tap APIService cannot become Available here (gitops_argocd.rs says why).
    text = replace(
        text,
        "    gatewayAPI: v1.2.1\n",
        "    gatewayAPI: v1.2.1\n    viz: false\n",
    );
    replace(
        text,
        "trustAnchor: certs/trust-anchor.crt",
        "trustAnchor: certs/anchor.crt",
    )
}

struct Fleet {
    env: PrivateEnv,
    dir: tempfile::TempDir,
}

impl Fleet {
    fn start() -> Self {
        let env = testenv::private(&CLUSTERS);
        let took = env.gitops_argocd(HUB);
        eprintln!(
            "testenv gitops --engine argocd: start-up {:.1}s",
            took.as_secs_f64()
        );
        let f = Self {
            env,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        f.vault(
            "sys/mounts/secrets-k8",
            &json!({"type": "kv", "options": {"version": "2"}}),
        );
        f.write_fleet(FROM);
        let (code, out, err) = f.meshfleet(&["certs", "init", "."]);
        assert_eq!(code, 0, "certs init: {out}\n{err}");
        f
    }

    fn tree(&self) -> PathBuf {
        self.dir.path().join("gitops")
    }

    fn write_fleet(&self, version: &str) {
        std::fs::write(self.dir.path().join("fleet.yaml"), fleet_text(&self.env, version)).expect("fleet");
    }

    fn meshfleet(&self, args: &[&str]) -> (i32, String, String) {
        let output = meshfleet(self.dir.path())
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
    }

    fn vault(&self, path: &str, body: &Value) {
        let url = format!("{}/v1/{path}", self.env.vault_addr());
        let token = secrecy::ExposeSecret::expose_secret(self.env.vault_token()).to_owned();
        let body = body.clone();
        testenv::block_on(async move {
            let resp = reqwest::Client::new()
                .post(url)
                .header("X-Vault-Token", token)
                .json(&body)
                .send()
                .await
                .expect("OpenBao answers");
            assert!(resp.status().is_success(), "OpenBao {path}: {}", resp.status());
        });
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

    fn items(&self, cluster: &str, args: &[&str]) -> Vec<Value> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let list: Value = serde_json::from_str(&self.kubectl(cluster, &all)).expect("kubectl json");
        list["items"].as_array().cloned().unwrap_or_default()
    }

    fn applications(&self) -> BTreeMap<String, Value> {
        self.items(HUB, &["get", "applications.argoproj.io", "-n", NS])
            .into_iter()
            .map(|a| (text(&a["metadata"]["name"]).to_owned(), a))
            .collect()
    }

    /// meshfleet's Jobs on a cluster: name -> the Job.
    fn jobs(&self, cluster: &str) -> BTreeMap<String, Value> {
        self.items(cluster, &["get", "jobs", "-A", "-l", MANAGED])
            .into_iter()
            .map(|j| (text(&j["metadata"]["name"]).to_owned(), j))
            .collect()
    }

    /// The uids of meshfleet's Jobs and of their pods on every cluster.
    fn uids(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for c in CLUSTERS {
            for kind in ["jobs", "pods"] {
                for o in self.items(c, &["get", kind, "-A", "-l", MANAGED]) {
                    out.insert(format!(
                        "{c} {kind} {} {}",
                        text(&o["metadata"]["name"]),
                        text(&o["metadata"]["uid"])
                    ));
                }
            }
        }
        out
    }

    /// What the Jobs kubelet ran (DIR/kubelet/job-runs.jsonl), in order.
    fn runs(&self) -> Vec<Value> {
        std::fs::read_to_string(self.env.dir().join("kubelet/job-runs.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

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
                    .map(|k| format!("{}: {}", text(&k["id"]), text(&k["message"])))
                    .collect();
                (text(&c["name"]).to_owned(), ids)
            })
            .collect()
    }

    /// Until every Application of the committed tree is Synced to `commit` and Healthy,
    /// running `secrets sync` as a user does once the hub's multicluster Job ran (the
    /// spoke's credentials need the hub's remote-access account).
    fn converge(&self, commit: &str) -> Duration {
        let started = Instant::now();
        let expected = expected_applications(&self.tree());
        let fleet_repo = format!("{}/git/fleet.git", self.env.gitops_url());
        let mut synced = false;
        let mut last_report = Instant::now();
        loop {
            let apps = self.applications();
            let mut pending = Vec::new();
            for name in &expected {
                let Some(app) = apps.get(name) else {
                    pending.push(format!("{name}: not created yet"));
                    continue;
                };
                let sync = &app["status"]["sync"];
                let health = text(&app["status"]["health"]["status"]);
                let at_commit =
                    app["spec"]["source"]["repoURL"] != fleet_repo.as_str() || sync["revision"] == commit;
                if sync["status"] != "Synced" || health != "Healthy" || !at_commit {
                    pending.push(format!(
                        "{name}: {} {health} at {}; {}",
                        text(&sync["status"]),
                        text(&sync["revision"]),
                        text(&app["status"]["operationState"]["message"])
                    ));
                }
            }
            if pending.is_empty() {
                return started.elapsed();
            }
            let hub_mc = apps.get(&format!("hub-spoke-{HUB}-linkerd-multicluster"));
            if !synced && hub_mc.is_some_and(|a| a["status"]["health"]["status"] == "Healthy") {
                self.secrets_sync(started + CONVERGE);
                for c in CLUSTERS {
                    let stamp = format!("force-sync={}", started.elapsed().as_millis());
                    self.kubectl(
                        c,
                        &[
                            "annotate",
                            "externalsecrets",
                            "-A",
                            "--all",
                            "--overwrite",
                            &stamp,
                        ],
                    );
                }
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
                started.elapsed() < CONVERGE,
                "Argo CD did not converge on {commit} within {CONVERGE:?}:\n{}",
                pending.join("\n")
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }

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

    /// `meshfleet check` green on every cluster within 3 minutes.
    fn wait_green(&self, when: &str) -> Duration {
        let started = Instant::now();
        loop {
            let failing = self.failing_checks();
            if failing.values().all(Vec::is_empty) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "meshfleet check {when}: {failing:#?}"
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    /// Each cluster has exactly the Jobs of `version` (old ones pruned), each succeeded
    /// with one pod, each run for real by the Jobs kubelet with that version's CLI, exit
    /// 0; and the control plane those Jobs installed runs that version's images.
    fn assert_installed(&self, version: &str) {
        let tag = format!(":{}", edge(version));
        let runs = self.runs();
        for c in CLUSTERS {
            let jobs = self.jobs(c);
            let names: BTreeSet<_> = jobs.keys().cloned().collect();
            for component in COMPONENTS {
                let prefix = format!("linkerd-{component}-{}-", version.replace('.', "-"));
                let matching: Vec<_> = names.iter().filter(|n| n.starts_with(&prefix)).collect();
                assert_eq!(
                    matching.len(),
                    1,
                    "{c}: one {component} Job of {version}: {names:?}"
                );
            }
            assert_eq!(
                names.len(),
                COMPONENTS.len(),
                "{c}: only the Jobs of {version}: {names:?}"
            );
            for (name, job) in &jobs {
                let status = &job["status"];
                assert_eq!(status["succeeded"], 1, "{c} {name}: {status}");
                assert!(
                    status["failed"].as_i64().unwrap_or(0) == 0,
                    "{c} {name} failed once: {status}"
                );
                let ran: Vec<_> = runs
                    .iter()
                    .filter(|r| r["cluster"] == c && r["job"] == name.as_str())
                    .collect();
                assert_eq!(ran.len(), 1, "{c} {name}: run once by the Jobs kubelet: {ran:?}");
                assert_eq!(ran[0]["exitCode"], 0, "{c} {name}");
                assert_eq!(ran[0]["release"], edge(version).as_str(), "{c} {name}");
            }
            let config = self.items(
                c,
                &[
                    "get",
                    "configmap",
                    "-n",
                    "linkerd",
                    "--field-selector",
                    "metadata.name=linkerd-config",
                ],
            );
            assert_eq!(config.len(), 1, "{c}: linkerd-config exists");
            for d in [
                "linkerd-identity",
                "linkerd-destination",
                "linkerd-proxy-injector",
            ] {
                let deploy: Value = serde_json::from_str(&self.kubectl(
                    c,
                    &[
                        "get",
                        "deployment",
                        "-n",
                        "linkerd",
                        d,
                        "-o",
                        "json",
                        "--show-managed-fields",
                    ],
                ))
                .expect("json");
                let images: Vec<&str> = deploy["spec"]["template"]["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["image"].as_str())
                    .collect();
                assert!(
                    images.iter().any(|i| i.ends_with(&tag)),
                    "{c}: {d} runs {images:?}, not {version}"
                );
                assert!(
                    deploy["metadata"]["managedFields"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|m| m["manager"] == "meshfleet-jobs"),
                    "{c}: {d} was applied by a Job's kubectl"
                );
            }
            let gateway = self.items(
                c,
                &[
                    "get",
                    "deployment",
                    "-n",
                    "linkerd-multicluster",
                    "--field-selector",
                    "metadata.name=linkerd-gateway",
                ],
            );
            assert_eq!(
                gateway.len(),
                usize::from(c == HUB),
                "{c}: the gateway only on the hub"
            );
        }
    }
}

/// Now, as the Jobs kubelet writes `startedAt` (RFC 3339, UTC, seconds).
fn now_utc() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// The Applications a commit of `tree` makes (roots and children).
fn expected_applications(tree: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
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
                    out.insert(doc["metadata"]["name"].as_str().expect("name").to_owned());
                }
            }
        }
    }
    out
}

/// The Applications that hold a Job.
fn job_applications(tree: &Path) -> Vec<String> {
    CLUSTERS
        .iter()
        .flat_map(|c| {
            COMPONENTS.map(|component| {
                let path = tree.join(c).join(format!("linkerd-{component}/job.yaml"));
                assert!(path.exists(), "{} is rendered", path.display());
                format!("hub-spoke-{c}-linkerd-{component}")
            })
        })
        .collect()
}

#[test]
fn jobs_run_once_per_version_under_real_argocd() {
    let f = Fleet::start();
    f.render();
    let (code, out, err) = f.meshfleet(&["secrets", "sync", "."]);
    assert!(code == 0 || code == 2, "secrets sync: {code}\n{out}\n{err}");

    // Install: every Application green, every Job run once, for real.
    eprintln!("commit at {}", now_utc());
    let commit = f.env.commit(&f.tree(), "hub-spoke (jobs) at 2025.4.4");
    let took = f.converge(&commit);
    eprintln!("commit to green (install, jobs): {:.1}s", took.as_secs_f64());
    f.assert_installed(FROM);
    let green = f.wait_green("after the install");
    eprintln!("commit to green `check`: {:.1}s", (took + green).as_secs_f64());
    for r in f.runs() {
        eprintln!(
            "job run: started {} {} {} exit {} in {}s",
            r["startedAt"], r["cluster"], r["job"], r["exitCode"], r["seconds"]
        );
    }

    // Not on every sync: an unrelated commit (an annotation on the linkerd Namespace, which
    // the namespaces Applications sync), and a sync of every Application that holds a
    // Job (what `argocd app sync` asks); a minute later the same Jobs and pods, nothing
    // run again, everything Synced and Healthy.
    let before = f.uids();
    let runs_before = f.runs().len();
    let unrelated = tempfile::tempdir().expect("tempdir");
    copy_dir(&f.tree(), unrelated.path());
    for c in CLUSTERS {
        edit(
            &unrelated.path().join(c).join("namespaces/namespaces.yaml"),
            // The first object is the linkerd Namespace.
            "  annotations:\n",
            "  annotations:\n    example.com/owner: platform\n",
        );
    }
    let commit = f.env.commit(unrelated.path(), "an unrelated change");
    let took = f.converge(&commit);
    for c in CLUSTERS {
        let ns = f.kubectl(
            c,
            &[
                "get",
                "namespace",
                "linkerd",
                "-o",
                "jsonpath={.metadata.annotations.example\\.com/owner}",
            ],
        );
        assert_eq!(ns, "platform", "{c}: the unrelated commit was applied");
    }
    let job_apps = job_applications(&f.tree());
    for app in &job_apps {
        let patch = json!({"operation": {"initiatedBy": {"username": "meshfleet-test"}, "sync": {"revision": commit}}});
        f.kubectl(
            HUB,
            &[
                "patch",
                "applications.argoproj.io",
                "-n",
                NS,
                app,
                "--type",
                "merge",
                "-p",
                &patch.to_string(),
            ],
        );
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let apps = f.applications();
        let pending: Vec<_> = job_apps
            .iter()
            .filter(|a| {
                let op = &apps[a.as_str()]["status"]["operationState"];
                op["operation"]["initiatedBy"]["username"] != "meshfleet-test" || op["phase"] != "Succeeded"
            })
            .collect();
        if pending.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the syncs asked for did not succeed: {pending:?}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    std::thread::sleep(Duration::from_secs(60));
    assert_eq!(f.uids(), before, "a sync created or replaced a Job or its pod");
    assert_eq!(
        f.runs().len(),
        runs_before,
        "a Job ran again: {:?}",
        &f.runs()[runs_before..]
    );
    f.converge(&commit);
    eprintln!(
        "unrelated commit and syncs: green in {:.1}s, no Job ran again",
        took.as_secs_f64()
    );

    // A version bump renames every Job: the new ones upgrade, the old ones are pruned.
    f.write_fleet(TO);
    f.render();
    eprintln!("commit at {}", now_utc());
    let commit = f.env.commit(&f.tree(), "hub-spoke (jobs) at 2026.8.3");
    let took = f.converge(&commit);
    eprintln!(
        "commit to green (upgrade to {TO}, jobs): {:.1}s",
        took.as_secs_f64()
    );
    // Argo CD's prune deletes the old Jobs in the sync; their pods go with them.
    let deadline = Instant::now() + Duration::from_secs(120);
    while CLUSTERS.iter().any(|c| f.jobs(c).len() != COMPONENTS.len()) {
        assert!(Instant::now() < deadline, "the old Jobs were not pruned");
        std::thread::sleep(Duration::from_secs(2));
    }
    f.assert_installed(TO);
    let green = f.wait_green("after the upgrade");
    eprintln!(
        "commit to green `check` (upgrade): {:.1}s",
        (took + green).as_secs_f64()
    );
    for r in &f.runs()[runs_before..] {
        eprintln!(
            "job run: started {} {} {} exit {} in {}s",
            r["startedAt"], r["cluster"], r["job"], r["exitCode"], r["seconds"]
        );
    }
    let (code, out, err) = f.meshfleet(&["render", ".", "--out", "gitops", "--check"]);
    assert_eq!(code, 0, "render --check after the upgrade: {out}\n{err}");
}
