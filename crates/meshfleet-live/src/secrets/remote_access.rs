//! The link credentials: the token of the remote-access ServiceAccount that a target's
//! `linkerd-multicluster` stage creates for each incoming link, read on the target and
//! wrapped into a one-cluster kubeconfig.
//!
//! Targets are read in parallel with one client each, and a target that does not
//! answer is tried once, not once per link. The token Secret is found as the chart
//! names it (`<account>-token`) or, like `link-gen` (reference §2.2), as any token
//! Secret annotated with the account. Token bytes read from the API are wiped once
//! they are in a [`SecretString`]. A new token is a new account, granted by the fleet
//! (see [`super::rotation`]).

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, ListParams};
use kube::config::{AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext};
use secrecy::SecretString;
use zeroize::Zeroize as _;

use super::{EntryKind, Pending, SyncError, Values};
use crate::cluster::Kubeconfigs;
use meshfleet_fleet::defaults::MULTICLUSTER_NAMESPACE as NS;
use meshfleet_plan::FleetPlan;

/// The type of a Secret the token controller fills.
pub const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";
/// The annotation that names a token Secret's ServiceAccount.
pub const SERVICE_ACCOUNT_ANNOTATION: &str = "kubernetes.io/service-account.name";

/// A filled token Secret: its metadata, the token and the CA it came with.
pub(super) struct Filled {
    pub(super) bearer: SecretString,
    pub(super) ca_pem: Vec<u8>,
}

/// A remote-access account and its filled token Secret, as read on the target.
pub(super) struct RemoteAccess {
    pub(super) token: Filled,
}

/// One entry per link: the targets are read in parallel, one client per target.
pub(super) async fn link_entries(plan: &FleetPlan, kubeconfigs: Option<&Kubeconfigs>) -> Vec<Pending> {
    let mut reads = tokio::task::JoinSet::new();
    for target in &plan.clusters {
        let sources: Vec<(String, String)> = plan
            .clusters
            .iter()
            .flat_map(|c| &c.outgoing)
            .filter(|l| l.target == target.name)
            .map(|l| (l.source.clone(), l.account()))
            .collect();
        if sources.is_empty() || target.api_server.is_none() {
            continue;
        }
        let (kubeconfigs, cluster, context) =
            (kubeconfigs.cloned(), target.name.clone(), target.context.clone());
        reads.spawn(async move { read_target(kubeconfigs, cluster, context, sources).await });
    }
    let mut tokens: BTreeMap<(String, String), TokenRead> = BTreeMap::new();
    while let Some(done) = reads.join_next().await {
        // A read task only panics on a bug; its links then fail as "not read" below.
        if let Ok(results) = done {
            tokens.extend(results);
        }
    }
    let mut entries = Vec::new();
    for target in &plan.clusters {
        for link in plan
            .clusters
            .iter()
            .flat_map(|c| &c.outgoing)
            .filter(|l| l.target == target.name)
        {
            let id = format!("credentials/{}", link.credentials_id());
            let desired = match (
                &target.api_server,
                tokens.remove(&(link.source.clone(), link.target.clone())),
            ) {
                (None, _) => Err(SyncError::ApiServerMissing {
                    cluster: target.name.clone(),
                }),
                (Some(_), None) => Err(SyncError::ClusterUnreachable {
                    cluster: target.name.clone(),
                    context: target.context.clone(),
                    reason: "reading it failed unexpectedly".into(),
                }),
                (Some(_), Some(Err(e))) => Err(e),
                (Some(server), Some(Ok(RemoteAccess { token }))) => link_kubeconfig(
                    &link.account(),
                    &target.name,
                    server,
                    &token.ca_pem,
                    &token.bearer,
                )
                .map(|k| Values::new([("kubeconfig", k)])),
            };
            // While a rotation grants the next account, `--rotate` moves the link's
            // credentials; writing the current ones back here would undo that.
            let rotating = link
                .rotation
                .is_some_and(|r| r.phase == meshfleet_fleet::model::RotationPhase::Granting);
            entries.push(Pending {
                id,
                kind: EntryKind::Credentials,
                desired,
                rotating,
            });
        }
    }
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    entries
}

/// A link's token read.
type TokenRead = Result<RemoteAccess, SyncError>;
/// What one target task returns, by (source, target).
type TargetReads = Vec<((String, String), TokenRead)>;

/// Read the token of every source's remote-access account on one target.
async fn read_target(
    kubeconfigs: Option<Kubeconfigs>,
    cluster: String,
    context: String,
    sources: Vec<(String, String)>,
) -> TargetReads {
    let client = match kubeconfigs {
        None => Err(SyncError::NoKubeconfig {
            cluster: cluster.clone(),
        }),
        Some(k) => k
            .client(&cluster, &context)
            .await
            .map_err(|e| SyncError::from_cluster(&e, &cluster, &context)),
    };
    let mut unreachable: Option<SyncError> = None;
    let mut out = Vec::new();
    for (source, account) in sources {
        let result = match (&client, &unreachable) {
            (Err(e), _) | (Ok(_), Some(e)) => Err(e.clone()),
            (Ok(client), None) => read_token(client, &cluster, &context, &account).await,
        };
        // One timeout per cluster is enough: the next links would wait as long again.
        if let Err(e @ SyncError::ClusterUnreachable { .. }) = &result {
            unreachable = Some(e.clone());
        }
        out.push(((source, cluster.clone()), result));
    }
    out
}

/// The token of a link's remote-access `account` on the target `cluster`: its
/// `<account>-token` Secret, or like `link-gen` any token Secret annotated with it.
pub(super) async fn read_token(
    client: &kube::Client,
    cluster: &str,
    context: &str,
    account: &str,
) -> Result<RemoteAccess, SyncError> {
    let account = account.to_owned();
    let name = format!("{account}-token");
    tracing::debug!(cluster, account, "reading the remote-access token");
    let kube_error = |action: &str| {
        let action = action.to_string();
        move |e: kube::Error| SyncError::from_kube(&e, cluster, context, &action)
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NS);
    let Some(_) = accounts
        .get_opt(&account)
        .await
        .map_err(kube_error("get serviceaccounts"))?
    else {
        return Err(SyncError::ServiceAccountMissing {
            cluster: cluster.into(),
            account,
        });
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let named = secrets.get_opt(&name).await.map_err(kube_error("get secrets"))?;
    let secret = match named {
        Some(secret) if is_token_secret_of(&secret, &account) => secret,
        named => {
            let list = ListParams::default().fields(&format!("type={TOKEN_SECRET_TYPE}"));
            let mut found: Vec<Secret> = secrets
                .list(&list)
                .await
                .map_err(kube_error("list secrets"))?
                .items;
            found.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
            let index = found.iter().position(|s| is_token_secret_of(s, &account));
            let secret = index.map(|i| found.swap_remove(i));
            for mut other in found {
                scrub(&mut other);
            }
            match (secret, named) {
                (Some(secret), _) => secret,
                (None, Some(wrong)) => {
                    return Err(SyncError::TokenSecretWrongType {
                        cluster: cluster.into(),
                        account,
                        secret: name,
                        found: wrong.type_.unwrap_or_default(),
                    });
                }
                (None, None) => {
                    return Err(SyncError::TokenSecretMissing {
                        cluster: cluster.into(),
                        account,
                        secret: name,
                    });
                }
            }
        }
    };
    let secret_name = secret.metadata.name.clone().unwrap_or(name);
    let token = filled(secret).ok_or(SyncError::TokenNotFilled {
        cluster: cluster.into(),
        secret: secret_name,
        waited: None,
    })?;
    Ok(RemoteAccess { token })
}

fn is_token_secret_of(secret: &Secret, account: &str) -> bool {
    secret.type_.as_deref() == Some(TOKEN_SECRET_TYPE)
        && secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SERVICE_ACCOUNT_ANNOTATION))
            .is_some_and(|a| a == account)
}

/// The token and CA of a filled token Secret; the Secret's bytes are wiped either way.
fn filled(mut secret: Secret) -> Option<Filled> {
    let data = secret.data.as_ref();
    let ca_pem = data
        .and_then(|d| d.get("ca.crt"))
        .filter(|c| !c.0.is_empty())
        .map(|c| c.0.clone());
    let token = data
        .and_then(|d| d.get("token"))
        .filter(|t| !t.0.is_empty())
        .and_then(|t| String::from_utf8(t.0.clone()).ok())
        .map(SecretString::from);
    scrub(&mut secret);
    Some(Filled {
        bearer: token?,
        ca_pem: ca_pem?,
    })
}

pub(super) fn scrub(secret: &mut Secret) {
    for value in secret.data.iter_mut().flat_map(|d| d.values_mut()) {
        value.0.zeroize();
    }
}

/// The kubeconfig a source's service mirror uses to reach `target`: exactly one
/// cluster (`server` = the target's `apiServer`, CA inline), one user (the token) and
/// one context.
pub fn link_kubeconfig(
    account: &str,
    target: &str,
    server: &str,
    ca_pem: &[u8],
    token: &SecretString,
) -> Result<SecretString, SyncError> {
    let user = account.to_owned();
    let config = Kubeconfig {
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        clusters: vec![NamedCluster {
            name: target.into(),
            cluster: Some(Cluster {
                server: Some(server.into()),
                certificate_authority_data: Some(base64::engine::general_purpose::STANDARD.encode(ca_pem)),
                ..Cluster::default()
            }),
            ..NamedCluster::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: user.clone(),
            auth_info: Some(AuthInfo {
                token: Some(token.clone()),
                ..AuthInfo::default()
            }),
            ..NamedAuthInfo::default()
        }],
        contexts: vec![NamedContext {
            name: target.into(),
            context: Some(Context {
                cluster: target.into(),
                user: Some(user),
                ..Context::default()
            }),
            ..NamedContext::default()
        }],
        current_context: Some(target.into()),
        ..Kubeconfig::default()
    };
    // Never fold: a folded token or CA would not parse back.
    let mut options = serde_saphyr::SerializerOptions::default();
    options.folded_wrap_chars = usize::MAX / 2;
    options.min_fold_chars = usize::MAX / 2;
    serde_saphyr::to_string_with_options(&config, options)
        .map(SecretString::from)
        // The serializer's message could repeat a value; the reason is enough.
        .map_err(|_| SyncError::Kubeconfig("the YAML serializer refused it".into()))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    #[test]
    fn kubeconfig_has_one_of_each_and_parses_back() {
        let token = SecretString::from("eyJhbGciOiJSUzI1NiJ9.".repeat(40));
        let ca = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let text = link_kubeconfig(
            "linkerd-service-mirror-remote-access-studio",
            "pro",
            "https://pro.example:6443",
            ca,
            &token,
        )
        .unwrap();
        let again = link_kubeconfig(
            "linkerd-service-mirror-remote-access-studio",
            "pro",
            "https://pro.example:6443",
            ca,
            &token,
        )
        .unwrap();
        assert_eq!(text.expose_secret(), again.expose_secret(), "deterministic");
        let parsed = Kubeconfig::from_yaml(text.expose_secret()).unwrap();
        assert_eq!(
            (
                parsed.clusters.len(),
                parsed.auth_infos.len(),
                parsed.contexts.len()
            ),
            (1, 1, 1)
        );
        let cluster = parsed.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://pro.example:6443"));
        let ca_back = base64::engine::general_purpose::STANDARD
            .decode(cluster.certificate_authority_data.as_deref().unwrap())
            .unwrap();
        assert_eq!(ca_back, ca);
        let user = parsed.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(
            user.token.as_ref().unwrap().expose_secret(),
            token.expose_secret()
        );
        assert_eq!(
            parsed.auth_infos[0].name,
            "linkerd-service-mirror-remote-access-studio"
        );
        assert_eq!(parsed.current_context.as_deref(), Some("pro"));
    }
}
