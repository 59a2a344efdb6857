//! `secrets sync --rotate`: link credential rotation, make-before-break.
//!
//! A link's credentials are the token of a remote-access ServiceAccount on its target.
//! A token is revoked for good only with its account, and Linkerd's controllers read
//! their credentials only when they start (the service mirror also when its Link's spec
//! changes; the destination controller never on an update), so a rotation is a new
//! account, used by restarted controllers, before the old account goes. The state lives
//! in the fleet file (`spec.secrets.linkCredentials`) and every change to what a target
//! grants is a rendered, reviewed commit; this module does only the live steps, each
//! verified before the next, and says what blocks:
//!
//! 1. start: record `rotation: {links, phase: granting}`. Rendered, every target grants
//!    the next account (`...-g<N+1>`) beside the current one.
//! 2. granting, per link: the next account's token is on the target and accepted; Vault
//!    gets the kubeconfig with it; both source Secrets are force-synced from Vault
//!    (ExternalSecret `force-sync` annotation) and hold it; then `controller-<link>` and
//!    `linkerd-destination` on each source are restarted (a rollout restart, not a Link
//!    spec change: the Link is GitOps-owned, a spec edit would be drift, and the
//!    destination has no Link to edit) and their pods are newer than the Secrets; the
//!    Secret's token is accepted. Then record `generations: +1, phase: retiring`.
//!    Rendered, the targets drop the old account.
//! 3. retiring, per link: the old account is gone from the target, and the previous
//!    kubeconfig (KV v2 keeps it) gets 401 there. Then the rotation block is removed.
//!
//! Every step checks before it acts, so an interrupted run is continued by running it
//! again; a run changes nothing it has not verified it may change. No value reaches a
//! report: steps say what happened, never with what.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use secrecy::{ExposeSecret as _, SecretString};

use super::SyncError;
use super::remote_access::{link_kubeconfig, read_token};
use crate::check::access::{self, Access, FailureKind};
use crate::cluster::Kubeconfigs;
use crate::vault::{KvClient, VaultSettings};
use meshfleet_fleet::defaults::MULTICLUSTER_NAMESPACE;
use meshfleet_fleet::edit::LinkCredentialsState;
use meshfleet_fleet::model::RotationPhase;
use meshfleet_plan::{FleetPlan, LinkPlan, remote_access_account};
use meshfleet_render::resources::ExternalSecret;

/// The annotation External Secrets watches to refresh an ExternalSecret now.
pub const FORCE_SYNC_ANNOTATION: &str = "force-sync";
/// The pod-template annotation `kubectl rollout restart` sets.
pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";
/// The API server caches token reviews this long: a revoked token may work until then.
const TOKEN_REVIEW_CACHE: Duration = Duration::from_secs(12);
/// The field manager of every patch the rotation makes (its restarts are found by it).
pub const FIELD_MANAGER: &str = "meshfleet";

/// What to do.
#[derive(Debug, Clone)]
pub struct RotateOptions {
    /// Look and report; change nothing (no Vault write, no annotation, no restart, no
    /// fleet-file edit). This is the rotation's status.
    pub dry_run: bool,
    /// The links to rotate when starting (`<source>-to-<target>`); empty = every link.
    pub links: Vec<String>,
    /// How long to wait for External Secrets and for a rollout.
    pub wait: Duration,
}

impl Default for RotateOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            links: Vec::new(),
            wait: Duration::from_secs(120),
        }
    }
}

/// Where the rotation was when the run began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// No rotation: this run starts one.
    Start,
    /// The targets grant both accounts; links move to the next one.
    Granting,
    /// The links use the next account; the old one leaves the targets.
    Retiring,
}

impl Stage {
    /// The stable spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Granting => "granting",
            Self::Retiring => "retiring",
        }
    }
}

/// The steps of a link's rotation, in order. Their spelling is stable (`-o json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StepId {
    /// The target has the next account and a filled token Secret for it.
    NextAccount,
    /// The target accepts the next token.
    NextTokenAccepted,
    /// Vault holds the kubeconfig with the next token.
    Vault,
    /// Both source Secrets hold it.
    SourceSecrets,
    /// The source's controller and destination started after their Secrets changed.
    Reloaded,
    /// The source's Secret is accepted by the target.
    CredentialsAccepted,
    /// The old account is gone from the target.
    OldAccountRemoved,
    /// The previous kubeconfig gets 401 from the target.
    OldTokenRevoked,
}

impl StepId {
    /// The stable spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NextAccount => "next-account",
            Self::NextTokenAccepted => "next-token-accepted",
            Self::Vault => "vault",
            Self::SourceSecrets => "source-secrets",
            Self::Reloaded => "reloaded",
            Self::CredentialsAccepted => "credentials-accepted",
            Self::OldAccountRemoved => "old-account-removed",
            Self::OldTokenRevoked => "old-token-revoked",
        }
    }
}

/// How a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// True on the clusters (found so, or made so by this run).
    Done,
    /// A dry run: this is what a real run would do.
    Would,
    /// Cannot be done (safely) now; the reason and the hint say what to do.
    Blocked,
}

/// One step of one link.
#[derive(Debug, Clone)]
pub struct Step {
    /// Which.
    pub id: StepId,
    /// How it stands.
    pub state: StepState,
    /// What was found or done (names and versions, never values).
    pub detail: String,
    /// For a blocked step, the fix.
    pub hint: Option<String>,
}

impl Step {
    fn done(id: StepId, detail: impl Into<String>) -> Self {
        Self {
            id,
            state: StepState::Done,
            detail: detail.into(),
            hint: None,
        }
    }

    fn would(id: StepId, detail: impl Into<String>) -> Self {
        Self {
            id,
            state: StepState::Would,
            detail: detail.into(),
            hint: None,
        }
    }

    fn blocked(id: StepId, detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            id,
            state: StepState::Blocked,
            detail: detail.into(),
            hint: Some(hint.into()),
        }
    }

    fn from_error(id: StepId, error: &SyncError) -> Self {
        use meshfleet_fleet::diagnostic::Hint as _;
        Self {
            id,
            state: StepState::Blocked,
            detail: error.to_string(),
            hint: error.hint(),
        }
    }
}

/// One link's rotation.
#[derive(Debug, Clone)]
pub struct LinkProgress {
    /// `<source>-to-<target>`.
    pub id: String,
    /// The account the link moves from.
    pub from: String,
    /// The account it moves to.
    pub to: String,
    /// Its steps so far, in order; the last one may be blocked.
    pub steps: Vec<Step>,
}

impl LinkProgress {
    fn ok(&self) -> bool {
        self.steps.iter().all(|s| s.state == StepState::Done)
    }

    fn push(&mut self, step: Step) -> bool {
        let ok = step.state != StepState::Blocked;
        self.steps.push(step);
        ok
    }
}

/// A Deployment restarted (or to restart) so that it reads its new credentials.
#[derive(Debug, Clone)]
pub struct Restart {
    /// The source cluster.
    pub cluster: String,
    /// `<namespace>/<name>`.
    pub deployment: String,
    /// What happened.
    pub state: StepState,
    /// Found fresh, restarted, or why not.
    pub detail: String,
}

/// What one run found and did.
#[derive(Debug, Clone)]
pub struct RotationReport {
    /// Where the rotation was when the run began.
    pub stage: Stage,
    /// Every link of the rotation.
    pub links: Vec<LinkProgress>,
    /// The Deployments of the sources.
    pub restarts: Vec<Restart>,
    /// The fleet-file state this run recorded (or, dry, would record).
    pub recorded: Option<LinkCredentialsState>,
    /// Where the rotation is now.
    pub now: Option<Stage>,
}

impl RotationReport {
    /// Whether a step is blocked.
    pub fn blocked(&self) -> bool {
        self.links
            .iter()
            .flat_map(|l| &l.steps)
            .any(|s| s.state == StepState::Blocked)
            || self.restarts.iter().any(|r| r.state == StepState::Blocked)
    }
}

/// Why a rotation could not be run at all (before any cluster was touched).
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// `--link` names no link of the fleet.
    #[error("`{0}` is not a link of the fleet")]
    UnknownLink(String, Vec<String>),
    /// `--link` differs from the rotation in progress.
    #[error("a rotation of {} is in progress; `--link` cannot change it", .0.join(", "))]
    OtherRotation(Vec<String>),
    /// The fleet has no links.
    #[error("the fleet has no links, so there are no link credentials to rotate")]
    NoLinks,
    /// No kubeconfig to reach the clusters.
    #[error("no kubeconfig was loaded, so the clusters cannot be read")]
    NoKubeconfig,
    /// No Vault settings, so the credentials cannot be written.
    #[error("no Vault settings were given, so the link credentials cannot be read or written")]
    NoVault,
    /// Vault could not be used.
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
}

impl meshfleet_fleet::diagnostic::Hint for RotateError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::UnknownLink(_, known) => Some(format!("the fleet's links are {}", known.join(", "))),
            Self::OtherRotation(_) => {
                Some("run `meshfleet secrets sync --rotate` without `--link` to continue it".into())
            }
            Self::NoLinks => None,
            Self::NoKubeconfig => Some("set `KUBECONFIG` or pass `--kubeconfig`".into()),
            Self::NoVault => Some("set `VAULT_ADDR` and `VAULT_TOKEN` (or `vault login`)".into()),
            Self::Vault(e) => e.hint(),
        }
    }
}

/// Start or continue the rotation the plan records.
pub async fn rotate(
    plan: &FleetPlan,
    recorded: &LinkCredentialsState,
    kubeconfigs: Option<&Kubeconfigs>,
    vault: Option<&VaultSettings>,
    options: &RotateOptions,
) -> Result<RotationReport, RotateError> {
    let links: Vec<&LinkPlan> = plan.clusters.iter().flat_map(|c| &c.outgoing).collect();
    if links.is_empty() {
        return Err(RotateError::NoLinks);
    }
    let Some((rotating, phase)) = &recorded.rotation else {
        return start(&links, recorded, options);
    };
    if !options.links.is_empty() && options.links.iter().collect::<BTreeSet<_>>() != rotating.iter().collect()
    {
        return Err(RotateError::OtherRotation(rotating.clone()));
    }
    let kubeconfigs = kubeconfigs.ok_or(RotateError::NoKubeconfig)?;
    let kv = KvClient::new(vault.ok_or(RotateError::NoVault)?, &plan.vault.mount)?;
    let ctx = Ctx {
        plan,
        kubeconfigs,
        kv: &kv,
        options,
    };
    let selected: Vec<&LinkPlan> = links
        .into_iter()
        .filter(|l| rotating.contains(&l.credentials_id()))
        .collect();
    Ok(match phase {
        RotationPhase::Granting => grant(&ctx, &selected, recorded).await,
        RotationPhase::Retiring => retire(&ctx, &selected, recorded).await,
    })
}

fn start(
    links: &[&LinkPlan],
    recorded: &LinkCredentialsState,
    options: &RotateOptions,
) -> Result<RotationReport, RotateError> {
    let known: Vec<String> = links.iter().map(|l| l.credentials_id()).collect();
    let mut chosen: Vec<String> = if options.links.is_empty() {
        known.clone()
    } else {
        for id in &options.links {
            if !known.contains(id) {
                let mut known = known;
                known.sort();
                return Err(RotateError::UnknownLink(id.clone(), known));
            }
        }
        options.links.clone()
    };
    chosen.sort();
    chosen.dedup();
    let progress = links
        .iter()
        .filter(|l| chosen.contains(&l.credentials_id()))
        .map(|l| LinkProgress {
            id: l.credentials_id(),
            from: l.account(),
            to: remote_access_account(&l.source, l.generation + 1),
            steps: Vec::new(),
        })
        .collect();
    Ok(RotationReport {
        stage: Stage::Start,
        links: progress,
        restarts: Vec::new(),
        recorded: Some(LinkCredentialsState {
            generations: recorded.generations.clone(),
            rotation: Some((chosen, RotationPhase::Granting)),
        }),
        now: Some(Stage::Granting),
    })
}

struct Ctx<'a> {
    plan: &'a FleetPlan,
    kubeconfigs: &'a Kubeconfigs,
    kv: &'a KvClient,
    options: &'a RotateOptions,
}

impl Ctx<'_> {
    async fn client(&self, cluster: &str) -> Result<kube::Client, SyncError> {
        let context = self.context(cluster);
        self.kubeconfigs
            .client(cluster, &context)
            .await
            .map_err(|e| SyncError::from_cluster(&e, cluster, &context))
    }

    fn context(&self, cluster: &str) -> String {
        self.plan
            .clusters
            .iter()
            .find(|c| c.name == cluster)
            .map_or_else(|| cluster.to_string(), |c| c.context.clone())
    }

    /// Try `kubeconfig` against the target of `link`, through the operator's route to it.
    async fn try_credentials(&self, link: &LinkPlan, kubeconfig: &SecretString) -> Access {
        let target = self.plan.clusters.iter().find(|c| c.name == link.target);
        let expected = target.and_then(|t| t.api_server.as_deref());
        let report = access::inspect(kubeconfig, expected);
        let Some(credentials) = report.credentials else {
            return Access::Failed {
                route: String::new(),
                reason: report.problems.join("; "),
                kind: FailureKind::Other,
            };
        };
        let route = self
            .kubeconfigs
            .server(&self.context(&link.target))
            .unwrap_or_else(|| credentials.server().to_string());
        let timeout = self.kubeconfigs.timeout();
        tokio::time::timeout(timeout, access::probe(&credentials, &route, timeout))
            .await
            .unwrap_or_else(|_| Access::Failed {
                route,
                reason: "no answer".into(),
                kind: FailureKind::Other,
            })
    }

    /// The credentials Secrets of `link` on its source: (namespace, name).
    fn source_secrets(&self, link: &LinkPlan) -> [(String, String); 2] {
        [
            (MULTICLUSTER_NAMESPACE.to_string(), link.credentials_secret()),
            (self.plan.linkerd.namespace.clone(), link.credentials_secret()),
        ]
    }
}

// ---- granting -----------------------------------------------------------------------

async fn grant(ctx: &Ctx<'_>, links: &[&LinkPlan], recorded: &LinkCredentialsState) -> RotationReport {
    let mut progress: Vec<LinkProgress> =
        futures::future::join_all(links.iter().map(|l| move_to_next(ctx, l))).await;
    let mut restarts = Vec::new();
    let ready: Vec<bool> = progress.iter().map(LinkProgress::ok).collect();
    if ready.iter().all(|r| *r) {
        restarts = reload(ctx, links).await;
        for (link, p) in links.iter().zip(&mut progress) {
            let mine: Vec<&Restart> = restarts
                .iter()
                .filter(|r| {
                    r.cluster == link.source
                        && (r.deployment == format!("{MULTICLUSTER_NAMESPACE}/{}", link.controller_name())
                            || r.deployment == format!("{}/linkerd-destination", ctx.plan.linkerd.namespace))
                })
                .collect();
            let step = match mine.iter().find(|r| r.state != StepState::Done) {
                Some(r) if r.state == StepState::Would => Step::would(
                    StepId::Reloaded,
                    format!("restart `{}` on `{}`", r.deployment, r.cluster),
                ),
                Some(r) => Step::blocked(
                    StepId::Reloaded,
                    format!("`{}` on `{}`: {}", r.deployment, r.cluster, r.detail),
                    format!(
                        "look at `kubectl --context {} -n {} rollout status deploy/{}`, then run `meshfleet secrets sync --rotate` again",
                        ctx.context(&r.cluster),
                        r.deployment.split('/').next().unwrap_or_default(),
                        r.deployment.split('/').nth(1).unwrap_or_default()
                    ),
                ),
                None => Step::done(
                    StepId::Reloaded,
                    format!(
                        "{} started after the Secrets changed",
                        mine.iter()
                            .map(|r| format!("`{}`", r.deployment))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                ),
            };
            if p.push(step) {
                let step = in_use(ctx, link).await;
                p.push(step);
            }
        }
    }
    let (recorded, now) = if progress.iter().all(LinkProgress::ok) {
        let mut generations = recorded.generations.clone();
        for link in links {
            generations.insert(link.credentials_id(), link.generation + 1);
        }
        let rotating = links.iter().map(|l| l.credentials_id()).collect();
        (
            Some(LinkCredentialsState {
                generations,
                rotation: Some((rotating, RotationPhase::Retiring)),
            }),
            Some(Stage::Retiring),
        )
    } else {
        (None, None)
    };
    RotationReport {
        stage: Stage::Granting,
        links: progress,
        restarts,
        recorded,
        now,
    }
}

/// Steps 1 to 4 of one link: the next token, accepted, in Vault, in both source Secrets.
async fn move_to_next(ctx: &Ctx<'_>, link: &LinkPlan) -> LinkProgress {
    let next = remote_access_account(&link.source, link.generation + 1);
    let mut p = LinkProgress {
        id: link.credentials_id(),
        from: link.account(),
        to: next.clone(),
        steps: Vec::new(),
    };
    let target_context = ctx.context(&link.target);
    let client = match ctx.client(&link.target).await {
        Ok(c) => c,
        Err(e) => {
            p.push(Step::from_error(StepId::NextAccount, &e));
            return p;
        }
    };
    let token = match read_token(&client, &link.target, &target_context, &next).await {
        Ok(token) => token,
        Err(
            e @ (SyncError::ServiceAccountMissing { .. }
            | SyncError::TokenSecretMissing { .. }
            | SyncError::TokenNotFilled { .. }),
        ) => {
            p.push(Step::blocked(
                StepId::NextAccount,
                e.to_string(),
                format!(
                    "the target does not grant `{next}` yet: run `meshfleet render`, commit the tree and let GitOps apply it on `{}`, then run `meshfleet secrets sync --rotate` again",
                    link.target
                ),
            ));
            return p;
        }
        Err(e) => {
            p.push(Step::from_error(StepId::NextAccount, &e));
            return p;
        }
    };
    p.push(Step::done(
        StepId::NextAccount,
        format!("`{}` has `{next}` and its token", link.target),
    ));
    let Some(server) = ctx
        .plan
        .clusters
        .iter()
        .find(|c| c.name == link.target)
        .and_then(|c| c.api_server.clone())
    else {
        p.push(Step::from_error(
            StepId::NextTokenAccepted,
            &SyncError::ApiServerMissing {
                cluster: link.target.clone(),
            },
        ));
        return p;
    };
    let kubeconfig = match link_kubeconfig(
        &next,
        &link.target,
        &server,
        &token.token.ca_pem,
        &token.token.bearer,
    ) {
        Ok(k) => k,
        Err(e) => {
            p.push(Step::from_error(StepId::NextTokenAccepted, &e));
            return p;
        }
    };
    drop(token);
    match ctx.try_credentials(link, &kubeconfig).await {
        Access::Verified { denied, .. } if denied.is_empty() => {
            p.push(Step::done(
                StepId::NextTokenAccepted,
                format!("`{}` accepts the token of `{next}`", link.target),
            ));
        }
        access => {
            p.push(Step::blocked(
                StepId::NextTokenAccepted,
                format!("`{}` does not accept the token of `{next}`: {}", link.target, describe(&access)),
                "nothing was changed; check the account's ClusterRoleBinding in the rendered tree and what GitOps applied",
            ));
            return p;
        }
    }
    if !p.push(vault_step(ctx, link, &kubeconfig).await) {
        return p;
    }
    p.push(source_secrets_step(ctx, link, &kubeconfig).await);
    p
}

/// Vault holds `kubeconfig` at the link's key (written now, with check-and-set).
async fn vault_step(ctx: &Ctx<'_>, link: &LinkPlan, kubeconfig: &SecretString) -> Step {
    let key = ctx.plan.vault.credentials_key(&link.source, &link.target);
    let path = format!("{}/{key}", ctx.plan.vault.mount.trim_matches('/'));
    let state = match ctx.kv.read(&key).await {
        Ok(s) => s,
        Err(e) => return Step::from_error(StepId::Vault, &e.into()),
    };
    if let Some(current) = &state.current
        && current
            .data
            .get("kubeconfig")
            .is_some_and(|k| k.expose_secret() == kubeconfig.expose_secret())
    {
        return Step::done(
            StepId::Vault,
            format!(
                "`{path}` holds the next credentials (version {})",
                current.version
            ),
        );
    }
    if ctx.options.dry_run {
        return Step::would(StepId::Vault, format!("write the next credentials to `{path}`"));
    }
    let data: BTreeMap<String, SecretString> = [("kubeconfig".to_string(), kubeconfig.clone())].into();
    match ctx.kv.write(&key, &data, state.cas).await {
        Ok(version) => Step::done(
            StepId::Vault,
            format!("wrote the next credentials to `{path}` (version {version})"),
        ),
        Err(e) => Step::from_error(StepId::Vault, &e.into()),
    }
}

/// Both source Secrets hold `kubeconfig`: force-sync their ExternalSecrets and wait.
async fn source_secrets_step(ctx: &Ctx<'_>, link: &LinkPlan, kubeconfig: &SecretString) -> Step {
    let client = match ctx.client(&link.source).await {
        Ok(c) => c,
        Err(e) => return Step::from_error(StepId::SourceSecrets, &e),
    };
    let context = ctx.context(&link.source);
    let names = ctx.source_secrets(link);
    let shown = names
        .iter()
        .map(|(ns, n)| format!("`{ns}/{n}`"))
        .collect::<Vec<_>>()
        .join(" and ");
    let mut stale = Vec::new();
    for (ns, name) in &names {
        match secret_holds(&client, ns, name, kubeconfig).await {
            Ok(true) => {}
            Ok(false) => stale.push((ns.clone(), name.clone())),
            Err(e) => {
                return Step::from_error(
                    StepId::SourceSecrets,
                    &SyncError::from_kube(&e, &link.source, &context, "get secrets"),
                );
            }
        }
    }
    if stale.is_empty() {
        return Step::done(
            StepId::SourceSecrets,
            format!("{shown} on `{}` hold them", link.source),
        );
    }
    if ctx.options.dry_run {
        return Step::would(
            StepId::SourceSecrets,
            format!("force-sync the ExternalSecrets of {shown} on `{}`", link.source),
        );
    }
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    for (ns, name) in &stale {
        // Untyped: the live object carries status and defaults meshfleet's type does not model.
        let resource = ApiResource::erase::<ExternalSecret>(&());
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
        let patch = serde_json::json!({"metadata": {"annotations": {FORCE_SYNC_ANNOTATION: stamp}}});
        if let Err(e) = api.patch(name, &patch_params(), &Patch::Merge(&patch)).await {
            return Step::from_error(
                StepId::SourceSecrets,
                &SyncError::from_kube(&e, &link.source, &context, "patch externalsecrets"),
            );
        }
        tracing::info!(cluster = %link.source, namespace = %ns, name = %name, "force-synced the ExternalSecret");
    }
    let deadline = Instant::now() + ctx.options.wait;
    loop {
        let mut waiting = Vec::new();
        for (ns, name) in &stale {
            if !secret_holds(&client, ns, name, kubeconfig).await.unwrap_or(false) {
                waiting.push(format!("`{ns}/{name}`"));
            }
        }
        if waiting.is_empty() {
            return Step::done(
                StepId::SourceSecrets,
                format!("{shown} on `{}` hold them (force-synced)", link.source),
            );
        }
        if Instant::now() >= deadline {
            return Step::blocked(
                StepId::SourceSecrets,
                format!(
                    "{} on `{}` did not get the new credentials within {}s of a force-sync",
                    waiting.join(" and "),
                    link.source,
                    ctx.options.wait.as_secs()
                ),
                format!(
                    "`kubectl --context {context} -n {} describe externalsecret {}` says why External Secrets did not refresh it; then run `meshfleet secrets sync --rotate` again",
                    stale[0].0, stale[0].1
                ),
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

async fn secret_holds(
    client: &kube::Client,
    ns: &str,
    name: &str,
    kubeconfig: &SecretString,
) -> Result<bool, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let Some(mut secret) = api.get_opt(name).await? else {
        return Ok(false);
    };
    let holds = secret
        .data
        .as_ref()
        .and_then(|d| d.get("kubeconfig"))
        .is_some_and(|v| v.0 == kubeconfig.expose_secret().as_bytes());
    super::remote_access::scrub(&mut secret);
    Ok(holds)
}

/// A Deployment (namespace, name) and the Secrets (namespace, name) it reads.
type Reloads = (String, String, Vec<(String, String)>);

/// Restart what must read new credentials on each source, and verify it did.
async fn reload(ctx: &Ctx<'_>, links: &[&LinkPlan]) -> Vec<Restart> {
    let mut by_source: BTreeMap<&str, Vec<&LinkPlan>> = BTreeMap::new();
    for link in links {
        by_source.entry(link.source.as_str()).or_default().push(link);
    }
    let jobs = by_source.into_iter().map(|(source, links)| async move {
        let mut out = Vec::new();
        let client = match ctx.client(source).await {
            Ok(c) => c,
            Err(e) => {
                out.push(Restart {
                    cluster: source.to_string(),
                    deployment: "*".into(),
                    state: StepState::Blocked,
                    detail: e.to_string(),
                });
                return out;
            }
        };
        // Each Deployment and the Secrets it reads.
        let mut deployments: Vec<Reloads> = links
            .iter()
            .map(|l| {
                (
                    MULTICLUSTER_NAMESPACE.to_string(),
                    l.controller_name(),
                    vec![(MULTICLUSTER_NAMESPACE.to_string(), l.credentials_secret())],
                )
            })
            .collect();
        deployments.push((
            ctx.plan.linkerd.namespace.clone(),
            "linkerd-destination".into(),
            links
                .iter()
                .map(|l| (ctx.plan.linkerd.namespace.clone(), l.credentials_secret()))
                .collect(),
        ));
        for (ns, name, secrets) in deployments {
            out.push(restart(ctx, &client, source, &ns, &name, &secrets).await);
        }
        out
    });
    futures::future::join_all(jobs)
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn restart(
    ctx: &Ctx<'_>,
    client: &kube::Client,
    cluster: &str,
    ns: &str,
    name: &str,
    secrets: &[(String, String)],
) -> Restart {
    let context = ctx.context(cluster);
    let result = |state, detail: String| Restart {
        cluster: cluster.to_string(),
        deployment: format!("{ns}/{name}"),
        state,
        detail,
    };
    let kube = |action: &str| {
        let action = action.to_string();
        let context = context.clone();
        move |e: kube::Error| SyncError::from_kube(&e, cluster, &context, &action).to_string()
    };
    let mut changed: Option<Time> = None;
    for (sns, sname) in secrets {
        let api: Api<Secret> = Api::namespaced(client.clone(), sns);
        match api.get_opt(sname).await {
            Ok(Some(mut s)) => {
                changed = changed.max(crate::cluster::last_change(&s.metadata));
                super::remote_access::scrub(&mut s);
            }
            Ok(None) => return result(StepState::Blocked, format!("there is no Secret `{sns}/{sname}`")),
            Err(e) => return result(StepState::Blocked, kube("get secrets")(e)),
        }
    }
    let Some(changed) = changed else {
        return result(StepState::Blocked, "its Secrets carry no time of change".into());
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    match fresh(client, &deployments, ns, name, &changed).await {
        Err(e) => return result(StepState::Blocked, kube("get deployments")(e)),
        Ok(Freshness::Missing) => {
            return result(StepState::Blocked, "the Deployment does not exist".into());
        }
        Ok(Freshness::Fresh) => {
            return result(
                StepState::Done,
                "its pods started after the Secrets changed".into(),
            );
        }
        Ok(Freshness::Stale | Freshness::RollingOut) if ctx.options.dry_run => {
            return result(
                StepState::Would,
                "restart it: its pods predate the Secrets".into(),
            );
        }
        Ok(Freshness::RollingOut) => {}
        Ok(Freshness::Stale) => {
            let now = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let patch = serde_json::json!({
                "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: now}}}}
            });
            if let Err(e) = deployments
                .patch(name, &patch_params(), &Patch::Merge(&patch))
                .await
            {
                return result(StepState::Blocked, kube("patch deployments")(e));
            }
            tracing::info!(cluster, namespace = ns, name, "restarted the Deployment");
        }
    }
    let deadline = Instant::now() + ctx.options.wait;
    loop {
        match fresh(client, &deployments, ns, name, &changed).await {
            Ok(Freshness::Fresh) => {
                return result(
                    StepState::Done,
                    "restarted; its pods started after the Secrets changed".into(),
                );
            }
            Err(e) => return result(StepState::Blocked, kube("get deployments")(e)),
            Ok(_) if Instant::now() >= deadline => {
                return result(
                    StepState::Blocked,
                    format!(
                        "restarted, but its rollout did not finish within {}s",
                        ctx.options.wait.as_secs()
                    ),
                );
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

enum Freshness {
    Missing,
    /// Every replica is available and every pod started after the Secrets changed.
    Fresh,
    /// A rollout is under way.
    RollingOut,
    /// The pods predate the Secrets and no rollout is under way.
    Stale,
}

async fn fresh(
    client: &kube::Client,
    deployments: &Api<Deployment>,
    ns: &str,
    name: &str,
    changed: &Time,
) -> Result<Freshness, kube::Error> {
    let Some(deployment) = deployments.get_opt(name).await? else {
        return Ok(Freshness::Missing);
    };
    let want = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = deployment.status.clone().unwrap_or_default();
    let rolled_out = status.observed_generation >= deployment.metadata.generation
        && status.updated_replicas.unwrap_or(0) == want
        && status.replicas.unwrap_or(0) == want
        && status.available_replicas.unwrap_or(0) == want;
    let selector = deployment
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pods = pods.list(&ListParams::default().labels(&selector)).await?.items;
    let live: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let newer = |p: &&Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.start_time.clone())
            .or_else(|| p.metadata.creation_timestamp.clone())
            .is_some_and(|t| t.0 > changed.0)
    };
    Ok(
        if rolled_out && !live.is_empty() && live.iter().all(newer) && live.len() == pods.len() {
            Freshness::Fresh
        } else if rolled_out {
            Freshness::Stale
        } else {
            Freshness::RollingOut
        },
    )
}

/// The Secret the service mirror reads is accepted by the target.
async fn in_use(ctx: &Ctx<'_>, link: &LinkPlan) -> Step {
    let client = match ctx.client(&link.source).await {
        Ok(c) => c,
        Err(e) => return Step::from_error(StepId::CredentialsAccepted, &e),
    };
    let name = link.credentials_secret();
    let api: Api<Secret> = Api::namespaced(client, MULTICLUSTER_NAMESPACE);
    let kubeconfig = match api.get_opt(&name).await {
        Ok(Some(mut s)) => {
            let k = s
                .data
                .as_ref()
                .and_then(|d| d.get("kubeconfig"))
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
                .map(SecretString::from);
            super::remote_access::scrub(&mut s);
            k
        }
        Ok(None) => None,
        Err(e) => {
            return Step::from_error(
                StepId::CredentialsAccepted,
                &SyncError::from_kube(&e, &link.source, &ctx.context(&link.source), "get secrets"),
            );
        }
    };
    let Some(kubeconfig) = kubeconfig else {
        return Step::blocked(
            StepId::CredentialsAccepted,
            format!(
                "`{MULTICLUSTER_NAMESPACE}/{name}` on `{}` has no kubeconfig",
                link.source
            ),
            "run `meshfleet check` for the link's credentials",
        );
    };
    match ctx.try_credentials(link, &kubeconfig).await {
        Access::Verified { .. } => Step::done(
            StepId::CredentialsAccepted,
            format!(
                "`{}` accepts what `{MULTICLUSTER_NAMESPACE}/{name}` on `{}` holds",
                link.target, link.source
            ),
        ),
        access @ Access::Failed { .. } => Step::blocked(
            StepId::CredentialsAccepted,
            format!(
                "`{}` refuses what `{MULTICLUSTER_NAMESPACE}/{name}` holds: {}",
                link.target,
                describe(&access)
            ),
            "run `meshfleet check`; nothing will be retired while a link's credentials are refused",
        ),
    }
}

fn describe(access: &Access) -> String {
    match access {
        Access::Verified { denied, .. } => format!("it may not {} services", denied.join("/")),
        Access::Failed { reason, .. } => reason.clone(),
    }
}

// ---- retiring -----------------------------------------------------------------------

async fn retire(ctx: &Ctx<'_>, links: &[&LinkPlan], recorded: &LinkCredentialsState) -> RotationReport {
    let progress: Vec<LinkProgress> =
        futures::future::join_all(links.iter().map(|l| retire_link(ctx, l))).await;
    let done = progress.iter().all(LinkProgress::ok);
    let (recorded, now) = if done {
        (
            Some(LinkCredentialsState {
                generations: recorded.generations.clone(),
                rotation: None,
            }),
            None,
        )
    } else {
        (None, Some(Stage::Retiring))
    };
    RotationReport {
        stage: Stage::Retiring,
        links: progress,
        restarts: Vec::new(),
        recorded,
        now,
    }
}

async fn retire_link(ctx: &Ctx<'_>, link: &LinkPlan) -> LinkProgress {
    let old = remote_access_account(&link.source, link.generation.saturating_sub(1));
    let mut p = LinkProgress {
        id: link.credentials_id(),
        from: old.clone(),
        to: link.account(),
        steps: Vec::new(),
    };
    if !p.push(in_use(ctx, link).await) {
        return p;
    }
    let context = ctx.context(&link.target);
    let client = match ctx.client(&link.target).await {
        Ok(c) => c,
        Err(e) => {
            p.push(Step::from_error(StepId::OldAccountRemoved, &e));
            return p;
        }
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(client, MULTICLUSTER_NAMESPACE);
    match accounts.get_opt(&old).await {
        Ok(None) => p.push(Step::done(
            StepId::OldAccountRemoved,
            format!("`{}` no longer has `{old}`", link.target),
        )),
        Ok(Some(_)) => p.push(Step::blocked(
            StepId::OldAccountRemoved,
            format!("`{}` still has `{old}`", link.target),
            format!(
                "run `meshfleet render`, commit the tree and let GitOps apply it on `{}` (the fleet no longer grants `{old}`), then run `meshfleet secrets sync --rotate` again",
                link.target
            ),
        )),
        Err(e) => p.push(Step::from_error(
            StepId::OldAccountRemoved,
            &SyncError::from_kube(&e, &link.target, &context, "get serviceaccounts"),
        )),
    };
    if !p.ok() {
        return p;
    }
    p.push(old_token_revoked(ctx, link).await);
    p
}

/// The latest earlier version of the link's Vault key that holds other credentials is
/// refused by the target (within the API server's token-review cache time).
async fn old_token_revoked(ctx: &Ctx<'_>, link: &LinkPlan) -> Step {
    let key = ctx.plan.vault.credentials_key(&link.source, &link.target);
    let current = match ctx.kv.read(&key).await {
        Ok(state) => state.current,
        Err(e) => return Step::from_error(StepId::OldTokenRevoked, &e.into()),
    };
    let Some(current) = current else {
        return Step::blocked(
            StepId::OldTokenRevoked,
            format!("Vault has no `{key}`"),
            "run `meshfleet secrets sync`",
        );
    };
    let now_value = current
        .data
        .get("kubeconfig")
        .map(|k| k.expose_secret().to_string());
    let mut previous = None;
    for version in (current.version.saturating_sub(10).max(1)..current.version).rev() {
        match ctx.kv.read_version(&key, version).await {
            Ok(Some(old)) => {
                let value = old.data.get("kubeconfig").cloned();
                if value.as_ref().map(|v| v.expose_secret().to_string()) != now_value {
                    previous = value.map(|v| (version, v));
                    break;
                }
            }
            Ok(None) => {}
            Err(e) => return Step::from_error(StepId::OldTokenRevoked, &e.into()),
        }
    }
    let Some((version, kubeconfig)) = previous else {
        return Step::done(
            StepId::OldTokenRevoked,
            format!(
                "no earlier version of `{key}` holds other credentials, so there is no old token left in Vault to try"
            ),
        );
    };
    let deadline = Instant::now() + TOKEN_REVIEW_CACHE;
    loop {
        match ctx.try_credentials(link, &kubeconfig).await {
            Access::Failed {
                kind: FailureKind::Unauthorized,
                ..
            } => {
                return Step::done(
                    StepId::OldTokenRevoked,
                    format!(
                        "`{}` refuses the previous credentials (Vault version {version}): 401",
                        link.target
                    ),
                );
            }
            other if Instant::now() >= deadline => {
                return Step::blocked(
                    StepId::OldTokenRevoked,
                    format!(
                        "`{}` does not refuse the previous credentials (Vault version {version}): {}",
                        link.target,
                        match &other {
                            Access::Verified { .. } => "they are still accepted".to_string(),
                            Access::Failed { reason, .. } => reason.clone(),
                        }
                    ),
                    "the old account's token must be revoked before the rotation ends: see whether something recreated the account on the target",
                );
            }
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}
