//! `meshfleet verify` on the mixed fleet at edge-26.8.3 with the test environment's data
//! plane (`up --pod-cidr`, `mesh --data-plane`): per link, its meshed server (injected by
//! the real proxy injector's webhook) and its client Job run with Linkerd's real proxy;
//! the client's result comes back as a kubelet reports it, in the Job pod's termination
//! message. Then the faults it must name, each made the way it happens to a user:
//! - the target's gateway scaled to 0 (`gateway-not-alive`);
//! - the target's gateway policy narrowed so the client's identity is not allowed (the
//!   chart's `MeshTLSAuthentication/any-meshed` limited to one namespace), enforced by
//!   the real policy controller and the gateway's proxy (`policy-denied`);
//! - the source's Link edited to another gateway identity (a Link generated against a
//!   control plane of another trust domain): the client's proxy refuses the gateway's
//!   certificate (`identity-mismatch`);
//! - beta alone moved to a new anchor and dropped the old one from its bundle (its issuer
//!   re-signed by the new anchor, the control plane and gateway restarted, as at the end
//!   of a rotation) while alpha's proxies still hold certificates of the old chain: the
//!   old anchor retired too early on one cluster. The proxies refuse each other's
//!   certificates (`anchor-not-trusted`). meshfleet's own `trust rotate next` refuses to
//!   retire an anchor before every cluster is recertified (anchor_rotation tests).

use base64::Engine as _;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use super::RELEASES;
use super::scenario::Scenario;

/// The mixed fleet's trust domain and control-plane namespace.
const TRUST_DOMAIN: &str = "mesh.example";
const LINKERD_NS: &str = "l5d";

fn verify(s: &Scenario, args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["-o", "json", "verify", "."];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = s.meshfleet(&all);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("verify prints JSON ({e}): {stdout}\n{stderr}"));
    (code, report, stderr)
}

#[test]
fn verify_reaches_every_link_and_names_each_fault() {
    let s = super::mixed_with_data_plane(RELEASES[1]);
    let started = std::time::Instant::now();
    let (code, report, stderr) = verify(&s, &["--timeout", "120"]);
    eprintln!("verify, every link: {:.0} s", started.elapsed().as_secs_f64());
    let links = report["links"].as_array().expect("links");
    for l in links {
        eprintln!(
            "{} via {}: reached {}, {} ms, server saw {}",
            l["link"], l["path"], l["reached"], l["latency_ms"], l["peer_identity"]
        );
    }
    assert_eq!(links.len(), 4, "every link of the mixed fleet: {report:#}");
    assert_eq!(code, 0, "verify green on every link: {report:#}\n{stderr}");
    let gateway_id =
        format!("linkerd-gateway.linkerd-multicluster.serviceaccount.identity.{LINKERD_NS}.{TRUST_DOMAIN}");
    for link in links {
        let id = link["id"].as_str().expect("id");
        assert_eq!(link["reached"], true, "{link:#}");
        assert!(link["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{link:#}");
        assert_eq!(link["cleaned_up"], true, "{link:#}");
        let client_id = format!(
            "verify-client.meshfleet-verify-{id}.serviceaccount.identity.{LINKERD_NS}.{TRUST_DOMAIN}"
        );
        assert_eq!(link["client_identity"], client_id.as_str());
        if id == "alpha-to-gamma" {
            // Pod to pod: the server's proxy saw the client's own identity.
            assert_eq!(link["path"], "remote-discovery");
            assert_eq!(link["peer_identity"], client_id.as_str(), "{link:#}");
        } else {
            // The gateway terminates the client's connection: the server sees it.
            assert_eq!(link["path"], "gateway");
            assert_eq!(link["peer_identity"], gateway_id.as_str(), "{link:#}");
        }
    }
    // Nothing left behind on any cluster.
    for cluster in ["alpha", "beta", "gamma"] {
        let left = s.kubectl(
            cluster,
            &["get", "namespaces", "-l", "meshfleet.io/verify", "-o", "name"],
        );
        assert!(left.trim().is_empty(), "{cluster} keeps {left}");
    }

    // The faults, one link each; every report is printed before anything is asserted.
    let alpha_gateway = || {
        s.kubectl(
            "alpha",
            &[
                "-n",
                "linkerd-multicluster",
                "scale",
                "deployment/linkerd-gateway",
                "--replicas=0",
            ],
        );
        verify(&s, &["--link", "beta-to-alpha", "--timeout", "20"])
    };
    let scaled = alpha_gateway();
    // Only the `apps` namespace may cross into beta; the verify client is elsewhere.
    let apps_only = format!(
        r#"{{"spec":{{"identities":["*.apps.serviceaccount.identity.{LINKERD_NS}.{TRUST_DOMAIN}"]}}}}"#
    );
    patch_multicluster(&s, "beta", "meshtlsauthentication/any-meshed", &apps_only);
    let denied = verify(&s, &["--link", "alpha-to-beta", "--timeout", "20"]);
    patch_multicluster(
        &s,
        "beta",
        "meshtlsauthentication/any-meshed",
        r#"{"spec":{"identities":["*"]}}"#,
    );
    // alpha's Link to beta now names a gateway of another trust domain.
    let wrong_id =
        format!("linkerd-gateway.linkerd-multicluster.serviceaccount.identity.{LINKERD_NS}.other.example");
    patch_multicluster(
        &s,
        "alpha",
        "link/beta-np",
        &format!(r#"{{"spec":{{"gatewayIdentity":"{wrong_id}"}}}}"#),
    );
    let mismatch = verify(&s, &["--link", "alpha-to-beta", "--timeout", "20"]);
    for (fault, (code, report, _)) in [
        ("scaled to 0", &scaled),
        ("denied", &denied),
        ("wrong identity", &mismatch),
    ] {
        let l = &report["links"][0];
        eprintln!(
            "fault {fault}: exit {code}, cause {}, detail {}, hint {}",
            l["cause"], l["detail"], l["hint"]
        );
    }
    for ((code, report, stderr), cause, hint_has) in [
        (&scaled, "gateway-not-alive", "linkerd-multicluster"),
        (&denied, "policy-denied", "any-meshed"),
        (&mismatch, "identity-mismatch", "beta-np"),
    ] {
        assert_eq!(*code, 1, "a failed link is exit 1: {report:#}\n{stderr}");
        let link = &report["links"][0];
        assert_eq!(link["reached"], false, "{link:#}");
        assert_eq!(link["ok"], false, "{link:#}");
        assert_eq!(link["cause"], cause, "{link:#}");
        assert!(
            link["hint"].as_str().is_some_and(|h| h.contains(hint_has)),
            "the hint names `{hint_has}`: {link:#}"
        );
        assert_eq!(link["cleaned_up"], true, "{link:#}");
    }
    let detail = mismatch.1["links"][0]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        detail.contains(&wrong_id),
        "the detail names the identity the Link expects: {detail}"
    );

    // Last, as it breaks beta for good: the old anchor retired too early on beta.
    patch_multicluster(
        &s,
        "alpha",
        "link/beta-np",
        &format!(r#"{{"spec":{{"gatewayIdentity":"{gateway_id}"}}}}"#),
    );
    retire_anchor_on(&s, "beta");
    let (code, report, stderr) = verify(&s, &["--link", "alpha-to-beta", "--timeout", "20"]);
    let link = &report["links"][0];
    eprintln!(
        "fault anchor retired on beta: exit {code}, cause {}, detail {}, hint {}",
        link["cause"], link["detail"], link["hint"]
    );
    assert_eq!(code, 1, "{report:#}\n{stderr}");
    assert_eq!(link["reached"], false, "{link:#}");
    assert_eq!(link["cause"], "anchor-not-trusted", "{link:#}");
    let detail = link["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("`beta` does not trust the anchor that signed `alpha`'s issuer"),
        "{link:#}"
    );
    assert!(
        link["hint"].as_str().is_some_and(|h| h.contains("trust rotate")),
        "{link:#}"
    );
    assert_eq!(link["cleaned_up"], true, "{link:#}");
}

/// A merge patch of an object in the multicluster extension's namespace.
fn patch_multicluster(s: &Scenario, cluster: &str, object: &str, patch: &str) {
    s.kubectl(
        cluster,
        &[
            "-n",
            "linkerd-multicluster",
            "patch",
            object,
            "--type=merge",
            "-p",
            patch,
        ],
    );
}

/// `cluster` alone ends an anchor rotation: a new anchor, its issuer signed by it, the
/// bundle holding only the new anchor, the control plane and the gateway restarted
/// (what `trust rotate status` lists), while the other clusters keep the old anchor.
fn retire_anchor_on(s: &Scenario, cluster: &str) {
    use meshfleet_core::identity;
    let now = time::OffsetDateTime::now_utc();
    let anchor = identity::generate_anchor(now).expect("anchor");
    let issuer = identity::generate_issuer(
        &anchor.cert_pem,
        &anchor.key_pem,
        &format!("identity.{LINKERD_NS}.{TRUST_DOMAIN}"),
        now,
    )
    .expect("issuer");
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    // Through a 0600 file, not the command line: the key is a secret even here.
    let patch = s.dir().join("issuer-patch.json");
    std::fs::write(
        &patch,
        json!({"data": {
            "tls.crt": b64(&issuer.cert_pem),
            "tls.key": b64(issuer.key_pem.expose_secret()),
            "ca.crt": b64(&anchor.cert_pem),
        }})
        .to_string(),
    )
    .expect("patch file");
    std::fs::set_permissions(&patch, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("0600");
    let patch_arg = patch.to_string_lossy().into_owned();
    s.kubectl(
        cluster,
        &[
            "-n",
            LINKERD_NS,
            "patch",
            "secret/linkerd-identity-issuer",
            "--type=merge",
            "--patch-file",
            &patch_arg,
        ],
    );
    std::fs::remove_file(&patch).expect("remove the patch file");
    let bundle = json!({"data": {"ca-bundle.crt": anchor.cert_pem}}).to_string();
    s.kubectl(
        cluster,
        &[
            "-n",
            LINKERD_NS,
            "patch",
            "configmap/linkerd-identity-trust-roots",
            "--type=merge",
            "-p",
            &bundle,
        ],
    );
    let control_plane = [
        "deploy/linkerd-identity",
        "deploy/linkerd-destination",
        "deploy/linkerd-proxy-injector",
    ];
    for (namespace, deployments) in [
        (LINKERD_NS, &control_plane[..]),
        ("linkerd-multicluster", &["deploy/linkerd-gateway"][..]),
    ] {
        let mut args = vec!["-n", namespace, "rollout", "restart"];
        args.extend_from_slice(deployments);
        s.kubectl(cluster, &args);
        for d in deployments {
            s.kubectl(
                cluster,
                &["-n", namespace, "rollout", "status", d, "--timeout=300s"],
            );
        }
    }
}
