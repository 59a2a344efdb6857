//! meshfleet's rendered trees run by Linkerd's own code: the real CLI renders the charts
//! with meshfleet's values, the real service mirror and destination controllers act on
//! meshfleet's Links and credentials (`testenv/run mesh`, see testenv/README.md).
//!
//! Each scenario is a private environment whose clusters are named after the fleet's,
//! set up the way a user would: `certs init`, `render`, `secrets sync` (the anchor or
//! issuers reach Vault; link credentials fail until the targets' remote-access accounts
//! exist), `testenv/run mesh`, `secrets sync` again, and the External Secrets stand-in
//! builds the credentials Secrets from what it wrote.
//!
//! Test-time substitutions, and why: `apiServer` is `https://kubernetes.default.svc:<port>`
//! (a name the test API servers' certificates carry; the controllers dial it through
//! the environment's cluster network, see testenv/lib/network.py); gateway addresses are
//! TEST-NET IP addresses (the service mirror resolves a DNS name into the mirror's
//! Endpoints, and example names like `pro.vpn.example` do not resolve here; nothing is
//! ever sent to them).

mod data_plane;
mod import;
mod import_legacy;
mod rotation;
pub mod scenario;
mod traffic;
mod verify;

use std::collections::BTreeMap;

use serde_json::{Value, json};

use self::scenario::{Scenario, wait_for};
use crate::support::HOMELAB_VAULT;

/// Linkerd's releases in `../shared/linkerd`, as chart versions.
const RELEASES: [&str; 2] = ["2025.4.4", "2026.8.3"];

/// The mixed fleet: three clusters, every gateway service type, a remote-discovery link,
/// a non-default linkerd namespace, trust domain and cluster domain, and link names that
/// differ from the cluster names.
fn mixed_fleet(version: &str, ports: &BTreeMap<&str, String>) -> String {
    format!(
        "apiVersion: meshfleet.io/v1alpha1
kind: Fleet
metadata:
  name: mixed
spec:
  linkerd:
    version: {version}
    namespace: l5d
    trustDomain: mesh.example
    clusterDomain: cluster.example
    viz: false
  gitops:
    engine: flux
    repository: {{url: https://github.com/example/fleet.git}}
  identity:
    trustAnchor: certs/trust-anchor.crt
    issuer: vault
  secrets:
    vault:
      server: https://vault.example:8200
      mount: secret
      path: mixed
  clusters:
    - name: alpha
      vaultAuthMountPath: kubernetes-alpha
      linkName: alpha-lb
      apiServer: https://kubernetes.default.svc:{alpha}
      network: {{pods: [10.1.0.0/16], services: [10.101.0.0/16]}}
      gateway:
        serviceType: LoadBalancer
        addresses: [192.0.2.11]
    - name: beta
      vaultAuthMountPath: kubernetes-beta
      linkName: beta-np
      apiServer: https://kubernetes.default.svc:{beta}
      network: {{pods: [10.2.0.0/16], services: [10.102.0.0/16]}}
      gateway:
        serviceType: NodePort
        addresses: [192.0.2.12]
        nodePort: 30143
        probe: {{nodePort: 30191, period: 5s}}
    - name: gamma
      vaultAuthMountPath: kubernetes-gamma
      apiServer: https://kubernetes.default.svc:{gamma}
      network: {{pods: [10.3.0.0/16], services: [10.103.0.0/16]}}
      gateway:
        serviceType: ClusterIP
        addresses: [192.0.2.13]
  links:
    - {{source: alpha, target: beta}}
    - {{source: beta, target: alpha}}
    - {{source: gamma, target: alpha}}
    - {{source: alpha, target: gamma, mode: remote-discovery}}
",
        alpha = ports["alpha"],
        beta = ports["beta"],
        gamma = ports["gamma"],
    )
}

fn mixed(version: &str) -> Scenario {
    Scenario::start(&["alpha", "beta", "gamma"], |ports| mixed_fleet(version, ports))
}

/// The mixed fleet with the test environment's data plane: each cluster its own pod
/// range (`up --pod-cidr`), Linkerd's real proxies in meshed pods (`mesh --data-plane`).
fn mixed_with_data_plane(version: &str) -> Scenario {
    let cidrs = [
        ("alpha", "10.1.0.0/16"),
        ("beta", "10.2.0.0/16"),
        ("gamma", "10.3.0.0/16"),
    ];
    let up: Vec<String> = cidrs
        .iter()
        .flat_map(|(n, c)| ["--pod-cidr".to_owned(), format!("{n}={c}")])
        .collect();
    Scenario::start_with(&["alpha", "beta", "gamma"], &up, &["--data-plane"], |ports| {
        mixed_fleet(version, ports)
    })
}

#[test]
fn mixed_fleet_at_2025_4_4() {
    linkerd_agrees(&mixed(RELEASES[0]));
}

#[test]
fn mixed_fleet_at_2026_8_3() {
    let s = mixed(RELEASES[1]);
    linkerd_agrees(&s);
    broken_objects_fail_their_check(&s);
}

/// The check ids that are not ok for `cluster`, after the fleet had converged.
fn failing_checks(s: &Scenario, cluster: &str) -> Vec<String> {
    let (_, stdout, stderr) = s.meshfleet(&["check", ".", "-o", "json", "--cluster", cluster]);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    let mut ids: Vec<String> = report["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["checks"].as_array().into_iter().flatten())
        .filter(|c| c["status"] != "ok")
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Breaking what the real charts and controllers made fails exactly the check that
/// watches it, and putting it back heals it.
fn broken_objects_fail_their_check(s: &Scenario) {
    let link = s
        .links()
        .into_iter()
        .find(|l| l.source == "alpha" && l.target == "beta")
        .expect("alpha-to-beta");
    let kubectl = |args: &[&str]| s.kubectl(&link.source, args);
    // What is not ok already (the annotation-only export `every_link_mirrors` left is a
    // warning on purpose); each case below must add exactly its own id.
    let baseline = failing_checks(s, &link.source);
    let failing_checks = |s: &Scenario, cluster: &str| -> Vec<String> {
        failing_checks(s, cluster)
            .into_iter()
            .filter(|id| !baseline.contains(id))
            .collect()
    };
    // The chart's controller scaled away.
    kubectl(&[
        "-n",
        scenario::MULTICLUSTER,
        "scale",
        "deploy",
        &link.controller_name(),
        "--replicas=0",
    ]);
    let failing = wait_for("controller-available to fail", || {
        let ids = failing_checks(s, &link.source);
        (!ids.is_empty()).then_some(ids)
    });
    assert_eq!(failing, ["controller-available"], "scaled to zero");
    kubectl(&[
        "-n",
        scenario::MULTICLUSTER,
        "scale",
        "deploy",
        &link.controller_name(),
        "--replicas=1",
    ]);
    wait_for("controller-available to heal", || {
        failing_checks(s, &link.source).is_empty().then_some(())
    });
    // The Link edited by hand.
    kubectl(&[
        "-n",
        scenario::MULTICLUSTER,
        "patch",
        "link",
        link.link_name(),
        "--type=merge",
        "-p",
        r#"{"spec":{"gatewayPort":"4999"}}"#,
    ]);
    assert_eq!(
        failing_checks(s, &link.source),
        ["link-drift"],
        "a hand-edited Link"
    );
    let rendered = s
        .tree
        .join(&link.source)
        .join("links")
        .join(format!("link-{}.yaml", link.link_name()));
    kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager",
        "kustomize-controller",
        "-f",
        &rendered.to_string_lossy(),
    ]);
    wait_for("link-drift to heal", || {
        failing_checks(s, &link.source).is_empty().then_some(())
    });
    // The target's remote-access token revoked (its Secret deleted; the chart's next
    // apply would bring it back).
    let token_secret = meshfleet_core::plan::remote_access_token_secret(&link.source);
    s.kubectl(
        &link.target,
        &["-n", scenario::MULTICLUSTER, "delete", "secret", &token_secret],
    );
    let failing = wait_for("credentials-access to fail", || {
        let ids = failing_checks(s, &link.source);
        (!ids.is_empty()).then_some(ids)
    });
    assert_eq!(failing, ["credentials-access"], "a revoked token");
}

/// An example's fleet file with the module header's substitutions: `apiServer` →
/// `https://kubernetes.default.svc:<port>`, gateway addresses → TEST-NET addresses, and no
/// `context` (the environment's contexts are named after the clusters).
/// `name` may be [`HOMELAB_VAULT`]: the environment's External Secrets stand-ins read
/// OpenBao, so the homelab runs here with its Vault variant.
fn example_fleet(name: &str, ports: &BTreeMap<&str, String>) -> String {
    let text = crate::support::example_fleet_text(name);
    let mut cluster = String::new();
    let mut gateways = 0;
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if let Some(n) = trimmed.strip_prefix("- name: ") {
            n.split_whitespace()
                .next()
                .unwrap_or_default()
                .clone_into(&mut cluster);
        }
        if trimmed.starts_with("context:") {
            continue;
        }
        if trimmed.starts_with("apiServer:") {
            out.push_str(&format!(
                "{indent}apiServer: https://kubernetes.default.svc:{}\n",
                ports[cluster.as_str()]
            ));
        } else if trimmed.starts_with("addresses:") {
            gateways += 1;
            out.push_str(&format!("{indent}addresses: [192.0.2.{}]\n", 20 + gateways));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Seed 000's fleet: Flux, cert-manager issuers, LoadBalancer gateways, both ways (with
/// Vault: the environment's External Secrets stand-ins read OpenBao; the example's SOPS
/// is reconciled by real Flux in gitops_flux_sops.rs).
#[test]
fn homelab_example() {
    let s = Scenario::start(&["studio", "pro"], |ports| example_fleet(HOMELAB_VAULT, ports));
    linkerd_agrees(&s);
}

/// Seed 003's fleet: Argo CD, static issuers in Vault, a NodePort hub whose link name
/// `internal` differs from its cluster name `in-cluster-local`.
#[test]
fn hub_spoke_example() {
    let s = Scenario::start(&["in-cluster-local", "production", "nonproduction"], |ports| {
        example_fleet("hub-spoke", ports)
    });
    linkerd_agrees(&s);
}

/// `meshfleet migrate` on what the deprecated `linkerd multicluster link` really writes:
/// it finds the legacy controller, and `--apply` removes it only once the declarative
/// controller is available, after which the link mirrors through it.
#[test]
fn migrate_from_a_real_legacy_link() {
    let s = mixed(RELEASES[0]);
    let link = s
        .links()
        .into_iter()
        .find(|l| l.source == "alpha" && l.target == "beta")
        .expect("alpha-to-beta");
    s.install_legacy_link(&link);
    let (code, stdout, stderr) = s.meshfleet(&["migrate", "."]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let legacy = format!("linkerd-service-mirror-{}", link.link_name());
    assert!(stdout.contains(&legacy), "{stdout}");
    let report = s.migrate_apply(".");
    assert!(
        s.deployment(&link.source, scenario::MULTICLUSTER, &legacy)
            .is_none(),
        "the legacy controller is still there:\n{report:#}"
    );
    assert!(
        s.deployment(&link.source, scenario::MULTICLUSTER, &link.controller_name())
            .is_some()
    );
    s.export(&link.target, "after", Some("true"), &[(80, "http")]);
    s.wait_mirror(&link, "after", |m| ports_of(m) == [80]);
}

/// Everything this module proves, on one installed fleet.
fn linkerd_agrees(s: &Scenario) {
    meshfleet_check_is_green(s);
    probes_match_links(s);
    links_equal_link_gen(s);
    destination_registers_targets(s);
    multicluster_check_passes(s);
    every_link_mirrors(s);
}

/// `meshfleet check` passes every check on what the real charts and controllers made,
/// once they have converged (External Secrets synced, the controllers started): checked
/// the way a user would, by running it again until it is green.
fn meshfleet_check_is_green(s: &Scenario) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let (code, stdout, stderr) = loop {
        let (code, stdout, stderr) = s.meshfleet(&["check", ".", "-o", "json"]);
        if code == 0 || std::time::Instant::now() > deadline {
            break (code, stdout, stderr);
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    };
    assert_eq!(code, 0, "meshfleet check:\n{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("check -o json");
    let failing: Vec<&Value> = report["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["checks"].as_array().into_iter().flatten())
        .filter(|c| c["status"] != "ok")
        .collect();
    assert!(failing.is_empty(), "not ok: {failing:#?}");
}

/// The chart's `probe-<link>` Service has the Link's probe port, and the real controller
/// writes its Endpoints at the gateway's address and that port.
fn probes_match_links(s: &Scenario) {
    for link in s.links() {
        let Some(gateway) = &link.gateway else { continue };
        let id = link.credentials_id();
        let probe = link.probe_service();
        let service = s
            .service(&link.source, scenario::MULTICLUSTER, &probe)
            .unwrap_or_else(|| panic!("{id}: the chart made no Service {probe}"));
        assert_eq!(
            ports_of(&service),
            [i64::from(gateway.probe_port)],
            "{id}: {service}"
        );
        let endpoints = wait_for(&format!("{id}: Endpoints {probe}"), || {
            s.endpoints(&link.source, scenario::MULTICLUSTER, &probe)
                .filter(|e| !endpoint_addresses(e).0.is_empty())
        });
        assert_eq!(
            endpoint_addresses(&endpoints),
            (vec![gateway.address.clone()], vec![i64::from(gateway.probe_port)]),
            "{id}: {endpoints}"
        );
    }
}

/// meshfleet's Link and credentials Secrets equal what `linkerd multicluster link-gen`
/// writes for the same target. Intended differences: meshfleet's objects carry its
/// `managed-by` and `fleet` labels; meshfleet leaves out the empty `probeSpec` link-gen
/// writes for a link without a gateway; link-gen's `creationTimestamp: null` and empty
/// status are not objects' content.
fn links_equal_link_gen(s: &Scenario) {
    for link in s.links() {
        let id = link.credentials_id();
        let generated = s.link_gen(&link);
        let rendered = s.rendered_link_objects(&link);
        let find = |objects: &[Value], kind: &str, ns: &str| -> Value {
            objects
                .iter()
                .find(|o| o["kind"] == kind && o["metadata"]["namespace"] == ns)
                .cloned()
                .unwrap_or_else(|| panic!("{id}: no {kind} in {ns}"))
        };
        let ours = find(&rendered, "Link", scenario::MULTICLUSTER);
        let mut theirs = find(&generated, "Link", scenario::MULTICLUSTER);
        // For a link without a gateway link-gen writes `probeSpec: {}`; meshfleet leaves
        // the empty object out (the same Link to the API server and the controller).
        if theirs["spec"]["probeSpec"] == json!({}) {
            theirs["spec"].as_object_mut().expect("spec").remove("probeSpec");
        }
        assert_eq!(
            ours["spec"], theirs["spec"],
            "{id}: Link spec differs from link-gen's"
        );
        assert_eq!(ours["metadata"]["name"], theirs["metadata"]["name"], "{id}");
        assert_eq!(
            ours["metadata"]["annotations"], theirs["metadata"]["annotations"],
            "{id}"
        );
        for ns in [scenario::MULTICLUSTER, s.plan.linkerd.namespace.as_str()] {
            let theirs = find(&generated, "Secret", ns);
            let ours = s.secret(&link.source, ns, &link.credentials_secret());
            assert_eq!(ours["type"], theirs["type"], "{id}: type of the Secret in {ns}");
            assert_eq!(ours["metadata"]["name"], theirs["metadata"]["name"], "{id}");
            for key in ["labels", "annotations"] {
                for (k, v) in theirs["metadata"][key].as_object().into_iter().flatten() {
                    assert_eq!(
                        &ours["metadata"][key][k], v,
                        "{id}: {key} {k} of the Secret in {ns}"
                    );
                }
            }
            // Compared, never printed: the token is a secret.
            assert!(
                scenario::kubeconfig_identity(&ours) == scenario::kubeconfig_identity(&theirs),
                "{id}: the kubeconfig in {ns} differs from link-gen's (server, CA or token)"
            );
        }
    }
}

/// The destination controller's cluster store registers every link's target from
/// meshfleet's Secret in the linkerd namespace (remote discovery needs it).
fn destination_registers_targets(s: &Scenario) {
    let ns = &s.plan.linkerd.namespace;
    for link in s.links() {
        let log = format!("{}-{ns}-linkerd-destination", link.source);
        let line = format!("Added cluster {} to ClusterStore", link.link_name());
        wait_for(
            &format!("{}: `{line}` in {log}.log", link.credentials_id()),
            || s.env.log(&log).contains(&line).then_some(()),
        );
        assert!(
            !s.env.log(&log).contains("Error adding cluster"),
            "{}",
            s.env.log(&log)
        );
    }
}

/// `linkerd multicluster check` passes its configuration checks on every source. What
/// cannot pass here, and why: the gateway probe goes through the controller pod's proxy
/// (no proxies run, so no `gateway_alive` metric), proxies' health and version (none).
fn multicluster_check_passes(s: &Scenario) {
    const CANNOT_PASS: [&str; 4] = [
        "probe services able to communicate with all gateway mirrors",
        "multicluster extension proxies are healthy",
        "multicluster extension proxies are up-to-date",
        "multicluster extension proxies and cli versions match",
    ];
    let sources: std::collections::BTreeSet<String> = s.links().into_iter().map(|l| l.source).collect();
    for source in sources {
        let checks = s.multicluster_check(&source);
        let passed: Vec<&str> = checks
            .iter()
            .filter(|(_, result, _)| result == "success")
            .map(|(d, _, _)| d.as_str())
            .collect();
        for must in [
            "Link CRD exists",
            "Link resources are valid",
            "remote cluster access credentials are valid",
            "clusters share trust anchors",
            "service mirror controller has required permissions",
            "service mirror controllers are running",
            "extension is managing controllers",
        ] {
            assert!(
                passed.iter().any(|d| d.starts_with(must)),
                "{source}: `{must}` did not pass: {checks:#?}"
            );
        }
        for (description, result, error) in &checks {
            assert!(
                result == "success" || CANNOT_PASS.iter().any(|c| description.starts_with(c)),
                "{source}: `{description}` {result}: {error}"
            );
        }
    }
}

fn ports_of(service: &Value) -> Vec<i64> {
    service["spec"]["ports"]
        .as_array()
        .map(|ports| ports.iter().filter_map(|p| p["port"].as_i64()).collect())
        .unwrap_or_default()
}

/// (IPs, ports) of an Endpoints object's subsets, ready or not (the service mirror marks
/// a gateway's addresses not ready once its probe fails, which it does here: see the
/// module header of testenv/lib/kubelet.py).
fn endpoint_addresses(endpoints: &Value) -> (Vec<String>, Vec<i64>) {
    let mut ips = Vec::new();
    let mut ports = Vec::new();
    for subset in endpoints["subsets"].as_array().into_iter().flatten() {
        for key in ["addresses", "notReadyAddresses"] {
            for a in subset[key].as_array().into_iter().flatten() {
                ips.push(a["ip"].as_str().unwrap_or_default().to_owned());
            }
        }
        for p in subset["ports"].as_array().into_iter().flatten() {
            ports.push(p["port"].as_i64().unwrap_or_default());
        }
    }
    (ips, ports)
}

/// Every link mirrors what its target exports the way its Link says: gateway links with
/// Endpoints at the gateway, remote-discovery links without; annotation-only exports are
/// not mirrored; port changes and deletions propagate.
fn every_link_mirrors(s: &Scenario) {
    let links = s.links();
    let targets: std::collections::BTreeSet<&str> = links.iter().map(|l| l.target.as_str()).collect();
    for target in &targets {
        s.export(target, "web", Some("true"), &[(80, "http")]);
        s.export(target, "disco", Some("remote-discovery"), &[(8080, "http")]);
        s.export(target, "legacy", None, &[(80, "http")]);
    }
    for link in &links {
        let name = link.link_name();
        if let Some(gateway) = &link.gateway {
            let mirror = s.wait_mirror(link, "web", |m| ports_of(m) == [80]);
            assert_eq!(
                mirror["metadata"]["labels"]["mirror.linkerd.io/cluster-name"],
                json!(name)
            );
            let endpoints = wait_for(
                &format!("{} endpoints of web-{name}", link.credentials_id()),
                || {
                    s.endpoints(&link.source, scenario::APPS, &format!("web-{name}"))
                        .filter(|e| !endpoint_addresses(e).0.is_empty())
                },
            );
            assert_eq!(
                endpoints["metadata"]["annotations"]["mirror.linkerd.io/remote-gateway-identity"],
                json!(link.gateway_identity()),
                "{}: {endpoints}",
                link.credentials_id()
            );
            let (ips, ports) = endpoint_addresses(&endpoints);
            assert_eq!(
                ips,
                vec![gateway.address.clone()],
                "{}: {endpoints}",
                link.credentials_id()
            );
            assert_eq!(
                ports,
                vec![i64::from(gateway.port)],
                "{}: {endpoints}",
                link.credentials_id()
            );
        } else {
            let mirror = s.wait_mirror(link, "disco", |m| ports_of(m) == [8080]);
            assert_eq!(
                mirror["metadata"]["labels"]["multicluster.linkerd.io/remote-discovery"],
                json!(name),
                "{}: {mirror}",
                link.credentials_id()
            );
            let endpoints = s.endpoints(&link.source, scenario::APPS, &format!("disco-{name}"));
            assert!(
                endpoints
                    .as_ref()
                    .is_none_or(|e| endpoint_addresses(e).0.is_empty()),
                "{}: a remote-discovery mirror has no Endpoints: {endpoints:?}",
                link.credentials_id()
            );
        }
    }
    // By now every link has synced its target's services: the annotation did nothing.
    for link in &links {
        let name = link.link_name();
        assert!(
            s.service(&link.source, scenario::APPS, &format!("legacy-{name}"))
                .is_none(),
            "{}: an annotation-only export was mirrored",
            link.credentials_id()
        );
    }
    // A port change and a deletion on the target reach every source.
    for target in &targets {
        s.export(target, "web", Some("true"), &[(8081, "http")]);
    }
    for link in links.iter().filter(|l| l.gateway.is_some()) {
        s.wait_mirror(link, "web", |m| ports_of(m) == [8081]);
    }
    for target in &targets {
        s.delete_service(target, "web");
    }
    for link in links.iter().filter(|l| l.gateway.is_some()) {
        let mirror = format!("web-{}", link.link_name());
        wait_for(&format!("{} deleting {mirror}", link.credentials_id()), || {
            s.service(&link.source, scenario::APPS, &mirror)
                .is_none()
                .then_some(())
        });
    }
}

/// Issue 23: what `validate` and `render` assume about each release is what its own CLI
/// does: whether `linkerd-crds` installs the Gateway API CRDs by default (no longer
/// from 2.19, #14523), and that the Gateway API release the CLI tells users to install
/// lies inside the range `validate` accepts without a warning.
#[test]
fn version_facts_match_each_releases_cli() {
    use meshfleet_core::fleet::version::{GatewayApiVersion, LinkerdVersion};
    for release in RELEASES {
        let version = LinkerdVersion::parse(release).expect("chart version");
        let cli = crate::testenv::TestEnv::linkerd_cli(release);
        let out = std::process::Command::new(&cli)
            .args(["install", "--crds", "--ignore-cluster"])
            .output()
            .expect("linkerd install --crds");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let crds = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            crds.contains("gateway.networking.k8s.io/bundle-version"),
            version.crds_chart_installs_gateway_api(),
            "{release}: Gateway API CRDs in `linkerd install --crds`"
        );
        let binary = std::fs::read(&cli).expect("read the CLI");
        let marker = b"gateway-api/releases/download/";
        let at = binary
            .windows(marker.len())
            .position(|w| w == marker)
            .unwrap_or_else(|| panic!("{release}: the CLI names no Gateway API release"));
        let tail = &binary[at + marker.len()..];
        let end = tail.iter().position(|b| *b == b'/').expect("end of the tag");
        let suggested = std::str::from_utf8(&tail[..end]).expect("UTF-8 tag");
        let suggested = GatewayApiVersion::parse(suggested).expect("a vX.Y.Z tag");
        let (low, high) = version.gateway_api_range();
        assert!(
            low <= suggested && suggested <= high,
            "{release}: the CLI suggests {suggested}, validate accepts {low} to {high}"
        );
    }
}
