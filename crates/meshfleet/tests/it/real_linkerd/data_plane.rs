//! A request across a gateway link of the mixed fleet, through Linkerd's real data plane
//! (`testenv/run mesh --data-plane`, testenv/lib/dataplane.py): each meshed pod in its own
//! network namespace with its IP from the fleet's `network.pods`, proxy-init's iptables
//! redirect, the real proxy certified by the real identity controller, the policy
//! controller beside the destination controller, and the multicluster gateway as the real
//! proxy in gateway mode behind its LoadBalancer address.
//!
//! The workloads are injected both ways a user injects them: the servers (and the
//! gateways) by the real proxy injector's webhook (their pod templates ask for it), the
//! clients by `linkerd inject --manual` of the fleet's release against the cluster (it reads
//! the control plane's `linkerd-config`). The server is `python3 -m http.server`; the client
//! calls the mirror Service's name with curl from inside its pod's network namespace (as
//! `kubectl exec` would).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use super::RELEASES;
use super::scenario::{APPS, MULTICLUSTER, Scenario, wait_for};

/// The mixed fleet's trust domain and control-plane namespace.
const TRUST_DOMAIN: &str = "mesh.example";
const LINKERD_NS: &str = "l5d";

/// The server; `EXPORT` is the value of its Service's export label.
pub(super) const SERVER: &str = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: apps, labels: {mirror.linkerd.io/exported: \"EXPORT\"}}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8080, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: apps}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}, annotations: {linkerd.io/inject: enabled}}
    spec:
      containers:
      - name: web
        image: python:3
        command: [python3, -m, http.server, \"8080\"]
        ports: [{containerPort: 8080}]
";

pub(super) const CLIENT: &str = "apiVersion: v1
kind: ServiceAccount
metadata: {name: client, namespace: apps}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: apps}
spec:
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec:
      serviceAccountName: client
      containers:
      - name: client
        image: curlimages/curl
        command: [sleep, infinity]
";

#[test]
fn requests_cross_gateway_links_over_mtls() {
    let s = super::mixed_with_data_plane(RELEASES[1]);
    // beta -> alpha: alpha's gateway is a LoadBalancer (192.0.2.11:4143);
    // alpha -> beta: beta's is a NodePort (192.0.2.12:30143).
    // alpha -> gamma: remote discovery, pod to pod across the clusters' flat network.
    for cluster in ["alpha", "beta"] {
        apply_for_the_webhook(&s, cluster, "server", &SERVER.replace("EXPORT", "true"));
        inject_and_apply(&s, cluster, "client", CLIENT);
    }
    apply_for_the_webhook(
        &s,
        "gamma",
        "server",
        &SERVER.replace("EXPORT", "remote-discovery"),
    );
    let link = |source: &str, target: &str| {
        s.links()
            .into_iter()
            .find(|l| l.source == source && l.target == target)
            .expect("the link")
    };
    call_across(&s, &link("beta", "alpha"));
    call_across(&s, &link("alpha", "beta"));
    call_remote_discovery(&s, &link("alpha", "gamma"));
}

/// The client on the link's source calls the remote-discovery mirror of `web`: its proxy
/// gets the target's pod from its own destination controller (which watches the target's
/// API with the link's credentials) and connects to it directly; the server's proxy sees
/// the client's identity.
fn call_remote_discovery(s: &Scenario, link: &meshfleet_core::plan::LinkPlan) {
    let mirror = format!("web-{}", link.link_name());
    s.wait_mirror(link, "web", |_| true);
    let client = wait_for("the client pod running with its proxy", || {
        running_pod(s, &link.source, APPS, "client-")
    });
    let server = wait_for("the server pod running with its proxy", || {
        running_pod(s, &link.target, APPS, "web-")
    });
    let client_id = format!("client.{APPS}.serviceaccount.identity.{LINKERD_NS}.{TRUST_DOMAIN}");
    let server_id = format!("default.{APPS}.serviceaccount.identity.{LINKERD_NS}.{TRUST_DOMAIN}");
    let url = format!("http://{mirror}.{APPS}.svc.cluster.example:8080/");
    let body = wait_for(&format!("{url} from {} to answer 200", link.source), || {
        let out = pod_exec(&client, &["curl", "-sS", "-m", "5", "-w", "\n%{http_code}", &url]);
        out.trim_end().ends_with("\n200").then_some(out)
    });
    assert!(
        body.contains("Directory listing for /"),
        "http.server's answer: {body}"
    );
    let client_metrics = metrics(&client);
    assert!(
        client_metrics
            .lines()
            .any(|l| l.starts_with("request_total{direction=\"outbound\"")
                && l.contains(&format!("target_addr=\"{}:8080\"", server.ip))
                && l.contains(&format!("tls=\"true\",server_id=\"{server_id}\""))),
        "client proxy outbound straight to the server pod {} over mTLS:\n{}",
        server.ip,
        grep(&client_metrics, "request_total")
    );
    let server_metrics = metrics(&server);
    assert!(
        server_metrics
            .lines()
            .any(|l| l.starts_with("request_total{direction=\"inbound\"")
                && l.contains(&format!("target_addr=\"{}:8080\"", server.ip))
                && l.contains(&format!("tls=\"true\",client_id=\"{client_id}\""))),
        "server inbound over mTLS from the client's identity:\n{}",
        grep(&server_metrics, "request_total")
    );
}

/// The client on the link's source calls the mirror of `web` by name; the request
/// reaches the server on the target through the target's gateway, over mTLS each hop.
fn call_across(s: &Scenario, link: &meshfleet_core::plan::LinkPlan) {
    let gateway_addr = link.gateway.as_ref().expect("a gateway link");
    let gateway_addr = format!("{}:{}", gateway_addr.address, gateway_addr.port);
    let mirror = format!("web-{}", link.link_name());
    s.wait_mirror(link, "web", |_| true);

    let client = wait_for("the client pod running with its proxy", || {
        running_pod(s, &link.source, APPS, "client-")
    });
    let server = wait_for("the server pod running with its proxy", || {
        running_pod(s, &link.target, APPS, "web-")
    });
    let gateway = wait_for("the gateway pod running with its proxy", || {
        running_pod(s, &link.target, MULTICLUSTER, "linkerd-gateway-")
    });

    // The proxies were certified by the real identity controller of their cluster.
    let client_id = format!("client.{APPS}.serviceaccount.identity.{LINKERD_NS}.{TRUST_DOMAIN}");
    let gateway_id =
        format!("linkerd-gateway.{MULTICLUSTER}.serviceaccount.identity.{LINKERD_NS}.{TRUST_DOMAIN}");
    for (pod, id) in [(&client, &client_id), (&gateway, &gateway_id)] {
        wait_for(&format!("{id} certified"), || {
            pod.log("linkerd-proxy")
                .contains(&format!("Certified identity id={id}"))
                .then_some(())
        });
    }

    // The call: the mirror's name (cluster domain cluster.example) from the client pod.
    let url = format!("http://{mirror}.{APPS}.svc.cluster.example:8080/");
    let body = wait_for(&format!("{url} from {} to answer 200", link.source), || {
        let out = pod_exec(&client, &["curl", "-sS", "-m", "5", "-w", "\n%{http_code}", &url]);
        out.trim_end().ends_with("\n200").then_some(out)
    });
    assert!(
        body.contains("Directory listing for /"),
        "http.server's answer: {body}"
    );
    assert!(
        server.log("web").contains("\"GET / HTTP/1.1\" 200"),
        "the server logged the request: {}",
        server.log("web")
    );

    // The client's proxy sent it over mTLS to the gateway's identity, at the Link's address.
    let client_metrics = metrics(&client);
    assert!(
        client_metrics
            .lines()
            .any(|l| l.starts_with("request_total{direction=\"outbound\"")
                && l.contains(&format!("target_addr=\"{gateway_addr}\""))
                && l.contains("tls=\"true\"")
                && l.contains(&format!("server_id=\"{gateway_id}\""))),
        "client proxy outbound to the gateway at {gateway_addr} over mTLS:\n{}",
        grep(&client_metrics, "request_total")
    );
    // The gateway's proxy saw the client's identity and authorized it with the
    // multicluster chart's AuthorizationPolicy (served by the real policy controller).
    let gateway_metrics = metrics(&gateway);
    assert!(
        gateway_metrics
            .lines()
            .any(|l| l.starts_with("inbound_http_authz_allow_total{")
                && l.contains("authz_kind=\"authorizationpolicy\",authz_name=\"linkerd-gateway\"")
                && l.contains(&format!("tls=\"true\",client_id=\"{client_id}\""))),
        "gateway inbound from the client's identity:\n{}",
        grep(&gateway_metrics, "authz_allow_total")
    );
    // The server's proxy received it over mTLS from the gateway (the gateway terminates
    // the client's connection; its own identity is the server's peer).
    let server_metrics = metrics(&server);
    assert!(
        server_metrics
            .lines()
            .any(|l| l.starts_with("request_total{direction=\"inbound\"")
                && l.contains(&format!("target_addr=\"{}:8080\"", server.ip))
                && l.contains(&format!("tls=\"true\",client_id=\"{gateway_id}\""))),
        "server inbound over mTLS from the gateway:\n{}",
        grep(&server_metrics, "request_total")
    );
}

/// Apply as it is: the pod template asks for the proxy (`linkerd.io/inject: enabled`) and
/// the real proxy injector's webhook adds it to each pod.
pub(super) fn apply_for_the_webhook(s: &Scenario, cluster: &str, name: &str, manifest: &str) {
    let path = s.dir().join(format!("{name}-{cluster}.yaml"));
    std::fs::write(&path, manifest).expect("write manifest");
    s.kubectl(cluster, &["apply", "-f", &path.to_string_lossy()]);
}

/// `linkerd inject --manual` of the fleet's release against `cluster`, then apply.
pub(super) fn inject_and_apply(s: &Scenario, cluster: &str, name: &str, manifest: &str) {
    let path = s.dir().join(format!("{name}-{cluster}.yaml"));
    std::fs::write(&path, manifest).expect("write manifest");
    let out = Command::new(crate::testenv::TestEnv::linkerd_cli(RELEASES[1]))
        .args(["inject", "--manual", "-L", LINKERD_NS, "--kubeconfig"])
        .arg(s.env.kubeconfig())
        .args(["--context", cluster])
        .arg(&path)
        .output()
        .expect("linkerd inject");
    assert!(
        out.status.success(),
        "linkerd inject: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let injected = s.dir().join(format!("{name}-{cluster}.injected.yaml"));
    std::fs::write(&injected, &out.stdout).expect("write injected");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("name: linkerd-proxy"),
        "the injector added the proxy:\n{text}"
    );
    s.kubectl(cluster, &["apply", "-f", &injected.to_string_lossy()]);
}

/// A pod the data plane runs (its record in DIR/pods).
struct RunningPod {
    netns: String,
    ip: String,
    logs: Value,
}

impl RunningPod {
    fn log(&self, container: &str) -> String {
        self.logs[container]
            .as_str()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .unwrap_or_default()
    }
}

fn running_pod(s: &Scenario, cluster: &str, namespace: &str, prefix: &str) -> Option<RunningPod> {
    let folder: PathBuf = s.env.dir().join("pods");
    let start = format!("{cluster}_{namespace}_{prefix}");
    let entries = std::fs::read_dir(&folder).ok()?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let record_file = entry.path().extension().is_some_and(|e| e == "json");
        if name.starts_with(&start) && record_file {
            let record: Value = serde_json::from_str(&std::fs::read_to_string(entry.path()).ok()?).ok()?;
            return Some(RunningPod {
                netns: record["netns"].as_str()?.to_owned(),
                ip: record["ip"].as_str()?.to_owned(),
                logs: record["logs"].clone(),
            });
        }
    }
    None
}

/// Run a program in the pod's network namespace (with its /etc/hosts), as root: its
/// traffic goes through the pod's proxy like the workload's.
fn pod_exec(pod: &RunningPod, argv: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &pod.netns])
        .args(argv)
        .output()
        .expect("ip netns exec");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The proxy's Prometheus metrics (its admin port, inside the pod).
fn metrics(pod: &RunningPod) -> String {
    pod_exec(pod, &["curl", "-sS", "-m", "5", "http://127.0.0.1:4191/metrics"])
}

fn grep(text: &str, needle: &str) -> String {
    text.lines()
        .filter(|l| l.contains(needle))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A pod created while the proxy injector rolls over to a new pod gets its proxy: the
/// webhook keeps calling the injector that serves until the new one listens, as a
/// Service routes to ready pods only. (The chart's `failurePolicy: Ignore` admits a pod
/// uninjected when the call fails: in a traffic test's run a `web` restarted in that
/// second came back without a proxy, KWOK reported it Ready at once, the rollout
/// deleted the serving pod and the remote-discovery link led nowhere to the end.)
#[test]
fn pods_created_while_the_injector_rolls_are_injected() {
    let s = super::mixed_with_data_plane(RELEASES[1]);
    let cluster = "gamma";
    let log = s.env.dir().join("logs").join("controllers.log");
    let handovers = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                l.contains(&format!(
                    "{cluster}: {LINKERD_NS}/linkerd-proxy-injector: the new pod is ready"
                ))
            })
            .count()
    };
    let before = handovers();
    s.kubectl(
        cluster,
        &[
            "-n",
            LINKERD_NS,
            "rollout",
            "restart",
            "deploy/linkerd-proxy-injector",
        ],
    );
    // Pods created one after another from the restart until 3 s after the handover.
    let start = std::time::Instant::now();
    let mut handed_over: Option<std::time::Instant> = None;
    let mut names = Vec::new();
    while handed_over.is_none_or(|t| t.elapsed() < std::time::Duration::from_secs(3)) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "the injector was not handed over within 120 s"
        );
        if handed_over.is_none() && handovers() > before {
            handed_over = Some(std::time::Instant::now());
        }
        let name = format!("probe-{}", names.len());
        let manifest = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {APPS}, annotations: {{linkerd.io/inject: enabled}}}}\nspec:\n  containers:\n  - {{name: web, image: python:3, command: [sleep, infinity]}}\n"
        );
        apply_for_the_webhook(&s, cluster, &name, &manifest);
        names.push(name);
    }
    let uninjected: Vec<&String> = names
        .iter()
        .filter(|name| {
            let containers = s.kubectl(
                cluster,
                &[
                    "-n",
                    APPS,
                    "get",
                    "pod",
                    name,
                    "-o",
                    "jsonpath={.spec.initContainers[*].name} {.spec.containers[*].name}",
                ],
            );
            !containers.split_whitespace().any(|c| c == "linkerd-proxy")
        })
        .collect();
    assert!(
        uninjected.is_empty(),
        "{} of {} pods created while the injector rolled have no proxy: {uninjected:?}",
        uninjected.len(),
        names.len()
    );
}
