//! Break one thing at a time, and exactly the check that watches it fails (exit 1);
//! every case puts the object back before it asserts.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use meshfleet_core::defaults;
use meshfleet_core::identity;
use secrecy::SecretString;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{assert_fails_only, fleet_text, json_of, live, lock, results};
use crate::fixtures::{self, APPS_NAMESPACE, EXPORTED_SERVICE};
use crate::support::{meshfleet, texts};
use crate::testenv;

#[test]
fn another_anchor_fails_trust_anchors_match() {
    let live = live();
    let _lock = lock();
    let plan = &live.fixture.plan;
    let other = identity::generate_anchor(OffsetDateTime::now_utc()).expect("anchor");
    let (code, report) = testenv::block_on(async {
        let studio = live.client("studio").await;
        fixtures::apply(&studio, &fixtures::linkerd_config(plan, &other.cert_pem)).await;
        let result = live.check_json(&[]);
        fixtures::apply(
            &studio,
            &fixtures::linkerd_config(plan, &plan.identity.trust_anchor_pem),
        )
        .await;
        result
    });
    assert_fails_only(code, &report, &[("studio", "trust-anchors-match", None)]);
    let anchors = &results(&report, "studio", "trust-anchors-match", None)[0];
    let details = anchors["details"].to_string();
    assert!(
        details.contains(
            "`linkerd-config` (identityTrustAnchorsPEM in values): holds 1 anchor the fleet does not"
        ),
        "{details}"
    );
    assert!(
        details.contains("`linkerd-identity-trust-roots` (ca-bundle.crt): matches"),
        "{details}"
    );
    assert_eq!(anchors["file"], "studio/linkerd-control-plane/helm-release.yaml");
}

#[test]
fn credentials_secret_without_annotations_fails_credentials_secret() {
    let live = live();
    let _lock = lock();
    let plan = &live.fixture.plan;
    let link = live.fixture.link("studio", "pro");
    let (code, report) = testenv::block_on(async {
        let studio = live.client("studio").await;
        let pro = live.client("pro").await;
        let kubeconfig = live.fixture.credentials_kubeconfig(&pro, link).await;
        let good = fixtures::credentials_secret(plan, link, &plan.linkerd.namespace, true, &kubeconfig);
        let mut bare = good.clone();
        bare.metadata.annotations = None;
        fixtures::apply(&studio, &bare).await;
        let result = live.check_json(&[]);
        let text = live.check(&["--cluster", "studio"]);
        fixtures::apply(&studio, &good).await;
        crate::snapshot_run!("check_credentials_secret_broken", text);
        result
    });
    assert_fails_only(code, &report, &[("studio", "credentials-secret", Some("pro"))]);
    let failed: Vec<&Value> = results(&report, "studio", "credentials-secret", Some("pro"))
        .into_iter()
        .filter(|r| r["status"] == "error")
        .collect();
    assert_eq!(failed.len(), 1, "only the copy in the linkerd namespace");
    let text = failed[0].to_string();
    assert!(text.contains("linkerd/cluster-credentials-pro"), "{text}");
    assert!(
        text.contains("no annotation `multicluster.linkerd.io/trust-domain`"),
        "{text}"
    );
    assert!(
        text.contains("no annotation `multicluster.linkerd.io/cluster-domain`"),
        "{text}"
    );
    assert_eq!(failed[0]["file"], "studio/links/link-pro.yaml");
}

#[test]
fn a_link_edited_by_hand_fails_link_drift() {
    let live = live();
    let _lock = lock();
    let link = live.fixture.link("studio", "pro");
    let (code, output) = testenv::block_on(async {
        let studio = live.client("studio").await;
        let links: Api<meshfleet_core::render::resources::Link> =
            Api::namespaced(studio.clone(), defaults::MULTICLUSTER_NAMESPACE);
        let edit = json!({"spec": {"gatewayPort": "4999", "probeSpec": {"timeout": "5s"}}});
        links
            .patch("pro", &PatchParams::default(), &Patch::Merge(&edit))
            .await
            .expect("edit the Link");
        let output = live.check(&[]);
        // Re-create it: re-applying would leave the field another manager added.
        fixtures::delete::<meshfleet_core::render::resources::Link>(
            &studio,
            defaults::MULTICLUSTER_NAMESPACE,
            "pro",
        )
        .await;
        fixtures::apply(&studio, &live.fixture.rendered_link(link)).await;
        (output.status.code(), output)
    });
    let (stdout, stderr) = texts(&output);
    assert_eq!(code, Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("× Link `pro` differs from the rendered one in 2 fields [link-drift]\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("    `spec.gatewayPort`: rendered `4143`, live `4999`\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("    `spec.probeSpec.timeout`: not rendered, live `5s`\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("    file: `studio/links/link-pro.yaml` in the rendered tree\n"),
        "{stdout}"
    );
    let crosses = stdout.lines().filter(|l| l.starts_with('×')).count();
    assert_eq!(crosses, 1, "{stdout}");
    assert!(stdout.contains("Status check results are ×: 1 failed, 0 warning(s), 39 passed (2 clusters)"));
}

#[test]
fn a_service_exported_by_annotation_fails_export_annotation() {
    let live = live();
    let _lock = lock();
    let (code, report) = testenv::block_on(async {
        let pro = live.client("pro").await;
        fixtures::apply(
            &pro,
            &fixtures::annotation_exported_service(APPS_NAMESPACE, "legacy-api"),
        )
        .await;
        let result = live.check_json(&[]);
        fixtures::delete::<Service>(&pro, APPS_NAMESPACE, "legacy-api").await;
        result
    });
    assert_fails_only(code, &report, &[("pro", "export-annotation", None)]);
    let r = &results(&report, "pro", "export-annotation", None)[0];
    assert_eq!(
        r["details"],
        json!([
            "`apps/legacy-api` has the annotation `multicluster.linkerd.io/export`, which Linkerd ignores"
        ])
    );
    assert!(
        r["hint"]
            .as_str()
            .is_some_and(|h| h.contains("mirror.linkerd.io/exported=true"))
    );
}

#[test]
fn a_legacy_controller_fails_legacy_controller() {
    let live = live();
    let _lock = lock();
    let (code, report) = testenv::block_on(async {
        let studio = live.client("studio").await;
        fixtures::apply(&studio, &fixtures::legacy_controller("pro")).await;
        let result = live.check_json(&[]);
        fixtures::delete::<Deployment>(
            &studio,
            defaults::MULTICLUSTER_NAMESPACE,
            "linkerd-service-mirror-pro",
        )
        .await;
        result
    });
    assert_fails_only(code, &report, &[("studio", "legacy-controller", Some("pro"))]);
    let r = &results(&report, "studio", "legacy-controller", Some("pro"))[0];
    assert!(
        r["hint"]
            .as_str()
            .is_some_and(|h| h.contains("meshfleet migrate")),
        "{r}"
    );
    assert_eq!(
        r["details"],
        json!(["Deployment `linkerd-multicluster/linkerd-service-mirror-pro`"])
    );
}

#[test]
fn a_missing_mirror_fails_mirror_present() {
    let live = live();
    let _lock = lock();
    let (code, report) = testenv::block_on(async {
        let studio = live.client("studio").await;
        fixtures::delete::<Service>(&studio, APPS_NAMESPACE, "web-pro").await;
        let result = live.check_json(&[]);
        fixtures::apply(
            &studio,
            &fixtures::mirror_service(APPS_NAMESPACE, EXPORTED_SERVICE, "pro"),
        )
        .await;
        result
    });
    assert_fails_only(code, &report, &[("studio", "mirror-present", Some("pro"))]);
    let r = &results(&report, "studio", "mirror-present", Some("pro"))[0];
    assert_eq!(r["message"], "1 of 1 service exported by `pro` not mirrored");
    assert_eq!(
        r["details"],
        json!(["`apps/web-pro` (mirror of `apps/web`) is missing"])
    );
}

/// A third cluster that stops answering (frozen: the deadline) and then stops (refused):
/// reported unreachable with its own check id while the others are still checked, in
/// about one deadline, not the sum.
#[test]
fn an_unreachable_cluster_is_reported_and_the_others_still_checked() {
    let live = live();
    let _lock = lock();
    let dev = testenv::private(&["dev"]);
    let extra = "    - name: dev\n      apiServer: https://dev.meshfleet.test:6443\n      \
                 network: {pods: [10.3.0.0/16], services: [10.103.0.0/16]}\n";
    let fleet_file = live.fleet.path().join("three.yaml");
    std::fs::write(&fleet_file, fleet_text(&live.env, extra)).expect("write fleet");
    // A copy: stopping `dev` removes its folder, and the kubeconfig must outlive it.
    let dev_kubeconfig = live.fleet.path().join("dev.kubeconfig");
    std::fs::copy(dev.kubeconfig(), &dev_kubeconfig).expect("copy the kubeconfig of dev");
    let kubeconfig = std::env::join_paths([live.env.kubeconfig(), dev_kubeconfig]).expect("KUBECONFIG");
    let run = || {
        let started = Instant::now();
        let output = meshfleet(live.fleet.path())
            .args(["check", "three.yaml", "-o", "json", "--timeout", "3"])
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .expect("run check");
        (started.elapsed(), json_of(&output))
    };
    let unreachable = |report: &Value| {
        let dev = results(report, "dev", "cluster-reachable", None);
        assert_eq!(dev.len(), 1, "{report}");
        assert_eq!(dev[0]["status"], "error");
        assert_eq!(report["summary"]["unreachable"], 1);
        let dev_checks = report["clusters"][2]["checks"].as_array().map_or(0, Vec::len);
        assert_eq!(
            dev_checks, 1,
            "only `cluster-reachable` for an unreachable cluster"
        );
        for cluster in ["studio", "pro"] {
            assert_eq!(
                results(report, cluster, "cluster-reachable", None)[0]["status"],
                "ok"
            );
            assert_eq!(
                results(report, cluster, "mirror-present", None)[0]["status"],
                "ok"
            );
        }
        dev[0]["message"].as_str().unwrap_or_default().to_string()
    };

    // Frozen: the API server accepts connections but never answers.
    let apiserver = process_of(&dev, "kube-apiserver");
    signal(apiserver, "-STOP");
    let (elapsed, (code, report)) = run();
    signal(apiserver, "-CONT");
    assert_fails_only(code, &report, &[("dev", "cluster-reachable", None)]);
    let message = unreachable(&report);
    assert!(message.contains("did not answer within 3 s"), "{message}");
    assert!(
        elapsed < Duration::from_secs(8),
        "one deadline (3 s), not the sum: took {elapsed:?}"
    );

    // Stopped: nothing listens any more.
    drop(dev);
    let (_, (code, report)) = run();
    assert_fails_only(code, &report, &[("dev", "cluster-reachable", None)]);
    let message = unreachable(&report);
    assert!(message.contains("does not answer"), "{message}");
    let r = &results(&report, "dev", "cluster-reachable", None)[0];
    assert!(r["details"].to_string().to_lowercase().contains("connect"), "{r}");
}

/// The pid of a component of a testenv environment (from its `pids` file).
fn process_of(env: &testenv::TestEnv, component: &str) -> u32 {
    let pids = std::fs::read_to_string(env.dir().join("pids")).expect("pids file");
    // The last line: a component restarted on new ports is listed again.
    pids.lines()
        .rev()
        .find(|l| {
            l.split_whitespace()
                .nth(2)
                .is_some_and(|c| c.ends_with(component))
        })
        .and_then(|l| l.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no {component} in {pids}"))
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {sig} {pid}");
}

#[test]
fn a_rejected_token_fails_credentials_access() {
    let live = live();
    let _lock = lock();
    let plan = &live.fixture.plan;
    let link = live.fixture.link("pro", "studio");
    let (code, report) = testenv::block_on(async {
        let pro = live.client("pro").await;
        let studio = live.client("studio").await;
        let good = live.fixture.credentials_kubeconfig(&studio, link).await;
        let server = live
            .fixture
            .cluster("studio")
            .api_server
            .clone()
            .expect("apiServer");
        let ca = live.env.ca_pem("studio");
        let forged = SecretString::from("not-a-token-studio-knows".to_string());
        let bad = meshfleet_core::live::secrets::link_kubeconfig("pro", "studio", &server, &ca, &forged)
            .expect("kubeconfig");
        let namespaces = [
            (defaults::MULTICLUSTER_NAMESPACE, false),
            (plan.linkerd.namespace.as_str(), true),
        ];
        for (ns, for_destination) in namespaces {
            fixtures::apply(
                &pro,
                &fixtures::credentials_secret(plan, link, ns, for_destination, &bad),
            )
            .await;
        }
        // The controller restarted with them (else `credentials-loaded` warns too).
        fixtures::restart_controller(&pro, link).await;
        let result = live.check_json(&[]);
        for (ns, for_destination) in namespaces {
            fixtures::apply(
                &pro,
                &fixtures::credentials_secret(plan, link, ns, for_destination, &good),
            )
            .await;
        }
        fixtures::restart_controller(&pro, link).await;
        result
    });
    assert_fails_only(code, &report, &[("pro", "credentials-access", Some("studio"))]);
    let r = &results(&report, "pro", "credentials-access", Some("studio"))[0];
    assert!(
        r["hint"]
            .as_str()
            .is_some_and(|h| h.contains("rejects the token")),
        "{r}"
    );
    assert!(r["details"].to_string().contains("401"), "{r}");
}
