//! Helm values of the Linkerd charts, derived from the plan (PRODUCT.md section 4,
//! steps 3 and 4). Typed structs so a misspelt key is a compile error, serialised to JSON
//! for HelmRelease `spec.values` or Argo CD `helm.valuesObject`.

use serde::Serialize;
use serde_json::Value;

use meshfleet_plan::{ClusterPlan, FleetPlan};

/// `linkerd-crds` values.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CrdsValues {
    /// meshfleet installs the Gateway API CRDs itself (or the user does, `external`);
    /// the chart must not install its own copies (the 2.18 default is true).
    #[serde(rename = "installGatewayAPI")]
    install_gateway_api: bool,
}

/// `linkerd-crds` values.
pub(crate) fn crds(_plan: &FleetPlan) -> Value {
    to_value(&CrdsValues {
        install_gateway_api: false,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ControlPlaneValues<'a> {
    #[serde(rename = "identityTrustAnchorsPEM")]
    identity_trust_anchors_pem: &'a str,
    identity_trust_domain: &'a str,
    cluster_domain: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_networks: Option<String>,
    identity: IdentityValues,
}

#[derive(Serialize)]
struct IdentityValues {
    issuer: IssuerValues,
}

#[derive(Serialize)]
struct IssuerValues {
    /// The issuer Secret is made outside the chart (cert-manager or External Secrets)
    /// with `tls.crt`, `tls.key` and `ca.crt`.
    scheme: &'static str,
}

/// `linkerd-control-plane` values: the fleet's anchor bundle and the external issuer.
pub(crate) fn control_plane(plan: &FleetPlan) -> Value {
    to_value(&ControlPlaneValues {
        identity_trust_anchors_pem: &plan.identity.trust_anchor_pem,
        identity_trust_domain: &plan.linkerd.trust_domain,
        cluster_domain: &plan.linkerd.cluster_domain,
        cluster_networks: plan
            .linkerd
            .cluster_networks_set
            .then(|| plan.linkerd.cluster_networks.join(",")),
        identity: IdentityValues {
            issuer: IssuerValues {
                scheme: "kubernetes.io/tls",
            },
        },
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VizValues<'a> {
    linkerd_namespace: &'a str,
    identity_trust_domain: &'a str,
    cluster_domain: &'a str,
}

/// `linkerd-viz` values, kept consistent with the control plane.
pub(crate) fn viz(plan: &FleetPlan) -> Value {
    to_value(&VizValues {
        linkerd_namespace: &plan.linkerd.namespace,
        identity_trust_domain: &plan.linkerd.trust_domain,
        cluster_domain: &plan.linkerd.cluster_domain,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MulticlusterValues<'a> {
    /// Helm does not fill these from `linkerd-config` (the CLI does); without them the
    /// gateway identity annotation is wrong for a non-default namespace or trust domain.
    linkerd_namespace: &'a str,
    identity_trust_domain: &'a str,
    gateway: GatewayValues,
    controllers: Vec<ControllerValues<'a>>,
    remote_mirror_service_account: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    remote_mirror_service_account_name: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GatewayValues {
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    probe: Option<GatewayProbeValues>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GatewayProbeValues {
    path: String,
    port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    node_port: Option<u16>,
    seconds: u32,
}

#[derive(Serialize)]
struct ControllerValues<'a> {
    link: LinkRefValues<'a>,
    gateway: ControllerGatewayValues,
}

#[derive(Serialize)]
struct LinkRefValues<'a> {
    #[serde(rename = "ref")]
    reference: NameValue<'a>,
}

#[derive(Serialize)]
struct NameValue<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct ControllerGatewayValues {
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    probe: Option<PortValue>,
}

#[derive(Serialize)]
struct PortValue {
    port: u16,
}

/// `linkerd-multicluster` values of one cluster: its gateway, one controller per
/// outgoing link, one remote-access account per incoming link.
pub(crate) fn multicluster<'a>(plan: &'a FleetPlan, cluster: &'a ClusterPlan) -> Value {
    let gateway = match &cluster.gateway {
        None => GatewayValues {
            enabled: false,
            service_type: None,
            port: None,
            node_port: None,
            probe: None,
        },
        Some(gw) => GatewayValues {
            enabled: true,
            service_type: Some(gw.service_type.as_str()),
            port: Some(gw.port),
            node_port: gw.node_port,
            probe: Some(GatewayProbeValues {
                path: gw.probe_path.clone(),
                port: gw.probe_port,
                node_port: gw.probe_node_port,
                seconds: gw.probe_period.seconds(),
            }),
        },
    };
    let controllers = cluster
        .outgoing
        .iter()
        .map(|link| ControllerValues {
            link: LinkRefValues {
                reference: NameValue {
                    name: link.link_name(),
                },
            },
            // The controller probes `probe-<target>` on this port, and the Link's
            // endpoints carry `probeSpec.port`: both come from the same value, so a
            // NodePort gateway's probe (e.g. 30191) is routable (linkerd2#14451).
            gateway: ControllerGatewayValues {
                enabled: link.gateway.is_some(),
                probe: link.gateway.as_ref().map(|g| PortValue { port: g.probe_port }),
            },
        })
        .collect();
    let accounts = cluster.remote_access_service_accounts();
    to_value(&MulticlusterValues {
        linkerd_namespace: &plan.linkerd.namespace,
        identity_trust_domain: &plan.linkerd.trust_domain,
        gateway,
        controllers,
        remote_mirror_service_account: !accounts.is_empty(),
        remote_mirror_service_account_name: accounts,
    })
}

fn to_value<T: Serialize>(value: &T) -> Value {
    // Serialising these plain structs cannot fail.
    serde_json::to_value(value).unwrap_or(Value::Null)
}
