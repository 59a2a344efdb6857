//! One fleet on a private environment, set up as a user would, with reads and writes of
//! what the tests look at: exported services on targets, mirrors on sources.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use meshfleet_core::plan::{self, FleetPlan, LinkPlan};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::support::{meshfleet, texts};
use crate::testenv::{self, PrivateEnv};

/// The namespace of the exported services (and so of their mirrors).
pub const APPS: &str = "apps";
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
    /// How long `testenv/run mesh` took.
    pub mesh_time: Duration,
}

impl Scenario {
    /// Start an environment with clusters `names`, write the fleet `fleet(ports)` (API
    /// server ports by cluster), `certs init`, render, sync secrets, install with
    /// `testenv/run mesh`, sync the link credentials.
    pub fn start(names: &[&str], fleet: impl FnOnce(&BTreeMap<&str, String>) -> String) -> Self {
        let env = testenv::private(names);
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
        let render = meshfleet(dir.path())
            .args(["render", ".", "--out", "gitops"])
            .output()
            .expect("render");
        assert!(render.status.success(), "render: {:?}", texts(&render));
        // The anchor (cert-manager) or the issuers (vault) reach Vault; the link
        // credentials cannot yet: no target runs the multicluster chart.
        let (code, stdout, stderr) = run(&["secrets", "sync", "."]);
        assert!(code == 0 || code == 2, "secrets sync: {code}\n{stdout}\n{stderr}");
        let mesh_time = env.mesh(&dir.path().join("gitops"));
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
        let checked =
            meshfleet_core::validate::check_file(dir.path(), OffsetDateTime::now_utc()).expect("fleet loads");
        let plan = plan::from_checked(&checked).expect("the scenario's fleet is valid");
        let rt = testenv::runtime();
        let clients = names
            .iter()
            .map(|n| ((*n).to_owned(), rt.block_on(env.client(n))))
            .collect();
        let s = Self {
            tree: dir.path().join("gitops"),
            fleet: dir,
            env,
            plan,
            rt,
            clients,
            mesh_time,
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
