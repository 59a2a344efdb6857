//! One fleet on a private environment, set up as a user would, with reads and writes of
//! what the tests look at: exported services on targets, mirrors on sources.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use meshfleet_core::fleet::model::ServiceType;
use meshfleet_core::plan::{self, ClusterPlan, FleetPlan, LinkPlan};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::support::{meshfleet, texts};
use crate::testenv::{self, PrivateEnv};

/// The namespace of the exported services (and so of their mirrors).
pub const APPS: &str = "apps";
/// The multicluster extension's namespace.
pub const MULTICLUSTER: &str = "linkerd-multicluster";
/// The field manager of what the tests apply.
const MANAGER: &str = "meshfleet-tests";

/// A fleet installed on its own environment with Linkerd's real CLI and controllers.
pub struct Scenario {
    pub env: PrivateEnv,
    pub fleet: tempfile::TempDir,
    pub tree: PathBuf,
    pub plan: FleetPlan,
    rt: tokio::runtime::Runtime,
    clients: BTreeMap<String, kube::Client>,
}

impl Scenario {
    /// Start an environment with clusters `names`, write the fleet `fleet(ports)` (API
    /// server ports by cluster), `certs init`, render, sync secrets, install with
    /// `testenv/run mesh`, sync the link credentials.
    pub fn start(names: &[&str], fleet: impl FnOnce(&BTreeMap<&str, String>) -> String) -> Self {
        Self::start_with(names, &[], &[], fleet)
    }

    /// [`Scenario::start`] with more arguments for `testenv/run up` and `mesh` (the data
    /// plane: `--pod-cidr NAME=CIDR` and `--data-plane`).
    pub fn start_with(
        names: &[&str],
        up_args: &[String],
        mesh_args: &[&str],
        fleet: impl FnOnce(&BTreeMap<&str, String>) -> String,
    ) -> Self {
        let env = testenv::private_with(names, up_args);
        let ports: BTreeMap<&str, String> = names
            .iter()
            .map(|n| (*n, env.server(n).rsplit(':').next().expect("port").to_owned()))
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("fleet.yaml"), fleet(&ports)).expect("write fleet");
        let run = |args: &[&str]| {
            let output = meshfleet(dir.path())
                .args(args)
                .arg("--kubeconfig")
                .arg(env.kubeconfig())
                .env("VAULT_ADDR", env.vault_addr())
                .env(
                    "VAULT_TOKEN",
                    secrecy::ExposeSecret::expose_secret(env.vault_token()),
                )
                .output()
                .expect("run meshfleet");
            let (stdout, stderr) = texts(&output);
            (output.status.code().unwrap_or(-1), stdout, stderr)
        };
        let init = meshfleet(dir.path())
            .args(["certs", "init", "."])
            .output()
            .expect("certs init");
        assert!(init.status.success(), "certs init: {:?}", texts(&init));
        let checked =
            meshfleet_core::validate::check_file(dir.path(), OffsetDateTime::now_utc()).expect("fleet loads");
        let plan = plan::from_checked(&checked).expect("the scenario's fleet is valid");
        let rt = testenv::runtime();
        // The user's Vault has the fleet's KV v2 mount; the dev server has only `secret/`.
        rt.block_on(enable_kv2(
            &env,
            &plan.vault.as_ref().expect("a Vault fleet").mount,
        ));
        let render = meshfleet(dir.path())
            .args(["render", ".", "--out", "gitops"])
            .output()
            .expect("render");
        assert!(render.status.success(), "render: {:?}", texts(&render));
        // The anchor (cert-manager) or the issuers (vault) reach Vault; the link
        // credentials cannot yet: no target runs the multicluster chart.
        let (code, stdout, stderr) = run(&["secrets", "sync", "."]);
        assert!(code == 0 || code == 2, "secrets sync: {code}\n{stdout}\n{stderr}");
        let mesh_time = env.mesh_with(&dir.path().join("gitops"), mesh_args);
        eprintln!(
            "testenv mesh: {:.1}s for {}",
            mesh_time.as_secs_f64(),
            names.join(",")
        );
        // Now every target has its remote-access accounts: every credential syncs.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, stdout, stderr) = run(&["secrets", "sync", "."]);
            if code == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "secrets sync after the install: {code}\n{stdout}\n{stderr}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        let clients = names
            .iter()
            .map(|n| ((*n).to_owned(), rt.block_on(env.client(n))))
            .collect();
        // A cloud's load-balancer controller would publish the gateway's address.
        for cluster in &plan.clusters {
            let Some(gateway) = cluster
                .gateway
                .as_ref()
                .filter(|g| g.service_type == ServiceType::LoadBalancer)
            else {
                continue;
            };
            let ingress: Vec<Value> = gateway.addresses.iter().map(|a| json!({"ip": a})).collect();
            let api = Api::<Service>::namespaced(rt.block_on(env.client(&cluster.name)), MULTICLUSTER);
            rt.block_on(api.patch_status(
                "linkerd-gateway",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": ingress}}})),
            ))
            .unwrap_or_else(|e| panic!("gateway status on {}: {e}", cluster.name));
        }
        let s = Self {
            tree: dir.path().join("gitops"),
            fleet: dir,
            env,
            plan,
            rt,
            clients,
        };
        for name in names {
            s.apply(
                name,
                &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": APPS}}),
            );
        }
        s
    }

    /// The fleet folder.
    pub fn dir(&self) -> &Path {
        self.fleet.path()
    }

    /// Run the binary on the fleet with the environment's kubeconfig and Vault.
    pub fn meshfleet(&self, args: &[&str]) -> (i32, String, String) {
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

    /// Every link of the fleet.
    pub fn links(&self) -> Vec<LinkPlan> {
        self.plan
            .clusters
            .iter()
            .flat_map(|c| c.outgoing.iter().cloned())
            .collect()
    }

    pub fn client(&self, cluster: &str) -> kube::Client {
        self.clients[cluster].clone()
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Server-side apply of a JSON object (kind Namespace or Service).
    pub fn apply(&self, cluster: &str, object: &Value) {
        let name = object["metadata"]["name"].as_str().expect("name").to_owned();
        let params = PatchParams::apply(MANAGER).force();
        let client = self.client(cluster);
        self.block_on(async {
            match object["kind"].as_str() {
                Some("Namespace") => Api::<Namespace>::all(client)
                    .patch(&name, &params, &Patch::Apply(object))
                    .await
                    .map(|_| ()),
                Some("Service") => {
                    let ns = object["metadata"]["namespace"].as_str().expect("namespace");
                    Api::<Service>::namespaced(client, ns)
                        .patch(&name, &params, &Patch::Apply(object))
                        .await
                        .map(|_| ())
                }
                Some("Deployment") => {
                    let ns = object["metadata"]["namespace"].as_str().expect("namespace");
                    Api::<Deployment>::namespaced(client, ns)
                        .patch(&name, &params, &Patch::Apply(object))
                        .await
                        .map(|_| ())
                }
                other => panic!("apply of {other:?} is not supported here"),
            }
        })
        .unwrap_or_else(|e| panic!("apply {name} on {cluster}: {e}"));
    }

    /// A Service in [`APPS`] on `cluster` with the export label set to `label` (`None`:
    /// exported with the annotation only, which Linkerd ignores), backed by a Deployment
    /// whose pod KWOK makes ready (a gateway mirror's Endpoints stay empty while the
    /// exported service has no ready endpoints).
    pub fn export(&self, cluster: &str, name: &str, label: Option<&str>, ports: &[(u16, &str)]) {
        let labels = json!({"app": name});
        self.apply(
            cluster,
            &json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": name, "namespace": APPS},
                    "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                             "template": {"metadata": {"labels": labels},
                                          "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}}}}),
        );
        let mut metadata = json!({"name": name, "namespace": APPS});
        match label {
            Some(value) => metadata["labels"] = json!({"mirror.linkerd.io/exported": value}),
            None => metadata["annotations"] = json!({"multicluster.linkerd.io/export": "true"}),
        }
        let ports: Vec<Value> = ports
            .iter()
            .map(|(port, pname)| json!({"name": pname, "port": port, "protocol": "TCP"}))
            .collect();
        self.apply(
            cluster,
            &json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata,
                    "spec": {"selector": {"app": name}, "ports": ports}}),
        );
    }

    pub fn delete_service(&self, cluster: &str, name: &str) {
        let api = Api::<Service>::namespaced(self.client(cluster), APPS);
        self.block_on(api.delete(name, &DeleteParams::default()))
            .unwrap_or_else(|e| panic!("delete {name} on {cluster}: {e}"));
    }

    pub fn service(&self, cluster: &str, namespace: &str, name: &str) -> Option<Value> {
        let api = Api::<Service>::namespaced(self.client(cluster), namespace);
        self.block_on(api.get_opt(name))
            .unwrap_or_else(|e| panic!("get service {namespace}/{name} on {cluster}: {e}"))
            .map(|s| serde_json::to_value(s).expect("json"))
    }

    pub fn endpoints(&self, cluster: &str, namespace: &str, name: &str) -> Option<Value> {
        let api = Api::<Endpoints>::namespaced(self.client(cluster), namespace);
        self.block_on(api.get_opt(name))
            .unwrap_or_else(|e| panic!("get endpoints {namespace}/{name} on {cluster}: {e}"))
            .map(|s| serde_json::to_value(s).expect("json"))
    }

    /// The mirror of `service` through `link` on the link's source, once it matches `ok`.
    pub fn wait_mirror(&self, link: &LinkPlan, service: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let mirror = format!("{service}-{}", link.link_name());
        wait_for(&format!("{} mirror {mirror}", link.credentials_id()), || {
            self.service(&link.source, APPS, &mirror).filter(|s| ok(s))
        })
    }
}

impl Scenario {
    /// What `linkerd multicluster link-gen` of the fleet's release writes for a link's
    /// target (Secrets' data stays inside this process).
    pub fn link_gen(&self, link: &LinkPlan) -> Vec<Value> {
        let (mut cmd, target) = self.link_command("link-gen", link);
        match (&link.gateway, &target.gateway) {
            (Some(_), Some(gw)) if gw.service_type != ServiceType::LoadBalancer => {
                cmd.args(["--gateway-addresses", &gw.addresses.join(",")]);
            }
            (Some(_), _) => {}
            (None, _) => {
                cmd.arg("--gateway=false");
            }
        }
        let output = cmd.output().expect("run link-gen");
        assert!(
            output.status.success(),
            "link-gen for {}: {}",
            link.credentials_id(),
            String::from_utf8_lossy(&output.stderr)
        );
        serde_saphyr::from_multiple::<Value>(&String::from_utf8_lossy(&output.stdout))
            .expect("link-gen YAML")
            .into_iter()
            .filter(|v| !v.is_null())
            .collect()
    }

    /// The Link and ExternalSecrets meshfleet rendered for a link.
    pub fn rendered_link_objects(&self, link: &LinkPlan) -> Vec<Value> {
        let path = self
            .tree
            .join(&link.source)
            .join("links")
            .join(format!("link-{}.yaml", link.link_name()));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_saphyr::from_multiple::<Value>(&text)
            .expect("rendered YAML")
            .into_iter()
            .filter(|v| !v.is_null())
            .collect()
    }

    /// A Secret as JSON (the tests compare its data, never print it).
    pub fn secret(&self, cluster: &str, namespace: &str, name: &str) -> Value {
        let api = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(self.client(cluster), namespace);
        let secret = self
            .block_on(api.get(name))
            .unwrap_or_else(|e| panic!("get secret {namespace}/{name} on {cluster}: {e}"));
        serde_json::to_value(secret).expect("json")
    }

    /// `linkerd multicluster check` on a source, as (description, result, error), with
    /// the fleet's `apiServer`s reached through the environment's cluster network.
    pub fn multicluster_check(&self, source: &str) -> Vec<(String, String, String)> {
        let output = std::process::Command::new(testenv::TestEnv::linkerd_cli(
            &self.plan.linkerd.version.to_string(),
        ))
        .args([
            "multicluster",
            "check",
            "--wait",
            "3s",
            "-o",
            "json",
            "--kubeconfig",
        ])
        .arg(self.env.kubeconfig())
        .args(["--context", source, "-L", &self.plan.linkerd.namespace])
        .env("HTTPS_PROXY", self.env.cluster_network())
        .output()
        .expect("run linkerd multicluster check");
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "linkerd multicluster check on {source}: {e}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        report["categories"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["checks"].as_array().into_iter().flatten())
            .map(|c| {
                let text = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
                (text("description"), text("result"), text("error"))
            })
            .collect()
    }
}

impl Scenario {
    /// What the deprecated `linkerd multicluster link` (the fleet's release) writes for a
    /// link's target, applied to its source: the legacy controller
    /// `linkerd-service-mirror-<link>` with its account, RBAC and probe Service. Its Link
    /// and credentials Secret are left out: they have the names of the declarative ones
    /// that meshfleet's tree already made.
    pub fn install_legacy_link(&self, link: &LinkPlan) {
        let (mut cmd, target) = self.link_command("link", link);
        let gateway = target.gateway.as_ref().expect("a gateway link");
        let output = cmd
            .args(["--gateway-addresses", &gateway.addresses.join(",")])
            .output()
            .expect("run linkerd multicluster link");
        assert!(
            output.status.success(),
            "linkerd multicluster link: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&String::from_utf8_lossy(&output.stdout)).expect("link YAML");
        let legacy: Vec<Value> = docs
            .into_iter()
            .filter(|d| !d.is_null() && d["kind"] != "Link" && d["kind"] != "Secret")
            .collect();
        assert!(
            legacy.iter().any(|d| d["kind"] == "Deployment"),
            "`linkerd multicluster link` wrote no controller"
        );
        let yaml = legacy.iter().fold(String::new(), |mut yaml, d| {
            let _ = write!(yaml, "---\n{}", serde_json::to_string(d).expect("json"));
            yaml
        });
        let kubectl = crate::support::repo_root().join("testenv/bin/kubectl");
        let mut child = std::process::Command::new(kubectl)
            .args(["apply", "--server-side", "-f", "-", "--kubeconfig"])
            .arg(self.env.kubeconfig())
            .args(["--context", &link.source])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl");
        std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), yaml.as_bytes()).expect("write");
        let out = child.wait_with_output().expect("kubectl apply");
        assert!(
            out.status.success(),
            "kubectl apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `meshfleet migrate FLEET --apply -o json`, asserting that every legacy controller
    /// went with a clean handover: each link's Lease was taken by a pod of its
    /// declarative controller before the old controller's permissions were deleted, and
    /// no legacy controller's log shows a Lease it could not release (which would leave
    /// the link without a controller until the Lease expires, 30 s; before the handover
    /// step every run of both migrate tests showed it). Returns the report.
    pub fn migrate_apply(&self, fleet: &str) -> Value {
        let (code, stdout, stderr) = self.meshfleet(&["-o", "json", "migrate", fleet, "--apply"]);
        let report: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("migrate prints JSON ({e}): {stdout}\n{stderr}"));
        assert_eq!(report["legacyRemaining"], 0, "{report:#}\n{stderr}");
        assert_eq!(code, 0, "{report:#}\n{stderr}");
        let mut handed_over = 0;
        for cluster in report["clusters"].as_array().expect("clusters") {
            let source = cluster["cluster"].as_str().expect("cluster");
            for link in cluster["legacyLinks"].as_array().expect("legacyLinks") {
                let name = link["link"].as_str().expect("link");
                assert_eq!(link["action"], "removed", "{link:#}");
                let handover = &link["handover"];
                assert_eq!(handover["state"], "served", "{source}: {link:#}");
                let holder = handover["holder"].as_str().unwrap_or_default();
                assert!(
                    holder.starts_with(&format!(
                        "{}-",
                        link["controller"]["name"].as_str().unwrap_or("?")
                    )),
                    "{source}: {link:#}"
                );
                eprintln!(
                    "{source}: link {name} handed over to {holder} in {} s",
                    handover["waitedSeconds"]
                );
                let log = self
                    .env
                    .log(&format!("{source}-{MULTICLUSTER}-linkerd-service-mirror-{name}"));
                // A legacy controller that led (it may not have started yet, or lost the
                // race to the declarative one) released the Lease when it stopped.
                let led = log.contains("acquired lease");
                assert!(
                    !log.contains("Failed to release lock") && (!led || log.contains("released lease")),
                    "{source}: the legacy controller of {name} did not release its Lease:\n{log}"
                );
                handed_over += 1;
            }
        }
        assert!(handed_over > 0, "migrate found no legacy controller: {report:#}");
        report
    }

    /// Run the environment's kubectl on a cluster; panics when it fails.
    pub fn kubectl(&self, cluster: &str, args: &[&str]) -> String {
        let output = self.kubectl_output(cluster, args).expect("run kubectl");
        assert!(
            output.status.success(),
            "kubectl {args:?} on {cluster}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `kubectl --context cluster ARGS` as it ended, success or not.
    pub fn kubectl_output(&self, cluster: &str, args: &[&str]) -> std::io::Result<std::process::Output> {
        std::process::Command::new(crate::support::repo_root().join("testenv/bin/kubectl"))
            .arg("--kubeconfig")
            .arg(self.env.kubeconfig())
            .args(["--context", cluster])
            .args(args)
            .output()
    }

    pub fn deployment(&self, cluster: &str, namespace: &str, name: &str) -> Option<Value> {
        let api = Api::<Deployment>::namespaced(self.client(cluster), namespace);
        self.block_on(api.get_opt(name))
            .unwrap_or_else(|e| panic!("get deployment {namespace}/{name} on {cluster}: {e}"))
            .map(|d| serde_json::to_value(d).expect("json"))
    }
}

impl Scenario {
    /// `linkerd multicluster <subcommand>` of the fleet's release, aimed at a link's
    /// target the way a user would: its context, the link name, the fleet's linkerd
    /// namespace, the target's `apiServer` and the link's remote-access account.
    fn link_command(&self, subcommand: &str, link: &LinkPlan) -> (std::process::Command, &ClusterPlan) {
        let target = self
            .plan
            .clusters
            .iter()
            .find(|c| c.name == link.target)
            .expect("target");
        let mut cmd = std::process::Command::new(testenv::TestEnv::linkerd_cli(
            &self.plan.linkerd.version.to_string(),
        ));
        cmd.args(["multicluster", subcommand, "--kubeconfig"])
            .arg(self.env.kubeconfig())
            .args(["--context", &link.target, "--cluster-name", link.link_name()])
            .args(["-L", &self.plan.linkerd.namespace])
            .args([
                "--api-server-address",
                target.api_server.as_deref().expect("apiServer"),
            ])
            .args(["--service-account-name", &link.account()]);
        (cmd, target)
    }
}

/// Enable a KV v2 mount in the environment's OpenBao (a mount that exists is fine).
async fn enable_kv2(env: &testenv::TestEnv, mount: &str) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/sys/mounts/{mount}", env.vault_addr()))
        .header(
            "X-Vault-Token",
            secrecy::ExposeSecret::expose_secret(env.vault_token()),
        )
        .json(&json!({"type": "kv", "options": {"version": "2"}}))
        .send()
        .await
        .expect("OpenBao answers");
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    assert!(
        status < 300 || body.contains("already in use"),
        "enabling the KV v2 mount {mount}: {status} {body}"
    );
}

/// (server, CA, token) of the kubeconfig inside a credentials Secret: what decides which
/// cluster it reaches and as whom. Compare it; never print it.
pub fn kubeconfig_identity(secret: &Value) -> (String, String, String) {
    use base64::Engine as _;
    let data = secret["data"]["kubeconfig"].as_str().expect("kubeconfig data");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("base64");
    let kubeconfig: Value =
        serde_saphyr::from_str(&String::from_utf8_lossy(&bytes)).expect("kubeconfig YAML");
    let cluster = &kubeconfig["clusters"][0]["cluster"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        text(&cluster["server"]),
        text(&cluster["certificate-authority-data"]),
        text(&kubeconfig["users"][0]["user"]["token"]),
    )
}

/// Poll `f` every 250 ms until it returns `Some`, for up to 60 s (the service mirror
/// retries a failed start every 10 s).
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}
