//! `meshfleet verify` on the mixed fleet at edge-26.8.3 with the test environment's data
//! plane (`up --pod-cidr`, `mesh --data-plane`): per link, its meshed server (injected by
//! the real proxy injector's webhook) and its client Job run with Linkerd's real proxy;
//! the client's result comes back as a kubelet reports it, in the Job pod's termination
//! message. Then one fault it must name: the target's gateway scaled to 0.

use serde_json::Value;

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
fn verify_reaches_every_link_and_names_a_gateway_scaled_to_zero() {
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

    // The fault: alpha's gateway (beta's and gamma's target) scaled to 0.
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
    let (code, report, stderr) = verify(&s, &["--link", "beta-to-alpha", "--timeout", "20"]);
    assert_eq!(code, 1, "a failed link is exit 1: {report:#}\n{stderr}");
    let link = &report["links"][0];
    assert_eq!(link["reached"], false, "{link:#}");
    assert_eq!(link["cause"], "gateway-not-alive", "{link:#}");
    assert!(
        link["hint"]
            .as_str()
            .is_some_and(|h| h.contains("linkerd-multicluster")),
        "{link:#}"
    );
    assert_eq!(link["cleaned_up"], true, "{link:#}");
}
