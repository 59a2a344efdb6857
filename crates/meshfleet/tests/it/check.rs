//! `meshfleet check` against real API servers: a healthy two-cluster fleet passes every
//! check, and breaking one thing at a time fails exactly the check that watches it.
//!
//! The clusters are a private environment (`studio`, `pro`) shared by the tests of this
//! file, built once by [`crate::fixtures`]. Each case takes [`lock`], breaks one object,
//! runs the binary, puts the object back, and only then asserts, so a failed assertion
//! never leaves the next case a broken cluster.
//!
//! The fleet's `apiServer`s are `https://<name>.meshfleet.test:<port>`, not the
//! environment's `https://127.0.0.1:<port>`: a loopback `apiServer` is a validation error
//! (other clusters cannot dial it), and `check` dials the target through the user's own
//! context anyway, with the link's CA and token.

mod broken;
mod live_graph;

use std::collections::BTreeMap;
use std::process::Output;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use serde_json::{Value, json};

use crate::fixtures::FleetFixture;
use crate::support::{meshfleet, texts};
use crate::testenv::{self, PrivateEnv};

/// The ids a healthy fleet of linked clusters reports, all `ok`: the contract of `-o json`.
const ALL_IDS: [&str; 19] = [
    "cluster-reachable",
    "linkerd-installed",
    "trust-anchors-match",
    "issuer-valid",
    "multicluster-namespace",
    "unknown-link",
    "link-present",
    "link-drift",
    "credentials-secret",
    "credentials-kubeconfig",
    "credentials-access",
    "credentials-loaded",
    "controller-available",
    "legacy-controller",
    "gateway-service",
    "probe-endpoints",
    "mirror-present",
    "export-annotation",
    "unknown-mirror",
];

fn fleet_text(env: &testenv::TestEnv, extra_cluster: &str) -> String {
    let port = |name: &str| {
        env.server(name)
            .rsplit(':')
            .next()
            .expect("server has a port")
            .to_string()
    };
    format!(
        "\
apiVersion: meshfleet.io/v1alpha1
kind: Fleet
metadata:
  name: checks
spec:
  linkerd:
    version: 2025.4.4
  gitops:
    engine: flux
    repository:
      url: https://github.com/example/fleet.git
  identity:
    trustAnchor: certs/trust-anchor.crt
  secrets:
    vault:
      server: https://vault.example:8200
      mount: secret
      path: linkerd
  clusters:
    - name: studio
      vaultAuthMountPath: kubernetes-studio
      apiServer: https://studio.meshfleet.test:{studio}
      network: {{pods: [10.1.0.0/16], services: [10.101.0.0/16]}}
      gateway:
        serviceType: NodePort
        addresses: [192.0.2.10]
        nodePort: 30143
        probe: {{nodePort: 30191}}
    - name: pro
      vaultAuthMountPath: kubernetes-pro
      apiServer: https://pro.meshfleet.test:{pro}
      network: {{pods: [10.2.0.0/16], services: [10.102.0.0/16]}}
      gateway:
        serviceType: LoadBalancer
        addresses: [192.0.2.20]
{extra_cluster}  links:
    - {{source: studio, target: pro}}
    - {{source: pro, target: studio}}
",
        studio = port("studio"),
        pro = port("pro"),
    )
}

/// The shared private environment with a healthy fleet installed.
struct Live {
    env: PrivateEnv,
    fleet: tempfile::TempDir,
    fixture: FleetFixture,
}

impl Live {
    async fn clients(&self) -> BTreeMap<String, kube::Client> {
        let mut clients = BTreeMap::new();
        for name in self.env.names() {
            clients.insert(name.clone(), self.env.client(name).await);
        }
        clients
    }

    async fn client(&self, name: &str) -> kube::Client {
        self.env.client(name).await
    }

    /// `meshfleet check <fleet> --kubeconfig <env> ARGS...`.
    fn check(&self, args: &[&str]) -> Output {
        meshfleet(self.fleet.path())
            .arg("check")
            .arg(".")
            .arg("--kubeconfig")
            .arg(self.env.kubeconfig())
            .args(args)
            .output()
            .expect("run check")
    }

    /// `check -o json`: exit code and report.
    fn check_json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        json_of(&self.check(&all))
    }
}

fn json_of(output: &Output) -> (i32, Value) {
    let (stdout, stderr) = texts(output);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("check -o json printed no JSON ({e})\nstdout:\n{stdout}\nstderr:\n{stderr}")
    });
    (output.status.code().unwrap_or(-1), report)
}

fn live() -> &'static Live {
    static LIVE: OnceLock<Live> = OnceLock::new();
    LIVE.get_or_init(|| {
        let env = testenv::private(&["studio", "pro"]);
        let fleet = tempfile::tempdir().expect("tempdir");
        std::fs::write(fleet.path().join("fleet.yaml"), fleet_text(&env, "")).expect("write fleet");
        let init = meshfleet(fleet.path())
            .args(["certs", "init", "."])
            .output()
            .expect("certs init");
        assert!(init.status.success(), "certs init: {:?}", texts(&init));
        let fixture = FleetFixture::load(fleet.path());
        let live = Live { env, fleet, fixture };
        let started = Instant::now();
        testenv::block_on(async { live.fixture.install(&live.clients().await).await });
        eprintln!(
            "check: fixture installed in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        live
    })
}

/// One case at a time: the cases break and restore objects of the shared clusters.
fn lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The results of `id` for `cluster` (and `link`, when given).
fn results<'r>(report: &'r Value, cluster: &str, id: &str, link: Option<&str>) -> Vec<&'r Value> {
    report["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .filter(|c| c["name"] == cluster)
        .flat_map(|c| c["checks"].as_array().expect("checks"))
        .filter(|r| r["id"] == id && link.is_none_or(|l| r["link"] == l))
        .collect()
}

/// Every result that is not `ok`, as `cluster/id/link: message`.
fn problems(report: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for cluster in report["clusters"].as_array().expect("clusters") {
        for r in cluster["checks"].as_array().expect("checks") {
            if r["status"] != "ok" {
                out.push(format!(
                    "{}/{}/{}: {} {}",
                    cluster["name"].as_str().unwrap_or_default(),
                    r["id"].as_str().unwrap_or_default(),
                    r["link"].as_str().unwrap_or("-"),
                    r["message"].as_str().unwrap_or_default(),
                    r["details"]
                ));
            }
        }
    }
    out
}

/// Assert that exactly the checks `expected` (cluster, id, link) failed.
fn assert_fails_only(code: i32, report: &Value, expected: &[(&str, &str, Option<&str>)]) {
    assert_eq!(
        code,
        1,
        "a failed check exits 1; problems: {:#?}",
        problems(report)
    );
    assert_eq!(report["success"], false);
    for (cluster, id, link) in expected {
        let found = results(report, cluster, id, *link);
        assert!(
            found.iter().any(|r| r["status"] == "error"),
            "{cluster}: `{id}` ({link:?}) should fail; problems: {:#?}",
            problems(report)
        );
    }
    for problem in problems(report) {
        assert!(
            expected
                .iter()
                .any(|(c, id, _)| problem.starts_with(&format!("{c}/{id}/"))),
            "unexpected problem: {problem}"
        );
    }
}

#[test]
fn a_healthy_fleet_passes_every_check() {
    let live = live();
    let _lock = lock();
    let started = Instant::now();
    let output = live.check(&[]);
    let elapsed = started.elapsed();
    let (stdout, stderr) = texts(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    crate::snapshot_run!("check_healthy", output);
    eprintln!(
        "check of 2 healthy clusters took {:.2}s\n{stdout}",
        elapsed.as_secs_f64()
    );
    let marks: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with('✓') || l.starts_with('‼') || l.starts_with('×'))
        .collect();
    assert!(marks.iter().all(|l| l.starts_with('✓')), "{stdout}");
    // Per cluster: 6 cluster-wide checks, 12 for its link, 2 for services.
    assert_eq!(marks.len(), 2 * 20, "{stdout}");
    assert!(
        stdout.contains("studio (context `studio`, https://127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("link to `pro`\n-------------\n"), "{stdout}");
    assert!(
        stdout.ends_with("Status check results are ✓: all 40 checks passed (2 clusters)\n"),
        "{stdout}"
    );
    assert!(
        stderr.is_empty(),
        "nothing on stderr without a terminal: {stderr}"
    );
}

#[test]
fn json_output_has_stable_ids() {
    let live = live();
    let _lock = lock();
    let (code, report) = live.check_json(&[]);
    assert_eq!(code, 0, "{:#?}", problems(&report));
    assert_eq!(report["fleet"], "checks");
    assert_eq!(report["success"], true);
    assert_eq!(
        report["summary"],
        json!({"clusters": 2, "unreachable": 0, "ok": 40, "warnings": 0, "errors": 0})
    );
    for cluster in ["studio", "pro"] {
        let c = report["clusters"]
            .as_array()
            .expect("clusters")
            .iter()
            .find(|c| c["name"] == cluster)
            .expect("cluster reported");
        assert_eq!(c["context"], cluster);
        assert_eq!(c["reachable"], true);
        assert!(c["version"].as_str().is_some_and(|v| v.starts_with("v1.")), "{c}");
        let ids: std::collections::BTreeSet<&str> = c["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .map(|r| r["id"].as_str().expect("id"))
            .collect();
        assert_eq!(ids, ALL_IDS.into_iter().collect(), "{cluster}");
        for r in c["checks"].as_array().expect("checks") {
            for key in [
                "id", "category", "link", "status", "message", "details", "hint", "file",
            ] {
                assert!(r.get(key).is_some(), "{key} missing in {r}");
            }
        }
        let other = if cluster == "studio" { "pro" } else { "studio" };
        assert_eq!(
            results(&report, cluster, "credentials-secret", Some(other)).len(),
            2
        );
        assert_eq!(
            results(&report, cluster, "link-drift", Some(other))[0]["category"],
            "link"
        );
    }
}

#[test]
fn one_cluster_can_be_checked_alone() {
    let live = live();
    let _lock = lock();
    let (code, report) = live.check_json(&["--cluster", "studio"]);
    assert_eq!(code, 0, "{:#?}", problems(&report));
    let names: Vec<&str> = report["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["studio"]);
    // Its link's target was read too: mirrors and the gateway were checked.
    assert_eq!(
        results(&report, "studio", "gateway-service", Some("pro"))[0]["status"],
        "ok"
    );
    assert_eq!(
        results(&report, "studio", "mirror-present", Some("pro"))[0]["status"],
        "ok"
    );
}

#[test]
fn exit_codes_when_check_cannot_run() {
    // An invalid fleet: findings and exit 1, as every command does; no cluster needed.
    let fleet =
        crate::support::TempFleet::new(&crate::support::BASE_FLEET.replace("10.2.0.0/16", "10.1.0.0/16"));
    let output = meshfleet(fleet.path())
        .args(["check", "."])
        .output()
        .expect("check");
    let (_, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error["), "{stderr}");

    let fleet = crate::support::TempFleet::new(crate::support::BASE_FLEET);
    // An unreadable kubeconfig: exit 2.
    let output = meshfleet(fleet.path())
        .args(["check", ".", "--kubeconfig", "/nonexistent/kubeconfig"])
        .output()
        .expect("check");
    let (_, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    // A cluster the fleet does not have: exit 2, naming the fleet's.
    let output = meshfleet(fleet.path())
        .args(["check", ".", "--cluster", "north"])
        .output()
        .expect("check");
    let (_, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no cluster `north`") && stderr.contains("`east`, `west`"),
        "{stderr}"
    );
    // A missing fleet: exit 2.
    let output = meshfleet(fleet.path())
        .args(["check", "nowhere"])
        .output()
        .expect("check");
    assert_eq!(output.status.code(), Some(2));
}
