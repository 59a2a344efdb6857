//! `installMethod: jobs` run for real (issue 10): every rendered Job's script runs with
//! Linkerd's real CLI as the Job's ServiceAccount against a test API server (pod.rs),
//! for a first install, a re-run (Flux re-creates a Job once its TTL removed it) and an
//! upgrade 2025.4.4 -> 2026.8.3 of CRDs, control plane, viz and multicluster; and every
//! RBAC rule is shown to be needed by a step its comment names.
//!
//! Test-time substitutions, and why: the fleets' second cluster `west` is only rendered
//! (the Jobs of `east` need its links, not its API server); the Gateway API CRDs are the
//! copies Linkerd 2.18's CLI embeds without Linkerd's `created-by` annotation (what the
//! `gateway-api` stage's upstream CRDs look like to the CLI; upstream is unreachable
//! here), and in one test with it, as a user who installed them with Linkerd's CLI has
//! them (issue 18); the issuer Secret is written as cert-manager's CA Issuer (`ca.crt` = the one
//! anchor that signed it) or External Secrets would write it. KWOK's fake nodes make the
//! Deployments roll out; webhook calls fail open (`failurePolicy: Ignore`).

mod pod;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::{Api, PostParams};
use meshfleet_core::identity::{self, KeyedCertificate};
use meshfleet_core::render::jobs::{CONTROL_PLANE_WEBHOOKS, LINKERD_CRDS, VIZ_WEBHOOKS};
use serde_json::{Value, json};
use time::OffsetDateTime;

use self::pod::{Component, JobRunner, PodRun, apply, documents, get};
use crate::support::{meshfleet, texts};
use crate::testenv::{self, PrivateEnv, TestEnv};

/// The releases in `../shared/linkerd`, as chart versions: installed, then upgraded to.
const FROM: &str = "2025.4.4";
const TO: &str = "2026.8.3";

/// The cluster the Jobs run on (the fleet's `east`).
const CLUSTER: &str = "east";

/// A fleet of two clusters linked both ways, installed by Jobs.
struct FleetSpec<'a> {
    version: &'a str,
    namespace: &'a str,
    trust_domain: &'a str,
    issuer: &'a str,
    cluster_networks: bool,
}

impl FleetSpec<'_> {
    fn text(&self) -> String {
        let edge = format!("edge-{}", &self.version[2..]);
        let networks = if self.cluster_networks {
            "\n    clusterNetworks: [10.0.0.0/8, 100.64.0.0/10]"
        } else {
            ""
        };
        format!(
            "apiVersion: meshfleet.io/v1alpha1
kind: Fleet
metadata:
  name: jobs
spec:
  linkerd:
    version: {version}
    namespace: {namespace}
    trustDomain: {trust_domain}{networks}
  gitops:
    engine: flux
    installMethod: jobs
    jobs: {{image: registry.example/linkerd-kubectl:{edge}}}
    repository: {{url: https://github.com/example/fleet.git}}
  identity:
    trustAnchor: certs/trust-anchor.crt
    issuer: {issuer}
  secrets:
    vault:
      server: https://vault.example:8200
      mount: secret
      path: jobs
  clusters:
    - name: east
      vaultAuthMountPath: kubernetes-east
      apiServer: https://east.example:6443
      network: {{pods: [10.1.0.0/16], services: [10.101.0.0/16]}}
      gateway: {{serviceType: LoadBalancer, addresses: [192.0.2.1]}}
    - name: west
      vaultAuthMountPath: kubernetes-west
      apiServer: https://west.example:6443
      network: {{pods: [10.2.0.0/16], services: [10.102.0.0/16]}}
      gateway: {{serviceType: NodePort, addresses: [192.0.2.2], nodePort: 30143, probe: {{nodePort: 30191}}}}
  links:
    - {{source: east, target: west}}
    - {{source: west, target: east}}
",
            version = self.version,
            namespace = self.namespace,
            trust_domain = self.trust_domain,
            issuer = self.issuer,
        )
    }
}

/// A fleet folder with its anchor bundle, rendered into `gitops/`.
struct RenderedFleet {
    dir: tempfile::TempDir,
}

impl RenderedFleet {
    fn new(spec: &FleetSpec<'_>, bundle: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("certs")).expect("certs");
        std::fs::write(dir.path().join("certs/trust-anchor.crt"), bundle).expect("bundle");
        std::fs::write(dir.path().join("fleet.yaml"), spec.text()).expect("fleet");
        let out = meshfleet(dir.path())
            .args(["render", ".", "--out", "gitops"])
            .output()
            .expect("render");
        assert!(out.status.success(), "render: {:?}", texts(&out));
        Self { dir }
    }

    fn cluster_folder(&self) -> PathBuf {
        self.dir.path().join("gitops").join(CLUSTER)
    }
}

/// The Gateway API CRDs a cluster has before the Jobs run (the fleets say
/// `gatewayAPI: external`: the user installs them). The CLI tells who did by Linkerd's
/// `linkerd.io/created-by` annotation, and reads more when Linkerd's CLI did.
#[derive(Debug, Clone, Copy)]
enum GatewayApiCrds {
    /// The copies Linkerd 2.18's CLI embeds without that annotation: what the
    /// `gateway-api` stage's upstream CRDs look like to the CLI.
    Upstream,
    /// Exactly what `linkerd install --crds --set installGatewayAPI=true` of this release
    /// prints: the experimental channel's HTTPRoute, GRPCRoute, TLSRoute and TCPRoute
    /// CRDs, with the annotation.
    LinkerdCli(&'static str),
}

/// The objects the cluster has before the Jobs run, as the earlier stages and the
/// controllers (cert-manager, External Secrets) would leave them.
fn prerequisites(
    runner: &JobRunner<'_>,
    namespace: &str,
    issuer: &KeyedCertificate,
    signing_anchor: &str,
    gateway_api: GatewayApiCrds,
) {
    let folder = &runner.folder;
    let mut objects: Vec<Value> = documents(&folder.join("namespaces/namespaces.yaml"))
        .into_iter()
        .filter(|o| o["kind"] == "Namespace")
        .collect();
    objects.extend(gateway_api_crds(gateway_api));
    objects.extend(
        documents(&folder.join("identity/trust-anchors.yaml"))
            .into_iter()
            .filter(|o| o["kind"] == "ConfigMap"),
    );
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    objects.push(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "linkerd-identity-issuer", "namespace": namespace},
        "data": {
            "tls.crt": b64(&issuer.cert_pem),
            "tls.key": b64(secrecy::ExposeSecret::expose_secret(&issuer.key_pem)),
            "ca.crt": b64(signing_anchor),
        },
    }));
    runner.rt.block_on(async {
        for object in &objects {
            apply(&runner.client, object).await;
        }
    });
}

/// The Gateway API CRDs as a user or the `gateway-api` stage installs them: the copies
/// Linkerd's CLI embeds, with or without Linkerd's `created-by` annotation.
fn gateway_api_crds(which: GatewayApiCrds) -> Vec<Value> {
    let release = match which {
        GatewayApiCrds::Upstream => FROM,
        GatewayApiCrds::LinkerdCli(release) => release,
    };
    let out = std::process::Command::new(TestEnv::linkerd_cli(release))
        .args([
            "install",
            "--crds",
            "--ignore-cluster",
            "--set",
            "installGatewayAPI=true",
        ])
        .output()
        .expect("linkerd install --crds");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).expect("CRDs parse");
    docs.into_iter()
        .filter(|d| {
            d["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with(".gateway.networking.k8s.io"))
        })
        .map(|mut d| {
            if let (GatewayApiCrds::Upstream, Some(a)) = (which, d["metadata"]["annotations"].as_object_mut())
            {
                a.remove("linkerd.io/created-by");
            }
            d
        })
        .collect()
}

/// Anchors and an issuer signed by the first anchor.
fn anchors_and_issuer(
    count: usize,
    namespace: &str,
    trust_domain: &str,
) -> (Vec<KeyedCertificate>, KeyedCertificate) {
    let now = OffsetDateTime::now_utc();
    let anchors: Vec<KeyedCertificate> = (0..count)
        .map(|_| identity::generate_anchor(now).expect("anchor"))
        .collect();
    let issuer = identity::generate_issuer(
        &anchors[0].cert_pem,
        &anchors[0].key_pem,
        &format!("identity.{namespace}.{trust_domain}"),
        now,
    )
    .expect("issuer");
    (anchors, issuer)
}

fn fingerprints(pem: &str) -> Vec<String> {
    identity::parse_pem_bundle(pem)
        .expect("PEM bundle")
        .into_iter()
        .map(|c| c.sha256)
        .collect()
}

/// A version of every object the Jobs applied: `metadata.generation` where the kind has
/// one (status updates by controllers do not count), else `resourceVersion`.
fn state(runner: &JobRunner<'_>, manifests: &[Value]) -> BTreeMap<String, String> {
    runner.rt.block_on(async {
        let mut versions = BTreeMap::new();
        for object in manifests {
            let live = get(&runner.client, object).await;
            let key = format!(
                "{} {}/{}",
                object["kind"].as_str().unwrap_or_default(),
                object["metadata"]["namespace"].as_str().unwrap_or("-"),
                object["metadata"]["name"].as_str().unwrap_or_default()
            );
            let version = live.map_or_else(
                || "absent".to_string(),
                |l| {
                    l["metadata"]["generation"].as_i64().map_or_else(
                        || l["metadata"]["resourceVersion"].to_string(),
                        |g| format!("generation {g}"),
                    )
                },
            );
            versions.insert(key, version);
        }
        versions
    })
}

fn diff(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: {v} -> {}", after.get(k).map_or("-", String::as_str)))
        .collect()
}

/// Run the four Jobs in the engine's order; each must succeed.
fn run_all(runner: &JobRunner<'_>, what: &str) -> Vec<PodRun> {
    Component::ALL
        .iter()
        .map(|c| {
            let run = runner.run(*c);
            run.expect_success(&format!("{what}: the {} Job", c.short()));
            eprintln!(
                "jobs_cli: {what}: {} Job {:.1}s",
                c.short(),
                run.took.as_secs_f64()
            );
            run
        })
        .collect()
}

fn object(kind: &str, api_version: &str, namespace: Option<&str>, name: &str) -> Value {
    let mut o = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
    if let Some(ns) = namespace {
        o["metadata"]["namespace"] = json!(ns);
    }
    o
}

fn live(runner: &JobRunner<'_>, o: &Value) -> Value {
    runner
        .rt
        .block_on(get(&runner.client, o))
        .unwrap_or_else(|| panic!("{} {} does not exist", o["kind"], o["metadata"]["name"]))
}

/// The issuer Secret, the webhook Secrets and the `caBundle`s: what an upgrade keeps.
fn kept(runner: &JobRunner<'_>, namespace: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let secret = |ns: &str, name: &str| object("Secret", "v1", Some(ns), name);
    for (ns, name) in [(namespace, "linkerd-identity-issuer")]
        .into_iter()
        .chain(CONTROL_PLANE_WEBHOOKS.iter().map(|(_, s)| (namespace, *s)))
        .chain(VIZ_WEBHOOKS.iter().map(|(_, s)| ("linkerd-viz", *s)))
    {
        let l = live(runner, &secret(ns, name));
        out.insert(
            format!("Secret {ns}/{name}"),
            json!([l["metadata"]["resourceVersion"], l["data"]]),
        );
    }
    let webhooks = [
        (
            "MutatingWebhookConfiguration",
            "linkerd-proxy-injector-webhook-config",
        ),
        (
            "ValidatingWebhookConfiguration",
            "linkerd-sp-validator-webhook-config",
        ),
        (
            "ValidatingWebhookConfiguration",
            "linkerd-policy-validator-webhook-config",
        ),
        (
            "MutatingWebhookConfiguration",
            "linkerd-tap-injector-webhook-config",
        ),
    ];
    for (kind, name) in webhooks {
        let l = live(
            runner,
            &object(kind, "admissionregistration.k8s.io/v1", None, name),
        );
        out.insert(
            format!("{kind} {name} caBundle"),
            l["webhooks"][0]["clientConfig"]["caBundle"].clone(),
        );
    }
    let tap = live(
        runner,
        &object(
            "APIService",
            "apiregistration.k8s.io/v1",
            None,
            "v1alpha1.tap.linkerd.io",
        ),
    );
    out.insert("APIService caBundle".into(), tap["spec"]["caBundle"].clone());
    out
}

fn config_map_data(runner: &JobRunner<'_>, namespace: &str, name: &str, key: &str) -> String {
    live(runner, &object("ConfigMap", "v1", Some(namespace), name))["data"][key]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The images of a Deployment's containers.
fn images(runner: &JobRunner<'_>, namespace: &str, name: &str) -> Vec<String> {
    let d = live(runner, &object("Deployment", "apps/v1", Some(namespace), name));
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["image"].as_str().map(ToString::to_string))
        .collect()
}

fn assert_release(runner: &JobRunner<'_>, namespace: &str, version: &str) {
    let edge = format!("edge-{}", &version[2..]);
    for (ns, deployment) in [
        (namespace, "linkerd-destination"),
        (namespace, "linkerd-identity"),
        (namespace, "linkerd-proxy-injector"),
        ("linkerd-viz", "metrics-api"),
        ("linkerd-multicluster", "linkerd-local-service-mirror"),
        ("linkerd-multicluster", "controller-west"),
    ] {
        let images = images(runner, ns, deployment);
        assert!(
            images.iter().all(|i| i.ends_with(&edge)),
            "{ns}/{deployment} runs {images:?}, not {edge}"
        );
    }
    for crd in LINKERD_CRDS {
        let l = live(
            runner,
            &object("CustomResourceDefinition", "apiextensions.k8s.io/v1", None, crd),
        );
        assert_eq!(
            l["metadata"]["annotations"]["linkerd.io/created-by"],
            json!(format!("linkerd/cli {edge}")),
            "{crd}"
        );
    }
}

/// What the CLI renders for an extension when it reads the cluster (no
/// `--ignore-cluster`), as admin: the Jobs' `--ignore-cluster` output must equal it.
fn render_reading_the_cluster(runner: &JobRunner<'_>, args: &[&str]) -> String {
    let out = std::process::Command::new(TestEnv::linkerd_cli(&runner.version))
        .args(args)
        .arg("--kubeconfig")
        .arg(runner.env.kubeconfig())
        .arg("--context")
        .arg(&runner.cluster)
        .output()
        .expect("linkerd");
    assert!(
        out.status.success(),
        "linkerd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn runner<'a>(
    env: &'a PrivateEnv,
    fleet: &RenderedFleet,
    version: &str,
    rt: &'a tokio::runtime::Runtime,
) -> JobRunner<'a> {
    JobRunner {
        env,
        cluster: CLUSTER.to_string(),
        folder: fleet.cluster_folder(),
        version: version.to_string(),
        client: rt.block_on(env.client(CLUSTER)),
        rt,
        kube_cache: tempfile::tempdir().expect("tempdir"),
    }
}

/// Findings 1-6 of issue 10 on one cluster: first install as the Jobs' accounts (the
/// CRDs Job reads nothing, the control plane's pre-install checks are granted, the
/// multicluster Job runs no health checks), the same Jobs again change nothing, an
/// upgrade 2025.4.4 -> 2026.8.3 (`install --crds` would refuse it, `upgrade` would reject
/// the install-only flags) keeps the issuer and the webhook certificates, and a
/// two-anchor bundle with a cert-manager issuer (whose `ca.crt` holds one anchor) is what
/// the proxies trust, before and after.
#[test]
fn jobs_install_rerun_and_upgrade_with_the_real_cli() {
    let started = Instant::now();
    let env = testenv::private(&[CLUSTER]);
    let rt = testenv::runtime();
    let (anchors, issuer) = anchors_and_issuer(2, "linkerd", "cluster.local");
    let bundle: String = anchors.iter().map(|a| a.cert_pem.clone()).collect();
    let spec = |version| FleetSpec {
        version,
        namespace: "linkerd",
        trust_domain: "cluster.local",
        issuer: "cert-manager",
        cluster_networks: true,
    };
    let old = RenderedFleet::new(&spec(FROM), &bundle);
    let new = RenderedFleet::new(&spec(TO), &bundle);
    let first = runner(&env, &old, FROM, &rt);
    prerequisites(
        &first,
        "linkerd",
        &issuer,
        &anchors[0].cert_pem,
        GatewayApiCrds::Upstream,
    );

    // First install, as the Jobs' ServiceAccounts.
    let t = Instant::now();
    let runs = run_all(&first, "install 2025.4.4");
    let install_time = t.elapsed();
    let manifests: Vec<Value> = Component::ALL
        .iter()
        .zip(&runs)
        .flat_map(|(c, r)| r.manifest(*c))
        .collect();
    let issuer_ca = live(
        &first,
        &object("Secret", "v1", Some("linkerd"), "linkerd-identity-issuer"),
    )["data"]["ca.crt"]
        .as_str()
        .map(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .expect("base64")
        })
        .expect("ca.crt");
    assert_eq!(
        fingerprints(&String::from_utf8_lossy(&issuer_ca)).len(),
        1,
        "the premise: cert-manager's ca.crt holds the one anchor that signed the issuer"
    );
    let roots = config_map_data(&first, "linkerd", "linkerd-identity-trust-roots", "ca-bundle.crt");
    assert_eq!(
        fingerprints(&roots),
        fingerprints(&bundle),
        "the installed trust roots are the fleet's bundle"
    );
    let overrides = live(
        &first,
        &object("Secret", "v1", Some("linkerd"), "linkerd-config-overrides"),
    );
    let overrides = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(
                overrides["data"]["linkerd-config-overrides"]
                    .as_str()
                    .expect("overrides"),
            )
            .expect("base64"),
    )
    .expect("utf-8");
    assert!(
        !overrides.contains("PRIVATE KEY"),
        "linkerd-config-overrides holds a private key:\n{overrides}"
    );
    let config = config_map_data(&first, "linkerd", "linkerd-config", "values");
    assert!(
        config.contains("clusterNetworks: 10.0.0.0/8,100.64.0.0/10"),
        "{config}"
    );
    assert_release(&first, "linkerd", FROM);

    // The extensions' --ignore-cluster loses nothing: reading the cluster renders the same.
    let viz = &runs[2];
    let kept_values = viz.scratch.path().join("kept.yaml");
    let viz_args = [
        "viz",
        "install",
        "--set",
        "linkerdNamespace=linkerd,identityTrustDomain=cluster.local,clusterDomain=cluster.local",
        "--values",
        kept_values.to_str().expect("path"),
    ];
    assert_eq!(
        render_reading_the_cluster(&first, &viz_args),
        std::fs::read_to_string(viz.scratch.path().join("viz.yaml")).expect("viz.yaml"),
        "linkerd viz install renders the same with and without --ignore-cluster"
    );
    let values = documents(&Component::Multicluster.stage(&first.folder).join("values.yaml"))[0]["data"]["values.yaml"]
        .as_str()
        .expect("values")
        .to_string();
    let values_file = viz.scratch.path().join("mc-values.yaml");
    std::fs::write(&values_file, values).expect("values");
    assert_eq!(
        render_reading_the_cluster(
            &first,
            &[
                "multicluster",
                "install",
                "--values",
                values_file.to_str().expect("path")
            ]
        ),
        std::fs::read_to_string(runs[3].scratch.path().join("multicluster.yaml")).expect("multicluster.yaml"),
        "linkerd multicluster install renders the same with and without --ignore-cluster"
    );

    // The same Jobs again (Flux re-creates them after their TTL): nothing changes.
    let before = state(&first, &manifests);
    let t = Instant::now();
    run_all(&first, "re-run 2025.4.4");
    let rerun_time = t.elapsed();
    let changed = diff(&before, &state(&first, &manifests));
    assert!(changed.is_empty(), "a re-run changed:\n{}", changed.join("\n"));

    // Upgrade: the version bump renders new Jobs, run with the 2026.8.3 CLI.
    let kept_before = kept(&first, "linkerd");
    let second = runner(&env, &new, TO, &rt);
    let t = Instant::now();
    let runs = run_all(&second, "upgrade to 2026.8.3");
    let upgrade_time = t.elapsed();
    assert_release(&second, "linkerd", TO);
    let kept_after = kept(&second, "linkerd");
    for (what, value) in &kept_before {
        assert_eq!(Some(value), kept_after.get(what), "the upgrade changed {what}");
    }
    let roots = config_map_data(
        &second,
        "linkerd",
        "linkerd-identity-trust-roots",
        "ca-bundle.crt",
    );
    assert_eq!(
        fingerprints(&roots),
        fingerprints(&bundle),
        "the upgrade kept the fleet's bundle"
    );
    let manifests: Vec<Value> = Component::ALL
        .iter()
        .zip(&runs)
        .flat_map(|(c, r)| r.manifest(*c))
        .collect();
    let before = state(&second, &manifests);
    run_all(&second, "re-run 2026.8.3");
    let changed = diff(&before, &state(&second, &manifests));
    assert!(
        changed.is_empty(),
        "a re-run after the upgrade changed:\n{}",
        changed.join("\n")
    );

    // Renewing a webhook certificate: delete its Secret; the next run makes a new one and
    // a webhook `caBundle` that matches it, and the run after changes nothing again.
    let injector = object("Secret", "v1", Some("linkerd"), "linkerd-proxy-injector-k8s-tls");
    let old_cert = live(&second, &injector)["data"]["tls.crt"].clone();
    rt.block_on(pod::delete(&second.client, &injector));
    let renewed = second.run(Component::ControlPlane);
    renewed.expect_success("the control-plane Job after a webhook Secret was deleted");
    let new_cert = live(&second, &injector)["data"]["tls.crt"].clone();
    assert_ne!(new_cert, old_cert, "a new certificate");
    let webhook = live(
        &second,
        &object(
            "MutatingWebhookConfiguration",
            "admissionregistration.k8s.io/v1",
            None,
            "linkerd-proxy-injector-webhook-config",
        ),
    );
    assert_eq!(
        webhook["webhooks"][0]["clientConfig"]["caBundle"], new_cert,
        "the webhook trusts the new certificate"
    );
    let before = state(&second, &manifests);
    second
        .run(Component::ControlPlane)
        .expect_success("the control-plane Job again");
    let changed = diff(&before, &state(&second, &manifests));
    assert!(
        changed.is_empty(),
        "a re-run after the renewal changed:\n{}",
        changed.join("\n")
    );
    eprintln!(
        "jobs_cli: install {:.1}s, re-run {:.1}s, upgrade {:.1}s, test {:.1}s",
        install_time.as_secs_f64(),
        rerun_time.as_secs_f64(),
        upgrade_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// Issue 18, item 4: on a cluster whose Gateway API CRDs are the experimental-channel
/// ones Linkerd's CLI prints (`linkerd install --crds --set installGatewayAPI=true`, so
/// with TLSRoute and TCPRoute, and Linkerd's `created-by` annotation), `linkerd upgrade`
/// (also the control-plane Job's keeping render at a first install) takes them for
/// Linkerd's own and gets every route CRD its chart renders. For each release, on a
/// fresh cluster with the CRDs that release's CLI prints, the Jobs install and re-run as
/// their own accounts; the 2025.4.4 cluster is then upgraded to 2026.8.3.
#[test]
fn jobs_succeed_on_a_cluster_with_the_gateway_api_crds_linkerds_cli_prints() {
    let started = Instant::now();
    let rt = testenv::runtime();
    let (anchors, issuer) = anchors_and_issuer(1, "linkerd", "cluster.local");
    let spec = |version| FleetSpec {
        version,
        namespace: "linkerd",
        trust_domain: "cluster.local",
        issuer: "cert-manager",
        cluster_networks: false,
    };
    let mut times = Vec::new();
    for version in [FROM, TO] {
        let env = testenv::private(&[CLUSTER]);
        let fleet = RenderedFleet::new(&spec(version), &anchors[0].cert_pem);
        let first = runner(&env, &fleet, version, &rt);
        prerequisites(
            &first,
            "linkerd",
            &issuer,
            &anchors[0].cert_pem,
            GatewayApiCrds::LinkerdCli(version),
        );
        for kind in ["httproutes", "grpcroutes", "tlsroutes", "tcproutes"] {
            let crd = live(
                &first,
                &object(
                    "CustomResourceDefinition",
                    "apiextensions.k8s.io/v1",
                    None,
                    &format!("{kind}.gateway.networking.k8s.io"),
                ),
            );
            let annotations = &crd["metadata"]["annotations"];
            assert_eq!(
                annotations["gateway.networking.k8s.io/channel"], "experimental",
                "the premise: {kind}"
            );
            assert_eq!(
                annotations["linkerd.io/created-by"],
                json!(format!("linkerd/cli edge-{}", &version[2..])),
                "the premise: {kind}"
            );
        }
        for what in ["install", "re-run"] {
            let t = Instant::now();
            run_all(&first, &format!("{what} {version}, Linkerd's Gateway API CRDs"));
            times.push(format!("{what} {version} {:.1}s", t.elapsed().as_secs_f64()));
        }
        assert_release(&first, "linkerd", version);
        if version == FROM {
            let new = RenderedFleet::new(&spec(TO), &anchors[0].cert_pem);
            let second = runner(&env, &new, TO, &rt);
            let t = Instant::now();
            run_all(&second, &format!("upgrade to {TO}, Linkerd's Gateway API CRDs"));
            times.push(format!("upgrade to {TO} {:.1}s", t.elapsed().as_secs_f64()));
            assert_release(&second, "linkerd", TO);
        }
    }
    eprintln!(
        "jobs_cli: Linkerd's Gateway API CRDs: {}, test {:.1}s",
        times.join(", "),
        started.elapsed().as_secs_f64()
    );
}

/// One rule of a rendered `rbac.yaml`: where it is and what its comment says.
struct RenderedRule {
    /// Index of its role among the file's ClusterRole and Roles.
    role: usize,
    /// Index in that role's rules.
    index: usize,
    /// The comment: `<step>[, <step>]: <reason>`.
    why: String,
}

impl RenderedRule {
    fn steps(&self) -> Vec<&str> {
        self.why
            .split_once(':')
            .map(|(steps, _)| steps.split(", ").collect())
            .unwrap_or_default()
    }
}

const STEPS: [&str; 5] = ["check", "keep", "render", "apply", "wait"];

/// The rules of a stage's `rbac.yaml` and their comments, in file order.
fn rendered_rules(stage: &Path, roles: &[Value]) -> Vec<RenderedRule> {
    let text = std::fs::read_to_string(stage.join("rbac.yaml")).expect("rbac.yaml");
    let lines: Vec<&str> = text.lines().collect();
    let reasons: Vec<String> = lines
        .windows(2)
        .filter(|w| w[1] == "- apiGroups:")
        .map(|w| {
            w[0].strip_prefix("# ")
                .expect("a comment above every rule")
                .to_string()
        })
        .collect();
    let rules: Vec<(usize, usize)> = roles
        .iter()
        .enumerate()
        .flat_map(|(r, role)| (0..role["rules"].as_array().map_or(0, Vec::len)).map(move |i| (r, i)))
        .collect();
    assert_eq!(
        rules.len(),
        reasons.len(),
        "{}: one comment per rule",
        stage.display()
    );
    rules
        .into_iter()
        .zip(reasons)
        .map(|((role, index), why)| RenderedRule { role, index, why })
        .collect()
}

/// Whether the Job's account may do what a rule grants (its first group, resource, verb
/// and name), by a SubjectAccessReview.
async fn allowed(client: &kube::Client, account: (&str, &str), role: &Value, rule: &Value) -> bool {
    let first = |key: &str| rule[key][0].as_str().map(ToString::to_string);
    let (resource, subresource) = match first("resources") {
        Some(r) => match r.split_once('/') {
            Some((r, s)) => (Some(r.to_string()), Some(s.to_string())),
            None => (Some(r), None),
        },
        None => (None, None),
    };
    let (ns, sa) = account;
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{ns}:{sa}")),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                group: first("apiGroups"),
                resource,
                subresource,
                verb: first("verbs"),
                name: first("resourceNames"),
                namespace: role["metadata"]["namespace"].as_str().map(ToString::to_string),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

/// Apply `role` and wait until the authorizer answers `want` for `rule` (RBAC changes
/// reach it through a watch). `false` when it never does.
fn set_role(runner: &JobRunner<'_>, account: (&str, &str), role: &Value, rule: &Value, want: bool) -> bool {
    runner.rt.block_on(async {
        apply(&runner.client, role).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if allowed(&runner.client, account, role, rule).await == want {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    })
}

/// For each rule of one Job: without it, the Job (re-run on the installed cluster, after
/// the roles it applies were deleted, so that it must create them: the API server checks
/// what a role grants only when it changes) fails, in a step the rule's comment names,
/// with an authorization error.
fn every_rule_is_needed(runner: &JobRunner<'_>, component: Component, installed: &PodRun) -> Vec<String> {
    let stage = component.stage(&runner.folder);
    let objects = runner.rbac(component);
    let account_object = objects
        .iter()
        .find(|o| o["kind"] == "ServiceAccount")
        .expect("ServiceAccount");
    let (account_ns, account_name) = (
        account_object["metadata"]["namespace"]
            .as_str()
            .expect("namespace")
            .to_string(),
        account_object["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_string(),
    );
    let account = (account_ns.as_str(), account_name.as_str());
    let roles: Vec<Value> = objects
        .into_iter()
        .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
        .collect();
    let granted: Vec<Value> = installed
        .manifest(component)
        .into_iter()
        .filter(|o| {
            ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]
                .iter()
                .any(|k| o["kind"] == *k)
        })
        .collect();
    let mut report = Vec::new();
    for rule in rendered_rules(&stage, &roles) {
        let steps = rule.steps();
        assert!(
            !steps.is_empty() && steps.iter().all(|s| STEPS.contains(s)),
            "{}: the comment `{}` names no step of {STEPS:?}",
            stage.display(),
            rule.why
        );
        let full = &roles[rule.role];
        let removed = full["rules"][rule.index].clone();
        let mut cut = full.clone();
        cut["rules"].as_array_mut().expect("rules").remove(rule.index);
        runner.rt.block_on(async {
            for o in &granted {
                pod::delete(&runner.client, o).await;
            }
        });
        assert!(
            set_role(runner, account, &cut, &removed, false),
            "{} rule `{}` is covered by another rule",
            component.short(),
            rule.why
        );
        let run = runner.run_script(component);
        let failed = run.failed_step().map(ToString::to_string);
        set_role(runner, account, full, &removed, true);
        assert!(
            !run.success,
            "the {} Job succeeded without the rule `{}`",
            component.short(),
            rule.why
        );
        let failed = failed.unwrap_or_default();
        assert!(
            steps.contains(&failed.as_str()),
            "without `{}` the {} Job failed in step `{failed}`, which the comment does not name; stderr:\n{}",
            rule.why,
            component.short(),
            run.stderr
        );
        assert!(
            run.stderr.to_lowercase().contains("forbidden"),
            "without `{}` the {} Job failed for another reason:\n{}",
            rule.why,
            component.short(),
            run.stderr
        );
        report.push(format!(
            "{:<13} {:<6} {:>5.1}s  {}\n{:28}{}",
            component.short(),
            failed,
            run.took.as_secs_f64(),
            rule.why,
            "",
            run.first_error().chars().take(200).collect::<String>()
        ));
    }
    // Everything is restored: the Job with all its rules succeeds again.
    runner
        .run_script(component)
        .expect_success("the Job with all its rules, after the trials");
    report
}

/// Every RBAC rule is needed: removing any one makes a step its comment names fail, for
/// each Job, on a fleet with a non-default namespace and trust domain, a Vault issuer,
/// links both ways (so every conditional multicluster rule is there), first installed at
/// 2026.8.3 as the Jobs' accounts.
#[test]
fn every_jobs_rbac_rule_is_needed_by_the_step_it_names() {
    let started = Instant::now();
    let env = testenv::private(&[CLUSTER]);
    let rt = testenv::runtime();
    let (anchors, issuer) = anchors_and_issuer(1, "l5d", "mesh.example");
    let spec = FleetSpec {
        version: TO,
        namespace: "l5d",
        trust_domain: "mesh.example",
        issuer: "vault",
        cluster_networks: false,
    };
    let fleet = RenderedFleet::new(&spec, &anchors[0].cert_pem);
    let main = runner(&env, &fleet, TO, &rt);
    prerequisites(
        &main,
        "l5d",
        &issuer,
        &anchors[0].cert_pem,
        GatewayApiCrds::Upstream,
    );
    let installs = run_all(&main, "install 2026.8.3 in l5d");
    let roots = config_map_data(&main, "l5d", "linkerd-identity-trust-roots", "ca-bundle.crt");
    assert_eq!(fingerprints(&roots), fingerprints(&anchors[0].cert_pem));
    let install_time = started.elapsed();
    // The Jobs' trials touch only their own roles and objects: one thread per Job.
    let reports: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = Component::ALL
            .iter()
            .zip(&installs)
            .map(|(component, installed)| {
                let env = &env;
                let fleet = &fleet;
                scope.spawn(move || {
                    let rt = testenv::runtime();
                    let runner = runner(env, fleet, TO, &rt);
                    every_rule_is_needed(&runner, *component, installed)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let rules: usize = reports.iter().map(Vec::len).sum();
    eprintln!(
        "jobs_cli: {rules} rules, each needed (install {:.1}s, test {:.1}s):\n{}",
        install_time.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        reports.concat().join("\n")
    );
}
