//! What users read from each command that needs no cluster, as snapshots of exit code,
//! stdout and stderr (`snapshots/integration__cli_snapshots__*.snap`). The commands
//! that read clusters are snapshotted in their own modules (`check`, `trust`,
//! `migrate`, `secrets_sync`), against the real test environment.

use std::path::Path;

use crate::snapshot_run;
use crate::support::{BASE_FLEET, TempFleet, meshfleet, repo_root, texts, unreachable_kubeconfig};

/// `meshfleet ARGS` run from the repository root, so example paths print as written.
fn at_root(args: &[&str]) -> std::process::Output {
    meshfleet(&repo_root())
        .args(args)
        .output()
        .expect("run meshfleet")
}

fn in_dir(dir: &Path, args: &[&str]) -> std::process::Output {
    meshfleet(dir).args(args).output().expect("run meshfleet")
}

/// A fleet with several problems at once: a typo'd field is a parse error, so this one
/// has only rule findings (overlapping CIDRs, a self-link, a NodePort out of range).
fn invalid_fleet() -> TempFleet {
    let text = BASE_FLEET
        .replace("pods: [10.2.0.0/16]", "pods: [10.1.128.0/17]")
        .replace(
            "    - {source: west, target: east}\n",
            "    - {source: west, target: east}\n    - {source: west, target: west}\n",
        )
        .replace(
            "      gateway:\n        addresses: [west.example]",
            "      gateway:\n        serviceType: NodePort\n        nodePort: 4143\n        addresses: [west.example]",
        );
    TempFleet::new(&text)
}

#[test]
fn validate_snapshots() {
    snapshot_run!("validate_valid", at_root(&["validate", "examples/homelab"]));
    snapshot_run!(
        "validate_valid_json",
        at_root(&["-o", "json", "validate", "examples/hub-spoke"])
    );
    let fleet = invalid_fleet();
    snapshot_run!("validate_invalid", in_dir(fleet.path(), &["validate", "."]));
    snapshot_run!(
        "validate_invalid_json",
        in_dir(fleet.path(), &["-o", "json", "validate", "."])
    );
    let syntax = TempFleet::new(&BASE_FLEET.replace(
        "    - {source: east, target: west}",
        "    - {source: east, target: west",
    ));
    snapshot_run!("validate_yaml_syntax", in_dir(syntax.path(), &["validate", "."]));
    let typo = TempFleet::new(&BASE_FLEET.replace("addresses: [east.example]", "adresses: [east.example]"));
    snapshot_run!("validate_unknown_field", in_dir(typo.path(), &["validate", "."]));
    snapshot_run!("validate_missing_path", at_root(&["validate", "no/such/fleet"]));
    // Issue 23: the hint names the Dockerfile to build the Jobs' image from.
    let jobs = TempFleet::new(&BASE_FLEET.replace(
        "    engine: flux\n",
        "    engine: flux\n    installMethod: jobs\n",
    ));
    snapshot_run!(
        "validate_jobs_without_image",
        in_dir(jobs.path(), &["validate", "."])
    );
}

#[test]
fn render_snapshots() {
    let out = tempfile::tempdir().expect("tempdir");
    let target = out.path().join("gitops");
    let target_arg = target.to_str().expect("UTF-8");
    snapshot_run!(
        "render_written",
        at_root(&["render", "examples/homelab", "--any-dir", "--out", target_arg])
    );
    snapshot_run!(
        "render_check_up_to_date",
        at_root(&[
            "render",
            "examples/homelab",
            "--out",
            "examples/homelab/gitops",
            "--check"
        ])
    );
    // Stale: one file changed, one removed, one that meshfleet would not write.
    std::fs::write(target.join("studio/kustomization.yaml"), "# edited by hand\n").expect("edit");
    std::fs::remove_file(target.join("pro/kustomization.yaml")).expect("remove");
    std::fs::write(target.join("studio/extra.yaml"), "kind: Extra\n").expect("add");
    snapshot_run!(
        "render_check_stale",
        at_root(&[
            "render",
            "examples/homelab",
            "--any-dir",
            "--out",
            target_arg,
            "--check"
        ])
    );
    // Issue 23: `-o json` was accepted and ignored.
    snapshot_run!(
        "render_check_stale_json",
        at_root(&[
            "-o",
            "json",
            "render",
            "examples/homelab",
            "--any-dir",
            "--out",
            target_arg,
            "--check"
        ])
    );
    let fleet = invalid_fleet();
    snapshot_run!(
        "render_invalid_fleet",
        in_dir(fleet.path(), &["render", ".", "--any-dir", "--out", "out"])
    );
}

#[test]
fn certs_snapshots() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("fleet.yaml"), BASE_FLEET).expect("write fleet");
    snapshot_run!("certs_init", in_dir(dir.path(), &["certs", "init", "."]));
    snapshot_run!("certs_init_exists", in_dir(dir.path(), &["certs", "init", "."]));
    let inspect = [
        "certs",
        "inspect",
        "examples/homelab/certs/trust-anchor.crt",
        "--fleet",
        "examples/homelab",
    ];
    snapshot_run!("certs_inspect", at_root(&inspect));
    let mut json = vec!["-o", "json"];
    json.extend(inspect);
    snapshot_run!("certs_inspect_json", at_root(&json));
    snapshot_run!(
        "certs_inspect_key",
        in_dir(
            dir.path(),
            &["certs", "inspect", ".meshfleet/keys/trust-anchor.key"]
        )
    );
}

#[test]
fn graph_snapshot() {
    snapshot_run!(
        "graph_mermaid",
        at_root(&["graph", "examples/hub-spoke", "--format", "mermaid"])
    );
    // Issue 23: `-o json` was accepted and ignored; now the picture as data.
    snapshot_run!(
        "graph_json",
        at_root(&["-o", "json", "graph", "examples/hub-spoke"])
    );
}

/// Issue 23: `meshfleet version` with the Linkerd releases it supports, and `completion`
/// beside `completions`, as linkerd, flux, argocd, helm and kubectl name them.
#[test]
fn version_and_completion_snapshots() {
    snapshot_run!("version", at_root(&["version"]));
    snapshot_run!("version_json", at_root(&["-o", "json", "version"]));
    for shell in ["bash", "zsh", "fish"] {
        let old = at_root(&["completions", shell]);
        let new = at_root(&["completion", shell]);
        assert!(new.status.success(), "{shell}: {new:?}");
        assert_eq!(new.stdout, old.stdout, "{shell}");
    }
}

/// Issue 23: `--kubeconfig` was offered on `schema` and `man`, where it means nothing.
/// Only the commands that read clusters offer it after their name (help, man pages,
/// completions); `schema`, `man`, `completions` and `version` refuse it; `validate`,
/// `render` and `certs`, where scripts may pass it, still accept it without offering it;
/// before the command it is accepted, as it always was.
#[test]
fn kubeconfig_only_where_clusters_are_read() {
    snapshot_run!(
        "schema_kubeconfig_refused",
        at_root(&["schema", "--kubeconfig", "k"])
    );
    for args in [
        &["man", "--kubeconfig", "k"][..],
        &["completions", "bash", "--kubeconfig", "k"],
        &["version", "--kubeconfig", "k"],
    ] {
        let out = at_root(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            texts(&out).1.contains("unexpected argument '--kubeconfig' found"),
            "{args:?}: {out:?}"
        );
    }
    for (words, offered) in [
        (&["schema"][..], false),
        (&["man"], false),
        (&["validate"], false),
        (&["certs", "init"], false),
        (&["check"], true),
        (&["graph"], true),
        (&["migrate"], true),
        (&["secrets", "sync"], true),
        (&["secrets", "status"], true),
        (&["trust", "extract"], true),
        (&["trust", "verify"], true),
        (&["trust", "rotate", "next"], true),
        (&["trust", "rotate", "status"], true),
    ] {
        let mut args = words.to_vec();
        args.push("--help");
        let help = texts(&at_root(&args)).0;
        assert_eq!(help.contains("--kubeconfig"), offered, "{words:?}:\n{help}");
    }
    // Before the command, as before; after it where scripts may have passed it.
    for args in [
        &["--kubeconfig", "k", "validate", "examples/homelab"][..],
        &["validate", "examples/homelab", "--kubeconfig", "k"],
        &["--kubeconfig", "k", "schema"],
    ] {
        let out = at_root(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    let completions = texts(&at_root(&["completion", "bash"])).0;
    let schema_words = completions
        .split("meshfleet__subcmd__schema)")
        .nth(1)
        .and_then(|rest| rest.lines().find(|l| l.contains("opts=")))
        .expect("the options bash completes for `schema`");
    assert!(!schema_words.contains("--kubeconfig"), "{schema_words}");
}

/// Issue 23: `--color auto|always|never`, `NO_COLOR` and `CLICOLOR_FORCE` (the flag wins
/// over both; `NO_COLOR` over `CLICOLOR_FORCE`). stdout is a pipe here, so `auto`
/// colours only under `CLICOLOR_FORCE`.
#[test]
fn color_flag_and_environment() {
    let colored = |flag: Option<&str>, no_color: bool, force: bool| {
        let mut cmd = meshfleet(&repo_root());
        cmd.env_remove("NO_COLOR").env_remove("CLICOLOR_FORCE");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        if force {
            cmd.env("CLICOLOR_FORCE", "1");
        }
        if let Some(flag) = flag {
            cmd.args(["--color", flag]);
        }
        let out = cmd.args(["validate", "examples/homelab"]).output().expect("run");
        assert!(out.status.success(), "{out:?}");
        let stdout = texts(&out).0;
        assert!(stdout.contains("fleet `homelab` is valid"), "{stdout}");
        stdout.contains("\u{1b}[1;32m✓\u{1b}[0m")
    };
    assert!(!colored(None, false, false), "a pipe, no colour");
    assert!(colored(None, false, true), "CLICOLOR_FORCE colours a pipe");
    assert!(!colored(None, true, true), "NO_COLOR wins over CLICOLOR_FORCE");
    assert!(
        colored(Some("always"), true, false),
        "--color always wins over NO_COLOR"
    );
    assert!(
        !colored(Some("never"), false, true),
        "--color never wins over CLICOLOR_FORCE"
    );
    assert!(!colored(Some("auto"), false, false));
}

/// Issue 23: with every cluster unreachable, `migrate` ended with "no legacy `linkerd
/// multicluster link` controllers found"; `trust verify` exits 2 (see exit_codes.rs).
#[test]
fn live_commands_when_no_cluster_answers() {
    let fleet = TempFleet::new(BASE_FLEET);
    let kubeconfig = unreachable_kubeconfig(fleet.path());
    let k = kubeconfig.to_str().expect("UTF-8");
    snapshot_run!(
        "migrate_no_cluster_readable",
        in_dir(fleet.path(), &["migrate", ".", "--kubeconfig", k])
    );
    snapshot_run!(
        "trust_verify_no_cluster_readable",
        in_dir(fleet.path(), &["trust", "verify", ".", "--kubeconfig", k])
    );
}

#[test]
fn usage_and_setup_error_snapshots() {
    snapshot_run!("no_command", at_root(&[]));
    snapshot_run!(
        "check_zero_timeout",
        at_root(&["check", "examples/homelab", "--timeout", "0"])
    );
    snapshot_run!(
        "check_missing_kubeconfig",
        at_root(&["check", "examples/homelab", "--kubeconfig", "no/such/kubeconfig"])
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("kubeconfig"),
        "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: a-token-that-is-never-shown\n    username: [x\n",
    )
    .expect("write kubeconfig");
    snapshot_run!(
        "trust_extract_malformed_kubeconfig",
        in_dir(
            dir.path(),
            &[
                "trust",
                "extract",
                "--context",
                "east",
                "--kubeconfig",
                "kubeconfig"
            ]
        )
    );
    let fleet = TempFleet::new(BASE_FLEET);
    let output = meshfleet(fleet.path())
        .env("HOME", fleet.path())
        .env_remove("VAULT_TOKEN")
        .env_remove("VAULT_ADDR")
        .args(["secrets", "sync", "."])
        .output()
        .expect("run");
    snapshot_run!("secrets_sync_no_token", output);
}

/// One man page per command, as git and cargo ship theirs: printed one at a time, or
/// all written into a folder.
#[test]
fn man_page_snapshots() {
    snapshot_run!("man_validate", at_root(&["man", "validate"]));
    snapshot_run!(
        "man_unknown_command",
        at_root(&["man", "trust", "rotate", "sideways"])
    );
    let alias = at_root(&["man", "completion"]);
    assert!(alias.status.success(), "{alias:?}");
    assert_eq!(alias.stdout, at_root(&["man", "completions"]).stdout);
    let by_words = at_root(&["man", "trust", "rotate", "next"]);
    let by_name = at_root(&["man", "meshfleet-trust-rotate-next"]);
    assert!(by_words.status.success());
    assert_eq!(by_words.stdout, by_name.stdout);

    let dir = tempfile::tempdir().expect("tempdir");
    let out = at_root(&["man", "--out", dir.path().to_str().expect("UTF-8")]);
    assert!(out.status.success(), "{out:?}");
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read the folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    insta::assert_snapshot!("man_out_files", files.join("\n"));
    for file in &files {
        let page = std::fs::read_to_string(dir.path().join(file)).expect("read a page");
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "\"EXIT STATUS\"",
            "EXAMPLES",
        ] {
            assert!(
                page.contains(&format!("\n.SH {section}\n")),
                "{file} lacks {section}"
            );
        }
    }
    // `meshfleet man` with no argument prints the main page, as it always did.
    let main = at_root(&["man"]);
    assert_eq!(
        main.stdout,
        std::fs::read(dir.path().join("meshfleet.1")).expect("meshfleet.1")
    );
}
