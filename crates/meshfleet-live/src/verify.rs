//! `meshfleet verify`: one request across each link, through the clusters' real data
//! plane, with what [`meshfleet_plan::verify`] plans.
//!
//! Per link: remove what an earlier run left (the link's test namespace on both sides),
//! apply the server on the target and the client on the source (server-side apply),
//! wait for the client's Job pod to end, read its result from the container's
//! termination message (the pod's log as a fallback), judge it, and remove both
//! namespaces again, whatever happened. A link that fails is read once more to name the
//! likely cause: the mirror missing or without endpoints, the target's gateway not
//! available, a policy refusing the client (HTTP 403, or the gateway's authorization
//! read from the target: [`authz`]), another identity than expected (the server saw
//! another peer, or the source's Link dials the gateway as another identity).

mod anchors;
mod authz;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Namespace, Pod, Secret, Service, ServiceAccount};
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams, Patch,
    PatchParams,
};
use meshfleet_fleet::defaults;
use meshfleet_fleet::model::LinkMode;
use meshfleet_plan::FleetPlan;
use meshfleet_plan::verify::{CLIENT, ClientResult, LinkVerify};
use meshfleet_render::stages::ISSUER_SECRET;
use serde::Serialize;

use crate::cluster::{Kubeconfigs, ReadError};

/// The field manager of everything `verify` applies.
const MANAGER: &str = "meshfleet-verify";
/// How often the client's pod and the namespaces' removal are read.
const POLL: Duration = Duration::from_millis(500);
/// Time for the client's pod to be scheduled and started, on top of its deadline.
const START_GRACE: Duration = Duration::from_secs(60);

/// The likely cause of a link that failed, with a stable id for `-o json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// A cluster could not be read or written.
    ClusterUnreachable,
    /// The client pod did not finish (image, scheduling, injection).
    ClientNotRun,
    /// The source has no mirror of the test Service.
    NotMirrored,
    /// The mirror has no endpoints.
    NoEndpoints,
    /// The target's gateway has no available replica.
    GatewayNotAlive,
    /// A proxy refused the client (HTTP 403).
    PolicyDenied,
    /// The server's proxy saw another identity than the path allows.
    IdentityMismatch,
    /// One side's bundle lacks the anchor that signed the other side's issuer (an
    /// anchor retired too early): the proxies refuse each other's certificates.
    AnchorNotTrusted,
    /// No answer, no other cause found.
    Unreachable,
}

/// What happened on one link.
#[derive(Debug, Clone, Serialize)]
pub struct LinkOutcome {
    /// `<source>-to-<target>`.
    pub id: String,
    /// `<source> -> <target>`.
    pub link: String,
    /// `gateway` or `remote-discovery`.
    pub path: &'static str,
    /// Whether the server answered.
    pub reached: bool,
    /// Whether the link passed: reached, and the server saw the identity it must.
    pub ok: bool,
    /// Fastest call after the first answer, in milliseconds.
    pub latency_ms: Option<f64>,
    /// The identity the server's proxy saw.
    pub peer_identity: Option<String>,
    /// The identity it must see (the gateway's through a gateway, else the client's).
    pub expected_peer: String,
    /// Which one the expected peer is: `gateway` or `client`.
    pub peer_is: &'static str,
    /// The client's own identity.
    pub client_identity: String,
    /// The likely cause, when not ok.
    pub cause: Option<Cause>,
    /// What was seen, when not ok.
    pub detail: Option<String>,
    /// How to fix it, when not ok.
    pub hint: Option<String>,
    /// Whether the test's namespaces were removed afterwards.
    pub cleaned_up: bool,
}

/// Run the test of every planned link at once; results in plan order.
pub async fn run(
    fleet: &FleetPlan,
    kubeconfigs: &Kubeconfigs,
    links: &[LinkVerify],
    deadline: Duration,
) -> Vec<LinkOutcome> {
    let work = links.iter().map(|l| one(fleet, kubeconfigs, l, deadline));
    futures::future::join_all(work).await
}

/// Remove every link's test objects (after an interruption); the links whose removal
/// failed, with why.
pub async fn clean_up(
    fleet: &FleetPlan,
    kubeconfigs: &Kubeconfigs,
    links: &[LinkVerify],
) -> Vec<(String, String)> {
    let work = links.iter().map(|l| async move {
        let pair = clients(fleet, kubeconfigs, l).await.map_err(|e| e.to_string())?;
        remove(&pair, &l.namespace).await.map_err(|e| e.to_string())
    });
    futures::future::join_all(work)
        .await
        .into_iter()
        .zip(links)
        .filter_map(|(r, l)| r.err().map(|e| (l.label.clone(), e)))
        .collect()
}

/// Source and target clients of a link.
struct Pair {
    source: Client,
    target: Client,
}

async fn clients(fleet: &FleetPlan, kubeconfigs: &Kubeconfigs, l: &LinkVerify) -> Result<Pair, ReadError> {
    let context = |name: &str| {
        fleet
            .clusters
            .iter()
            .find(|c| c.name == name)
            .map_or_else(|| name.to_string(), |c| c.context.clone())
    };
    Ok(Pair {
        source: kubeconfigs.client(&l.source, &context(&l.source)).await?,
        target: kubeconfigs.client(&l.target, &context(&l.target)).await?,
    })
}

async fn one(
    fleet: &FleetPlan,
    kubeconfigs: &Kubeconfigs,
    l: &LinkVerify,
    deadline: Duration,
) -> LinkOutcome {
    let mut outcome = LinkOutcome {
        id: l.id.clone(),
        link: l.label.clone(),
        path: match l.mode {
            LinkMode::Gateway => "gateway",
            LinkMode::RemoteDiscovery => "remote-discovery",
        },
        reached: false,
        ok: false,
        latency_ms: None,
        peer_identity: None,
        expected_peer: l.expected_peer.clone(),
        peer_is: if l.gateway_identity.is_some() {
            "gateway"
        } else {
            "client"
        },
        client_identity: l.client_identity.clone(),
        cause: None,
        detail: None,
        hint: None,
        cleaned_up: false,
    };
    let pair = match clients(fleet, kubeconfigs, l).await {
        Ok(pair) => pair,
        Err(e) => {
            fail(
                &mut outcome,
                Cause::ClusterUnreachable,
                e.to_string(),
                e.hint_for(&l.source, "create namespaces, Services, Deployments and Jobs"),
            );
            return outcome;
        }
    };
    let result = attempt(&pair, l, deadline).await;
    match result {
        Ok(Some(result)) => judge(&pair, l, &result, &mut outcome).await,
        Ok(None) => {
            let (detail, hint) = why_client_did_not_run(&pair.source, l).await;
            fail(&mut outcome, Cause::ClientNotRun, detail, hint);
        }
        Err(e) => fail(
            &mut outcome,
            Cause::ClusterUnreachable,
            e.to_string(),
            "the kubeconfig's credentials must allow to create and delete namespaces, Services, Deployments, ServiceAccounts and Jobs on both clusters".into(),
        ),
    }
    outcome.cleaned_up = remove(&pair, &l.namespace).await.is_ok();
    outcome
}

fn fail(outcome: &mut LinkOutcome, cause: Cause, detail: String, hint: String) {
    outcome.ok = false;
    outcome.cause = Some(cause);
    outcome.detail = Some(detail);
    outcome.hint = Some(hint);
}

/// Place the test and wait for the client's result (`None`: the client did not end).
async fn attempt(pair: &Pair, l: &LinkVerify, deadline: Duration) -> Result<Option<ClientResult>, ReadError> {
    remove(pair, &l.namespace).await?;
    let t = &l.target_objects;
    apply(&Api::<Namespace>::all(pair.target.clone()), &t.namespace).await?;
    apply(
        &Api::<Service>::namespaced(pair.target.clone(), &l.namespace),
        &t.service,
    )
    .await?;
    apply(
        &Api::<Deployment>::namespaced(pair.target.clone(), &l.namespace),
        &t.deployment,
    )
    .await?;
    let s = &l.source_objects;
    apply(&Api::<Namespace>::all(pair.source.clone()), &s.namespace).await?;
    apply(
        &Api::<ServiceAccount>::namespaced(pair.source.clone(), &l.namespace),
        &s.service_account,
    )
    .await?;
    apply(&Api::<Job>::namespaced(pair.source.clone(), &l.namespace), &s.job).await?;
    wait_for_result(&pair.source, l, deadline + START_GRACE).await
}

async fn apply<K>(api: &Api<K>, object: &K) -> Result<(), ReadError>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + Serialize + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let mut tries = 0;
    loop {
        match api
            .patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(object))
            .await
        {
            Ok(_) => return Ok(()),
            // Linkerd's proxy injector reads namespaces from its informer: right after
            // the test's namespace is (re)created it can deny an object in it with
            // `namespaces "..." not found` until its cache catches up. Try again.
            Err(kube::Error::Api(status))
                if tries < WEBHOOK_RETRIES
                    && status.code == 400
                    && status.message.contains("admission webhook")
                    && status.message.contains("not found") =>
            {
                tries += 1;
                tokio::time::sleep(POLL).await;
            }
            Err(e) => {
                return Err(ReadError::from_kube(
                    &format!("apply {} `{name}`", K::kind(&())),
                    &e,
                ));
            }
        }
    }
}

/// How many times an object a webhook denied for a namespace it did not see yet is
/// applied again ([`POLL`] apart).
const WEBHOOK_RETRIES: u32 = 60;

/// Poll the client's pod until its container ended; its result from the termination
/// message, else from its log.
async fn wait_for_result(
    source: &Client,
    l: &LinkVerify,
    wait: Duration,
) -> Result<Option<ClientResult>, ReadError> {
    let pods = Api::<Pod>::namespaced(source.clone(), &l.namespace);
    let list = ListParams::default().labels(&format!("app={CLIENT}"));
    let start = Instant::now();
    while start.elapsed() < wait {
        let listed = pods
            .list(&list)
            .await
            .map_err(|e| ReadError::from_kube("list the client's pods", &e))?;
        for pod in listed.items {
            let status = pod.status.clone().unwrap_or_default();
            let ended = status
                .container_statuses
                .iter()
                .flatten()
                .find(|c| c.name == "client")
                .and_then(|c| c.state.as_ref()?.terminated.clone());
            let phase_done = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
            if ended.is_none() && !phase_done {
                continue;
            }
            let message = ended.and_then(|t| t.message).unwrap_or_default();
            if let Some(result) = ClientResult::parse(&message) {
                return Ok(Some(result));
            }
            let name = pod.metadata.name.clone().unwrap_or_default();
            let log = pods
                .logs(
                    &name,
                    &LogParams {
                        container: Some("client".into()),
                        ..LogParams::default()
                    },
                )
                .await
                .unwrap_or_default();
            return Ok(ClientResult::parse(&log).or(Some(ClientResult {
                reached: false,
                status: None,
                peer: None,
                server: None,
                latency_ms: None,
                error: Some(format!(
                    "the client ended without a result; its last words: {}",
                    last_line(&message, &log)
                )),
                attempts: 0,
            })));
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(None)
}

fn last_line(message: &str, log: &str) -> String {
    let text = if message.trim().is_empty() { log } else { message };
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(nothing)")
        .to_string()
}

/// Judge a result, reading the clusters once more when it failed.
async fn judge(pair: &Pair, l: &LinkVerify, r: &ClientResult, outcome: &mut LinkOutcome) {
    outcome.reached = r.reached;
    outcome.latency_ms = r.latency_ms;
    outcome.peer_identity = r.peer.clone().filter(|p| !p.is_empty());
    if r.reached {
        match outcome.peer_identity.as_deref() {
            Some(peer) if peer == l.expected_peer => outcome.ok = true,
            Some(peer) => fail(
                outcome,
                Cause::IdentityMismatch,
                format!("the server's proxy saw `{peer}`, not `{}`", l.expected_peer),
                match &l.gateway_identity {
                    Some(_) => format!(
                        "the Link's gatewayIdentity must be the target's gateway in its trust domain; compare `{}` with what `meshfleet check` reports for link {}",
                        l.expected_peer, l.label
                    ),
                    None => "remote discovery needs one trust domain (a shared anchor) on both clusters: run `meshfleet trust verify`".into(),
                },
            ),
            None => fail(
                outcome,
                Cause::IdentityMismatch,
                "the server's proxy saw no identity: the request did not arrive over mTLS".into(),
                format!(
                    "is the proxy injector running on `{}` (pods annotated `linkerd.io/inject: enabled` get a proxy)? `linkerd check --proxy -n {}`",
                    l.target, l.namespace
                ),
            ),
        }
        return;
    }
    let seen = r.error.clone().unwrap_or_else(|| "no answer".into());
    let (cause, detail, hint) = diagnose(pair, l, r, seen).await;
    fail(outcome, cause, detail, hint);
}

async fn diagnose(pair: &Pair, l: &LinkVerify, r: &ClientResult, seen: String) -> (Cause, String, String) {
    let denial = match l.gateway_identity {
        Some(_) => gateway_denial(&pair.target, l).await,
        None => None,
    };
    if let Some(denial) = &denial {
        return (
            Cause::PolicyDenied,
            format!(
                "{seen}; the gateway `{}/{}` on `{}` does not admit the client `{}`: {}",
                defaults::MULTICLUSTER_NAMESPACE,
                defaults::GATEWAY_NAME,
                l.target,
                l.client_identity,
                denial.describe()
            ),
            format!(
                "let the clients of `{}` through the gateway: widen that authentication on `{}` (the multicluster chart's is `any-meshed`, `*`), or add an AuthorizationPolicy for `{}` beside it",
                l.source, l.target, l.client_identity
            ),
        );
    }
    if r.status == Some(403) {
        return (
            Cause::PolicyDenied,
            format!("{seen}: a proxy refused the client `{}`", l.client_identity),
            format!(
                "an AuthorizationPolicy or Server on `{}` (in namespace `{}`, or the cluster's default inbound policy) does not allow the client's identity; `linkerd viz authz -n {}` shows which",
                l.target, l.namespace, l.namespace
            ),
        );
    }
    if let Some(identity) = &l.gateway_identity {
        let gateways = Api::<Deployment>::namespaced(pair.target.clone(), defaults::MULTICLUSTER_NAMESPACE);
        if let Ok(Some(gw)) = gateways.get_opt(defaults::GATEWAY_NAME).await {
            let available = gw.status.and_then(|s| s.available_replicas).unwrap_or(0);
            if available == 0 {
                return (
                    Cause::GatewayNotAlive,
                    format!(
                        "{seen}; the gateway `{}/{}` on `{}` has no available replica (`{identity}` at {})",
                        defaults::MULTICLUSTER_NAMESPACE,
                        defaults::GATEWAY_NAME,
                        l.target,
                        l.gateway_address.as_deref().unwrap_or("?")
                    ),
                    format!(
                        "scale it up or find why its pods do not start: `kubectl --context {} -n {} get deploy,pods`",
                        l.target,
                        defaults::MULTICLUSTER_NAMESPACE
                    ),
                );
            }
        }
    }
    if let Some(gap) = anchor_gap(pair, l).await {
        return (
            Cause::AnchorNotTrusted,
            format!("{seen}; {}", gap.describe()),
            format!(
                "put the anchor back into `{}`'s bundle (render the bundle of the current `trust rotate` phase and let the GitOps engine apply it, then the restarts `meshfleet trust rotate status` lists); `trust rotate next` retires an anchor only once every cluster's proxies are recertified",
                gap.refusing
            ),
        );
    }
    let services = Api::<Service>::namespaced(pair.source.clone(), &l.namespace);
    if let Ok(None) = services.get_opt(&l.mirror).await {
        return (
            Cause::NotMirrored,
            format!(
                "{seen}; `{}` has no mirror `{}/{}` of the test Service",
                l.source, l.namespace, l.mirror
            ),
            format!(
                "the Link's controller on `{}` did not mirror it: `meshfleet check` shows the link's controller and credentials",
                l.source
            ),
        );
    }
    let endpoints = Api::<Endpoints>::namespaced(pair.source.clone(), &l.namespace);
    if let Some(expected) = &l.gateway_identity {
        let mirror_endpoints = endpoints.get_opt(&l.mirror).await.ok().flatten();
        let empty = mirror_endpoints.as_ref().is_some_and(|e| {
            e.subsets
                .iter()
                .flatten()
                .all(|s| s.addresses.as_ref().is_none_or(Vec::is_empty))
        });
        if empty {
            return (
                Cause::NoEndpoints,
                format!(
                    "{seen}; the mirror `{}/{}` has no ready endpoints",
                    l.namespace, l.mirror
                ),
                format!(
                    "the source's probe of the gateway fails: check the gateway address {} and its probe port from `{}`",
                    l.gateway_address.as_deref().unwrap_or("?"),
                    l.source
                ),
            );
        }
        // The service mirror copies the Link's `gatewayIdentity` onto the mirror's
        // Endpoints; the destination controller hands it to the client's proxy as the
        // identity the gateway must present.
        let dialed = mirror_endpoints
            .and_then(|e| e.metadata.annotations)
            .and_then(|a| a.get(REMOTE_GATEWAY_IDENTITY).cloned());
        if let Some(dialed) = dialed.filter(|d| d != expected) {
            return (
                Cause::IdentityMismatch,
                format!(
                    "{seen}; `{}`'s proxies dial the gateway of `{}` as `{dialed}` (the mirror's `{REMOTE_GATEWAY_IDENTITY}`, from the Link `{}`), but that gateway is `{expected}`",
                    l.source, l.target, l.link_name
                ),
                format!(
                    "the Link `{}/{}` on `{}` is not the one the fleet renders: apply the rendered Link again (your GitOps engine reverts a hand edit; `meshfleet check` names the drift); a Link made by `linkerd multicluster link-gen` against another control plane or trust domain has this",
                    defaults::MULTICLUSTER_NAMESPACE,
                    l.link_name,
                    l.source
                ),
            );
        }
    }
    (
        Cause::Unreachable,
        seen,
        format!(
            "the mirror exists but the call did not get through: look at the client's proxy on `{}` and at the server pod on `{}` (rerun with a longer `--timeout`)",
            l.source, l.target
        ),
    )
}

/// Whether one side of the link does not trust the other's issuer; `None` when both
/// do, or when either could not be read.
async fn anchor_gap(pair: &Pair, l: &LinkVerify) -> Option<anchors::Untrusted> {
    let read = |client: Client| {
        let namespace = l.linkerd_namespace.clone();
        async move {
            let config_maps = Api::<ConfigMap>::namespaced(client.clone(), &namespace);
            let secrets = Api::<Secret>::namespaced(client, &namespace);
            let bundle = config_maps
                .get_opt(crate::trust::TRUST_ROOTS)
                .await
                .ok()
                .flatten()
                .and_then(|cm| cm.data?.get(crate::trust::TRUST_ROOTS_KEY).cloned())
                .and_then(|pem| meshfleet_identity::parse_pem_bundle(&pem).ok());
            // Only the certificate is read from the Secret; its key is never used.
            let issuer = secrets
                .get_opt(ISSUER_SECRET)
                .await
                .ok()
                .flatten()
                .and_then(|s| {
                    s.data?
                        .get("tls.crt")
                        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                })
                .and_then(|pem| {
                    meshfleet_identity::parse_pem_bundle(&pem)
                        .ok()?
                        .into_iter()
                        .next()
                });
            (bundle, issuer)
        }
    };
    let ((source_bundle, source_issuer), (target_bundle, target_issuer)) =
        tokio::join!(read(pair.source.clone()), read(pair.target.clone()));
    anchors::untrusted(
        anchors::Side {
            cluster: &l.source,
            bundle: source_bundle.as_deref(),
            issuer: source_issuer.as_ref(),
        },
        anchors::Side {
            cluster: &l.target,
            bundle: target_bundle.as_deref(),
            issuer: target_issuer.as_ref(),
        },
    )
}

/// The annotation on a mirror's Endpoints naming the gateway's identity.
const REMOTE_GATEWAY_IDENTITY: &str = "mirror.linkerd.io/remote-gateway-identity";

/// The target gateway's authorization, when it cannot admit the client; `None` when it
/// can, or when the policies cannot be read (nothing to say then).
async fn gateway_denial(target: &Client, l: &LinkVerify) -> Option<authz::Denial> {
    let list = |kind: &str| {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("policy.linkerd.io", "v1alpha1", kind));
        let api = Api::<DynamicObject>::namespaced_with(
            target.clone(),
            defaults::MULTICLUSTER_NAMESPACE,
            &resource,
        );
        async move {
            let listed = api.list(&ListParams::default()).await.ok()?;
            Some(
                listed
                    .items
                    .into_iter()
                    .filter_map(|o| serde_json::to_value(o).ok())
                    .collect::<Vec<_>>(),
            )
        }
    };
    let policies = list("AuthorizationPolicy").await?;
    let mesh_tls = list("MeshTLSAuthentication").await?;
    let client = authz::Client {
        identity: &l.client_identity,
        service_account: CLIENT,
        namespace: &l.namespace,
    };
    authz::judge(
        &client,
        defaults::MULTICLUSTER_NAMESPACE,
        defaults::GATEWAY_NAME,
        &policies,
        &mesh_tls,
    )
}

/// Why the client's pod did not end, from its status.
async fn why_client_did_not_run(source: &Client, l: &LinkVerify) -> (String, String) {
    let pods = Api::<Pod>::namespaced(source.clone(), &l.namespace);
    let listed = pods
        .list(&ListParams::default().labels(&format!("app={CLIENT}")))
        .await;
    let detail = match listed.ok().and_then(|p| p.items.into_iter().next()) {
        None => "the client's Job made no pod".to_string(),
        Some(pod) => {
            let status = pod.status.unwrap_or_default();
            let waiting: Vec<String> = status
                .container_statuses
                .iter()
                .flatten()
                .filter_map(|c| {
                    let w = c.state.as_ref()?.waiting.as_ref()?;
                    Some(format!("{}: {}", c.name, w.reason.clone().unwrap_or_default()))
                })
                .collect();
            format!(
                "the client's pod is {}{}",
                status.phase.unwrap_or_else(|| "Pending".into()),
                if waiting.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", waiting.join(", "))
                }
            )
        }
    };
    (
        detail,
        format!(
            "the client needs an image with python3 (`--image`) that `{}` can pull, and the proxy injector running there",
            l.source
        ),
    )
}

/// Delete the link's test namespace on the target, then on the source, waiting until
/// each is gone: the target's first, so the service mirror does not make the source's
/// again for a Service still exported. By name (it is derived from the link id, and the
/// mirror may have made the source's before `verify` labelled it).
async fn remove(pair: &Pair, namespace: &str) -> Result<(), ReadError> {
    for client in [&pair.target, &pair.source] {
        let namespaces = Api::<Namespace>::all(client.clone());
        let start = Instant::now();
        loop {
            let found = namespaces
                .get_opt(namespace)
                .await
                .map_err(|e| ReadError::from_kube("read a namespace", &e))?;
            let Some(ns) = found else { break };
            if start.elapsed() > Duration::from_secs(120) {
                return Err(ReadError::TimedOut(Duration::from_secs(120)));
            }
            if ns.metadata.deletion_timestamp.is_none() {
                namespaces
                    .delete(namespace, &DeleteParams::background())
                    .await
                    .map_err(|e| ReadError::from_kube("delete a namespace", &e))?;
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(())
}
