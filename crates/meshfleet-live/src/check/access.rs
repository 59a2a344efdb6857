//! A link's kubeconfig: what it says (`credentials-kubeconfig`) and whether the target
//! accepts it (`credentials-access`, phase 2).
//!
//! The kubeconfig inside `cluster-credentials-<target>` is what the source's service
//! mirror uses to watch the target. Its `server` is the target's `apiServer` as the
//! SOURCE cluster reaches it (a VPN name, a load balancer), which this machine often
//! cannot reach. So the target is dialled at the address of the user's own context for
//! it, with the link's CA and token: that proves what matters (the token is accepted,
//! the inline CA is the one that signs the target's serving certificate, and the remote
//! account may get/list/watch services in all namespaces), while the `server` itself is
//! compared with the fleet's `apiServer` and must not be a loopback address.
//!
//! The kubeconfig comes from a cluster, so it is data, never configuration: meshfleet
//! builds the client itself from the CA and the token only, and never runs an `exec` or
//! auth-provider plugin, nor reads a file, that such a kubeconfig names.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use kube::config::Kubeconfig;
use secrecy::{ExposeSecret as _, SecretString};
use x509_parser::prelude::Pem;

use super::snapshot::{ClusterState, Snapshot};
use crate::cluster::Kubeconfigs;
use crate::kube_failure::{self, KubeFailure};
use meshfleet_fleet::defaults;
use meshfleet_fleet::sensitive::{PemMistake, url_without_credentials};
use meshfleet_plan::{FleetPlan, LinkPlan};

/// The verbs the service mirror needs on services, cluster-wide.
pub(super) const VERBS: [&str; 3] = ["get", "list", "watch"];

/// The outcome of trying each link's credentials, by (source, target) cluster name.
pub(super) type Probes = BTreeMap<(String, String), Access>;

/// What the target said to a link's credentials.
#[derive(Debug)]
pub(crate) enum Access {
    /// The token was accepted.
    Verified {
        /// The address dialled.
        route: String,
        /// Verbs on services the account may NOT use.
        denied: Vec<&'static str>,
    },
    /// The target refused or could not be talked to with these credentials.
    Failed {
        /// The address dialled.
        route: String,
        /// What happened.
        reason: String,
        /// Why, roughly.
        kind: FailureKind,
    },
}

/// Why a probe failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// The token was rejected.
    Unauthorized,
    /// TLS failed: the inline CA does not sign the server's certificate.
    Tls,
    /// Anything else (network, timeout).
    Other,
}

/// Usable credentials from a link's kubeconfig.
pub(crate) struct RemoteCredentials {
    server: String,
    ca_der: Vec<Vec<u8>>,
    token: SecretString,
    tls_server_name: Option<String>,
}

impl RemoteCredentials {
    /// The kubeconfig's `server`.
    pub(crate) fn server(&self) -> &str {
        &self.server
    }

    /// The token (`import` reads which account it was issued for).
    pub(crate) fn token(&self) -> &SecretString {
        &self.token
    }
}

impl std::fmt::Debug for RemoteCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteCredentials")
            .field("server", &self.server)
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// What a link's kubeconfig says.
#[derive(Debug, Default)]
pub(crate) struct KubeconfigReport {
    /// Everything wrong with it; empty when it is as the fleet wants.
    pub problems: Vec<String>,
    /// Its `server`.
    pub server: Option<String>,
    /// The CA and token, when both are there and readable.
    pub credentials: Option<RemoteCredentials>,
}

/// The kubeconfig the source's controller reads (the copy in the multicluster
/// namespace), else the destination controller's copy.
pub(super) fn link_kubeconfig<'s>(
    plan: &FleetPlan,
    link: &LinkPlan,
    state: &'s ClusterState,
) -> Option<&'s SecretString> {
    [defaults::MULTICLUSTER_NAMESPACE, plan.linkerd.namespace.as_str()]
        .iter()
        .find_map(|ns| {
            state
                .credentials
                .get(&((*ns).to_string(), link.credentials_secret()))?
                .as_ref()
                .ok()?
                .as_ref()?
                .kubeconfig
                .as_ref()
        })
}

/// Judge a link's kubeconfig; `expected_server` is the target's `apiServer` in the fleet.
pub(crate) fn inspect(text: &SecretString, expected_server: Option<&str>) -> KubeconfigReport {
    let mut report = KubeconfigReport::default();
    let config = match Kubeconfig::from_yaml(text.expose_secret()) {
        Ok(config) => config,
        Err(e) => {
            // Where and what kind of mistake only: the text around it holds the token.
            report.problems.push(format!(
                "it is not a valid kubeconfig: {}",
                kube_failure::kubeconfig_problem(&e)
            ));
            return report;
        }
    };
    for (what, n) in [
        ("cluster", config.clusters.len()),
        ("user", config.auth_infos.len()),
        ("context", config.contexts.len()),
    ] {
        if n != 1 {
            report.problems.push(format!(
                "it has {} (exactly one is wanted)",
                super::plural(n, what)
            ));
        }
    }
    let context = config.contexts.first().and_then(|c| c.context.as_ref());
    match (&config.current_context, config.contexts.first()) {
        (Some(current), Some(only)) if *current == only.name => {}
        _ => report
            .problems
            .push("`current-context` does not name its context".into()),
    }
    let cluster = config.clusters.first().and_then(|c| c.cluster.as_ref());
    let user = config.auth_infos.first().and_then(|u| u.auth_info.as_ref());
    if let (Some(context), Some(first_cluster), Some(first_user)) =
        (context, config.clusters.first(), config.auth_infos.first())
        && (context.cluster != first_cluster.name
            || context.user.as_deref() != Some(first_user.name.as_str()))
    {
        report
            .problems
            .push("its context does not refer to its cluster and user".into());
    }
    let Some(cluster) = cluster else {
        report.problems.push("it has no cluster entry".into());
        return report;
    };
    report.server = cluster.server.as_deref().map(url_without_credentials);
    match report.server.as_deref() {
        None => report.problems.push("its cluster has no `server`".into()),
        Some(server) => {
            if !server.starts_with("https://") {
                report
                    .problems
                    .push(format!("`server: {server}` is not an https:// URL"));
            }
            if is_loopback(server) {
                report.problems.push(format!(
                    "`server: {server}` is a loopback address, which the source cluster's controller cannot reach"
                ));
            }
            if let Some(expected) = expected_server
                && server.trim_end_matches('/') != expected.trim_end_matches('/')
            {
                report.problems.push(format!(
                    "`server: {server}` is not the fleet's `apiServer` of the target, `{expected}`"
                ));
            }
        }
    }
    if let Some(path) = &cluster.certificate_authority {
        report.problems.push(format!(
            "the CA is a file path (`{path}`), which does not exist in the controller's pod; inline it as `certificate-authority-data`"
        ));
    }
    if cluster.insecure_skip_tls_verify == Some(true) {
        report.problems.push("`insecure-skip-tls-verify` is set".into());
    }
    let ca_der = match cluster.certificate_authority_data.as_deref().map(decode_ca) {
        None => {
            report
                .problems
                .push("it has no inline CA (`certificate-authority-data`)".into());
            None
        }
        Some(Err(mistake)) => {
            report
                .problems
                .push(format!("`certificate-authority-data`: {mistake}"));
            None
        }
        Some(Ok(der)) => Some(der),
    };
    let token = match user {
        None => {
            report.problems.push("it has no user entry".into());
            None
        }
        Some(user) => {
            let mut other = Vec::new();
            if user.exec.is_some() {
                other.push("`exec`");
            }
            if user.auth_provider.is_some() {
                other.push("`auth-provider`");
            }
            if user.token_file.is_some() {
                other.push("`tokenFile`");
            }
            if user.client_certificate.is_some() || user.client_key.is_some() {
                other.push("client certificate files");
            }
            if user.username.is_some() || user.password.is_some() {
                other.push("a username and password");
            }
            if !other.is_empty() {
                report.problems.push(format!(
                    "its user authenticates with {}; a link uses the remote-access ServiceAccount's token",
                    other.join(", ")
                ));
            }
            let token = user
                .token
                .clone()
                .filter(|t| !t.expose_secret().trim().is_empty());
            if token.is_none() {
                report.problems.push("its user has no `token`".into());
            }
            token
        }
    };
    if let (Some(server), Some(ca_der), Some(token)) = (cluster.server.clone(), ca_der, token) {
        report.credentials = Some(RemoteCredentials {
            server,
            ca_der,
            token,
            tls_server_name: cluster.tls_server_name.clone(),
        });
    }
    report
}

/// What is wrong with `certificate-authority-data`; never its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum CaDataMistake {
    /// The field does not decode.
    #[error("it is not valid base64")]
    Base64,
    /// The decoded text is not PEM.
    #[error("{0}")]
    Pem(#[source] PemMistake),
    /// PEM, but without a certificate.
    #[error("it holds no CERTIFICATE block")]
    NoCertificate,
}

impl meshfleet_fleet::diagnostic::Hint for CaDataMistake {
    fn hint(&self) -> Option<String> {
        // The `credentials` check that quotes it says how to recreate the Secret.
        None
    }
}

/// DER certificates of a base64 PEM bundle.
fn decode_ca(data: &str) -> Result<Vec<Vec<u8>>, CaDataMistake> {
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|_| CaDataMistake::Base64)?;
    let mut ders = Vec::new();
    for block in Pem::iter_from_buffer(&pem) {
        let block = block.map_err(|e| CaDataMistake::Pem(PemMistake::from_x509(&e)))?;
        if block.label == "CERTIFICATE" {
            ders.push(block.contents);
        }
    }
    if ders.is_empty() {
        return Err(CaDataMistake::NoCertificate);
    }
    Ok(ders)
}

/// Whether a URL's host is a loopback or unspecified address, or `localhost`.
pub(super) fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
            _ => authority,
        }
    };
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

/// Try every link's credentials of the selected clusters, all at once.
pub(super) async fn probe_all(
    plan: &FleetPlan,
    selected: &[&str],
    snapshots: &BTreeMap<String, Snapshot>,
    kubeconfigs: &Kubeconfigs,
    timeout: Duration,
) -> Probes {
    let mut jobs = Vec::new();
    for cluster in plan
        .clusters
        .iter()
        .filter(|c| selected.contains(&c.name.as_str()))
    {
        let Some(state) = snapshots.get(&cluster.name).and_then(Snapshot::reachable) else {
            continue;
        };
        for link in &cluster.outgoing {
            // An unreachable target is reported as such; its credentials cannot be judged.
            if snapshots
                .get(&link.target)
                .and_then(Snapshot::reachable)
                .is_none()
            {
                continue;
            }
            let Some(target) = plan.clusters.iter().find(|c| c.name == link.target) else {
                continue;
            };
            let Some(text) = link_kubeconfig(plan, link, state) else {
                continue;
            };
            let Some(credentials) = inspect(text, target.api_server.as_deref()).credentials else {
                continue;
            };
            let route = kubeconfigs
                .server(&target.context)
                .unwrap_or_else(|| credentials.server.clone());
            let key = (cluster.name.clone(), link.target.clone());
            jobs.push(async move {
                let access = match tokio::time::timeout(timeout, probe(&credentials, &route, timeout)).await {
                    Ok(access) => access,
                    Err(_) => Access::Failed {
                        reason: format!("no answer within {}", super::seconds(timeout)),
                        route: url_without_credentials(&route),
                        kind: FailureKind::Other,
                    },
                };
                (key, access)
            });
        }
    }
    futures::future::join_all(jobs).await.into_iter().collect()
}

pub(crate) async fn probe(credentials: &RemoteCredentials, route: &str, timeout: Duration) -> Access {
    // The route may be the kubeconfig's server; messages show it without credentials.
    let shown = url_without_credentials(route);
    let failed = |reason: String, kind| Access::Failed {
        route: shown.clone(),
        reason,
        kind,
    };
    let Ok(uri) = route.parse() else {
        return failed(format!("`{shown}` is not a URL"), FailureKind::Other);
    };
    let mut config = kube::Config::new(uri);
    config.root_cert = Some(credentials.ca_der.clone());
    config.auth_info.token = Some(credentials.token.clone());
    config.tls_server_name.clone_from(&credentials.tls_server_name);
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    let client = match kube::Client::try_from(config) {
        Ok(client) => client,
        Err(e) => return failed(KubeFailure::from_kube(&e).to_string(), FailureKind::Other),
    };
    // One connection, one request after another: each review proves the TLS trust and
    // the token as well, and a handshake costs more than the three requests.
    let api: Api<SelfSubjectAccessReview> = Api::all(client);
    let mut denied = Vec::new();
    for verb in VERBS {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.to_string()),
                    group: Some(String::new()),
                    resource: Some("services".into()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        match api.create(&PostParams::default(), &review).await {
            Ok(review) if review.status.as_ref().is_some_and(|s| s.allowed) => {}
            Ok(_) => denied.push(verb),
            Err(e) => {
                let failure = KubeFailure::from_kube(&e);
                let kind = match failure {
                    KubeFailure::Unauthorized => FailureKind::Unauthorized,
                    KubeFailure::Tls(_) => FailureKind::Tls,
                    _ => FailureKind::Other,
                };
                return failed(failure.to_string(), kind);
            }
        }
    }
    Access::Verified { route: shown, denied }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(server: &str, user: &str) -> SecretString {
        let anchor = meshfleet_identity::generate_anchor(time::OffsetDateTime::now_utc()).unwrap();
        let ca = base64::engine::general_purpose::STANDARD.encode(anchor.cert_pem);
        SecretString::from(format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: pro\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
             contexts:\n- name: pro\n  context: {{cluster: pro, user: sa}}\ncurrent-context: pro\nusers:\n- name: sa\n  user:\n{user}\n"
        ))
    }

    #[test]
    fn a_good_kubeconfig_has_no_problem() {
        let text = kubeconfig("https://pro.example:6443", "    token: abc");
        let report = inspect(&text, Some("https://pro.example:6443"));
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(report.credentials.is_some());
    }

    #[test]
    fn loopback_other_server_and_exec_are_problems() {
        let exec =
            "    token: abc\n    exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/true}";
        let report = inspect(
            &kubeconfig("https://127.0.0.1:6443", exec),
            Some("https://pro.example:6443"),
        );
        let all = report.problems.join("\n");
        assert!(all.contains("loopback"), "{all}");
        assert!(all.contains("not the fleet's `apiServer`"), "{all}");
        assert!(all.contains("`exec`"), "{all}");
    }

    #[test]
    fn a_missing_token_and_a_file_ca_are_problems() {
        let text = SecretString::from(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: pro\n  cluster: {server: 'https://pro.example:6443', certificate-authority: /etc/ca.crt}\n\
             contexts:\n- name: pro\n  context: {cluster: pro, user: sa}\ncurrent-context: pro\nusers:\n- name: sa\n  user: {}\n"
                .to_string(),
        );
        let report = inspect(&text, None);
        let all = report.problems.join("\n");
        assert!(all.contains("file path"), "{all}");
        assert!(all.contains("no `token`"), "{all}");
        assert!(report.credentials.is_none());
    }

    #[test]
    fn what_secrets_sync_writes_passes() {
        let anchor = meshfleet_identity::generate_anchor(time::OffsetDateTime::now_utc()).unwrap();
        let token = SecretString::from("a-token".to_string());
        let text = crate::secrets::link_kubeconfig(
            "studio",
            "pro",
            "https://pro.example:6443",
            anchor.cert_pem.as_bytes(),
            &token,
        )
        .unwrap();
        let report = inspect(&text, Some("https://pro.example:6443"));
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(report.credentials.is_some());
    }

    #[test]
    fn loopback_hosts() {
        for url in [
            "https://127.0.0.1:6443",
            "https://localhost",
            "https://[::1]:443",
            "https://0.0.0.0:6443",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "https://pro.example:6443",
            "https://10.0.0.1:6443",
            "https://[fd00::1]:6443",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }
}
