//! Link credential rotation (`secrets sync --rotate`) on the mixed fleet, with Linkerd's
//! real service mirrors and destination controllers: gateway (LoadBalancer, NodePort,
//! ClusterIP) and remote-discovery links.
//!
//! At every step a Service exported on each target is mirrored on its source and a port
//! change propagates; no mirror Service is ever lost (same UID throughout, unless Linkerd's
//! restarted service mirror itself recreated it, which its log must show); each run
//! that cannot go on safely exits 1 and says why, and running it again continues. At the
//! end the previous kubeconfig gets 401 (meshfleet proves it, and so does this test),
//! re-applying the tree does not bring the old account back, and `meshfleet check` is
//! green.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::Api;
use serde_json::Value;

use super::scenario::{APPS, MULTICLUSTER, Scenario, kubeconfig_identity, wait_for};
use super::{RELEASES, ports_of};

/// The mirror Services' UIDs, by (source, mirror name).
fn mirror_uids(s: &Scenario, services: &[&str]) -> BTreeMap<(String, String), String> {
    let mut uids = BTreeMap::new();
    for link in s.links() {
        for service in services {
            let name = format!("{service}-{}", link.link_name());
            if let Some(mirror) = s.service(&link.source, APPS, &name) {
                uids.insert(
                    (link.source.clone(), name),
                    mirror["metadata"]["uid"].as_str().unwrap_or_default().to_owned(),
                );
            }
        }
    }
    uids
}

/// The lines of a service mirror's log (every pod of it, in order) showing that the pod
/// which took the lease last created the mirror of `service` again, with the errors
/// around it; empty when it did not.
fn recreated_after_restart(log: &str, service: &str) -> Vec<String> {
    let lines: Vec<&str> = log.lines().collect();
    let Some(leader) = lines.iter().rposition(|l| l.contains("acquired lease")) else {
        return Vec::new();
    };
    let created = format!("Creating a new service mirror for {APPS}/{service}\"");
    if !lines[leader..].iter().any(|l| l.contains(&created)) {
        return Vec::new();
    }
    lines[leader..]
        .iter()
        .filter(|l| {
            l.contains(&created)
                || (l.contains(service) && (l.contains("level=error") || l.contains("already exists")))
        })
        .map(|l| (*l).to_owned())
        .collect()
}

/// Every link still mirrors: `web` (gateway links) or `disco` (remote discovery) gets
/// `port` on its target and the mirror follows; a Service exported now is mirrored.
fn still_mirrors(s: &Scenario, step: &str, port: u16) {
    let links = s.links();
    let targets: std::collections::BTreeSet<String> = links.iter().map(|l| l.target.clone()).collect();
    let fresh = format!("fresh-{step}");
    for target in &targets {
        s.export(target, "web", Some("true"), &[(port, "http")]);
        s.export(target, "disco", Some("remote-discovery"), &[(port, "http")]);
        s.export(target, &fresh, Some("true"), &[(80, "http")]);
    }
    for link in &links {
        let service = if link.gateway.is_some() { "web" } else { "disco" };
        s.wait_mirror(link, service, |m| ports_of(m) == [i64::from(port)]);
        if link.gateway.is_some() {
            s.wait_mirror(link, &fresh, |_| true);
        }
    }
    eprintln!("{step}: every link mirrors (port {port}, `{fresh}` mirrored)");
}

pub(super) fn render_and_apply(s: &Scenario) {
    let (code, stdout, stderr) = s.meshfleet(&["render", ".", "--out", "gitops"]);
    assert_eq!(code, 0, "render: {stdout}\n{stderr}");
    let took = s.env.mesh(&s.tree);
    eprintln!("render + testenv mesh: {:.1}s", took.as_secs_f64());
}

fn rotate(s: &Scenario, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["secrets", "sync", ".", "--rotate", "-o", "json"];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = s.meshfleet(&args);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    eprintln!(
        "--rotate {extra:?}: exit {code}, stage {}, now {}",
        report["stage"], report["now"]
    );
    (code, report)
}

/// The step ids of a report with the given state.
fn steps(report: &Value, state: &str) -> Vec<String> {
    report["links"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| {
            l["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| s["state"] == state)
                .map(move |s| {
                    format!(
                        "{}:{}",
                        l["id"].as_str().unwrap_or_default(),
                        s["id"].as_str().unwrap_or_default()
                    )
                })
        })
        .collect()
}

fn fleet_text(s: &Scenario) -> String {
    std::fs::read_to_string(s.dir().join("fleet.yaml")).expect("fleet file")
}

/// `secrets status -o json` (exit 0, or 1 while a step is blocked).
fn status_json(s: &Scenario) -> Value {
    let (code, stdout, stderr) = s.meshfleet(&["secrets", "status", ".", "-o", "json"]);
    assert!(code == 0 || code == 1, "exit {code}: {stdout}\n{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// `restartsSeen` of `secrets status`: the rotation's restarts of every source's
/// `controller-<link>` and `linkerd-destination`, read from the live Deployments and pods.
/// With `since`, each was restarted by meshfleet at or after it and its pods came after.
fn restarts_seen(s: &Scenario, since: Option<i64>) -> Vec<String> {
    let status = status_json(s);
    let seen = status["restartsSeen"]
        .as_array()
        .unwrap_or_else(|| panic!("{status:#}"));
    let parse = |t: &Value| {
        t.as_str()
            .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
            .map(time::OffsetDateTime::unix_timestamp)
    };
    let mut names = Vec::new();
    for r in seen {
        assert!(r["error"].is_null(), "{r:#}");
        let (cluster, deployment) = (
            r["cluster"].as_str().unwrap_or_default(),
            r["deployment"].as_str().unwrap_or_default(),
        );
        names.push(format!("{cluster}:{deployment}"));
        let Some(since) = since else { continue };
        assert_eq!(r["restartedBy"], "meshfleet", "{r:#}");
        let at = parse(&r["restartedAt"]).unwrap_or_else(|| panic!("{r:#}"));
        assert!(at >= since, "restarted before the run: {r:#}");
        let pods = r["podsCreated"].as_array().expect("podsCreated");
        assert!(!pods.is_empty(), "{r:#}");
        for pod in pods {
            assert!(
                parse(pod).is_some_and(|p| p >= at),
                "a pod older than the restart: {r:#}"
            );
        }
    }
    names.sort();
    names
}

fn account_exists(s: &Scenario, cluster: &str, name: &str) -> bool {
    let api = Api::<ServiceAccount>::namespaced(s.client(cluster), MULTICLUSTER);
    s.block_on(api.get_opt(name))
        .expect("get serviceaccount")
        .is_some()
}

#[test]
fn link_credentials_rotate_without_mirror_downtime() {
    let s = super::mixed(RELEASES[1]);
    let links = s.links();
    still_mirrors(&s, "before", 80);
    let uids = mirror_uids(&s, &["web", "disco"]);
    let before: BTreeMap<String, (String, String, String)> = links
        .iter()
        .map(|l| {
            (
                l.credentials_id(),
                kubeconfig_identity(&s.secret(&l.source, MULTICLUSTER, &l.credentials_secret())),
            )
        })
        .collect();
    let original = fleet_text(&s);

    // Start: only the fleet file changes, comments and all else kept.
    let (code, report) = rotate(&s, &[]);
    assert_eq!(code, 0, "{report:#}");
    let started = fleet_text(&s);
    assert!(started.contains("    linkCredentials:"), "{started}");
    assert!(started.contains("phase: granting"), "{started}");
    assert!(
        started.starts_with(
            &original[..original.find("  clusters:").expect("clusters")]
                .trim_end()
                .to_owned()
        )
    );

    // Before GitOps applied the grant, a rerun refuses: the next account is not there.
    let (code, report) = rotate(&s, &[]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(steps(&report, "blocked").len(), links.len(), "{report:#}");
    assert!(
        steps(&report, "blocked")
            .iter()
            .all(|s| s.ends_with(":next-account")),
        "{report:#}"
    );

    render_and_apply(&s);
    for link in &links {
        let next = format!("{}-g1", link.account());
        assert!(
            account_exists(&s, &link.target, &link.account()),
            "{}",
            link.account()
        );
        assert!(account_exists(&s, &link.target, &next), "{next}");
    }
    still_mirrors(&s, "granted", 81);

    // `secrets status` changes nothing and says what the next run does.
    let (code, stdout, stderr) = s.meshfleet(&["secrets", "status", ".", "-o", "json"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let status: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(status["now"], "granting", "{status:#}");
    assert!(!steps(&status, "would").is_empty(), "{status:#}");
    // A plain sync leaves the rotating links alone.
    let (code, stdout, stderr) = s.meshfleet(&["secrets", "sync", ".", "-o", "json"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("\"status\": \"rotating\""), "{stdout}");

    // Interrupted: with no time to wait, the run stops after Vault and the force-sync...
    let (code, report) = rotate(&s, &["--wait", "0"]);
    assert_eq!(code, 1, "{report:#}");
    assert!(fleet_text(&s).contains("phase: granting"));
    still_mirrors(&s, "interrupted", 82);
    // What a user reads at this point (docs/rotating-link-credentials.md shows it).
    let (_, status_text, _) = s.meshfleet(&["secrets", "status", "."]);
    eprintln!("$ meshfleet secrets status\n{status_text}");
    let (_, check_text, _) = s.meshfleet(&["check", ".", "--cluster", "gamma"]);
    eprintln!("$ meshfleet check --cluster gamma\n{check_text}");
    // Before the restarts `secrets status` lists what the rotation restarts, not yet by it.
    let mut expected: Vec<String> = links
        .iter()
        .map(|l| format!("{}:{MULTICLUSTER}/{}", l.source, l.controller_name()))
        .chain(
            links
                .iter()
                .map(|l| format!("{}:{}/linkerd-destination", l.source, s.plan.linkerd.namespace)),
        )
        .collect();
    expected.sort();
    expected.dedup();
    assert_eq!(restarts_seen(&s, None), expected);
    // ...and the rerun continues: Secrets, restarts, verification, then `retiring`.
    let restart_run = time::OffsetDateTime::now_utc().unix_timestamp();
    let (code, report) = rotate(&s, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["now"], "retiring", "{report:#}");
    let moved = fleet_text(&s);
    assert!(moved.contains("phase: retiring"), "{moved}");
    for link in &links {
        assert!(
            moved.contains(&format!("{}: 1", link.credentials_id())),
            "{moved}"
        );
        let now = kubeconfig_identity(&s.secret(&link.source, MULTICLUSTER, &link.credentials_secret()));
        assert_ne!(
            now.2,
            before[&link.credentials_id()].2,
            "{}: token unchanged",
            link.credentials_id()
        );
        let destination_copy = kubeconfig_identity(&s.secret(
            &link.source,
            &s.plan.linkerd.namespace,
            &link.credentials_secret(),
        ));
        assert_eq!(destination_copy, now, "{}", link.credentials_id());
    }
    for (restart, cluster) in report["restarts"].as_array().expect("restarts").iter().map(|r| {
        (
            r["deployment"].as_str().unwrap_or_default(),
            r["cluster"].as_str().unwrap_or_default(),
        )
    }) {
        eprintln!("restarted {restart} on {cluster}");
    }
    still_mirrors(&s, "switched", 83);
    for link in &links {
        let log = format!("{}-{}-linkerd-destination", link.source, s.plan.linkerd.namespace);
        wait_for(
            &format!("{log}: cluster {} added again", link.link_name()),
            || {
                let text = s.env.log(&log);
                (text
                    .matches(&format!("Added cluster {} to ClusterStore", link.link_name()))
                    .count()
                    >= 2)
                    .then_some(())
            },
        );
    }

    let (_, status_text, _) = s.meshfleet(&["secrets", "status", "."]);
    eprintln!("$ meshfleet secrets status\n{status_text}");
    // `secrets status` says when the rotation restarted what (read from the clusters).
    assert_eq!(restarts_seen(&s, Some(restart_run)), expected);
    assert!(
        status_text.contains("by the credential rotation (meshfleet)"),
        "{status_text}"
    );
    // Before GitOps dropped the old accounts, finishing is refused.
    let (code, report) = rotate(&s, &[]);
    assert_eq!(code, 1, "{report:#}");
    assert!(
        steps(&report, "blocked")
            .iter()
            .all(|s| s.ends_with(":old-account-removed")),
        "{report:#}"
    );
    render_and_apply(&s);
    for link in &links {
        assert!(
            !account_exists(&s, &link.target, &link.account()),
            "{} still there",
            link.account()
        );
    }
    let (code, report) = rotate(&s, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert!(report["now"].is_null(), "{report:#}");
    let revoked = steps(&report, "done");
    for link in &links {
        assert!(
            revoked.contains(&format!("{}:old-token-revoked", link.credentials_id())),
            "{report:#}"
        );
    }
    let finished = fleet_text(&s);
    assert!(!finished.contains("rotation:"), "{finished}");
    // Afterwards `secrets status` still names the restarts, and what Vault keeps and why.
    assert_eq!(restarts_seen(&s, Some(restart_run)), expected);
    let status = status_json(&s);
    let history = status["credentialsHistory"]["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("{status:#}"));
    assert_eq!(history.len(), links.len(), "{status:#}");
    for entry in history {
        assert_eq!(entry["currentVersion"], 2, "{entry:#}");
        assert_eq!(entry["keptVersions"], serde_json::json!([1]), "{entry:#}");
    }
    let (_, idle_text, _) = s.meshfleet(&["secrets", "status", "."]);
    eprintln!("$ meshfleet secrets status\n{idle_text}");
    assert!(idle_text.contains("kept on purpose"), "{idle_text}");
    still_mirrors(&s, "retired", 84);

    // Re-applying the tree does not bring the old accounts (or their tokens) back.
    render_and_apply(&s);
    for link in &links {
        assert!(!account_exists(&s, &link.target, &link.account()));
    }
    // Mirrors may have appeared since (a gateway link also mirrors remote-discovery
    // exports); every one that existed is still there, with its UID, unless Linkerd's own
    // restarted service mirror recreated it (docs/rotating-link-credentials.md).
    let after = mirror_uids(&s, &["web", "disco"]);
    for ((source, name), uid) in &uids {
        let now = after.get(&(source.clone(), name.clone()));
        assert!(now.is_some(), "mirror {name} on {source} is gone");
        if now == Some(uid) {
            continue;
        }
        let link = links
            .iter()
            .find(|l| l.source == *source && name.ends_with(&format!("-{}", l.link_name())))
            .unwrap_or_else(|| panic!("no link of the fleet mirrors {name} on {source}"));
        let log = s
            .env
            .log(&format!("{source}-{MULTICLUSTER}-{}", link.controller_name()));
        let evidence =
            recreated_after_restart(&log, name.trim_end_matches(&format!("-{}", link.link_name())));
        assert!(
            !evidence.is_empty(),
            "mirror {name} on {source} was recreated (UID {uid} -> {now:?}), and not by the \
             restarted `{}` (its log):\n{log}",
            link.controller_name()
        );
        eprintln!(
            "note: mirror {name} on {source} was recreated by Linkerd's restarted `{}` (a known \
             Linkerd behaviour, docs/rotating-link-credentials.md); its log:\n{}",
            link.controller_name(),
            evidence.join("\n")
        );
    }
    let (code, stdout, stderr) = s.meshfleet(&["check", "."]);
    assert_eq!(code, 0, "check after the rotation:\n{stdout}\n{stderr}");
    for link in &links {
        let log = s.env.log(&format!(
            "{}-{MULTICLUSTER}-{}",
            link.source,
            link.controller_name()
        ));
        assert!(!log.contains("Unauthorized"), "{}: {log}", link.controller_name());
    }
}
