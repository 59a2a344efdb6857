//! What the `secrets sync` tests set up and read back: fleets pointing at a private
//! environment, the objects the multicluster chart creates on a target, runs of the
//! binary, OpenBao reads with the root token, and clients built from what was written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use secrecy::ExposeSecret as _;
use serde_json::Value;

use crate::fixtures::objects::RemoteAccess;
use crate::support::{meshfleet, texts};
use crate::testenv::TestEnv;

pub(super) const NS: &str = "linkerd-multicluster";
/// A name the test API servers' certificates carry, and validation accepts.
pub(super) const SERVER_NAME: &str = "kubernetes.default.svc";

/// `linkerd-service-mirror-remote-access-<source>`.
pub(super) fn account(source: &str) -> String {
    format!("linkerd-service-mirror-remote-access-{source}")
}

/// The port of a cluster's API server in the environment.
pub(super) fn port(env: &TestEnv, cluster: &str) -> String {
    env.server(cluster).rsplit(':').next().expect("port").to_owned()
}

/// A fleet of `clusters` linked both ways (when there are two), its Vault settings
/// pointing at `mount`/`path`, with `apiServer`s as the module header explains.
pub(super) fn fleet_text(env: &TestEnv, clusters: &[&str], mount: &str, path: &str, issuer: &str) -> String {
    let mut text = format!(
        "apiVersion: meshfleet.io/v1alpha1\nkind: Fleet\nmetadata:\n  name: sync\nspec:\n  linkerd:\n    version: 2025.4.4\n  gitops:\n    engine: flux\n    repository:\n      url: https://github.com/example/fleet.git\n  identity:\n    trustAnchor: certs/trust-anchor.crt\n    issuer: {issuer}\n  secrets:\n    vault:\n      server: https://vault.example:8200\n      mount: {mount}\n      path: {path}\n  clusters:\n"
    );
    for (i, name) in clusters.iter().enumerate() {
        let server = if env.names().iter().any(|n| n == name) {
            format!("      apiServer: https://{SERVER_NAME}:{}\n", port(env, name))
        } else {
            String::new()
        };
        text.push_str(&format!(
            "    - name: {name}\n      vaultAuthMountPath: kubernetes-{name}\n{server}      network: {{pods: [10.{n}.0.0/16], services: [10.10{n}.0.0/16]}}\n      gateway: {{addresses: [{name}.example]}}\n",
            n = i + 1
        ));
    }
    if let [a, b] = clusters {
        text.push_str(&format!(
            "  links:\n    - {{source: {a}, target: {b}}}\n    - {{source: {b}, target: {a}}}\n"
        ));
    }
    text
}

/// A fleet folder with `text` as `fleet.yaml` and an anchor (and issuers) from `certs init`.
pub(super) fn fleet_dir(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("fleet.yaml"), text).expect("write fleet");
    let output = meshfleet(dir.path())
        .args(["certs", "init", "."])
        .output()
        .expect("certs init");
    assert!(output.status.success(), "certs init: {:?}", texts(&output));
    dir
}

/// One run of the binary.
pub(super) struct Run {
    pub(super) code: i32,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

impl Run {
    pub(super) fn all(&self) -> String {
        format!(
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// Assert the exit code, and that none of `secrets` (nor a line of one) was printed.
    pub(super) fn expect(&self, code: i32, secrets: &[&str]) -> &Self {
        assert_eq!(self.code, code, "{}", self.all());
        for secret in secrets {
            let secret = secret.trim();
            assert!(!secret.is_empty());
            let longest = secret.lines().max_by_key(|l| l.len()).unwrap_or(secret);
            for text in [&self.stdout, &self.stderr] {
                assert!(
                    !text.contains(secret) && !text.contains(longest),
                    "a secret was printed:\n{}",
                    self.all()
                );
            }
        }
        self
    }

    /// The stdout line about `entry`, and the line after it (the hint of a failure).
    pub(super) fn entry(&self, entry: &str) -> String {
        let lines: Vec<&str> = self.stdout.lines().collect();
        let at = lines
            .iter()
            .position(|l| {
                l.split_once(": ")
                    .is_some_and(|(head, _)| head.ends_with(&format!(" {entry}")))
            })
            .unwrap_or_else(|| panic!("no line for {entry}:\n{}", self.all()));
        lines[at..(at + 2).min(lines.len())].join("\n")
    }

    /// Assert that `entry` failed with `message`, followed by a hint holding `hint`.
    pub(super) fn expect_failed(&self, entry: &str, message: &str, hint: &str) {
        let line = self.entry(entry);
        assert!(
            line.starts_with(&format!("× {entry}: ")) && line.contains(message),
            "{message}:\n{}",
            self.all()
        );
        assert!(
            line.contains("\n  hint: ") && line.contains(hint),
            "{hint}:\n{}",
            self.all()
        );
    }
}

/// `meshfleet --kubeconfig K secrets sync . ARGS` with exactly the Vault variables in
/// `vault`; `HOME` is the fleet folder, so no `~/.vault-token` of the machine is used.
pub(super) fn sync_with(dir: &Path, kubeconfig: &Path, vault: &[(&str, &str)], args: &[&str]) -> Run {
    let mut command = meshfleet(dir);
    command.env("HOME", dir).env_remove("KUBECONFIG");
    for name in ["VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT"] {
        command.env_remove(name);
    }
    let output = command
        .envs(vault.iter().copied())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["secrets", "sync", "."])
        .args(args)
        .output()
        .expect("run secrets sync");
    let (stdout, stderr) = texts(&output);
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

/// [`sync_with`] `VAULT_ADDR` and `VAULT_TOKEN`.
pub(super) fn sync_as(dir: &Path, kubeconfig: &Path, vault: (&str, &str), args: &[&str]) -> Run {
    sync_with(
        dir,
        kubeconfig,
        &[("VAULT_ADDR", vault.0), ("VAULT_TOKEN", vault.1)],
        args,
    )
}

pub(super) fn sync(env: &TestEnv, dir: &Path, args: &[&str]) -> Run {
    sync_as(
        dir,
        &env.kubeconfig(),
        (env.vault_addr(), env.vault_token().expose_secret()),
        args,
    )
}

/// A request to OpenBao with the root token.
pub(super) async fn bao(
    env: &TestEnv,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}/v1/{path}", env.vault_addr()))
        .header("X-Vault-Token", env.vault_token().expose_secret());
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("OpenBao answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The values of a KV v2 key, if it has any.
pub(super) async fn kv_data(env: &TestEnv, mount: &str, key: &str) -> Option<BTreeMap<String, String>> {
    let (status, body) = bao(env, reqwest::Method::GET, &format!("{mount}/data/{key}"), None).await;
    (status == 200).then(|| serde_json::from_value(body["data"]["data"].clone()).expect("string values"))
}

/// `current_version` of a KV v2 key; `None` when nothing was ever written to it.
pub(super) async fn kv_version(env: &TestEnv, mount: &str, key: &str) -> Option<u64> {
    let (status, body) = bao(
        env,
        reqwest::Method::GET,
        &format!("{mount}/metadata/{key}"),
        None,
    )
    .await;
    (status == 200).then(|| body["data"]["current_version"].as_u64().expect("current_version"))
}

pub(super) fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        ..ObjectMeta::default()
    }
}

pub(super) async fn create<K>(api: &Api<K>, object: &K)
where
    K: kube::Resource
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + k8s_openapi::serde::Serialize
        + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => panic!("create {object:?}: {e}"),
    }
}

/// What the multicluster chart creates on `target` for an incoming link from `source`
/// (reference §3.3): the account, `<account>-token`, and the ClusterRole and binding.
/// Returns the token once the token controller has filled it.
pub(super) async fn grant_remote_access(env: &TestEnv, target: &str, source: &str) -> String {
    let client = env.client(target).await;
    let access = RemoteAccess::new(source);
    create(
        &Api::<Namespace>::all(client.clone()),
        &Namespace {
            metadata: meta(NS, None),
            ..Namespace::default()
        },
    )
    .await;
    create(
        &Api::<ServiceAccount>::namespaced(client.clone(), NS),
        &access.service_account,
    )
    .await;
    create(
        &Api::<Secret>::namespaced(client.clone(), NS),
        &access.token_secret,
    )
    .await;
    create(&Api::<ClusterRole>::all(client.clone()), &access.cluster_role).await;
    create(&Api::<ClusterRoleBinding>::all(client.clone()), &access.binding).await;
    filled_token(&client, &format!("{}-token", account(source))).await
}

/// `<account>-token` as the chart writes it.
pub(super) fn token_secret(source: &str) -> Secret {
    RemoteAccess::new(source).token_secret
}

/// Wait for the token controller to fill a token Secret; its token.
pub(super) async fn filled_token(client: &kube::Client, name: &str) -> String {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let started = Instant::now();
    loop {
        let secret = secrets.get(name).await.expect("get token Secret");
        if let Some(token) = secret
            .data
            .as_ref()
            .and_then(|d| d.get("token"))
            .filter(|t| !t.0.is_empty())
        {
            return String::from_utf8(token.0.clone()).expect("token text");
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name} not filled within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client from a kubeconfig meshfleet wrote, dialling the target's 127.0.0.1 address
/// and verifying its certificate for the written server name (see the module header).
pub(super) async fn client_from(kubeconfig: &str, env: &TestEnv, target: &str) -> kube::Client {
    let parsed = Kubeconfig::from_yaml(kubeconfig).expect("the written kubeconfig parses");
    let mut config = kube::Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default())
        .await
        .expect("the written kubeconfig loads");
    assert_eq!(config.cluster_url.host(), Some(SERVER_NAME));
    config.cluster_url = env.server(target).parse().expect("server URL");
    config.tls_server_name = Some(SERVER_NAME.into());
    kube::Client::try_from(config).expect("client")
}

/// Whether the client's user may `verb` `resource` (SelfSubjectAccessReview).
pub(super) async fn may(client: &kube::Client, verb: &str, resource: &str, name: Option<&str>) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                name: name.map(Into::into),
                namespace: Some(NS.into()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SelfSubjectAccessReview");
    answer.status.is_some_and(|s| s.allowed)
}

pub(super) fn status_of<T>(result: Result<T, kube::Error>) -> Option<u16> {
    match result {
        Ok(_) => None,
        Err(kube::Error::Api(status)) => Some(status.code),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

pub(super) fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path.as_ref()).unwrap_or_else(|e| panic!("read {}: {e}", path.as_ref().display()))
}

/// A port nothing listens on (bound, then released).
pub(super) fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// SIGSTOPs a cluster's controller manager (so its token controller fills nothing) and
/// resumes it on drop. The process was started by this test's own environment; it is
/// found by its pid in the environment's `pids` file.
pub(super) struct PausedControllers(String);

impl PausedControllers {
    pub(super) fn pause(env: &TestEnv, cluster: &str) -> Self {
        let pids = read(env.dir().join("pids"));
        let component = format!("{cluster}-kube-controller-manager");
        let pid = pids
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(component.as_str()))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {component} in pids:\n{pids}"))
            .to_owned();
        let status = std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .expect("kill -STOP");
        assert!(status.success());
        Self(pid)
    }
}

impl Drop for PausedControllers {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0])
            .status();
    }
}

/// A copy of the environment's kubeconfig whose `cluster` points at a closed port.
pub(super) fn kubeconfig_with_stopped(env: &TestEnv, cluster: &str, into: &Path) -> PathBuf {
    let mut config = Kubeconfig::read_from(env.kubeconfig()).expect("read kubeconfig");
    for named in &mut config.clusters {
        if named.name == cluster {
            named.cluster.as_mut().expect("cluster").server =
                Some(format!("https://127.0.0.1:{}", closed_port()));
        }
    }
    let path = into.join("stopped.kubeconfig");
    std::fs::write(&path, serde_saphyr::to_string(&config).expect("kubeconfig YAML"))
        .expect("write kubeconfig");
    path
}
