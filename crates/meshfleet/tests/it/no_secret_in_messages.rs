//! Issue 11: nothing meshfleet prints or logs quotes the content of a kubeconfig, a
//! Secret, a Vault value or a key file.
//!
//! One sentinel token is placed in every input that can carry a secret, each time
//! next to (or inside) a mistake that makes meshfleet report on that input:
//!
//! | input | where the sentinel is |
//! | --- | --- |
//! | user kubeconfig (`--kubeconfig`, `KUBECONFIG`) | `token:` a few lines above a YAML mistake; a token the API server rejects; an invalid `client-key-data`; the output of a failing exec plugin |
//! | credentials Secret kubeconfig (on the cluster) | `token:` above a YAML mistake; a token the target rejects (read by `check` and by `import`, whose written files are searched too) |
//! | Vault values | the values `secrets sync` reads and replaces; `VAULT_TOKEN` itself |
//! | key files | a header line and the body of `trust-anchor.key` and an issuer key |
//! | the anchor file | a PEM block of its own inside `identity.trustAnchor` |
//!
//! Every command that reads the input runs three times (text, `-o json`, `-vv`), against
//! real API servers and a real OpenBao (`testenv::private`). Each run must exit with
//! its documented code, say WHERE the problem is (a file and line, a Secret, a Vault
//! path), and never print the sentinel, on stdout or stderr.

use std::path::{Path, PathBuf};
use std::process::Output;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use meshfleet_core::defaults;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;

use crate::fixtures::{FleetFixture, apply, credentials_secret};
use crate::support::{meshfleet, texts};
use crate::testenv::{self, TestEnv};

/// Alphanumeric, so it fits everywhere a secret does: a token, an HTTP header, a YAML
/// scalar, the base64 body of a PEM block.
const SENTINEL: &str = "MFSENTINEL0issue11x7Q2W9Z4Kq";

/// The output modes every case runs in.
const MODES: [&[&str]; 3] = [&[], &["-o", "json"], &["-vv"]];

/// A fleet of two clusters linked both ways, Vault keys under `secret/issue11/`.
fn fleet_text(env: &TestEnv, issuer: &str) -> String {
    let port = |name: &str| env.server(name).rsplit(':').next().expect("port").to_string();
    format!(
        "\
apiVersion: meshfleet.io/v1alpha1
kind: Fleet
metadata:
  name: issue11
spec:
  linkerd:
    version: 2025.4.4
  gitops:
    engine: flux
    repository:
      url: https://github.com/example/fleet.git
  identity:
    trustAnchor: certs/trust-anchor.crt
    issuer: {issuer}
  secrets:
    vault:
      server: https://vault.example:8200
      mount: secret
      path: issue11
  clusters:
    - name: east
      vaultAuthMountPath: kubernetes-east
      apiServer: https://kubernetes.default.svc:{east}
      network: {{pods: [10.1.0.0/16], services: [10.101.0.0/16]}}
      gateway: {{addresses: [192.0.2.10]}}
    - name: west
      vaultAuthMountPath: kubernetes-west
      apiServer: https://kubernetes.default.svc:{west}
      network: {{pods: [10.2.0.0/16], services: [10.102.0.0/16]}}
      gateway: {{addresses: [192.0.2.20]}}
  links:
    - {{source: east, target: west}}
    - {{source: west, target: east}}
",
        east = port("east"),
        west = port("west"),
    )
}

/// A fleet folder with `certs init` run in it.
fn fleet_dir(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("fleet.yaml"), text).expect("write fleet");
    let init = meshfleet(dir.path())
        .args(["certs", "init", "."])
        .output()
        .expect("certs init");
    assert!(init.status.success(), "certs init: {:?}", texts(&init));
    dir
}

fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A kubeconfig with a context per cluster of `env`, the real servers and CAs, and
/// `user` (YAML, indented for `user:`) as every context's user.
fn kubeconfig_with_user(env: &TestEnv, user: &str) -> String {
    let mut text = String::from("apiVersion: v1\nkind: Config\nclusters:\n");
    for name in env.names() {
        let ca = base64::engine::general_purpose::STANDARD.encode(env.ca_pem(name));
        text.push_str(&format!(
            "- name: {name}\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\n",
            env.server(name)
        ));
    }
    text.push_str("users:\n- name: someone\n  user:\n");
    text.push_str(user);
    text.push_str("contexts:\n");
    for name in env.names() {
        text.push_str(&format!(
            "- name: {name}\n  context: {{cluster: {name}, user: someone}}\n"
        ));
    }
    text.push_str("current-context: east\n");
    text
}

/// What one run must show: its exit code and the words that say where the problem is.
struct Expect {
    code: i32,
    says: Vec<&'static str>,
}

fn expect(code: i32, says: &[&'static str]) -> Expect {
    Expect {
        code,
        says: says.to_vec(),
    }
}

/// One command on one input, run in every mode.
struct Case<'a> {
    /// The input that carries the sentinel, for messages.
    input: &'a str,
    /// The folder the command runs in.
    dir: &'a Path,
    /// The kubeconfig (`--kubeconfig`), if any.
    kubeconfig: Option<&'a Path>,
    /// Extra environment.
    env: Vec<(&'a str, String)>,
    /// The arguments after the global flags.
    args: Vec<&'a str>,
    expect: Expect,
    /// Run before each mode (to put the sentinel back where a run replaced it).
    before: Option<&'a dyn Fn()>,
}

impl Case<'_> {
    fn run(&self, mode: &[&str]) -> Output {
        let mut command = meshfleet(self.dir);
        command.env("HOME", self.dir).env_remove("KUBECONFIG");
        for name in ["VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT"] {
            command.env_remove(name);
        }
        command.envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        if let Some(kubeconfig) = self.kubeconfig {
            command.arg("--kubeconfig").arg(kubeconfig);
        }
        command
            .args(mode)
            .args(&self.args)
            .output()
            .expect("run meshfleet")
    }

    /// Run in every mode; collect what went wrong instead of stopping at the first.
    fn check(&self, problems: &mut Vec<String>) {
        for mode in MODES {
            if let Some(before) = self.before {
                before();
            }
            let output = self.run(mode);
            let (stdout, stderr) = texts(&output);
            let code = output.status.code().unwrap_or(-1);
            let what = format!(
                "{} | meshfleet {} {}",
                self.input,
                mode.join(" "),
                self.args.join(" ")
            );
            let shown = format!("exit {code}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
            if stdout.contains(SENTINEL) || stderr.contains(SENTINEL) {
                problems.push(format!("{what}: THE SENTINEL WAS PRINTED\n{shown}"));
                continue;
            }
            if code != self.expect.code {
                problems.push(format!("{what}: exit {code}, want {}\n{shown}", self.expect.code));
            }
            for says in &self.expect.says {
                if !stdout.contains(says) && !stderr.contains(says) {
                    problems.push(format!(
                        "{what}: does not say `{says}` (where the problem is)\n{shown}"
                    ));
                }
            }
            if mode == ["-o", "json"]
                && !stdout.trim().is_empty()
                && let Err(e) = serde_json::from_str::<serde_json::Value>(&stdout)
            {
                problems.push(format!("{what}: stdout is not JSON ({e})\n{shown}"));
            }
        }
    }
}

/// Write `data` to a KV v2 key with OpenBao's root token.
async fn vault_put(env: &TestEnv, key: &str, data: serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/secret/data/{key}", env.vault_addr()))
        .header("X-Vault-Token", env.vault_token().expose_secret())
        .json(&json!({ "data": data }))
        .send()
        .await
        .expect("OpenBao answers");
    assert!(
        response.status().is_success(),
        "write {key}: {}",
        response.status()
    );
}

/// Give both credentials Secrets of a link a kubeconfig.
async fn set_credentials(
    fixture: &FleetFixture,
    env: &TestEnv,
    source: &str,
    target: &str,
    kubeconfig: &str,
) {
    let link = fixture.link(source, target);
    let client = env.client(source).await;
    let kubeconfig = SecretString::from(kubeconfig.to_string());
    for (ns, for_destination) in [
        (defaults::MULTICLUSTER_NAMESPACE, false),
        (fixture.plan.linkerd.namespace.as_str(), true),
    ] {
        let secret: Secret = credentials_secret(&fixture.plan, link, ns, for_destination, &kubeconfig);
        apply(&client, &secret).await;
    }
}

#[test]
#[allow(clippy::too_many_lines)] // one table of cases, read top to bottom
fn issue_11_no_sentinel_in_any_output() {
    let env = testenv::private(&["east", "west"]);
    let fleet = fleet_dir(&fleet_text(&env, "cert-manager"));
    let fixture = FleetFixture::load(fleet.path());
    let inputs = tempfile::tempdir().expect("tempdir");
    let file = |name: &str| -> PathBuf { inputs.path().join(name) };

    testenv::block_on(async {
        let mut clients = std::collections::BTreeMap::new();
        for name in env.names() {
            clients.insert(name.clone(), env.client(name).await);
        }
        fixture.install(&clients).await;
        // east -> west: the token on the line above a YAML mistake.
        let malformed = format!(
            "apiVersion: v1\nkind: Config\nusers:\n- name: sa\n  user:\n    token: {SENTINEL}\n\
             \x20   username: [{SENTINEL}\nclusters: []\n"
        );
        set_credentials(&fixture, &env, "east", "west", &malformed).await;
        // west -> east: well formed, with a token east rejects.
        set_credentials(
            &fixture,
            &env,
            "west",
            "east",
            &kubeconfig_with_user(&env, &format!("    token: {SENTINEL}\n")),
        )
        .await;
    });

    // The user's kubeconfigs.
    let good = env.kubeconfig();
    write(
        &file("malformed.kubeconfig"),
        &format!(
            "apiVersion: v1\nkind: Config\nusers:\n- name: someone\n  user:\n    token: {SENTINEL}\n\
             \x20   username: [{SENTINEL}\ncontexts: []\n"
        ),
    );
    write(
        &file("rejected.kubeconfig"),
        &kubeconfig_with_user(&env, &format!("    token: {SENTINEL}\n")),
    );
    write(
        &file("bad-key.kubeconfig"),
        &kubeconfig_with_user(
            &env,
            &format!(
                "    client-certificate-data: LS0tLS1CRUdJTg==\n    client-key-data: {SENTINEL}-not-base64\n"
            ),
        ),
    );
    write(
        &file("plugin.kubeconfig"),
        &kubeconfig_with_user(
            &env,
            &format!(
                "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: sh\n      args: ['-c', 'echo {SENTINEL}; echo {SENTINEL} >&2; exit 3']\n      interactiveMode: Never\n"
            ),
        ),
    );

    // Key files and anchor files, each in a copy of the fleet folder.
    let bad_key = fleet_dir(&fleet_text(&env, "cert-manager"));
    let key_text = format!(
        "-----BEGIN PRIVATE KEY-----\nProc-Type: {SENTINEL}\n\n{SENTINEL}\n-----END PRIVATE KEY-----\n"
    );
    write(
        &bad_key.path().join(".meshfleet/keys/trust-anchor.key"),
        &key_text,
    );
    write(&file("sentinel.key"), &key_text);
    write(
        &file("labelled.pem"),
        &format!("-----BEGIN {SENTINEL}-----\nMIIB\n-----END {SENTINEL}-----\n"),
    );
    let vault_issuers = fleet_dir(&fleet_text(&env, "vault"));
    write(
        &vault_issuers.path().join(".meshfleet/keys/issuer/east.key"),
        &key_text,
    );
    let reissue = tempfile::tempdir().expect("tempdir");
    write(&reissue.path().join("fleet.yaml"), &fleet_text(&env, "vault"));
    std::fs::create_dir_all(reissue.path().join("certs")).expect("certs");
    std::fs::copy(
        fleet.path().join("certs/trust-anchor.crt"),
        reissue.path().join("certs/trust-anchor.crt"),
    )
    .expect("copy anchor");
    write(
        &reissue.path().join(".meshfleet/keys/trust-anchor.key"),
        &key_text,
    );
    let bad_anchor = fleet_dir(&fleet_text(&env, "cert-manager"));
    let anchor_path = bad_anchor.path().join("certs/trust-anchor.crt");
    let anchor = std::fs::read_to_string(&anchor_path).expect("anchor");
    write(
        &anchor_path,
        &format!("{anchor}-----BEGIN CERTIFICATE-----\n{SENTINEL}\n-----END CERTIFICATE-----\n"),
    );

    let vault = |token: &str| {
        vec![
            ("VAULT_ADDR", env.vault_addr().to_string()),
            ("VAULT_TOKEN", token.to_string()),
        ]
    };
    let root = env.vault_token().expose_secret().to_string();
    let sentinel_key = file("sentinel.key");
    let anchor_arg = anchor_path.display().to_string();
    let labelled = file("labelled.pem");
    let merged = std::env::join_paths([good.as_path(), file("malformed.kubeconfig").as_path()])
        .expect("KUBECONFIG list")
        .into_string()
        .expect("UTF-8 paths");
    let user_kubeconfigs = [
        // input, file, exit codes of check, trust verify, trust extract, migrate and
        // secrets sync, and what says where
        (
            "user kubeconfig: a token above a YAML mistake",
            file("malformed.kubeconfig"),
            [2, 2, 2, 2, 2],
            &["malformed.kubeconfig", "line "][..],
        ),
        (
            "user kubeconfig: a token the API server rejects",
            file("rejected.kubeconfig"),
            [1, 2, 2, 2, 2],
            &["401"][..],
        ),
        (
            "user kubeconfig: client-key-data that is not base64",
            file("bad-key.kubeconfig"),
            [1, 2, 2, 2, 2],
            &["client-key-data"][..],
        ),
        (
            "user kubeconfig: an exec plugin that prints it and fails",
            file("plugin.kubeconfig"),
            [1, 2, 2, 2, 2],
            &["credential plugin"][..],
        ),
    ];

    let mut cases: Vec<Case<'_>> = Vec::new();
    for (input, path, codes, says) in &user_kubeconfigs {
        for (args, code) in [
            (vec!["check", ".", "--timeout", "5"], codes[0]),
            (vec!["trust", "verify", "."], codes[1]),
            (vec!["trust", "extract", "--context", "east"], codes[2]),
            (vec!["migrate", "."], codes[3]),
            (vec!["secrets", "sync", ".", "--dry-run"], codes[4]),
        ] {
            cases.push(Case {
                input,
                dir: fleet.path(),
                kubeconfig: Some(path.as_path()),
                env: vault(&root),
                args,
                expect: expect(code, says),
                before: None,
            });
        }
    }
    cases.push(Case {
        input: "KUBECONFIG: the second file has a token above a YAML mistake",
        dir: fleet.path(),
        kubeconfig: None,
        env: vec![("KUBECONFIG", merged.clone())],
        args: vec!["check", ".", "--timeout", "5"],
        expect: expect(2, &["malformed.kubeconfig", "line "]),
        before: None,
    });
    // The credentials Secrets on the clusters, read by `check`.
    cases.push(Case {
        input: "credentials Secrets: a token above a YAML mistake; a token the target rejects",
        dir: fleet.path(),
        kubeconfig: Some(good.as_path()),
        env: Vec::new(),
        args: vec!["check", ".", "--timeout", "5"],
        expect: expect(1, &["cluster-credentials-west", "line ", "does not accept"]),
        before: None,
    });
    // The same Secrets, read by `import` (which also writes a file: it must not hold the
    // sentinel either, and each run needs a new one).
    let adopted = tempfile::tempdir().expect("tempdir");
    let adopted_file = adopted.path().join("fleet.yaml");
    let imported_clean = || {
        for name in ["fleet.yaml", "certs/trust-anchor.crt"] {
            let path = adopted.path().join(name);
            if let Ok(text) = std::fs::read_to_string(&path) {
                assert!(
                    !text.contains(SENTINEL),
                    "`import` wrote the sentinel into {name}"
                );
                std::fs::remove_file(&path).expect("remove");
            }
        }
    };
    cases.push(Case {
        input: "credentials Secrets, read by `import`",
        dir: fleet.path(),
        kubeconfig: Some(good.as_path()),
        env: Vec::new(),
        args: vec![
            "import",
            "--context",
            "east",
            "--context",
            "west",
            "--out",
            adopted_file.to_str().expect("UTF-8"),
            "--timeout",
            "5",
        ],
        expect: expect(1, &["cluster-credentials-west", "line "]),
        before: Some(&imported_clean),
    });
    // Key files.
    for (input, dir, args, code, says) in [
        (
            "anchor key file: the sentinel in a header line and the body",
            bad_key.path(),
            vec!["secrets", "sync", "."],
            2,
            "trust-anchor.key",
        ),
        (
            "issuer key file: the sentinel in a header line and the body",
            vault_issuers.path(),
            vec!["secrets", "sync", ".", "--dry-run"],
            2,
            "east.key",
        ),
        (
            "anchor key file, read to sign new issuers",
            reissue.path(),
            vec!["certs", "init", "."],
            2,
            "private key",
        ),
    ] {
        cases.push(Case {
            input,
            dir,
            kubeconfig: Some(good.as_path()),
            env: vault(&root),
            args,
            expect: expect(code, &[says]),
            before: None,
        });
    }
    cases.push(Case {
        input: "a key file given to certs inspect",
        dir: inputs.path(),
        kubeconfig: None,
        env: Vec::new(),
        args: vec!["certs", "inspect", sentinel_key.to_str().expect("UTF-8")],
        expect: expect(1, &["sentinel.key"]),
        before: None,
    });
    cases.push(Case {
        input: "a PEM block labelled with the sentinel",
        dir: inputs.path(),
        kubeconfig: None,
        env: Vec::new(),
        args: vec!["certs", "inspect", labelled.to_str().expect("UTF-8")],
        expect: expect(1, &["another kind of PEM block"]),
        before: None,
    });
    // The anchor file, through every command that reads the fleet.
    for (args, code) in [
        (vec!["validate", "."], 1),
        (vec!["render", ".", "--any-dir", "--out", "out"], 1),
        (vec!["graph", "."], 1),
        (vec!["check", ".", "--timeout", "5"], 1),
        (vec!["trust", "verify", "."], 1),
        (vec!["migrate", "."], 1),
        (vec!["secrets", "sync", ".", "--dry-run"], 1),
        // With the fleet beside it, `certs inspect` reads the fleet's anchor first.
        (vec!["certs", "inspect", "certs/trust-anchor.crt"], 2),
        (vec!["certs", "inspect", "--fleet", ".", "fleet.yaml"], 2),
    ] {
        cases.push(Case {
            input: "the anchor file: a PEM block with the sentinel as its body",
            dir: bad_anchor.path(),
            kubeconfig: Some(good.as_path()),
            env: vault(&root),
            args,
            expect: expect(code, &["trust-anchor"]),
            before: None,
        });
    }
    cases.push(Case {
        input: "the anchor file given to certs inspect, without a fleet",
        dir: inputs.path(),
        kubeconfig: None,
        env: Vec::new(),
        args: vec!["certs", "inspect", anchor_arg.as_str()],
        expect: expect(1, &["trust-anchor.crt"]),
        before: None,
    });
    // Vault: a token that is the sentinel.
    cases.push(Case {
        input: "VAULT_TOKEN",
        dir: fleet.path(),
        kubeconfig: Some(good.as_path()),
        env: vault(SENTINEL),
        args: vec!["secrets", "sync", "."],
        expect: expect(2, &["permission denied"]),
        before: None,
    });

    // Vault values: `secrets sync` reads them, compares and replaces them; the old
    // values are never shown, whatever the mode. They are put back before each run.
    let put_sentinels = || {
        testenv::block_on(async {
            vault_put(
                &env,
                "issue11/credentials/east-to-west",
                json!({"kubeconfig": format!("token: {SENTINEL}")}),
            )
            .await;
            vault_put(
                &env,
                "issue11/trust-anchor",
                json!({"tls.crt": SENTINEL, "tls.key": SENTINEL, "extra": {"nested": SENTINEL}}),
            )
            .await;
        });
    };
    for (args, code) in [
        (vec!["secrets", "sync", ".", "--dry-run"], 0),
        (vec!["secrets", "sync", "."], 0),
    ] {
        cases.push(Case {
            input: "Vault values that hold the sentinel",
            dir: fleet.path(),
            kubeconfig: Some(good.as_path()),
            env: vault(&root),
            args,
            expect: expect(code, &["credentials/east-to-west", "trust-anchor"]),
            before: Some(&put_sentinels),
        });
    }

    let mut problems = Vec::new();
    for case in &cases {
        case.check(&mut problems);
    }
    imported_clean();
    assert!(
        problems.is_empty(),
        "{} problem(s) in {} cases:\n\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n\n")
    );
}
