//! Helpers shared by the integration tests: the binary, temp fleets, the repository.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use meshfleet_core::identity;
use secrecy::ExposeSecret as _;
use time::OffsetDateTime;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// `../shared` beside the repository (CRDs, seeds).
pub fn shared_dir() -> PathBuf {
    repo_root().join("../shared")
}

/// The `meshfleet` binary, run from `dir`, without colour.
pub fn meshfleet(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("meshfleet").expect("meshfleet binary");
    cmd.current_dir(dir).env("NO_COLOR", "1").env_remove("RUST_LOG");
    cmd
}

/// stdout and stderr as text.
pub fn texts(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A valid two-cluster fleet (gateway links both ways), for tests to mutate.
pub const BASE_FLEET: &str = "\
apiVersion: meshfleet.io/v1alpha1
kind: Fleet
metadata:
  name: test
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
    vault:
      server: https://vault.example:8200
      mount: secret
      path: linkerd
  clusters:
    - name: east
      vaultAuthMountPath: kubernetes-east
      apiServer: https://east.example:6443
      network:
        pods: [10.1.0.0/16]
        services: [10.101.0.0/16]
      gateway:
        addresses: [east.example]
    - name: west
      vaultAuthMountPath: kubernetes-west
      apiServer: https://west.example:6443
      network:
        pods: [10.2.0.0/16]
        services: [10.102.0.0/16]
      gateway:
        addresses: [west.example]
  links:
    - {source: east, target: west}
    - {source: west, target: east}
";

/// A temporary fleet folder with `fleet.yaml` and a fresh anchor `anchor.crt`.
pub struct TempFleet {
    /// Holds the folder alive.
    pub dir: tempfile::TempDir,
}

impl TempFleet {
    /// A fleet folder with `text` as `fleet.yaml` and a valid anchor.
    pub fn new(text: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("fleet.yaml"), text).expect("write fleet");
        let anchor = identity::generate_anchor(OffsetDateTime::now_utc()).expect("anchor");
        std::fs::write(dir.path().join("anchor.crt"), &anchor.cert_pem).expect("write anchor");
        std::fs::create_dir_all(dir.path().join(".meshfleet/keys")).expect("keys");
        std::fs::write(
            dir.path().join(".meshfleet/keys/trust-anchor.key"),
            anchor.key_pem.expose_secret(),
        )
        .expect("write key");
        Self { dir }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Replace `fleet.yaml`.
    pub fn write_fleet(&self, text: &str) {
        std::fs::write(self.path().join("fleet.yaml"), text).expect("write fleet");
    }

    /// Render into `<dir>/out` and return the output.
    pub fn render(&self) -> Output {
        meshfleet(self.path())
            .args(["render", ".", "--out", "out", "--any-dir"])
            .output()
            .expect("run render")
    }
}

/// The homelab example with Vault + External Secrets as its secrets backend
/// (`tests/fixtures/homelab-vault/fleet.yaml`, the example's `certs/`): the tests of the
/// Vault path and of Argo CD, which refuses SOPS, name it where they named `homelab`.
pub const HOMELAB_VAULT: &str = "homelab-vault";

/// An example's folder (`examples/<name>`; the homelab's for [`HOMELAB_VAULT`]).
pub fn example_dir(name: &str) -> PathBuf {
    let name = if name == HOMELAB_VAULT { "homelab" } else { name };
    repo_root().join("examples").join(name)
}

/// An example's fleet file, as text (the Vault fixture for [`HOMELAB_VAULT`]).
pub fn example_fleet_text(name: &str) -> String {
    let path = if name == HOMELAB_VAULT {
        repo_root().join("crates/meshfleet/tests/fixtures/homelab-vault/fleet.yaml")
    } else {
        example_dir(name).join("fleet.yaml")
    };
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A copy of an example folder (fleet and public anchor) in a temp dir.
pub fn example_copy(name: &str, engine: &str) -> tempfile::TempDir {
    example_copy_with(name, engine, "helm")
}

/// The image the tests give `installMethod: jobs`.
pub const JOBS_IMAGE: &str = "registry.example/linkerd-kubectl:edge-25.4.4";

/// A copy of an example with another engine and install method (`helm` or `jobs`).
pub fn example_copy_with(name: &str, engine: &str, install_method: &str) -> tempfile::TempDir {
    let src = example_dir(name);
    let dir = tempfile::tempdir().expect("tempdir");
    let text = example_fleet_text(name);
    let method = if install_method == "jobs" {
        format!("installMethod: jobs\n    jobs: {{image: {JOBS_IMAGE}}}")
    } else {
        "installMethod: helm".to_string()
    };
    let text = text
        .replace("engine: flux", &format!("engine: {engine}"))
        .replace("engine: argocd", &format!("engine: {engine}"))
        .replace("installMethod: helm", &method);
    std::fs::write(dir.path().join("fleet.yaml"), text).expect("write");
    std::fs::create_dir_all(dir.path().join("certs")).expect("certs");
    std::fs::copy(
        src.join("certs/trust-anchor.crt"),
        dir.path().join("certs/trust-anchor.crt"),
    )
    .expect("copy anchor");
    dir
}

/// Render a fleet folder into `out` (a fresh folder inside it) and read every file back.
pub fn render_files(fleet_dir: &Path) -> std::collections::BTreeMap<String, String> {
    let out = fleet_dir.join("rendered");
    let output = meshfleet(fleet_dir)
        .args(["render", ".", "--any-dir", "--out"])
        .arg(&out)
        .output()
        .expect("render");
    let (stdout, stderr) = texts(&output);
    assert!(
        output.status.success(),
        "render failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    read_tree(&out)
}

/// Every file under `root`, by relative path.
pub fn read_tree(root: &Path) -> std::collections::BTreeMap<String, String> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .expect("prefix")
                    .to_string_lossy()
                    .into_owned();
                files.insert(rel, std::fs::read_to_string(&path).expect("read"));
            }
        }
    }
    files
}

/// Every YAML document of every rendered `.yaml` file except kustomize files, as JSON.
pub fn rendered_objects(
    files: &std::collections::BTreeMap<String, String>,
) -> Vec<(String, serde_json::Value)> {
    let mut objects = Vec::new();
    for (path, text) in files {
        if std::path::Path::new(path).extension().is_none_or(|e| e != "yaml")
            || path.ends_with("kustomization.yaml")
        {
            continue;
        }
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(text).expect("rendered YAML parses");
        for doc in docs {
            if !doc.is_null() {
                objects.push((path.clone(), doc));
            }
        }
    }
    objects
}

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A kubeconfig whose contexts `east` and `west` point at closed ports.
pub fn unreachable_kubeconfig(dir: &Path) -> PathBuf {
    let clusters: Vec<serde_json::Value> = ["east", "west"]
        .iter()
        .map(|name| {
            serde_json::json!({"name": name, "cluster": {
                "server": format!("https://127.0.0.1:{}", closed_port()),
                "insecure-skip-tls-verify": true,
            }})
        })
        .collect();
    let contexts: Vec<serde_json::Value> = ["east", "west"]
        .iter()
        .map(|name| serde_json::json!({"name": name, "context": {"cluster": name, "user": "user"}}))
        .collect();
    let config = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "east",
        "clusters": clusters, "contexts": contexts,
        "users": [{"name": "user", "user": {"token": "not-a-real-token"}}],
    });
    let path = dir.join("unreachable.kubeconfig");
    std::fs::write(&path, config.to_string()).expect("write kubeconfig");
    path
}
