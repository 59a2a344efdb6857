//! A rotation with Linkerd's real identity controller on three clusters: `testenv/run
//! mesh` installs the rendered tree with the real CLI, and the environment's kubelet runs
//! `controller identity` for `linkerd-identity` with the issuer Secret and trust roots the
//! tree produced (testenv/lib/kubelet.py). The test plays a proxy: it asks each cluster's
//! identity service for a certificate (the Certify API of `linkerd2-proxy-api`) with a CSR
//! and a real ServiceAccount token (audience `identity.l5d.io`), and checks with `openssl
//! verify` that every cluster's leaf (with the intermediates the controller returns)
//! verifies against every cluster's bundle in use, at every phase.
//!
//! After the install the test plays the GitOps engine for the bundle (the rendered
//! values applied to the trust-roots ConfigMaps, as in `world.rs`), External Secrets
//! through the environment's stand-in (`force-sync` after `secrets sync`), and the
//! restarts `trust rotate status` lists (`rollout restart`: a new pod template, so the
//! kubelet restarts the controller, which then reads the new bundle).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, ServiceAccount};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use linkerd2_proxy_api::identity::CertifyRequest;
use linkerd2_proxy_api::identity::identity_client::IdentityClient;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use super::world::{Run, apply_bundle, fingerprints, read, rendered_bundle};
use crate::support::{meshfleet, texts};
use crate::testenv::{self, PrivateEnv};

const CLUSTERS: [&str; 3] = ["i1", "i2", "i3"];
const WORKLOAD: (&str, &str) = ("apps", "web");

pub struct RealWorld {
    issuer: &'static str,
    version: &'static str,
    clusters: &'static [&'static str],
    env: PrivateEnv,
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    clients: BTreeMap<String, kube::Client>,
}

fn fleet_text(
    ports: &BTreeMap<&str, String>,
    issuer: &str,
    engine: &str,
    version: &str,
    clusters: &[&str],
) -> String {
    let mut text = format!(
        "apiVersion: meshfleet.io/v1alpha1\nkind: Fleet\nmetadata:\n  name: identity\nspec:\n  linkerd:\n    version: {version}\n    viz: false\n  gitops:\n    engine: {engine}\n    repository: {{url: https://github.com/example/fleet.git}}\n  identity:\n    trustAnchor: certs/trust-anchor.crt\n    issuer: {issuer}\n  secrets:\n    vault: {{server: https://vault.example:8200, mount: secret, path: real-identity}}\n  clusters:\n"
    );
    for (i, name) in clusters.iter().enumerate() {
        text.push_str(&format!(
            "    - name: {name}\n      vaultAuthMountPath: kubernetes-{name}\n      apiServer: https://kubernetes.default.svc:{}\n      network: {{pods: [10.{n}.0.0/16], services: [10.10{n}.0.0/16]}}\n",
            ports[name],
            n = i + 1
        ));
    }
    text
}

impl RealWorld {
    /// `issuer`: `vault` or `cert-manager`; `engine`: `flux` or `argocd`. Linkerd
    /// 2025.4.4 on three clusters.
    pub fn new(issuer: &'static str, engine: &str) -> Self {
        Self::with(issuer, engine, "2025.4.4", &CLUSTERS)
    }

    /// A fleet of Linkerd `version` on `clusters`.
    pub fn with(
        issuer: &'static str,
        engine: &str,
        version: &'static str,
        clusters: &'static [&'static str],
    ) -> Self {
        let env = testenv::private(clusters);
        let ports: BTreeMap<&str, String> = clusters
            .iter()
            .map(|n| (*n, env.server(n).rsplit(':').next().expect("port").to_owned()))
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("fleet.yaml"),
            fleet_text(&ports, issuer, engine, version, clusters),
        )
        .expect("write fleet");
        let rt = testenv::runtime();
        let clients = rt.block_on(async {
            let mut clients = BTreeMap::new();
            for name in clusters {
                clients.insert(name.to_string(), env.client(name).await);
            }
            clients
        });
        let world = Self {
            issuer,
            version,
            clusters,
            env,
            rt,
            dir,
            clients,
        };
        world.meshfleet(&["certs", "init", "."]).expect(0);
        world.meshfleet(&["render", ".", "--out", "gitops"]).expect(0);
        world.meshfleet(&["secrets", "sync", "."]).expect(0);
        let took = world.env.mesh(&world.dir.path().join("gitops"));
        eprintln!(
            "testenv mesh: {:.1}s for {}",
            took.as_secs_f64(),
            clusters.join(",")
        );
        for cluster in clusters {
            world.rt.block_on(world.workload(cluster));
        }
        world
    }

    pub fn meshfleet(&self, args: &[&str]) -> Run {
        let output = meshfleet(self.dir.path())
            .env("HOME", self.dir.path())
            .env_remove("KUBECONFIG")
            .env("VAULT_ADDR", self.env.vault_addr())
            .env("VAULT_TOKEN", self.env.vault_token().expose_secret())
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

    async fn workload(&self, cluster: &str) {
        let client = &self.clients[cluster];
        let apply = PatchParams::apply("rotation-test").force();
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": WORKLOAD.0}})).expect("ns");
        Api::<Namespace>::all(client.clone())
            .patch(WORKLOAD.0, &apply, &Patch::Apply(&ns))
            .await
            .expect("ns");
        let sa: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": WORKLOAD.1, "namespace": WORKLOAD.0}}))
                .expect("sa");
        Api::<ServiceAccount>::namespaced(client.clone(), WORKLOAD.0)
            .patch(WORKLOAD.1, &apply, &Patch::Apply(&sa))
            .await
            .expect("service account");
    }

    /// The GitOps engine: render, then apply each cluster's rendered bundle.
    pub fn apply_tree(&self, clusters: &[&str]) {
        let out = self.dir.path().join("gitops");
        self.meshfleet(&["render", ".", "--out", "gitops"]).expect(0);
        for cluster in clusters {
            self.rt.block_on(apply_bundle(
                &self.clients[*cluster],
                &rendered_bundle(&out.join(cluster)),
            ));
        }
    }

    /// `kubectl rollout restart` of every control-plane Deployment of `clusters`.
    pub fn restart_control_plane(&self, clusters: &[&str]) {
        for cluster in clusters {
            self.rollout_restart(
                cluster,
                "linkerd",
                &[
                    "linkerd-identity",
                    "linkerd-destination",
                    "linkerd-proxy-injector",
                ],
            );
        }
    }

    /// `kubectl rollout restart` of the Deployments `names` in `namespace`: a new pod
    /// template, so new pods (and the kubelet restarts the controllers it runs).
    pub fn rollout_restart(&self, cluster: &str, namespace: &str, names: &[&str]) {
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos().to_string();
        let api: Api<Deployment> = Api::namespaced(self.clients[cluster].clone(), namespace);
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}});
        self.rt.block_on(async {
            for name in names {
                api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .expect("restart");
            }
        });
    }

    /// `kubectl --context CLUSTER ARGS` with `stdin`; its stdout (panics when it fails).
    pub fn kubectl(&self, cluster: &str, args: &[&str], stdin: &str) -> String {
        run_with_stdin(
            Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(self.env.kubeconfig())
                .args(["--context", cluster])
                .args(args),
            stdin,
        )
    }

    /// What the real proxy injector of the fleet's Linkerd release writes for
    /// `manifest` (JSON): `linkerd inject --manual -o json` against `cluster`, which
    /// reads the installed control plane's `linkerd-config` as the injector does.
    pub fn inject(&self, cluster: &str, manifest: &str) -> String {
        run_with_stdin(
            Command::new(testenv::TestEnv::linkerd_cli(self.version))
                .arg("--kubeconfig")
                .arg(self.env.kubeconfig())
                .args(["--context", cluster, "inject", "--manual", "-o", "json", "-"]),
            manifest,
        )
    }

    /// The pods of `namespace`.
    pub fn pods(&self, cluster: &str, namespace: &str) -> Vec<Pod> {
        self.rt
            .block_on(
                Api::<Pod>::namespaced(self.clients[cluster].clone(), namespace).list(&ListParams::default()),
            )
            .expect("list pods")
            .items
    }

    /// From now on a running identity controller sees a changed issuer Secret (or trust
    /// roots) only `seconds` later, as on a real node (testenv/lib/kubelet.py).
    pub fn delay_volume_updates(&self, seconds: u64) {
        std::fs::write(
            self.env.dir().join("kubelet").join("volume-update-delay"),
            format!("{seconds}\n"),
        )
        .expect("write the kubelet's volume delay");
    }

    /// The log of `cluster`'s identity controller as the kubelet wrote it.
    pub fn identity_log(&self, cluster: &str) -> String {
        self.env.log(&format!("{cluster}-linkerd-linkerd-identity"))
    }

    /// `trust rotate status -o json`: (exit code, report).
    pub fn status_json(&self) -> (i32, Value) {
        let run = self.meshfleet(&["-o", "json", "trust", "rotate", "status", "."]);
        let report = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.all()));
        (run.code, report)
    }

    /// What `trust rotate next` printed for the issuers, on `clusters`: External Secrets
    /// fetch from Vault now (`force-sync`); with cert-manager, the issuer is re-issued
    /// (the stand-in issues when the Secret is gone, as after `cmctl renew`).
    pub fn force_sync_issuers(&self, clusters: &[&str]) {
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos().to_string();
        let external_secret = if self.issuer == "vault" {
            "linkerd-identity-issuer"
        } else {
            "linkerd-trust-anchor"
        };
        for cluster in clusters {
            let kubectl = |args: &[&str]| {
                let out = Command::new("kubectl")
                    .arg("--kubeconfig")
                    .arg(self.env.kubeconfig())
                    .args(["--context", cluster, "-n", "linkerd"])
                    .args(args)
                    .output()
                    .expect("kubectl");
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            };
            kubectl(&[
                "annotate",
                "externalsecret",
                external_secret,
                &format!("force-sync={stamp}"),
                "--overwrite",
            ]);
            if self.issuer == "cert-manager" {
                // The CA Issuer must hold the new key pair before the issuer is re-issued.
                let api = Api::<Secret>::namespaced(self.clients[*cluster].clone(), "linkerd");
                let signing = self.signing_anchor();
                eventually("the anchor key pair synced", || {
                    self.rt
                        .block_on(api.get_opt("linkerd-trust-anchor"))
                        .ok()
                        .flatten()
                        .and_then(|s| s.data)
                        .and_then(|d| {
                            d.get("tls.crt")
                                .map(|b| fingerprints(&String::from_utf8_lossy(&b.0)))
                        })
                        .is_some_and(|fp| fp == [signing.clone()])
                });
                kubectl(&["delete", "secret", "linkerd-identity-issuer"]);
            }
        }
    }

    /// The fingerprint of the anchor whose key is `trust-anchor.key` (the signing one).
    fn signing_anchor(&self) -> String {
        let key =
            secrecy::SecretString::from(read(&self.dir.path().join(".meshfleet/keys/trust-anchor.key")));
        meshfleet_core::identity::parse_pem_bundle(&read(&self.dir.path().join("certs/trust-anchor.crt")))
            .expect("bundle")
            .into_iter()
            .find(|c| meshfleet_core::identity::key_matches(c, &key))
            .expect("the key signs one anchor of the bundle")
            .sha256
    }

    fn identity_addr(&self, cluster: &str) -> Option<String> {
        let path = self
            .env
            .dir()
            .join("kubelet")
            .join(format!("{cluster}-linkerd-linkerd-identity-identity.addr"));
        std::fs::read_to_string(path)
            .ok()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
    }

    /// A certificate from `cluster`'s identity controller for the workload: (leaf, chain), PEM.
    async fn certify(&self, cluster: &str) -> Result<(String, String), String> {
        let addr = self
            .identity_addr(cluster)
            .ok_or("no identity controller address yet")?;
        let token = Api::<ServiceAccount>::namespaced(self.clients[cluster].clone(), WORKLOAD.0)
            .create_token_request(
                WORKLOAD.1,
                &PostParams::default(),
                &TokenRequest {
                    spec: TokenRequestSpec {
                        audiences: vec!["identity.l5d.io".into()],
                        expiration_seconds: Some(3600),
                        ..TokenRequestSpec::default()
                    },
                    ..TokenRequest::default()
                },
            )
            .await
            .map_err(|e| format!("token request: {e}"))?
            .status
            .ok_or("no token")?
            .token;
        let name = format!(
            "{}.{}.serviceaccount.identity.linkerd.cluster.local",
            WORKLOAD.1, WORKLOAD.0
        );
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
        let mut params = rcgen::CertificateParams::new(vec![name.clone()]).map_err(|e| e.to_string())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name.clone());
        let csr = params.serialize_request(&key).map_err(|e| e.to_string())?;
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .connect()
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let response = IdentityClient::new(channel)
            .certify(CertifyRequest {
                identity: name,
                token: token.into_bytes(),
                certificate_signing_request: csr.der().to_vec(),
            })
            .await
            .map_err(|e| format!("certify: {e}"))?
            .into_inner();
        Ok((
            pem_of(&response.leaf_certificate),
            pem_of_all(&response.intermediate_certificates),
        ))
    }

    /// [`Self::certify`], retried for a while: the controller may be restarting, and a
    /// proxy retries too.
    fn certify_retrying(&self, cluster: &str, when: &str) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            match self.rt.block_on(self.certify(cluster)) {
                Ok(got) => return got,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(500)),
                Err(e) => panic!("{when}: {cluster}'s identity controller gave no certificate: {e}"),
            }
        }
    }

    /// Every cluster's leaf against every cluster's bundle in use; the failures.
    pub fn cross_verify(&self, when: &str) -> Vec<String> {
        let scratch = tempfile::tempdir().expect("tempdir");
        let mut leaves: BTreeMap<&str, (PathBuf, PathBuf)> = BTreeMap::new();
        let mut bundles: BTreeMap<&str, PathBuf> = BTreeMap::new();
        for cluster in self.clusters {
            let (leaf, chain) = self.certify_retrying(cluster, when);
            let dir = scratch.path().join(cluster);
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(dir.join("leaf.crt"), leaf).expect("write");
            std::fs::write(dir.join("chain.crt"), chain).expect("write");
            leaves.insert(cluster, (dir.join("leaf.crt"), dir.join("chain.crt")));
            let cm = self
                .rt
                .block_on(
                    Api::<ConfigMap>::namespaced(self.clients[*cluster].clone(), "linkerd")
                        .get("linkerd-identity-trust-roots"),
                )
                .expect("trust roots");
            std::fs::write(dir.join("bundle.crt"), &cm.data.expect("data")["ca-bundle.crt"]).expect("write");
            bundles.insert(cluster, dir.join("bundle.crt"));
        }
        let mut failures = Vec::new();
        for (from, (leaf, chain)) in &leaves {
            for (to, bundle) in &bundles {
                let out = Command::new("openssl")
                    .args(["verify", "-x509_strict", "-CAfile"])
                    .arg(bundle)
                    .arg("-untrusted")
                    .arg(chain)
                    .arg(leaf)
                    .output()
                    .expect("openssl");
                if !out.status.success() {
                    failures.push(format!(
                        "{when}: {from}'s leaf does not verify against {to}'s bundle: {}{}",
                        String::from_utf8_lossy(&out.stdout).trim(),
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
            }
        }
        failures
    }

    /// Whether `cluster`'s leaf (with its chain) verifies against `anchor_pem` alone:
    /// which anchor its identity controller's issuer is signed by.
    pub fn leaf_chains_to(&self, cluster: &str, anchor_pem: &str) -> bool {
        let dir = tempfile::tempdir().expect("tempdir");
        let (leaf, chain) = self.certify_retrying(cluster, "checking the signing anchor");
        for (name, text) in [
            ("leaf.crt", leaf.as_str()),
            ("chain.crt", chain.as_str()),
            ("anchor.crt", anchor_pem),
        ] {
            std::fs::write(dir.path().join(name), text).expect("write");
        }
        Command::new("openssl")
            .current_dir(dir.path())
            .args([
                "verify",
                "-x509_strict",
                "-CAfile",
                "anchor.crt",
                "-untrusted",
                "chain.crt",
                "leaf.crt",
            ])
            .output()
            .expect("openssl")
            .status
            .success()
    }

    /// The PEM blocks of the fleet's bundle file, in order.
    pub fn bundle_pems(&self) -> Vec<String> {
        read(&self.dir.path().join("certs/trust-anchor.crt"))
            .split_inclusive("-----END CERTIFICATE-----\n")
            .map(str::to_string)
            .collect()
    }

    pub fn bundle(&self) -> Vec<String> {
        fingerprints(&read(&self.dir.path().join("certs/trust-anchor.crt")))
    }

    pub fn status_ready(&self) -> bool {
        self.meshfleet(&["trust", "rotate", "status", "."]).code == 0
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn run_with_stdin(command: &mut Command, stdin: &str) -> String {
    use std::io::Write as _;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// PEM of a certificate the controller returned (DER on the wire; PEM passed through).
fn pem_of(bytes: &[u8]) -> String {
    if bytes.starts_with(b"-----BEGIN") {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

fn pem_of_all(certs: &[Vec<u8>]) -> String {
    certs.iter().map(|c| pem_of(c)).collect()
}

/// Wait until `ready` or panic with `what`. The bound is for a loaded machine: in a full
/// run beside other environments, `recertify done` on three clusters once took over
/// 120 s (the kubelet replaces each controller make-before-break); polled, so an idle
/// machine does not wait longer.
pub fn eventually(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_secs(1));
    }
}
