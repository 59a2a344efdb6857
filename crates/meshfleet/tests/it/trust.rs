//! `trust extract` and `trust verify` against real API servers (`testenv::private`):
//! the two ConfigMaps Linkerd keeps its anchors in are written as Linkerd writes them,
//! and the fleet's anchor comes from `certs init`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams};
use meshfleet_core::identity;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::support::{BASE_FLEET, meshfleet, texts};
use crate::testenv;

/// A fleet folder with BASE_FLEET and the anchor `certs init` made (`anchor.crt`).
fn fleet_with_anchor() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("fleet.yaml"), BASE_FLEET).expect("write fleet");
    let output = meshfleet(dir.path())
        .args(["certs", "init", "."])
        .output()
        .expect("certs init");
    assert!(output.status.success(), "certs init failed: {:?}", texts(&output));
    dir
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A fresh anchor that is not the fleet's.
fn other_anchor() -> String {
    identity::generate_anchor(OffsetDateTime::now_utc())
        .expect("anchor")
        .cert_pem
}

fn sha256(pem: &str) -> Vec<String> {
    identity::parse_pem_bundle(pem)
        .expect("bundle parses")
        .into_iter()
        .map(|c| c.sha256)
        .collect()
}

/// Write what a Linkerd install holds: `linkerd-config` (values with
/// `identityTrustAnchorsPEM`) and `linkerd-identity-trust-roots` (`ca-bundle.crt`).
async fn install_anchors(client: &kube::Client, config_pem: &str, roots_pem: &str) {
    let apply = PatchParams::apply("meshfleet-test").force();
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some("linkerd".into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .patch("linkerd", &apply, &Patch::Apply(&namespace))
        .await
        .expect("namespace");
    let values = serde_saphyr::to_string(&json!({
        "controllerImage": "cr.l5d.io/linkerd/controller",
        "identityTrustAnchorsPEM": config_pem,
        "identityTrustDomain": "cluster.local",
    }))
    .expect("values YAML");
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "linkerd");
    for (name, key, value) in [
        ("linkerd-config", "values", values),
        (
            "linkerd-identity-trust-roots",
            "ca-bundle.crt",
            roots_pem.to_string(),
        ),
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
        api.patch(name, &apply, &Patch::Apply(&cm))
            .await
            .expect("config map");
    }
}

fn run(dir: &Path, kubeconfig: &Path, args: &[&str]) -> (i32, String, String) {
    let output: Output = meshfleet(dir)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("run meshfleet");
    let (stdout, stderr) = texts(&output);
    (output.status.code().unwrap_or(-1), stdout, stderr)
}

/// The table row of one cluster and source.
fn row<'a>(table: &'a str, cluster: &str, source: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.contains(&format!(" {cluster} ")) && l.contains(&format!(" {source} ")))
        .unwrap_or_else(|| panic!("no row {cluster}/{source} in\n{table}"))
}

fn verify_json(dir: &Path, kubeconfig: &Path) -> (i32, Value) {
    let (code, stdout, stderr) = run(dir, kubeconfig, &["-o", "json", "trust", "verify", "."]);
    let value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}\n{stdout}\n{stderr}"));
    (code, value)
}

fn cluster_status(report: &Value, cluster: &str) -> String {
    report["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .find(|c| c["cluster"] == cluster)
        .and_then(|c| c["status"].as_str())
        .unwrap_or_else(|| panic!("no cluster {cluster} in {report}"))
        .to_string()
}

#[test]
fn verify_compares_every_cluster_with_the_fleet_bundle() {
    let env = testenv::private(&["east", "west"]);
    // One runtime for the whole test: a client dies with the runtime it was made on.
    let rt = testenv::runtime();
    let fleet = fleet_with_anchor();
    let dir = fleet.path();
    let kubeconfig = env.kubeconfig();
    let anchor = read(&dir.join("anchor.crt"));
    let (east, west) = rt.block_on(async { (env.client("east").await, env.client("west").await) });

    // Both clusters use the fleet's anchor.
    rt.block_on(async {
        install_anchors(&east, &anchor, &anchor).await;
        install_anchors(&west, &anchor, &anchor).await;
    });
    let (code, stdout, stderr) = run(dir, &kubeconfig, &["trust", "verify", "."]);
    crate::snapshot_parts!("trust_verify_match", code, &stdout, &stderr);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    for (cluster, source) in [
        ("east", "trust-roots"),
        ("east", "linkerd-config"),
        ("west", "trust-roots"),
    ] {
        assert!(row(&stdout, cluster, source).contains("match"), "{stdout}");
    }
    let short = &sha256(&anchor)[0][..23];
    assert!(row(&stdout, "east", "trust-roots").contains(short), "{stdout}");
    let (code, report) = verify_json(dir, &kubeconfig);
    assert_eq!((code, report["ok"].clone()), (0, json!(true)), "{report}");
    assert_eq!(report["fleet"]["sha256"], json!(sha256(&anchor)));

    // West moves to another anchor: only west is flagged.
    let other = other_anchor();
    rt.block_on(install_anchors(&west, &other, &other));
    let (code, stdout, stderr) = run(dir, &kubeconfig, &["trust", "verify", "."]);
    crate::snapshot_parts!("trust_verify_mismatch", code, &stdout, &stderr);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        row(&stdout, "west", "trust-roots").contains("MISMATCH"),
        "{stdout}"
    );
    assert!(
        row(&stdout, "west", "linkerd-config").contains("MISMATCH"),
        "{stdout}"
    );
    assert!(
        !row(&stdout, "east", "trust-roots").contains("MISMATCH"),
        "{stdout}"
    );
    assert!(
        !row(&stdout, "east", "linkerd-config").contains("MISMATCH"),
        "{stdout}"
    );
    assert!(
        stderr.contains("cluster `west`") && !stderr.contains("cluster `east`"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&sha256(&other)[0]),
        "the foreign fingerprint is named:\n{stderr}"
    );
    let (code, report) = verify_json(dir, &kubeconfig);
    assert_eq!(code, 1);
    assert_eq!(
        (cluster_status(&report, "east"), cluster_status(&report, "west")),
        ("match".into(), "mismatch".into())
    );

    // A rotation: the fleet's bundle holds old and new; clusters hold them in the other order.
    let new = other_anchor();
    std::fs::write(dir.join("anchor.crt"), format!("{anchor}{new}")).expect("write bundle");
    let reversed = format!("{new}{anchor}");
    rt.block_on(async {
        install_anchors(&east, &reversed, &reversed).await;
        install_anchors(&west, &reversed, &reversed).await;
    });
    let (code, stdout, stderr) = run(dir, &kubeconfig, &["trust", "verify", "."]);
    assert_eq!(
        code, 0,
        "a two-anchor bundle in any order matches\n{stdout}\n{stderr}"
    );
    for pem in [&anchor, &new] {
        let short = format!("{}…", &sha256(pem)[0][..23]);
        assert_eq!(
            stdout.matches(&short).count(),
            5,
            "fleet + 2 per cluster: {stdout}"
        );
    }

    // East's trust-roots has the rotation bundle, its linkerd-config only the old anchor.
    rt.block_on(install_anchors(&east, &anchor, &reversed));
    let (code, stdout, stderr) = run(dir, &kubeconfig, &["trust", "verify", "."]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(row(&stdout, "east", "trust-roots").contains("match"), "{stdout}");
    assert!(
        row(&stdout, "east", "linkerd-config").contains("MISMATCH"),
        "{stdout}"
    );
    assert!(
        stderr.contains(
            "cluster `east`: `linkerd-identity-trust-roots` and `linkerd-config` hold different anchors"
        ),
        "{stderr}"
    );
    let (_, report) = verify_json(dir, &kubeconfig);
    let east_report = &report["clusters"][0];
    assert_eq!(east_report["sourcesAgree"], json!(false), "{report}");
    assert_eq!(
        east_report["sources"][0]["sha256"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(east_report["sources"][1]["status"], json!("mismatch"));
}

/// `kubeconfig` with one more context, `name`, whose API server is a closed port.
fn with_stopped_context(kubeconfig: &Path, copy_of: &str, name: &str, out: &Path) -> PathBuf {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut config: Value = serde_saphyr::from_str(&read(kubeconfig)).expect("kubeconfig parses");
    for (list, key) in [("clusters", "cluster"), ("contexts", "context")] {
        let entries = config[list].as_array_mut().expect("list");
        let mut entry = entries
            .iter()
            .find(|e| e["name"] == copy_of)
            .cloned()
            .expect("entry to copy");
        entry["name"] = json!(name);
        if key == "cluster" {
            entry["cluster"]["server"] = json!(format!("https://127.0.0.1:{port}"));
        } else {
            entry["context"]["cluster"] = json!(name);
        }
        entries.push(entry);
    }
    let path = out.join("kubeconfig-with-stopped");
    std::fs::write(&path, serde_json::to_string(&config).expect("json")).expect("write kubeconfig");
    path
}

#[test]
fn extract_prints_the_bundle_proxies_use_and_explains_what_is_missing() {
    let env = testenv::private(&["east"]);
    let rt = testenv::runtime();
    let fleet = fleet_with_anchor();
    let dir = fleet.path();
    let kubeconfig = env.kubeconfig();
    let anchor = read(&dir.join("anchor.crt"));
    let east = rt.block_on(env.client("east"));
    rt.block_on(install_anchors(&east, &anchor, &anchor));

    // `> anchor.crt` gives a file openssl reads, with the fleet's fingerprint.
    let (code, stdout, stderr) = run(dir, &kubeconfig, &["trust", "extract", "--context", "east"]);
    crate::snapshot_parts!("trust_extract", code, &stdout, &stderr);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("-----BEGIN CERTIFICATE-----\n")
            && stdout.ends_with("-----END CERTIFICATE-----\n")
    );
    let extracted = dir.join("extracted.crt");
    std::fs::write(&extracted, &stdout).expect("write extracted");
    let openssl = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&extracted)
        .output()
        .expect("run openssl");
    assert!(openssl.status.success(), "{openssl:?}");
    let printed = String::from_utf8_lossy(&openssl.stdout).to_lowercase();
    assert!(printed.contains(&sha256(&anchor)[0]), "openssl: {printed}");
    assert!(
        stderr.contains("CN=root.linkerd.cluster.local") && stderr.contains(&sha256(&anchor)[0]),
        "{stderr}"
    );
    assert!(stderr.contains("days left"), "{stderr}");

    let (code, stdout, _) = run(
        dir,
        &kubeconfig,
        &["-o", "json", "trust", "extract", "--context", "east"],
    );
    let value: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(code, 0);
    assert_eq!(value["inUse"], json!("trust-roots"));
    assert_eq!(sha256(value["pem"].as_str().expect("pem")), sha256(&anchor));
    assert_eq!(
        value["sources"][1]["certificates"][0]["subject"],
        json!("CN=root.linkerd.cluster.local")
    );

    // Wrong namespace: nothing on stdout, exit 1, and a hint.
    let (code, stdout, stderr) = run(
        dir,
        &kubeconfig,
        &[
            "trust",
            "extract",
            "--context",
            "east",
            "--linkerd-namespace",
            "elsewhere",
        ],
    );
    crate::snapshot_parts!("trust_extract_wrong_namespace", code, &stdout, &stderr);
    assert_eq!((code, stdout.as_str()), (1, ""), "{stderr}");
    assert!(
        stderr.contains("ConfigMap `elsewhere/linkerd-identity-trust-roots` not found"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint:") && stderr.contains("--linkerd-namespace"),
        "{stderr}"
    );

    // trust-roots differs from linkerd-config: the proxies' bundle is printed, both lists named.
    let other = other_anchor();
    rt.block_on(install_anchors(&east, &anchor, &other));
    let (code, stdout, stderr) = run(dir, &kubeconfig, &["trust", "extract", "--context", "east"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(sha256(&stdout), sha256(&other));
    assert!(stderr.contains("hold different anchors"), "{stderr}");
    assert!(
        stderr.contains(&sha256(&other)[0]) && stderr.contains(&sha256(&anchor)[0]),
        "{stderr}"
    );

    // An unknown context cannot run at all.
    let (code, _, stderr) = run(dir, &kubeconfig, &["trust", "extract", "--context", "nowhere"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("hint: the kubeconfig has these contexts: `east`"),
        "{stderr}"
    );

    // West is stopped: it is reported unreachable, east is still verified.
    rt.block_on(install_anchors(&east, &anchor, &anchor));
    let stopped = with_stopped_context(&kubeconfig, "east", "west", dir);
    let (code, stdout, stderr) = run(dir, &stopped, &["trust", "verify", "."]);
    crate::snapshot_parts!("trust_verify_unreachable", code, &stdout, &stderr);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(row(&stdout, "west", "-").contains("unreachable"), "{stdout}");
    assert!(row(&stdout, "east", "trust-roots").contains("match"), "{stdout}");
    assert!(
        stderr.contains("cluster `west` (context `west`): cannot reach the API server"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: check that context `west` points at a running cluster"),
        "{stderr}"
    );
    let (code, report) = verify_json(dir, &stopped);
    assert_eq!(code, 1);
    assert_eq!(cluster_status(&report, "west"), "unreachable");
    assert!(
        report["clusters"][1]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{report}"
    );
    let (code, _, stderr) = run(dir, &stopped, &["trust", "extract", "--context", "west"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("hint: check that context `west` points at a running cluster"),
        "{stderr}"
    );
}
