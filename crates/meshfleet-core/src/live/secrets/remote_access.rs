//! The link credentials: the token of the remote-access ServiceAccount that a target's
//! `linkerd-multicluster` stage creates for each incoming link, read (or, with
//! `--rotate`, re-issued) on the target and wrapped into a one-cluster kubeconfig.
//!
//! Targets are read in parallel with one client each, and a target that does not
//! answer is tried once, not once per link. The token Secret is found as the chart
//! names it (`<account>-token`) or, like `link-gen` (reference §2.2), as any token
//! Secret annotated with the account. Token bytes read from the API are wiped once
//! they are in a [`SecretString`]. A rotation recreates the account as well as the
//! Secret, because only a new account UID yields a new token (see [`reissue`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};
use kube::config::{AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext};
use secrecy::SecretString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroize as _;

use super::{EntryKind, Pending, SyncError, Values};
use crate::defaults::MULTICLUSTER_NAMESPACE as NS;
use crate::live::cluster::Kubeconfigs;
use crate::plan::{self, FleetPlan};
use crate::render::{FLEET_LABEL, MANAGED_BY, MANAGED_BY_LABEL};

/// The type of a Secret the token controller fills.
pub const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";
/// The annotation that names a token Secret's ServiceAccount.
pub const SERVICE_ACCOUNT_ANNOTATION: &str = "kubernetes.io/service-account.name";
/// Set by the token controller when it fills a Secret; dropped when recreating one.
const SERVICE_ACCOUNT_UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";

/// What a link entry needs to rotate its token later.
pub(super) struct Rotation {
    client: kube::Client,
    /// The target cluster.
    pub(super) cluster: String,
    context: String,
    source: String,
    server: String,
    /// The account as read.
    account: ServiceAccount,
    /// The token Secret as read.
    secret: ObjectMeta,
    fleet: String,
}

impl Rotation {
    /// Re-issue the token on the target and build the entry's new value.
    pub(super) async fn rotate(&self, wait: Duration) -> Result<Values, SyncError> {
        let token = reissue(self, wait).await?;
        let kubeconfig = link_kubeconfig(
            &plan::remote_access_service_account(&self.source),
            &self.cluster,
            &self.server,
            &token.ca_pem,
            &token.bearer,
        )?;
        Ok(Values::new([("kubeconfig", kubeconfig)]))
    }
}

/// A filled token Secret: its metadata, the token and the CA it came with.
struct Filled {
    meta: ObjectMeta,
    bearer: SecretString,
    ca_pem: Vec<u8>,
}

/// A remote-access account and its filled token Secret, as read on the target.
struct RemoteAccess {
    account: ServiceAccount,
    token: Filled,
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
            let key = plan.vault.credentials_key(&link.source, &link.target);
            let mut rotation = None;
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
                (Some(_), Some((Err(e), _))) => Err(e),
                (Some(server), Some((Ok(RemoteAccess { account, token }), client))) => {
                    let kubeconfig = link_kubeconfig(
                        &link.account(),
                        &target.name,
                        server,
                        &token.ca_pem,
                        &token.bearer,
                    );
                    rotation = client.map(|client| Rotation {
                        client,
                        cluster: target.name.clone(),
                        context: target.context.clone(),
                        source: link.source.clone(),
                        server: server.clone(),
                        account,
                        secret: token.meta,
                        fleet: plan.name.clone(),
                    });
                    kubeconfig.map(|k| Values::new([("kubeconfig", k)]))
                }
            };
            entries.push(Pending {
                id,
                kind: EntryKind::Credentials,
                key,
                desired,
                rotation,
            });
        }
    }
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    entries
}

/// A link's token read, with the client that read it (for a rotation later).
type TokenRead = (Result<RemoteAccess, SyncError>, Option<kube::Client>);
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
        out.push(((source, cluster.clone()), (result, client.as_ref().ok().cloned())));
    }
    out
}

/// The token of a link's remote-access `account` on the target `cluster`: its
/// `<account>-token` Secret, or like `link-gen` any token Secret annotated with it.
async fn read_token(
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
    let Some(found_account) = accounts
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
    Ok(RemoteAccess {
        account: found_account,
        token,
    })
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
        meta: secret.metadata,
        bearer: token?,
        ca_pem: ca_pem?,
    })
}

fn scrub(secret: &mut Secret) {
    for value in secret.data.iter_mut().flat_map(|d| d.values_mut()) {
        value.0.zeroize();
    }
}

/// Issue a new token: delete the token Secret and the account, recreate both with the
/// same names (the owner's labels and annotations kept, meshfleet's labels added), and
/// wait for the token controller to fill the new Secret.
///
/// Recreating only the Secret would not do: a legacy token is a deterministic signature
/// over the namespace, the Secret's name, the account's name and the account's UID, so
/// the controller would issue the very same token again. A new account UID gives a new
/// token, and the old one is refused for good (its UID claim no longer matches), even
/// if GitOps later re-applies a Secret of the old name. The ClusterRoleBinding names the
/// account, so the new one keeps its (and only its) permissions.
async fn reissue(rotation: &Rotation, wait: Duration) -> Result<Filled, SyncError> {
    let Rotation {
        client,
        cluster,
        context,
        account,
        secret,
        fleet,
        ..
    } = rotation;
    let deadline = Instant::now() + wait;
    let kube_error =
        |action: &'static str| move |e: kube::Error| SyncError::from_kube(&e, cluster, context, action);
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NS);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let account_name = account.metadata.name.clone().unwrap_or_default();
    let secret_name = secret.name.clone().unwrap_or_default();
    tracing::info!(cluster = %cluster, account = %account_name, "issuing a new remote-access token");
    delete_exact(&secrets, &secret_name, secret.uid.clone())
        .await
        .map_err(kube_error("delete secrets"))?;
    delete_exact(&accounts, &account_name, account.metadata.uid.clone())
        .await
        .map_err(kube_error("delete serviceaccounts"))?;
    let fresh_account = ServiceAccount {
        metadata: recreated(&account.metadata, fleet),
        automount_service_account_token: account.automount_service_account_token,
        image_pull_secrets: account.image_pull_secrets.clone(),
        secrets: None,
    };
    let uid = create_retrying(&accounts, &fresh_account, deadline)
        .await
        .map_err(kube_error("create serviceaccounts"))?
        .metadata
        .uid;
    let mut fresh_secret = Secret {
        metadata: recreated(secret, fleet),
        type_: Some(TOKEN_SECRET_TYPE.to_string()),
        ..Secret::default()
    };
    fresh_secret
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(SERVICE_ACCOUNT_ANNOTATION.to_string(), account_name);
    create_retrying(&secrets, &fresh_secret, deadline)
        .await
        .map_err(kube_error("create secrets"))?;
    loop {
        if let Some(current) = secrets
            .get_opt(&secret_name)
            .await
            .map_err(kube_error("get secrets"))?
        {
            let filled_for = current
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(SERVICE_ACCOUNT_UID_ANNOTATION))
                .cloned();
            if filled_for.is_some() && filled_for != uid {
                // The controller filled it before it saw the new account: issue it again.
                let stale = current.metadata.uid.clone();
                drop(filled(current));
                delete_exact(&secrets, &secret_name, stale)
                    .await
                    .map_err(kube_error("delete secrets"))?;
                create_retrying(&secrets, &fresh_secret, deadline)
                    .await
                    .map_err(kube_error("create secrets"))?;
            } else if let Some(token) = filled(current) {
                return Ok(token);
            }
        }
        if Instant::now() >= deadline {
            return Err(SyncError::TokenNotFilled {
                cluster: cluster.clone(),
                secret: secret_name,
                waited: Some(wait),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The metadata to recreate an object with: name, namespace, labels and annotations as
/// they were (Helm's ownership stays; a `managed-by` label is only added, never
/// replaced), meshfleet's fleet label, and no UID annotation of the old account.
fn recreated(old: &ObjectMeta, fleet: &str) -> ObjectMeta {
    let mut labels = old.labels.clone().unwrap_or_default();
    labels
        .entry(MANAGED_BY_LABEL.to_string())
        .or_insert_with(|| MANAGED_BY.to_string());
    labels.insert(FLEET_LABEL.to_string(), fleet.to_string());
    let mut annotations = old.annotations.clone().unwrap_or_default();
    annotations.remove(SERVICE_ACCOUNT_UID_ANNOTATION);
    ObjectMeta {
        name: old.name.clone(),
        namespace: Some(NS.to_string()),
        labels: Some(labels),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    }
}

/// Delete `name` only if it is still the object with `uid` (not one that someone
/// recreated meanwhile); gone already is fine.
async fn delete_exact<K>(api: &Api<K>, name: &str, uid: Option<String>) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Create `object`, retrying while an old object of the same name is still going.
async fn create_retrying<K>(api: &Api<K>, object: &K, deadline: Instant) -> Result<K, kube::Error>
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    loop {
        match api.create(&PostParams::default(), object).await {
            Err(kube::Error::Api(status)) if status.code == 409 && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
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
