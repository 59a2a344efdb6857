//! For every link of several fleets (not only the examples), the Link, the controller
//! entry, both credentials ExternalSecrets and the remote-access account agree as the
//! Linkerd reference requires.

use std::collections::BTreeMap;

use meshfleet_core::duration::parse_go_duration;
use serde_json::Value;

use crate::support::{TempFleet, render_files, rendered_objects};

const MESH_NODEPORT: &str = "\
apiVersion: meshfleet.io/v1alpha1
kind: Fleet
metadata:
  name: mesh
spec:
  linkerd:
    version: 2025.10.7
    namespace: l5d
    trustDomain: mesh.example
    clusterDomain: cluster.local
  gitops:
    engine: flux
    repository: {url: https://git.example/mesh.git}
  identity: {trustAnchor: anchor.crt, issuer: vault}
  secrets:
    vault: {server: https://vault.example:8200, mount: kv, path: mesh}
  clusters:
    - name: a
      vaultAuthMountPath: kubernetes-a
      linkName: alpha
      apiServer: https://a.example:6443
      network: {pods: [10.10.0.0/16], services: [10.110.0.0/16]}
      gateway: {serviceType: NodePort, addresses: [192.0.2.10, a.example], nodePort: 31000, probe: {nodePort: 31001, period: 10s}}
    - name: b
      vaultAuthMountPath: kubernetes-b
      apiServer: https://b.example:6443
      network: {pods: [10.20.0.0/16], services: [10.120.0.0/16]}
      gateway: {addresses: [b.example], port: 4443, probe: {path: /live, period: 7s}}
    - name: c
      vaultAuthMountPath: kubernetes-c
      apiServer: https://c.example:6443
      network: {pods: [10.30.0.0/16], services: [10.130.0.0/16]}
      gateway: {serviceType: ClusterIP, addresses: [10.30.0.100]}
  topology: {fullMesh: true}
  links:
    - {source: a, target: c, mode: remote-discovery, remoteDiscoverySelector: 'tier in (db,cache)'}
";

/// The gateway as written in `MESH_NODEPORT`, by cluster: (link name, dialled port, probe port).
fn expected_gateways() -> BTreeMap<&'static str, (&'static str, &'static str, u64)> {
    BTreeMap::from([
        ("a", ("alpha", "31000", 31001)),
        ("b", ("b", "4443", 4191)),
        ("c", ("c", "4143", 4191)),
    ])
}

fn helm_values<'a>(objects: &'a [(String, Value)], cluster: &str, chart: &str) -> &'a Value {
    objects
        .iter()
        .find(|(p, o)| p == &format!("{cluster}/{chart}/helm-release.yaml") && o["kind"] == "HelmRelease")
        .map_or_else(
            || panic!("no {chart} HelmRelease for {cluster}"),
            |(_, o)| &o["spec"]["values"],
        )
}

#[test]
fn every_link_agrees_with_its_controller_credentials_and_remote_access() {
    let fleet = TempFleet::new(MESH_NODEPORT);
    let files = render_files(fleet.path());
    let objects = rendered_objects(&files);
    let gateways = expected_gateways();
    let mut links_seen = 0;
    for source in ["a", "b", "c"] {
        let values = helm_values(&objects, source, "linkerd-multicluster");
        let controllers = values["controllers"].as_array().expect("controllers");
        let links: Vec<&Value> = objects
            .iter()
            .filter(|(p, o)| p.starts_with(&format!("{source}/links/")) && o["kind"] == "Link")
            .map(|(_, o)| o)
            .collect();
        assert_eq!(links.len(), 2, "{source}: full mesh of three");
        assert_eq!(controllers.len(), 2, "{source}: one controller per outgoing link");
        for link in links {
            links_seen += 1;
            let name = link["metadata"]["name"].as_str().expect("name");
            let spec = &link["spec"];
            assert_eq!(link["metadata"]["namespace"], "linkerd-multicluster");
            assert_eq!(spec["targetClusterName"], name);
            assert_eq!(
                spec["clusterCredentialsSecret"],
                format!("cluster-credentials-{name}")
            );
            assert_eq!(spec["targetClusterLinkerdNamespace"], "l5d");
            assert_eq!(spec["targetClusterDomain"], "cluster.local");
            let (target, (_, port, probe_port)) = gateways
                .iter()
                .find(|(_, (link_name, _, _))| *link_name == name)
                .map(|(t, g)| (*t, *g))
                .expect("link names a cluster");
            let controller = controllers
                .iter()
                .find(|c| c["link"]["ref"]["name"] == name)
                .expect("controller for the link");
            let gateway_mode = !(source == "a" && target == "c");
            assert_eq!(
                controller["gateway"]["enabled"], gateway_mode,
                "{source}->{target}"
            );
            if gateway_mode {
                assert_eq!(
                    spec["gatewayPort"], port,
                    "{source}->{target}: dialled port (NodePort for NodePort)"
                );
                assert_eq!(spec["probeSpec"]["port"], probe_port.to_string());
                assert_eq!(
                    controller["gateway"]["probe"]["port"], probe_port,
                    "probe port of the controller = Link"
                );
                assert_eq!(
                    spec["gatewayIdentity"],
                    "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.l5d.mesh.example"
                );
                assert!(parse_go_duration(spec["probeSpec"]["period"].as_str().expect("period")).is_ok());
                assert!(spec["gatewayPort"].is_string() && spec["probeSpec"]["port"].is_string());
                assert_eq!(
                    spec["selector"]["matchLabels"]["mirror.linkerd.io/exported"],
                    "true"
                );
            } else {
                for field in [
                    "gatewayAddress",
                    "gatewayPort",
                    "gatewayIdentity",
                    "probeSpec",
                    "selector",
                ] {
                    assert!(spec[field].is_null(), "remote-discovery link has {field}");
                }
                assert_eq!(
                    spec["remoteDiscoverySelector"]["matchExpressions"][0]["operator"],
                    "In"
                );
            }
            if target == "a" {
                assert_eq!(spec["gatewayAddress"], "192.0.2.10,a.example");
            }
            // Both credentials Secrets.
            let secrets: Vec<&Value> = objects
                .iter()
                .filter(|(p, o)| {
                    p == &format!("{source}/links/link-{name}.yaml") && o["kind"] == "ExternalSecret"
                })
                .map(|(_, o)| o)
                .collect();
            assert_eq!(secrets.len(), 2);
            for secret in &secrets {
                assert_eq!(
                    secret["spec"]["target"]["name"],
                    format!("cluster-credentials-{name}")
                );
                assert_eq!(
                    secret["spec"]["target"]["template"]["type"],
                    "mirror.linkerd.io/remote-kubeconfig"
                );
                assert_eq!(
                    secret["spec"]["data"][0]["remoteRef"]["key"],
                    format!("mesh/credentials/{source}-to-{target}")
                );
                assert_eq!(secret["spec"]["data"][0]["remoteRef"]["property"], "kubeconfig");
            }
            let in_linkerd = secrets
                .iter()
                .find(|s| s["metadata"]["namespace"] == "l5d")
                .expect("copy in the linkerd namespace");
            let meta = &in_linkerd["spec"]["target"]["template"]["metadata"];
            assert_eq!(meta["labels"]["multicluster.linkerd.io/cluster-name"], name);
            assert_eq!(
                meta["annotations"]["multicluster.linkerd.io/trust-domain"],
                "mesh.example"
            );
            assert_eq!(
                meta["annotations"]["multicluster.linkerd.io/cluster-domain"],
                "cluster.local"
            );
            assert!(
                secrets
                    .iter()
                    .any(|s| s["metadata"]["namespace"] == "linkerd-multicluster")
            );
            // The target grants this source remote access.
            let target_values = helm_values(&objects, target, "linkerd-multicluster");
            let accounts = target_values["remoteMirrorServiceAccountName"]
                .as_array()
                .expect("accounts");
            assert!(accounts.contains(&Value::from(format!(
                "linkerd-service-mirror-remote-access-{source}"
            ))));
            assert_eq!(accounts.len(), 2);
            assert_eq!(target_values["linkerdNamespace"], "l5d");
            assert_eq!(target_values["identityTrustDomain"], "mesh.example");
        }
    }
    assert_eq!(links_seen, 6);
    // The NodePort gateway exposes the ports the Links dial.
    let a = helm_values(&objects, "a", "linkerd-multicluster");
    assert_eq!(a["gateway"]["serviceType"], "NodePort");
    assert_eq!(a["gateway"]["nodePort"], 31000);
    assert_eq!(a["gateway"]["probe"]["nodePort"], 31001);
    assert_eq!(a["gateway"]["probe"]["seconds"], 10);
    // The control plane carries the fleet's bundle and the external issuer.
    let cp = helm_values(&objects, "a", "linkerd-control-plane");
    assert!(
        cp["identityTrustAnchorsPEM"]
            .as_str()
            .expect("pem")
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert_eq!(cp["identity"]["issuer"]["scheme"], "kubernetes.io/tls");
    assert_eq!(cp["identityTrustDomain"], "mesh.example");
}
