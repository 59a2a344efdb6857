//! A rendered Job's pod, reproduced on this machine: its script run by `sh` with only the
//! real `linkerd` CLI of the fleet's version and `kubectl` on `PATH` (the image has
//! nothing else), its environment, its mounted ConfigMaps and Secrets written to a temp
//! folder (`MESHFLEET_MOUNT`), its scratch `emptyDir` as `TMPDIR`, and a kubeconfig with a
//! TokenRequest token of the Job's ServiceAccount, so its `rbac.yaml` is exactly what it
//! may do. Admin helpers apply the rendered objects and read the cluster back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use meshfleet_core::render::jobs::MOUNT;
use serde_json::{Value, json};

use crate::support;
use crate::testenv::TestEnv;

/// The field manager of what the tests apply as admin.
pub const ADMIN_MANAGER: &str = "meshfleet-tests";

/// How long a Job's script may run here before the test gives up on it.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(600);

/// Every YAML document of a file, as JSON.
pub fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn gvk_of(object: &Value) -> GroupVersionKind {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    GroupVersionKind::gvk(group, version, object["kind"].as_str().expect("kind"))
}

/// The dynamic API of an object's kind (namespaced in its namespace when it has one).
/// Discovery answers are kept for the whole run: every test cluster runs the same
/// Kubernetes release and the same CRDs.
async fn api_for(client: &kube::Client, object: &Value) -> Api<DynamicObject> {
    static KINDS: OnceLock<Mutex<HashMap<GroupVersionKind, (ApiResource, Scope)>>> = OnceLock::new();
    let gvk = gvk_of(object);
    let known = KINDS
        .get_or_init(Mutex::default)
        .lock()
        .ok()
        .and_then(|kinds| kinds.get(&gvk).cloned());
    let (resource, scope) = if let Some(found) = known {
        found
    } else {
        let (resource, caps) = discovery::pinned_kind(client, &gvk)
            .await
            .unwrap_or_else(|e| panic!("discovery of {}: {e}", object["kind"]));
        if let Ok(mut kinds) = KINDS.get_or_init(Mutex::default).lock() {
            kinds.insert(gvk, (resource.clone(), caps.scope.clone()));
        }
        (resource, caps.scope)
    };
    match (scope, object["metadata"]["namespace"].as_str()) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
        (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &resource),
        (Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
    }
}

fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().expect("metadata.name")
}

/// Server-side apply of one object as admin.
pub async fn apply(client: &kube::Client, object: &Value) {
    let api = api_for(client, object).await;
    api.patch(
        name_of(object),
        &PatchParams::apply(ADMIN_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {} {}: {e}", object["kind"], name_of(object)));
}

/// The object as the cluster has it now, or `None`.
pub async fn get(client: &kube::Client, object: &Value) -> Option<Value> {
    let api = api_for(client, object).await;
    api.get_opt(name_of(object))
        .await
        .unwrap_or_else(|e| panic!("get {} {}: {e}", object["kind"], name_of(object)))
        .map(|o| serde_json::to_value(o).expect("json"))
}

/// Delete an object (fine when it is gone already).
pub async fn delete(client: &kube::Client, object: &Value) {
    let api = api_for(client, object).await;
    match api.delete(name_of(object), &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => panic!("delete {} {}: {e}", object["kind"], name_of(object)),
    }
}

/// A Linkerd component of the Jobs method, by its stage folder suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Crds,
    ControlPlane,
    Viz,
    Multicluster,
}

impl Component {
    pub const ALL: [Self; 4] = [Self::Crds, Self::ControlPlane, Self::Viz, Self::Multicluster];

    pub fn short(self) -> &'static str {
        match self {
            Self::Crds => "crds",
            Self::ControlPlane => "control-plane",
            Self::Viz => "viz",
            Self::Multicluster => "multicluster",
        }
    }

    /// The file the script renders into its scratch folder.
    pub fn manifest_file(self) -> String {
        format!("{}.yaml", self.short())
    }

    /// Its stage folder in a cluster's rendered folder.
    pub fn stage(self, cluster_folder: &Path) -> PathBuf {
        cluster_folder.join(format!("linkerd-{}", self.short()))
    }
}

/// One finished run of a Job's script.
#[derive(Debug)]
pub struct PodRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    /// The scratch folder (`TMPDIR`), kept for the checks.
    pub scratch: tempfile::TempDir,
    pub took: Duration,
}

impl PodRun {
    /// The steps the script announced (`meshfleet step: <step>`), in order.
    pub fn steps(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("meshfleet step: "))
            .collect()
    }

    /// The step that was running when the script failed.
    pub fn failed_step(&self) -> Option<&str> {
        if self.success {
            None
        } else {
            self.steps().last().copied()
        }
    }

    /// The first line of stderr that is not a step marker (the error, for a failed run).
    pub fn first_error(&self) -> &str {
        self.stderr
            .lines()
            .find(|l| {
                l.contains("forbidden") || l.contains("rror") || l.starts_with("×") || l.contains("cannot")
            })
            .unwrap_or("")
    }

    /// The manifest the script rendered and applied.
    pub fn manifest(&self, component: Component) -> Vec<Value> {
        documents(&self.scratch.path().join(component.manifest_file()))
    }

    /// Panic with the run's output unless it succeeded.
    pub fn expect_success(&self, what: &str) -> &Self {
        assert!(
            self.success,
            "{what} failed (steps {:?})\nstdout:\n{}\nstderr:\n{}",
            self.steps(),
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs the Jobs of one cluster folder of a rendered tree on a test cluster.
pub struct JobRunner<'a> {
    pub env: &'a TestEnv,
    /// The test cluster (a context of the environment's kubeconfig).
    pub cluster: String,
    /// The cluster's folder of the rendered tree.
    pub folder: PathBuf,
    /// The chart version of the tree (`2025.4.4`), whose CLI runs.
    pub version: String,
    pub client: kube::Client,
    pub rt: &'a tokio::runtime::Runtime,
    /// kubectl's discovery cache, shared by the runs of this runner (`KUBECACHEDIR`; in a
    /// pod it starts empty): only saves time.
    pub kube_cache: tempfile::TempDir,
}

impl JobRunner<'_> {
    /// The Job of a component, as rendered.
    pub fn job(&self, component: Component) -> Value {
        documents(&component.stage(&self.folder).join("job.yaml"))
            .into_iter()
            .next()
            .expect("job.yaml holds the Job")
    }

    /// The rendered RBAC objects of a component (ServiceAccount, roles, bindings).
    pub fn rbac(&self, component: Component) -> Vec<Value> {
        documents(&component.stage(&self.folder).join("rbac.yaml"))
    }

    /// Apply what the GitOps engine applies beside the Job (its RBAC, its values), as
    /// admin.
    pub fn apply_stage(&self, component: Component) {
        let stage = component.stage(&self.folder);
        let mut objects = self.rbac(component);
        if stage.join("values.yaml").exists() {
            objects.extend(documents(&stage.join("values.yaml")));
        }
        self.rt.block_on(async {
            for object in &objects {
                apply(&self.client, object).await;
            }
        });
    }

    /// Apply the stage as admin, then run the Job's script as its ServiceAccount.
    pub fn run(&self, component: Component) -> PodRun {
        self.apply_stage(component);
        self.run_script(component)
    }

    /// Run the Job's script as its ServiceAccount (the stage must be applied).
    pub fn run_script(&self, component: Component) -> PodRun {
        let job = self.job(component);
        let pod = &job["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        let namespace = job["metadata"]["namespace"].as_str().expect("namespace");
        let account = pod["serviceAccountName"].as_str().expect("serviceAccountName");
        let script = container["command"][2].as_str().expect("sh -c SCRIPT");
        let root = tempfile::tempdir().expect("tempdir");
        let scratch = tempfile::tempdir().expect("tempdir");
        let mount = root.path().join("mount");
        let bin = root.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        std::os::unix::fs::symlink(TestEnv::linkerd_cli(&self.version), bin.join("linkerd"))
            .expect("link linkerd");
        std::os::unix::fs::symlink(kubectl(), bin.join("kubectl")).expect("link kubectl");
        self.write_mounts(pod, container, namespace, &mount, scratch.path());
        let kubeconfig = root.path().join("kubeconfig");
        self.write_token_kubeconfig(namespace, account, &kubeconfig);

        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(script)
            .env_clear()
            .current_dir(scratch.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in container["env"].as_array().into_iter().flatten() {
            let value = var["value"].as_str().unwrap_or_default();
            command.env(
                var["name"].as_str().expect("env name"),
                map_scratch(value, scratch.path()),
            );
        }
        command
            .env("PATH", &bin)
            .env("TMPDIR", scratch.path())
            .env("MESHFLEET_MOUNT", &mount)
            .env("KUBECONFIG", &kubeconfig)
            .env("KUBECACHEDIR", self.kube_cache.path());
        let started = Instant::now();
        let output = wait_with_deadline(command, SCRIPT_DEADLINE);
        PodRun {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            scratch,
            took: started.elapsed(),
        }
    }

    /// The Job's ConfigMap and Secret volumes, as the kubelet would mount them, under
    /// `mount` in place of [`MOUNT`].
    fn write_mounts(&self, pod: &Value, container: &Value, namespace: &str, mount: &Path, scratch: &Path) {
        let volumes = pod["volumes"].as_array().expect("volumes");
        for volume_mount in container["volumeMounts"].as_array().expect("volumeMounts") {
            let path = volume_mount["mountPath"].as_str().expect("mountPath");
            let volume = volumes
                .iter()
                .find(|v| v["name"] == volume_mount["name"])
                .expect("the mount's volume");
            if volume["emptyDir"].is_object() {
                assert_eq!(
                    map_scratch(path, scratch),
                    scratch.display().to_string(),
                    "scratch mount {path}"
                );
                continue;
            }
            let relative = path
                .strip_prefix(&format!("{MOUNT}/"))
                .unwrap_or_else(|| panic!("mount {path} outside {MOUNT}"));
            let dir = mount.join(relative);
            std::fs::create_dir_all(&dir).expect("mount dir");
            let (kind, name) = if let Some(name) = volume["configMap"]["name"].as_str() {
                ("ConfigMap", name)
            } else if let Some(name) = volume["secret"]["secretName"].as_str() {
                ("Secret", name)
            } else {
                panic!("volume {volume} is neither a ConfigMap, a Secret nor an emptyDir")
            };
            let object =
                json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": namespace}});
            let live = self
                .rt
                .block_on(get(&self.client, &object))
                .unwrap_or_else(|| panic!("the Job mounts {kind} {namespace}/{name}, which does not exist"));
            for (key, value) in live["data"].as_object().into_iter().flatten() {
                let text = value.as_str().expect("data value");
                let bytes = if kind == "Secret" {
                    base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .expect("Secret data is base64")
                } else {
                    text.as_bytes().to_vec()
                };
                std::fs::write(dir.join(key), bytes).expect("write mounted file");
            }
        }
    }

    /// A kubeconfig that authenticates as the Job's ServiceAccount (TokenRequest API).
    fn write_token_kubeconfig(&self, namespace: &str, account: &str, path: &Path) {
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: Vec::new(),
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        let token = self
            .rt
            .block_on(
                Api::<ServiceAccount>::namespaced(self.client.clone(), namespace).create_token_request(
                    account,
                    &PostParams::default(),
                    &request,
                ),
            )
            .unwrap_or_else(|e| panic!("TokenRequest for {namespace}/{account}: {e}"))
            .status
            .expect("token status")
            .token;
        let ca = base64::engine::general_purpose::STANDARD.encode(self.env.ca_pem(&self.cluster));
        let config = json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "job",
            "clusters": [{"name": "job", "cluster": {"server": self.env.server(&self.cluster), "certificate-authority-data": ca}}],
            "users": [{"name": "job", "user": {"token": token}}],
            "contexts": [{"name": "job", "context": {"cluster": "job", "user": "job", "namespace": namespace}}],
        });
        write_private(path, &serde_json::to_vec(&config).expect("kubeconfig"));
    }
}

/// `/tmp` (the Job's scratch `emptyDir`) and paths under it, moved to `scratch`.
fn map_scratch(value: &str, scratch: &Path) -> String {
    match value.strip_prefix("/tmp") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{}{rest}", scratch.display()),
        _ => value.to_string(),
    }
}

fn write_private(path: &Path, bytes: &[u8]) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    file.write_all(bytes).expect("write");
}

/// The environment's kubectl (the same release as its API servers).
pub fn kubectl() -> PathBuf {
    support::repo_root().join("testenv/bin/kubectl")
}

/// Run `command`, killing it after `deadline`.
fn wait_with_deadline(mut command: Command, deadline: Duration) -> std::process::Output {
    let mut child = command.spawn().expect("spawn sh");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let out = read(Box::new(stdout));
    let err = read(Box::new(stderr));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            break child.wait().expect("wait after kill");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}
