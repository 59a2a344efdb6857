//! `kubectl` on a test environment's clusters, for the tests that watch a real GitOps
//! engine work (gitops_flux.rs, gitops_flux_sops.rs): reads as JSON, the Ready condition
//! of Flux's (and the operators') objects, `flux reconcile`'s annotation, and the two
//! things a cloud and a user do around a homelab's links (publish the LoadBalancer
//! gateways' addresses, export a service).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::repo_root;
use crate::testenv::TestEnv;

/// The admin `kubectl` of one environment (`--context` = cluster name).
pub struct Kubectl {
    kubeconfig: PathBuf,
}

impl Kubectl {
    pub fn new(env: &TestEnv) -> Self {
        Self {
            kubeconfig: env.kubeconfig(),
        }
    }

    fn output(&self, cluster: &str, args: &[&str]) -> std::process::Output {
        std::process::Command::new(repo_root().join("testenv/bin/kubectl"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--context", cluster])
            .args(args)
            .output()
            .expect("run kubectl")
    }

    /// Run `kubectl` on `cluster`; panics with its stderr when it fails.
    pub fn run(&self, cluster: &str, args: &[&str]) -> String {
        let output = self.output(cluster, args);
        assert!(
            output.status.success(),
            "kubectl {args:?} on {cluster}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Every object of `kind` in all namespaces.
    pub fn items(&self, cluster: &str, kind: &str) -> Vec<Value> {
        let out = self.run(cluster, &["get", kind, "-A", "-o", "json"]);
        let list: Value = serde_json::from_str(&out).expect("kubectl json");
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// One object, or `None` when it cannot be read (absent).
    pub fn get(&self, cluster: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let output = self.output(cluster, &["get", kind, "-n", namespace, name, "-o", "json"]);
        output
            .status
            .success()
            .then(|| serde_json::from_slice(&output.stdout).expect("json"))
    }

    /// What `flux reconcile` does: annotate with the current time. Returns the value,
    /// which Flux copies to `status.lastHandledReconcileAt` once it handled the request.
    pub fn request_reconcile(&self, cluster: &str, kind: &str, name: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
            .to_string();
        self.run(
            cluster,
            &[
                "annotate",
                "--overwrite",
                "-n",
                "flux-system",
                kind,
                name,
                &format!("reconcile.fluxcd.io/requestedAt={now}"),
            ],
        );
        now
    }

    /// Wait until a Flux object in `flux-system` handled the reconcile request `at` and
    /// is Ready.
    pub fn wait_reconciled_ready(&self, cluster: &str, kind: &str, name: &str, at: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let obj = self.get(cluster, kind, "flux-system", name);
            let handled = obj
                .as_ref()
                .is_some_and(|o| o["status"]["lastHandledReconcileAt"] == at);
            if handled && obj.as_ref().is_some_and(|o| ready(o).0 == "True") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{cluster}: {kind} {name} not Ready after the reconcile request {at}: {:?}",
                obj.as_ref().map(ready)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// The Ready condition of a Flux (or ESO, cert-manager) object: (status, reason, message).
pub fn ready(obj: &Value) -> (String, String, String) {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            let t = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (t("status"), t("reason"), t("message"))
        })
        .unwrap_or_default()
}

/// `namespace/name` of an object.
pub fn name(obj: &Value) -> String {
    format!(
        "{}/{}",
        obj["metadata"]["namespace"].as_str().unwrap_or_default(),
        obj["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// What a cloud's load-balancer controller does for the homelab's LoadBalancer gateways:
/// publish their address (`(cluster, ip)`). Helm (and so the HelmRelease) waits for it.
pub fn publish_gateway_addresses(k: &Kubectl, addresses: &[(&str, &str)]) {
    for (cluster, ip) in addresses {
        let Some(svc) = k.get(cluster, "service", "linkerd-multicluster", "linkerd-gateway") else {
            continue;
        };
        if svc["status"]["loadBalancer"]["ingress"].is_array() {
            continue;
        }
        let patch = json!({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}).to_string();
        k.run(
            cluster,
            &[
                "patch",
                "service",
                "linkerd-gateway",
                "-n",
                "linkerd-multicluster",
                "--subresource=status",
                "--type=merge",
                "-p",
                &patch,
            ],
        );
    }
}

/// A Service `apps/web` exported on `target` is mirrored on `source` (as `web-<target>`)
/// by the real service mirror, within two minutes.
pub fn assert_mirrored(k: &Kubectl, source: &str, target: &str) {
    for c in [source, target] {
        k.run(c, &["create", "namespace", "apps"]);
    }
    k.run(
        target,
        &[
            "create",
            "deployment",
            "web",
            "-n",
            "apps",
            "--image=registry.example/web:1",
        ],
    );
    k.run(
        target,
        &["expose", "deployment", "web", "-n", "apps", "--port=8080"],
    );
    k.run(
        target,
        &[
            "label",
            "service",
            "web",
            "-n",
            "apps",
            "mirror.linkerd.io/exported=true",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let mirror = format!("web-{target}");
    while k.get(source, "service", "apps", &mirror).is_none() {
        assert!(
            Instant::now() < deadline,
            "{source} never mirrored apps/web from {target}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}
