//! The README's exit-code table, run row by row (issue 23: `trust verify` and `trust
//! rotate next` exited 2 where the README said 1, and `certs inspect --fleet` exited 2
//! on an invalid fleet).
//!
//! The test reads the table from README.md (`### Exit codes`), so the README and the
//! behaviour cannot drift apart: every row needs a case here, every case a row, and every
//! run of a case must exit with the row's code. Cheap cases go first (no cluster, or
//! clusters at a closed 127.0.0.1 port); the few that need a cluster that answers use the
//! shared test control plane, writing only in a namespace of their own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::support::{
    BASE_FLEET, TempFleet, closed_port, meshfleet, repo_root, texts, unreachable_kubeconfig,
};
use crate::testenv;

/// The Linkerd namespace of this test's fleets: on the shared clusters, nobody else's.
const NAMESPACE: &str = "exitcodes-l5d";

/// `(when, exit)` of every row of the README's exit-code table.
fn readme_table() -> Vec<(String, i32)> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("read README.md");
    let section = readme
        .split("\n### Exit codes\n")
        .nth(1)
        .expect("README.md has a `### Exit codes` section");
    section
        .lines()
        .skip_while(|l| !l.starts_with("| when |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|row| {
            // The code is the last cell; the first may hold `\|` inside backticks.
            let (when, code) = row
                .trim_end_matches('|')
                .rsplit_once('|')
                .unwrap_or_else(|| panic!("a row with two cells: {row}"));
            let when = when.trim_start_matches('|').trim().to_string();
            let code = code
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("exit code of `{row}`: {e}"));
            (when, code)
        })
        .collect()
}

/// The test environment's kubeconfig with `west` moved to a closed port.
fn west_stopped_kubeconfig(env: &testenv::TestEnv, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(env.kubeconfig()).expect("read kubeconfig");
    let mut config: Value = serde_saphyr::from_str(&text).expect("kubeconfig parses");
    let west = config["clusters"]
        .as_array_mut()
        .expect("clusters")
        .iter_mut()
        .find(|c| c["name"] == "west")
        .expect("cluster west");
    west["cluster"]["server"] = json!(format!("https://127.0.0.1:{}", closed_port()));
    let path = dir.join("west-stopped.kubeconfig");
    std::fs::write(&path, config.to_string()).expect("write kubeconfig");
    path
}

/// BASE_FLEET with its own Linkerd namespace.
fn fleet_text() -> String {
    BASE_FLEET.replace(
        "    version: 2025.4.4\n",
        &format!("    version: 2025.4.4\n    namespace: {NAMESPACE}\n"),
    )
}

/// A fleet whose rules fail (overlapping pod networks).
fn rule_invalid() -> TempFleet {
    TempFleet::new(&fleet_text().replace("pods: [10.2.0.0/16]", "pods: [10.1.128.0/17]"))
}

/// A fleet that does not parse (a misspelt field).
fn parse_invalid() -> TempFleet {
    TempFleet::new(&fleet_text().replace("addresses: [east.example]", "adresses: [east.example]"))
}

/// One run: what it was, and its output.
struct Run {
    what: String,
    output: Output,
}

/// Runs meshfleet in a folder, with no Vault, no `~/.kube/config` and no `KUBECONFIG`.
struct Runner {
    home: tempfile::TempDir,
    vault: String,
}

impl Runner {
    fn new() -> Self {
        Self {
            home: tempfile::tempdir().expect("tempdir"),
            vault: format!("http://127.0.0.1:{}", closed_port()),
        }
    }

    fn run(&self, dir: &Path, kubeconfig: Option<&Path>, args: &[&str]) -> Run {
        let mut command = meshfleet(dir);
        command
            .env("HOME", self.home.path())
            .env("VAULT_ADDR", &self.vault)
            .env_remove("KUBECONFIG")
            .env_remove("VAULT_TOKEN");
        if let Some(kubeconfig) = kubeconfig {
            command.arg("--kubeconfig").arg(kubeconfig);
        }
        let output = command.args(args).output().expect("run meshfleet");
        let what = format!(
            "meshfleet {}{}",
            if kubeconfig.is_some() {
                "--kubeconfig K "
            } else {
                ""
            },
            args.join(" ")
        );
        Run { what, output }
    }

    /// `meshfleet ARGS` with `fleet` on stdin.
    fn run_stdin(&self, dir: &Path, args: &[&str], fleet: &str) -> Run {
        let output = meshfleet(dir)
            .env("HOME", self.home.path())
            .env_remove("KUBECONFIG")
            .env_remove("VAULT_TOKEN")
            .args(args)
            .write_stdin(fleet)
            .output()
            .expect("run meshfleet");
        Run {
            what: format!("meshfleet {} < fleet.yaml", args.join(" ")),
            output,
        }
    }
}

/// A copy of a fleet folder (fleet, anchor, key folder).
fn copy_fleet(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().expect("tempdir");
    for file in ["fleet.yaml", "anchor.crt", ".meshfleet/keys/trust-anchor.key"] {
        let target = to.path().join(file);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::copy(from.join(file), target).expect("copy");
    }
    to
}

/// What a Linkerd install keeps its anchors in, in [`NAMESPACE`]: `linkerd-config`
/// (`identityTrustAnchorsPEM` in its values) and `linkerd-identity-trust-roots`.
async fn install_anchors(client: kube::Client, pem: &str) {
    let apply = PatchParams::apply("meshfleet-exit-codes").force();
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .patch(NAMESPACE, &apply, &Patch::Apply(&namespace))
        .await
        .expect("namespace");
    let values = serde_saphyr::to_string(&json!({
        "identityTrustAnchorsPEM": pem,
        "identityTrustDomain": "cluster.local",
    }))
    .expect("values YAML");
    let api: Api<ConfigMap> = Api::namespaced(client, NAMESPACE);
    for (name, key, value) in [
        ("linkerd-config", "values", values),
        ("linkerd-identity-trust-roots", "ca-bundle.crt", pem.to_string()),
    ] {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(NAMESPACE.into()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(key.to_string(), value)])),
            ..ConfigMap::default()
        };
        api.patch(name, &apply, &Patch::Apply(&cm))
            .await
            .expect("config map");
    }
}

/// The cases that need no cluster that answers, by the README row they pin.
fn offline_case(when: &str, r: &Runner) -> Option<Vec<Run>> {
    let valid = TempFleet::new(&fleet_text());
    let dir = valid.path();
    let root = repo_root();
    let unreachable = unreachable_kubeconfig(r.home.path());
    let k = Some(unreachable.as_path());
    let runs = match when {
        "`validate` of a valid fleet (warnings allowed); `version`, `schema`, `completion SHELL`" => vec![
            r.run(dir, None, &["validate", "."]),
            r.run(dir, None, &["version"]),
            r.run(dir, None, &["-o", "json", "version"]),
            r.run(dir, None, &["schema"]),
            r.run(dir, None, &["completion", "bash"]),
            r.run(dir, None, &["completions", "zsh"]),
        ],
        "`render --check` of an up-to-date tree" => vec![
            r.run(
                &root,
                None,
                &[
                    "render",
                    "examples/homelab",
                    "--out",
                    "examples/homelab/gitops",
                    "--check",
                ],
            ),
            r.run(
                &root,
                None,
                &[
                    "-o",
                    "json",
                    "render",
                    "examples/homelab",
                    "--out",
                    "examples/homelab/gitops",
                    "--check",
                ],
            ),
        ],
        "an invalid fleet: one that does not parse, given to any command that takes one (`certs init` and `certs inspect --fleet` too), or one that breaks a rule, given to any but `certs` (which read only the identity): its findings are printed, nothing is written" =>
        {
            let mut runs = Vec::new();
            for (fleet, parses) in [(rule_invalid(), true), (parse_invalid(), false)] {
                let d = fleet.path();
                let certs: &[&[&str]] = if parses {
                    &[]
                } else {
                    &[&["certs", "inspect", "anchor.crt", "--fleet", "."]]
                };
                for args in [
                    &["validate", "."][..],
                    &["render", ".", "--out", "out"],
                    &["render", ".", "--out", "out", "--check"],
                    &["graph", "."],
                    &["-o", "json", "graph", "."],
                    &["check", "."],
                    &["trust", "verify", "."],
                    &["trust", "rotate", "status", "."],
                    &["trust", "rotate", "start", "."],
                    &["migrate", "."],
                    &["secrets", "sync", "."],
                    &["secrets", "status", "."],
                ]
                .iter()
                .chain(certs)
                {
                    let run = r.run(d, k, args);
                    assert!(!d.join("out").exists(), "{}: wrote `out`", run.what);
                    runs.push(run);
                }
            }
            // `certs init` reads only the fleet's identity: a fleet that does not parse.
            let fleet = parse_invalid();
            std::fs::remove_file(fleet.path().join("anchor.crt")).expect("remove anchor");
            runs.push(r.run(fleet.path(), None, &["certs", "init", "."]));
            assert!(
                !fleet.path().join("anchor.crt").exists(),
                "certs init wrote the anchor"
            );
            runs
        }
        "`render --check` of a stale tree" => {
            let out = dir.join("gitops");
            assert!(
                r.run(dir, None, &["render", ".", "--out", "gitops"])
                    .output
                    .status
                    .success()
            );
            std::fs::write(out.join("east/kustomization.yaml"), "# edited by hand\n").expect("edit");
            vec![
                r.run(dir, None, &["render", ".", "--out", "gitops", "--check"]),
                r.run(
                    dir,
                    None,
                    &["-o", "json", "render", ".", "--out", "gitops", "--check"],
                ),
            ]
        }
        "`certs init` with a key or certificate in the way (nothing is written)" => {
            vec![r.run(dir, None, &["certs", "init", "."])]
        }
        "`certs inspect` of a file that holds no certificate" => {
            vec![r.run(
                dir,
                None,
                &["certs", "inspect", ".meshfleet/keys/trust-anchor.key"],
            )]
        }
        "`trust verify`, `trust rotate status`, `trust rotate next`, `migrate`: no cluster could be read" => {
            let rotating = copy_fleet(dir);
            let start = r.run(rotating.path(), None, &["trust", "rotate", "start", "."]);
            assert!(start.output.status.success(), "{:?}", texts(&start.output));
            vec![
                r.run(dir, k, &["trust", "verify", "."]),
                r.run(dir, k, &["-o", "json", "trust", "verify", "."]),
                r.run(dir, k, &["migrate", "."]),
                r.run(dir, k, &["migrate", ".", "--apply"]),
                r.run(
                    rotating.path(),
                    k,
                    &["trust", "rotate", "status", ".", "--timeout", "5"],
                ),
                r.run(
                    rotating.path(),
                    k,
                    &["trust", "rotate", "next", ".", "--timeout", "5"],
                ),
            ]
        }
        "`trust extract` of a context that cannot be read" => vec![
            r.run(dir, k, &["trust", "extract", "--context", "east"]),
            r.run(
                dir,
                None,
                &[
                    "trust",
                    "extract",
                    "--context",
                    "east",
                    "--kubeconfig",
                    unreachable.to_str().expect("UTF-8"),
                ],
            ),
        ],
        "`secrets sync` when Vault cannot be used (no token, sealed, unreachable)" => vec![
            r.run(dir, k, &["secrets", "sync", "."]),
            r.run(dir, k, &["secrets", "sync", ".", "--dry-run"]),
        ],
        "a fleet PATH that cannot be read, or a folder holding both `fleet.yaml` and `meshfleet.yaml`" => {
            std::fs::copy(dir.join("fleet.yaml"), dir.join("meshfleet.yaml")).expect("copy");
            vec![
                r.run(dir, None, &["validate", "no/such/fleet"]),
                r.run(dir, None, &["render", "no/such/fleet", "--out", "out"]),
                r.run(dir, None, &["validate", "."]),
            ]
        }
        "`render --out DIR` where DIR is not the fleet's `spec.gitops.repository.path` (without `--any-dir`): nothing is written" =>
        {
            let runs = vec![
                r.run(dir, None, &["render", ".", "--out", "elsewhere"]),
                r.run(dir, None, &["-o", "json", "render", ".", "--out", "elsewhere"]),
            ];
            assert!(!dir.join("elsewhere").exists(), "render wrote the refused folder");
            runs
        }
        "`init` where a fleet file exists (it is left as it is)" => {
            let before = std::fs::read_to_string(dir.join("fleet.yaml")).expect("fleet");
            let runs = vec![r.run(dir, None, &["init", "."])];
            let after = std::fs::read_to_string(dir.join("fleet.yaml")).expect("fleet");
            assert_eq!(before, after, "init changed the existing fleet file");
            runs
        }
        "a fleet on stdin (`-`) given to a command that writes beside the fleet file: `render` without `--check`, `certs init`, `secrets sync --rotate`, `trust rotate start\\|next\\|abort`" => {
            [
                &["render", "-", "--out", "gitops"][..],
                &["certs", "init", "-"],
                &["secrets", "sync", "-", "--rotate"],
                &["trust", "rotate", "start", "-"],
                &["trust", "rotate", "next", "-"],
                &["trust", "rotate", "abort", "-"],
            ]
            .iter()
            .map(|args| r.run_stdin(dir, args, &fleet_text()))
            .collect()
        }
        "bad flags, an unknown command, or `man` of an unknown command" => vec![
            r.run(dir, None, &["validate", ".", "--no-such-flag"]),
            r.run(dir, None, &["sideways"]),
            r.run(dir, None, &["schema", "--kubeconfig", "k"]),
            r.run(dir, None, &["man", "--kubeconfig", "k"]),
            r.run(dir, None, &["--color", "sometimes", "validate", "."]),
            r.run(dir, None, &["man", "trust", "rotate", "sideways"]),
        ],
        _ => return None,
    };
    // The temp fleet folder must outlive the runs above.
    drop(valid);
    Some(runs)
}

/// The cases that need clusters that answer (the shared test environment), by row.
fn live_case(when: &str, r: &Runner, env: &testenv::TestEnv, fleet: &Path, other: &Path) -> Option<Vec<Run>> {
    let kubeconfig = env.kubeconfig();
    let k = Some(kubeconfig.as_path());
    let west_stopped = west_stopped_kubeconfig(env, r.home.path());
    let runs = match when {
        "`trust verify` when every cluster holds the fleet's bundle" => vec![
            r.run(fleet, k, &["trust", "verify", "."]),
            r.run(
                fleet,
                None,
                &[
                    "trust",
                    "verify",
                    ".",
                    "--kubeconfig",
                    kubeconfig.to_str().expect("UTF-8"),
                ],
            ),
        ],
        "`check` (and `graph --live`): a check failed, e.g. Linkerd is missing; an unreachable cluster is the failed check `cluster-reachable`, as in `linkerd check`, even when no cluster answers" =>
        {
            let unreachable = unreachable_kubeconfig(r.home.path());
            vec![
                r.run(fleet, k, &["check", ".", "--timeout", "10"]),
                r.run(fleet, k, &["graph", ".", "--live", "--timeout", "10"]),
                r.run(fleet, Some(&west_stopped), &["check", ".", "--timeout", "5"]),
                r.run(fleet, Some(&unreachable), &["check", ".", "--timeout", "5"]),
                r.run(
                    fleet,
                    Some(&unreachable),
                    &["-o", "json", "graph", ".", "--live", "--timeout", "5"],
                ),
            ]
        }
        "`trust verify`: a bundle differs or is missing, or a cluster is unreachable while others were read" =>
        {
            vec![
                r.run(other, k, &["trust", "verify", "."]),
                r.run(fleet, Some(&west_stopped), &["trust", "verify", "."]),
            ]
        }
        "`migrate`: a cluster is unreachable while others were read" => {
            vec![r.run(fleet, Some(&west_stopped), &["migrate", "."])]
        }
        "`trust rotate status` or `next`: a cluster is not ready for the next step (`next` writes nothing)" =>
        {
            let rotating = copy_fleet(fleet);
            let start = r.run(rotating.path(), None, &["trust", "rotate", "start", "."]);
            assert!(start.output.status.success(), "{:?}", texts(&start.output));
            let before = std::fs::read(rotating.path().join("fleet.yaml")).expect("read fleet");
            let runs = vec![
                r.run(rotating.path(), k, &["trust", "rotate", "status", "."]),
                r.run(rotating.path(), k, &["trust", "rotate", "next", "."]),
            ];
            assert_eq!(
                std::fs::read(rotating.path().join("fleet.yaml")).expect("read fleet"),
                before,
                "`next` wrote the fleet file"
            );
            runs
        }
        _ => return None,
    };
    Some(runs)
}

#[test]
fn every_row_of_the_readme_exit_code_table() {
    let table = readme_table();
    assert!(table.len() >= 10, "the table has its rows: {table:?}");
    let r = Runner::new();
    let mut failures = Vec::new();
    let mut check = |when: &str, code: i32, runs: Vec<Run>| {
        assert!(!runs.is_empty(), "row `{when}` runs nothing");
        for run in runs {
            let got = run.output.status.code().unwrap_or(-1);
            if got != code {
                let (stdout, stderr) = texts(&run.output);
                failures.push(format!(
                    "`{}` exited {got}, the README says {code} ({when})\nstdout:\n{stdout}\nstderr:\n{stderr}",
                    run.what
                ));
            }
        }
    };
    let mut live_rows = Vec::new();
    for (when, code) in &table {
        match offline_case(when, &r) {
            Some(runs) => check(when, *code, runs),
            None => live_rows.push((when.clone(), *code)),
        }
    }
    if !live_rows.is_empty() {
        let env = testenv::shared();
        let fleet = TempFleet::new(&fleet_text());
        // A fleet of the same clusters with another anchor: every bundle differs.
        let other = TempFleet::new(&fleet_text());
        let anchor = std::fs::read_to_string(fleet.path().join("anchor.crt")).expect("anchor");
        testenv::block_on(async {
            install_anchors(env.client("east").await, &anchor).await;
            install_anchors(env.client("west").await, &anchor).await;
        });
        for (when, code) in &live_rows {
            let runs = live_case(when, &r, env, fleet.path(), other.path())
                .unwrap_or_else(|| panic!("README row `{when}` has no case in {}", file!()));
            check(when, *code, runs);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
