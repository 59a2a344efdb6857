//! Real Kubernetes control planes and an OpenBao dev server for the tests.
//!
//! This is a thin layer over `testenv/run` (see `testenv/README.md`): it never
//! starts a component itself. [`shared`] runs `testenv/run up --names east,west`
//! once per test-binary run; [`private`] starts an independent environment for a
//! test that has to break it (stop a cluster, ...).
//!
//! Lifecycle: each environment lives in a fresh temp folder `T` (state in `T/env`).
//! Before `up` is started, a detached watchdog (`python3`, double-forked into its
//! own session, so neither Ctrl-C nor `kill -9` of the test process reaches it)
//! waits until this test process is gone, then interrupts a still running `up`,
//! runs `testenv/run down --dir T/env` and removes `T`. So the environment stops
//! when the run ends: normally, after a panic, or when the test binary is killed.
//! A [`PrivateEnv`] also stops on drop; its watchdog then ends because `T` is gone.
//! `MESHFLEET_TESTENV_KEEP=1` keeps `T` (logs, PKI) after `down` for debugging.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use secrecy::{ExposeSecret as _, SecretString};

use crate::support;

/// The cluster names of the shared environment.
pub const SHARED_NAMES: [&str; 2] = ["east", "west"];

/// One running environment started by `testenv/run up`.
pub struct TestEnv {
    root: PathBuf,
    dir: PathBuf,
    names: Vec<String>,
    /// OpenBao's address and root token; `None` in an environment started without it.
    vault: Option<(String, SecretString)>,
    info: serde_json::Value,
    startup: Duration,
}

impl fmt::Debug for TestEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestEnv")
            .field("dir", &self.dir)
            .field("names", &self.names)
            .field("vault_addr", &self.vault.as_ref().map(|(addr, _)| addr))
            .field("vault_token", &"<redacted>")
            .field("startup", &self.startup)
            .finish_non_exhaustive()
    }
}

impl TestEnv {
    /// The state folder given to `testenv/run up --dir`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The admin kubeconfig: one context per cluster, named after it.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// The cluster names, in the order given to `up`.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// `http://127.0.0.1:PORT` of the OpenBao dev server.
    pub fn vault_addr(&self) -> &str {
        &self.vault().0
    }

    /// The OpenBao dev root token (never shown by `Debug`).
    pub fn vault_token(&self) -> &SecretString {
        &self.vault().1
    }

    fn vault(&self) -> &(String, SecretString) {
        self.vault
            .as_ref()
            .expect("this environment runs no OpenBao (started by private_without_vault)")
    }

    /// How long `testenv/run up` took.
    pub fn startup(&self) -> Duration {
        self.startup
    }

    /// `https://127.0.0.1:PORT` of a cluster's API server (from `env.json`).
    pub fn server(&self, name: &str) -> String {
        self.cluster_info(name, "server")
    }

    /// The PEM CA of a cluster's API server (from `env.json`).
    pub fn ca_pem(&self, name: &str) -> Vec<u8> {
        let path = self.cluster_info(name, "ca_file");
        std::fs::read(&path).unwrap_or_else(|e| panic!("read CA {path}: {e}"))
    }

    fn cluster_info(&self, name: &str, key: &str) -> String {
        self.info["clusters"][name][key]
            .as_str()
            .unwrap_or_else(|| panic!("env.json has no clusters.{name}.{key}: {}", self.info))
            .to_owned()
    }

    /// An admin client for one cluster, built from its kubeconfig context.
    pub async fn client(&self, name: &str) -> kube::Client {
        assert!(
            self.names.iter().any(|n| n == name),
            "no cluster {name} in this environment (have {:?})",
            self.names
        );
        let kubeconfig = Kubeconfig::read_from(self.kubeconfig())
            .unwrap_or_else(|e| panic!("read {}: {e}", self.kubeconfig().display()));
        let options = KubeConfigOptions {
            context: Some(name.to_owned()),
            ..KubeConfigOptions::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .unwrap_or_else(|e| panic!("kubeconfig context {name}: {e}"));
        kube::Client::try_from(config).unwrap_or_else(|e| panic!("client for {name}: {e}"))
    }
}

impl TestEnv {
    /// `testenv/run mesh`: install the rendered tree's folders on the clusters of the same
    /// name with Linkerd's real CLI, and run the environment's controllers (the kubelet
    /// for Linkerd's controllers, the External Secrets and cert-manager stand-ins).
    /// Panics with the command's stderr when it fails.
    pub fn mesh(&self, tree: &Path) -> Duration {
        self.mesh_with(tree, &[])
    }

    /// [`TestEnv::mesh`] with more arguments (`--data-plane`).
    pub fn mesh_with(&self, tree: &Path, args: &[&str]) -> Duration {
        let started = Instant::now();
        let output = Command::new(run_script())
            .args(["mesh", "--dir"])
            .arg(&self.dir)
            .arg("--tree")
            .arg(tree)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run testenv/run mesh");
        assert!(
            output.status.success(),
            "`testenv/run mesh --tree {}` failed ({}); its stderr:\n{}",
            tree.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        started.elapsed()
    }

    /// `testenv/run gitops`: real Flux, External Secrets and cert-manager on every
    /// cluster, a loopback git server and Helm repository, and the `flux bootstrap`
    /// objects (see testenv/lib/gitops.py). Panics with the command's stderr when it fails.
    pub fn gitops(&self) -> Duration {
        self.gitops_with(&[])
    }

    /// `testenv/run gitops --engine argocd --hub HUB`: one real Argo CD on `hub` with
    /// every cluster registered, External Secrets and cert-manager on every cluster (see
    /// testenv/lib/argocd.py).
    pub fn gitops_argocd(&self, hub: &str) -> Duration {
        self.gitops_with(&["--engine", "argocd", "--hub", hub])
    }

    fn gitops_with(&self, args: &[&str]) -> Duration {
        let started = Instant::now();
        let output = Command::new(run_script())
            .args(["gitops", "--dir"])
            .arg(&self.dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run testenv/run gitops");
        assert!(
            output.status.success(),
            "`testenv/run gitops` failed ({}); its stderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        started.elapsed()
    }

    /// `testenv/run commit`: commit a rendered tree to the environment's git repository
    /// (the documented URL substitutions only) and ask Flux to fetch it. Returns the commit.
    pub fn commit(&self, tree: &Path, message: &str) -> String {
        let output = Command::new(run_script())
            .args(["commit", "--dir"])
            .arg(&self.dir)
            .arg("--tree")
            .arg(tree)
            .args(["-m", message])
            .stdin(Stdio::null())
            .output()
            .expect("run testenv/run commit");
        assert!(
            output.status.success(),
            "`testenv/run commit` failed ({}); its stderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The environment's loopback git and Helm server (`http://127.0.0.1:PORT`), once
    /// `gitops` ran: `/git/fleet.git` is the repository `commit` pushes to.
    pub fn gitops_url(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("gitops.json"))
            .expect("DIR/gitops.json (run gitops first)");
        let info: serde_json::Value = serde_json::from_str(&text).expect("gitops.json");
        info["url"].as_str().expect("url").to_owned()
    }

    /// The HTTPS proxy through which the environment's controllers reach the fleet's
    /// `apiServer`s (testenv/lib/network.py); set by `mesh`.
    pub fn cluster_network(&self) -> String {
        std::fs::read_to_string(self.dir.join("cluster-network"))
            .expect("DIR/cluster-network (run mesh first)")
            .trim()
            .to_owned()
    }

    /// The log of a process the environment runs (e.g. `east-linkerd-multicluster-controller-west`).
    pub fn log(&self, component: &str) -> String {
        std::fs::read_to_string(self.dir.join("logs").join(format!("{component}.log"))).unwrap_or_default()
    }

    /// The real Linkerd CLI of a chart version (`2025.4.4` → `edge-25.4.4`), from
    /// `MESHFLEET_LINKERD_DIR` or what `testenv/run build` unpacked.
    pub fn linkerd_cli(version: &str) -> PathBuf {
        let (year, rest) = version.split_once('.').expect("a YYYY.M.N chart version");
        let release = format!("edge-{}.{rest}", &year[2..]);
        let root = std::env::var_os("MESHFLEET_LINKERD_DIR")
            .map_or_else(|| support::repo_root().join("testenv/bin/linkerd"), PathBuf::from);
        let cli = root.join(release).join("linkerd");
        assert!(
            cli.exists(),
            "no Linkerd CLI at {} (run testenv/run build)",
            cli.display()
        );
        cli
    }
}

/// A multi-threaded tokio runtime for sync `#[test]`s. Keep one per test when clients
/// are reused across `block_on` calls: a client dies with the runtime it was made on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Run `future` to completion on a fresh runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// The environment shared by every test of this run (clusters `east` and `west`).
///
/// The first caller starts it and blocks until it is ready (building the
/// control-plane binaries first if they are missing, which can take minutes);
/// the others wait for it. Panics with `testenv/run`'s stderr if it could not
/// start, and so does every later caller, without trying again.
pub fn shared() -> &'static TestEnv {
    static SHARED: OnceLock<Result<TestEnv, String>> = OnceLock::new();
    match SHARED.get_or_init(|| start(&SHARED_NAMES, "shared", &[])) {
        Ok(env) => env,
        Err(reason) => panic!("the shared test environment could not start:\n{reason}"),
    }
}

/// An environment of its own, for a test that must stop or break a cluster.
/// Stopped on drop (and by its watchdog if the process dies first).
pub fn private(names: &[&str]) -> PrivateEnv {
    private_with(names, &[])
}

/// [`private`] with more arguments for `up` (`--pod-cidr NAME=CIDR`).
pub fn private_with(names: &[&str], up_args: &[String]) -> PrivateEnv {
    match start(names, "private", up_args) {
        Ok(env) => PrivateEnv { env },
        Err(reason) => panic!("a private test environment could not start:\n{reason}"),
    }
}

/// A private environment with no OpenBao at all (`testenv/run up --no-vault`): for a
/// fleet whose secrets are SOPS files in git. `vault_addr` and `vault_token` panic.
pub fn private_without_vault(names: &[&str]) -> PrivateEnv {
    match start(names, "private", &["--no-vault".to_owned()]) {
        Ok(env) => PrivateEnv { env },
        Err(reason) => panic!("a private test environment could not start:\n{reason}"),
    }
}

/// A [`TestEnv`] that runs `testenv/run down` when dropped.
#[derive(Debug)]
pub struct PrivateEnv {
    env: TestEnv,
}

impl std::ops::Deref for PrivateEnv {
    type Target = TestEnv;

    fn deref(&self) -> &TestEnv {
        &self.env
    }
}

impl Drop for PrivateEnv {
    fn drop(&mut self) {
        match down(&self.env.dir) {
            Ok(()) => {
                if !keep() {
                    let _ = std::fs::remove_dir_all(&self.env.root);
                }
            }
            // Not a panic: this may run while unwinding. The watchdog tries again.
            Err(reason) => eprintln!("testenv: down failed for {}: {reason}", self.env.dir.display()),
        }
    }
}

fn run_script() -> PathBuf {
    support::repo_root().join("testenv/run")
}

/// Whether `MESHFLEET_TESTENV_KEEP=1` asks to keep the folders after `down`.
pub fn keep() -> bool {
    std::env::var_os("MESHFLEET_TESTENV_KEEP").is_some_and(|v| v == "1")
}

/// `testenv/run down --dir dir`.
fn down(dir: &Path) -> Result<(), String> {
    let output = Command::new(run_script())
        .arg("down")
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run testenv/run down: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Arm the watchdog, run `up` (with `up_args`), read what it wrote.
fn start(names: &[&str], what: &str, up_args: &[String]) -> Result<TestEnv, String> {
    let vault = !up_args.iter().any(|a| a == "--no-vault");
    let root = tempfile::Builder::new()
        .prefix(&format!("meshfleet-testenv-{what}-"))
        .tempdir()
        .map_err(|e| format!("cannot create a temp folder: {e}"))?
        .keep();
    let dir = root.join("env");
    arm_watchdog(&root, &dir)?;

    let started = Instant::now();
    // No timeout of ours: `up` builds what is missing (minutes on a cold machine)
    // and then gives up on its own after its readiness timeout.
    let child = Command::new(run_script())
        .args(["up", "--names", &names.join(","), "--dir"])
        .arg(&dir)
        .args(up_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", run_script().display()))?;
    // The watchdog interrupts this `up` if the test process dies before it is done.
    std::fs::write(root.join("up.pid"), child.id().to_string())
        .map_err(|e| format!("cannot write up.pid: {e}"))?;
    let output = child
        .wait_with_output()
        .map_err(|e| format!("waiting for testenv/run up: {e}"))?;
    let startup = started.elapsed();
    if !output.status.success() {
        return Err(format!(
            "`testenv/run up --names {} --dir {}` failed ({}) after {:.1}s \
             (MESHFLEET_TESTENV_KEEP=1 keeps that folder after the run); its stderr:\n{}",
            names.join(","),
            dir.display(),
            output.status,
            startup.as_secs_f64(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    eprintln!(
        "testenv: {what} environment {} up in {:.1}s: {}",
        names.join(","),
        startup.as_secs_f64(),
        String::from_utf8_lossy(&output.stdout).trim()
    );
    read_env(root, dir, names, startup, vault)
}

fn read_env(
    root: PathBuf,
    dir: PathBuf,
    names: &[&str],
    startup: Duration,
    vault: bool,
) -> Result<TestEnv, String> {
    let info_text = std::fs::read_to_string(dir.join("env.json"))
        .map_err(|e| format!("cannot read {}/env.json: {e}", dir.display()))?;
    let info = serde_json::from_str(&info_text).map_err(|e| format!("env.json: {e}"))?;
    Ok(TestEnv {
        vault: if vault { Some(read_vault_env(&dir)?) } else { None },
        names: names.iter().map(|n| (*n).to_owned()).collect(),
        root,
        dir,
        info,
        startup,
    })
}

fn read_vault_env(dir: &Path) -> Result<(String, SecretString), String> {
    let vault_env = std::fs::read_to_string(dir.join("vault.env"))
        .map_err(|e| format!("cannot read {}/vault.env: {e}", dir.display()))?;
    let mut vault_addr = None;
    let mut vault_token = None;
    for line in vault_env.lines() {
        if let Some(v) = line.strip_prefix("VAULT_ADDR=") {
            vault_addr = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("VAULT_TOKEN=") {
            vault_token = Some(SecretString::from(v.trim().to_owned()));
        }
    }
    let token = vault_token.ok_or("vault.env has no VAULT_TOKEN")?;
    if token.expose_secret().is_empty() {
        return Err("vault.env has an empty VAULT_TOKEN".into());
    }
    Ok((vault_addr.ok_or("vault.env has no VAULT_ADDR")?, token))
}

/// The watchdog, run as `python3 -c WATCHDOG OWNER_PID ROOT DIR RUN KEEP`.
///
/// It notes the owner's start time (so a recycled pid is not mistaken for it),
/// forks (the launcher exits at once) and detaches into its own session. Then it
/// polls every 0.5 s until the owner is gone or ROOT was removed (a private
/// environment that was stopped on drop). If the owner is gone: SIGINT to a
/// still running `up` (found through ROOT/up.pid, checked by its command line;
/// `up` then stops what it started), `RUN down --dir DIR`, and remove ROOT
/// unless KEEP is 1 or `down` failed. Its output goes to ROOT/watchdog.log.
const WATCHDOG: &str = r#"
import os, signal, subprocess, sys, time
owner, root, d, run, keep = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1"

def stat(pid):
    try:
        with open("/proc/%d/stat" % pid) as fh:
            data = fh.read()
    except OSError:
        return None
    rest = data[data.rindex(")") + 2:].split()
    return None if rest[0] in ("Z", "X") else rest[19]

def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as fh:
            return fh.read().split(b"\0")
    except OSError:
        return []

start = stat(owner)
if start is None:
    sys.exit(0)
if os.fork():
    os._exit(0)
os.setsid()
while stat(owner) == start and os.path.isdir(root):
    time.sleep(0.5)
if not os.path.isdir(root):
    sys.exit(0)
log = open(os.path.join(root, "watchdog.log"), "a")
os.dup2(log.fileno(), 1)
os.dup2(log.fileno(), 2)
print("owner %d gone; stopping %s" % (owner, d), flush=True)
try:
    up = int(open(os.path.join(root, "up.pid")).read().strip())
except (OSError, ValueError):
    up = None
if up and b"up" in cmdline(up) and d.encode() in cmdline(up):
    print("interrupting testenv/run up (pid %d)" % up, flush=True)
    os.kill(up, signal.SIGINT)
    deadline = time.time() + 120
    while stat(up) is not None and b"up" in cmdline(up) and time.time() < deadline:
        time.sleep(0.2)
    if stat(up) is not None and d.encode() in cmdline(up):
        os.kill(up, signal.SIGKILL)
r = subprocess.run([run, "down", "--dir", d], stdin=subprocess.DEVNULL)
if r.returncode == 0 and not keep:
    import shutil
    shutil.rmtree(root, ignore_errors=True)
"#;

fn arm_watchdog(root: &Path, dir: &Path) -> Result<(), String> {
    let status = Command::new("python3")
        .arg("-c")
        .arg(WATCHDOG)
        .arg(std::process::id().to_string())
        .arg(root)
        .arg(dir)
        .arg(run_script())
        .arg(if keep() { "1" } else { "0" })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("cannot start the testenv watchdog (python3): {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the testenv watchdog did not start: {status}"))
    }
}
