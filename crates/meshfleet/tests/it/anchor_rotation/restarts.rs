//! Which pods `trust rotate status` lists for a restart, judged on pods exactly as Linkerd
//! makes them (issue 18): workloads injected by each release's real injector (`linkerd
//! inject --manual` against the cluster, both proxy layouts), control-plane pods as the
//! real chart renders them (`testenv/run mesh` installs the rendered tree with the real
//! CLI, the Deployment controller makes the pods), and the real identity controller
//! reloading its issuer a while after the Secret changed, as on a real node.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodSpec;
use serde_json::{Value, json};

use super::real_identity::{RealWorld, eventually};
use super::world::World;

/// Where the injector put the proxy (read here, not with the code under test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// A `linkerd-proxy` container.
    Container,
    /// A `linkerd-proxy` init container with `restartPolicy: Always`.
    NativeSidecar,
}

fn layout(spec: &PodSpec) -> Option<Layout> {
    let in_containers = spec.containers.iter().any(|c| c.name == "linkerd-proxy");
    let native = spec
        .init_containers
        .iter()
        .flatten()
        .any(|c| c.name == "linkerd-proxy" && c.restart_policy.as_deref() == Some("Always"));
    match (in_containers, native) {
        (true, false) => Some(Layout::Container),
        (false, true) => Some(Layout::NativeSidecar),
        (false, false) => None,
        (true, true) => panic!("a proxy in both places: {spec:?}"),
    }
}

/// Pod-template annotations.
type Annotations<'a> = &'a [(&'a str, &'a str)];

/// A plain Deployment in `apps` (ServiceAccount `web`) with `annotations` on its pod
/// template, as JSON.
fn plain_deployment(name: &str, annotations: &[(&str, &str)]) -> String {
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| ((*k).to_string(), Value::from(*v)))
        .collect();
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {
                    "serviceAccountName": "web",
                    "containers": [{"name": "app", "image": "registry.example/web:1"}]
                }
            }
        }
    }))
    .expect("deployment");
    serde_json::to_string(&deployment).expect("json")
}

/// Inject `name` with the real injector, check the layout it wrote, and apply it.
fn deploy_injected(w: &RealWorld, cluster: &str, name: &str, annotations: &[(&str, &str)], want: Layout) {
    let injected = w.inject(cluster, &plain_deployment(name, annotations));
    let deployment: Deployment =
        serde_json::from_str(&injected).unwrap_or_else(|e| panic!("{e}: {injected}"));
    let spec = deployment.spec.and_then(|s| s.template.spec).expect("pod spec");
    assert_eq!(layout(&spec), Some(want), "{name}: {injected}");
    w.kubectl(cluster, &["apply", "-f", "-"], &injected);
}

/// The items of `cluster`: (done ids, blocking ids, every restart line).
fn items(report: &Value, cluster: &str) -> (Vec<String>, Vec<String>, String) {
    let c = report["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .find(|c| c["cluster"] == cluster)
        .unwrap_or_else(|| panic!("{cluster} in {report}"));
    let ids = |key: &str| -> Vec<String> {
        c[key]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["id"].as_str().expect("id").to_string())
            .collect()
    };
    let restarts = c["blocking"]
        .as_array()
        .expect("blocking")
        .iter()
        .flat_map(|i| i["restarts"].as_array().cloned().unwrap_or_default())
        .map(|r| r.as_str().expect("restart").to_string())
        .collect::<Vec<_>>()
        .join("\n");
    (ids("done"), ids("blocking"), restarts)
}

/// The blocking items `id` of `cluster` (none when it does not block).
fn blocking_items(report: &Value, cluster: &str, id: &str) -> Vec<Value> {
    report["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["cluster"] == cluster)
        .flat_map(|c| c["blocking"].as_array().cloned().unwrap_or_default())
        .filter(|i| i["id"] == id)
        .collect()
}

/// The restart lines of the blocking item `id` of `cluster` (empty when it does not block).
fn restarts_of(report: &Value, cluster: &str, id: &str) -> String {
    blocking_items(report, cluster, id)
        .iter()
        .flat_map(|i| i["restarts"].as_array().cloned().unwrap_or_default())
        .map(|r| r.as_str().expect("restart").to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The message of the blocking item `id` of `cluster` (empty when it does not block).
fn message_of(report: &Value, cluster: &str, id: &str) -> String {
    blocking_items(report, cluster, id)
        .iter()
        .filter_map(|i| i["message"].as_str().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("\n")
}

fn listed(restarts: &str, workloads: &[&str]) -> bool {
    workloads.iter().all(|w| {
        restarts
            .lines()
            .any(|l| l.split_whitespace().any(|word| word == *w))
    })
}

const CONTROL_PLANE: [&str; 3] = [
    "deploy/linkerd-destination",
    "deploy/linkerd-identity",
    "deploy/linkerd-proxy-injector",
];

/// Both proxy layouts of `version`'s real injector, and its control plane, through
/// `distribute` and `recertify`: every pod created before the change is named: in
/// `distribute` for injecting again (the CLI wrote the old bundle into the templates; the
/// control plane's own pods read it from the ConfigMap and are restarted), in `recertify`
/// for a restart.
fn every_layout_is_listed_for_restart(version: &'static str, annotation: &str, native_by_default: bool) {
    let started = std::time::Instant::now();
    let w = RealWorld::with("vault", "flux", version, &["n1"]);
    let cluster = "n1";
    let (opt_in, opt_out) = ([(annotation, "true")], [(annotation, "false")]);
    let (classic, native): (Annotations<'_>, Annotations<'_>) = if native_by_default {
        (&opt_out, &[])
    } else {
        (&[], &opt_in)
    };
    deploy_injected(&w, cluster, "web-classic", classic, Layout::Container);
    deploy_injected(&w, cluster, "web-native", native, Layout::NativeSidecar);
    // The control plane's pods carry the proxy as the release's chart puts it: at
    // edge-26.8.3 native sidecars, except the identity controller's (its template sets
    // `proxy.nativeSidecar` false), at 2.18 containers.
    eventually("two meshed workload pods", || w.pods(cluster, "apps").len() == 2);
    let control_plane = w.pods(cluster, "linkerd");
    assert!(control_plane.len() >= 3, "{control_plane:?}");
    let mut native_control_plane = 0;
    for pod in &control_plane {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let identity = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("linkerd.io/control-plane-component"))
            .is_some_and(|c| c == "identity");
        let want = if native_by_default && !identity {
            native_control_plane += 1;
            Layout::NativeSidecar
        } else {
            Layout::Container
        };
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(layout(spec), Some(want), "{name}");
    }
    assert_eq!(native_control_plane > 0, native_by_default);

    // distribute: the bundle changed after every pod was created.
    w.meshfleet(&["trust", "rotate", "start", "."]).expect(0);
    World::tick();
    w.apply_tree(&[cluster]);
    let (code, report) = w.status_json();
    let (_, blocking, restarts) = items(&report, cluster);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        blocking,
        ["control-plane-restarted", "meshed-pods-restarted"],
        "{report:#}"
    );
    // Injected by `linkerd inject --manual`, both templates carry the old bundle: a
    // restart would bring it back, so `status` names both layouts for injecting again.
    let message = message_of(&report, cluster, "meshed-pods-restarted");
    assert!(
        message.contains("apps/deploy/web-classic")
            && message.contains("apps/deploy/web-native")
            && message.contains("again"),
        "{version}: both layouts must be named for injecting again: {message}"
    );
    let workloads = restarts_of(&report, cluster, "meshed-pods-restarted");
    assert!(
        !workloads.contains("web-"),
        "{version}: a restart would keep the old bundle:\n{restarts}"
    );
    World::tick();
    w.restart_control_plane(&[cluster]);
    deploy_injected(&w, cluster, "web-classic", classic, Layout::Container);
    deploy_injected(&w, cluster, "web-native", native, Layout::NativeSidecar);
    eventually("distribute done", || w.status_ready());

    // issuers, then recertify: every proxy predates the identity controller's reload.
    w.meshfleet(&["trust", "rotate", "next", "."]).expect(0);
    w.meshfleet(&["secrets", "sync", "."]).expect(0);
    World::tick();
    w.force_sync_issuers(&[cluster]);
    eventually("issuers moved", || w.status_ready());
    w.meshfleet(&["trust", "rotate", "next", "."]).expect(0);
    let mut everything = vec!["deploy/web-classic", "deploy/web-native"];
    everything.extend(CONTROL_PLANE);
    let mut last = Value::Null;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !listed(&restarts_of(&last, cluster, "proxies-recertified"), &everything) {
        assert!(
            std::time::Instant::now() < deadline,
            "{version}: every meshed pod (both layouts, the control plane) must be listed in recertify:\n{last:#}"
        );
        std::thread::sleep(std::time::Duration::from_secs(1));
        last = w.status_json().1;
    }
    World::tick();
    w.restart_control_plane(&[cluster]);
    w.rollout_restart(cluster, "apps", &["web-classic", "web-native"]);
    eventually("recertify done", || w.status_ready());
    eprintln!(
        "{version}: every layout listed, {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// Issue 18, item 1, at 2.18: the proxy is a container unless the alpha annotation asks
/// for a native sidecar; the control plane has it as a container.
#[test]
fn native_sidecar_proxies_are_listed_for_restart_at_2025_4_4() {
    every_layout_is_listed_for_restart(
        "2025.4.4",
        "config.alpha.linkerd.io/proxy-enable-native-sidecar",
        false,
    );
}

/// Issue 18, item 1, at edge-26.8.3: native sidecars by default (`proxy.nativeSidecar:
/// true`), the control plane's proxies too (but the identity controller's); the
/// annotation opts a workload out.
#[test]
fn native_sidecar_proxies_are_listed_for_restart_at_2026_8_3() {
    every_layout_is_listed_for_restart("2026.8.3", "config.linkerd.io/proxy-enable-native-sidecar", true);
}

/// Issue 18, item 2: the issuer Secret changes, and the identity controller reloads it
/// only `DELAY` seconds later (the kubelet's volume update, as on a real node). A pod
/// restarted in that window got a certificate of the old chain: it is not re-certified.
#[test]
fn a_pod_restarted_before_the_identity_controller_reloads_is_not_recertified() {
    const DELAY: u64 = 45;
    let cluster = "d1";
    let w = RealWorld::with("vault", "flux", "2025.4.4", &["d1"]);
    deploy_injected(&w, cluster, "web", &[], Layout::Container);
    w.meshfleet(&["trust", "rotate", "start", "."]).expect(0);
    World::tick();
    w.apply_tree(&[cluster]);
    World::tick();
    w.restart_control_plane(&[cluster]);
    // Injected with the CLI: injected again, with the new bundle (what `status` asks).
    deploy_injected(&w, cluster, "web", &[], Layout::Container);
    eventually("distribute done", || w.status_ready());
    w.meshfleet(&["trust", "rotate", "next", "."]).expect(0);
    w.meshfleet(&["secrets", "sync", "."]).expect(0);
    let pems = w.bundle_pems();
    let (old_pem, new_pem) = (&pems[0], &pems[1]);

    // The Secret moves now; the running controller sees it DELAY seconds later.
    w.delay_volume_updates(DELAY);
    World::tick();
    let moved = std::time::Instant::now();
    w.force_sync_issuers(&[cluster]);
    eventually("the issuer Secret signed by the new anchor", || w.status_ready());
    w.meshfleet(&["trust", "rotate", "next", "."]).expect(0);
    World::tick();
    let restarted = time::OffsetDateTime::now_utc().unix_timestamp();
    w.rollout_restart(cluster, "apps", &["web"]);
    eventually("web restarted", || {
        let pods = w.pods(cluster, "apps");
        pods.len() == 1
            && pods.iter().all(|p| {
                p.metadata
                    .creation_timestamp
                    .as_ref()
                    .is_some_and(|t| t.0.as_second() >= restarted)
            })
    });
    // Still in the window: the real controller issues from the old chain, so the pod
    // just restarted got an old certificate; status must not call it done.
    assert!(
        w.leaf_chains_to(cluster, old_pem) && !w.leaf_chains_to(cluster, new_pem),
        "the window is open: the identity controller still issues from the old anchor"
    );
    let (code, report) = w.status_json();
    let (done, blocking, restarts) = items(&report, cluster);
    assert!(
        moved.elapsed().as_secs() < DELAY,
        "the checks took longer than the window ({DELAY}s); raise DELAY"
    );
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(blocking, ["issuer-loaded"], "in the window:\n{report:#}");
    assert!(!done.contains(&"proxies-recertified".to_string()), "{report:#}");
    assert!(
        restarts.contains("rollout restart deploy/linkerd-identity"),
        "{restarts}"
    );

    // The kubelet updates the volume, the controller reloads (an `IssuerUpdated` event).
    eventually("the controller issuing from the new anchor", || {
        w.leaf_chains_to(cluster, new_pem)
    });
    assert!(
        moved.elapsed().as_secs() >= DELAY - 2,
        "reloaded after {}s, before the delay",
        moved.elapsed().as_secs()
    );
    let mut report = Value::Null;
    eventually("the reload seen by status", || {
        report = w.status_json().1;
        items(&report, cluster).0.contains(&"issuer-loaded".to_string())
    });
    let (_, blocking, _) = items(&report, cluster);
    assert_eq!(blocking, ["proxies-recertified"], "{report:#}");
    let restarts = restarts_of(&report, cluster, "proxies-recertified");
    assert!(
        listed(&restarts, &["deploy/web"]),
        "the pod restarted between the Secret's change and the reload must be restarted again:\n{report:#}"
    );
    assert!(
        w.identity_log(cluster).contains("Updated identity issuer"),
        "{}",
        w.identity_log(cluster)
    );
    World::tick();
    w.restart_control_plane(&[cluster]);
    w.rollout_restart(cluster, "apps", &["web"]);
    eventually("recertify done", || w.status_ready());
    w.delay_volume_updates(0);
}
