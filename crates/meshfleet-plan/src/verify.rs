//! What `meshfleet verify` places on the clusters to send one request across a link.
//!
//! Per link, one namespace of the same name on both sides (the service mirror mirrors a
//! Service into the namespace of the same name on the source):
//!
//! - on the **target**, a meshed server (`linkerd.io/inject: enabled`, so the cluster's
//!   proxy injector adds the proxy) behind a Service carrying labels that match the
//!   Link's selector for its mode, so the link mirrors it. The server answers every GET
//!   with a JSON object holding the `l5d-client-id` header its own proxy set: the
//!   identity the server-side proxy saw on the mTLS connection;
//! - on the **source**, a meshed client: a Job (run once, never restarted) under its own
//!   ServiceAccount that calls the mirror Service by name until it answers or the
//!   deadline passes, then writes one JSON line (see [`ClientResult`]) to its
//!   termination message file and to its output; the Job's pod status carries it back
//!   (`state.terminated.message`), as in any cluster.
//!
//! Every object is labelled [`VERIFY_LABEL`]`=<link id>` and
//! `app.kubernetes.io/managed-by: meshfleet`, so a rerun finds and removes what an
//! interrupted run left. Nothing here talks to a cluster (see `meshfleet_live::verify`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, Namespace, PodSpec, PodTemplateSpec, Service, ServiceAccount,
    ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use meshfleet_fleet::model::LinkMode;

use crate::{FleetPlan, LinkPlan};

/// The label on everything `verify` creates; its value is the link id.
pub const VERIFY_LABEL: &str = "meshfleet.io/verify";
/// The image of the test server and client when `--image` is not given: it must have
/// `python3` (both are a few lines of Python's standard library).
pub const DEFAULT_IMAGE: &str = "docker.io/library/python:3.13-alpine";
/// The test Service (its mirror on the source is `verify-<link name>`).
pub const SERVICE: &str = "verify";
/// The server's Deployment.
pub const SERVER: &str = "verify-server";
/// The client's Job and ServiceAccount.
pub const CLIENT: &str = "verify-client";
/// The port the server listens on and the Service exposes.
pub const PORT: u16 = 8080;
/// Where the client writes its result; the kubelet copies it into the container's
/// `state.terminated.message`.
pub const RESULT_PATH: &str = "/run/meshfleet-verify/result";

/// The server: every GET is answered 200 with the peer identity its proxy saw.
const SERVER_PY: &str = r#"import http.server, json, socket
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"peer": self.headers.get("l5d-client-id", ""), "server": socket.gethostname()}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *args):
        print("%s %s" % (self.headers.get("l5d-client-id", "-"), fmt % args), flush=True)
http.server.ThreadingHTTPServer(("", int(__import__("os").environ["PORT"])), H).serve_forever()
"#;

/// The client: calls URL until it answers 200 or DEADLINE seconds pass; reports the
/// fastest of a few calls once it answered, the last status or error otherwise.
const CLIENT_PY: &str = r#"import json, os, time, urllib.request, urllib.error
url, deadline = os.environ["URL"], time.monotonic() + float(os.environ["DEADLINE"])
result, attempts = {"reached": False}, 0
while time.monotonic() < deadline:
    attempts += 1
    start = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.loads(r.read() or b"{}")
        best = time.monotonic() - start
        for _ in range(3):
            start = time.monotonic()
            with urllib.request.urlopen(url, timeout=5) as r:
                r.read()
            best = min(best, time.monotonic() - start)
        result = {"reached": True, "status": 200, "peer": body.get("peer", ""), "server": body.get("server", ""), "latency_ms": round(best * 1000, 2)}
        break
    except urllib.error.HTTPError as e:
        result = {"reached": False, "status": e.code, "error": "HTTP %d" % e.code}
    except Exception as e:
        result = {"reached": False, "error": str(getattr(e, "reason", e))}
    time.sleep(1)
result["attempts"] = attempts
line = json.dumps(result)
print(line, flush=True)
try:
    with open(os.environ["RESULT"], "w") as f:
        f.write(line)
except OSError:
    pass
raise SystemExit(0 if result["reached"] else 1)
"#;

/// Everything `verify` places for one link, and what it expects back.
#[derive(Debug, Clone)]
pub struct LinkVerify {
    /// `<source>-to-<target>`, the id `--link` takes.
    pub id: String,
    /// `<source> -> <target>`.
    pub label: String,
    /// Source cluster (the client).
    pub source: String,
    /// Target cluster (the server).
    pub target: String,
    /// Gateway or remote discovery.
    pub mode: LinkMode,
    /// The name of the Link object on the source (and of the mirrors' suffix).
    pub link_name: String,
    /// The namespace on both clusters.
    pub namespace: String,
    /// The control plane's namespace (the same on every cluster of the fleet).
    pub linkerd_namespace: String,
    /// The mirror Service the client calls on the source.
    pub mirror: String,
    /// The URL the client calls.
    pub url: String,
    /// The client's identity: its ServiceAccount in the source's trust domain.
    pub client_identity: String,
    /// The identity the server's proxy must see: the client's with remote discovery, the
    /// target gateway's through a gateway (it terminates the client's connection).
    pub expected_peer: String,
    /// The target's gateway identity (gateway mode).
    pub gateway_identity: Option<String>,
    /// The gateway address the source dials (gateway mode), for messages.
    pub gateway_address: Option<String>,
    /// Target objects, in apply order.
    pub target_objects: TargetObjects,
    /// Source objects, in apply order.
    pub source_objects: SourceObjects,
}

/// The server side.
#[derive(Debug, Clone)]
pub struct TargetObjects {
    /// The namespace.
    pub namespace: Namespace,
    /// The exported Service.
    pub service: Service,
    /// The meshed server.
    pub deployment: Deployment,
}

/// The client side.
#[derive(Debug, Clone)]
pub struct SourceObjects {
    /// The namespace.
    pub namespace: Namespace,
    /// The client's own ServiceAccount (its identity).
    pub service_account: ServiceAccount,
    /// The meshed client, run once.
    pub job: Job,
}

/// What the client reports (its termination message, one JSON line).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct ClientResult {
    /// Whether the server answered 200.
    pub reached: bool,
    /// The last HTTP status, if an answer came.
    #[serde(default)]
    pub status: Option<u16>,
    /// The identity the server's proxy saw (`l5d-client-id`), when reached.
    #[serde(default)]
    pub peer: Option<String>,
    /// The server pod's name, when reached.
    #[serde(default)]
    pub server: Option<String>,
    /// The fastest of the calls after the first answer, in milliseconds.
    #[serde(default)]
    pub latency_ms: Option<f64>,
    /// The last error, when not reached.
    #[serde(default)]
    pub error: Option<String>,
    /// How many times it called before the answer or the deadline.
    #[serde(default)]
    pub attempts: u32,
}

impl ClientResult {
    /// The result in a termination message or log: its last line that parses.
    pub fn parse(text: &str) -> Option<Self> {
        text.lines()
            .rev()
            .find_map(|l| serde_json::from_str(l.trim()).ok())
    }
}

/// The plan of `verify` for the fleet's links (all, or those `ids` names).
pub fn plan(fleet: &FleetPlan, ids: &[String], image: &str, deadline_secs: u64) -> Vec<LinkVerify> {
    fleet
        .clusters
        .iter()
        .flat_map(|c| &c.outgoing)
        .filter(|l| ids.is_empty() || ids.contains(&l.credentials_id()))
        .map(|l| link(fleet, l, image, deadline_secs))
        .collect()
}

/// Every link id of the fleet, for `--link` hints.
pub fn link_ids(fleet: &FleetPlan) -> Vec<String> {
    fleet
        .clusters
        .iter()
        .flat_map(|c| &c.outgoing)
        .map(LinkPlan::credentials_id)
        .collect()
}

/// The namespace of a link's test: `meshfleet-verify-<id>`, shortened with a hash to
/// a DNS label's 63 characters.
pub fn namespace(id: &str) -> String {
    let name = format!("meshfleet-verify-{id}");
    if name.len() <= 63 {
        return name;
    }
    // FNV-1a: stable across runs and versions, so a rerun finds the same namespace.
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("{}-{:08x}", &name[..54].trim_end_matches('-'), hash & 0xffff_ffff)
}

/// Labels a Service needs so `selector` selects it: its `matchLabels`, and for each
/// expression a value it accepts (`In`: the first value; `Exists`: `true`). `NotIn` and
/// `DoesNotExist` are met by leaving the key out.
pub fn labels_for(selector: &LabelSelector) -> BTreeMap<String, String> {
    let mut labels = selector.match_labels.clone().unwrap_or_default();
    for e in selector.match_expressions.iter().flatten() {
        match e.operator.as_str() {
            "In" => {
                if let Some(v) = e.values.iter().flatten().next() {
                    labels.insert(e.key.clone(), v.clone());
                }
            }
            "Exists" => {
                labels.entry(e.key.clone()).or_insert_with(|| "true".into());
            }
            _ => {}
        }
    }
    labels
}

fn link(fleet: &FleetPlan, l: &LinkPlan, image: &str, deadline_secs: u64) -> LinkVerify {
    let id = l.credentials_id();
    let ns = namespace(&id);
    let mirror = format!("{SERVICE}-{}", l.link_name());
    let url = format!(
        "http://{mirror}.{ns}.svc.{}:{PORT}/",
        fleet.linkerd.cluster_domain
    );
    let client_identity = format!(
        "{CLIENT}.{ns}.serviceaccount.identity.{}.{}",
        fleet.linkerd.namespace, fleet.linkerd.trust_domain
    );
    let (selector, gateway_identity) = match l.mode {
        LinkMode::Gateway => (&l.selector, Some(l.gateway_identity())),
        LinkMode::RemoteDiscovery => (&l.remote_discovery_selector, None),
    };
    let expected_peer = gateway_identity
        .clone()
        .unwrap_or_else(|| client_identity.clone());
    let labels = common_labels(&id);
    let meta = |name: &str, extra: &BTreeMap<String, String>| ObjectMeta {
        name: Some(name.into()),
        namespace: Some(ns.clone()),
        labels: Some(labels.clone().into_iter().chain(extra.clone()).collect()),
        ..ObjectMeta::default()
    };
    let namespace_object = Namespace {
        metadata: ObjectMeta {
            name: Some(ns.clone()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    let app = |name: &str| BTreeMap::from([("app".to_string(), name.to_string())]);
    let inject = BTreeMap::from([("linkerd.io/inject".to_string(), "enabled".to_string())]);
    let pod_meta = |name: &str| ObjectMeta {
        labels: Some(labels.clone().into_iter().chain(app(name)).collect()),
        annotations: Some(inject.clone()),
        ..ObjectMeta::default()
    };
    let env = |pairs: &[(&str, String)]| {
        pairs
            .iter()
            .map(|(k, v)| EnvVar {
                name: (*k).into(),
                value: Some(v.clone()),
                ..EnvVar::default()
            })
            .collect::<Vec<_>>()
    };
    let service = Service {
        metadata: meta(SERVICE, &labels_for(selector)),
        spec: Some(ServiceSpec {
            selector: Some(app(SERVER)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: PORT.into(),
                target_port: Some(IntOrString::Int(PORT.into())),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let deployment = Deployment {
        metadata: meta(SERVER, &BTreeMap::new()),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(app(SERVER)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(pod_meta(SERVER)),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    containers: vec![Container {
                        name: "server".into(),
                        image: Some(image.into()),
                        command: Some(vec!["python3".into(), "-u".into(), "-c".into(), SERVER_PY.into()]),
                        env: Some(env(&[("PORT", PORT.to_string())])),
                        ports: Some(vec![ContainerPort {
                            name: Some("http".into()),
                            container_port: PORT.into(),
                            ..ContainerPort::default()
                        }]),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    };
    let job = Job {
        metadata: meta(CLIENT, &BTreeMap::new()),
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            // The client stops calling at the deadline; this bounds a pod that never starts.
            active_deadline_seconds: Some(
                i64::try_from(deadline_secs)
                    .unwrap_or(i64::MAX)
                    .saturating_add(60),
            ),
            template: PodTemplateSpec {
                metadata: Some(pod_meta(CLIENT)),
                spec: Some(PodSpec {
                    service_account_name: Some(CLIENT.into()),
                    restart_policy: Some("Never".into()),
                    containers: vec![Container {
                        name: "client".into(),
                        image: Some(image.into()),
                        command: Some(vec!["python3".into(), "-u".into(), "-c".into(), CLIENT_PY.into()]),
                        env: Some(env(&[
                            ("URL", url.clone()),
                            ("DEADLINE", deadline_secs.to_string()),
                            ("RESULT", RESULT_PATH.into()),
                        ])),
                        termination_message_path: Some(RESULT_PATH.into()),
                        termination_message_policy: Some("FallbackToLogsOnError".into()),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    };
    LinkVerify {
        label: l.label(),
        source: l.source.clone(),
        target: l.target.clone(),
        mode: l.mode,
        link_name: l.link_name().to_owned(),
        namespace: ns.clone(),
        linkerd_namespace: fleet.linkerd.namespace.clone(),
        mirror,
        url,
        expected_peer,
        gateway_identity,
        gateway_address: l.gateway.as_ref().map(|g| format!("{}:{}", g.address, g.port)),
        target_objects: TargetObjects {
            namespace: namespace_object.clone(),
            service,
            deployment,
        },
        source_objects: SourceObjects {
            namespace: namespace_object,
            service_account: ServiceAccount {
                metadata: meta(CLIENT, &BTreeMap::new()),
                ..ServiceAccount::default()
            },
            job,
        },
        client_identity,
        id,
    }
}

/// The labels of every object of a link's test.
pub fn common_labels(id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (VERIFY_LABEL.to_string(), id.to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "meshfleet".to_string(),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;
    use crate::fixtures::{BASE, base_with, plan as fleet_plan};

    #[test]
    fn one_test_per_link_with_the_identities_its_path_allows() {
        let fleet = fleet_plan(BASE);
        let all = plan(&fleet, &[], DEFAULT_IMAGE, 30);
        let ids: Vec<&str> = all.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids, ["studio-to-pro", "pro-to-studio"]);
        let v = &all[0];
        assert_eq!(v.namespace, "meshfleet-verify-studio-to-pro");
        assert_eq!(v.mirror, "verify-pro");
        assert_eq!(v.link_name, "pro");
        assert_eq!(
            v.url,
            "http://verify-pro.meshfleet-verify-studio-to-pro.svc.cluster.local:8080/"
        );
        assert_eq!(
            v.client_identity,
            "verify-client.meshfleet-verify-studio-to-pro.serviceaccount.identity.linkerd.cluster.local"
        );
        // Through a gateway the server's proxy sees the gateway.
        assert_eq!(
            v.expected_peer,
            "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local"
        );
        assert_eq!(v.gateway_address.as_deref(), Some("192.0.2.20:30143"));
        let only = plan(&fleet, &["pro-to-studio".into()], "img", 30);
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].target, "studio");
    }

    #[test]
    fn the_objects_are_labelled_meshed_and_exported() {
        let fleet = fleet_plan(BASE);
        let v = &plan(&fleet, &[], "registry.example/py:3", 45)[0];
        let service_labels = v
            .target_objects
            .service
            .metadata
            .labels
            .clone()
            .unwrap_or_default();
        assert_eq!(
            service_labels
                .get("mirror.linkerd.io/exported")
                .map(String::as_str),
            Some("true")
        );
        assert_eq!(
            service_labels.get(VERIFY_LABEL).map(String::as_str),
            Some("studio-to-pro")
        );
        let job = serde_json::to_value(&v.source_objects.job).expect("json");
        let pod = &job["spec"]["template"];
        assert_eq!(pod["metadata"]["annotations"]["linkerd.io/inject"], "enabled");
        assert_eq!(pod["spec"]["serviceAccountName"], CLIENT);
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
        let c = &pod["spec"]["containers"][0];
        assert_eq!(c["image"], "registry.example/py:3");
        assert_eq!(c["terminationMessagePath"], RESULT_PATH);
        assert!(c["env"].to_string().contains(&v.url));
        let ns = v
            .source_objects
            .namespace
            .metadata
            .labels
            .clone()
            .unwrap_or_default();
        assert_eq!(ns.get(VERIFY_LABEL).map(String::as_str), Some("studio-to-pro"));
    }

    #[test]
    fn remote_discovery_expects_the_clients_identity() {
        let text = base_with(
            "- {source: studio, target: pro}",
            "- {source: studio, target: pro, mode: remote-discovery}",
        );
        let fleet = fleet_plan(&text);
        let v = &plan(&fleet, &["studio-to-pro".into()], DEFAULT_IMAGE, 30)[0];
        assert_eq!(v.mode, LinkMode::RemoteDiscovery);
        assert_eq!(v.expected_peer, v.client_identity);
        assert!(v.gateway_identity.is_none());
        let labels = v
            .target_objects
            .service
            .metadata
            .labels
            .clone()
            .unwrap_or_default();
        assert_eq!(
            labels.get("mirror.linkerd.io/exported").map(String::as_str),
            Some("remote-discovery")
        );
    }

    #[test]
    fn labels_meet_expressions_and_names_fit_a_label() {
        let selector = LabelSelector {
            match_labels: Some(BTreeMap::from([("a".into(), "1".into())])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "b".into(),
                    operator: "In".into(),
                    values: Some(vec!["x".into(), "y".into()]),
                },
                LabelSelectorRequirement {
                    key: "c".into(),
                    operator: "Exists".into(),
                    values: None,
                },
                LabelSelectorRequirement {
                    key: "d".into(),
                    operator: "NotIn".into(),
                    values: Some(vec!["z".into()]),
                },
            ]),
        };
        let labels = labels_for(&selector);
        assert_eq!(
            labels.into_iter().collect::<Vec<_>>(),
            [
                ("a".into(), "1".into()),
                ("b".into(), "x".into()),
                ("c".into(), "true".into())
            ]
        );
        let long = namespace(&format!("{}-to-{}", "a".repeat(40), "b".repeat(30)));
        assert!(long.len() <= 63, "{long}");
        assert_eq!(
            long,
            namespace(&format!("{}-to-{}", "a".repeat(40), "b".repeat(30)))
        );
        assert_ne!(
            long,
            namespace(&format!("{}-to-{}", "a".repeat(40), "c".repeat(30)))
        );
    }

    #[test]
    fn the_result_is_the_last_json_line() {
        let r = ClientResult::parse("noise\n{\"reached\": true, \"status\": 200, \"peer\": \"p\", \"latency_ms\": 1.5, \"attempts\": 2}\n")
            .expect("parses");
        assert!(r.reached);
        assert_eq!(r.peer.as_deref(), Some("p"));
        assert_eq!(r.latency_ms, Some(1.5));
        let failed = ClientResult::parse(
            "{\"reached\": false, \"status\": 403, \"error\": \"HTTP 403\", \"attempts\": 9}",
        )
        .expect("parses");
        assert_eq!(failed.status, Some(403));
        assert!(ClientResult::parse("Traceback ...").is_none());
    }
}
